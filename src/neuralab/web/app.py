"""The ASGI application: four pages of plain HTML and JavaScript, and a small JSON API that
calls the library (``neuralab.mechanics``, ``neuralab.training``, ``neuralab.models.inspect``).

    /            home: the four tools
    /conv        convolution and pooling playground      POST /api/conv, /api/upload
    /classify    draw or upload, top-k and feature maps  POST /api/classify
    /runs        run directories and their reports       GET  /api/runs, /api/run, /api/run/file
                 a running training, live                GET  /api/run/live
                 start, stop, resume a training          GET  /api/jobs, POST /api/jobs/start|stop|resume
    /forecast    forecast vs actual, baselines           GET  /api/forecast

Every answer carries a strict Content-Security-Policy (no script but ours, nothing fetched
from elsewhere); requests must name a host this server answers to (DNS rebinding) and may not
come from another site's page (``security``); bodies are read within limits and checked field
by field (``inputs``); pictures are decoded in worker threads, a few at a time. Under uvicorn
each connection is a ``Connection``: closed when it keeps the server waiting for its headers,
and refused, when too many are open, in the same one-line JSON as every other refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from uvicorn.protocols.http.h11_impl import H11Protocol

from neuralab.errors import NeuralabError, ParameterError, Shown, out_of_memory, shell_word
from neuralab.web import classify as classifier
from neuralab.run_list import Rows
from neuralab.web import images, jobs, playground, runs
from neuralab.web.forecast import forecast_view
from neuralab.web.inputs import fields, read_body, read_json, text
from neuralab.web.security import (HEADERS, RequestGuard, SecurityHeaders, accepts, allowed_hosts, is_loopback,
                                   normal_host)

if TYPE_CHECKING:
    import anyio

STATIC = Path(__file__).parent / "static"   # served as they are: scripts, style, sample pictures
PAGES_DIR = Path(__file__).parent / "pages"  # each page's body, put into layout.html
PAGES = {"index": "Home", "conv": "Convolution playground", "classify": "Classifier", "runs": "Runs",
         "forecast": "Forecast"}
PAGE_PATHS = ["/" if name == "index" else f"/{name}" for name in PAGES]
# A run's report.html is self-contained (inline style, images as data: URLs) and runs no script.
REPORT_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
PICTURE_TYPES = ("image/*", "application/octet-stream")  # what the pages send a picture as
# Pictures decoded at once; the others wait with their bodies read (each at most 10 MB, read
# before a slot is taken, so that a client sending slowly holds no slot). Each decode holds a
# 16-million-pixel picture being decoded and converted (measured: 60 MB for a 4000 x 4000 grey
# PNG, 230 MB for one with transparency, laid on white), so a burst of uploads stays under a
# gigabyte, plus the bodies waiting (at most MAX_CONNECTIONS x 10 MB, when every connection
# sends a whole upload at once).
PICTURES_AT_ONCE = 4
MAX_CONNECTIONS = 64  # open at once; beyond this a request is answered 503 at once (``Connection``)
# Open at once from one address, below MAX_CONNECTIONS so that one client holding unfinished
# requests cannot shut everyone else out. A browser opens at most 6 connections to a server;
# 16 leaves room for two or three browsers on one machine. (Behind a proxy every client is the
# proxy's address: docs/web.md says not to put the app behind one.)
MAX_PER_CLIENT = 16
# A connection must send its request line and headers within this long of opening, or of the
# answer before on a kept-alive one. uvicorn would wait for them forever, and counts every open
# connection towards MAX_CONNECTIONS: 64 sockets that never finish their headers, a few bytes
# each, made it answer 503 to everyone for as long as they stayed. A browser sends its headers
# in one packet; 10 s leaves a slow network ample room.
HEADER_SECONDS = 10
# A client that has stopped reading an answer the server still has more of (a paused download, a
# phone on a stalled link) is dropped after this long: it held its connection, and the server's
# stop at Ctrl-C, for as long as it stayed.
STALL_SECONDS = 30
# What Ctrl-C leaves to the answers still being sent: then they are cut off and the server ends.
SHUTDOWN_SECONDS = 5
# A request line and headers longer than this are refused (400). h11 counts it only while the
# headers are incomplete: whatever arrived in one read (up to 64 KB) passed (``Parser``).
MAX_HEADER_BYTES = 16 * 1024
HEADER_END = re.compile(rb"\n\r?\n")  # the blank line after the headers, as h11 finds it
CONV_FIELDS = ("image", "op", "kernel", "stride", "padding", "size", "scale", "at")


@dataclass(frozen=True)
class Served:
    """What the handlers share, kept on ``app.state.served``: one per app."""
    root: Path                       # the runs folder, absolute
    uploads: images.Uploads          # pictures sent to the playground, by token
    models: classifier.Models        # runs loaded for the classifier page
    pictures: anyio.CapacityLimiter  # pictures read and decoded at once
    jobs: jobs.Jobs                  # trainings started from the browser
    # Training from the browser runs code on this machine for whoever can reach the page: only
    # when the app listens on a loopback address and answers to no name given with --allow-host.
    local: bool
    rows: Rows = field(default_factory=Rows)  # the runs list's, kept from one poll of it to the next


def served(request) -> Served:
    return request.app.state.served


async def kernels(request):
    from neuralab.mechanics import KERNELS

    return JSONResponse({"kernels": {n: k.tolist() for n, k in KERNELS.items()}, "samples": images.SAMPLES,
                         "limits": playground.LIMITS})


def _read_upload(data: bytes):
    return images.fit_within(images.decode(data, "L"))


@accepts(*PICTURE_TYPES)
async def upload(request):
    s = served(request)
    data = await read_body(request, images.MAX_UPLOAD_BYTES)
    async with s.pictures:
        picture = await run_in_threadpool(_read_upload, data)
    return JSONResponse({"token": s.uploads.add(picture), "h": picture.shape[0], "w": picture.shape[1]})


def _conv(uploads: images.Uploads, params: dict) -> dict:
    params = fields(params, CONV_FIELDS)
    source = text("image", params.get("image", "sample:digit"))
    kind, _, name = source.partition(":")
    if kind == "sample":
        picture = images.sample(name)
    elif kind == "upload":
        picture = uploads.get(name)
    else:
        raise ParameterError("image", Shown(source), "give sample:NAME or upload:TOKEN")
    return playground.run(picture, **{k: v for k, v in params.items() if k != "image"})


@accepts("application/json")
async def conv(request):
    return JSONResponse(await run_in_threadpool(_conv, served(request).uploads, await read_json(request)))


def _with_job(state: dict, job: dict | None) -> dict:
    """A run's row or live state (``state``, its "status" the run's own) as this server's job
    for it makes it: a job queued or running before its process has taken the run's lock (a
    resumed training loads its data first) leaves the run "interrupted", which beside "job N
    running" reads as a job that failed. The one place the runs list and the run page take it from."""
    if job is not None and job["state"] in ("queued", "running") and state["status"] == "interrupted":
        state["status"] = "resuming" if job["what"] == "resume" else "starting"
    return state


