"""The forecasting report: one self-contained HTML file (PNGs embedded as base64, also
saved under plots/) that says first whether the network beats persistence.

The plotting functions take plain arrays and return a matplotlib Figure, so a later
shared reports module can reuse them. They use matplotlib's object API (no pyplot), so
nothing here touches the global backend or leaks figures.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from neuralab.files import atomic_write

SPAN_COLORS = {"train": "#4c72b0", "val": "#dd8452", "test": "#55a868"}


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def plot_series_spans(times, values, spans: dict, title: str = "", ylabel: str = "") -> Figure:
    """The whole series with the train / val / test target spans shaded."""
    fig = Figure(figsize=(10, 3.2))
    ax = fig.add_subplot()
    ax.plot(times, values, color="#333333", linewidth=0.7)
    for name, (start, end) in spans.items():
        ax.axvspan(start, end, color=SPAN_COLORS.get(name, "#999999"), alpha=0.15, label=name)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def plot_forecast(times, actual, forecasts: dict[str, np.ndarray], title: str = "", ylabel: str = "") -> Figure:
    """Actual values and one-step-ahead forecasts over the test span."""
    fig = Figure(figsize=(10, 3.6))
    ax = fig.add_subplot()
    ax.plot(times, actual, color="black", linewidth=1.2, label="actual")
    for name, values in forecasts.items():
        ax.plot(times, values, linewidth=0.9, alpha=0.85, label=name)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def plot_error_by_step(errors: dict[str, list[float]], metric: str = "MAE") -> Figure:
    """Error at each horizon step, one line (or bar group for one step) per forecaster."""
    fig = Figure(figsize=(6, 3.4))
    ax = fig.add_subplot()
    names = list(errors)
    steps = len(next(iter(errors.values()))) if errors else 0
    if steps == 1:
        ax.bar(names, [errors[n][0] for n in names], color="#4c72b0")
        ax.tick_params(axis="x", rotation=30, labelsize=8)
    else:
        for name in names:
            ax.plot(range(1, steps + 1), errors[name], marker="o", markersize=3, label=name)
        ax.set_xlabel("horizon step")
        ax.legend(fontsize=8)
    ax.set_ylabel(f"test {metric}")
    ax.set_title(f"{metric} by horizon step" if steps > 1 else f"test {metric}, one step ahead")
    return fig


def plot_learning_curves(history: list[dict]) -> Figure:
    """Training and validation loss per epoch (and validation MAE in model units)."""
    fig = Figure(figsize=(6, 3.4))
    ax = fig.add_subplot()
    epochs = [r["epoch"] for r in history]
    for key in ("loss", "val_loss"):
        if history and key in history[0]:
            ax.plot(epochs, [r[key] for r in history], marker="o", markersize=3, label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (scaled)")
    ax.set_yscale("log")
    ax.set_title("learning curves")
    ax.legend(fontsize=8)
    return fig


def table_html(rows: list[dict], columns: list[str], highlight: str | None = None, key: str = "name") -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cls = ' class="hl"' if highlight is not None and row.get(key) == highlight else ""
        cells = "".join(f"<td>{_fmt(row.get(c))}</td>" for c in columns)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if np.isnan(value) else f"{value:.4g}"
    return html.escape(str(value)) if value is not None else ""


def image_html(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.verdict { font-size: 1.15em; padding: 0.8em 1em; border-radius: 6px; }
.good { background: #e8f5e9; border-left: 6px solid #2e7d32; }
.bad { background: #fff3e0; border-left: 6px solid #e65100; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.hl { background: #eef3fb; font-weight: 600; }
img { max-width: 100%; } pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.muted { color: #666; font-size: 0.9em; }
"""


