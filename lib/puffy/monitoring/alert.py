"""The on-call alert of a daily run: one message per day that needs a person.

A day alerts when it was **stopped** (the gate found an ERROR: exit 3; a transform that failed
before staging anything: exit 4) or **quarantined** (a transform that did not reconcile, exit 4, or
a monitoring ERROR, exit 5: the staged outputs went to ``quarantine/``), and when it was
**published with warnings** that are *new* incidents (``state == 'new'``, severity at least
``alert.min_severity``). A warning that was already open the day before (``ongoing``), or that
``params/acknowledged.yaml`` accepts (demoted to INFO), does not alert again: a message every day
teaches people to ignore it.

The runner decides and sends (``alert_for_day`` then ``deliver``); the alert reads the stages'
reports in ``runs/<date>/`` (``dq_report.json``, ``monitoring_report.json``,
``transform_status.json``), so it says what the reports say. Two payload formats
(``alert.format``): ``slack`` (``{"text", "blocks"}``, what a Slack-compatible incoming webhook
takes) and ``json`` (the plain document, schema ``puffy.alert/1``, documented in
docs/monitoring.md). The plain document is also written to ``runs/<date>/alert.json`` whether or
not a webhook is configured.

A one-pass backfill posts one digest for its range instead (``backfill_digest``, schema
``puffy.alert-digest/1``), each day's document still written to its ``alert.json``.

The alert is a courtesy on top of the reports, never a reason for a run to fail: every delivery
problem (bad URL, refused connection, timeout, non-2xx answer) is caught and returned as text,
which the runner logs and records in ``run_summary.json``.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from puffy.findings import PROBLEMS, SEVERITY_RANK

log = logging.getLogger("puffy.alert")

SCHEMA = "puffy.alert/1"
STOPPED, QUARANTINED, PUBLISHED_WITH_WARNINGS = "stopped", "quarantined", "published with warnings"

#: Each stage's report in ``runs/<date>/``, in run order.
STAGE_REPORTS = {
    "01_data_quality": "dq_report.json",
    "02_transform": "transform_status.json",
    "04_monitoring": "monitoring_report.json",
}


@dataclass(frozen=True)
class Delivery:
    """Outcome of one webhook POST."""

    ok: bool
    detail: str


def webhook_url(rules) -> str | None:
    """``alert.webhook_url``, else the environment variable ``alert.webhook_url_env`` names (so the
    URL, a secret, need not be committed with params/)."""
    if rules.webhook_url:
        return rules.webhook_url
    if not rules.webhook_url_env:
        return None
    return os.environ.get(rules.webhook_url_env) or None


def report_link(path: Path, outputs_dir: Path, base_url: str | None) -> str:
    """A link to ``path`` (a file under ``outputs_dir``): ``base_url`` + its path relative to
    ``outputs_dir`` when a base URL is configured (the outputs directory served over HTTP), else a
    ``file://`` URI, which opens on the machine that ran it."""
    path = Path(path).resolve()
    if base_url:
        try:
            rel = path.relative_to(Path(outputs_dir).resolve())
        except ValueError:
            return path.as_uri()
        return base_url.rstrip("/") + "/" + "/".join(urllib.request.quote(part) for part in rel.parts)
    return path.as_uri()


def _stage_findings(run_dir: Path, stage: str) -> list[dict]:
    path = run_dir / STAGE_REPORTS[stage]
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [{**f, "stage": stage} for f in report.get("findings", []) if isinstance(f, dict)]


def _brief(finding: dict) -> dict:
    return {
        "stage": finding["stage"],
        "severity": finding.get("severity"),
        "id": finding.get("id"),
        "message": finding.get("message", ""),
        "state": finding.get("state"),
        "first_seen": finding.get("first_seen"),
        "days_open": finding.get("days_open"),
    }


