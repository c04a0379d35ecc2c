"""`neuralab forecast` (train a forecaster next to its baselines) and
`neuralab forecast predict RUN_DIR --csv NEW.csv` (the next horizon from new data)."""

from __future__ import annotations

import contextlib

from neuralab.cli._args import layer_sizes, names, number, run_folder, whole_number
from neuralab.cli.train import REQUEUE_HELP, TRUST_HELP
from neuralab.errors import named

# option -> field of the config section; options left out (None) keep the library's default
WINDOW_OPTIONS = {"lookback": "lookback", "horizon": "horizon", "stride": "stride", "val_fraction": "val_fraction",
                  "test_fraction": "test_fraction", "target_transform": "transform", "scaler": "scaler"}
MODEL_OPTIONS = {"model": "architecture", "hidden": "hidden", "dropout": "dropout", "init": "init", "recipe": "recipe"}
TRAIN_OPTIONS = {"epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "schedule": "schedule",
                 "grad_clip": "grad_clip", "patience": "patience", "seed": "seed", "device": "device",
                 "threads": "threads", "optimizer": "optimizer", "momentum": "momentum", "loss": "loss",
                 "tensorboard": "tensorboard"}


def register(sub) -> None:
    p = sub.add_parser(
        "forecast", help="forecast a time series with an RNN/LSTM/GRU next to simple baselines",
        description="Train a recurrent forecaster on a series and judge it against persistence, seasonal naive, "
                    "drift, moving average and linear autoregression on the same test span. Writes a run "
                    "directory with report.html, forecast.csv, results.json and the model. "
                    "`neuralab forecast predict RUN_DIR --csv NEW.csv` forecasts past the end of new data.")
    p.defer(_forecast_options)
    p.set_defaults(func=run_forecast, makes_run=True)


