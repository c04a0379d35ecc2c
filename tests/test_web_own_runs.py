"""The web app with a researcher's own runs: models trained on dark-on-light pictures or in
colour, forecasts of several series, runs that are interrupted, imported or damaged, and
answers that never show the server's paths."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from helpers import handwritten_digit
from neuralab.errors import NeuralabError
from neuralab.files import write_json
from neuralab.web import create_app
from test_web_app import fake_classifier_run, fake_forecast_run, png_array

PICTURE = {"content-type": "application/octet-stream"}


def client_of(root: Path, hosts=None) -> TestClient:
    return TestClient(create_app(root, hosts), base_url="http://127.0.0.1")


def png(picture: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(picture).save(out, "PNG")
    return out.getvalue()


def trained_on(run: Path, mean: float) -> Path:
    """``run`` as if trained on pictures whose mean pixel is ``mean`` (model.json's statistics)."""
    meta = json.loads((run / "model.json").read_text())
    meta["preprocess"]["mean"] = [mean] * len(meta["preprocess"]["mean"])
    write_json(run / "model.json", meta)
    return run


# --- 1. "auto" invert follows what the model was trained on --------------------------------

def test_auto_invert_follows_the_polarity_the_model_was_trained_on(tmp_path):
    """A digit on paper was inverted for every one-channel model, so a model trained on paper
    digits (mean 0.69) got it white on black and answered wrongly; an RGB photo with a light
    border was inverted too. Only a model trained light-on-dark (MNIST, mean 0.13) inverts it."""
    root = tmp_path / "runs"
    trained_on(fake_classifier_run(root / "paper", "lenet5"), 0.69)
    trained_on(fake_classifier_run(root / "mnist", "lenet5"), 0.13)
    trained_on(fake_classifier_run(root / "keras", "lenet5"), 0.0)  # Keras fit / import: no statistics
    trained_on(fake_classifier_run(root / "colour", "lenet5", shape=(3, 32, 32)), 0.2)
    seven, _ = handwritten_digit(7)
    on_paper = 255 - seven  # dark ink on a light page
    with client_of(root) as client:
        def received(run, picture, **params):
            r = client.post("/api/classify", params={"run": run, **params}, content=png(picture), headers=PICTURE)
            assert r.status_code == 200, r.text
            return png_array(r.json()["input"]).astype(int)

        assert np.abs(received("paper", on_paper) - on_paper).max() <= 1  # as it was drawn
        assert np.abs(received("mnist", on_paper) - seven).max() <= 1    # MNIST's way round
        assert np.abs(received("keras", on_paper) - seven).max() <= 1
        assert np.abs(received("paper", on_paper, invert="yes") - seven).max() <= 1  # the page's choice stays
        # a colour photo on a light background: a colour model gets it as it is
        photo = np.full((32, 32, 3), 230, np.uint8)
        photo[8:24, 8:24] = (200, 40, 30)
        got = received("colour", photo)
        assert got.shape == (32, 32, 3) and np.abs(got - photo).max() <= 1


# --- 2. a forecast of several series ----------------------------------------------------------

def several_series_run(folder: Path) -> Path:
    """A forecast run on two series in different units (pooled: the verdict ranks by MASE)."""
    fake_forecast_run(folder)
    results = json.loads((folder / "results.json").read_text())
    results["headline"]["metric"] = "mase"
    # by MAE the drift baseline is best (units of the large series dominate); by MASE the network is
    results["test"] = {"lstm": {"mae": 30.0, "rmse": 40.0, "mape": 9.0, "smape": 9.0, "mase": 0.8},
                       "persistence": {"mae": 25.0, "rmse": 35.0, "mape": 12.0, "smape": 11.0, "mase": 1.1},
                       "drift": {"mae": 20.0, "rmse": 30.0, "mape": 12.5, "smape": 11.5, "mase": 1.3}}
    write_json(folder / "results.json", results)
    lines = ["series,split,origin,time,step,actual,lstm,persistence,drift"]
    for name, level in (("north", 10), ("south café", 1000)):
        for day in range(1, 4):
            lines.append(f"{name},test,2015-01-0{day} 00:00:00,2015-01-0{day + 1} 00:00:00,1,"
                         f"{level + day},{level + day + 0.5},{level + day - 1},{level}")
        lines.append(f"{name},future,2015-01-04 00:00:00,2015-01-05 00:00:00,1,,{level + 5},,")
    (folder / "forecast.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_a_forecast_of_several_series_names_the_one_shown_and_offers_the_others(tmp_path):
    """Only the first series was shown, unnamed; the table was sorted by MAE though the verdict ranks by MASE."""
    several_series_run(tmp_path / "runs" / "sales")
    with client_of(tmp_path / "runs") as client:
        first = client.get("/api/forecast", params={"run": "sales"})
        assert first.status_code == 200, first.text
        view = first.json()
        assert (view["series"], view["all_series"]) == ("north", ["north", "south café"])
        assert view["steps"]["1"]["actual"] == [11.0, 12.0, 13.0]
        assert [s["name"] for s in view["scores"]] == ["lstm", "persistence", "drift"]  # by MASE
        other = client.get("/api/forecast", params={"run": "sales", "series": "south café"}).json()
        assert other["series"] == "south café" and other["steps"]["1"]["actual"] == [1001.0, 1002.0, 1003.0]
        assert other["future"]["lstm"] == [1005.0]
        wrong = client.get("/api/forecast", params={"run": "sales", "series": "east"})
        assert wrong.status_code == 400 and wrong.json()["error"].startswith("series='east': no such series")
        assert "north, south café" in wrong.json()["error"]


def test_a_forecast_of_one_series_names_none(tmp_path):
    fake_forecast_run(tmp_path / "runs" / "weather")
    with client_of(tmp_path / "runs") as client:
        view = client.get("/api/forecast", params={"run": "weather"}).json()
    assert (view["series"], view["all_series"]) == ("", [])
    assert [s["name"] for s in view["scores"]] == ["lstm", "persistence", "drift"]


# --- 3. a damaged run says why ------------------------------------------------------------------

def test_a_damaged_run_says_what_is_wrong_within_the_runs_folder(tmp_path):
    """Garbage in results.json and a deleted model.safetensors were "damaged" with no reason."""
    root = tmp_path / "runs"
    (fake_classifier_run(root / "garbled", "mlp") / "results.json").write_text("{'test_accuracy': 0.9,")
    (fake_classifier_run(root / "group" / "noweights", "mlp") / "model.safetensors").unlink()
    with client_of(root) as client:
        rows = {r["id"]: r for r in client.get("/api/runs").json()["runs"]}
        detail = client.get("/api/run", params={"run": "group/noweights"}).json()
    assert rows["garbled"]["status"] == "damaged"
    assert rows["garbled"]["error"].startswith("garbled/results.json: not valid JSON")
    assert rows["group/noweights"]["status"] == "damaged"
    assert rows["group/noweights"]["error"].startswith("group/noweights/model.safetensors: missing")
    assert detail["error"] == rows["group/noweights"]["error"]
    assert str(tmp_path) not in json.dumps(rows)


# --- 4. the forecast page of a run without forecasts says why, by its status -------------------

def test_a_forecast_run_without_forecasts_says_why_by_its_status(tmp_path):
    """An interrupted run, and a finished one whose forecast.csv was deleted, read "still training"."""
    root = tmp_path / "runs"
    cut = fake_forecast_run(root / "cut")
    (cut / "results.json").unlink()
    (cut / "forecast.csv").unlink()
    (fake_forecast_run(root / "lost") / "forecast.csv").unlink()
    with client_of(root) as client:
        cut_answer = client.get("/api/forecast", params={"run": "cut"})
        lost_answer = client.get("/api/forecast", params={"run": "lost"})
    assert cut_answer.status_code == 400
    assert cut_answer.json()["error"] == ("run cut: interrupted before it forecast; go on with `neuralab forecast "
                                          "--resume cut` in a terminal, from the runs folder")
    assert lost_answer.status_code == 400
    assert lost_answer.json()["error"].startswith("run lost: finished, but its forecast.csv is missing")
    assert "training" not in cut_answer.text + lost_answer.text


# --- 6. a PyTorch-module run on an app without --trust-code --------------------------------------

def test_classifying_with_untrusted_code_says_how_to_start_the_app(tmp_path):
    """The answer told the browser's user to "pass `trust_code`", a Python parameter."""
    run = fake_classifier_run(tmp_path / "runs" / "code", "mlp")
    (run / "model.py").write_text("import torch\n\nclass Net(torch.nn.Module):\n    pass\n")
    digest = hashlib.sha256((run / "model.py").read_bytes()).hexdigest()
    meta = json.loads((run / "model.json").read_text())
    write_json(run / "model.json", {**meta, "architecture": "torch:net.py:Net",
                                    "source": {"type": "torch", "file": "model.py", "name": "Net", "sha256": digest}})
    seven, _ = handwritten_digit(7)
    with client_of(tmp_path / "runs") as client:
        r = client.post("/api/classify", params={"run": "code"}, content=png(seven), headers=PICTURE)
    assert r.status_code == 400
    error = r.json()["error"]
    assert "`neuralab serve --trust-code`" in error and "`trust_code`" not in error and str(tmp_path) not in error


# --- 7. no server paths ---------------------------------------------------------------------------

def test_the_runs_folder_is_named_only_to_the_app_on_this_machine(tmp_path):
    fake_forecast_run(tmp_path / "runs" / "weather")
    with client_of(tmp_path / "runs") as local:
        assert local.get("/api/runs").json()["root"] == str((tmp_path / "runs").resolve())
    with client_of(tmp_path / "runs", hosts={"127.0.0.1", "lab.example.org"}) as shared:
        answer = shared.get("/api/runs").json()
    assert answer["root"] == "" and [r["id"] for r in answer["runs"]] == ["weather"]
    assert answer["train"] == ""  # the empty list's command, which names the folder: the page words it without


def test_a_jobs_command_names_its_run_within_the_runs_folder(tmp_path):
    from neuralab.web.jobs import Jobs

    run = fake_classifier_run(tmp_path / "runs" / "cut", "mlp")
    (run / "results.json").unlink()
    queue = Jobs(tmp_path / "runs")
    try:
        command = queue.resume("cut").as_dict()["command"]
        queue.stop("cut")
    finally:
        queue.close()
    assert command == "neuralab train --resume cut" and str(tmp_path) not in command


def test_starting_a_training_on_a_dataset_not_here_names_the_commands(tmp_path, monkeypatch):
    """The refusal named the server's cache folder and Python's `data_dir`."""
    from neuralab.data.sources import SOURCES, locate

    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "empty"))
    missing = []
    for name in SOURCES:
        try:
            locate(name)
        except NeuralabError:
            missing.append(name)
    if not missing:
        pytest.skip("every dataset is installed on this machine")
    with client_of(tmp_path / "runs") as client:
        r = client.post("/api/jobs/start", json={"model": "mlp", "data": missing[0], "epochs": 1})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error.startswith(f"data='{missing[0]}': not on this machine")
    assert f"`neuralab data fetch {missing[0]}`" in error and "--data-dir" in error
    assert "data_dir" not in error and str(tmp_path) not in error and ".cache" not in error


