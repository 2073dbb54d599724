"""Parsing SQL text (Trino dialect) with sqlglot, and pointing at places in it.

Every SQL error mpp raises names a 1-based line and column. sqlglot's tokens carry their
offsets in ``node.meta`` (identifiers, literals, function names); nodes without a token of their
own (a UNION, a window, a join) are located by the nearest token inside them or by the keyword
that introduces them.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator, Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import Token, TokenType

from mpp.errors import SqlError
from mpp.functions import lookup
from mpp.sql.lexing import DIALECT, offset_to_line_col
from mpp.sql.lexing import token_error as _token_error
from mpp.sql.lexing import token_starts as _token_starts
from mpp.sql.lexing import tokens as _tokens

# How deeply expressions may nest (parentheses, operands of operands), and the Python stack
# that parsing and binding that deep takes: sqlglot's parser recurses about 20 frames per
# parenthesis (Python's default limit of 1,000 fails near 48). Chains of AND/OR do not nest:
# the binder flattens them, so a generated 5,000-term OR is one level.
MAX_NESTING = 100
_STACK_FRAMES = 12_000


@contextlib.contextmanager
def deep_stack() -> Iterator[None]:
    """Run the block with room for ``MAX_NESTING`` levels of sqlglot recursion (the limit is
    raised, never lowered, and restored after), and report running out as a SqlError."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, _STACK_FRAMES))
    try:
        yield
    except RecursionError:
        raise too_deep() from None
    finally:
        sys.setrecursionlimit(old)


def too_deep(line: int | None = None, column: int | None = None) -> SqlError:
    """The error for an expression nested beyond ``MAX_NESTING`` levels."""
    return SqlError(f"expression nested too deeply (more than {MAX_NESTING} levels)", line,
                    column)


def parse(sql: str) -> exp.Expr:
    """Parse one Trino statement; syntax errors become :class:`SqlError` with line and column.

    Expressions nested more than ``MAX_NESTING`` levels deep are refused with a SqlError
    pointing at where the limit is passed, never a RecursionError.
    """
    tokens = _tokens(sql)
    _check_parentheses(sql, tokens)
    try:
        with deep_stack():  # the tokens once: a 5,000-term OR takes a second to tokenize
            parser = sqlglot.Dialect.get_or_raise(DIALECT).parser()
            statements = [s for s in parser.parse(list(tokens), sql) if s is not None]
    except ParseError as err:
        raise _syntax_error(sql, err) from None
    except TokenError:
        raise _token_error(sql) from None
    for statement in statements:
        _check_depth(statement, sql)
        _normalise_aggregates(statement, sql, tokens)
    if not statements:
        raise SqlError("empty query: expected a SELECT statement", 1, 1)
    if len(statements) > 1:
        line, col = locate(statements[1], sql)
        raise SqlError("only one statement per query is supported", line, col)
    return statements[0]


# The names sqlglot parses into ArgMin/ArgMax (Trino's min_by/max_by and other dialects').
_BY_NAMES = frozenset({"min_by", "max_by", "arg_min", "arg_max", "argmin", "argmax"})


def _normalise_aggregates(tree: exp.Expr, sql: str, tokens: Sequence[Token]) -> None:
    """Trino's ``every(x)`` is ``bool_and(x)`` (sqlglot parses it as an unknown function), and
    min_by/max_by get the position of their name (sqlglot's nodes for them have none)."""
    for node in list(tree.find_all(exp.Anonymous)):
        if node.name.lower() == "every" and len(node.expressions) == 1:
            replacement = exp.LogicalAnd(this=node.expressions[0].copy())
            replacement.meta.update(node.meta)
            node.replace(replacement)
    for node in tree.find_all(exp.ArgMin, exp.ArgMax):
        start = _start(node)
        index = _token_starts(sql).get(start) if start is not None and not node.meta else None
        call = _enclosing_call(tokens, index) if index is not None else None
        # The first argument may itself be a call (min_by(CAST(x AS ...), y)): go outwards.
        while call is not None and tokens[call].text.lower() not in _BY_NAMES:
            call = _enclosing_call(tokens, call)
        if call is not None:
            name = tokens[call]
            node.meta.update(line=name.line, col=name.col, start=name.start, end=name.end)


