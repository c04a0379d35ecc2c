"""predict and export on a trained run: real pictures, machine output, bad files."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from helpers import idx_subset
from neuralab.cli import main
from neuralab.data.idx import read_idx
from neuralab.data.sources import SOURCES, file_in
from neuralab.training import ClassifierConfig, TrainConfig, train_classifier


@pytest.fixture(scope="module")
def run(fashion_mnist, tmp_path_factory):
    data = idx_subset(fashion_mnist, tmp_path_factory.mktemp("fashion-mnist"), 4000, 500)
    out = tmp_path_factory.mktemp("runs") / "lenet"
    train_classifier(ClassifierConfig(model="lenet5", data="fashion-mnist", data_dir=str(data),
                                      train=TrainConfig(epochs=2, batch_size=64)), out=out, verbose=False)
    return out


@pytest.fixture(scope="module")
def pictures(fashion_mnist, tmp_path_factory):
    """Real Fashion-MNIST test pictures saved as a PNG (28x28 gray) and a large RGB JPEG."""
    folder = tmp_path_factory.mktemp("pictures")
    x = read_idx(file_in(fashion_mnist, "t10k-images-idx3-ubyte.gz"))[:2]
    y = read_idx(file_in(fashion_mnist, "t10k-labels-idx1-ubyte.gz"))[:2]
    Image.fromarray(x[0]).save(folder / "boot.png")
    Image.fromarray(np.stack([x[1]] * 3, -1)).resize((300, 300)).save(folder / "pullover.jpg", quality=95)
    return folder, [SOURCES["fashion-mnist"].classes[v] for v in y]


def test_predict_any_size_and_mode_with_json(run, pictures, capsys):
    folder, labels = pictures
    assert main(["predict", str(run), str(folder / "boot.png"), str(folder / "pullover.jpg"), "--json",
                 "--top-k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["top"][0]["class"] for r in out] == labels
    for r in out:
        probs = [t["probability"] for t in r["top"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_predict_text_output(run, pictures, capsys):
    folder, labels = pictures
    assert main(["predict", str(run), str(folder / "boot.png"), "--top-k", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"{folder / 'boot.png'}: {labels[0]} ")


def _png_header_only(path, width, height):
    """A valid PNG that claims width x height pixels but stores a few kilobytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + width // 8) * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_bytes(b""), "file is empty"),
    (lambda p: p.write_text("date,value\n2020-01-01,3\n"), "not a readable image"),
    (lambda p: _png_header_only(p, 20_000, 20_000), "too large"),
])
def test_bad_pictures_get_one_line_and_exit_2(run, tmp_path, capsys, make, words):
    path = tmp_path / "input.png"
    make(path)
    assert main(["predict", str(run), str(path)]) == 2
    err = capsys.readouterr().err
    assert words in err and str(path) in err and err.count("\n") == 1


def test_predict_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["predict", str(tmp_path), "x.png"]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_onnx_export_matches_pytorch(run, pictures, capsys):
    import onnxruntime

    from neuralab.training import load_classifier

    assert main(["export", str(run), "--onnx"]) == 0
    assert "matches PyTorch" in capsys.readouterr().out
    clf = load_classifier(run)
    images = clf.load_images([pictures[0] / "boot.png", pictures[0] / "pullover.jpg"])
    session = onnxruntime.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"images": clf.preprocess(images).numpy()})[0]
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True),
                               clf.predict_proba(images), atol=1e-5)


def test_onnx_export_into_a_folder_writes_model_onnx_there(run, tmp_path, capsys):
    existing = tmp_path / "models"
    existing.mkdir()
    for out, path in ((existing, existing / "model.onnx"), (f"{tmp_path / 'new'}/", tmp_path / "new" / "model.onnx")):
        assert main(["export", str(run), "--onnx", "--out", str(out)]) == 0
        assert f"wrote {path}" in capsys.readouterr().out and path.stat().st_size > 1000


def test_predict_a_folder_classifies_every_picture_in_it_and_below_it(run, pictures, tmp_path, capsys):
    """`neuralab predict RUN photos/` was refused (is a folder, not a picture)."""
    folder, labels = pictures
    album = tmp_path / "album"
    (album / "2024").mkdir(parents=True)
    (album / "boot.png").write_bytes((folder / "boot.png").read_bytes())
    (album / "2024" / "pullover.jpg").write_bytes((folder / "pullover.jpg").read_bytes())
    (album / "notes.txt").write_text("not a picture")
    assert main(["predict", str(run), str(album), "--json", "--top-k", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(r["image"], r["top"][0]["class"]) for r in out] == \
        [(str(album / "2024" / "pullover.jpg"), labels[1]), (str(album / "boot.png"), labels[0])]
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(run), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'empty'}: is a folder, not a picture, and holds no PNG" in err and err.count("\n") == 1


def test_many_pictures_are_classified_a_batch_at_a_time(run, pictures, tmp_path, monkeypatch, capsys):
    """A shell glob of thousands of photos went through the model as one batch: 2 GB for 6,000
    pictures at 32x32, growing with every picture."""
    from helpers import record_calls
    from neuralab.training import trained_classifier
    from neuralab.training.trained_classifier import Classifier

    folder, labels = pictures
    paths = [str(folder / "boot.png"), str(folder / "pullover.jpg")] * 5
    assert main(["predict", str(run), *paths, "--json"]) == 0
    whole = json.loads(capsys.readouterr().out)
    monkeypatch.setattr(trained_classifier, "PREDICT_BATCH", 3)
    sizes = record_calls(monkeypatch, Classifier, "predict_proba", lambda args, result: len(args[1]))
    assert main(["predict", str(run), *paths, "--json"]) == 0
    batched = json.loads(capsys.readouterr().out)
    assert sizes == [3, 3, 3, 1] and [r["image"] for r in batched] == paths
    for a, b in zip(whole, batched):
        assert [t["class"] for t in a["top"]] == [t["class"] for t in b["top"]]
        np.testing.assert_allclose([t["probability"] for t in a["top"]], [t["probability"] for t in b["top"]],
                                   atol=1e-6)
