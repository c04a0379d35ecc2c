"""The trainer on real Fashion-MNIST subsets: run directories, reproducibility, resume after
kill -9, evaluation from the directory alone, safe and tamper-evident files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import TORCHRUN, idx_subset
from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.training import (ClassifierConfig, TrainConfig, evaluate_run, load_classifier, resume_classifier,
                                train_classifier)
from neuralab.training.checkpoint import load_tensors


@pytest.fixture(scope="module")
def small_fashion(fashion_mnist, tmp_path_factory):
    return idx_subset(fashion_mnist, tmp_path_factory.mktemp("fashion"), 3000, 1000)


@pytest.fixture(scope="module")
def tiny_fashion(fashion_mnist, tmp_path_factory):
    return idx_subset(fashion_mnist, tmp_path_factory.mktemp("tiny"), 1500, 300)


def config(data_dir, **train) -> ClassifierConfig:
    return ClassifierConfig(model="lenet5", data="fashion-mnist", data_dir=str(data_dir),
                            train=TrainConfig(**{"epochs": 2, "batch_size": 64, **train}))


def test_run_directory_is_complete_and_evaluates_alone(small_fashion, tmp_path):
    result = train_classifier(config(small_fashion, seed=3), out=tmp_path / "run", verbose=False)
    run = tmp_path / "run"
    # 2,700 pictures, 2 epochs: 0.753 measured (seeds 0-4: 0.753-0.762; MNIST's 0.886 had 0.85)
    assert result.test["accuracy"] > 0.72
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["train"]["seed"] == 3
    assert {"torch", "numpy", "neuralab", "device", "python"} <= set(record["environment"])
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert "Total params: 61,706" in (run / "summary.txt").read_text()
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "Confusion matrix" in html
    results = json.loads((run / "results.json").read_text())
    assert np.asarray(results["confusion_matrix"]).sum() == 1000
    again = evaluate_run(run)
    assert again["test_accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-6)


def test_same_seed_same_weights_other_seed_other_weights(small_fashion, tmp_path):
    a = train_classifier(config(small_fashion, epochs=1), out=tmp_path / "a", verbose=False)
    b = train_classifier(config(small_fashion, epochs=1), out=tmp_path / "b", verbose=False)
    c = train_classifier(config(small_fashion, epochs=1, seed=1), out=tmp_path / "c", verbose=False)
    wa, wb, wc = (load_tensors(r.run_dir / "model.safetensors")[0] for r in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(wa["features.1.weight"], wc["features.1.weight"])


def _cli(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "neuralab", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


@pytest.mark.parametrize("focus", [1.0, 0.3])
def test_interrupted_and_resumed_equals_uninterrupted(tiny_fashion, tmp_path, cut_in_epoch_2, focus):
    """Ctrl-C in epoch 2, then resume: bit-identical weights (optimizer moments keep the
    channels-last layout of their parameters, which the fused Adam kernel relies on; with
    focus, the remembered per-sample losses pick the same hardest samples)."""
    whole = train_classifier(config(tiny_fashion, epochs=3, focus=focus), out=tmp_path / "whole", verbose=False)
    whole_again = cut_in_epoch_2()
    with pytest.raises(KeyboardInterrupt):
        train_classifier(config(tiny_fashion, epochs=3, focus=focus), out=tmp_path / "cut", verbose=False)
    whole_again()
    resumed = resume_classifier(tmp_path / "cut", verbose=False)
    a, _ = load_tensors(whole.run_dir / "checkpoints" / "last.safetensors")
    b, _ = load_tensors(resumed.run_dir / "checkpoints" / "last.safetensors")
    assert [k for k in a if not torch.equal(a[k], b[k]) and not k.startswith("rng.")] == []
    assert resumed.test["accuracy"] == whole.test["accuracy"]
    assert [r["samples"] for r in resumed.history] == [r["samples"] for r in whole.history]


def test_focus_trains_later_epochs_on_the_samples_with_the_highest_loss(tiny_fashion):
    """After epoch 1, each epoch takes the top 20% by the loss each sample had when it was last
    trained on (real Fashion-MNIST images, the losses the training passes produced)."""
    from neuralab.data import load_image_data
    from neuralab.models import build_model
    from neuralab.training import Trainer
    from neuralab.training.preprocess import Preprocess

    data = load_image_data("fashion-mnist", tiny_fashion, val_fraction=0.0)
    x, y = Preprocess.fit(data.train.x)(data.train.x), torch.from_numpy(data.train.y)
    torch.manual_seed(0)
    trainer = Trainer(build_model("lenet5", (1, 28, 28), 10), TrainConfig(epochs=3, batch_size=64, focus=0.2),
                      verbose=False)
    seen = []  # (the epoch's samples, the remembered losses before and after it)
    weights = []
    original = trainer._train_epoch

    def watch(model, optimizer, scheduler, order, *rest):
        before = None if trainer.sample_losses is None else trainer.sample_losses.clone()
        record = original(model, optimizer, scheduler, order, *rest)
        seen.append((order.clone(), before, trainer.sample_losses.clone()))
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
        return record

    trainer._train_epoch = watch
    history = trainer.fit(x, y)
    n, k = len(x), round(0.2 * len(x))
    assert [r["samples"] for r in history] == [n, k, k]
    # no validation set: the last epoch's weights are kept (training losses on different
    # samples say nothing about which epoch is best)
    assert trainer.best_epoch() == 3
    assert all(torch.equal(v, weights[-1][name]) for name, v in trainer.model.state_dict().items())
    assert sorted(seen[0][0].tolist()) == list(range(n))
    for order, before, after in seen[1:]:
        rest = torch.ones(n, dtype=torch.bool)
        rest[order] = False
        assert len(set(order.tolist())) == k
        assert before[order].min() >= before[rest].max()     # the highest losses, no others
        assert torch.equal(after[rest], before[rest])       # unseen samples keep their loss
        assert not torch.equal(after[order], before[order])  # trained ones get this epoch's


def test_kill_9_then_resume_ends_with_the_uninterrupted_weights(tiny_fashion, tmp_path):
    args = ["train", "--model", "lenet5", "--data", "fashion-mnist", "--data-dir", str(tiny_fashion),
            "--epochs", "4", "--batch-size", "32", "--seed", "5"]
    whole = _cli([*args, "--out", str(tmp_path / "whole")])
    assert whole.wait(timeout=300) == 0, whole.stdout.read()

    killed = tmp_path / "killed"
    proc = _cli([*args, "--out", str(killed)])
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once the first epoch is on disk
        if (killed / "metrics.jsonl").exists() and proc.poll() is None:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len((killed / "metrics.jsonl").read_text().splitlines())
    assert 1 <= done < 4, "the run was not interrupted mid-way"

    assert main(["train", "--resume", str(killed), "--quiet"]) == 0
    final_whole, _ = load_tensors(tmp_path / "whole" / "checkpoints" / "last.safetensors")
    final_resumed, _ = load_tensors(killed / "checkpoints" / "last.safetensors")
    for key in final_whole:
        if key.startswith("model."):
            assert torch.equal(final_whole[key], final_resumed[key]), key
    metrics = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4]


def test_early_stopping_stops_and_keeps_the_best(small_fashion, tmp_path):
    # A learning rate this high diverges: validation loss stops improving at once.
    result = train_classifier(config(small_fashion, epochs=6, lr=0.5, patience=1, schedule="constant"),
                              out=tmp_path / "run", verbose=False)
    assert len(result.history) < 6
    losses = [r["val_loss"] for r in result.history]
    assert result.best_epoch == int(np.argmin(losses)) + 1


def test_existing_run_is_refused_without_overwrite(small_fashion, tmp_path, capsys):
    args = ["train", "--data", "fashion-mnist", "--data-dir", str(small_fashion), "--epochs", "1", "--quiet",
            "--out", str(tmp_path / "run")]
    assert main(args) == 0
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err and "already holds a run" in err
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before
    assert main([*args, "--overwrite"]) == 0


@pytest.mark.parametrize("argv, words", [
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--epochs", "-3"], "--epochs"),
    (["train", "--focus", "1.5"], "--focus 1.5"),
    (["train", "--focus", "0"], "--focus"),
    (["train", "--patience", "2", "--val-fraction", "0"], "give --val-fraction above 0"),
    (["train", "--model", "resnet"], "--model resnet: unknown model"),
    (["train", "--data", "imagenet"], "unknown dataset 'imagenet'"),
    (["evaluate", "/nonexistent"], "/nonexistent: not found; give a folder made by `neuralab train`"),
])
def test_bad_options_get_one_line_and_exit_2(argv, words, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        code = main([*argv, "--out", str(tmp_path / "x")] if argv[0] == "train" else argv)
        raise SystemExit(code)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_damaged_idx_file_is_named_and_nothing_is_written(small_fashion, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(small_fashion, bad)
    data = (bad / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(data[: len(data) // 2])
    code = main(["train", "--data", "fashion-mnist", "--data-dir", str(bad), "--out", str(tmp_path / "run")])
    assert code == 2
    assert "t10k-labels-idx1-ubyte.gz" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_tampered_and_truncated_weights_are_refused(small_fashion, tmp_path):
    train_classifier(config(small_fashion, epochs=1), out=tmp_path / "run", verbose=False)
    weights = tmp_path / "run" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(NeuralabError, match="checksum mismatch"):
        load_classifier(tmp_path / "run")
    weights.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(NeuralabError, match="damaged or truncated"):
        load_classifier(tmp_path / "run")


def test_a_pickle_is_never_loaded(tmp_path):
    import pickle

    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"weight": [1, 2, 3]}))
    with pytest.raises(NeuralabError, match="damaged or truncated"):
        load_tensors(path)


def test_two_processes_match_one_with_the_same_global_batch(tiny_fashion, tmp_path):
    """torchrun with 2 CPU processes (gloo) gives the weights of 1 process, same global batch."""
    args = ["train", "--data", "fashion-mnist", "--data-dir", str(tiny_fashion), "--epochs", "2", "--focus", "0.5",
            "--batch-size", "50", "--val-fraction", "0.1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([*TORCHRUN, "-m", "neuralab", *args, "--out", str(tmp_path / "ddp")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    assert ddp.stdout.count("test accuracy") == 1  # only rank 0 speaks
    one = subprocess.run([sys.executable, "-m", "neuralab", *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    a, _ = load_tensors(tmp_path / "ddp" / "model.safetensors")
    b, _ = load_tensors(tmp_path / "one" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    ma = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    mb = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    for ra, rb in zip(ma, mb, strict=True):  # epoch 2 trains on the same hardest half in both
        assert ra["samples"] == rb["samples"]
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-4)
        assert ra["val_accuracy"] == pytest.approx(rb["val_accuracy"])


def test_a_refusal_under_torchrun_is_said_once_by_rank_0(tiny_fashion, tmp_path):
    """Rank 0 refuses an --out that holds a run; torchrun then stops rank 1 with SIGTERM, which
    must not add that the run was interrupted and can be resumed."""
    args = ["train", "--data", "fashion-mnist", "--data-dir", str(tiny_fashion), "--epochs", "1", "--quiet",
            "--out", str(tmp_path / "run")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert subprocess.run([sys.executable, "-m", "neuralab", *args], env=env, timeout=300).returncode == 0
    ddp = subprocess.run([*TORCHRUN, "-m", "neuralab", *args], capture_output=True, text=True, env=env, timeout=300)
    assert ddp.returncode != 0
    said = [line for line in ddp.stderr.splitlines() if line.startswith("neuralab:")]
    assert said == [f"neuralab: error: --out {tmp_path / 'run'}: already holds a run; pass --overwrite to replace "
                    "it or choose another --out"], ddp.stderr[-2000:]


def test_disk_full_while_saving_keeps_the_previous_checkpoint(small_fashion, tmp_path, monkeypatch, capsys):
    """The second epoch's save fails with ENOSPC: one clear line, epoch 1's checkpoint intact."""
    import errno

    from neuralab import files

    real_fsync = os.fsync
    run = tmp_path / "run"

    def fsync_then_fill_the_disk(fd):
        if (run / "metrics.jsonl").exists():  # epoch 1 is saved: the disk is full from now on
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync_then_fill_the_disk)
    code = main(["train", "--data", "fashion-mnist", "--data-dir", str(small_fashion), "--epochs", "3", "--quiet",
                 "--out", str(run)])
    assert code == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "--resume" in err and err.count("\n") == 1
    monkeypatch.setattr(files.os, "fsync", real_fsync)
    _, meta = load_tensors(run / "checkpoints" / "last.safetensors")
    assert meta["epoch"] == 1
    assert not [p for p in run.rglob("*.tmp")], "a temporary file was left behind"
    assert main(["train", "--resume", str(run), "--quiet"]) == 0


def test_auxiliary_heads_are_trained_and_scored_apart(tiny_fashion):
    """GoogLeNet with aux heads: the trainer adds 0.3 x each auxiliary loss, and the
    auxiliary classifiers learn; evaluation uses the main head only."""
    from neuralab.data import load_image_data
    from neuralab.models import build_model
    from neuralab.training import Trainer
    from neuralab.training.preprocess import Preprocess

    data = load_image_data("fashion-mnist", tiny_fashion)
    x, y = Preprocess.fit(data.train.x)(data.train.x[:128]), torch.from_numpy(data.train.y[:128])
    torch.manual_seed(0)
    model = build_model("googlenet", (1, 28, 28), 10, aux_logits=True)
    before = model.aux1[1][0].weight.detach().clone()
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=64), verbose=False)
    history = trainer.fit(x, y, val=(x[:64], y[:64]))
    assert not torch.equal(before, model.aux1[1][0].weight)
    # train loss counts the two auxiliary terms, validation (eval mode) the main head only
    assert history[0]["loss"] > 1.3 * history[0]["val_loss"]


def test_a_users_module_with_a_loss_of_its_own_trains_on_the_trainers_loss(tiny_fashion):
    """A module that keeps its criterion as `self.loss` (nn.CrossEntropyLoss(label_smoothing=0.1)) or
    defines a method loss(logits, y): it was called with GoogLeNet's criterion= and refused as a
    forward that fails in training mode; then dropped without a word. A class computes its own loss only
    where it says so (loss_takes_criterion), as GoogLeNet's does."""
    from collections import namedtuple

    import torch.nn.functional as F
    from torch import nn

    from neuralab.data import load_image_data
    from neuralab.training import Trainer
    from neuralab.training.preprocess import Preprocess

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.f = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

        def forward(self, x):
            return self.f(x)

    class Kept(Plain):
        def __init__(self):
            super().__init__()
            self.loss = nn.CrossEntropyLoss(label_smoothing=0.1)

    class Method(Plain):
        def loss(self, logits, y):
            return F.cross_entropy(logits, y, label_smoothing=0.1)

    Outputs = namedtuple("Outputs", "logits aux")

    class Heads(Plain):  # a user's auxiliary head, its loss opted in as GoogLeNet's is
        loss_takes_criterion = True

        def forward(self, x):
            out = self.f(x)
            return Outputs(out, out) if self.training else out

        def loss(self, outputs, y, criterion):
            return criterion(outputs.logits, y) + 0.5 * criterion(outputs.aux, y)

    data = load_image_data("fashion-mnist", tiny_fashion)
    x, y = Preprocess.fit(data.train.x)(data.train.x[:256]), torch.from_numpy(data.train.y[:256])
    histories, weights = [], []
    for kind in (Plain, Kept, Method, Heads):
        model = kind()
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            histories.append(Trainer(model, TrainConfig(epochs=1, batch_size=64), verbose=False)
                             .fit(x, y, val=(x[:64], y[:64]))[0])
        weights.append(model.f[1].weight.detach())
        # the criterion it holds is dropped, and said so: once, naming TrainConfig's `loss` it trains on,
        # and the module's own as no parameter of neuralab's (the CLI made it "the module's own --loss")
        ignored = [str(w.message) for w in said if "model.loss" in str(w.message)]
        assert ignored == ([f"{kind.__name__}: the module's own loss (model.loss) is not called: it trains on the "
                            "task's own cross-entropy, the default of `loss`; a class that sets loss_takes_criterion "
                            "= True has its loss(outputs, y, criterion) called instead, as GoogLeNet's"]
                           if kind in (Kept, Method) else []), kind
    assert all(torch.equal(weights[0], w) for w in weights[1:3])
    assert histories[1]["loss"] == histories[0]["loss"] == histories[2]["loss"]
    assert histories[3]["loss"] == pytest.approx(1.5 * histories[0]["loss"], rel=1e-3)


