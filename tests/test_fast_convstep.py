"""models/fast.py's convolution-side steps against PyTorch's own layers: ReLU -> max pooling
run as max pooling -> ReLU gives the same output and input gradient bit for bit, in both
layouts, for overlapping, padded, odd and dilated windows and maps full of ties; it steps
aside where it would differ; and whole accelerated AlexNet and VGG16 steps are unchanged by it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import record_calls
from torch import nn

from neuralab.models import build_model, fast
from neuralab.models.fast import accelerate
from neuralab.models.layers import MaxPool2dSame

CL = torch.channels_last
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def commuted(monkeypatch):
    """Whether fast.Sequential ran max pooling before ReLU, at each ReLU -> pooling it met."""
    return record_calls(monkeypatch, fast, "maxpool_relu", lambda _, y: y is not None)


def _maps(shape: tuple[int, ...], layout) -> torch.Tensor:
    """Maps with negative windows, zeros and exact ties among positive values (a flat region of
    an image gives every cell the same convolution output: the first maximum must win)."""
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=gen)
    x[:, :, : shape[2] // 3] = torch.randint(-2, 3, (shape[0], shape[1], shape[2] // 3, shape[3]), generator=gen) / 2
    x[0, 0] = -1.0                                                            # windows below 0 only
    return x.contiguous(memory_format=layout)


POOLS = {  # pool, input (B, C, H, W), commuted in channels-last
    "alexnet-3x3-stride-2-pad-1-28": (lambda: nn.MaxPool2d(3, 2, 1), (4, 8, 28, 28), True),
    "alexnet-3x3-stride-2-pad-1-7": (lambda: nn.MaxPool2d(3, 2, 1), (4, 8, 7, 7), True),  # odd: 7 -> 4
    "vgg-2x2-ceil-odd": (lambda: nn.MaxPool2d(2, 2, ceil_mode=True), (4, 8, 7, 5), True),
    "dilated": (lambda: nn.MaxPool2d(2, 3, dilation=2, ceil_mode=True), (4, 8, 13, 10), True),
    "same-2x2-odd": (lambda: MaxPool2dSame(2, 2), (4, 8, 7, 9), True),
    "same-3x3-stride-1": (lambda: MaxPool2dSame(3, 1), (4, 8, 9, 9), False),  # pads a copy first
    "indices-returned": (lambda: nn.MaxPool2d(2, return_indices=True), (4, 8, 8, 8), False),
}


@pytest.mark.parametrize("inplace", [True, False], ids=["relu-in-place", "relu"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, CL], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("case", list(POOLS))
def test_maxpool_then_relu_equals_relu_then_maxpool(case, layout, inplace, commuted):
    """Output and input gradient equal to PyTorch's ReLU -> max pooling, exactly (the same
    values are compared and the same gradients added), in training and in evaluation."""
    pool, shape, commutes = POOLS[case]
    reference = nn.Sequential(nn.ReLU(inplace=inplace), pool())
    model = accelerate(nn.Sequential(nn.ReLU(inplace=inplace), pool()))
    first = (lambda out: out[0]) if case == "indices-returned" else (lambda out: out)
    x = _maps(shape, layout)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, ref = first(model(a * 1)), first(reference(b * 1))
    assert commuted == [commutes and layout == CL]
    grad = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    out.backward(grad)
    ref.backward(grad)
    assert torch.equal(out, ref)
    assert torch.equal(a.grad, b.grad)
    assert a.grad.abs().sum() > 0 and (a.grad == 0).any()                   # both kinds of cells reached
    with torch.no_grad():
        evaluated = model.eval()(x.clone())
    assert torch.equal(first(evaluated), ref.detach())


def test_commute_steps_aside_for_hooks_and_other_layers(commuted):
    """A hook on the ReLU or the pooling would see the map between them: PyTorch's layers run.
    A layer that only looks like ReLU (a subclass) is left alone."""
    x = _maps((2, 8, 8, 8), CL)
    model = accelerate(nn.Sequential(nn.ReLU(), nn.MaxPool2d(2)))
    seen = []
    handle = model[0].register_forward_hook(lambda m, i, o: seen.append(bool((o >= 0).all())))
    out = model(x)
    handle.remove()
    assert seen == [True] and commuted == [False]
    assert torch.equal(out, F.max_pool2d(F.relu(x), 2))

    class LeakyishReLU(nn.ReLU):
        def forward(self, x):
            return F.leaky_relu(x, 0.1)

    commuted.clear()
    other = accelerate(nn.Sequential(LeakyishReLU(), nn.MaxPool2d(2)))
    assert torch.equal(other(x), F.max_pool2d(F.leaky_relu(x, 0.1), 2)) and commuted == []


def _step(name: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and parameter gradients of one step of the accelerated model at 28x28,
    channels-last as the trainer runs it (without dropout, whose draws differ by design)."""
    torch.manual_seed(0)
    model = accelerate(build_model(name, (1, 28, 28), 10, dropout=0.0)).to(memory_format=CL)
    x = torch.randn(16, 1, 28, 28).contiguous(memory_format=CL)
    y = torch.randint(0, 10, (16,))
    out = model(x)
    F.cross_entropy(out, y).backward()
    return out, [p.grad for p in model.parameters()]


@pytest.mark.parametrize("name, pools", [("alexnet", 3), ("vgg16", 5)])
def test_commuted_pools_leave_whole_steps_unchanged(name, pools, commuted, monkeypatch):
    """Every ReLU -> max pooling of AlexNet (3) and VGG16 (5) at 28x28 runs commuted, and the
    step's logits and every gradient are bit for bit those of the same fast layers without it
    (tests/test_winograd.py holds the accelerated AlexNet to PyTorch's layers)."""
    out, grads = _step(name)
    assert commuted.count(True) == pools
    monkeypatch.setattr(fast, "maxpool_relu", lambda *args: None)
    ref, ref_grads = _step(name)
    assert torch.equal(out, ref)
    assert all(torch.equal(a, b) for a, b in zip(grads, ref_grads))


@pytest.mark.parametrize("layout", [torch.contiguous_format, CL], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("filters, kernel, padding, size, bias", [
    (32, 3, 1, (28, 28), True),      # the sample CNN's first layer
    (64, 5, 2, (28, 28), True),      # AlexNet's at 28x28
    (16, 3, 0, (9, 13), True),       # no padding, odd and unequal sides
    (32, 5, 1, (11, 8), False),      # no bias: no row of ones
])
def test_first_layer_weight_and_bias_gradients_match_pytorch(layout, filters, kernel, padding, size, bias):
    """A first layer on one channel (its input needs no gradient): the weight and bias gradients
    from one product of the input's windows (and a row of ones) against nn.Conv2d's."""
    torch.manual_seed(filters + kernel)
    reference = nn.Conv2d(1, filters, kernel, padding=padding, bias=bias)
    conv = accelerate(nn.Conv2d(1, filters, kernel, padding=padding, bias=bias))
    conv.load_state_dict(reference.state_dict())
    x = torch.randn(8, 1, *size).contiguous(memory_format=layout)
    out, ref = conv(x), reference(x)
    assert out.grad_fn.name() == "_ConvWeightGradByWindowsBackward"  # one channel: both layouts are one
    grad = torch.randn(ref.shape).contiguous(memory_format=layout)          # the gradient's layout differs
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for mine, theirs in zip(conv.parameters(), reference.parameters()):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-5, atol=1e-5 * theirs.grad.abs().max().item())
    assert (conv.bias is None) == (not bias)
