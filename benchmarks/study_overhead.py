"""What does a study add per experiment beyond model load and inference? (target < 2 s)

Runs a small study of a tiny random model (built here, nothing downloaded) and, per run,
subtracts what the experiment itself reports (model load, warmup, thermal floor, baseline
and the measured window) from the wall time the study runner spent on it (spawning the
child, importing the libraries, bookkeeping and writing results).

    python benchmarks/study_overhead.py [--experiments 2] [--cycles 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import llenergymeasure as llem
from llenergymeasure.testing.models import build_tiny_llama


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=2)
    parser.add_argument("--cycles", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_llama(Path(tmp) / "model")
        study = llem.run(
            {
                "name": "overhead",
                "model": str(model),
                "n": 4,
                "max_output_tokens": 4,
                "chat_template": False,
                "warmup": {"n_warmup": 1, "max_output_tokens": 2},
                "baseline": {"enabled": False},
                "energy": {"sampler": "null"},
                "sweep": {"pytorch.batch_size": list(range(1, args.experiments + 1))},
                "execution": {"n_cycles": args.cycles},
            },
            out_dir=Path(tmp) / "out",
        )
        overheads = []
        for entry in study.entries:
            result = llem.load_result(Path(study.output_dir or "") / (entry.result_dir or ""))
            assert entry.started_at and entry.ended_at
            wall_s = (entry.ended_at - entry.started_at).total_seconds()
            t = result.timings
            inside_s = t.model_load_s + t.warmup_s + t.thermal_floor_s + t.window_s
            overheads.append(wall_s - inside_s)
            print(
                f"{entry.experiment_name} cycle {entry.cycle_index + 1}: wall {wall_s:.2f} s, "
                f"experiment {inside_s:.2f} s, study overhead {wall_s - inside_s:.2f} s"
            )
    median_s = statistics.median(overheads)
    print(f"median study overhead per experiment: {median_s:.2f} s (target < 2 s)")


if __name__ == "__main__":
    main()
