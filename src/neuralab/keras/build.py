"""A spec (neuralab.keras.spec) as a native PyTorch module, with Keras's weights if given.

The module takes and returns PyTorch's layouts: (N, C, H, W) for images, (N, T, F) for
sequences, (N, F) for vectors. A chain of layers becomes an ``nn.Sequential`` whose children
are named after the Keras layers ("conv2d", then "conv2d_tanh" for its activation); a graph
with branches a small module that runs its blocks in the spec's order. Where Keras computes
differently from PyTorch's defaults, the module does what Keras does:

- padding="same" puts the odd row or column at the bottom/right (TensorFlow's rule), and the
  "same" average pooling divides by the cells inside the input only;
- Flatten after maps: Keras flattens (H, W, C), PyTorch (C, H, W); the next Dense's kernel rows
  are permuted to match, so the module flattens natively (elsewhere it flattens channels last);
- BatchNormalization keeps Keras's epsilon and momentum (PyTorch's momentum = 1 - Keras's) and
  averages the batch variance into moving_variance the way the source Keras did;
- LSTM and SimpleRNN have one bias in Keras: PyTorch's second (hidden) bias is held at zero and
  not trained; GRU's gates are reordered from Keras's (z, r, h) to PyTorch's (r, z, n).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuralab.keras.augment import augmentation, noise
from neuralab.keras.layers import ALIASES, AUGMENTATION
from neuralab.keras.spec import check
from neuralab.models.fast import AvgPool2d, Conv2d, Tanh
from neuralab.models.layers import Conv2dSame, MaxPool2dSame, same_padding

# Layers that commute with a permutation of features
_ELEMENTWISE = ("Dropout", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "GaussianNoise", "GaussianDropout")


# --- modules for what PyTorch has no layer for -------------------------------------------------

class Rescale(nn.Module):
    """Keras's Rescaling: x * scale + offset (one value, or one per channel)."""

    def __init__(self, scale, offset, maps: bool):
        super().__init__()
        shape = (-1, 1, 1) if maps else (-1,)
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).reshape(shape), persistent=False)
        self.register_buffer("offset", torch.tensor(offset, dtype=torch.float32).reshape(shape), persistent=False)

    def forward(self, x):
        return x * self.scale + self.offset


class AvgPool2dSame(nn.Module):
    """Average pooling with Keras's padding="same": TensorFlow's padding (extra row/column at the
    bottom/right), each window averaged over its cells inside the input only."""

    def __init__(self, kernel_size, stride):
        super().__init__()
        self.kernel_size, self.stride = tuple(kernel_size), tuple(stride)

    def forward(self, x):
        (top, bottom), (left, right) = (same_padding(n, k, s) for n, k, s in zip(x.shape[-2:], self.kernel_size, self.stride))
        pad = (left, right, top, bottom)
        total = F.avg_pool2d(F.pad(x, pad), self.kernel_size, self.stride)
        inside = F.avg_pool2d(F.pad(x.new_ones(1, 1, *x.shape[-2:]), pad), self.kernel_size, self.stride)
        return total / inside  # (sum / window) / (cells inside / window)


class FlattenChannelsLast(nn.Module):
    """Keras's Flatten of (N, C, H, W) maps: in (H, W, C) order, as Keras lays them out."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)


class Reshape(nn.Module):
    """Keras's Reshape to ``target`` (its shape without the batch, channels last)."""

    def __init__(self, target):
        super().__init__()
        self.target = tuple(target)

    def forward(self, x):
        x = x.permute(0, 2, 3, 1) if x.dim() == 4 else x  # to Keras's layout
        x = x.reshape(x.shape[0], *self.target)
        return x.permute(0, 3, 1, 2) if x.dim() == 4 else x


