"""Forecasting end to end: load a series, window it, fit the baselines and a recurrent
network on the trainer, judge them side by side on the test span, and leave a complete
run directory behind:

    config.json        the ForecastConfig, seed, versions and device, the data's report
    model.safetensors  the network's best weights (written by the trainer)
    model.json         architecture, input columns, window settings and the fitted scaler
    metrics.jsonl      one line per epoch; checkpoints/ from which resume_forecast goes on
    forecast.csv       every test forecast of every forecaster next to the actual value and
                       the network's intervals, then the forecast beyond the end of the data
    results.json       the verdict (the best forecaster, the network's rank against the best
                       baseline), metrics, error by step, backtest, intervals and their coverage
    report.html        the same as pictures and tables, self-contained; plots/ holds the PNGs

What uses a run lives beside it: forecast.csv, its columns, writing and reading
(forecasting.forecast_csv), and a finished run's forecaster loaded, forecasting new rows or
writing its report again (forecasting.finished).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from neuralab import runs
from neuralab.data.dates import AS_WRITTEN, LOCAL_DATES, OFFSET_RULES
from neuralab.data.series import (BUILTIN, Series, load_series_list, refuse_idle_inputs, report_dict,
                                  seasonal_encodings)
from neuralab.data.sources import sha256
from neuralab.errors import NeuralabError, ParameterError, interrupts_unwrapped, named, out_of_memory
from neuralab.files import nulled
from neuralab.forecasting import metrics
from neuralab.forecasting.backtest import rolling_origin, summarize
from neuralab.forecasting.baselines import REFERENCE, build_baselines
from neuralab.forecasting.config import ForecastConfig  # noqa: F401  importable here too
from neuralab.forecasting.forecast_csv import write_forecast_csv
from neuralab.forecasting.intervals import GAMMA, METHOD, WINDOW, coverage, label, rolling
from neuralab.forecasting.models import ModelConfig, NetworkForecaster, series_train_config, summary
from neuralab.forecasting.verdict import character, table as verdict_table, verdict
from neuralab.forecasting.windows import (AHEAD, FILLED, SCORED, Prepared, Windows, last_window, minimum_rows,
                                          prepare_many, too_short, unscored as left_out_label)
from neuralab.run_list import trained_on
from neuralab.runs import Kind, Run
from neuralab.training.callbacks import as_callback, checked_callbacks
from neuralab.training.config import Diverged, before_compile, check_config, given_fields, with_compile
from neuralab.training.device import refuse_distributed
from neuralab.training.inputs_check import ModelFailed
from neuralab.training.module_check import one_warning_each
from neuralab.training.seeds import generators_kept, seed_everything


@dataclass
class ForecastResult:
    run_dir: Path
    headline: dict                  # the verdict: best forecaster, the network's rank, in words and numbers
    test: dict[str, dict]           # forecaster -> metrics on the test span (over all series)
    by_step: dict[str, list[float]]  # forecaster -> MAE at each horizon step (MASE for several series)
    backtest: list[dict]
    history: list[dict]
    seconds: float
    results: dict = field(default_factory=dict)  # everything results.json holds

    def __repr__(self) -> str:
        # What a notebook cell ending in `result` shows: the verdict and each forecaster's test
        # error, best first, not results.json's thousands of characters
        def mae(name: str) -> str:
            value = self.test[name].get("mae")
            return f"{value:.4g}" if isinstance(value, (int, float)) else "n/a"  # NaN is stored as null

        order = [n for n in self.headline.get("ranking") or sorted(self.test) if n in self.test]
        width = max(map(len, order), default=0)
        rows = [f"  {name:<{width}}  MAE {mae(name)}" + ("  <- network" if name == self.headline.get("network") else "")
                for name in order]
        epochs = f"{len(self.history)} epoch{'' if len(self.history) == 1 else 's'}"
        return "\n".join([f"ForecastResult {self.run_dir}: {epochs}, {self.seconds:.1f} s of training",
                          named(self.headline.get("sentence", "")), *rows,
                          "fields: run_dir, headline, test, by_step, backtest, history, seconds, results"])

    def _repr_html_(self) -> str:
        """Jupyter's display: the text above and the figures the run's report drew."""
        from neuralab.reports.html import notebook_display

        figures = runs.FORECAST_FIGURES
        return notebook_display(repr(self), Run(self.run_dir), [(figures["forecast"], "forecast"),
                                                               (figures["error_by_step"], "error by step")])


def load(config: ForecastConfig, verbose: bool = False, offsets: str = LOCAL_DATES) -> list[Series]:
    """The series ``config`` names: one, or one per value of ``series_column``; ``offsets``, a
    stored run's rule for times with UTC offsets (``recorded_offsets``), or a new run's."""
    return load_series_list(config.data, config.target, config.features, config.date_column,
                            missing=config.missing, duplicates=config.duplicates, gaps=config.gaps,
                            calendar=config.calendar, date_format=config.date_format, sep=config.sep,
                            series_column=config.series_column, where=config.where,
                            announce=print if verbose else None, offsets=offsets)


def choose_transform(many: list[Series], config: ForecastConfig, linear_path: bool = True) -> tuple[str, dict]:
    """The target transform that forecasts the validation span best with the network's
    linear path (what the network starts from), and each candidate's validation MAE.
    The test span is never looked at. Within 0.5% the simpler transform wins. A network
    without that path (``linear_path`` False: the plain recipe, a user's model) is not given
    the levels where the validation span leaves the training span's range, which its scaled
    outputs cannot reach however well the linear probe extrapolates them."""
    if config.windows.transform != "auto":
        return config.windows.transform, {}
    candidates, _ = _candidates(many, config.windows)
    errors = {}
    for transform in candidates:
        windows = replace(config.windows, transform=transform)
        prepared = prepare_many(many, windows, config.series_column, config.where)
        if not all(len(p.val) for p in prepared):
            return "none", {}
        if transform == "none" and not linear_path and outside_training_range(prepared, "val") > OUTSIDE:
            continue
        probe = NetworkForecaster(replace(config.model, recipe="residual"), replace(config.train, device="cpu"))
        maes = probe.linear_errors(Windows.pool([p.train for p in prepared]), [p.val for p in prepared])
        errors[transform] = float(np.mean([m / (p.mase_scale or 1.0) for m, p in zip(maes, prepared)])) \
            if len(maes) > 1 \
            else maes[0]
    finite = {t: e for t, e in errors.items() if np.isfinite(e)}  # a probe that overflowed forecasts nothing
    if not finite:
        return "none", errors
    best = min(finite.values())
    chosen = next(t for t in finite if finite[t] <= best * 1.005)
    return chosen, errors


def _candidates(many: list[Series], windows) -> tuple[list[str], dict[str, str]]:
    """The target transforms `transform` auto weighs on ``many``, and those it passes over
    because a series is too short for them, each with why."""
    candidates = ["none", "diff"] + (["log-return"] if all((s.values[:, 0] > 0).all() for s in many) else [])
    # a change costs a row: a series long enough for the levels alone is forecast on them, and one too
    # short for every candidate is refused by "none", whose fewest rows are the fewest that work
    short = {t: next((s for s in many if too_short(len(s), replace(windows, transform=t))), None) for t in candidates}
    fits = [t for t in candidates if short[t] is None]
    if not fits:
        return candidates[:1], {}
    return fits, {t: f"{s.label} has {len(s):,} rows, fewer than the {minimum_rows(replace(windows, transform=t)):,} "
                     "it needs (a change costs the first row)" for t, s in short.items() if s is not None}


def transform_passed_over(many: list[Series], windows) -> dict[str, str]:
    """The transforms `transform` auto passed over on ``many``, a series too short for them, with why."""
    return _candidates(many, replace(windows, transform="auto"))[1]


class WindowNetwork(torch.nn.Module):
    """A user's network (a converted Keras model or a torch.nn.Module) on windows, as
    NetworkForecaster drives its own: (B, L, C) floats, or (B,) start rows into the series
    attached with ``attach``; the forecast comes out as (B, H)."""

    recipe = "plain"  # what NetworkForecaster checks: no linear path to start from

    def __init__(self, net: torch.nn.Module, lookback: int, level: bool = True, zero: float = 0.0):
        super().__init__()
        self.net, self.lookback, self.level, self.zero = net, lookback, level, zero
        self.source: torch.Tensor | None = None

    def attach(self, source: np.ndarray | None) -> None:
        device = next(self.net.parameters()).device
        self.source = torch.from_numpy(source).to(device) if source is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            x = self.source[x[:, None] + torch.arange(self.lookback, device=x.device)]  # (B, L, C)
        return self.net(x).reshape(len(x), -1)


class UserForecaster(NetworkForecaster):
    """NetworkForecaster for a network that came from a Keras model or PyTorch code
    (neuralab.training.source), trained on plain windows."""

    def __init__(self, source, model: ModelConfig | None = None, train=None, run_dir: str | Path | None = None,
                 meta: dict | None = None, verbose: bool = False):
        super().__init__(model, train, run_dir, meta, verbose)
        self.source, self.name = source, source.architecture

    def params(self) -> dict:
        return {"source": self.source, **super().params()}

    def build(self, windows: Windows) -> WindowNetwork:
        from neuralab.training.trainer import REGRESSION, Trainer

        seed_everything(self.train_config.seed)
        codec = windows.codec
        level = codec is None or codec.transform == "none"
        zero = 0.0 if level else float(codec.scaler.transform(np.zeros((1, len(codec.scaler.center))))[0, 0])
        inputs = windows.source.scaled.shape[1]
        sample = torch.from_numpy(np.ascontiguousarray(windows.source.scaled[:windows.lookback], np.float32))
        net = self.source.sequence_network(windows.lookback, inputs, windows.horizon, sample[None].repeat(2, 1, 1))
        self.network = WindowNetwork(net, windows.lookback, level, zero)
        self.trainer = Trainer(self.network, self.train_config, REGRESSION, self.run_dir, self.meta,
                               verbose=self.verbose)
        return self.network

    def describe(self) -> str:
        n = sum(p.numel() for p in self.network.parameters() if p.requires_grad) if self.network is not None else 0
        return f"{self.name} ({n:,} trained parameters, on plain windows)"


def own_model(architecture: str) -> ModelConfig:
    """The ModelConfig of a network of the user's own (a Keras model, a torch.nn.Module), named
    ``architecture``: neuralab gives it none of the built-in networks' settings (no hidden sizes,
    no dropout of its own; init None: its initial weights are the model's own) and trains it on
    plain windows."""
    return ModelConfig(architecture, hidden=[], dropout=0.0, init=None, recipe="plain")


def refuse_built_in_settings(model: ModelConfig, given=()) -> None:
    """Refuse, for a network of the user's own, the settings that shape only the built-in ones,
    which would change nothing without a word: those ``given`` (the options a command line
    typed, at their defaults too), and any other set to other than its default."""
    defaults = ModelConfig()
    said = {"hidden": "the built-in networks' recurrent layer sizes", "dropout": "the dropout the built-in networks "
            "put after each recurrent layer", "init": "the built-in networks' initial weights",
            "recipe": "how the built-in networks forecast"}
    for name, what in said.items():
        value = getattr(model, name)
        if name == "recipe" and value == own_model("").recipe:  # plain windows: how a model of your own trains
            continue
        if name in given or value != getattr(defaults, name):
            raise ParameterError(name, value, f"sets {what}, which a model of your own (`model`) does not take: "
                                              "leave it out")


def user_network(source: dict, run_dir: Path, trust_code: bool) -> torch.nn.Module:
    """A forecasting run's network from its "source": a Keras spec (no code runs) or the run's
    copy of PyTorch code (only with ``trust_code``). A module the run cannot rebuild (file
    null) is refused with the way that uses the run: the module given again as `model`."""
    from neuralab.training.source import TORCH, ModelNeeded, rebuild

    if source.get("type") == TORCH and source.get("file") is None:
        raise ModelNeeded(run_dir)
    return rebuild(source, run_dir, trust_code)


# The user's module is the window network's `net`: its tensors' names in the run's files
NET = "net."


def given_network(model, meta: dict, run_dir: Path, weights: Path | None, prefix: str = "") -> torch.nn.Module:
    """The caller's ``model`` for a forecasting run whose PyTorch module the run cannot
    rebuild, checked as a classifier's is (``training.source.check_given``; ``prefix``: the
    tensors' in the file, before the window network's own), then one pass on windows of the
    run's shape giving (N, horizon)."""
    from neuralab.training.module_check import checked_module
    from neuralab.training.source import check_given

    check_given(model, meta, run_dir, weights, prefix + NET, "the built-in", "network")
    lookback, inputs, horizon = runs.json_object(meta.get("windows")).get("lookback"), meta.get("inputs"), \
        meta.get("horizon")
    if not all(type(n) is int and n >= 1 for n in (lookback, inputs, horizon)):
        raise NeuralabError(f"{run_dir / runs.MODEL}: fields windows.lookback, inputs and horizon are {lookback!r}, "
                            f"{inputs!r} and {horizon!r}, not whole numbers of 1 or more; the file is damaged")
    device = next((t.device for t in model.state_dict().values()), None)
    return checked_module(model, str(meta.get("architecture")), (lookback, inputs), horizon,
                          torch.zeros(2, lookback, inputs, device=device), "steps")


