"""A learner's third round with the web app in a browser (and its API): a page left open while
the app restarts, a phone's screen, a forecast run's live figures, the forecast page's way on
for an interrupted run, and uploads classified as `neuralab predict` classifies the same file."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from helpers import handwritten_digit
from neuralab.training import load_classifier
from neuralab.web import create_app
from test_web_app import PICTURE, png_array
from test_web_browser import (  # noqa: F401  (fixtures)
    browser, expect, forecast_run, page, pictures, runs, server, shot, watched_page,
)


@pytest.fixture(scope="module")
def stopped_forecast(runs, forecast_run) -> str:  # noqa: F811
    """A copy of the forecast run without its results: a forecast run interrupted after its
    epochs, before it forecast."""
    shutil.copytree(runs / forecast_run, runs / "sine-stopped")
    (runs / "sine-stopped" / "results.json").unlink()
    return "sine-stopped"


@pytest.fixture(scope="module")
def client(runs):  # noqa: F811
    with TestClient(create_app(runs), base_url="http://127.0.0.1") as c:
        yield c


# --- 1. a page open while the app stops answering ----------------------------------------

def failing_then_real(route, calls: list, first, failures: int):
    """``first`` answers the first request (None: the real answer), the next ``failures`` get
    no answer at all (the app stopped), the others the real one (the app is back)."""
    calls.append(route.request.url)
    if len(calls) == 1 and first is not None:
        route.fulfill(json=first(route))
    elif len(calls) <= 1 + failures:
        route.abort("connectionrefused")
    else:
        route.continue_()


def test_a_run_page_keeps_asking_while_the_app_does_not_answer_and_shows_the_run_as_it_is_after(page):  # noqa: F811
    calls = []
    running = lambda route: {"id": "lenet", "status": "running", "metrics": [], "progress": None}  # noqa: E731
    page.route("**/api/run/live?*", lambda route: failing_then_real(route, calls, running, 2))
    page.goto("/runs?run=lenet")
    expect(page.locator("#run-status")).to_have_text("running")
    expect(page.locator("#error")).to_have_text(
        "The web app is not answering (stopped, or restarting?); asking again every 2 s.")
    shot(page, "round3-run-not-answering")
    expect(page.locator("#run-status")).to_have_text("finished")  # asked again, and again, until it answered
    expect(page.locator("#error")).to_be_hidden()
    page.locator("#figures img").first.wait_for()
    assert len(calls) >= 4


def test_the_runs_list_keeps_refreshing_while_the_app_does_not_answer(page):  # noqa: F811
    calls = []

    def one_running(route):
        data = route.fetch().json()
        for row in data["runs"]:
            if row["id"] == "lenet":
                row["status"], row["finished"] = "running", False
        return data

    page.route("**/api/runs", lambda route: failing_then_real(route, calls, one_running, 2))
    page.goto("/runs")
    status = page.locator("#runs tbody tr[data-run='lenet'] td").nth(4)
    expect(status).to_have_text("running")
    expect(page.locator("#error")).to_contain_text("The web app is not answering")
    expect(status).to_have_text("finished")
    expect(page.locator("#error")).to_be_hidden()


def test_each_stop_click_leaves_one_refresh_of_the_list_not_one_more(page):  # noqa: F811
    """Each click on Stop showed the list again and started one more loop of refreshes beside
    the running one: three clicks, four loops asking every 2 s."""
    asked = []

    def jobs(route):
        data = route.fetch().json()  # the real answer, with a job that trains for as long as the test looks
        data["jobs"] = [{"id": 1, "run": "lenet", "state": "running", "command": "neuralab train ...", "error": ""}]
        route.fulfill(json=data)

    page.route("**/api/jobs*", jobs)
    page.route("**/api/jobs/stop", lambda route: route.fulfill(json={"state": "stopping"}))
    page.route("**/api/runs", lambda route: (asked.append(1), route.continue_()))
    page.goto("/runs")
    stop = page.locator("#jobs button", has_text="Stop")
    for _ in range(3):
        stop.click()
        page.wait_for_timeout(200)
    page.wait_for_timeout(500)
    before = len(asked)
    page.wait_for_timeout(6000)  # three refreshes of one loop; twelve of four
    assert len(asked) - before <= 4, len(asked) - before


# --- 2. a phone's screen -----------------------------------------------------------------

@pytest.mark.parametrize("size", [(390, 844), (1366, 768)])
def test_no_page_is_wider_than_a_phone_or_a_laptop(browser, server, forecast_run, pictures, size):  # noqa: F811
    width, height = size
    with watched_page(browser, server, viewport={"width": width, "height": height}) as pg:
        wider = {}
        for path in ["/", "/conv", "/classify", "/runs", "/runs?run=lenet", f"/runs?run={forecast_run}",
                     f"/forecast?run={forecast_run}"]:
            pg.goto(path)
            pg.wait_for_load_state("networkidle")
            if path == "/classify":  # the prediction card is as wide as its bars
                pg.set_input_files("#upload", str(pictures / "two.png"))
                pg.wait_for_selector("#bars .label")
            scroll = pg.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
            if scroll[0] > scroll[1]:
                wider[path] = scroll
            if width < 500:
                shot(pg, f"round3-phone{path.replace('/', '-').replace('?', '-').replace('=', '-')}")
        assert wider == {}, wider


# --- 3. a forecast run's live figures are of the scaled target ------------------------------

def test_a_forecast_runs_live_figures_say_they_are_of_the_scaled_target(client, stopped_forecast, forecast_run):  # noqa: F811
    rows = {r["id"]: r for r in client.get("/api/runs").json()["runs"]}
    metric = rows[stopped_forecast]["metric"]
    assert rows[stopped_forecast]["status"] == "interrupted"
    assert metric["name"] == "val MAE of the scaled target" and metric["note"] == "best so far"
    assert client.get("/api/run", params={"run": stopped_forecast}).json()["metric"] == metric  # the run page's lead
    assert rows[forecast_run]["metric"]["name"].startswith("test ")  # a finished run's are in the target's units


def test_a_forecast_runs_live_charts_say_they_are_of_the_scaled_target(page, stopped_forecast):  # noqa: F811
    page.goto(f"/runs?run={stopped_forecast}")
    expect(page.locator("#curve-loss svg > text").first).to_have_text("loss of the scaled target by epoch")
    expect(page.locator("#curve-metric svg > text").first).to_have_text("MAE of the scaled target by epoch")
    expect(page.locator("#detail-lead")).to_contain_text("val MAE of the scaled target ")


# --- 4. the forecast page's way on for an interrupted run -----------------------------------

def test_the_forecast_page_says_how_to_go_on_with_an_interrupted_run(page, stopped_forecast, forecast_run):  # noqa: F811
    page.goto(f"/forecast?run={stopped_forecast}")
    expect(page.locator("#no-runs")).to_have_text(
        f"Run {stopped_forecast} is not offered here (an interrupted forecaster run); showing {forecast_run} instead. "
        f"Interrupted before it forecast; go on with `neuralab forecast --resume {stopped_forecast}` in a terminal, "
        "from the runs folder.")


# --- 5 and 6. an upload gets the input `neuralab predict` gives the same file --------------

def digit_files(folder):
    """A real handwritten two as a phone or a paint program saves it: white strokes on a
    transparent page (RGBA PNG, 200 x 200), and dark ink on light paper as a JPEG photo."""
    two, _ = handwritten_digit(2)
    big = np.asarray(Image.fromarray(two).resize((200, 200), Image.Resampling.BILINEAR))
    rgba = np.zeros((200, 200, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = big  # only the strokes are opaque
    Image.fromarray(rgba, "RGBA").save(folder / "white_on_transparent.png")
    paper = 235 - (big.astype(np.float32) * 0.85).astype(np.uint8)  # grey ink on off-white paper
    Image.fromarray(np.stack([paper] * 3, -1)).save(folder / "on_paper.jpg", quality=85)
    return folder / "white_on_transparent.png", folder / "on_paper.jpg"


@pytest.mark.parametrize("which, invert", [(0, "auto"), (0, "no"), (1, "yes"), (1, "auto")])
def test_an_upload_gets_the_same_input_and_answer_as_the_library_and_cli(client, runs, tmp_path, which, invert):  # noqa: F811
    path = digit_files(tmp_path)[which]
    out = client.post("/api/classify", params={"run": "lenet", "source": "upload", "invert": invert},
                      content=path.read_bytes(), headers=PICTURE)
    assert out.status_code == 200, out.text
    out = out.json()
    clf = load_classifier(runs / "lenet")
    pixels = clf.load_images([path], invert=invert)  # what `neuralab predict` reads (--invert: "yes")
    np.testing.assert_array_equal(png_array(out["input"]), pixels[0, 0])
    top = clf.top_k(clf.predict_proba(pixels), 5)[0]
    assert [t["class"] for t in out["top"]] == [c for c, _ in top]
    np.testing.assert_allclose([t["probability"] for t in out["top"]], [p for _, p in top], atol=1e-6)
    seen = pixels[0, 0].astype(int)
    assert seen.max() - seen.min() > 150 and out["blank"] == ""  # the strokes are there, not a blank
    assert seen[0].mean() < 60  # light strokes on a dark page, as the model's training pictures


def test_white_strokes_on_a_transparent_page_are_seen_on_black_by_a_light_on_dark_model(runs, tmp_path):  # noqa: F811
    png, _ = digit_files(tmp_path)
    clf = load_classifier(runs / "lenet")
    two, _ = handwritten_digit(2)
    seen = clf.load_images([png], invert="no")[0, 0].astype(int)
    assert np.abs(seen - two.astype(int)).mean() < 12  # the digit itself, back from 200 x 200
    black_on_clear = np.asarray(Image.open(png)).copy()
    black_on_clear[..., :3] = 0
    Image.fromarray(black_on_clear, "RGBA").save(tmp_path / "black_on_transparent.png")
    on_white = clf.load_images([tmp_path / "black_on_transparent.png"], invert="auto")[0, 0]
    # dark strokes: on white, then inverted as "auto" does (resized before, so to a grey level or two)
    assert np.abs(on_white.astype(int) - seen).max() <= 3


def test_a_light_card_with_transparent_margins_reads_as_the_card_on_white(runs, tmp_path):  # noqa: F811
    """Dark ink on a white card (or a half-transparent page) with transparent margins: the margins
    were laid on black, framing the card, and "auto" then took it for light on dark, not inverted."""
    clf = load_classifier(runs / "lenet")
    two, _ = handwritten_digit(2)
    big = np.asarray(Image.fromarray(two).resize((160, 160), Image.Resampling.BILINEAR))
    card = np.zeros((200, 200, 4), np.uint8)  # transparent margins of 20 pixels
    card[20:180, 20:180, :3] = (255 - big)[..., None]  # dark ink on the white card
    card[20:180, 20:180, 3] = 255
    small = np.zeros((260, 260, 4), np.uint8)  # the card, 38% of a picture whose margins are the rest
    small[50:210, 50:210] = card[20:180, 20:180]
    half = np.zeros((200, 200, 4), np.uint8)
    half[..., :3] = (255 - np.asarray(Image.fromarray(two).resize((200, 200))))[..., None]
    half[..., 3] = np.maximum(128, np.asarray(Image.fromarray(two).resize((200, 200))))  # ink opaque, page half
    for name, picture in (("card.png", card), ("small.png", small), ("half.png", half)):
        Image.fromarray(picture, "RGBA").save(tmp_path / name)
        on_white = Image.alpha_composite(Image.new("RGBA", picture.shape[:2][::-1], "white"),
                                         Image.fromarray(picture, "RGBA"))
        on_white.convert("RGB").save(tmp_path / f"white-{name}")
        got = clf.load_images([tmp_path / name], invert="auto")[0, 0]
        np.testing.assert_array_equal(got, clf.load_images([tmp_path / f"white-{name}"], invert="auto")[0, 0])
        assert got[0].mean() < 60 and got.max() > 150  # inverted: light ink on a dark page, as MNIST's


def test_a_blank_upload_is_said_to_be_blank(client):
    picture = io.BytesIO()
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(picture, "PNG")
    out = client.post("/api/classify", params={"run": "lenet", "source": "upload"}, content=picture.getvalue(),
                      headers=PICTURE).json()
    assert out["blank"].startswith("The picture is one flat colour")


# --- 7. a refused upload leaves no old answer on screen ------------------------------------

def test_a_refused_upload_clears_the_last_pictures_answer(page, pictures, tmp_path):  # noqa: F811
    page.goto("/classify?run=lenet")
    page.set_input_files("#upload", str(pictures / "two.png"))
    page.wait_for_selector("#bars .label")
    (tmp_path / "notapicture.png").write_text("these are notes, not a picture")
    page.set_input_files("#upload", str(tmp_path / "notapicture.png"))
    expect(page.locator("#error")).to_contain_text("upload: not a readable image")
    expect(page.locator("#bars .label")).to_have_count(0)
    assert page.locator("#seen").get_attribute("src") is None
    assert page.locator("#timing").inner_text() == ""
    expect(page.locator("#layers")).to_have_text(
        "Draw or upload to see what every convolution and pooling layer makes of it.")
    shot(page, "round3-classify-refused")
    assert json.loads(page.evaluate("() => JSON.stringify(document.getElementById('bars').dataset)")) == {}


def test_a_one_epoch_runs_charts_end_at_its_epoch(page, forecast_run):  # noqa: F811
    """A finished run of one epoch drew its axis to "epoch 2", beside a header saying 1 of 1."""
    page.goto(f"/runs?run={forecast_run}")
    for chart in ("#curve-loss", "#curve-metric"):
        expect(page.locator(f"{chart} svg > text", has_text="epoch 1")).to_have_count(1)
        assert not [t for t in page.locator(f"{chart} svg > text").all_text_contents() if t.startswith("epoch 2")]
