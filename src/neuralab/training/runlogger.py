"""Keras's own ``fit``, seen by neuralab: a callback that writes a live neuralab run directory.

    model.fit(x_train, y_train, epochs=10, callbacks=[RunLogger(out="runs/lenet5")])

While Keras trains, the folder is a run like one that `neuralab train` writes (docs/runs.md):
it is locked, config.json records the seed, the versions, the device and the settings given to
``compile`` and ``fit``, summary.txt holds the model summary, and every epoch adds a line to
metrics.jsonl under neuralab's names (Keras's "sparse_categorical_accuracy" is "accuracy"), so
`neuralab runs` and `neuralab serve` follow it live. Every epoch also converts the model as it
stands (neuralab.keras: the weights as safetensors, the layer spec in model.json, no code), so
that the run can be used from its first epoch on; at the end come results.json and, for an image
classifier, the report. A later fit that continues the model (``initial_epoch``) appends its
epochs to the same run, as Keras's CSVLogger(append=True) does.

Image classifiers (input (H, W, C), one score per class) become image-classifier runs that
`neuralab predict`, `evaluate` and `serve` use; sequence models (T, F) become forecaster runs
that record the training and the converted model, but not what `neuralab forecast predict`
needs (the series, target, scaling and window are outside the model): see docs/keras.md.

Importing this module imports Keras (``neuralab[keras]``); converting files never needs it.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from neuralab import runs
from neuralab.errors import NeuralabError, ParameterError, by, hwc
from neuralab.keras import on_pytorch
from neuralab.keras.build import build, summary_text
from neuralab.keras.reader import read
from neuralab.keras.spec import (
    binary_classifier,
    class_scores,
    ends_in_softmax,
    grey_images,
    input_shape,
    parameter_count,
    refuse_vectors,
    rescales,
    with_channel,
)
from neuralab.runs import Kind, Run
from neuralab.training.keras_model import keras_pixels, parse_scale

on_pytorch()
import keras  # noqa: E402  (after choosing its backend)

# Keras's names for the metrics (as logs and History hold them) -> neuralab's, so that the runs
# table and the learning curves find them; anything else keeps Keras's name.
NAMES = {"acc": "accuracy", "sparse_categorical_accuracy": "accuracy", "categorical_accuracy": "accuracy",
         "binary_accuracy": "accuracy", "mean_absolute_error": "mae", "mean_squared_error": "mse",
         "learning_rate": "lr"}


# results.json's "weights" where the run's are not one epoch's as it ended, but what fit set after the last
MOVING_AVERAGE = ("the optimizer's moving average of the weights (use_ema=True), which fit sets after the last "
                  "epoch")


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
    the pixels given to ``fit`` were multiplied by, so that neuralab feeds the model raw images the
    same way; left out, it is 1 where ``test``'s images are raw pixels (none negative, reaching
    16 or more), else 1/255 (images in [0, 1]), or 1 when the model starts with a Rescaling
    layer; a ``scale`` that ``test``'s images clearly contradict is refused, and images
    normalised beyond a scale (negative, or reaching between 1 and 16) are warned of: put
    that normalisation in the model. ``test``: optional (x, y) as given to ``model.evaluate``, for the test figures, the
    confusion matrix and the mistakes in the report (a sequence model's: the test loss and
    compile()'s metrics). ``data``: the dataset, for the runs table
    and for `neuralab evaluate`: a dataset's name (mnist, fashion-mnist, cifar10) or an image
    folder (recorded as its absolute path) lets it read the test set again, and refuse other
    images found there (the run records their digest); any other text is only a label, and None
    (the default) records no data. ``seed``: the seed given to ``keras.utils.set_random_seed``,
    recorded (Keras cannot tell it afterwards). ``overwrite``: replace a finished run at ``out``.

    A second ``fit`` with the same RunLogger appends its epochs to the run; so does a new
    RunLogger on the same ``out`` when ``fit`` continues the model from ``initial_epoch`` N,
    the number of epochs the run holds.
    """

    def __init__(self, out: str | Path | None = None, classes=None, scale: float | None = None, test=None,
                 data: str | Path | None = None, seed: int | None = None, overwrite: bool = False):
        super().__init__()
        if scale is not None:
            scale = parse_scale(scale)
        if test is not None and not (isinstance(test, (tuple, list)) and len(test) == 2 and len(test[0]) == len(test[1])):
            raise ParameterError("test", type(test).__name__, "must be (x, y) of the same length, as given to "
                                                              "model.evaluate")
        self.out, self.classes, self.scale, self.test = out, classes, scale, test
        self.data, self.seed, self.overwrite = data_record(data), seed, overwrite
        # Given by the caller, or defaults: a run this logger takes over keeps its own for the defaults
        self._given = {"classes": classes is not None, "scale": scale is not None, "data": self.data is not None}
        self._kept: Run | None = None  # the run continued whose recorded scale this logger keeps, given none
        self.run: Run | None = None
        self.history: list[dict] = []
        self._path: Path | None = None
        self._opening = self._open_now = False
        self._continuing = False  # a continued run not written yet: its first epoch in this fit has not ended
        self._weights_by_epoch: dict[int, str] = {}  # epoch -> the sha256 of its converted weights
        self._trained: str | None = None  # the sha256 of the weights as fit's training loop left them
        self._ending = False  # fit's CallbackList is calling the callbacks' on_train_end: finish after them

    # --- Keras's hooks -------------------------------------------------------------------------

    def set_model(self, model):
        super().set_model(model)
        watched = self.model  # Keras's own, unwrapped from the DistributedDataParallel it may train in
        if watched is None or isinstance(watched, keras.Model):
            return
        torch = sys.modules.get("torch")  # imported by then: Keras runs on it
        if torch is not None and isinstance(watched, torch.nn.Module):
            raise NeuralabError(f"RunLogger watches Keras's fit, and got a torch.nn.Module ({type(watched).__name__}): "
                                "for your own PyTorch module use neuralab.Trainer (its fit takes your tensors) or "
                                "train_classifier(ClassifierConfig(model=module, ...)) (docs/api.md, 'Your own model "
                                "on the trainer' and 'Your own module: model=')")
        raise NeuralabError(f"RunLogger watches Keras's fit of a keras.Model, and got {type(watched).__name__}; give "
                            "it to model.fit(..., callbacks=[RunLogger(...)])")

    def on_train_begin(self, logs=None):
        self._spec = self._read().spec  # refuses, naming it, a layer neuralab cannot convert: before any file
        self.kind, self.meta = self._describe(self._spec)
        self._warn_of_other_sizes()
        if self._path is None:
            self._path = Path(self.out) if self.out is not None else runs.default_dir("keras", self.model.name)
        # The folder is set up at the first epoch: only then does Keras tell where this fit starts
        # (its initial_epoch), which decides between a new run and one continued
        self._opening, self._open_now, self._continuing = True, False, False
        self._weights_by_epoch, self._trained = {}, None

    def on_epoch_begin(self, epoch, logs=None):
        if self._opening:
            self._opening = False
            self._open(epoch)
            self._open_now = True
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        if self._continuing:
            self._continuing = False
            self._take_over()
        record = {"epoch": epoch + 1 + self._offset, **neuralab_names(logs)}
        record.setdefault("lr", self._lr())
        record.update(seconds=now - self._epoch_start, elapsed=now - self._start)
        self.history.append(record)
        self.run.write_metrics(self.history)
        self._weights_by_epoch[record["epoch"]] = self._save_model(record["epoch"])[1]

    def on_train_end(self, logs=None):
        if not self._ending:  # called by hand, not by fit's CallbackList (which finishes the run after all)
            self._finish()

    def _training_ended(self) -> None:
        """Note the weights as fit's training loop leaves them, before any callback's on_train_end:
        the last epoch's, or what the optimizer made of them after it (Adam(use_ema=True) sets
        its moving average of the weights)."""
        if self._open_now and not self._continuing and self.history:
            self._trained = self._save_model(self.history[-1]["epoch"])[1]

    def _finish(self) -> None:
        if not self._open_now or self._continuing:  # a fit that ran no epoch leaves the run as it was
            return
        self._open_now = False
        try:
            last = self.history[-1] if self.history else {}
            net, now = self._save_model(last.get("epoch", 0))  # converted again: a callback may have set weights
            kept = self._kept_epoch(now, last.get("epoch", 0))
            if kept != last.get("epoch", 0):  # the file records the epoch whose weights it holds
                self._save_model(kept)
            results = {"best_epoch": kept,  # the epoch whose weights the model ends with (None: none of them)
                       "epochs_run": len(self.history), "train_seconds": last.get("elapsed", 0.0),
                       "trained_by": runs.KERAS_FIT, "last_epoch": last}
            if now == self._trained != self._weights_by_epoch.get(kept) and self._averaged():
                results["weights"] = MOVING_AVERAGE
            if self.kind is Kind.CLASSIFIER:
                self._finish_classifier(net, results)
            else:
                if self.test is not None:
                    results.update(self._sequence_test_figures(net))
                results["missing"] = ("a forecaster run made by Keras's fit holds the training and the converted "
                                      "model, not the series, target, scaling and window that a forecast run's "
                                      "predictions need, nor baselines and backtests")
                self.run.write_json(runs.RESULTS, results)
        finally:
            self.run.unlock()

    # --- a new run, or one continued ----------------------------------------------------------------

    def _open(self, epoch: int) -> None:
        """Set up the run for a fit whose first epoch is ``epoch`` (0-based, Keras's initial_epoch)."""
        path = self._path
        held = (path / runs.CONFIG).is_file()
        if self.run is not None and held:  # this logger's own run, from an earlier fit
            self._settle_scale()
            self._continue(epoch, renumber=True)
            return
        if held and not self.overwrite and self.out is not None and _by_keras_fit(path):
            done = _epochs_in(path)
            if epoch == 0:
                raise ParameterError("out", str(path), f"already holds a run of Keras's fit ({done} epochs); to "
                                     f"train it on, call model.fit(..., initial_epoch={done}) with the model it "
                                     "recorded, pass `overwrite` to replace it, or choose another `out`")
            run = Run(path).lock()
            try:
                self._adopt(run)
            finally:
                run.unlock()
            self.run = run
            self._continue(epoch, renumber=False)
            return
        self._settle_scale()
        self.run = Run.create(path, self.overwrite, numbered=self.out is None)  # a default name taken: NAME-2
        self._path = self.run.path
        self.run.write_start(self.kind, self._config(), self._environment(), self._data_record(), self.meta)
        self.run.write_text(runs.SUMMARY, self._summary(self._spec))
        self.history, self._offset, self._start = [], 0, time.perf_counter()

    def _continue(self, epoch: int, renumber: bool) -> None:
        """Go on with the run: its epochs so far stay, this fit's follow them. A fit starting
        again at epoch 0 with the same logger trains the model on, so its epochs are numbered
        after the run's; one starting elsewhere than after the run's last is refused. The run
        stays as it was, finished and unlocked, until this fit's first epoch ends (``_take_over``):
        a fit failing before that (labels Keras refuses, an optimizer it cannot restore) leaves
        its results and report, which no later command could make again."""
        self.run.lock()  # refused while another process trains it
        self.run.unlock()
        done = self.history[-1]["epoch"] if self.history else 0
        if epoch != done and not (renumber and epoch == 0):
            raise NeuralabError(f"{self.run.path}: the run holds epochs 1 to {done}, and this fit starts at epoch "
                                f"{epoch + 1}; continue it with model.fit(..., initial_epoch={done}), or give "
                                "RunLogger another out")
        self._offset = done - epoch
        self._start = time.perf_counter() - float((self.history[-1] if self.history else {}).get("elapsed") or 0.0)
        self._continuing = True

    def _take_over(self) -> None:
        """Lock the continued run and write this fit's settings, once its first epoch has ended."""
        self.run.lock()
        # No longer finished while it trains: an interrupted continuation reads as interrupted. The
        # test figures go too: they are of weights this fit changes, and one given no test set draws none
        test_figures = (runs.CLASSIFIER_FIGURES[name] for name in ("confusion_matrix", "mistakes"))
        for name in (runs.RESULTS, runs.REPORT, *test_figures):
            (self.run / name).unlink(missing_ok=True)
        record = self.run.record
        config = runs.json_object(record.get("config"))
        config.update(fit=_plain(self.params or {}), keras_optimizer=self._config()["keras_optimizer"])
        if self.data is not None and config.get("data") is None:  # data named now, as evaluate's message asks
            config["data"] = self.data
            record["data"] = {**runs.json_object(record.get("data")), "name": self.data}
            if self.kind is Kind.CLASSIFIER:
                record["data"].update(_data_digest(self.data))
        record["config"] = config
        self.run.write_json(runs.CONFIG, record)
        self.run.write_json(runs.MODEL, self.meta)

    def _adopt(self, run: Run) -> None:
        """Take over a run that another RunLogger wrote at ``out``: the same model (its layers and
        shapes), and the settings the run recorded wherever this logger was not given others."""
        stored = runs.json_object(run.read(runs.MODEL))
        config = runs.json_object(run.record.get("config"))
        spec = runs.json_object(stored.get("source")).get("spec")
        if run.kind is not self.kind or _layout(spec) != _layout(self.meta["source"]["spec"]):
            raise ParameterError("out", str(run.path), f"holds the run of another model ({stored.get('architecture')}, "
                                 f"{stored.get('parameters')} parameters); continue a run with the model it "
                                 "recorded, or choose another `out`")
        kept = {"classes": stored.get("classes"), "scale": config.get("scale"), "data": config.get("data")}
        if self.kind is Kind.CLASSIFIER and kept["scale"]:  # before "leave `scale` out", which would not do either
            with warnings.catch_warnings():  # said once, by _settle_scale
                warnings.simplefilter("ignore")
                _pixel_scale_of_test(self.test, kept["scale"], self._spec, run)
        for name, value in kept.items():
            given = getattr(self, name)
            if self._given[name] and value is not None and given != value:
                shown = _fraction(value) if name == "scale" and isinstance(value, (int, float)) else repr(value)
                raise ParameterError(name, given, f"the run at {run.path} has {shown}, and a continued run keeps "
                                     f"its settings; leave `{name}` out, or choose another `out`")
        if self.kind is Kind.CLASSIFIER:
            self.classes, self.scale = kept["classes"] or self.classes, kept["scale"] or self.scale
            self._kept = run if kept["scale"] else None  # the scale in force is the run's, given or not
        self.data = kept["data"] if kept["data"] is not None else self.data
        self.kind, self.meta = self._describe(self._spec)
        self._settle_scale()
        self.history = run.metrics()

    def _settle_scale(self) -> None:
        """The pixel scale in force and model.json's preprocess with it: told from, or checked
        against, `test`'s pixels once it is known whether a continued run's scale is kept."""
        if self.kind is Kind.CLASSIFIER:
            self.scale = _pixel_scale_of_test(self.test, self.scale, self._spec, self._kept)
            self.scale, self.meta["preprocess"] = keras_pixels(self._spec, self.scale, self.meta["input_shape"][0])

    # --- what the run records ----------------------------------------------------------------------

    def _describe(self, spec: dict) -> tuple[Kind, dict]:
        """The run's kind and model.json (CONTRACT: the "keras" model source)."""
        model, shape = self.model, input_shape(spec)
        out = {e["name"]: e for e in spec["layers"]}[spec["output"]]["output_shape"]
        meta = {"architecture": f"keras:{model.name}", "options": {}, "input_shape": list(shape),
                "parameters": parameter_count(spec), "source": {"type": "keras", "spec": spec, "logits": True}}
        if len(shape) == 2:
            return Kind.FORECASTER, meta
        if len(shape) == 3 and binary_classifier(spec, self._loss(),
                                                 f"Keras model {model.name!r}: RunLogger records image classifiers"):
            out = [None, 2]  # one sigmoid unit: classes 0 and 1, as logits [0, z]
        if len(shape) != 3 or shape[0] not in (1, 3) or len(out) != 2 or out[1] is None or out[1] < 2:
            if class_scores(spec, self._loss()):  # Keras's MNIST MLP, on images flattened by hand
                refuse_vectors(spec, f"Keras model {model.name!r}")
            # a forecaster on windows given as vectors (64 steps of one series) is one step from a sequence model
            steps = (f"; if its {shape[0] or 'N'} inputs are the steps of one series, as a sequence model (T, F), start "
                     f"it with keras.Input(({shape[0] or 'steps'}, 1)) and Flatten() before its first Dense (whose "
                     "weights stay the same), and fit it on x[..., None]" if len(shape) == 1 else "")
            raise NeuralabError(f"Keras model {model.name!r}: RunLogger records image classifiers (input (H, W, C) with "
                                f"1 or 3 channels, one score per class or one sigmoid unit for 2) and sequence models "
                                f"(T, F); this one maps {spec['layers'][0]['output_shape']} to {out}{steps}")
        k = out[1]
        classes = self._default_classes(k) if self.classes is None else self.classes
        if not (isinstance(classes, (list, tuple)) and len(classes) == k and all(isinstance(c, str) for c in classes)):
            raise ParameterError("classes", classes, f"must be {k} class names, one per output of the model")
        # The scale as given, or the default (a model whose Rescaling comes after its augmentation takes
        # raw pixels too), until _settle_scale tells it from `test` once the run is known
        pixels = keras_pixels(spec, self.scale, shape[0])[1]
        self.classes = list(classes)
        meta.update(num_classes=k, classes=list(classes), preprocess=pixels)
        return Kind.CLASSIFIER, meta

    def _warn_of_other_sizes(self) -> None:
        """Warn where `data` names a dataset whose pictures the model does not take (MNIST padded to
        32x32 for LeNet-5): the run is recorded, and nothing can test it on that dataset again."""
        from neuralab.data.sources import other_pictures

        takes = tuple(self.meta["input_shape"])
        theirs = other_pictures(self.data, takes) if self.kind is Kind.CLASSIFIER else None
        if theirs is None:
            return
        test = "" if self.test is not None else "pass `test=` to record fit's test figures; "
        warnings.warn(f"`data`: the pictures of {self.data} are {hwc(theirs)} and the model takes "
                      f"{hwc(takes)}, so evaluate and report cannot test the run on them; {test}a model saved with "
                      f"model.save() and imported for {self.data} is given them padded inside the network; or name "
                      f"the data in words (data=\"{self.data}, at {by(takes[1:])}\")")

    def _default_classes(self, k: int) -> list[str]:
        """A named dataset's class names where it has the model's ``k`` (Fashion-MNIST's clothes,
        not the digits 0-9 for them), else "0", "1", ..."""
        from neuralab.data.sources import SOURCES

        source = SOURCES.get(self.data) if isinstance(self.data, str) else None
        if source is not None and len(source.classes) == k:
            return list(source.classes)
        return [str(i) for i in range(k)]

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
        return environment(device)  # with Keras's version and backend, as Keras is loaded

    def _data_record(self) -> dict:  # "name": None says that no data was recorded
        record = {"name": self.data, "input_shape": self.meta["input_shape"]}
        if self.kind is Kind.CLASSIFIER:
            record.update(classes=self.classes, test=len(self.test[0]) if self.test is not None else 0,
                          **_data_digest(self.data))
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

    def _read(self):
        """The model converted; grey images given without their channel axis (TensorFlow's first
        tutorial, Flatten(input_shape=(28, 28))) become (H, W, 1) images, as neuralab's runs take them."""
        model = read(self.model)
        if grey_images(model.spec, self._loss()):
            model.spec = with_channel(model.spec)
        return model

    def _loss(self):
        """compile()'s loss, a name or Keras's config of a loss object (None: not compiled)."""
        return _plain(self.model.get_compile_config() or {}).get("loss")

    def _save_model(self, epoch: int | None):
        """The model as it stands, converted: model.safetensors (what rebuilds from model.json's
        spec), recorded as ``epoch``'s; the module and its weights' sha256, as the file's header has it."""
        from neuralab.safetensors_header import read_safetensors_header, safetensors_metadata
        from neuralab.training.checkpoint import save_weights

        current = self._read()
        net = build(current.spec, current.weights, logits=True).eval()
        save_weights(self.run / runs.WEIGHTS, net, {"architecture": self.meta["architecture"], "epoch": epoch})
        return net, safetensors_metadata(read_safetensors_header(self.run / runs.WEIGHTS)[2]).get("sha256")

    def _kept_epoch(self, now: str | None, last: int) -> int | None:
        """The epoch whose weights (``now``, their sha256) the model ends ``fit`` with: the ``last``
        one, also where the optimizer set its own after it (its moving average, use_ema=True),
        unless a callback set others (EarlyStopping(restore_best_weights=True) the best epoch's);
        None where they are no epoch's of this fit."""
        if now in (self._weights_by_epoch.get(last), self._trained):
            return last
        return max((e for e, digest in self._weights_by_epoch.items() if digest == now), default=None)

    def _averaged(self) -> bool:
        """Whether compile()'s optimizer ends fit with its moving average of the weights, as its config says."""
        # under mixed precision compile() wraps it in a LossScaleOptimizer, whose own config has use_ema False
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        return bool(_plain(getattr(optimizer, "get_config", dict)()).get("use_ema"))

    def _finish_classifier(self, net, results: dict) -> None:
        import torch

        from neuralab.reports.classifier import write_classifier_report
        from neuralab.training.evaluate import figures_on_test_set

        probs = images = labels = matrix = None
        if self.test is not None:
            x, y = np.asarray(self.test[0], dtype=np.float32), np.asarray(self.test[1])
            x = x[..., None] if x.ndim == 3 else x  # grey images without their channel axis
            # one-hot rows, or labels (N,) or (N, 1) as a sigmoid unit's binary cross-entropy takes them
            labels = (y.argmax(1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)).astype(np.int64)
            with torch.inference_mode():
                logits = torch.cat([net(torch.from_numpy(x[i:i + 1024].transpose(0, 3, 1, 2).copy()))
                                    for i in range(0, len(x), 1024)])
            probs = torch.softmax(logits, dim=1).numpy()
            figures = figures_on_test_set(probs, labels, len(self.classes))
            loss = self._evaluated_loss(logits.numpy(), probs, np.asarray(self.test[1]))
            if loss is not None:
                figures["test_loss"] = loss
            matrix = figures["confusion_matrix"]
            results.update(figures, confusion_matrix=matrix.tolist())
            images = np.clip(np.rint(x / self.scale), 0, 255).astype(np.uint8).transpose(0, 3, 1, 2)
        self.run.write_json(runs.RESULTS, results)
        write_classifier_report(self.run.path, record=self.run.record, results=results, history=self.history,
                                matrix=matrix, probabilities=probs, images=images, labels=labels,
                                summary_text=(self.run / runs.SUMMARY).read_text())

    def _sequence_test_figures(self, net) -> dict:
        """A sequence model's figures on ``test``, of the converted model (the run's): compile()'s
        loss as Keras's ``evaluate`` computes it (without regularizers' terms), and each metric
        compile() names by a name Keras knows ("mae"), under neuralab's name (test_mae)."""
        import torch

        x, y = np.asarray(self.test[0], dtype=np.float32), np.asarray(self.test[1], dtype=np.float32)
        with torch.inference_mode():
            out = torch.cat([net(torch.from_numpy(x[i:i + 1024])) for i in range(0, len(x), 1024)]).numpy()
        y = y.reshape(out.shape) if y.size == out.size else y  # targets (N,) against Dense(1)'s (N, 1), as fit takes them
        figures = {}
        for name, function in [("loss", getattr(self.model, "loss", None)),
                               *((m, m) for m in _plain(self.model.get_compile_config() or {}).get("metrics") or ()
                                 if isinstance(m, str))]:
            try:
                value = (keras.losses if name == "loss" else keras.metrics).get(function)(y, out)
                figures[f"test_{NAMES.get(name, name)}"] = float(np.mean(keras.ops.convert_to_numpy(value)))
            except Exception:  # noqa: BLE001  a loss or metric of the learner's own that takes other targets
                continue
        return figures

    def _evaluated_loss(self, logits: np.ndarray, probs: np.ndarray, y: np.ndarray) -> float | None:
        """compile()'s loss on the test set as Keras's ``evaluate`` gives it, from the converted
        model's outputs as Keras's are (its probabilities after a softmax or a sigmoid unit, else
        its logits): on probabilities (from_logits=False) Keras clips them to [epsilon, 1 -
        epsilon] before the log, so an image given its class at under 1e-7 costs 16.1, not its
        exact cross-entropy. Regularizers' terms, which evaluate adds, are left out. None where
        the model has no loss Keras can compute on them."""
        loss = getattr(self.model, "loss", None)
        if loss is None:
            return None
        outputs = probs if ends_in_softmax(self._spec) else logits
        if binary_classifier(self._spec, self._loss(), self.model.name):  # logits [0, z]: z, or its sigmoid
            last = {e["name"]: e for e in self._spec["layers"]}[self._spec["output"]]
            outputs = logits[:, 1:] if last["args"].get("activation", "linear") == "linear" else probs[:, 1:]
            y = y.reshape(-1, 1) if y.ndim == 1 else y  # labels (N,) against the unit's (N, 1), as compile() takes them
        try:
            value = keras.losses.get(loss)(y, outputs)  # a loss function's by image, a Loss object's averaged
            return float(np.mean(keras.ops.convert_to_numpy(value)))
        except Exception:  # noqa: BLE001  a loss of the learner's own that takes other targets: the run's own
            return None


