"""Where dataset files come from, in this order: an explicit directory, the user's cache
($NEURALAB_DATA, default ~/.cache/neuralab), a system data directory that a Debian package
installs, and last a download from the official mirrors into the cache.

Each file is pinned by a SHA-256: of its *decompressed* content for IDX files, so a
re-compressed copy of the same data verifies and any change to the data does not; of the
bytes as published for archives (CIFAR-10), whose published digest is of the .tar.gz.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from neuralab.errors import NeuralabError, ParameterError, did_you_mean
from neuralab.files import WriteError, atomic_write, folder_from_env


@dataclass(frozen=True)
class Source:
    name: str
    title: str
    classes: tuple[str, ...]
    files: dict[str, str]  # file name as published -> SHA-256 (see ``checksum``)
    mirrors: tuple[str, ...]
    input_shape: tuple[int, int, int]  # (channels, height, width) of its pictures
    checksum: str = "content"  # "content": of the decompressed bytes; "file": of the bytes as published
    system_dirs: tuple[str, ...] = ()
    debian_package: str | None = None
    citation: str = ""  # the paper its authors ask to be cited; `neuralab data list` shows it


SOURCES: dict[str, Source] = {}
MAX_DOWNLOAD = 1024 * 2**20  # bytes: CIFAR-10's archive, the largest file, takes 163 MB


def other_pictures(name, input_shape) -> tuple[int, int, int] | None:
    """The (channels, height, width) of the pictures of the dataset ``name`` where a model taking
    ``input_shape`` does not take them (MNIST's 28x28 for a LeNet-5 fitted on them padded to 32x32);
    None where it does, where ``name`` names no dataset, or where the model leaves a side open."""
    source = SOURCES.get(name) if isinstance(name, str) else None
    shape = tuple(input_shape or ())
    if source is None or None in shape or tuple(source.input_shape) == shape:
        return None
    return source.input_shape


def register(source: Source) -> Source:
    SOURCES[source.name] = source
    return source


register(Source(
    name="mnist",
    input_shape=(1, 28, 28),
    title="MNIST handwritten digits (LeCun, Cortes, Burges)",
    classes=tuple(str(d) for d in range(10)),
    files={
        "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    system_dirs=("/usr/share/datasets/mnist",),
    citation="Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning applied to document recognition. 1998.",
))

register(Source(
    name="fashion-mnist",
    input_shape=(1, 28, 28),
    title="Fashion-MNIST (Zalando Research)",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    files={
        "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    debian_package="dataset-fashion-mnist",
    citation="H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST: a novel image dataset for benchmarking machine learning algorithms. 2017.",
))

register(Source(
    name="cifar10",
    title="CIFAR-10 tiny images, binary version (Krizhevsky, Nair, Hinton)",
    classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    # The published digest of the .tar.gz (170,052,171 bytes; torchvision lists MD5 c32a1d4a...).
    files={"cifar-10-binary.tar.gz": "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"},
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    checksum="file",
    citation="A. Krizhevsky. Learning multiple layers of features from tiny images. Tech. report, U. Toronto, 2009.",
    input_shape=(3, 32, 32),
))


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise NeuralabError(f"unknown dataset {name!r}; {did_you_mean(name, SOURCES)}choose one of: "
                            f"{', '.join(sorted(SOURCES))}") from None


class NoCacheFolder(NeuralabError):
    """The data cache has no folder: none is set and the user has no home folder to hold it."""


def cache_dir() -> Path:
    """The user's data cache: $NEURALAB_DATA, else $XDG_CACHE_HOME/neuralab, else ~/.cache/neuralab;
    ``NoCacheFolder`` where none is set and there is no home folder."""
    given = folder_from_env("NEURALAB_DATA")
    if given is not None:
        return given
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        home = _home()
        if home is None:
            raise NoCacheFolder("no folder for the data cache: HOME is not set (or empty) and this user has no home "
                                "folder on this machine; set NEURALAB_DATA to a folder to keep the datasets in (or "
                                "set HOME)")
        base = Path(home) / ".cache"
    return Path(base) / "neuralab"


def _home() -> str | None:
    """The user's home folder: $HOME, else the passwd file's; None where neither gives one (a
    container run with an arbitrary uid: pathlib's Path.home() raised a traceback there, and an
    empty HOME made os.path's "~" the root folder)."""
    home = os.environ.get("HOME")
    if not home:
        try:
            import pwd

            home = pwd.getpwuid(os.getuid()).pw_dir
        except (ImportError, KeyError):  # no passwd on Windows; a uid in none
            return None
    return home if os.path.isabs(home) else None


def _cache_or_none() -> Path | None:
    """``cache_dir``, None where it has no folder: a place to look in that is not there."""
    try:
        return cache_dir()
    except NoCacheFolder:
        return None


def _whose_cache() -> str:
    """Where ``cache_dir`` came from, and how to choose another, for a message."""
    given = os.environ.get("NEURALAB_DATA")
    if not given:
        return "or set NEURALAB_DATA"
    cache = cache_dir()
    if cache.is_dir():  # a folder set on purpose: only how to choose another
        return f"NEURALAB_DATA={given} chooses it"
    missing = "a file, not a folder" if cache.exists() else "a folder that does not exist"
    return f"NEURALAB_DATA={given} is used, {missing}: fix or unset it"


def file_in(directory: Path, filename: str) -> Path | None:
    """The file as published (``x.gz``) or decompressed (``x``), whichever is there."""
    for candidate in (directory / filename, directory / filename.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _complete(source: Source, directory: Path) -> bool:
    return all(file_in(directory, f) for f in source.files)


def candidates(source: Source) -> list[Path]:
    cache = _cache_or_none()
    return ([] if cache is None else [cache / source.name]) + list(map(Path, source.system_dirs))


def locate(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The directory holding every file of dataset ``name``; a clear error when there is none.

    An explicit ``data_dir`` is the only place looked at: a user who names a directory means it.
    """
    source = get_source(name)
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser()
        nested = data_dir / name
        for d in (data_dir, nested):
            if _complete(source, d):
                return d
        missing = [f for f in source.files if not file_in(data_dir, f)]
        # a folder that is not there is said: "missing train-images..." alone sends one looking for files
        where = "" if data_dir.is_dir() else " (it is a file)" if data_dir.exists() else " (no such folder)"
        raise ParameterError("data_dir", str(data_dir), f"missing {', '.join(missing)} for {name}{where}; give "
                                                        "the folder that holds them")
    for d in candidates(source):
        if _complete(source, d):
            return d
    raise NeuralabError(_not_found_message(source))


def _not_found_message(source: Source, fetching: bool = False, damaged: str | None = None) -> str:
    """How to get a dataset; when ``fetching`` failed, the ways that need no download. ``damaged``:
    the cache's file that could not be downloaded again, the one to copy there; the cache was the
    folder looked in, so NEURALAB_DATA is not the fault."""
    ways = [] if fetching else [f"fetch it (`neuralab data fetch {source.name}`, or neuralab.data.fetch; needs internet)"]
    cache = _cache_or_none()
    if cache is None:  # no home folder: the cache is only where the user sets it, for a fetch as for a copy
        ways = [f"set NEURALAB_DATA to a folder to keep the datasets in (HOME is not set (or empty), and this user has no "
                f"home folder for the cache), then {' or '.join(ways + [f'copy the files into its {source.name} folder'])}"]
    else:
        cache = cache.absolute() / source.name
        ways.append(f"copy an intact {damaged} into {cache}" if damaged
                    else f"copy the files into {cache} ({_whose_cache()})")
    ways += ["point `data_dir` at the folder holding them",
             # an offline node's user cannot look the names up, nor fetch them there
             f"the files: {', '.join(source.files)} (on a machine with internet, `neuralab data fetch "
             f"{source.name}` puts them in the folder `neuralab data path {source.name}` prints)"]
    if source.debian_package:
        ways.append(f"on Debian/Ubuntu: apt-get install {source.debian_package}")
    return f"dataset {source.name} not found; to get it: " + "; ".join(ways)


def sha256(path: Path, checksum: str = "content") -> str:
    """SHA-256 of the file's decompressed content, or of its bytes as stored (``checksum="file"``)."""
    from neuralab.data.idx import read_bytes

    if checksum == "content":
        return hashlib.sha256(read_bytes(path)).hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class CopyMended(UserWarning):
    """A decompressed copy in the cache held other bytes than its file, and was written again."""


def _matches(source: Source, directory: Path, filename: str) -> bool:
    """Whether ``directory``'s copy of ``filename`` has the file's pinned SHA-256. A .gz's
    decompressed copy in the cache, which runs read in its place, is checked against its content
    while that is in hand (``idx.mend_copy``): one damaged is written again, and said."""
    path = file_in(directory, filename)
    if source.checksum != "content":
        return sha256(path, source.checksum) == source.files[filename]
    import warnings

    from neuralab.data.idx import mend_copy, read_bytes
    from neuralab.data.images import decompressed_dir

    data = read_bytes(path)
    mended = mend_copy(path, decompressed_dir(), data)
    if mended is not None:
        warnings.warn(f"{mended}: the cache's decompressed copy of {path} held other bytes than the file (damaged "
                      "on disk); written again from the file", CopyMended, stacklevel=3)
    return hashlib.sha256(data).hexdigest() == source.files[filename]


def verify(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, bool]:
    """Check every file of ``name`` against its pinned SHA-256; returns file -> ok."""
    source = get_source(name)
    directory = locate(name, data_dir)
    return {f: _matches(source, directory, f) for f in source.files}


def _intact(source: Source, directory: Path, filename: str) -> bool:
    """Whether ``directory`` holds ``filename`` as ``verify`` would pass it: not another SHA-256,
    nor a .gz cut short (a copy to an offline node stopped), which cannot be read whole."""
    if file_in(directory, filename) is None:
        return False
    try:
        return _matches(source, directory, filename)
    except NeuralabError:  # damaged gzip data: read_bytes's refusal
        return False


def _damaged(source: Source, directory: Path) -> list[str]:
    """The files of the complete copy in ``directory`` that ``verify`` would not pass."""
    return [filename for filename in source.files if not _intact(source, directory, filename)]


def _mended(source: Source, target: Path, filename: str) -> bool:
    """Whether an intact ``filename`` found in a system package's folder was copied into the
    cache ``target`` over its damaged copy: ``locate`` takes the cache first, so the cache is
    what must be intact, and an offline machine needs no download for it."""
    for folder in map(Path, source.system_dirs):
        if not _intact(source, folder, filename):
            continue
        held, kept = file_in(folder, filename), file_in(target, filename)
        with atomic_write(target / held.name, "wb") as f, open(held, "rb") as src:
            shutil.copyfileobj(src, f)
        if kept is not None and kept != target / held.name:
            kept.unlink()  # the other form (.gz or not), damaged, which file_in could find first
        return True
    return False


def fetch(name: str, timeout: float = 30.0) -> Path:
    """The folder of ``name``'s files: a complete copy where one is found already (the cache, a
    system package's folder, as ``locate`` looks) whose files ``verify`` passes, else the cache:
    its damaged files copied from a system package's intact ones where it has them, the rest, and
    the missing files, downloaded, verified and each written atomically."""
    source = get_source(name)
    cache = _cache_or_none()
    target = cache / source.name if cache is not None else None
    again: list[str] = []
    for found in candidates(source):
        if not _complete(source, found):
            continue
        again = _damaged(source, found)
        if not again:  # an offline machine with the Debian package has nothing to download
            return found
        if found != target:  # a package's folder is not ours to write: the cache, ahead of it, gets the files
            again = []
        break
    if target is None:  # no copy found and nowhere to download one: cache_dir says what to set
        cache_dir()
    if again:  # the cache's damaged files: from an intact copy a system package holds first, with no download
        again = [filename for filename in again if not _mended(source, target, filename)]
        if not again:
            return target
    created = not target.exists()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NeuralabError(f"{target}: cannot create the data cache ({e.strerror}); set NEURALAB_DATA to a "
                            "writable folder") from None
    try:
        _fetch_into(source, target, timeout, again)
    finally:
        if created and not any(target.iterdir()):
            target.rmdir()  # nothing came: leave no empty folder behind
    return target


def _fetch_into(source: Source, target: Path, timeout: float, again: list[str] = ()) -> None:
    """Download into ``target`` the files it lacks, and those named ``again`` (damaged there)."""
    for filename, digest in source.files.items():
        kept = file_in(target, filename)
        if kept and filename not in again:
            continue
        errors = []
        for mirror in source.mirrors:
            try:
                _download(mirror + filename, target / filename, digest, source.checksum, timeout)
                break
            except WriteError:
                raise
            except OSError as e:  # urllib's URLError and timeouts are OSErrors
                errors.append(f"{mirror}: {getattr(e, 'reason', e)}")
            except NeuralabError as e:  # a file that is not the one published: the next mirror may have it
                errors.append(str(e))
        else:
            what = (f"{kept}: damaged (not the published file's SHA-256); could not download it again"
                    if kept else f"could not download {filename} for {source.name}")
            raise NeuralabError(
                f"{what} ({'; '.join(errors)}); "
                + _not_found_message(source, True, filename if kept else None).split("; to get it: ", 1)[1]
            )
        if kept and kept != target / filename:
            kept.unlink()  # the damaged decompressed copy: the .gz downloaded now stands for it


def _download(url: str, dest: Path, digest: str, checksum: str, timeout: float) -> None:
    import urllib.request  # here, not at the top: `neuralab data list` starts faster without it

    try:
        scratch = tempfile.TemporaryDirectory(dir=dest.parent)
    except OSError as e:
        raise WriteError(dest.parent, e) from None
    with scratch as tmp:
        part = Path(tmp) / dest.name
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as f:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                if f.tell() + len(chunk) > MAX_DOWNLOAD:
                    raise NeuralabError(f"{url}: more than {MAX_DOWNLOAD // 2**20:,} MB, larger than any file of "
                                        "the datasets; the file was not kept")
                f.write(chunk)
        got = sha256(part, checksum)
        if got != digest:
            raise NeuralabError(f"{url}: checksum mismatch (SHA-256 {got}, expected {digest}); the file was not kept")
        with atomic_write(dest, "wb") as f, open(part, "rb") as src:
            shutil.copyfileobj(src, f)
