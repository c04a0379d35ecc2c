"""Users' own images in class folders, as Keras' image_dataset_from_directory and
torchvision's ImageFolder read them:

    root/
      cat/  001.png  002.jpg ...
      dog/  a.jpeg ...

Class names are the sub-folder names, sorted; a folder already split into a dataset's train/ and
test/ (root/train/CLASS/..., root/test/CLASS/...) is refused, naming root/train. A class's
pictures are every PNG, JPEG, GIF, BMP, TIFF, WebP, PGM or PPM file in its folder and in the
folders below it, as Keras and torchvision read them; hidden files and folders are left out, as
are the __MACOSX folders of macOS's zip files. Links to folders are not followed (they are
reported like unreadable files), and pictures in formats neuralab does not open (an iPhone's
HEIC) are named in a warning.
Images are decoded safely (data.pictures), converted to grayscale or RGB, resized, and split
per class into train / validation / test with a seeded permutation (stratified: every split
keeps the class proportions). Files that cannot be read are reported by path and count;
``on_error`` says whether the load refuses ("refuse", the default) or leaves them out
("skip", with a warning and the list kept in ``FolderData.skipped``). Nothing is ever dropped silently.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neuralab.data import COLORS, ON_ERROR, TEST_FRACTION, VAL_FRACTION
from neuralab.data.images import ImageData, Split
from neuralab.data.pictures import (FORMAT_NAMES, MAX_SIDE, OTHER_SUFFIXES, has_transparency, picture_size,
                                    picture_suffixes, read_image)
from neuralab.errors import NeuralabError, ParameterError, user_stacklevel
from neuralab.files import inside

# Bytes of pixels a folder dataset may hold in memory (uint8): a few small files of large
# pictures must be refused before they are decoded, not when the model's first layer is built
MAX_BYTES = 4 * 2**30
# A dataset's split folder, by its whole name, case aside: a split word with a prefix and a
# number or not (train/, test/, val/ of Kaggle and ImageFolder; Training/, Testing/; seg_train/;
# train1/, dev/); a word only inside a name (test_tube/, training_shoes/, contest/, valve/) is a class's
SPLIT_NAME = re.compile(r"(?:[a-z]+[_-])?(train|training|test|testing|val|valid|validation|dev)\d*", re.IGNORECASE)


def hidden(name: str) -> bool:
    """Whether a file or folder is no part of a dataset: hidden (.DS_Store, .ipynb_checkpoints,
    macOS's ._name twins) or the __MACOSX folder that macOS's zip files unpack to, which holds
    only those twins and became a class of its own."""
    return name.startswith(".") or name == "__MACOSX"


class SkippedImagesWarning(UserWarning):
    """Some pictures were left out: unreadable ones (on_error="skip"), those in formats neuralab
    does not open, and those beside the class folders."""


@dataclass(repr=False)  # ImageData's: what the folder holds, not its pixels
class FolderData(ImageData):
    root: str = ""
    # (path, why) of every picture left out: unreadable, in a format neuralab does not open, or in no class
    skipped: list[tuple[str, str]] = field(default_factory=list)


def list_pictures(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """The picture files in ``folder`` and all the folders below it, sorted, leaving out hidden
    files and folders; the links to folders met on the way, which are not followed (one may
    loop, or lead out of the dataset); and the pictures in formats neuralab does not open (an
    iPhone's HEIC), which a caller names rather than drops without a word, as it drops notes.txt."""
    def refuse(error: OSError):
        raise NeuralabError(f"{error.filename}: cannot list the folder ({error.strerror})")

    suffixes = picture_suffixes()
    found, links, others = [], [], []
    for top, folders, files in os.walk(folder, onerror=refuse):
        folders[:] = [name for name in folders if not hidden(name)]
        links += [Path(top, name) for name in folders if Path(top, name).is_symlink()]
        for name in files:
            suffix = os.path.splitext(name)[1].lower()
            if not hidden(name) and (suffix in suffixes or suffix in OTHER_SUFFIXES):
                (found if suffix in suffixes else others).append(Path(top, name))
    return sorted(found), sorted(links), sorted(others)


def _listed(paths: list, shown: int = 3) -> str:
    return ", ".join(str(p) for p in paths[:shown]) + (", ..." if len(paths) > shown else "")


def list_images(root: Path) -> tuple[list[str], list[tuple[Path, int]], list[Path]]:
    """Class names, (path, label) for every picture under ``root``/CLASS/ (sorted), and the links
    to folders in the class folders, which are not followed."""
    return _listing(root)[:3]


def _listing(root: Path) -> tuple[list[str], list[tuple[Path, int]], list[Path], list[tuple[str, str]]]:
    """``list_images``, and (path, why) of the pictures it leaves out with a warning: those
    beside the class folders, in no class, and those in formats neuralab does not open."""
    if not root.is_dir():
        raise NeuralabError(f"{root}: no such folder; give a folder with one sub-folder of images per class")
    folders = [d for d in root.iterdir() if d.is_dir() and not hidden(d.name)]
    # a class folder that is a link is a link to a folder like any other: not followed (one to a
    # class beside it made a second class of the same pictures, in training and test alike)
    class_links = sorted(d for d in folders if d.is_symlink())
    classes = sorted(d.name for d in folders if not d.is_symlink())
    suffixes = picture_suffixes()
    # a picture beside the class folders belongs to no class: said, not dropped without a word
    loose = sorted(f.name for f in root.iterdir() if not hidden(f.name)
                   and (f.suffix.lower() in suffixes or f.suffix.lower() in OTHER_SUFFIXES) and f.is_file())
    for name in classes:
        try:
            name.encode()
        except UnicodeEncodeError:
            raise NeuralabError(f"{root / name}: the class folder's name is not UTF-8 text, and it becomes the "
                                "class's label in runs, reports and the web app; rename the folder") from None
    if len(classes) < 2:
        try:
            inner = sorted(d.name for d in (root / classes[0]).iterdir() if d.is_dir() and not hidden(d.name)) \
                if classes else []
        except OSError:  # an unreadable folder: the refusal below says what it needs without the hint
            inner = []
        # a zip file that held the dataset's folder unpacks to root/NAME/CLASS/...
        wrapped = f"; if {', '.join(inner[:3])}{', ...' if len(inner) > 3 else ''} are the classes, give " \
                  f"{root / classes[0]}" if len(inner) >= 2 else ""
        linked = (f"; {_listed([d.name for d in class_links])}: links to folders, which are not followed, so "
                  "copy their pictures in") if class_links else ""
        beside = (f"; its {len(loose)} picture(s) ({_listed(loose)}) belong in a sub-folder named after their "
                  "class") if loose else ""
        raise NeuralabError(f"{root}: found {len(classes)} class folder(s); a classifier needs at least 2 "
                            f"(root/CLASS_NAME/*.png|jpg){wrapped}{linked}{beside}")
    _check_classes_are_not_splits(root, classes)
    if loose:
        warnings.warn(f"{root}: left out {len(loose)} picture(s) beside the class folders, which belong to no class "
                      f"({_listed(loose)}); move each into its class's folder to train on it", SkippedImagesWarning,
                      stacklevel=user_stacklevel())
    files, links, unopened = [], list(class_links), []
    for label, name in enumerate(classes):
        found, linked, others = list_pictures(root / name)
        if not found and not linked:
            if others:
                kept = (f"; its {len(others)} picture(s) ({_listed([p.name for p in others])}) are in formats "
                        "neuralab does not open: convert them to PNG or JPEG")
            else:
                plain = sorted(f.name for f in (root / name).iterdir() if f.is_file() and not hidden(f.name))
                kept = (f"; pictures are told by their names' endings (.png, .jpg, ...), and its {len(plain)} "
                        f"file(s) ({_listed(plain)}) have none of them: rename those that are pictures") if plain \
                    else "; add pictures to it or remove the folder"
            raise NeuralabError(f"{root / name}: no pictures ({FORMAT_NAMES}) in class folder {name!r} "
                                f"or the folders below it{kept}")
        files += [(p, label) for p in found]
        links += linked
        unopened += others
    if unopened:
        warnings.warn(f"{root}: left out {len(unopened)} picture(s) in formats neuralab does not open "
                      f"({_listed([p.relative_to(root) for p in unopened])}); convert them to PNG or JPEG to "
                      "train on them", SkippedImagesWarning, stacklevel=user_stacklevel())
    left_out = ([(str(root / name), "beside the class folders, in no class; move it into its class's folder")
                 for name in loose] +
                [(str(path), f"a format neuralab does not open ({path.suffix}); convert it to PNG or JPEG")
                 for path in unopened])
    return classes, files, links, left_out


def _check_classes_are_not_splits(root: Path, classes: list[str]) -> None:
    """Refuse a folder already split into a dataset's train/ and test/ (root/train/CLASS/...,
    root/test/CLASS/..., as Kaggle and torchvision's ImageFolder lay them out, with folders such as
    Kaggle's sample_submission/ or Intel's seg_pred/ beside them): read as classes, they trained a
    model to tell the training pictures from the test ones, silently. A train folder of classes
    and no picture of its own must stand beside a test, validation or dev folder of classes (or,
    as Kaggle's, of unlabelled pictures only); a split-named folder of pictures mixed with
    folders may be a class of trains, and a dataset sorted below its classes (root/cat/flickr,
    root/dog/flickr) is a layout Keras and torchvision read as it is."""
    suffixes = picture_suffixes() | OTHER_SUFFIXES
    splits = {}
    for name in classes:
        word = SPLIT_NAME.fullmatch(name)
        if not word:
            continue
        try:  # scandir: a class of many pictures is not stat'ed twice (list_pictures reads them)
            with os.scandir(root / name) as entries:
                entries = [e for e in entries if not hidden(e.name)]
                inner = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
                own = any(os.path.splitext(e.name)[1].lower() in suffixes for e in entries if not e.is_dir())
        except OSError:  # an unreadable class folder: list_pictures refuses it by its name
            return
        training = word.group(1).lower() in ("train", "training")
        if inner and not own or own and not inner and not training:
            splits[name] = (training, inner)
    train = next((name for name, (training, _) in splits.items() if training), None)
    if train is None or len(splits) < 2:
        return
    given, inner = root / train, splits[train][1]
    if len(inner) == 1 and SPLIT_NAME.fullmatch(inner[0]):
        # Intel's zip unpacks to seg_train/seg_train/CLASS: the classes lie one folder further down
        given = given / inner[0]
        try:
            inner = sorted(d.name for d in given.iterdir() if d.is_dir() and not hidden(d.name))
        except OSError:
            pass
    raise NeuralabError(f"{root}: its class folders ({_listed(list(splits))}) are a dataset's splits, not its "
                        f"classes; give {given} as `data`, whose folders ({_listed(inner)}) are the classes: "
                        "neuralab holds out validation and test pictures from it itself")


def _stratified(y: np.ndarray, val_fraction: float, test_fraction: float, seed: int):
    rng = np.random.default_rng(seed)
    order = [rng.permutation(np.flatnonzero(y == label)) for label in np.unique(y)]
    sizes = np.array([len(idx) for idx in order])
    # every class keeps at least one training image
    n_test = _shares(sizes, test_fraction, sizes - 1, seed)
    # rounded per class, as every earlier version did: a run's split, made again, is the one it recorded
    n_val = np.minimum(np.round(sizes * val_fraction).astype(int), sizes - 1 - n_test)
    parts = ([idx[t + v:] for idx, t, v in zip(order, n_test, n_val)],
             [idx[t:t + v] for idx, t, v in zip(order, n_test, n_val)],
             [idx[:t] for idx, t in zip(order, n_test)])
    return tuple(np.sort(np.concatenate(p)) for p in parts)


def _shares(sizes: np.ndarray, fraction: float, room: np.ndarray, seed: int | None) -> np.ndarray:
    """Each class's share of the test set: its size times ``fraction``, rounded, at most ``room``.
    Where every share rounds to none although the whole split would not (1,000 classes of 5
    pictures at 0.1), the split's rounded total goes one picture each to classes drawn with
    ``seed``, so that a folder of many small classes still has pictures to score the model
    (earlier versions refused such a folder: no run recorded another split of it)."""
    shares = np.minimum(np.round(sizes * fraction).astype(int), room)
    total = int(round(sizes.sum() * fraction))
    if shares.sum() == 0 and total > 0:
        # its own generator: the classes' orders drawn before stay those every earlier run drew
        rng = np.random.default_rng(None if seed is None else [seed, 1])
        drawn = [c for c in rng.permutation(len(sizes)) if room[c] > 0][:total]
        shares[drawn] = 1
    return shares


def load_image_folder(root: str | os.PathLike, image_size: tuple[int, int] | None = None, color: str = COLORS[0],
                      val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION, seed: int = 0,
                      on_error: str = ON_ERROR[0]) -> FolderData:
    """Images under ``root``/CLASS/ as (N, C, H, W) uint8 splits.

    image_size: (height, width) to resize every image to; None keeps the size, which must then
        be the same for all images.
    color: "grayscale" (C=1), "rgb" (C=3), or "auto": grayscale when every image is, else RGB,
        every picture then read as colour, as a colour model's are read to be classified
        (``Classifier.load_images``): a grey one's transparent pixels on the same page.
    on_error: with unreadable images, "refuse" raises a NeuralabError giving their count and the
        first few paths; "skip" leaves them out with a SkippedImagesWarning and lists them all
        in the result's ``skipped``.
    """
    if color not in COLORS:
        raise ParameterError("color", color, f"choose one of {', '.join(COLORS)}")
    if on_error not in ON_ERROR:
        raise ParameterError("on_error", on_error, f"choose one of {', '.join(ON_ERROR)}")
    if image_size is not None and not _is_size(image_size):
        # checked before any picture is resized to it: 60000x60000 took 10 GB before it was refused
        raise ParameterError("image_size", image_size, f"expected (height, width), whole numbers of pixels "
                                                       f"from 1 to {MAX_SIDE}")
    for parameter, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ParameterError(parameter, value, "must be in [0, 1)")
    if val_fraction + test_fraction >= 1.0:
        raise NeuralabError(f"`val_fraction` {val_fraction} + `test_fraction` {test_fraction}: "
                            "must leave some images for training (sum below 1)")
    root = Path(root)
    classes, files, links, left_out = _listing(root)

    mode = {"grayscale": "L", "rgb": "RGB", "auto": None}[color]

    def check_bytes(height: int, width: int, channels: int) -> None:
        # every listed picture's row, checked before _Rows allocates them (one byte a pixel while all
        # are grey, three from the first colour picture, which makes every grey one RGB): allocated
        # first, a folder too large gave the out-of-memory error's advice of a smaller batch, which no
        # batch size cures
        if len(files) * height * width * channels > MAX_BYTES:
            raise NeuralabError(f"{root}: its {len(files):,} images take more than {MAX_BYTES // 2**30} GB of memory "
                                f"at {height}x{width} pixels; pass a smaller `image_size`, or train on fewer images")

    if image_size is not None:  # known before any picture is decoded
        check_bytes(*image_size, 3 if mode == "RGB" else 1)
    rows, labels, kept = _Rows(len(files)), [], []
    skipped = [(str(link), "a link to a folder, which is not followed; copy its pictures in instead")
               for link in links]
    for path, label in files:
        try:
            inside(root, path.relative_to(root))
        except NeuralabError:
            skipped.append((str(path), f"a link that leads out of {root}"))
            continue
        try:
            img = read_image(path, mode, size=image_size)
        except NeuralabError as e:
            skipped.append((str(path), str(e).removeprefix(f"{path}: ")))
            continue
        if max(img.shape[:2]) > MAX_SIDE:  # the file's own size: a large JPEG was decoded at a fraction of it
            width, height = picture_size(path)
            raise NeuralabError(f"{path}: {width}x{height} pixels, more than the {MAX_SIDE} a side that "
                                "neuralab's classifiers take; pass `image_size` to resize every image")
        if not kept or (mode is None and img.ndim == 3):  # the first picture, the first colour one
            check_bytes(*img.shape[:2], 3 if img.ndim == 3 else 1)
        rows.add(img)
        labels.append(label)
        kept.append(path)
        if mode is None and img.ndim == 3:
            # the folder is colour: a grey picture read in one channel had its transparent pixels laid
            # on the page read_image gives one channel (black under light strokes), and predict, reading
            # it for the colour model, laid them on white; those read so far with transparency are read
            # again as colour (any other grey picture is the same in three channels: a dataset of grey
            # pictures with one colour one was decoded twice)
            mode = "RGB"
            for row, earlier in enumerate(kept[:-1]):
                if has_transparency(earlier):
                    rows.put(row, read_image(earlier, mode, size=image_size))
    if skipped:
        total = len(files) + len(links)
        listed = "; ".join(f"{p} ({why})" for p, why in skipped[:3]) + ("; ..." if len(skipped) > 3 else "")
        if on_error == "refuse":
            raise NeuralabError(f"{root}: {len(skipped)} of {total} images cannot be read: {listed}; "
                                "fix or remove them, or pass `on_error` skip to leave them out")
        warnings.warn(f"{root}: skipped {len(skipped)} of {total} images that cannot be read: {listed}",
                      SkippedImagesWarning, stacklevel=user_stacklevel())
    y = np.asarray(labels, dtype=np.int64)
    empty = [classes[i] for i in range(len(classes)) if not (y == i).any()]
    if empty:
        raise NeuralabError(f"{root}: no readable images left in class folder(s) {', '.join(empty)}; put pictures "
                            "there that can be read, or move the folder out of the dataset")
    parts = _stratified(y, val_fraction, test_fraction, seed)
    _warn_unsplit(root, classes, y, ("validate", parts[1]), ("test", parts[2]))
    # the pictures left out without being read, named in their own warning, are recorded too
    return FolderData(root.resolve().name, classes, *rows.splits(y, parts, root), root=str(root),
                      skipped=skipped + left_out)


def _warn_unsplit(root: Path, classes: list[str], y: np.ndarray, *splits) -> None:
    """One warning naming the classes left with no pictures in a validation or test split that
    has some (a class of 2 pictures among 500 keeps both for training): the model is not scored
    on them there, and a report shows their scores as n/a. ``splits``: (verb, indices) each."""
    sizes = np.bincount(y, minlength=len(classes))
    lacking = [[name for name, indices in splits if len(indices) and not (y[indices] == label).any()]
               for label in range(len(classes))]
    missing = [f"{c} ({n} picture{'s' if n != 1 else ''}: none to {' or '.join(names)} on)"
               for c, n, names in zip(classes, sizes, lacking) if names]
    if missing:
        warnings.warn(f"{root}: {len(missing)} class(es) too small to split: {_listed(missing)}; the model's scores "
                      "say nothing of them there: add pictures to those classes", stacklevel=user_stacklevel())


def _is_size(image_size) -> bool:
    """Whether ``image_size`` is (height, width) in whole pixels that a classifier takes."""
    return (isinstance(image_size, (tuple, list)) and len(image_size) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE
                    for v in image_size))


class _Rows:
    """A folder's pictures, (H, W) or (H, W, 3) uint8 as read, held as the rows of one
    (capacity, C, H, W) array, grayscale ones made RGB when any is RGB, and split without a copy
    (``splits``). Its pixels are held once: a list of the pictures, their stack, its
    channels-first copy and the splits' copies held 3x as many at the peak, 12 GB for a folder
    within MAX_BYTES. Rows of pictures never read (skipped) are never written, so the memory
    they would take is never used."""

    def __init__(self, capacity: int):
        self.capacity, self.x, self.count, self.sizes = capacity, None, 0, set()

    def add(self, image: np.ndarray) -> None:
        self.sizes.add(image.shape[:2])
        if len(self.sizes) > 1:  # refused by ``splits``, which names the sizes of all the pictures
            return
        channels = 3 if image.ndim == 3 else 1
        if self.x is None:
            self.x = np.empty((self.capacity, channels, *image.shape[:2]), np.uint8)
        elif channels > self.x.shape[1]:  # the first colour picture: every grey one before it to RGB
            grown = np.empty((self.capacity, channels, *image.shape[:2]), np.uint8)
            grown[:self.count] = self.x[:self.count]
            self.x = grown
        self.x[self.count] = image if image.ndim == 2 else image.transpose(2, 0, 1)  # grey: into every channel
        self.count += 1

    def put(self, row: int, image: np.ndarray) -> None:
        """Row ``row``, added before, replaced by ``image`` of the same size (read again)."""
        if len(self.sizes) == 1 and image.shape[:2] == self.x.shape[2:]:  # else refused by ``splits``
            self.x[row] = image if image.ndim == 2 else image.transpose(2, 0, 1)

    def splits(self, y: np.ndarray, parts, root: Path) -> list[Split]:
        """A Split for each array of indices in ``parts`` (train, validation, test), which take
        every picture once: the rows put in that order in place, each split a view of its own."""
        if len(self.sizes) > 1:
            sizes = sorted(self.sizes)
            raise NeuralabError(f"{root}: images differ in size ({', '.join(f'{h}x{w}' for h, w in sizes[:4])}"
                                f"{', ...' if len(sizes) > 4 else ''}); pass `image_size` to resize them all")
        order = np.concatenate(parts)
        _permute_rows(self.x, order)
        ends = np.cumsum([0] + [len(p) for p in parts])
        return [Split(self.x[a:b], y[p]) for a, b, p in zip(ends, ends[1:], parts)]


def _permute_rows(x: np.ndarray, order: np.ndarray) -> None:
    """``x[:len(order)] = x[order]`` in place, ``order`` being a permutation of its indices,
    with one row held aside at a time, not a copy of them all: each cycle of the permutation
    is walked from its first row, which waits aside until the cycle comes back to it."""
    done = np.zeros(len(order), dtype=bool)
    for start in range(len(order)):
        if done[start]:
            continue
        aside, at = x[start].copy(), start
        while True:
            done[at] = True
            source = int(order[at])
            if source == start:
                x[at] = aside
                break
            x[at] = x[source]
            at = source