class OnSequences(nn.Module):
    """A 2-D layer run on sequences (N, T, F) as maps of height 1, (N, F, 1, T): Conv1D and the
    1-D poolings are the 2-D layers with (1, K) windows, TensorFlow's "same" rule included."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x.transpose(1, 2).unsqueeze(2)).squeeze(2).transpose(1, 2)


class GlobalPool(nn.Module):
    """Global average or max over the spatial (N, C, H, W) or time (N, T, F) axes."""

    def __init__(self, op: str, dims: tuple[int, ...], keepdims: bool):
        super().__init__()
        self.op, self.dims, self.keepdims = op, dims, keepdims

    def forward(self, x):
        if self.op == "mean":
            return x.mean(self.dims, keepdim=self.keepdims)
        return x.amax(self.dims, keepdim=self.keepdims)


class BatchNorm(nn.modules.batchnorm._BatchNorm):
    """Keras's BatchNormalization over the channels: dim 1 of (N, C) and (N, C, H, W), the last
    axis of sequences (N, T, C). With ``unbiased=False`` (Keras 3) moving_variance averages the
    batch's plain variance; PyTorch, and TF-Keras 2 on images, average the Bessel-corrected one."""

    def __init__(self, channels: int, eps: float, keras_momentum: float, unbiased: bool):
        super().__init__(channels, eps, 1 - keras_momentum)
        self.unbiased, self.frozen = unbiased, False

    def _check_input_dim(self, x):
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"expected a 2, 3 or 4-dimensional input, got {x.dim()} dimensions")

    def forward(self, x):
        if x.dim() == 3:  # (N, T, C) -> (N, C, T): PyTorch's channels come second
            return self._normalize(x.transpose(1, 2)).transpose(1, 2)
        return self._normalize(x)

    def _normalize(self, x):
        if self.frozen:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        if not self.training or self.unbiased:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        with torch.no_grad():
            var, mean = torch.var_mean(x, dims, correction=0)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)
            self.num_batches_tracked += 1
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class Recurrent(nn.Module):
    """Keras's SimpleRNN, LSTM or GRU on (N, T, F): the whole sequence (N, T, U) with
    return_sequences, else the last step (N, U). Keras's ``dropout`` drops the same input
    features at every step of a sequence, its ``recurrent_dropout`` the same units of the state
    entering the recurrent kernel (which PyTorch's layers lack: training then runs step by step)."""

    def __init__(self, rnn: nn.Module, return_sequences: bool, dropout: float, recurrent_dropout: float = 0.0):
        super().__init__()
        self.rnn, self.return_sequences, self.dropout = rnn, return_sequences, dropout
        self.recurrent_dropout = recurrent_dropout

    def forward(self, x):
        if self.training and self.dropout:
            x = x * F.dropout(x.new_ones(x.shape[0], 1, x.shape[2]), self.dropout)
        if self.training and self.recurrent_dropout:
            units = self.rnn.units if isinstance(self.rnn, GRUResetBefore) else self.rnn.hidden_size
            y = masked_steps(self.rnn, x, F.dropout(x.new_ones(x.shape[0], units), self.recurrent_dropout))
        else:
            y = self.rnn(x)[0]
        return y if self.return_sequences else y[:, -1]


