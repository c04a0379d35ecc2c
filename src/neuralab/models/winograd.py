"""Winograd's minimal filtering for stride-1 convolutions: Lavin and Gray, "Fast algorithms
for convolutional neural networks", CVPR 2016. https://arxiv.org/abs/1509.09308

F(m x m, r x r) computes an m x m block of outputs of an r x r kernel from an a x a input
tile (a = m + r - 1) with a^2 multiplications per pair of channels, where sliding the kernel
takes m^2 r^2: F(4x4, 3x3) 36 against 144, F(4x4, 5x5) 64 against 400. The tile d and the
kernel g are each transformed, multiplied elementwise, and transformed back:
Y = A^T [(G g G^T) * (B^T d B)] A. Over C input channels and F filters the elementwise
products sum over channels, so each of the a^2 transform positions is one matrix product
(tiles, C) @ (C, F), which BLAS runs at its full speed. Backward runs the same steps
transposed: the output gradient goes into the transform domain through A, the input
gradient comes back through B with the overlapping tiles added up, and the weight gradient
is (transformed inputs)^T @ (transformed output gradient) brought back through G.

Convolution already runs at the speed of the CPU's products, so only doing fewer
multiplications makes it faster. On AVX2: AlexNet's convolutions at 28x28 (batch 128,
forward and both gradients, interleaved with PyTorch's oneDNN convolution) 1.7-2.2x, its
training step 1.7-1.8x (bench/bench_winograd.py). On AVX-512, where oneDNN's direct
convolution runs twice as wide, only wide layers on small maps win: 1.2-1.8x by layer,
training steps 1.05-1.4x. ``pays`` below says where it is used on each. The transforms
trade exactness for that: float32 results differ from PyTorch's by up to about 1e-5 of the
output's largest value (1e-6 for direct convolution).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from neuralab.mechanics.shapes import axis_size
from neuralab.models import inner_product

# Output block side: F(4x4, r x r). F(2x2, 3x3) multiplies 2.25x less against 4x and was no
# faster anywhere it was measured; larger blocks lose float32 accuracy quickly.
BLOCK = 4

# Interpolation points of the Toom-Cook construction, the usual small ones that keep the
# transforms' entries small (float32 error grows with them); infinity is the last point.
_POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5)


@functools.cache
def transforms(m: int, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A^T, G, B^T) of F(m, r) in one dimension: (m, a), (a, r) and (a, a), float64.

    A^T evaluates the output polynomial at the points, G the kernel's polynomial divided by
    the other points' differences (Lagrange's denominators); B^T then follows from the
    identity A^T diag(G g) B^T d = correlation(d, g) for all d and g, solved exactly here."""
    a = m + r - 1
    points = torch.tensor(_POINTS[:a - 1], dtype=torch.float64)
    at, g = torch.zeros(m, a, dtype=torch.float64), torch.zeros(a, r, dtype=torch.float64)
    for j, p in enumerate(points):
        at[:, j] = p ** torch.arange(m)
        g[j] = p ** torch.arange(r) / torch.prod(p - points[torch.arange(a - 1) != j])
    at[m - 1, a - 1] = g[a - 1, r - 1] = 1.0                                  # the point at infinity
    # sum_j AT[i, j] G[j, k] BT[j, l] = [l == i + k] for every output i, tap k and input l
    system = (at[:, None, :] * g.t()[None, :, :]).reshape(m * r, a)
    target = torch.zeros(m, r, a, dtype=torch.float64)
    for i in range(m):
        for k in range(r):
            target[i, k, i + k] = 1.0
    bt = torch.linalg.lstsq(system, target.reshape(m * r, a)).solution
    bt[bt.abs() < 1e-9] = 0.0                                                 # rounding noise of the solve
    return at, g, bt


