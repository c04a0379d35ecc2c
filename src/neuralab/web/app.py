"""The ASGI application: four pages of plain HTML and JavaScript, and a small JSON API that
calls the library (``neuralab.mechanics``, ``neuralab.training``, ``neuralab.models.inspect``).

    /            home: the four tools
    /conv        convolution and pooling playground      POST /api/conv, /api/upload
    /classify    draw or upload, top-k and feature maps  POST /api/classify
    /runs        run directories and their reports       GET  /api/runs, /api/run, /api/run/file
    /forecast    forecast vs actual, baselines           GET  /api/forecast

Every answer carries a strict Content-Security-Policy (no script but ours, nothing fetched
from elsewhere); requests must name a host this server answers to (DNS rebinding); uploads
stop at 10 MB.
"""

from __future__ import annotations

import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from neuralab.errors import NeuralabError
from neuralab.web import classify as classifier
from neuralab.web import images, playground, runs
from neuralab.web.forecast import forecast_view

STATIC = Path(__file__).parent / "static"   # served as they are: scripts, style, sample pictures
PAGES_DIR = Path(__file__).parent / "pages"  # each page's body, put into layout.html
PAGES = {"index": "Home", "conv": "Convolution playground", "classify": "Classifier", "runs": "Runs",
         "forecast": "Forecast"}
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]

CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# A run's report.html is self-contained (inline style, images as data: URLs) and runs no script.
REPORT_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class SecurityHeaders:
    """Add the CSP and friends to every response that does not set its own CSP."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = {b"x-content-type-options": b"nosniff", b"referrer-policy": b"no-referrer",
                         b"content-security-policy": CSP.encode(), b"cache-control": b"no-store"}
                headers += [(k, v) for k, v in extra.items() if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def read_body(request: Request, limit: int = images.MAX_UPLOAD_BYTES) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (before reading it, when the
    client says its length; while reading it, when it does not)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(413, f"upload larger than {limit // (1024 * 1024)} MB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"upload larger than {limit // (1024 * 1024)} MB")
    if not body:
        raise NeuralabError("upload: the request holds no picture")
    return bytes(body)


async def read_json_body(request: Request) -> dict:
    data = await read_body(request, 64 * 1024)
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise NeuralabError("request: not valid JSON") from None
    if not isinstance(obj, dict):
        raise NeuralabError("request: expected a JSON object")
    return obj


def create_app(runs_dir: str | Path = "runs", hosts: list[str] | None = None) -> Starlette:
    """The app serving the runs under ``runs_dir``; ``hosts``: the Host names it answers to
    (default: the loopback names; ["*"] for any)."""
    root = Path(runs_dir).resolve()
    uploads = images.Uploads()
    models = classifier.Models()

    def page(name: str):
        html = render_page(name)

        async def endpoint(request):
            return HTMLResponse(html)
        return endpoint

    async def kernels(request):
        from neuralab.mechanics import KERNELS

        return JSONResponse({"kernels": {n: k.tolist() for n, k in KERNELS.items()},
                             "samples": images.SAMPLES})

    async def upload(request):
        data = await read_body(request)
        picture = images.fit_within(images.decode(data, "L"))
        return JSONResponse({"token": uploads.add(picture), "h": picture.shape[0], "w": picture.shape[1]})

    def conv_sync(params: dict) -> dict:
        source = str(params.get("image", "sample:digit"))
        kind, _, name = source.partition(":")
        if kind == "sample":
            picture = images.sample(name)
        elif kind == "upload":
            picture = uploads.get(name)
        else:
            raise NeuralabError(f"image {source!r}: give sample:NAME or upload:TOKEN")
        at = params.get("at")
        if at is not None:
            try:
                at = (int(at[0]), int(at[1]))
            except (TypeError, ValueError, IndexError):
                raise NeuralabError(f"at {at!r}: give [row, column]") from None
        return playground.run(picture, op=str(params.get("op", "conv")), kernel=str(params.get("kernel", "sobel-x")),
                              stride=params.get("stride", 1), padding=params.get("padding", "valid"),
                              size=params.get("size", 2), scale=str(params.get("scale", "auto")), at=at)

    async def conv(request):
        from starlette.concurrency import run_in_threadpool

        return JSONResponse(await run_in_threadpool(conv_sync, await read_json_body(request)))

    async def run_list(request):
        from starlette.concurrency import run_in_threadpool

        def rows():
            return [runs.describe(root, r) for r in runs.find_runs(root)]
        return JSONResponse({"root": str(root), "runs": await run_in_threadpool(rows)})

    async def run_details(request):
        return JSONResponse(runs.details(root, request.query_params.get("run", "")))

    async def run_file(request):
        path, media = runs.run_file(root, request.query_params.get("run", ""), request.query_params.get("name", ""))
        headers = {"content-security-policy": REPORT_CSP} if path.suffix == ".html" else None
        return FileResponse(path, media_type=media, headers=headers)

    async def classify(request):
        from starlette.concurrency import run_in_threadpool

        q = request.query_params
        run_dir = runs.resolve_run(root, q.get("run", ""))
        data = await read_body(request)
        result = await run_in_threadpool(classifier.classify, models, run_dir, data, q.get("source", "upload"),
                                         q.get("invert", "auto"))
        return JSONResponse(result)

    async def forecast(request):
        return JSONResponse(forecast_view(root, request.query_params.get("run", "")))

    async def not_found(request, exc):
        return JSONResponse({"error": str(exc)}, status_code=404)

    async def bad_input(request, exc):
        return JSONResponse({"error": str(exc)}, status_code=400)

    async def http_error(request, exc):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    routes = [
        Route("/", page("index")),
        *(Route(f"/{name}", page(name)) for name in PAGES if name != "index"),
        Route("/index.html", lambda request: RedirectResponse("/")),
        Route("/api/kernels", kernels),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/conv", conv, methods=["POST"]),
        Route("/api/runs", run_list),
        Route("/api/run", run_details),
        Route("/api/run/file", run_file),
        Route("/api/classify", classify, methods=["POST"]),
        Route("/api/forecast", forecast),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts or LOOPBACK_NAMES),
                  Middleware(SecurityHeaders)]
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={runs.NotFound: not_found, NeuralabError: bad_input,
                                         HTTPException: http_error})


def render_page(name: str) -> str:
    """Page ``name``: its body from pages/ inside the shared layout, with its script if it has one."""
    from string import Template

    script = f'<script src="/static/{name}.js" defer></script>\n' if (STATIC / f"{name}.js").is_file() else ""
    layout = Template((PAGES_DIR / "layout.html").read_text())
    return layout.substitute(title=PAGES[name], page=name, script=script,
                             body=(PAGES_DIR / f"{name}.html").read_text())


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str) -> list[str]:
    """The Host header values to answer: any for a wildcard bind, else loopback names (+ ``host``)."""
    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    if is_loopback(host):
        return LOOPBACK_NAMES
    return LOOPBACK_NAMES + ([host, f"[{host}]"] if ":" in host else [host])  # IPv6 comes in brackets


def make_server(runs_dir: str | Path = "runs", host: str = "127.0.0.1", port: int = 7860):
    """A uvicorn server for the app; ``run()`` blocks, a thread may set ``should_exit``.
    Port 0 takes a free port: read it from ``server.servers[0].sockets[0]`` once ``started``."""
    import uvicorn

    config = uvicorn.Config(create_app(runs_dir, allowed_hosts(host)), host=host, port=port,
                            log_level="warning", server_header=False, lifespan="off")
    return uvicorn.Server(config)


def check_port(host: str, port: int) -> None:
    """A one-line error for a port in use or a host not on this machine, before uvicorn starts."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise NeuralabError(f"`host` {host} `port` {port}: cannot listen there ({e.strerror}); "
                                "choose another `port`") from None
