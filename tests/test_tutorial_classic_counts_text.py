"""Tutorial 3's parameter table and its conclusions say what the zoo counts.

Its conclusion quoted torchvision's single-tower AlexNet (61.1M) as the slide's "60M", which
the tutorial's own text and the slide give to the 2012 network (61.0M), and said VGG16's
138.4M "held" the slide's 130M; its table shifted the 11-letter alexnet2012 row by a column.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from neuralab.models import ARCHITECTURES, parameters_at

jupytext = pytest.importorskip("jupytext")

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "03_classic_architectures.py"


def _cell(marker: str) -> str:
    cells = [c.source for c in jupytext.read(TUTORIAL).cells if marker in c.source]
    assert len(cells) == 1, marker
    return cells[0]


def test_the_parameter_table_keeps_every_row_in_its_columns():
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(_cell("introduced\")"), {"ARCHITECTURES": ARCHITECTURES, "parameters_at": parameters_at, "results": {}})
    header, *rows = printed.getvalue().splitlines()
    assert len(rows) == len(ARCHITECTURES)
    year = slice(header.index("year"), header.index("year") + 4)
    for row, arch in zip(rows, ARCHITECTURES.values()):
        assert row[year] == str(arch.year), row


def test_the_conclusions_quote_the_counts_the_zoo_gives():
    seen = " ".join(_cell("## What we saw").split())  # the text as read, whatever its line breaks
    millions = {name: f"{parameters_at(name, a.paper_input, a.paper_classes) / 1e6:.1f}M"
                for name, a in ARCHITECTURES.items()}
    assert f"{millions['alexnet2012']} for the 2012 AlexNet" in seen  # 61.0M, the slide's "60M"
    assert f"({millions['alexnet']} in torchvision's single-tower form)" in seen
    assert f"VGG16 has {millions['vgg16']}" in seen and "the slide's 130M is low" in seen
