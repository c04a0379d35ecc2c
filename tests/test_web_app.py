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
from neuralab.errors import NeuralabError
from neuralab.files import write_json
from neuralab.mechanics import KERNELS, conv_shape, pool2d
from neuralab.mechanics.kernels import to_uint8
from neuralab.models import build_model, count_parameters
from neuralab.models.inspect import feature_maps
from neuralab.training import load_classifier
from neuralab.training.checkpoint import save_tensors, save_weights
from neuralab.web import create_app
from neuralab.web.images import MAX_UPLOAD_BYTES, sample
from test_inspect import trained_lenet

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "neuralab" / "web" / "static" / "samples"
PICTURE = {"content-type": "application/octet-stream"}  # what the pages send a picture as


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
    write_json(folder / "model.json", {"architecture": "lstm", "hidden": [8], "horizon": 2})
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
    save_tensors(folder / "model.safetensors", {"head.weight": torch.zeros(2, 8)})
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
    ({"stride": 0}, "stride=0: must be a whole number from 1 to 8"),
    ({"stride": "two"}, "stride='two': must be a whole number"),
    ({"padding": "lots"}, "padding='lots': allowed are valid, same or a whole number from 0 to 8"),
    ({"kernel": "1 2; 3"}, "not a rectangle of numbers"),
    ({"kernel": ";".join(["1 " * 40] * 40)}, "too large"),
    ({"kernel": "x y z"}, "not a number"),
    ({"kernel": "1 " * 30 + ";" + "1 " * 30}, "larger than the padded input"),
    ({"op": "median"}, "op='median': allowed are conv, max, avg"),
    ({"op": "max", "size": 99}, "size=99: must be a whole number from 1 to 16"),
    ({"image": "sample:lena"}, "sample='lena': allowed are digit, shapes, photo"),
    ({"image": "file:/etc/passwd"}, "give sample:NAME or upload:TOKEN"),
    ({"image": "upload:0123"}, "upload it again"),
    ({"scale": "log"}, "scale='log': allowed are auto, clip, abs, minmax"),
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
    r = client.post("/api/upload", content=png_bytes(photo), headers=PICTURE)
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
    r = client.post(path, content=too_big, headers=PICTURE)
    assert r.status_code == 413 and "larger than 10 MB" in r.json()["error"]

    def chunks():  # no Content-Length: the server counts while it reads
        for _ in range(11):
            yield b"\x00" * (1024 * 1024)
    r = client.post(path, content=chunks(), headers=PICTURE)
    assert r.status_code == 413

    for width, words in ((5_000, "5000x5000 pixels is more than the 16,000,000 allowed"), (30_000, "too large")):
        bomb = png_header_only(width, width)
        assert len(bomb) < 100_000
        r = client.post(path, content=bomb, headers=PICTURE)
        assert r.status_code == 400 and words in r.json()["error"], r.text

    r = client.post(path, content=b"date,value\n2020-01-01,3\n", headers=PICTURE)
    assert r.status_code == 400 and r.json()["error"].startswith("upload: not a readable image")
    assert "/tmp" not in r.json()["error"]
    assert client.post(path, content=b"", headers=PICTURE).status_code == 400


# --- runs: the listing and what it serves -----------------------------------------------------

def test_run_listing_stays_inside_the_runs_folder(client):
    rows = {r["id"]: r for r in client.get("/api/runs").json()["runs"]}
    assert sorted(rows) == ["alias", "course/mlp", "lenet", "weather"]  # no notes/, no escape/
    lenet = rows["lenet"]
    assert (lenet["kind"], lenet["model"], lenet["data"], lenet["epochs"]) == ("image-classifier", "lenet5", "fashion-mnist", 1)
    assert 0 <= lenet["metric"]["value"] <= 1 and lenet["metric"]["name"] == "test accuracy" and lenet["created"]
    weather = rows["weather"]
    assert (weather["kind"], weather["model"], weather["data"]) == ("forecaster", "lstm", "seattle-weather temp_max")
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
    "a" * 5000,  # longer than a file name may be: OSError, once a 500
])
def test_traversal_attempts_are_refused(client, runs, run):
    for path in ("/api/run", "/api/forecast", "/api/run/file"):
        r = client.get(path, params={"run": run, "name": "summary.txt"})
        assert r.status_code == 404 and "SECRET" not in r.text, (path, run)
    r = client.post("/api/classify", params={"run": run, "source": "upload"}, content=b"x", headers=PICTURE)
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
    assert r.status_code == 400 and "Host 'attacker.example': not a name this server answers to" in r.json()["error"]
    for host in ("localhost:7860", "127.0.0.1", "[::1]:7860", "LOCALHOST."):
        assert client.get("/api/runs", headers={"host": host}).status_code == 200, host
    for host in ("", "localhost:port", "[::1", "a b", "evil.example@localhost", "localhost:99999", "localhost:0"):
        assert client.get("/api/runs", headers={"host": host}).status_code == 400, host


