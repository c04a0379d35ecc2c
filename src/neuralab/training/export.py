"""Export a trained run to ONNX, checked by running the graph with onnxruntime."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neuralab.errors import NeuralabError, ParameterError
from neuralab.files import atomic_write


def export_onnx(run_dir: str | Path, out: str | Path | None = None, atol: float = 1e-4,
                trust_code: bool = False, model=None) -> tuple[Path, float]:
    """Write ``model.onnx`` (dynamic batch; input ``images``: (N, C, H, W) float32, the pixels
    normalised as the file's metadata ``mean`` and ``std`` say; output ``logits``: (N, classes) in
    the order of its metadata ``classes``) and return its path and the largest difference
    between onnxruntime's and PyTorch's logits on random inputs, at two batch sizes.
    ``out``: the file, or a folder (existing, or named with a trailing /) to write model.onnx in;
    default the run's folder. An existing file is replaced only if it is an .onnx file, and
    only by a graph that passed the check. ``model``: for a run whose PyTorch module it cannot
    rebuild, that module given again (as load_classifier's)."""
    from neuralab.runs import Kind, Run
    from neuralab.training.classify import load_classifier

    onnxruntime = require_onnxruntime()
    run_dir = Path(run_dir)
    out = destination(run_dir, out)
    if Run.open(run_dir).kind is Kind.FORECASTER:  # its graph holds the series' scaling: forecasting builds it
        raise NeuralabError(f"{run_dir}: a forecaster run; export it with neuralab.forecasting.onnx.export_onnx")
    clf = load_classifier(run_dir, trust_code, model)
    example = torch.randn(4, *clf.preprocess.input_shape)
    # The traced batch and one image: a batch size the trace kept as a constant fails at the other.
    checks = (example, example[:1])
    with torch.inference_mode():
        expected = [clf.model(x).numpy() for x in checks]  # before _exportable: checked against the run's model
    graph = traced(_exportable(clf.model, example), example, "images", "logits", run_dir)
    graph = described(graph, _classifier_props(clf), f"neuralab run of {clf.name}")
    got = outputs(onnxruntime, graph, "images", [x.numpy() for x in checks], run_dir)
    diff = largest_difference(got, expected, run_dir)
    if not diff <= atol:  # NaN logits too
        raise NeuralabError(f"{out}: ONNX output differs from PyTorch by {diff:.2e} (> {atol}); export refused, "
                            "nothing written")
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
    folder = out is None or str(out).endswith(("/", os.sep))  # Path() drops the trailing /
    out = Path(out) if out else run_dir
    if folder or out.is_dir():
        out = out / "model.onnx"
    if out.exists() and out.suffix.lower() != ".onnx":  # `--out RUN/config.json` replaced the run's config
        raise ParameterError("out", str(out), "is a file that is no ONNX model (.onnx); give a new file or a folder")
    return out


def traced(model: nn.Module, example: torch.Tensor, input_name: str, output_name: str, run_dir: Path) -> bytes:
    """``model`` as an ONNX graph of one input and one output, both with a dynamic first (batch) axis."""
    _diff_as_slices()
    graph = io.BytesIO()
    with warnings.catch_warnings(), _native_output_closed():
        warnings.simplefilter("ignore")
        try:
            # The TorchScript-based exporter needs no extra packages and covers the whole zoo.
            torch.onnx.export(model, (example,), graph, input_names=[input_name], output_names=[output_name],
                              dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}}, dynamo=False)
        except RuntimeError as e:  # torch.onnx's errors, an operator ONNX lacks: their first line says which
            raise NeuralabError(f"{run_dir}: its model cannot be exported to ONNX ({_first_line(e)})") from None
    return graph.getvalue()


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


def outputs(onnxruntime, graph: bytes, input_name: str, inputs: list[np.ndarray], run_dir: Path) -> list[np.ndarray]:
    """What onnxruntime computes from each of ``inputs`` (the first is the traced batch), or
    the reason in one line why it cannot."""
    quiet = onnxruntime.SessionOptions()
    quiet.log_severity_level = 4  # fatal only: a batch the graph refuses is said below, in one line
    try:
        session = onnxruntime.InferenceSession(graph, quiet, providers=["CPUExecutionProvider"])
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


def write(out: Path, graph: bytes) -> None:
    with atomic_write(out, "wb") as f:  # only once checked: a refused or interrupted export keeps the file there was
        f.write(graph)


def described(graph: bytes, props: dict[str, str], doc: str) -> bytes:
    """The exported graph with what its user needs besides it in the ONNX file's metadata
    (onnxruntime's ``get_modelmeta().custom_metadata_map``): without it the file alone cannot be used."""
    import onnx

    proto = onnx.load_model_from_string(graph)
    onnx.helper.set_model_props(proto, props)
    proto.doc_string = doc
    return proto.SerializeToString()


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


def _exportable(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """``model``, its adaptive average pools that ONNX cannot express (an output size that does
    not divide the input's: AlexNet and VGG16 at 64x64) replaced by ``FixedAdaptiveAvgPool``
    at the sizes ``example`` gives them. The run's input size is fixed, so they stay exact."""
    sizes = {}
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.__setitem__(m, (i[0].shape[-2:], o.shape[-2:])))
             for m in model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    try:
        with torch.inference_mode():
            model.eval()(example)
    finally:
        for h in hooks:
            h.remove()
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if child in sizes:
                (h, w), (oh, ow) = sizes[child]
                if h % oh or w % ow:
                    setattr(parent, name, FixedAdaptiveAvgPool((h, w), (oh, ow)))
    return model


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
