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

import json
import math
import re
from pathlib import Path

from neuralab.errors import NeuralabError
from neuralab.keras.layers import (
    AUGMENTATION,
    LAYERS,
    MAX_SIZE,
    REFUSED,
    Args,
    Shape,
    supported_layers,
)

FORMAT = 1
# Generous bounds on what a file may ask for: a layer's output per input, in values (1 GiB in
# float32; VGG16's largest on 224x224 images is 3.2 million, 128 filters on 1024x1024 pictures 134
# million), and a model's layers (ResNet-152 has ~500)
MAX_ACTIVATION = 2**28
MAX_LAYERS = 10_000


# A stored spec (a run's model.json) with a layer past neuralab's bounds was edited: neuralab writes none
EDITED = "neuralab writes no spec with such a layer, so this one was edited: convert or train the model again"


def _entry(name: str, cls: str, inputs: list[str], config: dict, shapes: list[Shape], where: str,
           stored: bool = False) -> dict:
    """One layer's spec entry from its Keras ``config`` (or a stored spec's args: ``stored``)."""
    a = Args(where, config)
    fn = LAYERS.get(cls)
    if fn is None:
        why = REFUSED.get(cls, "it is not a layer neuralab converts")
        raise NeuralabError(f"{where}: {why}; supported layers: {', '.join(supported_layers())}")
    mode = quantized(config)
    if mode is not None:  # its int8 kernel and kernel_scale are no float weights of the layer's
        how = f"{mode}-quantized (model.quantize({mode!r}))" if mode in QUANTIZED else "quantized (model.quantize)"
        raise a.fail(f"{how}; neuralab converts float weights: save the model before quantizing it")
    out, weights = fn(a, shapes)
    for _, shape in weights:
        if math.prod(shape) > MAX_SIZE:
            fix = EDITED if stored else ("make the layer (its units, filters or kernel) smaller, then save the model "
                                         "again")
            raise a.fail(f"a weight of shape {shape}, {math.prod(shape):,} values, is larger than the {MAX_SIZE:,} "
                         f"neuralab allows in one weight; {fix}")
    values = math.prod(d or 1 for d in out)  # a size left free is checked once known (with_input)
    if values > MAX_ACTIVATION:  # a few bytes of config (ZeroPadding2D(30000)) would ask gigabytes of every run
        smaller = "the model's input shape" if cls == "InputLayer" else "the layer (its padding, size or units)"
        fix = EDITED if stored else f"make {smaller} smaller, then save the model again"
        raise a.fail(f"outputs {[None, *out]}, {values:,} values an input, more than the {MAX_ACTIVATION:,} "
                     f"neuralab allows; {fix}")
    if weights and config.get("trainable", True) is False:
        a.keep("trainable", False)  # frozen in Keras (fine-tuning): its weights stay, BatchNormalization infers
    return {"name": name, "class": cls, "inputs": inputs, "args": a.used,
            "input_shapes": [[None, *s] for s in shapes], "output_shape": [None, *out],
            "weights": [[n, s] for n, s in weights]}


def _where(source: str, name, cls) -> str:
    # a saved custom layer whose get_config() leaves out its name has none in the file
    return f"{source}: layer {name!r} ({cls})" if name is not None else f"{source}: an unnamed {cls} layer"


# Keras's quantization modes (keras.dtype_policies.QUANTIZATION_MODES), which a quantized layer's
# dtype policy names: {"class_name": "QuantizedDTypePolicy", "config": {"mode": "int8", ...}}, or
# "int8_from_float32" in Keras 3's first quantizing versions
QUANTIZED = ("int8", "int4", "float8", "gptq", "awq")


def _policy(config: dict) -> tuple[str | None, dict]:
    """A layer's dtype policy: its name ("float16", "mixed_float16") and its config. Keras 3 writes
    {"class_name": "DTypePolicy", "config": {"name": ...}}; TF-Keras 2 a name, or its Policy so."""
    policy = config.get("dtype")
    inner = policy.get("config") if isinstance(policy, dict) and isinstance(policy.get("config"), dict) else {}
    name = inner.get("name") if isinstance(policy, dict) else policy
    return (name if isinstance(name, str) else None), inner


def quantized(config: dict) -> str | None:
    """The quantization mode of a layer's Keras config ("int8"), where model.quantize() made it so."""
    name, inner = _policy(config)
    if isinstance(inner.get("mode"), str):
        return inner["mode"]
    if name is not None and name.startswith(tuple(f"{m}_from_" for m in QUANTIZED)):
        return name.partition("_from_")[0]
    setting = config.get("quantization_config")
    if isinstance(setting, dict):  # written beside the policy (Int8QuantizationConfig, GPTQConfig, ...)
        kind = str(setting.get("class_name", "")).lower()
        return next((m for m in QUANTIZED if kind.startswith(m)), "quantized")
    return None


