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

from neuralab.errors import NeuralabError
from neuralab.keras.layers import (
    LAYERS,
    MAX_SIZE,
    REFUSED,
    Args,
    Shape,
    supported_layers,
)

FORMAT = 1


def _entry(name: str, cls: str, inputs: list[str], config: dict, shapes: list[Shape], where: str) -> dict:
    a = Args(where, config)
    fn = LAYERS.get(cls)
    if fn is None:
        why = REFUSED.get(cls, "it is not a layer neuralab converts")
        raise NeuralabError(f"{where}: {why}; supported layers: {', '.join(supported_layers())}")
    out, weights = fn(a, shapes)
    for _, shape in weights:
        if math.prod(shape) > MAX_SIZE:
            raise a.fail(f"a weight of shape {shape} is too large")
    if weights and config.get("trainable", True) is False:
        a.keep("trainable", False)  # frozen in Keras (fine-tuning): its weights stay, BatchNormalization infers
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
    """The layers feeding one call of a layer: Keras 3 writes {"args": [...]} with a
    {"class_name": "__keras_tensor__", ...} per input, TF-Keras 2 [[name, 0, 0, {}], ...]."""
    found: list[tuple] = []
    keras3 = isinstance(node, dict)

    def walk(x):
        if isinstance(x, dict):
            if x.get("class_name") == "__keras_tensor__":
                found.append(tuple(x.get("config", {}).get("keras_history", ())))
            else:
                for v in x.values():
                    walk(v)
        elif isinstance(x, (list, tuple)):
            if not keras3 and len(x) >= 3 and isinstance(x[0], str) and isinstance(x[1], int) and isinstance(x[2], int):
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
        raise NeuralabError(f"{source}: the model is a custom class {config.get('registered_name') or cls!r} "
                            "(a subclassed model's architecture is Python code, which neuralab never runs); "
                            "rebuild it as a Sequential or functional model")
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
    """Keras's own class: from a keras module, or (TF-Keras 2's legacy configs) with no module
    and no registered name; Keras writes a user's class with its module or its registered name."""
    module, registered = obj.get("module"), obj.get("registered_name")
    if module is None:
        return registered is None
    return str(module).split(".")[0] in ("keras", "tf_keras") and registered in (None, obj.get("class_name"))


def _refuse_custom(source: str, r: dict) -> None:
    cls = r.get("class_name")
    name = r.get("config", {}).get("name", r.get("name")) if isinstance(r.get("config"), dict) else r.get("name")
    if not _builtin(r) or not isinstance(cls, str) or not isinstance(r.get("config"), dict):
        origin = f" from {r['module']!r}" if r.get("module") else ""
        raise NeuralabError(f"{_where(source, name, r.get('registered_name') or cls)}: a custom layer{origin}, "
                            f"whose code neuralab never runs; supported layers: {', '.join(supported_layers())}")


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
    (None, ...), parameter count (Keras counts BatchNormalization's moving statistics) and
    how many of them train (not the moving statistics, none of a frozen layer)."""
    def trainable(e) -> int:
        if e["args"].get("trainable") is False:
            return 0
        return sum(math.prod(s) for n, s in e["weights"] if n not in ("moving_mean", "moving_variance"))

    return [{"name": e["name"], "class": e["class"], "output_shape": tuple(e["output_shape"]),
             "params": sum(math.prod(s) for _, s in e["weights"]), "trainable": trainable(e)}
            for e in spec["layers"] if e["class"] != "InputLayer"]


def parameter_count(spec: dict) -> int:
    """Keras's total: LSTM(128) -> LSTM(64) -> Dense(1) on one feature is 116,033 (PyTorch's
    layout has a second bias per gate and counts 116,801)."""
    return sum(row["params"] for row in keras_summary(spec))


def input_shape(spec: dict) -> tuple:
    """The input's shape without the batch in PyTorch's layout, as neuralab's models take it:
    (C, H, W) for images (Keras's (H, W, C)), (T, F) for sequences, (F,) for vectors."""
    shape = tuple(spec["layers"][0]["output_shape"][1:])
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape


def ends_in_softmax(spec: dict) -> bool:
    """Whether the model's last operation is a softmax over classes: a trainer then trains on the
    logits before it (``build(spec, logits=True)``) with cross-entropy, which is exact and
    more stable than the log of Keras's probabilities."""
    last = {e["name"]: e for e in spec["layers"]}[spec["output"]]
    return last["class"] == "Softmax" or last["args"].get("activation") == "softmax"
