"""Running a user's Python file for its model, with their consent: ``model="net.py[:NAME]"``.

``load_python`` runs the file as a fresh module (``run_file``) and takes the model it defines: an
object, a class or a function called without arguments. The files beside it that it imports
(``local_imports``) are found so that a run can keep them; a package beside it is one it cannot
(``package_beside``). Torch's process-wide defaults are put back once the code has run
(``torch_defaults_kept``), and the generators are seeded as a run seeds them (``seeded``,
``seed_just_set``), so that the code builds the same network again when a run is rebuilt.

It is one module apart from where a model comes from (training.source) because it is the only
place neuralab executes code it did not write: running a file named as ``model`` is what the user
asked for; training.source decides when a run's copy of it may run (``trust_code``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.abc
import importlib.util
import inspect
import sys
import traceback
import warnings
from pathlib import Path

from neuralab.errors import NeuralabError, shell_word  # a model's name as typed back, in a shell or in Python
from neuralab.training.config import MAX_SEED

MODULE_PREFIX = "neuralab_model_"   # sys.modules's name for a model file run (run_file), before its hash
RUNNERS = {"run_path": "runpy.run_path", "run_module": "runpy.run_module", "exec": "exec", "execfile": "exec"}
MAX_CODE = 4 * 2**20                # bytes: a model file is a page of Python, not a data file


def load_python(path: Path, name: str | None = None, imports: dict | None = None,
                checked: bytes | None = None, code: bytes | None = None) -> tuple[object, str]:
    """Run the Python file ``path`` and return the model it defines and its name: NAME when
    given (an object, a class or a function, called without arguments), else the module-level
    ``model``, else its one Keras model or nn.Module instance, else its one nn.Module class.
    ``imports``: the files beside it that it imports (``local_imports``), name -> bytes, which
    run as given. ``checked``: the file's bytes as a caller checked them (a run's copy, against
    its SHA-256): those run, and nothing else from its folder (``run_file``). ``code``: the
    file's bytes as the caller read them (``read_code``), which run in its place, its folder
    its neighbours' as ever: the caller keeps the bytes that ran, however the file changes.
    Torch's process-wide defaults are as they were before once it returns (``torch_defaults_kept``)."""
    with torch_defaults_kept() as changed:
        obj, name = _defined(path, name, imports, checked, code)
    return in_kept_dtype(obj, path, changed), name


@contextlib.contextmanager
def torch_defaults_kept():
    """Torch's process-wide defaults put back as they were once the user's code has run: the
    default dtype and device and whether autograd records, which a model file may set at its
    top (torch.set_default_dtype(torch.float64)), and which would otherwise outlast it in the
    caller's session and in all that neuralab computes after it (the run's data, its ONNX
    file). Yields a dict that then holds "dtype": (the code's, the one put back) where the
    code set another default dtype."""
    import torch

    dtype, device, grad = torch.get_default_dtype(), torch.get_default_device(), torch.is_grad_enabled()
    changed: dict = {}
    try:
        yield changed
    finally:
        if torch.get_default_dtype() != dtype:
            changed["dtype"] = (torch.get_default_dtype(), dtype)
            torch.set_default_dtype(dtype)
        if torch.get_default_device() != device:
            # None, not "cpu": no default device is torch's own state, and costs nothing per tensor
            torch.set_default_device(None if device == torch.device("cpu") else device)
        torch.set_grad_enabled(grad)


def in_kept_dtype(obj, where, changed: dict):
    """``obj``, built by code that set another default dtype (``changed``, from
    torch_defaults_kept), with its weights of that dtype cast to the one put back, and one
    warning saying so: neuralab's data are float32, and so is the ONNX file's input."""
    if "dtype" not in changed:
        return obj
    import torch

    theirs, kept = (str(t).removeprefix("torch.") for t in changed["dtype"])
    said = (f"{where}: sets torch's default dtype to {theirs} (torch.set_default_dtype), which neuralab puts back "
            f"to {kept} once the model is built, so that it does not outlast the file in your session")
    if isinstance(obj, torch.nn.Module):
        cast = any(t.dtype == changed["dtype"][0] for t in [*obj.parameters(), *obj.buffers()])
        if cast:
            obj.to(changed["dtype"][1])
        said += f"; the model's {theirs} weights are cast to {kept}" if cast else f"; the model is {kept}"
    warnings.warn(said)
    return obj


def _defined(path: Path, name: str | None, imports: dict | None, checked: bytes | None = None,
             code: bytes | None = None) -> tuple[object, str]:
    """load_python's model and its name, as it finds them."""
    # The user's folder is on sys.path while the file runs (it may import its neighbours, as
    # `python FILE.py` lets it) and while the constructor runs too, as in plain Python, where it is
    # there while the file's module is used: the constructor may import a neighbour
    # (importlib.import_module("helper")), which the file's import statements do not name
    folder = str(Path(path).resolve().parent)
    if checked is None:
        sys.path.insert(0, folder)
    try:
        return _found(path, name, run_file(path, imports, checked, code), checked if checked is not None else code)
    finally:
        with contextlib.suppress(ValueError):
            if checked is None:
                sys.path.remove(folder)