def dtype_policies(config: dict) -> dict[str, str]:
    """Each layer's Keras dtype policy where it is not float32, by the layer's name: "float16"
    and "bfloat16" keep 16-bit weights, "mixed_float16" and "mixed_bfloat16" compute in 16 bits
    on float32 weights. neuralab computes every layer in float32, from weights cast to it."""
    found = {}
    for cfg in _layer_configs(config.get("config", {}).get("layers") if isinstance(config.get("config"), dict) else None):
        name = _policy(cfg)[0]
        if name not in (None, "float32"):
            found.setdefault(cfg["name"], name)
    return found


def _layer_configs(tree):
    """Every layer's config in a model's config ``tree``, in the file's order: dicts with a
    name, wherever they nest (blocks, Bidirectional). A stack, not recursion, as in _foreign."""
    todo = [tree]
    while todo:
        x = todo.pop()
        if isinstance(x, list):
            todo.extend(reversed(x))
        elif isinstance(x, dict):
            cfg = x.get("config")
            if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
                yield cfg
            todo.extend(reversed(list(x.values())))


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
                history = x["config"].get("keras_history") if isinstance(x.get("config"), dict) else None
                found.append(tuple(history) if isinstance(history, list) else ())
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
        if len(history) < 3 or not isinstance(history[0], str):
            raise NeuralabError(f"{source}: layer {name!r} has a malformed input (keras_history {list(history)!r}); "
                                "the file is damaged, save the model again")
        if history[1:3] != (0, 0):
            raise NeuralabError(f"{source}: layer {name!r} takes a second output or a second call of "
                                f"{history[0]!r}; neuralab converts layers called once, with one output")
    return [h[0] for h in found]


