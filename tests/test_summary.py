"""Keras-style summaries: rows, totals, formulas, blocks, folding, errors and the two renderers."""

from __future__ import annotations

import io
import json
import re

import pytest
import torch
from torch import nn

from neuralab.errors import NeuralabError, ParameterError
from neuralab.models import build_model, count_parameters, print_summary, render_summary, summary
from neuralab.models.summary import render_table, smallest_input

GEOMETRY_KINDS = {"Conv2d", "MaxPool2d", "AvgPool2d", "MaxPool2dSame", "Conv2dSame", "ZeroPad2d", "AdaptiveAvgPool2d"}


def test_lenet_totals_and_size():
    s = summary(build_model("lenet5", (1, 32, 32), 10), (1, 32, 32), name="lenet5")
    assert (s.total_params, s.trainable_params, s.non_trainable_params, s.buffers) == (61_706, 61_706, 0, 0)
    assert s.size_bytes == 61_706 * 4 and s.size_mb == pytest.approx(0.246824)
    assert s.output_shape == (10,) and s.input_shape == (1, 32, 32) and s.model == "lenet5"
    assert sum(r.params for r in s.rows) == s.total_params


@pytest.mark.parametrize("name, shape", [("lenet5", (1, 28, 28)), ("cnn", (1, 28, 28)), ("alexnet", (3, 32, 32)),
                                         ("vgg16", (3, 32, 32)), ("googlenet", (1, 28, 28))])
def test_every_conv_and_pool_row_shows_its_formula(name, shape):
    s = summary(build_model(name, shape, 10), shape)
    spatial = [r for r in s.rows if r.kind in GEOMETRY_KINDS]
    assert spatial
    for r in spatial:
        assert r.formula, r.name
        if r.kind != "AdaptiveAvgPool2d":
            # the number the formula ends with is the row's output height
            assert re.findall(r"= (\d+)", r.formula)[-1] == str(r.output_shape[1]), (r.name, r.formula)
    assert all(r.formula is None for r in s.rows if r.kind not in GEOMETRY_KINDS)


def test_formula_text_follows_the_workshop():
    s = summary(build_model("cnn", (1, 28, 28), 10), (1, 28, 28))
    by_name = {r.name: r for r in s.rows}
    assert by_name["features.0"].formula == "floor((28 - 3 + 2*1) / 1) + 1 = 28"
    assert by_name["features.3"].formula == "floor((28 - 2 + 2*0) / 2) + 1 = 14 = ceil(28/2)"


def test_non_trainable_and_buffers():
    model = build_model("cnn", (1, 28, 28), 10)
    for p in model.features.parameters():
        p.requires_grad_(False)
    s = summary(model, (1, 28, 28))
    frozen = sum(p.numel() for p in model.features.parameters())
    assert s.non_trainable_params == frozen and s.trainable_params == s.total_params - frozen
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert s.buffers == sum(2 * m.num_features + 1 for m in bn)  # running mean, var, batch count
    conv_row = next(r for r in s.rows if r.name == "features.0")
    assert conv_row.trainable == 0 and conv_row.params == 320
    text = render_summary(s, rich=False)
    assert f"Non-trainable params: {frozen:,}" in text


