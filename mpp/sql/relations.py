"""Binding the FROM clause: tables, subqueries, CTE references and joins.

A table becomes a Scan of all its columns (``prune_projections`` narrows it later) whose fields
are named ``<alias>.<column>``. A subquery is bound on its own and its result columns renamed
``<alias>.<name>``. A join's ON condition is split into equality keys between the two sides and
a residual of everything else; USING (k) makes the keys ``left.k = right.k`` and one output
column ``k``; a comma or CROSS JOIN is a join without keys (the optimizer finds its keys in
WHERE, see ``reorder_joins``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp
from sqlglot.tokenizer_core import TokenType

from mpp.catalog.model import TableInfo
from mpp.errors import CatalogError, SqlError, UnknownTableError, suggest
from mpp.logical.expr import Call, Column, Expr, conjoin, conjuncts, equality_sides
from mpp.logical.nodes import (
    Field,
    Join,
    JoinKind,
    LogicalNode,
    LogicalPlan,
    Project,
    Scan,
    Values,
    key_columns,
)
from mpp.sql import types as T
from mpp.sql.expressions import ExprBinder
from mpp.sql.parse import locate, offset_to_line_col, token_after, tokens_between, unsupported
from mpp.sql.scope import QUALIFIER, Relation, Scope, ScopeColumn, check_qualifiers
from mpp.sql.types import coerce, common_type, type_name

if TYPE_CHECKING:
    from mpp.sql.bind import QueryBinder


def unique_names(names: list[str]) -> list[str]:
    """``names`` made unique by suffixing repeats with ``_1``, ``_2``, ..."""
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 0
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


# FROM items outside the subset that sqlglot parses into nodes of their own.
_FROM_ITEMS: dict[type, tuple[str, TokenType]] = {
    exp.Unnest: ("UNNEST", TokenType.UNNEST),
    exp.Lateral: ("LATERAL", TokenType.LATERAL),
}


def bind_from(qb: QueryBinder, select: exp.Select) -> tuple[LogicalNode, Scope]:
    """The plan of ``select``'s FROM clause (with joins) and the names it brings into scope."""
    source = select.args.get("from_") or select.args.get("from")
    if source is None:  # SELECT 1: the select list over one row of no columns
        if select.args.get("joins"):
            raise unsupported(select, qb.sql, "JOIN without FROM")
        return Values(((),), ()), Scope(())
    node, scope = bind_relation(qb, source.this)
    previous: exp.Expr = source.this
    for join in select.args.get("joins") or []:
        node, scope = bind_join(qb, node, scope, join, previous)
        previous = join
    return node, scope


def bind_relation(qb: QueryBinder, item: exp.Expr) -> tuple[LogicalNode, Scope]:
    """Bind one FROM item: a catalog table, a CTE name or a subquery."""
    if item.args.get("sample") is not None:
        raise unsupported(item, qb.sql, "TABLESAMPLE", TokenType.TABLE_SAMPLE)
    for kind, (construct, keyword) in _FROM_ITEMS.items():
        if isinstance(item, kind):
            raise unsupported(item, qb.sql, construct, keyword)
    if isinstance(item, exp.Values):
        return bind_values(qb, item, item.alias or qb.fresh("_values"), alias_columns(item))
    allowed = ("this", "alias", "db", "catalog", "sample", "version")
    extra = [k for k, v in item.args.items() if v and k not in allowed]
    if item.args.get("version") is not None and not isinstance(item, exp.Table):
        extra.insert(0, "version")
    if extra:  # time travel, PIVOT, LATERAL, table functions' options, ...
        raise unsupported(item, qb.sql, f"{extra[0].rstrip('_').upper()} on a FROM item")
    columns = alias_columns(item)
    if isinstance(item, exp.Table) and isinstance(item.this, exp.Identifier):
        # Trino folds unquoted names to lower case: FROM ACCESS_LOG reads access_log.
        name = item.name if item.this.args.get("quoted") else item.name.lower()
        alias = item.alias or name
        check_qualifiers(item, qb.sql, UnknownTableError,
                         f" (write {item.name} or {QUALIFIER}.{item.name})")
        cte = qb.ctes.get(name.lower()) if not item.db else None
        if cte is not None and item.args.get("version") is not None:
            raise SqlError(f"WITH query {name} has no snapshots: FOR VERSION / TIMESTAMP AS OF "
                           "reads an Iceberg table", *locate(item.args["version"], qb.sql))
        if cte is not None:
            qb.cte_uses[name.lower()] = qb.cte_uses.get(name.lower(), 0) + 1
            plan = qb.child(exclude=name.lower()).query(cte)
            plan = renamed(qb, item, plan, qb.cte_columns.get(name.lower()), f"WITH query {name}")
            return subquery_relation(qb, item, plan, alias, columns)
        return table_relation(qb, item, name, alias, columns)
    if isinstance(item, exp.Subquery):
        plan = qb.child().query(item.this)
        return subquery_relation(qb, item, plan, item.alias or qb.fresh("_subquery"), columns)
    raise unsupported(item, qb.sql, f"FROM item {item.key.upper()}")


