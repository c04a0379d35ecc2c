"""Image classification end to end: load a dataset, build a zoo model, train it on the
trainer, evaluate on the test set and leave a complete run directory behind.

What a run uses lives beside it: what it does to pictures before the model
(training.preprocess), the trained classifier and reading a run back (training.trained_classifier),
and judging a run on its test set and writing its report (training.evaluate).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from neuralab import runs
from neuralab.data.digest import split_record
from neuralab.errors import NeuralabError, ParameterError, by, interrupts_unwrapped, out_of_memory
from neuralab.runs import Kind, Run
from neuralab.training.callbacks import checked_callbacks
from neuralab.training.config import RECIPES, TrainConfig  # noqa: F401  (re-exported; torch-free there)
from neuralab.training.config import (LOSSES, RESUME_FROM, ClassifierConfig, Diverged, before_compile, check_config,
                                      given_fields, replaced, with_compile)
from neuralab.training.evaluate import check_same_data, confusion_matrix, report, run_image_data
from neuralab.training.inputs_check import ModelFailed, check_train_config
from neuralab.training.module_check import one_warning_each
from neuralab.training.preprocess import Preprocess, pixels
from neuralab.training.run_data import data_place, stored_config
from neuralab.training.seeds import generators_kept, seed_everything
from neuralab.training.trained_classifier import checked_meta, given_module, network
from neuralab.training.trainer import CLASSIFICATION, Trainer


SHOWN_EPOCHS = 12  # a result's display lists this many epochs at most: the first and the last half


@dataclass
class RunResult:
    run_dir: Path
    history: list[dict]
    test: dict
    best_epoch: int
    seconds: float
    params: int

    def __repr__(self) -> str:
        # What a notebook cell ending in `result` shows (and the REPL): the figures a reader looks
        # for and one line per epoch, as the training printed them, not a dump of every float
        from neuralab.training.progress import format_metrics

        test = format_metrics({f"test_{k}": v for k, v in self.test.items()})
        lines = [f"RunResult {self.run_dir}: {test}, best epoch {self.best_epoch} of {len(self.history)}, "
                 f"{self.params:,} parameters, {self.seconds:.1f} s of training"]
        epochs = [f"  epoch {r.get('epoch', '?')}  {format_metrics(r)}" for r in self.history]
        if len(epochs) > SHOWN_EPOCHS:
            half = SHOWN_EPOCHS // 2
            epochs[half:-half] = [f"  ... {len(epochs) - 2 * half} more epochs in .history"]
        lines += epochs
        lines.append("fields: run_dir, history (one dict per epoch), test, best_epoch, seconds, params")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Jupyter's display: the text above, then the run's learning curves and confusion matrix
        as its report drew them (nothing is drawn again), where they are still on disk."""
        from neuralab.reports.html import notebook_display

        figures = runs.CLASSIFIER_FIGURES
        return notebook_display(repr(self), Run(self.run_dir), [(figures["learning_curves"], "learning curves"),
                                                               (figures["confusion_matrix"], "confusion matrix")])


def classifier_meta(architecture: str, classes, pre: Preprocess, num_params: int, source: dict | None = None,
                    options: dict | None = None) -> dict:
    """model.json of a classifier run: what rebuilds the model and feeds it raw images.
    ``source`` (training.source's record) says where a model not from the zoo came from;
    ``options`` are a zoo model's (ClassifierConfig.model_options)."""
    meta = {
        "architecture": architecture,
        "options": dict(options or {}),
        "input_shape": list(pre.input_shape),
        "num_classes": len(classes),
        "classes": list(classes),
        "preprocess": pre.stored(),
        "parameters": num_params,
    }
    if source is not None and source.get("type") != "zoo":
        meta["source"] = source
    return meta


