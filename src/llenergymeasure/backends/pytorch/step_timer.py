"""Per-step token timestamps from transformers' streamer hook.

``generate`` calls ``streamer.put`` once with the prompt, then once per decoding step with the
batch's new tokens already copied to the host (``tokens.cpu()``), which synchronises with the
GPU: each timestamp is when that step's tokens really existed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers.generation.streamers import BaseStreamer


class StepTimer(BaseStreamer):  # type: ignore[misc]
    """Records the clock at every decoding step of one ``generate`` call."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._seen_prompt = False
        self.step_times_s: list[float] = []

    def put(self, value: Any) -> None:
        """Called by ``generate``: first with the prompt, then with each step's tokens."""
        now = self._clock()
        if not self._seen_prompt:
            self._seen_prompt = True
            return
        self.step_times_s.append(now)

    def end(self) -> None:
        """Called by ``generate`` when generation finishes."""
