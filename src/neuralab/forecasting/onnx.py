"""A forecaster run as one ONNX file that forecasts in the series' own units.

The network computes on scaled, transformed windows; a user of the file has the rows of a
CSV. So the graph holds what neuralab does around the network (``forecasting.windows``):
the target's transform (differences, log returns), the run's scaling, the network, and the
decoding of its outputs back to levels (scale, then cumulative sums from the window's last
value, exponentiated for log returns). It is checked against neuralab's own forecasts on
windows of the run's data before it is written (``training.export`` writes and checks graphs).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neuralab.errors import NeuralabError
from neuralab.forecasting.windows import Codec, Scaler, Source, WindowConfig, Windows, model_inputs
from neuralab.runs import MODEL
from neuralab.training.checkpoint import unwrap

CHECKED_WINDOWS = 7  # the traced batch, spread over the series (low and high levels); then its last window alone
# The largest difference from neuralab's forecasts the graph may make, as a share of the series' mean one-step
# change where it changes (about persistence's error, and a forecast's): a level of 1e9 swinging by 10 is rounded
# by float32 to steps of 64, and 1e-5 of the level lets that by; a meter near 250,000 rising 0.4 an hour is rounded
# to 0.016, a few percent of its changes, which no forecast's error would notice. Steps where it does not change
# are left out: float32 keeps a flat stretch flat, and a tank held at 100,000 for days, then raised by 3, would
# have a mean change below float32's step there (0.008), which holds its rise of 3 to a fraction of a percent
SIGNAL_SHARE = 0.1


class InUnits(nn.Module):
    """A forecasting network between rows as the data holds them and forecasts in the
    target's units: (B, rows, C) -> (B, H), ``rows`` = lookback, + 1 for a differenced target
    (its first change needs the row before). The arithmetic around the network is float64,
    as neuralab's: a price of 4,000 keeps its cents through the differences."""

    def __init__(self, network: nn.Module, scaler: Scaler, transform: str):
        super().__init__()
        # A user's network unwrapped: WindowNetwork reshapes by len(x), which a trace keeps as a constant;
        # a torch.compile()d one's own module, which a trace can follow
        self.network = unwrap(getattr(network, "net", network)).eval()
        self.transform = transform
        self.register_buffer("center", torch.tensor(scaler.center, dtype=torch.float64))  # (C,)
        self.register_buffer("scale", torch.tensor(scaler.scale, dtype=torch.float64))    # (C,)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        x = windows.double()                                                # (B, rows, C)
        level = x[:, :, 0]                                                  # (B, rows)
        if self.transform == "none":
            target, others = level, x[:, :, 1:]
        else:
            series = level.log() if self.transform == "log-return" else level
            target, others = series[:, 1:] - series[:, :-1], x[:, 1:, 1:]   # (B, L), (B, L, C-1)
        inputs = torch.cat([target.unsqueeze(-1), others], dim=-1)          # (B, L, C)
        scaled = ((inputs - self.center) / self.scale).float()
        out = self.network(scaled).reshape(scaled.shape[0], -1).double()    # (B, H) in model space
        z = out * self.scale[0] + self.center[0]
        if self.transform == "diff":
            z = level[:, -1:] + z.cumsum(1)
        elif self.transform == "log-return":
            z = level[:, -1:] * z.cumsum(1).exp()
        return z.float()


