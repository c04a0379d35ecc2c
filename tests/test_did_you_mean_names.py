"""A name one typo or one underscore away from a dataset, a built-in series or a zoo model is
suggested in the refusal (Keras and torchvision write fashion_mnist; the zoo's LeNet is lenet5)."""

from __future__ import annotations

import pytest

from test_hostile import refused


@pytest.mark.parametrize("argv, suggestion", [
    (["train", "--model", "lenet5", "--data", "fashion_mnist"], "did you mean 'fashion-mnist'?"),
    (["data", "fetch", "fashion_mnist"], "did you mean 'fashion-mnist'?"),
    (["forecast", "--data", "seattle_weather"], "did you mean 'seattle-weather'?"),
    (["train", "--model", "lenet", "--data", "mnist"], "did you mean 'lenet5'?"),
])
def test_a_near_miss_is_suggested(capsys, tmp_path, monkeypatch, argv, suggestion):
    monkeypatch.chdir(tmp_path)  # no folder or file of that name here
    refused(capsys, argv, suggestion)


def test_a_name_near_nothing_gets_no_suggestion(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = refused(capsys, ["train", "--model", "lenet5", "--data", "imagenet"], "unknown dataset 'imagenet'")
    assert "did you mean" not in err
