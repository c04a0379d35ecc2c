"""A classifier run judged on its test set: the test loss, accuracy and confusion matrix
(``evaluate_run``, ``figures_on_test_set``, ``confusion_matrix``), the check that the data is
still the data the run was trained on (``check_same_data``), and the run's report.html
(``write_report`` from its folder alone, ``report`` after training).

Apart from training.classify because a finished run is judged again without training it (after
its images moved, or a full disk stopped its report); training ends with the same matrix and
report.
"""

from __future__ import annotations

import numbers
import warnings
from pathlib import Path

import numpy as np

from neuralab import runs
from neuralab.data.digest import SPLITS, data_digest, listing_sha256
from neuralab.data.sources import other_pictures
from neuralab.errors import NeuralabError, ParameterError, by
from neuralab.runs import Kind, Run
from neuralab.training.run_data import data_place, keras_fit_data_refusal, stored_config
from neuralab.training.trained_classifier import load_classifier


def evaluate_run(run_dir: str | Path, data_dir: str | None = None, trust_code: bool = False, model=None) -> dict:
    """Test-set loss, accuracy and confusion matrix of a run, rebuilt from its directory
    (``model``: as load_classifier's)."""
    clf, data, probs = _test_set_probabilities(run_dir, data_dir, trust_code, model)
    return {**figures_on_test_set(probs, data.test.y, len(clf.classes)), "classes": clf.classes}


def figures_on_test_set(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """Test loss (cross-entropy of the probabilities), accuracy and confusion matrix."""
    pred = probs.argmax(1)
    loss = float(-np.log(np.clip(probs[np.arange(len(pred)), labels], 1e-12, None)).mean())
    return {"test_loss": loss, "test_accuracy": float((pred == labels).mean()),
            "confusion_matrix": confusion_matrix(pred, labels, num_classes)}


def confusion_matrix(pred: np.ndarray, true: np.ndarray, k: int) -> np.ndarray:
    """Rows are true classes, columns predicted ones; ``pred`` and ``true`` are class numbers
    0..k-1, one prediction per label."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ParameterError("k", k, "give the number of classes, a whole number of at least 1")
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.ndim != 1 or pred.shape != true.shape:
        raise ParameterError("pred", f"shape {pred.shape}", f"give one predicted class per label of `true` "
                                                            f"(shape {true.shape}), both 1-D")
    for name, values in (("pred", pred), ("true", true)):
        if not len(values):
            continue
        if not np.issubdtype(values.dtype, np.integer):
            raise ParameterError(name, f"{values.dtype} values", "give class numbers (integers), e.g. "
                                                                 "probabilities.argmax(1)")
        if values.min() < 0 or values.max() >= k:  # a class k would be counted in the next row's first column
            bad = values.min() if values.min() < 0 else values.max()
            raise ParameterError(name, int(bad), f"a class number out of range for `k`={k} classes (0..{k - 1})")
    return np.bincount(true.astype(np.int64) * k + pred.astype(np.int64), minlength=k * k).reshape(k, k)


def _test_set_probabilities(run_dir: str | Path, data_dir: str | None, trust_code: bool = False, model=None):
    """The run's classifier, its data and the test set's probabilities (N, classes)."""
    clf = load_classifier(run_dir, trust_code, model)
    run = Run(run_dir)
    config = stored_config(run)
    if config.data is None:
        raise NeuralabError(f"{run_dir}: an imported model with no dataset to test it on; import it again "
                            "naming its `data`")
    data, where = run_image_data(config, data_dir)
    if tuple(data.input_shape) != tuple(clf.preprocess.input_shape):
        raise NeuralabError(f"{data.name}: images of {by(data.input_shape)} (channels x height x "
                            f"width), the run's model takes {by(clf.preprocess.input_shape)}; test it on pictures as "
                            "its training took them (resized or padded), with load_classifier(run).predict_proba, or, "
                            "a Keras model, import its saved file for this data, which pads them inside the network")
    check_same_data(run, data, clf.classes, where)
    return clf, data, clf.predict_proba(data.test.x)


def run_image_data(config, data_dir: str | None = None):
    """The data a classifier run of ``config`` (its stored ClassifierConfig) was trained on, read
    again from ``data_place``, and the ``data_dir`` that ``check_same_data`` takes with it. The
    caller checks the pictures are the run's (``check_same_data``): a folder found elsewhere is
    trusted only on that."""
    from neuralab.data import load_image_data

    name, where = data_place(config, data_dir)
    return load_image_data(name, where, **config.data_options), where




def _changed_classes(record: dict, data, digest: dict | None = None) -> str:
    """" in class folder(s) 3, 7": the classes of a picture folder whose listing differs from the
    one config.json's data ``record`` keeps (``digest``: the data's ``data_digest``, where the
    caller has it); "" for other data, or a run recorded before runs kept each class's."""
    then = runs.json_object(record.get("class_listing_sha256"))
    if not then or not getattr(data, "root", None):
        return ""
    now = (digest or data_digest(data)).get("class_listing_sha256", {})
    changed = [c for c in then if then[c] != now.get(c)]
    return f" in class folder(s) {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}" if changed else ""


