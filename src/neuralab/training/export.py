"""Export a trained run to ONNX, checked by running the graph with onnxruntime."""

from __future__ import annotations

import contextlib
import functools
import io
import math
import numbers
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neuralab.errors import NeuralabError, ParameterError, by
from neuralab.files import WriteError, atomic_write, placed, staging_prefix

# bytes of weights from which they are written beside the graph, in FILE.data (ONNX's external
# data), rather than inside it: protobuf, which holds an ONNX file, stops at 2 GiB, and the
# constants the export folds from the weights add to them
EXTERNAL_DATA_FROM = 2**31 - 2**28


def check_tolerance(rtol, name: str, relative_to: str) -> None:
    """Refuse, before the export runs, an ONNX check's tolerance ``rtol`` (the parameter ``name``)
    that no graph meets: a number above 0, relative to ``relative_to``."""
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real) or not 0 < rtol < math.inf:
        raise ParameterError(name, rtol, f"must be a number above 0 (1e-4, say), a tolerance relative to {relative_to}")


def export_onnx(run_dir: str | Path, out: str | Path | None = None, rtol: float = 1e-4,
                trust_code: bool = False, model=None, *, atol: float | None = None) -> tuple[Path, float]:
    """Write ``model.onnx`` (dynamic batch; input ``images``: (N, C, H, W) float32, the pixels
    normalised as the file's metadata ``mean`` and ``std`` say; output ``logits``: (N, classes) in
    the order of its metadata ``classes``) and return its path and the largest difference
    between onnxruntime's and PyTorch's logits on random inputs, at two batch sizes; above
    ``rtol`` times the largest logit (at least 1) nothing is written.
    ``out``: the file, or a folder (existing, or named with a trailing /) to write model.onnx in;
    default the run's folder. An existing file is replaced only if it is an .onnx file, and
    only by a graph that passed the check. Weights past protobuf's 2 GiB go beside it, in
    model.onnx.data (ONNX's external data, which onnxruntime reads from the file's folder).
    ``model``: for a run whose PyTorch module it cannot rebuild, that module given again (as
    load_classifier's). ``atol``: the earlier name of ``rtol``, deprecated."""
    from neuralab.runs import Kind, Run
    from neuralab.training.checkpoint import unwrap
    from neuralab.training.trained_classifier import load_classifier

    if atol is not None:  # the tolerance became relative to the largest logit, and its name says so
        warnings.warn("export_onnx's `atol` is now `rtol`, a tolerance relative to the largest logit (at least 1); "
                      "give `rtol`", DeprecationWarning, stacklevel=2)
        rtol = atol
    check_tolerance(rtol, "atol" if atol is not None else "rtol", "the largest logit")
    onnxruntime = require_onnxruntime()
    run_dir = Path(run_dir)
    out = destination(run_dir, out)
    if Run.open(run_dir).kind is Kind.FORECASTER:  # its graph holds the series' scaling: forecasting builds it
        raise NeuralabError(f"{run_dir}: a forecaster run; export it with neuralab.forecasting.onnx.export_onnx")
    clf = load_classifier(run_dir, trust_code, model)
    network = unwrap(clf.model)  # a torch.compile()d module's own: a trace cannot follow what dynamo made of it
    example = torch.randn(4, *clf.preprocess.input_shape)
    # The traced batch and one image: a batch size the trace kept as a constant fails at the other.
    checks = (example, example[:1])
    with torch.inference_mode():
        expected = [network(x).numpy() for x in checks]  # the run's model, which the graph must match
    with staged(out, network) as staging:
        graph = traced(network, example, "images", "logits", run_dir, staging)
        graph = described(graph, _classifier_props(clf), f"neuralab run of {clf.name}")
        got = outputs(onnxruntime, graph, "images", [x.numpy() for x in checks], run_dir)
        diff = largest_difference(got, expected, run_dir)
        # float32 sums in another order: logits in the hundreds, of 500 million weights, differ by 1e-3
        limit = rtol * max(1.0, float(np.max([np.abs(e).max() for e in expected])))
        if not diff <= limit:  # NaN logits too
            raise NeuralabError(f"{out}: ONNX output differs from PyTorch by {diff:.2e} (> {limit:.2e}, {rtol:g} times "
                                f"the largest logit){graph.why()}; export refused, nothing written")
        write(out, graph)
    return out, diff


