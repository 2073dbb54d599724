"""The ``[data]`` section of a scenario: generator knobs and a seed, or an existing warehouse."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from mpp import limits
from mpp.datagen.spec import KNOB_LIMITS, fragment_rows_problem
from mpp.scenario.validate import Problems, describe, join

DATA_FORMATS = ("parquet", "orc", "csv", "sqlite")
DATASETS = ("access_log", "tpch")
# The TPC-H dataset's knobs (``dataset = "tpch"``): name -> (TOML type, default).
TPCH_KNOBS: dict[str, tuple[type | tuple[type, ...], Any]] = {
    "scale_factor": ((int, float), 1.0),
    "fragment_rows": (int, 1_000_000),
}

# Generator knobs: name -> (TOML type, default). Documented in docs/scenario-reference.md.
KNOBS: dict[str, tuple[type | tuple[type, ...], Any]] = {
    "rows": (int, 1_000_000),
    "partitions": (int, 10),
    "seed": (int, 0),
    "days": (int, 30),
    "start": ((str, dt.date), "2017-01-01"),
    "users": (int, 100_000),
    "zipf": (float, 1.1),
    "hot_day": (int, 0),
    "hot_share": (float, 0.0),
    "format": (str, "parquet"),
}


@dataclass(frozen=True, slots=True)
class DataSpec:
    """Where a scenario's tables come from.

    Either ``warehouse`` (an existing warehouse directory, used as it is) or the access_log
    generator's knobs: ``rows`` in ``partitions`` fragments over ``days`` days from ``start``,
    ``users`` distinct users with Zipf exponent ``zipf``, day ``hot_day`` (1-based; 0 = none)
    carrying ``hot_share`` of the rows, written as ``format``, all from ``seed``.
    ``table_formats`` overrides the format of single tables (users in SQLite: the federated
    "master table"); ``copies`` adds the same access_log rows in other formats as tables
    ``access_log_<format>`` (row vs column storage side by side in one warehouse).
    ``dataset = "tpch"`` makes the eight TPC-H tables instead (``mpp datagen --dataset tpch``):
    ``scale_factor`` and ``fragment_rows`` are its only knobs.
    """

    warehouse: str | None = None
    rows: int = 1_000_000
    partitions: int = 10
    seed: int = 0
    days: int = 30
    start: str = "2017-01-01"
    users: int = 100_000
    zipf: float = 1.1
    hot_day: int = 0
    hot_share: float = 0.0
    format: str = "parquet"
    table_formats: tuple[tuple[str, str], ...] = ()  # per-table formats, e.g. users = sqlite
    copies: tuple[str, ...] = ()  # extra copies of access_log, as access_log_<format>
    dataset: str = "access_log"
    scale_factor: float = 1.0  # TPC-H only
    fragment_rows: int = 1_000_000  # TPC-H only

    @property
    def tpch(self) -> bool:
        """True when the data is the generated TPC-H tables."""
        return self.generated and self.dataset == "tpch"

    @property
    def generated(self) -> bool:
        """True when the data is generated (not an existing warehouse)."""
        return self.warehouse is None

    def knobs(self) -> dict[str, Any]:
        """The generator knobs by name (empty for an existing warehouse)."""
        if not self.generated:
            return {}
        if self.tpch:
            return {"dataset": "tpch", "scale_factor": self.scale_factor,
                    "fragment_rows": self.fragment_rows}
        out = {k: v for k, v in dataclasses.asdict(self).items()
               if k not in ("warehouse", "table_formats", "copies", *_TPCH_FIELDS)}
        if self.table_formats:
            out["table_formats"] = dict(self.table_formats)
        if self.copies:
            out["copies"] = list(self.copies)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The TOML-shaped ``[data]`` table."""
        return {"warehouse": self.warehouse} if self.warehouse else self.knobs()


