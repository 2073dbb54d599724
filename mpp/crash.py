"""Internal errors (bugs in mpp) at the command's edge: one line for the user, the full
traceback in a file.

A bad input is an :class:`~mpp.errors.MppError` and reads as one line. Anything else that
reaches the ``mpp`` command's edge is a bug: the user sees one line saying so, with the query
it happened in (when known) and the path of a file holding the full traceback, which is what a
bug report needs. The layers that know a fact about the failure attach it on the way out:

    >>> from mpp import crash
    >>> try:
    ...     with crash.context(query_id="q1-abcd1234"):
    ...         raise ZeroDivisionError("division by zero")
    ... except ZeroDivisionError as exc:
    ...     print(crash.facts(exc))
    {'query_id': 'q1-abcd1234'}

The innermost fact wins (the query a failure happened in, not the scenario's last one).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import re
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path

from mpp.errors import MppError

# Exit code of an internal error (0 ok, 1 a scenario check failed, 2 bad input, 130 Ctrl-C).
EXIT_INTERNAL = 3
# Exit code after Ctrl-C: 128 + SIGINT, what shells report for an interrupted command.
EXIT_INTERRUPTED = 130
# Exit code when the reader of stdout went away (`| head`): 128 + SIGPIPE, as if killed by it.
EXIT_BROKEN_PIPE = 141
FACTS = ("query_id", "scenario", "folder")
_ATTR = "_mpp_crash_facts"


def facts(exc: BaseException) -> dict[str, str]:
    """The facts (query id, scenario, folder for the report) attached to ``exc``."""
    return dict(getattr(exc, _ATTR, {}))


def attach(exc: BaseException, **known: str | os.PathLike[str] | None) -> None:
    """Attach facts to ``exc`` unless an inner layer already attached the same ones."""
    current = getattr(exc, _ATTR, {})
    for key, value in known.items():
        if key not in FACTS:
            raise TypeError(f"unknown crash fact {key!r}; one of {', '.join(FACTS)}")
        if value is not None and key not in current:
            current[key] = str(value)
    with contextlib.suppress(AttributeError, TypeError):  # an exception without a __dict__
        setattr(exc, _ATTR, current)


@contextlib.contextmanager
def context(**known: str | os.PathLike[str] | None) -> Iterator[None]:
    """Attach ``known`` facts to any non-MppError exception leaving the block (bad input
    needs none: its message says what is wrong)."""
    try:
        yield
    except MppError:
        raise
    except Exception as exc:
        attach(exc, **known)
        raise


def report_folder(exc: BaseException) -> Path:
    """Where the traceback file of ``exc`` goes: the folder a layer attached (a scenario's runs
    folder), else ``mpp-crash`` in the system temp dir. A warehouse folder is never used: it
    may be read-only, remote or shared, and every file in it is the catalog's."""
    folder = facts(exc).get("folder")
    return Path(folder) if folder else Path(tempfile.gettempdir()) / "mpp-crash"


def write_report(exc: BaseException, argv: list[str] | None = None) -> Path:
    """Write the full traceback of ``exc``, with the command line, versions and attached facts,
    to a new file; return its path. Falls back to the temp dir if the folder is unwritable."""
    known = facts(exc)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    label = re.sub(r"[^A-Za-z0-9_.-]", "_", known.get("query_id", "")) or f"pid{os.getpid()}"
    text = _report_text(exc, argv if argv is not None else sys.argv, known)
    for folder in (report_folder(exc), Path(tempfile.gettempdir()) / "mpp-crash"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"mpp-crash-{stamp}-{label}.txt"
            n = 1
            while path.exists():
                n += 1
                path = folder / f"mpp-crash-{stamp}-{label}-{n}.txt"
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    raise OSError("cannot write a crash report")  # not even the temp dir is writable


def _report_text(exc: BaseException, argv: list[str], known: dict[str, str]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        mpp_version = version("mpp")
    except PackageNotFoundError:
        mpp_version = "unknown"
    head = [f"mpp internal error at {dt.datetime.now().isoformat(timespec='seconds')}",
            f"command: {' '.join(argv)}",
            f"mpp {mpp_version}, Python {platform.python_version()}, {platform.platform()}"]
    head += [f"{k}: {v}" for k, v in known.items()]
    return "\n".join(head) + "\n\n" + "".join(traceback.format_exception(exc))


def one_line(exc: BaseException, report: Path | None) -> str:
    """The line the user sees: that it is an internal error, where, what, and the report."""
    known = facts(exc)
    where = [f"scenario {known['scenario']!r}"] if "scenario" in known else []
    where += [f"query {known['query_id']}"] if "query_id" in known else []
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not break the one line
        message = "(its message cannot be printed)"
    what = f"{type(exc).__name__}: {message}".strip().rstrip(":").splitlines()[0]
    tail = (f"full traceback in {report}" if report is not None
            else "no traceback file could be written")
    return (f"mpp: internal error (a bug in mpp, not in your input)"
            f"{' in ' + ', '.join(where) if where else ''}: {what}; {tail}")