def alias_columns(item: exp.Expr) -> tuple[str, ...] | None:
    """The column aliases of a FROM item (``AS t (a, b)``), as Trino names them, if any."""
    alias = item.args.get("alias")
    if alias is None or not alias.columns:
        return None
    return tuple(c.name if c.args.get("quoted") else c.name.lower() for c in alias.columns)


def renamed(qb: QueryBinder, node: exp.Expr, plan: LogicalPlan, columns: tuple[str, ...] | None,
            what: str) -> LogicalPlan:
    """``plan`` with its output columns renamed ``columns`` (an error if the counts differ)."""
    if columns is None:
        return plan
    if len(columns) != len(plan.output_names):
        raise SqlError(f"{what} has {len(plan.output_names)} columns but "
                       f"{len(columns)} column aliases", *locate(node, qb.sql))
    return LogicalPlan(plan.root, columns)


def table_relation(qb: QueryBinder, item: exp.Table, name: str, alias: str,
                   names: tuple[str, ...] | None = None) -> tuple[LogicalNode, Scope]:
    """A Scan of every column of catalog table ``name`` (visible as ``names``, if given);
    with ``FOR VERSION / TIMESTAMP AS OF``, of the snapshot it names."""
    try:
        info = qb.catalog.table(name)
        version = item.args.get("version")
        if version is not None:
            info = travel_info(qb, item, name, version)
    except UnknownTableError as exc:
        if "$" in name and str(exc).startswith(f"unknown table {name!r}:"):
            raise UnknownTableError(str(exc), *locate(item, qb.sql)) from None  # metadata table
        tables = list(qb.catalog.tables()) + list(qb.ctes)
        raise UnknownTableError(
            f"unknown table {name!r}.{suggest(name, tables)} Tables: {', '.join(sorted(tables))}",
            *locate(item, qb.sql)) from None
    columns = tuple(info.schema.names)
    if names is not None and len(names) != len(columns):
        raise SqlError(f"table {name} has {len(columns)} columns but {len(names)} column "
                       "aliases", *locate(item.args["alias"], qb.sql))
    rel = Relation(alias, tuple(ScopeColumn(shown, f"{alias}.{c}", info.schema.field(c).type)
                                for shown, c in zip(names or columns, columns, strict=True)))
    return Scan(info, alias, columns), Scope((rel,))


