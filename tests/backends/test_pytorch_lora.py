"""LoRA through PEFT: the adapter reaches the model, unmerged or merged into the weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

peft = pytest.importorskip("peft")
torch = pytest.importorskip("torch")

from llenergymeasure.backends.pytorch.backend import PyTorchBackend  # noqa: E402
from llenergymeasure.config import ExperimentConfig  # noqa: E402
from llenergymeasure.errors import ModelNotFoundError  # noqa: E402


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rank-2 LoRA on q_proj/v_proj of the tiny model, with non-zero B so it changes outputs."""
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = peft.get_peft_model(base, peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.fill_(0.5)
    folder = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(folder)
    return folder


def load(model_dir: Path, **lora: Any) -> tuple[PyTorchBackend, Any]:
    backend = PyTorchBackend()
    info = backend.load(ExperimentConfig(model=str(model_dir), lora=lora, chat_template=False))
    return backend, info


def test_unmerged_adapter_wraps_the_model(tiny_model_dir: Path, adapter_dir: Path) -> None:
    backend, info = load(tiny_model_dir, adapter=str(adapter_dir))
    assert isinstance(backend._model, peft.PeftModel)
    assert info.details["lora_adapter"] == str(adapter_dir) and not info.details["lora_merged"]
    records = backend.run(backend.prepare([_prompt("hello")]), max_output_tokens=3)
    assert records[0].output_tokens > 0


def test_merged_adapter_changes_the_weights(tiny_model_dir: Path, adapter_dir: Path) -> None:
    plain = PyTorchBackend()
    plain.load(ExperimentConfig(model=str(tiny_model_dir)))
    merged, info = load(tiny_model_dir, adapter=str(adapter_dir), merge_weights=True)
    assert not isinstance(merged._model, peft.PeftModel) and info.details["lora_merged"]
    q_plain = plain._model.model.layers[0].self_attn.q_proj.weight
    q_merged = merged._model.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(q_plain, q_merged)


def test_missing_adapter_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"lora\.adapter"):
        load(tiny_model_dir, adapter=str(tmp_path / "no-adapter"))


def _prompt(text: str) -> Any:
    from llenergymeasure.datasets import Prompt

    return Prompt(text=text, token_ids=None, index=0)
