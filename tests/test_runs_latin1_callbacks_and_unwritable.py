"""Runs on cluster file systems, second round: NEURALAB_RUNS naming a user this machine does
not know, callbacks checked before a forecast's run is made, a TensorBoard callback into a
folder named in Latin-1, the advice on resuming such a run, files a finishing run cannot write,
and file names that are no UTF-8 printed as their bytes."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import digits_folder

from neuralab.cli import main
from neuralab.errors import NeuralabError, ParameterError
from neuralab.files import WriteError, run_write_advice, write_advice
from neuralab.runs import Run, Status

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("digits"), n=300)


def latin1(folder: Path, name: bytes) -> Path:
    return folder / os.fsdecode(name)


def small_forecast():
    from neuralab.forecasting.pipeline import ForecastConfig
    from neuralab.forecasting.windows import WindowConfig
    from neuralab.training.config import TrainConfig

    return ForecastConfig(data="seattle-weather", target="temp_max", windows=WindowConfig(lookback=8),
                          baselines=("persistence",), backtest_folds=1, train=TrainConfig(epochs=2, threads=1))


# --- NEURALAB_RUNS and NEURALAB_DATA naming a user this machine does not know ------------------

@pytest.mark.parametrize("variable", ["NEURALAB_RUNS", "NEURALAB_DATA"])
def test_a_tilde_of_a_user_this_machine_does_not_know_is_one_line(tmp_path, monkeypatch, capsys, variable):
    """pathlib's expanduser raised RuntimeError("Could not determine home directory.") from every
    command that read the runs folder (a compute node without the cluster's user map)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, "~nosuchuser-nl/runs")
    argv = ["runs"] if variable == "NEURALAB_RUNS" else ["data", "fetch", "mnist"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (f"neuralab: error: {variable}='~nosuchuser-nl/runs': no user nosuchuser-nl on this machine to "
                   "expand ~nosuchuser-nl; give the folder's full path\n")
    assert not any(tmp_path.iterdir())


# --- callbacks: one alone, and TensorBoard into a folder named in Latin-1 ----------------------

def test_one_callback_not_in_a_list_is_refused_by_forecasting_before_the_run_is_made(tmp_path):
    from neuralab import resume_forecast, run_forecast
    from neuralab.training.callbacks import EarlyStopping

    out = tmp_path / "fc"
    with pytest.raises(ParameterError, match=r"^callbacks=<neuralab.training.callbacks.EarlySto.*: give a list of "):
        run_forecast(small_forecast(), out=out, verbose=False, callbacks=EarlyStopping(patience=1))
    assert not out.exists()
    with pytest.raises(ParameterError, match=r"^callbacks=<.*: give a list of callbacks"):
        resume_forecast(out, verbose=False, callbacks=EarlyStopping(patience=1))


def test_a_tensorboard_callback_into_a_latin1_run_is_refused_before_the_run_is_made(digits, tmp_path):
    """It was refused in on_train_begin, after config.json, model.json and summary.txt, leaving an
    interrupted run, with the advice to leave `tensorboard` off, which was off."""
    from neuralab import ClassifierConfig, TrainConfig, run_forecast, train_classifier
    from neuralab.training.tensorboard import TensorBoard

    out = latin1(tmp_path, b"libtb\xe9")
    config = ClassifierConfig(model="mlp", data=str(digits), train=TrainConfig(epochs=1, threads=1))
    with pytest.raises(NeuralabError) as e:
        train_classifier(config, out=out, verbose=False, callbacks=[TensorBoard()])
    assert str(e.value) == (f"{out / 'tensorboard'}: TensorBoard writes its events only under folder names in UTF-8, "
                            "and this name is not; name the run's folder in UTF-8 (give out another name), or give "
                            "the TensorBoard callback a log_dir named in UTF-8")
    assert not out.exists()

    with pytest.raises(NeuralabError) as e:
        train_classifier(config, out=tmp_path / "utf8", verbose=False, callbacks=[TensorBoard(log_dir=out)])
    assert str(e.value).endswith("; give the TensorBoard callback a log_dir named in UTF-8")
    assert not (tmp_path / "utf8").exists() and not out.exists()

    with pytest.raises(NeuralabError, match="or give the TensorBoard callback a log_dir named in UTF-8$"):
        run_forecast(small_forecast(), out=out, verbose=False, callbacks=[TensorBoard()])
    assert not out.exists()


def test_resuming_a_latin1_run_made_with_tensorboard_says_to_rename_it(digits, tmp_path):
    """The advice was to give --out another name or leave --tensorboard off: a resume takes
    neither. And the path came out as `tb\\udce9`, which names no file: its bytes come out now."""
    pytest.importorskip("tensorboard", reason="pip install 'neuralab[tensorboard]' to test --tensorboard")
    made = tmp_path / "tb"
    neuralab = [sys.executable, "-m", "neuralab"]
    killed = subprocess.run([*neuralab, "train", "--model", "mlp", "--data", str(digits), "--epochs", "3",
                             "--threads", "1", "--tensorboard", "--quiet", "--out", str(made)], capture_output=True,
                            env={**ENV, "NEURALAB_CRASH_AT": "metrics.jsonl:2"}, timeout=600)
    assert killed.returncode == -9, killed.stderr.decode()
    run = latin1(tmp_path, b"tb\xe9")
    made.rename(run)
    done = subprocess.run([*neuralab, "train", "--resume", run], capture_output=True, env=ENV, timeout=600)
    assert done.returncode == 2
    assert done.stderr == (b"neuralab: error: " + os.fsencode(run) + b": TensorBoard writes its events only under "
                           b"folder names in UTF-8, and this name is not; rename the run's folder to a name in UTF-8 "
                           b"(mv), then resume the run with --resume and that name\n")
    assert Run(run).status() is Status.INTERRUPTED

    listed = subprocess.run([*neuralab, "runs", tmp_path, "--json"], capture_output=True, env=ENV, timeout=600)
    assert listed.returncode == 0, listed.stderr
    row, = json.loads(listed.stdout.decode("utf-8"))  # valid JSON: the byte as Python names it, \udce9
    assert os.fsencode(row["id"]) == b"tb\xe9"
    table = subprocess.run([*neuralab, "runs", tmp_path], capture_output=True, env=ENV, timeout=600)
    assert b"tb\xe9" in table.stdout and b"udce9" not in table.stdout


# --- files a finishing run cannot write: the run is resumable ----------------------------------

def test_a_forecast_whose_results_cannot_be_written_says_to_copy_and_resume_it(tmp_path, monkeypatch):
    """results.json refused by a file system turned read-only: "write somewhere else" read as
    "train again elsewhere", though every epoch is kept and a resume of a copy finishes the run."""
    from neuralab import resume_forecast, run_forecast

    run, copy, real = tmp_path / "fc", tmp_path / "copy", os.replace

    def replace(src, dst, *args, **kwargs):
        if os.fspath(dst).endswith("results.json"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(NeuralabError) as e:
        run_forecast(small_forecast(), out=run, verbose=False)
    assert str(e.value) == (f"{run / 'results.json'}: cannot write (Read-only file system); the file system is "
                            f"read-only: copy {run} somewhere writable, then resume the run with resume {run}, "
                            f"naming the copy in place of {run} (every epoch trained is kept)")
    monkeypatch.undo()
    assert Run(run).status() is Status.INTERRUPTED
    shutil.copytree(run, copy)
    result = resume_forecast(copy, verbose=False)
    assert len(result.history) == 2 and Run(copy).status() is Status.FINISHED


def test_the_finishing_writes_get_the_advice_of_a_resumable_run(tmp_path):
    """The helper that classify's results.json and summary.txt use too."""
    from neuralab.runs import resumable_if_unwritable

    with pytest.raises(NeuralabError) as e, resumable_if_unwritable(tmp_path):
        raise WriteError(tmp_path / "results.json", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert str(e.value) == (f"{tmp_path / 'results.json'}: cannot write (No space left on device); free some "
                            f"space, then resume the run with resume {tmp_path} (every epoch trained is kept)")


# --- one table of advice ------------------------------------------------------------------------

@pytest.mark.parametrize("code, written, in_run", [
    (errno.EIO, "the disk or the network file system failed (an input/output error): have it checked, or write "
                "somewhere else",
     "the disk or the network file system failed (an input/output error): have it checked, then AGAIN"),
    (errno.ELOOP, "its symbolic links loop, or lead through too many others: fix them, or write somewhere else",
     "its symbolic links loop, or lead through too many others: fix them, then AGAIN"),
    (errno.ENAMETOOLONG, "a name may have at most 255 bytes and a path 4,096: choose a shorter one",
     "a name may have at most 255 bytes and a path 4,096: copy RUN to a shorter path, then AGAIN, naming the copy "
     "in place of RUN"),
    (errno.EDQUOT, "free some space or raise your quota, or write somewhere else",
     "free some space or raise your quota, then AGAIN"),
], ids=["EIO", "ELOOP", "ENAMETOOLONG", "EDQUOT"])
def test_each_reason_gets_one_advice_with_the_ending_of_its_use(code, written, in_run):
    """A run's file that hit EIO, a loop of links or a path too long was told to free some space
    or fix permissions: the run table knew four reasons and the other table the rest."""
    assert write_advice(OSError(code, os.strerror(code))) == written
    assert run_write_advice(code, "RUN", "AGAIN") == in_run
