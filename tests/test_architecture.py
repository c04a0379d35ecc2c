"""The layering of src/neuralab, read from every module's imports (ast, so imports inside
functions count too, and names a package exports lazily are followed to their module).

The rules are the architecture's (errors and files at the ground; data and mechanics;
models; runs; reports; training; forecasting; web; cli): a part imports only parts below it,
never the pairs the architecture forbids, and no two packages import each other."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# part -> its height; a module may import only its own part or parts strictly lower
LAYERS = {
    "Ground": 0,       # errors.py, files.py, _lazy.py, the package's own __init__
    "Data": 1,         # images and series; where files come from
    "Mechanics": 1,    # the lesson: NumPy only
    "Models": 2,       # one file per architecture
    "Keras": 3,        # Keras files in, native PyTorch modules out (uses models)
    "Runs": 4,         # the run-directory format
    "Reports": 5,      # figures and HTML pages from plain data
    "Training": 6,
    "Forecasting": 7,
    "Web": 8,
    "CLI": 9,
}
# the architecture's "never" arrows, each with its reason (also implied by the heights; kept
# by name so that a change of heights cannot let one through unnoticed)
NEVER = {
    ("Mechanics", "Models"): "the lesson stands alone",
    ("Mechanics", "Training"): "the lesson stands alone",
    ("Mechanics", "Reports"): "the lesson stands alone",
    ("Reports", "Training"): "a report is drawn from plain data, not from the trainer",
    ("Reports", "Forecasting"): "a report is drawn from plain data",
    ("Models", "Reports"): "a model draws nothing",
    ("Models", "Training"): "a model knows no trainer",
    ("Data", "Models"): "data knows no model",
    ("Training", "Web"): "the library knows no page",
    ("Forecasting", "Web"): "the library knows no page",
    ("Training", "CLI"): "the library knows no flags",
    ("Forecasting", "CLI"): "the library knows no flags",
    ("Web", "CLI"): "the app knows no flags",
}
PARTS = {"errors": "Ground", "files": "Ground", "_lazy": "Ground", "runs": "Runs", "run_list": "Runs",
         "safetensors_header": "Runs", "data": "Data",
         "mechanics": "Mechanics", "models": "Models", "keras": "Keras", "reports": "Reports",
         "training": "Training", "forecasting": "Forecasting", "web": "Web", "cli": "CLI", "__main__": "CLI"}


def part(module: str) -> str:
    """neuralab.training.classify -> Training; neuralab -> Ground."""
    names = module.split(".")
    if len(names) == 1:
        return "Ground"
    assert names[1] in PARTS, f"{module}: a new top-level module; give it a place in LAYERS"
    return PARTS[names[1]]


def package(module: str) -> str:
    """The package a module belongs to for the cycle check: neuralab.training, neuralab.runs, ..."""
    return ".".join(module.split(".")[:2])


def modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "neuralab").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def lazy_exports(path: Path) -> dict[str, str]:
    """name -> module of a package's ``exports(__name__, {...})`` (see neuralab._lazy)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "exports" and len(node.args) == 2:
            return eval(compile(ast.Expression(node.args[1]), str(path), "eval"), {"dict": dict})  # our own source
    return {}


def imports() -> list[tuple[str, str, int]]:
    """(importer, imported module, line) for every import of a neuralab module, anywhere in a file."""
    known = modules()
    exported = {name: lazy_exports(path) for name, path in known.items() if path.name == "__init__.py"}
    edges = []
    for name, path in known.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                targets = []
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    if target in known:  # from neuralab import runs: the module itself
                        targets.append(target)
                    elif alias.name in exported.get(base, {}):  # a lazy export: where it really lives
                        targets.append(exported[base][alias.name])
                    else:
                        targets.append(base)
            else:
                continue
            edges += [(name, t, node.lineno) for t in targets if t.split(".")[0] == "neuralab"]
    return edges


EDGES = imports()


def test_the_scan_sees_the_imports_it_must():
    """The scan follows imports inside functions, relative ones and lazy exports."""
    seen = {(a, b) for a, b, _ in EDGES}
    assert ("neuralab.cli.train", "neuralab.training.classify") in seen  # inside a function
    assert ("neuralab.training.classify", "neuralab.runs") in seen       # from neuralab import runs
    assert any(a.startswith("neuralab.web") and b == "neuralab.training.trained_classifier" for a, b in seen)  # via exports
    assert len({a for a, _, _ in EDGES}) > 60


def test_every_import_goes_down_the_layers():
    upward = [f"{a}:{line} imports {b} ({part(a)} -> {part(b)})" for a, b, line in EDGES
              if part(a) != part(b) and LAYERS[part(b)] >= LAYERS[part(a)]]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


@pytest.mark.parametrize("pair", NEVER, ids=lambda p: f"{p[0]}->{p[1]}")
def test_the_forbidden_arrows_are_absent(pair):
    found = [f"{a}:{line} imports {b}" for a, b, line in EDGES if (part(a), part(b)) == pair]
    assert not found, f"{NEVER[pair]}: " + "; ".join(found)


def test_no_two_packages_import_each_other():
    graph = defaultdict(set)
    for a, b, _ in EDGES:
        if package(a) != package(b) and package(a) != "neuralab":  # the top package's re-exports are a facade
            graph[package(a)].add(package(b))
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles between packages: " + "; ".join(cycles)


def test_the_mechanics_need_only_numpy():
    """The lesson runs without torch: no mechanics module imports it, even inside a function."""
    for name, path in modules().items():
        if part(name) != "Mechanics":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in ("torch", "tensorflow", "keras") for n in names), f"{name}: {names}"
