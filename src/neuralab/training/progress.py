"""Progress output that behaves both in a terminal and in a log file, and a live file for
other processes to watch.

In a terminal: a live bar per epoch (rich) and a summary line when it ends. In a Jupyter
kernel (JupyterLab, VS Code, Colab): a bar per epoch, redrawn in place a few times a second
through IPython's display, blanked when the epoch ends and its line printed: front ends that
draw a display once and ignore its redraws (jupyter console, qtconsole, Spyder) show every
line too, a notebook each once. Anywhere else (a pipe, a log file, CI, a kernel's stdout
redirected): exactly one plain line per epoch, no carriage returns.

With a run directory, ``progress.json`` (``runs.PROGRESS``) says where the epoch stands:
steps done, samples per second and time left, rewritten at most every ``WRITE_EVERY``
seconds (atomically, without fsync: a reader never sees half a file, and nothing is lost
that matters after a crash) and removed when training stops. The web app's run page and
anything else may poll it; the step itself pays one clock reading.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import sys
import time
from pathlib import Path

from neuralab.files import WriteError, atomic_write, drop_hung_up_outputs, drop_unread_output
from neuralab.models.table import live_terminal
from neuralab.runs import PROGRESS

WRITE_EVERY = 0.5  # seconds: a page polling once a second sees a fresh line each time
DRAW_EVERY = 0.25  # seconds between redraws of a notebook's bar: each one is a message to the browser
BAR = 24           # characters of a notebook's bar
NARROW = 60        # columns: a terminal narrower shows no bar, only the steps, the loss and the time left,
NARROWER = 40      # and one narrower than this the time left alone


def _in_notebook() -> bool:
    """Whether this process is a Jupyter kernel, whose output a notebook can redraw in place
    (Colab's shell is a kind of ipykernel's; IPython is imported there already), still
    printing to the kernel's own stdout: one redirected (``contextlib.redirect_stdout``)
    is a log that wants the lines, not displays it never sees."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    iostream = sys.modules.get("ipykernel.iostream")
    return (shell is not None and getattr(shell, "kernel", None) is not None
            and iostream is not None and isinstance(sys.stdout, iostream.OutStream))


def format_metrics(metrics: dict) -> str:
    parts = []
    for key, value in metrics.items():
        if key in ("epoch", "samples", "seconds", "elapsed", "lr"):  # the line ends with the epoch's own time
            continue
        parts.append(f"{key} {value * 100:.2f}%" if key.endswith("accuracy") else f"{key} {value:.4f}")
    return "  ".join(parts)


def _mean(loss_sum, share: int) -> float | None:
    """The loss per sample of a step's ``loss_sum`` (a tensor still in the autograd graph:
    detached, as reading a graph's tensor warns), or None without one."""
    if loss_sum is None:
        return None
    return float(loss_sum.detach() if hasattr(loss_sum, "detach") else loss_sum) / max(1, share)