def masked_steps(rnn: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The outputs (N, T, U) of ``rnn`` run step by step, the state multiplied by ``mask``
    (N, U) where it enters the recurrent kernel, as Keras's recurrent dropout does (a GRU's
    update keeps the state unmasked, an LSTM's cell state is untouched)."""
    if isinstance(rnn, GRUResetBefore):
        return rnn(x, mask)[0]
    w_ih, w_hh = rnn.weight_ih_l0, rnn.weight_hh_l0
    b_ih, b_hh = (rnn.bias_ih_l0, rnn.bias_hh_l0) if rnn.bias else (None, None)
    h = c = x.new_zeros(x.shape[0], rnn.hidden_size)
    out = []
    for t in range(x.shape[1]):
        if isinstance(rnn, nn.LSTM):
            h, c = torch.lstm_cell(x[:, t], (h * mask, c), w_ih, w_hh, b_ih, b_hh)
        elif isinstance(rnn, nn.GRU):  # PyTorch's gate order r, z, n
            ir, iz, i_n = F.linear(x[:, t], w_ih, b_ih).chunk(3, 1)
            hr, hz, h_n = F.linear(h * mask, w_hh, b_hh).chunk(3, 1)
            r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
            h = (1 - z) * torch.tanh(i_n + r * h_n) + z * h
        else:
            h = F.linear(x[:, t], w_ih, b_ih) + F.linear(h * mask, w_hh, b_hh)
            h = torch.tanh(h) if rnn.nonlinearity == "tanh" else torch.relu(h)
        out.append(h)
    return torch.stack(out, 1)


class GRUResetBefore(nn.Module):
    """Keras's GRU with reset_after=False (the 2014 paper's form, which PyTorch lacks): the reset
    gate scales the state before the recurrent kernel, h~ = tanh(W_h x + U_h (r * h) + b_h).
    Weights in Keras's gate order (z, r, h)."""

    def __init__(self, input_size: int, units: int, bias: bool):
        super().__init__()
        self.units = units
        self.weight_ih = nn.Parameter(torch.empty(3 * units, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * units, units))
        self.bias = nn.Parameter(torch.zeros(3 * units)) if bias else None
        nn.init.xavier_uniform_(self.weight_ih)
        nn.init.orthogonal_(self.weight_hh)

    def forward(self, x, mask=None):
        """``mask``: Keras's recurrent dropout (see masked_steps), or None."""
        u = self.units
        xs = F.linear(x, self.weight_ih, self.bias)  # (N, T, 3U): the input's part of every gate
        h = x.new_zeros(x.shape[0], u)
        out = []
        for t in range(x.shape[1]):
            hm = h if mask is None else h * mask
            zr = torch.sigmoid(xs[:, t, :2 * u] + hm @ self.weight_hh[:2 * u].T)
            z, r = zr[:, :u], zr[:, u:]
            h = z * h + (1 - z) * torch.tanh(xs[:, t, 2 * u:] + (r * hm) @ self.weight_hh[2 * u:].T)
            out.append(h)
        return torch.stack(out, 1), h


class Merge(nn.Module):
    """Keras's Add, Subtract, Multiply, Average, Maximum, Minimum and Concatenate."""

    def __init__(self, op: str, dim: int = 1):
        super().__init__()
        self.op, self.dim = op, dim

    def forward(self, *xs):
        if self.op == "Concatenate":
            return torch.cat(xs, self.dim)
        rank = max(x.dim() for x in xs)
        xs = [x if x.dim() == rank else _expanded(x, rank) for x in xs]
        if self.op == "Subtract":
            return xs[0] - xs[1]
        fn = {"Maximum": torch.maximum, "Minimum": torch.minimum, "Multiply": torch.mul}.get(self.op, torch.add)
        total = functools.reduce(fn, xs)
        return total / len(xs) if self.op == "Average" else total


def _expanded(x, rank: int):
    """``x`` of a lower rank made to broadcast against tensors of ``rank`` as Keras's merges
    make it: axes of size 1 put in after the batch; in maps' layout when it reaches 4 (an
    (N, C) vector becomes (N, C, 1, 1), as Keras's (N, 1, 1, C))."""
    for _ in range(rank - x.dim()):
        x = x.unsqueeze(1)
    return x.permute(0, 3, 1, 2) if rank == 4 else x


class KerasGraph(nn.Module):
    """A functional Keras model with branches: its blocks run in the spec's order, each on the
    outputs of the blocks it names."""

    def __init__(self, blocks: OrderedDict[str, nn.Module], wiring: list[tuple[str, list[str]]], inp: str, out: str):
        super().__init__()
        self.blocks = nn.ModuleDict(blocks)
        self.wiring, self.input, self.output = wiring, inp, out

    def forward(self, x):
        values = {self.input: x}
        for name, inputs in self.wiring:
            values[name] = self.blocks[name](*(values[i] for i in inputs))
        return values[self.output]


# --- one Keras layer -> PyTorch modules, with its weights -------------------------------------

def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _set(param: torch.Tensor, value: np.ndarray | torch.Tensor) -> None:
    with torch.no_grad():
        param.copy_(value if isinstance(value, torch.Tensor) else _t(value))


class BinaryLogits(nn.Module):
    """One sigmoid unit's pre-activation z (N, 1) as 2-class logits [0, z] (N, 2): their softmax
    is [1 - sigmoid(z), sigmoid(z)], their cross-entropy the binary one on z (spec.binary_classifier)."""

    def forward(self, z):
        return torch.cat([torch.zeros_like(z), z], dim=1)


class Exp(nn.Module):
    """Keras's "exponential" activation."""

    def forward(self, x):
        return torch.exp(x)


_ACTIVATIONS = {"relu": nn.ReLU, "tanh": Tanh, "sigmoid": nn.Sigmoid, "elu": nn.ELU, "selu": nn.SELU,
                "softplus": nn.Softplus, "softsign": nn.Softsign, "swish": nn.SiLU, "silu": nn.SiLU, "gelu": nn.GELU,
                "relu6": nn.ReLU6, "leaky_relu": lambda: nn.LeakyReLU(0.2),  # Keras 3's default slope
                "mish": nn.Mish, "hard_silu": nn.Hardswish, "hard_swish": nn.Hardswish, "exponential": Exp}


def _activation(name: str, rank: int) -> nn.Module:
    """Keras activation ``name`` on an input of Keras rank ``rank`` (1, 2 or 3 without the
    batch); Keras's softmax runs over the last axis, channels for images (PyTorch's dim 1)."""
    dim = 1 if rank == 3 else -1
    if name == "softmax":
        return nn.Softmax(dim)
    if name == "log_softmax":
        return nn.LogSoftmax(dim)
    return _ACTIVATIONS[name]()


def _conv2d(e, w, _):
    a = e["args"]
    c, same = e["input_shapes"][0][-1], a["padding"] == "same"
    cls = Conv2dSame if same else Conv2d
    m = cls(c, a["filters"], tuple(a["kernel_size"]), stride=tuple(a["strides"]), dilation=tuple(a["dilation_rate"]),
            groups=a["groups"], bias=a["use_bias"])
    if w:
        _set(m.weight, w["kernel"].transpose(3, 2, 0, 1))  # (kh, kw, in, out) -> (out, in, kh, kw)
        if a["use_bias"]:
            _set(m.bias, w["bias"])
    return m


def _conv1d(e, w, _):
    a = e["args"]
    c, (k,), (d,) = e["input_shapes"][0][-1], a["kernel_size"], a["dilation_rate"]
    cls = Conv2dSame if a["padding"] == "same" else Conv2d
    conv = cls(c, a["filters"], (1, k), stride=(1, a["strides"][0]), dilation=(1, d), groups=a["groups"],
               bias=a["use_bias"])
    if w:
        _set(conv.weight, w["kernel"].transpose(2, 1, 0)[:, :, None, :])  # (k, in, out) -> (out, in, 1, k)
        if a["use_bias"]:
            _set(conv.bias, w["bias"])
    if a["padding"] == "causal":  # step t sees steps up to t: all the padding before
        conv = nn.Sequential(OrderedDict(pad=nn.ZeroPad2d((d * (k - 1), 0, 0, 0)), conv=conv))
    return OnSequences(conv)


def _depthwise(e, w, kernel: str) -> nn.Module:
    """Keras's depthwise kernel (kh, kw, C, M) as a convolution with one group per channel,
    whose output channel c * M + m is channel c's m-th kernel, as Keras orders them."""
    a = e["args"]
    kh, kw, c, m = e["weights"][0][1]
    cls = Conv2dSame if a["padding"] == "same" else Conv2d
    bias = a["use_bias"] and e["class"] == "DepthwiseConv2D"  # a separable one's bias comes after the pointwise
    conv = cls(c, c * m, (kh, kw), stride=tuple(a["strides"]), dilation=tuple(a["dilation_rate"]), groups=c, bias=bias)
    conv.keras_fans = (kh * kw * c, kh * kw * m)  # Glorot's fans as Keras counts them (see keras_init)
    if w:
        _set(conv.weight, w[kernel].transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw))
        if bias:
            _set(conv.bias, w["bias"])
    return conv


