"""The app under uvicorn, as a hostile client on this machine drives it with raw sockets:
connections that never finish their headers, uploads that trickle, clients that go away
mid-body, requests uvicorn itself refuses; and the refusals the app makes outside its routes
(Host, Origin, 500) and the links out of a run, through Starlette's test client."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

import anyio
import pytest
from PIL import Image
from starlette.testclient import TestClient

from neuralab.web import app as web_app
from neuralab.web import create_app, inputs, make_server
from neuralab.web.app import MAX_CONNECTIONS, PICTURES_AT_ONCE
from neuralab.web.security import CSP, allowed_hosts
from helpers import default_signals
from test_web_app import fake_classifier_run

SECURITY = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}
KERNELS = b"GET /api/kernels HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # a request line and headers, but for the blank line


@contextlib.contextmanager
def serving(root: Path):
    """``make_server``'s server in a thread on a free port of 127.0.0.1: (server, port)."""
    root.mkdir(exist_ok=True)
    srv = make_server(root, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield srv, srv.servers[0].sockets[0].getsockname()[1]
    finally:
        srv.should_exit = True
        thread.join(timeout=60)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def answer(sock: socket.socket) -> tuple[int, dict, bytes]:
    """One answer read from ``sock``: (status, headers by lower-case name, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection without answering: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection in the middle of its answer"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def ask(port: int, request: bytes) -> tuple[int, dict, bytes]:
    with connect(port) as sock:
        sock.sendall(request)
        return answer(sock)


def left_open(socks: list[socket.socket], within: float) -> list[int]:
    """Which of ``socks`` (by index) the server has not closed ``within`` seconds from now."""
    deadline, still = time.monotonic() + within, []
    for i, sock in enumerate(socks):
        try:
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                if sock.recv(65536) == b"":
                    break
        except ConnectionResetError:
            pass
        except TimeoutError:
            still.append(i)
    return still


def png(side: int = 20) -> bytes:
    out = io.BytesIO()
    Image.new("L", (side, side), 90).save(out, "PNG")
    return out.getvalue()


def upload(data: bytes, length: int | None = None) -> bytes:
    """The head of a picture upload, and ``data`` after it."""
    return (b"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Content-Length: %d\r\n\r\n" % (len(data) if length is None else length)) + data


# --- connections that keep the server waiting -------------------------------------------------

def test_connections_that_never_finish_their_headers_are_closed(tmp_path, monkeypatch):
    """Slowloris: more than MAX_CONNECTIONS sockets each sending part of a request, never the blank
    line, made the server answer everyone 503 for as long as they stayed open. Each is now closed
    after HEADER_SECONDS; so is a kept-alive connection stuck in its next request's headers, and
    one still trickling a body the app answered without reading. Then everyone is served again."""
    monkeypatch.setattr(web_app, "HEADER_SECONDS", 1)
    with serving(tmp_path / "runs") as (_, port):
        kept = connect(port)  # answered once, then half of its next request
        kept.sendall(KERNELS + b"\r\n")
        assert answer(kept)[0] == 200
        kept.sendall(KERNELS)
        unread = connect(port)  # a GET with a body: answered at once, the body never finished
        unread.sendall(KERNELS + b"Content-Length: 1000\r\n\r\n")
        assert answer(unread)[0] == 200
        unread.sendall(b"x")
        silent = connect(port)  # connected, sends nothing
        flood = [connect(port) for _ in range(MAX_CONNECTIONS + 6)]
        for sock in flood:
            sock.sendall(KERNELS)
        socks = [kept, unread, silent, *flood]
        try:
            assert left_open(socks, within=20) == []  # a deadline to reach a state, not a speed target
        finally:
            for sock in socks:
                sock.close()
        status, _, body = ask(port, KERNELS + b"Connection: close\r\n\r\n")
        assert status == 200 and "kernels" in json.loads(body)


def test_the_servers_own_refusals_are_the_apps_json_with_its_headers(tmp_path, monkeypatch):
    """uvicorn answered a request past its connection limit and a request it cannot parse in
    plain text, without the headers every answer carries."""
    monkeypatch.setattr(web_app, "HEADER_SECONDS", 60)  # the flood stays while the busy answer is asked for
    with serving(tmp_path / "runs") as (srv, port):
        malformed = [KERNELS + b"Content-Length: -1\r\n\r\n",
                     KERNELS + b"Host: 127.0.0.1\r\n\r\n",  # two Host headers
                     b"GET /api/kernels?q=" + b"x" * 20_000]  # over 16 KB, not even the request line yet
        for request in malformed:
            status, headers, body = ask(port, request)
            assert status == 400 and headers["content-type"] == "application/json", body
            assert "not valid HTTP/1.1" in json.loads(body)["error"]
            assert SECURITY.items() <= headers.items()
        flood = [connect(port) for _ in range(MAX_CONNECTIONS + 2)]
        try:
            for sock in flood:
                sock.sendall(KERNELS)
            deadline = time.monotonic() + 20  # until the server has taken every one of them in
            while len(srv.server_state.connections) < MAX_CONNECTIONS + 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            status, headers, body = ask(port, KERNELS + b"\r\n")
        finally:
            for sock in flood:
                sock.close()
        assert status == 503 and headers["content-type"] == "application/json", body
        assert json.loads(body)["error"] == (f"the server is busy ({MAX_CONNECTIONS} connections open); "
                                             "try again in a moment")
        assert SECURITY.items() <= headers.items()


def test_uploads_trickling_in_hold_no_picture_slot(tmp_path, monkeypatch):
    """Four uploads sending a byte and then nothing took every picture slot while they waited for
    their bodies: nobody's picture was decoded for READ_SECONDS. Bodies are now read first."""
    monkeypatch.setattr(inputs, "GRACE_SECONDS", 60)  # they stay: the slots are what this is about
    with serving(tmp_path / "runs") as (srv, port):
        stalled = [connect(port) for _ in range(PICTURES_AT_ONCE)]
        try:
            for sock in stalled:
                sock.sendall(upload(b"\x89", length=1000))
            deadline = time.monotonic() + 20  # until the app reads all four bodies
            while len(srv.server_state.tasks) < PICTURES_AT_ONCE and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(srv.server_state.tasks) == PICTURES_AT_ONCE
            with connect(port) as sock:
                sock.settimeout(20)  # the stalled ones hold on for 60 s, so a wait for a slot shows
                sock.sendall(upload(png()))
                try:
                    status, _, body = answer(sock)
                except TimeoutError:
                    pytest.fail("no answer within 20 s: the upload waited for a slot that the stalled ones held")
        finally:
            for sock in stalled:
                sock.close()
    assert status == 200 and json.loads(body)["h"] == 20


def test_a_body_that_trickles_is_dropped_after_a_grace(monkeypatch):
    """A few bytes a second held a connection (and, before, a picture slot) for all READ_SECONDS.
    After GRACE_SECONDS a body must come at MIN_RATE on average; one that pauses but has sent
    enough is read to the end."""
    from starlette.exceptions import HTTPException
    from starlette.requests import Request

    monkeypatch.setattr(inputs, "READ_SECONDS", 5)
    monkeypatch.setattr(inputs, "GRACE_SECONDS", 0.3)
    monkeypatch.setattr(inputs, "MIN_RATE", 1000)

    def body(pieces):
        async def receive():
            size, pause = pieces.pop(0)
            await anyio.sleep(pause)
            return {"type": "http.request", "body": b"x" * size, "more_body": bool(pieces)}
        return Request({"type": "http", "method": "POST", "headers": []}, receive)

    trickle = [(1, 0.05)] * 200  # 20 bytes a second
    with pytest.raises(HTTPException) as e:
        anyio.run(inputs.read_body, body(trickle), 10_000)
    assert e.value.status_code == 408
    assert e.value.detail == "upload: arriving slower than 1000 bytes a second; send it over a faster connection"
    assert len(trickle) > 150  # dropped after about 0.4 s, not at READ_SECONDS
    burst_then_pause = [(2000, 0), (10, 0.6), (10, 0)]  # 2 kB buy 2 s
    assert len(anyio.run(inputs.read_body, body(burst_then_pause), 10_000)) == 2020


def test_a_client_gone_mid_body_ends_its_request_quietly(tmp_path):
    """A tab closed in the middle of an upload wrote "Exception in ASGI application" and a
    40-line traceback to the server's log: a 500, which the docs call a bug."""
    with serving(tmp_path / "runs") as (srv, port):
        seen = []
        handler = logging.Handler()
        handler.emit = lambda record: seen.append(record.getMessage())
        logging.getLogger("uvicorn.error").addHandler(handler)
        try:
            for path, kind in (("/api/upload", "image/png"), ("/api/conv", "application/json")):
                with connect(port) as sock:
                    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n"
                                 "Content-Length: 1000\r\n\r\n{\"a\"".encode())
                    deadline = time.monotonic() + 20  # until the app waits for the rest of the body
                    while not srv.server_state.tasks and time.monotonic() < deadline:
                        time.sleep(0.02)
                deadline = time.monotonic() + 20  # the socket is closed: until the request has ended
                while srv.server_state.tasks and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert not srv.server_state.tasks
            assert ask(port, KERNELS + b"Connection: close\r\n\r\n")[0] == 200
        finally:
            logging.getLogger("uvicorn.error").removeHandler(handler)
    assert not [line for line in seen if "Exception" in line], seen


