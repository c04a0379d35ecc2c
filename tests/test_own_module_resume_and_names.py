"""A researcher's own PyTorch modules: a run stopped before its first epoch resumes to the run
its seed gives; `compare` of two files of the same name keeps a run for each; a file holding a
block class and the network built from it trains the network; `train_classifier` takes the
module as `model=` as `run_forecast` does. Real pictures: scikit-learn's digits as a folder."""

from __future__ import annotations

import copy
import json
import textwrap

import pytest
import torch
from helpers import cut_in_epoch, digits_folder
from torch import nn

from neuralab.cli import main
from neuralab.errors import NeuralabError, ParameterError
from neuralab.training import ClassifierConfig, TrainConfig, resume_classifier, train_classifier

# A ResNet-style file: a residual block with BatchNorm, and the network made of blocks
RESNET = textwrap.dedent("""\
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.short = nn.Sequential()
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            return F.relu(self.bn2(self.conv2(out)) + self.short(x))

    class ResNet(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
            self.layers = nn.Sequential(Block(8, 8), Block(8, 16, 2))
            self.fc = nn.Linear(16, num_classes)

        def forward(self, x):
            x = self.layers(self.stem(x))
            return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
    """)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits") / "digits", 200)


def config(model, data) -> ClassifierConfig:
    return ClassifierConfig(model=model, data=str(data), train=TrainConfig(epochs=2, batch_size=32, seed=7, threads=1))


def losses(result) -> list[float]:
    return [h["loss"] for h in result.history]


# --- a run of a module file stopped before its first epoch ----------------------------------------

def test_a_module_file_run_stopped_before_its_first_epoch_resumes_to_the_run_its_seed_gives(
        tmp_path, monkeypatch, digits):
    """The resume rebuilt the module from the run's code before seeding: unseeded weights, another
    run each time. The zoo's models and a resume from a checkpoint repeat the seed's run."""
    (tmp_path / "resnet.py").write_text(RESNET)
    model = f"{tmp_path / 'resnet.py'}:ResNet"
    whole = train_classifier(config(model, digits), out=tmp_path / "whole", verbose=False)
    resumed = []
    for i in (1, 2):
        whole_again = cut_in_epoch(monkeypatch, 1)
        with pytest.raises(KeyboardInterrupt):
            train_classifier(config(model, digits), out=tmp_path / f"cut{i}", verbose=False)
        whole_again()
        assert not (tmp_path / f"cut{i}" / "last.safetensors").exists()
        torch.manual_seed(100 + i)  # the caller's generators, which the run's weights must not depend on
        resumed.append(losses(resume_classifier(tmp_path / f"cut{i}", verbose=False, trust_code=True)))
    assert resumed == [losses(whole)] * 2


# --- compare of two files of the same name ----------------------------------------------------------

CONV_NET = textwrap.dedent("""\
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
            self.classifier = nn.Linear(4 * 4 * 4, 10)

        def forward(self, x):
            return self.classifier(self.features(x).flatten(1))
    """)
LINEAR_NET = textwrap.dedent("""\
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

        def forward(self, x):
            return self.classifier(x)
    """)


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compare_of_two_files_of_the_same_name_keeps_a_run_for_each(tmp_path, monkeypatch, capsys, digits):
    """m/sib/net.py and m/other/net.py both went to torch-net-Net-seed0: the second was refused
    naming that folder as an --out never typed, and --overwrite trained it over the first's run."""
    for folder, code in (("sib", CONV_NET), ("other", LINEAR_NET)):
        (tmp_path / "m" / folder).mkdir(parents=True)
        (tmp_path / "m" / folder / "net.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    argv = ("compare", "--models", "m/sib/net.py,m/other/net.py", "--seeds", "1", "--data", digits, "--epochs", "1",
            "--batch-size", "32", "--threads", "1", "--out", "cmp")
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    folders = sorted(p for p in (tmp_path / "cmp").iterdir() if p.is_dir())
    assert len(folders) == 2, folders
    trained = {}
    for folder in folders:
        config = json.loads((folder / "config.json").read_text())["config"]
        trained[config["model"]] = folder.name
    assert set(trained) == {str(tmp_path / "m" / "sib" / "net.py"), str(tmp_path / "m" / "other" / "net.py")}, trained
    table = (tmp_path / "cmp" / "compare.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in table[1:]] == ["m/sib/net.py", "m/other/net.py"]
    # the same command again goes on from the finished runs, without --overwrite
    code, out, err = cli(capsys, *argv)
    assert code == 0 and out.count("finished before: taken as it is") == 2, (err, out)


def test_compare_of_one_file_named_twice_is_refused_before_anything_trains(tmp_path, monkeypatch, capsys, digits):
    """Its second row trained into the first's folder, refused as an --out never typed."""
    (tmp_path / "net.py").write_text(LINEAR_NET)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "compare", "--models", "net.py,net.py:Net", "--seeds", "1", "--data", digits,
                         "--epochs", "1", "--threads", "1", "--out", "cmp")
    assert code == 2 and err == ("neuralab: error: --models net.py,net.py:Net: names 'net.py' and 'net.py:Net', the "
                                 "same model; name each model once\n"), err
    assert not (tmp_path / "cmp").exists()


