"""Test data built from real data: small IDX subsets that train in seconds, and real
handwritten digits that need no download; and ``record_calls``, which shows what a shortcut ran."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from functools import cache
from pathlib import Path

import numpy as np

from neuralab.data.idx import read_idx, write_idx
from neuralab.data.sources import file_in

# torchrun with two processes; --standalone: a free port of its own for the rendezvous, not
# 29500, which another job on the machine may hold
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]

IDX_FILES = [f"{prefix}-{kind}-ubyte.gz" for prefix in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")]


def idx_subset(source: Path, folder: Path, n_train: int, n_test: int) -> Path:
    """The first ``n_train`` / ``n_test`` images of the real IDX dataset in ``source`` (the
    folder a dataset fixture gives), written to ``folder`` as a dataset of the same kind."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES:
        arr = read_idx(file_in(source, name))[: n_train if name.startswith("train") else n_test]
        write_idx(folder / name, np.ascontiguousarray(arr))
    return folder


@cache
def _sklearn_digits():
    from sklearn.datasets import load_digits

    return load_digits()


def keras_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real handwritten digits (8x8, no download) as Keras takes them,
    (N, 8, 8, 1) float32 in [0, 1], and int64 labels 0-9."""
    d = _sklearn_digits()
    x = (d.images * 16).clip(0, 255).astype(np.uint8)[..., None].astype(np.float32) / 255
    return x, d.target.astype(np.int64)


def handwritten_digit(index: int) -> tuple[np.ndarray, int]:
    """Real handwritten digit ``index`` of scikit-learn's bundled set (1,797 digits, 8x8 pixels
    of 17 grey levels, from UCI's optical recognition set; no download) and its label, laid
    out as MNIST lays out its digits: light ink on black, in a 20x20 box centred in 28x28."""
    from PIL import Image

    digits = _sklearn_digits()
    ink = Image.fromarray(np.round(digits.images[index] * 255 / 16).astype(np.uint8))
    picture = np.zeros((28, 28), np.uint8)
    picture[4:24, 4:24] = np.asarray(ink.resize((20, 20), Image.Resampling.BILINEAR))
    return picture, int(digits.target[index])


def digits_folder(root: Path, n: int = 600) -> Path:
    """The first ``n`` of scikit-learn's bundled handwritten digits (8x8, no download) as a
    folder of PNGs, one sub-folder per class: a real image dataset that trains in seconds."""
    from PIL import Image

    digits = _sklearn_digits()
    for i, (image, label) in enumerate(zip(digits.images[:n], digits.target[:n])):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 16).clip(0, 255).astype(np.uint8)).save(root / str(label) / f"{i}.png")
    return root


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` (created if absent) made read-only for the duration, really: by its
    permissions for a user, by a read-only bind mount for root (whom permissions do not stop)."""
    import os
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    for command in (["mount", "--bind", folder, folder], ["mount", "-o", "remount,ro,bind", folder]):
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, f"root cannot make a read-only folder here: {done.stderr}"
    try:
        yield folder
    finally:
        subprocess.run(["umount", folder], check=True)


def unreadable(run: Path) -> str:
    """'' when every file in the run directory ``run`` parses whole (JSON, JSON lines, a CSV
    with rows, safetensors), else the first file that does not and why."""
    import pandas as pd

    from neuralab.training.checkpoint import load_tensors

    for path in sorted(run.rglob("*")):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".jsonl":
                [json.loads(line) for line in path.read_text().splitlines()]
            elif path.suffix == ".safetensors":
                load_tensors(path)
            elif path.suffix == ".csv" and pd.read_csv(path).empty:
                return f"{path.name}: no rows"
        except Exception as e:  # noqa: BLE001  (any failure to parse is the finding)
            return f"{path.name}: {e}"
    return ""


def record_calls(monkeypatch, module, name: str, note) -> list:
    """Wrap ``module.name`` for one test: every call still runs, and ``note(args, result)`` of
    each is appended to the list returned (whether a shortcut ran, and on what)."""
    seen = []
    real = getattr(module, name)

    def recorded(*args):
        result = real(*args)
        seen.append(note(args, result))
        return result

    monkeypatch.setattr(module, name, recorded)
    return seen


def randomize(model, seed: int = 0):
    """A Keras model's weights far from Keras's initial ones (BatchNormalization's statistics and
    scales included, its variances positive), so that a weight loaded in the wrong place shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in v.path
                           else (0.5 * rng.standard_normal(w.shape)).astype("float32")
                           for v, w in zip(layer.weights, layer.get_weights())])
    return model


def default_signals() -> None:
    """A child's ``preexec_fn``: Ctrl-C and hang-up at their defaults, as in a terminal. A test
    run under nohup, or started in the background by a shell without job control, hands its
    children SIGHUP or SIGINT ignored, and a command keeps an ignored signal ignored (nohup's
    contract), so a test of what that signal does would see nothing."""
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def cut_in_epoch(monkeypatch, epoch: int):
    """Ctrl-C as ``epoch`` starts, until what it returns is called."""
    from neuralab.training import trainer as trainer_module

    original = trainer_module.Trainer._train_epoch

    def interrupt(self, *args):
        if args[-2] == epoch:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", interrupt)
    return lambda: monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", original)
