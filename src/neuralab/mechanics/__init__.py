"""The workshop's arithmetic by hand, in NumPy only: the "from scratch" half of neuralab.

Layout is NCHW like PyTorch (batch, channels, height, width); sequences are (N, T, D).
Every layer is a pair of functions: ``*_forward(...) -> (out, cache)`` and
``*_backward(dout, cache) -> gradients``; the tests hold each one to PyTorch's autograd.

    conv      conv2d_forward/backward, correlate2d, pad, windows
    pooling   max_pool2d_*, avg_pool2d_*, pool2d
    dense     flatten, dense, relu/tanh/sigmoid, softmax, cross-entropy
    norm      batch_norm_*, dropout_*
    recurrent rnn_* and lstm_* (cells unrolled, backpropagation through time)
    shapes    output_hw, axis_size, conv_shape (the output-size formula, explained), same_size, same_pads
    kernels   KERNELS, get_kernel, parse_kernel, apply_kernel, closest_kernels
    gradcheck numeric_gradient, relative_error (finite differences to trust a backward pass)
    demo      the workshop's worked examples, step by step
    scratch_cnn  a small CNN from these pieces, trained on sklearn's digits
"""

from neuralab.mechanics import conv
from neuralab.mechanics.conv import conv2d_backward, conv2d_forward, correlate2d, pad, windows
from neuralab.mechanics.dense import (
    cross_entropy_backward,
    cross_entropy_forward,
    dense_backward,
    dense_forward,
    flatten_backward,
    flatten_forward,
    log_softmax,
    relu_backward,
    relu_forward,
    sigmoid,
    sigmoid_backward,
    sigmoid_forward,
    softmax,
    softmax_backward,
    softmax_forward,
    tanh_backward,
    tanh_forward,
)
from neuralab.mechanics.gradcheck import numeric_gradient, relative_error
from neuralab.mechanics.kernels import KERNELS, KernelMatch, apply_kernel, closest_kernels, get_kernel, parse_kernel
from neuralab.mechanics.norm import batch_norm_backward, batch_norm_forward, dropout_backward, dropout_forward
from neuralab.mechanics.pooling import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward, pool2d
from neuralab.mechanics.recurrent import (
    lstm_backward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
)
from neuralab.mechanics.shapes import (ConvShape, axis_size, conv_shape, output_hw, resolve_padding, same_pads,
                                       same_size)

__all__ = [n for n, v in dict(globals()).items() if not n.startswith("_") and not isinstance(v, type(conv))]