def require_onnxruntime():
    """onnxruntime, or the line that says how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise NeuralabError("ONNX export needs onnx and onnxruntime: pip install 'neuralab[export]'") from None
    return onnxruntime


def destination(run_dir: Path, out: str | Path | None) -> Path:
    """The file ``out`` names (see export_onnx), refused when it would replace a file that is no ONNX model."""
    if out is not None and not str(out).strip():  # an unset shell variable: no place was meant
        raise ParameterError("out", str(out), "is empty; give a file or a folder, or leave it out to write into the run")
    out = run_dir / "model.onnx" if out is None else placed(out, "model.onnx")
    if out.exists() and out.suffix.lower() != ".onnx":  # `--out RUN/config.json` replaced the run's config
        raise ParameterError("out", str(out), "is a file that is no ONNX model (.onnx); give a new file or a folder")
    return out


@dataclass
class Graph:
    """An exported ONNX graph: the bytes of one protobuf, or, for weights past protobuf's limit
    (``staged``), its file in a staging folder with the weights beside it in FILE.data."""

    onnx: bytes | Path
    branch: str | None = None  # where the forward turned a tensor into a Python bool ("model.py:8"), which
    #                            the trace fixed to the branch the example took

    def why(self) -> str:
        """The cause of a graph that differs from PyTorch, where the trace saw one ("" else)."""
        if self.branch is None:
            return ""
        return (f": the model's forward branches on a tensor's value at {self.branch}, and the export keeps the "
                "branch its example took; compute both and choose with torch.where")


@contextlib.contextmanager
def staged(out: Path, model: nn.Module):
    """None where ``model``'s weights fit in one protobuf with its graph; else the file to write
    the graph in, in a folder beside ``out`` (the final rename stays on one file system), which
    goes when the export ends, written or refused."""
    if sum(t.numel() * t.element_size() for t in model.state_dict().values()) < EXTERNAL_DATA_FROM:
        yield None
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=out.parent, prefix=staging_prefix(out), suffix=".tmp"))
    except OSError as e:
        raise WriteError(out, e) from None
    try:
        yield folder / out.name
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def traced(model: nn.Module, example: torch.Tensor, input_name: str, output_name: str, run_dir: Path,
           staging: Path | None = None) -> Graph:
    """``model`` as an ONNX graph of one input and one output, both with a dynamic first (batch)
    axis, their other axes the sizes ``example`` has and gives; ``staging``: the file ``staged``
    gives for weights past protobuf's limit, beside which the exporter writes them, each in a
    file of its own, until ``described`` gathers them."""
    _diff_as_slices()
    model = _traceable(model, example, run_dir)
    with torch.no_grad():  # the sizes the graph's output keeps, after the batch
        sizes = tuple(model(example).shape[1:])
    graph = io.BytesIO()
    if staging is not None:
        (staging.parent / "traced").mkdir()
        graph = staging.parent / "traced" / staging.name
    with warnings.catch_warnings(record=True) as seen, _native_output_closed(), _adaptive_pools_at_their_sizes(model):
        warnings.simplefilter("always")
        try:
            # The TorchScript-based exporter needs no extra packages and covers the whole zoo.
            torch.onnx.export(model, (example,), graph if staging is None else str(graph), input_names=[input_name],
                              output_names=[output_name],
                              dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}}, dynamo=False)
        except RuntimeError as e:  # torch.onnx's errors, an operator ONNX lacks: their first line says which
            # and asks for a pull request to PyTorch, which is not the user's way on
            said = _first_line(e).split(" Please feel free to request support", 1)[0]
            raise NeuralabError(f"{run_dir}: its model cannot be exported to ONNX ({said})") from None
    # the tracer's word for `if tensor:`, at the line of the model's code that did it
    library = Path(torch.__file__).parent
    branch = next((f"{w.filename}:{w.lineno}" for w in seen if issubclass(w.category, torch.jit.TracerWarning)
                   and "to a Python boolean" in str(w.message) and not Path(w.filename).is_relative_to(library)),
                  None)
    return Graph(_sized(graph.getvalue() if staging is None else graph, output_name, sizes), branch)


def _traceable(model: nn.Module, example: torch.Tensor, run_dir: Path) -> nn.Module:
    """``model``, scripted whole where it holds a part scripted with torch.jit.script: the
    exporter traces a module, and a trace cannot enter a scripted part ("not part of the active
    trace"), where it takes a scripted whole. Its adaptive average pools are first made the fixed
    pools they are at the sizes ``example`` gives them: a scripted whole calls them where
    _adaptive_pools_at_their_sizes cannot reach."""
    parts = [n for n, m in model.named_modules() if n and isinstance(m, torch.jit.ScriptModule)]
    if not parts or isinstance(model, torch.jit.ScriptModule):
        return model
    _average_pools_fixed(model, example)
    try:
        with warnings.catch_warnings():  # torch.jit.script's deprecation: the user asked for an export, not a script
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(model)
    except Exception as e:  # TorchScript's frontend raises several kinds, each naming the code it cannot compile
        raise NeuralabError(f"{run_dir}: its model holds a part scripted with torch.jit.script ({parts[0]}), which "
                            "ONNX's exporter cannot trace into, and the whole model cannot be scripted "
                            f"({_first_line(e)}); build that part without torch.jit.script, then export") from None


def _sized(graph: bytes | Path, output_name: str, sizes: tuple[int, ...]) -> bytes | Path:
    """``graph`` with its output's axes after the batch declared as ``sizes``: the exporter's
    shape inference loses a size that a reshape(B, -1) or a broadcast computes, and names it
    ("Castforecast_dim_1") where a reader of the file (Netron, a server) wants the horizon or
    the number of classes, which the run fixes."""
    import onnx

    proto = onnx.load_model_from_string(graph) if isinstance(graph, bytes) else \
        onnx.load(str(graph), load_external_data=False)  # the weights beside it stay where they are
    for output in proto.graph.output:
        if output.name != output_name:
            continue
        shape = output.type.tensor_type.shape
        if len(shape.dim) != len(sizes) + 1:  # no inferred rank at all
            shape.ClearField("dim")
            shape.dim.add().dim_param = "batch"
            for _ in sizes:
                shape.dim.add()
        for dim, size in zip(shape.dim[1:], sizes):
            dim.dim_value = size  # in place of a dim_param: one of the two
    if isinstance(graph, bytes):
        return proto.SerializeToString()
    onnx.save(proto, str(graph))
    return graph


@functools.cache
def _diff_as_slices() -> None:
    """Teach the TorchScript exporter ``torch.diff``, which it lacks (a forecasting network's
    window scale takes the window's steps): x[1:] - x[:-1] along the axis, as two ONNX slices."""
    from torch.onnx import symbolic_helper as helper

    @helper.parse_args("v", "i", "i", "v", "v")
    def diff(g, x, n, dim, prepend, append):
        if n != 1 or not helper._is_none(prepend) or not helper._is_none(append):
            return helper._unimplemented("diff", "n other than 1, prepend or append", x)

        def part(start: int, end: int):
            return g.op("Slice", x, *(g.op("Constant", value_t=torch.tensor([v])) for v in (start, end, dim)))
        return g.op("Sub", part(1, torch.iinfo(torch.int64).max), part(0, -1))

    torch.onnx.register_custom_op_symbolic("aten::diff", diff, 10)  # Slice takes its bounds as inputs from opset 10


def outputs(onnxruntime, graph: Graph, input_name: str, inputs: list[np.ndarray], run_dir: Path) -> list[np.ndarray]:
    """What onnxruntime computes from each of ``inputs`` (the first is the traced batch), or
    the reason in one line why it cannot."""
    quiet = onnxruntime.SessionOptions()
    quiet.log_severity_level = 4  # fatal only: a batch the graph refuses is said below, in one line
    model = graph.onnx if isinstance(graph.onnx, bytes) else str(graph.onnx)  # a file: its weights beside it
    try:
        session = onnxruntime.InferenceSession(model, quiet, providers=["CPUExecutionProvider"])
    except _runtime_errors(onnxruntime) as e:  # an operator or type onnxruntime does not run
        raise NeuralabError(f"{run_dir}: onnxruntime cannot load its exported graph ({_first_line(e)}); "
                            "nothing written") from None
    results = []
    for i, x in enumerate(inputs):
        try:
            got = session.run(None, {input_name: x})[0]
        except _runtime_errors(onnxruntime) as e:
            if i == 0:  # the very batch it was traced with: no batch size to blame
                raise NeuralabError(f"{run_dir}: onnxruntime cannot run its exported graph ({_first_line(e)}); "
                                    "nothing written") from None
            got = None
        if got is None or len(got) != len(x):
            raise NeuralabError(
                f"{run_dir}: its ONNX graph takes batches of {len(inputs[0])} only, not of {len(x)}: the model's "
                "forward turns the batch size into a Python number (len(x), int(x.shape[0])), which the export keeps "
                "as a constant; write x.flatten(1) or x.reshape(x.shape[0], -1) instead; nothing written")
        results.append(got)
    return results


def largest_difference(got: list[np.ndarray], expected: list[np.ndarray], run_dir: Path) -> float:
    """The largest difference between onnxruntime's outputs and neuralab's (NaN where either
    holds one), refused in one line where their shapes differ."""
    if any(g.shape != want.shape for g, want in zip(got, expected)):
        raise NeuralabError(f"{run_dir}: its ONNX graph gives outputs of shape {got[0].shape}, neuralab "
                            f"{expected[0].shape}; export refused, nothing written")
    return float(np.max([np.abs(g - want).max() for g, want in zip(got, expected)]))  # NaN wherever it is


def weights_beside(onnx: Path) -> Path:
    """FILE.data, where a graph past protobuf's 2 GiB keeps its weights (ONNX's external data)."""
    return onnx.with_name(onnx.name + ".data")


def write(out: Path, graph: Graph) -> None:
    """``graph`` as ``out``, only once checked: a refused or interrupted export keeps the file
    there was. A staged graph's weights (FILE.data) are moved into place first, so that no
    moment shows a new graph without them; both are on disk (fsync) before either is."""
    if isinstance(graph.onnx, bytes):
        with atomic_write(out, "wb") as f:
            f.write(graph.onnx)
        with contextlib.suppress(FileNotFoundError):  # the weights of the graph it replaced, which no file reads now
            weights_beside(out).unlink()
        return
    data = weights_beside(graph.onnx)
    try:
        os.chmod(data, os.stat(graph.onnx).st_mode & 0o777)  # onnx makes it the owner's alone; the graph, as umask says
        for path in (data, graph.onnx):
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        os.replace(data, weights_beside(out))
        os.replace(graph.onnx, out)
    except OSError as e:
        raise WriteError(out, e) from None


def described(graph: Graph, props: dict[str, str], doc: str) -> Graph:
    """The exported graph with what its user needs besides it in the ONNX file's metadata
    (onnxruntime's ``get_modelmeta().custom_metadata_map``): without it the file alone cannot be
    used. A staged graph is written again as its final file, its weights gathered from the
    exporter's file per tensor into one, FILE.data beside it."""
    import onnx

    staged_graph = not isinstance(graph.onnx, bytes)
    # a staged graph's weights are read in with it, from the files beside it
    proto = onnx.load(str(graph.onnx)) if staged_graph else onnx.load_model_from_string(graph.onnx)
    onnx.helper.set_model_props(proto, props)
    proto.doc_string = doc
    if not staged_graph:
        return replace(graph, onnx=proto.SerializeToString())
    final = graph.onnx.parent.parent / graph.onnx.name
    onnx.save_model(proto, str(final), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=weights_beside(final).name, size_threshold=0)  # every weight: FILE.data is always there
    del proto
    shutil.rmtree(graph.onnx.parent)  # the exporter's files, as large again
    return replace(graph, onnx=final)


def _classifier_props(clf) -> dict[str, str]:
    """The class names in the logits' order and how pixels become ``images``."""
    import json

    pre = clf.preprocess
    return {
        "classes": json.dumps(list(clf.classes)),
        "mean": json.dumps(list(pre.mean)),
        "std": json.dumps(list(pre.std)),
        "input_shape": json.dumps(list(pre.input_shape)),
        "images": "(N, C, H, W) float32: (pixels / 255 - mean[c]) / std[c], pixels 0-255 at input_shape (C, H, W)",
        "logits": "(N, classes): softmax gives the probabilities of the classes, in the order of classes",
    }


def _first_line(error: Exception) -> str:
    """The first line of an exporter's or onnxruntime's error (they run to pages), or its kind."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def _runtime_errors(onnxruntime) -> tuple[type[Exception], ...]:
    """onnxruntime's errors when a graph cannot run an input; they derive from Exception alone."""
    state = onnxruntime.capi.onnxruntime_pybind11_state
    return tuple(getattr(state, name) for name in ("Fail", "InvalidArgument", "RuntimeException", "NotImplemented",
                                                   "InvalidGraph", "InvalidProtobuf") if hasattr(state, name))


@contextlib.contextmanager
def _native_output_closed():
    """Standard output and error closed to C++ for the duration: torch's TorchScript exporter
    prints the whole graph on standard output when an operator has no ONNX form (its log is on
    whatever it was set to), before the error that names the operator in one line."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):  # replaced or closed: nothing to flush
            stream.flush()
    saved = {}
    try:
        with open(os.devnull, "wb") as null:
            for fd in (1, 2):
                with contextlib.suppress(OSError):  # a descriptor not open: nothing to close
                    saved[fd] = os.dup(fd)
                    os.dup2(null.fileno(), fd)
        yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


@contextlib.contextmanager
def _adaptive_pools_at_their_sizes(model: nn.Module):
    """F.adaptive_avg_pool2d and F.adaptive_max_pool2d (nn.AdaptiveAvgPool2d's and
    nn.AdaptiveMaxPool2d's too), while a trace of ``model`` runs, as the fixed pools they are at the
    sizes the trace meets: ONNX has them only where the output divides an input size the exporter knows,
    which it loses after an F.interpolate, and AlexNet's and VGG16's at 64x64 divide no size.
    The run's input size is fixed, so they stay exact."""
    functional = torch.nn.functional
    average, maximum = functional.adaptive_avg_pool2d, functional.adaptive_max_pool2d
    layers = {m: name for name, m in model.named_modules() if name}

    def sizes(x: torch.Tensor, output_size) -> tuple[tuple[int, int], tuple[int, int]] | None:
        if not torch.jit.is_tracing() or x.dim() not in (3, 4):
            return None
        with warnings.catch_warnings():  # the sizes are meant as constants: no warning that they are
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            h, w = (int(n) for n in x.shape[-2:])
        oh, ow = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        return (h, w), (h if oh is None else oh, w if ow is None else ow)

    def avg(input, output_size):
        known = sizes(input, output_size)
        if known is None:
            return average(input, output_size)
        (h, w), (oh, ow) = known
        return _fixed_average((h, w), (oh, ow)).to(input.device, input.dtype)(input)

    def max(input, output_size, return_indices=False):
        known = sizes(input, output_size)
        if known is None or return_indices:
            return maximum(input, output_size, return_indices)
        (h, w), (oh, ow) = known
        if h % oh or w % ow:  # windows of two widths: no ONNX operator takes their maxima
            near = [next(d for d in range(o, 0, -1) if n % d == 0) for n, o in ((h, oh), (w, ow))]
            raise NoOnnxForm(f"adaptive max pooling of {by((h, w))} to {by((oh, ow))}{_called_at(layers)} has no ONNX "
                             f"form, its windows not all of one size; pool to a size that divides {by((h, w))} "
                             f"(such as {by(near)}), or by average")
        return functional.max_pool2d(input, (h // oh, w // ow))

    functional.adaptive_avg_pool2d, functional.adaptive_max_pool2d = avg, max
    try:
        yield
    finally:
        functional.adaptive_avg_pool2d, functional.adaptive_max_pool2d = average, maximum


def _fixed_average(size_in: tuple[int, int], size_out: tuple[int, int]) -> nn.Module:
    """The fixed pool that an adaptive average pool of ``size_in`` to ``size_out`` is."""
    (h, w), (oh, ow) = size_in, size_out
    if h % oh or w % ow:  # windows of two widths, overlapping: the matrix products that average them
        return FixedAdaptiveAvgPool(size_in, size_out)
    return nn.AvgPool2d((h // oh, w // ow))


def _average_pools_fixed(model: nn.Module, example: torch.Tensor) -> None:
    """Put in ``model``'s nn.AdaptiveAvgPool2d layers the fixed pools (``_fixed_average``) they
    are at the sizes ``example`` gives them, where their output does not divide their input,
    which ONNX has no operator for. The run's input size is fixed, so they stay exact."""
    met = {}
    hooks = [m.register_forward_hook(lambda m, i, o: met.__setitem__(m, (tuple(i[0].shape[-2:]),
                                                                          tuple(o.shape[-2:]))))
             for m in model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if child in met and any(n % o for n, o in zip(*met[child])):
                setattr(parent, name, _fixed_average(*met[child]).to(example.device, example.dtype))


class NoOnnxForm(RuntimeError):
    """What a model's forward does that ONNX cannot express, found while tracing it: said as the
    exporter's own errors are (RuntimeError), in words that say what to change."""


def _called_at(layers: dict[nn.Module, str]) -> str:
    """" at FILE:LINE" of the model's code that called the torch function tracing is in; where no
    code of the model's did (a torch layer in an nn.Sequential), " in layer NAME (CLASS)" of the
    model's ``layers`` (by module) that did; or ""."""
    own = (Path(torch.__file__).parent, Path(__file__).parents[1])  # torch's and neuralab's code
    frame, layer = sys._getframe(2), None
    while frame is not None and frame.f_code.co_filename != __file__:  # up to the export that traces
        path = Path(frame.f_code.co_filename)
        if not any(path.is_relative_to(folder) for folder in own):
            return f" at {path.name}:{frame.f_lineno}"
        module = frame.f_locals.get("self") if layer is None and path.is_relative_to(own[0]) else None
        if isinstance(module, nn.Module) and module in layers:
            layer = f" in layer {layers[module]} ({type(module).__name__})"
        frame = frame.f_back
    return layer or ""


class FixedAdaptiveAvgPool(nn.Module):
    """``nn.AdaptiveAvgPool2d`` for one input size, as two matrix products, which ONNX has."""

    def __init__(self, size_in: tuple[int, int], size_out: tuple[int, int]):
        super().__init__()
        self.register_buffer("rows", _averaging(size_in[0], size_out[0]))  # (oh, H)
        self.register_buffer("cols", _averaging(size_in[1], size_out[1]))  # (ow, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rows @ x @ self.cols.T  # (N, C, H, W) -> (N, C, oh, ow)


def _averaging(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in): row i averages PyTorch's adaptive window [floor(i n_in / n_out), ceil((i + 1) n_in / n_out))."""
    weights = torch.zeros(n_out, n_in)
    for i in range(n_out):
        start, end = i * n_in // n_out, -(-(i + 1) * n_in // n_out)
        weights[i, start:end] = 1 / (end - start)
    return weights
