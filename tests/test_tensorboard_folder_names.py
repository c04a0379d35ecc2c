"""--tensorboard into a run folder named in Latin-1: refused before the run is made.

TensorBoard's event writer encodes its folder as UTF-8; such a run trained until the writer
made its folder and failed with a UnicodeEncodeError traceback, leaving a half-made run.
Without --tensorboard, such folders work (tests/test_runs_paths_and_write_advice.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

NEURALAB = [sys.executable, "-m", "neuralab"]


@pytest.mark.parametrize("argv", [
    ["forecast", "--data", "seattle-weather", "--lookback", "8", "--epochs", "1", "--baselines", "persistence",
     "--backtest-folds", "1", "--threads", "1"],
    ["train", "--model", "mlp", "--data", "pictures", "--epochs", "1", "--threads", "1"],
])
def test_a_run_folder_tensorboard_cannot_write_in_is_refused_before_the_run_is_made(tmp_path, argv):
    pytest.importorskip("tensorboard", reason="pip install 'neuralab[tensorboard]' to test --tensorboard")
    rng = np.random.default_rng(0)
    for label, shade in (("dark", 60), ("light", 190)):
        (tmp_path / "pictures" / label).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(rng.normal(shade, 20, (12, 12)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(tmp_path / "pictures" / label / f"{i}.png")
    out = os.fsencode(tmp_path) + b"/run\xe9"
    done = subprocess.run([*NEURALAB, *argv, "--tensorboard", "--out", out, "--quiet"],
                          cwd=tmp_path, capture_output=True, timeout=300)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "TensorBoard writes its events only under folder names in UTF-8" in err
    assert "--out" in err and "--tensorboard" in err
    assert not os.path.exists(out)
