"""The vanishing gradient made visible: how much gradient reaches each earlier time step.

A SimpleRNN and an LSTM of the same hidden size learn the same many-to-one task,
"output the value seen at the first step", so the loss depends only on the oldest
input. For each model we measure ||dL/dx_t||, the gradient of the loss with respect to
the input at step t, averaged over a batch, at initialisation and after training with
and without gradient-norm clipping. In the SimpleRNN the signal shrinks geometrically
with every step back (the product of tanh derivatives and recurrent weights); the LSTM's
additive cell state lets it through. During training we also record the total gradient
norm before clipping: clipping caps the spikes (the exploding side of the problem) and
leaves the direction of each update unchanged.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch
from torch import nn

from neuralab.forecasting.config import MAX_CELLS, GradientConfig  # noqa: F401  importable here too
from neuralab.forecasting.topologies import KERAS_NAMES, ManyToOne, keras_init

MODELS = ("rnn", "lstm")  # the two cells compared


def task(batch: int, steps: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise sequences (B, T, 1); the target is the first value (B, 1)."""
    x = torch.randn(batch, steps, 1, generator=g)
    return x, x[:, 0].clone()


def input_gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """(T,) mean over the batch of ||dL/dx_t||, t = 0 (oldest) .. T-1 (newest)."""
    x = x.clone().requires_grad_(True)
    loss = nn.functional.mse_loss(model(x), y, reduction="sum")  # per-sample gradients do not mix
    (grad,) = torch.autograd.grad(loss, x)                         # (B, T, 1)
    return grad.norm(dim=2).mean(0).numpy()


def run_one(cell: str, clip: float | None, config: GradientConfig) -> dict:
    """Train one model on the task; gradients per step at init and after training."""
    torch.manual_seed(config.seed)  # the same initial weights with and without clipping
    model = ManyToOne(1, 1, config.hidden, cell=cell)
    if config.init == "keras":
        keras_init(model)
    g = torch.Generator().manual_seed(config.seed)
    probe = task(config.probe, config.steps, torch.Generator().manual_seed(config.seed + 1))
    at_init = input_gradient_norms(model, *probe)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    losses, norms = [], []
    for _ in range(config.train_steps):
        x, y = task(config.batch, config.steps, g)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        total = nn.utils.clip_grad_norm_(model.parameters(), clip if clip else float("inf"))
        opt.step()
        losses.append(loss.item())
        norms.append(float(total))  # before clipping
    with torch.no_grad():
        final = float(nn.functional.mse_loss(model(probe[0]), probe[1]))
    return {"model": KERAS_NAMES[cell], "clip": clip, "at_init": at_init.tolist(),
            "trained": input_gradient_norms(model, *probe).tolist(), "loss": losses, "grad_norm": norms,
            "final_loss": final}


def measure(config: GradientConfig | None = None) -> dict:
    """All four runs: SimpleRNN and LSTM, without and with clipping."""
    config = config or GradientConfig()
    config.check()
    runs = [run_one(cell, clip, config) for cell in MODELS for clip in (None, config.clip)]
    return {"config": asdict(config), "runs": runs}


def norm_table(result: dict, distances=(0, 1, 10, 25, 50, 99)) -> list[dict]:
    """For each run, at init and trained: ||dL/dx_t|| at k steps back from the output."""
    t = result["config"]["steps"]
    rows = []
    for run in result["runs"]:
        for when in ("at_init", "trained"):
            g = np.asarray(run[when])[::-1]  # index k = k steps back from the output
            row = {"model": run["model"], "clip": run["clip"] or "off", "when": when.replace("_", " ")}
            row.update({f"{k} back": float(g[k]) for k in distances if k < t})
            if t - 1 not in distances:
                row[f"{t - 1} back"] = float(g[t - 1])
            rows.append(row)
    return rows


def plot(result: dict):
    """2 x 2 figure: gradient per step back at init, after training (clip off / on), and
    the total gradient norm before clipping over training."""
    from neuralab.reports.plots import figure

    fig = figure(11, 7.5)
    axes = fig.subplots(2, 2)
    k = np.arange(result["config"]["steps"])
    style = {"SimpleRNN": "#c44e52", "LSTM": "#4c72b0"}
    panels = [(axes[0, 0], "at_init", None, "at initialisation"),
              (axes[0, 1], "trained", None, "after training, no clipping"),
              (axes[1, 0], "trained", "clip", f"after training, clipping at {result['config']['clip']}")]
    for ax, when, clip, title in panels:
        for run in result["runs"]:
            if (run["clip"] is None) != (clip is None) and when == "trained":
                continue
            if when == "at_init" and run["clip"] is not None:
                continue
            g = np.maximum(np.asarray(run[when])[::-1], 1e-30)
            ax.semilogy(k, g, color=style[run["model"]], label=run["model"])
        ax.set_title(title)
        ax.set_xlabel("steps back from the output")
        ax.set_ylabel("||dL/dx_t||")
        ax.legend(fontsize=8)
    ax = axes[1, 1]
    for run in result["runs"]:
        ax.semilogy(run["grad_norm"], color=style[run["model"]], linestyle="-" if run["clip"] is None else "--",
                    linewidth=0.8, label=f"{run['model']}, clip {run['clip'] or 'off'}")
    ax.set_title("total gradient norm before clipping")
    ax.set_xlabel("training step")
    ax.legend(fontsize=8)
    fig.suptitle(f"Gradient reaching earlier steps: SimpleRNN vs LSTM, hidden {result['config']['hidden']}, "
                 f"{result['config']['steps']} steps")
    fig.tight_layout()
    return fig
