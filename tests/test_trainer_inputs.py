"""Trainer.fit, evaluate and predict on what a notebook hands them, on scikit-learn's real
handwritten digits: NumPy's dtypes, labels the model has no output for, NaN, images of
another shape, and a second fit on the same trainer."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from neuralab.errors import ParameterError
from neuralab.models import build_model
from neuralab.training import Callback, TrainConfig, Trainer
from neuralab.training.config import REGRESSION_LOSSES
from neuralab.training.preprocess import Preprocess
from neuralab.training.seeds import seed_everything


@pytest.fixture(scope="module")
def digits():
    """(N, 1, 8, 8) float64 ink in [0, 1], as NumPy computes it, and int64 labels 0-9."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images[:, None] / 16, d.target


def config(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "batch_size": 64, "threads": 1, **kw})


def own_mlp(classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, classes))


MODELS = {"zoo mlp": lambda: build_model("mlp", (1, 8, 8), 10), "zoo cnn": lambda: build_model("cnn", (1, 8, 8), 10),
          "own": own_mlp}


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def refused(call, parameter: str) -> str:
    with pytest.raises(ParameterError) as e:
        call()
    assert e.value.parameter == parameter and "\n" not in str(e.value), e.value
    return str(e.value)


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_numpy_float64_inputs_are_refused_naming_x(digits, make):
    images, labels = digits
    x, y = torch.from_numpy(images[:256]), torch.from_numpy(labels[:256])
    assert x.dtype == torch.float64
    model = make()
    before = weights(model)
    trainer = Trainer(model, config(), verbose=False)
    assert "give x.float()" in refused(lambda: trainer.fit(x, y), "x")
    assert "give val[0].float()" in refused(lambda: trainer.fit(x.float(), y, val=(x, y)), "val[0]")
    refused(lambda: trainer.evaluate(x, y), "x")
    refused(lambda: trainer.predict(x), "x")
    assert same(before, weights(model))
    assert trainer.fit(x.float(), y, val=(x.float(), y))[-1]["val_accuracy"] > 0


def test_integer_and_bool_labels_train_as_int64_labels_do(digits):
    """NumPy's int32 (its default on Windows), uint8 (IDX files) and bool labels: the same
    training, step for step, as int64 labels; True is class 1, as y.long() makes it."""
    images, labels = digits
    x, y = torch.from_numpy(images[:256]).float(), torch.from_numpy(labels[:256])
    seed_everything(0)
    start = build_model("mlp", (1, 8, 8), 10)
    seed_everything(0)
    start_binary = own_mlp(2)

    def trained(model, targets):
        trainer = Trainer(copy.deepcopy(model), config(), verbose=False)
        seed_everything(1)  # the same dropout masks
        history = trainer.fit(x, targets, val=(x[:64], targets[:64]))
        return weights(trainer.model), history[-1]["val_loss"], trainer.evaluate(x[:64], targets[:64])

    reference = trained(start, y.long())
    for dtype in (torch.int32, torch.uint8):
        w, val_loss, scores = trained(start, y.to(dtype))
        assert same(w, reference[0]) and val_loss == reference[1] and scores == reference[2]
    zero = y == 0  # is it a zero?
    w, val_loss, scores = trained(start_binary, zero)
    w_long, val_loss_long, scores_long = trained(start_binary, zero.long())
    assert same(w, w_long) and val_loss == val_loss_long and scores == scores_long


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_uint8_pixels_without_inputs_are_refused_pointing_to_normalise(digits, make):
    images, labels = digits
    pixels = np.round(images[:256] * 255).astype(np.uint8)
    x, y = torch.from_numpy(pixels), torch.from_numpy(labels[:256])
    model = make()
    message = refused(lambda: Trainer(model, config(), verbose=False).fit(x, y), "x")
    assert "normalise" in message and "uint8" in message
    trainer = Trainer(model, config(), verbose=False, inputs=Preprocess.fit(pixels).normalise)
    assert trainer.fit(x, y)[-1]["loss"] > 0 and trainer.predict(x).shape == (256, 10)


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_labels_beyond_the_models_outputs_are_refused_before_training(digits, make, tmp_path):
    """Ten outputs, labels 1-10 (counted from 1): the model's IndexError came at the first bad
    batch, or after check_model's batch, mid-epoch, or only after a whole epoch for val."""
    images, labels = digits
    x, y = torch.from_numpy(images[:256]).float(), torch.from_numpy(labels[:256])
    late = y.clone()
    late[-1] = 10  # one label, in the epoch's last batch
    model = make()
    before = weights(model)
    trainer = Trainer(model, config(), run_dir=tmp_path / "run", verbose=False)
    for bad in (y + 1, late):
        assert "count from 0 to 9" in refused(lambda: trainer.fit(x, bad), "y")
    assert "count from 0 to 9" in refused(lambda: trainer.fit(x, y, val=(x[:64], y[:64] + 1)), "val[1]")
    refused(lambda: trainer.evaluate(x, late), "y")
    refused(lambda: trainer.score(trainer.predict(x), late), "y")
    assert same(before, weights(model)) and not (tmp_path / "run").exists()