@generators_kept()  # the run seeds the generators; the caller's come back after
@one_warning_each()  # each warning about the user's module said once in the run
def train_classifier(config: ClassifierConfig, out: str | Path | None = None, overwrite: bool = False,
                     verbose: bool = True, callbacks=(), optimizer=None, model=None) -> RunResult:
    """Train ``config.model`` on ``config.data``, test it, and leave a run folder; returns the
    run's results and figures (RunResult).

    Parameters:
        config: a ClassifierConfig: the model, the data and the budget (``config.train``).
            ``config.model`` is a zoo name, a Keras file, "FILE.py[:NAME]" (a Keras model or a
            torch.nn.Module), or such a model object. A Keras model trains with its compile()'s
            optimizer, loss and learning rate (and fit()'s epochs and batch size) in the
            TrainConfig fields you did not name: one you named, as ``TrainConfig(epochs=10)``,
            wins at any value.
        out: the run's folder. None: a new one, runs/MODEL-DATA-YYYYmmdd-HHMMSS (under
            $NEURALAB_RUNS where that is set).
        overwrite: replace a finished run already in ``out``; without it such a run is refused.
        verbose: print the model's summary, one line per epoch and the results.
        callbacks: objects the trainer calls as training goes (neuralab.training.callbacks).
        optimizer: an optimizer class or factory in place of ``config.train.optimizer``; the
            run records its name, and is resumed with the same one.
        model: the model in place of ``config.model``, as ``run_forecast(config, model=...)``
            takes one: ``train_classifier(config, model=Net())`` trains what
            ``ClassifierConfig(model=Net(), ...)`` does. A config given a model of its own too
            is refused.

    The run is seeded with ``config.train.seed``; Python's, NumPy's and PyTorch's generators
    are yours again afterwards, as they were before the call."""
    if model is not None:
        check_config(config, ClassifierConfig)
        if "model" in given_fields(config) and config.model is not model:
            # two models given: which one the run trained would be a guess
            raise ParameterError("model", _named(model), f"the config names its own model too, "
                                 f"{_named(config.model)}: give the model once, as `model` or as ClassifierConfig's")
        config = replaced(config, model=model)
    return _train(config, out, overwrite, verbose, callbacks, optimizer)


def _named(model) -> str:
    """``model`` in a refusal: its name or file as given, a class's or function's name, or its
    class's name."""
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    return getattr(model, "__name__", None) or type(model).__name__


def refuse_run_in_data(path: Path, data: str) -> None:
    """Refuse a run folder inside the picture folder ``data``: every folder there is read as a
    class, so a run's folder would become a class of no pictures, or of its report's figures.
    This run's (``data='.'`` with the default ./runs, an ``out`` of DATA/run1), naming `out`;
    one there already (a forecast run started from the folder, one of an earlier version)."""
    from neuralab.data import NAMED
    from neuralab.data.folders import hidden
    from neuralab.run_list import run_within

    folder = Path(data).expanduser()
    if not folder.is_dir() or data in NAMED:
        return
    # realpath, not resolve: a link in a loop as `out` is named as such later (runs.folder_path)
    if Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder)):
        raise ParameterError("out", str(path), f"is inside the data folder {folder}, whose folders are read as "
                                               "classes; give an `out` outside it")
    for entry in sorted(folder.iterdir()):
        found = entry.is_dir() and not entry.is_symlink() and not hidden(entry.name) and run_within(entry)
        if found:
            raise NeuralabError(f"{found}: a neuralab run inside the data folder {folder}, whose folders are all read "
                                "as classes; move it out of the data folder")


