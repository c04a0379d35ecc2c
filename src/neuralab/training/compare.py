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
from dataclasses import asdict, dataclass
from pathlib import Path

from neuralab import runs
from neuralab.errors import NeuralabError, ParameterError, Shown
from neuralab.files import atomic_write, write_advice
from neuralab.reports.html import ReportInterrupted
from neuralab.runs import Interrupted, InterruptedInTheWay, Kind, Run, Status, folder_part
from neuralab.training.classify import (ClassifierConfig, RunResult, changed_settings, model_source,
                                        refuse_run_in_data, resume_classifier, train_classifier)
from neuralab.training.config import check_config, replaced
from neuralab.training.device import dist_info, on_rank_0
from neuralab.training.source import TORCH


# How a comparison called again after an interruption goes on (its interfaces say how to call it again)
GOES_ON = "continues the comparison: it resumes this run and keeps the finished ones"
# ... after the user has resumed a run of PyTorch code themselves: compare never runs a run's copy of code
AFTER_ITS_RESUME = "continues the comparison: it keeps the finished runs and trains the rest"
# ... after a finished run's report was stopped
REPORT_GOES_ON = "continues the comparison: it writes the reports its finished runs lack and trains the rest"


class ReportStopped(Interrupted):
    """A comparison stopped while a finished run of it wrote its report (``ReportInterrupted``):
    the run is whole, and the way on is the comparison called again, which writes the report
    (``REPORT_GOES_ON``); ``kept`` is the message without it, for the command line's command."""

    def __init__(self, stopped, then: str):
        KeyboardInterrupt.__init__(self, f"{stopped.kept}; {then}")
        self.path, self.kind, self.epoch_kept = stopped.run_dir, Kind.CLASSIFIER, True
        self.kept, self.resume_does = stopped.kept, REPORT_GOES_ON


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

    def __repr__(self) -> str:
        spread = f" ± {self.std:.2%}" if len(self.accuracies) > 1 else ""
        return (f"Row({self.model}: test accuracy {self.mean:.2%}{spread} over {len(self.accuracies)} "
                f"seed{'s' if len(self.accuracies) != 1 else ''}, {self.params:,} parameters, "
                f"{self.seconds_per_epoch:.1f} s per epoch)")


