"""`neuralab --help` and the commands that do arithmetic start without the heavy libraries.

Each command runs in a fresh Python, as a user starts it; how long it takes is measured by
bench/bench_cli.py (docs/benchmarks.md), not here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

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


def loaded(argv: list[str]) -> tuple[int, int, list[str]]:
    """(exit status, characters printed, heavy modules imported) of `neuralab ARGV` in a fresh Python."""
    result = subprocess.run([sys.executable, "-c", RUN.format(heavy=HEAVY), *argv],
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
])
def test_light_commands_import_no_heavy_library(argv):
    code, printed, modules = loaded(argv)
    assert code == 0 and printed > 100 and modules == []


def test_a_command_that_trains_still_gets_its_library():
    code, printed, modules = loaded(["rnn", "gradients", "--help"])  # its defaults are GradientConfig's
    assert code == 0 and "torch" in modules and printed > 100
