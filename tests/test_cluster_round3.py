"""What a researcher running neuralab under a scheduler on an offline node meets: paths no file
can have, `--threads` under torchrun, reruns compared with `cmp`, and the advice in the lines
that refuse an output folder or a data cache. On real data: scikit-learn's handwritten digits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import TORCHRUN, digits_folder

import neuralab.cli
from neuralab.cli import main
from neuralab.runs import Run
from neuralab.training import device
from neuralab.training.checkpoint import load_tensors, save_tensors

TOO_LONG = "File name too long; a name may have at most 255 bytes and a path 4,096; choose a shorter one"
NAME = "b" * 256  # one byte over what a name may have on Linux's file systems


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("digits"))


def train_args(digits: Path, out: Path, *more: str) -> list[str]:
    return ["train", "--model", "mlp", "--data", str(digits), "--epochs", "2", "--batch-size", "64",
            "--seed", "3", "--threads", "1", "--quiet", "--out", str(out), *more]


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("trained") / "run"
    args = train_args(digits, run)
    args[args.index("mlp")] = "cnn"  # inspect shows a convolution's filters
    assert main(args) == 0
    return run


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("neuralab: error: "), err
    return err.removeprefix("neuralab: error: ").rstrip("\n")


# --- paths no file can have --------------------------------------------------------------------

COMMANDS = {  # each command given the long path where it takes one; `{long}`: the path
    "train --out": lambda d, r, long: train_args(d, long),
    "train --data": lambda d, r, long: ["train", "--model", "mlp", "--data", long, "--epochs", "1"],
    "train --resume": lambda d, r, long: ["train", "--resume", long],
    "runs": lambda d, r, long: ["runs", long],
    "evaluate": lambda d, r, long: ["evaluate", long],
    "report": lambda d, r, long: ["report", long],
    "predict": lambda d, r, long: ["predict", str(r), f"{long}.png"],
    "export": lambda d, r, long: ["export", long, "--onnx"],
    "inspect --out": lambda d, r, long: ["inspect", str(r), str(next(Path(d).glob("0/*.png"))), "--out", long],
    "forecast --out": lambda d, r, long: ["forecast", "--data", "seattle-weather", "--epochs", "1", "--out", long],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_name_too_long_is_one_line_in_every_command(digits, trained, tmp_path, capsys, command):
    long = str(tmp_path / NAME)
    assert main(COMMANDS[command](digits, trained, long)) == 2
    err = one_error(capsys)
    flag = command.partition(" ")[2]
    assert err.startswith(f"{flag} {str(tmp_path)[:20]}" if flag else str(tmp_path)[:20]), err
    assert err.endswith(f"/{'b' * 24}…{'b' * 8}{'.png' if command == 'predict' else 'bbbb'}: {TOO_LONG}"), err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_a_path_over_path_max_is_one_line_and_writes_nothing(digits, tmp_path, capsys):
    long = tmp_path.joinpath(*["c" * 240] * 17)  # each name allowed, the whole over 4,096 bytes
    assert main(train_args(digits, long)) == 2
    assert one_error(capsys).endswith(TOO_LONG)
    assert list(tmp_path.iterdir()) == []


def test_torchruns_other_ranks_leave_the_line_to_rank_0(digits, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(neuralab.cli, "RANK_0_SAYS", 0)
    assert main(["runs", str(tmp_path / NAME)]) == 2
    assert capsys.readouterr().err == ""


def test_an_oserror_about_no_path_of_the_users_is_not_taken_for_bad_input(tmp_path, monkeypatch):
    import neuralab.cli.runs

    def failing_disk(args):
        raise OSError(5, "Input/output error", str(tmp_path))

    monkeypatch.setattr(neuralab.cli.runs, "run_runs", failing_disk)
    with pytest.raises(OSError, match="Input/output error"):  # no typing mistake: a traceback, exit 1
        main(["runs", str(tmp_path)])


# --- advice that fits what went wrong ----------------------------------------------------------

def test_a_dangling_symbolic_link_as_out_is_named_as_one(digits, tmp_path, capsys):
    (tmp_path / "link").symlink_to(tmp_path / "nowhere" / "x")
    assert main(train_args(digits, tmp_path / "link")) == 2
    assert one_error(capsys) == (f"--out {tmp_path / 'link'}: cannot create the folder (File exists); "
                                 f"{tmp_path / 'link'} is a symbolic link to {tmp_path / 'nowhere' / 'x'}, which "
                                 "does not exist: make that folder, or remove the link")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link"]


def test_symbolic_links_in_a_loop_as_out_are_named_as_such(digits, tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    for out in (tmp_path / "a", tmp_path / "a" / "run"):
        assert main(train_args(digits, out)) == 2
        assert one_error(capsys).endswith("its symbolic links loop, or lead through too many others: fix them, or "
                                          "write somewhere else")


def test_serve_with_its_runs_folder_in_a_loop_of_links_says_so_in_one_line(tmp_path):
    """It printed a note that the folder was not there yet, then Python's RuntimeError, exit 1."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    done = subprocess.run([sys.executable, "-m", "neuralab", "serve", "--runs", "a", "--port", "0"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # a server that started would be killed
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("neuralab: error: --runs a: ") and "symbolic links loop" in done.stderr


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_out_in_proc_is_told_that_the_file_system_takes_no_files(digits, capsys):
    assert main(train_args(digits, Path("/proc/neuralab-run"))) == 2
    err = one_error(capsys)
    assert "the file system there takes no new files (as /proc and /sys)" in err and "free some space" not in err


