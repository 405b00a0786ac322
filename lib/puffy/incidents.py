"""Incidents and acknowledgements: so that a warning means something.

A status that is WARN every day tells nobody anything. Two things make a finding informative:

* **Incidents, not repeats.** Every raised finding (gate or monitoring) carries when it was first
  seen and how many days it has been open, so a report and ``index.html`` can say what is *new*
  today apart from what *persists*. A finding continues an incident when the report of the day
  before the run's first day raised the same finding (same id and metric); it then inherits that
  report's ``first_seen``. The daily runs keep one report per day under ``runs/<date>/``, which is
  where the day before's report is looked up (``previous_report``); a day without one starts
  every finding afresh.
* **Acknowledgements.** ``params/acknowledged.yaml`` lists known, accepted findings: check id (or a
  family, ``bots.*``), optionally the metric (a monitoring segment's channel) and the run dates it
  covers, with a reason, an owner and an expiry date. Until it expires (judged by the wall clock of
  the run, so a stale acknowledgement cannot hide a problem forever) a matching finding is demoted
  to INFO and says who accepted it and why; from the day after it expires the finding is back at
  its own severity, saying that its acknowledgement expired.

Both work on ``puffy.findings.Finding`` (the gate's and monitoring's findings): ``id``, ``severity``,
``metric``, ``dates``, ``message`` and the gate's ``daily``, and set its ``INCIDENT_FIELDS``
(``first_seen``, ``days_open``, ``state``, ``acknowledged``).
"""

from __future__ import annotations

import fnmatch
import json
from datetime import date, timedelta
from pathlib import Path

from pydantic import Field, model_validator

from puffy.findings import PROBLEMS, RAISED, worst_severity
from puffy.params import StrictModel, load_params


class Acknowledgement(StrictModel):
    """One known, accepted finding."""

    check: str = Field(min_length=1, description="Finding id, or a pattern such as 'bots.*'.")
    metric: str | None = Field(None, description="Only the finding about this metric (e.g. a channel).")
    dates: tuple[date, date] | None = Field(None, description="Only findings of run dates in [from, to].")
    reason: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    expires: date

    @model_validator(mode="after")
    def _dates_ordered(self) -> Acknowledgement:
        if self.dates and self.dates[0] > self.dates[1]:
            raise ValueError("dates must be [from, to]")
        return self

    def matches(self, finding, run_date: date) -> bool:
        if not fnmatch.fnmatchcase(finding.id, self.check):
            return False
        if self.metric is not None and self.metric != finding.metric:
            return False
        return self.dates is None or self.dates[0] <= run_date <= self.dates[1]


class Acknowledgements(StrictModel):
    """``params/acknowledged.yaml``."""

    acknowledged: list[Acknowledgement] = Field(default_factory=list)


def load_acknowledgements(params_dir: Path | None) -> Acknowledgements:
    """The acknowledgements in ``params_dir/acknowledged.yaml`` (none when the file is absent)."""
    path = None if params_dir is None else Path(params_dir) / "acknowledged.yaml"
    if path is None or not path.exists():
        return Acknowledgements()
    return load_params(path, Acknowledgements)


