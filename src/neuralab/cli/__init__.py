"""The `neuralab` command: a thin layer that parses, calls the library and prints.

Each module in this package that defines ``register(subparsers)`` adds its commands. A
command imports the library when it runs, and options whose choices or defaults are read
from the library's configs are added only when their command is used (``Parser.defer``),
so that `neuralab --help` and the arithmetic commands start without importing torch.
"""

from __future__ import annotations

import argparse
import codecs
import gc
import importlib
import os
import pkgutil
import re
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

from neuralab import __version__
from neuralab.cli._args import flag_for
from neuralab.errors import (NAMING, NeuralabError, NotAClassifier, closest, interrupts_unwrapped, named,
                             out_of_memory)
from neuralab.files import PATH_ADVICE, STOPS, drop_hung_up_outputs, drop_unread_output


class Parser(argparse.ArgumentParser):
    """Usage errors in one line that names the option, with exit status 2; options that need
    the library added only when this parser parses or shows its help."""

    def __init__(self, *args, **kwargs):
        # A shortened option is not taken for a longer one: `compare --seed 1` would be read as
        # --seeds 1 and `train --epoch 1` as --epochs, and start a training nobody asked for.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        # A word that starts with "-" and a digit is a value, not an option: the workshop's edge
        # kernels (`--kernel -1,0,1;-2,0,2;-1,0,1`) and a shape (`--input -3x3x1`, refused by its
        # type in one line) as well as a plain -5. Older versions of argparse take only -5 and -0.5
        # as values, newer ones use this pattern; no option of ours starts with a digit.
        self._negative_number_matcher = re.compile(r"-\.?\d")
        self._deferred: list[Callable[[Parser], None]] = []

    def defer(self, add_arguments: Callable[[Parser], None]) -> None:
        """Call ``add_arguments(self)`` when this command is used, not when the CLI starts."""
        self._deferred.append(add_arguments)

    def complete(self) -> Parser:
        while self._deferred:
            self._deferred.pop(0)(self)
        return self

    def parse_known_args(self, args=None, namespace=None):
        self.complete()
        self._words = list(sys.argv[1:] if args is None else args)  # for error: an unknown option among them
        namespace, rest = super().parse_known_args(args, namespace)
        # The parsers that took part, innermost first: their flags are the command's (see main),
        # and what each was given (see _args.typed).
        namespace.__dict__.setdefault("_parsers", []).append(self)
        namespace.__dict__.setdefault("_argv", []).append(list(sys.argv[1:] if args is None else args))
        return namespace, rest

    def format_usage(self) -> str:
        self.complete()
        return super().format_usage()

    def format_help(self) -> str:
        self.complete()
        return super().format_help()

    def error(self, message: str):
        # `forecast --modl lstm` would blame `lstm` as an ACTION: the mistyped option is the fault
        unknown = _unknown_option(self, getattr(self, "_words", []))
        if unknown is not None and any(message.startswith(f"argument {a.metavar}: invalid choice") for a in self._actions
                                       if isinstance(a, argparse._SubParsersAction)):
            self.no_such_option(unknown)
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")

    def no_such_option(self, word: str):
        """Refuse ``word``, an option this command does not have, naming the closest it does."""
        typed = word.split("=", 1)[0]
        names = {flag[2:]: flag for action in self._actions for flag in action.option_strings
                 if flag.startswith("--") and flag not in ("--help", "--version")}  # not what was meant
        bare = typed.lstrip("-")  # the dashes are no letters of the name: --ep is no typo of --sep
        # abbreviations are off (allow_abbrev=False): the flags a short word starts are what it meant
        started = [flag for name, flag in names.items() if name.startswith(bare)] if bare else []
        close = started or [names[c] for c in [closest(bare, names)] if c]
        how = f"did you mean {' or '.join(close)}?" if close else f"see `{self.prog} --help`"
        self.exit(2, f"{self.prog}: error: {typed}: no such option of {self.prog}; {how}\n")