def _unseen_if_hung_up(method):
    """``method``, where a terminal that hung up (EIO on every write: the ssh session dropped,
    its SIGHUP not yet come or ignored) or a pipe whose reader went away (EPIPE: `| head`, a
    `less` quit) stops the drawing, not the training."""
    @functools.wraps(method)
    def drawing(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as e:
            if e.errno == errno.EPIPE:
                drop_unread_output(self.stream)
            elif e.errno == errno.EIO:
                drop_hung_up_outputs()  # rich's refresh and Python's flush at exit write to nothing now
            else:
                raise
            self._bar, self.live = None, False
    return drawing


class Progress:
    """``run_dir``: where progress.json goes (None: no file; under torchrun only the main process writes)."""

    def __init__(self, epochs: int, samples: int = 0, enabled: bool = True, stream=None,
                 run_dir: str | Path | None = None):
        self.epochs, self.samples = epochs, samples  # samples: the training set's size
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.live = enabled and live_terminal(self.stream)  # a dumb terminal gets the log's lines
        # a stream given is written to as it is; the notebook's own output is redrawn
        self.notebook = enabled and not self.live and stream is None and _in_notebook()
        self._bar = self._shown = None
        self._next_draw = 0.0
        self._loss = None
        self.file = Path(run_dir) / PROGRESS if run_dir is not None else None
        self._epoch = self._step = self._steps = self._seen = 0
        self._t0 = self._next_write = time.perf_counter()

    @_unseen_if_hung_up
    def print(self, text: str = "") -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    @_unseen_if_hung_up
    def start_epoch(self, epoch: int, steps: int) -> None:
        self._t0 = time.perf_counter()
        self._epoch, self._steps, self._step, self._seen = epoch, steps, 0, 0
        self._write(self._t0)
        if self.notebook:
            from IPython.display import Pretty, display

            self._shown = display(Pretty(self._drawn(self._t0)), display_id=True)
            self._next_draw = self._t0 + DRAW_EVERY
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

            console = Console(file=self.stream)
            epoch_of, done, loss, left = (TextColumn(f"epoch {epoch}/{self.epochs}"), MofNCompleteColumn(),
                                           TextColumn("{task.fields[loss]}"), TimeRemainingColumn())
            # a narrow terminal cut the time left, the one figure a wait is read for: there the bar
            # goes, and in a narrower one the loss and the steps too
            columns = (epoch_of, BarColumn(), done, loss, left) if console.width >= NARROW else \
                (epoch_of, done, loss, left) if console.width >= NARROWER else (epoch_of, left)
            self._bar = Bar(*columns, console=console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task("train", total=steps, loss="")

    @_unseen_if_hung_up
    def step(self, loss_sum=None, share: int = 1, batch: int | None = None) -> None:
        """One optimizer step done: ``batch`` samples in all, ``loss_sum`` (a tensor: read only
        for the terminal's bar, as reading it waits for the device) over this process's ``share``."""
        self._step += 1
        self._seen += share if batch is None else batch
        if self._bar is not None:
            loss = _mean(loss_sum, share)
            self._bar.update(self._task, advance=1, loss="" if loss is None else f"loss {loss:.4f}")
        if self._shown is not None:
            now = time.perf_counter()
            if now >= self._next_draw and self._step < self._steps:  # the last step's line is the epoch's
                from IPython.display import Pretty

                self._loss = _mean(loss_sum, share)
                self._shown.update(Pretty(self._drawn(now)))
                self._next_draw = now + DRAW_EVERY
        if self.file is not None:
            now = time.perf_counter()
            if now >= self._next_write or self._step == self._steps:
                self._write(now)

    def _drawn(self, now: float, stopped: bool = False) -> str:
        """The notebook's bar: epoch, steps done, the last loss read and the time left
        (``stopped``: that the epoch ends there)."""
        done = self._step / self._steps if self._steps else 0.0
        took = now - self._t0
        left = f"  {took / self._step * (self._steps - self._step):.0f} s left" if self._step else ""
        left = "  stopped here: this epoch is not kept" if stopped else left
        loss = f"  loss {self._loss:.4f}" if self._loss is not None else ""
        bar = "━" * round(BAR * done) + " " * (BAR - round(BAR * done))
        return f"epoch {self._epoch}/{self.epochs}  {bar} {self._step}/{self._steps}{loss}{left}"

    def _write(self, now: float) -> None:
        if self.file is None:
            return
        self._next_write = now + WRITE_EVERY
        took = now - self._t0
        rate = self._seen / took if self._step and took > 0 else None
        eta = took / self._step * (self._steps - self._step) if self._step else None
        state = {"epoch": self._epoch, "epochs": self.epochs, "step": self._step, "steps": self._steps,
                 "samples_per_s": rate, "eta_s": eta, "updated": time.time()}
        with contextlib.suppress(WriteError):  # a full disk stops the checkpoints, not this nicety
            with atomic_write(self.file, durable=False) as f:
                f.write(json.dumps(state))

    @_unseen_if_hung_up
    def end_epoch(self, metrics: dict) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        trained = metrics.get("samples", self.samples)
        focus = f" (the {trained:,} hardest)" if trained < self.samples else ""
        line = (f"epoch {metrics['epoch']}/{self.epochs}{focus}  {format_metrics(metrics)}  "
                f"lr {metrics['lr']:.2e}  {metrics['seconds']:.1f}s")
        self.print(line)
        self._blank_bar()

    def _blank_bar(self) -> None:
        """Empty the notebook's bar, whose epoch has its line printed below it: the line is
        printed, not drawn in the bar's place, as a console shows a display only as first drawn."""
        if self._shown is not None:
            from IPython.display import Pretty

            self._shown.update(Pretty(""))
            self._shown = self._loss = None

    @_unseen_if_hung_up
    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self._shown is not None:  # an epoch cut short (Ctrl-C, the kernel interrupted, an error)
            # would otherwise stay drawn in the notebook as a bar still on its way
            self.print(self._drawn(time.perf_counter(), stopped=True))
            self._blank_bar()
        if self.file is not None:  # training stopped: nothing in progress any more
            # close runs while an error unwinds (a folder turned read-only, a disk full): a file
            # that stays is only a nicety gone stale, and that error is the one to tell
            with contextlib.suppress(OSError):
                self.file.unlink()
