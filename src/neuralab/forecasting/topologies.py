"""The workshop's four RNN topologies as runnable templates, each with a toy task.

    one-to-one    (B, C)      -> (B, O)       a plain dense network: no sequence at all
    one-to-many   (B, C)      -> (B, T, O)    image captioning: one input, a sequence out
    many-to-one   (B, T, C)   -> (B, O)       sentiment analysis, next-value forecasting
    many-to-many  (B, T, C)   -> (B, T', O)   translation (encoder-decoder, T' given) or
                                              tagging (one output per input step, T' = T)

Every recurrent layer is ``batch_first``: sequences are (batch, time, features), the
layout of Keras and of neuralab's forecasting windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from neuralab.forecasting.config import TOY_SEED, TOY_STEPS

# The recurrent cells by the names neuralab uses, and what Keras calls each one: the only
# place either map is written (the forecasting networks, the summary and the gradient
# measurement all read them here).
CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
KERAS_NAMES = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


def keras_name(layer: nn.Module) -> str:
    """"LSTM" for an nn.LSTM, "SimpleRNN" for an nn.RNN: the name a Keras user knows."""
    return next(KERAS_NAMES[c] for c, kind in CELLS.items() if type(layer) is kind)


def keras_init(module: nn.Module) -> nn.Module:
    """Keras' defaults for every recurrent layer in ``module``: Glorot-uniform input
    weights, orthogonal recurrent weights, zero biases and, for an LSTM, a forget-gate
    bias of 1 (Jozefowicz et al., 2015), so that memory is kept from the first update."""
    for layer in module.modules():
        if not isinstance(layer, (nn.RNN, nn.LSTM, nn.GRU)):
            continue
        h = layer.hidden_size
        for name, p in layer.named_parameters():
            with torch.no_grad():
                if name.startswith("weight_ih"):
                    nn.init.xavier_uniform_(p)
                elif name.startswith("weight_hh"):
                    for gate in p.split(h, 0):       # (gates * H, H): one orthogonal block per gate
                        nn.init.orthogonal_(gate)
                else:
                    p.zero_()
                    if isinstance(layer, nn.LSTM) and name.startswith("bias_ih"):
                        p[h:2 * h] = 1.0             # gate order i, f, g, o
    return module


class OneToOne(nn.Module):
    """(B, C) -> (B, O): the "vanilla" network the workshop starts from."""

    def __init__(self, inputs: int, outputs: int, hidden: int = 32):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, outputs)

    def forward(self, x):
        return self.head(self.features(x))                     # (B, O)


class OneToMany(nn.Module):
    """(B, C) -> (B, T, O): the input is fed at every step (Keras' RepeatVector)."""

    def __init__(self, inputs: int, outputs: int, steps: int, hidden: int = 32, cell: str = "lstm"):
        super().__init__()
        self.steps = steps
        self.features = CELLS[cell](inputs, hidden, batch_first=True)
        self.head = nn.Linear(hidden, outputs)

    def forward(self, x):
        seq = x.unsqueeze(1).expand(-1, self.steps, -1)        # (B, T, C)
        h, _ = self.features(seq)                              # (B, T, hidden)
        return self.head(h)                                    # (B, T, O): one output per step


class ManyToOne(nn.Module):
    """(B, T, C) -> (B, O): the last step's state summarises the sequence."""

    def __init__(self, inputs: int, outputs: int, hidden: int = 32, cell: str = "lstm"):
        super().__init__()
        self.features = CELLS[cell](inputs, hidden, batch_first=True)
        self.head = nn.Linear(hidden, outputs)

    def forward(self, x):
        h, _ = self.features(x)                                # (B, T, hidden)
        return self.head(h[:, -1])                             # (B, O)


class ManyToMany(nn.Module):
    """(B, T, C) -> (B, T', O). With ``out_steps`` None: one output per input step (T' = T).
    Otherwise an encoder-decoder: the encoder's final state starts a decoder that runs
    ``out_steps`` steps on the repeated summary, so T' need not equal T."""

    def __init__(self, inputs: int, outputs: int, hidden: int = 32, out_steps: int | None = None,
                 cell: str = "lstm"):
        super().__init__()
        self.out_steps = out_steps
        self.features = CELLS[cell](inputs, hidden, batch_first=True)
        self.decoder = CELLS[cell](hidden, hidden, batch_first=True) if out_steps else None
        self.head = nn.Linear(hidden, outputs)

    def forward(self, x):
        h, state = self.features(x)                            # (B, T, hidden)
        if self.decoder is not None:
            summary = h[:, -1:].expand(-1, self.out_steps, -1)  # (B, T', hidden)
            h, _ = self.decoder(summary, state)                # (B, T', hidden)
        return self.head(h)                                    # (B, T', O)


@dataclass(frozen=True)
class Topology:
    name: str
    example: str                                   # the workshop's application
    build: Callable[[], nn.Module]
    sample: Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]  # a toy task's batch
    task: str


