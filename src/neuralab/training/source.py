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

What it decides with lives beside it: running a user's file (training.user_code), a Keras
model's compile() settings and its fit to images (training.keras_model), and checking a
PyTorch module before it trains (training.module_check).
"""

from __future__ import annotations

import __future__
import ast
import contextlib
import hashlib
import inspect
import io
import math
import os
import sys
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from neuralab.errors import NeuralabError, ParameterError, did_you_mean
from neuralab.training.config import MAX_SEED
from neuralab.training.keras_model import (
    compile_settings,
    keras_classifier,
    keras_shape,
    output_shape,
)
from neuralab.training.module_check import (
    buffer_matters,
    checked_module,
    other_buffers,
    rebuilt_alike,
    refuse_other_buffers,
    same_outputs,
    set_up_lazy,
    unsaved_buffers,
)
from neuralab.training.user_code import (
    MAX_CODE,
    MODULE_PREFIX,
    imported_beside,
    imported_by,
    imported_elsewhere,
    imported_otherwise,
    in_a_library,
    in_kept_dtype,
    is_keras,
    is_model,
    kind_of,
    load_python,
    local_imports,
    materialise,
    not_imported_by_statement,
    package_beside,
    read_code,
    seed_just_set,
    seeded,
    torch_defaults_kept,
)

ZOO, KERAS, TORCH = "zoo", "keras", "torch"
CODE_FILE = "model.py"              # the copy of a user's PyTorch code in a run directory
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


CANNOT_REBUILD = ("the model was PyTorch code the run cannot rebuild (an object built with arguments, or defined in "
                  "a notebook, a script or a library, or code importing a package beside it)")


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
        reason = (f"{run_dir}: {cannot_rebuild(source)}; use the run from Python, passing the module it was trained "
                  f"with, built the same way ({_call_again(run_dir)}), as `model`")
        super().__init__("model", None, reason)
        self.args = (reason,)

    def render(self, name=lambda p: p) -> str:
        return NeuralabError.render(self, name)


def _call_again(run_dir) -> str:
    """The call that builds the module of the run in ``run_dir`` again, as the command line's
    messages print it (``runs.resume_needs``): Net() where its class builds it without
    arguments, else Net(...), which the caller fills in."""
    from neuralab.runs import resume_needs

    return resume_needs(Path(run_dir))[1] or "Net(...)"


@contextlib.contextmanager
def from_python_only(run_dir, done: str, function: str, *given):
    """The library's refusal of a run whose PyTorch module it cannot rebuild (ModelNeeded: pass it
    as `model`), said as the command line must: no flag passes a module, so the way on is the
    Python call (``function(run_dir, *given)``) given the module again, worded as `neuralab train
    --resume` words it: "RUN: WHY; ``done`` from Python, with the module given again: CALL".
    The command line's main() and the web app say a run's load (``used_from_python``) where they
    name no call of their own."""
    try:
        yield
    except ModelNeeded:
        raise _python_only_said(run_dir, done, function, *given) from None


def used_from_python(run_dir):
    """``from_python_only``'s refusal of the run in ``run_dir`` naming the call that loads it, by its
    kind ("it can only be used from Python, ... neuralab.load_classifier(RUN, model=DigitNet(...))");
    None where its config.json says no kind, and the library's words stand."""
    from neuralab.runs import Kind, Run

    try:
        kind = Run(run_dir).kind
    except NeuralabError:
        return None
    load = {Kind.CLASSIFIER: "neuralab.load_classifier", Kind.FORECASTER: "neuralab.load_forecaster"}[kind]
    return _python_only_said(run_dir, "it can only be used", load)


