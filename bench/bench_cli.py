"""How long the light commands take from the shell prompt to their last line of output.

Each command runs as a whole, `neuralab ...` through a shell, as a user types it: Python's
start, the imports, the parsing and the work. The commands take turns (round 1 runs each
once, then round 2, ...), so that a busy spell on a shared machine falls on all of them;
the figure is the median. Target: under 1 s each.

    python bench/bench_cli.py [--rounds 7] [--against OTHER_SRC]

``--against`` times the same commands on another source tree too (e.g. a checkout of an
earlier commit's src/), interleaved with this one, for a before/after column.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _doc import SRC, command_env, command_line, commit, machine, update_section  # noqa: E402

COMMANDS = [
    "neuralab --help",
    "neuralab conv shape --input 32x32x3 --filters 16 --kernel 5 --stride 2 --padding same",
    "neuralab conv demo",
    "neuralab data list",
    "neuralab zoo",
]
TARGET_S = 1.0


def timed(command: str, src: Path) -> float:
    """Seconds from the shell's start to the command's exit; its output is discarded."""
    line = command_line(command, src)
    env = command_env(src)
    start = time.perf_counter()
    done = subprocess.run(["/bin/sh", "-c", line], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command} failed with PYTHONPATH={src}: {done.stderr.decode()[-1000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--against", type=Path, help="another src/ folder to time the same commands on")
    ap.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md as it is")
    args = ap.parse_args()
    trees = [SRC] + ([args.against.resolve()] if args.against else [])
    times = {(c, t): [] for c in COMMANDS for t in trees}
    python = []
    for command in COMMANDS:  # compile and cache every module once, untimed
        for tree in trees:
            timed(command, tree)
    load = os.getloadavg()
    for r in range(args.rounds):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"])
        python.append(time.perf_counter() - t0)
        for command in COMMANDS:
            for tree in trees:
                times[command, tree].append(timed(command, tree))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{times[c, SRC][-1]:.2f}" for c in COMMANDS), flush=True)
    load = [max(a, b) for a, b in zip(load, os.getloadavg())]

    head = "| command | median (s) | min (s) | under 1 s |"
    rule = "|---|---:|---:|:---:|"
    if args.against:
        head += f" `{commit(args.against)}` median (s) |"
        rule += "---:|"
    rows = []
    for c in COMMANDS:
        ts = times[c, SRC]
        row = f"| `{c}` | {statistics.median(ts):.2f} | {min(ts):.2f} | {'yes' if statistics.median(ts) < TARGET_S else 'NO'} |"
        if args.against:
            row += f" {statistics.median(times[c, args.against.resolve()]):.2f} |"
        rows.append(row)
    met = sum(statistics.median(times[c, SRC]) < TARGET_S for c in COMMANDS)
    text = "\n".join([
        "## Command-line start-up",
        "",
        f"Measured by `python bench/bench_cli.py` on {machine()}, {time.strftime('%Y-%m-%d')}, "
        f"source `{commit(SRC)}`. Each command runs whole through `/bin/sh`, from start to exit, output "
        f"discarded, with Python's compiled modules cached as in an installed copy (one untimed run first); "
        f"{args.rounds} rounds, the commands taking turns; medians. Python alone "
        f"(`python -c pass`) starts in a median {statistics.median(python):.2f} s. The machine was shared: "
        f"load average up to {load[0]:.1f} (1 min) while it ran.",
        "",
        head, rule, *rows,
        "",
        f"Target: each under {TARGET_S:.0f} s median: {'**met**' if met == len(COMMANDS) else '**not met**'} "
        f"({met} of {len(COMMANDS)}). None of these imports torch, pandas or matplotlib "
        "(tests/test_cli_startup.py); what is left is Python, NumPy and the work itself.",
    ])
    print(text)
    if not args.no_doc:
        update_section("bench_cli", text)


if __name__ == "__main__":
    main()
