"""The workshop's "the MLP is ok but not so great", measured: `neuralab compare` on
Fashion-MNIST with its default budget, three seeds. Writes the table to docs/benchmarks.md.

    python bench/bench_compare.py      # ~20 min on a 2-core CPU

It runs the very command a user types, so the table in the docs is that command's output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _doc import DATASETS, machine, update_section  # noqa: E402

MODELS = "mlp,cnn,lenet5"
TARGETS = {"mlp": 88.0, "cnn": 92.0}  # test accuracy floors, percent (issue: MLP vs CNN)


def main() -> None:
    command = ["neuralab", "compare", "--models", MODELS, "--data", "fashion-mnist", "--seeds", "3"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "compare"
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "neuralab", *command[1:], "--data-dir", str(DATASETS / "fashion-mnist"),
                        "--out", str(out)], check=True)
        minutes = (time.perf_counter() - t0) / 60
        table = (out / "compare.md").read_text().strip()
        means = {}
        for line in (out / "compare.csv").read_text().splitlines()[1:]:
            model, _, _, mean, *_ = line.split(",")
            means[model] = float(mean) * 100
    verdicts = [f"`{m}` {means[m]:.2f}% (floor {floor:.0f}%): **{'met' if means[m] >= floor else 'not met'}**"
                for m, floor in TARGETS.items()]
    lines = [
        "## MLP against CNN: `neuralab compare`",
        "",
        f"`{' '.join(command)}` (default budget), run by `python bench/bench_compare.py` on {machine()}, "
        f"{time.strftime('%Y-%m-%d')}, load average {load:.1f} at the start, {minutes:.0f} min in all:",
        "",
        table,
        "",
        "Mean test accuracy against the issue's floors: " + "; ".join(verdicts) + ".",
    ]
    update_section("bench_compare", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
