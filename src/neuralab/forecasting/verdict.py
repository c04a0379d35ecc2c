"""What a forecasting run says first: which forecaster is best on the test span, by how
much, where the network ranks against the best baseline (not only against persistence),
and advice that fits the kind of series: prices that move like a random walk, series with
a season, or a constant.
"""

from __future__ import annotations

import numpy as np

from neuralab.forecasting.baselines import detect_period
from neuralab.forecasting.metrics import percent_better

TIE = 1.0  # percent: closer than this is a tie, too small to matter on one test span


def character(levels: np.ndarray, target: str, max_period: int) -> dict:
    """The kind of series the training span shows: constant, linear, random-walk-like, seasonal or other."""
    y = np.asarray(levels, dtype=np.float64)
    if len(y) < 3 or np.ptp(y) == 0:
        return {"kind": "constant", "value": float(y[0]) if len(y) else None}
    changes = np.diff(y)
    if np.ptp(changes) <= 1e-9 * np.max(np.abs(y)):  # the same step every time: a line, nothing random to walk
        return {"kind": "linear", "step": float(changes.mean())}
    period = detect_period(y, max_period)
    if period > 1:
        return {"kind": "seasonal", "period": period}
    c = changes - changes.mean()
    acf1 = float(c[:-1] @ c[1:] / (c @ c)) if c @ c > 0 else 0.0
    # A random walk: changes small next to the spread of the levels, and uncorrelated.
    wandering = np.mean(np.abs(changes)) < 0.1 * np.mean(np.abs(y - y.mean()))
    pricey = any(w in target.lower() for w in ("close", "price", "open", "high", "low", "adj"))
    if wandering and abs(acf1) < 0.1:
        return {"kind": "random-walk", "prices": pricey or bool((y > 0).all()), "acf1_of_changes": acf1}
    return {"kind": "other", "acf1_of_changes": acf1}


ADVICE = {
    "random-walk": ("This series moves like a random walk (its changes are uncorrelated), as prices do: "
                    "persistence is nearly optimal, so a tie with it is the expected result, and a network "
                    "that beats it by a few percent on one test span is more likely luck than skill "
                    "(see the backtest spread)."),
    "linear": ("This series changes by the same step every time ({step:.4g}), a straight line: drift extrapolates "
               "it exactly, and a network can at best learn that line again. A forecast is only worth training "
               "where the changes vary."),
    "seasonal": "This series has a season of {period} steps: forecasters that see it do best. ",
    "other": "",
}
# What else the network could be given, unless the run already gives it
MORE = {"features": "related measurements as `features`", "calendar": "date encodings as `calendar`"}


def _advice(kind: dict, given: tuple[str, ...]) -> str:
    if kind["kind"] == "random-walk":
        return ADVICE["random-walk"]
    if kind["kind"] == "linear":
        return ADVICE["linear"].format(step=kind["step"])
    lookback = "a `lookback` that covers at least one season" if kind["kind"] == "seasonal" else "a longer `lookback`"
    more = [text for name, text in MORE.items() if name not in given] + [lookback]
    return (ADVICE.get(kind["kind"], "").format(period=kind.get("period", "")) + "Give the network more to work "
            "with: " + ", ".join(more[:-1]) + (", or " if len(more) > 1 else "") + more[-1] + ".")


