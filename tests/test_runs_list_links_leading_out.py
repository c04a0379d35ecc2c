"""`neuralab runs ROOT` leaves out runs reached through symbolic links leading out of ROOT (the
web app's rule, kept), and says so in one line naming the links: a home folder's links to runs
on scratch were missing from the list without a word, "no runs under sl" beside a run that
`neuralab runs sl/tosame` showed."""

from __future__ import annotations

import json

import pytest

from helpers import digits_folder
from neuralab.cli import main


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    digits = digits_folder(folder / "digits", 200)
    run = folder / "scratch" / "exp1"
    assert main(["train", "--model", "mlp", "--data", str(digits), "--epochs", "1", "--threads", "1", "--quiet",
                 "--out", str(run)]) == 0
    return run


def test_a_run_linked_from_scratch_is_named_as_left_out(finished_run, tmp_path, capsys):
    runs = tmp_path / "home runs"
    runs.mkdir()
    (runs / "exp1").symlink_to(finished_run)
    capsys.readouterr()
    assert main(["runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"no runs under {runs}",
        f"left out: 1 symbolic link to runs outside {runs} (exp1 -> {finished_run}); list it with "
        f"`neuralab runs '{runs / 'exp1'}'`"]

    assert main(["runs", str(runs / "exp1")]) == 0  # as the note says
    assert "finished" in capsys.readouterr().out


def test_a_link_named_with_a_leading_dash_is_named_as_a_path_in_the_command_to_list_it(finished_run, tmp_path,
                                                                                      monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-x").symlink_to(finished_run)
    capsys.readouterr()
    assert main(["runs", "."]) == 0
    out = capsys.readouterr().out
    assert out.endswith("list it with `neuralab runs ./-x`\n"), out
    assert main(["runs", out.split("`")[1].split()[-1]]) == 0  # as the note says
    assert "finished" in capsys.readouterr().out


def test_links_to_runs_and_to_folders_of_runs_are_counted_and_json_stays_json(finished_run, tmp_path, capsys):
    runs = tmp_path / "runs"
    (runs / "group").mkdir(parents=True)
    (runs / "group" / "exp1").symlink_to(finished_run)
    (runs / "scratch").symlink_to(finished_run.parent)  # a folder of runs
    (runs / "data").symlink_to(tmp_path)  # leads out, but to no run: not one to name
    capsys.readouterr()
    assert main(["runs", "--json", str(runs)]) == 0
    said = capsys.readouterr()
    assert json.loads(said.out) == []
    assert said.err == (f"neuralab: note: left out: 2 symbolic links to runs outside {runs} (group/exp1 -> "
                        f"{finished_run}, scratch -> {finished_run.parent}); list each with "
                        f"`neuralab runs {runs / 'group' / 'exp1'}`\n")


def test_a_root_that_is_itself_a_link_lists_its_runs_and_leaves_nothing_out(finished_run, tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "kept").symlink_to(finished_run.parent)
    capsys.readouterr()
    assert main(["runs", str(runs / "kept")]) == 0
    out = capsys.readouterr().out
    assert "exp1" in out and "left out" not in out, out
