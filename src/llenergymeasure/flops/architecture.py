"""The shape of a decoder-only transformer, read from its Hugging Face config, and its parameters.

Counts are exact (they equal ``sum(p.numel())`` of the transformers model; the tests check this)
for the Llama family and its close relatives: ``llama``, ``mistral``, ``qwen2``, ``qwen3``,
``mixtral``, ``qwen2_moe`` and ``qwen3_moe``. Any other ``model_type`` is counted as a
Llama-style decoder (gated MLP, RMSNorm, rotary positions, biases only where the config says),
and the shape says so in :attr:`TransformerShape.assumption`. Architectures whose attention is
not multi-head/grouped-query attention (DeepSeek's multi-head latent attention) are refused rather
than miscounted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llenergymeasure.errors import LLEMError

EXACT_MODEL_TYPES = frozenset(
    {"llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe"}
)
_QK_NORM_TYPES = frozenset({"qwen3", "qwen3_moe"})
# Model types whose q/k/v projections carry a bias unless the config says otherwise (qwen2
# hard-codes it; qwen2_moe has a `qkv_bias` key defaulting to true).
_QKV_BIAS_TYPES = frozenset({"qwen2", "qwen2_moe"})
_NO_O_BIAS_TYPES = frozenset({"qwen2", "qwen2_moe", "mistral", "mixtral"})


class ArchitectureError(LLEMError):
    """A model config cannot be read as a decoder-only transformer this module can count."""


@dataclass(frozen=True)
class TransformerShape:
    """Everything the FLOP and byte counts need from a model config.

    Field names follow Hugging Face config keys where one exists, so :meth:`as_dict` output is
    itself a valid input to :meth:`from_config`.

    Attributes:
        model_type: the config's ``model_type`` (None when absent).
        hidden_size: d_model.
        num_hidden_layers: decoder layers.
        num_attention_heads: query heads.
        num_key_value_heads: key/value heads (grouped-query attention when fewer than queries).
        head_dim: width of one head.
        intermediate_size: width of the dense (gated) MLP.
        vocab_size: rows of the embedding and the output projection.
        tie_word_embeddings: the output projection reuses the input embedding.
        qkv_bias: q, k and v projections have biases.
        o_proj_bias: the attention output projection has a bias.
        mlp_bias: MLP projections have biases.
        qk_norm: per-head RMSNorm on queries and keys (Qwen3).
        num_experts: routed experts per MoE layer (0 for a dense model).
        num_experts_per_tok: experts each token is routed to.
        moe_intermediate_size: width of one expert's gated MLP.
        shared_expert_intermediate_size: width of an always-active shared expert (0 = none).
        num_moe_layers: layers whose MLP is a mixture of experts; the rest are dense.
        assumption: why the counts may be approximate, or None when they are exact.
    """

    model_type: str | None
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_proj_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    num_moe_layers: int = 0
    assumption: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | Any) -> TransformerShape:
        """Read the shape from a config dict, a ``PretrainedConfig``, or :meth:`as_dict` output.

        Multimodal configs are read through their ``text_config``. A ``PretrainedConfig`` carries
        its class's defaults; a raw dict (a config.json) should spell out what its model class
        would default (published config.json files do): a missing ``head_dim`` is read as
        hidden_size / heads and a missing ``num_key_value_heads`` as the query heads.

        Raises:
            ArchitectureError: a required field is missing or the attention type is unsupported.
        """
        values = _as_mapping(config)
        if "hidden_size" not in values and "text_config" in values:
            values = _as_mapping(values["text_config"])
        if values.get("kv_lora_rank") is not None:
            raise ArchitectureError(
                "multi-head latent attention (DeepSeek-style kv_lora_rank) is not modelled"
            )
        model_type = values.get("model_type")
        d = _required_int(values, "hidden_size")
        layers = _required_int(values, "num_hidden_layers")
        heads = _required_int(values, "num_attention_heads")
        kv_heads = _optional_int(values, "num_key_value_heads") or heads
        head_dim = _optional_int(values, "head_dim") or d // heads
        experts = _optional_int(values, "num_experts") or _optional_int(values, "num_local_experts")
        ff = _required_int(values, "intermediate_size")
        return cls(
            model_type=model_type,
            hidden_size=d,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            head_dim=head_dim,
            intermediate_size=ff,
            vocab_size=_required_int(values, "vocab_size"),
            tie_word_embeddings=bool(values.get("tie_word_embeddings", False)),
            qkv_bias=_flag(values, "qkv_bias", _default_qkv_bias(values, model_type)),
            o_proj_bias=_flag(
                values,
                "o_proj_bias",
                model_type not in _NO_O_BIAS_TYPES and bool(values.get("attention_bias", False)),
            ),
            mlp_bias=bool(values.get("mlp_bias", False)),
            qk_norm=_flag(values, "qk_norm", model_type in _QK_NORM_TYPES),
            num_experts=experts,
            num_experts_per_tok=(_optional_int(values, "num_experts_per_tok") if experts else 0),
            moe_intermediate_size=(
                (_optional_int(values, "moe_intermediate_size") or ff) if experts else 0
            ),
            shared_expert_intermediate_size=(
                _optional_int(values, "shared_expert_intermediate_size") if experts else 0
            ),
            num_moe_layers=_moe_layers(values, layers, experts),
            assumption=_assumption(values, model_type),
        )

    def as_dict(self) -> dict[str, Any]:
        """The shape as a JSON-ready dict that :meth:`from_config` reads back unchanged."""
        return dataclasses.asdict(self)

    @property
    def is_moe(self) -> bool:
        """Whether some layers route tokens to experts."""
        return self.num_experts > 0 and self.num_moe_layers > 0

    @property
    def attention_width(self) -> int:
        """Query heads x head width: the inner dimension of QK^T and AV (d_attn)."""
        return self.num_attention_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        """Key/value heads x head width: one token's K (or V) per layer, in elements."""
        return self.num_key_value_heads * self.head_dim

    def parameters(self) -> ParameterCounts:
        """Parameter counts of this shape (see :class:`ParameterCounts`)."""
        d = self.hidden_size
        embedding = self.vocab_size * d
        dense_layers = self.num_hidden_layers - self.num_moe_layers
        common = self.num_hidden_layers * (self._attention_parameters() + 2 * d)  # + 2 norms
        dense_mlp = dense_layers * _gated_mlp(d, self.intermediate_size, self.mlp_bias)
        moe_total, moe_active = self._moe_parameters()
        non_embedding = common + dense_mlp + self.num_moe_layers * moe_total + d  # + final norm
        active = common + dense_mlp + self.num_moe_layers * moe_active + d
        return ParameterCounts(
            embedding=embedding,
            lm_head=0 if self.tie_word_embeddings else embedding,
            non_embedding=non_embedding,
            non_embedding_active=active,
        )

    def _attention_parameters(self) -> int:
        d, q, kv = self.hidden_size, self.attention_width, self.kv_width
        weights = d * q + 2 * d * kv + q * d
        biases = (q + 2 * kv if self.qkv_bias else 0) + (d if self.o_proj_bias else 0)
        norms = 2 * self.head_dim if self.qk_norm else 0
        return weights + biases + norms

    def _moe_parameters(self) -> tuple[int, int]:
        """(all parameters, parameters one token uses) of one MoE layer's MLP."""
        if not self.num_experts:
            return 0, 0
        d = self.hidden_size
        expert = _gated_mlp(d, self.moe_intermediate_size, bias=False)
        router = d * self.num_experts
        shared = 0
        if self.shared_expert_intermediate_size:
            # The shared expert is a dense gated MLP with a sigmoid gate (Linear(d, 1)).
            shared = _gated_mlp(d, self.shared_expert_intermediate_size, bias=False) + d
        total = router + self.num_experts * expert + shared
        active = router + self.num_experts_per_tok * expert + shared
        return total, active


