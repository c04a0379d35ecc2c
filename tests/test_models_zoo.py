"""The zoo: reference parameter counts, LeNet-5's shapes, forward and backward of every model
at small inputs, the small-input adaptations, Keras "same" layers and the too-small error."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neuralab.errors import NeuralabError
from neuralab.models import ARCHITECTURES, build_model, count_parameters, parameters_at, summary
from neuralab.models.fast import AvgPool2d, Conv2d, Dropout, Flatten, Tanh, accelerate, keep_mask
from neuralab.models.googlenet import GoogLeNetOutputs
from neuralab.models.geometry import MapVanishes, flat_size, geometry
from neuralab.models.layers import Conv2dSame, MaxPool2dSame


# --- reference parameter counts ----------------------------------------------------------------

@pytest.mark.parametrize("name, shape, classes, expected", [
    ("lenet5", (1, 32, 32), 10, 61_706),
    ("alexnet", (3, 224, 224), 1000, 61_100_840),
    ("vgg16", (3, 224, 224), 1000, 138_357_544),
    ("googlenet", (3, 224, 224), 1000, 6_624_904),
])
def test_paper_parameter_counts(name, shape, classes, expected):
    assert parameters_at(name, shape, classes) == expected
    assert ARCHITECTURES[name].paper_input == shape and ARCHITECTURES[name].paper_classes == classes


def test_meta_count_equals_a_real_build():
    real = build_model("alexnet", (3, 224, 224), 1000)
    assert count_parameters(real) == 61_100_840
    assert all(p.device.type == "cpu" for p in real.parameters())


def test_googlenet_aux_heads_are_optional_and_off_by_default():
    assert parameters_at("googlenet", (3, 224, 224), 1000, aux_logits=True) > 6_624_904
    assert build_model("googlenet", (1, 28, 28), 10).aux1 is None


def test_lenet5_layer_shapes_at_32_and_28():
    expected = [
        ("features.0", (1, 32, 32)), ("features.1", (6, 28, 28)), ("features.2", (6, 28, 28)),
        ("features.3", (6, 14, 14)), ("features.4", (16, 10, 10)), ("features.5", (16, 10, 10)),
        ("features.6", (16, 5, 5)), ("features.7", (120, 1, 1)), ("features.8", (120, 1, 1)),
        ("features.9", (120,)), ("classifier.0", (84,)), ("classifier.1", (84,)), ("classifier.2", (10,)),
    ]
    for shape in [(1, 32, 32), (1, 28, 28)]:  # 28x28 is zero-padded to 32x32 by features.0
        s = summary(build_model("lenet5", shape, 10), shape)
        assert [(r.name, r.output_shape) for r in s.rows] == expected
        assert [r.params for r in s.rows if r.params] == [156, 2_416, 48_120, 10_164, 850]


# --- every model trains at small inputs -----------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)], ids=["28x28x1", "32x32x3"])
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_forward_backward_small_inputs(name, shape, one_thread):
    torch.manual_seed(0)
    model = build_model(name, shape, 10)
    model.train()
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10)
    nn.functional.cross_entropy(out, torch.tensor([1, 7])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


def test_googlenet_aux_outputs_in_training_only(one_thread):
    torch.manual_seed(0)
    model = build_model("googlenet", (3, 32, 32), 10, aux_logits=True)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 3])
    out = model.train()(x)
    assert isinstance(out, GoogLeNetOutputs) and all(t.shape == (2, 10) for t in out)
    ce = nn.functional.cross_entropy
    expected = ce(out.logits, y) + 0.3 * (ce(out.aux1, y) + ce(out.aux2, y))
    assert torch.allclose(model.loss(out, y), expected)
    model.loss(out, y).backward()
    assert model.aux1[1][0].weight.grad is not None
    assert model.eval()(x).shape == (2, 10)


# --- small-input adaptations --------------------------------------------------------------------

def _kinds(model):
    return {type(m).__name__ for m in model.modules()}


def test_small_variants_switch_at_64_pixels():
    with torch.device("meta"):  # structure only
        paper, small = build_model("alexnet", (3, 64, 64), 10), build_model("alexnet", (3, 63, 63), 10)
        g_paper, g_small = build_model("googlenet", (3, 64, 64), 10), build_model("googlenet", (3, 32, 32), 10)
    assert "AdaptiveAvgPool2d" in _kinds(paper) and "AdaptiveAvgPool2d" not in _kinds(small)
    assert paper.features[0].kernel_size == (11, 11) and small.features[0].kernel_size == (5, 5)
    assert small.classifier[1].out_features == 1024 and paper.classifier[1].out_features == 4096
    assert g_paper.features.conv1[0].stride == (2, 2) and g_small.features.conv1[0].stride == (1, 1)
    assert "maxpool2" in dict(g_paper.features.named_children())
    assert "maxpool2" not in dict(g_small.features.named_children())


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "googlenet"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_small_maps_never_drop_below_1x1(name, shape):
    s = summary(build_model(name, shape, 10), shape)
    maps = [r.output_shape for r in s.rows if len(r.output_shape) == 3]
    assert maps and min(min(m[1:]) for m in maps) >= 1
    assert s.output_shape == (10,)


def test_vgg_small_pools_round_up_to_1x1():
    s = summary(build_model("vgg16", (1, 28, 28), 10), (1, 28, 28))
    pools = [r.output_shape[1] for r in s.rows if r.kind == "MaxPool2d"]
    assert pools == [14, 7, 4, 2, 1]


def test_cnn_workshop_widths_and_same_pooling():
    model = build_model("cnn", (1, 28, 28), 24, channels=(75, 50, 25), dense=512, block_dropout=0.0)
    s = summary(model, (1, 28, 28))
    pools = [r for r in s.rows if r.kind == "MaxPool2dSame"]
    assert [p.output_shape[1] for p in pools] == [14, 7, 4]
    assert pools[-1].formula == "floor((7 - 2 + (0+1)) / 2) + 1 = 4 = ceil(7/2)"
    assert s.output_shape == (24,)
    # an even kernel would grow each block's map by one: H + 2 * (k // 2) - k + 1
    with pytest.raises(NeuralabError, match="kernel_size=4: must be odd"):
        build_model("cnn", (1, 28, 28), 10, kernel_size=4)


# --- errors -------------------------------------------------------------------------------------

def test_unknown_model_and_bad_options():
    with pytest.raises(NeuralabError, match="unknown model 'resnet'; choose one of: mlp, cnn"):
        build_model("resnet", (1, 28, 28), 10)
    with pytest.raises(NeuralabError, match="num_classes=1"):
        build_model("cnn", (1, 28, 28), 1)
    with pytest.raises(NeuralabError, match="cnn: unknown model option 'widths'"):
        build_model("cnn", (1, 28, 28), 10, widths=(8,))
    with pytest.raises(NeuralabError, match="input_shape"):
        build_model("cnn", (1, 0, 28), 10)


def test_too_small_names_layer_and_smallest_input_that_works():
    with pytest.raises(NeuralabError) as e:
        build_model("googlenet", (1, 2, 2), 10)
    msg = str(e.value)
    assert "input_shape=(1, 2, 2): too small for googlenet" in msg
    assert "features.maxpool3 (MaxPool2d)" in msg and "ceil((1 - 3 + 2*0) / 2) + 1 = 0" in msg
    assert msg.endswith("the smallest input that works is (1, 4, 4)")
    assert "\n" not in msg
    build_model("googlenet", (1, 4, 4), 10)
    with pytest.raises(NeuralabError):
        build_model("googlenet", (1, 3, 3), 10)


def test_paper_alexnet_forced_on_cifar_size_vanishes():
    with pytest.raises(NeuralabError, match=r"features\.12 \(MaxPool2d\).*smallest input that works is \(3, 63, 63\)"):
        build_model("alexnet", (3, 32, 32), 10, small=False)
    build_model("alexnet", (3, 63, 63), 10, small=False)


# --- Keras padding="same" -----------------------------------------------------------------------

@pytest.mark.parametrize("size", range(1, 12))
@pytest.mark.parametrize("kernel, stride", [(1, 1), (2, 2), (3, 1), (3, 2), (5, 2), (3, 3), (7, 4)])
def test_conv2d_same_output_is_ceil_w_over_s(size, kernel, stride):
    conv = Conv2dSame(1, 1, kernel, stride)
    out = conv(torch.zeros(1, 1, size, size + 1))
    assert out.shape[-2:] == (-(-size // stride), -(-(size + 1) // stride))
    assert geometry(conv, size, size).out == (-(-size // stride),) * 2


def test_same_padding_puts_the_extra_row_at_the_bottom_right():
    assert Conv2dSame(1, 1, 2, 2).same_pads(7, 7) == ((0, 1), (0, 1))
    assert Conv2dSame(1, 1, 3, 2).same_pads(6, 5) == ((0, 1), (1, 1))
    assert Conv2dSame(1, 1, 3, 1).same_pads(28, 28) == ((1, 1), (1, 1))
    assert Conv2dSame(1, 1, 3, 1, dilation=2).same_pads(9, 9) == ((2, 2), (2, 2))  # spans 5 cells
    assert MaxPool2dSame(2, 2).same_pads(7, 8) == ((0, 1), (0, 0))
    # weight 1 at the kernel's top-left: output (i, j) reads padded input (S*i, S*j); with the
    # extra padding after, that is the real input x[S*i, S*j], never a padded zero.
    x = torch.arange(1, 50, dtype=torch.float32).view(1, 1, 7, 7)
    for kernel in (2, 3):
        conv = Conv2dSame(1, 1, kernel, 2, bias=False)
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[0, 0, 0, 0] = 1
        pads = conv.same_pads(7, 7)
        if pads[0][0] == 0:
            assert torch.equal(conv(x), x[:, :, ::2, ::2])


def test_maxpool_same_ignores_padding_and_rounds_up():
    pool = MaxPool2dSame(2, 2)
    x = -torch.arange(1, 50, dtype=torch.float32).view(1, 1, 7, 7)  # all negative: a zero pad would win
    out = pool(x)
    assert out.shape == (1, 1, 4, 4)
    assert (out < 0).all()
    assert out[0, 0, 3, 3] == x[0, 0, 6, 6]  # the last window holds one real cell and padding
    assert torch.equal(pool(torch.zeros(1, 1, 8, 8)), nn.MaxPool2d(2, 2)(torch.zeros(1, 1, 8, 8)))


CL = torch.channels_last


FAST_CASES = {  # id: PyTorch's layer, ours, arguments, input (C, H, W), where the shortcut runs, input needs grad
    "tanh": (nn.Tanh, Tanh, {}, (6, 13, 13), "both", True),
    "avg2": (nn.AvgPool2d, AvgPool2d, dict(kernel_size=2, stride=2), (6, 13, 13), "channels-last", True),
    "avg2-whole-windows": (nn.AvgPool2d, AvgPool2d, dict(kernel_size=2), (6, 14, 14), "channels-last", True),
    "avg-3x2-windows": (nn.AvgPool2d, AvgPool2d, dict(kernel_size=(3, 2)), (3, 13, 11), "channels-last", True),
    "avg-1x3-windows": (nn.AvgPool2d, AvgPool2d, dict(kernel_size=(1, 3), stride=(1, 3)), (5, 7, 13),
                        "channels-last", True),
    "avg3-overlapping": (nn.AvgPool2d, AvgPool2d, dict(kernel_size=3, stride=2), (6, 13, 13), "channels-last", True),
    "avg2-16-channels": (nn.AvgPool2d, AvgPool2d, dict(kernel_size=2, stride=2), (16, 13, 13), "none", True),
    "avg-padded": (nn.AvgPool2d, AvgPool2d, dict(kernel_size=2, stride=2, padding=1), (6, 13, 13), "none", True),
    "avg-ceil": (nn.AvgPool2d, AvgPool2d, dict(kernel_size=3, stride=2, ceil_mode=True), (6, 13, 13), "none", True),
    # the whole map in one window (LeNet-5's C5), VGG's 3x3 kernels over 2x2 and 1x1 maps: one matrix product
    "conv-whole-map": (nn.Conv2d, Conv2d, dict(in_channels=6, out_channels=10, kernel_size=13), (6, 13, 13),
                       "channels-last", True),
    "conv-2x2-map": (nn.Conv2d, Conv2d, dict(in_channels=16, out_channels=24, kernel_size=3, padding=1), (16, 2, 2),
                     "channels-last", True),
    "conv-1x1-map": (nn.Conv2d, Conv2d, dict(in_channels=16, out_channels=24, kernel_size=3, padding=1), (16, 1, 1),
                     "both", True),  # a 1x1 map is laid out both ways at once
    "conv-2x3-map-no-bias": (nn.Conv2d, Conv2d, dict(in_channels=8, out_channels=4, kernel_size=(3, 5), padding=(1, 2),
                                                     bias=False), (8, 2, 3), "channels-last", True),
    "conv-3x3-map": (nn.Conv2d, Conv2d, dict(in_channels=16, out_channels=24, kernel_size=3, padding=1), (16, 3, 3),
                     "none", True),  # the corner windows miss cells: oneDNN
    # a first layer on one channel (laid out both ways at once): the weight gradient from the input's windows
    "conv-first-layer": (nn.Conv2d, Conv2d, dict(in_channels=1, out_channels=32, kernel_size=3, padding=1),
                         (1, 13, 13), "both", False),
    "conv-first-layer-5x5": (nn.Conv2d, Conv2d, dict(in_channels=1, out_channels=16, kernel_size=5, padding=2),
                             (1, 13, 13), "both", False),
    "conv-first-layer-6-filters": (nn.Conv2d, Conv2d, dict(in_channels=1, out_channels=6, kernel_size=5), (1, 13, 13),
                                   "none", False),
    "conv-first-layer-3-channels": (nn.Conv2d, Conv2d, dict(in_channels=3, out_channels=32, kernel_size=3, padding=1),
                                    (3, 13, 13), "none", False),
    # fewer than 8 input channels: the input gradient in NCHW
    "conv": (nn.Conv2d, Conv2d, dict(in_channels=6, out_channels=10, kernel_size=5), (6, 13, 13), "channels-last", True),
    "conv-strided-dilated-grouped": (nn.Conv2d, Conv2d, dict(in_channels=6, out_channels=10, kernel_size=(3, 5),
                                                             stride=(2, 1), padding=(1, 2), dilation=2, groups=2,
                                                             bias=False), (6, 13, 13), "channels-last", True),
    "conv-padded": (nn.Conv2d, Conv2d, dict(in_channels=6, out_channels=10, kernel_size=13, padding=1), (6, 13, 13),
                    "channels-last", True),
    "conv-16-channels": (nn.Conv2d, Conv2d, dict(in_channels=16, out_channels=10, kernel_size=5), (16, 13, 13), "none",
                         True),
    "flatten": (nn.Flatten, Flatten, {}, (6, 5, 5), "channels-last", True),
}


@pytest.mark.parametrize("layout", [torch.contiguous_format, CL], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("case", list(FAST_CASES))
def test_fast_cpu_layers_match_pytorch(case, layout):
    theirs, ours, args, shape, shortcut_in, input_grad = FAST_CASES[case]
    torch.manual_seed(0)
    reference, layer = theirs(**args), ours(**args)
    layer.load_state_dict(reference.state_dict())
    x = (3 * torch.randn(4, *shape)).contiguous(memory_format=layout)  # odd sizes: a row left over
    a, b = x.clone().requires_grad_(input_grad), x.clone().requires_grad_(input_grad)
    out, ref = layer(a), reference(b)
    shortcut = shortcut_in == "both" or (shortcut_in == "channels-last" and layout == CL)
    assert (out.grad_fn.name() != ref.grad_fn.name()) == shortcut, out.grad_fn.name()
    grad = torch.randn_like(ref)
    out.backward(grad)
    ref.backward(grad)
    assert out.shape == ref.shape
    formats = (torch.contiguous_format, CL) if out.dim() == 4 else (torch.contiguous_format,)
    assert [out.is_contiguous(memory_format=f) for f in formats] == [ref.is_contiguous(memory_format=f) for f in formats]
    close = dict(rtol=1e-5, atol=1e-5)  # float32 sums in another order
    torch.testing.assert_close(out, ref, **close)
    if input_grad:
        assert a.grad.is_contiguous(memory_format=layout) and b.grad.is_contiguous(memory_format=layout)
        torch.testing.assert_close(a.grad, b.grad, **close)
    for mine, theirs_ in zip(layer.parameters(), reference.parameters()):
        # sums over the whole batch: the order's rounding grows with the sum's size
        torch.testing.assert_close(mine.grad, theirs_.grad, rtol=1e-5, atol=1e-6 * theirs_.grad.abs().max().item())
    with torch.inference_mode():  # an input that needs no gradient
        torch.testing.assert_close(layer(x), reference(x), **close)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", [torch.contiguous_format, CL], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_fast_dropout_keeps_with_probability_1_minus_p_and_scales_like_pytorch(p, layout, dtype):
    """The mask comes from another generator than PyTorch's, so the test holds the function:
    every value is either 0 or x times PyTorch's 1 / (1 - p) (rounded to the dtype, as
    PyTorch rounds it), the gradient is the same mask, the share kept is 1 - p within 5
    standard deviations, masks differ between calls and repeat under a seed, and outside
    training it is the identity, as nn.Dropout."""
    layer = Dropout(p)
    x = (torch.rand(64, 8, 14, 14) + 0.5).to(dtype).contiguous(memory_format=layout)  # no zeros of its own
    a = x.clone().requires_grad_()
    torch.manual_seed(3)
    out = layer(a)
    assert out.is_contiguous(memory_format=layout) and out.dtype == dtype
    torch.manual_seed(3)
    theirs = nn.Dropout(p)(x)
    assert not torch.equal(out.detach(), theirs)  # its own mask, not PyTorch's from the same seed
    kept = out != 0
    assert torch.equal(out[kept], x[kept] * torch.tensor(1 / (1 - p), dtype=dtype))
    assert torch.equal(theirs[theirs != 0], x[theirs != 0] * torch.tensor(1 / (1 - p), dtype=dtype))
    grad = torch.randn_like(x)
    out.backward(grad)
    assert torch.equal(a.grad, torch.where(kept, grad * torch.tensor(1 / (1 - p), dtype=dtype), 0))
    share, n = kept.float().mean().item(), x.numel()
    assert abs(share - (1 - p)) < 5 * (p * (1 - p) / n) ** 0.5
    torch.manual_seed(3)
    assert torch.equal(layer(x), out.detach()) and not torch.equal(layer(x), out.detach())
    torch.testing.assert_close(layer.eval()(x), nn.Dropout(p).eval()(x))
    small = torch.ones(8, 100, requires_grad=True)  # too few values to pay for a generator: PyTorch's own
    torch.manual_seed(5)
    mine = layer.train()(small)
    torch.manual_seed(5)
    assert torch.equal(mine, nn.Dropout(p)(small))


@pytest.mark.parametrize("keep", [0.9, 0.5, 100.5 / 256, 0.7 / 256])
def test_keep_mask_keeps_with_the_probability_asked(keep):
    """One random byte per value decides all but the values whose byte equals floor(256 keep),
    which 32 more bits decide: at 0.7 / 256 only those ties are ever kept, so the share kept
    tests that second draw; 0.5 has no fraction left, so its ties are all dropped."""
    n = 4_000_000
    kept = keep_mask(n, keep, np.random.PCG64(7))
    assert kept.dtype == np.bool_ and kept.shape == (n,)
    assert abs(kept.mean() - keep) < 5 * (keep * (1 - keep) / n) ** 0.5
    assert not np.array_equal(kept, keep_mask(n, keep, np.random.PCG64(8)))
    assert np.array_equal(kept, keep_mask(n, keep, np.random.PCG64(7)))


def _block(pool: nn.Module, channels: int = 8, affine: bool = True, momentum: float | None = 0.1,
           inplace: bool = True) -> nn.Sequential:
    """The sample CNN's block after its convolution: ReLU -> batch norm -> max pooling."""
    torch.manual_seed(1)
    block = nn.Sequential(nn.ReLU(inplace=inplace), nn.BatchNorm2d(channels, affine=affine, momentum=momentum), pool)
    if affine:
        with torch.no_grad():  # away from the initial 1 and 0, so that a wrong use of either shows
            block[1].weight.uniform_(0.5, 2)
            block[1].bias.uniform_(-1, 1)
    return block