def _python_only_said(run_dir, done: str, function: str, *given):
    from neuralab.runs import Run, python_call

    source = None  # the reason the run recorded, where neuralab knew it as it trained
    with contextlib.suppress(NeuralabError, OSError):
        source = Run(run_dir).model_meta().get("source")
    call = python_call(Path(run_dir), function, *given)
    return NeuralabError(f"{run_dir}: {cannot_rebuild(source if isinstance(source, dict) else None)}; {done} "
                         f"from Python, with the module given again: {call} (docs/runs.md)")



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
    seed: int | None = None                   # torch: the seed it was built under, where just set (seed_just_set)
    not_kept: str | None = None               # torch: why the run cannot keep its code, where that is known
    reload_by: str | None = None              # torch: with not_kept, where its file changed since its class was
    #                                           imported: the line that makes it its file again,
    #                                           import importlib, net; importlib.reload(net); from net import Net
    bare: bool | None = None                  # torch: its class, ``name``, called without arguments builds the
    #                                           same network: the caller can give it again as NAME() (None: unknown)
    elsewhere: dict = field(default_factory=dict)  # torch: the user's modules it imports from elsewhere on
    #                                           sys.path, which the run does not keep: name -> file
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
        if self.code is None and self.bare:
            record["no_arguments"] = True
        return record

    @property
    def kept_as(self) -> str:
        """The user's file's name in the run: model.py, but where a file it imports is named so
        (the helper keeps that name, which its import asks for), or imports it back by its name
        (``from net import CLASSES``): then its own."""
        back = imported_by(self.imports, self.file.stem) or imported_by(self.imports, Path(CODE_FILE).stem)
        if CODE_FILE not in self.imports and (not back or self.file.name == CODE_FILE):
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
            if self.elsewhere:
                files = ", ".join(f"{n} ({f})" for n, f in self.elsewhere.items())
                them, are = ("it", "is") if len(self.elsewhere) == 1 else ("them", "are")
                warnings.warn(f"{self.file.name}: imports {files} from outside its folder, which the run does not "
                              f"keep: a resume or a reload of the run runs {them} as {them} {are} then, edited or "
                              f"gone; to keep {them} with the run, put {them} beside the model's file")
        elif self.type == TORCH and self.not_kept:
            fix = (f"restart the kernel (or run `{self.reload_by}`) and build the model again from the "
                   "file as it is" if self.reload_by else
                   "give the model in a .py file whose helpers are .py files beside it, imported by import "
                   "statements without dots (import helper)")
            warnings.warn(f"{self.not_kept}: the run will not rebuild the model from its code, so no command can "
                          f"load it, only Python given the module (docs/runs.md); to make it loadable, {fix}")

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
            if not same_outputs(module, rebuilt, x):
                self.file = self.code = None
                self.imports = {}
                self.bare = False  # the class called without arguments, just compared, is another network
        if self.file is None and self.bare is None and self.reload_by is None:
            # The call the messages print for giving it again (runs.python_call): Net() where that is
            # the same network, else Net(...), which the caller fills in
            own = getattr(module, "_orig_mod", module)
            self.bare = self.name == type(own).__name__ and _computes_as(own, x)
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
            again = _built_from_file(self.file, self.name, self.imports, self.seed, self.code)
        finally:
            sys.modules.update(kept)
        with contextlib.suppress(RuntimeError, ValueError):
            again.load_state_dict(module.state_dict())
        other = other_buffers(self.buffers, again)
        differs = bool(other) and not same_outputs(module, again, x)
        with torch.no_grad(), contextlib.suppress(RuntimeError, AttributeError):  # the same network, to tell which count
            for n in other:
                again.get_buffer(n).copy_(module.get_buffer(n))
        matters = [n for n in self.buffers if buffer_matters(module, again, n, x)]
        if differs:
            refuse_other_buffers([n for n in other if n in matters] or other, self.architecture, self.name,
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
        code = read_code(path)  # read once: the run keeps the bytes that ran, however the file changes
        imports = local_imports(path, code)
        from neuralab.training.keras_script import (
            after_fit,
            calls_said,
            fit_recorded,
            taken_from_fit,
            warn_compiles,
            weights_loaded,
        )

        with fit_recorded(path, imports, code) as read, imported_otherwise(path, code, imports) as otherwise:
            seed = seed_just_set()  # as a run seeds before it reads its model: rebuild builds it so again
            try:
                obj, name = load_python(path, name, imports, code=code)
                failed = None
            except NeuralabError as e:
                failed = after_fit(e, path, read.fits)
        if failed is not None:  # the files put back by then are as they were; those that could not be, said
            if read.not_put_back:
                failed = NeuralabError(f"{failed.args[0]}; it also wrote over {', '.join(read.not_put_back)}, which "
                                       "could not be put back")
            raise failed from None
        # the model's last compile(), which Keras trains with: its warnings name that line
        compiled_at = next((line for m, _, line, _ in reversed(read.compiles) if m is obj), "?")
        source = _from_object(obj, path, name, imports, compiled_at, seed,
                              loaded=is_keras(obj) and weights_loaded(obj, read.loaded), code=code,
                              not_kept=not_imported_by_statement(path, otherwise) if otherwise else None)
        if source.type == KERAS:
            warn_compiles(path, [(config, line, call) for m, config, line, call in read.compiles if m is obj])
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
    raise ParameterError("model", text, f"unknown model; {did_you_mean(text, zoo or ())}give {known}a Keras file (.keras, .h5, .hdf5) or a Python "
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
    return _keras_source(model, f"keras:{_model_name(model.spec, path.stem)}", model.compile, path.name, str(path),
                         str(path), trained=True)


def _keras_source(model, architecture: str, compiled: dict | None, warned_as: str, where: str | None,
                  at: str | None, trained: bool) -> ModelSource:
    """The ModelSource of a Keras model read by neuralab.keras (``model``), from a file or an
    object: ``trained``, it starts from its weights, on the inputs they were fitted on (pixels
    / 255, training.preprocess's Preprocess for a source with weights); else from neuralab's
    seeded Keras-style initialisation, so that the run is reproducible from its seed.
    ``compiled``: compile()'s config; ``warned_as``: what warnings name it by; ``where``: what
    refusals name it by (None: its architecture); ``at``: its compile(), FILE[:LINE]."""
    # trained weights: how they were first drawn no longer matters
    _warn_training_only(warned_as, [s for s in model.training_only if not trained or "_initializer " not in s])
    return ModelSource(KERAS, architecture, _images(model.spec, compiled), model.weights if trained else None,
                       compile=_compile_settings(compiled, at), loss=(compiled or {}).get("loss"), where=where)


def _fitted(obj) -> bool:
    """Whether Keras has trained the model object ``obj``: its optimizer has taken a step (its
    fit(), or keras.saving.load_model of a trained model, which brings the optimizer's state).
    A model a file only builds (model = keras.Sequential(...); its fit() neuralab does not run
    while it reads the file) has not; one it loads is told by what the read recorded
    (keras_script.weights_loaded)."""
    import keras

    optimizer = getattr(obj, "optimizer", None)
    try:
        return optimizer is not None and int(keras.ops.convert_to_numpy(optimizer.iterations)) > 0
    except (AttributeError, TypeError, ValueError):  # an optimizer of another kind: nothing to tell by
        return False


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
                 compiled_at: int | str = "?", seed: int | None = None, loaded: bool = False,
                 code: bytes | None = None, not_kept: str | None = None) -> ModelSource:
    """``obj``'s ModelSource; ``path``, ``name`` and ``imports``: the file defining it, where it
    came from one, ``compiled_at`` the line of that file's compile() of it ("?": unknown),
    ``seed`` the one it was built under (``seed_just_set``) and ``loaded`` whether that file gave
    the Keras model weights it loaded (keras_script.weights_loaded), ``code`` the file's bytes
    that ran (None: read from ``path``), ``not_kept`` why the run cannot keep that code, where the
    caller knows."""
    import torch

    if is_keras(obj):
        from neuralab.keras import read

        try:
            model = read(obj)
        except NeuralabError as e:
            if path is None or type(e) is not NeuralabError:
                raise
            # The reader knows the model by its Keras name alone; the user knows the file they gave
            raise NeuralabError(f"{path}: {e.args[0]}") from None
        # A model Keras has trained, or whose weights the file loaded, starts from its weights, as
        # its saved file would; a fresh one from code, from neuralab's seeded initialisation (_keras_source)
        compiled = obj.get_compile_config() if obj.compiled else {}
        where = str(path) if path else None
        at = f"{where}:{compiled_at}" if where and compiled_at != "?" else where
        return _keras_source(model, f"keras:{obj.name}", compiled, path.name if path else obj.name, where, at,
                             trained=loaded or _fitted(obj))
    rebuilt, built, origin = None, path is not None, None  # built: by code neuralab ran just now, the file given
    imported = path is None  # from the caller's session: its class as imported, which its file may no longer be
    if path is None and not is_model(obj) and callable(obj):  # a class, or a function giving a model
        origin = obj
        name = getattr(origin, "__name__", type(origin).__name__)
        seed, built = seed_just_set(), True
        with torch_defaults_kept() as changed:
            obj = materialise(Path(getattr(inspect.getmodule(origin), "__file__", None) or "object"), name, origin,
                               f"give the module built with them, {name}(...), or give them defaults")
        obj = in_kept_dtype(obj, f"{name}()", changed)
        if not isinstance(obj, torch.nn.Module):
            return _from_object(obj, None, None)
        path = code_file(origin)
        name = name if path is not None else type(obj).__name__  # a lambda's "<lambda>" names nothing
    elif path is None and isinstance(obj, torch.nn.Module):  # a module object: rebuilt as its class, when it can be
        own = getattr(obj, "_orig_mod", obj)  # torch.compile's wrapper holds the user's module, of their class
        name = type(own).__name__
        path = code_file(type(own))
        seed = seed_just_set()  # the generators its class is built again from (a run's, seeded to build it)
    bare = isinstance(origin, type) and name == origin.__name__ or None
    if not isinstance(obj, torch.nn.Module):
        raise NeuralabError(f"{path or type(obj).__name__}: {name + ' is ' if name else ''}{kind_of(obj)}, not "
                            "a model; give a Keras model or a torch.nn.Module (an instance, a class, or a function "
                            "returning one)")
    where = path.name if path else "object"
    if path is not None and code is None:
        code = read_code(path)  # read once: the bytes compared with the object below are the bytes the run keeps
    if path is not None and imports is None:
        imports = local_imports(path, code)
    if (imports is None or not_kept) and path is not None:  # code importing a package beside it, say: no run keeps it
        not_kept, path = not_kept or package_beside(path), None
    reload_by = None
    if imported and path is not None:
        # The class in memory is its file as it was imported; a rebuild of the run runs the file as it is
        # now, which an edit since (a notebook's, not reloaded) makes another network
        changed = _edited_since_imported(origin if origin is not None else type(own), path, code, imports or {})
        if changed:
            (not_kept, reload_by), path, where, bare = changed, None, "object", None
    if origin is None and imported and path is not None:
        rebuilt = rebuilt_alike(own)
        if rebuilt is None:  # built with arguments: its class called without them is another network
            path, where, bare = None, "object", False
    # What a rebuild of the run must build again: the module neuralab built from the code, or a module
    # object's class built again (kept where it computes as the object does, _confirmed); its
    # buffers that no run saves are checked then
    made = obj if built else rebuilt
    buffers = unsaved_buffers(made) if made is not None and path is not None else {}
    if buffers and origin is not None and seed is not None:
        # A class from the caller's session was built under generators its file's top-level code
        # had not run under (a torch.manual_seed there, a helper it imports that draws): built as
        # a rebuild of the run will build it, as a model given as "FILE.py:NAME" is
        obj = _built_from_file(path, name, imports, seed, code)
        buffers = unsaved_buffers(obj)
    return ModelSource(TORCH, f"torch:{where}:{name}", module=obj, file=path.resolve() if path else None,
                       code=code if path else None, name=name, imports=imports or {}, rebuilt=rebuilt,
                       buffers=buffers, seed=seed if buffers else None, not_kept=not_kept, reload_by=reload_by,
                       bare=bare, elsewhere=imported_elsewhere(path, imports or {}, code) if path else {})


def _computes_as(module, x) -> bool:
    """Whether ``module``'s class in memory, called without arguments, computes as ``module`` on
    ``x`` with its weights: then the caller can give it again as NAME()."""
    alike = rebuilt_alike(module)
    return alike is not None and same_outputs(module, alike, x)


def _edited_since_imported(cls, path: Path, code: bytes, imports: dict) -> tuple[str, str] | None:
    """``not_kept`` and the reload that mends it, where ``cls``, the model's class (or function)
    in memory from ``path``, is other code than ``code``, those bytes of the file that a run keeps
    and a rebuild runs: a notebook edited the file, or a file beside it that it imports
    (``imports``), since importing it; None where they agree. Nothing is run: the bytes are
    compiled, and their code objects compared with those of the file's functions and classes in
    memory, and the plain constants they read (``HIDDEN = 64``) with their values in memory."""
    module = sys.modules.get(cls.__module__)
    if not _compiled_as_python(module):
        return None  # its code is not what compile() gives (pytest rewrote its asserts): nothing to tell by
    main = getattr(module, "__name__", cls.__module__)
    holders = [cls, module] if _from_file(getattr(module, "__file__", None), path) else [cls]
    found = _code_differs(code, path, holders, cls)
    if found is not None:
        return found.format(name=path.name, cls=cls.__name__), _reload(main, cls)
    for file, helper_code in sorted(imports.items()):
        helper = sys.modules.get(file[:-3])
        if helper is None or not _from_file(getattr(helper, "__file__", None), path.parent / file) \
                or not _compiled_as_python(helper):
            continue
        found = _code_differs(helper_code, path.parent / file, [helper], None)
        if found is not None:
            said = found.format(name=file, cls=cls.__name__).replace(" imported from it", " imported")
            said = said.replace(f"{file} changed", f"{file}, which {path.name} imports, changed")
            return said, _reload(main, cls, helper.__name__)
    return None


def _reload(main: str, cls, helper: str | None = None) -> str:
    """The line that makes ``cls`` of module ``main`` its file again, ``helper`` reloaded first:
    pasteable after `from net import Net` too, and binding no name of the module's (a notebook's
    `net = Net()` is kept); it imports the class again, since a reload makes a new class that a
    name bound before does not follow."""
    reloads = "; ".join(f"importlib.reload(sys.modules[{m!r}])" for m in ([helper] if helper else []) + [main])
    return f"import importlib, sys; {reloads}; from {main} import {cls.__name__}"


def _compiled_as_python(module) -> bool:
    """Whether ``module``'s code is what Python's own import compiles from its file: loaded by
    importlib's source or bytecode loader (a run's file, neuralab's), not by an import hook that
    rewrites the code (pytest's assertion rewriting of a test file, a profiler's)."""
    import importlib.machinery

    loader = getattr(getattr(module, "__spec__", None), "loader", None) or getattr(module, "__loader__", None)
    return type(loader) in (importlib.machinery.SourceFileLoader, importlib.machinery.SourcelessFileLoader)


def _from_file(filename, path: Path) -> bool:
    """Whether ``filename`` (a code object's or a module's) is the file ``path``."""
    with contextlib.suppress(OSError, TypeError, ValueError):
        return bool(filename) and os.path.samefile(filename, path)
    return False


def _code_differs(code: bytes, path: Path, holders: list, cls) -> str | None:
    """Where the functions and classes that ``holders`` (the model's class, its module) hold from
    ``path`` are not what ``code`` compiles to, or a value the file gives that they read has
    another in memory (_values_differ): the reason, with {name} and {cls} to fill in; else None."""
    try:
        compiled = compile(code, str(path), "exec", dont_inherit=True)  # not this module's __future__ flags
        tree = ast.parse(code, str(path))
    except (SyntaxError, ValueError):
        return "{name} changed since {cls} was imported from it (it no longer compiles)"
    fresh = set()
    _prints(compiled, fresh)
    known = {}  # co_filename -> whether it is ``path``
    functions = [f for f in _functions_of(holders)
                 if known.setdefault(f.__code__.co_filename, _from_file(f.__code__.co_filename, path))]
    in_memory = {id(c): c for f in functions for c in [f.__code__]}.values()
    if any(_code_print(c) not in fresh for c in in_memory):
        return "{name} changed since {cls} was imported from it"
    return _values_differ(tree, holders, cls, functions, {n for c in in_memory for n in _names_read(c)})


def _values_differ(tree, holders: list, cls, functions: list, read: set) -> str | None:
    """Where a value that ``tree``, the file, gives and that code of it in memory reads is another
    in memory: a constant bound once at the top level of the module or of one of its classes (a
    literal, HIDDEN = 64, SIZES = [16], a dataclass field's default; arithmetic of numbers,
    HID = 16 * 2; an attribute of an imported module, ACT = nn.ReLU), or a literal default of an
    argument of one of ``functions``. Only what can be told without running anything: the
    reason, with {name} and {cls} to fill in; else None."""
    module = next((h for h in holders if isinstance(h, types.ModuleType)), None)
    globals_ = vars(module) if module is not None else {}
    # names its own code changes: globals, and attributes it sets (a class counting its instances, Net.built += 1)
    kept_by_code = {n for g in ast.walk(tree) if isinstance(g, (ast.Global, ast.Nonlocal)) for n in g.names} | {
        a.attr for a in ast.walk(tree) if isinstance(a, ast.Attribute) and isinstance(a.ctx, ast.Store)}
    if _rebinds_by_name(tree):  # globals().update(settings), setattr(sys.modules[__name__], ...): nothing to tell by
        return None
    changed = "{name} changed since {cls} was imported from it"
    places = [] if any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)
                       for n in ast.walk(tree)) else [(tree.body, "the module", globals_)]
    mutated = _changed_in_place(tree)
    _, imported = _bound_once(tree.body)
    classes = [d for d in tree.body if isinstance(d, ast.ClassDef)]
    for d in (d for d in classes if [c.name for c in classes].count(d.name) == 1):  # not a class defined again
        held = cls if cls is not None and d.name == cls.__name__ else globals_.get(d.name)
        if isinstance(held, type) and held.__qualname__ == d.name \
                and held.__module__ == (module.__name__ if module is not None else cls.__module__):
            places.append((d.body, held.__name__, _class_values(held)))
    for body, holder, values in places:
        for n, node in _bound_once(body)[0].items():
            if n not in read or n in kept_by_code or n not in values:
                continue
            value = _folded(node)
            if value is not _UNKNOWN:
                if (_immutable(value) or _flat(value) and n not in mutated) and _plain(values[n]) \
                        and not _same_value(values[n], value):
                    return (f"{{name}} sets {n} to {_said(value)} where {holder} in memory has "
                            f"{_said(values[n])}: " + changed + f", or {n} was set since")
                continue
            found = _attribute_of(node, globals_, imported)
            if found is _UNKNOWN:
                continue
            # a number or text is the same when equal (a library may make it again); a class or function
            # only where it is the same object
            if not _same_value(values[n], found) if _plain(found) and _plain(values[n]) else found is not values[n]:
                return (f"{{name}} sets {n} to {ast.unparse(node)} where {holder} in memory has {_said(values[n])}: "
                        + changed + f", or {n} was set since")
    if {"__defaults__", "__kwdefaults__"} & kept_by_code:
        return None
    defined = dict(_functions_in(tree.body, ""))
    for f in functions:
        node = defined.get(f.__qualname__)
        found = node is not None and _default_differs(f, node.args)
        if found:
            arg, value, memory = found
            return (f"{{name}} gives {f.__qualname__}'s {arg} the default {_said(value)} where the function in "
                    f"memory has {_said(memory)}: " + changed)
    return None