def html_page(title: str, body: list[str]) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_forecast_report(run_dir: Path, *, config, series, prepared, results: dict,
                          predictions: dict[str, np.ndarray], history: list[dict], summary_text: str) -> Path:
    """report.html and plots/*.png for a forecasting run."""
    from dataclasses import asdict

    head = results["headline"]
    target = series.target
    test = prepared.test
    plots_dir = run_dir / "plots"
    plots_dir.mkdir(exist_ok=True)
    shown = [head["network"], "persistence"] + ([head["best"]] if head["best"] not in (head["network"], "persistence") else [])
    figures = {
        "series": plot_series_spans(prepared.times, prepared.levels, prepared.spans(),
                                    f"{series.name}: {target}", target),
        "forecast": plot_forecast(test.times[:, 0], test.future[:, 0], {n: predictions[n][:, 0] for n in shown},
                                  "test span: one-step-ahead forecasts vs actual", target),
        "error_by_step": plot_error_by_step(results["by_step_mae"]),
        "learning_curves": plot_learning_curves(history),
    }
    images = {}
    for name, fig in figures.items():
        png = png_bytes(fig)
        (plots_dir / f"{name}.png").write_bytes(png)
        images[name] = image_html(png, name)

    table = [{"name": n, **m, "vs persistence": _versus(n, m["mae"], head["persistence_mae"]),
              "fitted": results["forecasters"].get(n, "")} for n, m in results["test"].items()]
    table.sort(key=lambda r: r["mae"])
    bt = results["backtest_summary"]
    bt_rows = [{"name": n, "mean MAE": s["mae_mean"], "spread (std)": s["mae_std"],
                "folds beating persistence": f"{s['folds_beating_persistence']} of {s['folds']}"} for n, s in bt.items()]
    fold_rows = [{"fold": r["fold"], "span": f"{r['start']} .. {r['end']}", "windows": r["windows"],
                  **{n: m["mae"] for n, m in r["metrics"].items()}} for r in results["backtest"]]
    fold_cols = ["fold", "span", "windows", *(results["backtest"][0]["metrics"] if results["backtest"] else [])]
    verdict = "good" if head.get("outcome") == "network" else "bad"
    spans = ", ".join(f"{k} {a} .. {b}" for k, (a, b) in results["spans"].items())
    body = [
        f"<h1>Forecast: {html.escape(series.name)} {html.escape(target)}, horizon {config.windows.horizon}</h1>",
        f'<p class="verdict {verdict}">{html.escape(head["sentence"])}</p>',
        f'<p>{html.escape(head.get("advice", ""))}</p>',
        f"<p>Best on the test span: <b>{html.escape(head['best'])}</b> (MAE {head['best_mae']:.4g}). "
        f"All errors are in the units of {html.escape(target)}, after undoing the scaling"
        f"{' and the ' + config.windows.transform + ' transform' if config.windows.transform != 'none' else ''}.</p>",
        "<h2>Test span: every forecaster</h2>",
        table_html(table, ["name", "mae", "rmse", "mape", "smape", "mase", "vs persistence", "fitted"],
                   highlight=head["network"]),
        '<p class="muted">MAPE and sMAPE in percent (MAPE skips zero actuals); MASE below 1 beats the one-step '
        "naive forecast's in-sample error on the training span.</p>",
        images["forecast"],
        "<h2>Series and splits</h2>", images["series"],
        f"<p>Target spans: {html.escape(spans)}. Windows: "
        + ", ".join(f"{k} {v:,}" for k, v in results["windows"].items()) + ". The scaler was fitted on the training rows only.</p>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in series.report.lines()) + "</ul>",
        "<h2>Error by horizon step</h2>", images["error_by_step"],
        f"<h2>Rolling-origin backtest ({len(results['backtest'])} folds of the test span"
        f"{', refitted per fold' if config.backtest_refit else ', fitted once on the training span'})</h2>",
        table_html(bt_rows, ["name", "mean MAE", "spread (std)", "folds beating persistence"], highlight=head["network"]),
        table_html(fold_rows, fold_cols, key="fold"),
        "<h2>Learning curves</h2>", images["learning_curves"],
        f"<p>Best epoch {results['best_epoch']} of {results['epochs_run']}, {results['train_seconds']:.1f}s of training.</p>",
        "<h2>Model</h2>", f"<pre>{html.escape(summary_text)}</pre>",
        "<h2>Configuration</h2>", f"<pre>{html.escape(_json(asdict(config)))}</pre>",
    ]
    path = run_dir / "report.html"
    with atomic_write(path) as f:
        f.write(html_page(f"neuralab forecast: {series.name} {target}", body))
    return path


def _versus(name: str, error: float, reference: float) -> str:
    from neuralab.forecasting.metrics import percent_better

    if name == "persistence":
        return "reference"
    p = percent_better(error, reference)
    return "the same" if error == reference else f"{abs(p):.1f}% {'better' if p > 0 else 'worse'}"


def _json(obj) -> str:
    import json

    return json.dumps(obj, indent=2, default=str)
