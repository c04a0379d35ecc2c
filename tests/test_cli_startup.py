"""`neuralab --help` and the commands that do arithmetic start without the heavy libraries.

Each command runs in a fresh Python, as a user starts it; how long it takes is measured by
bench/bench_cli.py (docs/benchmarks.md), not here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from helpers import TORCHRUN, idx_subset

HEAVY = ("torch", "pandas", "matplotlib", "PIL", "scipy", "sklearn")
RUN = """
import contextlib, io, sys
from neuralab.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        code = main(sys.argv[1:])
    except SystemExit as e:  # --help
        code = e.code
print(code, len(out.getvalue()), *(m for m in {heavy} if m in sys.modules))
"""


def loaded(argv: list[str], heavy: tuple[str, ...] = HEAVY) -> tuple[int, int, list[str]]:
    """(exit status, characters printed, heavy modules imported) of `neuralab ARGV` in a fresh Python."""
    result = subprocess.run([sys.executable, "-c", RUN.format(heavy=heavy), *argv],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    code, printed, *modules = result.stdout.split()
    return int(code), int(printed), modules


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["conv", "shape", "--input", "32x32x3", "--filters", "16", "--kernel", "5", "--stride", "2", "--padding", "same"],
    ["conv", "demo"],
    ["conv", "kernels"],
    ["data", "list"],
    ["zoo"],
    ["zoo", "--json"],
    ["summary", "--help"],
    ["train", "--help"],     # ClassifierConfig and its recipes live in training/config.py, free of torch
    ["compare", "--help"],
    ["import", "--help"],
    ["forecast", "--help"],  # the series' policies and built-in names live in data/series_names.py, free of pandas
    ["forecast", "predict", "--help"],
    ["rnn", "--help"],
])
def test_light_commands_import_no_heavy_library(argv):
    code, printed, modules = loaded(argv)
    assert code == 0 and printed > 100 and modules == []


def test_the_series_names_keep_their_old_import_path():
    from neuralab.data import series, series_names, tables

    for name in ("BUILTIN", "BuiltinSeries", "CALENDAR", "DUPLICATES", "GAPS", "MISSING"):
        assert getattr(series, name) is getattr(series_names, name)
    assert tables.builtin_path("seattle-weather").name == series.BUILTIN["seattle-weather"].file


def test_forecasts_help_names_the_interval_levels_of_its_config(monkeypatch, capsys):
    """The levels --horizon's help names are ForecastConfig's (intervals.LEVELS), not a copy."""
    from neuralab.cli import main
    from neuralab.forecasting import config

    monkeypatch.setattr(config, "LEVELS", (0.5, 0.9))
    with pytest.raises(SystemExit):
        main(["forecast", "--help"])
    assert "many-to-many; metrics and 50%/90% intervals per step" in " ".join(capsys.readouterr().out.split())


def test_a_command_that_computes_still_gets_its_library():
    code, printed, modules = loaded(["rnn", "topologies"])  # builds the four templates (its --help needs no torch)
    assert code == 0 and "torch" in modules and printed > 100


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_training_imports_neither_dynamo_nor_onnx(fashion_mnist, tmp_path, optimizer):
    """PyTorch's optimizers import torch._dynamo when first used (1.3 s), reading `torch.onnx`
    imports the exporter (0.2 s), a gradient given to `backward` imports torch.fx's symbolic
    shapes and SymPy (0.45 s), and the Keras reader h5py (0.2 s): a run of a zoo model that
    neither compiles, exports nor reads Keras needs none of them, so none is imported."""
    data = idx_subset(fashion_mnist, tmp_path / "data", 300, 100)
    code, _, modules = loaded(["train", "--model", "cnn", "--data", "fashion-mnist", "--data-dir", str(data),
                               "--epochs", "1", "--optimizer", optimizer, "--threads", "1", "--out", str(tmp_path / "run")],
                              heavy=("torch._dynamo", "torch.onnx", "sympy", "h5py"))
    assert code == 0 and modules == []


def test_openmp_threads_sleep_where_cores_are_busy_and_spin_briefly_where_free(monkeypatch, tmp_path):
    import builtins
    import os

    from neuralab.cli import CHOSEN, openmp_waits

    real_open = builtins.open

    def machine(load: float, running: list[int]):
        """/proc/loadavg as the kernel writes it, its runnable count taking ``running`` in turn."""
        counts = iter(running)

        def fake(path, *args, **kwargs):
            if path != "/proc/loadavg":
                return real_open(path, *args, **kwargs)
            written = tmp_path / "loadavg"
            written.write_text(f"{load:.2f} 0.50 0.40 {next(counts)}/300 12345\n")
            return real_open(written, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", fake)

    cores = len(os.sched_getaffinity(0))
    for load, running in ((0.3, [1] * 5),              # only this process runs
                          (cores + 0.7, [1] * 5),      # a high load average from work that has ended
                          (0.3, [1, 2, 1, 1, 2])):     # another task runnable for a moment
        machine(load, running)
        free: dict[str, str] = {}
        assert openmp_waits(free) == "GOMP_SPINCOUNT=30000" and free == {"GOMP_SPINCOUNT": "30000", CHOSEN: "GOMP_SPINCOUNT"}
    for running in ([2] * 5, [2, 3, 1, 2, 1]):         # another task runnable in most readings
        machine(0.3, running)
        busy: dict[str, str] = {}
        assert openmp_waits(busy) == "OMP_WAIT_POLICY=PASSIVE" and busy == {"OMP_WAIT_POLICY": "PASSIVE",
                                                                            CHOSEN: "OMP_WAIT_POLICY"}
        # a process a neuralab started when the machine was free (serve's job, later) chooses again
        machine(0.3, running)
        inherited = {"GOMP_SPINCOUNT": "30000", CHOSEN: "GOMP_SPINCOUNT"}
        assert openmp_waits(inherited) == "OMP_WAIT_POLICY=PASSIVE" and inherited == busy
    mine = {"OMP_WAIT_POLICY": "ACTIVE"}  # the user's own setting is kept, whatever the load
    assert openmp_waits(mine) == "OMP_WAIT_POLICY=ACTIVE" and mine == {"OMP_WAIT_POLICY": "ACTIVE"}


EXIT = """
import atexit, gc, sys
atexit.register(lambda: print("exit handlers ran; objects left to the exit:", gc.get_freeze_count() > 0))
sys.argv[0] = "neuralab"
from neuralab.cli import run
run()
"""


@pytest.mark.parametrize("argv, status", [
    (["conv", "shape", "--input", "28x28x1", "--filters", "8", "--kernel", "3"], 0),
    (["conv", "shape", "--input", "28x28x1", "--filters", "8", "--kernel", "0"], 2),
])
def test_the_command_exits_with_mains_status_after_its_exit_handlers(argv, status):
    """`neuralab` (the installed script and `python -m neuralab`) is ``cli.run``: ``main``'s
    status, every line printed, exit handlers run, and the objects left for the process's
    exit to free rather than for the interpreter's final collections (0.5-1 s after torch)."""
    from importlib.metadata import entry_points

    assert [e.value for e in entry_points(group="console_scripts", name="neuralab")] == ["neuralab.cli:run"]
    done = subprocess.run([sys.executable, "-c", EXIT, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == status, done.stderr[-2000:]
    *printed, last = done.stdout.splitlines()
    assert last == "exit handlers ran; objects left to the exit: True"
    if status == 0:
        assert printed and "26x26x8" in printed[0]
    else:
        assert "--kernel" in done.stderr and "Traceback" not in done.stderr
    module = subprocess.run([sys.executable, "-m", "neuralab", *argv], capture_output=True, text=True, timeout=120)
    assert module.returncode == status and module.stdout.splitlines() == printed


@pytest.mark.parametrize("case", ["taken", "file on the way"])
def test_compare_refused_by_rank_0_ends_every_process_of_a_torchrun_job_alike(fashion_mnist, tmp_path, case):
    """Rank 0 finds --out unusable and both processes stop on its refusal with status 2, rank 0
    saying it, nothing made; refused by rank 0 alone, rank 1 went on to wait for it in training until
    torchrun stopped it. torchrun looks at its processes every 2 s here, so that each ends on its own."""
    import torch

    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("needs torch.distributed with gloo")
    data = idx_subset(fashion_mnist, tmp_path / "data", 300, 100)
    if case == "taken":
        out = tmp_path / "cmp"
        (out / "lenet5-seed0").mkdir(parents=True)
        (out / "lenet5-seed0" / "notes.txt").write_text("my own notes\n")
        line = f"--out {out}: already holds lenet5-seed0; pass --overwrite to replace the runs of this comparison, " \
               "or choose another --out"
    else:
        (tmp_path / "cmp").write_text("a file where the folder goes\n")
        out = tmp_path / "cmp" / "week1"
        line = f"--out {out}: cannot create the runs' folders in {tmp_path / 'cmp'} (Not a directory); a part of " \
               "the path is a file, not a folder: give a path through folders"
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    p = subprocess.run([*TORCHRUN, "--monitor-interval", "2",
                        "-m", "neuralab", "compare", "--models", "lenet5", "--seeds", "1", "--data", "fashion-mnist",
                        "--data-dir", str(data), "--epochs", "1", "--batch-size", "100", "--out", str(out)],
                       capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=240)
    said = [text for text in p.stderr.splitlines() if text.startswith("neuralab:")]
    assert said == [f"neuralab: error: {line}"], p.stderr[-3000:]
    exits = dict(re.findall(r"rank\s*: (\d+) \(local_rank: \d+\)\n\s*exitcode\s*: (-?\d+)", p.stderr))
    assert exits == {"0": "2", "1": "2"}, p.stderr[-3000:]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