@functools.cache
def _transforms2d(m: int, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # Kronecker products apply a 1-D transform to both sides of a flattened tile at once
    # (X -> T X T^T is kron(T, T) vec(X)): one matrix product per transform.
    return tuple(torch.kron(t, t).float() for t in transforms(m, r))


def _products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a[p] @ b[p] for each of the a^2 transform positions. Where PyTorch's kernels run
    AVX-512 and MKL does not (AMD CPUs: MKL keeps to AVX2), each through oneDNN
    (``inner_product.product``): a loop of 36 oneDNN products took half the time of one
    ``torch.bmm``. Elsewhere one ``torch.bmm``, which writes every product in place: with AVX2
    emulated on that CPU, the loop's copies made 14x14 and 16x16 layers 15-20% slower, and on
    an Intel CPU, where MKL runs AVX-512, VGG16's step at 28x28 took 1.13x as long through the
    loop, AlexNet's 1.16x (2026-12-05)."""
    if not inner_product.wide_vectors() or inner_product.mkl_runs_wide():
        return torch.bmm(a, b)
    out = a.new_empty(a.shape[0], a.shape[1], b.shape[2])
    for p in range(a.shape[0]):
        out[p] = inner_product.product(a[p], b[p])
    return out


class _Winograd(torch.autograd.Function):
    """Every transform is one matrix product over all tiles and channels, in channels-last
    order, so each runs at the speed of memory: the padded map's tiles are gathered once
    into (a^2, tiles * C), and the transform's Kronecker product multiplies that from the
    left."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        f, c, r, _ = weight.shape
        m = BLOCK
        a = m + r - 1
        at, g, bt = _transforms2d(m, r)
        n, _, h, w = x.shape
        ph, pw = padding
        ho, wo = axis_size(h, r, 1, (ph, ph))[0], axis_size(w, r, 1, (pw, pw))[0]
        th, tw = -(-ho // m), -(-wo // m)                                      # tiles down and across
        hp, wp = th * m + r - 1, tw * m + r - 1                                # the map padded to whole tiles
        xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, pw, wp - w - pw, ph, hp - h - ph))  # (n, hp, wp, C)
        tiles = xp.unfold(1, a, m).unfold(2, a, m).permute(4, 5, 0, 1, 2, 3)     # (a, a, n, th, tw, C): overlapping views
        v = inner_product.product(bt, tiles.reshape(a * a, -1)).view(a * a, n * th * tw, c)  # B^T d B: (a^2, tiles, C)
        # G g G^T: (a^2, F, C), read from the weights as they lie, (F, C, r, r)
        u = inner_product.product(g, weight.reshape(f * c, r * r).t()).view(a * a, f, c)
        y = inner_product.product(at, _products(v, u.transpose(1, 2)).view(a * a, -1))  # A^T M A: (m*m, tiles*F)
        y = y.view(m, m, n, th, tw, f).permute(2, 3, 0, 4, 1, 5).reshape(n, th * m, tw * m, f)[:, :ho, :wo]
        ctx.save_for_backward(v, u)
        ctx.shape = (n, c, f, h, w, th, tw, r, ph, pw, bias is not None)
        ctx.channels_last = x.is_contiguous(memory_format=torch.channels_last)
        # A new tensor in the input's layout, not a view of y: autograd lets the next layer
        # (an in-place ReLU) write into it only then.
        layout = torch.channels_last if ctx.channels_last else torch.contiguous_format
        out = torch.empty(n, f, ho, wo, dtype=x.dtype, memory_format=layout)
        if bias is not None:
            torch.add(y, bias, out=out.permute(0, 2, 3, 1))
        else:
            out.permute(0, 2, 3, 1).copy_(y)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        v, u = ctx.saved_tensors
        n, c, f, h, w, th, tw, r, ph, pw, has_bias = ctx.shape
        m = BLOCK
        a = m + r - 1
        at, g, bt = _transforms2d(m, r)
        ho, wo = grad.shape[-2:]
        dy = grad.permute(0, 2, 3, 1)                                          # (n, ho, wo, F)
        blocks = dy.new_empty(m, m, n, th, tw, f)                              # dY in m x m blocks
        whole = blocks.permute(2, 3, 0, 4, 1, 5)                               # (n, th, m, tw, m, F)
        whole.copy_(F.pad(dy, (0, 0, 0, tw * m - wo, 0, th * m - ho)).view(n, th, m, tw, m, f))  # zeros past the edge
        dm = inner_product.product(at.t(), blocks.view(m * m, -1)).view(a * a, n * th * tw, f)  # A dY A^T: (a^2, tiles, F)
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        dx = dw = db = None
        if need_x:
            dv = _products(dm, u)                                              # (a^2, tiles, C)
            dt = inner_product.product(bt.t(), dv.view(a * a, -1)).view(a, a, n, th, tw, c)  # B dV B^T
            dxp = dy.new_zeros(n, th * m + r - 1, tw * m + r - 1, c)
            for i in range(a):                                                 # overlapping tiles add up
                for j in range(a):
                    dxp[:, i:i + th * m:m, j:j + tw * m:m] += dt[i, j]
            layout = torch.channels_last if ctx.channels_last else torch.contiguous_format
            dx = dxp[:, ph:ph + h, pw:pw + w].permute(0, 3, 1, 2).contiguous(memory_format=layout)
        if need_w:
            du = _products(dm.transpose(1, 2), v)                              # (a^2, F, C)
            dw = inner_product.product(g.t(), du.view(a * a, f * c))           # (r*r, F*C)
            dw = dw.t().reshape(f, c, r, r)                                    # in the weights' own layout
        if has_bias and need_b:
            db = dy.sum((0, 1, 2))
        return dx, dw, db, None


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           padding: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, 1, padding)`` for a batch of maps (B, C, H, W) and a square
    kernel, by F(4x4, r x r); the output has the input's layout (channels-last or not)."""
    return _Winograd.apply(x, weight, bias, tuple(padding))


# Where F(4x4, r x r) measured faster than oneDNN's direct convolution, forward and both
# gradients, batch 128, channels-last (one thread's CPU time, interleaved): the transforms
# cost the same per value whatever the channels while the products grow with both counts,
# so narrow layers lose (3x3, 32 -> 64 channels on 14x14: 0.7x; 32 -> 128 on 7x7: 0.8x;
# 64 -> 128 breaks even) and wide ones win (3x3: 64 -> 192 and 96 -> 128 on 14x14
# 1.1-1.25x, 128 -> 192 1.4-1.5x, 192 -> 384 on 7x7 1.7-1.9x, on 4x4 1.9x; 5x5: 64 -> 192 on
# 14x14 2.0-2.2x). oneDNN's weight gradient is the slowest part it replaces. On 16x16 maps
# (32x32x3 inputs), whole blocks with no tile past the map, it wins more: 5x5 64 -> 192 2.4x,
# 3x3 64 -> 192 1.3x, 96 -> 128 1.5x, 128 -> 128 and 128 -> 192 1.6x. Larger maps were not
# measured for 3x3 (5x5 64 -> 192 on 32x32: 2.1x). The kernels' transform costs the same for
# any batch: one image through AlexNet in eval mode took 2.3x as long (17.8 ms against 7.8),
# 8 images about as long, 32 images 1.4x less.
#
# All of that was measured on AVX2 (8 floats per instruction), with the transforms as
# products with band matrices and the products through MKL. On an AMD CPU with AVX-512
# oneDNN's direct convolution runs 16 floats wide while MKL keeps to AVX2, and there direct
# convolution won everywhere. With every product through oneDNN, the transforms as single
# products over all tiles and the kernels' transforms read and written in the weights' own
# layout (this module now; with AVX2 emulated by ``ATEN_CPU_CAPABILITY=avx2
# ONEDNN_MAX_CPU_ISA=AVX2`` it ran 0.95-1.22x as fast as the band version on the layers
# above, with its products in one ``torch.bmm`` there), wide layers win there too
# (2 threads, wall time, medians of 7 interleaved, AMD EPYC, 2026-12-04): 3x3 on 4x4 maps
# 512->512 1.82x, 256->512 1.59x, 192->384 1.38x, 160->320 1.15x, 128->256 1.05x; on 8x8
# 192->384 1.59x, 256->256 1.45x, 144->288 1.28x, 128->256 1.18x; on 7x7, where a quarter of
# the 8x8 tiles' cells fall past the map, 192->384 1.23x, 256->256 1.13x, 160->320 1.05x,
# 144->288 1.01x, 128->256 0.90x, 96->208 0.75x; on 16x16 128->192 1.19x, 128->128 0.93x;
# 5x5 64->192 on 16x16 1.29x, on 14x14 0.93x, 48->128 on 8x8 0.73x. The products on 4x4 maps
# are a quarter of direct convolution's, but there the transformed kernels (36 x C x F) are
# as large as the transformed batch, and moving them through memory costs much of what is
# saved. ``WIDE_MIN_CHANNEL_PRODUCT`` counts only the tiles' cells that fall on the map.
KERNELS = (3, 5)
MIN_CHANNEL_PRODUCT = 64 * 192
MAX_MAP = 16
MIN_BATCH = 16
WIDE_MIN_CHANNEL_PRODUCT = {3: 128 * 256, 5: 64 * 192}


def fits(weight: torch.Tensor, shape: torch.Size, wide: bool = False) -> bool:
    """Whether a stride-1 convolution with these weights (F, C, r, r) on a batch of maps of
    this shape (B, C, H, W) ran faster by Winograd than as direct convolution, by the
    measurements above: on AVX2, or with ``wide`` on AVX-512."""
    f, c, kh, kw = weight.shape
    if kh != kw or kh not in KERNELS or max(shape[-2:]) > MAX_MAP or shape[0] < MIN_BATCH:
        return False
    if not wide:
        return c * f >= MIN_CHANNEL_PRODUCT
    h, w = shape[-2:]
    on_map = h * w / (-(-h // BLOCK) * -(-w // BLOCK) * BLOCK * BLOCK)       # 7x7 in 8x8 tiles: 0.77
    return c * f * on_map >= WIDE_MIN_CHANNEL_PRODUCT[kh]


def pays(weight: torch.Tensor, shape: torch.Size) -> bool:
    """Whether that convolution runs faster by Winograd on this CPU (``fits`` for its vectors)."""
    return fits(weight, shape, inner_product.wide_vectors())