FUSED_CASES = {  # pool, input (C, H, W), fused in channels-last
    "same-2x2-even": (lambda: MaxPool2dSame(2, 2), (8, 14, 14), True),
    "same-2x2-odd": (lambda: MaxPool2dSame(2, 2), (8, 7, 9), True),        # a last window over real cells alone
    "maxpool-3x3-stride-2-padded": (lambda: nn.MaxPool2d(3, 2, padding=1), (8, 11, 11), True),  # windows overlap
    "maxpool-ceil-dilated": (lambda: nn.MaxPool2d(2, 3, dilation=2, ceil_mode=True), (8, 13, 10), True),
    "same-3x3-stride-1": (lambda: MaxPool2dSame(3, 1), (8, 9, 9), False),  # zeros before: a padded copy
    "avgpool": (lambda: nn.AvgPool2d(2), (8, 8, 8), False),
}


@pytest.mark.parametrize("options", [{}, {"affine": False}, {"momentum": None}, {"inplace": False}],
                         ids=["affine", "no-affine", "cumulative", "relu-not-in-place"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, CL], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("case", list(FUSED_CASES))
def test_fused_relu_batchnorm_maxpool_matches_the_three_layers(case, layout, options, one_thread):
    """accelerate() runs ReLU -> BatchNorm2d -> max pooling in a row as one step in training on
    channels-last maps: the same output, input gradient, gamma and beta gradients, running
    statistics and batch count as PyTorch's three layers, over two steps (the second with the
    statistics the first left); PyTorch's layers in NCHW and where the pooling is not plain.
    The ReLU overwrites its input exactly where PyTorch's layer would (inplace=True)."""
    pool, shape, fusable = FUSED_CASES[case]
    reference = _block(pool(), **options)
    block = accelerate(_block(pool(), **options))
    fused = fusable and layout == CL
    for step in range(2):
        torch.manual_seed(step)
        x = (2 * torch.randn(16, *shape) + 0.3).contiguous(memory_format=layout)
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        c = a * 1  # the in-place ReLU may not touch a leaf
        out, ref = block(c), reference(b * 1)
        assert (out.grad_fn.name() == "_ReluBatchNormMaxPoolBackward") == fused, out.grad_fn.name()
        assert bool((c >= 0).all()) == options.get("inplace", True)  # the input holds negative values
        assert out.is_contiguous(memory_format=layout)
        grad = torch.randn_like(ref)
        out.backward(grad)
        ref.backward(grad)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)
        for mine, theirs in zip(block.parameters(), reference.parameters()):
            torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-4, atol=1e-5 * theirs.grad.abs().max().item())
        for mine, theirs in zip(block.buffers(), reference.buffers()):
            torch.testing.assert_close(mine, theirs)
    torch.testing.assert_close(block.eval()(x), reference.eval()(x))


