"""Where a network comes from: the zoo, a Keras model, or a user's PyTorch code.

A classifier's (or a forecaster's) ``model`` is one of

    "lenet5"                 a zoo name (neuralab zoo)
    "lenet5.keras", "m.h5"   a saved Keras model: its architecture and weights, read as data
    "net.py", "net.py:Net"   a Python file defining a Keras model, or a torch.nn.Module (an
                             instance, a class, or a function returning one); NAME picks one
    a model object           a Keras 3 model or a torch.nn.Module

``resolve`` reads any of them into a ``ModelSource``; ``record()`` is what model.json keeps
under "source" (docs/runs.md) and ``rebuild`` makes the network again from a run directory
alone. Keras models become a spec of plain data (neuralab.keras), so rebuilding them runs no
code. PyTorch code is copied into the run with its SHA-256, and rebuilding runs that copy only
when the caller says it trusts it (``trust_code``), after checking the hash.

Running the file named in ``model`` at training time is what the user asked for; running a
file found in a run directory (which may come from anyone) is not, unless they say so.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import io
import math
import os
import sys
import traceback
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from neuralab.data.sources import sha256
from neuralab.errors import NeuralabError, NotAClassifier, ParameterError
from neuralab.training.config import MAX_SEED, OPTIMIZERS

ZOO, KERAS, TORCH = "zoo", "keras", "torch"
CODE_FILE = "model.py"              # the copy of a user's PyTorch code in a run directory
MODULE_PREFIX = "neuralab_model_"   # sys.modules's name for a model file run (run_file), before its hash
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
MAX_CODE = 4 * 2**20                # bytes: a model file is a page of Python, not a data file
MAX_PAD = 4                         # pixels a model's input may exceed the data's by (28 -> 32, as LeNet-5 pads)
# Keras's names (string or class, lower case) -> TrainConfig's: the optimizers and losses
# a compile() call may name that neuralab's trainer runs the same way
KERAS_OPTIMIZERS = {name: name for name in OPTIMIZERS}
# Keras's own settings, for a compile() that names its optimizer by a string alone ("adam")
KERAS_DEFAULTS = {"adam": {"learning_rate": 0.001}, "adamw": {"learning_rate": 0.001, "weight_decay": 0.004},
                  "sgd": {"learning_rate": 0.01}, "rmsprop": {"learning_rate": 0.001}}
# keyed as keras.spec.loss_name reads them: a name, a function or a loss object, in lower case
# without underscores
KERAS_LOSSES = {
    "sparsecategoricalcrossentropy": "sparse_categorical_crossentropy",
    "categoricalcrossentropy": "categorical_crossentropy",
    # one sigmoid unit's, which a classifier trains as cross-entropy on [0, z] (spec.binary_classifier)
    "binarycrossentropy": "binary_crossentropy",
    "mse": "mse", "meansquarederror": "mse",
    "mae": "mae", "meanabsoluteerror": "mae",
    "huber": "huber", "huberloss": "huber",
}


CANNOT_REBUILD = ("the model was PyTorch code the run cannot rebuild (an object built with arguments, or defined in "
                  "a notebook, a script or a library, or code importing a package beside it)")
# how far a floating point buffer built again may drift in its sums (_sums) and still be the one
# trained with: another machine's or torch version's rounding of sin, exp or a matmul, not a value
# drawn again (which moves them by about 1 / sqrt(its size))
SUMS_RTOL = {2: 1e-3, 4: 1e-5, 8: 1e-5}  # by bytes per value: float16 and bfloat16, float32, float64


def cannot_rebuild(source: dict | None) -> str:
    """What refusals say of a run whose PyTorch model it cannot rebuild: the reason its "source"
    records (``cannot_rebuild``, where neuralab knew it as it trained), else the cases there are."""
    why = (source or {}).get("cannot_rebuild")
    return f"the model was PyTorch code the run cannot rebuild: {why}" if isinstance(why, str) and why else \
        CANNOT_REBUILD


class CodeNotTrusted(ParameterError):
    """A run's model is PyTorch code and the caller did not pass ``trust_code``."""

    def __init__(self, reason: str):
        super().__init__("trust_code", False, reason)
        self.args = (reason,)

    def render(self, name=lambda p: p) -> str:
        return NeuralabError.render(self, name)  # the reason alone: it names `trust_code` itself


class ModelNeeded(ParameterError):
    """A classifier run's PyTorch model is one the run cannot rebuild (model.json's source has
    file null) and the caller gave no ``model``; the command line, which cannot give one, says
    so in its own words."""

    def __init__(self, run_dir):
        from neuralab.files import read_json
        from neuralab.runs import MODEL, json_object

        source = None  # the run's record, which says why where neuralab knew it as it trained
        with contextlib.suppress(NeuralabError, OSError):
            source = json_object(json_object(read_json(Path(run_dir) / MODEL)).get("source"))
        said = cannot_rebuild(source)
        example = "" if said != CANNOT_REBUILD else " (Net(hidden=32), say)"
        reason = (f"{run_dir}: {said}; use the run from Python, passing the module it was trained with, built the "
                  f"same way{example}, as `model`")
        super().__init__("model", None, reason)
        self.args = (reason,)

    def render(self, name=lambda p: p) -> str:
        return NeuralabError.render(self, name)


@dataclass
class ModelSource:
    """A network's origin and what rebuilds it. ``architecture`` is model.json's name for it:
    the zoo name, "keras:<model name>" or "torch:<file>:<name>"."""

    type: str
    architecture: str
    spec: dict | None = None                  # keras: neuralab.keras's spec (plain JSON)
    weights: dict | None = None               # keras: initial weights by layer, or None (Keras's initialisers)
    module: object = None                     # torch: the user's nn.Module, as built
    file: Path | None = None                  # torch: the file defining it
    code: bytes | None = None                 # torch: that file's bytes, as they were run
    name: str | None = None                   # torch: its name in the file
    imports: dict = field(default_factory=dict)  # torch: the files beside it that it imports, name -> bytes
    rebuilt: object = None                    # torch: a module object's class built again, to compare on data
    buffers: dict = field(default_factory=dict)  # torch: its non-persistent buffers as neuralab built it, which
    #                                           no run saves: name -> digest (unsaved_buffers)
    seed: int | None = None                   # torch: the seed it was built under, where just set (_seed_just_set)
    not_kept: str | None = None               # torch: why the run cannot keep its code, where that is known
    compile: dict = field(default_factory=dict)  # keras: compile()'s and fit()'s settings as TrainConfig fields,
    #                                           fit()'s validation_split as ClassifierConfig's val_fraction
    loss: object = None                       # keras: compile()'s loss as Keras gives it, which tells a
    #                                           one-unit model's kind (keras.spec.binary_classifier)
    where: str | None = None                  # keras: what refusals call it: its file, as `neuralab import`
    #                                           names one (None: its architecture)

    # --- what a run stores ------------------------------------------------------------

    def record(self, logits: bool = True) -> dict:
        """model.json's "source" field (docs/runs.md)."""
        if self.type == ZOO:
            return {"type": ZOO}
        if self.type == KERAS:
            return {"type": KERAS, "spec": self.spec, "logits": logits}
        record = {"type": TORCH, "file": self.kept_as if self.code is not None else None, "name": self.name,
                  "sha256": hashlib.sha256(self.code).hexdigest() if self.code is not None else None}
        if self.imports:
            record["imports"] = {n: hashlib.sha256(b).hexdigest() for n, b in sorted(self.imports.items())}
        if self.code is not None and self.buffers:
            record["buffers"] = self.buffers
            if self.seed is not None:
                record["seed"] = self.seed
        if self.code is None and self.not_kept:
            record["cannot_rebuild"] = self.not_kept
        return record

    @property
    def kept_as(self) -> str:
        """The user's file's name in the run: model.py, but where a file it imports is named so
        (the helper keeps that name, which its import asks for): then its own."""
        if CODE_FILE not in self.imports:
            return CODE_FILE
        name = self.file.name
        while name == CODE_FILE or name in self.imports:  # its own name taken too (a link to another model.py)
            name = f"_{name}"
        return name

    def copy_code(self, run_dir: Path) -> None:
        """Put the user's PyTorch file into the run (as ``kept_as``), and the files beside it that
        it imports under their own names, for rebuilding it later; or say, in one warning, why
        the run cannot keep them, where that is known (a package beside the file)."""
        if self.type == TORCH and self.code is not None:
            from neuralab.files import atomic_write

            for name, code in {**self.imports, self.kept_as: self.code}.items():
                with atomic_write(Path(run_dir) / name, "wb") as f:
                    f.write(code)
        elif self.type == TORCH and self.not_kept:
            warnings.warn(f"{self.not_kept}: the run will not rebuild the model from its code, so no command can "
                          "load it, only Python given the module (docs/runs.md); to make it loadable, move what the "
                          "model takes from the package into .py files beside the model's file")

    # --- the network --------------------------------------------------------------------

    @property
    def named(self) -> str:
        """The model as refusals name it: its file where it came from one, else its architecture."""
        return self.where or self.architecture

    def classifier(self, input_shape, num_classes: int, options: dict | None = None, sample=None):
        """The network for images of ``input_shape`` (C, H, W) and ``num_classes`` classes,
        giving logits; refused, naming both shapes, when the model does not fit the data.
        ``sample``: a few input images (N, C, H, W) float, to check a PyTorch module on."""
        if self.type == ZOO:
            from neuralab.models import build_model

            return build_model(self.architecture, input_shape, num_classes, **(options or {}))
        if self.type == KERAS:
            from neuralab.keras.spec import loss_name

            outputs = output_shape(self.spec)[1:]
            if loss_name(self.loss)[0] == "binarycrossentropy" and list(outputs) != [1]:
                # Keras's binary cross-entropy on each of K outputs (several labels an image) is
                # not the K-class cross-entropy a classifier here trains with
                raise NeuralabError(f"{self.named}: compile(loss=binary_crossentropy) on {keras_shape(outputs)} "
                                    "outputs; neuralab trains one class an image: compile with "
                                    "sparse_categorical_crossentropy, or end in Dense(1, activation='sigmoid') "
                                    "for 2 classes")
            return keras_classifier(self.spec, self.weights, input_shape, num_classes, self.named, self.loss)
        shape = tuple(input_shape)
        return self._confirmed(checked_module(self.module, self.architecture, shape, num_classes, sample,
                                              training=True), sample, shape)

    def sequence_network(self, lookback: int, inputs: int, horizon: int, sample=None):
        """The network for windows (N, ``lookback``, ``inputs``) forecasting ``horizon`` steps."""
        if self.type == KERAS:
            from neuralab.keras import build, check, input_shape

            check(self.spec, self.named)
            shape, out = input_shape(self.spec), output_shape(self.spec)
            if len(shape) != 2 or (shape[0] is not None and shape[0] != lookback) or shape[1] != inputs:
                raise NeuralabError(f"{self.named}: the model takes {keras_shape(shape)} inputs, the data "
                                    f"gives windows of (None, {lookback}, {inputs}) (`lookback` {lookback}, "
                                    f"{inputs} input columns); change the model's input or `lookback`")
            if len(out) != 2 or out[1] != horizon:
                raise NeuralabError(f"{self.named}: the model outputs {keras_shape(out[1:])}, a forecast of "
                                    f"`horizon` {horizon} needs (None, {horizon}); end the model in Dense({horizon})")
            return build(self.spec, self.weights)
        if self.type == TORCH:
            shape = (lookback, inputs)
            return self._confirmed(checked_module(self.module, self.architecture, shape, horizon, sample, "steps",
                                                  training=True), sample, shape)
        raise NeuralabError(f"{self.architecture}: not a forecasting network")

    def _confirmed(self, module, sample, shape: tuple):
        """``module``, its record kept only where its class built again computes the same on
        ``sample`` (or zeros of ``shape``) with the same weights: a constructor argument that
        sets no size or plain attribute (``Net(act=torch.tanh)``) shows only in the outputs."""
        import torch

        x = sample if sample is not None else torch.rand(2, *shape)
        if self.rebuilt is not None:
            rebuilt, self.rebuilt = self.rebuilt, None
            with contextlib.suppress(RuntimeError, ValueError):  # lazy layers took their shapes in the pass on the data
                rebuilt.load_state_dict(module.state_dict())
            if not _same_outputs(module, rebuilt, x):
                self.file = self.code = None
                self.imports = {}
        self._refuse_unrepeatable(module, x)
        return module

    def _refuse_unrepeatable(self, module, x) -> None:
        """Refuse, before it trains, a module whose buffers that no run saves come out otherwise when
        its code builds it again under the same seed, as rebuilding the run will (``rebuild``), and
        give it other outputs on ``x`` with the same weights. The record keeps only those that come
        out alike and change the outputs: a reload checks them; a work buffer forward overwrites,
        or one kept for its device alone (fairseq's ``_float_tensor``), it has no need to."""
        import torch

        if not self.buffers or self.file is None:
            return
        kept = {k: m for k, m in sys.modules.items() if k.startswith(MODULE_PREFIX)}  # the model's own classes
        try:
            again = _built_from_file(self.file, self.name, self.imports, self.seed)
        finally:
            sys.modules.update(kept)
        with contextlib.suppress(RuntimeError, ValueError):
            again.load_state_dict(module.state_dict())
        other = _other_buffers(self.buffers, again)
        differs = bool(other) and not _same_outputs(module, again, x)
        with torch.no_grad(), contextlib.suppress(RuntimeError, AttributeError):  # the same network, to tell which count
            for n in other:
                again.get_buffer(n).copy_(module.get_buffer(n))
        matters = [n for n in self.buffers if _matters(module, again, n, x)]
        if differs:
            _refuse_other_buffers([n for n in other if n in matters] or other, self.architecture, self.name,
                                  "each time its code builds it, and those change its outputs")
        self.buffers = {n: d for n, d in self.buffers.items() if n in matters and n not in other}


