"""The bokeh figures of ``report.html``: one self-contained page that works offline.

* Variant comparison: wall time per variant x query, and the what-if makespan per worker count
  (with the measured wall time at the real worker count, the model's calibration point).
* Per variant x query: the task timeline per worker (a lane per concurrently running task),
  coloured by stage; per stage, bars of rows and seconds per partition (the stage's own tasks;
  an exchange's helper tasks appear in the timeline only), where skew shows as a tall bar; the
  plan and the skew diagnostics as text.

The page embeds BokehJS inline (``bokeh.resources.INLINE``), so it needs no network.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bokeh.embed import file_html
from bokeh.layouts import column, row
from bokeh.models import (
    BasicTickFormatter,
    ColumnDataSource,
    Div,
    FactorRange,
    FixedTicker,
    HoverTool,
    LogTicker,
    NumeralTickFormatter,
)
from bokeh.palettes import Category10_10, Dark2_8, Set1_9
from bokeh.plotting import figure
from bokeh.resources import INLINE

from mpp.metrics.records import TaskRecord, format_key
from mpp.metrics.skew import format_skew, group_by_stage, task_groups
from mpp.metrics.whatif import worker_lanes

if TYPE_CHECKING:
    from mpp.scenario.report import QueryRun, RunData

WIDTH = 1000


def stage_color(stage: int) -> str:
    """The colour of a stage, the same in every plot."""
    return Category10_10[stage % len(Category10_10)]


_DASHES = ("solid", "dashed", "dotted", "dotdash")


def variant_color(data: RunData, variant: str) -> str:
    """The colour of a variant (in order of first appearance), distinct from stage colours."""
    variants = list(dict.fromkeys(r.variant for r in data.runs))
    return Dark2_8[variants.index(variant) % len(Dark2_8)]


def report_html(data: RunData) -> str:
    """The whole report page as one HTML string."""
    parts: list[Any] = [_header(data), _wall_figure(data), _whatif_figure(data)]
    from mpp.scenario.report import format_comparison

    comparison = format_comparison(data)
    if comparison:
        parts.append(Div(text="<h2>Variants on the simulated warehouse</h2><pre>"
                         f"{html.escape(comparison)}</pre>", width=WIDTH))
    if data.model_check:
        parts.append(Div(text="<h2>The what-if model across worker counts "
                         "(mpp validate-model)</h2><pre>"
                         f"{html.escape(data.model_check)}</pre>", width=WIDTH))
    if data.ingest:
        from mpp.ingest.pipeline import format_rows

        parts.append(Div(text="<h2>Ingestion: delivery semantics and de-duplication</h2><pre>"
                         f"{html.escape(format_rows(data.ingest))}</pre>", width=WIDTH))
    if data.mart:
        from mpp.mart.steps import format_mart

        parts.append(Div(text="<h2>Data mart: the pipeline's steps</h2><pre>"
                         f"{html.escape(format_mart(data.mart))}</pre>", width=WIDTH))
    for run in data.runs:
        parts.extend(_run_section(run))
    return file_html(column(*parts), resources=INLINE, title=f"mpp report: {data.scenario}")


def _header(data: RunData) -> Div:
    env = data.environment
    versions = ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items() if v)
    checks = "".join(
        f"<li style='color:{'#2a7' if c.ok else '#c22'}'>{'PASS' if c.ok else 'FAIL'} "
        f"{html.escape(c.message)}</li>" for c in data.checks) or "<li>no checks</li>"
    text = (f"<h1>mpp scenario: {html.escape(data.scenario)}</h1>"
            f"<p>started {html.escape(data.started)}; data hash {data.data_hash}, checksum "
            f"{html.escape(str(data.data_checksum))}; Python {env.get('python')} on "
            f"{html.escape(str(env.get('platform')))}, {env.get('cpus')} CPUs</p>"
            f"<p style='font-size:small'>{html.escape(versions)}</p><ul>{checks}</ul>")
    return Div(text=text, width=WIDTH)


def _wall_figure(data: RunData) -> Any:
    """Grouped bars: median wall time per (query, variant)."""
    factors = [(r.query, r.variant) for r in data.runs]
    src = ColumnDataSource({
        "x": factors, "wall": [r.wall_median_s for r in data.runs],
        "color": [variant_color(data, r.variant) for r in data.runs],
        "tasks": [len(r.records) for r in data.runs],
    })
    p = figure(x_range=FactorRange(*factors), height=300, width=WIDTH,
               title="Wall time per variant and query (median over repeats)",
               y_axis_label="seconds", tools="save,reset")
    p.vbar(x="x", top="wall", width=0.8, color="color", source=src)
    p.add_tools(HoverTool(tooltips=[("run", "@x"), ("wall s", "@wall{0.000}"),
                                    ("tasks", "@tasks")]))
    p.y_range.start = 0
    p.yaxis.formatter = BasicTickFormatter(use_scientific=False)
    p.xaxis.major_label_orientation = 0.6
    return p


def _whatif_figure(data: RunData) -> Any:
    """Predicted makespan against simulated worker count, one line per variant x query.

    Each line has its own colour (a dash per variant on top), its predictions are circles, and
    the measured wall time at the real worker count is an x of the line's colour; the legend
    names each line (with its circles) and the x. The lines are for dedicated workers (no CPU
    shared with other load; see docs/architecture/whatif-model.md), the x was measured on this
    machine, so the x sits above its line by what this machine's contention and fixed costs
    added (the summary's fit column checks the model on this machine). The log axes carry
    plain-number labels at 1, 2 and 5 of every decade, so milliseconds are read off directly.
    """
    p = figure(height=360, width=WIDTH, x_axis_type="log", y_axis_type="log",
               title="Predicted makespan on W dedicated workers (what-if replay of the measured tasks)",
               x_axis_label="workers", y_axis_label="seconds", tools="save,reset,hover")
    real = (data.spec.get("cluster") or {}).get("workers")
    variants = list(dict.fromkeys(r.variant for r in data.runs))
    lines = [r for r in data.runs if r.whatif]
    for i, r in enumerate(lines):
        color = Set1_9[i % len(Set1_9)]
        dash = _DASHES[variants.index(r.variant) % len(_DASHES)]
        ws = sorted(r.whatif)
        label = f"{r.variant} / {r.query}"
        ys = [max(r.whatif[w].makespan, 1e-6) for w in ws]
        p.line(ws, ys, color=color, line_width=2, line_dash=dash, legend_label=label)
        p.scatter(ws, ys, color=color, size=7, legend_label=label)
        if real:  # the measured wall time at the real worker count: the calibration point
            p.scatter([real], [max(r.wall_median_s, 1e-6)], marker="x", size=14, color=color,
                      line_width=3, legend_label=f"measured here, {real} workers (x)")
    ticks = sorted({w for r in data.runs for w in r.whatif} | ({real} if real else set()))
    if ticks:
        p.xaxis.ticker = FixedTicker(ticks=ticks)
    p.yaxis.ticker = LogTicker(mantissas=[1, 2, 5], desired_num_ticks=8)
    _plain_numbers(p)
    if p.legend:  # no legend when no run has predictions
        p.legend.click_policy = "hide"
    _legend_outside(p)
    return p


def _plain_numbers(p: Any, y_format: str | None = None) -> None:
    """Tick labels as plain numbers (0.002, not 2.000e-3); ``y_format`` a numeral pattern."""
    p.xaxis.formatter = BasicTickFormatter(use_scientific=False)
    p.yaxis.formatter = (NumeralTickFormatter(format=y_format) if y_format
                         else BasicTickFormatter(use_scientific=False))


def _legend_outside(p: Any) -> None:
    """Move the legend to the right of the plot, where it never hides an outlier."""
    for legend in list(p.legend):
        if legend in p.center:
            p.center.remove(legend)
        p.add_layout(legend, "right")


def _task_source(records: Sequence[TaskRecord]) -> ColumnDataSource:
    t0 = min((r.start for r in records), default=0.0)
    return ColumnDataSource({
        "left": [r.start - t0 for r in records], "right": [r.stop - t0 for r in records],
        "lane": worker_lanes(records), "stage": [f"stage {r.stage}" for r in records],
        "group": [r.name for r in records],
        "color": [stage_color(r.stage) for r in records],
        "partition": [r.partition for r in records], "rows": [r.rows_in for r in records],
        "seconds": [r.duration for r in records], "key": [r.key for r in records],
        "hot": [", ".join(f"{format_key(k)} ({n})" for k, n in r.hot_keys[:3]) for r in records],
    })


_TIPS = [("task", "@key"), ("group", "@group"), ("stage", "@stage"), ("partition", "@partition"),
         ("rows in", "@rows"), ("seconds", "@seconds{0.000}"), ("hot keys", "@hot")]


def _run_section(run: QueryRun) -> list[Any]:
    name = f"{run.variant} / {run.query}"
    title = Div(text=f"<h2>{html.escape(name)}</h2><p>median wall {run.wall_median_s:.3f} s, "
                f"{len(run.records)} tasks, oracle: {html.escape(run.oracle or 'not checked')}</p>",
                width=WIDTH)
    if not run.records:
        return [title, Div(text="<p>no task records</p>")]
    src = _task_source(run.records)
    lanes = sorted(set(src.data["lane"]))
    timeline = figure(y_range=lanes, height=max(160, 40 + 28 * len(lanes)), width=WIDTH,
                      title=f"Task timeline per worker: {name}", x_axis_label="seconds",
                      tools="xpan,xwheel_zoom,reset,save")
    # No outlines: with a thousand short tasks, white edges would hide the colours.
    timeline.hbar(y="lane", left="left", right="right", height=0.8, color="color",
                  line_color=None, legend_group="stage", source=src)
    timeline.add_tools(HoverTool(tooltips=_TIPS))
    timeline.xaxis.formatter = BasicTickFormatter(use_scientific=False)
    _legend_outside(timeline)
    per_stage = [row(*_stage_bars(group, sk)) for group, sk in _main_groups(run)]
    text = (f"<pre style='font-size:small'>{html.escape(run.plan)}\n\n"
            f"{html.escape(format_skew(run.skew))}</pre>")
    return [title, timeline, *per_stage, Div(text=text, width=WIDTH)]


def _main_groups(run: QueryRun) -> list[tuple[list[TaskRecord], Any]]:
    """Each stage's own tasks (its first task group) with the stage's skew summary."""
    return [(task_groups(recs)[0], run.skew.get(stage))
            for stage, recs in group_by_stage(run.records).items()]


def _stage_bars(group: Sequence[TaskRecord], sk: Any) -> list[Any]:
    """Rows in and seconds per partition of one stage: a skewed stage shows a tall bar."""
    stage = group[0].stage
    src = _task_source(group)
    ratio = f" (max/median {sk.rows.max_over_median:.2f})" if sk is not None else ""
    out = []
    # Titles stay short enough for a half-width plot: the section heading names the run.
    for field, label, fmt in (("rows", f"Rows per task, stage {stage}{ratio}", "0,0"),
                              ("seconds", f"Task seconds, stage {stage}", None)):
        p = figure(height=220, width=WIDTH // 2, title=label,
                   x_axis_label="partition", y_axis_label=field, tools="box_zoom,reset,save")
        p.vbar(x="partition", top=field, width=0.9, color="color", line_color=None, source=src)
        p.add_tools(HoverTool(tooltips=_TIPS))
        p.y_range.start = 0
        _plain_numbers(p, fmt)
        out.append(p)
    return out
