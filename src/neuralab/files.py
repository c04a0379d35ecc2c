"""Writing files so that a crash or a full disk never leaves half a file behind.

Every file neuralab writes goes through ``atomic_write``: a temporary file beside the
target, flushed to disk, then renamed over it. A reader sees the old file or the new one,
never a mix. Set ``NEURALAB_CRASH_AT=NAME[:N]`` to kill the process (SIGKILL, as a power
cut would) just before the N-th write of a file whose path ends with NAME is renamed into
place; the tests use it to prove that every crash point leaves a consistent run.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import json
import math
import os
import signal
import stat
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import IO, Callable, Iterator

from neuralab.errors import NeuralabError


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp makes files 0600; runs are shared on clusters, so files get what the umask allows.
_MODE = 0o666 & ~_read_umask()
_writes: dict[str, int] = {}  # NEURALAB_CRASH_AT's count of writes per name


_LOOP = "its symbolic links loop, or lead through too many others"

# What to do about a path that no file can have, whatever is done with it: reading, writing.
PATH_ADVICE = {
    errno.ENAMETOOLONG: "a name may have at most 255 bytes and a path 4,096; choose a shorter one",
    errno.ELOOP: f"{_LOOP}; fix them or give another path",
}

# What to do about each reason a file could not be written, said once for every file: write_advice
# adds that it may be written somewhere else, run_write_advice what writes a run's file again
_FIX = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space or raise your quota",
    errno.EACCES: "fix the folder's permissions",
    errno.EPERM: "fix the folder's permissions",
    # a disk failing, or a network file system's server gone: writing again may lose more
    errno.EIO: "the disk or the network file system failed (an input/output error): have it checked",
    errno.ELOOP: f"{_LOOP}: fix them",
}
_ANY_FIX = "free some space or fix the folder's permissions"  # a reason not in _FIX: all of them

# Reasons that no file can be written where it was meant to go, whatever is done there: what is true
# of the place, where write_advice sends the file instead, and where run_write_advice the run
_ELSEWHERE = {
    errno.EROFS: ("the file system is read-only", "write somewhere else", "copy {run} somewhere writable"),
    errno.ENAMETOOLONG: ("a name may have at most 255 bytes and a path 4,096", "choose a shorter one",
                         "copy {run} to a shorter path"),
}

# Reasons in the path given, which say themselves where to write instead
_PATH_FAULTS = {
    # mkdir of a folder on the way that is a file: FileExistsError, or ENOTDIR further down
    errno.EEXIST: "a part of the path is a file, not a folder: give a path through folders",
    errno.ENOTDIR: "a part of the path is a file, not a folder: give a path through folders",
    # mkdir in a folder that exists: /proc, /sys and the like take no new files
    errno.ENOENT: "the file system there takes no new files (as /proc and /sys), or a folder on the way was "
                  "removed meanwhile: write somewhere else",
}


def write_advice(error: OSError) -> str:
    """What to do about a file or folder that could not be written, for the reason ``error`` gives."""
    if error.errno == errno.EEXIST and error.filename is not None and os.path.islink(error.filename):
        # mkdir of a symbolic link that leads to no folder: "exists", and yet no folder is there
        try:
            os.stat(error.filename)
        except FileNotFoundError:
            return (f"{os.fsdecode(error.filename)} is a symbolic link to {os.fsdecode(os.readlink(error.filename))}, "
                    "which does not exist: make that folder, or remove the link")
        except OSError as e:  # links in a loop
            return write_advice(e)
    if error.errno in _PATH_FAULTS:
        return _PATH_FAULTS[error.errno]
    if error.errno in _ELSEWHERE:
        why, instead, _ = _ELSEWHERE[error.errno]
        return f"{why}: {instead}"
    return f"{_FIX.get(error.errno, _ANY_FIX)}, or write somewhere else"


def run_write_advice(error: OSError | int | None, run: str | os.PathLike, again: str) -> str:
    """What to do about a file of the run in ``run`` that could not be written, for the reason
    ``error`` (an OSError, or its errno) gives, then ``again``: what writes it again, naming
    ``run``. A file system that turned read-only (a cluster's scratch, remounted after an error)
    stays so, and a path too long stays so: the run is copied where it can be written
    (a run is its folder; a lock left in it is held by no process) and ``again`` is given the
    copy's folder."""
    code = error.errno if isinstance(error, OSError) else error
    if code in _ELSEWHERE:
        why, _, move = _ELSEWHERE[code]
        return f"{why}: {move.format(run=run)}, then {again}, naming the copy in place of {run}"
    return f"{_FIX.get(code, _ANY_FIX)}, then {again}"


class WriteError(NeuralabError):
    """A file could not be written (read-only folder, full disk); names the file, why and what to do."""

    def __init__(self, path: str | os.PathLike, error: OSError):
        self.path, self.strerror, self.errno = Path(path), error.strerror or str(error), error.errno
        super().__init__(f"{path}: cannot write ({self.strerror}); {write_advice(error)}")


def folder_from_env(name: str) -> Path | None:
    """The folder the environment variable ``name`` gives, ``~`` expanded as a shell would have
    (a value quoted in a job script or a config keeps it); None where it is unset or empty (a
    job script's ``export NEURALAB_RUNS=$SCRATCH``, where SCRATCH is unset), which means the
    default, not the current folder. A ``~user`` naming no user of this machine (a compute node
    without the cluster's user map, a script from a colleague) is refused naming ``name``."""
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return Path(value).expanduser()
    except RuntimeError:  # pathlib's "Could not determine home directory."
        user = Path(value).parts[0][1:]
        why = f"no user {user} on this machine to expand ~{user}" if user else "HOME is not set, to expand ~"
        raise NeuralabError(f"{name}='{value}': {why}; give the folder's full path") from None


def staging_prefix(path: Path) -> str:
    """The start of the name of a file or folder written beside ``path`` before it takes its
    place: ``.NAME.``, NAME cut short, so that the 14 bytes tempfile and ``.tmp`` add keep a
    name the file system takes (255 bytes) within it: a name of 242 bytes and more was refused
    as too long, though it was not."""
    name = path.name
    while len(os.fsencode(name)) > 128:  # bytes, as the file system counts them, not characters
        name = name[:-1]
    return f".{name}."


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", durable: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    ``durable=False`` skips the fsync (a reader still never sees half a file, but a power cut
    may lose the content): for files rewritten twice a second that nobody needs after a crash,
    where the fsync (milliseconds) would stall the writer.

    On any error the temporary file is removed and ``path`` keeps its previous content; an
    OSError (read-only folder, full disk) becomes a ``WriteError`` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=staging_prefix(path), suffix=".tmp")
    except OSError as e:
        raise WriteError(path, e) from None
    try:
        try:
            os.fchmod(fd, _MODE)
            # A name from the file system may hold bytes that are no UTF-8 (Python keeps them as
            # lone surrogates): written escaped, so a file never stops half-way on one.
            with os.fdopen(fd, mode, **({} if "b" in mode else {"errors": "backslashreplace"})) as f:
                yield f
                f.flush()
                if durable:
                    os.fsync(f.fileno())
            _crash_point(path)
            os.replace(tmp, path)
        except OSError as e:
            raise WriteError(path, e) from None
    except BaseException:
        # A folder turned read-only keeps the temporary file (a later owner's remove_leftovers
        # takes it); the error that got us here is the one to tell, not this tidy-up's.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _crash_point(path: Path) -> None:
    target = os.environ.get("NEURALAB_CRASH_AT")
    if not target:
        return
    name, _, nth = target.partition(":")
    if path.as_posix().endswith(name):
        _writes[name] = _writes.get(name, 0) + 1
        if _writes[name] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)


