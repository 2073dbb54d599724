"""The ``[mart]`` section of a scenario: the data mart pipeline's knobs (docs/data-mart.md).

The raw access logs are the scenario's generated ``[data]`` (``format = "csv"``, one fragment
per day: one CSV file per day, the data lake); ``[mart]`` says where the users master table
lives, how it changes each day, and which day's load is run twice and which one fails midway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mpp.mart.master import ChangeRates
from mpp.scenario.validate import Problems, join

_KEYS = ("users_master", "seed", "changes", "reload_day", "failed_day",
         "target_file_bytes")


@dataclass(frozen=True, slots=True)
class MartSpec:
    """A validated ``[mart]`` section.

    Attributes:
        users_master: ``auto`` (MariaDB on 127.0.0.1:3306, else SQLite, with the reason shown),
            ``sqlite``, or a ``mysql://user[:password]@host[:port]`` server.
        seed: the change generator's seed.
        changes: per-day shares of users signing up, changing plan, deleted, changing twice.
        reload_day: the 1-based day whose fact load runs a second time (0: none).
        failed_day: the 1-based day whose first fact load fails before its commit (0: none).
        target_file_bytes: ``write.target_file_bytes`` of the mart's writes.
    """

    users_master: str = "auto"
    seed: int = 0
    changes: ChangeRates = field(default_factory=ChangeRates)
    reload_day: int = 2
    failed_day: int = 3
    target_file_bytes: int = 8 * 1024 * 1024

    def to_dict(self) -> dict[str, Any]:
        """The TOML-shaped ``[mart]`` table (:func:`parse_mart` of it gives this back)."""
        d = asdict(self)
        d["changes"] = asdict(self.changes)
        return d


def parse_mart(p: Problems, t: Mapping[str, Any], *, days: int, path: str = "mart") -> MartSpec:
    """Validate a ``[mart]`` table (``days``: the data's days); problems go to ``p``."""
    p.unknown_keys(t, _KEYS, path)
    d = MartSpec()
    where = p.get(t, "users_master", str, path, default=d.users_master)
    if where not in ("auto", "sqlite") and not str(where).startswith("mysql://"):
        p.add(join(path, "users_master"), f"expected auto, sqlite or mysql://..., got {where!r}.")
    rates: dict[str, float] = {}
    ct = p.table(t, "changes", path)
    cpath = join(path, "changes")
    p.unknown_keys(ct, tuple(asdict(d.changes)), cpath)
    for name, default in asdict(d.changes).items():
        v = p.get(ct, name, float, cpath, default=default)
        if not isinstance(v, int | float) or not 0.0 <= v <= 0.5:
            p.add(join(cpath, name), f"a share of the users between 0 and 0.5, got {v!r}.")
            v = default
        rates[name] = float(v)
    days_of: dict[str, int] = {}
    for key in ("reload_day", "failed_day"):
        v = p.get(t, key, int, path, default=getattr(d, key))
        if not isinstance(v, int) or not 0 <= v <= days:
            p.add(join(path, key), f"a day in 1..{days} of the data (0: none), got {v!r}.")
            v = 0
        days_of[key] = v
    size = p.get(t, "target_file_bytes", int, path, default=d.target_file_bytes)
    if not isinstance(size, int) or size < 1024:
        p.add(join(path, "target_file_bytes"), f"at least 1024 bytes, got {size!r}.")
        size = d.target_file_bytes
    return MartSpec(users_master=where, seed=p.get(t, "seed", int, path, default=d.seed),
                    changes=ChangeRates(**rates), target_file_bytes=size, **days_of)
