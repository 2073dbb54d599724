"""Where a table's files may lie: table names, table directories, and the warehouse's place.

A table's files live in its own directory, ``<warehouse>/<name>/``, so a table name must be a
plain identifier: letters, digits and underscores, not starting with a digit. Anything else
(``"."``, ``".."``, ``"./users"``, ``"../x"``, ``""``, control characters) would name a folder
that is the warehouse itself, its parent, or another table's, and DROP TABLE would delete it.
Such names are refused with a :class:`~mpp.errors.CatalogError` at every entry point
(CREATE TABLE AS, datagen, the Python API, registration). Independently of the name check,
every location is checked to lie strictly inside the warehouse before anything is written to
or deleted from it (defence in depth).

Iceberg keeps absolute file locations, so a warehouse directory that was copied or moved
still names the original's files. :func:`moved_from` finds that on open from the catalog's
own pointers (no file is read): the caller refuses to work until ``mpp catalog relocate``
(:mod:`mpp.catalog.relocate`) has rewritten the metadata for the new place.
"""

from __future__ import annotations

import os
import posixpath
import re
from urllib.parse import urlparse

import sqlalchemy as sa

from mpp.errors import CatalogError

MAX_NAME_LENGTH = 128
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_table_name(name: object) -> str:
    """``name`` if it is a plain identifier; CatalogError naming it and saying why otherwise."""
    if not isinstance(name, str) or not _PLAIN_NAME.match(name) or len(name) > MAX_NAME_LENGTH:
        raise CatalogError(
            f"table name {name!r} is not allowed: a table name names the table's directory in "
            "the warehouse, so it must be a plain identifier (letters, digits and underscores, "
            f"not starting with a digit, at most {MAX_NAME_LENGTH} characters)")
    return name


def _split(uri: str) -> tuple[str, str]:
    """``(scheme://netloc, normalised path)`` of a URL or local path."""
    if "://" not in uri:
        return "file://", os.path.realpath(uri)
    parsed = urlparse(uri)
    path = posixpath.normpath(parsed.path or "/")
    if parsed.scheme == "file":
        path = os.path.realpath(path)  # symlinks resolved, as the warehouse root is
    return f"{parsed.scheme}://{parsed.netloc}", path


def is_inside(uri: str, root: str) -> bool:
    """True iff ``uri`` lies strictly inside ``root`` (after ``..`` and symlinks resolve)."""
    (base, path), (root_base, root_path) = _split(uri), _split(root)
    return base == root_base and path.startswith(root_path.rstrip("/") + "/")


def table_location(warehouse: str, name: str) -> str:
    """The directory of table ``name``: ``<warehouse>/<name>``, checked to lie inside it."""
    location = f"{warehouse.rstrip('/')}/{check_table_name(name)}"
    if not is_inside(location, warehouse):  # e.g. a symlink planted as the table's folder
        raise CatalogError(f"table {name!r}: its directory {location} resolves outside the "
                           f"warehouse {warehouse}; remove that link or folder first")
    return location


def _root_of(location: str, depth: int) -> str:
    """The folder ``depth`` levels above ``location`` (the warehouse a table lay in)."""
    for _ in range(depth):
        location = location.rstrip("/").rsplit("/", 1)[0]
    return location


def _nested_warehouse(pointer: str, root: str) -> str | None:
    """The folder between ``root`` and ``pointer`` (both local) holding a warehouse's own
    catalog.db, if any: ``pointer`` then belongs to that warehouse, not to ``root``."""
    (base, path), (_, root_path) = _split(pointer), _split(root)
    if base != "file://":
        return None
    folder = os.path.dirname(path)
    while folder.startswith(root_path.rstrip("/") + "/"):
        if os.path.exists(os.path.join(folder, "catalog.db")):
            return folder
        folder = os.path.dirname(folder)
    return None


def moved_from(engine: sa.Engine, root: str, owned_external: dict[str, str]) -> str | None:
    """The warehouse this one was copied or moved from, or None if it is in its own place.

    Reads the Iceberg catalog's metadata pointers (catalog and namespace ``mpp``), which
    must lie in ``<root>/<table>/metadata/``, and the locations of the external tables mpp wrote
    (``owned_external``: name -> location), which must be ``<root>/<table>``; registered
    tables, which point at the user's own files, are not passed in.
    """
    try:
        with engine.connect() as con:
            pointers = con.execute(sa.text(
                "SELECT table_name, metadata_location FROM iceberg_tables "
                "WHERE catalog_name = 'mpp' AND table_namespace = 'mpp'")).all()
    except sa.exc.OperationalError:  # no Iceberg table was ever created here
        pointers = []
    for name, pointer in pointers:
        if not pointer or is_inside(pointer, f"{root.rstrip('/')}/{name}"):
            continue
        if is_inside(pointer, root):
            # Another engine may place a table elsewhere in the warehouse (pyiceberg:
            # <wh>/<namespace>/<table>); that is in place unless it lies in a warehouse nested
            # inside this one (a copy of this warehouse made inside a folder of its own).
            nested = _nested_warehouse(pointer, root)
            if nested is None:
                continue
            return nested
        return _root_of(pointer, 3)
    for name, location in owned_external.items():
        if _split(location) != _split(f"{root.rstrip('/')}/{name}"):
            return _root_of(location, 1)
    return None


def moved_error(root: str, old: str) -> CatalogError:
    """The error every read and write of a copied or moved warehouse gets."""
    here, there = shown(root), shown(old)
    return CatalogError(
        f"the warehouse at {here} was copied or moved from {there}: its Iceberg metadata "
        f"keeps absolute file locations under {there}, so reading it would read (and writing "
        "or dropping would change) the other warehouse's files, and mpp refuses to. Run "
        f"`mpp catalog relocate -w {here}` to make this warehouse use its own files (nothing "
        f"under {there} is read, changed or deleted)")


def shown(uri: str) -> str:
    """A local path for ``file://`` URLs (what the user typed), the URL otherwise."""
    parsed = urlparse(uri)
    return parsed.path if parsed.scheme == "file" else uri
