"""Forecasting end to end: load a series, window it, fit the baselines and a recurrent
network on the trainer, judge them side by side on the test span, and leave a complete
run directory behind:

    config.json        the ForecastConfig, seed, versions and device, the data's report
    model.safetensors  the network's best weights (written by the trainer)
    model.json         architecture, input columns, window settings and the fitted scaler
    metrics.jsonl      one line per epoch; checkpoints/ for --resume-style inspection
    forecast.csv       every test forecast of every forecaster next to the actual value,
                       then the forecast beyond the end of the data
    results.json       the headline (network vs persistence), metrics, error by step, backtest
    report.html        the same as pictures and tables, self-contained; plots/ holds the PNGs
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from neuralab import runs
from neuralab.data.series import BUILTIN, Series, load_series, report_dict
from neuralab.errors import NeuralabError
from neuralab.files import atomic_write, read_json
from neuralab.runs import Kind, Run
from neuralab.forecasting import metrics
from neuralab.forecasting.backtest import rolling_origin, summarize
from neuralab.forecasting.baselines import BASELINES, build_baselines
from neuralab.forecasting.models import ModelConfig, NetworkForecaster, build_network, series_train_config, summary
from neuralab.forecasting.windows import Prepared, Scaler, WindowConfig, Windows, last_window, prepare
from neuralab.training.trainer import TrainConfig


@dataclass
class ForecastConfig:
    data: str = "seattle-weather"     # a built-in series (sp500, nasdaq, seattle-weather) or a CSV path
    target: str | None = None         # None: the built-in's target, or a CSV's only numeric column
    features: list[str] = field(default_factory=list)  # extra input columns (multivariate)
    calendar: list[str] = field(default_factory=list)  # date encodings as inputs: dayofyear, dayofweek, ...
    date_column: str | None = None    # None: the built-in's, or a column named date/time/...
    missing: str = "error"            # error | drop | ffill | interpolate
    duplicates: str = "error"         # error | first | last | mean
    gaps: str = "keep"                # keep (one row = one step) | fill (then --missing fills them)
    windows: WindowConfig = field(default_factory=WindowConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=series_train_config)
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    season: int | None = None         # seasonal-naive period; None: detected on the training span
    backtest_folds: int = 4
    backtest_refit: bool = False      # refit every forecaster for every fold (the network too: slow)

    @classmethod
    def from_dict(cls, d: dict) -> "ForecastConfig":
        return cls(**{**d, "windows": WindowConfig(**d.get("windows", {})), "model": ModelConfig(**d.get("model", {})),
                      "train": TrainConfig(**d.get("train", {}))})

    def check(self) -> None:
        self.windows.check()
        self.model.check()
        self.train.check()
        if self.backtest_folds < 1:
            raise NeuralabError(f"--backtest-folds {self.backtest_folds}: must be at least 1")
        if self.season is not None and not 1 <= self.season <= self.windows.lookback:
            raise NeuralabError(f"--season {self.season}: must be between 1 and --lookback {self.windows.lookback}")


@dataclass
class ForecastResult:
    run_dir: Path
    headline: dict                  # the network against persistence, in words and numbers
    test: dict[str, dict]           # forecaster -> metrics on the test span
    by_step: dict[str, list[float]]  # forecaster -> MAE at each horizon step
    backtest: list[dict]
    history: list[dict]
    seconds: float


def load(config: ForecastConfig) -> Series:
    return load_series(config.data, config.target, config.features, config.date_column,
                       missing=config.missing, duplicates=config.duplicates, gaps=config.gaps,
                       calendar=config.calendar)


def run_forecast(config: ForecastConfig, out: str | Path | None = None, overwrite: bool = False,
                 verbose: bool = True) -> ForecastResult:
    """Train ``config.model`` on ``config.data`` next to the baselines; returns the figures."""
    config.check()
    series = load(config)
    config.target = series.target
    prepared = prepare(series, config.windows)
    baselines = build_baselines(config.baselines, config.season)
    for b in baselines:
        b.fit(prepared.train, prepared.val)

    # Inputs are valid: only now does anything touch the disk.
    path = Path(out) if out is not None else runs.default_dir("forecast", config.model.architecture,
                                                              Path(config.data).stem)
    with Run.create(path, overwrite) as run:
        return _fit_and_judge(run, config, series, prepared, baselines, verbose)


def _fit_and_judge(run: Run, config: ForecastConfig, series: Series, prepared: Prepared, baselines,
                   verbose: bool) -> ForecastResult:
    run_dir = run.path
    network = NetworkForecaster(config.model, config.train, run_dir, verbose=verbose)
    module = network.build(len(prepared.columns), config.windows.horizon)
    meta = network.trainer.model_meta = forecaster_meta(config, series, prepared, module)  # saved with the weights
    run.write_record(Kind.FORECASTER, asdict(config), network.trainer.environment, _data_record(config, series, prepared))
    run.write_json(runs.MODEL, meta)
    if verbose:
        print(_header(config, series, prepared, network), flush=True)

    try:
        network.fit(prepared.train, prepared.val)
    except KeyboardInterrupt:
        raise runs.Interrupted(run_dir) from None
    seconds = network.trainer.elapsed
    forecasters = [network, *baselines]
    splits = {"val": prepared.val, "test": prepared.test} if len(prepared.val) else {"test": prepared.test}
    predictions = {s: {f.name: f.predict(w) for f in forecasters} for s, w in splits.items()}
    scores = {s: {n: metrics.evaluate(w.future, p, prepared.mase_scale) for n, p in predictions[s].items()}
              for s, w in splits.items()}
    test = prepared.test
    by_step = {n: metrics.by_step(test.future, p) for n, p in predictions["test"].items()}
    folds = rolling_origin(prepared, forecasters, config.backtest_folds, refit=config.backtest_refit)
    head = headline(scores["test"], network.name, config.windows.transform, outside_training_range(prepared))
    ahead = last_window(series, config.windows, prepared.scaler)
    future = network.predict(ahead)[0]

    write_forecast_csv(run_dir / "forecast.csv", series, test, predictions["test"], ahead, future, network.name)
    results = {
        "headline": head,
        "target": series.target,
        "test": scores["test"],
        "val": scores.get("val", {}),
        "by_step_mae": by_step,
        "backtest": folds,
        "backtest_summary": summarize(folds),
        "forecasters": {f.name: f.describe() for f in forecasters},
        "future": {"times": [str(pd.Timestamp(t)) for t in ahead.times[0]], "forecast": future.tolist()},
        "windows": prepared.counts(),
        "spans": {k: [str(a.date()), str(b.date())] for k, (a, b) in prepared.spans().items()},
        "best_epoch": network.trainer.best_epoch(),
        "epochs_run": len(network.history),
        "train_seconds": seconds,
        "mase_scale": prepared.mase_scale,
    }
    run.write_json(runs.RESULTS, results)

    from neuralab.forecasting.report import write_forecast_report

    write_forecast_report(run_dir, config=config, series=series, prepared=prepared, results=results,
                          predictions=predictions["test"], history=network.history,
                          summary_text=summary(module, config.windows.lookback))
    if verbose:
        print(head["sentence"])
        print(f"report: {run_dir / 'report.html'}", flush=True)
    return ForecastResult(run_dir, head, scores["test"], by_step, folds, network.history, seconds)


def headline(test: dict[str, dict], network: str, transform: str = "none", outside: float = 0.0) -> dict:
    """The first thing every report says: the network's MAE next to persistence's.
    ``outside`` is the fraction of test targets outside the range the training span saw."""
    net, ref = test[network]["mae"], test["persistence"]["mae"]
    pct = metrics.percent_better(net, ref)
    beats = net < ref
    if beats and pct < 1:
        sentence = (f"{network} only ties with persistence on the test span: MAE {net:.4g} vs {ref:.4g}, "
                    f"{pct:.1f}% better, too small a margin to matter. Persistence (the last value) is hard "
                    "to beat on series that move like a random walk, such as prices.")
    elif beats:
        sentence = (f"{network} beats persistence on the test span: MAE {net:.4g} vs {ref:.4g}, "
                    f"{pct:.1f}% better.")
    else:
        sentence = (f"{network} does NOT beat persistence on the test span: MAE {net:.4g} vs {ref:.4g}, "
                    f"{-pct:.1f}% worse. Persistence (the last value) is hard to beat on series that move "
                    "like a random walk, such as prices.")
        if transform == "none":
            if outside > 0.1:
                sentence += (f" {100 * outside:.0f}% of the test values lie outside the range of the training span,"
                             " and a network fitted on scaled levels does not extrapolate.")
            sentence += (" Try modelling the changes (--target-transform log-return for prices, diff otherwise)"
                         " or giving the network more inputs (--features, --calendar).")
    best = min(test, key=lambda n: test[n]["mae"])
    return {"network": network, "network_mae": net, "persistence_mae": ref, "percent_better": pct,
            "beats_persistence": beats, "best": best, "best_mae": test[best]["mae"],
            "test_outside_training_range": outside, "sentence": sentence}


def outside_training_range(prepared: Prepared) -> float:
    """The fraction of test targets above the highest or below the lowest training value."""
    seen = prepared.levels[:prepared.boundaries[0]]
    future = prepared.test.future
    return float(((future > seen.max()) | (future < seen.min())).mean())


def forecaster_meta(config: ForecastConfig, series: Series, prepared: Prepared, module: torch.nn.Module) -> dict:
    """Everything needed to rebuild the network and feed it new data (model.json)."""
    return {
        "kind": Kind.FORECASTER.value,
        "architecture": config.model.architecture,
        "model": asdict(config.model),
        "inputs": len(prepared.columns),
        "horizon": config.windows.horizon,
        "target": series.target,
        "features": series.features[:len(series.features) - 2 * len(set(config.calendar))],
        "calendar": list(dict.fromkeys(config.calendar)),
        "columns": prepared.columns,
        "windows": asdict(config.windows),
        "scaler": prepared.scaler.to_dict(),
        "series": {"date_column": series.frame.index.name, "missing": config.missing,
                   "duplicates": config.duplicates, "gaps": config.gaps, "frequency": series.report.frequency},
        "parameters": sum(p.numel() for p in module.parameters()),
    }


def _data_record(config: ForecastConfig, series: Series, prepared: Prepared) -> dict:
    data = {"series": report_dict(series), "windows": prepared.counts(),
            "spans": {k: [str(a), str(b)] for k, (a, b) in prepared.spans().items()}}
    if config.data not in BUILTIN:
        path = Path(config.data)
        data["path"] = str(path.resolve())
        data["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    else:
        data["builtin"] = {"title": BUILTIN[config.data].title, "source": BUILTIN[config.data].source}
    return data


def _header(config: ForecastConfig, series: Series, prepared: Prepared, network: NetworkForecaster) -> str:
    c = prepared.counts()
    lines = [f"{network.describe()} on {series.name} {series.target}"
             + (f" + {', '.join(series.features)}" if series.features else "")
             + f": lookback {config.windows.lookback}, horizon {config.windows.horizon}, "
               f"transform {config.windows.transform}, device {network.trainer.device}, seed {config.train.seed}",
             *("  " + line for line in series.report.lines()),
             f"  windows: {c['train']:,} train / {c['val']:,} val / {c['test']:,} test",
             summary(network.network, config.windows.lookback)]
    return "\n".join(lines)


FORECAST_COLUMNS = ("split", "origin", "time", "step", "actual")  # then one column per forecaster


def write_forecast_csv(path: Path, series: Series, test: Windows, predictions: dict[str, np.ndarray],
                       future_window: Windows, future: np.ndarray, network: str) -> None:
    """Long format: one row per (window, step); the test span, then the forecast past the data."""
    n, h = test.future.shape
    origin = series.times.to_numpy()[test.rows[:, 0] - 1]
    fixed = ("test", np.repeat(origin, h), test.times.ravel(), np.tile(np.arange(1, h + 1), n), test.future.ravel())
    frame = pd.DataFrame({**dict(zip(FORECAST_COLUMNS, fixed)), **{name: p.ravel() for name, p in predictions.items()}})
    ahead = pd.DataFrame({"split": "future", "origin": series.times[-1], "time": future_window.times[0],
                          "step": np.arange(1, h + 1), "actual": np.nan, network: future})
    frame = pd.concat([frame, ahead], ignore_index=True)
    with atomic_write(path) as f:
        frame.to_csv(f, index=False, float_format="%.6g", date_format="%Y-%m-%d %H:%M:%S")


def read_forecast_csv(path: Path, max_rows: int = 200_000) -> tuple[dict, dict, list[str]]:
    """forecast.csv -> ({step: {"time", "actual", name: values}}, the future rows, forecaster names);
    values that are missing or not finite are None."""
    import csv

    steps: dict[str, dict[str, list]] = {}
    future: dict[str, list] = {"time": []}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        names = [c for c in (reader.fieldnames or []) if c not in FORECAST_COLUMNS]
        for i, row in enumerate(reader):
            if i >= max_rows:
                break
            if row.get("split") == "future":
                future["time"].append(row["time"])
                for n in names:
                    future.setdefault(n, []).append(_number(row.get(n)))
                continue
            step = steps.setdefault(str(row.get("step", "1")), {"time": [], "actual": [], **{n: [] for n in names}})
            step["time"].append(row["time"])
            step["actual"].append(_number(row.get("actual")))
            for n in names:
                step[n].append(_number(row.get(n)))
    future = {k: v for k, v in future.items() if k == "time" or any(x is not None for x in v)}
    return steps, future, names


def _number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


# --- using a finished run --------------------------------------------------------------

@dataclass
class TrainedForecaster:
    """A network rebuilt from its run directory with its scaler and window settings."""
    network: torch.nn.Module
    meta: dict

    @property
    def windows(self) -> WindowConfig:
        return WindowConfig(**self.meta["windows"])

    @torch.inference_mode()
    def forecast(self, series: Series) -> pd.DataFrame:
        """The next ``horizon`` values after the last row of ``series``."""
        window = last_window(series, self.windows, Scaler(**self.meta["scaler"]))
        self.network.eval()
        out = self.network(torch.from_numpy(window.x)).double().numpy()  # (1, H)
        values = window.decode(out)[0]
        return pd.DataFrame({"time": window.times[0], "step": np.arange(1, len(values) + 1),
                             self.meta["target"]: values})


def load_forecaster(run_dir: str | Path) -> TrainedForecaster:
    """Rebuild a trained forecaster from its run directory alone (JSON + safetensors)."""
    from neuralab.training.checkpoint import load_weights

    run = Run.open(run_dir, Kind.FORECASTER)
    run_dir = run.path
    if not (run_dir / runs.WEIGHTS).exists():
        raise NeuralabError(f"{run_dir}: no model.safetensors yet (the run has not finished an epoch)")
    meta = read_json(run_dir / "model.json")
    network = build_network(ModelConfig(**meta["model"]), meta["inputs"], meta["horizon"])
    load_weights(run_dir / "model.safetensors", network)
    return TrainedForecaster(network.eval(), meta)


def predict_run(run_dir: str | Path, csv: str | Path, date_column: str | None = None,
                missing: str | None = None) -> pd.DataFrame:
    """Forecast the next horizon after the end of ``csv`` with the run's model and scaler."""
    model = load_forecaster(run_dir)
    stored = model.meta["series"]
    series = load_series(csv, model.meta["target"], model.meta["features"],
                         date_column or (stored["date_column"] if str(csv) not in BUILTIN else None),
                         missing=missing or stored["missing"], duplicates=stored["duplicates"], gaps=stored["gaps"],
                         calendar=model.meta.get("calendar", []))
    return model.forecast(series)