def test_a_module_whose_loss_is_a_property_that_raises_trains_as_any_other(tiny_fashion):
    """A `loss` property that reads what the user's own loop fills (self.history[-1]) raised from
    the check for a held criterion, a traceback of `neuralab train`: it is not run, and the module
    trains on TrainConfig's loss without a word, as a module without `loss` does."""
    from torch import nn

    from neuralab.data import load_image_data
    from neuralab.training import Trainer
    from neuralab.training.preprocess import Preprocess

    class Logged(nn.Module):
        def __init__(self, error: type[Exception]):
            super().__init__()
            torch.manual_seed(0)
            self.f, self.history, self.error = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), [], error

        @property
        def loss(self):
            if self.error is IndexError:
                return self.history[-1]  # the last loss the user's own loop recorded
            raise self.error("call fit() first")

        def forward(self, x):
            return self.f(x)

    data = load_image_data("fashion-mnist", tiny_fashion)
    x, y = Preprocess.fit(data.train.x)(data.train.x[:128]), torch.from_numpy(data.train.y[:128])
    for error in (IndexError, RuntimeError):
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            history = Trainer(Logged(error), TrainConfig(epochs=1, batch_size=64), verbose=False).fit(x, y)
        assert len(history) == 1 and np.isfinite(history[0]["loss"])
        assert not [w for w in said if "loss" in str(w.message)], error