def _finish_runs_after_every_callback() -> None:
    """Have fit's CallbackList finish each RunLogger in it once every callback's on_train_end has
    run, whatever their order in the list: EarlyStopping(restore_best_weights=True) sets the best
    epoch's weights in its own, and a History the user lists (or Keras appends) is no sure last.
    Before them it notes the weights the training loop left (``_training_ended``). Done once, on
    Keras's class: fit builds its CallbackList inside, out of a callback's reach."""
    ends = keras.callbacks.CallbackList.on_train_end
    if getattr(ends, "finishes_runs", False):  # this module imported again
        return

    def on_train_end(self, logs=None):
        loggers = [c for c in self.callbacks if isinstance(c, RunLogger)]
        for logger in loggers:
            logger._ending = True
        stopped = False
        try:
            for logger in loggers:
                logger._training_ended()
            ends(self, logs)
        except BaseException as e:
            stopped = not isinstance(e, Exception)  # Ctrl-C, sys.exit
            raise
        finally:  # a callback failing in its own on_train_end still leaves the runs finished, unlocked
            for logger in loggers:
                logger._ending = False
            for logger in loggers:
                if not stopped:
                    logger._finish()
                elif logger.run is not None:  # stopped now, as anywhere else in fit: interrupted, unlocked, with
                    logger.run.unlock()  # no test set evaluated nor weights sealed that later callbacks would set

    on_train_end.finishes_runs = True
    keras.callbacks.CallbackList.on_train_end = functools.wraps(ends)(on_train_end)


