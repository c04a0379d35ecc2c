"""A classifier run whose picture folder moved since it was interrupted: the resume says the
folder is gone and takes its new place, as evaluate and report do, and goes on only with the
pictures the run was trained on (scikit-learn's handwritten digits as picture files)."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import cut_in_epoch, digits_folder

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.training import ClassifierConfig, TrainConfig, resume_classifier, train_classifier


def interrupted(tmp_path, monkeypatch, epoch: int = 2):
    digits = digits_folder(tmp_path / "digits", 300)
    run = tmp_path / "run"
    whole_again = cut_in_epoch(monkeypatch, epoch)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(ClassifierConfig(model="mlp", data=str(digits),
                                          train=TrainConfig(epochs=2, batch_size=64, seed=3, lr=0.01)),
                         out=run, verbose=False)
    whole_again()
    return digits, run


def cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_a_run_whose_folder_moved_says_so_and_resumes_from_its_new_place(tmp_path, monkeypatch, capsys):
    """`--resume RUN` said "<recorded path>: not a folder", and `--data-dir NEW` was refused as a
    changed setting "(the run has None)": there was no way on but moving the folder back."""
    digits, run = interrupted(tmp_path, monkeypatch)
    moved = digits.rename(tmp_path / "moved")

    code, err = cli(capsys, "train", "--resume", run, "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert (f"{digits}: the run's image folder is not there any more; if it moved, give its new place as "
            "--data-dir") in err

    code, err = cli(capsys, "train", "--resume", run, "--data-dir", moved, "--quiet")
    assert code == 0, err
    results = json.loads((run / "results.json").read_text())
    assert results["epochs_run"] == 2 and results["test_accuracy"] > 0.5


@pytest.mark.parametrize("epoch", [1, 2])
def test_another_folder_given_as_the_new_place_is_refused(tmp_path, monkeypatch, epoch):
    """The new place is taken on the run's record of its pictures: other digits are not the run's.
    A run stopped before its first checkpoint (epoch 1) trained on them, and wrote their record
    into config.json over its own."""
    digits, run = interrupted(tmp_path, monkeypatch, epoch)
    config = (run / "config.json").read_bytes()
    shutil.rmtree(digits)
    other = tmp_path / "other"
    more = digits_folder(tmp_path / "more", 600)
    for label in sorted(p.name for p in more.iterdir()):  # as many pictures a class, other ones
        (other / label).mkdir(parents=True)
        kept = len(list((more / label).iterdir())) // 2
        for p in sorted((more / label).iterdir(), key=lambda p: -int(p.stem))[:kept]:
            shutil.copyfile(p, other / label / p.name)
    with pytest.raises(NeuralabError, match="not the pictures the run was trained on|images now"):
        resume_classifier(run, verbose=False, options={"data_dir": str(other)})
    assert (run / "config.json").read_bytes() == config


def test_a_run_stopped_before_its_first_checkpoint_starts_again_from_the_new_place(tmp_path, monkeypatch):
    digits, run = interrupted(tmp_path, monkeypatch, epoch=1)
    assert not (run / "last.safetensors").exists()
    moved = digits.rename(tmp_path / "moved")
    with pytest.raises(NeuralabError, match="the run's image folder is not there any more"):
        resume_classifier(run, verbose=False)
    result = resume_classifier(run, verbose=False, options={"data_dir": str(moved)})
    assert result.test["accuracy"] > 0.5
    assert json.loads((run / "config.json").read_text())["config"]["data"] == str(moved)


def test_a_changed_setting_the_run_left_unset_is_not_shown_as_python_none(tmp_path, monkeypatch, capsys):
    digits, run = interrupted(tmp_path, monkeypatch)
    code, err = cli(capsys, "train", "--resume", run, "--image-size", "16x16", "--quiet")
    assert code == 2 and "None" not in err, err
    assert "(the run has none given)" in err
