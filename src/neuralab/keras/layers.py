"""The Keras layers neuralab converts: each reads its Keras config (checking every field it
uses and refusing the options it does not reproduce) and gives its output shape and its
weights' shapes, all in Keras's terms. spec.py strings them into a model.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from neuralab.errors import NeuralabError
from neuralab.mechanics.shapes import axis_size, same_size

MAX_SIZE = 2**31 - 1  # largest size of any dimension, and of any one weight tensor

Shape = tuple  # without the batch: (F,), (T, F) or (H, W, C); a None is a size known only at run time

# Keras activation name -> what it is; every one has a parity test against Keras.
ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax", "log_softmax", "elu", "selu", "softplus",
               "softsign", "swish", "silu", "gelu", "relu6", "leaky_relu", "mish", "hard_silu", "hard_swish",
               "exponential")
# Keras activation name -> why it is refused, and what to use
REFUSED_ACTIVATIONS = {
    "hard_sigmoid": "TF-Keras 2 and Keras 3 define it differently (clip(0.2x + 0.5, 0, 1), relu6(x + 3) / 6), "
                    "so a model's outputs depend on which Keras computes them; fit it again with 'sigmoid' "
                    "(hard_silu/hard_swish is x times hard_sigmoid, another function)",
}
REFUSED = {
    "Lambda": "it holds Python code, and neuralab never runs code from a model file",
    "TFOpLambda": "it holds a TensorFlow call, and neuralab never runs code from a model file",
    "Sequential": "nested models are not converted; rebuild it as one Sequential or functional model",
    "Functional": "nested models are not converted; rebuild it as one Sequential or functional model",
    "Model": "nested models are not converted; rebuild it as one Sequential or functional model",
    "Normalization": "its mean and variance are not converted; Rescaling(scale=1 / sqrt(variance), "
                     "offset=-mean / sqrt(variance)) computes the same and converts",
}

LAYERS: dict[str, Callable] = {}
ALIASES: dict[str, str] = {}  # Keras's other names for a layer (MaxPool2D) -> the name it saves under


def layer(name: str, *aliases: str):
    def register(fn):
        LAYERS[name] = fn
        for alias in aliases:
            LAYERS[alias], ALIASES[alias] = fn, name
        return fn
    return register


def supported_layers() -> list[str]:
    return sorted(n for n in LAYERS if n not in ALIASES)


class InputTooSmall(NeuralabError):
    """A conv or pooling window wider than its input along an axis: the model's input, whose
    size the model left open (None), is too small for that layer."""


class Args:
    """One layer's Keras config, read field by field: each value is checked, and the fields the
    computation uses are kept (``used``) under Keras's names, as the spec's ``args``."""

    def __init__(self, where: str, config: dict):
        self.where, self.config, self.used = where, config, {}

    def fail(self, message: str) -> NeuralabError:
        return NeuralabError(f"{self.where}: {message}")

    def value(self, key: str, default=None):
        return self.config.get(key, default)

    def keep(self, key: str, value):
        self.used[key] = value
        return value

    def int(self, key: str, default=None, minimum: int = 1) -> int:
        v = self.config.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= MAX_SIZE:
            fix = "; make the layer smaller" if isinstance(v, int) and not isinstance(v, bool) and v > MAX_SIZE else ""
            raise self.fail(f"{key}={v!r}: expected a whole number from {minimum} to {MAX_SIZE:,}{fix}")
        return self.keep(key, v)

    def number(self, key: str, default: float | None = None, low: float = -math.inf, high: float = math.inf) -> float:
        v = self.config.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
            raise self.fail(f"{key}={v!r}: expected a number from {low} to {high}")
        return self.keep(key, float(v))

    def flag(self, key: str, default: bool) -> bool:
        v = self.config.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(f"{key}={v!r}: expected true or false")
        return self.keep(key, v)

    def ints(self, key: str, n: int, default=None, minimum: int = 1) -> list[int]:
        """An int or n ints (Keras's kernel_size=3 or (3, 3))."""
        v = self.config.get(key, default)
        v = [v] * n if isinstance(v, int) and not isinstance(v, bool) else v
        if (not isinstance(v, (list, tuple)) or len(v) != n
                or any(isinstance(i, bool) or not isinstance(i, int) or not minimum <= i <= MAX_SIZE for i in v)):
            raise self.fail(f"{key}={v!r}: expected {n} whole numbers from {minimum}")
        return self.keep(key, list(v))

    def choice(self, key: str, options: tuple, default=None):
        v = self.config.get(key, default)
        if v not in options:
            raise self.fail(f"{key}={v!r} is not supported; supported: {', '.join(map(repr, options))}")
        return self.keep(key, v)

    def unset(self, key: str, allowed=(None, False, 0, 0.0), why: str = "") -> None:
        """Refuse a field that changes the computation in a way neuralab does not reproduce."""
        v = self.config.get(key)
        if v not in allowed and not (v in ([], ()) and None in allowed):  # Keras writes an unset shape as []
            raise self.fail(f"{key}={v!r} is not supported{': ' + why if why else ''}")

    def channels_last(self) -> None:
        self.unset("data_format", (None, "channels_last"),
                   "neuralab converts channels_last models (Keras's default)")

    def activation(self, key: str = "activation", default="linear") -> str:
        v = self.config.get(key, default)
        if isinstance(v, dict):  # {"module": "keras.activations", "class_name": "function", "config": "relu"}
            if str(v.get("module", "keras")).split(".")[0] in ("keras", "tf_keras") and isinstance(v.get("config"), str):
                v = v["config"]
            else:
                raise self.fail(f"{key} is a custom function, which neuralab never runs; "
                                f"use one of: {', '.join(ACTIVATIONS)}")
        v = "linear" if v is None else v
        if v in REFUSED_ACTIVATIONS:
            raise self.fail(f"{key}={v!r} is not supported: {REFUSED_ACTIVATIONS[v]}")
        if v not in ACTIVATIONS:
            raise self.fail(f"{key}={v!r} is not supported; use one of: {', '.join(ACTIVATIONS)}")
        return self.keep(key, v)


def _one(a: Args, shapes: list[Shape], ranks: tuple[int, ...] = (1, 2, 3)) -> Shape:
    if len(shapes) != 1:
        raise a.fail(f"takes one input, it has {len(shapes)}")
    if len(shapes[0]) not in ranks:
        names = {1: "(features)", 2: "(steps, features)", 3: "(height, width, channels)"}
        raise a.fail(f"input shape {_keras(shapes[0])} is not supported here; expected "
                     f"{' or '.join(names[r] for r in ranks)}")
    return shapes[0]


def _known(a: Args, shape: Shape, what: str) -> Shape:
    if any(d is None for d in shape):
        raise a.fail(f"needs a fixed {what}, the input shape is {_keras(shape)}")
    return shape


def _window(a: Args, n, k: int, s: int, same: bool, dilation: int = 1):
    """Output size along one axis, as Keras computes it (TensorFlow's "same": ceil(n / s))."""
    if n is None:
        return None
    out = same_size(n, s) if same else axis_size(n, dilation * (k - 1) + 1, s)[0]
    if out < 1:
        raise InputTooSmall(f"{a.where}: a {k}-wide window does not fit an input of size {n}")
    return out


def _keras(shape: Shape) -> str:
    return "(None, " + ", ".join("None" if d is None else str(d) for d in shape) + ")"


# --- layers: each reads its Keras config and returns (output shape, [(weight, shape), ...]) -------

@layer("InputLayer")
def _input(a: Args, shapes):
    shape = a.value("batch_shape", a.value("batch_input_shape"))
    if not isinstance(shape, (list, tuple)) or len(shape) not in (2, 3, 4) or any(
            d is not None and (isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_SIZE) for d in shape[1:]):
        raise a.fail(f"input shape {shape!r} is not supported; expected (batch, features), "
                     "(batch, steps, features) or (batch, height, width, channels)")
    a.keep("batch_shape", [None, *shape[1:]])
    dtype = a.value("dtype", "float32")
    if isinstance(dtype, dict):  # a DTypePolicy: {"class_name": "DTypePolicy", "config": {"name": "float32"}}
        dtype = dtype["config"].get("name") if isinstance(dtype.get("config"), dict) else dtype
    if dtype not in (None, "float32", "float16", "float64", "bfloat16"):
        raise a.fail(f"dtype={dtype!r}: neuralab converts models with float inputs")
    a.unset("sparse", (None, False))
    a.unset("ragged", (None, False))
    return tuple(shape[1:]), []


@layer("Rescaling")
def _rescaling(a: Args, shapes):
    shape = _one(a, shapes)
    for key, default in (("scale", 1.0), ("offset", 0.0)):
        v = a.value(key, default)
        if isinstance(v, (list, tuple)) and len(v) in (1, shape[-1]) and all(isinstance(i, (int, float)) for i in v):
            a.keep(key, [float(i) for i in v])  # one value per channel
        else:
            a.number(key, default)
    return shape, []


def _conv(a: Args, sizes: tuple, c, paddings=("valid", "same")):
    """The fields Conv1D and Conv2D share; returns the output sizes along ``sizes`` (time, or
    height and width) and the kernel's shape, as Keras's (*kernel_size, in / groups, filters)."""
    n = len(sizes)
    a.channels_last()
    filters, k = a.int("filters"), a.ints("kernel_size", n)
    s, d = a.ints("strides", n, 1), a.ints("dilation_rate", n, 1)
    if max(s) > 1 and max(d) > 1:
        raise a.fail("strides and dilation_rate both above 1 are not supported (Keras refuses them too)")
    padded = a.choice("padding", paddings, "valid") != "valid"  # "causal" gives as many steps as "same"
    groups = a.int("groups", 1)
    if c is None or c % groups or filters % groups:
        raise a.fail(f"groups={groups} must divide the input's {c} channels and the {filters} filters")
    a.activation()
    out = tuple(_window(a, size, k[i], s[i], padded, d[i]) for i, size in enumerate(sizes))
    return out, [*k, c // groups, filters]


@layer("Conv2D", "Convolution2D")
def _conv2d(a: Args, shapes):
    h, w, c = _one(a, shapes, (3,))
    out, kernel = _conv(a, (h, w), c)
    bias = a.flag("use_bias", True)
    return (*out, kernel[-1]), [("kernel", kernel)] + ([("bias", kernel[-1:])] if bias else [])


@layer("Conv1D", "Convolution1D")
def _conv1d(a: Args, shapes):
    t, c = _one(a, shapes, (2,))
    out, kernel = _conv(a, (t,), c, ("valid", "same", "causal"))
    bias = a.flag("use_bias", True)
    return (*out, kernel[-1]), [("kernel", kernel)] + ([("bias", kernel[-1:])] if bias else [])


def _depthwise(a: Args, h, w, c) -> tuple[tuple, list[int]]:
    """The depthwise half of DepthwiseConv2D and SeparableConv2D: each channel convolved on its
    own by depth_multiplier kernels; returns the output sizes and the kernel's shape (kh, kw, C, M)."""
    a.channels_last()
    k, s, d = a.ints("kernel_size", 2), a.ints("strides", 2, 1), a.ints("dilation_rate", 2, 1)
    if max(s) > 1 and max(d) > 1:
        raise a.fail("strides and dilation_rate both above 1 are not supported (Keras refuses them too)")
    same = a.choice("padding", ("valid", "same"), "valid") == "same"
    m = a.int("depth_multiplier", 1)
    c = _known(a, (c,), "number of channels")[0]
    a.activation()
    return (_window(a, h, k[0], s[0], same, d[0]), _window(a, w, k[1], s[1], same, d[1])), [*k, c, m]


@layer("DepthwiseConv2D")
def _depthwise_conv2d(a: Args, shapes):
    h, w, c = _one(a, shapes, (3,))
    out, kernel = _depthwise(a, h, w, c)
    bias = a.flag("use_bias", True)
    channels = kernel[2] * kernel[3]
    return (*out, channels), [("kernel", kernel)] + ([("bias", [channels])] if bias else [])


@layer("SeparableConv2D", "SeparableConvolution2D")
def _separable_conv2d(a: Args, shapes):
    h, w, c = _one(a, shapes, (3,))
    out, kernel = _depthwise(a, h, w, c)
    filters, bias = a.int("filters"), a.flag("use_bias", True)
    pointwise = [1, 1, kernel[2] * kernel[3], filters]
    return (*out, filters), ([("depthwise_kernel", kernel), ("pointwise_kernel", pointwise)]
                             + ([("bias", [filters])] if bias else []))


def _pool(a: Args, shapes):
    h, w, c = _one(a, shapes, (3,))
    a.channels_last()
    k = a.ints("pool_size", 2, 2)
    s = a.ints("strides", 2, k) if a.value("strides") is not None else a.keep("strides", list(k))
    same = a.choice("padding", ("valid", "same"), "valid") == "same"
    return (_window(a, h, k[0], s[0], same), _window(a, w, k[1], s[1], same), c), []


def _pool1d(a: Args, shapes):
    t, c = _one(a, shapes, (2,))
    a.channels_last()
    (k,) = a.ints("pool_size", 1, 2)
    (s,) = a.ints("strides", 1, k) if a.value("strides") is not None else a.keep("strides", [k])
    same = a.choice("padding", ("valid", "same"), "valid") == "same"
    return (_window(a, t, k, s, same), c), []


layer("MaxPooling1D", "MaxPool1D")(_pool1d)
layer("AveragePooling1D", "AvgPool1D")(_pool1d)
layer("MaxPooling2D", "MaxPool2D")(_pool)
layer("AveragePooling2D", "AvgPool2D")(_pool)


@layer("ZeroPadding2D")
def _zero_padding(a: Args, shapes):
    h, w, c = _one(a, shapes, (3,))
    a.channels_last()
    p = a.value("padding", 1)
    if isinstance(p, int):
        p = [[p, p], [p, p]]
    elif isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(i, int) for i in p):
        p = [[p[0], p[0]], [p[1], p[1]]]
    if (not isinstance(p, (list, tuple)) or len(p) != 2 or any(not isinstance(i, (list, tuple)) or len(i) != 2 for i in p)
            or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_SIZE for i in p for v in i)):
        raise a.fail(f"padding={p!r}: expected ((top, bottom), (left, right)), each a whole number from 0")
    a.keep("padding", [list(i) for i in p])
    return (None if h is None else h + sum(p[0]), None if w is None else w + sum(p[1]), c), []