_finish_runs_after_every_callback()


def data_record(data) -> str | None:
    """RunLogger's ``data`` as config.json records it: a dataset's name as it is, an existing
    folder or file as its absolute path (so that the run reads it again from any directory, as
    `neuralab train` records it), other text as a label, and no data (None, "") as null."""
    from neuralab.data import NAMED

    if data is None or data == "":
        return None
    if not isinstance(data, (str, os.PathLike)):
        raise ParameterError("data", data, "must be a dataset name (mnist, fashion-mnist, cifar10), an image folder "
                                           "or a label")
    text = os.fspath(data)
    if text in NAMED:  # a named dataset wins over a folder of the same name, as load_image_data reads it
        return text
    path = Path(text).expanduser()
    return str(path.resolve()) if path.exists() else text


def _data_digest(data: str | None) -> dict:
    """What `neuralab evaluate` and `report` check the data ``data`` names against when they read
    it again (data.digest's, as a trained or imported run's config.json records it): a named
    dataset's images as evaluate splits them, an image folder's pictures by their names and sizes;
    {} for a label, or a dataset or folder that cannot be read here (the fit was given arrays)."""
    from neuralab.data import NAMED, load_image_data
    from neuralab.data.digest import data_digest, listing_sha256
    from neuralab.training.config import ClassifierConfig

    try:
        if data in NAMED:  # read as evaluate reads it again: the default split of stored_config's config
            return data_digest(load_image_data(data, **ClassifierConfig().data_options))
        if data is not None and Path(data).is_dir():
            return {"listing_sha256": listing_sha256(Path(data))}
    except NeuralabError:  # not fetched, or no folder of class folders: evaluate says so when it reads it
        pass
    return {}


