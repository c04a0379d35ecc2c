"""Recurrent forecasters: SimpleRNN, LSTM, GRU, and the workshop's stacked LSTM.

The workshop's Keras model::

    model.add(LSTM(128, return_sequences=True, input_shape=(x_train.shape[1], 1)))
    model.add(LSTM(64, return_sequences=False))
    model.add(Dense(1))

is ``lstm-stacked``: ``features`` are the recurrent layers (every layer but the last
returns its whole sequence), ``head`` is the Dense layer. The head emits the whole
horizon at once, so one model is many-to-one (horizon 1) or many-to-many (horizon H).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neuralab.errors import ParameterError
from neuralab.forecasting.base import Forecaster
from neuralab.forecasting.topologies import keras_init
from neuralab.forecasting.windows import Windows

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
CELL_NAMES = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}

# architecture -> (cell, default hidden sizes)
ARCHITECTURES: dict[str, tuple[str, tuple[int, ...]]] = {
    "lstm-stacked": ("lstm", (128, 64)),  # the workshop's LSTM(128, return_sequences) -> LSTM(64) -> Dense
    "lstm": ("lstm", (64,)),
    "gru": ("gru", (64,)),
    "rnn": ("rnn", (64,)),                # Keras' SimpleRNN: tanh
}


@dataclass
class ModelConfig:
    architecture: str = "lstm-stacked"
    hidden: list[int] = field(default_factory=list)  # empty: the architecture's sizes
    dropout: float = 0.2                              # after each recurrent layer, as Keras tutorials do
    init: str = "torch"                               # torch (uniform) | keras (Glorot, orthogonal, forget bias 1);
                                                      # torch forecast better on seattle-weather (docs/forecasting.md)

    def check(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ParameterError("architecture", self.architecture, f"choose one of {', '.join(ARCHITECTURES)}")
        if any(h < 1 for h in self.hidden):
            raise ParameterError("hidden", self.hidden, "every size must be at least 1")
        if not 0 <= self.dropout < 1:
            raise ParameterError("dropout", self.dropout, "must be in [0, 1)")
        if self.init not in ("keras", "torch"):
            raise ParameterError("init", self.init, "choose keras or torch")

    @property
    def cell(self) -> str:
        return ARCHITECTURES[self.architecture][0]

    @property
    def sizes(self) -> list[int]:
        return list(self.hidden) or list(ARCHITECTURES[self.architecture][1])


class RecurrentForecaster(nn.Module):
    """(B, L, C) windows -> (B, H) forecasts in model space."""

    def __init__(self, cell: str, inputs: int, hidden: list[int], horizon: int, dropout: float = 0.2):
        super().__init__()
        widths = [inputs, *hidden]
        self.features = nn.ModuleList(CELLS[cell](a, b, batch_first=True) for a, b in zip(widths, widths[1:]))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden[-1], horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.features:
            x, _ = layer(x)            # (B, L, h): return_sequences=True
            x = self.dropout(x)
        return self.head(x[:, -1])     # the last step's state (B, h) -> (B, H)


def build_network(config: ModelConfig, inputs: int, horizon: int) -> RecurrentForecaster:
    config.check()
    model = RecurrentForecaster(config.cell, inputs, config.sizes, horizon, config.dropout)
    return keras_init(model) if config.init == "keras" else model


def summary(model: RecurrentForecaster, lookback: int) -> str:
    """Keras-style layer table: output shapes for a (batch, lookback, inputs) window."""
    rows, total = [], 0
    for layer in model.features:
        n = sum(p.numel() for p in layer.parameters())
        kind = {nn.RNN: "SimpleRNN", nn.LSTM: "LSTM", nn.GRU: "GRU"}[type(layer)]
        rows.append((f"{kind}({layer.hidden_size})", f"(batch, {lookback}, {layer.hidden_size})", n))
        total += n
    rows[-1] = (rows[-1][0], f"(batch, {model.head.in_features})  last step", rows[-1][2])
    n = sum(p.numel() for p in model.head.parameters())
    rows.append((f"Dense({model.head.out_features})", f"(batch, {model.head.out_features})", n))
    total += n
    lines = [f"{'layer':<16}{'output shape':<34}{'parameters':>12}"]
    lines += [f"{a:<16}{b:<34}{c:>12,}" for a, b, c in rows]
    lines.append(f"{'total':<50}{total:>12,}")
    return "\n".join(lines)


def series_train_config(**overrides):
    """The trainer's settings for series: Keras' batch of 64, clipped gradients, early stopping."""
    from neuralab.training.trainer import TrainConfig

    defaults = dict(epochs=30, batch_size=64, lr=3e-3, grad_clip=1.0, patience=10, monitor="val_loss")
    return TrainConfig(**{**defaults, **overrides})


class NetworkForecaster(Forecaster):
    """A recurrent network trained on neuralab's trainer, behind the forecaster interface.

    ``fit`` builds the network for the windows' shape, seeds, and trains with early
    stopping on ``val``; ``predict`` decodes the outputs to original units. With a
    ``run_dir`` the trainer leaves checkpoints, metrics.jsonl and model.safetensors there.
    """

    def __init__(self, model: ModelConfig | None = None, train=None, run_dir: str | Path | None = None,
                 meta: dict | None = None, verbose: bool = False):
        self.model_config = model or ModelConfig()
        self.train_config = train or series_train_config()
        self.run_dir, self.meta, self.verbose = run_dir, meta, verbose
        self.name = self.model_config.architecture
        self.network: RecurrentForecaster | None = None
        self.trainer = None
        self.history: list[dict] = []

    def build(self, inputs: int, horizon: int) -> RecurrentForecaster:
        from neuralab.training.trainer import REGRESSION, Trainer, seed_everything

        seed_everything(self.train_config.seed)
        self.network = build_network(self.model_config, inputs, horizon)
        self.trainer = Trainer(self.network, self.train_config, REGRESSION, self.run_dir, self.meta,
                               verbose=self.verbose)
        return self.network

    def fit(self, train: Windows, val: Windows | None = None) -> "NetworkForecaster":
        if self.network is None:
            self.build(train.x.shape[2], train.horizon)
        val_tensors = (torch.from_numpy(val.x), torch.from_numpy(val.y)) if val is not None and len(val) else None
        self.history = self.trainer.fit(torch.from_numpy(train.x), torch.from_numpy(train.y), val=val_tensors)
        return self

    def predict_scaled(self, windows: Windows) -> np.ndarray:
        """Raw network outputs (N, H) in model space."""
        return self.trainer.predict(torch.from_numpy(windows.x)).numpy().astype(np.float64)

    def predict(self, windows: Windows) -> np.ndarray:
        return windows.decode(self.predict_scaled(windows))

    def params(self) -> dict:
        return {"model": self.model_config, "train": self.train_config}

    def describe(self) -> str:
        sizes = "-".join(map(str, self.model_config.sizes))
        cell = CELL_NAMES[self.model_config.cell]
        n = sum(p.numel() for p in self.network.parameters()) if self.network is not None else 0
        return f"{self.name} ({cell} {sizes} -> Dense, {n:,} parameters)"
