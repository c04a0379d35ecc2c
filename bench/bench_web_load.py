"""The web app under load: `neuralab serve` in its own process on a free localhost port, sent
a mix of page and API requests by 20 clients at once, then asked for a small page while six
4000 x 4000 photos are being uploaded. Writes its block of docs/benchmarks.md.

    python bench/bench_web_load.py          # a few minutes: trains a LeNet-5 for 1 epoch on 512 images first

Bounded on purpose: 1,800 requests in all, at most 20 in flight, localhost only. Figures: errors
(any answer but 2xx, or no answer), latency p50/p95 per kind of request, the server's resident
memory after a warm-up, after each half of the mix, and its peak; and the latency of a small
GET alone and while the big uploads are decoded (they were decoded on the event loop once: a
2 ms GET took 664 ms).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
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

import httpx2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from neuralab.data.idx import read_idx  # noqa: E402
from neuralab.training import ClassifierConfig, TrainConfig, train_classifier  # noqa: E402

CLIENTS = 20            # requests in flight at once
WARMUP, HALF = 100, 800
BIG_ROUNDS, BIG_UPLOADS, SMALL_GETS = 3, 6, 20
GETS = ["/", "/conv", "/classify", "/runs", "/static/common.js", "/api/kernels", "/api/runs", "/api/run?run=lenet"]
KERNELS = ["sobel-x", "box-blur", "sharpen", "laplacian", "1 0 -1; 2 0 -2; 1 0 -1", "1/25 " * 5 + (";" + "1/25 " * 5) * 4]


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def big_photo(seed: int) -> bytes:
    """A 4000 x 4000 colour JPEG (gradients, discs and noise) of a few megabytes, like a phone photo."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices((4000, 4000), dtype=np.float32)
    image = np.stack([rows / 16, cols / 16, (rows + cols) / 32], axis=-1)
    for _ in range(12):
        r, c, radius = rng.uniform(0, 4000, 3)
        image[(rows - r) ** 2 + (cols - c) ** 2 < (radius / 4) ** 2] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory(pid: int) -> dict[str, float]:
    """The server's resident memory now and at its peak, in MB (Linux /proc)."""
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def requests_mix(n: int, rng: random.Random, digits: list[bytes], uploads: list[bytes]) -> list[tuple]:
    """n requests: 40% GETs of pages and API, 20% playground, 20% uploads, 20% classify."""
    out = []
    for _ in range(n):
        kind = rng.choices(["get", "conv", "upload", "classify"], [4, 2, 2, 2])[0]
        if kind == "get":
            out.append(("get", "GET", rng.choice(GETS), None, None))
        elif kind == "conv":
            body = {"image": rng.choice(["sample:digit", "sample:shapes", "sample:photo"]),
                    "op": rng.choice(["conv", "conv", "max", "avg"]), "kernel": rng.choice(KERNELS),
                    "stride": rng.choice([1, 2]), "padding": rng.choice(["valid", "same", 1])}
            out.append(("conv", "POST", "/api/conv", json.dumps(body).encode(), "application/json"))
        elif kind == "upload":
            out.append(("upload", "POST", "/api/upload", rng.choice(uploads), "application/octet-stream"))
        else:
            source = rng.choice(["canvas", "upload"])
            out.append(("classify", "POST", f"/api/classify?run=lenet&source={source}", rng.choice(digits),
                        "application/octet-stream"))
    return out


async def send(client, base: str, request: tuple) -> tuple[str, float, int | None]:
    kind, method, path, body, ctype = request
    headers = {"origin": base} if method == "POST" else {}
    if ctype:
        headers["content-type"] = ctype
    t0 = time.perf_counter()
    try:
        r = await client.request(method, base + path, content=body, headers=headers)
        status = r.status_code
    except httpx2.HTTPError:
        status = None
    return kind, time.perf_counter() - t0, status


async def run_mix(client, base: str, requests: list[tuple]) -> list[tuple]:
    queue = list(reversed(requests))
    results = []

    async def worker():
        while queue:
            results.append(await send(client, base, queue.pop()))
    await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    return results


async def gets_alone(client, base: str, n: int) -> list[float]:
    return [(await send(client, base, ("get", "GET", "/api/kernels", None, None)))[1] for _ in range(n)]


async def gets_during_uploads(client, base: str, photos: list[bytes]) -> tuple[list[float], list[tuple]]:
    """SMALL_GETS GETs, one after another, sent while BIG_UPLOADS photos are being uploaded."""
    uploads = [asyncio.create_task(send(client, base, ("big", "POST", "/api/upload", p, "image/jpeg")))
               for p in photos]
    await asyncio.sleep(0.3)  # the photos are sent (a few MB each over loopback) and decoding
    spent = []
    for _ in range(SMALL_GETS):
        if all(u.done() for u in uploads):
            break
        spent.append((await send(client, base, ("get", "GET", "/api/kernels", None, None)))[1])
    return spent, await asyncio.gather(*uploads)


def quantile(values: list[float], q: float) -> float:
    return float(np.quantile(values, q)) if values else float("nan")


