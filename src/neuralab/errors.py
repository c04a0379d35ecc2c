"""The exceptions for input a user can fix, and how they name what is at fault.

The library speaks of its own parameters (``epochs``, ``val_fraction``), as scikit-learn
does; only the command line turns them into flags (``--epochs``), through one table beside
its argument definitions (``neuralab.cli._args.FLAGS``). A message marks every parameter it
mentions with backticks, "`lookback`", so that each interface can name it its own way:
Python and the web app print the name, the CLI prints the flag.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
from contextvars import ContextVar
from typing import Callable, Iterator

_MARKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_.]*)`")


def _plain(parameter: str) -> str:
    return parameter


# How what the library prints as it goes (advice, not only errors) names a parameter: by its
# Python name, unless an interface sets its own, as the command line does while a command runs
NAMING: ContextVar[Callable[[str], str]] = ContextVar("naming", default=_plain)


def named(text: str) -> str:
    """``text`` with each marked parameter ("`lookback`") named as the running interface names it."""
    return _MARKED.sub(lambda m: NAMING.get()(m[1]), text)


def _rebuilt(cls: type, args: tuple, fields: dict) -> BaseException:
    """An exception as pickle gives it back: its message and fields as they were, without a
    call to its __init__, which takes the fields (not the message) and may read a run's files."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(fields)
    return error


def reduced(error: BaseException) -> tuple:
    """``__reduce__`` for an exception whose __init__ takes other arguments than its message:
    pickle's default calls the class with the message alone, which such an __init__ refuses, so
    multiprocessing could not raise it again in the parent process."""
    return _rebuilt, (type(error), error.args, error.__dict__)


# How alike two names must be to be offered for each other (difflib's ratio: twice the characters in
# common over both lengths): a typo (mnth31, dropuot, lenet for lenet5) is above it, another word that
# shares a few letters (resnet and lenet5, 0.67) is below it. A short name's one slip (mpl, sdg: 0.67)
# is below it too, so one edit is offered on its own (``_one_edit``), and so is the start of a longer
# name (fashion for fashion-mnist, kernel for kernel_size) from PREFIX letters on
CLOSE = 0.75
PREFIX = 4


def _one_edit(a: str, b: str) -> bool:
    """Whether ``b`` is ``a`` with one letter changed, added or dropped, or two neighbours swapped
    (Damerau's one edit: mpl for mlp)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))  # the first that differ
    if len(a) != len(b):
        return a[i:] == b[i + 1:] or a[i + 1:] == b[i:]
    return a[i + 1:] == b[i + 1:] or (a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2:] == b[i + 2:])


def closest(word: str, choices) -> str | None:
    """The one of ``choices`` closest to ``word`` (a typo, or Keras's fashion_mnist for neuralab's
    fashion-mnist), None where none is close. Case does not count (LeNet5), nor a file's extension
    but to choose between two as close: twice for twice.csv, dash.txt for dash.csv; with it, y.csv
    and zulu.csv were as alike as a typo."""
    import difflib
    import os

    stem, suffix = os.path.splitext(str(word).lower())
    matcher, close, short = difflib.SequenceMatcher(b=stem), [], []
    for choice in choices:
        other, its = os.path.splitext(str(choice).lower())
        if _shortened(stem, other) and suffix in ("", its):  # fmnist is one edit from mnist, and meant fashion-mnist
            short.append(str(choice))
        matcher.set_seq1(other)
        near = matcher.ratio() >= CLOSE or min(len(stem), len(other)) >= 3 and _one_edit(stem, other)
        # a prefix and another extension are two differences: sales.csv is no sales_2023.xlsx
        started = len(stem) >= PREFIX and other.startswith(stem) and suffix in ("", its)
        if near or started:
            close.append((matcher.ratio(), its == suffix, str(choice), choice))
    if len(short) == 1:
        return next(c for c in choices if str(c) == short[0])
    return max(close)[3] if close else None  # of two as close, the later name, as difflib's own choice was


def _shortened(word: str, name: str) -> bool:
    """Whether ``word`` shortens the name of several parts as people do: its first letter and its
    whole last part (fmnist for fashion-mnist)."""
    *first, last = re.split(r"[-_ ]", name)
    return bool(first) and len(last) < len(word) < len(name) and word[0] == name[0] and word.endswith(last)


def did_you_mean(word: str, choices) -> str:
    """"did you mean 'fashion-mnist'? " where ``word`` is close to one of ``choices`` (``closest``),
    else "": a refusal's start of its advice."""
    close = closest(word, choices)
    return f"did you mean {close!r}? " if close else ""