def _separable_conv2d(e, w, _):
    a = e["args"]
    depthwise = _depthwise(e, w, "depthwise_kernel")
    pointwise = Conv2d(depthwise.out_channels, a["filters"], 1, bias=a["use_bias"])
    if w:
        _set(pointwise.weight, w["pointwise_kernel"].transpose(3, 2, 0, 1))
        if a["use_bias"]:
            _set(pointwise.bias, w["bias"])
    return nn.Sequential(OrderedDict(depthwise=depthwise, pointwise=pointwise))


def _pool(e, w, _):
    a = e["args"]
    k, s = tuple(a["pool_size"]), tuple(a["strides"])
    if len(k) == 1:  # MaxPooling1D, AveragePooling1D
        return OnSequences(_pool({"class": e["class"].replace("1D", "2D"), "args": {
            **a, "pool_size": (1, *k), "strides": (1, *s)}}, w, _))
    if e["class"] == "MaxPooling2D":
        return MaxPool2dSame(k, s) if a["padding"] == "same" else nn.MaxPool2d(k, s)
    return AvgPool2dSame(k, s) if a["padding"] == "same" else AvgPool2d(k, s)


def _dense(e, w, hwc):
    a = e["args"]
    n, units = e["weights"][0][1]
    maps = len(e["input_shapes"][0]) == 4
    m = nn.Conv2d(n, units, 1, bias=a["use_bias"]) if maps else nn.Linear(n, units, bias=a["use_bias"])
    if w:
        kernel = w["kernel"]
        if hwc:  # rows in Keras's (H, W, C) flattening order -> PyTorch's (C, H, W)
            kernel = kernel.reshape(*hwc, units).transpose(2, 0, 1, 3).reshape(n, units)
        _set(m.weight, kernel.T.reshape(m.weight.shape))
        if a["use_bias"]:
            _set(m.bias, w["bias"])
    return m


