"""SimpleRNN and LSTM cells by hand, unrolled over a sequence, with backpropagation through time.

Sequences are batch-first like Keras' (samples, timesteps, features): x (N, T, D), hidden
states (N, T, H). Weights follow PyTorch: W_ih (G*H, D), W_hh (G*H, H) and one bias b (G*H,)
(PyTorch's b_ih + b_hh), with G = 1 for the RNN and G = 4 gates for the LSTM in PyTorch's
and Keras' order: input, forget, cell candidate, output.
"""

from __future__ import annotations

import numpy as np

from neuralab.errors import NeuralabError
from neuralab.mechanics.dense import sigmoid
from neuralab.mechanics.shapes import as_array, check_size


def _check(x, h0, w_ih, w_hh, b, gates: int, c0=None, kept: int = 2, step: bool = False):
    """The arrays of an unrolled layer as NumPy arrays whose shapes fit together; refuses, before
    the loop, states for backpropagation (``kept`` (N, T, H) arrays) larger than MAX_BYTES.
    ``step``: the arrays of one step, x_t (N, D), h_prev and c_prev."""
    x_name, h_name, c_name = ("x_t", "h_prev", "c_prev") if step else ("x", "h0", "c0")
    x = as_array(x, x_name, "(N, D)" if step else "(N, T, D)", 2 if step else 3)
    w_hh = as_array(w_hh, "w_hh", "(G*H, H)" if gates > 1 else "(H, H)", 2)
    n, t, d = (x.shape[0], 1, x.shape[1]) if step else x.shape
    h = w_hh.shape[1]
    if t == 0:
        raise NeuralabError(f"`x` of shape {x.shape} has no time steps: give (N, T, D) with T at least 1")
    g = f"{gates}*H" if gates > 1 else "H"
    why = f"for `{x_name}` of shape {x.shape} and H = {h} (the width of `w_hh`)" + (
        f"; the {gates} gates input, forget, candidate, output are stacked along axis 0" if gates > 1 else "")
    arrays = {"w_ih": (w_ih, (gates * h, d), f"({g}, D)"), "w_hh": (w_hh, (gates * h, h), f"({g}, H)"),
              "b": (b, (gates * h,), f"({g},)"), h_name: (h0, (n, h), "(N, H)")}
    if c0 is not None or gates > 1:
        arrays[c_name] = (c0, (n, h), "(N, H)")
    checked = _fit(arrays, why)
    check_size((n, t, kept * h), np.result_type(x, *checked), "the states kept for backpropagation through time",
               "give fewer sequences or steps in `x`, or fewer hidden units")
    return x, *checked


def _check_dhs(dhs, caches, w_hh):
    """dL/dh_t as a float array of the forward pass's (N, T, H): whole numbers would make
    every gradient array an integer one, truncating each step's contribution."""
    n, h = caches[0][1].shape[0], w_hh.shape[1]  # h_prev of the first step is h0 (N, H)
    dhs = as_array(dhs, "dhs", "(N, T, H)", 3)
    if dhs.shape != (n, len(caches), h):
        raise NeuralabError(f"`dhs` of shape {dhs.shape}: give dL/dh_t for every step, the forward pass's "
                            f"shape {(n, len(caches), h)} (zeros where a step's output is unused)")
    return dhs.astype(np.result_type(dhs, w_hh, np.float16), copy=False)


def _fit(arrays: dict, why: str) -> list[np.ndarray]:
    """{name: (value, shape, layout)} -> the values as arrays of those shapes; ``why`` says
    where the shapes come from."""
    checked = []
    for name, (value, shape, layout) in arrays.items():
        value = as_array(value, name, layout, len(shape))
        if value.shape != shape:
            raise NeuralabError(f"`{name}` of shape {value.shape}: expected {layout} = {shape} {why}")
        checked.append(value)
    return checked


def _check_step_grads(cache, w_ih, w_hh, gates: int, **grads):
    """The weights and the gradients (dh, dc) handed to a step's backward, as arrays of the
    shapes its forward step had: the cache holds x_t (N, D) and h_prev (N, H)."""
    (n, d), (_, h) = cache[0].shape, cache[1].shape
    g = f"{gates}*H" if gates > 1 else "H"
    wanted = {"w_ih": (w_ih, (gates * h, d), f"({g}, D)"), "w_hh": (w_hh, (gates * h, h), f"({g}, H)")}
    wanted.update({name: (value, (n, h), "(N, H)") for name, value in grads.items()})
    return _fit(wanted, f"for the forward step's x_t of shape {(n, d)} and H = {h}")


