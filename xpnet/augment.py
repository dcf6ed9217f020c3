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
from .backend import RandomStream, backend_of, namespace_of
from .errors import InputError

__all__ = ["PADDINGS", "AlternatingFlip", "Compose", "RandomCropFlip", "RandomTranslate",
           "flip_horizontal", "reflect_pad"]

#: how :class:`RandomCropFlip` fills the border: zeros, or the image mirrored at its edge
PADDINGS = ("zeros", "reflect")

Array = Any


def flip_horizontal(x: Array) -> Array:
    """Images (N, C, H, W) mirrored left to right."""
    xp = namespace_of(x, caller="flip_horizontal")
    return xp.flip(x, axis=-1)


def reflect_pad(x: Array, pad: int) -> Array:
    """Images (N, C, H, W) padded by ``pad`` pixels on every side with their mirror
    image at each edge, the edge itself not repeated (NumPy's and PyTorch's 'reflect':
    ``[a b c d]`` padded by 2 is ``[c b a b c d c b]``); ``pad`` < H and < W."""
    xp = namespace_of(x, caller="reflect_pad")
    checks.ndim(x, 4, "x", "(N, C, H, W)", "reflect_pad")
    p = checks.nonnegative_int(pad, "pad", "reflect_pad")
    h, w = x.shape[2], x.shape[3]
    if p >= h or p >= w:
        raise InputError(f"reflect_pad: pad {p} must be smaller than the image "
                         f"({h} x {w})")
    if p == 0:
        return x
    rows = xp.concat([xp.flip(x[:, :, 1:p + 1, :], axis=2), x,
                      xp.flip(x[:, :, h - 1 - p:h - 1, :], axis=2)], axis=2)
    return xp.concat([xp.flip(rows[:, :, :, 1:p + 1], axis=3), rows,
                      xp.flip(rows[:, :, :, w - 1 - p:w - 1], axis=3)], axis=3)


class RandomCropFlip:
    """Random crops of zero-padded images and random horizontal flips.

    Parameters
    ----------
    pad : int
        Pixels added on each side before cropping (4 for CIFAR-10); 0: no crops.
    flip : bool
        Mirror each image with probability 1/2.
    padding : {'zeros', 'reflect'}
        What the added pixels hold: zeros, or the image mirrored at its edge
        (:func:`reflect_pad`, the speed record's translation).
    """

    def __init__(self, pad: int = 4, flip: bool = True, padding: str = "zeros") -> None:
        self.pad = checks.nonnegative_int(pad, "pad", type(self).__name__)
        self.flip = bool(flip)
        self.padding = checks.choice(padding, PADDINGS, "padding", type(self).__name__)

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"pad": self.pad, "flip": self.flip}
        if self.padding != "zeros":
            config["padding"] = self.padding
        return config

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(
            f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
            for k, v in self.config.items()) + ")"

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
            if self.padding == "reflect":
                padded = reflect_pad(x, p)
            else:
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


class RandomTranslate(RandomCropFlip):
    """Random translation by up to ``pad`` pixels in each direction, the border filled
    by reflection (the speed record's, ``pad=2``): :class:`RandomCropFlip` without the
    flip and with ``padding='reflect'``."""

    def __init__(self, pad: int = 2, padding: str = "reflect") -> None:
        super().__init__(pad=pad, flip=False, padding=padding)

    @property
    def config(self) -> dict[str, Any]:
        return {"pad": self.pad, "padding": self.padding}


class AlternatingFlip:
    """Each training image mirrored in exactly one of every two consecutive epochs.

    In epoch 0 each image is mirrored or not at random (one draw per image, from
    the stream); in epoch ``e`` it is mirrored iff that draw XOR ``e`` is odd. So
    over any two consecutive epochs the network sees every image once each way,
    which beats independent flips (Keller Jordan, arXiv 2404.00498).

    The flips depend on which images a minibatch holds and on the epoch, so the
    Solver calls it as ``augment(x, stream, indices=idx, epoch=e, num_samples=n)``
    (:attr:`uses_indices` says so): ``idx`` are the minibatch's rows of the
    training set of ``n`` images. The epoch-0 draws are made at the first call
    and kept (:attr:`base`, part of no checkpoint: a resumed run draws anew).

    Parameters
    ----------
    seed : int, optional
        Draw the epoch-0 flips from a stream of this seed on the batch's backend
        instead of from the stream given at the first call.
    """

    uses_indices = True

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        #: the epoch-0 flips, one boolean per training image (drawn at the first call)
        self.base: Array | None = None

    @property
    def config(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def __repr__(self) -> str:
        return f"AlternatingFlip(seed={self.seed})"

    def flips(self, indices: Array, epoch: int, num_samples: int, stream: Any) -> Array:
        """Booleans: which of the images ``indices`` are mirrored in ``epoch``."""
        xp = namespace_of(indices, caller="AlternatingFlip")
        n = checks.positive_int(num_samples, "num_samples", "AlternatingFlip")
        if self.base is None or self.base.shape[0] != n:
            if self.seed is not None:
                stream = backend_of(indices).new_stream(self.seed)
            self.base = stream.integers(2, n) == 1
        epoch = checks.nonnegative_int(epoch, "epoch", "AlternatingFlip")
        base = xp.take(self.base, indices, axis=0)
        return xp.logical_not(base) if epoch % 2 else base

    def __call__(self, x: Array, stream: Any, *, indices: Array, epoch: int,
                 num_samples: int) -> Array:
        """The batch ``x`` (N, C, H, W) with the images due in ``epoch`` mirrored."""
        xp = namespace_of(x, caller="AlternatingFlip")
        checks.ndim(x, 4, "x", "(N, C, H, W)", "AlternatingFlip")
        if indices.shape[0] != x.shape[0]:
            raise InputError(f"AlternatingFlip: {indices.shape[0]} indices for a batch of "
                             f"{x.shape[0]} images")
        mirrored = self.flips(indices, epoch, num_samples, stream)
        return xp.where(mirrored[:, None, None, None], xp.flip(x, axis=-1), x)


class Compose:
    """Augmentations applied in order (``Compose(AlternatingFlip(), RandomTranslate(2))``);
    those that :attr:`uses_indices` get the minibatch's indices, epoch and size."""

    def __init__(self, *augmentations: Any) -> None:
        for a in augmentations:
            if not callable(a):
                raise InputError(f"Compose: {a!r} is not an augmentation (a callable)")
        self.augmentations = list(augmentations)
        self.uses_indices = any(getattr(a, "uses_indices", False) for a in augmentations)

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(map(repr, self.augmentations)) + ")"

    def __call__(self, x: Array, stream: Any, **batch: Any) -> Array:
        for a in self.augmentations:
            x = a(x, stream, **batch) if getattr(a, "uses_indices", False) else a(x, stream)
        return x
