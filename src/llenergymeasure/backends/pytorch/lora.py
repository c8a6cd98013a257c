"""LoRA adapters for the pytorch backend, through PEFT."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from llenergymeasure.backends.base import first_line
from llenergymeasure.config.models import LoraConfig
from llenergymeasure.errors import DependencyError, ModelNotFoundError


def apply_lora(model: Any, lora: LoraConfig) -> tuple[Any, dict[str, Any]]:
    """Wrap ``model`` with the adapter (or merge it into the weights when asked).

    An unmerged adapter adds its low-rank matmuls to every adapted layer at every token; a
    merged one costs nothing extra at inference, so the two measure differently.

    Returns:
        The model to run and what to record about the adapter.

    Raises:
        DependencyError: PEFT is not installed.
        ModelNotFoundError: the adapter cannot be found or loaded.
    """
    try:
        from peft import PeftModel
    except ImportError:
        raise DependencyError(
            "lora: needs the peft package: pip install 'llenergymeasure[pytorch]'"
        ) from None
    try:
        wrapped = PeftModel.from_pretrained(model, lora.adapter)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"lora.adapter '{lora.adapter}' could not be loaded ({first_line(exc)})"
        ) from None
    details = {
        "lora_adapter": lora.adapter,
        "lora_merged": lora.merge_weights,
        "peft": importlib.metadata.version("peft"),
    }
    return (wrapped.merge_and_unload() if lora.merge_weights else wrapped), details
