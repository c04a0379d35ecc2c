"""The forecasting network: the workshop's recurrent stack inside a recipe that starts
from what the simple forecasts already get.

The workshop's Keras model::

    model.add(LSTM(128, return_sequences=True, input_shape=(x_train.shape[1], 1)))
    model.add(LSTM(64, return_sequences=False))
    model.add(Dense(1))

is ``lstm-stacked``: ``features`` are the recurrent layers (every layer but the last
returns its whole sequence), ``head`` is the Dense layer, which emits the whole horizon at
once (many-to-one for horizon 1, many-to-many for horizon H).

With ``recipe="residual"`` (the default) three things change around that network, each
from a forecaster that holds up on series it has never seen:

- **relative to an anchor** (N-BEATS' residual forecasting, NLinear): the network predicts
  the departure from the last observed value (or from "no change" when the target is a
  difference or a return), so that a zero output is persistence;
- **normalised per window** (reversible instance normalisation, Kim et al. 2022, and
  DeepAR's scaling): the target's departures are divided by the window's typical one-step
  change, and the output multiplied back, so that prices far outside the training range
  look like the prices the network learned on;
- **a linear path beside the recurrent one** (LSTNet's highway and autoregressive
  component, Lai et al. 2018, arXiv:1703.07015): a Dense layer from the normalised target
  window to the horizon, and one from the whole scaled window (every input column), while
  the recurrent head starts at zero.

Before training, the linear path is set to whichever start forecasts the validation span
best: least squares on the normalised windows, the linear-ar baseline's least squares on
the scaled windows (the same forecasts as that baseline), or nothing (persistence, or no
change). So the network starts from the best of what persistence and linear
autoregression get, and training teaches the recurrent layers what is left. If no epoch
improves on that start on the validation span, the start is kept and the report says so.
``recipe="plain"`` is the workshop's network alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from neuralab.errors import ParameterError
from neuralab.forecasting.base import Forecaster
from neuralab.forecasting.config import ARCHITECTURES, RECIPES, ModelConfig, series_train_config  # noqa: F401  importable here too
from neuralab.forecasting.metrics import MIN_WINDOWS, critical, difference, paired_gain, too_few
from neuralab.forecasting.baselines import departure_terms, no_change, ridge_solve
from neuralab.forecasting.topologies import CELLS, KERAS_NAMES, keras_init, keras_name
from neuralab.forecasting.windows import Windows
from neuralab.models.summary import keras_count, keras_differences
from neuralab.runs import WEIGHTS
from neuralab.training.config import Diverged

class ForecastNetwork(nn.Module):
    """(B, L, C) windows -> (B, H) forecasts in model space (scaled, transformed).

    ``x`` may also be (B,) start rows into the ``source`` attached with ``attach``: each
    batch of windows is then gathered when it is used, so a training set of millions of
    windows is never copied (the trainer batches by indexing whatever it is given).
    """

    def __init__(self, cell: str, inputs: int, hidden: list[int], horizon: int, lookback: int,
                 dropout: float = 0.2, recipe: str = "residual", level: bool = True, zero: float = 0.0):
        super().__init__()
        widths = [inputs, *hidden]
        self.features = nn.ModuleList(CELLS[cell](a, b, batch_first=True) for a, b in zip(widths, widths[1:]))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden[-1], horizon)
        self.recipe, self.lookback = recipe, lookback
        self.level = level  # the target is a level (anchor: its last value), else a change (anchor: zero)
        self.zero = zero    # "no change" in model space: the scaled 0 of a differenced target
        if recipe == "residual":
            self.highway = nn.Linear(lookback, horizon)        # normalised target window -> horizon
            self.ar = nn.Linear(lookback * inputs, horizon)    # scaled window, every column -> horizon
            for p in (*self.head.parameters(), *self.highway.parameters(), *self.ar.parameters()):
                nn.init.zeros_(p)                              # fit sets the linear path; the head starts at 0
        self.source: torch.Tensor | None = None

    def attach(self, source: np.ndarray) -> None:
        """The (T, C) array that (B,) start rows index; shared with NumPy, not copied."""
        device = self.head.weight.device
        self.source = torch.from_numpy(source).to(device) if source is not None else None

    def gather(self, starts: torch.Tensor) -> torch.Tensor:
        rows = starts[:, None] + torch.arange(self.lookback, device=starts.device)  # (B, L)
        return self.source[rows]                                                    # (B, L, C)

    def normalise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The target channel as departures from its anchor in units of the window's typical
        one-step change (a window of one value, which shows none: in model space's units, scale 1):
        (B, L) normalised target, (B,) anchor, (B,) scale."""
        target = x[:, :, 0]                                                      # (B, L)
        if self.level:
            anchor, steps = target[:, -1], target.diff(dim=1)                    # (B,), (B, L-1)
        else:
            anchor, steps = torch.full_like(target[:, -1], self.zero), target - self.zero
        if steps.shape[1] == 0:  # a lookback of 1 shows no step: departures stay in model space's own units
            return target - anchor[:, None], anchor, torch.ones_like(anchor)
        scale = steps.pow(2).mean(1).add(1e-6).sqrt()  # root mean square step; a flat window stays finite
        return (target - anchor[:, None]) / scale[:, None], anchor, scale

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """The linear path alone (the forecast before the first update), (B, H) in model space."""
        z, anchor, scale = self.normalise(x)
        return anchor[:, None] + scale[:, None] * self.highway(z) + self.ar(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            x = self.gather(x)
        if self.recipe == "plain":
            h = x
        else:
            z, anchor, scale = self.normalise(x)
            h = torch.cat([z.unsqueeze(-1), x[:, :, 1:]], dim=-1)                # (B, L, C)
        for layer in self.features:
            h, _ = layer(h)            # (B, L, h): return_sequences=True
            h = self.dropout(h)
        out = self.head(h[:, -1])      # the last step's state (B, h) -> (B, H)
        if self.recipe == "plain":
            return out
        return anchor[:, None] + scale[:, None] * (out + self.highway(z)) + self.ar(x.flatten(1))  # (B, H)


TRAINING_COPIES = 4  # float32 weights, their gradients and Adam's two moments


def parameter_count(config: ModelConfig, inputs: int, horizon: int, lookback: int) -> int:
    """The parameters ``build_network`` would make, counted on the meta device: nothing is allocated."""
    with torch.device("meta"):
        network = build_network(config, inputs, horizon, lookback, check_memory=False)
    return sum(p.numel() for p in network.parameters())


def normal_equation_bytes(lookback: int, inputs: int) -> int:
    """Memory of the least squares behind the linear start and the linear-ar baseline: the
    (L + 1) and (L*C + 1) square Gram matrices in float64, each held about three times
    (the sum, the ridge and the sum with the ridge that is solved)."""
    return 3 * 8 * ((lookback + 1) ** 2 + (lookback * inputs + 1) ** 2)


def refuse_oversized(config: ModelConfig, inputs: int, horizon: int, lookback: int, free: int | None) -> None:
    """A network whose training cannot fit in ``free`` bytes is refused by name before it is built."""
    n = parameter_count(config, inputs, horizon, lookback)
    need = 4 * n * TRAINING_COPIES
    if free is not None and need > free:
        why = (f"{n:,} parameters would need about {need / 2**30:,.1f} GiB to train (weights, gradients and the "
               f"optimizer's state) and {free / 2**30:.1f} GiB is available")
        if 2 * parameter_count(config, inputs, 1, lookback) < n:  # most of them are outputs, one set per step
            raise ParameterError("horizon", horizon, f"{why}; use a shorter `horizon`")
        raise ParameterError("hidden", ",".join(map(str, config.sizes)), f"{why}; use smaller sizes")


def build_network(config: ModelConfig, inputs: int, horizon: int, lookback: int, level: bool = True,
                  zero: float = 0.0, check_memory: bool = True) -> ForecastNetwork:
    """The network, refused by name first when its training cannot fit in the free memory
    (``check_memory`` False: built on the meta device, where nothing is allocated)."""
    from neuralab.data import tables

    config.check()
    if check_memory:
        refuse_oversized(config, inputs, horizon, lookback, tables.available_memory())
    model = ForecastNetwork(config.cell, inputs, config.sizes, horizon, lookback, config.dropout, config.recipe,
                            level, zero)
    return keras_init(model) if config.init == "keras" else model


def summary(model: ForecastNetwork, lookback: int) -> str:
    """Keras-style layer table: output shapes for a (batch, lookback, inputs) window."""
    rows, total = [], 0
    for layer in model.features:
        n = sum(p.numel() for p in layer.parameters())
        rows.append((f"{keras_name(layer)}({layer.hidden_size})", f"(batch, {lookback}, {layer.hidden_size})", n))
        total += n
    rows[-1] = (rows[-1][0], f"(batch, {model.head.in_features})  last step", rows[-1][2])
    for name, layer, note in (("Dense", model.head, ""), ("Dense", getattr(model, "highway", None), "  linear path"),
                              ("Dense", getattr(model, "ar", None), "  linear path")):
        if layer is not None:
            n = sum(p.numel() for p in layer.parameters())
            rows.append((f"{name}({layer.out_features})", f"(batch, {layer.out_features}){note}", n))
            total += n
    lines = [f"{'layer':<16}{'output shape':<34}{'parameters':>12}"]
    lines += [f"{a:<16}{b:<34}{c:>12,}" for a, b, c in rows]
    lines.append(f"{'total':<50}{total:>12,}")
    keras = keras_count(model)[0]
    if keras != total:  # Keras's names above, PyTorch's counts: the slide's model.summary() gives fewer
        lines.append(f"Keras counts {keras:,}, PyTorch {total:,}: "
                     + "; ".join(keras_differences(type(m).__name__ for m in model.modules())))
    if model.recipe == "residual":
        lines.append("forecast = last value (or no change) + window scale x (Dense head + normalised linear path) "
                     "+ linear path")
    return "\n".join(lines)


class NetworkForecaster(Forecaster):
    """A recurrent network trained on neuralab's trainer, behind the forecaster contract.

    ``fit`` builds the network for the windows' shape, seeds (the caller's generators come back
    after), sets the linear path by least squares and trains with early stopping on ``val``;
    ``predict`` decodes the outputs to
    original units. With a ``run_dir`` the trainer leaves checkpoints, metrics.jsonl and
    model.safetensors there (``meta`` goes into the weights' header).
    """

    def __init__(self, model: ModelConfig | None = None, train=None, run_dir: str | Path | None = None,
                 meta: dict | None = None, verbose: bool = False):
        self.model_config = model or ModelConfig()
        self.train_config = train or series_train_config()
        self.run_dir, self.meta, self.verbose = run_dir, meta, verbose
        self.name = self.model_config.architecture
        self.network: ForecastNetwork | None = None
        self.trainer = None
        self.history: list[dict] = []
        self.kept_start = False  # no epoch beat the linear start on the validation span
        self.start_ = ""         # which linear start forecast the validation span best
        self.gain: dict = {}     # the trained network's validation gain over its start (validation_gain)
        self._memo: list = []    # (source, sorted start rows, outputs) of the fitted network: predict_scaled
        self.resume = False      # fit goes on from the run's last checkpoint (resume_forecast)

    def build(self, windows: Windows) -> ForecastNetwork:
        """The network for ``windows``' shape and transform, on a seeded trainer."""
        from neuralab.training.seeds import seed_everything
        from neuralab.training.trainer import REGRESSION, Trainer

        seed_everything(self.train_config.seed)
        self._memo = []
        level, zero = no_change(windows.codec)
        self.network = build_network(self.model_config, windows.source.scaled.shape[1], windows.horizon,
                                     windows.lookback, level, zero)
        self.trainer = Trainer(self.network, self.train_config, REGRESSION, self.run_dir, self.meta,
                               verbose=self.verbose)
        return self.network

    def fit(self, train: Windows, val: Windows | None = None) -> "NetworkForecaster":
        """Forecaster.fit; the generators ``build`` seeds are put back as the caller had them after."""
        from neuralab.training.seeds import generators_kept

        with generators_kept():
            return super().fit(train, val)

    def _fit(self, train: Windows, val: Windows | None) -> None:
        if self.network is None:
            self.build(train)
        net = self.network
        net.attach(train.source.scaled)
        if net.recipe == "residual":
            self._linear_start(train, val)
        starts = _starts(train)
        val_set = (_starts(val), torch.tensor(val.y)) if val is not None else None
        start_state = {k: v.clone() for k, v in net.state_dict().items()}
        judged = val is not None and net.recipe == "residual"
        self._memo = []
        start_errors = _window_errors(self._outputs(val), val.y) if judged else None
        net.attach(train.source.scaled)
        try:
            self.history = self.trainer.fit(starts, torch.tensor(train.y), val=val_set, resume=self.resume)  # (N, H)
        except Diverged as e:  # the trainer stopped at the first epoch whose loss is not finite
            if not judged:
                raise Diverged(self.train_config.lr, e.epoch, fix=_lower_or_clip(self.train_config)) from None
            self.history = self.trainer.history  # NaN weights: the gain below is NaN, and the start is kept
        if judged:
            self.gain = validation_gain(start_errors, _window_errors(self.predict_scaled(val), val.y))
            # the verdict's rule: a gain within the noise of a short span (Seattle's 219 days: 0.3% on validation,
            # then 2.2% worse than linear AR on the test span), or over too few windows to tell, is more often
            # luck than skill, and the start is what the baselines already vouch for
            if difference(self.gain) != 1:  # NaN too: a diverged network
                net.load_state_dict(start_state)  # training did not beat the start by more than noise
                self.kept_start = True
                self._memo = []
        elif not np.isfinite(self.predict_scaled(val if val is not None else train)).all():
            raise Diverged(self.train_config.lr, sign="the network's forecasts are not finite numbers",
                           fix=_lower_or_clip(self.train_config))
        if self.kept_start:
            if self.run_dir is not None:
                from neuralab.training.checkpoint import save_weights

                save_weights(Path(self.run_dir) / WEIGHTS, net, {**self.trainer.model_meta, "epoch": 0})
        net.attach(None)

    @torch.no_grad()
    def _linear_start(self, train: Windows, val: Windows | None) -> None:
        """Set the linear path to the start that forecasts ``val`` best (mean squared error in
        model space, the training loss): least squares on normalised windows, the linear-ar
        baseline's least squares on scaled windows, or nothing (persistence)."""
        net = self.network
        device = net.head.weight.device
        normal_gram, normal_moment, gram, moment = 0.0, 0.0, 0.0, 0.0
        for batch in train.batches():
            x = torch.tensor(batch.x, device=device)                                   # one batch's copy
            z, anchor, scale = net.normalise(x)
            y = torch.tensor(batch.y).to(z)
            a = torch.cat([z, torch.ones(len(z), 1, device=device)], 1).double().cpu().numpy()        # (B, L + 1)
            normal_gram = normal_gram + a.T @ a
            normal_moment = normal_moment + a.T @ ((y - anchor[:, None]) / scale[:, None]).double().cpu().numpy()
            g, m = departure_terms(batch, net.level, net.zero)  # the linear-ar baseline's own sums
            gram, moment = gram + g, moment + m
        n = len(train)
        normalised, scaled = ridge_solve(normal_gram, normal_moment, 1e-3 * n), ridge_solve(gram, moment, 1e-3 * n)
        h = net.head.out_features
        starts = {
            "least squares on normalised windows": (normalised, np.zeros_like(scaled)),
            "the linear-ar baseline's least squares": (np.zeros_like(normalised), scaled),
            "persistence" if net.level else "no change": (np.zeros((normalised.shape[0], h)), np.zeros_like(scaled)),
        }
        losses = {}
        for name, (first, second) in starts.items():
            self._set_linear(first, second)
            losses[name] = self._linear_loss(val if val is not None else train)
        self.start_ = min(losses, key=losses.get)
        self._set_linear(*starts[self.start_])

    def _set_linear(self, normalised: np.ndarray, scaled: np.ndarray) -> None:
        net = self.network
        for layer, coef in ((net.highway, normalised), (net.ar, scaled)):
            layer.weight.copy_(torch.from_numpy(coef[:-1].T).to(layer.weight))
            layer.bias.copy_(torch.from_numpy(coef[-1]).to(layer.bias))

    def _linear_loss(self, windows: Windows) -> float:
        total = 0.0
        for batch in windows.batches():
            x = torch.tensor(batch.x, device=self.network.head.weight.device)
            total += float((self.network.linear(x) - torch.tensor(batch.y).to(x)).pow(2).sum())
        return total / max(1, windows.y.size)

    @torch.no_grad()
    def linear_errors(self, train: Windows, vals: list[Windows]) -> list[float]:
        """The MAE on each of ``vals``, in original units, of the linear path fitted on
        ``train``: what this network starts from, and the cheap judge of a target transform."""
        if self.network is None:
            self.build(train)
        self._linear_start(train, Windows.pool(vals) if len(vals) > 1 else vals[0])
        maes = []
        for val in vals:
            total = 0.0
            for batch in val.batches():
                x = torch.tensor(batch.x, device=self.network.head.weight.device)
                total += np.abs(batch.decode(self.network.linear(x).double().cpu().numpy()) - batch.future).sum()
            maes.append(float(total / max(1, val.future.size)))
        return maes

    def predict_scaled(self, windows: Windows) -> np.ndarray:
        """Raw network outputs (N, H) in model space. The fitted network's outputs are kept
        per source and start row: the evaluation, the intervals and a backtest without refit
        ask again for windows already forecast (each a recurrent pass over `lookback` steps)."""
        starts = np.asarray(windows.starts)
        for source, known, out in getattr(self, "_memo", []):
            if source is windows.source.scaled:
                at = np.searchsorted(known, starts).clip(0, max(0, len(known) - 1))
                if len(known) and (known[at] == starts).all():
                    return out[at]
        out = self._outputs(windows)
        order = np.argsort(starts, kind="stable")
        self._memo = [*getattr(self, "_memo", [])[-7:], (windows.source.scaled, starts[order], out[order])]
        return out

    def _outputs(self, windows: Windows) -> np.ndarray:
        self.network.attach(windows.source.scaled)
        try:
            return self.trainer.predict(_starts(windows)).numpy().astype(np.float64)
        finally:
            self.network.attach(None)

    def _predict(self, windows: Windows) -> np.ndarray:
        return windows.decode(self.predict_scaled(windows))

    def params(self) -> dict:
        return {"model": self.model_config, "train": self.train_config}

    def __repr__(self) -> str:
        """What it forecasts, as far as it knows: a loaded run's target, and the lookback and
        horizon once built or fitted, and the budget it trains (or was trained) with: a loaded
        run's own, not the defaults (``describe`` says what the network is)."""
        meta = self.meta if isinstance(self.meta, dict) else {}
        lookback = getattr(self.network, "lookback", None) or (meta.get("windows") or {}).get("lookback")
        t = self.train_config
        known = {"target": meta.get("target"), "lookback": lookback, "horizon": self.horizon_ or meta.get("horizon"),
                 "epochs": t.epochs, "batch_size": t.batch_size, "lr": t.lr}
        shown = [f"{k}={v!r}" for k, v in known.items() if v is not None]
        if self.network is not None:
            shown.append(f"{sum(p.numel() for p in self.network.parameters()):,} parameters")
        return f"{type(self).__name__}({', '.join([repr(self.name), *shown, *([] if self.horizon_ else ['not fitted'])])})"

    def describe(self) -> str:
        sizes = "-".join(map(str, self.model_config.sizes))
        cell = KERAS_NAMES[self.model_config.cell]
        n = sum(p.numel() for p in self.network.parameters()) if self.network is not None else 0
        recipe = " + linear path, anchored and normalised per window" if self.model_config.recipe == "residual" else ""
        start = f"; started from {self.start_}" if self.start_ else ""
        kept = (f", which training did not beat on the validation span by more than noise "
                f"({_gain_words(self.gain)}): kept") if self.kept_start else ""
        return f"{self.name} ({cell} {sizes} -> Dense{recipe}, {n:,} parameters{start}{kept})"


def _lower_or_clip(train) -> str:
    """What to do about a diverged network: clipping tames an LSTM's exploding gradients."""
    return "lower it" + ("" if train.grad_clip else " or clip gradients with `grad_clip` 1")


def _window_errors(outputs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N,) each window's mean squared error in model space (the training loss)."""
    return ((outputs - np.asarray(y, dtype=np.float64)) ** 2).mean(1)


def validation_gain(start: np.ndarray, trained: np.ndarray) -> dict:
    """How much lower the trained network's per-window validation errors are than its
    start's: the mean gain, its standard error (paired windows), both in percent of the
    start's loss too, and ``noise``: the standard errors it must lie beyond to replace the start
    (``metrics.critical``; on fewer than ``metrics.MIN_WINDOWS`` windows nothing replaces it)."""
    gain = paired_gain(start, trained)  # the verdict's arithmetic, without its correction for overlapping windows
    del gain["lag"]
    return {**gain, "noise": critical(gain["windows"])}


def _gain_words(gain: dict) -> str:
    if not gain or gain["percent"] is None:
        return "no epoch improved on it"
    pct, se = gain["percent"], gain["standard_error_percent"]
    change = f"{pct:.2f}% lower loss" if pct > 0 else f"{-pct:.2f}% higher loss"
    if too_few(gain):
        return f"{change} over {gain['windows']} validation windows, too few to judge (at least {MIN_WINDOWS})"
    noise = gain["noise"]
    return change + (f" against {noise:.3g} standard errors, {noise * se:.2f}%" if se is not None else "")


def _starts(windows: Windows) -> torch.Tensor:
    """(N,) int64 start rows: what the trainer batches instead of (N, L, C) copies."""
    return torch.as_tensor(np.asarray(windows.starts, dtype=np.int64))