# The __future__ flags a compile() passes on from the code that called it (neuralab's own loader of
# a file given as "net.py" compiles it under its annotations flag), which no function's own code shows
_FUTURE_FLAGS = sum({getattr(__future__, f).compiler_flag for f in __future__.all_feature_names})  # one bit each


def _code_print(co) -> tuple:
    """What a code object runs, apart from where it stands in its file (line numbers)."""
    return (co.co_name, co.co_code, co.co_names, co.co_varnames, co.co_freevars, co.co_cellvars, co.co_argcount,
            co.co_posonlyargcount, co.co_kwonlyargcount, co.co_flags & ~_FUTURE_FLAGS,
            tuple(_const_print(c) for c in co.co_consts))


def _const_print(value):
    if isinstance(value, types.CodeType):
        return _code_print(value)
    if isinstance(value, (tuple, frozenset)):  # a frozenset's order is its hashes', not the source's
        inner = [_const_print(v) for v in value]
        return type(value).__name__, tuple(sorted(inner, key=repr) if isinstance(value, frozenset) else inner)
    return type(value).__name__, repr(value)  # 1, 1.0 and True are equal, and other code


def _prints(co, into: set) -> None:
    into.add(_code_print(co))
    for c in co.co_consts:
        if isinstance(c, types.CodeType):
            _prints(c, into)


