"""docs/runs.md's SLURM job script for torchrun, run as written, with torchrun and scontrol
stood in for: torchrun ends with status 1 whether the job was stopped or neuralab refused its
command, so the script decides from the signal it passed on and from the run's folder. A job
stopped while the processes still read the data (no run folder yet) was never requeued, and a
refused resume of an interrupted run was requeued again and again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import digits_folder
from neuralab.cli import main
from neuralab.runs import Run, Status
from test_interrupt_words import ctrl_c_in_epoch_2

RUNS_MD = Path(__file__).resolve().parents[1] / "docs" / "runs.md"
BIN = Path(sys.executable).parent  # the `neuralab` command the script asks about its run

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def job_script() -> str:
    """The bash block of docs/runs.md's "Under torchrun" section."""
    section = RUNS_MD.read_text().split("### Under torchrun", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(blocks) == 1 and "torchrun" in blocks[0] and "scontrol requeue" in blocks[0], blocks
    return blocks[0]


def stand_ins(folder: Path, torchrun: str) -> dict:
    """An environment whose `torchrun` is the bash ``torchrun`` body and whose `scontrol`
    writes its arguments to scontrol.log; `neuralab` is the real command."""
    tools = folder / "bin"
    tools.mkdir()
    for name, body in (("torchrun", torchrun), ("scontrol", 'echo "$@" >> scontrol.log')):
        (tools / name).write_text(f"#!/bin/bash\n{body}\n")
        (tools / name).chmod(0o755)
    return {**os.environ, "PATH": f"{tools}:{BIN}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242"}


def run_job(folder: Path, torchrun: str, signalled: bool) -> int:
    """The job script's exit status in ``folder``; ``signalled``: SIGTERM to the batch shell, as
    `--signal=B:TERM` sends it, once torchrun has started."""
    script = folder / "job.sh"
    script.write_text(job_script())
    job = subprocess.Popen(["bash", str(script)], cwd=folder, env=stand_ins(folder, torchrun))
    if signalled:
        deadline = time.monotonic() + 30
        while not (folder / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        job.send_signal(signal.SIGTERM)
    return job.wait(timeout=60)


# torchrun as a signal finds it while its processes read the data: stopped, exit 1, no run folder
LOADING = "trap 'exit 1' TERM; touch started; while :; do sleep 0.1; done"


def test_a_job_stopped_while_the_data_loads_is_requeued_though_it_has_no_run_folder(tmp_path):
    assert run_job(tmp_path, LOADING, signalled=True) == 0
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"
    assert not (tmp_path / "runs").exists()


def test_a_refused_command_is_not_requeued(tmp_path):
    """neuralab's refusal (status 2 in each process) reaches the script as torchrun's 1, with no run."""
    refused = "echo 'neuralab: error: unknown dataset' >&2; exit 1"
    assert run_job(tmp_path, refused, signalled=False) == 1
    assert not (tmp_path / "scontrol.log").exists()


def interrupted_run(tmp_path, monkeypatch) -> Path:
    """An MLP run on digits at the script's --out, stopped in epoch 2 of 50."""
    run = tmp_path / "runs" / "lenet5-mnist-s1"
    digits = digits_folder(tmp_path / "digits", 300)
    ctrl_c_in_epoch_2(monkeypatch)
    assert main(["train", "--model", "mlp", "--data", str(digits), "--epochs", "50", "--batch-size", "64",
                 "--threads", "1", "--quiet", "--out", str(run)]) == 130
    assert Run(run).status() is Status.INTERRUPTED
    return run


# torchrun as a signal that only it received finds it: its one process resumed the run (and recorded
# its session), then stopped, exit 1
RESUMED_THEN_STOPPED = """neuralab train --resume runs/lenet5-mnist-s1 --threads 1 --quiet & p=$!
until grep -q '"sessions"' runs/lenet5-mnist-s1/config.json; do sleep 0.05; done
kill -TERM $p; wait $p; exit 1"""

# torchrun running the job's command in one process: neuralab's status 2 comes out as torchrun's 1
ONE_PROCESS = """shift 4  # --nproc_per_node 2 -m neuralab
neuralab "$@" && exit 0 || exit 1"""


def test_a_run_interrupted_by_a_signal_that_only_torchrun_received_is_requeued(tmp_path, monkeypatch, capsys):
    run = interrupted_run(tmp_path, monkeypatch)
    assert run_job(tmp_path, RESUMED_THEN_STOPPED, signalled=False) == 0
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"
    assert Run(run).status() is Status.INTERRUPTED and len(Run(run).record["sessions"]) == 1


def test_a_refused_resume_of_an_interrupted_run_is_not_requeued(tmp_path, monkeypatch, capsys):
    """The script's --model, --data, --epochs and --seed are not the run's: each process refuses the resume."""
    run = interrupted_run(tmp_path, monkeypatch)
    assert run_job(tmp_path, ONE_PROCESS, signalled=False) == 1
    assert not (tmp_path / "scontrol.log").exists()
    assert Run(run).status() is Status.INTERRUPTED


def test_a_finished_job_ends_with_status_0_and_is_not_requeued(tmp_path):
    assert run_job(tmp_path, "exit 0", signalled=False) == 0
    assert not (tmp_path / "scontrol.log").exists()