def _zero_grads(w_ih, w_hh, dtype):
    """The sums of the weights' gradients over the steps, in the gradients' float ``dtype``: sums
    shaped like whole-number weights would be whole numbers too, and refuse the first step's."""
    return [np.zeros(w_ih.shape, dtype), np.zeros(w_hh.shape, dtype), np.zeros(w_ih.shape[0], dtype)]


def _accumulate(totals, parts):
    """The same weights act at every step, so their gradient is the sum over the steps."""
    for total, part in zip(totals, parts):
        total += part


def rnn_step_forward(x_t, h_prev, w_ih, w_hh, b):
    """h_t = tanh(x_t W_ih^T + h_{t-1} W_hh^T + b): the loop of the slide "RNNs have loops".
    x_t (N, D), h_prev (N, H); returns (h_t, cache)."""
    x_t, w_ih, w_hh, b, h_prev = _check(x_t, h_prev, w_ih, w_hh, b, gates=1, step=True)
    return _rnn_step(x_t, h_prev, w_ih, w_hh, b)


def _rnn_step(x_t, h_prev, w_ih, w_hh, b):
    h = np.tanh(x_t @ w_ih.T + h_prev @ w_hh.T + b)
    return h, (x_t, h_prev, h)


def rnn_step_backward(dh, cache, w_ih, w_hh):
    """One step back: returns (dx_t, dh_prev, dW_ih, dW_hh, db) given dL/dh_t."""
    w_ih, w_hh, dh = _check_step_grads(cache, w_ih, w_hh, 1, dh=dh)
    return _rnn_step_back(dh, cache, w_ih, w_hh)


def _rnn_step_back(dh, cache, w_ih, w_hh):
    x_t, h_prev, h = cache
    dz = dh * (1 - h**2)  # through tanh
    return dz @ w_ih, dz @ w_hh, dz.T @ x_t, dz.T @ h_prev, dz.sum(axis=0)


def rnn_forward(x, h0, w_ih, w_hh, b):
    """Unroll over T steps: x (N, T, D), h0 (N, H) -> hs (N, T, H); returns (hs, cache)."""
    x, w_ih, w_hh, b, h0 = _check(x, h0, w_ih, w_hh, b, gates=1)
    hs, caches, h = [], [], h0
    for t in range(x.shape[1]):
        h, cache = _rnn_step(x[:, t], h, w_ih, w_hh, b)
        hs.append(h)
        caches.append(cache)
    return np.stack(hs, axis=1), (caches, w_ih, w_hh)


def rnn_backward(dhs, cache):
    """Backpropagation through time.  dhs (N, T, H) is dL/dh_t for every step (zeros where a
    step's output is unused, e.g. all but the last for many-to-one).

    Walking back from t = T-1, the gradient reaching h_t is dhs[:, t] plus what flows back from
    step t+1 through W_hh: repeated products with W_hh and tanh' are why gradients vanish or explode.
    Returns (dx, dh0, dW_ih, dW_hh, db).
    """
    caches, w_ih, w_hh = cache
    dhs = _check_dhs(dhs, caches, w_hh)
    dx = np.zeros(dhs.shape[:2] + (w_ih.shape[1],), dtype=dhs.dtype)
    weights = _zero_grads(w_ih, w_hh, dhs.dtype)  # dW_ih, dW_hh, db summed over the steps
    dh_next = np.zeros_like(dhs[:, 0])
    for t in reversed(range(dhs.shape[1])):
        dx[:, t], dh_next, *step = _rnn_step_back(dhs[:, t] + dh_next, caches[t], w_ih, w_hh)
        _accumulate(weights, step)
    return dx, dh_next, *weights


