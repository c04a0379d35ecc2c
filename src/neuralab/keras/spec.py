"""The layer spec: a Keras model's architecture as plain JSON data.

A spec is what neuralab keeps of a Keras model (a run's model.json stores it), so that the
model rebuilds without Keras and without running anything from a file:

    {"format": 1, "keras_version": "3.15.1", "output": "dense_1",
     "layers": [{"name": "conv2d", "class": "Conv2D", "inputs": ["input_layer"],
                 "args": {"filters": 6, "kernel_size": [5, 5], ...},
                 "input_shapes": [[null, 32, 32, 1]], "output_shape": [null, 28, 28, 6],
                 "weights": [["kernel", [5, 5, 1, 6]], ["bias", [6]]]}, ...]}

Shapes are Keras's, channels last with the batch as null; weights are Keras's variables in
Keras's order, so their sizes add up to Keras's parameter count. ``args`` keeps only the
fields of the Keras config that the computation uses, under Keras's names. Reading a stored
spec (``check``) runs every layer through the same functions as reading a Keras config, so a
hand-edited spec is checked as thoroughly as a Keras file.
"""

from __future__ import annotations

import math
from typing import Callable

from neuralab.errors import NeuralabError

FORMAT = 1
MAX_SIZE = 2**31 - 1  # largest size of any dimension, and of any one weight tensor

Shape = tuple  # without the batch: (F,), (T, F) or (H, W, C); a None is a size known only at run time

# Keras activation name -> what it is; every one has a parity test against Keras.
ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax", "log_softmax", "elu", "selu", "softplus",
               "softsign", "swish", "silu", "gelu", "relu6")
REFUSED = {
    "Lambda": "it holds Python code, and neuralab never runs code from a model file",
    "TFOpLambda": "it holds a TensorFlow call, and neuralab never runs code from a model file",
    "Sequential": "nested models are not converted; rebuild it as one Sequential or functional model",
    "Functional": "nested models are not converted; rebuild it as one Sequential or functional model",
    "Model": "nested models are not converted; rebuild it as one Sequential or functional model",
}

_LAYERS: dict[str, Callable] = {}
ALIASES: dict[str, str] = {}  # Keras's other names for a layer (MaxPool2D) -> the name it saves under


def layer(name: str, *aliases: str):
    def register(fn):
        _LAYERS[name] = fn
        for alias in aliases:
            _LAYERS[alias], ALIASES[alias] = fn, name
        return fn
    return register


