"""Run directories: one folder per run, in a format other tools can read (docs/runs.md).

    config.json        kind, format, created, the config, seed, environment (versions, device), data;
                       sessions: what each resumed session ran on
    model.json         what rebuilds the model: architecture, input shape, classes, scaling
    model.safetensors  the weights to use: the best epoch's (safetensors, never a pickle)
    metrics.jsonl      one line per finished epoch
    summary.txt        the Keras-style model summary
    results.json       written once the run is finished: test figures, best epoch
    report.html        the self-contained report
    checkpoints/       last.safetensors, best.safetensors: the full training state, for resuming
    run.lock           while a process owns the run: its pid, host and start
    progress.json      while it trains: the epoch's steps done, samples/s, time left

This module owns that format: the kinds, the file names, creating a run (under a lock, so
two processes never write one folder), opening one as the kind a command needs, and its
status. It imports nothing heavier than the standard library, so that `neuralab runs` and the
web app's listing (neuralab.run_list) start at once; a safetensors file's header, which the
status reads, is neuralab.safetensors_header's.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import itertools
import json
import os
import shutil
import socket
import stat
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from neuralab.errors import NeuralabError, ParameterError, Shown, reduced
from neuralab.errors import shell_word  # noqa: F401  the runs' commands are printed with it (cli, web)
from neuralab.files import (MAX_JSON, WriteError, folder_from_env, nulled, open_plain, read_json, remove_leftovers,
                            run_write_advice, signals_held, write_advice, write_json, write_text)
from neuralab.safetensors_header import (neuralab_metadata, read_safetensors_header, safetensors_fault,
                                        safetensors_metadata)

FORMAT = 2  # bumped when a file or field changes meaning; docs/runs.md lists the versions (2: model.json "source")

CONFIG = "config.json"
MODEL = "model.json"
WEIGHTS = "model.safetensors"
METRICS = "metrics.jsonl"
SUMMARY = "summary.txt"
RESULTS = "results.json"
REPORT = "report.html"
FORECAST = "forecast.csv"
CHECKPOINTS = "checkpoints"
LAST = f"{CHECKPOINTS}/last.safetensors"
BEST = f"{CHECKPOINTS}/best.safetensors"
LOCK = "run.lock"
PLOTS = "plots"  # a forecast's figures
WRITTEN_INTO = (CHECKPOINTS, PLOTS)  # the run's folders that commands write files into
TENSORBOARD = "tensorboard"  # TensorBoard's event files (training.tensorboard), as Keras lays them out
KERAS_FIT = "keras fit"  # config.json's config.trained_by in a run that Keras's own fit wrote (RunLogger)
PROGRESS = "progress.json"  # written by training.progress while an epoch runs, removed when training stops
# What runs write into their folder, besides WRITTEN_INTO and tensorboard/: its files by name, and its
# pictures, tables and PyTorch code (model.py and what it imports) by kind
RUN_FILES = {CONFIG, MODEL, WEIGHTS, METRICS, SUMMARY, RESULTS, REPORT, FORECAST, PROGRESS, LOCK}
RUN_SUFFIXES = (".png", ".csv", ".py")
# The figures a run's report draws, each a file in the run: the report's name for it -> its path. They
# are part of the run's format (docs/runs.md): a notebook's display of a result and the web app show
# them by these paths, so the report's writer, the displays and the app read them from here alone
CLASSIFIER_FIGURES = {name: f"{name}.png" for name in ("learning_curves", "confusion_matrix", "mistakes")}
FORECAST_FIGURES = {name: f"{PLOTS}/{name}.png" for name in ("forecast", "series", "error_by_step", "learning_curves")}


class Kind(str, enum.Enum):
    """What a run holds; the value is what config.json stores under "kind"."""
    CLASSIFIER = "image-classifier"
    FORECASTER = "forecaster"

    @property
    def article(self) -> str:
        return "an" if self.value[0] in "aeiou" else "a"

    # Each interface names its own functions: the library's messages say ``made_in_python`` and
    # ``used_in_python``; the command line says ``made_by`` and ``used_by`` in their place (cli._args)

    @property
    def made_by(self) -> str:
        """The command that makes a run of this kind."""
        return {Kind.CLASSIFIER: "neuralab train", Kind.FORECASTER: "neuralab forecast"}[self]

    @property
    def used_by(self) -> str:
        """The commands that use a run of this kind."""
        return {Kind.CLASSIFIER: "`neuralab evaluate`, `neuralab predict`, `neuralab inspect`, `neuralab report`, "
                                 "`neuralab export` or `neuralab serve`",
                Kind.FORECASTER: "`neuralab forecast predict`, `neuralab report`, `neuralab export` or "
                                 "`neuralab serve`"}[self]

    @property
    def made_in_python(self) -> str:
        """The function that makes a run of this kind."""
        return {Kind.CLASSIFIER: "neuralab.train_classifier", Kind.FORECASTER: "neuralab.run_forecast"}[self]

    @property
    def used_in_python(self) -> str:
        """The functions that use a run of this kind."""
        return {Kind.CLASSIFIER: "neuralab.load_classifier or neuralab.evaluate_run",
                Kind.FORECASTER: "neuralab.load_forecaster or neuralab.predict_run"}[self]


class Status(str, enum.Enum):
    RUNNING = "running"          # a live process holds the lock
    FINISHED = "finished"        # results.json is written
    INTERRUPTED = "interrupted"  # stopped before the end: `neuralab train --resume` (or `forecast --resume`) continues it
    DAMAGED = "damaged"          # a file that should be readable is not


class RunLocked(NeuralabError):
    """Another live process owns the run."""


class EnvironmentChangedWarning(UserWarning):
    """A resumed run computes on another device, thread count or versions than its first session."""


# The environment's fields (training.device.environment) that change what a training computes,
# if only in the last bits of its floats: a resume where one differs from the first session is told
COMPUTES_WITH = ("device", "gpu", "world_size", "threads", "autocast", "torch", "neuralab")


def epoch_kept(path: Path) -> bool:
    """Whether the run at ``path`` keeps a finished epoch: last.safetensors is every epoch's
    commit point (written before any other file names the epoch), so a run stopped in its
    first epoch has none, and its folder holds only what says how to start it."""
    return (Path(path) / LAST).exists()


class Interrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C (or SIGINT); the run of ``kind`` keeps its last finished epoch,
    or, stopped in its first (``epoch_kept`` False), only its config, from which a resume starts
    it again.

    The message ends with how to go on: ``then``, else the Python call that resumes the run
    (``resume_call``) and ``resume_does``, what that resume does. ``kept`` is the message
    without it, to which the command line adds its own command: each interface names its own
    way on, never the other's."""

    def __init__(self, path: str | os.PathLike, kind: Kind, then: str | None = None):
        self.path, self.kind = Path(path), kind
        self.epoch_kept = epoch_kept(self.path)
        if self.epoch_kept:
            self.kept = f"{self.path}: interrupted; the files of the last finished epoch are kept"
            self.resume_does = "continues it"
        else:
            self.kept = (f"{self.path}: interrupted before its first epoch finished; no epoch is kept, only the "
                         "run's config")
            self.resume_does = FROM_THE_START
        super().__init__(f"{self.kept}; {then or way_on(self.path, kind, self.resume_does)}")

    def __reduce__(self):
        return reduced(self)

    @staticmethod
    def resume_call(path: Path, kind: Kind) -> str:
        """The Python call that continues the run at ``path`` (``resume_needs``'s arguments
        with it)."""
        call = {Kind.CLASSIFIER: "resume_classifier", Kind.FORECASTER: "resume_forecast"}[kind]
        return python_call(path, f"neuralab.{call}")


