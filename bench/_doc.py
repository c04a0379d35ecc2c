"""Bench scripts write their own section of docs/benchmarks.md between markers."""

from __future__ import annotations

import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
DATASETS = Path(os.environ.get("NEURALAB_TEST_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), Python {platform.python_version()}"


def update_section(name: str, markdown: str, doc: Path = DOC) -> None:
    """Replace the text between <!-- NAME:start --> and <!-- NAME:end --> of ``doc`` (appended if absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    tmp = doc.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(doc)


def commit(src: Path) -> str:
    """"abc1234 2026-12-03": the last commit of the checkout holding ``src``."""
    out = subprocess.run(["git", "-C", str(src), "log", "-1", "--format=%h %cs"], capture_output=True, text=True)
    return out.stdout.strip() or str(src)


def command_env(src: Path) -> dict:
    """The environment a timed `neuralab` command runs in: this environment, with ``src``'s
    package first and Python's compiled modules kept (__pycache__), as an installed neuralab
    has them, so that timings are of a user's second and later starts."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPATH": str(src)}


SRC = Path(__file__).resolve().parents[1] / "src"  # this checkout's package, the one the benches measure


def command_line(command: str, src: Path) -> str:
    """The shell line that runs ``command`` ("neuralab ...") from ``src``: the console script pip
    installed beside this Python for this tree; for another tree (``--against``), `python -m
    neuralab`, its own entry point, which an older tree's script may not name."""
    if Path(src).resolve() == SRC:
        start = shlex.quote(str(Path(sys.executable).parent / "neuralab"))
    else:
        start = f"{shlex.quote(sys.executable)} -m neuralab"
    return start + command.removeprefix("neuralab")
