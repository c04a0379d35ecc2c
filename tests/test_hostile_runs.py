"""What a hostile review of run files found: a checkpoint edited by hand, a safetensors file too
large for the memory, and a series CSV written with old Mac line endings, each refused in one
line naming the file."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from neuralab.data import tables
from neuralab.errors import NeuralabError
from neuralab.training import ClassifierConfig, TrainConfig, resume_classifier, train_classifier
from neuralab.training import checkpoint
import test_hostile
from test_hostile import refused
from test_runs import three_classes

LAST = "checkpoints/last.safetensors"
stopped = test_hostile.stopped  # the fixture of an interrupted run, shared


def read_header(path: Path) -> tuple[dict, bytes]:
    """A safetensors file's JSON header, and the tensor bytes after it."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]), data[8 + n:]


def edit_header(path: Path, edit) -> None:
    """Rewrite a safetensors file's JSON header as ``edit(header, meta)`` leaves it, as a
    hand-editor does: the tensor bytes stay, the header is padded to 8 bytes again, and the
    header's checksum is dropped (a file of the release before has none)."""
    header, body = read_header(path)
    header["__metadata__"].pop("sha256_header", None)
    meta = json.loads(header["__metadata__"]["neuralab"])
    edit(header, meta)
    header["__metadata__"]["neuralab"] = json.dumps(meta)
    write_header(path, header, body)


def write_header(path: Path, header: dict, body: bytes) -> None:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + body)


def first_state(meta: dict) -> dict:
    return next(iter(meta["optimizer"]["state"].values()))


