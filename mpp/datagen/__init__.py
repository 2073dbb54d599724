"""The warehouse data generator: deterministic synthetic tables with skew knobs.

:func:`generate` writes access_log and its dimensions (users, sessions, urls) as parallel tasks
on a Dask cluster, one task per fragment: each task generates its fragment (a pure function of
the spec and its index, so memory per task is one fragment) and writes it through the storage
layer. Then each table is committed once. If anything fails, nothing stays registered and every
file written is removed. Each table records a content checksum and the spec that made it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

from distributed import Client, as_completed
from tqdm import tqdm

from mpp.catalog import Catalog, WriteTarget, WrittenFragment, write_fragment
from mpp.datagen.distributions import layout
from mpp.datagen.spec import TABLES, DatagenSpec, parse_table_formats
from mpp.datagen.tables import BUILDERS, PARTITION_BY, SCHEMAS, TOP_COLUMNS, fragment_count
from mpp.errors import CatalogError
from mpp.execution.cluster import cancel_and_drain
from mpp.storage.files import local_path, to_uri

__all__ = ["DatagenSpec", "all_or_nothing", "cancel_and_drain", "generate",
           "parse_table_formats"]

PROP_SPEC = "mpp.datagen-spec"


def _build_and_write(index: int, *, target: WriteTarget, spec: DatagenSpec) -> WrittenFragment:
    """One task: generate fragment ``index`` of ``target.table`` and write it."""
    return write_fragment(target, index, BUILDERS[target.table](spec, index))


@contextlib.contextmanager
def _client(client: Client | None) -> Iterator[Client]:
    if client is not None:
        yield client
        return
    from mpp.execution.cluster import Cluster

    with Cluster() as cluster:
        yield cluster.client


def _run(client: Client, spec: DatagenSpec, targets: dict[str, WriteTarget],
         progress: bool) -> dict[str, list[WrittenFragment]]:
    """Run every fragment task; return each table's written fragments."""
    futures = []
    owner: dict[str, str] = {}
    for table, target in targets.items():
        n = fragment_count(spec, table)
        keys = [f"datagen-{table}-{target.write_id}-{i}" for i in range(n)]
        futures += client.map(_build_and_write, range(n), key=keys, target=target, spec=spec)
        owner.update(dict.fromkeys(keys, table))
    out: dict[str, list[WrittenFragment]] = {t: [] for t in targets}
    try:
        with tqdm(total=len(futures), disable=not progress, desc="datagen",
                  unit="fragment", mininterval=0.5) as bar:
            for fut in as_completed(futures):
                out[owner[fut.key]].append(fut.result())
                fut.release()
                bar.update()
    except BaseException:
        cancel_and_drain(client, futures)
        raise
    return out


def generate(out: str | os.PathLike[str], spec: DatagenSpec, *, client: Client | None = None,
             progress: bool = True) -> Catalog:
    """Generate the warehouse described by ``spec`` into ``out``; return its catalog.

    Runs on ``client``'s cluster, or on a LocalCluster started (and stopped) for the purpose.
    Raises KnobError for bad knobs, StorageError for an unwritable ``out``, CatalogError if
    ``out`` already holds these tables. A failure leaves no table registered and no files.
    """
    spec.validate()
    layout(spec)  # knob combinations the layout cannot honour fail here, before any write
    path = local_path(to_uri(out))
    created = path is not None and not os.path.exists(path)
    catalog = Catalog.open(out, create=True)
    clash = sorted(set(TABLES) & set(catalog.tables()))
    if clash:
        raise CatalogError(f"{out} already holds table {clash[0]!r}; generate into a new --out")
    targets = {
        t: catalog.begin_write(t, SCHEMAS[t], spec.format_of(t),
                               partition_by=PARTITION_BY.get(t, ()), top_columns=TOP_COLUMNS[t],
                               dictionary_columns=TOP_COLUMNS[t])
        for t in TABLES
    }
    try:
        with all_or_nothing(catalog, targets) as committed, _client(client) as c:
            written = _run(c, spec, targets, progress)
            for t in TABLES:
                catalog.commit_write(targets[t], written[t], {PROP_SPEC: spec.to_json()})
                committed.append(t)
    except BaseException:
        if created and path is not None:
            shutil.rmtree(path, ignore_errors=True)
        raise
    return catalog


@contextlib.contextmanager
def all_or_nothing(catalog: Catalog, targets: dict[str, WriteTarget]) -> Iterator[list[str]]:
    """Several tables appear together or not at all: the block appends each table it commits
    to the yielded list; if it fails, every write not committed is aborted (its files
    removed) and every table committed is dropped, then the error goes on."""
    committed: list[str] = []
    try:
        yield committed
    except BaseException:
        for t, target in targets.items():
            if t not in committed:
                catalog.abort_write(target)
        for t in committed:
            catalog.drop_table(t)
        raise