def test_fused_block_steps_aside_where_it_would_differ(one_thread):
    """A gamma that is not positive (pooling no longer commutes with batch norm), a hook that
    would see the maps between the layers, and evaluation mode all run PyTorch's layers."""
    x = torch.randn(8, 8, 6, 6).contiguous(memory_format=CL)
    block = accelerate(_block(MaxPool2dSame(2, 2)))
    assert block(x * 1).grad_fn.name() == "_ReluBatchNormMaxPoolBackward"
    with torch.no_grad():
        block[1].weight[3] = -0.5
    reference = _block(MaxPool2dSame(2, 2))
    reference.load_state_dict(block.state_dict())
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, ref = block(a * 1), reference(b * 1)
    assert out.grad_fn.name() != "_ReluBatchNormMaxPoolBackward"
    torch.testing.assert_close(out, ref)
    with torch.no_grad():
        block[1].weight[3] = 1.0
    seen = []
    handle = block[1].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    assert block(x * 1).grad_fn.name() != "_ReluBatchNormMaxPoolBackward" and seen == [x.shape]
    handle.remove()
    assert block.eval()(x * 1).grad_fn.name() != "_ReluBatchNormMaxPoolBackward"


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 4, 4), (3, 2, 2), (1, 1, 1)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("layout", [torch.contiguous_format, CL], ids=["nchw", "channels-last"])
def test_accelerated_sample_cnn_step_matches_pytorch_layers(layout, shape, one_thread):
    """The whole sample CNN (without dropout, whose draws differ by design) with every fast
    layer, against the same network in PyTorch's layers: logits and every parameter gradient.
    Maps of 4 cells a side or less come out of their convolution as views (``_TapMatrix``),
    which the fused block once tried to change in place: a RuntimeError on the first step."""
    torch.manual_seed(0)
    plain = build_model("cnn", shape, 10, block_dropout=0.0, dropout=0.0)
    fast = accelerate(build_model("cnn", shape, 10, block_dropout=0.0, dropout=0.0))
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(32, *shape).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (32,))
    out, ref = fast(x), plain(x)
    F.cross_entropy(out, y).backward()
    F.cross_entropy(ref, y).backward()
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    for (name, mine), theirs in zip(fast.named_parameters(), plain.parameters()):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-3, atol=1e-5 * theirs.grad.abs().max().item(),
                                   msg=name)


