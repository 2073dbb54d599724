"""Reading SQL text into sqlglot tokens (Trino dialect), and positions in the text.

Every statement is tokenized once (cached): the parser, error positions and arity checks all
read the same tokens. Text the tokenizer rejects (an unterminated string, quoted identifier
or comment) becomes a :class:`SqlError` naming what is unterminated and where it starts.
"""

from __future__ import annotations

import functools

import sqlglot
from sqlglot.errors import TokenError
from sqlglot.tokenizer_core import Token

from mpp.errors import SqlError

DIALECT = "trino"


@functools.lru_cache(maxsize=8)
def tokens(sql: str) -> tuple[Token, ...]:
    """The tokens of ``sql`` (cached: binding locates every call it binds in the same text).

    Raises SqlError naming an unterminated string, quoted identifier or comment."""
    try:
        return tuple(sqlglot.Dialect.get_or_raise(DIALECT).tokenize(sql))
    except TokenError:
        raise token_error(sql) from None


@functools.lru_cache(maxsize=8)
def token_starts(sql: str) -> dict[int, int]:
    """Token index by start offset (binding looks up every call it binds: no linear scan)."""
    return {t.start: i for i, t in enumerate(tokens(sql))}


def offset_to_line_col(sql: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of the character at ``offset``."""
    offset = max(0, min(offset, len(sql)))
    line = sql.count("\n", 0, offset) + 1
    return line, offset - (sql.rfind("\n", 0, offset) + 1) + 1


# What opens a construct the tokenizer must see closed, and what closes it: its name in errors.
_DELIMITED = (("--", "\n", None), ("/*", "*/", "comment"), ("'", "'", "string literal"),
              ('"', '"', "quoted identifier"))


def _unterminated(sql: str) -> tuple[str, int] | None:
    """(what, offset) of the first string literal, quoted identifier or block comment of
    ``sql`` that is opened and never closed, scanning as Trino's lexer does (a doubled quote
    inside quotes is the quote character itself); None if every one is closed."""
    i = 0
    while i < len(sql):
        opened = next((d for d in _DELIMITED if sql.startswith(d[0], i)), None)
        if opened is None:
            i += 1
            continue
        start, close, what = i, opened[1], opened[2]
        i += len(opened[0])
        while True:
            end = sql.find(close, i)
            if end < 0:
                if what is None:  # a -- comment may end the text
                    return None
                return what, start
            i = end + len(close)
            if len(close) == 1 and close in "'\"" and sql.startswith(close, i):
                i += 1  # '' inside a string, "" inside an identifier
                continue
            break
    return None


def token_error(sql: str) -> SqlError:
    """The SqlError for text sqlglot's tokenizer rejects: what is unterminated, and where it
    starts (sqlglot says only "Error tokenizing" and the text)."""
    found = _unterminated(sql)
    if found is None:
        line, col = offset_to_line_col(sql, len(sql.rstrip()) - 1 if sql.strip() else 0)
        return SqlError("syntax error: cannot read the text into tokens", line, col)
    what, offset = found
    closer = {"comment": "*/", "string literal": "'", "quoted identifier": '"'}[what]
    return SqlError(f"syntax error: unterminated {what} (no closing {closer})",
                    *offset_to_line_col(sql, offset))
