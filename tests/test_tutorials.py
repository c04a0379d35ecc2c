"""The tutorials in docs/tutorials run end to end, as notebooks, in their small budget.

Each percent-format script is converted with jupytext and executed by nbclient on a
python3 kernel of this interpreter, with NEURALAB_TUTORIAL_BUDGET=small, NEURALAB_DATA
pointing at a temporary cache filled from the real datasets (MNIST only for the tutorials
that need it), and NEURALAB_TUTORIAL_OUT at a temporary folder; the test then checks the
key numbers the tutorial wrote to results.json. A tutorial that raises, or whose numbers
drift from the slides, fails here.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from neuralab.forecasting.metrics import tied

REPO = Path(__file__).resolve().parents[1]
TUTORIALS = REPO / "docs" / "tutorials"
SCRIPTS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
TIMEOUT = 300  # seconds per cell; the whole small budget of all tutorials takes about 3 minutes

nbclient = pytest.importorskip("nbclient", reason="pip install -e .[test] brings nbclient")
jupytext = pytest.importorskip("jupytext")


@pytest.fixture(scope="module")
def tutorial_env(fashion_mnist, tmp_path_factory):
    """Environment for the kernels: small budget, a data cache holding Fashion-MNIST copied
    from the real dataset (``with_mnist`` adds MNIST), and a fresh output folder."""
    cache = tmp_path_factory.mktemp("tutorial-cache")
    shutil.copytree(fashion_mnist, cache / "fashion-mnist")
    out = tmp_path_factory.mktemp("tutorial-out")
    return {"NEURALAB_TUTORIAL_BUDGET": "small", "NEURALAB_DATA": str(cache), "NEURALAB_TUTORIAL_OUT": str(out),
            "MPLBACKEND": "Agg"}, out


@pytest.fixture
def with_mnist(tutorial_env, mnist):
    """The tutorial environment with real MNIST in its cache too (the workshop's tutorials 02
    and 03 train on both datasets); skips the tutorial when MNIST is absent."""
    cache = Path(tutorial_env[0]["NEURALAB_DATA"]) / "mnist"
    if not cache.exists():
        shutil.copytree(mnist, cache)
    return tutorial_env


def execute(script: Path, env: dict[str, str]) -> tuple[object, float]:
    """Run ``script`` as a notebook in docs/tutorials with ``env``; returns (notebook, seconds)."""
    from nbclient import NotebookClient

    notebook = jupytext.read(script)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment of this process
    try:
        client = NotebookClient(notebook, timeout=TIMEOUT, kernel_name="python3",
                                resources={"metadata": {"path": str(TUTORIALS)}})
        t0 = time.perf_counter()
        client.execute()
        return notebook, time.perf_counter() - t0
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_tutorial(name: str, tutorial_env) -> dict:
    env, out = tutorial_env
    script = TUTORIALS / name
    notebook, seconds = execute(script, env)
    print(f"{name}: {seconds:.1f} s as a notebook in the small budget")
    folder = next(p for p in out.iterdir() if p.name.startswith(script.stem[:2] + "-"))
    results = json.loads((folder / "results.json").read_text())
    assert results["budget"] == "small"
    errors = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    # what the reader sees printed, for the tests that check it
    results["_printed"] = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                                  for o in cell.get("outputs", []) if o.get("output_type") == "stream")
    return results


def test_every_tutorial_is_tested():
    assert [p.name for p in SCRIPTS] == [
        "01_convolution_by_hand.py", "02_mlp_to_cnn.py", "03_classic_architectures.py",
        "04_batchnorm_dropout.py", "05_recurrent_networks.py", "06_forecasting.py"]


def test_tutorials_use_the_kernel_of_this_interpreter():
    """The python3 kernel must be this interpreter (the venv with neuralab), not another
    Python on PATH: jupyter_client maps a kernelspec's bare "python" to sys.executable."""
    from jupyter_client.manager import KernelManager

    command = KernelManager(kernel_name="python3").format_kernel_cmd()
    assert Path(command[0]).resolve() == Path(sys.executable).resolve()


def test_01_convolution_by_hand(tutorial_env):
    r = run_tutorial("01_convolution_by_hand.py", tutorial_env)
    assert r["dot_product"] == [[19, 25], [37, 43]]
    assert r["convolved_feature"] == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    assert r["stride"] == [[4, 4], [2, 4]]
    assert r["depth"] == -25
    assert r["output_sizes"] == [2, 3, 2, 7, 5, 26, 28]
    assert r["keras_same_stride2"] == {"out_chw": [16, 16, 16], "params": 1216}
    assert r["pooling"]["max"] == [[13, 9], [24, 13]]
    assert r["pooling"]["avg"] == [[5.75, 5], [12, 9]]
    h, w = r["photo_shape"]
    assert r["photo_sizes"]["valid, stride 1"] == [h - 2, w - 2]
    assert r["photo_sizes"]["same, stride 1"] == [h, w]
    assert r["photo_sizes"]["same, stride 2"] == [math.ceil(h / 2), math.ceil(w / 2)]
    assert r["formula_checks"] > 100
    assert r["max_abs_diff_vs_torch"] < 1e-9
    assert r["scratch_cnn"]["test_accuracy"] > 0.8  # 2 epochs of the NumPy CNN on 8x8 digits
    assert r["scratch_cnn"]["loss"][-1] < r["scratch_cnn"]["loss"][0]
    # each worked example is printed whole, from its image and kernel to the result, as the text says
    feature = r["_printed"].split("--- A 3x3 kernel over a 5x5 binary image")[1].split("\n--- ")[0]
    assert feature.splitlines()[1].startswith("image") and "window (0,0)" in feature and "sum = 1 + 0 + 1 + 0 + 1 + 0 + 0 + 0 + 1 = 4" in feature
    padding = r["_printed"].split("--- Zero padding with P = 2")[1]
    assert "padding P=2 -> (W + 2P, H + 2P) = (9, 9)" in padding.splitlines()[1]