def from_config(config: dict, source: str, keras_version: str = "", live: bool = False) -> dict:
    """The spec of a saved Keras model's config (the JSON in a .keras file or an .h5's
    model_config). Refuses by name any layer it cannot convert; nothing is executed. ``live``:
    the config of a model object in the caller's own process (read_live), whose functions (a
    lambda regularizer) already run there and reach no loader, so they are not refused as code."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise NeuralabError(f"{source}: the model config is not a Keras model; save the model with model.save()")
    cls, body = config.get("class_name"), config["config"]
    if not _builtin(config):
        raise NeuralabError(f"{source}: the model is a custom class {config.get('registered_name') or cls!r} "
                            "(a subclassed model's architecture is the Python code of its call(), which neuralab does not "
                            "convert); rebuild it as a Sequential or functional model")
    raw_layers = body.get("layers")
    if not isinstance(raw_layers, list) or not all(isinstance(r, dict) for r in raw_layers):
        raise NeuralabError(f"{source}: the {cls} config has no list of layers; neuralab converts Sequential and "
                            "functional models (a subclassed model's architecture is Python code, which it never runs)")
    for r in raw_layers:
        _refuse_custom(source, r, live)
    _refuse_foreign(source, [(k, v) for k, v in _fields(config) if k != "layers"], live)  # compile_config's loss
    legacy = keras_version.startswith(("1.", "2."))
    if cls == "Sequential":
        layers, inputs, output = _sequential(source, body, config, raw_layers)
    elif cls in ("Functional", "Model"):
        layers, inputs, output = _functional(source, body, raw_layers)
    else:
        raise NeuralabError(f"{source}: the model is a {cls!r}; neuralab converts Sequential and functional models")
    layers, output, blocks = _inline(source, layers, output, live)
    if len(layers) > MAX_LAYERS:
        raise NeuralabError(f"{source}: the model has {len(layers):,} layers, more than the {MAX_LAYERS:,} "
                            "neuralab converts; build the model with fewer layers")
    order = _ordered(source, layers, inputs, output)
    used = set(order)
    unused = [n for n in layers if n not in used]
    if unused:
        raise NeuralabError(f"{source}: layer {unused[0]!r} does not lead to the model's output; "
                            "neuralab converts models whose every layer does")
    entries: dict[str, dict] = {}
    for name in order:
        cls, inbound, cfg, raw = layers[name]
        shapes = [tuple(entries[i]["output_shape"][1:]) for i in inbound]
        if cls == "BatchNormalization":  # TF-Keras 2's fused kernel runs on images: see _batch_norm
            fused = legacy and cfg.get("fused") is not False and [len(s) for s in shapes] == [3]
            cfg = {**cfg, "unbiased_moving_variance": fused}
        e = entries[name] = _entry(name, cls, inbound, cfg, shapes, _where(source, name, cls))
        takes = e["input_shapes"]
        want = e["output_shape"] if cls == "InputLayer" else takes[0] if len(takes) == 1 else takes
        _keras_shapes(_where(source, name, cls), raw, raw.get("config", cfg), want)
        for key in ("layer", "backward_layer") if cls == "Bidirectional" else ():  # Keras builds them too
            if isinstance(cfg.get(key), dict):
                _keras_shapes(_where(source, name, cls), cfg[key], cfg[key].get("config") or {}, want)
    for name, (raws, inbound, inside) in blocks.items():
        for n in inside:
            if entries[n]["weights"]:  # the file keeps them under the block, where the readers do not look
                raise NeuralabError(f"{_where(source, n, entries[n]['class'])}: a layer with weights inside the nested "
                                    f"model {name!r}; neuralab converts nested Sequential blocks without weights "
                                    "(data augmentation, say): put its layers in the model itself")
        for raw in raws:  # the block and its InputLayer: the shapes Keras's loader would build them from
            _keras_shapes(_where(source, name, raw.get("class_name")), raw, raw["config"],
                          entries[inbound[0]]["output_shape"])
    _keras_shapes(f"{source}: the model", config, body, entries[inputs[0]]["output_shape"])
    return {"format": FORMAT, "keras_version": keras_version, "output": output, "layers": list(entries.values())}


def _keras_shapes(where: str, obj: dict, config: dict, want: list) -> None:
    """Keras's own loader (the import's conversion check) builds each layer from shapes that
    the file repeats and neuralab does not use (build_config, input_shape, ...): each must be
    the shape neuralab computed, ``want``, or Keras would allocate whatever it says."""
    build = obj.get("build_config")
    if build is not None and not isinstance(build, dict):
        raise NeuralabError(f"{where}: build_config={str(build)[:60]!r} is not an object; the file is damaged")
    build = build or {}
    batched = {f"build_config.{k}": build.get(k) for k in ("input_shape", "shapes_dict")}
    batched.update((k, config.get(k)) for k in ("batch_shape", "batch_input_shape", "build_input_shape"))
    dim = config.get("input_dim")
    unbatched = {"shape": config.get("shape"), "input_shape": config.get("input_shape"),
                 "input_dim": None if dim is None else [dim]}
    for key, v in {**batched, **unbatched}.items():
        shape = [None, *v] if key in unbatched and isinstance(v, list) else v
        if v is not None and not _fits(shape, want):
            raise NeuralabError(f"{where}: {key}={json.dumps(v)[:60]} differs from the input shape "
                                f"{json.dumps(want)[:60]} that the layers compute; the config was edited, "
                                "save the model again")


def _fits(v, want: list) -> bool:
    """Whether Keras's shape ``v`` is ``want`` (with any batch size), or for a layer taking
    several inputs, one such shape per input."""
    if not isinstance(v, list) or len(v) != len(want):
        return False
    if want and isinstance(want[0], list):
        return all(_fits(a, b) for a, b in zip(v, want))
    return (v[0] is None or _size(v[0])) and json.dumps(v[1:]) == json.dumps(list(want[1:]))


def _size(d) -> bool:
    return type(d) is int and 1 <= d <= MAX_SIZE


# Keras's public modules, which Keras writes for every object it exports (keras.layers.Dense,
# keras.initializers.GlorotUniform, keras.optimizers.schedules.ExponentialDecay, keras.DTypePolicy);
# TF-Keras 2's under tf_keras as well
_PUBLIC = {"layers", "initializers", "regularizers", "constraints", "activations", "optimizers", "losses", "metrics",
           "dtype_policies", "mixed_precision", "quantizers", "ops", "models", "random"}
# Keras's own classes that it exports under no public name, so that its saving writes their
# module: the functional model (TF-Keras 2's engine), and the PyTorch backend's optimizers
# (compile_config's Adam, under registered_name "Adam")
_INTERNAL = re.compile(r"(tf_)?keras(\.src)?\.(models|engine)\.(functional|sequential)"
                       r"|keras\.src\.backend\.torch\.optimizers\.torch_[a-z_]+")
# What Keras's loader turns into Python code (python_utils.func_load): a Lambda layer's
# function, or any function written as {"class_name": "__lambda__", "config": {"code": ...}};
# and the other layers that only its safe mode keeps from running what they load: a
# TorchModuleWrapper unpickles its module (torch.load), a TFSMLayer loads a SavedModel's graph
_CODE = {"Lambda": "a Lambda layer", "__lambda__": "a marshalled function",
         "TorchModuleWrapper": "a pickled PyTorch module", "TFSMLayer": "a TensorFlow SavedModel's graph"}


def _code(obj: dict) -> str | None:
    """What in ``obj`` Keras's loader would make Python code of ("a Lambda layer"), or None."""
    cls = obj.get("class_name")
    return _CODE.get(cls) if isinstance(cls, str) else None


def _builtin(obj: dict) -> bool:
    """Keras's own class: from one of Keras's public modules or the few internal ones its saving
    writes, or (TF-Keras 2's legacy configs) with no module and no registered name; Keras writes a
    user's class with its module or its registered name. Any other module (``keras.src.utils``,
    say) is one that Keras's loader would import for an object no model of neuralab's holds."""
    module, registered = obj.get("module"), obj.get("registered_name")
    if module is None:
        return registered is None
    parts = str(module).split(".")
    public = parts[0] in ("keras", "tf_keras") and (len(parts) == 1 or parts[1] in _PUBLIC) and "src" not in parts
    return (public or bool(_INTERNAL.fullmatch(str(module)))) and registered in (None, obj.get("class_name"))


