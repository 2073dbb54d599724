"""mpp: a Dask-based MPP warehouse simulator.

Real SQL is planned into explicit stages of partition tasks that run on a Dask cluster, measured
per task, and checked against DuckDB. Start with :func:`connect`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "connect", "run_scenario"]


def connect(warehouse: str, **kwargs: Any) -> Any:
    """Open a session on ``warehouse`` (see :func:`mpp.session.connect`)."""
    from mpp.session import connect as _connect

    return _connect(warehouse, **kwargs)


def run_scenario(scenario: Any, **kwargs: Any) -> Any:
    """Run a scenario file (or a validated Scenario) end to end and write its report (see
    :func:`mpp.scenario.runner.run_scenario`)."""
    from mpp.scenario.runner import run_scenario as _run

    return _run(scenario, **kwargs)
