"""The digests mpp records with each commit (``mpp.integrity``), since Iceberg records none.

A table's metadata.json is plain JSON and its manifests are Avro deflated without a checksum,
so mpp keeps, as one table property written in the same commit:

* ``snapshot``: the id of the snapshot the commit made;
* ``schema`` and ``spec``: the ids of the schema and partition spec the commit wrote with
  (another engine may evolve the schema later, which adds a schema rather than changing one);
* ``table``: a digest of the table's location, that schema, that partition spec and its
  ``mpp.*`` properties (statistics, Arrow schema, content checksum);
* ``files``: a digest of every data file's manifest entry as written (path, counts, sizes,
  partition, bounds: everything a read or a scan plan uses);
* ``footers``: each Parquet file's footer digest, in file path order (Parquet checksums its
  pages, not its footer), which the scan compares before parsing a footer;
* ``self``: a digest of the record itself, which lives in the metadata.json it guards.

Every mpp commit that changes a table's files or ``mpp.*`` properties rewrites the record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pyiceberg.manifest import DataFile
from pyiceberg.table.metadata import TableMetadata

PROP_INTEGRITY = "mpp.integrity"
RECORD_KEYS = frozenset({"snapshot", "schema", "spec", "table", "files", "footers", "self"})


def _counts(d: Any) -> list[tuple[int, Any]]:
    return sorted((int(k), v.hex() if isinstance(v, bytes) else int(v))
                  for k, v in (d or {}).items())


def _file_entry(f: DataFile) -> str:
    """Canonical text of what a read uses from one manifest entry."""
    partition = [v if v is None or isinstance(v, (int, float, str)) else str(v)
                 for v in (f.partition[i] for i in range(len(f.partition)))]
    return repr((f.file_path, int(f.content), str(f.file_format), f.record_count,
                 f.file_size_in_bytes, partition, _counts(f.lower_bounds),
                 _counts(f.upper_bounds), _counts(f.null_value_counts), _counts(f.value_counts),
                 _counts(f.nan_value_counts)))


def files_digest(files: Sequence[DataFile]) -> str:
    """Digest of the manifest entries of ``files`` (in any order)."""
    h = hashlib.blake2b(digest_size=16)
    for text in sorted(_file_entry(f) for f in files):
        h.update(text.encode())
    return h.hexdigest()


def table_digest(metadata: TableMetadata, schema_id: int, spec_id: int) -> str:
    """Digest of a table's location, schema ``schema_id``, partition spec ``spec_id`` and
    ``mpp.*`` properties ("" if the schema or spec is gone)."""
    schema, spec = metadata.schema_by_id(schema_id), metadata.specs().get(spec_id)
    if schema is None or spec is None:
        return ""
    text = json.dumps([
        metadata.location,
        [[f.field_id, f.name, str(f.field_type), f.required] for f in schema.fields],
        [[f.source_id, f.field_id, str(f.transform), f.name] for f in spec.fields],
        sorted([k, v] for k, v in metadata.properties.items()
               if k.startswith("mpp.") and k != PROP_INTEGRITY),
    ])
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def by_path(files: Sequence[DataFile]) -> list[DataFile]:
    """``files`` in file path order (the order of the recorded footer digests)."""
    return sorted(files, key=lambda f: f.file_path)


def self_digest(record: Mapping[str, Any]) -> str:
    """Digest of a record's fields other than ``self``."""
    text = json.dumps({k: record[k] for k in sorted(record) if k != "self"})
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def integrity_record(metadata: TableMetadata, files: Sequence[DataFile],
                     footers: Mapping[str, str | None]) -> str:
    """The ``mpp.integrity`` property of a commit that leaves ``metadata`` holding ``files``.

    ``footers`` maps data file paths to their Parquet footer digests.
    """
    schema_id, spec_id = metadata.current_schema_id, metadata.default_spec_id
    body = {"snapshot": metadata.current_snapshot_id, "schema": schema_id, "spec": spec_id,
            "table": table_digest(metadata, schema_id, spec_id),
            "files": files_digest(files),
            "footers": [footers.get(f.file_path) for f in by_path(files)]}
    return json.dumps({**body, "self": self_digest(body)})
