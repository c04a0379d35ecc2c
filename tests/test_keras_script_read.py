"""What a learner's Keras script does while neuralab reads it for its model (`neuralab train
--model script.py`): the History of its fit(), which did not run, refuses every use, so that
no plot or JSON of it is written empty over the learner's own; train_on_batch trains nothing,
evaluate and predict give NaN in Keras's shapes without a pass over the data, and the files the
script writes from them are put back; a second compile() with other settings is said. Real
images: the first Fashion-MNIST training images, as the learner's own arrays."""

from __future__ import annotations

import builtins
import io
import json
import os
import re
import shutil
import sys
import textwrap
import warnings

import numpy as np
import pytest
from helpers import idx_subset

from neuralab.cli import main
from neuralab.data.idx import read_idx
from neuralab.data.sources import file_in
from neuralab.errors import NeuralabError
from neuralab.training.source import resolve

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")  # the test extra installs Keras 3 (on PyTorch)
pytest.importorskip("matplotlib")

# Keras's tutorial, as a learner keeps it: their Fashion-MNIST arrays, a model, fit(), then the
# "Evaluate" section ({after}) writing figures and files from what fit() and the model give
SCRIPT = """
import json
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import keras
from keras import layers as L

x_train = np.load({images!r}).astype("float32") / 255
y_train = np.load({labels!r})
model = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(4, 3, activation="relu", name="conv"),
                          L.Flatten(name="flat"), L.Dense(10, activation="softmax", name="out")], name="learner")
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=3, validation_split=0.25)
"""

# the learner's "Evaluate" sections that use what fit() returned, each writing over their files
USES = {
    "plots each curve": """
        for key, values in history.history.items():
            plt.plot(values, label=key)
        plt.legend()
        plt.savefig(CURVES)
        """,
    "dumps the history": """
        with open(HISTORY, "w") as f:
            json.dump(history.history, f)
        """,
    "hands it to pandas": """
        import pandas as pd
        pd.DataFrame(history.history).plot()
        plt.savefig(CURVES)
        """,
    "indexes it": """
        plt.plot(history.epoch, history.history["val_accuracy"])
        plt.savefig(CURVES)
        """,
    "counts it": """
        with open(HISTORY, "w") as f:
            f.write(json.dumps({"epochs": len(history.epoch), "curves": list(history.history)}))
        """,
}


@pytest.fixture(scope="module")
def arrays(fashion_mnist, tmp_path_factory) -> tuple:
    """The learner's own arrays: 64 real training images (N, 28, 28, 1) uint8 and their labels."""
    subset = idx_subset(fashion_mnist, tmp_path_factory.mktemp("fashion-mnist"), 64, 16)
    folder = tmp_path_factory.mktemp("arrays")
    np.save(folder / "x.npy", read_idx(file_in(subset, "train-images-idx3-ubyte.gz"))[:, :, :, None])
    np.save(folder / "y.npy", read_idx(file_in(subset, "train-labels-idx1-ubyte.gz")))
    return folder / "x.npy", folder / "y.npy", subset


def _script(folder, arrays, after: str, name: str = "script.py"):
    path = folder / name
    images, labels, _ = arrays
    path.write_text(SCRIPT.format(images=str(images), labels=str(labels))
                    + f"CURVES, HISTORY = {str(folder / 'curves.png')!r}, {str(folder / 'history.json')!r}\n"
                    + textwrap.dedent(after))
    return path


def _learners_files(folder) -> dict:
    """The learner's curves from their own run: a real PNG and the JSON of a History."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    plt.plot([0.61, 0.74, 0.79], label="accuracy")
    fig.savefig(folder / "curves.png")
    plt.close(fig)
    (folder / "history.json").write_text(json.dumps({"loss": [1.1, 0.7, 0.6], "accuracy": [0.61, 0.74, 0.79]}))
    return {name: (folder / name).read_bytes() for name in ("curves.png", "history.json")}


def _line(path, pattern: str, after: int = 0) -> int:
    """The first line of ``path`` after line ``after`` where the regular expression ``pattern`` is."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if i > after and re.search(pattern, line))


