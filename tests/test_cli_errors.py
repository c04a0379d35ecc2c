"""The library names its parameters and only the command line names flags (neuralab.errors).

The library's strings are read as Python (every string constant, f-strings included), so a
flag written anywhere a message is built is found, whichever function raises it; and every
parameter the library names in an error has a flag the CLI prints in its place.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from neuralab.cli import build_parser, main, namer
from neuralab.cli._args import FLAGS, flag_for
from neuralab.errors import NeuralabError, ParameterError

SRC = Path(__file__).resolve().parents[1] / "src" / "neuralab"
FLAG = re.compile(r"(?<![\w-])--(?:[a-z]|\{)")           # --epochs, and f"--{name}"
COMMAND = re.compile(r"`neuralab [^`]*`")                # a command line to run, quoted: `neuralab train --resume DIR`
ARGUMENT = re.compile(r"--[a-z][a-z-]*")                 # one argument of a command line the library runs (web jobs)
MARKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")       # a parameter named inside a message

# Parameters the library names in errors that the command line does not set, and why.
PYTHON_ONLY = {
    "offsets": "load_series's rule for UTC offsets in Python (a run's model.json records its own); the command line reads a run's data by it",
    "frame": "add_calendar's frame in Python (new rows for an ONNX file); the command line reads a CSV",
    "names": "add_calendar's encodings in Python (an ONNX file's calendar metadata); the command line's is --calendar",
    "warmup": "TrainConfig's warm-up fraction, which a --recipe sets",
    "rtol": "export_onnx's check, relative to the largest logit; the command line keeps the default",
    "atol": "export_onnx's earlier name of rtol, deprecated",
    "eval_batch_size": "TrainConfig's batch for evaluation, which changes no result; the command line keeps the default",
    "model_options": "a zoo model's keyword options (ClassifierConfig); the command line trains the zoo's defaults",
    "config": "the config object a Python call takes, which the command line builds from its flags",
    "base": "compare()'s ClassifierConfig the compared models share, which the command line builds from its flags",
    "rate": "the mechanics' dropout rate, an argument of the lesson's NumPy functions",
    **{name: "an argument of the mechanics' NumPy functions (the lessons' arrays)"
       for name in ("w", "b", "dout", "logits", "labels", "a", "eps", "w_hh", "in_chw", "pads", "z", "dhs",
                    "dc_last", "running_var")},
    "kernel_size": "the sample CNN's option (CNNConfig); the command line trains the zoo's defaults",
    "image": "a field of the web app's requests",
    "at": "a field of the web app's requests",
    "run": "a field of the web app's requests",
    "test": "RunLogger's test set, (images, labels) in Keras's fit",
    "log_dir": "the TensorBoard callback's folder in Python; the command line writes into the run",
    "callbacks": "objects called as training goes; Python only",
    "window": "the moving-average baseline chooses its window on the command line",
    "intervals": "the command line reports the 80% and 95% intervals",
    "x": "Trainer.fit's and predict's inputs, tensors in Python; the command line reads a dataset",
    "y": "Trainer.fit's targets, tensors in Python; the command line reads a dataset's labels",
    "path": "save_image's and plots.save's file in Python; the command line checks its --out and --figure first",
    "val": "Trainer.fit's validation set in Python; the command line splits val_fraction off the data",
    "val[1]": "the targets of Trainer.fit's validation set in Python; the command line's are a dataset's labels",
    "light_borders": "a Preprocess made in Python; a run's records its training pictures' own",
    "preprocess": "a Classifier's normalisation in Python; the command line keeps the run's",
    "inputs": "the Trainer's batch transform in Python (Preprocess.normalise); runs of the command line set it",
    "windows": "a forecaster's predict in Python; `neuralab forecast predict` reads new rows from a CSV",
    "metric": "Forecaster.score's measure in Python; the command line reports every metric",
    "probs": "Classifier.top_k's probabilities in Python; `neuralab predict --top-k` lists them",
    **{name: "confusion_matrix's arguments in Python; the command line's reports count them from the test set"
       for name in ("pred", "true", "k")},
}

# Arguments of the lessons' NumPy functions whose names are generic: exempt only where every
# message naming them is in neuralab.mechanics, so that another module's `text` still needs a flag
LESSONS_ONLY = {"dloss", "axis", "f", "actual", "expected", "text", "spec", "weights", "training", "in_hw"}


def library_files() -> list[Path]:
    return [p for p in sorted(SRC.rglob("*.py")) if "cli" not in p.relative_to(SRC).parts]


def strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant that is not a docstring; f-strings with {} for their fields."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings, parts = set(), set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            docstrings.add(id(body[0].value))
        if isinstance(node, ast.JoinedStr):
            parts.update(id(v) for v in node.values)
    found = []
    for node in ast.walk(tree):
        if id(node) in docstrings or id(node) in parts:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            found.append((node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)))
    return found


def test_the_scan_finds_flags_however_a_message_is_built(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('"""Docs may say --epochs."""\n'
                    'def f(name, v):\n'
                    '    """So may --lr here."""\n'
                    '    a = f"--{name} {v}: bad"\n'
                    '    b = ("--val-fraction", v)\n'
                    '    c = "run `neuralab train --resume DIR`"\n'
                    '    d = f"x {v}: " "pass --missing drop"\n')
    flagged = [text for _, text in strings(path) if FLAG.search(COMMAND.sub("", text))]
    assert sorted(flagged) == ["--val-fraction", "--{} {}: bad", "x {}: pass --missing drop"]


def test_no_library_string_names_a_command_line_flag():
    found = [f"{path.relative_to(SRC)}:{line}: {text!r}"
             for path in library_files() for line, text in strings(path)
             if FLAG.search(COMMAND.sub("", text)) and not ARGUMENT.fullmatch(text)]
    assert not found, "name the parameter (see neuralab.errors), not the flag:\n" + "\n".join(found)


def named_parameters() -> dict[str, list[str]]:
    """parameter -> where, each place: ParameterError's first argument when written out, and `marked` names in strings."""
    names: dict[str, list[str]] = {}
    for path in library_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ParameterError" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                names.setdefault(node.args[0].value, []).append(f"{path.relative_to(SRC)}:{node.lineno}")
        for line, text in strings(path):
            for name in MARKED.findall(text):
                names.setdefault(name, []).append(f"{path.relative_to(SRC)}:{line}")
    return names


