"""The from-scratch NumPy CNN learns the 8x8 digits: >= 95% test accuracy in under a minute."""

from __future__ import annotations

import numpy as np
import pytest

from neuralab.mechanics.scratch_cnn import ScratchCNN, load_digits_split, train_digits


@pytest.mark.slow
def test_scratch_cnn_reaches_95_percent_on_digits_in_under_a_minute():
    result = train_digits(epochs=6, seed=0)
    assert result["test_accuracy"] >= 0.95
    assert result["seconds"] < 60
    assert result["history"][-1] < result["history"][0]  # the loss went down
    assert result["n_test"] == 449 and result["n_train"] == 1348


def test_summary_and_shapes():
    model = ScratchCNN()
    lines = model.summary()
    assert lines[0].startswith("Conv2D") and "(16, 8, 8)" in lines[0]
    assert lines[-1] == "total parameters: 6,090"  # 160 + 4,640 + 1,290
    x_train, y_train, x_test, _ = load_digits_split()
    assert x_train.shape[1:] == (1, 8, 8) and x_train.max() <= 1.0
    assert model.predict(x_test[:5]).shape == (5,)


def test_one_training_step_lowers_the_loss_on_its_batch():
    x_train, y_train, _, _ = load_digits_split()
    model = ScratchCNN(seed=1)
    before = model.score(x_train[:64], y_train[:64])
    model.fit(x_train[:64], y_train[:64], epochs=5, batch_size=64)
    assert model.score(x_train[:64], y_train[:64]) > before
    assert np.isfinite(model.layers[0].params["w"]).all()


def test_mechanics_never_imports_torch():
    import subprocess
    import sys

    code = (
        "import sys, neuralab.mechanics, neuralab.mechanics.demo, neuralab.mechanics.scratch_cnn;"
        "assert 'torch' not in sys.modules, 'torch was imported';"
        "assert 'matplotlib' not in sys.modules, 'matplotlib was imported: the lesson draws nothing'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