# Keras's public modules whose functions a model names: a loss, a metric, an activation, and what
# a layer's initializer, regularizer or constraint may be
_FUNCTIONS = {"losses", "metrics", "activations", "initializers", "regularizers", "constraints"}


def _function(obj: dict) -> bool:
    """A function that Keras looks up by its name: one of Keras's own that a model names
    (loss=keras.losses.mse is {"module": "keras.losses", "class_name": "function", "config": "mse"}),
    or one written with module "builtins" (or none), as Keras writes a function of its own or a
    user's by name alone. Not a function of any other module (keras.models.load_model, keras.ops's),
    which no model's field holds."""
    if obj.get("class_name") != "function" or not isinstance(obj.get("config"), str):
        return False
    module = obj.get("module")
    if module is None or module == "builtins":
        return True
    parts = str(module).split(".")
    return len(parts) == 2 and parts[0] in ("keras", "tf_keras") and parts[1] in _FUNCTIONS


def _model_file(module) -> str | None:
    """The name of the file that defined a class of ``module``, where that module was run in
    this process (the learner's model file, which neuralab runs under a name of its own, or a
    file it imports); else None: a saved model names a module no code of which ran."""
    import sys

    file = getattr(sys.modules.get(str(module)), "__file__", None)
    return Path(file).name if file else None


def _refuse_custom(source: str, r: dict, live: bool = False) -> None:
    cls = r.get("class_name")
    name = r.get("config", {}).get("name", r.get("name")) if isinstance(r.get("config"), dict) else r.get("name")
    if not _builtin(r) or not isinstance(cls, str) or not isinstance(r.get("config"), dict):
        where, file = _where(source, name, r.get("registered_name") or cls), _model_file(r.get("module"))
        if file is not None:  # the learner's class, in the file neuralab ran for its model
            raise NeuralabError(f"{where}: a custom layer (class {cls} in {file}), which neuralab does not convert: "
                                "it converts Keras's own layers, not a layer's Python code; build the model from "
                                f"supported layers: {', '.join(supported_layers())}")
        origin = f" from {r['module']!r}" if r.get("module") else ""
        raise NeuralabError(f"{where}: a custom layer{origin}, whose code neuralab never runs; supported layers: "
                            f"{', '.join(supported_layers())}")
    if cls in _CODE:  # refused as a layer, before its function is met as a field
        why = REFUSED.get(cls, f"it holds Python code ({_CODE[cls]}), and neuralab never runs code from a model file")
        raise NeuralabError(f"{_where(source, name, cls)}: {why}; supported layers: {', '.join(supported_layers())}")
    _refuse_foreign(_where(source, name, cls), _fields(r), live)


def _fields(obj: dict) -> list[tuple[str, object]]:
    """An object's config and the other fields Keras writes beside it (a layer's inbound_nodes and
    build_config, a model's compile_config), as (name, value)."""
    return [*obj["config"].items(), *((k, v) for k, v in obj.items()
                                      if k not in ("config", "module", "class_name", "registered_name"))]


def _refuse_foreign(where: str, fields: list[tuple[str, object]], live: bool = False) -> None:
    """Refuse Python code or an object that is not Keras's own nested anywhere in ``fields`` (a
    layer's config, the model's compile_config): neuralab ignores initializers, regularizers,
    constraints and the like, but import's check hands the file to Keras's loader. Code in a
    ``live`` model's config is the caller's own, already running: not refused."""
    found = _foreign(fields, code=not live)
    if found is None:
        return
    key, obj = found
    what = obj.get("registered_name") or obj.get("class_name")
    if obj.get("class_name") == "function" and isinstance(obj.get("config"), str):
        what = obj["config"]  # Keras writes a function by its name there
    fix = f"{'compile' if key.startswith(('compile_config', 'training_config')) else 'build'} the model without it"
    if _code(obj):
        raise NeuralabError(f"{where}: {key} holds Python code ({_code(obj)}), which neuralab never runs nor hands "
                            f"to Keras: {fix} and save it again")
    raise NeuralabError(f"{where}: {key} is {str(what)[:60]!r} from module {str(obj.get('module'))[:60]!r}, not one "
                        f"of Keras's own objects; neuralab never loads code a model names: {fix} and save it again")


def refuse_foreign(source: str, field: str, value) -> None:
    """Refuse Python code, or an object not Keras's own, anywhere in a file's ``field`` outside
    its model config (a legacy .h5's training_config), as ``from_config`` refuses them in it."""
    _refuse_foreign(source, [(field, value)])


