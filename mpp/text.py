"""How mpp writes counts and sizes for people: EXPLAIN, the catalog listing, CLI summaries."""

from __future__ import annotations


def plural(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: "1 row", "2,000 rows"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def human_bytes(n: float) -> str:
    """A byte count in binary units: "512 B", "1.5 KiB", "7.1 MiB", "1.2 GiB" (GiB at most)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
