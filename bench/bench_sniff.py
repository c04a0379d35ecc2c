"""How long `neuralab forecast` takes to size a large CSV before reading it (data.tables.sniff_csv):
its rows, separator, decimal mark and encoding, from a file of about 100 MB.

    python bench/bench_sniff.py [--against OTHER_SRC]

Writes /tmp/neuralab-sniff.csv once (3.5 million rows, semicolon-separated, decimal commas), then
times ``sniff_csv`` 3 times and prints the median, beside counting the file's newlines alone (the
least any sizing does). With ``--against`` (another checkout's src/) that tree is timed in a
process of its own after this one's. Prints only; docs/benchmarks.md keeps the figures by hand.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILE = Path("/tmp/neuralab-sniff.csv")


def write_file() -> None:
    if FILE.exists():
        return
    with open(FILE, "w") as f:
        f.write("date;value;other\n")
        for i in range(3_500_000):
            f.write(f"2000-01-01 00:{i % 60:02d};{i % 997},{i % 7};{i % 13},5\n")


def measure() -> str:
    from neuralab.data.tables import sniff_csv

    times = []
    for _ in range(3):
        t = time.perf_counter()
        shape = sniff_csv(FILE)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    with open(FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            block.count(b"\n")
    newlines = time.perf_counter() - t
    return (f"{FILE.stat().st_size / 1e6:.0f} MB, {shape.rows:,} rows, decimal {shape.decimal!r}: sniff_csv "
            f"{statistics.median(times):.3f} s (median of 3), counting newlines alone {newlines:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="another checkout's src/, timed after this tree")
    parser.add_argument("--only", action="store_true", help=argparse.SUPPRESS)  # the child process's part
    args = parser.parse_args()
    write_file()
    if args.only:
        print(measure())
        return
    sys.path.insert(0, str(HERE.parent / "src"))
    print(f"this tree: {measure()}")
    if args.against:
        other = subprocess.run([sys.executable, __file__, "--only"], capture_output=True, text=True, check=True,
                               env={"PYTHONPATH": args.against, "PATH": "/usr/bin:/bin"})
        print(f"{args.against}: {other.stdout.strip()}")


if __name__ == "__main__":
    main()