def remove_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writes killed mid-way left in ``folder`` and its
    sub-folders (only ours: ``.NAME.*.tmp``); call it while owning the folder."""
    removed = []
    for tmp in Path(folder).rglob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def nulled(obj, where: str = "") -> tuple[object, list[str]]:
    """``obj`` with every NaN or infinite number (NumPy scalars too) replaced by None, since JSON
    has no such numbers and a reader such as the web app must never meet one; and where each was."""
    bad: list[str] = []

    def clean(value, key):
        if hasattr(value, "item") and type(value).__module__ == "numpy" and getattr(value, "ndim", 1) == 0:
            value = value.item()  # a NumPy scalar: its Python number
        if isinstance(value, float) and not math.isfinite(value):
            bad.append(key)
            return None
        if isinstance(value, dict):
            return {k: clean(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v, f"{key}[{i}]") for i, v in enumerate(value)]
        return value

    return clean(obj, where), bad


def finite(obj, where: str = ""):
    """``obj`` as ``nulled`` gives it; a warning says where, since such a value means an input
    or a model went wrong."""
    out, bad = nulled(obj)
    if bad:
        warnings.warn(f"{where}: {len(bad)} value(s) are not finite ({', '.join(bad[:3])}"
                      f"{', ...' if len(bad) > 3 else ''}); recorded as null", stacklevel=3)
    return out


def write_json(path: str | os.PathLike, obj) -> None:
    """``obj`` as JSON, atomically; NaN and infinity are written as null (strict JSON)."""
    text = json.dumps(finite(obj, str(path)), indent=2, sort_keys=True, allow_nan=False)
    write_text(path, text + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


MAX_JSON = 64 * 2**20  # bytes: a run's JSON files are kilobytes (a Keras model's graph, a few MB)


def open_plain(path: str | os.PathLike, mode: str = "r", **options):
    """``open(path, mode, **options)`` for reading, refused in one line where ``path`` is no plain file: a
    named pipe would hold the reader (a command, the web app's threads) until something writes."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        kind = os.fstat(fd).st_mode
        if stat.S_ISDIR(kind):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(kind):
            raise NeuralabError(f"{path}: is not a plain file (a pipe or a device); remove it")
        os.set_blocking(fd, True)
        return os.fdopen(fd, mode, **options)
    except BaseException:
        os.close(fd)
        raise


def read_json(path: str | os.PathLike):
    """A JSON file written by neuralab (or claiming to be), with one clear error when it is
    missing, too large or damaged. NaN and infinity, which strict JSON has not and which
    neuralab writes as null, are read as None too."""
    try:
        with open_plain(path) as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_JSON:
                raise NeuralabError(f"{path}: {size:,} bytes, more than the {MAX_JSON:,} a JSON file of "
                                    "neuralab's holds; the file is not one of its own")
            return json.load(f, parse_constant=lambda name: None)
    except FileNotFoundError:
        raise NeuralabError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise NeuralabError(f"{path}: is a folder, not a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        # "Unterminated string starting at: line 6 column 15", as json says it (its msg may end in "at")
        why = f"{e.msg}: line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else type(e).__name__
        raise NeuralabError(f"{path}: not valid JSON ({why}); the file is damaged") from None
    except OSError as e:
        raise NeuralabError(f"{path}: cannot read ({e.strerror})") from None


def marked_encoding(head: bytes) -> str | None:
    """The encoding a text's first bytes mark: "utf-16" (what PowerShell's > and Excel's "Unicode
    text" write), "utf-8-sig" (Notepad's UTF-8); None for a text without a mark, and for UTF-32's
    marks, which the readers then refuse in their own words (UTF-32's little-endian mark begins with
    UTF-16's: read as UTF-16, its text came out with a NUL between characters)."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return None
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else None


def placed(given: str | os.PathLike, name: str | os.PathLike) -> Path:
    """The file an output given as ``given`` names: ``name`` inside it where it is a folder, one
    that exists or one to be made, typed with its trailing / (which Path() drops); else ``given``."""
    path = Path(given)
    return path / name if str(given).endswith(("/", os.sep)) or path.is_dir() else path


def inside(root: str | os.PathLike, candidate: str | os.PathLike) -> Path:
    """Resolve ``candidate`` under ``root`` and refuse any path that leaves ``root``."""
    try:
        root = Path(root).resolve()
        target = (root / candidate).resolve()
    except (RuntimeError, OSError):  # a loop of links (RuntimeError before Python 3.13)
        raise NeuralabError(f"{candidate}: a symbolic link that loops back on itself") from None
    except UnicodeEncodeError:  # a lone surrogate, which no file name on disk holds
        raise NeuralabError(f"{candidate!r}: no such path") from None
    if target != root and root not in target.parents:
        raise NeuralabError(f"{candidate}: path leaves {root}; give a path inside it")
    return target


INSISTS = 1.0  # seconds after which a second signal is the user's insisting, not the first sent twice

# The signals a command stops on as on Ctrl-C, with the shell's status for each: SIGTERM (what
# schedulers, `timeout` and `docker stop` send before they kill), SIGHUP (a dropped ssh session),
# SIGUSR1 (SLURM's `--signal=USR1@T`, the requeue signal Lightning's jobs are set up with); Windows
# has SIGTERM alone
STOPS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGUSR1") if hasattr(signal, name))


@contextlib.contextmanager
def signals_held():
    """A block during which Ctrl-C and the signals of ``STOPS`` wait, acted on when it ends: writes that
    make sense only together, milliseconds long (a run's config.json and model.json; an epoch's
    checkpoint, metrics, best weights, its line and TensorBoard's events).
    Acted on between the checkpoint, the commit point, and the rest, the signal left the epoch
    committed but without its line and its events, which the resume, going on after it, never
    wrote (a scheduler's SIGTERM lands there as often as anywhere). Only Python's own handlers wait
    (Ctrl-C's, the command line's for SIGTERM): a default one ends the process at once, as a kill
    does, which the resume makes good. A second signal a second or more after the first acts at
    once, as before, so that a write that hangs (a stalled network disk) can still be stopped;
    one sooner is the same stop sent twice (SLURM signals a torchrun job's every process, and
    torchrun passes its own on to them too)."""
    if threading.current_thread() is not threading.main_thread():  # where Python runs no handler
        yield
        return
    held: dict[int, Callable] = {}
    caught: list[tuple[int, object, float]] = []  # signal, frame, when

    def wait(signum, frame):
        if caught and time.monotonic() - caught[0][2] >= INSISTS:  # asked again: as before this block
            restore()
            held[signum](signum, frame)
        caught.append((signum, frame, time.monotonic()))

    def restore():
        for signum, handler in held.items():
            signal.signal(signum, handler)

    for signum in (signal.SIGINT, *STOPS):
        handler = signal.getsignal(signum)
        if callable(handler):
            held[signum] = handler
            signal.signal(signum, wait)
    try:
        yield
    except BaseException:
        restore()  # the block's own error stops the training already
        raise
    restore()
    if caught:
        signum, frame, _ = caught[0]
        held[signum](signum, frame)


def drop_hung_up_outputs() -> None:
    """Point stdout and stderr at /dev/null where their terminal hung up (the ssh session
    dropped; SIGHUP follows or is ignored under nohup). Every write to it fails with EIO, and
    the first (a progress bar's refresh, the line that says how to resume, Python's flush at
    exit) would end a training with a traceback instead of its status; a write of nothing tells."""
    for fd in (1, 2):
        try:
            os.write(fd, b"")
        except OSError:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)


def drop_unread_output(stream) -> None:
    """Point ``stream``'s pipe, whose reader went away, at /dev/null, and stderr too where it is
    the same pipe (`2>&1 | head`): the epochs' lines, the test accuracy, the line that says how
    to resume and Python's flush at exit then write to nothing, where each would end the run.
    A write of nothing to such a pipe succeeds, so ``drop_hung_up_outputs`` cannot tell it."""
    try:
        fd = stream.fileno()
        gone = os.fstat(fd)
    except (OSError, ValueError):  # no descriptor of its own (a caller's wrapper): nothing to point elsewhere
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for each in {fd, 2}:
            with contextlib.suppress(OSError):
                if os.path.samestat(os.fstat(each), gone):
                    os.dup2(null, each)
    finally:
        os.close(null)
