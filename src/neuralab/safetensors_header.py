"""The header of a safetensors file (weights, checkpoints), read from its first bytes alone and
without torch: its tensors' dtypes, shapes and byte ranges, its text fields and neuralab's own
JSON among them, and whether the file is as long as the header says (a file cut short by a full
disk or a copy killed half-way). The listing and the status of runs read it here, and
training.checkpoint, which writes these files, checks them with it.
"""

from __future__ import annotations

import json
import os

from neuralab.files import MAX_JSON, open_plain

# A safetensors file (weights, checkpoints) starts with its header: LENGTH_BYTES giving the header's
# length, little-endian, then the header, JSON: each tensor's dtype, shape and byte range, and
# METADATA, text fields. neuralab's own fields (training.checkpoint writes them) are JSON again,
# under NEURALAB. Read here without torch, for the listing and the status of runs.

LENGTH_BYTES = 8
METADATA = "__metadata__"
NEURALAB = "neuralab"


def safetensors_header(data: bytes) -> object:
    """The header of the safetensors file whose first bytes (its header at least) are ``data``,
    read as JSON; None where it does not read."""
    length = _length(data)
    return _parsed(data[LENGTH_BYTES:LENGTH_BYTES + length]) if LENGTH_BYTES + length <= len(data) else None


def safetensors_metadata(header) -> dict:
    """The text fields (METADATA) of a safetensors ``header``; {} where it has none."""
    fields = header.get(METADATA) if isinstance(header, dict) else None
    return fields if isinstance(fields, dict) else {}


def neuralab_metadata(fields: dict):
    """What neuralab keeps in a safetensors file's text ``fields`` (``safetensors_metadata``): its
    NEURALAB field read as JSON, {} where there is none; ValueError where that is no JSON."""
    return json.loads(fields.get(NEURALAB, "{}"))


def _length(first: bytes) -> int:
    return int.from_bytes(first[:LENGTH_BYTES], "little")


def _parsed(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not UTF-8, not JSON
        return None


def read_safetensors_header(path: str | os.PathLike) -> tuple[int, int, object]:
    """(the file's size, its header's length, the header read as JSON or None where it does not
    read), from its first bytes alone: the header of a file of neuralab's is no larger than
    MAX_JSON, so a made-up length allocates nothing. Python opens the file, so a path of any
    bytes opens (safetensors' own ``safe_open`` takes only UTF-8 paths)."""
    with open_plain(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        length = _length(f.read(LENGTH_BYTES))
        if length > MAX_JSON or LENGTH_BYTES + length > size:
            return size, length, None
        return size, length, _parsed(f.read(length))


def safetensors_fault(size: int, length: int, header) -> tuple[str, str] | None:
    """What ``read_safetensors_header``'s (size, length, header) say is wrong with the file:
    ("truncated" or "damaged", why), None where its header lists each tensor's dtype, shape
    and byte range and the file is as long as they say. The header gives every tensor's byte
    range, so a file cut short by a full disk or a copy killed half-way is told from its first
    bytes, where loading it would read it all."""
    expected = LENGTH_BYTES + length
    entries = [entry for key, entry in header.items() if key != METADATA] if isinstance(header, dict) else [None]
    if all(_tensor_entry(entry) for entry in entries):
        expected += max((entry["data_offsets"][1] for entry in entries), default=0)
    elif size >= expected or length > MAX_JSON:  # else cut within its header: the size tells
        return "damaged", "it starts with no safetensors header"
    if size != expected:
        return "truncated" if size < expected else "damaged", f"{size:,} bytes where its header gives {expected:,}"
    return None


def _tensor_entry(entry) -> bool:
    """Whether ``entry`` of a safetensors header is a tensor's: a dtype, a shape, a byte range."""
    def whole(values, n=None):
        return isinstance(values, list) and (n is None or len(values) == n) \
            and all(type(v) is int and v >= 0 for v in values)

    return isinstance(entry, dict) and isinstance(entry.get("dtype"), str) and whole(entry.get("shape")) \
        and whole(entry.get("data_offsets"), 2) and entry["data_offsets"][0] <= entry["data_offsets"][1]
