"""Training under torchrun on the CPU (gloo, 2 processes): what each process prints, writes and
refuses, and what the processes must agree on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import torch

from helpers import TORCHRUN, idx_subset
from neuralab.cli import main

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="needs torch.distributed with gloo")

KERAS_FILE = Path(__file__).parent / "data" / "keras" / "graph_tfk2.keras"


@pytest.fixture(scope="module")
def tiny_fashion(fashion_mnist, tmp_path_factory):
    return idx_subset(fashion_mnist, tmp_path_factory.mktemp("tiny"), 1500, 300)


def torchrun(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node 2 ARGS`` (a script, or -m neuralab ...) on the CPU."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([*TORCHRUN, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=240)


def said(p: subprocess.CompletedProcess) -> list[str]:
    return [line for line in p.stderr.splitlines() if line.startswith("neuralab:")]


def neuralab_frames(p: subprocess.CompletedProcess) -> list[str]:
    """Traceback lines in neuralab's code (torchrun's own report has a traceback of torchrun's)."""
    return [line for line in p.stderr.splitlines() if line.strip().startswith("File") and "/neuralab/" in line]


def train_args(data: Path, *more: str) -> list[str]:
    return ["-m", "neuralab", "train", "--data", "fashion-mnist", "--data-dir", str(data), "--epochs", "1",
            "--val-fraction", "0", "--quiet", *more]


def test_forecast_under_torchrun_is_refused_once_and_writes_nothing(tmp_path):
    p = torchrun("-m", "neuralab", "forecast", "--data", "seattle-weather", "--epochs", "1",
                 "--out", str(tmp_path / "fc"))
    assert p.returncode != 0
    assert said(p) == ["neuralab: error: forecasting, which trains small networks, runs in one process, and torchrun "
                       "started 2: run it without torchrun (torchrun is for training image classifiers)"], p.stderr[-3000:]
    assert not (tmp_path / "fc").exists()


@pytest.mark.parametrize("rank, lines", [("0", 1), ("1", 0)])
def test_import_in_a_job_of_two_is_refused_by_rank_0_alone(tmp_path, monkeypatch, capsys, rank, lines):
    """What torchrun gives each process; the refusal comes before any process group."""
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("LOCAL_RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    code = main(["import", str(KERAS_FILE), "--out", str(tmp_path / "imp")])
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["neuralab: error: importing a Keras model, which trains nothing, runs in one process, and "
                   "torchrun started 2: run it without torchrun (torchrun is for training image classifiers)"][:lines]
    assert not (tmp_path / "imp").exists()


def test_a_batch_that_leaves_a_process_without_samples_is_refused_before_any_file(tiny_fashion, tmp_path):
    """1,500 training images in batches of 1,499: the last batch holds 1 image, none for rank 1."""
    p = torchrun(*train_args(tiny_fashion, "--batch-size", "1499", "--out", str(tmp_path / "run")))
    assert p.returncode != 0
    assert said(p) == ["neuralab: error: --batch-size 1499: torchrun's 2 processes split every batch, and the last "
                       "batch of an epoch of 1500 training samples holds 1, which leaves a process without samples; "
                       "choose a --batch-size such as 1498 or start fewer processes"], p.stderr[-3000:]
    assert not neuralab_frames(p), p.stderr[-3000:]
    assert not (tmp_path / "run").exists()


BATCH_NORM_NET = """
from torch import nn


class Net(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Flatten(), nn.Linear(784, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
"""


def test_every_process_checks_the_smallest_share_of_the_last_batch(tiny_fashion, tmp_path):
    """Batches of 1,497: the last holds 3 images, 2 for rank 0 and 1 for rank 1, where batch norm
    fails in training mode. Both processes refuse alike; rank 0 alone says it."""
    (tmp_path / "net.py").write_text(BATCH_NORM_NET)
    p = torchrun(*train_args(tiny_fashion, "--model", str(tmp_path / "net.py"), "--batch-size", "1497",
                             "--out", str(tmp_path / "run")))
    assert p.returncode != 0
    lines = said(p)
    assert len(lines) == 1 and "the last batch of an epoch, 1 of 1500" in lines[0], p.stderr[-3000:]
    assert not (tmp_path / "run").exists()


UNUSED_NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.fc = nn.Linear(8 * 26 * 26, 10)
        self.spare = nn.Linear(10, 10)  # tried once, no longer used

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))
"""


def test_a_module_with_an_unused_parameter_trains_under_torchrun(tiny_fashion, tmp_path):
    (tmp_path / "net.py").write_text(UNUSED_NET)
    p = torchrun(*train_args(tiny_fashion, "--model", str(tmp_path / "net.py"), "--batch-size", "500",
                             "--out", str(tmp_path / "run")))
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("test accuracy") == 1
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])["samples"] == 1500


TRAINER_SCRIPT = """
import gc, json, sys
import numpy as np, torch
from torch import nn
from neuralab.data.idx import read_idx
from neuralab.data.sources import file_in
from neuralab.training.callbacks import Callback
from neuralab.training.device import dist_info
from neuralab.training.seeds import seed_everything
from neuralab.training.trainer import TrainConfig, Trainer

