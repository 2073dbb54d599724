"""Statements: SQL text -> one typed statement object, the only place that tells them apart.

:func:`parse_statement` returns a :class:`Query` (SELECT, WITH, VALUES: bound by
:func:`mpp.sql.bind`), a :class:`CreateTableAs` (``[OR REPLACE]``), a :class:`CreateTable`
(columns, an empty table), an :class:`InsertInto`, a :class:`DeleteFrom`, an :class:`UpdateTable`, a
:class:`MergeInto`, an :class:`AlterColumn` (ADD / RENAME / DROP COLUMN), an
:class:`Optimize` or :class:`ExpireSnapshots` (ALTER TABLE ... EXECUTE) or a :class:`DropTable`;
the session runs it (``Session.execute``) and hands writes to :mod:`mpp.write`. A statement mpp
does not run (TRUNCATE, ALTER TABLE ... RENAME TO ...) is refused here, with its kind, line and
column.

CREATE TABLE AS takes Trino's Iceberg form:

    CREATE TABLE [IF NOT EXISTS] name
    WITH (format = 'PARQUET' | 'ORC', partitioned_by = ARRAY['date'], target_file_size = '128MB')
    AS SELECT ...

Every ``WITH`` property is optional (default: Parquet, unpartitioned, ``write.target_file_bytes``).
The SELECT keeps its place in the original text (the DDL prefix is blanked, line breaks kept),
so an error inside it names the same line and column the user sees.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pyarrow as pa
from sqlglot import exp
from sqlglot.tokenizer_core import TokenType

from mpp.catalog.place import check_table_name
from mpp.catalog.write import TRANSFORMS, partition_field
from mpp.errors import CatalogError, SqlError
from mpp.sql.parse import _tokens, locate, parse, statement_start
from mpp.sql.types import arrow_type, type_name
from mpp.storage.base import StorageFormat

_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?B?)\s*$", re.IGNORECASE)
CTAS_FORMATS = (StorageFormat.PARQUET, StorageFormat.ORC)
_TYPES = ("tinyint, smallint, integer, bigint, real, double, decimal(p, s), boolean, varchar, "
          "date, timestamp")


@dataclass(frozen=True, slots=True)
class Query:
    """A query (SELECT, WITH ..., VALUES): its text, bound and planned by the caller."""

    text: str


@dataclass(frozen=True, slots=True)
class CreateTableAs:
    """One CREATE TABLE AS: the new table's name, layout and the SELECT that fills it."""

    name: str
    select_sql: str  # the SELECT, at its original line/column (prefix blanked)
    format: StorageFormat = StorageFormat.PARQUET
    partitioned_by: tuple[str, ...] = ()
    target_file_bytes: int | None = None  # None: the ``write.target_file_bytes`` setting
    if_not_exists: bool = False
    replace: bool = False  # CREATE OR REPLACE: one snapshot replacing an existing table's rows


@dataclass(frozen=True, slots=True)
class CreateTable:
    """One ``CREATE TABLE name (column type, ...) [WITH (partitioning = ARRAY[...])]``: a new,
    empty Iceberg table."""

    name: str
    columns: tuple[tuple[str, pa.DataType], ...]
    partitioning: tuple[str, ...] = ()  # Iceberg partition fields: 'date', 'day(time)'
    if_not_exists: bool = False

    @property
    def schema(self) -> pa.Schema:
        """The new table's Arrow schema."""
        return pa.schema(list(self.columns))


@dataclass(frozen=True, slots=True)
class DeleteFrom:
    """One ``DELETE FROM name [WHERE condition]``: rows for which the condition is TRUE go."""

    name: str
    # ``SELECT*FROM name WHERE condition`` at the statement's own lines and columns (errors in
    # the condition point into the statement); None without WHERE (every row goes).
    filter_sql: str | None = None
    # The rows that stay: ``SELECT * FROM name WHERE NOT COALESCE((condition), FALSE)``.
    keep_sql: str | None = None
    columns: frozenset[str] = frozenset()  # columns the condition names
    has_subquery: bool = False
    place: tuple[int, int] = (1, 1)  # line and column of the table name


@dataclass(frozen=True, slots=True)
class DropTable:
    """One DROP TABLE."""

    name: str
    if_exists: bool = False


@dataclass(frozen=True, slots=True)
class InsertInto:
    """One ``INSERT INTO name [(columns)] query``: an append to an existing table."""

    name: str
    query_sql: str  # the SELECT or VALUES, at its original line/column (prefix blanked)
    columns: tuple[str, ...] | None = None  # the listed target columns; None: all, in order
    place: tuple[int, int] = (1, 1)  # line and column of the table name (for errors)