def _forecast_options(p) -> None:
    """The options, with the choices and defaults of the library's configs (read when `forecast` runs)."""
    from neuralab.data.series_names import BUILTIN, CALENDAR, DUPLICATES, GAPS, MISSING
    from neuralab.forecasting.config import (ARCHITECTURES, BASELINE_NAMES, RECIPES, SCALERS, TRANSFORMS,
                                             ForecastConfig, ModelConfig, series_train_config)
    from neuralab.cli.train import training_choices
    from neuralab.training.config import DEVICES, REGRESSION_LOSSES, SCHEDULES

    f, m, t = ForecastConfig(), ModelConfig(), series_train_config()
    w = f.windows  # the pipeline's defaults (transform auto), not WindowConfig's own
    levels = "/".join(f"{level * 100:g}%%" for level in f.intervals)  # %% is argparse's % in help
    data = p.add_argument_group("data")
    data.add_argument("--data", default=f.data,
                      help=f"built-in series ({', '.join(BUILTIN)}) or a CSV path (default {f.data})")
    data.add_argument("--target", help="column to forecast (default: Close for stocks, temp_max for weather)")
    data.add_argument("--features", type=names, default=list(f.features), metavar="COL,COL",
                      help="extra input columns, comma-separated (multivariate)")
    data.add_argument("--calendar", type=names, default=list(f.calendar), metavar="NAME,NAME",
                      help=f"add sine/cosine date encodings as inputs: {', '.join(CALENDAR)}")
    data.add_argument("--date-column", help="column holding the dates (default: one named date/time/...)")
    data.add_argument("--missing", choices=MISSING, default=f.missing,
                      help=f"what to do with missing values (default {f.missing})")
    data.add_argument("--duplicates", choices=DUPLICATES, default=f.duplicates,
                      help=f"what to do with duplicate timestamps (default {f.duplicates})")
    data.add_argument("--gaps", choices=GAPS, default=f.gaps,
                      help=f"missing timestamps: keep (one row = one step) or fill (then --missing fills them) "
                           f"(default {f.gaps})")
    data.add_argument("--date-format", help="how the dates are written, e.g. %%d/%%m/%%Y for 13/01/2012 (default: inferred)")
    data.add_argument("--sep", help="CSV separator, '\\t' for a tab (default: detected among comma, semicolon, tab and "
                                    "bar; decimal commas are detected too)")
    data.add_argument("--series-column", metavar="COLUMN",
                      help="the file holds one series per value of COLUMN: one network is trained on all of them, "
                           "baselines run per series, metrics per series and overall")
    data.add_argument("--where", metavar="COLUMN=VALUE",
                      help="keep only the rows where COLUMN is VALUE (one series of several), or with "
                           "COLUMN!=VALUE[,VALUE...] leave those series out")
    win = p.add_argument_group("windows")
    win.add_argument("--lookback", type=whole_number, help=f"input steps (default {w.lookback})")
    win.add_argument("--horizon", type=whole_number,
                     help="steps forecast at once, one output each: 1 = many-to-one, more = many-to-many; metrics "
                          f"and {levels} intervals per step (default {w.horizon})")
    win.add_argument("--stride", type=whole_number, help=f"steps between window starts (default {w.stride})")
    win.add_argument("--val-fraction", type=number,
                     help=f"of the rows, after the training span (default {w.val_fraction})")
    win.add_argument("--test-fraction", type=number, help=f"of the rows, at the end (default {w.test_fraction})")
    win.add_argument("--target-transform", choices=TRANSFORMS,
                     help="model the level, its difference or its log return (prices); auto chooses on the "
                          f"validation span (default {w.transform})")
    win.add_argument("--scaler", choices=SCALERS, help=f"fitted on the training rows only (default {w.scaler})")
    mod = p.add_argument_group("model")
    mod.add_argument("--model", metavar="MODEL", type=model_choice(tuple(ARCHITECTURES)),
                     help=f"{', '.join(ARCHITECTURES)}: lstm-stacked is the workshop's LSTM(128) -> LSTM(64) -> Dense "
                          f"(default {m.architecture}); or a Keras file, or FILE.py[:NAME] defining a Keras model or "
                          "a torch.nn.Module that takes (batch, lookback, inputs) and gives (batch, horizon)")
    mod.add_argument("--hidden", type=layer_sizes, metavar="N,N",
                     help="recurrent layer sizes, e.g. 128,64 (default: the model's)")
    mod.add_argument("--dropout", type=number, help=f"after each recurrent layer (default {m.dropout})")
    mod.add_argument("--recipe", choices=RECIPES,
                     help="residual: forecast relative to the last value, normalised per window, with a linear path "
                          "started at least squares beside the recurrent one; plain: the workshop's network alone "
                          f"(default {m.recipe})")
    mod.add_argument("--init", help="initial weights: torch (PyTorch's uniform) or keras (Glorot, orthogonal, "
                                    f"forget-gate bias 1) (default {m.init})")
    mod.add_argument("--baselines", type=names, default=list(f.baselines), metavar="NAME,NAME",
                     help=f"from {', '.join(BASELINE_NAMES)} (persistence is always included)")
    mod.add_argument("--season", type=whole_number, help="seasonal-naive period (default: detected)")
    tr = p.add_argument_group("training")
    tr.add_argument("--epochs", type=whole_number, help=f"at most (default {t.epochs})")
    tr.add_argument("--batch-size", type=whole_number, help=f"(default {t.batch_size})")
    tr.add_argument("--lr", type=number, help=f"peak learning rate (default {t.lr})")
    tr.add_argument("--schedule", choices=SCHEDULES, help=f"(default {t.schedule})")
    tr.add_argument("--grad-clip", type=number, help=f"max gradient norm, 0 = off (default {t.grad_clip})")
    tr.add_argument("--patience", type=whole_number, help=f"early stopping patience in epochs, 0 = off (default {t.patience})")
    tr.add_argument("--seed", type=whole_number, help=f"(default {t.seed})")
    tr.add_argument("--device", choices=DEVICES, help=f"(default {t.device})")
    tr.add_argument("--threads", type=whole_number, help="CPU threads for torch (default, or 0: torch's choice, at most a "
                    "container's CPU quota; 1 is often faster on a busy machine)")
    training_choices(tr, t, REGRESSION_LOSSES)
    tr.add_argument("--backtest-folds", type=whole_number, default=f.backtest_folds,
                    help=f"(default {f.backtest_folds})")
    tr.add_argument("--backtest-refit", action="store_true", help="refit every forecaster per fold (slow)")
    p.add_argument("--out", help="run directory (default forecast-MODEL-DATA-TIME in "
                                 "the runs folder: $NEURALAB_RUNS or ./runs)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--quiet", action="store_true", help="print only the verdict")
    p.add_argument("--resume", type=run_folder, metavar="RUN_DIR", help="continue an interrupted run with its own settings and data")
    p.add_argument("--resume-if-interrupted", action="store_true", help=REQUEUE_HELP)
    p.add_argument("--trust-code", action="store_true", help="with --resume: " + TRUST_HELP
                   + " (--resume-if-interrupted runs it where --model names the same file, unchanged)")

    actions = p.add_subparsers(dest="action", metavar="ACTION")
    pr = actions.add_parser("predict", help="forecast the next horizon after the end of new data",
                            description="Load a forecasting run and forecast the horizon after the last row of a CSV "
                                        "with the run's scaler and window settings.")
    pr.add_argument("run_dir", type=run_folder, metavar="RUN_DIR", help="a forecasting run's directory (from neuralab forecast)")
    pr.add_argument("--csv", required=True, help="CSV with the run's date, target and feature columns")
    pr.add_argument("--date-column", help="if it differs from the training data's")
    pr.add_argument("--missing", choices=MISSING, help="missing-value policy (default: the run's)")
    pr.add_argument("--duplicates", choices=DUPLICATES, help="duplicate-timestamp policy (default: the run's)")
    pr.add_argument("--date-format", help="how the dates are written, if it differs from the training data's")
    pr.add_argument("--sep", help="CSV separator, '\\t' for a tab (default: detected)")
    pr.add_argument("--output", help="write the forecast to this CSV instead of printing it")
    pr.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
    pr.set_defaults(func=run_predict, makes_run=False)  # prints a forecast: a reader gone needs no more of it