FROM_THE_START = "starts it again from epoch 1 with the same config"  # a resume of a run with no epoch kept
# the way on for a run Keras's own fit wrote (RunLogger): nothing in neuralab resumes it
KERAS_FIT_WAY_ON = ("Keras's fit wrote it (RunLogger); continue the training in Keras, with "
                    "model.fit(..., initial_epoch=N) and the same RunLogger, which writes the report as fit ends")


def way_on(path: Path, kind: Kind, does: str | None = None, call: str | None = None) -> str:
    """How to go on with the interrupted run of ``kind`` at ``path``: "`CALL` DOES", CALL being
    ``call`` (the command line's command) or else the Python call that resumes the run
    (``Interrupted.resume_call``), DOES ``does``, by default what the resume does to a run that
    is to be finished ("finishes it", or FROM_THE_START where it keeps no epoch)."""
    resume = call or Interrupted.resume_call(path, kind)
    return f"`{resume}` {does or ('finishes it' if epoch_kept(path) else FROM_THE_START)}"


def python_call(path: Path, function: str, *given) -> str:
    """``function(path, *given)`` with what the run at ``path`` needs besides its folder
    (``resume_needs``): ``trust_code=True``, or the module given again as ``model=Net()``
    (``model=Net(...)`` where it was built with arguments, which the caller fills in), which
    every function that uses or resumes a run takes, classifier's and forecaster's."""
    needs, call = resume_needs(path)
    extra = {"trust_code": ", trust_code=True", "model": f", model={call}"}.get(needs, "")
    return f"{function}({', '.join(repr(str(v)) for v in (path, *given))}{extra})"


def resume_needs(path: Path) -> tuple[str, str | None]:
    """What a resume of the run at ``path`` needs besides its folder: ("trust_code", None) where
    its model is PyTorch code the run keeps a copy of, which a resume runs only when told to;
    ("model", the call that builds the module again) where it keeps none, a module given as an
    object, which only Python can give again: "Net()" where model.json says its class called
    without arguments builds it, else "Net(...)"; ("", None) otherwise, or before model.json is
    written."""
    with contextlib.suppress(NeuralabError):
        source = json_object(json_object(read_json(path / MODEL)).get("source"))
        if source.get("type") == "torch":
            if source.get("file") is not None:
                return "trust_code", None
            name = source.get("name")
            name = name if isinstance(name, str) and name.isidentifier() else "Net"
            return "model", f"{name}()" if source.get("no_arguments") is True else f"{name}(...)"
    return "", None


def report_call(path: Path) -> str | None:
    """The Python call that writes the report of the finished run at ``path`` again
    (``resume_needs``'s arguments with it); None where none can: a run whose config.json says
    no kind."""
    try:
        kind = Run(path).kind
    except NeuralabError:
        return None
    module = {Kind.CLASSIFIER: "neuralab.training.evaluate", Kind.FORECASTER: "neuralab.forecasting.finished"}[kind]
    return python_call(path, f"{module}.write_report")