def network_summary(module: torch.nn.Module, lookback: int) -> str:
    """The layer table of a forecasting network: the built-in ones' Keras-style table, a user's
    network as PyTorch prints it, with its parameter count."""
    if not isinstance(module, WindowNetwork):
        return summary(module, lookback)
    n = sum(p.numel() for p in module.parameters() if p.requires_grad)  # a converted LSTM's second bias is fixed at 0
    return f"{module.net}\ninput (batch, {lookback}, inputs); {n:,} trained parameters"


def refuse_oversized_run(config: ForecastConfig, network: bool = True) -> None:
    """Refuse, before the data is read, a `lookback` or network sizes whose arrays cannot fit in
    memory: the least squares hold (L*C + 1)^2 floats whatever the length of the series."""
    from neuralab.data import tables
    from neuralab.forecasting.models import normal_equation_bytes, refuse_oversized

    free = tables.available_memory()
    if free is None:
        return
    lookback, inputs = config.windows.lookback, 1 + len(config.features) + 2 * len(config.calendar)
    squares = config.model.recipe == "residual" or config.windows.transform == "auto" or "linear-ar" in config.baselines
    need = normal_equation_bytes(lookback, inputs) if squares else 0
    if need + tables.BASE_BYTES > free:
        size = lookback * inputs + 1
        raise ParameterError("lookback", lookback, f"the least squares of the linear start and the linear-ar baseline "
                             f"solve {size:,} x {size:,} normal equations, about {need / 2**30:,.1f} GiB, and "
                             f"{free / 2**30:.1f} GiB is available; use a shorter `lookback`"
                             + (" or fewer inputs" if inputs > 1 else ""))
    if network:
        refuse_oversized(config.model, inputs, config.windows.horizon, lookback, free - need - tables.BASE_BYTES)


