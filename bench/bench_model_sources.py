"""The figures of issue 16's routes (b) and (c) for models people write (docs/keras.md).

    python bench/bench_model_sources.py import DATA_DIR [--train 12000]
        (b) the workshop's LeNet-5 (examples/keras/lenet5.py) fitted by Keras itself (PyTorch
        backend, Adam, one epoch on the first --train Fashion-MNIST training images), saved,
        `neuralab import`-ed, then neuralab's probabilities against Keras's predict on the
        10,000 Fashion-MNIST test images: the largest absolute difference.
    python bench/bench_model_sources.py epochs DATA_DIR [--rounds 3] [--steps 100]
        (c) the training step time of the same LeNet-5 from examples/keras/lenet5.py (converted)
        and of the zoo's lenet5, in one process, alternating rounds of --steps batches of 128
        on MNIST: the ratio of the medians.

DATA_DIR holds the dataset's four IDX files. Keras 3 is needed (pip install neuralab[keras]).
"""

from __future__ import annotations

import argparse
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
from neuralab.cli import openmp_waits  # noqa: E402

openmp_waits()  # as the `neuralab` command waits, chosen before torch starts OpenMP (see bench_lenet.py)

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LENET = ROOT / "examples" / "keras" / "lenet5.py"


def _idx(folder: Path, name: str) -> np.ndarray:
    from neuralab.data.idx import read_idx
    from neuralab.data.sources import file_in

    return read_idx(file_in(folder, name))


def parity(data: Path, n_train: int) -> None:
    from neuralab.training import load_classifier

    model = runpy.run_path(str(LENET))["model"]
    x = _idx(data, "train-images-idx3-ubyte.gz")[:n_train]
    y = _idx(data, "train-labels-idx1-ubyte.gz")[:n_train]
    pad = lambda a: np.pad(a, ((0, 0), (2, 2), (2, 2)))[..., None] / np.float32(255)  # noqa: E731  the slide's 32x32
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(pad(x), y, epochs=1, batch_size=128, verbose=0)
    print(f"Keras fit: 1 epoch on {n_train:,} images in {time.perf_counter() - t0:.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "lenet5.keras"
        model.save(saved)
        run = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "neuralab", "import", str(saved), "--out", str(run), "--data", "fashion-mnist",
               "--data-dir", str(data), "--scale", "1/255"]
        print("$ neuralab import lenet5.keras --out RUN --data fashion-mnist --data-dir DATA --scale 1/255")
        print(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())
        test = _idx(data, "t10k-images-idx3-ubyte.gz")
        ours = np.concatenate([load_classifier(run).predict_proba(test[i:i + 2000, None]) for i in range(0, len(test), 2000)])
        theirs = model.predict(pad(test), batch_size=2000, verbose=0)
    labels = _idx(data, "t10k-labels-idx1-ubyte.gz")
    print(f"max |neuralab - Keras| over {len(test):,} test images: {np.abs(ours - theirs).max():.2e} "
          f"(test accuracy: neuralab {(ours.argmax(1) == labels).mean() * 100:.2f}%, "
          f"Keras {(theirs.argmax(1) == labels).mean() * 100:.2f}%, same predictions: "
          f"{(ours.argmax(1) == theirs.argmax(1)).mean() * 100:.2f}%)")


def epochs(data: Path, rounds: int, steps: int) -> None:
    import torch

    from neuralab.models import ARCHITECTURES
    from neuralab.training.source import resolve
    from neuralab.training import CLASSIFICATION, Preprocess, TrainConfig, Trainer

    x = _idx(data, "train-images-idx3-ubyte.gz")[:, None][: steps * 128]
    y = torch.from_numpy(_idx(data, "train-labels-idx1-ubyte.gz")[: steps * 128].astype(np.int64))
    xs = Preprocess.fit(x)(x)
    nets = {"examples/keras/lenet5.py": resolve(str(LENET)), "zoo lenet5": resolve("lenet5", tuple(ARCHITECTURES))}
    times: dict[str, list[float]] = {k: [] for k in nets}
    for r in range(rounds + 1):  # round 0 warms up (first-use costs), not counted
        for name, source in nets.items():
            model = source.classifier((1, 28, 28), 10)
            trainer = Trainer(model, TrainConfig(epochs=1, batch_size=128), CLASSIFICATION, None, {}, verbose=False)
            t0 = time.perf_counter()
            trainer.fit(xs, y)
            if r:
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:28s} median {v:.2f} s for {steps * 128:,} images ({', '.join(f'{t:.2f}' for t in times[k])})")
    a, b = med.values()
    print(f"ratio (Keras code / zoo): {a / b:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("import", "epochs"))
    p.add_argument("data", type=Path)
    p.add_argument("--train", type=int, default=12_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=100)
    a = p.parse_args()
    parity(a.data, a.train) if a.what == "import" else epochs(a.data, a.rounds, a.steps)


if __name__ == "__main__":
    main()
