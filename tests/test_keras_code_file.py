"""`neuralab train --model FILE.py` on a learner's Keras file as tutorials write it: its
module-level fit() trains nothing (neuralab trains the model) and gives the run's defaults,
refusals name the file, a softmax compiled with from_logits=True is warned about, compile()'s
momentum stays with its optimizer, and the console says what compile() gave, or that the model
was not compiled (neuralab's defaults). Real images:
a Fashion-MNIST subset."""

from __future__ import annotations

import json
import os
import re
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import idx_subset

from neuralab.cli import main
from neuralab.data.idx import read_idx
from neuralab.data.sources import file_in
from neuralab.errors import NeuralabError
from neuralab.training.config import TrainConfig, with_compile
from neuralab.training.keras_model import compile_settings
from neuralab.training.source import resolve

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")  # the test extra installs Keras 3 (on PyTorch)

# Keras's MNIST tutorial, one-hot labels and all: the model, then fit() at module level on the
# learner's own arrays, with a callback that leaves a mark if Keras ever trains
FITTED = """
import numpy as np
import keras
from keras.callbacks import EarlyStopping, LambdaCallback
from keras.layers import Conv2D, Dense, Flatten, MaxPooling2D
from keras.utils import to_categorical

model = keras.Sequential(name="fitted")
model.add(Conv2D(8, (3, 3), activation="relu", input_shape=(28, 28, 1)))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(10, activation="softmax"))
model.compile(loss=keras.losses.categorical_crossentropy,
              optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9), metrics=["accuracy"])
x_train = np.load({images!r}).astype("float32") / 255
y_train = to_categorical(np.load({labels!r}), 10)
mark = LambdaCallback(on_train_begin=lambda logs: open({mark!r}, "w").write("Keras trained"))
history = model.fit(x_train, y_train, batch_size=32, epochs=3, validation_split=0.2,
                    callbacks=[EarlyStopping(monitor="val_accuracy", patience=2), mark])
"""

BASE = """
import keras
from keras import layers as L
"""


@pytest.fixture(scope="module")
def fashion(fashion_mnist, tmp_path_factory):
    return idx_subset(fashion_mnist, tmp_path_factory.mktemp("fashion-mnist"), 256, 64)


@pytest.fixture(scope="module")
def fitted(fashion, tmp_path_factory) -> tuple:
    """The tutorial's file, fitting on 64 real training images (N, 28, 28, 1) of its own."""
    folder = tmp_path_factory.mktemp("code")
    images = read_idx(file_in(fashion, "train-images-idx3-ubyte.gz"))[:64, :, :, None]
    labels = read_idx(file_in(fashion, "train-labels-idx1-ubyte.gz"))[:64]
    np.save(folder / "x.npy", images)
    np.save(folder / "y.npy", labels)
    path = folder / "mnist_cnn.py"
    path.write_text(FITTED.format(images=str(folder / "x.npy"), labels=str(folder / "y.npy"),
                                  mark=str(folder / "trained.txt")))
    return path, folder / "trained.txt"


def _file(folder, name: str, code: str):
    path = folder / name
    path.write_text(BASE + textwrap.dedent(code))
    return path


def _train(capsys, model, data, run, *options) -> tuple[int, str, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main([str(a) for a in ("train", "--model", model, "--data", "fashion-mnist", "--data-dir", data,
                                      "--threads", "1", "--out", run, *options)])
    return code, capsys.readouterr().out, [str(w.message) for w in caught]


def test_a_files_fit_trains_nothing_and_gives_the_runs_defaults(fitted, fashion, tmp_path, capsys):
    """fit()'s epochs, batch_size and EarlyStopping are the run's; Keras never trains, and one
    warning line says what was taken and what was not."""
    path, mark = fitted
    code, out, warned = _train(capsys, path, fashion, tmp_path / "run")
    assert code == 0 and not mark.exists()  # Keras's fit never began
    train = json.loads((tmp_path / "run" / "config.json").read_text())["config"]["train"]
    assert (train["epochs"], train["batch_size"], train["patience"], train["monitor"]) == (3, 32, 2, "val_accuracy")
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert 1 <= len(history) <= 3 and "epoch 1/3" in out
    said = [w for w in warned if "model.fit()" in w]
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "model.fit(" in text)
    assert len(said) == 1 and said[0].startswith(f"{path}:{line}: model.fit(), which neuralab does not run"), warned
    assert "`epochs` 3" in said[0] and "`batch_size` 32" in said[0] and "`patience` 2" in said[0]
    assert "validation_split=0.2 as an image classifier's `val_fraction` (its share, drawn with the seed, " \
           "not Keras's last samples)" in said[0] and said[0].endswith("not taken: LambdaCallback")
    # Keras is as it was: fit() trains again once neuralab has read the file
    assert "fit" not in vars(keras.Model) and keras.Model.fit.__module__.startswith("keras.")