def _run_rows(root: Path, active: list[dict], kept: Rows, local: bool) -> list[dict]:
    found = []
    for run_id in runs.find_runs(root):
        with contextlib.suppress(runs.NotFound):  # removed since it was found: listed no more
            row = runs.describe(root, run_id, kept, local)
            # a job names a run by its one name (a link inside the runs folder: the folder it leads to)
            name = runs.run_name(root, run_id) if active else None
            found.append(_with_job(row, next((job for job in active if job["run"] == name), None)))
    kept.keep_only(row["id"] for row in found)
    return found


async def run_list(request):
    s = served(request)
    active = [job for job in s.jobs.list() if job["state"] in jobs.ACTIVE]  # once for every row
    # the server's own path, only for the app on this machine: whoever reaches it from elsewhere learns no paths
    return JSONResponse({"root": str(s.root) if s.local else "",
                         # what the empty list suggests: a training that writes where this app looks
                         "train": " ".join(["neuralab", "train", "--model", "lenet5", "--data", "mnist", "--out",
                                            shell_word(s.root / "lenet")]) if s.local else "",
                         "runs": await run_in_threadpool(_run_rows, s.root, active, s.rows, s.local)})


def _details(s: Served, run_id: str) -> dict:
    return _with_job(runs.details(s.root, run_id, s.local), s.jobs.active(run_id))


