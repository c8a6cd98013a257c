"""Parameter counts from model configs: exact against transformers, and the published sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.backends.architectures import architecture_config
from llenergymeasure.flops import (
    ArchitectureError,
    TransformerShape,
    architecture_summary,
)


def shipped(name: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(Path(architecture_config(name)).read_text())
    return config


# Published totals (model cards / safetensors metadata), counted here from the config alone.
PUBLISHED = [
    ("llama-3.1-8b-arch", 8_030_261_248, 6_979_588_096),
    ("mistral-7b-arch", 7_248_023_552, 6_979_588_096),
    ("qwen2.5-7b-arch", 7_615_616_512, 6_525_621_760),  # card: 7.61B total, 6.53B non-embedding
    ("smollm2-135m-arch", 134_515_008, 106_203_456),
]


@pytest.mark.parametrize(("name", "total", "non_embedding"), PUBLISHED)
def test_shipped_architectures_have_their_published_size(
    name: str, total: int, non_embedding: int
) -> None:
    params = TransformerShape.from_config(shipped(name)).parameters()
    assert params.total == total
    assert params.non_embedding == non_embedding
    assert params.non_embedding_active == non_embedding  # dense: every parameter is active


def test_llama_8b_breakdown_by_hand() -> None:
    # d=4096, 32 layers, 32 heads x 128, 8 KV heads, ff 14336, vocab 128256, untied
    per_layer = (4096 * 4096 * 2 + 4096 * 1024 * 2) + 3 * 4096 * 14336 + 2 * 4096
    params = TransformerShape.from_config(shipped("llama-3.1-8b-arch")).parameters()
    assert params.embedding == params.lm_head == 128256 * 4096
    assert params.non_embedding == 32 * per_layer + 4096


def test_smollm2_count_equals_the_real_model_built_from_the_shipped_config() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    path = architecture_config("smollm2-135m-arch")
    hf_config = transformers.AutoConfig.from_pretrained(path)
    with torch.device("meta"):  # same modules and shapes, no memory, no init
        model = transformers.AutoModelForCausalLM.from_config(hf_config)
    real = sum(p.numel() for p in model.parameters())
    assert TransformerShape.from_config(hf_config).parameters().total == real == 134_515_008


TINY: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 100,
}
FAMILIES: list[dict[str, Any]] = [
    {"model_type": "llama", "attention_bias": True, "mlp_bias": True},
    {"model_type": "llama", "tie_word_embeddings": True},
    {"model_type": "mistral"},
    {"model_type": "qwen2"},
    {"model_type": "qwen3", "head_dim": 16},
    {"model_type": "qwen3", "head_dim": 8, "attention_bias": True},
    {"model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2},
    {
        "model_type": "qwen2_moe",
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 24,
        "shared_expert_intermediate_size": 40,
        "decoder_sparse_step": 2,
        "mlp_only_layers": [3],
    },
    {
        "model_type": "qwen3_moe",
        "head_dim": 8,
        "num_experts": 6,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 24,
        "mlp_only_layers": [0],
    },
]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: str(f["model_type"]))
def test_counts_match_transformers_for_each_family(family: dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    raw = {**TINY, **family}
    hf_config = transformers.AutoConfig.for_model(**raw)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(hf_config)
    real = sum(p.numel() for p in model.parameters())
    from_dict = TransformerShape.from_config(raw)
    assert from_dict == TransformerShape.from_config(hf_config)  # dict and object agree
    assert from_dict.parameters().total == real
    assert from_dict.assumption is None


def test_moe_active_parameters_count_only_the_routed_experts() -> None:
    shape = TransformerShape.from_config(
        {**TINY, "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2}
    )
    params = shape.parameters()
    expert = 3 * 32 * 48
    assert shape.num_moe_layers == 4
    assert params.non_embedding - params.non_embedding_active == 4 * (4 - 2) * expert


def test_qwen2_moe_sparse_layer_rule() -> None:
    shape = TransformerShape.from_config(
        {**TINY, **FAMILIES[7], "num_hidden_layers": 8, "mlp_only_layers": [3]}
    )
    # sparse where (i + 1) % 2 == 0 and i not in [3]: layers 1, 5, 7
    assert shape.num_moe_layers == 3


def test_as_dict_round_trips() -> None:
    for family in FAMILIES:
        shape = TransformerShape.from_config({**TINY, **family})
        assert TransformerShape.from_config(shape.as_dict()) == shape


def test_unknown_model_type_is_counted_with_an_assumption() -> None:
    shape = TransformerShape.from_config({**TINY, "model_type": "granite"})
    assert shape.assumption is not None and "granite" in shape.assumption
    assert TransformerShape.from_config(shape.as_dict()).assumption == shape.assumption


def test_multimodal_configs_are_read_through_text_config() -> None:
    shape = TransformerShape.from_config({"model_type": "llava", "text_config": TINY})
    assert shape.hidden_size == 32


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({**TINY, "kv_lora_rank": 512}, "latent attention"),
        ({k: v for k, v in TINY.items() if k != "hidden_size"}, "hidden_size"),
        ({**TINY, "num_hidden_layers": "four"}, "integer"),
    ],
)
def test_configs_that_cannot_be_counted_are_refused(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ArchitectureError, match=message):
        TransformerShape.from_config(config)
    assert architecture_summary(config) is None


def test_non_config_objects_are_refused() -> None:
    with pytest.raises(ArchitectureError, match="expected a model config"):
        TransformerShape.from_config(42)
