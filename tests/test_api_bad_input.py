"""What a notebook user hands the Python API in the shapes other libraries use: arrays as a
dataset (Keras's x_train, y_train), a dict as the Trainer's config, one-hot or column labels,
class names that do not match the model, on scikit-learn's real handwritten digits. Each is
refused before anything trains with one ParameterError naming the parameter and saying what to
give; and a dataset shows a short summary in a cell, not its pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import digits_folder
from torch import nn

from neuralab import ClassifierConfig, load_image_data, train_classifier
from neuralab.errors import NeuralabError, ParameterError
from neuralab.models import build_model
from neuralab.training import Classifier, Preprocess, TrainConfig, Trainer


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 1,797 real 8x8 digits as (N, 1, 8, 8) uint8 pixels and int64 labels 0-9."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images[:, None] * 16).clip(0, 255).astype(np.uint8), d.target.astype(np.int64)


@pytest.fixture(scope="module")
def tensors(digits):
    """The digits as the trainer takes them: float32 ink in [0, 1] and int64 labels."""
    x, y = digits
    return torch.from_numpy(x).float() / 255, torch.from_numpy(y)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def config(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "batch_size": 64, "threads": 1, **kw})


def refused(call, parameter: str) -> str:
    with pytest.raises(ParameterError) as e:
        call()
    assert e.value.parameter == parameter and "\n" not in str(e.value), e.value
    return str(e.value)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


# --- arrays as a dataset ----------------------------------------------------------------------

def test_arrays_as_a_classifier_configs_data_are_refused_naming_data(digits, tmp_path):
    out = tmp_path / "run"
    message = refused(lambda: train_classifier(ClassifierConfig(model="lenet5", data=digits), out=out,
                                               verbose=False), "data")
    assert message.startswith("data='tuple': give a dataset's name (mnist, fashion-mnist, cifar10) or a folder")
    assert "Trainer(model, TrainConfig()).fit(torch.from_numpy(x), torch.from_numpy(y))" in message
    assert not out.exists()


def test_arrays_given_to_load_image_data_are_refused_naming_name(digits):
    message = refused(lambda: load_image_data(digits[0]), "name")
    assert message.startswith("name='ndarray': give a dataset's name") and "Trainer(model" in message


def test_a_path_that_is_no_folder_is_refused_as_a_string_is(tmp_path):
    for missing in (str(tmp_path / "no" / "digits"), tmp_path / "no" / "digits"):
        with pytest.raises(NeuralabError, match="no/digits: not a folder; give a folder with one sub-folder"):
            load_image_data(missing)


# --- the Trainer's config ---------------------------------------------------------------------

def test_a_dict_as_the_trainers_config_is_refused_as_a_classifier_configs_train_is(tmp_path):
    trainer = refused(lambda: Trainer(mlp(), {"epochs": 1}, verbose=False), "config")
    assert trainer == "config='dict': give a TrainConfig, e.g. TrainConfig(epochs=1)"
    run = refused(lambda: train_classifier(ClassifierConfig(data=str(tmp_path), train={"epochs": 1}),
                                           verbose=False), "train")
    assert run.removeprefix("train=") == trainer.removeprefix("config=")


# --- labels -----------------------------------------------------------------------------------

def test_one_hot_labels_are_refused_naming_y_before_training(tensors):
    x, y = tensors
    model = mlp()
    before = weights(model)
    trainer = Trainer(model, config(), verbose=False)
    message = refused(lambda: trainer.fit(x, F.one_hot(y, 10)), "y")
    assert message == "y='int64 of (1797, 10)': one-hot rows: give one class number per row, e.g. y.argmax(1)"
    assert refused(lambda: trainer.fit(x[:1500], y[:1500], val=(x[1500:], F.one_hot(y[1500:], 10))), "val[1]") \
        .endswith("e.g. val[1].argmax(1)")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert trainer.fit(x, F.one_hot(y, 10).argmax(1))[0]["accuracy"] > 0.3  # the advice trains


def test_a_column_of_labels_is_refused_naming_y(tensors):
    x, y = tensors
    column = y[:, None].to(torch.uint8)  # as keras.datasets gives CIFAR-10's labels: (N, 1) uint8
    for loss in (None, "sparse_categorical_crossentropy"):
        message = refused(lambda: Trainer(mlp(), config(loss=loss), verbose=False).fit(x, column), "y")
        assert message == "y='uint8 of (1797, 1)': a column: give one class number per row, e.g. y.view(-1)"


def test_a_named_cross_entropy_checks_labels_as_the_default_loss_does(tensors):
    x, y = tensors
    for loss in ("cross_entropy", "sparse_categorical_crossentropy", "categorical_crossentropy"):
        assert "class labels are whole numbers: give y.long()" in \
            refused(lambda: Trainer(mlp(), config(loss=loss), verbose=False).fit(x, y.float()), "y")
        assert refused(lambda: Trainer(mlp(), config(loss=loss), verbose=False).fit(x, y + 1), "y") \
            .startswith("y=10: the model gives 10 outputs")
    # NumPy's int32 labels train on a named cross-entropy as on the default, to the same weights
    trained = []
    for loss, labels in ((None, y), ("cross_entropy", y.int())):
        model = mlp()
        Trainer(model, config(loss=loss), verbose=False).fit(x, labels)
        trained.append(weights(model))
    assert all(torch.allclose(trained[0][k], trained[1][k]) for k in trained[0])


def test_losses_that_take_one_hot_or_float_targets_still_train_on_them(tensors):
    x, y = tensors
    for loss, targets in ((None, F.one_hot(y, 10).float()), ("categorical_crossentropy", F.one_hot(y, 10)),
                          ("mse", F.one_hot(y, 10).float())):
        history = Trainer(mlp(), config(loss=loss), verbose=False).fit(x, targets)
        assert np.isfinite(history[0]["loss"]), loss


def test_mse_mae_and_huber_take_class_numbers_as_the_cross_entropy_does(tensors):
    """A classifier scored by mse compares its softmax with the one-hot labels: its class numbers are
    checked alike (they were left to fail in the first step, blamed on the model's forward)."""
    x, y = tensors
    for loss in ("mse", "mae", "huber"):
        trained = []
        for labels in (y, y.int(), y.to(torch.uint8)):  # any integer type, as docs/api.md says
            model = mlp()
            Trainer(model, config(loss=loss), verbose=False).fit(x, labels)
            trained.append(weights(model))
        assert all(torch.allclose(trained[0][k], t[k]) for t in trained[1:] for k in t), loss
        assert refused(lambda: Trainer(mlp(), config(loss=loss), verbose=False).fit(x, y + 1), "y") \
            .startswith("y=10: the model gives 10 outputs")
        assert refused(lambda: Trainer(mlp(), config(loss=loss), verbose=False).fit(x, y - 1), "y") \
            .startswith("y=-1: class labels count from 0")
    # a float target is mse's to score as it is: one output regressing the digit's value
    torch.manual_seed(0)
    one = nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
    history = Trainer(one, config(loss="mse"), verbose=False).fit(x, y.float()[:, None] / 9)
    assert np.isfinite(history[0]["loss"])


def test_mse_mae_and_huber_score_values_as_they_are_and_only_labels_on_the_softmax(tensors):
    """LOSS_EACH's mse, mae and huber are the losses of values, element by element; on_softmax is where
    labels, class numbers as one-hot rows, are scored on a classifier's softmax. Class numbers were put
    on the softmax by the losses of values themselves, one rule in two places."""
    from neuralab.training.compile import LOSS_EACH, on_softmax

    x, y = tensors
    out = mlp()(x[:64])
    labels, rows = y[:64], F.one_hot(y[:64], 10)
    for loss, reference in (("mse", F.mse_loss), ("mae", F.l1_loss), ("huber", F.huber_loss)):
        with pytest.raises(ValueError, match="do not match the outputs"):
            LOSS_EACH[loss](out, labels)
        assert torch.allclose(LOSS_EACH[loss](out, rows), reference(out, rows.float(), reduction="none").mean(1))
        on = reference(out.softmax(1), rows.float(), reduction="none").mean(1)
        assert torch.allclose(on_softmax(loss)(out, labels), on) and torch.allclose(on_softmax(loss)(out, rows), on)


def test_one_hot_rows_under_mse_mae_and_huber_are_scored_as_their_class_numbers_in_training_and_validation(tensors):
    """Keras's to_categorical rows (floats) and F.one_hot's (whole numbers) under mse, mae or huber: the
    raw logits were scored against them where class numbers scored the softmax, and a validation set of
    the other form chose the best epoch on the other figure."""
    x, y = tensors
    train, val = slice(0, 1500), slice(1500, None)
    for loss in ("mse", "mae", "huber"):
        histories, trained = [], []
        for form in (lambda t: t, lambda t: F.one_hot(t, 10).float(), lambda t: F.one_hot(t, 10)):
            for val_form in (lambda t: t, form):
                model = mlp()
                history = Trainer(model, config(loss=loss, epochs=2), verbose=False).fit(
                    x[train], form(y[train]), val=(x[val], val_form(y[val])))
                histories.append([{k: r[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")} for r in history])
                trained.append(weights(model))
        assert all(h == histories[0] for h in histories[1:]), loss
        assert all(torch.equal(trained[0][k], t[k]) for t in trained[1:] for k in t), loss
    # scored on the softmax, as Keras scores a model ending in softmax, label-smoothed rows too
    trainer = Trainer(mlp(), config(loss="mse"), verbose=False)
    trainer.fit(x, F.one_hot(y, 10).float())
    probabilities = trainer.predict(x).softmax(1)
    for rows in (F.one_hot(y, 10).float(), F.one_hot(y, 10).float() * 0.9 + 0.01):
        assert trainer.evaluate(x, rows)["loss"] == pytest.approx(float(F.mse_loss(probabilities, rows)), rel=1e-5)


def test_one_hot_rows_of_bools_train_as_one_hot_rows_of_whole_numbers(tensors):
    """F.one_hot(...).bool() under mse, mae, huber or categorical_crossentropy: the first step failed in
    the accuracy (argmax takes no bools), and the default loss's refusal told y.argmax(1), which fails
    on bools too."""
    x, y = tensors
    rows = F.one_hot(y, 10)
    for loss in ("mse", "mae", "huber", "categorical_crossentropy"):
        histories = []
        for targets in (rows, rows.bool()):
            trainer = Trainer(mlp(), config(loss=loss), verbose=False)
            histories.append([{k: r[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
                              for r in trainer.fit(x, targets, val=(x, targets))])
            assert trainer.evaluate(x, targets)["accuracy"] == histories[-1][-1]["val_accuracy"]
        assert histories[0] == histories[1], loss
    message = refused(lambda: Trainer(mlp(), config(), verbose=False).fit(x, rows.bool()), "y")
    assert message == f"y='bool of ({len(x)}, 10)': one-hot rows: give one class number per row, e.g. y.long().argmax(1)"
    assert torch.equal(rows.bool().long().argmax(1), y)



def test_one_value_per_sample_for_mse_is_a_regression_shaped_to_the_output_and_scored_by_mae(tensors):
    """A float target per sample, (N,) as (N, 1), is fitted by one output: it was broadcast against
    it to (N, N), which only the mean satisfies, and an accuracy of 0.0 or 1.0 was reported."""
    x, y = tensors
    value = y.float() / 9  # the digit's value, regressed
    histories, fitted = [], []
    for targets in (value, value[:, None]):
        torch.manual_seed(0)
        one = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
        trainer = Trainer(one, config(loss="mse", epochs=3, lr=0.01), verbose=False)
        histories.append([{k: r[k] for k in ("loss", "mae")} for r in trainer.fit(x, targets)])
        scored = trainer.evaluate(x, targets)
        assert "accuracy" not in trainer.history[-1] and "accuracy" not in scored
        fitted.append(trainer.predict(x).view(-1))
        assert scored["mae"] == pytest.approx(float((fitted[-1] - value).abs().mean()), rel=1e-5)
    assert histories[0] == histories[1] and torch.equal(*fitted)
    assert histories[0][-1]["loss"] < 0.5 * float(value.var())  # more than the mean was learned
    three = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))  # not read as class labels: "(N, 9) (9 classes)"
    assert refused(lambda: Trainer(three, config(loss="mse"), verbose=False).fit(x, value), "y").startswith(
        f"y='float32 of ({len(x)},)': 1 value per sample, which a regression loss scores against the model's 3 outputs")
    assert refused(lambda: Trainer(mlp(), config(loss="mae", monitor="val_accuracy"), verbose=False).fit(x, value),
                   "monitor")


def test_whole_numbers_under_mse_mae_and_huber_are_labels_and_values_to_regress_are_told_to_be_floats(tensors):
    """Integer targets a regression user gives, (N, 1) or (N,) against one output: they trained as labels of a
    single class, reporting an accuracy of 100% beside the loss; and a validation set of values beside labels
    (or labels beside values) was scored in another way than the training set and chose the best epoch."""
    x, y = tensors
    value = y.float()[:, None] / 9

    def one():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 1))

    for loss in ("mse", "mae", "huber"):
        column = refused(lambda: Trainer(one(), config(loss=loss), verbose=False).fit(x, y[:, None]), "y")
        assert column.startswith(f"y='int64 of ({len(x)}, 1)': a column of whole numbers") and "y.float()" in column
        assert "y.float()" in refused(lambda: Trainer(one(), config(loss=loss), verbose=False).fit(x, y), "y")
        assert "y.float()" in refused(lambda: Trainer(mlp(), config(loss=loss), verbose=False).fit(x, 2 * F.one_hot(y)),
                                      "y")
        assert "val[1].float()" in refused(lambda: Trainer(one(), config(loss=loss), verbose=False).fit(
            x, value, val=(x, y[:, None])), "val[1]")
        assert refused(lambda: Trainer(one(), config(loss=loss), verbose=False).fit(x, value, val=(x, y)), "val[1]") \
            .endswith("give val[1].float()")
        message = refused(lambda: Trainer(mlp(), config(loss=loss), verbose=False).fit(x, y, val=(x, value)), "val[1]")
        assert message.startswith(f"val[1]='float32 of ({len(x)}, 1)': {loss} takes its targets for values to regress")
        assert message.endswith("give val[1].view(-1).long()")
        history = Trainer(one(), config(loss=loss), verbose=False).fit(x, y[:, None].float(), val=(x, value))
        assert "mae" in history[-1] and "accuracy" not in history[-1] and "val_accuracy" not in history[-1]

    # the dtype the user gave, not the int64 that bools and int32 are taken as; a column's first way out is
    # the one a model of several outputs takes
    for given in (y.bool() | (y > 4), y.int()):
        message = refused(lambda: Trainer(one(), config(loss="mse"), verbose=False).fit(x, given), "y")
        assert message.startswith(f"y='{str(given.dtype).removeprefix('torch.')} of ({len(x)},)': whole numbers")
    message = refused(lambda: Trainer(mlp(), config(loss="mse"), verbose=False).fit(x, y[:, None].to(torch.uint8)), "y")
    assert message.endswith("class numbers go one per row, give y.view(-1); values to regress are floats, give y.float()")
    assert "accuracy" in Trainer(mlp(), config(loss="mse"), verbose=False).fit(x, y[:, None].to(torch.uint8).view(-1))[-1]


def test_a_column_of_float_class_numbers_under_a_cross_entropy_is_told_to_be_class_numbers(tensors):
    """Keras's y_train.astype("float32"), (N, 1), under a cross-entropy: it was told to regress with
    one output, and monitor='val_accuracy' refused as a regression's."""
    x, y = tensors
    column = y[:, None].float()
    for loss in (None, "sparse_categorical_crossentropy", "categorical_crossentropy"):
        for monitor in ("val_loss", "val_accuracy"):
            assert refused(lambda: Trainer(mlp(), config(loss=loss, monitor=monitor), verbose=False).fit(x, column),
                           "y") == f"y='float32 of ({len(x)}, 1)': a column of class numbers: give y.view(-1).long()"
    history = Trainer(mlp(), config(loss="sparse_categorical_crossentropy"), verbose=False).fit(x, column.view(-1).long())
    assert "accuracy" in history[-1]


def test_several_values_per_sample_under_mse_are_scored_by_mae_and_class_probabilities_by_accuracy(tensors):
    """Float rows that are not class probabilities are values to regress: they reported an accuracy
    (1.0 for (v, -v)), and monitor='val_accuracy' was taken for them."""
    x, y = tensors
    value = y.float() / 9
    pair = torch.stack([value, -value], 1)
    torch.manual_seed(0)
    two = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    trainer = Trainer(two, config(loss="mse"), verbose=False)
    record = trainer.fit(x, pair)[-1]
    assert "accuracy" not in record
    assert trainer.evaluate(x, pair)["mae"] == pytest.approx(float((trainer.predict(x) - pair).abs().mean()), rel=1e-5)
    assert refused(lambda: Trainer(two, config(loss="mse", monitor="val_accuracy"), verbose=False).fit(x, pair),
                   "monitor")
    smoothed = F.one_hot(y, 10).float() * 0.9 + 0.01  # label smoothing keeps rows of probabilities
    for targets in (F.one_hot(y, 10).float(), smoothed):
        trainer = Trainer(mlp(), config(loss="mse"), verbose=False)
        assert "mae" not in trainer.fit(x, targets)[-1]
        assert trainer.evaluate(x, targets)["accuracy"] == pytest.approx(
            float((trainer.predict(x).argmax(1) == y).float().mean()))


class Squeezed(nn.Module):
    """A regression whose forward squeezes its one output to (N,), as Keras's losses take it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.out = nn.Linear(64, 1)

    def forward(self, x):
        return self.out(x.flatten(1)).squeeze(-1)


def test_a_regressions_forward_that_squeezes_its_one_output_is_scored_against_a_column(tensors):
    """A forward's .squeeze(-1), (N,), against targets (N, 1) or (N,), as Keras's losses take it: it
    failed in the loss, blamed on the model's forward."""
    from neuralab.training import REGRESSION

    x, y = tensors
    value = y.float() / 9
    for task, loss in ((REGRESSION, None), (REGRESSION, "mae"), (None, "mse"), (None, "huber")):
        histories = []
        for targets in (value, value[:, None]):
            model = Squeezed()
            trainer = Trainer(model, config(loss=loss), **({} if task is None else {"task": task}), verbose=False)
            histories.append([{k: r[k] for k in ("loss", "mae")} for r in trainer.fit(x, targets)])
            assert trainer.evaluate(x, targets)["mae"] == pytest.approx(float((trainer.predict(x) - value).abs()
                                                                              .mean()), rel=1e-5)
        assert histories[0] == histories[1], (task, loss)


def test_whole_numbers_against_a_forward_that_squeezes_its_one_output_are_told_to_be_floats(tensors):
    """Whole numbers (ages, counts) under mse, mae or huber for a forward's .squeeze(-1), (N,): the model
    was taken for one that gives no outputs to count, and the first step failed in the accuracy with a
    raw IndexError; evaluate failed so too."""
    x, y = tensors
    for loss in ("mse", "mae", "huber"):
        message = refused(lambda: Trainer(Squeezed(), config(loss=loss), verbose=False).fit(x, y), "y")
        assert message.startswith(f"y='int64 of ({len(x)},)': whole numbers") and message.endswith("give y.float()")
        trainer = Trainer(Squeezed(), config(loss=loss), verbose=False)
        assert "mae" in trainer.fit(x, y.float())[-1]
        assert refused(lambda: trainer.evaluate(x, y), "y").endswith("give y.float()")


# --- Classifier -------------------------------------------------------------------------------

def test_class_names_that_a_sequentials_last_layer_does_not_give_are_refused_when_made(digits):
    pre = Preprocess.fit(digits[0])
    with pytest.raises(NeuralabError, match=r"^classes names 2 classes, but the model gives outputs of \(10,\) "
                                            r"per image; give one class name per output$"):
        Classifier(mlp(), ["a", "b"], pre, "m")
    clf = Classifier(mlp(), [str(d) for d in range(10)], pre, "m")
    assert clf.predict(digits[0][:5]).shape == (5,)


class TwoHeads(nn.Sequential):
    """A Sequential whose forward gives its classes' head, not its last child (a projection head)."""

    def __init__(self):
        super().__init__(nn.Flatten(), nn.Linear(64, 10), nn.Linear(10, 128))

    def forward(self, x):
        return self[1](self[0](x))


def test_a_sequential_with_a_forward_of_its_own_is_judged_by_what_it_gives(digits):
    pre = Preprocess.fit(digits[0])
    clf = Classifier(TwoHeads(), [str(k) for k in range(10)], pre, "two-heads")
    assert clf.predict_proba(digits[0][:5]).shape == (5, 10)


def test_class_names_that_a_modules_forward_does_not_give_are_refused_at_predict_in_words(digits):
    pre = Preprocess.fit(digits[0])
    clf = Classifier(build_model("mlp", (1, 8, 8), 10), ["a", "b"], pre, "m")  # its forward alone says
    with pytest.raises(NeuralabError, match=r"^classes names 2 classes, but the model gives outputs of \(10,\) "
                                            r"per image; give one class name per output$"):
        clf.predict(digits[0][:5])


# --- how a dataset shows in a cell ------------------------------------------------------------

def test_a_dataset_shows_a_summary_not_its_pixels(fashion_mnist):
    data = load_image_data("fashion-mnist", fashion_mnist)
    assert repr(data) == ("ImageData('fashion-mnist': uint8 images (1, 28, 28), int64 labels of classes ['T-shirt/top', "
                          "'Trouser', 'Pullover', 'Dress', 'Coat', ... (10 in all)]; train 54,000, val 6,000, test 10,000)")
    assert repr(data.test) == "Split(10,000 uint8 images (1, 28, 28), int64 labels)"


def test_a_folder_of_pictures_shows_its_splits_in_a_few_lines(tmp_path):
    data = load_image_data(str(digits_folder(tmp_path / "digits", n=300)))
    text = repr(data)
    assert "array(" not in text and len(text) < 400, text
    assert text.startswith("FolderData('digits': uint8 images (1, 8, 8), int64 labels of classes ['0', '1'"), text
    assert text.endswith(f"train {len(data.train)}, val {len(data.val)}, test {len(data.test)})"), text