def not_written(error: WriteError, run_dir: str | os.PathLike, what: str = "write",
                kept: str = "every epoch trained is kept") -> NeuralabError:
    """A file of the run in ``run_dir`` that ``error`` stopped while the run is resumable, in one
    line: the file, ``what`` could not be done, why, what to do before the resume that writes it
    again (``run_write_advice``: copy the run where the file system is read-only) and what the run
    keeps. write_advice's "write somewhere else" would read as "train again elsewhere"."""
    needs, _ = resume_needs(Path(run_dir))
    again = f"resume the run with `resume` {run_dir}" + (" and `trust_code`" if needs == "trust_code" else "")
    if needs == "model":  # a module object: only Python gives it again
        with contextlib.suppress(NeuralabError):
            again = f"resume the run with `{Interrupted.resume_call(Path(run_dir), Run(run_dir).kind)}`"
    return NeuralabError(f"{error.path}: cannot {what} ({error.strerror}); "
                         f"{run_write_advice(error.errno, run_dir, again)} ({kept})")


@contextlib.contextmanager
def resumable_if_unwritable(run_dir: str | os.PathLike, kept: str = "every epoch trained is kept"):
    """The writes of a run that a resume makes again: results.json and what comes with it after
    the last epoch, a resumed session's config.json before it. A full disk or a read-only file
    system that stops one is said by ``not_written``."""
    try:
        yield
    except WriteError as e:
        raise not_written(e, run_dir, kept=kept) from None


class RunFinished(NeuralabError):
    """A resume of a finished run: nothing is left to train. Where the report its end writes is
    missing (``Run.report_missing``: the run was stopped while it wrote it), the message says so
    and ends with ``way_on``, by default the Python call that writes it (``report_call``), for
    which the command line puts its own command (``said_with``)."""

    def __init__(self, path: str | os.PathLike, way_on: str | None = None):
        self.path = Path(path)
        said = f"{self.path}: the run is finished (results.json is written); nothing to resume"
        if Run(self.path).report_missing():
            way_on = way_on or report_call(self.path)
            then = f"`{way_on}` writes it" if way_on else "results.json holds its figures"
            said += f", but its {REPORT} is missing (it was stopped while it wrote it): {then}"
        super().__init__(f"{said}. To train for longer, start a new run with more `epochs`")

    def said_with(self, way_on: str) -> "RunFinished":
        return RunFinished(self.path, way_on)


class InterruptedInTheWay(ParameterError):
    """The refusal of an `out` that holds an interrupted run of ``kind`` at ``path``: a new run
    there would throw its finished epochs away. The message names the Python call that continues
    it, or ``resume``, the command line's command; ``out``: the folder the caller gave, where the
    run lies inside it (a comparison's), and ``then`` what to do after the resume."""

    def __init__(self, path: str | os.PathLike, kind: Kind, resume: str | None = None,
                 out: str | os.PathLike | None = None, then: str = ""):
        self.path, self.kind, self.out, self.then = Path(path), kind, out, then
        resume = resume or Interrupted.resume_call(self.path, kind)
        what = "holds an interrupted run" if out is None else f"holds {self.path.name}, an interrupted run"
        if epoch_kept(self.path):
            why = (f"{what}, which `{resume}` continues{then}; pass `overwrite` to replace it (its finished epochs "
                   "are lost)")
        else:
            why = (f"{what} stopped before its first epoch finished: `{resume}` {FROM_THE_START}{then}; pass "
                   "`overwrite` to replace it")
        super().__init__("out", str(path if out is None else out), f"{why} or choose another `out`")


class NotARun(ParameterError):
    """A `run_dir` that is no run's folder: ``what`` it is instead. The message says what
    makes one, by default the Python functions (``Kind.made_in_python``), for which the command
    line puts its commands (``said_with``)."""

    def __init__(self, path: str | os.PathLike, what: str, made_by: str | None = None):
        self.what = what
        made_by = made_by or " or ".join(kind.made_in_python for kind in Kind)
        super().__init__("run_dir", str(path), f"{what}; give a folder made by {made_by}")

    def said_with(self, made_by: str) -> "NotARun":
        return NotARun(self.value, self.what, made_by)


class OtherKind(NeuralabError):
    """A run of kind ``found`` at ``path`` given where one of ``wanted`` is needed. The message
    names what made it and what uses it, by default the Python functions (``Kind.made_in_python``,
    ``used_in_python``), and, where it is ``resumable`` (interrupted), the Python call that
    resumes it; the command line puts its commands in their place (``said_with``). A forecaster
    that Keras's fit wrote (``keras_fit``) records no series to forecast from: the message says
    where its training shows (``shown_in``) instead."""

    def __init__(self, path: str | os.PathLike, found: Kind, wanted: Kind, keras_fit: bool = False,
                 resumable: bool = False, *, made_by: str | None = None, used_by: str | None = None,
                 shown_in: str | None = None, resume: str | None = None):
        self.path, self.found, self.wanted = Path(path), found, wanted
        self.keras_fit, self.resumable = keras_fit, resumable
        if keras_fit:
            said = f"{found.article} {found.value} run that Keras's fit wrote (RunLogger)"
            shown_in = shown_in or f"neuralab.runs.Run({str(self.path)!r}).metrics()"
            then = f"it shows its training in {shown_in} and TensorBoard"
        else:
            said = f"{found.article} {found.value} run (made by {made_by or found.made_in_python})"
            resume = resume or (Interrupted.resume_call(self.path, found) if resumable else None)
            then = (f"resume it with `{resume}`, or " if resume else "") + \
                f"use it with {used_by or found.used_in_python}"
        super().__init__(f"{self.path}: {said}, not {wanted.article} {wanted.value} run; {then}")

    def said_with(self, made_by: str, used_by: str, shown_in: str, resume: str | None) -> "OtherKind":
        return OtherKind(self.path, self.found, self.wanted, self.keras_fit, self.resumable, made_by=made_by,
                         used_by=used_by, shown_in=shown_in, resume=resume)