def _names_read(co):
    yield from co.co_names
    for c in co.co_consts:
        if isinstance(c, types.CodeType):
            yield from _names_read(c)


def _functions_of(holders: list) -> list:
    """The functions that ``holders`` hold, and those of the classes in them from the same
    module: methods, static and class methods, properties, what decorators wrap (lru_cache too)."""
    found, seen, todo = [], set(), [(h, getattr(h, "__name__", None)) for h in holders]
    while todo:
        obj, module = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.ModuleType):
            if any(obj is h for h in holders):  # not the modules it imports (torch.nn)
                todo += [(v, obj.__name__) for v in vars(obj).values()]
        elif isinstance(obj, type):
            if obj.__module__ == module or any(obj is h for h in holders):
                todo += [(v, obj.__module__) for c in obj.__mro__ if c.__module__ == obj.__module__
                         for v in vars(c).values()]
        elif isinstance(obj, (staticmethod, classmethod)):
            todo.append((obj.__func__, module))
        elif isinstance(obj, property):
            todo += [(f, module) for f in (obj.fget, obj.fset, obj.fdel) if f is not None]
        elif isinstance(obj, types.FunctionType):
            found.append(obj)
            if isinstance(getattr(obj, "__wrapped__", None), types.FunctionType):
                todo.append((obj.__wrapped__, module))
        elif isinstance(wrapped := _wrapped(obj), types.FunctionType):  # functools.lru_cache's wrapper
            todo.append((wrapped, module))
    return found


