"""The trainer's epoch with the dense layers as one step (models/dense_chain.py) and as
separate layers, alternating in one process: medians and the median of per-round ratios.

    python bench/bench_dense_chain.py                      # the MLP, 8 rounds of whole epochs
    python bench/bench_dense_chain.py --model cnn --images 6400 --rounds 6
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from neuralab.cli import openmp_waits

openmp_waits()  # as bench_zoo and the command: before torch starts OpenMP

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_zoo import BATCH, DATA, LR, images  # noqa: E402

from neuralab.models import build_model, dense_chain  # noqa: E402
from neuralab.training import CLASSIFICATION, TrainConfig, Trainer  # noqa: E402

CHAIN = dense_chain.dense_chain


def epoch(trainer: Trainer, x, y, chain: bool) -> float:
    dense_chain.dense_chain = CHAIN if chain else (lambda *args: None)
    t0 = time.perf_counter()
    trainer.fit(x, y)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--images", type=int, default=0, help="train on the first N images (0: all)")
    args = parser.parse_args()
    x, y, _ = images(DATA[args.model])
    if args.images:
        x, y = x[:args.images], y[:args.images]
    torch.manual_seed(0)
    trainer = Trainer(build_model(args.model, x.shape[1:], 10),
                      TrainConfig(epochs=1, batch_size=BATCH, lr=LR, device="cpu"), CLASSIFICATION, verbose=False)
    for chain in (True, False):  # warm-up
        epoch(trainer, x[:4 * BATCH], y[:4 * BATCH], chain)
    times: dict[bool, list[float]] = {True: [], False: []}
    for r in range(args.rounds):
        for chain in ((False, True) if r % 2 else (True, False)):
            times[chain].append(epoch(trainer, x, y, chain))
    ratios = [off / on for on, off in zip(times[True], times[False])]
    print(f"{args.model}, {len(x)} images, {args.rounds} rounds: layers {statistics.median(times[False]):.3f} s, "
          f"chain {statistics.median(times[True]):.3f} s, ratio (median of per-round) {statistics.median(ratios):.3f}x")
    print("  layers", " ".join(f"{t:.3f}" for t in times[False]))
    print("  chain ", " ".join(f"{t:.3f}" for t in times[True]))


if __name__ == "__main__":
    main()
