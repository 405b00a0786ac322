"""A short alert to a Slack-compatible incoming webhook when a run is not clean.

The alert is a courtesy on top of the report, never a reason for the run to fail: every delivery
problem (bad URL, refused connection, timeout, non-2xx answer) is caught and returned as text,
which ``run_monitoring`` turns into an ``alert.delivery_failed`` finding and a log line.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date

log = logging.getLogger("puffy.monitoring")


@dataclass(frozen=True)
class Delivery:
    """Outcome of one webhook POST."""

    ok: bool
    detail: str


def summary_text(status: str, run_date: date, findings: list, max_findings: int = 10, report: str | None = None) -> str:
    """The alert's text: status, counts and the most severe findings first (one line each)."""
    order = {"error": 0, "warn": 1, "info": 2}
    shown = sorted((f for f in findings if f.severity in ("error", "warn")), key=lambda f: order[f.severity])
    errors = sum(f.severity == "error" for f in findings)
    warns = sum(f.severity == "warn" for f in findings)
    lines = [f"puffy monitoring {run_date.isoformat()}: {status.upper()} ({errors} error(s), {warns} warning(s))"]
    lines += [f"• [{f.severity.upper()}] {f.id}: {f.message}" for f in shown[:max_findings]]
    if len(shown) > max_findings:
        lines.append(f"… and {len(shown) - max_findings} more")
    if report:
        lines.append(f"report: {report}")
    return "\n".join(lines)


def post_webhook(url: str, text: str, timeout: float = 5.0) -> Delivery:
    """POST ``{"text": text}`` as JSON to ``url``; never raises."""
    body = json.dumps({"text": text}).encode("utf-8")
    try:
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - URL from params
            code = response.status
        if 200 <= code < 300:
            return Delivery(True, f"HTTP {code}")
        return Delivery(False, f"HTTP {code}")
    except urllib.error.HTTPError as exc:
        return Delivery(False, f"HTTP {exc.code} {exc.reason}")
    except urllib.error.URLError as exc:
        return Delivery(False, f"cannot reach webhook: {exc.reason}")
    except Exception as exc:  # timeouts, bad URLs, anything: an alert must not crash the run
        return Delivery(False, f"{type(exc).__name__}: {exc}")
