"""A learner's Keras script read for its model (``neuralab train --model FILE.py``): what its
training calls do meanwhile.

neuralab runs the file to take the model it defines, then trains that model itself. A
tutorial's module-level ``model.fit(...)`` would first train a throwaway copy, ``model.save``
write the untrained model over the learner's trained file, and code after them plot or dump
a History of nothing over the learner's own files. While the file runs (``fit_recorded``),
Keras's training calls run nothing and are recorded: fit()'s settings become the run's
defaults (``taken_from_fit``), compile() calls are compared (``warn_compiles``), what fit()
returned refuses to be used, and files the script writes over are put back (``_Kept``). Weights
the script loads (keras.saving.load_model, load_weights, set_weights) are recorded, so that the
model starts from them (``weights_loaded``).
"""

from __future__ import annotations

import contextlib
import filecmp
import importlib.util
import inspect
import math
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from neuralab.errors import NeuralabError
from neuralab.training.keras_model import compile_settings
from neuralab.training.user_code import MAX_CODE

FIT_NOT_RUN = "which neuralab does not run: it trains the model on `data` itself"
# how fit()'s validation_split is taken: neuralab's split is its own (data.images, data.folders)
VAL_FROM_FIT = "its share, drawn with the seed, not Keras's last samples"
# fit()'s arguments that change nothing neuralab's run does; x and y are the data neuralab replaces
_FIT_UNSAID = ("self", "x", "y", "verbose")
KERAS_BATCH = 32  # the batch Keras's fit() trains arrays in where it is given no batch_size


COMPILE = "model.compile"  # _Read.compiles' call for the file's own compile(); else the load_model restoring one


@dataclass
class _Read:
    """What a model file's Keras calls were while neuralab read it (``fit_recorded``)."""

    fits: list = field(default_factory=list)      # (model, fit()'s arguments by name, line): trained nothing
    saves: list = field(default_factory=list)     # (call, line): model.save and the like, which wrote nothing
    results: list = field(default_factory=list)   # (call, line): train_on_batch, evaluate, predict, which ran nothing
    compiles: list = field(default_factory=list)  # (model, its compile config or None, line, the call:
    #                                               model.compile or the load_model that restored it)
    loaded: list = field(default_factory=list)    # the Keras variables load_model, load_weights or set_weights
    #                                               gave values (held: their ids stay theirs)
    put_back: list = field(default_factory=list)  # files it wrote over after such a call, put back as they were
    not_put_back: list = field(default_factory=list)  # "PATH (why)": those it changed that could not be


class Refused(Exception):
    """A call in the learner's code that neuralab refuses while it reads the file, its message
    saying what to do (which is all the error line shows, without the exception's name)."""


class HistoryUsed(Refused):
    """The learner's code used the History of a fit() that did not run. Neither a KeyError nor
    an AttributeError, so that neither `except KeyError` nor hasattr() goes on without it."""


class DownloadRefused(Refused):
    """A keras.datasets load_data() that would download its dataset while neuralab reads the file.
    No OSError, which the learner's code might take for a missing file and go on without it."""


class _Unfitted:
    """What fit() returns while neuralab reads the file, for Keras's History: that one would hold
    no epochs, and the curves plotted or saved from it would be empty files over the learner's
    own. Any attribute (``.history``, ``.epoch``) fails, naming the fit() and what to do."""

    def __init__(self, line):
        object.__setattr__(self, "_line", line)

    def __repr__(self) -> str:
        return "<History of a model.fit() that neuralab did not run>"

    def __getattribute__(self, name):
        if name.startswith("__") and name.endswith("__"):  # isinstance(), vars(): Python's, not the learner's
            return object.__getattribute__(self, name)
        line = object.__getattribute__(self, "_line")
        at = f" at line {line}" if line != "?" else ""
        raise HistoryUsed(f"the History from model.fit(){at} holds no epochs: neuralab reads the file for its "
                           "model without running fit(), and trains the model on `data` itself; put the lines using "
                           "the History under if __name__ == \"__main__\":, which neuralab does not run")