def verdict(test: dict[str, dict], network: str, metric: str = "mae", kind: dict | None = None,
            unit: str = "", given: tuple[str, ...] = ()) -> dict:
    """The best forecaster, the best baseline, the network's rank and one paragraph saying so.

    ``test`` maps each forecaster to its test metrics; ``metric`` ranks them (MAE for one
    series, MASE when series in different units are pooled); ``given``: what the run already
    gives the network ("features", "calendar"), which the advice then leaves out."""
    kind = kind or {"kind": "other"}
    usable = {n: m for n, m in test.items() if m.get(metric) is not None and np.isfinite(m[metric])}
    ranking = sorted(usable, key=lambda n: usable[n][metric])
    baselines = [n for n in ranking if n != network]
    best, best_baseline = ranking[0], baselines[0]
    net, ref = usable[network][metric], usable[best_baseline][metric]
    persistence = usable.get("persistence", {}).get(metric)
    pct = percent_better(net, ref)
    label = metric.upper()
    out = {"network": network, "metric": metric, "best": best, "best_baseline": best_baseline,
           "network_rank": ranking.index(network) + 1, "forecasters": len(ranking), "ranking": ranking,
           "network_score": net, "best_baseline_score": ref,
           "ratio_to_best_baseline": net / ref if ref > 0 else None,
           "percent_better_than_best_baseline": pct, "kind": kind}
    if kind["kind"] == "constant":
        value = kind.get("value")
        out["sentence"] = (f"The target is constant ({value:g}) over the training span: there is nothing to learn, "
                           "every forecaster that repeats the last value is exact there, and the errors on the test "
                           "span only measure how far it departs from that constant. Choose another `target`.")
        out["advice"] = ""
        out["outcome"] = "constant"
        return out
    fmt = (lambda v: f"{v:.4g}{unit}") if metric == "mae" else (lambda v: f"{v:.3f}")
    if ref == 0 and net > 0:  # a baseline that is exact leaves no percentage to compare, and nothing to tie with
        outcome = "baseline"
        head = (f"{best} is the best forecaster on the test span: {best_baseline} is exact there ({label} 0), "
                f"{network} is not ({label} {fmt(net)}), and ranks {out['network_rank']} of {len(ranking)}.")
    elif ref == 0 or abs(pct) < TIE:
        outcome = "tie"
        head = (f"{network} ties with the best baseline, {best_baseline}, on the test span: {label} {fmt(net)} vs "
                f"{fmt(ref)}, too close to matter.")
    elif net < ref:
        outcome = "network"
        head = (f"{network} is the best forecaster on the test span: {label} {fmt(net)}, {pct:.1f}% better than "
                f"the best baseline, {best_baseline} ({fmt(ref)}).")
    else:
        outcome = "baseline"
        worse = f"{-pct:.1f}% worse" if net < 10 * ref else f"{net / ref:.3g} times the error of"
        head = (f"{best} is the best forecaster on the test span ({label} {fmt(usable[best][metric])}); "
                f"{network} ranks {out['network_rank']} of {len(ranking)}, {worse}{' than' if '%' in worse else ''} "
                f"{best_baseline}.")
    if persistence is not None and best_baseline != "persistence" and persistence > 0:
        p = percent_better(net, persistence)
        versus = "ties with" if abs(p) < TIE else ("beats" if p > 0 else "loses to")
        head += f" Against persistence alone it {versus} it ({abs(p):.1f}% {'better' if p > 0 else 'worse'})."
    out["outcome"] = outcome
    out["advice"] = _advice(kind, given)
    out["sentence"] = head
    return out


def table(test: dict[str, dict], backtest: dict[str, dict], network: str, metric: str = "mae") -> str:
    """The terminal's table: every forecaster's MAE, RMSE and MASE on the test span and the
    backtest's mean and spread, best first."""
    rows = sorted(test, key=lambda n: (test[n].get(metric) is None, test[n].get(metric) or 0))
    lines = [f"{'forecaster':<18}{'MAE':>11}{'RMSE':>11}{'MASE':>8}   {'backtest MAE (mean ± std)':<26}"]
    for n in rows:
        m, b = test[n], backtest.get(n, {})
        spread = f"{b['mae_mean']:.4g} ± {b['mae_std']:.2g}" if b else ""
        mark = "  <- network" if n == network else ""
        lines.append(f"{n:<18}{_num(m.get('mae')):>11}{_num(m.get('rmse')):>11}{_num(m.get('mase'), 3):>8}   "
                     f"{spread:<26}{mark}")
    return "\n".join(lines)


def _num(value, digits: int = 4) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}" if digits == 3 else f"{value:.{digits}g}"
