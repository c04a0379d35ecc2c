"""What a user is told after Ctrl-C: in Python (a notebook) the call that goes on, on the command
line the command; and what calling the same cell again does with the interrupted run (real
handwritten digits, Seattle's weather)."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
from helpers import digits_folder, idx_subset

import neuralab
from neuralab import runs
from neuralab.cli import main
from neuralab.errors import ParameterError
from neuralab.forecasting import pipeline
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.windows import WindowConfig
from neuralab.runs import Interrupted, Run, Status
from neuralab.training.config import replaced
from neuralab.training import trainer as trainer_module


pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # a resumed run computes as an uninterrupted one did, to the bit


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits"))


def classifier(digits, epochs: int = 3) -> neuralab.ClassifierConfig:
    return neuralab.ClassifierConfig(model="mlp", data=str(digits), train=neuralab.TrainConfig(
        epochs=epochs, batch_size=64, lr=0.01, seed=3, device="cpu"))


def ctrl_c_in_epoch_2(monkeypatch, only: str = ""):
    """Ctrl-C as epoch 2 starts in the runs whose folder's name ends with ``only``; calling what it
    returns lets training run whole again."""
    original = trainer_module.Trainer._train_epoch

    def pressed(self, *args):
        if args[-2] == 2 and str(self.run_dir).endswith(only):
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", pressed)
    return lambda: monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", original)


def test_a_notebook_is_told_the_python_call_that_resumes_and_the_same_cell_again_says_so(digits, tmp_path,
                                                                                           monkeypatch):
    run = tmp_path / "run"
    whole_again = ctrl_c_in_epoch_2(monkeypatch)
    with pytest.raises(KeyboardInterrupt) as cut:  # a bare one would stop pytest itself
        neuralab.train_classifier(classifier(digits), out=run, verbose=False)
    said = str(cut.value)
    assert isinstance(cut.value, Interrupted), said
    assert f"`neuralab.resume_classifier({str(run)!r})` continues it" in said and "--" not in said, said
    whole_again()

    # the same cell again: the advice is the resume, not an overwrite that throws the epochs away
    with pytest.raises(ParameterError) as again:
        neuralab.train_classifier(classifier(digits), out=run, verbose=False)
    said = str(again.value)
    assert "holds an interrupted run" in said and f"neuralab.resume_classifier({str(run)!r})" in said, said
    assert "pass overwrite to replace it" in said and "--" not in said, said
    assert Run(run).status() is Status.INTERRUPTED and len(Run(run).metrics()) == 1

    result = neuralab.resume_classifier(run, verbose=False)  # the call as it was said
    assert len(result.history) == 3 and Run(run).status() is Status.FINISHED


NET = """
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x):
        return self.layers(x)
"""


def test_a_run_of_pytorch_code_is_told_to_resume_with_trust_code(digits, tmp_path, monkeypatch):
    """A resume runs the run's copy of the code only when told to: the call said must say so."""
    (tmp_path / "net.py").write_text(NET)
    run = tmp_path / "run"
    config = neuralab.ClassifierConfig(model=f"{tmp_path / 'net.py'}:Net", data=str(digits),
                                       train=neuralab.TrainConfig(epochs=3, batch_size=64, seed=3, device="cpu"))
    whole_again = ctrl_c_in_epoch_2(monkeypatch)
    with pytest.raises(KeyboardInterrupt) as cut:
        neuralab.train_classifier(config, out=run, verbose=False)
    assert f"`neuralab.resume_classifier({str(run)!r}, trust_code=True)` continues it" in str(cut.value)
    whole_again()
    assert len(neuralab.resume_classifier(run, verbose=False, trust_code=True).history) == 3


