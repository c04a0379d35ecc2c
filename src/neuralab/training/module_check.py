"""A user's PyTorch module checked before it trains, and its tensors judged for a run.

``checked_module`` runs one forward pass on the data's inputs and refuses, in one line naming
both shapes, a module that does not fit them; before training it also refuses tensors no run
would keep (``_not_kept``: weights in a plain list, values drawn at random as it is built) and a
module with nothing to train. A module object is compared with its class built again
(``rebuilt_alike``, ``same_outputs``), and the buffers that no state_dict holds are recorded
(``unsaved_buffers``) so that a rebuilt run is known to compute the same network.

Apart from training.source because it judges a module already built, wherever it came from:
a file, a class, an object, or the ``model`` given to a loaded run.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import math
import warnings

from neuralab.errors import NeuralabError, interrupts_unwrapped, reraise_interrupt
from neuralab.training.user_code import kind_of, seeded, torch_defaults_kept

# how far a floating point buffer built again may drift in its sums (_sums) and still be the one
# trained with: another machine's or torch version's rounding of sin, exp or a matmul, not a value
# drawn again (which moves them by about 1 / sqrt(its size))
SUMS_RTOL = {2: 1e-3, 4: 1e-5, 8: 1e-5}  # by bytes per value: float16 and bfloat16, float32, float64


# what a user's module is given, by what it outputs: PyTorch's layout, which code written for Keras's
# channels-last images or for flattened vectors does not expect
INPUT_LAYOUT = {"classes": "images as (batch, channels, height, width)", "steps": "windows as (batch, steps, inputs)"}
ONE = {"classes": "class", "steps": "step"}

# what to change in a forward that loses or fixes the batch axis, said alike by the check before
# training and by predict (training.trained_classifier), which meets a run trained before the check
ANY_BATCH = "let forward take any batch size: x.view(x.size(0), -1) or x.flatten(1), not a batch size written in the code"
BATCH_FIRST = "keep the batch first where forward reshapes: x.flatten(1) or x.view(x.size(0), -1), not x.view(-1, features)"
SQUEEZE = "drop the .squeeze() at the end of forward, or squeeze only the axis you mean (.squeeze(-1))"


def checked_module(module, name: str, input_shape: tuple, outputs: int, sample=None, what: str = "classes",
                   training: bool = False):
    """The user's PyTorch module after one forward pass on ``sample`` (or zeros of
    ``input_shape``): it must give (N, ``outputs``). ``training``: it is about to be trained,
    so its weights must be ones the optimizer sees and the run saves, and a classifier giving
    probabilities, not logits, is warned about."""
    import torch

    x = sample if sample is not None else torch.zeros(2, *input_shape)
    y2 = None
    shape = f"({', '.join(['N', *map(str, input_shape)])})"
    hidden = _not_kept(module, name) if training else []
    was = module.training
    module.eval()
    # the first convolution called, and the channels it was given: a model for colour pictures
    # fails there on grey ones, which PyTorch says in its own terms; a forecaster's first recurrent
    # or dense layer, which fails alike on windows with more or fewer inputs a step
    first: list = []

    def called(layer: str):
        return lambda m, args: None if first else first.append((layer, m, getattr(args[0], "shape", ())))
    takes = torch.nn.Conv2d if what == "classes" else (torch.nn.RNNBase, torch.nn.Linear)
    hooks = [m.register_forward_pre_hook(called(n)) for n, m in module.named_modules() if isinstance(m, takes)]
    y = y1 = None
    try:
        with torch.no_grad():
            y = module(x)
            # a second batch, one larger: an output whose first size is not the batch (an nn.LSTM without
            # batch_first reads the batch as time; x.view(-1, 196) makes two rows of a sample) can match
            # one batch by chance, and a forward hard-wired to one batch size fails on the other
            if output_refusal(name, shape, y, len(x), outputs, what, module) is None:
                with _buffers_kept(module), torch.random.fork_rng(devices=[]):  # a sampling forward draws
                    y2 = module(torch.cat([x, x[:1]]))
                    # and a batch of one, which predict gives a lone picture and an epoch may end in: a
                    # forward ending in .squeeze() takes its batch axis away there alone. One that fails
                    # there uses batch statistics in eval mode, which the mixing check below warns about
                    if training and isinstance(y2, torch.Tensor) and y2.shape[:1] == (len(x) + 1,):
                        with contextlib.suppress(Exception), interrupts_unwrapped():
                            y1 = module(x[:1])
    except Exception as e:  # noqa: BLE001  the user's forward: one line naming both shapes
        reraise_interrupt(e)  # Ctrl-C that the forward raised as another error stops the run
        error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        if isinstance(e, ImportError):  # no fault of the inputs: neuralab's sys.path is not the script's
            raise NeuralabError(f"{name}: the model's forward fails to import ({error}), which no input causes: a "
                                "helper beside the model's file is found by an import statement (import helper), "
                                "not by importlib.import_module in forward, where the model's folder is not on "
                                "sys.path; a library must be installed") from None
        if y is not None:  # the first batch passed
            raise NeuralabError(f"{name}: on inputs {shape} the model works on a batch of {len(x)} and fails on "
                                f"one of {len(x) + 1} ({error}); {ANY_BATCH}") from None
        layer, taker, got = first[0] if first else (None, None, ())
        raise NeuralabError(_input_refusal(name, shape, x, layer, taker, got, what)
                            or f"{name}: the model fails on the data's inputs {shape}, {INPUT_LAYOUT[what]}: "
                               f"{error}{_fixed_batch(str(e), len(x)) or _failing_layer(module, x, what)}") from None
    finally:
        for hook in hooks:
            hook.remove()
        module.train(was)
    refusal = output_refusal(name, shape, y, len(x), outputs, what, module)
    if refusal is None and isinstance(y2, torch.Tensor) and y2.shape[:1] != (len(x) + 1,):
        refusal = _batch_refusal(name, shape, [(len(x), y), (len(x) + 1, y2)], module)
    if refusal is None and isinstance(y1, torch.Tensor) and tuple(y1.shape) != (1, *y.shape[1:]):
        refusal = _lone_refusal(name, shape, y, y1)
    if refusal is None and isinstance(y2, torch.Tensor):
        refusal = _mixing_refusal(module, name, shape, x, training)
    if refusal is not None:
        raise NeuralabError(refusal)
    if training:
        _trainable(module, name, y if what == "classes" else None, hidden)
    return module


def set_up_lazy(module, input_shape) -> None:
    """Give ``module``'s lazy layers (nn.LazyLinear) their shapes by one pass on zeros of
    ``input_shape`` in eval mode, as its first batch did when it trained, so that its tensors'
    shapes can be compared with a run's; the caller's random generators, each layer's mode and
    the buffers a forward updates are left as they were.
    A forward that fails leaves them unset, for ``checked_module``'s pass on the same inputs to name."""
    from torch.nn.parameter import is_lazy

    from neuralab.models.summary import dry_run

    if not any(is_lazy(t) for t in module.state_dict().values()):
        return
    with _buffers_kept(module), contextlib.suppress(Exception), interrupts_unwrapped():
        dry_run(module, input_shape, batch=2)


