"""Keras-style model summaries: one row per layer with its output shape and parameters, the
totals, the size, and for every conv and pooling layer the workshop's formula

    W_out = floor((W_in - K + 2P) / S) + 1

with the numbers filled in. ``summary`` returns the data, ``render_summary`` the text (a rich
table on a terminal, plain columns in a log file), ``ModelSummary.to_dict`` a JSON-ready dict.
A ModelSummary prints and displays (REPL, IPython, Jupyter) as the plain table.
"""

from __future__ import annotations

import contextlib
import numbers
import sys
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from neuralab.errors import NeuralabError, ParameterError, Shown, hwc, reraise_interrupt
from neuralab.models.geometry import MapVanishes, geometry, shape_guard
from neuralab.models.table import render_table
from neuralab.models.zoo import checked_shape

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
RECURRENT = ("RNN", "LSTM", "GRU")  # nn.RNNBase's layers: (output, h_n) or (output, (h_n, c_n))
MAX_SIDE = 8192  # the smallest-input search gives up beyond this many pixels a side


@dataclass
class LayerRow:
    name: str                    # qualified module name, e.g. "features.0"
    kind: str                    # class name, e.g. "Conv2d"
    output_shape: tuple          # without the batch: (C, H, W) or (F,); a tuple of those for several outputs.
                                 # A tensor whose batch is not its first dimension keeps every dimension,
                                 # None at the batch's: an LSTM's h_n is (layers * directions, None, hidden)
    params: int                  # parameters of this layer (of the whole block for a block row)
    trainable: int
    depth: int                   # nesting level, 1 for the model's direct children
    formula: str | None = None   # how a conv/pool/pad layer's output size follows from its input
    block: bool = False          # a composite layer (e.g. an Inception module) listed after its parts;
                                 # its params are already counted in the rows above it
    keras_params: int = 0        # what Keras counts for this layer (see keras_count)
    keras_trainable: int = 0
    shared: list = field(default_factory=list)  # (parameter, row that counts it, size): tied weights
                                                # count once, in the first row that holds them


@dataclass
class ModelSummary:
    model: str
    input_shape: tuple[int, ...]       # (C, H, W) for images, (steps, features) for sequences
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    buffers: int                       # BatchNorm running statistics and the like: saved, not trained
                                       # (persistent=False buffers are not saved, so not counted)
    size_bytes: int                    # parameters and buffers as stored in state_dict / model.safetensors
    output_shape: tuple
    unused: list[tuple[str, int]] = field(default_factory=list)  # layers with parameters that did not run
    unregistered: list[tuple[str, str]] = field(default_factory=list)  # tensors PyTorch does not see (unregistered)
    keras_params: int = 0              # the model's parameters as Keras counts them (keras_count)
    keras_trainable: int = 0
    # parameters a module holds itself, beside its layers (a ViT's cls_token, a learned temperature), which
    # no row counts: (module, [(parameter, shape)], count)
    held: list[tuple[str, list, int]] = field(default_factory=list)
    # convolutions of groups > 1 (AlexNet's two towers, depthwise ones), whose counts the plain
    # formula K*K*C_in*C_out + C_out does not give: (layer, groups)
    grouped: list[tuple[str, int]] = field(default_factory=list)
    # modules scripted with torch.jit (outermost ones), each one row: their layers run as compiled code
    scripted: list[str] = field(default_factory=list)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(non_trainable_params=self.non_trainable_params, size_mb=self.size_mb)
        return d

    def __str__(self) -> str:
        return render_summary(self, rich=False)

    def __repr__(self) -> str:
        # A bare `summary(model, shape)` at a notebook cell's end or in a REPL shows the table, as
        # Keras's model.summary() does, not hundreds of characters of dataclass fields. IPython's
        # pretty printer and Jupyter's text/plain both use a class's own __repr__; the REPL adds the newline.
        return render_summary(self, rich=False).rstrip("\n")


def _shape(output):
    if isinstance(output, torch.Tensor):
        # The dry run's batch is empty, so the batch is the dimension of size 0: first for most
        # layers, second in an RNN's h_n/c_n (layers * directions, B, hidden) and in a
        # batch_first=False sequence (steps, B, features).
        dims = tuple(output.shape)
        if 0 in dims[1:] and dims[0] != 0:
            at = dims.index(0)
            return (*dims[:at], None, *dims[at + 1:])
        return dims[1:]
    if isinstance(output, (tuple, list)):
        return tuple(_shape(o) for o in output if isinstance(o, (torch.Tensor, tuple, list)))
    return ()


def _as_given(input_shape) -> str:
    """A shape as Python gives it, a tuple: (1, 28, 28)."""
    return str(tuple(input_shape))