def test_count_parameters_of_lazy_layers_says_to_run_a_batch_and_counts_after_it():
    """It gave torch's ValueError ("Attempted to use an uninitialized parameter in numel")."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(10))
    with pytest.raises(ParameterError) as refused:
        count_parameters(model)
    assert refused.value.parameter == "model" and str(refused.value) == (
        "model='Sequential': 2 (LazyLinear) is a lazy layer, sized by the model's first forward pass: run one batch "
        "through it first (model(x)), or call summary(model, input_shape), which does")
    before = torch.random.get_rng_state()
    frozen = nn.Sequential(nn.BatchNorm2d(1), model).train()
    frozen[0].eval()  # by its user
    assert summary(frozen, (1, 28, 28)).total_params == 2 + 4 * 9 + 4 + 4 * 26 * 26 * 10 + 10
    assert torch.equal(torch.random.get_rng_state(), before)  # sizing the lazy layer drew on a generator of its own
    assert frozen.training and not frozen[0].training and model.training  # each layer's mode as it was
    model(torch.zeros(2, 1, 28, 28))
    assert count_parameters(model) == 4 * 9 + 4 + 4 * 26 * 26 * 10 + 10


def test_blocks_are_listed_after_their_parts_and_not_counted_twice():
    model = build_model("googlenet", (3, 32, 32), 10, aux_logits=True)
    s = summary(model, (3, 32, 32))
    blocks = [r for r in s.rows if r.block]
    assert [b.name for b in blocks][:2] == ["features.inception3a", "features.inception3b"]
    assert len(blocks) == 9 and all(b.kind == "Inception" for b in blocks)
    first = s.rows.index(blocks[0])
    parts = [r for r in s.rows[:first] if r.name.startswith("features.inception3a.")]
    assert blocks[0].params == sum(r.params for r in parts) and blocks[0].output_shape == (256, 16, 16)
    unused = dict(s.unused)
    assert set(unused) == {"aux1", "aux2"}
    assert sum(r.params for r in s.rows if not r.block) + sum(unused.values()) == s.total_params
    assert "Not run at inference" in render_summary(s, rich=False)


def test_depth_folds_nested_layers():
    model = build_model("cnn", (1, 28, 28), 10)
    s = summary(model, (1, 28, 28), depth=1)
    assert [(r.name, r.kind, r.output_shape) for r in s.rows] == [
        ("features", "Sequential", (3136,)), ("classifier", "Sequential", (10,))]
    assert sum(r.params for r in s.rows) == s.total_params
    g = summary(build_model("googlenet", (1, 28, 28), 10), (1, 28, 28), depth=2)
    assert [r.name for r in g.rows if "inception" in r.name][0] == "features.inception3a"
    assert not any(r.block for r in g.rows)


@pytest.mark.parametrize("depth", [0, -1, 1.5, True])
def test_a_depth_that_folds_every_layer_away_is_refused_naming_it(depth):
    with pytest.raises(ParameterError, match=r"^depth=.*: must be a whole number of at least 1") as e:
        summary(build_model("cnn", (1, 28, 28), 10), (1, 28, 28), depth=depth)
    assert "\n" not in str(e.value)


def test_depth_keeps_a_container_whose_parts_the_model_calls_one_by_one():
    """GoogLeNet runs its ``features`` layer by layer (to tap the auxiliary heads), so the
    Sequential's own forward never runs; folded to depth 1 it must still be a row."""
    with torch.device("meta"):
        model = build_model("googlenet", (3, 224, 224), 1000)
    s = summary(model, (3, 224, 224), depth=1)
    assert [(r.name, r.output_shape) for r in s.rows] == [("features", (1024,)), ("classifier", (1000,))]
    assert sum(r.params for r in s.rows) == s.total_params == 6_624_904


def test_meta_models_summarise_paper_sizes_for_free():
    with torch.device("meta"):
        model = build_model("vgg16", (3, 224, 224), 1000)
    s = summary(model, (3, 224, 224))
    assert s.total_params == 138_357_544
    pools = [r.output_shape for r in s.rows if r.kind == "MaxPool2d"]
    assert pools == [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14), (512, 7, 7)]
    fc = next(r for r in s.rows if r.name == "classifier.0")
    assert fc.params == 25088 * 4096 + 4096


def test_summary_leaves_the_model_as_it_was():
    model = build_model("cnn", (1, 28, 28), 10).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    summary(model, (1, 28, 28))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks


def test_too_small_input_names_layer_and_smallest_size():
    model = build_model("googlenet", (1, 28, 28), 10)
    with pytest.raises(NeuralabError) as e:
        summary(model, (1, 3, 3), name="googlenet")
    msg = str(e.value)
    assert msg.startswith("input_shape=(1, 3, 3): too small for googlenet: features.maxpool3 (MaxPool2d)")
    assert msg.endswith("the smallest input that works is (1, 4, 4)")  # as a Python caller writes it


def test_input_the_model_was_not_built_for():
    model = build_model("lenet5", (1, 32, 32), 10)
    with pytest.raises(NeuralabError, match=r"input_shape=\(1, 40, 40\): lenet5 fails at classifier\.0 \(Linear\).*another input"):
        summary(model, (1, 40, 40), name="lenet5")
    with pytest.raises(NeuralabError, match="input_shape"):
        summary(model, (1, 32))