# --- reading a model from what a user gives ------------------------------------------------

def resolve(model, zoo=None) -> ModelSource:
    """A ``ModelSource`` for ``model``: a zoo name (from ``zoo``, a collection of names; None
    for none), a Keras file, "FILE.py[:NAME]", a Keras 3 model or a torch.nn.Module."""
    if isinstance(model, ModelSource):
        return model
    if not isinstance(model, (str, os.PathLike)):
        return _from_object(model, None, None)
    text = str(model)
    if zoo is not None and text in zoo:
        return ModelSource(ZOO, text)
    path, name = split_name(text)
    if path.suffix.lower() in KERAS_SUFFIXES and name is None:
        return _from_keras_file(path)
    if path.suffix.lower() == ".py":
        imports = local_imports(path)
        from neuralab.training.keras_script import after_fit, calls_said, fit_recorded, taken_from_fit, warn_compiles

        with fit_recorded(path, imports) as read:
            seed = _seed_just_set()  # as a run seeds before it reads its model: rebuild builds it so again
            try:
                obj, name = load_python(path, name, imports)
                failed = None
            except NeuralabError as e:
                failed = after_fit(e, path, read.fits)
        if failed is not None:  # the files put back by then are as they were; those that could not be, said
            if read.not_put_back:
                failed = NeuralabError(f"{failed.args[0]}; it also wrote over {', '.join(read.not_put_back)}, which "
                                       "could not be put back")
            raise failed from None
        # the model's last compile(), which Keras trains with: its warnings name that line
        compiled_at = next((line for m, _, line in reversed(read.compiles) if m is obj), "?")
        source = _from_object(obj, path, name, imports, compiled_at, seed)
        if source.type == KERAS:
            warn_compiles(path, [(config, line) for m, config, line in read.compiles if m is obj])
        if read.fits:
            source.compile = {**source.compile, **taken_from_fit(path, read.fits, obj, source.type == KERAS)}
        if read.saves:
            warnings.warn(f"{calls_said(path, read.saves)}, which neuralab does not run while it reads the file "
                          "for its model: they would write the untrained model over the file's trained one; "
                          f"`python {path.name}` still saves it")
        if read.results:
            warnings.warn(f"{calls_said(path, read.results)}, which neuralab does not run while it reads the file "
                          "for its model: they give NaN where Keras's would give its numbers, in the same shapes (and "
                          f"train_on_batch() trains nothing); `python {path.name}` still runs them")
        if read.put_back:
            one = len(read.put_back) == 1
            warnings.warn(f"{path}: wrote over {', '.join(read.put_back)} as neuralab read it for its model, from a "
                          f"model that was not trained: put back as {'it was' if one else 'they were'}; "
                          f"`python {path.name}` still writes {'it' if one else 'them'}")
        if read.not_put_back:
            one = len(read.not_put_back) == 1
            warnings.warn(f"{path}: wrote over {', '.join(read.not_put_back)} as neuralab read it for its model, from "
                          f"a model that was not trained, and {'it' if one else 'they'} could not be put back; put "
                          f"the lines writing {'it' if one else 'them'} under if __name__ == \"__main__\":, which "
                          "neuralab does not run")
        return source
    known = f"a zoo model ({', '.join(zoo)}), " if zoo else ""
    raise ParameterError("model", text, f"unknown model; give {known}a Keras file (.keras, .h5, .hdf5) or a Python "
                                        "file FILE.py[:NAME] defining a Keras model or a torch.nn.Module")


def split_name(text: str) -> tuple[Path, str | None]:
    """"net.py:Net" -> (net.py, "Net"); "net.py" -> (net.py, None)."""
    head, sep, tail = text.rpartition(":")
    if sep and head.lower().endswith(".py") and tail.isidentifier():
        return Path(head).expanduser(), tail
    return Path(text).expanduser(), None


def _from_keras_file(path: Path) -> ModelSource:
    from neuralab.keras import read

    model = read(path)
    # its weights are trained already: how they were first drawn no longer matters
    _warn_training_only(path.name, [s for s in model.training_only if "_initializer " not in s])
    return ModelSource(KERAS, f"keras:{_model_name(model.spec, path.stem)}", _images(model.spec, model.compile),
                       model.weights, compile=_compile_settings(model.compile, str(path)),
                       loss=(model.compile or {}).get("loss"), where=str(path))


def _compile_settings(config: dict | None, where: str | None) -> dict:
    """``compile_settings``, its warnings and refusals naming the model's file (``where``, with
    the line of a script's compile()) where it has one."""
    try:
        return compile_settings(config, where=where)
    except NeuralabError as e:
        if where is None or type(e) is not NeuralabError:
            raise
        raise NeuralabError(f"{where}: {e.args[0]}") from None


def _warn_training_only(where: str, settings: list[str]) -> None:
    """One warning for what a Keras model sets for training that neuralab's trainer does not
    run (keras.spec.training_only): Keras's own fit keeps them, so the difference is said."""
    if settings:
        more = f" and {len(settings) - 3} more" if len(settings) > 3 else ""
        warnings.warn(f"{where}: {'; '.join(settings[:3])}{more}: not kept; neuralab trains without Keras's "
                      "regularizers and constraints, from Keras's default initialisers (its weight_decay is a "
                      "decoupled decay, not an L2 term in the loss)")