def _wrapped(obj):
    """What ``obj`` says it wraps, read without running its code (a proxy's __getattr__)."""
    with contextlib.suppress(Exception):
        return inspect.getattr_static(obj, "__wrapped__", None)
    return None


_UNKNOWN = object()  # a value the file's text alone does not tell


def _bound_once(body: list) -> dict:
    """The names that ``body`` (a module's or a class's statements) binds once, by a plain
    assignment and nothing else (no import, loop, augmented assignment, def, second assignment
    under any branch): name -> the value assigned; and the names it binds once, by an import."""
    bound, plain, imported = {}, {}, set()
    for node in body:
        names = []
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
                names.append(n.id)
            elif isinstance(n, (ast.Import, ast.ImportFrom)):  # try: from local_settings import HIDDEN
                names += [(a.asname or a.name).split(".")[0] for a in n.names]
            elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(n.name)
            elif isinstance(n, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and n.name:
                names.append(n.name)
            elif isinstance(n, ast.MatchMapping) and n.rest:
                names.append(n.rest)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):  # its body binds its own names
            names = [node.name]
        for n in set(names):
            bound[n] = bound.get(n, 0) + 1
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imported.update(names)
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        single = targets[0] if len(targets) == 1 else None
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(single, ast.Name) and node.value is not None:
            plain[single.id] = node.value
    return {n: v for n, v in plain.items() if bound[n] == 1}, {n for n in imported if bound[n] == 1}


