"""A run of dense layers, Linear -> ReLU -> Dropout, ..., Linear, as one step of autograd:
the MLP's whole body and the dense heads of the sample CNN, AlexNet and VGG.

PyTorch's layers make an autograd node for every product, ReLU and dropout mask, and every
call crosses Python and the dispatcher; on a small network (the MLP: 138 MFLOP of products
per step at batch 128, about 0.9 ms of work) those calls are half of the step. Here one
``autograd.Function`` computes the same functions with the calls written out: the products
by ``addmm`` and ``mm``, each ReLU and its dropout mask as two in-place passes, and backward
by hand, where each layer's ReLU and dropout gradient is the output gradient kept where the
layer's output is positive, times the dropout's scale (the output is positive exactly where
ReLU passed the value and the mask kept it). Every dropout mask of the run is drawn in one
call to NumPy (``fast.keep_mask``) from one generator seeded from torch's (``fast._bits``):
each value kept with probability 1 - p and scaled by 1 / (1 - p), as ``fast.Dropout``.

Measured (2 threads, batch 128, interleaved with the layers, shared machine): the MLP's
forward 1.27 -> 1.07 ms and 1.23 -> 0.95 ms in two runs, forward and back 2.67 -> 2.47 ms
(backward is no faster: its products and element-wise passes are the layers' own); the
trainer's MLP epoch 1.13x (bench/bench_dense_chain.py). The dense heads, whose products
dominate, gain nothing: the sample CNN's step 0.99x, AlexNet's 1.02x.
"""

from __future__ import annotations

from itertools import groupby

import numpy as np
import torch
from torch import nn

from neuralab.models import fast


class _DenseChain(torch.autograd.Function):
    """``steps`` is one (relu, keep) per Linear: its output through ReLU or not, then kept with
    probability ``keep`` (1: no dropout, and only after a ReLU). ``params`` are each Linear's
    weight and bias (None where it has none)."""

    @staticmethod
    def forward(ctx, x, steps, *params):
        weights, biases = params[::2], params[1::2]
        masks = _masks(len(x), [w.shape[0] for w in weights], [keep for _, keep in steps])
        h, saved = x, [x]
        for (relu, _), weight, bias, mask in zip(steps, weights, biases, masks):
            h = h @ weight.t() if bias is None else torch.addmm(bias, h, weight.t())
            if relu:
                h.relu_()
            if mask is not None:
                h.mul_(mask)
            saved.append(h)
        ctx.save_for_backward(*saved, *weights)
        ctx.steps = steps
        return h

    @staticmethod
    def backward(ctx, grad):
        n = len(ctx.steps)
        saved = ctx.saved_tensors
        maps, weights = saved[:n + 1], saved[n + 1:]
        needs = ctx.needs_input_grad
        grads = [None] * (2 * n)
        for k in reversed(range(n)):
            relu, keep = ctx.steps[k]
            if relu:
                # After dropout the output is positive exactly where ReLU passed the value and the
                # mask kept it: ReLU's gradient taken on it is zero wherever either layer's is
                grad = torch.ops.aten.threshold_backward(grad, maps[k + 1], 0)
            if keep < 1:
                grad = grad * float(np.float32(1 / keep))  # the kept values' factor, as the mask holds it
            if needs[2 + 2 * k]:
                grads[2 * k] = grad.t().mm(maps[k])
            if needs[3 + 2 * k]:
                grads[2 * k + 1] = grad.sum(0)
            if k or needs[0]:
                grad = grad.mm(weights[k])
        return (grad if needs[0] else None), None, *grads


def _masks(batch: int, widths: list[int], keeps: list[float]) -> list[torch.Tensor | None]:
    """Each layer's dropout mask, 0 or 1 / keep in float32 (None where the layer keeps all),
    every run of layers with the same keep drawn in one call from one generator."""
    masks: list[torch.Tensor | None] = [None] * len(widths)
    bits = None
    k = 0
    for keep, run in groupby(zip(widths, keeps), key=lambda pair: pair[1]):
        run_widths = [w for w, _ in run]
        if keep < 1:
            bits = bits or fast._bits()
            kept = fast.keep_mask(batch * sum(run_widths), keep, bits)
            values = torch.from_numpy(np.multiply(kept, np.float32(1 / keep), dtype=np.float32))
            for w, mask in zip(run_widths, values.split([batch * w for w in run_widths])):
                masks[k] = mask.view(batch, w)
                k += 1
        else:
            k += len(run_widths)
    return masks


def _step(modules: list[nn.Module], i: int) -> tuple[tuple[bool, float], int] | None:
    """(relu, keep) of the Linear at ``modules[i]`` and the ReLU and dropout after it, with the
    index past them; None where ``modules[i]`` is no Linear."""
    if type(modules[i]) is not nn.Linear:
        return None
    i += 1
    relu = i < len(modules) and type(modules[i]) is nn.ReLU
    keep = 1.0
    if relu:
        i += 1
        if i < len(modules) and type(modules[i]) in (nn.Dropout, fast.Dropout) and modules[i].p < 1:
            keep, i = 1 - modules[i].p, i + 1
    return (relu, keep), i


def dense_chain(x: torch.Tensor, modules: list[nn.Module], i: int) -> tuple[torch.Tensor, int] | None:
    """The run of Linear [-> ReLU [-> Dropout]] layers from ``modules[i]`` applied to ``x`` as one
    step, with the index past it; None where it would differ from the layers or does not pay
    (fewer than two Linear layers, evaluation mode, not float32 on CPU, hooks that would see the
    maps in between, weights of another dtype or device than ``x``)."""
    if x.dim() != 2 or not fast._fast(x):
        return None
    steps, layers, j = [], [], i
    while j < len(modules):
        found = _step(modules, j)
        if found is None:
            break
        steps.append(found[0])
        layers.append(modules[j])
        j = found[1]
    if len(layers) < 2 or not all(m.training for m in modules[i:j]) or not fast._plain(*modules[i:j]):
        return None
    params = [p for layer in layers for p in (layer.weight, layer.bias)]
    if any(p is not None and (p.dtype != x.dtype or p.device != x.device) for p in params):
        return None
    return _DenseChain.apply(x, tuple(steps), *params), j