# --- 8. an imported run --------------------------------------------------------------------------

def test_an_imported_run_says_it_was_imported(tmp_path):
    run = fake_classifier_run(tmp_path / "runs" / "imported", "mlp")
    write_json(run / "results.json", {"best_epoch": None, "epochs_run": 0, "imported": True, "train_seconds": 0.0})
    fake_classifier_run(tmp_path / "runs" / "trained", "mlp")
    with client_of(tmp_path / "runs") as client:
        imported = client.get("/api/run", params={"run": "imported"}).json()
        trained = client.get("/api/run", params={"run": "trained"}).json()
    assert imported["imported"] is True and trained["imported"] is False


# --- 9. a forecast run's resume is refused as the others are --------------------------------------

def test_resuming_a_forecast_run_from_the_browser_is_a_409(tmp_path):
    run = fake_forecast_run(tmp_path / "runs" / "weather")
    (run / "results.json").unlink()
    with client_of(tmp_path / "runs") as client:
        r = client.post("/api/jobs/resume", json={"run": "weather"})
    assert r.status_code == 409
    assert r.json()["error"].startswith("run='weather': only image-classifier runs resume from the app")
    assert "`neuralab forecast --resume RUN`" in r.json()["error"]


# --- 5. the classifier page offers interrupted runs and says when ?run= is not offered ------------