from pathlib import Path
data, out = Path(sys.argv[1]), sys.argv[2]
x = torch.from_numpy(read_idx(file_in(data, "train-images-idx3-ubyte.gz")).astype(np.float32) / 255)[:, None]
y = torch.from_numpy(read_idx(file_in(data, "train-labels-idx1-ubyte.gz")).astype(np.int64))
rank = dist_info().rank
seed_everything(0)
model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.Dropout(0.5), nn.ReLU(), nn.Linear(64, 10))
masks = []  # a linear layer's outputs are not 0: the zeros are dropout's
model[2].register_forward_hook(lambda module, args, output: masks.append((output == 0).tolist()))


class StopOnRank1(Callback):  # as an early stopping that sees a near tie differently
    def on_epoch_end(self, trainer, record):
        return rank == 1


trainer = Trainer(model, TrainConfig(epochs=3, batch_size=100, device="cpu"), verbose=False, callbacks=[StopOnRank1()])
history = trainer.fit(x, y)
with open(f"{out}/rank{rank}.json", "w") as f:
    json.dump({"epochs": len(history), "last_mask": masks[-1],
               "wrappers_left": sum(isinstance(o, nn.parallel.DistributedDataParallel) for o in gc.get_objects())}, f)
"""


def test_processes_draw_their_own_dropout_masks_and_stop_together(tiny_fashion, tmp_path):
    (tmp_path / "script.py").write_text(textwrap.dedent(TRAINER_SCRIPT))
    p = torchrun(str(tmp_path / "script.py"), str(tiny_fashion), str(tmp_path))
    assert p.returncode == 0, p.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["epochs"] for r in ranks] == [1, 1]  # rank 1's callback stopped both
    # the last step's 50 samples of each share: the same mask in both would halve dropout's noise
    assert ranks[0]["last_mask"] != ranks[1]["last_mask"]
    # DDP's wrapper holds the process group: one alive at exit outlives the group's teardown, and
    # gloo's threads, ended with the interpreter, now and then aborted a finished process
    assert [r["wrappers_left"] for r in ranks] == [0, 0]


DEFAULT_FOLDER_SCRIPT = """
import json, sys
from neuralab.training import ClassifierConfig, TrainConfig, train_classifier
from neuralab.training.device import dist_info

config = ClassifierConfig(model="mlp", data="fashion-mnist", data_dir=sys.argv[1], val_fraction=0,
                          train=TrainConfig(epochs=1, batch_size=500))
result = train_classifier(config, verbose=False)
with open(f"rank{dist_info().rank}.json", "w") as f:
    json.dump(str(result.run_dir), f)
