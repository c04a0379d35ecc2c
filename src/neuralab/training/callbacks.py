"""Callbacks: code that the trainer calls as training goes, as Keras's ``fit(callbacks=[...])``.

A callback subclasses ``Callback`` and overrides the hooks it needs; any other object that
defines some of the hooks is taken as it is (``as_callback``). ``on_epoch_end`` sees
the epoch's record, the line metrics.jsonl gets ({"epoch", "loss", "accuracy", "val_loss",
"val_accuracy", "lr", ...}), and returns True to stop training after that epoch. The trainer
(the first argument of every hook) is the whole state: ``trainer.model``, ``trainer.optimizer``,
``trainer.history``, ``trainer.run_dir``, ``trainer.config``.

The trainer's own duties are callbacks too, first in the list: ``Checkpoint`` saves every
epoch, ``EarlyStopping`` stops when the monitored metric stops improving (TrainConfig's
``patience``), and ``neuralab.training.tensorboard.TensorBoard`` writes event files. Under
torchrun every process calls the callbacks; a stop decision must then be the same in all of
them (the records are: each holds the metrics over every process's share).
"""

from __future__ import annotations

import math

import warnings
from typing import Iterable

from neuralab.errors import ParameterError, Shown, named

HOOKS = ("on_train_begin", "on_step_end", "on_epoch_end", "on_train_end")


class Callback:
    """Does nothing at every hook: subclasses override the ones they need."""

    def on_train_begin(self, trainer) -> None:
        """Before the first epoch (of this session: a resumed run's history is already there)."""

    def on_step_end(self, trainer, step: int, steps: int) -> None:
        """After optimizer step ``step`` (1 to ``steps``) of the current epoch."""

    def on_epoch_end(self, trainer, record: dict) -> bool | None:
        """After each epoch, its validation and its checkpoint; True stops training."""

    def on_train_end(self, trainer) -> None:
        """After the last epoch, and also when training ends by an interruption or an error."""


class EarlyStopping(Callback):
    """Stops once ``patience`` epochs have passed without a better ``monitor`` value (lower
    for losses and errors, higher for accuracy); ``monitor`` None watches TrainConfig's."""

    def __init__(self, patience: int, monitor: str | None = None):
        self.patience, self.monitor = patience, monitor

    def on_train_begin(self, trainer) -> None:
        if self._due(trainer):  # a run resumed after the epoch that stopped it
            trainer.stop_training = True
            self._say(trainer)

    def on_epoch_end(self, trainer, record: dict) -> bool:
        monitor = self.monitor or trainer.config.monitor
        if self.patience > 0 and record.get(monitor) is None and len(trainer.history) == 1:
            # as Keras's EarlyStopping warns: without the metric it watches, it never stops
            warnings.warn(named(f"early stopping watches {monitor!r}, which the epochs do not report (validation "
                                "metrics need a validation set): it will not stop the training; give a validation "
                                "set (`val`, or a `val_fraction` above 0), or watch a training metric such as "
                                "'loss'"), stacklevel=2)
        due = self._due(trainer)
        if due:
            self._say(trainer)
        return due

    def _say(self, trainer) -> None:
        """The line that says training stopped early: in a log, the last epoch's line before the
        results would otherwise read as a job cut short."""
        monitor = self.monitor or trainer.config.monitor
        epoch, best = trainer.history[-1]["epoch"], self._best(trainer)
        if epoch >= trainer.config.epochs:  # patience ran out with the budget: nothing was cut short
            return
        # the trainer ends with the weights of the best epoch by the metric it watches itself
        back = "; the model goes back to its best epoch's weights" if monitor == trainer.config.monitor else ""
        trainer.say(f"stopped early at epoch {epoch} of {trainer.config.epochs}: {monitor} has not improved on "
                    f"epoch {best}'s for {epoch - best} epoch{'s' if epoch - best > 1 else ''} (patience "
                    f"{self.patience}){back}")

    def _due(self, trainer) -> bool:
        monitor = self.monitor or trainer.config.monitor
        if self.patience <= 0 or not trainer.history or trainer.history[-1].get(monitor) is None:
            return False
        return trainer.history[-1]["epoch"] - self._best(trainer) >= self.patience

    def _best(self, trainer) -> int:
        """The first epoch of the best value of the metric watched (one epoch reports it at least)."""
        monitor = self.monitor or trainer.config.monitor
        sign = -1 if monitor.endswith("accuracy") else 1
        scored = [(ranked(sign * r[monitor]), r["epoch"]) for r in trainer.history if r.get(monitor) is not None]
        return min(scored, key=lambda s: s[0])[1]


def ranked(score: float) -> float:
    """A monitored score (lower is better) as epochs are ranked by it: one that is not a finite
    number is never the best (NaN compares false with everything, and so took the best place
    wherever it came first). The trainer's best epoch and EarlyStopping's alike."""
    return score if math.isfinite(score) else math.inf


class Checkpoint(Callback):
    """Saves the full training state every epoch, and the weights when the epoch is the best
    (the trainer's ``save_epoch``, whose order of writes keeps a killed run resumable)."""

    def on_epoch_end(self, trainer, record: dict) -> None:
        trainer.save_epoch(record["epoch"])


def overrides(callback: Callback, hook: str) -> bool:
    """Whether ``callback`` does something at ``hook`` (the trainer skips the per-step call otherwise)."""
    return getattr(getattr(callback, hook), "__func__", None) is not getattr(Callback, hook)


class _Adopted(Callback):
    """A user's object with some of the hooks and not subclassing Callback: its hooks, and
    the base class's do-nothing ones for the rest."""

    def __init__(self, target):
        self.target = target
        for hook in HOOKS:
            if callable(getattr(target, hook, None)):
                setattr(self, hook, getattr(target, hook))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target!r})"


def as_callback(obj) -> Callback:
    """``obj`` as a Callback: itself when it subclasses Callback, else its own hooks adopted.

    A Keras callback is refused by name: its hooks take (epoch, logs) and see a Keras model."""
    if isinstance(obj, Callback):
        return obj
    if isinstance(obj, type):  # EarlyStopping for EarlyStopping(): its hooks would be called without self
        raise ParameterError("callbacks", obj.__name__, f"is a class; give an instance of it: "
                                                        f"callbacks=[{obj.__name__}(...)]")
    kind = type(obj)
    if kind.__module__.split(".")[0] in ("keras", "tf_keras", "tensorflow"):
        raise ParameterError("callbacks", obj, "is a Keras callback, whose hooks take (epoch, logs) and a Keras "
                             "model; neuralab's take the trainer: subclass neuralab.training.Callback, or fit the "
                             "Keras model with Keras and neuralab.training.RunLogger")
    if not any(callable(getattr(obj, hook, None)) for hook in HOOKS):
        raise ParameterError("callbacks", obj, f"defines none of the hooks {', '.join(HOOKS)}: subclass "
                             "neuralab.training.Callback and override the ones you need")
    return _Adopted(obj)


def checked_callbacks(callbacks) -> list[Callback]:
    """``callbacks``, a list (any iterable) of callbacks, each as a Callback (``as_callback``);
    one callback alone, not in a list, refused naming ``callbacks``: iterating over it would fail
    in Python's words, and only once a run was made. Every function that takes callbacks (the
    Trainer, train_classifier, run_forecast) checks them here, before anything is written."""
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Iterable):
        raise ParameterError("callbacks", Shown(callbacks), "give a list of callbacks, e.g. "
                                                            "callbacks=[EarlyStopping(patience=3)]")
    return [as_callback(c) for c in callbacks]
