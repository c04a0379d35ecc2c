"""TensorBoard event files for a run, so that ``tensorboard --logdir runs`` shows neuralab's
runs beside those of Keras's ``TensorBoard`` callback and PyTorch's ``SummaryWriter``.

The layout is Keras's: ``RUN/tensorboard/train`` and ``RUN/tensorboard/validation``, each with
``epoch_loss``, ``epoch_accuracy`` (``epoch_mae`` for series) at step = epoch, so that a
metric's training and validation curves share one chart. The train folder also holds the
learning rate, the model summary as text and, for image models, the first convolution's
filters and its feature maps of one image, each epoch (one forward pass of one image).
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from neuralab.errors import NeuralabError, ParameterError
from neuralab.files import staging_prefix, write_advice
from neuralab.runs import CONFIG, RESULTS, SUMMARY, TENSORBOARD, folder_path
from neuralab.training.callbacks import Callback
from neuralab.training.config import NO_TENSORBOARD

FOLDER = TENSORBOARD
NOT_SCALARS = ("epoch", "samples", "elapsed")  # counts and clocks, not metrics of the epoch


def summary_writer():
    """PyTorch's SummaryWriter class; a one-line error when the tensorboard package is missing
    or is there but does not import (a broken install, or one at odds with its protobuf, which
    raises TypeError as often as ImportError)."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise NeuralabError(NO_TENSORBOARD)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as e:  # whatever a broken package raises, it cannot write events
        why = next((line.strip() for line in str(e).splitlines() if line.strip()), "")[:120]
        raise NeuralabError(f"`tensorboard` needs the tensorboard package, which is installed but does not import "
                            f"({type(e).__name__}{': ' + why if why else ''}); reinstall it: pip uninstall tensorboard, "
                            "then pip install 'neuralab[tensorboard]'") from None
    return SummaryWriter


NOT_UTF8 = "TensorBoard writes its events only under folder names in UTF-8, and this name is not"


