"""The command lines neuralab prints for pasting back (`--resume RUN` after an interruption,
`neuralab report RUN`, the forecast page's way on) quote a run folder whose name the shell
would split: `neuralab train --resume sp ace/r3`, pasted back as printed, was refused
("unrecognized arguments: ace/r3"); and they give a relative folder whose name starts with "-" as
"./-r1", which argparse would take for an option ("argument --resume: expected one argument")."""

from __future__ import annotations

import shlex

import pytest
from starlette.testclient import TestClient

from helpers import digits_folder
from neuralab.cli import main
from neuralab.cli._args import resume_command
from neuralab.runs import REPORT, Run, Status, shell_word
from neuralab.web import create_app
from test_interrupt_words import ctrl_c_in_epoch_2
from test_web_app import fake_forecast_run

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def pasted(err: str) -> list[str]:
    """The words of the command between backticks in ``err`` as a shell splits them, `neuralab` left off."""
    words = shlex.split(err.split("`")[1])
    assert words[0] == "neuralab", err
    return words[1:]


def stopped_in_epoch_2(tmp_path, run, monkeypatch, capsys):
    """What an MLP run at ``run`` on digits, stopped by Ctrl-C in its epoch 2, printed; and the
    call that lets the next epochs run whole."""
    digits = digits_folder(tmp_path / "digits", 300)
    whole_again = ctrl_c_in_epoch_2(monkeypatch)
    assert main(["train", "--model", "mlp", "--data", str(digits), "--epochs", "3", "--batch-size", "64",
                 "--seed", "3", "--threads", "1", "--quiet", "--out", str(run)]) == 130
    return capsys.readouterr().err, whole_again


def test_the_resume_command_printed_after_ctrl_c_resumes_a_run_in_a_folder_with_a_space(tmp_path, monkeypatch,
                                                                                        capsys):
    run = tmp_path / "sp ace" / "r3"
    err, whole_again = stopped_in_epoch_2(tmp_path, run, monkeypatch, capsys)
    assert f"`neuralab train --resume '{run}'` continues it" in err, err
    whole_again()

    assert pasted(err) == ["train", "--resume", str(run)]
    assert main(pasted(err) + ["--quiet"]) == 0
    assert Run(run).status() is Status.FINISHED


def test_the_report_command_printed_for_a_finished_run_without_its_report_writes_it(tmp_path, capsys):
    digits = digits_folder(tmp_path / "digits", 300)
    run = tmp_path / "my runs" / "mlp"
    assert main(["train", "--model", "mlp", "--data", str(digits), "--epochs", "1", "--batch-size", "64",
                 "--threads", "1", "--quiet", "--out", str(run)]) == 0
    (run / REPORT).unlink()  # as a kill while the report was written leaves it
    capsys.readouterr()

    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"`neuralab report '{run}'`" in err, err
    assert main(pasted(err)) == 0
    assert (run / REPORT).is_file()


def test_under_torchrun_the_resume_command_quotes_the_folder_too(tmp_path, monkeypatch):
    run = tmp_path / "tr un" / "big"
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    command = resume_command("neuralab train", run)
    assert command == f"torchrun --nproc_per_node 2 -m neuralab train --resume '{run}'"
    assert shlex.split(command)[-2:] == ["--resume", str(run)]


@pytest.mark.parametrize("run_id, shown", [("temp max cut", "'temp max cut'"), ("-cut", "./-cut")])
def test_the_forecast_page_of_an_interrupted_run_gives_its_id_as_a_word_the_resume_command_takes(tmp_path, run_id,
                                                                                                 shown):
    root = tmp_path / "runs"
    cut = fake_forecast_run(root / run_id)
    (cut / "results.json").unlink()
    (cut / "forecast.csv").unlink()
    with TestClient(create_app(root), base_url="http://127.0.0.1") as client:
        answer = client.get("/api/forecast", params={"run": run_id})
    assert answer.status_code == 400
    said = answer.json()["error"]
    assert f"`neuralab forecast --resume {shown}`" in said, said
    assert pasted(said) == ["forecast", "--resume", shown.strip("'")]


