"""3x3 stride-1 convolution by Winograd minimal filtering, F(2x2, 3x3).

Lavin & Gray (2015). The output is cut into 2x2 tiles; each sees a 4x4 tile
of the padded input, and

    Y = A^T [ (G g G^T) (.) (B^T d B) ] A

(``(.)`` elementwise over the 4x4 tile positions) gives its four outputs from
16 products instead of 36. The interpolation points are 0, 1, -1 and infinity,
with the sign of the last row of ``B^T`` ([0, -1, 0, 1]) and of ``A^T``'s last
entry ([0, 1, -1, 1]) flipped from the paper's (the product is the same), so
that no transform and no adjoint needs a negation pass. Summed over input
channels, the 16 tile positions become 16 matrix products
``U[k] (F, C) @ V[k] (C, tiles)`` (kept as 16 arrays, never stacked: a stack
would copy all of them once more): 4 multiplications per output pixel and
channel pair instead of 9.

Everything here is Array API code: the transforms are additions of strided
slices (``B`` and ``A`` hold only 0 and +-1, ``G`` also 1/2), so it runs on
every backend; the layout is xpnet's channels-first ``(C, N, H, W)``, in which
the batched product needs no transposes.

Backward, as the exact adjoint of the forward's linear maps (no second input
transform): with ``dM = A dY A^T`` of the output gradient's 2x2 tiles,

- ``dw = G^T (dM @ V^T) G``: the batched product's weight gradient summed
  over the batch and the tiles (F(3x3, 2x2) over the batch);
- ``dx``: ``dV = U^T @ dM``, back through ``B`` and overlap-added into the
  padded input's gradient.

Error in float32 against the float64 reference (``conv_forward_naive`` /
``conv_backward_naive`` in float64, standard normal x, w, dout; largest error
relative to the largest magnitude of the result), measured on batch 8 of the
convnet's shapes (16, 32, 64 channels) and small odd ones: forward 1e-7 to
3e-7, dx 1.4e-7 to 3.1e-7, dw 0.8e-7 to 6.4e-7 (im2col: 1.2e-7 to 5.8e-7); at
batch 128 (16 channels at 32x32, 64 at 8x8): forward 2.1e-7 / 3.2e-7, dx 1.8e-7
/ 3.0e-7, dw 5.7e-7 / 6.0e-7 (im2col 3.6e-7 / 5.7e-7, 2.7e-7 / 5.3e-7, 5.8e-7 /
3.1e-7; torch's oneDNN dw 6.8e-6 / 1.8e-6). tests/test_winograd.py holds it to
2e-6. ``G``'s halves are exact and ``B``,
``A`` add at most four terms. F(4x4, 3x3) is not offered: its interpolation
points (+-2, +-1/2) amplify rounding by about 10-100x in float32.

Non-finite inputs: outputs are inf or NaN wherever the direct convolution's
are, and may be NaN elsewhere in the tiles that see them (inf - inf in the
transforms).
"""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from .._fast import ops

Array = Any

#: G of F(2x2, 3x3), the filter transform (4, 3).
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def applies(w_shape: tuple[int, ...], stride: int, pad: int) -> bool:
    """Whether a convolution is one Winograd F(2x2, 3x3) can do: 3x3, stride 1."""
    return tuple(w_shape[2:]) == (3, 3) and stride == 1


def _tiles(size: int) -> int:
    return (size + 1) // 2


def _padded(xp, xt: Array, pad: int, tiles_h: int, tiles_w: int) -> Array:
    """``xt`` (C, N, H, W) zero padded by ``pad`` and on the bottom/right up to
    (2 tiles_h + 2, 2 tiles_w + 2); no copy when nothing is added."""
    c, n, h, w = xt.shape
    hp, wp = 2 * tiles_h + 2, 2 * tiles_w + 2
    if pad == 0 and (h, w) == (hp, wp):
        return xt
    out = xp.zeros((c, n, hp, wp), dtype=xt.dtype, device=device(xt))
    out[:, :, pad:pad + h, pad:pad + w] = xt
    return out


def _filter_transform(xp, w: Array) -> Array:
    """``U = G g G^T`` of each (F, C) filter pair, as (16, F, C)."""
    f, c = w.shape[0], w.shape[1]
    g = xp.asarray(_G, dtype=w.dtype, device=device(w))
    u = xp.matmul(xp.matmul(g, w), xp.matrix_transpose(g))  # (F, C, 4, 4)
    return xp.reshape(xp.permute_dims(u, (2, 3, 0, 1)), (16, f, c))


def _input_transform(xp, xpad: Array, tiles_h: int, tiles_w: int) -> list[Array]:
    """``V = B^T d B`` of each 4x4 input tile (stride 2): 16 arrays (C, N tiles_h tiles_w),
    one per tile position (never stacked: each goes to its own product)."""
    c, n = xpad.shape[0], xpad.shape[1]
    rows = [xpad[:, :, r:r + 2 * tiles_h - 1:2, :] for r in range(4)]
    strips = (rows[0] - rows[2], rows[1] + rows[2], rows[2] - rows[1], rows[3] - rows[1])
    parts = []
    for strip in strips:
        s = [strip[..., k:k + 2 * tiles_w - 1:2] for k in range(4)]
        parts += [s[0] - s[2], s[1] + s[2], s[2] - s[1], s[3] - s[1]]
    return [xp.reshape(part, (c, n * tiles_h * tiles_w)) for part in parts]


