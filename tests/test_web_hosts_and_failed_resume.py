"""Review of session 49's web fixes: `serve --host` with a name that resolves to IPv6 alone, a GIF
whose frame is larger than its screen, and a resume as the runs list and the run page tell it
(while it loads its data, and once it has failed)."""

from __future__ import annotations

import io
import json
import socket
import struct
import subprocess
import threading

import pytest
from PIL import Image
from starlette.testclient import TestClient

from neuralab.web import create_app, jobs
from neuralab.web.app import check_host, listening_socket
from neuralab.web.security import is_loopback, normal_host
from test_web_app import PICTURE
from test_web_jobs import JSON, wait_for
from test_web_review import interrupted

# What `neuralab train --resume` prints last when its data has gone from the machine
RESUME_ERROR = ("neuralab: error: `data` fashion-mnist: not found on this machine; fetch it with `neuralab data "
                "fetch fashion-mnist`, or give --data-dir DIR")


# --- --host: the family the name resolves to --------------------------------------------------

@pytest.fixture
def names(monkeypatch):
    """v6only.test resolving to ::1 alone, both.test to ::1 first and 127.0.0.1 (as /etc/hosts
    would make them), through the resolver Python asks; other names as the machine resolves them."""
    real = socket.getaddrinfo
    v6, v4 = (socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")
    table = {"v6only.test": [v6], "both.test": [v6, v4]}

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host not in table:
            return real(host, port, family, type, proto, flags)
        return [(fam, socket.SOCK_STREAM, 6, "", (address, port, 0, 0) if fam == socket.AF_INET6 else (address, port))
                for fam, address in table[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_name_that_resolves_to_ipv6_alone_is_listened_on_there(names):
    """It was bound as IPv4 (it has no colon), found no IPv4 address, and was told that it
    resolves to nothing: neither an address nor a name that resolves to one."""
    check_host("v6only.test")
    with listening_socket("v6only.test", 0) as sock:
        assert (sock.family, sock.getsockname()[0]) == (socket.AF_INET6, "::1")
        with socket.create_connection(("::1", sock.getsockname()[1]), timeout=10):
            sock.accept()[0].close()


def test_a_name_with_both_families_is_listened_on_by_its_ipv4_address_as_before(names):
    with listening_socket("both.test", 0) as sock:
        assert (sock.family, sock.getsockname()[0]) == (socket.AF_INET, "127.0.0.1")


@pytest.mark.parametrize("client, named, loopback", [
    ("::ffff:127.0.0.1", "127.0.0.1", True),  # this machine, through a server on `::`
    ("::ffff:192.0.2.2", "192.0.2.2", False),
    ("[::FFFF:7F00:1]", "127.0.0.1", True),
    ("0:0:0:0:0:0:0:1", "::1", True),
    ("fe80::1%eth0", "fe80::1", False),
    ("LocalHost.", "localhost", True),
])
def test_an_ipv4_client_written_as_ipv6_is_named_and_judged_as_ipv4(client, named, loopback):
    """ipaddress (Python 3.11) calls ::ffff:127.0.0.1 no loopback, so on `--host ::` this
    machine's own connections were capped, and every refusal named the mapped form."""
    assert (normal_host(client), is_loopback(client)) == (named, loopback)


# --- a GIF's frame past its screen --------------------------------------------------------------

def test_a_gif_whose_frame_declares_too_many_pixels_is_refused_in_one_line(tmp_path):
    """Pillow's GIF reader makes its own bomb check when a frame is larger than the screen,
    inside the reading that the app repeats to name the size: it escaped as a 500."""
    buf = io.BytesIO()
    Image.new("L", (1, 1), 200).save(buf, "GIF")
    gif = bytearray(buf.getvalue())
    struct.pack_into("<HH", gif, gif.index(b",\x00\x00\x00\x00") + 5, 30_000, 30_000)  # the frame's sides
    with TestClient(create_app(tmp_path / "runs"), base_url="http://127.0.0.1") as c:
        r = c.post("/api/upload", content=bytes(gif), headers=PICTURE)
    assert (r.status_code, r.json()) == (400, {"error": "upload: 30000x30000 pixels is more than the 16,000,000 allowed "
                                                        "(too large to decode safely); resize it first"})


# --- a resume, on the runs list and the run page -----------------------------------------------

class FailingResume:
    """A stand-in for `neuralab train --resume`'s process: it loads its data (never taking the
    run's lock) until ``fail`` is set, then prints the command's error line and exits 2."""

    def __init__(self, log):
        self.log, self.fail = log, threading.Event()

    def send_signal(self, sig):  # a stop, or the server closing
        self.fail.set()

    kill = send_signal

    def poll(self):
        return 2 if self.fail.is_set() else None

    def wait(self, timeout=None):
        if not self.fail.wait(timeout):
            raise subprocess.TimeoutExpired("neuralab train", timeout)
        self.log.write_text(f"Loading fashion-mnist...\n{RESUME_ERROR}\n")
        return 2


def failing_resumes(monkeypatch) -> list[FailingResume]:
    """Make each job of the app a FailingResume; the list fills as they start."""
    made = []

    def spawn(self, job):
        with self._log(job):
            pass
        made.append(FailingResume(job.log))
        return made[-1]

    monkeypatch.setattr(jobs.Jobs, "_spawn", spawn)
    return made


def test_the_runs_list_and_the_run_page_say_resuming_alike_and_a_failed_resume_is_said(tmp_path, monkeypatch):
    """While the resume loaded its data the run page said "resuming" and the runs list
    "interrupted"; once it failed, the run page was as if Resume had never been pressed."""
    root = tmp_path / "runs"
    interrupted(root, "a")
    interrupted(root, "b")
    made = failing_resumes(monkeypatch)
    with TestClient(create_app(root), base_url="http://127.0.0.1") as c:
        def live():
            return c.get("/api/run/live", params={"run": "a"}).json()

        def listed():
            return {row["id"]: row["status"] for row in c.get("/api/runs").json()["runs"]}

        assert live()["failed_job"] is None  # never tried
        job = c.post("/api/jobs/resume", content=json.dumps({"run": "a"}), headers=JSON).json()
        wait_for(lambda: (live()["job"] or {}).get("state") == "running", 30, "the resume to run")
        assert listed() == {"a": "resuming", "b": "interrupted"}
        assert live()["status"] == c.get("/api/run", params={"run": "a"}).json()["status"] == "resuming"

        made[0].fail.set()
        wait_for(lambda: live()["job"] is None, 30, "the resume to fail")
        state = live()
        assert (state["status"], state["resume_refused"]) == ("interrupted", "")  # Resume is offered again
        assert {k: state["failed_job"][k] for k in ("id", "what", "state", "error")} == {
            "id": job["id"], "what": "resume", "state": "failed", "error": RESUME_ERROR}
        assert listed() == {"a": "interrupted", "b": "interrupted"}
        assert c.get("/api/run/live", params={"run": "b"}).json()["failed_job"] is None  # another run's job