async def run_details(request):
    return JSONResponse(await run_in_threadpool(_details, served(request), request.query_params.get("run", "")))


async def run_file(request):
    q = request.query_params
    name = q.get("name", "")
    # opened here and sent from the open file: a FileResponse would open the path again
    # later, and answer 500 for a run deleted in between
    f, size, media = await run_in_threadpool(runs.open_file, served(request).root, q.get("run", ""), name)
    headers = {"content-length": str(size)}
    if name.endswith(".html"):
        headers["content-security-policy"] = REPORT_CSP
    return StreamingResponse(_chunks(f, size), media_type=media, headers=headers)  # read in worker threads


@accepts(*PICTURE_TYPES)
async def classify(request):
    s, q = served(request), request.query_params
    run_dir = runs.resolve_run(s.root, q.get("run", ""))
    data = await read_body(request, images.MAX_UPLOAD_BYTES)
    async with s.pictures:
        result = await run_in_threadpool(classifier.classify, s.models, run_dir, data, q.get("source", "upload"),
                                         q.get("invert", "auto"))
    return JSONResponse(result)


async def run_live(request):
    s, run_id = served(request), request.query_params.get("run", "")
    job = await run_in_threadpool(s.jobs.active, run_id)  # it reads the runs folder to know the run's name
    try:
        state = await run_in_threadpool(runs.live, s.root, run_id)
    except runs.NotFound:
        if job is None:
            raise
        state = {"id": run_id, "status": "starting", "metrics": [], "progress": None}  # queued: no folder yet
    state["job"] = job
    _with_job(state, job)
    if job is None and state["status"] == "interrupted":
        # the page offers Resume only where the job would not fail; elsewhere (a Keras fit, a forecast,
        # untrusted code) it says why
        refused = await run_in_threadpool(s.jobs.why_not_resume, run_id) if s.local else "this app starts no training"
        state["resume_refused"] = _said(request, refused) if refused else ""
        # a resume that failed left the run as it was: the page says so, or it reads as one never tried
        last = await run_in_threadpool(s.jobs.last, run_id)
        state["failed_job"] = last if last is not None and last["state"] == "failed" else None
    return JSONResponse(state)


def _local_only(request) -> Served:
    s = served(request)
    if not s.local:
        raise HTTPException(403, "training from the browser is only for the app on this machine (`neuralab "
                                 "serve` bound to localhost); use `neuralab train` on the server")
    return s


async def job_list(request):
    s = served(request)
    want = s.local and "choices" in request.query_params  # the form's options: once, when the page opens
    return JSONResponse({"local": s.local, "jobs": s.jobs.list(),
                         "choices": await run_in_threadpool(jobs.choices) if want else {}})


@accepts("application/json")
async def job_start(request):
    s = _local_only(request)
    job = await run_in_threadpool(s.jobs.start, await read_json(request))
    return JSONResponse(job.as_dict(), status_code=201)


@accepts("application/json")
async def job_resume(request):
    s = _local_only(request)
    job = await run_in_threadpool(s.jobs.resume, _run_named(await read_json(request)))
    return JSONResponse(job.as_dict(), status_code=201)


@accepts("application/json")
async def job_stop(request):
    s = _local_only(request)
    return JSONResponse(await run_in_threadpool(s.jobs.stop, _run_named(await read_json(request))))


