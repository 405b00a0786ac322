"""outputs/index.html: what is new on a day apart from what persists (hand-built run directories)."""

from __future__ import annotations

import json

from puffy.run_index import write_index


def write_run(outputs, day, gate_findings, monitoring_findings=()):
    run = outputs / "runs" / day
    run.mkdir(parents=True)
    (run / "dq_report.json").write_text(json.dumps({"status": "warn", "findings": list(gate_findings)}))
    (run / "monitoring_report.json").write_text(json.dumps({"status": "warn", "findings": list(monitoring_findings)}))


def test_index_says_what_is_new_today_apart_from_what_persists(tmp_path):
    out = tmp_path / "outputs"
    write_run(out, "2025-03-04", [{"id": "referrer.coverage", "severity": "warn", "state": "new"}])
    write_run(
        out,
        "2025-03-05",
        [
            {"id": "referrer.coverage", "severity": "warn", "state": "ongoing"},
            {"id": "bots.share", "severity": "info", "state": "new"},
        ],  # an info is not a warning
        [{"id": "segment.channel", "metric": "Paid Search", "severity": "warn", "state": "new"}],
    )
    page = write_index(out).read_text(encoding="utf-8")
    rows = {line[8:18]: line for line in page.splitlines() if line.startswith("<tr><td>2025")}
    assert "<td>new: referrer.coverage</td>" in rows["2025-03-04"]
    assert "<td>new: segment.channel (Paid Search); 1 ongoing</td>" in rows["2025-03-05"]


def test_a_day_of_a_one_pass_backfill_links_the_range_notebooks_that_ran_it(tmp_path):
    out = tmp_path / "outputs"
    write_run(out, "2025-03-04", [])
    range_html = out / "runs" / "backfills" / "2025-03-01_2025-03-04" / "2025-03-01_2025-03-04" / "02_transform.html"
    range_html.parent.mkdir(parents=True)
    range_html.write_text("<html></html>")
    summary = {"stages": [{"stage": "02_transform", "html": str(range_html)}]}
    (out / "runs" / "2025-03-04" / "run_summary.json").write_text(json.dumps(summary))
    page = write_index(out).read_text(encoding="utf-8")
    link = "runs/backfills/2025-03-01_2025-03-04/2025-03-01_2025-03-04/02_transform.html"
    assert f'<a href="{link}">transform</a>' in page
    assert ">data quality</a>" not in page  # no rendering of the gate anywhere: no link
