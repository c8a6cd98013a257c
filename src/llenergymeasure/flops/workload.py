"""Analytical FLOPs and memory traffic of generating for a set of requests.

Notation: N = active non-embedding parameters (per token; only the routed experts of an MoE),
V·d = the output projection (logits matmul), L = layers, d_attn = query heads x head width,
T_in = prompt tokens, T_out = generated tokens. One multiply-add is 2 FLOPs.

**FLOPs** (model FLOPs, in the sense of PaLM's MFU: what the model needs, not what the hardware
ran — padding, recomputation and rows that keep running after their EOS are not counted):

- Prefill, one pass over the prompt, which also yields the first output token::

      prefill(T_in) = 2·N·T_in + 2·V·d + 2·L·d_attn·T_in·(T_in + 1)

  Linear layers cost 2·N per token (Kaplan et al. 2020, "Scaling Laws for Neural Language
  Models", Table 1: C_forward ≈ 2N + 2·n_layer·n_ctx·d_attn). The logits are needed for the
  last prompt position only (transformers and vLLM compute just that row), hence 2·V·d once.
  Attention: the query at position i (1-based) meets i keys under the causal mask, costing
  2·i·d_attn for QK^T and 2·i·d_attn for AV per layer; summed over i = 1..T the total is
  2·L·d_attn·T·(T+1). This is the causal half of the 4·L·T²·d_attn that Hoffmann et al. 2022
  ("Chinchilla", Appendix F: "logits" and "softmax @ value" terms) and Chowdhery et al. 2022
  (PaLM, Appendix B: 6N + 12·L·H·Q·T per training token, a third of it forward) count for a
  full unmasked sequence. Softmax, norms, rotary embeddings and activations are not counted
  (under 1% for these models at ordinary context lengths).
- Decode, one pass per further output token k = 1..T_out−1, each with a context of
  c = T_in + k keys (the new token included)::

      decode_step(c) = 2·N + 2·V·d + 4·L·d_attn·c

  so, with S = T_out − 1 decode passes::

      decode(T_in, T_out) = S·(2·N + 2·V·d) + 4·L·d_attn·(S·T_in + S·(S+1)/2)

  A request that generated nothing still paid for its prefill; the forward pass that produced
  an EOS (not counted as an output token) is not counted.

**Bytes moved** (for MBU; Pope et al. 2022, "Efficiently Scaling Transformer Inference", §2: each
decode step must load the weights and the KV cache from HBM; Databricks 2023, "LLM Inference
Performance Engineering: Best Practices": MBU = (parameter bytes + KV-cache bytes) per step /
time per step / peak bandwidth):

- Weights are read once per forward pass and shared by every sequence of the batch: the
  non-embedding parameters plus the output projection (the embedding lookup reads a few rows
  only). For an MoE, a pass over t tokens reads the experts at least one token was routed to,
  E·(1 − (1 − k/E)^t) of them in expectation under uniform routing.
- Forward passes follow static batching, as the pytorch backend does: requests are taken in
  order in groups of ``batch_size``; a group costs one prefill pass and max(T_out) − 1 decode
  passes. For continuous batching (vLLM) pass its concurrency for an estimate.
- KV cache: each token's K and V are written once (2·L·n_kv·head_dim elements), and decode step
  k of a request reads the K and V of its T_in + k − 1 earlier tokens and writes the new one:
  (T_in + k) token-entries per step.
- Activations, the KV reads inside a prefill (tiled in on-chip memory by fused attention) and
  logits are not counted: the figure is a lower bound on real traffic, and the estimate to
  compare against the bandwidth roof.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from llenergymeasure.flops.architecture import TransformerShape


class TokenCounts(Protocol):
    """What the counts need from a request: ``RequestRecord`` satisfies it."""

    @property
    def input_tokens(self) -> int:
        """Prompt tokens (padding excluded)."""
        ...

    @property
    def output_tokens(self) -> int:
        """Generated tokens (EOS and padding excluded)."""
        ...


@dataclass(frozen=True)
class WorkloadFlops:
    """Model FLOPs of a workload, split by phase."""

    prefill: int
    decode: int

    @property
    def total(self) -> int:
        """Prefill plus decode FLOPs."""
        return self.prefill + self.decode


def prefill_flops(shape: TransformerShape, input_tokens: int) -> int:
    """FLOPs of the prefill pass over ``input_tokens`` tokens (see the module docstring)."""
    if input_tokens <= 0:
        return 0
    params = shape.parameters()
    linear = 2 * params.non_embedding_active * input_tokens + 2 * params.output_projection
    attention = 2 * shape.num_hidden_layers * shape.attention_width * input_tokens
    return linear + attention * (input_tokens + 1)


def decode_flops(shape: TransformerShape, input_tokens: int, output_tokens: int) -> int:
    """FLOPs of the decode passes that produce output tokens 2..``output_tokens``."""
    steps = max(output_tokens - 1, 0)
    if steps == 0:
        return 0
    params = shape.parameters()
    per_step = 2 * params.non_embedding_active + 2 * params.output_projection
    # sum of contexts c = T_in + k for k = 1..steps
    contexts = steps * input_tokens + steps * (steps + 1) // 2
    return steps * per_step + 4 * shape.num_hidden_layers * shape.attention_width * contexts


def workload_flops(shape: TransformerShape, requests: Iterable[TokenCounts]) -> WorkloadFlops:
    """Prefill and decode FLOPs summed over ``requests``."""
    prefill = decode = 0
    for request in requests:
        prefill += prefill_flops(shape, request.input_tokens)
        decode += decode_flops(shape, request.input_tokens, request.output_tokens)
    return WorkloadFlops(prefill=prefill, decode=decode)


def kv_bytes_per_token(shape: TransformerShape, bytes_per_element: float) -> float:
    """Bytes of one token's K and V over all layers."""
    return 2 * shape.num_hidden_layers * shape.kv_width * bytes_per_element