def test_compare_takes_a_file_whose_name_holds_a_comma_as_one_model(tmp_path, monkeypatch, capsys, digits):
    """--models m/x,y.py was split into m/x and y.py: "--models m/x: unknown model"."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "x,y.py").write_text(LINEAR_NET)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "compare", "--models", "m/x,y.py:Net, mlp", "--seeds", "1", "--data", digits,
                         "--epochs", "1", "--batch-size", "32", "--threads", "1", "--out", "cmp")
    assert code == 0, err
    models = [json.loads((p / "config.json").read_text())["config"]["model"] for p in (tmp_path / "cmp").iterdir()
              if p.is_dir()]
    assert sorted(models) == sorted([f"{tmp_path / 'm' / 'x,y.py'}:Net", "mlp"]), models


# --- the module given as `model=`, as run_forecast takes it ----------------------------------------

class MLP(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU())
        self.classifier = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.classifier(self.features(x))


def test_train_classifier_takes_the_module_as_model_as_run_forecast_does(tmp_path, digits):
    """`train_classifier(config, model=MLP(32))` was a TypeError; `run_forecast(config, model=...)` takes it."""
    module = MLP(32)  # a module object trains from the weights it holds: the same ones both ways
    given = train_classifier(ClassifierConfig(data=str(digits), train=TrainConfig(epochs=2, batch_size=32, seed=7,
                                                                                 threads=1)),
                             out=tmp_path / "given", verbose=False, model=copy.deepcopy(module))
    in_config = train_classifier(config(module, digits), out=tmp_path / "in_config", verbose=False)
    assert losses(given) == losses(in_config) and given.params == 64 * 32 + 32 + 32 * 10 + 10
    recorded = json.loads((tmp_path / "given" / "config.json").read_text())["config"]["model"]
    assert recorded == json.loads((tmp_path / "in_config" / "config.json").read_text())["config"]["model"]
    with pytest.raises(ParameterError) as refused:
        train_classifier(config("mlp", digits), out=tmp_path / "both", verbose=False, model=MLP(32))
    assert refused.value.parameter == "model" and str(refused.value) == (
        "model='MLP': the config names its own model too, mlp: give the model once, as model or as "
        "ClassifierConfig's"), str(refused.value)
    assert not (tmp_path / "both").exists()


# --- a module with lazy layers given again ------------------------------------------------------------

class LazyNet(nn.Module):
    """A convolution, then nn.LazyLinear: the flattened size is left for the first batch to set.
    Built with an argument, a run of it cannot rebuild it and is given it again as `model`."""

    def __init__(self, channels=8):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3)
        self.fc = nn.LazyLinear(10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_a_module_with_lazy_layers_given_again_resumes_loads_and_evaluates(tmp_path, monkeypatch, digits):
    """Its shapes were compared before it had any: torch's "Can't access the shape of an uninitialized
    parameter" from the check. One pass on the run's input shape sets them up first."""
    from neuralab.training import evaluate_run, load_classifier

    def made() -> LazyNet:  # the same first weights in every run
        torch.manual_seed(3)
        return LazyNet(4)

    whole = train_classifier(config(made(), digits), out=tmp_path / "whole", verbose=False)
    for cut in (1, 2):  # before its first checkpoint (its parameter count compared), and after
        whole_again = cut_in_epoch(monkeypatch, cut)
        with pytest.raises(KeyboardInterrupt):
            train_classifier(config(made(), digits), out=tmp_path / f"cut{cut}", verbose=False)
        whole_again()
        resumed = resume_classifier(tmp_path / f"cut{cut}", verbose=False, model=LazyNet(4))
        assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert losses(resumed) == losses(whole)  # from the checkpoint: bit for bit
    classifier = load_classifier(tmp_path / "whole", model=LazyNet(4))
    assert classifier.model.fc.weight.shape == (10, 4 * 6 * 6)
    assert evaluate_run(tmp_path / "whole", model=LazyNet(4))["test_accuracy"] == whole.test["accuracy"]
    # the pass that sizes the lazy layers leaves the module's modes and buffers as given, even where it is refused
    wrong = nn.Sequential(Counted(), nn.BatchNorm2d(1), LazyNet(6)).train()
    wrong[1].eval()  # frozen by its user
    with pytest.raises(NeuralabError):
        load_classifier(tmp_path / "whole", model=wrong)
    assert wrong.training and not wrong[1].training and wrong[2].training
    assert wrong[0].calls.item() == 0


class Counted(nn.Module):
    """Counts the batches it sees in a buffer, as research code counts steps."""

    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return x
