"""`neuralab forecast` (train a forecaster next to its baselines) and
`neuralab forecast predict RUN_DIR --csv NEW.csv` (the next horizon from new data)."""

from __future__ import annotations

import argparse

from neuralab.cli._args import positive_float, positive_int


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be in [0, 1)")
    return value


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give layer sizes like 128,64") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every layer size must be at least 1")
    return sizes


# Choices and defaults are spelled out here so that `neuralab --help` imports neither torch
# nor pandas; tests/test_cli_forecast.py holds them equal to the library's.
MISSING = ("error", "drop", "ffill", "interpolate")
DUPLICATES = ("error", "first", "last", "mean")
GAPS = ("keep", "fill")
TRANSFORMS = ("auto", "none", "diff", "log-return")
SCALERS = ("standard", "minmax", "none")
MODELS = ("lstm-stacked", "lstm", "gru", "rnn")
BASELINES = ("persistence", "seasonal-naive", "drift", "moving-average", "linear-ar")
SCHEDULES = ("onecycle", "cosine", "constant")
RECIPES = ("residual", "plain")

# option -> (config section, field); None defaults leave the library's default in place
WINDOW_OPTIONS = {"lookback": "lookback", "horizon": "horizon", "stride": "stride", "val_fraction": "val_fraction",
                  "test_fraction": "test_fraction", "target_transform": "transform", "scaler": "scaler"}
MODEL_OPTIONS = {"model": "architecture", "hidden": "hidden", "dropout": "dropout", "init": "init", "recipe": "recipe"}
TRAIN_OPTIONS = {"epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "schedule": "schedule",
                 "grad_clip": "grad_clip", "patience": "patience", "seed": "seed", "device": "device",
                 "threads": "threads"}


def register(sub) -> None:
    p = sub.add_parser(
        "forecast", help="forecast a time series with an RNN/LSTM/GRU next to simple baselines",
        description="Train a recurrent forecaster on a series and judge it against persistence, seasonal naive, "
                    "drift, moving average and linear autoregression on the same test span. Writes a run "
                    "directory with report.html, forecast.csv, results.json and the model. "
                    "`neuralab forecast predict RUN_DIR --csv NEW.csv` forecasts past the end of new data.")
    data = p.add_argument_group("data")
    data.add_argument("--data", default="seattle-weather",
                      help="built-in series (sp500, nasdaq, seattle-weather) or a CSV path (default seattle-weather)")
    data.add_argument("--target", help="column to forecast (default: Close for stocks, temp_max for weather)")
    data.add_argument("--features", type=_columns, default=[], metavar="COL,COL",
                      help="extra input columns, comma-separated (multivariate)")
    data.add_argument("--calendar", type=_columns, default=[], metavar="NAME,NAME",
                      help="add sine/cosine date encodings as inputs: dayofyear, dayofweek, month, hour")
    data.add_argument("--date-column", help="column holding the dates (default: the column that parses as dates, "
                                            "preferring one named date/time/...)")
    data.add_argument("--date-format", help="how the dates are written, e.g. %%d/%%m/%%Y for 13/01/2012 (default: inferred)")
    data.add_argument("--sep", help="CSV separator (default: detected among comma, semicolon, tab and bar; decimal "
                                    "commas are detected too)")
    data.add_argument("--series-column", metavar="COLUMN",
                      help="the file holds one series per value of COLUMN: one network is trained on all of them, "
                           "baselines run per series, metrics per series and overall")
    data.add_argument("--where", metavar="COLUMN=VALUE", help="keep only the rows where COLUMN is VALUE (one series of several)")
    data.add_argument("--missing", choices=MISSING, default="error",
                      help="what to do with missing values (default error)")
    data.add_argument("--duplicates", choices=DUPLICATES, default="error",
                      help="what to do with duplicate timestamps (default error)")
    data.add_argument("--gaps", choices=GAPS, default="keep",
                      help="missing timestamps: keep (one row = one step) or fill (then --missing fills them)")
    win = p.add_argument_group("windows")
    win.add_argument("--lookback", type=positive_int, help="input steps (default 60)")
    win.add_argument("--horizon", type=positive_int,
                     help="steps forecast at once, one output each: 1 = many-to-one, more = many-to-many; metrics "
                          "and 80%%/95%% intervals per step (default 1)")
    win.add_argument("--stride", type=positive_int, help="steps between window starts (default 1)")
    win.add_argument("--val-fraction", type=_fraction, help="of the rows, after the training span (default 0.15)")
    win.add_argument("--test-fraction", type=_fraction, help="of the rows, at the end (default 0.15)")
    win.add_argument("--target-transform", choices=TRANSFORMS,
                     help="model the level, its difference or its log return (prices); auto chooses on the "
                          "validation span (default auto)")
    win.add_argument("--scaler", choices=SCALERS, help="fitted on the training rows only (default standard)")
    mod = p.add_argument_group("model")
    mod.add_argument("--model", choices=MODELS,
                     help="lstm-stacked is the workshop's LSTM(128) -> LSTM(64) -> Dense (default)")
    mod.add_argument("--hidden", type=_sizes, metavar="N,N", help="recurrent layer sizes, e.g. 128,64")
    mod.add_argument("--dropout", type=float, help="after each recurrent layer (default 0.2)")
    mod.add_argument("--recipe", choices=RECIPES,
                     help="residual: forecast relative to the last value, normalised per window, with a linear path "
                          "started at least squares beside the recurrent one; plain: the workshop's network alone "
                          "(default residual)")
    mod.add_argument("--init", choices=("torch", "keras"),
                     help="initial weights: PyTorch's uniform or Keras' Glorot/orthogonal/forget-bias-1 (default torch)")
    mod.add_argument("--baselines", type=_columns, default=list(BASELINES), metavar="NAME,NAME",
                     help=f"from {', '.join(BASELINES)} (persistence is always included)")
    mod.add_argument("--season", type=positive_int, help="seasonal-naive period (default: detected)")
    tr = p.add_argument_group("training")
    tr.add_argument("--epochs", type=positive_int, help="at most (default 30)")
    tr.add_argument("--batch-size", type=positive_int, help="(default 64)")
    tr.add_argument("--lr", type=positive_float, help="peak learning rate (default 0.003)")
    tr.add_argument("--schedule", choices=SCHEDULES, help="(default onecycle)")
    tr.add_argument("--grad-clip", type=float, help="max gradient norm, 0 = off (default 1.0)")
    tr.add_argument("--patience", type=int, help="early stopping patience in epochs, 0 = off (default 5)")
    tr.add_argument("--seed", type=int, help="(default 0)")
    tr.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="(default auto)")
    tr.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice; "
                    "1 is often faster on a busy machine)")
    tr.add_argument("--backtest-folds", type=positive_int, default=4)
    tr.add_argument("--backtest-refit", action="store_true", help="refit every forecaster per fold (slow)")
    p.add_argument("--out", help="run directory (default runs/forecast-MODEL-DATA-TIME)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--quiet", action="store_true", help="print only the verdict")
    p.set_defaults(func=run_forecast)

    actions = p.add_subparsers(dest="action", metavar="ACTION")
    pr = actions.add_parser("predict", help="forecast the next horizon after the end of new data",
                            description="Load a forecasting run and forecast the horizon after the last row of a CSV "
                                        "with the run's scaler and window settings.")
    pr.add_argument("run_dir")
    pr.add_argument("--csv", required=True, help="CSV with the run's date, target and feature columns")
    pr.add_argument("--date-column", help="if it differs from the training data's")
    pr.add_argument("--missing", choices=MISSING, help="missing-value policy (default: the run's)")
    pr.add_argument("--output", help="write the forecast to this CSV instead of printing it")
    pr.set_defaults(func=run_predict)


