"""`neuralab serve --host` judged by the address it listens on: an IPv6 spelling of "every
interface" (`0::0`) answers the machine's own names as `::` does, and a name that resolves to a
loopback address (Debian's 127.0.1.1 for the machine's own name) is private: no warning, and the
runs page keeps its training form."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from starlette.testclient import TestClient

from neuralab.web.app import make_server
from neuralab.web.security import is_loopback

SERVE = [sys.executable, "-m", "neuralab", "serve", "--port", "0"]


def serve(*flags: str, cwd):
    """A `neuralab serve` process and the first line it prints (the URL)."""
    (cwd / "runs").mkdir(exist_ok=True)
    proc = subprocess.Popen([*SERVE, *flags, "--runs", "runs"], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "NEURALAB_RUNS": str(cwd / "runs")})
    return proc, proc.stdout.readline()


def stop(proc) -> str:
    proc.terminate()
    return proc.communicate(timeout=30)[1]


def status(port: int, host_header: str) -> int:
    """GET / through loopback, naming ``host_header`` as a browser reaching the machine by it would."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": f"{host_header}:{port}"})
    try:
        with urllib.request.urlopen(request, timeout=20) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def ipv6_wildcard() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_wildcard(), reason="no IPv6 on this machine")
@pytest.mark.parametrize("host", ["0::0", "0:0:0:0:0:0:0:0"])
def test_an_ipv6_spelling_of_every_interface_answers_the_machine_s_names(tmp_path, host):
    proc, line = serve("--host", host, cwd=tmp_path)
    try:
        assert line.startswith("neuralab web app on http://localhost:"), line
        port = int(line.split()[4].rsplit(":", 1)[1])
        # what a learner's browser sends, reaching the machine by its name: answered, as with --host ::
        assert status(port, socket.gethostname()) == 200
        assert status(port, "rebound.example") == 400  # a DNS-rebinding page's name still is not
    finally:
        err = stop(proc)
    assert "reachable from other machines" in err, err
    assert "requests naming" in err and ", ::," not in err, err  # no browser names ::


def loopback_name() -> str | None:
    """This machine's name where it resolves to a loopback address (/etc/hosts on Debian and
    Ubuntu gives it 127.0.1.1), else None."""
    name = socket.gethostname()
    try:
        address = socket.getaddrinfo(name, None, socket.AF_INET)[0][4][0]
    except (OSError, IndexError):
        return None
    return name if name != "localhost" and is_loopback(address) else None


@pytest.mark.skipif(loopback_name() is None, reason="this machine's name does not resolve to a loopback address")
def test_serving_on_the_machine_s_name_that_resolves_to_loopback_warns_of_nothing(tmp_path):
    name = loopback_name()
    proc, line = serve("--host", name, cwd=tmp_path)
    try:
        assert line.startswith(f"neuralab web app on http://{name}:"), line
        port = int(line.split()[4].rsplit(":", 1)[1])
        assert status(port, name) == 200
    finally:
        err = stop(proc)
    assert "reachable from other machines" not in err and "requests naming" not in err, err


def test_a_name_that_resolves_to_loopback_keeps_the_training_form(tmp_path, monkeypatch):
    """`--host lab-pc` where lab-pc is 127.0.1.1 (the Debian way): the app listens on loopback,
    so it is the local app; with --allow-host it is reached through another name, so it is not."""
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host == "lab-pc":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.1.1", port or 0))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    (tmp_path / "runs").mkdir()
    for allow, local in (((), True), (("lab-pc.example.org",), False)):
        app = make_server(tmp_path / "runs", "lab-pc", 0, allow).config.app
        with TestClient(app, base_url="http://lab-pc") as client:
            answer = client.get("/api/jobs")
            assert answer.status_code == 200 and answer.json()["local"] is local, (allow, answer.json())
            started = client.post("/api/jobs/start", json={"model": "mlp", "data": "bogus-data"})
            # the local app checks the form (an unknown dataset: 400); an exposed one refuses training (403)
            assert started.status_code == (400 if local else 403), started.json()
