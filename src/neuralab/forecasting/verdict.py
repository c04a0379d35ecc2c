"""What a forecasting run says first: which forecaster is best on the test span, by how
much, where the network ranks against the best baseline (not only against persistence),
and advice that fits the kind of series: prices that move like a random walk, series with
a season, or a constant.

A difference is named only where the paired per-window gain lies beyond the critical value
of standard errors for the windows' count (Student's t, or fixed-b's where windows share
targets), at least ``metrics.SIGNIFICANCE`` (``metrics.paired_gain``, ``metrics.critical``);
closer than that, the forecasters tie on this test span, and on fewer than
``metrics.MIN_WINDOWS`` windows that share no target the test span is too short to judge.
Scores equal up to float rounding share a rank.
"""

from __future__ import annotations

import numpy as np

from neuralab.forecasting.baselines import REFERENCE, detect_period
from neuralab.forecasting.metrics import (MIN_WINDOWS, constant, difference, gain_words, independent_windows,
                                          paired_gain, percent_better, tied, too_few)

TIE = 1.0  # percent: without per-window errors to judge by, closer than this is a tie
# The Dickey-Fuller test's 5% critical value with a constant (MacKinnon): a t statistic above
# it cannot tell the series from a random walk, whatever its length or units
UNIT_ROOT_T = -2.86


def character(levels: np.ndarray, target: str, max_period: int) -> dict:
    """The kind of series the training span shows: constant, linear, random-walk-like, seasonal or other."""
    y = np.asarray(levels, dtype=np.float64)
    if len(y) < 3 or constant(y):
        return {"kind": "constant", "value": float(y[0]) if len(y) else None}
    changes = np.diff(y)
    if np.ptp(changes) <= 1e-9 * np.max(np.abs(y)):  # the same step every time: a line, nothing random to walk
        return {"kind": "linear", "step": float(changes.mean())}
    period = detect_period(y, max_period)
    if period > 1:
        return {"kind": "seasonal", "period": period}
    c = changes - changes.mean()
    acf1 = float(c[:-1] @ c[1:] / (c @ c)) if c @ c > 0 else 0.0
    # A random walk: no pull back to a mean (a unit root the Dickey-Fuller test cannot reject),
    # and changes uncorrelated (beyond two standard errors of an autocorrelation, 1/sqrt(n)).
    wandering = dickey_fuller(y) > UNIT_ROOT_T
    pricey = any(w in target.lower() for w in ("close", "price", "open", "high", "low", "adj"))
    if wandering and abs(acf1) < max(0.1, 2 / np.sqrt(len(c))):
        return {"kind": "random-walk", "prices": pricey or bool((y > 0).all()), "acf1_of_changes": acf1}
    return {"kind": "other", "acf1_of_changes": acf1}


def dickey_fuller(y: np.ndarray) -> float:
    """The t statistic of rho in y[t] - y[t-1] = a + rho * y[t-1]: near 0 for a random walk,
    strongly negative for a series pulled back to its mean."""
    y = np.asarray(y, dtype=np.float64)
    x = np.column_stack([np.ones(len(y) - 1), y[:-1] - y[:-1].mean()])
    dy = np.diff(y)
    coef, *_ = np.linalg.lstsq(x, dy, rcond=None)
    resid = dy - x @ coef
    dof = len(dy) - 2
    denom = x[:, 1] @ x[:, 1]
    if dof < 1 or denom == 0:
        return 0.0
    se = np.sqrt(resid @ resid / dof / denom)
    return float(coef[1] / se) if se > 0 else (-np.inf if coef[1] < 0 else 0.0)


ADVICE = {
    "random-walk": ("This series moves like a random walk (its changes are uncorrelated), as prices do: "
                    "persistence is nearly optimal, so a tie with it is the expected result, and a network "
                    "that beats it by a few percent on one test span is more likely luck than skill "
                    "(see the backtest spread)."),
    "linear": ("This series changes by the same step every time ({step:.4g}), a straight line: drift extrapolates "
               "it exactly, and a network can at best learn that line again. A forecast is only worth training "
               "where the changes vary."),
    # what the season offers, not who won: seasonal-naive can rank last on the same test span
    "seasonal": "This series has a season of {period} steps, which a forecaster can use where its window spans one. ",
    "other": "",
}
# What else the network could be given, unless the run already gives it
MORE = {"features": "related measurements as `features`", "calendar": "date encodings as `calendar`"}