# One model file is read at a time in a process: a read patches what the whole process shares
# (builtins.open, io.open, keras.Model's methods), and a second thread's read would take the
# first's patches for the originals and put them back for good. Re-entrant, so that a model file
# which itself reads one nests, its patches undone before the outer read's.
_READING = threading.RLock()


@contextlib.contextmanager
def fit_recorded(path: Path, imports: dict | None, code: bytes | None = None):
    """While the model file ``path`` runs, Keras's training calls run nothing and are recorded
    in the ``_Read`` this gives. Model.fit trains nothing: the file is read for its model, which
    neuralab then trains, and a tutorial's module-level fit() would otherwise train a throwaway
    copy first; the History it returns refuses to be used (``_Unfitted``). train_on_batch,
    evaluate and predict give NaN in the shapes Keras's would (a one-sample test_on_batch or
    predict_on_batch tells them), so that code printing their numbers runs, without the minutes
    a training loop or a pass over a test set takes; given a dataset or a generator, whose size
    only reading it tells, evaluate and predict run as Keras's, which changes no weight.
    Model.save, save_weights and keras.saving.save_model write nothing: after a fit() that did
    not train, they would write an untrained model over the one the file's own run trained.
    compile() calls are recorded with their settings. Files that the file's code (or a library
    it calls) writes over once one of those calls ran nothing (a JSON of the history, a figure)
    are put back as they were when the read ends (``_Kept``). Keras and open() are as they were
    afterwards. Keras is imported first only for a file that, or whose neighbours, name it:
    PyTorch code goes without (importing Keras takes seconds). ``code``: the file's bytes as
    read to run (``user_code.read_code``), which tell whether it names Keras."""
    with _READING, _recorded(path, imports, code) as read:
        yield read


