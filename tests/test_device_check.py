"""The device check's bookkeeping: time boxes, reports that survive failures, parsing.

The whole pipeline runs on the CPU in the nox session ``device_check`` (--dry-run);
these tests check the parts that decide what the report says.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "device_check.py"


@pytest.fixture(scope="module")
def dc():
    spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["device_check"] = module
    spec.loader.exec_module(module)
    return module


def test_pytest_counts_reads_the_closing_line(dc):
    output = "....F\nFAILED tests/x.py::t\n3 passed, 1 failed, 2 skipped in 4.20s\n"
    assert dc.pytest_counts(output) == "3 passed, 1 failed, 2 skipped"
    assert dc.pytest_counts("ERROR: usage: pytest [options]\n") == ""


def test_a_part_that_runs_out_of_time_is_stopped_and_reported(dc, tmp_path):
    report = dc.Report(tmp_path, budget_s=60, dry_run=True)
    part, _ = dc.run_command(report, "sleeper",
                             [sys.executable, "-c", "import time; print('hi'); time.sleep(30)"],
                             box_s=1.5, env=dc.child_env(None))
    report.add(part)
    assert part.status == "timed out" and part.seconds < 10
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["parts"][0]["status"] == "timed out"
    assert "| sleeper | timed out |" in (tmp_path / "report.md").read_text()


def test_a_failing_part_keeps_its_output_and_the_report_goes_on(dc, tmp_path):
    report = dc.Report(tmp_path, budget_s=60, dry_run=True)
    part, _ = dc.run_command(report, "broken", [sys.executable, "-c", "raise SystemExit(3)"],
                             box_s=30, env=dc.child_env(None))
    report.add(part)
    ok, _ = dc.run_command(report, "fine", [sys.executable, "-c", "print(1)"], box_s=30,
                           env=dc.child_env(None))
    report.add(ok)
    assert (part.status, part.summary, ok.status) == ("failed", "exit 3", "ok")
    assert [p["name"] for p in json.loads((tmp_path / "report.json").read_text())["parts"]] \
        == ["broken", "fine"]


def test_nothing_starts_once_the_budget_is_spent(dc, tmp_path):
    report = dc.Report(tmp_path, budget_s=2, dry_run=True)
    report.start -= 10  # the budget is gone
    part, _ = dc.run_command(report, "late", [sys.executable, "-c", "print(1)"], box_s=30,
                             env=dc.child_env(None))
    assert part.status == "not run" and "no time left" in part.summary


def test_bench_figures_give_ratios_to_pytorch_on_the_same_device(dc):
    data = {"summary_step_ms": {
        "fc-a:xpnet-cupy": {"step_ms": {"min": 2.0, "median": 2.5}},
        "fc-a:torch-cuda": {"step_ms": {"min": 4.0, "median": 4.0}},
        "fc-a:xpnet-torch-cuda": {"error": "CUDA error: out of memory"}}}
    figures = dc.bench_figures(data, "torch-cuda")
    assert figures["fc-a:xpnet-cupy ms/step"] == "min 2, median 2.5; 0.50x torch-cuda"
    assert figures["fc-a:torch-cuda ms/step"] == "min 4, median 4"
    assert figures["fc-a:xpnet-torch-cuda ms/step"].startswith("error: CUDA error")