def compare(models: list[str], base: ClassifierConfig, seeds: int, out: str | Path,
            overwrite: bool = False, verbose: bool = True) -> list[Row]:
    """Train each of ``models`` with seeds 0..seeds-1 under ``base`` into the runs
    ``out/MODEL-seedN``; write compare.csv and compare.md beside them.

    Called again after an interruption, a comparison goes on: a run already there that this
    comparison would train (the same model, seed, budget and data) is taken as it is where it
    finished and resumed where it was interrupted. Anything else in a run's place is replaced
    only with ``overwrite``, which trains every run again, and only those runs: ``out`` may hold
    others (it may be the runs folder itself). Every name and setting is checked, and every
    run's folder, before the first model trains."""
    out = runs.folder_path(out, "out")
    # a string would be compared letter by letter: "cnn" as models c, n and n; a module object is
    # shown by its type, not its layers' lines
    if not isinstance(models, (list, tuple)) or not all(isinstance(name, str) for name in models):
        shown = [n if isinstance(n, str) else Shown(n) for n in models] if isinstance(models, (list, tuple)) \
            else Shown(models)
        raise ParameterError("models", shown, "give a list of model names, e.g. [\"mlp\", \"cnn\"]")
    models = list(models)
    if not models:
        raise ParameterError("models", models, "name at least one model")
    if isinstance(seeds, bool) or not isinstance(seeds, numbers.Integral) or seeds < 1:
        raise ParameterError("seeds", seeds, "give how many seeds each model trains with, a whole number of at least 1")
    check_config(base, ClassifierConfig, "base")
    base.check()
    base.train.check()
    refuse_run_in_data(out, base.data)  # `out` as given, not the first run's folder in it
    sources = {name: _model_source(name) for name in models}  # an unknown model is named before any trains
    parts = _folder_parts(models, sources)
    folders = {(name, seed): out / f"{parts[name]}-seed{seed}" for name in models for seed in range(seeds)}
    configs = {(name, seed): replaced(base, model=name, train=replaced(base.train, seed=seed))  # what base was given kept
               for name in models for seed in range(seeds)}
    main = dist_info().is_main
    # rank 0 looks: another process might find the first run's folder that rank 0 has made already
    kept = on_rank_0(lambda: _refuse_folders(out, folders, configs, sources, overwrite), base.train.device)
    rows = []
    for name in models:
        accs, epoch_seconds, params = [], [], 0
        for seed in range(seeds):
            folder, state = folders[name, seed], kept.get((name, seed))
            reported = False  # a finished run's report, which a stop in it left unwritten, written now
            try:
                if state is Status.FINISHED:
                    result = _finished(folder)
                    if main and not (folder / runs.REPORT).is_file() and sources[name].type != TORCH:
                        reported = bool(_write_report(folder, configs[name, seed]))
                elif state is Status.INTERRUPTED:
                    result = resume_classifier(folder, verbose=False, options=_session(configs[name, seed]))
                else:
                    result = train_classifier(configs[name, seed], out=folder, overwrite=overwrite, verbose=False)
            except Interrupted as e:  # the way on is this call again, which resumes this run and keeps the others
                then = f"calling `compare(...)` again with the same `out` {GOES_ON}"
                if sources[name].type == TORCH:  # which this call would refuse: the user resumes it first
                    then = (f"{runs.way_on(e.path, e.kind, e.resume_does)}; then calling `compare(...)` again with "
                            f"the same `out` {AFTER_ITS_RESUME}")
                raise Interrupted(e.path, e.kind, then=then) from None
            except ReportInterrupted as e:  # a run of PyTorch code is reported by its own copy: the user's call
                if sources[name].type == TORCH:
                    raise
                raise ReportStopped(e, f"calling `compare(...)` again with the same `out` {REPORT_GOES_ON}") from None
            accs.append(result.test["accuracy"])
            epoch_seconds += [r["seconds"] for r in result.history]
            params = result.params
            test_images = Run(result.run_dir).record["data"]["test"] if main else None  # rank 0 writes config.json
            if verbose and main:
                before = f" (finished before: taken as it is{', its report written' * reported})"
                print(f"{name} seed {seed}: test accuracy {accs[-1] * 100:.2f}%"
                      + (before if state is Status.FINISHED else ""), flush=True)
        rows.append(Row(name, params, statistics.median(epoch_seconds), accs, test_images))
    if main:  # under torchrun, every process has the same figures
        with atomic_write(out / "compare.csv") as f:
            f.write(to_csv(rows))
        with atomic_write(out / "compare.md") as f:
            f.write(to_markdown(rows, base, seeds) + "\n")
    return rows