def output_refusal(name: str, shape: str, y, batch: int, outputs: int | None, what: str = "classes",
                   module=None, training: bool = False) -> str | None:
    """The one-line refusal of ``y``, what module ``name`` gave on ``batch`` inputs ``shape`` ("(N, 1,
    28, 28)"), where the data needs (N, ``outputs``) (None: as many as it gives); None where it fits.
    ``module``: the module, whose layers tell what to change; ``training``: ``y`` came in training
    mode. ``checked_module``, the trainer's check and what predicts with a model all say it so."""
    import torch

    needs = (f"(N, {outputs}) ({outputs} {what if outputs != 1 else ONE[what]})" if outputs is not None
             else f"(N, {what})")
    if isinstance(y, (tuple, list, dict)):  # (logits, features), {"logits": ...}: research code's habit
        parts = ("{" + ", ".join(f"{k!r}: {_shape_of(v, batch)}" for k, v in y.items()) + "}" if isinstance(y, dict)
                 else ", ".join(_shape_of(v, batch) for v in y))
        mode = " in training mode (model.train())" if training else ""
        return (f"{name}: on inputs {shape}{mode} the model returns {kind_of(y)} of {parts}; the data needs one "
                f"tensor {needs}: return that alone from forward{' when training too' if training else ''}")
    if what == "steps" and outputs == 1 and isinstance(y, torch.Tensor) and tuple(y.shape) == (batch,):
        return None  # one step ahead as (N,), a forecaster's .squeeze(-1): unambiguous, read as (N, 1)
    if not isinstance(y, torch.Tensor) or y.dim() != 2 or (outputs is not None and y.shape[1] != outputs):
        return (f"{name}: on inputs {shape} the model gives {_shape_of(y, batch)}, the data needs "
                f"{needs}; {_output_fix(y, outputs if outputs is not None else y.shape[-1], what)}")
    if y.shape[0] != batch:
        return _batch_refusal(name, shape, [(batch, y)], module)
    return None