def test_02_mlp_to_cnn(with_mnist):
    r = run_tutorial("02_mlp_to_cnn.py", with_mnist)
    for dataset in ("mnist", "fashion-mnist"):
        acc = {m: r[dataset][m]["accuracy_mean"] for m in ("mlp", "cnn", "lenet5")}
        assert acc["cnn"] > acc["mlp"], (dataset, acc)  # the workshop's point, on the same budget
        assert min(acc.values()) > 0.5
        assert r[dataset]["mlp"]["params"] == 247_766 and r[dataset]["cnn"]["params"] == 421_834
    assert r["feature_maps"]["features.0"] == [32, 28, 28]
    assert r["feature_maps"]["features.3"] == [32, 14, 14]


def test_03_classic_architectures(with_mnist):
    r = run_tutorial("03_classic_architectures.py", with_mnist)
    paper = {name: counts["paper"] for name, counts in r["parameters"].items()}
    assert paper["lenet5"] == 61_706
    assert paper["alexnet"] == 61_100_840
    assert paper["vgg16"] == 138_357_544
    assert paper["googlenet"] == 6_624_904
    assert r["vgg16_layers"] == [13, 3]
    assert r["googlenet_inception_modules"] == 9
    # the slide's "22 layers deep with 27 pooling layers": the paper's 27 layers count the pools on the path
    assert r["googlenet_depth"] == {"with_weights": 22, "with_pools": 27, "pooling_layers": 14}
    assert r["vgg_two_3x3_vs_5x5"][0] < r["vgg_two_3x3_vs_5x5"][1]
    assert r["lenet5"]["mnist"]["test_accuracy"] > 0.8
    for name in ("alexnet", "vgg16", "googlenet"):
        run = r["small_input"][name]
        assert math.isfinite(run["final_loss"]) and run["projected_seconds_per_full_epoch"] > 0


def test_04_batchnorm_dropout(tutorial_env):
    r = run_tutorial("04_batchnorm_dropout.py", tutorial_env)
    assert r["batch_norm_vs_torch"] < 1e-9
    assert abs(r["dropout_zeroed"] - 0.3) < 0.01 and abs(r["dropout_mean"] - 1) < 0.01
    assert len(r["variants"]) == 8
    for name, v in r["variants"].items():
        assert 0.1 <= v["test_accuracy"] <= 1, name  # every variant learns something
        # the gap's training accuracy is an inference pass (dropout off), as the validation accuracy is
        assert 0.1 <= v["train_accuracy"] <= 1, name
        assert v["train_val_gap"] == pytest.approx(v["train_accuracy"] - v["val_accuracy"]), name


def test_05_recurrent_networks(tutorial_env):
    r = run_tutorial("05_recurrent_networks.py", tutorial_env)
    assert set(r["topologies"]) == {"one-to-one", "one-to-many", "many-to-one", "many-to-many"}
    for name, t in r["topologies"].items():
        assert t["loss_after"] < t["loss_before"], name
    assert r["SimpleRNN_vs_torch"] < 1e-9 and r["LSTM_vs_torch"] < 1e-9
    assert r["by_hand_ratio_59_back"] < 1e-6  # BPTT by hand: the gradient vanishes
    # at initialisation, 99 steps back, the SimpleRNN's gradient is orders of magnitude
    # below the LSTM's, while near the output they are alike
    assert r["gradient_far"]["SimpleRNN"] < r["gradient_far"]["LSTM"] / 100
    assert r["gradient_near"]["SimpleRNN"] > r["gradient_near"]["LSTM"] / 10
    assert r["memory"]["lags"] and len(r["memory"]["LSTM"]) == len(r["memory"]["lags"])


def test_06_forecasting(tutorial_env):
    r = run_tutorial("06_forecasting.py", tutorial_env)
    # the table's count is PyTorch's, two biases per gate; Keras's summary of the slide's code has one
    assert r["parameters"] == {"pytorch": 116_801, "keras": 116_033}
    for run in ("seattle-weather", "seattle-weather-more-inputs", "sp500", "sp500-log-return"):
        s = r[run]
        assert {"lstm-stacked", "persistence", "seasonal-naive", "drift", "moving-average", "linear-ar"} <= set(s["test"])
        assert s["network_mae"] == s["test"]["lstm-stacked"]["mae"] > 0
        assert s["persistence_mae"] == s["test"]["persistence"]["mae"] > 0
        # lower beyond float rounding: a network that kept persistence as its start scores as persistence does
        assert s["beats_persistence"] == (s["network_mae"] < s["persistence_mae"]
                                          and not tied(s["network_mae"], s["persistence_mae"]))
        assert "persistence" in s["sentence"]
        # the backtest the tutorial prints: the test days in four folds, not refitted
        backtest = s["backtest"]["lstm-stacked"]
        assert backtest["folds"] == 4 and not backtest["refit"]
        assert 0 <= backtest["folds_beating_persistence"] <= 4