def _train(config: ClassifierConfig, out, overwrite: bool, verbose: bool, callbacks, optimizer,
           resumed: bool = False, device: str | None = None, data=None) -> RunResult:
    """``train_classifier``; ``resumed``: a resume starting its run again in place (Run.create's),
    on ``device``, the session's (``session_device``), while config.json keeps the run's, and
    ``data``, the run's pictures that it read and checked already (``check_same_data``)."""
    from neuralab.data import load_image_data
    from neuralab.models import count_parameters
    from neuralab.training.device import dist_info, on_rank_0

    check_config(config, ClassifierConfig)
    callbacks = checked_callbacks(callbacks)  # before the data is read: a mistake in them costs nothing
    if out is not None:
        runs.folder_path(out, "out")
    config.check()
    split_given = _split_given(config)  # before _resolved's copy forgets it
    config = _resolved(config)
    if optimizer is not None:
        from neuralab.training.compile import python_name

        config.train.optimizer = python_name(optimizer)
    given = given_fields(config.train) | split_given  # what the caller gave, read before the copies below forget it
    checked = before_compile(config.train, given)  # before the model file is read
    checked.check()  # which makes NumPy numbers Python's
    config = replace(config, train=replace(checked, momentum=config.train.momentum))
    if config.train.patience > 0 and config.val_fraction == 0:
        raise ParameterError("patience", config.train.patience, "early stopping watches the validation set; "
                             "give `val_fraction` above 0")
    seed_everything(config.train.seed)  # a PyTorch module from a file is built as it is read
    source = model_source(config.model)
    config = run_config(config, source, given)
    split_taken = bool(_split_from_fit(source, given))
    said = None if resumed else _settings_said(source, given)  # a resume's are the run's own, whatever gave them
    config.train.check()
    path = Path(out) if out is not None else runs.default_dir(source.architecture, Path(config.data).name)
    if data is None:
        refuse_run_in_data(path, config.data)
        data = load_image_data(config.data, config.data_dir, **config.data_options)
    check_data(data)
    pre = _keras_inputs(source, data.input_shape) or Preprocess.fit(data.train.x, data.train.y)
    seed_everything(config.train.seed)
    model = source.classifier(data.input_shape, len(data.classes), config.model_options, pre(data.train.x[:2]))
    meta = classifier_meta(source.architecture, data.classes, pre, count_parameters(model), source.record(),
                           config.model_options)

    train = replace(config.train, device=device) if device else config.train
    trainer = Trainer(model, train, CLASSIFICATION, path, meta, verbose=verbose, callbacks=callbacks,
                      optimizer=optimizer, inputs=pre.normalise)
    # A model that fails in training mode is refused here, not in a run left behind half-made;
    # the first full batch is all the check reads.
    first = data.train.x[:config.train.batch_size]
    trainer.check_model(pixels(first), torch.from_numpy(data.train.y[:len(first)]), size=len(data.train),
                        resumed=bool(resumed))
    summary_text = _summary_text(trainer, config, data)

    # Inputs are valid: only now does anything touch the disk.
    is_main = dist_info().is_main
    fresh = out is None or not path.exists()
    made = []

    def create() -> str:
        made.append(Run.create(path, overwrite, numbered=out is None, resumed=resumed))
        return str(made[0].path)

    # every process takes rank 0's folder (a default name's time, or its NAME-2, may differ), or its refusal
    where = on_rank_0(create, trainer.device)
    run = made[0] if made else Run(Path(where))
    trainer.run_dir = run.path
    try:
        with interrupts_unwrapped():  # Ctrl-C that a library raised as its own error is Ctrl-C here too
            if is_main:
                try:
                    run.write_start(Kind.CLASSIFIER, asdict(config), trainer.environment, _images_record(data),
                                    meta, source)
                except NeuralabError:  # refused before it began (its data's listing): no run, nor its folder, left
                    if not resumed:
                        run.discard(made=fresh)
                    raise
            # a resume of a run stopped before its first checkpoint: the trainer says it starts again
            return _fit_and_finish(trainer, run, config, data, resume=resumed, verbose=verbose,
                                   summary_text=summary_text, split_taken=split_taken, settings_said=said)
    except KeyboardInterrupt as e:  # stopped before its first epoch: a run once config.json is there
        from neuralab.reports.html import ReportInterrupted

        # said already: an epoch's stop, or one while a finished run's report was drawn
        if isinstance(e, (runs.Interrupted, ReportInterrupted)) or not (run.path / runs.CONFIG).is_file():
            raise
        if (run.path / runs.RESULTS).is_file():  # finished: only its report or its last line was stopped
            raise ReportInterrupted(run.path) from None
        raise runs.Interrupted(run.path, Kind.CLASSIFIER) from None
    except Diverged:  # NaN weights: nothing to resume, test or report; a folder that was there stays, empty
        if is_main:
            run.discard(made=fresh)
        raise
    except ModelFailed as e:  # the user's model raised: a run that kept no epoch goes as a diverged one does
        if is_main and not runs.epoch_kept(run.path):
            run.discard(made=fresh)
        raise e.in_run(run.path, Kind.CLASSIFIER) from e.__cause__
    except (MemoryError, RuntimeError) as e:  # out of memory before an epoch was kept: a retry asks for less, anew
        if is_main and not resumed and out_of_memory(e) and not runs.epoch_kept(run.path):  # a resume keeps its run
            run.discard(made=fresh)
        raise
    finally:
        run.unlock()


def _keras_inputs(source, input_shape) -> Preprocess | None:
    """What a Keras model's inputs are where its weights or its first layer fix them: a
    saved model (fine-tuned) keeps the pixels x scale it was trained on, and a model starting
    with Rescaling takes raw pixels; neuralab's own normalisation would change what it
    computes. A fresh model from code trains on neuralab's, as the zoo does (None)."""
    from neuralab.training.keras_model import keras_pixels
    from neuralab.training.source import KERAS

    if source.type != KERAS:
        return None
    from neuralab.keras.spec import rescales  # the Keras package loads h5py: only for Keras models

    if source.weights is None and not rescales(source.spec):
        return None
    _, pixels = keras_pixels(source.spec, None, input_shape[0])
    return Preprocess(tuple(input_shape), **pixels)


