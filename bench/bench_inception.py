"""GoogLeNet's Inception modules with their 1x1 ConvBNs fused (models/inception_fast.py) against
the same accelerated network without the fusion: the 1x1 layers alone, then whole training
steps; prints its tables.

    python bench/bench_inception.py                      # layers, then steps (~4 min)
    python bench/bench_inception.py --steps 0            # layers only
    python bench/bench_inception.py --layers "" --steps 12 --threads 2

Layers: batch 128 at GoogLeNet's 28x28x1 map sizes, channels-last, forward and both gradients:
the layers one by one in oneDNN (as PyTorch runs the module), their weights stacked in one
oneDNN convolution, and one matrix product over the channels, alternating in one process,
medians of 11 after 2 warm-ups and of the per-round ratios. Steps: forward, backward and fused Adam on one batch
of 128 random 28x28x1 images, two copies of the accelerated GoogLeNet, one with the fusion
(``inception_fast.forward``) turned off, alternating step by step, medians and the median of
the per-pair ratios. CPU time with 1 thread, wall time with more.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from neuralab.cli import openmp_waits

WAITS = openmp_waits()  # OpenMP's waiting chosen before torch starts it, as the `neuralab` command does

import torch
import torch.nn.functional as F
from _steps import alternating_steps

from neuralab.models import build_model, inception_fast, inner_product
from neuralab.models.fast import accelerate
from neuralab.training.device import kept_heap

# name: (in channels, map side, filters of each layer): the three 1x1 layers on a module's input,
# the pooled branch's, the stem's
LAYERS = {
    "3a stacked": (192, 14, (64, 96, 16)), "3b stacked": (256, 14, (128, 128, 32)),
    "4a stacked": (480, 7, (192, 96, 16)), "4e stacked": (528, 7, (256, 160, 32)),
    "5a stacked": (832, 4, (256, 160, 32)), "5b stacked": (832, 4, (384, 192, 48)),
    "3b pool": (256, 14, (64,)), "4e pool": (528, 7, (128,)), "5b pool": (832, 4, (128,)), "stem conv2": (64, 14, (64,)),
}


def layer(c: int, hw: int, filters: tuple[int, ...], clock, reps: int = 11, warm: int = 2) -> dict[str, float]:
    """Median ms of each way, and the medians of the per-round ratios of the others to "matmul"."""
    torch.manual_seed(0)
    f = sum(filters)
    x = torch.randn(128, c, hw, hw).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = (torch.randn(f, c, 1, 1) * 0.05).requires_grad_()
    grad = torch.randn(128, f, hw, hw).contiguous(memory_format=torch.channels_last)
    ways = {"onednn": lambda: F.conv2d(x, w).backward(grad),
            "matmul": lambda: inner_product.linear(x.permute(0, 2, 3, 1).reshape(-1, c), w.view(f, c)).backward(
                grad.permute(0, 2, 3, 1).reshape(-1, f))}  # the module's product, oneDNN's where it pays
    if len(filters) > 1:  # as PyTorch runs the module: one convolution per layer, their input gradients added
        ws, grads = w.split(filters), grad.split(filters, 1)
        ways["one by one"] = lambda: torch.autograd.backward([F.conv2d(x, wi) for wi in ws], grads)
    times = {k: [] for k in ways}
    for i in range(reps + warm):
        for k in (list(ways) if i % 2 else list(ways)[::-1]):
            x.grad = w.grad = None
            t0 = clock()
            ways[k]()
            times[k].append(clock() - t0)
    result = {k: statistics.median(v[warm:]) * 1e3 for k, v in times.items()}
    for k in ways:
        result[f"{k} / matmul"] = statistics.median(a / b for a, b in zip(times[k][warm:], times["matmul"][warm:]))
    return result


def steps(n: int, clock) -> None:
    models = {}
    for k in ("unfused", "fused"):
        torch.manual_seed(0)
        model = accelerate(build_model("googlenet", (1, 28, 28), 10)).to(memory_format=torch.channels_last)
        models[k] = (model, torch.optim.Adam(model.parameters(), lr=1e-3, fused=True))
    fused = inception_fast.forward
    try:
        times = alternating_steps(models, n, clock, lambda k: setattr(
            inception_fast, "forward", fused if k == "fused" else (lambda module, x: None)))
    finally:
        inception_fast.forward = fused
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = statistics.median(a / b for a, b in zip(times["unfused"], times["fused"]))
    print(f"googlenet 28x28x1, batch 128: s/step over {n} alternating steps: unfused {med['unfused']:.3f}, "
          f"fused {med['fused']:.3f}; median ratio {ratio:.3f}x", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default=",".join(LAYERS), help="comma-separated names from LAYERS")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.threads == 1 else time.perf_counter
    print(f"{args.threads} thread(s), {'CPU' if args.threads == 1 else 'wall'} time; OpenMP threads {WAITS}")
    with kept_heap():  # as the trainer runs: freed memory stays in the heap
        names = [name for name in args.layers.split(",") if name]
        if names:
            print("| 1x1 layers | in -> out, map | one by one ms | oneDNN stacked ms | matrix product ms | "
                  "one by one / product | oneDNN / product |")
            print("|---|---|---|---|---|---|---|")
        for name in names:
            c, hw, filters = LAYERS[name]
            r = layer(c, hw, filters, clock)
            apart = f"{r['one by one']:.1f}" if "one by one" in r else "-"
            ratio = f"{r['one by one / matmul']:.2f}x" if "one by one" in r else "-"
            print(f"| {name} | {c} -> {'+'.join(map(str, filters))}, {hw}x{hw} | {apart} | {r['onednn']:.1f} | "
                  f"{r['matmul']:.1f} | {ratio} | {r['onednn / matmul']:.2f}x |", flush=True)
        if args.steps:
            steps(args.steps, clock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