def _written_by_runs(child: Path) -> bool:
    """Whether a run could have written ``child`` into its folder (a temporary file included)."""
    if child.is_dir() and not child.is_symlink():
        return child.name in (*WRITTEN_INTO, TENSORBOARD)
    return child.name in RUN_FILES or child.suffix in RUN_SUFFIXES or \
        (child.name.startswith(".") and child.name.endswith(".tmp"))


def default_root() -> Path:
    """The folder of runs when none is named: $NEURALAB_RUNS, else ./runs."""
    return folder_from_env("NEURALAB_RUNS") or Path("runs")


def folder_part(name: str) -> str:
    """A model's or a dataset's name as part of a run folder's name: "torch:net.py:Net" -> "torch-net-Net"."""
    return name.replace("/", "_").replace(":", "-").replace(".py", "")


def default_dir(*parts: str, root: str | os.PathLike | None = None) -> Path:
    """``ROOT/PART-PART-YYYYmmdd-HHMMSS``; ROOT is ``root``, else ``default_root()``."""
    root = Path(root) if root is not None else default_root()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return root / "-".join([*(folder_part(p) for p in parts), stamp])


def _made(path: Path, exist_ok: bool = False, missing: bool = False) -> list[Path]:
    """Make the folder ``path`` and those missing above it, as ``mkdir(parents=True)`` does, and
    return the folders this made, each where it really is (resolved), in the order made:
    ``new/../kept/run`` makes ``new`` and ``kept/run``, never ``kept``, which a lexical walk of
    the path's parents would take for a folder made on the way. A folder found ``missing`` below
    it and made by another process at once counts too (two runs started in one new folder):
    whichever is discarded last takes it away, as only empty folders are removed."""
    try:
        path.mkdir()
    except FileNotFoundError:
        if path.parent == path:
            raise
        made = _made(path.parent, exist_ok=True, missing=True)
        try:
            path.mkdir()
        except FileExistsError:  # ``new/..`` once ``new`` is made, or another process making it at once
            if not exist_ok or not path.is_dir():
                raise
            return made
        return [*made, path.resolve()]
    except FileExistsError:
        if not exist_ok or not path.is_dir():
            raise
        return [path.resolve()] if missing and ".." not in path.parts else []
    return [path.resolve()]


def _claimed(path: Path) -> tuple[Path, list[Path]]:
    """``path``, else the first free ``path``-2, -3, ..., made by this process, and the folders
    made for it (``_made``): mkdir fails where the folder exists, so of two processes asking at once
    each gets one of its own."""
    for n in itertools.count(1):
        candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            return candidate, _made(candidate)
        except FileExistsError as e:
            if candidate.exists():  # taken: the next number
                continue
            raise _not_made(candidate, e, given=False) from None  # a folder on the way is a file
        except OSError as e:
            raise _not_made(candidate, e, given=False) from None
    raise AssertionError("unreachable")


def folder_path(path, parameter: str) -> Path:
    """``path``, a str or os.PathLike, as a Path; anything else (None, a number, bytes) refused
    naming ``parameter`` and the value given, where pathlib's TypeError would name nothing."""
    if isinstance(path, (str, os.PathLike)):
        return Path(path)
    shown = path if path is None or isinstance(path, (bytes, int, float)) else Shown(path)  # a path's bytes whole
    raise ParameterError(parameter, shown, "give a folder's path, a str or pathlib.Path")


def _not_made(path: Path, error: OSError, given: bool) -> NeuralabError:
    """A run's folder that could not be made: the user's `out`, or the default name under
    ``default_root`` (NEURALAB_RUNS), which the user never typed."""
    why = f"cannot create the folder ({error.strerror}); {write_advice(error)}"
    if given:
        return ParameterError("out", str(path), why)
    return NeuralabError(f"{path}: {why}; or give the run's folder as `out` (the default is under NEURALAB_RUNS, "
                         "else ./runs)")