def _images(spec: dict, compile_config: dict) -> dict:
    """The Keras spec as one taking images: TensorFlow's first tutorial gives grey ones without
    their channel axis, Flatten(input_shape=(28, 28)) (keras.spec.grey_images)."""
    from neuralab.keras.spec import grey_images, with_channel

    return with_channel(spec) if grey_images(spec, (compile_config or {}).get("loss")) else spec


def _from_object(obj, path: Path | None, name: str | None, imports: dict | None = None,
                 compiled_at: int | str = "?", seed: int | None = None) -> ModelSource:
    """``obj``'s ModelSource; ``path``, ``name`` and ``imports``: the file defining it, where it
    came from one, ``compiled_at`` the line of that file's compile() of it ("?": unknown) and
    ``seed`` the one it was built under (``_seed_just_set``)."""
    import torch

    if _is_keras(obj):
        from neuralab.keras import read

        try:
            model = read(obj)
        except NeuralabError as e:
            if path is None or type(e) is not NeuralabError:
                raise
            # The reader knows the model by its Keras name alone; the user knows the file they gave
            raise NeuralabError(f"{path}: {e.args[0]}") from None
        # A fresh model from code starts from neuralab's seeded Keras-style initialisation, so
        # that the run is reproducible from its seed; a trained one (from a file) keeps its weights.
        compiled = obj.get_compile_config() if obj.compiled else {}
        _warn_training_only(path.name if path else obj.name, model.training_only)
        where = str(path) if path else None
        at = f"{where}:{compiled_at}" if where and compiled_at != "?" else where
        return ModelSource(KERAS, f"keras:{obj.name}", _images(model.spec, compiled), None,
                           compile=_compile_settings(compiled, at), loss=compiled.get("loss"), where=where)
    rebuilt, built, origin = None, path is not None, None  # built: by code neuralab ran just now, the file given
    if path is None and not _is_model(obj) and callable(obj):  # a class, or a function giving a model
        origin = obj
        name = getattr(origin, "__name__", type(origin).__name__)
        seed, built = _seed_just_set(), True
        with torch_defaults_kept() as changed:
            obj = _materialise(Path(getattr(inspect.getmodule(origin), "__file__", None) or "object"), name, origin,
                               f"give the module built with them, {name}(...), or give them defaults")
        obj = _in_kept_dtype(obj, f"{name}()", changed)
        if not isinstance(obj, torch.nn.Module):
            return _from_object(obj, None, None)
        path = code_file(origin)
        name = name if path is not None else type(obj).__name__  # a lambda's "<lambda>" names nothing
    elif path is None and isinstance(obj, torch.nn.Module):  # a module object: rebuilt as its class, when it can be
        name = type(obj).__name__
        path = code_file(type(obj))
        seed = _seed_just_set()  # the generators its class is built again from (a run's, seeded to build it)
        rebuilt = _rebuilt_alike(obj) if path is not None else None
        if rebuilt is None:
            path = None  # built with arguments: its class called without them is another network
    if not isinstance(obj, torch.nn.Module):
        raise NeuralabError(f"{path or type(obj).__name__}: {name + ' is ' if name else ''}{_a(obj)}, not "
                            "a model; give a Keras model or a torch.nn.Module (an instance, a class, or a function "
                            "returning one)")
    where = path.name if path else "object"
    if path is not None and imports is None:
        imports = local_imports(path)
    not_kept = None
    if imports is None and path is not None:  # code that imports a package beside it: the run cannot keep it
        not_kept, path = package_beside(path), None
    # What a rebuild of the run must build again: the module neuralab built from the code, or a module
    # object's class built again (kept where it computes as the object does, _confirmed); its
    # buffers that no run saves are checked then
    made = obj if built else rebuilt
    buffers = unsaved_buffers(made) if made is not None and path is not None else {}
    if buffers and origin is not None and seed is not None:
        # A class from the caller's session was built under generators its file's top-level code
        # had not run under (a torch.manual_seed there, a helper it imports that draws): built as
        # a rebuild of the run will build it, as a model given as "FILE.py:NAME" is
        obj = _built_from_file(path, name, imports, seed)
        buffers = unsaved_buffers(obj)
    return ModelSource(TORCH, f"torch:{where}:{name}", module=obj, file=path.resolve() if path else None,
                       code=path.read_bytes() if path else None, name=name, imports=imports or {}, rebuilt=rebuilt,
                       buffers=buffers, seed=seed if buffers else None, not_kept=not_kept)


