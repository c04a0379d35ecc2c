"""The forecasting pipeline's configs as dataclasses, and the choices they allow; the
vanishing-gradient lesson's (forecasting.gradients) too.

Kept apart from the networks and the data and free of torch and pandas, as training/config.py
is for the trainer, so that `neuralab forecast --help` and `neuralab rnn ... --help` show the
defaults without loading them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from neuralab.errors import NeuralabError, ParameterError, Shown
from neuralab.forecasting.intervals import LEVELS
from neuralab.training.config import TrainConfig, check_positive, check_seed, check_types, given_only

# the keys of baselines.BASELINES, in their order (tests/test_cli_consistency.py holds them equal)
BASELINE_NAMES = ("persistence", "seasonal-naive", "drift", "moving-average", "linear-ar")

TRANSFORMS = ("auto", "none", "diff", "log-return")
SCALERS = ("standard", "minmax", "none")
SPLITS = ("train", "val", "test")


@dataclass
class WindowConfig:
    lookback: int = 60            # input steps: the workshop's 60 days
    horizon: int = 1              # steps forecast at once: 1 = many-to-one, more = many-to-many
    stride: int = 1               # steps between consecutive window starts
    val_fraction: float = 0.15    # of the rows, chronological: train | val | test
    test_fraction: float = 0.15
    transform: str = "none"       # none | diff | log-return (prices: near-stationary returns); the
                                  # pipeline's default is auto: whichever forecasts the validation
                                  # span best (chosen by run_forecast and recorded)
    scaler: str = "standard"      # fitted on the training rows only

    def check(self) -> None:
        check_types(self)
        for name in ("lookback", "horizon", "stride"):
            if getattr(self, name) < 1:
                raise ParameterError(name, getattr(self, name), "must be at least 1")
        if not 0 <= self.val_fraction < 1 or not 0 < self.test_fraction < 1 \
                or self.val_fraction + self.test_fraction >= 0.9:
            raise NeuralabError(f"`val_fraction` {self.val_fraction} and `test_fraction` {self.test_fraction}: "
                                "need 0 <= val, 0 < test and val + test < 0.9")
        if self.transform not in TRANSFORMS:
            raise ParameterError("transform", self.transform, f"choose one of {', '.join(TRANSFORMS)}")
        if self.scaler not in SCALERS:
            raise ParameterError("scaler", self.scaler, f"choose one of {', '.join(SCALERS)}")


# architecture -> (cell, default hidden sizes)
ARCHITECTURES: dict[str, tuple[str, tuple[int, ...]]] = {
    "lstm-stacked": ("lstm", (128, 64)),  # the workshop's LSTM(128, return_sequences) -> LSTM(64) -> Dense
    "lstm": ("lstm", (64,)),
    "gru": ("gru", (64,)),
    "rnn": ("rnn", (64,)),                # Keras' SimpleRNN: tanh
}
RECIPES = ("residual", "plain")
INITS = ("keras", "torch")  # keras: Glorot, orthogonal recurrence, forget-gate bias 1; torch: PyTorch's uniform


@dataclass
class ModelConfig:
    architecture: str = "lstm-stacked"
    hidden: list[int] = field(default_factory=list)  # empty: the architecture's sizes
    dropout: float = 0.2                              # after each recurrent layer, as Keras tutorials do
    init: str = "torch"                               # torch (uniform) | keras (Glorot, orthogonal, forget bias 1);
                                                      # torch forecast better on seattle-weather (docs/forecasting.md)
    recipe: str = "residual"                          # residual: anchored, normalised, with a linear path (see
                                                      # models.py); plain: the workshop's network alone, which lost to
                                                      # persistence and linear AR on unseen series (issue 17)

    def check(self) -> None:
        check_types(self)
        if self.architecture not in ARCHITECTURES:
            raise ParameterError("architecture", self.architecture, f"choose one of {', '.join(ARCHITECTURES)}")
        if not isinstance(self.hidden, (list, tuple)) or any(isinstance(h, bool) or not isinstance(h, int) or h < 1
                                               for h in self.hidden):  # a list in config.json: Python ints
            # the example in words: the command line shows this reason too, where Python's [128, 64] is refused
            raise ParameterError("hidden", self.hidden, "give a list of ints, each at least 1: the size of each "
                                 "layer (two layers of 128 and 64 units, say)")
        if not 0 <= self.dropout < 1:
            raise ParameterError("dropout", self.dropout, "must be a number in [0, 1)")
        if self.init not in INITS:
            raise ParameterError("init", self.init, f"choose {' or '.join(INITS)}")
        if self.recipe not in RECIPES:
            raise ParameterError("recipe", self.recipe, f"choose one of {', '.join(RECIPES)}")

    @property
    def cell(self) -> str:
        return ARCHITECTURES[self.architecture][0]

    @property
    def sizes(self) -> list[int]:
        return list(self.hidden) or list(ARCHITECTURES[self.architecture][1])


def series_train_config(**overrides):
    """The trainer's settings for series: Keras' batch of 64, clipped gradients, early stopping.
    Only ``overrides`` are given (training.config.given_fields): a Keras model's compile() and
    fit() settings fill the rest."""
    # patience 5: the network starts from the least-squares linear path, so epochs that do not
    # improve on the validation span soon are rarely followed by ones that do
    defaults = dict(epochs=30, batch_size=64, lr=3e-3, grad_clip=1.0, patience=5, monitor="val_loss")
    return given_only(defaults, **overrides)


@dataclass
class ForecastConfig:
    """What to forecast and how: the series, the windows, the network and its budget, the
    baselines it is judged against. ``run_forecast(config)`` runs it, and the run's config.json keeps it.

    Fields:
        data: a built-in series ("sp500", "nasdaq", "seattle-weather") or a CSV file's path.
        target: the column to forecast (None: the built-in's, the only numeric column, or Close in price data).
        features: more input columns, beside the target (a multivariate forecast).
        calendar: date encodings as inputs: "dayofyear", "dayofweek", ...
        date_column: the dates' column (None: the built-in's, or the one that reads as dates, named date, time, ...).
        date_format: how the dates are written, e.g. "%d/%m/%Y" (None: worked out).
        sep: the CSV's separator (None: found among comma, semicolon, tab and bar).
        series_column: one series per value of this column, one network trained on all of them.
        where: "COLUMN=VALUE": keep only those rows (one series of several).
        missing: what to do with missing values: "error", "drop", "ffill" or "interpolate".
        duplicates: what to do with repeated dates: "error", "first", "last" or "mean".
        gaps: "keep" (one row is one step) or "fill" (missing dates added, then filled as ``missing`` says).
        windows: the WindowConfig: lookback, horizon, splits, transform and scaling.
        model: the ModelConfig: architecture, hidden sizes, dropout (a network of your own goes to
            run_forecast(config, model=...)).
        train: the TrainConfig (series_train_config(): Keras's batch of 64, clipped gradients, early stopping).
        baselines: the simple forecasts the network is compared with.
        season: the seasonal-naive baseline's period (None: found on the training span).
        backtest_folds: how many rolling-origin folds the backtest takes.
        backtest_refit: fit every forecaster again for every fold (the network too: slow).
        intervals: the prediction intervals' levels, e.g. [0.8, 0.95].
    """

    data: str = "seattle-weather"
    target: str | None = None
    features: list[str] = field(default_factory=list)
    calendar: list[str] = field(default_factory=list)
    date_column: str | None = None
    date_format: str | None = None
    sep: str | None = None
    series_column: str | None = None
    where: str | None = None
    missing: str = "error"
    duplicates: str = "error"
    gaps: str = "keep"
    windows: WindowConfig = field(default_factory=lambda: WindowConfig(transform="auto"))
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=series_train_config)
    baselines: list[str] = field(default_factory=lambda: list(BASELINE_NAMES))
    season: int | None = None
    backtest_folds: int = 4
    backtest_refit: bool = False
    intervals: list[float] = field(default_factory=lambda: list(LEVELS))

    @classmethod
    def from_dict(cls, d: dict) -> "ForecastConfig":
        return cls(**{**d, "windows": WindowConfig(**d.get("windows", {})), "model": ModelConfig(**d.get("model", {})),
                      "train": TrainConfig(**d.get("train", {}))})

    def check(self) -> None:
        if not isinstance(self.data, (str, os.PathLike)):  # a DataFrame: a run must read its data again to resume
            raise ParameterError("data", type(self.data).__name__, "give a built-in series' name or a CSV file; save "
                                 "a DataFrame with df.to_csv('series.csv') first, so that the run can read it again "
                                 "(load_series takes the DataFrame itself)")
        if not isinstance(self.model, (ModelConfig, dict)):  # a file or a module, as ClassifierConfig(model=) takes
            raise ParameterError("model", Shown(self.model), "ForecastConfig's `model` is a ModelConfig, for the built-in "
                                 "networks; give a network of your own (a .py or Keras file, a module) as "
                                 "run_forecast(config, model=...)")
        for name, kind in (("windows", WindowConfig), ("model", ModelConfig), ("train", TrainConfig)):
            if not isinstance(getattr(self, name), kind):  # a dict: ForecastConfig.from_dict reads those
                raise ParameterError(name, getattr(self, name), f"give a {kind.__name__}, e.g. {kind.__name__}()")
        self.windows.check()
        self.model.check()
        self.train.check("regression")
        check_types(self)
        if self.backtest_folds < 1:
            raise ParameterError("backtest_folds", self.backtest_folds, "must be at least 1")
        if self.season is not None and not 1 <= self.season <= self.windows.lookback:
            raise ParameterError("season", self.season, f"must be between 1 and `lookback` ({self.windows.lookback})")
        if any(not 0 < a < 1 for a in self.intervals):
            raise ParameterError("intervals", self.intervals, "every level must lie between 0 and 1, e.g. 0.8, 0.95")


# sequences x steps x hidden units a measurement keeps for backpropagation: each takes about
# 80 bytes (both models, their gates and gradients), so this is about 2 GB; the default run
# has 256 x 100 x 32, 0.8 million
MAX_CELLS = 25_000_000


@dataclass
class GradientConfig:
    steps: int = 100          # sequence length: the distance the gradient must travel
    hidden: int = 32          # the same for both models
    batch: int = 64
    probe: int = 256          # sequences the gradient is averaged over
    train_steps: int = 300    # Adam updates on the task before the "trained" measurement
    lr: float = 3e-3
    clip: float = 1.0         # max total gradient norm in the clipped runs
    init: str = "keras"       # keras (LSTM forget bias 1, orthogonal recurrence) | torch (uniform)
    seed: int = 0

    def check(self) -> None:
        check_types(self)
        for name in ("steps", "hidden", "batch"):
            if getattr(self, name) < 2:
                raise ParameterError(name, getattr(self, name), "must be at least 2")
        cells = max(self.batch, self.probe) * self.steps * self.hidden
        if cells > MAX_CELLS:  # refused before torch allocates it and fails halfway
            name = max(("steps", "hidden", "batch"), key=lambda k: getattr(self, k) / getattr(GradientConfig(), k))
            raise ParameterError(name, getattr(self, name), f"the run would keep {cells:,} values (max(`batch`, "
                                 f"{self.probe}) x `steps` x `hidden`) for backpropagation, more than the "
                                 f"{MAX_CELLS:,} (about 2 GB) allowed; make `steps`, `hidden` or `batch` smaller")
        check_seed(self.seed)
        if self.train_steps < 0:
            raise ParameterError("train_steps", self.train_steps, "must be 0 or more")
        check_positive("lr", self.lr)
        check_positive("clip", self.clip)  # an infinite clip would label unclipped runs "clipped"
        if self.init not in INITS:
            raise ParameterError("init", self.init, f"choose {' or '.join(INITS)}")


# `rnn topologies --train`: Adam steps per template and the seed (topologies.train_toy's defaults)
TOY_STEPS = 300
TOY_SEED = 0