@pytest.mark.parametrize("given", ["nosuch", "empty", None])
def test_a_missing_dataset_names_neuralab_data_where_it_is_set(tmp_path, monkeypatch, capsys, given):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    if given is None:
        monkeypatch.delenv("NEURALAB_DATA")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    else:
        monkeypatch.setenv("NEURALAB_DATA", given)
    assert main(["train", "--model", "mlp", "--data", "mnist", "--epochs", "1", "--out", "run"]) == 2
    err = one_error(capsys)
    if given is None:
        assert f"copy the files into {tmp_path / 'cache' / 'neuralab' / 'mnist'} (or set NEURALAB_DATA);" in err
    else:
        # a folder set on purpose is no mistake: only one that is not there is told to be fixed
        said = "is used, a folder that does not exist: fix or unset it" if given == "nosuch" else "chooses it"
        assert f"copy the files into {tmp_path / given / 'mnist'} (NEURALAB_DATA={given} {said});" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


# --- the same run, the same bytes --------------------------------------------------------------

def test_the_same_tensors_and_metadata_give_the_same_bytes_every_time(tmp_path):
    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(4, dtype=torch.float16)}
    files = []
    for i in range(12):  # safetensors' metadata map takes another order for most of them
        save_tensors(tmp_path / f"{i}.safetensors", tensors, {"epoch": 3, "classes": ["0", "1"]})
        files.append((tmp_path / f"{i}.safetensors").read_bytes())
    assert len(set(files)) == 1
    loaded, meta = load_tensors(tmp_path / "0.safetensors")  # and safetensors and neuralab read it
    assert meta == {"epoch": 3, "classes": ["0", "1"]} and all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    from safetensors.torch import load_file

    assert all(torch.equal(load_file(tmp_path / "0.safetensors")[k], tensors[k]) for k in tensors)


def test_two_runs_with_one_seed_write_the_same_weights_file(digits, tmp_path):
    for out in ("one", "two"):
        assert main(train_args(digits, tmp_path / out)) == 0
    assert (tmp_path / "one" / "model.safetensors").read_bytes() == (tmp_path / "two" / "model.safetensors").read_bytes()


# --- --threads under torchrun ------------------------------------------------------------------

def test_threads_under_torchrun_are_the_nodes_shared_over_its_processes(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two nodes of two processes
    assert [device.compute_threads(n) for n in (8, 5, 2, 1)] == [4, 2, 1, 1]
    with device.session_threads(6):  # a resume's, as a new run's
        assert device.compute_threads(1) == 3
    env = device.environment(torch.device("cpu"), 8)
    assert (env["threads"], env["world_size"], env["local_world_size"]) == (4, 4, 2)
    monkeypatch.delenv("RANK")  # no torchrun: the count given
    assert device.compute_threads(8) == 8 and "local_world_size" not in device.environment(torch.device("cpu"), 8)


@pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                    reason="needs torch.distributed with gloo")
def test_a_torchrun_job_given_its_cores_runs_that_many_threads_in_all(digits, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = train_args(digits, tmp_path / "run")
    args[args.index("--threads") + 1] = "2"  # the node's 2 cores, for its 2 processes
    p = subprocess.run([*TORCHRUN, "-m", "neuralab", *args], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    record = Run(tmp_path / "run").record
    assert record["config"]["train"]["threads"] == 2  # what was asked: the node's
    assert record["environment"]["threads"] == 1  # what each process computed with
    assert (record["environment"]["world_size"], record["environment"]["local_world_size"]) == (2, 2)


def test_a_name_the_file_system_takes_is_written_whatever_the_temporary_file_beside_it_adds(tmp_path):
    """The temporary file beside it was `.NAME.XXXXXXXX.tmp`, 14 bytes longer: names of 242 to 255
    bytes were refused as too long, which they are not."""
    from neuralab.files import atomic_write

    for name in ("x" * 250 + ".onnx", "é" * 126 + ".js"):  # 255 bytes, the most a name may have
        with atomic_write(tmp_path / name, "w") as f:
            f.write("kept")
        assert (tmp_path / name).read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["x" * 250 + ".onnx", "é" * 126 + ".js"])
