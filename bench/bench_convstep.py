"""Training steps of the accelerated zoo models with one of models/fast.py's convolution-side
shortcuts on and off, alternating step by step in one process (the trainer's setup: channels-last,
``accelerate``, batch 128 of 28x28x1, fused Adam, the heap kept); prints medians and the median
of the per-pair ratios (above 1: the shortcut is faster).

    python bench/bench_convstep.py --shortcut maxpool_relu --models alexnet,vgg16 --steps 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from neuralab.cli import openmp_waits

WAITS = openmp_waits()  # OpenMP's waiting chosen before torch starts it, as the `neuralab` command does

import torch
from _steps import alternating_steps

from neuralab.models import build_model, fast
from neuralab.training.compile import Adam
from neuralab.training.device import kept_heap

# shortcut -> (module, attribute, what stands in for it when off)
SHORTCUTS = {"maxpool_relu": (fast, "maxpool_relu", lambda *args: None)}


def steps(name: str, shortcut: str, n: int, threads: int) -> None:
    torch.set_num_threads(threads)
    clock = time.process_time if threads == 1 else time.perf_counter
    module, attribute, off = SHORTCUTS[shortcut]
    real = getattr(module, attribute)
    models = {}
    for k in ("off", "on"):
        torch.manual_seed(0)
        model = fast.accelerate(build_model(name, (1, 28, 28), 10)).to(memory_format=torch.channels_last)
        models[k] = (model, Adam(model.parameters(), lr=1e-3, fused=True))
    try:
        times = alternating_steps(models, n, clock, lambda k: setattr(module, attribute, real if k == "on" else off))
    finally:
        setattr(module, attribute, real)
    ratios = [a / b for a, b in zip(times["off"], times["on"])]
    print(f"{name}, {shortcut}: {threads} thread(s), {'CPU' if threads == 1 else 'wall'} ms/step over {n} "
          f"alternating pairs: off {statistics.median(times['off']) * 1e3:.1f}, on {statistics.median(times['on']) * 1e3:.1f}, "
          f"median ratio {statistics.median(ratios):.3f}x", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shortcut", choices=sorted(SHORTCUTS), default="maxpool_relu")
    parser.add_argument("--models", default="alexnet")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with kept_heap():  # as the trainer runs: freed memory stays in the heap
        for name in args.models.split(","):
            steps(name, args.shortcut, args.steps, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