def _found(path: Path, name: str | None, module, code: bytes | None = None) -> tuple[object, str]:
    """The model ``module`` (``path``'s, run from its bytes ``code``, where the caller read them)
    defines and its name, ``load_python``'s."""
    found = {k: v for k, v in vars(module).items() if not k.startswith("_")}
    if name is not None:
        if name not in found:
            defined = ", ".join(_candidates(module, found)) or "no model"
            raise NeuralabError(f"{path}: no {name!r} in the file (it defines: {defined})")
        return materialise(path, name, found[name]), name
    if "model" in found and (is_model(found["model"]) or _is_module_class(found["model"])
                             or inspect.isfunction(found["model"])):
        return materialise(path, "model", found["model"]), "model"
    instances = [k for k, v in found.items() if is_model(v)]
    classes = [k for k, v in found.items() if _is_module_class(v) and v.__module__ == module.__name__]
    for picks in (instances, classes):
        if len(picks) == 1:
            return materialise(path, picks[0], found[picks[0]]), picks[0]
        top = _built_from_the_others(path, {k: found[k] for k in picks}, code) if picks is classes else None
        if top is not None:
            warnings.warn(f"{path}: defines several models ({', '.join(picks)}); training {top}, the one built from "
                          f"the others: name another as {shell_word(f'{path}:NAME')}")
            return materialise(path, top, found[top]), top
        if len(picks) > 1:
            builders = [shell_word(f"{path}:{k}") for k in _candidates(module, found)
                        if inspect.isfunction(found[k]) and _needs_no_arguments(found[k])]
            also = f", or a function that builds one: {' or '.join(builders)}" if builders else ""
            raise NeuralabError(f"{path}: defines several models ({', '.join(picks)}); name one: "
                                f"{shell_word(f'{path}:NAME')}{also}")
    if "model" in found:  # a placeholder (model = None) beside the real one is passed over; alone, it is the mistake
        return materialise(path, "model", found["model"]), "model"
    # A function is called only when named: which of a file's functions builds the model, and
    # which builds a block of it, only the user knows
    functions = [shell_word(f"{path}:{k}") for k in _candidates(module, found) if inspect.isfunction(found[k])]
    if functions:
        raise NeuralabError(f"{path}: defines no model object or class, only functions; name the one that returns "
                            f"the model: {' or '.join(functions)}")
    raise NeuralabError(f"{path}: defines no model; define a Keras model or a torch.nn.Module (an instance named "
                        f"model, a class, or a function returning one, chosen with {shell_word(f'{path}:NAME')})")


def local_imports(path: Path, code: bytes | None = None) -> dict | None:
    """The Python files beside ``path`` that it imports, and those they import, as {file name:
    bytes}: a run keeps them with the model's file, so that the file runs again from the run
    alone. None where it imports a package beside it (a folder): a run does not keep one, and
    cannot rebuild the model (``package_beside`` says so). ``code``: the file's bytes, as read
    once (``read_code``)."""
    found, package = imported_beside(path, code)
    return None if package else found


def package_beside(path: Path) -> str | None:
    """Why a run cannot keep the code in ``path``: the package beside it that it imports (or a
    file beside it that it imports does), or the package whose __init__.py it is where it imports
    with dots, in words; None where it imports none."""
    return imported_beside(path)[1]


def imported_beside(path: Path, code: bytes | None = None) -> tuple[dict, str | None]:
    """``local_imports``'s files, and ``package_beside``'s reason; ``code``: ``path``'s bytes."""
    import ast

    path = Path(path)
    if path.name == "__init__.py" and _imports_with_dots(path, code):  # they take its package's other files
        return {}, f"{path} is a package's __init__.py, and a run does not keep the package"
    folder, found, todo = folder_of(path), {}, [path]
    while todo:
        current = todo.pop()
        try:
            tree = ast.parse(code if current == path and code is not None else current.read_bytes(), str(current))
        except (SyntaxError, ValueError, OSError):
            continue  # run_file says what is wrong with the model's file; a neighbour's error shows when it runs
        except (RecursionError, MemoryError):  # a run's model.py is parsed before `trust_code` is asked for
            raise _too_nested(current) from None
        for name in sorted(_imported_names(tree)):
            beside = folder / f"{name}.py"
            if _package_beside(folder, name) and not beside.is_file():
                by = path.name if current == path else f"{current.name}, which {path.name} imports,"
                return found, f"{by} imports {name}, a package (a folder) beside it, which a run does not keep"
            if not beside.is_file() or beside.name in found or beside.resolve() == path.resolve():
                continue
            if beside.stat().st_size > MAX_CODE:
                raise NeuralabError(f"{beside}: imported by the model, and larger than {MAX_CODE // 2**20} MB")
            found[beside.name] = beside.read_bytes()
            todo.append(beside)
    return found, None


def _imports_with_dots(path: Path, code: bytes | None) -> bool:
    """Whether the file ``path`` (its bytes ``code``, where read) has a relative import (from .net
    import Net); one that cannot be read has none that counts: run_file says what is wrong."""
    import ast

    try:
        tree = ast.parse(path.read_bytes() if code is None else code, str(path))
    except (SyntaxError, ValueError, OSError):
        return False
    except (RecursionError, MemoryError):
        raise _too_nested(path) from None
    return any(isinstance(n, ast.ImportFrom) and n.level > 0 for n in ast.walk(tree))


def _package_beside(folder: Path, name: str) -> bool:
    """Whether the folder ``name`` in ``folder`` is the package its files import as ``name``:
    one with __init__.py, or one without (a namespace package, which Python imports from the
    model's folder where no module or package of that name comes first elsewhere on sys.path)."""
    if (folder / name / "__init__.py").is_file():
        return True
    if not (folder / name).is_dir() or name in sys.builtin_module_names or name in sys.stdlib_module_names:
        return False
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return True
    return spec is None or spec.origin in (None, "namespace") or Path(spec.origin).resolve().is_relative_to(
        folder.resolve())


def imported_by(files: dict, name: str) -> bool:
    """Whether one of ``files`` (name -> bytes) imports the module ``name`` (a helper importing
    the model's file back: ``from net import CLASSES``)."""
    import ast

    for code in files.values():
        with contextlib.suppress(SyntaxError, ValueError, RecursionError, MemoryError):
            if name in _imported_names(ast.parse(code)):
                return True
    return False