def _rebinds_by_name(tree) -> bool:
    """Whether ``tree``'s code can bind names that its statements do not show: globals(),
    vars(), locals(), exec, eval, a module's __dict__ or sys.modules, setattr on anything but self."""
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
            if n.func.id in ("globals", "vars", "locals", "exec", "eval"):
                return True
            if n.func.id == "setattr" and not (n.args and isinstance(n.args[0], ast.Name) and n.args[0].id == "self"):
                return True
        if isinstance(n, ast.Attribute) and (n.attr == "__dict__" or n.attr == "modules"
                                             and isinstance(n.value, ast.Name) and n.value.id == "sys"):
            return True
    return False


# What code can do with a list, dict or set that leaves it as it is (SIZES[0], len(SIZES), for s in SIZES)
_READING = {"len", "tuple", "list", "sorted", "sum", "min", "max", "enumerate", "zip", "range", "reversed", "iter",
            "set", "frozenset", "dict", "str", "repr", "any", "all", "print", "isinstance", "bool", "int", "float"}


def _changed_in_place(tree) -> set:
    """The names (a global's, an attribute's) that ``tree``'s code uses other than to read
    them: SIZES.append(8), SIZES[0] = 8, helper(SIZES), alias = SIZES; a list, dict or set of
    that name may differ in memory from the file's without an edit."""
    parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    found = set()
    for n in ast.walk(tree):
        name = n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else None
        if name is None or not isinstance(n.ctx, ast.Load):
            continue
        p = parents.get(id(n))
        reading = (isinstance(p, ast.Subscript) and p.value is n and isinstance(p.ctx, ast.Load)
                   or isinstance(p, (ast.For, ast.AsyncFor, ast.comprehension)) and p.iter is n
                   or isinstance(p, (ast.Compare, ast.If, ast.While, ast.IfExp, ast.Assert))
                   or isinstance(p, ast.Starred) and isinstance(p.ctx, ast.Load)
                   or isinstance(p, ast.Call) and n in p.args and isinstance(p.func, ast.Name)
                   and p.func.id in _READING)
        if not reading:
            found.add(name)
    # getattr(self, "log").append(1): a name reached by its text
    found |= {c.args[1].value for c in ast.walk(tree) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
              and c.func.id in ("getattr", "setattr", "delattr") and len(c.args) > 1
              and isinstance(c.args[1], ast.Constant) and isinstance(c.args[1].value, str)}
    return found


def _folded(node):
    """The value of ``node``, a literal or arithmetic of numbers (16 * 2), or _UNKNOWN."""
    with contextlib.suppress(ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        value = ast.literal_eval(node)
        return value if _plain(value) else _UNKNOWN
    number = (int, float, complex)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value = _folded(node.operand)
        if type(value) in number:
            return +value if isinstance(node.op, ast.UAdd) else -value
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _folded(node.left), _folded(node.right)
        if type(left) in number and type(right) in number:
            if isinstance(node.op, ast.Pow) and not (abs(right) <= 64 and abs(left) < 2 ** 64):
                return _UNKNOWN  # 10 ** 10 ** 9 is not worked out
            with contextlib.suppress(ArithmeticError, ValueError, TypeError):
                return _ARITHMETIC[type(node.op)](left, right)
    return _UNKNOWN


_ARITHMETIC = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
               ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b,
               ast.Pow: lambda a, b: a ** b}


