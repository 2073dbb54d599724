"""The warehouse's tables, one fragment at a time (each a pure function of spec and index).

* ``access_log(time, date, user_id, session_id, url_id, status, bytes)``: one row per request.
  A row picks a session uniformly among those started before its time and takes the session's
  user, so user popularity is the sessions' Zipf popularity and a request never precedes its
  session's ``min_time``. ``url_id`` is Zipf(1.0) over the URLs.
* ``users(user_id, created_at, country, plan)``: created up to three years before the start.
* ``sessions(session_id, user_id, min_time)``: session ``k`` starts at
  ``start + (k + u_k) * step`` (step = window / sessions), so ids increase with time.
* ``urls(url_id, path, category)``.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa

from mpp.datagen import distributions as dist
from mpp.datagen.spec import DatagenSpec

SCHEMAS = {
    "access_log": pa.schema([("time", pa.timestamp("us")), ("date", pa.date32()),
                             ("user_id", pa.int64()), ("session_id", pa.int64()),
                             ("url_id", pa.int32()), ("status", pa.int16()),
                             ("bytes", pa.int32())]),
    "users": pa.schema([("user_id", pa.int64()), ("created_at", pa.timestamp("us")),
                        ("country", pa.string()), ("plan", pa.string())]),
    "sessions": pa.schema([("session_id", pa.int64()), ("user_id", pa.int64()),
                           ("min_time", pa.timestamp("us"))]),
    "urls": pa.schema([("url_id", pa.int32()), ("path", pa.string()), ("category", pa.string())]),
}
PARTITION_BY = {"access_log": ("date",)}
TOP_COLUMNS = {"access_log": ("date", "user_id", "url_id", "status"),
               "users": ("country", "plan"), "sessions": ("user_id",), "urls": ("category",)}
USERS_PER_FRAGMENT = 500_000
SESSIONS_PER_FRAGMENT = 1_000_000
URLS_PER_FRAGMENT = 1_000_000

_STATUS = np.array([200, 301, 304, 404, 500], dtype=np.int16)
_STATUS_P = np.array([0.86, 0.03, 0.06, 0.04, 0.01])
_COUNTRIES = np.array(["US", "KR", "JP", "DE", "GB", "FR", "IN", "BR", "CA", "AU", "CN", "ES"])
_COUNTRY_P = np.array([0.30, 0.15, 0.10, 0.07, 0.07, 0.06, 0.06, 0.05, 0.04, 0.04, 0.03, 0.03])
_PLANS = np.array(["free", "basic", "pro", "enterprise"])
_PLAN_P = np.array([0.70, 0.18, 0.10, 0.02])
_CATEGORIES = np.array(["home", "search", "product", "cart", "checkout", "account", "help",
                        "blog", "news", "video", "api", "static"])


def fragment_count(spec: DatagenSpec, table: str) -> int:
    """Fragments of ``table``."""
    if table == "access_log":
        return spec.partitions
    size, per = {"users": (spec.users, USERS_PER_FRAGMENT),
                 "sessions": (spec.session_count, SESSIONS_PER_FRAGMENT),
                 "urls": (spec.urls, URLS_PER_FRAGMENT)}[table]
    return -(-size // per)


def _start_us(spec: DatagenSpec) -> int:
    return int(np.datetime64(spec.start_date, "us").astype(np.int64))


def _session_chunk(spec: DatagenSpec, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """(user_id, min_time µs) of sessions ``chunk * SESSIONS_PER_FRAGMENT ...``."""
    n = spec.session_count
    lo = chunk * SESSIONS_PER_FRAGMENT
    hi = min(n, lo + SESSIONS_PER_FRAGMENT)
    gen = dist.rng(spec.seed, dist.SESSIONS, chunk)
    users = dist.rank_to_id(dist.zipf_ranks(gen, spec.users, spec.zipf, hi - lo), spec.users)
    jitter = gen.random(hi - lo)
    if lo == 0:
        jitter[0] = 0.0  # session 0 starts at the very start: every request has a session
    step = spec.days * dist.DAY_US / n
    min_time = _start_us(spec) + ((np.arange(lo, hi) + jitter) * step).astype(np.int64)
    return users, min_time


@functools.lru_cache(maxsize=1)
def _session_users(spec: DatagenSpec) -> np.ndarray:
    """Every session's user_id, built once per worker process (8 bytes a session)."""
    return np.concatenate([_session_chunk(spec, c)[0]
                           for c in range(fragment_count(spec, "sessions"))])


