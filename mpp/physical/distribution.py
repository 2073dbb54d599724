"""How rows are spread over a stage's partitions, and what an operator needs of its input.

An operator declares a :class:`Distribution` per input (what it requires) and a
:class:`Partitioning` of its output (what it guarantees). ``enforce_distribution`` (in
:mod:`mpp.physical.planner`) compares the two and inserts an ``ExchangeExec`` where the
guarantee does not satisfy the requirement, as DataFusion's ``EnforceDistribution`` does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UnspecifiedDistribution:
    """Any placement of rows will do (scan, filter, project, partial aggregation)."""

    def __str__(self) -> str:
        return "any"


@dataclass(frozen=True, slots=True)
class SinglePartition:
    """All rows in one partition (final sort, final limit, global aggregation)."""

    def __str__(self) -> str:
        return "single"


@dataclass(frozen=True, slots=True)
class HashDistribution:
    """Rows with equal ``keys`` in the same partition.

    ``exact`` asks for partitioning on exactly these keys in this order (a partitioned join's
    two sides must be co-partitioned pairwise); otherwise hashing on any non-empty subset of
    the keys is enough (equal group keys then still meet).
    """

    keys: tuple[str, ...]
    exact: bool = False

    def __str__(self) -> str:
        return f"hash({', '.join(self.keys)})"


@dataclass(frozen=True, slots=True)
class BroadcastDistribution:
    """Every partition of the consumer sees all rows (the build side of a broadcast join)."""

    def __str__(self) -> str:
        return "broadcast"


Distribution = UnspecifiedDistribution | SinglePartition | HashDistribution | BroadcastDistribution


@dataclass(frozen=True, slots=True)
class Hash:
    """Output spread over ``n`` partitions by a hash of ``keys``."""

    keys: tuple[str, ...]
    n: int

    def satisfies(self, required: Distribution) -> bool:
        """True when rows placed this way meet ``required`` without moving."""
        if isinstance(required, HashDistribution) and required.exact:
            return self.keys == required.keys
        if self.n == 1 or isinstance(required, UnspecifiedDistribution):
            return not isinstance(required, BroadcastDistribution)
        if isinstance(required, HashDistribution):
            return bool(self.keys) and set(self.keys) <= set(required.keys)
        return False

    def __str__(self) -> str:
        return f"hash({', '.join(self.keys)}) x {self.n}"


@dataclass(frozen=True, slots=True)
class Arbitrary:
    """Output over ``n`` partitions with no guarantee where a row is (one per fragment)."""

    n: int

    def satisfies(self, required: Distribution) -> bool:
        """True when rows placed this way meet ``required`` without moving."""
        if isinstance(required, HashDistribution) and required.exact:
            return False  # a partitioned join's sides must share the same buckets
        if self.n == 1:
            return not isinstance(required, BroadcastDistribution)
        return isinstance(required, UnspecifiedDistribution)

    def __str__(self) -> str:
        return f"arbitrary x {self.n}"


@dataclass(frozen=True, slots=True)
class Single:
    """All output in one partition."""

    n: int = 1

    def satisfies(self, required: Distribution) -> bool:
        """True when rows placed this way meet ``required`` without moving."""
        if isinstance(required, HashDistribution) and required.exact:
            return False  # a partitioned join's sides must share the same buckets
        return not isinstance(required, BroadcastDistribution)

    def __str__(self) -> str:
        return "single"


@dataclass(frozen=True, slots=True)
class Broadcasted:
    """The same complete rows offered to every consumer partition."""

    n: int = 1

    def satisfies(self, required: Distribution) -> bool:
        """Only a broadcast requirement is met by a broadcast."""
        return isinstance(required, BroadcastDistribution)

    def __str__(self) -> str:
        return "broadcast"


Partitioning = Hash | Arbitrary | Single | Broadcasted
