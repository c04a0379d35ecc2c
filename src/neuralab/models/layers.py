"""Small pieces the architectures share: Keras-style "same" layers, the workshop's output-size
formula for every conv and pooling layer, and a guard that names the layer where a feature
map would shrink below 1x1."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from neuralab.errors import NeuralabError

# Inputs whose shorter side is below this many pixels (MNIST's 28, CIFAR's 32) get the
# small-input variant of AlexNet, VGG and GoogLeNet; at or above it, the paper's layers.
SMALL_INPUT = 64


def is_small(input_shape: tuple[int, int, int]) -> bool:
    return min(input_shape[1:]) < SMALL_INPUT


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's padding="same": output ceil(size / stride),
    and when the total is odd the extra row or column goes after (bottom / right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class Conv2dSame(nn.Conv2d):
    """Conv2d with Keras ``padding="same"`` for any stride: output ceil(W / S), padded like TF."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, dilation=1,
                 groups: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias)

    def same_pads(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        return (same_padding(h, self.kernel_size[0], self.stride[0], self.dilation[0]),
                same_padding(w, self.kernel_size[1], self.stride[1], self.dilation[1]))

    def forward(self, x):
        (top, bottom), (left, right) = self.same_pads(*x.shape[-2:])
        return super().forward(F.pad(x, (left, right, top, bottom)))


class MaxPool2dSame(nn.MaxPool2d):
    """MaxPool2d with Keras ``padding="same"``: output ceil(W / S); padded cells never win."""

    def __init__(self, kernel_size, stride=None):
        super().__init__(kernel_size, stride)

    def same_pads(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        (kh, kw), (sh, sw) = _pair(self.kernel_size), _pair(self.stride)
        return same_padding(h, kh, sh), same_padding(w, kw, sw)

    def forward(self, x):
        (top, bottom), (left, right) = self.same_pads(*x.shape[-2:])
        return super().forward(F.pad(x, (left, right, top, bottom), value=float("-inf")))


# --- the same layers as PyTorch's, through faster CPU kernels ---------------------------------------
# Measured on LeNet-5 training steps at batch 128 on two cores (docs/benchmarks.md). Each takes
# its shortcut only for float32 on CPU outside autocast and ONNX export (pooling and convolution
# only for batches of channels-last maps), where it computes the same function; everywhere
# else it is the PyTorch layer it extends.

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
        kh, kw = _pair(self.kernel_size)
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


# --- the workshop's formula W_out = floor((W_in - K + 2P) / S) + 1, for one layer ----------------

@dataclass(frozen=True)
class Geometry:
    """How one conv/pool/pad layer maps an (H, W) input to its output, with the arithmetic."""

    out: tuple[int, int]
    formula: str  # e.g. "floor((28 - 3 + 2*0) / 1) + 1 = 26", or "H: ...; W: ..." when they differ


def _dim(n: int, k: int, s: int, pads: tuple[int, int], ceil: bool, same: bool) -> tuple[int, str]:
    before, after = pads
    num = n - k + before + after
    out = (num + (s - 1 if ceil else 0)) // s + 1
    pad = f"2*{before}" if before == after else f"({before}+{after})"
    text = f"{'ceil' if ceil else 'floor'}(({n} - {k} + {pad}) / {s}) + 1 = {out}"
    if ceil and (out - 1) * s >= n + before:  # PyTorch: the last window must start inside the input
        out -= 1
        text += f" - 1 = {out} (the last window would start in the padding)"
    if same:
        text += f" = ceil({n}/{s})"
    return out, text


def _join(h: tuple[int, str], w: tuple[int, str]) -> Geometry:
    return Geometry((h[0], w[0]), h[1] if h[1] == w[1] else f"H: {h[1]}; W: {w[1]}")


def geometry(module: nn.Module, h: int, w: int) -> Geometry | None:
    """The output size of ``module`` for an (h, w) input and the formula that gives it; None
    for layers that keep or do not have a spatial size."""
    if isinstance(module, (Conv2dSame, MaxPool2dSame)):
        pads = module.same_pads(h, w)
        k = [d * (kk - 1) + 1 for kk, d in zip(_pair(module.kernel_size), _pair(getattr(module, "dilation", 1)))]
        s = _pair(module.stride)
        return _join(*(_dim(n, kk, ss, p, False, True) for n, kk, ss, p in zip((h, w), k, s, pads)))
    if isinstance(module, nn.Conv2d):
        rev = module._reversed_padding_repeated_twice  # (left, right, top, bottom), also for padding="same"
        pads = ((rev[2], rev[3]), (rev[0], rev[1]))
        k = [d * (kk - 1) + 1 for kk, d in zip(module.kernel_size, module.dilation)]
        return _join(*(_dim(n, kk, s, p, False, False) for n, kk, s, p in zip((h, w), k, module.stride, pads)))
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kernel, stride, padding = _pair(module.kernel_size), _pair(module.stride or module.kernel_size), _pair(module.padding)
        dilation = _pair(getattr(module, "dilation", 1))
        k = [d * (kk - 1) + 1 for kk, d in zip(kernel, dilation)]
        return _join(*(_dim(n, kk, s, (p, p), module.ceil_mode, False) for n, kk, s, p in zip((h, w), k, stride, padding)))
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        oh, ow = _pair(module.output_size)
        oh, ow = oh or h, ow or w
        return Geometry((oh, ow), f"adaptive: {h}x{w} -> {oh}x{ow}")
    if isinstance(module, nn.ZeroPad2d):
        left, right, top, bottom = module.padding
        return _join((h + top + bottom, f"{h} + {top} + {bottom} = {h + top + bottom}"),
                     (w + left + right, f"{w} + {left} + {right} = {w + left + right}"))
    return None


class MapVanishes(NeuralabError):
    """A conv or pooling layer would turn its feature map into less than 1x1."""

    def __init__(self, layer: str, kind: str, in_hw: tuple[int, int], geo: Geometry):
        self.layer, self.kind, self.in_hw, self.geometry = layer, kind, in_hw, geo
        super().__init__(
            f"{layer} ({kind}) would shrink the {in_hw[0]}x{in_hw[1]} feature map to "
            f"{geo.out[0]}x{geo.out[1]} [{geo.formula}]"
        )


@contextlib.contextmanager
def shape_guard(model: nn.Module, prefix: str = "") -> Iterator[None]:
    """While active, every conv/pool layer in ``model`` checks its output size before it runs
    and raises MapVanishes, naming the layer, when a side would drop below 1."""

    def check(name):
        def hook(module, args):
            h, w = args[0].shape[-2:]
            geo = geometry(module, h, w)
            if geo is not None and min(geo.out) < 1:
                raise MapVanishes(name, type(module).__name__, (h, w), geo)
        return hook

    handles = [m.register_forward_pre_hook(check(".".join(filter(None, (prefix, n)))))
               for n, m in model.named_modules() if geometry(m, 8, 8) is not None]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def flat_size(features: nn.Module, input_shape: tuple[int, int, int], prefix: str = "features") -> int:
    """Width of ``features``' flattened output for inputs of ``input_shape`` (a dry run on an
    empty batch, so it costs nothing); MapVanishes names the layer if the input is too small."""
    with torch.no_grad(), shape_guard(features, prefix):
        return math.prod(features(torch.zeros(0, *input_shape)).shape[1:])