def _given(args, options: dict[str, str]) -> dict:
    return {field: getattr(args, option) for option, field in options.items() if getattr(args, option) is not None}


def config_from_args(args):
    """The ForecastConfig the options describe; options left out keep the library's defaults."""
    from dataclasses import replace

    from neuralab.forecasting.models import ModelConfig, series_train_config
    from neuralab.forecasting.pipeline import ForecastConfig

    return ForecastConfig(
        data=args.data, target=args.target, features=args.features, calendar=args.calendar,
        date_column=args.date_column, date_format=args.date_format, sep=args.sep, series_column=args.series_column,
        where=args.where, missing=args.missing, duplicates=args.duplicates, gaps=args.gaps,
        windows=replace(ForecastConfig().windows, **_given(args, WINDOW_OPTIONS)),
        model=ModelConfig(**_given(args, MODEL_OPTIONS)),
        train=series_train_config(**_given(args, TRAIN_OPTIONS)), baselines=args.baselines, season=args.season,
        backtest_folds=args.backtest_folds, backtest_refit=args.backtest_refit)


def run_forecast(args) -> int:
    from neuralab.forecasting.pipeline import run_forecast as run

    result = run(config_from_args(args), out=args.out, overwrite=args.overwrite, verbose=not args.quiet)
    if args.quiet:  # the verdict alone; its table is in results.json and report.html
        print(f"{result.headline['sentence']}  run: {result.run_dir}")
    return 0


def run_predict(args) -> int:
    from neuralab.files import atomic_write
    from neuralab.forecasting.pipeline import predict_run

    frame = predict_run(args.run_dir, args.csv, date_column=args.date_column, missing=args.missing)
    if args.output:
        with atomic_write(args.output) as f:
            frame.to_csv(f, index=False, float_format="%.6g")
        print(f"forecast of {len(frame)} steps written to {args.output}")
    else:
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    return 0