# Toy tasks small enough to learn in a few hundred steps, to show each template trains.
C, O, T, T_OUT = 3, 2, 12, 5


def _one_to_one(b, g):
    x = torch.randn(b, C, generator=g)
    return x, torch.stack([x.sum(1), x[:, 0] * x[:, 1]], 1)                         # (B, C) -> (B, O)


def _one_to_many(b, g):
    x = torch.randn(b, C, generator=g)
    ramp = torch.linspace(0, 1, T)                                                  # start + t * slope
    y = torch.stack([x[:, :1] + ramp * x[:, 1:2], x[:, 2:3] * ramp.flip(0)], -1)    # (B, T, O)
    return x, y


def _many_to_one(b, g):
    x = torch.randn(b, T, C, generator=g)
    return x, torch.stack([x[..., 0].mean(1), x[:, 0, 1]], 1)                       # (B, O)


def _many_to_many(b, g):
    x = torch.randn(b, T, C, generator=g)
    return x, torch.stack([x[:, :T_OUT, 0].flip(1), x[:, -T_OUT:, 1]], -1)           # (B, T', O)


TOPOLOGIES: dict[str, Topology] = {t.name: t for t in [
    Topology("one-to-one", "a plain dense network", lambda: OneToOne(C, O), _one_to_one,
             "the sum and a product of the inputs"),
    Topology("one-to-many", "image captioning: image -> words", lambda: OneToMany(C, O, T), _one_to_many,
             "draw two ramps from a start, a slope and a scale"),
    Topology("many-to-one", "sentiment analysis; next-value forecasting", lambda: ManyToOne(C, O), _many_to_one,
             "the mean of one input and the first value of another"),
    Topology("many-to-many", "machine translation (encoder-decoder)", lambda: ManyToMany(C, O, out_steps=T_OUT),
             _many_to_many, "the first 5 steps reversed and the last 5 steps of another input"),
]}


def shapes(batch: int = 4) -> list[dict]:
    """Input and output shape of every template on its toy task's batch."""
    rows = []
    g = torch.Generator().manual_seed(0)
    for t in TOPOLOGIES.values():
        model = t.build()
        x, y = t.sample(batch, g)
        with torch.no_grad():
            out = model(x)
        rows.append({"name": t.name, "example": t.example, "input": tuple(x.shape), "output": tuple(out.shape),
                     "target": tuple(y.shape), "parameters": sum(p.numel() for p in model.parameters())})
    return rows


def check_toy(steps: int = TOY_STEPS, batch: int = 64, lr: float = 1e-2, seed: int = TOY_SEED) -> None:
    """Refuse ``train_toy``'s settings, naming the parameter: the command line checks them
    before it prints the shapes, as ``train_toy`` does before it trains."""
    from neuralab.errors import ParameterError
    from neuralab.training.config import check_positive, check_seed

    check_seed(seed)
    for what, value in (("steps", steps), ("batch", batch)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ParameterError(what, value, "give a whole number, at least 1")
    check_positive("lr", lr)


def train_toy(name: str, steps: int = TOY_STEPS, batch: int = 64, lr: float = 1e-2, seed: int = TOY_SEED) -> tuple[float, float]:
    """Fit one template on its toy task; returns the MSE on a fresh batch before and after,
    computed on one CPU thread whatever the caller's count, which is restored after."""
    from neuralab.errors import ParameterError
    from neuralab.training.device import cpu_threads

    check_toy(steps, batch, lr, seed)
    if name not in TOPOLOGIES:
        raise ParameterError("name", name, f"choose one of {', '.join(TOPOLOGIES)}")
    # Another thread count rounds the sums otherwise, and a few hundred steps on a plateau
    # carry that far: seed 0's many-to-one ended at 0.017 on one thread and 0.24 on two, so
    # the command and the tutorial gave other figures. One is also the faster for such tiny
    # models (docs/forecasting.md, "Training speed").
    with cpu_threads(1):
        return _fit_toy(TOPOLOGIES[name], steps, batch, lr, seed)


def _fit_toy(t: Topology, steps: int, batch: int, lr: float, seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    model = t.build()
    g = torch.Generator().manual_seed(seed)
    x_test, y_test = t.sample(512, g)
    loss = nn.functional.mse_loss
    with torch.no_grad():
        before = float(loss(model(x_test), y_test))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        x, y = t.sample(batch, g)
        opt.zero_grad(set_to_none=True)
        loss(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        after = float(loss(model(x_test), y_test))
    return before, after
