"""What every tutorial shares: its budget, where its outputs go, and showing a figure.

    NEURALAB_TUTORIAL_BUDGET  "full" (default): the figures of docs/benchmarks.md;
                              "small": fewer epochs and data subsets, what CI runs end to end
    NEURALAB_TUTORIAL_OUT     folder for figures and results.json (default runs/tutorials)

Datasets are found by neuralab's usual lookup (the cache, $NEURALAB_DATA, the system
folder, else a download): ``neuralab data list`` shows where.

Each tutorial writes OUT/NAME/results.json with its key numbers; tests/test_tutorials.py
checks them after executing every tutorial as a notebook in the small budget.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BUDGETS = ("full", "small")
BUDGET = os.environ.get("NEURALAB_TUTORIAL_BUDGET", "full").strip().lower() or "full"
if BUDGET not in BUDGETS:
    raise ValueError(f"NEURALAB_TUTORIAL_BUDGET={BUDGET!r}: allowed are {', '.join(BUDGETS)}")
SMALL = BUDGET == "small"


def budget(full, small):
    """``full`` normally, ``small`` under NEURALAB_TUTORIAL_BUDGET=small."""
    return small if SMALL else full


def out_dir(name: str) -> Path:
    """NEURALAB_TUTORIAL_OUT/name (default runs/tutorials/name), created."""
    path = Path(os.environ.get("NEURALAB_TUTORIAL_OUT", "runs/tutorials")).expanduser() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def show(fig, path: Path) -> None:
    """Save ``fig`` as PNG at ``path``; in a notebook also show it inline, in a script name the file.
    Nothing is returned: a cell ending in it would print the path under the figure."""
    from neuralab.reports import plots

    png = plots.save(fig, path)
    if _in_notebook():
        from IPython.display import Image, display

        display(Image(png))
    else:
        print(f"[figure] {path}")


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def save_results(out: Path, results: dict) -> None:
    """Write the tutorial's key numbers to out/results.json (what CI asserts on)."""
    path = out / "results.json"
    path.write_text(json.dumps({"budget": BUDGET, **results}, indent=2, default=_plain) + "\n")
    print(f"[results] {path}")


@dataclass
class Images:
    """An image dataset as model-ready tensors: float32 (N, C, H, W) normalised by neuralab's
    ``Preprocess`` (fitted on the training images), int64 labels; ``pixels`` keeps the raw test images."""
    name: str
    classes: list
    input_shape: tuple
    train: tuple
    val: tuple
    test: tuple
    pixels: np.ndarray
    preprocess: object     # neuralab.Preprocess: raw uint8 images -> model input, as for a trained run


def _subset(split, n, seed):
    if n is None or n >= len(split):
        return split.x, split.y
    keep = np.sort(np.random.default_rng(seed).permutation(len(split))[:n])
    return split.x[keep], split.y[keep]


def prepare_images(name: str, n_train=None, n_val=None, n_test=None, seed: int = 0) -> Images:
    """``load_image_data(name)`` (its seeded 10% validation split), optionally cut to seeded
    random subsets of n_train / n_val / n_test images, then normalised as `neuralab train`
    does: ``Preprocess.fit`` on the training images, (pixel / 255 - mean) / std per channel."""
    import torch

    from neuralab import Preprocess, load_image_data

    data = load_image_data(name, seed=seed)
    splits = [_subset(s, n, seed) for s, n in ((data.train, n_train), (data.val, n_val), (data.test, n_test))]
    pre = Preprocess.fit(splits[0][0])
    train, val, test = ((pre(x), torch.from_numpy(y)) for x, y in splits)
    print(f"{name}: {len(train[1]):,} train / {len(val[1]):,} validation / {len(test[1]):,} test images "
          f"{'x'.join(map(str, data.input_shape))}, {len(data.classes)} classes")
    return Images(name, list(data.classes), data.input_shape, train, val, test, splits[2][0], pre)


@dataclass
class Trained:
    name: str
    model: object
    trainer: object
    history: list
    test: dict             # test loss and accuracy
    params: int
    seconds_per_epoch: float
    classifier: object     # neuralab.Classifier: the model with its classes and preprocessing


def train_and_test(model, data: Images, config, name: str, verbose: bool = True, summary_depth=None) -> Trained:
    """Keras' order: the model's summary (``summary_depth`` folds deeper layers), then
    ``Trainer.fit`` on the training set with a validation pass per epoch, then
    ``Trainer.evaluate`` on the test set."""
    from neuralab import Classifier, Trainer, count_parameters, summary
    from neuralab.models import render_summary

    if verbose:
        print(render_summary(summary(model, data.input_shape, depth=summary_depth, name=name), rich=False))
    trainer = Trainer(model, config, verbose=verbose)
    history = trainer.fit(*data.train, val=data.val)
    test = trainer.evaluate(*data.test)
    per_epoch = statistics.median(r["seconds"] for r in history)
    print(f"{name}: test accuracy {test['accuracy'] * 100:.2f}%  ({per_epoch:.1f} s/epoch)")
    return Trained(name, trainer.model, trainer, history, test, count_parameters(model), per_epoch,
                   Classifier(trainer.model, data.classes, data.preprocess, name))
