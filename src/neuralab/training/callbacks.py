"""Callbacks: code that the trainer calls as training goes, as Keras's ``fit(callbacks=[...])``.

A callback subclasses ``Callback`` and overrides the hooks it needs. ``on_epoch_end`` sees
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

    def on_epoch_end(self, trainer, record: dict) -> bool:
        return self._due(trainer)

    def _due(self, trainer) -> bool:
        monitor = self.monitor or trainer.config.monitor
        sign = -1 if monitor.endswith("accuracy") else 1
        scored = [(sign * r[monitor], r["epoch"]) for r in trainer.history if r.get(monitor) is not None]
        if self.patience <= 0 or not scored or trainer.history[-1].get(monitor) is None:
            return False
        best = min(scored, key=lambda s: s[0])[1]  # the first epoch of the best value
        return trainer.history[-1]["epoch"] - best >= self.patience


class Checkpoint(Callback):
    """Saves the full training state every epoch, and the weights when the epoch is the best
    (the trainer's ``save_epoch``, whose order of writes keeps a killed run resumable)."""

    def on_epoch_end(self, trainer, record: dict) -> None:
        trainer.save_epoch(record["epoch"])
