"""`neuralab inspect`: feature maps and first-layer filters of a trained LeNet-5, checked
against a direct forward pass, the from-scratch convolution, and the pixels of the PNGs."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from helpers import idx_subset
from neuralab.cli import main
from neuralab.data.idx import read_idx
from neuralab.data.sources import file_in
from neuralab.errors import NeuralabError
from neuralab.mechanics import KERNELS, closest_kernels, conv2d_forward
from neuralab.models import build_model
from neuralab.models.inspect import FeatureMap, feature_maps, filter_pairs, first_layer_filters
from neuralab.reports.inspect import feature_map_figure
from neuralab.training import ClassifierConfig, TrainConfig, load_classifier, train_classifier

LENET_LAYERS = [("features.1", "Conv2d", (6, 28, 28)), ("features.3", "AvgPool2d", (6, 14, 14)),
                ("features.4", "Conv2d", (16, 10, 10)), ("features.6", "AvgPool2d", (16, 5, 5)),
                ("features.7", "Conv2d", (120, 1, 1))]


def trained_lenet(fashion_mnist, tmp_path_factory, out: Path) -> Path:
    """A real LeNet-5 run (one epoch on 600 Fashion-MNIST images) copied to ``out``. It is
    trained once per test session; the web app's tests take their copies from here too."""
    shared = tmp_path_factory.getbasetemp() / "trained-lenet5"
    if not (shared / "lenet" / "report.html").exists():
        data = idx_subset(fashion_mnist, shared / "fashion-mnist", 600, 100)
        train_classifier(ClassifierConfig(model="lenet5", data="fashion-mnist", data_dir=str(data),
                                          train=TrainConfig(epochs=1, batch_size=64)),
                         out=shared / "lenet", overwrite=True, verbose=False)
    shutil.copytree(shared / "lenet", out)
    return out


@pytest.fixture(scope="module")
def run(fashion_mnist, tmp_path_factory):
    """A LeNet-5 trained for one epoch on 600 real Fashion-MNIST images."""
    return trained_lenet(fashion_mnist, tmp_path_factory, tmp_path_factory.mktemp("runs") / "lenet")


@pytest.fixture(scope="module")
def picture(fashion_mnist, tmp_path_factory):
    """The first test picture of Fashion-MNIST (an ankle boot), as a PNG."""
    path = tmp_path_factory.mktemp("pictures") / "boot.png"
    Image.fromarray(read_idx(file_in(fashion_mnist, "t10k-images-idx3-ubyte.gz"))[0]).save(path)
    return path


def direct_forward(model, x) -> list[np.ndarray]:
    """LeNet-5's conv and pooling outputs computed by calling its layers one by one."""
    f = model.features
    outputs, h = [], x
    with torch.no_grad():
        for i, layer in enumerate(f):
            h = layer(h)
            if i in (1, 3, 4, 6, 7):
                outputs.append(h[0].numpy())
    return outputs