def _foreign(fields: list[tuple[str, object]], code: bool = True) -> tuple[str, dict] | None:
    """The first object nested in ``fields`` (a layer's config and its call's arguments) that
    Keras's loader would make code of (a Lambda, a marshalled __lambda__ function) or that is not
    Keras's own, as (its field, the object): an initializer, regularizer, constraint, dtype policy,
    loss or optimizer from another module; with ``code`` False, objects Keras would make code of
    pass (their contents are the code itself). Keras writes a function by name (``_function``);
    the readers judge those they use (the activations). A stack, not recursion: a file can nest
    its JSON deeper than Python's recursion limit."""
    todo = fields[::-1]  # popped from the end: the file's order
    while todo:
        key, x = todo.pop()
        if isinstance(x, dict):
            if _code(x):
                if code:
                    return key, x
                continue
            own = _function(x) if x.get("class_name") == "function" else _builtin(x)
            if ("module" in x or "registered_name" in x) and not own:
                return key, x
            todo.extend((f"{key}.{k}", v) for k, v in reversed(x.items()))
        elif isinstance(x, list):
            todo.extend((f"{key}[{i}]", v) for i, v in reversed(list(enumerate(x))))
    return None


def _sequential(source: str, body: dict, config: dict, raw: list[dict]):
    layers: dict[str, tuple] = {}
    if raw and raw[0].get("class_name") == "InputLayer":
        first, raw = raw[0], raw[1:]
        input_name, input_cfg = first["config"].get("name", "input_layer"), first["config"]
    else:  # the input shape sits on the first layer (TF-Keras 2) or on the model (Keras 3, built)
        cfg = raw[0]["config"] if raw else {}
        build = config.get("build_config") if isinstance(config.get("build_config"), dict) else {}
        shape = (cfg.get("batch_input_shape") or cfg.get("batch_shape") or body.get("build_input_shape")
                 or build.get("input_shape"))
        if shape is None:
            raise NeuralabError(f"{source}: the model has no input shape; give it one (keras.Input(shape=...) "
                                "as its first layer, or input_shape= on the first layer)")
        first, input_name, input_cfg = {}, "input_layer", {"batch_shape": shape}
    if not isinstance(input_name, str):
        raise NeuralabError(f"{source}: layer names must be distinct strings, got {input_name!r}")
    layers[input_name] = ("InputLayer", [], input_cfg, first)
    previous = input_name
    for r in raw:
        name = r["config"].get("name")
        if not isinstance(name, str) or name in layers:
            raise NeuralabError(f"{source}: layer names must be distinct strings, got {name!r}")
        layers[name] = (r["class_name"], [previous], r["config"], r)
        previous = name
    return layers, [input_name], previous


def _inline(source: str, layers: dict[str, tuple], output: str, live: bool = False):
    """Nested Sequential models (a data augmentation block, typically) spliced in: their layers
    take the block's place, its InputLayer dropped. Returns the layers, the output's name and,
    per block, its raw configs (the block's and its InputLayer's), its input and its layers."""
    out: dict[str, tuple] = {}
    renamed: dict[str, str] = {}  # a block -> its last layer, which the layers after it read
    blocks: dict[str, tuple] = {}
    for name, (cls, inbound, cfg, raw) in layers.items():
        inbound = [renamed.get(i, i) for i in inbound]
        if cls != "Sequential" or not isinstance(cfg.get("layers"), list):
            out[name] = (cls, inbound, cfg, raw)
            continue
        inner = cfg["layers"]
        for r in inner:
            _refuse_custom(source, r, live)
        first = inner[:1] if inner and inner[0]["class_name"] == "InputLayer" else []
        previous, inside = inbound, []
        for r in inner[len(first):]:
            n = r["config"].get("name")
            if not isinstance(n, str) or n in layers or n in out:
                raise NeuralabError(f"{source}: layer names must be distinct strings, got {n!r}")
            out[n] = (r["class_name"], previous, r["config"], r)
            previous = [n]
            inside.append(n)
        renamed[name] = previous[0]  # an empty block passes its input on
        blocks[name] = ([raw, *first], inbound, inside)
    return out, renamed.get(output, output), blocks


def _functional(source: str, body: dict, raw: list[dict]):
    layers: dict[str, tuple] = {}
    for r in raw:
        name = r.get("name", r["config"].get("name"))
        nodes = r.get("inbound_nodes") or []
        if not isinstance(name, str) or name in layers:
            raise NeuralabError(f"{source}: layer names must be distinct strings, got {name!r}")
        if not isinstance(nodes, list):
            raise NeuralabError(f"{_where(source, name, r['class_name'])}: inbound_nodes={str(nodes)[:60]!r} is not "
                                "a list; the file is damaged")
        if len(nodes) > 1:
            raise NeuralabError(f"{_where(source, name, r['class_name'])}: the layer is called {len(nodes)} times "
                                "(shared weights); neuralab converts layers called once")
        inbound = _history(source, name, nodes[0]) if nodes else []
        layers[name] = (r["class_name"], inbound, r["config"], r)

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


