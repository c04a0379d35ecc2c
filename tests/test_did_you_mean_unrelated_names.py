"""A misspelt name is offered its near twin, and nothing else: the '.csv' that two file names share
made y.csv as close to zulu.csv as a typo, and resnet was "corrected" to lenet5. closest's cases, typos
and others alike, are in one table: tests/test_did_you_mean_typos.py."""

from __future__ import annotations

import pytest

from neuralab.data.series import load_series
from neuralab.errors import ParameterError

FILES = ["month31.csv", "dash.csv", "twice.csv", "zulu.csv", "sales_2023.xlsx"]


def test_a_series_file_of_another_folder_gets_no_unrelated_suggestion(tmp_path, monkeypatch):
    for name in FILES:
        (tmp_path / name).write_text("date,v\n2021-01-01,1\n2021-01-02,2\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError) as e:
        load_series("sales.csv")
    assert "did you mean" not in str(e.value)
    with pytest.raises(ParameterError, match=r"did you mean 'month31.csv'\?"):
        load_series("month3.csv")
