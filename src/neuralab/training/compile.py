"""What Keras's ``compile()`` sets, for neuralab's trainer: the optimizer and the loss that
TrainConfig names (``optimizer``, ``momentum``, ``loss``), made for PyTorch.

The names are Keras's where the workshop is Keras (``sparse_categorical_crossentropy``,
``mse``, ``rmsprop``), so that a model's ``compile(optimizer=..., loss=...)`` maps onto them
one to one. The networks give logits, never probabilities: the cross-entropies here are
Keras's with ``from_logits=True``, the function a Keras model ending in softmax computes.
"""

from __future__ import annotations

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
    each imports ``torch._dynamo`` when first called (1.3 s on this machine, a tenth of
    ``--recipe fast``'s whole command) and the step asks it for a graph break every time. neuralab
    never compiles the optimizer, so they only cost time; the update is the same fused kernel,
    the state dict the same (tests/test_training_choices.py compares both)."""

    add_param_group = _eager(torch.optim.Optimizer.add_param_group)
    zero_grad = _eager(torch.optim.Optimizer.zero_grad)
    state_dict = _eager(torch.optim.Optimizer.state_dict)
    load_state_dict = _eager(torch.optim.Optimizer.load_state_dict)

    @torch.no_grad()
    def step(self, closure=None):
        return _eager(torch.optim.Adam.step)(self, closure)


class Adam(_WithoutDynamo, torch.optim.Adam):
    pass


class AdamW(_WithoutDynamo, torch.optim.AdamW):
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
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=decay, **fused)
    # Keras's RMSprop defaults (rho 0.9, epsilon 1e-7), not PyTorch's (0.99, 1e-8): a Keras
    # model compiled with "rmsprop" then trains the same way here.
    return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7, momentum=config.momentum, weight_decay=decay)


# --- losses: one value per sample (the trainer sums and averages them) ----------------------

def _cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # class numbers (N,), or one-hot / soft targets (N, classes) as categorical_crossentropy takes
    return F.cross_entropy(out, y if y.dim() == 1 else y.float(), reduction="none")


def _elementwise(loss: Callable) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def each(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if out.dim() == 2 and y.dim() == 1 and not y.is_floating_point():
            # A classifier: its softmax against the one-hot labels, as in Keras with a softmax output.
            out, y = out.softmax(1), F.one_hot(y, out.shape[1]).to(out.dtype)
        return loss(out, y.to(out.dtype), reduction="none").flatten(1).mean(1)
    return each


LOSS_EACH: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": _cross_entropy,
    "sparse_categorical_crossentropy": _cross_entropy,
    "categorical_crossentropy": _cross_entropy,
    "mse": _elementwise(F.mse_loss),
    "mae": _elementwise(F.l1_loss),
    "huber": _elementwise(F.huber_loss),  # delta 1, as Keras's Huber
}