def parse_data(p: Problems, table: dict[str, Any], scale: float,
               base_dir: Any = None) -> DataSpec:
    """Validate ``[data]``; ``scale`` multiplies ``rows`` (partitions never exceed rows), or
    TPC-H's ``scale_factor``."""
    dataset = p.get(table, "dataset", str, "data", default="access_log")
    if dataset not in DATASETS:
        p.add("data.dataset", f"unknown dataset {dataset!r}.",
              f"Expected one of {', '.join(DATASETS)}.")
        return DataSpec()  # no knock-on problems from the other knobs
    if dataset == "tpch" and "warehouse" not in table:
        return _tpch(p, table, scale)
    p.unknown_keys(table, ("warehouse", "dataset", *KNOBS, *_TABLE_KNOBS), "data")
    if "warehouse" in table:
        return _warehouse(p, table, scale, base_dir)
    v = {k: p.get(table, k, kind, "data", default=default) for k, (kind, default) in KNOBS.items()}
    bad: set[str] = set()  # knobs out of range, reported and reset (no knock-on problems from them)
    for key, limit in KNOB_LIMITS.items():  # the generator's own ranges (mpp.limits)
        if key in v and limit.problem(v[key]):
            p.add(join("data", key), f"{limit.problem(v[key])}.")
            v[key], bad = KNOBS[key][1], bad | {key}
    if v["partitions"] > v["rows"] and not bad & {"rows", "partitions"}:
        p.add("data.partitions", f"{v['partitions']} fragments cannot hold {v['rows']} rows.",
              "Use at most one fragment per row.")
    if not 0 <= v["hot_day"] <= v["days"]:
        p.add("data.hot_day", f"must be a day within 1..{v['days']} (0 = none), got {v['hot_day']}.")
    if (v["hot_day"] > 0) != (v["hot_share"] > 0) and "hot_share" not in bad:
        p.add("data.hot_share" if v["hot_day"] else "data.hot_day",
              "hot_day and hot_share go together.", "Set both (or neither).")
    if v["format"] not in DATA_FORMATS:
        p.add("data.format", f"unknown format {v['format']!r}.",
              f"Expected one of {', '.join(DATA_FORMATS)}.")
    v["start"] = _start(p, v["start"])
    v["table_formats"], v["copies"] = _table_formats(p, table), _copies(p, table, v["format"])
    # --scale: rows scale; fragments stay as written unless they would outnumber the rows.
    rows = max(1, round(v["rows"] * scale))
    partitions = min(v["partitions"], rows)
    scaled = f"{v['rows']:,} x --scale {scale:g} = " if scale != 1 else ""
    if limits.ROWS.problem(rows):  # only --scale can get here: bad rows were reset above
        p.add("data.rows", f"{scaled}{rows:,} rows; {limits.ROWS.problem(rows)}.")
    elif fragment_rows_problem(rows, partitions) and not bad & {"rows", "partitions"}:
        p.add("data.partitions", f"{scaled}{fragment_rows_problem(rows, partitions)}")
    return DataSpec(**{**v, "rows": rows, "partitions": partitions})


_TABLE_KNOBS = ("table_formats", "copies")
_TPCH_FIELDS = ("dataset", *TPCH_KNOBS)


def _tpch(p: Problems, table: dict[str, Any], scale: float) -> DataSpec:
    """``dataset = "tpch"``: the scale factor (times ``--scale``) and the fragment size."""
    from mpp.datagen.tpch import TpchSpec
    from mpp.errors import KnobError

    p.unknown_keys(table, ("dataset", *TPCH_KNOBS), "data")
    v = {k: p.get(table, k, kind, "data", default=default)
         for k, (kind, default) in TPCH_KNOBS.items()}
    sf = float(f"{float(v['scale_factor']) * scale:.12g}")  # 0.1 x 0.1 is 0.01, not 0.0100..02
    try:
        TpchSpec(sf, v["fragment_rows"]).validate()
    except KnobError as exc:
        p.add("data", f"{exc}.")
    return DataSpec(dataset="tpch", scale_factor=sf, fragment_rows=v["fragment_rows"])
_TABLES = ("access_log", "users", "sessions", "urls")


def _table_formats(p: Problems, table: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """``table_formats = { users = "sqlite" }``: a format per generated table."""
    t = p.get(table, "table_formats", dict, "data", default={}) or {}
    out = []
    for name, fmt in t.items():
        where = join("data.table_formats", name)
        if name not in _TABLES:
            p.add(where, "unknown table.", f"Generated tables: {', '.join(_TABLES)}.")
        elif fmt not in DATA_FORMATS:
            p.add(where, f"unknown format {describe(fmt)}.",
                  f"Expected one of {', '.join(DATA_FORMATS)}.")
        else:
            out.append((name, fmt))
    return tuple(sorted(out))


def _copies(p: Problems, table: dict[str, Any], main: Any) -> tuple[str, ...]:
    """``copies = ["orc", "csv"]``: access_log again in each format (``access_log_<format>``)."""
    items = p.get(table, "copies", list, "data", default=[]) or []
    out: list[str] = []
    for i, fmt in enumerate(items):
        if fmt not in DATA_FORMATS:
            p.add(join("data.copies", i), f"unknown format {describe(fmt)}.",
                  f"Expected one of {', '.join(DATA_FORMATS)}.")
        elif fmt == main or fmt in out:
            p.add(join("data.copies", i), f"access_log is already {fmt!r}.",
                  "List each other format once.")
        else:
            out.append(fmt)
    return tuple(out)


def _warehouse(p: Problems, table: dict[str, Any], scale: float, base_dir: Any) -> DataSpec:
    for key in table:
        if key in KNOBS or key in _TABLE_KNOBS or key in _TPCH_FIELDS:
            p.add(join("data", key), "a generator knob cannot be combined with data.warehouse.",
                  "Remove it, or remove warehouse to generate the data.")
    if scale != 1:
        p.add("--scale", "cannot scale an existing warehouse (data.warehouse).")
    where = p.get(table, "warehouse", str, "data")
    if not isinstance(where, str):
        return DataSpec(warehouse="?")
    path = (base_dir / where) if base_dir is not None else None
    if path is not None and not path.is_dir():
        p.add("data.warehouse", f"no warehouse directory at {str(path)!r}.",
              "Paths are relative to the scenario file.")
    return DataSpec(warehouse=str(path) if path is not None else where)


def _start(p: Problems, value: Any) -> str:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date | str):
        p.add("data.start", f"expected a date (2017-01-01), got {describe(value)}.")
        return KNOBS["start"][1]
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        p.add("data.start", f"expected a date (2017-01-01), got {value!r}.")
        return KNOBS["start"][1]
