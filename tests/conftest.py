"""Shared fixtures. Real datasets come from one setting, NEURALAB_TEST_DATASETS
(default ../shared/datasets beside the checkout); in CI a missing copy fails the run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("NEURALAB_TEST_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets() -> Path:
    """The folder of real datasets (MNIST, Fashion-MNIST, series); fails when it is missing."""
    if not (DATASETS / "mnist").is_dir():
        pytest.fail(f"real datasets not found at {DATASETS}; set NEURALAB_TEST_DATASETS to a copy")
    return DATASETS


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's data cache."""
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path_factory.mktemp("cache")))
