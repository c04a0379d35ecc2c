"""Does the app stay quick while it trains? `neuralab serve` in its own process on a free
localhost port; the pages a user clicks through (the runs list, a run page and its live
poll, the script, the job list) are timed one after the other with nothing else running,
then again while a LeNet-5 training started through the app's own form (POST /api/jobs/start)
runs in its separate process. Writes its block of docs/benchmarks.md.

    python bench/bench_web_jobs.py            # about two minutes
    python bench/bench_web_jobs.py --rounds 10 --no-write

Issue 19's target: page requests answer in under 100 ms median while a job trains.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _doc import DATASETS, machine, update_section  # noqa: E402
from helpers import idx_subset  # noqa: E402

TARGET_MS = 100.0
TRAIN_IMAGES = 20_000  # enough that the training outlasts the measurement


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive connection, as a browser tab holds."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes, float]:
        headers = {"content-type": "application/json"} if body is not None else {}
        t0 = time.perf_counter()
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, data, time.perf_counter() - t0

    def get(self, path: str) -> dict:
        status, data, _ = self.request("GET", path)
        assert status == 200, (path, status, data[:200])
        return json.loads(data)

    def post(self, path: str, body: dict) -> dict:
        status, data, _ = self.request("POST", path, body)
        assert status in (200, 201), (path, status, data[:200])
        return json.loads(data)


def timed_pages(client: Client, pages: list[str], rounds: int) -> dict[str, list[float]]:
    spent: dict[str, list[float]] = {p: [] for p in pages}
    for _ in range(rounds):
        for page in pages:
            status, _, seconds = client.request("GET", page)
            assert status == 200, (page, status)
            spent[page].append(seconds * 1e3)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="times each page is asked, idle and while training")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        idx_subset(DATASETS / "fashion-mnist", tmp / "cache" / "fashion-mnist", TRAIN_IMAGES, 500)
        (tmp / "runs").mkdir()
        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NEURALAB_DATA": str(tmp / "cache")}
        server = subprocess.Popen([sys.executable, "-m", "neuralab", "serve", "--runs", str(tmp / "runs"),
                                   "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env=env)
        try:
            assert "neuralab web app on" in server.stdout.readline()
            load = os.getloadavg()[0]
            client = Client(port)
            for _ in range(300):  # the line is printed just before uvicorn listens
                try:
                    client.get("/api/jobs?choices")
                    break
                except ConnectionRefusedError:
                    client.conn.close()
                    time.sleep(0.2)
            # A first, short run gives the run pages something to show while idle.
            first = client.post("/api/jobs/start", {"model": "lenet5", "data": "fashion-mnist", "epochs": 1})
            while client.get(f"/api/run/live?run={first['run']}")["job"] is not None:
                time.sleep(1)
            run = first["run"]
            pages = ["/runs", "/api/runs", f"/api/run?run={run}", f"/api/run/live?run={run}", "/static/runs.js",
                     "/api/jobs"]
            idle = timed_pages(client, pages, args.rounds)

            job = client.post("/api/jobs/start", {"model": "lenet5", "data": "fashion-mnist", "epochs": 50})
            live = f"/api/run/live?run={job['run']}"
            while (client.get(live).get("progress") or {}).get("step", 0) < 1:  # training, not starting up
                time.sleep(0.5)
            pages += [live]
            training = timed_pages(client, pages, args.rounds)
            state = client.get(live)
            assert state["status"] == "running", state  # it trained the whole time
            client.post("/api/jobs/stop", {"run": job["run"]})
            progress = state["progress"]
        finally:
            server.terminate()  # SIGTERM: uvicorn shuts down, and the app's shutdown stops its job
            server.wait(timeout=60)
    report(idle, training, progress, load, args.rounds)


def report(idle: dict, training: dict, progress: dict, load: float, rounds: int) -> None:
    def median(values):
        return statistics.median(values) if values else float("nan")

    def p95(values):
        return sorted(values)[min(len(values) - 1, int(0.95 * len(values)))] if values else float("nan")

    rows = []
    for page in training:
        name = page.split("?")[0] + ("?run=…" if "?" in page else "")
        name += " (the training run)" if page not in idle else ""
        rows.append(f"| `{name}` | {median(idle.get(page, [])):.1f} | {median(training[page]):.1f} | "
                    f"{p95(training[page]):.1f} |")
    all_training = [v for values in training.values() for v in values]
    overall = median(all_training)
    lines = [
        "## Web app while a training runs",
        "",
        f"Measured by `python bench/bench_web_jobs.py --rounds {rounds}` on {machine()}, "
        f"{time.strftime('%Y-%m-%d')}, load average {load:.1f} at the start (a shared machine). `neuralab serve` "
        "runs in its own process; one keep-alive client asks each page in turn, first with nothing training, "
        "then while a LeNet-5 started through the app's form (`POST /api/jobs/start`) trains on "
        f"{TRAIN_IMAGES:,} Fashion-MNIST images in its own process (about "
        f"{progress.get('samples_per_s') or 0:,.0f} images/s meanwhile).",
        "",
        "| request | idle, median (ms) | training, median (ms) | training, p95 (ms) |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        f"Median over every request while training: **{overall:.1f} ms**; the {TARGET_MS:.0f} ms target is "
        f"**{'met' if overall < TARGET_MS else 'not met'}**.",
    ]
    text = "\n".join(lines)
    print(text)
    if "--no-write" not in sys.argv:
        update_section("bench_web_jobs", text)


if __name__ == "__main__":
    main()
