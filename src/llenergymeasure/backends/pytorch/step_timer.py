"""Per-step token timestamps from transformers' streamer (or, for beam search, logits) hook.

``generate`` calls ``streamer.put`` once with the prompt, then once per decoding step with the
batch's new tokens already copied to the host (``tokens.cpu()``), which synchronises with the
GPU: each timestamp is when that step's tokens really existed.

Each step also calls ``on_step`` (the run's progress, one token per row): a Python call after
the synchronisation the hook makes anyway, so reporting progress adds none of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers.generation.streamers import BaseStreamer


class StepTimer(BaseStreamer):  # type: ignore[misc]
    """Records the clock at every decoding step of one ``generate`` call."""

    def __init__(
        self, clock: Callable[[], float], on_step: Callable[[], None] | None = None
    ) -> None:
        self._clock = clock
        self._on_step = on_step
        self._seen_prompt = False
        self.step_times_s: list[float] = []

    def put(self, value: Any) -> None:
        """Called by ``generate``: first with the prompt, then with each step's tokens."""
        now = self._clock()
        if not self._seen_prompt:
            self._seen_prompt = True
            return
        self.step_times_s.append(now)
        if self._on_step is not None:
            self._on_step()

    def end(self) -> None:
        """Called by ``generate`` when generation finishes."""


class LogitsStepTimer:
    """Records the clock at every decoding step through the logits-processor hook.

    Beam search cannot drive a streamer, but calls every logits processor once per step (for
    all beams at once). The step's logits are synchronised to the host first on CUDA, so each
    timestamp is when that step's forward pass had finished.
    """

    def __init__(
        self, clock: Callable[[], float], on_step: Callable[[], None] | None = None
    ) -> None:
        self._clock = clock
        self._on_step = on_step
        self.step_times_s: list[float] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """Called by ``generate`` with each step's scores; returns them unchanged."""
        if scores.device.type == "cuda":
            torch.cuda.synchronize(scores.device)
        self.step_times_s.append(self._clock())
        if self._on_step is not None:
            self._on_step()
        return scores