# --- classifier -----------------------------------------------------------------------------

def test_classify_answers_like_the_classifier(client, runs, digit):
    r = client.post("/api/classify", params={"run": "lenet", "source": "upload"}, content=digit.read_bytes(), headers=PICTURE)
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
    drawn = client.post("/api/classify", params={"run": "lenet", "source": "canvas"}, content=png_bytes(moved), headers=PICTURE).json()
    seen = png_array(drawn["input"]).astype(float)
    rows, cols = np.indices(seen.shape)
    assert abs((rows * seen).sum() / seen.sum() - 14) < 1.5 and abs((cols * seen).sum() / seen.sum() - 14) < 1.5
    ink = np.argwhere(seen > 30)
    assert (ink.max(0) - ink.min(0)).max() <= 21  # the ink fits MNIST's 20 x 20 box

    paper = png_bytes(255 - seven)  # dark ink on white paper
    auto = client.post("/api/classify", params={"run": "lenet", "source": "upload"}, content=paper, headers=PICTURE).json()
    plain = client.post("/api/classify", params={"run": "lenet", "source": "upload"}, content=png_bytes(seven), headers=PICTURE).json()
    kept = client.post("/api/classify", params={"run": "lenet", "source": "upload", "invert": "no"}, content=paper, headers=PICTURE).json()
    assert auto["input"] == plain["input"] and auto["top"] == plain["top"] and kept["input"] != plain["input"]
    r = client.post("/api/classify", params={"run": "lenet", "source": "webcam"}, content=paper, headers=PICTURE)
    assert r.status_code == 400 and "source='webcam': allowed are canvas, upload" in r.json()["error"]


def test_a_model_without_convolutions_has_no_feature_maps(client, digit):
    out = client.post("/api/classify", params={"run": "course/mlp", "source": "upload"}, content=digit.read_bytes(), headers=PICTURE).json()
    assert out["layers"] == [] and len(out["top"]) == 5


def test_every_zoo_model_at_28x28_answers_with_classes_and_feature_maps(tmp_path, digit):
    """Response times are measured by bench/bench_web.py (docs/benchmarks.md), not here."""
    root = tmp_path / "zoo"
    archs = ["mlp", "cnn", "lenet5", "alexnet", "vgg16", "googlenet"]
    for arch in archs:
        fake_classifier_run(root / arch, arch)
    with TestClient(create_app(root), base_url="http://127.0.0.1") as c:
        for arch in archs:
            out = c.post("/api/classify", params={"run": arch, "source": "upload"}, content=digit.read_bytes(), headers=PICTURE).json()
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
    assert v["plots"] == {"series": "plots/series.png"}
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
        assert "neuralab: warning: --host 0.0.0.0 makes the app reachable from other machines" in err
        assert "no folder" in err
    with pytest.raises(SystemExit) as e:
        main(["serve", "--port", "70000"])
    assert e.value.code == 2 and "allowed are 0 to 65535" in capsys.readouterr().err


def test_serve_answers_on_localhost(runs, tmp_path):
    """On a free port the system chooses (--port 0), named in the first line: a port found free
    by the caller and handed over could be taken by then."""
    import subprocess
    import sys
    import urllib.request

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "neuralab", "serve", "--runs", str(runs), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = proc.stdout.readline()
        url = re.match(r"neuralab web app on http://127\.0\.0\.1:(\d+) ", line)
        assert url and int(url[1]) != 0, line
        port = int(url[1])
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs", timeout=5) as r:
                    assert "lenet" in [x["id"] for x in json.load(r)["runs"]]
                break
            except OSError:
                assert time.time() < deadline, "the server did not answer"
                time.sleep(0.2)
        second = subprocess.run([sys.executable, "-m", "neuralab", "serve", "--runs", str(runs), "--port", str(port)],
                                capture_output=True, text=True, env=env, timeout=60)
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert f"--port {port}: cannot listen there" in second.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_port_is_held_from_the_check_until_the_server_answers_on_it():
    """Two apps started at the same moment: the port is bound once, when it is checked, so
    the second gets the one-line refusal rather than the server's own error later."""
    from neuralab.errors import NeuralabError
    from neuralab.web.app import listening_socket

    first = listening_socket("127.0.0.1", 0)
    with first, pytest.raises(NeuralabError, match="cannot listen there"):
        listening_socket("127.0.0.1", first.getsockname()[1])


# --- security: hosts, other sites, content types -------------------------------------------------

POSTS = [("/api/conv", {}, json.dumps({"image": "sample:digit"}).encode(), "application/json"),
         ("/api/upload", {}, None, "image/png"),
         ("/api/classify", {"run": "lenet", "source": "upload"}, None, "application/octet-stream")]


@pytest.fixture(scope="module")
def posts(digit):
    return [(path, params, body or digit.read_bytes(), kind) for path, params, body, kind in POSTS]


