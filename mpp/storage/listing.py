"""Finding a user's data files: one file, a directory, or a glob, and Hive-style folders.

``list_files`` turns what a user typed (``/data/orders.parquet``, ``/data/orders/``,
``/data/orders/*.csv``, ``s3://bucket/orders/year=*/``) into the sorted list of data files it
names, plus the base folder that Hive-style ``key=value/`` folder names are read below. As in
Hive and Trino, files and folders whose names start with ``.`` or ``_`` (``_SUCCESS``,
``.crc`` files, ``_temporary/``) are not data and are skipped.

``path_partition`` reads the ``key=value`` folders between the base folder and a file, and
``partition_types`` types their values the way a Hive metastore would have declared them
(documented in docs/usage.md): all integers -> BIGINT, all ISO dates -> DATE, else VARCHAR;
``__HIVE_DEFAULT_PARTITION__`` is NULL.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import posixpath
import re
from collections.abc import Sequence
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.fs as pafs

from mpp.errors import StorageError
from mpp.storage.files import resolve, storage_errors

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
_GLOB = re.compile(r"[*?\[]")
_INT = re.compile(r"[+-]?\d{1,18}\Z")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


def _hidden(relative: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative.split("/") if part)


def _split(path: str) -> tuple[pafs.FileSystem, str, str]:
    """``(filesystem, absolute path inside it, URL prefix)`` of what the user typed."""
    if "://" not in path:
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path)), ""
    scheme = path.split("://", 1)[0]
    fs, fs_path = resolve(path)
    return fs, fs_path, "" if scheme == "file" else f"{scheme}://"


def _url(prefix: str, fs_path: str) -> str:
    # Not Path.as_uri(): it percent-encodes "=" of key=value folders, and local_path() reads
    # file URLs verbatim (as the warehouse's own partition folders are written).
    return f"file://{fs_path}" if not prefix else prefix + fs_path.lstrip("/")


def list_files(path: str) -> tuple[str, list[str]]:
    """``(base URL, sorted data file URLs)`` named by ``path`` (a file, folder or glob).

    The base is the folder Hive partition folders are read below: the folder itself, the
    glob's folder before its first wildcard, or a single file's folder. Raises StorageError
    naming ``path`` when nothing matches.
    """
    fs, fs_path, prefix = _split(path)
    wildcard = _GLOB.search(fs_path)
    pattern = fs_path.rstrip("/") if wildcard else None
    if wildcard:
        base_path = fs_path[: wildcard.start()].rsplit("/", 1)[0] or "/"
    else:
        base_path = fs_path.rstrip("/") or "/"
    with storage_errors(path):
        info = fs.get_file_info(base_path)
        if pattern is None and info.type == pafs.FileType.File:
            return _url(prefix, posixpath.dirname(base_path)), [_url(prefix, base_path)]
        if info.type != pafs.FileType.Directory:
            raise StorageError("no such file or directory (nothing to register)", path)
        found = fs.get_file_info(pafs.FileSelector(base_path, recursive=True))
    files = []
    for entry in found:
        if entry.type != pafs.FileType.File:
            continue
        if _hidden(entry.path[len(base_path):]):
            continue
        if pattern is not None and not _matches(entry.path, pattern):
            continue
        files.append(entry.path)
    if not files:
        raise StorageError("no data files match (hidden files starting with '.' or '_' are "
                           "skipped)", path)
    return _url(prefix, base_path), [_url(prefix, f) for f in sorted(files)]


def _matches(file_path: str, pattern: str) -> bool:
    """Does ``file_path`` match the glob, or lie in a folder the glob matches?"""
    parts = file_path.split("/")
    depth = pattern.count("/") + 1
    return len(parts) >= depth and fnmatch.fnmatchcase("/".join(parts[:depth]), pattern)


def path_partition(base: str, uri: str) -> tuple[tuple[str, str | None], ...]:
    """The ``key=value`` folders between ``base`` and the file ``uri``, values unescaped
    (Hive percent-encodes special characters); ``__HIVE_DEFAULT_PARTITION__`` is None."""
    rel = resolve(uri)[1][len(resolve(base)[1].rstrip("/")):].strip("/")
    out = []
    for folder in rel.split("/")[:-1]:
        key, sep, value = folder.partition("=")
        if sep and key:
            text = unquote(value)
            out.append((unquote(key), None if text == HIVE_NULL else text))
    return tuple(out)


def partition_types(values: dict[str, Sequence[str | None]]) -> dict[str, pa.DataType]:
    """The type of each partition column from all its folder values (nulls say nothing)."""
    out = {}
    for key, texts in values.items():
        seen = [t for t in texts if t is not None]
        if seen and all(_INT.match(t) for t in seen):
            out[key] = pa.int64()
        elif seen and all(_DATE.match(t) and _is_date(t) for t in seen):
            out[key] = pa.date32()
        else:
            out[key] = pa.string()
    return out


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def typed_value(text: str | None, type_: pa.DataType) -> object:
    """A partition folder value as a Python value of ``type_``."""
    if text is None:
        return None
    if pa.types.is_integer(type_):
        return int(text)
    if pa.types.is_date(type_):
        return dt.date.fromisoformat(text)
    return text