def all_flags() -> tuple[set[str], set[str]]:
    """Every option of every command, the deferred ones included, and the names of the positional arguments."""
    flags, positionals, todo = set(), set(), [build_parser()]
    while todo:
        parser = todo.pop()
        parser.complete()
        for action in parser._actions:
            flags.update(action.option_strings)
            if isinstance(action.choices, dict):  # sub-commands
                todo.extend(action.choices.values())
            elif not action.option_strings:
                positionals.add(action.dest)
    return flags, positionals


def test_every_parameter_the_library_names_has_a_flag():
    names, (flags, positionals) = named_parameters(), all_flags()
    assert {"epochs", "val_fraction", "transform", "architecture", "input_shape", "data_dir"} <= set(names)
    # a positional argument (RUN_DIR) keeps the parameter's name: the user typed no flag for it
    missing = {n: where[0] for n, where in names.items()
               if flag_for(n) not in flags and n not in positionals and n not in PYTHON_ONLY
               and not (n in LESSONS_ONLY and all(w.startswith("mechanics/") for w in where))}
    assert not missing, f"add these to cli._args.FLAGS or PYTHON_ONLY: {missing}"
    assert all(flag in flags for flag in FLAGS.values())  # the table names real flags
    assert not {n for n in PYTHON_ONLY if flag_for(n) in flags}, "PYTHON_ONLY lists a parameter the CLI sets"


def test_errors_read_as_parameters_in_python_and_as_flags_on_the_command_line():
    e = ParameterError("season", 70, "must be between 1 and `lookback` (60)")
    assert str(e) == "season=70: must be between 1 and lookback (60)"
    forecast = namer(build_parser().parse_args(["forecast"])._parsers)
    assert e.render(forecast) == "--season 70: must be between 1 and --lookback (60)"
    transform = ParameterError("transform", "pct", "choose one of none, diff, log-return")
    assert transform.render(forecast) == "--target-transform pct: choose one of none, diff, log-return"
    # a command without the flag names the parameter: no flag is invented
    summary = namer(build_parser().parse_args(["summary", "cnn"])._parsers)
    assert summary("input_shape") == "--input" and summary("lookback") == "lookback"
    assert NeuralabError("`val_fraction` 0.5 + `test_fraction` 0.5: too much").render(summary) == \
        "val_fraction 0.5 + test_fraction 0.5: too much"


