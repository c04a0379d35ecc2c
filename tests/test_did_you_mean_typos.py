"""'did you mean' offers a typo's near twin and nothing else, for every kind of name that errors.closest
serves: a file in the folder, a zoo model, a dataset, a built-in series, an architecture's option, an
optimiser, a forecaster. A short name's one slip (mpl, sdg), a file name typed without or with another
extension (twice, dash.txt) and the start of a longer name (fashion, kernel, alex) are offered; another
word that shares some letters or only the extension (y.csv and zulu.csv, resnet and lenet5) is not."""

from __future__ import annotations

import pytest

from neuralab.data.series import load_series
from neuralab.errors import ParameterError, closest

FILES = ["month31.csv", "dash.csv", "twice.csv", "zulu.csv", "sales_2023.xlsx"]
ZOO = ["mlp", "cnn", "lenet5", "alexnet", "alexnet2012", "vgg16", "googlenet"]
DATASETS = ["mnist", "fashion-mnist", "cifar10"]
SERIES = ["sp500", "nasdaq", "seattle-weather"]
OPTIONS = ["hidden", "dropout", "channels", "kernel_size", "block_dropout", "dense", "batch_norm", "aux_logits",
           "small"]
OPTIMISERS = ["adam", "sgd", "rmsprop", "adamw"]
FORECASTERS = ["lstm", "gru", "rnn", "mlp", "tcn"]

CASES = [
    # files: a misspelt name, another case, no extension or another one
    ("month3.csv", FILES, "month31.csv"), ("mnth31.csv", FILES, "month31.csv"), ("twice.cvs", FILES, "twice.csv"),
    ("Month31.csv", FILES, "month31.csv"), ("month31", FILES, "month31.csv"), ("twice", FILES, "twice.csv"),
    ("dash", FILES, "dash.csv"), ("dash.txt", FILES, "dash.csv"), ("weekly.csv", ["daily.csv", "weekly.txt"], "weekly.txt"),
    ("dash.txt", ["dash.csv", "dsh.txt"], "dash.csv"),  # the same stem beats a typo with the extension typed
    ("dsh.csv", ["dash.csv", "dash.txt"], "dash.csv"),  # the extension typed breaks a tie
    # files that share only the extension, or a word's start and not the extension, are no typo
    ("y.csv", FILES, None), ("x.csv", FILES, None), ("sales.csv", FILES, None), ("train.csv", FILES, None),
    ("y.csv", ["x.csv", "zulu.csv"], None),
    # the zoo
    ("mpl", ZOO, "mlp"), ("lmp", ZOO, "mlp"), ("cnm", ZOO, "cnn"), ("ccn", ZOO, "cnn"), ("CNN", ZOO, "cnn"),
    ("LeNet5", ZOO, "lenet5"), ("lenet", ZOO, "lenet5"), ("vgg", ZOO, "vgg16"), ("VGG-16", ZOO, "vgg16"),
    ("alex", ZOO, "alexnet"), ("resnet", ZOO, None), ("inception", ZOO, None),
    # datasets and built-in series
    ("fashion", DATASETS, "fashion-mnist"), ("fashion_mnist", DATASETS, "fashion-mnist"),
    ("fmnist", DATASETS, "fashion-mnist"), ("f-mnist", DATASETS, "fashion-mnist"), ("fmnst", DATASETS, "mnist"),
    ("sweather", SERIES, "seattle-weather"), ("s2023.xlsx", ["sales_2023.csv"], None), ("s2023", FILES, "sales_2023.xlsx"),
    ("MNIST", DATASETS, "mnist"), ("cifar-10", DATASETS, "cifar10"), ("cifr10", DATASETS, "cifar10"),
    ("NASDAQ", SERIES, "nasdaq"), ("nasdq", SERIES, "nasdaq"), ("S&P500", SERIES, "sp500"),
    ("sp-500", SERIES, "sp500"), ("seattle", SERIES, "seattle-weather"), ("seattle_weather", SERIES, "seattle-weather"),
    # an architecture's options
    ("kernel", OPTIONS, "kernel_size"), ("hiden", OPTIONS, "hidden"), ("dropuot", OPTIONS, "dropout"),
    ("chanels", OPTIONS, "channels"), ("batchnorm", OPTIONS, "batch_norm"), ("auxlogits", OPTIONS, "aux_logits"),
    ("drop", OPTIONS, "dropout"), ("bn", OPTIONS, None), ("aux", OPTIONS, None),
    # optimisers and forecasters
    ("sdg", OPTIMISERS, "sgd"), ("adm", OPTIMISERS, "adam"), ("adamW", OPTIMISERS, "adamw"),
    ("rnm", FORECASTERS, "rnn"), ("lsmt", FORECASTERS, "lstm"), ("gr", FORECASTERS, "gru"),
]


@pytest.mark.parametrize("typed, choices, offered", CASES)
def test_a_typo_is_offered_its_near_twin_and_another_word_nothing(typed, choices, offered):
    assert closest(typed, choices) == offered


@pytest.mark.parametrize("typed, offered", [("twice", "twice.csv"), ("dash.txt", "dash.csv")])
def test_a_series_file_typed_without_or_with_another_extension_is_offered(tmp_path, monkeypatch, typed, offered):
    for name in FILES:
        (tmp_path / name).write_text("date,v\n2021-01-01,1\n2021-01-02,2\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError, match=rf"did you mean '{offered}'\?"):
        load_series(typed)
