"""DECIMAL(p, s) with Trino's typing and rounding, equal to DuckDB over the same data.

Expressions are evaluated by mpp and by DuckDB (through the oracle's translation, which turns
decimal division and avg into exact integer arithmetic: DuckDB divides decimals in DOUBLE)
over one Arrow table; queries run on a cluster over registered Parquet files with DECIMAL
columns, several fragments, against DuckDB over the same files. Result types are Trino's
rules (DecimalOperators, DecimalSumAggregation, DecimalAverageAggregation), which no oracle
computes, so they are stated here.
"""

from __future__ import annotations

import decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mpp
from mpp.catalog import Catalog
from mpp.catalog.files_source import register_files
from mpp.catalog.model import TableInfo, TableStats
from mpp.errors import SqlError
from mpp.logical.evaluate import evaluate
from mpp.logical.expr import Expr
from mpp.logical.nodes import Project
from mpp.oracle import duckdb_sql, run_oracle, sql_type
from mpp.sql import bind
from mpp.storage.base import StorageFormat
from tests.compare import assert_same_result, assert_same_rows
from tests.fake_catalog import FakeCatalog

D = decimal.Decimal
TABLE = pa.table({
    "id": pa.array(range(8), pa.int64()),
    "p": pa.array([D("1.25"), D("-1.25"), D("2.50"), D("0.05"), None, D("123456.78"),
                   D("-0.15"), D("7.00")], pa.decimal128(15, 2)),
    "q": pa.array([D("3.3"), D("-0.4"), D("2.5"), None, D("1.0"), D("0.3"), D("-2.5"),
                   D("1.5")], pa.decimal128(5, 1)),
    "i": pa.array([2, -3, 4, 1, None, 7, -2, 5], pa.int32()),
    "x": pa.array([0.5, -2.25, None, 10.0, 3.75, -0.125, 1.0, 2.0], pa.float64()),
    "s": pa.array(["1.555", " -2.5", "0", None, "12", "-0.004", "3.14159", "99"], pa.string()),
})
SCHEMA = {"t": {f.name: sql_type(f.type) for f in TABLE.schema}}
CATALOG = FakeCatalog({"t": TableInfo("t", StorageFormat.PARQUET, TABLE.schema,
                                      TableStats(8, 0, 1), "memory://t")})

EXPRESSIONS = [
    "p + q", "p - q", "p * q", "p / q", "q / p", "p / i", "i / q", "p % q", "q % i",
    "p + i", "p * 2", "p + 1.5", "p / 3", "p / 0.07", "1.5 / q", "p * q * p", "-p",
    "p * x", "p + x", "p / x",
    "p = q", "p > q", "p > i", "p < x", "p = 1.25", "p = 1.250", "p BETWEEN 0 AND 2.5",
    "p IN (1.25, 7)", "q = 2.5", "i = 2.0",
    "CAST(p AS integer)", "CAST(q AS bigint)", "CAST(p AS double)", "CAST(p AS varchar)",
    "CAST(q AS varchar)", "CAST(p AS decimal(8, 1))", "CAST(q AS decimal(10, 3))",
    "CAST(i AS decimal(5, 2))", "CAST(x AS decimal(10, 2))", "CAST(s AS decimal(10, 2))",
    "CAST(p / 3 AS varchar)", "CAST(i AS decimal) / 4", "p + DECIMAL '0.005'",
    "coalesce(p, q, i)", "CASE WHEN p > 0 THEN p ELSE q END", "if(i > 0, q, 1.5)",
]


def mpp_column(expr: str) -> pa.Array | pa.ChunkedArray:
    plan = bind(f"SELECT {expr} FROM t", CATALOG)
    assert isinstance(plan.root, Project)
    renamed = TABLE.rename_columns([f"t.{n}" for n in TABLE.column_names])
    return evaluate(plan.root.exprs[0], renamed)


def mpp_type(expr: str) -> pa.DataType:
    plan = bind(f"SELECT {expr} FROM t", CATALOG)
    assert isinstance(plan.root, Project)
    return plan.root.exprs[0].dtype


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("SET ieee_floating_point_ops = true")  # as run_oracle does
    c.register("t", TABLE)
    return c


def duckdb_column(expr: str, con: duckdb.DuckDBPyConnection) -> pa.ChunkedArray:
    sql = duckdb_sql(f"SELECT id, {expr} FROM t ORDER BY id", SCHEMA)
    return con.sql(sql).to_arrow_table().column(1)


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_decimal_expressions_match_duckdb(expr: str, con: duckdb.DuckDBPyConnection) -> None:
    actual = pa.table({"id": TABLE["id"], "v": mpp_column(expr)})
    expected = pa.table({"id": TABLE["id"], "v": duckdb_column(expr, con)})
    assert_same_rows(actual, expected)


