"""What Keras's ``compile()`` sets, for neuralab's trainer: the optimizer, its learning-rate
schedule (``lr_factor``, what a Keras optimizer's LearningRateSchedule does) and the loss that
TrainConfig names (``optimizer``, ``momentum``, ``schedule``, ``loss``), made for PyTorch.

The names are Keras's where the workshop is Keras (``sparse_categorical_crossentropy``,
``mse``, ``rmsprop``), so that a model's ``compile(optimizer=..., loss=...)`` maps onto them
one to one. The networks give logits, never probabilities: the cross-entropies here are
Keras's with ``from_logits=True``, the function a Keras model ending in softmax computes.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from neuralab.errors import ParameterError
from neuralab.training.config import PYTHON, TrainConfig

# An optimizer given from Python: a torch.optim.Optimizer class (made with the parameters and
# `lr`) or a function of the parameters that returns an optimizer.
OptimizerFactory = Callable[..., torch.optim.Optimizer]


def python_name(factory: OptimizerFactory) -> str:
    """How a run records an optimizer given from Python: "python:torch.optim.nadam.NAdam"."""
    name = getattr(factory, "__qualname__", None) or type(factory).__qualname__
    return f"{PYTHON}{getattr(factory, '__module__', None) or type(factory).__module__}.{name}"


def check_given(config: TrainConfig, given: OptimizerFactory | None) -> None:
    """A run trained with an optimizer object continues only with one again."""
    if given is None and config.optimizer.startswith(PYTHON):
        raise ParameterError("optimizer", config.optimizer, "the run was trained with an optimizer object given "
                             "from Python; resume it in Python with the same object as `optimizer`")


def _eager(method):
    return getattr(method, "__wrapped__", method)


class _WithoutDynamo:
    """PyTorch's own Adam and AdamW, without the wrappers that keep torch.compile out of them:
    each imports ``torch._dynamo`` when first called (1.26 s on this project's machine, in the
    sixth speed round, when the fast recipe's whole command took 12.4 s) and the step asks it
    for a graph break every time. neuralab never compiles the optimizer, so they only cost
    time; the update is the same fused kernel,
    the state dict the same (tests/test_training_choices.py compares both)."""

    add_param_group = _eager(torch.optim.Optimizer.add_param_group)
    state_dict = _eager(torch.optim.Optimizer.state_dict)
    load_state_dict = _eager(torch.optim.Optimizer.load_state_dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        if not set_to_none:
            return _eager(torch.optim.Optimizer.zero_grad)(self, set_to_none)
        # PyTorch's does this inside a profiler label that costs more than the loop (17 us against 4)
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self, closure=None):
        groups = self._fused_groups() if closure is None else []
        for group in groups:
            _fused_step(self, group)
        if groups:
            return None
        return _eager(torch.optim.Adam.step)(self, closure)

    def _fused_groups(self) -> list[dict]:
        """The parameter groups when every one can take ``_fused_step`` (else none): fused, on one
        device and dtype, every parameter with a dense gradient and its state made by an earlier step."""
        if getattr(self, "grad_scale", None) is not None or getattr(self, "found_inf", None) is not None:
            return []
        for group in self.param_groups:
            if not group["fused"] or group["amsgrad"] or group["capturable"] or group["differentiable"]:
                return []
            if not all(isinstance(v, (int, float)) for v in (group["lr"], group["eps"], group["weight_decay"], *group["betas"])):
                return []
            params = group["params"]
            first = params[0] if params else None
            for p in params:
                if (p.grad is None or p.grad.is_sparse or "step" not in self.state.get(p, ()) or p.device != first.device
                        or p.dtype != first.dtype or p.grad.dtype != p.dtype or p.is_complex()):
                    return []
        return self.param_groups


def _fused_step(optimizer: torch.optim.Optimizer, group: dict) -> None:
    """PyTorch's fused Adam step over one group, as ``Adam.step`` makes it (the same kernel with
    the same arguments) without its per-step sorting of the tensors by device and type, which
    cost 80 us of the MLP's 200 us step (docs/speed-rounds.md, the seventh round). The caller
    checked the group."""
    params = group["params"]
    if not params:
        return
    states = [optimizer.state[p] for p in params]
    steps = [s["step"] for s in states]
    torch._foreach_add_(steps, 1)
    kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
    beta1, beta2 = group["betas"]
    kernel(params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
           steps, amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
           eps=group["eps"], maximize=group["maximize"], grad_scale=None, found_inf=None)


class Adam(_WithoutDynamo, torch.optim.Adam):
    pass


class AdamW(_WithoutDynamo, torch.optim.AdamW):
    pass


class _DecoupledDecay:
    """Weight decay as AdamW and every Keras 3 optimizer apply it: each weight shrinks by
    lr * decay before the step, apart from the gradient. PyTorch's SGD and RMSprop add decay * w
    to the gradient instead, which momentum accumulates and RMSprop divides by the gradients'
    scale, so that `weight_decay` would mean another thing for them than for adam."""

    def __init__(self, params, weight_decay: float = 0.0, **options):
        super().__init__(params, **options)
        self.decoupled_decay = weight_decay

    @torch.no_grad()
    def step(self, closure=None):
        if self.decoupled_decay:
            for group in self.param_groups:
                params = [p for p in group["params"] if p.grad is not None]
                if params:
                    torch._foreach_mul_(params, 1 - group["lr"] * self.decoupled_decay)
        return super().step(closure)


class SGD(_DecoupledDecay, torch.optim.SGD):
    pass


class RMSprop(_DecoupledDecay, torch.optim.RMSprop):
    pass


def make_optimizer(params, config: TrainConfig, device: torch.device,
                   given: OptimizerFactory | None = None) -> torch.optim.Optimizer:
    """The optimizer ``config`` names, or the one ``given`` makes, over ``params``. Its
    learning rate is the schedule's peak: the trainer's schedule scales it at every step."""
    params = list(params)
    if given is not None:
        made = given(params, lr=config.lr) if isinstance(given, type) else given(params)
        if not isinstance(made, torch.optim.Optimizer):
            raise ParameterError("optimizer", python_name(given), "must be a torch.optim.Optimizer class or a "
                                 f"function of the parameters that returns one; it gave {type(made).__name__}")
        return made
    name, lr, decay = config.optimizer, config.lr, config.weight_decay
    # The fused kernels update all parameters in one pass: fewer tiny ops for small models.
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    if name == "adam":  # as before these choices existed: decoupled decay (AdamW) when there is any
        return (AdamW if decay > 0 else Adam)(params, lr=lr, weight_decay=decay, **fused)
    if name == "adamw":
        return AdamW(params, lr=lr, weight_decay=decay, **fused)
    if name == "sgd":
        return SGD(params, lr=lr, momentum=config.momentum, weight_decay=decay, **fused)
    # Keras's RMSprop defaults (rho 0.9, epsilon 1e-7), not PyTorch's (0.99, 1e-8): a Keras
    # model compiled with "rmsprop" then trains the same way here.
    return RMSprop(params, lr=lr, alpha=0.9, eps=1e-7, momentum=config.momentum, weight_decay=decay)


def lr_factor(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """The learning-rate multiplier at each optimizer step."""
    if config.schedule == "constant":
        return lambda step: 1.0
    warm = max(1, int(config.warmup * total_steps)) if config.schedule == "onecycle" else 0

    def factor(step: int) -> float:
        if step < warm:  # linear warm-up from lr/25, as in OneCycleLR
            return 0.04 + 0.96 * step / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 0.5 * (1 + math.cos(math.pi * progress)) * (1 - 1e-3) + 1e-3

    return factor


# --- losses: one value per sample (the trainer sums and averages them) ----------------------

def _cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # class numbers (N,), or one-hot / soft targets (N, classes) as categorical_crossentropy takes
    return F.cross_entropy(out, y if y.dim() == 1 else y.float(), reduction="none")


def aligned(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Targets ``y`` shaped as the outputs ``out`` that they score: one value per sample, (N,)
    against one output (N, 1), or (N, 1) against a forward's .squeeze(-1), as Keras's losses
    squeeze and expand; ValueError where the shapes differ otherwise."""
    if y.dim() == out.dim() - 1 and out.shape[-1] == 1:
        y = y.unsqueeze(-1)
    elif out.dim() == y.dim() - 1 and y.shape[-1] == 1:
        y = y.squeeze(-1)
    if y.shape != out.shape:
        # PyTorch's losses would broadcast (N,) against (N, 1) to (N, N), each output scored
        # against every target: the model learns the mean, with no more than a warning
        raise ValueError(f"targets {tuple(y.shape)} do not match the outputs {tuple(out.shape)}")
    return y