@dataclass(frozen=True, slots=True)
class UpdateTable:
    """One ``UPDATE name SET column = expression, ... [WHERE condition]``: the rows for which
    the condition is TRUE get the new values (every row without WHERE)."""

    name: str
    assignments: tuple[tuple[str, str], ...]  # (column, expression as Trino SQL)
    condition_sql: str | None = None  # the WHERE condition as Trino SQL; None: every row
    place: tuple[int, int] = (1, 1)  # line and column of the table name
    # A WHERE with IN / EXISTS subqueries: the FROM clause joining them (the condition then
    # names their marks, see :func:`unnest_subqueries`); None: the table alone.
    from_sql: str | None = None

    @property
    def relation(self) -> str:
        """What the rows are read FROM: the table, with the subqueries' joins if any."""
        return self.from_sql or _ident(self.name)

    @property
    def filter_sql(self) -> str | None:
        """``SELECT name.* FROM ... WHERE condition``: bound for errors and file pruning."""
        if self.condition_sql is None:
            return None
        return f"SELECT {_ident(self.name)}.* FROM {self.relation} WHERE {self.condition_sql}"


@dataclass(frozen=True, slots=True)
class MergeClause:
    """One WHEN clause of a MERGE: ``WHEN [NOT] MATCHED [AND condition] THEN ...``."""

    matched: bool
    action: str  # "update", "delete" or "insert"
    condition_sql: str | None = None
    assignments: tuple[tuple[str, str], ...] = ()  # UPDATE SET: (column, expression)
    columns: tuple[str, ...] | None = None  # INSERT (columns); None: every column, in order
    values: tuple[str, ...] = ()  # INSERT VALUES (...)


@dataclass(frozen=True, slots=True)
class MergeInto:
    """One ``MERGE INTO target [[AS] alias] USING source [[AS] alias] ON condition WHEN ...``.

    ``source_sql`` is a relation as Trino SQL: a table name or a parenthesized query; the
    clauses are evaluated in order, the first whose condition holds applies."""

    name: str
    target_alias: str  # the name the statement uses for the target (its alias, or its name)
    source_sql: str
    source_alias: str
    on_sql: str
    clauses: tuple[MergeClause, ...]
    place: tuple[int, int] = (1, 1)  # line and column of the target table name


@dataclass(frozen=True, slots=True)
class Optimize:
    """``ALTER TABLE name EXECUTE optimize(file_size_threshold => '100MB')``: files smaller
    than the threshold, per partition, rewritten into files near write.target_file_bytes."""

    name: str
    file_size_threshold: int = 100 * 1024**2  # Trino's default
    place: tuple[int, int] = (1, 1)


@dataclass(frozen=True, slots=True)
class ExpireSnapshots:
    """``ALTER TABLE name EXECUTE expire_snapshots(retention_threshold => '7d')``: snapshots
    older than the threshold removed, with the files no remaining snapshot lists."""

    name: str
    retention: dt.timedelta = dt.timedelta(days=7)  # Trino's default
    place: tuple[int, int] = (1, 1)


@dataclass(frozen=True, slots=True)
class AlterColumn:
    """Iceberg schema evolution, Trino's syntax, metadata only (no data file is rewritten):

    * ``ALTER TABLE name ADD COLUMN [IF NOT EXISTS] column type``: a new column, NULL in
      every existing row (no older file holds it);
    * ``ALTER TABLE name RENAME COLUMN [IF EXISTS] column TO new_name``: older files keep
      the old name, and are read by the column's field id;
    * ``ALTER TABLE name DROP COLUMN [IF EXISTS] column``.
    """

    name: str
    action: str  # "add", "rename" or "drop"
    column: str
    new_name: str = ""  # RENAME: the new name
    type: pa.DataType | None = None  # ADD: the new column's type
    if_exists: bool = False  # ADD: IF NOT EXISTS; RENAME and DROP: IF EXISTS
    place: tuple[int, int] = (1, 1)  # line and column of the table name

    def describe(self) -> str:
        """The change in Trino's words (``ADD COLUMN c bigint``)."""
        if self.action == "add":
            assert self.type is not None
            return f"ADD COLUMN {self.column} {type_name(self.type)}"
        if self.action == "rename":
            return f"RENAME COLUMN {self.column} TO {self.new_name}"
        return f"DROP COLUMN {self.column}"


Statement = (Query | CreateTableAs | CreateTable | InsertInto | DeleteFrom | UpdateTable
             | MergeInto | DropTable | Optimize | ExpireSnapshots | AlterColumn)
WRITE_STATEMENTS = ("SELECT, CREATE TABLE [AS], INSERT INTO, DELETE, UPDATE, MERGE, DROP TABLE, "
                    "ALTER TABLE ... ADD | RENAME | DROP COLUMN and ALTER TABLE ... EXECUTE "
                    "optimize | expire_snapshots")

# First tokens of a query: its text goes to the binder unparsed here (parsed once, there).
_QUERY_START = frozenset({TokenType.SELECT, TokenType.WITH, TokenType.VALUES,
                          TokenType.L_PAREN, TokenType.FROM})


