"""A finished forecasting run, used: its forecaster rebuilt from the run directory alone
(``load_forecaster``: model.json checked as a new run's settings are, then the weights), the
next horizon forecast after new rows (``predict_run``: read as the run read its data, rows of
another frequency refused), and its report written again (``write_report``). A run still
training or interrupted is refused (``RunNotFinished``): its weights are the best epoch so
far, not yet the forecaster the run keeps.

Apart from forecasting.pipeline, which makes and resumes runs: nothing here trains, and a
run's config, data and time offsets are read as the pipeline recorded them (its
``stored_config``, ``recorded_data`` and ``recorded_offsets``).
"""

from __future__ import annotations

import warnings
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from neuralab import runs
from neuralab.data.series import (BUILTIN, Series, SeriesReport, calendar_holes, find_column, load_series_list,
                                  parse_where)
from neuralab.data.dates import LOCAL_DATES, read_in_utc
from neuralab.data.tables import read_table
from neuralab.errors import NeuralabError, ParameterError
from neuralab.forecasting.forecast_csv import SERIES_COLUMN
from neuralab.forecasting.intervals import label
from neuralab.forecasting.models import ModelConfig, NetworkForecaster, build_network, series_train_config
from neuralab.forecasting.pipeline import (UserForecaster, WindowNetwork, given_network, load, network_summary,
                                           own_model, recorded_data, recorded_offsets, stored_config, user_network)
from neuralab.forecasting.windows import Scaler, WindowConfig, last_window, prepare_many
from neuralab.runs import Kind, Run


class RunNotFinished(NeuralabError):
    """A forecaster run without results.json given to what forecasts with it: its
    model.safetensors is the best epoch so far, not the forecaster the run keeps, which only
    its end chooses (the trained network or its linear start, when training did not beat it).
    An image classifier's best epoch is its model as it is, so an interrupted one is used.
    The message ends with ``way_on``, by default the Python call that finishes the run, for
    which the command line puts its own command (``said_with``)."""

    def __init__(self, run_dir: str | Path, way_on: str | None = None):
        self.run_dir = Path(run_dir)
        run = Run(self.run_dir)
        self.resumable = False
        why = f"its {runs.WEIGHTS} holds the best epoch so far, not yet the forecaster the run keeps"
        if run.status() is runs.Status.RUNNING:
            then = "wait until it finishes (its results.json)"
            said = f"{self.run_dir}: still training; {why}; {then}"
        else:
            does = "finishes it" if runs.epoch_kept(self.run_dir) else runs.FROM_THE_START
            self.resumable = runs.Interrupted.resume_call(self.run_dir, Kind.FORECASTER) is not None
            then = runs.way_on(self.run_dir, Kind.FORECASTER, f"{does}, then use it", way_on)
            said = f"{self.run_dir}: the run did not finish (no results.json); {why}; {then}"
        super().__init__(said)

    def said_with(self, way_on: str) -> "RunNotFinished":
        return RunNotFinished(self.run_dir, way_on) if self.resumable else self


def refuse_unfinished(run: Run) -> None:
    """Raise RunNotFinished for a forecaster run that is still training or was interrupted;
    a run Keras's fit wrote, or a damaged one, is left to ``load_forecaster`` to name."""
    if not run.by_keras_fit and run.status() in (runs.Status.RUNNING, runs.Status.INTERRUPTED):
        raise RunNotFinished(run.path)


