"""--tensorboard with a tensorboard package that is there but does not import: refused before a run is made.

find_spec finds such a package, so a check for its presence alone let the run write its folder
and fail at its first epoch, leaving a half-made run that blocked the same command again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

NEURALAB = [sys.executable, "-m", "neuralab"]


@pytest.fixture
def broken(tmp_path):
    """A PYTHONPATH whose tensorboard package fails on import, as a half-removed install does."""
    package = tmp_path / "broken" / "tensorboard"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('raise ImportError("No module named tensorboard.compat")\n')
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(package.parent), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("argv", [
    ["forecast", "--data", "seattle-weather", "--lookback", "8", "--epochs", "1", "--baselines", "persistence",
     "--backtest-folds", "1", "--threads", "1"],
    ["train", "--model", "mlp", "--data", "pictures", "--epochs", "1", "--threads", "1"],
])
def test_a_tensorboard_that_does_not_import_is_refused_before_the_run_is_written(tmp_path, broken, argv):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, shade in (("dark", 60), ("light", 190)):  # a folder of class sub-folders, as `train --data` reads
        (tmp_path / "pictures" / label).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(rng.normal(shade, 20, (12, 12)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(tmp_path / "pictures" / label / f"{i}.png")
    out = tmp_path / "run"
    done = subprocess.run([*NEURALAB, *argv, "--tensorboard", "--out", str(out), "--quiet"], env=broken,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("neuralab: error: --tensorboard needs the tensorboard package, which is installed but "
                           "does not import (ImportError: No module named tensorboard.compat); reinstall it: pip "
                           "uninstall tensorboard, then pip install 'neuralab[tensorboard]'\n")
    assert not out.exists()


def test_the_library_check_tries_the_import_the_callback_makes(broken):
    code = ("from neuralab.training.config import TrainConfig\n"
            "TrainConfig(tensorboard=True).check()\n")
    done = subprocess.run([sys.executable, "-c", code], env=broken, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parent)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith("neuralab.errors.NeuralabError: tensorboard needs the "
                                                   "tensorboard package, which is installed but does not import")
