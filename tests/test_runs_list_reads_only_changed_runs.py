"""The runs page asks for /api/runs every 10 s while nothing trains: a run whose files did not
change is not read again, and one that changed (finished, edited, its training killed, new or
removed) shows as it now is at the next ask."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path

from starlette.testclient import TestClient
from test_web_app import fake_classifier_run

from neuralab import run_list
from neuralab.files import write_json
from neuralab.web import create_app

HOUR_AGO = time.time() - 3600


def trained_earlier(run: Path) -> None:
    """The run's files as a training an hour ago left them."""
    for folder, _, files in os.walk(run):
        for name in [*files, "."]:
            os.utime(Path(folder) / name, (HOUR_AGO, HOUR_AGO))


def test_asking_again_reads_only_the_runs_that_changed(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    finished = fake_classifier_run(root / "lenet5-mnist", "lenet5")
    training = fake_classifier_run(root / "mlp-mnist", "mlp")
    (training / "results.json").unlink()  # not finished: its epoch's weights only
    lock = os.open(training / "run.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(lock, fcntl.LOCK_EX)  # as `neuralab train` holds it
    os.write(lock, json.dumps({"pid": os.getpid(), "host": "lab-pc", "started": "2025-01-02T03:04:05+0000"}).encode())
    for run in (finished, training):
        trained_earlier(run)
    read = []
    describe = run_list.describe
    monkeypatch.setattr(run_list, "describe", lambda run, id=None: read.append(id) or describe(run, id))

    with TestClient(create_app(root), base_url="http://127.0.0.1") as client:
        def ask() -> dict:
            read.clear()
            answer = client.get("/api/runs")
            assert answer.status_code == 200
            return {row["id"]: row for row in answer.json()["runs"]}

        first = ask()
        assert {i: r["status"] for i, r in first.items()} == {"lenet5-mnist": "finished", "mlp-mnist": "running"}
        assert sorted(read) == ["lenet5-mnist", "mlp-mnist"]
        assert ask() == first and read == []  # nothing changed: nothing read again

        os.close(lock)  # the training killed: run.lock stays as it was, its kernel lock goes
        rows = ask()
        assert rows["mlp-mnist"]["status"] == "interrupted" and read == ["mlp-mnist"]

        write_json(training / "results.json", {"test_accuracy": 0.9, "test_loss": 0.3, "best_epoch": 1,
                                               "epochs_run": 1})  # resumed and finished
        rows = ask()
        assert rows["mlp-mnist"]["status"] == "finished" and rows["mlp-mnist"]["metric"]["value"] == 0.9
        assert read == ["mlp-mnist"]

        config = json.loads((finished / "config.json").read_text())
        config["config"]["data"] = "fashion-mnist"
        (finished / "config.json").write_text(json.dumps(config))  # edited in place, by hand
        assert ask()["lenet5-mnist"]["data"] == "fashion-mnist"

        shutil.copytree(finished, root / "lenet5-copy")
        shutil.rmtree(finished)
        assert sorted(ask()) == ["lenet5-copy", "mlp-mnist"]


def test_a_row_handed_out_is_not_the_one_kept(tmp_path):
    """The app renames a training forecast's metric in its row: the row kept must not change with it."""
    run = fake_classifier_run(tmp_path / "runs" / "lenet5-mnist", "lenet5")
    trained_earlier(run)
    rows = run_list.Rows()
    row = rows.row(run_list.Run(run), "lenet5-mnist")
    row.metric["name"] += " of the scaled target"
    assert rows.row(run_list.Run(run), "lenet5-mnist").metric["name"] == "test accuracy"
