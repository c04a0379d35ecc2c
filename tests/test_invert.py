"""One `invert` wherever a picture reaches a classifier: `neuralab predict`, `neuralab inspect`,
``Classifier.load_images`` and the web app's upload all invert a picture drawn dark on light
("auto") for a model trained on light-on-dark pictures, and give it the same answer. Before,
the command line classified a photo of a boot as it was (a trouser, with exit 0) while the web
app inverted it (an ankle boot). Real pictures: a Fashion-MNIST ankle boot drawn dark on a
white page, and a run trained on scikit-learn's handwritten digits drawn dark on light."""

from __future__ import annotations

import json

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
from neuralab.web import create_app
from test_inspect import trained_lenet

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

NOTE = ("neuralab: inverted the picture, drawn dark on light: the model takes light-on-dark pictures "
        "(MNIST's way); `--no-invert` keeps it as it is\n")


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


def test_predict_inverts_a_picture_drawn_dark_on_light_by_default(run, boot, capsys):
    on_paper, as_drawn = boot
    clf = load_classifier(run)
    as_the_model_takes_it = clf.predict_proba(clf.load_images([as_drawn], invert="no"))[0]
    as_it_is = clf.predict_proba(clf.load_images([on_paper], invert="no"))[0]
    assert np.abs(as_the_model_takes_it - as_it_is).max() > 0.05  # the old answer was another one

    (row,), err = predicted(capsys, run, on_paper)
    assert row["inverted"] is True and err == NOTE
    np.testing.assert_allclose(probabilities(row, clf.classes), as_the_model_takes_it, atol=2e-3)

    (row,), err = predicted(capsys, run, on_paper, "--no-invert")
    assert row["inverted"] is False and err == ""
    np.testing.assert_allclose(probabilities(row, clf.classes), as_it_is, atol=1e-6)

    # text: the answers' lines are as they were, the note after them on stderr
    assert main(["predict", str(run), str(on_paper), "--top-k", "1"]) == 0
    out = capsys.readouterr()
    assert out.out == f"{on_paper}: {clf.classes[as_the_model_takes_it.argmax()]} " \
                      f"{as_the_model_takes_it.max() * 100:.1f}%\n" and out.err == NOTE


def test_a_picture_drawn_light_on_dark_is_not_inverted_unless_asked(run, boot, capsys):
    on_paper, as_drawn = boot
    rows, err = predicted(capsys, run, as_drawn, on_paper, as_drawn)
    assert [r["inverted"] for r in rows] == [False, True, False]
    assert err == ("neuralab: inverted 1 of 3 pictures drawn dark on light: the model takes light-on-dark "
                   "pictures (MNIST's way); `--no-invert` keeps them as they are\n")
    # --invert, as it was: every picture inverted, as asked, so nothing to say
    rows, err = predicted(capsys, run, as_drawn, on_paper, "--invert")
    assert [r["inverted"] for r in rows] == [True, True] and err == ""


def top_three(picture, row: dict) -> str:
    """The line `neuralab inspect` starts with, from `neuralab predict --json`'s row."""
    return f"{picture}: " + ", ".join(f"{t['class']} {t['probability'] * 100:.1f}%" for t in row["top"][:3])


def test_inspect_answers_as_predict_does(run, boot, capsys, tmp_path):
    on_paper, as_drawn = boot
    (row,), _ = predicted(capsys, run, on_paper)
    assert main(["inspect", str(run), str(on_paper), "--out", str(tmp_path / "auto")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == top_three(on_paper, row)
    assert lines[1] == NOTE.removeprefix("neuralab: ").rstrip()
    clf = load_classifier(run)
    seen = np.load(tmp_path / "auto" / "feature_maps.npz")["input"].astype(int)
    assert np.abs(seen - clf.load_images([as_drawn], invert="no")[0]).max() <= 1

    (row,), _ = predicted(capsys, run, on_paper, "--no-invert")
    assert main(["inspect", str(run), str(on_paper), "--out", str(tmp_path / "no"), "--no-invert"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == top_three(on_paper, row)
    assert not any("inverted" in line for line in lines)


def test_load_images_takes_auto_by_default_and_booleans_as_before(run, boot):
    on_paper, as_drawn = boot
    clf = load_classifier(run)
    drawn = clf.load_images([as_drawn], invert="no")
    pixels, inverted = clf.load_images([on_paper, as_drawn], return_inverted=True)
    assert inverted.tolist() == [True, False]
    assert np.abs(pixels[0].astype(int) - drawn[0]).max() <= 1 and np.array_equal(pixels[1], drawn[0])
    assert np.array_equal(clf.load_images(on_paper, invert=False), clf.load_images(on_paper, invert="no"))
    assert np.array_equal(clf.load_images(as_drawn, invert=True), 255 - drawn)
    with pytest.raises(ParameterError) as e:
        clf.load_images(on_paper, invert="maybe")
    assert e.value.parameter == "invert" and "choose auto" in str(e.value)


def test_the_web_app_and_the_command_line_give_one_answer(run, boot, capsys):
    on_paper, _ = boot
    (row,), _ = predicted(capsys, run, on_paper)
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


def test_a_run_trained_on_dark_on_light_pictures_never_inverts(paper_run, tmp_path, capsys):
    clf = load_classifier(paper_run)
    digit = tmp_path / "seven.png"
    seven = 255 - (_sklearn_digits().images[7] * 16).clip(0, 255).astype(np.uint8)
    Image.fromarray(np.asarray(Image.fromarray(seven).resize((64, 64), Image.Resampling.LANCZOS))).save(digit)
    pixels, inverted = clf.load_images([digit], return_inverted=True)
    assert not inverted.any() and np.array_equal(pixels, clf.load_images([digit], invert="no"))
    (row,), err = predicted(capsys, paper_run, digit)
    assert row["inverted"] is False and err == ""
    assert clf.preprocess.mean[0] > 0.5 and not clf.preprocess.expects_light_on_dark()