def test_smallest_input_search():
    calls = []

    def works(shape):
        calls.append(shape)
        return shape[1] >= 37

    assert smallest_input(works, 3) == (3, 37, 37)
    assert len(calls) < 20
    assert smallest_input(lambda s: False, 1) is None


def test_plain_text_for_logs_rich_for_terminals():
    s = summary(build_model("lenet5", (1, 28, 28), 10), (1, 28, 28), name="lenet5")
    plain = render_summary(s, rich=False)
    assert "\x1b[" not in plain
    lines = plain.splitlines()
    assert lines[0] == 'Model: "lenet5"  input (B, 1, 28, 28)'
    assert any(re.fullmatch(r"features\.1 \(Conv2d\)\s+\(B, 6, 28, 28\)\s+156  floor\(\(32 - 5 \+ 2\*0\) / 1\) \+ 1 = 28", ln)
               for ln in lines)
    assert "Total params: 61,706" in plain and str(s) == plain
    log = io.StringIO()  # not a terminal: plain
    print_summary(s, file=log)
    assert log.getvalue() == plain
    fancy = render_summary(s, rich=True)
    assert "\x1b[" in fancy and "┃" in fancy and "61,706" in fancy


def test_to_dict_is_json():
    s = summary(build_model("cnn", (3, 32, 32), 10), (3, 32, 32))
    d = json.loads(json.dumps(s.to_dict()))
    assert d["total_params"] == s.total_params and d["non_trainable_params"] == 0
    assert d["rows"][0]["name"] == "features.0" and d["rows"][0]["output_shape"] == [32, 32, 32]


def test_render_table_aligns_columns():
    text = render_table("T", ("a", "num", "note"), [("x", "1", "first"), ("long", "1,000", "")], right=(1,), rich=False)
    rule = "=" * len("x         1  first")
    assert text.splitlines() == ["T", rule, "a       num  note", rule, "x         1  first", "long  1,000", rule]


# --- Keras's layout ---------------------------------------------------------------------------

def test_keras_layout_shows_channels_last_shapes_and_keras_counts():
    s = summary(build_model("lenet5", (1, 32, 32), 10), (1, 32, 32), name="lenet5")
    text = render_summary(s, rich=False, layout="keras")
    conv = next(r for r in s.rows if r.kind == "Conv2d")
    assert conv.output_shape == (6, 28, 28) and "(None, 28, 28, 6)" in text and "(B, 6, 28, 28)" not in text
    assert "(None, 10)" in text and "Total params: 61,706 (241.04 KB)" in text  # Keras's own figure for LeNet-5
    assert "Param #" in text and "PyTorch's layout" not in text  # the counts agree: no note


def test_keras_layout_counts_batch_norm_moving_statistics():
    """Keras's BatchNormalization holds moving mean and variance as non-trainable weights."""
    model = build_model("cnn", (1, 28, 28), 10)
    s = summary(model, (1, 28, 28))
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    moving = sum(2 * m.num_features for m in bn)
    assert (s.keras_params, s.keras_trainable) == (s.total_params + moving, s.trainable_params)
    text = render_summary(s, rich=False, layout="keras")
    assert f"Total params: {s.total_params + moving:,}" in text and f"Non-trainable params: {moving:,}" in text
    assert f"counts {s.total_params:,}: BatchNorm's moving mean and variance are buffers there" in text


def test_a_layer_under_weight_norm_or_spectral_norm_is_one_row_counting_its_weights():
    """torch.nn.utils.parametrizations keep a layer's weight in modules of their own, which compute
    it: they are no layers. Before, they were rows with the weight's shape as a batch's output, and
    Keras's layout counted 0 parameters."""
    from torch.nn.utils.parametrizations import spectral_norm, weight_norm

    from neuralab.models.summary import keras_count

    model = nn.Sequential(nn.Flatten(), weight_norm(nn.Linear(784, 32)), nn.ReLU(), spectral_norm(nn.Linear(32, 10)))
    s = summary(model, (1, 28, 28))
    assert [(r.name, r.output_shape, r.params) for r in s.rows] == [
        ("0", (784,), 0), ("1", (32,), count_parameters(model[1])), ("2", (32,), 0), ("3", (10,), count_parameters(model[3]))]
    assert sum(r.params for r in s.rows) == s.total_params and (s.keras_params, s.keras_trainable) == keras_count(model)
    assert not s.held and "parametrizations" not in render_summary(s, rich=False)
    text = render_summary(s, rich=False, layout="keras")
    assert f"Total params: {s.total_params:,} " in text and "parametrizations" not in text and "PyTorch's layout" not in text