@pytest.mark.parametrize("use", USES)
def test_using_what_an_unrun_fit_returned_writes_nothing_over_the_learners_files(arrays, tmp_path, use):
    """Keras's History of a fit() that did not run is empty: iterated or dumped, it wrote an
    empty figure and "{}" over the learner's own curves; pandas, indexing and `.epoch` failed,
    in pandas's or Python's words rather than with what to do."""
    before = _learners_files(tmp_path)
    path = _script(tmp_path, arrays, USES[use])
    fit = _line(path, r"model\.fit\(")
    used = _line(path, r"\bhistory\.(history|epoch)")
    with pytest.raises(NeuralabError) as e:
        resolve(path)
    assert str(e.value) == (f"{path}:{used}: the History from model.fit() at line {fit} holds no epochs: neuralab "
                            "reads the file for its model without running fit(), and trains the model on data "
                            "itself; put the lines using the History under if __name__ == \"__main__\":, which "
                            "neuralab does not run")
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert builtins.open is io.open and type(open).__module__ == "builtins"  # open() is Python's again
    assert keras.Model.fit.__module__.startswith("keras.")


def test_the_command_says_it_in_one_line_and_keeps_the_files(arrays, tmp_path, capsys):
    before = _learners_files(tmp_path)
    path = _script(tmp_path, arrays, USES["dumps the history"])
    code = main(["train", "--model", str(path), "--data", "fashion-mnist", "--data-dir", str(arrays[2]),
                 "--threads", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    used, fit = _line(path, r"json\.dump\("), _line(path, r"model\.fit\(")
    assert err.startswith(f"neuralab: error: {path}:{used}: the History from model.fit() at line {fit} holds no "
                          "epochs"), err
    assert "trains the model on --data itself" in err
    assert {name: (tmp_path / name).read_bytes() for name in before} == before


def test_train_on_batch_trains_nothing_and_gives_nan(arrays, tmp_path, capsys):
    """A loop of train_on_batch at module level trained the model for real as neuralab read it."""
    path = _script(tmp_path, arrays, """
        kernel = model.get_layer("out").get_weights()[0].copy()
        for start in range(0, 64, 16):
            loss, accuracy = model.train_on_batch(x_train[start:start + 16], y_train[start:start + 16])
            print(f"batch {start // 16}: loss {loss:.4f}, accuracy {accuracy:.4f}")
        print("kernel moved by", float(np.abs(model.get_layer("out").get_weights()[0] - kernel).max()))
        """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = resolve(path)
    out = capsys.readouterr().out
    assert "kernel moved by 0.0\n" in out and "batch 3: loss nan, accuracy nan\n" in out, out
    said = [str(w.message) for w in caught if "model.train_on_batch()" in str(w.message)]
    loop = _line(path, r"train_on_batch\(")
    assert said == [f"{path}:{loop}: model.train_on_batch() (4 calls), which "
                    "neuralab does not run while it reads the file for its model: they give NaN where Keras's would "
                    "give its numbers, in the same shapes (and train_on_batch() trains nothing); `python script.py` "
                    "still runs them"], said
    assert source.weights is None and source.compile["epochs"] == 3  # fit()'s epochs; the loop adds none
    assert "train_on_batch" not in vars(keras.Model)


def test_evaluate_and_predict_give_nan_in_keras_shapes_and_their_files_are_put_back(arrays, tmp_path, capsys):
    """evaluate() and predict() ran over the learner's data as neuralab read the file, and what
    the script wrote from them (an untrained model's numbers) went over the learner's results."""
    results = tmp_path / "results.txt"
    results.write_text("test accuracy 0.8125\n")
    before = _learners_files(tmp_path)
    path = _script(tmp_path, arrays, f"""
        test_loss, test_acc = model.evaluate(x_train, y_train, verbose=2)
        print("Test accuracy:", test_acc)
        print("as a dict:", model.evaluate(x_train, y_train, return_dict=True))
        predictions = model.predict(x_train)
        print("predictions", predictions.shape, predictions.dtype, np.isnan(predictions).all())
        with open({str(results)!r}, "w") as f:
            f.write(f"test accuracy {{test_acc:.4f}}\\n")
        plt.imshow(np.eye(10)[y_train].T @ np.eye(10)[predictions.argmax(1)])
        plt.savefig(CURVES)
        """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolve(path)
    out = capsys.readouterr().out
    keys = keras.Sequential([keras.Input((4,)), keras.layers.Dense(10, activation="softmax", name="out")])
    keys.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    want = keys.evaluate(np.zeros((2, 4)), np.zeros(2), return_dict=True, verbose=0)  # Keras's own, for its keys
    assert "Test accuracy: nan\n" in out and f"as a dict: { {k: float('nan') for k in want} }\n" in out, out
    assert "predictions (64, 10) float32 True\n" in out, out
    assert results.read_text() == "test accuracy 0.8125\n"
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    said = [str(w.message) for w in caught if "put back" in str(w.message)]
    assert said == [f"{path}: wrote over {results}, {tmp_path / 'curves.png'} as neuralab read it for its model, "
                    "from a model that was not trained: put back as they were; `python script.py` still writes them"]
    evaluated = [str(w.message) for w in caught if "model.evaluate()" in str(w.message)]
    assert len(evaluated) == 1 and f"script.py:{_line(path, 'predictions = ')}: model.predict()" in evaluated[0]


def test_a_second_compile_with_other_settings_is_said_once(arrays, tmp_path):
    """The last compile() is the one Keras trains with, and the run's; the earlier one's settings
    went without a word."""
    path = _script(tmp_path, arrays, """
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        """)
    first = _line(path, r"model\.compile\(")
    last = _line(path, r"model\.compile\(", after=first)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = resolve(path)
    said = [str(w.message) for w in caught if "compile()" in str(w.message)]
    assert said == [f"{path}:{last}: model.compile() replaces the one at line {first}, as in Keras, where fit() "
                    "trains with the last compile(): the run takes this one's `optimizer` sgd, `lr` 0.01, `momentum` "
                    f"0.9 where no option sets them, not line {first}'s `optimizer` adam, `lr` 0.001, no `momentum`"]
    assert (source.compile["optimizer"], source.compile["lr"], source.compile["momentum"]) == ("sgd", 0.01, 0.9)

    same = _script(tmp_path, arrays, """
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy())
        """, "same.py")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolve(same)
    assert not [str(w.message) for w in caught if "compile()" in str(w.message)]


def _resolved(path) -> tuple:
    """``resolve(path)`` and the warnings it gave."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        source = resolve(path)
    return source, [str(w.message) for w in said]


def test_files_put_back_keep_their_permissions_and_hard_links(arrays, tmp_path):
    """A file put back was a new file in its place: the learner's private 0600 file came back
    readable by all, their 0755 script lost its +x, and a hard link to it kept the script's write."""
    secrets, launcher = tmp_path / "secrets.json", tmp_path / "run.sh"
    secrets.write_text('{"api_key": "learner-own"}\n')
    secrets.chmod(0o600)
    launcher.write_text("#!/bin/sh\npython script.py\n")
    launcher.chmod(0o755)
    os.link(launcher, tmp_path / "run-link.sh")
    before = {p: (p.read_bytes(), os.stat(p)) for p in (secrets, launcher)}
    path = _script(tmp_path, arrays, f"""
        with open({str(secrets)!r}, "w") as f:
            json.dump({{}}, f)
        with open({str(launcher)!r}, "a") as f:
            f.write("echo trained\\n")
        """)
    _, said = _resolved(path)
    assert [s for s in said if "put back" in s] == [
        f"{path}: wrote over {secrets}, {launcher} as neuralab read it for its model, from a model that was not "
        "trained: put back as they were; `python script.py` still writes them"]
    for file, (data, was) in before.items():
        now = os.stat(file)
        assert file.read_bytes() == data
        assert (oct(now.st_mode), now.st_ino, now.st_nlink) == (oct(was.st_mode), was.st_ino, was.st_nlink), file
    assert (tmp_path / "run-link.sh").read_bytes() == before[launcher][0]


def test_files_the_script_makes_as_it_is_read_are_left_as_it_writes_them(arrays, tmp_path):
    """A file absent when the script first opened it was copied on its second open, and what the
    script wrote the first time "put back": a log it appends to came back as its first line, and
    a scratch file in a temporary folder came back with the folder, which the script had removed."""
    log = tmp_path / "train_log.txt"
    path = _script(tmp_path, arrays, f"""
        import os, tempfile
        for step in range(3):
            with open({str(log)!r}, "a") as f:
                f.write(f"step {{step}}\\n")
        with tempfile.TemporaryDirectory(dir={str(tmp_path)!r}) as scratch:
            for i in range(2):
                with open(os.path.join(scratch, "scratch.json"), "w") as f:
                    json.dump({{"round": i}}, f)
        """)
    _, said = _resolved(path)
    assert log.read_text() == "step 0\nstep 1\nstep 2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script.py", "train_log.txt"]
    assert not [s for s in said if "wrote over" in s], said


def _log(file, lines: int) -> bytes:
    """A training log as a learner's runs leave one, ``lines`` lines long."""
    file.write_bytes(b"".join(b"epoch %d step %d loss %.4f accuracy %.4f\n" % (i // 1000, i % 1000, 2 / (1 + i / 500),
                                                                             1 - 1 / (2 + i / 300))
                              for i in range(lines)))
    return file.read_bytes()


def test_a_file_over_the_copy_limit_is_said_not_put_back_and_others_are(arrays, tmp_path, monkeypatch):
    """Every file written over was read whole into memory, however large (an append to a 400 MB
    log took 800 MB), and nothing said which could not be kept."""
    from neuralab.training import keras_script

    monkeypatch.setattr(keras_script, "MAX_KEPT", 2**20)
    log, results = tmp_path / "events.log", tmp_path / "results.txt"
    before = _log(log, 40_000)
    results.write_text("test accuracy 0.8125\n")
    path = _script(tmp_path, arrays, f"""
        with open({str(log)!r}, "a") as f:
            f.write("trained\\n")
        with open({str(results)!r}, "w") as f:
            f.write("test accuracy nan\\n")
        """)
    _, said = _resolved(path)
    assert log.read_bytes() == before + b"trained\n" and results.read_text() == "test accuracy 0.8125\n"
    assert [s for s in said if "wrote over" in s] == [
        f"{path}: wrote over {results} as neuralab read it for its model, from a model that was not trained: put "
        "back as it was; `python script.py` still writes it",
        f"{path}: wrote over {log} ({len(before) / 2**20:.0f} MB, over the 1 MB neuralab copies to put back) as "
        "neuralab read it for its model, from a model that was not trained, and it could not be put back; put the "
        "lines writing it under if __name__ == \"__main__\":, which neuralab does not run"]


def test_a_file_put_back_is_copied_on_disk_not_held_in_memory(arrays, tmp_path):
    """The 30 MB log a script appends to was held whole in memory, and read whole again to compare."""
    import tracemalloc

    log = tmp_path / "events.log"
    before = _log(log, 700_000)
    path = _script(tmp_path, arrays, f"""
        with open({str(log)!r}, "a") as f:
            f.write("trained\\n")
        """)
    tracemalloc.start()
    try:
        _, said = _resolved(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert log.read_bytes() == before and [s for s in said if "put back as it was" in s]
    assert peak < len(before) / 2, f"{peak / 2**20:.0f} MB held for a {len(before) / 2**20:.0f} MB file"


def test_a_file_that_cannot_be_put_back_is_said_and_the_others_are_put_back(arrays, tmp_path):
    """Files were put back inside the read's `finally`: one that could not be (a folder now where
    it was, a full disk) raised there, over the script's own error or result, and those after it
    were left written over; a folder the script removed was made again to put its file back."""
    out, results, gone = tmp_path / "out", tmp_path / "results.txt", tmp_path / "scratch"
    out.mkdir()
    gone.mkdir()
    (out / "metrics.json").write_text('{"accuracy": 0.8125}\n')
    (gone / "notes.txt").write_text("the learner's notes\n")
    results.write_text("test accuracy 0.8125\n")
    path = _script(tmp_path, arrays, f"""
        import os, shutil
        with open({str(out / 'metrics.json')!r}, "w") as f:
            json.dump({{"accuracy": float("nan")}}, f)
        os.remove({str(out / 'metrics.json')!r})
        os.mkdir({str(out / 'metrics.json')!r})
        with open({str(results)!r}, "w") as f:
            f.write("test accuracy nan\\n")
        with open({str(gone / 'notes.txt')!r}, "w") as f:
            f.write("overwritten\\n")
        shutil.rmtree({str(gone)!r})  # the script's own to remove: not made again, not said
        """)
    source, said = _resolved(path)
    assert source.type == "keras" and not gone.exists()
    assert results.read_text() == "test accuracy 0.8125\n"
    not_put_back = [s for s in said if "could not be put back" in s]
    assert len(not_put_back) == 1 and "notes.txt" not in not_put_back[0], said
    copy = re.search(r"as it was: (\S+)\)", not_put_back[0]).group(1)
    assert not_put_back[0] == (
        f"{path}: wrote over {out / 'metrics.json'} (Is a directory; as it was: {copy}) as neuralab read it "
        "for its model, from a model that was not trained, and it could not be put back; put the lines writing it "
        "under if __name__ == \"__main__\":, which neuralab does not run")
    with open(copy) as f:  # the learner's file as it was, for them to take back
        assert f.read() == '{"accuracy": 0.8125}\n'
    shutil.rmtree(os.path.dirname(copy))


@pytest.mark.filterwarnings("ignore:.*model.fit\\(\\), which neuralab does not run")
def test_two_threads_reading_scripts_leave_open_and_keras_as_they_were(arrays, tmp_path, monkeypatch):
    """A second thread's read took the first's patched open() and Model.fit for Python's and
    Keras's own, and put them back when it ended: every later fit() in the process trained
    nothing, and every open() went through a leftover guard."""
    import threading
    import types

    names = ("fit", "save", "save_weights", "compile", "train_on_batch", "evaluate", "predict")
    own = {name: vars(keras.Model).get(name) for name in names}
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", real_open)  # put back after the test, even where a read left its guard
    monkeypatch.setattr(io, "open", real_open)
    # the first script waits (3 s at most) for the second's read to be running, which then outlives it
    meeting = types.SimpleNamespace(waiting=threading.Event(), inside=threading.Event(), first_done=threading.Event())
    monkeypatch.setitem(sys.modules, "meeting", meeting)
    first = _script(tmp_path, arrays, "import meeting\nmeeting.waiting.set()\nmeeting.inside.wait(3)\n", "first.py")
    second = _script(tmp_path, arrays, "import meeting\nmeeting.inside.set()\nmeeting.first_done.wait(3)\n",
                     "second.py")
    failed = []

    def read(path, done=None):
        try:
            resolve(path)
        except Exception as e:  # noqa: BLE001  said below, in the test's thread
            failed.append(e)
        if done is not None:
            done.set()

    one = threading.Thread(target=read, args=(first, meeting.first_done))
    one.start()
    assert meeting.waiting.wait(60)
    two = threading.Thread(target=read, args=(second,))
    two.start()
    one.join()
    two.join()
    left = {name: vars(keras.Model).get(name) for name in names}
    for name in names:  # Keras as it was for the tests after this one, even where a read left its patches
        if left[name] is not own[name]:
            setattr(keras.Model, name, own[name]) if own[name] else delattr(keras.Model, name)
    assert not failed
    assert builtins.open is real_open and io.open is real_open
    assert left == own


def test_a_script_failing_after_fit_says_the_file_it_wrote_over_that_could_not_be_put_back(arrays, tmp_path):
    """The warnings that name what could not be put back came only where the read succeeded: a
    script failing on its History (the common case) left the learner's file unsaid."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text('{"accuracy": 0.8125}\n')
    path = _script(tmp_path, arrays, f"""
        import os
        with open({str(out / 'metrics.json')!r}, "w") as f:
            f.write("{{}}")
        os.remove({str(out / 'metrics.json')!r})
        os.mkdir({str(out / 'metrics.json')!r})
        print(history.history["loss"])
        """)
    with pytest.raises(NeuralabError) as refused:
        resolve(path)
    line = str(refused.value)
    copy = re.search(r"as it was: (\S+)\)", line).group(1)
    assert "\n" not in line and "holds no epochs" in line
    assert line.endswith(f"; it also wrote over {out / 'metrics.json'} (Is a directory; as it was: {copy}), which "
                         "could not be put back")
    with open(copy) as f:
        assert f.read() == '{"accuracy": 0.8125}\n'
    shutil.rmtree(os.path.dirname(copy))
