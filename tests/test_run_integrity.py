"""Run folders say what they hold: a finished run whose weights were cut short is listed as
damaged, `neuralab runs` names damaged runs by their folder in the listing, and imported runs
and runs of Keras's fit record a digest of their image folder, as trained runs do, so that
evaluating them on pictures changed since is refused."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import digits_folder

from neuralab import runs
from neuralab.cli import main
from neuralab.runs import Run, Status


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished run of an MLP on 600 real handwritten digits (one epoch) and its picture folder."""
    tmp = tmp_path_factory.mktemp("integrity")
    digits = digits_folder(tmp / "digits")
    assert main(["train", "--model", "mlp", "--data", str(digits), "--epochs", "1", "--batch-size", "64",
                 "--seed", "1", "--quiet", "--out", str(tmp / "runs" / "whole")]) == 0
    return tmp / "runs" / "whole"


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def copied(run: Path, root: Path, name: str) -> Path:
    return Path(shutil.copytree(run, root / name))


# --- weights cut short ----------------------------------------------------------------------

@pytest.mark.parametrize("keep", [0.5, 4 / 5, "header"])
def test_a_finished_run_with_its_weights_cut_short_is_listed_as_damaged(trained, tmp_path, capsys, keep):
    root = tmp_path / "runs"
    whole, cut = copied(trained, root, "whole"), copied(trained, root, "cut")
    weights = (cut / runs.WEIGHTS).read_bytes()
    (cut / runs.WEIGHTS).write_bytes(weights[:20] if keep == "header" else weights[:int(len(weights) * keep)])

    assert Run(whole).status() is Status.FINISHED and Run(cut).status() is Status.DAMAGED
    assert main(["runs", str(root), "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert (rows["whole"]["status"], rows["whole"]["error"]) == ("finished", "")
    assert rows["cut"]["status"] == "damaged"
    assert rows["cut"]["error"].startswith(f"cut/{runs.WEIGHTS}: ")
    assert "truncated" in rows["cut"]["error"] and rows["cut"]["error"].endswith("train the run again")
    assert main(["evaluate", str(cut)]) == 2  # what the listing says, loading it confirms
    assert f"{runs.WEIGHTS}: damaged or truncated safetensors file" in one_line(capsys)


def test_weights_with_bytes_beyond_their_tensors_are_damaged_too(trained, tmp_path, capsys):
    run = copied(trained, tmp_path, "run")
    with open(run / runs.WEIGHTS, "ab") as f:
        f.write(b"\0" * 100)  # two copies written into one file
    assert main(["evaluate", str(run)]) == 2  # safetensors refuses it
    capsys.readouterr()
    assert Run(run).status() is Status.DAMAGED
    assert "bytes where its header gives" in Run(run).damage()


# --- the listing's reasons ------------------------------------------------------------------

def test_neuralab_runs_names_a_damaged_run_by_its_folder_not_by_absolute_paths(trained, tmp_path, capsys):
    root = (tmp_path / "runs").resolve()
    copied(trained, root, "whole")
    garbled = copied(trained, root / "group", "garbled")
    (garbled / runs.CONFIG).write_text("{not json")
    cut = copied(trained, root, "cut")
    os.truncate(cut / runs.WEIGHTS, 1000)

    assert main(["runs", str(root)]) == 0
    out = capsys.readouterr().out
    assert str(root) not in out and str(tmp_path) not in out, out
    reasons = out.split("damaged:\n")[1].splitlines()
    assert reasons[0].startswith(f"  cut: cut/{runs.WEIGHTS}: truncated safetensors file (1,000 bytes where")
    assert reasons[1].startswith(f"  group/garbled: group/garbled/{runs.CONFIG}: not valid JSON")
    assert main(["runs", str(root), "--json"]) == 0
    assert str(root) not in capsys.readouterr().out


# --- a digest of the data in runs that did not train -----------------------------------------

@pytest.fixture(scope="module")
def keras():
    from neuralab.keras import on_pytorch

    on_pytorch()
    return pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")


def digits_model(keras, seed: int = 0):
    """A small Keras classifier of 8x8 grey digits."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def test_an_imported_run_refuses_a_picture_folder_changed_since_the_import(keras, trained, tmp_path, capsys):
    digits = Path(json.loads((trained / runs.CONFIG).read_text())["config"]["data"])
    folder = Path(shutil.copytree(digits, tmp_path / "digits"))
    digits_model(keras).save(tmp_path / "digits.keras")
    run = tmp_path / "imported"
    assert main(["import", str(tmp_path / "digits.keras"), "--data", str(folder), "--out", str(run)]) == 0
    record = json.loads((run / runs.CONFIG).read_text())["data"]
    trained_record = json.loads((trained / runs.CONFIG).read_text())["data"]
    assert record["listing_sha256"] == trained_record["listing_sha256"]  # the digest a trained run records
    assert [record[s] for s in ("train", "val", "test")] == [trained_record[s] for s in ("train", "val", "test")]
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    capsys.readouterr()

    (folder / "3" / "3.png").rename(folder / "3" / "renamed.png")  # the same classes and counts
    assert main(["evaluate", str(run)]) == 2
    assert "not the pictures the run was trained on" in one_line(capsys)
    assert main(["report", str(run)]) == 2
    assert "not the pictures the run was trained on" in one_line(capsys)


def fit_with_logger(keras, folder: Path, data, out: Path) -> None:
    import numpy as np

    from neuralab.data import load_image_data
    from neuralab.training import RunLogger

    images = load_image_data(str(folder), val_fraction=0.0)
    x = images.train.x.transpose(0, 2, 3, 1)[:128]  # channels last, pixels in [0, 1] as Keras takes them
    model = digits_model(keras)
    model.fit(x.astype(np.float32), images.train.y[:128], epochs=1, batch_size=64, verbose=0,
              callbacks=[RunLogger(out=out, data=data, classes=images.classes)])


def test_a_run_of_keras_fit_records_the_digest_of_its_picture_folder(keras, trained, tmp_path, capsys):
    digits = Path(json.loads((trained / runs.CONFIG).read_text())["config"]["data"])
    folder = Path(shutil.copytree(digits, tmp_path / "digits"))
    fit_with_logger(keras, folder, str(folder), tmp_path / "folder")
    record = json.loads((tmp_path / "folder" / runs.CONFIG).read_text())["data"]
    assert record["listing_sha256"] == json.loads((trained / runs.CONFIG).read_text())["data"]["listing_sha256"]
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "folder")]) == 0
    capsys.readouterr()
    (folder / "3" / "3.png").rename(folder / "3" / "renamed.png")  # the same classes and counts
    assert main(["evaluate", str(tmp_path / "folder")]) == 2
    assert "not the pictures the run was trained on" in one_line(capsys)

    # data that is only a label names no pictures to digest: the run records none, and evaluate
    # says it cannot read its data again
    fit_with_logger(keras, digits, "my digits", tmp_path / "label")
    record = json.loads((tmp_path / "label" / runs.CONFIG).read_text())["data"]
    assert record["name"] == "my digits" and not {"listing_sha256", "sha256"} & set(record)


def test_a_picture_the_run_skipped_as_unreadable_may_be_removed(tmp_path, capsys):
    """`--on-error skip` names the files it left out, which invites their removal; the run used
    none of them, so its data is the same without them. Before, evaluate refused the folder as
    pictures "renamed, moved or replaced"."""
    folder = digits_folder(tmp_path / "digits", 200)
    cut = folder / "7" / "cut.png"
    cut.write_bytes((folder / "7" / "7.png").read_bytes()[:50])
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="skipped 1 of 201"):
        assert main(["train", "--model", "mlp", "--data", str(folder), "--epochs", "1", "--on-error", "skip",
                     "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    cut.unlink()
    assert main(["evaluate", str(run)]) == 0
    capsys.readouterr()
    (folder / "3" / "3.png").rename(folder / "3" / "renamed.png")  # a picture the run used: still refused
    assert main(["evaluate", str(run)]) == 2
    assert "not the pictures the run was trained on: the same classes and number of pictures, but files renamed, " \
           "moved or replaced since in class folder(s) 3 (their" in one_line(capsys)
    (folder / "3" / "renamed.png").rename(folder / "3" / "3.png")
    (folder / "5" / "again.png").write_bytes((folder / "5" / "5.png").read_bytes())  # one picture more
    assert main(["evaluate", str(run)]) == 2
    assert "201 images now, 200 when the run was trained (train 160 -> 161) in class folder(s) 5; the split" \
           in one_line(capsys)


def test_a_run_whose_listing_counted_its_skipped_pictures_still_checks_its_folder(tmp_path, capsys):
    """Runs recorded before the digest left out the pictures the loading skipped: their folder,
    unchanged, is still theirs."""
    from neuralab.data.digest import listing_sha256

    folder = digits_folder(tmp_path / "digits", 200)
    (folder / "7" / "cut.png").write_bytes((folder / "7" / "7.png").read_bytes()[:50])
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="skipped 1 of 201"):
        assert main(["train", "--model", "mlp", "--data", str(folder), "--epochs", "1", "--on-error", "skip",
                     "--out", str(run), "--quiet"]) == 0
    record = json.loads((run / runs.CONFIG).read_text())
    assert record["data"]["listing_sha256"] != listing_sha256(folder)
    record["data"]["listing_sha256"] = listing_sha256(folder)  # as such a run recorded it
    (run / runs.CONFIG).write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
