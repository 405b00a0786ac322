"""run_monitoring end to end on a hand-made warehouse: statuses, finding ids, reports, staging vs history."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import yaml

from conftest import REPO_ROOT
from puffy.errors import ParamsError
from puffy.monitoring import MonitoringRules, load_rules, run_monitoring
from support.monitoring_warehouse import DaySpec, build_warehouse, spec_for, write_day, write_table

RULES = REPO_ROOT / "params" / "monitoring_rules.yaml"
N_DAYS = 21


@pytest.fixture(scope="module")
def base_warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitoring_base")
    warehouse, intermediate, days = build_warehouse(root, N_DAYS)
    return root, days


@pytest.fixture
def wh(base_warehouse, tmp_path):
    """A private copy: (warehouse, intermediate, days, now)."""
    root, days = base_warehouse
    shutil.copytree(root, tmp_path / "data")
    now = datetime.now(UTC) + timedelta(hours=1)
    return tmp_path / "data" / "warehouse", tmp_path / "data" / "intermediate", days, now


def run(warehouse, intermediate, day, now, out, **kw):
    return run_monitoring(warehouse, RULES, out, run_date=day, intermediate_dir=intermediate, now=now, **kw)


def ids(result, severity=None):
    return sorted({f.id for f in result.findings if severity is None or f.severity == severity})


def test_params_file_documents_the_defaults():
    assert load_rules(RULES) == MonitoringRules()


def test_every_params_key_is_commented():
    lines = RULES.read_text().splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- "):
            continue
        previous = lines[i - 1].strip()
        is_key = stripped.split(":")[0].replace("_", "").isalnum()
        if is_key:
            assert previous.startswith("#") or "#" in stripped, f"line {i + 1} has no comment: {line!r}"


def test_normal_day_passes(wh, tmp_path):
    warehouse, intermediate, days, now = wh
    result = run(warehouse, intermediate, days[-1], now, tmp_path / "out")
    assert result.status == "pass", [f.message for f in result.findings]
    assert [f for f in result.findings if f.severity != "info"] == []
    assert set(result.report_paths) == {"md", "json"}
    report = json.loads(result.report_paths["json"].read_text())
    assert report["status"] == "pass" and report["run_date"] == days[-1].isoformat()
    assert report["generated_at"] == now.isoformat() and report["message"] == "no errors or warnings"
    assert set(report["charts"]["trend"]) >= {"sessions", "orders", "client_id_null_rate", "bot_share"}
    assert report["metrics"]["sessions"] == result.metrics.loc[days[-1], "sessions"]
    md = result.report_paths["md"].read_text()
    assert md.startswith(f"# Monitoring report — {days[-1]}") and "**Status: PASS**" in md
    # the metric history covers the whole fixture, run date last
    assert list(result.metrics.index) == days


def test_every_day_of_a_normal_history_is_quiet(wh, tmp_path):
    warehouse, intermediate, days, now = wh
    for day in days[::4]:
        result = run(warehouse, intermediate, day, now, tmp_path / str(day))
        assert result.status == "pass", (day, [f.message for f in result.findings])


def test_injected_problems_are_flagged(wh, tmp_path):
    warehouse, intermediate, days, now = wh
    lost_referrer = {"Organic Search": 0.0, "Paid Search": 0.25, "Direct": 0.50, "Paid Social": 0.15, "Email": 0.10}
    write_day(
        warehouse,
        intermediate,
        days[-1],
        DaySpec(channels=lost_referrer, null_rate=0.16, zero_revenue=3, sessions=400, purchased=12),
    )
    result = run(warehouse, intermediate, days[-1], now, tmp_path / "out")
    assert result.status == "warn"
    # (the day's buyers all come from Paid Search now, so the revenue mix moved as well)
    assert ids(result, "warn") == [
        "mix.channel_share_drift",
        "mix.direct_share_jump",
        "mix.revenue_share_drift",
        "revenue.zero_revenue_orders",
        "segment.channel",
        "trend.client_id_null_rate",
    ]
    # Organic Search emptied into Direct on a steady total: each channel named, a WARN, not lost data.
    moved = {f.metric: f.severity for f in result.findings if f.id == "segment.channel"}
    assert moved["Organic Search"] == "warn" and moved["Direct"] == "warn", moved
    report = json.loads(result.report_paths["json"].read_text())
    by_id = {f["id"]: f for f in report["findings"]}
    assert by_id["trend.client_id_null_rate"]["value"] == pytest.approx(0.16, abs=0.002)
    assert by_id["trend.client_id_null_rate"]["band"][1] < 0.05
    assert report["findings"][0]["severity"] == "warn"
    assert "mix.channel_share_drift" in report["message"]


def test_duplicate_order_key_is_an_error(wh, tmp_path):
    warehouse, intermediate, days, now = wh
    frames = write_day(warehouse, intermediate, days[-1], spec_for(N_DAYS - 1), tables=())
    orders = frames["fct_orders"]
    write_table(warehouse, "fct_orders", days[-1], pd.concat([orders, orders.iloc[[0]]], ignore_index=True))
    result = run(warehouse, intermediate, days[-1], now, tmp_path / "out")
    assert result.status == "error"
    # the copied row also reuses its transaction id (unflagged) and breaks both reconciliations
    assert ids(result, "error") == [
        "revenue.duplicate_order_key",
        "revenue.duplicate_transaction_id",
        "revenue.reconciliation_attribution",
        "revenue.reconciliation_raw",
    ]


def test_missing_partition_of_the_run_date_is_an_error(wh, tmp_path):
    warehouse, intermediate, days, now = wh
    shutil.rmtree(warehouse / "fct_attribution" / f"date={days[-1]}")
    result = run(warehouse, intermediate, days[-1], now, tmp_path / "out")
    assert result.status == "error"
    assert [(f.id, f.metric) for f in result.findings if f.severity == "error"] == [
        ("freshness.partition_missing", "fct_attribution")
    ]


def test_stale_partition_is_a_warning(wh, tmp_path):
    warehouse, intermediate, days, now = wh
    result = run(warehouse, intermediate, days[-1], now + timedelta(hours=48), tmp_path / "out")
    assert ids(result, "warn") == ["freshness.partition_stale"]


def test_missing_day_in_history_is_a_warning(wh, tmp_path):
    warehouse, intermediate, days, now = wh
    for table in ("fct_sessions", "fct_orders", "fct_attribution", "fct_order_rejects"):
        shutil.rmtree(warehouse / table / f"date={days[-3]}")
    result = run(warehouse, intermediate, days[-1], now, tmp_path / "out")
    missing = [f for f in result.findings if f.id == "freshness.missing_days"]
    assert len(missing) == 3 and all(f.dates == [days[-3].isoformat()] for f in missing)
    assert pd.isna(result.metrics.loc[days[-3], "sessions"])  # the gap stays visible in the history


def test_staged_partitions_override_published_history(wh, tmp_path):
    """The audited (staging) warehouse wins over the published one for the same date, and the run
    date is only ever read from the audited warehouse."""
    published, intermediate, days, now = wh
    staging = tmp_path / "staging"
    # published has a broken day 3 days ago; this run re-staged it correctly along with the run date
    write_day(published, None, days[-3], DaySpec(sessions=40, purchased=1))
    write_day(staging, None, days[-3], spec_for(N_DAYS - 3))
    write_day(staging, None, days[-1], spec_for(N_DAYS - 1))
    result = run(staging, intermediate, days[-1], now, tmp_path / "out", history_dir=published)
    assert result.metrics.loc[days[-3], "sessions"] == spec_for(N_DAYS - 3).sessions
    assert result.metrics.loc[days[-5], "sessions"] == spec_for(N_DAYS - 5).sessions  # from published
    assert result.status == "pass", [f.message for f in result.findings]
    # the published run-date partition is not what is audited: remove it from staging -> missing
    shutil.rmtree(staging / "fct_orders" / f"date={days[-1]}")
    result = run(staging, intermediate, days[-1], now, tmp_path / "out2", history_dir=published)
    assert ("freshness.partition_missing", "fct_orders") in [(f.id, f.metric) for f in result.findings]


def test_reports_are_deterministic_for_fixed_inputs(wh, tmp_path):
    warehouse, intermediate, days, now = wh
    a = run(warehouse, intermediate, days[-1], now, tmp_path / "a")
    b = run(warehouse, intermediate, days[-1], now, tmp_path / "b")
    assert a.report_paths["json"].read_bytes() == b.report_paths["json"].read_bytes()
    md_a = a.report_paths["md"].read_text().replace(str(tmp_path / "a"), "")
    md_b = b.report_paths["md"].read_text().replace(str(tmp_path / "b"), "")
    assert md_a == md_b


def test_intermediate_dir_is_found_next_to_the_warehouse(wh, tmp_path):
    warehouse, _, days, now = wh
    result = run_monitoring(warehouse, RULES, tmp_path / "out", run_date=days[-1], now=now)
    assert result.report["inputs"]["intermediate_dir"] == str(warehouse.parent / "intermediate")
    assert not pd.isna(result.metrics.loc[days[-1], "client_id_null_rate"])


def test_without_staged_events_the_event_metrics_are_reported_unavailable(wh, tmp_path):
    warehouse, intermediate, days, now = wh
    shutil.rmtree(intermediate)
    result = run_monitoring(warehouse, RULES, tmp_path / "out", run_date=days[-1], now=now)
    assert result.status == "pass"
    assert {"revenue.reconciliation_skipped", "trend.metric_unavailable"} <= set(ids(result, "info"))


def test_a_crashing_monitor_becomes_an_error_finding_not_an_exception(wh, tmp_path):
    warehouse, intermediate, days, now = wh
    frames = write_day(warehouse, intermediate, days[-1], spec_for(N_DAYS - 1), tables=())
    write_table(warehouse, "fct_orders", days[-1], frames["fct_orders"].drop(columns=["revenue"]))
    result = run(warehouse, intermediate, days[-1], now, tmp_path / "out")
    assert result.status == "error"
    failed = [f.metric for f in result.findings if f.id == "monitoring.monitor_failed"]
    assert "revenue" in failed
    assert json.loads(result.report_paths["json"].read_text())["status"] == "error"


def test_bad_rules_stop_with_one_line(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("trend:\n  z_threshold: 3\n  bogus: 1\n")
    with pytest.raises(ParamsError, match="unknown key 'trend.bogus'"):
        run_monitoring(tmp_path, bad, tmp_path / "out", run_date=datetime(2025, 3, 8).date())
    bad.write_text("trend:\n  metrics:\n    revenu: {min_abs_change: 1}\n")
    with pytest.raises(ParamsError, match="unknown metric"):
        load_rules(bad)
    bad.write_text("funnel:\n  bands:\n    purchase_rate: [0.9, 0.1]\n")
    with pytest.raises(ParamsError, match="low <= high"):
        load_rules(bad)


def test_the_purchase_event_comes_from_the_dq_contract(tmp_path, caplog):
    rules = tmp_path / "monitoring_rules.yaml"
    rules.write_text("revenue:\n  purchase_event: order_placed\n")
    with pytest.raises(ParamsError, match="'revenue.purchase_event': event names come from the contract"):
        load_rules(rules)
    rules.write_text("history_days: 14\n")
    with caplog.at_level("WARNING", logger="puffy.monitoring"):
        assert load_rules(rules).revenue.purchase_event == "checkout_completed"
    assert "no dq_rules.yaml beside it" in caplog.text
    dq = yaml.safe_load((REPO_ROOT / "params" / "dq_rules.yaml").read_text())
    dq["contract"]["purchase_event"] = "order_placed"
    (tmp_path / "dq_rules.yaml").write_text(yaml.safe_dump(dq))
    assert load_rules(rules).revenue.purchase_event == "order_placed"


def test_disabled_groups_do_not_run(wh, tmp_path):
    warehouse, intermediate, days, now = wh
    shutil.rmtree(warehouse / "fct_attribution" / f"date={days[-1]}")
    rules = yaml.safe_load(RULES.read_text())
    rules["freshness"]["enabled"] = False
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = run_monitoring(
        warehouse, path, tmp_path / "out", run_date=days[-1], intermediate_dir=intermediate, now=now
    )
    assert not [f for f in result.findings if f.id.startswith("freshness.")]


def test_cli_monitor(wh, tmp_path, capsys):
    from puffy.cli import main

    warehouse, _, days, _ = wh
    code = main(
        [
            "monitor",
            "--warehouse-dir",
            str(warehouse),
            "--output-dir",
            str(tmp_path / "out"),
            "--expected-run-date",
            str(days[-1]),
            "--fail-on-error",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "monitoring status: PASS" in out
    assert "engine: duckdb\n" in out  # params/pipeline.yaml, beside the default --rules (pyspark: tests/test_spark.py)
    assert (tmp_path / "out" / "monitoring_report.json").exists()
    code = main(
        [
            "monitor",
            "--warehouse-dir",
            str(warehouse),
            "--output-dir",
            str(tmp_path / "out"),
            "--expected-run-date",
            str(days[-1] + timedelta(days=1)),
            "--fail-on-error",
        ]
    )
    assert code == 5 and "monitoring status: ERROR" in capsys.readouterr().out


def test_metric_history_reads_only_the_columns_it_needs(wh, tmp_path):
    """Cheap at 100x: a metric query reads only the Parquet columns it names; the wide
    landing_page_url, present in every file, is never read. DuckDB's profile of the query
    session_metrics runs lists the columns its Parquet scan read."""
    from puffy.monitoring import metrics as m

    warehouse, intermediate, days, _ = wh
    sources = m.Sources(warehouse, warehouse, intermediate, days[-1])
    files = sources.files("fct_sessions", days[0])
    assert "landing_page_url" in m._columns_of(files)
    con = m.connect()
    profile = tmp_path / "profile.json"
    con.con.execute("PRAGMA enable_profiling = 'json'")
    con.con.execute(f"PRAGMA profiling_output = '{profile}'")
    assert len(m.session_metrics(con, files)) == len(files)

    def scans(node: dict) -> list[dict]:
        found = [node] if node.get("name") == "READ_PARQUET" else []
        for child in node.get("children", []) + node.get("operator", []):
            found += scans(child)
        return found

    read = [set(n["extra_info"]["Projections"]) for n in scans(json.loads(profile.read_text()))]
    funnel = {"viewed_product", "added_to_cart", "started_checkout", "purchased"}
    assert read == [{"filename", "is_bot", "is_returning_client", *funnel}]


def test_a_repeated_problem_is_ongoing_and_an_acknowledged_one_does_not_fail_the_day(wh, tmp_path):
    warehouse, intermediate, days, now = wh
    for day in days[-2:]:
        write_day(warehouse, intermediate, day, DaySpec(null_rate=0.16))
    runs = tmp_path / "runs"
    first = run(warehouse, intermediate, days[-2], now, runs / days[-2].isoformat())
    second = run(warehouse, intermediate, days[-1], now, runs / days[-1].isoformat())
    f1 = next(f for f in first.findings if f.id == "trend.client_id_null_rate")
    f2 = next(f for f in second.findings if f.id == "trend.client_id_null_rate")
    assert (f1.state, f2.state, f2.first_seen, f2.days_open) == ("new", "ongoing", days[-2].isoformat(), 2)
    # The same day with the spike acknowledged in the params directory: INFO, the day passes.
    params = tmp_path / "params"
    shutil.copytree(REPO_ROOT / "params", params)
    (params / "acknowledged.yaml").write_text(
        yaml.safe_dump(
            {
                "acknowledged": [
                    {
                        "check": "trend.client_id_null_rate",
                        "reason": "tag manager outage",
                        "owner": "on-call",
                        "expires": (now.date() + timedelta(days=30)).isoformat(),
                    }
                ]
            }
        )
    )
    acked = run_monitoring(
        warehouse,
        params / "monitoring_rules.yaml",
        tmp_path / "acked",
        run_date=days[-1],
        intermediate_dir=intermediate,
        now=now,
    )
    assert acked.status == "pass", [(f.id, f.severity) for f in acked.findings]
    f = next(f for f in acked.findings if f.id == "trend.client_id_null_rate")
    assert f.severity == "info" and f.acknowledged["owner"] == "on-call"


def test_the_untracked_journey_share_is_a_daily_metric(tmp_path):
    # Three days of 4 orders: 1, 2 and 0 untracked of revenue 100 + 300 (untracked) + ...; worked by hand.
    from datetime import date

    from puffy.monitoring.metrics import Sources, daily_metrics

    days = [date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)]
    statuses = [
        ["untracked", "tracked", "tracked", "stitched"],
        ["untracked", "untracked", "tracked", "tracked"],
        ["tracked"] * 4,
    ]
    for day, status in zip(days, statuses):
        write_table(
            tmp_path,
            "fct_orders",
            day,
            pd.DataFrame(
                {
                    "order_key": [f"{day}-{i}" for i in range(4)],
                    "revenue": [100.0, 300.0, 200.0, 400.0],
                    "session_id": ["s"] * 4,
                    "journey_status": status,
                }
            ),
        )
    metrics = daily_metrics(Sources(tmp_path, tmp_path, None, days[-1]), days[0])
    assert metrics["untracked_order_share"].tolist() == [0.25, 0.5, 0.0]
    assert metrics["untracked_revenue_share"].tolist() == [0.1, 0.4, 0.0]  # 100/1000, 400/1000, 0


def test_the_trend_chart_is_a_png_of_every_metric_outside_pyplot(wh, tmp_path):
    """The notebook shows ``trend_chart_png``: one PNG of all the trend metrics, drawn once (no tight
    bounding box) and never left in pyplot's figures, where the inline backend would draw it again."""
    import matplotlib.pyplot as plt

    from puffy.monitoring.report import plot_trend_bands, trend_chart_png

    warehouse, intermediate, days, now = wh
    result = run(warehouse, intermediate, days[-1], now, tmp_path / "out")
    before = plt.get_fignums()
    png = trend_chart_png(result.trend)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and plt.get_fignums() == before
    panels = [ax for ax in plot_trend_bands(result.trend).axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == list(dict.fromkeys(result.trend["metric"]))
    assert trend_chart_png(result.trend.iloc[0:0]) is None