def test_other_sites_cannot_make_the_browser_post(client, posts):
    """CSRF: a page elsewhere can send 'simple' POSTs (text/plain, forms) without asking; the
    browser marks them with Origin and Sec-Fetch-Site."""
    for path, params, body, kind in posts:
        def post(**headers):
            return client.post(path, params=params, content=body, headers=headers)

        ok = post(**{"content-type": kind, "origin": "http://127.0.0.1", "sec-fetch-site": "same-origin"})
        assert ok.status_code == 200, (path, ok.text)
        assert post(**{"content-type": kind}).status_code == 200  # curl and scripts send no Origin
        for headers in ({"origin": "http://evil.example", "content-type": "text/plain"},
                        {"origin": "http://evil.example", "content-type": kind},
                        {"origin": "null", "content-type": kind},  # sandboxed frames, file: pages
                        {"origin": "http://127.0.0.1:8888", "content-type": kind},  # another local app
                        {"origin": "https://127.0.0.1", "content-type": kind},
                        {"sec-fetch-site": "cross-site", "content-type": kind},
                        {"sec-fetch-site": "same-site", "content-type": kind}):
            r = post(**headers)
            assert r.status_code == 403 and "another site" in r.json()["error"], (path, headers, r.text)
            assert "\n" not in r.json()["error"]
        for wrong in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
            r = post(**({"content-type": wrong} if wrong else {}), origin="http://127.0.0.1")
            assert r.status_code == 415 and f"{path} takes" in r.json()["error"], (path, wrong, r.text)


def test_other_sites_cannot_read_the_api_but_links_to_pages_work(client):
    cross = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors"}
    assert client.get("/api/runs", headers=cross).status_code == 403
    assert client.get("/api/run/file", params={"run": "lenet", "name": "summary.txt"}, headers=cross).status_code == 403
    link = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}
    assert client.get("/conv", headers=link).status_code == 200
    assert client.get("/api/runs", headers={"sec-fetch-site": "same-origin", "sec-fetch-mode": "cors"}).status_code == 200


def test_an_exposed_app_answers_only_to_this_machines_names(runs, digit):
    """--host 0.0.0.0 used to switch the Host check off; DNS rebinding must still fail."""
    import socket

    from neuralab.web.security import allowed_hosts, machine_names

    assert allowed_hosts("127.0.0.1") == allowed_hosts("::1") == {"localhost", "127.0.0.1", "::1"}
    exposed = allowed_hosts("0.0.0.0", ["lab-pc.example", "[fe80::1]"])
    assert "*" not in exposed and "0.0.0.0" not in exposed and socket.gethostname().lower() in exposed
    assert machine_names() <= exposed and {"lab-pc.example", "fe80::1", "localhost"} <= exposed
    assert allowed_hosts("192.168.1.5") == {"localhost", "127.0.0.1", "::1", "192.168.1.5"}

    with TestClient(create_app(runs, exposed), base_url="http://127.0.0.1") as c:
        for evil in ("evil.example", "evil.example:7860", "10.11.12.13.evil.example"):
            r = c.get("/api/runs", headers={"host": evil})
            assert r.status_code == 400 and "not a name this server answers to" in r.json()["error"]
        for good in (socket.gethostname(), f"{socket.gethostname()}:7860", "lab-pc.example:7860", "[fe80::1]:7860",
                     *sorted(machine_names())[:3]):
            host = f"[{good}]" if ":" in good and not good.startswith("[") and good.count(":") > 1 else good
            assert c.get("/api/runs", headers={"host": host}).status_code == 200, host
        # origins follow the same names: a page served as lab-pc.example may post, evil.example may not
        picture = {"content-type": "image/png", "host": "lab-pc.example:7860"}
        assert c.post("/api/upload", content=digit.read_bytes(),
                      headers={**picture, "origin": "http://lab-pc.example:7860"}).status_code == 200
        assert c.post("/api/upload", content=digit.read_bytes(),
                      headers={**picture, "origin": "http://evil.example:7860"}).status_code == 403
        rebound = {"content-type": "image/png", "host": "evil.example:7860", "origin": "http://evil.example:7860"}
        assert c.post("/api/upload", content=digit.read_bytes(), headers=rebound).status_code == 400


def test_serve_lists_the_names_it_answers_to_and_checks_allow_host(tmp_path, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--runs", str(tmp_path), "--host", "0.0.0.0", "--port", str(port),
                     "--allow-host", "lab-pc.example", "--allow-host", "192.168.7.7"]) == 2
    err = capsys.readouterr().err
    assert "note: the app answers to requests naming" in err and "lab-pc.example" in err and "192.168.7.7" in err
    assert socket.gethostname().lower() in err
    for bad in ("http://lab-pc.example", "lab-pc.example:80", "a/b", "", "*"):
        with pytest.raises(SystemExit) as e:
            main(["serve", "--allow-host", bad])
        assert e.value.code == 2 and "is not a host name or IP address" in capsys.readouterr().err


# --- pictures: only the formats on the list are ever parsed ------------------------------------

