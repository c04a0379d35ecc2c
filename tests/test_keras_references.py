"""neuralab.keras.convert matches TensorFlow's Keras on files TensorFlow wrote: TF-Keras 2's
legacy .h5 and .keras, and Keras 3 on TensorFlow's .keras (tests/data/keras, made by
make_references.py). No Keras is needed here: the files are read as JSON and HDF5.

These cover what Keras 3 on PyTorch computes differently ("same" average pooling over uneven
padding) and TF-Keras 2's own conventions (GRU with reset_after=False, the fused
BatchNormalization's moving variance), where TensorFlow is the reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from neuralab.keras import convert, read

DATA = Path(__file__).resolve().parent / "data" / "keras"
TOL = 1e-5


@pytest.fixture(scope="module")
def refs():
    with np.load(DATA / "references.npz", allow_pickle=False) as f:
        return dict(f)


def run(module, x: np.ndarray) -> np.ndarray:
    module.eval()
    with torch.no_grad():
        y = module(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2) if x.ndim == 4 else x)))
    return y.numpy().transpose(0, 2, 3, 1) if y.dim() == 4 else y.numpy()


@pytest.mark.parametrize("name,file", [
    ("same_cnn_8_tfk2", "same_cnn_8_tfk2.h5"),
    ("same_cnn_7_tfk2", "same_cnn_7_tfk2.h5"),
    ("same_cnn_8_k3tf", "same_cnn_8_k3tf.keras"),
    ("same_cnn_7_k3tf", "same_cnn_7_k3tf.keras"),
    ("recurrent_tfk2", "recurrent_tfk2.h5"),
    ("graph_tfk2", "graph_tfk2.keras"),
    ("strides_11x10_tfk2", "strides_11x10_tfk2.h5"),   # strides 1 and 2, valid and same, odd H and even W
    ("strides_valid_tfk2", "strides_valid_tfk2.h5"),
    ("recurrent_last_tfk2", "recurrent_last_tfk2.h5"),  # return_sequences into the last step only
])
def test_conversion_matches_tensorflow(refs, name, file):
    got = run(convert(DATA / file), refs[f"{name}__x"])
    want = refs[f"{name}__y"]
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= TOL


def test_tf_keras_2_batch_norm_statistics_after_training(refs):
    """TF-Keras 2 averages the Bessel-corrected batch variance into moving_variance on images
    (its fused kernel) and the plain one on vectors; after the same SGD steps in training
    mode the converted module holds TF-Keras's statistics."""
    module = convert(DATA / "bn_train_tfk2.h5")
    spec = read(DATA / "bn_train_tfk2.h5").spec
    assert [e["args"]["unbiased_moving_variance"] for e in spec["layers"] if e["class"] == "BatchNormalization"] \
        == [True, False]
    opt = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.1)
    module.train()
    for x, y in zip(refs["bn_train__x"], refs["bn_train__y"]):
        opt.zero_grad()
        torch.nn.functional.mse_loss(module(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())), torch.from_numpy(y)).backward()
        opt.step()
    for i, bn in ((1, module[1]), (4, module[4])):
        assert np.abs(bn.running_mean.numpy() - refs[f"bn_train__mean{i}"]).max() <= TOL
        assert np.abs(bn.running_var.numpy() - refs[f"bn_train__var{i}"]).max() <= TOL


def test_tf_keras_2_batch_norm_statistics_on_sequences_after_training(refs):
    """On (N, T, C) sequences TF-Keras 2 normalises each feature over batch and time with its plain
    kernel: after the same SGD steps the converted module holds TF-Keras's moving statistics and
    computes what TF-Keras computes."""
    module = convert(DATA / "bn_seq_train_tfk2.h5")
    spec = read(DATA / "bn_seq_train_tfk2.h5").spec
    assert [e["args"]["unbiased_moving_variance"] for e in spec["layers"] if e["class"] == "BatchNormalization"] == [False]
    opt = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.1)
    module.train()
    for x, y in zip(refs["bn_seq_train__x"], refs["bn_seq_train__y"]):
        opt.zero_grad()
        torch.nn.functional.mse_loss(module(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    bn = module[1]
    assert np.abs(bn.running_mean.numpy() - refs["bn_seq_train__mean"]).max() <= TOL
    assert np.abs(bn.running_var.numpy() - refs["bn_seq_train__var"]).max() <= TOL
    assert np.abs(refs["bn_seq_train__var"] - 1).max() > 0.05  # the statistics did move
    assert np.abs(run(module, refs["bn_seq_train__after_x"]) - refs["bn_seq_train__after_y"]).max() <= TOL