def _unknown_option(parser: argparse.ArgumentParser, words: list[str]) -> str | None:
    """The first of ``words`` that is written as an option and is none of ``parser``'s."""
    for word in words:
        if word == "--":
            return None
        if (word.startswith("-") and word != "-" and not parser._negative_number_matcher.match(word)
                and word.split("=", 1)[0] not in parser._option_string_actions):
            return word
    return None


class Stopped(KeyboardInterrupt):
    """SIGTERM, SIGHUP or SIGUSR1, taken as Ctrl-C is (see main): a command that ends well on Ctrl-C
    (`runs --watch`) still ends with the signal's status when it was stopped by one."""


def build_parser() -> Parser:
    parser = Parser(
        prog="neuralab",
        description="Hands-on deep learning with CNNs and LSTMs: mechanics, models, training, forecasting.",
    )
    parser.add_argument("--version", action="version", version=f"neuralab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def namer(parsers: list[argparse.ArgumentParser]) -> Callable[[str], str]:
    """Name a library parameter by its flag where the command has that flag, by its metavar
    where it is the command's positional argument (RUN_DIR), by the flag whose value it is
    where a flag takes it (`run_dir` is --resume's RUN_DIR), else by its name."""
    flags = {flag for p in parsers for action in p._actions for flag in action.option_strings}
    positionals = {a.dest: a.metavar or a.dest.upper() for p in parsers for a in p._actions if not a.option_strings}
    valued = {a.metavar.lower(): a.option_strings[-1] for p in parsers for a in p._actions
              if a.option_strings and isinstance(a.metavar, str)}

    def name(parameter: str) -> str:
        flag = flag_for(parameter)
        if flag in flags:
            return flag
        return positionals[parameter] if parameter in positionals else valued.get(parameter, parameter)
    name.positionals = set(positionals)
    return name


CHOSEN = "NEURALAB_OPENMP_CHOSEN"  # which of the two openmp_waits set, beside it: a user's own has none


def openmp_waits(environ=os.environ) -> str:
    """How PyTorch's OpenMP threads wait at their barriers, chosen from what else the machine is
    running: set in ``environ`` before torch starts OpenMP, and returned as "NAME=value" (a
    user's own setting wins, and is returned).

    By default they spin for about a millisecond before they sleep: where the cores are busy
    with other work, the spinning thread takes the core its partner needs (the fast recipe took
    10 min 53 s instead of 63 s on a shared 2-core machine; a sample-CNN step 202 ms instead of
    64-71 ms beside one other busy process), so there they sleep at once. On free cores a short
    spin (30,000 rounds) wakes them faster than sleeping does, between the many small parallel
    regions of a training step: LeNet-5's step 4.3-5.6 ms against 7.8-10.4 (docs/speed-rounds.md,
    the nineteenth round). Busy means another task
    runnable now (``_others_busy``)."""
    chosen = environ.pop(CHOSEN, None)
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        if environ.get(name) and name != chosen:
            return f"{name}={environ[name]}"
    # A choice an earlier neuralab made (`neuralab serve`, whose jobs start hours later) is this
    # process's to make again, for the load now
    environ.pop(chosen or "", None)
    name, value = ("OMP_WAIT_POLICY", "PASSIVE") if _others_busy() else ("GOMP_SPINCOUNT", "30000")
    environ[name], environ[CHOSEN] = value, name
    return f"{name}={value}"



def _others_busy(readings: int = 5) -> bool:
    """Whether another task is runnable in most of ``readings`` of the kernel's count in
    /proc/loadavg, 2 ms apart: a task that runs for a moment (a kernel worker) is not load.

    The load average is not asked: it still holds work that has ended, this command's own last
    run among it. Right after the test suite it read 2.7 on 2 free cores, so the next command
    slept at once, which makes LeNet-5's step about twice as long (docs/speed-rounds.md,
    the nineteenth round)."""
    try:
        busy = 0
        for i in range(readings):
            if i:
                time.sleep(0.002)
            with open("/proc/loadavg") as f:
                busy += int(f.read().split()[3].split("/")[0]) - 1 >= 1  # runnable now, this one left out
        return 2 * busy > readings
    except (OSError, ValueError, IndexError):  # not Linux: assume others need the cores
        return True


_python_warning = warnings.formatwarning
PACKAGE = Path(__file__).resolve().parents[1]


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """neuralab's own warnings in one line, as its errors are; Python's form (file, line and the
    source line under it) for other libraries'."""
    if Path(filename).resolve().is_relative_to(PACKAGE):
        return f"neuralab: warning: {named(str(message))}\n"
    return _python_warning(message, category, filename, lineno, line)


def quiet_pillow() -> None:
    """Pillow's warnings that tell a user of the command nothing, left out: its size warning
    (neuralab checks every picture's size itself, and refuses it or decodes it smaller) and
    damaged EXIF data (the picture reads; its orientation may not). By their text: importing
    Pillow to name their class would cost every command that reads no picture."""
    warnings.filterwarnings("ignore", message=r"Image size \(\d+ pixels\) exceeds limit", module=r"PIL\.")
    warnings.filterwarnings("ignore", message=r"(Possibly )?[Cc]orrupt EXIF", module=r"PIL\.")  # MakerNote data too


def run() -> None:
    """The `neuralab` command's entry point: ``main``, then exit with its status.

    A command that imported torch spent 0.5-1.3 s after its last line in the interpreter's
    final garbage collections over torch's and matplotlib's million objects (docs/speed-rounds.md,
    the tenth round); frozen, they are left to the process's exit, which frees them at once.
    Exit handlers run as before.

    OpenMP's waiting is chosen here, in a process that has just started, rather than in ``main``:
    a library user's process calling ``main`` (a notebook, the test suite) may have started OpenMP
    already, where a setting changes nothing for it, and every process it starts later would
    inherit the choice of that moment as the user's own."""
    openmp_waits()
    warnings.formatwarning = _one_line_warning
    quiet_pillow()
    try:
        status = main()
        if status > 128:  # stopped by a signal: a second Ctrl-C would land in the exit handlers, a traceback
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.exit(status)
    except BrokenPipeError:  # the reader went away (`| head`): what it wanted was printed
        drop_unread_output(sys.stdout)  # Python flushes stdout once more at exit: to /dev/null, it cannot fail
        sys.exit(0)
    finally:
        gc.freeze()


class _ReadOrNot:
    """The standard output of a command that makes a run, where it is a pipe: once the pipe's
    reader went away (`neuralab train ... | head -3`, a `less` quit) its lines go nowhere and the
    run trains on to its end, as on a terminal that hung up, where the next line printed would
    end it unfinished. A listing command stops there instead (``run``): what was wanted is read."""

    def __init__(self, stream):
        self._stream = stream

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            drop_unread_output(self._stream)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            drop_unread_output(self._stream)


def _makes_run(args: argparse.Namespace, stream) -> bool:
    """Whether the command trains and writes runs (its parser's ``makes_run``: train, compare,
    forecast) and prints to a pipe (``_ReadOrNot``)."""
    import stat

    if not getattr(args, "makes_run", False):
        return False
    try:
        return stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):  # a stream in memory (a caller's capture of ``main``) has no reader to lose
        return False


