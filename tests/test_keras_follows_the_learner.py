"""The Keras bridge trains what the learner wrote as Keras would train it, and reads what Keras
saves (docs/keras.md): compile()'s learning rate at Keras's constant rate and fit()'s batch at
Keras's default, another optimizer at neuralab's own rate, 16-bit weights read as float32 and
quantized layers refused by name, a model for other pictures told how the data could give them
(a folder's `color`, `image_size`), and refusals and warnings that name the file, the line or
the run. Real data: scikit-learn's handwritten digits as a folder of PNGs, the Seattle weather;
the models are Keras 3's (on PyTorch), built and saved here."""

from __future__ import annotations

import json
import os
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import digits_folder

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.keras import check, read
from neuralab.keras import spec as specs
from neuralab.training.config import TrainConfig, with_compile
from neuralab.training.keras_model import compile_settings
from neuralab.training.source import resolve

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")
from keras import layers as L
from test_keras_hostile import cli_refused, edited, saved

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # NumPy 2's copy= notes from Keras

# A tutorial's script: compile() by name, fit() with its epochs only, on arrays of its own
TUTORIAL = """\
import numpy as np
import keras
from keras import layers

model = keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(name="flat"),
                          layers.Dense(10, activation="softmax", name="scores")], name="tiny")
model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
x, y = np.zeros((64, 8, 8, 1), "float32"), np.arange(64) % 10
model.fit(x, y, epochs=2)
"""


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("follows") / "digits", 300)


def _write(folder: Path, name: str, code: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(code))
    return path


def _train(*argv) -> list[str]:
    """`neuralab train ...` on a model file; the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([str(a) for a in ("train", "--threads", "1", "--quiet", *argv)]) == 0
    return [str(w.message) for w in caught]


def _record(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())["config"]


def _lrs(run: Path) -> list[float]:
    return [json.loads(line)["lr"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tutorial_run(digits, tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """The tutorial's script trained by `neuralab train --model`, and the warnings it gave."""
    folder = tmp_path_factory.mktemp("tutorial")
    script = _write(folder, "tutorial.py", TUTORIAL)
    said = _train("--model", script, "--data", digits, "--out", folder / "run")
    return script, folder / "run", said


# --- compile()'s rate, fit()'s batch: as Keras trains them --------------------------------------

def test_compiles_rate_trains_constant_and_fits_batch_is_kerass(tutorial_run):
    """compile(optimizer="sgd") steps at 0.01 throughout in Keras, and fit(x, y, epochs=2) in batches
    of 32: neuralab's onecycle warmed the rate up and annealed it to 1e-5, in batches of 128."""
    script, run, said = tutorial_run
    train = _record(run)["train"]
    assert (train["optimizer"], train["lr"], train["schedule"]) == ("sgd", 0.01, "constant")
    assert (train["epochs"], train["batch_size"]) == (2, 32)
    assert _lrs(run) == [0.01, 0.01]  # each epoch ends at compile()'s rate, as Keras's fit does
    (fit,) = [w for w in said if "model.fit()" in w]
    assert fit == (f"{script}:9: model.fit(), which neuralab does not run: it trains the model on `data` itself, "
                   "with fit()'s `epochs` 2, `batch_size` 32 (Keras's default) where no option sets them; the run "
                   "holds out `val_fraction` of `data` for validation, where this fit() holds out none (give "
                   "`val_fraction` 0 for none)")


def test_a_schedule_given_or_compiled_is_neuralabs():
    """`schedule` given wins over compile()'s constant rate; a Keras schedule object's initial rate
    trains under neuralab's own schedule (a warning says so), as before."""
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(name="flat"), L.Dense(10, name="scores")])
    model.compile(optimizer=keras.optimizers.Adam(0.002), loss="mse")
    settings = compile_settings(model.get_compile_config())
    assert with_compile(TrainConfig(), settings).schedule == "constant"
    assert with_compile(TrainConfig(schedule="cosine"), settings).schedule == "cosine"
    decay = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=100, decay_rate=0.9)
    model.compile(optimizer=keras.optimizers.SGD(decay), loss="mse")
    with pytest.warns(UserWarning, match="neuralab does not run Keras's learning-rate schedules"):
        settings = compile_settings(model.get_compile_config())
    assert "schedule" not in settings and with_compile(TrainConfig(), settings).schedule == TrainConfig().schedule