def travel_info(qb: QueryBinder, item: exp.Table, name: str, version: exp.Version) -> TableInfo:
    """Table ``name`` as of the snapshot ``FOR VERSION AS OF <id>`` or ``FOR TIMESTAMP AS OF
    <timestamp>`` names (Trino: the snapshot current at that time)."""
    where = locate(version, qb.sql)
    kind = str(version.this).upper()
    value = version.expression
    if str(version.args.get("kind") or "").upper() != "AS OF":
        raise SqlError(f"FOR {kind} {version.args.get('kind')} is not supported (Trino "
                       "reads FOR VERSION AS OF <snapshot id> or FOR TIMESTAMP AS OF <time>)",
                       *where)
    table_at = getattr(qb.catalog, "table_at", None)  # a catalog of snapshots (Iceberg's)
    if table_at is None:
        raise SqlError(f"table {name!r} has no snapshots in this catalog", *where)
    try:
        if kind == "VERSION":
            if not (isinstance(value, exp.Literal) and not value.is_string
                    and value.this.lstrip("-").isdigit()):
                raise SqlError(f"FOR VERSION AS OF needs a snapshot id (an integer), not "
                               f"{value.sql('trino')}", *where)
            return table_at(name, snapshot_id=int(value.this))
        if kind == "TIMESTAMP":
            return table_at(name, timestamp=_timestamp(value, qb, where))
    except CatalogError as exc:
        raise SqlError(str(exc), *where) from None
    raise SqlError(f"FOR {kind} AS OF is not supported (Trino reads FOR VERSION AS OF "
                   "<snapshot id> or FOR TIMESTAMP AS OF <time>)", *where)


def _timestamp(value: exp.Expr, qb: QueryBinder, where: tuple[int, int]) -> dt.datetime:
    """The time of ``TIMESTAMP '...'`` (or a plain string); a time without a zone is UTC
    (mpp's session time zone)."""
    text = None
    if isinstance(value, exp.Cast) and isinstance(value.this, exp.Literal) \
            and value.to.is_type(*exp.DataType.TEMPORAL_TYPES):
        text = value.this.this
    elif isinstance(value, exp.Literal) and value.is_string:
        text = value.this
    parsed = None
    if text is not None:
        body = text.strip()
        zone = None
        for suffix in (" UTC", "Z", " Z"):
            if body.upper().endswith(suffix):
                body, zone = body[:-len(suffix)], dt.UTC
        try:
            parsed = dt.datetime.fromisoformat(body)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone or dt.UTC)
    if parsed is None:
        raise SqlError("FOR TIMESTAMP AS OF needs a timestamp literal such as TIMESTAMP "
                       f"'2024-01-31 12:00:00 UTC', not {value.sql('trino')}", *where)
    return parsed


def subquery_relation(qb: QueryBinder, item: exp.Expr, plan: LogicalPlan, alias: str,
                      columns: tuple[str, ...] | None = None) -> tuple[LogicalNode, Scope]:
    """A bound subquery under ``alias``: its result columns renamed ``<alias>.<name>``
    (``<alias>.<column alias>`` with ``AS t (a, b)``)."""
    plan = renamed(qb, item.args.get("alias") or item, plan, columns, f"subquery {alias}")
    fields = plan.root.schema
    names = unique_names([f"{alias}.{n}" for n in plan.output_names])
    root = plan.root
    if isinstance(root, Project):  # fold the renaming into the subquery's own select list
        node: LogicalNode = Project(root.input, root.exprs, tuple(names))
    else:
        node = Project(root, tuple(Column(f.name, f.dtype) for f in fields), tuple(names))
    rel = Relation(alias, tuple(ScopeColumn(out, name, f.dtype)
                                for out, name, f in zip(plan.output_names, names, fields,
                                                        strict=True)))
    return node, Scope((rel,))


_OUTER = {"LEFT": JoinKind.LEFT, "RIGHT": JoinKind.RIGHT, "FULL": JoinKind.FULL}


