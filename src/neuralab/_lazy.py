"""Package exports imported on first use (PEP 562), so that ``import neuralab`` and the
command line's arithmetic start without torch, pandas or matplotlib.

    __getattr__, __dir__ = exports(__name__, {"Trainer": "neuralab.training.trainer", ...})

``from neuralab.training import Trainer`` then imports ``neuralab.training.trainer`` when
it runs, and not before. A submodule is found the same way: after ``import neuralab``,
``neuralab.training.export.export_onnx(...)`` (the calls messages and docs print) runs as written.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import types
from typing import Callable


def exports(package: str, where: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each name in ``where`` comes from its module."""
    module = sys.modules[package]
    namespace = module.__dict__

    def __getattr__(name: str):
        if name not in where:
            return submodule(name)
        value = getattr(importlib.import_module(where[name]), name)
        namespace[name] = value  # found once: later lookups do not come here
        return value

    def submodule(name: str):
        # Python binds a submodule in its package only once something imports it; the dotted
        # calls that messages print would otherwise depend on what ran before them.
        if not name.startswith("__"):  # copy's and pickle's probes of __deepcopy__ and the like
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as error:
                if error.name != f"{package}.{name}":  # the submodule exists and lacks something: say what
                    raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        # not neuralab/__main__.py, the command's entry: submodule() finds no dunder name
        return sorted({*namespace, *where, *(found.name for found in pkgutil.iter_modules(module.__path__)
                                             if not found.name.startswith("__"))})

    class Package(types.ModuleType):
        def __setattr__(self, name, value):
            # Importing a submodule binds its name in the package: neuralab.models.summary the
            # module would hide neuralab.models.summary the function. The export keeps the name,
            # as it would after an eager `from neuralab.models.summary import summary`.
            if isinstance(value, types.ModuleType) and value.__name__ == f"{package}.{name}" and name in where:
                return
            super().__setattr__(name, value)

    module.__class__ = Package
    return __getattr__, __dir__