@dataclass
class Run:
    """One run directory. ``Run.create`` makes a new one and holds its lock; ``Run.open``
    reads an existing one as the kind a caller needs."""
    path: Path

    def __post_init__(self):
        self.path = Path(self.path)
        self._fd: int | None = None  # the open, flock-ed run.lock while this process owns the run
        self._made: list[Path] = []  # the folders Run.create made for it, resolved, in the order made

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # --- making and owning a run -------------------------------------------------

    def file(self, name: str) -> Path:
        """``self / name``, refused in one line where that is a folder or leads out of the run."""
        path = self._within(name)
        if path.is_dir():
            raise NeuralabError(f"{path}: is a folder where the run keeps a file; remove it (or move it away) "
                                "and try again")
        return path

    def _within(self, name: str) -> Path:
        """``self / name``, refused in one line where a symbolic link on the way leads out of the
        run: what a command writes there would land in another folder, over its files, and what
        a reader (the web app) reads there is another folder's. A link that stays inside the run
        is followed, and so is the run's own folder being one."""
        path = self.path / name
        try:
            root, target = self.path.resolve(), path.resolve()
        except (RuntimeError, OSError):  # a loop of links (RuntimeError before Python 3.13)
            raise NeuralabError(f"{path}: a symbolic link that loops back on itself; remove it") from None
        if root not in target.parents:
            parts = Path(name).parts
            link = next((p for p in (self.path.joinpath(*parts[:i]) for i in range(1, len(parts) + 1))
                         if p.is_symlink()), path)
            to = os.readlink(link) if link.is_symlink() else path.resolve()
            raise NeuralabError(f"{link}: a symbolic link leading out of the run (to {to}); a run's files stay "
                                "in its folder: put the folder itself there, or start a new run")
        return path

    @classmethod
    def create(cls, path: str | os.PathLike, overwrite: bool = False, numbered: bool = False,
               resumed: bool = False) -> "Run":
        """A new, empty run directory at ``path``, locked by this process.

        An existing run is replaced only with ``overwrite`` and never while another process
        trains it; a non-empty folder that is not a run is never touched. ``numbered``: ``path``
        is a name made by ``default_dir``, not one the user gave, and where it is taken the run
        goes to the first of PATH-2, PATH-3, ... that this process creates itself: runs started
        in the same second (a job array, two terminals) each get their own folder. ``resumed``:
        a resume starting a run stopped before its first checkpoint again in place, which must
        not empty a run that another resume finished since it was checked."""
        made: list[Path] = []  # what discard takes away again
        # the folders above it missing now, though another process may make them first (two runs
        # started at once in one new folder): only empty ones are taken away, so the last one out does
        above = [p for p in reversed(Path(os.path.realpath(path)).parents) if not p.exists()]
        if numbered:
            path, made = _claimed(Path(path))
        run = cls(path)
        run._made = made + [p for p in above if p not in made]
        path = run.path
        if path.exists() and not path.is_dir():
            raise ParameterError("out", str(path), "exists and is not a directory; choose another `out`")
        if (path / LOCK).exists() and not (path / CONFIG).exists() and run.owner() is None:
            # What a run killed before its config.json, or while an overwrite was deleting it, left
            # behind goes, where all of it is what a run holds; anything else is someone's.
            theirs = next((c for c in sorted(path.iterdir()) if not _written_by_runs(c)), None)
            if theirs is not None:
                raise ParameterError("out", str(path), f"holds {theirs.name}, which no run writes, beside a stale "
                                                       f"{LOCK}; choose another `out`")
            run._lock()
            run._empty()
            return run
        if path.is_dir() and any(path.iterdir()):
            if not (path / CONFIG).exists() and not (path / LOCK).exists():
                raise ParameterError("out", str(path), "folder is not empty and holds no run; choose another `out`")
            if not overwrite:
                run.refuse_live()
                if run.status() is Status.INTERRUPTED and not run.by_keras_fit:  # Keras's fit resumes in Keras
                    raise InterruptedInTheWay(path, run.kind)
                raise ParameterError("out", str(path), "already holds a run; pass `overwrite` to replace it "
                                                       "or choose another `out`")
            run._lock()
            if resumed:
                try:
                    run.refuse_finished()
                except BaseException:
                    run.unlock()
                    raise
            run._empty()
            return run
        try:
            run._made += [p for p in _made(path, exist_ok=True) if p not in run._made]
        except OSError as e:
            raise _not_made(path, e, given=True) from None
        run.lock()
        return run

    def lock(self) -> "Run":
        """Take ``run.lock`` for this process's lifetime, refused while another live process holds it.

        The lock is the kernel's (flock) on that file, so it dies with its process, kill -9
        included: a run left behind by a crash is never locked. The file also says who holds it."""
        if self._fd is not None:
            return self
        self._lock()
        try:
            for folder in WRITTEN_INTO:  # before a command writes a byte there
                self._within(folder)
        except BaseException:
            self.unlock()
            raise
        return self

    def _lock(self) -> None:
        """``lock`` without its check of the run's folders: ``create`` empties them instead."""
        if self._fd is not None:
            return
        path = self.path / LOCK
        while True:
            fd = self._open_lock(os.O_RDWR | os.O_CREAT)
            if not _flock(fd):
                os.close(fd)
                raise _in_use(self.path, self.owner() or {}) from None
            with contextlib.suppress(FileNotFoundError):
                if os.fstat(fd).st_ino == os.lstat(path).st_ino:
                    break  # else the previous owner removed the file while we opened it: take the new one
            os.close(fd)
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, info, 0)
        self._fd = fd
        remove_leftovers(self.path)

    def refuse_live(self) -> None:
        """Refuse the run as `out` while a live process trains it (two jobs given one `out`):
        what it is told is that the run is being trained, and by whom, not to replace it."""
        owner = self.owner()
        if owner is not None and _ours(owner):  # no other job: a notebook's interrupted fit
            raise _in_use(self.path, owner)
        if owner is not None:
            raise ParameterError("out", str(self.path), f"the run there is being trained by {_holder(owner)}; wait "
                                 "for it to finish, or choose another `out`")

    def unlock(self) -> None:
        if self._fd is not None:
            # A file left behind is harmless (the flock dies with the descriptor), and unlock runs
            # while an error unwinds (a folder turned read-only): that error is the one to tell.
            with contextlib.suppress(OSError):
                (self.path / LOCK).unlink()
            os.close(self._fd)
            self._fd = None

    def _open_lock(self, flags: int) -> int | None:
        """run.lock opened with ``flags``, refused in one line unless it is a plain file of the run;
        None when a reader finds none (or may not read it: it cannot tell who holds the run).

        O_NOFOLLOW: a link in its place would have the lock's JSON written through it, over any
        file the link names. O_NONBLOCK: a named pipe in its place would hang the opener (the
        listing, the web app's threads) until something writes to it."""
        path, writing = self.path / LOCK, bool(flags & os.O_CREAT)
        try:
            fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise NeuralabError(f"{path}: is a symbolic link, not the run's lock file; remove it "
                                    "(neuralab never makes one)") from None
            if e.errno == errno.EISDIR:
                raise NeuralabError(f"{path}: is a folder, not the run's lock file; remove it") from None
            if not writing:
                return None
            raise NeuralabError(f"{self.path}: cannot write here ({e.strerror}); fix its permissions "
                                "or copy the run somewhere writable") from None
        info = os.fstat(fd)
        # a hard link shares the file with another folder, whose file the lock's JSON would replace
        if not stat.S_ISREG(info.st_mode) or (writing and info.st_nlink > 1):
            os.close(fd)
            what = ("a hard link to another file" if stat.S_ISREG(info.st_mode)
                    else "not a plain file (a folder, a pipe, a device)")
            raise NeuralabError(f"{path}: is {what}, so it cannot be the run's lock; remove it")
        return fd

    def _empty(self) -> None:
        """Delete everything in the run's folder but the lock this process holds.

        config.json goes first, then results.json: a kill half-way then leaves a folder that reads
        as a run stopped before it was set up (listed nowhere, refused by every command, emptied
        by the next run given this `out`), never as the old run, finished, with files missing."""
        first = [self.path / CONFIG, self.path / RESULTS]
        for child in first + sorted(set(self.path.iterdir()) - set(first)):
            if child.name == LOCK:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink(missing_ok=True)

    def discard(self, made: bool) -> None:
        """Take away what a run that failed for good wrote (a training that diverged: nothing to
        resume, read or report): its folder, where this process ``made`` it, else what is in it,
        the folder staying empty as the user's ``out`` was before."""
        if made:
            self._remove()
        else:
            self._empty()

    def _remove(self) -> None:
        """Take the folder away, and the folders above it that Run.create made for it and that
        nothing else has filled since (``--out new/week1/run``)."""
        shutil.rmtree(self.path, ignore_errors=True)
        for folder in sorted(self._made, key=lambda p: len(p.parts), reverse=True):  # the deepest first
            try:
                folder.rmdir()  # only where empty: another run may have started beside this one
            except OSError:
                continue

    @contextlib.contextmanager
    def written_whole(self):
        """For a run written in one go (an import): when the block fails, the folder goes
        again, so that no half-written run is left to be listed or loaded. The lock is held
        for the block and released after it."""
        try:
            with self:
                yield self
        except BaseException:
            self._remove()
            raise

    def __enter__(self) -> "Run":
        return self.lock()

    def __exit__(self, *exc) -> None:
        self.unlock()

    def owner(self) -> dict | None:
        """Who holds run.lock (pid, host, started), or None when no live process does; a lock
        that is a link or no plain file is a NeuralabError (``status`` calls the run damaged)."""
        fd = self._open_lock(os.O_RDONLY)
        if fd is None:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:  # held: read who holds it
                try:
                    info = json.loads(os.pread(fd, 4096, 0) or b"{}")
                except ValueError:
                    info = {}
                return info if isinstance(info, dict) else {}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None  # a file left by a process that is gone
        finally:
            os.close(fd)

    # --- writing ------------------------------------------------------------------

    def write_record(self, kind: Kind, config: dict, environment: dict, data: dict, **extra) -> None:
        """config.json: everything needed to reproduce the run."""
        write_json(self.path / CONFIG, {
            "format": FORMAT, "kind": kind.value, "created": _now(), "seed": config.get("seed", _seed(config)),
            "config": config, "environment": environment, "data": data, **extra})

    def write_start(self, kind: Kind, config: dict, environment: dict, data: dict, meta: dict,
                    source=None) -> None:
        """config.json and model.json, and the code of a user's model (``source``, a ModelSource),
        written together, signals held: a run with a config but no model.json was listed as
        interrupted, and its resume, evaluate and the web app found no model.json to read."""
        with signals_held():
            if source is not None:
                source.copy_code(self.path)
            self.write_record(kind, config, environment, data)
            self.write_json(MODEL, meta)

    def record_session(self, environment: dict) -> None:
        """Add a resumed session's ``environment`` to config.json's ``sessions`` (``environment``
        stays the first session's), and warn in one line where it computes otherwise than the
        first did: threads and an "auto" device are worked out again each session, so a resume
        on another machine would go on with other arithmetic and no word about it."""
        record = self.record
        sessions = record.get("sessions")
        record["sessions"] = [*(sessions if isinstance(sessions, list) else []),
                              {"started": _now(), "environment": environment}]
        write_json(self.path / CONFIG, record)
        first = json_object(record.get("environment"))
        changed = _computes_otherwise(first, environment)
        if changed:
            # another number of processes shares every batch out otherwise: dropout's masks and batch
            # norm's statistics on CPUs come out other than one session's, beyond rounding
            differ = ("the epochs from here on differ from those of a run trained in one session where the model "
                      "has dropout (each process draws its own masks) or batch norm on CPUs (each process "
                      "normalises its share alone), and otherwise in their last bits" if "world_size" in changed
                      else "the epochs from here on may differ in their last bits from those of a run trained in "
                           "one session")
            warnings.warn(f"{self.path}: this session computes with {_listed(environment, changed)}, the run's first "
                          f"with {_listed(first, changed)}; {differ}", EnvironmentChangedWarning, stacklevel=2)

    def write_json(self, name: str, obj) -> None:
        write_json(self.path / name, obj)

    def write_text(self, name: str, text: str) -> None:
        write_text(self.path / name, text)

    def write_metrics(self, history: list[dict]) -> None:
        """metrics.jsonl: one JSON line per finished epoch, the whole file rewritten atomically.
        A diverged run's NaN or infinite values are written as null: strict JSON readers (the
        web app's) refuse them, and the training log already shows them."""
        rows, _ = nulled(list(history))
        self.write_text(METRICS, "".join(json.dumps(row, allow_nan=False) + "\n" for row in rows))

    # --- reading ------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike, kind: Kind | None = None) -> "Run":
        """An existing run; with ``kind``, refused (naming the functions that fit, ``OtherKind``) when it
        holds another kind."""
        run = cls(folder_path(path, "run_dir"))
        if not run.path.is_dir():
            raise NotARun(run.path, "is a file, not a run's folder" if run.path.exists() else "not found")
        if not (run.path / CONFIG).is_file():
            if (run.path / LOCK).exists():
                raise ParameterError("run_dir", str(run.path), "the run stopped before it was set up (no "
                                     "config.json); start it again with the same `out`")
            raise NotARun(run.path, "not a run directory (no config.json)")
        if kind is not None and run.kind != kind:
            found, keras_fit = run.kind, run.by_keras_fit
            # a resume goes on with an interrupted run; one of Keras's fit goes on in Keras (classify says so)
            resumable = not keras_fit and run.status() is Status.INTERRUPTED and \
                Interrupted.resume_call(run.path, found) is not None
            # Keras's fit's forecaster records no series: what forecasts with it refuses it too
            raise OtherKind(run.path, found, kind, keras_fit and found is Kind.FORECASTER, resumable)
        return run

    @property
    def record(self) -> dict:
        """config.json as a dict (checked to be one)."""
        return self._object(CONFIG)

    def refuse_finished(self) -> None:
        """A resume's first check, and again once it holds the lock: a finished run has nothing
        left to train, and another resume may have finished it in between."""
        if self._files_status() is Status.FINISHED:
            raise RunFinished(self.path)

    def report_missing(self) -> bool:
        """Whether the run is finished without the report its end writes: a kill or a full disk
        stopped it after results.json. Runs whose end writes none are not: an import, and a
        forecaster that Keras's fit wrote (RunLogger), which records no series to draw."""
        if (self.path / REPORT).is_file() or self._files_status() is not Status.FINISHED:
            return False
        try:
            imported = json_object(self.results()).get("imported")
            return not imported and not (self.by_keras_fit and self.kind is Kind.FORECASTER)
        except NeuralabError:
            return False

    @property
    def by_keras_fit(self) -> bool:
        """Whether Keras's own fit wrote the run (RunLogger): it records the model and the
        training, not the data that training, testing or forecasting again would read."""
        return json_object(self.record.get("config")).get("trained_by") == KERAS_FIT

    @property
    def kind(self) -> Kind:
        value = self.record.get("kind")
        try:
            return Kind(value)
        except ValueError:
            raise NeuralabError(f"{self.path / CONFIG}: unknown run kind {value!r}; expected one of "
                                f"{', '.join(k.value for k in Kind)}") from None

    def read(self, name: str):
        """A JSON file of the run, with a clear error when it is missing or damaged."""
        return read_json(self._within(name))

    def _object(self, name: str) -> dict:
        """``read``, refused where the file holds no JSON object, as every file of a run's does."""
        value = self.read(name)
        if not isinstance(value, dict):
            raise NeuralabError(f"{self.path / name}: expected a JSON object, found {type(value).__name__}; the "
                                "file is damaged")
        return value

    def results(self) -> dict | None:
        """results.json (checked to be a JSON object), or None while the run is not finished."""
        if not (self.path / RESULTS).is_file():
            return None
        return self._object(RESULTS)

    def model_meta(self) -> dict:
        """model.json, what rebuilds the model, checked to be a JSON object (its fields are the
        loader's of each kind to check)."""
        if not self._within(MODEL).exists() and (self.path / RESULTS).is_file():
            raise NeuralabError(f"{self.path / MODEL}: missing from a finished run (deleted or moved); put back a "
                                "good copy, or train the run again")
        return self._object(MODEL)

    def weights(self) -> Path:
        """The path of model.safetensors, refused in one line where a link leads it out of the
        run or where it is not there, saying why: missing from a finished run, missing from one
        that keeps an epoch (which its resume writes again), or no epoch finished yet."""
        weights = self.file(WEIGHTS)
        if weights.exists():
            return weights
        if (self.path / RESULTS).is_file():
            raise NeuralabError(f"{weights}: missing from a finished run (deleted or moved); put it back, or train "
                                "the run again")
        if epoch_kept(self.path):
            raise NeuralabError(f"{weights}: missing, though the run keeps a finished epoch (it was stopped before "
                                "it wrote the file, or the file was deleted since); resuming the run writes it")
        raise NeuralabError(f"{self.path}: no {WEIGHTS} yet (the run has not finished an epoch)")

    def metrics(self) -> list[dict]:
        """One dict per finished epoch (metrics.jsonl); a torn last line is skipped, and a NaN or
        infinity (older runs wrote them) is read as None."""
        try:
            path = self._within(METRICS)  # a link out of the run is no run's epochs
            if not path.is_file() or path.stat().st_size > MAX_JSON:  # a file of a run's epochs is kilobytes
                return []
            with open_plain(path, "rb") as f:
                lines = f.read().splitlines()
        except (OSError, NeuralabError):
            return []
        rows = []
        for line in lines:
            # a line that is not UTF-8, not JSON, or nested past Python's recursion limit is no epoch
            with contextlib.suppress(ValueError, RecursionError):
                row = json.loads(line, parse_constant=lambda name: None)
                if isinstance(row, dict):
                    rows.append(row)
        return rows

    def committed(self) -> list[dict] | None:
        """The epochs the run has committed, one dict each as metrics.jsonl has them: the history
        in the header of checkpoints/last.safetensors (the commit point), read without its
        tensors. metrics.jsonl is written after it, so a kill or a signal between the two leaves
        that file an epoch behind until the resume writes it again. None where there is no last
        checkpoint, or its header does not read (a run of Keras's fit has none)."""
        try:
            _, _, header = read_safetensors_header(self._within(LAST))
            history = neuralab_metadata(safetensors_metadata(header))["history"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError, NeuralabError):
            return None
        return [row for row in history if isinstance(row, dict)] if isinstance(history, list) else None

    def status(self) -> Status:
        """Derived from the folder alone: the lock, then which files exist and parse."""
        try:
            if self.owner() is not None:
                return Status.RUNNING
        except NeuralabError:
            return Status.DAMAGED
        return self._files_status()

    def _files_status(self) -> Status:
        """``status`` without the lock, which says nothing to the process holding it."""
        if self.damage():
            return Status.DAMAGED
        return Status.FINISHED if (self.path / RESULTS).is_file() else Status.INTERRUPTED

    def damage(self) -> str:
        """Why ``status`` calls the run's files damaged, naming the file; "" when they are not."""
        try:
            self.kind
            finished = self.results() is not None
            if finished or (self.path / MODEL).is_file():  # a finished run's model is rebuilt from it
                self.model_meta()
            if finished:
                weights = self._within(WEIGHTS)
                if not weights.is_file():
                    raise NeuralabError(f"{weights}: missing, though {RESULTS} says the run finished; train it again")
                _check_length(weights)
        except NeuralabError as e:
            return str(e)
        return ""


