"""GoogLeNet's Inception module (models/googlenet.py) in training, with its three 1x1
convolutions that read the module's input as one: the same function, fewer and larger steps.

Three of an Inception module's four branches open with a ConvBN (1x1 convolution -> batch
norm -> ReLU) on the same input x: branch1 whole, and the 1x1 "bottlenecks" of branch2 and
branch3. A 1x1 convolution is a matrix product over the channels, so the three are one
product with their weights stacked, (B*H*W, C) @ (C, F1 + F2 + F3), on channels-last maps
without a copy; batch norm's statistics are per channel, so one batch norm over the stacked
channels normalises each as its own layer would, and the running statistics go back to each
layer's buffers. Backward then takes one input gradient, dY @ W over all three, where PyTorch
computes three and adds them, and one weight gradient.

Measured (batch 128 at 28x28x1 inputs, channels-last, forward and both gradients, 2 threads,
the ways alternating in one process on the project's shared 2-core machine; `python
bench/bench_inception.py --threads 2`): the three 1x1 layers one by one in oneDNN (their input
gradients added, as PyTorch runs the module) against one matrix product, 1.18x (inception3b,
256 -> 128 + 128 + 32 on 14x14: 85.7 -> 72.7 ms) to 1.37x (inception3a, 5a); oneDNN's
convolution with the weights stacked is even with the product on 14x14 maps and slower on 7x7
and 4x4 (1.09-1.20x). A single 1x1 layer with fewer filters loses as a product (64 filters:
0.80-0.87x; 128 filters: 0.97x on 7x7, 1.27x on 4x4), so below ``MATMUL_FROM`` filters it stays
with oneDNN. GoogLeNet's whole training step with Adam: 1.654 -> 1.529 s, **1.084x** (2
threads, 20 alternating steps; 1.074x in another run of 14), 1.046x in one thread's CPU time.

Where PyTorch runs AVX-512 (an AMD EPYC, 2 threads), the product is oneDNN's too, and oneDNN's
convolution with the weights stacked beat it on 14x14 and 7x7 maps, so there the product
takes only 4x4 maps (``WIDE_MATMUL_MAX_CELLS``): GoogLeNet's step 1.029x at 28x28x1 (674 ->
656 ms), 1.024x at 32x32x3, against the product everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neuralab.models import googlenet, inner_product
from neuralab.models.fast import FASTER, Conv2d, _fast_map, _plain, _running
from neuralab.models.googlenet import ConvBN

# From this many filters a matrix product runs a 1x1 convolution about as fast as oneDNN or
# faster (measured above with MKL's on AVX2: 128 filters 0.97-1.27x, 64 filters 0.80-0.87x);
# on AMD's AVX-512 CPUs MKL's product keeps to AVX2, so it is ``inner_product``'s, oneDNN's.
MATMUL_FROM = 128
# Where PyTorch runs AVX-512, oneDNN's 1x1 convolution with the weights stacked beat that
# product on larger maps (AMD EPYC, 2 threads, forward and both gradients, `python
# bench/bench_inception.py --steps 0`): 1.28x on 14x14 (3a, 3b), 1.04-1.16x on 7x7; on 4x4
# maps the product won 1.04-1.07x. So there the product takes only maps of this many cells.
WIDE_MATMUL_MAX_CELLS = 16


def _by_product(filters: int, h: int, w: int) -> bool:
    """Whether 1x1 convolutions with this many filters in all, on h x w maps, run as one matrix
    product (``inner_product``'s) rather than one oneDNN convolution."""
    return filters >= MATMUL_FROM and (not inner_product.wide_vectors() or h * w <= WIDE_MATMUL_MAX_CELLS)


def _pointwise(convbn: nn.Module) -> bool:
    """A ConvBN as googlenet builds it with a 1x1 kernel: conv (no bias) -> BatchNorm2d -> ReLU."""
    if type(convbn) is not ConvBN or len(convbn) != 3:
        return False
    conv, bn, relu = convbn
    return (type(conv) in (nn.Conv2d, Conv2d) and conv.kernel_size == (1, 1) and conv.stride == (1, 1)
            and conv.padding == (0, 0) and conv.dilation == (1, 1) and conv.groups == 1 and conv.bias is None
            and type(bn) is nn.BatchNorm2d and bn.training and type(relu) is nn.ReLU)


def _together(bns: list[nn.BatchNorm2d]) -> bool:
    """Batch norms that one batch norm over their stacked channels computes exactly: the same
    eps, momentum (with a cumulative average, the same count of batches) and options."""
    first = bns[0]
    same = all(bn.eps == first.eps and bn.momentum == first.momentum and bn.affine == first.affine
               and bn.track_running_stats == first.track_running_stats for bn in bns)
    if same and first.momentum is None and first.track_running_stats:
        return len({int(bn.num_batches_tracked) for bn in bns}) == 1
    return same


def convbn_1x1(convbns: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """ReLU(BatchNorm(conv1x1(x))) of several 1x1 ConvBNs on the same channels-last input, as one
    (B, F1 + F2 + ..., H, W) channels-last map: one convolution with the weights stacked, one
    batch norm over the stacked channels (each layer's running statistics and batch count
    updated as its own training forward would), one ReLU in place."""
    convs, bns = [m[0] for m in convbns], [m[1] for m in convbns]
    sizes = [conv.out_channels for conv in convs]
    n, c, h, w = x.shape
    kernels = torch.cat([conv.weight.reshape(-1, c) for conv in convs])               # (F, C)
    if _by_product(len(kernels), h, w):
        y = inner_product.linear(x.permute(0, 2, 3, 1).reshape(-1, c), kernels)      # x as (B*H*W, C) is a view
        y = y.view(n, h, w, len(kernels)).permute(0, 3, 1, 2)                         # (B, F, H, W) channels-last
    else:
        y = F.conv2d(x, kernels.view(-1, c, 1, 1))
    momenta = [_running(bn)[2] for bn in bns]                                        # every layer counts the batch
    first = bns[0]
    stacked = (lambda name: torch.cat([getattr(bn, name) for bn in bns])) if len(bns) > 1 else (
        lambda name: getattr(first, name))
    weight, bias = (stacked("weight"), stacked("bias")) if first.affine else (None, None)
    mean, var = (stacked("running_mean"), stacked("running_var")) if first.track_running_stats else (None, None)
    z = F.batch_norm(y, mean, var, weight, bias, True, momenta[0], first.eps).relu_()
    if mean is not None and len(bns) > 1:
        for bn, m, v in zip(bns, mean.split(sizes), var.split(sizes)):
            bn.running_mean.copy_(m)
            bn.running_var.copy_(v)
    return z


def forward(module: googlenet.Inception, x: torch.Tensor) -> torch.Tensor | None:
    """``module(x)`` with branch1's and the two bottlenecks' 1x1 ConvBNs as one (``convbn_1x1``)
    and the pooled branch's 1x1 ConvBN as a matrix product from ``MATMUL_FROM`` filters; None
    where that would differ from the module's own layers: not training, not channels-last
    float32 on CPU (``fast._fast_map``), hooks on any layer, layers that are not googlenet's
    ConvBNs, batch norms that differ in their options."""
    if not module.training or not _fast_map(x) or not _plain(*module.modules()):
        return None
    if len(module.branch2) != 2 or len(module.branch3) != 2 or len(module.branch4) != 2:
        return None
    reds = [module.branch1, module.branch2[0], module.branch3[0]]
    (second, third), (pool, last) = (module.branch2[1], module.branch3[1]), module.branch4
    if not all(_pointwise(m) for m in (*reds, last)) or not _together([m[1] for m in reds]):
        return None
    b1, r2, r3 = convbn_1x1(reds, x).split([m[0].out_channels for m in reds], 1)
    # The 3x3 layers' fast kernels (oneDNN, Winograd) take whole channels-last maps, not channel slices
    b2 = second(r2.contiguous(memory_format=torch.channels_last))
    b3 = third(r3.contiguous(memory_format=torch.channels_last))
    b4 = convbn_1x1([last], pool(x))
    return torch.cat([b1, b2, b3, b4], 1)


class Inception(googlenet.Inception):
    """googlenet.Inception, under the same name (summaries read the same); in training on
    channels-last float32 maps on CPU, ``forward`` above: the three 1x1 ConvBNs on the module's
    input as one product (a matrix product or one oneDNN convolution) and one batch norm.
    Everywhere else (eval, NCHW, CUDA, autocast, ONNX export, hooks) the plain module."""

    def forward(self, x):
        out = forward(self, x)
        return super().forward(x) if out is None else out


FASTER[googlenet.Inception] = Inception

__all__ = ["MATMUL_FROM", "Inception", "convbn_1x1", "forward"]