@contextlib.contextmanager
def _recorded(path: Path, imports: dict | None, code: bytes | None = None):
    """``fit_recorded``'s patches, in place while it holds ``_READING``."""
    import builtins
    import io

    keras = sys.modules.get("keras")
    if keras is None and _names_keras(path, imports, code) and importlib.util.find_spec("keras") is not None:
        from neuralab.keras import on_pytorch

        on_pytorch()
        from neuralab.training.seeds import generators_kept

        # Keras's import draws from Python's generator: put back, the file's Keras draws (its
        # initialisers' seeds) come out of the run's seed as where Keras was imported before
        with contextlib.suppress(ImportError), generators_kept():  # the file's own import then says what is wrong
            import keras
    read = _Read()
    if keras is None:
        yield read
        return
    model_class = keras.Model
    names = ("fit", "save", "save_weights", "compile", "train_on_batch", "evaluate", "predict", "load_weights")
    own = {name: vars(model_class).get(name) for name in names}
    keras_call = {name: getattr(model_class, name) for name in (*names, "test_on_batch", "predict_on_batch")}
    layer_class = keras.layers.Layer  # set_weights is a layer's, a model's too
    own_set_weights = vars(layer_class).get("set_weights")
    keras_set_weights = layer_class.set_weights
    signatures = {name: inspect.signature(keras_call[name]) for name in ("fit", "train_on_batch", "evaluate",
                                                                          "predict")}
    # the function forms too, under each name a file may call them by
    functions = [(module, "save_model") for module in (keras.saving, keras.models) if hasattr(module, "save_model")]
    own_functions = [getattr(module, name) for module, name in functions]
    loaders = [(module, "load_model") for module in (keras.saving, keras.models) if hasattr(module, "load_model")]
    own_loaders = [getattr(module, name) for module, name in loaders]
    opener = builtins.open
    kept = _Kept(opener)

    def line() -> int | str:
        return next((f.lineno for f in reversed(traceback.extract_stack()) if f.filename == str(path)), "?")

    def fit(self, *args, **kwargs):
        given = signatures["fit"].bind(self, *args, **kwargs).arguments  # a call Keras would refuse fails as in Keras
        read.fits.append((self, given, line()))
        return _Unfitted(read.fits[-1][2])

    def compile(self, *args, **kwargs):
        keras_call["compile"](self, *args, **kwargs)
        read.compiles.append((self, _compile_config(self), line(), COMPILE))

    def loading(load, call: str):
        def load_model(*args, **kwargs):
            # Keras compiles the model it loads only where Model.compile is its own
            # (compile_from_config); the file's settings are then taken as a compile() the script calls
            _put_back(model_class, "compile", own["compile"])
            try:
                model = load(*args, **kwargs)
            finally:
                model_class.compile = compile
            at = line()
            read.loaded.extend(model.weights)
            if getattr(model, "compiled", False):
                read.compiles.append((model, _compile_config(model), at, call))
            return model
        return load_model

    def load_weights(self, *args, **kwargs):
        with _given(keras, self) as given:
            keras_call["load_weights"](self, *args, **kwargs)
        read.loaded.extend(given)

    def set_weights(self, *args, **kwargs):
        with _given(keras, self) as given:
            keras_set_weights(self, *args, **kwargs)
        read.loaded.extend(given)

    def train_on_batch(self, *args, **kwargs):
        given = signatures["train_on_batch"].bind(self, *args, **kwargs).arguments
        read.results.append(("model.train_on_batch", line()))
        x, y = _first_sample(given.get("x"), given.get("y")) or (given.get("x"), given.get("y"))
        return _nan(keras_call["test_on_batch"](self, x, y, return_dict=given.get("return_dict", False)))

    def evaluate(self, *args, **kwargs):
        given = signatures["evaluate"].bind(self, *args, **kwargs).arguments
        first = _first_sample(given.get("x"), given.get("y"))
        if first is None:
            return keras_call["evaluate"](self, *args, **kwargs)
        read.results.append(("model.evaluate", line()))
        return _nan(keras_call["test_on_batch"](self, *first, return_dict=given.get("return_dict", False)))

    def predict(self, *args, **kwargs):
        import numpy as np

        given = signatures["predict"].bind(self, *args, **kwargs).arguments
        first = _first_sample(given.get("x"))
        if first is None:
            return keras_call["predict"](self, *args, **kwargs)
        read.results.append(("model.predict", line()))
        count = len(keras.tree.flatten(given["x"])[0])

        def unknown(a):  # (1, ...) -> (N, ...) of NaN
            a = np.asarray(a)
            return np.full((count, *a.shape[1:]), np.nan, a.dtype if a.dtype.kind == "f" else np.float32)
        return keras.tree.map_structure(unknown, keras_call["predict_on_batch"](self, first[0]))

    def saved(method: str):
        def save(*args, **kwargs):
            read.saves.append((method, line()))
        return save

    def guarded_open(file, mode="r", *args, **kwargs):
        # what the file writes once a call did not run (its plots, its JSON of the history) holds no
        # results; before that, it may be a library's own cache (matplotlib's fonts, Keras's datasets)
        if (read.fits or read.results) and isinstance(file, (str, bytes, os.PathLike)) and set(str(mode)) & set("wa+") \
                and _running(path):
            kept.keep(os.path.realpath(os.fsdecode(file)))
        return opener(file, mode, *args, **kwargs)

    patched = dict(fit=fit, save=saved("model.save"), save_weights=saved("model.save_weights"), compile=compile,
                   train_on_batch=train_on_batch, evaluate=evaluate, predict=predict, load_weights=load_weights)
    for name, method in patched.items():
        setattr(model_class, name, method)
    layer_class.set_weights = set_weights
    for module, name in functions:
        setattr(module, name, saved(f"{module.__name__}.{name}"))
    for (module, name), function in zip(loaders, own_loaders):
        setattr(module, name, loading(function, f"{module.__name__}.{name}"))
    builtins.open = io.open = guarded_open
    try:
        with _datasets_read_here(keras), _settings_kept(keras):
            yield read
    finally:
        builtins.open = io.open = opener
        for name, method in own.items():
            _put_back(model_class, name, method)
        _put_back(layer_class, "set_weights", own_set_weights)
        for (module, name), function in zip((*functions, *loaders), (*own_functions, *own_loaders)):
            setattr(module, name, function)
        read.put_back, read.not_put_back = kept.put_back()


def _put_back(cls, name: str, method) -> None:
    """``cls``'s own ``method`` as it was (None: it had none, and inherits its base's)."""
    if method is None:
        if name in vars(cls):
            delattr(cls, name)
    else:
        setattr(cls, name, method)