def model_source(model):
    """The model's ModelSource: a zoo name, a Keras file, FILE.py[:NAME], or a model object."""
    from neuralab.models import ARCHITECTURES
    from neuralab.training.source import resolve

    return resolve(model, zoo=tuple(ARCHITECTURES))


def run_config(config: ClassifierConfig, source, given: frozenset[str] | None = None) -> ClassifierConfig:
    """The config a run of ``config`` trains with and keeps in config.json, its model read as
    ``source``: folders absolute, the model as stored, and a Keras model's compile() and fit()
    settings in the fields not ``given`` (TrainConfig's, and ClassifierConfig's val_fraction; by
    default those ``config.train`` and ``config`` give, given_fields)."""
    given = given_fields(config.train) | _split_given(config) if given is None else given
    config = _resolved(config)
    return replace(config, model=_model_name(config.model, source),
                   train=with_compile(config.train, source.compile, given), **_split_from_fit(source, given))


COMPILE_FIELDS = ("optimizer", "lr", "momentum", "loss")  # what a Keras run's header says it trains with


def _settings_said(source, given: frozenset[str]) -> str:
    """Where a Keras model's optimizer, lr, momentum and loss come from, in the training header's
    words: an option ``given`` wins; the others are compile()'s where the model was compiled, and
    neuralab's defaults where it was not (a model built in a file that never calls compile())."""
    if any(k in source.compile for k in COMPILE_FIELDS):
        return "compile()'s where no option sets them"
    if given & set(COMPILE_FIELDS):
        return "neuralab's defaults where no option sets them: the model was not compiled"
    return "neuralab's defaults: the model was not compiled"


def _split_given(config: ClassifierConfig) -> frozenset[str]:
    """{"val_fraction"} where ``config``'s maker gave it (a recipe's included), else none."""
    return given_fields(config) & {"val_fraction"}


def _split_from_fit(source, given: frozenset[str]) -> dict:
    """A Keras model's fit(validation_split=...) as the run's val_fraction, where not ``given``."""
    taken = source.compile.get("val_fraction")
    return {"val_fraction": taken} if taken is not None and "val_fraction" not in given else {}


def _model_name(model, source) -> str:
    """What config.json keeps as the model: the zoo name, the file as given (absolute), or the
    architecture of a model object."""
    if source.type == "zoo" or not isinstance(model, (str, Path)):
        return source.architecture
    from neuralab.training.source import split_name

    path, name = split_name(str(model))
    return str(path.resolve()) + (f":{name}" if name else "")


def _resolved(config: ClassifierConfig) -> ClassifierConfig:
    """A copy whose folders are absolute, so that the stored config works from any folder."""
    from neuralab.data import NAMED, check_data_name

    check_data_name(config.data, "data")
    data = config.data
    if Path(data).expanduser().is_dir() and data not in NAMED:
        data = str(Path(data).expanduser().resolve())
    data_dir = str(Path(config.data_dir).expanduser().resolve()) if config.data_dir else None
    check_train_config(config.train, "train")
    return replace(config, data=data, data_dir=data_dir, train=replaced(config.train))


def check_data(data) -> None:
    """Refuse, before any training, data a classifier cannot learn from or be tested on."""
    if len(data.train) == 0:
        raise NeuralabError(f"{data.name}: the training set is empty")
    if len(data.test) == 0:  # a folder of a few pictures a class: its share for testing rounds to none
        raise NeuralabError(_empty_test_set(data))
    if len(data.test) and data.test.x.shape[1:] != data.train.x.shape[1:]:
        raise NeuralabError(f"{data.name}: test images are {by(data.test.x.shape[1:])} but training images are "
                            f"{by(data.train.x.shape[1:])} (channels x height x width); give images of one size")
    k = len(data.classes)
    for split in ("train", "val", "test"):
        y = getattr(data, split).y
        if len(y) and (y.min() < 0 or y.max() >= k):
            bad = y.min() if y.min() < 0 else y.max()
            raise NeuralabError(f"{data.name}: {split} label {bad} is out of range for {k} classes (0..{k - 1})")
    if len(np.unique(data.train.y)) < 2:
        raise NeuralabError(f"{data.name}: every training image has the same label; a classifier needs "
                            "at least 2 classes to learn")