def load_forecaster(run_dir: str | Path, trust_code: bool = False, model=None) -> NetworkForecaster:
    """Rebuild a trained forecaster from its run directory alone (JSON + safetensors): a
    fitted NetworkForecaster whose ``meta`` holds the run's scaler and window settings. A
    run of PyTorch code runs the run's copy of it only with ``trust_code`` (training.source).
    A run whose PyTorch module it cannot rebuild loads into ``model``, the module it was
    trained with, built the same way (checked against the run first), as load_classifier's."""
    from neuralab.training.source import check_record
    from neuralab.training.checkpoint import check_fits, load_weights

    run = Run.open(run_dir, Kind.FORECASTER)
    run_dir = run.path
    weights = run.weights()
    if run.by_keras_fit:
        raise NeuralabError(f"{run_dir}: Keras's fit wrote this run (RunLogger): it holds the model, but not the "
                            "series, target, scaling and window that forecasting with it takes (docs/keras.md)")
    meta = run.model_meta()
    source = check_record(meta.get("source"), str(run_dir / runs.MODEL))
    config, windows, options = _checked_meta(meta, run_dir / runs.MODEL, zoo=source["type"] == "zoo")
    if model is not None:  # refused for a run that rebuilds its own network; loaded in place, on the CPU
        network = WindowNetwork(given_network(model, meta, run_dir, weights).cpu(), windows.lookback, **options)
    elif source["type"] == "zoo":
        shape = (config, meta["inputs"], meta["horizon"], windows.lookback)
        with torch.device("meta"):
            check_fits(weights, build_network(*shape, **options, check_memory=False), f"{runs.MODEL}'s network")
        network = build_network(*shape, **options)
    else:
        network = WindowNetwork(user_network(source, run_dir, trust_code), windows.lookback, **options)
    load_weights(weights, network)
    try:  # the settings it was trained with, for what it shows; forecasting with it needs none of them
        train = replace(stored_config(run).train, device="cpu")
    except NeuralabError:
        train = series_train_config(device="cpu")
    if source["type"] == "zoo":
        forecaster = NetworkForecaster(config, train)
    else:  # described as the user's network; a run from before own_model records the built-in ones' settings
        from neuralab.training.source import ModelSource

        own = ModelSource(source["type"], str(meta.get("architecture")), module=network.net)
        forecaster = UserForecaster(own, own_model(own.architecture), train)
    forecaster.network, forecaster.meta, forecaster.horizon_ = network.eval(), meta, meta["horizon"]
    forecaster.trainer = _Inference(network)
    return forecaster


def _checked_meta(meta: dict, path: Path, zoo: bool) -> tuple[ModelConfig, WindowConfig, dict]:
    """The network's settings in a forecaster's model.json, each checked as a new run's are
    (the model's only for the zoo's networks; another names the user's): the file may come
    from anyone (a downloaded run)."""
    def bad(why: str) -> NeuralabError:
        return NeuralabError(f"{path}: {why}; the file is damaged or not neuralab's")

    for name, kind in (("model", dict), ("windows", dict), ("inputs", int), ("horizon", int)):
        if type(meta.get(name)) is not kind:
            expected = "an object" if kind is dict else "a whole number"
            raise bad(f"field {name!r} is {meta.get(name, 'missing')!r}, expected {expected}")
    options = meta.get("network", {})
    if not (isinstance(options, dict) and set(options) <= {"level", "zero"}
            and type(options.get("level", True)) is bool and type(options.get("zero", 0.0)) in (int, float)
            and np.isfinite(options.get("zero", 0.0))):
        raise bad(f"field 'network' is {options!r}, expected an object of 'level' (true or false) and 'zero' (a number)")
    if not (meta["inputs"] >= 1 and meta["horizon"] >= 1):
        raise bad(f"fields 'inputs' and 'horizon' are {meta['inputs']} and {meta['horizon']}; both must be at least 1")
    try:
        config = ModelConfig(**{"recipe": "plain", **meta["model"]})  # runs before the residual recipe were plain
        windows = WindowConfig(**meta["windows"])
        if zoo:
            config.check()
        windows.check()
    except TypeError as e:  # a field of another name
        raise bad(f"{e}".replace("__init__()", "a setting")) from None
    except NeuralabError as e:
        raise bad(str(e)) from None
    return config, windows, options


