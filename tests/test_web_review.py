"""The web app as a hostile user drives it (Starlette's test client): every refusal a 4xx in one
line that says what to do, job states that tell what happened to the run."""

from __future__ import annotations

import errno
import io
import json
import shutil
import subprocess
import tempfile
import threading

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from neuralab.web import create_app, jobs
from neuralab.web import runs as web_runs
from neuralab.web.app import STATIC
from test_web_app import PICTURE, conv, fake_classifier_run, fake_forecast_run, png_bytes, png_header_only
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
    assert client.get("/api/run?run=nope").json() == {  # the app's own 404s keep their line
        "error": "run='nope': no such run in the runs folder; give a run that /api/runs lists"}


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


# --- a run named with extra dots and slashes is the same run everywhere ---------------------------

class Training:
    """A stand-in for `neuralab train`'s process: it trains until stopped, and SIGINT ends it
    with status 130, as the command's Ctrl-C handler does."""

    def __init__(self):
        self.stopped = threading.Event()

    def send_signal(self, sig):
        self.stopped.set()

    kill = send_signal

    def poll(self):
        return 130 if self.stopped.is_set() else None

    def wait(self, timeout=None):
        if not self.stopped.wait(timeout):
            raise subprocess.TimeoutExpired("neuralab train", timeout)
        return 130


def interrupted(root, name):
    """A classifier run stopped after an epoch: what Resume takes."""
    (fake_classifier_run(root / name, "mlp") / "results.json").unlink()


def post(client, path, run):
    return client.post(path, content=json.dumps({"run": run}), headers=JSON)


def test_a_run_named_with_dots_and_slashes_is_stopped_and_watched_as_itself(root, monkeypatch):
    """'./b', 'a/', 'a/.' and 'a//' open runs b and a on every page, but Stop answered 409 for
    './b' while b waited, and the live poll of 'a/' said no job while a trained."""
    interrupted(root, "a")
    interrupted(root, "b")
    monkeypatch.setattr(jobs.Jobs, "_spawn", lambda self, job: Training())
    with TestClient(create_app(root), base_url="http://127.0.0.1") as c:
        def job_of(run):
            return c.get("/api/run/live", params={"run": run}).json()["job"]
        assert post(c, "/api/jobs/resume", "a").status_code == 201
        wait_for(lambda: (job_of("a") or {}).get("state") == "running", 30, "a to train")
        assert post(c, "/api/jobs/resume", "b").status_code == 201
        for name in ("a/", "./a", "a/.", "a//"):
            job = job_of(name)
            assert job is not None and (job["run"], job["state"]) == ("a", "running"), (name, job)
        assert job_of("./b")["state"] == "queued"
        r = post(c, "/api/jobs/stop", "./b")
        assert r.status_code == 200 and (r.json()["run"], r.json()["state"]) == ("b", "cancelled"), r.text
        r = post(c, "/api/jobs/stop", "a//")
        assert r.status_code == 200 and (r.json()["run"], r.json()["state"]) == ("a", "stopping"), r.text
        wait_for(lambda: job_of("a") is None, 30, "a to stop")
        assert {j["run"]: j["state"] for j in c.get("/api/jobs").json()["jobs"]} == {"a": "interrupted",
                                                                                   "b": "cancelled"}


def test_a_run_has_one_name_whether_its_folder_exists_or_not(root):
    (root / "link").symlink_to("done")
    for name in ("done", "./done", "done/", "done/.", "done//", "link", "./link/"):
        assert web_runs.run_name(root, name) == "done", name
    for name in ("lenet-fashion-mnist-20250101-1200", "./lenet-fashion-mnist-20250101-1200/"):  # queued: no folder yet
        assert web_runs.run_name(root, name) == "lenet-fashion-mnist-20250101-1200", name


# --- a full temporary folder ---------------------------------------------------------------------

