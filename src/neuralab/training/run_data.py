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
    if run.by_keras_fit:
        config = run.record["config"]
        refusal = keras_fit_data_refusal(run)
        if refusal:
            raise NeuralabError(refusal)
        return ClassifierConfig(model=str(config.get("model")), data=str(config["data"]))
    try:
        return ClassifierConfig.from_dict(run.record["config"])
    except (KeyError, TypeError) as e:
        raise NeuralabError(f"{run / runs.CONFIG}: not a config neuralab wrote ({e}); the file is damaged") from None


def keras_fit_data_refusal(run: Run) -> str | None:
    """Why the pictures of a run of Keras's fit cannot be read again (RunLogger's ``data`` names
    no dataset or image folder here), in one line that says what can be done instead; None where
    they can."""
    from neuralab.data import NAMED

    data = str(run.record["config"].get("data") or "")
    if data in NAMED or (data and Path(data).is_dir()):  # Path("") is the current folder: no data is no folder
        return None
    what = ("without naming its data" if not data else
            f"and its data {data!r} is neither a dataset's name (mnist, fashion-mnist, cifar10) nor an image folder here")
    # fit's arrays are the pictures as the model takes them (padded, resized): a dataset named in a later fit
    # need not be, so the way on is the test figures results.json keeps, or the model in Python
    tested = runs.json_object(run.record.get("data")).get("test")
    kept = "its test figures are those of fit's `test=`, which results.json keeps; " if tested else ""
    return (f"{run.path}: Keras's fit wrote this run (RunLogger) {what}, so its test pictures cannot be read "
            f"again; {kept}to test the model on other pictures, give them, uint8 (N, C, H, W) of the size fit took, to "
            "neuralab.load_classifier(run).predict_proba")


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