class SessionRecorder:
    """A trainer callback (neuralab.training.callbacks adopts any object with its hooks) that
    adds a resumed session to ``run``'s config.json (``Run.record_session``) once the checkpoint
    it goes on from has loaded: a resume refused on the way (a damaged checkpoint) writes nothing."""

    def __init__(self, run: Run):
        self.run = run

    def on_train_begin(self, trainer) -> None:
        with resumable_if_unwritable(self.run.path, kept="the run is as it was before this resume"):
            self.run.record_session(trainer.environment)


def json_object(value) -> dict:
    """``value`` where a run's file holds a JSON object there, else {}: the listing and the web
    app read every field of files anyone may have edited, and show what they can."""
    return value if isinstance(value, dict) else {}


# --- helpers -------------------------------------------------------------------------

def _check_length(path: Path) -> None:
    """Refuse a safetensors file whose header (``safetensors_fault``) says it is not whole."""
    try:
        fault = safetensors_fault(*read_safetensors_header(path))
    except OSError as e:
        raise NeuralabError(f"{path}: cannot read ({e.strerror})") from None
    if fault:
        raise NeuralabError(f"{path}: {fault[0]} safetensors file ({fault[1]}); put back a good copy, or train the "
                            "run again")


def _flock(fd: int, tries: int = 100, owned_tries: int = 10) -> bool:
    """An exclusive flock, retried 20 ms apart: ``tries`` times (2 s) while only readers hold the
    file, ``owned_tries`` (200 ms) where an owner does. A reader's status check (``owner``: `neuralab
    runs`, the web app's poll of a live run) holds a shared lock for microseconds, unless its process
    is preempted on a busy machine, where 200 ms of waiting could refuse a starting run as in use."""
    for i in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            pass
        if i + 1 >= owned_tries:
            try:  # a shared lock is granted beside readers' alone, never beside an owner's
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return False
            fcntl.flock(fd, fcntl.LOCK_UN)
        time.sleep(0.02)
    return False


