"""Recurrent forecasters, the four RNN topologies and the gradient measurement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from neuralab.data.series import load_series
from neuralab.errors import NeuralabError
from neuralab.forecasting.gradients import GradientConfig, input_gradient_norms, measure, norm_table, plot
from neuralab.forecasting.models import (ModelConfig, NetworkForecaster, RecurrentForecaster, build_network,
                                         series_train_config, summary)
from neuralab.forecasting.topologies import (ManyToMany, ManyToOne, OneToMany, OneToOne, TOPOLOGIES, keras_init,
                                             shapes, train_toy)
from neuralab.forecasting.windows import WindowConfig, prepare
from neuralab.training.device import cpu_threads


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with cpu_threads(1):  # small recurrent models; far faster on a busy machine
        yield


def test_stacked_lstm_matches_the_workshop_model():
    net = build_network(ModelConfig(), inputs=1, horizon=1)
    assert [type(l).__name__ for l in net.features] == ["LSTM", "LSTM"]
    assert [l.hidden_size for l in net.features] == [128, 64]
    # Keras counts one bias per gate (66,560 + 49,408 + 65 = 116,033); PyTorch keeps two.
    assert sum(p.numel() for p in net.parameters()) == 116_033 + 4 * 128 + 4 * 64
    assert net(torch.zeros(5, 60, 1)).shape == (5, 1)
    text = summary(net, 60)
    assert "LSTM(128)" in text and "(batch, 60, 128)" in text and "116,801" in text


@pytest.mark.parametrize("arch, cell", [("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU), ("rnn", torch.nn.RNN)])
def test_many_to_one_and_many_to_many_shapes(arch, cell):
    for horizon in (1, 7):
        net = build_network(ModelConfig(arch, hidden=[8, 4]), inputs=3, horizon=horizon)
        assert all(type(l) is cell for l in net.features)
        assert net(torch.randn(2, 10, 3)).shape == (2, horizon)


def test_model_config_is_validated():
    with pytest.raises(NeuralabError, match="architecture='transformer'"):
        ModelConfig("transformer").check()
    with pytest.raises(NeuralabError, match="dropout=1.5"):
        ModelConfig(dropout=1.5).check()


def test_keras_init_sets_the_forget_bias_and_orthogonal_recurrence():
    net = keras_init(RecurrentForecaster("lstm", 2, [6], 1))
    lstm = net.features[0]
    assert (lstm.bias_ih_l0[6:12] == 1).all() and (lstm.bias_hh_l0 == 0).all()
    w = lstm.weight_hh_l0[:6].detach()
    torch.testing.assert_close(w @ w.T, torch.eye(6), atol=1e-5, rtol=0)


def test_network_forecaster_trains_and_predicts_in_original_units():
    t = np.arange(300)
    frame = pd.DataFrame({"y": 20 + 5 * np.sin(2 * np.pi * t / 25)}, index=pd.date_range("2020-01-01", periods=300))
    p = prepare(load_series(frame, "y"), WindowConfig(lookback=25, horizon=2))
    net = NetworkForecaster(ModelConfig("gru", hidden=[16], dropout=0.0),
                            series_train_config(epochs=6, batch_size=16, lr=1e-2, device="cpu", patience=0))
    pred = net.fit(p.train, p.val).predict(p.test)
    assert pred.shape == (len(p.test), 2) and net.describe().startswith("gru (GRU 16")
    persistence = np.abs(p.test.future - p.test.past[:, -1:]).mean()
    assert net.score(p.test) < persistence  # learned the sine; errors in the series' units
    assert len(net.history) == 6 and "val_loss" in net.history[0]


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
