"""End to end: the real app on a free localhost port, driven by headless Chromium through
Playwright. Screenshots go to test-artifacts/web/. In CI (CI=true) a missing Chromium or
Playwright fails these tests; elsewhere it skips them (scripts/ci-system-deps.sh installs Chromium)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the browser fixture reports it: a failure in CI, a skip elsewhere
    expect = sync_playwright = None

from helpers import handwritten_digit, idx_subset
from neuralab.data.sources import SOURCES
from neuralab.training import load_classifier
from neuralab.web import make_server
from test_inspect import trained_lenet

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "web"
CHROMIUM = Path(os.environ.get("NEURALAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 15_000
if expect is not None:  # a page's timeout does not reach expect(), whose own is 5 s: too short on a loaded machine
    expect.set_options(timeout=TIMEOUT_MS)


def missing(what: str):
    """In CI a missing browser is a failure, not a skip; on a laptop it skips."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} (CI must run the browser tests)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    """A real handwritten two (scikit-learn's digits), laid out as MNIST's, as a PNG."""
    folder = tmp_path_factory.mktemp("pictures")
    two, label = handwritten_digit(2)
    assert label == 2
    Image.fromarray(two).save(folder / "two.png")
    return folder


@pytest.fixture(scope="module")
def runs(fashion_mnist, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser") / "runs"
    trained_lenet(fashion_mnist, tmp_path_factory, root / "lenet")
    return root


@pytest.fixture(scope="module")
def forecast_run(runs, tmp_path_factory) -> str:
    """A real forecasting run (a small LSTM next to the baselines on a noisy sine), horizon 2."""
    pipeline = pytest.importorskip("neuralab.forecasting.pipeline")
    from neuralab.forecasting.models import ModelConfig, series_train_config
    from neuralab.forecasting.windows import WindowConfig

    csv = tmp_path_factory.mktemp("series") / "sine.csv"
    days = np.arange(240)
    values = 10 + 5 * np.sin(days / 7) + np.random.default_rng(0).normal(0, 0.3, len(days))
    csv.write_text("date,value\n" + "".join(
        f"{np.datetime64('2020-01-01') + d},{v:.3f}\n" for d, v in zip(days, values)))
    config = pipeline.ForecastConfig(data=str(csv), windows=WindowConfig(lookback=14, horizon=2),
                                     model=ModelConfig("lstm", hidden=[4]), train=series_train_config(epochs=1),
                                     backtest_folds=1)
    pipeline.run_forecast(config, out=runs / "sine", verbose=False)
    return "sine"


@contextlib.contextmanager
def serving(root: Path):
    """The app under uvicorn in a thread, on a free port of 127.0.0.1; its URL."""
    srv = make_server(root, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started:
        assert thread.is_alive() and time.time() < deadline, "the server did not start"
        time.sleep(0.05)
    port = srv.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=60)


@pytest.fixture(scope="module")
def server(runs):
    with serving(runs) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if sync_playwright is None:
        missing("Playwright is not installed: pip install -e .[test]")
    if not CHROMIUM.exists():
        missing(f"no Chromium at {CHROMIUM}: run scripts/ci-system-deps.sh (Debian packages chromium, chromium-driver)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@contextlib.contextmanager
def watched_page(browser, base_url: str, **options):
    """A page of the app at ``base_url``; uncaught script errors fail the test."""
    context = browser.new_context(base_url=base_url, **options)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, errors


@pytest.fixture
def page(browser, server):
    """A 1600 x 1000 page (a projector's size)."""
    with watched_page(browser, server, viewport={"width": 1600, "height": 1000}) as pg:
        yield pg


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def changed(page, selector: str, old: str) -> str:
    """Wait until the image's src differs from ``old``; return the new one. (Playwright's
    wait_for_function evaluates strings, which the app's Content-Security-Policy forbids.)"""
    expect(page.locator(selector)).not_to_have_attribute("src", old)
    return page.get_attribute(selector, "src")


def text_becomes(page, selector: str, text: str) -> None:
    expect(page.locator(selector)).to_have_text(text)


@pytest.mark.parametrize("path, heading", [("/", "neuralab: deep learning you can see"),
                                           ("/conv", "Convolution playground"), ("/classify", "Classifier"),
                                           ("/runs", "Runs"), ("/forecast", "Forecast")])
# The browser enforces the app's Content-Security-Policy in every test: no inline script or
# style may sneak into the pages.
def test_every_page_loads(page, path, heading):
    page.goto(path)
    assert page.locator("h1").inner_text() == heading
    assert page.locator("header nav a").count() == 4
    page.wait_for_load_state("networkidle")
    assert page.locator("#error").is_hidden()
    shot(page, f"page{path.replace('/', '-') if path != '/' else '-home'}")


def test_changing_the_kernel_changes_the_output_and_its_size(page):
    page.goto("/conv")
    text_becomes(page, "#output-size", "26 x 26")
    first = page.get_attribute("#output-img", "src")
    assert "H_out = floor((H_in - K + 2P) / S) + 1" in page.locator("#formula").inner_text()

    page.select_option("#kernel-name", "box-blur")
    blurred = changed(page, "#output-img", first)
    assert page.locator("#output-size").inner_text() == "26 x 26"
    assert page.locator("#kernel-text").input_value() == "1/9 1/9 1/9\n1/9 1/9 1/9\n1/9 1/9 1/9"

    page.fill("#kernel-text", "1 1 1 1 1\n1 1 1 1 1\n1 1 1 1 1\n1 1 1 1 1\n1 1 1 1 1")
    text_becomes(page, "#output-size", "24 x 24")
    assert page.get_attribute("#output-img", "src") != blurred
    assert page.locator("#kernel-name").input_value() == "custom"
    assert "floor((28 - 5 + 2x0) / 1) + 1 = floor(23/1) + 1 = 24" in page.locator("#formula").inner_text()

    page.select_option("#kernel-name", "sobel-x")
    page.fill("#stride", "2")
    page.dispatch_event("#stride", "change")
    text_becomes(page, "#output-size", "13 x 13")
    page.select_option("#padding", "same")
    text_becomes(page, "#output-size", "14 x 14")
    assert "ceil(28/2) = 14" in page.locator("#formula").inner_text()
    shot(page, "conv-kernel-changed")


def test_stepping_shows_each_dot_product(page):
    page.goto("/conv")
    page.wait_for_selector("#step-sum")
    for _ in range(5):
        # the sum written out equals the output cell that the server computed for this window
        assert page.locator("#step-sum").inner_text() == page.locator("#out-grid td.now").inner_text()
        terms = page.locator("#step-equation").inner_text().split(" = ")[0].split(" + ")
        assert len(terms) == 9 and all("×" in t for t in terms)
        assert page.locator("#crop-grid td.in-window").count() == 9
        before = page.locator("#step-count").inner_text()
        page.click("#step-next")
        assert page.locator("#step-count").inner_text() != before
    assert page.locator("#out-grid td.done").count() == 5
    count = page.locator("#step-count")
    before = count.inner_text()
    page.click("#step-play")
    expect(count).not_to_have_text(before)  # Play steps on by itself (a window each 0.8 s: which one is the clock's)
    page.click("#step-play")
    paused = count.inner_text()
    page.wait_for_timeout(1_000)
    assert count.inner_text() == paused  # and Pause stops it
    shot(page, "conv-step-by-step")

    page.select_option("#op", "max")
    text_becomes(page, "#output-size", "14 x 14")  # 2 x 2 windows, stride 2
    assert page.locator("#stride").input_value() == "2"
    assert page.locator("#step-equation").inner_text().startswith("max(")
    assert page.locator("#step-sum").inner_text() == page.locator("#out-grid td.now").inner_text()
    page.select_option("#op", "avg")
    page.fill("#size", "4")
    page.dispatch_event("#size", "change")
    text_becomes(page, "#output-size", "7 x 7")  # the stride follows the window: 4
    assert page.locator("#step-equation").inner_text().split(" = ")[0].endswith("/ 16")
    shot(page, "conv-pooling")


def test_an_uploaded_picture_enters_the_playground(page, pictures):
    page.goto("/conv")
    page.wait_for_selector("#step-sum")
    photo = pictures / "photo.png"
    Image.fromarray((np.indices((120, 90)).sum(0) % 256).astype(np.uint8)).save(photo)
    page.set_input_files("#upload", str(photo))
    text_becomes(page, "#input-size", "120 x 90")
    assert page.locator("#picture option:checked").inner_text() == "your picture: photo.png"
    assert page.locator("#output-size").inner_text() == "118 x 88"


def test_a_bad_kernel_shows_a_one_line_error(page):
    page.goto("/conv")
    page.wait_for_selector("#step-sum")
    page.fill("#kernel-text", "1 2\n3")
    page.wait_for_selector("#error:not(.hidden)")
    assert "not a rectangle of numbers" in page.locator("#error").inner_text()
    page.fill("#kernel-text", "1 2\n3 4")
    page.wait_for_selector("#error.hidden", state="attached")
    assert page.locator("#output-size").inner_text() == "27 x 27"


def test_drawing_a_digit_gives_a_prediction(page):
    page.goto("/classify")
    expect(page.locator("#run")).to_have_value("lenet")
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / 280
    strokes = [(90, 60), (200, 60), (190, 100), (150, 170), (120, 240)]  # a 7
    page.mouse.move(box["x"] + strokes[0][0] * scale, box["y"] + strokes[0][1] * scale)
    page.mouse.down()
    for x, y in strokes[1:]:
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=6)
    page.mouse.up()
    page.wait_for_selector("#bars .label")
    labels = page.locator("#bars .label").all_inner_texts()
    percents = [float(t.rstrip("%")) for t in page.locator("#bars .pct").all_inner_texts()]
    assert len(labels) == 5 and set(labels) <= set(SOURCES["fashion-mnist"].classes)
    assert percents == sorted(percents, reverse=True) and 0 < sum(percents) <= 100.5
    assert page.locator("details.layer").count() == 5
    assert page.locator("details.layer").first.locator("img").count() == 6
    assert page.eval_on_selector("#seen", "n => n.naturalWidth") == 28
    shot(page, "classify-drawn")
    page.click("#clear")
    assert page.eval_on_selector("#pad", "c => c.getContext('2d').getImageData(0, 0, 280, 280).data.some("
                                 "(v, i) => i % 4 !== 3 && v !== 0)") is False


def test_uploading_a_digit_predicts_what_the_classifier_predicts(page, runs, pictures):
    clf = load_classifier(runs / "lenet")
    expected = clf.top_k(clf.predict_proba(clf.load_images([pictures / "two.png"])), 1)[0][0]
    held = []  # the run list's answer, held back: the picture arrives before the page knows its runs
    page.route("**/api/runs", lambda route: held.append(route))
    page.goto("/classify?run=lenet")
    page.set_input_files("#upload", str(pictures / "two.png"))
    for _ in range(500):  # 10 s at most
        if held:
            break
        page.wait_for_timeout(20)
    assert held, "the page never asked for its run list"
    held[0].continue_()
    page.wait_for_selector("#bars .label")
    assert page.locator("#bars").get_attribute("data-top") == expected[0]
    assert page.locator("#bars .pct").first.inner_text() == f"{expected[1] * 100:.1f}%"
    shot(page, "classify-uploaded")


def test_opening_a_run_shows_its_curves_matrix_and_summary(page):
    page.goto("/runs")
    row = page.locator("#runs tbody tr[data-run='lenet']")
    row.wait_for()
    cells = row.locator("td").all_inner_texts()
    assert cells[1:5] == ["image-classifier", "lenet5", "fashion-mnist", "finished"] and cells[5].startswith("test accuracy ")
    shot(page, "runs-list")
    row.click()
    page.wait_for_url("**/runs?run=lenet")
    page.wait_for_selector("#detail:not(.hidden)")
    assert page.locator("#detail-title").inner_text() == "lenet: lenet5 on fashion-mnist"
    page.wait_for_load_state("networkidle")
    widths = page.eval_on_selector_all("#figures img", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == 3 and all(w > 100 for w in widths)
    assert "Conv2d" in page.locator("#summary").inner_text()
    shot(page, "runs-detail")
    report = page.context.request.get(page.locator("#report-link").get_attribute("href"))
    assert report.ok and "neuralab run lenet" in report.text()


def test_the_forecast_page_draws_forecast_against_actual(page, forecast_run):
    page.goto("/forecast")
    page.wait_for_selector("#view:not(.hidden)")
    assert page.locator("#run").input_value() == forecast_run
    assert "persistence" in page.locator("#verdict").inner_text()
    names = page.locator("#scores tbody tr td:first-child").all_inner_texts()
    assert any(n.endswith("(network)") for n in names) and "persistence" in names and len(names) >= 4
    paths = page.locator("#chart path").count()
    assert paths >= 3  # actual, the network, persistence
    page.locator("#toggles input[value='drift']").check()
    expect(page.locator("#chart path")).to_have_count(paths + 1)
    assert page.locator("#step option").count() == 2
    page.select_option("#step", "2")
    page.wait_for_selector("#chart path[data-name='actual']")
    assert page.locator("#plots img").count() >= 2
    shot(page, "forecast")


def test_a_forecast_of_several_series_shows_the_chosen_series_own_verdict(page, runs, tmp_path_factory):
    """A run on two series in different units: choosing the second brings its own verdict
    beside the pooled one, and its own scores table, with no script error."""
    pipeline = pytest.importorskip("neuralab.forecasting.pipeline")
    from neuralab.forecasting.models import ModelConfig, series_train_config
    from neuralab.forecasting.windows import WindowConfig

    csv = tmp_path_factory.mktemp("two") / "two.csv"
    days = np.arange(200)
    noise = np.random.default_rng(1).normal(0, 0.3, (2, len(days)))
    rows = [f"{np.datetime64('2020-01-01') + d},{name},{level + scale * np.sin(d / 7) + n:.3f}\n"
            for name, level, scale, series_noise in (("north", 10, 5, noise[0]), ("south", 5000, 800, noise[1]))
            for d, n in zip(days, series_noise)]
    csv.write_text("date,id,value\n" + "".join(rows))
    config = pipeline.ForecastConfig(data=str(csv), target="value", series_column="id", backtest_folds=1,
                                     windows=WindowConfig(lookback=14), model=ModelConfig("lstm", hidden=[4]),
                                     train=series_train_config(epochs=1))
    pipeline.run_forecast(config, out=runs / "two", verbose=False)
    page.goto("/forecast")
    page.wait_for_selector("#view:not(.hidden)")
    page.select_option("#run", "two")
    expect(page.locator("#series")).to_be_visible()
    page.select_option("#series", "south")
    expect(page.locator("#series-verdict")).to_contain_text("Series south alone:")
    assert page.locator("#verdict").inner_text().startswith("Over every series:")
    heads = page.locator("#scores thead th").all_text_contents()
    assert "pooled MASE" in heads, heads
    shot(page, "forecast-two-series")


def test_a_form_on_another_site_cannot_post_to_the_app(page, server, tmp_path):
    """CSRF end to end: a page on another origin submits a text/plain form to the API (the kind
    of POST a browser sends without asking); Chromium labels it and the app refuses it."""
    import functools
    import http.server

    (tmp_path / "index.html").write_text(
        f'<form method="post" enctype="text/plain" action="{server}/api/conv">'
        '<input name=\'{"image": "sample:digit", "x": "\' value=\'"}\'></form>')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as other:
        threading.Thread(target=other.serve_forever, daemon=True).start()
        try:
            page.goto(f"http://localhost:{other.server_address[1]}/index.html")  # another site than 127.0.0.1
            page.locator("form").evaluate("form => form.submit()")
            page.wait_for_url(f"{server}/api/conv")
            text = page.locator("body").inner_text()
        finally:
            other.shutdown()
    assert "refused: the request comes from another site" in text, text


def test_a_training_started_from_the_page_grows_stops_resumes_and_ends_as_an_uninterrupted_one(
        browser, fashion_mnist, tmp_path, monkeypatch):
    """Issue 19's end-to-end check: the form starts `neuralab train` as a job; the run page
    draws each epoch's point as it ends, without a reload; Stop interrupts it as Ctrl-C does;
    Resume continues it; the final weights equal, bit for bit, those of the same command run
    once without a stop."""
    from safetensors.torch import load_file

    cache = tmp_path / "cache"
    # epochs of a few seconds on an idle machine: long enough to be seen running and stopped
    idx_subset(fashion_mnist, cache / "fashion-mnist", 20000, 300)
    monkeypatch.setenv("NEURALAB_DATA", str(cache))  # the server's jobs inherit it
    epochs, seed = 10, 7
    reference = subprocess.Popen(
        [sys.executable, "-m", "neuralab", "train", "--model", "lenet5", "--data", "fashion-mnist", "--epochs",
         str(epochs), "--seed", str(seed), "--out", str(tmp_path / "reference"), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with serving(tmp_path / "runs") as url:
            context = browser.new_context(viewport={"width": 1600, "height": 1000}, base_url=url)
            page = context.new_page()
            page.set_default_timeout(240_000)  # the machine may be shared: epochs take what they take
            errors, loads = [], []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto("/runs")
            page.wait_for_selector("#train-card:not(.hidden)")
            page.select_option("#train-model", "lenet5")
            page.select_option("#train-data", "fashion-mnist")
            page.fill("#train-epochs", str(epochs))
            page.fill("#train-seed", str(seed))
            shot(page, "runs-train-form")
            page.click("#train-start")
            page.wait_for_url("**/runs?run=lenet5-fashion-mnist-*")
            run = page.url.split("run=")[1]
            expect(page.locator("#detail-title")).to_have_text(f"{run}: lenet5 on fashion-mnist", timeout=120_000)
            page.on("load", lambda p: loads.append(p.url))  # from here on, nothing may reload the page

            page.locator("#curve-loss circle.point.loss[data-epoch='2']").wait_for()
            expect(page.locator("#run-status")).to_have_text("running")
            expect(page.locator("#progress-text")).to_contain_text("samples/s", timeout=60_000)
            assert page.locator("#curve-metric circle.point.accuracy").count() >= 2
            assert page.locator("#curve-loss circle.point.val_loss").count() >= 2
            shot(page, "runs-live")
            page.click("#stop")
            expect(page.locator("#run-status")).to_have_text("interrupted", timeout=120_000)
            done = page.locator("#curve-loss circle.point.loss").count()
            assert 2 <= done < epochs, f"stopped after {done} of {epochs} epochs"
            expect(page.locator("#resume")).to_be_visible(timeout=60_000)  # once the process has exited
            shot(page, "runs-interrupted")

            page.click("#resume")
            expect(page.locator("#run-status")).to_have_text("finished", timeout=300_000)
            expect(page.locator("#curve-loss circle.point.loss")).to_have_count(epochs, timeout=60_000)
            page.wait_for_selector("#figures img")  # the finished run's figures came without a reload
            shot(page, "runs-resumed-finished")
            assert loads == [] and errors == [], (loads, errors)
            context.close()
        out, _ = reference.communicate(timeout=600)
        assert reference.returncode == 0, out
    finally:
        reference.kill()
    resumed = load_file(tmp_path / "runs" / run / "model.safetensors")
    uninterrupted = load_file(tmp_path / "reference" / "model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)
    losses = [json.loads(line)["val_loss"] for line in (tmp_path / "runs" / run / "metrics.jsonl").open()]
    assert losses == [json.loads(line)["val_loss"] for line in (tmp_path / "reference" / "metrics.jsonl").open()]