def test_an_option_given_wins_over_fits_setting(fitted, fashion, tmp_path, capsys):
    path, _ = fitted
    code, out, _ = _train(capsys, path, fashion, tmp_path / "run", "--epochs", "1", "--batch-size", "64")
    assert code == 0 and "epoch 1/1" in out
    train = json.loads((tmp_path / "run" / "config.json").read_text())["config"]["train"]
    assert (train["epochs"], train["batch_size"], train["patience"]) == (1, 64, 2)


def test_the_console_says_what_compile_gave(fitted, fashion, tmp_path, capsys):
    path, _ = fitted
    code, out, _ = _train(capsys, path, fashion, tmp_path / "run", "--epochs", "1")
    assert code == 0
    assert "\noptimizer sgd, lr 0.05, momentum 0.9, schedule constant, loss cross_entropy (compile()'s where no option sets them); " \
           "val_fraction 0.2 (fit()'s validation_split: its share, drawn with the seed, not Keras's last samples)\n" in out


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "keras" / "lenet5.py"


def settings_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("optimizer "))


def test_the_console_names_neuralabs_defaults_for_a_model_never_compiled(fashion, tmp_path, capsys):
    """docs/keras.md's `neuralab train --model examples/keras/lenet5.py`: the file compiles nothing,
    and the console credited compile() with neuralab's defaults."""
    assert "compile(" not in EXAMPLE.read_text()
    code, out, _ = _train(capsys, EXAMPLE, fashion, tmp_path / "run", "--epochs", "1")
    assert code == 0
    assert settings_line(out) == "optimizer adam, lr 0.003, schedule onecycle, loss cross_entropy (neuralab's defaults: the model " \
                                 "was not compiled)"
    code, out, _ = _train(capsys, EXAMPLE, fashion, tmp_path / "lr", "--epochs", "1", "--lr", "0.01")
    assert code == 0
    assert settings_line(out) == "optimizer adam, lr 0.01, schedule onecycle, loss cross_entropy (neuralab's defaults where no " \
                                 "option sets them: the model was not compiled)"


def test_the_console_names_compile_for_the_example_compiled(fashion, tmp_path, capsys):
    """The same listing with a compile() line: its settings, and an option's over them."""
    lines = EXAMPLE.read_text().replace("if __name__", 'model.compile(optimizer=keras.optimizers.SGD(learning_rate='
                                        '0.02), loss="sparse_categorical_crossentropy")\n\nif __name__').splitlines()
    layer = 0
    for i, line in enumerate(lines):  # each layer named: Keras's own names depend on what ran before
        if line.startswith("model.add("):
            layer += 1
            lines[i] = re.sub(r"\(\)\)$|\)\)$", lambda m: f'{"(" if m[0] == "())" else ", "}name="l{layer}"))', line)
    compiled = tmp_path / "lenet5.py"
    compiled.write_text("import keras\n" + "\n".join(lines) + "\n")
    code, out, _ = _train(capsys, compiled, fashion, tmp_path / "run", "--epochs", "1")
    assert code == 0
    assert settings_line(out) == "optimizer sgd, lr 0.02, momentum 0, schedule constant, loss cross_entropy (compile()'s where no " \
                                 "option sets them)"
    code, out, _ = _train(capsys, compiled, fashion, tmp_path / "lr", "--epochs", "1", "--lr", "0.01")
    assert code == 0
    assert settings_line(out) == "optimizer sgd, lr 0.01, momentum 0, schedule constant, loss cross_entropy (compile()'s where no " \
                                 "option sets them)"


def test_a_resume_names_the_runs_own_settings(fashion, tmp_path, capsys, cut_in_epoch_2):
    """A resume reads no model file: its settings are those config.json keeps, whatever gave them."""
    restore = cut_in_epoch_2()
    code, _, _ = _train(capsys, EXAMPLE, fashion, tmp_path / "run", "--epochs", "2")
    assert code == 130
    restore()
    assert main(["train", "--resume", str(tmp_path / "run"), "--threads", "1"]) == 0
    assert settings_line(capsys.readouterr().out) == "optimizer adam, lr 0.003, schedule onecycle, loss cross_entropy (the run's, as " \
                                                     "its config.json keeps them)"