PICKER = r"""
// common.js's runPicker on a stand-in for the DOM, with /api/runs answered from a file
const fs = require("fs"), vm = require("vm");
const [common, data, search] = process.argv.slice(2);
function element() {
  const node = { children: [], value: "", textContent: "", hidden: false, attrs: {},
    classList: { toggle(name, on) { if (name === "hidden") node.hidden = on; }, add() {}, remove() {} },
    setAttribute(k, v) { node.attrs[k] = v; if (k === "value") node.value = v; }, addEventListener() {},
    append(...c) { node.children.push(...c); },
    replaceChildren(...c) { node.children = c; node.value = c.length ? c[0].attrs.value : ""; } };
  return node;
}
const document = { createElement: element, getElementById: () => null, addEventListener() {} };
const fetch = async () => ({ ok: true, json: async () => JSON.parse(fs.readFileSync(data, "utf8")) });
const context = vm.createContext({ document, fetch, URLSearchParams, URL,
                                   window: { location: { pathname: "/classify", search } } });
vm.runInContext(fs.readFileSync(common, "utf8"), context);
const select = element(), note = element();
context.select = select; context.note = note;
vm.runInContext("runPicker(select, 'image-classifier', note, true)", context).then((mine) => {
  console.log(JSON.stringify({ offered: select.children.map((o) => [o.attrs.value, o.textContent]), chosen: select.value,
                               note: note.hidden ? "" : note.textContent }));
});
"""