REFUSED_FORMATS = {"EPS": ".eps", "PCX": ".pcx", "ICO": ".ico", "PDF": ".pdf", "TGA": ".tga",
                   "SGI": ".sgi", "DDS": ".dds", "QOI": ".qoi"}


@pytest.fixture
def parsers_watched(monkeypatch):
    """Every Pillow parser outside the allowed formats, replaced by one that records its call."""
    from PIL import Image

    from neuralab.data.pictures import FORMATS

    Image.init()
    called = []
    for name, (factory, accept) in list(Image.OPEN.items()):
        if name not in FORMATS:
            def refuse(*args, name=name):
                called.append(name)
                raise SyntaxError(f"the {name} parser ran")
            monkeypatch.setitem(Image.OPEN, name, (refuse, accept))
    return called


@pytest.mark.parametrize("fmt", REFUSED_FORMATS)
def test_pictures_in_other_formats_are_refused_without_parsing_them(fmt, tmp_path, parsers_watched):
    from neuralab.data.pictures import read_image

    path = tmp_path / "digit.png"  # named .png, whatever it holds
    Image.fromarray(np.full((16, 16), 200, np.uint8)).convert("RGB").save(tmp_path / f"x{REFUSED_FORMATS[fmt]}", format=fmt)
    (tmp_path / f"x{REFUSED_FORMATS[fmt]}").rename(path)
    with pytest.raises(NeuralabError) as e:
        read_image(path)
    assert str(e.value).startswith(f"{path}: ") and "PNG, JPEG, GIF, BMP, TIFF, WebP or PGM/PPM" in str(e.value)
    assert parsers_watched == []


def test_an_eps_named_png_never_reaches_ghostscript(runs, client, tmp_path, parsers_watched, capsys):
    eps = tmp_path / "seven.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n0 0 moveto 28 28 lineto stroke\nshowpage\n")
    for command in (["predict", str(runs / "lenet"), str(eps)],
                    ["inspect", str(runs / "lenet"), str(eps), "--out", str(tmp_path / "out")],
                    ["conv", "apply", str(eps), "--out", str(tmp_path / "out.png")]):
        assert main(command) == 2
        assert f"{eps}: EPS format, which neuralab does not open; convert it to PNG" in capsys.readouterr().err
    for path, params in (("/api/upload", {}), ("/api/classify", {"run": "lenet"})):
        r = client.post(path, params=params, content=eps.read_bytes(), headers=PICTURE)
        assert r.status_code == 400 and r.json()["error"].startswith("upload: EPS format, which neuralab does not open")
    assert parsers_watched == [] and not (tmp_path / "out").exists() and not (tmp_path / "out.png").exists()


def test_a_typed_kernel_beyond_a_float_is_refused_by_the_command_too(digit, tmp_path, capsys):
    assert main(["conv", "apply", str(digit), "--kernel", "1e400, 1", "--out", str(tmp_path / "out.png")]) == 2
    assert "kernel: '1e400' is out of range; kernel values go from -1,000,000 to 1,000,000" in capsys.readouterr().err


def test_every_allowed_format_is_read(tmp_path):
    from neuralab.data.pictures import FORMATS, read_image

    seven = (np.indices((20, 24)).sum(0) * 9 % 256).astype(np.uint8)
    for fmt in FORMATS:
        path = tmp_path / f"seven.{fmt.lower()}"
        Image.fromarray(seven).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        got = read_image(path, "L")
        assert got.shape == (20, 24), fmt
        assert np.abs(got.astype(int) - seven).max() <= (40 if fmt == "JPEG" else 0), fmt


def test_a_folder_given_as_a_picture_is_called_a_folder(runs, tmp_path, capsys):
    from neuralab.data.pictures import read_image

    with pytest.raises(NeuralabError, match="is a folder, not a picture"):
        read_image(tmp_path)
    assert main(["predict", str(runs / "lenet"), str(tmp_path)]) == 2
    assert f"{tmp_path}: is a folder, not a picture" in capsys.readouterr().err


# --- uploads are decoded in worker threads, a few at a time ----------------------------------------

