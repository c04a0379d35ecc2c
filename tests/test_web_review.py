"""The web app as a hostile user drives it (Starlette's test client): every refusal a 4xx in one
line that says what to do, job states that tell what happened to the run."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from neuralab.web import create_app
from test_web_app import PICTURE, fake_classifier_run, png_header_only
from test_web_jobs import JSON, data, start, wait_for  # noqa: F401 (data: the fixture)


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "runs"
    fake_classifier_run(root / "done", "mlp")
    return root


@pytest.fixture
def client(root):
    with TestClient(create_app(root), base_url="http://127.0.0.1") as c:
        yield c


@pytest.mark.parametrize("method, path, allow", [
    ("PUT", "/api/upload", {"POST"}), ("GET", "/api/jobs/start", {"POST"}),
    ("OPTIONS", "/api/runs", {"GET", "HEAD"}), ("DELETE", "/api/run/file?run=done&name=summary.txt", {"GET", "HEAD"}),
])
def test_a_method_a_route_does_not_take_says_which_it_takes(client, method, path, allow):
    r = client.request(method, path)
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == allow, r.headers
    error = r.json()["error"]
    assert error.startswith(f"method {method} is not taken here; use ") and "\n" not in error


def test_an_address_with_nothing_there_names_the_pages(client):
    for path in ("/nope", "/api/nope", "/static/nope.js"):
        r = client.get(path)
        assert r.status_code == 404 and "the pages are /, /conv, /classify, /runs, /forecast" in r.json()["error"]
    assert client.get("/api/run?run=nope").json() == {"error": "no such run"}  # the app's own 404s keep their line


@pytest.mark.parametrize("recipe", [0, False, [], {}])
def test_a_recipe_that_is_no_text_is_refused_not_taken_for_none(client, data, root, recipe):  # noqa: F811
    r = start(client, model="mlp", data="fashion-mnist", recipe=recipe)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == f"recipe={recipe!r}: must be text"
    assert client.get("/api/jobs").json()["jobs"] == []


def test_a_training_stopped_as_it_starts_is_cancelled_not_failed(client, data, root):  # noqa: F811
    """Stop pressed at once reached Python before the CLI's Ctrl-C handler: the job read
    'failed' with a KeyboardInterrupt line, or 'interrupted' for a run with no folder to resume."""
    job = start(client, model="mlp", data="fashion-mnist", epochs=1).json()

    def state():
        return {j["id"]: j for j in client.get("/api/jobs").json()["jobs"]}[job["id"]]
    wait_for(lambda: state()["state"] != "queued", 60, "the job to start")
    stop = client.post("/api/jobs/stop", content=json.dumps({"run": job["run"]}), headers=JSON)
    assert stop.status_code == 200 and stop.json()["state"] == "stopping"
    wait_for(lambda: state()["state"] not in ("running", "stopping"), 120, "the job to stop")
    ended = state()
    made = (root / job["run"] / "config.json").is_file()
    assert (ended["state"], ended["error"]) == ("interrupted" if made else "cancelled", ""), ended
    if not made:  # nothing to resume, and the page says so
        assert client.get("/api/run/live", params={"run": job["run"]}).status_code == 404


def jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("body, words", [
    (png_header_only(100_000, 100_000), "too large to decode safely"),
    (jpeg_bytes()[:1000], "not a readable image"),
    (b"", "upload: nothing was sent"),
])
def test_a_spoiled_picture_is_a_one_line_400(client, body, words):
    for path in ("/api/upload", "/api/classify?run=done"):
        r = client.post(path, content=body, headers=PICTURE)
        assert r.status_code == 400 and words in r.json()["error"] and "\n" not in r.json()["error"], (path, r.text)
