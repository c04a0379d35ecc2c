"""Where a classifier run's data is: the ClassifierConfig the run was made with, read from its
config.json (``stored_config``), and the place its pictures are found now (``data_place``).

Apart from trained_classifier and evaluate because these read files alone, and the web app
asks them whether a run can be resumed each time its page looks: importing torch for that
took a second and 180 MB of the server's memory.
"""

from __future__ import annotations

from pathlib import Path

from neuralab import runs
from neuralab.errors import NeuralabError
from neuralab.runs import Run
from neuralab.training.config import ClassifierConfig


def stored_config(run: Run) -> ClassifierConfig:
    """The ClassifierConfig a run was made with, from its config.json; for a run of Keras's
    fit, its model and the dataset it names (RunLogger's ``data``)."""
    from neuralab.data import NAMED

    if run.by_keras_fit:
        config = run.record["config"]
        data = str(config.get("data") or "")
        if not data:  # Path("") is the current folder: no data is no folder
            raise NeuralabError(f"{run.path}: Keras's fit wrote this run (RunLogger) without naming its data; give "
                                "RunLogger `data` (mnist, fashion-mnist, cifar10 or an image folder) in the next "
                                "fit, or evaluate the model in Python")
        if data not in NAMED and not Path(data).is_dir():
            raise NeuralabError(f"{run.path}: Keras's fit wrote this run (RunLogger), and its data {data!r} is "
                                "neither a dataset's name (mnist, fashion-mnist, cifar10) nor an image folder here")
        return ClassifierConfig(model=str(config.get("model")), data=data)
    try:
        return ClassifierConfig.from_dict(run.record["config"])
    except (KeyError, TypeError) as e:
        raise NeuralabError(f"{run / runs.CONFIG}: not a config neuralab wrote ({e}); the file is damaged") from None


def data_place(config, data_dir: str | None = None) -> tuple[str, str | None]:
    """Where a classifier run of ``config`` finds its data now, as load_image_data's (name,
    data_dir): an image folder where config.json says it was or, where it moved since, at its new
    place, ``data_dir``; a named dataset in ``data_dir`` where given, else where the run found it."""
    from neuralab.data import NAMED

    if config.data not in NAMED and data_dir is not None:  # an image folder that moved: `data_dir` is where it is now
        return data_dir, None
    if config.data not in NAMED and not Path(config.data).expanduser().is_dir():
        raise NeuralabError(f"{config.data}: the run's image folder is not there any more; if it moved, give its "
                            "new place as `data_dir`")
    return config.data, data_dir or config.data_dir
