"""Binding scalar SQL expressions (sqlglot nodes) to typed :mod:`mpp.logical.expr` trees.

One handler per sqlglot node type, looked up in a table (no central if/elif chain). Handlers
bind their children through ``self.bind`` so that the aggregate-aware subclass in
:mod:`mpp.sql.aggregates` can intercept any sub-expression.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal

import pyarrow as pa
from sqlglot import exp
from sqlglot.tokenizer_core import TokenType

from mpp.errors import SqlError, UnknownColumnError
from mpp.logical.evaluate import integer_name
from mpp.logical.expr import Call, Expr, Literal, conjoin, disjoin, factor_disjunction
from mpp.sql import calls, folding
from mpp.sql import types as T
from mpp.sql.parse import ARITIES, call_arguments, locate, unsupported, written_name
from mpp.sql.scope import Scope, check_qualifiers

AGGREGATES = (exp.Count, exp.Sum, exp.Min, exp.Max, exp.Avg)
_ARITH = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.Mod: "%"}
_COMPARE = {exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
# Constructs outside the subset that sqlglot parses into nodes of their own: the name errors
# give them, and the keyword they point at.
_CONSTRUCTS: dict[type, tuple[str, TokenType | None]] = {
    exp.Exists: ("EXISTS (subquery) other than as a WHERE condition (a term joined by AND)",
                 TokenType.EXISTS),
    exp.Interval: ("INTERVAL outside date arithmetic", TokenType.INTERVAL),
    exp.Rollup: ("GROUP BY ROLLUP", TokenType.ROLLUP),
    exp.Cube: ("GROUP BY CUBE", TokenType.CUBE),
    exp.GroupingSets: ("GROUP BY GROUPING SETS", TokenType.GROUPING_SETS),
}
TRUNC_UNITS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
DIFF_UNITS = ("millisecond",) + TRUNC_UNITS
# EXTRACT fields (Trino's names and abbreviations, as sqlglot spells them) -> the field mpp
# evaluates. Trino's WEEK is the ISO week and DAY_OF_WEEK counts Monday as 1.
EXTRACT_FIELDS = {
    "year": "year", "quarter": "quarter", "month": "month", "week": "week", "day": "day",
    "day_of_month": "day", "dayofweek": "day_of_week", "day_of_week": "day_of_week",
    "dow": "day_of_week", "dayofyear": "day_of_year", "day_of_year": "day_of_year",
    "doy": "day_of_year", "year_of_week": "year_of_week", "yow": "year_of_week",
    "hour": "hour", "minute": "minute", "second": "second",
}
_TIME_FIELDS = ("hour", "minute", "second")


def is_aggregate_call(node: exp.Expr) -> bool:
    """True for any aggregate function node (supported or not)."""
    return isinstance(node, exp.AggFunc)


def contains_aggregate(node: exp.Expr) -> bool:
    """True if ``node`` contains an aggregate function outside any window.

    ``count(*) OVER (...)`` is a window function, not an aggregate: it does not make the query
    an aggregate query (which would misreport its other columns as missing from GROUP BY).
    """
    return any(is_aggregate_call(n)  # (a subquery's aggregates are its own)
               for n in node.walk(prune=lambda n: isinstance(n, (exp.Window, exp.Subquery,
                                                                 exp.Exists))))


class ExprBinder:
    """Binds scalar expressions against ``scope``. Aggregates are rejected (``clause`` says where)."""

    def __init__(self, scope: Scope, sql: str, clause: str = "WHERE"):
        self.scope = scope
        self.sql = sql
        self.clause = clause
        # Scalar subqueries already joined in (mpp.sql.subqueries), by id of their node.
        self.scalars: dict[int, Expr] = {}

    def where(self, node: exp.Expr) -> tuple[int, int]:
        """Line and column of ``node`` in the SQL text."""
        return locate(node, self.sql)

    def error(self, node: exp.Expr, message: str) -> SqlError:
        """A SqlError located at ``node``."""
        return SqlError(message, *self.where(node))

    def bind(self, node: exp.Expr) -> Expr:
        """Bind ``node``; unsupported constructs raise SqlError naming them."""
        for kind in type(node).__mro__:
            handler = _HANDLERS.get(kind)
            if handler is not None:
                bound = handler(self, node)
                if node.args.get("negate"):  # sqlglot keeps "x NOT LIKE p" as Like(negate=True)
                    bound = Call("not", (bound,), pa.bool_())
                if isinstance(bound, Call) and bound.line is None:
                    # Where the user wrote it, for errors at run time (division by zero).
                    line, column = locate(node, self.sql)
                    bound = dataclasses.replace(bound, source=node.sql(dialect="trino"),
                                                line=line, column=column)
                return bound
        raise self._unsupported(node)

    def _unsupported(self, node: exp.Expr) -> SqlError:
        if isinstance(node, exp.Window):  # bound only where a query's windows are computed
            line, column = locate(node, self.sql, TokenType.OVER)
            return SqlError(f"window functions are not allowed in {self.clause}", line, column)
        for kind, (construct, keyword) in _CONSTRUCTS.items():
            if isinstance(node, kind):
                return unsupported(node, self.sql, construct, keyword)
        if isinstance(node, (exp.Subquery, exp.Select)):
            return unsupported(node, self.sql, f"scalar subquery in {self.clause}",
                               TokenType.SELECT, " (only in WHERE, HAVING and the select list)")
        if isinstance(node, exp.Func):  # now(), not current_timestamp(); and close names
            return calls.unknown_function(self, node, calls.call_name(node, self.sql))
        return unsupported(node, self.sql, f"expression {node.sql(dialect='trino')!r}")

    # --- leaves -----------------------------------------------------------------------------

    def column(self, node: exp.Column) -> Expr:
        if isinstance(node.this, exp.Star):
            raise self.error(node, "'*' is only allowed in the select list and count(*)")
        check_qualifiers(node, self.sql, UnknownColumnError)
        return self.scope.resolve(node.name, node.table or None, self.where(node))

    def literal(self, node: exp.Literal) -> Expr:
        if node.is_string:
            return Literal(node.this, pa.string())
        text = node.this
        if any(ch in text for ch in "eE"):  # 1e3 and 1.5E-2 are DOUBLE in Trino
            return Literal(float(text), pa.float64())
        if "." in text:  # 1.5 is DECIMAL(2, 1) in Trino
            try:
                return Literal(*T.decimal_literal(text))
            except ValueError as err:
                raise self.error(node, str(err)) from None
        value = int(text)
        if not -(2**63) <= value < 2**63:
            raise self.error(node, f"integer literal {text} is out of the BIGINT range")
        return Literal(value, T.integer_literal_type(value))

    def boolean(self, node: exp.Boolean) -> Expr:
        return Literal(bool(node.this), pa.bool_())

    def null(self, node: exp.Null) -> Expr:
        return Literal(None, pa.null())

    def paren(self, node: exp.Paren) -> Expr:
        return self.bind(node.this)

    def subquery(self, node: exp.Subquery) -> Expr:
        """A scalar subquery: the column it was joined in as (see mpp.sql.subqueries)."""
        bound = self.scalars.get(id(node))
        if bound is None:
            raise self._unsupported(node)
        return bound

    # --- operators ----------------------------------------------------------------------------

    def cast(self, node: exp.Cast) -> Expr:
        if isinstance(node, exp.TryCast):
            raise unsupported(node, self.sql, "TRY_CAST")
        shown = node.to.sql(dialect="trino")
        try:
            target = T.arrow_type(node.to)
        except ValueError as err:
            raise self.error(node, f"invalid type in CAST: {err}") from None
        if target is None:
            raise self.error(node, f"unsupported type in CAST: {shown}")
        # Trino's varchar(3) truncates and timestamp(3) rounds; mpp does neither, so written
        # parameters are rejected (DECIMAL's precision and scale are its type). (TIMESTAMP
        # '...' literals get parameters of sqlglot's own, without source positions: fine.)
        if not T.is_decimal(target) and any(p.meta for e in node.to.expressions
                                            for p in e.walk()):
            raise unsupported(node, self.sql, f"CAST to {shown}",
                              hint=" (mpp would ignore the length or precision; write "
                                   f"{node.to.this.name.lower()})")
        if node.to.this == exp.DataType.Type.CHAR:  # Trino's char is char(1), blank-padded
            raise unsupported(node, self.sql, f"CAST to {shown}", hint=" (write varchar)")
        inner = self.bind(node.this)
        if (T.is_decimal(target) and not node.to.expressions and isinstance(inner, Literal)
                and isinstance(inner.value, str) and self.typed_literal(node)):
            try:  # DECIMAL '1.50' is DECIMAL(3, 2), as the literal 1.50 is
                return Literal(*T.decimal_literal(inner.value))
            except ValueError as err:
                raise self.error(node, str(err)) from None
        if isinstance(inner, Literal) and isinstance(inner.value, str):
            try:  # DATE '...' / TIMESTAMP '...' literals arrive as casts of strings
                return Literal(T.literal_value(inner.value, target), target)
            except (ValueError, ArithmeticError):
                name = T.type_name(target) if T.is_decimal(target) else node.to.this.name
                raise self.error(node, f"invalid {name} literal "
                                       f"{inner.value!r}") from None
        return inner if inner.dtype == target else Call("cast", (inner,), target)

    def typed_literal(self, node: exp.Cast) -> bool:
        """True if ``node`` was written as a typed literal (``DECIMAL '1.5'``), not a CAST:
        sqlglot parses both into the same node; the word before the string tells them apart."""
        line, column = self.where(node.this)
        offset = sum(len(text) + 1 for text in self.sql.split("\n")[:line - 1]) + column - 1
        return self.sql[:offset].rstrip().upper().endswith("DECIMAL")

    def arithmetic(self, node: exp.Binary) -> Expr:
        op = _ARITH[type(node)]
        if isinstance(node.left, exp.Interval) or isinstance(node.right, exp.Interval):
            return self.interval_arithmetic(node, op)
        left, right = self.bind(node.left), self.bind(node.right)
        try:
            folded = folding.fold_decimal_literals(op, left, right)
        except ValueError as err:  # Decimal overflow
            raise self.error(node, f"{err} in {node.sql(dialect='trino')}") from None
        if folded is not None:
            return folded
        common = T.common_type(left.dtype, right.dtype)
        if common is None or not (T.is_numeric(common) or pa.types.is_null(common)):
            raise self.error(node, f"operator {op} cannot be applied to {left.dtype} and "
                                   f"{right.dtype}")
        if T.is_decimal(common):  # each side as its own decimal; the result by Trino's rule
            sides = tuple(T.coerce(e, T.as_decimal(e.dtype if T.is_numeric(e.dtype)
                                                   else common)) for e in (left, right))
            try:
                return Call(op, sides, T.decimal_result(op, sides[0].dtype, sides[1].dtype))
            except ValueError as err:
                raise self.error(node, str(err)) from None
        return Call(op, (T.coerce(left, common), T.coerce(right, common)), common)

    def interval_arithmetic(self, node: exp.Binary, op: str) -> Expr:
        """``DATE '...' +/- INTERVAL 'n' unit`` (or ``INTERVAL + DATE``), folded to a literal;
        see :mod:`mpp.sql.folding`."""
        interval, other = ((node.left, node.right) if isinstance(node.left, exp.Interval)
                           else (node.right, node.left))
        at = locate(interval, self.sql, TokenType.INTERVAL)  # the keyword
        if op not in "+-" or (op == "-" and interval is node.left) or isinstance(
                other, exp.Interval):
            raise SqlError(f"operator {op} cannot be applied to an INTERVAL here", *at)
        base = self.bind(other)
        unit = folding.unit_name(interval.unit.name if interval.unit is not None else "")
        if not isinstance(base, Literal):  # a column or expression: date_add at run time
            try:
                amount = int(interval.this.name)
            except ValueError:
                raise SqlError(f"INTERVAL needs a whole number, got {interval.this.name!r}",
                               *at) from None
            return calls.date_add(self, node, unit, Literal(-amount if op == "-" else amount,
                                                            pa.int64()), base, at)
        if not T.is_temporal(base.dtype):
            raise SqlError(f"INTERVAL cannot be added to {T.type_name(base.dtype)}", *at)
        allowed = (folding.DATE_UNITS if pa.types.is_date(base.dtype)
                   else folding.TIMESTAMP_UNITS)
        if unit not in allowed:
            raise SqlError(f"unsupported INTERVAL unit {unit!r} for {base.dtype} (expected "
                           f"one of {', '.join(allowed)})", *at)
        try:
            amount = int(interval.this.name)
        except ValueError:
            raise SqlError(f"INTERVAL needs a whole number, got {interval.this.name!r}",
                           *at) from None
        value = folding.shift(base.value, -amount if op == "-" else amount, unit)
        return Literal(value, base.dtype)

    def negate(self, node: exp.Neg) -> Expr:
        inner = node.this
        if (isinstance(inner, exp.Literal) and not inner.is_string
                and inner.this == str(2**63)):  # -9223372036854775808: the smallest BIGINT
            return Literal(-(2**63), pa.int64())
        arg = self.bind(inner)
        if isinstance(arg, Literal) and isinstance(arg.value, int | float | Decimal):
            if pa.types.is_integer(arg.dtype) and -arg.value >= 2 ** (arg.dtype.bit_width - 1):
                # -(-2147483648): folding must fail as evaluating would
                raise self.error(node, f"{integer_name(arg.dtype)} negation overflow")
            return Literal(-arg.value, arg.dtype)
        if not T.is_numeric(arg.dtype):
            raise self.error(node, f"unary minus cannot be applied to {arg.dtype}")
        return Call("neg", (arg,), arg.dtype)

    def compare(self, node: exp.Binary) -> Expr:
        return self.comparison(_COMPARE[type(node)], self.bind(node.left),
                               self.bind(node.right), node)

    def comparison(self, op: str, left: Expr, right: Expr, node: exp.Expr) -> Expr:
        """``left op right`` with both sides coerced to their comparison type."""
        common = T.comparison_type(left, right)
        if common is None:
            raise self.error(node, f"cannot compare {left.dtype} with {right.dtype} "
                                   f"(operator {op})")
        if pa.types.is_null(common):  # NULL = NULL: unknown (Arrow has no kernel for it)
            return Literal(None, pa.bool_())
        try:
            return Call(op, (T.coerce(left, common), T.coerce(right, common)), pa.bool_())
        except ValueError as err:
            raise self.error(node, f"invalid literal for type {common}: {err}") from None

    def boolean_op(self, node: exp.Connector) -> Expr:
        """A chain of ANDs (or ORs) as one flat n-ary call.

        sqlglot parses ``a OR b OR c`` as a left-deep tree, one level per term; generated SQL
        has chains of thousands of terms. sqlglot's ``flatten`` collects the chain without
        recursion, and it is bound flat, so nothing downstream recurses once per term.
        """
        terms = list(node.flatten(unnest=False))
        op = "and" if isinstance(node, exp.And) else "or"
        # An OR's conjuncts common to every branch are factored out (a join key in each).
        bound = conjoin if op == "and" else factor_disjunction
        out = bound([self.predicate(t) for t in terms])
        assert out is not None
        if not (isinstance(out, Call) and out.op == op):  # factored: a different shape
            return out
        line, column = self.where(node)
        return dataclasses.replace(out, source=f"{op.upper()} of {len(out.args)} conditions",
                                   line=line, column=column)

    def predicate(self, node: exp.Expr) -> Expr:
        """Bind ``node`` and check it is a boolean."""
        bound = self.bind(node)
        if pa.types.is_null(bound.dtype):
            return Literal(None, pa.bool_())
        if not pa.types.is_boolean(bound.dtype):
            raise self.error(node, f"expected a boolean condition, got {bound.dtype}")
        return bound

    def not_(self, node: exp.Not) -> Expr:
        if isinstance(node.this, exp.Is) and isinstance(node.this.expression, exp.Null):
            return Call("is_not_null", (self.bind(node.this.this),), pa.bool_())
        return Call("not", (self.predicate(node.this),), pa.bool_())

    def is_(self, node: exp.Is) -> Expr:
        if not isinstance(node.expression, exp.Null):
            raise unsupported(node, self.sql, f"IS {node.expression.sql(dialect='trino')}")
        return Call("is_null", (self.bind(node.this),), pa.bool_())

    def between(self, node: exp.Between) -> Expr:
        # Trino defines x BETWEEN a AND b as x >= a AND x <= b; binding it that way lets the
        # pushdown rule turn it into two storage predicates.
        value = self.bind(node.this)
        low = self.comparison(">=", value, self.bind(node.args["low"]), node)
        high = self.comparison("<=", value, self.bind(node.args["high"]), node)
        return Call("and", (low, high), pa.bool_())

    def in_(self, node: exp.In) -> Expr:
        if node.args.get("query") is not None or node.args.get("unnest") is not None:
            raise unsupported(node, self.sql, "IN (subquery) other than as a WHERE condition "
                                              "(a term joined by AND)")
        value = self.bind(node.this)
        if not node.expressions:
            raise self.error(node, "IN needs at least one value")
        items = [self.comparison("=", value, self.bind(e), e) for e in node.expressions]
        if all(isinstance(c, Call) and isinstance(c.args[1], Literal)
               and c.args[0] == items[0].args[0] for c in items):  # type: ignore[attr-defined]
            args = (items[0].args[0],) + tuple(c.args[1] for c in items)  # type: ignore[attr-defined]
            return Call("in", args, pa.bool_())
        # x IN (a, b) with non-constant items is x = a OR x = b (flat, however many items).
        out = disjoin(items)
        assert out is not None
        return out

    def like(self, node: exp.Like) -> Expr:
        value, pattern = self.bind(node.this), self.bind(node.expression)
        if not isinstance(pattern, Literal) or not isinstance(pattern.value, str):
            raise self.error(node.expression, "LIKE needs a constant string pattern")
        if not (T.is_string(value.dtype) or pa.types.is_null(value.dtype)):
            raise self.error(node, f"LIKE cannot be applied to {value.dtype}")
        if pa.types.is_null(value.dtype):  # NULL LIKE 'a' is unknown
            return Literal(None, pa.bool_())
        return Call("like", (value, pattern), pa.bool_())

    # --- functions ----------------------------------------------------------------------------

    def check_arguments(self, node: exp.Func, name: str, counts: tuple[int, ...]) -> None:
        """Reject a call of ``name`` whose argument count in the text is not in ``counts``
        (sqlglot silently drops surplus arguments of some functions)."""
        found = call_arguments(node, self.sql)
        if found is not None and found not in counts:
            raise self.error(node, f"{name} takes {ARITIES[name]}, not {found}")

    def unit(self, node: exp.Expr, allowed: tuple[str, ...]) -> str:
        unit = node.args.get("unit")
        text = (unit.name if unit is not None else "").lower()
        if text not in allowed:
            raise self.error(node, f"unsupported unit {text!r} (expected one of "
                                   f"{', '.join(allowed)})")
        return text

    def date_trunc(self, node: exp.Func) -> Expr:
        self.check_arguments(node, "date_trunc", (2,))
        unit = self.unit(node, TRUNC_UNITS)
        arg = self.bind(node.this)
        if not T.is_temporal(arg.dtype):
            raise self.error(node, f"date_trunc needs a date or timestamp, got {arg.dtype}")
        if pa.types.is_date(arg.dtype) and unit in ("second", "minute", "hour"):
            raise self.error(node, f"date_trunc unit {unit!r} is not valid for a date")
        return Call("date_trunc", (arg,), arg.dtype, (("unit", unit),))

    def date_diff(self, node: exp.DateDiff) -> Expr:
        # sqlglot reads Trino's date_diff(unit, start, end) as DateDiff(this=end, expression=start).
        self.check_arguments(node, "date_diff", (3,))
        unit = self.unit(node, DIFF_UNITS)
        start, end = self.bind(node.expression), self.bind(node.this)
        common = T.common_type(start.dtype, end.dtype)
        if common is None or not T.is_temporal(common):
            raise self.error(node, f"date_diff needs dates or timestamps, got {start.dtype} "
                                   f"and {end.dtype}")
        args = (T.coerce(start, common), T.coerce(end, common))
        return Call("date_diff", args, pa.int64(), (("unit", unit),))

    def extract(self, node: exp.Extract) -> Expr:
        """``EXTRACT(field FROM value)``: a BIGINT part of a date or timestamp (Trino)."""
        written = node.this.name.lower()
        part = EXTRACT_FIELDS.get(written)
        if part is None:
            raise self.error(node, f"unsupported EXTRACT field {written!r} (expected one of "
                                   f"{', '.join(sorted(set(EXTRACT_FIELDS.values())))})")
        arg = self.bind(node.expression)
        if pa.types.is_null(arg.dtype):
            return Literal(None, pa.int64())
        if not T.is_temporal(arg.dtype):
            raise self.error(node, f"EXTRACT needs a date or timestamp, got {arg.dtype}")
        if pa.types.is_date(arg.dtype) and part in _TIME_FIELDS:
            raise self.error(node, f"EXTRACT field {written!r} is not valid for a date")
        return Call("extract", (arg,), pa.int64(), (("field", part),))

    def substring(self, node: exp.Substring) -> Expr:
        """``substring(s, start[, length])`` (also ``FROM start FOR length`` and ``substr``):
        Trino's 1-based slice; a negative start counts from the end. Start and length must
        be constants (pyarrow's slicing kernel takes them as options)."""
        found = call_arguments(node, self.sql)
        if found is not None and found > 3:
            raise self.error(node, f"substring takes {ARITIES['substring']}, not {found}")
        value = self.bind(node.this)
        if not (T.is_string(value.dtype) or pa.types.is_null(value.dtype)):
            raise self.error(node, f"substring needs a varchar, got {value.dtype}")
        bounds = []
        for key in ("start", "length"):
            arg = node.args.get(key)
            if arg is None:
                continue
            bound = self.bind(arg)
            if not isinstance(bound, Literal) or not (
                    bound.value is None or pa.types.is_integer(bound.dtype)):
                raise unsupported(arg, self.sql, f"substring {key} that is not an integer "
                                                 "constant")
            if bound.value is None:
                return Literal(None, pa.string())
            bounds.append((key, bound.value))
        if len(bounds) == 0:
            raise self.error(node, f"substring takes {ARITIES['substring']}")
        if pa.types.is_null(value.dtype):
            return Literal(None, pa.string())
        out = value.dtype.value_type if pa.types.is_dictionary(value.dtype) else value.dtype
        return Call("substring", (value,), out, tuple(bounds))

    def case(self, node: exp.Case) -> Expr:
        operand = self.bind(node.this) if node.this is not None else None
        conds, values = [], []
        for branch in node.args.get("ifs") or []:
            if operand is not None:  # CASE x WHEN v THEN ...: the condition is x = v
                conds.append(self.comparison("=", operand, self.bind(branch.this), branch))
            else:
                conds.append(self.predicate(branch.this))
            values.append(self.bind(branch.args["true"]))
        default = node.args.get("default")
        return self.conditional(conds, values, None if default is None else self.bind(default),
                                node)

    def if_(self, node: exp.If) -> Expr:
        other = node.args.get("false")
        return self.conditional([self.predicate(node.this)], [self.bind(node.args["true"])],
                                None if other is None else self.bind(other), node)

    def conditional(self, conds: list[Expr], values: list[Expr], default: Expr | None,
                    node: exp.Expr) -> Expr:
        """``case(c1, v1, c2, v2, ..., [else])``: the first true condition's value."""
        common = self.common(values + ([default] if default is not None else []), node)
        args: list[Expr] = []
        for cond, value in zip(conds, values, strict=True):
            args += [cond, T.coerce(value, common)]
        if default is not None:
            args.append(T.coerce(default, common))
        return Call("case", tuple(args), common, (("else", default is not None),))

    def coalesce(self, node: exp.Coalesce) -> Expr:
        args = [self.bind(node.this)] + [self.bind(e) for e in node.expressions]
        common = self.common(args, node)
        return Call("coalesce", tuple(T.coerce(a, common) for a in args), common)

    def common(self, exprs: list[Expr], node: exp.Expr) -> pa.DataType:
        """The type all of ``exprs`` are coerced to (an error naming them if none)."""
        common: pa.DataType | None = pa.null()
        for e in exprs:
            common = T.common_type(common, e.dtype) if common is not None else None
        if common is None:
            types = ", ".join(str(e.dtype) for e in exprs)
            raise self.error(node, f"values of types {types} cannot be combined")
        return common

    def aggregate(self, node: exp.Expr) -> Expr:
        if isinstance(node, exp.Filter):  # f(x) FILTER (WHERE c)
            if not isinstance(node.this, exp.AggFunc):
                raise unsupported(node, self.sql, "FILTER (WHERE ...) on a non-aggregate",
                                  TokenType.FILTER)
            node = node.this
        name = written_name(node, self.sql) or node.sql_name()
        raise self.error(node, f"aggregate function {name.lower()}() is not allowed "
                               f"in {self.clause}")


_HANDLERS: dict[type, Callable[..., Expr]] = {
    exp.Column: ExprBinder.column,
    exp.Literal: ExprBinder.literal,
    exp.Boolean: ExprBinder.boolean,
    exp.Null: ExprBinder.null,
    exp.Paren: ExprBinder.paren,
    exp.Subquery: ExprBinder.subquery,
    exp.Cast: ExprBinder.cast,
    exp.Neg: ExprBinder.negate,
    exp.And: ExprBinder.boolean_op,
    exp.Or: ExprBinder.boolean_op,
    exp.Not: ExprBinder.not_,
    exp.Is: ExprBinder.is_,
    exp.Between: ExprBinder.between,
    exp.In: ExprBinder.in_,
    exp.Like: ExprBinder.like,
    exp.TimestampTrunc: ExprBinder.date_trunc,
    exp.DateTrunc: ExprBinder.date_trunc,
    exp.DateDiff: ExprBinder.date_diff,
    exp.Extract: ExprBinder.extract,
    exp.Substring: ExprBinder.substring,
    exp.AggFunc: ExprBinder.aggregate,
    exp.Filter: ExprBinder.aggregate,
    exp.Case: ExprBinder.case,
    exp.If: ExprBinder.if_,
    exp.Coalesce: ExprBinder.coalesce,
    exp.Func: calls.bind_function,  # any other function: through the registry (mpp.functions)
    exp.DPipe: calls.bind_concat_operator,
    exp.NullSafeEQ: calls.bind_distinct_from,
    exp.NullSafeNEQ: calls.bind_distinct_from,
    exp.Escape: calls.bind_like_escape,
    exp.CurrentDate: calls.bind_current_date,
    exp.DateAdd: calls.bind_date_add,
    **{kind: ExprBinder.arithmetic for kind in _ARITH},
    **{kind: ExprBinder.compare for kind in _COMPARE},
}
