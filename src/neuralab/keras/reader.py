"""Reading a Keras model without Keras: the JSON config and the HDF5 weights of a ``.keras``
file (a zip: config.json, metadata.json, model.weights.h5), of a legacy full-model ``.h5``
(TF-Keras 2's ``model.save("m.h5")``: a ``model_config`` attribute and a ``model_weights``
group), or of a live Keras 3 model (the only route that imports Keras).

Nothing in a file is executed or unpickled: configs are JSON and weights are HDF5 datasets,
each checked against the spec (count, shape, float type) and stored whole in the file before
it is read, and the weights the spec declares must fit in the file before anything is allocated;
a weight holding NaN or infinity (a fit that diverged) is refused. Weights Keras keeps in 16 bits
(a layer's dtype policy "float16" or "bfloat16") are read as float32, as every weight is.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from neuralab.errors import NeuralabError
from neuralab.keras import spec as specs
from neuralab.keras.layers import ALIASES

MAX_CONFIG = 64 * 2**20  # bytes of JSON; a real model's config takes a few KB
# Keras stores a .keras file's members uncompressed, and deflated float weights shrink little:
# a member expanding past this many times its stored bytes, beyond the floor, is a zip bomb
# (Keras's own loader refuses the same: saving_lib._reject_zip_extract_bomb)
MAX_EXPANSION, EXPANSION_FLOOR = 100, 256 * 2**20
ZIP_MAGIC, HDF5_MAGIC = b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"
HALF = ("float16", "bfloat16")  # dtype policies whose weights Keras keeps in 16 bits ("mixed_*": in float32)


@dataclass
class KerasModel:
    """A Keras model as neuralab keeps it: the spec and, per layer, Keras's weights by name."""

    spec: dict
    weights: dict[str, dict[str, np.ndarray]]
    # What the file says was given to compile() (optimizer, loss, metrics), as Keras 3 writes it:
    # a .keras file's compile_config; a legacy .h5's training_config, in the same shape
    compile: dict = field(default_factory=dict)
    # Regularizers, constraints and initializers the spec does not keep (spec.training_only)
    training_only: list[str] = field(default_factory=list)
    # Layers whose dtype policy is not float32, by name ("dense": "mixed_float16"; spec.dtype_policies):
    # Keras computes them in 16 bits where neuralab computes in float32
    dtypes: dict[str, str] = field(default_factory=dict)


def read(source, weights: bool = True) -> KerasModel:
    """Read a ``.keras`` file, a legacy full-model ``.h5`` file, or a live Keras 3 model.
    ``weights`` False: the architecture alone, its weights neither read nor checked (a summary
    of VGG16's 500 MB reads a few kilobytes)."""
    if not isinstance(source, (str, os.PathLike)):
        return read_live(source)
    path = Path(source)
    if path.is_dir():
        raise NeuralabError(f"{path}: a folder (a TensorFlow SavedModel?); give a .keras file "
                            "(model.save('model.keras')) or a full-model .h5")
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
    except FileNotFoundError:
        raise NeuralabError(f"{path}: file not found") from None
    except OSError as e:
        raise NeuralabError(f"{path}: cannot be read ({e.strerror})") from None
    if magic.startswith(ZIP_MAGIC):
        return _read_keras_zip(path, weights)
    if magic == HDF5_MAGIC:
        return _read_h5(path, weights)
    raise NeuralabError(f"{path}: neither a .keras file (zip) nor an HDF5 .h5 file; "
                        "save the model with model.save('model.keras')")


def _bytes_needed(spec: dict, dtypes: dict[str, str]) -> int:
    """Bytes the spec's weights take, the least that a file holding them must have: 2 a value in
    a layer whose dtype policy (``dtypes``, by layer) keeps 16-bit weights, float32's 4 elsewhere."""
    return sum((2 if dtypes.get(e["name"]) in HALF else 4) * int(np.prod(s)) for e in spec["layers"]
               for _, s in e["weights"])


# --- .keras -----------------------------------------------------------------------------------