def parse_size(text: str | int, what: str = "target_file_size") -> int:
    """Bytes of a size such as ``'128MB'``, ``'1.5GB'``, ``'65536'`` (binary units)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = _SIZE.match(str(text))
        if m is None:
            raise SqlError(f"{what} takes a size like '128MB' or '1GB', got {text!r}")
        unit = m.group(2).upper()  # "", "B", "K", "KB", ... ("M" means "MB")
        value = int(float(m.group(1)) * _UNITS[unit if unit in ("", "B") else
                                               unit.rstrip("B") + "B"])
    if value < 1:
        raise SqlError(f"{what} must be positive, got {text!r}")
    return value


def parse_statement(sql: str) -> Statement:
    """The statement in ``sql`` as a typed object; SqlError (with line and column) for bad
    syntax or a statement kind mpp does not run."""
    head = _tokens(sql)[:1]
    if not head or head[0].token_type in _QUERY_START:
        return Query(sql)  # an empty text fails in the binder, with its usual message
    if _ALTER_EXECUTE.match(sql):
        return _alter_execute(sql)
    tree = parse(sql)
    if isinstance(tree, exp.Query):
        return Query(sql)
    if isinstance(tree, exp.Drop):
        return _drop(tree, sql)
    if isinstance(tree, exp.Create):
        return _create(tree, sql)
    if isinstance(tree, exp.Insert):
        return _insert(tree, sql)
    if isinstance(tree, exp.Delete):
        return _delete(tree, sql)
    if isinstance(tree, exp.Update):
        return _update(tree, sql)
    if isinstance(tree, exp.Merge):
        return _merge(tree, sql)
    if isinstance(tree, exp.Alter):
        return _alter(tree, sql)
    raise SqlError(f"unsupported statement: {_kind(sql)}; mpp runs {WRITE_STATEMENTS}",
                   *statement_start(sql))


def _alter(tree: exp.Alter, sql: str) -> AlterColumn:
    """``ALTER TABLE t ADD COLUMN / RENAME COLUMN / DROP COLUMN``; other ALTERs are refused
    with what mpp runs instead."""
    actions = tree.args.get("actions") or []
    where = statement_start(sql)
    if str(tree.args.get("kind") or "").upper() != "TABLE" or len(actions) != 1:
        raise SqlError(f"unsupported statement: ALTER {tree.args.get('kind') or ''} with "
                       f"{len(actions)} actions; mpp runs one ALTER TABLE ... ADD COLUMN, "
                       "RENAME COLUMN or DROP COLUMN at a time", *where)
    name = _table_name(tree.this, sql)
    place = locate(tree.this, sql)
    action = actions[0]
    if isinstance(action, exp.ColumnDef):
        kind = action.args.get("kind")
        if kind is None:
            raise SqlError(f"ADD COLUMN {action.name}: the column needs a type", *where)
        if action.args.get("constraints"):
            raise SqlError(f"ADD COLUMN {action.name}: column constraints (NOT NULL, DEFAULT, "
                           "COMMENT) are not supported; the new column is NULL in every "
                           "existing row", *locate(action, sql))
        try:
            t = arrow_type(kind)
        except ValueError as exc:  # DECIMAL(50, 2)
            raise SqlError(f"column {action.name}: {exc}", *locate(action, sql)) from None
        if t is None:
            raise SqlError(f"unsupported column type {kind.sql(dialect='trino')} of column "
                           f"{action.name}; mpp stores {_TYPES}", *locate(action, sql))
        return AlterColumn(name, "add", action.name, type=t,
                           if_exists=bool(action.args.get("exists")), place=place)
    if isinstance(action, exp.RenameColumn):
        return AlterColumn(name, "rename", action.this.name, new_name=action.args["to"].name,
                           if_exists=bool(action.args.get("exists")), place=place)
    if isinstance(action, exp.Drop) and str(action.args.get("kind") or "").upper() == "COLUMN":
        columns = action.args.get("tables") or []
        if len(columns) != 1:
            raise SqlError("DROP COLUMN drops one column at a time", *where)
        return AlterColumn(name, "drop", columns[0].name,
                           if_exists=bool(action.args.get("exists")), place=place)
    if isinstance(action, exp.AlterColumn):
        raise SqlError(f"ALTER TABLE {name} ALTER COLUMN {action.name}: changing a column's "
                       "type or default is not supported (older files keep the type they were "
                       "written with); add a new column and fill it with UPDATE instead",
                       *locate(action, sql))
    raise SqlError(f"unsupported statement: ALTER TABLE {name} "
                   f"{' '.join(action.sql(dialect='trino').split()[:2]).upper()} ...; mpp runs "
                   "ALTER TABLE ... ADD COLUMN, RENAME COLUMN, DROP COLUMN and EXECUTE", *where)


def _kind(sql: str) -> str:
    """The statement's kind as its first keywords read (``UPDATE``, ``ALTER TABLE``, ...)."""
    words = [t.text.upper() for t in _tokens(sql)[:2]]
    return " ".join(words if words[1:] == ["TABLE"] else words[:1])


