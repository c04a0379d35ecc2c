"""Benchmark: one training epoch of the workshop's stacked LSTM on 20,000 windows of 60
steps, batch 64, with neuralab's trainer against a plain PyTorch loop (and TF-Keras
when it is installed; it is not a dependency of neuralab).

    LSTM(128, return_sequences=True) -> LSTM(64) -> Dense(1), Adam, MSE

The two PyTorch loops alternate epoch by epoch, so that a machine shared with other
work slows both alike; the medians and their ratio come from the same run. The figures
go to their own block of docs/benchmarks.md (nothing else in the file is touched).

    python bench/bench_lstm.py                 # 3 epochs of each, writes docs/benchmarks.md
    python bench/bench_lstm.py --epochs 1 --windows 2000 --no-write   # a quick look
    python bench/bench_lstm.py --options       # also time threads x oneDNN for the trainer

For the TF-Keras row, run it from the environment that has TensorFlow beside neuralab
(TensorFlow is for this comparison only):

    make tfenv && .tfenv/bin/python bench/bench_lstm.py --options
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from _doc import machine, update_section  # noqa: E402
from neuralab.forecasting.models import ForecastNetwork  # noqa: E402
from neuralab.training.trainer import REGRESSION, TrainConfig, Trainer  # noqa: E402

KERAS_REFERENCE = 15.0  # s/epoch measured on this machine for the issue (TF-Keras, CPU)
PLAIN_REFERENCE = 5.5   # s/epoch of a plain PyTorch loop, same measurement
TARGET = KERAS_REFERENCE / 2


def make_data(windows: int, steps: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of a noisy sine: (N, steps, 1) inputs, (N, 1) next values."""
    rng = np.random.default_rng(seed)
    t = np.arange(windows + steps + 1)
    series = (np.sin(2 * np.pi * t / 50) + 0.1 * rng.standard_normal(len(t))).astype(np.float32)
    idx = np.arange(windows)[:, None] + np.arange(steps)
    return torch.from_numpy(series[idx][..., None]), torch.from_numpy(series[idx[:, -1] + 1][:, None])


def model(seed: int = 0) -> ForecastNetwork:
    torch.manual_seed(seed)  # the workshop's stack alone: the speed of the trainer, not the recipe
    return ForecastNetwork("lstm", 1, [128, 64], 1, lookback=60, dropout=0.0, recipe="plain")


class PlainLoop:
    """The loop a PyTorch tutorial writes: shuffle, slice, forward, backward, step."""

    def __init__(self, x, y, batch: int):
        self.x, self.y, self.batch = x, y, batch
        self.model = model()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss = torch.nn.MSELoss()

    def epoch(self) -> float:
        t0 = time.perf_counter()
        self.model.train()
        order = torch.randperm(len(self.x))
        for start in range(0, len(self.x), self.batch):
            i = order[start:start + self.batch]
            self.opt.zero_grad()
            loss = self.loss(self.model(self.x[i]), self.y[i])
            loss.backward()
            self.opt.step()
        return time.perf_counter() - t0


class TrainerLoop:
    """neuralab's trainer with the forecasting defaults (clipping, schedule, metrics).
    Each call is one ``fit`` of one epoch; the time is the trainer's own epoch record."""

    def __init__(self, x, y, batch: int):
        self.x, self.y = x, y
        config = TrainConfig(epochs=1, batch_size=batch, lr=1e-3, grad_clip=1.0, device="cpu")
        self.trainer = Trainer(model(), config, REGRESSION, verbose=False)

    def epoch(self) -> float:
        return self.trainer.fit(self.x, self.y)[-1]["seconds"]


def keras_epochs(x, y, batch: int, epochs: int) -> list[float] | None:
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf  # noqa: F401
        from _keras_clock import EpochClock
        from tensorflow import keras
    except ImportError:
        return None
    net = keras.Sequential([keras.layers.Input((x.shape[1], 1)), keras.layers.LSTM(128, return_sequences=True),
                            keras.layers.LSTM(64), keras.layers.Dense(1)])
    net.compile(optimizer="adam", loss="mse")
    times = []
    net.fit(x.numpy(), y.numpy(), batch_size=batch, epochs=epochs + 1, verbose=0, callbacks=[EpochClock(times)])
    return times[1:]  # the first epoch includes tracing


def measure(windows: int, batch: int, epochs: int) -> dict:
    x, y = make_data(windows)
    plain, trainer = PlainLoop(x, y, batch), TrainerLoop(x, y, batch)
    plain.epoch()  # warm-up both: allocator, oneDNN primitive caches
    trainer.epoch()
    times = {"plain": [], "trainer": []}
    for _ in range(epochs):  # interleaved, so that a busy machine slows both alike
        times["plain"].append(plain.epoch())
        times["trainer"].append(trainer.epoch())
    keras = keras_epochs(x, y, batch, epochs)
    if keras is not None:
        times["keras"] = keras
    return times