def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_uploads_are_read_when_the_temporary_folder_is_full(client, root, monkeypatch):
    """Each upload was written to a temporary file first: a full or read-only temporary folder
    made every picture a 500."""
    for name in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile"):
        monkeypatch.setattr(tempfile, name, full)
    seven = np.zeros((28, 28), np.uint8)
    seven[6:9, 6:22] = 255
    seven[9:24, 17:20] = 255
    r = client.post("/api/upload", content=png_bytes(seven), headers=PICTURE)
    assert r.status_code == 200 and (r.json()["h"], r.json()["w"]) == (28, 28), r.text
    r = client.post("/api/classify", params={"run": "done"}, content=png_bytes(seven), headers=PICTURE)
    assert r.status_code == 200, r.text
    r = client.post("/api/upload", content=jpeg_bytes()[:1000], headers=PICTURE)  # still refused as it was
    assert r.status_code == 400 and r.json()["error"].startswith("upload: not a readable image"), r.text


def test_a_server_whose_temporary_folder_is_full_starts_and_says_why_a_job_cannot(root, monkeypatch):
    """The jobs' log folder was made as the app started: `neuralab serve` ended in a traceback."""
    monkeypatch.setattr(tempfile, "mkdtemp", full)
    interrupted(root, "paused")
    with TestClient(create_app(root), base_url="http://127.0.0.1") as c:
        assert c.get("/api/runs").status_code == 200
        job = post(c, "/api/jobs/resume", "paused").json()

        def state():
            return {j["id"]: j for j in c.get("/api/jobs").json()["jobs"]}[job["id"]]
        wait_for(lambda: state()["state"] != "queued", 30, "the job to start")
        assert state()["state"] == "failed"
        assert state()["error"] == ("cannot write the job's log: the server's temporary folder "
                                    f"{tempfile.gettempdir()} cannot be written (No space left on device); free space "
                                    "there, or start the server with TMPDIR set to a folder it can write")


# --- 404s name the parameter and say where to look ------------------------------------------------

def test_a_run_or_file_not_found_names_the_parameter_and_where_to_look(client, root):
    fake_forecast_run(root / "weather")
    no_run = "run='nope': no such run in the runs folder; give a run that /api/runs lists"
    for path, params in (("/api/run", {"run": "nope"}), ("/api/run/live", {"run": "nope"}),
                         ("/api/run/file", {"run": "nope", "name": "summary.txt"}), ("/api/forecast", {"run": "nope"})):
        r = client.get(path, params=params)
        assert (r.status_code, r.json()) == (404, {"error": no_run}), (path, r.text)
    r = client.post("/api/classify", params={"run": "../done"}, content=png_bytes(np.zeros((28, 28), np.uint8)),
                    headers=PICTURE)
    assert (r.status_code, r.json()["error"]) == (404, no_run.replace("'nope'", "'../done'"))
    r = client.get("/api/run/file", params={"run": "done", "name": "model.safetensors"})
    assert (r.status_code, r.json()["error"]) == (404, "name='model.safetensors': not a file the app serves; give a "
                                                       "file that /api/run?run=RUN lists under files")
    r = client.get("/api/run/file", params={"run": "weather", "name": "summary.txt"})
    assert (r.status_code, r.json()["error"]) == (404, "name='summary.txt': not in this run; give a file that "
                                                       "/api/run?run=RUN lists under files")
    assert "summary.txt" not in client.get("/api/run", params={"run": "weather"}).json()["files"]


# --- the playground's `at` is a pixel of the picture, at both ends ---------------------------------

def test_at_is_a_pixel_of_the_picture_and_no_further(client):
    """`at` took row h and column w, one past the last pixel."""
    r = conv(client, image="sample:digit", kernel="identity", at=[27, 27])
    assert r.status_code == 200, r.text
    step = r.json()["step"]
    assert step["crop_origin"][0] + len(step["crop"]) - 1 == 27 == step["crop_origin"][1] + len(step["crop"][0]) - 1
    for at in ([28, 0], [0, 28], [28, 28], [-1, 5]):
        r = conv(client, image="sample:digit", at=at)
        assert (r.status_code, r.json()["error"]) == (400, f"at={at!r}: give [row, column] of a pixel of the 28 x 28 "
                                                           "input: row 0 to 27, column 0 to 27"), r.text