class InputShapeError(ParameterError):
    """An `input_shape` the model cannot take. Python names it, and the shapes its advice gives, as
    a caller gives them, (C, H, W) tuples; the command line as its --input takes them, HxWxC
    (``as_typed``, which ``render`` gives where a flag names the parameter): ``typed_reason`` is
    the reason in those words."""

    def __init__(self, input_shape, reason: str, typed_reason: str, layer: str | None = None):
        self.input_shape, self.typed_reason = tuple(input_shape), typed_reason
        self.layer = layer  # the layer that failed on it, as named_modules() names it, where one did
        super().__init__("input_shape", self.input_shape, reason)

    def as_typed(self) -> ParameterError:
        """This refusal as the command line says it: the shape as --input took it, HxWxC."""
        return ParameterError("input_shape", hwc(self.input_shape), self.typed_reason)

    def render(self, name=None) -> str:
        if name is not None and name(self.parameter).startswith("-"):  # the command line names its flag
            return self.as_typed().render(name)
        return super().render(*([name] if name is not None else []))


def _device(model: nn.Module) -> torch.device:
    for t in [*model.parameters(), *model.buffers()]:
        return t.device
    return torch.device("cpu")


class _ReadsParameters(torch.overrides.TorchFunctionMode):
    """Notes in ``read`` the id of every tensor a torch function is given while it is on: a
    layer's forward hook tells that it was called, this that its weights were used anyway, by
    its owner's functional code (F.multi_head_attention_forward takes out_proj's weights)."""

    def __init__(self, read: set[int]):
        super().__init__()
        self.read = read

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") == "__get__":  # .dtype, .device, .shape: what a tensor is, not its values
            return func(*args, **kwargs)
        stack = [*args, *kwargs.values()]
        while stack:
            a = stack.pop()
            if isinstance(a, torch.Tensor):
                self.read.add(id(a))
            elif isinstance(a, (list, tuple)):
                stack.extend(a)
        return func(*args, **kwargs)


def dry_run(model: nn.Module, input_shape, batch: int = 0, device: torch.device | None = None):
    """One forward pass on zeros in eval mode without gradients; an empty batch computes
    nothing but the shapes. ``device``: the model's (``_device``), found before a
    ``_ReadsParameters`` block, which would count its first weight as read. Each layer's mode
    (a BatchNorm its user froze in eval stays so) and the caller's random generators (a lazy
    layer's first pass draws its weights) are left as they were."""
    device = device if device is not None else _device(model)
    with in_eval_mode(model), torch.no_grad(), \
            torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return model(torch.zeros(batch, *input_shape, device=device))


@contextlib.contextmanager
def in_eval_mode(model: nn.Module):
    """``model`` in eval mode for the block, each layer's mode put back after: a caller's module
    in the middle of its training goes on with Dropout on, and a BatchNorm its user froze in
    eval stays so."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes.items():
            m.training = training


def smallest_input(works: Callable[[tuple[int, int, int]], bool], channels: int,
                   start: int = 1) -> tuple[int, int, int] | None:
    """The smallest square (channels, s, s) with s >= ``start`` for which ``works`` holds, or
    None up to MAX_SIDE.

    Conv and pool output sizes never shrink when the input grows, so a doubling search and
    then a bisection find it in a few dozen dry runs. A zoo model whose layers change with
    the input's size (geometry.SMALL_INPUT) breaks that rule where they change: started at
    the input that failed, the search looks only above it, and its answer is a size that worked."""
    lo, hi = start - 1, start  # lo: the largest side known to fail (start - 1: none tried)
    while not works((channels, hi, hi)):
        if hi >= MAX_SIDE:
            return None
        lo, hi = hi, min(2 * hi, MAX_SIDE)
    side = _edge(lambda s: not works((channels, s, s)), lo, hi) + 1
    return channels, side, side


def _edge(holds: Callable[[int], bool], lo: int, hi: int) -> int:
    """The largest side in [lo, hi) where ``holds`` is true, by bisection, given that it holds
    at ``lo`` (or ``lo`` was never tried) and not at ``hi``."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if holds(mid) else (lo, mid)
    return lo


def _largest_below(works, channels: int, side: int) -> tuple[int, int, int] | None:
    """The largest square below ``side`` that works, where one does (a smaller input may get a
    model's small-input layers), found by bisection from the smallest that works."""
    first = smallest_input(works, channels)
    if first is None or first[1] >= side:
        return None
    largest = _edge(lambda s: works((channels, s, s)), first[1], side)
    return channels, largest, largest


def too_small(model_name: str, input_shape, err: MapVanishes, works) -> InputShapeError:
    """The one-line error for an input on which ``model_name``'s feature maps vanish: with the
    nearest input up that works, and the nearest one down where a smaller input works too."""
    c, side = input_shape[0], min(input_shape[1:])
    up, down = smallest_input(works, c, side), _largest_below(works, c, side)

    def reason(shape) -> str:
        if down is None:
            hint = f"the smallest input that works is {shape(up)}" if up else \
                f"no input up to {MAX_SIDE}x{MAX_SIDE} works"
        elif up is None:
            hint = f"the largest input that works is {shape(down)}"
        else:
            hint = f"the nearest inputs that work are {shape(down)} and {shape(up)}"
        return f"too small for {model_name}: {err}; {hint}"
    return InputShapeError(input_shape, reason(_as_given), reason(hwc))