@contextlib.contextmanager
def imported_otherwise(path: Path, code: bytes, imports: dict | None):
    """Yields a list that, once the block has run the model file ``path`` (its bytes ``code``,
    and ``imports``, those of the files beside it that it imports), holds the modules of its
    folder that the code imports other than by an import statement, Python's own import, which
    a run neither sees nor keeps: (name, None) for each. Those are the modules the block
    imported from the folder (by any call: importlib.import_module under another name, getattr,
    a name the code computes), and those a call names in a string (importlib.import_module(
    "helper"), __import__("helper")), which forward may import only later. Only a module found
    through the folder itself counts (a .py file or a package directly in it), or (name, its
    file) one that this process imported before from a folder no longer on sys.path (another
    model's, whose helper of that name the call gets): one found through PYTHONPATH or a site
    folder, even below the model's folder, is found so again when the run is rebuilt. Code under
    if __name__ == "__main__":, which neuralab does not run, counts for none. Where none is
    found so, a call whose name is no string in the code (importlib.import_module(NAME)) that
    could import a module of the folder not kept (a .py file or a package there), where no run
    of the block tells: it may run only later (in forward), or this process held such a module
    before (which the call takes from sys.modules), and code read from a file and run
    (runpy.run_path, exec(open(...).read())), which no reading of the code follows: (the call,
    "") for each of the first, (the call, the function that runs the file: runpy.run_path,
    runpy.run_module, exec) for each of the others; runpy.run_module only where the module it
    names is the folder's (the standard library's or a package's is found so again)."""
    texts = (code, *(imports or {}).values())
    found: list[tuple[str, str | None]] = []
    before = dict(sys.modules)
    try:
        yield found
    finally:
        import ast

        called, stated, computed, runs = set(), set(), [], []  # statements' imports are kept, or said (package_beside)
        for text in texts:
            with contextlib.suppress(SyntaxError, ValueError, RecursionError, MemoryError):
                tree = ast.parse(text)
                stated |= _imported_names(tree)
                called |= _imported_by_calls(tree)
                computed += [c for c in _calls_naming_no_string(tree) if c not in computed]
                runs += [c for c in _calls_running_files(tree) if c not in runs]
        folder, on_path = Path(path).resolve().parent, set()
        for p in sys.path:
            with contextlib.suppress(OSError, ValueError, TypeError):
                on_path.add(Path(p or ".").resolve())
        left_out = stated | {Path(path).stem, "neuralab"}
        if imports is not None:  # else a package beside it is imported, which package_beside says
            called |= _imported_as_it_ran(before, folder, left_out)
        for top in sorted(called - left_out):
            through = _found_through(sys.modules.get(top), folder / top)
            if through == folder:
                found.append((top, None))
            elif through is not None and through not in on_path:
                found.append((top, sys.modules[top].__file__ or str(through / top)))
        if not found:
            kept = left_out | {Path(n).stem for n in imports or {}}
            could = [call for call, unseen in computed if unseen or _imported_before(before, folder, kept)] \
                if _importable_beside(folder, kept) else []
            found.extend([(call, "") for call in could] + [
                (call, RUNNERS[runner]) for call, runner, named in runs
                if named is None or _found_through(sys.modules.get(named), folder / named) == folder])


def _imported_as_it_ran(before: dict, folder: Path, left_out: set[str]) -> set[str]:
    """The top-level modules of ``folder`` (found through it: a .py file or a package directly in
    it) that sys.modules holds now and did not hold as ``before``, but those ``left_out`` and the
    modules neuralab runs model files as: what the code imported as it ran, however it called
    the import. One imported before is the caller's own (a notebook's module beside the model),
    under a new name too: `import multiprocessing` names the caller's __main__ __mp_main__."""
    tops, held = set(), {id(m) for m in before.values()}
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        if before.get(name) is module or name.startswith(MODULE_PREFIX) or top in left_out or top in tops \
                or id(module) in held or _dunder(top):
            continue
        if _found_through(sys.modules.get(top, module), folder / top) == folder:
            tops.add(top)
    return tops


def _imported_before(before: dict, folder: Path, left_out: set[str]) -> bool:
    """Whether sys.modules held a module of ``folder`` (found through it) as ``before``, but those
    ``left_out``: a call may take it from there as the model is built, which no new name shows."""
    for name, module in before.items():
        top = name.partition(".")[0]
        if top in left_out or name.startswith(MODULE_PREFIX) or _dunder(top):
            continue
        with contextlib.suppress(Exception):  # a module object of any kind: a lazy one's attributes may raise
            if _found_through(module, folder / top) == folder:
                return True
    return False


def _dunder(name: str) -> bool:
    """Whether ``name`` is one Python gives a module itself (__main__, multiprocessing's __mp_main__),
    never a file's."""
    return name.startswith("__") and name.endswith("__")


def _importable_beside(folder: Path, left_out: set[str]) -> bool:
    """Whether ``folder`` holds a module Python could import from it but those ``left_out`` (the
    model file's, the files the run keeps): a .py file, or a package, a folder with __init__.py.
    A folder without one is data, or runs (neuralab's own runs/ beside the model), far more often
    than a namespace package."""
    with contextlib.suppress(OSError):
        return any(p.stem.isidentifier() and p.stem not in left_out
                   and (p.suffix == ".py" and p.is_file() or (p / "__init__.py").is_file())
                   for p in folder.iterdir())
    return False


def _imported_by_calls(tree) -> set[str]:
    """The top-level modules a parsed file imports by a call naming them in a string
    (importlib.import_module("helper"), __import__("helper.sub")); relative names are left out."""
    return {named.partition(".")[0] for _, named in _import_calls(tree)
            if isinstance(named, str) and not named.startswith(".")}


def _calls_naming_no_string(tree) -> list[tuple[str, bool]]:
    """The calls of a parsed file that import a module whose name is no string in the code
    (importlib.import_module(NAME), __import__(f"{prefix}_net")), each as written (shortened),
    with whether it may not run as the file builds its model: it lies in a function other than
    a class's __init__ (forward, say)."""
    built = _run_as_built(tree)
    return [(_as_written(call), id(call) not in built) for call, named in _import_calls(tree)
            if not isinstance(named, str)]


def _run_as_built(tree) -> set[int]:
    """The ids of the nodes of a parsed file that run as the file builds its model: those at its
    top level and in a class's __init__, the constructor, outside any other function (forward,
    which may run only after, or never). What ran so imported what it imports as it ran, which
    imported_otherwise sees."""
    import ast

    ids, todo = set(), [(tree, None)]
    while todo:
        node, parent = todo.pop()
        if isinstance(node, ast.Lambda) or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not (
                node.name == "__init__" and isinstance(parent, ast.ClassDef)):
            continue
        ids.add(id(node))
        todo += [(child, node) for child in ast.iter_child_nodes(node)]
    return ids


