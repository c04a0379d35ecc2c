"""Training speed of every zoo model at its small-input size, like with like: one epoch in
neuralab's trainer, in a plain PyTorch loop with PyTorch's own layers, and in TF-Keras with
the same layers; writes its table to docs/benchmarks.md.

    python bench/bench_zoo.py                   # whole epochs for mlp, cnn, lenet5; 40 batches of the big three
    python bench/bench_zoo.py --quick           # a look in a few minutes: 30 batches, 3 of the big three
    python bench/bench_zoo.py --models cnn --rounds 5
    python bench/bench_zoo.py --rgb             # also AlexNet, VGG16, GoogLeNet at 32x32x3
    python bench/bench_zoo.py --rgb-only --no-write   # only those, printed

For each model the three loops alternate, round after round, in one run (the order rotates
each round), so that a machine shared with other work slows all three alike; the table gives
medians over the rounds and the median of the per-round ratios.

- neuralab: ``Trainer.fit`` for one epoch in float32 (``amp="off"``; channels-last, the layers
  through models/fast.py, fused Adam), no validation pass; the epoch's own seconds from the
  history, as the other two loops time theirs (fit's set-up and the heap handed back at its
  end are paid once per training, however many epochs). The whole call is timed too and
  listed under the table.
- plain PyTorch: the loop of the PyTorch examples: the model in PyTorch's own layers as
  ``build_model`` returns it, NCHW, ``DataLoader(TensorDataset(x, y), batch_size=128,
  shuffle=True)``, ``torch.optim.Adam``, ``zero_grad``/``backward``/``step``.
- TF-Keras: bench/_keras_zoo.py run by the Python of an environment with TensorFlow
  (``make tfenv`` makes .tfenv; $NEURALAB_TF_PYTHON names another), the same layers written
  in Keras (the trainable parameter counts are checked equal), Adam, batch 128; the epoch is
  timed inside that process after a warm-up, so TensorFlow's start-up and tracing are not
  counted.

Where ``amp="auto"`` computes in bfloat16 on this machine (models of 5M+ parameters on a CPU
with AVX-512 BF16), neuralab runs that way too, against TF-Keras under its mixed_bfloat16
policy, in a second table.

Every loop trains with batch 128 and Adam at lr 3e-3 on the same normalised images.
MLP, the sample CNN and the big three train on Fashion-MNIST, LeNet-5 on MNIST (54,000
training images each: 10% held out, as the trainer's default); --rgb adds 32x32x3 inputs,
random images with CIFAR-10's shape (45,000), since CIFAR-10 is not in the test data.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# PyTorch's OpenMP threads wait as the `neuralab` command has them wait, chosen before torch
# starts OpenMP: sleeping at once where other work keeps the cores busy (spinning threads made
# every PyTorch loop several times slower there), a short spin on free cores. Both PyTorch
# loops run with the same choice; TensorFlow's thread pool has its own.
from _waits import bench_waits  # noqa: E402

WAITS = bench_waits("bench_zoo")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _doc import DATASETS, machine, update_section  # noqa: E402

from neuralab.data import load_image_data  # noqa: E402
from neuralab.models import build_model, count_parameters, inner_product  # noqa: E402
from neuralab.training import CLASSIFICATION, TrainConfig, Trainer  # noqa: E402
from neuralab.training.preprocess import Preprocess  # noqa: E402

HERE = Path(__file__).resolve().parent
TF_PYTHON = os.environ.get("NEURALAB_TF_PYTHON", str(HERE.parent / ".tfenv" / "bin" / "python"))
BATCH, LR = 128, 3e-3
SMALL, BIG = ("mlp", "cnn", "lenet5"), ("alexnet", "vgg16", "googlenet")
DATA = {"mlp": "fashion-mnist", "cnn": "fashion-mnist", "lenet5": "mnist", "alexnet": "fashion-mnist",
        "vgg16": "fashion-mnist", "googlenet": "fashion-mnist"}
TARGETS = {"plain": 1.3, "keras": 2.0, "cnn_seconds": 20.0}  # issue 18
LOOPS = ("neuralab", "plain", "keras", "neuralab_bf16", "keras_bf16")  # the last two where auto picks bfloat16


def images(name: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(x, y, what) for a data name: normalised as the trainer's runs normalise them."""
    if name == "rgb":
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (45_000, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, 45_000)
        what = "random 32x32x3 (CIFAR-10's shape)"
    else:
        data = load_image_data(name, DATASETS / name, val_fraction=0.1)
        x, y, what = data.train.x, data.train.y, name
    return Preprocess.fit(x)(x), torch.from_numpy(np.asarray(y, dtype=np.int64)), what