def _table_name(table: exp.Expr, sql: str) -> str:
    if not isinstance(table, exp.Table) or table.args.get("db") or table.args.get("catalog"):
        line, col = locate(table, sql)
        raise SqlError("expected a plain table name (no schema or catalog prefix)", line, col)
    return table.name


def _drop(tree: exp.Drop, sql: str) -> DropTable:
    kind = str(tree.args.get("kind") or "").upper()
    tables = tree.args.get("tables") or ([tree.this] if tree.this else [])
    if kind != "TABLE" or len(tables) != 1:
        line, col = locate(tree, sql)
        raise SqlError("only DROP TABLE of one table is supported", line, col)
    return DropTable(_table_name(tables[0], sql), bool(tree.args.get("exists")))


def _create(tree: exp.Create, sql: str) -> CreateTableAs | CreateTable:
    kind = str(tree.args.get("kind") or "").upper()
    query = tree.args.get("expression")
    if kind == "TABLE" and query is None and isinstance(tree.this, exp.Schema):
        return _create_empty(tree, sql)
    if kind != "TABLE" or not isinstance(query, exp.Query):
        line, col = locate(tree, sql)
        raise SqlError("only CREATE [OR REPLACE] TABLE name [WITH (...)] AS SELECT ... is "
                       "supported", line, col)
    if tree.args.get("replace") and tree.args.get("exists"):
        line, col = locate(tree, sql)
        raise SqlError("CREATE OR REPLACE TABLE and IF NOT EXISTS cannot be used together",
                       line, col)
    target = tree.this
    if isinstance(target, exp.Schema):  # CREATE TABLE t (a int, ...) AS ...
        line, col = locate(target, sql)
        raise SqlError("CREATE TABLE AS takes its columns from the SELECT; remove the column "
                       "list", line, col)
    props = _properties(tree.args.get("properties"), sql)
    partitioning = props.pop("partitioning", ())
    fields = [partition_field(f) for f in partitioning]  # checked in _properties
    if any(t != "identity" for t, _ in fields):
        line, col = locate(tree, sql)
        raise SqlError("CREATE TABLE AS partitions by columns; for a transform such as "
                       "day(time), CREATE TABLE with columns and partitioning, then INSERT",
                       line, col)
    if fields:
        props["partitioned_by"] = tuple(c for _, c in fields)
    name = _table_name(target, sql)
    try:
        check_table_name(name)
    except CatalogError as exc:  # the same words, with the place in the statement
        line, col = locate(target, sql)
        raise SqlError(str(exc), line, col) from None
    return CreateTableAs(name=name, select_sql=_select_text(sql),
                         if_not_exists=bool(tree.args.get("exists")),
                         replace=bool(tree.args.get("replace")), **props)  # type: ignore[arg-type]


def _insert(tree: exp.Insert, sql: str) -> InsertInto:
    target, query = tree.this, tree.args.get("expression")
    if tree.args.get("overwrite") or not isinstance(query, exp.Query | exp.Values | exp.Subquery):
        line, col = locate(tree, sql)
        raise SqlError("only INSERT INTO name [(columns)] SELECT ... | VALUES ... is supported",
                       line, col)
    columns = None
    if isinstance(target, exp.Schema):  # INSERT INTO t (a, b) ...
        columns = tuple(c.name for c in target.expressions)
        for i, c in enumerate(columns):
            if c in columns[:i]:
                line, col = locate(target.expressions[i], sql)
                raise SqlError(f"Insert column name is specified more than once: {c}", line, col)
        target = target.this
    name = _table_name(target, sql)
    return InsertInto(name, _insert_query_text(sql, columns is not None), columns,
                      locate(target, sql))


def _delete(tree: exp.Delete, sql: str) -> DeleteFrom:
    target = tree.this
    if tree.args.get("using") or not isinstance(target, exp.Table):
        line, col = locate(tree, sql)
        raise SqlError("only DELETE FROM name [WHERE condition] is supported", line, col)
    name = _table_name(target, sql)
    where = tree.args.get("where")
    if where is None:
        return DeleteFrom(name, place=locate(target, sql))
    cond = where.this
    columns = frozenset(c.name for c in cond.find_all(exp.Column))
    if cond.find(exp.Query) is not None:  # IN / EXISTS as joins the planner runs per file
        plain, rel = unnest_subqueries(name, cond, sql, f"DELETE FROM {name}")
        t = _ident(name)
        return DeleteFrom(name, f"SELECT {t}.* FROM {rel} WHERE {plain}",
                          f"SELECT {t}.* FROM {rel} WHERE NOT COALESCE(({plain}), FALSE)",
                          columns, True, locate(target, sql))
    keep = (exp.select("*").from_(target.copy())
            .where(exp.not_(exp.Coalesce(this=exp.Paren(this=cond.copy()),
                                         expressions=[exp.false()]))))
    return DeleteFrom(name, _filter_text(sql, keep.from_(target.copy()).where(cond.copy(),
                                                                              append=False)),
                      keep.sql(dialect="trino"), columns, False, locate(target, sql))