def _empty_test_set(data) -> str:
    """Why a folder's test set is empty, and what gives it one: each class keeps at least one
    picture for training (data.folders' split), so where every class has one, no `test_fraction`
    helps; otherwise the share rounds to none, which a larger fraction or more pictures change."""
    where = getattr(data, "root", None) or data.name  # a folder by its full path, as the folder errors name it
    counts = np.bincount(np.concatenate([data.train.y, data.val.y]).astype(np.int64), minlength=len(data.classes))
    said = f"{where}: the test set is empty ({int(counts.sum())} images in all)"
    if len(counts) and (counts <= 1).all():
        lone = [str(c) for c, n in zip(data.classes, counts) if n == 1]
        return (f"{said}: each class keeps one picture for training, and {', '.join(lone[:5])}"
                f"{' ...' if len(lone) > 5 else ''} {'has' if len(lone) == 1 else 'have'} only one; give each "
                "class at least 2 pictures")
    return f"{said}; give more images per class, or a larger `test_fraction`"


def _images_record(data) -> dict:
    return {"name": data.name, "classes": data.classes, "input_shape": list(data.input_shape), **split_record(data)}


@generators_kept()  # the run seeds the generators; the caller's come back after
@one_warning_each()  # given the module again, it checks it before the run's own check
def resume_classifier(run_dir: str | Path, verbose: bool = True, checkpoint: str = "last",
                      options: dict | None = None, callbacks=(), optimizer=None,
                      trust_code: bool = False, model=None) -> RunResult:
    """Continue an interrupted run with its stored config, from its last checkpoint or, with
    ``checkpoint="best"``, from its best epoch (when last.safetensors is damaged, say).

    Parameters:
        run_dir: the run's folder.
        verbose: print one line per epoch and the results.
        checkpoint: "last" (the default) or "best".
        options: config fields you ask for (``{"epochs": 20}``, ``{"train": ...}`` flattened):
            a resumed run keeps its config, so any that differ from it are refused, but
            ``threads`` and ``device`` (``{"device": "cpu"}``), which belong to this session: a
            job started again may land on a node with other cores, or without the GPU it started
            on; config.json keeps the run's, and its ``sessions`` records this one's. And
            ``data_dir``: where the run's image folder is now, where it moved since (a named
            dataset's files, where they are now); the pictures must be the run's, as config.json
            records their listing and digest.
        callbacks, optimizer: as train_classifier's; a run given an optimizer needs it again.
        trust_code: run the run's own copy of its PyTorch code (checked against its SHA-256).
        model: for a run whose PyTorch model it cannot rebuild (model.json's source has file
            null): the module it was trained with, built the same way (checked first).

    A run stopped before its first checkpoint starts again from epoch 1 in the same folder.
    Python's, NumPy's and PyTorch's generators are yours again afterwards."""
    from neuralab.training.device import dist_info, on_rank_0, session_device, session_threads

    callbacks = checked_callbacks(callbacks)  # one callback alone: refused before the run is read
    options = dict(options or {})
    device = options.pop("device", None)
    # where the run's data is now (its image folder moved, say): the same pictures, checked below
    # on either way on (check_same_data), and config.json records the place once they are taken
    data_dir = options.pop("data_dir", None)
    threads = TrainConfig(threads=options.pop("threads", 0))
    threads.check()  # refused as a new run's would be, before the run is read
    threads = session_threads(threads.threads)
    if checkpoint not in RESUME_FROM:
        raise ParameterError("checkpoint", checkpoint, f"choose one of: {', '.join(RESUME_FROM)}")
    run = Run.open(run_dir, Kind.CLASSIFIER)
    if run.by_keras_fit:
        raise NeuralabError(f"{run.path}: {runs.KERAS_FIT_WAY_ON}")
    refuse_changes(run, options)
    run.refuse_finished()
    device = session_device(device, stored_config(run).train.device, run.path)
    if not (run / runs.LAST).exists():  # stopped before its first checkpoint: start it again, in place
        # the pictures config.json recorded as the run began, before training writes it again: other
        # ones given as `data_dir` (another folder, Fashion-MNIST's files for an mnist run) are refused
        data, where = run_image_data(stored_config(run), data_dir)
        check_same_data(run, data, runs.json_object(run.record.get("data")).get("classes", data.classes), where)
        config = _data_now(stored_config(run), data_dir)
        meta = run.read(runs.MODEL) if (run / runs.MODEL).is_file() else {}
        if model is not None:  # no weights yet: the run starts again from the module's own
            config = replace(config, model=given_module(model, checked_meta(run), run.path, None))
        elif isinstance(meta, dict) and isinstance(meta.get("source"), dict) and meta["source"].get("type") != "zoo":
            # built here from the run's code, it starts from the weights it is built with: those of the
            # run's seed, as a new run builds it (_train), not of whatever the caller's generators hold
            seed_everything(config.train.seed)
            config = replace(config, model=_rebuilt(checked_meta(run), run.path, trust_code))
        elif _names_code(config.model) and not trust_code:
            from neuralab.training.source import CodeNotTrusted

            # config.json names the code and the run holds no checked copy of it yet: a run
            # from elsewhere could name any file here
            raise CodeNotTrusted(f"{run / runs.CONFIG}: the run's model is the Python code in {config.model}, which "
                                 "runs only when you trust it: read the file, then pass `trust_code`")
        with threads:
            return _train(config, run.path, True, verbose, callbacks, optimizer, resumed=True, device=device,
                          data=data)
    # Everything that may refuse the resume comes before the lock and the files it changes
    start = _best_checkpoint(run) if checkpoint == "best" else run / runs.LAST
    config = stored_config(run)
    data, where = run_image_data(config, data_dir)
    meta = checked_meta(run)
    check_same_data(run, data, meta["classes"], where)
    pre = Preprocess(tuple(meta["input_shape"]), **meta["preprocess"])
    seed_everything(config.train.seed)
    if model is not None:
        model = given_module(model, meta, run.path, start, prefix="model.")
    else:
        model = network(meta, run.path, trust_code)
    main = dist_info().is_main
    if main:
        callbacks = [*callbacks, runs.SessionRecorder(run)]
        if data_dir is not None:  # the place taken: evaluate, report and a later resume find the data there
            callbacks.append(_PlaceRecorder(run, _resolved(_data_now(config, data_dir))))

    def claim() -> None:
        run.lock()
        try:  # checked again now that no other resume can finish it while this one trains it
            run.refuse_finished()
        except BaseException:
            run.unlock()
            raise

    on_rank_0(claim, device)  # held by another process, or finished since: every process stops
    try:
        if checkpoint == "best":
            from neuralab.files import atomic_write

            with atomic_write(run.file(runs.LAST), "wb") as f:  # training goes on from the best epoch
                f.write(start.read_bytes())
        with threads:
            trainer = Trainer(model, replace(config.train, device=device), CLASSIFICATION, run.path, meta,
                              verbose=verbose, callbacks=callbacks,
                              optimizer=optimizer, inputs=pre.normalise)
            return _fit_and_finish(trainer, run, config, data, resume=True, verbose=verbose)
    except Diverged as e:  # a resumed run keeps its settings: the lower rate is a new run's
        raise e.resumed(run.path) from None
    except ModelFailed as e:  # the epochs it went on from stay
        raise e.in_run(run.path, Kind.CLASSIFIER) from e.__cause__
    finally:
        run.unlock()