def expected_experts_read(num_experts: int, experts_per_token: int, tokens: int) -> float:
    """Expected distinct experts hit by ``tokens`` tokens routed uniformly to k of E each."""
    if num_experts <= 0 or tokens <= 0:
        return 0.0
    miss = 1.0 - min(experts_per_token, num_experts) / num_experts
    return num_experts * (1.0 - miss**tokens)


def weight_bytes_per_pass(shape: TransformerShape, tokens: int, bytes_per_element: float) -> float:
    """Bytes of weights one forward pass over ``tokens`` tokens reads (see module docstring)."""
    params = shape.parameters()
    weights = float(params.non_embedding + params.output_projection)
    if shape.is_moe:
        d = shape.hidden_size
        expert = 3 * d * shape.moe_intermediate_size
        unread = shape.num_experts - expected_experts_read(
            shape.num_experts, shape.num_experts_per_tok, tokens
        )
        weights -= shape.num_moe_layers * unread * expert
    return weights * bytes_per_element


def workload_bytes(
    shape: TransformerShape,
    requests: Sequence[TokenCounts],
    bytes_per_element: float,
    batch_size: int = 1,
    kv_bytes_per_element: float | None = None,
) -> float:
    """Bytes moved between memory and the chip to serve ``requests`` (see module docstring).

    Args:
        shape: the model.
        requests: per-request token counts, in the order they were batched.
        bytes_per_element: bytes of one weight (4 for fp32, 2 for fp16/bf16, 1 for fp8).
        batch_size: sequences that share each weight read (static batching).
        kv_bytes_per_element: bytes of one KV-cache element (default: ``bytes_per_element``).

    Raises:
        ValueError: ``batch_size`` is below 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    kv_token = kv_bytes_per_token(shape, kv_bytes_per_element or bytes_per_element)
    total = 0.0
    for start in range(0, len(requests), batch_size):
        group = requests[start : start + batch_size]
        prompt_tokens = sum(r.input_tokens for r in group)
        total += weight_bytes_per_pass(shape, prompt_tokens, bytes_per_element)
        decode_passes = max(max(r.output_tokens for r in group) - 1, 0)
        total += decode_passes * weight_bytes_per_pass(shape, len(group), bytes_per_element)
        for r in group:
            steps = max(r.output_tokens - 1, 0)
            kv_entries = r.input_tokens + steps * r.input_tokens + steps * (steps + 1) // 2
            total += kv_entries * kv_token
    return total