def _advice(kind: dict, given: tuple[str, ...], lookback: int | None = None) -> str:
    if kind["kind"] == "random-walk":
        return ADVICE["random-walk"]
    if kind["kind"] == "linear":
        return ADVICE["linear"].format(step=kind["step"])
    head = ADVICE.get(kind["kind"], "").format(period=kind.get("period", ""))
    more = [text for name, text in MORE.items() if name not in given]
    if kind["kind"] != "seasonal":
        more.append("a longer `lookback`")
    elif lookback is None or lookback < kind["period"]:  # a lookback that already spans the season needs no advice
        more.append("a `lookback` that covers at least one season")
    if not more:
        return head.strip()
    return (head + "Give the network more to work with: " + ", ".join(more[:-1]) + (", or " if len(more) > 1 else "")
            + more[-1] + ".")


def verdict(test: dict[str, dict], network: str, metric: str = "mae", kind: dict | None = None,
            unit: str = "", given: tuple[str, ...] = (), errors: dict[str, np.ndarray] | None = None,
            lag: int = 0, lookback: int | None = None) -> dict:
    """The best forecaster, the best baseline, the network's rank and one paragraph saying so.

    ``test`` maps each forecaster to its test metrics; ``metric`` ranks them (MAE for one
    series, MASE when series in different units are pooled); ``given``: what the run already
    gives the network ("features", "calendar"), which the advice then leaves out. ``errors``
    maps each forecaster to its per-window test errors in ``metric``'s units
    (``metrics.window_errors``), windows ``lag`` or fewer apart sharing targets: a winner is
    named only beyond the noise of the paired gain; without them, within ``TIE`` percent is a
    tie. ``lookback``: the network's, against which seasonal advice is given."""
    kind = kind or {"kind": "other"}
    usable = {n: m for n, m in test.items() if m.get(metric) is not None and np.isfinite(m[metric])}
    if not usable and metric != "mae":
        return _unranked(test, network, metric, kind)
    ranking = sorted(usable, key=lambda n: (usable[n][metric], n == network))  # a float tie: the baseline first
    ranks = {n: 1 + sum(usable[m][metric] < usable[n][metric] and not tied(usable[m][metric], usable[n][metric])
                        for m in ranking) for n in ranking}  # equal up to float rounding: the same rank
    baselines = [n for n in ranking if n != network]
    best, best_baseline = ranking[0], baselines[0]
    net, ref = usable[network][metric], usable[best_baseline][metric]
    persistence = usable.get(REFERENCE, {}).get(metric)
    pct = percent_better(net, ref)
    label = metric.upper()
    gains = {n: paired_gain(errors[best_baseline], errors[n], lag) for n in ranking} if errors else {}

    def compare(reference: str, percent: float) -> tuple[int, str]:
        """(+1 clearly better, -1 clearly worse, 0 no clear difference; what it rests on)."""
        if not errors:
            return (0 if abs(percent) < TIE else (1 if percent > 0 else -1)), ""
        g = paired_gain(errors[reference], errors[network], lag)
        return difference(g), f"{gain_words(g, unit if metric == 'mae' else '')}"

    out = {"network": network, "metric": metric, "best": best, "best_baseline": best_baseline,
           "network_rank": ranks[network], "forecasters": len(ranking), "ranking": ranking, "ranks": ranks,
           "network_score": net, "best_baseline_score": ref,
           "ratio_to_best_baseline": net / ref if ref > 0 else None,
           "percent_better_than_best_baseline": pct, "kind": kind,
           "best_baseline_chosen_on": "test", "gains_over_best_baseline": gains,
           # by the measure that ranks, so that it and the verdict never disagree in sign
           "beats_persistence": persistence is not None and bool(net < persistence) and not tied(net, persistence)}
    # Pooled series with a MASE are not all constant, whatever kind most of them share
    if kind["kind"] == "constant" and metric == "mae":
        value = kind.get("value")
        out["sentence"] = (f"The target is constant ({value:g}) over the training span: there is nothing to learn, "
                           "every forecaster that repeats the last value is exact there, and the errors on the test "
                           "span only measure how far it departs from that constant. Choose another `target`.")
        out["advice"] = ""
        out["outcome"] = "constant"
        return out
    fmt = (lambda v: f"{v:.4g}{unit}") if metric == "mae" else (lambda v: f"{v:.3f}")
    # The best baseline is the best of several on the test span itself: a pick made in hindsight
    hindsight = f"the best of {len(baselines)} baselines on the test span itself, a pick made in hindsight"
    side, rests_on = compare(best_baseline, pct)
    why = f": {rests_on}" if rests_on else ""
    short = bool(errors) and too_few(gains[network])
    if short:  # a standard error from a handful of windows means nothing: no better, no worse
        outcome = "too-short"
        n = gains[network]["windows"]
        # Windows that share targets count as the spans that share none: a shorter stride adds
        # windows but no such span
        count = (f"{n} test window{'s' if n != 1 else ''}" if not lag else
                 f"{n} test windows that share targets, worth {independent_windows(gains[network]):.3g} that share none")
        head = (f"The test span is too short to judge: {count}, and a better or worse takes at least "
                f"{MIN_WINDOWS}. {network} has {label} {fmt(net)}; the best baseline, {best_baseline} "
                f"({hindsight}), has {fmt(ref)}. For more test windows give a longer series, a larger "
                f"`test_fraction`, or a smaller {'`horizon` or `stride`' if not lag else '`horizon`'}.")
        # the lookback moves no test target
    elif ref == 0 and net > 0:  # a baseline that is exact leaves no percentage to compare, and nothing to tie with
        outcome = "baseline"
        head = (f"{best} is the best forecaster on the test span: {best_baseline} is exact there ({label} 0), "
                f"{network} is not ({label} {fmt(net)}), and ranks {ranks[network]} of {len(ranking)}.")
    elif ref == 0 or side == 0:
        outcome = "tie"
        head = (f"{network} ties with the best baseline, {best_baseline} ({hindsight}): {label} {fmt(net)} vs "
                f"{fmt(ref)}, no clear difference" + (f" ({rests_on})." if rests_on else ", too close to matter."))
    elif side > 0:
        outcome = "network"
        head = (f"{network} is the best forecaster on the test span: {label} {fmt(net)}, {pct:.1f}% better than "
                f"the best baseline, {best_baseline} ({fmt(ref)}, {hindsight}){why}.")
    else:
        outcome = "baseline"
        worse = f"{-pct:.1f}% worse" if net < 10 * ref else f"{net / ref:.3g} times the error of"
        head = (f"{best} is the best forecaster on the test span ({label} {fmt(usable[best][metric])}); "
                f"{network} ranks {ranks[network]} of {len(ranking)}, {worse}{' than' if '%' in worse else ''} "
                f"{best_baseline} ({hindsight}){why}.")
    out["clearly_beats_persistence"] = outcome == "network" and best_baseline == REFERENCE
    if persistence is not None and best_baseline != REFERENCE and persistence > 0 and not short:
        p = percent_better(net, persistence)
        side, rests_on = compare(REFERENCE, p)
        out["clearly_beats_persistence"] = side > 0
        if side == 0:
            head += f" Against {REFERENCE} alone it shows no clear difference ({abs(p):.1f}% " \
                    f"{'better' if p > 0 else 'worse'}{', ' + rests_on if rests_on else ''})."
        else:
            head += (f" Against {REFERENCE} alone it {'beats' if side > 0 else 'loses to'} it ({abs(p):.1f}% "
                     f"{'better' if p > 0 else 'worse'}{', ' + rests_on if rests_on else ''}).")
    out["outcome"] = outcome
    out["advice"] = _advice(kind, given, lookback)
    out["sentence"] = head
    return out


