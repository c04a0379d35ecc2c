"""Recurrent forecasters, the four RNN topologies and the gradient measurement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from neuralab.data.series import load_series
from neuralab.forecasting import models
from neuralab.errors import NeuralabError
from neuralab.forecasting.gradients import GradientConfig, input_gradient_norms, measure, norm_table, plot
from neuralab.forecasting.models import (ForecastNetwork, ModelConfig, NetworkForecaster, build_network,
                                         series_train_config, summary, validation_gain)
from neuralab.forecasting.topologies import (ManyToMany, ManyToOne, OneToMany, OneToOne, TOPOLOGIES, keras_init,
                                             shapes, train_toy)
from neuralab.forecasting.windows import WindowConfig, prepare
from neuralab.models.summary import keras_count, keras_differences


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def test_stacked_lstm_matches_the_workshop_model():
    net = build_network(ModelConfig(recipe="plain"), inputs=1, horizon=1, lookback=60)
    assert [type(l).__name__ for l in net.features] == ["LSTM", "LSTM"]
    assert [l.hidden_size for l in net.features] == [128, 64]
    # Keras counts one bias per gate (66,560 + 49,408 + 65 = 116,033); PyTorch keeps two.
    assert sum(p.numel() for p in net.parameters()) == 116_033 + 4 * 128 + 4 * 64
    assert net(torch.zeros(5, 60, 1)).shape == (5, 1)
    text = summary(net, 60)
    assert "LSTM(128)" in text and "(batch, 60, 128)" in text and "116,801" in text
    # under Keras's layer names, the count Keras's own summary of the slide's code gives
    assert "Keras counts 116,033, PyTorch 116,801: its LSTM keeps two biases per gate where Keras keeps one" in text
    # a SimpleRNN has no gates: the sentence names what the network holds, as the Keras table's does
    rnn = build_network(ModelConfig("rnn", recipe="plain"), 1, 1, 60)
    said = summary(rnn, 60).splitlines()[-1]
    assert said == (f"Keras counts {keras_count(rnn)[0]:,}, PyTorch {sum(p.numel() for p in rnn.parameters()):,}: "
                    + "; ".join(keras_differences(["RNN"])))
    assert "its SimpleRNN keeps two biases where Keras keeps one" in said and "LSTM" not in said and "gate" not in said
    assert "Keras counts" not in summary(build_network(ModelConfig("gru", recipe="plain"), 1, 1, 60), 60)
    # the default recipe adds only the linear path: twice 60 weights and a bias per horizon step
    residual = build_network(ModelConfig(), inputs=1, horizon=1, lookback=60)
    assert sum(p.numel() for p in residual.parameters()) == 116_801 + 2 * 61 and "linear path" in summary(residual, 60)


def test_residual_network_starts_as_its_linear_path_and_gathers_windows_by_start():
    torch.manual_seed(0)
    net = build_network(ModelConfig("lstm", hidden=[8]), inputs=2, horizon=3, lookback=10).eval()
    with torch.no_grad():
        net.highway.weight.normal_()
        net.highway.bias.normal_()
    x = torch.randn(4, 10, 2)
    z, anchor, scale = net.normalise(x)
    np.testing.assert_allclose(anchor, x[:, -1, 0])                       # a level: its last value
    np.testing.assert_allclose(scale, x[:, :, 0].diff(dim=1).pow(2).mean(1).add(1e-6).sqrt(), rtol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net.linear(x))                 # the recurrent head starts at zero
        flat = net(torch.zeros(2, 10, 2))                                  # a flat window: persistence, up to
        torch.testing.assert_close(flat, torch.zeros(2, 3), atol=5e-3, rtol=0)  # the floor of its scale
        source = torch.randn(50, 2)
        net.attach(source.numpy())
        starts = torch.tensor([0, 7, 40])
        windows = torch.stack([source[s:s + 10] for s in starts.tolist()])
        torch.testing.assert_close(net(starts), net(windows))              # gathered = given
    changes = build_network(ModelConfig("gru", hidden=[4]), inputs=1, horizon=2, lookback=5, level=False, zero=-0.5)
    _, anchor, _ = changes.normalise(torch.randn(3, 5, 1))
    assert (anchor == -0.5).all()                                          # a change: "no change" is the anchor


@pytest.mark.parametrize("arch, cell", [("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU), ("rnn", torch.nn.RNN)])
def test_many_to_one_and_many_to_many_shapes(arch, cell):
    for horizon in (1, 7):
        net = build_network(ModelConfig(arch, hidden=[8, 4]), inputs=3, horizon=horizon, lookback=10)
        assert all(type(l) is cell for l in net.features)
        assert net(torch.randn(2, 10, 3)).shape == (2, horizon)


def test_model_config_is_validated():
    with pytest.raises(NeuralabError, match="architecture='transformer'"):
        ModelConfig("transformer").check()
    with pytest.raises(NeuralabError, match="dropout=1.5"):
        ModelConfig(dropout=1.5).check()
    with pytest.raises(NeuralabError, match="recipe='fancy'"):
        ModelConfig(recipe="fancy").check()
    # what a notebook writes first: one size, not a list of them; a dropout as text
    for config, named in ((ModelConfig(hidden=16), "hidden=16: give a list"), (ModelConfig(hidden="64"), "hidden='64'"),
                          (ModelConfig(dropout="0.2"), "dropout='0.2': must be a number")):
        with pytest.raises(NeuralabError, match=named):
            config.check()
    ModelConfig(hidden=(32, 16)).check()  # a tuple is a list of sizes too


def test_keras_init_sets_the_forget_bias_and_orthogonal_recurrence():
    net = keras_init(ForecastNetwork("lstm", 2, [6], 1, lookback=5))
    lstm = net.features[0]
    assert (lstm.bias_ih_l0[6:12] == 1).all() and (lstm.bias_hh_l0 == 0).all()
    w = lstm.weight_hh_l0[:6].detach()
    torch.testing.assert_close(w @ w.T, torch.eye(6), atol=1e-5, rtol=0)


def test_network_forecaster_trains_and_predicts_in_original_units():
    t = np.arange(300)
    frame = pd.DataFrame({"y": 20 + 5 * np.sin(2 * np.pi * t / 25)}, index=pd.date_range("2020-01-01", periods=300))
    p = prepare(load_series(frame, "y"), WindowConfig(lookback=25, horizon=2))
    net = NetworkForecaster(ModelConfig("gru", hidden=[16], dropout=0.0, recipe="plain"),
                            series_train_config(epochs=6, batch_size=16, lr=1e-2, device="cpu", patience=0))
    pred = net.fit(p.train, p.val).predict(p.test)
    assert pred.shape == (len(p.test), 2) and net.describe().startswith("gru (GRU 16")
    persistence = np.abs(p.test.future - p.test.past[:, -1:]).mean()
    assert net.score(p.test) < persistence  # learned the sine; errors in the series' units
    assert len(net.history) == 6 and "val_loss" in net.history[0]


def test_residual_recipe_never_ends_worse_on_validation_than_its_linear_start():
    rng = np.random.default_rng(0)
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 1500)))  # a random walk: nothing for the LSTM to add
    frame = pd.DataFrame({"close": prices}, index=pd.bdate_range("2010-01-01", periods=1500))
    p = prepare(load_series(frame, "close"), WindowConfig(lookback=20))
    net = NetworkForecaster(ModelConfig("lstm", hidden=[8]),
                            series_train_config(epochs=3, batch_size=32, lr=3e-2, device="cpu", patience=0))
    start = NetworkForecaster(ModelConfig("lstm", hidden=[8]), series_train_config(device="cpu"))
    start_val = start.linear_errors(p.train, [p.val])[0]
    net.fit(p.train, p.val)
    assert net.start_ == start.start_ and net.start_ in net.describe()
    # the start is the best of its candidates on validation: never worse there than persistence
    persistence_val = np.abs(p.val.future - p.val.past[:, -1:]).mean()
    assert start_val <= 1.01 * persistence_val
    assert net.score(p.val) <= start_val * 1.02  # at most the start's error (MSE kept, MAE close)
    # a random walk gives training nothing to find: a validation gain within noise never replaces the start
    assert net.kept_start and "by more than noise" in net.describe()
    assert net.gain["gain"] <= net.gain["noise"] * net.gain["standard_error"] and net.gain["windows"] == len(p.val)
    np.testing.assert_allclose(net.score(p.val), start_val, rtol=1e-5)
    persistence = np.abs(p.test.future - p.test.past[:, -1:]).mean()
    assert net.score(p.test) < 1.05 * persistence  # starts from, and stays near, persistence on prices


def test_a_network_that_finds_what_a_line_cannot_replaces_its_linear_start():
    # The logistic map x' = 3.9 x (1 - x): chaotic, nearly uncorrelated to a line, a parabola to a network.
    x = [0.3]
    for _ in range(1199):
        x.append(3.9 * x[-1] * (1 - x[-1]))
    frame = pd.DataFrame({"x": np.array(x) + 1.0}, index=pd.date_range("2000-01-01", periods=1200))
    p = prepare(load_series(frame, "x"), WindowConfig(lookback=4))
    net = NetworkForecaster(ModelConfig("lstm", hidden=[32], dropout=0.0),
                            series_train_config(epochs=15, batch_size=32, device="cpu", patience=0))
    start_val = NetworkForecaster(ModelConfig("lstm", hidden=[32]), series_train_config(device="cpu")) \
        .linear_errors(p.train, [p.val])[0]
    net.fit(p.train, p.val)
    assert not net.kept_start and "kept" not in net.describe()
    assert net.gain["gain"] > net.gain["noise"] * net.gain["standard_error"] > 0
    assert net.score(p.val) < 0.7 * start_val and net.score(p.test) < 0.7 * start_val


def test_a_gain_over_too_few_validation_windows_never_replaces_the_linear_start(monkeypatch):
    """Three validation windows whose losses training lowered by 0.05 to 0.12: beyond 2 standard
    errors, which replaced the start, where Student's t for 3 windows (4.3) and the verdict's
    minimum of 10 windows judge nothing."""
    x = [0.3]
    for _ in range(299):
        x.append(3.9 * x[-1] * (1 - x[-1]))
    frame = pd.DataFrame({"x": np.array(x) + 1.0}, index=pd.date_range("2000-01-01", periods=300))
    p = prepare(load_series(frame, "x"), WindowConfig(lookback=4))
    three = models.validation_gain(np.array([1.0, 2.0, 1.5]), np.array([0.9, 1.95, 1.38]))
    assert three["gain"] > 2 * three["standard_error"] > 0  # "beats" by a bare 2 SE
    monkeypatch.setattr(models, "validation_gain", lambda start, trained: three)  # the span's gain, as if of 3
    net = NetworkForecaster(ModelConfig("lstm", hidden=[8]), series_train_config(epochs=1, device="cpu"))
    net.fit(p.train, p.val)
    assert net.kept_start and "over 3 validation windows, too few to judge (at least 10)" in net.describe()


def test_validation_gain_is_the_paired_mean_and_its_standard_error():
    start, trained = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 2.0, 2.5, 4.5])  # differences .5, 0, .5, -.5
    g = validation_gain(start, trained)
    assert g["gain"] == 0.125 and g["windows"] == 4
    np.testing.assert_allclose(g["standard_error"], np.sqrt(((0.375 ** 2) * 2 + 0.125 ** 2 + 0.625 ** 2) / 3 / 4))
    np.testing.assert_allclose(g["percent"], 100 * 0.125 / 2.5)
    assert validation_gain(start[:1], trained[:1])["standard_error"] == float("inf")  # one window proves nothing


def test_four_topologies_have_the_documented_shapes():
    rows = {r["name"]: r for r in shapes(batch=4)}
    assert rows["one-to-one"]["input"] == (4, 3) and rows["one-to-one"]["output"] == (4, 2)
    assert rows["one-to-many"]["input"] == (4, 3) and rows["one-to-many"]["output"] == (4, 12, 2)
    assert rows["many-to-one"]["input"] == (4, 12, 3) and rows["many-to-one"]["output"] == (4, 2)
    assert rows["many-to-many"]["input"] == (4, 12, 3) and rows["many-to-many"]["output"] == (4, 5, 2)
    assert all(r["output"] == r["target"] for r in rows.values())
    # the templates take any sizes; many-to-many aligned keeps the input length
    assert OneToOne(5, 1)(torch.zeros(2, 5)).shape == (2, 1)
    assert OneToMany(5, 1, steps=9, cell="gru")(torch.zeros(2, 5)).shape == (2, 9, 1)
    assert ManyToOne(5, 4, cell="rnn")(torch.zeros(2, 7, 5)).shape == (2, 4)
    assert ManyToMany(5, 3)(torch.zeros(2, 7, 5)).shape == (2, 7, 3)
    assert ManyToMany(5, 3, out_steps=4)(torch.zeros(2, 7, 5)).shape == (2, 4, 3)


@pytest.mark.parametrize("name", list(TOPOLOGIES))
def test_each_topology_template_learns_its_toy_task(name):
    before, after = train_toy(name, steps=25)
    assert after < before


def test_toy_training_computes_on_one_thread_whatever_the_callers_count(monkeypatch):
    """The figures follow the thread count (seed 0's many-to-one: 0.017 on one, 0.24 on two), so
    `neuralab rnn topologies --train` and the tutorial, which differ in it, must not pass theirs on."""
    import dataclasses

    seen = []

    class Recording(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            seen.append(torch.get_num_threads())
            return self.model(x)

    topology = TOPOLOGIES["many-to-one"]
    monkeypatch.setitem(TOPOLOGIES, "many-to-one",
                        dataclasses.replace(topology, build=lambda: Recording(topology.build())))
    torch.set_num_threads(2)
    train_toy("many-to-one", steps=2)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2  # the caller's count, restored


def test_gradient_norms_vanish_faster_in_a_simple_rnn():
    config = GradientConfig(steps=40, hidden=16, batch=16, probe=32, train_steps=3)
    result = measure(config)
    assert [(r["model"], r["clip"]) for r in result["runs"]] == [("SimpleRNN", None), ("SimpleRNN", 1.0),
                                                                 ("LSTM", None), ("LSTM", 1.0)]
    rnn, lstm = result["runs"][0]["at_init"], result["runs"][2]["at_init"]
    assert len(rnn) == 40
    # what reaches the oldest step, relative to the newest: far less through the SimpleRNN
    assert rnn[0] / rnn[-1] < lstm[0] / lstm[-1]
    assert result["runs"][0]["at_init"] == result["runs"][1]["at_init"]  # same start with and without clipping
    rows = norm_table(result)
    assert len(rows) == 8 and "39 back" in rows[0]
    fig = plot(result)
    assert len(fig.axes) == 4


def test_input_gradient_norms_see_only_the_steps_that_matter():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(5, 1))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[0.0, 0.0, 2.0, 0.0, 0.0]]))
        model[1].bias.zero_()
    x = torch.zeros(3, 5, 1)
    g = input_gradient_norms(model, x, torch.ones(3, 1))  # dL/dx = 2 (out - y) w = -4 at step 2
    np.testing.assert_allclose(g, [0, 0, 4, 0, 0], atol=1e-6)
    with pytest.raises(NeuralabError, match="clip=0"):
        GradientConfig(clip=0).check()


@pytest.mark.parametrize("config, inputs, horizon, lookback", [
    (ModelConfig(), 1, 1, 60), (ModelConfig("gru", hidden=[8, 4], init="keras"), 3, 5, 10),
    (ModelConfig("rnn", hidden=[6], recipe="plain"), 2, 2, 7)])
def test_parameters_are_counted_from_the_network_itself_and_memory_is_checked_when_asked(config, inputs, horizon,
                                                                                        lookback, monkeypatch):
    from neuralab.data import tables
    from neuralab.errors import ParameterError
    from neuralab.forecasting.models import parameter_count

    built = build_network(config, inputs, horizon, lookback)
    assert parameter_count(config, inputs, horizon, lookback) == sum(p.numel() for p in built.parameters())
    monkeypatch.setattr(tables, "available_memory", lambda: 1000)
    with torch.device("meta"), pytest.raises(ParameterError, match="GiB to train"):
        build_network(config, inputs, horizon, lookback)  # the meta device is no hidden switch: the caller says
    with torch.device("meta"):
        assert build_network(config, inputs, horizon, lookback, check_memory=False).head.weight.is_meta
