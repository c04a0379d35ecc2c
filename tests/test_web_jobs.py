"""Training from the browser, through the JSON API (Starlette's test client): every field of
the form checked as `neuralab train` checks its flags, in one line and a 4xx; jobs only on
the local app and only from its own pages; one job at a time, the next one waiting; jobs
interrupted (resumable) when the server stops; a running run's live state read from its folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from helpers import idx_subset
from neuralab import runs as run_files
from neuralab.runs import Run, Status
from neuralab.web import create_app
from neuralab.web.security import allowed_hosts
from test_web_app import fake_classifier_run, fake_forecast_run

JSON = {"content-type": "application/json"}


@pytest.fixture
def data(fashion_mnist, tmp_path, monkeypatch) -> Path:
    """A data cache holding 600 real Fashion-MNIST training images, as the server's jobs see it."""
    cache = tmp_path / "cache"
    idx_subset(fashion_mnist, cache / "fashion-mnist", 600, 100)
    monkeypatch.setenv("NEURALAB_DATA", str(cache))
    return cache


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "runs"
    fake_classifier_run(root / "done", "mlp")
    fake_forecast_run(root / "weather")
    return root


@pytest.fixture
def client(root):
    with TestClient(create_app(root), base_url="http://127.0.0.1") as c:
        yield c


def start(client, **body):
    return client.post("/api/jobs/start", content=json.dumps(body), headers=JSON)


@pytest.mark.parametrize("body, said", [
    ({"model": "lenet6"}, "model='lenet6': allowed are mlp, cnn, lenet5"),
    ({"data": "imagenet"}, "data='imagenet': allowed are mnist, fashion-mnist"),
    ({"data": "mnist"}, "data='mnist': not on this machine"),
    ({"epochs": 0}, "epochs=0: must be a whole number from 1 to 1000"),
    ({"epochs": "3"}, "epochs='3': must be a whole number"),
    ({"epochs": 2.5}, "epochs=2.5: must be a whole number"),
    ({"epochs": 1001}, "epochs=1001: must be a whole number from 1 to 1000"),
    ({"seed": -1}, "seed=-1: must be a whole number from 0 to 4294967295"),
    ({"seed": True}, "seed=True: must be a whole number"),
    ({"recipe": "slow"}, "recipe='slow': allowed are fast (or none)"),
    ({"recipe": 3}, "recipe=3: must be text"),
    ({"out": "/etc"}, "out='/etc': unknown field; allowed are model, data, epochs, recipe, seed"),
])
def test_every_field_of_the_form_is_checked_in_one_line(client, data, root, body, said):
    r = start(client, **{"model": "lenet5", "data": "fashion-mnist", "epochs": 1, **body})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert said in error and "\n" not in error
    assert client.get("/api/jobs").json()["jobs"] == []  # nothing was queued
    assert sorted(p.name for p in root.iterdir()) == ["done", "weather"]


def test_a_bad_body_is_refused_before_any_field_is_read(client, data):
    assert client.post("/api/jobs/start", content="model=lenet5",
                       headers={"content-type": "text/plain"}).status_code == 415
    r = client.post("/api/jobs/start", content="{not json", headers=JSON)
    assert r.status_code == 400 and r.json()["error"].startswith("request: not valid JSON")
    r = client.post("/api/jobs/start", content="[1]", headers=JSON)
    assert r.status_code == 400 and r.json()["error"] == "request: expected a JSON object"


def test_another_sites_page_cannot_start_or_stop_a_training(client, data):
    for path, body in (("/api/jobs/start", {"model": "lenet5"}), ("/api/jobs/stop", {"run": "done"}),
                       ("/api/jobs/resume", {"run": "done"})):
        r = client.post(path, content=json.dumps(body), headers={**JSON, "origin": "http://evil.example"})
        assert r.status_code == 403 and "another site" in r.json()["error"]
        r = client.post(path, content=json.dumps(body), headers={**JSON, "sec-fetch-site": "cross-site"})
        assert r.status_code == 403
    assert client.get("/api/jobs").json()["jobs"] == []


def test_an_app_exposed_to_the_network_starts_no_training(root, data):
    with TestClient(create_app(root, allowed_hosts("0.0.0.0")), base_url="http://127.0.0.1") as exposed:
        listing = exposed.get("/api/jobs?choices").json()
        assert listing["local"] is False and listing["choices"] == {}
        r = start(exposed, model="lenet5", data="fashion-mnist", epochs=1)
        assert r.status_code == 403 and "only for the app on this machine" in r.json()["error"]