def _unranked(test: dict[str, dict], network: str, metric: str, kind: dict) -> dict:
    """The verdict where no forecaster has a ``metric`` score: every pooled series is constant
    over its training span, so none has the naive error MASE divides by, and MAE over series
    in different units ranks nothing. The MAE are listed, lowest first, and nothing is ranked."""
    order = sorted((n for n in test if test[n].get("mae") is not None and np.isfinite(test[n]["mae"])),
                   key=lambda n: (test[n]["mae"], n == network))
    baselines = [n for n in order if n != network] or [n for n in test if n != network]
    scores = ", ".join(f"{n} {test[n]['mae']:.4g}" for n in order)
    constant = kind["kind"] == "constant"
    why = "every series is constant over its training span" if constant else "no series has a naive error to scale by"
    sentence = (f"Cannot rank: {why}, so no forecaster has a {metric.upper()}, and MAE pooled over series in "
                f"different units ranks nothing. Scores by MAE, each series in its own units: {scores}."
                + (" Choose another `target`." if constant else ""))
    return {"network": network, "metric": metric, "ranked": False, "best": order[0] if order else network,
            "best_baseline": baselines[0], "network_rank": None, "forecasters": len(test), "ranking": [],
            "ranks": {}, "network_score": None, "best_baseline_score": None, "ratio_to_best_baseline": None,
            "percent_better_than_best_baseline": None, "kind": kind, "best_baseline_chosen_on": "test",
            "gains_over_best_baseline": {}, "beats_persistence": False, "clearly_beats_persistence": False,
            "outcome": "constant" if constant else "unranked", "sentence": sentence, "advice": ""}


