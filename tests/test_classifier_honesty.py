"""What a classifier's figures rest on: the report and compare's tables give the number of test
images, an interval or no spread where one seed shows none, and captions where a figure misleads."""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from helpers import digits_folder, handwritten_digit
from neuralab.cli import main
from neuralab.reports.classifier import wilson_interval, write_classifier_report
from neuralab.training.compare import Row, to_csv


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("honesty") / "digits", 200)


@pytest.fixture(scope="module")
def finished(digits, tmp_path_factory) -> Path:
    """A LeNet-5 run of two epochs on 200 real digits, with a validation set."""
    run = tmp_path_factory.mktemp("runs") / "lenet5"
    assert main(["train", "--model", "lenet5", "--data", str(digits), "--epochs", "2", "--threads", "1",
                 "--out", str(run), "--quiet"]) == 0
    return run


def test_wilson_interval_is_scipys_and_keeps_a_width_at_every_image_right():
    for right, n in ((36, 36), (35, 36), (0, 12), (9_909, 10_000)):
        expected = binomtest(right, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(right / n, n) == pytest.approx((expected.low, expected.high), abs=1e-6)
    low, high = wilson_interval(1.0, 36)
    assert high == 1.0 and low < 0.91  # 36 of 36 right is no proof of 100%


def test_report_gives_the_test_images_and_a_95_percent_interval_with_results_json_accuracy(finished):
    results = json.loads((finished / "results.json").read_text())
    tested = json.loads((finished / "config.json").read_text())["data"]["test"]
    n = int(np.sum(results["confusion_matrix"]))
    assert n == tested
    right = int(np.trace(results["confusion_matrix"]))
    expected = binomtest(right, n).proportion_ci(method="wilson")
    lead = re.search(r'<p class="lead">(.*?)</p>', (finished / "report.html").read_text()).group(1)
    assert (f"test accuracy <b>{results['test_accuracy'] * 100:.2f}%</b> on {n} test images, "
            f"95% interval {expected.low * 100:.1f}-{expected.high * 100:.1f}%") in lead, lead


def test_learning_curves_say_training_figures_are_epoch_averages_and_validation_is_at_the_end(finished):
    report = (finished / "report.html").read_text()
    history = [json.loads(line) for line in (finished / "metrics.jsonl").read_text().splitlines()]
    assert all("val_loss" in r for r in history)
    curves = report[report.index("<h2>Learning curves</h2>"):report.index("<h2>Epochs</h2>")]
    assert "averaged over each epoch" in curves and "weights at the epoch's end" in curves, curves


def _record_and_results(run: Path, labels: np.ndarray, wrong: int) -> tuple[dict, dict]:
    """``run``'s config.json, and its results.json as if ``wrong`` of ``labels`` were mistaken."""
    record = json.loads((run / "config.json").read_text())
    results = json.loads((run / "results.json").read_text())
    k = len(record["data"]["classes"])
    matrix = np.zeros((k, k), np.int64)
    np.add.at(matrix, (labels, labels), 1)
    if wrong:
        matrix[labels[0], labels[0]] -= 1
        matrix[labels[0], (labels[0] + 1) % k] += 1
    return record, {**results, "test_accuracy": 1 - wrong / len(labels), "confusion_matrix": matrix.tolist()}


def test_a_test_set_without_mistakes_says_so_instead_of_an_empty_figure(finished, tmp_path):
    # 40 real handwritten digits, classified (a) all right, then (b) with one mistake, then (a) again
    pairs = [handwritten_digit(i) for i in range(40)]
    images = np.stack([p for p, _ in pairs])[:, None]
    labels = np.array([label for _, label in pairs])
    history = [json.loads(line) for line in (finished / "metrics.jsonl").read_text().splitlines()]
    right = np.full((len(labels), 10), 0.01)
    right[np.arange(len(labels)), labels] = 0.91
    one_wrong = right.copy()
    one_wrong[0] = np.roll(one_wrong[0], 1)

    def report(probabilities, wrong) -> str:
        record, results = _record_and_results(finished, labels, wrong)
        write_classifier_report(tmp_path, record=record, results=results, history=history,
                                matrix=np.array(results["confusion_matrix"]), probabilities=probabilities,
                                images=images, labels=labels)
        text = (tmp_path / "report.html").read_text()
        return text[text.index("<h2>Most confidently misclassified"):text.index("<h2>Model</h2>")]

    section = report(right, 0)
    assert "No mistakes" in section and "40 test images" in section and "<img" not in section
    assert not (tmp_path / "mistakes.png").exists()
    assert "<img" in report(one_wrong, 1) and (tmp_path / "mistakes.png").is_file()
    assert "No mistakes" in report(right, 0) and not (tmp_path / "mistakes.png").exists()  # no stale picture


def test_a_class_never_tested_scores_n_a_not_zero(finished, tmp_path):
    """A class with no test pictures (2 pictures of 500 in its folder) showed precision, recall
    and F1 0.000, as if the model had missed every one of them."""
    pairs = [handwritten_digit(i) for i in range(60)]
    pairs = [(p, label) for p, label in pairs if label != 9][:40]  # 9: in the run's classes, never tested
    images = np.stack([p for p, _ in pairs])[:, None]
    labels = np.array([label for _, label in pairs])
    probabilities = np.full((len(labels), 10), 0.01)
    probabilities[np.arange(len(labels)), labels] = 0.91
    probabilities[0] = np.roll(probabilities[0], 1)  # one mistake, into the class after labels[0]
    record, results = _record_and_results(finished, labels, 1)
    history = [json.loads(line) for line in (finished / "metrics.jsonl").read_text().splitlines()]
    write_classifier_report(tmp_path, record=record, results=results, history=history,
                            matrix=np.array(results["confusion_matrix"]), probabilities=probabilities,
                            images=images, labels=labels)
    text = (tmp_path / "report.html").read_text()
    rows = dict(re.findall(r"<tr><td>(\d)</td>(.*?)</tr>", text[text.index("<h2>Per-class precision"):]))
    assert rows["9"] == "<td>n/a</td>" * 3 + "<td>0</td>", rows["9"]
    wrong, missed = labels[0], (labels[0] + 1) % 10
    assert re.fullmatch(r"<td>1\.000</td><td>0\.\d{3}</td><td>0\.\d{3}</td><td>\d+</td>", rows[str(wrong)])
    assert rows[str(missed)].startswith("<td>0.")  # a false positive: its precision counts


def test_compare_of_one_seed_shows_no_spread_and_the_test_images(digits, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--models", "lenet5,mlp", "--data", str(digits), "--seeds", "1", "--epochs", "1",
                 "--threads", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    tested = json.loads((out / "lenet5-seed0" / "config.json").read_text())["data"]["test"]
    table = [line for line in (out / "compare.md").read_text().splitlines() if line.startswith(("| lenet5", "| mlp"))]
    assert len(table) == 2 and all(line in printed for line in table)
    for line in table:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[3] == str(tested) and cells[4].endswith("% +- n/a"), line
        assert "+- 0.00" not in line

    rows = list(csv.reader(io.StringIO((out / "compare.csv").read_text())))
    assert rows[0] == ["model", "parameters", "seconds_per_epoch", "test_accuracy_mean", "test_accuracy_std", "seeds",
                       "test_images"]  # the older columns where scripts read them
    for row in rows[1:]:
        accuracy = json.loads((out / f"{row[0]}-seed0" / "results.json").read_text())["test_accuracy"]
        assert float(row[3]) == pytest.approx(accuracy, abs=5e-5)
        assert row[4] == "" and row[5] == "1" and row[6] == str(tested)


def test_compare_csv_of_several_seeds_keeps_their_spread():
    accuracies = [0.9722, 0.9444, 0.9167]
    text = to_csv([Row("lenet5", 61_706, 0.1, accuracies, 36)])
    row = list(csv.reader(io.StringIO(text)))[1]
    assert float(row[4]) == pytest.approx(statistics.stdev(accuracies), abs=5e-5) and row[5:] == ["3", "36"]