def _run_named(body) -> str:
    """The "run" a job request names: the id the runs page lists."""
    run = text("run", fields(body, ("run",)).get("run", ""))
    if not run:
        raise ParameterError("run", "", "name the run, as the runs page lists it")
    return run


async def forecast(request):
    q = request.query_params
    return JSONResponse(await run_in_threadpool(forecast_view, served(request).root, q.get("run", ""),
                                                text("series", q.get("series", ""))))


def _said(request, exc) -> str:
    """The error's one line, with the runs folder's own path taken out (runs are named by id)."""
    line = runs.without_root(served(request).root, str(exc))
    return line.encode("utf-8", "replace").decode()  # a lone surrogate typed in a request: no JSON holds it


def _answer(status: int):
    """An exception handler answering ``status`` with the error's one line."""
    async def handler(request, exc):
        return JSONResponse({"error": _said(request, exc)}, status_code=status)
    return handler


async def http_error(request, exc):
    """Starlette's own refusals (no route here, a method the route does not take) said as what to
    do; a 405 keeps its Allow header (RFC 9110), which a JSONResponse would otherwise drop."""
    detail = exc.detail
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no page or endpoint at this address; the pages are {', '.join(PAGE_PATHS)}"
    elif exc.status_code == 405:
        detail = f"method {request.method[:20]} is not taken here; use {(exc.headers or {}).get('Allow', 'GET')}"
    return JSONResponse({"error": detail}, status_code=exc.status_code, headers=exc.headers)


async def server_error(request, exc):  # a bug of the app; the traceback goes to the server's log
    # Starlette answers these outside every middleware: the security headers are added here
    shortage = out_of_memory(exc)
    if shortage is not None:  # sizes no check caught: the request is refused, the server lives on
        return JSONResponse({"error": f"{shortage}; send a smaller input or choose a smaller run"}, status_code=507,
                            headers=HEADERS)
    return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server's log has the details"},
                        status_code=500, headers=HEADERS)


def _page(name: str):
    html = render_page(name)

    async def endpoint(request):
        return HTMLResponse(html)
    return endpoint


ROUTES = [
    Route("/api/kernels", kernels),
    Route("/api/upload", upload, methods=["POST"]),
    Route("/api/conv", conv, methods=["POST"]),
    Route("/api/runs", run_list),
    Route("/api/run", run_details),
    Route("/api/run/file", run_file),
    Route("/api/run/live", run_live),
    Route("/api/jobs", job_list),
    Route("/api/jobs/start", job_start, methods=["POST"]),
    Route("/api/jobs/resume", job_resume, methods=["POST"]),
    Route("/api/jobs/stop", job_stop, methods=["POST"]),
    Route("/api/classify", classify, methods=["POST"]),
    Route("/api/forecast", forecast),
    Route("/index.html", lambda request: RedirectResponse("/")),
    Route("/favicon.ico", lambda request: Response(status_code=204)),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]
EXCEPTION_HANDLERS = {runs.NotFound: _answer(404), jobs.JobRefused: _answer(409), NeuralabError: _answer(400),
                      HTTPException: http_error, Exception: server_error}


def create_app(runs_dir: str | Path = "runs", hosts=None, trust_code: bool = False,
               local: bool | None = None) -> Starlette:
    """The app serving the runs under ``runs_dir``; ``hosts``: the Host names it answers to
    (default: the loopback names; ``security.allowed_hosts`` makes the set for a bind address);
    ``local``: whether only this machine reaches it (``make_server`` decides it on the address
    listened on; by default, whether every name in ``hosts`` is a loopback one)."""
    import anyio

    try:
        root = Path(runs_dir).resolve()
    except RuntimeError:  # a loop of symbolic links, which Python before 3.13 says so, not as OSError's ELOOP
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), os.fspath(runs_dir)) from None
    hosts = allowed_hosts() if hosts is None else hosts
    queue = jobs.Jobs(root, trust_code)
    pages = [Route(path, _page(name)) for path, name in zip(PAGE_PATHS, PAGES)]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await run_in_threadpool(queue.close)  # jobs die with the server: the training one is interrupted, resumable

    app = Starlette(routes=pages + ROUTES, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS,
                    # the first is outermost: the guard's refusals get the security headers too
                    middleware=[Middleware(SecurityHeaders), Middleware(RequestGuard, hosts=hosts)])
    app.state.served = Served(root=root, uploads=images.Uploads(),
                              models=classifier.Models(trust_code=trust_code),  # model.py of a run runs only so
                              pictures=anyio.CapacityLimiter(PICTURES_AT_ONCE), jobs=queue,
                              local=all(is_loopback(h) for h in hosts) if local is None else local)
    return app