def test_a_second_fit_trains_again_with_a_fresh_history(digits):
    """Before, the second fit compared its epochs with the first's: on a validation set it
    scored worse on (here, mislabelled), no epoch 'improved' and the first fit's best weights
    came back, as if the second had not run; its history read [1, 2, 1, 2]."""
    images, labels = digits
    x, y = torch.from_numpy(images[:512]).float(), torch.from_numpy(labels[:512])
    xv, yv = torch.from_numpy(images[1000:1200]).float(), torch.from_numpy(labels[1000:1200])

    class Kept(Callback):
        def __init__(self):
            self.states = {}

        def on_epoch_end(self, trainer, record):
            self.states[record["epoch"]] = weights(trainer.model)

    kept = Kept()
    trainer = Trainer(build_model("mlp", (1, 8, 8), 10), config(epochs=2), verbose=False, callbacks=[kept])
    first = trainer.fit(x, y, val=(xv, yv))
    after_first = weights(trainer.model)
    assert [r["epoch"] for r in first] == [1, 2]
    second = trainer.fit(x, y, val=(xv, (yv + 1) % 10))
    assert [r["epoch"] for r in second] == [1, 2] and trainer.history == second
    assert min(r["val_loss"] for r in second) > min(r["val_loss"] for r in first)  # the case described above
    assert not same(after_first, weights(trainer.model))
    assert same(kept.states[trainer.best_epoch()], weights(trainer.model))  # the second fit's best epoch


def test_predict_and_evaluate_leave_each_layer_of_a_module_in_the_middle_of_its_training_in_its_mode(digits):
    """A researcher scores their module inside their own training loop: predict left it in eval
    (Dropout off from then on), and evaluate put it back in training mode whole, the BatchNorm they
    froze in eval included."""
    images, labels = digits
    x, y = torch.from_numpy(images[:256]).float(), torch.from_numpy(labels[:256])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(32, 10)).train()
    model[2].eval()  # frozen
    modes = [m.training for m in model.modules()]
    trainer = Trainer(model, config(), verbose=False)
    out = trainer.predict(x)
    assert [m.training for m in model.modules()] == modes
    scored = trainer.evaluate(x, y)
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(out, trainer.predict(x))  # eval mode's outputs: no Dropout drew in either
    assert scored == trainer.score(out, y)


def test_nan_or_infinity_in_inputs_is_refused_naming_the_row(digits):
    """Before, a NaN pixel read as Diverged ("lower the learning rate") and left NaN weights."""
    images, labels = digits
    x, y = torch.from_numpy(images[:256]).float(), torch.from_numpy(labels[:256])
    broken = x.clone()
    broken[37, 0, 4, 4] = float("nan")
    model = build_model("mlp", (1, 8, 8), 10)
    before = weights(model)
    trainer = Trainer(model, config(), verbose=False)
    assert "row 37" in refused(lambda: trainer.fit(broken, y), "x")
    infinite = x[:64].clone()
    infinite[5, 0, 0, 0] = float("inf")
    assert "row 5" in refused(lambda: trainer.fit(x, y, val=(infinite, y[:64])), "val[0]")
    assert same(before, weights(model))


def test_nan_or_infinity_in_targets_is_refused_naming_the_row(digits):
    """A NaN target read as Diverged ("lower the learning rate"); in val[1] every epoch's val loss
    was NaN, epoch 1's weights were kept and the warning spoke of a square overflowing."""
    from neuralab.training import REGRESSION

    images, labels = digits
    x = torch.from_numpy(images[:256]).float()
    values = x.flatten(1).mean(1, keepdim=True)  # how much ink: a regression of the same pictures
    missing = values.clone()
    missing[40] = float("nan")
    for loss in ("mse", "mae"):
        model = own_mlp(1)
        before = weights(model)
        trainer = Trainer(model, config(loss=loss), REGRESSION, verbose=False)
        assert "row 40" in refused(lambda: trainer.fit(x, missing), "y")
        assert "row 40" in refused(lambda: trainer.fit(x, values, val=(x, missing)), "val[1]")
        refused(lambda: trainer.evaluate(x, missing), "y")
        assert same(before, weights(model))
    smoothed = torch.nn.functional.one_hot(torch.from_numpy(labels[:256]), 10).float() * 0.9 + 0.01
    smoothed[7, 3] = float("inf")
    trainer = Trainer(own_mlp(), config(), verbose=False)
    assert "row 7" in refused(lambda: trainer.fit(x, smoothed), "y")