def _ours(owner: dict) -> bool:
    """Whether a run.lock's ``owner`` is this very process (a notebook's kernel still holding it)."""
    return owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname()


def _in_use(path: Path, owner: dict) -> RunLocked:
    """The refusal of a run that ``owner`` holds (``Run.owner``)."""
    if _ours(owner):  # a notebook's kernel: an interrupted fit's RunLogger (or Run) still holds it
        return RunLocked(f"{path}: held by this very Python session since {owner.get('started', '?')} (an earlier "
                         "training or Keras fit that was interrupted); go on with the same RunLogger object, or "
                         "restart the session (the notebook's kernel)")
    return RunLocked(f"{path}: in use by {_holder(owner)}; wait for it to finish or stop it first")


def _holder(owner: dict) -> str:
    """"process 4242 on node7 since 2026-12-06T18:19:44+0000": who holds a run.lock (``Run.owner``)."""
    return f"process {owner.get('pid', '?')} on {owner.get('host', '?')} since {owner.get('started', '?')}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _computes_otherwise(first: dict, now: dict) -> list[str]:
    """The fields of COMPUTES_WITH in which two sessions' environments differ; the CPU's threads
    only where one of them computed on the CPU (a GPU's arithmetic does not depend on them)."""
    on_cpu = "cpu" in (first.get("device"), now.get("device"))
    return [key for key in COMPUTES_WITH if key in first and key in now and first[key] != now[key]
            and (key != "threads" or on_cpu)]


def _listed(environment: dict, keys: list[str]) -> str:
    """"threads 2, torch 2.5.0": the values of ``keys`` in an environment, for a message."""
    return ", ".join(f"{key} {environment[key]}" for key in keys)


def _seed(config: dict):
    train = config.get("train")
    return train.get("seed") if isinstance(train, dict) else None
