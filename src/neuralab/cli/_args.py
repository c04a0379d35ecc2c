"""What the commands share: how the command line names the library's parameters, and the
argument types that parse a value (argparse's error then names the option).

The library's errors name its parameters (``val_fraction``, see neuralab.errors); the CLI
prints them as its flags through ``flag_for``: "--" and the name with "-" for "_", or the
entry in FLAGS where the flag says it differently. A value a library config holds has its
range checked there alone (TrainConfig.check refuses `--epochs 0`, named by its flag): the
types here parse it (int, float, sizes). Only a value that no library check refuses before
the work starts has its range checked here: a port, the seconds between `runs --watch`
refreshes, the NumPy lesson's budget (`conv train-scratch`), `summary`'s and `predict`'s counts.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Callable

# parameter -> flag, where the flag is not "--" + parameter.replace("_", "-")
FLAGS = {
    "transform": "--target-transform",  # WindowConfig.transform: on the command line, of the target
    "architecture": "--model",          # ModelConfig.architecture: `neuralab forecast --model gru`
    "input_shape": "--input",           # (C, H, W) in Python, HxWxC on the command line
    "num_classes": "--classes",
}


def flag_for(parameter: str) -> str:
    """The flag that sets the library's ``parameter``: "val_fraction" -> "--val-fraction"."""
    return FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


def defaults(function: Callable) -> dict:
    """The default of each of ``function``'s keyword parameters: a command's defaults are the library's."""
    import inspect

    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def whole_number(text: str) -> int:
    """A type for whole numbers, parsed only: the library's config checks the range."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def number(text: str) -> float:
    """A type for numbers, parsed only: the library's config checks the range (NaN and inf too)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """A type for whole numbers of at least ``minimum`` (and at most ``maximum``, if given): only
    for the values the module's docstring lists, whose range no library config checks first."""
    def checked(text: str) -> int:
        value = whole_number(text)
        if maximum is not None and not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value}: allowed are {minimum} to {maximum}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        return value
    return checked


positive_int = at_least(1)