def test_a_run_folder_named_with_a_leading_dash_is_resumed_and_reported_by_the_commands_printed(tmp_path,
                                                                                               monkeypatch, capsys):
    digits = digits_folder(tmp_path / "digits", 300)
    monkeypatch.chdir(tmp_path)
    whole_again = ctrl_c_in_epoch_2(monkeypatch)
    assert main(["train", "--model", "mlp", "--data", str(digits), "--epochs", "2", "--batch-size", "64",
                 "--threads", "1", "--quiet", "--out=-r1"]) == 130
    err = capsys.readouterr().err
    assert "`neuralab train --resume ./-r1` continues it" in err, err
    whole_again()
    assert main(pasted(err) + ["--quiet"]) == 0
    assert Run(tmp_path / "-r1").status() is Status.FINISHED

    (tmp_path / "-r1" / REPORT).unlink()  # as a kill while the report was written leaves it
    assert main(["train", "--resume", "./-r1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "`neuralab report ./-r1`" in err, err
    assert main(pasted(err)) == 0
    assert (tmp_path / "-r1" / REPORT).is_file()


def test_a_leading_dash_is_kept_from_the_options_only_where_the_path_is_relative():
    assert shell_word("-r1") == "./-r1"
    assert shell_word("-my runs/r1") == "'./-my runs/r1'"
    assert shell_word("/tmp/-r1") == "/tmp/-r1"
    assert shell_word("r-1") == "r-1"


def in_bash(command: str) -> list[str]:
    """The words of ``command`` as bash reads them pasted, `neuralab` left off."""
    import os
    import subprocess

    said = subprocess.run(["bash", "-c", f"set -- {command}; printf '%s\\0' \"$@\""], capture_output=True,
                          check=True).stdout
    words = [os.fsdecode(w) for w in said.split(b"\0")[:-1]]
    assert words[0] == "neuralab", command
    return words[1:]


@pytest.mark.parametrize("name", ["my\xa0run", "zero\u200bwidth", "two\nlines", "tab\tbed", "it's\\n\xa0\udce9"],
                         ids=["no-break space", "zero-width space", "newline", "tab", "quote, backslash, byte"])
def test_a_folder_named_with_characters_no_terminal_shows_is_printed_as_bash_reads_it_back(tmp_path, name):
    """Shown as Python's repr in single quotes ('runs/my\\xa0run'), which bash takes as written."""
    run = tmp_path / "runs" / name
    command = resume_command("train", run)
    assert "\n" not in command and in_bash(f"neuralab {command}") == ["train", "--resume", str(run)]


def test_the_resume_command_printed_after_ctrl_c_resumes_a_folder_named_with_a_no_break_space(tmp_path, monkeypatch,
                                                                                              capsys):
    run = tmp_path / "runs" / "my\xa0run"
    err, whole_again = stopped_in_epoch_2(tmp_path, run, monkeypatch, capsys)
    whole_again()

    assert main(in_bash(err.split("`")[1]) + ["--quiet"]) == 0
    assert Run(run).status() is Status.FINISHED


def test_a_name_holding_a_lone_surrogate_is_printed_on_one_line_not_a_traceback():
    """A name read from JSON ("a\\ud800.png" in a run's config.json) has a surrogate no bytes give:
    os.fsencode raised UnicodeEncodeError as the $'...' quoting wrote it, and `neuralab runs` exited 1."""
    assert shell_word("runs/a\ud800\xa0.png") == "$'runs/a\\ud800\\xc2\\xa0.png'"


@pytest.mark.parametrize("value", ["-o\xa0x.csv", "-ox.csv", "-my out.csv", "-1", "-0.5", "out.csv"])
def test_an_options_value_in_a_refusal_is_printed_as_argparse_takes_it_back(value):
    """ParameterError wrote `--output $'-o\\xc2\\xa0x.csv'`, which argparse took for an option
    ("expected one argument"); a value starting with "-" is written --output=VALUE."""
    import argparse

    from neuralab.errors import ParameterError

    said = ParameterError("output", value, "must be a CSV file").render(lambda p: "--" + p)
    assert said.endswith(": must be a CSV file") and "\n" not in said
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--output")
    typed = in_bash("neuralab " + said.removesuffix(": must be a CSV file"))
    assert parser.parse_args(typed).output == value
