"""A researcher's own PyTorch modules, given as FILE.py on the command line, through what comes
after training: the scheduler's job command (--resume-if-interrupted) typed again with the
file's relative path, a trained forecaster described in Python, and ONNX export of a
torch.compile()d module, of weights past protobuf's 2 GiB and of a forward that branches on a
tensor's value. Real data: scikit-learn's handwritten digits as a picture folder (8x8), and a
daily load with a weekly cycle (conftest's series_csv)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import digits_folder

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.runs import Run, Status
from test_cli_resume_flags import refused

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x):
        return self.body(x)
"""

FORECASTER = """
from torch import nn


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, 4, batch_first=True)
        self.head = nn.Linear(4, 1)

    def forward(self, x):  # (batch, time, features) -> (batch, 1)
        out, _ = self.lstm(x)
        return self.head(out[:, -1])
"""

COMPILED = NET + """

model = torch.compile(Net())
"""

# the forward takes one branch for a batch of several images and the other for one image alone
BRANCHY = """
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = x.flatten(1)
        if x.abs().sum() > x[0].abs().sum():
            return self.fc(x)
        return self.fc(x) * 0.5 - 1
"""

# logits in the thousands, as a wide layer's are in the hundreds (556 million parameters: 330)
LOUD = NET.replace("return self.body(x)", "return self.body(x) * 1000")

REQUEUE = "--resume-if-interrupted"


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("digits"), 300)


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """The folder a job runs in, its modules under mods/, named relative to it as a user does."""
    (tmp_path / "work" / "mods").mkdir(parents=True)
    for name, code in (("net.py", NET), ("fc.py", FORECASTER), ("compiled.py", COMPILED), ("branchy.py", BRANCHY),
                       ("loud.py", LOUD)):
        (tmp_path / "work" / "mods" / name).write_text(code)
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "work"


def train_job(digits: Path, model: str, *more: str) -> list[str]:
    return ["train", "--model", model, "--data", str(digits), "--epochs", "3", "--batch-size", "64", "--seed", "1",
            "--threads", "1", "--quiet", "--out", "runs/job", *more]


def forecast_job(csv: Path, model: str, *more: str) -> list[str]:
    return ["forecast", "--data", str(csv), "--target", "load", "--model", model, "--lookback", "7", "--epochs", "3",
            "--patience", "0", "--backtest-folds", "1", "--baselines", "persistence", "--seed", "1", "--threads", "1",
            "--quiet", "--out", "runs/job", *more]


def files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file()}


# --- rP 2: the job command that started a run of FILE.py resumes it ------------------------------------

@pytest.mark.parametrize("model", ["mods/net.py", "mods/net.py:Net"])
def test_the_train_job_command_of_a_module_file_resumes_it_then_finds_it_finished(work, digits, model, capsys,
                                                                                   cut_in_epoch_2):
    job = train_job(digits, model, REQUEUE, "--trust-code")
    whole_again = cut_in_epoch_2()
    assert main(job) == 130  # preempted in epoch 2
    whole_again()
    run = work / "runs" / "job"
    assert Run(run).status() is Status.INTERRUPTED
    assert main(job) == 0, capsys.readouterr().err  # requeued from the same folder: resumed
    assert Run(run).status() is Status.FINISHED and len(Run(run).record["sessions"]) == 1
    capsys.readouterr()
    assert main(job) == 0  # requeued once more after it finished: the job is done
    assert "the run is finished already" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["train", "forecast"])
def test_the_job_command_without_trust_code_resumes_the_file_it_names_and_refuses_it_changed(
        work, digits, series_csv, kind, capsys, cut_in_epoch_2):
    """The requeued job exited 2 saying to pass --trust-code, which docs/runs.md reads as "fix the
    command": the file typed again, as the run keeps it, is the consent its first start was."""
    file = "mods/net.py" if kind == "train" else "mods/fc.py"
    job = train_job(digits, file, REQUEUE) if kind == "train" else forecast_job(series_csv, file, REQUEUE)
    whole_again = cut_in_epoch_2()
    assert main(job) == 130
    whole_again()
    run = work / "runs" / "job"
    capsys.readouterr()
    kept = Path(file).read_text()
    Path(file).write_text(kept + "# tried a wider layer\n")
    assert main(job) == 2 and Run(run).status() is Status.INTERRUPTED  # not the code the run was trained with
    assert f"--model '{file}' has changed since the run was made" in capsys.readouterr().err
    Path(file).write_text(kept)
    assert main(job) == 0, capsys.readouterr().err
    assert Run(run).status() is Status.FINISHED and len(Run(run).record["sessions"]) == 1


def helped_job_stopped_in_epoch_2(digits, cut_in_epoch_2) -> list[str]:
    """The job command of a model importing width.py from beside it, stopped in its epoch 2."""
    Path("mods/width.py").write_text("WIDTH = 16\n")
    Path("mods/helped.py").write_text(NET.replace("import torch", "import torch\nfrom width import WIDTH", 1))
    job = train_job(digits, "mods/helped.py", REQUEUE)
    whole_again = cut_in_epoch_2()
    assert main(job) == 130
    whole_again()
    return job


