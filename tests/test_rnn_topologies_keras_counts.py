"""`neuralab rnn topologies` says what Keras, the workshop's library, counts for the templates:
PyTorch's LSTM keeps two bias vectors per gate, so a student's model.summary() gives fewer."""

from __future__ import annotations

import re

from torch import nn

from neuralab.cli import main
from neuralab.forecasting.topologies import TOPOLOGIES


def keras_parameters(model: nn.Module) -> int:
    """The same layers in Keras: LSTM(units) on d inputs 4 x units x (d + units + 1), Dense(out) out x (in + 1)."""
    total = 0
    for m in model.modules():
        if isinstance(m, nn.LSTM):
            total += sum(4 * m.hidden_size * ((m.input_size if layer == 0 else m.hidden_size) + m.hidden_size + 1)
                         for layer in range(m.num_layers))
        elif isinstance(m, nn.Linear):
            total += m.out_features * (m.in_features + 1)
    return total


def test_topologies_name_the_keras_count_of_every_template_with_an_lstm(capsys):
    assert main(["rnn", "topologies"]) == 0
    out = capsys.readouterr().out
    note = out.strip().splitlines()[-1]
    assert note.startswith("parameters as PyTorch counts them: its LSTM keeps two biases per gate where Keras keeps one")
    said = {name: int(n.replace(",", "")) for n, names in re.findall(r"([\d,]+) for ([a-z\- ]+?)(?:,|$)", note)
            for name in names.split(" and ")}
    models = {name: t.build() for name, t in TOPOLOGIES.items()}
    with_lstm = {name for name, m in models.items() if any(isinstance(x, nn.LSTM) for x in m.modules())}
    assert set(said) == with_lstm and len(with_lstm) == 3
    assert said == {name: keras_parameters(models[name]) for name in with_lstm}
    for name in with_lstm:  # the table's own count stays PyTorch's
        pytorch = sum(p.numel() for p in models[name].parameters())
        assert re.search(rf"^{name} .*\s{pytorch:,}\s", out, re.M) and pytorch > said[name]
