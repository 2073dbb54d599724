"""Parsing SQL text (Trino dialect) with sqlglot, and pointing at places in it.

Every SQL error mpp raises names a 1-based line and column. sqlglot's tokens carry their
offsets in ``node.meta`` (identifiers, literals, function names); nodes without a token of their
own (a UNION, a window, a join) are located by the nearest token inside them or by the keyword
that introduces them.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import Token, TokenType

from mpp.errors import SqlError

DIALECT = "trino"


def parse(sql: str) -> exp.Expr:
    """Parse one Trino statement; syntax errors become :class:`SqlError` with line and column."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except ParseError as err:
        info = err.errors[0] if err.errors else {}
        highlight = str(info.get("highlight") or "")
        line, col = info.get("line"), info.get("col")
        if isinstance(col, int) and highlight:
            col = max(1, col - len(highlight) + 1)  # sqlglot reports the token's last column
        near = f" near {highlight!r}" if highlight else ""
        desc = str(info.get("description") or err).split("\n")[0]
        raise SqlError(f"syntax error: {desc}{near}", line, col) from None
    except TokenError as err:
        line, col = _token_error_position(sql, str(err))
        raise SqlError(f"syntax error: cannot tokenize the text ({err})", line, col) from None
    if not statements:
        raise SqlError("empty query: expected a SELECT statement", 1, 1)
    if len(statements) > 1:
        line, col = locate(statements[1], sql)
        raise SqlError("only one statement per query is supported", line, col)
    return statements[0]


def _token_error_position(sql: str, message: str) -> tuple[int, int]:
    """Best-effort position of a tokenizer error: usually an unterminated string or comment."""
    for quote in ("'", '"'):
        if sql.count(quote) % 2 == 1:
            return offset_to_line_col(sql, sql.rfind(quote))
    return offset_to_line_col(sql, len(sql.rstrip()) - 1 if sql.strip() else 0)


def offset_to_line_col(sql: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of the character at ``offset``."""
    offset = max(0, min(offset, len(sql)))
    line = sql.count("\n", 0, offset) + 1
    return line, offset - (sql.rfind("\n", 0, offset) + 1) + 1


def _start(node: exp.Expr) -> int | None:
    """Smallest token offset inside ``node`` (its own or a descendant's)."""
    starts = [n.meta["start"] for n in node.walk() if n.meta and "start" in n.meta]
    return min(starts) if starts else None


def _end(node: exp.Expr) -> int | None:
    ends = [n.meta["end"] for n in node.walk() if n.meta and "end" in n.meta]
    return max(ends) if ends else None


def _tokens(sql: str) -> list[Token]:
    return sqlglot.Dialect.get_or_raise(DIALECT).tokenize(sql)


def locate(node: exp.Expr, sql: str, keyword: TokenType | None = None) -> tuple[int, int]:
    """1-based (line, column) of ``node`` in ``sql``.

    With ``keyword`` (e.g. ``TokenType.UNION``), the position of that keyword inside the node's
    span, or else the last one before it, so "UNION" errors point at the word UNION.
    """
    start, end = _start(node), _end(node)
    if start is None and isinstance(node, exp.Func):  # e.g. CURRENT_DATE: find it by name
        names = {node.sql_name().lower(), node.key.lower()}
        hits = [t.start for t in _tokens(sql) if t.text.lower() in names]
        if hits:
            return offset_to_line_col(sql, hits[0])
    if keyword is not None:
        hits = [t.start for t in _tokens(sql) if t.token_type == keyword]
        inside = [h for h in hits if start is not None and end is not None and start <= h <= end]
        before = [h for h in hits if start is not None and h < start]
        if inside:
            return offset_to_line_col(sql, inside[0])
        if before:
            return offset_to_line_col(sql, before[-1])
        if hits:
            return offset_to_line_col(sql, hits[0])
    if start is None:
        return 1, 1
    return offset_to_line_col(sql, start)


def statement_start(sql: str) -> tuple[int, int]:
    """1-based (line, column) of the first token of ``sql`` (after comments)."""
    tokens = _tokens(sql)
    return offset_to_line_col(sql, tokens[0].start) if tokens else (1, 1)


def unsupported(node: exp.Expr, sql: str, construct: str,
                keyword: TokenType | None = None, hint: str = "") -> SqlError:
    """A :class:`SqlError` saying ``construct`` is outside mpp's SQL subset, located at ``node``."""
    line, col = locate(node, sql, keyword)
    return SqlError(f"unsupported SQL: {construct} is not in mpp's SQL subset{hint}", line, col)