def test_the_train_job_command_refuses_a_changed_file_beside_the_model_by_its_name(work, digits, capsys,
                                                                                   cut_in_epoch_2):
    """It said to pass --trust-code, which would resume with the run's copy of the file the user edited."""
    job = helped_job_stopped_in_epoch_2(digits, cut_in_epoch_2)
    capsys.readouterr()
    Path("mods/width.py").write_text("WIDTH = 32\n")
    assert main(job) == 2 and Run(work / "runs" / "job").status() is Status.INTERRUPTED
    err = capsys.readouterr().err
    assert "mods/width.py: changed (or gone) since the run in runs/job was made" in err and "--trust-code" not in err
    Path("mods/width.py").write_text("WIDTH = 16\n")
    assert main(job) == 0, capsys.readouterr().err
    Path("mods/width.py").write_text("WIDTH = 64\n")  # edited after the run finished: the requeued job has nothing to do
    assert main(job) == 0 and "the run is finished already" in capsys.readouterr().out


def test_the_train_job_command_of_a_finished_run_with_a_lost_report_names_the_changed_file_beside_the_model(
        work, digits, capsys, cut_in_epoch_2):
    """It said "the run's model is PyTorch code ... pass --trust-code", where the file the user
    typed again no longer is the run's: the unfinished run's refusal names the edited file."""
    job = helped_job_stopped_in_epoch_2(digits, cut_in_epoch_2)
    assert main(job) == 0, capsys.readouterr().err
    report = work / "runs" / "job" / "report.html"
    report.unlink()  # as a kill after the last epoch leaves it
    Path("mods/width.py").write_text("WIDTH = 32\n")
    capsys.readouterr()
    assert main(job) == 2 and not report.exists()
    err = capsys.readouterr().err
    assert "mods/width.py: changed (or gone) since the run in runs/job was made" in err, err
    assert main(shlex.split(err.split("`")[1])[1:]) == 0 and report.is_file()


@pytest.mark.parametrize("kind", ["train", "forecast"])
def test_the_job_command_without_trust_code_writes_again_the_report_a_kill_stopped(work, digits, series_csv, kind,
                                                                                   capsys):
    """The requeued job of a finished run whose report.html was lost exited 2 asking for
    --trust-code, where the file typed again is the consent to run the run's copy."""
    job = train_job(digits, "mods/net.py", REQUEUE) if kind == "train" else \
        forecast_job(series_csv, "mods/fc.py", REQUEUE)
    assert main(job) == 0
    report = work / "runs" / "job" / "report.html"
    report.unlink()
    capsys.readouterr()
    assert main(job) == 0, capsys.readouterr().err
    assert "its report, which was stopped, is written again" in capsys.readouterr().out and report.is_file()


def test_a_model_file_given_through_a_link_keeps_and_checks_the_files_beside_the_links_target(
        work, digits, capsys, cut_in_epoch_2):
    """Python imports a linked file's neighbours from beside its target; the run kept (and the job
    command checked) the same-named files beside the link, or none: the run could not be loaded."""
    real = work / "real"
    real.mkdir()
    (real / "width.py").write_text("WIDTH = 16\n")
    (real / "net.py").write_text(NET.replace("import torch", "import torch\nfrom width import WIDTH", 1)
                                 .replace("64, 16), nn.ReLU(), nn.Linear(16", "64, WIDTH), nn.ReLU(), nn.Linear(WIDTH"))
    Path("mods/width.py").write_text("WIDTH = 32\n")
    Path("mods/linked.py").symlink_to(real / "net.py")
    job = train_job(digits, "mods/linked.py", REQUEUE)
    whole_again = cut_in_epoch_2()
    assert main(job) == 130
    whole_again()
    run = work / "runs" / "job"
    assert (run / "width.py").read_text() == "WIDTH = 16\n"
    capsys.readouterr()
    (real / "width.py").write_text("WIDTH = 24\n")
    assert main(job) == 2 and f"{real / 'width.py'}: changed (or gone)" in capsys.readouterr().err
    (real / "width.py").write_text("WIDTH = 16\n")
    assert main(job) == 0, capsys.readouterr().err
    assert main(["evaluate", "runs/job", "--trust-code"]) == 0, capsys.readouterr().err