def acknowledge(findings: list, acks: Acknowledgements, run_date: date, today: date) -> None:
    """Demote every raised finding that a live acknowledgement covers to INFO (in place).

    A finding with ``daily`` rows (the gate's, over several days) is judged day by day: only the
    days an acknowledgement covers are demoted, and the finding keeps the worst severity of the
    days left; it is acknowledged (INFO) when every raised day is covered.
    """
    for finding in findings:
        if finding.severity not in PROBLEMS:
            continue
        days = [r for r in getattr(finding, "daily", None) or [] if r.get("severity") in PROBLEMS]
        if not days:
            days = [{"date": run_date.isoformat(), "severity": finding.severity}]
        covering = {
            r["date"]: next((a for a in acks.acknowledged if a.matches(finding, date.fromisoformat(r["date"]))), None)
            for r in days
        }
        used = [a for a in covering.values() if a is not None]
        if not used:
            continue
        ack = used[0]
        if ack.expires < today:
            finding.message += f" [its acknowledgement by {ack.owner} expired on {ack.expires}]"
            continue
        for r in days:
            if covering[r["date"]] is not None:
                r["severity"] = "info"
        left = [r["severity"] for r in days if covering[r["date"]] is None]
        record = {
            "reason": ack.reason,
            "owner": ack.owner,
            "expires": ack.expires.isoformat(),
            "severity": finding.severity,
            "dates": sorted(d for d, a in covering.items() if a is not None),
        }
        finding.acknowledged = record
        finding.severity = worst_severity(left) if left else "info"
        finding.message += f" [acknowledged by {ack.owner} until {ack.expires}: {ack.reason}" + (
            f"; not for {', '.join(sorted(d for d, a in covering.items() if a is None))}]" if left else "]"
        )


def _key(finding_id: str, metric) -> str:
    return f"{finding_id}|{metric or ''}"


def previous_report(output_dir: Path, first_day: date, filename: str) -> Path | None:
    """The report of the day before ``first_day`` in the daily runs' layout (``runs/<date>/``)."""
    try:
        date.fromisoformat(Path(output_dir).name)
    except ValueError:
        return None  # not a daily run directory: no history to continue
    path = Path(output_dir).parent / (first_day - timedelta(days=1)).isoformat() / filename
    return path if path.exists() else None


def open_incidents(report_path: Path | None) -> dict[str, str]:
    """``first_seen`` of each finding the report raised, by id and metric ({} without a report)."""
    if report_path is None:
        return {}
    try:
        findings = json.loads(Path(report_path).read_text(encoding="utf-8")).get("findings", [])
    except (OSError, ValueError):
        return {}
    return {
        _key(f["id"], f.get("metric")): f.get("first_seen") or (f.get("dates") or [None])[0]
        for f in findings
        if f.get("severity") in RAISED and (f.get("first_seen") or f.get("dates"))
    }


def track(findings: list, previous: dict[str, str], first_day: date, run_date: date) -> None:
    """Set ``first_seen``, ``days_open`` and ``state`` (new | ongoing | earlier) of every raised finding.

    ``previous``: the open incidents of the day before ``first_day`` (``open_incidents``).
    ``earlier`` is a finding of a multi-day report that is no longer raised on its last day.
    """
    for finding in findings:
        if finding.severity not in RAISED:
            continue
        dates = sorted(finding.dates) or [run_date.isoformat()]
        first = previous.get(_key(finding.id, finding.metric)) if dates[0] == first_day.isoformat() else None
        finding.first_seen = first or dates[0]
        # An incident no longer raised at the end of the report lasted until its last date.
        last = run_date if dates[-1] == run_date.isoformat() else date.fromisoformat(dates[-1])
        finding.days_open = (last - date.fromisoformat(finding.first_seen)).days + 1
        finding.state = (
            "earlier" if last != run_date else "new" if finding.first_seen == run_date.isoformat() else "ongoing"
        )


def since_text(state: str | None, first_seen: str | None, days_open: int | None) -> str:
    """'new'; 'since 2025-03-02 (4 days)' for an ongoing incident; 'from 2025-03-02, 1 day' for one
    no longer raised at the end of a multi-day report; '' for a passing check."""
    if state == "new":
        return "new"
    if state == "ongoing":
        return f"since {first_seen} ({days_open} days)"
    if state == "earlier":
        return f"from {first_seen}, {days_open} day{'s' if days_open != 1 else ''}"
    return ""


def counts(findings: list) -> dict[str, int]:
    """How many raised warnings/errors are new today, ongoing, and acknowledged."""
    raised = [f for f in findings if f.severity in PROBLEMS]
    return {
        "new": sum(f.state == "new" for f in raised),
        "ongoing": sum(f.state == "ongoing" for f in raised),
        "acknowledged": sum(1 for f in findings if f.acknowledged),
    }