def code_file(obj) -> Path | None:
    """The user's file defining the class or function ``obj``, where running that file alone
    gives it back by its name; None for a library's (torch's nn.Sequential), a package's (its
    file imports its siblings), a notebook's, a script's own (running it would run the script)."""
    module, name = getattr(obj, "__module__", None) or "", getattr(obj, "__qualname__", "")
    if "." in module or module in ("__main__", "builtins") or not name.isidentifier():
        return None
    try:
        found = inspect.getsourcefile(obj)
    except (TypeError, OSError):  # built in, or defined where no file holds it (a notebook cell)
        return None
    if not found or not Path(found).is_file():
        return None
    path = Path(found).resolve()
    import sysconfig

    libraries = {sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")} - {None}
    return None if any(path.is_relative_to(Path(p).resolve()) for p in libraries) else path


def _built_again(module, times: int = 1) -> list | None:
    """``type(module)()``, ``times`` times one after another, or None where the class needs
    arguments: the generators go on from where they are (a value drawn as it builds comes out
    otherwise each time) and are put back after, as are torch's defaults, and what the
    constructor prints or warns is not said again."""
    with _seeded(None), torch_defaults_kept(), warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            return [type(module)() for _ in range(times)]
        except Exception:  # noqa: BLE001  a class that needs its arguments
            return None


def _rebuilt_alike(module):
    """``type(module)()`` with ``module``'s weights, where it has the same layers, settings and
    shapes of weights; None where a constructor argument made another network (``Net(hidden=32)``,
    ``Net(invert=True)``), which a run could not rebuild from its class. ``_same_outputs`` then
    compares the two on data."""
    built = _built_again(module)
    if built is None:
        return None
    made = built[0]
    try:
        if _layout(made) != _layout(module):
            return None
        made.load_state_dict(module.state_dict())
    except Exception:  # noqa: BLE001  settings that cannot be compared are not known to be the same
        return None
    return made


def _layout(module, settings: bool = True):
    """What tells two instances of a class apart as networks: their layers, the shapes of their
    weights and (``settings``) the layers' plain attributes, where constructor arguments show."""
    from torch.nn.parameter import is_lazy

    return ([(n, type(m).__name__, _settings(m) if settings else None) for n, m in module.named_modules()],
            [(n, None if is_lazy(t) else tuple(t.shape)) for n, t in module.state_dict().items()])


def _same_outputs(module, rebuilt, x) -> bool:
    """Whether the two networks give the same outputs on ``x`` (eval mode, no gradients)."""
    import torch

    was = module.training
    try:
        module.eval()
        rebuilt.eval()
        with torch.no_grad():
            a, b = module(x), rebuilt(x)
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    except Exception:  # noqa: BLE001  the class built again fails where the object works: not the same
        return False
    finally:
        module.train(was)


def _settings(module) -> dict:
    """A module's plain attributes (sizes, flags, names): what its constructor's arguments set.
    None is left out with the rest: an attribute None as built that forward has since set to a
    tensor (a cache) tells no constructor argument, and None against a number still differs."""
    plain = (bool, int, float, str, tuple)
    return {k: v for k, v in vars(module).items() if not k.startswith("_") and k != "training"
            and isinstance(v, plain)}


def _is_keras(obj) -> bool:
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(obj, keras.Model)


def _model_name(spec: dict, fallback: str) -> str:
    return spec.get("name") or fallback


# --- Python files ------------------------------------------------------------------------

def load_python(path: Path, name: str | None = None, imports: dict | None = None) -> tuple[object, str]:
    """Run the Python file ``path`` and return the model it defines and its name: NAME when
    given (an object, a class or a function, called without arguments), else the module-level
    ``model``, else its one Keras model or nn.Module instance, else its one nn.Module class.
    ``imports``: the files beside it that it imports (``local_imports``). Torch's process-wide
    defaults are as they were before once it returns (``torch_defaults_kept``)."""
    with torch_defaults_kept() as changed:
        obj, name = _defined(path, name, imports)
    return _in_kept_dtype(obj, path, changed), name


@contextlib.contextmanager
def torch_defaults_kept():
    """Torch's process-wide defaults put back as they were once the user's code has run: the
    default dtype and device and whether autograd records, which a model file may set at its
    top (torch.set_default_dtype(torch.float64)), and which would otherwise outlast it in the
    caller's session and in all that neuralab computes after it (the run's data, its ONNX
    file). Yields a dict that then holds "dtype": (the code's, the one put back) where the
    code set another default dtype."""
    import torch

    dtype, device, grad = torch.get_default_dtype(), torch.get_default_device(), torch.is_grad_enabled()
    changed: dict = {}
    try:
        yield changed
    finally:
        if torch.get_default_dtype() != dtype:
            changed["dtype"] = (torch.get_default_dtype(), dtype)
            torch.set_default_dtype(dtype)
        if torch.get_default_device() != device:
            # None, not "cpu": no default device is torch's own state, and costs nothing per tensor
            torch.set_default_device(None if device == torch.device("cpu") else device)
        torch.set_grad_enabled(grad)


def _in_kept_dtype(obj, where, changed: dict):
    """``obj``, built by code that set another default dtype (``changed``, from
    torch_defaults_kept), with its weights of that dtype cast to the one put back, and one
    warning saying so: neuralab's data are float32, and so is the ONNX file's input."""
    if "dtype" not in changed:
        return obj
    import torch

    theirs, kept = (str(t).removeprefix("torch.") for t in changed["dtype"])
    said = (f"{where}: sets torch's default dtype to {theirs} (torch.set_default_dtype), which neuralab puts back "
            f"to {kept} once the model is built, so that it does not outlast the file in your session")
    if isinstance(obj, torch.nn.Module):
        cast = any(t.dtype == changed["dtype"][0] for t in [*obj.parameters(), *obj.buffers()])
        if cast:
            obj.to(changed["dtype"][1])
        said += f"; the model's {theirs} weights are cast to {kept}" if cast else f"; the model is {kept}"
    warnings.warn(said)
    return obj


def _defined(path: Path, name: str | None, imports: dict | None) -> tuple[object, str]:
    """load_python's model and its name, as it finds them."""
    module = run_file(path, imports)
    found = {k: v for k, v in vars(module).items() if not k.startswith("_")}
    if name is not None:
        if name not in found:
            defined = ", ".join(_candidates(module, found)) or "no model"
            raise NeuralabError(f"{path}: no {name!r} in the file (it defines: {defined})")
        return _materialise(path, name, found[name]), name
    if "model" in found and (_is_model(found["model"]) or _is_module_class(found["model"])
                             or inspect.isfunction(found["model"])):
        return _materialise(path, "model", found["model"]), "model"
    instances = [k for k, v in found.items() if _is_model(v)]
    classes = [k for k, v in found.items() if _is_module_class(v) and v.__module__ == module.__name__]
    for picks in (instances, classes):
        if len(picks) == 1:
            return _materialise(path, picks[0], found[picks[0]]), picks[0]
        if len(picks) > 1:
            raise NeuralabError(f"{path}: defines several models ({', '.join(picks)}); name one: {path.name}:NAME")
    if "model" in found:  # a placeholder (model = None) beside the real one is passed over; alone, it is the mistake
        return _materialise(path, "model", found["model"]), "model"
    # A function is called only when named: which of a file's functions builds the model, and
    # which builds a block of it, only the user knows
    functions = [f"{path.name}:{k}" for k in _candidates(module, found) if inspect.isfunction(found[k])]
    if functions:
        raise NeuralabError(f"{path}: defines no model object or class, only functions; name the one that returns "
                            f"the model: {' or '.join(functions)}")
    raise NeuralabError(f"{path}: defines no model; define a Keras model or a torch.nn.Module (an instance named "
                        f"model, a class, or a function returning one, chosen with {path.name}:NAME)")


def local_imports(path: Path) -> dict | None:
    """The Python files beside ``path`` that it imports, and those they import, as {file name:
    bytes}: a run keeps them with the model's file, so that the file runs again from the run
    alone. None where it imports a package beside it (a folder): a run does not keep one, and
    cannot rebuild the model (``package_beside`` says so)."""
    found, package = _imported_beside(path)
    return None if package else found


def package_beside(path: Path) -> str | None:
    """Why a run cannot keep the code in ``path``: the package beside it that it imports (or a
    file beside it that it imports does), in words; None where it imports none."""
    return _imported_beside(path)[1]


def _imported_beside(path: Path) -> tuple[dict, str | None]:
    """``local_imports``'s files, and ``package_beside``'s reason."""
    import ast

    path = Path(path)
    folder, found, todo = path.parent, {}, [path]
    while todo:
        current = todo.pop()
        try:
            tree = ast.parse(current.read_bytes(), str(current))
        except (SyntaxError, ValueError, OSError):
            continue  # run_file says what is wrong with the model's file; a neighbour's error shows when it runs
        except (RecursionError, MemoryError):  # a run's model.py is parsed before `trust_code` is asked for
            raise _too_nested(current) from None
        names = {a.name.partition(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.partition(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module}
        for name in sorted(names):
            beside = folder / f"{name}.py"
            if (folder / name / "__init__.py").is_file() and not beside.is_file():
                by = path.name if current == path else f"{current.name}, which {path.name} imports,"
                return found, f"{by} imports {name}, a package (a folder) beside it, which a run does not keep"
            if not beside.is_file() or beside.name in found or beside.resolve() == path.resolve():
                continue
            if beside.stat().st_size > MAX_CODE:
                raise NeuralabError(f"{beside}: imported by the model, and larger than {MAX_CODE // 2**20} MB")
            found[beside.name] = beside.read_bytes()
            todo.append(beside)
    return found, None


def _too_nested(path: Path) -> NeuralabError:
    """Python's parser gives up on an expression nested thousands deep ("1+1+...", "---1") with
    RecursionError or MemoryError."""
    return NeuralabError(f"{path}: nested too deeply for Python to parse; write the model as ordinary code")


def run_file(path: Path, imports: dict | None = None):
    """Execute ``path`` as a fresh module; its errors become one line naming file:line.
    ``imports``: the files beside it that it imports; they are imported from beside it, not
    from whatever this process imported under their names before (another run's)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise NeuralabError(f"{path}: file not found") from None
    if not path.is_file() or size > MAX_CODE:
        raise NeuralabError(f"{path}: not a Python file of at most {MAX_CODE // 2**20} MB")
    source = path.read_bytes()
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as e:
        raise NeuralabError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    except (RecursionError, MemoryError):
        raise _too_nested(path) from None
    # Here, not at the top: neuralab.keras reads Keras files with h5py, whose import (0.2 s)
    # a run of a zoo model does not need.
    from neuralab.keras import on_pytorch

    on_pytorch()  # the file may import Keras
    name = f"{MODULE_PREFIX}{hashlib.sha256(source).hexdigest()[:16]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # the file may import its neighbours, as `python FILE.py` lets it
    sys.modules[name] = module  # classes defined there can be found again (pickling, inspect)
    neighbours = [Path(n).stem for n in imports or ()]
    before = {n: sys.modules.pop(n) for n in neighbours if n in sys.modules}
    argv, sys.argv = sys.argv, [str(path)]  # a file that parses its options gets its defaults, not neuralab's
    try:
        with _keras_input_shape_quiet():
            exec(code, module.__dict__)  # noqa: S102  the user named this file as their model
    except SystemExit as e:  # sys.exit() or argparse's exit: the file ends, neuralab goes on to say so
        frames = traceback.extract_tb(e.__traceback__)
        line = next((f.lineno for f in reversed(frames) if f.filename == str(path)), "?")
        raise NeuralabError(f"{path}:{line}: the file exits (SystemExit {e.code!r}) as neuralab reads it for its "
                            "model; put what ends it under if __name__ == \"__main__\":, which neuralab does not "
                            "run") from None
    except Exception as e:  # noqa: BLE001  any error in the user's code becomes one line
        frames = traceback.extract_tb(e.__traceback__)
        line = next((f.lineno for f in reversed(frames) if f.filename == str(path)), "?")
        where, text, hint = f"{path}:{line}", str(e), _import_hint(e)
        # An error in a file beside it that it imports: that file's line, which the user must fix
        inner = ((e.filename, e.lineno, e.msg) if isinstance(e, SyntaxError) and e.filename else
                 next(((f.filename, f.lineno, text) for f in reversed(frames) if _beside(f.filename, folder)),
                      (None, None, text)))
        if inner[0] and inner[0] != str(path) and _beside(inner[0], folder):
            where, text, hint = f"{inner[0]}:{inner[1]}", inner[2], f" (from {path}:{line}){hint}"
        from neuralab.training.keras_script import Refused

        big = _too_big(e)  # a model built at the file's top level (model = Net())
        if big:
            raise NeuralabError(f"{where}: {big}") from None
        kind = "" if isinstance(e, (Refused, NeuralabError)) else f"{type(e).__name__}: "  # it says what to do
        raise NeuralabError(f"{where}: {kind}{text.splitlines()[0] if text else ''}{hint}") from None
    finally:
        sys.argv = argv
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
        for n in neighbours:
            sys.modules.pop(n, None)
        sys.modules.update(before)
    return module


def _beside(filename: str, folder: str) -> bool:
    """Whether ``filename`` (a traceback's) is a file in the model file's ``folder``."""
    file = Path(filename)
    return file.is_file() and file.resolve().parent == Path(folder)


@contextlib.contextmanager
def _keras_input_shape_quiet():
    """Keras's warnings against ``input_shape=`` on a layer, silenced: the workshop's listings
    (and most tutorials) pass it, neuralab reads it as Keras does, and the advice would print
    even with --quiet. Other warnings stay."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"(Do not pass an `input_shape`|Argument `input_shape` is deprecated)",
                                UserWarning, r"keras(\.|$)")
        yield


def _import_hint(e: Exception) -> str:
    """What to do about a model file's failed import of Keras or TensorFlow (the workshop's
    listings import tensorflow.keras, which neuralab's Keras 3 on PyTorch replaces)."""
    if not isinstance(e, ImportError):
        return ""
    if getattr(e, "name", None) == "tensorflow" or "tensorflow" in str(e):
        return ("; neuralab runs Keras 3 on PyTorch, without TensorFlow: import from keras (from keras.models "
                "import Sequential, from keras import layers) instead of tensorflow.keras")
    return "; install Keras 3: pip install 'neuralab[keras]'" if "keras" in str(e) else ""


def _is_model(obj) -> bool:
    torch = sys.modules.get("torch")
    return _is_keras(obj) or (torch is not None and isinstance(obj, torch.nn.Module))


def _is_module_class(obj) -> bool:
    torch = sys.modules.get("torch")
    return inspect.isclass(obj) and torch is not None and issubclass(obj, torch.nn.Module)


def _candidates(module, found: dict) -> list[str]:
    return [k for k, v in found.items() if _is_model(v) or (_is_module_class(v) and v.__module__ == module.__name__)
            or (inspect.isfunction(v) and v.__module__ == module.__name__)]


def _materialise(path: Path, name: str, obj, fix: str = "give defaults, or a function returning the model"):
    """An object, or what a class or function gives when called without arguments; ``fix``:
    what to do about arguments it requires."""
    if _is_model(obj):
        return obj
    if callable(obj):
        try:
            with _keras_input_shape_quiet():
                made = obj()
        except Exception as e:  # noqa: BLE001  the user's constructor: one line, file and line
            line = next((f.lineno for f in reversed(traceback.extract_tb(e.__traceback__))
                         if f.filename == str(path)), None) or _defined_at(obj)
            big = _too_big(e)
            if big:
                raise NeuralabError(f"{path}:{line}: {name}() failed: {big}") from None
            text = str(e).splitlines()[0] if str(e) else ""
            # "neuralab calls it without arguments" is the cause only where the call lacked them
            said = f"; neuralab calls it without arguments ({fix})" if _wants_arguments(obj, e) else ""
            raise NeuralabError(f"{path}:{line}: {name}() failed: {type(e).__name__}: {text}{said}") from None
        if _is_model(made):
            return made
        raise NeuralabError(f"{path}: {name}() returns {_a(made)}, not a Keras model or torch.nn.Module")
    raise NeuralabError(f"{path}: {name} is {_a(obj)}, not a Keras model or torch.nn.Module "
                        "(an instance, a class, or a function returning one)")


def _wants_arguments(made, error: Exception) -> bool:
    """Whether calling ``made`` without arguments failed for the want of them: its signature
    binds none, or, where it has no signature to read, the TypeError says an argument is
    missing. A signature that binds none failed inside: a call the constructor makes
    (nn.Linear(hidden)) lacks one, the user's own mistake, which its line shows."""
    if not isinstance(error, TypeError):
        return False
    try:
        inspect.signature(made).bind()
    except TypeError:
        return True
    except ValueError:  # no signature to read (a builtin): the message tells
        return "missing" in str(error) and "argument" in str(error)
    return False


def _too_big(error: BaseException) -> str | None:
    """What to say of user code that ran out of memory building its model (a layer of
    200,000 x 200,000 weights asks for 160 GB), or None for another error."""
    from neuralab.errors import out_of_memory

    said = out_of_memory(error)
    if said is None:
        return None
    asked = said.partition("asked for ")[2]  # the one allocation that failed: a lower bound of the whole
    needs = f"the model needs at least {asked} to build (one of its tensors alone asks for that)" if asked else \
        "the model needs more memory to build than there is"
    return f"not enough memory: {needs}; make it smaller (fewer or narrower layers)"


def _a(obj) -> str:
    """"an int", "a float": what the user gave, in words."""
    kind = type(obj).__name__
    return f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}"


def _defined_at(obj) -> int | str:
    """The line where ``obj`` is defined ("?" where no source says): an error raised by the
    call itself (a missing argument) has no line of the user's file in its traceback."""
    try:
        return inspect.getsourcelines(obj)[1]
    except (TypeError, OSError):
        return "?"


# --- fitting a network to the data ---------------------------------------------------------

def parse_scale(text) -> float:
    """"1/255" or "0.5" -> a positive number."""
    from fractions import Fraction

    try:
        value = float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError):
        raise ParameterError("scale", text, "give a number or a fraction such as 1/255") from None
    if not value > 0:
        raise ParameterError("scale", text, "must be greater than 0")
    return value


def keras_pixels(spec: dict, scale, channels: int) -> tuple[float, dict]:
    """What a Keras image model's inputs were, pixels x ``scale`` (None: keras.spec.pixel_scale,
    1 under a Rescaling layer, else the workshop's 1/255), and the Preprocess fields that give
    a neuralab run those inputs: Preprocess maps uint8 pixels p to (p / 255 - mean) / std, so
    mean 0 and std 1 / (255 scale) give p x scale."""
    from neuralab.keras.spec import pixel_scale

    scale = parse_scale(pixel_scale(spec) if scale is None else scale)
    return scale, {"mean": [0.0] * channels, "std": [1 / (255 * scale)] * channels}


def keras_classifier(spec: dict, weights, input_shape, num_classes: int, name: str, loss=None):
    """The Keras model as a PyTorch classifier giving logits (a final softmax left out) for
    images of ``input_shape`` (C, H, W); one sigmoid unit (compile()'s ``loss`` tells, see
    keras.spec.binary_classifier) classifies 2 classes, as logits [0, z]. A model wanting up
    to MAX_PAD more pixels per side (LeNet-5's 32x32 on 28x28 digits) gets the data
    zero-padded around, as the zoo's LeNet-5.
    A model leaving its height or width free (``keras.Input((None, None, 1))``, a fully
    convolutional network) takes the data's: a dataset gives it, and the run keeps it.
    Sides are at most data.pictures.MAX_SIDE pixels, as every classifier run's."""
    from torch import nn

    from neuralab.data.pictures import MAX_SIDE
    from neuralab.keras import build, check
    from neuralab.keras import input_shape as keras_input
    from neuralab.keras.spec import (
        binary_classifier,
        ends_in_softmax,
        loss_name,
        refuse_free_rows,
        refuse_vectors,
        with_input,
    )

    want = tuple(keras_input(check(spec, name)))
    out = output_shape(spec)
    refuse_vectors(spec, name)  # Keras's MNIST MLP: no forecaster, an image classifier flattened by hand
    refuse_free_rows(spec, loss, name)  # an LSTM classifier on rows of any length: no forecaster either
    if len(want) != 3:
        raise NotAClassifier(f"{name}: the model takes {keras_shape(want)} inputs, not images (height, width, "
                             "channels); a sequence model is a forecaster (neuralab.forecasting)")
    if any(v is None for v in input_shape):
        raise NeuralabError(f"{name}: the model takes images of any height and width, and needs a fixed size "
                            "here: train it on a dataset (`data`), which gives one, or save it with "
                            "keras.Input((height, width, channels))")
    have = tuple(int(v) for v in input_shape)
    if None in want[1:]:  # sides the model leaves free: the data's
        want = (want[0], *(h if w is None else w for w, h in zip(want[1:], have[1:])))
    if any(v > MAX_SIDE for v in want[1:]):
        raise NeuralabError(f"{name}: the model takes images of {_hwc(want)}, larger than the {MAX_SIDE} pixels a "
                            "side that neuralab's classifiers take; change the model's input shape")
    pad_h, pad_w = want[1] - have[1], want[2] - have[2]
    padded = 0 <= pad_h <= MAX_PAD and 0 <= pad_w <= MAX_PAD
    if want[0] != have[0] or not padded:
        instead = _read_as(f"pictures of {_hwc(want)}", want[0] if want[0] != have[0] else None,
                           None if padded else want[1:])
        raise NeuralabError(f"{name}: the model takes images of {_hwc(want)} (height x width x channels), the data "
                            f"has {_hwc(have)}; change the model's input shape to {_hwc(have)}{instead}")
    k = 2 if binary_classifier(spec, loss, name) else out[1] if len(out) == 2 else None
    if k != num_classes:
        got = " (2 classes, one sigmoid unit)" if k == 2 and out[1] == 1 else ""
        raise NeuralabError(f"{name}: the model outputs {keras_shape(out[1:])}{got}, the data has {num_classes} "
                            f"classes; end the model in Dense({num_classes}, activation='softmax')")
    key, options = loss_name(loss)
    categorical = (k != 2 or out[1] != 1) and key in ("sparsecategoricalcrossentropy", "categoricalcrossentropy")
    if categorical and options.get("from_logits") is not True and not ends_in_softmax(spec):
        # A learner's usual slip; Keras would train on log(outputs) clipped to [1e-7, 1], which stalls.
        warnings.warn(f"{name}: ends without a softmax and is compiled with a cross-entropy on probabilities "
                      "(from_logits=False): Keras would read its outputs as probabilities, neuralab reads them as "
                      "logits, as from_logits=True would; end it in a softmax or compile with from_logits=True to "
                      "make that explicit")
    if categorical and options.get("from_logits") is True and ends_in_softmax(spec):
        # The converse slip: Keras would take the softmax of its probabilities, squashed twice, which trains slowly
        warnings.warn(f"{name}: ends in a softmax and is compiled with a cross-entropy on logits (from_logits=True): "
                      "Keras would read its probabilities as logits and squash them twice, neuralab trains on the "
                      "logits before the softmax, as from_logits=False would; compile with from_logits=False (the "
                      "default) or leave the softmax out to make that explicit")
    if None in keras_input(spec):
        spec = with_input(spec, (want[1], want[2], want[0]), name)
    net = build(spec, weights, logits=True)
    if pad_h or pad_w:  # as models/lenet.py: the top/left border gets the smaller half
        pad = nn.ZeroPad2d((pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        net = nn.Sequential(OrderedDict(pad=pad, keras=net))
    return net


# what a user's module is given, by what it outputs: PyTorch's layout, which code written for Keras's
# channels-last images or for flattened vectors does not expect
INPUT_LAYOUT = {"classes": "images as (batch, channels, height, width)", "steps": "windows as (batch, steps, inputs)"}
ONE = {"classes": "class", "steps": "step"}


def checked_module(module, name: str, input_shape: tuple, outputs: int, sample=None, what: str = "classes",
                   training: bool = False):
    """The user's PyTorch module after one forward pass on ``sample`` (or zeros of
    ``input_shape``): it must give (N, ``outputs``). ``training``: it is about to be trained,
    so its weights must be ones the optimizer sees and the run saves, and a classifier giving
    probabilities, not logits, is warned about."""
    import torch

    x = sample if sample is not None else torch.zeros(2, *input_shape)
    shape = f"({', '.join(['N', *map(str, input_shape)])})"
    hidden = _not_kept(module, name) if training else []
    was = module.training
    module.eval()
    # the first convolution called, and the channels it was given: a model for colour pictures
    # fails there on grey ones, which PyTorch says in its own terms
    first: list = []

    def called(layer: str):
        return lambda conv, args: None if first else first.append((layer, conv, getattr(args[0], "shape", ())))
    hooks = [m.register_forward_pre_hook(called(n)) for n, m in module.named_modules()
             if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            y = module(x)
    except Exception as e:  # noqa: BLE001  the user's forward: one line naming both shapes
        layer, conv, got = first[0] if first else (None, None, ())
        k, c = (conv.in_channels, x.shape[1]) if conv is not None else (0, 0)
        if what == "classes" and len(got) == 4 and got[1] == c and 0 < k != c:  # the data's channels, as they came
            raise NeuralabError(f"{name}: the model wants {k} channels (its first convolution, {layer}, is "
                                f"nn.Conv2d({k}, ...)), the data has {c}: images {shape}; make that layer "
                                f"nn.Conv2d({c}, ...){_read_as(f'{k}-channel pictures', k)}") from None
        raise NeuralabError(f"{name}: the model fails on the data's inputs {shape}, {INPUT_LAYOUT[what]}: "
                            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    finally:
        for hook in hooks:
            hook.remove()
        module.train(was)
    batch = x.shape[0]
    needs = f"(N, {outputs}) ({outputs} {what if outputs != 1 else ONE[what]})"
    if isinstance(y, (tuple, list, dict)):  # (logits, features), {"logits": ...}: research code's habit
        parts = ("{" + ", ".join(f"{k!r}: {_shape_of(v, batch)}" for k, v in y.items()) + "}" if isinstance(y, dict)
                 else ", ".join(_shape_of(v, batch) for v in y))
        raise NeuralabError(f"{name}: on inputs {shape} the model returns {_a(y)} of {parts}; the data needs one "
                            f"tensor {needs}: return that alone from forward")
    if not isinstance(y, torch.Tensor) or y.dim() != 2 or y.shape[1] != outputs:
        raise NeuralabError(f"{name}: on inputs {shape} the model gives {_shape_of(y, batch)}, the data needs "
                            f"{needs}; {_output_fix(y, outputs, what)}")
    if training:
        _trainable(module, name, y if what == "classes" else None, hidden)
    return module


def _output_fix(y, outputs: int, what: str) -> str:
    """What to change in a module whose output ``y`` is not (N, ``outputs``)."""
    import torch

    last = f"make its last layer output {outputs} (nn.Linear(..., {outputs}))"
    if not isinstance(y, torch.Tensor):
        return f"return one tensor (batch, {outputs}) from forward"
    if y.dim() == 2:
        return f"{last} or give `horizon` {y.shape[1]}" if what == "steps" else last
    if y.dim() == 1:  # a squeeze(-1) or a view(-1) took the outputs' axis away
        return f"return (batch, {outputs}) from forward: drop the squeeze" + ("" if outputs == 1 else f", and {last}")
    flat = y.dim() > 2 and y.shape[0] > 0 and y[0].numel() == outputs  # (N, 10, 1, 1) from a final convolution
    return f"return (batch, {outputs}) from forward" + (": flatten it (.flatten(1))" if flat else "")


def _shape_of(y, batch: int | None = None) -> str:
    """``y``'s shape as refusals give it: its first size is N where it is the ``batch`` given,
    which the user knows as N, not as the few inputs neuralab tried the model on."""
    if not hasattr(y, "shape"):
        return type(y).__name__
    sizes = ["N" if i == 0 and v == batch else str(v) for i, v in enumerate(y.shape)]
    return f"({', '.join(sizes)}{',' if len(sizes) == 1 else ''})"


# why _not_kept refuses a tensor: never trained; drawn afresh when loaded; or not known to be built alike
WEIGHT, DRAWN, UNTOLD = "weight", "drawn", "untold"


def _not_kept(module, name: str) -> list[tuple[str, str, str]]:
    """The tensors ``module`` keeps where PyTorch does not register them (models.summary's
    ``unregistered``) that a run cannot do without, as (attribute, what to use instead, WEIGHT
    or DRAWN), and one warning for those it can. Weights (a tensor requiring grad, layers in a
    plain list) would never be trained. A tensor that does not require grad is judged by
    building the class again, twice: one drawn at random as it is built (DRAWN: the run loaded
    again draws another) is refused; a constant, which the code builds alike, computes the same
    and is warned about (it stays behind when the model moves to a device); one the class does
    not build (forward keeps it: attention maps, the last activations) or builds alike but holds
    otherwise by now (forward wrote over it) is no part of the network. Where the class cannot
    be built again alike (it needs arguments, or was given others: Net(width=16)), whether
    they are drawn cannot be told, and they are refused (UNTOLD), as a reload could compute
    with others."""
    import torch

    from neuralab.models.summary import unregistered

    found = unregistered(module)
    fixed = {n: t for n, _ in found for t in [_attribute(module, n)]
             if isinstance(t, torch.Tensor) and not t.requires_grad}
    refused = [(n, use, WEIGHT) for n, use in found if n not in fixed]
    if not fixed:
        return refused
    uses = dict(found)
    built = _built_again(module, 2)
    try:  # its settings aside: forward may have set a plain attribute that was None (self.last)
        alike = built is not None and all(_layout(b, settings=False) == _layout(module, settings=False) for b in built)
    except Exception:  # noqa: BLE001  a state_dict() that fails is no network known to be the same
        alike = False
    if not alike:
        return refused + [(n, uses[n], UNTOLD) for n in fixed]
    constants = []
    for n, t in fixed.items():
        first, second = (_attribute(b, n) for b in built)
        if not isinstance(first, torch.Tensor):  # not built: set since, by forward
            continue
        if not _same_values(first, second):
            refused.append((n, uses[n], DRAWN))
        elif _same_values(t, first):
            constants.append(n)
    if constants:
        it = "it" if len(constants) == 1 else "them"
        warnings.warn(f"{name}: keeps {_plain_tensors(constants)}, which PyTorch does not register: built alike every "
                      f"time, the run loaded again computes with the same values, but a model moved to a device "
                      f"(.to(device)) leaves {it} behind; register {it} with "
                      + ", ".join(f'self.register_buffer("{n.rpartition(".")[2]}", ..., persistent=False)'
                                  for n in constants))
    return refused


def _plain_tensors(names) -> str:
    """"proj as a plain tensor", "mean, std as plain tensors"."""
    names = list(names)
    return f"{', '.join(names)} as {'a plain tensor' if len(names) == 1 else 'plain tensors'}"


def _attribute(module, where: str):
    """The plain attribute ``where`` ("block.0.proj") of ``module`` or one of its layers, or None."""
    path, _, key = where.rpartition(".")
    try:
        return vars(module.get_submodule(path) if path else module).get(key)
    except AttributeError:
        return None


def _same_values(a, b) -> bool:
    """Whether tensors ``a`` and ``b`` hold the same values (NaN where NaN is), wherever they are."""
    import torch

    try:
        a, b = a.detach().cpu(), b.detach().cpu()
        if (a.dtype, a.shape) != (b.dtype, b.shape):
            return False
        return torch.equal(a, b) or (a.is_floating_point() and bool(((a == b) | (a.isnan() & b.isnan())).all()))
    except (RuntimeError, TypeError, NotImplementedError):  # a meta or quantized tensor has no values to compare
        return False


def _trainable(module, name: str, logits=None, hidden=()) -> None:
    """Refuse a module with nothing the optimizer would train, or ``hidden`` tensors (from
    ``_not_kept``) no run would keep; warn where a classifier's outputs ``logits`` are
    probabilities."""
    import torch

    if hidden:
        where = ", ".join(f"{n} (use {use})" for n, use, _ in hidden)
        why = []
        weights = [n for n, _, kind in hidden if kind == WEIGHT]
        drawn = [n for n, _, kind in hidden if kind == DRAWN]
        untold = [n for n, _, kind in hidden if kind == UNTOLD]
        if weights:
            why.append(f"no parameters() or state_dict() holds {', '.join(weights)}, so "
                       f"{'it' if len(weights) == 1 else 'they'} would be neither trained nor saved")
        if drawn:
            one = len(drawn) == 1
            why.append(f"{', '.join(drawn)} {'is' if one else 'are'} drawn at random as the module is built, and no "
                       f"state_dict() holds {'it' if one else 'them'}, so the run loaded again would draw "
                       f"{'another' if one else 'others'} and compute another network")
        if untold:
            one = len(untold) == 1
            why.append(f"no state_dict() holds {', '.join(untold)}, and {type(module).__name__}() cannot be built "
                       "again as it is (it takes arguments, or a function built it) to tell whether the run loaded "
                       f"again builds {'it' if one else 'them'} alike")
        raise NeuralabError(f"{name}: keeps tensors where PyTorch does not register them: {where}; {'; '.join(why)}")
    params = list(module.parameters())
    if not any(p.requires_grad for p in params):
        why = "every parameter has requires_grad=False" if params else "it holds no nn.Parameter"
        raise NeuralabError(f"{name}: has nothing to train ({why}); leave some of its layers trainable")
    if logits is not None and logits.shape[1] > 1 and torch.isfinite(logits).all() and logits.min() >= 0 \
            and torch.allclose(logits.sum(1), torch.ones_like(logits[:, 0]), atol=1e-4):
        # cross-entropy on the softmax of a softmax: small gradients, slow learning, and predict's
        # probabilities squashed towards 1 / classes; a log_softmax trains as the logits would
        warnings.warn(f"{name}: its outputs are probabilities (each row sums to 1: a final softmax); neuralab reads "
                      "a model's outputs as logits and applies the softmax itself, in the loss and in predict, so "
                      "it would train slowly and predict flattened probabilities; leave the softmax out of forward "
                      "(a final log_softmax is fine)")


def _read_as(what: str, channels: int | None, size: tuple | None = None) -> str:
    """", or give it WHAT: a folder of pictures read with `color` rgb": how the data could give a
    model the pictures it takes (``what``), a folder's being read with the ``channels`` (1 or 3)
    and the (height, width) ``size`` asked for; "" where neither helps. A named dataset's
    pictures come as they are."""
    if channels is not None and channels not in (1, 3):
        return ""
    asked = ([f"`color` {'rgb' if channels == 3 else 'grayscale'}"] if channels else []) + \
        ([f"`image_size` {size[0]}x{size[1]}"] if size else [])
    return f", or give it {what}: a folder of pictures read with {' and '.join(asked)}" if asked else ""


def output_shape(spec: dict) -> list:
    """The Keras model's output shape, (None, ...)."""
    return {e["name"]: e for e in spec["layers"]}[spec["output"]]["output_shape"]


def _hwc(chw) -> str:
    c, h, w = chw
    return f"{h}x{w}x{c}"


def keras_shape(shape) -> str:
    return "(" + ", ".join(["None", *("None" if v is None else str(v) for v in shape)]) + ")"


# --- Keras's compile() settings -------------------------------------------------------------

def compile_settings(config: dict | None, logits: bool = True, where: str | None = None) -> dict:
    """The optimizer, learning rate, momentum and loss given to Keras's compile() (its
    ``get_compile_config()``, or a .keras file's compile_config) as TrainConfig's fields;
    the trainer applies those its TrainConfig has. Cross-entropies on a softmax model trained
    on its logits are neuralab's cross-entropy (the same loss, computed stably). Keras's
    optimizers keep their learning rate constant: the schedule is "constant". A learning-rate
    schedule is no rate neuralab's trainer can run: its initial rate is taken, under neuralab's
    own schedule, and a warning says so. ``where``: what the warnings name the compile() by,
    the model's file (FILE.py:LINE for a script's call)."""
    from neuralab.keras.spec import loss_name

    said = f"{where}: " if where else ""
    out: dict = {}
    opt = (config or {}).get("optimizer")
    if isinstance(opt, str):
        opt = {"class_name": opt, "config": {}}
    if isinstance(opt, dict):
        cls = str(opt.get("class_name", "")).lower()
        if cls not in KERAS_OPTIMIZERS:
            raise NeuralabError(f"compile(optimizer={opt.get('class_name')!r}): neuralab trains with "
                                f"{', '.join(KERAS_OPTIMIZERS)}; compile with one of those")
        out["optimizer"] = KERAS_OPTIMIZERS[cls]
        c = {**KERAS_DEFAULTS.get(cls, {}), **(opt.get("config") or {})}
        rate = c.get("learning_rate")
        if isinstance(rate, dict):  # a schedule: {"class_name": "ExponentialDecay", "config": {...}}
            rate = _scheduled(opt.get("class_name"), rate, said)
        else:  # Keras's fit steps at this rate throughout; onecycle would warm it up from a 25th and anneal it to ~0
            out["schedule"] = "constant"
        if isinstance(rate, (int, float)) and not isinstance(rate, bool):
            out["lr"] = float(f"{rate:.7g}")  # Keras keeps it in float32
        if isinstance(c.get("momentum"), (int, float)) and cls in ("sgd", "rmsprop"):
            out["momentum"] = float(f"{c['momentum']:.7g}")
        if isinstance(c.get("weight_decay"), (int, float)) and c["weight_decay"]:
            out["weight_decay"] = float(f"{c['weight_decay']:.7g}")
        if isinstance(c.get("global_clipnorm"), (int, float)) and c["global_clipnorm"] > 0:
            out["grad_clip"] = float(f"{c['global_clipnorm']:.7g}")  # the norm over every gradient: clip_grad_norm_'s
        _warn_not_kept(f"{said}compile(optimizer={str(opt.get('class_name'))[:40]}(...))", c, _KERAS_OPTIMIZER_DEFAULTS,
                       f"neuralab's {out['optimizer']} keeps its own values of them (global_clipnorm alone is "
                       "kept, as grad_clip)")
    loss = (config or {}).get("loss")
    if isinstance(loss, dict) and isinstance(loss.get("config"), dict):
        _warn_not_kept(f"{said}compile(loss={str(loss.get('class_name'))[:40]}(...))", loss["config"],
                       _KERAS_LOSS_DEFAULTS, "neuralab's loss is the plain one, averaged over the batch")
    key = loss_name(loss)[0]
    if key is not None:
        if key not in KERAS_LOSSES:
            known = ", ".join(sorted(set(KERAS_LOSSES.values())))
            raise NeuralabError(f"compile(loss={key!r}): neuralab trains with {known}")
        ours = KERAS_LOSSES[key]
        out["loss"] = "cross_entropy" if logits and "crossentropy" in ours.replace("_", "") else ours
    return out


# Keras's defaults of the compile() settings neuralab's trainer has no field for: one set
# otherwise would be dropped without a word (a warning says so instead)
_KERAS_OPTIMIZER_DEFAULTS = {"nesterov": False, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False,
                             "rho": 0.9, "centered": False, "clipnorm": None, "clipvalue": None, "use_ema": False,
                             "gradient_accumulation_steps": None}
_KERAS_LOSS_DEFAULTS = {"label_smoothing": 0.0, "ignore_class": None, "reduction": "sum_over_batch_size", "axis": -1}


def _warn_not_kept(call: str, config: dict, defaults: dict, instead: str) -> None:
    """One warning naming the settings of ``config`` that differ from Keras's ``defaults``, and
    what neuralab does ``instead``."""
    def differs(value, default) -> bool:
        if isinstance(value, (int, float)) and isinstance(default, (int, float)) and not isinstance(value, bool):
            return not math.isclose(value, default, rel_tol=1e-6)  # Keras stores its numbers in float32
        return value != default

    given = [f"{k}={config[k]!r}" for k in defaults if k in config and differs(config[k], defaults[k])]
    if given:
        warnings.warn(f"{call}: {', '.join(given)[:200]}: not kept; {instead}")


def _scheduled(optimizer, schedule: dict, said: str = ""):
    """The rate a Keras learning-rate schedule starts from (None where it names none), which the
    run takes as its rate under neuralab's own schedule; a warning (``said`` first: the file)
    says so, since neuralab's schedules (onecycle, cosine, constant over the whole run) are none
    of Keras's."""
    kind = str(schedule.get("class_name"))[:40]
    c = schedule.get("config") if isinstance(schedule.get("config"), dict) else {}
    rate = c.get("initial_learning_rate")
    rate = rate if isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 < rate < math.inf else None
    used = (f"its initial_learning_rate, {rate:.7g}, as the rate" if rate is not None
            else "neuralab's default rate")
    warnings.warn(f"{said}compile(optimizer={str(optimizer)[:40]}(learning_rate={kind}(...))): neuralab does not run "
                  f"Keras's learning-rate schedules; the run trains with {used} (unless given one) under "
                  "neuralab's own schedule (onecycle unless another is given)")
    return rate


# --- rebuilding from a run -------------------------------------------------------------------

def check_record(source, where: str) -> dict:
    """model.json's "source" (absent: a zoo run), checked for shape before anything is built."""
    if source is None:
        return {"type": ZOO}
    if not isinstance(source, dict) or source.get("type") not in (ZOO, KERAS, TORCH):
        raise NeuralabError(f"{where}: field 'source' must be an object whose type is zoo, keras or torch")
    if source["type"] == KERAS and not (isinstance(source.get("spec"), dict) and source.get("logits") in (True, False)):
        raise NeuralabError(f"{where}: field 'source' of a Keras model needs its spec and logits (true/false)")
    if source["type"] == KERAS:
        from neuralab.keras import check

        check(source["spec"], where, "source.spec")
    if source["type"] != TORCH:
        return source
    file = source.get("file")
    if not ((file is None or _file_name(file)) and isinstance(source.get("name"), str)
            and str(source["name"]).isidentifier()):
        raise NeuralabError(f"{where}: field 'source' of a PyTorch model needs file (its copy in the run, "
                            f"{CODE_FILE!r}, or a file name NAME.py) and the model's name in it")
    imports = source.get("imports", {})
    if not (isinstance(imports, dict) and all(
            isinstance(n, str) and n.endswith(".py") and n[:-3].isidentifier() and n != file
            and isinstance(h, str) for n, h in imports.items())):
        raise NeuralabError(f"{where}: field 'source.imports' must map file names (NAME.py) to their SHA-256")
    buffers = source.get("buffers", {})
    if not (isinstance(buffers, dict) and all(isinstance(n, str) and _well_formed_digest(d) for n, d in buffers.items())):
        raise NeuralabError(f"{where}: field 'source.buffers' must map buffer names to their dtype, shape, SHA-256 "
                            "and sums")
    seed = source.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise NeuralabError(f"{where}: field 'source.seed' must be a whole number from 0 to {MAX_SEED}")
    if not isinstance(source.get("cannot_rebuild", ""), str):
        raise NeuralabError(f"{where}: field 'source.cannot_rebuild' must be text")
    return source


def _file_name(name) -> bool:
    """Whether ``name`` is a Python file's name, without a folder: what a run keeps code under."""
    return isinstance(name, str) and name.endswith(".py") and len(name) > 3 and name == Path(name).name \
        and not name.startswith(".") and not any(c in name for c in "\\/\0")


def _well_formed_digest(digest) -> bool:
    """Whether ``digest`` has the fields of unsaved_buffers's."""
    sums = digest.get("sums", [0.0] * 3) if isinstance(digest, dict) else None
    return isinstance(digest, dict) and isinstance(digest.get("dtype"), str) and isinstance(digest.get("sha256"), str) \
        and isinstance(digest.get("shape"), list) and all(type(v) is int and v >= 0 for v in digest["shape"]) \
        and isinstance(sums, list) and len(sums) == 3 \
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in sums)


def rebuild(source: dict, run_dir: Path, trust_code: bool = False):
    """A run's network from its "source" record, without weights: a Keras spec is built
    (no code runs); PyTorch code runs only with ``trust_code``, after its SHA-256 is checked."""
    run_dir = Path(run_dir)
    if source["type"] == KERAS:
        from neuralab.keras import build

        return build(source["spec"], logits=source["logits"])
    if source["type"] != TORCH:
        raise NeuralabError(f"{run_dir}: a zoo run is built from its architecture")
    if source.get("file") is None:
        raise NeuralabError(f"{run_dir}: {cannot_rebuild(source)}; load model.safetensors into your module with "
                            "neuralab.training.checkpoint.load_weights")
    path = run_dir / source["file"]
    imports = source.get("imports", {})
    for name, digest in {source["file"]: source.get("sha256"), **imports}.items():
        if not (run_dir / name).is_file():
            raise NeuralabError(f"{run_dir / name}: missing; the run's model is PyTorch code kept in the run")
        if sha256(run_dir / name, "file") != digest:
            raise NeuralabError(f"{run_dir / name}: changed since the run was made (its SHA-256 differs from "
                                "model.json's); the weights belong to the code as it was")
    found, package = _imported_beside(path)  # what running the code would import from the run's folder
    unrecorded = sorted(set(found) - set(imports)) + (["a package"] if package else [])
    if unrecorded:
        raise NeuralabError(f"{path}: imports {', '.join(unrecorded)} from the run's folder, which model.json does not "
                            "record; the run is not as neuralab made it")
    if not trust_code:
        also = f" and {', '.join(sorted(imports))}" if imports else ""
        raise CodeNotTrusted(f"{path}: the run's model is PyTorch code ({source['name']}{also}), which runs only when "
                             f"you trust it: read the file{'s' if imports else ''}, then pass `trust_code`")
    # built under the seed it was trained with (a run made before seeds were recorded: as before)
    with _seeded(source["seed"]) if "seed" in source else contextlib.nullcontext():
        obj, _ = load_python(path, source["name"], {n: b"" for n in imports})
    if not _is_model(obj) or _is_keras(obj):
        raise NeuralabError(f"{path}: {source['name']} does not give a torch.nn.Module")
    # a run made before they were recorded is not checked
    _refuse_other_buffers(_other_buffers(source.get("buffers") or {}, obj), str(path), source["name"],
                          "than it was trained with", "; then train again")
    return obj


def _built_from_file(path: Path, name: str, imports: dict, seed: int | None):
    """``name`` from the file ``path`` run under ``seed`` (``_seeded``), as ``rebuild`` builds a
    run's model; what the file prints or warns, said once already, is not said again."""
    with _seeded(seed), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return load_python(path, name, imports)[0]


def _other_buffers(recorded: dict, module) -> list[str]:
    """The buffers of ``recorded`` (``unsaved_buffers``'s) that ``module`` has not as recorded."""
    built = unsaved_buffers(module) if recorded else {}
    return [n for n, digest in recorded.items() if not _same_buffer(digest, built.get(n))]


def _matters(module, again, buffer: str, x) -> bool:
    """Whether ``again`` (``module`` built again, with its weights and buffers) gives other outputs
    on ``x`` than ``module`` once its ``buffer`` is set to other values: a work buffer forward
    overwrites before it reads it, or one kept for its device and dtype alone, gives the same."""
    import torch

    try:
        values = again.get_buffer(buffer)
    except AttributeError:  # not built again at all: another network
        return True
    kept = values.clone()
    with torch.no_grad():
        if values.dtype == torch.bool:
            values.logical_not_()
        elif values.is_floating_point() or values.is_complex():
            values.fill_(math.nan)
        else:
            values.add_(1)
        try:
            return not _same_outputs(module, again, x)
        finally:
            values.copy_(kept)


def _refuse_other_buffers(other: list[str], where: str, name: str, when: str, then: str = "") -> None:
    """Refuse a module whose buffers ``other``, which no run saves, come out otherwise ``when`` (in
    words): drawn at random, or from memory torch.empty left as it was, they make another
    network, which would compute other results without a word."""
    if other:
        it = "it" if len(other) == 1 else "them"
        raise NeuralabError(
            f"{where}: {name} builds its buffer{'s' if len(other) > 1 else ''} {', '.join(other)} (registered with "
            f"persistent=False, which no run saves) with other values {when}, so the run loaded again would compute "
            f"another network; register {it} persistent (register_buffer's default), so that the run saves {it}, or "
            f"build {it} alike every time (no unseeded random draws, no torch.empty whose values it reads){then}")


def unsaved_buffers(module) -> dict:
    """``module``'s buffers that no state_dict holds (register_buffer(..., persistent=False): a
    mask, a positional table, a fixed random projection), which a run does not save and a
    rebuilt model computes again, as {name: their "dtype", "shape", "sha256" and "sums"
    (``_sums``, for floating point values)}: the values rebuild checks them against."""
    import torch

    saved = set(module.state_dict(keep_vars=True))
    found = {}
    for name, tensor in module.named_buffers():
        if name in saved:
            continue
        try:
            t = tensor.detach().cpu()
            t = (t if t.layout == torch.strided else t.to_dense()).contiguous()
            raw = t.reshape(-1).view(torch.uint8).numpy()
        except (RuntimeError, TypeError, NotImplementedError):  # a quantized or meta tensor has no bytes to compare
            continue
        digest = {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                  "sha256": hashlib.sha256(memoryview(raw)).hexdigest()}
        sums = _sums(t) if t.is_floating_point() else None
        if sums is not None:
            digest["sums"] = sums
        found[name] = digest
    return found


def _sums(t) -> list[float] | None:
    """Three sums of a floating point tensor's values, in float64: its finite values weighted by a
    fixed wave, which a value drawn again moves by about its size; their magnitudes, which
    another machine's rounding moves the first two by a small part of (SUMS_RTOL); and where
    its NaNs and infinities are (a mask of -inf), weighted alike. None where they overflow
    (values near float64's largest): the bytes alone are compared then."""
    import torch

    x, sums = t.reshape(-1), [0.0, 0.0, 0.0]
    for start in range(0, x.numel(), 2**20):  # a fixed projection may take gigabytes: a part at a time
        part = x[start:start + 2**20].to(torch.float64)
        wave = torch.cos(torch.arange(start, start + len(part), dtype=torch.float64) * 2.399963229728653)
        finite = torch.isfinite(part)
        values = torch.where(finite, part, 0.0)
        nonfinite = torch.where(finite, 0.0, torch.where(torch.isnan(part), 1.0, torch.where(part > 0, 2.0, 3.0)))
        sums = [sums[0] + float((values * wave).sum()), sums[1] + float(values.abs().sum()),
                sums[2] + float((nonfinite * wave).sum())]
    return sums if all(map(math.isfinite, sums)) else None


def _same_buffer(recorded: dict, built: dict | None) -> bool:
    """Whether a buffer as built again (``unsaved_buffers``'s digest) is the one ``recorded`` as the
    run trained: the same bytes, or for floating point values the same sums within rounding."""
    import torch

    if built is None or (recorded["dtype"], recorded["shape"]) != (built["dtype"], built["shape"]):
        return False
    if recorded["sha256"] == built["sha256"]:
        return True
    if "sums" not in recorded or "sums" not in built:
        return False
    dtype = getattr(torch, recorded["dtype"], None)
    rtol = SUMS_RTOL.get(dtype.itemsize, 0.0) if isinstance(dtype, torch.dtype) else 0.0
    (w, m, nonfinite), (w2, m2, nonfinite2) = recorded["sums"], built["sums"]
    scale = rtol * max(m, m2)
    return abs(w - w2) <= scale and abs(m - m2) <= scale and abs(nonfinite - nonfinite2) <= 1e-9 * (1 + abs(nonfinite))


def _seed_just_set() -> int | None:
    """The seed torch's, NumPy's and Python's generators were all just given, where none has drawn
    since, as a run seeds them (seed_everything) before it builds its model; else None."""
    import random

    import numpy as np
    import torch

    seed = torch.initial_seed()
    if seed > MAX_SEED or not torch.equal(torch.get_rng_state(), torch.Generator().manual_seed(seed).get_state()):
        return None
    ours, fresh = np.random.get_state(), np.random.RandomState(seed).get_state()
    if not (np.array_equal(ours[1], fresh[1]) and ours[2:] == fresh[2:]):
        return None
    return seed if random.getstate() == random.Random(seed).getstate() else None


@contextlib.contextmanager
def _seeded(seed: int | None):
    """Torch, NumPy and Python seeded with ``seed`` while a run's code builds its model, as the run
    seeded them when it built it (None: left as they are), and put back after: what the code
    draws as it builds comes out as it did, and the caller's own draws go on as if nothing had
    run."""
    import random

    import numpy as np
    import torch

    from neuralab.training.trainer import seed_everything

    states = random.getstate(), np.random.get_state()
    gpus = range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []  # seeded too, as torch seeds them
    try:
        with torch.random.fork_rng(devices=list(gpus)):
            if seed is not None:
                seed_everything(seed)
            yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