@pytest.mark.parametrize("argv, message", [
    # what does not parse; a value out of range is the library's to refuse (tests/test_config_checks.py)
    (["train", "--epochs", "ten"], "neuralab train: error: argument --epochs: 'ten' is not a whole number"),
    (["train", "--val-fraction", "half"], "neuralab train: error: argument --val-fraction: 'half' is not a number"),
    (["train", "--epochs", "1.5"], "neuralab train: error: argument --epochs: '1.5' is not a whole number"),
    (["forecast", "--lr", "1e-3x"], "neuralab forecast: error: argument --lr: '1e-3x' is not a number"),
    (["rnn", "gradients", "--steps", "2.5"], "neuralab rnn gradients: error: argument --steps: '2.5' is not a whole number"),
    (["train", "--schedule", "step"], "neuralab train: error: argument --schedule: invalid choice: 'step'"),
    (["forecast", "--hidden", "64,x"], "neuralab forecast: error: argument --hidden: '64,x': give layer sizes like 128,64"),
    (["conv", "shape", "--input", "8x8", "--kernel", "3", "--stride", "0"],
     "neuralab conv shape: error: argument --stride: '0': give N or NxM, each at least 1"),
])
def test_refused_while_parsing_names_the_flag_in_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.splitlines()[-1].startswith(message), err