def step_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Floating-point operations of one training step on ``x`` (forward and backward, the
    images' own gradient excluded), counted by PyTorch on its own layers: the work every loop
    must do, whatever its kernels."""
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), torch.zeros(len(x), dtype=torch.long)).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def matmul_peak(n: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """GFLOP/s of one large float32 matrix product on this machine's threads (median of
    ``repeats``), through MKL (PyTorch's ``@``) and through oneDNN (models/inner_product.py),
    the library of PyTorch's and TensorFlow's convolutions: the faster is roughly what the
    cores can do, the ceiling for convolutions done directly (on AMD's AVX-512 CPUs MKL keeps
    to AVX2 and reaches half of it)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    rates = []
    for product in (torch.matmul, inner_product.product):
        product(a, b)
        seconds = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            product(a, b)
            seconds.append(time.perf_counter() - t0)
        rates.append(2 * n ** 3 / statistics.median(seconds) / 1e9)
    return rates[0], rates[1]


def neuralab_epoch(trainer: Trainer, x, y, calls: list[float]) -> float:
    """The epoch's seconds as the trainer records them; the whole call's go to ``calls``."""
    t0 = time.perf_counter()
    trainer.fit(x, y)
    calls.append(time.perf_counter() - t0)
    return trainer.history[-1]["seconds"]


class PlainLoop:
    """The PyTorch-examples loop over PyTorch's own layers."""

    def __init__(self, name: str, x, y):
        torch.manual_seed(0)
        self.model = build_model(name, x.shape[1:], 10)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.x, self.y = x, y

    def epoch(self, x=None, y=None) -> float:
        loader = DataLoader(TensorDataset(self.x if x is None else x, self.y if y is None else y),
                            batch_size=BATCH, shuffle=True)
        self.model.train()
        t0 = time.perf_counter()
        for xb, yb in loader:
            self.optimizer.zero_grad()
            loss = F.cross_entropy(self.model(xb), yb)
            loss.backward()
            self.optimizer.step()
        return time.perf_counter() - t0


def keras_epoch(name: str, npz: Path, steps: int, threads: int, precision: str = "float32") -> dict | None:
    if not Path(TF_PYTHON).exists():
        return None
    command = [TF_PYTHON, str(HERE / "_keras_zoo.py"), name, str(npz), "--steps", str(steps), "--precision", precision]
    if threads:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"TF-Keras {name}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, data: str, steps: int, rounds: int, threads: int, keras: bool) -> dict:
    x, y, what = images(data)
    if steps:
        x, y = x[:steps * BATCH], y[:steps * BATCH]
    torch.manual_seed(0)
    model = build_model(name, x.shape[1:], 10)
    params = count_parameters(model, trainable_only=True)
    flops = step_flops(build_model(name, x.shape[1:], 10), x[:BATCH]) / BATCH  # per image
    config = TrainConfig(epochs=1, batch_size=BATCH, lr=LR, device="cpu", amp="off")  # float32, as the others
    trainer = Trainer(model, config, CLASSIFICATION, verbose=False)
    # What `--amp auto` chooses on this machine; where that is bfloat16 (large models, a CPU
    # with AVX-512 BF16) it runs too, against TF-Keras's mixed_bfloat16 policy.
    torch.manual_seed(0)
    mixed = Trainer(build_model(name, x.shape[1:], 10), dataclasses.replace(config, amp="auto"), CLASSIFICATION,
                    verbose=False)
    mixed = mixed if mixed.autocast == "bfloat16" else None
    plain = PlainLoop(name, x, y)
    # Warm-up: oneDNN's primitives, the allocator. Twice, because a fit hands its memory back
    # at its end, and in one session on this project's VM the next fit's first steps, on pages
    # the machine had not used before, took 2-4x as long (VGG16: 1.9 s more in its first timed
    # round; from the third fit on they ran at the steady speed). Other sessions saw no such
    # cost (docs/speed-rounds.md, the sixteenth and seventeenth rounds).
    for warm in (trainer, trainer, mixed, mixed):
        if warm is not None:
            warm.fit(x[:2 * BATCH], y[:2 * BATCH])
    plain.epoch(x[:2 * BATCH], y[:2 * BATCH])
    times: dict[str, list[float]] = {loop: [] for loop in LOOPS}
    calls: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "data.npz"
        if keras:
            np.savez(npz, x=x.permute(0, 2, 3, 1).contiguous().numpy(), y=y.numpy())  # Keras: (N, H, W, C)
        loops = {"neuralab": lambda: neuralab_epoch(trainer, x, y, calls), "plain": plain.epoch}
        if keras:
            loops["keras"] = lambda: keras_epoch(name, npz, 0, threads)
        if mixed is not None:
            loops["neuralab_bf16"] = lambda: neuralab_epoch(mixed, x, y, [])
            if keras:
                loops["keras_bf16"] = lambda: keras_epoch(name, npz, 0, threads, "mixed_bfloat16")
        tf_info = {}
        for r in range(rounds):
            order = list(loops)[r % len(loops):] + list(loops)[:r % len(loops)]
            for loop in order:
                result = loops[loop]()
                if isinstance(result, dict):
                    if result["params"] != params:
                        raise RuntimeError(f"TF-Keras {name} has {result['params']:,} trainable parameters, "
                                           f"neuralab's {params:,}: not the same layers")
                    tf_info = tf_info or result
                    result = result["seconds"]
                times[loop].append(result)
            print(f"{name} round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items() if v),
                  flush=True)
    return {"model": name, "data": what, "shape": tuple(x.shape[1:]), "images": len(x), "params": params,
            "flops": flops, "times": {k: v for k, v in times.items() if v}, "calls": calls, "tf": tf_info}


def ratio(row: dict, other: str, base: str = "neuralab") -> float | None:
    """Median over rounds of other's time / base's time (above 1: base is faster)."""
    if other not in row["times"] or base not in row["times"]:
        return None
    return statistics.median(o / n for o, n in zip(row["times"][other], row["times"][base]))


def markdown(rows: list[dict], args, load: tuple[float, float], minutes: float, peak: tuple[float, float]) -> str:
    tf = next((r["tf"] for r in rows if r["tf"]), {})
    flags = " ".join(f for f in (args.quick and "--quick", args.rgb and "--rgb", args.rgb_only and "--rgb-only",
                                 args.models != ",".join(SMALL + BIG) and f"--models {args.models}",
                                 args.rounds != 3 and f"--rounds {args.rounds}",
                                 args.big_steps != 40 and f"--big-steps {args.big_steps}",
                                 args.threads and f"--threads {args.threads}") if f)
    lines = [
        "## Training speed of the zoo: neuralab, a plain PyTorch loop, TF-Keras",
        "",
        f"Measured by `python bench/bench_zoo.py{' ' + flags if flags else ''}` on {machine()}"
        + (f", TensorFlow {tf['tensorflow']} with Keras {tf['keras']}" if tf else ", without TF-Keras")
        + f", {time.strftime('%Y-%m-%d')}; load average {load[0]:.1f} at the start and {load[1]:.1f} at the end, "
        f"{minutes:.0f} min in all, OpenMP threads {WAITS}. One epoch of each loop, batch 128, Adam; the three loops alternate in each of "
        f"{args.rounds} rounds; seconds are medians over the rounds, ratios the median of the per-round ratios "
        "(above 1: neuralab is faster). Each loop's epoch is timed as TF-Keras times it, from its first step to "
        "the end of its last (neuralab's from its history; its whole `fit` call, set-up and end included, is "
        "listed under the table). Where fewer images than the whole training set were timed, the last "
        "column scales neuralab's median to the whole epoch. GFLOP/s: the floating-point operations of the "
        "steps timed (forward and backward, counted by PyTorch's FlopCounterMode on PyTorch's layers) over each "
        f"loop's seconds; on the same threads one 2048x2048 matrix product runs at {peak[1]:.0f} GFLOP/s "
        f"through oneDNN and {peak[0]:.0f} through MKL, the faster about the ceiling for convolutions computed directly. "
        "The last but one column is what 2x TF-Keras asks.",
        "",
        "| model | data | images timed | parameters | neuralab (s) | plain PyTorch (s) | TF-Keras (s) "
        "| plain / neuralab | TF-Keras / neuralab | GFLOP/s neuralab / plain / TF-Keras "
        "| GFLOP/s for 2x TF-Keras | neuralab, whole epoch (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for row in rows:
        med = {k: statistics.median(v) for k, v in row["times"].items()}
        plain, keras = ratio(row, "plain"), ratio(row, "keras")
        full = {"fashion-mnist": 54_000, "mnist": 54_000}.get(row["data"], 45_000)
        c, h, w = row["shape"]
        keras_s = f"{med['keras']:.1f}" if "keras" in med else "-"
        work = row["flops"] * row["images"] / 1e9
        rates = " / ".join(f"{work / med[k]:.0f}" if k in med else "-" for k in ("neuralab", "plain", "keras"))
        needed = f"{2 * work / med['keras']:.0f}" if "keras" in med else "-"
        lines.append(
            f"| {row['model']} | {row['data']} {h}x{w}x{c} | {row['images']:,} | {row['params']:,} "
            f"| {med['neuralab']:.1f} | {med['plain']:.1f} | {keras_s} | **{plain:.2f}x** | "
            + (f"**{keras:.2f}x**" if keras else "-")
            + f" | {rates} | {needed} | {med['neuralab'] * full / row['images']:.1f} |")
        verdicts.append(f"`{row['model']}` {h}x{w}x{c}: {plain:.2f}x the plain loop "
                        f"({'met' if plain >= TARGETS['plain'] else 'not met'})"
                        + (f", {keras:.2f}x TF-Keras ({'met' if keras >= TARGETS['keras'] else 'not met'})"
                           if keras else ""))
    lines += ["", f"Targets (issue 18): at least {TARGETS['plain']}x the plain loop and {TARGETS['keras']}x "
              "TF-Keras for every model: " + "; ".join(verdicts) + "."]
    cnn = next((r for r in rows if r["model"] == "cnn" and r["images"] >= 54_000), None)
    if cnn:
        s = statistics.median(cnn["times"]["neuralab"])
        lines.append(f"The sample CNN's epoch on Fashion-MNIST: {s:.1f} s (target at most "
                     f"{TARGETS['cnn_seconds']:.0f} s: **{'met' if s <= TARGETS['cnn_seconds'] else 'not met'}**).")
    lines += mixed_table(rows)
    lines += ["", "Each loop's epochs (s), in the order of the rounds:", ""]
    for row in rows:
        lines.append(f"- {row['model']} {'x'.join(map(str, row['shape'][1:]))}x{row['shape'][0]}: "
                     + "; ".join(f"{k} {', '.join(f'{t:.1f}' for t in v)}" for k, v in row["times"].items())
                     + f"; neuralab's whole fit call {', '.join(f'{t:.1f}' for t in row['calls'])}")
    return "\n".join(lines) + "\n"


def mixed_table(rows: list[dict]) -> list[str]:
    """The models that `--amp auto` trains in bfloat16 on this machine, against TF-Keras's
    mixed_bfloat16 policy (the issue's targets compare float32 with float32, above)."""
    mixed = [row for row in rows if "neuralab_bf16" in row["times"]]
    if not mixed:
        return []
    lines = ["", "Where `--amp auto` trains in bfloat16 on this machine (models of 5 million parameters or more, "
             "on a CPU with AVX-512 BF16: PyTorch's autocast, float32 weights), the same rounds ran neuralab that "
             "way too, and TF-Keras under its `mixed_bfloat16` policy (the logits in float32):", "",
             "| model | data | neuralab bf16 (s) | TF-Keras mixed_bfloat16 (s) | neuralab float32 / bf16 "
             "| TF-Keras mixed_bfloat16 / neuralab bf16 | TF-Keras float32 / neuralab bf16 |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in mixed:
        med = {k: statistics.median(v) for k, v in row["times"].items()}
        c, h, w = row["shape"]
        cells = [ratio(row, other, "neuralab_bf16") for other in ("neuralab", "keras_bf16", "keras")]
        lines.append(f"| {row['model']} | {row['data']} {h}x{w}x{c} | {med['neuralab_bf16']:.1f} | "
                     + (f"{med['keras_bf16']:.1f}" if "keras_bf16" in med else "-") + " | "
                     + " | ".join(f"{r:.2f}x" if r else "-" for r in cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(SMALL + BIG))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-steps", type=int, default=40,
                        help="batches timed per epoch of AlexNet, VGG16 and GoogLeNet (0: the whole epoch)")
    parser.add_argument("--quick", action="store_true", help="30 batches of the small models, 3 of the big ones")
    parser.add_argument("--rgb", action="store_true", help="also the big three at 32x32x3 (random images)")
    parser.add_argument("--rgb-only", action="store_true", help="the big three at 32x32x3 only")
    parser.add_argument("--threads", type=int, default=0, help="torch and TensorFlow threads (0: their choice)")
    parser.add_argument("--no-keras", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    keras = not args.no_keras and Path(TF_PYTHON).exists()
    if not keras and not args.no_keras:
        print(f"no TensorFlow at {TF_PYTHON}: the TF-Keras column is left out (`make tfenv` makes it, "
              "or NEURALAB_TF_PYTHON names another environment's Python)", file=sys.stderr)
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    peak = matmul_peak()
    rows = []
    for name in args.models.split(","):
        big = name in BIG
        steps = (3 if big else 30) if args.quick else (args.big_steps if big else 0)
        datasets = ([] if args.rgb_only else [DATA[name]]) + (["rgb"] if big and (args.rgb or args.rgb_only) else [])
        for data in datasets:
            rows.append(measure(name, data, steps, args.rounds, args.threads, keras))
    section = markdown(rows, args, (load0, os.getloadavg()[0]), (time.perf_counter() - t0) / 60, peak)
    print(section)
    if not args.no_write:
        update_section("bench_zoo", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