def access_log(spec: DatagenSpec, index: int) -> pa.Table:
    """Fragment ``index`` of access_log (rows in time order)."""
    s = dist.layout(spec)[index]
    gen = dist.rng(spec.seed, dist.ACCESS_LOG, index)
    times = np.sort(gen.integers(s.t0, s.t1, s.rows))
    # Sessions k < floor((t - start) / step) started before t (see _session_chunk), so a
    # request picks uniformly among them and never precedes its session's min_time.
    step = spec.days * dist.DAY_US / spec.session_count
    started = ((times - _start_us(spec)) / step).astype(np.int64)
    pool = np.clip(started, 1, spec.session_count)
    session = (gen.random(s.rows) * pool).astype(np.int64)
    url = dist.rank_to_id(dist.zipf_ranks(gen, spec.urls, 1.0, s.rows), spec.urls)
    status = _STATUS[np.searchsorted(np.cumsum(_STATUS_P), gen.random(s.rows), side="right")
                     .clip(0, len(_STATUS) - 1)]
    nbytes = np.minimum(gen.lognormal(8.0, 1.2, s.rows), 2**31 - 1).astype(np.int32)
    day = np.datetime64(spec.start_date, "D") + s.day
    return pa.table([
        pa.array(times.astype("datetime64[us]")),
        pa.array(np.full(s.rows, day, dtype="datetime64[D]")),
        pa.array(_session_users(spec)[session]),
        pa.array(session + 1),
        pa.array(url.astype(np.int32)),
        pa.array(status),
        pa.array(nbytes),
    ], schema=SCHEMAS["access_log"])


def users(spec: DatagenSpec, index: int) -> pa.Table:
    """Fragment ``index`` of users (ids ascending)."""
    lo = index * USERS_PER_FRAGMENT
    hi = min(spec.users, lo + USERS_PER_FRAGMENT)
    gen = dist.rng(spec.seed, dist.USERS, index)
    n = hi - lo
    created = _start_us(spec) - gen.integers(1, 3 * 365 * dist.DAY_US, n)
    return pa.table([
        pa.array(np.arange(lo + 1, hi + 1, dtype=np.int64)),
        pa.array(created.astype("datetime64[us]")),
        pa.array(gen.choice(_COUNTRIES, n, p=_COUNTRY_P)),
        pa.array(gen.choice(_PLANS, n, p=_PLAN_P)),
    ], schema=SCHEMAS["users"])


def sessions(spec: DatagenSpec, index: int) -> pa.Table:
    """Fragment ``index`` of sessions (ids ascending, so start times ascending)."""
    user_ids, min_time = _session_chunk(spec, index)
    lo = index * SESSIONS_PER_FRAGMENT
    return pa.table([
        pa.array(np.arange(lo + 1, lo + len(user_ids) + 1, dtype=np.int64)),
        pa.array(user_ids),
        pa.array(min_time.astype("datetime64[us]")),
    ], schema=SCHEMAS["sessions"])


def urls(spec: DatagenSpec, index: int) -> pa.Table:
    """Fragment ``index`` of urls."""
    lo = index * URLS_PER_FRAGMENT
    hi = min(spec.urls, lo + URLS_PER_FRAGMENT)
    gen = dist.rng(spec.seed, dist.URLS, index)
    ids = np.arange(lo + 1, hi + 1, dtype=np.int32)
    category = gen.choice(_CATEGORIES, hi - lo)
    paths = np.char.add(np.char.add(np.char.add("/", category), "/page-"), ids.astype(str))
    return pa.table([pa.array(ids), pa.array(paths), pa.array(category)],
                    schema=SCHEMAS["urls"])


BUILDERS = {"access_log": access_log, "users": users, "sessions": sessions, "urls": urls}
