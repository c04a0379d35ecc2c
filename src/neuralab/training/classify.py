"""Image classification end to end: load a dataset, build a zoo model, train it on the
trainer, evaluate on the test set and leave a complete run directory behind."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from neuralab.errors import NeuralabError
from neuralab.files import atomic_write, read_json, write_json
from neuralab.training.checkpoint import load_weights
from neuralab.training.rundir import create_run_dir, default_run_dir, open_run
from neuralab.training.trainer import CLASSIFICATION, TrainConfig, Trainer, seed_everything


# Tuned defaults a user picks by name (`--recipe fast`); explicit options override them.
RECIPES: dict[str, dict] = {
    # One-cycle schedule, no validation pass; epoch 1 on every training image, then five epochs
    # on the hardest 18%: 1.9 epochs' work (docs/benchmarks.md, "What was tried").
    "fast": {"epochs": 6, "focus": 0.18, "batch_size": 128, "lr": 7e-3, "warmup": 0.3, "schedule": "onecycle",
             "val_fraction": 0.0},
}


@dataclass
class ClassifierConfig:
    model: str = "lenet5"
    data: str = "fashion-mnist"
    data_dir: str | None = None
    val_fraction: float = 0.1   # held out from the training set, seeded
    model_options: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierConfig":
        return cls(**{**d, "train": TrainConfig(**d.get("train", {}))})


@dataclass
class Preprocess:
    """How raw uint8 images become model input; stored with the model."""
    input_shape: tuple[int, int, int]  # (C, H, W)
    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, x: np.ndarray) -> "Preprocess":
        """Per-channel mean and std of the training images (N, C, H, W) uint8, on [0, 1]."""
        sample = x[: 20_000]
        # From each channel's histogram of the 256 levels: the same mean and std as over the
        # pixels in float64, without a float copy of the images (0.5 s on MNIST, start-up)
        counts = np.stack([np.bincount(sample[:, c].ravel(), minlength=256) for c in range(x.shape[1])])
        levels = np.arange(256) / 255.0
        n = counts.sum(1)
        mean = counts @ levels / n
        std = np.sqrt((counts * (levels - mean[:, None]) ** 2).sum(1) / n)
        return cls(tuple(x.shape[1:]), mean.tolist(), np.maximum(std, 1e-3).tolist())

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        """(N, C, H, W) uint8 -> normalised float32 tensor."""
        t = torch.from_numpy(x.astype(np.float32)).div_(255.0)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return t.sub_(mean).div_(std)


@dataclass
class Classifier:
    """A trained model with what it needs to take raw images: classes and preprocessing."""
    model: torch.nn.Module
    classes: list[str]
    preprocess: Preprocess
    name: str

    @torch.inference_mode()
    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) uint8 -> (N, classes) probabilities (the softmax of the logits)."""
        self.model.eval()
        return torch.softmax(self.model(self.preprocess(images)), dim=1).numpy()

    def load_images(self, paths, invert: bool = False) -> np.ndarray:
        """Picture files of any size and colour mode -> (N, C, H, W) uint8 at the model's input size.

        ``invert`` turns dark-on-light drawings into the light-on-dark style of MNIST.
        """
        from neuralab.data.pictures import read_image, resize

        c, h, w = self.preprocess.input_shape
        out = np.empty((len(paths), c, h, w), dtype=np.uint8)
        for i, path in enumerate(paths):
            img = resize(read_image(path, "L" if c == 1 else "RGB"), h, w)
            img = 255 - img if invert else img
            out[i] = img[None] if c == 1 else img.transpose(2, 0, 1)
        return out

    def top_k(self, probs: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        order = np.argsort(-probs, axis=1)[:, :k]
        return [[(self.classes[j], float(p[j])) for j in row] for p, row in zip(probs, order)]


@dataclass
class RunResult:
    run_dir: Path
    history: list[dict]
    test: dict
    best_epoch: int
    seconds: float
    params: int


def model_meta(config: ClassifierConfig, classes, pre: Preprocess, num_params: int) -> dict:
    return {
        "architecture": config.model,
        "options": config.model_options,
        "input_shape": list(pre.input_shape),
        "num_classes": len(classes),
        "classes": list(classes),
        "preprocess": {"mean": pre.mean, "std": pre.std},
        "parameters": num_params,
    }


def train_classifier(config: ClassifierConfig, out: str | Path | None = None, overwrite: bool = False,
                     verbose: bool = True) -> RunResult:
    """Train ``config.model`` on ``config.data``; returns the run's figures and directory."""
    from neuralab.data import load_image_data
    from neuralab.models import build_model, count_parameters
    from neuralab.training.device import dist_info

    config.train.check()
    if config.train.patience > 0 and config.val_fraction == 0:
        raise NeuralabError(f"--patience {config.train.patience}: early stopping watches the validation set; "
                            "give --val-fraction above 0")
    _check_model_name(config.model)
    data = load_image_data(config.data, config.data_dir, val_fraction=config.val_fraction, seed=config.train.seed)
    pre = Preprocess.fit(data.train.x)
    seed_everything(config.train.seed)
    model = build_model(config.model, data.input_shape, len(data.classes), **config.model_options)
    meta = model_meta(config, data.classes, pre, count_parameters(model))

    # Inputs are valid: only now does anything touch the disk.
    is_main = dist_info().is_main
    run_dir = Path(out) if out is not None else default_run_dir(config.model, config.data)
    if is_main:
        create_run_dir(run_dir, overwrite)
    trainer = Trainer(model, config.train, CLASSIFICATION, run_dir, meta, verbose=verbose)
    if is_main:
        write_json(run_dir / "config.json", _run_record(config, trainer, data))
        write_json(run_dir / "model.json", meta)
    return _fit_and_finish(trainer, config, data, pre, run_dir, resume=False, verbose=verbose)


def _check_model_name(name: str) -> None:
    """Fail on a misspelt model before spending time on the data."""
    from neuralab.models import ARCHITECTURES

    if name not in ARCHITECTURES:
        raise NeuralabError(f"--model {name!r}: unknown model; choose one of: {', '.join(ARCHITECTURES)}")


def resume_classifier(run_dir: str | Path, verbose: bool = True) -> RunResult:
    """Continue an interrupted run from its last checkpoint, with its stored config."""
    from neuralab.data import load_image_data
    from neuralab.models import build_model

    run_dir = Path(run_dir)
    record = open_run(run_dir)
    config = ClassifierConfig.from_dict(record["config"])
    data = load_image_data(config.data, config.data_dir, val_fraction=config.val_fraction, seed=config.train.seed)
    meta = read_json(run_dir / "model.json")
    pre = Preprocess(tuple(meta["input_shape"]), **meta["preprocess"])
    seed_everything(config.train.seed)
    model = build_model(config.model, data.input_shape, len(data.classes), **config.model_options)
    trainer = Trainer(model, config.train, CLASSIFICATION, run_dir, meta, verbose=verbose)
    return _fit_and_finish(trainer, config, data, pre, run_dir, resume=True, verbose=verbose)


def _fit_and_finish(trainer: Trainer, config, data, pre, run_dir: Path, resume: bool, verbose: bool) -> RunResult:
    from neuralab.models import count_parameters
    from neuralab.models.summary import render_summary, summary
    from neuralab.reports.classifier import write_classifier_report

    main = trainer.dist.is_main
    summary_text = render_summary(summary(trainer.model, data.input_shape, name=config.model), rich=False)
    if main:
        with atomic_write(run_dir / "summary.txt") as f:
            f.write(summary_text + "\n")
    if verbose and main:
        print(summary_text, flush=True)
        print(_header(config, data, trainer), flush=True)
    # PyTorch's optimizers import torch._dynamo when the first one is made (about 2 s, once per
    # process): start-up like importing torch, so it happens before the training clock starts.
    import torch._dynamo  # noqa: F401

    t0 = time.perf_counter()
    history = trainer.fit(pre(data.train.x), torch.from_numpy(data.train.y),
                          val=(pre(data.val.x), torch.from_numpy(data.val.y)) if len(data.val) else None,
                          resume=resume)
    seconds = time.perf_counter() - t0
    x_test, y_test = pre(data.test.x), torch.from_numpy(data.test.y)
    test = trainer.evaluate(x_test, y_test)
    result = RunResult(run_dir, history, test, trainer.best_epoch(), seconds, count_parameters(trainer.model))
    if main:
        probs = torch.softmax(trainer.predict(x_test), dim=1).numpy()
        write_json(run_dir / "results.json", {
            "test_loss": test["loss"], "test_accuracy": test["accuracy"], "best_epoch": result.best_epoch,
            "train_seconds": seconds, "epochs_run": len(history),
            "confusion_matrix": confusion_matrix(probs.argmax(1), data.test.y, len(data.classes)).tolist(),
        })
        write_classifier_report(run_dir, probs, data.test.x, data.test.y, summary_text)
        if verbose:
            print(f"test accuracy {test['accuracy'] * 100:.2f}%  (best epoch {result.best_epoch}, "
                  f"{seconds:.1f}s of training)  run: {run_dir}", flush=True)
    return result


def confusion_matrix(pred: np.ndarray, true: np.ndarray, k: int) -> np.ndarray:
    """Rows are true classes, columns predicted ones."""
    return np.bincount(true * k + pred, minlength=k * k).reshape(k, k)


def _header(config: ClassifierConfig, data, trainer: Trainer) -> str:
    from neuralab.models import count_parameters

    return (f"{config.model} on {data.name}: {len(data.train):,} train / {len(data.val):,} val / "
            f"{len(data.test):,} test images {'x'.join(map(str, data.input_shape))}, "
            f"{count_parameters(trainer.model):,} parameters, device {trainer.device}, seed {config.train.seed}")


def _run_record(config: ClassifierConfig, trainer: Trainer, data) -> dict:
    return {
        "kind": "image-classifier",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": asdict(config),
        "environment": trainer.environment,
        "data": {"name": data.name, "classes": data.classes, "train": len(data.train),
                 "val": len(data.val), "test": len(data.test), "input_shape": list(data.input_shape)},
    }


def load_classifier(run_dir: str | Path) -> Classifier:
    """Rebuild a trained classifier from its run directory alone (JSON + safetensors)."""
    from neuralab.models import build_model

    run_dir = Path(run_dir)
    open_run(run_dir)
    meta = read_json(run_dir / "model.json")
    if not (run_dir / "model.safetensors").exists():
        raise NeuralabError(f"{run_dir}: no model.safetensors yet (the run has not finished an epoch)")
    model = build_model(meta["architecture"], meta["input_shape"], meta["num_classes"], **meta.get("options", {}))
    load_weights(run_dir / "model.safetensors", model)
    model.eval()
    pre = Preprocess(tuple(meta["input_shape"]), **meta["preprocess"])
    return Classifier(model, meta["classes"], pre, meta["architecture"])


def evaluate_run(run_dir: str | Path, data_dir: str | None = None) -> dict:
    """Test-set loss, accuracy and confusion matrix of a run, rebuilt from its directory."""
    from neuralab.data import load_image_data

    record = open_run(run_dir)
    config = ClassifierConfig.from_dict(record["config"])
    clf = load_classifier(run_dir)
    data = load_image_data(config.data, data_dir or config.data_dir, val_fraction=config.val_fraction,
                           seed=config.train.seed)
    probs = np.concatenate([clf.predict_proba(data.test.x[i:i + 2048]) for i in range(0, len(data.test), 2048)])
    pred = probs.argmax(1)
    loss = float(-np.log(np.clip(probs[np.arange(len(pred)), data.test.y], 1e-12, None)).mean())
    return {"test_loss": loss, "test_accuracy": float((pred == data.test.y).mean()),
            "confusion_matrix": confusion_matrix(pred, data.test.y, len(clf.classes)), "classes": clf.classes}