def _passes_features(model: nn.Module):
    def works(shape) -> bool:
        try:
            with shape_guard(model):
                dry_run(model, shape)
        except MapVanishes:
            return False
        except Exception as e:  # noqa: BLE001 - a later layer (e.g. the classifier) may expect another size
            reraise_interrupt(e)
            return True
        return True
    return works


def summary(model: nn.Module, input_shape, depth: int | None = None, name: str | None = None) -> ModelSummary:
    """Run ``model`` once on an empty batch of ``input_shape`` and describe every layer: (C, H, W)
    for an image model, (steps, features) for a recurrent one, one input without the batch.

    ``depth`` folds layers nested deeper than that many levels into their parent's row
    (None: every layer). Models built on the "meta" device work too and cost nothing.
    An input on which a feature map vanishes raises a NeuralabError naming the layer and
    the smallest input that works.
    """
    if isinstance(model, str):  # the command line's spelling: a zoo model needs its classes, which it builds with
        from neuralab.models.zoo import ARCHITECTURES

        shape = _as_given(input_shape) if isinstance(input_shape, (tuple, list)) else "(1, 28, 28)"
        zoo = repr(model) if model in ARCHITECTURES else f"NAME ({', '.join(ARCHITECTURES)})"
        raise ParameterError("model", model, f"give a torch.nn.Module; for a zoo model, build it first with its number "
                                             f"of classes: summary(build_model({zoo}, {shape}, 10), {shape})")
    if not isinstance(model, nn.Module):  # a Keras model, say: its layers are not PyTorch's to hook
        raise ParameterError("model", Shown(model), "give a torch.nn.Module; a Keras model converts with "
                                                    "neuralab.keras (read, then build), or shows its own table with "
                                                    "model.summary()")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1):
        # depth 0 would fold every layer away, leaving a table of no rows
        raise ParameterError("depth", depth, "must be a whole number of at least 1 (1: the model's direct "
                                             "children), or None for every layer")
    input_shape = checked_shape(input_shape, images=False)
    name = name or _kind(model)
    hidden = unregistered(model)  # before forward runs: a tensor it keeps for later (attention maps) is no weight
    modules = _layers(model)
    # TorchScript runs a scripted module's forward as compiled code, where no hook sees its layers, and
    # PyTorch refuses hooks on it: each outermost one is a row of its own, what it holds counted there
    scripted = [n for n, m in modules.items() if isinstance(m, torch.jit.ScriptModule)
                and not any(n.startswith(o + ".") or (not o and n) for o in modules
                            if o != n and isinstance(modules[o], torch.jit.ScriptModule))]
    modules = {n: m for n, m in modules.items() if not any(n.startswith(o + ".") or (not o and n) for o in scripted)}
    if len(modules) == 1:  # a lone layer (nn.Conv2d, nn.LSTM) is its own row, or the rows add up to nothing
        modules = {_kind(model).lower(): model}
        scripted = list(modules) if scripted else []
    seen: dict[str, tuple] = {}        # name -> output shape, in the order the layers finished
    formulas: dict[str, str] = {}
    running: list[str] = []            # the layers entered but not yet left: where an error happened
    reached: list[str] = []            # the first layer (no children) called: what the input reaches first,
                                       # which need not be the first defined (a CRNN defines its GRU first)
    leaves = {n for n, m in modules.items() if not any(True for _ in _parts(m))}
    read: set[int] = set()             # ids of the tensors torch functions were given: a layer's weights read
                                       # without calling it (MultiheadAttention's out_proj, a tied output layer)

    def enter(n):
        def hook(module, args):
            running.append(n)
            if not reached and n in leaves:
                reached.append(n)
            if args and isinstance(args[0], torch.Tensor) and args[0].dim() >= 3:
                geo = geometry(module, *args[0].shape[-2:])
                if geo is not None and n not in formulas:
                    formulas[n] = geo.formula
        return hook

    def leave(n):
        def hook(module, args, output):
            running.pop()
            seen.setdefault(n, _shape(output))
        return hook

    handles, swapped = [], []
    for n, m in modules.items():
        if n in scripted and m is not model:  # its stand-in, which its parent calls for the dry run, takes the hooks
            parent, _, key = n.rpartition(".")
            owner_module = model.get_submodule(parent)
            swapped.append((owner_module, key, m))
            owner_module._modules[key] = m = _Scripted(m)
        if n and not isinstance(m, torch.jit.ScriptModule):  # a scripted whole model: its output is its row's
            handles += [m.register_forward_pre_hook(enter(n)), m.register_forward_hook(leave(n))]
    try:
        # An empty batch computes nothing but shapes; a model that flattens with
        # x.view(x.size(0), -1) cannot infer the -1 of zero elements, so it gets one image
        # (its rows then show no batch inside a recurrent layer's states: there is no 0 to find).
        device = _device(model)
        for batch in (0, 1):
            seen.clear()
            formulas.clear()
            running.clear()
            reached.clear()
            read.clear()
            try:
                with shape_guard(model), _ReadsParameters(read):
                    output = dry_run(model, input_shape, batch, device)
                if scripted and modules.get(scripted[0]) is model:  # a scripted whole model: its one row
                    seen[scripted[0]] = _shape(output)
                break
            except NeuralabError:  # MapVanishes, or a converted Keras layer's own refusal: said already
                raise
            except Exception as e:  # the model's own forward may refuse an empty batch, in any words
                reraise_interrupt(e)
                if batch == 1:
                    raise
    except MapVanishes as e:
        raise too_small(name, input_shape, e, _passes_features(model)) from None
    except NeuralabError:
        raise
    except Exception as e:  # noqa: BLE001  whatever the model's forward raises: one line naming the layer
        reraise_interrupt(e)  # Ctrl-C that the forward raised as another error: no fault of a layer
        where = running[-1] if running else "the model"
        where += f" ({_kind(modules[where])})" if where in modules else ""
        text = error_text(e)
        # PyTorch's own RuntimeErrors say what failed; a user's ValueError("expected 32x32 images") needs its kind
        first = text if isinstance(e, RuntimeError) and text else ": ".join(filter(None, [type(e).__name__, text]))
        layer = (reached[0], modules[reached[0]]) if reached else None
        sequence = layer and isinstance(layer[1], nn.RNNBase) and len(input_shape) == 3

        def reason(typed: bool) -> str:
            hint = sequence_hint(layer, input_shape[1], typed) if sequence else \
                "was the model built for another input shape?"
            return f"{name} fails at {where}: {first}; {hint}"
        raise InputShapeError(input_shape, reason(False), reason(True), running[-1] if running else None) from None
    finally:
        for h in handles:
            h.remove()
        for owner_module, key, m in swapped:
            owner_module._modules[key] = m

    rows = []
    owner: dict[int, str] = {}         # id of a parameter -> the row that counts it (tied weights count once)
    for n, shape in _with_containers_run_by_parts(seen, modules).items():
        m = modules[n]
        level = n.count(".") + 1
        has_children = n not in scripted and any(True for _ in _parts(m))
        if depth is not None and level > depth:
            continue
        folded = has_children and depth is not None and level == depth
        block = has_children and not folded and not isinstance(m, _CONTAINERS)
        if has_children and not (folded or block):
            continue
        if block:  # its parts counted its parameters above it, except what they share with rows outside it
            elsewhere = {i for i, o in owner.items() if not o.startswith(n + ".")}
            params = [p for p in m.parameters() if id(p) not in elsewhere]
            shared = []
        else:
            params = [p for p in m.parameters() if id(p) not in owner]
            shared = [(k, owner[id(p)], p.numel()) for k, p in m.named_parameters() if id(p) in owner]
            owner.update((id(p), n) for p in params)
        skip = {id(p) for p in m.parameters()} - {id(p) for p in params}
        rows.append(LayerRow(n, _kind(m), shape, sum(p.numel() for p in params),
                             sum(p.numel() for p in params if p.requires_grad), level, formulas.get(n), block,
                             *_keras_count(m, skip), shared=shared))
    unused = []
    for n, m in modules.items():
        if n and n not in seen:
            own = [p for p in m.parameters(recurse=False) if id(p) not in owner]
            if own and not any(id(p) in read for p in own):
                owner.update((id(p), n) for p in own)
                unused.append((n, sum(p.numel() for p in own)))
            # read though never called (an nn.ParameterList's, indexed in forward): held, said below
    held = []
    for n, m in modules.items():
        own = [(k, p) for k, p in m.named_parameters(recurse=False) if id(p) not in owner]
        owner.update((id(p), n) for _, p in own)
        if own:
            held.append((f"{n} ({_kind(m)})" if n else name, [(k, tuple(p.shape)) for k, p in own],
                         sum(p.numel() for _, p in own)))
    params = list(model.parameters())
    stored = _stored(model)
    is_param = {id(p) for p in params}
    keras_total, keras_trainable = keras_count(model)
    return ModelSummary(
        model=name, input_shape=input_shape, rows=rows,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        buffers=sum(t.numel() for t in stored if id(t) not in is_param),
        size_bytes=sum(t.numel() * t.element_size() for t in stored),
        output_shape=_shape(output), unused=_fold_unused(unused), keras_params=keras_total, keras_trainable=keras_trainable,
        unregistered=hidden, held=held,
        grouped=[(n, m.groups) for n, m in modules.items() if isinstance(m, nn.Conv2d) and m.groups > 1],
        scripted=scripted,
    )


