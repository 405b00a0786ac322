"""The findings vocabulary every stage shares: one ``Finding``, one severity scale, one status word list.

A *finding* is one thing a check wants a person to know: the data-quality gate (``puffy.dq``) makes
one per check id (``pass`` when it found nothing, so the report also shows what was checked);
monitoring (``puffy.monitoring``) makes one per problem. Both are this class.

Severity and status
    A finding's **severity** is one of ``pass < info < warn < error`` (``SEVERITY_RANK``). A stage's
    **status** is one of ``pass | warn | error`` (``STATUSES``): the worst severity of its findings,
    an ``info`` never raising it (``worst_status``). The transform's reconciliation says ``ok`` for
    ``pass`` (``LEGACY_STATUS``; ``normalise_status`` maps it).

Incidents
    ``puffy.incidents`` sets four fields on every raised finding (``INCIDENT_FIELDS``): since when it is
    open (``first_seen``), for how many days (``days_open``), ``state`` (new | ongoing | earlier) and
    the acknowledgement that demoted it to INFO (``acknowledged``).

JSON schemas
    Each stage's report has carried its own set of finding fields since before the two classes were
    one, and readers (the run index, the alert, the executive summary, people's scripts) rely on
    them, so ``Finding.to_dict(schema)`` writes exactly one stage's fields, in its order:

    * ``GATE_JSON`` (``dq_report.json``): id, check, severity, status, title, metric, value, thresholds,
      dates, files, sample_rows, message, daily, the incident fields, impact — values as the checks
      made them (they clean their numbers as they compute them).
    * ``MONITORING_JSON`` (``monitoring_report.json``): id, severity, message, metric, value, band, dates,
      details, the incident fields — value, band and details passed through ``json_safe``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

Severity = Literal["pass", "info", "warn", "error"]
RaisedSeverity = Literal["info", "warn", "error"]  # what a rule may configure
Status = Literal["pass", "warn", "error"]

SEVERITIES: tuple[str, ...] = ("pass", "info", "warn", "error")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}  # pass 0, info 1, warn 2, error 3
RAISED = ("info", "warn", "error")  # severities that open an incident
PROBLEMS = ("warn", "error")  # severities that count as something wrong (alerts, 'new' counts)
STATUSES: tuple[str, ...] = ("pass", "warn", "error")
# Older status words still written by some stages, and what they mean in STATUSES.
LEGACY_STATUS = {"ok": "pass"}
INCIDENT_FIELDS = ("first_seen", "days_open", "state", "acknowledged")


@dataclass
class Finding:
    """One result of one check or monitor.

    ``id`` is ``family.name`` (``payload.revenue_zero``, ``trend.sessions``); the runbooks
    (docs/data_quality.md, docs/monitoring.md) have a section per id. Fields a stage does not use
    keep their defaults and are not written by its JSON schema (module docstring).
    """

    id: str
    severity: str  # pass | info | warn | error
    message: str = ""
    title: str = ""  # gate: the check's one-line name
    metric: str | None = None
    value: float | int | None = None
    thresholds: dict = field(default_factory=dict)  # gate: the rule's cut-offs (Threshold.as_dict)
    band: tuple[float | None, float | None] | None = None  # monitoring: the range that would not fire
    dates: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # gate: the raw files of those dates
    sample_rows: list[dict] = field(default_factory=list)  # gate: the first rows behind it
    daily: list[dict] = field(default_factory=list)  # gate: {date, value, severity} per flagged day
    details: dict = field(default_factory=dict)  # monitoring: the numbers behind the message
    impact: str = ""  # gate: what the finding means for the numbers built downstream
    # Set by ``puffy.incidents`` on raised findings (INCIDENT_FIELDS).
    first_seen: str | None = None
    days_open: int | None = None
    state: str | None = None
    acknowledged: dict | None = None

    @property
    def check(self) -> str:
        """The check family: the id up to its first dot."""
        return self.id.split(".", 1)[0]

    @property
    def status(self) -> str:
        """The gate's JSON repeats the severity as ``status``."""
        return self.severity

    def to_dict(self, schema: FindingSchema | None = None) -> dict:
        """The finding as one stage's report writes it; without a schema, ``MONITORING_JSON`` (what
        monitoring's callers have always received)."""
        schema = schema or MONITORING_JSON
        out = asdict(self)
        out["check"], out["status"] = self.check, self.status
        for name in schema.cleaned:
            out[name] = json_safe(out[name])
        return {name: out[name] for name in schema.fields}


