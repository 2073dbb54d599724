"""The users master table in a row-store database, changed every day by a seeded generator.

The source notes keep the master data "in MySQL": a table the application updates in place, so
yesterday's values are gone once today's are written. :class:`MasterDb` is that table in a real
MariaDB/MySQL server (a database of its own, dropped when the run ends) or, where no server is
reachable, in a SQLite file (:attr:`MasterDb.reason` says why). mpp reads it in place, through
its MySQL or SQLite connector, as the external table the daily extract reads.

:func:`daily_changes` is the application: each day some users sign up, some change plan, some
are deleted, and a few change twice within the day. Every change is applied to the database in
time order (:meth:`MasterDb.apply`) and kept in the change log (:data:`CHANGE_SCHEMA`): the full
history, tombstones and intra-day steps included, which the warehouse never sees but DuckDB
reads to recompute every table of the mart independently.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mpp.catalog import Catalog
from mpp.catalog.model import TableInfo
from mpp.errors import MppError

PLANS = ("free", "basic", "pro", "enterprise")
COUNTRIES = ("US", "KR", "JP", "DE", "GB", "FR", "IN", "BR", "CA", "AU", "CN", "ES")
DEFAULT_MYSQL = "mysql://root@127.0.0.1:3306"

CHANGE_SCHEMA = pa.schema([
    ("seq", pa.int64()), ("day", pa.date32()), ("changed_at", pa.timestamp("us")),
    ("op", pa.string()), ("user_id", pa.int64()), ("created_at", pa.timestamp("us")),
    ("country", pa.string()), ("plan", pa.string())])
"""One row per change of the master table: ``op`` is insert, update or delete; the row's
values after the change (a delete carries the values it removed)."""

_DDL = ("CREATE TABLE users (user_id BIGINT PRIMARY KEY, created_at {ts} NOT NULL, "
        "country VARCHAR(2) NOT NULL, plan VARCHAR(16) NOT NULL, updated_at {ts} NOT NULL)")


@dataclass(frozen=True, slots=True)
class ChangeRates:
    """Per day, the share of current users (at least one each when the share is above 0)."""

    new_users: float = 0.01
    plan_changes: float = 0.03
    deletions: float = 0.005
    twice: float = 0.005  # users whose plan changes twice within one day


@dataclass
class ChangeGenerator:
    """The application changing the master table: a seeded, deterministic stream of changes.

    It keeps the current rows itself (user_id -> (created_at, country, plan)), so it never reads
    the database it writes.
    """

    seed: int
    rates: ChangeRates
    rows: dict[int, tuple[dt.datetime, str, str]] = field(default_factory=dict)
    seq: int = 0

    def initial(self, users: pa.Table) -> pa.Table:
        """The change log of the initial load: one insert per row of ``users`` (user_id,
        created_at, country, plan), stamped with its creation time."""
        out = []
        for uid, created, country, plan in zip(*(users.column(c).to_pylist() for c in
                                                   ("user_id", "created_at", "country", "plan")),
                                               strict=True):
            self.rows[uid] = (created, country, plan)
            out.append(self._change(created, "insert", uid))
        return _table(out)

    def _change(self, at: dt.datetime, op: str, uid: int) -> dict[str, Any]:
        self.seq += 1
        created, country, plan = self.rows[uid]
        return {"seq": self.seq, "day": at.date(), "changed_at": at, "op": op, "user_id": uid,
                "created_at": created, "country": country, "plan": plan}

    def day(self, day: dt.date) -> pa.Table:
        """The changes of ``day`` in time order (also applied to the generator's rows)."""
        gen = np.random.default_rng([self.seed, day.toordinal()])
        ids = np.array(sorted(self.rows), dtype=np.int64)

        def pick(share: float, pool: np.ndarray) -> np.ndarray:
            n = min(len(pool), max(1, round(share * len(ids)))) if share > 0 else 0
            return gen.choice(pool, n, replace=False) if n else pool[:0]

        deleted = pick(self.rates.deletions, ids)
        rest = np.setdiff1d(ids, deleted)
        changed = pick(self.rates.plan_changes, rest)
        twice = pick(self.rates.twice, changed)
        start = dt.datetime.combine(day, dt.time())
        events: list[tuple[int, str, int]] = []  # (second of the day, op, user)
        events += [(int(s), "delete", int(u))
                   for s, u in zip(gen.integers(0, 86_400, len(deleted)), deleted, strict=True)]
        events += [(int(s), "update", int(u))  # a first change: in the morning
                   for s, u in zip(gen.integers(0, 43_200, len(changed)), changed, strict=True)]
        events += [(int(s), "update", int(u))  # the second change: in the afternoon
                   for s, u in zip(gen.integers(43_200, 86_400, len(twice)), twice, strict=True)]
        first_new = (max(self.rows) if self.rows else 0) + 1
        n_new = max(1, round(self.rates.new_users * len(ids))) if self.rates.new_users > 0 else 0
        events += [(int(s), "insert", first_new + i)
                   for i, s in enumerate(np.sort(gen.integers(0, 86_400, n_new)))]
        out = []
        for second, op, uid in sorted(events, key=lambda e: (e[0], e[2])):
            at = start + dt.timedelta(seconds=second)
            if op == "insert":
                self.rows[uid] = (at, str(gen.choice(COUNTRIES)), "free")
            elif op == "update":
                created, country, plan = self.rows[uid]
                self.rows[uid] = (created, country,
                                  str(gen.choice([p for p in PLANS if p != plan])))
            out.append(self._change(at, op, uid))
            if op == "delete":
                del self.rows[uid]
        return _table(out)


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=CHANGE_SCHEMA)


