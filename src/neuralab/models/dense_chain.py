"""A run of dense layers, Linear -> ReLU -> Dropout, ..., Linear, called as one function: the
MLP's whole body and the dense heads of the sample CNN, AlexNet and VGG.

On a small network the calls are half of the step (the MLP: 138 MFLOP of products per step
at batch 128, about 0.9 ms of work in a 2.3 ms step): each layer is a module call, and each
dropout draws its own mask through its own generator. Here the run of layers is one call:
each Linear is ``inner_product.linear`` (``F.linear``, through oneDNN's inner product where
that is faster), each ReLU in place on the product (as ``nn.ReLU(inplace=True)``: the
product's backward does not read its output), and every dropout mask of the run is drawn in
one call to NumPy (``fast.keep_mask``) from one generator seeded from torch's
(``fast._bits``): each value kept with probability 1 - p and scaled by 1 / (1 - p), as
``fast.Dropout``. Autograd records the layers' own nodes, but for the products that
``inner_product`` takes, which compute the same gradients.

Measured (the trainer's step in a loop, 2 threads, batch 128, 10 interleaved rounds of 100
steps, shared machine; medians): the MLP's forward 1.106 -> 0.902 ms, backward 0.920 ->
0.907 ms, the whole step 2.48 -> 2.25 ms (1.10x); the trainer's epoch 1.08x over 8
interleaved epochs (bench/bench_dense_chain.py; the machine moved epochs by 1.4-2.4 s).
One ``autograd.Function`` with backward written out (threshold, scale, ``mm`` and ``sum`` per
layer) was tried first: its forward was as fast, its backward 0.07-0.14 ms slower than
autograd's own nodes (Python in the loop), the step 1.07x. The dense heads, whose products
dominate, neither gain nor lose: training steps 1.00x for the sample CNN (40 interleaved),
1.00x for AlexNet and 1.05x for VGG16 (10 each) at 28x28x1.
"""

from __future__ import annotations

from itertools import groupby

import numpy as np
import torch
from torch import nn

from neuralab.models import fast, inner_product


def _run(x: torch.Tensor, steps: list[tuple[bool, float]], layers: list[nn.Linear]) -> torch.Tensor:
    """The layers applied to ``x``: ``steps`` holds each Linear's (relu, keep), whether ReLU
    follows it and the probability that its dropout keeps a value (1: no dropout)."""
    masks = _masks(len(x), [layer.out_features for layer in layers], [keep for _, keep in steps])
    for (relu, _), layer, mask in zip(steps, layers, masks):
        x = inner_product.linear(x, layer.weight, layer.bias)
        if relu:
            x = x.relu_()  # as nn.ReLU(inplace=True): the product's backward does not need its output
        if mask is not None:
            x = x * mask
    return x


def _masks(batch: int, widths: list[int], keeps: list[float]) -> list[torch.Tensor | None]:
    """Each layer's dropout mask, 0 or 1 / keep in float32 (None where the layer keeps all),
    every run of layers with the same keep drawn in one call from one generator."""
    masks: list[torch.Tensor | None] = []
    bits = None
    for keep, run in groupby(zip(widths, keeps), key=lambda pair: pair[1]):
        run_widths = [w for w, _ in run]
        if keep == 1:
            masks += [None] * len(run_widths)
            continue
        bits = bits or fast._bits()
        kept = fast.keep_mask(batch * sum(run_widths), keep, bits)
        values = np.multiply(kept, np.float32(1 / keep), dtype=np.float32)
        start = 0
        for w in run_widths:
            masks.append(torch.from_numpy(values[start:start + batch * w].reshape(batch, w)))
            start += batch * w
    return masks


def _step(modules: list[nn.Module], i: int) -> tuple[tuple[bool, float], int] | None:
    """(relu, keep) of the Linear at ``modules[i]`` and the ReLU and dropout after it, with the
    index past them; None where ``modules[i]`` is no Linear."""
    if type(modules[i]) not in (nn.Linear, fast.Linear):
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
    """The run of Linear [-> ReLU [-> Dropout]] layers from ``modules[i]`` applied to ``x`` in one
    call, with the index past it; None where it would differ from the layers or does not pay
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
    if any(p.dtype != x.dtype or p.device != x.device for layer in layers for p in layer.parameters(recurse=False)):
        return None
    return _run(x, steps, layers), j
