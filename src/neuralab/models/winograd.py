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

Convolution is already at BLAS's speed on this project's CPU (AVX2), so only doing fewer
multiplications makes it faster: AlexNet's convolutions at 28x28 (batch 128, forward and
both gradients, interleaved with PyTorch's oneDNN convolution) 1.7-2.2x, its training step
1.7-1.8x (bench/bench_winograd.py); ``pays`` below says where it is used (not on CPUs with
AVX-512, where oneDNN's direct convolution runs twice as wide and won). The transforms
trade exactness for that: float32 results differ from PyTorch's by up to about 1e-5 of the
output's largest value (1e-6 for direct convolution).
"""

from __future__ import annotations

import functools

import torch
from torch.autograd.function import once_differentiable

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


@functools.cache
def _band(m: int, r: int, size: int, pad: int, tiles: int) -> torch.Tensor:
    """B^T of every tile along one side of a map, as one matrix (tiles * a, size): row
    (t, i) holds B^T's row i at the cells of tile t, which starts m * t cells into the map
    padded by `pad`. The padding's columns are dropped (they would multiply zeros), so
    the product with the map itself tiles, pads and transforms it at once; its transpose
    takes tile gradients back to the map, adding where tiles overlap."""
    a = m + r - 1
    band = torch.zeros(tiles, a, tiles * m + r - 1, dtype=torch.float64)          # over the padded map
    for t in range(tiles):
        band[t, :, t * m:t * m + a] = transforms(m, r)[2]
    return band.reshape(tiles * a, -1)[:, pad:pad + size].float().contiguous()


def _spans(size: int, m: int) -> list[tuple[slice, int, slice]]:
    """(blocks, cells of each, cells of the map) along one side of a map of `size` cells cut
    in blocks of m: the whole blocks, then the one the edge cuts."""
    whole = size // m
    spans = [(slice(0, whole), m, slice(0, whole * m))] if whole else []
    return spans + [(slice(whole, whole + 1), size % m, slice(whole * m, size))] if size % m else spans


def _pieces(blocks: torch.Tensor, cells: torch.Tensor, m: int):
    """Pairs of matching views of a map in m x m blocks, (n, th, m, tw, m, F), and of the map
    itself, (n, H, W, F) with H <= th*m and W <= tw*m."""
    for rows, k, span in _spans(cells.shape[1], m):
        for cols, l, span_c in _spans(cells.shape[2], m):
            block = blocks[:, rows, :k, cols, :l]
            yield block, cells[:, span, span_c].unflatten(1, block.shape[1:3]).unflatten(3, block.shape[3:5])


class _Winograd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        f, c, r, _ = weight.shape
        m = BLOCK
        a = m + r - 1
        at, g, _ = _transforms2d(m, r)
        n, _, h, w = x.shape
        ph, pw = padding
        ho, wo = h + 2 * ph - r + 1, w + 2 * pw - r + 1
        th, tw = -(-ho // m), -(-wo // m)                                      # tiles down and across
        bh, bw = _band(m, r, h, ph, th), _band(m, r, w, pw, tw)                # (th*a, h), (tw*a, w)
        rows = torch.matmul(bh, x.permute(0, 2, 3, 1).reshape(n, h, w * c))   # (n, th*a, w*c): B^T d down
        v = torch.matmul(bw, rows.view(n * th * a, w, c))                      # (n*th*a, tw*a, C): and across
        v = v.view(n, th, a, tw, a, c).permute(2, 4, 0, 1, 3, 5).reshape(a * a, n * th * tw, c)  # (a^2, tiles, C)
        u = (g @ weight.permute(2, 3, 1, 0).reshape(r * r, c * f)).view(a * a, c, f)  # G g G^T: (a^2, C, F)
        y = (at @ torch.bmm(v, u).view(a * a, -1)).view(m, m, n, th, tw, f)  # A^T M A: (m, m, n, th, tw, F)
        ctx.save_for_backward(v, u)
        ctx.shape = (n, c, f, h, w, ho, wo, th, tw, r, ph, pw, bias is not None)
        ctx.channels_last = x.is_contiguous(memory_format=torch.channels_last)
        # A new tensor in the input's layout, not a view of y: autograd lets the next layer
        # (an in-place ReLU) write into it only then.
        layout = torch.channels_last if ctx.channels_last else torch.contiguous_format
        out = torch.empty(n, f, ho, wo, dtype=x.dtype, memory_format=layout)
        for block, cells in _pieces(y.permute(2, 3, 0, 4, 1, 5), out.permute(0, 2, 3, 1), m):
            if bias is not None:
                torch.add(block, bias, out=cells)
            else:
                cells.copy_(block)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        v, u = ctx.saved_tensors
        n, c, f, h, w, ho, wo, th, tw, r, ph, pw, has_bias = ctx.shape
        m = BLOCK
        a = m + r - 1
        at, g, _ = _transforms2d(m, r)
        dy = grad.permute(0, 2, 3, 1)                                          # (n, ho, wo, F)
        blocks = dy.new_empty(m, m, n, th, tw, f)                              # dY in m x m blocks
        if ho % m or wo % m:
            blocks.zero_()                                                     # past the map's edge
        for block, cells in _pieces(blocks.permute(2, 3, 0, 4, 1, 5), dy, m):
            block.copy_(cells)
        dm = (at.t() @ blocks.view(m * m, -1)).view(a * a, n * th * tw, f)     # A dY A^T: (a^2, tiles, F)
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        dx = dw = db = None
        if need_x:
            dv = torch.bmm(dm, u.transpose(1, 2))                              # (a^2, tiles, C)
            dv = dv.view(a, a, n, th, tw, c).permute(2, 3, 0, 4, 1, 5).reshape(n * th * a, tw * a, c)
            bh, bw = _band(m, r, h, ph, th), _band(m, r, w, pw, tw)
            # B dV B^T of every tile, added where tiles overlap, without the padding
            cols = torch.matmul(bw.t(), dv)                                     # (n*th*a, w, C)
            dxp = torch.matmul(bh.t(), cols.view(n, th * a, w * c)).view(n, h, w, c)
            dx = dxp.permute(0, 3, 1, 2)
            dx = dx.contiguous(memory_format=torch.channels_last if ctx.channels_last else torch.contiguous_format)
        if need_w:
            du = torch.bmm(v.transpose(1, 2), dm)                              # (a^2, C, F)
            dw = (g.t() @ du.view(a * a, -1)).view(r, r, c, f).permute(3, 2, 0, 1).contiguous()
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
# All of that was measured on AVX2 (8 floats per instruction). On an AMD CPU with AVX-512,
# oneDNN's direct convolution uses 16 while the transforms cost what they did and MKL's
# products keep to AVX2, and direct convolution won: training steps without Winograd at
# 28x28 AlexNet 1.17x, GoogLeNet 1.10x, VGG16 1.09x, at 32x32x3 AlexNet 1.08x, GoogLeNet
# 1.0x, VGG16 0.95x; with the products through oneDNN too (``inner_product``), AlexNet's
# step at 28x28 was 1.05x Winograd's, GoogLeNet's 0.91x (AMD EPYC, 2026-12-04). So CPUs
# whose PyTorch kernels run AVX-512 keep direct convolution.
KERNELS = (3, 5)
MIN_CHANNEL_PRODUCT = 64 * 192
MAX_MAP = 16
MIN_BATCH = 16


@functools.cache
def _wide_vectors() -> bool:
    """Whether PyTorch's CPU kernels run AVX-512 here (``ATEN_CPU_CAPABILITY`` can lower it)."""
    return torch.backends.cpu.get_cpu_capability() == "AVX512"


def fits(weight: torch.Tensor, shape: torch.Size) -> bool:
    """Whether a stride-1 convolution with these weights (F, C, r, r) on a batch of maps of
    this shape (B, C, H, W) ran faster by Winograd than as direct convolution on AVX2, by
    the measurements above."""
    f, c, kh, kw = weight.shape
    return (kh == kw and kh in KERNELS and c * f >= MIN_CHANNEL_PRODUCT and max(shape[-2:]) <= MAX_MAP
            and shape[0] >= MIN_BATCH)


def pays(weight: torch.Tensor, shape: torch.Size) -> bool:
    """Whether that convolution runs faster by Winograd on this CPU: it ``fits``, and the CPU
    has no AVX-512 for direct convolution."""
    return fits(weight, shape) and not _wide_vectors()