@dataclass(frozen=True)
class ParameterCounts:
    """Parameters of a decoder-only transformer.

    Attributes:
        embedding: the input embedding table (vocab x d).
        lm_head: a separate output projection (vocab x d), 0 when tied to the embedding.
        non_embedding: every other parameter (layers, norms; all experts of an MoE) —
            Kaplan et al.'s N.
        non_embedding_active: the non-embedding parameters one token passes through (only its
            experts of an MoE); equals ``non_embedding`` for a dense model.
    """

    embedding: int
    lm_head: int
    non_embedding: int
    non_embedding_active: int

    @property
    def total(self) -> int:
        """All parameters, as ``sum(p.numel() for p in model.parameters())`` counts them."""
        return self.embedding + self.lm_head + self.non_embedding

    @property
    def output_projection(self) -> int:
        """Weights of the logits matmul (vocab x d), whether tied or not."""
        return self.embedding


def _as_mapping(config: Mapping[str, Any] | Any) -> Mapping[str, Any]:
    if isinstance(config, Mapping):
        return config
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        if isinstance(result, Mapping):
            return result
    raise ArchitectureError(
        f"expected a model config (a dict or a transformers PretrainedConfig), got "
        f"{type(config).__name__}"
    )


def _required_int(values: Mapping[str, Any], key: str) -> int:
    value = _optional_int(values, key)
    if value <= 0:
        raise ArchitectureError(f"the model config has no positive '{key}'")
    return value


def _optional_int(values: Mapping[str, Any], key: str) -> int:
    value = values.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArchitectureError(f"'{key}' in the model config must be an integer, got {value!r}")
    return value


def _flag(values: Mapping[str, Any], key: str, default: bool) -> bool:
    value = values.get(key)
    return default if value is None else bool(value)


def _default_qkv_bias(values: Mapping[str, Any], model_type: str | None) -> bool:
    return model_type in _QKV_BIAS_TYPES or bool(values.get("attention_bias", False))


def _gated_mlp(d: int, width: int, bias: bool) -> int:
    # gate and up: d -> width; down: width -> d (SwiGLU, as in every model type counted exactly)
    return 3 * d * width + ((2 * width + d) if bias else 0)


def _moe_layers(values: Mapping[str, Any], layers: int, experts: int) -> int:
    explicit = values.get("num_moe_layers")
    if explicit is not None:
        return _optional_int(values, "num_moe_layers")
    if not experts:
        return 0
    step = _optional_int(values, "decoder_sparse_step") or 1
    dense_only = set(values.get("mlp_only_layers") or [])
    # Qwen2-MoE / Qwen3-MoE rule; Mixtral has neither key, so every layer is sparse.
    return sum(1 for i in range(layers) if i not in dense_only and (i + 1) % step == 0)


def _assumption(values: Mapping[str, Any], model_type: str | None) -> str | None:
    if "assumption" in values:
        explicit = values["assumption"]
        return None if explicit is None else str(explicit)
    if model_type in EXACT_MODEL_TYPES:
        return None
    return (
        f"model_type '{model_type}' counted as a Llama-style decoder (gated MLP, RMSNorm, "
        "rotary positions); parameter and FLOP counts may be approximate"
    )


def architecture_summary(config: Mapping[str, Any] | Any) -> dict[str, Any] | None:
    """The shape of a model config as a dict (for results), or None when it cannot be counted.

    The dict is a valid ``model_config`` for
    :func:`~llenergymeasure.flops.compute_flops_metrics`.
    """
    try:
        return TransformerShape.from_config(config).as_dict()
    except ArchitectureError:
        return None
