"""The scenario spec: a TOML file validated into frozen dataclasses before anything runs.

A scenario names its data (generator knobs and a seed, or an existing warehouse), its cluster,
its variants (settings overrides by dotted name), its queries, repeats, what-if worker counts and
its checks. The file format is documented in docs/scenario-reference.md. Every problem in a file
is reported at once, each with the file, the key path and a hint, as one
:class:`~mpp.errors.ScenarioError`; a spec that loads is valid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpp import config, limits
from mpp.errors import MppError, ScenarioError, suggest
from mpp.execution.cluster import ClusterSpec, memory_limit_bytes
from mpp.metrics.whatif import DEFAULT_BANDWIDTH, WHATIF_WORKERS
from mpp.scenario.checks import QUERY_METRICS, Checks, Expectation, Op, parse_checks
from mpp.scenario.data import DATA_FORMATS, DataSpec, parse_data
from mpp.scenario.validate import Problems, flatten, join

__all__ = ["DATA_FORMATS", "DataSpec", "Scenario", "Variant", "Query", "Expectation", "Op",
           "Checks", "QUERY_METRICS", "WhatIf", "load_scenario", "parse_scenario", "data_spec_hash"]


@dataclass(frozen=True, slots=True)
class Variant:
    """One way of running the queries: a name and settings overrides (dotted names)."""

    name: str
    settings: tuple[tuple[str, Any], ...] = ()

    def settings_dict(self) -> dict[str, Any]:
        """The overrides as a dict, ready for ``Settings(...)`` or ``mpp.connect(settings=...)``."""
        return dict(self.settings)


@dataclass(frozen=True, slots=True)
class Query:
    """A named SQL query; ``file`` is where its text came from, if from a file, ``tpch``
    which of the package's TPC-H queries it is (``q01`` .. ``q22``), if one."""

    name: str
    sql: str
    file: str | None = None
    tpch: str | None = None


@dataclass(frozen=True, slots=True)
class WhatIf:
    """The what-if predictions a run reports (see :mod:`mpp.metrics.whatif`)."""

    workers: tuple[int, ...] = WHATIF_WORKERS
    bandwidth_bytes_per_s: float = DEFAULT_BANDWIDTH
    task_overhead_s: float = 0.0  # added to every task (on top of the measured overhead)
    measured_overheads: bool = True  # add the run's own per-task and per-query overheads
    # The named warehouse ([warehouse]): its nodes are replayed with its threads per node.
    warehouse_nodes: int | None = None
    warehouse_threads: int = 1


@dataclass(frozen=True, slots=True)
class WarehouseSize:
    """``[warehouse]``: the warehouse a scenario simulates. Its plans are made for this size
    (``planning.workers`` / ``planning.threads_per_worker`` in every variant that does not set
    them), executed on the local cluster, and replayed on ``nodes`` x ``threads_per_node``
    with the network's bandwidth."""

    nodes: int
    threads_per_node: int = 1
    network_gbit: float = DEFAULT_BANDWIDTH * 8 / 1e9

    @property
    def bandwidth_bytes_per_s(self) -> float:
        """The network's bandwidth in bytes per second (Gbit/s x 10^9 / 8)."""
        return self.network_gbit * 1e9 / 8

    def settings(self) -> tuple[tuple[str, Any], ...]:
        """The planning settings that make plans for this size."""
        return (("planning.workers", self.nodes),
                ("planning.threads_per_worker", self.threads_per_node))


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario file."""

    name: str
    description: str
    source: str  # the file it came from ("<string>" when parsed from a mapping)
    data: DataSpec
    cluster: ClusterSpec
    variants: tuple[Variant, ...]
    queries: tuple[Query, ...]
    repeats: int = 1
    checks: Checks = Checks()
    # Untimed runs of each variant x query before its repeats (a fresh worker process pays
    # warm-up costs, e.g. its memory pool growing, in its first queries).
    warmup: int = 0
    whatif: WhatIf = WhatIf()
    scale: float = 1.0
    ingest: Any = None  # mpp.ingest.pipeline.IngestSpec: the [ingest] section, if any
    warehouse: WarehouseSize | None = None  # [warehouse]: the simulated warehouse, if named
    mart: Any = None  # mpp.mart.spec.MartSpec: the [mart] section, if any

    def to_dict(self) -> dict[str, Any]:
        """The spec as a TOML-shaped dict: :func:`parse_scenario` of it (with the same base
        folder) gives this scenario back, its data already scaled."""
        return _to_dict(self)

    def data_hash(self) -> str:
        """:func:`data_spec_hash` of this scenario's data section."""
        return data_spec_hash(self.data)


