"""Checkpoints and weights as safetensors: tensors in the file, everything else as JSON in
its header. Nothing here ever unpickles. A checksum of the tensor data, where the header
has one (neuralab writes it; other tools' safetensors files lack it), catches a file damaged
in a way that leaves it well-formed; someone who edits a file on purpose can recompute it,
so it is no signature: loading checks every shape and size instead.

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

from neuralab.errors import NeuralabError
from neuralab.files import atomic_write, open_plain


def _digest(tensors: dict[str, torch.Tensor], aliases: dict[str, str] | None = None) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    if aliases:  # absent from files without tied tensors, whose checksums stay as they were
        h.update(json.dumps(aliases, sort_keys=True).encode())
    return h.hexdigest()


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
    header = {"neuralab": json.dumps(meta or {}), "sha256": _digest(tensors, aliases)}
    if aliases:
        header["aliases"] = json.dumps(aliases)
    data = st_save(tensors, metadata=header)
    with atomic_write(path, "wb") as f:
        f.write(data)


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
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError, json.JSONDecodeError) as e:
        raise NeuralabError(f"{path}: damaged or truncated safetensors file ({e}); put back a good copy, or train "
                            "the run again") from None
    aliases = _aliases(path, header, tensors)
    if "sha256" in header and _digest(tensors, aliases) != header["sha256"]:
        raise NeuralabError(f"{path}: checksum mismatch, the file was altered after it was written")
    tensors.update({alias: tensors[name] for alias, name in aliases.items()})  # tied names share one tensor again
    return tensors, json.loads(header.get("neuralab", "{}"))


def tensor_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape from a safetensors file's header, without reading the tensors."""
    from safetensors import safe_open

    if Path(path).is_dir():  # safetensors would say "No such device", which names no cause
        raise NeuralabError(f"{path}: is a folder, not a safetensors file; remove it (or move it away)")
    try:
        open_plain(path, "rb").close()  # safetensors would wait on a named pipe for good
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            header = f.metadata() or {}
    except FileNotFoundError:
        raise NeuralabError(f"{path}: file not found") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise NeuralabError(f"{path}: damaged or truncated safetensors file ({e}); put back a good copy, or train "
                            "the run again") from None
    return {**shapes, **{alias: shapes[name] for alias, name in _aliases(path, header, shapes).items()}}


def check_fits(path: str | os.PathLike, skeleton: torch.nn.Module, what: str, prefix: str = "",
               fix: str = "the two files do not belong together") -> None:
    """Refuse weights whose header does not list exactly ``skeleton``'s tensors and shapes,
    naming the first that differs and ending in ``fix``; ``prefix``: the model's tensors' in
    the file ("model." in a checkpoint).

    ``skeleton`` is the model a run's JSON describes, built on the meta device: sizes read from
    a file are checked against the weights this way before a byte of the model is allocated."""
    expected = {k: tuple(v.shape) for k, v in unwrap(skeleton).state_dict().items()}
    found = {k[len(prefix):]: v for k, v in tensor_shapes(path).items() if k.startswith(prefix)}
    for name in sorted(set(expected) | set(found)):
        if expected.get(name) != found.get(name):
            raise NeuralabError(f"{path}: tensor {name!r} is {found.get(name, 'missing')} in the weights "
                                f"but {expected.get(name, 'absent')} in {what}; {fix}")


def save_weights(path, model: torch.nn.Module, meta: dict | None = None) -> None:
    save_tensors(path, dict(unwrap(model).state_dict()), meta)


def load_weights(path, model: torch.nn.Module) -> dict:
    tensors, meta = load_tensors(path)
    try:
        unwrap(model).load_state_dict(tensors)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise NeuralabError(f"{path}: weights do not fit the model ({first})") from None
    return meta


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
    """Restore everything ``save_checkpoint`` wrote; returns its metadata (epoch, history, ...)."""
    tensors, meta = load_tensors(path)
    weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    unwrap(model).load_state_dict(weights)
    optimizer.load_state_dict(_join_optimizer(tensors, meta["optimizer"]))
    _match_layouts(optimizer)
    if scheduler is not None and meta.get("scheduler") is not None:
        scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.shuffle"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    kind, keys, *rest = meta["rng_numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    meta["state"] = {k.removeprefix("state."): v for k, v in tensors.items() if k.startswith("state.")}
    return meta