def test_pictures_are_decoded_off_the_event_loop_a_few_at_a_time(runs, digit, monkeypatch):
    """Six big uploads used to stall every other request while Pillow decoded them on the event
    loop. Here each decode waits until released: a GET must still be answered meanwhile, no
    decode may run on the event loop's thread, and no more than PICTURES_AT_ONCE run at once."""
    import asyncio
    import threading

    from neuralab.data import pictures
    from neuralab.web.app import PICTURES_AT_ONCE

    real, release, lock = pictures.decode_image, threading.Event(), threading.Lock()
    running, seen = [], {"peak": 0, "on_loop": 0, "stuck": 0}

    def slow_read(*args, **kwargs):
        try:
            asyncio.get_running_loop()
            seen["on_loop"] += 1
        except RuntimeError:  # no event loop in this thread: a worker thread
            pass
        with lock:
            running.append(1)
            seen["peak"] = max(seen["peak"], len(running))
        if not release.wait(timeout=20):
            seen["stuck"] += 1
        with lock:
            running.pop()
        return real(*args, **kwargs)

    monkeypatch.setattr(pictures, "decode_image", slow_read)
    with TestClient(create_app(runs), base_url="http://127.0.0.1") as c:
        answers = []

        def send(path, params):
            answers.append(c.post(path, params=params, content=digit.read_bytes(), headers=PICTURE).status_code)
        senders = [threading.Thread(target=send, args=(path, params)) for path, params in
                   [("/api/upload", {}), ("/api/classify", {"run": "lenet"})] * 3]
        for t in senders:
            t.start()
        deadline = time.monotonic() + 60  # a deadline to reach a state, not a speed target
        while len(running) < PICTURES_AT_ONCE and time.monotonic() < deadline:
            time.sleep(0.01)  # until the first pictures hold every slot
        assert len(running) == PICTURES_AT_ONCE
        r = c.get("/api/kernels")
        assert r.status_code == 200 and len(running) == PICTURES_AT_ONCE and not release.is_set()
        release.set()
        for t in senders:
            t.join(timeout=60)
    assert answers == [200] * 6
    assert seen == {"peak": PICTURES_AT_ONCE, "on_loop": 0, "stuck": 0}


# --- hostile input: always a 4xx with one line, never a 500 ----------------------------------

HOSTILE_JSON = [
    (b"[" * 60_000, 400, "nested too deeply"),
    (b'{"at": ' + b"[" * 10 + b"1" + b"]" * 10 + b"}", 400, "nested too deeply"),
    (b'{"stride": 1e999}', 400, "out of range"),
    (b'{"stride": NaN}', 400, "NaN is not a number"),
    (b'{"stride": -Infinity}', 400, "-Infinity is not a number"),
    (b'{"stride": ' + b"9" * 5000 + b"}", 400, "more than 15 digits"),
    (b'{"stride": 1.5}', 400, "stride=1.5: must be a whole number from 1 to 8"),
    (b'{"stride": "2"}', 400, "stride='2': must be a whole number"),
    (b'{"stride": true}', 400, "stride=True: must be a whole number"),
    (b'{"size": 2.0, "op": "max"}', 400, "size=2.0: must be a whole number"),
    (b'{"padding": 1.5}', 400, "padding=1.5: allowed are valid, same or a whole number"),
    (b'{"padding": -1}', 400, "padding=-1"),
    (b'{"at": [1.5, 2]}', 400, "at=1.5: must be a whole number"),
    (b'{"at": [1]}', 400, "at=[1]: give [row, column]"),
    (b'{"at": "3,4"}', 400, "at='3,4': give [row, column]"),
    (b'{"at": [5, 99999]}', 400, "at=[5, 99999]: give [row, column] of a pixel of the 28 x 28 input: row 0 to 27, "
                                 "column 0 to 27"),
    (b'{"kernel": "1e308 1e308; 1e308 1e308"}', 400, "kernel: '1e308' is out of range"),
    (b'{"kernel": "1e400"}', 400, "kernel: '1e400' is out of range"),
    (b'{"kernel": "1e10000000"}', 400, "kernel: '1e10000000' has too many digits"),  # 10**10000000 took 46 s
    (b'{"kernel": "' + b"1" * 30 + b'"}', 400, "has too many digits"),
    (b'{"kernel": "1/0"}', 400, "not a number"),
    (b'{"kernel": [[1, 0], [0, 1]]}', 400, "kernel=[[1, 0], [0, 1]]: must be text"),
    (b'{"kernel": null}', 400, "kernel=None: must be text"),
    (b'{"image": 7}', 400, "image=7: must be text"),
    (b'{"op": ["conv"]}', 400, "op=['conv']: allowed are conv, max, avg"),
    (b'{"turbo": 1}', 400, "turbo=1: unknown field; allowed are image, op, kernel"),
    *[(json.dumps({field: value}).encode(), 400, words) for field, value, words in [
        ("image", "sample:" + "x" * 60_000, "sample='xxx"), ("image", "upload:" + "x" * 60_000, "upload it again"),
        ("image", "x" * 60_000, "image='xxx"), ("op", "x" * 60_000, "op='xxx"), ("scale", "x" * 60_000, "scale='xxx"),
        ("padding", "x" * 60_000, "padding='xxx"), ("kernel", "x" * 60_000, "kernel: 'xxx"), ("x" * 60_000, 1, "unknown field"),
        ("at", ["x" * 60_000, 1], "at='xxx")]],
    (b'{"op": "conv", "op": "pool"}', 400, "field 'op' is given twice; give it once"),
    (b"[1, 2]", 400, "expected a JSON object"),
    (b'"conv"', 400, "expected a JSON object"),
    (b"\xff\xfe{}", 400, "not valid JSON"),
    (b'{"op": "conv",}', 400, "not valid JSON"),
    (b" " * (64 * 1024 + 1), 413, "request larger than 64 KB"),
    (b"", 400, "request: nothing was sent"),
]


