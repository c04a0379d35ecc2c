"""Reports on real Fashion-MNIST runs: a full disk stops the report alone and `neuralab
report` writes it again, identical to the first; matplotlib stays silent with a read-only
HOME; and drawing touches no global state."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import idx_subset
from neuralab.cli import main
from neuralab.reports import html as report_html
from neuralab.training import ClassifierConfig, TrainConfig, evaluate_run, load_classifier, train_classifier
from neuralab.training.evaluate import write_report

REPORT_FILES = ("report.html", "learning_curves.png", "confusion_matrix.png", "mistakes.png")
SECTIONS = ["Learning curves", "Epochs", "Confusion matrix", "Per-class precision, recall, F1",
            "Most confidently misclassified test images (true -&gt; predicted)", "Model", "Configuration",
            "Environment"]


@pytest.fixture(scope="module")
def fashion(fashion_mnist, tmp_path_factory):
    return idx_subset(fashion_mnist, tmp_path_factory.mktemp("fashion"), 1200, 300)


def full_disk_at(name: str):
    """The report's atomic writer, failing as a full disk does once ``name``'s bytes are written."""
    real = report_html.atomic_write

    @contextlib.contextmanager
    def writer(path, mode="w"):
        with real(path, mode) as f:
            yield f
            if Path(path).name == name:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return writer


def test_a_full_disk_stops_only_the_report_and_neuralab_report_writes_it(fashion, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(report_html, "atomic_write", full_disk_at("report.html"))
        code = main(["train", "--model", "lenet5", "--data", "fashion-mnist", "--data-dir", str(fashion),
                     "--epochs", "1", "--batch-size", "64", "--out", str(run), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "No space left on device" in err[0] and "weights and results" in err[0]
    assert f"`neuralab report {run}`" in err[0]
    assert not (run / "report.html").exists() and not list(run.glob(".*.tmp"))  # nothing half-written
    # the weights and results are whole: the model loads and scores what results.json says
    results = json.loads((run / "results.json").read_text())
    assert load_classifier(run).classes == json.loads((run / "model.json").read_text())["classes"]
    assert evaluate_run(run)["test_accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-6)

    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {run / 'report.html'}"
    page = (run / "report.html").read_text()
    assert re.findall(r"<h2>(.*?)</h2>", page) == SECTIONS
    assert page.count("data:image/png;base64,") == 3
    assert f"test accuracy <b>{results['test_accuracy'] * 100:.2f}%</b>" in page


@pytest.mark.parametrize("where", ["drawing", "before"])
def test_ctrl_c_while_the_report_is_drawn_says_the_run_is_finished(fashion, tmp_path, monkeypatch, capsys, where):
    """The run is whole once results.json is written: `--resume` would refuse it, `report` writes the page;
    the same where the stop comes before the report's files are begun (its module still importing)."""
    from neuralab.reports import classifier, plots

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    run = tmp_path / "run"
    with monkeypatch.context() as m:
        if where == "drawing":
            m.setattr(plots, "save", interrupted)
        else:
            m.setattr(classifier, "write_classifier_report", interrupted)
        code = main(["train", "--model", "mlp", "--data", "fashion-mnist", "--data-dir", str(fashion), "--epochs", "1",
                     "--out", str(run), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and len(err) == 1 and "the run is finished" in err[0], err
    assert f"`neuralab report {run}` writes the report again" in err[0] and "--resume" not in err[0]
    assert (run / "results.json").is_file() and main(["report", str(run)]) == 0


def test_a_report_written_again_is_the_one_training_wrote(fashion, tmp_path):
    run = train_classifier(ClassifierConfig(model="lenet5", data="fashion-mnist", data_dir=str(fashion),
                                            train=TrainConfig(epochs=2, batch_size=64)),
                           out=tmp_path / "run", verbose=False).run_dir
    first = {name: (run / name).read_bytes() for name in REPORT_FILES}
    page = first["report.html"].decode()
    assert "<script" not in page and page.count("<img") == page.count('src="data:image/png;base64,') == 3
    assert re.findall(r"<h2>(.*?)</h2>", page) == SECTIONS
    for name in REPORT_FILES:
        (run / name).unlink()

    assert write_report(run) == run / "report.html"
    for name in REPORT_FILES:  # the model evaluated again gives the same mistakes, figures and tables
        assert (run / name).read_bytes() == first[name], name


def test_a_report_that_cannot_be_written_keeps_the_one_before(fashion, tmp_path, monkeypatch, capsys):
    """A rewrite on a full disk fails in one line and leaves the previous report whole."""
    run = tmp_path / "run"
    train_classifier(ClassifierConfig(model="mlp", data="fashion-mnist", data_dir=str(fashion),
                                      train=TrainConfig(epochs=1, batch_size=128)), out=run, verbose=False)
    before = (run / "report.html").read_bytes()
    monkeypatch.setattr(report_html, "atomic_write", full_disk_at("report.html"))
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0]
    assert (run / "report.html").read_bytes() == before


def test_report_of_a_folder_that_is_no_finished_run_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a run directory" in err[0]


# --- matplotlib: no global state, no noise ------------------------------------------------

CHILD = """
import os, sys
from neuralab import reports
from neuralab.reports import plots
assert "matplotlib" not in sys.modules, "importing the reports imported matplotlib"
fig = plots.figure(3, 2)
fig.subplots().plot([0, 1, 4])
png = plots.save(fig, os.path.join(sys.argv[1], "curve.png"))
assert "matplotlib.pyplot" not in sys.modules, "a report figure went through pyplot"
print(len(png), os.environ.get("MPLCONFIGDIR"))
"""


def read_only_home(tmp_path: Path) -> tuple[Path, list[str]]:
    """A HOME nobody can write, and the prefix that runs a command under it. Root ignores
    permissions, so as root the child runs in a user namespace of its own, where it does not."""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    if os.geteuid() != 0:
        return home, []
    if subprocess.run(["unshare", "--user", "true"], capture_output=True).returncode == 0:
        return home, ["unshare", "--user"]
    # root without user namespaces: the folders matplotlib creates under HOME cannot be made
    home.chmod(0o755)
    for name in (".config", ".cache"):
        (home / name).write_text("not a folder")
    home.chmod(0o555)
    return home, []


def run_child(code: str, home: Path, tmp: Path, prefix: list[str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), TMPDIR=str(tmp), PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([*prefix, sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_a_read_only_home_prints_no_matplotlib_warning(tmp_path):
    home, prefix = read_only_home(tmp_path)
    tmp, out = tmp_path / "tmp", tmp_path / "out"
    tmp.mkdir()
    out.mkdir()
    # the failure as users saw it: matplotlib alone complains about this HOME
    plain = run_child("import matplotlib", home, tmp, prefix)
    assert plain.returncode == 0 and "MPLCONFIGDIR" in plain.stderr, plain.stderr

    first = run_child(CHILD, home, tmp, prefix, str(out))
    assert first.returncode == 0, first.stderr
    # the first run builds matplotlib's font cache, which it announces only when that is slow
    noise = [line for line in first.stderr.splitlines() if "building the font cache" not in line]
    assert noise == []
    size, folder = first.stdout.split()
    assert int(size) == (out / "curve.png").stat().st_size > 0
    assert Path(folder).parent == tmp and oct(Path(folder).stat().st_mode & 0o777) == "0o700"
    assert list(Path(folder).glob("fontlist-*.json")), "the font cache was not kept"
    again = run_child(CHILD, home, tmp, prefix, str(out))  # the private folder is reused: not a word
    assert again.returncode == 0 and again.stderr == "" and again.stdout.split()[1] == folder


def test_a_writable_home_keeps_matplotlib_where_it_was(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    result = run_child(CHILD, home, tmp_path, [], str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1] == "None" and (home / ".config" / "matplotlib").is_dir()


def test_figures_stay_out_of_pyplot():
    import matplotlib.pyplot as plt

    from neuralab.reports import plots

    before = plt.get_fignums()
    fig = plots.confusion(np.array([[5, 1], [2, 7]]), ["cat", "dog"])
    png = plots.save(fig)
    assert png.startswith(b"\x89PNG") and plt.get_fignums() == before
    user = plt.figure()  # a user's pyplot figure saved through the reports is closed, not leaked
    plots.save(user)
    assert plt.get_fignums() == before


def test_a_figure_is_saved_in_the_format_its_file_names(tmp_path):
    """A figure saved as fig.svg held a PNG; a name of another type is refused, naming `path`."""
    from neuralab.errors import ParameterError
    from neuralab.reports import plots

    for name, signature in (("c.png", b"\x89PNG"), ("c.SVG", b"<?xml"), ("c.pdf", b"%PDF")):
        data = plots.save(plots.confusion(np.array([[5, 1], [2, 7]]), ["cat", "dog"]), tmp_path / name)
        assert data.startswith(signature) and (tmp_path / name).read_bytes() == data
    with pytest.raises(ParameterError) as e:
        plots.save(plots.figure(2, 2), tmp_path / "c.jpg")
    assert e.value.parameter == "path" and ".png, .svg, .pdf" in str(e.value) and not (tmp_path / "c.jpg").exists()


@pytest.mark.parametrize("channels", [1, 3])
def test_picture_grid_shows_each_picture_whole_under_its_title(fashion, channels):
    """The mistakes are tiled into one image: every picture's pixels lie there unchanged, in
    reading order, on the common 0-255 scale, with its title above it."""
    from neuralab.data import load_image_data
    from neuralab.reports import plots

    pictures = load_image_data("fashion-mnist", str(fashion)).test.x[:11]  # (11, 1, 28, 28) uint8
    pictures = np.repeat(pictures, channels, axis=1)
    titles = [f"picture {i}" for i in range(len(pictures))]
    fig = plots.picture_grid(pictures, titles, columns=4)
    (shown,) = fig.axes[0].images
    tiles, (lo, hi) = np.asarray(shown.get_array()), shown.get_clim()
    texts = fig.axes[0].texts
    assert (lo, hi) == (0, 255) and [t.get_text() for t in texts] == titles
    for i, picture in enumerate(pictures):
        x, y = texts[i].get_position()  # the centre of the picture's top edge, in pixels
        top, left = int(y + 0.5), int(x - 14)
        tile = tiles[top:top + 28, left:left + 28]
        assert np.array_equal(tile, picture[0] if channels == 1 else picture.transpose(1, 2, 0)), i
    assert plots.save(fig).startswith(b"\x89PNG")


def test_learning_curves_mark_whole_epochs_only():
    from neuralab.reports import plots

    history = [{"epoch": e, "loss": 1 / e, "accuracy": 0.5 + e / 10, "val_loss": 1.2 / e, "val_accuracy": 0.5}
               for e in (1, 2, 3)]
    fig = plots.learning_curves(history)
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_a_confusion_matrix_of_a_thousand_classes_is_drawn_on_a_page(tmp_path):
    """A folder of 1,000 classes: the figure stops growing at a page (it grew to 550 inches, and
    drawing it took more memory than the machine had), its axes number the classes, and it is saved."""
    from PIL import Image

    from neuralab.reports import plots

    k = 1000
    rng = np.random.default_rng(0)
    matrix = np.diag(rng.integers(1, 5, k)) + (rng.random((k, k)) < 0.001)
    fig = plots.confusion(matrix, [f"species {i}" for i in range(k)])
    assert max(fig.get_size_inches()) <= 24
    assert fig.axes[0].get_xlabel() == "predicted (class number)"
    png = plots.save(fig, tmp_path / "confusion_matrix.png")
    assert (tmp_path / "confusion_matrix.png").read_bytes() == png
    with Image.open(io.BytesIO(png)) as picture:
        assert max(picture.size) <= 24 * plots.DPI * 1.1  # the tight box may add a margin
    small = plots.confusion(np.eye(3, dtype=int) * 5, ["cat", "dog", "owl"])
    assert [t.get_text() for t in small.axes[0].get_xticklabels()] == ["cat", "dog", "owl"]


def test_a_figure_shows_as_a_picture_in_a_notebook_without_pyplot():
    """IPython's display of a report figure, with pyplot never imported: its PNG, where before
    a cell ending in plots.learning_curves(...) showed only "<Figure size 1000x360 with 2 Axes>"."""
    shell = pytest.importorskip("IPython.core.interactiveshell").InteractiveShell.instance()
    from neuralab.reports import plots

    history = [{"epoch": e, "loss": 1 / e, "accuracy": 0.5 + e / 10, "val_loss": 1.2 / e, "val_accuracy": 0.45 + e / 10}
               for e in (1, 2, 3)]
    fig = plots.learning_curves(history)
    shown, _ = shell.display_formatter.format(fig)
    assert shown["image/png"][:8] == b"\x89PNG\r\n\x1a\n" and "text/plain" in shown