def test_the_classifier_page_offers_interrupted_runs_and_says_when_the_asked_run_is_not_offered(tmp_path):
    """?run= of an interrupted run silently chose another one: only finished runs were offered."""
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("no node to run the page's script")
    root = tmp_path / "runs"
    fake_classifier_run(root / "done", "mlp")
    (fake_classifier_run(root / "cut", "mlp") / "results.json").unlink()
    (root / "cut" / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "loss": 2.3, "accuracy": 0.1}) + "\n")
    (fake_classifier_run(root / "cut0", "mlp") / "results.json").unlink()  # stopped in its first epoch: no weights
    (root / "cut0" / "model.safetensors").unlink()
    (fake_classifier_run(root / "broken", "mlp") / "model.safetensors").unlink()
    with client_of(root) as client:
        (tmp_path / "runs.json").write_text(json.dumps(client.get("/api/runs").json()))
    (tmp_path / "picker.js").write_text(PICKER)
    common = Path(__file__).resolve().parents[1] / "src" / "neuralab" / "web" / "static" / "common.js"

    def picker(search):
        ran = subprocess.run([node, str(tmp_path / "picker.js"), str(common), str(tmp_path / "runs.json"), search],
                             capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        return json.loads(ran.stdout)

    cut = picker("?run=cut")
    # neither a damaged run nor one without a finished epoch is offered
    assert [value for value, _ in cut["offered"]] == ["cut", "done"]
    assert cut["chosen"] == "cut" and "[interrupted]" in dict(cut["offered"])["cut"] and cut["note"] == ""
    broken = picker("?run=broken")
    assert broken["chosen"] == "cut"
    assert broken["note"].startswith("Run broken is not offered here (a damaged image-classifier run); showing cut")


# --- 8. the run page's header of Keras runs ---------------------------------------------------------

HEADER = r"""
// runs.js's header of a run page, for what /api/run answered (read from a file)
const fs = require("fs"), vm = require("vm");
const [common, script, data] = process.argv.slice(2);
const document = { createElement: () => ({}), getElementById: () => null, addEventListener() {} };
const context = vm.createContext({ document, URLSearchParams, window: { location: { pathname: "/runs", search: "" } } });
vm.runInContext(fs.readFileSync(common, "utf8"), context);
vm.runInContext(fs.readFileSync(script, "utf8"), context);
context.runs = JSON.parse(fs.readFileSync(data, "utf8"));
console.log(JSON.stringify(vm.runInContext("runs.map((d) => [runTitle(d), runLead(d)])", context)))
"""


def test_the_header_of_a_keras_run_names_no_data_and_an_imported_one_says_so(tmp_path):
    """A run Keras's fit logged without data read "keras:sequential on  test accuracy"; an
    imported run said nothing of being imported."""
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("no node to run the page's script")
    root = tmp_path / "runs"
    fit = fake_classifier_run(root / "fit", "mlp")
    record = json.loads((fit / "config.json").read_text())
    record["config"] = {"model": "keras:sequential", "data": None, "trained_by": "keras fit"}
    write_json(fit / "config.json", record)
    imported = fake_classifier_run(root / "imported", "mlp")
    write_json(imported / "results.json", {"best_epoch": None, "epochs_run": 0, "imported": True, "train_seconds": 0.0})
    with client_of(root) as client:
        answers = [client.get("/api/run", params={"run": run}).json() for run in ("fit", "imported", "imported")]
    answers[2]["imported"] = False  # the same run, had it been trained: the page's words come from the field
    (tmp_path / "runs.json").write_text(json.dumps(answers))
    (tmp_path / "header.js").write_text(HEADER)
    static = Path(__file__).resolve().parents[1] / "src" / "neuralab" / "web" / "static"
    ran = subprocess.run([node, str(tmp_path / "header.js"), str(static / "common.js"), str(static / "runs.js"),
                          str(tmp_path / "runs.json")], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    (fit_title, _), (imported_title, imported_lead), (_, trained_lead) = json.loads(ran.stdout)
    assert fit_title == "fit: keras:sequential"
    assert imported_title == "imported: mlp on mnist"
    assert "imported from a Keras file, not trained here" in imported_lead
    assert "imported" not in trained_lead