CLICKS = r"""
// conv.js run as the page runs it, on a stand-in for the DOM: the page's clicks, and the
// settings it sends, are what the test reads.
const fs = require("fs"), vm = require("vm");
const [common, script, data] = process.argv.slice(2);
const { kernels, answer } = JSON.parse(fs.readFileSync(data, "utf8"));
function element() {
  const t = { listeners: {}, style: {}, classList: { toggle() {}, add() {}, remove() {} } };
  return new Proxy(t, {
    get: (t, k) => k in t ? t[k] : k === "addEventListener" ? (type, fn) => { t.listeners[type] = fn; }
      : k === "querySelectorAll" ? () => [] : () => element(),
    set: (t, k, v) => { t[k] = v; return true; },
  });
}
const elements = {}, loaded = [], sent = [];
const document = {
  getElementById: (id) => elements[id] || (elements[id] = element()),
  createElement: () => element(),
  querySelectorAll: () => [],
  addEventListener: (type, fn) => { if (type === "DOMContentLoaded") loaded.push(fn); },
};
async function fetch(path, options = {}) {
  if (path === "/api/conv") sent.push(JSON.parse(options.body));
  const body = path === "/api/kernels" ? kernels : answer;
  return { ok: true, json: async () => body };
}
const context = vm.createContext({ document, fetch, window: { location: { pathname: "/conv", search: "" } },
                                   setTimeout, clearTimeout, setInterval, clearInterval });
vm.runInContext(fs.readFileSync(common, "utf8"), context);
vm.runInContext(fs.readFileSync(script, "utf8"), context);
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));
(async () => {
  for (const fn of loaded) await fn();
  await settle();
  const img = elements["input-img"];
  const clicks = [[img.height, img.width], [img.height - 0.5, 0], [0, img.width + 3], [5 * 14 + 3, 9 * 14]];
  for (const [y, x] of clicks) {
    img.listeners.click({ offsetY: y, offsetX: x });
    await settle();
  }
  console.log(JSON.stringify(sent.slice(-clicks.length)));
})();
"""


def test_a_click_on_the_pictures_edge_asks_for_its_last_pixel(client, tmp_path):
    """A click on the bottom or right edge of the 28 x 28 digit (shown 392 pixels a side) sent
    row or column 28, one past the last."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node to run the page's script")
    first = {"image": "sample:digit", "op": "conv", "kernel": "sobel-x", "stride": 1, "padding": "valid", "size": 2,
             "scale": "auto", "at": None}  # conv.js's first request
    (tmp_path / "data.json").write_text(json.dumps({"kernels": client.get("/api/kernels").json(),
                                                    "answer": client.post("/api/conv", json=first).json()}))
    (tmp_path / "clicks.js").write_text(CLICKS)
    ran = subprocess.run([node, str(tmp_path / "clicks.js"), str(STATIC / "common.js"), str(STATIC / "conv.js"),
                          str(tmp_path / "data.json")], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    sent = json.loads(ran.stdout)
    assert [s["at"] for s in sent] == [[27, 27], [27, 0], [0, 27], [5, 9]]
    for settings in sent:  # and the server takes each
        assert client.post("/api/conv", json=settings).status_code == 200


def test_the_live_poll_and_stop_read_the_runs_folder_off_the_event_loop(root, monkeypatch):
    """Both look the run's name up in the runs folder (a slow or network disk): never on the
    event loop's thread, which every other request waits for."""
    import asyncio

    real, on_loop = web_runs.resolve_run, []

    def watched(*args):
        try:
            asyncio.get_running_loop()
            on_loop.append(args[1])
        except RuntimeError:  # no event loop in this thread: a worker thread
            pass
        return real(*args)

    interrupted(root, "a")
    monkeypatch.setattr(web_runs, "resolve_run", watched)
    monkeypatch.setattr(jobs, "resolve_run", watched)
    monkeypatch.setattr(jobs.Jobs, "_spawn", lambda self, job: Training())
    with TestClient(create_app(root), base_url="http://127.0.0.1") as c:
        assert post(c, "/api/jobs/resume", "a").status_code == 201
        assert c.get("/api/run/live", params={"run": "./a"}).json()["job"]["run"] == "a"
        assert post(c, "/api/jobs/stop", "a/").status_code == 200
    assert on_loop == []