def _calls_running_files(tree) -> list[tuple[str, str, str | None]]:
    """The calls of a parsed file that run the code of another file, not by importing it
    (runpy.run_path(...), runpy.run_module(...), exec(open(...).read())), each as (the call as
    written, shortened; the function it calls, a key of RUNNERS; the top-level module that
    runpy.run_module names in a string, else None)."""
    import ast

    calls = []
    for n in _run_nodes(tree):
        if not isinstance(n, ast.Call):
            continue
        called = _called(n)
        if called in ("run_path", "run_module") or called in ("exec", "execfile") and n.args and any(
                isinstance(c, ast.Call) and _called(c) in ("open", "read", "read_text", "read_bytes")
                for c in ast.walk(n.args[0])):
            arg = n.args[0] if n.args else next((k.value for k in n.keywords if k.arg == "mod_name"), None)
            named = arg.value.partition(".")[0] if called == "run_module" and isinstance(arg, ast.Constant) and \
                isinstance(arg.value, str) else None
            calls.append((_as_written(n), called, named))
    return calls


def _as_written(call) -> str:
    import ast

    text = " ".join(ast.unparse(call).split())
    return text if len(text) <= 60 else f"{text[:57]}..."


def _import_calls(tree) -> list[tuple[object, object]]:
    """The calls of import_module or __import__ in a parsed file (under another name too: `from
    importlib import import_module as im`, getattr(importlib, "import_module")), each with the
    name it imports: the string where the code gives one (an f-string without a field is one
    too), else None."""
    import ast

    importers = {"import_module", "__import__"}
    importers |= {a.asname for n in _run_nodes(tree) if isinstance(n, ast.ImportFrom)
                  for a in n.names if a.name in importers and a.asname}
    calls = []
    for n in _run_nodes(tree):
        if not isinstance(n, ast.Call) or _called(n) not in importers:
            continue
        arg = n.args[0] if n.args else next((k.value for k in n.keywords if k.arg == "name"), None)
        if arg is None:
            continue
        if isinstance(arg, ast.JoinedStr) and all(isinstance(v, ast.Constant) for v in arg.values):
            arg = ast.Constant("".join(v.value for v in arg.values))
        calls.append((n, arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None))
    return calls


def _called(call) -> str | None:
    """The name of what ``call`` calls: f(...) and m.f(...) call f, as getattr(m, "f")(...) does."""
    import ast

    func = call.func
    if isinstance(func, ast.Call) and getattr(func.func, "id", None) == "getattr" and len(func.args) >= 2 \
            and isinstance(func.args[1], ast.Constant) and isinstance(func.args[1].value, str):
        return func.args[1].value
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _run_nodes(tree):
    """The nodes of a parsed file but those under if __name__ == "__main__": at its top, code
    for `python FILE.py` that neuralab does not run."""
    import ast

    def main_only(node) -> bool:
        test = node.test
        return isinstance(node, ast.If) and isinstance(test, ast.Compare) and len(test.ops) == 1 and \
            isinstance(test.ops[0], ast.Eq) and {ast.dump(test.left), ast.dump(test.comparators[0])} == \
            {ast.dump(ast.Name("__name__", ast.Load())), ast.dump(ast.Constant("__main__"))}

    for top in tree.body:
        if isinstance(top, ast.If) and main_only(top):
            yield top.test
            for node in top.orelse:
                yield from ast.walk(node)
        else:
            yield from ast.walk(top)


def _found_through(module, beside: Path) -> Path | None:
    """The folder on sys.path that ``module`` was found through (a package's: the folder holding
    its directory), resolved; None for a built-in, a library's, or one not imported where no
    file ``beside`` (a model folder's path of its name, without the ending) stands for it."""
    if module is None:  # not imported yet (a call in forward): the model's folder gives it where it holds it
        return beside.parent.resolve() if beside.with_suffix(".py").is_file() or beside.is_dir() else None
    file = getattr(module, "__file__", None)
    places = [Path(file)] if isinstance(file, str) else \
        [Path(p) / "__init__.py" for p in getattr(module, "__path__", None) or ()]  # a namespace package
    for place in places:
        with contextlib.suppress(OSError, ValueError):
            if in_a_library(place):
                return None
            place = place.resolve()
            return place.parent.parent if place.name == "__init__.py" else place.parent
    return None


def not_imported_by_statement(path: Path, names: list[tuple[str, str | None]]) -> str:
    """``imported_otherwise``'s ``names``, in words: why a run cannot keep the code in ``path``."""
    beside = [n for n, file in names if file is None]
    before = [f"{n} ({file}, imported before from another folder, which it gets in place of its own)"
              for n, file in names if file and file not in RUNNERS.values()]
    named = [f"the module that {call} names as it runs" for call, file in names if file == ""]
    ran = [f"the file that {call} runs" for call, file in names if file in RUNNERS.values()]
    said = [f"{', '.join(beside)} from beside it"] if beside else []
    means = ["importlib.import_module, __import__"] if len(ran) < len(names) else []
    means += list(dict.fromkeys(file for _, file in names if file in RUNNERS.values()))  # those it calls, once each
    return (f"{Path(path).name} imports {', '.join(said + before + named + ran)} other than by an import statement "
            f"({', '.join(means)}), which a run does not keep")


