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

A training step with all of them: LeNet-5 1.20x, the sample CNN 1.08x (1.41x against
PyTorch's layers in NCHW, the plain loop's layout), VGG16 at 28x28 1.22x.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuralab.mechanics.shapes import pair


def _fast(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and not torch.onnx.is_in_onnx_export())


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


# PyTorch's layer -> its subclass here. Only these exact classes are swapped: a subclass
# (Conv2dSame, a user's own layer) has a forward of its own that must stay.
FASTER: dict[type[nn.Module], type[nn.Module]] = {nn.Tanh: Tanh, nn.AvgPool2d: AvgPool2d, nn.Conv2d: Conv2d,
                                                  nn.Flatten: Flatten, nn.Dropout: Dropout}


def accelerate(model: nn.Module) -> nn.Module:
    """Give every layer of ``model`` that has one its faster kernel, in place; returns ``model``.

    The modules stay the same objects with the same parameters, buffers and names; only their
    class changes, to a subclass whose forward computes the same function."""
    for module in model.modules():
        faster = FASTER.get(type(module))
        if faster is not None:
            module.__class__ = faster
    return model


__all__ = ["FASTER", "AvgPool2d", "Conv2d", "Dropout", "Flatten", "Tanh", "accelerate"]
