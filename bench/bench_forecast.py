"""The forecasting defaults on real series they were never tuned on.

Runs the DEFAULT `neuralab forecast` (only --data, and --target, --date-column or
--series-column where needed; --seed, --out, --threads 1 and --quiet change nothing in the
recipe) over real series of different kinds, 3 seeds each, and writes to
docs/forecasting.md the network's test MAE divided by the best baseline's: at most 1.0 is
the target on weather and load series, at most 1.05 on prices (persistence is nearly
optimal there). Then the extras the issue asks for: a three-station hourly weather file
with --series-column and with --where, --horizon 24 on hourly data (MAE per step and the
test coverage of the 80% and 95% intervals), and a generated 3.4 M-row CSV (about 200 MB)
whose peak memory is measured (within 4 GB, or refused up front with an estimate).

    python bench/bench_forecast.py --prepare   # once: a separate venv exports the real series
    nice python bench/bench_forecast.py        # every run; resumable (finished runs are kept)
    nice python bench/bench_forecast.py --worker &   # or several workers sharing one queue
    nice python bench/bench_forecast.py --memory &   # the 3.4 M-row run alone (its peak RSS)
    python bench/bench_forecast.py --write     # the table from the run directories so far

The table is read from the run directories (the record of truth): each series' median and
worst ratio over the seeds run, the best forecaster of each seed, and whether the network's
reported forecast was its trained state or its linear start (kept when training did not beat
it on the validation span by more than noise).

The series outside neuralab come from packages that ship them offline, installed into a
separate virtual environment under the cache folder (neuralab depends on none of them):
vega_datasets (hourly temperatures of Seattle and San Francisco, 2010, from NOAA),
pmdarima (MSFT daily prices; half-hourly electricity load of England and Wales, Taylor
2003; monthly sunspots), statsmodels (weekly CO2 at Mauna Loa; monthly Nino 1+2 sea
temperature) and pvlib (a typical meteorological year for Greensboro, NC, the third station).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _doc import update_section  # noqa: E402
from neuralab.forecasting.metrics import tied  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("NEURALAB_BENCH_DATA", Path.home() / ".cache" / "neuralab-bench" / "forecast"))
DATA = CACHE / "csv"
RUNS = CACHE / "runs"
RESULTS = CACHE / "results.json"   # the series table
EXTRAS = CACHE / "extras.json"     # the extras, kept apart so that both can run at once
MEMORY = CACHE / "memory.json"     # the 3.4 M-row run's peak memory (measured by the process that ran it)
PACKAGES = ["vega_datasets==0.9.0", "pmdarima==2.1.1", "statsmodels==0.15.0", "pvlib==0.16.1"]
SEEDS = (0, 1, 2)
TARGET = {"weather": 1.0, "load": 1.0, "price": 1.05}

# Where each series comes from: the package that ships it offline (its licence) and the data's origin.
SOURCES = {
    "sp500": "`arch` (NCSA), Yahoo! Finance",
    "nasdaq": "`arch` (NCSA), Yahoo! Finance",
    "msft.csv": "`pmdarima` (MIT), Kaggle's US stocks and ETFs (CC0)",
    "seattle-weather": "`vega_datasets` (BSD-3), NOAA",
    "seattle-temps.csv": "`vega_datasets` (BSD-3), NOAA",
    "sf-temps.csv": "`vega_datasets` (BSD-3), NOAA",
    "taylor-load.csv": "`pmdarima` (MIT), Taylor (2003)",
    "co2.csv": "`statsmodels` (BSD-3), Keeling and Whorf, public domain",
    "elnino.csv": "`statsmodels` (BSD-3), NOAA ERSST V3B, public domain",
    "sunspots.csv": "`pmdarima` (MIT), Andrews and Herzberg (1985)",
}

# (label, kind, --data, other arguments)
SERIES = [
    ("S&P 500, daily close 1999-2018", "price", "sp500", []),
    ("NASDAQ Composite, daily close 1999-2018", "price", "nasdaq", []),
    ("MSFT, daily close 1986-2017", "price", "msft.csv", ["--target", "Close"]),
    ("Seattle, daily maximum temperature 2012-2015", "weather", "seattle-weather", []),
    ("Seattle, hourly temperature 2010", "weather", "seattle-temps.csv", []),
    ("San Francisco, hourly temperature 2010", "weather", "sf-temps.csv", []),
    ("England and Wales, half-hourly electricity load 2000", "load", "taylor-load.csv", []),
    ("Mauna Loa, weekly CO2 1958-2001", "seasonal", "co2.csv", []),
    ("Nino 1+2, monthly sea surface temperature 1950-2010", "seasonal", "elnino.csv", []),
    ("Sunspots, monthly 1749-1983", "cycle", "sunspots.csv", []),
]


def prepare_data() -> None:
    venv = CACHE / "venv"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PACKAGES], check=True)
    subprocess.run([str(venv / "bin" / "python"), str(ROOT / "bench" / "forecast_data.py"), str(DATA)], check=True)


def data_path(data: str) -> str:
    return str(DATA / data) if data.endswith(".csv") else data


def forecast(out: Path, args: list[str]) -> tuple[dict | None, float, int, str]:
    """One `neuralab forecast` in a child process: its results, seconds, peak RSS (bytes), last words."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "neuralab", "forecast", *args, "--threads", "1", "--out", str(out), "--overwrite"]
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    seconds = time.perf_counter() - t0
    text = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        return None, seconds, peak if peak > before * 1024 else 0, text.splitlines()[-1] if text else ""
    return json.loads((out / "results.json").read_text()), seconds, peak, text


