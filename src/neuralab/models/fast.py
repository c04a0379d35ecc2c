"""Faster CPU kernels for the zoo's layers, computing the same functions: the models stay
plain PyTorch (``nn.Conv2d``, ``nn.Tanh``, ...) and ``accelerate(model)`` swaps each layer's
class for its subclass here, in place; the trainer does it before training. Parameter
names, weights, hooks and saved runs do not change. A layer takes its shortcut only for
float32 on CPU outside autocast and ONNX export (most only for batches of channels-last
maps, the trainer's layout) and is PyTorch's own layer everywhere else (CUDA, unbatched
inputs). Under bfloat16 autocast on CPU (``amp="auto"`` for large models on CPUs with AVX-512
BF16) three keep theirs: Conv2d (a map within the kernel's reach as one product; on outputs
of 4x4 or less, its weight gradient as a product over the windows), ReLU after max pooling,
and Dropout's masks.

What each replaces, and by how much (CPU time of one thread, interleaved with the layer it
replaces on this project's shared 2-core machine, batch 128; docs/speed-rounds.md has the runs):

    Tanh        ATen's tanh -> 2 sigmoid(2x) - 1 through ATen's sigmoid; LeNet-5's C1 maps
                (128x6x28x28): 0.74 ms against 1.39 ms
    AvgPool2d   channels-last pooling over fewer than 8 channels -> windows that tile the map
                as sums of strided views, overlapping ones as a depthwise convolution with
                weights 1/(kh*kw) in oneDNN; LeNet-5's S2, forward and back: 0.29 ms against
                0.57 ms (ATen's pooling) and 0.58 ms (the depthwise convolution)
    Conv2d      a map within the kernel's reach (LeNet-5's C5, VGG's 2x2 and 1x1 maps) -> one
                matrix product with a weight matrix built from the taps, which skips the
                windows' padding (VGG16's 512 -> 512 on 2x2 maps, forward and back, two
                threads: 11 ms against oneDNN's 29; on 1x1 maps 1.4 ms);
                a first layer on one channel -> its weight gradient as one matrix product
                over the input's windows (1->32 3x3: 12 ms against 23 ms; 1->64 5x5: 23 ms
                against 70 ms); fewer than 8 input channels -> the input gradient computed
                in NCHW (LeNet-5's C3: 1.10 ms against 2.15 ms)
    Linear      MKL's matrix product -> oneDNN's inner product, forward and both gradients,
                from 2^24 multiply-adds (``inner_product``): 3136 -> 128 at batch 128 1.97x
                on AMD's AVX-512 CPUs, where MKL keeps to AVX2; 1.19x with oneDNN held to AVX2
    Flatten     channels-last maps -> a channels-last gradient, so that max pooling's
                backward below keeps its fast layout (the sample CNN's second pool: 2.3 ms
                against 11 ms; its step 1.04-1.06x)
    Dropout     ATen's bernoulli_ -> a mask from NumPy's PCG64 generator (seeded from torch's),
                one random byte per value (``keep_mask``), from 8,192 values: 128x32x14x14,
                forward and back, 2.4 ms against 7.2 ms; the MLP's epoch 1.06x
    Sequential  ReLU -> BatchNorm2d -> max pooling in a row, in training -> one fused step that
                normalises the pooled map (the sample CNN's first block, forward and back:
                27 ms against 46 ms; its step 1.07x), its ReLU in place where the layer is;
                ReLU then max pooling -> max pooling then ReLU, exactly the same function,
                with ReLU on the pooled map (AlexNet's first block: ReLU 2.6 ms forward over
                128x64x28x28, its backward over a quarter of it; AlexNet's and VGG16's steps
                1.01x in one thread's CPU time, 1.02x wall with two: 20 alternating pairs);
                Linear [-> ReLU [-> Dropout]] runs of two or more Linear layers, in training ->
                one call with every dropout mask drawn at once (``dense_chain``; the MLP's
                forward 1.11 -> 0.90 ms, its step 1.02-1.14x, its epoch 1.08-1.31x)

A training step with all of them against PyTorch's layers, both channels-last (batch 128, Adam,
the two alternating step by step; wall time of two threads on an AMD EPYC with AVX-512,
2026-12-05): LeNet-5 1.23x (4.6-5.0 ms against 5.7-6.0), the sample CNN 1.39-1.42x (24-27 ms
against 34-36), VGG16 at 28x28 1.29-1.32x (463-477 ms against 587-631).
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuralab.mechanics.shapes import pair
from neuralab.models import dense_chain, inner_product, winograd


def _exporting() -> bool:
    # An export imports torch.onnx first; reading `torch.onnx` here would import it (0.2 s) in every run.
    onnx = sys.modules.get("torch.onnx")
    return onnx is not None and onnx.is_in_onnx_export()


def _fast(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and not _exporting())


def _fast_map(x: torch.Tensor) -> bool:
    """A batch of channels-last float32 maps on CPU."""
    return _fast(x) and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)


def _bf16_map(x: torch.Tensor) -> bool:
    """A batch of channels-last maps on CPU under bfloat16 autocast."""
    return (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16 and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last) and not _exporting())


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


def _out_size(layer: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(ho, wo) of a convolution or pooling layer on the maps x, by models.geometry, which owns the formula."""
    # Imported here: models.geometry imports models.layers, which imports this module.
    from neuralab.models.geometry import geometry

    return geometry(layer, *x.shape[-2:]).out


