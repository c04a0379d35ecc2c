"""A picture drawn dark on light (a photo, a drawing on paper) given to a model trained on
light-on-dark pictures, MNIST's way: `neuralab predict` and `inspect` answer it as it is and say,
on stderr, that `--invert` inverts it, which then answers as the web app's upload does by itself
(before, the command line answered a photo of a boot "Trouser" without a word). The guess from a
picture's border is never the command line's or the library's default: a model trained on pictures
with light borders, or a Keras model taking raw pixels, would get its own pictures wrong. Real
pictures: a Fashion-MNIST ankle boot drawn dark on a white page, and a run trained on
scikit-learn's handwritten digits drawn dark on light."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from helpers import _sklearn_digits
from neuralab.cli import main
from neuralab.data.idx import read_idx
from neuralab.data.sources import SOURCES, file_in
from neuralab.errors import ParameterError
from neuralab.training import ClassifierConfig, TrainConfig, load_classifier, train_classifier
from neuralab.training.preprocess import Preprocess
from neuralab.web import create_app
from test_inspect import trained_lenet

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

NOTE = ("neuralab: note: the picture looks drawn dark on light, and the model takes light-on-dark pictures "
        "(MNIST's way): `--invert` inverts it, as the web app does\n")


@pytest.fixture(scope="module")
def run(fashion_mnist, tmp_path_factory):
    """A LeNet-5 trained on Fashion-MNIST, light on dark (its training mean 0.28)."""
    return trained_lenet(fashion_mnist, tmp_path_factory, tmp_path_factory.mktemp("runs") / "lenet")


@pytest.fixture(scope="module")
def boot(fashion_mnist, tmp_path_factory):
    """Fashion-MNIST's first test picture (an ankle boot) photographed as a shoe is: dark on a
    white page larger than the boot, in colour (on_paper.png); and the same picture inverted,
    light on dark as the dataset draws it (as_drawn.png)."""
    folder = tmp_path_factory.mktemp("pictures")
    x = read_idx(file_in(fashion_mnist, "t10k-images-idx3-ubyte.gz"))[0]
    page = np.zeros((168, 168), np.uint8)
    page[14:154, 14:154] = np.asarray(Image.fromarray(x).resize((140, 140), Image.Resampling.LANCZOS))
    Image.fromarray(np.stack([255 - page] * 3, -1)).save(folder / "on_paper.png")
    Image.fromarray(page).save(folder / "as_drawn.png")
    assert SOURCES["fashion-mnist"].classes[read_idx(file_in(fashion_mnist, "t10k-labels-idx1-ubyte.gz"))[0]] \
        == "Ankle boot"
    return folder / "on_paper.png", folder / "as_drawn.png"


def predicted(capsys, *args) -> tuple[list[dict], str]:
    assert main(["predict", *map(str, args), "--json", "--top-k", "10"]) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def probabilities(row: dict, classes: list[str]) -> np.ndarray:
    by_class = {t["class"]: t["probability"] for t in row["top"]}
    return np.array([by_class[c] for c in classes])


def test_predict_answers_a_picture_as_it_is_and_says_that_invert_inverts_it(run, boot, capsys):
    on_paper, as_drawn = boot
    clf = load_classifier(run)
    as_the_model_takes_it = clf.predict_proba(clf.load_images([as_drawn]))[0]
    as_it_is = clf.predict_proba(clf.load_images([on_paper]))[0]
    assert np.abs(as_the_model_takes_it - as_it_is).max() > 0.05  # inverted, it is another answer

    (row,), err = predicted(capsys, run, on_paper)
    assert err == NOTE
    np.testing.assert_allclose(probabilities(row, clf.classes), as_it_is, atol=1e-6)

    (row,), err = predicted(capsys, run, on_paper, "--invert")
    assert err == ""  # as asked: nothing to say
    np.testing.assert_allclose(probabilities(row, clf.classes), as_the_model_takes_it, atol=2e-3)

    # text: the answers' lines as they were, the note after them on stderr
    assert main(["predict", str(run), str(on_paper), "--top-k", "1"]) == 0
    out = capsys.readouterr()
    assert out.out == f"{on_paper}: {clf.classes[as_it_is.argmax()]} {as_it_is.max() * 100:.1f}%\n" and out.err == NOTE


def test_the_note_counts_only_the_pictures_drawn_dark_on_light(run, boot, capsys):
    on_paper, as_drawn = boot
    _, err = predicted(capsys, run, as_drawn, on_paper, as_drawn)
    assert err == ("neuralab: note: 1 of 3 pictures look drawn dark on light, and the model takes light-on-dark "
                   "pictures (MNIST's way): `--invert` inverts them, as the web app does\n")
    _, err = predicted(capsys, run, as_drawn, as_drawn)
    assert err == ""


def top_three(picture, row: dict) -> str:
    """The line `neuralab inspect` starts with, from `neuralab predict --json`'s row."""
    return f"{picture}: " + ", ".join(f"{t['class']} {t['probability'] * 100:.1f}%" for t in row["top"][:3])


