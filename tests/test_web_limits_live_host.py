"""Session 49's web fixes, through the JSON API and under uvicorn: a resumed run's live state
before its process takes the lock, the connection limits as docs/web.md states them (and one
client's share of them), `serve --host` with an address that is not this machine's, and a picture
in each format a picture may have whose header declares more pixels than it may have."""

from __future__ import annotations

import contextlib
import functools
import io
import ipaddress
import json
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from neuralab.cli import main
from neuralab.data.pictures import FORMATS, read_image
from neuralab.errors import NeuralabError
from neuralab.web import app as web_app
from neuralab.web import create_app, jobs, make_server
from neuralab.web.app import MAX_CONNECTIONS, MAX_PER_CLIENT, listening_socket
from neuralab.web.security import machine_names
from test_pictures_declared_size import declaring, jpeg
from test_web_app import PICTURE, fake_classifier_run, png_header_only
from test_web_jobs import JSON, wait_for
from test_web_review import Training, interrupted
from test_web_server import answer, ask


def test_a_resumed_run_reads_resuming_not_interrupted_until_its_process_takes_the_lock(tmp_path, monkeypatch):
    """The resumed process loads its data before it locks the run: for those seconds the page
    showed "interrupted" beside "job 2 running"."""
    root = tmp_path / "runs"
    interrupted(root, "a")
    monkeypatch.setattr(jobs.Jobs, "_spawn", lambda self, job: Training())  # a process that never takes the lock
    with TestClient(create_app(root), base_url="http://127.0.0.1") as c:
        def live():
            return c.get("/api/run/live", params={"run": "a"}).json()
        assert live()["status"] == "interrupted" and live()["job"] is None
        assert c.post("/api/jobs/resume", content=json.dumps({"run": "a"}), headers=JSON).status_code == 201
        wait_for(lambda: (live()["job"] or {}).get("state") == "running", 30, "the resume to run")
        state = live()
        assert (state["status"], state["job"]["what"]) == ("resuming", "resume"), state
        assert "resume_refused" not in state
        assert c.post("/api/jobs/stop", content=json.dumps({"run": "a"}), headers=JSON).status_code == 200
        wait_for(lambda: live()["job"] is None, 30, "the job to stop")
        assert live()["status"] == "interrupted"  # no job of this server: the run's own status again


# --- connections: as many as docs/web.md says, and one address's share ---------------------------

@contextlib.contextmanager
def serving_on(root: Path, host: str):
    """``make_server``'s server in a thread on a free port of ``host``, on the socket `neuralab
    serve` makes (``listening_socket``: on `::` it takes IPv4 too, as asyncio's own does not): (server, port)."""
    root.mkdir(exist_ok=True)
    sock = listening_socket(host, 0)
    srv = make_server(root, host, sock.getsockname()[1])
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield srv, sock.getsockname()[1]
    finally:
        srv.should_exit = True
        thread.join(timeout=60)
        sock.close()


def unfinished(address: str, port: int, n: int) -> list[socket.socket]:
    """``n`` connections to ``address`` that each send a request line and headers, never the blank line."""
    socks = [socket.create_connection((address, port), timeout=30) for _ in range(n)]
    for sock in socks:
        sock.sendall(b"GET /api/runs HTTP/1.1\r\nHost: %s\r\n" % address.encode())
    return socks


def settle(srv, count: int) -> None:
    """Wait until the server holds ``count`` connections (a deadline to reach a state, not a speed target)."""
    deadline = time.monotonic() + 20
    while len(srv.server_state.connections) != count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(srv.server_state.connections) == count


def this_machines_address() -> str:
    """An IPv4 address of this machine other than loopback, to be a second client by."""
    for name in machine_names():
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            continue
        if address.version == 4 and not address.is_loopback:
            return str(address)
    pytest.skip("this machine has no IPv4 address but loopback")


