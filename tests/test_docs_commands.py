"""What the docs show a newcomer is what neuralab does: the shell transcripts print what they
show, the run-directory reference names every field a run writes, and the links lead somewhere.

docs/api.md's examples run in tests/test_api.py, the tutorials in tests/test_tutorials.py and
docs/tensorboard.md's in tests/test_training_choices.py; this file covers the rest that can
drift without a word.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from helpers import idx_subset
from neuralab.cli import main

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
RUNS_MD = REPO / "docs" / "runs.md"


def transcripts() -> list[tuple[str, str, list[str]]]:
    """(doc, command, the lines shown after it) of every `$ neuralab ...` line in a fenced block."""
    found = []
    for doc in DOCS:
        for block in re.findall(r"^```[^\n]*\n(.*?)^```", doc.read_text(), re.M | re.S):
            for m in re.finditer(r"^\$ (neuralab [^\n]*)\n((?:(?!\$ )[^\n]*\n)*)", block, re.M):
                found.append((doc.relative_to(REPO).as_posix(), m[1], m[2].splitlines()))
    return found


def words(line: str) -> str:
    return " ".join(line.split())  # column widths may change; the words may not


@pytest.mark.parametrize("doc, command, shown", transcripts(), ids=lambda v: v if isinstance(v, str) else None)
def test_a_transcript_in_the_docs_prints_what_it_shows(doc, command, shown, capsys):
    """Each run of shown lines between "..." is printed as it stands, one line after the other."""
    try:
        code = main(shlex.split(command)[1:])
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    out, err = capsys.readouterr()
    printed = [words(line) for line in (out + err).splitlines()]
    assert code == (2 if any(" error: " in line for line in shown) else 0), (doc, command, err)
    chunks = [[]]
    for line in shown:
        if line.strip() == "...":
            chunks.append([])
        else:
            chunks[-1].append(words(line))
    start = 0
    for lines in filter(None, chunks):
        at = next((i for i in range(start, len(printed)) if printed[i:i + len(lines)] == lines), None)
        shown_here = "\n".join(lines)
        assert at is not None, f"{doc}: `{command}` no longer prints\n{shown_here}\n\nit prints\n{out}{err}"
        start = at + len(lines)


def section(text: str, heading: str) -> str:
    """``text`` from ``heading`` to the next heading of its level or above."""
    level = heading.split(" ")[0]
    start = text.index(f"\n{heading}\n")
    end = re.search(rf"^#{{1,{len(level)}}} ", text[start + len(heading) + 2:], re.M)
    return text[start:start + len(heading) + 2 + (end.start() if end else len(text))]


def row(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))


def undocumented(run: Path) -> list[str]:
    """The fields of ``run``'s config.json, model.json and metrics.jsonl that docs/runs.md does not name."""
    text = RUNS_MD.read_text()
    config, model = json.loads((run / "config.json").read_text()), json.loads((run / "model.json").read_text())
    metrics = set().union(*(json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()))
    config_row, metrics_row = row(text, "config.json"), row(text, "metrics.jsonl")
    model_section = section(text, "### model.json")
    missing = [f"config.json {k}" for k in config if f"`{k}`" not in config_row]
    # environment's fields are named in prose: "versions of neuralab, torch, ...; world size"
    missing += [f"config.json environment.{k}" for k in config["environment"]
                if k.replace("_", " ").lower() not in config_row.lower()]
    missing += [f"model.json {k}" for k in model if f"`{k}`" not in model_section]
    missing += [f"metrics.jsonl {k}" for k in metrics
                if f"`{k}`" not in metrics_row and not (k.startswith("val_") and "`val_*`" in metrics_row)]
    return missing


def test_docs_runs_md_names_every_field_of_a_classifier_run(fashion_mnist, tmp_path):
    from neuralab import ClassifierConfig, TrainConfig, train_classifier

    data = idx_subset(fashion_mnist, tmp_path / "fashion-mnist", 300, 100)
    config = ClassifierConfig(model="mlp", data="fashion-mnist", data_dir=str(data), train=TrainConfig(epochs=1))
    result = train_classifier(config, out=tmp_path / "run", verbose=False)
    assert undocumented(result.run_dir) == []


def test_docs_runs_md_names_every_field_of_a_forecaster_run(tmp_path):
    from neuralab import ForecastConfig, ModelConfig, WindowConfig, run_forecast

    config = ForecastConfig(data="seattle-weather", windows=WindowConfig(lookback=7),
                            model=ModelConfig(architecture="lstm", hidden=[4]), backtest_folds=2)
    config.train.epochs = 1
    result = run_forecast(config, out=tmp_path / "run", verbose=False)
    assert undocumented(result.run_dir) == []


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of ``markdown``'s headings (code blocks left out: their # lines are comments)."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    headings = re.findall(r"^#+ (.*)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_docs_links_lead_to_files_and_headings_that_exist():
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            linked = doc.parent / path if path else doc
            if not linked.exists() or (anchor and anchor not in anchors(linked.read_text())):
                broken.append(f"{doc.relative_to(REPO)}: {target}")
    assert broken == []