def _read_keras_zip(path: Path, weights: bool = True) -> KerasModel:
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            _refuse_outside(path, z.namelist())
            if "config.json" not in names:
                if "model.weights.h5" in names or any(n.endswith(".h5") for n in names):
                    raise _weights_only(path)
                raise NeuralabError(f"{path}: a zip without config.json, not a .keras model file")
            config = _json(path, _member(z, path, "config.json").file_size, lambda: _read_member(z, path, "config.json"),
                           "config.json")
            meta = {}
            if "metadata.json" in names:
                meta = _json(path, _member(z, path, "metadata.json").file_size,
                             lambda: _read_member(z, path, "metadata.json"), "metadata.json")
            version = str(meta.get("keras_version", "")) if isinstance(meta, dict) else ""
            spec = specs.from_config(config, str(path), version)
            dtypes = specs.dtype_policies(config)
            if not weights:
                return KerasModel(spec, {}, _object(config.get("compile_config")), specs.training_only(config), dtypes)
            if "model.weights.h5" not in names:
                sharded = any(n.endswith(".weights.json") or n.startswith("model.weights") for n in names)
                raise NeuralabError(f"{path}: no model.weights.h5 in the archive" +
                                    ("; sharded weights are not read, save it as one file" if sharded else ""))
            info = _member(z, path, "model.weights.h5")
            if info.file_size > max(EXPANSION_FLOOR, MAX_EXPANSION * info.compress_size):
                raise NeuralabError(f"{path}: model.weights.h5 expands from {info.compress_size:,} bytes in the "
                                    f"archive to {info.file_size:,}, which no Keras model's weights do; the file "
                                    "is not a Keras model (a zip bomb)")
            if info.file_size < _bytes_needed(spec, dtypes):
                raise NeuralabError(f"{path}: model.weights.h5 is smaller than the weights the config declares; "
                                    "the file is truncated or its config was changed")
            # Generous: a file also holds the optimizer's state and HDF5's own records.
            if info.file_size > 16 * _bytes_needed(spec, dtypes) + 64 * 2**20:
                raise NeuralabError(f"{path}: model.weights.h5 declares {info.file_size:,} bytes, far more "
                                    "than the model's weights need; the file is not a Keras model")
            with tempfile.TemporaryDirectory(prefix="neuralab-keras-") as tmp:
                h5 = Path(tmp) / "model.weights.h5"
                with z.open(info) as src, open(h5, "wb") as dst:
                    shutil.copyfileobj(src, dst, 2**20)
                return KerasModel(spec, _weights_v3(path, h5, spec, dtypes), _object(config.get("compile_config")),
                                  specs.training_only(config), dtypes)
    except zipfile.BadZipFile as e:
        raise NeuralabError(f"{path}: the zip is damaged or truncated ({e}); save the model again") from None
    except (EOFError, zipfile.LargeZipFile, NotImplementedError) as e:  # the last: flags in a member's own header
        raise NeuralabError(f"{path}: the zip is damaged or truncated ({type(e).__name__}); save the model again") from None


def _refuse_outside(path: Path, names: list[str]) -> None:
    """An entry named absolute or through ``..`` is one Keras's model.save() never writes: the
    archive was made by other means, to reach outside the folder an unpacker writes into (a
    zip slip). neuralab reads its members by name and unpacks nothing, and Keras 3 skips such
    entries with a warning; the file is refused as not the model it claims to be."""
    for name in names:
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts:
            raise NeuralabError(f"{path}: the archive holds the entry {name[:200]!r}, a file Keras's model.save() "
                                "never writes (a path outside the archive's folder); save the model again")


def _member(z: zipfile.ZipFile, path: Path, name: str) -> zipfile.ZipInfo:
    """A member as Keras writes it: not encrypted, stored or deflated (zipfile would stop on
    a password, or on a method it lacks, before the file is refused by name)."""
    info = z.getinfo(name)
    if info.flag_bits & 0x1:
        raise NeuralabError(f"{path}: {name} in the archive is encrypted; save the model with model.save()")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise NeuralabError(f"{path}: {name} in the archive is compressed with method {info.compress_type}, which "
                            "Keras does not write; save the model with model.save()")
    return info


def _read_member(z: zipfile.ZipFile, path: Path, name: str) -> bytes:
    """A member's bytes, no more than its header declares: z.read() inflates the whole stream
    (up to 2 GB) before it cuts, whatever the header says."""
    info = z.getinfo(name)
    with z.open(info) as f:
        data = f.read(info.file_size + 1)
    if len(data) > info.file_size:
        raise NeuralabError(f"{path}: {name} in the archive holds more than the {info.file_size:,} bytes its header "
                            "declares; the file is damaged, save the model again")
    return data


def _json(path: Path, size: int, read, what: str):
    if size > MAX_CONFIG:
        raise NeuralabError(f"{path}: {what} declares {size:,} bytes, more than a model config takes")
    try:
        return json.loads(read())
    except (ValueError, RecursionError) as e:
        raise NeuralabError(f"{path}: {what} is not valid JSON ({str(e)[:80]}); the file is damaged") from None