class NeuralabError(ValueError):
    """Bad input: a file, field or parameter that the user can correct.

    The message is one line that names the culprit and says what to do. The CLI
    prints it without a traceback and exits with status 2; the web app answers 4xx.
    """

    def __reduce__(self):  # every subclass, whatever its __init__ takes
        return reduced(self)

    def render(self, name: Callable[[str], str] = _plain) -> str:
        """The message with every marked parameter named by ``name`` (the CLI passes its flags)."""
        return _MARKED.sub(lambda m: name(m[1]), super().__str__())

    def __str__(self) -> str:
        return self.render()


class Shown:
    """A value as a message shows it: its repr, cut after 40 characters (a dict given for a
    config, a long string)."""

    def __init__(self, value):
        text = repr(value)
        if "\n" in text:  # a module's layers, a line each: its type says it in one line
            text = f"<{type(value).__name__}>"
        self.text = text if len(text) <= 40 else text[:37] + "..."

    def __repr__(self) -> str:
        return self.text


_SHELL_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}  # $'...' reads them so, as Python does


def printable(text: str) -> str:
    """``text`` on one line, as the shell takes it back: a name holding a character no terminal
    shows as itself (a newline, a tab, a no-break or zero-width space) is written in the shell's
    $'...' quoting, those characters as the bytes of their UTF-8 (``$'runs/my\\xc2\\xa0run'``),
    which a path pasted back names; Python's repr in quotes named no file. A name's bytes that are
    no UTF-8 (Latin-1's é, held as "\\udce9") print as the bytes themselves (the command's output
    handler) in a name otherwise shown as it is, and as \\xe9 in $'...'; those of C1 controls (0x80
    to 0x9f, an 8-bit terminal's escapes) are escaped. A lone surrogate, which no bytes give (a
    name from JSON's "\\ud800"), is written \\ud800."""
    rest = "".join(c for c in text if not 0xDCA0 <= ord(c) <= 0xDCFF)
    if rest.isprintable():
        return text

    def quoted(c: str) -> str:
        if c in "\\'":
            return "\\" + c
        if c in _SHELL_ESCAPES:
            return _SHELL_ESCAPES[c]
        if c.isprintable():  # a surrogate is not
            return c
        try:
            return "".join(f"\\x{b:02x}" for b in os.fsencode(c))
        except UnicodeEncodeError:  # a surrogate no byte was read as
            return f"\\u{ord(c):04x}"
    return "$'" + "".join(map(quoted, text)) + "'"


def shell_word(path) -> str:
    """``path`` as a command line that is printed for pasting back must give it: quoted where the
    shell would split or expand it (`--resume 'sp ace/r3'`), as ParameterError shows an
    option's value; a name holding a character no terminal shows as itself (a newline, a tab, a
    no-break space) is written in the shell's $'...' quoting (``printable``), on the message's
    one line. A relative path starting with "-" is given as "./-r1": argparse would take
    "-r1" for an option, after an option or as a positional alike. The command lines' counterpart of
    runs.python_call's repr."""
    text = os.fspath(path)
    if text.startswith("-"):
        text = os.path.join(os.curdir, text)
    return _quoted(text)


def _quoted(text: str) -> str:
    """``text`` as one word of a command line: ``printable``'s $'...' where it holds a character
    no terminal shows, else quoted where the shell would split or expand it."""
    shown = printable(text)
    return shlex.quote(text) if shown is text else shown


_NEGATIVE = re.compile(r"-\d+|-\d*\.\d+")  # what argparse takes for a negative number, not an option


def by(sizes) -> str:
    """A shape as a message writes it and a user types it: (16, 16) as 16x16."""
    return "x".join(map(str, sizes))


def hwc(shape) -> str:
    """An image's (channels, height, width) as Keras and the command line's --input give it,
    height x width x channels; another shape as ``by`` writes it."""
    if len(shape) != 3:
        return by(shape)
    c, h, w = shape
    return f"{h}x{w}x{c}"


class ParameterError(NeuralabError):
    """A parameter's value is not allowed: carries the parameter's name and the value given.

    ``ParameterError("epochs", 0, "must be at least 1")`` reads "epochs=0: must be at least 1"
    in Python and "--epochs 0: must be at least 1" on the command line.
    """

    def __init__(self, parameter: str, value, reason: str):
        self.parameter, self.value, self.reason = parameter, value, reason
        super().__init__(f"`{parameter}`={value!r}: {reason}")

    def render(self, name: Callable[[str], str] = _plain) -> str:
        reason = _MARKED.sub(lambda m: name(m[1]), self.reason)
        if self.parameter in getattr(name, "positionals", ()):  # a command's positional: the value says it
            return f"{self.value}: {reason}"
        flag = name(self.parameter)
        if flag.startswith("-"):  # as it was typed on the command line, which pasted back gives the value
            # a list flag's items (--hidden 128,64, --models mlp,cnn) are typed joined by commas
            text = ",".join(map(str, self.value)) if isinstance(self.value, (list, tuple)) else str(self.value)
            if text.startswith("-") and not _NEGATIVE.fullmatch(text):  # argparse would take it for an option
                return f"{flag}={_quoted(text)}: {reason}"
            return f"{flag} {_quoted(text)}: {reason}"
        return f"{flag}={self.value!r}: {reason}"


