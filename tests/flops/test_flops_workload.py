"""Prefill/decode FLOPs and bytes moved, checked against numbers worked out by hand."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from llenergymeasure.flops import (
    TransformerShape,
    decode_flops,
    prefill_flops,
    workload_bytes,
    workload_flops,
)
from llenergymeasure.flops.workload import expected_experts_read, weight_bytes_per_pass
from llenergymeasure.results.records import RequestRecord

# d=8, 2 layers, 2 heads x 4 (d_attn = 8), 1 KV head, ff 16, vocab 10, tied embeddings.
#   attention per layer: q 8x8 + k,v 2 x 8x4 + o 8x8 = 64 + 64 + 64 = 192
#   MLP per layer: 3 x 8 x 16 = 384;  norms per layer: 2 x 8 = 16   -> 592 per layer
#   N (non-embedding) = 2 x 592 + final norm 8 = 1192;  V·d = 80;  L·d_attn = 16
TINY = TransformerShape.from_config(
    {
        "model_type": "llama",
        "hidden_size": 8,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "intermediate_size": 16,
        "vocab_size": 10,
        "tie_word_embeddings": True,
    }
)


@dataclass
class Counts:
    input_tokens: int
    output_tokens: int


def test_tiny_shape_by_hand() -> None:
    params = TINY.parameters()
    assert (params.non_embedding, params.output_projection, params.lm_head) == (1192, 80, 0)
    assert params.total == 1192 + 80


def test_prefill_by_hand() -> None:
    # 2·N·T + 2·V·d + 2·L·d_attn·T·(T+1) at T = 3:  7152 + 160 + 2·16·3·4 = 7152 + 160 + 384
    assert prefill_flops(TINY, 3) == 7696
    assert prefill_flops(TINY, 0) == 0


def test_decode_by_hand() -> None:
    # T_in = 3, T_out = 4: decode passes for tokens 2, 3, 4 with contexts c = 4, 5, 6;
    # each 2·N + 2·V·d + 4·L·d_attn·c = 2384 + 160 + 64·c  ->  2800 + 2864 + 2928
    assert decode_flops(TINY, 3, 4) == 8592
    assert decode_flops(TINY, 3, 1) == 0  # the only token came from the prefill
    assert decode_flops(TINY, 3, 0) == 0


def test_workload_sums_requests_and_takes_request_records() -> None:
    records = [
        RequestRecord(index=0, input_tokens=3, output_tokens=4, submit_s=0.0),
        RequestRecord(index=1, input_tokens=3, output_tokens=0, submit_s=0.0),
    ]
    flops = workload_flops(TINY, records)
    assert flops.prefill == 2 * 7696  # a request that generated nothing still ran its prefill
    assert flops.decode == 8592
    assert flops.total == 2 * 7696 + 8592


def test_long_sequences_approach_the_2n_per_token_rule() -> None:
    # Kaplan et al.: forward ≈ 2N per token when the context is short against d_model
    shape = TransformerShape.from_config(
        {
            "model_type": "llama",
            "hidden_size": 4096,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "intermediate_size": 14336,
            "vocab_size": 128256,
        }
    )
    n = shape.parameters().non_embedding_active + shape.parameters().output_projection
    per_token = decode_flops(shape, 16, 2)  # one decode step, context 17
    assert per_token == pytest.approx(2 * n, rel=1e-3)


def test_bytes_single_request_by_hand() -> None:
    # fp16: weights per pass (N + V·d)·2 = 1272·2 = 2544 B; one token's K and V: 2·L·1·4·2 = 32 B
    # 1 prefill + 3 decode passes -> 4·2544 = 10176; KV: 3 written in prefill + (4+5+6) in
    # decode = 18 entries -> 576;  total 10752
    assert workload_bytes(TINY, [Counts(3, 4)], 2.0) == 10752


def test_bytes_static_batch_shares_weight_reads() -> None:
    # one group of 2: 1 prefill + max(4, 2) - 1 = 3 decode passes -> 10176 of weights;
    # KV entries: 3 + (4+5+6) for the first, 2 + 3 for the second -> 23 x 32 = 736
    assert workload_bytes(TINY, [Counts(3, 4), Counts(2, 2)], 2.0, batch_size=2) == 10176 + 736
    # unbatched, the second request reads the weights twice more on its own
    assert workload_bytes(TINY, [Counts(3, 4), Counts(2, 2)], 2.0) == 10752 + 2 * 2544 + 5 * 32


def test_kv_cache_dtype_can_differ() -> None:
    # fp8 KV cache halves the 576 B of KV traffic of the single-request case
    assert workload_bytes(TINY, [Counts(3, 4)], 2.0, kv_bytes_per_element=1.0) == 10176 + 288


def test_bad_batch_size_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        workload_bytes(TINY, [Counts(1, 1)], 2.0, batch_size=0)


def test_moe_reads_only_the_experts_its_tokens_use() -> None:
    assert expected_experts_read(4, 2, 1) == pytest.approx(2.0)
    assert expected_experts_read(4, 2, 2) == pytest.approx(4 * (1 - 0.25))
    assert expected_experts_read(4, 2, 10_000) == pytest.approx(4.0)
    moe = TransformerShape.from_config(
        {
            "model_type": "mixtral",
            "hidden_size": 8,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "intermediate_size": 16,
            "vocab_size": 10,
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
        }
    )
    params = moe.parameters()
    everything = params.non_embedding + params.output_projection
    assert weight_bytes_per_pass(moe, 10_000, 1.0) == pytest.approx(everything)
    # one token reads 2 of 4 experts in each of the 2 layers
    unread = 2 * 2 * (3 * 8 * 16)
    assert weight_bytes_per_pass(moe, 1, 1.0) == pytest.approx(everything - unread)