def _in_subquery(node: exp.Expr) -> bool:
    """Whether ``node`` lies inside a subquery of the condition (not the condition's own)."""
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.Query | exp.Subquery):
            return True
        parent = parent.parent
    return False


def unnest_subqueries(name: str, cond: exp.Expr, sql: str, what: str) -> tuple[str, str]:
    """A condition on table ``name`` with ``IN (subquery)`` and ``EXISTS (subquery)`` terms as
    ``(condition, FROM clause)`` without them, exact in Trino's three-valued logic wherever
    the terms stand (under NOT, OR, COALESCE), so a write can compute both the rows it changes
    and the rows it keeps (``NOT COALESCE(condition, FALSE)``) in one pass per file:

    * ``x IN (q)`` becomes a LEFT JOIN of the table with ``SELECT DISTINCT`` of q's column
      (planned as a broadcast join: the table's files stay one task each) and ``CASE WHEN
      matched THEN TRUE WHEN q is empty THEN FALSE WHEN x IS NULL OR q has a NULL THEN NULL
      ELSE FALSE END`` (the two counts are uncorrelated scalar subqueries);
    * ``EXISTS (q)`` becomes ``(SELECT count(*) FROM (q)) > 0``.

    Scalar subqueries stay as they are (the binder plans them). A correlated IN or EXISTS
    (naming ``name``'s columns inside) is refused."""
    holder = exp.Paren(this=cond.copy())  # a parent, so that a term that is all of it can
    t = _ident(name)                      # be replaced too
    joins: list[str] = []
    for i, node in enumerate([n for n in holder.find_all(exp.In, exp.Exists)
                              if not _in_subquery(n)]):
        query = node.args.get("query") if isinstance(node, exp.In) else node.this
        if query is None:
            continue  # IN (list)
        inner = query.this if isinstance(query, exp.Subquery) else query
        reads = {tb.name.lower() for tb in inner.find_all(exp.Table)}
        if name.lower() not in reads and any(
                c.table.lower() == name.lower() for c in inner.find_all(exp.Column)):
            raise SqlError(f"{what}: a correlated subquery (naming {name}'s columns inside) is "
                           "not supported; write it as column IN (SELECT ...)",
                           *locate(node, sql))
        text = inner.sql(dialect="trino")
        m = f"__sq{i}"
        if isinstance(node, exp.Exists):
            repl = f"((SELECT count(*) FROM ({text}) AS {m}) > 0)"
        else:
            if len(inner.selects) != 1:
                raise SqlError(f"{what}: the subquery of IN must return one column, it returns "
                               f"{len(inner.selects)}", *locate(node, sql))
            x = node.this.sql(dialect="trino")
            joins.append(f"LEFT JOIN (SELECT DISTINCT {m}_v AS {m}_k, TRUE AS {m}_hit FROM "
                         f"({text}) AS {m}_s ({m}_v)) AS {m} ON ({x}) = {m}.{m}_k")
            repl = (f"(CASE WHEN {m}.{m}_hit THEN TRUE "
                    f"WHEN (SELECT count(*) FROM ({text}) AS {m}_c) = 0 THEN FALSE "
                    f"WHEN ({x}) IS NULL OR (SELECT count(*) FROM ({text}) AS {m}_n ({m}_v) "
                    f"WHERE {m}_v IS NULL) > 0 THEN NULL ELSE FALSE END)")
        node.replace(exp.maybe_parse(repl, dialect="trino"))
    return holder.sql(dialect="trino"), " ".join([t, *joins])


def _ident(name: str) -> str:
    """``name`` as a Trino identifier (quoted only when it must be)."""
    return exp.to_identifier(name).sql(dialect="trino")


def _update(tree: exp.Update, sql: str) -> UpdateTable:
    target = tree.this
    if tree.args.get("from") or not isinstance(target, exp.Table) or target.alias:
        line, col = locate(tree, sql)
        raise SqlError("only UPDATE name SET column = expression, ... [WHERE condition] is "
                       "supported", line, col)
    name = _table_name(target, sql)
    assignments = _set_list(tree.expressions, sql, "UPDATE")
    where = tree.args.get("where")
    if where is not None and where.this.find(exp.Query) is not None:
        condition, rel = unnest_subqueries(name, where.this, sql, f"UPDATE {name}")
        return UpdateTable(name, assignments, condition, locate(target, sql), rel)
    return UpdateTable(name, assignments,
                       None if where is None else where.this.sql(dialect="trino"),
                       locate(target, sql))