@layer("Flatten")
def _flatten(a: Args, shapes):
    shape = _known(a, _one(a, shapes), "size")
    a.channels_last()
    return (math.prod(shape),), []


@layer("Reshape")
def _reshape(a: Args, shapes):
    shape = _known(a, _one(a, shapes), "size")
    target = a.value("target_shape")
    if (not isinstance(target, (list, tuple)) or not 1 <= len(target) <= 3 or sum(t == -1 for t in target) > 1
            or any(isinstance(t, bool) or not isinstance(t, int) or not (t == -1 or 1 <= t <= MAX_SIZE) for t in target)):
        raise a.fail(f"target_shape={target!r}: expected 1 to 3 sizes, at most one of them -1")
    size, known = math.prod(shape), math.prod(t for t in target if t != -1)
    target = [size // known if t == -1 else t for t in target]
    if math.prod(target) != size:
        raise a.fail(f"cannot reshape {_keras(shape)} ({size} values) to {_keras(tuple(target))}")
    a.keep("target_shape", target)
    return tuple(target), []


@layer("Dense")
def _dense(a: Args, shapes):
    shape = _one(a, shapes)
    units = a.int("units")
    a.activation()
    bias = a.flag("use_bias", True)
    n = _known(a, shape[-1:], "number of features")[0]
    return (*shape[:-1], units), [("kernel", [n, units])] + ([("bias", [units])] if bias else [])


@layer("Dropout")
def _dropout(a: Args, shapes):
    a.number("rate", None, 0.0, 1.0)
    a.unset("noise_shape", why="use Dropout without noise_shape")
    return _one(a, shapes), []


@layer("SpatialDropout1D")
def _spatial_dropout1d(a: Args, shapes):
    a.number("rate", None, 0.0, 1.0)  # whole features, at every step
    return _one(a, shapes, (2,)), []


@layer("SpatialDropout2D")
def _spatial_dropout2d(a: Args, shapes):
    a.number("rate", None, 0.0, 1.0)  # whole channels
    a.channels_last()
    return _one(a, shapes, (3,)), []


@layer("GaussianNoise")
def _gaussian_noise(a: Args, shapes):
    a.number("stddev", None, 0.0)
    return _one(a, shapes), []


@layer("GaussianDropout")
def _gaussian_dropout(a: Args, shapes):
    a.number("rate", None, 0.0, 0.999)
    return _one(a, shapes), []


@layer("Activation")
def _activation(a: Args, shapes):
    a.activation()
    return _one(a, shapes), []


@layer("ReLU")
def _relu(a: Args, shapes):
    a.unset("negative_slope", why="use LeakyReLU")
    a.unset("threshold")
    if a.value("max_value") is not None:
        a.number("max_value", None, 0.0)
    return _one(a, shapes), []


@layer("LeakyReLU")
def _leaky_relu(a: Args, shapes):
    key = "negative_slope" if "negative_slope" in a.config else "alpha"  # Keras 3 / TF-Keras 2
    a.keep("negative_slope", a.number(key, 0.3, 0.0))
    a.used.pop("alpha", None)
    return _one(a, shapes), []


@layer("ELU")
def _elu(a: Args, shapes):
    a.number("alpha", 1.0)
    return _one(a, shapes), []


@layer("Softmax")
def _softmax(a: Args, shapes):
    axis = a.value("axis", -1)
    shape = _one(a, shapes)
    if axis not in (-1, len(shape), [-1], [len(shape)]):
        raise a.fail(f"axis={axis!r} is not supported; neuralab converts the softmax over the last axis")
    return shape, []


@layer("BatchNormalization")
def _batch_norm(a: Args, shapes):
    shape = _one(a, shapes)
    axis = a.value("axis", -1)
    if axis not in (-1, len(shape), [-1], [len(shape)]):
        raise a.fail(f"axis={axis!r} is not supported; neuralab converts normalisation over the last "
                     "(channel) axis, Keras's default")
    for key in ("renorm", "virtual_batch_size", "adjustment"):
        a.unset(key)
    a.number("momentum", 0.99, 0.0, 1.0)
    a.number("epsilon", 1e-3, 0.0)
    scale, center = a.flag("scale", True), a.flag("center", True)
    # TF-Keras 2 averages the Bessel-corrected batch variance into moving_variance on images
    # (its fused kernel, the default there), as PyTorch does; Keras 3 averages the plain one.
    a.keep("unbiased_moving_variance", a.value("unbiased_moving_variance", False) is True)
    c = _known(a, shape[-1:], "number of channels")[0]
    names = ["gamma"] * scale + ["beta"] * center + ["moving_mean", "moving_variance"]
    return shape, [(n, [c]) for n in names]


def _global_pool(rank: int):
    def pool(a: Args, shapes):
        shape = _one(a, shapes, (rank,))
        a.channels_last()
        keep = a.flag("keepdims", False)
        return ((1,) * (rank - 1) + shape[-1:]) if keep else shape[-1:], []
    return pool


for _rank, _d in ((3, "2D"), (2, "1D")):
    layer(f"GlobalAveragePooling{_d}", f"GlobalAvgPool{_d}")(_global_pool(_rank))
    layer(f"GlobalMaxPooling{_d}", f"GlobalMaxPool{_d}")(_global_pool(_rank))


def _recurrent(gates: int):
    def recurrent(a: Args, shapes):
        t, f = _one(a, shapes, (2,))
        units = a.int("units")
        activations = ("tanh", "relu") if gates == 1 else ("tanh",)
        a.choice("activation", activations, "tanh")
        if gates > 1:
            a.choice("recurrent_activation", ("sigmoid",), "sigmoid")
        bias = a.flag("use_bias", True)
        seq = a.flag("return_sequences", False)
        for key, why in (("return_state", "neuralab converts models with one output"),
                         ("go_backwards", ""), ("stateful", ""), ("time_major", "")):
            a.unset(key, why=why)
        a.number("dropout", 0.0, 0.0, 1.0)
        if a.value("recurrent_dropout"):  # kept only when set, as specs stored before it was read hold none
            a.number("recurrent_dropout", 0.0, 0.0, 1.0)
        reset_after = gates == 3 and a.flag("reset_after", True)
        f = _known(a, (f,), "number of features")[0]
        weights = [("kernel", [f, gates * units]), ("recurrent_kernel", [units, gates * units])]
        if bias:
            weights.append(("bias", [2, gates * units] if reset_after else [gates * units]))
        return ((t, units) if seq else (units,)), weights
    return recurrent


layer("SimpleRNN")(_recurrent(1))
layer("LSTM")(_recurrent(4))
layer("GRU")(_recurrent(3))


# --- data augmentation: nothing at inference (Keras's predict), random transforms in training ------

AUGMENTATION = ("RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness")


def _factor(a: Args, key: str, low: float, high: float, number=lambda f: [-abs(f), abs(f)]) -> list[float]:
    """Keras's factor: one number (a range around 0, by default) or (lower, upper)."""
    v = a.value(key)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high:
        return a.keep(key, [float(f) for f in number(v)])
    if (isinstance(v, (list, tuple)) and len(v) == 2
            and all(isinstance(f, (int, float)) and not isinstance(f, bool) and low <= f <= high for f in v)):
        return a.keep(key, sorted(float(f) for f in v))
    raise a.fail(f"{key}={v!r}: expected a number or (lower, upper), from {low} to {high}")


def _image(a: Args, shapes) -> Shape:
    shape = _one(a, shapes, (3,))
    a.channels_last()
    return shape


def _resampled(a: Args) -> None:
    """The fields of the layers that move pixels (rotation, zoom, translation)."""
    a.choice("fill_mode", ("reflect", "nearest", "constant"), "reflect")
    a.choice("interpolation", ("bilinear", "nearest"), "bilinear")
    a.number("fill_value", 0.0)


@layer("RandomFlip")
def _random_flip(a: Args, shapes):
    a.choice("mode", ("horizontal", "vertical", "horizontal_and_vertical"), "horizontal_and_vertical")
    return _image(a, shapes), []


@layer("RandomRotation")
def _random_rotation(a: Args, shapes):
    _factor(a, "factor", -1.0, 1.0)  # fractions of a full turn
    _resampled(a)
    return _image(a, shapes), []


@layer("RandomZoom")
def _random_zoom(a: Args, shapes):
    _factor(a, "height_factor", -1.0, 1.0)  # above 0 zooms out
    if a.value("width_factor") is not None:  # None: the height's zoom, the aspect kept
        _factor(a, "width_factor", -1.0, 1.0)
    _resampled(a)
    return _image(a, shapes), []


@layer("RandomTranslation")
def _random_translation(a: Args, shapes):
    _factor(a, "height_factor", -1.0, 1.0)  # fractions of the height and width
    _factor(a, "width_factor", -1.0, 1.0)
    _resampled(a)
    return _image(a, shapes), []


def _value_range(a: Args) -> None:
    v = a.value("value_range", [0, 255])
    if (not isinstance(v, (list, tuple)) or len(v) != 2 or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v) or v[0] >= v[1]):
        raise a.fail(f"value_range={v!r}: expected (low, high), low below high")
    a.keep("value_range", [float(x) for x in v])


