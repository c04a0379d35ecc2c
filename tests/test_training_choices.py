"""Training choices on real data: the optimizer and the loss (names as Keras's compile takes
them, or a PyTorch optimizer from Python), callbacks that see every epoch and can stop
training, and TensorBoard event files that TensorBoard's own reader finds the metrics in."""

from __future__ import annotations

import json
import time

import pytest
import torch
import torch.nn.functional as F

from helpers import idx_subset
from neuralab.cli import main
from neuralab.errors import NeuralabError, ParameterError
from neuralab.training import ClassifierConfig, TrainConfig, evaluate_run, resume_classifier, train_classifier
from neuralab.training.callbacks import Callback
from neuralab.training.checkpoint import load_tensors


@pytest.fixture(scope="module")
def tiny_fashion(fashion_mnist, tmp_path_factory):
    return idx_subset(fashion_mnist, tmp_path_factory.mktemp("tiny"), 1500, 300)


def config(data_dir, model="lenet5", **train) -> ClassifierConfig:
    return ClassifierConfig(model=model, data="fashion-mnist", data_dir=str(data_dir),
                            train=TrainConfig(**{"epochs": 2, "batch_size": 64, "threads": 1, **train}))


def metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# --- optimizers -------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer, momentum, kind", [("adam", 0.0, "Adam"), ("adamw", 0.0, "AdamW"),
                                                       ("sgd", 0.9, "SGD"), ("rmsprop", 0.9, "RMSprop")])
def test_each_optimizer_trains_is_the_one_named_and_is_recorded(tiny_fashion, tmp_path, optimizer, momentum, kind):
    seen = []

    class Watch(Callback):
        def on_train_begin(self, trainer):
            seen.append(trainer.optimizer)

    lr = 0.05 if optimizer == "sgd" else 3e-3
    result = train_classifier(config(tiny_fashion, optimizer=optimizer, momentum=momentum, lr=lr),
                              out=tmp_path / "run", verbose=False, callbacks=[Watch()])
    assert type(seen[0]).__name__ == kind
    group = seen[0].param_groups[0]
    assert group.get("momentum", 0.0) == momentum
    # 1,350 pictures, 2 epochs, 10 classes: far above chance (0.1) whichever optimizer
    assert result.test["accuracy"] > 0.55, result.test
    train = json.loads((tmp_path / "run" / "config.json").read_text())["config"]["train"]
    assert (train["optimizer"], train["momentum"], train["loss"]) == (optimizer, momentum, None)


def test_default_is_plain_adam_and_sgd_momentum_matters(tiny_fashion, tmp_path):
    """The default is PyTorch's Adam at the peak learning rate (the same weights as that
    optimizer given from Python); SGD with and without momentum end in different places."""
    default = train_classifier(config(tiny_fashion, epochs=1), out=tmp_path / "default", verbose=False)
    adam = train_classifier(config(tiny_fashion, epochs=1), out=tmp_path / "adam", verbose=False,
                            optimizer=lambda params: torch.optim.Adam(params, lr=3e-3, fused=True))
    plain = train_classifier(config(tiny_fashion, epochs=1, optimizer="sgd", lr=0.05), out=tmp_path / "plain",
                             verbose=False)
    heavy = train_classifier(config(tiny_fashion, epochs=1, optimizer="sgd", lr=0.05, momentum=0.9),
                             out=tmp_path / "heavy", verbose=False)
    default, adam, plain, heavy = (load_tensors(r.run_dir / "model.safetensors")[0]
                                   for r in (default, adam, plain, heavy))
    assert all(torch.equal(default[k], adam[k]) for k in default)
    assert not any(torch.equal(plain[k], heavy[k]) for k in plain if k.endswith("weight"))


