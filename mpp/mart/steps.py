"""One measured step of the data mart pipeline, and the table the report prints of them.

A step is one statement (or one action on the master database) of one day: its wall time, the
rows it wrote (or read), and the target table's measures right after it from the catalog:
rows, bytes on storage, data files and Iceberg snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mpp.text import human_bytes


@dataclass(frozen=True, slots=True)
class StepRow:
    """One step: what ran, for how long, and what the table held afterwards."""

    day: str  # the day it belongs to ("" for the set-up and the final steps)
    step: str
    table: str
    seconds: float
    rows: int | None  # the statement's rows (written, merged, registered)
    table_rows: int | None = None
    table_bytes: int | None = None
    files: int | None = None
    snapshots: int | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready form (report.json's ``mart.steps``)."""
        return asdict(self)


def _n(v: Any) -> str:
    return "-" if v is None else f"{v:,}"


def format_steps(steps: Sequence[Mapping[str, Any]]) -> str:
    """The steps as an aligned text table (terminal summary and report.html)."""
    head = ["day", "step", "table", "s", "rows", "table rows", "bytes", "files", "snaps",
            "note"]
    rows = [head]
    for s in steps:
        rows.append([s["day"], s["step"], s["table"], f"{s['seconds']:.2f}", _n(s["rows"]),
                     _n(s["table_rows"]),
                     "-" if s["table_bytes"] is None else human_bytes(s["table_bytes"]),
                     _n(s["files"]), _n(s["snapshots"]), s["note"]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths[:-1]))
    return "\n".join(lines)


def format_mart(mart: Mapping[str, Any]) -> str:
    """The [mart] part of a report (MartResult.as_dict()): where the master table was, the
    steps, and the findings (sizes saved, the notes' caveat measured)."""
    return "\n".join([f"data mart (users master: {mart['master']}):",
                      format_steps(mart["steps"]), *mart["findings"]])