def _compile_config(model) -> dict | None:
    """``model``'s compile() settings as Keras serialises them; None for those it cannot
    (compile() itself took them)."""
    try:
        return model.get_compile_config()
    except Exception:  # noqa: BLE001  Keras's own serialiser fails in its own ways
        return None


@contextlib.contextmanager
def _given(keras, target):
    """The list of ``target``'s variables that the block gives values: new ones, and those whose
    values it changes. Setting a model's own values again (``initial = model.get_weights()`` ...
    ``model.set_weights(initial)``, a reset before each fit()) gives none: those are Keras's
    draws as the file built the model, not weights it loaded."""
    import numpy as np

    before = {id(v): (v, keras.ops.convert_to_numpy(v)) for v in target.weights}  # v held: its id stays its own
    given: list = []
    yield given
    given += [v for v in target.weights
              if id(v) not in before or not np.array_equal(before[id(v)][1], keras.ops.convert_to_numpy(v))]


def weights_loaded(model, loaded: list) -> bool:
    """Whether the file's ``model`` holds weights it loaded (``_Read.loaded``): one of its
    variables was given values by keras.saving.load_model, load_weights or set_weights (a model
    loaded whole, or one built on a loaded base's layers under a new head). A model whose
    variables none of them gave (built beside a loaded one, or reset to its own first values)
    starts from neuralab's seeded initialisation."""
    given = {id(v) for v in loaded}
    return any(id(v) in given for v in model.weights)


# keras.config's process-wide settings, getter -> setter, which a model file may change at its top
# (set_floatx("float64"), set_image_data_format("channels_first")) and _settings_kept puts back
_KERAS_CONFIG = {"floatx": "set_floatx", "epsilon": "set_epsilon", "image_data_format": "set_image_data_format",
                 "max_epochs": "set_max_epochs", "max_steps_per_epoch": "set_max_steps_per_epoch"}
# those Keras keeps in its global state, read as they are set: the dtype policy (mixed_float16),
# unsafe deserialization, and its logging, traceback filtering and flash attention switches
_KERAS_STATE = ("dtype_policy", "safe_mode_saving", "interactive_logging", "traceback_filtering", "flash_attention")


@contextlib.contextmanager
def _settings_kept(keras):
    """Keras's process-wide settings put back as they were once the model file has run, as torch's
    defaults are (user_code.torch_defaults_kept): a file's keras.mixed_precision.set_global_policy(
    "mixed_float16") or keras.config.set_floatx("float64") would otherwise outlast it in the caller's
    session, and every model built there next would compute so. The model read keeps its own: each
    layer records its dtype policy and data format as it is built."""
    try:  # Keras's getter of the policy would fix it first; a Keras that moved the module keeps its policy
        from keras.src.backend.common import global_state
    except ImportError:
        global_state = None
    config = keras.config
    kept = {name: getattr(config, name)() for name in _KERAS_CONFIG if hasattr(config, name)}
    state = {name: global_state.get_global_attribute(name) for name in _KERAS_STATE} if global_state else {}
    try:
        yield
    finally:
        for name, value in kept.items():
            getattr(config, _KERAS_CONFIG[name])(value)
        for name, value in state.items():
            global_state.set_global_attribute(name, value)


# keras.datasets' modules whose dataset neuralab.data keeps too, by neuralab's name for it
OWN_COPIES = {"mnist": "mnist", "fashion_mnist": "fashion-mnist"}


