"""Checkpoints and weights as safetensors: tensors in the file, everything else as JSON in
its header. Nothing here ever unpickles. Checksums of the tensor data and of the header,
where the file has them (neuralab writes them; other tools' safetensors files lack them, and
older neuralab releases wrote only the tensors'), catch a file damaged in a way that leaves it
well-formed; someone who edits a file on purpose can recompute or drop them, so they are no
signature: loading checks every shape and size, and every field of a checkpoint, instead.

A checkpoint holds the model, the optimizer, the scheduler, the RNG states and the
training history, so that a resumed run continues bit for bit on the CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from neuralab.errors import NeuralabError, out_of_memory
from neuralab.files import atomic_write, open_plain
from neuralab.safetensors_header import (LENGTH_BYTES, METADATA, NEURALAB, neuralab_metadata, read_safetensors_header,
                                        safetensors_fault, safetensors_header, safetensors_metadata)


def _digest(tensors: dict[str, torch.Tensor], aliases: dict[str, str] | None = None) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    if aliases:  # absent from files without tied tensors, whose checksums stay as they were
        h.update(json.dumps(aliases, sort_keys=True).encode())
    return h.hexdigest()


# The header's checksum: of every entry but the checksums, so of the metadata JSON too. A key
# of its own, so that releases before it, which know only "sha256", still read new files.
HEADER_SUM = "sha256_header"


def _header_digest(header: dict[str, str]) -> str:
    rest = {k: v for k, v in header.items() if k not in ("sha256", HEADER_SUM)}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def _each_once(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors to write, each once, and the names that are another's tensor (alias -> name).

    A tied weight (``self.enc.weight = self.mid.weight``) is one tensor under two names of the
    state dict, and safetensors refuses tensors that share memory: the file keeps it under its
    first name, and loading gives both names the same tensor again. Tensors that overlap other
    tensors' memory without being them (a buffer that is a slice of a weight) are copied."""
    kept: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    first: dict[tuple, str] = {}
    for name, value in tensors.items():
        value = value.detach()
        # identity from before the move to the CPU, where two names of one CUDA tensor become two copies
        key = (value.device, value.data_ptr(), value.dtype, tuple(value.shape), value.stride())
        if value.numel() and key in first:
            aliases[name] = first[key]
            continue
        first.setdefault(key, name)
        kept[name] = value.cpu().contiguous()
    storages: set[int] = set()
    for name, value in kept.items():
        if value.numel():
            if value.untyped_storage().data_ptr() in storages:
                kept[name] = value.clone()
            storages.add(kept[name].untyped_storage().data_ptr())
    return kept, aliases


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
    """Write ``tensors`` and the JSON-able ``meta`` atomically (temporary file, fsync, rename);
    a tensor under several names (tied weights) is written once."""
    tensors, aliases = _each_once(tensors)
    # sorted: a resumed run reads its meta back from model.json in another order than code builds it
    header = {NEURALAB: json.dumps(meta or {}, sort_keys=True), "sha256": _digest(tensors, aliases)}
    if aliases:
        header["aliases"] = json.dumps(aliases, sort_keys=True)
    header[HEADER_SUM] = _header_digest(header)
    data = st_save(tensors, metadata=header)
    start, rest = _sorted_header(data)
    with atomic_write(path, "wb") as f:
        f.write(start)
        f.write(memoryview(data)[rest:])


def _sorted_header(data: bytes) -> tuple[bytes, int]:
    """The length and header of ``data``, a safetensors file as safetensors writes it, with the
    metadata's fields in sorted order, and where the tensors' bytes start in ``data``.

    safetensors keeps the metadata in a hash map, whose order changes from one map to the next:
    two runs with the same seed, equal in every tensor and field, wrote files that ``cmp`` and
    ``sha256sum`` told apart. The header is JSON and its tensors' offsets count from its end, so
    it can be written again, padded with spaces to 8 bytes as safetensors pads it."""
    length = int.from_bytes(data[:LENGTH_BYTES], "little")
    header = json.loads(data[LENGTH_BYTES:LENGTH_BYTES + length])
    header[METADATA] = dict(sorted(header[METADATA].items()))  # keeps its place, first
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(LENGTH_BYTES, "little") + text, LENGTH_BYTES + length