def test_adamw_is_pytorchs_adamw_and_the_test_scores_are_evaluates(tiny_fashion, tmp_path):
    """neuralab's AdamW (PyTorch's, without the wrappers that import torch._dynamo) ends in the
    same weights as PyTorch's own; the run's test scores, taken from the logits the report also
    uses, are what `evaluate` computes by running the model again."""
    ours = train_classifier(config(tiny_fashion, epochs=1, optimizer="adamw", weight_decay=0.01),
                            out=tmp_path / "ours", verbose=False)
    theirs = train_classifier(config(tiny_fashion, epochs=1), out=tmp_path / "theirs", verbose=False,
                              optimizer=lambda params: torch.optim.AdamW(params, lr=3e-3, weight_decay=0.01, fused=True))
    a, b = (load_tensors(r.run_dir / "model.safetensors")[0] for r in (ours, theirs))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ours.test["accuracy"] == theirs.test["accuracy"]
    again = evaluate_run(ours.run_dir)
    assert again["test_accuracy"] == ours.test["accuracy"]
    assert again["test_loss"] == pytest.approx(ours.test["loss"], rel=1e-4)


@pytest.mark.parametrize("optimizer, keras_optimizer", [("sgd", "SGD"), ("rmsprop", "RMSprop")])
def test_sgd_and_rmsprop_decay_weights_as_keras_does(optimizer, keras_optimizer):
    """weight_decay is decoupled for every optimizer, as AdamW and Keras 3 apply it: SGD and
    RMSprop with momentum and decay take Keras's steps on the same weights and gradients, where
    PyTorch's own weight_decay (an L2 term in the gradient, which momentum and RMSprop's scaling
    change) would not."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")
    from neuralab.training.compile import make_optimizer

    start = torch.linspace(-2, 3, 12, dtype=torch.float64).reshape(3, 4).float()
    weight = torch.nn.Parameter(start.clone())
    theirs = keras.Variable(start.numpy())
    ours = make_optimizer([weight], TrainConfig(optimizer=optimizer, lr=0.05, momentum=0.9, weight_decay=0.1),
                          torch.device("cpu"))
    keras_opt = getattr(keras.optimizers, keras_optimizer)(learning_rate=0.05, momentum=0.9, weight_decay=0.1)
    for step in range(6):
        grad = torch.sin(weight.detach() * (step + 1))  # a gradient that moves with the weights
        weight.grad = grad.clone()
        ours.step()
        keras_opt.apply_gradients([(keras.ops.convert_to_tensor(grad.numpy()), theirs)])
        assert torch.allclose(weight.detach(), torch.as_tensor(keras.ops.convert_to_numpy(theirs)), atol=1e-5), step
    assert not torch.allclose(weight.detach(), start, atol=1e-2)  # it moved

@pytest.mark.parametrize("kind, options", [
    ("Adam", {}), ("Adam", {"weight_decay": 0.01, "maximize": True, "betas": (0.8, 0.99)}),
    ("AdamW", {"weight_decay": 0.05}), ("Adam", {"amsgrad": True})])
def test_adam_steps_are_pytorchs_step_for_step(fashion_mnist, monkeypatch, kind, options):
    """neuralab's Adam and AdamW call the fused kernel themselves after the first step: every
    step gives PyTorch's weights and optimizer state to the bit, with the learning rate changed
    between steps as a schedule does, through a step where one layer has no gradient (PyTorch's
    own path then runs), and with amsgrad (always PyTorch's path)."""
    from neuralab.data import load_image_data
    from neuralab.models import build_model
    from neuralab.training import compile as optimizers

    taken = []
    monkeypatch.setattr(optimizers, "_fused_step", lambda opt, group, f=optimizers._fused_step: (taken.append(1), f(opt, group)))
    train = load_image_data("fashion-mnist", fashion_mnist, val_fraction=0.1).train
    images, labels = torch.from_numpy(train.x[:640]).float() / 255, torch.from_numpy(train.y[:640]).long()
    torch.manual_seed(0)
    ours_model = build_model("mlp", (1, 28, 28), 10)
    theirs_model = build_model("mlp", (1, 28, 28), 10)
    theirs_model.load_state_dict(ours_model.state_dict())
    ours = getattr(optimizers, kind)(ours_model.parameters(), lr=3e-3, fused=True, **options)
    theirs = getattr(torch.optim, kind)(theirs_model.parameters(), lr=3e-3, fused=True, **options)
    for step in range(5):
        xb, yb = images[step * 128:(step + 1) * 128], labels[step * 128:(step + 1) * 128]
        for model, opt in ((ours_model, ours), (theirs_model, theirs)):
            for group in opt.param_groups:
                group["lr"] = 3e-3 * (step + 1) / 5
            opt.zero_grad(set_to_none=step != 2)
            torch.manual_seed(step)  # the same dropout masks in both models
            F.cross_entropy(model.eval()(xb) if step == 3 else model.train()(xb), yb).backward()
            if step == 3:
                model.classifier.weight.grad = None  # a layer without a gradient: PyTorch leaves it
            opt.step()
        assert all(torch.equal(a, b) for a, b in zip(ours_model.parameters(), theirs_model.parameters()))
        mine, pytorchs = ours.state_dict(), theirs.state_dict()
        assert mine["param_groups"] == pytorchs["param_groups"]
        assert all(torch.equal(mine["state"][i][k], pytorchs["state"][i][k])
                   for i in pytorchs["state"] for k in pytorchs["state"][i])
    # the steps after the first took the direct call, except the one with a missing gradient
    assert len(taken) == (0 if options.get("amsgrad") else 3)


def test_a_pytorch_optimizer_class_or_factory_from_python(tiny_fashion, tmp_path):
    """A class is made with the parameters and `lr`; a function makes its own. The run
    records the name, and resuming it needs the same object again."""
    made = []

    def nadam(params):
        made.append(torch.optim.NAdam(params, lr=2e-3))
        return made[-1]

    result = train_classifier(config(tiny_fashion), out=tmp_path / "f", verbose=False, optimizer=nadam)
    assert isinstance(made[0], torch.optim.NAdam) and result.test["accuracy"] > 0.55
    record = json.loads((tmp_path / "f" / "config.json").read_text())["config"]["train"]
    assert record["optimizer"].startswith("python:") and record["optimizer"].endswith("nadam")

    seen = []

    class Watch(Callback):
        def on_train_begin(self, trainer):
            seen.append(trainer.optimizer)

    train_classifier(config(tiny_fashion, epochs=1, lr=1e-3), out=tmp_path / "c", verbose=False,
                     optimizer=torch.optim.Adagrad, callbacks=[Watch()])
    assert isinstance(seen[0], torch.optim.Adagrad) and seen[0].defaults["lr"] == 1e-3

    with pytest.raises(ParameterError, match="returns one; it gave int"):
        train_classifier(config(tiny_fashion), out=tmp_path / "bad", verbose=False, optimizer=lambda params: 3)

    # stopped after epoch 1 of 2 (a callback stops it; no results.json), then resumed
    class StopAfterOne(Callback):
        def on_epoch_end(self, trainer, record):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_classifier(config(tiny_fashion), out=tmp_path / "r", verbose=False, optimizer=nadam,
                         callbacks=[StopAfterOne()])
    with pytest.raises(ParameterError, match="resume it in Python with the same object as optimizer"):
        resume_classifier(tmp_path / "r", verbose=False)
    resumed = resume_classifier(tmp_path / "r", verbose=False, optimizer=nadam)
    assert [r["epoch"] for r in resumed.history] == [1, 2]


# --- losses -----------------------------------------------------------------------------------

def test_keras_loss_names_are_the_losses_they_name():
    """On real-looking logits and labels: the per-sample values of each name against PyTorch's
    functions written out, Keras's conventions (softmax output, one-hot targets for mse)."""
    from neuralab.training.compile import LOSS_EACH, on_softmax

    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(32, 10, generator=g) * 3, torch.randint(0, 10, (32,), generator=g)
    onehot = F.one_hot(labels, 10).float()
    ce = F.cross_entropy(logits, labels, reduction="none")
    for name in ("cross_entropy", "sparse_categorical_crossentropy", "categorical_crossentropy"):
        assert torch.allclose(LOSS_EACH[name](logits, labels), ce)
    assert torch.allclose(LOSS_EACH["categorical_crossentropy"](logits, onehot), ce)
    probs = logits.softmax(1)
    assert torch.allclose(on_softmax("mse")(logits, labels), ((probs - onehot) ** 2).mean(1))
    forecast, actual = torch.randn(32, 24, generator=g), torch.randn(32, 24, generator=g)
    error = forecast - actual
    assert torch.allclose(LOSS_EACH["mse"](forecast, actual), (error ** 2).mean(1))
    assert torch.allclose(LOSS_EACH["mae"](forecast, actual), error.abs().mean(1))
    huber = torch.where(error.abs() <= 1, 0.5 * error ** 2, error.abs() - 0.5)  # Keras's Huber, delta 1
    assert torch.allclose(LOSS_EACH["huber"](forecast, actual), huber.mean(1))


def test_the_loss_chosen_is_the_loss_trained_and_reported(tiny_fashion, tmp_path):
    """loss "mse" on a classifier: metrics.jsonl's loss is the mean squared error of the
    softmax (at most 2 per sample, well below cross-entropy's 2.3 at the start)."""
    result = train_classifier(config(tiny_fashion, loss="mse", epochs=2), out=tmp_path / "run", verbose=False)
    lines = metrics(tmp_path / "run")
    assert all(0 < m["loss"] < 0.1 and 0 < m["val_loss"] < 0.1 for m in lines), lines  # 10 classes: <= 0.2
    assert lines[1]["loss"] < lines[0]["loss"] and result.test["accuracy"] > 0.5
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["train"]["loss"] == "mse"


@pytest.mark.parametrize("train, words", [
    ({"optimizer": "nadam"}, "optimizer='nadam': choose one of adam, adamw, sgd, rmsprop"),
    ({"momentum": 0.9}, "applies to optimizer sgd or rmsprop, not adam"),
    ({"optimizer": "sgd", "momentum": 1.5}, "momentum=1.5: must be at least 0 and below 1"),
    ({"loss": "hinge"}, "loss='hinge': choose one of cross_entropy, sparse_categorical_crossentropy"),
    # a misspelt metric would never improve: "best" would be the last epoch and early stopping would never fire
    ({"monitor": "val_acc", "patience": 2}, "monitor='val_acc': choose one of val_loss, val_accuracy"),
    ({"grad_clip": -1.0}, "grad_clip=-1.0: must be 0 (off) or a positive gradient norm"),  # clipped to nothing
])
def test_bad_choices_are_refused_before_anything_is_written(tiny_fashion, tmp_path, train, words):
    with pytest.raises(ParameterError) as e:
        train_classifier(config(tiny_fashion, **train), out=tmp_path / "run", verbose=False)
    assert words in str(e.value)
    assert not (tmp_path / "run").exists()


def test_a_forecaster_refuses_a_class_loss_and_trains_with_mae(tmp_path):
    from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
    from neuralab.forecasting.models import series_train_config

    with pytest.raises(ParameterError, match="forecaster outputs numbers; choose one of mse, mae, huber"):
        ForecastConfig(train=series_train_config(loss="cross_entropy")).check()
    with pytest.raises(ParameterError, match="monitor='val_accuracy': choose one of val_loss, val_mae"):
        ForecastConfig(train=series_train_config(monitor="val_accuracy")).check()
    cfg = ForecastConfig(train=series_train_config(epochs=2, loss="mae", threads=1), backtest_folds=1)
    seen = []

    class Watch(Callback):
        def on_epoch_end(self, trainer, record):
            seen.append(record)

    result = run_forecast(cfg, out=tmp_path / "f", verbose=False, callbacks=[Watch()])
    lines = metrics(tmp_path / "f")
    # with loss mae the training loss is the mean absolute error the metric also measures
    assert [m["loss"] for m in lines] == pytest.approx([m["mae"] for m in lines], rel=1e-5)
    assert [m["val_loss"] for m in lines] == pytest.approx([m["val_mae"] for m in lines], rel=1e-5)
    assert seen == lines and result.history == lines


def test_cli_takes_the_choices_and_records_them(tiny_fashion, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "fashion-mnist", "--data-dir", str(tiny_fashion), "--epochs", "1", "--quiet",
                 "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05", "--loss", "sparse_categorical_crossentropy",
                 "--threads", "1", "--out", str(out)]) == 0
    train = json.loads((out / "config.json").read_text())["config"]["train"]
    assert (train["optimizer"], train["momentum"], train["loss"]) == ("sgd", 0.9, "sparse_categorical_crossentropy")
    capsys.readouterr()
    assert main(["train", "--data-dir", str(tiny_fashion), "--momentum", "0.9", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--momentum 0.9" in err and "--optimizer sgd or rmsprop" in err
    with pytest.raises(SystemExit):
        main(["forecast", "--loss", "cross_entropy"])
    assert "invalid choice: 'cross_entropy'" in capsys.readouterr().err



def test_cli_grad_clip_clips_and_is_recorded(tiny_fashion, tmp_path):
    """--grad-clip is TrainConfig's grad_clip: a norm of 1e-6 holds plain SGD's weights where they
    started, so its training loss stays where the free run's falls."""
    losses = {}
    for clip in ("0", "1e-6"):
        out = tmp_path / f"clip{clip}"
        assert main(["train", "--data", "fashion-mnist", "--data-dir", str(tiny_fashion), "--epochs", "1", "--quiet",
                     "--optimizer", "sgd", "--lr", "0.05", "--grad-clip", clip, "--threads", "1",
                     "--out", str(out)]) == 0
        assert json.loads((out / "config.json").read_text())["config"]["train"]["grad_clip"] == float(clip)
        losses[clip] = metrics(out)[0]["loss"]
    assert losses["1e-6"] > losses["0"] + 0.2

# --- callbacks --------------------------------------------------------------------------------

class Recorder(Callback):
    def __init__(self, stop_at=None):
        self.events, self.records, self.stop_at = [], [], stop_at

    def on_train_begin(self, trainer):
        self.events.append("begin")

    def on_step_end(self, trainer, step, steps):
        self.events.append(("step", step, steps))

    def on_epoch_end(self, trainer, record):
        self.records.append(dict(record))
        self.events.append(("epoch", record["epoch"]))
        return self.stop_at is not None and record["epoch"] >= self.stop_at

    def on_train_end(self, trainer):
        self.events.append("end")


def test_a_callback_sees_every_epochs_metrics_and_every_step(tiny_fashion, tmp_path):
    seen = Recorder()
    train_classifier(config(tiny_fashion, epochs=3), out=tmp_path / "run", verbose=False, callbacks=[seen])
    assert seen.records == metrics(tmp_path / "run")  # the same records, val_* included
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(seen.records[0])
    steps = 22  # 1,350 training images in batches of 64
    expected = ["begin"]
    for epoch in (1, 2, 3):
        expected += [("step", s, steps) for s in range(1, steps + 1)] + [("epoch", epoch)]
    assert seen.events == expected + ["end"]


def test_a_callback_stops_training_and_the_run_finishes_cleanly(tiny_fashion, tmp_path):
    seen = Recorder(stop_at=2)
    result = train_classifier(config(tiny_fashion, epochs=5), out=tmp_path / "run", verbose=False, callbacks=[seen])
    assert [r["epoch"] for r in result.history] == [1, 2] and seen.events[-1] == "end"
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["epochs_run"] == 2 and results["best_epoch"] in (1, 2)


def test_an_object_with_some_hooks_is_a_callback_without_subclassing(tiny_fashion, tmp_path):
    """Duck typing, as Python users expect: only the hooks it defines are called."""
    class Epochs:  # no Callback base, no on_train_begin or on_step_end
        def __init__(self):
            self.epochs, self.ended = [], False

        def on_epoch_end(self, trainer, record):
            self.epochs.append(record["epoch"])
            return record["epoch"] >= 2

        def on_train_end(self, trainer):
            self.ended = True

    seen = Epochs()
    result = train_classifier(config(tiny_fashion, epochs=4), out=tmp_path / "run", verbose=False, callbacks=[seen])
    assert seen.epochs == [1, 2] and seen.ended and len(result.history) == 2


def test_an_object_without_hooks_or_a_keras_callback_is_refused_by_name(tiny_fashion):
    from neuralab.errors import ParameterError
    from neuralab.training.callbacks import as_callback

    with pytest.raises(ParameterError, match=r"callbacks=.*defines none of the hooks on_train_begin"):
        as_callback(object())
    from neuralab.keras import on_pytorch

    on_pytorch()
    keras = pytest.importorskip("keras")
    with pytest.raises(ParameterError, match=r"is a Keras callback.*subclass neuralab.training.Callback"):
        as_callback(keras.callbacks.History())


def test_stop_training_flag_stops_as_in_keras(tiny_fashion, tmp_path):
    """trainer.stop_training = True stops after the epoch, as Keras's model.stop_training."""
    class Flag(Callback):
        def on_epoch_end(self, trainer, record):
            trainer.stop_training = True

    one = train_classifier(config(tiny_fashion, epochs=4), out=tmp_path / "a", verbose=False, callbacks=[Flag()])
    assert len(one.history) == 1 and json.loads((tmp_path / "a" / "results.json").read_text())["epochs_run"] == 1


@pytest.mark.parametrize("monitor, values, stops_at", [
    ("val_accuracy", [0.50, 0.61, 0.61, 0.58, 0.70], 4),  # best first reached at 2; a tie is no improvement
    ("val_loss", [0.9, 0.7, 0.8, 0.6, 0.65, 0.66], 6),
    ("val_mae", [3.0, 2.0, 1.0], None),
])
def test_early_stopping_counts_epochs_since_the_best_in_the_right_direction(monitor, values, stops_at):
    from types import SimpleNamespace

    from neuralab.training.callbacks import EarlyStopping

    stop = EarlyStopping(2, monitor=monitor)
    said = []
    trainer = SimpleNamespace(history=[], config=TrainConfig(), say=said.append)
    stopped = None
    for epoch, value in enumerate(values, 1):
        record = {"epoch": epoch, "loss": 1.0, monitor: value}
        trainer.history.append(record)
        if stop.on_epoch_end(trainer, record):
            stopped = epoch
            break
    assert stopped == stops_at
    # the log says so, in one line (the trainer's own EarlyStopping watches its monitor, val_loss)
    back = "; the model goes back to its best epoch's weights" if monitor == "val_loss" else ""
    assert said == ([] if stops_at is None else [f"stopped early at epoch {stops_at} of 10: {monitor} has not "
                                                 f"improved on epoch {stops_at - 2}'s for 2 epochs (patience 2){back}"])
    resumed = SimpleNamespace(history=trainer.history, config=TrainConfig(), stop_training=False, say=said.append)
    stop.on_train_begin(resumed)  # a run resumed after the stopping epoch stops at once, and says why
    assert resumed.stop_training is (stops_at is not None) and len(said) == 2 * (stops_at is not None)


# --- TensorBoard ------------------------------------------------------------------------------

def events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalars(acc, tag) -> dict[int, float]:
    return {e.step: e.value for e in acc.Scalars(tag)}


def test_tensorboard_holds_the_metrics_summary_and_first_layer_pictures(tiny_fashion, tmp_path):
    out = tmp_path / "runs" / "lenet"
    assert main(["train", "--data", "fashion-mnist", "--data-dir", str(tiny_fashion), "--epochs", "3", "--quiet",
                 "--batch-size", "64", "--threads", "1", "--tensorboard", "--out", str(out)]) == 0
    lines = metrics(out)
    train, val = events(out / "tensorboard" / "train"), events(out / "tensorboard" / "validation")
    for key, acc, tag in (("loss", train, "epoch_loss"), ("accuracy", train, "epoch_accuracy"),
                          ("lr", train, "epoch_learning_rate"), ("val_loss", val, "epoch_loss"),
                          ("val_accuracy", val, "epoch_accuracy")):
        assert scalars(acc, tag) == pytest.approx({m["epoch"]: m[key] for m in lines}, rel=1e-6), key
    text = train.Tensors("summary/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "Total params: 61,706" in text
    for tag in ("first_conv/filters", "first_conv/feature_maps"):
        images = train.Images(tag)
        assert [i.step for i in images] == [1, 2, 3] and images[0].width >= 128, tag
    assert json.loads((out / "config.json").read_text())["config"]["train"]["tensorboard"] is True


def test_tensorboard_leaves_the_training_unchanged_and_resumes_without_repeats(tiny_fashion, tmp_path):
    """The pictures' forward pass draws no random numbers: the same weights as without
    TensorBoard. A run killed after epoch 1 and resumed has each epoch's loss once."""
    plain = train_classifier(config(tiny_fashion, epochs=2), out=tmp_path / "plain", verbose=False)

    class CutAfterOne(Callback):
        def on_epoch_end(self, trainer, record):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_classifier(config(tiny_fashion, epochs=2, tensorboard=True), out=tmp_path / "tb", verbose=False,
                         callbacks=[CutAfterOne()])
    resumed = resume_classifier(tmp_path / "tb", verbose=False)
    a, b = (load_tensors(r.run_dir / "model.safetensors")[0] for r in (plain, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = scalars(events(tmp_path / "tb" / "tensorboard" / "train"), "epoch_loss")
    assert losses == pytest.approx({m["epoch"]: m["loss"] for m in metrics(tmp_path / "tb")}, rel=1e-6)


def test_a_run_resumed_in_the_second_of_its_last_events_shows_every_epoch(tiny_fashion, tmp_path):
    """TensorBoard reads a folder's event files in the order of their names, which start with
    the second each was made: the resumed session's file must sort after the stopped one's even
    when it is made in the same second (a Jupyter kernel resuming at once), or its purge hides
    the epochs it wrote. The stopped session's files are named as made a second ahead here."""
    class CutAfterOne(Callback):
        def on_epoch_end(self, trainer, record):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_classifier(config(tiny_fashion, epochs=3, tensorboard=True), out=tmp_path / "tb", verbose=False,
                         callbacks=[CutAfterOne()])
    ahead = int(time.time()) + 1
    for file in (tmp_path / "tb" / "tensorboard").glob("*/events.out.tfevents.*"):
        parts = file.name.split(".")
        parts[3], parts[4] = str(ahead), "~"  # "~" sorts after any host name
        file.rename(file.with_name(".".join(parts)))
    resume_classifier(tmp_path / "tb", verbose=False)
    for part, tag, key in (("train", "epoch_loss", "loss"), ("validation", "epoch_accuracy", "val_accuracy")):
        shown = scalars(events(tmp_path / "tb" / "tensorboard" / part), tag)
        assert shown == pytest.approx({m["epoch"]: m[key] for m in metrics(tmp_path / "tb")}, rel=1e-6), part
        assert sorted(shown) == [1, 2, 3]


def test_forecast_tensorboard_has_the_series_metrics(tmp_path):
    from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
    from neuralab.forecasting.models import series_train_config

    cfg = ForecastConfig(train=series_train_config(epochs=2, threads=1, tensorboard=True), backtest_folds=1)
    run_forecast(cfg, out=tmp_path / "runs" / "weather", verbose=False)
    lines = metrics(tmp_path / "runs" / "weather")
    val = events(tmp_path / "runs" / "weather" / "tensorboard" / "validation")
    assert scalars(val, "epoch_mae") == pytest.approx({m["epoch"]: m["val_mae"] for m in lines}, rel=1e-6)
    train = events(tmp_path / "runs" / "weather" / "tensorboard" / "train")
    assert "Total params" in train.Tensors("summary/text_summary")[0].tensor_proto.string_val[0].decode()
    assert not train.Tags()["images"]  # series: no pictures


def test_missing_tensorboard_package_is_one_line(tiny_fashion, tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    assert main(["train", "--data-dir", str(tiny_fashion), "--tensorboard", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'neuralab[tensorboard]'" in err and "--tensorboard" in err
    assert not (tmp_path / "run").exists()
    with pytest.raises(NeuralabError, match="tensorboard package"):
        TrainConfig(tensorboard=True).check()


def test_docs_tensorboard_examples_run(tmp_path, monkeypatch, capsys):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "tensorboard.md").read_text()
    monkeypatch.chdir(tmp_path)
    for code in re.findall(r"^```python\n(.*?)^```", text, re.M | re.S):
        exec(compile(code, "docs/tensorboard.md", "exec"), {"__name__": "__main__"})
    steps = re.findall(r"\((\d), ", capsys.readouterr().out)
    assert steps == ["1", "2"] and not (tmp_path / "runs" / "tb-demo" / "validation").exists()


def test_patience_running_out_on_the_last_epoch_is_no_early_stop_to_speak_of():
    from types import SimpleNamespace

    from neuralab.training.callbacks import EarlyStopping

    stop, said = EarlyStopping(2), []
    trainer = SimpleNamespace(history=[], config=TrainConfig(epochs=3), say=said.append)
    for epoch, value in enumerate([0.5, 0.6, 0.7], 1):  # the third epoch is due, and the last
        trainer.history.append({"epoch": epoch, "loss": 1.0, "val_loss": value})
        stop.on_epoch_end(trainer, trainer.history[-1])
    assert said == []