def _chunks(f, size: int, piece: int = 64 * 1024):
    """The first ``size`` bytes of the open file ``f`` (its size when opened, sent as Content-Length:
    a file that a copy still writes grows meanwhile) in pieces; ``f`` is closed at the end."""
    with f:
        while size > 0 and (chunk := f.read(min(piece, size))):
            size -= len(chunk)
            yield chunk


def render_page(name: str) -> str:
    """Page ``name``: its body from pages/ inside the shared layout, with its script if it has one."""
    from string import Template

    script = f'<script src="/static/{name}.js" defer></script>\n' if (STATIC / f"{name}.js").is_file() else ""
    layout = Template((PAGES_DIR / "layout.html").read_text())
    return layout.substitute(title=PAGES[name], page=name, script=script,
                             body=(PAGES_DIR / f"{name}.html").read_text())


def make_server(runs_dir: str | Path = "runs", host: str = "127.0.0.1", port: int = 7860,
                allow_hosts: list[str] | tuple[str, ...] = (), trust_code: bool = False):
    """A uvicorn server for the app; ``run()`` blocks, a thread may set ``should_exit``.
    Port 0 takes a free port: read it from ``server.servers[0].sockets[0]`` once ``started``.
    ``allow_hosts``: more names the app answers to besides those ``allowed_hosts`` finds."""
    import uvicorn

    # a name given with --allow-host is one other machines reach this one by (a proxy's): not local
    local = on_loopback(host) and all(is_loopback(h) for h in allow_hosts)
    app = create_app(runs_dir, allowed_hosts(host, allow_hosts), trust_code, local)
    # ws="none": the app has no WebSockets, even where a WebSocket library is installed; a handshake
    # is answered as any other request (``Connection._unsupported_upgrade_warning``).
    # timeout_graceful_shutdown: past it a request still running (in a worker thread: no
    # deadline of Connection's ends it) is cancelled, and the server ends.
    config = uvicorn.Config(app, host=host, port=port, ws="none",
                            log_level="warning", server_header=False, lifespan="on", http=Connection,
                            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                            timeout_graceful_shutdown=SHUTDOWN_SECONDS + 10)
    return Server(config, app.state.served.jobs)


class Server(uvicorn.Server):
    """uvicorn's server, whose stop (Ctrl-C, SIGTERM, ``should_exit``) interrupts the training
    job at once, not after the last answer has been sent, and ends within SHUTDOWN_SECONDS of
    answers still being sent (``Connection.shutdown``). A second Ctrl-C cuts them off at once;
    a training job still saving its epoch is waited for (up to jobs.STOP_GRACE), and a third
    Ctrl-C kills it.
    uvicorn's own second Ctrl-C ("force quit") left the answers and the app's end to be
    cancelled as its loop closed, each with a traceback in the log."""

    def __init__(self, config: uvicorn.Config, queue: jobs.Jobs):
        super().__init__(config)
        self.queue = queue
        self.loop: asyncio.AbstractEventLoop | None = None
        self.interrupts = 0  # Ctrl-C after the first

    async def serve(self, sockets=None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame) -> None:
        again = self.should_exit
        super().handle_exit(sig, frame)
        if again and sig == signal.SIGINT and self.loop is not None:
            self.force_exit = False
            self.interrupts += 1
            if self.interrupts > 1:  # rather the epoch in progress lost than waited for: the run resumes
                self.queue.kill()
                return
            self.loop.call_soon_threadsafe(self._cut_off)
            run = self.queue.training()
            if run is not None:  # the server ends only once the job has, which nothing else would say
                print(f"neuralab: waiting for the training of run {run} to save its epoch (at most "
                      f"{jobs.STOP_GRACE} s); press Ctrl-C again to end it at once (it resumes from its last "
                      "saved epoch)", file=sys.stderr, flush=True)

    def _cut_off(self) -> None:
        for connection in list(self.server_state.connections):
            connection.transport.abort()

    async def shutdown(self, sockets=None) -> None:
        stopping = asyncio.get_running_loop().run_in_executor(None, self.queue.close)
        await super().shutdown(sockets)
        await stopping


