"""GoogLeNet's accelerated Inception module (models/inception_fast.py) against the same module
in PyTorch's layers: forward, every gradient and the running statistics over several training
steps in both layouts, evaluation afterwards, the cases it leaves to the plain module (NCHW,
eval, hooks, batch norms that differ), and a whole accelerated GoogLeNet at 28x28x1."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import record_calls

from neuralab.models import build_model, inception_fast, inner_product
from neuralab.models.fast import accelerate
from neuralab.models.googlenet import Inception

CL = torch.channels_last
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def fused(monkeypatch):
    """The channel counts of every group of 1x1 ConvBNs that ran as one."""
    return record_calls(monkeypatch, inception_fast, "convbn_1x1", lambda args, _: [m[0].out_channels for m in args[0]])


def _relative(mine: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((mine - theirs).abs().max() / theirs.abs().max()).item()


def _pair(*channels: int) -> tuple[Inception, Inception]:
    torch.manual_seed(sum(channels))
    plain = Inception(*channels)
    for m in plain.modules():  # weights and shifts away from PyTorch's 1 and 0, so that their gradients show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return plain, accelerate(copy.deepcopy(plain))


def _step(module: Inception, x: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_()
    out = module(x)
    out.backward(grad)
    grads = [p.grad.clone() for p in module.parameters()]
    module.zero_grad(set_to_none=True)
    return out, x.grad, *grads


# (in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj): the three 1x1 layers' 28 filters through
# oneDNN, then inception3a's 176 (and a pooled branch of 128) as one matrix product
SHAPES = [(24, 8, 12, 16, 8, 8, 16), (192, 64, 96, 128, 16, 32, 32), (64, 32, 64, 48, 32, 16, 128)]


@pytest.mark.parametrize("wide", [False, True], ids=["avx2-rule", "avx512-rule"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, CL], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("channels", SHAPES, ids=["narrow", "inception3a", "wide-pool"])
def test_inception_trains_as_pytorch_layers(channels, layout, wide, fused, monkeypatch):
    """Three training steps on odd maps: output, input gradient, every parameter's gradient, then
    every layer's running mean, variance and batch count; evaluation with those statistics. Under
    either CPU kind's rule: on 7x5 maps AVX2's takes the matrix product from 128 filters,
    AVX-512's one oneDNN convolution."""
    monkeypatch.setattr(inner_product, "wide_vectors", lambda: wide)
    plain, fast = _pair(*channels)
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(6, channels[0], 7, 5, generator=gen).contiguous(memory_format=layout) * 2 + 0.5
        ref = _step(plain, x, grad := torch.randn(6, sum(channels[i] for i in (1, 3, 5, 6)), 7, 5, generator=gen))
        mine = _step(fast, x, grad.contiguous(memory_format=layout))
        assert mine[0].is_contiguous(memory_format=layout) and mine[1].is_contiguous(memory_format=layout)
        for name, a, b in zip(["output", "input"] + [k for k, _ in plain.named_parameters()], mine, ref):
            assert a.shape == b.shape and _relative(a, b) < 1e-5, name
    # channels-last: every step ran the three 1x1 layers as one, and the pooled branch's alone
    assert fused == ([[channels[1], channels[2], channels[4]], [channels[6]]] * 3 if layout == CL else [])
    for (name, mine), theirs in zip(fast.named_buffers(), plain.buffers()):
        torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-7, msg=name)
    assert int(fast.branch3[0][1].num_batches_tracked) == 3
    x = torch.randn(6, channels[0], 7, 5, generator=gen).contiguous(memory_format=layout)
    torch.testing.assert_close(fast.eval()(x), plain.eval()(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("wide", [False, True], ids=["avx2", "avx512"])
def test_stacked_1x1_layers_take_the_faster_way_for_the_cpu(wide, monkeypatch):
    """A matrix product from 128 filters; where PyTorch runs AVX-512, only on maps of 4x4 or
    less, since oneDNN's convolution won on larger ones."""
    monkeypatch.setattr(inner_product, "wide_vectors", lambda: wide)
    assert not inception_fast._by_product(112, 4, 4)                        # too few filters anywhere
    assert inception_fast._by_product(176, 4, 4)                            # inception3a's three at 4x4
    assert inception_fast._by_product(176, 14, 14) is not wide              # and at 14x14
    assert inception_fast._by_product(176, 7, 7) is not wide


def test_cumulative_average_and_frozen_statistics_match(fused):
    """Batch norms with momentum None (a cumulative average over the batches counted) and
    without running statistics run as one too, and end as PyTorch's do."""
    for options in ({"momentum": None}, {"track_running_stats": False}):
        plain, fast = _pair(*SHAPES[1])
        for module in (plain, fast):
            for m in module.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.momentum = options.get("momentum", m.momentum)
                    if "track_running_stats" in options:
                        m.track_running_stats, m.running_mean, m.running_var, m.num_batches_tracked = False, None, None, None
        for seed in range(2):
            x = torch.randn(4, 192, 5, 5, generator=torch.Generator().manual_seed(seed)).contiguous(memory_format=CL)
            out, ref = fast(x), plain(x)
            assert _relative(out, ref) < 1e-5
        for (name, mine), theirs in zip(fast.named_buffers(), plain.buffers()):
            torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-7, msg=name)
    assert len(fused) == 8


def test_plain_layers_where_the_shortcut_would_differ(fused):
    """A hook on one of the fused layers sees its input and output; a batch norm with another
    momentum, or one in eval mode inside a training module, keeps its own statistics: the plain
    module runs, exactly."""
    plain, fast = _pair(*SHAPES[1])
    x = torch.randn(4, 192, 5, 5).contiguous(memory_format=CL)
    seen = []
    handle = fast.branch2[0][0].register_forward_hook(lambda module, args, out: seen.append(out.shape))
    torch.testing.assert_close(fast(x), plain(x), rtol=0, atol=0)
    assert seen == [(4, 96, 5, 5)] and fused == []
    handle.remove()
    for change in (lambda m: setattr(m.branch3[0][1], "momentum", 0.3), lambda m: m.branch1[1].eval()):
        plain, fast = _pair(*SHAPES[1])
        change(plain), change(fast)
        torch.testing.assert_close(fast(x), plain(x), rtol=0, atol=0)
        for mine, theirs in zip(fast.buffers(), plain.buffers()):
            assert torch.equal(mine, theirs)
    assert fused == []
    fast.branch1[1].train()  # the last change undone: the shortcut again
    fast(x)
    assert fused == [[64, 96, 16], [32]]


def _errors(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, truth: dict) -> list[float]:
    """Relative errors of the logits and every parameter's gradient against ``truth`` (float64)."""
    out = model(x)
    F.cross_entropy(out, y).backward()
    mine = {"logits": out, **{name: p.grad for name, p in model.named_parameters()}}
    return [_relative(mine[k].double(), truth[k]) for k in truth]


def test_accelerated_googlenet_trains_as_the_plain_one(fused, monkeypatch):
    """GoogLeNet at 28x28x1 as the trainer runs it (channels-last, every fast layer; no dropout,
    whose draws differ by design), against PyTorch's layers in float64: with every Inception
    module's 1x1 layers fused, the logits and every gradient are as close to float64 as the same
    accelerated network's without the fusion (at initialisation this network's float32 gradients
    are far from float64 anyway: PyTorch's own layers up to 5% on the worst parameter, Winograd's
    up to 15%), and the running statistics match PyTorch's. Names and state are unchanged."""
    torch.manual_seed(0)
    plain = build_model("googlenet", (1, 28, 28), 10, dropout=0.0)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    before = copy.deepcopy(plain)
    exact = copy.deepcopy(plain).double()
    out = exact(x.double())
    F.cross_entropy(out, y).backward()
    truth = {"logits": out, **{name: p.grad for name, p in exact.named_parameters()}}
    plain(x)  # PyTorch's running statistics after the batch
    errors = {}
    for way in ("unfused", "fused"):
        fast = accelerate(copy.deepcopy(before)).to(memory_format=CL)
        assert [type(m).__name__ for m in fast.modules()] == [type(m).__name__ for m in plain.modules()]
        assert fast.state_dict().keys() == plain.state_dict().keys()
        with monkeypatch.context() as patch:
            if way == "unfused":
                patch.setattr(inception_fast, "forward", lambda module, x: None)
            errors[way] = _errors(fast, x.contiguous(memory_format=CL), y, truth)
        assert len(fused) == (9 * 2 if way == "fused" else 0)
    assert errors["fused"][0] < 1e-4
    for summary in (max, lambda e: sorted(e)[len(e) // 2]):
        assert summary(errors["fused"]) < 1.25 * summary(errors["unfused"])
    for (name, mine), theirs in zip(fast.named_buffers(), plain.buffers()):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5, msg=name)