def test_accelerate_swaps_pytorch_layers_only_and_keeps_names_and_weights():
    model = build_model("cnn", (1, 28, 28), 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kinds = [type(m).__name__ for m in model.modules()]
    assert accelerate(model) is model
    assert [type(m).__name__ for m in model.modules()] == kinds  # summaries read the same
    assert type(model.features[0]) is Conv2d and type(model.features[3]) is MaxPool2dSame
    assert {k: v for k, v in model.state_dict().items()}.keys() == before.keys()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fast_cpu_layers_leave_unbatched_and_bf16_inputs_to_pytorch(one_thread):
    torch.manual_seed(0)
    conv, reference = Conv2d(6, 4, 5), nn.Conv2d(6, 4, 5)
    reference.load_state_dict(conv.state_dict())
    unbatched = torch.randn(6, 5, 5)
    torch.testing.assert_close(conv(unbatched), reference(unbatched))
    torch.testing.assert_close(AvgPool2d(2, 2)(unbatched), nn.AvgPool2d(2, 2)(unbatched))
    # bf16 autocast on CPU: the shortcuts would mix dtypes (and lose tanh's precision near 0)
    model = accelerate(build_model("lenet5", (1, 28, 28), 10)).to(memory_format=CL)
    x = torch.randn(8, 1, 28, 28).contiguous(memory_format=CL)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        c1 = model.features[:3](x)
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16 and model.features[1].weight.grad is not None
    assert c1.grad_fn.name() == "TanhBackward0"
    assert torch.tanh(torch.tensor(1e-3, dtype=torch.bfloat16)) == Tanh()(torch.tensor(1e-3, dtype=torch.bfloat16))


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 2)], ids=["tiling", "overlapping"])
def test_fast_avgpool_on_a_map_smaller_than_its_window_raises_as_pytorch(kernel, stride):
    x = torch.randn(2, 6, 1, 5).contiguous(memory_format=CL)
    with pytest.raises(RuntimeError) as theirs:
        nn.AvgPool2d(kernel, stride)(x)
    with pytest.raises(RuntimeError) as ours:
        AvgPool2d(kernel, stride)(x)
    assert str(ours.value) == str(theirs.value)