@generators_kept()  # the run seeds the generators; the caller's come back after
@one_warning_each()  # a run builds a user's network more than once: each warning said once
def run_forecast(config: ForecastConfig, out: str | Path | None = None, overwrite: bool = False,
                 verbose: bool = True, callbacks=(), model=None) -> ForecastResult:
    """Train ``config.model`` on ``config.data`` next to the baselines, judge them all on the
    test span and in a backtest, and leave a run folder; returns the results (ForecastResult).
    ``config`` is left as it was given: what was chosen (target, transform) is recorded.

    Parameters:
        config: a ForecastConfig: the series, windows, network, budget and baselines.
        out: the run's folder. None: a new one, runs/forecast-ARCHITECTURE-DATA-YYYYmmdd-HHMMSS
            (under $NEURALAB_RUNS where that is set).
        overwrite: replace a finished run already in ``out``; without it such a run is refused.
        verbose: print the header, one line per epoch and the results table.
        callbacks: objects the trainer calls as the network trains (neuralab.training.callbacks).
        model: the network instead of ``config.model``'s: a Keras file, "FILE.py[:NAME]" (a
            Keras model or a torch.nn.Module) or such a model object, taking windows (N,
            `lookback`, inputs) and giving (N, `horizon`). It trains on plain windows (the
            residual recipe is the built-in networks'), with a Keras model's compile() and fit()
            settings in the TrainConfig fields you did not name.

    The run is seeded with ``config.train.seed``; Python's, NumPy's and PyTorch's generators
    are yours again afterwards, as they were before the call."""
    check_config(config, ForecastConfig)
    if out is not None:
        runs.folder_path(out, "out")
    callbacks = checked_callbacks(callbacks)
    refuse_distributed("forecasting, which trains small networks,")
    given = given_fields(config.train, series_train_config())  # before the copies below forget it
    # a model's compile() may give the optimizer a momentum is for
    checked = replace(config, train=before_compile(config.train, given)) if model is not None else config
    checked.check()  # which makes NumPy numbers Python's
    config = replace(checked, train=replace(checked.train, momentum=config.train.momentum))
    source = None
    if model is not None:
        from neuralab.training.source import resolve

        refuse_built_in_settings(config.model)
        seed_everything(config.train.seed)  # a PyTorch module from a file is built as it is read
        source = resolve(model)
    refuse_oversized_run(config, network=source is None)
    many = load(config, verbose)
    refuse_idle_inputs(many, config.features, config.calendar)  # a new run's settings alone: a stored one's are fixed
    transform, transform_errors = choose_transform(many, config, linear_path=source is None
                                                   and config.model.recipe == "residual")
    if source is not None:
        config = replace(config, model=own_model(source.architecture),
                         train=with_compile(config.train, source.compile, given))
        config.train.check()
    used = replace(config, data=os.fspath(config.data), target=many[0].target,  # a Path is stored as text
                   windows=replace(config.windows, transform=transform))
    prepared = prepare_many(many, used.windows, used.series_column, used.where)
    baselines = _fitted_baselines(prepared, config)

    # Inputs are valid: only now does anything touch the disk.
    path = Path(out) if out is not None else runs.default_dir("forecast", config.model.architecture,
                                                              Path(config.data).stem)
    if source is not None:  # the network is checked against the windows before anything touches the disk
        UserForecaster(source, used.model, used.train).build(Windows.pool([p.train for p in prepared]))
    if config.train.tensorboard or callbacks:
        from neuralab.training.tensorboard import check_event_folders

        check_event_folders(path, config.train.tensorboard, callbacks, resuming=False)
    fresh = out is None or not path.exists()
    run = Run.create(path, overwrite, numbered=out is None)  # a default name taken: NAME-2
    try:
        with run, _resumable(run.path):
            return _fit_and_judge(run, used, many, prepared, baselines, transform_errors, verbose, callbacks, source)
    except Diverged:  # NaN weights: nothing to resume, read or report; a folder that was there stays, empty
        run.discard(made=fresh)
        raise
    except ModelFailed as e:  # the user's network raised: a run that kept no epoch goes as a diverged one does
        if not runs.epoch_kept(run.path):
            run.discard(made=fresh)
        raise e.in_run(run.path, Kind.FORECASTER) from e.__cause__
    except (MemoryError, RuntimeError) as e:  # out of memory before an epoch was kept: a retry asks for less, anew
        if out_of_memory(e) and not runs.epoch_kept(run.path):
            run.discard(made=fresh)
        raise