def _aliases(path, header: dict, names) -> dict[str, str]:
    """The header's tied names (alias -> stored name), checked to name stored tensors."""
    try:
        aliases = json.loads(header.get("aliases", "{}"))
    except json.JSONDecodeError:
        aliases = None
    if not (isinstance(aliases, dict) and all(isinstance(k, str) and isinstance(v, str) and k not in names
                                              and v in names for k, v in aliases.items())):
        raise NeuralabError(f"{path}: damaged safetensors file (its 'aliases' do not name tensors of the file)")
    return aliases


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by ``save_tensors``; a damaged or altered file is a NeuralabError."""
    path = Path(path)
    try:
        with open_plain(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise NeuralabError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise NeuralabError(f"{path}: is a folder, not a safetensors file; remove it (or move it away)") from None
    except OSError as e:
        raise NeuralabError(f"{path}: cannot read ({e.strerror})") from None
    except MemoryError:
        raise _too_large(path) from None
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError) as e:
        raise NeuralabError(f"{path}: damaged or truncated safetensors file ({e}); put back a good copy, or train "
                            "the run again") from None
    except MemoryError:
        raise _too_large(path) from None
    header = safetensors_metadata(safetensors_header(data))  # st_load read the header: it reads here too
    aliases = _aliases(path, header, tensors)
    if ("sha256" in header and _digest(tensors, aliases) != header["sha256"]) \
            or (HEADER_SUM in header and _header_digest(header) != header[HEADER_SUM]):
        raise NeuralabError(f"{path}: checksum mismatch, the file was altered after it was written")
    try:
        meta = neuralab_metadata(header)
    except (ValueError, RecursionError):
        meta = None
    if not isinstance(meta, dict):
        raise NeuralabError(f"{path}: damaged safetensors file (its {NEURALAB!r} metadata is no JSON object); put "
                            "back a good copy, or train the run again")
    tensors.update({alias: tensors[name] for alias, name in aliases.items()})  # tied names share one tensor again
    return tensors, meta


def tensor_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape from a safetensors file's header, without reading the tensors.

    The header is read here, not by safetensors' ``safe_open``, which takes only UTF-8 paths
    (a run in a folder with a Latin-1 name was refused as damaged) and maps the whole file."""
    try:
        size, length, header = read_safetensors_header(path)
    except FileNotFoundError:
        raise NeuralabError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise NeuralabError(f"{path}: is a folder, not a safetensors file; remove it (or move it away)") from None
    except OSError as e:  # nothing says the file is damaged: a permission, a disk that fails
        raise NeuralabError(f"{path}: cannot read ({e.strerror})") from None
    fault = safetensors_fault(size, length, header)
    if fault:
        raise NeuralabError(f"{path}: damaged or truncated safetensors file ({fault[1]}); put back a good copy, or "
                            "train the run again")
    shapes = {k: tuple(v["shape"]) for k, v in header.items() if k != METADATA}
    return {**shapes, **{alias: shapes[name] for alias, name in _aliases(path, safetensors_metadata(header),
                                                                         shapes).items()}}


def _too_large(path) -> NeuralabError:
    size = Path(path).stat().st_size / 2**30
    return NeuralabError(f"{path}: not enough memory to open this {size:.1f} GiB file; free memory (or raise the "
                         "process's memory limit), or use a machine with more")


def check_fits(path: str | os.PathLike, skeleton: torch.nn.Module, what: str, prefix: str = "",
               fix: str = "the two files do not belong together") -> None:
    """Refuse weights whose header does not list exactly ``skeleton``'s tensors and shapes,
    naming the first that differs and ending in ``fix``; ``prefix``: the model's tensors' in
    the file ("model." in a checkpoint).

    ``skeleton`` is the model a run's JSON describes, built on the meta device: sizes read from
    a file are checked against the weights this way before a byte of the model is allocated."""
    found = {k[len(prefix):]: v for k, v in tensor_shapes(path).items() if k.startswith(prefix)}
    _refuse_misfit(path, skeleton, found, what, fix)