def _output_transform(xp, m: list[Array], f: int, n: int, tiles_h: int, tiles_w: int
                      ) -> Array:
    """``Y = A^T M A`` of each tile from the 16 products (F, tiles), assembled into
    (F, N, 2 tiles_h, 2 tiles_w)."""
    m = [xp.reshape(mk, (f, n, tiles_h, tiles_w)) for mk in m]
    t = [[m[b] + m[4 + b] + m[8 + b] for b in range(4)],
         [m[4 + b] - m[8 + b] + m[12 + b] for b in range(4)]]
    out = xp.empty((f, n, 2 * tiles_h, 2 * tiles_w), dtype=m[0].dtype, device=device(m[0]))
    for r in range(2):
        tr = t[r]
        out[:, :, r::2, 0::2] = tr[0] + tr[1] + tr[2]
        out[:, :, r::2, 1::2] = tr[1] - tr[2] + tr[3]
    return out


def _output_adjoint(xp, dout_t: Array, tiles_h: int, tiles_w: int) -> list[Array]:
    """``dM = A dY A^T`` of each 2x2 tile of dout (F, N, H', W'): 16 arrays (F, tiles)."""
    f, n, oh, ow = dout_t.shape
    if (oh, ow) != (2 * tiles_h, 2 * tiles_w):
        full = xp.zeros((f, n, 2 * tiles_h, 2 * tiles_w), dtype=dout_t.dtype,
                        device=device(dout_t))
        full[:, :, :oh, :ow] = dout_t
        dout_t = full
    parts = []
    rows = [dout_t[:, :, r::2, :] for r in range(2)]
    for strip in (rows[0], rows[0] + rows[1], rows[0] - rows[1], rows[1]):
        s0, s1 = strip[..., 0::2], strip[..., 1::2]
        parts += [s0, s0 + s1, s0 - s1, s1]
    return [xp.reshape(part, (f, n * tiles_h * tiles_w)) for part in parts]


def _input_adjoint_(xp, dxpad: Array, dv: list[Array], tiles_h: int, tiles_w: int) -> None:
    """Add ``B dV B^T`` of each tile into ``dxpad`` (C, N, 2 tiles_h + 2, ...), the
    tiles overlapping by two rows and columns."""
    c, n = dxpad.shape[0], dxpad.shape[1]
    v = [xp.reshape(vk, (c, n, tiles_h, tiles_w)) for vk in dv]
    # rows of B (B^T's columns): r0 = v0, r1 = v1 - v2 - v3, r2 = v1 + v2 - v0, r3 = v3
    rows = []
    for b in range(4):
        v0, v1, v2, v3 = (v[4 * a + b] for a in range(4))
        rows.append([v0, v1 - v2 - v3, v1 + v2 - v0, v3])
    for r in range(4):
        e = [rows[b][r] for b in range(4)]
        cols = (e[0], e[1] - e[2] - e[3], e[1] + e[2] - e[0], e[3])
        for s in range(4):
            ops.add_window_(dxpad, cols[s], r, s, 2)


def forward(xp, xt: Array, w: Array, pad: int) -> tuple[Array, dict]:
    """``xt`` (C, N, H, W) correlated with ``w`` (F, C, 3, 3), stride 1, zero padding
    ``pad``: ``(out (F, N, H', W') without bias, state for backward)``."""
    c, n, h, wd = xt.shape
    f = w.shape[0]
    oh, ow = h + 2 * pad - 2, wd + 2 * pad - 2
    th, tw = _tiles(oh), _tiles(ow)
    v = _input_transform(xp, _padded(xp, xt, pad, th, tw), th, tw)
    u = _filter_transform(xp, w)
    out = _output_transform(xp, [u[k, ...] @ v[k] for k in range(16)], f, n, th, tw)
    if (oh, ow) != (2 * th, 2 * tw):
        out = out[:, :, :oh, :ow]
    # U^T as its own (small) array: NumPy's matmul is much slower on the transposed view
    ut = xp.asarray(xp.permute_dims(u, (0, 2, 1)), copy=True)
    return out, {"v": v, "ut": ut, "tiles": (th, tw)}


def backward(xp, dout_t: Array, state: dict, x_shape: tuple[int, ...], w_shape: tuple[int, ...],
             pad: int, need_dx: bool) -> tuple[Array | None, Array]:
    """``(dx (N, C, H, W) or None, dw)`` from ``dout_t`` (F, N, H', W')."""
    th, tw = state["tiles"]
    f, c = w_shape[0], w_shape[1]
    dm = _output_adjoint(xp, dout_t, th, tw)
    v = state["v"]
    du = xp.stack([dm[k] @ xp.matrix_transpose(v[k]) for k in range(16)], axis=0)  # (16, F, C)
    g = xp.asarray(_G, dtype=du.dtype, device=device(du))
    du = xp.permute_dims(xp.reshape(du, (4, 4, f, c)), (2, 3, 0, 1))
    dw = xp.matmul(xp.matmul(xp.matrix_transpose(g), du), g)
    if not need_dx:
        return None, dw
    n, _, h, wd = x_shape
    ut = state["ut"]
    dv = [ut[k, ...] @ dm[k] for k in range(16)]  # (C, tiles) each
    dxpad = xp.zeros((c, n, 2 * th + 2, 2 * tw + 2), dtype=dv[0].dtype, device=device(dv[0]))
    _input_adjoint_(xp, dxpad, dv, th, tw)
    dx = dxpad[:, :, pad:pad + h, pad:pad + wd]
    return xp.permute_dims(dx, (1, 0, 2, 3)), dw
