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

import warnings
from dataclasses import asdict, dataclass, replace
from functools import cached_property

import numpy as np
import pandas as pd

from neuralab.data.dates import months_on_day, on_day
from neuralab.errors import NeuralabError, ParameterError
from neuralab.forecasting.metrics import constant, naive_scale
from neuralab.forecasting.config import SCALERS, SPLITS, TRANSFORMS, WindowConfig  # noqa: F401  importable here too

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


@dataclass(frozen=True)
class Source:
    """The arrays every window of a series is cut from. A window is a start row, never a
    copy: ``Windows`` reads its inputs and targets as strided views of these (a 3.4 M-row
    series with a 60-step lookback would otherwise take 60 times its size per copy)."""
    scaled: np.ndarray   # (T, C) float32: scaled (transformed) target, then features
    levels: np.ndarray   # (T,) float64: the target in original units, row for row
    times: np.ndarray    # (T,) datetime64[ns]
    offset: int = 0      # model row i is row i + offset of the series (a transform eats one)

    @staticmethod
    def concat(sources: list["Source"]) -> tuple["Source", list[int]]:
        """One source holding ``sources`` end to end, and where each one begins in it."""
        begins = np.cumsum([0, *(len(s.levels) for s in sources[:-1])]).tolist()
        return Source(np.concatenate([s.scaled for s in sources]), np.concatenate([s.levels for s in sources]),
                      np.concatenate([s.times for s in sources])), begins


def _steps(values: np.ndarray, width: int, starts) -> np.ndarray:
    """Rows ``start .. start + width - 1`` of ``values`` for every start: a read-only view
    when ``starts`` is a range (windows of one split), a copy for any other selection."""
    view = np.lib.stride_tricks.sliding_window_view(values, width, axis=0)  # (T - width + 1, ..., width)
    if values.ndim == 2:
        view = view.transpose(0, 2, 1)                                      # (T - width + 1, width, C)
    if isinstance(starts, range):
        return view[starts.start:starts.stop:starts.step]
    return view[starts]


def _as_range(starts: np.ndarray):
    """``starts`` as a range when it is evenly spaced (so that windows stay views)."""
    if len(starts) == 0:
        return range(0)
    if len(starts) == 1:
        return range(int(starts[0]), int(starts[0]) + 1)
    step = int(starts[1] - starts[0])
    if step > 0 and (np.diff(starts) == step).all():
        return range(int(starts[0]), int(starts[-1]) + 1, step)
    return np.asarray(starts)