@contextlib.contextmanager
def _datasets_read_here(keras):
    """keras.datasets' load_data() while a model file runs: MNIST and Fashion-MNIST from
    neuralab's own copies (``own_copy``), any dataset from Keras's cache as Keras reads it, and
    one that Keras would download refused in one line (``DownloadRefused``). A tutorial loads its
    data at the top of the file, before the model exists: offline, Keras's download fails there,
    and online it fetches megabytes that neuralab, training on `data`, never uses."""
    import io

    datasets = vars(keras.datasets) if inspect.ismodule(getattr(keras, "datasets", None)) else {}
    found = [(name, module) for name, module in datasets.items()
             if inspect.ismodule(module) and callable(getattr(module, "load_data", None))]
    own = {name: module.load_data for name, module in found}
    file_utils = sys.modules.get("keras.src.utils.file_utils")  # where Keras's get_file downloads

    def refused(name: str):
        def urlretrieve(*args, **kwargs):
            none = f" (neuralab has none either: `neuralab data fetch {OWN_COPIES[name]}` gets it)" \
                if name in OWN_COPIES else ""
            raise DownloadRefused(f"keras.datasets.{name}.load_data() would download the dataset{none}, which "
                                  "neuralab does not do while it reads the file for its model: it trains the model "
                                  "on `data` itself; put the data loading and fit() under if __name__ == "
                                  "\"__main__\":, which neuralab does not run")
        return urlretrieve

    def answered(name: str, load):
        signature = inspect.signature(load)

        def load_data(*args, **kwargs):
            signature.bind(*args, **kwargs)  # a call Keras would refuse fails as in Keras
            copy = own_copy(OWN_COPIES[name]) if name in OWN_COPIES else None
            if copy is not None:
                return copy
            if file_utils is None or not hasattr(file_utils, "urlretrieve"):  # another Keras: its own way
                return load(*args, **kwargs)
            retrieve, file_utils.urlretrieve = file_utils.urlretrieve, refused(name)
            said = io.StringIO()  # Keras's "Downloading data from ...", which the refusal would belie
            try:
                with contextlib.redirect_stdout(said):
                    data = load(*args, **kwargs)
            finally:
                file_utils.urlretrieve = retrieve
            sys.stdout.write(said.getvalue())
            return data
        return load_data

    for name, module in found:
        module.load_data = answered(name, own[name])
    try:
        yield
    finally:
        for name, module in found:
            module.load_data = own[name]


def own_copy(name: str) -> tuple | None:
    """Dataset ``name`` (mnist, fashion-mnist) from neuralab's own copy, where neuralab.data finds
    one (the user's cache, then the folder a Debian package fills), as Keras's load_data() gives
    it: ((x_train, y_train), (x_test, y_test)), uint8 images (N, 28, 28) and uint8 labels, in the
    files' order, which is Keras's; None where there is none. Read into memory, nothing written
    (not even the decompressed copy that neuralab's runs map)."""
    import numpy as np

    from neuralab.data.idx import REFETCH, read_idx
    from neuralab.data.sources import file_in, locate

    try:
        folder = locate(name)
    except NeuralabError:
        return None
    splits = []
    for part in ("train", "t10k"):
        images, labels = (file_in(folder, f"{part}-{kind}-idx{rank}-ubyte.gz") for kind, rank in (("images", 3),
                                                                                                 ("labels", 1)))
        x, y = np.array(read_idx(images)), np.array(read_idx(labels))  # writable, as Keras's are
        if x.dtype != np.uint8 or x.ndim != 3 or y.dtype != np.uint8 or y.shape != x.shape[:1]:
            raise NeuralabError(f"{images}: {x.dtype} images {x.shape} and {y.dtype} labels {y.shape}, not "
                                f"{name}'s uint8 images (N, height, width) and labels (N,); {REFETCH}")
        splits.append((x, y))
    return tuple(splits)


def _running(path: Path) -> bool:
    """Whether the model file's code is on this thread's stack (another thread's open() is its own)."""
    frame, name = sys._getframe(1), str(path)
    while frame is not None:
        if frame.f_code.co_filename == name:
            return True
        frame = frame.f_back
    return False


MAX_KEPT = 256 * 2**20  # bytes: a larger file a model file writes over (a long log, a memmap) is not copied


