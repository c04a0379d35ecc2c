"""The run pages in headless Chromium (as tests/test_web_browser.py, whose fixtures these share)
following what happens elsewhere: a run written by a terminal after the list was opened, a
queued job cancelled from its run page, a Resume that another tab made first; the classifier
page naming why a run stopped before its first epoch is not offered; no page wider than a
small phone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from test_web_app import fake_classifier_run
from test_web_browser import browser, expect, serving, shot, watched_page  # noqa: F401  (fixtures)
from test_web_jobs import data  # noqa: F401  (the fixture)
from test_web_review import Training, interrupted
from neuralab.web import jobs

DESK = {"width": 1366, "height": 800}


def test_the_runs_list_shows_a_run_a_terminal_wrote_after_it_was_opened(browser, tmp_path):  # noqa: F811
    """A list opened while nothing trained asked nothing more: the learners' runs, trained in
    terminals into the shared folder, never appeared on the projector's list."""
    root = tmp_path / "runs"
    fake_classifier_run(root / "done", "mlp")
    with serving(root) as url, watched_page(browser, url, viewport=DESK) as pg:
        asked = []
        pg.on("request", lambda r: asked.append(r.url) if r.url.endswith("/api/runs") else None)
        pg.goto("/runs")
        expect(pg.locator("#runs tbody tr")).to_have_count(1)
        fake_classifier_run(root / "term-live", "lenet5")  # `neuralab train --out runs/term-live`, finished
        expect(pg.locator("#runs tr[data-run='term-live']")).to_be_visible(timeout=30_000)

        # a tab out of sight asks nothing; seen again, it asks at once
        pg.evaluate("() => { Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });"
                    " document.dispatchEvent(new Event('visibilitychange')); }")
        pg.wait_for_timeout(1000)  # an ask that had begun ends
        before = len(asked)
        fake_classifier_run(root / "later", "mlp")
        pg.wait_for_timeout(12_000)  # longer than the idle list's wait between asks
        assert len(asked) == before, asked[before:]
        pg.evaluate("() => { delete document.hidden; document.dispatchEvent(new Event('visibilitychange')); }")
        expect(pg.locator("#runs tr[data-run='later']")).to_be_visible(timeout=3_000)


def test_the_empty_list_s_command_trains_where_the_app_looks(browser, tmp_path):  # noqa: F811
    """The empty list's hint said `--out runs/lenet` whatever --runs was: pasted, it trained into
    a folder the app never lists."""
    import shlex

    root = tmp_path / "my experiments"
    root.mkdir()
    with serving(root) as url, watched_page(browser, url, viewport=DESK) as pg:
        pg.goto("/runs")
        expect(pg.locator("#empty")).to_be_visible()
        words = shlex.split(pg.locator("#empty code").inner_text())
    assert words[:2] == ["neuralab", "train"] and Path(words[words.index("--out") + 1]).parent == root, words


def test_a_queued_job_cancelled_from_its_run_page_says_so_and_asks_no_more(
        browser, tmp_path, data, monkeypatch):  # noqa: F811
    """Its page stayed "queued" and took the run's 404 for the app not answering, asking for
    ever; the job had ended cancelled, with nothing to resume."""
    monkeypatch.setattr(jobs.Jobs, "_spawn", lambda self, job: Training())  # trains until stopped
    with serving(tmp_path / "runs") as url, watched_page(browser, url, viewport=DESK) as pg:
        for model in ("lenet5", "mlp"):  # the first trains, the second waits its turn
            pg.goto("/runs")
            pg.wait_for_selector("#train-card:not(.hidden)")
            pg.select_option("#train-model", model)
            pg.select_option("#train-data", "fashion-mnist")
            pg.fill("#train-epochs", "1")
            pg.click("#train-start")
            pg.wait_for_url(f"**/runs?run={model}-fashion-mnist-*")
        run = pg.url.split("run=")[1]
        expect(pg.locator("#run-status")).to_have_text("queued")
        expect(pg.locator("#stop")).to_have_text("Cancel")
        asked = []
        pg.on("request", lambda r: asked.append(r.url) if "/api/run/live" in r.url else None)
        pg.click("#stop")
        expect(pg.locator("#run-status")).to_have_text("cancelled")
        expect(pg.locator("#detail-title")).to_have_text(f"{run}: cancelled")
        assert "cancelled before it started" in pg.locator("#detail-lead").inner_text()
        assert "nothing to resume" in pg.locator("#detail-lead").inner_text()
        assert pg.locator("#error").is_hidden()
        assert pg.locator("#stop").is_hidden() and pg.locator("#resume").is_hidden()
        settled = len(asked)
        pg.wait_for_timeout(3000)  # the old page asked again after 2 s, then 4, 8, 10...
        assert len(asked) == settled and pg.locator("#error").is_hidden(), asked[settled:]
        shot(pg, "runs-queued-cancelled")