def _batch_norm(e, w, _):
    a = e["args"]
    c = e["input_shapes"][0][-1]
    m = BatchNorm(c, a["epsilon"], a["momentum"], a["unbiased_moving_variance"])
    m.weight.requires_grad_(a["scale"])   # Keras's scale=False: gamma is 1 and not trained
    m.bias.requires_grad_(a["center"])    # center=False: beta is 0 and not trained
    if w:
        for param, key in ((m.weight, "gamma"), (m.bias, "beta"), (m.running_mean, "moving_mean"),
                           (m.running_var, "moving_variance")):
            if key in w:
                _set(param, w[key])
    return m


def _gru_order(a: np.ndarray, units: int) -> np.ndarray:
    """Keras's gate blocks (z, r, h) along the last axis -> PyTorch's (r, z, n)."""
    return np.concatenate([a[..., units:2 * units], a[..., :units], a[..., 2 * units:]], axis=-1)


def _recurrent(e, w, _):
    a = e["args"]
    f, units, cls = e["input_shapes"][0][-1], a["units"], e["class"]
    bias = a["use_bias"]
    if cls == "GRU" and not a["reset_after"]:
        rnn = GRUResetBefore(f, units, bias)
        if w:
            _set(rnn.weight_ih, w["kernel"].T)
            _set(rnn.weight_hh, w["recurrent_kernel"].T)
            if bias:
                _set(rnn.bias, w["bias"])
        return Recurrent(rnn, a["return_sequences"], a["dropout"], a.get("recurrent_dropout", 0.0))
    if cls == "SimpleRNN":
        rnn = nn.RNN(f, units, nonlinearity=a["activation"], bias=bias, batch_first=True)
    else:
        rnn = (nn.LSTM if cls == "LSTM" else nn.GRU)(f, units, bias=bias, batch_first=True)
    order = (lambda x: _gru_order(x, units)) if cls == "GRU" else (lambda x: x)  # LSTM: i, f, c, o in both
    if bias and cls != "GRU":
        rnn.bias_hh_l0.requires_grad_(False)  # Keras has one bias: the second stays 0
        nn.init.zeros_(rnn.bias_hh_l0)
    if w:
        _set(rnn.weight_ih_l0, order(w["kernel"]).T)
        _set(rnn.weight_hh_l0, order(w["recurrent_kernel"]).T)
        if bias and cls == "GRU":
            _set(rnn.bias_ih_l0, order(w["bias"][0]))
            _set(rnn.bias_hh_l0, order(w["bias"][1]))
        elif bias:
            _set(rnn.bias_ih_l0, w["bias"])
    return Recurrent(rnn, a["return_sequences"], a["dropout"], a.get("recurrent_dropout", 0.0))