class _Kept:
    """The files a model file's code opens for writing as neuralab reads it (``fit_recorded``),
    each copied as it was the first time into a private temporary folder, and put back from
    there into the same file when the read ends. A file absent at its first open is the
    script's own (a log it starts, a scratch file): it is left as the script leaves it."""

    def __init__(self, opener):
        self._open = opener      # Python's open(): the copy's own writes are not the script's
        self.folder = None       # the temporary folder, made for the first copy
        self.copies: dict = {}   # path -> its copy; None where no file was there to keep
        self.uncopied: dict = {}  # path -> (its size and mtime then, why it was not copied)

    def keep(self, target: str) -> None:
        """Copy ``target`` as it is now, unless it was seen before."""
        if target in self.copies or target in self.uncopied:
            return
        try:
            status = os.stat(target)
        except OSError:  # no file: the script makes it
            status = None
        if status is None or not stat.S_ISREG(status.st_mode):
            self.copies[target] = None
            return
        was = status.st_size, status.st_mtime_ns
        if was[0] > MAX_KEPT:
            self.uncopied[target] = (was, f"{was[0] / 2**20:.0f} MB, over the {MAX_KEPT // 2**20} MB neuralab "
                                          "copies to put back")
            return
        try:
            self.folder = self.folder or tempfile.mkdtemp(prefix="neuralab-kept-")
            copy = os.path.join(self.folder, f"{len(self.copies)}-{os.path.basename(target)}")
            with self._open(target, "rb") as f, self._open(copy, "wb") as out:
                shutil.copyfileobj(f, out)
            shutil.copystat(target, copy)
        except OSError as e:
            self.uncopied[target] = (was, f"could not be copied: {e.strerror or e}")
            return
        self.copies[target] = copy

    def put_back(self) -> tuple[list[str], list[str]]:
        """The files changed since they were copied, written back into the same file (so its
        mode, owner and hard links stay), and those changed that could not be, as "PATH (why)".
        Raises nothing: it runs as the read ends, where the script's own error or result stands."""
        done, failed, keep_folder = [], [], False
        for target, copy in self.copies.items():
            if copy is None or _same_bytes(copy, target) or not os.path.isdir(os.path.dirname(target)):
                continue  # unchanged, or in a folder the script removed, which is its own to remove
            try:  # a folder the script removed stays removed: copyfile makes none
                shutil.copyfile(copy, target)
                shutil.copystat(copy, target)
                done.append(target)
            except OSError as e:
                failed.append(f"{target} ({e.strerror or e}; as it was: {copy})")
                keep_folder = True
        failed += [f"{target} ({why})" for target, (was, why) in self.uncopied.items() if _signature(target) != was]
        if self.folder and not keep_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
        return done, failed


def _signature(path: str) -> tuple | None:
    """``path``'s size and modification time, or None where there is no file."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns


def _same_bytes(copy: str, target: str) -> bool:
    try:
        return filecmp.cmp(copy, target, shallow=False)  # streamed, after the sizes
    except OSError:  # removed since: put back all the same
        return False


def _first_sample(x, y=None) -> tuple | None:
    """``x`` and ``y`` (arrays, or lists or dicts of them) cut to their first sample, in their
    structures; None where either holds something else (a dataset, a generator, Python lists)."""
    keras = sys.modules["keras"]
    if x is None:
        return None
    cut = []
    for data in (x, y):
        leaves = keras.tree.flatten(data) if data is not None else None
        if leaves is not None and not (leaves and all(len(getattr(a, "shape", ())) >= 1 and a.shape[0] >= 1
                                                      for a in leaves)):
            return None
        cut.append(None if data is None else keras.tree.map_structure(lambda a: a[:1], data))
    return tuple(cut)


def _nan(result):
    """Keras's numbers (a loss, a list of a loss and metrics, or a dict of them) as NaN: a call
    that did not run gives none."""
    if isinstance(result, dict):
        return {k: math.nan for k in result}
    if isinstance(result, (list, tuple)):
        return [math.nan for _ in result]
    return math.nan


def calls_said(path: Path, calls: list) -> str:
    """"learner/net.py:9: model.save(), learner/net.py:12: model.predict() (40 calls)": each
    line's calls once, each named by the file as given (``path``)."""
    counts: dict = {}
    for call, line in calls:
        counts[call, line] = counts.get((call, line), 0) + 1
    return ", ".join(f"{path}:{line}: {call}()" + (f" ({n} calls)" if n > 1 else "")
                     for (call, line), n in counts.items())