def check(spec, source: str = "spec", field: str = "spec") -> dict:
    """Check a stored spec (``field`` of ``source``) as thoroughly as a Keras file: every
    field's type first, then every layer read again from its args and its shapes recomputed;
    returns the spec, or raises NeuralabError naming the field or the layer."""
    _check_types(spec, source, field)
    layers = {e["name"]: (e["class"], e["inputs"], e["args"]) for e in spec["layers"]}
    inputs = [n for n, (_, i, _) in layers.items() if not i]
    if len(inputs) != 1 or layers[inputs[0]][0] != "InputLayer" or spec["output"] not in layers:
        raise NeuralabError(f"{source}: field '{field}': a spec has one InputLayer and names its output layer")
    if _ordered(source, layers, inputs, spec["output"]) != list(layers):
        raise NeuralabError(f"{source}: field '{field}' lists layers that the output does not use")
    for e, redone in zip(spec["layers"], _recomputed(spec, source, stored=True)):
        # As JSON, so that 2.0 or true does not pass for 2 (== would let them through to PyTorch).
        if any(json.dumps(e[k], sort_keys=True) != json.dumps(redone[k], sort_keys=True)
               for k in ("args", "input_shapes", "output_shape", "weights")):
            raise NeuralabError(f"{_where(source, e['name'], e['class'])}: the stored shapes or arguments do not "
                                "match the layer; convert the Keras model again")
    return spec


def with_input(spec: dict, shape, source: str = "spec") -> dict:
    """A checked ``spec`` on inputs of ``shape`` (Keras's, without the batch), for a model
    leaving sizes free (None): every layer's shapes recomputed, so that a size too small for
    a layer is refused naming it."""
    return {**spec, "layers": _recomputed(spec, source, [None, *shape])}


def _recomputed(spec: dict, source: str, batch_shape: list | None = None, stored: bool = False) -> list[dict]:
    """The layers of a type-checked spec read again from their args (the input's batch_shape
    replaced when given); ``stored``: a spec as a run keeps it, which no refusal tells to save again."""
    done: dict[str, dict] = {}
    for e in spec["layers"]:
        args = {**e["args"], "batch_shape": batch_shape} if batch_shape and e["class"] == "InputLayer" else e["args"]
        shapes = [tuple(done[i]["output_shape"][1:]) for i in e["inputs"]]
        where = _where(source, e["name"], e["class"])
        done[e["name"]] = _entry(e["name"], e["class"], e["inputs"], args, shapes, where, stored)
    return list(done.values())


def _shape(v) -> bool:
    """A Keras shape as a spec stores it: [null, size or null, ...]."""
    return isinstance(v, list) and 2 <= len(v) <= 4 and v[0] is None and all(d is None or _size(d) for d in v[1:])


def _weights(v) -> bool:
    return isinstance(v, list) and all(isinstance(w, list) and len(w) == 2 and isinstance(w[0], str)
                                       and isinstance(w[1], list) and all(_size(d) for d in w[1]) for w in v)


_FIELDS = (  # a spec layer's fields: (key, whether a value is well-formed, what it must be)
    ("name", lambda v: isinstance(v, str), "a layer name"),
    ("class", lambda v: isinstance(v, str), "a Keras class name"),
    ("inputs", lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v), "a list of layer names"),
    ("args", lambda v: isinstance(v, dict), "an object of the layer's arguments"),
    ("input_shapes", lambda v: isinstance(v, list) and all(_shape(s) for s in v), "a list of shapes [null, ...]"),
    ("output_shape", _shape, "a shape [null, ...]"),
    ("weights", _weights, "a list of [name, shape]"),
)


def _check_types(spec, source: str, field: str) -> None:
    """Every field of a stored spec has its type, before any of it is used (as a key, say)."""
    def bad(key: str, what: str) -> NeuralabError:
        return NeuralabError(f"{source}: field '{field}{key}' must be {what}; convert the Keras model again")

    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise bad("", f"a neuralab Keras spec (format {FORMAT})")
    if not isinstance(spec.get("keras_version", ""), str):
        raise bad(".keras_version", "a version string")
    if not isinstance(spec.get("output"), str):
        raise bad(".output", "the name of the output layer")
    if not isinstance(spec.get("layers"), list) or not 1 <= len(spec["layers"]) <= MAX_LAYERS:
        raise bad(".layers", f"a list of at most {MAX_LAYERS:,} layers")
    names = set()
    for i, e in enumerate(spec["layers"]):
        if not isinstance(e, dict):
            raise bad(f".layers[{i}]", "an object")
        for key, ok, what in _FIELDS:
            if not ok(e.get(key)):
                raise bad(f".layers[{i}].{key}", what)
        if e["name"] in names:
            raise bad(f".layers[{i}].name", f"distinct; {e['name']!r} names two layers")
        names.add(e["name"])