@pytest.mark.parametrize("body, status, words", HOSTILE_JSON, ids=[str(i) for i in range(len(HOSTILE_JSON))])
def test_hostile_json_gets_a_one_line_4xx(client, body, status, words):
    r = client.post("/api/conv", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and words in r.json()["error"], r.text
    assert "\n" not in r.json()["error"] and len(r.json()["error"]) < 300


def test_a_body_sent_too_slowly_is_dropped(monkeypatch):
    """A client trickling its upload would hold a picture slot for as long as it liked."""
    import anyio
    from starlette.exceptions import HTTPException
    from starlette.requests import Request

    from neuralab.web import inputs

    monkeypatch.setattr(inputs, "READ_SECONDS", 0.3)
    chunks = 0

    async def trickle():
        nonlocal chunks
        chunks += 1
        await anyio.sleep(0.1)
        return {"type": "http.request", "body": b"x", "more_body": True}

    request = Request({"type": "http", "method": "POST", "headers": []}, trickle)
    with pytest.raises(HTTPException) as e:
        anyio.run(inputs.read_body, request, 1000)
    assert e.value.status_code == 408 and e.value.detail == "upload: not received within 0.3 s"
    assert 2 <= chunks <= 4


@pytest.fixture(scope="module")
def broken_runs(runs, tmp_path_factory):
    """A real forecasting run and classifier runs damaged in the ways a crash or a hand leaves them."""
    import shutil

    pipeline = pytest.importorskip("neuralab.forecasting.pipeline")
    from neuralab.forecasting.models import ModelConfig, series_train_config
    from neuralab.forecasting.windows import WindowConfig

    root = tmp_path_factory.mktemp("broken") / "runs"
    csv = root.parent / "sine.csv"
    days = np.arange(200)
    csv.write_text("date,value\n" + "".join(f"{np.datetime64('2020-01-01') + d},{10 + 5 * np.sin(d / 7):.3f}\n"
                                             for d in days))
    pipeline.run_forecast(pipeline.ForecastConfig(data=str(csv), windows=WindowConfig(lookback=14, horizon=2),
                                                  model=ModelConfig("lstm", hidden=[4]),
                                                  train=series_train_config(epochs=1), backtest_folds=1),
                          out=root / "forecast", verbose=False)
    damage = {
        "truncated": lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:300]),
        "no-weights": lambda d: (d / "model.safetensors").unlink(),
        "list-json": lambda d: (d / "model.json").write_text("[1, 2]"),
        "no-arch": lambda d: (d / "model.json").write_text(json.dumps(
            {k: v for k, v in json.loads((d / "model.json").read_text()).items() if k != "architecture"})),
        "bad-shape": lambda d: (d / "model.json").write_text(json.dumps(
            {**json.loads((d / "model.json").read_text()), "input_shape": "28x28"})),
        "garbage-json": lambda d: (d / "model.json").write_bytes(b"\x00\xff{"),
        "wrong-arch": lambda d: (d / "model.json").write_text(json.dumps(
            {**json.loads((d / "model.json").read_text()), "architecture": "vgg16"})),
    }
    for name, hurt in damage.items():
        shutil.copytree(runs / "lenet", root / name)
        hurt(root / name)
    return root


@pytest.mark.parametrize("run", ["forecast", "truncated", "no-weights", "list-json", "no-arch", "bad-shape",
                                 "garbage-json", "wrong-arch"])
def test_classify_against_a_run_that_is_no_classifier_is_a_4xx(broken_runs, digit, run):
    with TestClient(create_app(broken_runs), base_url="http://127.0.0.1") as c:
        r = c.post("/api/classify", params={"run": run}, content=digit.read_bytes(), headers=PICTURE)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error.startswith(f"{run}") and "\n" not in error and str(broken_runs) not in error, error
    assert run != "forecast" or "not an image-classifier run" in error