def test_geometry_formulas_match_pytorch():
    for module, size in [(nn.Conv2d(1, 1, 3, 2, 1), 28), (nn.MaxPool2d(3, 2, ceil_mode=True), 14),
                         (nn.AvgPool2d(2, 2), 13), (nn.Conv2d(1, 1, 3, dilation=2), 9),
                         (nn.MaxPool2d(2, 2, padding=1, ceil_mode=True), 3), (nn.Conv2d(1, 1, 5, padding="same", dilation=2), 9)]:
        real = module(torch.zeros(1, 1, size, size)).shape[-1]
        geo = geometry(module, size, size)
        assert geo.out == (real, real), module
        assert re.findall(r"= (\d+)", geo.formula)[-1] == str(real), geo.formula
    assert geometry(nn.Conv2d(1, 1, 5), 32, 32).formula == "floor((32 - 5 + 2*0) / 1) + 1 = 28"
    assert geometry(nn.Conv2d(1, 1, (3, 5)), 10, 12).formula == \
        "H: floor((10 - 3 + 2*0) / 1) + 1 = 8; W: floor((12 - 5 + 2*0) / 1) + 1 = 8"
    assert geometry(nn.ReLU(), 5, 5) is None


def test_flat_size_raises_map_vanishes():
    features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3))
    assert flat_size(features, (1, 10, 10)) == 4 * 2 * 2
    with pytest.raises(MapVanishes, match=r"features\.2 \(Conv2d\) would shrink the 2x2 feature map to 0x0"):
        flat_size(features, (1, 6, 6))


@pytest.mark.parametrize("size", range(1, 12))
@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 2), (2, 1), (3, 3), (1, 2)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, CL], ids=["nchw", "channels-last"])
def test_maxpool_same_equals_padding_with_minus_infinity(size, kernel, stride, layout):
    """Without a padded copy where ceil_mode covers the same cells: the values, the gradient
    and which cell wins a tie (the first, as PyTorch picks it) equal -inf padding's."""
    pool = MaxPool2dSame(kernel, stride)
    torch.manual_seed(size)
    x = torch.randint(0, 3, (2, 3, size, size + 1)).float().contiguous(memory_format=layout)  # many ties
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    (top, bottom), (left, right) = pool.same_pads(size, size + 1)
    reference = nn.MaxPool2d(kernel, stride)(F.pad(b, (left, right, top, bottom), value=float("-inf")))
    out = pool(a)
    grad = torch.randn_like(reference)
    out.backward(grad)
    reference.backward(grad)
    assert torch.equal(out, reference) and torch.equal(a.grad, b.grad)
    assert out.is_contiguous(memory_format=layout)