def error_text(e: Exception) -> str:
    """What ``e`` says, in one line: its first, or for an error inside a scripted module the error's
    own, which TorchScript gives last, after its traceback ("The following operation failed ...")."""
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("The following operation failed in the TorchScript interpreter"):
        return lines[-1].removeprefix("RuntimeError: ")
    return lines[0] if lines else ""


class _Scripted(nn.Module):
    """A scripted module's stand-in in its parent during summary's dry run: it takes the hooks
    that PyTorch refuses on a ScriptModule, and calls it."""

    def __init__(self, module: torch.jit.ScriptModule):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def _kind(m: nn.Module) -> str:
    """A layer's class as its code names it: a scripted one's is RecursiveScriptModule, whatever it was."""
    return getattr(m, "original_name", None) or type(m).__name__ if isinstance(m, torch.jit.ScriptModule) \
        else type(m).__name__


def _parts(m: nn.Module) -> list[nn.Module]:
    """The layers ``m`` holds: its children, less the modules of torch.nn.utils.parametrizations
    (weight_norm, spectral_norm), which compute a weight of ``m`` and are no layers of their own."""
    return [c for k, c in m.named_children() if not (k == "parametrizations" and parametrize.is_parametrized(m))]


def _layers(model: nn.Module) -> dict[str, nn.Module]:
    """``model.named_modules()`` as a dict, without the parametrizations (``_parts``): a parametrized
    layer is one row, which counts the weights they hold (a hook on them saw a weight as an output)."""
    modules = dict(model.named_modules())
    inside = [f"{n}.parametrizations" if n else "parametrizations" for n, m in modules.items()
              if parametrize.is_parametrized(m)]
    return {n: m for n, m in modules.items() if not any(n == p or n.startswith(p + ".") for p in inside)}