def test_runs_with_edited_files_are_listed_and_shown_without_a_500(runs, tmp_path, capsys):
    """Every field of a run's files may have been edited by hand or come from elsewhere: the
    listing, the run page and its live figures show what they can and leak nothing."""
    import shutil

    from neuralab.cli import main

    root = tmp_path / "runs"
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-TOKEN beside the runs folder")

    def edit_json(name, change):
        return lambda d: (d / name).write_text(json.dumps(change(json.loads((d / name).read_text()))))

    damage = {
        "results-list": lambda d: (d / "results.json").write_text("[1, 2]"),
        "results-nan": lambda d: (d / "results.json").write_text('{"best_epoch": 1, "test_loss": NaN, '
                                                                 '"test_accuracy": Infinity}'),
        "data-list": edit_json("config.json", lambda r: {**r, "data": [1], "environment": "cpu"}),
        "config-list": edit_json("config.json", lambda r: {**r, "config": [1]}),
        "metrics-nan": lambda d: (d / "metrics.jsonl").write_text('{"epoch": 1, "loss": NaN, "val_loss": -Infinity}\n'),
        "summary-link": lambda d: ((d / "summary.txt").unlink(), (d / "summary.txt").symlink_to(secret)),
        "model-garbage": lambda d: (d / "model.json").write_text("{bad"),
        "metrics-bytes": lambda d: (d / "metrics.jsonl").write_bytes(b'\xff\xfe{}\n{"epoch": 1}\n'),
        "metrics-deep": lambda d: (d / "metrics.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n"),
    }
    for name, hurt in damage.items():
        shutil.copytree(runs / "lenet", root / name, symlinks=True)
        hurt(root / name)
    shutil.copytree(runs / "lenet", Path(os.fsdecode(os.fsencode(root) + b"/odd\xffname")))  # no URL names it
    forecasts = {
        "scores-edited": edit_json("results.json", lambda r: {**r, "test": {"lstm": "x", "drift": {"mae": "y"},
                                                                           "persistence": r["test"]["persistence"]}}),
        "headline-list": edit_json("results.json", lambda r: {**r, "headline": [1], "intervals": {"coverage": [2]},
                                                              "spans": 3, "forecasters": None}),
    }
    for name, hurt in forecasts.items():
        shutil.copytree(runs / "weather", root / name)
        hurt(root / name)
    with TestClient(create_app(root), base_url="http://127.0.0.1") as c:
        for name in forecasts:
            r = c.get("/api/forecast", params={"run": name})
            assert r.status_code == 200, (name, r.text)
        assert [s["name"] for s in c.get("/api/forecast", params={"run": "scores-edited"}).json()["scores"]] == [
            "persistence"]
        listing = c.get("/api/runs")
        assert listing.status_code == 200, listing.text
        rows = {r["id"]: r for r in listing.json()["runs"]}
        assert set(rows) == set(damage) | set(forecasts) and rows["results-list"]["status"] == "damaged"
        assert rows["model-garbage"]["status"] == "damaged"  # it could be neither loaded nor used
        for name in damage:
            for url in ("/api/run", "/api/run/live"):
                r = c.get(url, params={"run": name})
                assert r.status_code == 200, (name, url, r.text)
                assert "SECRET" not in r.text
        shown = c.get("/api/run", params={"run": "summary-link"}).json()
        assert shown["summary"] == "" and "summary.txt" not in shown["files"]
        assert c.get("/api/run", params={"run": "results-nan"}).json()["test_loss"] is None
        assert c.get("/api/run/live", params={"run": "metrics-bytes"}).json()["metrics"] == [{"epoch": 1}]
        assert c.get("/api/run/live", params={"run": "metrics-nan"}).json()["metrics"] == [
            {"epoch": 1, "loss": None, "val_loss": None}]
    assert main(["runs", str(root)]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and all(name in out for name in damage)


# --- runs copied and deleted while the app reads them ----------------------------------------

def test_a_run_or_file_deleted_while_the_app_reads_it_is_a_404_or_left_out(tmp_path, monkeypatch):
    """Each step is made to lose the race: the run or file goes between the app's check and its use."""
    import shutil

    from neuralab.web import runs as web_runs

    root = tmp_path / "runs"
    for name in ("kept", "gone", "page", "vanishing"):
        fake_classifier_run(root / name, "mlp")
        (root / name / "summary.txt").write_text("the summary")
        (root / name / "report.html").write_text("<p>the report</p>")

    def then(name, after):
        original = getattr(web_runs, name)

        def wrapped(*args, **kwargs):
            result = original(*args, **kwargs)
            after(*args)
            return result
        monkeypatch.setattr(web_runs, name, wrapped)

    with TestClient(create_app(root), base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        then("find_runs", lambda root_: shutil.rmtree(root / "gone", ignore_errors=True))
        listing = c.get("/api/runs")
        assert listing.status_code == 200, listing.text
        assert sorted(r["id"] for r in listing.json()["runs"]) == ["kept", "page", "vanishing"]

        then("run_file", lambda root_, run, name: (root / run / name).unlink())
        r = c.get("/api/run/file", params={"run": "kept", "name": "report.html"})
        assert r.status_code == 404 and r.json() == {"error": "name='report.html': not in this run; give a file that "
                                                             "/api/run?run=RUN lists under files"}, r.text
        monkeypatch.undo()
        (root / "kept" / "report.html").write_text("<p>the report</p>")
        r = c.get("/api/run/file", params={"run": "kept", "name": "report.html"})
        assert r.text == "<p>the report</p>" and r.headers["content-length"] == str(len(r.text))
        assert r.headers["content-type"].startswith("text/html") and "sandbox" in r.headers["content-security-policy"]

        asked = []  # the page lists the files present, then reads the summary: it goes in between
        then("_served", lambda root_, run, name: asked.append(name) or (
            (root / run / name).unlink() if asked.count("summary.txt") == 2 and name == "summary.txt" else None))
        r = c.get("/api/run", params={"run": "page"})
        assert r.status_code == 200 and r.json()["summary"] == "", r.text
        monkeypatch.undo()

        then("describe", lambda root_, run: shutil.rmtree(root / run))
        r = c.get("/api/run", params={"run": "vanishing"})
        assert r.status_code == 404 and r.json() == {"error": "run='vanishing': no such run in the runs folder; "
                                                             "give a run that /api/runs lists"}, r.text


def test_spoiled_run_files_answer_in_one_line_never_hang_and_never_leak(tmp_path, digit):
    """A run folder from anyone: a pipe where its model is would hold every classify request; a
    loop of links broke resolving (500); files linking out of the run were read and sent."""
    import threading

    root = tmp_path / "runs"
    for name in ("good", "pipe", "loop", "leak"):
        fake_classifier_run(root / name, "mlp")
    os.unlink(root / "pipe" / "model.json")
    os.mkfifo(root / "pipe" / "model.json")
    (root / "selfloop").symlink_to("selfloop")
    (root / "loop" / "results.json").unlink()
    (root / "loop" / "results.json").symlink_to("results.json")
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"epoch": 1, "loss": 0.5, "secret": "OUTSIDE"}\n')
    (root / "leak" / "metrics.jsonl").symlink_to(secret)
    picture = digit.read_bytes()
    with TestClient(create_app(root), base_url="http://127.0.0.1") as c:
        answers = {}

        def classify(run):
            answers[run] = c.post("/api/classify", params={"run": run}, content=picture,
                                  headers={"content-type": "image/png"}).status_code
        workers = [threading.Thread(target=classify, args=(run,)) for run in ("pipe", "good")]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=30)
        assert answers == {"pipe": 400, "good": 200}
        for url, params in (("/api/run", {"run": "selfloop"}), ("/api/run/live", {"run": "selfloop"}),
                            ("/api/run/file", {"run": "loop", "name": "results.json"})):
            assert c.get(url, params=params).status_code in (400, 404), url
        assert c.get("/api/runs").status_code == 200
        assert "OUTSIDE" not in c.get("/api/run/live", params={"run": "leak"}).text
        for path in ("/api/jobs/stop", "/api/jobs/resume"):
            r = c.post(path, content=b'{"run": "\\ud800"}', headers={"content-type": "application/json"})
            assert r.status_code in (400, 404, 409), (path, r.text)