def _sum(views: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The sum of same-shaped tensors in a new one: the first two in one pass, the rest in place."""
    total = views[0].clone() if len(views) == 1 else torch.add(views[0], views[1])
    for view in views[2:]:
        total += view
    return total


class _WindowMean(torch.autograd.Function):
    """Average pooling over windows that tile the map (kernel = stride, no padding) of
    channels-last maps, as sums of strided views: each window's rows are whole runs of
    kw*C values in memory, so the kh rows add as views, then the kw cells of each run.
    Backward writes each window's share of the gradient into its kh x kw cells by
    concatenation, copies of whole runs. LeNet-5's S2 (128x6x28x28, 2 threads, forward and
    back): 0.29 ms against 0.58 for a depthwise convolution and 0.57 for ATen's pooling."""

    @staticmethod
    def forward(ctx, x, kernel, out):
        (kh, kw), (ho, wo), (n, c) = kernel, out, x.shape[:2]
        ctx.shape, ctx.kernel = x.shape, kernel
        runs = x.permute(0, 2, 3, 1)[:, :ho * kh, :wo * kw].view(n, ho, kh, wo, kw * c)  # cells left over are dropped
        rows = _sum(runs.unbind(2)).view(n, ho, wo, kw, c)                    # each window's rows added
        return _sum(rows.unbind(3)).mul_(1 / (kh * kw)).permute(0, 3, 1, 2)  # (B, C, ho, wo) channels-last

    @staticmethod
    def backward(ctx, grad):
        (kh, kw), (n, c, h, w) = ctx.kernel, ctx.shape
        _, _, ho, wo = grad.shape
        share = grad.permute(0, 2, 3, 1) * (1 / (kh * kw))                     # (B, ho, wo, C)
        runs = torch.cat([share] * kw, -1)                                      # (B, ho, wo, kw*C): a window's row
        cells = torch.stack([runs] * kh, 2).view(n, ho * kh, wo * kw, c)
        if (ho * kh, wo * kw) != (h, w):  # cells outside every window get no gradient
            cells = F.pad(cells, (0, 0, 0, w - wo * kw, 0, h - ho * kh))
        return cells.permute(0, 3, 1, 2), None, None


