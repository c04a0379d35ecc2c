"""`train --resume` and `forecast --resume` on the command line: what they do with the options
typed beside them, with a run of the other kind, and with the signals that stop a training
(SIGHUP: the ssh session that ran it dropped).

The runs are stopped the way a kill stops them (NEURALAB_CRASH_AT, see neuralab.files) on
real data: scikit-learn's handwritten digits, and a daily load with a weekly cycle."""

from __future__ import annotations

import csv
import io
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import default_signals, digits_folder

from neuralab import runs
from neuralab.cli import main
from neuralab.runs import Run, Status
from test_runs import command

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("digits"))


def train_args(digits: Path, out: Path, epochs: int = 3) -> list[str]:
    return ["train", "--model", "mlp", "--data", str(digits), "--epochs", str(epochs), "--batch-size", "64",
            "--lr", "0.01", "--seed", "3", "--threads", "1", "--quiet", "--out", str(out)]


@pytest.fixture(scope="module")
def stopped_classifier(digits, tmp_path_factory) -> Path:
    """An MLP run on the digits (seed 3, 3 epochs) killed as it wrote its second checkpoint."""
    run = tmp_path_factory.mktemp("classifier") / "run"
    assert command(*train_args(digits, run), crash_at=f"{runs.LAST}:2").returncode == -signal.SIGKILL
    return run


@pytest.fixture(scope="module")
def stopped_forecast(tmp_path_factory) -> Path:
    """An RNN forecast of four months of daily load (3 epochs) killed as it wrote its second checkpoint."""
    folder = tmp_path_factory.mktemp("forecast")
    days = np.arange(np.datetime64("2021-01-01"), np.datetime64("2021-05-01"))
    t = np.arange(len(days))
    load = 50 + 10 * np.sin(2 * np.pi * t / 7) + 0.1 * t + np.random.default_rng(0).normal(0, 1, len(t))
    (folder / "load.csv").write_text("day,load\n" + "".join(f"{d},{v:.4f}\n" for d, v in zip(days, load)))
    run = folder / "run"
    stopped = command("forecast", "--data", str(folder / "load.csv"), "--target", "load", "--lookback", "7",
                      "--model", "rnn", "--hidden", "4", "--epochs", "3", "--backtest-folds", "1", "--seed", "1",
                      "--threads", "1", "--quiet", "--out", str(run), crash_at=f"{runs.LAST}:2")
    assert stopped.returncode == -signal.SIGKILL, stopped.stderr
    return run