def test_the_tab_whose_resume_came_second_follows_the_resumed_run(browser, tmp_path, monkeypatch):  # noqa: F811
    """Two tabs on one interrupted run: the second Resume was refused (409) and its tab froze,
    with neither Stop nor Resume, saying "interrupted" while the run trained."""
    root = tmp_path / "runs"
    interrupted(root, "a")
    monkeypatch.setattr(jobs.Jobs, "_spawn", lambda self, job: Training())
    with serving(root) as url, watched_page(browser, url, viewport=DESK) as first, \
            watched_page(browser, url, viewport=DESK) as second:
        for pg in (first, second):
            pg.goto("/runs?run=a")
            expect(pg.locator("#resume")).to_be_visible()
        first.click("#resume")
        expect(first.locator("#stop")).to_be_visible()
        second.click("#resume")
        expect(second.locator("#run-status")).to_have_text("resuming")
        expect(second.locator("#stop")).to_be_visible()
        expect(second.locator("#job-note")).to_have_text("job 1 running")
        second.click("#stop")  # the second tab follows the run to its end too
        for pg in (first, second):
            expect(pg.locator("#run-status")).to_have_text("interrupted")
            expect(pg.locator("#resume")).to_be_visible()
        shot(second, "runs-resume-came-second")


def test_a_run_stopped_before_its_first_epoch_is_said_to_have_no_model_yet(browser, tmp_path):  # noqa: F811
    """The classifier page said "not offered here (an interrupted image-classifier run)" while it
    offered other interrupted runs."""
    root = tmp_path / "runs"
    fake_classifier_run(root / "done", "mlp")
    (root / "early").mkdir()  # stopped in its first epoch: the run's config is all it keeps
    shutil.copy(root / "done" / "config.json", root / "early" / "config.json")
    with serving(root) as url, watched_page(browser, url, viewport=DESK) as pg:
        pg.goto("/classify?run=early")
        note = pg.locator("#no-runs")
        expect(note).to_contain_text("Run early is not offered here (interrupted before its first epoch")
        text = note.inner_text()
        assert "no model to use" in text and "Resume it on its run page" in text, text
        assert "an interrupted image-classifier run" not in text
        expect(pg.locator("#run")).to_have_value("done")


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("phone") / "runs"
    fake_classifier_run(root / "lenet5-mnist-20261207-092700", "lenet5")
    return root


@pytest.mark.parametrize("width", [320, 360, 375])
@pytest.mark.parametrize("path", ["/", "/conv", "/classify", "/runs", "/forecast"])
def test_no_page_scrolls_sideways_on_a_small_phone(browser, small_runs, path, width):  # noqa: F811
    """At 375 px the playground was 382 px wide: its header's current tab, "Convolution", cut off."""
    with serving(small_runs) as url, watched_page(browser, url, viewport={"width": width, "height": 740},
                                                    is_mobile=True, has_touch=True) as pg:
        pg.goto(path)
        pg.wait_for_load_state("networkidle")
        assert pg.evaluate("document.documentElement.scrollWidth") <= width
        if path == "/conv" and width == 375:
            shot(pg, "conv-phone-375")