def _refuse_folders(out: Path, folders: dict, configs: dict, sources: dict, overwrite: bool) -> dict:
    """Refuse ``out`` where the runs cannot go, before any trains; else the runs of this
    comparison there to go on with, (model, seed) -> Status.FINISHED or Status.INTERRUPTED
    (none with ``overwrite``)."""
    from neuralab.data import load_image_data
    from neuralab.training.classify import run_config
    from neuralab.training.evaluate import check_same_data
    from neuralab.training.trained_classifier import checked_meta

    kept, loaded = {}, (None, None)
    for key, path in sorted(folders.items(), key=lambda item: item[0][1]):  # seed by seed: one copy of the data
        if overwrite or not path.exists():
            continue
        run, config = Run(path), run_config(configs[key], sources[key[0]])
        kept[key] = _kept(out, run, config, sources[key[0]].type)
        if kept[key] is None:
            raise ParameterError("out", str(out), f"already holds {path.name}; pass `overwrite` to replace the runs "
                                                  "of this comparison, or choose another `out`")
        # read as train_classifier reads it, once for each seed: the seed draws the validation split
        options = config.data_options
        ways = repr(sorted(options.items()))
        if loaded[0] != ways:
            loaded = (ways, load_image_data(config.data, config.data_dir, **options))
        data = loaded[1]
        classes = checked_meta(run)["classes"]  # a damaged model.json is named as such, not as other data
        try:  # the same config, but the folder's pictures may have changed since
            check_same_data(run, data, classes, config.data_dir)
        except NeuralabError as e:
            raise ParameterError("out", str(out), f"already holds {path.name}, trained on other data: {e}; or pass "
                                                  "`overwrite` to train the comparison again, or choose another "
                                                  "`out`") from None
    there = next(folder for folder in (out, *out.parents) if folder.exists())  # the runs' folders are made from here
    if not there.is_dir():
        code = errno.ENOTDIR
    elif not os.access(there, os.W_OK | os.X_OK):
        code = errno.EACCES
    else:
        return kept
    raise ParameterError("out", str(out), f"cannot create the runs' folders in {there} ({os.strerror(code)}); "
                                          f"{write_advice(OSError(code, ''))}")


def _kept(out: Path, run: Run, config: ClassifierConfig, source_type: str) -> Status | None:
    """How a comparison in ``out`` goes on with ``run``, one it would train with ``config`` (as
    config.json records it, ``classify.run_config``), of a model of ``source_type``:
    FINISHED, its results taken as they are; INTERRUPTED, resumed; None where it is no such run,
    which only `overwrite` replaces: a run of another model or seed too, one in the way, not of
    this comparison. A run of other settings is refused, naming them (``_refuse_other_settings``),
    and an interrupted run of PyTorch code in words of its own: its resume runs the run's copy of
    the code, which only the user may trust."""
    status = run.status()  # damaged where its files are not a run's: nothing read below can fail
    if status not in (Status.FINISHED, Status.INTERRUPTED) or run.kind is not Kind.CLASSIFIER:
        return None
    given = asdict(config)
    session = _session_settings(config)
    changed = changed_settings(run, {k: v for k, v in {**given, **given["train"]}.items()
                                     if k != "train" and k not in session})
    if "model" in changed or "seed" in changed:
        return None
    _refuse_other_settings(out, run, changed)
    if status is Status.INTERRUPTED and source_type == TORCH:
        raise InterruptedInTheWay(run.path, Kind.CLASSIFIER, out=out, then=(
            " (a comparison does not run a run's copy of its code), then calling `compare(...)` again with the same "
            f"`out` {AFTER_ITS_RESUME}"))
    return status


# The settings of the session a comparison is called again in, not of its runs: a job started again
# may land on a node with other cores, without the GPU, or with its own copy of the data (whose
# digest must be the run's: ``_refuse_folders``), as for `resume_classifier`'s options
SESSION = ("threads", "device", "data_dir")


def _session_settings(config: ClassifierConfig) -> tuple[str, ...]:
    """SESSION, and for a folder of images its `data` too: where the pictures are now, as a named
    dataset's `data_dir` is."""
    from neuralab.data import NAMED

    return SESSION if config.data in NAMED else (*SESSION, "data")


def _session(config: ClassifierConfig) -> dict:
    """The options ``resume_classifier`` takes for this session of a comparison of ``config``'s:
    its threads and device, and where the data is now (a named dataset's files, or the folder of
    images, which may have moved since)."""
    from neuralab.data import NAMED

    options = {"threads": config.train.threads, "device": config.train.device}
    if config.data not in NAMED:
        options["data_dir"] = config.data
    elif config.data_dir is not None:
        options["data_dir"] = config.data_dir
    return options


