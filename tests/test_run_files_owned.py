"""A run's files have one owner, neuralab.runs: both loaders read a run's weights and model.json
through it (a link leading out of the run refused, a missing file said as what it is), the figures
a report draws are the ones the notebook display and the web app show, the way on after an
interrupt is worded once, and the safetensors header is read once, without torch."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from helpers import digits_folder
from neuralab import runs
from neuralab.errors import NeuralabError
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.finished import RunNotFinished, load_forecaster
from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
from neuralab.forecasting.windows import WindowConfig
from neuralab.runs import Kind
from neuralab.safetensors_header import safetensors_header
from neuralab.training import ClassifierConfig, TrainConfig, load_classifier, train_classifier
from neuralab.training.checkpoint import load_tensors

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("digits"), n=300)


@pytest.fixture(scope="module")
def classified(digits, tmp_path_factory):
    """A finished classifier run (its result, for the notebook's display)."""
    config = ClassifierConfig(model="mlp", data=str(digits), train=TrainConfig(epochs=1, batch_size=64, seed=0))
    return train_classifier(config, out=tmp_path_factory.mktemp("classifier") / "run", verbose=False)


@pytest.fixture(scope="module")
def forecast(series_csv, tmp_path_factory):
    """A finished forecaster run on a daily load with a weekly cycle."""
    config = ForecastConfig(data=str(series_csv), target="load", windows=WindowConfig(lookback=7),
                            model=ModelConfig("rnn", hidden=[4]), backtest_folds=1,
                            train=series_train_config(epochs=2, device="cpu", seed=1))
    return run_forecast(config, out=tmp_path_factory.mktemp("forecast") / "run", verbose=False)


LOADERS = {"classifier": load_classifier, "forecaster": load_forecaster}


@pytest.fixture(params=LOADERS)
def finished(request, classified, forecast, tmp_path) -> tuple[Path, object]:
    """A copy of a finished run of each kind, with the loader of its kind."""
    run = classified.run_dir if request.param == "classifier" else forecast.run_dir
    return Path(shutil.copytree(run, tmp_path / "run", symlinks=True)), LOADERS[request.param]


# --- loading: one way for both kinds ---------------------------------------------------

@pytest.mark.parametrize("name", [runs.MODEL, runs.WEIGHTS])
def test_a_run_file_that_is_a_link_out_of_the_run_is_refused_by_both_loaders(finished, name, tmp_path):
    run, load = finished
    outside = tmp_path / f"outside-{name}"
    shutil.move(run / name, outside)  # the same bytes, but in another folder: what loads is not the run's
    (run / name).symlink_to(outside)
    with pytest.raises(NeuralabError, match=rf"^{run / name}: a symbolic link leading out of the run \(to {outside}\)"):
        load(run)


def test_weights_deleted_from_a_finished_run_are_said_to_be_missing_from_a_finished_run(finished):
    run, load = finished
    (run / runs.WEIGHTS).unlink()
    with pytest.raises(NeuralabError, match=rf"^{run / runs.WEIGHTS}: missing from a finished run \(deleted or "
                                            r"moved\); put it back, or train the run again$"):
        load(run)


def test_weights_missing_from_a_run_that_keeps_an_epoch_are_not_said_to_be_no_epoch_yet(finished):
    run, load = finished
    (run / runs.RESULTS).unlink()  # an interrupted run: its last checkpoint keeps its epochs
    (run / runs.WEIGHTS).unlink()
    assert runs.epoch_kept(run)
    with pytest.raises(NeuralabError, match=rf"^{run / runs.WEIGHTS}: missing, though the run keeps a finished "
                                            r"epoch .*; resuming the run writes it$"):
        load(run)
    shutil.rmtree(run / runs.CHECKPOINTS)  # stopped in its first epoch
    with pytest.raises(NeuralabError, match=rf"^{run}: no {runs.WEIGHTS} yet \(the run has not finished an epoch\)$"):
        load(run)


def test_a_model_json_that_is_no_object_is_refused_in_one_wording_by_both_loaders(finished):
    run, load = finished
    (run / runs.MODEL).write_text("[1, 2]")
    with pytest.raises(NeuralabError, match=rf"^{run / runs.MODEL}: expected a JSON object, found list; the file is "
                                            "damaged$"):
        load(run)
    assert runs.Run(run).damage() == f"{run / runs.MODEL}: expected a JSON object, found list; the file is damaged"


# --- the figures: what the report draws is what the displays and the app show ------------

def _pictures(run: Path) -> set[str]:
    return {p.relative_to(run).as_posix() for p in run.rglob("*.png")}


def test_every_figure_a_classifier_report_draws_is_one_the_displays_and_the_web_app_show(classified):
    from neuralab.web.runs import SERVED, details

    run = classified.run_dir
    assert _pictures(run) == set(runs.CLASSIFIER_FIGURES.values())  # one epoch of an MLP leaves mistakes to draw
    assert set(runs.CLASSIFIER_FIGURES.values()) <= set(SERVED)
    assert set(runs.CLASSIFIER_FIGURES.values()) <= set(details(run.parent, run.name)["files"])
    assert details(run.parent, run.name)["figures"] == runs.CLASSIFIER_FIGURES  # the page asks for these files
    shown = classified._repr_html_()
    assert shown.count("<img") == 2 and str(run / runs.REPORT) in shown


def test_every_figure_a_forecast_report_draws_is_one_the_displays_and_the_web_app_show(forecast):
    from neuralab.web.forecast import forecast_view
    from neuralab.web.runs import SERVED, details

    run = forecast.run_dir
    assert _pictures(run) == set(runs.FORECAST_FIGURES.values())
    assert set(runs.FORECAST_FIGURES.values()) <= set(SERVED)
    assert set(runs.FORECAST_FIGURES.values()) <= set(details(run.parent, run.name)["files"])
    assert details(run.parent, run.name)["figures"] == runs.FORECAST_FIGURES
    assert forecast_view(run.parent, run.name)["plots"] == runs.FORECAST_FIGURES
    assert forecast._repr_html_().count("<img") == 2


# --- the way on after an interrupt: worded once ------------------------------------------

def test_the_way_on_of_an_interrupted_forecast_is_worded_once_for_every_refusal(forecast, tmp_path):
    run = Path(shutil.copytree(forecast.run_dir, tmp_path / "run"))
    (run / runs.RESULTS).unlink()
    call, command = f"neuralab.resume_forecast({str(run)!r})", f"neuralab forecast --resume {run}"
    assert runs.way_on(run, Kind.FORECASTER, "continues it") == f"`{call}` continues it"
    assert runs.way_on(run, Kind.FORECASTER, "continues it", command) == f"`{command}` continues it"
    assert str(runs.Interrupted(run, Kind.FORECASTER)).endswith(f"; `{call}` continues it")
    assert RunNotFinished(run).args[0].endswith(f"; `{call}` finishes it, then use it")
    assert RunNotFinished(run).said_with(command).args[0].endswith(f"; `{command}` finishes it, then use it")

    # a forecast of a module object: resumed and reported with the module given again, as a classifier's
    meta = json.loads((run / runs.MODEL).read_text())
    (run / runs.MODEL).write_text(json.dumps({**meta, "source": {"type": "torch", "name": "Net"}}))
    call = f"neuralab.resume_forecast({str(run)!r}, model=Net(...))"
    assert str(runs.Interrupted(run, Kind.FORECASTER)).endswith(f"; `{call}` continues it")
    assert RunNotFinished(run).args[0].endswith(f"; `{call}` finishes it, then use it")
    assert runs.report_call(run) == f"neuralab.forecasting.finished.write_report({str(run)!r}, model=Net(...))"
    (run / runs.MODEL).write_text(json.dumps({**meta, "source": {"type": "torch", "name": "Net", "file": "model.py"}}))
    assert runs.report_call(run) == f"neuralab.forecasting.finished.write_report({str(run)!r}, trust_code=True)"


# --- the safetensors header: read once, without torch -------------------------------------

def test_a_checkpoint_header_reads_without_torch_as_load_tensors_reads_it(classified):
    last = classified.run_dir / runs.LAST
    script = ("import json, sys\n"
              "from neuralab import safetensors_header\n"
              f"data = open({str(last)!r}, 'rb').read()\n"
              "meta = safetensors_header.neuralab_metadata(safetensors_header.safetensors_metadata(\n"
              "    safetensors_header.safetensors_header(data)))\n"
              "assert 'torch' not in sys.modules\n"
              "print(json.dumps(meta['history']))\n")
    read = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(read.stdout) == load_tensors(last)[1]["history"] == runs.Run(classified.run_dir).committed()
    assert safetensors_header(last.read_bytes()[:100]) is None  # cut within its header


# --- the web app's classifier: one thread, by the trainer's own helper ---------------------

def test_the_web_app_classifies_on_one_thread_set_by_cpu_threads(classified, digits, monkeypatch):
    import torch

    import neuralab.training.device as device
    from neuralab.web.classify import Models, classify

    entered, real = [], device.cpu_threads

    def watched(n):
        entered.append(n)
        return real(n)

    monkeypatch.setattr(device, "cpu_threads", watched)
    picture = io.BytesIO()
    Image.open(next(digits.glob("3/*.png"))).save(picture, format="PNG")
    before = torch.get_num_threads()
    out = classify(Models(), classified.run_dir, picture.getvalue(), "upload")
    assert entered == [1] and torch.get_num_threads() == before
    assert len(out["top"]) == 5 and {row["class"] for row in out["top"]} <= {str(k) for k in range(10)}
