"""Export a trained run to ONNX, checked by running the graph with onnxruntime."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from neuralab.errors import NeuralabError
from neuralab.files import atomic_write


def export_onnx(run_dir: str | Path, out: str | Path | None = None, atol: float = 1e-4,
                trust_code: bool = False) -> tuple[Path, float]:
    """Write ``model.onnx`` (dynamic batch; input: normalised images) and return its path and
    the largest difference between onnxruntime's and PyTorch's logits on random inputs.
    ``out``: the file, or a folder (existing, or named with a trailing /) to write model.onnx in;
    default the run's folder."""
    from neuralab.training.classify import load_classifier

    try:
        import onnxruntime
    except ImportError:
        raise NeuralabError("ONNX export needs onnx and onnxruntime: pip install 'neuralab[export]'") from None
    run_dir = Path(run_dir)
    clf = load_classifier(run_dir, trust_code)
    folder = out is None or str(out).endswith(("/", os.sep))  # Path() drops the trailing /
    out = Path(out) if out else run_dir
    if folder or out.is_dir():
        out = out / "model.onnx"
    example = torch.randn(4, *clf.preprocess.input_shape)
    with warnings.catch_warnings(), atomic_write(out, "wb") as f:
        warnings.simplefilter("ignore")
        # The TorchScript-based exporter needs no extra packages and covers the whole zoo.
        torch.onnx.export(clf.model, (example,), f, input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = clf.model(example).numpy()
    got = session.run(None, {"images": example.numpy()})[0]
    diff = float(np.abs(got - expected).max())
    if diff > atol:
        out.unlink()
        raise NeuralabError(f"{out}: ONNX output differs from PyTorch by {diff:.2e} (> {atol}); export refused")
    return out, diff
