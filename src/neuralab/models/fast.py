"""Faster CPU kernels for the zoo's layers, computing the same functions: the models stay
plain PyTorch (``nn.Conv2d``, ``nn.Tanh``, ...) and ``accelerate(model)`` swaps each layer's
class for its subclass here, in place; the trainer does it before training. Parameter
names, weights, hooks and saved runs do not change. A layer takes its shortcut only for
float32 on CPU outside autocast and ONNX export (most only for batches of channels-last
maps, the trainer's layout) and is PyTorch's own layer everywhere else (CUDA, bf16,
unbatched inputs).

What each replaces, and by how much (CPU time of one thread, interleaved with the layer it
replaces on this project's shared 2-core machine, batch 128; docs/benchmarks.md has the runs):

    Tanh        ATen's tanh -> 2 sigmoid(2x) - 1 through ATen's sigmoid; LeNet-5's C1 maps
                (128x6x28x28): 0.74 ms against 1.39 ms
    AvgPool2d   channels-last pooling over fewer than 8 channels -> a depthwise convolution
                with weights 1/(kh*kw) in oneDNN; LeNet-5's S2: 0.44 ms against 0.81 ms
    Conv2d      a map within the kernel's reach (LeNet-5's C5, VGG's 2x2 and 1x1 maps) -> one
                matrix product with a weight matrix built from the taps, which skips the
                windows' padding (VGG16's step at 28x28: 1.22x with everything here);
                a first layer on one channel -> its weight gradient as one matrix product
                over the input's windows (1->32 3x3: 12 ms against 23 ms; 1->64 5x5: 23 ms
                against 70 ms); fewer than 8 input channels -> the input gradient computed
                in NCHW (LeNet-5's C3: 1.10 ms against 2.15 ms)
    Flatten     channels-last maps -> a channels-last gradient, so that max pooling's
                backward below keeps its fast layout (the sample CNN's second pool: 2.3 ms
                against 11 ms; its step 1.04-1.06x)
    Dropout     ATen's bernoulli_ -> a mask from NumPy's PCG64 generator (seeded from torch's),
                from 65,536 values: 128x32x14x14, forward and back, 6.3 ms against 12.4 ms
                (below that, torch.rand's uniform draws take 0.13 ms against bernoulli_'s 0.31
                on the MLP's 128x256, but its step was no faster: 1.003x, so PyTorch's stays)
    Sequential  ReLU -> BatchNorm2d -> max pooling in a row, in training -> one fused step that
                normalises the pooled map (the sample CNN's first block, forward and back:
                27 ms against 46 ms; its step 1.07x)

A training step with all of them: LeNet-5 1.20x, the sample CNN 1.08x (1.41x against
PyTorch's layers in NCHW, the plain loop's layout), VGG16 at 28x28 1.22x.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuralab.mechanics.shapes import pair


def _fast(x: torch.Tensor) -> bool:
    # An export imports torch.onnx first; reading `torch.onnx` here would import it (0.2 s) in every run.
    onnx = sys.modules.get("torch.onnx")
    return (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and not (onnx is not None and onnx.is_in_onnx_export()))


def _fast_map(x: torch.Tensor) -> bool:
    """A batch of channels-last float32 maps on CPU."""
    return _fast(x) and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)


class _TanhBySigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.mul(x, 2).sigmoid_().mul_(2).sub_(1)  # tanh(x) = 2 sigmoid(2x) - 1, within 2e-7 in float32
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)  # grad * (1 - y^2), as nn.Tanh's backward


class Tanh(nn.Tanh):
    """nn.Tanh; on CPU through ATen's sigmoid, which takes about half the time of its tanh."""

    def forward(self, x):
        return _TanhBySigmoid.apply(x) if _fast(x) else torch.tanh(x)


class AvgPool2d(nn.AvgPool2d):
    """nn.AvgPool2d; windows without padding over channels-last maps whose channels do not fill
    8-float vector lanes (LeNet-5's 6) run as a depthwise convolution with weights 1/(kh*kw):
    oneDNN's kernel then takes under half the time of ATen's pooling, forward and back."""

    def forward(self, x):
        if (not _fast_map(x) or x.shape[1] % 8 == 0 or self.padding not in (0, (0, 0)) or self.ceil_mode
                or self.divisor_override):
            return super().forward(x)
        kh, kw = pair(self.kernel_size)
        c = x.shape[1]
        return F.conv2d(x, x.new_full((c, 1, kh, kw), 1 / (kh * kw)), stride=self.stride, groups=c)


