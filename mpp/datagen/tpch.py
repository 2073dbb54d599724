"""TPC-H: the eight tables of the benchmark, made by tpchgen-cli and written as Iceberg tables.

The rows come from `tpchgen-cli <https://github.com/clflushopt/tpchgen-rs>`_ (a Rust port of
the TPC's dbgen that produces the same data; the ``tpchgen-cli`` package on PyPI ships the
binary), so they are the data the TPC-H answers and every other engine's TPC-H run use.
Each table is cut into ``ceil(rows / fragment_rows)`` parts; one task per part runs the
generator for that part only (``--parts N --part i``: memory per task is one fragment),
converts it and writes it through mpp's own write path (:func:`mpp.catalog.write_fragment`),
so every table is an Iceberg table with full statistics (bounds, distinct estimates, top
values) and one commit per table. ``nation`` and ``region`` are one fragment each.

Conversion: DECIMAL columns (prices, quantities, discounts, taxes, balances) keep the
specification's DECIMAL(15, 2). ``string_view`` becomes VARCHAR; the generator's NOT NULL
flags are dropped (mpp's columns are nullable).
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from mpp.catalog import Catalog, WriteTarget, WrittenFragment, write_fragment
from mpp.catalog.external import PROP_DECLARED_TYPES
from mpp.catalog.files_source import storable_schema
from mpp.datagen import all_or_nothing
from mpp.errors import CatalogError, KnobError, StorageError
from mpp.execution.cluster import cancel_and_drain
from mpp.storage.base import StorageFormat

if TYPE_CHECKING:
    from distributed import Client

TABLES = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem")
# Rows per unit of scale factor (TPC-H specification, 4.2.5); nation and region are fixed.
# lineitem is about 6,000,000 per SF (1 to 7 lines per order): enough to size fragments.
ROWS_PER_SF = {"supplier": 10_000, "customer": 150_000, "part": 200_000, "partsupp": 800_000,
               "orders": 1_500_000, "lineitem": 6_000_000}
FIXED_ROWS = {"region": 5, "nation": 25}
DEFAULT_FRAGMENT_ROWS = 1_000_000
PROP_TPCH = "mpp.datagen-tpch"
# Columns whose most frequent values are kept (the skew-aware statistics of mpp's writes).
TOP_COLUMNS = {"lineitem": ("l_returnflag", "l_linestatus", "l_shipmode"),
               "orders": ("o_orderstatus", "o_orderpriority"), "customer": ("c_mktsegment",),
               "part": ("p_brand", "p_container"), "nation": (), "region": (), "supplier": (),
               "partsupp": ()}


@dataclass(frozen=True, slots=True)
class TpchSpec:
    """What ``mpp datagen --dataset tpch`` makes: the scale factor and the fragment size."""

    scale_factor: float = 1.0
    fragment_rows: int = DEFAULT_FRAGMENT_ROWS

    def validate(self) -> None:
        """KnobError for a scale factor or fragment size the generator cannot honour."""
        if not 0 < self.scale_factor <= 1000:
            raise KnobError(f"--scale-factor must be in (0, 1000], got {self.scale_factor}")
        if self.fragment_rows < 1000:
            raise KnobError(f"--fragment-rows must be >= 1,000, got {self.fragment_rows}")

    def parts(self, table: str) -> int:
        """Fragments of ``table``: its expected rows over ``fragment_rows``, at least one."""
        if table in FIXED_ROWS:
            return 1
        rows = ROWS_PER_SF[table] * self.scale_factor
        return max(1, math.ceil(rows / self.fragment_rows))

    def to_json(self) -> str:
        """The spec as the table property ``mpp.datagen-tpch``."""
        return json.dumps({"scale_factor": self.scale_factor,
                           "fragment_rows": self.fragment_rows})


def generator() -> str:
    """Path of the ``tpchgen-cli`` executable (beside this Python first, then on PATH)."""
    beside = Path(sys.executable).parent / "tpchgen-cli"
    found = str(beside) if beside.exists() else shutil.which("tpchgen-cli")
    if found is None:
        raise StorageError("the TPC-H generator tpchgen-cli is not installed: "
                           "pip install tpchgen-cli (it comes with mpp's [test] extra)")
    return found


def _run_generator(spec: TpchSpec, tables: list[str], part: int, parts: int,
                   out: str) -> None:
    cmd = [generator(), "parquet", "--scale-factor", repr(spec.scale_factor),
           "--tables", ",".join(tables), "--output-dir", out, "--num-threads", "1", "--quiet",
           "--no-progress"]
    if parts > 1:
        cmd += ["--parts", str(parts), "--part", str(part + 1)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StorageError(f"tpchgen-cli failed for {', '.join(tables)} part {part + 1} of "
                           f"{parts} (exit {done.returncode}): {done.stderr.strip()[:300]}", out)


def generate_parts(spec: TpchSpec, tables: Sequence[str], part: int) -> dict[str, pa.Table]:
    """Rows of fragment ``part`` (0-based) of each of ``tables`` (tables of as many parts),
    from one run of tpchgen-cli."""
    parts = spec.parts(tables[0])
    out = {}
    with tempfile.TemporaryDirectory(prefix="mpp-tpch-") as tmp:
        _run_generator(spec, list(tables), part, parts, tmp)
        for table in tables:
            files = sorted(Path(tmp).rglob(f"{table}.*parquet"))
            if len(files) != 1:
                raise StorageError(f"tpchgen-cli wrote {len(files)} files for {table} part "
                                   f"{part + 1} of {parts}, expected one", tmp)
            out[table] = pq.read_table(files[0])
    return out


@functools.lru_cache(maxsize=1)
def _schemas() -> dict[str, tuple[pa.Schema, dict[str, str]]]:
    """Every table's stored schema and the file types of columns stored otherwise, from
    one tiny run of the generator (its start-up, ~1 s of CPU, dominates small runs)."""
    with tempfile.TemporaryDirectory(prefix="mpp-tpch-") as tmp:
        _run_generator(TpchSpec(scale_factor=0.0001), list(TABLES), 0, 1, tmp)
        return {t: storable_schema(pq.read_schema(os.path.join(tmp, f"{t}.parquet")))
                for t in TABLES}


Job = tuple[tuple[str, ...], int]  # tables made by one generator run, and the part


def jobs(spec: TpchSpec) -> list[Job]:
    """The write tasks: one per part of each table cut into several fragments, and one for
    all single-fragment tables together (one generator start-up instead of several)."""
    single = tuple(t for t in TABLES if spec.parts(t) == 1)
    out: list[Job] = [(single, 0)] if single else []
    for table in TABLES:
        if spec.parts(table) > 1:
            out += [((table,), i) for i in range(spec.parts(table))]
    return out


Written = list[tuple[str, WrittenFragment]]  # what one task wrote: (table, fragment)


def _build_and_write(job: Job, *, targets: dict[str, WriteTarget], spec: TpchSpec) -> Written:
    """One task: generate one part of the job's tables and write each as a fragment."""
    tables, part = job
    made = generate_parts(spec, tables, part)
    return [(t, write_fragment(targets[t], part, made[t])) for t in tables]