"""


def test_every_process_names_the_run_folder_rank_0_made(tiny_fashion, tmp_path):
    """Default folder names of the next ten minutes are taken (a loaded machine may take more
    than one to start the job), so rank 0 makes NAME-2: every process must say that folder, not
    the NAME it would have chosen itself."""
    now = time.time()
    for second in range(600):
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now + second))
        (tmp_path / "runs" / f"mlp-fashion-mnist-{stamp}").mkdir(parents=True)
    (tmp_path / "script.py").write_text(textwrap.dedent(DEFAULT_FOLDER_SCRIPT))
    p = torchrun(str(tmp_path / "script.py"), str(tiny_fashion), cwd=tmp_path, env={"NEURALAB_RUNS": "runs"})
    assert p.returncode == 0, p.stderr[-3000:]
    folders = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert folders[0] == folders[1] and folders[0].endswith("-2")
    assert (tmp_path / folders[0] / "results.json").is_file()


def exits(p: subprocess.CompletedProcess) -> dict[str, str]:
    """Each rank's exit status, from torchrun's report of the processes that failed."""
    return dict(re.findall(r"rank\s*: (\d+) \(local_rank: \d+\)\n\s*exitcode\s*: (-?\d+)", p.stderr))


def test_a_folder_rank_0_refuses_ends_every_process_alike(tiny_fashion, tmp_path):
    """Rank 0 alone makes the run's folder: refused there, rank 1 went on to wait for it in
    training until torchrun stopped it. torchrun looks at its processes every 2 s here, so that
    each ends on its own."""
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("my own notes\n")
    p = torchrun("--monitor-interval", "2", *train_args(tiny_fashion, "--model", "mlp", "--out", str(mine)))
    assert said(p) == [f"neuralab: error: --out {mine}: folder is not empty and holds no run; choose another "
                       "--out"], p.stderr[-3000:]
    assert exits(p) == {"0": "2", "1": "2"}, p.stderr[-3000:]
    assert [f.name for f in mine.iterdir()] == ["todo.txt"]


def test_a_resume_of_a_run_another_process_holds_ends_every_process_alike(tiny_fashion, tmp_path, monkeypatch):
    """Rank 0 alone takes the run's lock: held by another process, rank 1 resumed the run on
    its own instead of stopping with rank 0's refusal."""
    from neuralab.runs import Run
    from neuralab.training.trainer import Trainer

    def pressed(self, *args, **kwargs):
        raise KeyboardInterrupt

    run = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(Trainer, "predict", pressed)  # in the test pass: an interrupted run with every epoch done
        assert main(train_args(tiny_fashion, "--model", "mlp", "--out", str(run))[2:]) == 130
    held = Run(run).lock()
    try:
        p = torchrun("--monitor-interval", "2", "-m", "neuralab", "train", "--resume", str(run), "--quiet")
    finally:
        held.unlock()
    lines = said(p)
    assert len(lines) == 1 and str(run) in lines[0] and "another" in lines[0], p.stderr[-3000:]
    assert exits(p) == {"0": "2", "1": "2"}, p.stderr[-3000:]
    assert not (run / "results.json").exists()


