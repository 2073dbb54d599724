"""The oracle's translations of scalar functions where Trino and DuckDB differ.

:func:`translate_functions` rewrites a typed sqlglot tree (Trino's meaning) so that DuckDB
computes Trino's answer; :func:`mpp.oracle.duckdb_sql` calls it. Each difference, one rewrite:

* ``split_part(s, d, i)`` past the last field is NULL in Trino, '' in DuckDB;
* ``regexp_extract(s, p[, g])`` without a match is NULL in Trino, '' in DuckDB;
* ``date_format(x, f)`` takes MySQL's tokens (``%i`` minutes, ``%s`` seconds, ``%c`` the
  month without padding, ``%M`` the month's name, ...): they become DuckDB's strftime tokens
  (sqlglot's own translation of them is not Trino's);
* ``from_unixtime(x)`` is a timestamp(3) (the seconds rounded to milliseconds) in Trino and a
  TIMESTAMP WITH TIME ZONE in DuckDB;
* ``date_add(unit, n, d)`` and ``d +/- INTERVAL`` of a DATE is a DATE in Trino, a TIMESTAMP
  in DuckDB: cast back.

``concat`` (NULL if any argument is) and ``greatest``/``least`` (the same) sqlglot already
writes as DuckDB's ``||`` and a NULL check; ``round`` is half away from zero in both.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from mpp.sql.parse import written_string_argument

# MySQL's date_format tokens (Trino) -> DuckDB's strftime; others are the same letter.
_DATE_FORMAT = {"c": "%-m", "e": "%-d", "k": "%-H", "l": "%-I", "i": "%M", "s": "%S",
                "h": "%I", "M": "%B", "W": "%A", "T": "%H:%M:%S", "r": "%I:%M:%S %p",
                "%": "%%"}
_SAME = set("YymdHIpbajfS")


def duckdb_date_format(fmt: str) -> str:
    """Trino's (MySQL's) ``date_format`` pattern as a DuckDB strftime pattern."""
    out, i = [], 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            token = fmt[i + 1]
            out.append(_DATE_FORMAT.get(token, f"%{token}" if token in _SAME else token))
            i += 2
        else:
            out.append("%%" if fmt[i] == "%" else fmt[i])
            i += 1
    return "".join(out)


def _duck(node: exp.Expr) -> str:
    return node.sql(dialect="duckdb")


def _parse(text: str) -> exp.Expr:
    return exp.paren(sqlglot.parse_one(text, read="duckdb"), copy=False)


def _split_part(node: exp.SplitPart) -> exp.Expr:
    s, d, i = (_duck(node.args[k]) for k in ("this", "delimiter", "part_index"))
    return _parse(f"CASE WHEN ({i}) <= LEN(STRING_SPLIT({s}, {d})) "
                  f"THEN SPLIT_PART({s}, {d}, {i}) END")


def _regexp_extract(node: exp.RegexpExtract) -> exp.Expr:
    s, p = _duck(node.this), _duck(node.expression)
    group = node.args.get("group")
    g = _duck(group) if group is not None else "0"
    return _parse(f"CASE WHEN REGEXP_MATCHES({s}, {p}) THEN REGEXP_EXTRACT({s}, {p}, {g}) END")


def written_formats(tree: exp.Expr, sql: str) -> exp.Expr:
    """``tree`` (as parsed from ``sql``) with each date_format pattern as the user wrote it:
    sqlglot translates it to its own tokens while parsing, which are not Trino's. Done before
    typing, while the literals still know where they were written."""
    for node in tree.find_all(exp.TimeToStr):
        text = written_string_argument(node, sql, 1)
        if text is not None:
            node.set("format", exp.Literal.string(text))
    return tree


def _date_format(node: exp.TimeToStr) -> exp.Expr:
    pattern = duckdb_date_format(node.args["format"].name).replace("'", "''")
    return _parse(f"STRFTIME({_duck(node.this)}, '{pattern}')")


def _from_unixtime(node: exp.UnixToTime) -> exp.Expr:
    return _parse(f"MAKE_TIMESTAMP(CAST(FLOOR(({_duck(node.this)}) * 1000 + 0.5) AS BIGINT) "
                  "* 1000)")


def _is_date(node: exp.Expr | None) -> bool:
    return node is not None and node.type is not None and node.is_type(exp.DType.DATE)


def translate_functions(tree: exp.Expr) -> exp.Expr:
    """``tree`` (typed; its date_format patterns restored by :func:`written_formats`) with
    Trino's function semantics spelled for DuckDB; see the module docstring."""
    for node in reversed(list(tree.find_all(exp.SplitPart, exp.RegexpExtract, exp.TimeToStr,
                                            exp.UnixToTime))):  # inner ones first
        if isinstance(node, exp.SplitPart):
            node.replace(_split_part(node))
        elif isinstance(node, exp.RegexpExtract):
            node.replace(_regexp_extract(node))
        elif isinstance(node, exp.TimeToStr):
            node.replace(_date_format(node))
        else:
            node.replace(_from_unixtime(node))
    for node in list(tree.find_all(exp.DateAdd, exp.Add, exp.Sub)):
        if isinstance(node, exp.DateAdd):
            date = _is_date(node.this)
        else:
            sides = (node.this, node.expression)
            date = (any(isinstance(s, exp.Interval) for s in sides)
                    and any(_is_date(s) for s in sides if not isinstance(s, exp.Interval)))
        if date:
            node.replace(exp.cast(node.copy(), exp.DType.DATE))
    return tree
