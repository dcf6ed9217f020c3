"""Hyperparameter sweeps from Python (the ``xpnet sweep`` command's engine).

Examples
--------
>>> import xpnet.sweep
>>> result = xpnet.sweep.run(                                    # doctest: +SKIP
...     {"lr": "1e-4:1e-1:log", "reg": (1e-6, 1e-1, "log"), "hidden": ["100", "512x256"]},
...     n_trials=20, workers=2, sweep_dir="runs/sweep1", epochs=5,
...     options={"dataset": "digits"})
>>> result.best_params, result.best_value, result.best_run      # doctest: +SKIP

``executor`` takes ``"local"`` (spawned processes), ``"dask"`` (a
``LocalCluster``), ``"dask://HOST:PORT"`` or any ``concurrent.futures.Executor``.
:func:`resume` continues a sweep after a crash or Ctrl-C; :func:`show` prints
the table of trials and writes the plots.

Floor: this module belongs to the application's floor (``xpnet/app/``): it is
the Python name of :mod:`xpnet.app.sweep`, which trains with ``xpnet train``'s
code, so a sweep cannot live lower. It only re-exports that package's public
names; no module below the application imports it (``tests/test_sweep.py``
checks both).
"""

from .app.sweep import (
    Choices,
    FloatRange,
    IntRange,
    SweepResult,
    TrialRecord,
    resume,
    run,
    show,
)

__all__ = ["Choices", "FloatRange", "IntRange", "SweepResult", "TrialRecord", "resume", "run",
           "show"]