def _check_join_kind(qb: QueryBinder, join: exp.Join,
                     previous: exp.Expr) -> tuple[JoinKind, bool]:
    """The join's kind, and whether it is a cross product (a comma or CROSS JOIN).

    ``previous``: the FROM item or join before it (the words in between tell a comma)."""
    side, kind = (join.side or "").upper(), (join.kind or "").upper()
    if join.method:
        raise unsupported(join, qb.sql, f"{join.method.upper()} JOIN", TokenType.NATURAL)
    if kind not in ("", "INNER", "OUTER", "CROSS"):
        raise unsupported(join, qb.sql, f"{kind} JOIN", getattr(TokenType, kind, None))
    extra = [k for k, v in join.args.items() if v and k in ("global_", "directed",
                                                            "match_condition", "nearest",
                                                            "pivots", "hint")]
    if extra:
        raise unsupported(join, qb.sql, f"{extra[0].rstrip('_').upper()} in a join")
    between = {t.token_type for t in tokens_between(previous, join.this, qb.sql)}
    if kind == "CROSS" or (TokenType.COMMA in between and TokenType.JOIN not in between):
        return JoinKind.INNER, True
    if join.args.get("on") is None and not join.args.get("using"):
        after = token_after(join, qb.sql)
        if after is not None and after.token_type == TokenType.ON:
            raise SqlError("syntax error: ON needs a condition",
                           *offset_to_line_col(qb.sql, after.start))
        raise SqlError(f"syntax error: {side or 'INNER'} JOIN needs ON or USING (CROSS JOIN "
                       "joins every pair)", *locate(join, qb.sql, TokenType.JOIN))
    return _OUTER.get(side, JoinKind.INNER), False


def bind_join(qb: QueryBinder, left: LogicalNode, lscope: Scope, join: exp.Join,
              previous: exp.Expr) -> tuple[LogicalNode, Scope]:
    """``left JOIN right ON ...``: equality keys between the sides plus a residual.

    A comma or CROSS JOIN is a join without keys (a cross product); the optimizer rule
    ``reorder_joins`` turns WHERE equalities into its keys. ON without any equality between
    the sides is a join without keys whose residual tests every pair (a nested loop).
    """
    kind, cross = _check_join_kind(qb, join, previous)
    right, rscope = bind_relation(qb, join.this)
    for rel in rscope.relations:
        if rel.alias and lscope.relation(rel.alias) is not None:
            raise SqlError(f"table alias {rel.alias!r} is used twice in FROM",
                           *locate(join.this, qb.sql))
    if cross:
        return Join(left, right, kind, (), ()), lscope + rscope
    if join.args.get("using"):
        return _bind_using(qb, kind, left, lscope, right, rscope, join)
    scope = lscope + rscope
    condition = ExprBinder(scope, qb.sql, "ON").predicate(join.args["on"])
    lfields, rfields = set(left.field_names()), set(right.field_names())
    lexprs: list[Expr] = []
    rexprs: list[Expr] = []
    residual: list[Expr] = []
    for part in conjuncts(condition):
        pair = equality_sides(part, lfields, rfields)
        if pair is None:
            residual.append(part)
        else:
            lexprs.append(pair[0])
            rexprs.append(pair[1])
    left, lkeys = key_columns(left, lexprs, lambda: qb.fresh("_k"))
    right, rkeys = key_columns(right, rexprs, lambda: qb.fresh("_k"))
    return Join(left, right, kind, lkeys, rkeys, conjoin(residual)), scope