def alert_for_day(result, run_dir: Path, outputs_dir: Path, rules) -> dict | None:
    """The plain alert document (schema ``puffy.alert/1``) for a day's ``DayResult``, or None when the
    day needs nobody (published clean, or with only ongoing / acknowledged / below-threshold findings)."""
    run_dir = Path(run_dir)
    findings = [f for stage in STAGE_REPORTS for f in _stage_findings(run_dir, stage)]
    raised = [f for f in findings if f.get("severity") in PROBLEMS]
    threshold = SEVERITY_RANK[rules.min_severity]
    new = [f for f in raised if f.get("state") == "new" and SEVERITY_RANK[f["severity"]] >= threshold]
    if result.exit_code:
        outcome = QUARANTINED if result.quarantine_path else STOPPED
        stage = result.stopped_at
        # What stopped the day first (its errors, whatever their age), then what else is new.
        top = sorted(raised, key=lambda f: (f["severity"] != "error", f["stage"] != stage, f.get("state") != "new"))
        top = [f for f in top if f["severity"] == "error" or f.get("state") == "new"]
    elif result.published and new:
        outcome, stage = PUBLISHED_WITH_WARNINGS, new[0]["stage"]
        top = sorted(new, key=lambda f: -SEVERITY_RANK[f["severity"]])
    else:
        return None
    report = next((s.html for s in result.stages if s.stage == stage and s.html), None)
    report_path = Path(report) if report else run_dir
    shown = top[: rules.max_findings]
    return {
        "schema": SCHEMA,
        "date": result.date,
        "outcome": outcome,
        "stage": stage,
        "exit_code": result.exit_code,
        "reason": result.reason,
        "new_incidents": len(new),
        "ongoing_incidents": sum(f.get("state") == "ongoing" for f in raised),
        "findings": [_brief(f) for f in shown],
        "more_findings": len(top) - len(shown),
        "report_url": report_link(report_path, outputs_dir, rules.reports_base_url),
        "index_url": report_link(Path(outputs_dir) / "index.html", outputs_dir, rules.reports_base_url),
        "quarantine_path": result.quarantine_path,
    }


_HEADLINE = {
    STOPPED: "stopped: not published",
    QUARANTINED: "quarantined: not published, staged outputs kept for inspection",
    PUBLISHED_WITH_WARNINGS: "published with warnings",
}


def summary_text(doc: dict) -> str:
    """The alert as plain lines: headline, reason, the top findings, the link."""
    lines = [f"puffy {doc['date']}: {_HEADLINE[doc['outcome']]} (stage {doc['stage']}, exit {doc['exit_code']})"]
    if doc["outcome"] != PUBLISHED_WITH_WARNINGS and doc["reason"]:
        lines.append(f"reason: {doc['reason']}")
    for f in doc["findings"]:
        since = f" (open since {f['first_seen']})" if f.get("state") == "ongoing" and f.get("first_seen") else ""
        state = "new " if f.get("state") == "new" else ""
        lines.append(f"• {state}{str(f['severity']).upper()} {f['id']}{since}: {f['message']}")
    if doc["more_findings"]:
        lines.append(f"… and {doc['more_findings']} more")
    if doc["ongoing_incidents"] and doc["outcome"] == PUBLISHED_WITH_WARNINGS:
        lines.append(f"({doc['ongoing_incidents']} ongoing incident(s) not repeated here)")
    lines.append(f"report: {doc['report_url']}")
    return "\n".join(lines)


