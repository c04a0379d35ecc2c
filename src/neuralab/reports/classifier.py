"""The report of an image-classifier run: learning curves, confusion matrix, per-class
precision/recall/F1, the most confidently misclassified test images, the model summary.

It is drawn from plain data the caller holds (``neuralab.training.classify`` after training,
or from a run directory with ``write_report``): nothing here reads a run's files, trains or
evaluates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuralab.reports import html, plots


def per_class_scores(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 per class from a confusion matrix (rows true, columns predicted)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    precision = tp / np.maximum(matrix.sum(0), 1)
    recall = tp / np.maximum(matrix.sum(1), 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return precision, recall, f1


def confident_mistakes(probs: np.ndarray, labels: np.ndarray, k: int = 16) -> np.ndarray:
    """Indices of the ``k`` wrong predictions made with the highest probability."""
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != labels)
    return wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:k]


def write_classifier_report(run_dir: str | Path, *, record: dict, results: dict, history: list[dict],
                            matrix: np.ndarray | None, probabilities: np.ndarray | None, images: np.ndarray | None,
                            labels: np.ndarray | None, summary_text: str = "") -> Path:
    """Write report.html and its PNGs (learning_curves.png, confusion_matrix.png, mistakes.png).

    ``record``: the run's config.json (``config``, ``environment``, ``created``, the class
    names under ``data``); ``results``: results.json's numbers; ``history``: one dict per
    epoch; ``matrix``: the test set's confusion matrix (rows true); ``probabilities`` (N,
    classes) for the test ``images`` (N, C, H, W) uint8 with their true ``labels``.
    A run without a test set (Keras's own fit, see neuralab.training.RunLogger) passes None for
    the four test-set arguments: its report has no test figures, matrix or mistakes.
    A full disk or a read-only folder raises NeuralabError; the run's other files stay.
    """
    run_dir = Path(run_dir)
    classes = record["data"]["classes"]
    tested = matrix is not None
    cfg, env = record["config"], record["environment"]
    figure = (f"test accuracy <b>{results['test_accuracy'] * 100:.2f}%</b>" if tested
              else "no test set given")
    lead = (f"<b>{html.esc(cfg['model'])}</b> on <b>{html.esc(cfg['data'])}</b>: {figure} (best epoch "
            f"{results['best_epoch']} of {results['epochs_run']}, {results['train_seconds']:.1f} s of training on "
            f"{html.esc(env['device'])})")
    epochs = [[r["epoch"], f"{r['loss']:.4f}", f"{r.get('accuracy', 0) * 100:.2f}%",
               f"{r['val_loss']:.4f}" if "val_loss" in r else "",
               f"{r['val_accuracy'] * 100:.2f}%" if "val_accuracy" in r else "", f"{r['seconds']:.1f}"]
              for r in history]
    with html.kept_if_unwritable(run_dir):
        curves = plots.save(plots.learning_curves(history), run_dir / "learning_curves.png")
        sections = [
            ("Learning curves", html.img(curves, "learning curves")),
            ("Epochs", html.table(["epoch", "loss", "accuracy", "val loss", "val accuracy", "seconds"], epochs)),
            *(_test_sections(run_dir, classes, np.asarray(matrix), probabilities, images, labels) if tested else []),
            ("Model", html.pre(summary_text)),
            ("Configuration", html.pretty(cfg)),
            ("Environment", html.pretty(env)),
        ]
        doc = html.page(f"neuralab run {run_dir.name}", sections, lead=lead,
                        footer=f"created {html.esc(record['created'])} by neuralab {html.esc(env['neuralab'])}")
        return html.write(run_dir / "report.html", doc)


def _test_sections(run_dir: Path, classes, matrix, probabilities, images, labels) -> list[tuple[str, str]]:
    """The confusion matrix, per-class scores and most confident mistakes on the test set."""
    precision, recall, f1 = per_class_scores(matrix)
    worst = confident_mistakes(probabilities, labels)
    titles = [f"{classes[labels[i]]} -> {classes[probabilities[i].argmax()]}\n{probabilities[i].max() * 100:.0f}%"
              for i in worst]
    scores = [[c, f"{p:.3f}", f"{r:.3f}", f"{f:.3f}", int(n)]
              for c, p, r, f, n in zip(classes, precision, recall, f1, matrix.sum(1))]
    cm = plots.save(plots.confusion(matrix, classes), run_dir / "confusion_matrix.png")
    mistakes = plots.save(plots.picture_grid(images[worst], titles), run_dir / "mistakes.png")
    return [("Confusion matrix", html.img(cm, "confusion matrix")),
            ("Per-class precision, recall, F1", html.table(["class", "precision", "recall", "F1", "support"], scores)),
            ("Most confidently misclassified test images (true -> predicted)", html.img(mistakes, "mistakes"))]