def _attribute_of(node, globals_: dict, imported: set):
    """The object that ``node``, a chain of attributes of a name the file binds by an import
    alone (nn.ReLU, torch.nn.functional.relu), is in memory, looked up in the dictionaries of
    modules and classes without running anything; _UNKNOWN where it cannot be told so."""
    chain = []
    while isinstance(node, ast.Attribute):
        chain.insert(0, node.attr)
        node = node.value
    if not chain or not isinstance(node, ast.Name) or node.id not in globals_:
        return _UNKNOWN
    obj = globals_[node.id]
    if not isinstance(obj, types.ModuleType) or node.id not in imported or not _library(obj):
        return _UNKNOWN  # a user's module beside the file may be reloaded: its new objects are no edit
    for attr in chain:
        if isinstance(obj, types.ModuleType):
            obj = vars(obj).get(attr, _UNKNOWN)
        elif isinstance(obj, type):
            obj = next((vars(c)[attr] for c in obj.__mro__ if attr in vars(c)), _UNKNOWN)
            if not isinstance(obj, (types.FunctionType, type)) and hasattr(type(obj), "__get__"):
                return _UNKNOWN  # a descriptor: what the class gives is not what its dictionary holds
        else:
            return _UNKNOWN
        if obj is _UNKNOWN:
            return _UNKNOWN
    return obj


def _library(module) -> bool:
    """Whether ``module`` is Python's own or an installed package's (torch.nn, numpy), not a
    user's file that a notebook may reload."""
    import sysconfig

    root = sys.modules.get(module.__name__.partition(".")[0], module)
    if root.__name__ in sys.builtin_module_names:
        return True
    file = getattr(root, "__file__", None)
    if not file:
        return False
    places = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    with contextlib.suppress(ValueError):
        return any(os.path.commonpath([os.path.realpath(file), os.path.realpath(p)]) == os.path.realpath(p)
                   for p in places)
    return False


def _class_values(held: type) -> dict:
    """The values that class ``held`` holds for the names its own body binds: its own dictionary,
    where a dataclass keeps a field's default (one with slots holds a slot there, not compared)."""
    return dict(vars(held))


def _functions_in(body: list, prefix: str):
    """(qualified name, def) for the functions that ``body`` defines, as Python names them."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _functions_in(node.body, f"{prefix}{node.name}.<locals>.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions_in(node.body, f"{prefix}{node.name}.")


def _default_differs(function, args: ast.arguments):
    """(argument, the file's default, the one in memory) where ``function``'s literal default
    of an argument is another than ``args``, its def in the file, gives; else None."""
    co = function.__code__
    positional = [a.arg for a in args.posonlyargs + args.args]
    if positional != list(co.co_varnames[:co.co_argcount]) or [a.arg for a in args.kwonlyargs] != list(
            co.co_varnames[co.co_argcount:co.co_argcount + co.co_kwonlyargcount]):
        return None  # not the def it looks like (a wrapper that took its name)
    memory = function.__defaults__ or ()
    pairs = [] if len(memory) != len(args.defaults) else list(zip(positional[len(positional) - len(memory):],
                                                                  args.defaults, memory))
    kw = function.__kwdefaults__ or {}
    pairs += [(a.arg, d, kw[a.arg]) for a, d in zip(args.kwonlyargs, args.kw_defaults)
              if d is not None and a.arg in kw]
    for arg, node, value in pairs:
        given = _folded(node)
        if given is not _UNKNOWN and _immutable(given) and _plain(value) and not _same_value(value, given):
            return arg, given, value
    return None


def _immutable(value) -> bool:
    if isinstance(value, (tuple, frozenset)):
        return all(_immutable(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, complex, str, bytes))


def _flat(value) -> bool:
    """Whether ``value`` is a list, dict or set of values that cannot change in place."""
    items = [*value.keys(), *value.values()] if type(value) is dict else value
    return type(value) in (list, set, dict) and all(_immutable(v) for v in items)


def _said(value) -> str:
    """``value`` as a reason names it, its braces kept from str.format."""
    return repr(value).replace("{", "{{").replace("}", "}}")


def _plain(value) -> bool:
    """Whether ``value`` is made of Python's plain types alone, which a literal gives (not an
    enum's member, a NamedTuple's field, a slot)."""
    if type(value) in (tuple, list, set, frozenset):
        return all(_plain(v) for v in value)
    if type(value) is dict:
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return value is None or type(value) in (bool, int, float, complex, str, bytes)


def _same_value(memory, value) -> bool:
    """Whether a constant's value in memory is the one its file gives it (NaN counts as itself)."""
    with contextlib.suppress(Exception):
        return type(memory) is type(value) and (memory == value or memory != memory and value != value)
    return False


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
    return None if in_a_library(path) else path