@generators_kept()  # the run seeds the generators; the caller's come back after
@one_warning_each()
def resume_forecast(run_dir: str | Path, verbose: bool = True, callbacks=(), trust_code: bool = False,
                    device: str | None = None, model=None) -> ForecastResult:
    """Continue an interrupted forecasting run in its folder from its last checkpoint, with the
    config it recorded and the data it read, which must be unchanged; the baselines, the
    transform and the network's linear start are fitted again as they were (they are
    deterministic), and the run then finishes as an uninterrupted one would. A run stopped
    before its first checkpoint trains from epoch 1. A network from PyTorch code runs the
    run's copy of that code only with ``trust_code``. ``device``: this session's, in place of
    the run's own (a node without the GPU it started on: "cpu" or "auto"); config.json keeps
    the run's and records this session's in ``sessions``, as it does the threads. ``model``:
    for a run whose PyTorch module it cannot rebuild (model.json's source has file null), the
    module it was trained with, built the same way (checked first); a run stopped before its
    first checkpoint starts again from that module's own weights."""
    from neuralab.training.device import session_device

    callbacks = checked_callbacks(callbacks)
    refuse_distributed("forecasting, which trains small networks,")
    run = Run.open(run_dir, Kind.FORECASTER)
    run.refuse_finished()
    record = run.record
    used = stored_config(run)
    if used.train.tensorboard or callbacks:  # before the lock: a resume refused here leaves the run as it was
        from neuralab.training.tensorboard import check_event_folders

        check_event_folders(run.path, used.train.tensorboard, callbacks, resuming=True)
    device = session_device(device, used.train.device, run.path)
    meta = run.read(runs.MODEL) if (run / runs.MODEL).is_file() else None
    if not isinstance(meta, dict):
        raise NeuralabError(f"{run / runs.MODEL}: missing or damaged; the run cannot be resumed, start it again")
    source = None
    if model is not None:
        from neuralab.training.source import TORCH, ModelSource

        last = run.path / runs.LAST
        given = given_network(model, meta, run.path, last if last.exists() else None, prefix="model.")
        source = ModelSource(TORCH, str(meta["architecture"]), module=given)
    elif isinstance(meta.get("source"), dict):
        from neuralab.training.source import resolve

        seed_everything(used.train.seed)
        source = resolve(user_network(meta["source"], run.path, trust_code))
    with run, _resumable(run.path):  # one writer at a time
        run.refuse_finished()  # again: another resume may have finished it since the check above
        many = load(replace(used, data=recorded_data(run, "the run trains on")), verbose, recorded_offsets(run))
        prepared = prepare_many(many, used.windows, used.series_column, used.where)
        baselines = _fitted_baselines(prepared, used)
        transform_errors = record["data"].get("transform", {}).get("validation_mae", {})
        try:
            return _fit_and_judge(run, used, many, prepared, baselines, transform_errors, verbose, callbacks, source,
                                  resumed=meta, device=device)
        except Diverged as e:  # a resumed run keeps its settings: the lower rate is a new run's
            raise e.resumed(run.path) from None
        except ModelFailed as e:  # as in run_forecast; a run stopped before its first epoch is emptied
            if not runs.epoch_kept(run.path):
                run.discard(made=False)
            raise e.in_run(run.path, Kind.FORECASTER) from e.__cause__


@contextlib.contextmanager
def _resumable(run_dir: Path):
    """Ctrl-C in a forecasting run that is set up (config.json written) and not finished
    (results.json not yet): one that ``resume_forecast`` finishes, as the error says. Before,
    there is nothing to resume; after, the run is finished and the report, then written, says
    what to do. Ctrl-C that a library raised as its own error counts as Ctrl-C."""
    try:
        with interrupts_unwrapped():
            yield
    except KeyboardInterrupt:
        if not (run_dir / runs.CONFIG).is_file() or (run_dir / runs.RESULTS).exists():
            raise
        raise runs.Interrupted(run_dir, Kind.FORECASTER) from None


def _fitted_baselines(prepared: list[Prepared], config: ForecastConfig) -> dict[str, list]:
    """Each series' baselines, fitted on its training and validation spans."""
    baselines = {p.name: build_baselines(config.baselines, config.season) for p in prepared}
    for p in prepared:
        for b in baselines[p.name]:
            b.fit(p.train, p.val)
    return baselines


def stored_config(run: Run) -> ForecastConfig:
    """The ForecastConfig a run was made with, from its config.json."""
    if run.by_keras_fit:
        raise NeuralabError(f"{run.path}: Keras's fit wrote this run (RunLogger): it records no series or window "
                            "to train or forecast with again; continue it in Keras (docs/keras.md)")
    try:
        return ForecastConfig.from_dict(run.record["config"])
    except (KeyError, TypeError) as e:
        raise NeuralabError(f"{run / runs.CONFIG}: not a config neuralab wrote ({e}); the file is damaged") from None


def recorded_data(run: Run, why: str) -> str:
    """The data a run read: a built-in name, or its CSV's path, checked unchanged by its SHA-256."""
    data = runs.json_object(run.record.get("data"))
    if "path" not in data:
        return stored_config(run).data
    path = Path(str(data["path"]))  # absolute: the file the run read, wherever the command is run from
    if not path.is_file() or sha256(path, "file") != data.get("sha256"):
        raise NeuralabError(f"{path}: {'missing' if not path.is_file() else 'changed'} since the run started; "
                            f"{why} that file as it was: put it back")
    return str(path)


def recorded_offsets(run: Run) -> str:
    """The rule by which a run read times with UTC offsets (dates.OFFSET_RULES), recorded in its
    model.json, to read new rows by it; AS_WRITTEN for a run made before the rule was recorded."""
    meta = runs.json_object(run.read(runs.MODEL)) if (run / runs.MODEL).is_file() else {}
    rule = runs.json_object(meta.get("series")).get("offsets", AS_WRITTEN)
    if rule not in OFFSET_RULES:
        raise NeuralabError(f"{run / runs.MODEL}: field series.offsets is {rule!r}, not one of "
                            f"{', '.join(OFFSET_RULES)}; the file is not the one neuralab wrote")
    return rule