def test_a_model_importing_ones_own_module_from_elsewhere_on_the_path_is_warned_of_as_it_starts(
        work, digits, capsys, monkeypatch, tmp_path):
    """A helper on PYTHONPATH, which the run does not keep, edited between the job's start and its
    requeue: the run resumed with the new code, and nothing had said the run depends on it."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "elsewhere_act.py").write_text("from torch.nn import ReLU as ACT\n")
    monkeypatch.syspath_prepend(str(lib))  # as PYTHONPATH puts it
    Path("mods/width.py").write_text("WIDTH = 16\n")
    Path("mods/helped.py").write_text(NET.replace("import torch", "import numpy\nimport torch\nfrom width import "
                                                  "WIDTH\nfrom elsewhere_act import ACT", 1).replace("nn.ReLU()", "ACT()"))
    try:
        with pytest.warns(UserWarning) as said:
            assert main(train_job(digits, "mods/helped.py", "--epochs", "1")) == 0
    finally:
        sys.modules.pop("elsewhere_act", None)
    warned = [str(w.message) for w in said if "from outside its folder" in str(w.message)]
    assert warned == [f"helped.py: imports elsewhere_act ({lib / 'elsewhere_act.py'}) from outside its folder, which "
                      "the run does not keep: a resume or a reload of the run runs it as it is then, edited or gone; "
                      "to keep it with the run, put it beside the model's file"], warned


def test_ones_own_namespace_package_elsewhere_on_the_path_is_named_as_a_module_is(work, monkeypatch, tmp_path):
    """A folder without __init__.py on PYTHONPATH has no file for its origin: the run depended
    on it, and nothing said so."""
    from neuralab.training.user_code import imported_elsewhere

    lib = tmp_path / "lib"
    (lib / "elsewhere_ns").mkdir(parents=True)
    (lib / "elsewhere_ns" / "layers.py").write_text("WIDTH = 16\n")
    (lib / "elsewhere_mod.py").write_text("WIDTH = 16\n")
    monkeypatch.syspath_prepend(str(lib))  # as PYTHONPATH puts it
    Path("mods/nsnet.py").write_text("from elsewhere_ns.layers import WIDTH\nimport elsewhere_mod\nimport numpy\n")
    assert imported_elsewhere(Path("mods/nsnet.py"), {}) == {"elsewhere_mod": str(lib / "elsewhere_mod.py"),
                                                             "elsewhere_ns": str(lib / "elsewhere_ns")}


def test_a_pyc_put_in_the_runs_pycache_does_not_run_in_place_of_the_checked_file_beside_the_model(
        work, digits, capsys, cut_in_epoch_2):
    """Python's import ran runs/job/__pycache__/width.*.pyc, whose header gave width.py's time and
    size, in place of width.py: code no SHA-256 covers, run by the requeued job without
    --trust-code and by a reload with it."""
    import importlib._bootstrap_external as bootstrap
    import importlib.util

    job = helped_job_stopped_in_epoch_2(digits, cut_in_epoch_2)
    kept = work / "runs" / "job" / "width.py"
    planted = compile(f"open({str(work / 'ran')!r}, 'w').close()\nWIDTH = 16\n", str(kept), "exec")
    pyc = Path(importlib.util.cache_from_source(str(kept)))
    pyc.parent.mkdir(exist_ok=True)
    pyc.write_bytes(bootstrap._code_to_timestamp_pyc(planted, int(kept.stat().st_mtime), kept.stat().st_size))
    assert main(job) == 0, capsys.readouterr().err
    assert main(["evaluate", "runs/job", "--trust-code"]) == 0, capsys.readouterr().err
    assert not (work / "ran").exists() and Run(work / "runs" / "job").status() is Status.FINISHED


# the model puts its own folder on sys.path, and its helper imports a neighbour as the constructor calls it
ON_ITS_PATH = NET.replace("import torch", "import os\nimport sys\nsys.path.insert(0, os.path.dirname("
                          "os.path.abspath(__file__)))\nimport torch\nimport helper", 1) \
    .replace("super().__init__()", "super().__init__()\n        width = helper.width()", 1) \
    .replace("64, 16), nn.ReLU(), nn.Linear(16", "64, width), nn.ReLU(), nn.Linear(width")


def test_a_pyc_in_the_runs_pycache_does_not_run_for_a_neighbour_imported_once_the_file_has_run(
        work, digits, capsys, monkeypatch):
    """The checked bytes ran only while the file's top level ran: a neighbour imported later (in
    the constructor neuralab calls, or in forward) came through Python's import from the run's
    folder, which the model's code had put on sys.path, .pyc included: code no SHA-256 covers,
    run by the requeued job without --trust-code and by a reload with it."""
    import importlib._bootstrap_external as bootstrap
    import importlib.util

    monkeypatch.setattr(sys, "path", list(sys.path))  # the model's code adds its folders
    Path("mods/helper.py").write_text("def width():\n    import width2\n    return width2.WIDTH\n")
    Path("mods/width2.py").write_text("WIDTH = 16\n")
    Path("mods/onpath.py").write_text(ON_ITS_PATH)
    job = train_job(digits, "mods/onpath.py", REQUEUE, "--epochs", "1")
    assert main(job) == 0, capsys.readouterr().err
    for name in ("helper", "width2"):  # as a requeued job, another process, starts
        sys.modules.pop(name, None)
    run = work / "runs" / "job"
    kept = run / "width2.py"
    planted = compile(f"open({str(work / 'ran')!r}, 'w').close()\nWIDTH = 16\n", str(kept), "exec")
    pyc = Path(importlib.util.cache_from_source(str(kept)))
    pyc.parent.mkdir(exist_ok=True)
    pyc.write_bytes(bootstrap._code_to_timestamp_pyc(planted, int(kept.stat().st_mtime), kept.stat().st_size))
    (run / "report.html").unlink()  # as a kill after the last epoch leaves it: the job builds the model again
    try:
        assert main(job) == 0, capsys.readouterr().err
        assert main(["evaluate", "runs/job", "--trust-code"]) == 0, capsys.readouterr().err
    finally:
        for name in ("helper", "width2"):
            sys.modules.pop(name, None)
    assert not (work / "ran").exists() and (run / "report.html").is_file()


def test_a_neighbour_imported_inside_the_constructor_and_forward_is_found_as_plain_python_finds_it(
        work, digits, capsys):
    """"mods/lazy.py:5: Net() failed: ModuleNotFoundError: No module named 'width'": the folder
    was off sys.path once the file's top level had run."""
    Path("mods/width.py").write_text("WIDTH = 16\nSCALE = 1.0\n")
    Path("mods/lazy.py").write_text(
        NET.replace("super().__init__()", "super().__init__()\n        from width import WIDTH", 1)
        .replace("64, 16), nn.ReLU(), nn.Linear(16", "64, WIDTH), nn.ReLU(), nn.Linear(WIDTH")
        .replace("return self.body(x)", "from width import SCALE\n        return self.body(x) * SCALE"))
    try:
        assert main(train_job(digits, "mods/lazy.py", "--epochs", "1")) == 0, capsys.readouterr().err
        assert main(["evaluate", "runs/job", "--trust-code"]) == 0, capsys.readouterr().err
    finally:
        sys.modules.pop("width", None)
    assert (work / "runs" / "job" / "width.py").read_text() == "WIDTH = 16\nSCALE = 1.0\n"


