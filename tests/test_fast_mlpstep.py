"""Dense layers run as one chain (models/dense_chain.py) against PyTorch's own layers:
the output and every gradient, without dropout and with the masks the chain drew, bit for
bit with the same products; the masks' distribution and seeding; the fallbacks where the
chain would differ (evaluation, hooks, other dtypes, autocast)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import record_calls
from torch import nn

from neuralab.models import build_model, dense_chain, inner_product
from neuralab.models.fast import accelerate


def _head(name: str) -> nn.Sequential:
    """The zoo model's dense layers as it builds them at 28x28x1 (the MLP's body with its Flatten)."""
    torch.manual_seed(0)
    model = build_model(name, (1, 28, 28), 10)
    return model.features if name == "mlp" else model.classifier


def _reference(head: nn.Sequential, x: torch.Tensor, masks: list[torch.Tensor | None]) -> torch.Tensor:
    """PyTorch's layers, each dropout inside the chain replaced by a product with the chain's
    mask, and each Linear's product the one the chain takes (tests/test_inner_product.py holds
    oneDNN's to PyTorch's)."""
    modules, k, chained = list(head), 0, False
    for i, layer in enumerate(modules):
        if isinstance(layer, nn.Linear):
            x, chained, k = inner_product.linear(x, layer.weight, layer.bias), True, k + 1
        elif isinstance(layer, nn.Dropout) and chained and isinstance(modules[i - 1], nn.ReLU):
            x = x * masks[k - 1] if masks[k - 1] is not None else x
        elif isinstance(layer, nn.Flatten):
            x = layer(x)
        else:
            x = F.relu(x) if isinstance(layer, nn.ReLU) else layer(x)  # the chain's own ReLU, not in place
    return x


def _masks_for(head: nn.Sequential, batch: int, seed: int) -> list[torch.Tensor | None]:
    """The masks the chain draws after ``torch.manual_seed(seed)``: the same call, the same draws."""
    linears = [m for m in head if isinstance(m, nn.Linear)]
    steps = dense_chain._step
    modules, keeps, i = list(head), [], 0
    while i < len(modules):
        found = steps(modules, i) if isinstance(modules[i], nn.Linear) else None
        if found is None:
            i += 1
            continue
        keeps.append(found[0][1])
        i = found[1]
    torch.manual_seed(seed)
    return dense_chain._masks(batch, [m.out_features for m in linears], keeps)


@pytest.mark.parametrize("name", ["mlp", "cnn", "alexnet", "vgg16"])
@pytest.mark.parametrize("dropout", [False, True])
@pytest.mark.usefixtures("one_thread")
def test_chain_matches_pytorch_layers_forward_and_backward(name, dropout, chains):
    """Output, input gradient (where the input needs one) and every weight and bias gradient equal
    PyTorch's layers: exactly without dropout, and exactly with the masks the chain drew."""
    head = _head(name)
    if not dropout:
        for m in head.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
    ref = copy.deepcopy(head).train()
    fast = accelerate(copy.deepcopy(head)).train()
    shape = (64, 1, 28, 28) if name == "mlp" else (64, next(m for m in head if isinstance(m, nn.Linear)).in_features)
    x = torch.randn(shape)
    needs_input_grad = name != "mlp"  # the MLP's images need none; a head's input comes from the convolutions
    x_ref, x_fast = x.clone().requires_grad_(needs_input_grad), x.clone().requires_grad_(needs_input_grad)
    masks = _masks_for(fast, 64, seed=3)
    torch.manual_seed(3)
    head_input = x_fast
    if name == "alexnet":  # its first Dropout stays a layer of its own, before the chain: not here
        fast[0].p = ref[0].p = 0.0
    out = fast(head_input)
    assert chains == [len([m for m in head if isinstance(m, nn.Linear)])]  # all of them, in one chain
    expected = _reference(ref, x_ref, masks)
    assert torch.equal(out, expected)
    g = torch.randn_like(out)
    out.backward(g)
    expected.backward(g)
    if needs_input_grad:
        assert torch.equal(x_fast.grad, x_ref.grad)
    for (pname, p), q in zip(fast.named_parameters(), ref.parameters()):
        assert p.grad is not None, pname
        assert torch.equal(p.grad, q.grad), pname
    if dropout:  # the masks were applied: some values dropped, the kept ones scaled
        assert any(m is not None and (m == 0).any() for m in masks)