def warn_compiles(path: Path, compiles: list) -> None:
    """One warning where the model was compiled more than once, with other settings: as in
    Keras, the last compile() is the one it trains with, and neuralab takes that one's.
    ``compiles``: (config, line, call) as ``_Read.compiles`` holds them, the settings a
    load_model restored among them."""
    if len(compiles) < 2 or compiles[-1][0] is None:
        return
    *earlier, (config, line, _) = compiles
    taken = _compiled(config)
    replaced = [(at, settings, call) for c, at, call in earlier
                if c is not None and (settings := _compiled(c)) != taken]
    if not replaced:
        return
    before = replaced[-1][1]
    keys = [k for k in {**taken, **before} if taken.get(k) != before.get(k)]

    def said(settings: dict) -> str:
        return ", ".join(f"`{k}` {settings[k]}" if k in settings else f"no `{k}`" for k in keys)
    # a load_model's settings were no compile() at its line: named by the call that restored them
    named = [f"the settings {call} restored at line {at}" for at, _, call in replaced if call != COMPILE]
    lines = [str(at) for at, _, call in replaced if call == COMPILE]
    if lines:
        of = "the compile() at " if named else "the one at " if len(lines) == 1 else "those at "
        named.append(of + (f"line {lines[0]}" if len(lines) == 1 else f"lines {', '.join(lines)}"))
    warnings.warn(f"{path}:{line}: model.compile() replaces {' and '.join(named)}, as in Keras, where fit() trains "
                  f"with the last compile(): the run takes this one's {said(taken)} where no option sets them, not "
                  f"line {replaced[-1][0]}'s {said(before)}")