def test_resume_from_the_browser_is_refused_where_it_could_only_fail(tmp_path):
    """The job used to be accepted (201) and then fail: PyTorch code without the app's trust, a
    run that Keras's fit wrote, a module its class cannot rebuild. With trust, the job carries it."""
    from neuralab.web.jobs import JobRefused, Jobs

    def interrupted(name, source=None, keras_fit=False):
        run = fake_classifier_run(tmp_path / name, "mlp")
        (run / "results.json").unlink()
        if source is not None:
            write_json(run / "model.json", {**json.loads((run / "model.json").read_text()), "source": source})
        if keras_fit:
            record = json.loads((run / "config.json").read_text())
            record["config"]["trained_by"] = "keras fit"
            write_json(run / "config.json", record)
        return name

    code = {"type": "torch", "file": "model.py", "name": "Net", "sha256": "0" * 64}
    cases = {interrupted("code", code): "neuralab serve --trust-code",
             interrupted("fit", keras_fit=True): "continue the training in Keras",
             interrupted("object", {**code, "file": None, "sha256": None}): "cannot be rebuilt"}
    queue = Jobs(tmp_path)
    try:
        for run, words in cases.items():
            with pytest.raises(JobRefused, match=words):
                queue.resume(run)
    finally:
        queue.close()
    trusting = Jobs(tmp_path, trust_code=True)
    try:
        command = trusting.resume("code").as_dict()["command"]
        assert command.endswith("--resume code --trust-code") and str(tmp_path) not in command  # no server path
    finally:
        trusting.close()


def test_running_out_of_memory_is_refused_and_the_server_lives_on(tmp_path, monkeypatch):
    """An allocation no size check caught answers 507 with one line, not 500; the next request is served."""
    from neuralab.web import images as web_images

    photo = (np.arange(64 * 48).reshape(64, 48) % 251).astype(np.uint8)
    with TestClient(create_app(tmp_path / "runs"), base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        fit_within = web_images.fit_within
        monkeypatch.setattr(web_images, "fit_within", lambda picture: torch.empty(2**50))
        r = c.post("/api/upload", content=png_bytes(photo), headers=PICTURE)
        assert r.status_code == 507, r.text
        assert r.json() == {"error": "not enough memory: a step asked for 4194304.0 GiB; send a smaller input or "
                                     "choose a smaller run"}
        monkeypatch.setattr(web_images, "fit_within", fit_within)
        r = c.post("/api/upload", content=png_bytes(photo), headers=PICTURE)
        assert r.status_code == 200 and (r.json()["h"], r.json()["w"]) == (64, 48), r.text