def test_another_optimizer_trains_at_neuralabs_rate(tutorial_run, digits, tmp_path):
    script, _, _ = tutorial_run
    said = _train("--model", script, "--data", digits, "--optimizer", "adam", "--epochs", "1", "--out", tmp_path / "run")
    train, d = _record(tmp_path / "run")["train"], TrainConfig()
    assert (train["optimizer"], train["lr"], train["schedule"]) == ("adam", d.lr, d.schedule)
    assert f"`optimizer` adam over compile()'s sgd: the run trains at neuralab's `lr` {d.lr:g} under its `schedule` " \
           f"{d.schedule}, not at compile()'s 0.01, which was its sgd's; give `lr` to choose the rate" in said


def test_a_fit_on_a_dataset_brings_its_own_batches(tmp_path):
    """Keras batches a generator's or dataset's samples as they come: no batch size to take."""
    path = _write(tmp_path, "gen.py", """\
        import numpy as np
        import keras

        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(name="flat"),
                                  keras.layers.Dense(10, activation="softmax", name="scores")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")

        def batches():
            yield np.zeros((16, 8, 8, 1), "float32"), np.zeros(16)

        model.fit(batches(), epochs=3)
        """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = resolve(str(path))
    assert source.compile["epochs"] == 3 and "batch_size" not in source.compile
    (fit,) = [str(w.message) for w in caught if "model.fit()" in str(w.message)]
    assert fit.endswith("not taken: the batch size of its dataset (the run trains at `batch_size`)"), fit


def test_a_keras_forecaster_trains_compiles_rate_constant(tmp_path):
    """run_forecast takes compile()'s settings through the same with_compile."""
    path = _write(tmp_path, "lstm.py", """\
        import keras

        model = keras.Sequential([keras.Input((6, 1)), keras.layers.LSTM(4, name="lstm"),
                                  keras.layers.Dense(1, name="next")], name="tiny_lstm")
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
        """)
    argv = ("forecast", "--model", path, "--data", "seattle-weather", "--target", "temp_max", "--lookback", "6",
            "--horizon", "1", "--baselines", "persistence", "--backtest-folds", "1", "--epochs", "2", "--threads", "1",
            "--quiet", "--out", tmp_path / "run")
    assert main([str(a) for a in argv]) == 0
    train = _record(tmp_path / "run")["train"]
    assert (train["lr"], train["schedule"]) == (0.01, "constant")


# --- what Keras saves: 16-bit weights, quantized layers --------------------------------------------

@pytest.mark.parametrize("policy", ["float16", "bfloat16"])
@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_16_bit_weights_are_read_as_float32(tmp_path, policy, ext):
    """Dense(dtype="float16") keeps float16 weights, half the bytes the float32 the file was checked
    for; bfloat16 ones are opaque 2-byte records to HDF5. Both read as Keras's own values."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(name="flat"),
                              L.Dense(10, activation="softmax", dtype=policy, name="scores")])
    model.save(tmp_path / f"m.{ext}")
    got = read(tmp_path / f"m.{ext}")
    kernel, bias = (np.asarray(w, dtype=np.float32) for w in model.get_layer("scores").get_weights())
    assert got.dtypes == {"scores": policy}
    assert got.weights["scores"]["kernel"].dtype == np.float32
    assert np.array_equal(got.weights["scores"]["kernel"], kernel) and np.array_equal(got.weights["scores"]["bias"], bias)
    with torch.no_grad():
        probs = resolve(str(tmp_path / f"m.{ext}")).classifier((1, 8, 8), 10)(torch.ones(1, 1, 8, 8)).softmax(1)
    expected = np.asarray(model.predict(np.ones((1, 8, 8, 1), "float32"), verbose=0), dtype=np.float32)
    assert np.abs(probs.numpy() - expected).max() < 1e-2  # Keras computes in 16 bits, neuralab in float32


def test_a_mixed_float16_import_names_the_policy_not_a_fault(tmp_path, digits):
    """Keras computes a mixed_float16 layer in float16: its outputs differ from float32's by 1e-4,
    which the conversion check explains by the layer's policy, and keeps checking."""
    keras.utils.set_random_seed(0)
    path = saved(tmp_path / "mixed.keras", (28, 28, 1), L.Flatten(name="flat"),
                 L.Dense(10, activation="softmax", dtype="mixed_float16", name="scores"))
    from neuralab.training.keras_import import import_keras

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_ = import_keras(path, out=tmp_path / "run")["check"]
    assert check_["checked"] and check_["max_abs_difference"] > check_["tolerance"]
    assert check_["explained_by"] == ["layer 'scores' (dtype policy 'mixed_float16')"]
    (said,) = [str(w.message) for w in caught if "Keras and neuralab differ" in str(w.message)]
    assert said.endswith("expected from its layer 'scores' (dtype policy 'mixed_float16'): Keras computes it in "
                         "16-bit floats, neuralab in float32, as it trains and predicts"), said


def test_a_quantized_layer_is_refused_naming_it(tmp_path, digits, capsys):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(name="flat"), L.Dense(16, activation="relu", name="hidden"),
                              L.Dense(10, activation="softmax", name="scores")])
    model.quantize("int8")
    path = tmp_path / "quant.keras"
    model.save(path)
    refusal = (f"{path}: layer 'hidden' (Dense): int8-quantized (model.quantize('int8')); neuralab converts float "
               "weights: save the model before quantizing it")
    with pytest.raises(NeuralabError) as e:
        read(path)
    assert str(e.value) == refusal
    assert cli_refused(capsys, "import", path, "--out", tmp_path / "run") == f"neuralab: error: {refusal}\n"
    assert cli_refused(capsys, "train", "--model", path, "--data", digits, "--out", tmp_path / "run") == \
        f"neuralab: error: {refusal}\n"
    assert not (tmp_path / "run").exists()