@dataclass
class Windows:
    """The windows of one split: each one ``lookback`` input rows of ``source`` from its start,
    then ``horizon`` target rows. ``x``/``y`` are what a network sees; ``past``/``future`` are
    the same steps in original units, which baselines and metrics use. All four are views."""
    source: Source
    starts: range | np.ndarray   # (N,) first input row of each window (model rows)
    lookback: int
    horizon: int
    codec: Codec | None          # None for windows pooled from several series (train only)

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def x(self) -> np.ndarray:       # (N, L, C) float32
        return _steps(self.source.scaled, self.lookback, self.starts)

    @property
    def y(self) -> np.ndarray:       # (N, H) float32: the scaled (transformed) target
        return _steps(self.source.scaled[self.lookback:, 0], self.horizon, self.starts)

    @property
    def past(self) -> np.ndarray:    # (N, L) target levels over the input steps
        return _steps(self.source.levels, self.lookback, self.starts)

    @property
    def future(self) -> np.ndarray:  # (N, H) target levels to forecast
        return _steps(self.source.levels[self.lookback:], self.horizon, self.starts)

    @property
    def times(self) -> np.ndarray:   # (N, H) datetime64[ns] of the targets
        return _steps(self.source.times[self.lookback:], self.horizon, self.starts)

    @property
    def origins(self) -> np.ndarray:  # (N,) time of the last input step: when the forecast is made
        return self.source.times[np.asarray(self.starts) + self.lookback - 1]

    @property
    def rows(self) -> np.ndarray:    # (N, H) series row of each target
        return np.asarray(self.starts)[:, None] + self.lookback + np.arange(self.horizon) + self.source.offset

    def decode(self, y_scaled: np.ndarray) -> np.ndarray:
        """Network outputs (N, H) -> forecasts in original units (N, H)."""
        return self.codec.decode(y_scaled, self.past[:, -1])

    def take(self, index) -> "Windows":
        """The windows at ``index`` (a mask, positions or a slice), still views when contiguous."""
        starts = np.asarray(self.starts)[index] if not isinstance(index, slice) else self.starts[index]
        return replace(self, starts=_as_range(np.asarray(starts)) if not isinstance(starts, range) else starts)

    def batches(self, size: int = 65_536):
        """Consecutive blocks of at most ``size`` windows, for work that would copy."""
        for begin in range(0, len(self), size):
            yield self.take(slice(begin, begin + size))

    @staticmethod
    def pool(parts: list["Windows"]) -> "Windows":
        """The windows of several series as one training set (they must share one source)."""
        parts = [w for w in parts if len(w)]
        if len({id(w.source) for w in parts}) > 1:
            raise ValueError("pooled windows must share one source (see prepare_many)")
        if len(parts) == 1:
            return parts[0]
        starts = np.concatenate([np.asarray(w.starts) for w in parts])
        return Windows(parts[0].source, starts, parts[0].lookback, parts[0].horizon, None)


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
    mase_scale: float | None     # in-sample MAE of the one-step naive forecast on the training rows; None: constant
    name: str = ""               # the series' name (one of several in a file with a series column)

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
            w = getattr(self, name)
            if len(w):
                out[name] = (pd.Timestamp(w.times[0, 0]), pd.Timestamp(w.times[-1, -1]))
        return out

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in SPLITS}


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


# The network computes in float32 and the residual recipe squares each window's one-step
# changes: past about 1e19 a square is infinite. Scaled inputs far below that are a series the
# network can learn from; beyond 1e15 they are unscaled huge numbers, or a value so far from the
# training rows (a wrong unit, a typo) that every forecast from it would be inf or NaN.
SCALED_LIMIT = 1e15


def refuse_overflow(scaled: np.ndarray, label: str, scaler: str, columns: list[str]) -> None:
    """Refuse scaled inputs (T, C) too large for the network's arithmetic, naming the column."""
    if not scaled.size:
        return
    top = max(float(np.nanmax(scaled)), -float(np.nanmin(scaled)))  # NaN: the future rows of a last window
    if top <= SCALED_LIMIT:
        return
    column = int(np.argmax(np.nanmax(np.abs(scaled), axis=0)))
    value = f"{top:.3g}" if np.isfinite(top) else "more than float32 holds (3.4e38)"
    if scaler == "none":
        raise ParameterError("scaler", scaler, f"{label}: column {columns[column]!r} reaches {value}, too large for "
                             "the network's 32-bit arithmetic unscaled; use `scaler` standard or minmax")
    raise NeuralabError(f"{label}: column {columns[column]!r} reaches {value} times the spread of the training rows "
                        "once scaled: far beyond anything the network learned on, and beyond its 32-bit arithmetic; "
                        "check the file for a wrong unit or a mistyped value")