def options(windows: int, batch: int, epochs: int) -> list[tuple[str, float]]:
    """The trainer's median epoch under each threads x oneDNN setting, scaled to 20,000 windows."""
    x, y = make_data(windows)
    rows = []
    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads, os.cpu_count() or 1}):
        for mkldnn in (True, False):
            torch.set_num_threads(threads)
            torch.backends.mkldnn.enabled = mkldnn
            loop = TrainerLoop(x, y, batch)
            loop.epoch()
            rows.append((f"threads {threads}, oneDNN {'on' if mkldnn else 'off'}",
                         statistics.median(loop.epoch() for _ in range(epochs)) * 20_000 / windows))
    torch.set_num_threads(default_threads)
    torch.backends.mkldnn.enabled = True
    return rows


def markdown(times: dict, args, option_rows, load: tuple[float, float]) -> str:
    med = {k: statistics.median(v) for k, v in times.items()}
    scale = 20_000 / args.windows
    lines = [
        "### Training speed: stacked LSTM",
        "",
        "One training epoch of the workshop's stacked LSTM (LSTM(128, return_sequences) -> LSTM(64) -> Dense(1), "
        f"{sum(p.numel() for p in model().parameters()):,} parameters) on 20,000 windows of 60 steps, batch 64, Adam, MSE. "
        "Produced by `python bench/bench_lstm.py"
        + (f" --epochs {args.epochs}" if args.epochs != 3 else "")
        + (f" --windows {args.windows}" if args.windows != 20_000 else "")
        + (f" --threads {args.threads}" if args.threads else "") + (" --options" if args.options else "") + "`.",
        "",
        f"Machine: {machine()}, oneDNN {'on' if torch.backends.mkldnn.enabled else 'off'}, {time.strftime('%Y-%m-%d')}; "
        f"load average {load[0]:.1f} at the start and {load[1]:.1f} at the end "
        "(the PyTorch loops alternate epoch by epoch in one run, so their ratio holds even on a shared machine).",
        "",
        "| loop | median s/epoch | epochs (s) |",
        "|---|---:|---|",
    ]
    names = {"plain": "plain PyTorch loop", "trainer": "neuralab Trainer (clip 1.0, schedule, metrics)",
             "keras": f"TF-Keras {getattr(sys.modules.get('tensorflow'), '__version__', '')}, same model"}
    for k, v in times.items():
        lines.append(f"| {names[k]} | {med[k] * scale:.2f} | {', '.join(f'{t * scale:.1f}' for t in v)} |")
    ratio = med["trainer"] / med["plain"]
    lines += [
        "",
        f"Trainer / plain loop: **{ratio:.2f}x** the time of the plain loop in this run.",
    ]
    if "keras" in med:
        lines.append(f"TF-Keras / trainer: **{med['keras'] / med['trainer']:.2f}x** (target: at least 2x).")
    else:
        lines.append(
            f"TF-Keras is not installed here (it is no dependency of neuralab); the issue measured it at "
            f"{KERAS_REFERENCE:g} s/epoch and a plain PyTorch loop at {PLAIN_REFERENCE:g} s/epoch on this machine. "
            f"At the ratio above the trainer takes about {ratio * PLAIN_REFERENCE:.1f} s/epoch "
            f"in those conditions, {KERAS_REFERENCE / (ratio * PLAIN_REFERENCE):.1f}x faster than TF-Keras "
            f"(target: at most {TARGET:g} s, 2x).")
    if option_rows:
        lines += ["", f"Trainer epoch under each setting (same run, one after another, {args.options_windows:,} windows "
                  "scaled to 20,000):", "", "| setting | median s/epoch |", "|---|---:|"]
        lines += [f"| {name} | {t:.2f} |" for name, t in option_rows]
    if scale != 1:
        lines += ["", f"(Measured on {args.windows:,} windows and scaled to 20,000.)"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per loop (after one warm-up)")
    parser.add_argument("--windows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--options", action="store_true", help="also time threads x oneDNN settings")
    parser.add_argument("--options-windows", type=int, default=5_000, help="windows for the --options runs")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    times = measure(args.windows, args.batch, args.epochs)
    option_rows = options(args.options_windows, args.batch, args.epochs) if args.options else []
    section = markdown(times, args, option_rows, (load0, os.getloadavg()[0]))
    print(section)
    if not args.no_write:
        update_section("bench_lstm", section)
        print(f"written to {ROOT / 'docs' / 'benchmarks.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