@dataclass(frozen=True)
class FindingSchema:
    """The finding fields one stage's JSON report carries, in order, and which pass through ``json_safe``."""

    stage: str
    fields: tuple[str, ...]
    cleaned: tuple[str, ...] = ()


GATE_JSON = FindingSchema(
    "gate",
    (
        "id",
        "check",
        "severity",
        "status",
        "title",
        "metric",
        "value",
        "thresholds",
        "dates",
        "files",
        "sample_rows",
        "message",
        "daily",
        *INCIDENT_FIELDS,
        "impact",
    ),
)
MONITORING_JSON = FindingSchema(
    "monitoring",
    ("id", "severity", "message", "metric", "value", "band", "dates", "details", *INCIDENT_FIELDS),
    cleaned=("value", "band", "details"),
)


def finding_from_dict(d: dict) -> Finding:
    """A finding read back from a report's JSON (keys that are not fields, like ``check``, are dropped)."""
    names = Finding.__dataclass_fields__
    return Finding(**{k: v for k, v in d.items() if k in names})


# --- severity and status ------------------------------------------------------------------------


def worst_severity(severities: Iterable[str]) -> str:
    """The worst of ``severities`` on the one scale (``pass`` for none); ``info`` counts."""
    return max(severities, key=SEVERITY_RANK.__getitem__, default="pass")


def worst_status(severities: Iterable[str]) -> str:
    """A stage's status from its findings' severities: ``error`` > ``warn`` > ``pass``; an ``info``
    (a note) never raises it, and a legacy ``ok`` reads as ``pass``."""
    return worst_severity(s for s in (normalise_status(x) for x in severities) if s != "info")


def overall_status(findings: Iterable[Finding]) -> str:
    """``worst_status`` of the findings' severities."""
    return worst_status(f.severity for f in findings)


def normalise_status(word: str) -> str:
    """A status or severity word in this vocabulary (``ok`` → ``pass``; case and spaces ignored)."""
    word = str(word).strip().lower()
    return LEGACY_STATUS.get(word, word)


def sort_findings(findings: Iterable[Finding], families: Sequence[str] | None = None) -> list[Finding]:
    """Findings in a report's order.

    With ``families`` (the gate's ``CHECK_ORDER``): by check family in that order, then id — the
    report reads as the checklist. Without: worst first, then id and metric (monitoring).
    """
    if families is not None:
        return sorted(findings, key=lambda f: (families.index(f.check), f.id))
    return sorted(findings, key=lambda f: (-SEVERITY_RANK[f.severity], f.id, f.metric or ""))


# --- JSON ---------------------------------------------------------------------------------------


def json_safe(value, digits: int | None = None):
    """``value`` as plain JSON data: NaN, infinities, NaT and NA become None; numpy scalars Python
    ones; dates and timestamps ISO strings; Decimals floats; tuples lists; dicts and lists cleaned
    item by item; anything else unknown its ``str``. ``digits`` rounds floats (the gate keeps 6)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, dict):
        return {k: json_safe(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, digits) for v in value]
    # A pandas or NumPy value exists only once its library is imported: the runner, which writes
    # statuses and the run index, never imports them (~0.45 CPU-s).
    pd, np = sys.modules.get("pandas"), sys.modules.get("numpy")
    if pd is not None and (value is pd.NaT or value is pd.NA):
        return None
    if isinstance(value, (datetime, date)):  # pd.Timestamp is a datetime
        return value.isoformat()
    if np is not None and isinstance(value, np.generic):
        return json_safe(value.item(), digits)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (float, Decimal)):
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            return None
        return number if digits is None else round(number, digits)
    try:
        return json_safe(float(value), digits)
    except (TypeError, ValueError):
        return str(value)