class _ConvInputGradNCHW(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, args):
        ctx.save_for_backward(x, weight)
        ctx.args, ctx.has_bias = args, bias is not None
        stride, padding, dilation, groups = args
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.args
        args = (stride, padding, dilation, False, (0, 0), groups)
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        grad_x = grad_w = grad_b = None
        if need_x:
            grad_x = torch.ops.aten.convolution_backward(
                grad.contiguous(), x.contiguous(), weight.contiguous(), None, *args, (True, False, False))[0]
            grad_x = grad_x.contiguous(memory_format=torch.channels_last)
        if need_w or need_b:
            _, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad, x, weight, [weight.shape[0]] if ctx.has_bias else None, *args, (False, need_w, need_b))
        return grad_x, grad_w, grad_b, None


class _ConvWeightGradByWindows(torch.autograd.Function):
    """A first layer on one input channel (its input needs no gradient): oneDNN's forward,
    and the weight gradient as one matrix product of the output gradient with the input's
    windows, laid out (B*H*W, kh*kw), where oneDNN's backward_weights is slow."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.save_for_backward(x)
        ctx.padding, ctx.shape, ctx.has_bias = padding, weight.shape, bias is not None
        return F.conv2d(x, weight, bias, 1, padding)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        (ph, pw), (f, c, kh, kw) = ctx.padding, ctx.shape
        n, _, ho, wo = grad.shape
        padded = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1)                # (B, H + 2ph, W + 2pw, C)
        sn, sh, sw, sc = padded.stride()
        windows = padded.as_strided((n, ho, wo, c, kh, kw), (sn, sh, sw, sc, sh, sw)).reshape(n * ho * wo, -1)
        g = grad.permute(0, 2, 3, 1).reshape(n * ho * wo, f)                   # a view when channels-last
        grad_w = (windows.t() @ g).t().reshape(ctx.shape)                      # (F, C, kh, kw)
        grad_b = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return None, grad_w, grad_b, None


def _toeplitz(weight: torch.Tensor, hw: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor | None:
    """The matrix M with conv(x) = x @ M when x and the output are flattened in (h, w, c) order,
    for a stride-1 convolution whose every window reaches every input cell (a map no larger
    than the kernel's reach: VGG's 2x2 maps under a 3x3 kernel, LeNet-5's C5); None otherwise."""
    (h, w), (ph, pw), (kh, kw) = hw, padding, weight.shape[2:]
    ho, wo = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
    if ho < 1 or wo < 1 or h + ph > kh or w + pw > kw or ho - 1 > ph or wo - 1 > pw:
        return None
    # Output (r, c) reads input (i, j) through kernel tap (i - r + ph, j - c + pw): for each
    # output cell, one slice of the taps covers the whole input.
    taps = weight.permute(2, 3, 1, 0)                                          # (kh, kw, C, F)
    blocks = [taps[ph - r:ph - r + h, pw - c:pw - c + w] for r in range(ho) for c in range(wo)]
    return torch.stack(blocks, 3).reshape(h * w * weight.shape[1], ho * wo * weight.shape[0])  # (h*w*C, ho*wo*F)


class Conv2d(nn.Conv2d):
    """nn.Conv2d, with three shortcuts for channels-last maps:

    - a map no larger than the kernel's reach (VGG's 2x2 maps under 3x3 kernels, LeNet-5's C5:
      5x5 on a 5x5 map) is a fully connected layer with a weight matrix built from the kernel's
      taps: one matrix product skips the windows' padding and runs at BLAS speed;
    - a first layer on one input channel (MNIST's) with 16 or more filters gets its weight
      gradient from one matrix product over the input's windows, 2-3x faster than oneDNN's
      (with three channels or LeNet-5's 6 filters oneDNN's is the faster);
    - when the input channels do not fill 8-float vector lanes (LeNet-5's C3 reads 6), oneDNN's
      input gradient takes twice as long as in NCHW, so it is computed there.
    """

    def forward(self, x):
        if not _fast_map(x) or isinstance(self.padding, str) or self.padding_mode != "zeros":
            return super().forward(x)
        plain = self.groups == 1 and self.dilation == (1, 1)
        if plain and self.stride == (1, 1):
            matrix = _toeplitz(self.weight, x.shape[-2:], self.padding)
            if matrix is not None:
                n, (h, w), f = len(x), x.shape[-2:], self.out_channels
                ho, wo = h + 2 * self.padding[0] - self.kernel_size[0] + 1, w + 2 * self.padding[1] - self.kernel_size[1] + 1
                y = x.permute(0, 2, 3, 1).reshape(n, -1) @ matrix                # (B, ho*wo*F) in (h, w, c) order
                if self.bias is not None:
                    y = y.view(n, -1, f).add(self.bias).view(n, -1)
                return y.view(n, ho, wo, f).permute(0, 3, 1, 2)                  # (B, F, ho, wo) channels-last
        if plain and self.stride == (1, 1) and not x.requires_grad and self.in_channels == 1 and self.out_channels >= 16:
            return _ConvWeightGradByWindows.apply(x, self.weight, self.bias, self.padding)
        if x.requires_grad and self.in_channels % 8:
            return _ConvInputGradNCHW.apply(x, self.weight, self.bias,
                                            (self.stride, self.padding, self.dilation, self.groups))
        return super().forward(x)


class _FlattenChannelsLast(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.contiguous().flatten(1)  # (B, C*H*W) in PyTorch's (c, h, w) order, what the next Linear expects

    @staticmethod
    def backward(ctx, grad):
        return grad.view(ctx.shape).contiguous(memory_format=torch.channels_last)


class Flatten(nn.Flatten):
    """nn.Flatten; from channels-last maps its gradient goes back channels-last, so the layers
    below (max pooling's backward above all: 4x slower on the sample CNN) keep their layout."""

    def forward(self, x):
        if _fast_map(x) and x.requires_grad and self.start_dim == 1 and self.end_dim == -1 and not x.is_contiguous():
            return _FlattenChannelsLast.apply(x)
        return super().forward(x)


class _DropoutMask(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


# Below this many values a new generator costs more than ATen's draws (the MLP's 128x256).
DROPOUT_NUMPY = 1 << 16


class Dropout(nn.Dropout):
    """nn.Dropout; in training on CPU its mask comes from NumPy's PCG64 generator, seeded from
    torch's, which draws the uniform numbers in under half the time of ATen's bernoulli_. Each
    value is kept with probability 1 - p and scaled by 1 / (1 - p), as in PyTorch; the draws
    differ from PyTorch's, and torch.manual_seed repeats them."""

    def forward(self, x):
        if (not self.training or self.inplace or not 0 < self.p < 1 or not _fast(x) or x.numel() < DROPOUT_NUMPY
                or not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last))):
            return super().forward(x)
        rng = np.random.Generator(np.random.PCG64(int(torch.randint(2**62, ()))))
        uniform = torch.from_numpy(rng.random(x.numel(), dtype=np.float32))
        mask = uniform.lt_(1 - self.p).mul_(1 / (1 - self.p)).as_strided(x.shape, x.stride())
        return _DropoutMask.apply(x, mask)


def _plain(*modules: nn.Module) -> bool:
    """No hooks anywhere that would see what a fused step skips (the maps between the layers)."""
    from torch.nn.modules import module as m

    if m._global_forward_hooks or m._global_forward_pre_hooks or m._global_backward_hooks:
        return False
    return not any(mod._forward_hooks or mod._forward_pre_hooks or mod._backward_hooks
                   or mod._backward_pre_hooks for mod in modules)


class _ReluBatchNormMaxPool(torch.autograd.Function):
    """ReLU -> batch norm with the batch's statistics -> max pooling, in one step.

    With a per-channel scale a = gamma / sqrt(var + eps) > 0, batch norm is an increasing
    affine map a * r + b of the ReLU output r, and max pooling commutes with it: the windows'
    maxima sit in the same cells. So the full map is read for its statistics and pooled, and
    the affine map applied to the pooled map, a quarter of the size; nothing is written at
    full size but ReLU's output. Backward, the sums batch norm's gradient needs (of the
    output gradient, and of it times the normalised input) are nonzero only at the pooled
    cells, so they are taken over the small map, and the full-size gradient is
    a * scatter(dz) + c1 + c2 * r (per channel), masked by r > 0 for the ReLU."""

    @staticmethod
    def forward(ctx, c, weight, bias, bn, pool):
        kernel, stride, padding, dilation, ceil = pool
        r = torch.relu(c)                                                      # (B, C, H, W) channels-last
        mean, var = torch.batch_norm_update_stats(r, *_running(bn))           # var: biased, as batch norm divides by
        invstd = var.add_(bn.eps).rsqrt_()
        a = invstd if weight is None else weight * invstd
        p, index = F.max_pool2d_with_indices(r, kernel, stride, padding, dilation, ceil)  # (B, C, H', W')
        shift = -a * mean if bias is None else bias - a * mean
        ctx.save_for_backward(r, p, index, a, invstd, mean)
        ctx.pool, ctx.has = pool, (weight is not None, bias is not None)
        return torch.addcmul(shift.view(1, -1, 1, 1), p, a.view(1, -1, 1, 1))

    @staticmethod
    def backward(ctx, dz):
        r, p, index, a, invstd, mean = ctx.saved_tensors
        kernel, stride, padding, dilation, ceil = ctx.pool
        c = r.shape[1]
        dz = dz.contiguous(memory_format=torch.channels_last)
        dz2, p2 = dz.permute(0, 2, 3, 1).reshape(-1, c), p.permute(0, 2, 3, 1).reshape(-1, c)  # (B*H'*W', C) views
        sum_dz = dz2.sum(0)                                                    # = sum of dy over the full map
        sum_dz_hat = ((dz2 * p2).sum(0) - mean * sum_dz) * invstd              # = sum of dy * normalised r
        count = r.numel() // c
        c2 = -a * invstd * sum_dz_hat / count
        c1 = -a * sum_dz / count - c2 * mean
        # The pooled cells where r > 0 pass a * dz back; every cell with r > 0 gets c1 + c2 * r.
        src = torch.where(p > 0, dz * a.view(1, -1, 1, 1), 0)
        grad = torch.ops.aten.max_pool2d_with_indices_backward(src, r, kernel, stride, padding, dilation, ceil, index)
        grad.addcmul_(r, c2.view(1, -1, 1, 1)).add_(c1.view(1, -1, 1, 1))
        grad = torch.ops.aten.threshold_backward.grad_input(grad, r, 0, grad_input=grad)
        has_weight, has_bias = ctx.has
        return grad, sum_dz_hat if has_weight else None, sum_dz if has_bias else None, None, None


def _running(bn: nn.BatchNorm2d) -> tuple:
    """(running_mean, running_var, momentum) as nn.BatchNorm2d's training forward uses them,
    counting the batch as it does."""
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        momentum = 1 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    if not bn.track_running_stats:
        return None, None, momentum
    return bn.running_mean, bn.running_var, momentum


def _pool_args(pool: nn.Module, h: int, w: int) -> tuple | None:
    """(kernel, stride, padding, dilation, ceil_mode) of a max pooling layer, or None where it
    does more than PyTorch's max pooling of the map as it is (padded copies, indices returned)."""
    from neuralab.models.layers import MaxPool2dSame  # layers.py imports this module

    if type(pool) is MaxPool2dSame:
        (top, _), (left, _) = pool.same_pads(h, w)
        if top or left or not pool._ceil_is_same(h, w):
            return None
        return pair(pool.kernel_size), pair(pool.stride), (0, 0), (1, 1), True
    if type(pool) is nn.MaxPool2d and not pool.return_indices:
        return (pair(pool.kernel_size), pair(pool.stride or pool.kernel_size), pair(pool.padding),
                pair(pool.dilation), pool.ceil_mode)
    return None


def relu_batchnorm_maxpool(x: torch.Tensor, relu: nn.Module, bn: nn.Module, pool: nn.Module) -> torch.Tensor | None:
    """``pool(bn(relu(x)))`` in one fused step when training on channels-last maps (the sample
    CNN's blocks); None where the step would differ from the three layers (eval mode, another
    layout, hooks that would see the maps in between, a scale gamma that is not positive)."""
    if (type(relu) is not nn.ReLU or type(bn) is not nn.BatchNorm2d or not bn.training or not _fast_map(x)
            or not _plain(relu, bn, pool) or x.shape[1] != bn.num_features):
        return None
    args = _pool_args(pool, *x.shape[-2:])
    if args is None or (bn.weight is not None and not bool((bn.weight > 0).all())):
        return None
    return _ReluBatchNormMaxPool.apply(x, bn.weight, bn.bias, bn, args)


class Sequential(nn.Sequential):
    """nn.Sequential; in training, ReLU -> BatchNorm2d -> max pooling in a row runs as one fused
    step (``relu_batchnorm_maxpool``); every other layer is called as it is."""

    def forward(self, x):
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            if self.training and i + 2 < len(modules) and type(modules[i]) is nn.ReLU:
                y = relu_batchnorm_maxpool(x, *modules[i:i + 3])
                if y is not None:
                    x, i = y, i + 3
                    continue
            x, i = modules[i](x), i + 1
        return x


# PyTorch's layer -> its subclass here. Only these exact classes are swapped: a subclass
# (Conv2dSame, a user's own layer) has a forward of its own that must stay.
FASTER: dict[type[nn.Module], type[nn.Module]] = {nn.Tanh: Tanh, nn.AvgPool2d: AvgPool2d, nn.Conv2d: Conv2d,
                                                  nn.Flatten: Flatten, nn.Dropout: Dropout, nn.Sequential: Sequential}


def accelerate(model: nn.Module) -> nn.Module:
    """Give every layer of ``model`` that has one its faster kernel, in place; returns ``model``.

    The modules stay the same objects with the same parameters, buffers and names; only their
    class changes, to a subclass whose forward computes the same function."""
    for module in model.modules():
        faster = FASTER.get(type(module))
        if faster is not None:
            module.__class__ = faster
    return model


__all__ = ["FASTER", "AvgPool2d", "Conv2d", "Dropout", "Flatten", "Sequential", "Tanh", "accelerate",
           "relu_batchnorm_maxpool"]