class Parser(h11.Connection):
    """h11's reading of requests, refusing two more kinds as malformed (a RemoteProtocolError,
    which uvicorn answers 400 and closes): a request line and headers over MAX_HEADER_BYTES,
    whole or not (h11 measures only incomplete ones), and a request with both Content-Length and
    Transfer-Encoding, which a proxy in front could read as two requests where h11 reads one
    (request smuggling; RFC 9112 6.3 lets a server refuse it, and it must close the connection)."""

    def next_event(self):
        if self.their_state is h11.IDLE:  # what is buffered starts with the next request's line
            buffered = self.trailing_data[0]
            if len(buffered) > MAX_HEADER_BYTES and not HEADER_END.search(buffered, 0, MAX_HEADER_BYTES):
                raise h11.RemoteProtocolError("request line and headers too long", 400)
        event = super().next_event()
        if isinstance(event, h11.Request):
            names = {name for name, _ in event.headers}  # h11 gives them lower-case
            if b"content-length" in names and b"transfer-encoding" in names:
                raise h11.RemoteProtocolError("both Content-Length and Transfer-Encoding", 400)
        return event


class Connection(H11Protocol):
    """uvicorn's HTTP/1.1 connection (h11's, here even where httptools is installed: one code
    path everywhere, its requests read by ``Parser``), changed in three ways:

    - it is closed when it has kept the server waiting for HEADER_SECONDS with no request of it
      being answered: for a request line and headers (from the opening, or from the answer
      before: uvicorn's `timeout_keep_alive` stops counting at the next request's first byte),
      or for the rest of a body the app answered without reading (uvicorn reads it to the end,
      however slowly it comes);
    - it is dropped when its client has read nothing of an answer for STALL_SECONDS, and when
      the server stops, SHUTDOWN_SECONDS after, with an answer still being sent;
    - a connection from an address (not loopback) that has MAX_PER_CLIENT open already is
      answered 503 and closed as it opens;
    - a request to upgrade (a WebSocket handshake) is answered as any other, and not logged;
    - its own answers, 503 past MAX_CONNECTIONS (uvicorn's `limit_concurrency`, which refused the
      MAX_CONNECTIONS-th) and past MAX_PER_CLIENT, and 400 for a request h11 cannot parse, are
      the app's one-line JSON with the security headers, not uvicorn's plain text.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conn = Parser(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.deadline: asyncio.TimerHandle | None = None
        self.stalled: asyncio.TimerHandle | None = None  # the next look at whether the client reads
        self.limit_concurrency, self.app = None, functools.partial(self._unless_busy, self.app)

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if not self._crowds_out():
            self._watch()

    def handle_events(self) -> None:
        super().handle_events()
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc) -> None:
        super().connection_lost(exc)
        self._watch()
        self.resume_writing()  # nothing more will be written: no deadline for it

    def pause_writing(self) -> None:  # the client reads no more of the answer for now
        super().pause_writing()
        if self.stalled is None:
            self._stall_check(self._unsent(), self.loop.time())

    def _stall_check(self, left: int, since: float) -> None:
        """Drop the connection once its client has read nothing of the answer (``left`` bytes
        unsent, as they were at ``since``) for STALL_SECONDS; a client still reading, however
        slowly (a phone on a poor link), takes a little between two checks, and keeps its
        connection. While writing is paused the app adds nothing to send: it only shrinks."""
        now, unsent = self.loop.time(), self._unsent()
        if unsent < left:
            left, since = unsent, now
        if now - since >= STALL_SECONDS:
            self.stalled = None
            # abort, not close: close waits for the unsent answer to go out, which it never does
            self.transport.abort()
            return
        # looked at ten times within STALL_SECONDS: a client that stops is dropped at most a tenth late
        self.stalled = self.loop.call_later(min(STALL_SECONDS / 10, STALL_SECONDS - (now - since)),
                                            self._stall_check, left, since)

    def _unsent(self) -> int:
        """Bytes of the answer the client has not taken yet: the transport's, and on Linux the
        socket's, whose buffer (megabytes, grown by the kernel) a slow client drains for minutes
        before the transport's shrinks at all."""
        unsent = self.transport.get_write_buffer_size()
        sock = self.transport.get_extra_info("socket")
        try:
            import fcntl
            import termios

            queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4)  # sent but not acknowledged
        except (ImportError, AttributeError, OSError):  # another system: the transport's alone
            return unsent
        return unsent + int.from_bytes(queued, sys.byteorder, signed=True)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.stalled is not None:
            self.stalled.cancel()
            self.stalled = None

    def shutdown(self) -> None:
        super().shutdown()
        if not self.transport.is_closing():  # an answer being sent (or a body read): it has SHUTDOWN_SECONDS
            self.loop.call_later(SHUTDOWN_SECONDS, self.transport.abort)

    def _watch(self) -> None:
        """Start the deadline when the connection begins to wait for its client, end it when not."""
        answering = self.cycle is not None and not self.cycle.response_complete
        waiting = not (answering or self.transport.is_closing() or self.conn.their_state is h11.DONE)
        if waiting and self.deadline is None:
            self.deadline = self.loop.call_later(HEADER_SECONDS, self.transport.close)
        elif not waiting and self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    async def _unless_busy(self, app, scope, receive, send) -> None:
        # this request's connection is among self.connections and its task among self.tasks already
        # (uvicorn's own check ran before it added the task): up to MAX_CONNECTIONS, this one included, are answered
        if len(self.connections) > MAX_CONNECTIONS or len(self.tasks) > MAX_CONNECTIONS:
            self.logger.warning("Exceeded concurrency limit.")
            busy = f"the server is busy ({MAX_CONNECTIONS} connections open); try again in a moment"
            return await JSONResponse({"error": busy}, 503, headers={**HEADERS, "connection": "close"})(
                scope, receive, send)
        await app(scope, receive, send)

    def _crowds_out(self) -> bool:
        """Whether this new connection is one more than MAX_PER_CLIENT from its address; if so it
        is answered 503 and closed at once. It must not wait for a request: a client that never
        finishes one would hold the connection, and its place among MAX_CONNECTIONS, for
        HEADER_SECONDS. Loopback is this machine's own user (or a proxy on it, which makes
        everyone 127.0.0.1), so it is not capped."""
        address = normal_host(self.client[0]) if self.client else ""  # none for a Unix socket
        if not address or is_loopback(address):
            return False
        if sum(1 for c in self.connections if c.client and normal_host(c.client[0]) == address) <= MAX_PER_CLIENT:
            return False
        self.logger.warning("Exceeded the connections of one address.")
        busy = JSONResponse({"error": f"too many connections from {address} ({MAX_PER_CLIENT} may be open from "
                                      "one address); close some, or try again in a moment"},
                            503, headers={**HEADERS, "connection": "close"})
        head = b"".join(b"%s: %s\r\n" % pair for pair in busy.raw_headers)
        self.transport.write(b"HTTP/1.1 503 Service Unavailable\r\n" + head + b"\r\n" + busy.body)
        self.transport.close()
        return True

    def _unsupported_upgrade_warning(self) -> None:
        """Nothing: uvicorn logged, for every WebSocket handshake (which any page can send), advice
        to install a WebSocket library the app has no use for. The request is answered as any other."""

    def send_400_response(self, msg: str) -> None:
        malformed = ("request: not valid HTTP/1.1 (a malformed header, a Content-Length given twice or with "
                     "Transfer-Encoding, or a request line and headers over 16 KB); send a well-formed request")
        answer = JSONResponse({"error": malformed}, 400, headers={**HEADERS, "connection": "close"})
        for event in (h11.Response(status_code=400, headers=answer.raw_headers, reason=b"Bad Request"),
                      h11.Data(data=answer.body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def check_host(host: str) -> None:
    """``listening_socket``'s one line where ``host`` is no address of this machine, raised
    before anything is said about serving there (`neuralab serve` warns that a host other than
    loopback is reachable from other machines). Binding port 0 tests the address alone."""
    import socket

    try:
        family, address = _bind_address(host, 0)
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind(address)
    except OSError as e:
        refused = _no_host(host, e)
        if refused is not None:
            raise refused from None


def on_loopback(host: str) -> bool:
    """Whether listening on ``host`` takes connections from this machine alone, decided on the
    address the socket is bound to (``_bind_address``), not on the name: Debian gives the
    machine's own name 127.0.1.1, so `--host $(hostname)` is as private as 127.0.0.1."""
    try:
        return is_loopback(_bind_address(host, 0)[1][0])
    except OSError:  # resolves to nothing: nothing listens there (``check_host`` says so)
        return False


def _bind_address(host: str, port: int) -> tuple[int, tuple]:
    """The family and socket address to listen on ``host`` by, as the resolver gives them: a
    name may resolve to IPv6 alone (bound as IPv4 for having no colon, it was told that it
    resolved to nothing). Where a name has both, IPv4, as it was bound before: `localhost`
    listening on ::1 alone would not answer 127.0.0.1. A socket.gaierror where it resolves to
    nothing."""
    import socket

    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, _, _, _, address = next((info for info in found if info[0] == socket.AF_INET), found[0])
    return family, address


def _no_host(host: str, e: OSError) -> NeuralabError | None:
    """Why binding ``host`` failed, where the host is at fault (None where the port may be)."""
    import socket

    if isinstance(e, socket.gaierror):  # 256.1.1.1 and example.invalid are names, and resolve to nothing
        return NeuralabError(f"`host` {host}: cannot listen there ({e.strerror}): neither an address nor a name "
                             "that resolves to one; give one of this machine's addresses, 127.0.0.1 (this "
                             "machine only) or 0.0.0.0 (all its networks)")
    if e.errno == errno.EADDRNOTAVAIL:
        return NeuralabError(f"`host` {host}: cannot listen there ({e.strerror}): not an address of this machine; "
                             "give one of its own, 127.0.0.1 (this machine only) or 0.0.0.0 (all its networks)")
    return None


def listening_socket(host: str, port: int):
    """The socket the server will answer on, bound and listening, or a one-line error for a
    port in use or a host not on this machine (or no address at all). Binding it here, not inside
    uvicorn, leaves no moment in which another process can take the port between a check and the
    server's start."""
    import socket

    sock = None
    try:
        family, address = _bind_address(host, port)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(MAX_CONNECTIONS)
    except OSError as e:
        if sock is not None:
            sock.close()
        refused = _no_host(host, e)
        if refused is not None:
            raise refused from None
        # in use, or below 1024 for a user: the port; anything else may be either
        advice = "choose another `port`" if e.errno in (errno.EADDRINUSE, errno.EACCES) else \
            "choose another `host` or `port`"
        raise NeuralabError(f"`host` {host} `port` {port}: cannot listen there ({e.strerror}); {advice}") from None
    return sock
