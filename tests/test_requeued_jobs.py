"""Jobs that a batch scheduler stops and starts again: one command line that starts a run, resumes
it after a preemption and finds it finished (--resume-if-interrupted); the threads of the node a
requeued job lands on; what `neuralab runs`, --resume and `neuralab report` say of a run stopped
between its commit point and its other files, or while its report was written; a second job given a
live run's --out; and the resume command a torchrun job is told.

The runs are stopped as a kill stops them (NEURALAB_CRASH_AT, see neuralab.files) on real data:
scikit-learn's handwritten digits, and a daily load with a weekly cycle."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import TORCHRUN, digits_folder

from neuralab import runs
from neuralab.cli import main
from neuralab.errors import NeuralabError, ParameterError
from neuralab.files import write_json
from neuralab.runs import Kind, Run, Status
from neuralab.training.checkpoint import load_tensors
from test_cli_resume_flags import refused
from test_runs import command, holder

REPO = Path(__file__).resolve().parents[1]
REQUEUE = "--resume-if-interrupted"


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("digits"))


def train_args(digits: Path, out: Path, *more: str) -> list[str]:
    return ["train", "--model", "mlp", "--data", str(digits), "--epochs", "3", "--batch-size", "64", "--lr", "0.01",
            "--seed", "3", "--threads", "1", "--quiet", "--out", str(out), *more]


def forecast_args(csv: Path, out: Path, *more: str) -> list[str]:
    return ["forecast", "--data", str(csv), "--target", "load", "--lookback", "7", "--model", "rnn", "--hidden", "4",
            "--epochs", "3", "--patience", "0", "--backtest-folds", "1", "--seed", "1", "--threads", "1", "--quiet",
            "--out", str(out), *more]


@pytest.fixture(scope="module")
def whole(digits, tmp_path_factory) -> Path:
    """The classifier run trained in one session."""
    out = tmp_path_factory.mktemp("whole") / "run"
    assert main(train_args(digits, out)) == 0
    return out


@pytest.fixture(scope="module")
def cut_classifier(digits, tmp_path_factory) -> Path:
    """Killed as it wrote metrics.jsonl for epoch 2: checkpoints/last.safetensors commits epoch 2,
    metrics.jsonl still holds epoch 1 alone."""
    run = tmp_path_factory.mktemp("cut") / "run"
    assert command(*train_args(digits, run), crash_at=f"{runs.METRICS}:2").returncode == -signal.SIGKILL
    return run


@pytest.fixture(scope="module")
def cut_forecast(series_csv, tmp_path_factory) -> Path:
    """Killed as it wrote metrics.jsonl for epoch 1: epoch 1 is committed, no model.safetensors yet."""
    run = tmp_path_factory.mktemp("cutforecast") / "run"
    killed = command(*forecast_args(series_csv, run), crash_at=f"{runs.METRICS}:1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    return run


def copy(run: Path, tmp_path: Path) -> Path:
    shutil.copytree(run, tmp_path / run.parent.name / run.name)
    return tmp_path / run.parent.name / run.name


def files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def weights(path: Path) -> dict:
    return load_tensors(path)[0]


# --- one command line for a job that may be preempted -------------------------------------------------

def test_the_same_job_command_starts_the_run_resumes_it_and_then_finds_it_finished(digits, whole, tmp_path, capsys):
    run = tmp_path / "run"
    job = train_args(digits, run, REQUEUE)
    assert command(*job, crash_at=f"{runs.LAST}:2").returncode == -signal.SIGKILL  # started, then preempted
    assert Run(run).status() is Status.INTERRUPTED
    assert main(job) == 0  # requeued: resumed, not started again
    assert Run(run).status() is Status.FINISHED
    assert len(Run(run).record["sessions"]) == 1
    assert Run(run).metrics()[0]["elapsed"] == json.loads((run / runs.METRICS).read_text().splitlines()[0])["elapsed"]
    for key, value in weights(whole / runs.WEIGHTS).items():
        assert torch.equal(value, weights(run / runs.WEIGHTS)[key]), key
    # byte for byte, as docs/runs.md says: the header's JSON of a resumed run was in another order
    assert (run / runs.WEIGHTS).read_bytes() == (whole / runs.WEIGHTS).read_bytes()
    before = files(run)
    capsys.readouterr()
    assert main(job) == 0  # requeued once more after it finished: the job is done
    assert capsys.readouterr().out == f"{run}: the run is finished already (results.json is written); nothing to do\n"
    assert files(run) == before


def test_a_requeued_job_with_other_settings_is_refused_naming_the_setting(cut_classifier, tmp_path, capsys, digits):
    run = copy(cut_classifier, tmp_path)
    before = files(run)
    refused(capsys, train_args(digits, run, REQUEUE, "--lr", "0.02"), "--lr 0.02 (the run has 0.01)")
    assert files(run) == before, "a refused resume wrote"


def test_the_job_command_of_a_forecast_resumes_it_and_refuses_other_settings(cut_forecast, series_csv, tmp_path, capsys):
    run = copy(cut_forecast, tmp_path)
    before = files(run)
    refused(capsys, forecast_args(series_csv, run, REQUEUE, "--lookback", "14"),
            f"{run}: holds an interrupted run with other settings: --lookback 14 (the run has 7)", "another --out")
    assert files(run) == before, "a refused resume wrote"
    assert main(forecast_args(series_csv, run, REQUEUE)) == 0
    assert Run(run).status() is Status.FINISHED and len(Run(run).record["sessions"]) == 1
    capsys.readouterr()
    assert main(forecast_args(series_csv, run, REQUEUE)) == 0
    assert "the run is finished already" in capsys.readouterr().out


def test_a_forecast_job_command_that_types_the_default_transform_auto_resumes_the_run_auto_chose(cut_forecast,
                                                                                                  series_csv, tmp_path,
                                                                                                  capsys):
    """config.json keeps the transform auto chose; the job line typing auto again was refused as
    another setting (`--target-transform 'auto' (the run has 'none')`), and the job never finished."""
    run = copy(cut_forecast, tmp_path)
    chosen = Run(run).record["config"]["windows"]["transform"]
    other = "diff" if chosen != "diff" else "none"
    refused(capsys, forecast_args(series_csv, run, REQUEUE, "--target-transform", other),
            f"--target-transform {other!r} (the run has {chosen!r})")
    assert main(forecast_args(series_csv, run, REQUEUE, "--target-transform", "auto")) == 0, capsys.readouterr().err
    assert Run(run).status() is Status.FINISHED


def test_a_forecast_job_command_starts_a_run_in_a_folder_that_is_not_there(series_csv, tmp_path):
    run = tmp_path / "runs" / "weekly"
    assert main(forecast_args(series_csv, run, REQUEUE)) == 0
    assert Run(run).status() is Status.FINISHED and "sessions" not in Run(run).record


@pytest.mark.parametrize("more, said", [
    ([], "--resume-if-interrupted needs --out"),
    (["--out", "RUN", "--overwrite"], "--overwrite does not go with --resume-if-interrupted"),
    (["--out", "RUN", "--resume", "RUN"], "--resume does not go with --resume-if-interrupted"),
])
def test_the_job_form_refuses_what_contradicts_it(digits, tmp_path, capsys, more, said):
    args = ["train", "--model", "mlp", "--data", str(digits), REQUEUE, *(str(tmp_path) if m == "RUN" else m
                                                                        for m in more)]
    refused(capsys, args, said)


# --- a report stopped after results.json -------------------------------------------------------------

def test_a_finished_run_without_its_report_is_said_so_and_the_job_command_writes_it(whole, digits, tmp_path, capsys):
    run = copy(whole, tmp_path)
    (run / runs.REPORT).unlink()  # killed as it wrote the report
    capsys.readouterr()
    assert main(["runs", str(run)]) == 0
    assert "finished (no report)" in capsys.readouterr().out
    refused(capsys, ["train", "--resume", str(run)], "nothing to resume", "report.html is missing",
            f"`neuralab report {run}` writes it")
    assert main(train_args(digits, run, REQUEUE)) == 0
    assert (run / runs.REPORT).is_file()
    assert f"its report, which was stopped, is written again: {run / runs.REPORT}" in capsys.readouterr().out
    assert main(["runs", str(run)]) == 0
    assert "(no report)" not in capsys.readouterr().out


def test_runs_that_write_no_report_are_not_listed_as_missing_it(tmp_path):
    imported = tmp_path / "imported"
    write_json(imported / runs.CONFIG, {"kind": Kind.CLASSIFIER.value, "config": {"model": "x.keras"}})
    write_json(imported / runs.RESULTS, {"imported": True, "epochs_run": 0})
    (imported / runs.WEIGHTS).write_bytes(b"")
    assert not Run(imported).report_missing()


# --- the threads of the node a requeued job lands on ---------------------------------------------------

def test_threads_given_to_a_resume_are_accepted_recorded_and_warned(cut_classifier, cut_forecast, tmp_path, capsys):
    for run, command_name in ((copy(cut_classifier, tmp_path), "train"), (copy(cut_forecast, tmp_path), "forecast")):
        assert Run(run).record["config"]["train"]["threads"] == 1
        with pytest.warns(runs.EnvironmentChangedWarning, match="this session computes with threads 2, the run's "
                                                                "first with threads 1"):
            assert main([command_name, "--resume", str(run), "--threads", "2", "--quiet"]) == 0
        assert "the run has" not in capsys.readouterr().err
        assert Run(run).record["sessions"][0]["environment"]["threads"] == 2
        assert Run(run).record["config"]["train"]["threads"] == 1  # the run's config stays its own


def test_threads_given_to_a_resume_from_python_are_the_sessions_too(cut_classifier, tmp_path):
    from neuralab.training import resume_classifier

    run = copy(cut_classifier, tmp_path)
    for wrong in (-1, "4", 2.5):  # refused as a new run's would be, before the run is touched
        with pytest.raises(ParameterError, match="^threads="):
            resume_classifier(run, verbose=False, options={"threads": wrong})
    with pytest.warns(runs.EnvironmentChangedWarning, match="this session computes with threads 2"):
        resume_classifier(run, verbose=False, options={"threads": 2, "epochs": 3})
    assert Run(run).record["sessions"][0]["environment"]["threads"] == 2
    assert Run(run).record["config"]["train"]["threads"] == 1


# --- the commit point ---------------------------------------------------------------------------------

def test_runs_counts_the_epochs_the_last_checkpoint_commits(cut_classifier, cut_forecast, capsys):
    assert len(Run(cut_classifier).metrics()) == 1 and len(Run(cut_forecast).metrics()) == 0
    assert main(["runs", str(cut_classifier)]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[4:6] == ["interrupted", "val"] and row[-3] == "2", row
    assert main(["runs", str(cut_forecast), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["status"] == "interrupted" and row["epochs"] == 1
    assert row["metric"]["name"] == "val MAE of the scaled target"  # the network's figure, not in the data's units


def test_the_report_of_an_unfinished_forecast_names_no_model_file_that_is_not_there(cut_forecast, capsys):
    assert not (cut_forecast / runs.WEIGHTS).exists()
    err = refused(capsys, ["report", str(cut_forecast)], "the run did not finish (no results.json)",
                  f"`neuralab forecast --resume {cut_forecast}` finishes it")
    assert "model.safetensors" not in err


# --- a second job given a live run's --out ----------------------------------------------------------

def test_a_second_job_on_a_live_runs_out_is_told_the_run_is_being_trained(digits, tmp_path, capsys):
    path = tmp_path / "run"
    proc = holder(path)
    try:
        write_json(path / runs.CONFIG, {"kind": Kind.CLASSIFIER.value, "config": {}})
        err = refused(capsys, train_args(digits, path), f"the run there is being trained by process {proc.pid} on ")
        assert "--overwrite" not in err
        refused(capsys, train_args(digits, path, REQUEUE), f"being trained by process {proc.pid}")
    finally:
        proc.kill()
        proc.wait()


# --- torchrun ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("world, local, start", [
    ("2", "2", "torchrun --nproc_per_node 2 -m neuralab train"),
    ("4", "2", "torchrun --nnodes 2 --nproc_per_node 2 -m neuralab train"),
    ("1", "1", "neuralab train"),
])
def test_a_torchrun_job_is_told_the_resume_command_it_was_started_with(monkeypatch, tmp_path, world, local, start):
    from neuralab.cli._args import ways_on_as_commands

    run = tmp_path / "run"
    write_json(run / runs.CONFIG, {"kind": Kind.CLASSIFIER.value, "config": {}})
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", world)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", local)
    with pytest.raises(KeyboardInterrupt) as stopped, ways_on_as_commands():
        raise runs.Interrupted(run, Kind.CLASSIFIER)
    assert str(stopped.value).endswith(f"`{start} --resume {run}` starts it again from epoch 1 with the same config")


@pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                    reason="needs torch.distributed with gloo")
def test_the_job_command_under_torchrun_starts_the_run_once_then_finds_it_finished(digits, tmp_path):
    run = tmp_path / "run"
    job = [*TORCHRUN, "-m", "neuralab",
           *train_args(digits, run, REQUEUE)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    started = subprocess.run(job, capture_output=True, text=True, env=env, timeout=300)
    assert started.returncode == 0, started.stderr[-3000:]
    assert Run(run).status() is Status.FINISHED and "sessions" not in Run(run).record
    again = subprocess.run(job, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("the run is finished already") == 1, again.stdout


def test_a_setting_the_run_left_to_the_library_is_named_as_none_given(cut_forecast, tmp_path, capsys):
    run = copy(cut_forecast, tmp_path)
    assert main(["forecast", "--resume", str(run), "--season", "7"]) == 2
    assert "--season 7 (the run has none given) does not apply to --resume" in capsys.readouterr().err


def test_the_report_of_an_interrupted_classifier_names_the_command_that_finishes_it(cut_classifier, capsys):
    """It said "resume it instead", naming no command; Python is told its own call."""
    from neuralab.training.evaluate import write_report

    refused(capsys, ["report", str(cut_classifier)], "so there is no report to write; "
            f"`neuralab train --resume {cut_classifier}` finishes it, and writes its report at the end")
    with pytest.raises(NeuralabError, match=r"no report to write: `neuralab\.resume_classifier\("):
        write_report(cut_classifier)
