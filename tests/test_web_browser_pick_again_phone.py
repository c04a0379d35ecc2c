"""Session 49's web fixes in headless Chromium (as tests/test_web_browser.py, whose fixtures
these share): the same picture picked again, a phone's forecast table, the playground's
output while its settings are refused, and a resume on the runs list and the run page."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from test_web_browser import (  # noqa: F401  (fixtures)
    browser, changed, expect, forecast_run, page, pictures, runs, server, serving, shot, text_becomes, watched_page,
)
from test_web_jobs import wait_for
from test_web_review import interrupted
from test_web_hosts_and_failed_resume import RESUME_ERROR, failing_resumes

# How one forecaster was fitted, as results.json words it for a network started from a baseline
LONG_FITTED = ("lstm (LSTM 8 -> Dense + linear path, anchored and normalised per window, 469 parameters; started from "
               "the linear-ar baseline's least squares, which training did not beat on the validation span by more "
               "than noise (0.40% lower loss against 2 standard errors, 1.16%): kept)")


def draw_stroke(pg) -> None:
    box = pg.locator("#pad").bounding_box()
    pg.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.15)
    pg.mouse.down()
    pg.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.85, steps=10)
    pg.mouse.up()


def test_the_same_picture_picked_again_after_a_drawing_is_classified_again(page, pictures):  # noqa: F811
    """The browser fires no change for the file the input already holds: the learner's retry of
    their photo after a drawing sent nothing, and the drawing's answer stayed."""
    asked = []
    page.on("request", lambda r: asked.append(r.url) if "/api/classify" in r.url else None)
    page.goto("/classify")
    expect(page.locator("#run")).to_have_value("lenet")
    page.set_input_files("#upload", str(pictures / "two.png"))
    page.wait_for_selector("#bars .label")
    uploaded = page.get_attribute("#seen", "src")
    draw_stroke(page)
    drawn = changed(page, "#seen", uploaded)
    page.set_input_files("#upload", str(pictures / "two.png"))
    assert changed(page, "#seen", drawn) == uploaded
    assert len(asked) == 3 and "source=upload" in asked[-1]


def test_the_same_picture_picked_again_enters_the_playground_again(page, pictures):  # noqa: F811
    photo = pictures / "photo-again.png"
    Image.fromarray((np.indices((120, 90)).sum(0) % 256).astype(np.uint8)).save(photo)
    page.goto("/conv")
    page.wait_for_selector("#step-sum")
    page.set_input_files("#upload", str(photo))
    text_becomes(page, "#input-size", "120 x 90")
    page.select_option("#picture", "sample:digit")
    text_becomes(page, "#input-size", "28 x 28")
    page.set_input_files("#upload", str(photo))
    text_becomes(page, "#input-size", "120 x 90")
    assert page.locator("#picture option:checked").inner_text() == "your picture: photo-again.png"
    assert page.locator("#picture option", has_text="photo-again.png").count() == 1  # one entry, not two


def test_refused_settings_dim_the_last_output_and_say_it_is_the_last_valid_one(page):  # noqa: F811
    """The red line refused the kernel while the output size, formula and step view below still
    showed the last settings' (28 x 28 with P = 1) beside a Padding control reading valid."""
    page.goto("/conv")
    page.wait_for_selector("#step-sum")
    page.select_option("#padding", "1")
    text_becomes(page, "#output-size", "28 x 28")
    page.fill("#kernel-text", "1 2\n3")
    page.wait_for_selector("#error:not(.hidden)")
    page.select_option("#padding", "valid")
    expect(page.locator("#stale-note")).to_be_visible()
    assert "last settings that worked" in page.locator("#stale-note").inner_text()
    assert page.locator(".result.stale").count() == 3  # the pictures, the output size, the step view
    assert float(page.eval_on_selector("#output-size", "n => getComputedStyle(n.closest('.card')).opacity")) < 0.5
    shot(page, "conv-refused-settings")
    page.fill("#kernel-text", "1 2\n3 4")
    text_becomes(page, "#output-size", "27 x 27")
    expect(page.locator("#stale-note")).to_be_hidden()
    assert page.locator(".result.stale").count() == 0


@pytest.fixture(scope="module")
def long_fitted(runs, forecast_run) -> str:  # noqa: F811
    """The forecast run, its network's fitting described as a real run describes one that a baseline started."""
    shutil.copytree(runs / forecast_run, runs / "sine-long")
    results = json.loads((runs / "sine-long" / "results.json").read_text())
    results["forecasters"][results["headline"]["network"]] = LONG_FITTED
    (runs / "sine-long" / "results.json").write_text(json.dumps(results))
    return "sine-long"


def test_on_a_phone_the_forecast_table_keeps_its_rows_short(browser, server, long_fitted):  # noqa: F811
    """At 390 px the table scrolled sideways, yet its Fitted column was squeezed to 146 px and
    the network's row was 757 px tall: a screen of empty cells beside the network's scores."""
    with watched_page(browser, server, viewport={"width": 390, "height": 844}) as pg:
        pg.goto(f"/forecast?run={long_fitted}")
        expect(pg.locator("#scores tbody tr.hl")).to_contain_text("(network)")
        expect(pg.locator("#scores tbody tr.hl td:last-child")).to_have_text(LONG_FITTED)
        heights = pg.eval_on_selector_all("#scores tbody tr", "rows => rows.map(r => r.getBoundingClientRect().height)")
        assert len(heights) >= 3 and max(heights) < 250, heights  # a few lines of description, not a screen
        box = pg.eval_on_selector("#scores", "t => [t.parentElement.clientWidth, t.parentElement.scrollWidth, "
                                             "document.documentElement.scrollWidth]")
        assert box[1] > box[0] and box[2] <= 390, box  # the table scrolls in its card, not the page
        shot(pg, "forecast-phone-table")


def test_a_resume_reads_resuming_on_both_pages_and_its_failure_is_said_beside_resume(
        browser, tmp_path, monkeypatch):  # noqa: F811
    """While the resumed process loaded its data the run page said "resuming" and the runs list
    "interrupted"; once it failed, the run page showed Resume as if it had never been pressed
    (the error only in the jobs table of the list)."""
    root = tmp_path / "runs"
    interrupted(root, "a")
    made = failing_resumes(monkeypatch)
    with serving(root) as url, watched_page(browser, url, viewport={"width": 1366, "height": 800}) as pg, \
            watched_page(browser, url, viewport={"width": 1366, "height": 800}) as listing:
        pg.goto("/runs?run=a")
        pg.click("#resume")
        expect(pg.locator("#run-status")).to_have_text("resuming")
        listing.goto("/runs")
        status = listing.locator("#runs tr[data-run='a'] td:nth-child(5)")
        expect(status).to_have_text("resuming")
        wait_for(lambda: made, 30, "the resume's process")
        made[0].fail.set()
        expect(pg.locator("#job-note")).to_have_text(f"job 1 failed: {RESUME_ERROR}")
        expect(pg.locator("#run-status")).to_have_text("interrupted")
        expect(pg.locator("#resume")).to_be_visible()
        expect(status).to_have_text("interrupted")
        shot(pg, "runs-resume-failed")