class AvgPool2d(nn.AvgPool2d):
    """nn.AvgPool2d; unpadded windows over channels-last maps whose channels do not fill
    8-float vector lanes (LeNet-5's 6), where ATen's pooling vectorises over the channels:
    windows that tile the map as sums of strided views (``_WindowMean``), overlapping ones as
    a depthwise convolution with weights 1/(kh*kw), which oneDNN runs in under half the time
    of ATen's pooling, forward and back."""

    def forward(self, x):
        if (not _fast_map(x) or x.shape[1] % 8 == 0 or self.padding not in (0, (0, 0)) or self.ceil_mode
                or self.divisor_override):
            return super().forward(x)
        ho, wo = _out_size(self, x)
        if ho < 1 or wo < 1:  # no window fits: PyTorch's layer says so
            return super().forward(x)
        kernel = pair(self.kernel_size)
        if pair(self.stride) == kernel:
            return _WindowMean.apply(x, kernel, (ho, wo))
        c, (kh, kw) = x.shape[1], kernel
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
    and the weight gradient as one matrix product of the input's windows, laid out
    (kh*kw, B*H*W), with the output gradient, where oneDNN's backward_weights is slow. That
    layout is kh*kw copies of whole rows of the padded input (0.63 ms for the sample CNN's
    128x28x28 batch), where (B*H*W, kh*kw) copied one window of 9 values at a time (1.78 ms).
    A row of ones below the windows makes the bias gradient the product's last row, where a
    sum over the (B*H*W, F) gradient read it all again: weight and bias gradients 1->32 3x3
    1.81 ms against 1.92, 1->64 5x5 5.9 against 6.9 (two threads; 2.64 against 3.07 and 8.9
    against 10.8 in one thread's CPU time). The bias gradient's sum runs in the product's order,
    within 1e-5 of the sum's."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.save_for_backward(x)
        ctx.padding, ctx.shape, ctx.has_bias = padding, weight.shape, bias is not None
        return F.conv2d(x, weight, bias, 1, padding)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        (ph, pw), (f, _, kh, kw) = ctx.padding, ctx.shape
        n, _, ho, wo = grad.shape
        padded = F.pad(x.reshape(n, *x.shape[-2:]), (pw, pw, ph, ph))            # (B, H + 2ph, W + 2pw): one channel
        rows = [padded[:, i:i + ho, j:j + wo] for i in range(kh) for j in range(kw)]
        need_b = ctx.has_bias and ctx.needs_input_grad[2]
        if need_b:  # a row of ones: the product's last row is the bias gradient, without a pass of its own
            rows.append(padded.new_ones(n, ho, wo))
        windows = torch.stack(rows).view(len(rows), -1)
        g = grad.permute(0, 2, 3, 1).reshape(n * ho * wo, f)                   # a view when channels-last
        product = inner_product.product(windows, g)                            # (kh*kw [+ 1], F)
        grad_w = product[:kh * kw].t().reshape(ctx.shape)                      # (F, 1, kh, kw)
        return None, grad_w, product[-1] if need_b else None, None


class _ConvWeightGradOfWindows(torch.autograd.Function):
    """Under bfloat16 autocast, on small maps: oneDNN's forward and input gradient, and the
    weight gradient as one product of the output gradient, (B*ho*wo, F), with the input's
    windows, (B*ho*wo, kh*kw*C). oneDNN computes bfloat16 weight gradients with an older
    kernel than its other passes; on 4x4 maps the product took 1.3-1.6x less time
    (``WINDOWS_MAX_CELLS``): VGG16's step 1.04x at 28x28, 1.07x at 32x32x3."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = grad_b = None
        if need_x:
            grad_x = torch.ops.aten.convolution_backward(grad, x, weight, None, ctx.stride, ctx.padding, (1, 1), False,
                                                         (0, 0), 1, (True, False, False))[0]
        (f, c, kh, kw), (sh, sw), (ph, pw), (n, _, ho, wo) = weight.shape, ctx.stride, ctx.padding, grad.shape
        maps = F.pad(x.permute(0, 2, 3, 1), (0, 0, pw, pw, ph, ph))             # (B, H, W, C), a view when unpadded
        windows = maps.unfold(1, kh, sh).unfold(2, kw, sw).permute(0, 1, 2, 4, 5, 3).reshape(n * ho * wo, -1)
        g = grad.permute(0, 2, 3, 1).reshape(n * ho * wo, f)
        grad_w = (g.t() @ windows).view(f, kh, kw, c).permute(0, 3, 1, 2) if need_w else None  # channels-last
        if need_b and ctx.has_bias:
            grad_b = g.sum(0)
        return grad_x, grad_w, grad_b, None, None


# Output cells (ho*wo) up to which the weight gradient is a product of windows (bfloat16,
# batch 128, medians of 9 on the AMD EPYC: 1.3-1.6x on 4x4 maps; 3x3 kernels on 7x7 maps
# 0.8-1.35x, on 14x14 maps 0.3-1.2x). 1x1 convolutions on 7x7 maps won 1.2-1.5x alone but
# left GoogLeNet's step unchanged, so the rule stays one number.
WINDOWS_MAX_CELLS = 16


class _TapMatrix(torch.autograd.Function):
    """The weights (F, C, kh, kw) as the matrix M^T with conv(x) = x @ M when x and the output
    are flattened in (h, w, c) order, for a stride-1 convolution whose every window reaches
    every input cell: (ho*wo*F, h*w*C), the layout a dense layer's weights have.

    Output (r, q) reads input (i, j) through kernel tap (i - r + ph, j - q + pw), so each
    output cell's block of rows is one slice of the taps, copied whole rows of w*C channels
    at a time from channels-last weights. Backward adds the blocks' gradients back into
    those slices: one pass, where autograd's gradient of the slices and their stack zeroed
    and summed a full-size copy per output cell (VGG16's 512 -> 512 on 2x2 maps, forward
    and back: 11 ms against 22)."""

    @staticmethod
    def forward(ctx, weight, hw, out, padding):
        (h, w), (ho, wo), (ph, pw), (f, c) = hw, out, padding, weight.shape[:2]
        taps = weight.permute(0, 2, 3, 1)  # (F, kh, kw, C): a view if channels-last
        matrix = weight.new_empty(ho, wo, f, h, w, c)
        for r in range(ho):
            for q in range(wo):
                matrix[r, q] = taps[:, ph - r:ph - r + h, pw - q:pw - q + w]
        ctx.geometry = (h, w, ho, wo, ph, pw, weight.shape)
        return matrix.view(ho * wo * f, h * w * c)

    @staticmethod
    def backward(ctx, grad):
        h, w, ho, wo, ph, pw, (f, c, kh, kw) = ctx.geometry
        grad = grad.view(ho, wo, f, h, w, c)
        taps = grad.new_zeros(f, kh, kw, c)
        for r in range(ho):
            for q in range(wo):
                taps[:, ph - r:ph - r + h, pw - q:pw - q + w] += grad[r, q]
        return taps.permute(0, 3, 1, 2), None, None, None                      # (F, C, kh, kw) channels-last


class Conv2d(nn.Conv2d):
    """nn.Conv2d, with four shortcuts for channels-last maps:

    - a map no larger than the kernel's reach (VGG's 2x2 maps under 3x3 kernels, LeNet-5's C5:
      5x5 on a 5x5 map) is a fully connected layer with a weight matrix built from the kernel's
      taps: one matrix product (``inner_product``'s) skips the windows' padding. Under
      bfloat16 autocast too, where oneDNN's bfloat16 convolutions on 2x2 maps run at a
      fraction of their speed on larger ones: VGG16's step 1.07x at 28x28, 1.08x at 32x32x3;
    - a first layer on one input channel (MNIST's) with 16 or more filters gets its weight
      gradient from one matrix product over the input's windows (``inner_product``'s), faster
      than oneDNN's backward: 1->32 3x3 2x on AVX2, 7x on AVX-512 (with three channels or
      LeNet-5's 6 filters oneDNN's is the faster);
    - when the input channels do not fill 8-float vector lanes (LeNet-5's C3 reads 6), oneDNN's
      input gradient takes twice as long as in NCHW, so it is computed there;
    - a wide 3x3 or 5x5 convolution on a batch of small maps runs by Winograd's
      F(4x4, r x r), a quarter (3x3) or a sixth (5x5) of the multiplications, where
      ``winograd.pays``; float32 error up to about 1e-5 of the output's scale. On AVX2 (at
      least 64x192 channel pairs, maps up to 16x16, 16 maps or more: at 28x28 and 32x32x3
      inputs AlexNet's conv2-conv5, GoogLeNet's stem conv3 and its wide Inception branches)
      1.1-2.4x forward and back by layer, training steps at batch 128 AlexNet 1.7-1.8x,
      GoogLeNet 1.2x. On AVX-512, where oneDNN's direct convolution is twice as wide, only
      wider layers (AlexNet's conv3-conv5, VGG16's 256- and 512-filter layers, AlexNet's conv2
      on 16x16): steps at 28x28 VGG16 1.12x, AlexNet 1.05x, GoogLeNet 1.07x, at 32x32x3
      AlexNet 1.40x, VGG16 1.20x, GoogLeNet 1.04x (bench/bench_winograd.py).
    """

    def forward(self, x):
        if isinstance(self.padding, str) or self.padding_mode != "zeros":
            return super().forward(x)
        if _bf16_map(x):  # bfloat16 autocast: F.linear computes in bfloat16, as the convolution would
            y = self._by_matrix(x, F.linear)
            return self._bf16_windows(x) if y is None else y
        if not _fast_map(x):
            return super().forward(x)
        y = self._by_matrix(x, inner_product.linear)
        if y is not None:
            return y
        plain = self.groups == 1 and self.dilation == (1, 1) and self.stride == (1, 1)
        if plain and winograd.pays(self.weight, x.shape):
            return winograd.conv2d(x, self.weight, self.bias, self.padding)
        if plain and not x.requires_grad and self.in_channels == 1 and self.out_channels >= 16:
            return _ConvWeightGradByWindows.apply(x, self.weight, self.bias, self.padding)
        if x.requires_grad and self.in_channels % 8:
            return _ConvInputGradNCHW.apply(x, self.weight, self.bias,
                                            (self.stride, self.padding, self.dilation, self.groups))
        return super().forward(x)

    def _bf16_windows(self, x: torch.Tensor) -> torch.Tensor:
        """Under bfloat16 autocast: the weight gradient as a product of windows on small maps
        (``_ConvWeightGradOfWindows``), PyTorch's own layer elsewhere."""
        if (self.groups != 1 or self.dilation != (1, 1) or not self.weight.requires_grad
                or math.prod(_out_size(self, x)) > WINDOWS_MAX_CELLS):
            return super().forward(x)
        dtype = torch.get_autocast_dtype("cpu")
        bias = None if self.bias is None else self.bias.to(dtype)
        return _ConvWeightGradOfWindows.apply(x.to(dtype), self.weight.to(dtype), bias, self.stride, self.padding)

    def _by_matrix(self, x: torch.Tensor, linear) -> torch.Tensor | None:
        """The convolution as one matrix product ``linear(x, matrix, bias)`` where every window
        reaches every input cell, a map no larger than the kernel's reach (VGG's 2x2 maps under
        a 3x3 kernel, LeNet-5's C5; ``_TapMatrix``); None elsewhere. With one output cell the
        matrix is a view of the taps that cover the map, and autograd's own view backward
        takes its gradient: LeNet-5's step 1.04x (docs/speed-rounds.md, the nineteenth round)."""
        # Output cell q's window covers input cells q - p .. q - p + k - 1. With h + p <= k the
        # first window reaches the last cell, and the last starts at the first: ho - 1 = h + 2p - k <= p.
        (h, w), (ph, pw), (kh, kw) = x.shape[-2:], self.padding, self.kernel_size
        if self.groups != 1 or self.dilation != (1, 1) or self.stride != (1, 1) or h + ph > kh or w + pw > kw:
            return None
        ho, wo = _out_size(self, x)
        if ho < 1 or wo < 1:  # no output: PyTorch's layer says so
            return None
        n, f = len(x), self.out_channels
        if (ho, wo) == (1, 1):  # one output cell reads the taps over the map: a slice, a view of channels-last weights
            matrix, bias = self.weight[:, :, ph:ph + h, pw:pw + w].permute(0, 2, 3, 1).reshape(f, -1), self.bias
        else:
            matrix = _TapMatrix.apply(self.weight, (h, w), (ho, wo), self.padding)  # (ho*wo*F, h*w*C)
            bias = None if self.bias is None else self.bias.repeat(ho * wo)         # each output cell's F biases
        y = linear(x.permute(0, 2, 3, 1).reshape(n, -1), matrix, bias)          # (B, ho*wo*F) in (h, w, c) order
        return y.view(n, ho, wo, f).permute(0, 3, 1, 2)                         # (B, F, ho, wo) channels-last