def data_spec_hash(data: DataSpec) -> str:
    """A stable hash of the data section (after scaling): the data cache's key.

    Same knobs and seed => same hash, whatever the key order in the file; any knob change
    changes it. A format version is mixed in so a generator change can invalidate caches, and
    the warehouse layout version (2: per-fragment distinct counts in the catalog statistics;
    3: 131,072-row Parquet row groups) so cached warehouses are what the code writes today.
    """
    from mpp.datagen.spec import GENERATOR_VERSION

    fields = dataclasses.asdict(data)
    if data.tpch:  # only its own knobs; access_log's hash stays what it was before TPC-H
        fields = data.knobs()
    else:
        for key in ("dataset", "scale_factor", "fragment_rows"):
            fields.pop(key)
    payload = json.dumps({"v": 3, "generator": GENERATOR_VERSION, **fields},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def load_scenario(path: str | Path, *, scale: float = 1.0) -> Scenario:
    """Read and validate a scenario file; ``scale`` multiplies the generated row count."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError("no such scenario file", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read: {exc}", file=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"not valid TOML: {exc}", file=str(path)) from None
    return parse_scenario(raw, source=str(path), base_dir=path.parent,
                          default_name=path.stem, scale=scale)


_TOP_KEYS = ("name", "description", "repeats", "warmup", "data", "cluster", "variants", "queries",
             "checks", "whatif", "ingest", "mart", "warehouse")


def parse_scenario(raw: Mapping[str, Any], *, source: str = "<string>",
                   base_dir: Path | None = None, default_name: str = "scenario",
                   scale: float = 1.0) -> Scenario:
    """Validate a parsed TOML document into a :class:`Scenario` (raises ScenarioError).

    Relative paths (query files, a warehouse) are resolved against ``base_dir`` (the scenario
    file's folder; the working directory by default).
    """
    base_dir = base_dir or Path.cwd()
    p = Problems(source)
    if limits.SCALE.problem(scale):
        p.add("--scale", f"{limits.SCALE.problem(scale)}.")
        p.raise_if_any()
    p.unknown_keys(raw, _TOP_KEYS, "")
    repeats = p.get(raw, "repeats", int, "", default=1)
    if limits.REPEATS.problem(repeats):
        p.add("repeats", f"{limits.REPEATS.problem(repeats)}.")
        repeats = 1
    warmup = p.get(raw, "warmup", int, "", default=0)
    if limits.WARMUP.problem(warmup):
        p.add("warmup", f"{limits.WARMUP.problem(warmup)}.")
        warmup = 0
    data = parse_data(p, p.table(raw, "data", "", required=True), scale, base_dir)
    cluster = _parse_cluster(p, p.table(raw, "cluster", ""))
    variants = _parse_variants(p, raw)
    queries = _parse_queries(p, raw, base_dir)
    checks = parse_checks(p, p.table(raw, "checks", ""), [v.name for v in variants],
                          [q.name for q in queries])
    whatif, warehouse = _whatif_and_warehouse(p, raw)
    if warehouse is not None:
        # A variant's own planning.* settings win over the named warehouse's.
        variants = tuple(Variant(v.name, tuple(sorted(
            (dict(warehouse.settings()) | dict(v.settings)).items()))) for v in variants)
    ingest = None
    if "ingest" in raw:
        from mpp.ingest.pipeline import parse_ingest

        ingest = parse_ingest(p, p.table(raw, "ingest", ""), scale=scale)
    mart = None
    if "mart" in raw:
        from mpp.mart.spec import parse_mart

        mart = parse_mart(p, p.table(raw, "mart", ""), days=data.days)
        if data.format != "csv" or not data.generated or data.tpch:
            p.add("data.format", "the [mart] pipeline loads the generated access_log as raw "
                  "CSV files (one per day).", 'Write format = "csv" in [data].')
    p.raise_if_any()
    return Scenario(
        name=p.get(raw, "name", str, "", default=default_name),
        description=p.get(raw, "description", str, "", default=""),
        source=source, data=data, cluster=cluster, variants=variants, queries=queries,
        repeats=repeats, warmup=warmup, checks=checks, whatif=whatif, scale=float(scale), ingest=ingest,
        mart=mart, warehouse=warehouse,
    )


def _parse_cluster(p: Problems, t: dict[str, Any]) -> ClusterSpec:
    """``[cluster]``: a LocalCluster's shape, or an existing scheduler's address."""
    p.unknown_keys(t, ("workers", "threads", "memory_limit", "scheduler", "dashboard_address"),
                   "cluster")
    scheduler = p.get(t, "scheduler", str, "cluster", default=None)
    if scheduler is not None:
        for key in ("workers", "threads", "memory_limit"):
            if key in t:
                p.add(join("cluster", key), "only applies to a local cluster, not with scheduler.",
                      "The scheduler's cluster has its own shape.")
    spec = ClusterSpec()
    shape = {"workers": (spec.workers, limits.WORKERS),
             "threads": (spec.threads_per_worker, limits.THREADS)}
    value: dict[str, Any] = {}
    for key, (default, limit) in shape.items():
        value[key] = p.get(t, key, int, "cluster", default=default)
        if limit.problem(value[key]):
            p.add(join("cluster", key), f"{limit.problem(value[key])}.")
            value[key] = default
    memory_limit = p.get(t, "memory_limit", str, "cluster", default=spec.memory_limit)
    try:
        memory_limit_bytes(memory_limit)  # units and a workable size; the machine: at start
    except ValueError as exc:
        p.add("cluster.memory_limit", f"{exc}.")
        memory_limit = spec.memory_limit
    return ClusterSpec(
        scheduler=scheduler, workers=value["workers"], threads_per_worker=value["threads"],
        memory_limit=memory_limit,
        dashboard_address=p.get(t, "dashboard_address", str, "cluster",
                                default=spec.dashboard_address),
    )


def _parse_settings(p: Problems, t: dict[str, Any], path: str) -> tuple[tuple[str, Any], ...]:
    """A variant's settings: dotted names from the registry, values converted to their types."""
    out: list[tuple[str, Any]] = []
    for name, value in flatten(t).items():
        where = join(path, name)
        if name not in config.SETTINGS:
            p.add(where, "unknown setting.",
                  suggest(name, config.SETTINGS) or "`mpp settings` lists them.")
            continue
        setting = config.SETTINGS[name]
        try:
            out.append((name, setting.convert(value)))
        except MppError as exc:
            p.add(where, f"{exc}.", f"Default: {setting.default!r}.")
    return tuple(sorted(out))


def _parse_variants(p: Problems, raw: Mapping[str, Any]) -> tuple[Variant, ...]:
    """``[[variants]]``; none means one variant called "default" with no overrides."""
    variants: list[Variant] = []
    for where, t in p.tables(raw, "variants", ""):
        p.unknown_keys(t, ("name", "settings"), where)
        name = p.get(t, "name", str, where)
        settings = _parse_settings(p, p.table(t, "settings", where), join(where, "settings"))
        if isinstance(name, str):
            if any(v.name == name for v in variants):
                p.add(join(where, "name"), f"duplicate variant name {name!r}.")
            variants.append(Variant(name, settings))
    return tuple(variants) or (Variant("default"),)


def _parse_queries(p: Problems, raw: Mapping[str, Any], base_dir: Path) -> tuple[Query, ...]:
    """``[[queries]]``: each a name and one of ``sql``, a ``file`` (relative to the spec) or
    ``tpch``, the name of one of the TPC-H queries shipped with mpp (``q01`` .. ``q22``)."""
    queries: list[Query] = []
    if "queries" not in raw:
        p.add("queries", "missing: a scenario needs at least one [[queries]] table.",
              'Add [[queries]] with name = "..." and sql = "SELECT ...".')
    for where, t in p.tables(raw, "queries", ""):
        p.unknown_keys(t, ("name", "sql", "file", "tpch"), where)
        name = p.get(t, "name", str, where)
        sql = p.get(t, "sql", str, where, default=None)
        file = p.get(t, "file", str, where, default=None)
        tpch = p.get(t, "tpch", str, where, default=None)
        given = [k for k, v in (("sql", sql), ("file", file), ("tpch", tpch)) if v is not None]
        if len(given) != 1:
            p.add(where, "needs exactly one of sql, file or tpch.")
            continue
        if file is not None:
            sql = _read_query_file(p, base_dir / file, join(where, "file"))
        if tpch is not None:
            sql = _tpch_query(p, tpch, join(where, "tpch"))
        if sql is not None and _sql_ok(p, sql, join(where, given[0])):
            if any(q.name == name for q in queries):
                p.add(join(where, "name"), f"duplicate query name {name!r}.")
            if isinstance(name, str):
                queries.append(Query(name, sql.strip(), file, tpch))
    return tuple(queries)


def _tpch_query(p: Problems, name: str, where: str) -> str | None:
    """The text of the TPC-H query ``name`` shipped with mpp, or None (a problem added)."""
    from mpp.datagen.tpch_queries import load_queries

    texts = load_queries()
    if name not in texts:
        p.add(where, f"no TPC-H query {name!r}.", f"Use one of {', '.join(texts)}.")
        return None
    return texts[name]


def _read_query_file(p: Problems, path: Path, where: str) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        p.add(where, f"cannot read {str(path)!r}: {exc.__class__.__name__}.",
              "Paths are relative to the scenario file.")
        return None


def _sql_ok(p: Problems, sql: str, where: str) -> bool:
    """Syntax-check the SQL (Trino dialect) now, so a typo fails before any data is made."""
    import sqlglot
    from sqlglot.errors import ParseError

    if not sql.strip():
        p.add(where, "empty SQL.")
        return False
    try:
        sqlglot.parse(sql, read="trino")
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        at = f" (line {first.get('line')}, column {first.get('col')})" if first else ""
        # sqlglot's description embeds a Token repr; keep just the token's text.
        text = re.sub(r"<Token token_type: [^,]+, text: ([^,]*),[^>]*>", r"'\1'",
                      str(first.get("description", exc)))
        p.add(where, f"SQL does not parse{at}: {text}.")
        return False
    return True


def _parse_warehouse(p: Problems, t: dict[str, Any]) -> WarehouseSize | None:
    """``[warehouse]``: nodes, threads_per_node, network_gbit of the simulated warehouse."""
    p.unknown_keys(t, ("nodes", "threads_per_node", "network_gbit"), "warehouse")
    nodes = p.get(t, "nodes", int, "warehouse", default=None)
    if nodes is None:
        p.add("warehouse.nodes", "is required: how many nodes the simulated warehouse has.",
              "Write e.g. nodes = 128.")
        return None
    if limits.WHATIF_WORKERS.problem(nodes):
        p.add("warehouse.nodes", f"{limits.WHATIF_WORKERS.problem(nodes)}.")
        return None
    threads = p.get(t, "threads_per_node", int, "warehouse", default=1)
    if not 1 <= threads <= 1024:
        p.add("warehouse.threads_per_node", f"must be 1 to 1,024, got {threads}.")
        return None
    gbit = p.get(t, "network_gbit", float, "warehouse", default=WarehouseSize(1).network_gbit)
    if not (math.isfinite(gbit) and gbit > 0):
        p.add("warehouse.network_gbit", f"must be a finite number > 0, got {gbit:g}.")
        return None
    return WarehouseSize(nodes, threads, float(gbit))


def parse_whatif(raw: Mapping[str, Any], *, source: str = "<string>") -> WhatIf:
    """The what-if predictions a scenario's ``[whatif]`` and ``[warehouse]`` ask for (of a
    TOML-shaped dict: a scenario file's, or a saved report's ``spec``)."""
    p = Problems(source)
    whatif, _ = _whatif_and_warehouse(p, raw)
    p.raise_if_any()
    return whatif


def _whatif_and_warehouse(p: Problems, raw: Mapping[str, Any]
                          ) -> tuple[WhatIf, WarehouseSize | None]:
    """``[whatif]``, with the named ``[warehouse]``'s nodes, threads and network in it."""
    whatif = _parse_whatif(p, p.table(raw, "whatif", ""))
    warehouse = _parse_warehouse(p, p.table(raw, "warehouse", "")) if "warehouse" in raw else None
    if warehouse is not None:
        whatif = dataclasses.replace(whatif, workers=tuple(sorted({*whatif.workers, warehouse.nodes})),
                                     bandwidth_bytes_per_s=warehouse.bandwidth_bytes_per_s,
                                     warehouse_nodes=warehouse.nodes,
                                     warehouse_threads=warehouse.threads_per_node)
    return whatif, warehouse


def _parse_whatif(p: Problems, t: dict[str, Any]) -> WhatIf:
    """``[whatif]``: worker counts to predict at, network bandwidth, per-task overhead."""
    p.unknown_keys(t, ("workers", "bandwidth_bytes_per_s", "task_overhead_s",
                       "measured_overheads"), "whatif")
    d = WhatIf()
    workers = p.get(t, "workers", list, "whatif", default=list(d.workers))
    if not workers or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1
                               for w in workers):
        p.add("whatif.workers", f"expected a non-empty array of positive integers, got {workers!r}.")
        workers = list(d.workers)
    for i, w in enumerate(workers):
        if limits.WHATIF_WORKERS.problem(w):
            p.add(join("whatif.workers", i), f"{limits.WHATIF_WORKERS.problem(w)}.")
    bandwidth = p.get(t, "bandwidth_bytes_per_s", float, "whatif", default=d.bandwidth_bytes_per_s)
    if not 0 < bandwidth < math.inf:
        p.add("whatif.bandwidth_bytes_per_s", f"must be a finite number > 0, got {bandwidth:g}.")
    overhead = p.get(t, "task_overhead_s", float, "whatif", default=d.task_overhead_s)
    if not 0 <= overhead < math.inf:
        p.add("whatif.task_overhead_s", f"must be a finite number >= 0, got {overhead:g}.")
    measured = p.get(t, "measured_overheads", bool, "whatif", default=d.measured_overheads)
    return WhatIf(tuple(workers), float(bandwidth), float(overhead), measured)


def _to_dict(sc: Scenario) -> dict[str, Any]:
    """The TOML-shaped dict of a scenario (for report.json and round trips)."""
    cluster: dict[str, Any] = (
        {"scheduler": sc.cluster.scheduler} if sc.cluster.scheduler else
        {"workers": sc.cluster.workers, "threads": sc.cluster.threads_per_worker}
        | ({"memory_limit": sc.cluster.memory_limit} if sc.cluster.memory_limit else {}))
    if sc.cluster.dashboard_address is not None:
        cluster["dashboard_address"] = sc.cluster.dashboard_address
    expect = [{k: (v.value if isinstance(v, Op) else v)
               for k, v in dataclasses.asdict(e).items() if v is not None}
              for e in sc.checks.expect]
    return {
        "name": sc.name, "description": sc.description, "repeats": sc.repeats,
        **({"warmup": sc.warmup} if sc.warmup else {}),
        "data": sc.data.to_dict(), "cluster": cluster,
        "variants": [{"name": v.name, "settings": v.settings_dict()} for v in sc.variants],
        "queries": [{"name": q.name, **({"file": q.file} if q.file else
                                        {"tpch": q.tpch} if q.tpch else {"sql": q.sql})}
                    for q in sc.queries],
        "checks": {"oracle": sc.checks.oracle, "expect": expect},
        "whatif": {"workers": list(sc.whatif.workers),
                   "bandwidth_bytes_per_s": sc.whatif.bandwidth_bytes_per_s,
                   "task_overhead_s": sc.whatif.task_overhead_s,
                   "measured_overheads": sc.whatif.measured_overheads},
    } | ({"ingest": sc.ingest.to_dict()} if sc.ingest is not None else {}) \
      | ({"mart": sc.mart.to_dict()} if sc.mart is not None else {}) \
      | ({"warehouse": {"nodes": sc.warehouse.nodes,
                        "threads_per_node": sc.warehouse.threads_per_node,
                        "network_gbit": sc.warehouse.network_gbit}}
         if sc.warehouse is not None else {})