def main() -> None:
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = idx_subset(DATASETS, "mnist", tmp / "mnist", 512, 256)
        train_classifier(ClassifierConfig(model="lenet5", data="mnist", data_dir=str(data),
                                          train=TrainConfig(epochs=1, batch_size=64)),
                         out=tmp / "runs" / "lenet", verbose=False)
        test_images = read_idx(DATASETS / "mnist" / "t10k-images-idx3-ubyte.gz")[:50]
        digits = [png(np.kron(d, np.ones((10, 10), np.uint8))) for d in test_images[:25]] + \
                 [png(d) for d in test_images[25:]]
        pictures = np.random.default_rng(1)
        uploads = [png((pictures.random((h, w)) * 255).astype(np.uint8)) for h, w in
                   [(28, 28), (96, 96), (300, 200), (600, 450), (1000, 800)]]
        photos = [big_photo(seed) for seed in range(BIG_UPLOADS)]

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "neuralab", "serve", "--runs", str(tmp / "runs"),
                                   "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            assert "neuralab web app on" in server.stdout.readline()
            load = os.getloadavg()[0]
            figures = asyncio.run(drive(base, server.pid, rng, digits, uploads, photos))
        finally:
            server.terminate()
            server.wait(timeout=30)
    report(figures, load, sum(len(p) for p in photos) / len(photos))


async def drive(base, pid, rng, digits, uploads, photos) -> dict:
    limits = httpx2.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx2.AsyncClient(limits=limits, timeout=120) as client:
        for _ in range(100):  # the server imports torch before it listens; wait for it
            try:
                await client.get(base + "/api/kernels")
                break
            except httpx2.HTTPError:
                await asyncio.sleep(0.2)
        results = await run_mix(client, base, requests_mix(WARMUP, rng, digits, uploads))
        memory_after = {"warm-up": memory(pid)}
        for half in ("first half", "second half"):
            results += await run_mix(client, base, requests_mix(HALF, rng, digits, uploads))
            memory_after[half] = memory(pid)
        alone, during, big = [], [], []
        for _ in range(BIG_ROUNDS):
            alone += await gets_alone(client, base, SMALL_GETS)
            spent, answers = await gets_during_uploads(client, base, photos)
            during += spent
            big += answers
        memory_after["big uploads"] = memory(pid)
    return {"results": results, "memory": memory_after, "alone": alone, "during": during, "big": big}


def report(f: dict, load: float, photo_bytes: float) -> None:
    results, big = f["results"], f["big"]
    sent = len(results) + len(big) + len(f["alone"]) + len(f["during"])
    rows = []
    for kind in ("get", "conv", "upload", "classify", None):
        mine = [r for r in results if kind is None or r[0] == kind]
        spent = [r[1] * 1000 for r in mine]
        errors = sum(1 for r in mine if r[2] is None or not 200 <= r[2] < 300)
        rows.append(f"| {kind or '**all**'} | {len(mine)} | {errors} | {quantile(spent, 0.5):.0f} | "
                    f"{quantile(spent, 0.95):.0f} | {max(spent):.0f} |")
    big_errors = sum(1 for r in big if r[2] != 200)
    m = f["memory"]
    lines = [
        "## Web app under load",
        "",
        f"Measured by `python bench/bench_web_load.py` on {machine()} (a shared 2-core machine: the 20 "
        f"clients and the server share its cores), {time.strftime('%Y-%m-%d')}, load average {load:.1f} at the "
        f"start. `neuralab serve` runs in its own process on 127.0.0.1 with a LeNet-5 trained for one epoch; "
        f"{CLIENTS} clients keep {CLIENTS} requests in flight through keep-alive connections. The mix: "
        "40% GETs (pages, a script, the kernel list, the run list, a run), 20% playground requests (three "
        "samples, six kernels up to 5 x 5, max and average pooling, strides 1 and 2), 20% uploads of "
        "random-noise PNGs from 28 x 28 to 1000 x 800, 20% classify requests (a digit at 28 x 28 or 280 x 280, "
        f"as drawn or uploaded). {sent:,} requests in all.",
        "",
        "| requests | sent | errors | p50 (ms) | p95 (ms) | max (ms) |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Server memory (resident, MB): "
        + ", ".join(f"after the {k} {v['VmRSS']:.0f}" for k, v in m.items())
        + f"; peak {m['big uploads']['VmHWM']:.0f}. Growth over the second half of the mix: "
        f"{m['second half']['VmRSS'] - m['first half']['VmRSS']:+.0f} MB.",
        "",
        f"A small GET (`/api/kernels`) alone: median {statistics.median(f['alone']) * 1000:.1f} ms; while "
        f"{BIG_UPLOADS} photos of 4000 x 4000 pixels ({photo_bytes / 1e6:.1f} MB JPEGs) are uploaded at once: "
        f"median {statistics.median(f['during']) * 1000:.1f} ms, p95 {quantile(f['during'], 0.95) * 1000:.1f} ms "
        f"({len(f['during'])} GETs over {BIG_ROUNDS} rounds; {len(big)} uploads, {big_errors} errors). The "
        "photos are decoded in worker threads, four at a time; when they were decoded on the event loop, "
        "issue 14 measured 664 ms for a 2 ms GET.",
    ]
    update_section("bench_web_load", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
