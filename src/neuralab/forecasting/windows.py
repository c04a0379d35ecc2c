"""Sliding windows over a series, split in time with no leakage, scaled on the past only.

A window takes ``lookback`` steps of inputs and the next ``horizon`` target values. The
series is cut chronologically into train | validation | test by *target* time: a window
belongs to a split only when all its targets fall inside it, so windows that straddle a
boundary are dropped and every training target precedes every validation and test target.
Inputs may reach back into an earlier split (the past is known when forecasting); the
scaler sees the training rows only.

The model learns the target as given, its difference (``diff``) or its log return
(``log-return``, for prices); ``Windows.decode`` turns its scaled outputs back into the
original units, starting from the last observed level, so every reported number is in
the units of the data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from neuralab.errors import NeuralabError, ParameterError
from neuralab.forecasting.metrics import naive_scale

TRANSFORMS = ("none", "diff", "log-return")
SCALERS = ("standard", "minmax", "none")
SPLITS = ("train", "val", "test")


@dataclass
class WindowConfig:
    lookback: int = 60            # input steps: the workshop's 60 days
    horizon: int = 1              # steps forecast at once: 1 = many-to-one, more = many-to-many
    stride: int = 1               # steps between consecutive window starts
    val_fraction: float = 0.15    # of the rows, chronological: train | val | test
    test_fraction: float = 0.15
    transform: str = "none"       # none | diff | log-return (prices: near-stationary returns)
    scaler: str = "standard"      # fitted on the training rows only

    def check(self) -> None:
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


@dataclass
class Scaler:
    """Per-column affine scaling: ``(v - center) / scale``; stored as JSON with the model."""
    kind: str
    center: list[float]
    scale: list[float]

    @classmethod
    def fit(cls, kind: str, values: np.ndarray) -> "Scaler":
        """Fit on ``values`` (T, C): the training rows only."""
        c = values.shape[1]
        if kind == "standard":
            center, scale = values.mean(0), values.std(0)
        elif kind == "minmax":  # to [0, 1], as the workshop's MinMaxScaler
            center, scale = values.min(0), values.max(0) - values.min(0)
        else:
            center, scale = np.zeros(c), np.ones(c)
        scale = np.where(scale > 1e-12, scale, 1.0)  # a constant column stays put
        return cls(kind, [float(v) for v in center], [float(v) for v in scale])

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - np.asarray(self.center)) / np.asarray(self.scale)

    def inverse(self, values: np.ndarray, column: int = 0) -> np.ndarray:
        """Undo the scaling of one column (the target is column 0)."""
        return values * self.scale[column] + self.center[column]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Codec:
    """Model space <-> original units for the target: the scaler, then the transform."""
    scaler: Scaler
    transform: str

    def decode(self, y_scaled: np.ndarray, last_level: np.ndarray) -> np.ndarray:
        """(N, H) scaled model outputs and (N,) last observed levels -> (N, H) levels."""
        z = self.scaler.inverse(np.asarray(y_scaled, dtype=np.float64))
        if self.transform == "diff":
            return last_level[:, None] + np.cumsum(z, axis=1)
        if self.transform == "log-return":
            return last_level[:, None] * np.exp(np.cumsum(z, axis=1))
        return z


@dataclass
class Windows:
    """The windows of one split. ``x``/``y`` are what a network sees; ``past``/``future``
    are the same steps in original units, which baselines and metrics use."""
    x: np.ndarray        # (N, L, C) float32: scaled (transformed) target, then features
    y: np.ndarray        # (N, H) float32: scaled (transformed) targets
    past: np.ndarray     # (N, L) target levels over the input steps, original units
    future: np.ndarray   # (N, H) target levels to forecast, original units
    times: np.ndarray    # (N, H) datetime64[ns] of the targets
    rows: np.ndarray     # (N, H) row of each target in the series
    codec: Codec

    def __len__(self) -> int:
        return len(self.x)

    @property
    def horizon(self) -> int:
        return self.y.shape[1]

    @property
    def lookback(self) -> int:
        return self.x.shape[1]

    def decode(self, y_scaled: np.ndarray) -> np.ndarray:
        """Network outputs (N, H) -> forecasts in original units (N, H)."""
        return self.codec.decode(y_scaled, self.past[:, -1])

    def take(self, index) -> "Windows":
        return Windows(self.x[index], self.y[index], self.past[index], self.future[index],
                       self.times[index], self.rows[index], self.codec)


@dataclass
class Prepared:
    """A series cut into windows: ``all`` of them, and the train/val/test ones."""
    config: WindowConfig
    columns: list[str]           # model input columns: target first
    times: pd.DatetimeIndex      # (T,) of every series row: ``rows`` index these
    levels: np.ndarray           # (T,) target in original units
    boundaries: tuple[int, int]  # first val row, first test row (series rows)
    scaler: Scaler
    all: Windows
    split: np.ndarray            # (N_all,) "train" | "val" | "test" | "" (straddles a boundary)
    mase_scale: float            # in-sample MAE of the one-step naive forecast on the training rows

    @cached_property
    def train(self) -> Windows:
        return self.all.take(self.split == "train")

    @cached_property
    def val(self) -> Windows:
        return self.all.take(self.split == "val")

    @cached_property
    def test(self) -> Windows:
        return self.all.take(self.split == "test")

    def spans(self) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
        """First and last target time of each split's windows."""
        out = {}
        for name in SPLITS:
            w = self.all.times[self.split == name]
            if w.size:
                out[name] = (pd.Timestamp(w.min()), pd.Timestamp(w.max()))
        return out

    def counts(self) -> dict[str, int]:
        return {name: int((self.split == name).sum()) for name in SPLITS}