def _model_name(spec: dict, fallback: str) -> str:
    return spec.get("name") or fallback


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
    if source.get("no_arguments", False) not in (True, False):
        raise NeuralabError(f"{where}: field 'source.no_arguments' must be true or false")
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


def check_given(model, meta: dict, run_dir: Path, weights: Path | None, prefix: str, built: str, what: str) -> None:
    """Refuse the caller's ``model`` for a run whose PyTorch model the run cannot rebuild, before
    anything is loaded, trained or written, unless it is such a run and the module fits: the
    names and shapes of the tensors in ``weights`` (``prefix``: theirs in the file; None for a
    run stopped before its first checkpoint, which has only its parameter count). A run that
    rebuilds its model refuses one: the run's files, not a module with the same shapes, say
    what its network computes. ``built``: how its architecture is named ("the zoo's"),
    ``what``: the run's word for its model ("model", "network")."""
    import torch
    from torch.nn.parameter import is_lazy

    from neuralab.models import count_parameters
    from neuralab.runs import MODEL
    from neuralab.training.checkpoint import check_fits

    source = meta.get("source") or {"type": ZOO}
    if source.get("type") != TORCH or source.get("file") is not None:
        how = {ZOO: f"as {built} {meta.get('architecture')}", TORCH: f"from its copy of the code, "
               f"{source.get('file')} (with `trust_code`)"}.get(source.get("type"), "from its Keras spec")
        raise NeuralabError(f"{run_dir}: the run rebuilds its {what} {how}; leave out `model`, which is for runs "
                            "whose PyTorch model they cannot rebuild")
    if not isinstance(model, torch.nn.Module):
        raise NeuralabError(f"`model` is a {type(model).__name__}; give the torch.nn.Module object the run was "
                            f"trained with, built the same way ({_call_again(run_dir)})")
    shape = _input_shape(meta)
    if shape is not None:
        set_up_lazy(model, shape)
    if any(is_lazy(t) for t in model.state_dict().values()):
        return  # its forward fails on the run's inputs, which the caller's pass on them names
    fix = "give the module the run was trained with, built the same way (the same class and arguments)"
    if weights is not None:
        check_fits(weights, model, "the `model` given", prefix, fix)
        return
    count = count_parameters(model)
    if count != meta.get("parameters"):
        raise NeuralabError(f"{run_dir / MODEL}: the run's {what} has {meta.get('parameters')} parameters, the "
                            f"`model` given {count}; {fix}")


def _input_shape(meta: dict) -> tuple | None:
    """The shape of one input of the run in model.json: a classifier's picture (C, H, W), a
    forecaster's window (lookback, inputs); None where the file does not give it as whole numbers."""
    windows = meta.get("windows")
    shape = meta.get("input_shape") if windows is None else \
        [windows.get("lookback") if isinstance(windows, dict) else None, meta.get("inputs")]
    ok = isinstance(shape, list) and bool(shape) and all(type(n) is int and n >= 1 for n in shape)
    return tuple(shape) if ok else None


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
    code = {}  # the bytes checked, which are the ones that run: the files could change after
    for name, digest in {source["file"]: source.get("sha256"), **imports}.items():
        if not (run_dir / name).is_file():
            raise NeuralabError(f"{run_dir / name}: missing; the run's model is PyTorch code kept in the run")
        code[name] = (run_dir / name).read_bytes() if (run_dir / name).stat().st_size <= MAX_CODE else b""
        if hashlib.sha256(code[name]).hexdigest() != digest:
            raise NeuralabError(f"{run_dir / name}: changed since the run was made (its SHA-256 differs from "
                                "model.json's); the weights belong to the code as it was")
    found, package = imported_beside(path)  # what running the code would import from the run's folder
    unrecorded = sorted(set(found) - set(imports)) + (["a package"] if package else [])
    if unrecorded:
        raise NeuralabError(f"{path}: imports {', '.join(unrecorded)} from the run's folder, which model.json does not "
                            "record; the run is not as neuralab made it")
    if not trust_code:
        also = f" and {', '.join(sorted(imports))}" if imports else ""
        raise CodeNotTrusted(f"{path}: the run's model is PyTorch code ({source['name']}{also}), which runs only when "
                             f"you trust it: read the file{'s' if imports else ''}, then pass `trust_code`")
    # built under the seed it was trained with (a run made before seeds were recorded: as before)
    with seeded(source["seed"]) if "seed" in source else contextlib.nullcontext():
        obj, _ = load_python(path, source["name"], {n: code[n] for n in imports}, checked=code[source["file"]])
    if not is_model(obj) or is_keras(obj):
        raise NeuralabError(f"{path}: {source['name']} does not give a torch.nn.Module")
    # a run made before they were recorded is not checked
    refuse_other_buffers(other_buffers(source.get("buffers") or {}, obj), str(path), source["name"],
                          "than it was trained with", "; then train again")
    return obj


def _built_from_file(path: Path, name: str, imports: dict, seed: int | None, code: bytes | None = None):
    """``name`` from the file ``path`` (its bytes ``code``, where read already) run under ``seed``
    (``seeded``), as ``rebuild`` builds a run's model; what the file prints or warns, said once
    already, is not said again."""
    with seeded(seed), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return load_python(path, name, imports, code=code)[0]