# Keras's default initialiser of each *_initializer field, the ones neuralab starts training from (build.keras_init)
_INITIALIZERS = {"kernel": "glorotuniform", "depthwise": "glorotuniform", "pointwise": "glorotuniform",
                 "recurrent": "orthogonal", "bias": "zeros", "beta": "zeros", "moving_mean": "zeros",
                 "gamma": "ones", "moving_variance": "ones"}


def training_only(config: dict) -> list[str]:
    """What a Keras model's config (as ``from_config`` accepted it) sets for training that a spec
    does not keep: regularizers, constraints and initializers other than Keras's defaults, one
    "layer 'conv2d': kernel_regularizer L2(l2=0.001)" each. neuralab's trainer trains without
    them, so that a caller training the model can say so (Keras's own fit, RunLogger's route, keeps them)."""
    return [f"layer {cfg['name']!r}: {key} {_described(v)}" for cfg in _layer_configs(config)
            for key, v in cfg.items() if _trains_otherwise(key, v)]


def _trains_otherwise(key: str, v) -> bool:
    if v is None or not key.endswith(("_regularizer", "_constraint", "_initializer")):
        return False
    if not key.endswith("_initializer"):
        return True
    name = v.get("class_name") if isinstance(v, dict) else v
    return str(name).replace("_", "").lower() != _INITIALIZERS.get(key[: -len("_initializer")])


def _described(v) -> str:
    """Keras's config of an object as it was written: L2(l2=0.001); a name as it is."""
    if not isinstance(v, dict):
        return str(v)[:60]
    args = v.get("config") if isinstance(v.get("config"), dict) else {}
    shown = ", ".join(f"{k}={f'{a:.7g}' if isinstance(a, float) else a}" for k, a in args.items()
                      if k != "seed" and a is not None)
    return f"{str(v.get('class_name'))[:40]}({shown[:80]})"


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


def refuse_vectors(spec: dict, source: str) -> None:
    """Refuse a model taking vectors where images are wanted, saying how to make it take them:
    Keras's MNIST MLP, Dense(512, input_shape=(784,)) fitted on x.reshape(-1, 784). Flatten()
    after an image input gives its first Dense the same vector, so its weights stay as they are."""
    first = spec["layers"][0]["output_shape"][1:]
    if len(first) != 1:
        return
    side = math.isqrt(first[0] or 0)
    hwc = f"({side}, {side}, 1)" if side and side * side == first[0] else "(height, width, channels)"
    raise NeuralabError(f"{source}: the model takes vectors of {first[0] or 'any number of'} values, not images; "
                        f"for images flattened by hand, start it with keras.Input({hwc}) and Flatten() before "
                        "its first Dense (whose weights stay the same)")


def ends_in_softmax(spec: dict) -> bool:
    """Whether the model's last operation is a softmax over classes: a trainer then trains on the
    logits before it (``build(spec, logits=True)``) with cross-entropy, which is exact and
    more stable than the log of Keras's probabilities."""
    last = {e["name"]: e for e in spec["layers"]}[spec["output"]]
    return last["class"] == "Softmax" or last["args"].get("activation") == "softmax"


def loss_name(loss) -> tuple[str | None, dict]:
    """compile()'s loss, a name or Keras's config of a loss object, as its name in lower case
    without underscores ("binarycrossentropy" for "binary_crossentropy" and BinaryCrossentropy)
    and the object's config ({} for a name; None and {} when not compiled). A loss function
    (``loss=keras.losses.binary_crossentropy``) Keras writes as {"class_name": "function",
    "config": its name}; a list of one loss (``loss=["binary_crossentropy"]``) is that loss."""
    if isinstance(loss, list) and len(loss) == 1:
        loss = loss[0]
    name, config = (loss.get("class_name"), loss.get("config")) if isinstance(loss, dict) else (loss, None)
    if name == "function" and isinstance(config, str):
        name, config = config, None
    return (name.replace("_", "").lower() if isinstance(name, str) else None), (config if isinstance(config, dict) else {})


def binary_classifier(spec: dict, loss, name: str) -> bool:
    """Whether the model is a 2-class classifier written Keras's way, one unit scoring class 1
    (Keras's label 1): a (None, 1) output ending in a sigmoid, compiled with binary cross-entropy,
    or a linear one compiled with BinaryCrossentropy(from_logits=True), the same model in logits
    form; either one not compiled (a run's model.json keeps no loss), as a linear Dense(K) gives
    the logits of K classes. ``loss`` is compile()'s, a name or Keras's config of a loss object.
    Its unit's pre-activation z gives the logits [0, z] (``build(spec, logits=True)``): their
    softmax is [1 - sigmoid(z), sigmoid(z)], their cross-entropy the binary one on z. A
    (None, 1) output that is no such classifier (a regression loss, say) is refused naming ``name``."""
    last = {e["name"]: e for e in spec["layers"]}[spec["output"]]
    if list(last["output_shape"][1:]) != [1]:
        return False
    key, config = loss_name(loss)
    binary = key == "binarycrossentropy"
    from_logits = binary and config.get("from_logits") is True
    act = last["args"].get("activation", "linear")
    if act in ("sigmoid", "linear") and (key is None or binary and from_logits == (act == "linear")):
        return True
    if not binary:
        how = f"compiled with loss {key!r}" if key is not None else f"ending in activation {act!r}"
    else:
        how = f"ending in {act!r} and compiled with BinaryCrossentropy(from_logits={from_logits})"
    raise NeuralabError(f"{name}: the model outputs (None, 1), {how}: not a classifier; a 2-class classifier "
                        "ends in Dense(1, activation='sigmoid') with loss='binary_crossentropy' (or in Dense(1) "
                        "with BinaryCrossentropy(from_logits=True)), one of K classes in "
                        "Dense(K, activation='softmax')")