def test_code_reading_fits_history_is_told_that_fit_did_not_run(tmp_path):
    path = _file(tmp_path, "curves.py", """
        import numpy as np
        model = keras.Sequential([keras.Input((28, 28, 1)), L.Flatten(), L.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(np.zeros((8, 28, 28, 1)), np.zeros(8), epochs=2)
        print("final accuracy", history.history["accuracy"][-1])
        """)
    with pytest.raises(NeuralabError) as e:
        resolve(path)
    assert str(e.value) == (f"{path}:9: the History from model.fit() at line 8 holds no epochs: neuralab reads the "
                            "file for its model without running fit(), and trains the model on data itself; put the "
                            'lines using the History under if __name__ == "__main__":, which neuralab does not run')


def test_a_softmax_compiled_from_logits_is_warned_about(tmp_path):
    path = _file(tmp_path, "twice.py", """
        model = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(8, 3, activation="relu"), L.MaxPooling2D(),
                                  L.Flatten(), L.Dense(10, activation="softmax")], name="twice")
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        """)
    with pytest.warns(UserWarning, match=rf"^{re.escape(str(path))}: ends in a softmax and is "
                                         r"compiled with a cross-entropy on logits \(from_logits=True\)"):
        resolve(path).classifier((1, 28, 28), 10)


@pytest.mark.parametrize("layers, compiled, says", [
    ('keras.Input((784,)), L.Dense(64, activation="relu"), L.Dense(10, activation="softmax")',
     'optimizer="rmsprop", loss="categorical_crossentropy"', "the model takes vectors of 784 values"),
    ('keras.Input((60, 1)), L.LSTM(16), L.Dense(1)', 'optimizer="adam", loss="mse"', "the model takes (None, 60, 1)"),
    ('keras.Input((32, 32, 3)), L.Conv2D(8, 3), L.Flatten(), L.Dense(10, activation="softmax")',
     'optimizer="adam", loss="sparse_categorical_crossentropy"', "the model takes images of 32x32x3"),
    ('keras.Input((28, 28, 1)), L.Flatten(), L.Dense(1, activation="sigmoid")',
     'optimizer="adam", loss="binary_crossentropy"', "the model outputs (None, 1) (2 classes, one sigmoid unit)"),
    ('keras.Input((28, 28, 1)), L.Flatten(), L.Dense(10, activation="softmax")',
     'optimizer="adam", loss="binary_crossentropy"', "compile(loss=binary_crossentropy) on (None, 10) outputs"),
    ('keras.Input((28, 28, 1)), L.Flatten(), L.Dense(10, activation="softmax")',
     'optimizer="nadam", loss="sparse_categorical_crossentropy"', "compile(optimizer=Nadam(...))"),
])
def test_refusals_name_the_file(tmp_path, layers, compiled, says):
    path = _file(tmp_path, "net.py", f"model = keras.Sequential([{layers}], name='net')\nmodel.compile({compiled})\n")
    with pytest.raises(NeuralabError) as e:
        resolve(path).classifier((1, 28, 28), 10)
    # what compile() was given is refused at its line, as its warnings are
    at = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "model.compile(" in text)
    where = f"{path}:{at}" if says.startswith("compile(optimizer") else str(path)
    assert str(e.value).startswith(f"{where}: {says}"), str(e.value)


def test_compiles_rate_momentum_and_schedule_stay_with_its_optimizer():
    """SGD(0.05, momentum=0.9) trained with another optimizer: the momentum was SGD's (adamw was
    refused for a momentum never given), and so were its rate and its constant schedule: 0.05 is
    17 times neuralab's adam rate. Another optimizer starts from neuralab's own, and says so."""
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(10, name="scores")])
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy")
    settings = compile_settings(model.get_compile_config())
    own = with_compile(TrainConfig(), settings)
    assert (own.optimizer, own.lr, own.momentum, own.schedule) == ("sgd", 0.05, 0.9, "constant")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        other = with_compile(TrainConfig(optimizer="adamw"), settings)
    other.check()
    d = TrainConfig()
    assert (other.optimizer, other.momentum, other.lr, other.schedule) == ("adamw", 0.0, d.lr, d.schedule)
    (said,) = [str(w.message) for w in caught]
    assert said == (f"`optimizer` adamw over compile()'s sgd: the run trains at neuralab's `lr` {d.lr:g} under its "
                    f"`schedule` {d.schedule}, not at compile()'s 0.05, which was its sgd's; give `lr` to choose the rate")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chosen = with_compile(TrainConfig(optimizer="adamw", lr=0.01), settings)
    assert (chosen.lr, chosen.schedule) == (0.01, d.schedule) and not caught  # the rate given is the run's
    assert with_compile(TrainConfig(optimizer="sgd"), settings).lr == 0.05  # the same optimizer keeps its rate