def _check_parentheses(sql: str, tokens: Sequence[Token]) -> None:
    """Refuse parentheses nested more than ``MAX_NESTING`` deep, before sqlglot recurses."""
    depth = 0
    for token in tokens:
        if token.token_type == TokenType.L_PAREN:
            depth += 1
            if depth > MAX_NESTING:
                raise too_deep(*offset_to_line_col(sql, token.start))
        elif token.token_type == TokenType.R_PAREN:
            depth = max(0, depth - 1)


# Nodes that do not count as a level of expression nesting: the statement's structure
# (subqueries are limited by the plan depth, see mpp.sql.bind) and parentheses.
_STRUCTURE = (exp.Query, exp.Subquery, exp.CTE, exp.With, exp.From, exp.Where, exp.Having,
              exp.Group, exp.Order, exp.Ordered, exp.Alias, exp.Join, exp.Table, exp.TableAlias,
              exp.Limit, exp.Paren)


def _check_depth(tree: exp.Expr, sql: str) -> None:
    """Refuse expressions nested more than ``MAX_NESTING`` deep (a long ``a + b + c ...``
    chain nests one level per operator; parentheses, clauses and AND/OR chains do not count).

    Iterative: the tree may be thousands of levels deep."""
    stack: list[tuple[exp.Expr, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        for child in node.iter_expressions():
            flat = isinstance(child, _STRUCTURE) or (
                isinstance(child, exp.Connector) and type(child) is type(node))
            below = depth if flat else depth + 1
            if below > MAX_NESTING:
                raise too_deep(*locate(child, sql))
            stack.append((child, below))


# What sqlglot's parser says when a node lacks a required part or a function gets too many
# arguments; the messages name sqlglot's classes, so they are rewritten before a user sees them.
_REQUIRED = re.compile(r"Required keyword: '(\w+)' missing for <class '([\w.]+)'>")
_TOO_MANY = re.compile(r"The number of provided arguments \((\d+)\) is greater than the "
                       r"maximum number of supported arguments \((\d+)\)")
_TOKEN_REPR = re.compile(r"<Token token_type: TokenType\.(\w+), text: (.*?), line: \d+, "
                         r"col: \d+, start: \d+, end: \d+, comments: \[.*?\]>")

ARITIES: dict[str, str] = {
    "date_diff": "3 arguments (unit, start, end)",
    "date_trunc": "2 arguments (unit, value)",
    "date_add": "3 arguments (unit, amount, value)",
    "substring": "2 or 3 arguments (string, start[, length])",
    "if": "2 or 3 arguments (condition, value[, else value])",
    "coalesce": "at least 1 argument",
    "count": "1 argument (or *)",
    "sum": "1 argument",
    "min": "1 argument",
    "max": "1 argument",
    "avg": "1 argument",
    "min_by": "2 arguments (value, ordering value)",
    "max_by": "2 arguments (value, ordering value)",
}
"""How many arguments the functions of mpp's subset take, as error messages say it."""

# Clauses and operators sqlglot reports as "Required keyword ... missing for <class ...>".
_INCOMPLETE: dict[type, str] = {
    exp.Where: "WHERE needs a condition",
    exp.Having: "HAVING needs a condition",
    exp.Order: "ORDER BY needs at least one expression",
    exp.Limit: "LIMIT needs a row count",
    exp.Fetch: "FETCH needs a row count",
    exp.Offset: "OFFSET needs a row count",
    exp.CTE: "a WITH query needs a body: name AS (SELECT ...)",
    exp.Not: "NOT needs an operand",
    exp.Between: "BETWEEN needs both bounds: x BETWEEN low AND high",
    exp.Like: "LIKE needs a pattern",
    exp.In: "IN needs a list of values",
    exp.Case: "CASE needs at least one WHEN condition THEN value",
    exp.If: "CASE WHEN needs a condition and a THEN value",
}


def _syntax_error(sql: str, err: ParseError) -> SqlError:
    """The :class:`SqlError` for sqlglot's ``err``: plain words, the position of the construct."""
    info = err.errors[0] if err.errors else {}
    highlight = str(info.get("highlight") or "")
    line, col = info.get("line"), info.get("col")
    desc = str(info.get("description") or err).split("\n")[0]
    tokens = _tokens_or_none(sql)
    index = _token_at(tokens, line, col) if tokens is not None else None
    if index is not None and tokens is not None:
        line, col = offset_to_line_col(sql, tokens[index].start)
        mapped = _plain_message(desc, tokens, index)
        if mapped is not None:
            message, at = mapped
            return SqlError(f"syntax error: {message}", *offset_to_line_col(sql, at))
    elif isinstance(col, int) and highlight:
        col = max(1, col - len(highlight) + 1)  # sqlglot reports the token's last column
    desc = _TOKEN_REPR.sub(lambda m: "the end of the query" if m.group(1) == "SENTINEL"
                           else repr(m.group(2)), desc)
    if _REQUIRED.search(desc) or _TOO_MANY.search(desc):  # never show sqlglot's class names
        desc = "incomplete expression"
    near = f" near {highlight!r}" if highlight else ""
    return SqlError(f"syntax error: {desc}{near}", line, col)


def _plain_message(desc: str, tokens: Sequence[Token], index: int) -> tuple[str, int] | None:
    """(message, offset) for the sqlglot errors about missing parts and argument counts."""
    required, too_many = _REQUIRED.search(desc), _TOO_MANY.search(desc)
    if required is None and too_many is None:
        return None
    call = (_enclosing_call(tokens, index) if tokens[index].token_type == TokenType.R_PAREN
            else None)
    cls = _sqlglot_class(required.group(2)) if required is not None else None
    if call is not None and (too_many is not None or (cls is not None
                                                      and issubclass(cls, exp.Func))):
        name = tokens[call].text.lower()
        if name in ARITIES:
            return f"{name} takes {ARITIES[name]}", tokens[call].start
        function = lookup(name)
        if function is not None:
            return f"{name} takes {function.arity_text()}", tokens[call].start
        if too_many is not None:
            return f"{name}() has too many arguments ({too_many.group(1)})", tokens[call].start
        return f"{name}() is missing arguments", tokens[call].start
    token = tokens[index]
    for kind, message in _INCOMPLETE.items():
        if cls is not None and issubclass(cls, kind):
            return message, token.start
    if cls is not None and issubclass(cls, exp.SetOperation):
        return f"{token.text.upper()} needs a query on each side", token.start
    if cls is not None and issubclass(cls, exp.Binary):
        return f"operator {token.text.upper()} needs an operand on each side", token.start
    return f"incomplete expression near {token.text!r}", token.start


def _sqlglot_class(dotted: str) -> type | None:
    """The sqlglot expression class named ``dotted`` in one of its error messages."""
    cls = getattr(exp, dotted.rsplit(".", 1)[-1], None)
    return cls if isinstance(cls, type) and issubclass(cls, exp.Expr) else None


def _tokens_or_none(sql: str) -> Sequence[Token] | None:
    try:
        return _tokens(sql)
    except SqlError:
        return None


def _token_at(tokens: Sequence[Token], line: object, col: object) -> int | None:
    """Index of the token sqlglot's error position (line, last column) refers to."""
    for i, t in enumerate(tokens):
        if t.line == line and t.col == col:
            return i
    return None


def _enclosing_call(tokens: Sequence[Token], index: int) -> int | None:
    """Index of the name of the function call whose parentheses hold ``tokens[index]``
    (or that ``tokens[index]``, a closing parenthesis, ends)."""
    depth = 0
    for i in range(index - 1, 0, -1):
        kind = tokens[i].token_type
        if kind == TokenType.R_PAREN:
            depth += 1
        elif kind == TokenType.L_PAREN:
            if depth == 0:
                name = tokens[i - 1]
                return i - 1 if name.text.replace("_", "").isalnum() else None
            depth -= 1
    return None


def call_arguments(node: exp.Expr, sql: str) -> int | None:
    """How many arguments the call ``node`` has in the text (None if not found).

    sqlglot drops surplus arguments of some functions (``date_diff('day', a, b, c)`` parses
    as ``date_diff('day', a, b)``), so arity is checked against the tokens.
    """
    start = node.meta.get("start") if node.meta else None
    if start is None:
        return None
    tokens = _tokens(sql)
    index = _token_starts(sql).get(start)
    if index is None or index + 1 >= len(tokens):
        return None
    if tokens[index + 1].token_type != TokenType.L_PAREN:
        return None
    depth, args, empty = 0, 1, True
    for t in tokens[index + 2:]:
        if t.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
            depth += 1
        elif t.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
            if depth == 0:
                return 0 if empty else args
            depth -= 1
        elif t.token_type == TokenType.COMMA and depth == 0:
            args += 1
        empty = False
    return None


def written_string_argument(node: exp.Expr, sql: str, position: int) -> str | None:
    """The string literal that is argument ``position`` (0-based) of call ``node`` as the
    user wrote it, or None if that argument is not one string literal. (sqlglot rewrites
    some, such as date_format's pattern, into its own notation while parsing.)"""
    start = node.meta.get("start") if node.meta else None
    tokens = _tokens(sql)
    index = _token_starts(sql).get(start) if start is not None else None
    if index is None or index + 1 >= len(tokens):
        return None
    depth, current, found = 0, 0, []
    for t in tokens[index + 2:]:
        if t.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
            depth += 1
        elif t.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
            if depth == 0:
                break
            depth -= 1
        elif t.token_type == TokenType.COMMA and depth == 0:
            current += 1
            continue
        if current == position:
            found.append(t)
    if len(found) == 1 and found[0].token_type == TokenType.STRING:
        return str(found[0].text)
    return None


def written_call(node: exp.Func, sql: str) -> str:
    """The text of call ``node`` as the user wrote it (``sum(bytes * 100)``, their case and
    spacing), or sqlglot's rendering if it cannot be found in the tokens."""
    start = node.meta.get("start") if node.meta else None
    index = _token_starts(sql).get(start) if start is not None else None
    tokens = _tokens(sql)
    if index is not None:
        depth = 0
        for t in tokens[index + 1:]:
            if t.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
                depth += 1
            elif t.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
                depth -= 1
                if depth == 0:
                    return sql[start:t.end + 1]
    return node.sql(dialect=DIALECT)


def written_name(node: exp.Expr, sql: str) -> str | None:
    """The text of ``node``'s own token, as the user wrote it (``now`` for CURRENT_TIMESTAMP)."""
    if node.meta and "start" in node.meta and "end" in node.meta:
        return sql[node.meta["start"]:node.meta["end"] + 1]
    return None


def _start(node: exp.Expr) -> int | None:
    """Smallest token offset inside ``node`` (its own or a descendant's)."""
    starts = [n.meta["start"] for n in node.walk() if n.meta and "start" in n.meta]
    return min(starts) if starts else None


def _end(node: exp.Expr) -> int | None:
    ends = [n.meta["end"] for n in node.walk() if n.meta and "end" in n.meta]
    return max(ends) if ends else None


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
    if start is not None and isinstance(node, exp.Func) and "start" not in (node.meta or {}):
        name = _call_name_before(node, sql, start)  # extract(hour FROM x): the word extract
        if name is not None:
            return offset_to_line_col(sql, name)
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


def _call_name_before(node: exp.Func, sql: str, start: int) -> int | None:
    """Offset of the name of call ``node`` whose first located token is at ``start``: the
    word before the ``(`` that precedes it (within a few unlocated words such as ``hour FROM``),
    if that word is one of the node's names."""
    tokens = _tokens(sql)
    index = _token_starts(sql).get(start)
    if index is None:
        return None
    names = {node.sql_name().lower(), node.key.lower()}
    for i in range(index - 1, max(index - 4, 0), -1):
        if tokens[i].token_type == TokenType.L_PAREN:
            return tokens[i - 1].start if tokens[i - 1].text.lower() in names else None
    return None


def token_after(node: exp.Expr, sql: str) -> Token | None:
    """The token right after ``node``'s text, if any (to spot a dangling ``ON``)."""
    end = _end(node)
    if end is None:
        return None
    return next((t for t in _tokens(sql) if t.start > end), None)


def tokens_between(first: exp.Expr, second: exp.Expr, sql: str) -> list[Token]:
    """The tokens after ``first``'s text and before ``second``'s (the keywords joining two
    FROM items: a comma, ``LEFT JOIN``, ...)."""
    end, start = _end(first), _start(second)
    if end is None or start is None:
        return []
    return [t for t in _tokens(sql) if end < t.start and t.end < start]


def statement_start(sql: str) -> tuple[int, int]:
    """1-based (line, column) of the first token of ``sql`` (after comments)."""
    tokens = _tokens(sql)
    return offset_to_line_col(sql, tokens[0].start) if tokens else (1, 1)


def unsupported(node: exp.Expr, sql: str, construct: str,
                keyword: TokenType | None = None, hint: str = "") -> SqlError:
    """A :class:`SqlError` saying ``construct`` is outside mpp's SQL subset, located at ``node``."""
    line, col = locate(node, sql, keyword)
    return SqlError(f"unsupported SQL: {construct} is not in mpp's SQL subset{hint}", line, col)
