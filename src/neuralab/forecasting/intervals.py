"""Prediction intervals by split conformal prediction on the validation span.

The network's absolute errors on the validation windows, divided by each window's typical
one-step change (the root mean square of the changes in its input), give one score per
window and step. The interval at level 1 - a is the forecast plus or minus the
ceil((n + 1)(1 - a)) / n quantile of those scores, times the window's own scale: wide
where the series is moving a lot, narrow where it is calm (normalised conformal
prediction, Papadopoulos et al. 2008; Angelopoulos and Bates 2021 for an introduction).
The validation span precedes the test span and the network never trained on it, so the
coverage measured on the test span is an honest check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuralab.forecasting.windows import Windows

LEVELS = (0.8, 0.95)
METHOD = ("split conformal on the validation span: absolute errors scaled by each window's typical one-step "
          "change, one quantile per horizon step")


def window_scale(windows: Windows, floor: float) -> np.ndarray:
    """(N,) root mean square one-step change of each window's input, at least ``floor``."""
    scale = np.empty(len(windows))
    done = 0
    for batch in windows.batches():
        past = batch.past
        scale[done:done + len(batch)] = np.sqrt(np.mean(np.diff(past, axis=1) ** 2, axis=1)) if past.shape[1] > 1 \
            else 0.0
        done += len(batch)
    return np.maximum(scale, floor)


@dataclass
class Conformal:
    levels: tuple[float, ...]
    quantiles: dict[float, np.ndarray]  # level -> (H,) score quantile per step
    calibration: int                    # validation windows used

    @classmethod
    def calibrate(cls, parts: list[tuple[Windows, np.ndarray, float]], levels=LEVELS) -> "Conformal | None":
        """From (validation windows, forecasts, scale floor) of each series; None without any."""
        scores = [np.abs(w.future - p) / window_scale(w, floor)[:, None] for w, p, floor in parts if len(w)]
        if not scores:
            return None
        s = np.concatenate(scores)                                    # (N, H)
        n = len(s)
        quantiles = {}
        for level in levels:
            rank = min(1.0, np.ceil((n + 1) * level) / n)             # the finite-sample correction
            quantiles[level] = np.quantile(s, rank, axis=0, method="higher")
        return cls(tuple(levels), quantiles, n)

    def bounds(self, windows: Windows, pred: np.ndarray, floor: float) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        """level -> (lower, upper), each (N, H) in original units."""
        width = window_scale(windows, floor)[:, None]
        return {a: (pred - q * width, pred + q * width) for a, q in self.quantiles.items()}

    def coverage(self, parts: list[tuple[Windows, np.ndarray, float]]) -> dict[str, dict]:
        """The fraction of test targets inside each interval, overall and by step."""
        out = {}
        for level in self.levels:
            inside = []
            for w, p, floor in parts:
                if len(w):
                    lower, upper = self.bounds(w, p, floor)[level]
                    inside.append((w.future >= lower) & (w.future <= upper))
            hits = np.concatenate(inside) if inside else np.zeros((0, 1), bool)
            out[label(level)] = {"nominal": level, "coverage": float(hits.mean()) if hits.size else None,
                                 "by_step": hits.mean(0).tolist() if hits.size else []}
        return out


def label(level: float) -> str:
    """0.8 -> "80": the name of a level in results and column names."""
    return f"{100 * level:g}"
