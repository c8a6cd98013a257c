"""GPU smoke test: energy, throughput and latency of a no-weights model on a real GPU.

Runs a random-weights Llama-3.1-8B architecture (no download) in bf16 at several batch sizes,
with every available GPU energy sampler (NVML always; Zeus when installed), growing the prompt
count until each measured window lasts at least 10 s. Prints counter vs integrated energy,
J/token, tokens/s, TTFT and ITL per batch size and sampler.

    python scripts/gpu_smoke.py [--model llama-3.1-8b-arch] [--batch-sizes 1 8 32] [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

import llenergymeasure as llem

MIN_WINDOW_S = 10.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llama-3.1-8b-arch")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-output-tokens", type=int, default=128)
    parser.add_argument("--input-tokens", type=int, default=256)
    parser.add_argument("--out", default="/tmp/llem-gpu-smoke")
    return parser.parse_args()


def samplers() -> list[str]:
    names = ["nvml"]
    if importlib.util.find_spec("zeus") is not None:
        names.append("zeus")
    return names


def config(args: argparse.Namespace, sampler: str, batch: int, n: int) -> dict[str, Any]:
    return {
        "model": args.model,
        "precision": "bf16",
        "dataset": {"source": "synthetic", "synthetic_input_tokens": args.input_tokens},
        "n": n,
        "max_output_tokens": args.max_output_tokens,
        "warmup": {"n_warmup": 2, "max_output_tokens": 8},
        "baseline": {"duration_s": 5.0},
        "energy": {"sampler": sampler},
        "pytorch": {"batch_size": batch, "no_weights": True},
    }


def measure(args: argparse.Namespace, sampler: str, batch: int) -> llem.ExperimentResult:
    """Double the prompt count until the window reaches MIN_WINDOW_S (at most 4 tries)."""
    n = max(2 * batch, 4)
    for _ in range(4):
        result = llem.run(config(args, sampler, batch, n), out_dir=args.out)
        if result.metrics.duration_s >= MIN_WINDOW_S:
            break
        n *= 2
    return result


def cross_check(result: llem.ExperimentResult) -> str:
    keys = ("counter", "integrated", "cross-check")
    lines = [note for note in result.energy.notes if any(key in note for key in keys)]
    return " | ".join(lines) or "—"


def row(sampler: str, batch: int, result: llem.ExperimentResult) -> str:
    m, e = result.metrics, result.energy
    bound = f"±{e.uncertainty_j:.2f}" if e.uncertainty_j is not None else ""
    return (
        f"{sampler:6} bs={batch:<3} n={m.n_requests:<4} window={m.duration_s:6.1f}s "
        f"E={e.energy_total_j or float('nan'):9.1f}{bound} J "
        f"J/tok={m.energy_per_output_token_j or float('nan'):.4f} "
        f"(adj {m.energy_per_output_token_adjusted_j or float('nan'):.4f}) "
        f"tok/s={m.output_tokens_per_s or 0:8.1f} "
        f"TTFT={(m.ttft.mean_s or 0) * 1e3:7.1f}ms ITL={(m.itl.median_s or 0) * 1e3:6.2f}ms "
        f"MFU={result.flops.mfu if result.flops and result.flops.mfu else float('nan'):.3f}"
    )


def main() -> None:
    args = parse_args()
    rows = []
    for sampler in samplers():
        for batch in args.batch_sizes:
            result = measure(args, sampler, batch)
            rows.append(row(sampler, batch, result))
            print(rows[-1], flush=True)
            print(f"    cross-check: {cross_check(result)}", flush=True)
            for warning in result.warnings:
                print(f"    warning {warning.code}: {warning.message}", flush=True)
    print("\nsummary")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