def _refuse_misfit(path, model: torch.nn.Module, found: dict[str, tuple[int, ...]], what: str, fix: str) -> None:
    """``check_fits``'s comparison, on shapes already read."""
    expected = {k: tuple(v.shape) for k, v in unwrap(model).state_dict().items()}
    for name in sorted(set(expected) | set(found)):
        if expected.get(name) != found.get(name):
            raise NeuralabError(f"{path}: tensor {name!r} is {found.get(name, 'missing')} in the weights "
                                f"but {expected.get(name, 'absent')} in {what}; {fix}")


def save_weights(path, model: torch.nn.Module, meta: dict | None = None) -> None:
    save_tensors(path, dict(unwrap(model).state_dict()), meta)


def load_weights(path, model: torch.nn.Module) -> dict:
    """Put the weights of ``path`` into ``model``, in place; returns the file's metadata. A
    file of a module neuralab trained inside a wrapper of its own (a forecaster's window
    network keeps the user's module as ``net``) loads into the bare module too."""
    tensors, meta = load_tensors(path)
    tensors = _as_named_in(tensors, unwrap(model))
    try:
        unwrap(model).load_state_dict(tensors)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise NeuralabError(f"{path}: weights do not fit the model ({first})") from None
    return meta


def _as_named_in(tensors: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``tensors`` under ``model``'s own names where every one of them is one of the model's
    behind the same wrapper's prefix ("net.lstm.weight_ih_l0" for "lstm.weight_ih_l0"); as
    they are otherwise, for load_state_dict to name what differs."""
    own = set(model.state_dict())
    if set(tensors) == own or not tensors:
        return tensors
    prefix = next(iter(tensors)).split(".", 1)[0] + "."
    bare = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return bare if len(bare) == len(tensors) and set(bare) == own else tensors


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside DistributedDataParallel or torch.compile."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


# --- full training state -------------------------------------------------------------

def _split_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, slots in state["state"].items():
        plain["state"][str(pid)] = {}
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{pid}.{key}"] = value
                plain["state"][str(pid)][key] = {"tensor": f"optimizer.{pid}.{key}"}
            else:
                plain["state"][str(pid)][key] = value
    return tensors, plain


def _join_optimizer(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    state = {}
    for pid, slots in plain["state"].items():
        state[int(pid)] = {
            k: tensors[v["tensor"]] if isinstance(v, dict) and "tensor" in v else v for k, v in slots.items()
        }
    return {"param_groups": plain["param_groups"], "state": state}


def _match_layouts(optimizer) -> None:
    """Give each state tensor its parameter's memory layout (e.g. channels-last).

    Files store tensors contiguous; the fused Adam kernel walks a parameter and its moments
    as flat memory, so they must share strides or a resumed run drifts.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                if torch.is_tensor(value) and value.shape == p.shape and value.stride() != p.stride():
                    optimizer.state[p][key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def save_checkpoint(path, *, model, optimizer, scheduler, generator: torch.Generator,
                    epoch: int, history: list[dict], state: dict[str, torch.Tensor] | None = None) -> None:
    """The whole training state; ``state`` holds the trainer's own tensors (meta["state"] on loading)."""
    opt_tensors, opt_plain = _split_optimizer(optimizer.state_dict())
    tensors = {f"model.{k}": v for k, v in unwrap(model).state_dict().items()}
    tensors.update(opt_tensors)
    tensors.update({f"state.{k}": v for k, v in (state or {}).items()})
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = generator.get_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    np_state = np.random.get_state()
    meta = {
        "epoch": epoch,
        "history": history,
        "optimizer": opt_plain,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng_numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    save_tensors(path, tensors, meta)


def load_checkpoint(path, *, model, optimizer, scheduler, generator: torch.Generator) -> dict:
    """Restore everything ``save_checkpoint`` wrote; returns its metadata (epoch, history, ...).
    A field that is missing or not what ``save_checkpoint`` writes is a NeuralabError naming it,
    before anything is restored (a checksum says nothing of a file edited by hand), and so is
    whatever PyTorch still refuses."""
    tensors, meta = load_tensors(path)
    weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    _refuse_misfit(path, model, {k: tuple(v.shape) for k, v in weights.items()}, "the model",
                   "the checkpoint is damaged or of another model; " + _FIX)
    numpy_state = _check_meta(path, meta, tensors, optimizer, scheduler)
    try:
        unwrap(model).load_state_dict(weights)
        optimizer.load_state_dict(_join_optimizer(tensors, meta["optimizer"]))
        _match_layouts(optimizer)
        if scheduler is not None:
            scheduler.load_state_dict(meta["scheduler"])
        torch.set_rng_state(tensors["rng.torch"])
        generator.set_state(tensors["rng.shuffle"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
    except (RuntimeError, KeyError, ValueError, TypeError) as e:  # what the checks above cannot foresee
        if out_of_memory(e) is not None:  # the device's memory, not the file
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NeuralabError(f"{path}: damaged checkpoint ({first}); {_FIX}") from None
    np.random.set_state(numpy_state)
    meta["state"] = {k.removeprefix("state."): v for k, v in tensors.items() if k.startswith("state.")}
    return meta


_FIX = "put back a good copy"  # the trainer adds which other checkpoint to resume from


def _check_meta(path, meta, tensors: dict[str, torch.Tensor], optimizer, scheduler) -> tuple:
    """Refuse a checkpoint's metadata unless each field has the form ``save_checkpoint`` gives
    it, the optimizer's and the scheduler's that of the live objects' own state; returns the
    NumPy RNG state to set."""
    def refuse(what: str):
        raise NeuralabError(f"{path}: damaged checkpoint: {what}; {_FIX}")

    for key in ("epoch", "history", "optimizer", "rng_numpy", *(["scheduler"] if scheduler is not None else [])):
        if key not in meta:
            refuse(f"{key!r} is missing")
    epoch, history = meta["epoch"], meta["history"]
    if not (_whole(epoch) and epoch >= 1):
        refuse(f"'epoch' is {_shown(epoch)}, not a whole number of 1 or more")
    if not (isinstance(history, list) and all(isinstance(r, dict) for r in history)):
        refuse(f"'history' is {_shown(history)}, not a list of each epoch's metrics")
    bad = next((r for r in history if not all(_number(v) or v is None for v in r.values())), None)
    if bad is not None:
        refuse(f"'history' holds {_shown(bad)}, whose metrics are not all numbers")
    epochs = [r.get("epoch") for r in history]
    if len(epochs) != epoch or not all(_whole(e) and e == i for i, e in enumerate(epochs, 1)):
        refuse(f"'epoch' is {epoch} but the 'history' holds epochs {_shown(epochs)}")
    numpy_state = _numpy_state(meta["rng_numpy"])
    if numpy_state is None:
        refuse(f"'rng_numpy' is {_shown(meta['rng_numpy'])}, not NumPy's random state")
    for name in ("rng.torch", "rng.shuffle"):
        if name not in tensors:
            refuse(f"tensor {name!r} is missing")
    _check_optimizer(refuse, meta["optimizer"], optimizer, tensors)
    if scheduler is not None:
        misfit = _misfit(meta["scheduler"], scheduler.state_dict(), "'scheduler'")
        if misfit:
            refuse(misfit)
    return numpy_state


def _check_optimizer(refuse, plain, optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """``refuse`` the optimizer's part of a checkpoint (``_split_optimizer``'s ``plain``) unless
    its groups have the form of ``optimizer``'s and each state tensor fits its parameter."""
    live = optimizer.state_dict()
    if not (isinstance(plain, dict) and plain.keys() == {"param_groups", "state"}):
        refuse(f"'optimizer' is {_shown(plain)}, not an optimizer's param_groups and state")
    misfit = _misfit(plain["param_groups"], live["param_groups"], "'optimizer' param_groups")
    if misfit:
        refuse(misfit)
    if [g["params"] for g in plain["param_groups"]] != [g["params"] for g in live["param_groups"]]:
        refuse("'optimizer' param_groups do not number the model's parameters as its optimizer does")
    params = [p for g in optimizer.param_groups for p in g["params"]]  # in the numbering of the state
    ids = [str(i) for i in range(len(params))]
    if not isinstance(plain["state"], dict):
        refuse(f"'optimizer' state is {_shown(plain['state'])}, not a JSON object")
    for pid, slots in plain["state"].items():
        if not (pid in ids and isinstance(slots, dict)):
            refuse(f"'optimizer' state {pid!r} is {_shown(slots)}, not the state of a parameter")
        for key, value in slots.items():
            where = f"'optimizer' state [{pid!r}][{key!r}]"
            if isinstance(value, dict):
                if not (value.keys() == {"tensor"} and isinstance(value["tensor"], str) and value["tensor"] in tensors):
                    refuse(f"{where} is {_shown(value)}, which names no tensor of the file")
                shape, own = tensors[value["tensor"]].shape, params[int(pid)].shape
                if not _broadcasts(shape, own):
                    refuse(f"{where} is a tensor of shape {tuple(shape)}, which does not fit its parameter's "
                           f"{tuple(own)}")
            elif not (_number(value) or value is None):
                refuse(f"{where} is {_shown(value)}, not a number")


def _misfit(found, like, where: str) -> str | None:
    """Where and how ``found``, read from JSON, first differs in form from ``like``, a live
    object's own state; None where it does not. The keys both hold must hold the same form
    (keys one of them lacks are another torch release's: Adam's ``decoupled_weight_decay``,
    LambdaLR's ``_is_initial``, which torch's own load_state_dict fills in or keeps); lists (or
    tuples) have the same length, numbers stand for numbers, text for text, and None and
    booleans for each other (``fused`` is None on some devices)."""
    if isinstance(like, dict):
        if not isinstance(found, dict):
            return f"{where} is {_shown(found)}, not a JSON object"
        if like and not found.keys() & like.keys():  # not another release's form: another object's state
            return f"{where} holds none of {sorted(like, key=str)[:3]}..., not this object's state"
        return next(filter(None, (_misfit(found[k], v, f"{where}[{k!r}]") for k, v in like.items() if k in found)),
                    None)
    if isinstance(like, (list, tuple)):
        if not (isinstance(found, list) and len(found) == len(like)):
            return f"{where} is {_shown(found)}, not a list of {len(like)}"
        return next(filter(None, (_misfit(f, v, f"{where}[{i}]") for i, (f, v) in enumerate(zip(found, like)))), None)
    if like is None or isinstance(like, bool):
        return None if found is None or isinstance(found, bool) else f"{where} is {_shown(found)}, not true or false"
    if _number(like):
        return None if _number(found) else f"{where} is {_shown(found)}, not a number"
    return None if type(found) is type(like) else f"{where} is {_shown(found)}, not {type(like).__name__}"


def _numpy_state(value) -> tuple | None:
    """``value``, as ``save_checkpoint`` writes NumPy's random state, as np.random.set_state takes
    it; None if it is no such state."""
    if not (isinstance(value, list) and len(value) == 5 and value[0] == "MT19937"):
        return None
    _, keys, pos, has_gauss, gauss = value
    if not (isinstance(keys, list) and len(keys) == 624 and all(_whole(k) and 0 <= k < 2**32 for k in keys)
            and _whole(pos) and 0 <= pos <= 624 and _whole(has_gauss) and has_gauss in (0, 1) and _number(gauss)):
        return None
    return "MT19937", np.asarray(keys, dtype=np.uint32), pos, has_gauss, float(gauss)


def _broadcasts(shape, to) -> bool:
    """Whether a tensor of ``shape`` broadcasts to ``to``: an optimizer's moments have their
    parameter's shape, its step none, a factored moment (Adafactor's) ones of size 1."""
    return len(shape) <= len(to) and all(s in (1, t) for s, t in zip(reversed(shape), reversed(to)))


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