def test_nan_targets_that_a_modules_own_loss_masks_train_and_stay_refused_where_trainconfigs_loss_scores(digits):
    """Ink in each half of the digit, some not measured (NaN), which the module's own loss masks:
    refused as a NaN target since that check came; its loss decides, as GoogLeNet's does its heads'.
    The validation pass and evaluate score with TrainConfig's loss, which a NaN makes NaN."""
    from neuralab.training import REGRESSION

    images, _ = digits
    x = torch.from_numpy(images[:256]).float()
    halves = torch.stack([x[:, 0, :4].flatten(1).mean(1), x[:, 0, 4:].flatten(1).mean(1)], 1)
    missing = halves.clone()
    missing[torch.rand(missing.shape, generator=torch.Generator().manual_seed(0)) < 0.2] = float("nan")

    class Masked(nn.Module):
        loss_takes_criterion = True

        def __init__(self):
            super().__init__()
            self.f = own_mlp(2)

        def forward(self, x):
            return self.f(x)

        def loss(self, outputs, y, criterion):
            measured = ~torch.isnan(y)
            return criterion(outputs[measured], y[measured])

    model = Masked()
    trainer = Trainer(model, config(loss="mse", epochs=2), REGRESSION, verbose=False)
    history = trainer.fit(x, missing)
    assert len(history) == 2 and all(np.isfinite(r["loss"]) for r in history)
    before = weights(model)
    first = int(torch.isnan(missing).any(1).nonzero()[0])
    assert f"row {first}" in refused(lambda: trainer.fit(x, missing, val=(x, missing)), "val[1]")
    refused(lambda: trainer.evaluate(x, missing), "y")
    assert same(before, weights(model))
    assert f"row {first}" in refused(lambda: Trainer(own_mlp(2), config(loss="mse"), REGRESSION,
                                                     verbose=False).fit(x, missing), "y")


@pytest.mark.parametrize("loss", [None, "categorical_crossentropy", "mse", "mae", "huber"])
def test_one_hot_targets_with_a_row_of_zeros_are_refused_by_the_cross_entropies_and_regressed_by_the_others(
        digits, loss):
    """One label lost (a row of zeros) in float one-hot y scored nothing under the cross-entropy,
    unsaid: refused naming that row. Under mse, mae and huber such rows are values to regress (tags
    of which none applies, proportions of an empty sample), which were refused too; beside one-hot
    targets it is the set with the row of zeros that is named, where a clean val[1] was blamed."""
    images, labels = digits
    x = torch.from_numpy(images[:256]).float()
    onehot = torch.nn.functional.one_hot(torch.from_numpy(labels[:256]), 10).float()
    lost = onehot.clone()
    lost[5] = 0
    model = own_mlp()
    before = weights(model)
    trainer = Trainer(model, config(loss=loss), verbose=False)
    if loss not in REGRESSION_LOSSES:
        assert "row 5" in refused(lambda: trainer.fit(x, lost), "y")
    assert "row 5" in refused(lambda: trainer.fit(x, lost, val=(x[:64], onehot[:64])), "y")
    assert "row 5" in refused(lambda: trainer.fit(x, onehot, val=(x[:64], lost[:64])), "val[1]")
    assert same(before, weights(model))
    assert "accuracy" in trainer.fit(x, onehot, val=(x[:64], onehot[:64]))[-1]
    if loss in REGRESSION_LOSSES:  # tags, none on some rows and two on others: values, in y and any slice of it
        tags = lost.clone()
        tags[::3] = 0
        tags[:20] = (onehot + onehot.roll(1, 0))[:20].clamp(max=1)
        for y, val in ((lost, None), (tags, (x[100:200], tags[100:200]))):
            history = Trainer(own_mlp(), config(loss=loss), verbose=False).fit(x, y, val=val)
            assert "accuracy" not in history[-1] and np.isfinite(history[-1]["mae"])


class Tagger(nn.Module):
    """Three tags per picture under its own binary cross-entropy, which takes several tags or none."""

    loss_takes_criterion = True

    def __init__(self):
        super().__init__()
        self.f = own_mlp(3)

    def forward(self, x):
        return self.f(x)

    def loss(self, outputs, y, criterion):
        return nn.functional.binary_cross_entropy_with_logits(outputs, y.float())