def _batch_refusal(name: str, shape: str, given: list, module) -> str:
    """The refusal of a module whose outputs' first size is not the batch's: ``given``, (batch, output)
    pairs, as it gave them; the likely slip named where the module shows it."""
    gave = " and ".join(f"{_shape_of(y)} for a batch of {n}" for n, y in given)
    fix = _rnn_fix(module) or BATCH_FIRST
    return f"{name}: on inputs {shape} the model gives {gave}: the first size of its output is not the batch's; {fix}"


def _lone_refusal(name: str, shape: str, y, y1) -> str:
    """The refusal of a module that gives ``y`` on a batch of several inputs and ``y1`` on a batch
    of one, without its batch axis (a final .squeeze(), which takes every axis of size 1)."""
    dropped = tuple(y1.shape) == tuple(y.shape[1:])
    fix = (f"it takes the batch axis away there: {SQUEEZE}" if dropped
           else f"keep the batch first: a batch of one must give {_shape_of(y[:1])}")
    return (f"{name}: on inputs {shape} the model gives {_shape_of(y, len(y))} for a batch of {len(y)} but "
            f"{_shape_of(y1)} for a batch of 1 (predict may give it one input alone, and an epoch's last batch may "
            f"hold one); {fix}")


def _rnn_fix(module, only=None) -> str | None:
    """What to change in ``module`` whose recurrent layer reads the batch as time (built without
    batch_first); None where it holds none such. ``only``: the names of the layers seen doing so."""
    import torch

    rnn = [(n, m) for n, m in (module.named_modules() if module is not None else ())
           if isinstance(m, torch.nn.RNNBase) and not m.batch_first and (only is None or n in only)]
    if not rnn:
        return None
    layer, m = rnn[0]
    return (f"nn.{type(m).__name__} takes (time, batch, features) unless built with batch_first=True, and "
            f"{layer} is not: build it with batch_first=True")


def _probe_batch(x) -> int:
    """The batch of the mixing check's probes, [a, b, ...] then [b, ...]: the smallest of at least 2
    that none of a sample's sizes equals, so that a layer reading the batch as time is told from
    one given it rightly (2 windows of 2 steps look the same either way)."""
    return next(n for n in range(2, 2 + x.dim()) if n not in x.shape[1:])