def _snake(name: str) -> str:
    """Keras's to_snake_case: the .keras weights file names each layer after its class."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _weights_v3(path: Path, h5_path: Path, spec: dict, dtypes: dict[str, str]) -> dict:
    """Keras 3 (and TF-Keras 2.13+) store layer i's variables as layers/<class>[_k]/vars/<j>,
    <class> in snake case and numbered by class in the order the config lists the layers
    (a recurrent layer's under .../cell/vars, a Bidirectional's under its forward_layer, then
    its backward_layer)."""
    weights, used = {}, {}
    with _h5(h5_path, path) as h:
        for e in spec["layers"]:
            key = _snake(ALIASES.get(e["class"], e["class"]))
            used[key] = used.get(key, -1) + 1
            key = f"{key}_{used[key]}" if used[key] else key
            if not e["weights"]:
                continue
            group = _get(path, h, f"layers/{key}")
            if not isinstance(group, h5py.Group):
                raise NeuralabError(f"{path}: layer {e['name']!r} has no weights in the file (layers/{key})")
            found = [g for g in (_get(path, group, v) for v in ("vars", "cell/vars", "forward_layer/cell/vars",
                                                                "backward_layer/cell/vars")) if isinstance(g, h5py.Group)]
            named = [g.attrs.get("name") for g in found[:1] if "name" in g.attrs]
            if named and named[0] not in (e["name"], e["name"].encode()):
                raise NeuralabError(f"{path}: the weights at layers/{key} belong to {named[0]!r}, not "
                                    f"{e['name']!r}; the file's weights do not line up with its config")
            arrays = [_get(path, g, str(i)) for g in found for i in range(len(g))]
            weights[e["name"]] = _checked(path, e, arrays, dtypes.get(e["name"]))
    return weights


def _h5(h5_path: Path, path: Path):
    try:
        return h5py.File(h5_path, "r")
    except OSError:
        raise NeuralabError(f"{path}: the HDF5 data is damaged or truncated; save the model again") from None


def _get(path: Path, group: h5py.Group, name: str):
    """``group[name]`` (names joined by /), or None, through hard links only: a soft or external
    link could lead into another file, whose bytes would be read as weights."""
    node = group
    for part in name.split("/"):
        if part in ("", "."):
            continue
        link = node.get(part, getlink=True) if isinstance(node, h5py.Group) else None
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            raise NeuralabError(f"{path}: {node.name.rstrip('/')}/{part} is a link ({type(link).__name__}), not "
                                "data in the file; save the model with model.save()")
        node = node[part]
    return node


_FILTERS = {h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_FLETCHER32, h5py.h5z.FILTER_SZIP,
            h5py.h5z.FILTER_NBIT, h5py.h5z.FILTER_SCALEOFFSET, h5py.h5z.FILTER_LZF}  # HDF5's and h5py's own


def _in_file(path: Path, ds: h5py.Dataset) -> None:
    """A dataset whose bytes are in the file itself: HDF5 can keep them in other files (external
    storage, virtual datasets) or decode them with a plugin library, which would read any
    local file as weights, or load code."""
    plist = ds.id.get_create_plist()
    filters = {plist.get_filter(i)[0] for i in range(plist.get_nfilters())} - _FILTERS
    why = ("a virtual dataset" if ds.is_virtual else "stored in another file" if plist.get_external_count()
           else f"decoded by HDF5 filter {min(filters)}" if filters else None)
    if why:
        raise NeuralabError(f"{path}: the array {ds.name} is {why}, not plain data in the file; "
                            "save the model with model.save()")


def _checked(path: Path, e: dict, datasets: list, policy: str | None = None) -> dict[str, np.ndarray]:
    """Keras's arrays for one layer, each checked against the spec before it is read, as float32;
    ``policy``: the layer's dtype policy, "bfloat16" for weights h5py keeps as opaque 2-byte records."""
    expected = e["weights"]
    if len(datasets) != len(expected):
        raise NeuralabError(f"{path}: layer {e['name']!r} ({e['class']}) has {len(datasets)} weight arrays in the "
                            f"file, its config needs {len(expected)} ({', '.join(n for n, _ in expected)})")
    out = {}
    for ds, (name, shape) in zip(datasets, expected):
        bf16 = policy == "bfloat16" and isinstance(ds, h5py.Dataset) and ds.dtype.kind == "V" and ds.dtype.itemsize == 2
        if not isinstance(ds, h5py.Dataset) or not (ds.dtype.kind == "f" or bf16) or list(ds.shape) != list(shape):
            got = f"{ds.dtype} {list(ds.shape)}" if isinstance(ds, h5py.Dataset) else "not an array"
            raise NeuralabError(f"{path}: layer {e['name']!r} ({e['class']}): {name} should be float {list(shape)}, "
                                f"the file has {got}")
        _in_file(path, ds)
        _stored(path, e, name, ds)
        try:
            out[name] = _bfloat16(ds[()]) if bf16 else np.asarray(ds[()], dtype=np.float32)
        except (OSError, ValueError) as err:
            raise NeuralabError(f"{path}: layer {e['name']!r}: {name} cannot be read ({str(err)[:60]}); "
                                "the file is damaged or truncated") from None
        except MemoryError:
            raise NeuralabError(f"{path}: layer {e['name']!r}: {name} of shape {list(shape)} does not fit in this "
                                "machine's memory") from None
        if not np.isfinite(out[name]).all():  # Keras saves a diverged fit as it is; its outputs would be NaN
            raise NeuralabError(f"{path}: layer {e['name']!r}: {name} holds NaN or infinite values (the training "
                                "diverged); train it again with a lower learning rate, then save it")
    return out


