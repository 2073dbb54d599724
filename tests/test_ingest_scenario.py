"""The ``ingestion`` scenario at a tiny scale: the three semantics and the two
de-duplications side by side in the report (report.json and the terminal summary)."""

from __future__ import annotations

import json
from pathlib import Path

from mpp.execution.cluster import Cluster
from mpp.ingest.pipeline import run_label
from mpp.scenario.runner import run_scenario
from mpp.scenario.spec import load_scenario, parse_scenario

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "ingestion.toml"


def test_the_ingest_section_round_trips_and_scales():
    sc = load_scenario(SCENARIO, scale=0.4)
    assert sc.ingest.messages == 100 and sc.ingest.table == "events"
    again = parse_scenario(sc.to_dict(), base_dir=SCENARIO.parent)
    assert again.ingest == sc.ingest and sc.ingest.bulk.dedup == ("none", "offset")


def test_ingestion_scenario_reports_every_semantics_side_by_side(tmp_path: Path,
                                                                  cluster: Cluster) -> None:
    sc = load_scenario(SCENARIO, scale=0.4)
    out = run_scenario(sc, out=tmp_path, cache=tmp_path / "cache", cluster=cluster,
                       progress=False, echo=None)
    assert out.ok, [c.message for c in out.failures]
    rows = {run_label(r): r for r in out.data.ingest}
    assert list(rows) == ["at-most-once/none", "at-least-once/none", "exactly-once/window:5",
                          "exactly-once/window:10000", "exactly-once/sql",
                          "bulk:at-least-once/none", "bulk:exactly-once/offset"]
    for r in rows.values():
        assert r["check"]["attempted"] == 800 and r["check"]["unexpected"] == 0
        assert r["compaction"]["files_after"] <= r["compaction"]["files_before"]
        assert r["compaction"]["same_result"]
    assert rows["at-most-once/none"]["check"]["lost"] > 0
    assert rows["at-least-once/none"]["check"]["duplicated"] > 0
    assert rows["at-least-once/none"]["holds"]
    for name in ("exactly-once/window:10000", "exactly-once/sql"):
        assert rows[name]["check"]["duplicated"] == 0 and rows[name]["holds"]
    bulk_none, bulk_offset = rows["bulk:at-least-once/none"], rows["bulk:exactly-once/offset"]
    assert bulk_none["check"]["duplicated"] > 0 and bulk_none["holds"]
    assert bulk_offset["check"]["duplicated"] == 0 and bulk_offset["holds"]
    assert bulk_offset["bulk"]["skipped"] > 0
    small, big = rows["exactly-once/window:5"], rows["exactly-once/window:10000"]
    assert small["window_memory_bytes"] < big["window_memory_bytes"]
    assert small["consumer_duplicates"] >= big["consumer_duplicates"]  # what slipped past it
    report = json.loads(out.files["json"].read_text())
    assert [r["dedup"] for r in report["ingest"]] == ["none", "none", "window:5",
                                                      "window:10000", "sql", "none", "offset"]
    assert report["spec"]["ingest"]["table"] == "events"
    assert "exactly-once/window:5" in out.files["html"].read_text()
    assert "exactly-once/sql" in out.summary and "compaction of events_" in out.summary
    assert "bulk load of events_bulk_offset" in out.summary
    assert "cluster tasks of events_at_least_once" in out.summary