def positive_float(text: str) -> float:
    value = number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be greater than 0")
    if value == float("inf"):  # a learning rate of inf trains to NaN without a word
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def shape_hwc(text: str) -> tuple[int, int, int]:
    """'28x28x1' (Keras order H x W x C, as the workshop writes it) -> (C, H, W); 'HxW' means one channel."""
    parts = text.lower().split("x")
    try:
        h, w, c = (int(p) for p in parts) if len(parts) == 3 else (*map(int, parts), 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HxWxC, e.g. 28x28x1 or 32x32x3") from None
    if min(h, w, c) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: every size must be at least 1")
    return c, h, w


def size_pair(text: str) -> tuple[int, int]:
    """'5' -> (5, 5); '5x3' or '5,3' -> (5, 3); each at least 1."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not N or NxM with whole numbers, e.g. 3 or 2x1") from None
    if len(values) not in (1, 2) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give N or NxM, each at least 1")
    return values * 2 if len(values) == 1 else values


def padding(text: str) -> str | int:
    """'valid' | 'same' | a whole number >= 0."""
    if text.lower() in ("valid", "same"):
        return text.lower()
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r}: allowed are valid, same or a whole number >= 0")


def names(text: str) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c']: columns, encodings, baselines."""
    return [c.strip() for c in text.split(",") if c.strip()]


def layer_sizes(text: str) -> list[int]:
    """'128,64' -> [128, 64]; ModelConfig.check refuses a size below 1."""
    try:
        sizes = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        sizes = []
    if not sizes:  # none at all would be taken as the model's own sizes
        raise argparse.ArgumentTypeError(f"{text!r}: give layer sizes like 128,64")
    return sizes


port_number = at_least(0, 65535)  # 0: a free port, which the system chooses


def host_name(text: str) -> str:
    """A host name or an IP address as a browser puts it in the Host header: no scheme, port or path."""
    import ipaddress

    name = text.strip().strip("[]")
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        pass
    labels = name.rstrip(".").split(".")
    if not name or len(name) > 253 or not all(0 < len(x) <= 63 and x.replace("-", "").isalnum() and x.isascii()
                                              for x in labels):
        raise argparse.ArgumentTypeError(f"{text!r} is not a host name or IP address (give it without "
                                         "http:// or a port, e.g. lab-pc.local or 192.168.1.20)")
    return name


def run_folder(text: str) -> str:
    """A run's folder, as typed. A name that is no folder here but is one in the runs folder
    (`mlp`, as `neuralab runs` lists it) is refused with that path, not taken silently: the
    same name would mean another folder from another directory."""
    from pathlib import Path

    from neuralab.runs import default_root

    there = default_root() / text
    try:
        elsewhere = not Path(text).exists() and not Path(text).is_absolute() and there.is_dir()
    except OSError:  # a path no file can have (a name too long): the command says so, as of any path it is given
        elsewhere = False
    if elsewhere:
        raise argparse.ArgumentTypeError(f"{text}: not found; did you mean {there}?")
    return text


def only_with_resume(args, *names: str) -> None:
    """Refuse options that mean something only when a run is resumed, given without `resume`."""
    from neuralab.errors import NeuralabError

    given = [name for name in names if getattr(args, name)]
    if given:
        raise NeuralabError(f"`{given[0]}` applies only with `resume` (to an interrupted run); leave it out "
                            "for a new run")


def typed(args, level: int = 0) -> set[str]:
    """The options typed on the command line (by their dest), a value equal to the default's
    included: argparse parses the command's words again into a namespace where every option
    holds a marker, which only an option that is typed replaces. ``level`` 1: those typed on
    the command above it, before the subcommand's name (`forecast ... predict`)."""
    parser, argv = args._parsers[level], args._argv[level]  # the parser and its words (Parser records them)
    if level:  # the words from the subcommand's name on are the subcommand's
        argv = argv[:len(argv) - len(args._argv[level - 1]) - 1]
    unset = object()
    marked = argparse.Namespace(**{a.dest: unset for a in parser._actions if a.dest != argparse.SUPPRESS})
    parser.parse_known_args(argv, marked)
    return {dest for dest, value in vars(marked).items() if value is not unset and not dest.startswith("_")}


def refuse_other_kind(run_dir, kind) -> None:
    """A run of another kind than ``kind`` given to --resume: refused before the options are
    checked against the run, naming the commands that fit (``other_kind_as_commands``)."""
    from neuralab.runs import OtherKind, Run

    if Run.open(run_dir).by_keras_fit:  # the resume says where a run of Keras's fit goes on
        return
    try:
        Run.open(run_dir, kind)
    except OtherKind as e:
        raise other_kind_as_commands(e) from None


def other_kind_as_commands(e):
    """The library's refusal of a run of another kind (runs.OtherKind), which names Python's
    functions, said with the commands that make, resume and use the run; a run of a module object
    (``python_only``), which every command refuses, keeps the library's functions, which take it."""
    if python_only(e.path):
        return e
    found = e.found
    return e.said_with(f"`{found.made_by}`", found.used_by, "`neuralab runs`, `neuralab serve`",
                       resume_command(found.made_by, e.path) if e.resumable else None)


def height_width(text: str, channels: str = "--color's (rgb for 3, grayscale for 1)") -> tuple[int, int]:
    """"64x48" (height x width) or "64" (square) -> (64, 48); a usage error otherwise, a side
    past what a classifier takes included (said here, as typed). ``channels``: whose the colour
    channels are, where a command has no --color."""
    from neuralab.data.pictures import MAX_SIDE

    parts = text.lower().split("x")
    if (len(parts) == 3 and all(part.isdigit() and 1 <= int(part) <= MAX_SIDE for part in parts)
            and parts[2] in ("1", "3")):  # 32x32x3, Keras's shape
        raise argparse.ArgumentTypeError(f"{text!r}: give HEIGHTxWIDTH in pixels ({parts[0]}x{parts[1]}); the "
                                         f"colour channels are {channels}")
    if len(parts) not in (1, 2) or not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: give HEIGHTxWIDTH in pixels, e.g. 64x64, or one number for a square")
    if max(int(part) for part in parts) > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_SIDE} pixels a side")
    return (int(parts[0]), int(parts[-1]))