class _Inference:
    """What ``NetworkForecaster.predict`` needs of a trainer, for a network loaded from disk."""

    def __init__(self, network: torch.nn.Module):
        self.network = network

    @torch.inference_mode()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        self.network.eval()
        return torch.cat([self.network(x[i:i + 1024]).float() for i in range(0, len(x), 1024)]) if len(x) \
            else torch.empty(0)


def predict_run(run_dir: str | Path, csv: str | Path | pd.DataFrame | Series, date_column: str | None = None,
                missing: str | None = None, trust_code: bool = False, duplicates: str | None = None,
                date_format: str | None = None, sep: str | None = None, model=None) -> pd.DataFrame:
    """Forecast the next horizon after the end of ``csv`` (a CSV, a DataFrame or a Series
    from ``load_series``) with the run's model and scaler (for every series, when the run was
    trained on several). The file is read as the run's data was (its target, features, series
    and policies); ``date_column``, ``missing``, ``duplicates``, ``date_format`` and ``sep``
    override the run's where the new file differs. Rows of another frequency than the run's
    (each series' own, of a run on several) are refused; missing timestamps among the rows the forecast reads are warned of.
    ``model``: as load_forecaster's, for a run whose PyTorch module it cannot rebuild."""
    run = Run.open(run_dir, Kind.FORECASTER)
    refuse_unfinished(run)
    model = load_forecaster(run_dir, trust_code, model)
    meta = model.meta
    where = stored_config(run).where  # the one series of several it was trained on
    if isinstance(csv, Series):  # its frame, read again as the run reads its data
        csv = csv.frame
    try:
        stored = meta["series"]
        windows = WindowConfig(**meta["windows"])
        read = dict(target=meta["target"], features=meta["features"],
                    date_column=date_column or (stored["date_column"] if str(csv) not in BUILTIN else None),
                    missing=missing or stored["missing"], duplicates=duplicates or stored["duplicates"],
                    gaps=stored["gaps"], calendar=meta.get("calendar", []),
                    date_format=date_format or stored.get("date_format"), day_first=stored.get("day_first"), sep=sep,
                    series_column=meta.get("series_column"), where=where, suggest_series=False,
                    offsets=recorded_offsets(run))
        # A run on several series keeps one scaler per series ("scalers"); its top-level "scaler" is the
        # first series', no fallback for another. A run on one series has only that "scaler".
        scalers = {name: Scaler(**v) for name, v in meta["scalers"].items()} if "scalers" in meta else None
        default = Scaler(**meta["scaler"]) if scalers is None else None
        # a run on several series records each one's frequency; one made before, the first series' for all
        frequencies = {str(name): str(f) for name, f in meta.get("frequencies", {}).items()}
    except (KeyError, TypeError, AttributeError) as e:  # a field missing, or of another kind
        raise NeuralabError(f"{Path(run_dir) / runs.MODEL}: field {e} is missing or damaged; the file is not the one "
                            "neuralab wrote") from None
    try:
        found = find_column(parse_where(where)[0], read_table(csv, sep, nrows=0)[0].columns) if where is not None else None
        if where is not None and found is None:
            read["where"] = None  # a file of the run's one series alone, without the column that picked it
        many = load_series_list(csv, **read)  # series the run left out: refused only where they are all it holds
    except ParameterError as e:  # the run chose these, not an option of predict: say so rather than name them
        if e.parameter == "data":
            raise ParameterError("csv", csv, e.reason) from None
        if e.parameter == "where":  # predict has no `where` of its own: say what the run forecasts
            try:
                column, value, keep = parse_where(where)
            except ParameterError:
                raise NeuralabError(f"{run.path / runs.CONFIG}: its where {where!r} is not COLUMN=VALUE or "
                                    "COLUMN!=VALUE; the file is damaged") from None
            if keep:
                raise NeuralabError(f"{csv}: the run was trained on the series {where}: {e.reason}; give a file "
                                    "with that series' rows") from None
            # the new rows hold only series the run left out; "scalers" names those it forecasts, kept by a
            # run on several
            out = read_table(csv, sep, [found])[0][found].astype("string").str.strip().dropna().unique()
            forecasts = ", ".join(map(repr, meta.get("scalers", ())))
            raise NeuralabError(f"{csv}: holds only {column} {', '.join(map(repr, out))}, which the run left out "
                                f"(its where {where!r}); give rows of the series it forecasts"
                                + (f": {forecasts}" if forecasts else ", those its where keeps")) from None
        if e.parameter in ("target", "features", "series_column"):
            what = "input column" if e.parameter == "features" else "column"
            raise NeuralabError(f"{csv}: the run was trained on {what} {e.value!r}: {e.reason}; give a file with the "
                                "columns of the run's data") from None
        raise
    frames = []
    for s in many:
        scaler = default if scalers is None else scalers.get(s.name)
        if scaler is None:
            raise ParameterError("csv", csv, f"series {s.name!r} is not one the run was trained on, so it has no "
                                 f"scaling for it; the run knows {', '.join(map(repr, scalers))}")
        frequency = frequencies.get(s.name, stored.get("frequency"))
        rows = windows.lookback + (windows.transform != "none")
        if len(s.times) >= rows:  # fewer: last_window says how many it needs, and five weekdays read as daily
            _refuse_other_frequency(s, frequency, csv)
        if read["offsets"] == LOCAL_DATES:  # a run before it: its notes may tell another reading than its rule's
            _refuse_other_clock(s, _recorded_report(run, s), meta.get("calendar", []), csv)
        gaps = _window_gaps(s, rows, frequency)
        if gaps:
            warnings.warn(f"{s.label}: {gaps}", stacklevel=2)
        window = last_window(s, windows, scaler, frequency)  # the run's calendar: MS stays MS
        values = model.predict(window)[0]
        frame = pd.DataFrame({"time": window.times[0], "step": np.arange(1, len(values) + 1), meta["target"]: values})
        if len(many) > 1:
            frame.insert(0, "series", s.name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _refuse_other_frequency(series: Series, frequency: str | None, csv) -> None:
    """A model forecasts the steps of the frequency it was trained on: applied to rows of
    another, it reads a window of another length of time and dates its forecast wrongly."""
    own = series.report.frequency
    if frequency in (None, "irregular") or own == "irregular" or own == frequency:
        return  # an irregular reading is one with gaps, which _window_gaps counts
    who = f"its series {series.name!r} has" if series.where else "has"  # of several series, the one
    # dates whose days are all 12 or less, read month first where the run (one that recorded no order) read
    # its own day first: the reading, not the rows, is wrong, and the note says which format reads them so
    reading = series.report.dates if "fits as well" in series.report.dates else ""
    raise ParameterError("csv", csv if not isinstance(csv, pd.DataFrame) else "DataFrame",
                         f"{who} rows of frequency {own}, and the run was trained on rows of frequency "
                         f"{frequency}; " + (f"its {reading}" if reading else
                                             f"give rows of frequency {frequency} (resample the data)"))


def _refuse_other_clock(series: Series, recorded: SeriesReport, calendar: list[str], csv) -> None:
    """A run's calendar encodings are of the clock its times were read on: UTC where they had UTC
    offsets, the file's own clock where they had none. New rows on the other clock (a logger's
    local times without offsets) shift every hour's encoding by the offset, and the forecast with
    it, unsaid. Without encodings the network reads the same values whatever the clock. For a
    run that recorded its rule (LOCAL_DATES), whose ``recorded`` note tells how it read them."""
    if not calendar:
        return
    # Only what the run's note says for sure: its times had offsets other than zero, read in UTC.
    # Times written in UTC with Z leave no note (and a stored start at midnight drops its zone),
    # so new rows with offsets given to such a run, the same instants, are not refused.
    then_utc, now_aware = read_in_utc(recorded.dates), series.times.tz is not None
    encodings = ", ".join(calendar)
    data = str(csv) if not isinstance(csv, pd.DataFrame) else "DataFrame"
    if then_utc and not now_aware:
        raise ParameterError("csv", data, f"its times in column {series.date_column!r} have no UTC offsets, and "
                             f"the run's data had them: its {encodings} encodings were learned in UTC; write these "
                             "times with their offsets, as the run's data was (2023-11-29T23:00:00+01:00), or in "
                             "UTC marked as such (2023-11-29T22:00:00Z)")


def _window_gaps(series: Series, rows: int, frequency: str | None) -> str:
    """Words for the timestamps missing on the run's ``frequency`` among the last ``rows`` rows,
    which the forecast reads ("" where none are)."""
    # a business-day grid's holes are a market's holidays, in every window the run was trained on too
    if frequency in (None, "irregular", "B"):
        return ""
    holes = calendar_holes(series.times[-rows:], frequency)
    return f"in the last {rows} rows, which the forecast reads: {holes.lines()[-1]}" if holes else ""


def write_report(run_dir: str | Path, trust_code: bool = False, model=None) -> Path:
    """Write report.html and plots/ again from a finished run alone: results.json,
    forecast.csv, metrics.jsonl, the model, and the series it was trained on. ``model``: as
    load_forecaster's."""
    from neuralab.forecasting.report import report_run

    run = Run.open(run_dir, Kind.FORECASTER)
    refuse_unfinished(run)  # a resume finishes it, and writes its report
    network = load_forecaster(run_dir, trust_code, model).network  # checks its weights, and code not trusted
    run_dir = run.path
    for name in (runs.RESULTS, runs.FORECAST):
        if not (run_dir / name).is_file():
            raise NeuralabError(f"{run_dir / name}: missing; the run did not finish, so there is no report to write")
    config = stored_config(run)
    results = run.results()
    many = load(replace(config, data=recorded_data(run, "the report draws")), offsets=recorded_offsets(run))
    prepared = prepare_many(many, config.windows, config.series_column, config.where)
    test = pd.read_csv(run_dir / runs.FORECAST).query("split == 'test'")
    if SERIES_COLUMN in test.columns:
        test = test[test[SERIES_COLUMN].astype(str) == many[0].name]
    h = config.windows.horizon
    predictions = {n: test[n].to_numpy(np.float64).reshape(-1, h) for n in results["test"]}
    levels = [label(a) for a in (results.get("intervals") or {}).get("levels", [])]
    bands = {lv: (test[f"lower_{lv}"].to_numpy(np.float64).reshape(-1, h),
                  test[f"upper_{lv}"].to_numpy(np.float64).reshape(-1, h)) for lv in levels if f"lower_{lv}" in test}
    first = replace(many[0], report=_recorded_report(run, many[0]))
    with run:  # one writer at a time; a killed write's leftovers go
        return report_run(run_dir, config=config, series=first, prepared=prepared[0],
                          results=results, predictions=predictions, history=run.metrics(),
                          summary_text=network_summary(network, config.windows.lookback), bands=bands)


def _recorded_report(run: Run, series: Series) -> SeriesReport:
    """What loading found when the run read ``series``, as its config.json recorded it: a report
    written again says what the run was trained on, where the same file read by newer code can
    name another frequency (months on the 15th, "irregular" to runs made before such months had
    a grid); the reading of now only for a run that recorded none."""
    recorded = runs.json_object(runs.json_object(run.record.get("data")).get("series"))
    # one series' report, or several series' by name (a series may be named "rows": its value is no count)
    one = recorded if isinstance(recorded.get("rows"), int) else runs.json_object(recorded.get(series.name))
    known = {f.name for f in fields(SeriesReport)}  # a run made before a field was added: its default
    return SeriesReport(**{k: v for k, v in one.items() if k in known}) if one else series.report