def _compiled(config: dict) -> dict:
    """``compile_settings`` of an earlier compile(), without its warnings (the last one's say
    them); one neuralab cannot train with, by its optimizer's name."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return compile_settings(config)
        except NeuralabError:
            optimizer = config.get("optimizer")
            return {"optimizer": str(optimizer.get("class_name") if isinstance(optimizer, dict) else optimizer)}


def _names_keras(path: Path, imports: dict | None, code: bytes | None = None) -> bool:
    """Whether the model file (its bytes ``code``, where read) or one beside it that it imports
    names Keras (tensorflow.keras too)."""
    if code is not None:
        return b"keras" in code or any(b"keras" in text for text in (imports or {}).values())
    try:
        if not path.is_file() or path.stat().st_size > MAX_CODE:  # run_file refuses it
            return False
        return b"keras" in path.read_bytes() or any(b"keras" in code for code in (imports or {}).values())
    except OSError:
        return False


def taken_from_fit(path: Path, fits: list, model, keras_model: bool) -> dict:
    """The settings of the fit() calls on ``model`` that neuralab's TrainConfig has, as its
    fields: the epochs they train in all (a loop of fit(epochs=1) calls, or fit() again from an
    `initial_epoch`), and the last call's batch_size (Keras's 32 where it gives arrays and none)
    and EarlyStopping's patience and monitor; and its validation_split as ClassifierConfig's
    val_fraction; a warning says, in one line, that fit() did not run, what it took and what it
    did not, and that the run holds out a validation share where that fit() holds out none
    (other arguments left at Keras's defaults change nothing, and go unsaid)."""
    from neuralab.training.config import MONITORS

    own = [(given, line) for m, given, line in fits if m is model] if keras_model else []
    given, line = own[-1] if own else ({}, fits[0][2])
    defaults = {k: p.default for k, p in inspect.signature(sys.modules["keras"].Model.fit).parameters.items()} \
        if "keras" in sys.modules else {}
    taken, left = {}, []
    counts = [(g.get("epochs", defaults.get("epochs", 1)), g.get("initial_epoch", 0)) for g, _ in own]
    if own and all(_whole(e) and _whole(i) for e, i in counts):
        epochs = sum(max(0, e - i) for e, i in counts)  # each call trains its epochs past initial_epoch
        if epochs >= 1:
            taken["epochs"] = epochs
    for key, value in given.items():
        if key in ("epochs", "initial_epoch") or _same(value, defaults.get(key)):
            continue
        if key == "batch_size" and _whole(value) and value >= 1:
            taken[key] = int(value)
        elif key == "validation_split" and _share(value) and _same(given.get("validation_data"), None):
            # Keras holds out the last samples given to fit(), without shuffling; neuralab's split is drawn
            # with the seed, so only the share is the script's (Keras ignores it beside validation_data)
            taken["val_fraction"] = float(value)
        elif key == "callbacks" and isinstance(value, (list, tuple)):
            for callback in value:
                kind, patience = type(callback).__name__, getattr(callback, "patience", None)
                monitor = getattr(callback, "monitor", None)
                monitor = "val_accuracy" if monitor == "val_acc" else monitor  # metrics=["acc"]'s name
                if kind == "EarlyStopping" and _whole(patience) and monitor in {*sum(MONITORS.values(), ())}:
                    # Keras stops after `patience` epochs in a row without improving, 0 after the first,
                    # as neuralab's patience 1 does (its 0 is off)
                    taken.update(patience=max(1, int(patience)), monitor=monitor)
                else:
                    left.append(f"{kind}(monitor={monitor!r})" if kind == "EarlyStopping" else kind)
        elif key not in _FIT_UNSAID:
            shown = f"{key}={value!r:.40}" if isinstance(value, (int, float, str, bool, type(None))) else key
            held = key in ("validation_split", "validation_data")
            left.append(f"{shown} (the run holds out `val_fraction` of `data`)" if held else shown)
    defaulted = own and "batch_size" not in taken and given.get("batch_size") is None
    if defaulted and _first_sample(given.get("x"), given.get("y")) is not None:
        taken["batch_size"] = KERAS_BATCH  # as Keras's fit() batches arrays; neuralab's own 128 would be another run
    elif defaulted and given.get("x") is not None:  # a dataset or a generator, which brings its own batches
        left.append("the batch size of its dataset (the run trains at `batch_size`)")
    # a validation_split out of range, or validation_data, are said among those not taken
    split = given.get("validation_split")
    holds_none = own and (split is None or _same(split, 0.0)) and _same(given.get("validation_data"), None)
    calls = f" ({len(fits)} calls)" if len(fits) > 1 else ""
    said = f"{path}:{line}: model.fit(){calls}, {FIT_NOT_RUN}"
    if fits and not own:
        said += "; it was called on another model than the one neuralab trains, whose settings are not taken"
    if taken:
        settings = ", ".join(_said_taken(k, v, k == "batch_size" and defaulted) for k, v in taken.items())
        said += f", with fit()'s {settings} where no option sets them"
    if holds_none:
        said += ("; the run holds out `val_fraction` of `data` for validation, where this fit() holds out none (give "
                 "`val_fraction` 0 for none)")
    if left:
        said += f"; not taken: {', '.join(left)}"
    warnings.warn(said)
    return taken


def _said_taken(field: str, value, default: bool = False) -> str:
    """"`epochs` 3"; validation_split as what it becomes, and for which data; ``default``: the value
    is Keras's default, which fit() was not given."""
    if field == "val_fraction":
        return f"validation_split={value:g} as an image classifier's `val_fraction` ({VAL_FROM_FIT})"
    return f"`{field}` {value}" + (" (Keras's default)" if default else "")


def _share(value) -> bool:
    """Whether ``value`` is a fraction Keras's validation_split takes: above 0, below 1."""
    import numbers

    return isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < value < 1


def after_fit(e: NeuralabError, path: Path, fits: list) -> NeuralabError:
    """An error in the model file's code after a fit() that did not run, with what to do about
    it; other errors, and those saying it already (the History's, a sys.exit()'s), as they are."""
    if not fits or type(e) is not NeuralabError or not re.match(rf"{re.escape(str(path))}:\d+: ", e.args[0]) \
            or 'if __name__ == "__main__":' in e.args[0]:
        return e
    return NeuralabError(f"{e.args[0]} (after model.fit(), {FIT_NOT_RUN}; put the lines using what it returns "
                         "under if __name__ == \"__main__\":, which neuralab does not run)")


def _same(value, default) -> bool:
    """Whether a fit() argument is Keras's default (None, 0.0, True), which says nothing."""
    try:
        return value is default or (isinstance(value, (int, float, bool, str)) and value == default)
    except Exception:  # noqa: BLE001  an array compared to a default: not one
        return False


def _whole(value) -> bool:
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
