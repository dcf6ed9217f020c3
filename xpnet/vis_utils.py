"""Pictures of a model and its training, in the CS231n style.

:func:`visualize_grid` tiles images into one array (the CS231n function, for
arrays of any backend). :func:`plot_training_curves` and
:func:`plot_first_layer_weights` draw figures with matplotlib's object API
(``matplotlib.figure.Figure``, rendered by Agg), so they never touch pyplot's
global state or the notebook's backend; give them a ``path`` and they write a
PNG atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .backend import to_numpy
from .errors import InputError
from .files import atomic_write

__all__ = [
    "first_layer_images",
    "plot_first_layer_weights",
    "plot_training_curves",
    "save_figure",
    "visualize_grid",
]


def visualize_grid(Xs: Any, ubound: float = 255.0, padding: int = 1) -> np.ndarray:
    """Tile a batch of images into one grid image, each scaled to [0, ubound].

    Parameters
    ----------
    Xs : array of shape (N, H, W, C), or (N, H, W) for grey images
        Any backend's array; copied to the host.
    ubound : float
        Every image is rescaled on its own so its minimum maps to 0 and its
        maximum to ``ubound`` (a constant image becomes 0).
    padding : int
        Blank pixels between neighbouring images.

    Returns
    -------
    numpy.ndarray of shape (G*H + (G-1)*padding, G*W + (G-1)*padding, C)
        With ``G = ceil(sqrt(N))``; cells past the N-th image stay 0.
    """
    Xs = np.asarray(to_numpy(Xs), dtype=np.float64)
    if Xs.ndim == 3:
        Xs = Xs[..., np.newaxis]
    if Xs.ndim != 4:
        raise InputError(f"visualize_grid: Xs must have shape (N, H, W, C) or (N, H, W), "
                         f"got {Xs.shape}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise InputError(f"visualize_grid: padding must be a non-negative integer, "
                         f"got {padding!r}")
    N, H, W, C = Xs.shape
    grid_size = math.ceil(math.sqrt(N))
    grid_height = H * grid_size + padding * (grid_size - 1)
    grid_width = W * grid_size + padding * (grid_size - 1)
    grid = np.zeros((grid_height, grid_width, C))
    for i in range(N):
        row, col = divmod(i, grid_size)
        y0, x0 = row * (H + padding), col * (W + padding)
        img = Xs[i]
        low, high = img.min(), img.max()
        if high > low:
            grid[y0:y0 + H, x0:x0 + W] = ubound * (img - low) / (high - low)
    return grid


def first_layer_images(W1: Any, image_shape: Sequence[int]) -> np.ndarray:
    """The columns of a first-layer weight matrix, or convolution filters, as images.

    Parameters
    ----------
    W1 : array of shape (D, H), or (F, C, h, w) filters
        ``D = prod(image_shape)``; any backend.
    image_shape : (3, 32, 32) for CIFAR-10 (channels first), (1, h, w) or (h, w)
        for grey (ignored for filters)

    Returns
    -------
    numpy.ndarray
        ``(H, 32, 32, 3)`` for channels-first colour images (the CIFAR-10
        layout ``(H, 3, 32, 32).transpose(0, 2, 3, 1)``), ``(H, h, w)`` for grey;
        ``(F, h, w, C)`` (``(F, h, w)`` for one channel) for filters.
    """
    W1 = to_numpy(W1)
    if W1.ndim == 4:  # convolution filters (F, C, h, w)
        images = W1.transpose(0, 2, 3, 1)
    else:
        shape = tuple(int(s) for s in image_shape)
        if W1.ndim != 2 or W1.shape[0] != math.prod(shape):
            raise InputError(f"first_layer_images: W1 must have shape ({math.prod(shape)}, H) "
                             f"for images of shape {shape}, got {W1.shape}")
        images = W1.T.reshape(W1.shape[1], *shape)
        if len(shape) == 3:
            images = images.transpose(0, 2, 3, 1)
    if images.ndim == 4 and images.shape[-1] == 1:  # one grey channel
        images = images[..., 0]
    return images


def _figure(**kwargs: Any):
    from matplotlib.figure import Figure  # optional dependency, imported on use

    return Figure(**kwargs)


def save_figure(fig: Any, path: str | os.PathLike) -> str:
    """Write ``fig`` as a PNG to ``path`` atomically (never a half-written file)."""
    atomic_write(path, lambda handle: fig.savefig(handle, format="png"))
    return str(path)


def plot_training_curves(history: Mapping[str, Sequence[float]],
                         path: str | os.PathLike | None = None) -> Any:
    """Loss per iteration and train/validation accuracy per epoch, side by side.

    Parameters
    ----------
    history : mapping
        ``loss_history`` (one value per iteration), ``train_acc_history`` and
        ``val_acc_history`` (one value per check, as the Solver keeps them:
        the first at iteration 1, then one per epoch); a Solver's ``__dict__``
        style or a run's ``history.json`` both work.
    path : path, optional
        Write the figure there as a PNG.

    Returns
    -------
    matplotlib.figure.Figure
    """
    loss = list(history.get("loss_history", []))
    train_acc = list(history.get("train_acc_history", []))
    val_acc = list(history.get("val_acc_history", []))
    fig = _figure(figsize=(11, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(np.arange(1, len(loss) + 1), loss, ".", markersize=2, alpha=0.6)
    ax_loss.set(title="Training loss", xlabel="Iteration", ylabel="Loss")
    checks = np.arange(len(train_acc))
    ax_acc.plot(checks, train_acc, "-o", label="train")
    ax_acc.plot(np.arange(len(val_acc)), val_acc, "-o", label="val")
    ax_acc.set(title="Classification accuracy", xlabel="Epoch", ylabel="Accuracy")
    ax_acc.legend(loc="lower right")
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_first_layer_weights(W1: Any, image_shape: Sequence[int],
                             path: str | os.PathLike | None = None,
                             max_images: int = 256) -> Any:
    """The first-layer weights as a grid of images (CS231n's ``show_net_weights``).

    Parameters
    ----------
    W1 : array of shape (D, H), or convolution filters (F, C, h, w); any backend
    image_shape : (3, 32, 32) for colour images, (1, h, w) or (h, w) for grey ones
    path : path, optional
        Write the figure there as a PNG.
    max_images : int
        Show at most the first this many hidden units.

    Returns
    -------
    matplotlib.figure.Figure
    """
    images = first_layer_images(W1, image_shape)[:max_images]
    grid = visualize_grid(images, padding=3).astype("uint8")
    fig = _figure(figsize=(8, 8), layout="constrained")
    ax = fig.subplots()
    if grid.shape[-1] == 1:
        ax.imshow(grid[..., 0], cmap="gray")
    else:
        ax.imshow(grid)
    W1 = to_numpy(W1)
    what = "filters" if W1.ndim == 4 else "weights"
    total = W1.shape[0] if W1.ndim == 4 else W1.shape[1]
    ax.set_title(f"First-layer {what} ({images.shape[0]} of {total})")
    ax.axis("off")
    if path is not None:
        save_figure(fig, path)
    return fig
