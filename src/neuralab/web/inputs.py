"""What a request carries, read within bounds and checked before use: bodies up to a size,
JSON without surprises (no NaN or infinity, no number too long to convert, no nesting deeper
than ``MAX_DEPTH``), and the few validators every field of a JSON body goes through. They
check what JSON can get wrong (types, unknown fields, the app's own ranges); what a value
means is checked by the library the endpoint calls.
"""

from __future__ import annotations

import json
import math

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from neuralab.errors import NeuralabError, ParameterError, Shown

MAX_JSON_BYTES = 64 * 1024   # a playground request is a few hundred bytes; a 31x31 kernel 5 kB
MAX_DEPTH = 4                # {"at": [row, column]} is 2 levels deep
MAX_DIGITS = 15              # every whole number the API takes fits in far fewer
# A body still arriving after this long is dropped: a client that sends slowly would otherwise
# hold one of the MAX_CONNECTIONS connections, and a 10 MB body in memory, for as long as it
# likes. 10 MB in 60 s is 1.4 Mbit/s.
READ_SECONDS = 60
# ... and one that trickles is dropped sooner: after the first GRACE_SECONDS a body must have
# come at MIN_RATE bytes a second on average (64 kbit/s, a slow phone connection; a 10 MB picture
# needs 20 times that to beat READ_SECONDS anyway). A few bytes a second would otherwise keep a
# connection for all READ_SECONDS, again and again, at no cost to the client.
GRACE_SECONDS = 10
MIN_RATE = 8 * 1024


def size_text(n: int) -> str:
    """10485760 -> "10 MB", 65536 -> "64 KB"."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


async def read_body(request: Request, limit: int, what: str = "upload") -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (before reading it, when the
    client says its length; while reading it, when it does not), with 408 when it takes more
    than READ_SECONDS to arrive or comes slower than MIN_RATE after GRACE_SECONDS, and when
    empty. A client gone before sending it all gets a 400 that nobody reads: a tab closed
    mid-upload is no error of the app's, and its log stays quiet."""
    import anyio

    declared = request.headers.get("content-length")
    too_large = HTTPException(413, f"{what} larger than {size_text(limit)}")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise too_large
    body = bytearray()
    start = anyio.current_time()
    try:
        with anyio.fail_after(READ_SECONDS):
            # each byte received buys 1 / MIN_RATE s more: a pause is fine, a trickle is not
            with anyio.CancelScope(deadline=start + GRACE_SECONDS) as pace:
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > limit:
                        raise too_large
                    pace.deadline = start + GRACE_SECONDS + len(body) / MIN_RATE
    except TimeoutError:
        raise HTTPException(408, f"{what}: not received within {READ_SECONDS} s") from None
    except ClientDisconnect:
        raise HTTPException(400, f"{what}: the client closed the connection before sending it all") from None
    if pace.cancelled_caught:
        raise HTTPException(408, f"{what}: arriving slower than {size_text(MIN_RATE)} a second; send it "
                                 "over a faster connection")
    if not body:
        raise NeuralabError(f"{what}: nothing was sent")
    return bytes(body)


async def read_json(request: Request) -> dict:
    """The request's JSON object (see ``parse_json``), at most MAX_JSON_BYTES."""
    return parse_json(await read_body(request, MAX_JSON_BYTES, "request"))


def _once_each(pairs: list[tuple[str, object]]) -> dict:
    """An object whose every field is given once: with two, which one counts would be a guess."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise NeuralabError(f"request: field {key[:40]!r} is given twice; give it once")
        seen.add(key)
    return dict(pairs)


def parse_json(data: bytes) -> dict:
    """A JSON object, or a NeuralabError saying what is wrong with it."""
    try:
        obj = json.loads(data, parse_constant=_no_constant, parse_float=_finite, parse_int=_whole_number,
                         object_pairs_hook=_once_each)
    except NeuralabError:
        raise
    except RecursionError:
        raise NeuralabError(f"request: JSON nested too deeply; at most {MAX_DEPTH} levels") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise NeuralabError(f"request: not valid JSON ({str(e).splitlines()[0][:80]})") from None
    if not isinstance(obj, dict):
        raise NeuralabError("request: expected a JSON object")
    if depth(obj) > MAX_DEPTH:
        raise NeuralabError(f"request: JSON nested too deeply; at most {MAX_DEPTH} levels")
    return obj


def depth(obj) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), without recursion."""
    deepest, stack = 0, [(obj, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            level += 1
            deepest = max(deepest, level)
            stack.extend((v, level) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _no_constant(name: str):
    raise NeuralabError(f"request: {name} is not a number; give finite numbers")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NeuralabError(f"request: {text[:20]} is out of range; give finite numbers")
    return value


def _whole_number(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise NeuralabError(f"request: {text[:20]}... has more than {MAX_DIGITS} digits")
    return int(text)


# --- validators: one per kind of field -----------------------------------------------------


def fields(body: dict, allowed) -> dict:
    """``body`` when it holds no field outside ``allowed``."""
    for name in body:
        if name not in allowed:
            raise ParameterError(str(name)[:40], Shown(body[name]), f"unknown field; allowed are {', '.join(allowed)}")
    return body


def text(name: str, value) -> str:
    if not isinstance(value, str):
        raise ParameterError(name, Shown(value), "must be text")
    return value


def choice(name: str, value, allowed) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ParameterError(name, Shown(value), f"allowed are {', '.join(allowed)}")
    return value


def whole(name: str, value, low: int, high: int) -> int:
    """A JSON whole number from ``low`` to ``high``: 2 is, 1.5, "2" and true are not."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ParameterError(name, Shown(value), f"must be a whole number from {low} to {high}")
    return value
