"""Keras files and model code crafted by a hostile review: a few bytes of config asking for
gigabytes of layer outputs, zip members and HDF5 arrays lying about their size, configs of
tens of thousands of layers, a diverged fit, and a run's model.py nested too deeply for
Python's parser. Each is refused in one line naming the file (and the layer or member)
before anything large is allocated. The files are saved by Keras 3 (on PyTorch), then edited."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import tracemalloc
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import digits_folder

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.keras import check, read
from neuralab.keras import spec as specs

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")
from keras import layers as L
from test_keras_hostile import cli_refused, saved

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # NumPy 2's copy= notes from Keras


def small(path: Path) -> Path:
    """A digit classifier for scikit-learn's 8x8 digits, its last layer named "scores"."""
    return saved(path, (8, 8, 1), L.Conv2D(2, 3), L.Flatten(), L.Dense(10, activation="softmax", name="scores"))


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def rezipped(path: Path, found: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in found.items():
            z.writestr(name, data)
    return path


# --- layer outputs ------------------------------------------------------------------------------

PADDED = "layer 'padding' (ZeroPadding2D): outputs [None, 60028, 60028, 1], 3,603,360,784 values an input"


def padded(path: Path, input_shape=(28, 28, 1), padding=30000) -> Path:
    """50 parameters whose ZeroPadding2D makes each 28x28 image 14 GB."""
    return saved(path, input_shape, L.ZeroPadding2D(padding, name="padding"), L.Conv2D(2, 3), L.GlobalAveragePooling2D(),
                 L.Dense(10, activation="softmax"))


def test_a_layer_output_of_gigabytes_an_image_is_refused_naming_the_layer(tmp_path, capsys):
    path = padded(tmp_path / "pad.keras")
    with pytest.raises(NeuralabError) as e:
        read(path)
    assert str(e.value).startswith(f"{path}: {PADDED}") and f"{specs.MAX_ACTIVATION:,}" in str(e.value)
    assert PADDED in cli_refused(capsys, "import", path, "--out", tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_stored_spec_with_such_a_layer_is_refused_too(tmp_path, monkeypatch):
    """A run's model.json keeps the spec: predict, inspect, export and serve check it again."""
    monkeypatch.setattr(specs, "MAX_ACTIVATION", 2**40, raising=False)  # as a file made before the limit reads
    spec = read(padded(tmp_path / "pad.keras")).spec
    monkeypatch.undo()
    with pytest.raises(NeuralabError, match=re.escape(f"run/model.json: {PADDED}")):
        check(json.loads(json.dumps(spec)), "run/model.json", "source.spec")


def test_a_layer_output_is_checked_once_an_open_size_is_known(tmp_path):
    """keras.Input((None, None, 1)) leaves the size to the data: 28x28 padded by 10000 a side
    is 400 million values an input."""
    spec = read(padded(tmp_path / "open.keras", (None, None, 1), 10000)).spec
    with pytest.raises(NeuralabError, match=r"layer 'padding' \(ZeroPadding2D\): outputs \[None, 20028, 20028"):
        specs.with_input(spec, (28, 28, 1))
    fits = read(padded(tmp_path / "fits.keras", (None, None, 1), 100)).spec
    assert specs.with_input(fits, (28, 28, 1))["layers"][1]["output_shape"] == [None, 228, 228, 1]


# --- sizes that files declare -------------------------------------------------------------------

def declare_size(path: Path, name: str, size: int) -> None:
    """Make the zip's headers (the member's own and the central directory's) declare ``size``
    uncompressed bytes for member ``name``, whatever its stream holds."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        local = z.getinfo(name).header_offset
    assert data[local:local + 4] == b"PK\x03\x04"
    data[local + 22:local + 26] = struct.pack("<I", size)
    at = struct.unpack_from("<I", data, data.rfind(b"PK\x05\x06") + 16)[0]
    while data[at:at + 4] == b"PK\x01\x02":
        n, extra, comment = struct.unpack_from("<HHH", data, at + 28)
        if data[at + 46:at + 46 + n].decode() == name:
            data[at + 24:at + 28] = struct.pack("<I", size)
        at += 46 + n + extra + comment
    path.write_bytes(bytes(data))


def test_a_zip_member_is_not_inflated_past_the_size_its_header_declares(tmp_path):
    """config.json declares its 1 KB, and its deflated stream goes on with 64 MiB of spaces
    (64 KB in the archive): reading it stops at what was declared."""
    found = members(small(tmp_path / "m.keras"))
    path = tmp_path / "lie.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in found.items():
            with z.open(name, "w") as f:
                f.write(data)
                for _ in range(64 if name == "config.json" else 0):
                    f.write(b" " * 2**20)
    declare_size(path, "config.json", len(found["config.json"]))
    tracemalloc.start()
    try:
        with pytest.raises(NeuralabError) as e:
            read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(e.value).startswith(f"{path}: ") and "damaged" in str(e.value), str(e.value)
    assert peak < 16 * 2**20, f"{peak:,} bytes allocated reading a 1 KB config"


def legacy(path: Path) -> Path:
    """TF-Keras 2's full-model .h5, as Keras 3 still writes it: a Dense kernel of 338 x 10."""
    return saved(path, (28, 28, 1), L.Conv2D(2, 3, name="conv"), L.MaxPooling2D(), L.Flatten(),
                 L.Dense(10, activation="softmax", name="scores"))


def replace_kernel(path: Path, **layout) -> np.ndarray:
    """The Dense kernel of ``path`` made anew with h5py's ``layout`` (chunks, compression),
    written only when ``layout`` has data; returns the kernel Keras saved."""
    with h5py.File(path, "r+") as h:
        layer = h["model_weights/scores"]
        name = layer.attrs["weight_names"][0]
        kernel = layer[name][()]
        del layer[name]
        layer.create_dataset(name, shape=kernel.shape, dtype="f4", **layout)
    return kernel


@pytest.mark.parametrize("layout", [{"chunks": (338, 5), "compression": "gzip"}, {"chunks": (338, 5)}, {}],
                         ids=["compressed chunks", "chunks", "contiguous"])
def test_weights_the_file_does_not_hold_are_refused(tmp_path, capsys, layout):
    """HDF5 gives an array never written as its fill value, and stores nothing for it: a small
    (or sparse) file could declare gigabytes, which reading it would allocate. Keras writes
    every weight whole and uncompressed."""
    path = legacy(tmp_path / "m.h5")
    replace_kernel(path, **layout)
    expected = "layer 'scores': kernel stores 0 bytes for 13,520 bytes of weights"
    with pytest.raises(NeuralabError, match=expected):
        read(path)
    assert expected in cli_refused(capsys, "import", path, "--out", tmp_path / "run")  # a summary reads none


def test_weights_compressed_as_floats_compress_still_read(tmp_path):
    path = legacy(tmp_path / "m.h5")
    kernel = replace_kernel(path)
    replace_kernel(path, data=kernel, chunks=(338, 5), compression="gzip")
    np.testing.assert_array_equal(read(path).weights["scores"]["kernel"], kernel)


def test_weights_beyond_this_machines_memory_are_refused_in_one_line(tmp_path, capsys, monkeypatch):
    """A model whose weights are all in the file, more than the memory has room for."""
    def out_of_memory(self, key):
        raise MemoryError

    path = legacy(tmp_path / "m.h5")
    monkeypatch.setattr(h5py.Dataset, "__getitem__", out_of_memory)
    err = cli_refused(capsys, "import", path, "--out", tmp_path / "run")
    assert "layer 'conv': kernel of shape [3, 3, 1, 2] does not fit in this machine's memory" in err, err


# --- many layers --------------------------------------------------------------------------------

def relu(name: str) -> dict:
    return keras.saving.serialize_keras_object(L.ReLU(name=name))


def test_a_config_of_more_layers_than_the_limit_is_refused(tmp_path, capsys):
    path = small(tmp_path / "many.keras")
    found = members(path)
    config = json.loads(found["config.json"])
    config["config"]["layers"][2:2] = [relu(f"relu_{i}") for i in range(specs.MAX_LAYERS)]
    found["config.json"] = json.dumps(config).encode()
    rezipped(path, found)
    err = cli_refused(capsys, "summary", path)
    assert f"{path}: the model has 10,004 layers, more than the {specs.MAX_LAYERS:,} neuralab converts" in err, err


def test_a_stored_spec_of_more_layers_than_the_limit_is_refused(tmp_path):
    spec = read(saved(tmp_path / "m.keras", (8, 8, 1), L.Flatten(), L.ReLU(name="r"),
                      L.Dense(10, activation="softmax"))).spec
    first, flatten, r, dense = spec["layers"]
    chain = [{**r, "name": f"r{i}", "inputs": [f"r{i - 1}" if i else "flatten"]} for i in range(specs.MAX_LAYERS)]
    spec["layers"] = [first, flatten, *chain, {**dense, "inputs": [chain[-1]["name"]]}]
    with pytest.raises(NeuralabError, match=f"field 'source.spec.layers' must be a list of at most "
                                            f"{specs.MAX_LAYERS:,} layers"):
        check(spec, "run/model.json", "source.spec")


# --- a diverged fit -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("digits"), 60)


def test_a_diverged_model_given_to_train_is_refused_naming_the_layer(tmp_path, capsys, digits):
    """Keras saves a fit gone to NaN as it is: training from it would be blamed on the learning rate."""
    path = small(tmp_path / "nan.keras")
    found = members(path)
    weights = tmp_path / "model.weights.h5"
    weights.write_bytes(found["model.weights.h5"])
    with h5py.File(weights, "r+") as h:
        h["layers/dense/vars/1"][3] = np.nan  # the bias of "scores", the first Dense
    found["model.weights.h5"] = weights.read_bytes()
    rezipped(path, found)
    err = cli_refused(capsys, "train", "--model", path, "--data", digits, "--epochs", "1", "--out", tmp_path / "run",
                      "--quiet")
    assert f"{path}: layer 'scores': bias holds NaN or infinite values" in err and "lower learning rate" in err, err
    assert not (tmp_path / "run").exists()


# --- a run's model.py ---------------------------------------------------------------------------

TORCH_NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))
"""


@pytest.fixture(scope="module")
def torch_run(digits, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("code")
    (folder / "net.py").write_text(TORCH_NET)
    run = tmp_path_factory.mktemp("runs") / "torch-net"
    code = main([str(a) for a in ("train", "--model", f"{folder / 'net.py'}:Net", "--data", digits, "--epochs", "1",
                                  "--out", run, "--quiet")])
    assert code == 0
    return run


@pytest.mark.parametrize("expression", ["1+" * 200_000 + "1", "-" * 200_000 + "1"], ids=["sum", "negations"])
def test_a_model_py_nested_too_deeply_to_parse_is_refused_in_one_line(torch_run, tmp_path, capsys, digits, expression):
    """The run's model.py is parsed for its imports before --trust-code is asked for: Python's
    parser gives up with RecursionError (1+1+...) or MemoryError (---1)."""
    from starlette.testclient import TestClient

    from neuralab.web.app import create_app

    run = tmp_path / "runs" / "run"
    shutil.copytree(torch_run, run)
    code = f"x = {expression}\n".encode()
    (run / "model.py").write_bytes(code)
    meta = json.loads((run / "model.json").read_text())
    meta["source"]["sha256"] = hashlib.sha256(code).hexdigest()  # as whoever made the run would record it
    (run / "model.json").write_text(json.dumps(meta))
    picture = next((digits / "3").iterdir())
    for trust in ([], ["--trust-code"]):
        err = cli_refused(capsys, "predict", run, picture, *trust)
        assert f"{run / 'model.py'}: nested too deeply for Python to parse" in err, err
    with TestClient(create_app(run.parent), base_url="http://127.0.0.1") as client:
        r = client.post("/api/classify", params={"run": run.name, "source": "upload"}, content=picture.read_bytes(),
                        headers={"content-type": "application/octet-stream"})
    assert r.status_code == 400 and "nested too deeply" in r.json()["error"], r.text