# --- a model for other pictures: what the data could do -------------------------------------------

def test_a_keras_model_for_colour_pictures_names_color(tmp_path, digits, capsys):
    path = _write(tmp_path, "rgb.py", """\
        import keras
        from keras import layers

        model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3, name="conv"), layers.Flatten(name="flat"),
                                  layers.Dense(10, activation="softmax", name="scores")])
        """)
    with pytest.raises(NeuralabError) as e:
        resolve(str(path)).classifier((1, 8, 8), 10)
    assert e.value.args[0] == (f"{path}: the model takes images of 8x8x3 (height x width x channels), the data has 8x8x1; "
                            "change the model's input shape to 8x8x1, or give it pictures of 8x8x3: a folder of "
                            "pictures read with `color` rgb")
    assert cli_refused(capsys, "train", "--model", path, "--data", digits, "--out", tmp_path / "run").endswith(
        "a folder of pictures read with --color rgb\n")
    _train("--model", path, "--data", digits, "--epochs", "1", "--color", "rgb", "--out", tmp_path / "run")  # the advice


def test_a_keras_model_for_larger_pictures_names_image_size(tmp_path, digits, capsys):
    path = _write(tmp_path, "big.py", """\
        import keras
        from keras import layers

        model = keras.Sequential([keras.Input((16, 16, 1)), layers.Flatten(name="flat"),
                                  layers.Dense(10, activation="softmax", name="scores")])
        """)
    assert cli_refused(capsys, "train", "--model", path, "--data", digits, "--out", tmp_path / "run").endswith(
        "change the model's input shape to 8x8x1, or give it pictures of 16x16x1: a folder of pictures read with "
        "--image-size 16x16\n")
    _train("--model", path, "--data", digits, "--epochs", "1", "--image-size", "16x16", "--out", tmp_path / "run")


def test_a_pytorch_module_for_colour_pictures_is_told_in_neuralabs_words(tmp_path, digits, capsys):
    """PyTorch says "expected input[2, 1, 8, 8] to have 3 channels, but got 1 channels instead"."""
    path = _write(tmp_path, "net.py", """\
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
                self.classifier = nn.Linear(4 * 6 * 6, 10)

            def forward(self, x):
                return self.classifier(torch.flatten(self.features(x), 1))
        """)
    with pytest.raises(NeuralabError) as e:
        resolve(str(path)).classifier((1, 8, 8), 10, sample=torch.zeros(2, 1, 8, 8))
    assert e.value.args[0] == ("torch:net.py:Net: the model wants 3 channels (its first convolution, features.0, is "
                            "nn.Conv2d(3, ...)), the data has 1: images (N, 1, 8, 8); make that layer "
                            "nn.Conv2d(1, ...), or give it 3-channel pictures: a folder of pictures read with `color` rgb")
    assert "--color rgb" in cli_refused(capsys, "train", "--model", path, "--data", digits, "--out", tmp_path / "run")
    _train("--model", path, "--data", digits, "--epochs", "1", "--color", "rgb", "--out", tmp_path / "run")