@pytest.mark.parametrize(("expr", "precision", "scale"), [
    ("1.5", 2, 1), ("0.5", 1, 1), ("0.05", 2, 2), ("100.00", 5, 2), ("-1.5", 2, 1),
    ("p + q", 16, 2), ("p - 1", 16, 2), ("p * q", 20, 3), ("p / q", 16, 2), ("q / p", 8, 2),
    ("p / i", 15, 2), ("i / q", 12, 1), ("p % q", 6, 2), ("p * 2", 25, 2),
    ("p * q * p * p * p", 38, 9),  # capped at 38 digits
    ("0.06 + 0.01", 3, 2), ("1.5 * 2.25", 5, 3), ("10 / 4.0", 12, 1),
    ("CAST(i AS decimal)", 38, 0), ("CAST(i AS decimal(7))", 7, 0),
    ("DECIMAL '1.50'", 3, 2), ("DECIMAL '-0.5'", 1, 1), ("CAST('1.50' AS decimal)", 38, 0),
])
def test_decimal_types_follow_trino(expr: str, precision: int, scale: int) -> None:
    assert mpp_type(expr) == pa.decimal128(precision, scale)


@pytest.mark.parametrize(("expr", "dtype"), [
    ("1e1", pa.float64()), ("1.5E-2", pa.float64()), ("p * x", pa.float64()),
    ("p + CAST(x AS real)", pa.float32()), ("p = q", pa.bool_()),
])
def test_decimal_meets_floats_as_floats(expr: str, dtype: pa.DataType) -> None:
    assert mpp_type(expr) == dtype


def test_constant_decimal_arithmetic_is_folded_exactly() -> None:
    plan = bind("SELECT 0.06 + 0.01, 2.00 / 3, -7 / 2.0, 1.005 * 2 FROM t", CATALOG)
    assert isinstance(plan.root, Project)
    values = [e.value for e in plan.root.exprs]  # type: ignore[attr-defined]
    assert values == [D("0.07"), D("0.67"), D("-3.5"), D("2.010")]


# DuckDB divides decimals as DOUBLEs and its avg of decimals is a DOUBLE; Trino's quotients
# are DECIMALs rounded half up. The oracle's translation computes Trino's value; DuckDB's own
# answer to the same text differs, which is why it is translated.
@pytest.mark.parametrize(("sql", "trino", "duckdb_own"), [
    ("SELECT CAST(-7 AS decimal(3, 0)) / 2", D("-4"), -3.5),
    ("SELECT 1.00 / 3", D("0.33"), 1 / 3),
    ("SELECT 2.5 / 2", D("1.3"), 1.25),
])
def test_division_and_avg_round_half_up_unlike_duckdb(sql: str, trino: D,
                                                      duckdb_own: float) -> None:
    con = duckdb.connect()
    assert con.sql(duckdb_sql(sql)).fetchall()[0][0] == trino
    assert con.sql(sql).fetchall()[0][0] == pytest.approx(duckdb_own)
    plan = bind(sql, CATALOG)
    assert isinstance(plan.root, Project)
    assert pa.table({"v": mpp_value(plan.root.exprs[0])})["v"].to_pylist() == [trino]


def mpp_value(expr: Expr) -> pa.Array:
    """A constant expression evaluated over one row."""
    return evaluate(expr, pa.table({"_": [0]}))


@pytest.mark.parametrize(("sql", "where"), [
    ("SELECT CAST('99999999999999999999999999999999999999' AS decimal(38, 0)) + 1 FROM t",
     "CAST('99999999999999999999999999999999999999' AS DECIMAL(38, 0)) + 1"),
    ("SELECT 12345678901234567890123456789012345678.5 FROM t", "39 digits"),
])
def test_overflow_at_bind_time_names_the_expression(sql: str, where: str) -> None:
    with pytest.raises(SqlError) as info:
        bind(sql, CATALOG)
    assert where in str(info.value) and info.value.line == 1


def test_overflow_at_run_time_names_the_expression() -> None:
    expr = "CAST(p AS decimal(38, 0)) * CAST('10000000000000000000000000000000000' AS decimal(38, 0))"
    with pytest.raises(SqlError) as info:
        mpp_column(expr)
    assert "Decimal overflow in CAST(p AS DECIMAL(38, 0)) * " in str(info.value)
    assert info.value.line == 1 and info.value.column is not None


@pytest.mark.parametrize("op", ["/", "%"])
def test_division_by_zero_is_an_error(op: str) -> None:
    with pytest.raises(SqlError, match=f"Division by zero in p {op} "):
        mpp_column(f"p {op} CAST(i - i AS decimal(3, 0))")


# --- queries over Parquet files with DECIMAL columns ------------------------------------------


