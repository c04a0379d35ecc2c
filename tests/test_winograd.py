"""Winograd's F(4x4, r x r) convolution (models/winograd.py) against PyTorch's: the 1-D
transforms compute correlation exactly, forward and every gradient agree in both layouts
for odd maps, maps smaller than a tile and paddings 0-2, fast.Conv2d takes it only where
its rule says (on CPUs with AVX-512, only wide layers), and accelerated AlexNet and VGG16
train as the plain ones do."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import record_calls
from torch import nn

from neuralab.models import build_model, inner_product, winograd
from neuralab.models.fast import Conv2d, accelerate

CL = torch.channels_last
pytestmark = pytest.mark.usefixtures("one_thread")  # all of them on one thread


@pytest.fixture
def calls(monkeypatch):
    """The weight's shape of every call fast.Conv2d made to winograd.conv2d, on a CPU without
    AVX-512 (the rule's own: with it, direct convolution is kept, as the last test checks)."""
    monkeypatch.setattr(inner_product, "wide_vectors", lambda: False)
    return record_calls(monkeypatch, winograd, "conv2d", lambda args, _: args[1].shape)


@pytest.mark.parametrize("m, r", [(4, 3), (4, 5), (2, 3)])
def test_transforms_compute_correlation_exactly(m, r):
    """Y = A^T [(G g) * (B^T d)] is the correlation of a tile d with a kernel g, in float64."""
    at, g, bt = winograd.transforms(m, r)
    gen = torch.Generator().manual_seed(m * 10 + r)
    d = torch.randn(m + r - 1, dtype=torch.float64, generator=gen)
    k = torch.randn(r, dtype=torch.float64, generator=gen)
    expected = torch.stack([(d[i:i + r] * k).sum() for i in range(m)])
    torch.testing.assert_close(at @ ((g @ k) * (bt @ d)), expected, rtol=0, atol=1e-12)


def _relative(mine: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((mine - theirs).abs().max() / theirs.abs().max()).item()


@pytest.mark.parametrize("layout", [torch.contiguous_format, CL], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("size, kernel, padding, bias", [
    ((14, 14), 3, 1, True),     # whole 4x4 blocks
    ((7, 7), 3, 1, False),      # AlexNet's conv3-5: the last block half outside the map
    ((9, 6), 3, 0, True),       # odd and unequal sides
    ((3, 3), 3, 2, True),       # a map smaller than one 6x6 tile, padded twice
    ((2, 5), 3, 1, True),
    ((1, 1), 3, 1, False),
    ((14, 14), 5, 2, True),     # AlexNet's conv2
    ((16, 16), 5, 2, True),     # AlexNet's conv2 at 32x32x3: whole blocks, no tile past the map
    ((11, 8), 5, 0, False),
    ((4, 4), 5, 2, True),
])
@pytest.mark.parametrize("wide", [False, True], ids=["bmm", "onednn"])  # the products' two ways
def test_winograd_matches_pytorch_forward_and_gradients(monkeypatch, layout, size, kernel, padding, bias, wide):
    monkeypatch.setattr(inner_product, "wide_vectors", lambda: wide)
    monkeypatch.setattr(inner_product, "mkl_runs_wide", lambda: False)  # AMD's rule: the oneDNN loop when wide
    torch.manual_seed(sum(size) + kernel + padding)
    x = torch.randn(5, 16, *size).contiguous(memory_format=layout).requires_grad_()
    conv = nn.Conv2d(16, 24, kernel, padding=padding, bias=bias)
    params = [x, conv.weight] + ([conv.bias] if bias else [])
    ref = conv(x)
    out = winograd.conv2d(x, conv.weight, conv.bias, (padding, padding))
    assert out.shape == ref.shape and out.is_contiguous(memory_format=layout)
    grad = torch.randn_like(ref)
    mine = torch.autograd.grad(out, params, grad)
    theirs = torch.autograd.grad(ref, params, grad)
    # float32: the transforms' sums of up to 64 terms add rounding that direct convolution has not
    assert _relative(out, ref) < 2e-5
    for name, a, b in zip(("input", "weight", "bias"), mine, theirs):
        assert a.shape == b.shape and _relative(a, b) < 2e-5, name
    assert mine[0].is_contiguous(memory_format=layout)


def test_conv2d_takes_winograd_only_where_it_pays(calls):
    torch.manual_seed(0)
    wide = Conv2d(192, 384, 3, padding=1)                                     # AlexNet's conv3
    x = torch.randn(16, 192, 7, 7)
    wide(x.contiguous(memory_format=CL))
    assert len(calls) == 1
    wide(x)                                                                   # NCHW: PyTorch's layer
    wide(x[:4].contiguous(memory_format=CL))                                  # a batch under MIN_BATCH
    wide(torch.randn(16, 192, 18, 18).contiguous(memory_format=CL))          # maps past MAX_MAP
    Conv2d(192, 384, 3, stride=2, padding=1)(x.contiguous(memory_format=CL))
    Conv2d(192, 384, 3, padding=1, groups=2)(x.contiguous(memory_format=CL))
    Conv2d(32, 64, 3, padding=1)(torch.randn(16, 32, 14, 14).contiguous(memory_format=CL))  # the sample CNN's: too narrow
    Conv2d(192, 384, 1)(x.contiguous(memory_format=CL))                      # 1x1: already one matrix product
    assert len(calls) == 1


def test_cpus_with_avx512_take_only_wide_layers(calls, monkeypatch):
    """Where PyTorch's kernels run AVX-512, oneDNN's direct convolution is twice as wide and
    Winograd pays only on wider layers: AlexNet's conv3 on 7x7 maps and VGG16's 512-filter
    layers on 4x4 still take it; GoogLeNet's 4d 3x3 (144 -> 288), AlexNet's conv2 on 14x14
    and VGG16's first 256-filter layer on 7x7 run as PyTorch's convolution."""
    torch.manual_seed(0)
    monkeypatch.setattr(inner_product, "wide_vectors", lambda: True)
    taken = [(Conv2d(192, 384, 3, padding=1), (16, 192, 7, 7)), (Conv2d(512, 512, 3, padding=1), (16, 512, 4, 4)),
             (Conv2d(256, 256, 3, padding=1), (16, 256, 8, 8)), (Conv2d(64, 192, 5, padding=2), (16, 64, 16, 16))]
    kept = [(Conv2d(144, 288, 3, padding=1), (16, 144, 7, 7)), (Conv2d(64, 192, 5, padding=2), (16, 64, 14, 14)),
            (Conv2d(128, 256, 3, padding=1), (16, 128, 7, 7))]
    assert all(winograd.fits(conv.weight, shape) for conv, shape in taken + kept)  # the AVX2 rule takes them all
    for conv, shape in taken:
        conv(torch.randn(shape).contiguous(memory_format=CL))
    assert calls == [conv.weight.shape for conv, _ in taken]
    for conv, shape in kept:
        x = torch.randn(shape).contiguous(memory_format=CL)
        assert torch.equal(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=conv.padding))
    assert len(calls) == len(taken)


def _in_situ(monkeypatch) -> list:
    """Every winograd.conv2d call fast.Conv2d makes, with its input, weights, output and the
    gradients that reach them, for checking each layer where it runs in a network."""
    seen = []
    real = winograd.conv2d

    def recorded(x, weight, bias, padding):
        out = real(x, weight, bias, padding)
        call = {"x": x, "weight": weight, "bias": bias, "padding": padding, "out": out.detach().clone()}
        x.register_hook(lambda g: call.__setitem__("dx", g))
        out.register_hook(lambda g: call.__setitem__("dy", g))
        seen.append(call)
        return out

    monkeypatch.setattr(winograd, "conv2d", recorded)
    return seen


@pytest.mark.parametrize("wide", [False, True], ids=["avx2", "avx512"])
@pytest.mark.parametrize("name, shape, kernels", [
    ("alexnet", (1, 28, 28), {False: [5, 3, 3, 3], True: [3, 3, 3]}),
    ("alexnet", (3, 32, 32), {False: [5, 3, 3, 3], True: [5, 3, 3, 3]}),
    ("vgg16", (3, 32, 32), {False: [3] * 7, True: [3] * 6}),
], ids=["alexnet-28x28x1", "alexnet-32x32x3", "vgg16-32x32x3"])
def test_accelerated_models_train_as_the_plain_ones(monkeypatch, name, shape, kernels, wide):
    """AlexNet and VGG16 at their small inputs, accelerated with each CPU kind's rule (without
    dropout, whose draws differ by design): the logits against PyTorch's layers, and every
    layer that ran by Winograd, where it ran, against PyTorch's convolution on the same input
    and the same incoming gradient: output, input, weight and bias gradients. (The networks'
    parameter gradients, compared end to end, hang on max pooling's near-ties: a 1e-6
    difference can move one pool's maximum to its neighbour, and with it a gradient.)"""
    monkeypatch.setattr(inner_product, "wide_vectors", lambda: wide)
    seen = _in_situ(monkeypatch)
    torch.manual_seed(0)
    plain = build_model(name, shape, 10, dropout=0.0)
    fast = accelerate(build_model(name, shape, 10, dropout=0.0)).to(memory_format=CL)  # as the trainer runs it
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(16, *shape).contiguous(memory_format=CL)
    y = torch.randint(0, 10, (16,))
    out = fast(x)
    assert _relative(out, plain(x)) < 1e-4
    F.cross_entropy(out, y).backward()
    assert [call["weight"].shape[-1] for call in seen] == kernels[wide]
    for call in seen:
        x, weight, bias = (call[k].detach().requires_grad_() for k in ("x", "weight", "bias"))
        ref = F.conv2d(x, weight, bias, padding=call["padding"])
        theirs = torch.autograd.grad(ref, [x, weight, bias], call["dy"])
        assert _relative(call["out"], ref) < 2e-5
        mine = (call["dx"], call["weight"].grad, call["bias"].grad)
        for what, ours, exact in zip(("input", "weight", "bias"), mine, theirs):
            assert _relative(ours, exact) < 2e-5, (tuple(call["weight"].shape), what)


@pytest.mark.parametrize("mkl_wide", [False, True], ids=["amd", "intel"])
def test_the_transform_positions_products_go_where_they_are_fastest(monkeypatch, mkl_wide):
    """With AVX-512 everywhere: a loop of oneDNN products where MKL keeps to AVX2 (AMD), one
    torch.bmm where MKL runs AVX-512 too (Intel); the same products either way."""
    monkeypatch.setattr(inner_product, "wide_vectors", lambda: True)
    monkeypatch.setattr(inner_product, "mkl_runs_wide", lambda: mkl_wide)
    looped = record_calls(monkeypatch, inner_product, "product", lambda args, _: args[0].shape)
    a, b = torch.randn(36, 50, 16), torch.randn(36, 16, 24)
    torch.testing.assert_close(winograd._products(a, b), torch.bmm(a, b), rtol=1e-5, atol=1e-5)
    assert len(looped) == (0 if mkl_wide else 36)