def check_same_data(run: Run, data, classes, data_dir: str | None = None) -> None:
    """Refuse data that is no longer what the run was trained on: other classes (label k would
    be scored as another class's), a folder with pictures added or taken away since (its
    seeded split would differ, and put training pictures in the test set), or other images of
    the same classes and sizes (another dataset's files in ``data_dir``, where a named dataset
    was read): the digest config.json records (``data_digest``), where it records one."""
    if list(data.classes) != list(classes):
        added = [c for c in data.classes if c not in classes]
        missing = [c for c in classes if c not in data.classes]
        what = "; ".join(f"{k}: {', '.join(map(str, v[:5]))}{' ...' if len(v) > 5 else ''}"
                         for k, v in (("added", added), ("missing", missing)) if v) or "in another order"
        raise NeuralabError(f"{data.name}: its classes are not the {len(classes)} the run was trained on ({what}); "
                            "give the data the run was trained on")
    record = run.record.get("data")  # Keras's fit records no split sizes: its folder's digest, where it read one
    if not isinstance(record, dict):
        return
    then = {split: record.get(split) for split in SPLITS}
    now = {split: len(getattr(data, split)) for split in SPLITS}
    if all(isinstance(n, int) for n in then.values()) and then != now:
        raise NeuralabError(f"{data.name}: {sum(now.values())} images now, {sum(then.values())} when the run was "
                            f"trained ({', '.join(f'{k} {then[k]} -> {now[k]}' for k in now if then[k] != now[k])})"
                            f"{_changed_classes(record, data)}; the split would put other images in the test set: "
                            "give the data as it was")
    if not {"sha256", "listing_sha256"} & set(record):  # recorded before runs kept a digest of their data
        return
    digest = data_digest(data)
    listing = record.get("listing_sha256")
    # runs of 2026-12-06 and before counted the pictures the loading skipped in their listing too
    if listing is not None and listing != digest.get("listing_sha256") and not (
            getattr(data, "root", None) and listing == listing_sha256(Path(data.root))):
        raise NeuralabError(f"{data.root}: not the pictures the run was trained on: the same classes and number of "
                            f"pictures, but files renamed, moved or replaced since{_changed_classes(record, data, digest)} "
                            "(their names and sizes are not those config.json records); put the folder back as it "
                            "was, or start a new run")
    then, now = runs.json_object(record.get("sha256")), digest.get("sha256", {})
    changed = [split for split in SPLITS if split in then and then[split] != now.get(split)]
    if changed:
        from neuralab.data.sources import locate

        place = f"{data.name} in {locate(data.name, data_dir)}"
        if _copies_mended(data.name, data_dir):
            raise NeuralabError(f"{place}: the cache's decompressed copy of its files was damaged on disk, so the "
                                "images read were not the run's; the copy is now written again from the files: run "
                                "the same command again")
        raise NeuralabError(f"{place}: not the images the run was trained on: the same classes and counts, but other "
                            f"{', '.join(changed)} images or labels (their SHA-256 is not the one config.json "
                            "records); give the files the run was trained on, or start a new run")


def _copies_mended(name: str, data_dir: str | None) -> bool:
    """Whether a named dataset's images, not the run's, came from a damaged copy in the cache,
    which runs read in the files' place: the copies are checked against the files (``verify``),
    and one damaged on disk is written again, after which the same command reads the run's."""
    from neuralab.data import NAMED
    from neuralab.data.sources import CopyMended, verify

    if name not in NAMED:
        return False
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            verify(name, data_dir)
        except NeuralabError:  # the files themselves are at fault: the refusal says what to do
            return False
    for w in said:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return any(issubclass(w.category, CopyMended) for w in said)


def write_report(run_dir: str | Path, data_dir: str | None = None, trust_code: bool = False, model=None) -> Path:
    """Write report.html and its pictures again from the run directory alone: the model is
    loaded and the test set evaluated again (after a full disk stopped the report, say); a run
    whose results.json holds no test figures (Keras's fit given no test set) gets that test set's;
    a run of Keras's fit whose pictures cannot be read again (RunLogger given no ``data``, or one
    whose pictures its model does not take) is reported from the test figures results.json keeps,
    without its mistakes, or without test figures where it keeps none;
    ``model``: as load_classifier's."""
    from neuralab.models.summary import render_summary, summary

    run = Run.open(run_dir, Kind.CLASSIFIER)
    results = run.results()
    if results is None:
        way_on = runs.KERAS_FIT_WAY_ON if run.by_keras_fit else runs.way_on(run.path, Kind.CLASSIFIER)
        raise NeuralabError(f"{run / runs.RESULTS}: missing; the run did not finish, so there is no report "
                            f"to write: {way_on}")
    with run:  # the report's files are the run's: one writer at a time, and a killed write's leftovers go
        # MNIST padded to 32x32 in fit is not tested on MNIST's 28x28 again
        if run.by_keras_fit and (keras_fit_data_refusal(run) or other_pictures(
                run.record["config"].get("data"), run.read(runs.MODEL).get("input_shape"))):
            return report(run, results, run.metrics(), None, None, (run / runs.SUMMARY).read_text())
        clf, data, probs = _test_set_probabilities(run.path, data_dir, trust_code, model)
        text = render_summary(summary(clf.model, data.input_shape, name=stored_config(run).model), rich=False)
        if "confusion_matrix" not in results:  # Keras's fit given no test set, or continued without one
            figures = figures_on_test_set(probs, data.test.y, len(clf.classes))
            results = {**results, **figures, "confusion_matrix": figures["confusion_matrix"].tolist()}
        return report(run, results, run.metrics(), probs, data.test, text)


def report(run: Run, results: dict, history: list[dict], probs: np.ndarray | None, test, summary_text: str) -> Path:
    """The run's report.html; ``probs`` and ``test`` None where the test pictures are not there
    to show its mistakes (fit's `test=` arrays, which the run does not keep), and no test
    figures where results.json has none (Keras's fit given no test set)."""
    from neuralab.reports.classifier import write_classifier_report

    matrix = results.get("confusion_matrix")
    return write_classifier_report(run.path, record=run.record, results=results, history=history,
                                   matrix=None if matrix is None else np.asarray(matrix), probabilities=probs,
                                   images=None if test is None else test.x, labels=None if test is None else test.y,
                                   summary_text=summary_text)