def _set_list(items: list[exp.Expr], sql: str, what: str) -> tuple[tuple[str, str], ...]:
    """``column = expression, ...`` of an UPDATE SET as (column, Trino SQL) pairs."""
    out: list[tuple[str, str]] = []
    for eq in items:
        column = eq.this if isinstance(eq, exp.EQ) else None
        if not isinstance(column, exp.Column) or column.table:
            line, col = locate(eq, sql)
            raise SqlError(f"{what} SET takes column = expression", line, col)
        if column.name.lower() in (c.lower() for c, _ in out):
            line, col = locate(eq, sql)
            raise SqlError(f"{what} SET names column {column.name} more than once", line, col)
        if eq.expression.find(exp.Query) is not None:
            line, col = locate(eq.expression, sql)
            raise SqlError(f"{what} SET: a subquery is not supported yet", line, col)
        out.append((column.name, eq.expression.sql(dialect="trino")))
    return tuple(out)


def _merge(tree: exp.Merge, sql: str) -> MergeInto:
    target, source = tree.this, tree.args.get("using")
    if not isinstance(target, exp.Table) or not isinstance(source, exp.Table | exp.Subquery):
        line, col = locate(tree, sql)
        raise SqlError("only MERGE INTO table [alias] USING table-or-(query) [alias] ON ... "
                       "is supported", line, col)
    name = _table_name(target, sql)
    if isinstance(source, exp.Table):
        source_sql = _ident(_table_name(source, sql))
        source_alias = source.alias or source.name
    else:
        if not source.alias:
            line, col = locate(source, sql)
            raise SqlError("MERGE USING (query) needs an alias", line, col)
        source_sql = f"({source.this.sql(dialect='trino')})"
        source_alias = source.alias
    target_alias = target.alias or name
    if target_alias.lower() == source_alias.lower():
        line, col = locate(source, sql)
        raise SqlError(f"MERGE: target and source are both named {source_alias}; give one an "
                       "alias", line, col)
    on = tree.args.get("on")
    if on is None or on.find(exp.Query) is not None:
        line, col = locate(tree, sql)
        raise SqlError("MERGE needs ON condition (without a subquery)", line, col)
    whens = tree.args.get("whens")
    clauses = []
    for when in (whens.expressions if whens is not None else []):
        line, col = locate(when, sql)
        if when.args.get("source"):
            raise SqlError("WHEN NOT MATCHED BY SOURCE is not supported (Trino has none)",
                           line, col)
        cond = when.args.get("condition")
        if cond is not None and cond.find(exp.Query) is not None:
            raise SqlError("MERGE: a subquery in a WHEN condition is not supported yet",
                           line, col)
        cond_sql = None if cond is None else cond.sql(dialect="trino")
        then = when.args.get("then")
        matched = bool(when.args.get("matched"))
        if matched and isinstance(then, exp.Update):
            clauses.append(MergeClause(True, "update", cond_sql,
                                       _set_list(then.expressions, sql, "MERGE UPDATE")))
        elif matched and isinstance(then, exp.Var) and then.name.upper() == "DELETE":
            clauses.append(MergeClause(True, "delete", cond_sql))
        elif not matched and isinstance(then, exp.Insert) and isinstance(
                then.expression, exp.Tuple):
            cols = then.this
            columns = None if cols is None else tuple(c.name for c in cols.expressions)
            values = tuple(v.sql(dialect="trino") for v in then.expression.expressions)
            if columns is not None and len(columns) != len(values):
                raise SqlError(f"MERGE INSERT lists {len(columns)} columns and "
                               f"{len(values)} values", line, col)
            clauses.append(MergeClause(False, "insert", cond_sql, (), columns, values))
        else:
            raise SqlError("MERGE takes WHEN MATCHED [AND c] THEN UPDATE SET ... | DELETE and "
                           "WHEN NOT MATCHED [AND c] THEN INSERT [(columns)] VALUES (...)",
                           line, col)
    if not clauses:
        line, col = locate(tree, sql)
        raise SqlError("MERGE needs at least one WHEN clause", line, col)
    return MergeInto(name, target_alias, source_sql, source_alias, on.sql(dialect="trino"),
                     tuple(clauses), locate(target, sql))


def _filter_text(sql: str, fallback: exp.Select) -> str:
    """``DELETE FROM t WHERE c`` as ``SELECT*FROM t WHERE c``, every later character in place
    (DELETE becomes SELECT and the first blank other than a line break after it ``*``)."""
    tokens = _tokens(sql)
    first, second = tokens[0], tokens[1] if len(tokens) > 1 else None
    gap = sql[first.end + 1: second.start] if second is not None else ""
    spot = next((i for i, ch in enumerate(gap) if ch in " \t"), None)
    if first.text.upper() != "DELETE" or spot is None or gap.strip():
        return fallback.sql(dialect="trino")  # a comment between DELETE and FROM, or no room
    at = first.end + 1 + spot
    return sql[:first.start] + "SELECT" + sql[first.end + 1:at] + "*" + sql[at + 1:]


