"""Where datasets come from: explicit folder, cache, system folder; checksums; clear errors."""

import shutil

import numpy as np
import pytest

from neuralab.data import load_image_data, locate, verify
from neuralab.data import sources
from neuralab.data.idx import write_idx
from neuralab.errors import NeuralabError


def fake_mnist(folder, n_train=50, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte.gz", (np.arange(n_train) % 10).astype(np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", (np.arange(n_test) % 10).astype(np.uint8))
    return folder


def test_explicit_folder_loads_with_seeded_split(tmp_path):
    fake_mnist(tmp_path / "m")
    a = load_image_data("mnist", tmp_path / "m", val_fraction=0.2, seed=1)
    b = load_image_data("mnist", tmp_path / "m", val_fraction=0.2, seed=1)
    c = load_image_data("mnist", tmp_path / "m", val_fraction=0.2, seed=2)
    assert (len(a.train), len(a.val), len(a.test)) == (40, 10, 20)
    assert a.train.x.shape == (40, 1, 28, 28) and a.input_shape == (1, 28, 28)
    np.testing.assert_array_equal(a.val.x, b.val.x)
    assert not np.array_equal(a.val.y, c.val.y) or not np.array_equal(a.val.x, c.val.x)
    assert a.classes == [str(d) for d in range(10)]


def test_cache_is_found_and_explicit_folder_is_strict(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    fake_mnist(tmp_path / "cache" / "mnist")
    assert locate("mnist") == tmp_path / "cache" / "mnist"
    with pytest.raises(NeuralabError, match=r"data_dir='.*': missing train-images"):
        locate("mnist", tmp_path / "elsewhere")


def test_system_folder_is_searched(tmp_path, monkeypatch):
    fake_mnist(tmp_path / "usr-share")
    source = sources.SOURCES["mnist"]
    monkeypatch.setitem(sources.SOURCES, "mnist",
                        sources.Source(**{**source.__dict__, "system_dirs": (str(tmp_path / "usr-share"),)}))
    assert locate("mnist") == tmp_path / "usr-share"


def test_missing_dataset_lists_the_ways_to_get_it(tmp_path, monkeypatch):
    source = sources.SOURCES["fashion-mnist"]  # as if Debian's dataset package were not installed
    monkeypatch.setitem(sources.SOURCES, "fashion-mnist",
                        sources.Source(**{**source.__dict__, "system_dirs": (str(tmp_path / "none"),)}))
    with pytest.raises(NeuralabError) as e:
        locate("fashion-mnist")
    message = str(e.value)
    assert "neuralab data fetch fashion-mnist" in message and "apt-get install dataset-fashion-mnist" in message
    assert "\n" not in message


def test_unknown_dataset():
    with pytest.raises(NeuralabError, match="unknown dataset 'cifar100'"):
        locate("cifar100")


def test_offline_fetch_fails_cleanly_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    source = sources.SOURCES["mnist"]
    monkeypatch.setitem(sources.SOURCES, "mnist",
                        sources.Source(**{**source.__dict__, "mirrors": ("http://127.0.0.1:9/",)}))
    with pytest.raises(NeuralabError, match="could not download train-images"):
        sources.fetch("mnist", timeout=2)
    assert not (tmp_path / "cache" / "mnist").exists(), "an empty cache folder was left behind"


def test_fetch_into_a_cache_that_cannot_be_written_says_so(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "file" / "cache"))
    with pytest.raises(NeuralabError, match="cannot create the data cache .*set NEURALAB_DATA to a writable folder"):
        sources.fetch("mnist", timeout=2)
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    (tmp_path / "cache" / "mnist").mkdir(parents=True)

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sources.tempfile, "TemporaryDirectory", read_only)
    with pytest.raises(NeuralabError, match=r"mnist: cannot write \(Permission denied\)"):
        sources.fetch("mnist", timeout=2)


def test_download_with_wrong_checksum_is_not_kept(tmp_path, monkeypatch):
    """A mirror serving other bytes: the file is refused and nothing is left in the cache."""
    served = tmp_path / "mirror"
    fake_mnist(served)
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    source = sources.SOURCES["mnist"]
    monkeypatch.setitem(sources.SOURCES, "mnist",
                        sources.Source(**{**source.__dict__, "mirrors": (served.as_uri() + "/",)}))
    with pytest.raises(NeuralabError, match="checksum mismatch"):
        sources.fetch("mnist")
    assert not (tmp_path / "cache" / "mnist").exists()


