"""The report of an image-classifier run: learning curves, confusion matrix, per-class
precision/recall/F1, the most confidently misclassified test images, the model summary.

It is drawn from plain data the caller holds (``neuralab.training.classify`` after training,
or from a run directory with ``training.evaluate.write_report``): nothing here reads a run's
files, trains or evaluates.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from neuralab.data.digest import skipped_sentence
from neuralab.errors import NeuralabError
from neuralab.reports import html, plots
from neuralab.runs import CLASSIFIER_FIGURES, CONFIG, REPORT, RESULTS, json_object


def per_class_scores(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 per class from a confusion matrix (rows true, columns predicted).
    NaN where a score has nothing to count: the precision of a class never predicted, the recall
    and F1 of a class never tested (a class of 2 pictures in 500 may have none in the test set),
    which a report shows as n/a; a score of 0 said that the model missed pictures it never saw.
    A class tested and never predicted has recall 0 and F1 0."""
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    predicted, tested = matrix.sum(0), matrix.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(tested > 0, tp / tested, np.nan)
        f1 = np.where(tp > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, np.where(tested > 0, f1, np.nan)


Z95 = 1.959964  # the standard normal's 97.5% quantile: a two-sided 95% interval


def wilson_interval(accuracy: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (95% for the default ``z``) of an accuracy measured on ``n``
    images. Unlike the normal approximation it stays within [0, 1] and keeps a width at 0% and
    100%: 36 right of 36 is 90.4-100%, not 100% exactly."""
    if n < 1:
        return 0.0, 1.0
    shrink = 1 + z * z / n
    centre = (accuracy + z * z / (2 * n)) / shrink
    half = z / shrink * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def confident_mistakes(probs: np.ndarray, labels: np.ndarray, k: int = 16) -> np.ndarray:
    """Indices of the ``k`` wrong predictions made with the highest probability."""
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != labels)
    return wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:k]


def write_classifier_report(run_dir: str | Path, *, record: dict, results: dict, history: list[dict],
                            matrix: np.ndarray | None, probabilities: np.ndarray | None, images: np.ndarray | None,
                            labels: np.ndarray | None, summary_text: str = "") -> Path:
    """Write report.html and its PNGs (runs.CLASSIFIER_FIGURES: learning curves, confusion matrix, mistakes).

    ``record``: the run's config.json (``config``, ``environment``, ``created``, the class
    names under ``data``); ``results``: results.json's numbers; ``history``: one dict per
    epoch; ``matrix``: the test set's confusion matrix (rows true); ``probabilities`` (N,
    classes) for the test ``images`` (N, C, H, W) uint8 with their true ``labels``.
    A run without a test set (Keras's own fit, see neuralab.training.RunLogger) passes None for
    the four test-set arguments: its report has no test figures, matrix or mistakes; one whose
    test pictures are not kept (fit's `test=` arrays, reported again) passes its ``matrix`` and
    None for the other three: its report says why it shows no mistakes.
    A full disk or a read-only folder raises NeuralabError; the run's other files stay.
    """
    run_dir = Path(run_dir)
    tested = matrix is not None
    numbers = _numbers(run_dir / RESULTS, results, ("test_accuracy",) if tested else (),
                       ("best_epoch", "epochs_run", "train_seconds"))
    count = np.shape(probabilities)[-1] if probabilities is not None else None  # the model's outputs: one per class
    classes = _classes(run_dir / CONFIG, json_object(record.get("data")).get("classes"), count)
    count = len(classes) if count is None else count
    matrix = _square(run_dir / RESULTS, matrix, count) if tested else None
    history = _epochs(history)
    cfg, env = json_object(record.get("config")), json_object(record.get("environment"))
    figure = _test_figure(numbers["test_accuracy"], int(matrix.sum())) if tested else "no test set given"
    best, run, seconds = (_fixed(numbers[k], form) or "-" for k, form in
                          (("best_epoch", "{:g}"), ("epochs_run", "{:g}"), ("train_seconds", "{:.1f}")))
    data = f" on <b>{html.esc(cfg['data'])}</b>" if cfg.get("data") else ""  # a Keras fit names none
    lead = (f"<b>{html.esc(cfg.get('model', '?'))}</b>{data}: {figure} (best "
            f"epoch {best} of {run}, {seconds} s of training on {html.esc(env.get('device', '?'))})")
    epochs = [[r["epoch"], _fixed(r.get("loss"), "{:.4f}"), _fixed(r.get("accuracy"), "{:.2%}"),
               _fixed(r.get("val_loss"), "{:.4f}"), _fixed(r.get("val_accuracy"), "{:.2%}"),
               _fixed(r.get("seconds"), "{:.1f}")]
              for r in history]
    # the pictures a folder's loading left out, which a reader of the figures would otherwise never learn of
    left_out = skipped_sentence(record.get("data"))
    with html.kept_if_unwritable(run_dir):
        curves = plots.save(plots.learning_curves(history), run_dir / CLASSIFIER_FIGURES["learning_curves"])
        sections = [
            *([("", html.paragraph(html.esc(left_out) + "."))] if left_out else []),
            ("Learning curves", html.img(curves, "learning curves")
             + html.paragraph(_curves_caption(cfg, history), muted=True)),
            ("Epochs", html.table(["epoch", "loss", "accuracy", "val loss", "val accuracy", "seconds"], epochs)),
            *(_test_sections(run_dir, classes, np.asarray(matrix), probabilities, images, labels) if tested else []),
            ("Model", html.pre(summary_text)),
            ("Configuration", html.pretty(cfg)),
            ("Environment", html.pretty(env)),
        ]
        doc = html.page(f"neuralab run {run_dir.name}", sections, lead=lead,
                        footer=f"created {html.esc(record.get('created', '?'))} by neuralab "
                               f"{html.esc(env.get('neuralab', '?'))}")
        return html.write(run_dir / REPORT, doc)


def _test_figure(accuracy: float, n: int) -> str:
    """The lead's test accuracy with what it rests on: on a few dozen images one image is
    several points, and 100% says little."""
    low, high = wilson_interval(accuracy, n)
    return (f"test accuracy <b>{accuracy * 100:.2f}%</b> on {n:,} test image{'s' * (n != 1)}, "
            f"95% interval {low * 100:.1f}-{high * 100:.1f}%")


def _curves_caption(cfg: dict, history: list[dict]) -> str:
    """Why training loss sits above validation loss early on, which reads as a bug."""
    focus = json_object(cfg.get("train")).get("focus")
    hard = (" and, after the first epoch, only over the hardest images (focus)"
            if _is_number(focus) and focus < 1 else "")
    caption = f"Training loss and accuracy are averaged over each epoch while the weights still change{hard}"
    if not any(math.isfinite(r.get("val_loss", math.nan)) for r in history):
        return caption + "."
    return (caption + "; validation figures are measured with the weights at the epoch's end, so training "
            "loss can sit above validation loss, most of all in the first epoch.")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(path: Path, results: dict, required: tuple[str, ...], known: tuple[str, ...]) -> dict:
    """The figures of results.json that the report prints, refused by field where an edit or
    a damaged file left something else: the report would print nonsense, or nothing at all.
    Those ``known`` may be None (an imported model has no best epoch; NaN is read as None)."""
    for field in required + known:
        value = results.get(field)
        if not (_is_number(value) or (value is None and field in known)):
            raise NeuralabError(f"{path}: field {field!r} is {value!r}, not a number; the file was "
                                "edited or is damaged: restore it, or train the run again")
    return {field: results.get(field) for field in required + known}


def _square(path: Path, matrix, count: int) -> np.ndarray:
    """The confusion matrix as counts, a row and a column for each of the ``count`` classes."""
    try:
        counts = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        counts = np.zeros(0)
    if counts.shape != (count, count) or not np.isfinite(counts).all():
        raise NeuralabError(f"{path}: field 'confusion_matrix' should be a table of counts, {count} rows of "
                            f"{count}, one per class; the file was edited or is damaged: restore it, or train the "
                            "run again")
    return counts.astype(np.int64)


def _classes(path: Path, classes, count: int | None) -> list[str]:
    """config.json's class names, one for each of the model's ``count`` outputs where it was tested."""
    if not isinstance(classes, list) or not classes or (count is not None and len(classes) != count):
        want = f"the model's {count} class names" if count else "the class names"
        raise NeuralabError(f"{path}: field 'data.classes' should list {want}; the file was edited or is "
                            "damaged: restore it, or train the run again")
    return [str(c) for c in classes]


def _epochs(history: list[dict]) -> list[dict]:
    """The epochs of ``history`` with a number for every value: one that is none (a NaN, which
    metrics.jsonl holds as null, or an edit) becomes NaN, which the table shows as n/a and the
    curves leave out; a row without an epoch number is no epoch."""
    return [{k: v if _is_number(v) else math.nan for k, v in row.items()} for row in history
            if isinstance(row, dict) and _is_number(row.get("epoch"))]


def _fixed(value, form: str) -> str:
    """``value`` written in ``form``: blank where there is none, n/a where it is NaN."""
    if value is None:
        return ""
    return "n/a" if math.isnan(value) else form.format(value)


def _test_sections(run_dir: Path, classes, matrix, probabilities, images, labels) -> list[tuple[str, str]]:
    """The confusion matrix, per-class scores and most confident mistakes on the test set."""
    precision, recall, f1 = per_class_scores(matrix)
    worst = confident_mistakes(probabilities, labels) if probabilities is not None else []
    titles = [f"{classes[labels[i]]} -> {classes[probabilities[i].argmax()]}\n{probabilities[i].max() * 100:.0f}%"
              for i in worst]
    scores = [[c, _fixed(p, "{:.3f}"), _fixed(r, "{:.3f}"), _fixed(f, "{:.3f}"), int(n)]
              for c, p, r, f, n in zip(classes, precision, recall, f1, matrix.sum(1))]
    cm = plots.save(plots.confusion(matrix, classes), run_dir / CLASSIFIER_FIGURES["confusion_matrix"])
    mistakes = run_dir / CLASSIFIER_FIGURES["mistakes"]
    if probabilities is None:  # a mistakes.png fit drew stays: the same model's on the same pictures
        shown = html.paragraph("Not shown: the run does not keep the test pictures given to RunLogger as test=(x, y), "
                               "so a report written again from results.json has none to show.", muted=True)
    elif len(worst):
        shown = html.img(plots.save(plots.picture_grid(images[worst], titles), mistakes), "mistakes")
    else:  # an empty grid reads as a figure that failed to draw; one left from an earlier report would contradict
        mistakes.unlink(missing_ok=True)
        shown = html.paragraph(f"No mistakes: every one of the {len(labels):,} test images is classified right.")
    return [("Confusion matrix", html.img(cm, "confusion matrix")),
            ("Per-class precision, recall, F1", html.table(["class", "precision", "recall", "F1", "support"], scores)),
            ("Most confidently misclassified test images (true -> predicted)", shown)]