@contextlib.contextmanager
def ways_on_as_commands(interrupted: Callable | None = None, then: str = ""):
    """The library's ways on after an interrupt, its Python calls, said as the command line's:
    `--resume` (the run's own command) for a run interrupted, or one an `--out` holds; where
    the same command again goes on (compare), ``interrupted(e)`` says it, and ``then`` what
    follows a run's resume; `neuralab report` for a finished run's report that was stopped.
    What makes a run and what uses one, said as the commands, where a folder given is none or
    holds a run of another kind. A run of a module object keeps the library's Python calls
    (``python_only``)."""
    from neuralab.reports.html import ReportInterrupted, ReportNotWritten
    from neuralab.runs import Interrupted, InterruptedInTheWay, Kind, NotARun, OtherKind, RunFinished

    try:
        yield
    except NotARun as e:
        raise e.said_with(" or ".join(f"`{kind.made_by}`" for kind in Kind)) from None
    except OtherKind as e:
        raise other_kind_as_commands(e) from None
    except (ReportInterrupted, ReportNotWritten) as e:
        from neuralab.cli.report import report_command

        if python_only(e.run_dir):
            raise
        raise e.said_with(report_command(e.run_dir)) from None
    except RunFinished as e:  # a resume of a finished run whose report a kill stopped names the command
        from neuralab.cli.report import report_command

        if python_only(e.path):
            raise
        raise e.said_with(report_command(e.path)) from None
    except Interrupted as e:
        said = interrupted(e) if interrupted else f"`{resume_command(e.kind.made_by, e.path)}` {e.resume_does}"
        raise KeyboardInterrupt(f"{e.kept}; {said}") from None
    except InterruptedInTheWay as e:
        if getattr(e, "said_as_commands", False):  # by a command's own words already, within main()'s
            raise
        said = InterruptedInTheWay(e.path, e.kind, resume_command(e.kind.made_by, e.path), e.out, then if e.then else "")
        said.said_as_commands = True
        raise said from None


def resume_command(command: str, run_dir) -> str:
    """The command line that continues the run in ``run_dir``: with --trust-code where its model
    is PyTorch code the run keeps, which --resume runs only when told to; in a torchrun job,
    started as it was (``launched_as``), so that it goes on in as many processes. For a run of a
    module object (``python_only``), the library's Python call that resumes it with the module
    given again: `--resume` would only say so."""
    from pathlib import Path

    from neuralab.runs import Interrupted, Kind, resume_needs, shell_word

    if python_only(run_dir):
        return Interrupted.resume_call(Path(run_dir), next(kind for kind in Kind if kind.made_by == command))
    start = launched_as() if command == Kind.CLASSIFIER.made_by else ""  # torchrun runs `neuralab train` alone
    trust = " --trust-code" if resume_needs(Path(run_dir))[0] == "trust_code" else ""
    return f"{start}{command} --resume {shell_word(run_dir)}{trust}"


def python_only(run_dir) -> bool:
    """Whether the run in ``run_dir`` is of a module object that it cannot rebuild (``resume_needs``
    "model"): no flag passes a module, so its ways on stay the library's Python calls, which take
    it (``model=Net(...)``), where the command line's would only refuse it."""
    from pathlib import Path

    from neuralab.runs import resume_needs

    return resume_needs(Path(run_dir))[0] == "model"


def launched_as() -> str:
    """How the user started this process's neuralab, where torchrun started it with others:
    "torchrun --nproc_per_node 2 -m " (with --nnodes over several nodes, whose rendezvous options
    the user adds again), else "". Read from the environment torchrun sets (WORLD_SIZE: the
    processes in all; LOCAL_WORLD_SIZE: on this node), as training.device.dist_info reads it,
    without importing torch: a refusal may be said before torch is loaded."""
    import os

    world = int(os.environ.get("WORLD_SIZE", 1))
    if "RANK" not in os.environ or world < 2:  # one process: `neuralab train --resume` goes on as well
        return ""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    nodes = f"--nnodes {world // local} " if local < world else ""
    return f"torchrun {nodes}--nproc_per_node {local} -m "


