"""The app reached from other machines (`neuralab serve --host 0.0.0.0`) shows a run's image
folder and model file by their names, never the server's paths they are at; the app bound to
this machine shows them whole, as the command line does."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import digits_folder
from starlette.testclient import TestClient

from neuralab.cli import main
from neuralab.web import create_app
from neuralab.web.security import allowed_hosts

NET = """
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A run of a user's module file trained on an image folder, both outside the runs folder."""
    tmp = tmp_path_factory.mktemp("exposed")
    digits = digits_folder(tmp / "digits", n=200)
    (tmp / "net.py").write_text(NET)
    assert main(["train", "--model", f"{tmp / 'net.py'}:Net", "--data", str(digits), "--epochs", "1",
                 "--quiet", "--out", str(tmp / "runs" / "mine")]) == 0
    return tmp / "runs", digits, tmp / "net.py"


def test_the_exposed_app_names_the_data_folder_and_model_file_only(trained):
    root, digits, net = trained
    with TestClient(create_app(root, allowed_hosts("0.0.0.0")), base_url="http://127.0.0.1") as client:
        listed = client.get("/api/runs")
        (row,) = listed.json()["runs"]
        shown = client.get("/api/run", params={"run": "mine"})
    assert row["data"] == "digits" and shown.json()["data"] == "digits", listed.text
    assert "net.py:Net" in shown.json()["summary"], shown.text
    for answer in (listed, shown):
        assert str(root.parent) not in answer.text, answer.text


def test_the_local_app_shows_the_paths_whole(trained):
    root, digits, net = trained
    with TestClient(create_app(root), base_url="http://127.0.0.1") as client:
        (row,) = client.get("/api/runs").json()["runs"]
        shown = client.get("/api/run", params={"run": "mine"}).json()
    assert row["data"] == str(digits) and shown["data"] == str(digits)
    assert f"{net}:Net" in shown["summary"], shown["summary"]
