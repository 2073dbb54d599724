"""A scenario's warehouse: generated once per data spec and cached by its hash, or given.

Generated data lives under ``<cache>/<data hash>/`` (default cache: ``~/.cache/mpp/warehouses``,
or ``$MPP_CACHE``). A marker file, written only after every table (and every copy) has been
committed, says the warehouse is complete; a folder without it is what an interrupted run left
behind, and is deleted and generated again. Iceberg metadata records absolute file paths, so a
cache folder that was copied or moved is relocated (``mpp catalog relocate``) when reused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from distributed import Client, as_completed
from tqdm import tqdm

from mpp.catalog import PROP_CHECKSUM, Catalog, WriteTarget, WrittenFragment, write_fragment
from mpp.catalog.relocate import relocate
from mpp.datagen import DatagenSpec, generate
from mpp.datagen.tables import BUILDERS, PARTITION_BY, SCHEMAS, TOP_COLUMNS, fragment_count
from mpp.datagen.tpch import TpchSpec, dask_runner, generate_tpch
from mpp.errors import KnobError, ScenarioError
from mpp.execution.cluster import cancel_and_drain
from mpp.scenario.data import DataSpec
from mpp.scenario.spec import data_spec_hash
from mpp.storage.base import StorageFormat

MARKER = "mpp-warehouse.json"
COPY_PROP = "mpp.copy-of"


@dataclass(frozen=True, slots=True)
class Warehouse:
    """A ready warehouse: where it is, the hash of the spec that made it, its content checksum."""

    path: Path
    data_hash: str
    checksum: str
    reused: bool


def default_cache() -> Path:
    """``$MPP_CACHE`` or ``~/.cache/mpp/warehouses``."""
    env = os.environ.get("MPP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "mpp" / "warehouses"


def datagen_spec(data: DataSpec, source: str = "<scenario>") -> DatagenSpec | TpchSpec:
    """The generator's spec for a scenario's ``[data]`` (access_log's or TPC-H's); a bad
    combination is a ScenarioError."""
    try:
        if data.tpch:
            spec = TpchSpec(data.scale_factor, data.fragment_rows)
            spec.validate()
            return spec
        return DatagenSpec(
            rows=data.rows, partitions=data.partitions, seed=data.seed, days=data.days,
            start_date=dt.date.fromisoformat(data.start), users=data.users, zipf=data.zipf,
            hot_day=data.hot_day, hot_share=data.hot_share, format=StorageFormat(data.format),
            table_formats=tuple((t, StorageFormat(f)) for t, f in data.table_formats),
        )
    except KnobError as exc:
        # e.g. --scale left fewer fragments than days: say which file and section
        raise ScenarioError(f"data: {exc}", file=source) from None


def checksum(catalog: Catalog) -> str:
    """One checksum over every table's content checksum (name order): same data, same value."""
    h = hashlib.sha256()
    for name in catalog.tables():
        h.update(f"{name}={catalog.properties(name).get(PROP_CHECKSUM, '?')};".encode())
    return "sha256:" + h.hexdigest()[:32]


def prepare(data: DataSpec, client: Client, *, cache: str | os.PathLike[str] | None = None,
            source: str = "<scenario>", progress: bool = True) -> Warehouse:
    """The warehouse of ``data``: the given one, the cached one, or newly generated (cached)."""
    if not data.generated:
        assert data.warehouse is not None
        cat = Catalog.open(data.warehouse)
        return Warehouse(Path(data.warehouse), data_spec_hash(data), checksum(cat), True)
    spec = datagen_spec(data, source)
    key = data_spec_hash(data)
    path = Path(cache or default_cache()).expanduser() / key
    marker = path / MARKER
    if marker.exists():
        relocate(path)  # a copied or moved cache: make it use its own files (else a no-op)
        return Warehouse(path, key, json.loads(marker.read_text())["checksum"], True)
    if path.exists():  # an interrupted generation: never reuse half a warehouse
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if isinstance(spec, TpchSpec):
            cat = generate_tpch(path, spec, run=dask_runner(client))
        else:
            cat = generate(path, spec, client=client, progress=progress)
        for fmt in data.copies:
            write_copy(cat, spec, StorageFormat(fmt), client, progress=progress)
        total = checksum(cat)
        marker.write_text(json.dumps({"hash": key, "checksum": total, "data": data.to_dict()},
                                     indent=1, default=str))
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return Warehouse(path, key, total, False)


def write_copy(catalog: Catalog, spec: DatagenSpec, fmt: StorageFormat, client: Client, *,
               progress: bool = True) -> str:
    """Write access_log again as ``access_log_<fmt>``: the same rows, fragments and partitions.

    The generator is deterministic, so each task rebuilds its fragment instead of reading
    the first copy; the new table is published by one commit (or not at all).
    """
    name = f"access_log_{fmt.value}"
    target = catalog.begin_write(name, SCHEMAS["access_log"], fmt,
                                 partition_by=PARTITION_BY["access_log"],
                                 top_columns=TOP_COLUMNS["access_log"])
    n = fragment_count(spec, "access_log")
    futures = client.map(_copy_fragment, range(n), target=target, spec=spec,
                         key=[f"datagen-{name}-{target.write_id}-{i}" for i in range(n)])
    written: list[WrittenFragment] = []
    try:
        with tqdm(total=n, disable=not progress, desc=name, unit="fragment",
                  mininterval=0.5) as bar:
            for fut in as_completed(futures):
                written.append(fut.result())
                fut.release()
                bar.update()
    except BaseException:
        cancel_and_drain(client, futures)  # no task may write after the clean-up
        catalog.abort_write(target)
        raise
    catalog.commit_write(target, written, {COPY_PROP: "access_log"})
    return name


def _copy_fragment(index: int, *, target: WriteTarget, spec: DatagenSpec) -> WrittenFragment:
    """One task: rebuild access_log fragment ``index`` and write it in the copy's format."""
    return write_fragment(target, index, BUILDERS["access_log"](spec, index))