def test_feature_maps_equal_a_direct_forward_and_the_scratch_convolution(run, picture):
    clf = load_classifier(run)
    x = clf.preprocess(clf.load_images([picture]))
    layers = feature_maps(clf.model, x)
    assert [(fm.name, fm.kind, fm.maps.shape) for fm in layers] == LENET_LAYERS
    for fm, expected in zip(layers, direct_forward(clf.model, x)):
        np.testing.assert_allclose(fm.maps, expected, rtol=0, atol=1e-5)
    # the first conv layer is the workshop's dot product: NumPy by hand gives the same maps
    conv = clf.model.features[1]
    padded = clf.model.features[0](x).double().numpy()
    scratch, _ = conv2d_forward(padded, conv.weight.double().detach().numpy(), conv.bias.double().detach().numpy())
    np.testing.assert_allclose(layers[0].maps, scratch[0], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(first_layer_filters(clf.model), conv.weight.detach().numpy())
    assert not clf.model.training  # the hooks are gone and the mode is kept
    assert all(not m._forward_hooks for m in clf.model.modules())


def panel_boxes(fig, dpi: int = 110, pad_inches: float = 0.1):
    """Pixel boxes (top, bottom, left, right) of the image panels of ``fig`` in the PNG that
    ``plots.save`` writes (bbox_inches="tight", default padding)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    tight = fig.get_tightbbox(renderer).padded(pad_inches)  # inches
    width, height = fig.get_size_inches()
    boxes = []
    for ax in fig.axes:
        if not ax.images:
            continue
        p = ax.get_position()  # figure fraction, after the aspect ratio was applied
        boxes.append(((tight.y1 - p.y1 * height) * dpi, (tight.y1 - p.y0 * height) * dpi,
                      (p.x0 * width - tight.x0) * dpi, (p.x1 * width - tight.x0) * dpi))
    return boxes


def test_cli_writes_a_panel_per_filter_with_the_forward_values(run, picture, tmp_path, capsys):
    out = tmp_path / "inspect"
    assert main(["inspect", str(run), str(picture), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{picture}: ") and "features.1 (Conv2d)" in printed and "wrote 8 files" in printed

    clf = load_classifier(run)
    x = clf.preprocess(clf.load_images([picture]))
    expected = direct_forward(clf.model, x)
    names = ["01-features.1-conv2d", "02-features.3-avgpool2d", "03-features.4-conv2d",
             "04-features.6-avgpool2d", "05-features.7-conv2d"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}.png" for n in names] + ["filters.png", "input.png", "feature_maps.npz"])

    saved = np.load(out / "feature_maps.npz")
    for name, maps in zip(names, expected):
        np.testing.assert_allclose(saved[name], maps, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(saved["input"], clf.load_images([picture])[0])
    np.testing.assert_array_equal(saved["filters"], clf.model.features[1].weight.detach().numpy())
    np.testing.assert_allclose(saved["probabilities"], clf.predict_proba(clf.load_images([picture]))[0], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "input.png")), saved["input"][0])

    # layer 1's grid: one panel per filter (6), each the map of that filter scaled min..max
    layer1 = feature_maps(clf.model, x)[0]
    fig = feature_map_figure(layer1)
    panels = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(panels) == 6
    for panel, maps in zip(panels, expected[0]):
        np.testing.assert_allclose(panel, maps, atol=1e-5)
    boxes = panel_boxes(fig)
    plt.close(fig)
    png = np.asarray(Image.open(out / "01-features.1-conv2d.png").convert("L")).astype(float)
    for (top, bottom, left, right), maps in zip(boxes, expected[0]):
        h, w = maps.shape
        rows = (top + (np.arange(h) + 0.5) * (bottom - top) / h).astype(int)
        cols = (left + (np.arange(w) + 0.5) * (right - left) / w).astype(int)
        shown = png[np.ix_(rows, cols)]
        scaled = (maps - maps.min()) / (maps.max() - maps.min()) * 255
        # every cell but the outer ring (where the frame and pixel snapping may shift a pixel or two)
        assert np.abs(shown - scaled)[1:-1, 1:-1].max() <= 3, "a panel's pixels are not its feature map"
    # the PNG holds the 6 panels side by side: wider than tall, and nothing but them besides titles
    assert png.shape[1] > 4 * png.shape[0] > 0


def test_every_grid_has_one_panel_per_channel_up_to_the_limit(run, picture):
    clf = load_classifier(run)
    layers = feature_maps(clf.model, clf.preprocess(clf.load_images([picture])))
    figures = [feature_map_figure(fm) for fm in layers]
    panels = [[ax.images[0].get_array() for ax in fig.axes if ax.images] for fig in figures]
    assert [len(p) for p in panels] == [6, 6, 16, 16, 1]  # the last conv's 120 maps of 1 x 1: one panel
    assert panels[-1][0].shape == (10, 12)
    np.testing.assert_array_equal(np.asarray(panels[-1][0]).ravel(), layers[-1].maps.ravel())
    many = FeatureMap("wide", "Conv2d", np.random.default_rng(0).normal(size=(10, 4, 4)).astype(np.float32))
    figures.append(feature_map_figure(many, limit=4))
    assert sum(1 for ax in figures[-1].axes if ax.images) == 4
    assert figures[-1].get_suptitle().endswith("first 4 of 10 maps")
    for fig in figures:
        plt.close(fig)


def test_filters_sit_beside_their_closest_classic_kernel(run):
    weights = first_layer_filters(load_classifier(run).model)  # (6, 1, 5, 5)
    panels, titles = filter_pairs(weights)
    assert panels.shape == (12, 5, 5) and len(titles) == 12
    np.testing.assert_allclose(panels[0::2], weights.mean(axis=1))
    for i, match in enumerate(closest_kernels(weights)):
        kernel = np.pad(KERNELS[match.name], 1) * np.sign(match.similarity)
        np.testing.assert_allclose(panels[2 * i + 1], kernel)
        assert titles[2 * i] == f"filter {i}"
        assert titles[2 * i + 1] == f"{'-' if match.similarity < 0 else ''}{match.name}\ncos {match.similarity:+.2f}"


def test_a_filter_that_is_a_classic_kernel_is_named_by_it():
    weights = np.stack([2 * KERNELS["sobel-x"], -KERNELS["laplacian"], KERNELS["sharpen"]])[:, None]
    panels, titles = filter_pairs(weights)
    assert titles[1::2] == ["sobel-x\ncos +1.00", "-laplacian\ncos -1.00", "sharpen\ncos +1.00"]
    np.testing.assert_allclose(panels[3], -KERNELS["laplacian"])
    colour, _ = filter_pairs(np.random.default_rng(0).normal(size=(4, 3, 5, 5)))
    assert colour.shape == (8, 3, 5, 5) and colour.min() == 0 and colour.max() == 1


def test_a_model_without_convolutions_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(NeuralabError, match="no convolution layer"):
        first_layer_filters(build_model("mlp", (1, 28, 28), 10))
    assert main(["inspect", str(tmp_path), str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "not a run directory" in err and len(err.strip().splitlines()) == 1


def test_an_unreadable_picture_is_named(run, tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    assert main(["inspect", str(run), str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not a readable image" in err
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_is_refused_in_one_line(run, picture, tmp_path, capsys):
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    assert main(["inspect", str(run), str(picture), "--out", str(taken)]) == 2
    err = capsys.readouterr().err
    assert f"--out {taken}: is a file" in err and err.count("\n") == 1
    assert taken.read_text() == "keep me"


def test_inspecting_another_model_into_the_same_folder_leaves_only_its_own_layers(run, picture, tmp_path, capsys):
    """The grids of an earlier inspection stayed beside the new ones: 01-features.0-conv2d.png of
    the sample CNN next to LeNet-5's 01-features.1-conv2d.png, as if one model had both. The
    user's own files in the folder are kept."""
    from neuralab.models.inspect import filter_pairs as pairs_of
    from neuralab.reports.inspect import write_inspection

    out = tmp_path / "inspect"
    out.mkdir()
    (out / "01-holiday-beach.png").write_bytes(b"the user's")
    torch.manual_seed(0)
    cnn = build_model("cnn", (1, 28, 28), 10).eval()
    pixels = load_classifier(run).load_images([picture])[0]
    x = torch.from_numpy(pixels[None]).float() / 255
    layers, weights = feature_maps(cnn, x), first_layer_filters(cnn)
    write_inspection(out, pixels=pixels, layers=layers, filters=weights, pairs=pairs_of(weights),
                     probabilities=np.full(10, 0.1))
    assert (out / "01-features.0-conv2d.png").exists()
    assert main(["inspect", str(run), str(picture), "--out", str(out)]) == 0
    capsys.readouterr()
    saved = np.load(out / "feature_maps.npz")
    grids = sorted(p.stem for p in out.glob("0*.png"))
    assert grids == sorted(["01-holiday-beach", *(k for k in saved.files if k[:2].isdigit())])
    assert len(grids) == 1 + len(LENET_LAYERS)


def test_a_second_picture_of_the_same_name_says_it_wrote_over_the_first_ones_folder(run, picture, tmp_path,
                                                                                      monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    jpeg = tmp_path / f"{picture.stem}.jpg"  # the same picture as a JPEG: the default folder is named by the stem
    Image.open(picture).convert("L").save(jpeg)
    assert main(["inspect", str(run), str(picture)]) == 0
    assert "earlier inspection" not in capsys.readouterr().out
    assert main(["inspect", str(run), str(jpeg)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote 8 files to inspect-{run.resolve().name}-{picture.stem} (over an earlier inspection there; give " \
           "--out to keep both)" in printed, printed