def _bind_using(qb: QueryBinder, kind: JoinKind, left: LogicalNode, lscope: Scope,
                right: LogicalNode, rscope: Scope, join: exp.Join) -> tuple[LogicalNode, Scope]:
    """``JOIN ... USING (k, ...)``: keys ``left.k = right.k``; one output column ``k`` each.

    As in Trino (and the SQL standard), the USING column is the left one for INNER and LEFT
    joins, the right one for RIGHT, ``coalesce(left.k, right.k)`` for FULL; ``*`` lists the
    USING columns first, then the other columns of each side.
    """
    lkeys: list[Column] = []
    rkeys: list[Column] = []
    using: list[ScopeColumn] = []
    extra: list[tuple[Expr, str]] = []
    for ident in join.args["using"]:
        name = ident.name if ident.args.get("quoted") else ident.name.lower()
        if any(c.name.lower() == name.lower() for c in using):
            raise SqlError(f"column {name!r} appears twice in USING", *locate(ident, qb.sql))
        where = locate(ident, qb.sql)
        lk, rk = lscope.resolve(name, None, where), rscope.resolve(name, None, where)
        lkeys.append(lk)
        rkeys.append(rk)
        column: Expr = {JoinKind.RIGHT: rk}.get(kind, lk)
        if kind is JoinKind.FULL:
            common = T.common_type(lk.dtype, rk.dtype) or lk.dtype
            column = Call("coalesce", (T.coerce(lk, common), T.coerce(rk, common)), common)
            extra.append((column, qb.fresh("_using")))
            column = Column(extra[-1][1], common)
        using.append(ScopeColumn(name, column.name, column.dtype))  # type: ignore[attr-defined]
    node: LogicalNode = Join(left, right, kind, tuple(lkeys), tuple(rkeys))
    if extra:
        passthrough = tuple(Column(f.name, f.dtype) for f in node.schema)
        node = Project(node, passthrough + tuple(e for e, _ in extra),
                       tuple(c.name for c in passthrough) + tuple(n for _, n in extra))
    paired = {c.name for c in lkeys + rkeys}
    rels = [rel for rel in (lscope + rscope).relations if rel.alias]
    hidden = [Relation(rel.alias, tuple(dataclasses.replace(c, hidden=c.hidden or c.field in paired)
                                        for c in rel.columns)) for rel in rels]
    # Earlier USING columns (``a JOIN b USING (k) JOIN c USING (j)``) follow the new ones.
    earlier = tuple(c for rel in lscope.relations if not rel.alias for c in rel.columns
                    if c.field not in paired)
    return node, Scope((Relation("", tuple(using) + earlier), *hidden))


def bind_values(qb: QueryBinder, values: exp.Values, alias: str,
                columns: tuple[str, ...] | None) -> tuple[LogicalNode, Scope]:
    """``VALUES (..), (..)`` as a relation: constant rows, each column of its rows' common type.

    Columns are named ``_col0, _col1, ...`` unless the FROM item names them (``AS t (a, b)``).
    """
    rows = [list(r.expressions) if isinstance(r, exp.Tuple) else [r] for r in values.expressions]
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise SqlError(f"VALUES rows have different numbers of columns ({', '.join(map(str, sorted(widths)))})",
                       *locate(values, qb.sql))
    binder = ExprBinder(Scope(()), qb.sql, "VALUES")
    bound = [[binder.bind(e) for e in row] for row in rows]
    types: list[pa.DataType] = []
    for i in range(len(rows[0])):
        t: pa.DataType | None = bound[0][i].dtype
        for row, written in zip(bound[1:], rows[1:], strict=True):
            common = common_type(t, row[i].dtype) if t is not None else None
            if common is None:
                raise SqlError(f"VALUES column {i + 1} has types {type_name(t or pa.null())} and "
                               f"{type_name(row[i].dtype)}, which have no common type",
                               *locate(written[i], qb.sql))
            t = common
        types.append(t)
    names = columns or tuple(f"_col{i}" for i in range(len(types)))
    if len(names) != len(types):
        raise SqlError(f"VALUES has {len(types)} columns but {len(names)} column aliases",
                       *locate(values.args["alias"], qb.sql))
    fields = tuple(Field(f"{alias}.{n}", t) for n, t in zip(names, types, strict=True))
    node = Values(tuple(tuple(coerce(e, t) for e, t in zip(row, types, strict=True))
                        for row in bound), fields)
    rel = Relation(alias, tuple(ScopeColumn(n, f.name, f.dtype)
                                for n, f in zip(names, fields, strict=True)))
    return node, Scope((rel,))


def values_query(qb: QueryBinder, values: exp.Values) -> LogicalPlan:
    """A VALUES statement (``VALUES 1, 2``): its rows are the result, columns ``_col0, ...``."""
    node, scope = bind_values(qb, values, qb.fresh("_values"), None)
    names = tuple(c.name for c in scope.relations[0].columns)
    return LogicalPlan(Project(node, tuple(Column(f.name, f.dtype) for f in node.schema),
                               names), names)
