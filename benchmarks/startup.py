"""How long does `llem` take to start? (target: `llem --help` <= 0.25 × `import torch`)

Times `llem --help`, `llem --version`, `import llenergymeasure` and `python -c "import torch"`
side by side: each repeat runs every command once, in a rotating order, as a fresh subprocess
of this interpreter (so the machine's load drifts evenly across them), and the medians are
compared with `import torch`. Bare `python -c pass` is shown for scale.

    python benchmarks/startup.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

TARGET = 0.25  # llem --help / import torch

COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "llem --help": [sys.executable, "-m", "llenergymeasure.cli", "--help"],
    "llem --version": [sys.executable, "-m", "llenergymeasure.cli", "--version"],
    "import llenergymeasure": [sys.executable, "-c", "import llenergymeasure"],
    "import torch": [sys.executable, "-c", "import torch"],
}
REFERENCE = "import torch"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="runs of each command")
    return parser.parse_args()


def wall_s(command: list[str]) -> float:
    """Seconds from spawn to exit of one fresh interpreter (output discarded)."""
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def measure(repeats: int) -> dict[str, list[float]]:
    """Interleaved repeats; one untimed run of each first warms the file cache."""
    names = list(COMMANDS)
    for name in names:
        wall_s(COMMANDS[name])
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(wall_s(COMMANDS[name]))
    return times


def main() -> None:
    args = parse_args()
    times = measure(args.repeats)
    medians = {name: statistics.median(values) for name, values in times.items()}
    reference = medians[REFERENCE]
    print(f"median of {args.repeats} fresh subprocesses ({sys.executable}):")
    for name, median_s in medians.items():
        spread = f"{min(times[name]):.3f}–{max(times[name]):.3f}"
        ratio = median_s / reference
        print(f"  {name:24s} {median_s:6.3f} s  (range {spread} s)  {ratio:.2f} × {REFERENCE}")
    ratio = medians["llem --help"] / reference
    verdict = "ok" if ratio <= TARGET else "over target"
    print(f"ratio llem --help / {REFERENCE}: {ratio:.2f} (target <= {TARGET}: {verdict})")


if __name__ == "__main__":
    main()