def _first_layer(model: nn.Module) -> tuple[str, nn.Module] | None:
    """(name, layer) of ``model``'s first layer defined (one holding no other), or None: a guess
    at what a model takes before anything has run it, which a model that defines its layers in
    another order than it calls them (a CRNN) belies. ``summary`` goes by the first layer its
    dry run calls."""
    for n, m in _layers(model).items():
        if not any(True for _ in _parts(m)):
            return n or type(m).__name__.lower(), m
    return None


def sequence_layer(model: nn.Module) -> tuple[str, nn.RNNBase] | None:
    """(name, layer) of ``model``'s first layer defined where it is recurrent (an RNN, LSTM or
    GRU), else None."""
    first = _first_layer(model)
    return first if first and isinstance(first[1], nn.RNNBase) else None


def image_layer(model: nn.Module) -> tuple[int | None, tuple[int, int]] | None:
    """(in_channels, kernel) of ``model``'s first layer defined where it is a 2-D convolution (a
    scripted one too), else None: the channels it takes say which order three sizes are meant
    in. in_channels is None for a lazy one, which learns it from its first input."""
    first = _first_layer(model)
    if first is None or _kind(first[1]) not in ("Conv2d", "LazyConv2d"):
        return None
    m = first[1]
    return m.in_channels or None, tuple(m.kernel_size)


def sequence_hint(layer: tuple[str, nn.RNNBase], steps: int, typed: bool = True) -> str:
    """What to give a model whose first layer, ``layer`` (name, recurrent layer), takes
    sequences, with ``steps`` steps in the example: the one wording of every such advice.
    ``typed``: as the command line's --input takes it (30x1), else as Python does, (30, 1)."""
    name, m = layer
    shape = f"steps x features, e.g. {steps}x{m.input_size}" if typed else \
        f"(steps, features), e.g. ({steps}, {m.input_size})"
    return (f"its first layer, {name} ({type(m).__name__}), takes sequences (batch, steps, features): give "
            f"`input_shape` as {shape}")


def unregistered(model: nn.Module) -> list[tuple[str, str]]:
    """Where ``model`` keeps tensors that PyTorch does not register, as (attribute, what to use
    instead): layers in a plain list, tuple or dict (``self.layers = [nn.Linear(64, 10)]``), a
    tensor requiring grad that is no nn.Parameter, a tensor attribute that is no buffer
    (``self.proj = torch.randn(784, 256)``). No ``parameters()`` or ``state_dict()`` holds
    them, so they are not counted, trained, moved to a device or saved: a model loaded again
    has them only as its code builds them again. A tensor computed from registered weights (it
    has a grad_fn) or set by one of torch's hooks (the old weight_norm and spectral_norm) is
    derived, not kept. Which of them a run cannot do without (a random draw, not a constant or
    what forward keeps) takes building the module again: training.module_check judges that."""
    registered = {id(t) for t in [*model.parameters(), *model.buffers()]}
    found = []
    for path, m in model.named_modules():
        hooked = {getattr(h, "name", None) or getattr(h, "_tensor_name", None) for h in m._forward_pre_hooks.values()}
        for key, value in vars(m).items():  # registered layers and weights live in m._modules, m._parameters
            where = f"{path}.{key}" if path else key
            if isinstance(value, torch.Tensor):
                if value.is_leaf and id(value) not in registered and key not in hooked:
                    found.append((where, "nn.Parameter" if value.requires_grad else _as_buffer(key)))
                continue
            plain = isinstance(value, (list, tuple, dict)) and not isinstance(value, nn.Module)
            items = list(value.values() if isinstance(value, dict) else value) if plain else [value]
            weights = [t for v in items for t in (v.parameters() if isinstance(v, nn.Module) else [v])
                       if isinstance(t, torch.Tensor) and t.requires_grad and t.is_leaf]
            if any(id(t) not in registered for t in weights):
                use = ("nn.ModuleDict" if isinstance(value, dict) else "nn.ModuleList") if plain else (
                    "a registered submodule")
                found.append((where, use))
    return found