def _run_here(fn: Callable[..., Written], todo: list[Job],
              **kw: Any) -> list[Written]:
    return [fn(job, **kw) for job in todo]


def generate_tpch(out: str | os.PathLike[str], spec: TpchSpec, *,
                  run: Callable[..., list[Written]] = _run_here) -> Catalog:
    """Generate the eight TPC-H tables into the warehouse ``out``; return its catalog.

    ``run(fn, jobs, targets=..., spec=...)`` maps the write tasks (:func:`dask_runner`: on a
    Dask cluster; default: one after another in this process). Each table is then committed
    once. A failure leaves none of the eight tables and no files.
    """
    spec.validate()
    catalog = Catalog.open(out, create=True)
    clash = sorted(set(TABLES) & set(catalog.tables()))
    if clash:
        raise CatalogError(f"{out} already holds table {clash[0]!r}; generate into a new --out")
    schemas = _schemas()  # before any write starts: the generator must be there
    targets = {t: catalog.begin_write(t, schemas[t][0], StorageFormat.PARQUET,
                                      top_columns=TOP_COLUMNS[t]) for t in TABLES}
    with all_or_nothing(catalog, targets) as committed:
        written: dict[str, list[WrittenFragment]] = {t: [] for t in TABLES}
        for result in run(_build_and_write, jobs(spec), targets=targets, spec=spec):
            for table, w in result:
                written[table].append(w)
        for table in TABLES:
            props = {PROP_TPCH: spec.to_json()}
            if schemas[table][1]:  # columns stored as another type (none: DECIMAL is kept)
                props[PROP_DECLARED_TYPES] = json.dumps(schemas[table][1])
            catalog.commit_write(targets[table], written[table], props)
            committed.append(table)
    return catalog


def dask_runner(client: Client) -> Callable[..., list[Written]]:
    """A ``run`` for :func:`generate_tpch` that maps the write tasks on ``client``'s cluster
    (keys ``tpch-<tables>-<part>-<token>``, so the dashboard shows what is being made)."""
    def run(fn: Callable[..., Written], todo: list[Job], **kw: Any
            ) -> list[Written]:
        token = uuid.uuid4().hex[:8]
        keys = [f"tpch-{'+'.join(tables)}-{part}-{token}" for tables, part in todo]
        futures = client.map(fn, todo, key=keys, **kw)
        try:
            return client.gather(futures)
        except BaseException:
            cancel_and_drain(client, futures)
            raise
    return run
