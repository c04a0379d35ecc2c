"""A dense layer's products, forward and both gradients, through oneDNN's inner product
instead of MKL's matrix product, where that is faster.

PyTorch computes ``F.linear`` in float32 on CPU with MKL's GEMM, its convolutions with
oneDNN. On AMD CPUs with AVX-512, MKL runs its AVX2 code (8 floats per instruction) while
oneDNN uses all 16: at batch 128, forward and back, 784 -> 256 took 1.73x as long through
MKL, 3136 -> 128 1.97x, 1024 -> 1024 1.93x, 4096 -> 1024 2.02x (AMD EPYC, 2 threads,
2026-12-04). With oneDNN held to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``) it still won, 1.09-1.40x
on those layers: MKL's products with a transposed operand, which the gradients are, are its
slow ones. Small layers lose to the primitive's set-up (256 -> 128 0.93x, 100 -> 10 0.43x)
and stay with MKL (``MIN_PRODUCT``). On Intel CPUs MKL runs its AVX-512 code, and the
inner product gains nothing: 784 -> 256 0.87x, 3136 -> 128 0.96x, 1024 -> 1024 and
4096 -> 1024 1.03x, the MLP's step 0.89x (Intel Xeon with AMX, 2 threads, 2026-12-05), so
there the layers keep MKL (``mkl_runs_wide``). The sums run in another order than MKL's, so
results differ from ``F.linear``'s by rounding, about 1e-6 of their scale.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

# A smaller product keeps MKL's: rows x weights, the multiply-adds (the measurements above at
# batch 128: 784 x 256, 25.7 million, won 1.73x; 256 x 128, 4.2 million, lost).
MIN_PRODUCT = 1 << 24


@functools.cache
def available() -> bool:
    """Whether this PyTorch build has oneDNN's inner product (builds with oneDNN, x86 ones among them)."""
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def mkl_runs_wide() -> bool:
    """Whether MKL's products run their AVX-512 code here: MKL picks it on Intel CPUs only."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("vendor_id") and "GenuineIntel" in line for line in f)
    except OSError:  # not Linux: the vendor is unknown, and the measured rule stays
        return False


@functools.cache
def wide_vectors() -> bool:
    """Whether PyTorch's CPU kernels run AVX-512 here (``ATEN_CPU_CAPABILITY`` can lower it),
    and with them oneDNN's: where the faster of two ways of computing a layer often differs."""
    return torch.backends.cpu.get_cpu_capability() == "AVX512"


def _product(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """a @ b^T (+ bias) by oneDNN's inner product; transposed views are read as they are."""
    return torch.ops.mkldnn._linear_pointwise(a, b, bias, "none", [], "")


class _InnerProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _product(x, weight, bias)                                       # (B, out)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x = _product(grad, weight.t()) if need_x else None                # (B, out) @ (out, in)
        grad_w = _product(grad.t(), x.t()) if need_w else None                 # (out, B) @ (B, in)
        grad_b = grad.sum(0) if ctx.has_bias and need_b else None
        return grad_x, grad_w, grad_b


def pays(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``linear`` takes oneDNN's inner product for this batch of vectors (B, in) and
    these weights (out, in); the caller has checked that both are float32 on CPU."""
    return (x.dim() == 2 and weight.dim() == 2 and x.shape[0] * weight.numel() >= MIN_PRODUCT and available()
            and not mkl_runs_wide())


def product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for 2-D float32 tensors on CPU outside autograd, through oneDNN where this
    build has it: a first layer's weight gradient over its windows (the sample CNN's: 10 x
    100,352 by 100,352 x 32) took 0.22 ms against MKL's 0.83, and 0.71 ms with oneDNN held
    to AVX2. A product over no rows (an empty batch's gradient) is the plain one: oneDNN
    cannot describe a dimension of 0."""
    return _product(a, b.t()) if available() and a.numel() and b.numel() else a @ b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` for float32 tensors on CPU, through oneDNN where it pays."""
    if pays(x, weight):
        return _InnerProduct.apply(x, weight, bias)
    return F.linear(x, weight, bias)


__all__ = ["MIN_PRODUCT", "available", "linear", "mkl_runs_wide", "pays", "product", "wide_vectors"]
