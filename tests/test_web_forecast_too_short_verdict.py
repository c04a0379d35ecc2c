"""The web app's forecast view in headless Chromium (as tests/test_web_browser.py, whose
fixtures these share): a verdict too short to judge (fewer than 10 test windows) is shown in
neither colour, where it was painted green as a win or a tie."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from test_web_browser import browser, expect, serving, watched_page  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    """Random walks of 60 rows (9 test windows): one alone, and one beside a series of 400."""
    from neuralab.forecasting.models import ModelConfig, series_train_config
    from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
    from neuralab.forecasting.windows import WindowConfig

    folder, rng = tmp_path_factory.mktemp("short"), np.random.default_rng(5)
    frames = [pd.DataFrame({"date": pd.date_range("2020-01-01", periods=n).strftime("%Y-%m-%d"), "id": name,
                            "value": 100 + np.cumsum(rng.normal(size=n))}) for name, n in (("long", 400), ("short", 60))]
    pd.concat(frames).to_csv(folder / "two.csv", index=False)
    frames[1].drop(columns="id").to_csv(folder / "short.csv", index=False)
    for name, data, column in (("alone", "short.csv", None), ("two", "two.csv", "id")):
        config = ForecastConfig(data=str(folder / data), target="value", series_column=column, backtest_folds=1,
                                windows=WindowConfig(lookback=7), model=ModelConfig("lstm", hidden=[4]),
                                train=series_train_config(epochs=1, device="cpu"))
        run_forecast(config, out=folder / "runs" / name, verbose=False)
    with serving(folder / "runs") as url:
        yield url


def test_a_verdict_too_short_to_judge_is_neither_good_nor_bad_news(browser, short_runs):  # noqa: F811
    with watched_page(browser, short_runs, viewport={"width": 1600, "height": 1000}) as page:
        page.goto("/forecast")
        page.wait_for_selector("#view:not(.hidden)")
        page.select_option("#run", "alone")
        expect(page.locator("#verdict")).to_contain_text("The test span is too short to judge")
        assert page.locator("#verdict").get_attribute("class") == "verdict"
        page.select_option("#run", "two")
        expect(page.locator("#series")).to_be_visible()
        page.select_option("#series", "short")
        expect(page.locator("#series-verdict")).to_contain_text("Series short alone: The test span is too short")
        assert page.locator("#series-verdict").get_attribute("class") == "verdict"
        page.select_option("#series", "long")  # judged: good or bad news, as before
        expect(page.locator("#series-verdict")).to_contain_text("Series long alone:")
        assert page.locator("#series-verdict").get_attribute("class") in ("verdict good", "verdict bad")