# --- refusals outside the routes, and what the exposed app shows ------------------------------

def test_refusals_made_before_and_after_the_routes_carry_the_security_headers(tmp_path, monkeypatch):
    """The Host and Origin refusals (RequestGuard) were made outside SecurityHeaders, and a 500
    is answered by Starlette outside every middleware."""
    def broken(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(web_app, "_conv", broken)
    with TestClient(create_app(tmp_path), base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        answers = {
            400: c.get("/api/runs", headers={"host": "evil.example"}),
            403: c.post("/api/conv", content=b"{}", headers={"content-type": "application/json",
                                                                "origin": "http://evil.example"}),
            500: c.post("/api/conv", content=b"{}", headers={"content-type": "application/json"}),
        }
    for status, r in answers.items():
        assert r.status_code == status and "error" in r.json(), r.text
        assert SECURITY.items() <= r.headers.items(), (status, r.headers)


def test_links_out_of_a_run_are_named_without_their_target(tmp_path):
    """On an exposed app, a run file linking out of the runs folder was named with its target
    (a path of the server's: `/home/...`), in the runs table, a run's page and the classifier's 400."""
    root = tmp_path / "runs"
    secret = tmp_path / "private (do not show)" / "notes.json"
    secret.parent.mkdir()
    secret.write_text("{}")
    for run, name, target in (("absolute", "model.json", secret), ("config", "config.json", secret),
                              ("relative", "model.json", Path("../../private (do not show)/notes.json"))):
        fake_classifier_run(root / run, "mlp")
        os.unlink(root / run / name)
        (root / run / name).symlink_to(target)
    link = {run: f"{run}/{name}: a symbolic link leading out of the run; a run's files stay in its folder"
            for run, name in (("absolute", "model.json"), ("config", "config.json"), ("relative", "model.json"))}
    with TestClient(create_app(root, allowed_hosts("0.0.0.0")), base_url="http://127.0.0.1") as c:
        listed = c.get("/api/runs")
        rows = {row["id"]: row for row in listed.json()["runs"]}
        answers = [listed]
        for run in ("absolute", "config"):  # the relative link leads nowhere: listing never opens model.json
            assert rows[run]["error"].startswith(link[run]), rows[run]
            shown = c.get("/api/run", params={"run": run})
            assert shown.json()["error"].startswith(link[run]), shown.text
            answers.append(shown)
        for run in ("absolute", "config", "relative"):
            r = c.post("/api/classify", params={"run": run}, content=png(28), headers={"content-type": "image/png"})
            assert r.status_code == 400 and r.json()["error"].startswith(link[run]), r.text
            answers.append(r)
    for r in answers:
        assert "private" not in r.text and str(tmp_path) not in r.text, r.text


# --- stopping while a client has stopped reading ------------------------------------------------

def stalled_download(port: int) -> socket.socket:
    """A client that asks for a big file and reads none of it (a paused download, a phone on a
    stalled link): the server's answer waits in its buffers."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /api/run/file?run=big&name=report.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return sock


def big_run(root: Path) -> Path:
    run = fake_classifier_run(root / "big", "mlp")
    (run / "report.html").write_text("<p>" + "x" * 20_000_000 + "</p>")  # far beyond the socket buffers
    return root


STOPS_WITHIN = 12  # seconds: the app's SHUTDOWN_SECONDS (5), and room for a busy machine


@pytest.mark.parametrize("interrupts", [1, 2])
def test_ctrl_c_stops_the_server_while_a_client_has_stopped_reading(tmp_path, interrupts):
    """A client that stopped reading a download held the server after Ctrl-C for as long as it
    stayed; a second Ctrl-C ended it with two tracebacks in the log. Now the first ends it within
    SHUTDOWN_SECONDS, the second at once, and nothing but the first line is printed."""
    import signal
    import subprocess
    import sys

    root = big_run(tmp_path / "runs")
    proc = subprocess.Popen([sys.executable, "-m", "neuralab", "serve", "--runs", str(root), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=default_signals)
    try:
        port = int(proc.stdout.readline().split("http://127.0.0.1:")[1].split()[0])
        with stalled_download(port):
            time.sleep(1)  # the answer has started and filled the buffers
            proc.send_signal(signal.SIGINT)
            if interrupts == 2:
                time.sleep(1)
                proc.send_signal(signal.SIGINT)
            started = time.monotonic()
            proc.wait(timeout=60)
            took = time.monotonic() - started
        log = proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()
    assert took < (STOPS_WITHIN if interrupts == 1 else 3), took
    assert "Traceback" not in log and "Error" not in log, log


def test_stopping_the_server_interrupts_the_training_before_the_last_answer_ends(tmp_path, monkeypatch):
    """The job was interrupted only once every answer had been sent: a client that stopped
    reading kept the training going for as long as it stayed."""
    from test_web_review import Training

    training = Training()
    monkeypatch.setattr(web_app.jobs.Jobs, "_spawn", lambda self, job: training)
    with serving(big_run(tmp_path / "runs")) as (srv, port):
        fake_classifier_run(tmp_path / "runs" / "a", "mlp")
        (tmp_path / "runs" / "a" / "results.json").unlink()
        queue = srv.config.app.state.served.jobs
        queue.resume("a")
        deadline = time.monotonic() + 20
        while queue.active("a")["state"] != "running":
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.05)
        with stalled_download(port):
            time.sleep(1)
            srv.should_exit = True
            assert training.stopped.wait(2), "the training went on"
            assert srv.server_state.connections, "the download had ended: the test tested nothing"


def test_a_third_ctrl_c_ends_the_server_while_its_training_still_saves(tmp_path, monkeypatch, capsys):
    """A second Ctrl-C left the server waiting, silent, for a training that took its time to save
    after the first (up to jobs.STOP_GRACE), and a third did nothing more. Now the second says
    what it waits for, and the third kills the training and ends the server at once."""
    import signal
    import subprocess
    import sys

    slow = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"]
    started = []
    monkeypatch.setattr(web_app.jobs.Jobs, "_spawn", lambda self, job: started.append(subprocess.Popen(slow))
                        or started[-1])
    root = tmp_path / "runs"
    (fake_classifier_run(root / "a", "mlp") / "results.json").unlink()
    srv = make_server(root, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not srv.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        queue = srv.config.app.state.served.jobs
        queue.resume("a")
        while queue.active("a")["state"] != "running":
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.05)
        srv.handle_exit(signal.SIGINT, None)
        time.sleep(0.5)
        srv.handle_exit(signal.SIGINT, None)
        thread.join(1)
        assert thread.is_alive() and started[0].poll() is None  # the training is given its time to save
        assert "waiting for the training of run a to save its epoch" in capsys.readouterr().err
        srv.handle_exit(signal.SIGINT, None)
        thread.join(5)  # a deadline to reach a state, not a speed target
        assert not thread.is_alive(), "the server still waits for the training"
        assert started[0].wait(5) == -signal.SIGKILL
    finally:
        for process in started:
            process.kill()
        srv.should_exit = True
        thread.join(60)


def test_a_client_that_stops_reading_is_dropped(tmp_path, monkeypatch):
    """A client that reads nothing of an answer held its connection for as long as it stayed."""
    monkeypatch.setattr(web_app, "STALL_SECONDS", 1, raising=False)
    with serving(big_run(tmp_path / "runs")) as (srv, port), stalled_download(port) as sock:
        time.sleep(3)
        got = 0
        sock.settimeout(10)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(1 << 20):
                got += len(chunk)
    assert got < 20_000_000, "the whole answer came: the client was not dropped"


def test_a_client_that_still_reads_slowly_is_not_dropped(tmp_path, monkeypatch):
    """A client reading an answer more slowly than the server sends it (a poor link) was dropped
    STALL_SECONDS after the buffers filled, while it still read: only one that reads nothing of
    it for STALL_SECONDS is."""
    monkeypatch.setattr(web_app, "STALL_SECONDS", 1)
    paused = []
    pause = web_app.Connection.pause_writing
    monkeypatch.setattr(web_app.Connection, "pause_writing", lambda self: paused.append(1) or pause(self))
    with serving(big_run(tmp_path / "runs")) as (srv, port), stalled_download(port) as sock:
        time.sleep(1)  # the answer fills the buffers: the server waits for the client
        sock.settimeout(10)
        until = time.monotonic() + 4 * web_app.STALL_SECONDS
        while time.monotonic() < until:  # 32 KB/s: far slower than the server sends
            assert sock.recv(8192), "the server closed the connection of a client still reading"
            time.sleep(0.25)
        # what the kernel had taken of the answer still comes after a drop: asked of the server itself
        assert len(srv.server_state.connections) == 1, "the server dropped a client still reading"
    assert paused, "the server never waited for the client: the test tested nothing"


def test_a_websocket_handshake_is_answered_as_a_request_and_logs_nothing(tmp_path):
    """The app has no WebSockets: a handshake, which any page can send, made uvicorn log advice
    to install a WebSocket library, once for every attempt."""
    handshake = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                 b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Origin: http://evil.example\r\n\r\n")
    said = []
    handler = logging.Handler(logging.INFO)
    handler.emit = said.append
    with serving(tmp_path / "runs") as (srv, port):
        logging.getLogger("uvicorn.error").addHandler(handler)
        try:
            status, headers, body = ask(port, handshake)
        finally:
            logging.getLogger("uvicorn.error").removeHandler(handler)
    assert status == 200 and b"<html" in body.lower(), (status, body[:200])
    assert not said, [r.getMessage() for r in said]