def _part(i: int, n: int = 40) -> pa.Table:
    rows = range(i * n, i * n + n)
    return pa.table({
        "id": pa.array(rows, pa.int64()),
        "price": pa.array([D(f"{(j * 37) % 1000}.{(j * 13) % 100:02d}") if j % 7 else None
                           for j in rows], pa.decimal128(15, 2)),
        "disc": pa.array([D(f"0.{j % 11:02d}") for j in rows], pa.decimal128(15, 2)),
        "qty": pa.array([D(j % 5) for j in rows], pa.decimal128(7, 0)),
    })


# Groups whose average lies exactly halfway between two cents: Trino rounds half up (away
# from zero), DuckDB's avg is the DOUBLE 0.015. Rows of a group lie in different files.
HALVES = [(1, "0.01"), (1, "0.02"), (2, "-0.01"), (2, "-0.02"), (3, "0.05"), (3, "0.10"),
          (3, "0.10"), (3, "0.20"), (4, "1.00"), (4, "2.00"), (4, "2.00"), (4, "2.01"),
          (5, "0.02"), (5, "0.03")]  # 0.025: half up is 0.03, half to even would be 0.02


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("decimal")
    (root / "lake").mkdir()
    (root / "halves").mkdir()
    for i in range(4):
        pq.write_table(_part(i), root / "lake" / f"part-{i}.parquet", row_group_size=15)
        pq.write_table(pa.table({
            "g": pa.array([g for g, _ in HALVES[i::4]], pa.int32()),
            "v": pa.array([D(v) for _, v in HALVES[i::4]], pa.decimal128(4, 2))}),
            root / "halves" / f"part-{i}.parquet")
    catalog = Catalog.open(root / "wh", create=True)
    register_files(catalog, "items", str(root / "lake"), "parquet")
    register_files(catalog, "halves", str(root / "halves"), "parquet")
    return root / "wh"


def test_avg_rounds_half_up_unlike_duckdb(wh: Path, cluster) -> None:
    sql = "SELECT g, avg(v) a FROM halves GROUP BY g"
    with mpp.connect(wh, cluster=cluster) as session:
        actual = session.sql(sql).to_arrow()
        expected = run_oracle(sql, session.catalog)
    assert_same_rows(actual, expected)
    assert actual.schema.field("a").type == pa.decimal128(4, 2)
    by_group = dict(zip(actual["g"].to_pylist(), actual["a"].to_pylist(), strict=True))
    raw = dict(duckdb.sql("SELECT g, avg(v) FROM (VALUES " + ", ".join(
        f"({g}, CAST({v} AS DECIMAL(4, 2)))" for g, v in HALVES) + ") t(g, v) GROUP BY g"
    ).fetchall())
    assert by_group[1] == D("0.02") and raw[1] == pytest.approx(0.015)  # the edge itself
    assert by_group[2] == D("-0.02") and raw[2] == pytest.approx(-0.015)
    assert by_group[5] == D("0.03")


QUERIES = [
    "SELECT id, price * (1 - disc) AS net, price + 1.5 AS a, price / 3 AS third, "
    "price / 0.07 AS b, CAST(price AS integer) AS r FROM items",
    "SELECT sum(price) s, avg(price) a, min(price) lo, max(price) hi, count(price) n FROM items",
    "SELECT disc, sum(price * (1 - disc)) s, avg(price) a, avg(qty) q FROM items GROUP BY disc",
    "SELECT id FROM items WHERE price > 500.5 AND disc BETWEEN 0.06 - 0.01 AND 0.06 + 0.01",
    "SELECT qty, count(*) n FROM items WHERE price < 100 GROUP BY qty ORDER BY qty",
    "SELECT a.id, b.id FROM items a JOIN items b ON a.price = b.price WHERE a.id < b.id",
    "SELECT a.disc, count(*) n FROM items a JOIN (SELECT DISTINCT qty / 10 AS d FROM items) b "
    "ON a.disc = b.d GROUP BY a.disc",
    "SELECT price FROM items WHERE price IS NOT NULL ORDER BY price DESC LIMIT 5",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_decimal_queries_match_duckdb(wh: Path, cluster, sql: str) -> None:
    with mpp.connect(wh, cluster=cluster) as session:
        actual = session.sql(sql).to_arrow()
        assert_same_result(actual, run_oracle(sql, session.catalog), sql)


def test_result_types_are_trinos(wh: Path, cluster) -> None:
    with mpp.connect(wh, cluster=cluster) as session:
        result = session.sql("SELECT sum(price) s, avg(price) a, min(price) lo, "
                             "sum(price * disc) sd FROM items").to_arrow()
    assert result.schema.types == [pa.decimal128(38, 2), pa.decimal128(15, 2),
                                   pa.decimal128(15, 2), pa.decimal128(38, 4)]


def test_statistics_are_exact_decimals_and_prune_row_groups(wh: Path, cluster) -> None:
    catalog = Catalog.open(wh)
    stats = catalog.table("items").stats.column("price")
    prices = pa.concat_tables(_part(i) for i in range(4))["price"]
    assert (stats.min, stats.max) == (min(p for p in prices.to_pylist() if p is not None),
                                      max(p for p in prices.to_pylist() if p is not None))
    assert isinstance(stats.min, D)
    sql = "SELECT count(*) FROM items WHERE id >= 150 AND disc = 0.03"
    with mpp.connect(wh, cluster=cluster) as session:
        assert_same_rows(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog))