def _bfloat16(raw) -> np.ndarray:
    """bfloat16 values, which Keras writes as opaque 2-byte records (h5py has no such type), as
    float32: a bfloat16 is the upper half of the float32 of the same value."""
    a = np.ascontiguousarray(raw)
    return (a.reshape(-1).view("<u2").astype(np.uint32) << 16).view(np.float32).reshape(a.shape)


def _stored(path: Path, e: dict, name: str, ds: h5py.Dataset) -> None:
    """Refuse an array whose bytes are not in the file: HDF5 fills chunks never written, and
    inflates compressed ones, so that a small (or sparse) file can hold gigabytes of weights.
    Keras writes every weight whole and uncompressed."""
    nbytes = ds.size * ds.dtype.itemsize
    least = nbytes // 100 if ds.id.get_create_plist().get_nfilters() else nbytes
    stored = ds.id.get_storage_size()
    if stored < least:
        raise NeuralabError(f"{path}: layer {e['name']!r}: {name} stores {stored:,} bytes for {nbytes:,} bytes of "
                            "weights (unwritten or compressed); the file is not as Keras saves it, save the model again")


def _weights_only(path: Path) -> NeuralabError:
    return NeuralabError(f"{path}: the architecture is missing (a weights-only file, from save_weights); "
                         "give the .keras file, or a model file with the architecture (model.save('model.keras'))")


# --- legacy .h5 -------------------------------------------------------------------------------

def _read_h5(path: Path, read_weights: bool = True) -> KerasModel:
    with _h5(path, path) as h:
        if "model_config" not in h.attrs:
            if "layer_names" in h.attrs or "layers" in h or "model_weights" in h:
                raise _weights_only(path)
            raise NeuralabError(f"{path}: an HDF5 file without a Keras model_config; not a Keras model file")
        raw = h.attrs["model_config"]
        raw = raw.decode() if isinstance(raw, bytes) else str(raw)
        config = _json(path, len(raw), lambda: raw, "model_config")
        version = h.attrs.get("keras_version", b"")
        version = version.decode() if isinstance(version, bytes) else str(version)
        spec = specs.from_config(config, str(path), version)
        parsed = _training_json(h.attrs.get("training_config"))
        # all of it, metrics included, which the compile_config it becomes leaves out
        specs.refuse_foreign(str(path), "training_config", parsed)
        training = _as_compile_config(parsed)
        dtypes = specs.dtype_policies(config)
        if not read_weights:
            return KerasModel(spec, {}, training,
                              specs.training_only(config), dtypes)
        if _bytes_needed(spec, dtypes) > path.stat().st_size:
            raise NeuralabError(f"{path}: the file is smaller than the weights its config declares; "
                                "it is truncated or not a full-model file")
        group = _get(path, h, "model_weights")
        if not isinstance(group, h5py.Group):
            raise NeuralabError(f"{path}: no model_weights group; save the model with its weights")
        weights = {}
        for e in spec["layers"]:
            if not e["weights"]:
                continue
            layer = _get(path, group, e["name"])
            if not isinstance(layer, h5py.Group):
                raise NeuralabError(f"{path}: layer {e['name']!r} has no weights in the file")
            names = layer.attrs.get("weight_names", [])
            names = names.tolist() if isinstance(names, np.ndarray) and names.ndim == 1 else names
            if not isinstance(names, list) or not all(isinstance(n, (str, bytes)) for n in names):
                raise NeuralabError(f"{path}: layer {e['name']!r}: attribute weight_names should list the names of "
                                    f"its weights, the file has {str(names)[:60]}; the file is damaged")
            names = [n.decode(errors="replace") if isinstance(n, bytes) else n for n in names]
            datasets = [_get(path, layer, n) for n in names]
            if None in datasets:
                raise NeuralabError(f"{path}: layer {e['name']!r}: weight {names[datasets.index(None)]!r} is missing; "
                                    "the file is damaged")
            weights[e["name"]] = _checked(path, e, datasets, dtypes.get(e["name"]))
        return KerasModel(spec, weights, training,
                          specs.training_only(config), dtypes)