def _mixing_refusal(module, name: str, shape: str, x, training: bool = True) -> str | None:
    """The refusal of a module about to be trained (``training``) whose output for a sample
    depends on the other samples of its batch in eval mode because a recurrent layer built
    without batch_first is given the batch first and reads it as time: forward's out[:, -1] then
    gives (batch, outputs), which the shape checks pass, but each sample's output is the state
    after the samples before it (MNIST: 12% accuracy, not 88%). Other modules that mix samples
    (batch statistics in eval mode), and a stored run's, which was trained so, are warned about:
    some mean to. Two forwards of two random samples, [a, b] and [b, c]: b changes place and
    company, which a batch's mean or its order (a recurrent layer reading it as time) shows."""
    import torch

    def apart(u, v) -> bool:  # beyond the rounding of a batched matmul
        return float((u - v).abs().max()) > 1e-4 * float(torch.maximum(u.abs().max(), v.abs().max()))

    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return None
    batch_as_time: set[str] = set()  # the layers given (batch, time, features) where they take (time, batch, ...)
    pair = _probe_batch(x)

    def seen(layer: str):
        return lambda m, args: batch_as_time.add(layer) if (
            getattr(args[0], "dim", lambda: 0)() == 3 and args[0].shape[0] == pair != args[0].shape[1]) else None
    hooks = [m.register_forward_pre_hook(seen(n)) for n, m in module.named_modules()
             if isinstance(m, torch.nn.RNNBase) and not m.batch_first]
    was = module.training
    try:
        module.eval()
        with torch.no_grad(), _buffers_kept(module), torch.random.fork_rng(devices=[]):
            probe = torch.randn(pair + 1, *x.shape[1:], dtype=x.dtype).to(x.device)  # a, b, ...
            y, y2 = module(probe[:pair]), module(probe[1:])
            if not all(isinstance(t, torch.Tensor) and t.shape[:1] == (pair,) and torch.isfinite(t).all()
                       for t in (y, y2)) or not apart(y[1], y2[0]):
                return None
            # a forward that samples in eval mode (a VAE's layer) differs on the very same batch: no mixing shown
            if apart(y, module(probe[:pair])):
                return None
    except Exception as e:  # noqa: BLE001  random inputs a module refuses tell nothing here; the data's passed
        reraise_interrupt(e)
        return None
    finally:
        for hook in hooks:
            hook.remove()
        module.train(was)
    fix = _rnn_fix(module, batch_as_time)
    if fix is not None and training:
        return (f"{name}: on inputs {shape} the output of a sample depends on the other samples of the batch "
                f"(the same samples in another order give other outputs); {fix}")
    _warn_once(name, "outputs of a sample depend on the rest of the batch in eval mode (the same samples in "
               "another order give other outputs), so a prediction changes with what it is batched with"
               + (f"; {fix}" if fix else ""))
    return None


# what the run under way said about its module (one_warning_each); None outside a run
_SAID: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("neuralab_module_warnings", default=None)


@contextlib.contextmanager
def one_warning_each():
    """One run, as a block or a decorator: each warning about its module is said once in it. A
    run checks its module more than once (before its folder is made, then as it builds, once
    more for each fold), and a catch_warnings() anywhere in between makes Python's own
    once-per-place forget it said it; the next run says it again."""
    token = _SAID.set(set())
    try:
        yield
    finally:
        _SAID.reset(token)


def _warn_once(name: str, why: str) -> None:
    """Warn ``why`` about the module ``name`` unless the run under way said it already
    (``one_warning_each``), by whatever name: a run checks its module as the user gave it, and
    again as rebuilt from its copy of the code (model.py)."""
    said = _SAID.get()
    if said is None or why not in said:
        warnings.warn(f"{name}: {why}", stacklevel=2)
        if said is not None:  # only once it is said: one raised as an error (-W error) was not
            said.add(why)


@contextlib.contextmanager
def _buffers_kept(module):
    """``module``'s buffers (running statistics, counters a forward updates) as they were after the block."""
    import torch
    from torch.nn.parameter import is_lazy

    # a lazy layer's buffer has no values until its first batch (LazyBatchNorm after a layer that failed)
    saved = [(m, n, b, b.detach().clone()) for m in module.modules() for n, b in m._buffers.items()
             if b is not None and not is_lazy(b)]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, n, buffer, value in saved:
                buffer.copy_(value)
                m._buffers[n] = buffer