def _insert_query_text(sql: str, has_columns: bool) -> str:
    """The query of an INSERT (after the table name and column list), prefix blanked."""
    tokens = _tokens(sql)
    j = next(i for i, t in enumerate(tokens) if t.token_type == TokenType.INTO) + 1
    starts = (TokenType.L_PAREN, TokenType.SELECT, TokenType.WITH, TokenType.VALUES)
    while j < len(tokens) and tokens[j].token_type not in starts:
        j += 1  # the table name's parts
    if has_columns:  # skip the column list
        depth = 0
        while j < len(tokens):
            depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(tokens[j].token_type, 0)
            j += 1
            if depth == 0:
                break
    if j >= len(tokens):
        raise SqlError("INSERT INTO needs a SELECT or VALUES after the table", 1, 1)
    start = tokens[j].start
    return re.sub(r"[^\n]", " ", sql[:start]) + sql[start:]


def _create_empty(tree: exp.Create, sql: str) -> CreateTable:
    """``CREATE TABLE t (a bigint, ...) [WITH (...)]``: names, types, partitioning checked."""
    if tree.args.get("replace"):
        line, col = locate(tree, sql)
        raise SqlError("CREATE OR REPLACE TABLE takes AS SELECT ...", line, col)
    schema = tree.this
    name = _table_name(schema.this, sql)
    columns: list[tuple[str, pa.DataType]] = []
    for c in schema.expressions:
        if not isinstance(c, exp.ColumnDef) or c.args.get("kind") is None:
            line, col = locate(c, sql)
            raise SqlError("expected a column definition: name type", line, col)
        kind = c.args["kind"]
        try:
            t = arrow_type(kind)
        except ValueError as exc:  # DECIMAL(50, 2): the reason, at the column
            line, col = locate(c, sql)
            raise SqlError(f"column {c.name}: {exc}", line, col) from None
        if t is None:
            line, col = locate(c, sql)
            raise SqlError(f"unsupported column type {kind.sql(dialect='trino')} of column "
                           f"{c.name}; mpp stores {_TYPES}", line, col)
        if c.name in (n for n, _ in columns):
            line, col = locate(c, sql)
            raise SqlError(f"column {c.name} is defined twice", line, col)
        columns.append((c.name, t))
    props = _properties(tree.args.get("properties"), sql)
    if props.get("format", StorageFormat.PARQUET) is not StorageFormat.PARQUET:
        line, col = locate(tree, sql)
        raise SqlError("CREATE TABLE with columns makes Iceberg (PARQUET) tables", line, col)
    if "target_file_bytes" in props:
        line, col = locate(tree, sql)
        raise SqlError("target_file_size applies to CREATE TABLE AS and INSERT settings "
                       "(write.target_file_bytes), not to an empty table", line, col)
    partitioning = tuple(props.get("partitioning", ())) + tuple(props.get("partitioned_by", ()))
    types = dict(columns)
    for text in partitioning:
        transform, column = partition_field(text)
        if column not in types:
            line, col = locate(tree, sql)
            raise SqlError(f"partition column {column!r} is not a column of {name} "
                           f"({', '.join(types)})", line, col)
        t = types[column]
        if transform != "identity" and not (
                pa.types.is_timestamp(t) or (pa.types.is_date(t) and transform != "hour")):
            line, col = locate(tree, sql)
            raise SqlError(f"partition transform {transform}({column}) needs a "
                           f"{'timestamp' if transform == 'hour' else 'date or timestamp'} "
                           f"column; {column} is {type_name(t)}", line, col)
    return CreateTable(name, tuple(columns), partitioning, bool(tree.args.get("exists")))


def _literal(node: exp.Expr, sql: str, name: str) -> str:
    if isinstance(node, exp.Literal | exp.Var | exp.Identifier):
        return str(node.this)
    line, col = locate(node, sql)
    raise SqlError(f"WITH property {name} takes a literal", line, col)


def _properties(props: exp.Expr | None, sql: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for p in props.expressions if props is not None else []:
        if isinstance(p, exp.FileFormatProperty):
            value = _literal(p.this, sql, "format").lower()
            if value not in [f.value for f in CTAS_FORMATS]:
                line, col = locate(p, sql)
                raise SqlError(f"format must be 'PARQUET' or 'ORC', got {value.upper()!r}",
                               line, col)
            out["format"] = StorageFormat(value)
        elif isinstance(p, exp.PartitionedByProperty):
            items = p.this.expressions if isinstance(p.this, exp.Array | exp.Tuple | exp.Schema) \
                else [p.this]
            out["partitioned_by"] = tuple(_literal(i, sql, "partitioned_by") for i in items)
        elif isinstance(p, exp.Property) and p.name.lower() == "partitioning":
            value = p.args["value"]
            items = value.expressions if isinstance(value, exp.Array | exp.Tuple) else [value]
            fields = []
            for item in items:
                text = _literal(item, sql, "partitioning")
                try:
                    transform = partition_field(text)[0]
                except ValueError:
                    transform = text
                if transform not in ("identity", *TRANSFORMS):
                    line, col = locate(item, sql)
                    raise SqlError(f"partitioning {text!r}: mpp writes a column name or year, "
                                   "month, day or hour of a column", line, col)
                fields.append(text.strip())
            out["partitioning"] = tuple(fields)
        elif isinstance(p, exp.Property) and p.name.lower() == "target_file_size":
            value = p.args["value"]
            out["target_file_bytes"] = parse_size(_literal(value, sql, "target_file_size"))
        else:
            line, col = locate(p, sql)
            raise SqlError(f"unknown WITH property {p.sql(dialect='trino')!r}; mpp knows format, "
                           "partitioning, partitioned_by and target_file_size", line, col)
    return out


def _select_text(sql: str) -> str:
    """The text after the top-level AS of a CREATE TABLE, prefix blanked (lines kept)."""
    depth = 0
    tokens = _tokens(sql)
    for i, tok in enumerate(tokens):
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
        elif tok.token_type == TokenType.R_PAREN:
            depth -= 1
        elif tok.token_type == TokenType.ALIAS and depth == 0 and i + 1 < len(tokens):
            start = tokens[i + 1].start
            return re.sub(r"[^\n]", " ", sql[:start]) + sql[start:]
    raise SqlError("CREATE TABLE needs AS SELECT ...", 1, 1)


# ---- ALTER TABLE ... EXECUTE (table procedures; sqlglot parses them as opaque commands) ------

_ALTER_EXECUTE = re.compile(r"\s*ALTER\s+TABLE\s+.*?\bEXECUTE\b", re.IGNORECASE | re.DOTALL)
_EXECUTE = re.compile(
    r"\s*ALTER\s+TABLE\s+(?P<name>\"[^\"]+\"|[A-Za-z_][\w$]*)\s+EXECUTE\s+(?P<proc>\w+)"
    r"\s*(?:\((?P<args>.*)\))?\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_ARG = re.compile(r"\s*(?:(?P<key>\w+)\s*=>\s*)?'(?P<value>[^']*)'\s*$", re.DOTALL)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": dt.timedelta(milliseconds=1), "s": dt.timedelta(seconds=1),
                   "m": dt.timedelta(minutes=1), "h": dt.timedelta(hours=1),
                   "d": dt.timedelta(days=1)}
PROCEDURES = {"optimize": "file_size_threshold", "expire_snapshots": "retention_threshold"}


def parse_duration(text: str, what: str = "retention_threshold") -> dt.timedelta:
    """A Trino duration such as ``'7d'``, ``'12h'``, ``'30m'``, ``'10s'``, ``'500ms'``."""
    m = _DURATION.match(text)
    if m is None:
        raise SqlError(f"{what} takes a duration like '7d', '12h' or '30m', got {text!r}")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2).lower()]


def _alter_execute(sql: str) -> Optimize | ExpireSnapshots:
    """``ALTER TABLE name EXECUTE procedure(arg => 'value')``, Trino's table procedures."""
    where = statement_start(sql)
    m = _EXECUTE.match(sql)
    if m is None:
        raise SqlError("expected ALTER TABLE name EXECUTE procedure(name => 'value', ...)",
                       *where)
    raw = m.group("name")
    name = raw[1:-1] if raw.startswith('"') else raw.lower()
    proc = m.group("proc").lower()
    if proc not in PROCEDURES:
        raise SqlError(f"unknown table procedure {m.group('proc')!r}; mpp runs "
                       f"{', '.join(PROCEDURES)}", *where)
    args: dict[str, str] = {}
    text = (m.group("args") or "").strip()
    for part in text.split(",") if text else []:
        a = _ARG.match(part)
        key = (a.group("key") or PROCEDURES[proc]).lower() if a else None
        if a is None or key != PROCEDURES[proc] or key in args:
            raise SqlError(f"{proc} takes one argument, {PROCEDURES[proc]} => '...', got "
                           f"{part.strip()!r}", *where)
        args[key] = a.group("value")
    if proc == "optimize":
        value = args.get("file_size_threshold")
        size = parse_size(value, "file_size_threshold") if value is not None else None
        return Optimize(name, size, where) if size is not None else Optimize(name, place=where)
    value = args.get("retention_threshold")
    if value is None:
        return ExpireSnapshots(name, place=where)
    return ExpireSnapshots(name, parse_duration(value), where)