def check_log_dir(path, then: str = "name the run's folder in UTF-8 (give `out` another name), or leave "
                                    "`tensorboard` off") -> None:
    """Refuse a folder TensorBoard cannot write in before a run is made there: its event writer
    encodes the path as UTF-8, and a name in another encoding (Latin-1 on an old cluster's file
    system) fails half-way, after it made the folder. ``then``: what to do, which depends on what
    chose the folder (``check_event_folders``)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise NeuralabError(f"{path}: {NOT_UTF8}; {then}") from None


def check_event_folders(run_dir, tensorboard: bool, callbacks=(), resuming: bool | None = None) -> None:
    """Refuse, before a run in ``run_dir`` is made or resumed, every folder its TensorBoard events
    would go to that TensorBoard cannot write in (``check_log_dir``): ``run_dir``/tensorboard where
    ``tensorboard`` (the config's) is on, and each TensorBoard callback's ``log_dir``, else that
    same folder. The advice fits what chose the folder: a new run's `out`, a resumed run's own
    folder (which only a rename changes: a resume keeps the run's settings), a callback's
    ``log_dir``. ``resuming`` None: a resume where ``run_dir`` holds an unfinished run already."""
    if resuming is None:
        resuming = run_dir is not None and (Path(run_dir) / CONFIG).is_file() and not (Path(run_dir) / RESULTS).exists()
    # what names the run's folder anew: a new run's `out`, else a rename of the resumed run's folder
    rename = ("rename the run's folder to a name in UTF-8 (mv), then resume the run with `resume` and that name"
              if resuming else "name the run's folder in UTF-8 (give `out` another name)")
    if tensorboard and run_dir is not None:
        check_log_dir(run_dir, rename if resuming else f"{rename}, or leave `tensorboard` off")
    for callback in callbacks:
        if not isinstance(callback, TensorBoard):
            continue
        if callback.log_dir is not None:
            log_dir = folder_path(callback.log_dir, "log_dir")
            check_log_dir(log_dir, "give the TensorBoard callback a `log_dir` named in UTF-8")
            check_makeable(log_dir)
        elif run_dir is not None:  # with neither, on_train_begin asks for a log_dir
            check_log_dir(Path(run_dir) / FOLDER, f"{rename}, or give the TensorBoard callback a `log_dir` named "
                                                  "in UTF-8")


def check_makeable(log_dir: Path) -> None:
    """Refuse, naming ``log_dir``, a callback's folder that its event writers could not make or
    write in (a file, a path through a file, /proc): they make it only once training begins, after
    the run's folder. Tried in the nearest folder on its way that exists, by making a folder there
    and removing it at once, so that a run refused later for another reason leaves nothing behind."""
    existing = log_dir
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    if existing == log_dir and os.path.lexists(log_dir) and not log_dir.is_dir() and not log_dir.is_symlink():
        raise ParameterError("log_dir", str(log_dir), "is a file, not a folder; give the TensorBoard callback a "
                                                      "folder's path (its events go into train/ and validation/ there)")
    try:
        if not existing.is_dir():  # a file on the way, or a symbolic link that leads to no folder
            raise OSError(errno.EEXIST if existing.is_symlink() else errno.ENOTDIR,
                          os.strerror(errno.ENOTDIR), str(existing))
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=staging_prefix(log_dir), suffix=".tmp"))
    except OSError as e:
        raise ParameterError("log_dir", str(log_dir), f"cannot create the folder ({e.strerror}); "
                                                      f"{write_advice(e)}") from None


class TensorBoard(Callback):
    """Writes each epoch's record as scalars into ``trainer.run_dir``/tensorboard (or ``log_dir``)."""

    def __init__(self, log_dir=None, images: bool = True, maps: int = 16):
        self.log_dir, self.images, self.maps = log_dir, images, maps
        self.writers: dict = {}

    def on_train_begin(self, trainer) -> None:
        if self.log_dir is None and trainer.run_dir is None:
            raise NeuralabError("TensorBoard: the trainer has no run directory; give the callback a `log_dir`")
        root = Path(self.log_dir) if self.log_dir is not None else Path(trainer.run_dir) / FOLDER
        # the Trainer checked it before the run was made; a run_dir set on it since was not
        check_event_folders(trainer.run_dir, False, [self], resuming=bool(trainer.history))
        writer = summary_writer()
        # A resumed run goes on from its last checkpoint, epoch k, whose events the stopped session
        # may not have written: it was stopped between the checkpoint (the commit point) and them.
        # Events from k on are hidden (purged) by TensorBoard, and k's are written again below from
        # the checkpoint's history and weights, so that every epoch shows once, as in metrics.jsonl.
        first = trainer.history[-1]["epoch"] if trainer.history else 1
        parts = ("train", "validation") if trainer.val_data is not None else ("train",)
        _after_earlier_files([root / part for part in parts])
        self.writers = {part: writer(str(root / part), purge_step=first) for part in parts}
        if not trainer.history:
            self.writers["train"].add_text("summary", _as_code(_summary_text(trainer)), 0)
        self.conv = next((m for m in trainer.model.modules() if isinstance(m, nn.Conv2d)), None)
        x, _ = trainer.train_data
        sample = trainer.val_data[0] if trainer.val_data is not None and len(trainer.val_data[0]) else x
        self.sample = (trainer.model_input(sample[:1]) if sample.dim() == 4 and self.images and self.conv is not None
                       else None)
        if trainer.history:  # the weights are epoch k's, as the checkpoint restored them
            self.on_epoch_end(trainer, trainer.history[-1])

    def on_epoch_end(self, trainer, record: dict) -> None:
        step = record["epoch"]
        for key, value in record.items():
            if key in NOT_SCALARS or not isinstance(value, (int, float)):
                continue
            part, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            if part not in self.writers:
                continue
            self.writers[part].add_scalar("epoch_" + ("learning_rate" if name == "lr" else name), value, step)
        if self.sample is not None:
            self._images(trainer, step)
        for writer in self.writers.values():
            writer.flush()  # an interrupted run keeps every finished epoch's events

    def on_train_end(self, trainer) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers = {}

    @torch.no_grad()
    def _images(self, trainer, step: int) -> None:
        weight = self.conv.weight.detach().float().cpu()
        # (out, in, kh, kw): colour filters where the input is RGB, else the mean over inputs
        filters = weight if weight.shape[1] == 3 else weight.mean(1, keepdim=True)
        self.writers["train"].add_image("first_conv/filters", grid(filters[: self.maps * 4]), step)
        seen = []
        hook = self.conv.register_forward_hook(lambda module, args, out: seen.append(out[0].detach()))
        model = trainer.model
        was_training = model.training
        try:
            model.eval()
            model(trainer._layout(self.sample.to(trainer.device)))
        finally:
            hook.remove()
            model.train(was_training)
        maps = seen[0][: self.maps].float().cpu()
        self.writers["train"].add_image("first_conv/feature_maps", grid(maps.unsqueeze(1)), step)


def _after_earlier_files(folders) -> None:
    """Waits, at most two seconds, until the clock is past the second of the newest event file
    there. TensorBoard reads a folder's files in the order of their names, which start with the
    second they were made: a file made in the same second as the one before (a run resumed at
    once, in the same Jupyter kernel) can sort first, and its purge then hid the epochs after."""
    seconds = [int(name.split(".")[3]) for folder in folders if folder.is_dir() for name in os.listdir(folder)
               if name.startswith("events.out.tfevents.") and name.split(".")[3].isdigit()]
    if seconds:
        time.sleep(min(2.0, max(0.0, max(seconds) + 1 - time.time())))


def grid(images: torch.Tensor, width: int = 256) -> torch.Tensor:
    """(N, C, h, w) -> one (C, H, W) picture in [0, 1]: each image scaled to its own range,
    tiled in a near-square grid with 1-pixel gaps, enlarged (nearest) towards ``width`` pixels."""
    n, c, h, w = images.shape
    low = images.flatten(1).min(1).values.view(n, 1, 1, 1)
    high = images.flatten(1).max(1).values.view(n, 1, 1, 1)
    images = (images - low) / (high - low).clamp_min(1e-12)
    zoom = max(1, width // (math.ceil(math.sqrt(n)) * (w + 1)))
    images = images.repeat_interleave(zoom, 2).repeat_interleave(zoom, 3)
    h, w = h * zoom, w * zoom
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = torch.zeros(c, rows * (h + 1) - 1, cols * (w + 1) - 1)
    for i in range(n):
        r, k = divmod(i, cols)
        out[:, r * (h + 1): r * (h + 1) + h, k * (w + 1): k * (w + 1) + w] = images[i]
    return out


def _summary_text(trainer) -> str:
    """The run's summary.txt when it has one (classifiers), else PyTorch's view of the model."""
    path = trainer.run_dir / SUMMARY if trainer.run_dir is not None else None
    if path is not None and path.is_file():
        return path.read_text()
    count = sum(p.numel() for p in trainer.model.parameters())
    return f"{trainer.model}\n\nTotal params: {count:,}"


def _as_code(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())  # Markdown code: keeps the columns
