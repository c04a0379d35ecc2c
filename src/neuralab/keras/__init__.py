"""Keras models in, native PyTorch out.

    from neuralab.keras import convert
    model = convert("lenet5.keras")        # or a TF-Keras 2 "model.h5", or a live Keras 3 model
    probs = model(images)                  # (N, C, H, W) in, what Keras's predict returns out (eval mode)

Files are read as JSON and HDF5 (no Keras needed, nothing in them executed): see reader.py.
The architecture becomes a spec of plain data (spec.py, from the layers in layers.py) that a
run stores and rebuilds from, and the spec becomes PyTorch modules (build.py). docs/keras.md lists what converts.
"""

from __future__ import annotations

import os

from neuralab.keras.build import build, summary_text
from neuralab.keras.layers import supported_layers
from neuralab.keras.reader import KerasModel, read
from neuralab.keras.spec import (
    check,
    ends_in_softmax,
    input_shape,
    keras_summary,
    parameter_count,
)


def convert(source, logits: bool = False):
    """A native ``torch.nn.Module`` computing what the Keras model ``source`` computes: a
    ``.keras`` file, a legacy full-model ``.h5`` (TF-Keras 2), or a live Keras 3 model.
    ``logits=True`` leaves out a final softmax (see ``ends_in_softmax``), and gives an image
    model's one sigmoid unit as the 2-class logits [0, z] (``spec.binary_classifier``).
    The module comes in eval mode, computing what Keras's ``predict`` (``model(x, training=False)``)
    does: in training mode its augmentation layers would transform, its Dropout drop, and its
    BatchNormalization use the batch's statistics and overwrite its own. Call ``.train()`` to train it."""
    model = read(source)
    return build(model.spec, model.weights, logits=logits).eval()


def on_pytorch() -> None:
    """Have Keras run on PyTorch when it is next imported: neuralab never runs it on TensorFlow,
    whatever ~/.keras/keras.json says (Keras's own default is TensorFlow). A user's
    KERAS_BACKEND wins, and a Keras already imported keeps its backend."""
    os.environ.setdefault("KERAS_BACKEND", "torch")


__all__ = ["KerasModel", "build", "check", "convert", "ends_in_softmax", "input_shape", "keras_summary",
           "on_pytorch", "parameter_count", "read", "summary_text", "supported_layers"]