def test_inspect_answers_as_predict_does(run, boot, capsys, tmp_path):
    on_paper, as_drawn = boot
    clf = load_classifier(run)
    (row,), _ = predicted(capsys, run, on_paper)
    assert main(["inspect", str(run), str(on_paper), "--out", str(tmp_path / "as-is")]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[0] == top_three(on_paper, row) and out.err == NOTE

    (row,), _ = predicted(capsys, run, on_paper, "--invert")
    assert main(["inspect", str(run), str(on_paper), "--out", str(tmp_path / "inverted"), "--invert"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[0] == top_three(on_paper, row) and out.err == ""
    seen = np.load(tmp_path / "inverted" / "feature_maps.npz")["input"].astype(int)
    assert np.abs(seen - clf.load_images([as_drawn])[0]).max() <= 1


def test_load_images_inverts_only_when_told(run, boot):
    on_paper, as_drawn = boot
    clf = load_classifier(run)
    drawn, paper = clf.load_images([as_drawn, on_paper])  # "no": the pictures as they are
    assert clf.drawn_dark_on_light(np.stack([drawn, paper])).tolist() == [False, True]
    pixels, inverted = clf.load_images([on_paper, as_drawn], invert="auto", return_inverted=True)
    assert inverted.tolist() == [True, False]
    assert np.abs(pixels[0].astype(int) - drawn).max() <= 1 and np.array_equal(pixels[1], drawn)
    assert np.array_equal(clf.load_images(on_paper, invert=False), clf.load_images(on_paper, invert="no"))
    assert np.array_equal(clf.load_images(as_drawn, invert=True), 255 - drawn[None])
    with pytest.raises(ParameterError) as e:
        clf.load_images(on_paper, invert="maybe")
    assert e.value.parameter == "invert" and "choose auto" in str(e.value)


def test_the_web_app_answers_an_upload_as_predict_told_to_invert_does(run, boot, capsys):
    on_paper, _ = boot
    (row,), _ = predicted(capsys, run, on_paper, "--invert")
    with TestClient(create_app(run.parent), base_url="http://127.0.0.1") as client:
        r = client.post("/api/classify", params={"run": run.name, "source": "upload"}, content=on_paper.read_bytes(),
                        headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    web = r.json()["top"]
    assert [t["class"] for t in web] == [t["class"] for t in row["top"][:len(web)]]
    np.testing.assert_allclose([t["probability"] for t in web], [t["probability"] for t in row["top"][:len(web)]],
                               atol=2e-3)


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    """An MLP trained for one epoch on 600 real handwritten digits drawn dark on light (scikit-learn's,
    inverted: the training mean is above 0.5)."""
    root = tmp_path_factory.mktemp("paper-digits")
    digits = _sklearn_digits()
    for i, (image, label) in enumerate(zip(digits.images[:600], digits.target[:600])):
        (root / str(label)).mkdir(exist_ok=True)
        Image.fromarray(255 - (image * 16).clip(0, 255).astype(np.uint8)).save(root / str(label) / f"{i}.png")
    out = tmp_path_factory.mktemp("runs") / "paper"
    train_classifier(ClassifierConfig(model="mlp", data=str(root), train=TrainConfig(epochs=1, batch_size=64)),
                     out=out, verbose=False)
    return out


def test_a_run_trained_on_dark_on_light_pictures_takes_them_as_they_are(paper_run, tmp_path, capsys):
    clf = load_classifier(paper_run)
    digit = tmp_path / "seven.png"
    seven = 255 - (_sklearn_digits().images[7] * 16).clip(0, 255).astype(np.uint8)
    Image.fromarray(np.asarray(Image.fromarray(seven).resize((64, 64), Image.Resampling.LANCZOS))).save(digit)
    pixels, inverted = clf.load_images([digit], invert="auto", return_inverted=True)
    assert not inverted.any() and np.array_equal(pixels, clf.load_images([digit]))
    _, err = predicted(capsys, paper_run, digit)
    assert err == ""
    assert clf.preprocess.mean[0] > 0.5 and not clf.preprocess.expects_light_on_dark()


def cells(light_field: bool, n: int, rng) -> np.ndarray:
    """``n`` one-channel 28 x 28 microscopy-like pictures (n, 28, 28): four dark cells on a light
    field, or four light cells on a dark one, with the sensor's noise."""
    out = np.empty((n, 28, 28), np.uint8)
    for picture in out:
        a = np.full((28, 28), 200 if light_field else 15)
        for y, x in rng.integers(3, 25, (4, 2)):
            a[y - 2:y + 2, x - 2:x + 2] = 30 if light_field else 230
        picture[:] = np.clip(a + rng.integers(-10, 10, a.shape), 0, 255)
    return out


def test_auto_never_inverts_a_picture_like_the_models_own_training_pictures():
    """A one-channel model trained mostly on light cells on a dark field (its mean 0.27, as
    MNIST-like as its mean tells) and, in another class, on dark cells on a light one takes the
    latter as they are: inverted, they look like the other class."""
    rng = np.random.default_rng(3)
    dense, sparse = cells(True, 20, rng), cells(False, 60, rng)
    pre = Preprocess.fit(np.concatenate([dense, sparse])[:, None], np.repeat([0, 1], [20, 60]))
    assert pre.expects_light_on_dark() and pre.light_borders == [1.0, 0.0]
    assert [pre.inverts(p) for p in cells(True, 10, rng)] == [False] * 10
    assert not any(pre.inverts(p) for p in cells(False, 10, rng))
    assert all(pre.inverts(p, "yes") for p in dense[:3])  # asked, as ever


def test_auto_still_inverts_a_picture_on_paper_for_a_model_trained_on_fashion_mnist(fashion_mnist, boot):
    on_paper, as_drawn = boot
    pre = Preprocess.fit(read_idx(file_in(fashion_mnist, "train-images-idx3-ubyte.gz"))[:, None],
                         read_idx(file_in(fashion_mnist, "train-labels-idx1-ubyte.gz")))
    assert pre.light_borders == [0.0] * 10
    assert pre.inverts(np.asarray(Image.open(on_paper))) and not pre.inverts(np.asarray(Image.open(as_drawn)))


def on_paper(digits: np.ndarray, rng) -> np.ndarray:
    """MNIST digits photographed on paper: dark ink on light grey paper, with the camera's noise."""
    return np.clip(225 - digits * 0.8 + rng.integers(-12, 12, digits.shape), 0, 255).astype(np.uint8)


def test_auto_still_inverts_a_picture_on_paper_for_mnist_with_a_few_photos_on_paper_among_its_digits(mnist):
    """A learner's folder of 2,000 MNIST digits and 30 of their own on paper (1.5 %, a few in
    each class): the model is MNIST's kind still, and a digit on paper is inverted for it."""
    rng = np.random.default_rng(0)
    x = read_idx(file_in(mnist, "train-images-idx3-ubyte.gz"))[:2200]
    y = read_idx(file_in(mnist, "train-labels-idx1-ubyte.gz"))[:2200]
    folder = np.concatenate([x[:2000], on_paper(x[2000:2030], rng)])[:, None]
    pre = Preprocess.fit(folder, y[:2030])
    assert 0 < max(pre.light_borders) < 0.5 and pre.expects_light_on_dark()
    assert all(pre.inverts(p) for p in on_paper(x[2030:2200], rng))
    assert not any(pre.inverts(p) for p in x[2030:2200])


def test_a_large_folder_in_class_order_is_counted_over_every_class():
    """A folder's training images come sorted by class: 22,000 of light cells on a dark field,
    then 4,000 of dark cells on a light one; the last class counts as much as the first."""
    rng = np.random.default_rng(5)
    x = np.concatenate([np.tile(cells(False, 100, rng), (220, 1, 1)), np.tile(cells(True, 100, rng), (40, 1, 1))])
    y = np.repeat([0, 1], [22_000, 4_000])
    pre = Preprocess.fit(x[:, None], y)
    assert pre.light_borders == [0.0, 1.0]
    assert not pre.inverts(cells(True, 1, rng)[0])


def test_without_labels_the_share_of_all_training_pictures_tells():
    rng = np.random.default_rng(4)
    mostly = Preprocess.fit(np.concatenate([cells(True, 60, rng), cells(False, 20, rng)])[:, None])
    assert mostly.light_borders == [0.75] and not mostly.inverts(cells(True, 1, rng)[0])
    few = Preprocess.fit(np.concatenate([cells(True, 20, rng), cells(False, 60, rng)])[:, None])
    assert few.light_borders == [0.25] and few.inverts(cells(True, 1, rng)[0])


def test_a_run_that_kept_no_share_of_light_borders_keeps_the_rule_of_its_mean():
    rng = np.random.default_rng(4)
    pre = Preprocess.fit(np.concatenate([cells(True, 20, rng), cells(False, 60, rng)])[:, None],
                         np.repeat([0, 1], [20, 60]))
    kept = pre.stored()
    assert Preprocess(pre.input_shape, **kept) == pre
    # model.json of a run that recorded one share of all its training pictures: today's rule on it
    assert Preprocess(pre.input_shape, **{**kept, "light_borders": 0.25}).inverts(cells(True, 1, rng)[0])
    assert not Preprocess(pre.input_shape, **{**kept, "light_borders": 0.75}).inverts(cells(True, 1, rng)[0])
    del kept["light_borders"]  # model.json of a run trained before it was recorded
    old = Preprocess(pre.input_shape, **kept)
    assert old.light_borders is None and old.inverts(cells(True, 1, rng)[0])


@pytest.mark.parametrize("shares", ["0.5", float("nan"), 1.5, -0.1, True, [], [0.2, None]])
def test_preprocess_refuses_light_borders_that_are_no_share_from_0_to_1(shares):
    with pytest.raises(ParameterError) as e:
        Preprocess((1, 28, 28), [0.1], [0.3], light_borders=shares)
    assert e.value.parameter == "light_borders" and "from 0 to 1" in str(e.value)


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    """An MLP trained for one epoch on one-channel microscopy-like pictures: 60 of light cells on a
    dark field ("sparse"), 20 of dark cells on a light one ("dense"); its training mean is 0.27."""
    root = tmp_path_factory.mktemp("micro")
    rng = np.random.default_rng(3)
    for name, pictures in (("dense", cells(True, 20, rng)), ("sparse", cells(False, 60, rng))):
        (root / name).mkdir()
        for i, picture in enumerate(pictures):
            Image.fromarray(picture).save(root / name / f"{i}.png")
    out = tmp_path_factory.mktemp("runs") / "micro"
    train_classifier(ClassifierConfig(model="mlp", data=str(root), train=TrainConfig(epochs=1, batch_size=16)),
                     out=out, verbose=False)
    return out, root


def test_predict_and_the_web_app_take_a_run_s_own_kind_of_picture_as_it_is(micro_run, capsys):
    run, root = micro_run
    dense = root / "dense" / "0.png"
    (row,), err = predicted(capsys, run, dense)
    assert err == ""  # no note advising --invert: the model learnt from pictures like it
    with TestClient(create_app(run.parent), base_url="http://127.0.0.1") as client:
        r = client.post("/api/classify", params={"run": run.name, "source": "upload"}, content=dense.read_bytes(),
                        headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    received = Image.open(io.BytesIO(base64.b64decode(r.json()["input"].split(",", 1)[1])))
    np.testing.assert_array_equal(np.asarray(received), np.asarray(Image.open(dense)))  # as it is, not inverted
    assert json.loads((run / "model.json").read_text())["preprocess"]["light_borders"] == [1.0, 0.0]


@pytest.mark.parametrize("written, said", [("null", "null or not a number"), ("NaN", "null or not a number"),
                                           ("Infinity", "null or not a number"), ("1e999", "Infinity"), ('"0.5"', '"0.5"'),
                                           ("[0.2, 0.3, 0.4]", "[0.2, 0.3, 0.4]"), ("[0.5, NaN]", "[0.5, null]")])
def test_a_run_s_model_json_with_a_share_of_light_borders_out_of_bounds_is_refused_in_its_words(
        micro_run, tmp_path, capsys, written, said):
    run, root = micro_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    meta = (copy / "model.json").read_text()
    (copy / "model.json").write_text(re.sub(r'"light_borders": \[[^]]*\]', f'"light_borders": {written}', meta))
    assert main(["predict", str(copy), str(root / "dense" / "0.png")]) == 2
    err = capsys.readouterr().err
    assert f"field 'preprocess.light_borders' is {said}; expected" in err and err.count("\n") == 1