def _input_refusal(name: str, shape: str, x, layer, taker, got: tuple, what: str) -> str | None:
    """The refusal of a module whose first layer (``layer``, the module ``taker``, called on ``got``)
    takes other inputs than the data's ``x``: a colour model's convolution given grey pictures, a
    forecaster's recurrent or dense layer given more or fewer inputs per step; None otherwise."""
    import torch

    if what == "classes" and taker is not None:
        k, c = taker.in_channels, x.shape[1]
        if len(got) == 4 and got[1] == c and 0 < k != c:  # the data's channels, as they came
            return (f"{name}: the model wants {k} channels (its first convolution, {layer}, is "
                    f"nn.Conv2d({k}, ...)), the data has {c}: images {shape}; make that layer "
                    f"nn.Conv2d({c}, ...){read_as(f'{k}-channel pictures', k)}")
    if what == "steps" and taker is not None:
        k = taker.input_size if isinstance(taker, torch.nn.RNNBase) else taker.in_features
        c = x.shape[-1]
        if len(got) == 3 and tuple(got[1:]) == tuple(x.shape[1:]) and k != c:  # the windows, as they came
            layer_text = f"nn.{type(taker).__name__}({{}}, ...)"
            return (f"{name}: the model takes {k} input{'s' if k != 1 else ''} per step (its first layer, {layer}, "
                    f"is {layer_text.format(k)}), the windows give {c} (the target, then each of `features`, "
                    f"and 2 for each of `calendar`): windows {shape}; make that layer {layer_text.format(c)}, or "
                    f"change `features` and `calendar` to give {k}")
    return None


def _failing_layer(module, x, what: str) -> str:
    """What to change in a classifier failing on pictures ``x`` of their size: the layer that
    refused them (models.summary finds it), and the size a few pixels up (training.keras_model's
    MAX_PAD, as a Keras model's input is padded) that the module works on, where one does: the
    PyTorch tutorial's LeNet is built for 32x32, MNIST's are 28x28. "" where neither is found."""
    import torch

    from neuralab.models.summary import InputShapeError, summary
    from neuralab.training.keras_model import MAX_PAD

    if what != "classes" or x.dim() != 4:
        return ""
    layer, gets, reshaped = None, None, ""
    with _buffers_kept(module), torch.random.fork_rng(devices=[]), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            summary(module, tuple(x.shape[1:]), name=type(module).__name__)
        except InputShapeError as e:
            layer = e.layer
        except Exception as e:  # noqa: BLE001  a summary that fails otherwise names no layer
            reraise_interrupt(e)
            pass
        taker = dict(module.named_modules()).get(layer) if layer else None  # a lone layer's row is named for its class
        given = None  # what it was given: a Linear's, the features of pictures of this size
        if taker is not None:
            seen: list = []
            hook = taker.register_forward_pre_hook(lambda m, args: seen.append(args[0] if args else None))
            with contextlib.suppress(Exception), interrupts_unwrapped():
                module(x)
            given = seen[0] if seen and isinstance(seen[0], torch.Tensor) else None
            if isinstance(taker, torch.nn.Linear) and given is not None and given.dim() == 2 and len(given) != len(x):
                # forward reshaped the batch away before the layer, whose size is then no fault of the
                # pictures': a first size written in the code stays on a batch one larger (or fails
                # there), a view(-1, features)'s grows with it
                with contextlib.suppress(Exception), interrupts_unwrapped():
                    module(torch.cat([x, x[:1]]))
                grows = len(seen) > 1 and isinstance(seen[1], torch.Tensor) and len(seen[1]) != len(given)
                reshaped = BATCH_FIRST if grows else _written_batch(len(given), len(x))
            hook.remove()
        other = _other_placement(taker, given, module, layer, x.dtype)
        if isinstance(taker, torch.nn.Linear) and given is not None and not other and not reshaped:
            gets = given.shape[-1]
        h, w = x.shape[-2:]
        works = None
        for more in range(1, MAX_PAD + 1) if not reshaped else ():
            try:
                y = module(x.new_zeros(2, x.shape[1], h + more, w + more))
            except Exception as e:  # noqa: BLE001  not this size either
                reraise_interrupt(e)
                continue
            if isinstance(y, torch.Tensor) and y.dim() == 2 and y.shape[0] == 2:
                works = (h + more, w + more)
                break
    said = f"; at {layer} ({type(taker).__name__})" if taker is not None else ""
    if other:  # not a size: the layer's weights are fine for these pictures
        return f"{said}, {other}"
    if reshaped:
        return f"{said}, which is given {_shape_of(given)} inputs: {reshaped}"
    if gets is not None and gets == taker.in_features:  # it takes what it gets: the error is no size's
        return said
    if gets is not None:
        said += (f", nn.Linear({taker.in_features}, ...), which gets {gets} features from pictures of {h}x{w}: "
                 f"make it nn.Linear({gets}, ...)")
    if works is not None:
        top, left = (works[0] - h) // 2, (works[1] - w) // 2
        pad = f"({left}, {works[1] - w - left}, {top}, {works[0] - h - top})"
        size = f"{works[0]}x{works[1]}"
        said += (f"; it works on {size} pictures (neuralab pads the data only for a Keras model, whose input shape "
                 f"it reads): pad them first in forward (x = F.pad(x, {pad})){read_as(f'{size} pictures', None, works)}")
    elif gets is None and said:
        said += ": was the model built for another input shape?"
    return said


