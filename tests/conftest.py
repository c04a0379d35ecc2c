"""Shared fixtures and the rules every test runs under.

Real data, the way users get it. A test asks for what it reads:
- ``fashion_mnist``: the folder of real Fashion-MNIST. Obtainable offline (`make test` installs
  Debian's dataset-fashion-mnist as root on Debian, as `make demo` does), so when it is missing
  the test errors with one line saying how to get it.
- ``mnist``: the folder of real MNIST. Not obtainable offline, so the test skips with one line
  saying how to provide it. Ask for it only when the test is about MNIST itself; otherwise use
  Fashion-MNIST, ``helpers.handwritten_digit`` (scikit-learn's bundled digits) or files the
  test writes.
- series: the S&P 500, NASDAQ and Seattle weather ship inside the package
  (``load_series("sp500")``); no fixture needed.

Each folder is found once per session, before any test runs and so with the real environment:
first in NEURALAB_TEST_DATASETS (a folder of NAME/ subfolders, for CI and benches; no default:
a test run reads only what a user's run would read unless told otherwise), then through
neuralab's own chain (``neuralab.data.sources.locate``: the user's cache, then the system
folder /usr/share/datasets/NAME). The tests never download. Fixtures hand the folder itself:
treat it as read-only (copy it before changing a file) and pass it as ``data_dir``, or copy it
into the test's own cache (``_isolated_cache``) when the test needs the cache.

In CI (CI=true) a skipped test is a failure, except one marked ``gpu`` (hardware CI lacks).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from neuralab.data.sources import cache_dir, locate
from neuralab.errors import NeuralabError

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_DATASETS = "NEURALAB_TEST_DATASETS"

found: dict[str, Path | None] = {}  # dataset -> its folder, filled by pytest_configure


def _find(name: str, extra: Path | None) -> Path | None:
    for folder in ([extra] if extra else []) + [None]:
        try:
            return locate(name, folder)
        except NeuralabError:
            pass
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU; skipped without one, even in CI")
    if IN_CI:  # a module skipped at import fails at collection; the rest still run and report
        config.option.continue_on_collection_errors = True
    extra = os.environ.get(TEST_DATASETS)
    if extra and not Path(extra).is_dir():
        raise pytest.UsageError(f"{TEST_DATASETS}={extra}: not a folder; unset it or name a folder "
                                "holding mnist/ and fashion-mnist/")
    for name in ("fashion-mnist", "mnist"):
        found[name] = _find(name, Path(extra) if extra else None)


def pytest_report_header(config):
    where = [f"{name} in {folder}" if folder else f"{name} not found" for name, folder in found.items()]
    return "real datasets: " + "; ".join(where) + ("; CI: a skip fails" if IN_CI else "")


def _ways(name: str) -> str:
    return (f"set {TEST_DATASETS} to a folder holding {name}/, or run `neuralab data fetch {name}` "
            f"(into {cache_dir() / name})")


@pytest.fixture(scope="session")
def fashion_mnist() -> Path:
    """The folder of real Fashion-MNIST (four IDX files); read-only."""
    if found["fashion-mnist"] is None:
        pytest.fail("Fashion-MNIST not found: run `make test` as root on Debian (installs "
                    f"dataset-fashion-mnist), or {_ways('fashion-mnist')}", pytrace=False)
    return found["fashion-mnist"]


@pytest.fixture(scope="session")
def mnist() -> Path:
    """The folder of real MNIST (four IDX files); read-only. Skips the test when MNIST is absent."""
    if found["mnist"] is None:
        pytest.skip(f"needs MNIST, not found: {_ways('mnist')}")
    return found["mnist"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's data cache."""
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path_factory.mktemp("cache")))


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu"):
        import torch

        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA GPU")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI nothing may skip: CI has the shared datasets and Chromium. Only a test marked
    ``gpu`` may skip there, for hardware CI does not have."""
    report = (yield).get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail") and not item.get_closest_marker("gpu"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may skip: {_skip_reason(report)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A whole module skipped at import (``pytest.importorskip``) fails in CI too."""
    report = (yield).get_result()
    if IN_CI and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may skip: {_skip_reason(report)}"


@pytest.fixture
def cut_in_epoch_2(monkeypatch):
    """Ctrl-C as epoch 2 starts, from the call on; calling what it returns lets training run whole again."""
    from helpers import cut_in_epoch

    return lambda: cut_in_epoch(monkeypatch, 2)


@pytest.fixture
def one_thread():
    """A test on one intra-op thread: two OpenMP threads on a busy 2-core machine stall for
    seconds; one does not."""
    from neuralab.training.device import cpu_threads

    with cpu_threads(1):
        yield


@pytest.fixture(scope="module")
def one_cpu_thread():
    """A module's tests on one intra-op thread (``pytestmark = pytest.mark.usefixtures(...)``):
    small models, and two threads on a busy two-core machine stall at every barrier."""
    from neuralab.training.device import cpu_threads

    with cpu_threads(1):
        yield


@pytest.fixture(scope="module")
def series_csv(tmp_path_factory) -> Path:
    """A user's CSV for forecasting runs (resumes, kills, logs): four months of a daily load
    with a weekly cycle and a trend."""
    path = tmp_path_factory.mktemp("series") / "load.csv"
    days = np.arange(np.datetime64("2021-01-01"), np.datetime64("2021-05-01"))
    t = np.arange(len(days))
    load = 50 + 10 * np.sin(2 * np.pi * t / 7) + 0.1 * t + np.random.default_rng(0).normal(0, 1, len(t))
    path.write_text("day,load\n" + "".join(f"{d},{v:.4f}\n" for d, v in zip(days, load)))
    return path
