"""Mixed precision: when ``amp="auto"`` computes in bfloat16, that the layers neuralab swaps in
for speed (models/fast.py) compute what PyTorch's own layers compute under autocast, and that a
bfloat16 run learns and is saved and recorded as a float32 one is."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import idx_subset
from safetensors import safe_open

from neuralab.models import build_model
from neuralab.models.fast import accelerate
from neuralab.training import ClassifierConfig, TrainConfig, Trainer, evaluate_run, train_classifier
from neuralab.training import trainer as trainer_module
from neuralab.training.device import native_bf16


def _cpu_flags() -> set[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return next((set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")), None)


@pytest.mark.skipif(_cpu_flags() is None, reason="the CPU's flags are read from Linux's /proc/cpuinfo")
def test_native_bf16_is_the_cpus_avx512_bf16_flag():
    assert native_bf16(torch.device("cpu")) == ("avx512_bf16" in _cpu_flags())
    assert native_bf16(torch.device("meta")) is False


@pytest.mark.parametrize("native", [True, False])
def test_auto_computes_in_bfloat16_for_large_models_where_the_hardware_multiplies_it(monkeypatch, native):
    monkeypatch.setattr(trainer_module, "native_bf16", lambda device: native)
    big = build_model("googlenet", (1, 28, 28), 10)  # 5,601,322 parameters
    small = build_model("cnn", (1, 28, 28), 10)      # 421,834
    assert Trainer(big, TrainConfig(device="cpu"), verbose=False).autocast == ("bfloat16" if native else "off")
    assert Trainer(small, TrainConfig(device="cpu"), verbose=False).autocast == "off"
    assert Trainer(big, TrainConfig(device="cpu", amp="off"), verbose=False).autocast == "off"
    chosen = Trainer(small, TrainConfig(device="cpu", amp="bf16"), verbose=False)
    assert chosen.environment["autocast"] == "bfloat16" and chosen.device_text == "cpu, bfloat16 autocast"


def _logits_and_gradients(model, x, y):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    logits = getattr(out, "logits", out)  # GoogLeNet's auxiliary heads return more in training
    F.cross_entropy(logits.float(), y).backward()
    return logits, [p.grad for p in model.parameters()]


@pytest.mark.parametrize("name,shape", [("mlp", (1, 28, 28)), ("cnn", (1, 28, 28)), ("lenet5", (1, 28, 28)),
                                        ("alexnet", (3, 32, 32)), ("vgg16", (1, 28, 28)),
                                        ("googlenet", (1, 28, 28))])
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_fast_layers_compute_what_pytorchs_compute_under_bfloat16_autocast(name, shape, channels_last):
    torch.manual_seed(0)
    reference = build_model(name, shape, 10)
    for layer in reference.modules():  # dropout draws its masks apart (tests/test_models_zoo.py)
        if isinstance(layer, torch.nn.Dropout):
            layer.p = 0.0
    fast = accelerate(copy.deepcopy(reference))
    assert any(type(m).__module__.startswith("neuralab.models.") and type(m) is not type(r)
               for m, r in zip(fast.modules(), reference.modules()))  # layers were swapped
    x, y = torch.randn(16, *shape), torch.randint(0, 10, (16,))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        reference, fast = (m.to(memory_format=torch.channels_last) for m in (reference, fast))
    expected, expected_grads = _logits_and_gradients(reference, x, y)
    logits, grads = _logits_and_gradients(fast, x, y)
    assert logits.dtype == expected.dtype == torch.bfloat16
    _within_bfloat16_rounding(logits, expected)
    assert [g is None for g in grads] == [g is None for g in expected_grads]
    for g, e in zip(grads, expected_grads):
        if e is not None:
            _within_bfloat16_rounding(g, e)


def _within_bfloat16_rounding(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Where a layer computes its convolution as a matrix product (VGG16's 2x2 maps) the sums
    run in another order and round to bfloat16 apart: 0.7% of the largest gradient measured on
    an AVX-512 machine, 2.1% on one with AVX2 only (VGG16's first convolution, under fifteen
    layers of bfloat16 backward, where oneDNN has no bfloat16 instructions and rounds otherwise),
    against bfloat16's step of 0.4% (2^-8)."""
    assert got.dtype == expected.dtype
    torch.testing.assert_close(got.float(), expected.float(), rtol=0, atol=3e-2 * expected.abs().max().item())


@pytest.mark.parametrize("kernel,stride,padding,size,bias", [
    (3, 1, 1, 2, True), (3, 1, 1, 2, False),  # VGG16's last block at 28x28: one product through the taps
    (3, 1, 1, 4, True), (3, 2, 1, 8, False),  # 4x4 outputs: the weight gradient over the windows
    (1, 1, 0, 4, True), (5, 1, 2, 4, False),  # GoogLeNet's 1x1 on 4x4 maps; a 5x5 kernel on 4x4
    (3, 1, 1, 1, True), (5, 1, 0, 5, False),  # one output cell (a 1x1 map, LeNet-5's C5): a slice of the taps
])
def test_small_bfloat16_convolutions_compute_what_pytorchs_compute(kernel, stride, padding, size, bias):
    """The shortcuts under bfloat16 autocast, forward and every gradient, against PyTorch's layer."""
    torch.manual_seed(0)
    reference = torch.nn.Conv2d(64, 32, kernel, stride, padding, bias=bias).to(memory_format=torch.channels_last)
    fast = accelerate(copy.deepcopy(reference))
    x = torch.randn(8, 64, size, size).contiguous(memory_format=torch.channels_last)
    results = []
    for layer in (reference, fast):
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(xi)
        out.float().square().sum().backward()
        results.append([out, xi.grad, *(p.grad for p in layer.parameters())])
    for got, expected in zip(*results[::-1]):
        _within_bfloat16_rounding(got, expected)
    shortcut = type(results[1][0].grad_fn).__name__  # a product, not oneDNN's convolution, ran
    assert type(results[0][0].grad_fn).__name__ == "ConvolutionBackward0" != shortcut
    assert results[1][2].is_contiguous(memory_format=torch.channels_last)


@pytest.fixture(scope="module")
def small_fashion(fashion_mnist, tmp_path_factory):
    return idx_subset(fashion_mnist, tmp_path_factory.mktemp("fashion"), 3000, 1000)


def test_a_bfloat16_run_learns_and_keeps_float32_weights(small_fashion, tmp_path):
    config = ClassifierConfig(model="lenet5", data="fashion-mnist", data_dir=str(small_fashion),
                              train=TrainConfig(epochs=2, batch_size=64, amp="bf16", seed=3))
    result = train_classifier(config, out=tmp_path / "run", verbose=False)
    assert result.test["accuracy"] > 0.72  # as float32 on the same 2,700 pictures (tests/test_training.py)
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["environment"]["autocast"] == "bfloat16" and record["config"]["train"]["amp"] == "bf16"
    with safe_open(tmp_path / "run" / "model.safetensors", "pt") as weights:
        assert {weights.get_tensor(k).dtype for k in weights.keys()} == {torch.float32}
    # evaluated again in other batches: bfloat16's sums round apart, a few pictures in a thousand on AVX2
    assert evaluate_run(tmp_path / "run")["test_accuracy"] == pytest.approx(result.test["accuracy"], abs=5e-3)