def test_the_64th_connection_is_answered_as_docs_web_md_says(tmp_path, monkeypatch):
    """docs/web.md: "at most 64 connections open at once"; with 63 open the 64th was answered 503."""
    monkeypatch.setattr(web_app, "HEADER_SECONDS", 60)  # the unfinished ones stay while the 64th asks
    with serving_on(tmp_path / "runs", "127.0.0.1") as (srv, port):
        socks = unfinished("127.0.0.1", port, MAX_CONNECTIONS - 1)
        try:
            settle(srv, MAX_CONNECTIONS - 1)
            status, _, body = ask(port, b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        finally:
            for sock in socks:
                sock.close()
    assert status == 200, body


@pytest.mark.parametrize("bind", ["0.0.0.0", "::"])
def test_one_address_holding_unfinished_requests_cannot_shut_the_others_out(tmp_path, monkeypatch, bind):
    """One client with 64 unfinished requests took every connection: everyone else got 503 until
    its sockets timed out, and it could open them again at once. On `::` an IPv4 client arrives
    as ::ffff:ADDRESS, and was named so."""
    monkeypatch.setattr(web_app, "HEADER_SECONDS", 60)
    address = this_machines_address()
    with serving_on(tmp_path / "runs", bind) as (srv, port):
        socks = unfinished(address, port, MAX_CONNECTIONS)
        try:
            # past its share, each is answered at once, in the app's JSON, and closed
            for sock in socks[MAX_PER_CLIENT:]:
                status, headers, body = answer(sock)
                assert status == 503 and headers["connection"] == "close", body
                assert json.loads(body)["error"] == (f"too many connections from {address} ({MAX_PER_CLIENT} may be "
                                                     "open from one address); close some, or try again in a moment")
            settle(srv, MAX_PER_CLIENT)  # and closed
            status, _, body = ask(port, b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert status == 200, body  # another client is served
            with socket.create_connection((address, port), timeout=30) as one_more:
                assert answer(one_more)[0] == 503  # the same one is not, while it holds its share
        finally:
            for sock in socks:
                sock.close()


def test_this_machines_own_ipv4_connections_are_not_capped_on_a_dual_stack_server(tmp_path, monkeypatch):
    """With `--host ::`, 127.0.0.1 arrives as ::ffff:127.0.0.1, which ipaddress calls no loopback:
    this machine's own 17th connection was answered 503, against docs/web.md."""
    monkeypatch.setattr(web_app, "HEADER_SECONDS", 60)
    with serving_on(tmp_path / "runs", "::") as (srv, port):
        socks = unfinished("127.0.0.1", port, MAX_PER_CLIENT + 1)
        try:
            settle(srv, MAX_PER_CLIENT + 1)  # all held open, none refused
            status, _, body = ask(port, b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        finally:
            for sock in socks:
                sock.close()
    assert status == 200, body


# --- smaller messages ----------------------------------------------------------------------------

@pytest.mark.parametrize("host, why", [
    ("256.1.1.1", "neither an address nor a name that resolves to one; give one of this machine's addresses"),
    ("example.invalid", "neither an address nor a name that resolves to one; give one of this machine's addresses"),
    ("192.0.2.1", "not an address of this machine; give one of its own"),  # TEST-NET-1 (RFC 5737)
])
def test_a_host_that_is_no_address_here_is_named_without_a_warning_before_it(tmp_path, capsys, host, why):
    """The first two are names that do not resolve: the reachable-from-other-machines warning
    came first, then advice to choose another --host or --port. The third was named rightly, but
    after the same warning."""
    if host[0].isdigit() and not host.startswith("256"):
        with socket.socket() as probe:
            try:
                probe.bind((host, 0))
            except OSError:
                pass
            else:
                pytest.skip(f"this machine binds {host}")
    assert main(["serve", "--runs", str(tmp_path / "runs"), "--host", host, "--port", "7874"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"neuralab: error: --host {host}: cannot listen there (") and "--port" not in err[0], err
    assert why in err[0]


def saved(fmt: str, mode: str = "RGB", **options) -> bytes:
    """A one-pixel picture as Pillow saves it in ``fmt``: a real file, whose size fields are then changed."""
    buf = io.BytesIO()
    Image.new(mode, (1, 1), (200,) * len(mode)).save(buf, fmt, **options)
    return buf.getvalue()


def tiff_declaring(width: int, height: int) -> bytes:
    b = bytearray(saved("TIFF", "L"))
    ifd = struct.unpack_from("<I", b, 4)[0]
    for at in range(ifd + 2, ifd + 2 + 12 * struct.unpack_from("<H", b, ifd)[0], 12):
        tag, kind = struct.unpack_from("<HH", b, at)
        if tag in (256, 257):  # ImageWidth, ImageLength, as Pillow writes them: LONG
            assert kind == 4
            struct.pack_into("<I", b, at + 8, width if tag == 256 else height)
    return bytes(b)


def patched(data: bytes, at: int, layout: str, *values: int) -> bytes:
    b = bytearray(data)
    struct.pack_into(layout, b, at, *values)
    return bytes(b)


def webp_declaring(layout: str, width: int, height: int) -> bytes:
    """A WebP as Pillow saves it, its first chunk (the container spec's layouts) declaring ``width`` x ``height``."""
    if layout == "VP8X":  # extended (here for its alpha): the canvas's sides less one, 24 bits each
        data = saved("WEBP", "RGBA")
        return data[:24] + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little") + data[30:]
    if layout == "VP8L":  # lossless: 14 bits each, less one, after the signature byte
        data = saved("WEBP", lossless=True)
        bits = struct.unpack_from("<I", data, 21)[0] & ~0x0FFF_FFFF  # alpha and version bits kept
        return patched(data, 21, "<I", bits | (width - 1) | (height - 1) << 14)
    return patched(saved("WEBP"), 26, "<HH", width, height)  # lossy: the key frame's sides, no scaling


# Each format a picture may have (pictures.FORMATS), its header declaring (width, height): past
# twice Pillow's MAX_IMAGE_PIXELS, which Pillow refuses before the app's own check. WebP in its
# three layouts: lossy and lossless store at most 16384 a side.
DECLARING = {
    "PNG": png_header_only,
    "JPEG": lambda w, h: declaring(jpeg("L"), w, h),
    "GIF": lambda w, h: patched(saved("GIF", "L"), 6, "<HH", w, h),  # the logical screen; its frame stays 1x1
    "BMP": lambda w, h: patched(saved("BMP", "L"), 18, "<ii", w, h),
    "TIFF": tiff_declaring,
    "PPM": lambda w, h: b"P5\n%d %d\n255\n" % (w, h) + b"\xc8",
    "WEBP-VP8X": functools.partial(webp_declaring, "VP8X"),
    "WEBP-VP8L": functools.partial(webp_declaring, "VP8L"),
    "WEBP-VP8": functools.partial(webp_declaring, "VP8 "),
}
SIDES = {"WEBP-VP8L": 16_000, "WEBP-VP8": 16_000}  # the others 30000 a side


def test_every_format_a_picture_may_have_is_tried_as_a_bomb():
    assert {name.split("-")[0] for name in DECLARING} == set(FORMATS)
    for name, make in DECLARING.items():  # Pillow reads each as its format, and its size as declared
        fmt, layout = (name.split("-") + [""])[:2]
        if layout:  # libwebp refuses a canvas its picture does not fill: the chunk and the bomb check say it
            assert make(100, 60)[12:16] == layout.ljust(4).encode()
        else:
            with Image.open(io.BytesIO(make(100, 60))) as img:
                assert (img.format, img.size) == (fmt, (100, 60)), name
        with pytest.raises(Image.DecompressionBombError):
            Image.open(io.BytesIO(make(SIDES.get(name, 30_000), SIDES.get(name, 30_000))), formats=[fmt])


@pytest.mark.parametrize("name", DECLARING)
@pytest.mark.parametrize("path", ["/api/upload", "/api/classify?run=done"])
def test_a_picture_declaring_too_many_pixels_names_its_size_and_the_limit(tmp_path, path, name):
    """Pillow refuses it before the app's own check: the message named neither size; a WebP's
    refusal came from inside Pillow's reading of its header, past the app's: a 500."""
    side = SIDES.get(name, 30_000)
    fake_classifier_run(tmp_path / "runs" / "done", "mlp")
    with TestClient(create_app(tmp_path / "runs"), base_url="http://127.0.0.1") as c:
        r = c.post(path, content=DECLARING[name](side, side), headers=PICTURE)
    assert (r.status_code, r.json()["error"]) == (400, f"upload: {side}x{side} pixels is more than the 16,000,000 "
                                                       "allowed (too large to decode safely); resize it first")


@pytest.mark.parametrize("name", DECLARING)
def test_a_picture_file_declaring_too_many_pixels_names_its_size_and_the_limit(tmp_path, name):
    side = SIDES.get(name, 30_000)
    bomb = tmp_path / f"bomb.{name.split('-')[0].lower()}"
    bomb.write_bytes(DECLARING[name](side, side))
    with pytest.raises(NeuralabError) as e:
        read_image(bomb)
    assert str(e.value) == (f"{bomb}: {side}x{side} pixels is more than the 40,000,000 allowed (too large to decode "
                            "safely); resize it first")