def test_chain_masks_keep_with_probability_1_minus_p_and_repeat_under_the_seed():
    torch.manual_seed(0)
    masks = dense_chain._masks(1024, [256, 128, 100], [0.8, 0.8, 0.8])
    values = torch.cat([m.flatten() for m in masks])
    assert [tuple(m.shape) for m in masks] == [(1024, 256), (1024, 128), (1024, 100)]
    assert set(values.unique().tolist()) == {0.0, float(np.float32(1 / 0.8))}
    kept = (values > 0).double().mean().item()
    assert abs(kept - 0.8) < 4 * (0.8 * 0.2 / len(values)) ** 0.5
    torch.manual_seed(0)
    again = dense_chain._masks(1024, [256, 128, 100], [0.8, 0.8, 0.8])
    assert all(torch.equal(a, b) for a, b in zip(masks, again))
    torch.manual_seed(1)
    assert not torch.equal(masks[0], dense_chain._masks(1024, [256, 128, 100], [0.8, 0.8, 0.8])[0])
    # layers with other keep rates each keep at their own; a layer without dropout has no mask
    torch.manual_seed(0)
    mixed = dense_chain._masks(2048, [100, 100, 100], [0.5, 1.0, 0.9])
    assert mixed[1] is None
    assert abs((mixed[0] > 0).double().mean().item() - 0.5) < 0.01
    assert abs((mixed[2] > 0).double().mean().item() - 0.9) < 0.01


@pytest.fixture
def chains(monkeypatch) -> list[int]:
    """The number of Linear layers of each chain run while the test runs."""
    return record_calls(monkeypatch, dense_chain, "_run", lambda args, _: len(args[2]))


def _chained(model: nn.Module, x: torch.Tensor, chains: list[int]) -> bool:
    """Whether a chain ran in ``model(x)``."""
    before = len(chains)
    model(x)
    return len(chains) > before


@pytest.mark.usefixtures("one_thread")
def test_chain_falls_back_to_the_layers_where_it_would_differ(chains):
    torch.manual_seed(0)
    model = accelerate(build_model("mlp", (1, 28, 28), 10)).train()
    x = torch.randn(32, 1, 28, 28)
    assert _chained(model, x, chains)
    # evaluation: dropout is the identity, and PyTorch's layers run
    model.eval()
    assert not _chained(model, x, chains)
    plain = build_model("mlp", (1, 28, 28), 10).eval()
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(model(x), plain(x), rtol=1e-5, atol=1e-6)  # oneDNN's products round otherwise
    model.train()
    # a hook on one of the layers sees what the chain skips: the layers run, the hook is called
    seen = []
    handle = model.features[8].register_forward_hook(lambda m, args, out: seen.append(out.shape))
    assert not _chained(model, x, chains) and seen == [torch.Size([32, 100])]
    handle.remove()
    # a hook on the first ReLU: the first layers run, the two after it are chained
    handle = model.features[2].register_forward_hook(lambda m, args, out: seen.append(out.shape))
    assert _chained(model, x, chains) and seen[-1] == torch.Size([32, 256]) and chains[-1] == 2
    handle.remove()
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, args, out: None)
    try:
        assert not _chained(model, x, chains)
    finally:
        handle.remove()
    # one layer in evaluation mode, another dtype, autocast: the layers
    model.features[9].eval()
    assert not _chained(model, x, chains)
    model.features[9].train()
    assert not _chained(model.double(), x.double(), chains)
    model.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _chained(model, x, chains)
    assert _chained(model, x, chains)
    # a single Linear is no chain
    single = accelerate(nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Dropout(0.5))).train()
    assert not _chained(single, torch.randn(3, 8), chains)


def test_chained_mlp_keeps_its_parameter_names_and_trains():
    """accelerate changes no name or state; a few steps of Adam through the chain lower the loss."""
    torch.manual_seed(0)
    model = build_model("mlp", (1, 28, 28), 10)
    names = list(model.state_dict())
    accelerate(model).train()
    assert list(model.state_dict()) == names
    x, y = torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