def test_fetch_takes_a_complete_copy_where_one_is_found_and_downloads_nothing(tmp_path, monkeypatch, fashion_mnist):
    """An offline machine with the Debian package: `neuralab data fetch` said it could not download
    what every training found in the package's folder."""
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    source = sources.SOURCES["fashion-mnist"]
    monkeypatch.setitem(sources.SOURCES, "fashion-mnist", sources.Source(**{
        **source.__dict__, "mirrors": ("http://127.0.0.1:9/",), "system_dirs": (str(fashion_mnist),)}))
    assert sources.fetch("fashion-mnist", timeout=2) == fashion_mnist == locate("fashion-mnist")
    assert not (tmp_path / "cache").exists()


def test_download_from_a_mirror_with_the_real_files(tmp_path, monkeypatch, fashion_mnist):
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    source = sources.SOURCES["fashion-mnist"]
    monkeypatch.setitem(sources.SOURCES, "fashion-mnist",
                        sources.Source(**{**source.__dict__, "mirrors": (fashion_mnist.as_uri() + "/",), "system_dirs": ()}))
    target = sources.fetch("fashion-mnist")
    assert target == tmp_path / "cache" / "fashion-mnist"
    assert verify("fashion-mnist") == {f: True for f in source.files}
    assert locate("fashion-mnist") == target


def test_a_mirror_serving_other_bytes_is_passed_over_for_the_next(tmp_path, monkeypatch, fashion_mnist):
    """A wrong file from the first mirror: the second, with the published files, is tried."""
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    wrong = tmp_path / "wrong"
    fake_mnist(wrong)
    for name in sources.SOURCES["fashion-mnist"].files:  # the right names, other bytes
        (wrong / name).write_bytes((wrong / "t10k-labels-idx1-ubyte.gz").read_bytes())
    source = sources.SOURCES["fashion-mnist"]
    mirrors = (wrong.as_uri() + "/", fashion_mnist.as_uri() + "/")
    monkeypatch.setitem(sources.SOURCES, "fashion-mnist", sources.Source(**{**source.__dict__, "mirrors": mirrors,
                                                                           "system_dirs": ()}))
    assert verify("fashion-mnist", sources.fetch("fashion-mnist")) == {f: True for f in source.files}


def test_a_download_larger_than_any_dataset_file_is_not_kept(tmp_path, monkeypatch, fashion_mnist):
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "MAX_DOWNLOAD", 2**20)  # Fashion-MNIST's training images take 26 MB
    source = sources.SOURCES["fashion-mnist"]
    monkeypatch.setitem(sources.SOURCES, "fashion-mnist",
                        sources.Source(**{**source.__dict__, "mirrors": (fashion_mnist.as_uri() + "/",), "system_dirs": ()}))
    with pytest.raises(NeuralabError, match="more than 1 MB, larger than any file of the datasets"):
        sources.fetch("fashion-mnist")
    assert not list((tmp_path / "cache").rglob("train-images*"))


def test_verify_flags_a_changed_file(tmp_path, fashion_mnist):
    folder = tmp_path / "copy"
    shutil.copytree(fashion_mnist, folder)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(10000, dtype=np.uint8))
    result = verify("fashion-mnist", folder)
    assert result["t10k-labels-idx1-ubyte.gz"] is False and result["train-labels-idx1-ubyte.gz"] is True


def test_label_image_count_mismatch(tmp_path):
    folder = fake_mnist(tmp_path / "m")
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(19, dtype=np.uint8))
    with pytest.raises(NeuralabError, match="19 labels for 20 images"):
        load_image_data("mnist", folder)


def test_wrong_dimensions(tmp_path):
    folder = fake_mnist(tmp_path / "m")
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((20, 784), dtype=np.uint8))
    with pytest.raises(NeuralabError, match="expected 3 dimensions"):
        load_image_data("mnist", folder)