def _given(args, options: dict[str, str]) -> dict:
    return {field: getattr(args, option) for option, field in options.items() if getattr(args, option) is not None}


def model_choice(architectures: tuple[str, ...]):
    """A type for --model: a built-in architecture, or a file naming a model (checked when read)."""
    import argparse

    from neuralab.training.source import KERAS_SUFFIXES, split_name

    def model(text: str) -> str:
        if text in architectures or split_name(text)[0].suffix.lower() in (*KERAS_SUFFIXES, ".py"):
            return text
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(architectures)}, "
                                         "or give a Keras file or FILE.py[:NAME])")
    return model


def user_model(args):
    """The --model that is not a built-in architecture (a Keras file, FILE.py[:NAME]), or None."""
    from neuralab.forecasting.config import ARCHITECTURES

    return args.model if args.model is not None and args.model not in ARCHITECTURES else None


def config_from_args(args):
    """The ForecastConfig the options describe; options left out keep the library's defaults."""
    from dataclasses import replace

    from neuralab.forecasting.config import ForecastConfig, ModelConfig, series_train_config

    model_options = _given(args, MODEL_OPTIONS)
    if user_model(args) is not None:
        model_options.pop("architecture")

    return ForecastConfig(
        data=args.data, target=args.target, features=args.features, calendar=args.calendar,
        date_column=args.date_column, date_format=args.date_format, sep=args.sep, series_column=args.series_column,
        where=args.where, missing=args.missing, duplicates=args.duplicates, gaps=args.gaps,
        windows=replace(ForecastConfig().windows, **_given(args, WINDOW_OPTIONS)),
        model=ModelConfig(**model_options),
        train=series_train_config(**_given(args, TRAIN_OPTIONS)), baselines=args.baselines, season=args.season,
        backtest_folds=args.backtest_folds, backtest_refit=args.backtest_refit)


