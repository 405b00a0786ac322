"""The webhook alert: delivered to a local HTTP server; every delivery failure is reported, never raised."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import yaml

from conftest import REPO_ROOT
from puffy.monitoring import alert, run_monitoring
from support.monitoring_warehouse import DaySpec, build_warehouse, write_day
from support.webhook import local_webhook

DAY = date(2025, 3, 8)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_post_delivers_json_text():
    with local_webhook() as (url, received):
        result = alert.post_webhook(url, "hello", timeout=2)
    assert result == alert.Delivery(True, "HTTP 200")
    assert received == [{"body": {"text": "hello"}, "content_type": "application/json"}]


def test_http_error_is_reported_not_raised():
    with local_webhook(status=500) as (url, received):
        result = alert.post_webhook(url, "hello", timeout=2)
    assert not result.ok and result.detail.startswith("HTTP 500")
    assert len(received) == 1


def test_unreachable_webhook_is_reported_not_raised():
    result = alert.post_webhook(f"http://127.0.0.1:{closed_port()}/hook", "hello", timeout=2)
    assert not result.ok and "cannot reach webhook" in result.detail


def test_slow_webhook_times_out():
    with local_webhook(delay=1.5) as (url, _):
        t0 = time.monotonic()
        result = alert.post_webhook(url, "hello", timeout=0.3)
        elapsed = time.monotonic() - t0
    assert not result.ok and elapsed < 1.4


def test_malformed_url_is_reported_not_raised():
    result = alert.post_webhook("not a url", "hello")
    assert not result.ok and result.detail


# --- which days alert, and what the alert says (hand-built run directories) -------------------------


def _stage(stage: str, run_dir, html: bool = True):
    from puffy.runner import StageResult

    page = run_dir / f"{stage}.html"
    if html:
        page.write_text("<html></html>")
    return StageResult(stage, "warn", 1.0, str(run_dir / f"{stage}.ipynb"), str(page) if html else None)


def _finding(fid, severity, state, first_seen="2025-03-08", message="m", **kw):
    return {
        "id": fid,
        "severity": severity,
        "state": state,
        "first_seen": first_seen,
        "days_open": 1 if state == "new" else 3,
        "message": message,
        "acknowledged": None,
        **kw,
    }


def _run_dir(tmp_path, dq=(), monitoring=(), transform_message=None):
    run_dir = tmp_path / "outputs" / "runs" / "2025-03-08"
    run_dir.mkdir(parents=True)
    (run_dir / "dq_report.json").write_text(json.dumps({"status": "warn", "findings": list(dq)}))
    if monitoring is not None:
        (run_dir / "monitoring_report.json").write_text(json.dumps({"status": "warn", "findings": list(monitoring)}))
    if transform_message is not None:
        (run_dir / "transform_status.json").write_text(json.dumps({"status": "error", "message": transform_message}))
    return run_dir


def _rules(**kw):
    from puffy.monitoring.rules import AlertRules

    return AlertRules(**kw)


def _day(run_dir, exit_code=0, stopped_at=None, reason="", published=True, quarantine_path=None, stages=()):
    from puffy.runner import DayResult

    return DayResult(
        "2025-03-08", exit_code, stopped_at, reason, [_stage(s, run_dir) for s in stages], published, quarantine_path
    )


def test_a_gate_error_alerts_as_stopped_with_exit_code_and_a_link(tmp_path):
    """Before: a gate ERROR (exit 3) sent nothing; the monitoring alert named neither exit code nor outcome."""
    run_dir = _run_dir(
        tmp_path,
        dq=[
            _finding("bots.share", "warn", "ongoing", "2025-03-01"),
            _finding("schema.required_columns", "error", "new", message="event_name is missing"),
            _finding("volume.insufficient_history", "info", "new"),
            _finding("client_id.null_rate", "warn", "new"),
        ],
        monitoring=None,
    )
    day = _day(
        run_dir,
        3,
        "01_data_quality",
        "1 error finding(s): schema.required_columns",
        published=False,
        stages=["01_data_quality"],
    )
    doc = alert.alert_for_day(
        day, run_dir, tmp_path / "outputs", _rules(reports_base_url="https://reports.example.com/puffy/")
    )
    assert doc["schema"] == "puffy.alert/1"
    assert (doc["date"], doc["outcome"], doc["stage"], doc["exit_code"]) == (
        "2025-03-08",
        "stopped",
        "01_data_quality",
        3,
    )
    # the error that stopped the day first, then what else is new; the ongoing WARN and the INFO are left out
    assert [f["id"] for f in doc["findings"]] == ["schema.required_columns", "client_id.null_rate"]
    assert doc["report_url"] == "https://reports.example.com/puffy/runs/2025-03-08/01_data_quality.html"
    assert doc["index_url"] == "https://reports.example.com/puffy/index.html"
    text = alert.summary_text(doc)
    assert text.splitlines()[0] == "puffy 2025-03-08: stopped: not published (stage 01_data_quality, exit 3)"
    assert "reason: 1 error finding(s): schema.required_columns" in text
    assert "• new ERROR schema.required_columns: event_name is missing" in text


def test_a_monitoring_error_alerts_as_quarantined(tmp_path):
    run_dir = _run_dir(
        tmp_path,
        dq=[_finding("bots.share", "warn", "ongoing", "2025-03-01")],
        monitoring=[_finding("trend.orders", "error", "new", message="0 orders, expected 41")],
    )
    day = _day(
        run_dir,
        5,
        "04_monitoring",
        "1 error(s)",
        published=False,
        quarantine_path=str(tmp_path / "outputs" / "quarantine" / "x"),
        stages=["01_data_quality", "02_transform", "04_monitoring"],
    )
    doc = alert.alert_for_day(day, run_dir, tmp_path / "outputs", _rules())
    assert (doc["outcome"], doc["stage"], doc["exit_code"]) == ("quarantined", "04_monitoring", 5)
    assert [f["id"] for f in doc["findings"]] == ["trend.orders"]
    assert doc["report_url"] == (run_dir / "04_monitoring.html").resolve().as_uri()  # no base URL: file://
    assert "quarantined: not published" in alert.summary_text(doc)


def test_a_transform_that_did_not_reconcile_alerts_even_without_findings(tmp_path):
    run_dir = _run_dir(tmp_path, monitoring=None, transform_message="fct_orders revenue off by 12.00")
    day = _day(
        run_dir,
        4,
        "02_transform",
        "fct_orders revenue off by 12.00",
        published=False,
        quarantine_path="q",
        stages=["01_data_quality", "02_transform"],
    )
    doc = alert.alert_for_day(day, run_dir, tmp_path / "outputs", _rules())
    assert (doc["outcome"], doc["stage"], doc["exit_code"], doc["findings"]) == ("quarantined", "02_transform", 4, [])
    assert "reason: fct_orders revenue off by 12.00" in alert.summary_text(doc)


def test_ongoing_and_acknowledged_warnings_do_not_alert_a_published_day(tmp_path):
    """Before: every WARN day alerted, every day (the demo's 14 days all WARN)."""
    run_dir = _run_dir(
        tmp_path,
        dq=[_finding("bots.share", "warn", "ongoing", "2025-03-01")],
        monitoring=[_finding("trend.sessions", "info", "new", acknowledged={"owner": "ana"})],
    )
    day = _day(run_dir, stages=["01_data_quality", "02_transform", "04_monitoring"])
    assert alert.alert_for_day(day, run_dir, tmp_path / "outputs", _rules()) is None


def test_a_new_warning_alerts_a_published_day_unless_below_min_severity(tmp_path):
    run_dir = _run_dir(
        tmp_path,
        dq=[_finding("bots.share", "warn", "ongoing", "2025-03-01")],
        monitoring=[_finding("trend.client_id_null_rate", "warn", "new", message="20% null")],
    )
    day = _day(run_dir, stages=["01_data_quality", "02_transform", "04_monitoring"])
    doc = alert.alert_for_day(day, run_dir, tmp_path / "outputs", _rules())
    assert (doc["outcome"], doc["stage"], doc["exit_code"]) == ("published with warnings", "04_monitoring", 0)
    assert (doc["new_incidents"], doc["ongoing_incidents"]) == (1, 1)
    assert [f["id"] for f in doc["findings"]] == ["trend.client_id_null_rate"]
    assert "(1 ongoing incident(s) not repeated here)" in alert.summary_text(doc)
    assert alert.alert_for_day(day, run_dir, tmp_path / "outputs", _rules(min_severity="error")) is None


def test_the_list_is_truncated_with_a_count(tmp_path):
    run_dir = _run_dir(tmp_path, monitoring=[_finding(f"trend.m{i}", "warn", "new") for i in range(5)])
    doc = alert.alert_for_day(
        _day(run_dir, stages=["04_monitoring"]), run_dir, tmp_path / "outputs", _rules(max_findings=2)
    )
    assert len(doc["findings"]) == 2 and doc["more_findings"] == 3
    assert "… and 3 more" in alert.summary_text(doc)


def test_slack_payload_escapes_markup_from_the_data(tmp_path):
    """A finding quoting the export's strings must not ping the channel or plant a link."""
    run_dir = _run_dir(tmp_path, monitoring=[_finding("x.y", "warn", "new", message="<!channel> <http://evil|x> & co")])
    doc = alert.alert_for_day(
        _day(run_dir, stages=["04_monitoring"]),
        run_dir,
        tmp_path / "outputs",
        _rules(reports_base_url="https://r.example.com"),
    )
    body = alert.slack_payload(doc)
    assert "<!channel>" not in json.dumps(body) and "&lt;!channel&gt;" in body["text"] and "&amp; co" in body["text"]
    block = body["blocks"][0]["text"]["text"]
    assert block.endswith(
        "<https://r.example.com/runs/2025-03-08/04_monitoring.html|report> · "
        "<https://r.example.com/index.html|all runs>"
    )


def test_reports_base_url_must_be_http():
    from puffy.errors import ParamsError
    from puffy.monitoring.rules import AlertRules
    from puffy.params import validate_params

    with pytest.raises(ParamsError, match="reports_base_url"):
        validate_params({"reports_base_url": "/srv/reports"}, AlertRules, "monitoring_rules.yaml")


@pytest.mark.parametrize("fmt", ["slack", "json"])
def test_deliver_posts_the_chosen_format_and_writes_alert_json(tmp_path, fmt):
    run_dir = _run_dir(tmp_path, monitoring=[_finding("trend.orders", "error", "new")])
    day = _day(
        run_dir, 5, "04_monitoring", "1 error(s)", published=False, quarantine_path="q", stages=["04_monitoring"]
    )
    with local_webhook() as (url, received):
        rules = _rules(webhook_url=url, format=fmt, timeout_seconds=2)
        doc = alert.alert_for_day(day, run_dir, tmp_path / "outputs", rules)
        outcome = alert.deliver(doc, run_dir, rules)
    assert outcome == {"sent": True, "detail": "HTTP 200", "outcome": "quarantined"}
    assert len(received) == 1 and received[0]["content_type"] == "application/json"
    body = received[0]["body"]
    if fmt == "json":
        assert body == doc
    else:
        assert set(body) == {"text", "blocks"} and body["text"].startswith("puffy 2025-03-08: quarantined")
    assert json.loads((run_dir / "alert.json").read_text()) == doc


def test_deliver_reads_the_webhook_from_the_environment_and_reports_failures(tmp_path, monkeypatch):
    run_dir = _run_dir(tmp_path, monitoring=[_finding("trend.orders", "error", "new")])
    doc = alert.alert_for_day(
        _day(run_dir, 5, "04_monitoring", "e", False, "q", ["04_monitoring"]), run_dir, tmp_path / "outputs", _rules()
    )
    monkeypatch.delenv("PUFFY_ALERT_WEBHOOK_URL", raising=False)
    assert alert.deliver(doc, run_dir, _rules())["sent"] is None  # no webhook anywhere: written, not posted
    with local_webhook(status=503) as (url, received):
        monkeypatch.setenv("PUFFY_ALERT_WEBHOOK_URL", url)
        outcome = alert.deliver(doc, run_dir, _rules(timeout_seconds=2))
    assert outcome["sent"] is False and outcome["detail"].startswith("HTTP 503") and len(received) == 1


# --- run_monitoring itself no longer alerts: the runner alerts once for the whole day ---------------
@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("alert_wh")
    wh, inter, days = build_warehouse(root, 15)
    return wh, inter, days


def rules_with(tmp_path, url: str | None) -> object:
    rules = yaml.safe_load((REPO_ROOT / "params" / "monitoring_rules.yaml").read_text())
    rules["alert"]["webhook_url"] = url
    rules["alert"]["timeout_seconds"] = 2
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return path


def test_run_monitoring_posts_nothing_the_runner_alerts_for_the_day(warehouse, tmp_path):
    """Before: monitoring posted its own WARN text (no exit code, no outcome, a server path) on every
    WARN day; a gate ERROR day, which never reaches monitoring, sent nothing."""
    wh, inter, days = warehouse
    write_day(wh, inter, days[-1], DaySpec(null_rate=0.2))  # client-id null spike: a warning
    now = datetime.now(UTC) + timedelta(hours=1)
    with local_webhook() as (url, received):
        result = run_monitoring(
            wh, rules_with(tmp_path, url), tmp_path / "out", run_date=days[-1], intermediate_dir=inter, now=now
        )
    assert result.status == "warn" and received == []
    assert "alert.delivery_failed" not in [f.id for f in result.findings]


# --- a backfill's digest: one message for the pass ---------------------------------------------------


def _alert_doc(day: str, outcome: str, stage: str = "04_monitoring", exit_code: int = 0, new=(), reason=""):
    findings = [{"id": i, "severity": "warn", "state": "new", "message": "m"} for i in new]
    return {
        "date": day,
        "outcome": outcome,
        "stage": stage,
        "exit_code": exit_code,
        "reason": reason,
        "findings": findings,
        "report_url": f"file:///r/{day}",
    }


class _Result:
    def __init__(self, published: bool):
        self.published = published


def test_a_backfill_digest_names_each_day_not_published_and_counts_new_incidents_by_id(tmp_path):
    days = [
        (
            _Result(True),
            _alert_doc("2025-03-01", alert.PUBLISHED_WITH_WARNINGS, new=["bots.share", "referrer.coverage"]),
        ),
        (_Result(True), None),  # published clean
        (_Result(False), _alert_doc("2025-03-03", alert.QUARANTINED, exit_code=5, reason="1 error(s): trend.orders")),
        (_Result(True), _alert_doc("2025-03-04", alert.PUBLISHED_WITH_WARNINGS, new=["bots.share"])),
        (
            _Result(False),
            _alert_doc("2025-03-05", alert.STOPPED, "01_data_quality", 3, reason="schema.unreadable_file"),
        ),
    ]
    doc = alert.backfill_digest("2025-03-01", "2025-03-05", days, tmp_path, _rules(max_findings=1))
    assert doc["schema"] == "puffy.alert-digest/1"
    assert (doc["days"], doc["published"], doc["published_with_new_incidents"]) == (5, 3, 2)
    assert [d["date"] for d in doc["quarantined"]] == ["2025-03-03"] and doc["quarantined"][0]["exit_code"] == 5
    assert [d["date"] for d in doc["stopped"]] == ["2025-03-05"]
    assert doc["new_incidents"] == {"bots.share": 2}  # the most frequent first, at most max_findings
    assert alert.digest_text(doc).splitlines() == [
        "puffy backfill 2025-03-01 … 2025-03-05: 3 of 5 day(s) published, 1 quarantined, 1 stopped",
        "• 2025-03-03 quarantined at 04_monitoring (exit 5): 1 error(s): trend.orders",
        "• 2025-03-05 stopped at 01_data_quality (exit 3): schema.unreadable_file",
        "2 published day(s) with new incidents: bots.share (2 day(s))",
        f"all runs: {(tmp_path / 'index.html').resolve().as_uri()}",
    ]
    assert alert.backfill_digest("2025-03-01", "2025-03-02", [(_Result(True), None)] * 2, tmp_path, _rules()) is None


@pytest.mark.parametrize("fmt", ["slack", "json"])
def test_a_backfill_digest_is_posted_once_and_written_beside_the_range_notebooks(tmp_path, fmt):
    days = [(_Result(False), _alert_doc("2025-03-03", alert.QUARANTINED, exit_code=5, reason="<!channel>"))]
    doc = alert.backfill_digest("2025-03-01", "2025-03-05", days, tmp_path, _rules())
    with local_webhook() as (url, received):
        sent = alert.deliver_digest(doc, tmp_path, _rules(webhook_url=url, format=fmt, timeout_seconds=2))
    assert sent == {"sent": True, "detail": "HTTP 200"} and len(received) == 1
    body = received[0]["body"]
    assert body == doc if fmt == "json" else "&lt;!channel&gt;" in body["text"] and "<!channel>" not in body["text"]
    assert json.loads((tmp_path / "alert.json").read_text()) == doc
