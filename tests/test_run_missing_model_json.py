"""A finished run whose model.json was deleted: called damaged, naming the file, by the runs
listing, and refused with the same advice wherever its model is asked for (predict, the web
app's classifier), as a truncated model.safetensors is."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from helpers import digits_folder
from PIL import Image
from starlette.testclient import TestClient

from neuralab.cli import main
from neuralab.runs import MODEL, Run, Status
from neuralab.web.app import create_app

ADVICE = "missing from a finished run (deleted or moved); put back a good copy, or train the run again"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("model-json")
    digits = digits_folder(tmp / "digits", n=200)
    assert main(["train", "--model", "mlp", "--data", str(digits), "--epochs", "1", "--quiet",
                 "--out", str(tmp / "runs" / "whole")]) == 0
    shutil.copytree(tmp / "runs" / "whole", tmp / "runs" / "d4")
    (tmp / "runs" / "d4" / MODEL).unlink()
    return tmp / "runs"


def test_the_run_is_listed_damaged_naming_model_json(runs_dir, capsys):
    assert Run(runs_dir / "whole").status() is Status.FINISHED
    assert Run(runs_dir / "d4").status() is Status.DAMAGED
    assert main(["runs", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    assert f"d4: d4/{MODEL}: {ADVICE}" in out, out


def test_predict_and_the_classifier_page_say_what_to_do(runs_dir, capsys):
    picture = next((runs_dir.parent / "digits" / "3").iterdir())
    assert main(["predict", str(runs_dir / "d4"), str(picture)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{runs_dir / 'd4' / MODEL}: {ADVICE}" in err, err
    png = io.BytesIO()
    Image.open(picture).convert("L").save(png, format="PNG")
    with TestClient(create_app(runs_dir), base_url="http://127.0.0.1") as client:
        r = client.post("/api/classify", params={"run": "d4"}, content=png.getvalue(),
                        headers={"content-type": "image/png"})
    assert r.status_code == 400 and r.json()["error"] == f"d4/{MODEL}: {ADVICE}", r.text