def run_forecast(args) -> int:
    from neuralab.cli._args import (code_named_again, finished_already, only_with_resume, refuse_other_kind, requeued,
                                    typed)
    from neuralab.training.source import from_python_only
    from neuralab.forecasting.pipeline import refuse_built_in_settings, resume_forecast, run_forecast as run
    from neuralab.runs import Kind, RunFinished
    from neuralab.training.config import TrainConfig
    from neuralab.training.device import session_threads

    if args.threads is not None:  # a resume takes them as the session's, which no config of the run checks
        TrainConfig(threads=args.threads).check()
    resume = args.resume
    if args.resume_if_interrupted:
        # kept as --resume's is: a resume keeps its settings, which the advice on running out of memory says
        resume = args.resume = args.out if requeued(args, Kind.FORECASTER) else None
        # the file typed again, as the run keeps it, is the consent its first start was
        args.trust_code = args.trust_code or bool(resume) and code_named_again(args)
    if resume:
        refuse_other_kind(resume, Kind.FORECASTER)
        _refuse_settings(args, resume)
        try:
            with session_threads(args.threads), \
                    from_python_only(resume, "it can only be resumed", "neuralab.resume_forecast"):
                result = resume_forecast(resume, verbose=not args.quiet, trust_code=args.trust_code, device=args.device)
        except RunFinished:
            if not args.resume_if_interrupted:
                raise
            return finished_already(args)
    else:
        if not args.resume_if_interrupted:
            only_with_resume(args, "trust_code")
        config = config_from_args(args)
        if user_model(args) is not None:  # typed at their defaults too, which the library cannot tell from none
            given = typed(args)
            refuse_built_in_settings(config.model, {field for option, field in MODEL_OPTIONS.items() if option in given})
        result = run(config, out=args.out, overwrite=args.overwrite, verbose=not args.quiet, model=user_model(args))
    if args.quiet:  # the verdict alone; its table is in results.json and report.html
        print(f"{named(result.headline['sentence'])}  run: {result.run_dir}")
    return 0


def _refuse_settings(args, run_dir) -> None:
    """A resumed run keeps the settings and data it was started with: an option typed beside
    --resume (or --resume-if-interrupted) that differs from the run's own is refused by name
    rather than silently ignored; the run's own value typed again is accepted. The threads and
    the device are not the run's but the session's (``session_threads``, ``session_device``)."""
    from pathlib import Path

    from neuralab.cli._args import typed
    from neuralab.errors import NeuralabError
    from neuralab.forecasting.pipeline import stored_config
    from neuralab.runs import Kind, Run, json_object
    from neuralab.training.classify import same_code

    requeued = args.resume_if_interrupted
    mine = {"resume", "trust_code", "quiet", "threads", "device", *(("out", "resume_if_interrupted") if requeued else ())}
    given = [a.dest for a in args._parsers[0]._actions if a.dest in typed(args) - mine]
    if not given:
        return
    how = ("a resumed run keeps the settings and data it was started with (start a new run to change them"
           + (", in another `out`)" if requeued else ")"))
    placed = [dest for dest in given if dest in ("out", "overwrite")]
    if placed:
        raise NeuralabError(f"{args.resume}: `{placed[0]}` does not apply to `resume`: {how}")
    run = Run.open(run_dir, Kind.FORECASTER)
    own = stored_config(run)
    data = str(json_object(run.record.get("data")).get("path", own.data))  # a CSV: the absolute path it was read from

    def same(dest: str, value) -> bool:
        if dest == "data":
            return value == own.data or Path(value).is_file() and Path(value).resolve() == Path(data).resolve()
        if dest == "model":  # FILE.py[:NAME] as the run records it: the file's name, the module's, the code's SHA-256
            return value == own.model.architecture or same_code(value, own.model.architecture, run)
        if dest == "target_transform" and value == "auto":  # config.json keeps what auto chose, and on what
            return bool(json_object(json_object(run.record.get("data")).get("transform")).get("validation_mae"))
        return value == _setting(own, dest)

    changed = [f"`{dest}` {getattr(args, dest)!r} (the run has {_shown(_setting(own, dest))})" for dest in given
               if not same(dest, getattr(args, dest))]
    if changed:
        if requeued:
            raise NeuralabError(f"{run_dir}: holds an interrupted run with other settings: " + ", ".join(changed)
                                + f"; {how}")
        verb = "does" if len(changed) == 1 else "do"
        raise NeuralabError(f"{run_dir}: " + ", ".join(changed) + f" {verb} not apply to `resume`: {how}")


