"""The playground takes every pooling window the page offers with the stride following it (as
Keras's does), and tells the page its ranges; the training form's empty Seed box means the
command line's default, as an empty Epochs box does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from helpers import idx_subset
from neuralab.web import create_app, jobs

JSON = {"content-type": "application/json"}


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(tmp_path / "runs"), base_url="http://127.0.0.1") as c:
        yield c


def conv(client, **params):
    return client.post("/api/conv", content=json.dumps({"image": "sample:digit", **params}), headers=JSON)


def test_every_pool_size_the_page_offers_works_with_the_stride_following_it(client):
    limits = client.get("/api/kernels").json()["limits"]
    low, high = limits["size"]
    assert (low, high) == (1, 16)
    for size in range(low, high + 1):  # the page sets stride = size when the window changes
        r = conv(client, op="max", size=size, stride=size, padding="valid")
        assert r.status_code == 200, (size, r.json())
        side = (28 - size) // size + 1  # the sample digit is 28 x 28
        assert r.json()["size"] == f"{side} x {side}"
    assert limits["pool_stride"] == [1, 16]
    said = conv(client, op="avg", size=4, stride=17).json()["error"]
    assert said == "stride=17: must be a whole number from 1 to 16"


def test_a_kernels_stride_keeps_its_range_and_the_page_is_told_it(client):
    assert client.get("/api/kernels").json()["limits"]["stride"] == [1, 8]
    r = conv(client, op="conv", kernel="sobel-x", stride=9)
    assert r.status_code == 400 and r.json()["error"] == "stride=9: must be a whole number from 1 to 8"


@pytest.fixture
def data(fashion_mnist, tmp_path, monkeypatch) -> Path:
    """A data cache holding 600 real Fashion-MNIST training images, as the server's jobs see it."""
    cache = tmp_path / "cache"
    idx_subset(fashion_mnist, cache / "fashion-mnist", 600, 100)
    monkeypatch.setenv("NEURALAB_DATA", str(cache))
    return cache


def test_an_empty_seed_box_means_the_default_seed_as_an_empty_epochs_box_does(data, tmp_path):
    # the page sends null for an empty box
    request = jobs.train_request({"model": "mlp", "data": "fashion-mnist", "epochs": None, "seed": None})
    assert request["seed"] == 0 == jobs.choices()["defaults"]["seed"]
    argv = jobs.train_argv(request, tmp_path / "runs" / "mlp")
    assert argv[argv.index("--seed") + 1] == "0" and argv[argv.index("--epochs") + 1] == "10"
