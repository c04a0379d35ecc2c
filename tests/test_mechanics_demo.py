"""The workshop's worked examples, reproduced exactly (numbers from /work/shared/seed/workshop.txt)."""

from __future__ import annotations

import numpy as np
import pytest

from neuralab.mechanics.demo import EXAMPLES, worked


def example(key):
    (w,) = worked(key)
    return w


def test_dot_product_slide():
    w = example("dot-product")
    assert w.result.tolist() == [[19, 25], [37, 43]]
    text = "\n".join(w.lines)
    for step in ("sum = 0 + 1 + 6 + 12 = 19", "sum = 0 + 2 + 8 + 15 = 25", "sum = 0 + 4 + 12 + 21 = 37", "sum = 0 + 5 + 14 + 24 = 43"):
        assert step in text


def test_convolved_feature_slide():
    w = example("convolved-feature")
    assert w.result[0, 0] == 4  # the "4" on the slide
    assert w.result.tolist() == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    assert "sum = 1 + 0 + 1 + 0 + 1 + 0 + 0 + 0 + 1 = 4" in w.lines
    assert sum(line.startswith("window (") for line in w.lines) == 9  # every step shown


def test_stride_2_on_the_same_image():
    assert example("stride").result.tolist() == [[4, 4], [2, 4]]


def test_padding_slide_grid():
    grid = example("padding").result
    assert grid.shape == (9, 9)
    assert grid[2:7, 2:7].tolist() == [[3, 5, 9, 1, 10], [13, 2, 4, 6, 11], [16, 24, 9, 13, 1], [7, 1, 6, 8, 3], [8, 4, 9, 1, 9]]
    assert not grid[:2].any() and not grid[7:].any() and not grid[:, :2].any() and not grid[:, 7:].any()


def test_depth_gives_the_slides_minus_25():
    w = example("depth")
    assert w.result == -25
    assert "red sum = 308" in w.lines and "green sum = -498" in w.lines and "blue sum = 164" in w.lines
    assert "output (0,0) = 308 - 498 + 164 + bias 1 = -25" in w.lines


def test_output_size_formula_on_the_slides_settings():
    w = example("output-size")
    assert w.result == [2, 3, 2, 7, 5, 26, 28]
    assert any("W_in= 5 K=3 P=2 S=1: (5 - 3 + 2x2)/1 + 1 = 7" in line for line in w.lines)
    assert any("1,216" in line for line in w.lines)


def test_lenet5_parameters():
    w = example("lenet5")
    assert w.result == 61706  # the slide's "Total parameters: 60k"
    assert any("Conv2D(120, (5,5))" in line and "1x1x120" in line for line in w.lines)


def test_lenet5_lists_the_slides_layers_in_order():
    """The slide's model.add lines (l. 517-525); the Flatten() between Conv2D(120) and Dense(84) was left out."""
    slide = ["Conv2D(6, (5,5))", "AveragePooling2D((2,2))", "Conv2D(16, (5,5))", "AveragePooling2D((2,2))",
             "Conv2D(120, (5,5))", "Flatten()", "Dense(84)", "Dense(10)"]
    rows = [line.split()[0] if not line.startswith("Conv2D") else " ".join(line.split()[:2]) for line in example("lenet5").lines]
    assert rows[1:-1] == slide
    flatten = example("lenet5").lines[slide.index("Flatten()") + 1]
    assert flatten.split()[1:] == ["120", "params", "0"]  # 1x1x120 laid out as 120 values, no weights


def test_pooling_illustration():
    w = example("pooling")
    assert w.result["max"].tolist() == [[13, 9], [24, 13]]
    assert w.result["avg"].tolist() == [[5.75, 5], [12, 9]]


def test_every_example_has_a_slide_and_lines():
    for w in worked():
        assert w.key in EXAMPLES and w.slide and w.lines


@pytest.mark.parametrize("key", ["dot-product", "convolved-feature"])
def test_slides_arrays_are_exact_integers(key):
    assert np.array_equal(example(key).result, np.rint(example(key).result))


def test_docs_mechanics_names_the_slide_each_demo_prints():
    """`conv demo --list` and docs/mechanics.md's table name the same slide for every example."""
    import re
    from pathlib import Path

    from neuralab.mechanics.demo import worked

    table = (Path(__file__).resolve().parents[1] / "docs" / "mechanics.md").read_text()
    documented = dict(re.findall(r'^\| `([\w-]+)` \| "([^"]+)" \(l\. ', table, re.M))
    printed = {w.key: w.slide for w in worked()}
    assert set(documented) == set(printed)
    for key, slide in printed.items():
        assert documented[key].startswith(slide), (key, slide, documented[key])
