"""Every notebook runs top to bottom (nbclient, this interpreter's python3 kernel), is committed
without outputs, prints the dashboard link and shows bokeh plots."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def test_the_four_topics_are_there() -> None:
    assert {"01_mpp_basics.ipynb", "02_skew.ipynb", "03_storage_formats.ipynb",
            "04_joins.ipynb"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, name


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # the kernel inherits these: data cache and run folders go to the test's temp dir
    monkeypatch.setenv("MPP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPP_RUNS", str(tmp_path / "runs"))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute()
    except CellExecutionError as exc:  # the failing cell's traceback, not nbclient's
        pytest.fail(f"{name}: {exc}")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "dashboard: http" in text
    shown = json.dumps([o.get("data", {}) for o in outputs])
    assert "application/vnd.bokehjs_exec.v0+json" in shown  # bokeh plots were shown
    assert "cdn.bokeh.org" not in shown  # INLINE resources: offline
    assert sys.executable  # the kernel is this interpreter's (ipykernel in the test extra)
