"""Run directories (neuralab.runs): one owner at a time, a status read from the folder alone,
and files that agree after a kill at any write.

The kill tests run the real command in a child process with NEURALAB_CRASH_AT, which
SIGKILLs it just before a named file is renamed into place, then resume the run and
compare it with an uninterrupted one of the same seed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import digits_folder, unreadable
from PIL import Image

from neuralab import run_list, runs
from neuralab.cli import main
from neuralab.files import write_json
from neuralab.runs import Kind, Run, RunLocked, Status
from neuralab.training.checkpoint import load_tensors

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("digits"))


def command(*args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("NEURALAB_CRASH_AT", None)
    if crash_at:
        env["NEURALAB_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "neuralab", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def train_args(digits: Path, out: Path) -> list[str]:
    return ["train", "--model", "mlp", "--data", str(digits), "--epochs", "3", "--batch-size", "64",
            "--lr", "0.01", "--seed", "3", "--quiet", "--out", str(out)]


def holder(path: Path) -> subprocess.Popen:
    """A child process that takes the run at ``path`` and keeps it until killed."""
    code = ("import sys, time; from neuralab.runs import Run; Run.create(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert proc.stdout.readline().strip() == "locked"
    return proc


# --- one owner at a time ------------------------------------------------------------------

def test_a_live_run_is_never_overwritten_and_a_dead_ones_lock_is_taken_over(tmp_path):
    path = tmp_path / "run"
    proc = holder(path)
    try:
        write_json(path / runs.CONFIG, {"kind": Kind.CLASSIFIER.value, "config": {}})
        assert Run(path).status() is Status.RUNNING
        with pytest.raises(RunLocked, match=f"in use by process {proc.pid}"):
            Run.create(path, overwrite=True)
        assert (path / runs.CONFIG).exists(), "the live run lost a file"
    finally:
        proc.kill()
        proc.wait()
    assert Run(path).status() is Status.INTERRUPTED  # the lock died with its process
    run = Run.create(path, overwrite=True)
    assert not (path / runs.CONFIG).exists() and json.loads((path / runs.LOCK).read_text())["pid"] == os.getpid()
    run.unlock()
    assert not (path / runs.LOCK).exists()


def test_a_run_is_taken_once_a_status_check_lets_go_of_its_lock_however_long_it_held_it(tmp_path, monkeypatch):
    """A status check (``Run.owner``: `neuralab runs`, the web app's poll of a live run) holds the
    lock shared for an instant, unless its process is preempted on a busy machine. A resume
    then waits for it, where 200 ms of waiting refused the run as "in use"; a reader that never
    lets go still has it refused, in the end."""
    import fcntl
    from types import SimpleNamespace

    path = tmp_path / "run"
    Run.create(path).unlock()
    write_json(path / runs.CONFIG, {"kind": Kind.CLASSIFIER.value, "config": {}})
    (path / runs.LOCK).write_text("")  # left by a run killed with -9
    reader = os.open(path / runs.LOCK, os.O_RDONLY)
    fcntl.flock(reader, fcntl.LOCK_SH)  # the status check, preempted while it holds the lock
    waited = []

    def sleep(seconds):  # the taker's waits, as the reader's process runs again a second later
        waited.append(seconds)
        if sum(waited) >= 1:
            fcntl.flock(reader, fcntl.LOCK_UN)

    monkeypatch.setattr(runs, "time", SimpleNamespace(sleep=sleep, strftime=time.strftime))
    try:
        run = Run(path).lock()
        assert json.loads((path / runs.LOCK).read_text())["pid"] == os.getpid()
        run.unlock()
        (path / runs.LOCK).write_text("")
        reader_again = os.open(path / runs.LOCK, os.O_RDONLY)
        fcntl.flock(reader_again, fcntl.LOCK_SH)  # and never lets go
        waited.clear()
        try:
            with pytest.raises(RunLocked, match="in use by process"):
                Run(path).lock()
        finally:
            os.close(reader_again)
    finally:
        os.close(reader)
    assert len(waited) > 50  # 2 s for readers, not an owner's 200 ms


def test_overwrite_of_a_run_being_trained_is_refused_in_one_line(digits, tmp_path, capsys):
    path = tmp_path / "run"
    proc = holder(path)
    try:
        write_json(path / runs.CONFIG, {"kind": Kind.CLASSIFIER.value, "config": {}})
        assert main(train_args(digits, path)[:-2] + ["--out", str(path), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert f"in use by process {proc.pid}" in err and err.count("\n") == 1
    finally:
        proc.kill()
        proc.wait()


def test_run_files_follow_the_umask(digits, tmp_path):
    old = os.umask(0o022)
    try:
        assert main(train_args(digits, tmp_path / "run")) == 0
    finally:
        os.umask(old)
    for name in (runs.CONFIG, runs.MODEL, runs.WEIGHTS, runs.RESULTS, runs.LAST, runs.REPORT):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


# --- status and listing -----------------------------------------------------------------

def test_status_and_rows_of_every_kind_including_damaged_ones(tmp_path):
    finished = tmp_path / "finished"
    write_json(finished / runs.CONFIG, {"kind": "image-classifier", "created": "2026-01-01T00:00:00",
                                        "config": {"model": "lenet5", "data": "mnist"}})
    write_json(finished / runs.MODEL, {"architecture": "lenet5"})
    write_json(finished / runs.RESULTS, {"test_accuracy": 0.99, "epochs_run": 2})
    (finished / runs.WEIGHTS).write_bytes(b"\x02\0\0\0\0\0\0\0{}")  # safetensors of no tensors
    forecast = tmp_path / "group" / "weather"
    write_json(forecast / runs.CONFIG, {"kind": "forecaster", "config": {
        "data": "seattle-weather", "target": "temp_max", "model": {"architecture": "lstm-stacked"}}})
    (forecast / runs.METRICS).write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')  # torn by a kill
    garbled = tmp_path / "garbled"
    garbled.mkdir()
    (garbled / runs.CONFIG).write_text('{"kind": "image-classifier",\n "config": {"model": "len')  # cut in a string
    infinite = tmp_path / "infinite"
    write_json(infinite / runs.CONFIG, {"kind": "forecaster", "config": {}})
    write_json(infinite / runs.MODEL, {})
    (infinite / runs.RESULTS).write_text('{"headline": {"network_mae": Infinity}}')  # as an old version wrote
    (infinite / runs.WEIGHTS).write_bytes(b"\x02\0\0\0\0\0\0\0{}")
    unknown = tmp_path / "unknown"
    write_json(unknown / runs.CONFIG, {"kind": "painter"})

    assert run_list.find(tmp_path) == ["finished", "garbled", "group/weather", "infinite", "unknown"]
    rows = {r: run_list.describe(Run(tmp_path / r), r) for r in run_list.find(tmp_path)}
    assert rows["finished"].status == "finished" and rows["finished"].metric["value"] == 0.99
    assert (rows["group/weather"].status, rows["group/weather"].kind, rows["group/weather"].epochs) == (
        "interrupted", "forecaster", 2)
    assert rows["group/weather"].data == "seattle-weather temp_max"
    assert rows["garbled"].status == "damaged"
    assert rows["garbled"].error.endswith("not valid JSON (Unterminated string starting at: line 2 column 22); the "
                                          "file is damaged"), rows["garbled"].error
    assert rows["unknown"].status == "damaged" and "painter" in rows["unknown"].error
    assert rows["infinite"].metric["value"] is None  # an old non-finite value never reaches a table
    json.dumps([r.as_dict() for r in rows.values()], allow_nan=False)


def test_commands_check_the_runs_kind_and_name_the_command_that_fits(tmp_path, capsys):
    forecast = tmp_path / "forecast"
    write_json(forecast / runs.CONFIG, {"kind": "forecaster", "config": {}})
    classifier = tmp_path / "classifier"
    write_json(classifier / runs.CONFIG, {"kind": "image-classifier", "config": {}})
    picture = tmp_path / "x.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(picture)
    for argv in (["evaluate", str(forecast)], ["predict", str(forecast), str(picture)],
                 ["inspect", str(forecast), str(picture), "--out", str(tmp_path / "maps")],
                 ["train", "--resume", str(forecast)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "a forecaster run (made by `neuralab forecast`)" in err and "forecast predict" in err, argv
        assert err.count("\n") == 1
    assert main(["forecast", "predict", str(classifier), "--csv", str(picture)]) == 2
    err = capsys.readouterr().err
    assert "an image-classifier run (made by `neuralab train`)" in err and "`neuralab evaluate`" in err
    assert not (tmp_path / "maps").exists()


# --- the files agree after a kill at any write ---------------------------------------------

def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_tensors(path)[0]


def epoch_of(path: Path) -> int:
    return load_tensors(path)[1]["epoch"]


def assert_consistent(run: Path) -> None:
    results = json.loads((run / runs.RESULTS).read_text())
    best = results["best_epoch"]
    assert epoch_of(run / runs.WEIGHTS) == best and epoch_of(run / runs.BEST) == best
    assert epoch_of(run / runs.LAST) == results["epochs_run"]
    best_model = {k.removeprefix("model."): v for k, v in weights(run / runs.BEST).items() if k.startswith("model.")}
    for key, value in weights(run / runs.WEIGHTS).items():
        assert torch.equal(value, best_model[key]), key
    metrics = [json.loads(line) for line in (run / runs.METRICS).read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == list(range(1, results["epochs_run"] + 1))
    assert not list(run.rglob("*.tmp")), "a temporary file was left behind"
    assert Run(run).status() is Status.FINISHED


# Every file a classifier run writes, and for the ones written each epoch, the first and the last time.
CRASH_POINTS = [runs.CONFIG, runs.MODEL, runs.SUMMARY, f"{runs.LAST}:1", f"{runs.METRICS}:1", f"{runs.BEST}:1",
                f"{runs.WEIGHTS}:1", f"{runs.LAST}:3", f"{runs.METRICS}:3", f"{runs.BEST}:2", f"{runs.WEIGHTS}:2",
                runs.RESULTS, "learning_curves.png", "confusion_matrix.png", "mistakes.png", runs.REPORT]


@pytest.fixture(scope="module")
def whole(digits, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    done = command(*train_args(digits, out))
    assert done.returncode == 0, done.stderr
    assert_consistent(out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_kill_at_any_write_then_resume_ends_like_an_uninterrupted_run(point, digits, whole, tmp_path):
    run = tmp_path / "run"
    killed = command(*train_args(digits, run), crash_at=point)
    assert killed.returncode == -signal.SIGKILL, f"never reached {point}: {killed.stderr}"
    assert Run(run).status() is not Status.RUNNING
    resumed = command("train", "--resume", str(run), "--quiet")
    if point == runs.CONFIG:  # nothing to resume from: the same command starts it again in that folder
        assert resumed.returncode == 2 and "start it again with the same --out" in resumed.stderr
        resumed = command(*train_args(digits, run))
    if resumed.returncode != 0:  # killed after results.json: the run is finished, its report is not
        assert point in ("learning_curves.png", "confusion_matrix.png", "mistakes.png", runs.REPORT), resumed.stderr
        assert "finished" in resumed.stderr
        rewritten = command("report", str(run))
        assert rewritten.returncode == 0, rewritten.stderr
        assert (run / runs.REPORT).is_file()
    assert_consistent(run)
    assert json.loads((run / runs.RESULTS).read_text())["best_epoch"] == json.loads(
        (whole / runs.RESULTS).read_text())["best_epoch"]
    for key, value in weights(whole / runs.WEIGHTS).items():
        assert torch.equal(value, weights(run / runs.WEIGHTS)[key]), f"{point}: {key} differs"


def test_training_time_accumulates_across_resumes(digits, tmp_path):
    run = tmp_path / "run"
    assert command(*train_args(digits, run), crash_at=f"{runs.LAST}:2").returncode == -signal.SIGKILL
    first = [json.loads(line)["elapsed"] for line in (run / runs.METRICS).read_text().splitlines()]
    time.sleep(0.1)
    assert command("train", "--resume", str(run), "--quiet").returncode == 0
    results = json.loads((run / runs.RESULTS).read_text())
    elapsed = [json.loads(line)["elapsed"] for line in (run / runs.METRICS).read_text().splitlines()]
    assert elapsed[0] == first[0] and elapsed == sorted(elapsed)
    assert results["train_seconds"] == pytest.approx(elapsed[-1]) and results["train_seconds"] > first[0]


def test_neuralab_runs_lists_every_kind_with_its_status_damaged_ones_too(digits, tmp_path, capsys):
    assert main(train_args(digits, tmp_path / "finished")) == 0
    assert command(*train_args(digits, tmp_path / "cut"), crash_at=f"{runs.LAST}:2").returncode == -signal.SIGKILL
    weather = tmp_path / "group" / "weather"
    write_json(weather / runs.CONFIG, {"kind": "forecaster", "created": "2026-01-02T00:00:00", "config": {
        "data": "seattle-weather", "target": "temp_max", "model": {"architecture": "lstm-stacked"}}})
    (weather / runs.METRICS).write_text('{"epoch": 1, "mae": 0.9, "val_mae": 0.7}\n{"epoch": 2, "val_mae": 0.5}\n')
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / runs.CONFIG).write_text("[")
    capsys.readouterr()
    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line and not line.startswith(" ")}
    assert "finished" in lines["finished"] and "test accuracy" in lines["finished"] and "image-classifier" in lines["finished"]
    assert "interrupted" in lines["cut"] and "val accuracy" in lines["cut"] and "best so far" in lines["cut"]
    # an unfinished forecast's figures are the network's, on the target scaled as it trains on it
    assert "forecaster" in lines["group/weather"] and "val MAE of the scaled target 0.5" in lines["group/weather"]
    assert "damaged" in lines["broken"] and "broken: " in out and "not valid JSON" in out
    assert main(["runs", str(tmp_path), "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert {k: r["status"] for k, r in rows.items()} == {
        "broken": "damaged", "cut": "interrupted", "finished": "finished", "group/weather": "interrupted"}
    assert rows["group/weather"]["metric"] == {"name": "val MAE of the scaled target", "value": 0.5,
                                               "note": "best so far"}
    assert main(["runs", str(tmp_path / "nowhere")]) == 2


def test_a_run_without_validation_shows_its_last_epochs_figure_on_the_images_it_trained_on(digits, tmp_path,
                                                                                           monkeypatch, capsys):
    """Such a run keeps its last epoch's weights; with focus, epochs after the first train on the hardest
    images only, where the figure is lower. Before, the row showed the best training figure of any epoch:
    epoch 1's, on every image, of weights long gone."""
    from helpers import cut_in_epoch

    run = tmp_path / "focus"
    cut_in_epoch(monkeypatch, 3)
    main([*train_args(digits, run), "--focus", "0.25", "--val-fraction", "0"])
    epochs = [json.loads(line) for line in (run / runs.METRICS).read_text().splitlines()]
    assert [r["epoch"] for r in epochs] == [1, 2] and epochs[1]["samples"] < epochs[0]["samples"]
    row = run_list.describe(Run(run))
    assert row.metric == {"name": "train accuracy", "value": epochs[1]["accuracy"],
                          "note": f"last epoch, on its {epochs[1]['samples']} hardest images"}
    capsys.readouterr()
    assert main(["runs", str(tmp_path)]) == 0
    assert f"(last epoch, on its {epochs[1]['samples']} hardest images)" in capsys.readouterr().out


def test_the_test_accuracy_is_printed_before_the_report_is_drawn(digits, tmp_path, capsys, monkeypatch):
    """The report's figures take about a second (matplotlib's import, three PNGs): the answer
    the user waits for comes first, and the report still follows."""
    from neuralab.training import classify

    said_before = []
    real = classify.report

    def report(*args, **kwargs):
        said_before.append(capsys.readouterr().out)
        return real(*args, **kwargs)

    monkeypatch.setattr(classify, "report", report)
    assert main([arg for arg in train_args(digits, tmp_path / "run") if arg != "--quiet"]) == 0
    assert len(said_before) == 1 and "test accuracy" in said_before[0]
    assert (tmp_path / "run" / runs.REPORT).is_file()


# --- resume keeps the run's settings, and can start from the best epoch -------------------

@pytest.mark.parametrize("extra, named", [
    (["--epochs", "20", "--lr", "0.1", "--model", "vgg16"], ["--epochs 20 (the run has 3)", "--lr 0.1", "--model 'vgg16'"]),
    (["--seed", "4"], ["--seed 4 (the run has 3)"]),
    (["--recipe", "fast"], ["--epochs 6", "--focus 0.18"]),
    (["--out", "elsewhere"], ["--out does not apply to --resume"]),
])
def test_resume_refuses_options_that_contradict_the_run(digits, tmp_path, capsys, monkeypatch, extra, named):
    run = tmp_path / "run"
    assert command(*train_args(digits, run), crash_at=f"{runs.LAST}:2").returncode == -signal.SIGKILL
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["train", "--resume", str(run), "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    for words in named:
        assert words in err, err
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before, "a refused resume wrote"
    # the run's own settings, typed again (the data folder by a relative path), are no contradiction
    monkeypatch.chdir(digits.parent)
    assert main(["train", "--resume", str(run), "--quiet", "--epochs", "3", "--seed", "3", "--model", "mlp",
                 "--data", digits.name]) == 0
    assert_consistent(run)


def test_a_damaged_last_checkpoint_is_resumed_from_the_best_one(digits, whole, tmp_path, capsys):
    run = tmp_path / "run"
    assert command(*train_args(digits, run), crash_at=f"{runs.METRICS}:3").returncode == -signal.SIGKILL
    last = run / runs.LAST
    last.write_bytes(last.read_bytes()[:1000])  # a disk error in the last checkpoint
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(last) in err and "(best for --checkpoint)" in err and err.count("\n") == 1
    assert main(["train", "--resume", str(run), "--quiet", "--checkpoint", "best"]) == 0
    assert_consistent(run)
    # the epochs after the best one are trained again from its full state: the same weights
    for key, value in weights(whole / runs.WEIGHTS).items():
        assert torch.equal(value, weights(run / runs.WEIGHTS)[key]), key
    assert json.loads((run / runs.RESULTS).read_text())["best_epoch"] == json.loads(
        (whole / runs.RESULTS).read_text())["best_epoch"]


# --- a forecast run killed at any write: never half a file, and a way back ------------------

def forecast_args(csv: Path, out: Path) -> list[str]:
    return ["forecast", "--data", str(csv), "--target", "load", "--date-column", "day", "--lookback", "7",
            "--horizon", "2", "--model", "rnn", "--hidden", "4", "--epochs", "2", "--backtest-folds", "2",
            "--seed", "1", "--quiet", "--out", str(out)]


@pytest.fixture(scope="module")
def whole_forecast(series_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "forecast"
    done = command(*forecast_args(series_csv, out))
    assert done.returncode == 0, done.stderr
    return out


def assert_readable(run: Path) -> None:
    """Every file in the run parses whole: JSON, JSON lines, CSV, safetensors."""
    assert not (broken := unreadable(run)), broken


# Every file a forecast run writes: config, model, each epoch's checkpoint, metrics and best
# weights, the forecast, the results, the report's four pictures and its page.
FORECAST_POINTS = [runs.CONFIG, runs.MODEL, f"{runs.LAST}:1", f"{runs.METRICS}:1", f"{runs.BEST}:1",
                   f"{runs.WEIGHTS}:1", f"{runs.LAST}:2", f"{runs.METRICS}:2", runs.FORECAST, runs.RESULTS,
                   "plots/series.png", "plots/forecast.png", "plots/error_by_step.png", "plots/learning_curves.png",
                   runs.REPORT]


@pytest.mark.slow
@pytest.mark.parametrize("point", FORECAST_POINTS)
def test_a_forecast_run_killed_at_any_write_is_whole_and_recoverable(point, series_csv, whole_forecast, tmp_path):
    run = tmp_path / "forecast"
    killed = command(*forecast_args(series_csv, run), crash_at=point)
    assert killed.returncode == -signal.SIGKILL, f"never reached {point}: {killed.stderr}"
    assert_readable(run)  # what is there is whole: a killed write left at most a hidden .tmp
    status = Run(run).status()
    finished = (run / runs.RESULTS).exists()
    if point == runs.CONFIG:  # killed before the folder held a run: nothing to list, not running
        assert status is not Status.RUNNING and not (run / runs.CONFIG).exists()
    else:
        assert status is (Status.FINISHED if finished else Status.INTERRUPTED), (point, status)
        listed = command("runs", str(tmp_path), "--json")
        assert listed.returncode == 0 and json.loads(listed.stdout)[0]["status"] == status.value
    if finished:  # only the report is missing or old: `neuralab report` writes it from the run
        again = command("report", str(run))
    else:  # the same command starts it again in that folder (it says to pass --overwrite)
        again = command(*forecast_args(series_csv, run))
        if point != runs.CONFIG:
            assert again.returncode == 2 and "--overwrite" in again.stderr and again.stderr.count("\n") == 1
            again = command(*forecast_args(series_csv, run), "--overwrite")
    assert again.returncode == 0, again.stderr
    assert_readable(run)
    assert not list(run.rglob("*.tmp")), "a temporary file was left behind"
    assert Run(run).status() is Status.FINISHED and (run / runs.REPORT).is_file()
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()) == sorted(
        p.relative_to(whole_forecast).as_posix() for p in whole_forecast.rglob("*") if p.is_file())
    ours, theirs = (json.loads((r / runs.RESULTS).read_text()) for r in (run, whole_forecast))
    for name, scores in theirs["test"].items():
        assert ours["test"][name] == pytest.approx(scores), f"the recovered run scores {name} otherwise"


def test_compare_replaces_only_its_own_runs_and_checks_every_model_first(digits, tmp_path, capsys):
    root = tmp_path / "runs"
    other = root / "lenet-by-hand"
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("a run of mine")
    budget = ["--data", str(digits), "--seeds", "2", "--epochs", "1", "--threads", "1", "--out", str(root)]

    assert main(["compare", "--models", "mlp,cnn", *budget]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("| mlp ") or line.startswith("| cnn ")]
    assert len(table) == 2 and all("% +- " in line for line in table), out
    rows = (root / "compare.csv").read_text().splitlines()
    assert rows[0].startswith("model,parameters") and [r.split(",")[0] for r in rows[1:]] == ["mlp", "cnn"]
    assert all(r.split(",")[5] == "2" for r in rows[1:])
    assert {p.name for p in root.iterdir()} == {"lenet-by-hand", "compare.csv", "compare.md", "mlp-seed0",
                                               "mlp-seed1", "cnn-seed0", "cnn-seed1"}
    assert Run(root / "cnn-seed1").status() is Status.FINISHED

    # again with another budget and without --overwrite: refused before anything trains (the same
    # budget again takes the finished runs as they are); with it, only the comparison's runs go
    assert main(["compare", "--models", "mlp,cnn", *budget, "--lr", "0.01"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "mlp-seed0" in err and "--overwrite" in err, err
    assert main(["compare", "--models", "mlp", *budget, "--overwrite"]) == 0
    capsys.readouterr()
    assert (other / "notes.txt").read_text() == "a run of mine" and (root / "cnn-seed1" / "config.json").is_file()

    # an unknown model is named before the first one trains
    fresh = tmp_path / "fresh"
    assert main(["compare", "--models", "mlp,resnet", *budget[:-1], str(fresh)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--models" in err and "resnet" in err, err
    assert not (fresh / "mlp-seed0").exists()


# --- a run's folder as others may leave it: links, pipes, folders, kills mid-way ------------

def three_classes(folder: Path, each: int = 8) -> Path:
    """A folder of 16x16 pictures in three classes (bright, dark, striped): a training of seconds."""
    rng = np.random.default_rng(0)
    looks = {"bright": lambda: rng.integers(180, 255, (16, 16)), "dark": lambda: rng.integers(0, 60, (16, 16)),
             "striped": lambda: np.tile([0, 255], (16, 8)) + rng.integers(0, 20, (16, 16))}
    for name, look in looks.items():
        (folder / name).mkdir(parents=True)
        for i in range(each):
            Image.fromarray(look().clip(0, 255).astype(np.uint8)).save(folder / name / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    """An interrupted run (2 of 3 epochs, then a kill), in a folder copied by the tests that spoil it."""
    base = tmp_path_factory.mktemp("stopped")
    pictures = three_classes(base / "pictures")
    run = base / "run"
    done = command("train", "--model", "mlp", "--data", str(pictures), "--epochs", "3", "--quiet", "--out", str(run),
                   crash_at=f"{runs.LAST}:3")
    assert done.returncode == -signal.SIGKILL, done.stderr
    (run / runs.LOCK).unlink()
    return run


def copy_of(run: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, to, symlinks=True))


def test_a_lock_that_is_a_link_is_never_written_through(stopped, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("not the run's")
    run = copy_of(stopped, tmp_path / "runs" / "linked")
    (run / runs.LOCK).symlink_to(victim)

    def refused(*argv):
        assert main(list(argv)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{run / runs.LOCK}: is a symbolic link" in err, err

    refused("train", "--resume", str(run), "--quiet")
    refused("train", "--model", "mlp", "--data", str(stopped.parent / "pictures"), "--out", str(run), "--overwrite")
    assert Run(run).status() is Status.DAMAGED
    assert run_list.describe(Run(run)).error.endswith("is a symbolic link, not the run's lock file; remove it "
                                                  "(neuralab never makes one)")
    (run / runs.LOCK).unlink()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # finished, for `report`
    (run / runs.LOCK).symlink_to(victim)
    refused("report", str(run))
    assert victim.read_text() == "not the run's" and (run / runs.CONFIG).is_file()


def test_a_lock_that_is_a_pipe_lists_the_run_as_damaged_without_waiting(stopped, tmp_path):
    root = tmp_path / "runs"
    copy_of(stopped, root / "fine")
    os.mkfifo(copy_of(stopped, root / "piped") / runs.LOCK)
    # in a child: the listing that waits for a writer to open the pipe must fail the test, not hang it
    done = subprocess.run([sys.executable, "-m", "neuralab", "runs", str(root), "--json"], capture_output=True,
                          text=True, timeout=60, check=False, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert done.returncode == 0, done.stderr
    rows = {r["id"]: r for r in json.loads(done.stdout)}
    assert rows["fine"]["status"] == "interrupted" and rows["piped"]["status"] == "damaged"
    assert "run.lock: is not a plain file" in rows["piped"]["error"]
    with pytest.raises(runs.NeuralabError, match="is not a plain file"):
        Run(root / "piped").lock()


def test_a_checkpoints_link_out_of_the_run_is_refused_before_anything_is_written(stopped, tmp_path, capsys):
    run = copy_of(stopped, tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    (run / runs.CHECKPOINTS).rename(elsewhere)
    (run / runs.CHECKPOINTS).symlink_to(elsewhere)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in elsewhere.iterdir()}
    for extra in ([], ["--checkpoint", "best"]):
        assert main(["train", "--resume", str(run), "--quiet", *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{run / runs.CHECKPOINTS}: a symbolic link leading out of the run" in err
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in elsewhere.iterdir()} == before
    (run / runs.CHECKPOINTS).unlink()  # a link that stays inside the run is followed
    (run / "kept").mkdir()
    for p in elsewhere.iterdir():
        p.rename(run / "kept" / p.name)
    (run / runs.CHECKPOINTS).symlink_to("kept")
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert Run(run).status() is Status.FINISHED


def test_an_overwrite_killed_half_way_leaves_no_run_that_reads_as_finished(stopped, tmp_path, capsys):
    """The old run's files go one by one; a kill between two of them must not leave the old run,
    finished, with files missing: the remains are no run, and the next run given that `out` takes them."""
    run = copy_of(stopped, tmp_path / "runs" / "old")
    write_json(run / runs.RESULTS, {"test_accuracy": 0.5, "epochs_run": 2, "best_epoch": 2})
    assert Run(run).status() is Status.FINISHED
    # killed as the first of the old run's other files goes
    code = ("import os, signal, sys, pathlib; unlink = pathlib.Path.unlink\n"
            "def dying(self, *a, **k):\n"
            "    if self.name not in ('config.json', 'results.json', 'run.lock') and self.suffix != '.tmp':\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n"
            "    return unlink(self, *a, **k)\n"
            "pathlib.Path.unlink = dying\n"
            "from neuralab.runs import Run; Run.create(sys.argv[1], overwrite=True)")
    done = subprocess.run([sys.executable, "-c", code, str(run)], env={**os.environ, "PYTHONPATH": str(REPO / "src")},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert (run / runs.WEIGHTS).exists() and not (run / runs.CONFIG).exists()  # half deleted
    assert not (run / runs.RESULTS).exists()
    assert run_list.find(tmp_path / "runs") == []
    with pytest.raises(runs.ParameterError, match="stopped before it was set up"):
        Run.open(run)
    assert main(["train", "--model", "mlp", "--data", str(stopped.parent / "pictures"), "--epochs", "1", "--quiet",
                 "--out", str(run)]) == 0
    assert Run(run).status() is Status.FINISHED and json.loads((run / runs.RESULTS).read_text())["epochs_run"] == 1


def test_a_stale_lock_beside_someone_elses_files_deletes_nothing(tmp_path):
    """A run killed before its config.json leaves its lock; a user may fill that folder later."""
    folder = tmp_path / "thesis"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "x.csv").write_text("1\n")
    (folder / "thesis.tex").write_text("\\section{}")
    (folder / runs.LOCK).write_text("")
    with pytest.raises(runs.ParameterError, match=r"holds data, which no run writes, beside a stale run.lock"):
        Run.create(folder)
    assert (folder / "thesis.tex").exists() and (folder / "data" / "x.csv").exists()


def test_a_loop_of_links_in_a_run_is_one_line(stopped, tmp_path, capsys):
    run = copy_of(stopped, tmp_path / "run")
    import shutil

    shutil.rmtree(run / "plots", ignore_errors=True)
    (run / "plots").symlink_to("plots")
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "loops back on itself" in err, err
    assert Run(run).owner() is None  # the lock went with the error


def test_a_run_this_session_holds_says_so(tmp_path):
    """In a notebook, an interrupted Keras fit keeps its RunLogger's lock in the kernel itself:
    "wait for process N" would have the user wait for their own session."""
    held = Run.create(tmp_path / "run")
    try:
        with pytest.raises(runs.RunLocked, match="held by this very Python session"):
            Run(tmp_path / "run").lock()
        # given again as a new run's `out`: not "wait for process N to finish", which is this one
        with pytest.raises(runs.RunLocked, match="held by this very Python session"):
            Run.create(tmp_path / "run")
    finally:
        held.unlock()


def test_sigterm_stops_a_run_as_ctrl_c_does_and_it_resumes(digits, tmp_path):
    """What SLURM at the end of a job's time, `timeout` and `docker stop` send: the command says
    how to go on and ends with the shell's status for SIGTERM; the run is interrupted, not
    locked, and resumes to its end."""
    run = tmp_path / "run"
    args = train_args(digits, run)
    # cut after epoch 2, with about 8 s of epochs left for the signal to come in (a stall of this
    # process on a busy machine must not let the run finish first); the resume trains them all
    args[args.index("--epochs") + 1] = "200"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "neuralab", *args], env=env, stderr=subprocess.PIPE, text=True)
    metrics = run / runs.METRICS
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 2) and proc.poll() is None:
        assert time.monotonic() < deadline, "no epoch finished"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"neuralab train --resume {run}" in err and "interrupted" in err
    assert Run(run).status() is Status.INTERRUPTED
    assert 2 <= json.loads(metrics.read_text().splitlines()[-1])["epoch"] < 200
    resumed = command("train", "--resume", str(run), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert Run(run).status() is Status.FINISHED


def test_ctrl_c_during_the_test_pass_says_how_to_finish_the_run(digits, tmp_path, monkeypatch, capsys):
    from neuralab.training.trainer import Trainer

    def pressed(self, *args, **kwargs):
        raise KeyboardInterrupt

    run = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(Trainer, "predict", pressed)  # no validation set: this is the test pass, after the last epoch
        assert main([*train_args(digits, run), "--val-fraction", "0"]) == 130
    assert f"`neuralab train --resume {run}` continues it" in capsys.readouterr().err
    assert Run(run).status() is Status.INTERRUPTED and (run / runs.METRICS).read_text().count("\n") == 3
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert Run(run).status() is Status.FINISHED


def test_runs_started_in_the_same_second_get_folders_of_their_own(digits, tmp_path, monkeypatch, capsys):
    """A job array starts its tasks at once: the default MODEL-DATA-TIME names are the same, and
    the second run went nowhere ("--out ...: already holds a run", an --out nobody gave)."""
    monkeypatch.setenv("NEURALAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(runs.time, "strftime", lambda fmt: "20261206-010820")  # the same second for both
    args = [a for a in train_args(digits, tmp_path) if a not in ("--out", str(tmp_path))]
    assert main(args) == 0 and main([*args, "--seed", "4"]) == 0
    out = capsys.readouterr().out
    first, second = (tmp_path / "runs" / f"mlp-{digits.name}-20261206-010820{n}" for n in ("", "-2"))
    assert f"run: {first}" in out and f"run: {second}" in out
    assert Run(first).status() is Status.FINISHED and Run(second).status() is Status.FINISHED
    assert json.loads((second / runs.CONFIG).read_text())["seed"] == 4
    assert main(["report", str(second)]) == 0  # the run knows where it is: its files are in its folder


def test_numbered_folders_are_claimed_once_by_processes_asking_at_once(tmp_path):
    code = ("import sys; from neuralab.runs import Run; run = Run.create(sys.argv[1], numbered=True); "
            "print(run.path.name, flush=True); run.unlock()")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True,
                              env=env) for _ in range(4)]
    names = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert names == ["run", "run-2", "run-3", "run-4"]


@pytest.mark.parametrize("out", ["new/../kept/run", "new/week1/../run", "kept/new/run"])
def test_a_discarded_run_takes_away_the_folders_made_for_it_and_never_one_that_was_there(tmp_path, out):
    """`--out new/../kept/run`: the folders on the way were walked as the path spells them, so
    `new/../kept`, the user's kept, was removed for one made on the way, and new, which was
    made, stayed."""
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    run = Run.create(tmp_path / out)
    assert run.path.is_dir()
    (tmp_path / "kept" / "notes.txt").unlink()  # kept, empty again, is still the user's
    run.discard(made=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"] and list((tmp_path / "kept").iterdir()) == []


def test_a_write_through_a_file_says_the_path_is_wrong_not_to_free_space(tmp_path):
    """`--out RUN/config.json/model.onnx`: the folder to make is a file. The advice was to free
    space or fix permissions, neither of which helps."""
    from neuralab.files import WriteError, atomic_write

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(WriteError, match=r"config\.json/model\.onnx: cannot write \(File exists\); a part of the "
                                         r"path is a file, not a folder: give a path through folders"):
        with atomic_write(tmp_path / "config.json" / "model.onnx", "wb") as f:
            f.write(b"graph")
    assert (tmp_path / "config.json").read_text() == "{}"


def test_a_default_run_folder_that_cannot_be_made_names_neuralab_runs_not_an_out_never_given(digits, tmp_path,
                                                                                              monkeypatch, capsys):
    (tmp_path / "f").write_text("a file where the runs would go")
    monkeypatch.setenv("NEURALAB_RUNS", str(tmp_path / "f"))
    args = [a for a in train_args(digits, tmp_path) if a not in ("--out", str(tmp_path))]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"neuralab: error: {tmp_path / 'f'}/mlp-") and err.count("\n") == 1
    assert "cannot create the folder (Not a directory); a part of the path is a file, not a folder" in err
    assert "give the run's folder as --out (the default is under NEURALAB_RUNS" in err
    assert main([*args, "--out", str(tmp_path / "f" / "run")]) == 2  # an --out given is named as such
    assert capsys.readouterr().err.startswith(f"neuralab: error: --out {tmp_path / 'f' / 'run'}: cannot create")