class Bidirectional(nn.Module):
    """Keras's Bidirectional: the forward layer on the sequence and the backward one on it
    reversed (its outputs put back in time order), merged."""

    def __init__(self, forward_layer: Recurrent, backward_layer: Recurrent, merge_mode: str):
        super().__init__()
        self.forward_layer, self.backward_layer, self.merge_mode = forward_layer, backward_layer, merge_mode

    def forward(self, x):
        y, back = self.forward_layer(x), self.backward_layer(x.flip(1))
        if self.backward_layer.return_sequences:
            back = back.flip(1)
        if self.merge_mode == "concat":
            return torch.cat([y, back], -1)
        if self.merge_mode == "mul":
            return y * back
        return y + back if self.merge_mode == "sum" else (y + back) / 2


def _bidirectional(e, w, _):
    inner = e["args"]["layer"]
    one = {"class": inner["class_name"], "args": inner["config"], "input_shapes": e["input_shapes"]}
    halves = [_recurrent(one, {n[len(d) + 1:]: v for n, v in w.items() if n.startswith(d + "_")} if w else None, _)
              for d in ("forward", "backward")]
    return Bidirectional(*halves, e["args"]["merge_mode"])


def _rank(e) -> int:
    """The Keras rank of the layer's input without the batch: 1 vectors, 2 sequences, 3 images."""
    return len(e["input_shapes"][0]) - 1


def _global_pool(e, w, hwc):
    op = "max" if "Max" in e["class"] else "mean"
    return GlobalPool(op, (2, 3) if _rank(e) == 3 else (1,), e["args"]["keepdims"])


def _zero_padding(e, w, hwc):
    (top, bottom), (left, right) = e["args"]["padding"]
    return nn.ZeroPad2d((left, right, top, bottom))


def _relu(e, w, hwc):
    top = e["args"].get("max_value")
    return nn.ReLU() if top is None else nn.Hardtanh(0.0, top)


def _concatenate(e, w, hwc):
    axis = e["args"]["axis"]  # Keras's, counting the batch as 0
    return Merge("Concatenate", {1: 2, 2: 3, 3: 1}[axis] if _rank(e) == 3 else axis)