def load_results(path: Path = RESULTS) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def save(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)


def ratio(res: dict) -> float:
    head = res["headline"]
    return head["network_score"] / head["best_baseline_score"] if head["best_baseline_score"] else float("nan")


def summary(res: dict, seconds: float) -> dict:
    head = res["headline"]
    return {"ratio": ratio(res), "best": head["best"], "best_baseline": head["best_baseline"],
            "rank": head["network_rank"], "transform": res["transform"]["used"],
            "kept_linear_start": res.get("kept_linear_start"), "epochs": res["epochs_run"],
            "coverage": {k: v["coverage"] for k, v in res.get("intervals", {}).get("coverage", {}).items()},
            "intervals": res.get("intervals", {}).get("method", "")[:8],
            "mae": {n: m["mae"] for n, m in res["test"].items()}, "seconds": seconds,
            "linear_start": res.get("linear_start", "")}


def collect() -> dict:
    """Every finished series run, read from its run directory (the record of truth)."""
    found = {}
    for _, _, data, _ in SERIES:
        for seed in SEEDS:
            path = RUNS / f"{Path(data).stem}-s{seed}" / "results.json"
            if path.is_file():
                res = json.loads(path.read_text())
                found[f"{data}|{seed}"] = summary(res, res.get("train_seconds", 0.0))
    return found


def run_series(results: dict, seeds, only: set | None) -> None:
    for seed in seeds:  # every series once before any second seed: a partial bench still covers them all
        for label, kind, data, extra in SERIES:
            key = f"{data}|{seed}"
            if key in results or (only and data not in only):
                continue
            print(f"{label}, seed {seed} ...", flush=True)
            res, seconds, _, text = forecast(RUNS / f"{Path(data).stem}-s{seed}",
                                             ["--data", data_path(data), *extra, "--seed", str(seed), "--quiet"])
            results[key] = {"error": text, "seconds": seconds} if res is None else summary(res, seconds)
            save(results, RESULTS)
            print(f"  {results[key].get('ratio', results[key].get('error'))}  ({seconds:.0f} s)", flush=True)


def queue() -> list[tuple[int, tuple]]:
    """Every (seed, series) run, in the order a short bench covers most: each seed before the
    next, within one the cheap series first (the hourly ones take longest)."""
    cost = {"seattle-temps.csv": 9, "sf-temps.csv": 9, "msft.csv": 5, "nasdaq": 4, "sp500": 4}
    return [(seed, item) for seed in SEEDS for item in sorted(SERIES, key=lambda i: cost.get(i[2], 1))]


def work(only: set | None) -> None:
    """One worker of several: takes the next run no other worker has claimed (its directory
    made first), so that any number can run at once on a shared machine."""
    items = [(f"{label}, seed {seed}", RUNS / f"{Path(data).stem}-s{seed}",
              ["--data", data_path(data), *extra, "--seed", str(seed), "--quiet"])
             for seed, (label, kind, data, extra) in queue() if not only or data in only]
    firsts = sum(1 for seed, _ in queue() if seed == SEEDS[0])
    extras = [(key, RUNS / key.replace("|", "-"), args) for key, args in extra_runs().items()]
    for name, out, args in items[:firsts] + ([] if only else extras) + items[firsts:]:
        try:
            out.mkdir(parents=True)
        except FileExistsError:
            continue  # done, or another worker's
        print(f"{name} ...", flush=True)
        res, seconds, _, text = forecast(out, args)
        print(f"  {ratio(res) if res else text}  ({seconds:.0f} s)", flush=True)


