"""Helpers for exploring runs in a notebook: task tables, metric tables and bokeh plots.

    >>> from mpp.scenario import explore                             # doctest: +SKIP
    >>> explore.show(explore.run_figure(explore.run_of(result)))     # timeline, rows per task
    >>> explore.metric_table(outcome.data)                           # one row per variant x query

Plots are shown with bokeh's INLINE resources, so a notebook works offline. The figures are the
report's own (:mod:`mpp.scenario.plots`), so a notebook and report.html show the same things.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from bokeh.io import output_notebook
from bokeh.io import show as _show
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, FactorRange, HoverTool
from bokeh.plotting import figure
from bokeh.resources import INLINE

from mpp.metrics.records import TaskRecord, format_key
from mpp.scenario.report import QueryRun, RunData
from mpp.scenario.runner import run_of

__all__ = ["show", "task_frame", "run_of", "run_figure", "metric_table", "bar_chart"]

_notebook_ready = False


def show(obj: Any) -> None:
    """Show a bokeh figure or layout in the notebook (INLINE resources: works offline)."""
    global _notebook_ready
    if not _notebook_ready:
        output_notebook(INLINE, hide_banner=True)
        _notebook_ready = True
    _show(obj)


def task_frame(records: Sequence[TaskRecord]) -> pd.DataFrame:
    """One row per task: stage, group, partition, worker, rows in/out, bytes, seconds."""
    t0 = min((r.start for r in records), default=0.0)
    return pd.DataFrame({
        "stage": [r.stage for r in records], "group": [r.name for r in records],
        "partition": [r.partition for r in records],
        "worker": [r.worker.rsplit(":", 1)[-1] for r in records],
        "start_s": [round(r.start - t0, 4) for r in records],
        "seconds": [round(r.duration, 4) for r in records],
        "rows_in": [r.rows_in for r in records], "rows_out": [r.rows_out for r in records],
        "bytes_read": [r.bytes_read for r in records],
        "bytes_sent": [r.bytes_sent for r in records],
        "hot_keys": [", ".join(f"{format_key(k)}={n}" for k, n in r.hot_keys[:2]) for r in records],
    }).sort_values(["stage", "group", "partition"], ignore_index=True)


def run_figure(run: QueryRun) -> Any:
    """The report's plots of one query run: task timeline per worker, rows and seconds per
    task by stage, plan and skew diagnostics."""
    from mpp.scenario.plots import _run_section  # the report's section, reused as is

    return column(*_run_section(run))


def metric_table(data: RunData, workers: Sequence[int] = ()) -> pd.DataFrame:
    """Per variant x query: wall time, tasks, bytes read and exchanged, final-stage skew,
    what-if makespans (``workers``: which W; default every W of the run)."""
    rows = []
    for r in data.runs:
        final = r.final_stage
        row: dict[str, Any] = {
            "variant": r.variant, "query": r.query, "wall_s": round(r.wall_median_s, 4),
            "tasks": len(r.records), "rows_read": r.metrics.get("rows_read"),
            "bytes_read": sum(t.bytes_read for t in r.records),
            "bytes_sent": sum(t.bytes_sent for t in r.records),
            "final_max_over_median_rows": round(final.rows.max_over_median, 2) if final else None,
            "oracle": r.oracle,
        }
        for w in workers or sorted(r.whatif):
            if w in r.whatif:
                row[f"predicted_s_W{w}"] = round(r.whatif[w].makespan, 4)
        rows.append(row)
    return pd.DataFrame(rows)


def bar_chart(frame: pd.DataFrame, value: str, *, group: str = "query", bar: str = "variant",
              title: str = "", width: int = 900, height: int = 320) -> Any:
    """Grouped bars of ``value``: one group per ``group`` column value, one bar per ``bar``."""
    keys = [(str(g), str(b)) for g, b in zip(frame[group], frame[bar], strict=True)]
    src = ColumnDataSource({"x": keys, "value": list(frame[value]),
                            "bar": [b for _, b in keys]})
    p = figure(x_range=FactorRange(*keys), height=height, width=width,
               title=title or f"{value} by {group} and {bar}", tools="save,reset")
    p.vbar(x="x", top="value", width=0.85, source=src, line_color="white")
    p.add_tools(HoverTool(tooltips=[(bar, "@bar"), (value, "@value{0,0.000}")]))
    p.xaxis.major_label_orientation = 1.0
    p.y_range.start = 0
    return p