def test_torchscript_compiles_the_checked_bytes_not_the_file_on_disk(tmp_path):
    """inspect, and so TorchScript, read the file as it is on disk: a forward edited after the
    SHA-256 check was the one compiled."""
    from neuralab.training.user_code import load_python

    checked = NET + "\n\nmodel = torch.jit.script(Net())\n"
    path = tmp_path / "model.py"
    path.write_text(checked.replace("return self.body(x)", "return self.body(x) * 0 + 42"))
    model, _ = load_python(path, "model", {}, checked=checked.encode())
    torch.manual_seed(0)
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(model(x), model.body(x))


def test_torchscript_compiles_the_users_own_file_as_edited_after_training_from_it(tmp_path, monkeypatch):
    """Training from the user's own file pinned its text in linecache: in the same session, the
    file edited and imported as their module, TorchScript compiled the forward as it was."""
    import importlib

    from neuralab.training.user_code import load_python

    (tmp_path / "notebook_net.py").write_text(NET)
    load_python(tmp_path / "notebook_net.py", "Net", {})  # as training from it runs it
    (tmp_path / "notebook_net.py").write_text(NET.replace("return self.body(x)", "return self.body(x) * 2"))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        net = importlib.import_module("notebook_net").Net()
    finally:
        sys.modules.pop("notebook_net", None)
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.jit.script(net)(x), net(x))


def test_a_package_without_init_beside_the_file_is_said_as_a_package_beside_it(work, digits, capsys):
    """A folder beside the model without __init__.py, which Python imports as a namespace package,
    was said to be "from outside its folder ... put it beside the model's file" (it is), and the
    run recorded the file as one to rebuild, which then failed: "No module named 'layers'" (named
    nslayers here: another test's package `layers` stays imported in this process)."""
    Path("mods/nslayers/backbone").mkdir(parents=True)
    Path("mods/nslayers/backbone/scale.py").write_text("SCALE = 1.0\n")
    Path("mods/nsnet.py").write_text(NET.replace("import torch", "import torch\nfrom nslayers.backbone import scale", 1)
                                     .replace("return self.body(x)", "return self.body(x) * scale.SCALE"))
    try:
        with pytest.warns(UserWarning) as said:
            assert main(train_job(digits, "mods/nsnet.py", "--epochs", "1")) == 0, capsys.readouterr().err
    finally:
        for name in ("nslayers", "nslayers.backbone", "nslayers.backbone.scale"):
            sys.modules.pop(name, None)
    said = [str(w.message) for w in said]
    assert any(s.startswith("nsnet.py imports nslayers, a package (a folder) beside it") for s in said), said
    assert not any("outside its folder" in s for s in said), said
    assert json.loads((work / "runs" / "job" / "model.json").read_text())["source"]["file"] is None


# the helper is imported only inside the constructor and forward, after the file's top level has run
LAZY_HELPER = NET.replace("super().__init__()", "super().__init__()\n        import scaling", 1) \
    .replace("return self.body(x)", "import scaling\n        return self.body(x) * scaling.SCALE")


def lazy_helper_run(digits: Path, name: str, scale: float) -> None:
    """A run in runs/NAME of a model whose scaling.py, beside it, gives SCALE."""
    Path(name).mkdir()
    Path(name, "net.py").write_text(LAZY_HELPER)
    Path(name, "scaling.py").write_text(f"SCALE = {scale}\n")
    assert main(train_job(digits, f"{name}/net.py", "--epochs", "1", "--out", f"runs/{name}")) == 0


def test_two_runs_whose_helpers_share_a_name_each_compute_with_their_own_in_one_process(work, digits):
    """"a after b: [0.1 0.1 0.1]": a helper imported inside forward came from sys.modules, where
    the last run loaded had put its own, so one process (the web app's classifiers) ran run b's
    checked code in run a."""
    from neuralab.training import load_classifier

    lazy_helper_run(digits, "a", 1.0)
    lazy_helper_run(digits, "b", 0.0)
    x = np.random.default_rng(0).integers(0, 255, (4, 1, 8, 8)).astype("uint8")
    a = load_classifier("runs/a", trust_code=True)
    alone = a.predict_proba(x)
    b = load_classifier("runs/b", trust_code=True)
    assert np.allclose(b.predict_proba(x), 0.1)  # SCALE 0: no logit stands out
    assert np.array_equal(a.predict_proba(x), alone) and not np.allclose(alone, 0.1)
    assert "scaling" not in sys.modules


def test_the_users_own_module_of_a_helpers_name_and_the_runs_helper_stay_apart(work, digits, monkeypatch):
    """A user's scaling.py, imported before load_classifier, was the one the run's constructor
    and forward ran; imported after, the user got the run's."""
    from neuralab.training import load_classifier

    lazy_helper_run(digits, "a", 1.0)
    x = np.random.default_rng(0).integers(0, 255, (4, 1, 8, 8)).astype("uint8")
    before = load_classifier("runs/a", trust_code=True)
    alone = before.predict_proba(x)
    Path("mine").mkdir()
    Path("mine/scaling.py").write_text("SCALE = 1000.0\nUSER = True\n")
    monkeypatch.syspath_prepend(str(work / "mine"))
    try:
        import scaling

        after = load_classifier("runs/a", trust_code=True)
        assert np.array_equal(after.predict_proba(x), alone) and np.array_equal(before.predict_proba(x), alone)
        assert sys.modules["scaling"] is scaling and scaling.USER
    finally:
        sys.modules.pop("scaling", None)


