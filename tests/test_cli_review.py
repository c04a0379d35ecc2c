"""A hostile user's review of the commands around a run (report, predict, summary, conv, data,
runs): a finished run of LeNet-5 on scikit-learn's real handwritten digits, its files edited
by hand, odd names and sizes; each fault is one line that names the file, field or option,
exit status 2, and nothing of the user's is overwritten."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from helpers import digits_folder, idx_subset
from neuralab.cli import main
from neuralab.data.idx import read_idx, write_idx


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished classifier run on 400 real 8x8 digits (3 epochs, a second of training)."""
    root = tmp_path_factory.mktemp("review")
    data = digits_folder(root / "digits", 400)
    run = root / "run"
    assert main(["train", "--model", "lenet5", "--data", str(data), "--epochs", "3", "--out", str(run),
                 "--quiet"]) == 0
    return run


@pytest.fixture
def run(finished, tmp_path) -> Path:
    """A copy of the finished run, to edit."""
    import shutil

    return Path(shutil.copytree(finished, tmp_path / "run"))


def edit(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# --- report: a run's files edited by hand -------------------------------------------------

@pytest.mark.parametrize("file, change, names", [
    ("results.json", lambda r: r.update(test_accuracy="0.675"), "results.json: field 'test_accuracy'"),
    ("results.json", lambda r: r.update(confusion_matrix=[[40]]), "results.json: field 'confusion_matrix'"),
    ("config.json", lambda r: r["data"].update(classes=None), "config.json: field 'data.classes'"),
    ("config.json", lambda r: r["data"].update(classes=["zero"]), "config.json: field 'data.classes'"),
])
def test_report_of_a_run_file_edited_by_hand_names_the_file_and_field_and_writes_nothing(run, capsys, file, change,
                                                                                          names):
    edit(run / file, change)
    before = {name: (run / name).read_bytes() for name in ("report.html", "learning_curves.png",
                                                           "confusion_matrix.png", "mistakes.png")}
    assert main(["report", str(run)]) == 2
    line = one_line(capsys)
    assert names in line and "restore it" in line and "Traceback" not in line
    assert {name: (run / name).read_bytes() for name in before} == before
    assert not list(run.glob(".*.tmp"))


def test_report_of_epochs_with_a_nan_or_an_edited_value_shows_them_as_n_a(run, capsys):
    # metrics.jsonl holds a NaN loss as null (files.nulled); an edit left text in another row
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows[0]["loss"], rows[1]["val_accuracy"] = None, "sixty"
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    epochs = page.split("<h2>Epochs</h2>")[1].split("</table>")[0]
    assert epochs.count("n/a") == 2
    assert f"{rows[2]['loss']:.4f}" in epochs  # the others as they were
    accuracy = json.loads((run / "results.json").read_text())["test_accuracy"]
    assert f"test accuracy <b>{accuracy * 100:.2f}%</b>" in page


# --- predict --------------------------------------------------------------------------------

def test_predict_refuses_an_empty_picture_name_rather_than_classify_the_whole_folder(finished, capsys,
                                                                                      monkeypatch):
    monkeypatch.chdir(finished.parent)  # "" read as "." would be every picture below here: the digits
    assert main(["predict", str(finished), ""]) == 2
    assert "IMAGE '': an empty name" in one_line(capsys)
    assert capsys.readouterr().out == ""


def test_predict_prints_one_line_per_picture_when_a_name_holds_a_newline(finished, tmp_path, capsys):
    run = finished
    digit = next((finished.parent / "digits" / "3").glob("*.png"))
    odd = tmp_path / "three\nof them.png"
    odd.write_bytes(digit.read_bytes())
    assert main(["predict", str(run), str(digit), str(odd), "--top-k", "99"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"$'{tmp_path}/three\\nof them.png': ")  # as bash reads it back
    assert lines[0].split(": ", 1)[1] == lines[1].split(": ", 1)[1]  # the same picture, the same answer
    assert main(["predict", str(run), str(odd), "--json", "--top-k", "99"]) == 0
    (answer,) = json.loads(capsys.readouterr().out)
    assert answer["image"] == str(odd) and len(answer["top"]) == 10
    assert sum(t["probability"] for t in answer["top"]) == pytest.approx(1, abs=1e-5)


@pytest.mark.parametrize("on_error, status", [([], 2), (["--on-error", "skip"], 0)])
def test_predict_of_a_folder_answers_every_readable_picture_and_names_every_unreadable_one(finished, tmp_path, capsys,
                                                                                          on_error, status):
    """A folder of photos with broken files among them: before, the first broken one ended the
    command with nothing printed, after every other picture had been classified."""
    import shutil

    folder = Path(shutil.copytree(finished.parent / "digits" / "3", tmp_path / "photos"))
    good = sorted(folder.glob("*.png"))
    (folder / "zz-cut.png").write_bytes(good[0].read_bytes()[:60])  # cut short by a copy
    (folder / "notes.png").write_text("not a picture")
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        assert main(["predict", str(finished), str(folder), "--json", *on_error]) == status
    out, err = capsys.readouterr()
    answers = json.loads(out)  # in the order of the folder's pictures, the unreadable with their errors
    assert [a["image"] for a in answers] == [str(p) for p in sorted([*good, folder / "notes.png", folder / "zz-cut.png"])]
    assert [a["image"] for a in answers if "top" in a] == [str(p) for p in good]
    errors = [a["error"] for a in answers if "error" in a]  # the reader's reasons; "image" names the picture
    assert len(errors) == 2 and errors[0].startswith("not a readable image;") and "notes.png" not in errors[0]
    # neuralab's warnings are UserWarnings; a ResourceWarning of a file some earlier test left
    # open, freed by the garbage collector in the meantime, is no line the command prints
    (line,) = err.strip().splitlines() + [str(w.message) for w in warned if issubclass(w.category, UserWarning)]
    assert f"2 of {len(good) + 2} pictures cannot be read" in line or f"skipped 2 of {len(good) + 2}" in line
    assert f"{folder / 'notes.png'} (not a readable image; give a" in line and f"{folder / 'zz-cut.png'} (" in line
    assert ("--on-error skip" in line) == (status == 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["predict", str(finished), str(folder), *on_error]) == status
    assert [row.split(": ")[0] for row in capsys.readouterr().out.splitlines()] == [str(p) for p in good]


def test_predict_of_one_picture_that_cannot_be_read_says_the_readers_line_once(finished, tmp_path, capsys,
                                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("bad.jpg").write_text("not a picture")
    assert main(["predict", str(finished), "./bad.jpg"]) == 2
    assert one_line(capsys) == "neuralab: error: bad.jpg: not a readable image; give a PNG, JPEG, GIF, BMP, TIFF, " \
                               "WebP or PGM/PPM file"


def test_predict_names_a_link_to_a_folder_it_does_not_follow(finished, tmp_path, capsys):
    """A link to a folder among the pictures was left out without a word, and a folder of links
    alone was refused as holding no picture."""
    digits = finished.parent / "digits"
    folder = tmp_path / "photos"
    folder.mkdir()
    first = sorted((digits / "3").glob("*.png"))[0]
    (folder / "a.png").write_bytes(first.read_bytes())
    (folder / "fives").symlink_to(digits / "5", target_is_directory=True)
    assert main(["predict", str(finished), str(folder)]) == 2
    out, err = capsys.readouterr()
    assert [row.split(": ")[0] for row in out.splitlines()] == [str(folder / "a.png")]
    assert f"1 of 2 pictures cannot be read, the others are answered: {folder / 'fives'} (a link to a folder, which is " \
           "not followed; give the folder itself)" in err
    (folder / "a.png").unlink()
    assert main(["predict", str(finished), str(folder)]) == 2
    assert one_line(capsys) == f"neuralab: error: {folder / 'fives'}: a link to a folder, which is not followed; give " \
                               "the folder itself"


# --- summary ------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["lenet5", "mlp", "googlenet"])
@pytest.mark.parametrize("size", ["1000000000x1000000000", "99999999999999999999x2"])
def test_summary_of_an_input_past_64_bit_sizes_is_one_line(capsys, model, size):
    assert main(["summary", model, "--input", size]) == 2
    line = one_line(capsys)
    assert line.startswith(f"neuralab: error: --input {size}x1: too large") and "smaller size" in line


# --- conv apply / pool ------------------------------------------------------------------------

@pytest.fixture
def picture(tmp_path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("command", [["apply", "--kernel", "sobel-x"], ["pool"]])
@pytest.mark.parametrize("where", ["out", "figure", "link"])
def test_conv_never_writes_over_the_picture_it_reads(picture, tmp_path, capsys, command, where):
    link = tmp_path / "link.png"
    link.symlink_to(picture)
    before = picture.read_bytes()
    options = {"out": ["--out", str(picture)], "figure": ["--out", str(tmp_path / "r.png"), "--figure", str(picture)],
               "link": ["--out", str(link)]}[where]
    assert main(["conv", command[0], str(picture), *command[1:], *options]) == 2
    line = one_line(capsys)
    assert ("--figure" if where == "figure" else "--out") in line and "is the picture read" in line
    assert picture.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.png", "photo.png"]


def test_conv_figure_on_the_result_is_refused_before_anything_is_written(picture, tmp_path, capsys):
    result = tmp_path / "result.png"
    assert main(["conv", "apply", str(picture), "--out", str(result), "--figure", str(result)]) == 2
    assert "--figure" in one_line(capsys) and not result.exists()


def test_conv_out_and_figure_folders_get_the_default_names_in_them(picture, tmp_path, capsys):
    from PIL import Image

    folder, figures = tmp_path / "results", tmp_path / "figures"
    folder.mkdir()
    figures.mkdir()
    assert main(["conv", "apply", str(picture), "--out", str(folder), "--figure", str(figures)]) == 0
    assert Image.open(folder / "photo-sobel-x.png").size == (22, 18)  # 3x3 kernel, valid: (24-2) x (20-2)
    assert (figures / "photo-sobel-x-figure.png").stat().st_size > 0
    assert main(["conv", "pool", str(picture), "--out", str(folder)]) == 0
    assert Image.open(folder / "photo-maxpool2.png").size == (12, 10)


# --- data ------------------------------------------------------------------------------------

def test_data_verify_says_its_error_on_standard_error(fashion_mnist, tmp_path, capsys):
    subset = idx_subset(fashion_mnist, tmp_path / "fashion", 100, 50)  # not the published files
    assert main(["data", "verify", "fashion-mnist", "--data-dir", str(subset)]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].startswith("BAD ") and "error" not in captured.out
    assert "fashion-mnist: some files do not match their SHA-256" in captured.err


@pytest.mark.parametrize("kind, said", [("file", "(it is a file)"), ("none", "(no such folder)")])
def test_a_data_dir_that_is_no_folder_is_said_as_such(tmp_path, capsys, kind, said):
    given = tmp_path / "mnist.gz"
    if kind == "file":
        given.write_bytes(b"\x1f\x8b")
    assert main(["data", "path", "mnist", "--data-dir", str(given)]) == 2
    line = one_line(capsys)
    assert line.startswith(f"neuralab: error: --data-dir {given}: missing") and said in line


def test_labels_of_another_dataset_name_their_file_and_what_to_do(fashion_mnist, tmp_path, capsys):
    subset = idx_subset(fashion_mnist, tmp_path / "fashion", 100, 50)
    labels = read_idx(subset / "t10k-labels-idx1-ubyte.gz").copy()
    labels[7] = 200
    write_idx(subset / "t10k-labels-idx1-ubyte.gz", labels)
    assert main(["train", "--data", "fashion-mnist", "--data-dir", str(subset), "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 2
    line = one_line(capsys)
    assert f"{subset / 't10k-labels-idx1-ubyte.gz'}: label 200" in line and "fetch it again" in line


def test_an_empty_idx_file_says_what_to_do(fashion_mnist, tmp_path, capsys):
    import gzip

    subset = idx_subset(fashion_mnist, tmp_path / "fashion", 100, 50)
    with gzip.open(subset / "t10k-images-idx3-ubyte.gz", "wb"):
        pass
    assert main(["train", "--data", "fashion-mnist", "--data-dir", str(subset), "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "too short for an IDX header (0 bytes); delete it and fetch it again" in one_line(capsys)


# --- runs ---------------------------------------------------------------------------------------

def test_runs_of_a_run_folder_shows_that_run(finished, capsys):
    assert main(["runs", str(finished), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    accuracy = json.loads((finished / "results.json").read_text())["test_accuracy"]
    assert row["status"] == "finished" and row["metric"]["value"] == accuracy


def test_runs_where_neuralab_runs_is_a_file_says_so(finished, capsys, monkeypatch):
    monkeypatch.setenv("NEURALAB_RUNS", str(finished / "config.json"))
    assert main(["runs"]) == 2
    assert "is a file, not a folder of runs; set NEURALAB_RUNS" in one_line(capsys)


def test_a_class_folder_left_without_readable_pictures_says_what_to_do(tmp_path, capsys):
    data = digits_folder(tmp_path / "digits", 60)
    (data / "broken").mkdir()
    (data / "broken" / "scan.png").write_bytes(b"")  # an upload that never finished
    with pytest.warns(UserWarning, match="skipped 1 of 61 images"):
        assert main(["train", "--data", str(data), "--on-error", "skip", "--epochs", "1",
                     "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no readable images left in class folder(s) broken; put pictures there" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


# --- a run's weights: moved, linked out of the run, damaged ---------------------------------

def test_a_finished_run_without_its_weights_says_they_are_missing(run, capsys):
    (run / "model.safetensors").unlink()
    assert main(["evaluate", str(run)]) == 2
    assert one_line(capsys) == (f"neuralab: error: {run / 'model.safetensors'}: missing from a finished run "
                                "(deleted or moved); put it back, or train the run again")


def test_weights_linked_from_outside_the_run_are_refused_as_model_json_is(run, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere.safetensors"
    (run / "model.safetensors").rename(elsewhere)
    (run / "model.safetensors").symlink_to(elsewhere)
    digit = tmp_path / "digit.png"
    from PIL import Image

    Image.fromarray(np.full((8, 8), 200, dtype=np.uint8)).save(digit)
    assert main(["predict", str(run), str(digit)]) == 2
    assert "a symbolic link leading out of the run" in one_line(capsys)


def test_damaged_weights_say_what_to_do(run, capsys):
    (run / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes()[:100])
    assert main(["evaluate", str(run)]) == 2
    assert one_line(capsys).endswith("; put back a good copy, or train the run again")


def test_a_run_whose_picture_folder_moved_is_evaluated_where_data_dir_says(run, finished, tmp_path, capsys):
    import shutil

    moved = Path(shutil.copytree(finished.parent / "digits", tmp_path / "moved"))
    edit(run / "config.json", lambda r: r["config"].update(data=str(tmp_path / "gone")))  # where it was trained
    assert main(["evaluate", str(run)]) == 2
    assert one_line(capsys) == (f"neuralab: error: {tmp_path / 'gone'}: the run's image folder is not there any "
                                "more; if it moved, give its new place as --data-dir")
    assert main(["evaluate", str(run), "--data-dir", str(moved)]) == 0
    accuracy = json.loads((run / "results.json").read_text())["test_accuracy"]
    assert f"{accuracy * 100:.2f}%" in capsys.readouterr().out
    some = next((moved / "3").iterdir())
    shutil.copy(some, moved / "3" / "extra.png")
    assert main(["evaluate", str(run), "--data-dir", str(moved)]) == 2  # no longer the pictures it was trained on
    assert one_line(capsys).endswith("the split would put other images in the test set: give the data as it was")


def test_export_to_an_empty_out_is_refused_not_written_into_the_run(run, capsys):
    pytest.importorskip("onnxruntime", reason="pip install 'neuralab[export]'")
    assert main(["export", str(run), "--onnx", "--out", ""]) == 2
    assert one_line(capsys) == ("neuralab: error: --out '': is empty; give a file or a folder, or leave it out to write "
                                "into the run")
    assert not (run / "model.onnx").exists()


def test_conv_figure_and_no_figure_together_is_a_usage_error(tmp_path, capsys):
    from PIL import Image

    picture = tmp_path / "digit.png"
    Image.fromarray(np.full((8, 8), 200, dtype=np.uint8)).save(picture)
    with pytest.raises(SystemExit) as e:
        main(["conv", "apply", str(picture), "--no-figure", "--figure", str(tmp_path / "f.png")])
    assert e.value.code == 2 and "--figure: not allowed with argument --no-figure" in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()


def test_runs_shows_a_run_named_with_a_newline_on_one_row(finished, tmp_path, capsys):
    import shutil

    shutil.copytree(finished, tmp_path / "runs" / "two\nlines")
    assert main(["runs", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith("$'two\\nlines'")


def test_rnn_gradients_never_write_into_a_run(finished, capsys):
    before = sorted(p.name for p in finished.iterdir())
    assert main(["rnn", "gradients", "--steps", "10", "--train-steps", "0", "--out", str(finished)]) == 2
    assert "holds a run (config.json)" in one_line(capsys)
    assert sorted(p.name for p in finished.iterdir()) == before
