"""A workshop teacher's runs folder in the web app: runs a training left interrupted before its
first epoch, one that Keras's fit wrote and stopped, and one whose config.json a copy cut short.
The table and the run page say what each is (never "training…" for a run that does not
train), name the damaged file without the server's paths, and offer Resume only where the job
would not fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from neuralab.files import write_json
from neuralab.web import create_app
from test_web_app import fake_classifier_run
from test_web_browser import browser, serving, watched_page  # noqa: F401  browser: the one Chromium launch

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture says what is missing
    expect = None


def interrupted(folder: Path, keras_fit: bool = False) -> Path:
    """A run as `neuralab train` (or Keras's fit with RunLogger) leaves it when stopped before
    its first epoch ended: its files but no results.json and no metrics."""
    run = fake_classifier_run(folder, "lenet5")
    (run / "results.json").unlink()
    if keras_fit:
        record = json.loads((run / "config.json").read_text())
        record["config"]["trained_by"] = "keras fit"
        write_json(run / "config.json", record)
    return run


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "runs"
    fake_classifier_run(root / "lenet-done", "lenet5")
    interrupted(root / "lenet-stopped")
    interrupted(root / "keras-stopped", keras_fit=True)
    whole = (root / "lenet-done" / "config.json").read_text()
    (root / "copied").mkdir()
    (root / "copied" / "config.json").write_text(whole[: len(whole) // 2])  # a copy cut short
    return root


@pytest.fixture
def client(root):
    with TestClient(create_app(root), base_url="http://127.0.0.1") as c:
        yield c


def test_a_damaged_run_names_its_file_without_the_servers_path(client, root):
    rows = {r["id"]: r for r in client.get("/api/runs").json()["runs"]}
    for answer in (rows["copied"], client.get("/api/run", params={"run": "copied"}).json()):
        assert answer["status"] == "damaged"
        assert answer["error"].startswith("copied/config.json: not valid JSON"), answer["error"]
        assert str(root.resolve()) not in answer["error"] and str(root.parent) not in answer["error"]


def test_the_live_answer_says_why_an_interrupted_run_cannot_resume(client):
    def live(run):
        r = client.get("/api/run/live", params={"run": run})
        assert r.status_code == 200
        return r.json()

    stopped, keras = live("lenet-stopped"), live("keras-stopped")
    assert stopped["status"] == keras["status"] == "interrupted"
    assert stopped["resume_refused"] == ""
    assert "Keras's fit wrote it" in keras["resume_refused"] and "initial_epoch" in keras["resume_refused"]
    assert "resume_refused" not in live("lenet-done")  # finished: nothing to resume, nothing to explain
    # what the page says is what the button would get
    r = client.post("/api/jobs/resume", content=json.dumps({"run": "keras-stopped"}),
                    headers={"content-type": "application/json"})
    assert r.status_code == 409 and r.json()["error"] == keras["resume_refused"]


def test_an_exposed_app_says_it_starts_no_training_instead_of_offering_resume(root):
    with TestClient(create_app(root, hosts={"127.0.0.1", "lab.example"}), base_url="http://127.0.0.1") as c:
        assert c.get("/api/run/live", params={"run": "lenet-stopped"}).json()["resume_refused"] == \
            "this app starts no training"


@pytest.fixture
def page(browser, root):  # noqa: F811  pytest passes the imported fixture
    with serving(root) as url, watched_page(browser, url) as pg:
        yield pg


def test_the_runs_table_and_run_pages_say_what_each_run_is(page):
    page.goto("/runs")
    expect(page.locator("#runs tr[data-run='lenet-done'] td:nth-child(6)")).to_have_text("test accuracy 10.00%")
    expect(page.locator("#runs tr[data-run='lenet-stopped'] td:nth-child(6)")).to_have_text(
        "stopped before its first epoch")
    expect(page.locator("#runs tr[data-run='copied'] td:nth-child(6)")).to_contain_text(
        "copied/config.json: not valid JSON")
    assert "training…" not in page.locator("#runs").inner_text()

    page.goto("/runs?run=copied")
    expect(page.locator("#detail-title")).to_have_text("copied: damaged")
    expect(page.locator("#detail-lead")).to_contain_text("copied/config.json: not valid JSON")

    page.goto("/runs?run=keras-stopped")
    expect(page.locator("#run-status")).to_have_text("interrupted")
    expect(page.locator("#job-note")).to_contain_text("continue the training in Keras")
    expect(page.locator("#resume")).to_be_hidden()

    page.goto("/runs?run=lenet-stopped")
    expect(page.locator("#run-status")).to_have_text("interrupted")
    expect(page.locator("#resume")).to_be_visible()