@pytest.mark.parametrize("model", ["mods/fc.py", "mods/fc.py:Forecaster"])
def test_the_forecast_job_command_of_a_module_file_resumes_it_then_finds_it_finished(work, series_csv, model, capsys,
                                                                                     cut_in_epoch_2):
    job = forecast_job(series_csv, model, REQUEUE, "--trust-code")
    whole_again = cut_in_epoch_2()
    assert main(job) == 130
    whole_again()
    run = work / "runs" / "job"
    assert Run(run).status() is Status.INTERRUPTED
    assert main(job) == 0, capsys.readouterr().err
    assert Run(run).status() is Status.FINISHED and len(Run(run).record["sessions"]) == 1
    capsys.readouterr()
    assert main(job) == 0
    assert "the run is finished already" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["train", "forecast"])
def test_a_module_file_edited_since_the_run_was_made_is_refused_and_another_one_as_before(work, digits, series_csv,
                                                                                         kind, capsys, cut_in_epoch_2):
    file, other = ("mods/net.py", "mods/branchy.py") if kind == "train" else ("mods/fc.py", "mods/net.py")
    job = (train_job(digits, file) if kind == "train" else forecast_job(series_csv, file))
    cut_in_epoch_2()
    assert main([*job, REQUEUE, "--trust-code"]) == 130
    capsys.readouterr()
    run = work / "runs" / "job"
    before = files(run)
    with open(file, "a") as f:
        f.write("# tried a wider layer\n")
    refused(capsys, [*job, REQUEUE, "--trust-code"],
            f"runs/job: --model '{file}' has changed since the run was made (its SHA-256 differs from the run's "
            f"copy, runs/job/model.py)", "put the file back as it was")
    refused(capsys, [kind, "--resume", "runs/job", "--model", other, "--trust-code"], f"--model '{other}' (the run has")
    assert files(run) == before, "a refused resume wrote"


# --- rP 5: a forecaster of the user's module, used from Python -------------------------------------------

def test_a_forecaster_of_ones_own_module_is_described_and_used_as_docs_api_shows(work, series_csv, capsys):
    from neuralab import load_forecaster, predict_run

    assert main(forecast_job(series_csv, "mods/fc.py")) == 0, capsys.readouterr().err
    forecaster = load_forecaster("runs/job", trust_code=True)
    n = sum(p.numel() for p in forecaster.network.parameters())
    assert n == 4 * (4 * (1 + 4) + 8) + 5  # the LSTM's four gates (two biases each), then the head
    assert forecaster.describe() == f"torch:fc.py:Forecaster ({n:,} trained parameters, on plain windows)"
    model = forecaster.model_config  # none of the built-in networks' settings, which it does not have
    assert (model.architecture, model.hidden, model.dropout, model.init) == ("torch:fc.py:Forecaster", [], 0.0, None)
    assert json.loads(Path("runs/job/model.json").read_text())["model"]["dropout"] == 0.0
    recent = predict_run("runs/job", series_csv, trust_code=True)
    assert len(recent) == 1 and np.isfinite(recent["load"]).all()


@pytest.mark.parametrize("option, value", [("--dropout", "0.5"), ("--dropout", "0.2"), ("--init", "torch"),
                                           ("--recipe", "residual"), ("--hidden", "128,64")])
def test_a_built_in_networks_setting_given_with_ones_own_module_is_refused(work, series_csv, capsys, option, value):
    """Typed at their defaults too: the run, which records none of them for a module of one's
    own, would refuse the same command line typed again to resume it."""
    refused(capsys, forecast_job(series_csv, "mods/fc.py", option, value),
            f"{option} {value}: sets ", "which a model of your own (--model) does not take: leave it out")
    assert not Path("runs/job").exists()


def test_the_plain_recipe_ones_own_module_trains_on_is_taken_typed_or_given(work, series_csv, capsys):
    from neuralab.forecasting import ForecastConfig, run_forecast
    from neuralab.forecasting.config import ModelConfig

    assert main(forecast_job(series_csv, "mods/fc.py", "--recipe", "plain")) == 0, capsys.readouterr().err
    config = ForecastConfig(data=str(series_csv), target="load", model=ModelConfig(recipe="plain"))
    config.train.epochs = 1
    result = run_forecast(config, out="runs/python", verbose=False, model="mods/fc.py")
    assert json.loads((result.run_dir / "model.json").read_text())["model"]["recipe"] == "plain"


def test_a_typed_momentum_is_refused_before_the_forecasters_file_runs(work, series_csv, capsys):
    # compile()'s SGD may bring a momentum a run leaves out; one typed is the user's, and checked first
    Path("mods/marks.py").write_text("from pathlib import Path\nPath('ran').touch()\n" + FORECASTER)
    refused(capsys, forecast_job(series_csv, "mods/marks.py", "--optimizer", "sgd", "--momentum", "1.5"),
            "--momentum 1.5: must be at least 0 and below 1")
    assert not Path("ran").exists() and not Path("runs/job").exists()