def prepare(series, config: WindowConfig) -> Prepared:
    """Cut ``series`` (a neuralab Series) into scaled windows and chronological splits."""
    config.check()
    if config.transform == "auto":
        raise NeuralabError("prepare needs a concrete `transform` (none, diff or log-return); "
                            "the forecasting pipeline chooses one on the validation span for transform='auto'")
    n_rows = len(series)
    if n_rows < config.lookback + config.horizon + (config.transform != "none"):
        # the longer of the two first: a horizon of 5000 on 1461 rows is the horizon's fault
        shorter = " or ".join(f"`{name}` ({n})" for n, name in sorted(
            [(config.horizon, "horizon"), (config.lookback, "lookback")], reverse=True))
        raise NeuralabError(f"{series.label}: {n_rows} rows is fewer than `lookback` {config.lookback} + "
                            f"`horizon` {config.horizon}; use a shorter {shorter}, or a longer series (at least "
                            f"{minimum_rows(config)} rows, with train, val and test windows)")
    inputs, levels, offset = model_inputs(series.values, config.transform, series.target)
    starts, split, (first_val, first_test) = _split_windows(len(inputs), config)
    missing = _complete(split, config)
    if missing:
        raise NeuralabError(f"{series.label}: {n_rows} rows leave no {missing[0]} window for `lookback` "
                            f"{config.lookback}, `horizon` {config.horizon} and val/test fractions "
                            f"{config.val_fraction}/{config.test_fraction}; need at least {minimum_rows(config)} rows")
    left_out(split, starts, series, config, offset, first_test)
    scaler = Scaler.fit(config.scaler, inputs[:first_val])
    with np.errstate(over="ignore"):  # too large for float32: refused by name just below
        scaled = scaler.transform(inputs).astype(np.float32)  # (T, C)
    del inputs
    refuse_overflow(scaled, series.label, config.scaler, series.columns)
    source = Source(scaled, levels, series.times[offset:].to_numpy(), offset)
    windows = Windows(source, _as_range(starts), config.lookback, config.horizon, Codec(scaler, config.transform))
    train_levels = levels[:first_val]
    # A constant training span (up to float rounding) has no naive error to scale by: MASE is
    # undefined, not the MAE divided by a rounding error
    mase_scale = None if constant(train_levels) else naive_scale(train_levels)
    return Prepared(config, series.columns, series.times, series.values[:, 0],
                    (first_val + offset, first_test + offset), scaler,
                    windows, split, mase_scale, series.name)


# Why a validation or test window is left out of every score: a target neuralab filled, or an
# input interpolated from the target or a value after it (``left_out``); its split reads
# "val filled", "test sees ahead", ... (``unscored``)
FILLED, AHEAD = "filled", "sees ahead"
SCORED = ("val", "test")


def unscored(split_name: str, reason: str) -> str:
    """The split label of a ``split_name`` window left out for ``reason`` (FILLED or AHEAD)."""
    return f"{split_name} {reason}"


def left_out(split: np.ndarray, starts: np.ndarray, series, config: WindowConfig, offset: int,
             first_test: int) -> None:
    """Take out of ``split``'s validation and test windows those whose targets the `missing`
    policy filled (FILLED), and those whose last input was interpolated from a later
    observation, the target's or one past it (AHEAD): scoring either would count neuralab's
    own fill as skill, and validation would let it choose the transform, stop training and size
    the intervals. Training windows keep them. Refused where no test window is left, or no
    validation window of a series that had some."""
    if not hasattr(series, "filled_rows"):  # a stand-in with values alone: nothing was filled
        return
    filled, ahead = series.filled_rows()
    if not (filled.any() or ahead.any()):
        return
    validated = (split == "val").any()
    for name in SCORED:
        kept = np.flatnonzero(split == name)
        targets = starts[kept, None] + config.lookback + np.arange(config.horizon) + offset  # (N, H) series rows
        split[kept[ahead[starts[kept] + config.lookback - 1 + offset]]] = unscored(name, AHEAD)
        split[kept[filled[targets].any(axis=1)]] = unscored(name, FILLED)
    if not (split == "test").any():
        _refuse_unscored(series, config, filled, ahead, first_test + offset)
    if validated and not (split == "val").any():  # early stopping, the transform's choice and the intervals would go
        raise NeuralabError(f"{series.label}: every validation window's target or last input was filled by `missing` "
                            f"{series.report.missing_policy}, so nothing could validate the network on it (validation takes "
                            "windows of every series); keep the gaps "
                            "(`gaps` keep) and drop missing values (`missing` drop), or give a larger `val_fraction`")


def _refuse_unscored(series, config: WindowConfig, filled: np.ndarray, ahead: np.ndarray, first_row: int) -> None:
    """Refuse a series whose every test window was left out, naming `horizon` where a shorter
    one would leave some (a gap every week under a horizon of 7 days), and the policy's fill."""
    policy = series.report.missing_policy
    what = ("was filled by `missing` ffill" if policy != "interpolate" else
            "or last input was filled by `missing` interpolate")
    # observed targets in a row from each test row on, and whether a forecast from the row before sees no fill
    run = np.zeros(len(filled) + 1, dtype=int)
    for row in range(len(filled) - 1, first_row - 1, -1):
        run[row] = 0 if filled[row] else run[row + 1] + 1
    starts = np.arange(first_row, len(filled))
    longest = int(run[starts[~ahead[starts - 1]]].max(initial=0))
    if 0 < longest < config.horizon:
        fix = (f"every window of `horizon` {config.horizon} holds one, and the longest run of "
               f"targets the test span could score is {longest}; use a `horizon` of at most {longest}, or keep the gaps (`gaps` keep) and "
               "drop missing values (`missing` drop)")
    else:
        fix = ("nothing could be scored; keep the gaps (`gaps` keep) and drop missing values (`missing` drop), "
               "or give a series with more observations in its last rows")
    raise NeuralabError(f"{series.label}: every test window's target {what}: {fix}")


def too_short(n_rows: int, config: WindowConfig) -> bool:
    """Whether a series of ``n_rows`` rows gives no window in a split that needs one."""
    offset = config.transform != "none"
    return n_rows < config.lookback + config.horizon + offset or \
        bool(_complete(_split_windows(n_rows - offset, config)[1], config))


def refuse_short_series(many: list, config: WindowConfig, series_column: str | None, where: str | None) -> None:
    """Name every series of several that is too short for ``config``, and the `where` that leaves
    them out (and is recorded with the run), rather than the first one's rows alone."""
    short = [s for s in many if too_short(len(s), config)]
    if not short or len(short) == len(many) or series_column is None:
        return  # none; or every one, which no leaving out mends: prepare says so for the first
    import shlex

    from neuralab.data.series import parse_where, where_values

    first, others = short[0], short[1:]
    need = minimum_rows(config)
    also = f", and so {'is' if len(others) == 1 else 'are'} " + ", ".join(
        f"{s.name!r} ({len(s)} rows)" for s in others) if others else ""
    names = ",".join(s.name for s in short)
    column, value, keep = parse_where(where)
    # read back as `where` will read it: names holding commas can name a third series ("A" and "B" beside "A,B")
    readable = sorted(where_values(names, False, [s.name for s in many])) == sorted(s.name for s in short)
    # quoted as a shell reads it ('city!=Portland, OR'): the line is to be copied into a command
    if readable and where is None:
        leave = f"leave {'them' if others else 'it'} out with `where` {shlex.quote(f'{series_column}!={names}')} to " \
                f"forecast the other {len(many) - len(short)} series, or use a shorter lookback"
    elif readable and not keep and column is not None and column.strip().lower() == series_column.strip().lower():
        leave = f"leave {'them' if others else 'it'} out too with `where` " \
                f"{shlex.quote(f'{column}!={value},{names}')}, or use a shorter lookback"
    else:  # one `where` per run, and it picks rows by another column; or no `where` reads back as these
        leave = "use a shorter lookback, or a file without the series"
    raise NeuralabError(f"{first.label}: {len(first)} rows is fewer than `lookback` {config.lookback} + `horizon` "
                        f"{config.horizon} need for train, val and test windows ({need} rows){also}; {leave}")


def prepare_many(many: list, config: WindowConfig, series_column: str | None = None,
                 where: str | None = None) -> list[Prepared]:
    """Several series (one per value of a series column), each scaled on its own training
    rows, their windows cut from one shared source so that one network trains on all.
    ``series_column`` and ``where``, the run's, say how to leave out a series too short."""
    config.check()
    refuse_short_series(many, config, series_column, where)
    prepared = [prepare(s, config) for s in many]
    if len(prepared) < 2:
        return prepared
    source, begins = Source.concat([p.all.source for p in prepared])
    for p, begin in zip(prepared, begins):
        starts = p.all.starts
        p.all = replace(p.all, source=source, starts=range(starts.start + begin, starts.stop + begin, starts.step)
                        if isinstance(starts, range) else starts + begin)
        for name in SPLITS:
            p.__dict__.pop(name, None)  # cached splits point at the old source
    return prepared


def last_window(series, config: WindowConfig, scaler: Scaler, frequency: str | None = None) -> Windows:
    """The one window ending at the series' last row, for forecasting beyond it: its targets
    are unknown (NaN) and their times lie on the series' grid after its end, the calendar of
    ``frequency`` (a run's, for new rows whose own gaps leave them irregular) or the series' own."""
    inputs, levels, _ = model_inputs(series.values, config.transform, series.target)
    if len(inputs) < config.lookback:
        need = config.lookback + (config.transform != "none")
        raise NeuralabError(f"{series.label}: {len(series)} rows; this model needs the last {need} "
                            f"(its lookback{' + 1 for the transform' if need > config.lookback else ''})")
    l, h = config.lookback, config.horizon
    with np.errstate(over="ignore"):
        scaled = np.concatenate([scaler.transform(inputs[-l:]), np.full((h, inputs.shape[1]), np.nan)]).astype(np.float32)
    refuse_overflow(scaled, series.label, scaler.kind, series.columns)
    future = future_times(series.times, h, frequency or series.report.frequency)
    times = np.concatenate([series.times[-l:].to_numpy(), future])
    source = Source(scaled, np.concatenate([levels[-l:], np.full(h, np.nan)]), times, len(series) - l)
    return Windows(source, range(0, 1), l, h, Codec(scaler, config.transform))


def future_times(times: pd.DatetimeIndex, steps: int, frequency: str | None = None) -> np.ndarray:
    """The ``steps`` timestamps after ``times`` on its grid: the calendar of ``frequency``, the
    pandas alias loading found (MS, ME, QS-OCT, B, h), so that months and quarters keep their
    day, as months on another day do ("monthly on day 15": 28 February, then 30 March for the
    30th); only for an irregular grid (or none given) the median of the last steps."""
    last = times[-1]
    months = months_on_day(frequency)
    if months is not None:
        n, day = months
        return on_day(last, n * np.arange(1, steps + 1), day).as_unit("ns").to_numpy()
    offset = None
    if frequency and frequency != "irregular":
        try:
            with warnings.catch_warnings():  # an old run's "M" for month ends: pandas warns, and reads it
                warnings.simplefilter("ignore")
                offset = pd.tseries.frequencies.to_offset(frequency)
        except ValueError:  # a frequency this pandas does not read back
            offset = None
    if offset is not None:
        # date_range begins at the first date on the calendar from ``last``: ``last`` itself where it lies on it
        future = pd.date_range(last, periods=steps + 1, freq=offset)
        return future[future > last][:steps].as_unit("ns").to_numpy()
    steps_ns = np.diff(times.asi8[-200:]) if len(times) > 1 else np.array([86_400 * 10**9])
    step = pd.Timedelta(int(np.median(steps_ns)), "ns")
    if step == pd.Timedelta(days=1) and (times[-200:].day_of_week < 5).all() and len(times) > 5:
        future = pd.bdate_range(last, periods=steps + 1)[1:]
    else:
        future = pd.date_range(last, periods=steps + 1, freq=step)[1:]
    return future.as_unit("ns").to_numpy()