def _data_now(config: ClassifierConfig, data_dir: str | None) -> ClassifierConfig:
    """``config`` of a run started again from epoch 1 with its data where it is now
    (``data_place``): config.json then records that place, and nothing trained on the old one."""
    name, where = data_place(config, data_dir)
    return replace(config, data=name, data_dir=where)


class _PlaceRecorder:
    """A trainer callback that writes where a resumed run's data is now (``config``'s data and
    data_dir) into config.json once the checkpoint it goes on from has loaded, as
    runs.SessionRecorder does its session: a resume refused on the way writes nothing."""

    def __init__(self, run: Run, config: ClassifierConfig):
        self.run, self.config = run, config

    def on_train_begin(self, trainer) -> None:
        record = self.run.record
        record["config"] = {**runs.json_object(record.get("config")), "data": self.config.data,
                            "data_dir": self.config.data_dir}
        with runs.resumable_if_unwritable(self.run.path, kept="the run is as it was before this resume"):
            self.run.write_json(runs.CONFIG, record)


def _names_code(model) -> bool:
    """Whether a stored ``config.model`` names a Python file ("net.py", "net.py:Net")."""
    from neuralab.training.source import split_name

    return isinstance(model, str) and split_name(model)[0].suffix.lower() == ".py"


def changed_settings(run: Run, options: dict) -> dict[str, str]:
    """The settings among ``options`` that differ from the run's stored config, a resume of it
    refuses: each one's name, to its words with both values ("`epochs` 2 (the run has 3)"), in
    the order of ``options``."""
    stored = asdict(stored_config(run))
    flat = {**{k: v for k, v in stored.items() if k != "train"}, **stored["train"]}
    unknown = sorted(set(options) - set(flat))
    if unknown:
        raise ParameterError(unknown[0], options[unknown[0]], "is no setting of a classifier run")
    resolved = _resolved_defaults(run, flat)

    def same(name: str, a, b) -> bool:
        if name in resolved:  # left to the library, or given as the default it resolved it to: the same
            a, b = (resolved[name] if value is None else value for value in (a, b))
        if name in ("data", "data_dir") and a and b and Path(a).is_dir():
            return str(Path(a).resolve()) == str(Path(b).resolve())
        return a == b or name == "model" and same_code(a, b, run)

    # a setting the run left to the library (no data_dir, no image_size) is "none given", not Python's None
    return {k: f"`{k}` {v!r} (the run has {'none given' if flat[k] is None else repr(flat[k])})"
            for k, v in options.items() if not same(k, v, flat[k])}


