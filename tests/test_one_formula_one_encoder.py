"""The output size of "same", the PNG encoder, the scratch CNN's and the Keras reader's
arguments and the datasets' citations: each has one owner and does what it says."""

from __future__ import annotations

import base64
import inspect
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from neuralab.cli import main
from neuralab.data.pictures import decode_image, encode_image, save_image
from neuralab.data.sources import SOURCES
from neuralab.errors import ParameterError
from neuralab.keras import read
from neuralab.keras import reader
from neuralab.mechanics import same_size
from neuralab.mechanics.scratch_cnn import Layer, ScratchCNN
from neuralab.models.layers import Conv2dSame, MaxPool2dSame
from neuralab.web.images import png_url

KERAS = Path(__file__).parent / "data" / "keras"


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_same_gives_ceil_of_size_over_stride_as_the_torch_layers_compute_it(stride):
    for n in range(1, 30):
        x = torch.zeros(1, 1, n, n)
        for kernel in (1, 2, 3, 5):
            conv = Conv2dSame(1, 1, kernel, stride)
            pool = MaxPool2dSame(kernel, stride)
            assert conv(x).shape[-2:] == pool(x).shape[-2:] == (same_size(n, stride),) * 2 == (-(-n // stride),) * 2
    with pytest.raises(ParameterError) as e:
        same_size(28, 0)
    assert e.value.parameter == "s"


def test_the_keras_reader_sizes_a_same_model_as_keras_did():
    # Keras 2's "same" convolutions and pooling on 7x7, strides 1, 2, 1, 1, 2, 2: odd sides round up
    model = read(KERAS / "same_cnn_7_tfk2.h5")
    sides, n = [], 7
    for e in model.spec["layers"][1:-2]:
        n = same_size(n, e["args"]["strides"][0])
        sides.append(n)
        assert e["output_shape"][1:3] == [n, n], e["name"]
    assert sides == [7, 4, 4, 4, 2, 1]
    # what Keras itself built: the dense layer's weights take the 1x1x3 map that follows
    assert model.weights["dense_1"]["kernel"].shape == (sides[-1] ** 2 * 3, 5)


def picture() -> np.ndarray:
    """A 40x60 colour gradient with a dark square: what the playground and `conv apply` write."""
    y, x = np.mgrid[0:40, 0:60]
    image = np.stack([x * 4, y * 6, (x + y) * 2], axis=-1).astype(np.uint8)
    image[10:20, 10:20] = 0
    return image


def test_one_encoder_writes_the_web_apps_pictures_and_the_saved_files(tmp_path):
    image = picture()
    url = png_url(image)
    assert url.startswith("data:image/png;base64,")
    sent = base64.b64decode(url.split(",", 1)[1])
    assert sent == encode_image(image, "PNG", compress_level=1)
    np.testing.assert_array_equal(decode_image(sent, "web", mode="RGB"), image)
    gray = image[..., 0]
    np.testing.assert_array_equal(decode_image(base64.b64decode(png_url(gray).split(",", 1)[1]), "web"), gray)
    save_image(tmp_path / "map.png", image)
    assert (tmp_path / "map.png").read_bytes() == encode_image(image)
    save_image(tmp_path / "map.jpg", image)
    assert (tmp_path / "map.jpg").read_bytes() == encode_image(image, "JPEG")
    assert (tmp_path / "map.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    for name in ("map.fits", "map.xbm", "map.pdf", "map"):  # Pillow's other writers: tracebacks, or files no doc offers
        with pytest.raises(ParameterError) as e:
            save_image(tmp_path / name, image)
        assert e.value.parameter == "path" and "written as .png, .jpg, .jpeg" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.jpg", "map.png"]


def test_the_scratch_cnn_takes_no_argument_that_does_nothing():
    # the scratch CNN has no dropout or batch norm: a `training` flag would switch nothing
    assert list(inspect.signature(ScratchCNN.logits).parameters) == ["self", "x"]
    assert list(inspect.signature(Layer.forward).parameters) == ["self", "x"]
    model = ScratchCNN()
    x = np.random.default_rng(0).random((4, 1, 8, 8))
    assert model.logits(x).shape == (4, 10)
    with pytest.raises(TypeError):
        model.logits(x, training=True)


def test_a_legacy_h5_training_config_reads_as_keras_3s_compile_config(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "compiled.h5"
    shutil.copy(KERAS / "same_cnn_7_tfk2.h5", path)
    training = {"loss": "sparse_categorical_crossentropy", "metrics": [["accuracy"]],
                "optimizer_config": {"class_name": "Adam", "config": {"name": "Adam", "learning_rate": 0.003}}}
    with h5py.File(path, "a") as h:
        h.attrs["training_config"] = json.dumps(training).encode()
    expected = {"optimizer": training["optimizer_config"], "loss": "sparse_categorical_crossentropy"}
    assert read(path).compile == expected
    assert read(path, weights=False).compile == expected
    # the file's path is no input: what it reads is the attribute alone
    assert list(inspect.signature(reader._training_config).parameters) == ["raw"]
    assert reader._training_config(json.dumps(training).encode()) == expected
    assert reader._training_config(b"{not json") == reader._training_config(None) == {}


def test_data_list_shows_what_each_dataset_asks_to_be_cited_with(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path))
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name, source in SOURCES.items():
        assert source.citation, name
        block = out.split(name, 1)[1].split("\n")[:3]
        assert block[2].strip() == f"cite: {source.citation}", block
    assert "LeCun" in out and "Fashion-MNIST: a novel image dataset" in out and "Krizhevsky" in out