def test_the_command_line_says_its_own_command_and_never_the_python_call(digits, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    args = ["train", "--model", "mlp", "--data", str(digits), "--epochs", "3", "--batch-size", "64", "--seed", "3",
            "--threads", "1", "--quiet", "--out", str(run)]
    whole_again = ctrl_c_in_epoch_2(monkeypatch)
    assert main(args) == 130
    err = capsys.readouterr().err
    assert f"`neuralab train --resume {run}` continues it" in err and "resume_classifier" not in err, err
    whole_again()

    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds an interrupted run" in err, err
    assert f"`neuralab train --resume {run}`" in err and "--overwrite" in err and "resume_classifier" not in err, err
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert Run(run).status() is Status.FINISHED


@pytest.mark.parametrize("kind", ["train", "forecast"])
def test_a_run_stopped_as_its_config_is_written_is_told_how_to_resume_and_keeps_its_model_json(digits, series_csv, kind,
                                                                                               tmp_path, monkeypatch,
                                                                                               capsys):
    """Ctrl-C (or a scheduler's SIGTERM) as config.json is written, before the first epoch: a run the
    listing shows as interrupted, which the message says how to resume, with model.json beside it
    (a forecast's had none, and its printed resume refused it as damaged)."""
    run = tmp_path / "run"
    written = Run.write_record

    def then_ctrl_c(self, *args, **kwargs):
        written(self, *args, **kwargs)
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(Run, "write_record", then_ctrl_c)
    # Ctrl-C as Python handles it, whatever an earlier test in this process left set for SIGINT
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    given = ["--data", str(digits), "--model", "mlp", "--batch-size", "64"] if kind == "train" else \
        ["--data", str(series_csv), "--lookback", "14", "--hidden", "4", "--backtest-folds", "1"]
    try:
        assert main([kind, *given, "--epochs", "1", "--threads", "1", "--quiet", "--out", str(run)]) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err
    assert f"`neuralab {kind} --resume {run}` starts it again from epoch 1" in err, err
    assert (run / runs.MODEL).is_file() and Run(run).status() is Status.INTERRUPTED
    monkeypatch.undo()
    if kind == "train":
        assert main(["evaluate", str(run)]) == 2
        assert "no model.safetensors yet (the run has not finished an epoch)" in capsys.readouterr().err
    assert main([kind, "--resume", str(run), "--quiet"]) == 0
    assert Run(run).status() is Status.FINISHED


def test_compare_called_again_keeps_its_finished_runs_and_resumes_the_interrupted_one(digits, tmp_path, monkeypatch,
                                                                                       capsys):
    base, out = classifier(digits), tmp_path / "cmp"
    whole_again = ctrl_c_in_epoch_2(monkeypatch, only="mlp-seed1")
    with pytest.raises(KeyboardInterrupt) as cut:  # a bare one would stop pytest itself
        neuralab.compare(["mlp"], base, 2, out, verbose=False)
    said = str(cut.value)
    assert isinstance(cut.value, Interrupted), said
    assert said.startswith(f"{out / 'mlp-seed1'}: interrupted") and "`compare(...)` again with the same `out`" in said
    assert "--" not in said, said
    whole_again()
    first = out / "mlp-seed0"
    kept = {name: (first / name).stat().st_mtime_ns for name in (runs.WEIGHTS, runs.RESULTS, runs.METRICS)}
    assert Run(first).status() is Status.FINISHED and Run(out / "mlp-seed1").status() is Status.INTERRUPTED

    # another budget is another comparison: refused, naming what differs, first with ways on that keep the runs
    with pytest.raises(ParameterError) as other:
        neuralab.compare(["mlp"], classifier(digits, epochs=2), 2, out, verbose=False)
    said = str(other.value)
    assert other.value.parameter == "out" and "already holds mlp-seed0, started with other settings: " \
        "epochs 2 (the run has 3); give the run's own to go on with this comparison, its finished runs kept, or " \
        "choose another out" in said, said
    assert "(overwrite trains every run of it again, the finished ones lost)" in said, said

    rows = neuralab.compare(["mlp"], base, 2, out, verbose=True)
    printed = capsys.readouterr().out
    assert "mlp seed 0: test accuracy" in printed and "taken as it is" in printed
    assert {name: (first / name).stat().st_mtime_ns for name in kept} == kept, "the finished run was trained again"
    assert Run(out / "mlp-seed1").status() is Status.FINISHED
    assert len(Run(out / "mlp-seed1").metrics()) == 3

    whole = neuralab.compare(["mlp"], base, 2, tmp_path / "whole", verbose=False)
    assert rows[0].accuracies == whole[0].accuracies and rows[0].params == whole[0].params
    assert rows[0].test_images == whole[0].test_images
    table = (out / "compare.csv").read_text().splitlines()
    assert [line.split(",")[3:] for line in table] == \
        [line.split(",")[3:] for line in (tmp_path / "whole" / "compare.csv").read_text().splitlines()]


def test_compare_on_the_command_line_says_to_run_the_same_command_again(digits, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--models", "mlp", "--data", str(digits), "--seeds", "1", "--epochs", "3", "--threads", "1",
            "--out", str(out)]
    whole_again = ctrl_c_in_epoch_2(monkeypatch)
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "the same `neuralab compare` command again continues the comparison" in err, err
    assert "compare(" not in err and "`out`" not in err, err
    whole_again()
    assert main(args) == 0
    assert "| mlp |" in capsys.readouterr().out and Run(out / "mlp-seed0").status() is Status.FINISHED


@pytest.mark.parametrize("interface", ["python", "command line"])
def test_compare_stopped_as_a_runs_report_is_written_says_to_go_on_and_going_on_writes_it(digits, tmp_path,
                                                                                           monkeypatch, capsys,
                                                                                           interface):
    """A small run spends most of its time on its report, where a stop said only how to write that
    report, not that the comparison stopped; and the comparison called again took the finished run
    as it was, its report never written."""
    from neuralab.reports import classifier as classifier_report

    out, drawn = tmp_path / "cmp", classifier_report.write_classifier_report

    def stopped(run_dir, **kwargs):
        if Path(run_dir).name == "mlp-seed0":
            raise KeyboardInterrupt
        return drawn(run_dir, **kwargs)

    args = ["compare", "--models", "mlp", "--data", str(digits), "--seeds", "2", "--epochs", "1", "--threads", "1",
            "--out", str(out)]
    base = classifier(digits, epochs=1)
    with monkeypatch.context() as m:
        m.setattr(classifier_report, "write_classifier_report", stopped)
        if interface == "python":
            with pytest.raises(KeyboardInterrupt) as cut:
                neuralab.compare(["mlp"], base, 2, out, verbose=False)
            said = str(cut.value)
            assert isinstance(cut.value, Interrupted) and "`compare(...)` again with the same `out` continues the " \
                "comparison: it writes the reports its finished runs lack" in said, said
        else:
            assert main(args) == 130
            said = capsys.readouterr().err
            assert "the same `neuralab compare` command again continues the comparison: it writes the reports its " \
                "finished runs lack" in said and "neuralab report" not in said, said
    first = out / "mlp-seed0"
    assert said.count("\n") <= 1 and f"{first / runs.REPORT}: interrupted; the run is finished" in said, said
    assert Run(first).status() is Status.FINISHED and not (first / runs.REPORT).exists()
    weights = (first / runs.WEIGHTS).stat().st_mtime_ns
    if interface == "python":
        neuralab.compare(["mlp"], base, 2, out, verbose=True)
    else:
        assert main(args) == 0
    printed = capsys.readouterr().out
    assert re.search(r"mlp seed 0: test accuracy [\d.]+% \(finished before: taken as it is, its report written\)",
                     printed), printed
    assert (first / runs.WEIGHTS).stat().st_mtime_ns == weights, "the finished run was trained again"
    assert all((out / f"mlp-seed{seed}" / runs.REPORT).is_file() for seed in (0, 1))
    results = json.loads((first / runs.RESULTS).read_text())
    assert f"test accuracy <b>{results['test_accuracy'] * 100:.2f}%</b>" in (first / runs.REPORT).read_text()


def test_compare_run_again_in_a_new_session_takes_its_threads_device_and_a_copy_of_the_data(mnist, tmp_path,
                                                                                             monkeypatch, capsys):
    """A requeued job may land on a node with other cores, without its GPU, or with the dataset's
    files copied elsewhere: settings of the session, which `train --resume` takes too, and which
    the same comparison run again refused, pointing to --overwrite and its finished runs' loss."""
    first_copy = idx_subset(mnist, tmp_path / "scratch-1", 600, 200)
    out = tmp_path / "cmp"
    args = ["compare", "--models", "mlp", "--data", "mnist", "--seeds", "2", "--epochs", "3", "--batch-size", "64",
            "--out", str(out)]
    whole_again = ctrl_c_in_epoch_2(monkeypatch, only="mlp-seed1")
    assert main([*args, "--data-dir", str(first_copy), "--threads", "1", "--device", "cpu"]) == 130
    assert "the same `neuralab compare` command again continues the comparison" in capsys.readouterr().err
    whole_again()
    first = out / "mlp-seed0"
    kept = (first / runs.WEIGHTS).stat().st_mtime_ns
    assert Run(first).status() is Status.FINISHED and Run(out / "mlp-seed1").status() is Status.INTERRUPTED

    assert main([*args, "--data-dir", str(first_copy), "--epochs", "2", "--lr", "0.01"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"neuralab: error: --out {out}: already holds mlp-seed0, started with other settings: "), err
    assert "--epochs 2 (the run has 3), --lr 0.01 (the run has 0.003); give the run's own" in err, err
    assert "another --out" in err and err.count("\n") == 1, err
    assert "--threads" not in err and "--data-dir" not in err, err

    moved = tmp_path / "scratch-2"
    first_copy.rename(moved)  # the job's node-local copy: the same files elsewhere, the first place gone
    with pytest.warns(runs.EnvironmentChangedWarning, match="this session computes with threads 2, the run's first "
                                                            "with threads 1"):
        assert main([*args, "--data-dir", str(moved), "--threads", "2", "--device", "auto"]) == 0
    printed = capsys.readouterr().out
    assert "mlp seed 0: test accuracy" in printed and "taken as it is" in printed, printed
    assert (first / runs.WEIGHTS).stat().st_mtime_ns == kept, "the finished run was trained again"
    resumed = Run(out / "mlp-seed1")
    assert resumed.status() is Status.FINISHED and len(resumed.metrics()) == 3
    config = resumed.record["config"]
    assert config["data_dir"] == str(moved) and config["train"]["threads"] == 1 and config["train"]["device"] == "cpu"

    idx_subset(mnist, tmp_path / "other", 600, 100)  # other files: the session's place, but checked by their digest
    assert main([*args, "--data-dir", str(tmp_path / "other")]) == 2
    assert "already holds mlp-seed0, trained on other data" in capsys.readouterr().err


def test_compare_called_again_with_its_picture_folder_moved_goes_on(tmp_path, monkeypatch, capsys):
    """A job's node-local copy of the pictures: the folder is the session's place, as a named
    dataset's `data_dir` is, and the pictures are checked by their digest."""
    first_place = digits_folder(tmp_path / "A", n=300)
    out = tmp_path / "cmp"
    whole_again = ctrl_c_in_epoch_2(monkeypatch, only="mlp-seed1")
    with pytest.raises(KeyboardInterrupt):
        neuralab.compare(["mlp"], classifier(first_place, epochs=2), 2, out, verbose=False)
    whole_again()
    kept = (out / "mlp-seed0" / runs.WEIGHTS).stat().st_mtime_ns
    moved = first_place.rename(tmp_path / "B")

    neuralab.compare(["mlp"], classifier(moved, epochs=2), 2, out, verbose=True)
    assert "mlp seed 0: test accuracy" in capsys.readouterr().out
    assert (out / "mlp-seed0" / runs.WEIGHTS).stat().st_mtime_ns == kept, "the finished run was trained again"
    resumed = Run(out / "mlp-seed1")
    assert resumed.status() is Status.FINISHED and len(resumed.metrics()) == 2
    assert resumed.record["config"]["data"] == str(moved)


def test_compare_called_again_names_the_recipe_its_runs_were_started_with(digits, tmp_path):
    """`warmup` is no option of compare's: the recipe that gives it is the way on."""
    recipe = dict(neuralab.RECIPES["fast"], epochs=1, batch_size=64, device="cpu")
    val_fraction, out = recipe.pop("val_fraction"), tmp_path / "cmp"
    neuralab.compare(["mlp"], neuralab.ClassifierConfig(model="mlp", data=str(digits), val_fraction=val_fraction,
                                                        train=neuralab.TrainConfig(**recipe)), 1, out, verbose=False)
    by_hand = neuralab.ClassifierConfig(model="mlp", data=str(digits), val_fraction=val_fraction,
                                        train=neuralab.TrainConfig(**{**recipe, "warmup": 0.2}))
    with pytest.raises(ParameterError) as again:
        neuralab.compare(["mlp"], by_hand, 1, out, verbose=False)
    said = str(again.value)
    assert "started with other settings: warmup 0.2 (the run has 0.3); " in said, said
    assert "the run's are those of recipe fast: give them to go on with this comparison" in said, said


def test_compare_refuses_a_run_of_another_seed_in_its_place_as_a_run_in_the_way(digits, tmp_path):
    """No setting of compare's gives a run's seed: out/mlp-seed0 of `seed` 5 is another run, not
    one of this comparison started with other settings."""
    out = tmp_path / "runs"
    neuralab.train_classifier(classifier(digits, epochs=1), out=out / "mlp-seed0", verbose=False)  # seed 3
    with pytest.raises(ParameterError) as again:
        neuralab.compare(["mlp"], classifier(digits, epochs=1), 1, out, verbose=False)
    said = str(again.value)
    assert said.endswith("already holds mlp-seed0; pass overwrite to replace the runs of this comparison, or choose "
                         "another out"), said


def test_compare_called_again_with_the_defaults_given_goes_on(digits, tmp_path, monkeypatch):
    """The defaults the help names, given explicitly, are the ones the run left to the library."""
    out, base = tmp_path / "cmp", classifier(digits, epochs=2)
    whole_again = ctrl_c_in_epoch_2(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        neuralab.compare(["mlp"], base, 1, out, verbose=False)
    whole_again()

    with pytest.raises(ParameterError) as other:
        neuralab.compare(["mlp"], replaced(base, color="rgb"), 1, out, verbose=False)
    assert "started with other settings: color 'rgb' (the run has none given);" in str(other.value), str(other.value)
    explicit = replaced(base, color="auto", on_error="refuse", test_fraction=0.1,
                        train=replaced(base.train, loss="cross_entropy"))
    neuralab.compare(["mlp"], explicit, 1, out, verbose=False)
    assert Run(out / "mlp-seed0").status() is Status.FINISHED and len(Run(out / "mlp-seed0").metrics()) == 2


def test_compare_called_again_refuses_a_finished_run_whose_pictures_changed_since(tmp_path):
    """The same config, other pictures: a finished run taken as it is would report its old test set."""
    digits = digits_folder(tmp_path / "digits", n=300)
    base, out = classifier(digits, epochs=1), tmp_path / "cmp"
    neuralab.compare(["mlp"], base, 2, out, verbose=False)
    run = out / "mlp-seed0"
    results = (run / runs.RESULTS).read_bytes()
    zero = sorted((digits / "0").iterdir())
    for picture in zero[: len(zero) // 2]:  # half of one class's pictures deleted
        picture.unlink()

    with pytest.raises(ParameterError) as again:
        neuralab.compare(["mlp"], base, 2, out, verbose=False)
    said = str(again.value)
    assert again.value.parameter == "out" and again.value.value == str(out), said
    assert "already holds mlp-seed0, trained on other data" in said and "300 when the run was trained" in said, said
    assert "pass overwrite" in said, said
    assert (run / runs.RESULTS).read_bytes() == results and Run(out / "mlp-seed1").status() is Status.FINISHED

    rows = neuralab.compare(["mlp"], base, 2, out, overwrite=True, verbose=False)
    assert rows[0].test_images == Run(run).record["data"]["test"] < 30


def test_compare_called_again_on_a_named_dataset_takes_every_seeds_finished_run(fashion_mnist, tmp_path, capsys):
    """Each seed draws its own validation split of a named dataset, whose digest covers the split's
    images: the runs of seeds after the first were refused as trained on other data."""
    data = idx_subset(fashion_mnist, tmp_path / "fashion", 600, 200)
    base = neuralab.ClassifierConfig(model="mlp", data="fashion-mnist", data_dir=str(data), val_fraction=0.2,
                                     train=neuralab.TrainConfig(epochs=1, batch_size=64, device="cpu"))
    out = tmp_path / "cmp"
    first = neuralab.compare(["mlp"], base, 3, out, verbose=False)
    kept = {seed: (out / f"mlp-seed{seed}" / runs.WEIGHTS).stat().st_mtime_ns for seed in range(3)}

    again = neuralab.compare(["mlp"], base, 3, out, verbose=True)
    assert capsys.readouterr().out.count("taken as it is") == 3
    assert again[0].accuracies == first[0].accuracies
    assert {seed: (out / f"mlp-seed{seed}" / runs.WEIGHTS).stat().st_mtime_ns for seed in range(3)} == kept


def test_compare_of_pytorch_code_says_to_resume_the_run_first_and_that_way_goes_on(digits, tmp_path, monkeypatch,
                                                                                   capsys):
    """compare never runs a run's copy of code: the user resumes it, trusting it, then compares again."""
    (tmp_path / "net.py").write_text(NET)
    model, out = f"{tmp_path / 'net.py'}:Net", tmp_path / "cmp"
    base = neuralab.ClassifierConfig(model=model, data=str(digits),
                                     train=neuralab.TrainConfig(epochs=3, batch_size=64, seed=3, device="cpu",
                                                                threads=1))
    whole_again = ctrl_c_in_epoch_2(monkeypatch)
    with pytest.raises(KeyboardInterrupt) as cut:
        neuralab.compare([model], base, 1, out, verbose=False)
    run, said = cut.value.path, str(cut.value)
    assert run.parent == out and Run(run).status() is Status.INTERRUPTED
    assert f"`neuralab.resume_classifier({str(run)!r}, trust_code=True)` continues it; then calling `compare(...)` " \
        "again with the same `out`" in said and "resumes this run" not in said, said
    whole_again()

    with pytest.raises(ParameterError) as again:  # the same call again, as a user not told would make it
        neuralab.compare([model], base, 1, out, verbose=False)
    said = str(again.value)
    assert again.value.parameter == "out" and again.value.value == str(out), said
    assert f"holds {run.name}, an interrupted run," in said and "does not run a run's copy of its code" in said, said
    assert f"`neuralab.resume_classifier({str(run)!r}, trust_code=True)` continues" in said, said
    assert Run(run).status() is Status.INTERRUPTED and len(Run(run).metrics()) == 1

    args = ["compare", "--models", model, "--data", str(digits), "--seeds", "1", "--epochs", "3", "--batch-size",
            "64", "--threads", "1", "--device", "cpu", "--out", str(out)]
    assert main(args) == 2  # the command line says its own command, never the Python call
    err = capsys.readouterr().err
    assert f"neuralab train --resume {run} --trust-code" in err and "resume_classifier" not in err, err
    assert err.startswith(f"neuralab: error: --out {out}: holds {run.name}") and "neuralab compare` command" in err, err

    neuralab.resume_classifier(run, verbose=False, trust_code=True)  # the words followed
    rows = neuralab.compare([model], base, 1, out, verbose=True)
    assert "taken as it is" in capsys.readouterr().out
    assert len(Run(run).metrics()) == 3 and rows[0].accuracies == [Run(run).results()["test_accuracy"]]


def forecast_config() -> pipeline.ForecastConfig:
    return pipeline.ForecastConfig(data="seattle-weather", target="temp_max",
                                   windows=WindowConfig(lookback=14, horizon=2), model=ModelConfig("lstm", hidden=[8]),
                                   train=series_train_config(epochs=2, device="cpu", seed=3), backtest_folds=2)


def pressed(*args, **kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_in_the_backtests_leaves_a_forecast_that_resume_forecast_finishes(tmp_path, monkeypatch):
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(pipeline, "rolling_origin", pressed)  # after the network's fit, before results.json
        with pytest.raises(KeyboardInterrupt) as cut:  # a bare one would stop pytest itself
            pipeline.run_forecast(forecast_config(), out=run, verbose=False)
    said = str(cut.value)
    assert isinstance(cut.value, Interrupted), said
    assert f"`neuralab.resume_forecast({str(run)!r})` continues it" in said and "--" not in said, said
    assert Run(run).status() is Status.INTERRUPTED

    with pytest.raises(ParameterError, match="holds an interrupted run, which `neuralab.resume_forecast"):
        pipeline.run_forecast(forecast_config(), out=run, verbose=False)
    result = neuralab.resume_forecast(run, verbose=False)
    assert Run(run).status() is Status.FINISHED and len(result.history) == 2
    assert json.loads((run / runs.RESULTS).read_text())["backtest"]


def test_ctrl_c_in_a_forecast_after_its_fit_gives_the_resume_command_on_the_command_line(tmp_path, monkeypatch,
                                                                                         capsys):
    run = tmp_path / "run"
    args = ["forecast", "--data", "seattle-weather", "--target", "temp_max", "--lookback", "14", "--horizon", "2",
            "--model", "lstm", "--hidden", "8", "--epochs", "2", "--backtest-folds", "2", "--quiet", "--out", str(run)]
    with monkeypatch.context() as m:
        m.setattr(pipeline, "rolling_origin", pressed)
        assert main(args) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"`neuralab forecast --resume {run}` continues it" in err, err
    assert "resume_forecast" not in err, err
    assert main(["forecast", "--resume", str(run), "--quiet"]) == 0
    assert Run(run).status() is Status.FINISHED


def test_ctrl_c_while_a_finished_forecast_draws_its_report_says_the_run_is_finished(tmp_path, monkeypatch):
    from neuralab.forecasting import report

    run = tmp_path / "run"
    monkeypatch.setattr(report, "report_run", pressed)  # results.json is written: nothing is left to resume
    with pytest.raises(KeyboardInterrupt) as cut:
        pipeline.run_forecast(forecast_config(), out=run, verbose=False)
    assert not isinstance(cut.value, Interrupted)
    assert "interrupted; the run is finished" in str(cut.value) and Run(run).status() is Status.FINISHED


def test_compare_of_pytorch_code_on_the_command_line_says_to_resume_it_first(digits, tmp_path, monkeypatch, capsys):
    """The command line said "the same `neuralab compare` command again continues the comparison:
    it resumes this run", and that command then refused the run of code."""
    (tmp_path / "net.py").write_text(NET)
    out = tmp_path / "cmp"
    args = ["compare", "--models", f"{tmp_path / 'net.py'}:Net", "--data", str(digits), "--seeds", "1", "--epochs", "3",
            "--batch-size", "64", "--threads", "1", "--device", "cpu", "--out", str(out)]
    ctrl_c_in_epoch_2(monkeypatch)
    assert main(args) == 130
    err = capsys.readouterr().err
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    assert err.count("\n") == 1 and f"`neuralab train --resume {run} --trust-code` continues it; then the same " \
        "`neuralab compare` command again continues the comparison" in err, err
    assert "resumes this run" not in err and "resume_classifier" not in err, err