def _resolved_defaults(run: Run, settings: dict) -> dict:
    """What the library took for the run's ``settings`` (config.json's, flattened) that it left
    out (None) and that have one value whatever the data: a folder's color, on_error and
    test_fraction, and the loss of a model that is no Keras model's (whose is its compile()'s)."""
    from neuralab.data import COLORS, NAMED, ON_ERROR, TEST_FRACTION
    from neuralab.training.source import KERAS

    resolved = {} if settings["data"] in NAMED else {"color": COLORS[0], "on_error": ON_ERROR[0],
                                                     "test_fraction": TEST_FRACTION}
    if (run / runs.MODEL).is_file():  # model.json names a Keras model's source (a zoo model's has none)
        source = runs.json_object(runs.json_object(run.read(runs.MODEL)).get("source"))
        if source.get("type") != KERAS:
            resolved["loss"] = LOSSES[0]  # a classifier's own default
    return resolved


def refuse_changes(run: Run, options: dict) -> None:
    """Refuse ``options`` that differ from the run's stored config, naming each with both values
    (``changed_settings``)."""
    changed = changed_settings(run, options)
    if changed:
        raise NeuralabError(f"{run.path}: " + ", ".join(changed.values()) + "; a resumed run keeps the settings it "
                            "was started with: resume without them, or start a new run to change them")


def same_code(typed, recorded, run: Run) -> bool:
    """Whether `model` typed again to resume ``run``, FILE.py[:NAME] (relative to the current
    folder), names the code the run was made from as the run records it, rather than as text:
    ``recorded`` is config.json's model, its file made absolute (FILE.py[:NAME]), or an
    architecture, "torch:FILE.py:NAME" (a forecaster's), which keeps the file's name alone;
    model.json's source holds the module's name in the file and the SHA-256 of the run's copy
    of it (``file``: model.py, or the file's own name). That file changed since is refused: the
    run goes on with the code it was trained with, not with the file as it is now."""
    from neuralab.data.sources import sha256
    from neuralab.training.source import CODE_FILE, TORCH, split_name

    if not isinstance(typed, (str, os.PathLike)) or not isinstance(recorded, str):
        return False
    path, name = split_name(os.fspath(typed))
    kind, _, file = recorded.partition(":")
    own, own_name = split_name(file if kind == TORCH else recorded)
    if path.suffix.lower() != ".py" or own.suffix.lower() != ".py":
        return False
    meta = runs.json_object(run.read(runs.MODEL)) if (run / runs.MODEL).is_file() else {}
    source = runs.json_object(meta.get("source"))
    module = source.get("name") if source.get("type") == TORCH else None  # its name in the file, given or found
    if kind == TORCH:  # an architecture names the module whether or not the run was given its name
        module, own_name = own_name, None
    same_file = path.resolve() == own.resolve() if own.is_absolute() else path.name == own.name
    if not same_file or (name or module) != (own_name or module):
        return False
    if path.is_file() and source.get("sha256") is not None and sha256(path, "file") != source["sha256"]:
        copy = run.path / (source.get("file") or CODE_FILE)
        raise NeuralabError(f"{run.path}: `model` {os.fspath(typed)!r} has changed since the run was made (its "
                            f"SHA-256 differs from the run's copy, {copy}); the run goes on with the code it was "
                            "trained with: put the file back as it was to resume it, or start a new run to train the "
                            "file as it is now")
    return True


def _best_checkpoint(run: Run) -> Path:
    """The best epoch's checkpoint, which a resume from it puts in place of the last one."""
    from neuralab.training.checkpoint import load_tensors

    best = run.file(runs.BEST)
    if not best.exists():
        raise NeuralabError(f"{best}: missing; the run has no best checkpoint to resume from (resume from its "
                            "`checkpoint` \"last\" or start a new run)")
    load_tensors(best)  # a damaged best is named before the last checkpoint is replaced
    return best


def _rebuilt(meta: dict, run_dir: Path, trust_code: bool):
    """The model object a run of a Keras or PyTorch model was made from (for training again)."""
    from neuralab.training.source import KERAS, ModelSource

    source = meta["source"]
    if source["type"] == KERAS:
        return ModelSource(KERAS, meta["architecture"], source["spec"])
    return network(meta, run_dir, trust_code)


