"""Winograd convolution (models/winograd.py) against oneDNN's direct convolution, as
fast.Conv2d uses them: single layers forward and back, then whole training steps of the
accelerated zoo models with the Winograd branch on and off; prints its tables.

    python bench/bench_winograd.py                       # layers, then AlexNet and GoogLeNet steps (~6 min)
    python bench/bench_winograd.py --layers              # layers only (~2 min)
    python bench/bench_winograd.py --models alexnet --steps 20 --threads 2
    python bench/bench_winograd.py --models alexnet,googlenet,vgg16 --rgb   # steps at 32x32x3

Layers: batch 128, channels-last, forward and the input, weight and bias gradients, the
two alternating in one process, medians of 10 after 3 warm-ups, CPU time of one thread.
Steps: forward, backward and fused Adam on one batch of 128 random 28x28x1 images (32x32x3
with --rgb), the same model with the branch on and off alternating step by step
(``winograd.pays`` replaced; ``--rule`` takes another CPU kind's rule), medians; wall time
with 2 threads (CPU time with 1).
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

from neuralab.models import build_model, winograd
from neuralab.models.fast import accelerate
from neuralab.training.device import kept_heap

# (in, out, map, kernel, padding): AlexNet's conv2-conv5, GoogLeNet's 3x3 layers and VGG16's
# last blocks at 28x28 and 32x32x3 inputs, wide (taken) and narrow (left to oneDNN by
# winograd.pays)
LAYERS = {
    "alexnet conv2": (64, 192, 14, 5, 2), "alexnet conv3": (192, 384, 7, 3, 1),
    "alexnet conv4": (384, 256, 7, 3, 1), "alexnet conv5": (256, 256, 7, 3, 1),
    "googlenet conv3": (64, 192, 14, 3, 1), "googlenet 3b 3x3": (128, 192, 14, 3, 1),
    "googlenet 4d 3x3": (144, 288, 7, 3, 1), "googlenet 5b 3x3": (192, 384, 4, 3, 1),
    "googlenet 3b 5x5 branch": (32, 96, 14, 3, 1), "sample cnn conv2": (32, 64, 14, 3, 1),
    "vgg16 conv3_1": (128, 256, 7, 3, 1), "vgg16 conv3_2": (256, 256, 7, 3, 1),
    "vgg16 conv4_1": (256, 512, 4, 3, 1), "vgg16 conv4_2": (512, 512, 4, 3, 1),
    # at 32x32x3 inputs: 16x16 maps, whole 4x4 blocks
    "alexnet conv2 (32x32x3)": (64, 192, 16, 5, 2), "googlenet conv3 (32x32x3)": (64, 192, 16, 3, 1),
    "googlenet 3b 3x3 (32x32x3)": (128, 192, 16, 3, 1), "vgg16 conv2_2 (32x32x3)": (128, 128, 16, 3, 1),
    # and 8x8 maps
    "alexnet conv3 (32x32x3)": (192, 384, 8, 3, 1), "vgg16 conv3_2 (32x32x3)": (256, 256, 8, 3, 1),
}


WAYS = {"onednn": lambda x, w, b, p: F.conv2d(x, w, b, padding=p),
        "winograd": lambda x, w, b, p: winograd.conv2d(x, w, b, (p, p))}


def layer(c: int, f: int, hw: int, r: int, p: int, reps: int = 10, warm: int = 3) -> tuple[dict, float]:
    """({way: median ms}, largest error of Winograd's output and gradients / their scale)."""
    torch.manual_seed(0)
    x = torch.randn(128, c, hw, hw).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = (torch.randn(f, c, r, r) * 0.05).requires_grad_()
    b = torch.zeros(f, requires_grad=True)
    times = {k: [] for k in WAYS}
    for _ in range(reps + warm):
        for k, way in WAYS.items():
            t0 = time.process_time()
            y = way(x, w, b, p)
            torch.autograd.grad(y, [x, w, b], torch.ones_like(y))
            times[k].append(time.process_time() - t0)
    results = {}
    for k, way in WAYS.items():
        y = way(x, w, b, p)
        results[k] = [y, *torch.autograd.grad(y, [x, w], torch.randn(y.shape, generator=torch.Generator().manual_seed(1)))]
    error = max(((a - ref).abs().max() / ref.abs().max()).item() for a, ref in zip(results["winograd"], results["onednn"]))
    return {k: statistics.median(v[warm:]) * 1e3 for k, v in times.items()}, error


def layers() -> None:
    torch.set_num_threads(1)
    print("| layer | in -> out, map, kernel | oneDNN ms | Winograd ms | speed-up | max error / scale | taken |")
    print("|---|---|---|---|---|---|---|")
    for name, (c, f, hw, r, p) in LAYERS.items():
        ms, error = layer(c, f, hw, r, p)
        taken = winograd.pays(torch.empty(f, c, r, r), (128, c, hw, hw))  # on this CPU
        print(f"| {name} | {c} -> {f}, {hw}x{hw}, {r}x{r} | {ms['onednn']:.1f} | {ms['winograd']:.1f} | "
              f"{ms['onednn'] / ms['winograd']:.2f}x | {error:.1e} | {'yes' if taken else 'no'} |", flush=True)


def steps(name: str, n: int, threads: int, shape: tuple[int, int, int], rule: str = "this") -> None:
    torch.set_num_threads(threads)
    clock = time.process_time if threads == 1 else time.perf_counter
    pays = winograd.pays
    # The Winograd side takes the layers this CPU's rule takes, or those of the rule for the
    # other vectors: this is where each rule's choice is measured.
    taken = pays if rule == "this" else (lambda weight, shape: winograd.fits(weight, shape, rule == "avx512"))
    models = {}
    for k in ("direct", "winograd"):
        torch.manual_seed(0)
        model = accelerate(build_model(name, shape, 10)).to(memory_format=torch.channels_last)
        models[k] = (model, torch.optim.Adam(model.parameters(), lr=3e-3, fused=True))
    try:
        times = alternating_steps(models, n, clock, lambda k: setattr(
            winograd, "pays", taken if k == "winograd" else (lambda *args: False)), shape)
    finally:
        winograd.pays = pays
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{name} at {'x'.join(map(str, shape[1:]))}x{shape[0]}: {threads} thread(s), "
          f"{'CPU' if threads == 1 else 'wall'} s/step over {n} alternating steps: "
          f"direct {med['direct']:.3f}, Winograd {med['winograd']:.3f}, {med['direct'] / med['winograd']:.2f}x",
          flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", action="store_true", help="single layers only")
    parser.add_argument("--models", default="alexnet,googlenet")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rgb", action="store_true", help="steps on 32x32x3 images instead of 28x28x1")
    parser.add_argument("--rule", choices=("this", "avx2", "avx512"), default="this",
                        help="the layers the Winograd side takes: this CPU's rule (default) or one CPU kind's")
    args = parser.parse_args()
    with kept_heap():  # as the trainer runs: freed memory stays in the heap
        layers()
        if not args.layers:
            torch.set_num_threads(args.threads)
            for name in args.models.split(","):
                steps(name, args.steps, args.threads, (3, 32, 32) if args.rgb else (1, 28, 28), args.rule)
    return 0


if __name__ == "__main__":
    sys.exit(main())
