"""`neuralab import MODEL.keras --scale`: a model that starts with a Rescaling layer takes raw
pixels, so a `scale` other than 1 would scale them twice (10% on Fashion-MNIST, with a
conversion check that agreed, since both sides got the same inputs); it is refused, naming
the Rescaling layer, before anything is read or written."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")

from helpers import digits_folder  # noqa: E402

from neuralab.cli import main  # noqa: E402
from neuralab.errors import ParameterError  # noqa: E402
from neuralab.training.keras_import import import_keras  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
L = keras.layers


def _fitted(path, first, scale=1.0):
    """A digits classifier whose pixels go through ``first`` (a Rescaling, alone or in a block),
    fitted by Keras on the pixels 0-255 x ``scale``, and saved."""
    from helpers import _sklearn_digits

    digits = _sklearn_digits()
    x = (digits.images[:300, :, :, None] * 16).clip(0, 255).astype("float32") * scale
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), first, L.Flatten(), L.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, digits.target[:300], epochs=1, verbose=0)
    model.save(path)
    return path


@pytest.mark.parametrize("first,layer", [
    (L.Rescaling(1 / 255, name="to_unit"), "to_unit"),
    (keras.Sequential([L.RandomFlip("horizontal"), L.Rescaling(1 / 255, name="inner")], name="block"), "inner"),
])
def test_a_scale_other_than_1_is_refused_under_a_rescaling_layer(tmp_path, capsys, first, layer):
    path = _fitted(tmp_path / "digits.keras", first)
    digits = digits_folder(tmp_path / "digits", 100)
    for scale, shown in (("1/255", "1/255"), ("0.5", "0.5")):
        code = main(["import", str(path), "--data", str(digits), "--scale", scale, "--out", str(tmp_path / "run")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith(f"neuralab: error: --scale {shown}: the model starts with the Rescaling layer "
                              f"'{layer}'") and "leave --scale out or give 1" in err
        assert not (tmp_path / "run").exists()
    with pytest.raises(ParameterError, match=f"^scale='1/255': .*'{layer}'.*leave scale out or give 1"):
        import_keras(path, tmp_path / "run", scale="1/255")
    # the pixels as the layer takes them: left out, or 1, the run is the model as Keras fitted it
    for given in ([], ["--scale", "1"]):
        out = tmp_path / f"run{len(given)}"
        assert main(["import", str(path), "--data", str(digits), "--out", str(out), *given]) == 0
        assert json.loads((out / "config.json").read_text())["imported"]["scale"] == 1
        assert np.isfinite(json.loads((out / "results.json").read_text())["test_accuracy"])


def test_a_scale_is_kept_for_a_model_without_rescaling(tmp_path):
    path = _fitted(tmp_path / "digits.keras", L.Conv2D(4, 3, name="conv"), 1 / 255)
    r = import_keras(path, tmp_path / "run", scale="1/255")
    assert r["scale"] == pytest.approx(1 / 255)