class NotAClassifier(NeuralabError):
    """A model that takes sequences, not images, given where an image classifier is wanted: it
    is a forecaster's ``model`` (neuralab.forecasting). The CLI adds the command that trains it."""


# The standard library's modules whose frames lie between a user's line and neuralab's without
# being the user's: decorators' wrappers, and the threads that neuralab's own work runs in
_PASSED = frozenset({"contextlib", "functools", "threading", "concurrent.futures.thread"})


def user_stacklevel() -> int:
    """``warnings.warn``'s stacklevel, in the function that calls this, for the user's line: the
    first frame outside the neuralab package, however many of neuralab's functions
    (``load_image_data``, ``train_classifier``) and their wrappers lie between (Python 3.12's
    ``skip_file_prefixes``, which 3.11 lacks). Under the command line, or where no user's line
    called (a thread of the web app's), neuralab's own frame: the command prints neuralab's
    warnings in one line, without a place."""
    package = os.path.dirname(__file__) + os.sep
    command = os.path.join(package, "cli") + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_code.co_filename.startswith(package)
                                 or frame.f_globals.get("__name__") in _PASSED):
        if frame.f_code.co_filename.startswith(command):
            return 1
        frame, level = frame.f_back, level + 1
    return 1 if frame is None else level


def interrupt_in(exc: BaseException) -> KeyboardInterrupt | None:
    """The interrupt (Ctrl-C; SIGTERM, SIGHUP and SIGUSR1, which the command line raises as
    Ctrl-C) that ``exc`` is, or was raised over: Python 3.11 wraps one that comes while a class body sets up
    its descriptors in a RuntimeError ("Error calling __set_name__"), and a library may wrap it
    in its own error. None where ``exc``'s chain of causes and contexts holds none.

    A context counts only where it was caught beneath the code the error came up through, hidden
    (``raise ... from None``: a one-line refusal over the user's constructor's error) or not:
    Python sets the context of every error raised while a handler runs, so an error of the
    user's model, trained inside their own ``except KeyboardInterrupt:``, carries that earlier
    Ctrl-C, which stopped nothing of this run."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        if exc.__cause__ is not None:
            exc = exc.__cause__
        elif exc.__context__ is not None and _caught_beneath(exc.__context__, exc):
            exc = exc.__context__
        else:
            return None
    return None


def reraise_interrupt(exc: BaseException) -> None:
    """Raise, as itself, the interrupt that ``exc`` was raised over (``interrupt_in``); nothing
    where it holds none. The first line of a broad ``except Exception:`` around a user's code
    (a check that goes on where the model fails): Ctrl-C stops the run, wrapped or not."""
    interrupt = interrupt_in(exc)
    if interrupt is not None and interrupt is not exc:
        raise interrupt from None


@contextlib.contextmanager
def interrupts_unwrapped() -> Iterator[None]:
    """A block out of which an interrupt that Python or a library raised as another error
    (``interrupt_in``) comes as the interrupt itself: where a handler of KeyboardInterrupt says
    what was kept and how to go on."""
    try:
        yield
    except Exception as e:
        reraise_interrupt(e)
        raise


def _caught_beneath(context: BaseException, exc: BaseException) -> bool:
    """Whether ``context`` was caught in a frame that ``exc`` came up through: the handler that
    raised ``exc`` wrapped it, not one of a caller's that ran the code ``exc`` came from."""
    caught = context.__traceback__
    frames = set()
    tb = exc.__traceback__
    while tb is not None:
        frames.add(id(tb.tb_frame))
        tb = tb.tb_next
    return caught is not None and id(caught.tb_frame) in frames


def out_of_memory(exc: BaseException) -> str | None:
    """What ran out, in one line, where ``exc`` is a failed allocation (NumPy's and Python's
    MemoryError, PyTorch's allocators, which raise RuntimeError or torch.OutOfMemoryError);
    None for any other error. The interfaces' last word on sizes that no check caught."""
    text = str(exc)
    if not isinstance(exc, MemoryError) and "can't allocate memory" not in text and "out of memory" not in text.lower():
        return None
    asked = re.search(r"allocate (\d+) bytes", text)
    if asked:
        return f"not enough memory: a step asked for {int(asked[1]) / 2**30:.1f} GiB"
    asked = re.search(r"allocate ([\d.]+ [KMGTP]i?B)", text)
    return f"not enough memory: a step asked for {asked[1]}" if asked else "not enough memory"