class Linear(nn.Linear):
    """nn.Linear; in float32 on CPU, a large enough layer (2^17 weights at batch 128) computes
    its products, forward and both gradients, through oneDNN's inner product instead of MKL's
    matrix product (``inner_product``: forward and back 1.7-2.0x on AMD's AVX-512 CPUs, where
    MKL keeps to AVX2, and 1.1-1.4x with oneDNN held to AVX2)."""

    def forward(self, x):
        if _fast(x) and self.weight.dtype == x.dtype and self.weight.device == x.device:
            return inner_product.linear(x, self.weight, self.bias)
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


# Below this many values PyTorch's own dropout is the faster (forward and back, 2 threads: 128x64
# 170 us against 162 with a NumPy mask, 128x32 129 against 154). From 8,192 the MLP's three masks
# (128x256, 128x128, 128x100) made its epoch 1.06x (20 interleaved rounds), once the product's backward
# was autograd's own and the generator's state was set rather than built (docs/speed-rounds.md).
DROPOUT_NUMPY = 1 << 13


def keep_mask(n: int, keep: float, bits: np.random.BitGenerator) -> np.ndarray:
    """``n`` booleans, each True with probability ``keep``, from one random byte per value.

    A byte below floor(256 keep) keeps the value, one above drops it; only a byte equal to
    it (1 value in 256) draws 32 more bits to decide, with the remaining fraction. So the
    probability is ``keep`` to within 2^-40, as with one float per value, from an eighth of
    the random bits: the sample CNN's 128x32x14x14 mask in 0.54 ms against 1.80 ms for
    float32 uniforms (NumPy's PCG64 draws about 3 ns per 64 bits here)."""
    scaled = keep * 256
    whole = int(scaled)
    draws = bits.random_raw(-(-n // 8)).view(np.uint8)[:n]
    kept = draws < whole
    ties = np.flatnonzero(draws == whole)
    if len(ties):
        more = bits.random_raw(-(-len(ties) // 2)).view(np.uint32)[:len(ties)]
        kept[ties] = more < np.uint32(min(round((scaled - whole) * 2**32), 2**32 - 1))
    return kept


_PCG64_INCREMENT = 0xDA3E39CB94B95BDB  # odd, as PCG64's increment must be; the state alone picks the place
_local = threading.local()


def _bits() -> np.random.PCG64:
    """A PCG64 generator at a place drawn from torch's generator (124 bits), so torch.manual_seed
    repeats the masks. Setting the state of one generator per thread takes 2 us, where a new
    PCG64(seed) hashes its seed through a SeedSequence in 24."""
    bits = getattr(_local, "bits", None)
    if bits is None:
        bits = _local.bits = np.random.PCG64()
    high, low = torch.randint(2**62, (2,)).tolist()
    bits.state = {"bit_generator": "PCG64", "state": {"state": high << 62 | low, "inc": _PCG64_INCREMENT},
                  "has_uint32": 0, "uinteger": 0}
    return bits


class Dropout(nn.Dropout):
    """nn.Dropout; in training on CPU its mask comes from NumPy's PCG64 generator, seeded from
    torch's, one random byte per value (``keep_mask``), where ATen's bernoulli_ draws a
    double per value: 128x32x14x14, forward and back, 2.4 ms against 7.2 ms (and 3.0 ms with
    a float32 uniform per value from NumPy). Each value is kept with probability 1 - p and
    scaled by 1 / (1 - p), as in PyTorch; the draws differ from PyTorch's, and
    torch.manual_seed repeats them. bfloat16 maps (under autocast) too, where ATen's
    bernoulli_ is slower still: AlexNet's two dropouts took 8 ms of its 221 ms step."""

    def forward(self, x):
        bf16 = x.dtype == torch.bfloat16 and x.device.type == "cpu" and not _exporting()
        if (not self.training or self.inplace or not 0 < self.p < 1 or not (_fast(x) or bf16)
                or x.numel() < DROPOUT_NUMPY
                or not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last))):
            return super().forward(x)
        keep = keep_mask(x.numel(), 1 - self.p, _bits())
        if bf16:  # 0 or 1 / (1 - p) rounded to bfloat16, as PyTorch scales: written as its 16 bits
            scale = torch.tensor(1 / (1 - self.p), dtype=torch.bfloat16).view(torch.int16).item()
            mask = torch.from_numpy(np.multiply(keep, np.uint16(scale), dtype=np.uint16)).view(torch.bfloat16)
        else:  # 0 or 1 / (1 - p) in float32; NumPy's bool-to-float product takes a third of torch.mul's time
            mask = torch.from_numpy(np.multiply(keep, np.float32(1 / (1 - self.p)), dtype=np.float32))
        # autograd's own product: its backward (grad * mask) runs without a call into Python
        return x * mask.as_strided(x.shape, x.stride())


def _plain(*modules: nn.Module) -> bool:
    """No hooks anywhere that would see what a fused step skips (the maps between the layers)."""
    from torch.nn.modules import module as m

    if (m._global_forward_hooks or m._global_forward_pre_hooks or m._global_backward_hooks
            or m._global_backward_pre_hooks):
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
    a * scatter(dz) + c1 + c2 * r (per channel), masked by r > 0 for the ReLU.

    An in-place ReLU (``nn.ReLU(inplace=True)``, the sample CNN's) overwrites the convolution's
    output as PyTorch's layer does, instead of writing a new full-size map (the first block:
    2.34 ms against 2.91 for the convolution and its ReLU); autograd must then see that
    map as an output of this step, so it is returned too, and its gradient is always None."""

    @staticmethod
    def forward(ctx, c, weight, bias, bn, pool, inplace):
        kernel, stride, padding, dilation, ceil = pool
        ctx.set_materialize_grads(False)
        if inplace:
            r = c.relu_()                                                      # (B, C, H, W) channels-last
            ctx.mark_dirty(c)
        else:
            r = torch.relu(c)
        mean, var = torch.batch_norm_update_stats(r, *_running(bn))           # var: biased, as batch norm divides by
        invstd = var.add_(bn.eps).rsqrt_()
        a = invstd if weight is None else weight * invstd
        p, index = F.max_pool2d_with_indices(r, kernel, stride, padding, dilation, ceil)  # (B, C, H', W')
        shift = -a * mean if bias is None else bias - a * mean
        ctx.save_for_backward(r, p, index, a, invstd, mean)
        ctx.pool, ctx.has = pool, (weight is not None, bias is not None)
        return torch.addcmul(shift.view(1, -1, 1, 1), p, a.view(1, -1, 1, 1)), r

    @staticmethod
    def backward(ctx, dz, _):
        if dz is None:  # nothing below the pooled map was used
            return None, None, None, None, None, None
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
        src = torch.ops.aten.threshold_backward(dz * a.view(1, -1, 1, 1), p, 0)   # a * dz where p > 0, else 0
        grad = torch.ops.aten.max_pool2d_with_indices_backward(src, r, kernel, stride, padding, dilation, ceil, index)
        grad.addcmul_(r, c2.view(1, -1, 1, 1)).add_(c1.view(1, -1, 1, 1))
        grad = torch.ops.aten.threshold_backward.grad_input(grad, r, 0, grad_input=grad)
        has_weight, has_bias = ctx.has
        return grad, sum_dz_hat if has_weight else None, sum_dz if has_bias else None, None, None, None


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
    # In place only where the ReLU itself is, and where autograd allows it: not on a leaf that
    # needs a gradient, nor on a view (a small map's convolution gives one, `_TapMatrix`), which
    # a function of two outputs may not change
    inplace = relu.inplace and not (x.is_leaf and x.requires_grad) and not x._is_view()
    return _ReluBatchNormMaxPool.apply(x, bn.weight, bn.bias, bn, args, inplace)[0]


def maxpool_relu(x: torch.Tensor, relu: nn.Module, pool: nn.Module) -> torch.Tensor | None:
    """``pool(relu(x))`` computed as ``relu(pool(x))`` on channels-last maps (AlexNet's three
    blocks, VGG's); None where that would differ from the two layers (hooks that would see the
    map in between, a pooling that pads a copy or returns indices).

    ReLU is nondecreasing, so the window's maximum of relu(x) is relu of its maximum: the same
    values. The gradient is the same too: where a window's maximum is positive, both send it to
    the first cell holding that maximum (the negative cells that ReLU zeroes are below it);
    where it is at most 0, ReLU's gradient stops it in both. So ReLU reads and writes the pooled
    map, a quarter of the full one (or less), forward and back. The full map is not overwritten
    as an in-place ReLU would: nothing but the pooling reads it."""
    if type(relu) is not nn.ReLU or not (_fast_map(x) or _bf16_map(x)) or not _plain(relu, pool):
        return None
    args = _pool_args(pool, *x.shape[-2:])
    if args is None:
        return None
    return F.max_pool2d(x, *args).relu_()


class Sequential(nn.Sequential):
    """nn.Sequential; in training, ReLU -> BatchNorm2d -> max pooling in a row runs as one fused
    step (``relu_batchnorm_maxpool``), ReLU -> max pooling as max pooling -> ReLU
    (``maxpool_relu``), and a run of dense layers in one call (``dense_chain``); every other
    layer is called as it is."""

    def forward(self, x):
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            if self.training:  # dense_chain says None at once where no run of Linear layers starts
                y = dense_chain.dense_chain(x, modules, i)
                if y is not None:
                    x, i = y
                    continue
            if self.training and i + 2 < len(modules) and type(modules[i]) is nn.ReLU:
                y = relu_batchnorm_maxpool(x, *modules[i:i + 3])
                if y is not None:
                    x, i = y, i + 3
                    continue
            if i + 1 < len(modules) and type(modules[i]) is nn.ReLU:
                y = maxpool_relu(x, *modules[i:i + 2])
                if y is not None:
                    x, i = y, i + 2
                    continue
            x, i = modules[i](x), i + 1
        return x


# PyTorch's layer -> its subclass here. Only these exact classes are swapped: a subclass
# (Conv2dSame, a user's own layer) has a forward of its own that must stay.
FASTER: dict[type[nn.Module], type[nn.Module]] = {nn.Tanh: Tanh, nn.AvgPool2d: AvgPool2d, nn.Conv2d: Conv2d,
                                                  nn.Linear: Linear, nn.Flatten: Flatten, nn.Dropout: Dropout,
                                                  nn.Sequential: Sequential}


def accelerate(model: nn.Module) -> nn.Module:
    """Give every layer of ``model`` that has one its faster kernel, in place; returns ``model``.

    The modules stay the same objects with the same parameters, buffers and names; only their
    class changes, to a subclass whose forward computes the same function."""
    from neuralab.models import inception_fast  # noqa: F401  registers GoogLeNet's Inception here (it imports this module)

    for module in model.modules():
        faster = FASTER.get(type(module))
        if faster is not None:
            module.__class__ = faster
    return model


__all__ = ["FASTER", "AvgPool2d", "Conv2d", "Dropout", "Flatten", "Linear", "Sequential", "Tanh", "accelerate", "keep_mask",
           "maxpool_relu", "relu_batchnorm_maxpool"]
