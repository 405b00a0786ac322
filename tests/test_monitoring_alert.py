"""The webhook alert: delivered to a local HTTP server; every delivery failure is reported, never raised."""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml

from conftest import REPO_ROOT
from puffy.monitoring import alert, run_monitoring
from puffy.monitoring.monitors import Finding
from test_monitoring_helpers import DaySpec, build_warehouse, write_day

DAY = date(2025, 3, 8)


@contextmanager
def local_webhook(status: int = 200, delay: float = 0.0, lifetime: float = 10.0):
    """A one-thread HTTP server on 127.0.0.1 that records POST bodies.

    Bounded: it serves requests until the block ends or ``lifetime`` seconds pass, whichever is
    first, so a failing test can never leave it running.
    """
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append({"body": json.loads(body), "content_type": self.headers.get("Content-Type")})
            time.sleep(delay)
            try:
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"nope")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, *args):  # keep pytest output clean
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 0.1
    stop = threading.Event()
    deadline = time.monotonic() + lifetime

    def serve():
        while not stop.is_set() and time.monotonic() < deadline:
            server.handle_request()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        stop.set()
        thread.join(timeout=5)
        server.server_close()


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


def test_summary_lists_the_worst_findings_first_and_truncates():
    findings = [Finding("trend.sessions", "warn", "w1"), Finding("revenue.duplicate_order_key", "error", "e1"),
                Finding("trend.insufficient_history", "info", "i1"), Finding("trend.orders", "warn", "w2")]
    text = alert.summary_text("error", DAY, findings, max_findings=2, report="/x/monitoring_report.md")
    lines = text.splitlines()
    assert lines[0] == "puffy monitoring 2025-03-08: ERROR (1 error(s), 2 warning(s))"
    assert lines[1] == "• [ERROR] revenue.duplicate_order_key: e1"
    assert lines[2] == "• [WARN] trend.sessions: w1"
    assert lines[3] == "… and 1 more" and lines[4] == "report: /x/monitoring_report.md"
    assert "insufficient_history" not in text


# --- from run_monitoring --------------------------------------------------------------------------

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


def test_a_warn_run_posts_a_summary(warehouse, tmp_path):
    wh, inter, days = warehouse
    write_day(wh, inter, days[-1], DaySpec(null_rate=0.2))  # client-id null spike: a warning
    now = datetime.now(timezone.utc) + timedelta(hours=1)
    with local_webhook() as (url, received):
        result = run_monitoring(wh, rules_with(tmp_path, url), tmp_path / "out", run_date=days[-1],
                                intermediate_dir=inter, now=now)
    assert result.status == "warn"
    assert len(received) == 1
    text = received[0]["body"]["text"]
    assert text.startswith(f"puffy monitoring {days[-1]}: WARN") and "trend.client_id_null_rate" in text


def test_a_failed_delivery_is_a_finding_and_the_run_completes(warehouse, tmp_path):
    wh, inter, days = warehouse
    write_day(wh, inter, days[-1], DaySpec(null_rate=0.2))
    now = datetime.now(timezone.utc) + timedelta(hours=1)
    with local_webhook(status=503) as (url, received):
        result = run_monitoring(wh, rules_with(tmp_path, url), tmp_path / "out", run_date=days[-1],
                                intermediate_dir=inter, now=now)
    failed = [f for f in result.findings if f.id == "alert.delivery_failed"]
    assert len(failed) == 1 and failed[0].severity == "warn" and "HTTP 503" in failed[0].message
    report = json.loads(result.report_paths["json"].read_text())
    assert "alert.delivery_failed" in [f["id"] for f in report["findings"]]
    assert report["status"] == "warn"


def test_a_clean_run_sends_nothing(tmp_path):
    wh, inter, days = build_warehouse(tmp_path / "clean", 15)
    now = datetime.now(timezone.utc) + timedelta(hours=1)
    with local_webhook() as (url, received):
        result = run_monitoring(wh, rules_with(tmp_path, url), tmp_path / "out", run_date=days[-1],
                                intermediate_dir=inter, now=now)
    assert result.status == "pass" and received == []