class _StackedLSTM(nn.Module):
    """The workshop's LSTM(128) -> LSTM(64) -> Dense(1) on one feature, in PyTorch."""

    def __init__(self):
        super().__init__()
        self.lstm1, self.lstm2, self.dense = nn.LSTM(1, 128, batch_first=True), nn.LSTM(128, 64, batch_first=True), nn.Linear(64, 1)


def test_keras_count_of_lstms_keeps_one_bias_per_gate():
    """Keras's LSTM(128) -> LSTM(64) -> Dense(1) has 116,033 parameters; PyTorch's layout keeps a
    second bias per gate (4 x 128 + 4 x 64 = 768 more): 116,801."""
    from neuralab.models.summary import keras_count, render_keras

    model = _StackedLSTM()
    assert sum(p.numel() for p in model.parameters()) == 116_801
    assert keras_count(model) == (116_033, 116_033)
    assert keras_count(model.lstm1) == (4 * (128 * (1 + 128) + 128),) * 2  # Keras's formula: 4 (units (in + units) + units)
    rows = [{"name": n, "class": type(m).__name__, "output_shape": (None, 64), "params": keras_count(m)[0]}
            for n, m in model.named_children()]
    text = render_keras("stacked", rows, torch_params=116_801, rich=False)
    assert "Total params: 116,033" in text
    assert "counts 116,801: its LSTM keeps two biases per gate where Keras keeps one (the two only ever add up" in text
    # one clause per kind of layer the model holds: a SimpleRNN has no gates, an LSTM no moving statistics
    rnn = nn.Sequential(nn.RNN(3, 8, batch_first=True))
    rows = [{"name": "rnn", "class": "SimpleRNN", "output_shape": (None, 8), "params": keras_count(rnn)[0]},
            {"name": "bn", "class": "BatchNormalization", "output_shape": (None, 8), "params": 32}]
    torch_params = sum(p.numel() for p in rnn.parameters()) + 16  # the moving statistics are buffers there
    text = render_keras("rnn", rows, torch_params=torch_params, rich=False)
    assert (f"counts {torch_params:,}: its SimpleRNN keeps two biases where Keras keeps one (the two only ever add up, so the "
            "function is the same); BatchNorm's moving mean and variance are buffers there") in text
    assert "LSTM" not in text and "gate" not in text


def test_unknown_layout_is_refused_by_name():
    s = summary(build_model("lenet5", (1, 32, 32), 10), (1, 32, 32))
    with pytest.raises(NeuralabError, match="layout=.tf.: choose torch or keras"):
        render_summary(s, layout="tf")


# --- recurrent layers, saved buffers, tied weights, notebooks --------------------------------------

class _Rows(nn.Module):
    """A (1, steps, features) input read row by row by a two-layer recurrent layer."""

    def __init__(self, cell, batch_first):
        super().__init__()
        self.batch_first = batch_first
        self.rnn = cell(16, 8, num_layers=2, batch_first=batch_first)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        x = x[:, 0] if self.batch_first else x[:, 0].transpose(0, 1)  # (B, T, F) or (T, B, F)
        out, _ = self.rnn(x)
        return self.head(out[:, -1] if self.batch_first else out[-1])