def table(test: dict[str, dict], backtest: dict[str, dict], network: str, metric: str = "mae",
          forecasters: dict[str, str] | None = None) -> str:
    """The terminal's table: every forecaster's MAE, RMSE and MASE on the test span and the
    backtest's mean and spread (of ``metric``), best first, then the series the backtest's
    mean left out (``backtest.summarize``), what the backtest's folds are, and a seasonal naive
    forecast that found no season (``forecasters``: each one's description, results.json's)."""
    rows = sorted(test, key=lambda n: (test[n].get(metric) is None, test[n].get(metric) or 0))
    head = f"backtest {metric.upper()} (mean ± std)"
    left_out = next((b["left_out"] for b in backtest.values() if b.get("left_out")), [])
    width = max(18, 2 + max(map(len, rows), default=0))  # a user's module, "torch:net.py:Net", outruns the baselines
    lines = [f"{'forecaster':<{width}}{'MAE':>11}{'RMSE':>11}{'MASE':>8}   {head:<26}"]
    for n in rows:
        m, b = test[n], backtest.get(n, {})
        mean, std = b.get(f"{metric}_mean"), b.get(f"{metric}_std")
        spread = f"{mean:.4g} ± {std:.2g}" if mean is not None and np.isfinite(mean) else ""
        mark = "  <- network" if n == network else ""
        lines.append(f"{n:<{width}}{_num(m.get('mae')):>11}{_num(m.get('rmse')):>11}{_num(m.get('mase'), 3):>8}   "
                     f"{spread:<26}{mark}")
    if left_out:
        # the test span's pooled MASE leaves the same series out (pipeline._pooled)
        lines.append(f"{metric.upper()} pools the series that have one; left out, constant over the training "
                     f"span: {', '.join(left_out)}")
    first = next(iter(backtest.values()), None)
    if first and first.get("refit") is False:  # its folds are the test span's, not earlier spans fitted again
        lines.append("backtest: the test span cut into folds, each forecaster as fitted once (not earlier spans); "
                     "`backtest_refit` fits them again before each fold")
    seasonal = (forecasters or {}).get("seasonal-naive", "")
    if seasonal and all("none detected" in part for part in seasonal.split("; ")):
        lines.append("no season found: seasonal-naive is persistence")
    return "\n".join(lines)


def _num(value, digits: int = 4) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}" if digits == 3 else f"{value:.{digits}g}"
