"""The notebooks in notebooks/ are committed without outputs.

Outputs depend on the machine and the backend, bloat the repository and make every
diff noisy; ``nox -s notebooks`` executes the notebooks instead. This is a plain JSON
check: it needs neither Jupyter nor a kernel.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = {"FullyConnectedNets.ipynb", "BatchNormalization.ipynb", "Dropout.ipynb",
            "ConvolutionalNetworks.ipynb"}
HOW_TO_CLEAN = (
    "clear them before committing: in Jupyter 'Edit > Clear Outputs of All Cells' and save, "
    "or run `jupyter nbconvert --clear-output --inplace notebooks/*.ipynb`"
)


def test_the_course_notebooks_are_there() -> None:
    missing = EXPECTED - {p.name for p in NOTEBOOKS}
    assert not missing, f"missing from {NOTEBOOK_DIR}: {', '.join(sorted(missing))}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb.get("nbformat") == 4, f"{path.name}: not an nbformat 4 notebook"
    problems = []
    for number, cell in enumerate(nb.get("cells", []), start=1):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {number} has outputs")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {number} has execution count {cell['execution_count']}")
        if "execution" in cell.get("metadata", {}):
            problems.append(f"cell {number} has execution timings in its metadata")
    assert not problems, f"{path.name}: {'; '.join(problems)}; {HOW_TO_CLEAN}"