def write_report(run_dir: str | Path) -> Path:
    """Write report.html and plots/ again from a finished run alone: results.json,
    forecast.csv, metrics.jsonl, the model, and the series it was trained on."""
    from dataclasses import replace

    from neuralab.forecasting.report import write_forecast_report

    network = load_forecaster(run_dir).network  # checks the run's kind and weights first
    run = Run.open(run_dir, Kind.FORECASTER)
    run_dir, record = run.path, run.record
    for name in (runs.RESULTS, runs.FORECAST):
        if not (run_dir / name).is_file():
            raise NeuralabError(f"{run_dir / name}: missing; the run did not finish, so there is no report to write")
    config = ForecastConfig.from_dict(record["config"])
    data = record["data"]
    if "path" in data:  # the file the run read, wherever the command is run from, unchanged
        path = Path(data["path"])
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != data["sha256"]:
            raise NeuralabError(f"{path}: {'missing' if not path.is_file() else 'changed'} since the run; the report "
                                "draws the series the run was trained on: put that file back")
    results = run.results()
    series = load(replace(config, data=data.get("path", config.data)))
    test = pd.read_csv(run_dir / runs.FORECAST).query("split == 'test'")
    predictions = {n: test[n].to_numpy(np.float64).reshape(-1, config.windows.horizon) for n in results["test"]}
    with run:  # one writer at a time; a killed write's leftovers go
        return write_forecast_report(run_dir, config=config, series=series, prepared=prepare(series, config.windows),
                                     results=results, predictions=predictions, history=run.metrics(),
                                     summary_text=summary(network, config.windows.lookback))
