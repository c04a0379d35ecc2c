"""`neuralab serve`: the local web app (convolution playground, classifier, runs, forecasts)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from pathlib import Path

from neuralab.cli._args import host_name, port_number


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="start the local web app: convolution playground, classifier, runs, forecasts",
        description="Serve the web app on this machine. Pages: convolution and pooling playground, "
                    "draw-a-digit classifier with feature maps, the run directories under --runs with "
                    "their reports, and forecast runs against their baselines.")
    p.add_argument("--runs", type=Path,
                   help="folder holding run directories (default the runs folder: $NEURALAB_RUNS or ./runs)")
    p.add_argument("--host", type=host_name, default="127.0.0.1",
                   help="address to listen on (default %(default)s: this machine only)")
    p.add_argument("--port", type=port_number, default=7860,
                   help="port (default %(default)s; 0: a free one, named in the address the first line prints)")
    p.add_argument("--allow-host", type=host_name, action="append", default=[], metavar="NAME",
                   help="another name or address browsers reach this machine by (repeatable); the app "
                        "answers only to requests naming this machine, which stops DNS-rebinding pages")
    p.add_argument("--trust-code", action="store_true",
                   help="let the classifier page run the model code (model.py) of runs made from a .py file; "
                        "only for runs whose code you have read")
    p.set_defaults(func=run_serve)


def run_serve(args) -> int:
    from neuralab.errors import NeuralabError, ParameterError
    from neuralab.run_list import is_run
    from neuralab.runs import default_root, shell_word
    from neuralab.web.app import check_host, listening_socket, make_server, on_loopback
    from neuralab.web.security import allowed_hosts, listen_address

    given, args.runs = args.runs, args.runs or default_root()
    if args.runs.exists() and not args.runs.is_dir():  # no run can be listed or started there
        if given is not None:
            raise ParameterError("runs", str(args.runs), "is a file, not a folder; give the folder the runs are in")
        raise NeuralabError(f"{args.runs}: is a file, not a folder of runs; set NEURALAB_RUNS to the folder your "
                            "runs are in, or give it with `runs`")
    if is_run(args.runs):  # a run's own folder: the list would be empty, and say nothing of why
        parent = shell_word(args.runs.resolve().parent)
        if given is not None:
            raise ParameterError("runs", str(args.runs), f"is a run, not the folder runs are in; give the folder "
                                                         f"that holds it, `runs` {parent}")
        raise NeuralabError(f"{args.runs}: is a run, not the folder runs are in; set NEURALAB_RUNS to the folder "
                            f"that holds it ({parent}), or give it with `runs`")
    # 0 is 0.0.0.0 and 127.1 is 127.0.0.1 to the system: loopback or not, and the names answered, by what it is
    args.host = listen_address(args.host)
    check_host(args.host)  # a --host that is no address of this machine: one line, no warning about it first
    if not on_loopback(args.host):  # by the address bound: a name may stand for 127.0.1.1
        print(f"neuralab: warning: --host {args.host} makes the app reachable from other machines; it has no login "
              "and shows every run under --runs. Use it only on a network you trust.", file=sys.stderr)
        names = sorted(allowed_hosts(args.host, args.allow_host))
        print(f"neuralab: note: the app answers to requests naming {', '.join(names)}; add other names with --allow-host",
              file=sys.stderr)
    if not args.runs.is_dir() and not args.runs.is_symlink():  # links in a loop: the app's one line says so
        print(f"neuralab: note: no folder {args.runs} yet: the playground works; train a model with "
              f"`neuralab train --out {shell_word(args.runs / 'NAME')}` to fill the classifier and runs pages", file=sys.stderr)
    sock = listening_socket(args.host, args.port)
    port = sock.getsockname()[1]  # the one the system chose, for --port 0
    import torch  # noqa: F401  loaded now, so that the first prediction answers fast

    server = make_server(args.runs, args.host, port, args.allow_host, trust_code=args.trust_code)
    shown = "localhost" if args.host in ("0.0.0.0", "::") else (f"[{args.host}]" if ":" in args.host else args.host)
    print(f"neuralab web app on http://{shown}:{port}  (runs from {args.runs.resolve()}; Ctrl+C stops it)",
          flush=True)
    with sock, _stops_end(server):
        server.run(sockets=[sock])
    return 0


@contextlib.contextmanager
def _stops_end(server):
    """The stop signals uvicorn does not take (SIGHUP, a closed terminal; SIGUSR1, a scheduler's
    warning) end the server as uvicorn ends it on SIGTERM: main's handler, which raises
    KeyboardInterrupt, would raise it inside uvicorn's loop, which prints a traceback and cancels
    the app's end (the training job's interruption). Once the server has stopped, the signal is
    raised again for main's handler (the status 128 + signal and one line), as uvicorn does with SIGTERM."""
    from uvicorn.server import HANDLED_SIGNALS

    from neuralab.files import STOPS

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = [signum for signum in STOPS if signum not in HANDLED_SIGNALS
             and signal.getsignal(signum) is not signal.SIG_IGN]  # nohup's SIGHUP stays ignored
    received = []

    def stop(signum, frame):
        received.append(signum)
        server.should_exit = True

    previous = {signum: signal.signal(signum, stop) for signum in stops}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        signal.raise_signal(received[0])
