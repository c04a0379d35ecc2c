"""One epoch of the workshop's LeNet-5 (examples/keras/lenet5.py) under Keras's own fit, Keras 3
on its PyTorch backend, and under neuralab's engine (the same Keras model converted by
neuralab.keras and trained by neuralab.training.Trainer); writes docs/benchmarks.md.

    python bench/bench_keras_fit.py                       # Fashion-MNIST, 3 rounds (~5 min on 2 free cores)
    python bench/bench_keras_fit.py --data mnist --rounds 5 --no-write

Both sides get the same work: the 60,000 training images padded to 32x32 (as the listing's
input), scaled to [0, 1], one epoch, batch 128, Adam at lr 1e-3 (constant), cross-entropy on
the softmax's logits, shuffled; each round builds a fresh model from the listing with the same
seed. The two alternate round by round in one process, so a busy machine slows both alike;
the figures are medians over the rounds, and the ratio is the median of the per-round ratios.
After each epoch both models are scored on the 10,000 test images, to show that they learn alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

os.environ["KERAS_BACKEND"] = "torch"
from neuralab.cli import openmp_waits  # noqa: E402

openmp_waits()  # as the `neuralab` command waits, chosen before torch starts OpenMP (see bench_lenet.py)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _doc import DATASETS, machine, update_section  # noqa: E402

import keras  # noqa: E402

from neuralab.data import load_image_data  # noqa: E402
from neuralab.keras import convert  # noqa: E402
from neuralab.training import CLASSIFICATION, TrainConfig, Trainer  # noqa: E402

LISTING = Path(__file__).resolve().parents[1] / "examples" / "keras" / "lenet5.py"
BATCH, LR = 128, 1e-3


def lenet5():
    """A fresh model from the workshop's listing, seeded."""
    keras.utils.set_random_seed(0)
    spec = importlib.util.spec_from_file_location("lenet5_listing", LISTING)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.model


def keras_epoch(x, y, xt, yt) -> tuple[float, float]:
    """Seconds of Keras's model.fit for one epoch, and the test accuracy after it."""
    model = lenet5()
    model.compile(optimizer=keras.optimizers.Adam(LR), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=BATCH, shuffle=True, verbose=0)
    seconds = time.perf_counter() - t0
    probs = model.predict(xt, batch_size=1024, verbose=0)
    return seconds, float((probs.argmax(1) == yt).mean())


def neuralab_epoch(x, y, xt, yt) -> tuple[float, float]:
    """Seconds of neuralab's Trainer.fit on the converted listing for one epoch, and the test accuracy."""
    net = convert(lenet5(), logits=True)  # the softmax goes into the loss, as Keras computes it
    trainer = Trainer(net, TrainConfig(epochs=1, batch_size=BATCH, lr=LR, schedule="constant"), CLASSIFICATION,
                      verbose=False)
    t0 = time.perf_counter()
    trainer.fit(x, y)
    seconds = time.perf_counter() - t0
    return seconds, trainer.evaluate(xt, torch.from_numpy(yt))["accuracy"]


def images(split, n: int | None = None):
    """(N, 1, 28, 28) uint8 -> (N, 32, 32, 1) float32 in [0, 1] (Keras's layout), labels int64."""
    x = np.pad(split.x[:n, 0], ((0, 0), (2, 2), (2, 2)))[..., None].astype(np.float32) / 255
    return x, split.y[:n].astype(np.int64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="fashion-mnist", choices=("fashion-mnist", "mnist"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=None, help="training images (default: all 60,000)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()

    data = load_image_data(args.data, DATASETS / args.data, val_fraction=0.0)
    x, y = images(data.train, args.n)
    xt, yt = images(data.test)
    x_nchw, xt_nchw = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(xt.transpose(0, 3, 1, 2).copy())
    y_t = torch.from_numpy(y)
    sides = {"Keras fit (PyTorch backend)": lambda: keras_epoch(x, y, xt, yt),
             "neuralab Trainer (converted)": lambda: neuralab_epoch(x_nchw, y_t, xt_nchw, yt)}
    # Untimed warm-up of both on 1,280 images: first-call costs (imports, kernel selection) are start-up.
    keras_epoch(x[:1280], y[:1280], xt[:256], yt[:256])
    neuralab_epoch(x_nchw[:1280], y_t[:1280], xt_nchw[:256], yt[:256])

    times: dict[str, list[float]] = {k: [] for k in sides}
    accs: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(args.rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            seconds, acc = sides[name]()
            times[name].append(seconds)
            accs[name].append(acc)
            print(f"round {r + 1}: {name}: {seconds:.1f} s, test accuracy {acc * 100:.2f}%", flush=True)
    load = os.getloadavg()[1]  # the 5-minute load average: how shared the machine was
    keras_name, ours = list(sides)
    ratio = statistics.median(k / n for k, n in zip(times[keras_name], times[ours]))
    n = len(x)
    lines = [
        "## Keras's own fit against neuralab's engine: the workshop's LeNet-5",
        "",
        f"One epoch of `examples/keras/lenet5.py` on {n:,} {args.data} training images (padded to 32x32, "
        f"batch {BATCH}, Adam lr {LR:g}), under Keras {keras.__version__}'s `model.fit` on its PyTorch backend and "
        "under neuralab's `Trainer` on the same listing converted by `neuralab.keras.convert`; the two alternate "
        f"round by round in one process ({args.rounds} rounds; medians). Measured by "
        f"`python bench/bench_keras_fit.py{' --data ' + args.data if args.data != 'fashion-mnist' else ''}"
        f"{f' --rounds {args.rounds}' if args.rounds != 3 else ''}{f' --n {args.n}' if args.n else ''}` "
        f"on {machine()}; the machine was shared with other work while it ran (load average {load:.1f} at the "
        "end), so absolute times are noisy, the ratio less so.",
        "",
        "| | seconds per epoch (median) | images/s | test accuracy after the epoch (median) |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {name} | {statistics.median(times[name]):.1f} | {n / statistics.median(times[name]):,.0f} | "
          f"{statistics.median(accs[name]) * 100:.2f}% |" for name in sides],
        "",
        f"neuralab's engine runs the converted model {ratio:.2f}x as fast as Keras's fit (median of the per-round "
        f"ratios; each round: {', '.join(f'{k / o:.2f}' for k, o in zip(times[keras_name], times[ours]))}). "
        "The converted module is the same function with the same parameters (tests/test_keras_examples.py), "
        "so the difference is the engine; where its time goes was not profiled here. The engines differ in "
        "how they batch (neuralab indexes tensors already in memory, Keras's fit goes through its data "
        "adapter every step), in the optimizer step (fused Adam) and in the kernels (channels-last, "
        "models/fast.py).",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        update_section("bench_keras_fit", text)


if __name__ == "__main__":
    main()
