"""Writing files so that a crash or a full disk never leaves half a file behind."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    On any error the temporary file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def read_json(path: str | os.PathLike):
    from neuralab.errors import NeuralabError

    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise NeuralabError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise NeuralabError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); the file is damaged") from None


def inside(root: str | os.PathLike, candidate: str | os.PathLike) -> Path:
    """Resolve ``candidate`` under ``root`` and refuse any path that leaves ``root``."""
    from neuralab.errors import NeuralabError

    root = Path(root).resolve()
    target = (root / candidate).resolve()
    if target != root and root not in target.parents:
        raise NeuralabError(f"{candidate}: path leaves {root}; give a path inside it")
    return target
