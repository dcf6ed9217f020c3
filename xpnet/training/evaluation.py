"""Accuracy of a model on a data set, optionally with test-time horizontal flips."""

from __future__ import annotations

from typing import Any

from ..augment import flip_horizontal
from ..backend import Backend
from ..host import gather_rows, host_rows
from ..tta import tta_views
from .checkpoints import snapshot
from .parallel import shard

__all__ = ["accuracy", "epoch_check"]


def accuracy(model: Any, backend: Backend, X: Any, y: Any, num_samples: int | None = None,
             batch_size: int = 100, *, stream: Any, flip: bool = False,
             host: bool = False, parallel: Any = None, tta_level: int = 0) -> float:
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
    parallel : DataParallel, optional
        Each rank predicts its shard of the (subsampled) points; the counts are summed.
    tta_level : int
        Average the scores over test-time views (:func:`xpnet.tta.tta_views`; 1 is
        ``flip``, 2 adds one-pixel translations); 4-D inputs only.
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
    lo, hi = (0, n) if parallel is None else shard(n, parallel.rank, parallel.world)
    for start in range(lo, hi, batch_size):
        stop = min(start + batch_size, hi)
        batch = backend.asarray(X[start:stop, ...]) if host else X[start:stop, ...]
        if tta_level and X.ndim == 4:
            scores = tta_views(model, batch, tta_level)
        else:
            scores = model.loss(batch)
            if flip:
                scores = scores + model.loss(flip_horizontal(batch))
        hits = xp.sum(xp.astype(xp.argmax(scores, axis=1) == y[start:stop], xp.int64))
        correct = hits if correct is None else correct + hits
    if parallel is not None:
        return parallel.count(correct) / n
    return float(correct) / n


def epoch_check(solver: Any) -> None:
    """A Solver's accuracy check: training (subsample) and validation accuracy into
    the histories, printed when verbose; the best parameters and buffers so far kept."""
    train_acc = solver.check_accuracy(solver.X_train, solver.y_train,
                                      num_samples=solver.num_train_samples)
    val_acc = solver.check_accuracy(solver.X_val, solver.y_val,
                                    num_samples=solver.num_val_samples)
    solver.train_acc_history.append(train_acc)
    solver.val_acc_history.append(val_acc)
    solver._print(f"(Epoch {solver.epoch} / {solver.num_epochs}) train acc: {train_acc:f}; "
                  f"val_acc: {val_acc:f}")
    if val_acc > solver.best_val_acc or not solver.best_params:
        solver.best_val_acc = max(val_acc, solver.best_val_acc)
        solver.best_params, solver.best_buffers = snapshot(solver.model, solver.backend)