def _imported_names(tree) -> set[str]:
    """The top-level modules a parsed file's import statements name (absolute imports)."""
    import ast

    names = {a.name.partition(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module.partition(".")[0] for n in ast.walk(tree)
                    if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module}


def imported_elsewhere(path: Path, imports: dict, code: bytes | None = None) -> dict[str, str]:
    """The user's own modules that the model file ``path``, or a file beside it that it imports
    (``imports``, name -> bytes), imports from elsewhere on sys.path (PYTHONPATH, the folder
    Python was started in): name -> its file (a package without __init__.py: its folder). A run
    keeps none of them, so its resume or reload runs them as they are by then. The standard
    library's modules and installed packages' (a distribution's, editable ones too) are no user's
    code to keep."""
    import ast

    names = set()
    for text in (path.read_bytes() if code is None else code, *imports.values()):
        with contextlib.suppress(SyntaxError, ValueError, RecursionError, MemoryError):
            names |= _imported_names(ast.parse(text))
    beside = {Path(n).stem for n in imports} | {path.stem}
    found, installed, own = {}, None, folder_of(path).resolve()
    for name in sorted(names - beside - set(sys.builtin_module_names) - set(sys.stdlib_module_names)):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):  # ValueError: imported without a spec (a __main__)
            continue
        origin = getattr(spec, "origin", None)
        if not origin:  # a namespace package (a folder without __init__.py): its folders say where it is
            origin = next((p for p in getattr(spec, "submodule_search_locations", None) or ()
                           if Path(p).is_dir() and not in_a_library(Path(p))), None)
            if origin is None:
                continue
        elif not Path(origin).is_file() or in_a_library(Path(origin)):
            continue
        if Path(origin).resolve().is_relative_to(own):  # beside it: imported_beside's, kept or said there
            continue
        if installed is None:  # 0.2 s, asked only for a module no library folder holds
            from importlib.metadata import packages_distributions

            installed = packages_distributions()
        if name not in installed:
            found[name] = origin
    return found