def test_in_python_a_built_in_networks_setting_with_ones_own_module_is_refused(work, series_csv):
    from neuralab.forecasting import ForecastConfig, run_forecast
    from neuralab.forecasting.config import ModelConfig

    config = ForecastConfig(data=str(series_csv), target="load", model=ModelConfig(hidden=[8]))
    with pytest.raises(NeuralabError, match=r"^hidden=\[8\]: sets the built-in networks' recurrent layer sizes"):
        run_forecast(config, out="runs/job", verbose=False, model="mods/fc.py")
    assert not Path("runs/job").exists()


# --- rP 6 and 7: ONNX export of what a module file can hold ---------------------------------------------

ort = pytest.importorskip("onnxruntime", reason="pip install 'neuralab[export]'")


def logits_agree(run: str, onnx: Path) -> None:
    """onnxruntime on the file alone gives the run's own logits."""
    from neuralab.training import load_classifier

    clf = load_classifier(run, trust_code=True)
    x = torch.randn(5, *clf.preprocess.input_shape)
    with torch.inference_mode():
        want = clf.model(x).numpy()
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"images": x.numpy()})[0], want, atol=1e-5)


def test_weights_past_protobufs_limit_go_beside_the_graph_in_onnx_external_data(work, digits, capsys, monkeypatch):
    """The limit lowered to a few bytes, for a model of kilobytes: a real one of 2.2 GB takes 7 GB of memory."""
    from neuralab.training import export

    assert main(train_job(digits, "mods/net.py", "--epochs", "1")) == 0
    monkeypatch.setattr(export, "EXTERNAL_DATA_FROM", 1000)
    capsys.readouterr()
    assert main(["export", "runs/job", "--onnx", "--trust-code"]) == 0, capsys.readouterr().err
    run = work / "runs" / "job"
    graph, data = run / "model.onnx", run / "model.onnx.data"
    # whoever copies the graph elsewhere is told of the second file it needs
    assert f"its weights in {Path('runs/job/model.onnx.data')}, which must stay beside it" in capsys.readouterr().out
    assert data.stat().st_size == 4 * (64 * 16 + 16 + 16 * 10 + 10) > graph.stat().st_size  # the weights, beside it
    assert data.stat().st_mode == graph.stat().st_mode  # readable by whom the run's files are
    logits_agree("runs/job", graph)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    assert json.loads(session.get_modelmeta().custom_metadata_map["classes"]) == [str(i) for i in range(10)]
    assert not list(run.glob(".model.onnx*"))  # the staging folder is gone

    # a graph small enough again replaces both: no weights of the old one are left beside it
    monkeypatch.setattr(export, "EXTERNAL_DATA_FROM", 2**31)
    assert main(["export", "runs/job", "--onnx", "--trust-code"]) == 0, capsys.readouterr().err
    assert not data.exists() and "weights in" not in capsys.readouterr().out
    logits_agree("runs/job", graph)
    monkeypatch.setattr(export, "EXTERNAL_DATA_FROM", 1000)
    assert main(["export", "runs/job", "--onnx", "--trust-code"]) == 0, capsys.readouterr().err

    # a graph the check refuses leaves nothing: neither file, nor the staging folder
    for path in (graph, data):
        path.unlink()
    real_run = ort.InferenceSession.run
    monkeypatch.setattr(ort.InferenceSession, "run", lambda self, *a, **k: [o + 1 for o in real_run(self, *a, **k)])
    capsys.readouterr()
    assert main(["export", "runs/job", "--onnx", "--trust-code"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "export refused, nothing written" in err, err
    assert not [p for p in run.iterdir() if "onnx" in p.name]


def test_a_forecaster_with_weights_past_protobufs_limit_exports_with_external_data(work, series_csv, capsys,
                                                                                  monkeypatch):
    from neuralab.forecasting.finished import predict_run
    from neuralab.training import export

    assert main(forecast_job(series_csv, "mods/fc.py")) == 0
    monkeypatch.setattr(export, "EXTERNAL_DATA_FROM", 100)
    assert main(["export", "runs/job", "--onnx", "--trust-code"]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in Path("runs/job").iterdir() if "onnx" in p.name) == ["model.onnx", "model.onnx.data"]
    session = ort.InferenceSession("runs/job/model.onnx", providers=["CPUExecutionProvider"])
    rows = int(session.get_modelmeta().custom_metadata_map["rows"])  # the lookback, and one more for a difference
    last = np.loadtxt(series_csv, delimiter=",", skiprows=1, usecols=1, dtype=np.float32)[-rows:]
    got = session.run(None, {"windows": last[None, :, None]})[0][0]
    np.testing.assert_allclose(got, predict_run("runs/job", series_csv, trust_code=True)["load"], rtol=1e-5)


def test_the_check_allows_float32_rounding_in_proportion_to_the_logits(work, digits, capsys, monkeypatch):
    """A 2.2 GB model's logits of 330 came out of onnxruntime 1e-3 from PyTorch's, summed in
    another order, and the export was refused as a graph that computes something else."""
    assert main(train_job(digits, "mods/loud.py", "--epochs", "1")) == 0
    real_run = ort.InferenceSession.run
    monkeypatch.setattr(ort.InferenceSession, "run", lambda self, *a, **k: [o + 1e-2 for o in real_run(self, *a, **k)])
    assert main(["export", "runs/job", "--onnx", "--trust-code"]) == 0, capsys.readouterr().err
    monkeypatch.setattr(ort.InferenceSession, "run", lambda self, *a, **k: [o + 10 for o in real_run(self, *a, **k)])
    Path("runs/job/model.onnx").unlink()
    assert main(["export", "runs/job", "--onnx", "--trust-code"]) == 2
    assert "times the largest logit" in capsys.readouterr().err and not Path("runs/job/model.onnx").exists()


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch.compile's own
def test_export_onnxs_earlier_atol_still_works_with_a_deprecation_warning(work, digits, capsys):
    from neuralab.training.export import export_onnx

    assert main(train_job(digits, "mods/net.py", "--epochs", "1")) == 0
    with pytest.warns(DeprecationWarning, match="`atol` is now `rtol`"):
        out, diff = export_onnx("runs/job", atol=1e-3, trust_code=True)
    assert out.is_file() and diff <= 1e-3


def test_a_torch_compiled_module_exports_as_the_module_inside(work, digits, capsys):
    assert main(train_job(digits, "mods/compiled.py", "--epochs", "1")) == 0
    assert main(["export", "runs/job", "--onnx", "--trust-code"]) == 0, capsys.readouterr().err
    logits_agree("runs/job", Path("runs/job/model.onnx"))


def test_a_forward_that_branches_on_a_tensors_value_is_refused_naming_the_line(work, digits, capsys):
    assert main(train_job(digits, "mods/branchy.py", "--epochs", "1")) == 0
    capsys.readouterr()
    assert main(["export", "runs/job", "--onnx", "--trust-code"]) == 2
    err = capsys.readouterr().err
    line = BRANCHY.splitlines().index("        if x.abs().sum() > x[0].abs().sum():") + 1
    assert err.count("\n") == 1 and "ONNX output differs from PyTorch" in err, err
    assert (f"the model's forward branches on a tensor's value at runs/job/model.py:{line}, "
            "and the export keeps the branch its example took; compute both and choose with torch.where") in err, err
    assert not Path("runs/job/model.onnx").exists()


def test_the_code_compare_refuses_nothing_that_names_another_model(work, digits, capsys, monkeypatch):
    """A zoo run given FILE.py, and a run of FILE.py given a zoo name: other settings, not other code."""
    from neuralab.training.classify import same_code

    assert main(train_job(digits, "mods/net.py", "--epochs", "1")) == 0
    run = Run(work / "runs" / "job")
    recorded = run.record["config"]["model"]
    assert recorded == str(work / "mods" / "net.py")
    assert same_code("mods/net.py", recorded, run) and same_code(str(work / "mods/net.py:Net"), recorded, run)
    assert not same_code("mods/net.py:Other", recorded, run) and not same_code("mlp", recorded, run)
    assert not same_code("mods/net.py", "mlp", run)
    monkeypatch.chdir("mods")  # the same text from another folder names another file
    assert not same_code("mods/net.py", recorded, run)
    with pytest.raises(NeuralabError, match="has changed since the run was made"):
        Path("net.py").write_text(NET + "\n# changed\n")
        same_code("net.py", recorded, run)


def test_a_torch_compiled_module_object_is_recorded_as_the_users_class(tmp_path, monkeypatch):
    """torch.compile(Net()) given from Python was recorded as torch's OptimizedModule, kept no code,
    and the advice named model=OptimizedModule(...); it is the user's Net, rebuilt from its file."""
    import importlib

    from neuralab.training.source import resolve

    (tmp_path / "compiled_net.py").write_text(NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    net = importlib.import_module("compiled_net").Net
    record = resolve(torch.compile(net())).record()
    assert record["name"] == "Net" and record["file"] == "model.py" and record["sha256"]
    assert resolve(torch.compile(net())).architecture == resolve(net()).architecture == "torch:compiled_net.py:Net"


PRESSED_IN_CLASS_BODY = '''
class Pressed:  # a descriptor that Ctrl-C reaches as the class body sets it up
    def __set_name__(self, owner, name):
        raise KeyboardInterrupt

class Tagged(Net):
    tag = Pressed()  # Python 3.11 raises the interrupt as RuntimeError("Error calling __set_name__ ...")
'''

# A library's work that Ctrl-C reaches, raised as the library's own error ("from" the interrupt)
STOPPED_IN_A_LIBRARY = '''
def stopped(work):
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as e:
        raise RuntimeError(f"{work} stopped") from e
'''

PRESSED_IN_A_LIBRARY = STOPPED_IN_A_LIBRARY + '''
WEIGHTS = stopped("loading")  # a library's loader
'''


@pytest.mark.parametrize("stopped", [PRESSED_IN_CLASS_BODY, PRESSED_IN_A_LIBRARY], ids=["set_name", "library"])
def test_ctrl_c_as_the_model_file_runs_stops_as_ctrl_c_not_as_an_error_of_the_file(tmp_path, stopped):
    """Ctrl-C or SIGTERM while the user's file runs, raised as another error: the interrupt goes on
    as it is (a run then says how to resume), never as a one-line error blaming the file's line."""
    from neuralab.training.user_code import load_python

    path = tmp_path / "net.py"
    path.write_text(NET + stopped)
    with pytest.raises(KeyboardInterrupt):
        load_python(path, "Net", {})


STOPPED_IN_A_STEP = NET + STOPPED_IN_A_LIBRARY + '''
STEPS = [0]


class Stopped(Net):
    def forward(self, x):
        if self.training and len(x) == 64:
            STEPS[0] += 1
            if STEPS[0] == 8:
                stopped("kernel")
        return super().forward(x)
'''


def test_ctrl_c_raised_as_another_error_in_a_step_stops_the_run_with_its_resume_line(work, digits, capsys):
    """Ctrl-C that reaches a training step as another error (a library's, Python's in a class body)
    stops the run as Ctrl-C does: interrupted, with the command that resumes it, not an error
    blaming the model nor a run left without its resume line."""
    (work / "mods" / "stopped.py").write_text(STOPPED_IN_A_STEP)
    assert main(train_job(digits, "mods/stopped.py:Stopped")) == 130
    err = capsys.readouterr().err
    assert "--resume runs/job" in err and "RuntimeError" not in err, err
    assert Run(work / "runs" / "job").status() is Status.INTERRUPTED


FAILING_IN_A_STEP = NET + '''
class Failing(Net):
    def forward(self, x):
        if self.training and len(x) == 64:
            raise ValueError("shapes wrong")
        return super().forward(x)
'''


def test_an_error_of_the_model_trained_in_a_handler_of_ctrl_c_is_the_models_not_an_interrupt(work, digits, capsys):
    """A command run inside the user's own `except KeyboardInterrupt:` (a notebook that goes on
    after a stopped cell): Python gives every error raised there that Ctrl-C as its context, and
    the model's own error is still said as the model's, with status 2, not as an interrupt."""
    (work / "mods" / "failing.py").write_text(FAILING_IN_A_STEP)
    try:
        raise KeyboardInterrupt  # the earlier cell's Ctrl-C, handled
    except KeyboardInterrupt:
        assert main(train_job(digits, "mods/failing.py:Failing")) == 2
    err = capsys.readouterr().err
    assert "Failing: the model fails in training mode" in err and "ValueError: shapes wrong" in err, err


STOPPED_IN_A_CHECK = NET + STOPPED_IN_A_LIBRARY + '''
class Stopped(Net):
    def forward(self, x):
        if not self.training and len(x) == 1:  # neuralab's check of a lone picture, before the run begins
            stopped("kernel")
        return super().forward(x)
'''


def test_ctrl_c_raised_as_another_error_in_the_models_checks_stops_the_command(work, digits, capsys):
    """Ctrl-C that reaches a check of the model (which goes on where the model fails) as another
    error stops the command before any run is made: not swallowed, nor said as the model's fault."""
    (work / "mods" / "stopped.py").write_text(STOPPED_IN_A_CHECK)
    assert main(train_job(digits, "mods/stopped.py:Stopped")) == 130
    assert capsys.readouterr().err == "neuralab: interrupted\n"
    assert not (work / "runs" / "job").exists()


def _stopped_as_a_library_error(*args, **kwargs):
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as e:
        raise RuntimeError("kernel stopped") from e


def _stopped_in_a_class_body(*args, **kwargs):
    class Pressed:
        def __set_name__(self, owner, name):
            raise KeyboardInterrupt

    class Figure:  # Python 3.11 raises it as RuntimeError("Error calling __set_name__ ..."): matplotlib's import
        tag = Pressed()


@pytest.mark.parametrize("stop", [_stopped_as_a_library_error, _stopped_in_a_class_body], ids=["library", "set_name"])
def test_ctrl_c_raised_as_another_error_after_training_says_what_is_kept(work, digits, capsys, monkeypatch, stop):
    """Ctrl-C that reaches the test pass, or the report, as another error says what a plain Ctrl-C
    there says: the run to resume, or the finished run whose report `neuralab report` writes again."""
    from neuralab.reports import classifier
    from neuralab.training.trainer import Trainer

    with monkeypatch.context() as m:
        m.setattr(Trainer, "predict", stop)
        assert main(train_job(digits, "mlp")) == 130
    err = capsys.readouterr().err
    assert "interrupted; the files of the last finished epoch are kept" in err and "--resume runs/job" in err, err
    assert main(["train", "--resume", "runs/job", "--quiet"]) == 0
    capsys.readouterr()

    with monkeypatch.context() as m:
        m.setattr(classifier.plots, "learning_curves", stop)
        assert main([*train_job(digits, "mlp"), "--overwrite"]) == 130
    err = capsys.readouterr().err
    assert "the run is finished" in err and "`neuralab report runs/job` writes the report again" in err, err
    assert main(["report", "runs/job"]) == 0


def test_ctrl_c_raised_as_another_error_as_a_forecaster_is_judged_says_how_to_resume(work, series_csv, capsys,
                                                                                      monkeypatch):
    """Ctrl-C that reaches the judging of a trained forecaster on the test span as another error
    stops the run as a plain Ctrl-C there does: not finished, with the command that resumes it."""
    from neuralab.forecasting import pipeline

    monkeypatch.setattr(pipeline, "_evaluate", _stopped_as_a_library_error)
    assert main(forecast_job(series_csv, "mods/fc.py:Forecaster")) == 130
    err = capsys.readouterr().err
    assert "--resume runs/job" in err and "RuntimeError" not in err, err
    assert Run(work / "runs" / "job").status() is Status.INTERRUPTED


STOPPED_IN_THE_CONSTRUCTOR = NET + STOPPED_IN_A_LIBRARY + '''
class Downloading(Net):
    def __init__(self):
        super().__init__()
        stopped("download")  # a library's download of weights
'''


def test_ctrl_c_raised_as_another_error_in_the_models_constructor_stops_the_command(work, digits, capsys):
    """The one-line refusal of a constructor that failed hides the error it was raised over: Ctrl-C
    under it still stops the command as Ctrl-C, not as a fault of the file's line."""
    (work / "mods" / "downloading.py").write_text(STOPPED_IN_THE_CONSTRUCTOR)
    assert main(train_job(digits, "mods/downloading.py:Downloading")) == 130
    assert capsys.readouterr().err == "neuralab: interrupted\n"