def requeued(args, kind) -> bool:
    """Whether `resume_if_interrupted` goes on with a run in the folder `out` names, for the
    command of a job that a scheduler may stop and start again: True where it holds a run of
    ``kind``, which the command resumes (its typed options checked against the run's), or finds
    finished (``finished_already``); False where it holds none yet (no folder, an empty one, or
    what a kill before its config.json left, which the new run clears), and the command starts
    it. A run of another kind, or one that a live process trains, is refused."""
    from neuralab.errors import NeuralabError
    from neuralab.runs import CONFIG, Run

    placed = next((name for name in ("resume", "overwrite", "checkpoint") if getattr(args, name, None)), None)
    if placed is not None:
        raise NeuralabError(f"`{placed}` does not go with `resume_if_interrupted`, which starts the run in `out` "
                            "or resumes it there; leave it out")
    if not args.out:
        raise NeuralabError("`resume_if_interrupted` needs `out`: the run's folder, where the command given again "
                            "finds the run to resume")
    run = Run(args.out)
    if not (run / CONFIG).is_file():
        return False  # Run.create refuses a folder that holds anything a run does not write
    refuse_other_kind(run.path, kind)
    run.refuse_live()
    return True


def code_named_again(args) -> bool:
    """Whether the `model` typed with `resume_if_interrupted` names the PyTorch code of the run in
    `out` as the run keeps it: the same file and module, the file's SHA-256 that of the run's
    copy, and each file beside it that the copy imports the same too. Typing the file was the
    consent to run it when the job started the run, so the job a scheduler starts again goes on
    without `trust_code`; a file changed since (or gone) is not the code the user names, and the
    resume's refusals stand. A finished run trains nothing, but the report its end writes, where
    a kill stopped that, runs the code again (``finished_already``): the same consent covers it."""

    from neuralab.data.sources import sha256
    from neuralab.errors import NeuralabError
    from neuralab.runs import MODEL, RESULTS, Run, json_object
    from neuralab.training.classify import same_code
    from neuralab.training.source import TORCH, split_name
    from neuralab.training.user_code import folder_of

    if "model" not in typed(args) or not isinstance(args.model, str):
        return False
    run = Run(args.out)
    finished = (run / RESULTS).is_file()
    source = json_object(json_object(run.read(MODEL)).get("source")) if (run / MODEL).is_file() else {}
    path = split_name(args.model)[0]
    if source.get("type") != TORCH or not source.get("file") or not path.is_file():
        return False
    recorded = json_object(run.record.get("config")).get("model")
    recorded = json_object(recorded).get("architecture") if isinstance(recorded, dict) else recorded  # a forecaster's
    beside = json_object(source.get("imports"))
    try:
        if not (sha256(path, "file") == source.get("sha256") and same_code(args.model, recorded, run)):
            return False
        folder = folder_of(path)  # where the file's imports come from: beside a link's target
        changed = [name for name, digest in beside.items()
                   if not (folder / name).is_file() or sha256(folder / name, "file") != digest]
    except (NeuralabError, OSError):  # changed, or unreadable: the resume says so
        return False
    if changed and finished and not run.report_missing():  # nothing trains, nothing runs: finished_already says so
        return False
    if changed:  # --trust-code would run the run's copies, not the file the user edited
        from neuralab.cli.report import report_command

        do = (f"put it back to write the report its end was stopped in, or write it from the run's copies: "
              f"`{report_command(args.out)}`" if finished else
              "put it back to resume, or start a new run with another --out")
        raise NeuralabError(f"{folder / changed[0]}: changed (or gone) since the run in {args.out} was made, "
                            f"which imports the copy it trained with; {do}")
    return True


def finished_already(args) -> int:
    """`resume_if_interrupted` given a finished run (the resume's RunFinished, once the options
    typed are found to be the run's own): nothing is left to train, so the job is done (exit
    status 0); the report its end writes, where a kill stopped that, is written now."""
    from neuralab.runs import Run

    run = Run(args.out)
    if run.report_missing():
        from neuralab.cli.report import write_report

        path = write_report(run.path, getattr(args, "data_dir", None), args.trust_code)
        print(f"{run.path}: the run is finished; its report, which was stopped, is written again: {path}")
    else:
        print(f"{run.path}: the run is finished already (results.json is written); nothing to do")
    return 0
