"""Accuracy of a model on a data set, optionally with test-time horizontal flips."""

from __future__ import annotations

from typing import Any

from ..augment import flip_horizontal
from ..backend import Backend
from ..host import gather_rows, host_rows

__all__ = ["accuracy"]


def accuracy(model: Any, backend: Backend, X: Any, y: Any, num_samples: int | None = None,
             batch_size: int = 100, *, stream: Any, flip: bool = False,
             host: bool = False) -> float:
    """Fraction of ``X`` that ``model`` classifies as ``y``.

    Parameters
    ----------
    model : object
        ``model.loss(X)`` returns scores.
    backend : Backend
    X, y : arrays (host or device)
    num_samples : int, optional
        Subsample this many points (with replacement, from ``stream``) when X has more.
    batch_size : int
        Predict in batches of this size.
    stream : random stream
    flip : bool
        Average the scores of each image and its mirror (4-D inputs only).
    host : bool
        ``X`` is a host (NumPy) array moved batch by batch.
    """
    xp = backend.xp
    X = X if host else backend.asarray(X)
    y = backend.asarray(y)
    n = X.shape[0]
    if num_samples is not None and n > num_samples:
        idx = stream.integers(n, num_samples)
        y = xp.take(y, idx, axis=0)
        if host:
            X = gather_rows(host_rows(X), idx, (num_samples, *X.shape[1:]))
        else:
            X = xp.take(X, idx, axis=0)
        n = num_samples
    flip = flip and X.ndim == 4
    correct = None
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        batch = backend.asarray(X[start:stop, ...]) if host else X[start:stop, ...]
        scores = model.loss(batch)
        if flip:
            scores = scores + model.loss(flip_horizontal(batch))
        hits = xp.sum(xp.astype(xp.argmax(scores, axis=1) == y[start:stop], xp.int64))
        correct = hits if correct is None else correct + hits
    return float(correct) / n