def _elementwise(loss: Callable) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def each(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # reshape, not flatten(1): a forward's .squeeze(-1) leaves one value per sample, (N,)
        return loss(out, aligned(out, y).to(out.dtype), reduction="none").reshape(len(out), -1).mean(1)
    return each


LOSS_EACH: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": _cross_entropy,
    "sparse_categorical_crossentropy": _cross_entropy,
    "categorical_crossentropy": _cross_entropy,
    "mse": _elementwise(F.mse_loss),
    "mae": _elementwise(F.l1_loss),
    "huber": _elementwise(F.huber_loss),  # delta 1, as Keras's Huber
}


def on_softmax(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``LOSS_EACH[name]``, a loss of values (mse, mae, huber), of a classifier's softmax against its
    labels as one-hot rows, whichever form they come in: class numbers (N,) or rows (N, classes) of
    class probabilities, one-hot rows of floats (Keras's to_categorical) or whole numbers
    (F.one_hot) and label-smoothed rows alike, as Keras's loss scores a model ending in softmax.
    ``LOSS_EACH[name]`` itself scores its targets as they are, values to regress: which of the two
    a set of targets is, is the whole set's to say (inputs_check.scored_as_values), not a batch's."""
    each = LOSS_EACH[name]

    def scored(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if out.dim() != 2:  # no classes to take a softmax over: LOSS_EACH's shapes refuse what does not fit
            return each(out, y)
        if y.dim() == 1:
            y = F.one_hot(y, out.shape[1])
        return each(out.softmax(1), y)
    return scored