def export_onnx(run_dir: str | Path, out: str | Path | None = None, rtol: float = 1e-5,
                trust_code: bool = False, model=None) -> tuple[Path, float]:
    """Write a forecaster run's ``model.onnx`` and return its path and the largest difference,
    in the target's units, between onnxruntime's forecasts and neuralab's (``load_forecaster``)
    on windows of the run's data, at batches of 7 and 1; above ``rtol`` times the largest
    forecast (at least 1), or above SIGNAL_SHARE of the target's mean one-step change where it
    changes (the series' own variation, which float32 cannot carry at a level far above it),
    nothing is written. Input ``windows``: (N, rows, inputs) float32, the
    last ``rows`` rows of the data as the CSV holds them, columns in the order of the metadata
    ``columns`` (target first); output ``forecast``: (N, horizon) float32 in the target's units.
    ``out`` as training.export.export_onnx's (weights past protobuf's 2 GiB beside it, in FILE.data);
    ``trust_code`` runs the run's copy of its PyTorch code; ``model``: for a run whose PyTorch
    module it cannot rebuild, that module given again (as load_forecaster's).
    A run that did not finish is refused (``RunNotFinished``): its weights are not yet its forecaster."""
    from neuralab.forecasting.finished import load_forecaster, refuse_unfinished
    from neuralab.runs import Kind, Run
    from neuralab.training.export import (
        check_tolerance,
        described,
        destination,
        largest_difference,
        outputs,
        require_onnxruntime,
        staged,
        traced,
        write,
    )

    check_tolerance(rtol, "rtol", "the largest forecast")
    run_dir = Path(run_dir)
    refuse_unfinished(Run.open(run_dir, Kind.FORECASTER))  # a file carries no sign of an unfinished run
    onnxruntime = require_onnxruntime()
    out = destination(run_dir, out)
    forecaster = load_forecaster(run_dir, trust_code, model)  # refuses another kind of run, and code not trusted
    meta = forecaster.meta
    if "scalers" in meta:
        # the training's `where` picks the one series; an interface names it as its training does (--where)
        pick = shlex.quote(f"{meta.get('series_column') or 'COLUMN'}={next(iter(meta['scalers']))}")
        raise NeuralabError(f"{run_dir}: trained on {len(meta['scalers'])} series, each scaled on its own, and one "
                            "graph holds one scaling; train on one series to export it: pick it with `where` "
                            f"{pick} in training")
    scaler, transform, lookback = _settings(meta, run_dir)
    raw, expected, change = _checks(run_dir, forecaster, scaler, transform, lookback)
    module = InUnits(forecaster.network, scaler, transform)
    with staged(out, module) as staging:
        graph = traced(module, torch.from_numpy(raw), "windows", "forecast", run_dir, staging)
        graph = described(graph, _props(meta, transform, lookback, raw.shape[1]),
                          f"neuralab forecaster {meta.get('architecture')} of {meta['target']}")
        got = outputs(onnxruntime, graph, "windows", [raw, raw[-1:]], run_dir)
        diff = largest_difference(got, [expected, expected[-1:]], run_dir)
        level = float(np.abs(expected).max())
        limit = rtol * max(1.0, level)
        if not diff <= limit:  # NaN too
            raise NeuralabError(f"{out}: ONNX forecasts differ from neuralab's by {diff:.2e} (> {limit:.2e}, rtol "
                                f"{rtol} of the largest forecast){graph.why()}; export refused, nothing written")
        if change > 0 and diff > SIGNAL_SHARE * change:  # within rtol of the level, yet as large as its changes
            raise NeuralabError(
                f"{out}: ONNX forecasts differ from neuralab's by {diff:.2e}, {diff / change:.2g} times the mean "
                f"one-step change of {meta['target']} where it changes ({change:.3g}): the graph takes and gives "
                f"float32, which at its level ({level:.4g}) holds steps of {float(np.spacing(np.float32(level))):.3g}; "
                "export refused, nothing written; forecast with the run itself (predict_run), or train on the target "
                "less a constant near its level, so that float32 holds its changes")
        write(out, graph)
    return out, diff