def test_a_sum_beyond_38_digits_is_decimal_overflow(wh: Path, cluster) -> None:
    big = "CAST(price AS decimal(38, 2)) * CAST('1000000000000000000000000000000000' AS decimal(36, 0))"
    with mpp.connect(wh, cluster=cluster) as session:
        with pytest.raises(SqlError) as info:
            session.sql(f"SELECT sum(CAST({big} AS decimal(38, 2))) FROM items").to_arrow()
    assert "Decimal overflow in sum(" in str(info.value) and info.value.line == 1


def test_the_64_bit_fast_path_equals_the_wide_path() -> None:
    """``+ - *`` of decimals whose unscaled values fit in 64 bits run on numpy int64; over
    random types, values, NULLs, sliced arrays and a scalar operand, the result is exactly the
    decimal256 path's (which the query tests compare with DuckDB), and values past 64 bits fall
    back to it."""
    import decimal
    import random

    import pyarrow.compute as pc

    from mpp.logical import decimals
    from mpp.logical.expr import Call, Column
    from mpp.sql.types import decimal_result

    rng = random.Random(7)

    def values(p: int, s: int, n: int) -> pa.Array:
        return pa.array([None if rng.random() < 0.1 else
                         decimal.Decimal(rng.randint(-10 ** p + 1, 10 ** p - 1)).scaleb(-s)
                         for _ in range(n)], pa.decimal128(p, s))

    used = 0
    for _ in range(200):
        p1, p2 = rng.randint(1, 20), rng.randint(1, 20)
        a, b = values(p1, rng.randint(0, p1), 40), values(p2, rng.randint(0, p2), 40)
        if rng.random() < 0.3:
            a, b = a.slice(5, 30), b.slice(2, 30)
        if rng.random() < 0.2:
            b = b[3] if b[3].is_valid else b
        for op in "+-*":
            target = decimal_result(op, a.type, b.type)
            call = Call(op, (Column("a", a.type), Column("b", b.type)), target)
            fast = decimals._fast(call, a, b, target)  # noqa: SLF001
            if fast is None:
                continue
            used += 1
            kernel = {"+": pc.add, "-": pc.subtract, "*": pc.multiply}[op]
            wide = decimals._fit(call, kernel(decimals._wide(a), decimals._wide(b)), target)  # noqa: SLF001
            assert fast.equals(wide), (op, a.type, b.type)
    assert used > 200
    big = pa.array([decimal.Decimal(10) ** 20], pa.decimal128(25, 0))
    call = Call("+", (Column("a", big.type), Column("b", big.type)), pa.decimal128(26, 0))
    assert decimals._fast(call, big, big, pa.decimal128(26, 0)) is None  # noqa: SLF001


def test_decimal_columns_written_by_ctas_keep_their_type_and_stats(wh: Path, cluster) -> None:
    with mpp.connect(wh, cluster=cluster) as session:
        session.sql("CREATE TABLE items_net AS SELECT id, price, price * (1 - disc) AS net "
                    "FROM items")
        info = session.catalog.table("items_net")
        assert info.schema.field("net").type == pa.decimal128(31, 4)
        stats = info.stats.column("price")
        assert isinstance(stats.min, D) and isinstance(stats.max, D)
        sql = "SELECT count(*) n, sum(net) s, avg(net) a FROM items_net WHERE price >= 500.00"
        assert_same_rows(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog))


def test_the_oracle_types_a_derived_tables_decimal_column_as_trino_does() -> None:
    """A column of a FROM subquery (TPC-H Q8's ``volume``) keeps Trino's decimal type in the
    oracle's division: DECIMAL(38, 4) / DECIMAL(38, 4) is rounded to scale 4, not 2."""
    from mpp.oracle import duckdb_sql

    schema = {"t": {"p": "DECIMAL(15,2)", "d": "DECIMAL(15,2)", "k": "INTEGER"}}
    sql = ("SELECT k, sum(CASE WHEN k = 1 THEN v ELSE 0 END) / sum(v) AS share "
           "FROM (SELECT k, p * (1 - d) AS v FROM t) AS s GROUP BY k")
    text = duckdb_sql(sql, schema)
    assert "0.0001" in text  # the quotient scaled back to 4 digits