def test_resume_and_stop_take_only_what_they_can_do(client, root):
    def post(path, run):
        return client.post(path, content=json.dumps({"run": run}), headers=JSON)

    r = post("/api/jobs/resume", "done")
    assert r.status_code == 409 and r.json()["error"] == "run done: finished; only an interrupted run resumes"
    r = post("/api/jobs/resume", "weather")
    assert r.status_code == 409 and "only image-classifier runs resume" in r.json()["error"]
    for escape in ("../done", "/etc", "nothing"):
        assert post("/api/jobs/resume", escape).status_code == 404
    r = post("/api/jobs/stop", "done")
    assert r.status_code == 409 and "no job of this server" in r.json()["error"]
    assert client.post("/api/jobs/resume", content=json.dumps({"run": "done", "x": 1}), headers=JSON).status_code == 400
    for path in ("/api/jobs/resume", "/api/jobs/stop"):  # no run named: said so
        r = client.post(path, content="{}", headers=JSON)
        assert r.status_code == 400 and "name the run, as the runs page lists it" in r.json()["error"], r.text


def test_the_live_state_of_a_run_comes_from_its_folder(client, root):
    finished = client.get("/api/run/live?run=done").json()
    assert finished == {"id": "done", "status": "finished", "metrics": [], "progress": None, "job": None}
    # a run in progress: this process holds its lock, its epochs and progress are on disk
    folder = fake_classifier_run(root / "live", "mlp")
    (folder / run_files.RESULTS).unlink()
    epochs = [{"epoch": 1, "loss": 0.9, "accuracy": 0.7}, {"epoch": 2, "loss": 0.6, "accuracy": 0.8}]
    (folder / run_files.METRICS).write_text("".join(json.dumps(e) + "\n" for e in epochs))
    progress = {"epoch": 3, "epochs": 5, "step": 4, "steps": 10, "samples_per_s": 900.0, "eta_s": 1.5,
                "updated": time.time()}
    (folder / run_files.PROGRESS).write_text(json.dumps(progress))
    with Run(folder):
        state = client.get("/api/run/live?run=live").json()
        assert state == {"id": "live", "status": "running", "metrics": epochs, "progress": progress, "job": None}
        (folder / run_files.PROGRESS).write_text('{"epoch": 3, "ste')  # torn (not by neuralab): no progress
        assert client.get("/api/run/live?run=live").json()["progress"] is None
    # stopped: the progress of a run no process trains is not shown
    assert client.get("/api/run/live?run=live").json()["status"] == "interrupted"
    assert client.get("/api/run/live?run=live").json()["progress"] is None
    assert client.get("/api/run/live?run=../done").status_code == 404


def wait_for(condition, seconds: float, what: str):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.2)


def test_one_job_trains_the_next_waits_and_both_end_with_the_server(root, data):
    """Two trainings started: the first runs, the second waits its turn and can be cancelled;
    closing the server interrupts the one training, and its run is left resumable."""
    with TestClient(create_app(root), base_url="http://127.0.0.1") as client:
        first = start(client, model="lenet5", data="fashion-mnist", epochs=200, seed=1)
        second = start(client, model="mlp", data="fashion-mnist", epochs=1, seed=2)
        third = start(client, model="mlp", data="fashion-mnist", epochs=1, seed=2)
        assert (first.status_code, second.status_code, third.status_code) == (201, 201, 201)
        first, second, third = first.json(), second.json(), third.json()
        assert first["command"].startswith("neuralab train --model lenet5 --data fashion-mnist --seed 1 --epochs 200")
        assert len({first["run"], second["run"], third["run"]}) == 3  # same model, data and second: still apart

        def state(job):
            return {j["id"]: j for j in client.get("/api/jobs").json()["jobs"]}[job["id"]]["state"]

        wait_for(lambda: (root / first["run"] / run_files.PROGRESS).exists(), 300, "the first job to train")
        assert state(first) == "running" and state(second) == state(third) == "queued"
        live = client.get(f"/api/run/live?run={first['run']}").json()
        assert live["status"] == "running" and live["job"]["state"] == "running"
        assert live["progress"]["epochs"] == 200 and live["progress"]["steps"] == 5  # 540 images, batches of 128
        cancelled = client.post("/api/jobs/stop", content=json.dumps({"run": second["run"]}), headers=JSON)
        assert cancelled.json()["state"] == "cancelled" and state(second) == "cancelled"
        jobs = client.app.state.served.jobs
    # leaving the block shuts the server down: the training is interrupted as Ctrl-C would
    done = {j["id"]: j for j in jobs.list()}
    assert done[first["id"]]["state"] == "interrupted" and done[first["id"]]["returncode"] == 130
    assert done[third["id"]]["state"] == "cancelled"
    assert Run(root / first["run"]).status() is Status.INTERRUPTED
    assert not (root / first["run"] / run_files.PROGRESS).exists()
    assert not (root / second["run"]).exists() and not (root / third["run"]).exists()