def test_a_module_whose_loss_is_a_property_that_returns_a_criterion_is_warned_it_is_not_called(tiny_fashion):
    """A `loss` property that gives the criterion with its class weights was dropped without the
    warning a criterion kept as an attribute gets: only a property that raises holds no loss."""
    from torch import nn

    from neuralab.data import load_image_data
    from neuralab.training import Trainer
    from neuralab.training.preprocess import Preprocess

    class Weighted(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

        @property
        def loss(self):
            return nn.CrossEntropyLoss(weight=torch.linspace(1, 2, 10))

        def forward(self, x):
            return self.f(x)

    data = load_image_data("fashion-mnist", tiny_fashion)
    x, y = Preprocess.fit(data.train.x)(data.train.x[:128]), torch.from_numpy(data.train.y[:128])
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        history = Trainer(Weighted(), TrainConfig(epochs=1, batch_size=64), verbose=False).fit(x, y)
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    assert [str(w.message) for w in said if "model.loss" in str(w.message)] == [
        "Weighted: the module's own loss (model.loss) is not called: it trains on the task's own cross-entropy, the "
        "default of `loss`; a class that sets loss_takes_criterion = True has its loss(outputs, y, criterion) called "
        "instead, as GoogLeNet's"]


def test_a_modules_own_loss_on_the_command_line_is_no_flag_and_a_marked_one_is_refused_by_its_signature(
        tiny_fashion, tmp_path, capsys):
    """The warning of a held criterion read "the module's own --loss is not called: it trains on
    TrainConfig's --loss"; and loss_takes_criterion = True with loss(self, logits, y), whose call
    with criterion= raised TypeError, was refused as "make its forward work when training"."""
    head = ("import torch.nn as nn, torch.nn.functional as F\n"
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.f = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))\n"
            "    def forward(self, x):\n"
            "        return self.f(x)\n")
    (tmp_path / "kept.py").write_text(head + "    loss = nn.CrossEntropyLoss(label_smoothing=0.1)\n")
    (tmp_path / "marked.py").write_text(head + "    loss_takes_criterion = True\n"
                                               "    def loss(self, logits, y):\n"
                                               "        return F.cross_entropy(logits, y)\n")
    train = ["train", "--data", "fashion-mnist", "--data-dir", str(tiny_fashion), "--epochs", "1", "--quiet"]
    # as a user sees it: pytest would record the warning before the command's one-line form
    src = str(Path(__file__).resolve().parents[1] / "src")
    kept = subprocess.run([sys.executable, "-m", "neuralab", *train, "--model", str(tmp_path / "kept.py"), "--out",
                           str(tmp_path / "kept")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": src})
    err = kept.stderr
    assert kept.returncode == 0, err
    assert "the module's own loss (model.loss) is not called: it trains on the task's own cross-entropy, the " \
           "default of --loss; a class that sets loss_takes_criterion = True" in err and "own --loss" not in err, err
    code = main([*train, "--model", str(tmp_path / "marked.py"), "--out", str(tmp_path / "marked")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "marked").exists(), err
    assert "its loss(logits, y) takes no criterion: give its loss a criterion parameter, loss(self, outputs, y, " \
           "criterion), or remove loss_takes_criterion = True to train on --loss" in err and "forward" not in err
    # a loss that is a module passed as taking any keyword (its __call__'s): its forward is what takes them
    (tmp_path / "layer.py").write_text(head + "    loss_takes_criterion = True\n"
                                              "    loss = nn.CrossEntropyLoss()\n")
    (tmp_path / "static.py").write_text(head + "    loss_takes_criterion = True\n"
                                               "    @staticmethod\n"
                                               "    def loss(logits, y):\n"
                                               "        return F.cross_entropy(logits, y)\n")
    code = main([*train, "--model", str(tmp_path / "layer.py"), "--out", str(tmp_path / "layer")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "layer").exists(), err
    assert "its loss, a CrossEntropyLoss, has forward(input" in err and "which takes no criterion: give its forward " \
           "a criterion parameter, forward(self, outputs, y, criterion), or remove loss_takes_criterion" in err, err
    code = main([*train, "--model", str(tmp_path / "static.py"), "--out", str(tmp_path / "static")])
    err = capsys.readouterr().err
    assert code == 2 and "its loss(logits, y) takes no criterion: give its loss a criterion parameter, " \
                         "loss(outputs, y, criterion), or remove" in err, err


def test_threads_apply_while_training_and_are_restored_after(tiny_fashion, tmp_path):
    """`--threads N` (TrainConfig.threads) is the thread count of every training step and
    prediction, is recorded with the run, and leaves the process's setting as it found it."""
    from neuralab.data import load_image_data
    from neuralab.models.lenet import LeNet5
    from neuralab.training import Trainer
    from neuralab.training.preprocess import Preprocess

    seen = []

    class Watched(LeNet5):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return super().forward(x)

    data = load_image_data("fashion-mnist", tiny_fashion)
    x, y = Preprocess.fit(data.train.x)(data.train.x[:256]), torch.from_numpy(data.train.y[:256])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        trainer = Trainer(Watched((1, 28, 28), 10), TrainConfig(epochs=1, batch_size=64, threads=1), verbose=False)
        trainer.fit(x, y)
        trainer.predict(x[:64])  # the test set's pass too
        # 4 steps, the test pass, the check of a training step a subclass of a zoo model gets, and the
        # one-image passes that check the inputs of fit and predict
        assert seen == [1] * 8 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert main(["train", "--data", "fashion-mnist", "--data-dir", str(tiny_fashion), "--epochs", "1", "--threads", "1",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["train"]["threads"] == 1
    with pytest.raises(NeuralabError, match="threads=-1"):
        TrainConfig(threads=-1).check()


def test_preprocess_has_each_channels_mean_and_std_of_the_pixels_on_0_1():
    from neuralab.training.preprocess import Preprocess

    x = np.random.default_rng(0).integers(0, 256, (3000, 3, 9, 7), dtype=np.uint8)
    x[:, 1] //= 4  # channels that differ
    p = Preprocess.fit(x)
    pixels = x.astype(np.float64) / 255
    np.testing.assert_allclose(p.mean, pixels.mean((0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(p.std, pixels.std((0, 2, 3)), rtol=1e-12)
    normalised = p(x).double()
    np.testing.assert_allclose(normalised.mean((0, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose(normalised.std((0, 2, 3), correction=0), 1, atol=1e-6)


def test_image_runs_hold_uint8_pixels_and_train_as_on_a_normalised_float_copy(tiny_fashion, tmp_path):
    """The trainer normalises each batch of uint8 pixels (``inputs=Preprocess.normalise``):
    the same values as the whole set normalised at once, so the same training, with the
    set kept at a quarter of float32's memory."""
    from neuralab.data import load_image_data
    from neuralab.models import build_model
    from neuralab.training import Trainer
    from neuralab.training.callbacks import Callback
    from neuralab.training.preprocess import Preprocess, pixels

    data = load_image_data("fashion-mnist", tiny_fashion)
    pre = Preprocess.fit(data.train.x)
    x, y = pixels(data.train.x[:512]), torch.from_numpy(data.train.y[:512])
    assert torch.equal(pre.normalise(x), pre(data.train.x[:512]))
    flipped = data.train.x[:8, :, :, ::-1]  # a view with a negative stride, as a user's mirrored images
    assert torch.equal(pre(flipped), pre(flipped.copy()))
    rgb = pixels(np.random.default_rng(0).integers(0, 256, (8, 3, 5, 5), dtype=np.uint8))
    rgb_pre = Preprocess.fit(rgb.numpy())
    normalised = rgb_pre.normalise(rgb.contiguous(memory_format=torch.channels_last))
    assert normalised.is_contiguous(memory_format=torch.channels_last) and torch.equal(normalised, rgb_pre(rgb.numpy()))

    def fit(x, inputs):
        torch.manual_seed(0)
        trainer = Trainer(build_model("cnn", (1, 28, 28), 10), TrainConfig(epochs=2, batch_size=64), verbose=False,
                          inputs=inputs)
        history = trainer.fit(x, y, val=(x[:128], y[:128]))
        return history, trainer.predict(x[:200]), trainer.model.state_dict()

    (h1, out1, w1), (h2, out2, w2) = fit(x, pre.normalise), fit(pre(data.train.x[:512]), None)
    assert [r["loss"] for r in h1] == [r["loss"] for r in h2] and h1[-1]["val_loss"] == h2[-1]["val_loss"]
    assert torch.equal(out1, out2) and all(torch.equal(w1[k], w2[k]) for k in w1)

    seen = []

    class Dtype(Callback):
        def on_epoch_end(self, trainer, record):
            seen.append((trainer.train_data[0].dtype, trainer.val_data[0].dtype))

    train_classifier(config(tiny_fashion, epochs=1), out=tmp_path / "run", verbose=False, callbacks=[Dtype()])
    assert seen == [(torch.uint8, torch.uint8)]


# --- modules neuralab does not know: tied weights, their layout, training mode, recorded threads ------

class _Tied(torch.nn.Module):
    """A weight shared by two layers, as autoencoders and language models tie theirs."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(64, 16)
        self.mid = torch.nn.Linear(16, 16)
        self.enc = torch.nn.Linear(16, 16)
        self.enc.weight = self.mid.weight
        self.out = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.out(torch.relu(self.enc(torch.relu(self.mid(torch.relu(self.a(x.flatten(1))))))))


def _random_images(n: int, channels: int = 1, side: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, side, side, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_tied_weights_checkpoint_and_resume_as_one_tensor(tmp_path):
    """A run stopped after epoch 1 and resumed ends with the weights of an uninterrupted run,
    and the two layers still share one weight."""
    from neuralab.training import Trainer
    from neuralab.training.callbacks import Callback

    class StopAfterEpoch1(Callback):
        def on_epoch_end(self, trainer, record):
            return record["epoch"] == 1

    x, y = _random_images(96)

    def fit(run_dir, resume=False, callbacks=()):
        torch.manual_seed(0)
        model = _Tied()
        trainer = Trainer(model, TrainConfig(epochs=2, batch_size=32, threads=1), run_dir=run_dir, verbose=False,
                          callbacks=callbacks)
        trainer.fit(x, y, val=(x[:32], y[:32]), resume=resume)
        return model

    whole = fit(tmp_path / "whole")
    fit(tmp_path / "cut", callbacks=[StopAfterEpoch1()])
    assert load_tensors(tmp_path / "cut" / "checkpoints" / "last.safetensors")[1]["epoch"] == 1
    resumed = fit(tmp_path / "cut", resume=True)
    assert resumed.enc.weight is resumed.mid.weight
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
    tensors, _ = load_tensors(tmp_path / "cut" / "checkpoints" / "last.safetensors")
    assert tensors["model.enc.weight"] is tensors["model.mid.weight"]


class _ViewNet(torch.nn.Module):
    """The idiom of PyTorch's tutorials: flatten a convolution's maps with view."""

    def __init__(self, channels: int = 1):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        x = self.conv(x)
        return self.fc(x.view(x.size(0), -1))


def test_a_users_module_gets_nchw_batches_and_the_zoo_keeps_channels_last():
    from neuralab.models import build_model
    from neuralab.training import Trainer
    from neuralab.training.preprocess import Preprocess

    for channels in (1, 3):
        x, y = _random_images(64, channels)
        trainer = Trainer(_ViewNet(channels), TrainConfig(epochs=1, batch_size=32, threads=1), verbose=False)
        assert trainer.fit(x, y)[-1]["loss"] > 0 and trainer.predict(x).shape == (64, 3)
        # images as neuralab reads them, (N, H, W, C) in memory, viewed as (N, C, H, W)
        pixels = np.random.default_rng(0).integers(0, 256, (4, 8, 8, channels), dtype=np.uint8).transpose(0, 3, 1, 2)
        assert _ViewNet(channels)(Preprocess.fit(pixels)(pixels)).shape == (4, 3)

    seen = []
    model = build_model("cnn", (3, 8, 8), 3)
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    Trainer(model, TrainConfig(epochs=1, batch_size=32, threads=1), verbose=False).fit(*_random_images(64, 3))
    assert seen and all(seen)


def test_batch_norm_on_a_last_batch_of_one_is_refused_before_anything_trains(tmp_path):
    """96 samples in batches of 95 leave a batch of 1, on which BatchNorm1d cannot train:
    one line naming the model and a batch size that works, and the model and folder untouched."""
    from neuralab.training import Trainer

    class Normed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.bn, self.out = torch.nn.Linear(64, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.out(torch.relu(self.bn(self.fc(x.flatten(1)))))

    x, y = _random_images(96)
    model = Normed()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=95, threads=1), run_dir=tmp_path / "run", verbose=False)
    with pytest.raises(NeuralabError) as e:
        trainer.fit(x, y)
    message = str(e.value)
    assert message.startswith("Normed: ") and "last batch" in message and "1 of 96" in message
    assert "choose a batch_size" in message and "such as 94" in message and "\n" not in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state()) and not (tmp_path / "run").exists()
    assert Trainer(model, TrainConfig(epochs=1, batch_size=94, threads=1), verbose=False).fit(x, y)[-1]["loss"] > 0


def test_the_run_records_the_threads_it_trained_with(tmp_path):
    from helpers import digits_folder

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train_classifier(ClassifierConfig(model="mlp", data=str(digits_folder(tmp_path / "digits", 200)),
                                          train=TrainConfig(epochs=1, threads=1)), out=tmp_path / "run", verbose=False)
    finally:
        torch.set_num_threads(before)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["environment"]["threads"] == 1


@pytest.mark.parametrize("mistake, parameter", [
    (lambda x, y: ((x, y[:100]), {}), "y"),                      # fewer labels than images
    (lambda x, y: ((x, y.float()), {}), "y"),                    # labels as floats
    (lambda x, y: ((x, y - 1), {}), "y"),                        # labels from -1
    (lambda x, y: ((x.numpy(), y), {}), "x"),                    # a NumPy array
    (lambda x, y: ((x, y), {"val": (x[:50], y[:40])}), "val[1]"),
    (lambda x, y: ((x, y), {"val": (x,)}), "val"),
])
def test_data_mistakes_are_named_before_anything_trains(mistake, parameter):
    """A notebook's usual slips, which the model's own error would blame on its forward (or
    raise after a whole epoch)."""
    from neuralab.errors import ParameterError
    from neuralab.training import Trainer

    seen = []
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    net.register_forward_hook(lambda *a: seen.append(1))
    x, y = torch.rand(200, 1, 8, 8), torch.randint(0, 10, (200,))
    args, kwargs = mistake(x, y)
    with pytest.raises(ParameterError) as e:
        Trainer(net, TrainConfig(epochs=1)).fit(*args, **kwargs)
    assert e.value.parameter == parameter and not seen


def test_a_classifier_refuses_pictures_it_would_read_wrong(tiny_fashion, tmp_path):
    """Floats in [0, 1] would all land in one class without an error: only uint8 pixels of the
    run's shape are taken."""
    from neuralab.errors import ParameterError

    run = train_classifier(config(tiny_fashion, epochs=1), out=tmp_path / "run", verbose=False).run_dir
    clf = load_classifier(run)
    pixels = np.zeros((2, 1, 28, 28), np.uint8)
    assert clf.predict_proba(pixels).shape == (2, 10)
    for bad in (pixels.astype(np.float32) / 255, pixels[0], pixels.transpose(0, 2, 3, 1), pixels.tolist()):
        with pytest.raises(ParameterError, match="give uint8 pixels"):
            clf.predict(bad)
