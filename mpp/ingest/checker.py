"""The delivery semantics checker: what reached the end of the path against the ledger.

Counted as Jepsen's queue checkers count (``jepsen.checker/total-queue``): every message the
producers *attempted* is looked up in what was *delivered* at the end of the pipeline.

* ``lost``: attempted and never delivered (the seed's 결손). ``lost_acknowledged`` is the
  stricter part Jepsen calls lost: the broker acknowledged it, yet it never arrived; an
  at-least-once pipeline must have none.
* ``recovered``: delivered although no attempt was acknowledged (an ack lost on the way).
* ``duplicated``: messages delivered more than once; ``duplicate_copies`` the extra copies.
* ``unexpected``: delivered IDs no producer ever sent (must always be zero).

Plus throughput (distinct messages delivered per second, from the first send to the last
delivery) and end-to-end latency percentiles (first delivery minus first send, wall clock).
Everything is computed with Arrow group-by and joins, so it scales with the history.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DELIVERED_SCHEMA = pa.schema([("message_id", pa.string()), ("delivered_at_ns", pa.int64())])
"""One row per copy that reached the end of the path."""

PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class Check:
    """The counts of one run (see the module docstring for each field)."""

    attempted: int
    acknowledged: int
    delivered_copies: int
    delivered: int
    lost: int
    lost_acknowledged: int
    recovered: int
    duplicated: int
    duplicate_copies: int
    unexpected: int
    throughput_per_s: float
    latency_ms: dict[str, float]

    def holds(self, mode: str) -> bool:
        """Whether the run met ``mode`` ("at-most-once", "at-least-once", "exactly-once")."""
        no_dups = self.duplicated == 0
        no_loss = self.lost_acknowledged == 0
        if self.unexpected:
            return False
        return {"at-most-once": no_dups, "at-least-once": no_loss,
                "exactly-once": no_dups and no_loss}[mode]

    def as_dict(self) -> dict:
        """Plain values (for JSON reports)."""
        return asdict(self)


def check(ledger: pa.Table, delivered: pa.Table) -> Check:
    """Count ``delivered`` (:data:`DELIVERED_SCHEMA`) against ``ledger`` (producers' ledger)."""
    copies = delivered.group_by("message_id").aggregate(
        [("message_id", "count"), ("delivered_at_ns", "min")]).rename_columns(
        ["message_id", "copies", "first_delivered_ns"])
    sent = ledger.select(["message_id", "acked", "sent_at_ns"]).append_column(
        "known", pa.array(np.ones(ledger.num_rows, dtype=bool)))
    both = sent.join(copies, "message_id", join_type="full outer")
    known = pc.fill_null(both["known"], False)
    n = pc.fill_null(both["copies"], 0)
    got = pc.greater(n, 0)
    acked = pc.fill_null(both["acked"], False)
    missing = pc.and_(known, pc.invert(got))

    def count(mask: pa.ChunkedArray) -> int:
        return int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)

    dup = pc.and_(known, pc.greater(n, 1))
    ok = pc.and_(known, got)
    lat = pc.filter(pc.subtract(both["first_delivered_ns"], both["sent_at_ns"]), ok)
    lat_ms = lat.to_numpy(zero_copy_only=False) / 1e6
    latency = ({f"p{q}": float(np.percentile(lat_ms, q)) for q in PERCENTILES}
               | {"max": float(lat_ms.max())}) if len(lat_ms) else {}
    delivered_n = count(ok)
    span_ns = 0
    if delivered_n:
        span_ns = (pc.max(pc.filter(both["first_delivered_ns"], ok)).as_py()
                   - pc.min(ledger["sent_at_ns"]).as_py())
    return Check(
        attempted=ledger.num_rows,
        acknowledged=count(pc.fill_null(ledger["acked"], False)),
        delivered_copies=delivered.num_rows,
        delivered=delivered_n,
        lost=count(missing),
        lost_acknowledged=count(pc.and_(missing, acked)),
        recovered=count(pc.and_(ok, pc.invert(acked))),
        duplicated=count(dup),
        duplicate_copies=int(pc.sum(pc.filter(pc.subtract(n, 1), dup)).as_py() or 0),
        unexpected=count(pc.and_(pc.invert(known), got)),
        throughput_per_s=delivered_n / (span_ns / 1e9) if span_ns > 0 else float("nan"),
        latency_ms=latency,
    )
