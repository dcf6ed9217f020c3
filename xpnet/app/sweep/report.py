"""A sweep's results: the table of trials (best first) and its pictures.

``params.png`` plots the best validation accuracy of every trial against
each searched hyperparameter (log axes for log ranges); ``history.png`` is
the optimization history: each trial's accuracy by trial number and the best
so far. Figures use matplotlib's object API (no pyplot state) and are written
atomically.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .folder import HISTORY_PLOT, PARAMS_PLOT
from .space import SEARCHABLE, Choices, SearchSpace, format_value
from .study import TrialRecord

__all__ = ["best_first", "format_table", "write_plots"]

_STATE_ORDER = {"complete": 0, "pruned": 1, "running": 2}


def best_first(trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Completed trials by accuracy (best first), then pruned, running and failed ones."""
    def key(record: TrialRecord) -> tuple:
        value = record.value if record.value is not None else -math.inf
        return (_STATE_ORDER.get(record.state, 3), -value, record.number)

    return sorted(trials, key=key)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def format_table(trials: Sequence[TrialRecord], space: SearchSpace,
                 top: int | None = None) -> str:
    """The trials as an aligned text table, best first (the first ``top`` of them)."""
    keys = list(space.dimensions)
    header = ["trial", "state", "val acc", "test acc", "epochs",
              *(SEARCHABLE[k].flag[2:] for k in keys), "folder"]
    rows = [header]
    for record in best_first(trials)[:top]:
        rows.append([str(record.number), record.state, _cell(record.value),
                     _cell(record.attrs.get("test_acc")), str(record.attrs.get("epochs", "-")),
                     *(format_value(k, record.options[k]) if k in record.options else "-"
                       for k in keys),
                     str(record.attrs.get("run", "-"))])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                          strict=True)).rstrip()
                     for row in rows)


def write_plots(trials: Sequence[TrialRecord], space: SearchSpace, folder: Path
                ) -> list[Path]:
    """Write ``params.png`` and ``history.png`` into ``folder``; the paths written.

    Returns [] when matplotlib is not installed or no trial has a value yet.
    """
    if importlib.util.find_spec("matplotlib") is None:
        return []
    scored = [t for t in trials if t.value is not None and t.state in ("complete", "pruned")]
    if not scored:
        return []
    from ...vis_utils import save_figure

    return [Path(save_figure(_params_figure(scored, space), folder / PARAMS_PLOT)),
            Path(save_figure(_history_figure(scored), folder / HISTORY_PLOT))]


def _params_figure(scored: list[TrialRecord], space: SearchSpace) -> Any:
    """Accuracy against each searched hyperparameter, one panel each; the best starred."""
    from matplotlib.figure import Figure

    keys = list(space.dimensions)
    columns = min(3, len(keys))
    rows = math.ceil(len(keys) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.4 * rows), layout="constrained")
    best = max((t for t in scored if t.state == "complete"), key=lambda t: t.value or 0.0,
               default=None)
    for index, key in enumerate(keys):
        _params_panel(fig.add_subplot(rows, columns, index + 1), key, space.dimensions[key],
                      scored, best)
    fig.axes[0].legend(fontsize="small")
    fig.suptitle("accuracy against each hyperparameter")
    return fig


def _params_panel(ax: Any, key: str, dim: Any, scored: list[TrialRecord],
                  best: TrialRecord | None) -> None:
    """One hyperparameter's panel: categories on their own ticks, log ranges on log axes."""
    from matplotlib.ticker import NullFormatter

    categories = [format_value(key, v) for v in dim.values] if isinstance(dim, Choices) else None

    def position(value: object) -> float:
        if categories is None:
            return float(value)  # type: ignore[arg-type]
        return float(categories.index(format_value(key, value)))

    for state, style in (("complete", {"color": "tab:blue"}),
                         ("pruned", {"color": "0.6", "marker": "x"})):
        points = [(position(t.options[key]), t.value) for t in scored
                  if t.state == state and key in t.options]
        if points:
            ax.scatter(*zip(*points, strict=True), label=state, s=22, **style)
    if best is not None and key in best.options:
        ax.scatter([position(best.options[key])], [best.value], marker="*", s=160,
                   color="tab:red", label=f"best (trial {best.number})", zorder=3)
    if categories is not None:
        ax.set_xticks(range(len(categories)), categories)
        ax.set_xlim(-0.5, len(categories) - 0.5)
    elif getattr(dim, "log", False):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # no overlapping minor labels
    ax.set_xlabel(SEARCHABLE[key].flag[2:])
    ax.set_ylabel("best validation accuracy")
    ax.grid(alpha=0.3)


def _history_figure(scored: list[TrialRecord]) -> Any:
    """Each trial's accuracy by number (grey: pruned) and the best so far."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.5, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ordered = sorted(scored, key=lambda t: t.number)
    ax.scatter([t.number for t in ordered], [t.value for t in ordered], s=22,
               c=["tab:blue" if t.state == "complete" else "0.6" for t in ordered],
               label="trial (grey: pruned)")
    so_far, steps = -math.inf, []
    for t in ordered:
        if t.state == "complete":
            so_far = max(so_far, t.value or -math.inf)
        steps.append(so_far if so_far > -math.inf else math.nan)
    ax.step([t.number for t in ordered], steps, where="post", color="tab:red",
            label="best so far")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("best validation accuracy")
    ax.set_title("optimization history")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig
