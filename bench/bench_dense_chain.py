"""The trainer's epoch with the dense layers as one step (models/dense_chain.py) and as
separate layers, alternating in one process: medians and the median of per-round ratios.

    python bench/bench_dense_chain.py                      # the MLP, 8 rounds of whole epochs
    python bench/bench_dense_chain.py --model cnn --images 6400 --rounds 6
    python bench/bench_dense_chain.py --parts              # the trainer's step, part by part

``--parts`` runs the trainer's step (gather, forward, loss, backward, Adam, schedule) in a
loop, rounds of 100 steps with and without the chain in turns, and prints each part's median.
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
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_zoo import BATCH, DATA, LR, images  # noqa: E402

from neuralab.models import build_model, dense_chain  # noqa: E402
from neuralab.models.fast import accelerate  # noqa: E402
from neuralab.training import CLASSIFICATION, TrainConfig, Trainer  # noqa: E402
from neuralab.training.compile import lr_factor, make_optimizer  # noqa: E402
from neuralab.training.device import kept_heap  # noqa: E402
from neuralab.training.trainer import _rows  # noqa: E402

CHAIN = dense_chain.dense_chain


def switch(chain: bool) -> None:
    dense_chain.dense_chain = CHAIN if chain else (lambda *args: None)


def epoch(trainer: Trainer, x, y, chain: bool) -> float:
    switch(chain)
    t0 = time.perf_counter()
    trainer.fit(x, y)
    return time.perf_counter() - t0


def parts(name: str, x, y, rounds: int, steps: int = 100) -> None:
    """Each part of the trainer's step, median microseconds, chain on and off in turns."""
    config = TrainConfig(epochs=1, batch_size=BATCH, lr=LR, device="cpu")
    model = accelerate(build_model(name, x.shape[1:], 10))
    optimizer = make_optimizer(model.parameters(), config, torch.device("cpu"))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, rounds * steps * 2))
    order = torch.randperm(len(x))
    factor = torch.tensor(1 / BATCH)
    times: dict[bool, dict[str, list[int]]] = {True: {}, False: {}}
    for r in range(rounds):
        for chain in ((False, True) if r % 2 else (True, False)):
            switch(chain)
            for s in range(0, BATCH * steps, BATCH):
                clock = [time.perf_counter_ns()]

                def tick(part: str) -> None:
                    clock.append(time.perf_counter_ns())
                    times[chain].setdefault(part, []).append(clock[-1] - clock[-2])

                batch = order[s:s + BATCH]
                xb, yb = _rows(x, batch), _rows(y, batch)
                tick("gather")
                out = model(xb)
                tick("forward")
                loss = F.cross_entropy(out, yb, reduction="none").sum()
                tick("loss")
                optimizer.zero_grad(set_to_none=True)
                loss.backward(factor)
                tick("backward")
                optimizer.step()
                scheduler.step()
                tick("adam and schedule")
    for part in times[True]:
        on, off = (statistics.median(times[c][part]) / 1000 for c in (True, False))
        print(f"  {part:18s} layers {off:8.1f} us   chain {on:8.1f} us")
    on, off = (sum(statistics.median(v) for v in times[c].values()) / 1000 for c in (True, False))
    print(f"  {'step':18s} layers {off:8.1f} us   chain {on:8.1f} us   {off / on:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--images", type=int, default=0, help="train on the first N images (0: all)")
    parser.add_argument("--parts", action="store_true", help="the step part by part, 100 steps a round")
    args = parser.parse_args()
    x, y, _ = images(DATA[args.model])
    if args.images:
        x, y = x[:args.images], y[:args.images]
    if args.parts:
        torch.manual_seed(0)
        with kept_heap():  # as in the trainer
            parts(args.model, x, y, args.rounds)
        return
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
