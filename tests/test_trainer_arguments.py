"""The Trainer refuses a callback given alone, and a model that is no torch module, by name."""

from __future__ import annotations

import pytest
import torch

from helpers import idx_subset
from neuralab.errors import ParameterError
from neuralab.training import ClassifierConfig, EarlyStopping, TrainConfig, train_classifier
from neuralab.training.trainer import Trainer


def test_one_callback_not_in_a_list_is_refused_naming_callbacks():
    model = torch.nn.Linear(4, 2)
    with pytest.raises(ParameterError) as e:
        Trainer(model, TrainConfig(device="cpu"), callbacks=EarlyStopping(patience=1), verbose=False)
    assert e.value.parameter == "callbacks" and "give a list of callbacks" in str(e.value)
    trainer = Trainer(model, TrainConfig(device="cpu"), callbacks=[EarlyStopping(patience=1)], verbose=False)
    assert len(trainer.callbacks) == 1


def test_a_model_that_is_no_module_is_refused_naming_model():
    with pytest.raises(ParameterError) as e:
        Trainer(lambda x: x, TrainConfig(device="cpu"), verbose=False)
    assert e.value.parameter == "model" and "give a torch.nn.Module" in str(e.value)


def test_train_classifier_passes_one_callback_alone_on_to_the_same_refusal(fashion_mnist, tmp_path):
    data = idx_subset(fashion_mnist, tmp_path / "data", 200, 50)
    config = ClassifierConfig(model="lenet5", data="fashion-mnist", data_dir=str(data),
                              train=TrainConfig(epochs=1, threads=1, patience=1))
    with pytest.raises(ParameterError) as e:
        train_classifier(config, out=tmp_path / "run", verbose=False, callbacks=EarlyStopping(patience=1))
    assert e.value.parameter == "callbacks"
    assert not (tmp_path / "run").exists()  # refused before a run is made


def test_a_lone_callback_is_refused_by_resume_classifier_before_the_run_is_read(tmp_path):
    from neuralab.training import resume_classifier

    with pytest.raises(ParameterError, match="callbacks=.*give a list of callbacks"):
        resume_classifier(tmp_path / "no-run", callbacks=EarlyStopping(patience=1))


def test_a_callback_class_given_for_an_instance_is_refused_before_the_run_is_made(tmp_path):
    from neuralab.training.callbacks import checked_callbacks

    with pytest.raises(ParameterError, match=r"callbacks='EarlyStopping': is a class; give an instance of it: "
                                             r"callbacks=\[EarlyStopping\(\.\.\.\)\]"):
        checked_callbacks([EarlyStopping])
    out = tmp_path / "run"
    with pytest.raises(ParameterError, match="is a class"):
        train_classifier(ClassifierConfig(model="mlp", data="nothing-here", train=TrainConfig(epochs=1)), out=out,
                         callbacks=[EarlyStopping])
    assert not out.exists()
