"""The report of a forecast run: one self-contained page (its PNGs also saved under plots/)
that says first how the network does against its reference, then every forecaster side by
side on the test span, the series and its splits, the error by horizon step, the backtest,
the learning curves, the model and the configuration.

It is drawn from plain data, ``ForecastReport``: arrays, the results dict, the history and
texts. ``neuralab.forecasting.report`` gathers them from a run in progress or from a finished
run's files; nothing here knows a forecaster, a series or a window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neuralab.reports import html, plots
from neuralab.runs import FORECAST_FIGURES, REPORT

SPAN_COLORS = {"train": "#4c72b0", "val": "#dd8452", "test": "#55a868"}  # also the splits' order


@dataclass
class ForecastReport:
    name: str                           # the series ("seattle-weather", a CSV's stem)
    target: str                         # the forecast column; errors are in its units
    horizon: int
    transform: str                      # the target transform undone before scoring ("none", "diff", ...)
    verdict: str                        # the first sentence of the page: the network against the reference
    verdict_good: bool | None           # green when the network clearly wins, orange otherwise, None: too short to judge
    reference: str                      # what every forecaster is compared with ("persistence")
    versus: dict[str, float | None]     # forecaster -> percent better than the reference by the headline metric
    network: str                        # the row that stands out in the tables
    results: dict                       # results.json: test metrics, backtest, spans, windows, epochs
    times: np.ndarray                   # (T,) every row of the series
    values: np.ndarray                  # (T,) the target in its own units
    spans: dict[str, tuple]             # split -> (first, last) target time
    test_times: np.ndarray              # (N,) the first step's time of each test window
    actual: np.ndarray                  # (N,) the target at those times
    forecasts: dict[str, np.ndarray]    # forecaster -> (N,) its one-step-ahead forecasts, the ones drawn
    data_lines: list[str]               # what loading the series found and did, in words
    history: list[dict]                 # one record per epoch
    summary_text: str                   # the network's layers and parameters
    config: dict                        # the run's configuration
    backtest_refit: bool                # the backtest refitted every forecaster per fold
    min_windows: int                    # the fewest test windows a gain is judged on (forecasting.metrics)
    # A table under the verdict (header, rows): the place for the network against the best
    # baseline with its intervals. None: the page goes straight on to every forecaster.
    verdict_table: tuple[list[str], list[list]] | None = None
    notes: list[str] = field(default_factory=list)  # sentences after the verdict, in plain text
    # The network's prediction intervals drawn as bands: level ("80") -> (lower, upper), each (N,)
    intervals: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def _loss_label(config: dict) -> str:
    """The training loss as its curve names it: the loss, and what it is of where not the data in its
    units (MSE of the scaled target)."""
    from neuralab.run_list import trained_on

    train, windows = config.get("train") or {}, config.get("windows") or {}
    loss = str(train.get("loss") or "mse").upper() if isinstance(train, dict) else "MSE"
    of = trained_on(windows if isinstance(windows, dict) else {})
    return f"{loss} {of}" if of else loss


def write_forecast_report(run_dir: str | Path, report: ForecastReport) -> Path:
    """report.html and plots/*.png (runs.FORECAST_FIGURES: series, forecast, error_by_step, learning_curves).
    A full disk or a read-only folder raises NeuralabError; the run's other files stay."""
    run_dir = Path(run_dir)
    r, results = report, report.results
    # several series: MASE, each series over its own scale (by_step_mase); one series: MAE in its units
    metric = "mase" if "by_step_mase" in results else "mae"
    steps = results[f"by_step_{metric}"]
    several = len(results.get("series") or {}) > 1  # the figures of the series are the first one's
    figures = {
        "series": series_spans(r.times, r.values, r.spans, f"{r.name}: {r.target}", r.target),
        "forecast": forecasts(r.test_times, r.actual, r.forecasts, (f"{r.name}: " if several else "")
                              + "test span: one-step-ahead forecasts vs actual",
                              r.target, bands=r.intervals, band_of=r.network),
        "error_by_step": error_by_step({n: steps[n] for n in _ranked(results) if n in steps}, metric.upper()),
        "learning_curves": plots.learning_curves(r.history, ("loss",), {"loss": _loss_label(r.config)}, log=True),
    }
    with html.kept_if_unwritable(run_dir):
        images = {name: html.img(plots.save(fig, run_dir / FORECAST_FIGURES[name]), name)
                  for name, fig in figures.items()}
        title = f"Forecast: {r.name} {r.target}" + (f" (first of {len(results['series'])} series)" if several else "")
        doc = html.page(f"{title}, horizon {r.horizon}", _sections(r, images),
                        verdict=html.verdict(r.verdict, r.verdict_good))
        return html.write(run_dir / REPORT, doc)


def _sections(r: ForecastReport, images: dict[str, str]) -> list[tuple[str, str]]:
    results, head = r.results, r.results["headline"]
    metric = head.get("metric", "mae")  # what the verdict ranks by: MASE where series in different units are pooled
    transform = f" and the {r.transform} transform" if r.transform != "none" else ""
    best_score = _shown(results["test"][head["best"]].get(metric))
    best = (f"Best on the test span: <b>{html.esc(head['best'])}</b> ({metric.upper()} {html.cell(best_score)}). "
            if head.get("ranked", True) else f"Nothing is ranked: no forecaster has a {metric.upper()}. ")
    top = html.paragraph(f"{best}Errors are in the units of {html.esc(r.target)}, after undoing "
                         f"the scaling{transform}" + ("; MASE is unitless." if metric == "mase" else "."))
    top += "".join(html.paragraph(html.esc(n)) for n in r.notes)
    if r.verdict_table is not None:
        top += html.table(*r.verdict_table)

    # Every list follows the test ranking and the splits' order, never a dict's: a report drawn
    # again from results.json (keys sorted) is the same page.
    ranked = _ranked(results)
    columns = ["mae", "rmse", "mape", "smape", "mase"]
    scores = [[n, *(_shown(results["test"][n].get(c)) for c in columns), _versus(n, r),
               results["forecasters"].get(n, "")] for n in ranked]
    zeros, targets = results.get("mape_zeros"), results.get("test_targets")
    undefined = all(results["test"][n].get("mape") is None for n in results["test"])
    left_out = (f"MAPE left out the {zeros:,} of {targets:,} test targets that are 0"
                + (", too many for it to describe the series: n/a" if undefined else "") + "; "
                if zeros else "MAPE skips zero actuals; ")
    spans = ", ".join(f"{k} {a} .. {b}" for k, (a, b) in _in_split_order(results["spans"]))
    windows = ", ".join(f"{k} {v:,}" for k, v in _in_split_order(results["windows"]))
    pooled = _pooled_words(_without_mase(results))
    sections = [
        ("", top),
        ("Test span: every forecaster",
         html.table(["name", *columns, f"vs {r.reference} ({metric.upper()})", "fitted"], scores,
                    highlight=[i for i, row in enumerate(scores) if row[0] == r.network])
         + html.paragraph(f"MAPE and sMAPE in percent ({left_out}MASE below 1 beats the one-step naive "
                          "forecast's in-sample error on the training span, n/a where that span is constant"
                          + (f"; {pooled}" if pooled else "") + ").", muted=True)
         + images["forecast"]),
    ]
    if results.get("series"):
        sections.append(("Series by series", _per_series(results, r.network)))
    sections += [
        ("Series and splits",
         images["series"]
         + html.paragraph(f"Target spans: {html.esc(spans)}. Windows: {windows}. "
                          "The scaler was fitted on the training rows only.")
         + html.items(r.data_lines)),
        ("Error by horizon step", images["error_by_step"]),
        _backtest(results, ranked, r),
        ("Learning curves", images["learning_curves"] + html.paragraph(_training_words(results))),
        ("Model", html.pre(r.summary_text)),
        ("Configuration", html.pretty(r.config)),
    ]
    return sections


def _backtest(results: dict, ranked: list[str], r: ForecastReport) -> tuple[str, str]:
    """The backtest's summary (its fold count from the summary itself) and, for one series, each fold."""
    summary = results["backtest_summary"]
    first = next(iter(summary.values()), {})
    metric = first.get("metric", "mae")  # runs before the metric was recorded: MAE
    n = first.get("folds", len(results["backtest"]))
    many = len(results.get("series") or {})
    folds_text = f"{n} fold{'' if n == 1 else 's'}" + (f" over {many} series, scored by MASE" if many else "")
    left_out = first.get("left_out", [])
    if r.backtest_refit:
        how = "each forecaster refitted on all that precedes a fold"
    else:
        how = "sub-spans of the test span, every forecaster fitted once: their variation, not a refit"
    ties = any("folds_tied_with_persistence" in s for s in summary.values())
    rows = [[n, _shown(summary[n].get(f"{metric}_mean")), _shown(summary[n].get(f"{metric}_std")),
             _folds_won(summary[n], ties)] for n in ranked if n in summary]
    fold_names = [n for n in ranked if results["backtest"] and n in results["backtest"][0]["metrics"]]
    folds = [[f["fold"], f"{f['start']} .. {f['end']}", f["windows"], *(f["metrics"][n]["mae"] for n in fold_names)]
             for f in results["backtest"]]
    # metrics.difference's rule: a fold's gain judged by Student's t for its windows (fixed-b where windows
    # overlap), and not at all on too few windows that share no target
    judged = any("folds_too_short" in s for s in summary.values())  # runs before it counted short folds as ties
    beating = "folds beating persistence" + ((" (beyond the paired gain's noise: 2 SE, Student's t or fixed-b, on "
                                               f"{r.min_windows} windows that share no target or more)" if judged else
                                               " (beyond 2 SE of the paired gain)") if ties else "")
    body = html.table(["name", f"mean {metric.upper()} (weighted by windows)", "spread (std)", beating], rows,
                      highlight=[i for i, row in enumerate(rows) if row[0] == r.network])
    if left_out:
        body += html.paragraph(f"The mean {_pooled_words(left_out)}.", muted=True)
    if folds:
        body += html.table(["fold", "span", "windows", *fold_names], folds)
    if any(s.get("folds_too_short") for s in summary.values()):
        body += html.paragraph(f"A fold is judged on {r.min_windows} test windows or more that share no target "
                               "(windows whose horizons overlap count as a share of one): fewer backtest folds, "
                               "or a longer series, give each fold more.", muted=True)
    return f"Rolling-origin backtest ({folds_text}: {how})", body


def _folds_won(one: dict, ties: bool) -> str:
    """A forecaster's backtest folds beating persistence, of all, and those tied or too short to judge."""
    rest = [f"{one['folds_tied_with_persistence']} tied"] if ties else []
    rest += [f"{one['folds_too_short']} too short to judge"] if one.get("folds_too_short") else []
    return f"{one['folds_beating_persistence']} of {one['folds']}" + (f" ({', '.join(rest)})" if rest else "")


def _per_series(results: dict, network: str) -> str:
    """One row per series: its kind, best forecaster, the network's rank and MAE against
    persistence's in the series' own units, and its own verdict."""
    rows = []
    for name, one in results["series"].items():
        test, kind = one["test"], one.get("kind") or {}
        kind_text = kind.get("kind", "") + (f" (period {kind['period']})" if kind.get("period") else "")
        rows.append([name, kind_text, one.get("best", ""), one.get("network_rank", ""),
                     test.get(network, {}).get("mae"), test.get("persistence", {}).get("mae"),
                     _versus_persistence(one), one.get("sentence", "")])
    return html.table(["series", "kind", "best", f"{network} rank", f"{network} MAE", "persistence MAE",
                       "vs persistence", "verdict"], rows)


def _versus_persistence(one: dict) -> str:
    """A series' judgement against persistence; one without a MASE is judged neither way."""
    said = one.get("versus_persistence", "")
    return f"{said}: constant over its training span" if said == "left out" else said


def _without_mase(results: dict) -> list[str]:
    """The series of a pooled run that have no MASE: constant over their training span."""
    series = results.get("series") or {}
    return [name for name, one in series.items() if "mase_scale" in one and one["mase_scale"] is None]


def _pooled_words(left_out: list[str]) -> str:
    """Which series a pooled MASE leaves out ("" where none)."""
    if not left_out:
        return ""
    return (f"MASE pools the series that have one, leaving out {html.esc(', '.join(left_out))}, constant over "
            f"{'its' if len(left_out) == 1 else 'their'} training span")


def _training_words(results: dict) -> str:
    trained = (f"Best epoch {results['best_epoch']} of {results['epochs_run']}, "
               f"{results['train_seconds']:.1f}s of training.")
    if not results.get("kept_linear_start"):
        return trained
    return (f"Training ran {results['epochs_run']} epochs ({results['train_seconds']:.1f}s) but did not beat the "
            "linear start on the validation span by more than noise: the network's forecasts are that start's "
            "(epoch 0), and these curves are of the training that was discarded.")


def _shown(value):
    """A table cell: None (a metric that is undefined, e.g. MASE of a constant span) reads n/a."""
    return "n/a" if value is None else value


def _ranked(results: dict) -> list[str]:
    """The forecasters by the headline metric's test score, lowest first (undefined last)."""
    metric = results["headline"].get("metric", "mae")
    test = results["test"]
    return sorted(test, key=lambda n: (test[n].get(metric) is None, test[n].get(metric) or 0, n))


def _in_split_order(by_split: dict) -> list[tuple]:
    return sorted(by_split.items(), key=lambda kv: list(SPAN_COLORS).index(kv[0]) if kv[0] in SPAN_COLORS else 99)


def _versus(name: str, r: ForecastReport) -> str:
    if name == r.reference:
        return "reference"
    p = r.versus.get(name)
    if p is None:
        return ""
    return "the same" if abs(p) < 0.05 else f"{abs(p):.1f}% {'better' if p > 0 else 'worse'}"  # what .1f shows


# --- figures --------------------------------------------------------------------------------

def series_spans(times, values, spans: dict, title: str = "", ylabel: str = ""):
    """The whole series with the train / val / test target spans shaded."""
    fig = plots.figure(10, 3.2)
    ax = fig.subplots()
    ax.plot(times, values, color="#333333", linewidth=0.7)
    for name, (start, end) in spans.items():
        ax.axvspan(start, end, color=SPAN_COLORS.get(name, "#999999"), alpha=0.15, label=name)
    _concise_dates(ax)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def forecasts(times, actual, predicted: dict[str, np.ndarray], title: str = "", ylabel: str = "",
              bands: dict[str, tuple] | None = None, band_of: str = ""):
    """Actual values and each forecaster's forecasts at the same times; ``bands`` (level ->
    lower, upper) shade ``band_of``'s prediction intervals, the widest lightest."""
    fig = plots.figure(10, 3.6)
    ax = fig.subplots()
    for level, (lower, upper) in sorted((bands or {}).items(), key=lambda kv: -float(kv[0])):
        ax.fill_between(times, lower, upper, color="#4c72b0", alpha=0.12 if float(level) >= 90 else 0.22, linewidth=0,
                        label=f"{band_of} {level}% interval")
    ax.plot(times, actual, color="black", linewidth=1.2, label="actual")
    for name, values in predicted.items():
        ax.plot(times, values, linewidth=0.9, alpha=0.85, label=name)
    _concise_dates(ax)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def _concise_dates(ax) -> None:
    """Date ticks of ``ax`` labelled by what changes ("Sep", "15", the year once at the end):
    matplotlib's own full dates ("2015-09-01") run into each other over a few months."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = ax.xaxis.get_major_locator()
    if isinstance(locator, AutoDateLocator):  # the times were dates: steps and numbers keep their ticks
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def error_by_step(errors: dict[str, list[float]], metric: str = "MAE"):
    """Error at each horizon step, one line (or a bar for one step) per forecaster."""
    from matplotlib.ticker import MaxNLocator

    fig = plots.figure(6, 3.4)
    ax = fig.subplots()
    names = list(errors)
    steps = len(next(iter(errors.values()))) if errors else 0
    if steps == 1:
        ax.bar(names, [errors[n][0] for n in names], color=SPAN_COLORS["train"])
        ax.tick_params(axis="x", rotation=30, labelsize=8)
    else:
        for name in names:
            ax.plot(range(1, steps + 1), errors[name], marker="o", markersize=3, label=name)
        ax.set_xlabel("horizon step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # no step 1.5 between steps 1 and 2
        if names:
            ax.legend(fontsize=8)
    ax.set_ylabel(f"test {metric}")
    ax.set_title(f"{metric} by horizon step" if steps > 1 else f"test {metric}, one step ahead")
    return fig
