"""Every backend records the same transformer shape for the same model, so FLOPs, J/FLOP, MFU
and MBU exist under vLLM, TensorRT-LLM and a server as under pytorch (#18 item 14: the embedded
GGUF model under vLLM had none, 'model config has no positive hidden_size')."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")

from llenergymeasure.backends.model_shape import model_architecture, model_shape
from llenergymeasure.flops import architecture_summary, compute_flops_metrics
from llenergymeasure.results.records import RequestRecord

SMOLLM2_PARAMETERS = 134_515_008


def test_the_embedded_models_folder_reads_as_the_pytorch_backend_reads_it(
    embedded_folder: Path,
) -> None:
    from transformers import AutoModelForCausalLM

    shape = model_shape(str(embedded_folder))  # the folder vLLM and TensorRT-LLM load

    assert shape is not None
    assert (shape.hidden_size, shape.num_hidden_layers, shape.num_key_value_heads) == (576, 30, 3)
    assert shape.parameters().total == SMOLLM2_PARAMETERS
    loaded = AutoModelForCausalLM.from_pretrained(embedded_folder)  # as the pytorch backend does
    assert model_architecture(str(embedded_folder)) == architecture_summary(loaded.config)


def test_its_architecture_gives_flops(embedded_folder: Path) -> None:
    requests = [RequestRecord(0, 10, 4, 0.0, [0.1, 0.2, 0.3, 0.4], [1, 1, 1, 1], 0.4)]
    flops = compute_flops_metrics(
        model_architecture(str(embedded_folder)) or {}, requests, 1.0, 5.0, "fp32", None
    )
    assert flops.flops_total is not None and flops.flops_total > 0
    assert flops.energy_per_flop_j == pytest.approx(5.0 / flops.flops_total)


def test_a_folder_without_a_config_has_no_shape(tmp_path: Path) -> None:
    assert model_shape(str(tmp_path)) is None and model_architecture(str(tmp_path)) is None