def rescales(spec: dict) -> bool:
    """Whether the model takes raw pixels: its first computation is a Rescaling layer, after
    any data augmentation (which Keras's predict skips, and which works on pixels as they come),
    that brings 0-255 to a few units at most (1/255, 1/127.5): Rescaling(2, offset=-1) takes
    pixels already in [0, 1] to [-1, 1]."""
    return raw_pixel_rescaling(spec) is not None


def raw_pixel_rescaling(spec: dict) -> dict | None:
    """The spec's entry of the Rescaling layer that makes the model take raw pixels (``rescales``),
    None where there is none."""
    for e in spec["layers"][1:]:
        if e["class"] not in AUGMENTATION:
            if e["class"] != "Rescaling":
                return None
            scale = e.get("args", {}).get("scale", 1.0)
            return e if max(abs(v) for v in (scale if isinstance(scale, list) else [scale])) * 255 <= 4 else None
    return None


def pixel_scale(spec: dict) -> float:
    """What an image model's inputs are by default, pixels x this: 1 under a Rescaling layer
    (``rescales``), else the workshop's 1/255."""
    return 1.0 if rescales(spec) else 1 / 255


def class_scores(spec: dict, loss=None) -> bool:
    """Whether the model gives class scores, (None, K) for K of 2 or more: it ends in a softmax,
    or compile() was given a categorical cross-entropy (``loss``, a name or Keras's config of a
    loss object); or one unit compiled with binary cross-entropy. A forecast (Dense(horizon),
    a regression loss) gives none."""
    out = {e["name"]: e for e in spec["layers"]}[spec["output"]]["output_shape"]
    key = loss_name(loss)[0] or ""
    scores = ends_in_softmax(spec) or "categoricalcrossentropy" in key
    return len(out) == 2 and ((out[1] or 0) >= 2 and scores or out[1] == 1 and key == "binarycrossentropy")


def grey_images(spec: dict, loss=None) -> bool:
    """Whether a model taking (H, W) inputs classifies grey images given without their channel
    axis: TensorFlow's first tutorial (``Flatten(input_shape=(28, 28))``, or a Reshape to
    (28, 28, 1) first), and Keras's LSTM on MNIST (``LSTM(64, input_shape=(28, 28))``, each
    picture's rows its time steps). Both sizes are fixed and it gives class scores
    (``class_scores``). A sequence model forecasting gives none: (steps, features) into
    Dense(horizon), with a regression loss."""
    first = spec["layers"][0]["output_shape"]
    return len(first) == 3 and None not in first[1:] and class_scores(spec, loss)


def refuse_free_rows(spec: dict, loss, source: str) -> None:
    """Refuse a model giving class scores on (H, W) inputs with a size left free (an LSTM on
    rows of any number, ``input_shape=(None, 28)``), saying how to make it take pictures, which
    have both: ``grey_images`` takes it where both are fixed."""
    first = spec["layers"][0]["output_shape"]
    if len(first) == 3 and None in first[1:] and class_scores(spec, loss):
        raise NeuralabError(f"{source}: the model takes ({', '.join(map(str, first))}) inputs and gives class "
                            "scores; as an image classifier it reads grey pictures of a fixed height x width, "
                            "each picture's rows its steps: start it with keras.Input((height, width, 1)) and "
                            "Reshape((height, width))")


def with_channel(spec: dict) -> dict:
    """A model taking (H, W) as one taking (H, W, 1) images (see ``grey_images``): a Reshape to
    (H, W) after the input, named ``<input>_channel``, the rest as it was."""
    first, rest = spec["layers"][0], spec["layers"][1:]
    h, w = first["output_shape"][1:]
    name = f"{first['name']}_channel"
    while any(e["name"] == name for e in rest):
        name += "_"
    layers = [{**first, "args": {**first["args"], "batch_shape": [None, h, w, 1]}},
              {"name": name, "class": "Reshape", "inputs": [first["name"]], "args": {"target_shape": [h, w]}},
              *({**e, "inputs": [name if i == first["name"] else i for i in e["inputs"]]} for e in rest)]
    return {**spec, "layers": _recomputed({**spec, "layers": layers}, "spec")}