def lstm_step_forward(x_t, h_prev, c_prev, w_ih, w_hh, b):
    """One LSTM step (Hochreiter & Schmidhuber, 1997):

        i, f, g, o = split(x_t W_ih^T + h_{t-1} W_hh^T + b)
        i = sigma(i), f = sigma(f), g = tanh(g), o = sigma(o)   input, forget, candidate, output
        c_t = f * c_{t-1} + i * g                               the cell state: the long memory
        h_t = o * tanh(c_t)
    x_t (N, D), h_prev and c_prev (N, H); returns (h_t, c_t, cache).
    """
    x_t, w_ih, w_hh, b, h_prev, c_prev = _check(x_t, h_prev, w_ih, w_hh, b, gates=4, c0=c_prev, step=True)
    return _lstm_step(x_t, h_prev, c_prev, w_ih, w_hh, b)


def _lstm_step(x_t, h_prev, c_prev, w_ih, w_hh, b):
    i, f, g, o = np.split(x_t @ w_ih.T + h_prev @ w_hh.T + b, 4, axis=1)
    i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    return o * tanh_c, c, (x_t, h_prev, c_prev, i, f, g, o, tanh_c)


def lstm_step_backward(dh, dc, cache, w_ih, w_hh):
    """One step back given dL/dh_t and dL/dc_t: returns (dx_t, dh_prev, dc_prev, dW_ih, dW_hh, db).

    dc_t gains dh_t * o * (1 - tanh(c_t)^2); then dc_{t-1} = dc_t * f: the forget gate, not a
    weight matrix, carries the long-range gradient, which is what keeps it from vanishing.
    """
    w_ih, w_hh, dh, dc = _check_step_grads(cache, w_ih, w_hh, 4, dh=dh, dc=dc)
    return _lstm_step_back(dh, dc, cache, w_ih, w_hh)


def _lstm_step_back(dh, dc, cache, w_ih, w_hh):
    x_t, h_prev, c_prev, i, f, g, o, tanh_c = cache
    dc = dc + dh * o * (1 - tanh_c**2)
    dz = np.concatenate(
        [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g**2), dh * tanh_c * o * (1 - o)], axis=1
    )  # (N, 4H): d pre-activations of i, f, g, o
    return dz @ w_ih, dz @ w_hh, dc * f, dz.T @ x_t, dz.T @ h_prev, dz.sum(axis=0)


def lstm_forward(x, h0, c0, w_ih, w_hh, b):
    """Unroll over T steps: x (N, T, D), h0 and c0 (N, H) -> (hs, cs, cache), hs and cs (N, T, H)."""
    # kept per step: h, c, the four gates and tanh(c), plus the stacked hs and cs
    x, w_ih, w_hh, b, h0, c0 = _check(x, h0, w_ih, w_hh, b, gates=4, c0=c0, kept=9)
    hs, cs, caches, h, c = [], [], [], h0, c0
    for t in range(x.shape[1]):
        h, c, cache = _lstm_step(x[:, t], h, c, w_ih, w_hh, b)
        hs.append(h)
        cs.append(c)
        caches.append(cache)
    return np.stack(hs, axis=1), np.stack(cs, axis=1), (caches, w_ih, w_hh)


def lstm_backward(dhs, cache, dc_last=None):
    """Backpropagation through time for ``lstm_forward``.  dhs (N, T, H) = dL/dh_t for each step;
    dc_last (N, H), optional, = dL/dc_T when the final cell state is used.
    Returns (dx, dh0, dc0, dW_ih, dW_hh, db).
    """
    caches, w_ih, w_hh = cache
    dhs = _check_dhs(dhs, caches, w_hh)
    dx = np.zeros(dhs.shape[:2] + (w_ih.shape[1],), dtype=dhs.dtype)
    weights = _zero_grads(w_ih, w_hh, dhs.dtype)
    if dc_last is not None:
        dc_last = as_array(dc_last, "dc_last", "(N, H)", 2)
        if dc_last.shape != dhs[:, 0].shape:
            raise NeuralabError(f"`dc_last` of shape {dc_last.shape}: give dL/dc_T, shape {dhs[:, 0].shape}")
    dh_next = np.zeros_like(dhs[:, 0])
    dc_next = np.zeros_like(dhs[:, 0]) if dc_last is None else dc_last
    for t in reversed(range(dhs.shape[1])):
        dx[:, t], dh_next, dc_next, *step = _lstm_step_back(dhs[:, t] + dh_next, dc_next, caches[t], w_ih, w_hh)
        _accumulate(weights, step)
    return dx, dh_next, dc_next, *weights