def _slack_escape(text: str) -> str:
    """Slack reads <…> as links and mentions (<!channel> pings everyone): data must not."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(doc: dict) -> dict:
    """A Slack-compatible incoming-webhook body: ``text`` (notifications, clients without blocks)
    and one section block with the same lines and a real link."""
    text = _slack_escape(summary_text(doc))
    body = text.rsplit("\nreport: ", 1)[0] + f"\n<{doc['report_url']}|report> · <{doc['index_url']}|all runs>"
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": body[:3000]}}]}


def payload(doc: dict, fmt: str) -> dict:
    return slack_payload(doc) if fmt == "slack" else doc


def post_json(url: str, body: dict, timeout: float = 5.0) -> Delivery:
    """POST ``body`` as JSON to ``url``; never raises."""
    data = json.dumps(body).encode("utf-8")
    try:
        request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
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


def post_webhook(url: str, text: str, timeout: float = 5.0) -> Delivery:
    """POST ``{"text": text}``; never raises."""
    return post_json(url, {"text": text}, timeout)


def deliver(doc: dict, run_dir: Path, rules) -> dict:
    """Write ``run_dir/alert.json`` and POST the alert when a webhook is configured; what happened,
    for ``run_summary.json`` (``sent``: None when no webhook is configured)."""
    label = f"{doc['date']} alert ({doc['outcome']})"
    sent = _write_and_post(doc, Path(run_dir), rules, payload(doc, rules.format), label)
    return {**sent, "outcome": doc["outcome"]}


def write_alert(doc: dict, directory: Path) -> Path:
    """The alert document (a day's, or a backfill's digest) as ``directory/alert.json``."""
    path = Path(directory) / "alert.json"
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


def _write_and_post(doc: dict, directory: Path, rules, body: dict, label: str) -> dict:
    """``directory/alert.json``, then the POST when a webhook is configured: ``sent`` and ``detail``."""
    path = write_alert(doc, directory)
    url = webhook_url(rules)
    if not url:
        log.info("%s written to %s; no webhook configured", label, path)
        return {"sent": None, "detail": "no webhook configured"}
    delivery = post_json(url, body, rules.timeout_seconds)
    if delivery.ok:
        log.info("%s sent (%s)", label, delivery.detail)
    else:
        log.warning("%s could not be delivered: %s (it is in %s)", label, delivery.detail, path)
    return {"sent": delivery.ok, "detail": delivery.detail}


# --- a backfill's digest --------------------------------------------------------------------------

DIGEST_SCHEMA = "puffy.alert-digest/1"


def backfill_digest(start, end, days: list[tuple[object, dict | None]], outputs_dir: Path, rules) -> dict | None:
    """One message for a backfill instead of one per day (``days``: each day's ``DayResult`` and
    its alert document, None when it needs nobody): the days stopped and quarantined, each with its
    reason and report, and how many published days had new incidents, by incident id. A year of
    history alerts on most of its days; each is history by the time it is backfilled, and one
    message a day would bury the stopped ones. None when no day alerted."""
    alerted = [doc for _, doc in days if doc is not None]
    if not alerted:
        return None

    def brief(doc: dict) -> dict:
        return {k: doc[k] for k in ("date", "stage", "exit_code", "reason", "report_url")}

    with_warnings = [doc for doc in alerted if doc["outcome"] == PUBLISHED_WITH_WARNINGS]
    new_ids: dict[str, int] = {}
    for doc in with_warnings:
        for finding_id in dict.fromkeys(f["id"] for f in doc["findings"] if f.get("state") == "new"):
            new_ids[finding_id] = new_ids.get(finding_id, 0) + 1
    return {
        "schema": DIGEST_SCHEMA,
        "start": str(start),
        "end": str(end),
        "days": len(days),
        "published": sum(1 for result, _ in days if result.published),
        "stopped": [brief(doc) for doc in alerted if doc["outcome"] == STOPPED],
        "quarantined": [brief(doc) for doc in alerted if doc["outcome"] == QUARANTINED],
        "published_with_new_incidents": len(with_warnings),
        "new_incidents": dict(sorted(new_ids.items(), key=lambda kv: (-kv[1], kv[0]))[: rules.max_findings]),
        "index_url": report_link(Path(outputs_dir) / "index.html", outputs_dir, rules.reports_base_url),
    }


def digest_text(doc: dict) -> str:
    """The digest as plain lines: totals, each day that was not published, the new incidents."""
    not_published = doc["stopped"] + doc["quarantined"]
    lines = [
        f"puffy backfill {doc['start']} … {doc['end']}: {doc['published']} of {doc['days']} day(s) published, "
        f"{len(doc['quarantined'])} quarantined, {len(doc['stopped'])} stopped"
    ]
    for day in sorted(not_published, key=lambda d: d["date"]):
        outcome = QUARANTINED if day in doc["quarantined"] else STOPPED
        lines.append(f"• {day['date']} {outcome} at {day['stage']} (exit {day['exit_code']}): {day['reason']}")
    if doc["published_with_new_incidents"]:
        ids = ", ".join(f"{i} ({n} day(s))" for i, n in doc["new_incidents"].items())
        lines.append(f"{doc['published_with_new_incidents']} published day(s) with new incidents: {ids}")
    lines.append(f"all runs: {doc['index_url']}")
    return "\n".join(lines)


def deliver_digest(doc: dict, directory: Path, rules) -> dict:
    """Write ``directory/alert.json`` and POST the digest when a webhook is configured (``slack``:
    its lines as text and one block; ``json``: the document)."""
    if rules.format == "slack":
        text = _slack_escape(digest_text(doc))
        body = {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]}
    else:
        body = doc
    return _write_and_post(doc, Path(directory), rules, body, f"backfill {doc['start']}..{doc['end']} alert digest")