def _fit_and_judge(run: Run, used: ForecastConfig, many: list[Series], prepared: list[Prepared], baselines: dict,
                   transform_errors: dict, verbose: bool, callbacks=(), source=None,
                   resumed: dict | None = None, device: str | None = None) -> ForecastResult:
    """Train the network, judge every forecaster and write the run. ``resumed``: the model.json
    of an interrupted run, whose config.json (but for the session it adds), model.json and code
    stay as they were written; ``device``: its session's, over ``used.train.device``."""
    run_dir = run.path
    train = replace(used.train, device=device) if device else used.train
    network = (NetworkForecaster(used.model, train, run_dir, verbose=verbose) if source is None
               else UserForecaster(source, used.model, train, run_dir, verbose=verbose))
    network.name = used.model.architecture  # a rebuilt user network keeps the name the run gave it
    pooled_train = Windows.pool([p.train for p in prepared])
    pooled_val = Windows.pool([p.val for p in prepared]) if all(len(p.val) for p in prepared) else None
    module = network.build(pooled_train)
    network.trainer.callbacks += callbacks  # checked by the caller, before the run was made
    if resumed is not None:
        network.trainer.model_meta, network.resume = resumed, True
        network.trainer.callbacks.append(as_callback(runs.SessionRecorder(run)))
    else:
        meta = network.trainer.model_meta = forecaster_meta(used, many, prepared, module)  # saved with the weights
        if source is not None:
            meta["source"] = source.record(logits=False)
        run.write_start(Kind.FORECASTER, asdict(used), network.trainer.environment,
                        _series_record(used, many, prepared, transform_errors), meta, source)
    if verbose:
        print(named(_forecast_header(used, many, prepared, network, transform_errors, run_dir)), flush=True)

    network.fit(pooled_train, pooled_val)  # Ctrl-C from here to results.json: the caller's _resumable
    seconds = network.trainer.elapsed
    evaluated = [_evaluate(p, [network, *baselines[p.name]]) for p in prepared]
    if not all(np.isfinite(e["test"][network.name]).all() for e in evaluated):
        # finite weights can still overflow on the test windows: nothing to rank, report or resume
        raise Diverged(train.lr, sign="its forecasts on the test span are not finite numbers")
    intervals = [rolling(p.val.future - e["val"][network.name], p.test.future, e["test"][network.name],
                         tuple(used.intervals), stride=used.windows.stride)
                 for p, e in zip(prepared, evaluated)] if pooled_val is not None else None
    folds = {p.name: rolling_origin(p, [network, *baselines[p.name]], used.backtest_folds,
                                    refit=used.backtest_refit) for p in prepared}
    results = _results(used, many, prepared, [network, *baselines[prepared[0].name]], evaluated, intervals, folds,
                       seconds, transform_errors, baselines)
    aheads = [last_window(s, used.windows, p.scaler) for s, p in zip(many, prepared)]
    futures = [network.predict(a) for a in aheads]
    results["future"] = _future(many, aheads, futures, intervals)
    results, problems = nulled(results)
    if problems:
        results["warnings"] = [f"{where}: not a finite number, stored as null" for where in problems]
    with runs.resumable_if_unwritable(run_dir):  # every epoch is kept: a resume writes these again
        write_forecast_csv(run_dir / runs.FORECAST, many, prepared, evaluated, aheads, futures, network.name,
                           intervals)
        run.write_json(runs.RESULTS, results)

    from neuralab.forecasting.report import report_run
    from neuralab.reports.html import kept_if_unwritable

    with kept_if_unwritable(run_dir):  # the figures too, drawn before report.html: the run is finished
        report_run(run_dir, config=used, series=many[0], prepared=prepared[0], results=results,
                   predictions=evaluated[0]["test"], history=network.history,
                   summary_text=network_summary(module, used.windows.lookback),
                   bands={label(a): b for a, b in intervals[0].test.items()} if intervals else None)
    head = results["headline"]
    if verbose:
        print(named(verdict_table(results["test"], results["backtest_summary"], network.name, head["metric"],
                                  results["forecasters"])))
        print(named(head["sentence"]))
        if head.get("advice"):
            print(named(head["advice"]))
        if intervals is not None:
            print("intervals: " + ", ".join(f"{k}% covered {100 * v['coverage']:.1f}% of the {v['targets']:,} test "
                                            "targets" for k, v in results["intervals"]["coverage"].items()))
        print(f"report: {run_dir / runs.REPORT}", flush=True)
    return ForecastResult(run_dir, head, results["test"], results[f"by_step_{head['metric']}"],
                          results["backtest"], network.history, seconds, results)


def _evaluate(p: Prepared, forecasters: list) -> dict:
    """Every forecaster's forecasts and metrics on one series' validation and test spans."""
    spans = {"val": p.val, "test": p.test} if len(p.val) else {"test": p.test}
    out = {}
    for span, w in spans.items():
        out[span] = {f.name: f.predict(w) for f in forecasters}
        out[span + "_metrics"] = {n: metrics.evaluate(w.future, pred, p.mase_scale) for n, pred in out[span].items()}
    out.setdefault("val", {})
    out.setdefault("val_metrics", {})
    return out


def _pooled(prepared: list[Prepared], evaluated: list[dict], span: str) -> dict[str, dict]:
    """Metrics over every series: MAE and RMSE over all their windows, MASE the mean of theirs
    weighted by their windows, as the verdict's paired test weighs each window once (of the
    series that have a MASE scale; None if none has)."""
    if len(prepared) == 1:
        return evaluated[0][span + "_metrics"]
    names = list(evaluated[0][span])
    out = {}
    for n in names:
        actual = np.concatenate([getattr(p, span).future.ravel() for p in prepared])
        pred = np.concatenate([e[span][n].ravel() for e in evaluated])
        m = metrics.evaluate(actual, pred, 1.0)
        scaled = [(e[span + "_metrics"][n]["mase"], len(getattr(p, span))) for p, e in zip(prepared, evaluated)
                  if e[span + "_metrics"][n]["mase"] is not None]
        values, windows = zip(*scaled) if scaled else ((), ())
        m["mase"] = float(np.average(values, weights=windows)) if scaled else None
        out[n] = m
    return out


def _window_errors(prepared: list[Prepared], evaluated: list[dict], names, scaled: bool) -> dict[str, np.ndarray]:
    """Each forecaster's per-window test errors over the series, divided by each series' MASE
    scale when ``scaled`` (series without one left out): what the verdict's paired test reads."""
    kept = [(p, e) for p, e in zip(prepared, evaluated) if not scaled or p.mase_scale]
    return {n: np.concatenate([metrics.window_errors(p.test.future, e["test"][n], p.mase_scale if scaled else 1.0)
                               for p, e in kept]) if kept else np.zeros(0) for n in names}


