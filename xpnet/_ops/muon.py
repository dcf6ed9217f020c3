"""Muon: momentum, then an orthogonalized step for each matrix or filter bank.

For a weight of shape (F, ...) (a filter bank (F, C, kh, kw), or a matrix), the
momentum-averaged gradient is reshaped to ``G`` (F, C kh kw) and replaced by an
approximation of its orthogonal polar factor ``U V^T`` (``G = U S V^T``): every
direction moves by about the same amount, whatever the gradient's singular
values. The factor comes from a few Newton-Schulz iterations,
``X <- a X + (b A + c A^2) X`` with ``A = X X^T``, after scaling ``G`` to
Frobenius norm 1 (so every singular value is at most 1). Each iteration maps
every singular value ``s`` to ``a s + b s^3 + c s^5`` and keeps the singular
vectors. Keller Jordan's quintic coefficients (3.4445, -4.7750, 2.0315) push
small singular values up fast and leave them scattered around 1 (roughly 0.7 to
1.2) rather than converging; the classic cubic (1.5, -0.5, 0) converges to
``U V^T`` but needs many more steps.

The iterations are Array API matrix products in float32 (the record uses
bfloat16 on a GPU).
"""

from __future__ import annotations

import math
from typing import Any

from ..backend import namespace_of
from ..errors import InputError

__all__ = ["MUON_DEFAULTS", "QUINTIC", "muon", "newton_schulz"]

Array = Any

#: Keller Jordan's quintic Newton-Schulz coefficients (a, b, c)
QUINTIC = (3.4445, -4.7750, 2.0315)

MUON_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.02, "momentum": 0.95, "nesterov": True, "ns_steps": 5,
    "normalize": False, "weight_decay": 0.0,
}


def newton_schulz(G: Array, steps: int = 5, coefficients: tuple[float, float, float] = QUINTIC,
                  eps: float = 1e-7) -> Array:
    """An approximately orthogonal matrix with ``G``'s singular vectors (see the module).

    Parameters
    ----------
    G : 2-D array (m, n)
    steps : int
        Newton-Schulz iterations (3 in the speed record, 5 usually).
    coefficients : (a, b, c)
        Of the polynomial ``a s + b s^3 + c s^5`` applied to each singular value.
    eps : float
        Guards the scaling of a zero ``G``.

    Returns
    -------
    2-D array (m, n), float32
    """
    xp = namespace_of(G, caller="newton_schulz")
    if G.ndim != 2:
        raise InputError(f"newton_schulz: G must be a matrix, got shape {tuple(G.shape)}")
    if not isinstance(steps, int) or steps < 0:
        raise InputError(f"newton_schulz: steps must be a nonnegative integer, got {steps!r}")
    a, b, c = (float(v) for v in coefficients)
    X = xp.astype(G, xp.float32)
    X = X / (xp.sqrt(xp.sum(X * X)) + eps)
    tall = G.shape[0] > G.shape[1]
    if tall:  # iterate on the wide orientation: A is the smaller Gram matrix
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        B = b * A + c * (A @ A)
        X = a * X + B @ X
    return X.T if tall else X


def muon(w: Array, dw: Array, config: dict | None = None) -> tuple[Array, dict]:
    """Muon update of a matrix or filter bank ``w`` (F, ...) with gradient ``dw``.

    ``buf = momentum * buf + dw``; the step direction is ``dw + momentum * buf``
    (Nesterov) or ``buf``; it is reshaped to (F, rest), orthogonalized by
    :func:`newton_schulz` and reshaped back: ``w -= learning_rate * U``.

    config: ``learning_rate`` (0.02), ``momentum`` (0.95), ``nesterov`` (True),
    ``ns_steps`` (5), ``normalize`` (False: with True, ``w`` is first rescaled to
    Frobenius norm ``sqrt(F)``, as the speed record does), ``weight_decay`` (0:
    decoupled, ``w -= lr * weight_decay * w`` before the step); the state is
    ``momentum_buffer`` (zeros). Vectors (biases, normalization parameters) have
    no orthogonal factor worth taking: give them another rule (a parameter group).
    """
    xp = namespace_of(w, dw, caller="muon")
    if tuple(w.shape) != tuple(dw.shape):
        raise InputError(f"muon: dw has shape {tuple(dw.shape)} but w has {tuple(w.shape)}")
    if w.ndim < 2:
        raise InputError(f"muon orthogonalizes matrices and filter banks; a parameter of shape "
                         f"{tuple(w.shape)} needs another update rule (sgd_momentum in a "
                         "parameter group)")
    config = {} if config is None else config
    for key, value in MUON_DEFAULTS.items():
        config.setdefault(key, value)
    lr, mu = config["learning_rate"], config["momentum"]
    buf = config.get("momentum_buffer")
    buf = mu * (xp.zeros_like(dw) if buf is None else buf) + dw
    config["momentum_buffer"] = buf
    g = dw + mu * buf if config["nesterov"] else buf
    decay = config["weight_decay"]
    if decay:
        w = w - (lr * decay) * w
    if config["normalize"]:
        w = w * (math.sqrt(w.shape[0]) / xp.sqrt(xp.sum(w * w)))
    update = newton_schulz(xp.reshape(g, (w.shape[0], -1)), int(config["ns_steps"]))
    update = xp.astype(xp.reshape(update, tuple(w.shape)), w.dtype)
    return w - lr * update, config