def halve(prefix: str):
    """An edit that gives the first vector of ``prefix`` another shape, the same bytes: n values
    read as (n/2, 2), the checksum of the tensors dropped."""
    def edit(header: dict, meta: dict) -> None:
        header["__metadata__"].pop("sha256")
        name = next(k for k, v in header.items() if k.startswith(prefix) and len(v["shape"]) == 1
                    and v["shape"][0] % 2 == 0)
        header[name]["shape"] = [header[name]["shape"][0] // 2, 2]
    return edit


# name -> (how the checkpoint is edited, the words the refusal must hold besides the file)
EDITS = {
    "no optimizer": (lambda h, m: m.pop("optimizer"), ["optimizer", "missing"]),
    "numpy RNG of three keys": (lambda h, m: m.update(rng_numpy=["MT19937", [1, 2, 3], 0, 0, 0.0]), ["rng_numpy"]),
    "numpy RNG as text": (lambda h, m: m.update(rng_numpy="x"), ["rng_numpy"]),
    "history as text": (lambda h, m: m.update(history="abc"), ["history"]),
    "epoch as text": (lambda h, m: m.update(epoch="2"), ["epoch", "'2'"]),
    "epoch beyond its history": (lambda h, m: m.update(epoch=10 ** 9), ["epoch", "1000000000"]),
    "scheduler of another kind": (lambda h, m: m.update(scheduler={"x": 1}), ["scheduler"]),
    "optimizer state naming no tensor": (lambda h, m: first_state(m).update(exp_avg={"tensor": "nope"}),
                                         ["optimizer", "'nope'"]),
    "optimizer state naming a list": (lambda h, m: first_state(m).update(exp_avg={"tensor": [1]}),
                                      ["optimizer", "[1]"]),
    "learning rate as text": (lambda h, m: m["optimizer"]["param_groups"][0].update(lr="fast"),
                              ["optimizer", "lr", "'fast'"]),
    "model tensor of another shape": (halve("model."), ["bias"]),
    "optimizer moment of another shape": (halve("optimizer."), ["optimizer", "exp_avg", "does not fit"]),
}


@pytest.mark.parametrize("case", EDITS)
def test_a_hand_edited_checkpoint_is_refused_in_one_line_on_resume(case, stopped, tmp_path, capsys):
    edit, words = EDITS[case]
    copy = shutil.copytree(stopped, tmp_path / "run")
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    edit_header(copy / LAST, edit)
    before[copy / LAST] = (copy / LAST).read_bytes()
    refused(capsys, ["train", "--resume", str(copy), "--quiet"], str(copy / LAST), "damaged", *words)
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before  # nothing rewritten


def test_a_checkpoint_of_another_torch_release_resumes(stopped, tmp_path):
    """torch adds state keys between releases (Adam's decoupled_weight_decay, LambdaLR's
    _is_initial) and its own load_state_dict fills in the ones an older release did not write:
    such a checkpoint resumes, where one whose scheduler holds another object's state does not."""
    copy = shutil.copytree(stopped, tmp_path / "run")

    def older(header, meta):
        meta["optimizer"]["param_groups"][0].pop("decoupled_weight_decay", None)
        meta["optimizer"]["param_groups"][0].pop("fused", None)
        meta["scheduler"].pop("_is_initial", None)
        meta["scheduler"]["_a_newer_release"] = 1

    edit_header(copy / LAST, older)
    result = resume_classifier(copy, verbose=False)
    assert len(result.history) == 2 and 0 <= result.test["accuracy"] <= 1


def test_a_best_checkpoint_of_another_shape_is_refused_in_one_line_on_resume(stopped, tmp_path, capsys):
    copy = shutil.copytree(stopped, tmp_path / "run")
    best = copy / "checkpoints" / "best.safetensors"
    edit_header(best, halve("model."))
    refused(capsys, ["train", "--resume", str(copy), "--quiet"], str(best), "bias", "damaged")


@pytest.mark.parametrize("written", ["[1, 2]", "{\"epoch\": 2"])
def test_a_checkpoint_whose_metadata_is_no_json_object_is_named_on_resume(written, stopped, tmp_path, capsys):
    copy = shutil.copytree(stopped, tmp_path / "run")
    header, body = read_header(copy / LAST)
    header["__metadata__"].pop("sha256_header", None)
    header["__metadata__"]["neuralab"] = written
    write_header(copy / LAST, header, body)
    refused(capsys, ["train", "--resume", str(copy), "--quiet"], str(copy / LAST), "'neuralab' metadata")


def test_the_checksum_covers_the_header_so_damage_there_is_caught(stopped, tmp_path):
    copy = shutil.copytree(stopped, tmp_path / "run")
    last = copy / LAST
    data = last.read_bytes()
    # a flipped digit in the history's first loss: the JSON still parses, the tensors are whole
    at = data.index(b"loss\\\": 0.") + len(b"loss\\\": 0.")
    digit = b"1" if data[at:at + 1] != b"1" else b"2"
    last.write_bytes(data[:at] + digit + data[at + 1:])
    with pytest.raises(NeuralabError, match="checksum mismatch"):
        checkpoint.load_tensors(last)


def test_a_checkpoint_written_before_the_header_checksum_resumes_as_before(tmp_path, cut_in_epoch_2):
    pictures = three_classes(tmp_path / "three")
    config = ClassifierConfig(model="mlp", data=str(pictures), train=TrainConfig(epochs=3, batch_size=8))
    whole = train_classifier(config, out=tmp_path / "whole", verbose=False)
    whole_again = cut_in_epoch_2()
    with pytest.raises(KeyboardInterrupt):
        train_classifier(config, out=tmp_path / "cut", verbose=False)
    whole_again()
    edit_header(tmp_path / "cut" / LAST, lambda header, meta: None)  # as the release before wrote it
    assert set(read_header(tmp_path / "cut" / LAST)[0]["__metadata__"]) == {"neuralab", "sha256"}
    resumed = resume_classifier(tmp_path / "cut", verbose=False)
    a, _ = checkpoint.load_tensors(whole.run_dir / LAST)
    b, _ = checkpoint.load_tensors(resumed.run_dir / LAST)
    assert [k for k in a if not torch.equal(a[k], b[k]) and not k.startswith("rng.")] == []


def test_a_checkpoint_too_large_for_the_address_space_is_named(stopped, monkeypatch):
    def no_memory(*args, **kwargs):  # what safetensors raises when it cannot hold a file of gigabytes
        raise MemoryError

    monkeypatch.setattr(checkpoint, "st_load", no_memory)
    with pytest.raises(NeuralabError, match=f"{stopped / LAST}: .*memory"):
        checkpoint.load_tensors(stopped / LAST)


# --- a series CSV of old Mac line endings (a CR alone ends each line) ----------------------

def write_series(path: Path, rows: int, newline: bytes) -> Path:
    hours = pd.date_range("2020-01-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M")
    lines = ["date,v", *(f"{t},{i % 24}" for i, t in enumerate(hours))]
    with gzip.open(path, "wb") as f:
        f.write(newline.join(s.encode() for s in lines) + newline)
    return path


@pytest.mark.parametrize("newline", [b"\r", b"\r\n", b"\n"], ids=["CR", "CRLF", "LF"])
def test_a_series_too_large_for_memory_is_refused_whatever_ends_its_lines(newline, tmp_path, capsys, monkeypatch):
    """CR-only lines counted as one row let a file of 10^8 rows past the estimate, into a
    NumPy MemoryError; here 50,000 rows (22 MB to forecast) against 8 MB, read in blocks of 4 KB."""
    data = write_series(tmp_path / "load.csv.gz", 50_000, newline)
    monkeypatch.setattr(tables, "BLOCK", 1 << 12)
    monkeypatch.setattr(tables, "available_memory", lambda: tables.BASE_BYTES + (8 << 20))
    refused(capsys, ["forecast", "--data", str(data), "--target", "v", "--epochs", "1", "--quiet",
                     "--out", str(tmp_path / "run")], "load.csv.gz", "50,000 rows would need")
    assert not (tmp_path / "run").exists()
