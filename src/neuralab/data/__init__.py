"""Data: image datasets (IDX, CIFAR binary, folders) and time series; where files come from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from neuralab._lazy import exports
from neuralab.errors import NeuralabError, ParameterError, did_you_mean

if TYPE_CHECKING:
    from neuralab.data.images import ImageData

__getattr__, __dir__ = exports(__name__, {
    "load_cifar10": "neuralab.data.cifar",
    **dict.fromkeys(["FolderData", "SkippedImagesWarning", "load_image_folder"], "neuralab.data.folders"),
    **dict.fromkeys(["ImageData", "Split", "load_idx_dataset"], "neuralab.data.images"),
    **dict.fromkeys(["SOURCES", "cache_dir", "fetch", "locate", "verify"], "neuralab.data.sources"),
    **dict.fromkeys(["Series", "load_series"], "neuralab.data.series"),
})

NAMED = ("mnist", "fashion-mnist", "cifar10")
VAL_FRACTION = 0.1  # of the training images held out for validation, seeded: every loader's default
# A folder of images (load_image_folder): how its pictures are read, the first of each the default
COLORS = ("auto", "grayscale", "rgb")  # auto: grayscale when every image is, else RGB
ON_ERROR = ("refuse", "skip")          # what an unreadable picture does to the loading
TEST_FRACTION = 0.1                    # of a folder's pictures held out for the test set (named datasets bring theirs)


def check_data_name(value, parameter: str) -> None:
    """Refuse, naming ``parameter``, data given as anything but a dataset's name or a folder's path.
    A run reads its data again to resume and to test, which arrays in memory (x, y) would not let
    it do: those train on the trainer."""
    if not isinstance(value, (str, os.PathLike)):
        raise ParameterError(parameter, type(value).__name__,
                             f"give a dataset's name ({', '.join(NAMED)}) or a folder of class sub-folders "
                             "(root/CLASS_NAME/*.png|jpg); arrays in memory train on the trainer: "
                             "Trainer(model, TrainConfig()).fit(torch.from_numpy(x), torch.from_numpy(y))")


def load_image_data(name: str, data_dir: str | os.PathLike | None = None,
                    val_fraction: float = VAL_FRACTION, seed: int = 0, *, test_fraction: float | None = None,
                    image_size: tuple[int, int] | None = None, color: str | None = None,
                    on_error: str | None = None) -> ImageData:
    """Load an image dataset with a seeded train/validation split.

    ``name`` is "mnist", "fashion-mnist" or "cifar10" (found by ``sources.locate``, in
    ``data_dir`` when given), or the path of a folder of class sub-folders (root/CLASS/*.png|jpg),
    which ``load_image_folder`` reads with ``test_fraction`` (default TEST_FRACTION, 0.1), ``image_size``
    (height, width), ``color`` ("auto", "grayscale", "rgb") and ``on_error`` ("refuse", "skip").
    A named dataset takes precedence over a folder of the same name: write ./mnist for the folder.
    """
    from neuralab.data.cifar import load_cifar10
    from neuralab.data.folders import load_image_folder
    from neuralab.data.images import load_idx_dataset

    check_data_name(name, "name")
    folder_options = {"test_fraction": test_fraction, "image_size": image_size, "color": color,
                      "on_error": on_error}
    if name in NAMED:
        given = [option for option, value in folder_options.items() if value is not None]
        if given:
            raise NeuralabError(f"`{given[0]}`: applies to image folders only; {name} comes with its own "
                                "test set, image size and colours")
        if name == "cifar10":
            return load_cifar10(data_dir, val_fraction=val_fraction, seed=seed)
        return load_idx_dataset(name, data_dir, val_fraction=val_fraction, seed=seed)
    if Path(name).expanduser().is_dir():
        if data_dir is not None:
            raise ParameterError("data_dir", str(data_dir), f"applies to named datasets; {name} is already a folder")
        return load_image_folder(Path(name).expanduser(), image_size=image_size, color=color or "auto",
                                 val_fraction=val_fraction, seed=seed,
                                 test_fraction=0.1 if test_fraction is None else test_fraction,
                                 on_error=on_error or "refuse")
    if os.sep in str(name) or Path(name).exists():
        raise NeuralabError(f"{name}: not a folder; give a folder with one sub-folder of images per class")
    raise NeuralabError(f"unknown dataset {name!r}; {did_you_mean(name, NAMED)}choose one of: {', '.join(NAMED)}, "
                        "or give a folder of class sub-folders (root/CLASS_NAME/*.png|jpg)")


__all__ = ["FolderData", "ImageData", "NAMED", "SOURCES", "Series", "SkippedImagesWarning", "Split", "cache_dir",
           "fetch", "load_cifar10", "load_image_data", "load_image_folder", "load_series", "locate", "verify"]
