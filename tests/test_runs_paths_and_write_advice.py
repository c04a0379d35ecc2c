"""Runs on the file systems of old clusters: a folder whose name is no UTF-8 (Latin-1), a
checkpoint write refused for a reason the advice must fit (read-only, full, not allowed), and
NEURALAB_RUNS as job scripts set it (empty, or with a quoted ``~``)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import digits_folder, read_only

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.runs import LAST, WEIGHTS, Run, Status, default_root
from neuralab.training.checkpoint import tensor_shapes

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("digits"), n=300)


def train_args(digits: Path, out: Path, epochs: int = 3) -> list[str]:
    return ["train", "--model", "mlp", "--data", str(digits), "--epochs", str(epochs), "--batch-size", "64",
            "--seed", "3", "--quiet", "--out", str(out)]


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def latin1(tmp_path: Path, name: bytes) -> Path:
    """A folder under ``tmp_path`` named by ``name``'s bytes, as Python gives such a name back
    from the file system (the bytes that are no UTF-8 as lone surrogates)."""
    return tmp_path / os.fsdecode(name)


# --- a run folder whose name is no UTF-8 -------------------------------------------------------

def test_a_run_in_a_latin1_folder_resumes_evaluates_and_exports(digits, tmp_path, capsys):
    """`--out "$(printf 'out\\xe9')"` trained, and then every command called its weights damaged
    (safetensors' safe_open takes only UTF-8 paths) and said to train the run again."""
    run = latin1(tmp_path, b"out\xe9")
    assert os.fsencode(run).endswith(b"/out\xe9")
    killed = subprocess.run([sys.executable, "-m", "neuralab", *train_args(digits, run)], capture_output=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src"), "NEURALAB_CRASH_AT": "metrics.jsonl:2"},
                            timeout=600)
    assert killed.returncode == -9 and Run(run).status() is Status.INTERRUPTED

    assert main(["train", "--resume", str(run), "--quiet"]) == 0, capsys.readouterr().err
    assert json.loads((run / "results.json").read_text())["epochs_run"] == 3
    assert main(["evaluate", str(run)]) == 0, capsys.readouterr().err
    assert main(["export", str(run), "--onnx"]) == 0, capsys.readouterr().err
    assert (run / "model.onnx").stat().st_size > 0
    assert tensor_shapes(run / LAST)["model.features.1.weight"] == (256, 64)  # 8x8 pictures, flattened
    assert Run(run).status() is Status.FINISHED


def test_tensor_shapes_reads_the_header_alone(tmp_path):
    """A header giving a tensor of 4 GiB, in a sparse file of that size: its shape comes back
    from the header's bytes, where reading the file would need gigabytes of memory."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [2**15, 2**15], "data_offsets": [0, 2**32]}}).encode()
    header += b" " * (-len(header) % 8)
    path = latin1(tmp_path, b"gro\xdf.safetensors")
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header)
        f.truncate(8 + len(header) + 2**32)
    assert tensor_shapes(path) == {"w": (2**15, 2**15)}
    with open(path, "r+b") as f:
        f.truncate(8 + len(header) + 2**31)
    with pytest.raises(NeuralabError, match=r"damaged or truncated safetensors file \(2,147,483,\d+ bytes where its "
                                            r"header gives 4,294,967,\d+\); put back a good copy"):
        tensor_shapes(path)


def test_weights_that_cannot_be_read_are_not_called_damaged(digits, tmp_path, monkeypatch):
    """A permission (or a disk that fails) says nothing of the file: no "damaged ... train the run again"."""
    run = tmp_path / "run"
    assert main(train_args(digits, run, epochs=1)) == 0
    weights, real_open = run / WEIGHTS, os.open

    def refused(path, *args, **kwargs):
        if os.fspath(path) == os.fspath(weights):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused)
    with pytest.raises(NeuralabError) as e:
        tensor_shapes(weights)
    assert str(e.value) == f"{weights}: cannot read (Permission denied)"


# --- a checkpoint that cannot be written: the advice fits the reason ---------------------------

def failing_replace(monkeypatch, code: int, folder: Path | None = None):
    """os.replace failing with ``code`` from the second checkpoint on (epoch 1 is saved whole);
    with ``folder``, that folder turns read-only instead, for real (a bind mount, as root)."""
    import contextlib

    real, seen, stack = os.replace, [], contextlib.ExitStack()

    def replace(src, dst, *args, **kwargs):
        if str(dst).endswith("last.safetensors"):
            seen.append(dst)
            if len(seen) == 2:
                if folder is None:
                    raise OSError(code, os.strerror(code))
                stack.enter_context(read_only(folder))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return stack


@pytest.mark.parametrize("code, advice", [
    (errno.ENOSPC, "free some space, then resume the run with --resume {run}"),
    (errno.EDQUOT, "free some space or raise your quota, then resume the run with --resume {run}"),
    (errno.EACCES, "fix the folder's permissions, then resume the run with --resume {run}"),
], ids=["ENOSPC", "EDQUOT", "EACCES"])
def test_a_checkpoint_write_that_fails_gets_the_advice_of_its_reason(digits, tmp_path, monkeypatch, capsys, code,
                                                                     advice):
    run = tmp_path / "run"
    with failing_replace(monkeypatch, code):
        assert main(train_args(digits, run)) == 2
    assert one_line(capsys) == (f"neuralab: error: {run / LAST}: cannot save epoch 2 ({os.strerror(code)}); "
                                f"{advice.format(run=run)} (earlier checkpoints are intact)")
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert json.loads((run / "results.json").read_text())["epochs_run"] == 3


def test_a_module_objects_run_that_cannot_save_is_told_the_python_call_that_resumes_it(digits, tmp_path, monkeypatch):
    """A module given as an object is not in its run: "resume the run with `resume` RUN" left
    out the module, and the resume it led to was refused for want of it. Following the message
    finishes the run."""
    from torch import nn

    from neuralab import ClassifierConfig, TrainConfig, resume_classifier, train_classifier

    class Wide(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.f = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))

        def forward(self, x):
            return self.f(x)

    run, config = tmp_path / "run", ClassifierConfig(data=str(digits), train=TrainConfig(epochs=3, seed=3, threads=1))
    with failing_replace(monkeypatch, errno.ENOSPC), pytest.raises(NeuralabError) as stopped:
        train_classifier(config, model=Wide(32), out=run, verbose=False)
    assert str(stopped.value).endswith(f"free some space, then resume the run with "
                                       f"`neuralab.resume_classifier({str(run)!r}, model=Wide(...))` "
                                       "(earlier checkpoints are intact)"), stopped.value
    monkeypatch.undo()
    resume_classifier(str(run), model=Wide(32), verbose=False)
    assert json.loads((run / "results.json").read_text())["epochs_run"] == 3


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only file system needs a bind mount, which needs root")
def test_a_run_whose_file_system_turned_read_only_is_copied_and_resumed_there(digits, tmp_path, monkeypatch, capsys):
    """The advice was to free space or fix permissions, then resume in place: neither helps a
    scratch file system remounted read-only. The copy resumes: a lock left in it is held by no
    process, and nothing in a run names its own folder."""
    run, copy = tmp_path / "scratch" / "run", tmp_path / "home" / "run"
    run.mkdir(parents=True)
    with failing_replace(monkeypatch, errno.EROFS, folder=run):
        assert main(train_args(digits, run)) == 2
        err = one_line(capsys)
        assert err == (f"neuralab: error: {run / LAST}: cannot save epoch 2 (Read-only file system); the file "
                       f"system is read-only: copy {run} somewhere writable, then resume the run with --resume {run}, "
                       f"naming the copy in place of {run} (earlier checkpoints are intact)")
        shutil.copytree(run, copy)
    monkeypatch.undo()
    assert main(["train", "--resume", str(copy), "--quiet"]) == 0, capsys.readouterr().err
    assert json.loads((copy / "results.json").read_text())["epochs_run"] == 3
    assert Run(run).status() is Status.INTERRUPTED  # the original, left as the read-only file system kept it


@pytest.mark.parametrize("code, advice", [
    (errno.ENOSPC, "free some space, then `{way}` writes the report again"),
    (errno.EROFS, "the file system is read-only: copy {run} somewhere writable, then `{way}` writes the report again, "
                  "naming the copy in place of {run}"),
], ids=["ENOSPC", "EROFS"])
def test_a_report_that_cannot_be_written_gets_the_advice_of_its_reason(digits, tmp_path, code, advice):
    from neuralab.reports.html import ReportNotWritten, kept_if_unwritable
    from neuralab.runs import report_call

    run = tmp_path / "run"
    assert main(train_args(digits, run, epochs=1)) == 0
    with pytest.raises(ReportNotWritten) as e, kept_if_unwritable(run):
        raise OSError(code, os.strerror(code), str(run / "report.html"))
    assert str(e.value).endswith(f"; {advice.format(run=run, way=report_call(run))}")
    said = e.value.said_with(f"neuralab report {run}")  # as the command line says it
    assert str(said).endswith(f"; {advice.format(run=run, way=f'neuralab report {run}')}")


# --- NEURALAB_RUNS as job scripts set it --------------------------------------------------------

def test_neuralab_runs_empty_is_unset_and_a_tilde_is_home(digits, tmp_path, monkeypatch, capsys):
    """`export NEURALAB_RUNS=$SCRATCH_RUNS` with that unset put runs in the current folder, and a
    quoted `~/nlruns` made a folder named `~` there (which `rm -rf ~` would then be typed to remove)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEURALAB_RUNS", "")
    assert default_root() == Path("runs")
    monkeypatch.setenv("NEURALAB_RUNS", "~/nlruns")
    assert default_root() == tmp_path / "home" / "nlruns"
    args = [a for a in train_args(digits, tmp_path, epochs=1) if a not in ("--out", str(tmp_path))]
    assert main(args) == 0
    made = list((tmp_path / "home" / "nlruns").iterdir())
    assert len(made) == 1 and Run(made[0]).status() is Status.FINISHED
    assert not (tmp_path / "~").exists()
    assert main(["runs"]) == 0 and made[0].name in capsys.readouterr().out