def _shown(value) -> str:
    """A run's setting as a refusal names it: None, a setting left to the library (a season
    detected on the data, a target chosen), as "none given", not Python's None."""
    return "none given" if value is None else repr(value)


def _setting(config, option: str):
    """The value in ``config`` (a ForecastConfig) that ``option`` sets."""
    for section, options in (("windows", WINDOW_OPTIONS), ("model", MODEL_OPTIONS), ("train", TRAIN_OPTIONS)):
        if option in options:
            return getattr(getattr(config, section), options[option])
    return getattr(config, option)


@contextlib.contextmanager
def finished_run_only():
    """The library's refusal of a forecaster run that did not finish, with the command that
    finishes it in place of its Python call; of a module object, which no command can give
    again, the Python call stays. A refusal's advice to train again with `where` names
    `neuralab forecast`'s --where, which the running command (export, report, predict) lacks."""
    from neuralab.cli._args import flag_for, resume_command
    from neuralab.errors import NAMING, NeuralabError
    from neuralab.forecasting.finished import RunNotFinished
    from neuralab.runs import Kind, resume_needs

    try:
        yield
    except RunNotFinished as e:
        if resume_needs(e.run_dir)[0] == "model":
            raise
        raise e.said_with(resume_command(Kind.FORECASTER.made_by, e.run_dir)) from None
    except NeuralabError as e:
        if type(e) is not NeuralabError or "`where`" not in str(e.args[0]):  # a subclass's fields stay its own
            raise
        naming = NAMING.get()
        raise NeuralabError(e.render(lambda p: flag_for(p) if p == "where" else naming(p))) from None


def run_predict(args) -> int:
    from pathlib import Path

    from neuralab.errors import ParameterError
    from neuralab.files import atomic_write
    from neuralab.cli._args import typed
    from neuralab.training.source import from_python_only
    from neuralab.errors import NeuralabError
    from neuralab.forecasting.finished import predict_run

    # the options of `forecast` itself, typed before `predict`, would be ignored without a word
    before = [a.dest for a in args._parsers[1]._actions if a.option_strings and a.dest in typed(args, 1)]
    if before:
        raise NeuralabError(f"`{before[0]}` is an option of `neuralab forecast` (training), typed before `predict`; "
                            "`predict` uses the run's own settings: leave it out, or give predict's options "
                            "after `predict RUN_DIR`")
    if args.output:  # checked before the forecast: replacing either would lose what it holds
        output = Path(args.output).resolve()
        if output == Path(args.csv).resolve():
            raise ParameterError("output", args.output, "is the file read as `csv`; write the forecast to another file")
        if output.is_relative_to(Path(args.run_dir).resolve()):
            raise ParameterError("output", args.output, "lies inside the run's folder, whose files the run's report "
                                                        "reads; write the forecast somewhere else")
    with finished_run_only(), from_python_only(args.run_dir, "it can only be used", "neuralab.predict_run", args.csv):
        frame = predict_run(args.run_dir, args.csv, date_column=args.date_column, missing=args.missing,
                            trust_code=args.trust_code, duplicates=args.duplicates, date_format=args.date_format,
                            sep=args.sep)
    if args.output:
        with atomic_write(args.output) as f:
            frame.to_csv(f, index=False)  # every digit, as forecast.csv
        print(f"forecast of {len(frame)} step{'s' * (len(frame) != 1)} written to {args.output}")
    else:
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    return 0
