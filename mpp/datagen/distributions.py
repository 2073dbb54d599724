"""Seeded distributions and the fragment layout of access_log.

Determinism: every fragment draws from its own generator, seeded by ``(seed, stream, index)``
through numpy's ``SeedSequence`` spawn keys, so fragments are independent tasks and a table's
content is a pure function of the spec.

Layout: day ``d`` carries share ``s_d`` of the rows (the hot day ``hot_share``, the others the
rest evenly) and gets fragments in proportion (at least one), each covering an equal slice of
the day, in time order, as logs land. So the hot day's 40% of rows are ~40% of the fragments
and every fragment holds ~rows/partitions rows.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from mpp.datagen.spec import DatagenSpec
from mpp.errors import KnobError

DAY_US = 86_400_000_000

# Generator streams (the first spawn-key element): one per kind of fragment.
ACCESS_LOG, USERS, SESSIONS, URLS = 1, 2, 3, 4


def rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """The generator of fragment ``index`` of ``stream``."""
    return np.random.default_rng(np.random.SeedSequence(seed % 2**64, spawn_key=(stream, index)))


def day_shares(spec: DatagenSpec) -> np.ndarray:
    """Share of the rows on each day (sums to 1)."""
    if spec.days == 1:
        return np.ones(1)
    if not spec.hot_day:
        return np.full(spec.days, 1.0 / spec.days)
    shares = np.full(spec.days, (1.0 - spec.hot_share) / (spec.days - 1))
    shares[spec.hot_day - 1] = spec.hot_share
    return shares


def _apportion(total: int, weights: np.ndarray, minimum: int = 0) -> np.ndarray:
    """Integers proportional to ``weights`` summing to ``total`` (largest remainder)."""
    exact = weights / weights.sum() * total
    out = np.maximum(np.floor(exact).astype(np.int64), minimum)
    while out.sum() > total:  # minimums overshot: take from the most over-served
        over = np.where(out > minimum, out - exact, -np.inf)
        out[int(np.argmax(over))] -= 1
    while out.sum() < total:
        out[int(np.argmax(exact - out))] += 1
    return out


@dataclass(frozen=True, slots=True)
class Slice:
    """One access_log fragment: ``rows`` rows at times in ``[t0, t1)`` (µs since epoch)."""

    index: int
    day: int  # 0-based
    rows: int
    t0: int
    t1: int


@functools.lru_cache(maxsize=4)
def layout(spec: DatagenSpec) -> tuple[Slice, ...]:
    """The access_log fragments in time order (cached: every task looks up its own slice)."""
    shares = day_shares(spec)
    rows_per_day = _apportion(spec.rows, shares)
    frags_per_day = _apportion(spec.partitions, np.maximum(shares, 1e-12), minimum=1)
    start = int(np.datetime64(spec.start_date, "us").astype(np.int64))
    out: list[Slice] = []
    for day, (rows, frags) in enumerate(zip(rows_per_day, frags_per_day, strict=True)):
        if rows < frags:
            raise KnobError(f"knob 'rows' ({spec.rows:,}) is too small for 'partitions' "
                            f"({spec.partitions:,}) with this hot day: day {day + 1} would get "
                            f"{rows} rows for {frags} fragments")
        per = _apportion(int(rows), np.ones(int(frags)))
        day_start = start + day * DAY_US
        for j, n in enumerate(per):
            out.append(Slice(index=len(out), day=day, rows=int(n),
                             t0=day_start + j * DAY_US // int(frags),
                             t1=day_start + (j + 1) * DAY_US // int(frags)))
    return tuple(out)


@functools.lru_cache(maxsize=4)
def zipf_cdf(n: int, exponent: float) -> np.ndarray:
    """CDF of Zipf(``exponent``) over ranks ``0..n-1`` (computed once per worker)."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return cdf


def zipf_ranks(gen: np.random.Generator, n: int, exponent: float, size: int) -> np.ndarray:
    """``size`` ranks in ``0..n-1`` drawn with Zipf popularity (rank 0 the most popular)."""
    cdf = zipf_cdf(n, exponent)
    return np.minimum(np.searchsorted(cdf, gen.random(size), side="right"), n - 1)


@functools.lru_cache(maxsize=16)
def _multiplier(n: int) -> int:
    a = max(1, int(n * 0.6180339887)) | 1
    while math.gcd(a, n) != 1:
        a += 2
    return a


def rank_to_id(ranks: np.ndarray, n: int) -> np.ndarray:
    """Spread popularity ranks over ids ``1..n`` by a fixed bijection (hot ids not all small)."""
    return (ranks.astype(np.int64) * _multiplier(n)) % n + 1
