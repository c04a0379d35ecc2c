"""Keras's own ``fit``, seen by neuralab: a callback that writes a live neuralab run directory.

    model.fit(x_train, y_train, epochs=10, callbacks=[RunLogger(out="runs/lenet5")])

While Keras trains, the folder is a run like one that `neuralab train` writes (docs/runs.md):
it is locked, config.json records the seed, the versions, the device and the settings given to
``compile`` and ``fit``, summary.txt holds the model summary, and every epoch adds a line to
metrics.jsonl under neuralab's names (Keras's "sparse_categorical_accuracy" is "accuracy"), so
`neuralab runs` and `neuralab serve` follow it live. Every epoch also converts the model as it
stands (neuralab.keras: the weights as safetensors, the layer spec in model.json, no code), so
that the run can be used from its first epoch on; at the end come results.json and the report.

Image classifiers (input (H, W, C), one score per class) become image-classifier runs that
`neuralab predict`, `evaluate` and `serve` use; sequence models (T, F) become forecaster runs
that record the training and the converted model, but not what `neuralab forecast predict`
needs (the series, target, scaling and window are outside the model): see docs/keras.md.

Importing this module imports Keras (``neuralab[keras]``); converting files never needs it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from neuralab import runs
from neuralab.errors import NeuralabError, ParameterError
from neuralab.keras import on_pytorch
from neuralab.keras.build import build, summary_text
from neuralab.keras.reader import read
from neuralab.keras.spec import input_shape, parameter_count
from neuralab.runs import Kind, Run
from neuralab.training.source import keras_pixels, parse_scale

on_pytorch()
import keras  # noqa: E402  (after choosing its backend)

# Keras's names for the metrics (as logs and History hold them) -> neuralab's, so that the runs
# table and the learning curves find them; anything else keeps Keras's name.
NAMES = {"acc": "accuracy", "sparse_categorical_accuracy": "accuracy", "categorical_accuracy": "accuracy",
         "binary_accuracy": "accuracy", "mean_absolute_error": "mae", "mean_squared_error": "mse",
         "learning_rate": "lr"}


def neuralab_names(logs: dict) -> dict:
    """Keras's epoch logs under neuralab's field names, as plain floats."""
    out = {}
    for key, value in (logs or {}).items():
        prefix, base = ("val_", key[4:]) if key.startswith("val_") else ("", key)
        try:
            out[prefix + NAMES.get(base, base)] = float(value)
        except (TypeError, ValueError):
            continue  # a metric that is not one number (a confusion matrix, say) is left out
    return out


class RunLogger(keras.callbacks.Callback):
    """Makes ``model.fit`` write a neuralab run directory at ``out`` (default runs/keras-NAME-DATE).

    ``classes``: the class names of an image classifier (default "0", "1", ...). ``scale``: what
    the pixels given to ``fit`` were multiplied by (default 1/255, images in [0, 1]; 1 when the
    model starts with a Rescaling layer), so that neuralab feeds the model raw images the same
    way. ``test``: optional (x, y) as given to ``model.evaluate``, for the test figures, the
    confusion matrix and the mistakes in the report. ``data``: the data's name in the runs
    table. ``seed``: the seed given to ``keras.utils.set_random_seed``, recorded (Keras cannot
    tell it afterwards). ``overwrite``: replace a finished run at ``out``.
    """

    def __init__(self, out: str | Path | None = None, classes=None, scale: float | None = None, test=None,
                 data: str = "", seed: int | None = None, overwrite: bool = False):
        super().__init__()
        if scale is not None:
            scale = parse_scale(scale)
        if test is not None and not (isinstance(test, (tuple, list)) and len(test) == 2 and len(test[0]) == len(test[1])):
            raise ParameterError("test", type(test).__name__, "must be (x, y) of the same length, as given to "
                                                              "model.evaluate")
        self.out, self.classes, self.scale, self.test = out, classes, scale, test
        self.data, self.seed, self.overwrite = str(data), seed, overwrite
        self.run: Run | None = None
        self.history: list[dict] = []

    # --- Keras's hooks -------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.model
        spec = read(model).spec  # refuses, naming it, a layer neuralab cannot convert: before any file
        self.kind, self.meta = self._describe(spec)
        path = Path(self.out) if self.out is not None else runs.default_dir("keras", model.name)
        self.run = Run.create(path, self.overwrite)
        self.run.write_record(self.kind, self._config(), self._environment(), self._data_record())
        self.run.write_text(runs.SUMMARY, self._summary(spec))
        self.run.write_json(runs.MODEL, self.meta)
        self.history, self._start = [], time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        record = {"epoch": epoch + 1, **neuralab_names(logs)}
        record.setdefault("lr", self._lr())
        record.update(seconds=now - self._epoch_start, elapsed=now - self._start)
        self.history.append(record)
        self.run.write_metrics(self.history)
        self._save_model()

    def on_train_end(self, logs=None):
        if self.run is None:
            return
        try:
            net = self._save_model()
            last = self.history[-1] if self.history else {}
            results = {"best_epoch": last.get("epoch", 0),  # Keras keeps the last epoch's weights
                       "epochs_run": len(self.history), "train_seconds": last.get("elapsed", 0.0),
                       "trained_by": runs.KERAS_FIT, "last_epoch": last}
            if self.kind is Kind.CLASSIFIER:
                self._finish_classifier(net, results)
            else:
                results["missing"] = ("a forecaster run made by Keras's fit holds the training and the converted "
                                      "model, not the series, target, scaling and window that a forecast run's "
                                      "predictions need, nor baselines and backtests")
                self.run.write_json(runs.RESULTS, results)
        finally:
            self.run.unlock()

    # --- what the run records ----------------------------------------------------------------------

    def _describe(self, spec: dict) -> tuple[Kind, dict]:
        """The run's kind and model.json (CONTRACT: the "keras" model source)."""
        model, shape = self.model, input_shape(spec)
        out = {e["name"]: e for e in spec["layers"]}[spec["output"]]["output_shape"]
        meta = {"architecture": f"keras:{model.name}", "options": {}, "input_shape": list(shape),
                "parameters": parameter_count(spec), "source": {"type": "keras", "spec": spec, "logits": True}}
        if len(shape) == 2:
            return Kind.FORECASTER, meta
        if len(shape) != 3 or shape[0] not in (1, 3) or len(out) != 2 or out[1] is None or out[1] < 2:
            raise NeuralabError(f"Keras model {model.name!r}: RunLogger records image classifiers (input (H, W, C) with "
                                f"1 or 3 channels, one score per class) and sequence models (T, F); this one maps "
                                f"{spec['layers'][0]['output_shape']} to {out}")
        k = out[1]
        classes = [str(i) for i in range(k)] if self.classes is None else self.classes
        if not (isinstance(classes, (list, tuple)) and len(classes) == k and all(isinstance(c, str) for c in classes)):
            raise ParameterError("classes", classes, f"must be {k} class names, one per output of the model")
        self.scale, pixels = keras_pixels(spec, self.scale, shape[0])
        self.classes = list(classes)
        meta.update(num_classes=k, classes=list(classes), preprocess=pixels)
        return Kind.CLASSIFIER, meta

    def _config(self) -> dict:
        model = self.model
        return {"model": f"keras:{model.name}", "data": self.data, "trained_by": runs.KERAS_FIT, "seed": self.seed,
                "scale": self.scale, "compile": _plain(model.get_compile_config()), "fit": _plain(self.params or {}),
                "keras_optimizer": _plain(getattr(model.optimizer, "get_config", dict)())}

    def _environment(self) -> dict:
        import torch

        from neuralab.training.device import environment

        device = torch.device("cpu")
        if keras.backend.backend() == "torch" and self.model.weights:
            device = self.model.weights[0].value.device
        return {**environment(device), "keras": keras.__version__, "keras_backend": keras.backend.backend()}

    def _data_record(self) -> dict:
        record = {"name": self.data, "input_shape": self.meta["input_shape"]}
        if self.kind is Kind.CLASSIFIER:
            record.update(classes=self.classes, test=len(self.test[0]) if self.test is not None else 0)
        return record

    def _summary(self, spec: dict) -> str:
        text = summary_text(spec, self.model.name, rich=False)
        if self.kind is Kind.CLASSIFIER:  # and the converted module, in PyTorch's layout
            import torch

            from neuralab.models.summary import render_summary, summary

            with torch.device("meta"):
                net = build(spec)
            text += "\nConverted to PyTorch (neuralab's layout):\n" + render_summary(
                summary(net, tuple(self.meta["input_shape"]), name=self.meta["architecture"]), rich=False)
        return text

    def _lr(self) -> float | None:
        try:
            return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except (AttributeError, TypeError, ValueError):
            return None

    def _save_model(self):
        """The model as it stands, converted: model.safetensors (what rebuilds from model.json's spec)."""
        from neuralab.training.checkpoint import save_weights

        current = read(self.model)
        net = build(current.spec, current.weights, logits=True).eval()
        epoch = self.history[-1]["epoch"] if self.history else 0
        save_weights(self.run / runs.WEIGHTS, net, {"architecture": self.meta["architecture"], "epoch": epoch})
        return net

    def _finish_classifier(self, net, results: dict) -> None:
        import torch

        from neuralab.reports.classifier import write_classifier_report
        from neuralab.training.classify import figures_on_test_set

        probs = images = labels = matrix = None
        if self.test is not None:
            x, y = np.asarray(self.test[0], dtype=np.float32), np.asarray(self.test[1])
            labels = (y.argmax(1) if y.ndim == 2 else y.reshape(-1)).astype(np.int64)
            with torch.inference_mode():
                logits = torch.cat([net(torch.from_numpy(x[i:i + 1024].transpose(0, 3, 1, 2).copy()))
                                    for i in range(0, len(x), 1024)])
            probs = torch.softmax(logits, dim=1).numpy()
            figures = figures_on_test_set(probs, labels, len(self.classes))
            matrix = figures["confusion_matrix"]
            results.update(figures, confusion_matrix=matrix.tolist())
            images = np.clip(np.rint(x / self.scale), 0, 255).astype(np.uint8).transpose(0, 3, 1, 2)
        self.run.write_json(runs.RESULTS, results)
        write_classifier_report(self.run.path, record=self.run.record, results=results, history=self.history,
                                matrix=matrix, probabilities=probs, images=images, labels=labels,
                                summary_text=(self.run / runs.SUMMARY).read_text())


def _plain(obj):
    """Keras's configs as plain JSON (objects Keras leaves in them become their text)."""
    import json

    return json.loads(json.dumps(obj, default=str))