@layer("RandomContrast")
def _random_contrast(a: Args, shapes):
    # Contrast x (1 - lower) to x (1 + upper); TF-Keras 2 saves one number f for (f, f)
    _factor(a, "factor", 0.0, 1.0, lambda f: [f, f])
    _value_range(a)
    return _image(a, shapes), []


@layer("RandomBrightness")
def _random_brightness(a: Args, shapes):
    _factor(a, "factor", -1.0, 1.0)  # fractions of value_range added
    _value_range(a)
    return _image(a, shapes), []


@layer("Bidirectional")
def _bidirectional(a: Args, shapes):
    """A SimpleRNN, LSTM or GRU read forwards and a copy of it read backwards; the weights are
    the forward layer's, then the backward one's."""
    inner = a.value("layer")
    cls = inner.get("class_name") if isinstance(inner, dict) else None
    if cls not in ("SimpleRNN", "LSTM", "GRU") or not isinstance(inner.get("config"), dict) or str(
            inner.get("module", "keras")).split(".")[0] not in ("keras", "tf_keras"):
        raise a.fail("it wraps a layer other than Keras's SimpleRNN, LSTM or GRU, which neuralab converts")
    forward = Args(f"{a.where}, its {cls}", inner["config"])
    out, weights = LAYERS[cls](forward, shapes)
    backward = a.value("backward_layer")  # Keras writes the copy it made, reading backwards
    if backward is not None:
        config = backward.get("config") if isinstance(backward, dict) else None
        same = isinstance(config, dict) and backward.get("class_name") == cls and all(
            config.get(k) == v for k, v in forward.used.items())
        if not same or config.get("go_backwards") is not True:
            raise a.fail("backward_layer is not the forward layer reading backwards; neuralab converts "
                         "Bidirectional(layer) without a backward_layer of its own")
    merge = a.choice("merge_mode", ("concat", "sum", "mul", "ave"), "concat")
    a.keep("layer", {"class_name": cls, "config": forward.used})
    out = (*out[:-1], 2 * out[-1] if merge == "concat" else out[-1])
    return out, [(f"{d}_{n}", shape) for d in ("forward", "backward") for n, shape in weights]


