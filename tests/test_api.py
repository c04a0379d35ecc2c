"""The public API: what `neuralab` and its packages export, and docs/api.md, whose examples run.

The examples run as a reader would run them, top to bottom in one folder, on a small MNIST
(the first 1,500 training and 300 test images of the real files) in the data cache.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import idx_subset

REPO = Path(__file__).resolve().parents[1]
API = REPO / "docs" / "api.md"
PACKAGES = ["neuralab", "neuralab.models", "neuralab.data", "neuralab.training", "neuralab.forecasting"]


def examples() -> list[tuple[str, str]]:
    """(section, code) of every ```python block of docs/api.md, in order."""
    text = API.read_text()
    found, section = [], ""
    for m in re.finditer(r"^## ([^\n]*)$|^```python\n(.*?)^```", text, re.M | re.S):
        if m[1]:
            section = m[1]
        else:
            found.append((section, m[2]))
    return found


def test_import_neuralab_and_its_configs_loads_no_torch():
    code = ("import sys, neuralab\nfrom neuralab.training import TrainConfig\nfrom neuralab.models import ARCHITECTURES\n"
            "from neuralab import NeuralabError, ParameterError\n"
            "print(*(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stderr[-2000:]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_is_there_and_is_the_owners(package):
    module = importlib.import_module(package)
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        value = getattr(module, name)
        assert name in dir(module)
        owner = getattr(value, "__module__", None)
        if owner and owner.startswith("neuralab."):  # a class or function: the module that defines it exports it
            assert getattr(importlib.import_module(owner), name) is value, (package, name)
    with pytest.raises(AttributeError):
        getattr(module, "no_such_name")


def test_a_submodule_does_not_hide_the_function_of_its_name():
    import neuralab.models
    import neuralab.models.summary as module  # noqa: F401  binds the submodule as Python's import system does

    assert callable(neuralab.models.summary) and neuralab.models.summary.__name__ == "summary"
    from neuralab.models import summary
    assert summary is neuralab.models.summary


def test_every_dotted_call_that_messages_and_docs_print_runs_after_import_neuralab():
    """`neuralab report RUN` prints neuralab.training.evaluate.write_report(...), export prints
    neuralab.forecasting.onnx.export_onnx: pasted after `import neuralab` alone, each must be found."""
    files = [*(REPO / "src" / "neuralab").rglob("*.py"), *(REPO / "docs").rglob("*.md"), REPO / "README.md"]
    # calls, and the functions handed to messages as strings (not one-dot markers such as "neuralab.as_on_disk")
    call = r"\bneuralab(?:\.[A-Za-z_]\w*)+(?=\()|(?<=[\"'])neuralab(?:\.[A-Za-z_]\w*){2,}(?=[\"'])"
    dotted = sorted({m for f in files for m in re.findall(call, f.read_text())})
    assert "neuralab.training.export.export_onnx" in dotted and "neuralab.forecasting.finished.write_report" in dotted
    code = ("import functools, neuralab, sys\nfor name in sys.argv[1:]:\n"
            "    try: functools.reduce(getattr, name.split('.')[1:], neuralab)\n"
            "    except AttributeError as e: print(name, e)")
    out = subprocess.run([sys.executable, "-c", code, *dotted], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout == "", (out.stdout, out.stderr[-2000:])


def test_every_name_that_dir_lists_in_neuralabs_packages_is_an_attribute():
    """dir(neuralab) listed __main__, the command's entry, which getattr refused."""
    import neuralab

    for package in (neuralab, neuralab.training, neuralab.models, neuralab.forecasting):
        missing = [name for name in dir(package) if not hasattr(package, name)]
        assert missing == [], (package.__name__, missing)


def test_every_name_the_docs_api_table_lists_is_importable_from_neuralab_and_its_package():
    """The table says each name comes from `neuralab` itself and from the package it names."""
    import neuralab

    rows = re.findall(r"^\| (`[^|]*`) \| `(neuralab[.\w]*)` \|", API.read_text(), re.M)
    assert len(rows) > 10
    for names, package in rows:
        for name in re.findall(r"`(\w+)`", names):
            assert getattr(neuralab, name) is getattr(importlib.import_module(package), name), (name, package)
            assert name in neuralab.__all__, name


def test_docs_api_names_every_top_level_export_with_an_example():
    import neuralab

    text, code = API.read_text(), "\n".join(c for _, c in examples())
    undocumented = [n for n in neuralab.__all__ if n != "__version__" and f"`{n}`" not in text]
    unexercised = [n for n in neuralab.__all__ if n != "__version__" and not re.search(rf"\b{n}\b", code)]
    assert not undocumented and not unexercised, (undocumented, unexercised)


@pytest.fixture
def small_fashion_cache(fashion_mnist, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    idx_subset(fashion_mnist, cache / "fashion-mnist", 1500, 300)
    monkeypatch.setenv("NEURALAB_DATA", str(cache))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_docs_api_examples_run(small_fashion_cache, capsys):
    from neuralab.training.device import cpu_threads

    blocks = examples()
    assert len(blocks) >= 10
    with cpu_threads(1):  # small models: one thread is fastest on a shared machine
        for i, (section, code) in enumerate(blocks):
            try:
                exec(compile(code, f"docs/api.md example {i + 1} ({section})", "exec"), {"__name__": "__main__"})
            except Exception as e:
                raise AssertionError(f"docs/api.md, example {i + 1} in '{section}' fails: {e!r}") from e
    out = capsys.readouterr().out
    assert "epochs=0: must be at least 1" in out and "138,357,544" in out
    # a notebook's module: refused without `model`, resumed and loaded with it, checked against the run
    assert "passing the module it was trained with" in out
    assert "tensor 'classifier.weight' is (10, 32) in the weights but (10, 16) in the model given" in out
    assert (small_fashion_cache / "runs" / "my-net" / "results.json").exists()
    assert (small_fashion_cache / "runs" / "lenet-fashion" / "report.html").exists()
    assert (small_fashion_cache / "runs" / "weather" / "forecast.csv").exists()
