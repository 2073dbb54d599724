"""Sizing the write stage: output files near a target size (the seed's object-storage advice).

The SELECT's last stage ends with N partitions of unknown size. Each is measured on its worker
(rows per partition value, and the bytes a sample encodes to in the output format), and the
write stage is planned from those estimates, the way an adaptive engine coalesces shuffle
partitions:

* pieces smaller than the target are **combined** (consecutive pieces of one partition value,
  greedily, while the bin stays within the target), so 1,000 small inputs do not become 1,000
  small files;
* a piece larger than the target is **split** into equal row ranges of about the target size.

Each planned :class:`WriteTask` writes exactly one file, so the commit sees fragments 0..n-1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Piece:
    """The rows of one input partition with one partition value (all rows if unpartitioned)."""

    source: int  # input partition number
    offset: int  # first row in the (partition-sorted) input partition
    rows: int
    est_bytes: float  # estimated bytes once encoded in the output format
    partition: tuple[Any, ...] = ()  # partition column values


@dataclass(frozen=True, slots=True)
class RowRange:
    """``rows`` rows of input partition ``source`` from ``offset``."""

    source: int
    offset: int
    rows: int


@dataclass(frozen=True, slots=True)
class WriteTask:
    """One output file: the row ranges it concatenates and their estimated encoded size."""

    index: int
    ranges: tuple[RowRange, ...]
    est_bytes: float

    @property
    def rows(self) -> int:
        """Rows the file will hold."""
        return sum(r.rows for r in self.ranges)


def _split(piece: Piece, target: int) -> list[tuple[list[RowRange], float]]:
    """Equal row ranges of ``piece``, each about ``target`` estimated bytes."""
    parts = max(1, math.ceil(piece.est_bytes / target))
    bounds = [piece.rows * k // parts for k in range(parts + 1)]
    per_row = piece.est_bytes / max(1, piece.rows)
    return [([RowRange(piece.source, piece.offset + lo, hi - lo)], (hi - lo) * per_row)
            for lo, hi in zip(bounds, bounds[1:], strict=False) if hi > lo]


def plan_writes(pieces: Sequence[Piece], target_bytes: int) -> list[WriteTask]:
    """Group ``pieces`` into output files of about ``target_bytes`` each.

    Pieces are taken in (partition value, input partition) order; a file never mixes
    partition values (an identity-partitioned fragment holds one value). Empty pieces are
    dropped; no pieces at all gives no files.
    """
    def order(p: Piece) -> tuple[Any, ...]:
        # None sorts first; values of one column share a type, so the rest compare.
        return (tuple((v is not None, v) for v in p.partition), p.source)

    bins: list[tuple[list[RowRange], float]] = []
    current: list[RowRange] = []
    size = 0.0
    value: tuple[Any, ...] | None = None
    for p in sorted((p for p in pieces if p.rows > 0), key=order):
        if current and (p.partition != value or size + p.est_bytes > target_bytes):
            bins.append((current, size))
            current, size = [], 0.0
        value = p.partition
        if p.est_bytes > target_bytes:
            bins.extend(_split(p, target_bytes))
        else:
            current.append(RowRange(p.source, p.offset, p.rows))
            size += p.est_bytes
    if current:
        bins.append((current, size))
    return [WriteTask(i, tuple(ranges), est) for i, (ranges, est) in enumerate(bins)]