# Pixels reaching this or more, none negative, are raw 0-255 ones: no normalisation of pixels in
# [0, 1] goes this high (the usual (x - 0.1307) / 0.3081 of MNIST reaches 2.82)
RAW = 16


def _pixel_scale_of_test(test, scale: float | None, spec: dict, kept: Run | None = None) -> float | None:
    """What the pixels given to ``fit`` were multiplied by, as the images of ``test`` show it
    (None: keras.spec.pixel_scale's default). Told where ``scale`` is None only where they are
    clear: 1 for raw pixels (none negative, reaching RAW or more); pixels within [0, 1] say
    nothing under a Rescaling layer (a dark test set) and keep the default. A ``scale`` they
    clearly contradict is refused: 1/255 against raw pixels, or 1 against pixels within [0, 1]
    reaching above 0.5 in a model without Rescaling; where the scale is the one ``kept``, the
    continued run's, it is the run that is refused, naming ``out``. Negative pixels, or ones
    between 1 and RAW that no ``scale`` given describes (standardised or shifted), are warned of, and
    the scale stays as given. Without ``test`` nothing is seen, and ``scale`` stays as it is."""
    x = None if test is None else np.asarray(test[0])
    if x is None or not x.size:
        return scale
    low, top = float(np.min(x)), float(np.max(x))
    raw = low >= 0 and top >= RAW
    # pixels / 127.5 under scale=1/127.5: reaching towards the scale's white, and not past it
    described = scale is not None and 255 * scale / 2 < top <= 255 * scale * (1 + 1e-6)
    if low < 0 or 1 < top < RAW and not described:
        warnings.warn(f"`scale`: the pixels of `test` reach {low:g} to {top:g}, normalised beyond a scale, and "
                      "neuralab records only what the pixels were multiplied by, so its predict and evaluate will "
                      "not feed the model what fit saw; put the normalisation in the model "
                      "(keras.layers.Rescaling(1/127.5, offset=-1) or Normalization) and fit it on raw pixels")
        return scale
    if scale is None:
        return 1.0 if raw else None
    darker = raw and top > 255 * scale * (1 + 1e-6)
    brighter = low >= 0 and 0.5 < top <= 1 < 255 * scale / 2 and not rescales(spec)
    if not (darker or brighter):
        return scale
    if kept is not None:  # the caller gave no scale: changing it is no way out, another run is
        first = "" if runs.json_object(kept.record.get("data")).get("test") else " (its first fit had no test set)"
        raise ParameterError("out", str(kept.path), f"the run there records scale={_fraction(scale)}{first}, which "
                             f"the pixels of `test` (reaching {top:g}) contradict; a continued run keeps it: choose "
                             "another `out`")
    raise ParameterError("scale", _fraction(scale), f"says the pixels given to fit reach {255 * scale:g} at most (white), and "
                         f"those of `test` reach {top:g}; give scale={'1' if raw else '1/255'}, or leave "
                         "`scale` out to have it told from `test`")


def _fraction(scale: float) -> str:
    """A scale as a user writes it: 1/255 rather than 0.00392157."""
    return "1/255" if abs(scale * 255 - 1) < 1e-6 else f"{scale:g}"


def _by_keras_fit(path: Path) -> bool:
    try:
        return Run(path).by_keras_fit
    except NeuralabError:  # a damaged config.json is no run to continue: Run.create says what to do
        return False


def _epochs_in(path: Path) -> int:
    rows = Run(path).metrics()
    return int(rows[-1].get("epoch") or len(rows)) if rows else 0


def _layout(spec) -> list | None:
    """A model's layers as classes and shapes: what a continued run's model must share with the
    recorded one (a model built again in the same session has other layer names)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
        return None
    layers = [(e.get("class"), e.get("output_shape"), e.get("weights")) for e in spec["layers"] if isinstance(e, dict)]
    return _plain(layers)  # as JSON holds it: the stored spec's tuples came back as lists


def _plain(obj):
    """Keras's configs as plain JSON (objects Keras leaves in them become their text)."""
    import json

    return json.loads(json.dumps(obj, default=str))
