"""Dense layers' products through oneDNN's inner product (models/inner_product.py) against
PyTorch's F.linear: the output and every gradient on the zoo's large dense layers, which
layers take it, where it falls back, and fast.Linear inside a whole model, forward and back."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import record_calls
from torch import nn

from neuralab.models import build_model, inner_product
from neuralab.models.fast import Linear, accelerate

pytestmark = pytest.mark.skipif(not inner_product.available(), reason="this PyTorch build has no oneDNN")


@pytest.fixture
def taken(monkeypatch) -> list[tuple[int, int]]:
    """The weight's shape of every product that went to oneDNN while the test runs, on any CPU:
    the rule for an AMD one (MKL narrow) holds, so that oneDNN's path is tested everywhere."""
    monkeypatch.setattr(inner_product, "mkl_runs_wide", lambda: False)
    return record_calls(monkeypatch, inner_product._InnerProduct, "apply", lambda args, _: tuple(args[1].shape))


def _close(mine: torch.Tensor, theirs: torch.Tensor) -> None:
    # float32 sums of up to 4,096 products in another order: rounding about 1e-6 of the scale
    assert mine.shape == theirs.shape
    assert ((mine - theirs).abs().max() / theirs.abs().max()).item() < 1e-5


@pytest.mark.parametrize("inputs, outputs, bias", [
    (784, 256, True),     # the MLP's first layer
    (3136, 128, True),    # the sample CNN's dense layer
    (4096, 1024, False),  # AlexNet's, without a bias
    (512, 512, True),     # VGG16's at 28x28
])
def test_inner_product_matches_f_linear_forward_and_gradients(inputs, outputs, bias, taken):
    torch.manual_seed(inputs + outputs)
    layer = nn.Linear(inputs, outputs, bias=bias)
    x = torch.randn(96, inputs, requires_grad=True)
    params = [x, layer.weight] + ([layer.bias] if bias else [])
    out, ref = inner_product.linear(x, layer.weight, layer.bias), F.linear(x, layer.weight, layer.bias)
    assert taken == [(outputs, inputs)]
    _close(out, ref)
    grad = torch.randn_like(ref)
    for name, mine, theirs in zip(("input", "weight", "bias"), torch.autograd.grad(out, params, grad),
                                  torch.autograd.grad(ref, params, grad)):
        _close(mine, theirs)


def test_only_the_gradients_asked_for_are_computed(taken):
    """A first layer's input needs no gradient: none is returned, and the weight's is right."""
    torch.manual_seed(1)
    layer = nn.Linear(784, 256)
    x = torch.randn(128, 784)                                                  # no requires_grad
    out = inner_product.linear(x, layer.weight, layer.bias)
    out.sum().backward()
    assert x.grad is None and taken == [(256, 784)]
    _close(layer.weight.grad, torch.ones(256, 128) @ x)
    _close(layer.bias.grad, torch.full((256,), 128.0))


def test_small_layers_and_other_inputs_keep_pytorchs_product(taken):
    torch.manual_seed(2)
    small = nn.Linear(256, 128)                                                # at batch 128, MKL's is faster
    assert torch.equal(inner_product.linear(torch.ones(128, 256), small.weight, small.bias),
                       F.linear(torch.ones(128, 256), small.weight, small.bias))
    big = nn.Linear(784, 256)
    batch_of_sequences = torch.randn(2, 3, 784)                                # not a batch of vectors
    assert torch.equal(inner_product.linear(batch_of_sequences, big.weight, big.bias),
                       F.linear(batch_of_sequences, big.weight, big.bias))
    assert taken == []


def test_fast_linear_falls_back_to_pytorchs_layer_for_other_dtypes_and_autocast(taken):
    torch.manual_seed(3)
    layer = accelerate(nn.Linear(784, 256))
    assert type(layer) is Linear
    x = torch.randn(128, 784)
    layer(x)
    assert taken == [(256, 784)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16
    double = layer.double()
    assert torch.equal(double(x.double()), F.linear(x.double(), double.weight, double.bias))
    assert taken == [(256, 784)]


def test_accelerated_mlp_with_onednn_products_trains_as_the_plain_one(taken):
    """The MLP in training (its dense chain; without dropout, whose draws differ by design):
    logits and every gradient against PyTorch's layers."""
    torch.manual_seed(4)
    plain = build_model("mlp", (1, 28, 28), 10, dropout=0.0)
    fast = accelerate(build_model("mlp", (1, 28, 28), 10, dropout=0.0))
    fast.load_state_dict(plain.state_dict())
    x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
    out, ref = fast(x), plain(x)
    assert taken == [(256, 784)]                                               # 256 x 128 and the rest: MKL's
    _close(out, ref)
    F.cross_entropy(out, y).backward()
    F.cross_entropy(ref, y).backward()
    for (name, mine), theirs in zip(fast.named_parameters(), plain.parameters()):
        assert mine.grad is not None, name
        _close(mine.grad, theirs.grad)


def test_accelerated_cnn_predicts_as_the_plain_one(taken):
    """The sample CNN in evaluation, channels-last as the trainer predicts: its dense layer
    (3136 -> 128) through oneDNN, the logits those of PyTorch's layers."""
    torch.manual_seed(5)
    plain = build_model("cnn", (1, 28, 28), 10).eval()
    fast = accelerate(build_model("cnn", (1, 28, 28), 10)).to(memory_format=torch.channels_last).eval()
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(64, 1, 28, 28)
    with torch.no_grad():
        out, ref = fast(x.contiguous(memory_format=torch.channels_last)), plain(x)
    assert taken == [(128, 3136)]
    _close(out, ref)


def test_googlenets_stacked_1x1_layers_take_onednns_product(taken):
    """An Inception module's three 1x1 layers on its input, one product (models/inception_fast.py)
    on 4x4 maps, go through oneDNN; the module's output is PyTorch's layers' (tests/test_fast_inception.py
    holds every gradient to them)."""
    torch.manual_seed(6)
    plain = build_model("googlenet", (1, 28, 28), 10).features.inception3a.train()
    fast = accelerate(build_model("googlenet", (1, 28, 28), 10).features.inception3a).train()
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(64, plain.branch1[0].in_channels, 4, 4)
    out, ref = fast(x.contiguous(memory_format=torch.channels_last)), plain(x)
    stacked = sum(m[0].out_channels for m in (plain.branch1, plain.branch2[0], plain.branch3[0]))
    assert (stacked, plain.branch1[0].in_channels) in taken
    assert ((out - ref).abs().max() / ref.abs().max()).item() < 1e-4


def test_where_mkl_runs_avx512_the_layers_keep_its_product(taken, monkeypatch):
    """On Intel CPUs MKL's own products are as fast or faster (the MLP's step 0.89x through oneDNN)."""
    monkeypatch.setattr(inner_product, "mkl_runs_wide", lambda: True)
    layer = nn.Linear(784, 256)
    x = torch.randn(128, 784)
    assert torch.equal(inner_product.linear(x, layer.weight, layer.bias), F.linear(x, layer.weight, layer.bias))
    assert taken == []


def test_mkl_runs_wide_reads_the_cpus_vendor():
    try:
        vendor = next((line for line in open("/proc/cpuinfo") if line.startswith("vendor_id")), "")
    except OSError:
        vendor = ""
    assert inner_product.mkl_runs_wide() == ("GenuineIntel" in vendor)