def _without_batch(t: torch.Tensor, batch: int):
    """A real output's shape as a row holds it: the batch stripped when first, else None in its place."""
    dims = tuple(t.shape)
    return dims[1:] if dims[0] == batch else tuple(None if d == batch else d for d in dims)


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("batch_first", [True, False])
def test_recurrent_rows_show_the_batch_where_pytorch_puts_it(cell, batch_first):
    model = _Rows(cell, batch_first)
    out, states = model.rnn(torch.zeros((3, 16, 16) if batch_first else (16, 3, 16)))  # a real batch of 3
    lstm = cell is nn.LSTM
    expected = (_without_batch(out, 3),
                tuple(_without_batch(t, 3) for t in states) if lstm else _without_batch(states, 3))
    seq = (16, 8) if batch_first else (16, None, 8)
    assert expected == ((seq, ((2, None, 8), (2, None, 8))) if lstm else (seq, (2, None, 8)))  # h_n, c_n: batch second
    s = summary(model, (1, 16, 16))
    assert next(r for r in s.rows if r.name == "rnn").output_shape == expected
    text = render_summary(s, rich=False)
    first = "(B, 16, 8)" if batch_first else "(16, B, 8)"
    shown = ", ".join([first] + ["(2, B, 8)"] * (2 if lstm else 1))
    assert re.search(r"rnn \((LSTM|GRU)\)\s+" + re.escape(shown) + r"\s", text) and "0, 8)" not in text
    keras = render_summary(s, rich=False, layout="keras")
    # Keras's LSTM(8, return_sequences=True) shows (None, 16, 8): batch first, without the states
    assert re.search(r"rnn \((LSTM|GRU)\)\s+\(None, 16, 8\)\s+\d", keras)
    assert "final states" in keras and "(2, None, 8)" in keras and "0, 8)" not in keras


class _Forecaster(nn.Module):
    """A researcher's stacked LSTM on (steps, features) windows, as the workshop's stock forecaster."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 32, num_layers=2, batch_first=True)
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def test_a_sequence_model_is_summarised_on_its_steps_and_features():
    model = _Forecaster()
    s = summary(model, (30, 3))
    assert s.input_shape == (30, 3) and s.output_shape == (5,)
    assert [(r.name, r.output_shape[0] if r.name == "lstm" else r.output_shape) for r in s.rows] == \
        [("lstm", (30, 32)), ("head", (5,))]
    assert s.total_params == count_parameters(model) == 4 * (3 * 32 + 32 * 32 + 2 * 32) + 4 * (2 * 32 * 32 + 2 * 32) + 165
    text = render_summary(s, rich=False)
    assert 'Model: "_Forecaster"  input (B, 30, 3)' in text and "(batch, channels, height, width)" not in text
    assert re.search(r"lstm \(LSTM\)\s+\(None, 30, 32\)", render_summary(s, rich=False, layout="keras"))
    for shape in ((1, 2, 3, 4, 5), (30, 0), "30x3", (30, 3.5)):
        with pytest.raises(ParameterError, match=r"^input_shape=.*expected one input's shape without the batch"):
            summary(model, shape)


def test_buffers_count_only_what_the_weights_file_saves(tmp_path):
    from neuralab.training.checkpoint import load_tensors, save_weights

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten())
    model[1].register_buffer("scratch", torch.zeros(1000), persistent=False)  # recomputed, never saved
    s = summary(model, (1, 8, 8))
    save_weights(tmp_path / "model.safetensors", model)
    saved, _ = load_tensors(tmp_path / "model.safetensors")
    assert s.buffers == sum(t.numel() for t in saved.values()) - s.total_params == 2 * 4 + 1
    assert s.size_bytes == sum(t.numel() * t.element_size() for t in saved.values())
    assert "Buffers (e.g. BatchNorm running mean/var, saved but not trained): 9" in render_summary(s, rich=False)


class _Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.mid, self.enc = nn.Linear(48, 32), nn.Linear(32, 32), nn.Linear(32, 32)
        self.enc.weight = self.mid.weight
        self.out = nn.Linear(32, 10)

    def forward(self, x):
        return self.out(self.enc(self.mid(self.embed(x.flatten(1)))))


def test_tied_weights_count_once_and_the_row_says_so():
    model = _Tied()
    s = summary(model, (3, 4, 4))
    total = sum(p.numel() for p in model.parameters())
    assert total == 1568 + 1056 + 32 + 330
    assert sum(r.params for r in s.rows) == s.total_params == total
    assert sum(r.trainable for r in s.rows) == s.trainable_params == total
    enc = next(r for r in s.rows if r.name == "enc")
    assert (enc.params, enc.shared) == (32, [("weight", "mid", 1024)])
    assert next(r for r in s.rows if r.name == "mid").params == 1056
    text = render_summary(s, rich=False)
    assert re.search(r"enc \(Linear\)\s+\(B, 32\)\s+32  weight shared with mid, counted there \(1,024\)", text)
    assert "Tied parameters count once" in text
    assert sum(r.keras_params for r in s.rows) == s.keras_params == total
    keras = render_summary(s, rich=False, layout="keras")
    assert f"Total params: {total:,}" in keras and "enc (Linear) shares mid's weight (1,024 parameters)" in keras


def test_a_summary_displays_as_its_table_in_a_repl_and_a_notebook():
    from IPython.lib.pretty import pretty

    s = summary(build_model("lenet5", (1, 32, 32), 10), (1, 32, 32), name="lenet5")
    table = render_summary(s, rich=False)
    assert str(s) == table and repr(s) == pretty(s) == table.rstrip("\n")  # what `s` as a cell's last line shows
    assert s.rows[0].name == "features.0"  # the data stays as it was


def test_a_model_that_flattens_by_its_batch_size_is_summarised():
    """x.view(x.size(0), -1), PyTorch's most common flatten, cannot infer -1 on an empty batch."""

    class ViewNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(4 * 14 * 14, 3)

        def forward(self, x):
            x = self.conv(x)
            return self.fc(x.view(x.size(0), -1))

    s = summary(ViewNet(), (1, 16, 16))
    assert [(r.name, r.output_shape) for r in s.rows] == [("conv", (4, 14, 14)), ("fc", (3,))]
    assert s.total_params == 4 * 9 + 4 + 4 * 14 * 14 * 3 + 3
    with pytest.raises(NeuralabError, match=r"fails at fc \(Linear\): mat1 and mat2"):
        summary(ViewNet(), (1, 20, 20))