def _refuse_other_settings(out: Path, run: Run, changed: dict) -> None:
    """Refuse ``run``, in ``out``'s place of a run of this comparison, where it was started with
    other settings, ``changed`` (``classify.changed_settings``: those a resume of it would refuse,
    the session's, ``_session_settings``, aside), naming each with both values. The ways on said
    first keep the finished runs: the run's own settings (a recipe's, named: no option gives
    some of them), or another ``out``."""
    from neuralab.training.config import RECIPES
    from neuralab.training.run_data import stored_config

    if not changed:
        return
    stored = asdict(stored_config(run))
    had = {**stored, **stored["train"]}

    def of(settings: dict) -> bool:
        """Whether the changed ones among ``settings`` (a recipe's) are the recipe's in the run, which
        holds most of them: a run of the recipe with an option or two given over it (`--batch-size 64`)."""
        held = {k for k, v in settings.items() if had.get(k) == v}
        return bool(set(settings) & set(changed)) and set(settings) & set(changed) <= held \
            and 2 * len(held) > len(settings)

    recipe = next((name for name, settings in RECIPES.items() if of(settings)), None)
    own = f"the run's are those of `recipe` {recipe}: give them" if recipe else "give the run's own"
    raise ParameterError("out", str(out), f"already holds {run.path.name}, started with other settings: "
                                          f"{', '.join(changed.values())}; {own} to go on with this comparison, its "
                                          "finished runs kept, or choose another `out` for a new one (`overwrite` "
                                          "trains every run of it again, the finished ones lost)")


def _write_report(folder: Path, config: ClassifierConfig) -> Path:
    """The report of a finished run of this comparison that has none (a stop while it was written),
    drawn again from the run and the data where this session finds it."""
    from neuralab.training.evaluate import write_report

    return write_report(folder, _session(config).get("data_dir"))


def _finished(folder: Path) -> RunResult:
    """A finished run of this comparison, read as ``train_classifier`` returned it."""
    run = Run.open(folder, Kind.CLASSIFIER)
    results, meta = run.results() or {}, runs.json_object(run.read(runs.MODEL))
    try:
        return RunResult(run.path, run.metrics(), {"loss": results["test_loss"], "accuracy": results["test_accuracy"]},
                         results["best_epoch"], results["train_seconds"], meta["parameters"])
    except KeyError as e:
        raise NeuralabError(f"{run.path}: its results.json or model.json has no {e}; the run is damaged: pass "
                            "`overwrite` to train the comparison again") from None


def _folder_parts(models: list[str], sources: dict) -> dict[str, str]:
    """Each model's MODEL in its runs' folders, out/MODEL-seedN: its architecture's name; where
    two models' would be alike (net.py in two folders, both `class Net`), the name of its file's
    folder is added, and where those are alike too, a number in the order the models are given.
    A model named twice (the same file, said two ways) is refused: its rows would be one run."""
    from collections import Counter

    from neuralab.training.source import ZOO, split_name

    def file(name: str) -> Path | None:
        return None if sources[name].type == ZOO else split_name(name)[0].resolve()

    named = {}
    for name in models:
        first = named.setdefault((sources[name].type, file(name) or name, sources[name].name), name)
        if first != name or models.count(name) > 1:
            said = f"{name!r} twice" if first == name else f"{first!r} and {name!r}, the same model"
            raise ParameterError("models", list(models), f"names {said}; name each model once")
    parts = {name: folder_part(sources[name].architecture) for name in models}
    alike = Counter(parts.values())
    parts = {name: f"{part}-{folder_part(file(name).parent.name)}" if alike[part] > 1 and file(name).parent.name
             else part for name, part in parts.items()}
    alike, numbered = Counter(parts.values()), Counter()
    for name in models:
        if alike[parts[name]] > 1:
            numbered[parts[name]] += 1
            parts[name] = f"{parts[name]}-{numbered[parts[name]]}"
    return parts


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