def in_a_library(path: Path) -> bool:
    """Whether the file ``path`` is the standard library's or an installed package's (its
    folders, sysconfig's), not a user's own code."""
    import sysconfig

    libraries = {sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")} - {None}
    return any(Path(path).resolve().is_relative_to(Path(p).resolve()) for p in libraries)


def folder_of(path: Path) -> Path:
    """The folder whose files the Python file ``path`` imports as its neighbours: the one its
    link points into where ``path`` is a symbolic link, as Python's own sys.path for a script
    is (run_file puts it there); as the user wrote it where that names the same folder."""
    path = Path(path)
    real = path.resolve().parent
    return path.parent if path.parent.resolve() == real else real


def _too_nested(path: Path) -> NeuralabError:
    """Python's parser gives up on an expression nested thousands deep ("1+1+...", "---1") with
    RecursionError or MemoryError."""
    return NeuralabError(f"{path}: nested too deeply for Python to parse; write the model as ordinary code")


def read_code(path: Path) -> bytes:
    """The bytes of the model file ``path``, refused in one line where it is none or too large."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise NeuralabError(f"{path}: file not found") from None
    if not path.is_file() or size > MAX_CODE:
        raise NeuralabError(f"{path}: not a Python file of at most {MAX_CODE // 2**20} MB")
    code = path.read_bytes()
    if len(code) > MAX_CODE:  # it grew since
        raise NeuralabError(f"{path}: not a Python file of at most {MAX_CODE // 2**20} MB")
    return code


def module_name(code: bytes) -> str:
    """sys.modules's name for a module run from ``code``, by its bytes: where inspect and pickle
    find its classes. The same bytes run again (the same run loaded twice) take the name over,
    so a process keeps one copy of each code however often it loads it."""
    return f"{MODULE_PREFIX}{hashlib.sha256(code).hexdigest()[:16]}"


def run_file(path: Path, imports: dict | None = None, checked: bytes | None = None, code: bytes | None = None):
    """Execute ``path`` as a fresh module; its errors become one line naming file:line.
    ``imports``: the files beside it that it imports, name -> bytes; those bytes run as its
    imports of them, its own (``_Neighbours``), not whatever this process imports under their
    names (another run's, the caller's own module), nor a .pyc Python's import system would
    take in their place. ``checked``: the file's own bytes as the caller checked them, which
    run instead of the file's; its folder then gives nothing else to import (``_RunFolders``).
    ``code``: the file's bytes as the caller read them (``read_code``), which run in its place."""
    path = Path(path)
    source = checked if checked is not None else code if code is not None else read_code(path)
    try:
        compiled = compile(source, str(path), "exec", dont_inherit=True)  # as Python runs it: not this module's __future__
    except SyntaxError as e:
        raise NeuralabError(_no_python_text(path, source) or f"{path}{_at(e.lineno)}: syntax error: {e.msg}") from None
    except (RecursionError, MemoryError):
        raise _too_nested(path) from None
    # Here, not at the top: neuralab.keras reads Keras files with h5py, whose import (0.2 s)
    # a run of a zoo model does not need.
    from neuralab.keras import on_pytorch

    on_pytorch()  # the file may import Keras
    name = module_name(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    files = {Path(n).stem: (Path(folder) / n, text) for n, text in (imports or {}).items()}
    if files:  # its import statements, at its top level and in its functions alike, take these
        neighbours = _Neighbours(files, checked is not None)
        module.__builtins__ = neighbours.builtins
        if imported_by(imports, path.stem):  # one imports the model's file back: it gets this module, as in Python
            neighbours.modules[path.stem] = module
    # A run's checked files are what inspect reads; the user's own file is theirs to edit after, and
    # inspect reads it as it is then, as in plain Python (its folder is on sys.path: _defined)
    if checked is not None:
        _RUN_FOLDERS.keep(folder, files)
        _as_source(path, source)
    sys.modules[name] = module  # classes defined there can be found again (pickling, inspect)
    argv, sys.argv = sys.argv, [str(path)]  # a file that parses its options gets its defaults, not neuralab's
    try:
        with _keras_input_shape_quiet():
            exec(compiled, module.__dict__)  # noqa: S102  the user named this file as their model
    except SystemExit as e:  # sys.exit() or argparse's exit: the file ends, neuralab goes on to say so
        frames = traceback.extract_tb(e.__traceback__)
        line = next((f.lineno for f in reversed(frames) if f.filename == str(path)), "?")
        raise NeuralabError(f"{path}:{line}: the file exits (SystemExit {e.code!r}) as neuralab reads it for its "
                            "model; put what ends it under if __name__ == \"__main__\":, which neuralab does not "
                            "run") from None
    except Exception as e:  # noqa: BLE001  any error in the user's code becomes one line
        from neuralab.errors import reraise_interrupt

        reraise_interrupt(e)  # Ctrl-C or SIGTERM as the file ran, wrapped: no fault of the file's
        frames = traceback.extract_tb(e.__traceback__)
        line = next((f.lineno for f in reversed(frames) if f.filename == str(path)), "?")
        where, text, hint = f"{path}:{line}", str(e), _import_hint(e, path)
        # An error in a file beside it that it imports: that file's line, which the user must fix
        inner = ((e.filename, e.lineno, e.msg) if isinstance(e, SyntaxError) and e.filename else
                 next(((f.filename, f.lineno, text) for f in reversed(frames) if _beside(f.filename, folder)),
                      (None, None, text)))
        if inner[0] and inner[0] != str(path) and _beside(inner[0], folder):
            wide = isinstance(e, SyntaxError) and _no_python_text(Path(inner[0]), _bytes_of(Path(inner[0]), files))
            if wide:
                raise NeuralabError(f"{wide} (imported by {path}:{line})") from None
            where, text, hint = f"{inner[0]}{_at(inner[1])}", inner[2], f" (from {path}:{line}){hint}"
        from neuralab.training.keras_script import Refused

        big = _too_big(e)  # a model built at the file's top level (model = Net())
        if big:
            raise NeuralabError(f"{where}: {big}") from None
        kind = "" if isinstance(e, (Refused, NeuralabError)) else f"{type(e).__name__}: "  # it says what to do
        raise NeuralabError(f"{where}: {kind}{text.splitlines()[0] if text else ''}{hint}") from None
    finally:
        sys.argv = argv
    return module


def _no_python_text(path: Path, code: bytes) -> str | None:
    """Why Python cannot read the bytes ``code`` of ``path`` as a program: text in UTF-16 or
    UTF-32 (what PowerShell's > and Notepad's "Unicode" write), whose NULs Python's parser
    refuses, in words; None for any other."""
    import codecs

    from neuralab.files import marked_encoding

    if code.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):  # before UTF-16's: its mark begins UTF-32's
        wide = "UTF-32"
    elif marked_encoding(code[:4]) == "utf-16":
        wide = "UTF-16"
    elif b"\x00" in code:
        return f"{path}: holds NUL bytes, which no Python file does (text in UTF-16 or UTF-32 without its mark?); " \
               "save it as UTF-8"
    else:
        return None
    return f"{path}: text in {wide}, which Python does not read; save it as UTF-8"


def _bytes_of(file: Path, files: dict[str, tuple[Path, bytes]]) -> bytes:
    """The bytes of ``file``, beside the model's: those it ran from (``files``, run_file's), else its own."""
    if file.stem in files and files[file.stem][0] == file:
        return files[file.stem][1]
    with contextlib.suppress(OSError):
        return file.read_bytes()
    return b""


def _at(line: int | None) -> str:
    """":LINE" after a file's name, where an error gives its line (a file of NUL bytes has none)."""
    return f":{line}" if line is not None else ""


class _Neighbours:
    """The files beside a model file that it imports, as its code (and theirs) imports them, for
    as long as that code lives: the constructor and forward may import one inside a function,
    after load_python has returned. Each is run once, from the bytes neuralab read (a run's,
    checked against its SHA-256), and is this model's alone: none is in sys.modules under its
    name, where another run's file of that name, or the user's own module, would take its place
    (or it theirs). Python's own import would also run a .pyc in __pycache__ in its place where
    its header matches the file's time and size, code no hash covers. ``builtins``: the builtins
    those files run with, whose ``__import__`` gives them."""

    def __init__(self, files: dict[str, tuple[Path, bytes]], checked: bool):
        import builtins

        self.files, self.checked, self.modules = files, checked, {}
        self.builtins = {**vars(builtins), "__import__": self._import}
        self._real = builtins.__import__

    def _import(self, name, globals=None, locals=None, fromlist=(), level=0):
        top, dot, _ = name.partition(".")
        if level or (top not in self.files and top not in self.modules):
            return self._real(name, globals, locals, fromlist, level)
        if dot:  # a file, not a package, as Python says of a module's submodule
            raise ModuleNotFoundError(f"No module named {name!r}; {top!r} is not a package", name=name)
        return self.modules.get(top) or self._run(top)

    def _run(self, stem: str):
        import types

        file, code = self.files[stem]
        # sys.modules's name, as run_file's: inspect and pickle find its classes there
        name = module_name(code)
        module = types.ModuleType(name)
        module.__file__, module.__builtins__ = str(file), self.builtins
        self.modules[stem] = sys.modules[name] = module  # one that imports it back gets it as Python gives it
        if self.checked:
            _as_source(file, code)
        try:
            exec(compile(code, str(file), "exec", dont_inherit=True), module.__dict__)  # noqa: S102  the model's import
        except BaseException as e:
            del self.modules[stem]
            if isinstance(e, SyntaxError) and not e.filename:  # NUL bytes: Python's parser names no file
                e.filename = str(file)
            raise
        return module


class _RunFolders(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Python's import system, kept from a checked run's folder that is on sys.path (the user's
    code put it there, or Python started in it): the files its model.json records come from the
    bytes checked, never a .pyc in its __pycache__; any other file there is refused. Cheap where
    no such folder is on sys.path, as it is asked for every import of the process (``_RUN_FOLDERS``)."""

    def __init__(self):
        self.folders: dict[str, dict[str, tuple[Path, bytes]]] = {}  # folder -> module name -> (its file, its bytes)
        self._seen: tuple = (None, set())  # (sys.path as last resolved, the run folders on it)

    def keep(self, folder: str, files: dict[str, tuple[Path, bytes]]) -> None:
        """The recorded files of the checked run's ``folder`` (resolved)."""
        self.folders[folder] = files
        self._seen = (None, set())
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def _on_path(self) -> set[str]:
        import os

        key = (tuple(p for p in sys.path if isinstance(p, str)), os.getcwd() if "" in sys.path else None)
        if key != self._seen[0]:
            on = set()
            for p in key[0]:
                with contextlib.suppress(OSError, ValueError):
                    if (resolved := str(Path(p or ".").resolve())) in self.folders:
                        on.add(resolved)
            self._seen = (key, on)
        return self._seen[1]

    def find_spec(self, fullname, path=None, target=None):
        if path is not None or not self._on_path():  # a submodule: its package was asked for first
            return None
        import importlib.machinery

        found = importlib.machinery.PathFinder.find_spec(fullname)
        places = [getattr(found, "origin", None), *(getattr(found, "submodule_search_locations", None) or ())]
        hit = next(((f, p) for f in self._on_path() for p in places if p and Path(p).resolve().parent == Path(f)),
                   None)
        if hit is None:
            return None
        if fullname in self.folders[hit[0]]:
            file, code = self.folders[hit[0]][fullname]
            spec = importlib.util.spec_from_loader(fullname, self, origin=str(file))
            spec.has_location = True  # __file__, which tracebacks and inspect name the file by
            spec.loader_state = (file, code)
            return spec
        raise ImportError(f"{hit[1]}: in the run's folder, and not among the files its model.json records, so it "
                          "does not run", name=fullname)

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        file, code = module.__spec__.loader_state
        _as_source(file, code)
        exec(compile(code, str(file), "exec", dont_inherit=True), module.__dict__)  # noqa: S102  the run's checked file


_RUN_FOLDERS = _RunFolders()


def _as_source(file: Path, code: bytes) -> None:
    """``code`` as the text of ``file`` for inspect and linecache (TorchScript compiles a forward
    from it, tracebacks quote it): the bytes that ran, not the file as it is on disk by now."""
    import linecache

    lines = importlib.util.decode_source(code).splitlines(keepends=True)
    linecache.cache[str(file)] = (len(code), None, lines, str(file))  # no time: checkcache keeps it


def _beside(filename: str, folder: str) -> bool:
    """Whether ``filename`` (a traceback's) is a file in the model file's ``folder``."""
    file = Path(filename)
    return file.is_file() and file.resolve().parent == Path(folder)


@contextlib.contextmanager
def _keras_input_shape_quiet():
    """Keras's warnings against ``input_shape=`` on a layer, silenced: the workshop's listings
    (and most tutorials) pass it, neuralab reads it as Keras does, and the advice would print
    even with --quiet. Other warnings stay."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"(Do not pass an `input_shape`|Argument `input_shape` is deprecated)",
                                UserWarning, r"keras(\.|$)")
        yield


def _import_hint(e: Exception, path: Path) -> str:
    """What to do about the model file ``path``'s failed import of Keras or TensorFlow (the
    workshop's listings import tensorflow.keras, which neuralab's Keras 3 on PyTorch replaces), a
    Keras function that needs TensorFlow on any backend (keras.utils.image_dataset_from_directory),
    or a relative import."""
    if not isinstance(e, ImportError):
        return ""
    if "no known parent package" in str(e):  # `from .layers import Block` in a file of a package
        return _in_a_package(path)
    named = getattr(e, "name", None) or ""
    if named == "tensorflow" or named.startswith("tensorflow."):  # the file's own import
        return _TENSORFLOW_KERAS
    if "tensorflow" in str(e):
        called = _keras_call(e)
        if called:  # the file imports keras already: its data loading is what fails, which neuralab needs not
            return (f"; Keras's {called}() needs TensorFlow, which neuralab (Keras 3 on PyTorch) does not use: it "
                    "trains the model on `data` itself, so give it the folder as `data` and put the data loading "
                    "and fit() under if __name__ == \"__main__\":, which neuralab does not run")
        return _TENSORFLOW_KERAS
    return "; install Keras 3: pip install 'neuralab[keras]'" if "keras" in str(e) else ""


def _in_a_package(file: Path) -> str:
    """What to do about a relative import in the model file ``file`` of a package (its own, or a
    helper's it imports): the file runs alone, as `python FILE.py` runs it, not as a module of its
    package; a file beside the package imports the model, whichever file has the dots."""
    file = Path(file)
    module = f"{file.parent.name}.{file.stem}" if file.parent.name.isidentifier() else "PACKAGE.MODULE"
    return (f"; neuralab runs the model's file alone, not as a module of its package: import its helpers without "
            f"dots from .py files beside it (from layers import Block), which a run keeps, or give a file beside "
            f"the package that imports the model (from {module} import ...), whose run loads only from Python")


_TENSORFLOW_KERAS = ("; neuralab runs Keras 3 on PyTorch, without TensorFlow: import from keras (from keras.models "
                     "import Sequential, from keras import layers) instead of tensorflow.keras")


def _keras_call(e: Exception) -> str | None:
    """The Keras function the failing code called (``image_dataset_from_directory``), where the
    error was raised inside Keras rather than by an import of the file's: None otherwise."""
    frames = traceback.extract_tb(e.__traceback__)
    inside = [i for i, f in enumerate(frames) if _in_keras(f.filename)]
    outside = [i for i in range(len(frames)) if i not in inside]
    if not inside or not outside or inside[-1] < outside[-1]:
        return None
    return frames[outside[-1] + 1].name  # the first frame Keras ran for the file's call


def _in_keras(filename: str) -> bool:
    keras = sys.modules.get("keras")
    return bool(getattr(keras, "__file__", None)) and Path(keras.__file__).parent in Path(filename).parents


def is_keras(obj) -> bool:
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(obj, keras.Model)


def is_model(obj) -> bool:
    torch = sys.modules.get("torch")
    return is_keras(obj) or (torch is not None and isinstance(obj, torch.nn.Module))


def _is_module_class(obj) -> bool:
    torch = sys.modules.get("torch")
    return inspect.isclass(obj) and torch is not None and issubclass(obj, torch.nn.Module)


def _built_from_the_others(path: Path, classes: dict, code: bytes | None = None) -> str | None:
    """The one of ``classes`` (name: class, defined in ``path``) that a ResNet-style file builds
    from the others, or None: the one no other names in its body and the only one buildable
    without arguments, where the others are blocks (``Block(cin, cout)``). A wrapper around the
    network (a softmax for deployment, an ensemble) and a subclass beside its base build without
    arguments as the network does, and which of them to train only the user knows. ``code``:
    ``path``'s bytes that ran, where read."""
    free = [k for k, v in classes.items() if _needs_no_arguments(v)]
    return free[0] if len(free) == 1 and free[0] in _used_by_none(path, list(classes), code) else None


def _needs_no_arguments(made) -> bool:
    try:
        inspect.signature(made).bind()
    except (TypeError, ValueError):  # ValueError: no signature to read, so no call to vouch for
        return False
    return True


def _used_by_none(path: Path, classes: list[str], code: bytes | None = None) -> list[str]:
    """Those of ``classes``, defined in ``path`` (its bytes ``code``, where read), that no other of
    them names in its body; a subclass naming its base in its bases is no use of it (``class
    Big(Base)``)."""
    import ast

    try:
        tree = ast.parse(path.read_bytes() if code is None else code)
    except (OSError, SyntaxError, ValueError):
        return []
    used = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in classes:
            used |= {n.id for part in node.body for n in ast.walk(part)
                     if isinstance(n, ast.Name) and n.id != node.name}
    return [c for c in classes if c not in used]


def _candidates(module, found: dict) -> list[str]:
    return [k for k, v in found.items() if is_model(v) or (_is_module_class(v) and v.__module__ == module.__name__)
            or (inspect.isfunction(v) and v.__module__ == module.__name__)]


def materialise(path: Path, name: str, obj, fix: str = "give defaults, or a function returning the model"):
    """An object, or what a class or function gives when called without arguments; ``fix``:
    what to do about arguments it requires."""
    if is_model(obj):
        return obj
    if callable(obj):
        try:
            with _keras_input_shape_quiet():
                made = obj()
        except Exception as e:  # noqa: BLE001  the user's constructor: one line, file and line
            from neuralab.errors import reraise_interrupt

            reraise_interrupt(e)  # Ctrl-C as it ran, wrapped: the Python caller's too, not only the command's
            line = next((f.lineno for f in reversed(traceback.extract_tb(e.__traceback__))
                         if f.filename == str(path)), None) or _defined_at(obj)
            big = _too_big(e)
            if big:
                raise NeuralabError(f"{path}:{line}: {name}() failed: {big}") from None
            text = str(e).splitlines()[0] if str(e) else ""
            # "neuralab calls it without arguments" is the cause only where the call lacked them
            said = f"; neuralab calls it without arguments ({fix})" if _wants_arguments(obj, e) else ""
            raise NeuralabError(f"{path}:{line}: {name}() failed: {type(e).__name__}: {text}{said}") from None
        if is_model(made):
            return made
        raise NeuralabError(f"{path}: {name}() returns {kind_of(made)}, not a Keras model or torch.nn.Module")
    raise NeuralabError(f"{path}: {name} is {kind_of(obj)}, not a Keras model or torch.nn.Module "
                        "(an instance, a class, or a function returning one)")


def _wants_arguments(made, error: Exception) -> bool:
    """Whether calling ``made`` without arguments failed for the want of them: its signature
    binds none, or, where it has no signature to read, the TypeError says an argument is
    missing. A signature that binds none failed inside: a call the constructor makes
    (nn.Linear(hidden)) lacks one, the user's own mistake, which its line shows."""
    if not isinstance(error, TypeError):
        return False
    try:
        inspect.signature(made).bind()
    except TypeError:
        return True
    except ValueError:  # no signature to read (a builtin): the message tells
        return "missing" in str(error) and "argument" in str(error)
    return False


def _too_big(error: BaseException) -> str | None:
    """What to say of user code that ran out of memory building its model (a layer of
    200,000 x 200,000 weights asks for 160 GB), or None for another error."""
    from neuralab.errors import out_of_memory

    said = out_of_memory(error)
    if said is None:
        return None
    asked = said.partition("asked for ")[2]  # the one allocation that failed: a lower bound of the whole
    needs = f"the model needs at least {asked} to build (one of its tensors alone asks for that)" if asked else \
        "the model needs more memory to build than there is"
    return f"not enough memory: {needs}; make it smaller (fewer or narrower layers)"


def kind_of(obj) -> str:
    """"an int", "a float": what the user gave, in words."""
    kind = type(obj).__name__
    return f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}"


def _defined_at(obj) -> int | str:
    """The line where ``obj`` is defined ("?" where no source says): an error raised by the
    call itself (a missing argument) has no line of the user's file in its traceback."""
    try:
        return inspect.getsourcelines(obj)[1]
    except (TypeError, OSError):
        return "?"


def seed_just_set() -> int | None:
    """The seed torch's, NumPy's and Python's generators were all just given, where none has drawn
    since, as a run seeds them (seed_everything) before it builds its model; else None."""
    import random

    import numpy as np
    import torch

    seed = torch.initial_seed()
    if seed > MAX_SEED or not torch.equal(torch.get_rng_state(), torch.Generator().manual_seed(seed).get_state()):
        return None
    ours, fresh = np.random.get_state(), np.random.RandomState(seed).get_state()
    if not (np.array_equal(ours[1], fresh[1]) and ours[2:] == fresh[2:]):
        return None
    return seed if random.getstate() == random.Random(seed).getstate() else None


def seeded(seed: int | None):
    """Torch, NumPy and Python seeded with ``seed`` while a run's code builds its model, as the run
    seeded them when it built it (None: left as they are), and put back after: what the code
    draws as it builds comes out as it did, and the caller's own draws go on as if nothing had
    run (training.seeds.generators_kept, which a run trains under)."""
    from neuralab.training.seeds import generators_kept

    return generators_kept(seed)
