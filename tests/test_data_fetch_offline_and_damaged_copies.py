"""`neuralab data fetch` on an offline node, and over a copy cut short: the advice names the
command line's --data-dir and the files to copy (and where a machine with internet puts them);
a damaged file in the cache is fetched again, or named, where fetch said the data was there, with
the cache as the folder to copy it into (not NEURALAB_DATA to fix); an intact copy in a system
package's folder mends it with no download."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from neuralab.cli import main
from neuralab.data import sources, verify

FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz"]
OFFLINE = ("http://127.0.0.1:9/",)  # nothing answers there: a node without internet


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("neuralab: error: "), err
    return err


def served_from(monkeypatch, mirrors: tuple[str, ...], system_dirs: tuple[str, ...] = ()) -> None:
    source = sources.SOURCES["fashion-mnist"]
    monkeypatch.setitem(sources.SOURCES, "fashion-mnist",
                        sources.Source(**{**source.__dict__, "mirrors": mirrors, "system_dirs": system_dirs}))


def cut_short_copy(fashion_mnist: Path, cache: Path) -> Path:
    """The real Fashion-MNIST copied into the cache, its test labels cut after 1,000 bytes (an scp stopped)."""
    folder = cache / "fashion-mnist"
    folder.mkdir(parents=True)
    for name in FILES:
        shutil.copyfile(fashion_mnist / name, folder / name)
    (folder / FILES[3]).write_bytes((fashion_mnist / FILES[3]).read_bytes()[:1000])
    return folder


def test_offline_fetch_names_data_dir_as_the_flag_and_the_files_to_copy(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    served_from(monkeypatch, OFFLINE)
    assert main(["data", "fetch", "fashion-mnist"]) == 2
    err = one_error(capsys)
    assert "point --data-dir at the folder holding them" in err and "data_dir" not in err, err
    assert f"the files: {', '.join(FILES)} (on a machine with internet, `neuralab data fetch fashion-mnist` puts " \
           "them in the folder `neuralab data path fashion-mnist` prints)" in err, err


def test_a_missing_dataset_names_the_files_to_copy_where_it_is_used(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    served_from(monkeypatch, OFFLINE)
    assert main(["data", "path", "fashion-mnist"]) == 2
    err = one_error(capsys)
    assert "point --data-dir at the folder" in err and f"the files: {', '.join(FILES)}" in err, err


def test_neuralab_data_set_to_a_file_is_said_to_be_a_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "series.csv").write_text("date,value\n2024-01-01,1\n")
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "series.csv"))
    served_from(monkeypatch, OFFLINE)
    assert main(["data", "path", "fashion-mnist"]) == 2
    err = one_error(capsys)
    assert f"(NEURALAB_DATA={tmp_path / 'series.csv'} is used, a file, not a folder: fix or unset it)" in err, err
    assert "does not exist" not in err, err


def test_fetch_downloads_again_a_file_of_the_cache_that_was_cut_short(tmp_path, monkeypatch, capsys, fashion_mnist):
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    folder = cut_short_copy(fashion_mnist, tmp_path / "cache")
    served_from(monkeypatch, (fashion_mnist.as_uri() + "/",))  # a mirror with the published files
    assert main(["data", "fetch", "fashion-mnist"]) == 0
    assert capsys.readouterr().out == f"{folder}\n"
    assert (folder / FILES[3]).read_bytes() == (fashion_mnist / FILES[3]).read_bytes()
    assert verify("fashion-mnist") == {name: True for name in FILES}


def test_offline_fetch_over_a_file_cut_short_names_it_and_does_not_say_the_data_is_there(tmp_path, monkeypatch,
                                                                                        capsys, fashion_mnist):
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    folder = cut_short_copy(fashion_mnist, tmp_path / "cache")
    served_from(monkeypatch, OFFLINE)
    assert main(["data", "fetch", "fashion-mnist"]) == 2
    err = one_error(capsys)
    assert err.startswith(f"neuralab: error: {folder / FILES[3]}: damaged (not the published file's SHA-256); "
                          "could not download it again"), err
    assert capsys.readouterr().out == ""
    assert (folder / FILES[3]).stat().st_size == 1000  # nothing else was written over it
    # NEURALAB_DATA found the right folder: the file in it is what to mend
    assert f"; copy an intact {FILES[3]} into {folder};" in err and "NEURALAB_DATA" not in err, err


def test_offline_fetch_over_a_file_cut_short_mends_it_from_a_system_package_folder(tmp_path, monkeypatch, capsys,
                                                                                   fashion_mnist):
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    folder = cut_short_copy(fashion_mnist, tmp_path / "cache")
    package = tmp_path / "usr-share" / "fashion-mnist"  # as Debian's package installs it, decompressed
    package.mkdir(parents=True)
    for name in FILES:
        (package / name.removesuffix(".gz")).write_bytes(gzip.decompress((fashion_mnist / name).read_bytes()))
    served_from(monkeypatch, OFFLINE, (str(package),))
    assert main(["data", "fetch", "fashion-mnist"]) == 0, capsys.readouterr().err
    # the cache, which training reads first, is the copy made whole
    assert capsys.readouterr().out == f"{folder}\n"
    assert sources.locate("fashion-mnist") == folder
    assert verify("fashion-mnist") == {name: True for name in FILES}
    assert sources.file_in(folder, FILES[3]) == folder / FILES[3].removesuffix(".gz")  # the cut .gz is gone


def test_fetch_takes_an_intact_copy_as_it_is(tmp_path, monkeypatch, capsys, fashion_mnist):
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    folder = cut_short_copy(fashion_mnist, tmp_path / "cache")
    shutil.copyfile(fashion_mnist / FILES[3], folder / FILES[3])
    served_from(monkeypatch, OFFLINE)
    assert main(["data", "fetch", "fashion-mnist"]) == 0
    assert capsys.readouterr().out == f"{folder}\n"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """127.0.0.1:9 asked directly, not through a proxy the machine may set."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