def model_inputs(values: np.ndarray, transform: str, column: str = "target") -> tuple[np.ndarray, np.ndarray, int]:
    """(T, C) levels -> (inputs, target levels, offset): the transform applied to column 0.

    A difference or return needs the previous row, so the first row is consumed
    (``offset`` 1) and row ``i`` of the result is row ``i + offset`` of the series.
    """
    levels = values[:, 0]
    if transform == "none":
        return values.copy(), levels.copy(), 0
    if transform == "log-return":
        if (levels <= 0).any():
            raise ParameterError("transform", transform, f"column {column!r} has values <= 0; use `transform` 'diff'")
        z = np.diff(np.log(levels))
    else:
        z = np.diff(levels)
    return np.column_stack([z, values[1:, 1:]]), levels[1:].copy(), 1


def _split_windows(n: int, config: WindowConfig) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """For ``n`` model rows: window starts, their split names, and the first val / test rows."""
    l, h = config.lookback, config.horizon
    first_val = int(round(n * (1 - config.val_fraction - config.test_fraction)))
    first_test = int(round(n * (1 - config.test_fraction)))
    starts = np.arange(0, max(0, n - l - h + 1), config.stride)  # (N,)
    first, last = starts + l, starts + l + h - 1                  # target rows of each window
    split = np.full(len(starts), "", dtype=object)
    split[last < first_val] = "train"
    split[(first >= first_val) & (last < first_test)] = "val"
    split[first >= first_test] = "test"
    return starts, split, (first_val, first_test)


def _complete(split: np.ndarray, config: WindowConfig) -> list[str]:
    """The splits that have no window (validation may be empty on purpose)."""
    return [s for s in SPLITS if not (split == s).any() and not (s == "val" and config.val_fraction == 0)]


def minimum_rows(config: WindowConfig) -> int:
    """The fewest series rows that give at least one window in every split."""
    offset = 0 if config.transform == "none" else 1
    n = config.lookback + config.horizon
    while _complete(_split_windows(n, config)[1], config):
        n += 1
    return n + offset


def prepare(series, config: WindowConfig) -> Prepared:
    """Cut ``series`` (a neuralab Series) into scaled windows and chronological splits."""
    config.check()
    n_rows = len(series)
    if n_rows < config.lookback + config.horizon + (config.transform != "none"):
        raise NeuralabError(f"{series.name}: {n_rows} rows is fewer than `lookback` {config.lookback} + "
                            f"`horizon` {config.horizon}; use a shorter lookback or a longer series")
    inputs, levels, offset = model_inputs(series.values, config.transform, series.target)
    starts, split, (first_val, first_test) = _split_windows(len(inputs), config)
    missing = _complete(split, config)
    if missing:
        raise NeuralabError(f"{series.name}: {n_rows} rows leave no {missing[0]} window for `lookback` "
                            f"{config.lookback}, `horizon` {config.horizon} and val/test fractions "
                            f"{config.val_fraction}/{config.test_fraction}; need at least {minimum_rows(config)} rows")
    scaler = Scaler.fit(config.scaler, inputs[:first_val])
    scaled = scaler.transform(inputs).astype(np.float32)  # (T, C)

    l, h = config.lookback, config.horizon
    in_rows = starts[:, None] + np.arange(l)                       # (N, L)
    out_rows = starts[:, None] + l + np.arange(h)                  # (N, H)
    codec = Codec(scaler, config.transform)
    windows = Windows(x=scaled[in_rows], y=scaled[out_rows, 0], past=levels[in_rows], future=levels[out_rows],
                      times=series.times[offset:].to_numpy()[out_rows], rows=out_rows + offset, codec=codec)
    train_levels = levels[:first_val]
    mase_scale = naive_scale(train_levels) if len(train_levels) > 1 else 1.0
    return Prepared(config, series.columns, series.times, series.values[:, 0],
                    (first_val + offset, first_test + offset), scaler,
                    windows, split, mase_scale if mase_scale > 0 else 1.0)


def last_window(series, config: WindowConfig, scaler: Scaler) -> Windows:
    """The one window ending at the series' last row, for forecasting beyond it."""
    inputs, levels, _ = model_inputs(series.values, config.transform, series.target)
    if len(inputs) < config.lookback:
        need = config.lookback + (config.transform != "none")
        raise NeuralabError(f"{series.name}: {len(series)} rows; this model needs the last {need} "
                            f"(its lookback{' + 1 for the transform' if need > config.lookback else ''})")
    x = scaler.transform(inputs[-config.lookback:]).astype(np.float32)[None]  # (1, L, C)
    h = config.horizon
    return Windows(x=x, y=np.full((1, h), np.nan, np.float32), past=levels[None, -config.lookback:],
                   future=np.full((1, h), np.nan), times=future_times(series.times, h)[None],
                   rows=len(series) + np.arange(h)[None], codec=Codec(scaler, config.transform))


def future_times(times: pd.DatetimeIndex, steps: int) -> np.ndarray:
    """The ``steps`` timestamps after ``times`` on its grid (business days for market data)."""
    steps_ns = np.diff(times.asi8[-200:]) if len(times) > 1 else np.array([86_400 * 10**9])
    step = pd.Timedelta(int(np.median(steps_ns)), "ns")
    last = times[-1]
    if step == pd.Timedelta(days=1) and (times[-200:].day_of_week < 5).all() and len(times) > 5:
        future = pd.bdate_range(last, periods=steps + 1)[1:]
    else:
        future = pd.date_range(last, periods=steps + 1, freq=step)[1:]
    return future.as_unit("ns").to_numpy()