def copy(run: Path, tmp_path: Path) -> Path:
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def refused(capsys, argv: list[str], *words: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


# --- options typed with --resume ------------------------------------------------------------

@pytest.mark.parametrize("typed, named", [
    (["--data", "fashion-mnist"], "--data 'fashion-mnist' (the run has '"),  # the command's default data
    (["--seed", "0"], "--seed 0 (the run has 3)"),                          # its default seed
    (["--model", "lenet5"], "--model 'lenet5' (the run has 'mlp')"),        # its default model
])
def test_train_resume_refuses_a_default_value_typed_that_the_run_does_not_have(stopped_classifier, tmp_path, capsys,
                                                                                typed, named):
    run = copy(stopped_classifier, tmp_path)
    before = files(run)
    refused(capsys, ["train", "--resume", str(run), "--quiet", *typed], named)
    assert files(run) == before, "a refused resume wrote"


def test_train_resume_accepts_the_runs_own_values_that_are_also_the_defaults(stopped_classifier, tmp_path):
    run = copy(stopped_classifier, tmp_path)
    assert main(["train", "--resume", str(run), "--quiet", "--device", "auto", "--amp", "auto", "--seed", "3"]) == 0
    assert Run(run).status() is Status.FINISHED


def test_forecast_resume_refuses_the_default_data_and_other_values_naming_the_runs(stopped_forecast, tmp_path,
                                                                                   capsys):
    run = copy(stopped_forecast, tmp_path)
    before = files(run)
    # seattle-weather is the command's default: typed, it is no longer taken for "not typed"
    refused(capsys, ["forecast", "--resume", str(run), "--data", "seattle-weather"],
            "--data 'seattle-weather' (the run has ", "load.csv", "does not apply to --resume")
    refused(capsys, ["forecast", "--resume", str(run), "--epochs", "5", "--lookback", "7"],
            "--epochs 5 (the run has 3)", "does not apply to --resume")
    refused(capsys, ["forecast", "--resume", str(run), "--overwrite"], "--overwrite does not apply to --resume")
    assert files(run) == before, "a refused resume wrote"


def test_forecast_resume_accepts_the_runs_own_values(stopped_forecast, tmp_path, monkeypatch):
    run = copy(stopped_forecast, tmp_path)
    monkeypatch.chdir(stopped_forecast.parent)  # the CSV by another path than the run was given
    assert main(["forecast", "--resume", str(run), "--quiet", "--epochs", "3", "--data", "load.csv",
                 "--lookback", "7", "--model", "rnn", "--hidden", "4", "--seed", "1"]) == 0
    assert Run(run).status() is Status.FINISHED


def test_a_run_of_the_other_kind_given_to_resume_names_the_command_that_resumes_it(stopped_classifier,
                                                                                   stopped_forecast, capsys):
    refused(capsys, ["train", "--resume", str(stopped_forecast)],
            f"resume it with `neuralab forecast --resume {stopped_forecast}`", "`neuralab forecast predict`")
    refused(capsys, ["forecast", "--resume", str(stopped_classifier)],
            f"resume it with `neuralab train --resume {stopped_classifier}`", "`neuralab evaluate`")
    assert Run(stopped_forecast).status() is Status.INTERRUPTED and Run(stopped_classifier).status() is \
        Status.INTERRUPTED


def test_a_finished_run_of_the_other_kind_given_to_resume_is_not_told_to_resume(stopped_classifier, tmp_path,
                                                                               capsys):
    run = copy(stopped_classifier, tmp_path)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    err = refused(capsys, ["forecast", "--resume", str(run)], "an image-classifier run", "`neuralab evaluate`",
                  "`neuralab report`")
    assert "resume" not in err.split("; ", 1)[1], err  # a finished run has nothing to resume


# --- SIGHUP ------------------------------------------------------------------------------------

def started(digits: Path, run: Path, stderr, epochs: int = 600, **popen) -> subprocess.Popen:
    """A training of ``epochs`` (600: half a minute, far more than a test waits for) on a terminal (a
    pseudo-terminal whose other end the test holds), run until its second epoch is written."""
    master, terminal = pty.openpty()
    args = train_args(digits, run, epochs)
    args.remove("--quiet")  # the progress display writes to the terminal as it trains
    popen.setdefault("preexec_fn", default_signals)
    proc = subprocess.Popen([sys.executable, "-m", "neuralab", *args], stdin=terminal, stdout=terminal,
                            stderr=terminal if stderr == "terminal" else subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")}, **popen)
    os.close(terminal)
    metrics, deadline = run / runs.METRICS, time.monotonic() + 300
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 2) and proc.poll() is None:
        assert time.monotonic() < deadline, "no epoch finished"
        shown(master)
    proc.master = master
    return proc


def shown(master: int) -> None:
    """Read what the terminal shows, so that the training never waits on it; nothing once it has ended."""
    if select.select([master], [], [], 0.05)[0]:
        try:
            os.read(master, 1 << 16)
        except OSError:  # EIO: the command has ended, its end of the terminal closed
            time.sleep(0.05)


@pytest.mark.parametrize("stderr, wait", [("pipe", 0), ("terminal", 0), ("pipe", 1.5), ("terminal", 1.5)])
def test_sighup_from_a_dropped_session_stops_a_run_as_sigterm_does(digits, tmp_path, stderr, wait):
    """The terminal hangs up (its other end closes: every write to it fails), then SIGHUP comes,
    at once or after the training has drawn on the dead terminal for a while (``wait`` s): the
    run stops at its last finished epoch with the shell's status for SIGHUP, says how to resume
    where stderr is still read, and never fails on the terminal that is gone."""
    run = tmp_path / "run"
    proc = started(digits, run, stderr)  # still training when the signal comes, even after a stall of this process
    os.close(proc.master)
    time.sleep(wait)
    proc.send_signal(signal.SIGHUP)
    err = proc.stderr.read() if proc.stderr else b""
    assert proc.wait(timeout=120) == 128 + signal.SIGHUP, err
    if stderr == "pipe":
        assert err.decode() == (f"neuralab: {run}: interrupted; the files of the last finished epoch are kept; "
                                f"`neuralab train --resume {run}` continues it\n")
    assert Run(run).status() is Status.INTERRUPTED  # not held: `train --resume` goes on (test_runs.py's SIGTERM)
    assert 2 <= len((run / runs.METRICS).read_text().splitlines()) < 600


def test_a_run_started_under_nohup_trains_on_through_sighup(digits, tmp_path):
    run = tmp_path / "run"
    proc = started(digits, run, "pipe", epochs=12, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    try:
        proc.send_signal(signal.SIGHUP)
        while proc.poll() is None:
            shown(proc.master)
        assert proc.wait() == 0, proc.stderr.read()
    finally:
        os.close(proc.master)
    assert Run(run).status() is Status.FINISHED


# --- a pipe whose reader went away ----------------------------------------------------------------

def test_a_training_whose_pipe_reader_went_away_finishes_as_on_a_terminal_that_hung_up(digits, tmp_path):
    """`neuralab train ... | head -3`: the reader leaves once it has the model's table, and the run
    trains on to its end with its lines sent nowhere, never ended early with status 0."""
    run = tmp_path / "run"
    args = train_args(digits, run, epochs=4)
    args.remove("--quiet")
    proc = subprocess.Popen([sys.executable, "-m", "neuralab", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")}, preexec_fn=default_signals)
    proc.stdout.readline()  # the table's first line, as `head` reads it before it ends
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert err == ""
    assert Run(run).status() is Status.FINISHED and (run / runs.REPORT).is_file()
    assert len((run / runs.METRICS).read_text().splitlines()) == 4


def test_a_comparison_whose_pipe_reader_went_away_trains_every_run_and_writes_its_table(digits, tmp_path):
    """`neuralab compare ... | head -1` trains runs too: each of them, and the table, is there at
    the end, as where nobody stopped reading."""
    out = tmp_path / "cmp"
    args = ["compare", "--models", "mlp", "--seeds", "3", "--data", str(digits), "--epochs", "1", "--batch-size", "64",
            "--threads", "1", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "neuralab", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")}, preexec_fn=default_signals)
    proc.stdout.readline()  # the first run's first line, as `head -1` reads it before it ends
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert (out / "compare.csv").is_file() and (out / "compare.md").is_file(), err
    [row] = csv.DictReader(io.StringIO((out / "compare.csv").read_text()))
    assert row["model"] == "mlp" and row["seeds"] == "3"  # every seed's run trained and counted