# --- refusals and warnings that name the file, the line, the run ----------------------------------

def test_a_weight_too_large_says_the_limit_and_what_to_do(tmp_path):
    def huge(config):
        next(r for r in config["config"]["layers"] if r["config"]["name"] == "scores")["config"]["units"] = 10**9
    path = edited(saved(tmp_path / "huge.keras", (8, 8, 1), L.Flatten(name="flat"),
                        L.Dense(10, activation="softmax", name="scores")), huge)
    with pytest.raises(NeuralabError) as e:
        read(path)
    assert str(e.value) == (f"{path}: layer 'scores' (Dense): a weight of shape [64, 1000000000], 64,000,000,000 "
                            f"values, is larger than the {specs.MAX_SIZE:,} neuralab allows in one weight; make the "
                            "layer (its units, filters or kernel) smaller, then save the model again")


def test_an_edited_runs_spec_is_not_told_to_save_the_model_again(tmp_path):
    """A run's model.json is neuralab's to write: a layer past its bounds there was edited."""
    spec = read(saved(tmp_path / "m.keras", (8, 8, 1), L.Flatten(name="flat"),
                      L.Dense(10, activation="softmax", name="scores"))).spec
    next(e for e in spec["layers"] if e["name"] == "scores")["args"]["units"] = 10**9
    with pytest.raises(NeuralabError) as e:
        check(spec, "run/model.json", "source.spec")
    assert str(e.value).startswith("run/model.json: layer 'scores' (Dense): a weight of shape [64, 1000000000]")
    assert str(e.value).endswith("neuralab allows in one weight; neuralab writes no spec with such a layer, so this "
                                 "one was edited: convert or train the model again")


def test_compile_objects_are_warned_about_at_their_file_and_line(tmp_path):
    path = _write(tmp_path, "smooth.py", """\
        import keras

        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(name="flat"),
                                  keras.layers.Dense(10, activation="softmax", name="scores")])
        model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1))
        """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = resolve(str(path))
    said = [str(w.message) for w in caught if "not kept" in str(w.message)]
    assert [w.split(": not kept")[0] for w in said] == [
        f"{path}:5: compile(optimizer=Adam(...)): beta_1=0.5",
        f"{path}:5: compile(loss=CategoricalCrossentropy(...)): label_smoothing=0.1"]
    keras_model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(name="flat"), L.Dense(10, name="scores")])
    keras_model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5), loss="mse")
    keras_model.save(tmp_path / "smooth.keras")
    with pytest.warns(UserWarning, match=f"^{tmp_path / 'smooth.keras'}: compile\\(optimizer=Adam"):
        resolve(str(tmp_path / "smooth.keras"))
    assert model.compile["optimizer"] == "adam"


def test_inspect_names_the_run_whose_model_has_no_convolution(tutorial_run, digits, capsys):
    _, run, _ = tutorial_run
    picture = next((digits / "3").iterdir())
    assert cli_refused(capsys, "inspect", run, picture, "--out", run.parent / "maps") == (
        f"neuralab: error: {run}: the run's model, keras:tiny, has no convolution layer (nn.Conv2d), so no filters "
        "or feature maps to show\n")


def test_an_optimizer_named_by_its_string_alone_trains_at_keras_rate_for_it():
    from neuralab.training.keras_model import compile_settings

    # a compile_config that keeps compile()'s string (files of other Keras versions): no rate in it
    assert compile_settings({"optimizer": "adam"}) == {"optimizer": "adam", "schedule": "constant", "lr": 0.001}
    assert compile_settings({"optimizer": "sgd"})["lr"] == 0.01
    assert compile_settings({"optimizer": "adamw"})["weight_decay"] == 0.004  # AdamW's own decay, not Adam
