"""Faster CPU kernels for the zoo's layers, computing the same functions: the models stay
plain PyTorch (``nn.Conv2d``, ``nn.Tanh``, ...) and ``accelerate(model)`` swaps each layer's
class for its subclass here, in place. Parameter names, weights, hooks and saved runs do
not change; a layer takes its shortcut only for float32 on CPU outside autocast and ONNX
export (pooling and convolution only for batches of channels-last maps) and is PyTorch's
own layer everywhere else (CUDA, bf16, unbatched inputs).

What each replaces, measured on two cores (docs/benchmarks.md has the runs):

    Tanh        ATen's tanh -> 2 sigmoid(2x) - 1 through ATen's sigmoid; LeNet-5's C1 maps
                (128x6x28x28): 0.74 ms against 1.39 ms
    AvgPool2d   channels-last pooling over fewer than 8 channels -> a depthwise convolution
                with weights 1/(kh*kw) in oneDNN; LeNet-5's S2: 0.44 ms against 0.81 ms
    Conv2d      a window covering the whole unpadded map -> one matrix product (LeNet-5's
                C5, about 2x); fewer than 8 input channels -> the input gradient computed in
                NCHW (LeNet-5's C3: 1.10 ms against 2.15 ms)

Together a LeNet-5 training step at batch 128: 1.17-1.19x.
"""

from __future__ import annotations

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


class Conv2d(nn.Conv2d):
    """nn.Conv2d, with two shortcuts for channels-last maps:

    - a window that covers the whole unpadded input (LeNet-5's C5: 5x5 on a 5x5 map) is a fully
      connected layer, and one matrix product computes it about twice as fast;
    - when the input channels do not fill 8-float vector lanes (LeNet-5's C3 reads 6), oneDNN's
      input gradient takes twice as long as in NCHW, so it is computed there.
    """

    def forward(self, x):
        if not _fast_map(x) or isinstance(self.padding, str) or self.padding_mode != "zeros":
            return super().forward(x)
        if (tuple(x.shape[-2:]) == self.kernel_size and self.padding == (0, 0) and self.dilation == (1, 1)
                and self.groups == 1):
            # Both flattened in (h, w, c) order, the order channels-last keeps them in.
            return F.linear(x.permute(0, 2, 3, 1).flatten(1), self.weight.permute(0, 2, 3, 1).flatten(1),
                            self.bias)[:, :, None, None]
        if x.requires_grad and self.in_channels % 8:
            return _ConvInputGradNCHW.apply(x, self.weight, self.bias,
                                            (self.stride, self.padding, self.dilation, self.groups))
        return super().forward(x)


# PyTorch's layer -> its subclass here. Only these exact classes are swapped: a subclass
# (Conv2dSame, a user's own layer) has a forward of its own that must stay.
FASTER: dict[type[nn.Module], type[nn.Module]] = {nn.Tanh: Tanh, nn.AvgPool2d: AvgPool2d, nn.Conv2d: Conv2d}


def accelerate(model: nn.Module) -> nn.Module:
    """Give every layer of ``model`` that has one its faster kernel, in place; returns ``model``.

    The modules stay the same objects with the same parameters, buffers and names; only their
    class changes, to a subclass whose forward computes the same function."""
    for module in model.modules():
        faster = FASTER.get(type(module))
        if faster is not None:
            module.__class__ = faster
    return model


__all__ = ["FASTER", "AvgPool2d", "Conv2d", "Tanh", "accelerate"]
