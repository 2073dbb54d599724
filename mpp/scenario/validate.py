"""Reading typed fields out of a parsed TOML table, collecting every problem with its key path.

The scenario spec is validated in one pass that reports *all* problems, not just the first:
each names the key path (``variants[1].settings.join.strategy``; list indices are 0-based), what
is wrong, and a hint (the closest known key, or the expected type).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from mpp.errors import ScenarioError, suggest

_MISSING: Any = object()

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
               list: "an array", dict: "a table"}


def type_name(kind: type | tuple[type, ...]) -> str:
    """Human name of a TOML type (or alternatives) for "expected ..." hints."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)


def describe(value: Any) -> str:
    """What a TOML value is, for "got ..." hints: ``a string ('abc')``."""
    for kind in (bool, int, float, str, list, dict):
        if isinstance(value, kind):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            return f"{_TYPE_NAMES[kind]} ({shown})" if kind not in (list, dict) \
                else _TYPE_NAMES[kind]
    return type(value).__name__


def join(path: str, key: str | int) -> str:
    """Extend a key path: ``join("variants", 1) == "variants[1]"``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Problems:
    """The problems found in one scenario file, raised together as one ScenarioError."""

    def __init__(self, source: str):
        self.source = source
        self.items: list[str] = []

    def add(self, path: str, message: str, hint: str = "") -> None:
        """Record that the value at ``path`` is wrong; ``hint`` says what would be right."""
        where = path or "(top level)"
        self.items.append(f"{where}: {message}" + (f" {hint.strip()}" if hint else ""))

    def raise_if_any(self) -> None:
        """Raise a ScenarioError listing every problem, if there is one."""
        if not self.items:
            return
        if len(self.items) == 1:
            message = self.items[0]
        else:
            message = f"{len(self.items)} problems:\n" + "\n".join(f"  {p}" for p in self.items)
        raise ScenarioError(message, file=self.source, problems=tuple(self.items))

    def unknown_keys(self, table: Mapping[str, Any], allowed: Collection[str], path: str) -> None:
        """Report every key of ``table`` not in ``allowed``, with the closest known key."""
        for key in table:
            if key not in allowed:
                hint = suggest(key, allowed) or f"Known keys: {', '.join(sorted(allowed))}."
                self.add(join(path, key), "unknown key.", hint)

    def get(self, table: Mapping[str, Any], key: str, kind: type | tuple[type, ...],
            path: str, default: Any = _MISSING) -> Any:
        """``table[key]`` checked against ``kind``; reports and returns ``default`` when bad.

        Without a default the key is required. An int is accepted where a float is expected;
        a bool never counts as an int.
        """
        full = join(path, key)
        if key not in table:
            if default is _MISSING:
                self.add(full, "missing required key.", f"Expected {type_name(kind)}.")
                return None
            return default
        value = table[key]
        if not _is_kind(value, kind):
            self.add(full, f"expected {type_name(kind)}, got {describe(value)}.",
                     _float_for_int_hint(value, kind))
            return None if default is _MISSING else default
        return float(value) if kind is float else value

    def table(self, table: Mapping[str, Any], key: str, path: str,
              required: bool = False) -> dict[str, Any]:
        """A sub-table (``{}`` when absent and optional, or when reported as bad)."""
        value = self.get(table, key, dict, path, default=_MISSING if required else {})
        return value if isinstance(value, dict) else {}

    def tables(self, table: Mapping[str, Any], key: str,
               path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The tables of an array of tables (``[[key]]``), each with its key path."""
        items = self.get(table, key, list, path, default=[]) or []
        for i, item in enumerate(items):
            where = join(join(path, key), i)
            if isinstance(item, dict):
                yield where, item
            else:
                self.add(where, f"expected a table, got {describe(item)}.",
                         f"Write it as [[{key}]].")


def _float_for_int_hint(value: Any, kind: type | tuple[type, ...]) -> str:
    """For a float where an integer is meant (``rows = 1e15``): how to write the integer."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, float) or int not in kinds or float in kinds:
        return ""
    digits = f" ({int(value):_})" if value.is_integer() and abs(value) < 1e30 else ""
    return f"TOML reads 1e15 and 1.0 as floats; write the integer in digits{digits}."


def _is_kind(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool):
        return bool in kinds
    if float in kinds and isinstance(value, int):
        return True
    return isinstance(value, kinds)


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted names of a nested TOML table: ``{"join": {"strategy": "x"}} -> {"join.strategy": "x"}``.

    TOML turns ``join.strategy = "x"`` into nested tables, while ``"join.strategy" = "x"`` stays
    one key; settings accept both spellings.
    """
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out