def _settings(meta: dict, run_dir: Path) -> tuple[Scaler, str, int]:
    """The scaler, transform and lookback model.json records, checked against its inputs."""
    path = run_dir / MODEL
    try:  # the window's settings as predict_run reads them: a field an older run lacks takes its default
        scaler, windows = Scaler(**meta["scaler"]), WindowConfig(**meta["windows"])
        sizes = {len(scaler.center), len(scaler.scale), len(meta["columns"]), meta["inputs"]}
        numbers = np.asarray([*scaler.center, *scaler.scale], dtype=np.float64)
    except KeyError as e:  # load_forecaster checked the network's fields, not these
        raise NeuralabError(f"{path}: field {e} is missing; the file is not the one neuralab wrote") from None
    except (TypeError, ValueError):  # a field of another kind, or one WindowConfig or Scaler does not know
        raise NeuralabError(f"{path}: its 'windows' or 'scaler' fields are not the ones neuralab writes; the file "
                            "is damaged or from another version") from None
    if len(sizes) != 1 or not np.isfinite(numbers).all() or windows.transform not in ("none", "diff", "log-return"):
        raise NeuralabError(f"{path}: its scaler, columns and transform do not fit its {meta['inputs']} inputs; the "
                            "file is damaged or not neuralab's")
    return scaler, windows.transform, windows.lookback


def _checks(run_dir: Path, forecaster, scaler: Scaler, transform: str,
            lookback: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Windows of the run's own data as the graph takes them, (N, rows, C) float32,
    neuralab's forecasts from them, (N, H): the last window of the series among them, and the
    target's mean one-step change over the series where it changes (``_mean_change``), its own variation."""
    from neuralab.forecasting.pipeline import recorded_data, load, stored_config
    from neuralab.runs import Kind, Run

    run = Run.open(run_dir, Kind.FORECASTER)
    series = load(replace(stored_config(run), data=recorded_data(run, "the export checks its graph on")))[0]
    inputs, levels, offset = model_inputs(series.values, transform, series.target)
    with np.errstate(over="ignore"):  # the run was trained on these rows: they scale as they did
        scaled = scaler.transform(inputs).astype(np.float32)
    starts = np.unique(np.linspace(0, len(inputs) - lookback, CHECKED_WINDOWS).round().astype(np.int64))
    windows = Windows(Source(scaled, levels, series.times[offset:].to_numpy(), offset), starts, lookback,
                      forecaster.horizon_, Codec(scaler, transform))
    expected = forecaster.predict(windows)
    raw = np.stack([series.values[s:s + offset + lookback] for s in starts]).astype(np.float32)
    return raw, expected, _mean_change(series.values[:, 0])


def _mean_change(levels) -> float:
    """The mean size of a series' one-step changes over the steps where it changes; 0 for a
    constant series."""
    steps = np.abs(np.diff(np.asarray(levels, dtype=np.float64)))
    steps = steps[steps > 0]
    return float(steps.mean()) if steps.size else 0.0


def _props(meta: dict, transform: str, lookback: int, rows: int) -> dict[str, str]:
    """What a user of the file alone needs: which rows and columns go in, what comes out."""
    columns, target, horizon = meta["columns"], meta["target"], meta["horizon"]
    return {
        "target": target,
        "columns": json.dumps(columns),
        "lookback": str(lookback),
        "rows": str(rows),
        "horizon": str(horizon),
        "transform": transform,
        "frequency": str(meta.get("series", {}).get("frequency", "")),
        "windows": f"(N, {rows}, {len(columns)}) float32: the last {rows} rows of the data, oldest first, the values "
                   "as the CSV holds them, columns in the order of columns (the target first)"
                   + (f"; one row more than lookback {lookback}: the target's first {transform} needs the row "
                      "before it" if rows > lookback else "")
                   + ("; the columns NAME_sin and NAME_cos are date encodings no CSV holds: "
                      "neuralab.data.series.add_calendar(frame, calendar) adds them to a frame indexed by date, "
                      "the dates as neuralab.data.series.load_series reads them (times with UTC offsets in UTC, "
                      "but for a series all at local midnight, whose local dates are kept)"
                      if meta.get("calendar") else ""),
        "forecast": f"(N, {horizon}) float32: {target} at the {horizon} steps after each window's last row, in its "
                    "units",
        "calendar": json.dumps(meta.get("calendar", [])),
    }