# Keras class -> (spec entry, its weights or None, the (H, W, C) its Dense rows were flattened from) -> module
_MODULES = {
    "Conv2D": _conv2d, "MaxPooling2D": _pool, "AveragePooling2D": _pool, "Dense": _dense,
    "Conv1D": _conv1d, "MaxPooling1D": _pool, "AveragePooling1D": _pool,
    "DepthwiseConv2D": lambda e, w, hwc: _depthwise(e, w, "kernel"), "SeparableConv2D": _separable_conv2d,
    "BatchNormalization": _batch_norm, "SimpleRNN": _recurrent, "LSTM": _recurrent, "GRU": _recurrent,
    "GlobalAveragePooling2D": _global_pool, "GlobalMaxPooling2D": _global_pool,
    "GlobalAveragePooling1D": _global_pool, "GlobalMaxPooling1D": _global_pool,
    "ZeroPadding2D": _zero_padding, "ReLU": _relu, "Concatenate": _concatenate, "Bidirectional": _bidirectional,
    "Rescaling": lambda e, w, hwc: Rescale(e["args"]["scale"], e["args"]["offset"], _rank(e) == 3),
    "Reshape": lambda e, w, hwc: Reshape(e["args"]["target_shape"]),
    "Dropout": lambda e, w, hwc: nn.Dropout(e["args"]["rate"]),
    "LeakyReLU": lambda e, w, hwc: nn.LeakyReLU(e["args"]["negative_slope"]),
    "ELU": lambda e, w, hwc: nn.ELU(e["args"]["alpha"]),
    "Softmax": lambda e, w, hwc: _activation("softmax", _rank(e)),
    **{m: lambda e, w, hwc: Merge(e["class"]) for m in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")},
    **{m: lambda e, w, hwc: augmentation(e) for m in AUGMENTATION},
    **{m: lambda e, w, hwc: noise(e) for m in ("GaussianNoise", "GaussianDropout", "SpatialDropout1D",
                                               "SpatialDropout2D")},
}


def _op(e, w, hwc, plain_flatten: bool) -> nn.Module | None:
    """The module for one layer's own operation (its activation comes separately)."""
    e = {**e, "class": ALIASES.get(e["class"], e["class"])}
    if e["class"] == "Activation":
        return None
    if e["class"] == "Flatten":
        return nn.Flatten() if plain_flatten or _rank(e) < 3 else FlattenChannelsLast()
    return _MODULES[e["class"]](e, w, hwc)  # spec.check admits only the layers named here


def _folds(spec: dict) -> tuple[set[str], dict[str, tuple]]:
    """Flatten layers after maps whose outputs reach only Dense layers (through dropout and
    activations): they flatten natively and those Dense layers get their kernel rows permuted."""
    consumers: dict[str, list[dict]] = {}
    for e in spec["layers"]:
        for i in e["inputs"]:
            consumers.setdefault(i, []).append(e)
    plain, permuted = set(), {}
    for e in spec["layers"]:
        if e["class"] != "Flatten" or len(e["input_shapes"][0]) != 4:
            continue
        dense, todo, ok = [], [e["name"]], True
        while todo and ok:
            n = todo.pop()
            ok = n != spec["output"]
            for c in consumers.get(n, []):
                if c["class"] == "Dense":
                    dense.append(c["name"])
                elif c["class"] in _ELEMENTWISE:
                    todo.append(c["name"])
                else:
                    ok = False
        if ok:
            plain.add(e["name"])
            permuted.update((d, tuple(e["input_shapes"][0][1:])) for d in dense)
    return plain, permuted


def build(spec: dict, weights: dict | None = None, logits: bool = False) -> nn.Module:
    """The PyTorch module of ``spec``, with Keras's ``weights`` ({layer: {name: array}}) loaded
    when given. ``logits=True`` leaves out a final softmax (see spec.ends_in_softmax), so that a
    trainer can use cross-entropy on logits; an image model's single output, one sigmoid unit's
    or its logit, becomes the 2-class logits [0, z] (spec.binary_classifier). By default the
    module returns what Keras returns; like any new ``nn.Module`` it is in training mode, for a
    trainer: ``.eval()`` it to predict as Keras does (``convert`` returns it so)."""
    spec = check(spec)
    plain, permuted = _folds(spec)
    names: set[str] = set()
    blocks: OrderedDict[str, list[tuple[str, nn.Module]]] = OrderedDict()
    images = len(spec["layers"][0]["output_shape"]) == 4  # (None, H, W, C): a series model's one output is no class
    for e in spec["layers"][1:]:
        out = logits and e["name"] == spec["output"]
        binary = out and images and list(e["output_shape"][1:]) == [1]
        dropped = "sigmoid" if binary else "softmax" if out else None
        op = _op(e, (weights or {}).get(e["name"]), permuted.get(e["name"]), e["name"] in plain)
        if e["args"].get("trainable") is False:
            _freeze(op)
        name = _unique(e["name"], names)
        mods = [] if op is None or (dropped == "softmax" and e["class"] == "Softmax") else [(name, op)]
        act = e["args"].get("activation", "linear")
        inside = e["class"] in ("SimpleRNN", "LSTM", "GRU")  # their activation is part of the cell
        if not inside and act not in ("linear", dropped):
            mods.append((_unique(f"{e['name']}_{act}", names), _activation(act, len(e["output_shape"]) - 1)))
        if binary:
            mods.append((_unique(f"{e['name']}_two_classes", names), BinaryLogits()))
        blocks[e["name"]] = (name, mods)
    layers = spec["layers"]
    if all(e["inputs"] == [p["name"]] for p, e in itertools.pairwise(layers)):
        module = nn.Sequential(OrderedDict(m for _, mods in blocks.values() for m in mods))
    else:
        wiring = [(blocks[e["name"]][0], [blocks[i][0] if i in blocks else i for i in e["inputs"]]) for e in layers[1:]]
        modules = OrderedDict((name, mods[0][1] if len(mods) == 1 else nn.Sequential(OrderedDict(mods)))
                              for name, mods in blocks.values())
        module = KerasGraph(modules, wiring, layers[0]["name"], blocks[spec["output"]][0])
    return module if weights is not None else keras_init(module)


def keras_init(module: nn.Module) -> nn.Module:
    """Keras's default initialisers, which a spec does not keep (docs/keras.md): Glorot-uniform
    kernels and zero biases for Conv2D and Dense, orthogonal recurrent kernels, an LSTM's
    forget-gate bias at 1. A model built without weights starts as Keras would start it (the
    zoo's LeNet-5 does the same: 99.20% against 98.88% with PyTorch's defaults, docs/models.md)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if hasattr(m, "keras_fans"):  # a depthwise kernel, whose fans Keras counts otherwise
                    bound = math.sqrt(6 / sum(m.keras_fans))
                    nn.init.uniform_(m.weight, -bound, bound)
                else:
                    nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.RNN, nn.LSTM, nn.GRU)):
                nn.init.xavier_uniform_(m.weight_ih_l0)   # Keras's kernel (F, gates * U): the same fans
                nn.init.orthogonal_(m.weight_hh_l0)       # Keras's recurrent kernel, one matrix (U, gates * U)
                if m.bias:
                    m.bias_ih_l0.zero_()
                    m.bias_hh_l0.zero_()
                    if isinstance(m, nn.LSTM):
                        u = m.hidden_size
                        m.bias_ih_l0[u:2 * u] = 1.0       # unit_forget_bias (gate order i, f, c, o)
    return module


def _freeze(op: nn.Module) -> None:
    """A layer Keras froze (trainable=False) keeps its weights; a frozen BatchNormalization also
    normalises with its moving statistics in training, as Keras's does."""
    for p in op.parameters():
        p.requires_grad_(False)
    if isinstance(op, BatchNorm):
        op.frozen = True


def _unique(name: str, taken: set[str]) -> str:
    """A module name PyTorch accepts (no dots, not an nn.Module attribute), distinct from ``taken``."""
    base = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name) or "layer"
    if hasattr(nn.Module, base) or base[0].isdigit():
        base = f"layer_{base}"
    out, k = base, 1
    while out in taken:
        out, k = f"{base}_{k}", k + 1
    taken.add(out)
    return out


def summary_text(spec: dict, name: str = "model", rich: bool | None = None, file=None) -> str:
    """Keras's model.summary() of ``spec`` ((None, H, W, C) shapes, Keras's counts), with the
    converted module's count in PyTorch's layout named below it where the two differ."""
    from neuralab.models.summary import render_keras
    from neuralab.keras.spec import keras_summary

    with torch.device("meta"):  # counts only: nothing is allocated
        torch_params = sum(p.numel() for p in build(spec).parameters())
    return render_keras(name, keras_summary(spec), torch_params=torch_params, rich=rich, file=file)