def _no_home(monkeypatch):
    """HOME unset and the user id in no passwd file, as in a container run with an arbitrary uid."""
    import pwd

    def no_user(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_user)
    for name in ("HOME", "NEURALAB_DATA", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("home", [None, ""])
def test_without_a_home_folder_data_dir_loads_and_the_cache_is_asked_for(tmp_path, monkeypatch, home):
    """HOME set empty put the cache in the working folder."""
    folder = fake_mnist(tmp_path / "m")
    _no_home(monkeypatch)
    if home is not None:
        monkeypatch.setenv("HOME", home)
    monkeypatch.chdir(tmp_path)
    data = load_image_data("mnist", folder, val_fraction=0.2)  # read into memory: no copy is kept
    assert (len(data.train), len(data.test)) == (40, 20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    for call in (lambda: locate("mnist"), lambda: sources.fetch("mnist")):
        with pytest.raises(NeuralabError, match="HOME is not set") as e:
            call()
        assert "set NEURALAB_DATA to a folder" in str(e.value) and "\n" not in str(e.value)


def _damage_in_place(copy, keep_time: bool) -> None:
    """Zero 100 bytes of the cached ``copy``, as a disk error would (``keep_time``: its size and
    modification time stay, so its stamp cannot tell) or a tool that rewrote it."""
    import os

    before = copy.stat()
    damaged = bytearray(copy.read_bytes())
    damaged[1000:1100] = bytes(100)
    copy.write_bytes(damaged)
    if keep_time:
        os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_cached_copy_damaged_in_place_is_written_again_by_verify(tmp_path, monkeypatch):
    """A decompressed copy whose bytes changed on disk keeping its size and modification time
    passes the checks of every load (its header, size and stamp); `verify`, which reads the files'
    content anyway, writes it again from the .gz and says so, and the data read after is the
    files' again."""
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    folder = fake_mnist(tmp_path / "m")
    intact = load_image_data("mnist", folder, seed=1)  # leaves the copies in the cache
    (copy,) = (tmp_path / "cache" / "decompressed").glob("train-images-*")
    _damage_in_place(copy, keep_time=True)
    assert not np.array_equal(load_image_data("mnist", folder, seed=1).train.x, intact.train.x)
    with pytest.warns(UserWarning, match=rf"{copy}: the cache's decompressed copy of .*train-images-idx3-ubyte.gz "
                                         "held other bytes than the file"):
        verify("mnist", folder)
    np.testing.assert_array_equal(load_image_data("mnist", folder, seed=1).train.x, intact.train.x)


def test_evaluate_refused_by_a_damaged_cached_copy_mends_it_and_the_same_command_then_evaluates(tmp_path, monkeypatch,
                                                                                             capsys):
    """A copy damaged on disk made evaluate blame the user's intact files; it is now checked there,
    written again and said, and the same command again evaluates the run's images."""
    from neuralab.cli import main

    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    folder = fake_mnist(tmp_path / "m", n_train=100)
    run = str(tmp_path / "run")
    assert main(["train", "--model", "mlp", "--data", "mnist", "--data-dir", str(folder), "--epochs", "1",
                 "--quiet", "--out", run]) == 0
    (copy,) = (tmp_path / "cache" / "decompressed").glob("t10k-images-*")
    _damage_in_place(copy, keep_time=True)  # a copy changed otherwise is mended as it loads
    capsys.readouterr()
    with pytest.warns(UserWarning, match="held other bytes than the file"):
        assert main(["evaluate", run, "--data-dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "the cache's decompressed copy of its files was damaged on disk, so the images read were not the run's; " \
           "the copy is now written again from the files: run the same command again" in err
    assert "give the files the run was trained on" not in err
    assert main(["evaluate", run, "--data-dir", str(folder)]) == 0


def test_train_reads_the_files_images_from_a_cached_copy_changed_on_disk(tmp_path, monkeypatch, capsys):
    """A copy rewritten on disk (new bytes, new modification time) was read unchecked by the next
    run, which trained and recorded results on other images than the user's intact files, and
    evaluate then blamed those files; the copy is now checked as it loads, written again from the
    file and said, so the same command gives the same run."""
    import json

    from neuralab.cli import main
    from neuralab.data.sources import CopyMended

    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    folder = fake_mnist(tmp_path / "m", n_train=100)

    def train(out):
        assert main(["train", "--model", "mlp", "--data", "mnist", "--data-dir", str(folder), "--epochs", "1",
                     "--quiet", "--out", str(tmp_path / out)]) == 0
        return json.loads((tmp_path / out / "results.json").read_text())

    first = train("run1")
    (copy,) = (tmp_path / "cache" / "decompressed").glob("t10k-images-*")
    _damage_in_place(copy, keep_time=False)
    with pytest.warns(CopyMended, match=rf"{copy}: the cache's decompressed copy of .*t10k-images-idx3-ubyte.gz "
                                        "held other bytes than the file"):
        second = train("run2")
    assert second["test_accuracy"] == first["test_accuracy"]
    assert second["confusion_matrix"] == first["confusion_matrix"]
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run2"), "--data-dir", str(folder)]) == 0
