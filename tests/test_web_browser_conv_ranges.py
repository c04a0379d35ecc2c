"""The playground's Window and Stride inputs take their ranges from the server (`GET /api/kernels`'s
`limits`, web.playground.LIMITS), in headless Chromium as tests/test_web_browser.py runs it: a
pooling window of 12 steps by 12, which the server takes, where the page's own max of 8 marked
the stride invalid and its arrows could not pass 8."""

from __future__ import annotations

import pytest

from neuralab.web.playground import LIMITS
from test_web_browser import browser, expect, serving, text_becomes, watched_page  # noqa: F401  (fixtures)


@pytest.fixture
def page(browser, tmp_path):  # noqa: F811
    with serving(tmp_path / "runs") as url, watched_page(browser, url, viewport={"width": 1280, "height": 900}) as pg:
        yield pg


def ranges(page, selector: str) -> tuple[str, str]:
    return page.get_attribute(selector, "min"), page.get_attribute(selector, "max")


def test_a_pooling_window_of_12_steps_by_12_and_the_arrows_go_past_8(page):
    page.goto("/conv")
    page.wait_for_selector("#step-sum")
    assert ranges(page, "#stride") == tuple(map(str, LIMITS["stride"]))  # a kernel's
    page.select_option("#op", "max")
    assert ranges(page, "#stride") == tuple(map(str, LIMITS["pool_stride"]))
    assert ranges(page, "#size") == tuple(map(str, LIMITS["size"]))
    page.fill("#size", "12")
    page.dispatch_event("#size", "change")
    text_becomes(page, "#output-size", "2 x 2")  # the digit's 28 x 28 in 12 x 12 windows, stride 12
    stride = page.locator("#stride")
    assert stride.input_value() == "12" and stride.evaluate("e => e.validity.valid")
    stride.focus()
    page.keyboard.press("ArrowUp")  # 13: a stride the server takes, where the page's max of 8 stopped it at 8
    page.keyboard.press("Tab")
    assert stride.input_value() == "13"
    expect(page.locator("#formula")).to_contain_text("floor((28 - 12 + 2x0) / 13) + 1 = floor(16/13) + 1 = 2")
    expect(page.locator("#stale-note")).to_be_hidden()  # the server took it
    page.select_option("#op", "conv")
    assert ranges(page, "#stride") == tuple(map(str, LIMITS["stride"])) and stride.input_value() == "1"