def _merge(a: Args, shapes):
    """Keras's elementwise merges, which broadcast as Keras does (its Merge layer): the shapes
    aligned at their last axis, the shorter one's missing axes and its axes of size 1 taking
    the other's (a squeeze-and-excitation block's (1, 1, C) weights over (H, W, C) maps)."""
    if len(shapes) < 2:
        raise a.fail(f"takes two or more inputs, it has {len(shapes)}")
    out = tuple(shapes[0])
    for shape in shapes[1:]:
        longer, shorter = (out, tuple(shape)) if len(out) >= len(shape) else (tuple(shape), out)
        lead = longer[:len(longer) - len(shorter)]
        pairs = list(zip(longer[len(lead):], shorter))
        clash = [(i - len(pairs), m, n) for i, (m, n) in enumerate(pairs) if None not in (m, n) and 1 not in (m, n)
                 and m != n]
        if clash:
            axis, m, n = clash[0]
            raise a.fail(f"inputs of shapes {', '.join(map(_keras, shapes))} do not broadcast: sizes {m} and {n} on "
                         f"axis {axis} differ and neither is 1 (Keras refuses them too)")
        out = (*lead, *(None if None in (m, n) else n if m == 1 else m for m, n in pairs))
    return out, []


for _name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
    layer(_name)(_merge)


@layer("Concatenate")
def _concatenate(a: Args, shapes):
    rank = len(shapes[0])
    axis = a.value("axis", -1)
    if len(shapes) < 2 or isinstance(axis, bool) or not isinstance(axis, int) or not -rank <= axis <= rank or axis == 0:
        raise a.fail(f"needs two or more inputs and an axis from 1 to {rank} (got axis={axis!r})")
    axis = a.keep("axis", axis if axis > 0 else rank + 1 + axis)
    rest = {tuple(d for i, d in enumerate(s, 1) if i != axis) for s in shapes}
    if len(rest) != 1 or any(len(s) != rank for s in shapes):
        raise a.fail(f"inputs {', '.join(map(_keras, shapes))} do not line up for axis {axis}")
    sizes = [s[axis - 1] for s in shapes]
    joined = None if None in sizes else sum(sizes)
    return tuple(joined if i == axis else d for i, d in enumerate(shapes[0], 1)), []