def big_csv(path: Path, rows: int = 3_400_000) -> Path:
    """A generated hourly CSV of about 200 MB: a daily cycle, a random walk and noise."""
    if path.exists():
        return path
    import pandas as pd

    rng = np.random.default_rng(0)
    t = np.arange(rows)
    frame = pd.DataFrame({
        "time": pd.date_range("1700-01-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M:%S"),
        "value": 10 * np.sin(2 * np.pi * t / 24) + np.cumsum(rng.normal(0, 0.1, rows)) + rng.normal(0, 1, rows),
        "humidity": rng.uniform(0, 100, rows),
        "wind": rng.gamma(2, 3, rows),
        "station": "A",
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.8f")
    return path


def extra_runs() -> dict[str, list[str]]:
    three = data_path("three-stations.csv")
    return {
        "three-stations|series-column": ["--data", three, "--series-column", "station", "--quiet"],
        "three-stations|where": ["--data", three, "--where", "station=SEATTLE", "--quiet"],
        "seattle-temps|horizon-24": ["--data", data_path("seattle-temps.csv"), "--horizon", "24", "--quiet"],
    }


def extra_summary(res: dict, seconds: float) -> dict:
    return {"ratio": ratio(res), "best": res["headline"]["best"], "seconds": seconds,
            "by_step_mae": res["by_step_mae"], "network": res["headline"]["network"],
            "intervals": res.get("intervals", {}).get("coverage", {}),
            "series": {k: v["best"] for k, v in res.get("series", {}).items()}, "test": res["test"]}


def collect_extras() -> dict:
    """The extras from their run directories, and the memory measurement from its file."""
    found = {}
    for key in extra_runs():
        path = RUNS / key.replace("|", "-") / "results.json"
        if path.is_file():
            res = json.loads(path.read_text())
            found[key] = extra_summary(res, res.get("train_seconds", 0.0))
    found.update(load_results(MEMORY))
    return found


def run_extras(results: dict) -> None:
    for key, args in extra_runs().items():
        if key in results:
            continue
        print(f"{key} ...", flush=True)
        res, seconds, _, text = forecast(RUNS / key.replace("|", "-"), args)
        results[key] = {"error": text, "seconds": seconds} if res is None else extra_summary(res, seconds)
        save(results, EXTRAS)
    run_memory(results)
    save(results, EXTRAS)


def run_memory(results: dict) -> None:
    if "memory" not in results:
        path = big_csv(CACHE / "big.csv")
        print(f"memory: {path.stat().st_size / 1e6:.0f} MB ...", flush=True)
        res, seconds, peak, text = forecast(RUNS / "big", [
            "--data", str(path), "--target", "value", "--model", "lstm", "--hidden", "8", "--lookback", "24",
            "--epochs", "1", "--batch-size", "1024", "--backtest-folds", "1"])
        loading = next((line for line in text.splitlines() if line.startswith("loading")), text.splitlines()[-1])
        results["memory"] = {"rows": 3_400_000, "megabytes": path.stat().st_size / 1e6, "peak_rss": peak,
                             "seconds": seconds, "finished": res is not None, "said": loading}
        save({"memory": results["memory"]}, MEMORY)


def table(results: dict) -> str:
    lines = ["| series | kind | source (package, licence), origin | command (`neuralab forecast` ...) | seeds | "
             "network MAE / best baseline: median | worst | target | best forecaster (per seed) | network's forecast | "
             "80% / 95% coverage (seed 0) |",
             "|---|---|---|---|---|---:|---:|---:|---|---|---|"]
    for label, kind, data, extra in SERIES:
        runs = [results.get(f"{data}|{s}") for s in SEEDS]
        done = [(s, r) for s, r in zip(SEEDS, runs) if r and "ratio" in r]
        ratios = [r["ratio"] for _, r in done]
        target = TARGET.get(kind)
        mark = "" if target is None or not ratios else (" ✓" if max(ratios) <= target else " ✗")
        seeds = ", ".join(str(s) for s, _ in done) or "-"
        median = f"{np.median(ratios):.3f}" if ratios else "-"
        worst = f"{max(ratios):.3f}{mark}" if ratios else "-"
        # a network that kept its linear start scores as the baseline it started from, up to rounding
        labels = ["tie (linear start)" if r.get("kept_linear_start") and tied(r["ratio"], 1.0) else r["best"]
                  for _, r in done]
        same_tie = labels and len(set(labels)) == 1 and labels[0].startswith("tie")
        best = f"{labels[0]}, {len(labels)}/{len(labels)}" if same_tie else ", ".join(labels) or "-"
        kept = sum(bool(r.get("kept_linear_start")) for _, r in done)
        used = (f"linear start {kept}/{len(done)}" if kept else "") + (", " if 0 < kept < len(done) else "") + \
            (f"trained {len(done) - kept}/{len(done)}" if kept < len(done) else "") if done else "-"
        first = done[0][1] if done else {}
        cov = first.get("coverage", {})
        command = " ".join(["--data", data, *extra])
        lines.append(f"| {label} | {kind} | {SOURCES.get(data, '')} | `{command}` | {seeds} | {median} | {worst} | "
                     f"{target or '-'} | {best} | {used} | {' / '.join(f'{100 * v:.0f}%' for v in cov.values()) or '-'} |")
    out = "\n".join(lines)
    extras = []
    sc = results.get("three-stations|series-column")
    if sc and "test" in sc:
        net = sc["network"]
        best_base = min((m["mase"], n) for n, m in sc["test"].items() if n != net)
        extras.append(f"- Three stations in one file, `--series-column station` (one network for all three): overall "
                      f"MASE {sc['test'][net]['mase']:.3f} for the network vs {best_base[0]:.3f} for {best_base[1]}; "
                      f"best per station: {', '.join(f'{k} {v}' for k, v in sc['series'].items())}.")
    wh = results.get("three-stations|where")
    if wh and "ratio" in wh:
        extras.append(f"- The same file with `--where station=SEATTLE`: network / best baseline {wh['ratio']:.3f} "
                      f"(best: {wh['best']}).")
    h24 = results.get("seattle-temps|horizon-24")
    if h24 and "by_step_mae" in h24:
        steps = h24["by_step_mae"][h24["network"]]
        cov = h24["intervals"]
        extras.append(f"- Seattle hourly, `--horizon 24`: network MAE per step {steps[0]:.2f} (step 1), "
                      f"{steps[5]:.2f} (6), {steps[11]:.2f} (12), {steps[23]:.2f} (24) °F; network / best baseline "
                      f"{h24['ratio']:.3f} (best: {h24['best']}); interval coverage on the test span "
                      + ", ".join(f"{k}%: {100 * v['coverage']:.1f}%" for k, v in cov.items()) + ".")
    mem = results.get("memory")
    if mem:
        extras.append(f"- A generated CSV of {mem['rows']:,} rows ({mem['megabytes']:.0f} MB): peak memory "
                      f"{mem['peak_rss'] / 2**30:.2f} GiB, {'finished' if mem['finished'] else 'refused'} in "
                      f"{mem['seconds']:.0f} s; it said \"{mem['said']}\".")
    return out + ("\n\n" + "\n".join(extras) if extras else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", action="store_true", help="make the data venv and export the series")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--series", help="only these --data values, comma-separated")
    parser.add_argument("--no-extras", action="store_true")
    parser.add_argument("--extras-only", action="store_true", help="only the extras (they can run beside the series)")
    parser.add_argument("--write", action="store_true", help="only write the table from the runs so far")
    parser.add_argument("--memory", action="store_true", help="only the 3.4 M-row run's peak memory")
    parser.add_argument("--worker", action="store_true", help="take unclaimed runs from the queue (several at once)")
    parser.add_argument("--part", help="keep this process's runs in results-PART.json, so that several can run at once")
    args = parser.parse_args()
    if args.prepare:
        prepare_data()
        return
    global RESULTS
    if args.part:
        RESULTS = CACHE / f"results-{args.part}.json"
    results, extras = load_results(), load_results(EXTRAS)
    if args.memory:
        run_memory(load_results(MEMORY))
    elif args.worker:
        work(set(args.series.split(",")) if args.series else None)
    elif not args.write:
        if not args.extras_only:
            run_series(results, [int(s) for s in args.seeds.split(",")],
                       set(args.series.split(",")) if args.series else None)
        if not args.no_extras:
            run_extras(extras)
    text = table({**collect(), **load_results(EXTRAS), **collect_extras()})
    print(text)
    update_section("bench_forecast", f"Measured by `bench/bench_forecast.py` ({time.strftime('%Y-%m-%d')}, "
                                     "a shared 2-core machine, one thread per run):\n\n" + text,
                   doc=ROOT / "docs" / "forecasting.md")


if __name__ == "__main__":
    main()
