"""Data augmentation on the device, written once on the Array API.

:class:`RandomCropFlip` turns a minibatch of images (N, C, H, W) into randomly
shifted and mirrored copies: each image is zero-padded by ``pad`` pixels on
every side and cropped back to H x W at a random offset, then flipped left to
right with probability 1/2. The crop and the flip are one gather (``take``)
from the padded batch, so the data set itself is never copied or modified.
The offsets and flips come from the random stream it is given, the Solver's,
so the same seed gives the same batches.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from ._ops import checks
from .backend import RandomStream, namespace_of

__all__ = ["RandomCropFlip", "flip_horizontal"]

Array = Any


def flip_horizontal(x: Array) -> Array:
    """Images (N, C, H, W) mirrored left to right."""
    xp = namespace_of(x, caller="flip_horizontal")
    return xp.flip(x, axis=-1)


class RandomCropFlip:
    """Random crops of zero-padded images and random horizontal flips.

    Parameters
    ----------
    pad : int
        Zeros added on each side before cropping (4 for CIFAR-10); 0: no crops.
    flip : bool
        Mirror each image with probability 1/2.
    """

    def __init__(self, pad: int = 4, flip: bool = True) -> None:
        self.pad = checks.nonnegative_int(pad, "pad", "RandomCropFlip")
        self.flip = bool(flip)

    @property
    def config(self) -> dict[str, Any]:
        return {"pad": self.pad, "flip": self.flip}

    def __repr__(self) -> str:
        return f"RandomCropFlip(pad={self.pad}, flip={self.flip})"

    def __call__(self, x: Array, stream: RandomStream) -> Array:
        """An augmented copy of the batch ``x`` (N, C, H, W), drawing from ``stream``."""
        xp = namespace_of(x, caller="RandomCropFlip")
        checks.ndim(x, 4, "x", "(N, C, H, W)", "RandomCropFlip")
        n, c, h, w = x.shape
        p = self.pad
        if p == 0 and not self.flip:
            return x
        dev = device(x)
        if p:
            padded = xp.zeros((n, c, h + 2 * p, w + 2 * p), dtype=x.dtype, device=dev)
            padded[:, :, p:p + h, p:p + w] = x
            dy = stream.integers(2 * p + 1, n)
            dx = stream.integers(2 * p + 1, n)
        else:
            padded = x
            dy = dx = xp.zeros((n,), dtype=xp.int64, device=dev)
        hp, wp = h + 2 * p, w + 2 * p
        rows = dy[:, None] + xp.arange(h, dtype=xp.int64, device=dev)[None, :]  # (N, H)
        cols = xp.arange(w, dtype=xp.int64, device=dev)[None, :]  # (1, W)
        if self.flip:
            mirrored = stream.integers(2, n) == 1
            cols = xp.where(mirrored[:, None], (w - 1) - cols, cols)
        cols = dx[:, None] + cols  # (N, W)
        base = xp.arange(n * c, dtype=xp.int64, device=dev) * (hp * wp)  # (N C,)
        index = (xp.reshape(base, (n, c, 1, 1)) + rows[:, None, :, None] * wp
                 + cols[:, None, None, :])
        flat = xp.reshape(padded, (-1,))
        return xp.reshape(xp.take(flat, xp.reshape(index, (-1,))), (n, c, h, w))
