"""The `neuralab` command behaves the same way in every command: options are typed in full,
a mistyped one is named with the option meant, a signal ends every command with its status,
and what a command cannot use is refused rather than ignored."""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest
from helpers import default_signals

from neuralab.cli import build_parser, main

COMMAND = [sys.executable, "-c", "from neuralab.cli import run; run()"]


@pytest.mark.parametrize("argv", [
    ["train", "--epoch", "1"],                                    # would be --epochs: a training starts
    ["compare", "--seed", "1"],                                   # would be --seeds
    ["forecast", "predict", "runs/fc", "--csv", "new.csv", "--out", "x.csv"],  # would be --output
    ["serve", "--run", "x"],                                      # would be --runs
])
def test_a_shortened_option_is_not_taken_for_a_longer_one(argv, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2


@pytest.mark.parametrize("argv, line", [
    (["train", "--modle", "cnn"], "neuralab train: error: --modle: no such option of neuralab train; "
                                  "did you mean --model?"),
    (["train", "--epoch=1"], "neuralab train: error: --epoch: no such option of neuralab train; "
                             "did you mean --epochs?"),
    # not blamed on `lstm` as an ACTION of forecast
    (["forecast", "--modl", "lstm"], "neuralab forecast: error: --modl: no such option of neuralab forecast; "
                                     "did you mean --model?"),
    (["conv", "--strid", "2", "shape"], "neuralab conv: error: --strid: no such option of neuralab conv; "
                                        "see `neuralab conv --help`"),
    (["forecast", "predict", "runs/fc", "--csv", "new.csv", "--out", "x.csv"],
     "neuralab forecast predict: error: --out: no such option of neuralab forecast predict; did you mean --output?"),
    (["zoo", "--zzzzzz"], "neuralab zoo: error: --zzzzzz: no such option of neuralab zoo; "
                          "see `neuralab zoo --help`"),
])
def test_a_mistyped_option_is_named_by_its_command_with_the_one_meant(argv, line, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == line


def test_an_extra_word_is_blamed_on_the_command_that_got_it(capsys):
    with pytest.raises(SystemExit) as e:
        main(["zoo", "extra"])
    assert e.value.code == 2
    assert "neuralab zoo: error: unrecognized arguments: extra (see `neuralab zoo --help`)" in capsys.readouterr().err


@pytest.mark.parametrize("stop, status", [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGHUP, 128 + signal.SIGHUP),
                                          (signal.SIGUSR1, 128 + signal.SIGUSR1), (signal.SIGINT, 0)])
def test_runs_watch_ends_well_on_ctrl_c_and_with_the_signals_status_otherwise(tmp_path, stop, status):
    p = subprocess.Popen([*COMMAND, "runs", str(tmp_path), "--watch", "0.2"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    try:
        assert f"no runs under {tmp_path}" in p.stdout.readline() + p.stdout.readline()  # watching
        p.send_signal(stop)
        assert p.wait(timeout=60) == status
    finally:
        p.kill()
        p.communicate()


OPENMP = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def test_main_called_in_a_process_leaves_its_environment_to_it(monkeypatch, capsys):
    """A notebook or a test suite that calls ``main`` may have started OpenMP already; set in its
    environment, the OpenMP choice of that moment would pass to every process it starts later,
    taken there for the user's own."""
    for name in OPENMP:
        monkeypatch.delenv(name, raising=False)
    assert main(["zoo"]) == 0
    assert {name: value for name, value in os.environ.items() if name in OPENMP} == {}
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a setting of the user's own stays as it is
    assert main(["zoo"]) == 0
    assert {name: value for name, value in os.environ.items() if name in OPENMP} == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_the_command_chooses_how_openmp_waits_before_its_work():
    """``neuralab``, started fresh, chooses from the machine's load (``cli.openmp_waits``) for
    itself and the processes it starts; a setting of the user's own wins."""
    said = ("import atexit, os\n"
            "atexit.register(lambda: print([os.environ.get(name) for name in {names!r}]))\n"
            "from neuralab.cli import run\n"
            "run()\n").format(names=OPENMP)
    env = {name: value for name, value in os.environ.items() if name not in OPENMP}
    for own, chosen in (({}, ({"PASSIVE", None}, {None, "30000"})),
                        ({"GOMP_SPINCOUNT": "1000"}, ({None}, {"1000"}))):
        out = subprocess.run([sys.executable, "-c", said, "zoo"], env={**env, **own}, capture_output=True,
                             text=True, timeout=120, check=True).stdout
        policy, spin = ast.literal_eval(out.splitlines()[-1])
        assert policy in chosen[0] and spin in chosen[1] and (policy is None) != (spin is None)


@pytest.mark.parametrize("stop", [signal.SIGHUP, signal.SIGUSR1])  # the stop signals uvicorn does not take
def test_serve_stopped_by_a_signal_uvicorn_leaves_says_one_line_and_ends_with_its_status(tmp_path, stop):
    p = subprocess.Popen([*COMMAND, "serve", "--port", "0", "--runs", str(tmp_path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    try:
        line = p.stdout.readline()
        url = re.match(r"neuralab web app on (http://127\.0\.0\.1:\d+) ", line)  # the port the system chose
        assert url, line
        # the socket listens before uvicorn's loop runs: the signal must come once the loop answers
        with urllib.request.urlopen(f"{url[1]}/", timeout=60) as page:
            assert page.status == 200
        p.send_signal(stop)
        assert p.wait(timeout=60) == 128 + stop
        err = p.stderr.read()
        assert "Traceback" not in err and err.strip().splitlines()[-1] == "neuralab: interrupted"
    finally:
        p.kill()
        p.communicate()


def test_options_of_forecast_typed_before_predict_are_refused_by_name(tmp_path, capsys):
    code = main(["forecast", "--data", "sp500", "--lookback", "5", "predict", str(tmp_path / "run"),
                 "--csv", str(tmp_path / "new.csv")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("neuralab: error: --data is an option of `neuralab forecast`")


def test_summary_json_stays_json_when_the_users_code_prints(tmp_path, capsys):
    (tmp_path / "net.py").write_text(
        "import torch.nn as nn\n"
        "print('loading my network')\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.flat, self.dense = nn.Flatten(), nn.Linear(784, 10)\n"
        "    def forward(self, x):\n"
        "        print('forward')\n"
        "        return self.dense(self.flat(x))\n")
    assert main(["summary", f"{tmp_path / 'net.py'}:Net", "--input", "28x28x1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["total_params"] == 784 * 10 + 10
    assert "loading my network" in err


@pytest.mark.parametrize("host", ["http://lab-pc", "lab-pc:8000", "lab-pc/app", ""])
def test_serve_refuses_a_host_that_is_no_host_name_naming_host(host, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["serve", "--host", host])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "argument --host:" in err


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::", "localhost", "lab-pc.local"])
def test_serve_takes_host_names_and_addresses(host):
    assert build_parser().parse_args(["serve", "--host", host]).host == host


HELP = """
import contextlib, io, sys
from neuralab.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
    main(sys.argv[1:])
print(out.getvalue())
print("loaded:", *(m for m in ("torch", "matplotlib") if m in sys.modules))
"""


@pytest.mark.parametrize("argv, default", [
    (["forecast", "--help"], "input steps (default 60)"),
    (["rnn", "gradients", "--help"], "sequence length, at least 2 (default 100)"),
    (["rnn", "topologies", "--help"], "training steps per template with --train (default 300)"),
])
def test_help_shows_the_librarys_defaults_without_importing_torch(argv, default):
    result = subprocess.run([sys.executable, "-c", HELP, *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    help_text, loaded = result.stdout.rsplit("loaded:", 1)
    assert default in " ".join(help_text.split()) and loaded.split() == []


def test_the_baselines_forecast_offers_are_the_ones_it_has():
    from neuralab.forecasting.baselines import BASELINES
    from neuralab.forecasting.config import BASELINE_NAMES

    assert BASELINE_NAMES == tuple(BASELINES)


def subcommands(parser):
    """(name, parser) of every command under ``parser``, its options added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                sub.complete()
                yield name, sub
                yield from ((f"{name} {inner}", p) for inner, p in subcommands(sub))


def test_every_argument_says_what_it_is_and_every_default_is_shown():
    commands = dict(subcommands(build_parser()))
    for name, parser in commands.items():
        for action in parser._actions:
            if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{name} {action.metavar or action.dest}: no help"
    text = {name: " ".join(commands[name].format_help().split()) for name in
            ("train", "conv pool", "runs", "forecast", "import", "rnn gradients")}
    for option in ("--seed SEED (default 0)", "--device {auto,cpu,cuda,mps} (default auto)", "(default auto) --threads"):
        assert option in text["train"]
    assert "(default max)" in text["conv pool"]
    assert "[ROOT]" in text["runs"] and "ROOT folder holding runs" in text["runs"]
    for name in ("train", "forecast", "import", "rnn gradients"):  # where --out goes by default: NEURALAB_RUNS says
        assert "the runs folder: $NEURALAB_RUNS or ./runs" in text[name].split("--out OUT", 2)[-1], name


def test_a_default_the_help_states_is_the_one_the_option_has(monkeypatch):
    """A default written out as a number beside its owner goes stale when the owner changes it:
    each help reads it from the owner (a folder's test share from neuralab.data), and where the
    option holds its default itself the help says that one."""
    import neuralab.data

    monkeypatch.setattr(neuralab.data, "TEST_FRACTION", 0.25)
    commands = dict(subcommands(build_parser()))
    assert "(default 0.25)" in " ".join(commands["train"].format_help().split())
    checked = 0
    for name, parser in commands.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            default = action.default
            if isinstance(default, bool) or not isinstance(default, (str, int, float)) or not action.help:
                continue
            words = " ".join(formatter._expand_help(action).split())
            if "default" in words:
                checked += 1
                assert f"default {default}" in words, f"{name} {action.option_strings}: {words}"
    assert checked > 20


@pytest.mark.parametrize("argv", [["predict", "mlp", "d.png"], ["report", "mlp"], ["evaluate", "mlp"],
                                  ["train", "--resume", "mlp"], ["forecast", "predict", "mlp", "--csv", "new.csv"]])
def test_a_run_named_as_runs_lists_it_is_pointed_to_in_the_runs_folder(argv, tmp_path, monkeypatch, capsys):
    (tmp_path / "lab" / "mlp").mkdir(parents=True)  # as `neuralab runs` lists it: by its name under the runs folder
    monkeypatch.setenv("NEURALAB_RUNS", str(tmp_path / "lab"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1
    assert f"mlp: not found; did you mean {tmp_path / 'lab' / 'mlp'}?" in err