def test_a_momentum_typed_goes_to_compiles_sgd(fitted, fashion, tmp_path, capsys):
    """`--momentum 0.5` for a model compiled with SGD was refused as "applies to --optimizer sgd or
    rmsprop, not adam": checked against the default optimizer before compile() gave its own."""
    path, _ = fitted
    code, out, err = _train(capsys, path, fashion, tmp_path / "run", "--epochs", "1", "--momentum", "0.5")
    assert code == 0, err
    train = json.loads((tmp_path / "run" / "config.json").read_text())["config"]["train"]
    assert (train["optimizer"], train["momentum"]) == ("sgd", 0.5)


def test_a_files_save_after_its_fit_writes_nothing_over_the_trained_model(tmp_path):
    """The tutorial's ending, fit() then model.save(): with fit() not training, the save wrote the
    untrained model over the one the file's own run had trained."""
    trained = tmp_path / "m.keras"
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(trained)
    before = trained.read_bytes()
    path = _file(tmp_path, "saves.py", f"""
        import numpy as np
        model = keras.Sequential([keras.Input((28, 28, 1)), L.Flatten(), L.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(np.zeros((8, 28, 28, 1)), np.zeros(8), epochs=2)
        model.save({str(trained)!r})
        model.save_weights({str(tmp_path / "w.weights.h5")!r})
        """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolve(path)
    assert trained.read_bytes() == before and not (tmp_path / "w.weights.h5").exists()
    said = [str(w.message) for w in caught if "model.save" in str(w.message)]
    assert said == [f"{path}:9: model.save(), {path}:10: model.save_weights(), which neuralab does not "
                    "run while it reads the file for its model: they would write the untrained model over the file's "
                    "trained one; `python saves.py` still saves it"], [str(w.message) for w in caught]
    assert "save" in vars(keras.Model) and keras.Model.save.__name__ == "save"  # Keras's own again
    model.save(tmp_path / "after.keras")
    assert (tmp_path / "after.keras").stat().st_size > 0


def test_what_else_a_learners_script_does_as_it_runs(tmp_path):
    """keras.saving.save_model wrote the untrained model over the learner's; a file parsing its
    options got neuralab's argv and exited with what read as neuralab's own usage error; a
    sys.exit() ended neuralab without a word; a loop of fit(epochs=1) gave the run 1 epoch; and
    arguments left at Keras's defaults were listed as "not taken"."""
    trained = tmp_path / "final.keras"
    trained.write_bytes(b"the learner's trained model")
    path = _file(tmp_path, "script.py", f"""
        import argparse
        import numpy as np
        parser = argparse.ArgumentParser()
        parser.add_argument("--epochs", type=int, default=4)
        args = parser.parse_args()
        model = keras.Sequential([keras.Input((28, 28, 1)), L.Flatten(), L.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        for epoch in range(args.epochs):
            model.fit(np.zeros((8, 28, 28, 1)), np.zeros(8), epochs=1, batch_size=16, callbacks=None, shuffle=True)
        keras.saving.save_model(model, {str(trained)!r})
        """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = resolve(path)
    said = " ".join(str(w.message) for w in caught)
    assert trained.read_bytes() == b"the learner's trained model" and "keras.saving.save_model()" in said, said
    assert source.compile["epochs"] == 4 and source.compile["batch_size"] == 16
    assert "model.fit() (4 calls)" in said and "not taken" not in said, said
    assert keras.saving.save_model.__name__ == "save_model"  # Keras's own again

    ends = _file(tmp_path, "ends.py", """
        import sys
        model = keras.Sequential([keras.Input((28, 28, 1)), L.Flatten(), L.Dense(10)])
        sys.exit(1)
        """)
    with pytest.raises(NeuralabError, match=rf"^{re.escape(str(ends))}:7: the file exits \(SystemExit 1\)"):
        resolve(ends)