def _as_buffer(key: str) -> str:
    """What ``unregistered`` advises for a plain tensor attribute ``key`` that is not trained."""
    return f'self.register_buffer("{key}", ...)'


def _stored(model: nn.Module) -> list[torch.Tensor]:
    """The tensors that model.safetensors holds, each once: state_dict leaves out buffers
    registered with persistent=False (recomputed, not saved), and lists a tied weight under
    each of its names."""
    unique = {}
    for t in model.state_dict(keep_vars=True).values():
        if isinstance(t, torch.Tensor):
            unique.setdefault(id(t), t)
    return list(unique.values())


def keras_count(module: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameters of ``module`` as Keras counts the same layers.

    Two layers count differently. Keras's BatchNormalization holds its moving mean and
    variance as (non-trainable) weights, PyTorch as buffers: Keras counts them. Keras's LSTM
    has one bias per gate and its SimpleRNN one bias, PyTorch's two (b_ih and b_hh, which only
    ever add up): Keras does not count the second. GRU keeps two biases in both (Keras's reset_after=True)."""
    return _keras_count(module, set())


def keras_differences(kinds) -> list[str]:
    """Why PyTorch's layout of layers of these ``kinds`` (class names, PyTorch's or Keras's: LSTM,
    RNN or SimpleRNN, BatchNorm2d) counts other parameters than Keras does, as ``keras_count``
    counts them: one clause per kind of layer present, in PyTorch's voice ("its LSTM keeps ...").
    GRU keeps two biases in both, so it adds none."""
    kinds = set(kinds)
    why = [clause for present, clause in (
        ("LSTM" in kinds, "its LSTM keeps two biases per gate where Keras keeps one"),
        (bool(kinds & {"RNN", "SimpleRNN"}), "its SimpleRNN keeps two biases where Keras keeps one")) if present]
    if why:
        why[-1] += " (the two only ever add up, so the function is the same)"
    if any("BatchNorm" in k for k in kinds):
        why.append("BatchNorm's moving mean and variance are buffers there, which Keras counts as non-trainable weights")
    return why


def _keras_count(module: nn.Module, skip: set[int]) -> tuple[int, int]:
    """keras_count without the parameters whose id is in ``skip`` (counted in another row)."""
    params = [p for p in module.parameters() if id(p) not in skip]
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            total += m.running_mean.numel() + m.running_var.numel()
        elif isinstance(m, (nn.LSTM, nn.RNN)) and m.bias:
            second = [p for n, p in m.named_parameters() if n.startswith("bias_hh") and id(p) not in skip]
            total -= sum(p.numel() for p in second)
            trainable -= sum(p.numel() for p in second if p.requires_grad)
    return total, trainable


def _with_containers_run_by_parts(seen: dict[str, tuple], modules: dict[str, nn.Module]) -> dict[str, tuple]:
    """``seen`` plus the containers whose forward never ran because the model called their
    children one by one (GoogLeNet taps its ``features``): each takes its last part's
    output, in that part's place, so that folding by depth keeps it."""
    order = list(seen)
    extra = {}
    for n, m in modules.items():
        if n and n not in seen and any(True for _ in _parts(m)):
            inner = [i for i, k in enumerate(order) if k.startswith(n + ".")]
            if inner:
                extra[n] = (inner[-1] + 0.5, seen[order[inner[-1]]])
    entries = [(i, k, seen[k]) for i, k in enumerate(order)] + [(pos, n, shape) for n, (pos, shape) in extra.items()]
    return {k: shape for _, k, shape in sorted(entries, key=lambda e: e[0])}


def _fold_unused(unused: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Group unused layers by their top-level module (``aux1.1.0`` -> ``aux1``)."""
    groups: dict[str, int] = {}
    for n, p in unused:
        groups[n.split(".")[0]] = groups.get(n.split(".")[0], 0) + p
    return list(groups.items())


# --- text ---------------------------------------------------------------------------------------

def _fmt_shape(shape) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_fmt_shape(s) for s in shape)
    if None in shape:
        return "(" + ", ".join("B" if v is None else str(v) for v in shape) + ")"
    return "(B, " + ", ".join(map(str, shape)) + ")" if shape else "(B,)"


def _fmt_dims(shape) -> str:
    """A parameter's shape, all of it: (8, 1, 3, 3), (8,)."""
    return f"({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''})"


def _batch_inside(shape) -> bool:
    """Whether ``shape`` (or one of several outputs) keeps its batch elsewhere than first."""
    if shape and isinstance(shape[0], tuple):
        return any(_batch_inside(s) for s in shape)
    return None in shape


def _shared_note(r: LayerRow) -> str:
    return "; ".join(f"{k} shared with {o}, counted there ({size:,})" for k, o, size in r.shared)


def _table_rows(s: ModelSummary) -> list[tuple[str, str, str, str]]:
    out = []
    base = min((r.depth for r in s.rows), default=1)
    for r in s.rows:
        indent = "  " * (r.depth - base)
        label = f"{indent}{r.name} ({r.kind})"
        params = f"({r.params:,})" if r.block else f"{r.params:,}"
        out.append((label, _fmt_shape(r.output_shape), params, "; ".join(filter(None, [r.formula, _shared_note(r)]))))
    return out


def _footer(s: ModelSummary) -> list[str]:
    lines = [
        f"Total params: {s.total_params:,}   size {s.size_mb:.2f} MB (parameters and buffers as stored)",
        f"Trainable params: {s.trainable_params:,}",
        f"Non-trainable params: {s.non_trainable_params:,}",
    ]
    if s.buffers:
        lines.append(f"Buffers (e.g. BatchNorm running mean/var, saved but not trained): {s.buffers:,}")
    plain = [n for n, use in s.unregistered if use == _as_buffer(n.rpartition(".")[2])]
    weights = [(n, use) for n, use in s.unregistered if n not in plain]
    if weights:
        lines.append("Not registered with PyTorch, so not counted above, trained or saved: "
                     + ", ".join(f"{n} (use {use})" for n, use in weights))
    if plain:
        # what forward keeps for later (attention maps, the last activations) is as plain, and harmless
        lines.append(f"Plain tensors, not registered with PyTorch, so not saved or moved to a device: {', '.join(plain)}"
                     "; one the network computes with belongs in a buffer (self.register_buffer(NAME, ...))")
    for module, own, count in s.held:
        lines.append(f"Parameters {module} holds itself, outside its layers' rows: "
                     + ", ".join(f"{k} {_fmt_dims(shape)}" for k, shape in own) + f": {count:,}")
    if s.grouped:
        lines.append("Grouped convolutions, each filter seeing C_in/groups of the input channels, so K*K*(C_in/groups)"
                     "*C_out + C_out parameters: " + ", ".join(f"{n} (groups={g})" for n, g in s.grouped))
    if s.scripted:
        lines.append(_scripted_note(s.scripted))
    if s.unused:
        lines.append("Not run at inference (params counted above): "
                     + ", ".join(f"{n} ({p:,})" for n, p in s.unused))
    if any(r.block for r in s.rows):
        lines.append("A block row (params in parentheses) sums the rows of its parts above it.")
    if any(r.shared for r in s.rows):
        lines.append("Tied parameters count once, in the first row that holds them (as Keras counts a shared layer "
                     "once), so the rows add up to the total.")
    if len(s.input_shape) == 3:
        lines.append("Shapes are (batch, channels, height, width); K kernel, P padding, S stride.")
    else:
        lines.append("Shapes lead with the batch, then the input's own dimensions (steps, features for a sequence).")
    if any(_batch_inside(r.output_shape) for r in s.rows):
        lines.append("B marks the batch where a tensor does not lead with it: an RNN/LSTM/GRU row gives its output "
                     "sequence, then its final states h_n (and c_n), (layers x directions, B, hidden) each; with "
                     "batch_first=False the sequence is (steps, B, features).")
    return lines


def _scripted_note(names: list[str]) -> str:
    return ("Scripted with torch.jit, so run as compiled code whose layers no hook sees, each one row with all its "
            "parameters: " + ", ".join(names) + "; the module before torch.jit.script shows its layers one by one")


def render_summary(s: ModelSummary, rich: bool | None = None, file=None, layout: str = "torch") -> str:
    """The summary as text: a rich table on a terminal, plain columns otherwise (see render_table).
    ``layout="keras"``: as Keras's model.summary() shows it (see render_keras)."""
    if layout == "keras":
        return render_keras(s.model, keras_rows(s), torch_params=s.total_params, rich=rich, file=file)
    if layout != "torch":
        raise ParameterError("layout", layout, "choose torch or keras")
    header = ("Layer (type)", "Output shape", "Param #", "Output size: W_out = floor((W_in - K + 2P) / S) + 1")
    return render_table(f'Model: "{s.model}"  input {_fmt_shape(s.input_shape)}', header, _table_rows(s),
                        right=(2,), footer=_footer(s), rich=rich, file=file)


def print_summary(s: ModelSummary, file=None, layout: str = "torch") -> None:
    """Print the summary to ``file`` (default stdout): rich on a terminal, plain otherwise."""
    stream = file if file is not None else sys.stdout
    stream.write(render_summary(s, file=stream, layout=layout))


# --- Keras's layout -------------------------------------------------------------------------------

LAYOUTS = ("torch", "keras")


def keras_shape(shape) -> tuple:
    """A PyTorch output shape without the batch as Keras shows it: (C, H, W) maps become
    (None, H, W, C), channels last; vectors and sequences only gain the batch's None. Keras is
    always batch first, so a time-major (steps, None, features) becomes (None, steps, features)."""
    if shape and isinstance(shape[0], tuple):
        return tuple(keras_shape(s) for s in shape)
    if None in shape:
        return (None, *(v for v in shape if v is not None))
    return (None, *shape[1:], shape[0]) if len(shape) == 3 else (None, *shape)


def keras_rows(s: ModelSummary) -> list[dict]:
    """The summary's layers as Keras's rows (the form of neuralab.keras.keras_summary): name,
    class, (None, H, W, C) output shape, Keras's parameter count; blocks are left out (Keras
    lists the layers it runs). A recurrent layer shows its output sequence, as Keras's
    LSTM(return_sequences=True) does; "states" keeps the final states PyTorch also returns.
    "shared": the row's tied parameters, counted in an earlier row; "scripted": a module scripted with
    torch.jit, one row for all its layers."""
    out = []
    for r in s.rows:
        if r.block:
            continue
        row = {"name": r.name, "class": r.kind, "output_shape": keras_shape(r.output_shape),
               "params": r.keras_params, "trainable": r.keras_trainable}
        if r.kind in RECURRENT and r.output_shape and isinstance(r.output_shape[0], tuple):
            row["output_shape"] = keras_shape(r.output_shape[0])
            row["states"] = _fmt_shape(r.output_shape[1:]).replace("B", "None")
        if r.shared:
            row["shared"] = r.shared
        if r.name in s.scripted:
            row["scripted"] = True
        out.append(row)
    return out


def _keras_shape_text(shape) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_keras_shape_text(s) for s in shape)
    return "(" + ", ".join("None" if v is None else str(v) for v in shape) + ("," if len(shape) == 1 else "") + ")"


def _bytes(n: int) -> str:
    """Keras's way of giving a parameter count's size: float32, in B, KB or MB of 1024."""
    size, unit = n * 4.0, "B"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            break
        size /= 1024
    return f"{size:.2f} {unit}"


def render_keras(model: str, rows: list[dict], torch_params: int | None = None, rich: bool | None = None,
                 file=None) -> str:
    """The table Keras's model.summary() prints: one row per layer with its (None, H, W, C) output
    shape and Keras's parameter count, then the totals with their float32 size. ``rows`` as
    neuralab.keras.keras_summary gives them ("trainable" defaults to all). ``torch_params``: the
    same model's count in PyTorch's layout, named below the table when it differs."""
    total = sum(r["params"] for r in rows)
    trainable = sum(r.get("trainable", r["params"]) for r in rows)
    footer = [f"Total params: {total:,} ({_bytes(total)})",
              f"Trainable params: {trainable:,} ({_bytes(trainable)})",
              f"Non-trainable params: {total - trainable:,} ({_bytes(total - trainable)})"]
    if torch_params is not None and torch_params != total:
        why = keras_differences(r["class"] for r in rows)
        footer.append(f"Parameters are counted as Keras counts them; PyTorch's layout of the same model counts "
                      f"{torch_params:,}: " + "; ".join(why or ["its layers hold other weights"]) + ".")
    states = [f"{r['name']} {r['states']}" for r in rows if r.get("states")]
    if states:
        footer.append("A recurrent layer's row shows its output sequence, as Keras's LSTM(return_sequences=True) does; "
                      "PyTorch's layer also returns its final states, (layers x directions, batch, units) each: "
                      + "; ".join(states) + ".")
    scripted = [r["name"] for r in rows if r.get("scripted")]
    if scripted:
        footer.append(_scripted_note(scripted) + ".")
    for r in rows:
        for k, o, size in r.get("shared", ()):
            footer.append(f"{r['name']} ({r['class']}) shares {o}'s {k} ({size:,} parameters): counted once, in "
                          f"{o}'s row, as Keras counts a shared layer once.")
    table = [(f"{r['name']} ({r['class']})", _keras_shape_text(r["output_shape"]), f"{r['params']:,}") for r in rows]
    return render_table(f'Model: "{model}"', ("Layer (type)", "Output Shape", "Param #"), table,
                        right=(2,), footer=footer, rich=rich, file=file)


__all__ = ["LAYOUTS", "LayerRow", "ModelSummary", "dry_run", "keras_count", "keras_differences", "keras_rows", "keras_shape", "print_summary",
           "InputShapeError", "render_keras", "render_summary", "render_table", "sequence_hint", "sequence_layer", "smallest_input", "summary",
           "too_small", "unregistered"]
