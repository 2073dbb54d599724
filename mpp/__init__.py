"""mpp: a Dask-based MPP warehouse simulator.

Real SQL is planned into explicit stages of partition tasks that run on a Dask cluster, measured
per task, and checked against DuckDB. Start with :func:`connect`.

The public names (``Session``, ``Result``, ``ClusterSpec``, ``MppError``, ...) and the
subpackages (``mpp.session``, ``mpp.config``, ...) load on first use, so ``import mpp`` stays
cheap (no Dask or pyarrow until a name needs them).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mpp.config import Settings
    from mpp.errors import ClusterError, ClusterFaultError, MppError, SettingError, SqlError
    from mpp.execution.cluster import Cluster, ClusterSpec
    from mpp.session import Result, Session

__version__ = "0.1.0"

# Public names defined in submodules: name -> module. Resolved lazily by __getattr__.
_LAZY = {
    "Session": "mpp.session",
    "Result": "mpp.session",
    "Cluster": "mpp.execution.cluster",
    "ClusterSpec": "mpp.execution.cluster",
    "ClusterError": "mpp.errors",
    "ClusterFaultError": "mpp.errors",
    "Settings": "mpp.config",
    "MppError": "mpp.errors",
    "SqlError": "mpp.errors",
    "SettingError": "mpp.errors",
}

__all__ = ["Cluster", "ClusterError", "ClusterFaultError", "ClusterSpec", "MppError", "Result",
           "Session", "SettingError", "Settings", "SqlError", "__version__", "connect",
           "default_cluster", "run_scenario"]


def connect(warehouse: str | os.PathLike[str], **kwargs: Any) -> Session:
    """Open a session on ``warehouse`` (see :func:`mpp.session.connect`)."""
    from mpp.session import connect as _connect

    return _connect(warehouse, **kwargs)


def default_cluster(spec: ClusterSpec | None = None) -> Cluster:
    """The running ``mpp cluster`` if there is one, else a new LocalCluster of ``spec``'s shape
    (see :func:`mpp.session.default_cluster`)."""
    from mpp.session import default_cluster as _default

    return _default(spec)


def run_scenario(scenario: Any, **kwargs: Any) -> Any:
    """Run a scenario file (or a validated Scenario) end to end and write its report (see
    :func:`mpp.scenario.runner.run_scenario`)."""
    from mpp.scenario.runner import run_scenario as _run

    return _run(scenario, **kwargs)


def __getattr__(name: str) -> Any:
    """Load a public name (``mpp.ClusterSpec``) or a subpackage (``mpp.session``) on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name.startswith("__"):  # dunder probes (copy, pickle, doctest) are not submodules
        raise AttributeError(f"module 'mpp' has no attribute {name!r}")
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise  # the submodule exists but an import inside it failed
        raise AttributeError(f"module 'mpp' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
