"""`neuralab data`: list, path, verify, fetch from the command line."""

import shutil

from neuralab.cli import main


def test_path_and_verify_on_the_real_files(fashion_mnist, capsys):
    assert main(["data", "path", "fashion-mnist", "--data-dir", str(fashion_mnist)]) == 0
    assert capsys.readouterr().out.strip() == str(fashion_mnist)
    assert main(["data", "verify", "fashion-mnist", "--data-dir", str(fashion_mnist)]) == 0
    out = capsys.readouterr().out
    assert out.count("ok ") == 4 and "BAD" not in out


def test_verify_reports_a_bad_file_with_exit_2(fashion_mnist, tmp_path, capsys):
    copy = tmp_path / "fashion-mnist"
    shutil.copytree(fashion_mnist, copy)
    shutil.copy(copy / "t10k-labels-idx1-ubyte.gz", copy / "train-labels-idx1-ubyte.gz")
    assert main(["data", "verify", "fashion-mnist", "--data-dir", str(copy)]) == 2
    assert "BAD train-labels-idx1-ubyte.gz" in capsys.readouterr().out


def _no_system_copy(monkeypatch, tmp_path):
    """Pretend no Debian dataset package is installed on this machine."""
    from neuralab.data import sources

    for name, source in list(sources.SOURCES.items()):
        monkeypatch.setitem(sources.SOURCES, name,
                            sources.Source(**{**source.__dict__, "system_dirs": (str(tmp_path / "none"),)}))


def test_list_shows_where_each_dataset_is(fashion_mnist, tmp_path, monkeypatch, capsys):
    _no_system_copy(monkeypatch, tmp_path)
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path))
    shutil.copytree(fashion_mnist, tmp_path / "fashion-mnist")
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "fashion-mnist") in out
    assert "not found (neuralab data fetch mnist)" in out


def test_missing_dataset_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    _no_system_copy(monkeypatch, tmp_path)
    assert main(["data", "path", "fashion-mnist"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neuralab data fetch fashion-mnist" in err


def test_fetch_without_a_home_folder_asks_for_neuralab_data(tmp_path, monkeypatch, capsys):
    import pwd

    def no_user(uid):  # a container's arbitrary uid, with HOME unset: no home folder for the cache
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_user)
    for name in ("HOME", "NEURALAB_DATA", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    _no_system_copy(monkeypatch, tmp_path)
    assert main(["data", "fetch", "mnist"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "set NEURALAB_DATA to a folder to keep the datasets in (or set HOME)" in err
