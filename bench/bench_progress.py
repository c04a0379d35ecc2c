"""What progress.json costs the training step: LeNet-5 epochs on real Fashion-MNIST with the
live file (rewritten every 0.5 s) and without it, interleaved in one process, and the cost of
one Progress.step call. Writes its block of docs/benchmarks.md.

    python bench/bench_progress.py            # about two minutes on 2 cores
    python bench/bench_progress.py --rounds 7 --no-write
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _doc import DATASETS, machine, update_section  # noqa: E402
from helpers import idx_subset  # noqa: E402

import torch  # noqa: E402

from neuralab.data import load_image_data  # noqa: E402
from neuralab.models import build_model  # noqa: E402
from neuralab.training import trainer as trainer_module  # noqa: E402
from neuralab.training.preprocess import Preprocess  # noqa: E402
from neuralab.training.progress import Progress  # noqa: E402
from neuralab.training.seeds import seed_everything  # noqa: E402
from neuralab.training.trainer import CLASSIFICATION, TrainConfig, Trainer  # noqa: E402


class WithoutFile(Progress):
    """The trainer's progress as it was before progress.json: nothing written."""

    def __init__(self, *args, run_dir=None, **kwargs):
        super().__init__(*args, run_dir=None, **kwargs)


def epoch_seconds(x, y, folder: Path, progress_class, epochs: int) -> list[float]:
    trainer_module.Progress = progress_class
    try:
        seed_everything(0)
        model = build_model("lenet5", (1, 28, 28), 10)
        trainer = Trainer(model, TrainConfig(epochs=epochs, batch_size=128, threads=2), CLASSIFICATION,
                          run_dir=folder, verbose=False)
        return [r["seconds"] for r in trainer.fit(x, y)]
    finally:
        trainer_module.Progress = Progress


def step_cost(folder: Path | None, calls: int = 200_000) -> float:
    """Microseconds per Progress.step call, writes included (every 0.5 s)."""
    bar = Progress(1, calls, enabled=False, run_dir=folder)
    bar.start_epoch(1, calls)
    loss = torch.tensor(1.0)
    t0 = time.perf_counter()
    for _ in range(calls):
        bar.step(loss, 128, 128)
    took = time.perf_counter() - t0
    bar.close()
    return took / calls * 1e6


def write_cost(folder: Path, writes: int = 500) -> float:
    """Milliseconds per progress.json write (a whole file renamed into place, no fsync)."""
    bar = Progress(1, 10, enabled=False, run_dir=folder)
    bar.start_epoch(1, 10)
    t0 = time.perf_counter()
    for _ in range(writes):
        bar._write(time.perf_counter())
    took = time.perf_counter() - t0
    bar.close()
    return took / writes * 1e3


def durable_write_cost(folder: Path, writes: int = 100) -> float:
    """Milliseconds per write of the same file with fsync, as the run's other files are written."""
    from neuralab.files import write_json

    t0 = time.perf_counter()
    for step in range(writes):
        write_json(folder / "durable.json", {"step": step})
    return (time.perf_counter() - t0) / writes * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--train", type=int, default=6000, help="training images")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = load_image_data("fashion-mnist", idx_subset(DATASETS / "fashion-mnist", tmp / "data", args.train, 100),
                               val_fraction=0.0)
        pre = Preprocess.fit(data.train.x)
        x, y = pre(data.train.x), torch.from_numpy(data.train.y)
        seconds = {"with progress.json": [], "without": []}
        for r in range(args.rounds):
            variants = list(seconds.items()) if r % 2 == 0 else list(seconds.items())[::-1]
            for name, out in variants:
                folder = tmp / f"run-{r}-{name[:4]}"
                out += epoch_seconds(x, y, folder, Progress if name != "without" else WithoutFile, epochs=2)
        calls = {"file": step_cost(tmp / "calls"), "none": step_cost(None)}
        write_ms = write_cost(tmp / "writes")
        durable_ms = durable_write_cost(tmp)
    with_file, without = (statistics.median(v) for v in seconds.values())
    ratios = [a / b for a, b in zip(*seconds.values())]
    ratio = statistics.median(ratios)
    steps = -(-args.train // 128)
    # What the file can cost at most: the extra per call, plus two writes per second of training.
    bound = ((calls["file"] - calls["none"]) * 1e-6 * steps + 2 * with_file * write_ms * 1e-3) / with_file
    lines = [
        f"Measured by `python bench/bench_progress.py --rounds {args.rounds}` on {machine()}, "
        f"{time.strftime('%Y-%m-%d')}, load average {load:.1f} at the start (the machine was shared: read the "
        "ratio, not the seconds).",
        "",
        "| LeNet-5 epoch on Fashion-MNIST | median seconds | epochs |",
        "|---|---|---|",
        f"| with progress.json ({steps} steps, rewritten every 0.5 s) | {with_file:.3f} | {len(seconds['with progress.json'])} |",
        f"| without (as before) | {without:.3f} | {len(seconds['without'])} |",
        "",
        f"One `Progress.step` call costs {calls['file']:.2f} µs with the file (its writes, every 0.5 s, "
        f"included) and {calls['none']:.2f} µs without; one write of progress.json takes {write_ms:.3f} ms "
        f"(with fsync, as the run's other files are written: {durable_ms:.1f} ms, which is why it has none). "
        f"Against {with_file / steps * 1e3:.1f} ms for a LeNet-5 step of 128 images here, the file costs at most "
        f"**{bound * 100:.3f}%** of an epoch (the extra per step, plus two writes a second). The paired epochs "
        f"measure the same thing through the machine's noise: median ratio with / without {ratio:.3f}, "
        f"pairs from {min(ratios):.3f} to {max(ratios):.3f}.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        update_section("bench_progress", "## Live progress file (progress.json)\n\n" + text)


if __name__ == "__main__":
    main()