# What a kept linear start is, in words that do not claim a baseline's forecasts: the network
# fits its own least squares, so its forecasts come close to linear-ar's without being them
START_WORDS = {"the linear-ar baseline's least squares": "a least-squares linear forecast fitted as the linear-ar "
               "baseline's is (its own fit, so its forecasts come close to linear-ar's but differ)"}


def _results(config, many, prepared, forecasters, evaluated, intervals, folds, seconds, transform_errors,
             baselines=None) -> dict:
    network = forecasters[0]
    test = _pooled(prepared, evaluated, "test")
    multi = len(prepared) > 1
    metric = "mase" if multi else "mae"
    lag = metrics.shared_target_lag(config.windows.horizon, config.windows.stride)
    all_folds = [r for p in prepared for r in folds[p.name]]
    backtest_summary = summarize(all_folds, metric)
    lookback = config.windows.lookback
    kinds = {p.name: character(p.levels[:p.boundaries[0]], config.target, lookback) for p in prepared}
    kind = kinds[prepared[0].name] if not multi else character_of_many(prepared, config)
    given = tuple(name for name in ("features", "calendar") if getattr(config, name))
    if "calendar" not in given and not any(seasonal_encodings(s) for s in many):
        given += ("calendar",)  # no encoding to offer: every one is constant or aliased at the series' step
    head = verdict(test, network.name, metric, kind, given=given,
                   errors=_window_errors(prepared, evaluated, test, scaled=multi), lag=lag, lookback=lookback)
    if head["outcome"] != "constant" and config.windows.transform == "none":
        outside = outside_training_range(prepared[0])
        head["test_outside_training_range"] = outside
        # levels past any the plain network was trained on, which its scaled outputs cannot reach
        # (the residual recipe forecasts from each window's last value, wherever that lies)
        if outside > OUTSIDE and config.model.recipe == "plain":
            head["advice"] = (f"{100 * outside:.0f}% of the test values lie outside the range of the training "
                              "span, where a network trained on the levels has never been: model the changes "
                              "instead (`transform` log-return for prices, diff otherwise). " + head["advice"]).strip()
    if network.kept_start:
        # Say which forecast the network's figures are: its linear start, chosen on the validation span.
        start = START_WORDS.get(network.start_, network.start_)
        head["network_forecast"] = f"its linear start ({network.start_})"
        head["sentence"] += (f" {network.name}'s forecast is its linear start, {start}: training did not "
                             "beat that start on the validation span by more than noise, so it was kept.")
    else:
        head["network_forecast"] = "trained"
    series = {}
    if multi:
        series = _per_series(config, many, prepared, evaluated, folds, kinds, network, baselines, given, lag,
                             intervals)
        said = {"beats": [], "ties with": [], "loses to": [], TOO_SHORT: [], LEFT_OUT: []}
        for name, one in series.items():
            said[one["versus_persistence"]].append(name)
        left_out, short = said.pop(LEFT_OUT), said.pop(TOO_SHORT)
        if any(said.values()):
            head["sentence"] += " Series by series, against persistence, it " + "; ".join(
                f"{verb} it on {', '.join(names)}" for verb, names in said.items() if names) + "."
        if short:
            head["sentence"] += (f" Too short to judge against persistence, fewer than {metrics.MIN_WINDOWS} test "
                                 f"windows{' that share no target' if lag else ''}: {', '.join(short)}.")
        if left_out:
            head["sentence"] += f" Left out, constant over {'its' if len(left_out) == 1 else 'their'} training " \
                                f"span: {', '.join(left_out)}."
        if len({k["kind"] for k in kinds.values()}) > 1:
            head["advice"] = ("The series differ in kind (" + ", ".join(f"{n}: {_kind_words(k)}" for n, k in kinds.items())
                              + f"); this advice fits {_kind_words(kind)}. " + head["advice"]).strip()
    unscored = {name: {why: sum(int((p.split == left_out_label(name, why)).sum()) for p in prepared)
                       for why in (FILLED, AHEAD)} for name in SCORED}
    policy = many[0].report.missing_policy

    def reasons(left: dict) -> str:
        why = [f"{left[FILLED]:,} whose target was filled by `missing` {policy}"] if left[FILLED] else []
        if left[AHEAD]:
            why.append(f"{left[AHEAD]:,} whose last input was interpolated by `missing` {policy} from the target or "
                       "a later value")
        return " and ".join(why)

    if any(unscored["test"].values()):
        left = unscored["test"]
        head["sentence"] += (f" Left out of every forecaster's score: {sum(left.values()):,} of "
                             f"{sum(left.values()) + sum(len(p.test) for p in prepared):,} test windows, "
                             f"{reasons(left)}.")
    if any(unscored["val"].values()):
        left = unscored["val"]
        counted = f"{sum(left.values()):,} of {sum(left.values()) + sum(len(p.val) for p in prepared):,} windows"
        head["sentence"] += (f" Left out of validation too, for the same reasons: {counted}." if any(unscored["test"].values())
                             else f" Left out of validation: {counted}, {reasons(left)}.")
    persistence = test.get(REFERENCE, {})
    # by the verdict's measure, as its beats_persistence is: MAE pooled over series in different units compares nothing
    ours, theirs = test[network.name].get(metric), persistence.get(metric)
    head.update({"network_mae": test[network.name]["mae"], "persistence_mae": persistence.get("mae"),
                 "percent_better": metrics.percent_better(ours, theirs) if ours is not None and theirs else None,
                 "best_mae": test[head["best"]]["mae"], "best_score": test[head["best"]][metric]})
    # Several series: each step's error in MASE, every window over its series' scale (as the verdict
    # pools; series without one left out), since MAE pooled over series in different units compares nothing
    kept = [(p, e, p.mase_scale if multi else 1.0) for p, e in zip(prepared, evaluated) if not multi or p.mase_scale]
    by_step = {n: metrics.by_step(np.concatenate([p.test.future / scale for p, _, scale in kept]),
                                  np.concatenate([e["test"][n] / scale for p, e, scale in kept]))
               for n in test} if kept else {}
    results = {
        "headline": head,
        "target": config.target,
        "test": test,
        "val": _pooled(prepared, evaluated, "val") if all(len(p.val) for p in prepared) else {},
        f"by_step_{metric}": by_step,
        "backtest": all_folds if not multi else [],  # several series: per series, under "series"
        "backtest_summary": backtest_summary,
        "forecasters": _descriptions(prepared, network, baselines) if baselines else
        {f.name: f.describe() for f in forecasters},
        "transform": {"used": config.windows.transform, "chosen_on": "validation" if transform_errors else "given",
                      "validation_mae": transform_errors,
                      # candidates a series was too short for: never weighed
                      "passed_over": transform_passed_over(many, config.windows) if transform_errors else {}},
        "windows": {k: sum(p.counts()[k] for p in prepared) for k in prepared[0].counts()},
        "spans": span_dates(prepared[0]),  # several series: the first's (first_series); each one's under "series"
        "best_epoch": 0 if network.kept_start else network.trainer.best_epoch(),
        "kept_linear_start": network.kept_start,
        "linear_start": network.start_,
        "validation_gain": network.gain,  # the trained network's over its start; kept when within noise
        "epochs_run": len(network.history),
        "train_seconds": seconds,
        "mase_scale": prepared[0].mase_scale,
        "mape_zeros": sum(metrics.zeros(p.test.future) for p in prepared),  # actual zeros MAPE leaves out
        "test_targets": sum(p.test.future.size for p in prepared),
        # val and test windows no forecaster is scored on: a target neuralab filled, an input interpolated from it
        **{f"{name}_left_out": {"filled_target": unscored[name][FILLED], "interpolated_from_later": unscored[name][AHEAD]}
           for name in SCORED},
    }
    if intervals is not None:
        results["intervals"] = {"method": METHOD, "forecaster": network.name, "levels": list(config.intervals),
                                "gamma": GAMMA, "window": WINDOW, "coverage": coverage(intervals),
                                "columns": [f"{side}_{label(a)}" for a in config.intervals for side in ("lower", "upper")]}
    if multi:
        results["series"] = series
        results["series_column"] = config.series_column
        # whose the top-level spans and mase_scale are, as the report's figures of the series: readers
        # of one-series runs read those fields unchanged
        results["first_series"] = prepared[0].name
    return results