def supported_layers() -> list[str]:
    return sorted(n for n in _LAYERS if n not in ALIASES)


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
            raise self.fail(f"{key}={v!r}: expected a whole number from {minimum}")
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
        if v not in allowed and not (isinstance(v, (list, tuple)) and not v and None in allowed):
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
    out = -(-n // s) if same else (n - dilation * (k - 1) - 1) // s + 1
    if out < 1:
        raise a.fail(f"a {k}-wide window does not fit an input of size {n}")
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
    dtype = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
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


@layer("Conv2D", "Convolution2D")
def _conv2d(a: Args, shapes):
    h, w, c = _one(a, shapes, (3,))
    a.channels_last()
    filters, k = a.int("filters"), a.ints("kernel_size", 2)
    s, d = a.ints("strides", 2, 1), a.ints("dilation_rate", 2, 1)
    if max(s) > 1 and max(d) > 1:
        raise a.fail("strides and dilation_rate both above 1 are not supported (Keras refuses them too)")
    same = a.choice("padding", ("valid", "same"), "valid") == "same"
    groups = a.int("groups", 1)
    if c is None or c % groups or filters % groups:
        raise a.fail(f"groups={groups} must divide the input's {c} channels and the {filters} filters")
    a.activation()
    bias = a.flag("use_bias", True)
    out = (_window(a, h, k[0], s[0], same, d[0]), _window(a, w, k[1], s[1], same, d[1]), filters)
    return out, [("kernel", [*k, c // groups, filters])] + ([("bias", [filters])] if bias else [])


def _pool(a: Args, shapes):
    h, w, c = _one(a, shapes, (3,))
    a.channels_last()
    k = a.ints("pool_size", 2, 2)
    s = a.ints("strides", 2, k) if a.value("strides") is not None else a.keep("strides", list(k))
    same = a.choice("padding", ("valid", "same"), "valid") == "same"
    return (_window(a, h, k[0], s[0], same), _window(a, w, k[1], s[1], same), c), []


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
                         ("go_backwards", ""), ("stateful", ""), ("time_major", ""),
                         ("recurrent_dropout", "PyTorch's recurrent layers have none; set it to 0")):
            a.unset(key, why=why)
        a.number("dropout", 0.0, 0.0, 1.0)
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


def _merge(a: Args, shapes):
    if len(shapes) < 2:
        raise a.fail(f"takes two or more inputs, it has {len(shapes)}")
    if any(s != shapes[0] for s in shapes):
        raise a.fail(f"needs inputs of one shape, got {', '.join(map(_keras, shapes))}")
    return shapes[0], []


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


# --- whole models -----------------------------------------------------------------------------

def _entry(name: str, cls: str, inputs: list[str], config: dict, shapes: list[Shape], where: str) -> dict:
    a = Args(where, config)
    fn = _LAYERS.get(cls)
    if fn is None:
        why = REFUSED.get(cls, "it is not a layer neuralab converts")
        raise NeuralabError(f"{where}: {why}; supported layers: {', '.join(supported_layers())}")
    out, weights = fn(a, shapes)
    for _, shape in weights:
        if math.prod(shape) > MAX_SIZE:
            raise a.fail(f"a weight of shape {shape} is too large")
    return {"name": name, "class": cls, "inputs": inputs, "args": a.used,
            "input_shapes": [[None, *s] for s in shapes], "output_shape": [None, *out],
            "weights": [[n, s] for n, s in weights]}


def _where(source: str, name, cls) -> str:
    return f"{source}: layer {name!r} ({cls})"


def _ordered(source: str, layers: dict[str, tuple], inputs: list[str], output: str) -> list[str]:
    """The layers that ``output`` depends on, in the order given, which must list every layer
    after its inputs (Keras writes them so; the weights of a .keras file are stored in it)."""
    needed, todo = set(), [output]
    while todo:
        n = todo.pop()
        if n not in layers:
            raise NeuralabError(f"{source}: a layer takes its input from {n!r}, which is not in the model")
        if n not in needed:
            needed.add(n)
            todo.extend(layers[n][1])
    order, seen = [n for n in layers if n in needed], set()
    for n in order:
        if any(i not in seen for i in layers[n][1]):
            raise NeuralabError(f"{source}: layer {n!r} is listed before its inputs")
        seen.add(n)
    if [n for n in order if not layers[n][1]] != inputs:
        raise NeuralabError(f"{source}: the output does not depend on the input alone; "
                            "neuralab converts models with one input and one output")
    return order


def _history(source: str, name: str, node) -> list[str]:
    """The layers feeding one call of a layer, in the Keras 3 and the TF-Keras 2 notations."""
    found: list[tuple] = []

    def walk(x):
        if isinstance(x, dict):
            if x.get("class_name") == "__keras_tensor__":
                found.append(tuple(x.get("config", {}).get("keras_history", ())))
            else:
                for v in x.values():
                    walk(v)
        elif isinstance(x, (list, tuple)):
            if len(x) >= 3 and isinstance(x[0], str) and isinstance(x[1], int) and isinstance(x[2], int):
                found.append(tuple(x[:3]))
                if len(x) > 3:
                    walk(x[3])  # TF-Keras 2's keyword arguments
            else:
                for v in x:
                    walk(v)

    walk(node)
    for history in found:
        if len(history) < 3 or history[1:3] != (0, 0):
            raise NeuralabError(f"{source}: layer {name!r} takes a second output or a second call of "
                                f"{history[0]!r}; neuralab converts layers called once, with one output")
    return [h[0] for h in found]


def from_config(config: dict, source: str, keras_version: str = "") -> dict:
    """The spec of a saved Keras model's config (the JSON in a .keras file or an .h5's
    model_config). Refuses by name any layer it cannot convert; nothing is executed."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise NeuralabError(f"{source}: the model config is not a Keras model; save the model with model.save()")
    cls, body = config.get("class_name"), config["config"]
    if not _builtin(config):
        raise NeuralabError(f"{source}: the model is a custom class {config.get('registered_name') or cls!r} from "
                            f"{config.get('module')!r}; neuralab converts Keras's own Sequential and functional models")
    raw_layers = body.get("layers")
    if not isinstance(raw_layers, list) or not all(isinstance(r, dict) for r in raw_layers):
        raise NeuralabError(f"{source}: the {cls} config has no list of layers; neuralab converts Sequential and "
                            "functional models (a subclassed model's architecture is Python code, which it never runs)")
    for r in raw_layers:
        _refuse_custom(source, r)
    legacy = keras_version.startswith(("1.", "2."))
    if cls == "Sequential":
        layers, inputs, output = _sequential(source, body, config, raw_layers)
    elif cls in ("Functional", "Model"):
        layers, inputs, output = _functional(source, body, raw_layers)
    else:
        raise NeuralabError(f"{source}: the model is a {cls!r}; neuralab converts Sequential and functional models")
    entries: dict[str, dict] = {}
    for name in _ordered(source, layers, inputs, output):
        cls, inbound, cfg = layers[name]
        shapes = [tuple(entries[i]["output_shape"][1:]) for i in inbound]
        if cls == "BatchNormalization":  # TF-Keras 2's fused kernel runs on images: see _batch_norm
            fused = legacy and cfg.get("fused") is not False and [len(s) for s in shapes] == [3]
            cfg = {**cfg, "unbiased_moving_variance": fused}
        entries[name] = _entry(name, cls, inbound, cfg, shapes, _where(source, name, cls))
    return {"format": FORMAT, "keras_version": keras_version, "output": output, "layers": list(entries.values())}


def _builtin(obj: dict) -> bool:
    module, registered = obj.get("module"), obj.get("registered_name")
    if module is not None and str(module).split(".")[0] not in ("keras", "tf_keras"):
        return False
    return registered in (None, obj.get("class_name"))


def _refuse_custom(source: str, r: dict) -> None:
    cls = r.get("class_name")
    name = r.get("config", {}).get("name", r.get("name")) if isinstance(r.get("config"), dict) else r.get("name")
    if not _builtin(r) or not isinstance(cls, str) or not isinstance(r.get("config"), dict):
        raise NeuralabError(f"{_where(source, name, r.get('registered_name') or cls)}: a custom layer from "
                            f"{r.get('module')!r}, which neuralab never runs; supported layers: {', '.join(supported_layers())}")


def _sequential(source: str, body: dict, config: dict, raw: list[dict]):
    layers: dict[str, tuple] = {}
    if raw and raw[0].get("class_name") == "InputLayer":
        first, raw = raw[0], raw[1:]
        input_name, input_cfg = first["config"].get("name", "input_layer"), first["config"]
    else:  # the input shape sits on the first layer (TF-Keras 2) or on the model (Keras 3, built)
        cfg = raw[0]["config"] if raw else {}
        shape = (cfg.get("batch_input_shape") or cfg.get("batch_shape") or body.get("build_input_shape")
                 or (config.get("build_config") or {}).get("input_shape"))
        if shape is None:
            raise NeuralabError(f"{source}: the model has no input shape; give it one (keras.Input(shape=...) "
                                "as its first layer) and save it again")
        input_name, input_cfg = "input_layer", {"batch_shape": shape}
    layers[input_name] = ("InputLayer", [], input_cfg)
    previous = input_name
    for r in raw:
        name = r["config"].get("name")
        if not isinstance(name, str) or name in layers:
            raise NeuralabError(f"{source}: layer names must be distinct strings, got {name!r}")
        layers[name] = (r["class_name"], [previous], r["config"])
        previous = name
    return layers, [input_name], previous


def _functional(source: str, body: dict, raw: list[dict]):
    layers: dict[str, tuple] = {}
    for r in raw:
        name = r.get("name", r["config"].get("name"))
        nodes = r.get("inbound_nodes") or []
        if not isinstance(name, str) or name in layers:
            raise NeuralabError(f"{source}: layer names must be distinct strings, got {name!r}")
        if len(nodes) > 1:
            raise NeuralabError(f"{_where(source, name, r['class_name'])}: the layer is called {len(nodes)} times "
                                "(shared weights); neuralab converts layers called once")
        inbound = _history(source, name, nodes[0]) if nodes else []
        layers[name] = (r["class_name"], inbound, r["config"])

    def ends(key: str) -> list[str]:
        v = body.get(key)
        v = [v] if isinstance(v, list) and v and isinstance(v[0], str) else v  # Keras 3 writes one as a flat list
        if not isinstance(v, list) or len(v) != 1 or not isinstance(v[0], list) or not v[0] or not isinstance(v[0][0], str):
            raise NeuralabError(f"{source}: the model has {len(v) if isinstance(v, list) else 'no'} {key.split('_')[0]}s; "
                                "neuralab converts models with one input and one output")
        return [v[0][0]]

    inputs, output = ends("input_layers"), ends("output_layers")[0]
    if layers.get(inputs[0], ("",))[0] != "InputLayer":
        raise NeuralabError(f"{source}: the model's input {inputs[0]!r} is not an InputLayer")
    return layers, inputs, output


def check(spec, source: str = "spec") -> dict:
    """Check a stored spec as thoroughly as a Keras file: every layer is read again from its
    args and its shapes recomputed; returns the spec, or raises NeuralabError naming the layer."""
    if not isinstance(spec, dict) or spec.get("format") != FORMAT or not isinstance(spec.get("layers"), list):
        raise NeuralabError(f"{source}: not a neuralab Keras spec (format {FORMAT}); convert the Keras model again")
    layers: dict[str, tuple] = {}
    for e in spec["layers"]:
        if (not isinstance(e, dict) or not isinstance(e.get("name"), str) or e["name"] in layers
                or not isinstance(e.get("inputs"), list) or not isinstance(e.get("args"), dict)):
            raise NeuralabError(f"{source}: a layer entry is malformed or named twice: {str(e)[:80]}")
        layers[e["name"]] = (e.get("class"), e["inputs"], e["args"])
    inputs = [n for n, (_, i, _) in layers.items() if not i]
    if len(inputs) != 1 or layers[inputs[0]][0] != "InputLayer" or spec.get("output") not in layers:
        raise NeuralabError(f"{source}: a spec has one InputLayer and names its output layer")
    if _ordered(source, layers, inputs, spec["output"]) != list(layers):
        raise NeuralabError(f"{source}: the spec lists layers that the output does not use")
    checked: dict[str, dict] = {}
    for e in spec["layers"]:
        where = _where(source, e["name"], e.get("class"))
        if not isinstance(e.get("class"), str):
            raise NeuralabError(f"{where}: the layer has no class name")
        again = _entry(e["name"], e["class"], e["inputs"], e["args"],
                       [tuple(checked[i]["output_shape"][1:]) for i in e["inputs"]], where)
        if any(e.get(key) != again[key] for key in ("args", "output_shape", "weights")):
            raise NeuralabError(f"{where}: the stored shapes or arguments do not match the layer; "
                                "convert the Keras model again")
        checked[e["name"]] = again
    return spec


# --- what a spec tells about the model --------------------------------------------------------

def keras_summary(spec: dict) -> list[dict]:
    """One row per layer as Keras's model.summary() shows it: name, class, output shape
    (None, ...) and parameter count (Keras counts BatchNormalization's moving statistics)."""
    return [{"name": e["name"], "class": e["class"], "output_shape": tuple(e["output_shape"]),
             "params": sum(math.prod(s) for _, s in e["weights"])}
            for e in spec["layers"] if e["class"] != "InputLayer"]


def parameter_count(spec: dict) -> int:
    """Keras's total: LSTM(128) -> LSTM(64) -> Dense(1) on one feature is 116,033 (PyTorch's
    layout has a second bias per gate and counts 116,801)."""
    return sum(row["params"] for row in keras_summary(spec))


def input_shape(spec: dict) -> tuple:
    """The input's Keras shape without the batch: (F,), (T, F) or (H, W, C)."""
    return tuple(spec["layers"][0]["output_shape"][1:])


def ends_in_softmax(spec: dict) -> bool:
    """Whether the model's last operation is a softmax over classes: a trainer then trains on the
    logits before it (``build(spec, logits=True)``) with cross-entropy, which is exact and
    more stable than the log of Keras's probabilities."""
    last = {e["name"]: e for e in spec["layers"]}[spec["output"]]
    return last["class"] == "Softmax" or last["args"].get("activation") == "softmax"
