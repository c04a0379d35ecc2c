"""`neuralab train --model FILE.py` on Keras scripts that reach for TensorFlow: a file importing
tensorflow.keras is told to import from keras; a file that imports keras already, and loads its
pictures with keras.utils.image_dataset_from_directory (which needs TensorFlow on any backend,
as keras-io's image classification tutorial does), is told what works instead."""

from __future__ import annotations

import importlib.util
import os

import pytest

os.environ["KERAS_BACKEND"] = "torch"
pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")
if importlib.util.find_spec("tensorflow") is not None:
    pytest.skip("TensorFlow is installed: Keras's data loading works", allow_module_level=True)

from helpers import digits_folder  # noqa: E402

from neuralab.cli import main  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

KERAS_IO_SCRIPT = '''import keras
from keras import layers

train_ds = keras.utils.image_dataset_from_directory(
    "{folder}", validation_split=0.2, subset="training", seed=1337,
    image_size=(8, 8), color_mode="grayscale", batch_size=32)
model = keras.Sequential([
    keras.Input(shape=(8, 8, 1)),
    layers.Rescaling(1.0 / 255),
    layers.Conv2D(16, 3, padding="same", activation="relu"),
    layers.MaxPooling2D(),
    layers.Flatten(),
    layers.Dense(10),
])
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
model.fit(train_ds, epochs=3)
'''

# The same script as the advice has it: the data loading and fit() under if __name__ == "__main__":
ADVISED_SCRIPT = '''import keras
from keras import layers

model = keras.Sequential([
    keras.Input(shape=(8, 8, 1)),
    layers.Rescaling(1.0 / 255),
    layers.Conv2D(16, 3, padding="same", activation="relu"),
    layers.MaxPooling2D(),
    layers.Flatten(),
    layers.Dense(10),
])
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])

if __name__ == "__main__":
    train_ds = keras.utils.image_dataset_from_directory(
        "{folder}", validation_split=0.2, subset="training", seed=1337,
        image_size=(8, 8), color_mode="grayscale", batch_size=32)
    model.fit(train_ds, epochs=3)
'''


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits"), 300)


def _error(script, digits, tmp_path, capsys) -> str:
    (tmp_path / "script.py").write_text(script)
    code = main(["train", "--model", str(tmp_path / "script.py"), "--data", str(digits), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    return err


def test_keras_data_loading_that_needs_tensorflow_is_told_to_move_under_main(digits, tmp_path, capsys):
    err = _error(KERAS_IO_SCRIPT.format(folder=digits), digits, tmp_path, capsys)
    assert "script.py:4: ImportError" in err
    assert ("Keras's image_dataset_from_directory() needs TensorFlow, which neuralab (Keras 3 on PyTorch) does not "
            "use: it trains the model on --data itself, so give it the folder as --data and put the data loading "
            "and fit() under if __name__ == \"__main__\":") in err
    assert "instead of tensorflow.keras" not in err  # the file imports keras already


def test_the_advice_works_the_script_then_trains(digits, tmp_path, capsys):
    (tmp_path / "script.py").write_text(ADVISED_SCRIPT.format(folder=digits))
    code = main(["train", "--model", str(tmp_path / "script.py"), "--data", str(digits), "--epochs", "1",
                 "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "results.json").is_file()


def test_a_file_importing_tensorflow_keras_is_told_to_import_from_keras(digits, tmp_path, capsys):
    err = _error("from tensorflow.keras import layers\nfrom tensorflow.keras.models import Sequential\n",
                 digits, tmp_path, capsys)
    assert "script.py:1: ModuleNotFoundError: No module named 'tensorflow'" in err
    assert "import from keras (from keras.models import Sequential, from keras import layers) instead of " \
           "tensorflow.keras" in err