def _fixed_batch(error: str, batch: int) -> str:
    """The advice for a forward that reshapes to a first size written in the code, the training
    batch's (x.view(128, -1)), from PyTorch's error on a batch of ``batch``; "" for other errors."""
    import re

    fixed = re.search(r"shape '\[(\d+),[^\]]*\]' is invalid for input of size", error)
    if fixed is None or int(fixed.group(1)) in (1, batch):
        return ""
    return f"; {_written_batch(int(fixed.group(1)), batch)}"


def _written_batch(rows: int, batch: int) -> str:
    return (f"forward reshapes to a first size of {rows} whatever the batch (a batch of {batch} here, and an "
            f"epoch's last batch or a prediction may be smaller): {ANY_BATCH}")


def _other_placement(layer, given, module=None, name: str | None = None, data=None) -> str:
    """"which is given float64 inputs, and its weights are float32: ..." where ``layer`` (``name`` in
    ``module``) has weights of another dtype or on another device than ``given``, what it was called
    on; "" where they match, or cannot be told. ``data``: the dtype the data gives the model, which
    the user does not choose: where ``given`` is of it, the weights are what to change."""
    weight = next(iter(layer.parameters(recurse=False)), None) if layer is not None else None
    if weight is None or given is None or not given.is_floating_point():
        return ""
    if given.dtype != weight.dtype:
        have, want = (str(t.dtype).removeprefix("torch.") for t in (given, weight))
        if given.dtype == data:  # a .double() in __init__: the weights, not the inputs, left the data's type
            floats = [p for p in module.parameters() if p.is_floating_point()] if module is not None else []
            if floats and all(p.dtype == weight.dtype for p in floats):
                return (f"which is given {have} inputs, and its weights are {want}, as are all the model's: keep "
                        f"them {have}, the type of the data the trainer gives: drop the .double() or .half() in "
                        f"__init__, or call .float() on the model")
            return (f"which is given {have} inputs, and its weights are {want}: keep them {have}, the type of the "
                    f"data the trainer gives: drop the .double() or .half() on {name or 'that layer'} in __init__, "
                    f"or call .float() on it")
        return (f"which is given {have} inputs, and its weights are {want}: give it {want} inputs (no .double() or "
                ".half() in forward; the trainer picks the float type)")
    if given.device != weight.device:
        return (f"which is given inputs on {given.device}, and its weights are on {weight.device}: leave the device "
                "to neuralab (no .cuda() or .to(device) in forward)")
    return ""


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
    except Exception as e:  # noqa: BLE001  a state_dict() that fails is no network known to be the same
        reraise_interrupt(e)
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
        _warn_once(name, f"keeps {_plain_tensors(constants)}, which PyTorch does not register: built "
                   f"alike every time, the run loaded again computes with the same values, but a model moved "
                   f"to a device (.to(device)) leaves {it} behind; register {it} with "
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
        _warn_once(name, "its outputs are probabilities (each row sums to 1: a final softmax); neuralab "
                   "reads a model's outputs as logits and applies the softmax itself, in the loss and in "
                   "predict, so it would train slowly and predict flattened probabilities; leave the softmax "
                   "out of forward (a final log_softmax is fine)")


def read_as(what: str, channels: int | None, size: tuple | None = None) -> str:
    """", or give it WHAT: a folder of pictures read with `color` rgb": how the data could give a
    model the pictures it takes (``what``), a folder's being read with the ``channels`` (1 or 3)
    and the (height, width) ``size`` asked for; "" where neither helps. A named dataset's
    pictures come as they are."""
    if channels is not None and channels not in (1, 3):
        return ""
    asked = ([f"`color` {'rgb' if channels == 3 else 'grayscale'}"] if channels else []) + \
        ([f"`image_size` {size[0]}x{size[1]}"] if size else [])
    return f", or give it {what}: a folder of pictures read with {' and '.join(asked)}" if asked else ""


def _built_again(module, times: int = 1) -> list | None:
    """``type(module)()``, ``times`` times one after another, or None where the class needs
    arguments: the generators go on from where they are (a value drawn as it builds comes out
    otherwise each time) and are put back after, as are torch's defaults, and what the
    constructor prints or warns is not said again."""
    with seeded(None), torch_defaults_kept(), warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            return [type(module)() for _ in range(times)]
        except Exception as e:  # noqa: BLE001  a class that needs its arguments
            reraise_interrupt(e)
            return None


def rebuilt_alike(module):
    """``type(module)()`` with ``module``'s weights, where it has the same layers, settings and
    shapes of weights; None where a constructor argument made another network (``Net(hidden=32)``,
    ``Net(invert=True)``), which a run could not rebuild from its class. ``same_outputs`` then
    compares the two on data."""
    built = _built_again(module)
    if built is None:
        return None
    made = built[0]
    try:
        if _layout(made) != _layout(module):
            return None
        made.load_state_dict(module.state_dict())
    except Exception as e:  # noqa: BLE001  settings that cannot be compared are not known to be the same
        reraise_interrupt(e)
        return None
    return made


def _layout(module, settings: bool = True):
    """What tells two instances of a class apart as networks: their layers, the shapes of their
    weights and (``settings``) the layers' plain attributes, where constructor arguments show."""
    from torch.nn.parameter import is_lazy

    return ([(n, type(m).__name__, _settings(m) if settings else None) for n, m in module.named_modules()],
            [(n, None if is_lazy(t) else tuple(t.shape)) for n, t in module.state_dict().items()])


def same_outputs(module, rebuilt, x) -> bool:
    """Whether the two networks give the same outputs on ``x`` (eval mode, no gradients)."""
    import torch

    was = module.training
    try:
        module.eval()
        rebuilt.eval()
        with torch.no_grad():
            a, b = module(x), rebuilt(x)
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    except Exception as e:  # noqa: BLE001  the class built again fails where the object works: not the same
        reraise_interrupt(e)
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


def other_buffers(recorded: dict, module) -> list[str]:
    """The buffers of ``recorded`` (``unsaved_buffers``'s) that ``module`` has not as recorded."""
    built = unsaved_buffers(module) if recorded else {}
    return [n for n, digest in recorded.items() if not _same_buffer(digest, built.get(n))]


def buffer_matters(module, again, buffer: str, x) -> bool:
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
            return not same_outputs(module, again, x)
        finally:
            values.copy_(kept)


def refuse_other_buffers(other: list[str], where: str, name: str, when: str, then: str = "") -> None:
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