def _summary_text(trainer: Trainer, config, data) -> str:
    from neuralab.models.summary import render_summary, summary

    return render_summary(summary(trainer.model, data.input_shape, name=config.model), rich=False)


def _fit_and_finish(trainer: Trainer, run: Run, config, data, resume: bool, verbose: bool,
                    summary_text: str | None = None, split_taken: bool = False,
                    settings_said: str | None = None) -> RunResult:
    """Train, test and report; ``summary_text`` when the caller made it before the run existed;
    ``split_taken``: config.val_fraction is a Keras model's fit(validation_split=...);
    ``settings_said``: where a Keras model's training settings came from (``_settings_said``;
    None: a resume, which trains with the run's)."""
    from neuralab.models import count_parameters

    main = trainer.dist.is_main
    summary_text = summary_text if summary_text is not None else _summary_text(trainer, config, data)
    if main:
        with runs.resumable_if_unwritable(run.path, kept="the run's config and checkpoints are kept"):
            run.write_text(runs.SUMMARY, summary_text + "\n")
    if verbose and main:
        print(summary_text, flush=True)
        print(_training_header(config, data, trainer, split_taken, settings_said), flush=True)
    try:  # until results.json, an interrupted run is one a resume finishes, whatever error Ctrl-C came as
        with interrupts_unwrapped():
            history = trainer.fit(pixels(data.train.x), torch.from_numpy(data.train.y),
                                  val=(pixels(data.val.x), torch.from_numpy(data.val.y)) if len(data.val) else None,
                                  resume=resume)
            # One pass over the test set: the report's probabilities and the test scores from the same logits.
            logits = trainer.predict(pixels(data.test.x))
            test = trainer.score(logits, torch.from_numpy(data.test.y))
    except KeyboardInterrupt:
        raise runs.Interrupted(run.path, Kind.CLASSIFIER) from None
    seconds = trainer.elapsed
    result = RunResult(run.path, history, test, trainer.best_epoch(), seconds, count_parameters(trainer.model))
    if main:
        probs = torch.softmax(logits, dim=1).numpy()
        results = {
            "test_loss": test["loss"], "test_accuracy": test["accuracy"], "best_epoch": result.best_epoch,
            "train_seconds": seconds, "epochs_run": len(history),
            "confusion_matrix": confusion_matrix(probs.argmax(1), data.test.y, len(data.classes)).tolist(),
        }
        with runs.resumable_if_unwritable(run.path):  # every epoch is kept: a resume writes it again
            run.write_json(runs.RESULTS, results)
        if verbose:  # the answer before the report, whose figures take about a second to draw
            print(f"test accuracy {test['accuracy'] * 100:.2f}%  (best epoch {result.best_epoch}, "
                  f"{seconds:.1f}s of training)  run: {run.path}", flush=True)
        report(run, results, history, probs, data.test, summary_text)
    return result


def _training_header(config: ClassifierConfig, data, trainer: Trainer, split_taken: bool = False,
                     settings_said: str | None = None) -> str:
    from neuralab.models import count_parameters

    header = (f"{config.model} on {data.name}: {len(data.train):,} train / {len(data.val):,} val / "
              f"{len(data.test):,} test images {by(data.input_shape)}, "
              f"{count_parameters(trainer.model):,} parameters, device {trainer.device_text}, seed {config.train.seed}, "
              f"run {trainer.run_dir}")  # named first: a job killed outright leaves its log saying which run to resume
    if (trainer.model_meta.get("source") or {}).get("type") != "keras":
        return header
    # A Keras model trains with its compile()'s settings where no option is given, or neuralab's
    # defaults where it was not compiled, which the command line shows nowhere else
    t = config.train
    momentum = f", momentum {t.momentum:g}" if t.optimizer in ("sgd", "rmsprop") else ""
    split = ""
    if split_taken:
        from neuralab.training.keras_script import VAL_FROM_FIT

        split = f"; val_fraction {config.val_fraction:g} (fit()'s validation_split: {VAL_FROM_FIT})"
    said = settings_said or "the run's, as its config.json keeps them"
    # compile()'s rate is constant, as Keras steps it; neuralab's default schedule is said where it stands
    schedule = f", schedule {t.schedule}"
    return (f"{header}\noptimizer {t.optimizer}, lr {t.lr:g}{momentum}{schedule}, loss {t.loss or 'cross_entropy'} "
            f"({said}){split}")
