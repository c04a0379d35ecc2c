"""A hostile user, scripted: bad inputs (command lines, files, web requests) and injected
faults (kills at each write, read-only folders, a full disk), each judged handled or not.

    PYTHONPATH=src NEURALAB_TEST_DATASETS=../shared/datasets python bench/bench_hostile.py [--json OUT] [--quick]

An input is handled when the command exits 2 with one line on stderr and no traceback, and
leaves nothing behind (the --out folder absent, an existing run unchanged); or, for input
neuralab should take (a semicolon CSV), exits 0. A web request is handled when answered 4xx
with a one-line JSON error (never 500). A fault is survived when what it leaves is whole
(every file parses, the run is not held) and the way back that neuralab names works (resume,
`neuralab report`, the same command with --overwrite) or, for a refused write, when the
message is one line naming the path. Figures for docs/guarantees.md come from this script.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tests' real-data makers: digits, read-only folders

from helpers import digits_folder, read_only, unreadable  # noqa: E402


@dataclass
class Result:
    group: str   # "input" or "fault"
    kind: str    # the class of #14 it stands for
    name: str
    handled: bool
    detail: str


RESULTS: list[Result] = []


def record(group: str, kind: str, name: str, handled: bool, detail: str) -> None:
    RESULTS.append(Result(group, kind, name, handled, detail.strip().splitlines()[-1][:200] if detail.strip() else ""))
    mark = "ok  " if handled else "FAIL"
    print(f"{mark} {group:5} {kind:14} {name[:70]:70} {RESULTS[-1].detail[:90]}", flush=True)


# --- the command line, in this process ----------------------------------------------------

class TookTooLong(Exception):
    pass


def _alarm(signum, frame):
    raise TookTooLong()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.is_dir() else {}


def cli(kind: str, name: str, argv: list[str], absent: tuple[Path, ...] = (), unchanged: tuple[Path, ...] = (),
        accept: str | None = None, seconds: int = 120) -> None:
    """Run ``neuralab argv`` here and judge it: refused in one line with nothing written, or,
    with ``accept``, taken (exit 0) with ``accept`` in what it prints."""
    from neuralab.cli import main

    for path in absent:  # what an earlier case left is not this one's doing
        shutil.rmtree(path, ignore_errors=True)
    before = {u: snapshot(u) for u in unchanged}
    out, err = io.StringIO(), io.StringIO()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = lambda m, c, f, ln, file=None, line=None: print(f"{c.__name__}: {m}", file=sys.stderr)
            try:
                code = main(argv)
            except SystemExit as e:
                code = e.code
    except TookTooLong:
        code, err = "timeout", io.StringIO(f"still running after {seconds} s (the input was taken)")
    except BaseException as e:  # noqa: BLE001 - a traceback is what is being counted
        import traceback

        code = "traceback"
        err.write("Traceback: " + "".join(traceback.format_exception_only(type(e), e)))
    finally:
        signal.alarm(0)
    text = err.getvalue()
    lines = [line for line in text.splitlines() if line.strip()]
    if accept is not None:
        ok = code == 0 and accept in out.getvalue() + text and "Traceback" not in text
        detail = f"exit {code}: " + (lines[-1] if lines else out.getvalue()[-120:])
    else:
        ok = code == 2 and len(lines) == 1 and "Traceback" not in text
        detail = f"exit {code}: " + (" | ".join(lines[:3]) if lines else "(nothing printed)")
        if ok and any(p.exists() for p in absent):
            ok, detail = False, detail + f" -- left {[str(p) for p in absent if p.exists()]}"
        if ok and any(snapshot(u) != before[u] for u in unchanged):
            ok, detail = False, detail + " -- changed an existing run"
    record("input", kind, name, ok, detail)


# --- inputs --------------------------------------------------------------------------------

def series_csv(path: Path, rows: int = 120, sep: str = ",", decimal: str = ".", date=lambda d: str(d),
               load=None, extra: str = "") -> Path:
    days = np.arange(np.datetime64("2021-01-01"), np.datetime64("2021-01-01") + rows)
    t = np.arange(rows)
    values = load if load is not None else 50 + 10 * np.sin(2 * np.pi * t / 7) + 0.1 * t
    lines = [f"day{sep}load"] + [f"{date(d)}{sep}{str(round(v, 4)).replace('.', decimal)}" for d, v in zip(days, values)]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


FORECAST = ["--target", "load", "--date-column", "day", "--lookback", "7", "--horizon", "2", "--model", "rnn",
            "--hidden", "4", "--epochs", "1", "--backtest-folds", "1", "--quiet"]


def command_line_inputs(tmp: Path, digits: Path, run: Path, forecast_run: Path) -> None:
    out = tmp / "out"
    train = ["train", "--model", "mlp", "--data", str(digits), "--epochs", "1", "--quiet", "--out", str(out)]
    bad_values = {
        "--epochs": ["0", "-1", "abc", "1.5", ""], "--batch-size": ["0", "-8", "x", "2.5"],
        "--lr": ["0", "-0.1", "abc", "nan", "inf"], "--weight-decay": ["-1", "nan", "inf", "abc"],
        "--focus": ["0", "1.5", "nan", "-0.1"], "--val-fraction": ["1", "-0.1", "nan", "abc"],
        "--patience": ["-1", "x"], "--schedule": ["bogus"], "--monitor": ["accuracy"], "--device": ["tpu"],
        "--amp": ["fp8"], "--threads": ["0", "-2", "many"], "--seed": ["abc", "1.5"], "--recipe": ["slow"],
        "--model": ["resnet", "../../etc/passwd", ""], "--data": ["imagenet", str(tmp / "nowhere"), "/etc/passwd"],
        "--checkpoint": ["first"],
    }
    for flag, values in bad_values.items():
        for value in values:
            cli("option", f"train {flag} {value!r}", [*train, flag, value], absent=(out,))
    cli("option", "train --patience 2 --val-fraction 0", [*train, "--patience", "2", "--val-fraction", "0"], absent=(out,))
    cli("option", "train --out an existing file", [*train[:-1], str(REPO / "README.md")])
    (tmp / "notes").mkdir(exist_ok=True)
    (tmp / "notes" / "todo.txt").write_text("mine")
    cli("option", "train --out a folder that holds no run", [*train[:-1], str(tmp / "notes")], unchanged=(tmp / "notes",))
    cli("option", "train --out onto a finished run", [*train[:-1], str(run)], unchanged=(run,))
    for argv, what in [(["--resume", str(tmp / "nowhere")], "missing"), (["--resume", str(REPO / "README.md")], "a file"),
                       (["--resume", str(tmp / "notes")], "no run"), (["--resume", str(run)], "a finished run"),
                       (["--resume", str(forecast_run)], "a forecast run"),
                       (["--resume", str(run), "--epochs", "20", "--lr", "0.1"], "contradicting options")]:
        cli("resume", f"train --resume {what}", ["train", *argv, "--quiet"], unchanged=(run, forecast_run))
    # classifier commands on the wrong things, and the forecast command on a classifier
    picture = tmp / "seven.png"
    from PIL import Image

    Image.fromarray((np.arange(64).reshape(8, 8) * 4).astype(np.uint8)).save(picture)
    for argv, what in [
        (["evaluate", str(forecast_run)], "evaluate a forecast run"), (["predict", str(forecast_run), str(picture)], "predict with a forecast run"),
        (["inspect", str(forecast_run), str(picture), "--out", str(out)], "inspect a forecast run"),
        (["export", str(forecast_run), "--onnx", "--out", str(out / "m.onnx")], "export a forecast run"),
        (["forecast", "predict", str(run), "--csv", str(picture)], "forecast predict with a classifier"),
        (["evaluate", str(tmp / "nowhere")], "evaluate nothing"), (["report", str(tmp / "notes")], "report a folder of notes"),
        (["predict", str(run), str(tmp)], "predict a folder as a picture"), (["predict", str(run), str(tmp / "no.png")], "predict a missing picture"),
        (["predict", str(run), str(REPO / "README.md")], "predict a text file"), (["predict", str(run), str(picture), "--top-k", "0"], "predict --top-k 0"),
        (["inspect", str(run), str(picture), "--out", str(REPO / "README.md")], "inspect --out an existing file"),
        (["runs", str(tmp / "nowhere")], "runs of a missing folder"), (["summary", "resnet"], "summary of an unknown model"),
        (["summary", "googlenet", "--input", "3x3x1"], "summary of an input too small"), (["summary", "cnn", "--input", "28x28x0"], "summary --input 28x28x0"),
        (["summary", "cnn", "--input", "huge"], "summary --input huge"), (["summary", "cnn", "--depth", "0"], "summary --depth 0"),
        (["summary", "cnn", "--classes", "0"], "summary --classes 0"), (["summary", "googlenet", "--input", "1x100000x3"], "summary --input 1x100000x3"),
        (["conv", "shape", "--input", "28x28x1", "--kernel", "0"], "conv shape --kernel 0"),
        (["conv", "shape", "--input", "2x2x1", "--kernel", "5"], "conv shape kernel larger than the input"),
        (["conv", "shape", "--input", "28x28", "--kernel", "3", "--stride", "0"], "conv shape --stride 0"),
        (["conv", "shape", "--input", "28x28", "--kernel", "3", "--padding", "-1"], "conv shape --padding -1"),
        (["conv", "shape", "--input", "abc", "--kernel", "3"], "conv shape --input abc"),
        (["conv", "demo", "nothing"], "conv demo of an unknown example"),
        (["conv", "apply", str(tmp / "no.png")], "conv apply a missing picture"),
        (["conv", "apply", str(picture), "--kernel", "1e400"], "conv apply --kernel 1e400"),
        (["conv", "apply", str(picture), "--kernel", "1 2; 3"], "conv apply a ragged kernel"),
        (["conv", "apply", str(picture), "--kernel", "1e308 1e308; 1e308 1e308"], "conv apply a kernel of 1e308"),
        (["data", "fetch", "imagenet"], "data fetch an unknown dataset"), (["data", "path", "mnist", "--data-dir", str(tmp / "nowhere")], "data path in a missing folder"),
        (["data", "verify", "cifar100"], "data verify an unknown dataset"),
        (["serve", "--port", "-1"], "serve --port -1"), (["serve", "--port", "99999"], "serve --port 99999"),
        (["rnn", "gradients", "--steps", "0"], "rnn gradients --steps 0"), (["rnn", "topologies", "--bogus"], "rnn --bogus"),
        (["nonsense"], "an unknown command"), ([], "no command"),
    ]:
        cli("command", what, argv, absent=(out,), unchanged=(run, forecast_run), seconds=60)


def file_inputs(tmp: Path, fashion: Path | None, run: Path) -> None:
    from PIL import Image

    from neuralab.data.idx import read_idx, write_idx

    out = tmp / "out"
    # IDX datasets spoilt one way each
    if fashion is not None:
        base = tmp / "fashion"
        base.mkdir()
        for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                     "t10k-labels-idx1-ubyte.gz"):
            write_idx(base / name, np.ascontiguousarray(read_idx(fashion / name)[:300 if "train" in name else 100]))

        def spoil(name, change):
            def apply(folder):
                write_idx(folder / name, change(read_idx(folder / name)))
            return apply

        def raw(name, data):
            return lambda folder: (folder / name).write_bytes(data(folder / name))

        with_neg = lambda y: np.where(np.arange(len(y)) == 5, -1, y).astype(np.int8)  # noqa: E731
        spoilt = {
            "labels of -1": spoil("train-labels-idx1-ubyte.gz", with_neg),
            "float32 images": spoil("train-images-idx3-ubyte.gz", lambda x: x.astype(np.float32)),
            "float64 images": spoil("t10k-images-idx3-ubyte.gz", lambda x: x.astype(np.float64) / 255),
            "int32 images": spoil("train-images-idx3-ubyte.gz", lambda x: x.astype(np.int32) * 1000),
            "fractional labels": spoil("train-labels-idx1-ubyte.gz", lambda y: y.astype(np.float32) + 0.5),
            "NaN labels": spoil("train-labels-idx1-ubyte.gz", lambda y: np.where(np.arange(len(y)) == 2, np.nan, y)),
            "labels of 10": spoil("t10k-labels-idx1-ubyte.gz", lambda y: np.where(np.arange(len(y)) == 1, 10, y)),
            "labels of 255": spoil("train-labels-idx1-ubyte.gz", lambda y: np.where(np.arange(len(y)) == 1, 255, y).astype(np.uint8)),
            "one class": spoil("train-labels-idx1-ubyte.gz", lambda y: np.zeros_like(y)),
            "fewer labels than images": spoil("train-labels-idx1-ubyte.gz", lambda y: y[:-1]),
            "no training images": lambda f: [write_idx(f / n, read_idx(f / n)[:0]) for n in
                                             ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")],
            "test images of another size": spoil("t10k-images-idx3-ubyte.gz", lambda x: np.ascontiguousarray(x[:, ::2, ::2])),
            "images with 4 dimensions": spoil("train-images-idx3-ubyte.gz", lambda x: x[:, None]),
            "labels with 2 dimensions": spoil("train-labels-idx1-ubyte.gz", lambda y: y[:, None]),
            "truncated images": raw("train-images-idx3-ubyte.gz", lambda p: p.read_bytes()[:500]),
            "empty label file": raw("train-labels-idx1-ubyte.gz", lambda p: b""),
            "garbage label file": raw("train-labels-idx1-ubyte.gz", lambda p: os.urandom(300)),
            "a PNG named as IDX": raw("train-images-idx3-ubyte.gz", lambda p: (REPO / "docs").glob("**/*.png").__next__().read_bytes()),
            "header of 2**31 images": raw("t10k-images-idx3-ubyte.gz", lambda p: b"\0\0\x08\x03\x7f\xff\xff\xff\0\0\0\x1c\0\0\0\x1c"),
            "negative dimension": raw("t10k-labels-idx1-ubyte.gz", lambda p: b"\0\0\x08\x01\xff\xff\xff\xff"),
            "missing test labels": lambda f: (f / "t10k-labels-idx1-ubyte.gz").unlink(),
            "a folder in place of a file": lambda f: ((f / "t10k-labels-idx1-ubyte.gz").unlink(), (f / "t10k-labels-idx1-ubyte.gz").mkdir()),
        }
        for what, hurt in spoilt.items():
            folder = tmp / f"idx-{len(RESULTS)}"
            shutil.copytree(base, folder)
            hurt(folder)
            cli("idx", what, ["train", "--model", "mlp", "--data", "fashion-mnist", "--data-dir", str(folder), "--epochs",
                              "1", "--quiet", "--out", str(out)], absent=(out,))
    # model.json and the weights spoilt one way each
    meta = json.loads((run / "model.json").read_text())
    model_json = {
        "std 0": {**meta, "preprocess": {**meta["preprocess"], "std": [0]}}, "no architecture": {k: v for k, v in meta.items() if k != "architecture"},
        "a list": [meta], "input_shape '28x28'": {**meta, "input_shape": "28x28"}, "input_shape 1000x1000": {**meta, "input_shape": [1, 1000, 1000]},
        "input_shape 1e6": {**meta, "input_shape": [1, 10**6, 10**6]}, "5 channels": {**meta, "input_shape": [5, 8, 8]},
        "unknown preprocess key": {**meta, "preprocess": {**meta["preprocess"], "gamma": 2}},
        "fewer class names": {**meta, "classes": meta["classes"][:3]}, "num_classes 1e9": {**meta, "num_classes": 10**9},
        "num_classes 1": {**meta, "num_classes": 1, "classes": ["a"]}, "num_classes text": {**meta, "num_classes": "10"},
        "hidden 1e6 x 1e6": {**meta, "options": {"hidden": [10**6, 10**6]}}, "options a list": {**meta, "options": [1]},
        "mean NaN": {**meta, "preprocess": {**meta["preprocess"], "mean": [float("nan")]}},
        "architecture os.system": {**meta, "architecture": "os.system"}, "another architecture": {**meta, "architecture": "lenet5"},
        "classes as numbers": {**meta, "classes": list(range(10))},
    }
    picture = tmp / "seven.png"
    for what, content in model_json.items():
        copy = shutil.copytree(run, tmp / f"model-{len(RESULTS)}")
        (copy / "model.json").write_text(json.dumps(content))
        cli("model.json", what, ["predict", str(copy), str(picture)])
    for what, hurt in {
        "truncated weights": lambda p: p.write_bytes(p.read_bytes()[:300]),
        "a flipped byte in the weights": lambda p: p.write_bytes(p.read_bytes()[:-10] + bytes([p.read_bytes()[-10] ^ 255]) + p.read_bytes()[-9:]),
        "a pickle in place of the weights": lambda p: p.write_bytes(b"\x80\x04\x95" + os.urandom(100)),
        "a header length of 2**60": lambda p: p.write_bytes((2**60).to_bytes(8, "little") + b"{}"),
        "no weights": lambda p: p.unlink(),
        "damaged config.json": lambda p: (p.parent / "config.json").write_text("{"),
        "config.json of another kind": lambda p: (p.parent / "config.json").write_text('{"kind": "gan"}'),
        "model.json of 64 KB of [": lambda p: (p.parent / "model.json").write_text("[" * 65536),
    }.items():
        copy = shutil.copytree(run, tmp / f"weights-{len(RESULTS)}")
        hurt(copy / "model.safetensors")
        cli("weights", what, ["predict", str(copy), str(picture)])
    # pictures
    pictures = tmp / "pictures"
    pictures.mkdir()
    eps = pictures / "eps.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    (pictures / "empty.png").write_bytes(b"")
    (pictures / "text.png").write_text("hello")
    (pictures / "cut.png").write_bytes(picture.read_bytes()[:40])
    Image.new("L", (8, 8)).save(pictures / "ico.png", format="ICO")
    Image.new("L", (8, 8)).save(pictures / "tga.png", format="TGA")
    big = pictures / "bomb.png"
    Image.new("L", (8000, 8000)).save(big)
    (pictures / "folder.png").mkdir()
    for f in sorted(pictures.iterdir()):
        cli("picture", f"predict {f.name}", ["predict", str(run), str(f)])
        cli("picture", f"inspect {f.name}", ["inspect", str(run), str(f), "--out", str(out)], absent=(out,))
    # CSVs for forecasting, spoilt one way each (and three that must be taken)
    csvs = tmp / "csv"
    csvs.mkdir()
    t = np.arange(120)
    wave = 50 + 10 * np.sin(2 * np.pi * t / 7)
    refused_csvs = {
        "1e300 in the target": series_csv(csvs / "big.csv", load=np.where(t == 50, 1e300, wave)),
        "inf in the target": series_csv(csvs / "inf.csv", load=np.where(t == 50, np.inf, wave)),
        "NaN in the target": series_csv(csvs / "nan.csv", load=np.where(t == 50, np.nan, wave)),
        "an empty file": csvs / "empty.csv", "a header only": csvs / "header.csv",
        "5 rows": series_csv(csvs / "short.csv", rows=5), "garbage bytes": csvs / "garbage.csv",
        "a word among numbers": series_csv(csvs / "word.csv", extra="2021-05-01,n/a\n"),
        "a duplicate date": series_csv(csvs / "dup.csv", extra="2021-01-03,50\n"),
        "a date that is no date": series_csv(csvs / "nodate.csv", extra="someday,50\n"),
        "13/01/2012 dates with no format": series_csv(csvs / "dmy.csv", date=lambda d: d.item().strftime("%d/%m/%Y")),
        "a folder": csvs / "folder.csv", "a missing file": csvs / "nowhere.csv",
        "one ragged line": series_csv(csvs / "ragged.csv", extra="2021-05-01,1,2,3\n"),
        "a 1 MB line": series_csv(csvs / "long.csv", extra="2021-05-01," + "9" * 1_000_000 + "\n"),
    }
    (csvs / "empty.csv").write_bytes(b"")
    (csvs / "header.csv").write_text("day,load\n")
    (csvs / "garbage.csv").write_bytes(os.urandom(2000))
    (csvs / "folder.csv").mkdir()
    good = series_csv(csvs / "good.csv")
    for what, path in refused_csvs.items():
        cli("csv", what, ["forecast", "--data", str(path), *FORECAST, "--out", str(out)], absent=(out,), seconds=120)
    for flag, value in [("--target", "price"), ("--date-column", "when"), ("--lookback", "0"), ("--lookback", "500"),
                        ("--horizon", "0"), ("--horizon", "1000"), ("--hidden", "0"), ("--hidden", "a,b"),
                        ("--epochs", "0"), ("--season", "0"), ("--season", "1000"), ("--backtest-folds", "-1"),
                        ("--model", "transformer"), ("--missing", "guess"), ("--features", "nothing"),
                        ("--calendar", "moon"), ("--baselines", "oracle"), ("--val-fraction", "0.99"),
                        ("--test-fraction", "1"), ("--sep", ""), ("--date-format", "%Q"), ("--stride", "0"),
                        ("--dropout", "1.5"), ("--lr", "nan"), ("--where", "nothing"), ("--intervals", "150")]:
        cli("option", f"forecast {flag} {value!r}", ["forecast", "--data", str(good), *FORECAST, flag, value,
                                                     "--out", str(out)], absent=(out,))
    taken = {
        "semicolons": (series_csv(csvs / "semi.csv", sep=";"), [], "semicolon"),
        "semicolons and decimal commas": (series_csv(csvs / "comma.csv", sep=";", decimal=","), [], "decimal comma"),
        "13/01/2012 dates with --date-format": (refused_csvs["13/01/2012 dates with no format"], ["--date-format", "%d/%m/%Y"], "load"),
    }
    for what, (path, extra, words) in taken.items():
        target = tmp / f"taken-{len(RESULTS)}"
        cli("csv", f"taken: {what}", ["forecast", "--data", str(path), *FORECAST[:-1], *extra, "--out", str(target)],
            accept=words, seconds=180)
    constant = series_csv(csvs / "constant.csv", load=np.full(120, 7.0))
    cli("csv", "taken: a constant target, said so", ["forecast", "--data", str(constant), *FORECAST[:-1], "--out",
                                                     str(tmp / "constant")], accept="constant", seconds=180)


def web_inputs(tmp: Path, run: Path, forecast_run: Path) -> None:
    from starlette.testclient import TestClient

    from neuralab.web import create_app

    root = tmp / "webruns"
    root.mkdir()
    shutil.copytree(run, root / "digits")
    shutil.copytree(forecast_run, root / "weather")
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("[")
    shutil.copytree(run, root / "std0")
    meta = json.loads((run / "model.json").read_text())
    (root / "std0" / "model.json").write_text(json.dumps({**meta, "preprocess": {**meta["preprocess"], "std": [0]}}))
    shutil.copytree(run, root / "cut")
    (root / "cut" / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes()[:200])
    (root / "escape").symlink_to(tmp)
    picture = (tmp / "seven.png").read_bytes()
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    requests = []  # (name, method, url, kwargs)
    conv_bodies = [b"[" * 60_000, b'{"stride": 1e999}', b'{"stride": NaN}', b'{"stride": -Infinity}',
                   b'{"stride": ' + b"9" * 5000 + b"}", b'{"stride": 1.5}', b'{"stride": "2"}', b'{"stride": true}',
                   b'{"stride": 0}', b'{"stride": 99}', b'{"size": 2.0, "op": "max"}', b'{"padding": 1.5}',
                   b'{"padding": -1}', b'{"padding": 10000}', b'{"at": [1.5, 2]}', b'{"at": [1]}', b'{"at": "3,4"}',
                   b'{"at": [5, 99999]}', b'{"kernel": "1e308 1e308; 1e308 1e308"}', b'{"kernel": "1e400"}',
                   b'{"kernel": "1e10000000"}', b'{"kernel": "' + b"1" * 30 + b'"}', b'{"kernel": "1/0"}',
                   b'{"kernel": "1 2; 3"}', b'{"kernel": "' + b"1 " * 5000 + b'"}', b'{"kernel": [[1, 0], [0, 1]]}',
                   b'{"kernel": null}', b'{"image": 7}', b'{"image": "sample:nothing"}', b'{"image": "upload:../../etc/passwd"}',
                   b'{"image": "/etc/passwd"}', b'{"op": ["conv"]}', b'{"op": "median"}', b'{"turbo": 1}', b"[1, 2]",
                   b'"conv"', b"\xff\xfe{}", b'{"op": "conv",}', b" " * (64 * 1024 + 1), b"", b"null", b"1e999",
                   b'{"scale": "loud"}', b'{"image": "' + b"x" * 60_000 + b'"}']
    for i, body in enumerate(conv_bodies):
        requests.append((f"conv body {body[:40]!r}", "POST", "/api/conv",
                         {"content": body, "headers": {"content-type": "application/json"}}))
    for path, params, body, kind in [("/api/conv", {}, b'{"image": "sample:digit"}', "application/json"),
                                     ("/api/upload", {}, picture, "image/png"),
                                     ("/api/classify", {"run": "digits"}, picture, "application/octet-stream")]:
        for headers in ({"origin": "http://evil.example", "content-type": "text/plain"},
                        {"origin": "http://evil.example", "content-type": kind}, {"origin": "null", "content-type": kind},
                        {"origin": "http://127.0.0.1:8888", "content-type": kind},
                        {"sec-fetch-site": "cross-site", "content-type": kind}, {"content-type": "text/plain"},
                        {"content-type": "application/x-www-form-urlencoded"}, {"host": "evil.example", "content-type": kind},
                        {"host": "127.0.0.1.evil.example", "content-type": kind}):
            requests.append((f"{path} with {headers}", "POST", path, {"params": params, "content": body, "headers": headers}))
    for run_name in ("weather", "broken", "std0", "cut", "nothing", "../digits", "escape", "", "digits/../../x"):
        requests.append((f"classify against {run_name!r}", "POST", "/api/classify",
                         {"params": {"run": run_name}, "content": picture, "headers": {"content-type": "application/octet-stream"}}))
    for what, body in [("an EPS named png", eps), ("nothing", b""), ("text", b"hello"), ("half a PNG", picture[:40]),
                       ("11 MB", b"\x89PNG" + b"\0" * (11 * 2**20))]:
        for path, params in (("/api/upload", {}), ("/api/classify", {"run": "digits"})):
            requests.append((f"{path} {what}", "POST", path, {"params": params, "content": body,
                                                              "headers": {"content-type": "application/octet-stream"}}))
    for url in ["/api/run?run=../../etc", "/api/run?run=escape", "/api/run/file?run=digits&name=../../etc/passwd",
                "/api/run/file?run=digits&name=config.json%00.png", "/api/run/file?run=digits&name=model.safetensors",
                "/api/run/file?run=escape&name=summary.txt", "/api/run?run=%2e%2e%2f%2e%2e", "/api/run/file?run=digits",
                "/api/run", "/api/forecast?run=digits", "/api/forecast?run=broken", "/api/forecast?run=../x",
                "/api/run?run=" + "a" * 5000, "/api/run/file?run=digits&name=/etc/passwd", "/static/../../README.md",
                "/api/run/file?run=" + "a" * 5000 + "&name=summary.txt"]:
        requests.append((f"GET {url[:60]}", "GET", url, {}))
    requests.append(("GET /api/runs with another site's headers", "GET", "/api/runs",
                     {"headers": {"sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors"}}))
    requests.append(("GET /api/runs for evil.example", "GET", "/api/runs", {"headers": {"host": "evil.example"}}))
    with TestClient(create_app(root), base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        listing = client.get("/api/runs")
        ids = {r.get("id", r.get("name")) for r in listing.json().get("runs", [])} if listing.status_code == 200 else set()
        ok = {"digits", "weather"} <= ids and any(r.get("status") == "damaged" for r in listing.json()["runs"])
        record("input", "web", "the listing with a broken run still lists the others", ok, f"{listing.status_code}")
        for name, method, url, kwargs in requests:
            try:
                r = client.request(method, url, **kwargs)
                error = r.json().get("error", "") if r.headers.get("content-type", "").startswith("application/json") \
                    and isinstance(r.json(), dict) else ""
                ok = 400 <= r.status_code < 500 and (error == "" or "\n" not in error) and "Traceback" not in r.text
                if url.startswith("/api/") and ok:
                    ok = bool(error)
                detail = f"{r.status_code}: {error or r.text[:80]}"
            except Exception as e:  # noqa: BLE001
                ok, detail = False, f"{type(e).__name__}: {e}"
            record("input", "web", name, ok, detail)


# --- faults ----------------------------------------------------------------------------------

def child(*args: str, crash_at: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})}
    environ.pop("NEURALAB_CRASH_AT", None)
    if crash_at:
        environ["NEURALAB_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "neuralab", *args], env=environ, capture_output=True, text=True,
                          timeout=900)


def kill_faults(tmp: Path, digits: Path, csv: Path, points: list[str], forecast_points: list[str]) -> None:
    from neuralab.runs import Run, Status

    train = ["train", "--model", "mlp", "--data", str(digits), "--epochs", "3", "--batch-size", "64", "--seed", "3",
             "--quiet"]
    forecast = ["forecast", "--data", str(csv), *FORECAST[:-3], "--epochs", "2", "--backtest-folds", "2", "--quiet"]
    for kind, argv, crash_points in (("kill train", train, points), ("kill forecast", forecast, forecast_points)):
        for point in crash_points:
            run = tmp / f"kill-{len(RESULTS)}"
            killed = child(*argv, "--out", str(run), crash_at=point)
            if killed.returncode != -signal.SIGKILL:
                record("fault", kind, point, False, f"never reached: exit {killed.returncode} {killed.stderr[-150:]}")
                continue
            broken = unreadable(run)
            if Run(run).status() is Status.RUNNING:
                broken = "still held after the kill"
            if not broken:
                finished = (run / "results.json").exists()
                if finished:
                    back = child("report", str(run))
                elif kind == "kill train":
                    back = child("train", "--resume", str(run), "--quiet")
                    if back.returncode == 2 and "same --out" in back.stderr:
                        back = child(*argv, "--out", str(run))
                else:
                    back = child(*argv, "--out", str(run), "--overwrite")
                broken = (f"the way back failed: {back.stderr.strip()[-150:]}" if back.returncode != 0 else
                          unreadable(run) or ("" if Run(run).status() is Status.FINISHED and not list(run.rglob("*.tmp"))
                                         else f"{Run(run).status().value} after the way back"))
            record("fault", kind, point, not broken, broken or "whole; the way back worked")


def folder_faults(tmp: Path, digits: Path, csv: Path, run: Path) -> None:
    """Read-only folders and a full disk: one line naming the path, exit 2, nothing else written."""

    locked = tmp / "locked"
    picture = tmp / "seven.png"
    argvs = {
        "train --out": ["train", "--model", "mlp", "--data", str(digits), "--epochs", "1", "--quiet", "--out", "{d}/run"],
        "forecast --out": ["forecast", "--data", str(csv), *FORECAST, "--out", "{d}/f"],
        "inspect --out": ["inspect", str(run), str(picture), "--out", "{d}/maps"],
        "export --onnx --out": ["export", str(run), "--onnx", "--out", "{d}/m.onnx"],
        "conv apply --out": ["conv", "apply", str(picture), "--out", "{d}/c.png"],
        "predict, then nothing to write": None,
    }
    with read_only(locked):
        for what, argv in argvs.items():
            if argv is None:
                continue
            done = child(*[a.replace("{d}", str(locked)) for a in argv])
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            ok = done.returncode == 2 and len(lines) == 1 and str(locked) in done.stderr and "Traceback" not in done.stderr
            record("fault", "read-only", what, ok, done.stderr.strip()[-160:])
        cache = child("data", "fetch", "mnist", env={"NEURALAB_DATA": str(locked / "cache")})
        record("fault", "read-only", "data fetch into a read-only cache",
               cache.returncode == 2 and "Traceback" not in cache.stderr and cache.stderr.count("\n") == 1, cache.stderr[-160:])
    copy = shutil.copytree(run, tmp / "frozen")
    (copy / "results.json").unlink()
    with read_only(copy):
        for what, argv in {"train --resume": ["train", "--resume", str(copy), "--quiet"],
                           "export --onnx into the run": ["export", str(copy), "--onnx"],
                           "report of a read-only run": ["report", str(copy)]}.items():
            done = child(*argv)
            ok = done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
            record("fault", "read-only", what, ok, done.stderr.strip()[-160:])
    # a full disk: a tmpfs of a few hundred KB (root), else none
    if os.geteuid() != 0:
        print("not root: the full-disk faults need a tiny tmpfs and were not tried")
        return
    for what, size, argv, survives in [
        ("train on a full disk", "64k", ["train", "--model", "mlp", "--data", str(digits), "--epochs", "1", "--quiet",
                                          "--out", "{d}/run"], "run"),
        ("train whose report fills the disk", "700k", ["train", "--model", "mlp", "--data", str(digits), "--epochs", "2",
                                                        "--quiet", "--out", "{d}/run"], "run"),
        ("forecast on a full disk", "64k", ["forecast", "--data", str(csv), *FORECAST, "--out", "{d}/f"], "f"),
        ("forecast whose report fills the disk", "300k", ["forecast", "--data", str(csv), *FORECAST, "--out", "{d}/f"], "f"),
        ("inspect on a full disk", "16k", ["inspect", str(run), str(picture), "--out", "{d}/maps"], None),
        ("export --onnx on a full disk", "16k", ["export", str(run), "--onnx", "--out", "{d}/m.onnx"], None),
    ]:
        disk = tmp / f"disk-{len(RESULTS)}"
        disk.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], check=True)
        try:
            done = child(*[a.replace("{d}", str(disk)) for a in argv])
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            if done.returncode == 0:
                ok, detail = True, "fitted on the disk"
            else:
                ok = done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr
                detail = done.stderr.strip()[-160:]
                if ok and survives:  # what was written is whole, and not held
                    from neuralab.runs import Run, Status

                    broken = unreadable(disk / survives) if (disk / survives).exists() else ""
                    if (disk / survives).exists() and Run(disk / survives).status() is Status.RUNNING:
                        broken = "still held"
                    ok, detail = not broken, broken or detail
            record("fault", "full disk", f"{what} ({size})", ok, detail)
        finally:
            subprocess.run(["umount", str(disk)], check=True)


# --- main -----------------------------------------------------------------------------------

CLASSIFIER_POINTS = ["config.json", "model.json", "summary.txt", "checkpoints/last.safetensors:1", "metrics.jsonl:1",
                     "checkpoints/best.safetensors:1", "model.safetensors:1", "checkpoints/last.safetensors:3",
                     "metrics.jsonl:3", "results.json", "learning_curves.png", "confusion_matrix.png", "mistakes.png",
                     "report.html"]
FORECAST_POINTS = ["config.json", "model.json", "checkpoints/last.safetensors:1", "metrics.jsonl:1",
                   "checkpoints/best.safetensors:1", "model.safetensors:1", "checkpoints/last.safetensors:2",
                   "metrics.jsonl:2", "forecast.csv", "results.json", "plots/series.png", "plots/forecast.png",
                   "plots/error_by_step.png", "plots/learning_curves.png", "report.html"]


def figures(cases: list[dict], seconds: float, machine: str) -> str:
    """The section of docs/guarantees.md: totals, then each class, then what was not handled."""
    import datetime

    source = subprocess.run(["git", "log", "-1", "--format=%h %cs"], cwd=REPO, capture_output=True, text=True,
                            check=False).stdout.strip()
    lines = [f"Measured by `python bench/bench_hostile.py` on {machine}, {datetime.date.today()}, source `{source}` "
             f"({seconds / 60:.0f} min; the machine was shared).", ""]
    for group, verb in (("input", "handled"), ("fault", "survived")):
        rows = [c for c in cases if c["group"] == group]
        lines.append(f"- **{'bad inputs' if group == 'input' else 'faults injected'}: {len(rows)} tried, "
                     f"{sum(c['handled'] for c in rows)} {verb}** ({len({c['kind'] for c in rows})} classes)")
    lines += ["", "| class | tried | handled or survived |", "|---|---:|---:|"]
    for group in ("input", "fault"):
        for kind in sorted({c["kind"] for c in cases if c["group"] == group}):
            rows = [c for c in cases if c["group"] == group and c["kind"] == kind]
            lines.append(f"| {group}: {kind} | {len(rows)} | {sum(c['handled'] for c in rows)} |")
    missed = [c for c in cases if not c["handled"]]
    lines += ["", "Not handled: " + ("none." if not missed else "; ".join(
        f"{c['kind']}: {c['name']} ({c['detail'][:120]})" for c in missed))]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every case and the totals here")
    parser.add_argument("--quick", action="store_true", help="inputs only, and three kills of each kind")
    parser.add_argument("--no-doc", action="store_true", help="leave docs/guarantees.md as it is")
    parser.add_argument("--doc-from", metavar="JSON", help="only write docs/guarantees.md's figures from a --json file")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    from _doc import machine, update_section

    doc = REPO / "docs" / "guarantees.md"
    if args.doc_from:
        saved = json.loads(Path(args.doc_from).read_text())
        update_section("bench_hostile", figures(saved["cases"], saved["seconds"], saved["machine"]), doc)
        return 0
    os.environ.setdefault("NEURALAB_DATA", tempfile.mkdtemp(prefix="neuralab-cache-"))
    datasets = os.environ.get("NEURALAB_TEST_DATASETS")
    fashion = Path(datasets) / "fashion-mnist" if datasets and (Path(datasets) / "fashion-mnist").is_dir() else None
    if fashion is None:
        from neuralab.data.sources import locate

        with contextlib.suppress(Exception):
            fashion = locate("fashion-mnist", None)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="hostile-") as t:
        tmp = Path(t)
        digits = digits_folder(tmp / "digits", n=400)
        csv = series_csv(tmp / "load.csv")
        run, forecast_run = tmp / "run", tmp / "forecast"
        for argv in (["train", "--model", "cnn", "--data", str(digits), "--epochs", "1", "--quiet", "--out", str(run)],
                     ["forecast", "--data", str(csv), *FORECAST, "--out", str(forecast_run)]):
            made = child(*argv)
            assert made.returncode == 0, made.stderr
        from PIL import Image

        Image.fromarray((np.arange(64).reshape(8, 8) * 4).astype(np.uint8)).save(tmp / "seven.png")
        command_line_inputs(tmp, digits, run, forecast_run)
        file_inputs(tmp, fashion, run)
        web_inputs(tmp, run, forecast_run)
        quick = slice(0, 3) if args.quick else slice(None)
        kill_faults(tmp, digits, csv, CLASSIFIER_POINTS[quick], FORECAST_POINTS[quick])
        if not args.quick:
            folder_faults(tmp, digits, csv, run)
    totals = {}
    for group in ("input", "fault"):
        rows = [r for r in RESULTS if r.group == group]
        totals[group] = {"tried": len(rows), "handled": sum(r.handled for r in rows),
                         "classes": sorted({r.kind for r in rows})}
    print(f"\nbad inputs: {totals['input']['handled']} of {totals['input']['tried']} handled "
          f"({len(totals['input']['classes'])} classes)")
    print(f"faults: {totals['fault']['handled']} of {totals['fault']['tried']} survived "
          f"({len(totals['fault']['classes'])} classes); {time.time() - started:.0f} s")
    for r in RESULTS:
        if not r.handled:
            print(f"  not handled: {r.group} {r.kind}: {r.name}: {r.detail}")
    cases, seconds = [r.__dict__ for r in RESULTS], time.time() - started
    if args.json:
        Path(args.json).write_text(json.dumps({"totals": totals, "seconds": seconds, "machine": machine(),
                                               "cases": cases}, indent=1))
    if not (args.quick or args.no_doc):
        update_section("bench_hostile", figures(cases, seconds, machine()), doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