@pytest.mark.parametrize("command", ["train", "forecast"])
def test_a_run_folder_given_to_resume_is_named_by_its_flag(capsys, tmp_path, command):
    """The library names `run_dir`; on these commands it is --resume's RUN_DIR."""
    code = main([command, "--resume", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2 and err == f"neuralab: error: --resume {tmp_path / 'nope'}: not found; give a folder made by " \
                                "`neuralab train` or `neuralab forecast`\n"
    (tmp_path / "prices.csv").write_text("date,close\n2024-01-02,1\n")  # the data given where the run goes
    code = main([command, "--resume", str(tmp_path / "prices.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err == f"neuralab: error: --resume {tmp_path / 'prices.csv'}: is a file, not a run's folder; " \
                                "give a folder made by `neuralab train` or `neuralab forecast`\n"


def test_output_piped_into_a_reader_that_stops_early_ends_quietly():
    """`neuralab ... | head -1`: the reader closes the pipe; the command stops without a traceback."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    p = subprocess.Popen([sys.executable, "-c", "from neuralab.cli import run; run()", "summary", "vgg16"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.close()  # before the command writes its first line
    err = p.stderr.read().decode()
    assert p.wait() == 0 and "Traceback" not in err and "Broken pipe" not in err, err


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts the process's descriptors in /proc")
def test_output_whose_reader_went_away_is_pointed_at_devnull_without_a_descriptor_left_open(monkeypatch):
    """The listing's stdout, once `head` has gone, goes to /dev/null for Python's flush at exit,
    through the one helper that does so for trainings too: no descriptor of /dev/null is left open."""
    import gc
    import os
    import sys
    import warnings

    from neuralab import cli

    def listed(argv=None):
        print("a line after the reader went away", flush=True)

    read, write = os.pipe()
    os.close(read)
    monkeypatch.setattr(cli, "main", listed)
    monkeypatch.setattr(cli, "openmp_waits", lambda: None)  # a fresh process's settings, not this one's
    monkeypatch.setattr(gc, "freeze", lambda: None)
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    monkeypatch.setattr(warnings, "filters", list(warnings.filters))
    with os.fdopen(write, "w") as stream:
        monkeypatch.setattr(sys, "stdout", stream)
        before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(SystemExit) as ended:
            cli.run()
        assert ended.value.code == 0 and len(os.listdir("/proc/self/fd")) == before
        assert os.path.samestat(os.fstat(write), os.stat(os.devnull))


def test_ctrl_c_says_interrupted(monkeypatch, capsys):
    from neuralab.cli import zoo

    def pressed(args):
        raise KeyboardInterrupt  # as Python raises it for Ctrl-C: no message

    monkeypatch.setattr(zoo, "run_zoo", pressed)
    assert main(["zoo"]) == 130
    assert capsys.readouterr().err == "neuralab: interrupted\n"


class Pressed:
    """A descriptor that Ctrl-C reaches as its class body sets it up (a library's class, being imported)."""

    def __set_name__(self, owner, name):
        raise KeyboardInterrupt


def _class_body(args):
    class Tfm:  # Python 3.11 raises the interrupt as RuntimeError("Error calling __set_name__ ...")
        height = Pressed()


def _library_wrapped(args):
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as e:
        raise RuntimeError("the worker stopped") from e


def _library_wrapped_in_its_handler(args):
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        raise RuntimeError("the worker stopped")  # noqa: B904  a library that chains it only as the context


@pytest.mark.parametrize("pressed", [_class_body, _library_wrapped, _library_wrapped_in_its_handler],
                         ids=["set_name", "library", "library's handler"])
def test_ctrl_c_raised_as_another_error_says_interrupted(monkeypatch, capsys, pressed):
    """An interrupt that Python or a library wrapped in its own error still stops the command as
    Ctrl-C does: no traceback, no error blaming the code it stopped."""
    from neuralab.cli import zoo

    monkeypatch.setattr(zoo, "run_zoo", pressed)
    assert main(["zoo"]) == 130
    assert capsys.readouterr().err == "neuralab: interrupted\n"


@pytest.mark.parametrize("allocate, asked", [(lambda: torch.empty(2**50), "4194304.0 GiB"),
                                             (lambda: np.empty(2**50), "8.00 PiB")], ids=["torch", "numpy"])
def test_running_out_of_memory_is_one_line(monkeypatch, capsys, allocate, asked):
    """Sizes that no check caught end in one line and status 2, not the allocator's traceback."""
    from neuralab.cli import zoo

    monkeypatch.setattr(zoo, "run_zoo", lambda args: allocate())
    assert main(["zoo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"neuralab: error: not enough memory: a step asked for {asked}; ") and err.count("\n") == 1, err


def test_a_training_out_of_memory_names_the_flags_that_ask_for_less(monkeypatch, capsys, tmp_path):
    """A training that ran out of memory in its first epoch said "give smaller inputs (pictures,
    batches, rows)", and left --out holding an interrupted run that refused the retry."""
    from helpers import digits_folder
    from neuralab.training import classify

    digits = digits_folder(tmp_path / "digits", 100)
    run = tmp_path / "big"
    command = ["train", "--model", "mlp", "--data", str(digits), "--image-size", "64x64", "--epochs", "1",
               "--threads", "1", "--out", str(run), "--quiet"]
    with monkeypatch.context() as patched:
        patched.setattr(classify, "_fit_and_finish", lambda *args, **kwargs: torch.empty(2**50))
        assert main(command) == 2
    err = capsys.readouterr().err
    assert err == ("neuralab: error: not enough memory: a step asked for 4194304.0 GiB; run it again with a smaller "
                   "--batch-size or --image-size; or use a machine with more memory\n"), err
    assert not run.exists()  # nothing kept: no interrupted run refusing the retry into the same --out
    # as it says: smaller, into the same --out
    again = command[:command.index("64x64")] + ["8x8", "--batch-size", "4"] + command[command.index("64x64") + 1:]
    assert main(again) == 0, capsys.readouterr().err
    assert (run / "results.json").is_file()


def test_a_resume_out_of_memory_is_not_told_to_change_what_a_resume_keeps(monkeypatch, capsys, tmp_path):
    """It was told to run again with a smaller --batch-size, which a resume refuses."""
    from helpers import digits_folder
    from neuralab.training import classify

    digits = digits_folder(tmp_path / "digits", 100)
    run = tmp_path / "run"
    assert main(["train", "--model", "mlp", "--data", str(digits), "--epochs", "1", "--threads", "1", "--out", str(run),
                 "--quiet"]) == 0
    record = json.loads((run / "config.json").read_text())
    (run / "results.json").unlink()  # as a run stopped after its epoch: resumable
    with monkeypatch.context() as patched:
        patched.setattr(classify, "_fit_and_finish", lambda *args, **kwargs: torch.empty(2**50))
        assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert capsys.readouterr().err.endswith(
        "a resumed run keeps the settings it was started with: resume it on a machine with more memory, or start a "
        "new run (another --out) with a smaller --batch-size\n")
    assert json.loads((run / "config.json").read_text())["config"] == record["config"]  # the run is kept
    # and so is one stopped before its first epoch kept anything: its config is what a resume needs
    for kept in run.iterdir():
        if kept.name not in ("config.json", "model.json"):
            shutil.rmtree(kept) if kept.is_dir() else kept.unlink()
    with monkeypatch.context() as patched:
        patched.setattr(classify, "_fit_and_finish", lambda *args, **kwargs: torch.empty(2**50))
        assert main(["train", "--resume", str(run), "--quiet"]) == 2
    capsys.readouterr()
    assert json.loads((run / "config.json").read_text())["config"] == record["config"]


@pytest.mark.parametrize("kind", ["train", "forecast"])
def test_a_requeued_job_out_of_memory_as_it_resumes_is_not_told_to_change_what_a_resume_keeps(
        monkeypatch, capsys, tmp_path, series_csv, kind):
    """The job's command (--resume-if-interrupted) resuming its run was told to run again with a
    smaller --batch-size, which the resume then refused; `--resume RUN` was told otherwise."""
    from helpers import digits_folder
    from neuralab.forecasting import pipeline
    from neuralab.training import classify

    run = tmp_path / "job"
    if kind == "train":
        job = ["train", "--model", "mlp", "--data", str(digits_folder(tmp_path / "digits", 100)), "--epochs", "1",
               "--threads", "1", "--out", str(run), "--quiet", "--resume-if-interrupted"]
        module, step = classify, "_fit_and_finish"
    else:
        job = ["forecast", "--data", str(series_csv), "--target", "load", "--lookback", "7", "--epochs", "1",
               "--backtest-folds", "1", "--baselines", "persistence", "--threads", "1", "--out", str(run), "--quiet",
               "--resume-if-interrupted"]
        module, step = pipeline, "_fit_and_judge"
    assert main(job) == 0, capsys.readouterr().err
    (run / "results.json").unlink()  # as a job stopped after its epoch: the requeued command resumes it
    capsys.readouterr()
    with monkeypatch.context() as patched:
        patched.setattr(module, step, lambda *args, **kwargs: torch.empty(2**50))
        assert main(job) == 2
    assert capsys.readouterr().err.endswith(
        "a resumed run keeps the settings it was started with: resume it on a machine with more memory, or start a "
        "new run (another --out) with a smaller --batch-size\n")


def test_a_forecast_out_of_memory_before_its_first_epoch_leaves_no_run(monkeypatch, capsys, tmp_path):
    from neuralab.forecasting import pipeline

    run = tmp_path / "fc"
    with monkeypatch.context() as patched:
        patched.setattr(pipeline, "_fit_and_judge", lambda *args, **kwargs: torch.empty(2**50))
        assert main(["forecast", "--data", "seattle-weather", "--target", "temp_max", "--epochs", "1",
                     "--out", str(run), "--quiet"]) == 2
    assert "not enough memory: a step asked for 4194304.0 GiB; run it again with a smaller --batch-size" \
        in capsys.readouterr().err
    assert not run.exists()


def test_a_bug_is_still_a_traceback(monkeypatch):
    from neuralab.cli import zoo

    def bug(args):
        raise RuntimeError("index out of range in self")
    monkeypatch.setattr(zoo, "run_zoo", bug)
    with pytest.raises(RuntimeError, match="index out of range"):
        main(["zoo"])


def test_a_warning_of_neuralab_is_one_line_on_the_command_line(tmp_path):
    import os
    import subprocess
    import sys

    from helpers import digits_folder

    folder = digits_folder(tmp_path / "digits", n=100)
    (folder / "3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a picture")
    done = subprocess.run([sys.executable, "-m", "neuralab", "train", "--model", "mlp", "--data", str(folder),
                           "--epochs", "1", "--on-error", "skip", "--quiet", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(SRC.parent)})
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"neuralab: warning: {folder}: skipped 1 of 101 images that cannot be read")
    assert done.stderr.count("\n") == 1, done.stderr  # not Python's form: file, line, then the source line


def test_compare_in_python_says_a_module_or_a_model_named_twice_in_one_line_as_python_spells_it(tmp_path):
    from torch import nn

    from neuralab import ClassifierConfig, compare

    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    for models, said in [(net, "models=<Sequential>: give a list of model names"),
                         ([net, "mlp"], "models=[<Sequential>, 'mlp']: give a list of model names"),
                         (["mlp", "mlp"], "models=['mlp', 'mlp']: names 'mlp' twice; name each model once")]:
        with pytest.raises(ParameterError) as e:
            compare(models, ClassifierConfig(data="mnist"), 1, tmp_path / "out")
        assert str(e.value).startswith(said) and "\n" not in str(e.value), str(e.value)
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("models, seeds, named", [("cnn", 1, "models='cnn'"), (["mlp", 3], 1, "models=['mlp', 3]"),
                                                  (["mlp"], 1.5, "seeds=1.5"), (["mlp"], True, "seeds=True")])
def test_compare_in_python_names_what_is_no_list_of_models_or_count_of_seeds(tmp_path, models, seeds, named):
    from neuralab import ClassifierConfig, compare

    with pytest.raises(ParameterError) as e:
        compare(models, ClassifierConfig(data="mnist"), seeds, tmp_path / "out")
    assert str(e.value).startswith(named + ": give ") and not (tmp_path / "out").exists()