def span_dates(p: Prepared) -> dict[str, list[str]]:
    """A series' target spans as results.json holds them: split -> [first date, last date]."""
    return {k: [str(a.date()), str(b.date())] for k, (a, b) in p.spans().items()}


# A series without a MASE scale: constant over its training span, judged neither pooled nor alone
LEFT_OUT = "left out"
# A series whose test span holds too few windows (metrics.too_few): its verdict says too short, not a tie
TOO_SHORT = "too short to judge"


def _per_series(config, many, prepared, evaluated, folds, kinds, network, baselines, given, lag,
                intervals=None) -> dict:
    """Each series' own verdict (by MAE, in its own units), kind, backtest, MASE scale, target
    spans and interval coverage; a series constant over its training span is left out, as the
    pooled verdict leaves it."""
    out = {}
    for k, (p, e, s) in enumerate(zip(prepared, evaluated, many)):
        errors = _window_errors([p], [e], e["test_metrics"], scaled=False)
        v = verdict(e["test_metrics"], network.name, "mae", kinds[p.name], given=given, errors=errors, lag=lag,
                    lookback=config.windows.lookback)
        gain = metrics.paired_gain(errors[REFERENCE], errors[network.name], lag) if REFERENCE in errors else None
        side = metrics.difference(gain) if gain is not None else 0
        if p.mase_scale is None:  # every repeat of the last value is exact there: nothing to rank
            v = {**v, "best": None, "network_rank": None, "outcome": "constant",
                 "sentence": "Left out: constant over its training span, so it has no MASE and nothing to learn; "
                             "its test errors only measure how far it departs from that constant."}
        out[p.name] = {"test": e["test_metrics"], "rows": len(s), "best": v["best"], "outcome": v["outcome"],
                       "network_rank": v["network_rank"], "sentence": v["sentence"], "kind": kinds[p.name],
                       "versus_persistence": LEFT_OUT if p.mase_scale is None else
                       TOO_SHORT if gain is not None and metrics.too_few(gain) else
                       {1: "beats", 0: "ties with", -1: "loses to"}[side],
                       "backtest": folds[p.name], "backtest_summary": summarize(folds[p.name]),
                       "mase_scale": p.mase_scale, "spans": span_dates(p)}
        if intervals is not None:  # the run's "intervals" says how they were made; this, the series' own coverage
            out[p.name]["intervals"] = {"coverage": coverage([intervals[k]])}
        if baselines:
            out[p.name]["forecasters"] = {f.name: f.describe() for f in baselines[p.name]}
    return out


def _descriptions(prepared, network, baselines: dict) -> dict[str, str]:
    """Each forecaster in words; a baseline fitted differently per series says each series' fit."""
    out = {network.name: network.describe()}
    for f in baselines[prepared[0].name]:
        texts = {p.name: next(g.describe() for g in baselines[p.name] if g.name == f.name) for p in prepared}
        out[f.name] = next(iter(texts.values())) if len(set(texts.values())) == 1 else \
            "; ".join(f"{name}: {text}" for name, text in texts.items())
    return out


def _kind_words(kind: dict) -> str:
    return f"seasonal, period {kind['period']}" if kind["kind"] == "seasonal" else kind["kind"]


def character_of_many(prepared: list[Prepared], config: ForecastConfig) -> dict:
    """The kind most of the series share (their training spans); constant only where every one is,
    since the pooled verdict ranks the others and leaves constant series out."""
    kinds = [character(p.levels[:p.boundaries[0]], config.target, config.windows.lookback) for p in prepared]
    kinds = [k for k in kinds if k["kind"] != "constant"] or kinds
    names = [k["kind"] for k in kinds]
    return kinds[max(range(len(kinds)), key=lambda i: names.count(names[i]))]


def _future(many, aheads, futures, intervals) -> dict:
    """The forecast past the end of the data (and its intervals), per series when several."""
    out = {}
    for k, (s, a, f) in enumerate(zip(many, aheads, futures)):
        entry = {"times": [str(pd.Timestamp(t)) for t in a.times[0]], "forecast": f[0].tolist()}
        if intervals is not None:
            for level, half in intervals[k].future.items():
                entry[f"lower_{label(level)}"], entry[f"upper_{label(level)}"] = (f[0] - half).tolist(), \
                    (f[0] + half).tolist()
        out[s.name] = entry
    return out if len(many) > 1 else next(iter(out.values()))


