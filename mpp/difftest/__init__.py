"""Differential testing: random queries over the supported SQL, run on mpp and on DuckDB.

A seeded generator (:mod:`mpp.difftest.grammar`, with productions in
:mod:`~mpp.difftest.expressions` and :mod:`~mpp.difftest.queries`) writes queries over a small
warehouse built to stress the engine (:mod:`~mpp.difftest.data`); each runs under a random draw
of planner settings (:mod:`~mpp.difftest.settings`) on mpp and, through the oracle, on DuckDB
(:mod:`~mpp.difftest.runner`); a failing query is shrunk to a minimal one that still fails the
same way (:mod:`~mpp.difftest.shrink`). ``mpp difftest`` runs it from the shell; the test suite
runs a fixed seed and budget.

Constructs that hit known engine bugs are generated only when their flag is enabled
(:data:`FLAGS`), so the suite stays green until a fix is merged and the flag is switched on.
"""

from __future__ import annotations

# Each flag: what it lets the generator produce, and the bug (or semantic gap) it was gated
# behind. The suite's test (tests/test_difftest.py) switches on those whose bug is fixed.
FLAGS: dict[str, str] = {
    "sum_overflow": "sum() over BIGINT values whose sum overflows (issue 12, fixed: mpp wrapped "
                    "around instead of failing)",
    "negative_zero": "a double column holding -0.0 and 0.0 (issue 12, fixed: they grouped, "
                     "joined and were distinct as different values)",
    "sqlite_boolean": "a SQLite table with a BOOLEAN column (issue 12, fixed: its scan crashed)",
    "dup_key_column": "one column in two equality keys of a join, ON a.k = b.k AND a.k = b.j "
                      "(issue 12, fixed: it crashed)",
    "long_or": "OR chains of more than 245 terms (issue 12, fixed: RecursionError)",
    "branch_errors": "an error (an integer CAST out of range) where Trino never evaluates it: "
                     "in a CASE/IF branch not taken, or over rows a filter removed (found by "
                     "difftest, fixed: mpp evaluated every branch for every row, and constant "
                     "expressions even over no rows)",
    "outer_theta_join": "RIGHT and FULL joins on an inequality only (found by difftest, fixed: "
                        "between two single-fragment tables the planner put both scans in "
                        "one task and failed: 'two scans feed the same task of a stage')",
    "nan": "NaN and Infinity in doubles (Trino and DuckDB compare, group and order NaN "
           "differently; the oracle does not translate that yet)",
}
"""The generator's flags, each off unless enabled (``mpp difftest --enable``)."""