def test_more_processes_than_gpus_are_refused_naming_the_count(monkeypatch):
    from neuralab.errors import NeuralabError
    from neuralab.training.device import pick_device

    for name, value in {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(NeuralabError, match=r"^LOCAL_RANK 1: this machine shows 1 GPU, one per process; start "
                                            r"torchrun with nproc_per_node 1 or fewer"):
        pick_device("cuda")


def test_float16_autocast_trains_with_a_gradient_scale_that_the_checkpoint_keeps(tiny_fashion, tmp_path):
    from neuralab.data.idx import read_idx
    from neuralab.data.sources import file_in
    from neuralab.training.checkpoint import load_tensors
    from neuralab.training.seeds import seed_everything
    from neuralab.training.trainer import TrainConfig, Trainer

    x = torch.tensor(read_idx(file_in(tiny_fashion, "train-images-idx3-ubyte.gz"))[:600]).float()[:, None] / 255
    y = torch.tensor(read_idx(file_in(tiny_fashion, "train-labels-idx1-ubyte.gz"))[:600]).long()
    seed_everything(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=50, amp="fp16", device="cpu"), run_dir=tmp_path,
                      verbose=False)
    trainer.fit(x, y)
    tensors, _ = load_tensors(tmp_path / "checkpoints" / "last.safetensors")
    scale, _ = tensors["state.grad_scale"].tolist()
    assert scale == trainer._scaler.get_scale() and 1 <= scale <= 2.0**16  # float16's largest power of 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_compare_under_torchrun_prints_and_writes_once(tiny_fashion, tmp_path):
    p = torchrun("-m", "neuralab", "compare", "--models", "lenet5", "--seeds", "1", "--data", "fashion-mnist",
                 "--data-dir", str(tiny_fashion), "--epochs", "1", "--batch-size", "500", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("| lenet5 |") == 1 and p.stdout.count("written:") == 1, p.stdout
    assert (tmp_path / "compare.csv").read_text().count("lenet5") == 1


CRASHING_NET = """
import os
from torch import nn


class Net(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Flatten(), nn.Linear(784, 10))
        self.steps = 0

    def forward(self, x):
        self.steps += self.training
        if os.environ["RANK"] == "1" and self.steps > 3:  # the process dies mid-epoch (the OOM killer, a fault)
            os._exit(3)
        return super().forward(x)
"""


def test_a_process_that_dies_leaves_one_line_not_a_gloo_traceback(tiny_fashion, tmp_path):
    (tmp_path / "net.py").write_text(CRASHING_NET)
    p = torchrun(*train_args(tiny_fashion, "--model", str(tmp_path / "net.py"), "--batch-size", "100",
                             "--out", str(tmp_path / "run")))
    assert p.returncode != 0
    assert "Connection closed by peer" not in p.stderr and not neuralab_frames(p), p.stderr[-3000:]
    assert len(said(p)) == 1, p.stderr[-3000:]


@pytest.mark.parametrize("users_omp, share, threads", [(None, "4", "4"), ("1", "None", "1")])
def test_threads_torchrun_chose_give_way_to_each_process_share_of_the_cpus(tmp_path, users_omp, share, threads):
    # torchrun sets OMP_NUM_THREADS=1 for jobs that set none: a CPU job of 2 processes computed on
    # 2 of a node's cores. Eight CPUs stand in for a node's; a user's own 1 stays.
    script = tmp_path / "share.py"
    script.write_text(textwrap.dedent("""
        import os
        from neuralab.training import device
        os.sched_getaffinity = lambda pid: set(range(8))
        device.quota_cpus = lambda: None
        # One write of one line: the two processes share the pipe, and print()'s pieces interleave
        # where stdout is unbuffered.
        line = f'share {os.environ["OMP_NUM_THREADS"]} {device.torchrun_share()} {device.compute_threads()}\\n'
        os.write(1, line.encode())
    """))
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if users_omp:
        env["OMP_NUM_THREADS"] = users_omp
    p = subprocess.run([*TORCHRUN, str(script)],
                       capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    assert re.findall(r"^share (\S+) (\S+) (\S+)$", p.stdout, re.M) == [("1", share, threads)] * 2, p.stdout


def test_a_resumed_run_whose_batch_leaves_a_process_without_samples_is_told_to_start_fewer():
    """A run started in one process with batches of 109 over 110 images, requeued under torchrun with 2,
    was told to choose a batch size such as 108, which its resume then refused as not the run's."""
    from neuralab.errors import ParameterError
    from neuralab.training.inputs_check import refuse_empty_shares

    with pytest.raises(ParameterError) as new:
        refuse_empty_shares([110], 109, 2)
    assert str(new.value).endswith("choose a batch_size such as 108 or start fewer processes")
    with pytest.raises(ParameterError) as resumed:
        refuse_empty_shares([110], 109, 2, resumed=True)
    assert resumed.value.parameter == "batch_size" and str(resumed.value).endswith(
        "torchrun's 2 processes split every batch, and the last batch of an epoch of 110 training samples "
        "holds 1, which leaves a process without samples; a resumed run keeps its batch size, so resume it in one "
        "process, without torchrun")