# the share of targets beyond the training span's range from which a network without a linear path is not given levels
OUTSIDE = 0.1


def outside_training_range(prepared: Prepared | list[Prepared], split: str = "test") -> float:
    """The fraction of the ``split``'s targets above the highest or below the lowest training
    value of their series."""
    outside = [(w.future > seen.max()) | (w.future < seen.min())
               for p in ([prepared] if isinstance(prepared, Prepared) else prepared)
               for seen, w in [(p.levels[:p.boundaries[0]], getattr(p, split))]]
    return float(np.concatenate([o.ravel() for o in outside]).mean())


def forecaster_meta(config: ForecastConfig, many: list[Series], prepared: list[Prepared],
                    module: torch.nn.Module) -> dict:
    """Everything needed to rebuild the network and feed it new data (model.json)."""
    series = many[0]
    meta = {
        "kind": Kind.FORECASTER.value,
        "architecture": config.model.architecture,
        "model": asdict(config.model),
        "inputs": len(prepared[0].columns),
        "horizon": config.windows.horizon,
        "target": series.target,
        "features": list(series.features),
        "calendar": list(dict.fromkeys(config.calendar)),
        "columns": prepared[0].columns,
        "windows": asdict(config.windows),
        "network": {"level": module.level, "zero": module.zero},
        "scaler": prepared[0].scaler.to_dict(),
        # day_first: the order loading chose for dates such as 01/02/2015, where it chose: new rows whose days
        # are all 12 or less (the first days of a month) would otherwise be read by a few rows' grid, or month
        # first; an order, not a format, so that rows written otherwise (ISO, another time) still read
        "series": {"date_column": series.date_column, "date_format": config.date_format,
                   "day_first": series.report.day_first, "missing": config.missing,
                   "duplicates": config.duplicates, "gaps": config.gaps, "frequency": series.report.frequency,
                   "offsets": LOCAL_DATES},  # how its times with UTC offsets were read, and new rows' will be
        "parameters": sum(p.numel() for p in module.parameters()),
    }
    if len(many) > 1:
        meta["series_column"] = config.series_column
        meta["scalers"] = {p.name: p.scaler.to_dict() for p in prepared}
        # each series' own grid (stores reporting on the 15th and on the 20th), which its new rows are held to
        # and its future dated on; series.frequency is the first's, all that runs made before recorded
        meta["frequencies"] = {s.name: s.report.frequency for s in many}
    return meta


def _series_record(config: ForecastConfig, many: list[Series], prepared: list[Prepared], transform_errors: dict) -> dict:
    first = prepared[0]
    data = {"series": report_dict(many[0]) if len(many) == 1 else {s.name: report_dict(s) for s in many},
            "windows": {k: sum(p.counts()[k] for p in prepared) for k in first.counts()},
            "spans": {k: [str(a), str(b)] for k, (a, b) in first.spans().items()},
            "transform": {"used": config.windows.transform, "validation_mae": transform_errors}}
    if config.data not in BUILTIN:
        path = Path(config.data)
        data["path"] = str(path.resolve())
        data["sha256"] = sha256(path, "file")
    else:
        data["builtin"] = {"title": BUILTIN[config.data].title, "source": BUILTIN[config.data].source}
    return data


def _forecast_header(config: ForecastConfig, many: list[Series], prepared: list[Prepared], network: NetworkForecaster,
            transform_errors: dict, run_dir: Path) -> str:
    c = {k: sum(p.counts()[k] for p in prepared) for k in prepared[0].counts()}
    series = many[0]
    name = series.name if len(many) == 1 else f"{len(many)} series ({', '.join(s.name for s in many[:5])})"
    chosen = (f"transform {config.windows.transform}" + (" (chosen on the validation span: " + ", ".join(
        f"{t} {e:.4g}" for t, e in transform_errors.items()) + ")" if transform_errors else ""))
    if transform_errors and "none" not in transform_errors:  # left out by choose_transform
        chosen += (f"; none left out: {100 * outside_training_range(prepared, 'val'):.0f}% of the validation "
                   "values lie outside the training span's range, which a network without a linear path "
                   "cannot reach on the levels")
    if transform_errors:
        passed = transform_passed_over(many, config.windows)
        for why in dict.fromkeys(passed.values()):  # diff and log-return: the same row short
            chosen += f"; {' and '.join(t for t in passed if passed[t] == why)} passed over: {why}"
    lines = [f"{network.describe()} on {name} {series.target}"
             + (f" + {', '.join(series.features + series.calendar)}" if series.features or series.calendar else "")
             + f": lookback {config.windows.lookback}, horizon {config.windows.horizon}, "
               f"device {network.trainer.device_text}, seed {config.train.seed}, run {run_dir}",  # before any epoch: a killed job names its run
             f"  {chosen}",
             *("  " + line for line in _data_lines(many)),
             f"  windows: {c['train']:,} train / {c['val']:,} val / {c['test']:,} test",
             network_summary(network.network, config.windows.lookback),
             # the epoch lines' figures are what the network trains on: read as the data's, a val_mae
             # of 0.28 beside a test MAE of 2.16 (°C) looks eight times better
             *([f"per epoch: loss and MAE {of} the network trains on; the scores after training are in the "
                "data's units"] if (of := trained_on(config.windows)) else [])]
    return "\n".join(lines)


HEADER_SERIES = 10  # series the header describes one by one; config.json holds every one's report


def _data_lines(many: list[Series]) -> list[str]:
    """What loading found, for the header: one series' report, or every series' on a line of its
    own (what they all share said once), so no series' figures stand for the file's."""
    if len(many) == 1:
        return many[0].report.lines()
    reports, first = [s.report.lines() for s in many], many[0].report
    # how the file and its dates were read, said once where every series says the same; counts never are
    shared = [line for line in (first.read_as and f"read as {first.read_as}", first.dates)
              if line and all(line in r for r in reports)]
    lines = [f"{len(many)} series, {sum(s.report.rows for s in many):,} rows", *shared]
    lines += [f"{s.name}: " + "; ".join(line for line in r if line not in shared)
              for s, r in zip(many[:HEADER_SERIES], reports)]
    rest = [s.report for s in many[HEADER_SERIES:]]
    if rest:
        lines.append(f"and {len(rest)} more series: {sum(r.rows for r in rest):,} rows, "
                     f"{sum(r.gaps for r in rest):,} missing timestamps, "
                     f"{sum(sum(r.missing.values()) for r in rest):,} missing values (config.json has each one's)")
    return lines
