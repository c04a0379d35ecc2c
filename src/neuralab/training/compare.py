"""Several models, one budget: the workshop's "the MLP is ok but not so great", measured.

Every model trains on the same data, epochs, batch size and seeds; the table reports
parameters, seconds per epoch and test accuracy as mean +- std over the seeds.
"""

from __future__ import annotations

import csv
import errno
import io
import math
import numbers
import os
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

from neuralab.errors import ParameterError
from neuralab.files import atomic_write, write_advice
from neuralab.runs import Run, folder_part
from neuralab.training.classify import ClassifierConfig, model_source, train_classifier
from neuralab.training.device import dist_info, on_rank_0


@dataclass
class Row:
    model: str
    params: int
    seconds_per_epoch: float
    accuracies: list[float]
    test_images: int | None = None  # each seed's test set: on 36 images, one image is 2.8 points

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        """The spread over seeds; NaN for one seed, which shows none (0 would claim a steady result)."""
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else math.nan


def compare(models: list[str], base: ClassifierConfig, seeds: int, out: str | Path,
            overwrite: bool = False, verbose: bool = True) -> list[Row]:
    """Train each of ``models`` with seeds 0..seeds-1 under ``base`` into the runs
    ``out/MODEL-seedN``; write compare.csv and compare.md beside them.

    Runs already there are replaced only with ``overwrite``, and only those runs: ``out``
    may hold others (it may be the runs folder itself). Every name and setting is checked,
    and every run's folder, before the first model trains."""
    out = Path(out)
    if isinstance(models, str) or not all(isinstance(name, str) for name in models):
        # a string would be compared letter by letter: "cnn" as models c, n and n
        raise ParameterError("models", models, "give a list of model names, e.g. [\"mlp\", \"cnn\"]")
    if not models:
        raise ParameterError("models", ",".join(models), "name at least one model")
    if isinstance(seeds, bool) or not isinstance(seeds, numbers.Integral) or seeds < 1:
        raise ParameterError("seeds", seeds, "give how many seeds each model trains with, a whole number of at least 1")
    base.train.check()
    sources = {name: _model_source(name) for name in models}  # an unknown model is named before any trains
    folders = {(name, seed): out / f"{folder_part(sources[name].architecture)}-seed{seed}"
               for name in models for seed in range(seeds)}
    main = dist_info().is_main
    # rank 0 looks: another process might find the first run's folder that rank 0 has made already
    on_rank_0(lambda: _refuse_folders(out, folders.values(), overwrite), base.train.device)
    rows = []
    for name in models:
        accs, epoch_seconds, params = [], [], 0
        for seed in range(seeds):
            config = replace(base, model=name, train=replace(base.train, seed=seed))
            result = train_classifier(config, out=folders[name, seed], overwrite=overwrite, verbose=False)
            accs.append(result.test["accuracy"])
            epoch_seconds += [r["seconds"] for r in result.history]
            params = result.params
            test_images = Run(result.run_dir).record["data"]["test"] if main else None  # rank 0 writes config.json
            if verbose and main:
                print(f"{name} seed {seed}: test accuracy {accs[-1] * 100:.2f}%", flush=True)
        rows.append(Row(name, params, statistics.median(epoch_seconds), accs, test_images))
    if main:  # under torchrun, every process has the same figures
        with atomic_write(out / "compare.csv") as f:
            f.write(to_csv(rows))
        with atomic_write(out / "compare.md") as f:
            f.write(to_markdown(rows, base, seeds) + "\n")
    return rows


def _refuse_folders(out: Path, folders, overwrite: bool) -> None:
    """Refuse ``out`` where the runs cannot go, before any trains."""
    taken = [path for path in folders if path.exists()]
    if taken and not overwrite:
        raise ParameterError("out", str(out), f"already holds {taken[0].name}; pass `overwrite` to replace the runs "
                                              "of this comparison, or choose another `out`")
    there = next(folder for folder in (out, *out.parents) if folder.exists())  # the runs' folders are made from here
    if not there.is_dir():
        code = errno.ENOTDIR
    elif not os.access(there, os.W_OK | os.X_OK):
        code = errno.EACCES
    else:
        return
    raise ParameterError("out", str(out), f"cannot create the runs' folders in {there} ({os.strerror(code)}); "
                                          f"{write_advice(OSError(code, ''))}")


def _model_source(name: str):
    """``model_source``, its complaint about the model said of ``models``, the parameter here."""
    try:
        return model_source(name)
    except ParameterError as e:
        if e.parameter != "model":
            raise
        raise ParameterError("models", name, e.reason) from None


def to_csv(rows: list[Row]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    # columns are only ever added at the end: scripts read the older ones by position
    w.writerow(["model", "parameters", "seconds_per_epoch", "test_accuracy_mean", "test_accuracy_std", "seeds",
                "test_images"])
    for r in rows:
        w.writerow([r.model, r.params, f"{r.seconds_per_epoch:.2f}", f"{r.mean:.4f}", _or_blank(r.std, "{:.4f}"),
                    len(r.accuracies), _or_blank(r.test_images, "{}")])
    return buf.getvalue()


def to_markdown(rows: list[Row], base: ClassifierConfig, seeds: int) -> str:
    t = base.train
    lines = [
        f"{base.data}, {t.epochs} epoch{'s' * (t.epochs != 1)}, batch {t.batch_size}, lr {t.lr}, "
        f"{t.schedule} schedule, seeds 0..{seeds - 1}",
        "",
        "| model | parameters | s/epoch | test images | test accuracy (mean +- std) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        spread = _or_blank(r.std * 100, "{:.2f}") or "n/a"  # one seed has no spread, not a spread of 0
        lines.append(f"| {r.model} | {r.params:,} | {r.seconds_per_epoch:.1f} | {_or_blank(r.test_images, '{:,}')} | "
                     f"{r.mean * 100:.2f}% +- {spread} |")
    return "\n".join(lines)


def _or_blank(value, form: str) -> str:
    """``value`` written in ``form``; blank where there is none (NaN or None), as a CSV reader expects."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else form.format(value)
