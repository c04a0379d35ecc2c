"""A misspelt name is offered its near twin, and nothing else: the '.csv' that two file names share
made y.csv as close to zulu.csv as a typo, and resnet was "corrected" to lenet5."""

from __future__ import annotations

import pytest

from neuralab.data.series import load_series
from neuralab.errors import ParameterError, closest

FILES = ["month31.csv", "dash.csv", "twice.csv", "zulu.csv", "sales_2023.xlsx"]
ZOO = ["mlp", "cnn", "lenet5", "alexnet", "alexnet2012", "vgg16", "googlenet"]


@pytest.mark.parametrize("typed, offered", [
    ("month3.csv", "month31.csv"), ("mnth31.csv", "month31.csv"), ("twice.cvs", "twice.csv"),
    ("Month31.csv", "month31.csv"), ("month31", "month31.csv"),
])
def test_a_misspelt_file_is_offered_its_near_twin(typed, offered):
    assert closest(typed, FILES) == offered


@pytest.mark.parametrize("typed", ["y.csv", "x.csv", "sales.csv", "train.csv"])
def test_a_file_that_shares_only_the_extension_is_not_offered(typed):
    assert closest(typed, FILES) is None


def test_names_are_offered_for_typos_not_for_other_words():
    assert closest("LeNet5", ZOO) == "lenet5" and closest("lenet", ZOO) == "lenet5"
    assert closest("fashion_mnist", ["mnist", "fashion-mnist", "cifar10"]) == "fashion-mnist"
    assert closest("resnet", ZOO) is None  # another architecture, not a typo of lenet5


def test_a_series_file_of_another_folder_gets_no_unrelated_suggestion(tmp_path, monkeypatch):
    for name in FILES:
        (tmp_path / name).write_text("date,v\n2021-01-01,1\n2021-01-02,2\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError) as e:
        load_series("sales.csv")
    assert "did you mean" not in str(e.value)
    with pytest.raises(ParameterError, match=r"did you mean 'month31.csv'\?"):
        load_series("month3.csv")
