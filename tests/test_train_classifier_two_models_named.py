"""train_classifier given a model both as ``model`` and in its config: the refusal names each as
the user wrote it, a function by its name."""

from __future__ import annotations

import pytest
from torch import nn

from neuralab import ClassifierConfig, TrainConfig, train_classifier
from neuralab.errors import ParameterError


def make_net():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def test_a_builder_function_given_beside_a_configs_model_is_named(tmp_path):
    """It said model='function', the type's name as if it were the model."""
    config = ClassifierConfig(model="cnn", data=str(tmp_path), train=TrainConfig(epochs=1))
    with pytest.raises(ParameterError) as e:
        train_classifier(config, out=tmp_path / "run", model=make_net)
    assert str(e.value) == ("model='make_net': the config names its own model too, cnn: give the model once, as model "
                            "or as ClassifierConfig's")
    assert not (tmp_path / "run").exists()
