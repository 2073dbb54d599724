"""Fault injection: seeded bit flips in every kind of file a table is made of.

One small warehouse is generated; each trial flips one bit of one file of one kind (data page,
Parquet footer, manifest, manifest list, metadata.json), runs a few queries through a fresh
session, and restores the file. Every outcome must be DuckDB's answer over the undamaged
warehouse or an MppError whose text names the damaged file: never a silently wrong answer,
never a library traceback. What the formats cannot detect is listed in docs/integrity.md; the
flips that land there must still give the right answer.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyiceberg.manifest import clear_manifest_cache

import mpp
from mpp.catalog import Catalog
from mpp.datagen import DatagenSpec, generate
from mpp.errors import MppError
from mpp.oracle import run_oracle
from tests.compare import assert_same_result

SPEC = DatagenSpec(rows=3_000, partitions=6, days=3, hot_day=1, users=100, sessions=200, urls=40)
QUERIES = [
    "SELECT count(*) FROM access_log",
    "SELECT count(*) FROM access_log WHERE time >= TIMESTAMP '2017-01-02 06:00:00' "
    "AND time < TIMESTAMP '2017-01-03 00:00:00'",
    "SELECT date, status, count(*) c, sum(bytes) b FROM access_log GROUP BY date, status",
    "SELECT count(*), sum(bytes) FROM access_log WHERE user_id < 20 AND status = 200",
]
KINDS = ["data page", "footer", "manifest", "manifest list", "metadata"]
TRIALS = 30  # per kind: ~7 s each on 2 cores


@pytest.fixture(scope="module")
def warehouse(cluster, tmp_path_factory) -> tuple[Path, list[object]]:
    """The warehouse and DuckDB's answer to every query over its undamaged files."""
    path = tmp_path_factory.mktemp("corrupt") / "w"
    generate(path, SPEC, client=cluster.client, progress=False)
    catalog = Catalog.open(path)
    return path, [run_oracle(sql, catalog) for sql in QUERIES]


def _data_files(root: Path) -> list[Path]:
    return sorted((root / "access_log" / "data").rglob("*.parquet"))


def _region(kind: str, root: Path, rng: random.Random) -> tuple[Path, int, int]:
    """A file of ``kind`` and the byte range [start, end) of it that the flip may hit."""
    meta = root / "access_log" / "metadata"
    if kind in ("data page", "footer"):
        path = rng.choice(_data_files(root))
        size = path.stat().st_size
        md = pq.read_metadata(path)
        if kind == "footer":  # the Thrift footer: before its 4-byte length and "PAR1"
            footer = int.from_bytes(path.read_bytes()[-8:-4], "little")
            return path, size - 8 - footer, size - 8
        col = md.row_group(0).column(rng.randrange(md.num_columns))
        start = col.dictionary_page_offset or col.data_page_offset
        return path, start, start + col.total_compressed_size
    pattern = {"manifest": "*-m*.avro", "manifest list": "snap-*.avro",
               "metadata": "*.metadata.json"}[kind]
    path = rng.choice(sorted(meta.glob(pattern)))
    return path, 0, path.stat().st_size


def _outcome(session: mpp.Session, sql: str, expected: object, damaged: Path) -> str:
    """'right' or 'error'; raises AssertionError on a wrong answer or an unnamed error."""
    try:
        actual = session.sql(sql).to_arrow()
    except MppError as exc:
        assert damaged.name in str(exc), f"error does not name {damaged.name}: {exc}"
        return "error"
    assert_same_result(actual, expected, sql)
    return "right"


@pytest.mark.parametrize("kind", KINDS)
def test_a_flipped_bit_gives_the_right_answer_or_names_the_file(warehouse, cluster, kind):
    root, expected = warehouse
    rng = random.Random(f"corrupt-{kind}")
    outcomes: Counter[str] = Counter()
    failures = []
    for trial in range(TRIALS):
        path, start, end = _region(kind, root, rng)
        offset, bit = rng.randrange(start, end), rng.randrange(8)
        clean = path.read_bytes()
        damaged = bytearray(clean)
        damaged[offset] ^= 1 << bit
        path.write_bytes(bytes(damaged))
        clear_manifest_cache()  # pyiceberg caches manifest-list entries by path, per process
        try:
            with mpp.connect(root, cluster=cluster) as session:
                for sql, answer in zip(QUERIES, expected, strict=True):
                    try:
                        outcomes[_outcome(session, sql, answer, path)] += 1
                    except AssertionError as exc:
                        failures.append(f"trial {trial}: {path.name} byte {offset} bit {bit}: "
                                        f"{sql}\n  {exc}")
        except MppError as exc:  # opening the session (the catalog) failed
            if path.name not in str(exc):
                failures.append(f"trial {trial}: {path.name} byte {offset}: connect: {exc}")
            outcomes["error"] += len(QUERIES)
        finally:
            path.write_bytes(clean)
    print(f"{kind}: {dict(outcomes)}")
    assert not failures, "\n".join(failures)
    assert outcomes["error"] > 0  # the flips did hit what the queries read
