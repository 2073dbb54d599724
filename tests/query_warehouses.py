"""Small generated warehouses for query tests, one per (format, fragment count), made once per
test session on the shared cluster and removed at exit."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mpp.datagen import DatagenSpec, generate
from mpp.storage.base import StorageFormat

_ROOT = Path(tempfile.mkdtemp(prefix="mpp-query-wh-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
_MADE: dict[tuple[str, int], Path] = {}

# Settings for a test about one-task-per-fragment shapes (task counts, partitions, records per
# fragment): small fragments are otherwise packed several to a scan task (scan.max_task_bytes).
ONE_TASK_PER_FRAGMENT: dict[str, Any] = {"scan.max_task_bytes": 0}


def warehouse(client: Any, fmt: str = "parquet", fragments: int = 8) -> Path:
    """A warehouse whose access_log has ``fragments`` fragments in format ``fmt``."""
    key = (fmt, fragments)
    if key not in _MADE:
        days = min(fragments, 4)
        spec = DatagenSpec(rows=4_000, partitions=fragments, days=days, hot_day=min(2, days),
                           users=300, sessions=400, urls=40, format=StorageFormat(fmt))
        out = _ROOT / f"{fmt}-{fragments}"
        generate(out, spec, client=client, progress=False)
        _MADE[key] = out
    return _MADE[key]


def read_queries(path: Path) -> list[str]:
    """The SQL statements of a fixture file: ``#`` and ``--`` lines are headers, statements
    end with ``;``, and anything after a ``----`` line (an expected plan) is ignored."""
    text = path.read_text().split("\n----", 1)[0]
    body = "\n".join(line for line in text.splitlines()
                     if not line.lstrip().startswith(("#", "--")))
    return [sql.strip() for sql in body.split(";") if sql.strip()]