def test_what_is_no_module_or_no_shape_is_named():
    from neuralab.errors import ParameterError

    with pytest.raises(ParameterError, match="give a torch.nn.Module") as e:
        summary(object(), (1, 8, 8))  # a Keras model, say: no PyTorch layers to hook
    assert e.value.parameter == "model"
    with pytest.raises(ParameterError, match="expected one input.s shape without the batch") as e:
        summary(nn.Linear(4, 2), 16)
    assert e.value.parameter == "input_shape"


def test_a_lone_layer_is_its_own_row_so_the_rows_add_up_to_the_total():
    """summary(nn.Conv2d(1, 4, 3), ...) had no rows under "Total params: 40" (docs/models.md:
    one LayerRow per layer, the rows adding up to the total)."""
    for layer, shape in ((nn.Conv2d(1, 4, 3), (1, 8, 8)), (nn.LSTM(16, 8, num_layers=2, batch_first=True), (16, 16))):
        s = summary(layer, shape)
        assert [r.kind for r in s.rows] == [type(layer).__name__]
        assert sum(r.params for r in s.rows) == s.total_params == sum(p.numel() for p in layer.parameters())
    assert summary(nn.Conv2d(1, 4, 3), (1, 8, 8)).rows[0].formula == "floor((8 - 3 + 2*0) / 1) + 1 = 6"


def test_grouped_convolutions_are_named_with_their_count():
    """AlexNet (2012)'s towers: 307,456 parameters where the formula the CLI teaches gives 614,656
    for 5x5, 96 -> 256; the table said nothing of groups."""
    model = build_model("alexnet2012", (3, 227, 227), 1000)
    s = summary(model, (3, 227, 227))
    assert s.grouped == [("features.4", 2), ("features.10", 2), ("features.12", 2)]
    conv = model.features[4]
    k, c_in, c_out = conv.kernel_size[0], conv.in_channels, conv.out_channels
    assert count_parameters(conv) == k * k * (c_in // conv.groups) * c_out + c_out == 307_456
    text = render_summary(s, rich=False)
    assert "K*K*(C_in/groups)*C_out + C_out parameters: features.4 (groups=2), features.10 (groups=2)" in text
    assert "Grouped" not in render_summary(summary(build_model("lenet5", (1, 28, 28), 10), (1, 28, 28)), rich=False)