def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def _training_config(raw) -> dict:
    """A legacy .h5's training_config as Keras 3's compile_config: {"optimizer", "loss", ...};
    none (or one that does not read) is no error: the model simply trains with neuralab's defaults."""
    return _as_compile_config(_training_json(raw))


def _training_json(raw) -> dict:
    """A legacy .h5's training_config attribute as it stands in the file; {} where there is none
    or it does not read."""
    if raw is None:
        return {}
    raw = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    if len(raw) > MAX_CONFIG:
        return {}
    try:
        found = _object(json.loads(raw))
    except (ValueError, RecursionError):
        return {}
    return found


def _as_compile_config(found: dict) -> dict:
    """A parsed training_config as Keras 3's compile_config: TF-Keras 2's optimizer_config as the
    optimizer, beside its loss."""
    if isinstance(found.get("optimizer_config"), dict):
        found = {"optimizer": found["optimizer_config"], "loss": found.get("loss")}
    return found


# --- a live Keras 3 model ---------------------------------------------------------------------

def read_live(model) -> KerasModel:
    """A Keras 3 model object: its config through Keras's own serialiser, its weights per layer."""
    try:
        import keras
    except ImportError:
        raise NeuralabError(f"convert() takes a .keras or .h5 path or a Keras 3 model; got {type(model).__name__} "
                            "(and Keras is not installed)") from None
    if not isinstance(model, keras.Model):
        raise NeuralabError(f"convert() takes a .keras or .h5 path or a Keras 3 model; got {type(model).__name__}")
    source = f"Keras model {model.name!r}"
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model), default=str))
    config.pop("compile_config", None)  # the caller's own compile(), no file's: unused, and not judged as one
    _live_names(config, model, keras)
    spec = specs.from_config(config, source, keras.__version__, live=True)
    weights = {}
    for e in spec["layers"]:
        if e["weights"]:
            arrays = [np.asarray(w) for w in model.get_layer(e["name"]).get_weights()]
            weights[e["name"]] = _checked_arrays(source, e, arrays)
    return KerasModel(spec, weights, training_only=specs.training_only(config), dtypes=specs.dtype_policies(config))


def _live_names(config: dict, model, keras) -> None:
    """Each layer's name from the live layer where its serialised config has none (a custom
    class's get_config() that leaves it out), so that a refusal names the layer as Keras does.
    The configs follow the model's layers in order, InputLayers aside. (A nested model's custom
    layer is refused as the nested model's field, by the nested model's name.)"""
    body = config.get("config")
    entries = body.get("layers") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        return
    entries = [r for r in entries if not (isinstance(r, dict) and r.get("class_name") == "InputLayer")]
    live = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if len(entries) != len(live):
        return
    for r, layer in zip(entries, live):
        if not isinstance(r, dict):
            return
        cfg = r.get("config") if isinstance(r.get("config"), dict) else {}
        name = cfg.get("name", r.get("name"))
        if name is None:
            r["name"] = layer.name
        elif name != layer.name:  # not the order assumed: name nothing rather than the wrong layer
            return


def _checked_arrays(source: str, e: dict, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    expected = e["weights"]
    if len(arrays) != len(expected) or any(list(a.shape) != list(s) for a, (_, s) in zip(arrays, expected)):
        raise NeuralabError(f"{source}: layer {e['name']!r} has weights {[list(a.shape) for a in arrays]}, "
                            f"its config needs {[s for _, s in expected]}")
    return {n: a.astype(np.float32) for a, (n, _) in zip(arrays, expected)}