def test_rows_of_zeros_that_a_modules_own_loss_takes_train_and_stay_refused_where_trainconfigs_loss_scores(digits):
    """Tags of the digits 0, 1 and 2, none on the other digits (a row of zeros), under the module's
    own binary cross-entropy: refused for the task's cross-entropy, which the module never computes.
    Its loss judges y, as it does NaN; the validation pass and evaluate score with TrainConfig's."""
    images, labels = digits
    x = torch.from_numpy(images[:256]).float()
    tags = torch.nn.functional.one_hot(torch.from_numpy(labels[:256]), 10).float()[:, :3]
    first = int((tags.sum(1) == 0).nonzero()[0])

    model = Tagger()
    trainer = Trainer(model, config(epochs=2), verbose=False)
    history = trainer.fit(x, tags)
    assert len(history) == 2 and all(np.isfinite(r["loss"]) for r in history)
    before = weights(model)
    assert f"row {first}" in refused(lambda: trainer.fit(x, tags, val=(x, tags)), "val[1]")
    refused(lambda: trainer.evaluate(x, tags), "y")
    assert same(before, weights(model))
    assert f"row {first}" in refused(lambda: Trainer(own_mlp(3), config(), verbose=False).fit(x, tags), "y")


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_multi_label_tags_as_whole_numbers_train_under_a_modules_own_loss(digits, dtype):
    """Several tags per sample, as int64 or bool, under the module's own binary cross-entropy:
    refused as one-hot rows to give as class numbers (argmax, which would keep one tag of each),
    for the task's cross-entropy, which the module never computes."""
    images, labels = digits
    x = torch.from_numpy(images[:256]).float()
    digit = torch.from_numpy(labels[:256])
    tags = torch.stack([digit % 2 == 0, digit < 5, digit == 0], 1).to(dtype)  # even, small, zero
    assert (tags.long().sum(1) > 1).any()

    history = Trainer(Tagger(), config(epochs=2), verbose=False).fit(x, tags)
    assert len(history) == 2 and all(np.isfinite(r["loss"]) for r in history)
    refused(lambda: Trainer(own_mlp(3), config(), verbose=False).fit(x, tags), "y")


def test_images_of_another_shape_are_refused_naming_x_on_zoo_models(digits):
    images, labels = digits
    x, y = torch.from_numpy(images[:256]).float(), torch.from_numpy(labels[:256])
    built_for_16 = build_model("cnn", (1, 16, 16), 10)
    message = refused(lambda: Trainer(built_for_16, config(), verbose=False).fit(x, y), "x")
    assert "(256, 1, 8, 8)" in message and "(N, 1, H, W)" in message
    refused(lambda: Trainer(built_for_16, config(), verbose=False).predict(x), "x")
    # where the run's metadata records the shape, the message gives it
    meta = {"architecture": "cnn", "input_shape": [1, 16, 16]}
    assert "(N, 1, 16, 16)" in refused(lambda: Trainer(built_for_16, config(), model_meta=meta,
                                                       verbose=False).fit(x, y), "x")
    # colour pictures as (N, H, W, C), as PIL and NumPy hold them
    rgb = x.repeat(1, 3, 1, 1).permute(0, 2, 3, 1).contiguous()
    colour = build_model("cnn", (3, 8, 8), 10)
    assert "x.permute(0, 3, 1, 2)" in refused(lambda: Trainer(colour, config(), verbose=False).fit(rgb, y), "x")
    assert Trainer(colour, config(), verbose=False).fit(rgb.permute(0, 3, 1, 2), y)[-1]["loss"] > 0


def test_early_stopping_without_the_metric_it_watches_says_it_will_not_stop(digits):
    """As Keras's EarlyStopping warns: patience on val_loss with no validation set stops nothing."""
    import warnings

    images, labels = digits
    x, y = torch.from_numpy(images).float(), torch.from_numpy(labels)
    with pytest.warns(UserWarning, match=r"early stopping watches 'val_loss', which the epochs do not report .*"
                                         r"give a validation set \(val, or a val_fraction above 0\)") as said:
        Trainer(own_mlp(), config(epochs=3, patience=1), verbose=False).fit(x[:1200], y[:1200])
    assert sum("early stopping" in str(w.message) for w in said) == 1  # once, not every epoch
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # with a validation set: nothing to say
        Trainer(own_mlp(), config(epochs=2, patience=1), verbose=False).fit(x[:1200], y[:1200],
                                                                            val=(x[1200:], y[1200:]))
