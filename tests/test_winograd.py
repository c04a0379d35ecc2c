"""Winograd's F(4x4, r x r) convolution (models/winograd.py) against PyTorch's: the 1-D
transforms compute correlation exactly, forward and every gradient agree in both layouts
for odd maps, maps smaller than a tile and paddings 0-2, fast.Conv2d takes it only where
its rule says (never on CPUs with AVX-512), and an accelerated AlexNet trains as the plain
one does."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import record_calls
from test_models_zoo import one_thread  # noqa: F401 (the fixture)
from torch import nn

from neuralab.models import build_model, winograd
from neuralab.models.fast import Conv2d, accelerate

CL = torch.channels_last
pytestmark = pytest.mark.usefixtures("one_thread")  # all of them on one thread


@pytest.fixture
def calls(monkeypatch):
    """The weight's shape of every call fast.Conv2d made to winograd.conv2d, on a CPU without
    AVX-512 (the rule's own: with it, direct convolution is kept, as the last test checks)."""
    monkeypatch.setattr(winograd, "_wide_vectors", lambda: False)
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
def test_winograd_matches_pytorch_forward_and_gradients(layout, size, kernel, padding, bias):
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


def test_cpus_with_avx512_keep_direct_convolution(calls, monkeypatch):
    """Where PyTorch's kernels run AVX-512, oneDNN's direct convolution beat Winograd's products
    (MKL's, held to AVX2 on AMD): a layer that fits the rule runs as PyTorch's convolution."""
    torch.manual_seed(0)
    wide = Conv2d(192, 384, 3, padding=1)
    x = torch.randn(16, 192, 7, 7).contiguous(memory_format=CL)
    assert winograd.fits(wide.weight, x.shape) and winograd.pays(wide.weight, x.shape)
    monkeypatch.setattr(winograd, "_wide_vectors", lambda: True)
    assert winograd.fits(wide.weight, x.shape) and not winograd.pays(wide.weight, x.shape)
    out = wide(x)
    assert calls == []
    assert torch.equal(out, F.conv2d(x, wide.weight, wide.bias, padding=1))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)], ids=["28x28x1", "32x32x3"])
def test_accelerated_alexnet_trains_as_the_plain_one(calls, shape):
    """AlexNet at its small inputs (conv2-conv5 through Winograd: conv2 on 14x14 or 16x16 maps;
    without dropout, whose draws differ by design): logits and every parameter gradient
    against PyTorch's layers."""
    torch.manual_seed(0)
    plain = build_model("alexnet", shape, 10, dropout=0.0)
    fast = accelerate(build_model("alexnet", shape, 10, dropout=0.0)).to(memory_format=CL)  # as the trainer runs it
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(16, *shape).contiguous(memory_format=CL)
    y = torch.randint(0, 10, (16,))
    out, ref = fast(x), plain(x)
    assert [tuple(s[2:]) for s in calls] == [(5, 5), (3, 3), (3, 3), (3, 3)]
    F.cross_entropy(out, y).backward()
    F.cross_entropy(ref, y).backward()
    assert _relative(out, ref) < 1e-4
    for (name, mine), theirs in zip(fast.named_parameters(), plain.parameters()):
        assert _relative(mine.grad, theirs.grad) < 1e-4, name