def _other_rank() -> bool:
    """A process of a torchrun job other than rank 0. When one process fails, torchrun stops the
    others with SIGTERM: rank 0 says what happened to the run, once, and an "interrupted, resume
    it" from the others would be wrong (the failure may have been a refusal to start)."""
    # torchrun's environment, read as training.device.dist_info reads it, without importing torch:
    # a process refused before it imported torch would import it here for seconds, and torchrun,
    # stopping it as rank 0 ends, left it half imported and printing a traceback
    return int(os.environ.get("RANK", 0)) != 0


RANK_0_SAYS = 10  # seconds another process, refused, leaves rank 0 to say why before it ends


def _after_rank_0() -> None:
    """Wait, in a process of a torchrun job other than rank 0 that refused its inputs, for
    torchrun to stop it once rank 0 has refused them too and said why (at most RANK_0_SAYS
    seconds): ended first, it had torchrun stop rank 0 before rank 0 said it, which then said
    "interrupted" instead."""
    import time

    try:
        time.sleep(RANK_0_SAYS)
    except KeyboardInterrupt:  # torchrun's SIGTERM, as rank 0 ended: what was awaited
        pass


def _peer_lost(e: BaseException) -> bool:
    """Whether ``e`` is the process group's, raised where another process of the job went away
    (it failed, or torchrun stopped it): gloo raises a plain RuntimeError for a closed connection."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return False
    return isinstance(e, torch.distributed.DistError) or any(
        text in str(e) for text in ("Connection closed by peer", "Connection reset by peer"))


def _path_fault(error: OSError, args: argparse.Namespace) -> str | None:
    """``error``, an OSError about a path the user gave (``PATH_ADVICE``), in one line: the option
    that gave it with its value, else the path, shortened where it is long; None for any other
    OSError (a bug's). The library lets these go, its OSError naming the file, whichever file of
    the path it was opening (pathlib's exists() and is_dir() say False for a missing file but
    raise these): every command says them here."""
    if error.errno not in PATH_ADVICE or error.filename is None:
        return None
    path = Path(os.fsdecode(error.filename))
    gave = [(len(Path(given).parts), action.option_strings[-1], os.fsdecode(given))
            for parser in args._parsers for action in parser._actions if action.option_strings
            for given in [getattr(args, action.dest, None)] if isinstance(given, (str, os.PathLike))
            and Path(given).parts and (path == Path(given) or Path(given) in path.parents)]
    # the option whose path holds the file, the closest where one option's path holds another's
    shown = "{1} {2}".format(*max(gave)) if gave else str(path)
    return f"{_shortened(shown)}: {error.strerror or os.strerror(error.errno)}; {PATH_ADVICE[error.errno]}"


def _as_on_disk(error: UnicodeError) -> tuple[bytes, int]:
    """An error handler for the command's output: a file name's bytes that are no UTF-8, which
    Python holds as lone surrogates ("out\\udce9"), written as the bytes themselves, as ``find``
    writes them, so that a path pasted back (the way on an error names) is the
    file's; any other character the terminal's encoding lacks ("…" under LANG=en_US.ISO-8859-1)
    written escaped, not raised."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    out = bytearray()
    for char in error.object[error.start:error.end]:
        if 0xDC80 <= ord(char) <= 0xDCFF:  # what os.fsdecode made of a byte >= 0x80 (surrogateescape)
            out.append(ord(char) - 0xDC00)
        else:
            out += char.encode("ascii", "backslashreplace")
    return bytes(out), error.end


AS_ON_DISK = "neuralab.as_on_disk"
codecs.register_error(AS_ON_DISK, _as_on_disk)


def _has_fd(stream) -> bool:
    """Whether ``stream`` writes to a file descriptor (a terminal, a pipe, a file), which takes any
    bytes; a stream in memory (a caller's capture of ``main``: pytest's, a notebook's) is read
    back as UTF-8, which bytes that are no UTF-8 would break."""
    try:
        stream.fileno()
        return True
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return False


def _shortened(path: str, most: int = 160) -> str:
    """``path`` with each long name in it as its start and end around an ellipsis, and the whole
    so, where it is still longer than ``most`` characters."""
    path = "/".join(name if len(name) <= 40 else f"{name[:24]}…{name[-12:]}" for name in path.split("/"))
    return path if len(path) <= most else f"{path[:most * 2 // 3]}…{path[-(most // 3):]}"


def _less_memory(args) -> str:
    """How the command that ran out of memory asks for less: its --batch-size, and its
    --image-size where the data is a folder of pictures (a named dataset's size is its own). A
    run that kept no epoch is gone (training.classify), so the retry may name the same --out; a
    resume keeps the run's settings, so only a new run asks for less."""
    from neuralab.data import NAMED

    flags = {option for parser in args._parsers for action in parser._actions for option in action.option_strings}
    if getattr(args, "resume", None) and "--batch-size" in flags:
        return ("a resumed run keeps the settings it was started with: resume it on a machine with more memory, or "
                "start a new run (another --out) with a smaller --batch-size")
    smaller = [flag for flag in ("--batch-size", "--image-size") if flag in flags
               and (flag != "--image-size" or getattr(args, "data", None) not in NAMED)]
    if not smaller:
        return "give smaller inputs (pictures, batches, rows) or a machine with more memory"
    return f"run it again with a smaller {' or '.join(smaller)}; or use a machine with more memory"


def _said_from_python(error: NeuralabError, args) -> NeuralabError:
    """The library's ModelNeeded (pass the run's module as `model`), which no flag can do, said for
    the command's RUN_DIR as the Python call that loads it with the module given again (training.source's
    ``used_from_python``): here once, so that no command misses it. A command whose way on is
    another call (report's write_report, a resume) says that one itself (``from_python_only``)."""
    source = sys.modules.get("neuralab.training.source")  # loaded by whatever raised ModelNeeded
    run_dir = getattr(args, "run_dir", None)
    if source is None or not isinstance(error, source.ModelNeeded) or not isinstance(run_dir, (str, os.PathLike)):
        return error
    from neuralab.training.source import used_from_python

    return used_from_python(run_dir) or error


def main(argv: list[str] | None = None) -> int:
    received: list[int] = []

    def terminated(signum, frame):
        # SIGTERM is what cluster schedulers (SLURM at the end of a job's time, Kubernetes),
        # `timeout` and `docker stop` send before they kill, SIGHUP what a dropped ssh session
        # sends, SIGUSR1 what SLURM's `--signal=USR1@T` sends. Python's default ends the process
        # at once, without the line that says how to resume (SIGUSR1's silently, status 138);
        # taken as Ctrl-C, every command stops the way Ctrl-C stops it.
        received.append(signum)
        drop_hung_up_outputs()
        raise Stopped

    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # a name's bytes to a terminal, a pipe or a file; escaped to memory
            stream.reconfigure(errors=AS_ON_DISK if _has_fd(stream) else "backslashreplace")
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest:  # said by the command's own parser, whose options are the ones meant
        command = args._parsers[0]
        unknown = _unknown_option(command, rest)
        if unknown is not None:
            command.no_such_option(unknown)
        command.error(f"unrecognized arguments: {' '.join(rest)}")
    previous = {}
    if threading.current_thread() is threading.main_thread():  # where Python lets a handler be set
        for signum in STOPS:
            if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup's stays ignored
                previous[signum] = signal.signal(signum, terminated)
    naming = NAMING.set(namer(args._parsers))  # the library's printed advice names flags, as errors do
    from neuralab.cli._args import ways_on_as_commands

    stdout = sys.stdout
    if _makes_run(args, stdout):
        sys.stdout = _ReadOrNot(stdout)
    try:
        # every command names the command line's way on, never a Python call; Ctrl-C or SIGTERM that Python
        # (3.11's "Error calling __set_name__") or a library raised as another error stopped it: it did not fail
        with ways_on_as_commands(), interrupts_unwrapped():
            return args.func(args) or 0
    except NeuralabError as e:
        e = _said_from_python(e, args)
        how = "; train it with `neuralab forecast --model`" if isinstance(e, NotAClassifier) else ""
        if not _other_rank():  # every process of a torchrun job checks the same inputs: one says it
            print(f"neuralab: error: {e.render(NAMING.get())}{how}", file=sys.stderr)
        else:
            _after_rank_0()
        return 2
    except OSError as e:
        fault = _path_fault(e, args)
        if fault is None:
            raise
        if not _other_rank():
            print(f"neuralab: error: {fault}", file=sys.stderr)
        else:
            _after_rank_0()
        return 2
    except (MemoryError, RuntimeError) as e:
        shortage = out_of_memory(e)
        if shortage is None and _peer_lost(e):
            if not _other_rank():
                print("neuralab: error: another process of this torchrun job stopped; torchrun's report below "
                      "names its rank", file=sys.stderr)
            return 2
        if shortage is None:
            raise
        if not _other_rank():
            print(f"neuralab: error: {shortage}; {_less_memory(args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        if not _other_rank():
            print(f"neuralab: {str(e) or 'interrupted'}", file=sys.stderr)
        return 128 + (received[0] if received else signal.SIGINT)  # the shell's status for that signal
    finally:
        sys.stdout = stdout
        NAMING.reset(naming)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        torch = sys.modules.get("torch")
        if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