def _arguments(c: dict[str, Any]) -> tuple[Any, ...]:
    """The parameters of the statement that applies change ``c`` (see MasterDb.apply)."""
    if c["op"] == "insert":
        return (c["user_id"], c["created_at"], c["country"], c["plan"], c["changed_at"])
    if c["op"] == "update":
        return (c["plan"], c["changed_at"], c["user_id"])
    return (c["user_id"],)


class MasterDb:
    """The users master table (``users``) in MariaDB/MySQL, or in SQLite where none is
    reachable; :attr:`kind` says which and :attr:`reason` why SQLite was used."""

    def __init__(self, kind: str, uri: str, reason: str = "", server: str | None = None):
        self.kind = kind  # "mysql" | "sqlite"
        self.uri = uri  # mysql://.../database or the SQLite file's path
        self.reason = reason
        self._server = server  # mysql://user@host:port without a database (to drop it)

    @classmethod
    def open(cls, where: str, folder: Path) -> MasterDb:
        """A new, empty master database: ``where`` is ``auto`` (MariaDB on 127.0.0.1:3306,
        else SQLite), ``sqlite``, or a ``mysql://user[:password]@host[:port]`` server, in which
        a database ``mpp_mart_<random>`` is created (a named server that cannot be reached is
        an error)."""
        if where == "sqlite":
            return cls._sqlite(folder, "SQLite asked for ([mart] users_master = \"sqlite\")")
        server = DEFAULT_MYSQL if where == "auto" else where.rstrip("/")
        try:
            return cls._mysql(server)
        except MppError as exc:
            if where != "auto":
                raise
            return cls._sqlite(folder, f"MariaDB not reachable at {server}: {exc}")

    @classmethod
    def _sqlite(cls, folder: Path, reason: str) -> MasterDb:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "users_master.sqlite"
        path.unlink(missing_ok=True)
        db = cls("sqlite", str(path), reason)
        with db._cursor() as cur:
            cur.execute(_DDL.format(ts="TIMESTAMP"))
        return db

    @classmethod
    def _mysql(cls, server: str) -> MasterDb:
        from mpp.storage import mysql

        name = f"mpp_mart_{uuid.uuid4().hex[:8]}"
        with mysql.connect(f"{server}/mysql") as con, con.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        db = cls("mysql", f"{server}/{name}", server=server)
        with db._cursor() as cur:
            cur.execute(_DDL.format(ts="DATETIME(6)"))
        return db

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        if self.kind == "sqlite":
            con = sqlite3.connect(self.uri)
            try:
                yield con.cursor()
                con.commit()
            finally:
                con.close()
            return
        from mpp.storage import mysql

        with mysql.connect(self.uri) as con, con.cursor() as cur:
            yield cur
            con.commit()

    def apply(self, changes: pa.Table) -> None:
        """Apply a change log's rows to ``users`` in ``seq`` order, in one transaction: the
        application's INSERT, UPDATE (plan, updated_at) and DELETE statements."""
        mark = "?" if self.kind == "sqlite" else "%s"
        sql = {"insert": f"INSERT INTO users VALUES ({', '.join([mark] * 5)})",
               "update": f"UPDATE users SET plan = {mark}, updated_at = {mark} "
                         f"WHERE user_id = {mark}",
               "delete": f"DELETE FROM users WHERE user_id = {mark}"}
        with self._cursor() as cur:
            # consecutive changes of one kind go in one executemany (pymysql sends a run of
            # INSERTs as one multi-row statement); the order of changes is kept
            for op, run in itertools.groupby(changes.sort_by("seq").to_pylist(),
                                             key=lambda c: c["op"]):
                cur.executemany(sql[op], [_arguments(c) for c in run])

    def register(self, catalog: Catalog, name: str, *, fragments: int = 2) -> TableInfo:
        """(Re-)register ``users`` as the external table ``name``: the daily extract reads the
        table as it is now (new key ranges included)."""
        from mpp.catalog.mysql_source import register_mysql
        from mpp.catalog.sqlite_source import register_sqlite

        if name in catalog.tables():
            catalog.drop_table(name)
        if self.kind == "sqlite":
            return register_sqlite(catalog, name, self.uri, source_table="users",
                                   fragments=fragments)
        return register_mysql(catalog, name, self.uri, source_table="users", fragments=fragments)

    def describe(self) -> str:
        """Where the master table is, in one line (the reason for SQLite included)."""
        if self.kind == "sqlite":
            return f"SQLite {self.uri} ({self.reason})"
        from mpp.storage import mysql

        return f"MariaDB/MySQL {mysql.redact(self.uri)}"

    def close(self) -> None:
        """Drop the run's own MySQL database (a SQLite file stays in the run folder)."""
        if self._server is None:
            return
        from mpp.storage import mysql

        name = self.uri.rsplit("/", 1)[1]
        with contextlib.suppress(MppError), mysql.connect(f"{self._server}/mysql") as con, \
                con.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        self._server = None
