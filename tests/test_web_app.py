"""The web app's JSON API and its safety, through Starlette's test client (no browser):
the playground equals the mechanics, predictions equal the classifier, runs never leak
files from outside the runs folder, uploads are bounded, every zoo model answers."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.signal import correlate2d as scipy_correlate2d
from starlette.testclient import TestClient

from helpers import handwritten_digit
from neuralab.cli import main
from neuralab.data.sources import SOURCES
from neuralab.files import write_json
from neuralab.mechanics import KERNELS, conv_shape, pool2d
from neuralab.mechanics.kernels import to_uint8
from neuralab.models import build_model, count_parameters
from neuralab.models.inspect import feature_maps
from neuralab.training import load_classifier
from neuralab.training.checkpoint import save_weights
from neuralab.web import create_app
from neuralab.web.images import MAX_UPLOAD_BYTES, sample
from test_inspect import trained_lenet

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "neuralab" / "web" / "static" / "samples"


# --- fixtures: a trained LeNet-5 among other folders, a forecast run's files, a client -----

@pytest.fixture(scope="module")
def runs(fashion_mnist, tmp_path_factory) -> Path:
    """runs/ with a trained LeNet-5, a nested run, a forecast run, a folder that is no run,
    and symbolic links: one to a run inside, one to a run outside the folder."""
    base = tmp_path_factory.mktemp("web")
    root = base / "runs"
    trained_lenet(fashion_mnist, tmp_path_factory, root / "lenet")
    fake_classifier_run(root / "course" / "mlp", "mlp")
    fake_forecast_run(root / "weather")
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("not a run")
    fake_classifier_run(base / "outside", "lenet5")
    (base / "outside" / "summary.txt").write_text("SECRET outside the runs folder")
    (root / "escape").symlink_to(base / "outside")
    (root / "alias").symlink_to(root / "lenet")
    (root / "lenet" / "mistakes.png").unlink()
    (root / "lenet" / "mistakes.png").symlink_to(base / "outside" / "summary.txt")
    return root


@pytest.fixture(scope="module")
def client(runs):
    with TestClient(create_app(runs), base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture(scope="module")
def digit(tmp_path_factory) -> Path:
    """A real handwritten seven (scikit-learn's digits), laid out as MNIST's, as a PNG."""
    path = tmp_path_factory.mktemp("pictures") / "seven.png"
    seven, label = handwritten_digit(7)
    assert label == 7
    Image.fromarray(seven).save(path)
    return path


def fake_classifier_run(folder: Path, arch: str, shape=(1, 28, 28)) -> Path:
    """A finished run directory with untrained weights: what `neuralab train` leaves, fast."""
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    model = build_model(arch, shape, 10)
    meta = {"architecture": arch, "options": {}, "input_shape": list(shape), "num_classes": 10,
            "classes": [str(i) for i in range(10)], "preprocess": {"mean": [0.13] * shape[0], "std": [0.31] * shape[0]},
            "parameters": count_parameters(model)}
    write_json(folder / "config.json", {"kind": "image-classifier", "created": "2025-01-02T03:04:05+0000",
                                        "config": {"model": arch, "data": "mnist"}, "environment": {"device": "cpu"}})
    write_json(folder / "model.json", meta)
    write_json(folder / "results.json", {"test_accuracy": 0.1, "test_loss": 2.3, "best_epoch": 1, "epochs_run": 1})
    save_weights(folder / "model.safetensors", model, meta)
    return folder


def fake_forecast_run(folder: Path) -> Path:
    """The files a forecasting run writes (neuralab.forecasting.pipeline), horizon 2."""
    (folder / "plots").mkdir(parents=True)
    write_json(folder / "config.json", {"kind": "forecaster", "created": "2025-02-03T04:05:06+0000",
                                        "config": {"data": "seattle-weather", "target": "temp_max",
                                                   "model": {"architecture": "lstm", "hidden": [8]}}})
    test = {"lstm": {"mae": 2.0, "rmse": 2.5, "mape": 10.0, "smape": 9.0, "mase": 0.9},
            "persistence": {"mae": 2.5, "rmse": 3.0, "mape": 12.0, "smape": 11.0, "mase": 1.1},
            "drift": {"mae": 2.6, "rmse": 3.1, "mape": 12.5, "smape": 11.5, "mase": 1.2}}
    write_json(folder / "results.json", {
        "headline": {"network": "lstm", "network_mae": 2.0, "persistence_mae": 2.5, "percent_better": 20.0,
                     "beats_persistence": True, "best": "lstm", "best_mae": 2.0,
                     "sentence": "lstm beats persistence on the test span: MAE 2 vs 2.5, 20.0% better."},
        "target": "temp_max", "test": test, "forecasters": {"lstm": "lstm (LSTM 8 -> Dense)"},
        "spans": {"train": ["2012-01-01", "2014-01-01"], "test": ["2015-01-01", "2015-01-03"]},
        "epochs_run": 3})
    lines = ["split,origin,time,step,actual,lstm,persistence,drift"]
    for day in range(1, 4):
        for step in (1, 2):
            lines.append(f"test,2015-01-0{day} 00:00:00,2015-01-0{day + step} 00:00:00,{step},"
                         f"{10 + day + step},{10.5 + day},{10 + day},{10.2 + day}")
    lines += ["future,2015-01-05 00:00:00,2015-01-06 00:00:00,1,,14.5,,",
              "future,2015-01-05 00:00:00,2015-01-07 00:00:00,2,,15,,"]
    (folder / "forecast.csv").write_text("\n".join(lines) + "\n")
    Image.new("RGB", (40, 20), "white").save(folder / "plots" / "series.png")
    return folder


def png_array(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def conv(client, **params):
    return client.post("/api/conv", json=params)


# --- pages --------------------------------------------------------------------------------

@pytest.mark.parametrize("path, title", [("/", "Home"), ("/conv", "Convolution playground"),
                                         ("/classify", "Classifier"), ("/runs", "Runs"), ("/forecast", "Forecast")])
def test_pages_load_with_a_strict_content_security_policy(client, path, title):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert f"<title>{title} · neuralab</title>" in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "http://" not in r.text and "https://" not in r.text  # nothing fetched from elsewhere
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', r.text) + ["/static/samples/digit.png"]:
        assert client.get(asset).status_code == 200, asset


def test_scripts_and_styles_fetch_nothing_from_the_internet():
    web = SAMPLES.parents[1]
    for path in [*web.glob("static/*.js"), *web.glob("static/*.css"), *web.glob("pages/*.html")]:
        text = path.read_text()
        assert "https://" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", ""), path.name


# --- convolution playground ----------------------------------------------------------------

def test_convolution_equals_scipy_and_the_formula_is_filled_in(client):
    r = conv(client, image="sample:shapes", op="conv", kernel="sobel-x", stride=2, padding=1)
    assert r.status_code == 200, r.text
    out = r.json()
    image = sample("shapes").astype(float)
    expected = scipy_correlate2d(np.pad(image, 1), KERNELS["sobel-x"], mode="valid")[::2, ::2]
    np.testing.assert_array_equal(png_array(out["output"]["url"]), to_uint8(expected, "abs"))
    np.testing.assert_array_equal(png_array(out["input"]["url"]), sample("shapes"))
    assert out["size"] == f"{expected.shape[0]} x {expected.shape[1]}" == "48 x 48"
    assert out["formula"] == conv_shape((1, 96, 96), 1, 3, 2, 1).explain()
    assert "floor((96 - 3 + 2x1) / 2) + 1" in "\n".join(out["formula"])
    assert out["output"]["min"] == pytest.approx(expected.min()) and out["output"]["max"] == pytest.approx(expected.max())


def test_changing_the_kernel_changes_the_picture_and_padding_the_size(client):
    a = conv(client, image="sample:digit", kernel="sobel-x").json()
    b = conv(client, image="sample:digit", kernel="box-blur").json()
    c = conv(client, image="sample:digit", kernel="1 1 1 1 1; 1 1 1 1 1; 1 1 1 1 1; 1 1 1 1 1; 1 1 1 1 1").json()
    d = conv(client, image="sample:digit", kernel="sobel-x", padding="same").json()
    assert a["output"]["url"] != b["output"]["url"] and a["size"] == b["size"] == "26 x 26"
    assert c["size"] == "24 x 24" and c["kernel_name"] == "custom" and d["size"] == "28 x 28"


@pytest.mark.parametrize("params", [
    {"op": "conv", "kernel": "sobel-y", "stride": 2, "padding": "same"},
    {"op": "conv", "kernel": "1/9 1/9 1/9; 1/9 1/9 1/9; 1/9 1/9 1/9", "stride": 1, "padding": 2},
    {"op": "conv", "kernel": "1 0; 0 -1", "stride": 3, "padding": "valid"},
    {"op": "max", "size": 2, "stride": 2},
    {"op": "avg", "size": 3, "stride": 1},
])
def test_every_window_of_the_step_view_gives_its_output_cell(client, params):
    out = conv(client, image="sample:digit", **params).json()
    step = out["step"]
    crop, cells = np.array(step["crop"]), np.array(step["out"])
    kh, kw = step["window"]
    s = step["stride"]
    for i in range(cells.shape[0]):
        for j in range(cells.shape[1]):
            window = crop[i * s:i * s + kh, j * s:j * s + kw]
            value = {"conv": lambda w: (w * np.array(out["kernel"])).sum(), "max": np.max, "avg": np.mean}[params["op"]](window)
            assert value == pytest.approx(cells[i, j], abs=1e-9)
    # the crop is where it says it is: its cells inside the picture are the picture's pixels
    image = sample("digit").astype(float)
    r0, c0 = step["crop_origin"]
    for i, j in np.ndindex(crop.shape):
        inside = 0 <= r0 + i < 28 and 0 <= c0 + j < 28
        assert crop[i, j] == (image[r0 + i, c0 + j] if inside else 0)


def test_pooling_equals_the_mechanics(client):
    out = conv(client, image="sample:photo", op="max", size=3, stride=2).json()
    image = sample("photo").astype(float)
    expected = pool2d(image[None, None], 3, 2, "max")[0, 0]
    np.testing.assert_array_equal(png_array(out["output"]["url"]), to_uint8(expected))
    assert out["size"] == f"{expected.shape[0]} x {expected.shape[1]}"
    assert "pooling has no weights" in out["formula"][0]
    assert not any(line.startswith("parameters") for line in out["formula"])


def test_the_step_crop_follows_a_click(client):
    out = conv(client, image="sample:photo", kernel="sharpen", at=[10, 200]).json()
    r0, c0 = out["step"]["crop_origin"]
    rows, cols = len(out["step"]["crop"]), len(out["step"]["crop"][0])
    assert r0 <= 10 < r0 + rows and c0 <= 200 < c0 + cols


@pytest.mark.parametrize("params, words", [
    ({"stride": 0}, "stride 0: allowed are 1 to 8"),
    ({"stride": "two"}, "stride 'two'"),
    ({"padding": "lots"}, "padding 'lots'"),
    ({"kernel": "1 2; 3"}, "not a rectangle of numbers"),
    ({"kernel": ";".join(["1 " * 40] * 40)}, "too large"),
    ({"kernel": "x y z"}, "not a number"),
    ({"kernel": "1 " * 30 + ";" + "1 " * 30}, "larger than the padded input"),
    ({"op": "median"}, "operation 'median'"),
    ({"op": "max", "size": 99}, "pool size 99"),
    ({"image": "sample:lena"}, "sample 'lena'"),
    ({"image": "file:/etc/passwd"}, "give sample:NAME or upload:TOKEN"),
    ({"image": "upload:0123"}, "upload it again"),
    ({"scale": "log"}, "scale 'log'"),
])
def test_bad_settings_get_a_one_line_message_naming_the_option(client, params, words):
    r = conv(client, **{"image": "sample:digit", **params})
    assert r.status_code == 400 and words in r.json()["error"], r.text
    assert "\n" not in r.json()["error"]


def test_a_typed_kernel_is_never_read_from_a_file(client, tmp_path, monkeypatch):
    (tmp_path / "kernel.txt").write_text("1 0 -1\n2 0 -2\n1 0 -1\n")
    monkeypatch.chdir(tmp_path)  # get_kernel would open it; the playground must not
    for spec in ("kernel.txt", str(tmp_path / "kernel.txt"), "/etc/hostname"):
        r = conv(client, image="sample:digit", kernel=spec)
        assert r.status_code == 400 and "not a number" in r.json()["error"]


def test_an_uploaded_picture_is_kept_gray_and_small(client):
    photo = (np.random.default_rng(0).random((600, 450, 3)) * 255).astype(np.uint8)
    r = client.post("/api/upload", content=png_bytes(photo))
    assert r.status_code == 200, r.text
    up = r.json()
    assert (up["h"], up["w"]) == (256, 192)
    out = conv(client, image=f"upload:{up['token']}", kernel="identity").json()
    assert png_array(out["input"]["url"]).shape == (256, 192) and out["size"] == "254 x 190"


# --- uploads: size and pixel limits -----------------------------------------------------------

def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG that claims width x height pixels but holds a few kilobytes: a decompression bomb."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = zlib.compress(b"\x00" * (1 + width // 8) * 64)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


@pytest.mark.parametrize("path", ["/api/upload", "/api/classify?run=lenet&source=upload"])
def test_uploads_are_bounded_in_bytes_and_pixels(client, path):
    too_big = b"\x89PNG" + b"\x00" * MAX_UPLOAD_BYTES
    r = client.post(path, content=too_big)
    assert r.status_code == 413 and "larger than 10 MB" in r.json()["error"]

    def chunks():  # no Content-Length: the server counts while it reads
        for _ in range(11):
            yield b"\x00" * (1024 * 1024)
    r = client.post(path, content=chunks())
    assert r.status_code == 413

    for width, words in ((5_000, "5000x5000 pixels is more than the 16,000,000 allowed"), (30_000, "too large")):
        bomb = png_header_only(width, width)
        assert len(bomb) < 100_000
        r = client.post(path, content=bomb)
        assert r.status_code == 400 and words in r.json()["error"], r.text

    r = client.post(path, content=b"date,value\n2020-01-01,3\n")
    assert r.status_code == 400 and r.json()["error"].startswith("upload: not a readable image")
    assert "/tmp" not in r.json()["error"]
    assert client.post(path, content=b"").status_code == 400


# --- runs: the listing and what it serves -----------------------------------------------------

def test_run_listing_stays_inside_the_runs_folder(client):
    rows = {r["id"]: r for r in client.get("/api/runs").json()["runs"]}
    assert sorted(rows) == ["alias", "course/mlp", "lenet", "weather"]  # no notes/, no escape/
    lenet = rows["lenet"]
    assert (lenet["kind"], lenet["model"], lenet["data"], lenet["epochs"]) == ("classifier", "lenet5", "fashion-mnist", 1)
    assert 0 <= lenet["metric"]["value"] <= 1 and lenet["metric"]["name"] == "test accuracy" and lenet["created"]
    weather = rows["weather"]
    assert (weather["kind"], weather["model"], weather["data"]) == ("forecast", "lstm", "seattle-weather temp_max")
    assert weather["metric"] == {"name": "test MAE", "value": 2.0, "note": "20.0% better than persistence"}


def test_a_run_opens_with_its_files(client, runs):
    d = client.get("/api/run", params={"run": "lenet"}).json()
    assert "Conv2d" in d["summary"] and d["best_epoch"] == 1 and d["classes"] == list(SOURCES["fashion-mnist"].classes)
    assert {"learning_curves.png", "confusion_matrix.png", "summary.txt", "report.html"} <= set(d["files"])
    r = client.get("/api/run/file", params={"run": "lenet", "name": "learning_curves.png"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == (runs / "lenet" / "learning_curves.png").read_bytes()
    report = client.get("/api/run/file", params={"run": "lenet", "name": "report.html"})
    assert report.status_code == 200 and "sandbox" in report.headers["content-security-policy"]
    assert client.get("/api/run/file", params={"run": "course/mlp", "name": "results.json"}).json()["best_epoch"] == 1


@pytest.mark.parametrize("run", [
    "../outside", "escape", "lenet/../../outside", "/etc", "//etc", "lenet/checkpoints", "notes", "", ".",
    "lenet/..", "..", "%2e%2e/outside", "..%2foutside", "lenet\\..\\..\\outside", "lenet\x00", "a/b/c/d",
])
def test_traversal_attempts_are_refused(client, runs, run):
    for path in ("/api/run", "/api/forecast", "/api/run/file"):
        r = client.get(path, params={"run": run, "name": "summary.txt"})
        assert r.status_code == 404 and "SECRET" not in r.text, (path, run)
    r = client.post("/api/classify", params={"run": run, "source": "upload"}, content=b"x")
    assert r.status_code == 404


@pytest.mark.parametrize("url", [
    "/api/run?run=%2e%2e%2foutside", "/api/run?run=%2E%2E/outside", "/api/run?run=..%2F..%2Fetc",
    "/api/run/file?run=%2e%2e/outside&name=summary.txt", "/api/run/file?run=lenet&name=%2e%2e%2f..%2foutside%2fsummary.txt",
    "/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/%2e%2e%2f%2e%2e%2fweb%2fapp.py",
    "/static/samples/../../app.py", "/api/run/file?run=lenet&name=/etc/passwd",
])
def test_encoded_traversals_are_refused(client, url):
    r = client.get(url)
    assert r.status_code == 404, (url, r.status_code)
    assert "SECRET" not in r.text and "def create_app" not in r.text


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "model.json", "metrics.jsonl",
                                  "checkpoints/last.safetensors", "../outside/summary.txt", "mistakes.png", "plots/x.png"])
def test_only_whitelisted_files_are_served(client, name):
    # mistakes.png of this run is a symbolic link to a file outside the runs folder
    r = client.get("/api/run/file", params={"run": "lenet", "name": name})
    assert r.status_code == 404 and "SECRET" not in r.text


def test_requests_must_name_this_machine(client):
    r = client.get("/api/runs", headers={"host": "attacker.example"})
    assert r.status_code == 400
    assert client.get("/api/runs", headers={"host": "localhost:7860"}).status_code == 200


# --- classifier -----------------------------------------------------------------------------

def test_classify_answers_like_the_classifier(client, runs, digit):
    r = client.post("/api/classify", params={"run": "lenet", "source": "upload"}, content=digit.read_bytes())
    assert r.status_code == 200, r.text
    out = r.json()
    clf = load_classifier(runs / "lenet")
    pixels = clf.load_images([digit])
    probs = clf.predict_proba(pixels)[0]
    top = clf.top_k(probs[None], 5)[0]
    assert [t["class"] for t in out["top"]] == [c for c, _ in top]
    np.testing.assert_allclose([t["probability"] for t in out["top"]], [p for _, p in top], atol=1e-6)
    np.testing.assert_array_equal(png_array(out["input"]), pixels[0, 0])
    layers = feature_maps(clf.model, clf.preprocess(pixels))
    assert [(x["name"], x["kind"], tuple(x["shape"])) for x in out["layers"]] == [
        (fm.name, fm.kind, fm.maps.shape) for fm in layers]
    first = layers[0].maps
    assert len(out["layers"][0]["maps"]) == 6 and not out["layers"][0]["vector"]
    m0 = png_array(out["layers"][0]["maps"][0]).astype(float)
    np.testing.assert_allclose(m0, (first[0] - first[0].min()) / np.ptp(first[0]) * 255, atol=0.51)
    last = out["layers"][-1]
    assert last["vector"] and png_array(last["maps"][0]).shape == (10, 12)
    assert len(out["layers"][2]["maps"]) == 16


def test_a_drawing_is_centred_like_mnist_and_paper_drawings_inverted(client, digit):
    seven = np.asarray(Image.open(digit))
    big = np.asarray(Image.fromarray(seven).resize((280, 280), Image.Resampling.NEAREST))
    moved = np.zeros_like(big)
    moved[:200, 80:] = big[40:240, :200]  # the drawing off-centre on the canvas
    drawn = client.post("/api/classify", params={"run": "lenet", "source": "canvas"}, content=png_bytes(moved)).json()
    seen = png_array(drawn["input"]).astype(float)
    rows, cols = np.indices(seen.shape)
    assert abs((rows * seen).sum() / seen.sum() - 14) < 1.5 and abs((cols * seen).sum() / seen.sum() - 14) < 1.5
    ink = np.argwhere(seen > 30)
    assert (ink.max(0) - ink.min(0)).max() <= 21  # the ink fits MNIST's 20 x 20 box

    paper = png_bytes(255 - seven)  # dark ink on white paper
    auto = client.post("/api/classify", params={"run": "lenet", "source": "upload"}, content=paper).json()
    plain = client.post("/api/classify", params={"run": "lenet", "source": "upload"}, content=png_bytes(seven)).json()
    kept = client.post("/api/classify", params={"run": "lenet", "source": "upload", "invert": "no"}, content=paper).json()
    assert auto["input"] == plain["input"] and auto["top"] == plain["top"] and kept["input"] != plain["input"]
    r = client.post("/api/classify", params={"run": "lenet", "source": "webcam"}, content=paper)
    assert r.status_code == 400 and "source 'webcam'" in r.json()["error"]


def test_a_model_without_convolutions_has_no_feature_maps(client, digit):
    out = client.post("/api/classify", params={"run": "course/mlp", "source": "upload"}, content=digit.read_bytes()).json()
    assert out["layers"] == [] and len(out["top"]) == 5


def test_every_zoo_model_at_28x28_answers_with_classes_and_feature_maps(tmp_path, digit):
    """Response times are measured by bench/bench_web.py (docs/benchmarks.md), not here."""
    root = tmp_path / "zoo"
    archs = ["mlp", "cnn", "lenet5", "alexnet", "vgg16", "googlenet"]
    for arch in archs:
        fake_classifier_run(root / arch, arch)
    with TestClient(create_app(root), base_url="http://127.0.0.1") as c:
        for arch in archs:
            out = c.post("/api/classify", params={"run": arch, "source": "upload"}, content=digit.read_bytes()).json()
            clf = load_classifier(root / arch)
            pixels = clf.load_images([digit])
            top = clf.top_k(clf.predict_proba(pixels), 5)[0]
            assert [t["class"] for t in out["top"]] == [c for c, _ in top], arch
            assert [x["name"] for x in out["layers"]] == [fm.name for fm in feature_maps(clf.model, clf.preprocess(pixels))]
            assert len(out["layers"]) >= {"mlp": 0, "lenet5": 4, "googlenet": 60}.get(arch, 3), arch


# --- forecast --------------------------------------------------------------------------------

def test_forecast_view_reads_the_run_files(client):
    v = client.get("/api/forecast", params={"run": "weather"}).json()
    assert v["target"] == "temp_max" and v["headline"]["beats_persistence"]
    assert [s["name"] for s in v["scores"]] == ["lstm", "persistence", "drift"]
    assert v["scores"][0]["network"] and v["scores"][0]["vs_persistence"] == pytest.approx(20.0)
    assert v["forecasters"] == ["lstm", "persistence", "drift"] and sorted(v["steps"]) == ["1", "2"]
    one = v["steps"]["1"]
    assert one["time"] == ["2015-01-02 00:00:00", "2015-01-03 00:00:00", "2015-01-04 00:00:00"]
    assert one["actual"] == [12.0, 13.0, 14.0] and one["lstm"] == [11.5, 12.5, 13.5]
    assert v["future"] == {"time": ["2015-01-06 00:00:00", "2015-01-07 00:00:00"], "lstm": [14.5, 15.0]}
    assert v["plots"] == ["series"]
    r = client.get("/api/forecast", params={"run": "lenet"})
    assert r.status_code == 404


# --- the command ------------------------------------------------------------------------------

def test_serve_refuses_a_busy_port_and_warns_off_localhost(tmp_path, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--runs", str(tmp_path), "--port", str(port)]) == 2
        err = capsys.readouterr().err
        assert f"--port {port}: cannot listen there" in err and "warning" not in err
        assert main(["serve", "--runs", str(tmp_path / "none"), "--host", "0.0.0.0", "--port", str(port)]) == 2
        err = capsys.readouterr().err
        assert "warning: --host 0.0.0.0 makes the app reachable from other machines" in err
        assert "no folder" in err
    with pytest.raises(SystemExit) as e:
        main(["serve", "--port", "70000"])
    assert e.value.code == 2 and "allowed are 1 to 65535" in capsys.readouterr().err


def test_serve_answers_on_localhost(runs, tmp_path):
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "neuralab", "serve", "--runs", str(runs), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line, line
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs", timeout=5) as r:
                    assert "lenet" in [x["id"] for x in json.load(r)["runs"]]
                break
            except OSError:
                assert time.time() < deadline, "the server did not answer"
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_hosts_answered_follow_the_bind_address():
    from neuralab.web.app import allowed_hosts, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    assert allowed_hosts("127.0.0.1") == allowed_hosts("::1") == ["127.0.0.1", "localhost", "::1", "[::1]"]
    assert allowed_hosts("0.0.0.0") == allowed_hosts("::") == ["*"]
    assert allowed_hosts("192.168.1.5")[-1] == "192.168.1.5" and allowed_hosts("fe80::1")[-1] == "[fe80::1]"
