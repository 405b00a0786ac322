"""The data-quality checks: a few SQL aggregations over the staging tables, graded by the rules.

One module per check family (``CHECK_ORDER``), each with its ``check_<family>(ctx) -> [Finding]``:
``materiality``, ``ingest``, ``schema``, ``taxonomy``, ``timestamps``, ``client_id``, ``coverage``,
``duplicates``, ``payload``, ``volume``, ``bots``, ``referrer``. They share ``context`` (the
``CheckContext`` and the metric pass over ``stg_events``), ``grading`` (``graded`` / ``counted`` /
``fixed``: values graded day by day into one finding per id, and the phrases messages share) and
``messages`` (what each finding means downstream, from ``messages.yaml``). ``summary`` has the
per-day table of the gate's notebook.

Most checks grade the small per-day metrics table; the rest (payloads, transaction ids, duplicates,
ordering) are one targeted SQL query each. Every check returns one finding per finding id —
status 'pass' when it found nothing — so the report also shows what was checked. Order-level rates
rest on a few dozen orders a day, so their ERROR levels are set high enough that one or two odd
orders make a WARN, not an ERROR.
"""

from __future__ import annotations

from puffy.dq.checks.bots import check_bots
from puffy.dq.checks.client_id import check_client_ids
from puffy.dq.checks.context import (
    CHECK_ORDER,
    ROW_REJECTS,
    CheckContext,
    build_metrics,
)
from puffy.dq.checks.coverage import check_coverage
from puffy.dq.checks.duplicates import check_duplicates
from puffy.dq.checks.grading import counted, fixed, fmt_dates, graded, pct
from puffy.dq.checks.ingest import check_ingest, file_facts
from puffy.dq.checks.materiality import check_materiality
from puffy.dq.checks.messages import impact
from puffy.dq.checks.payload import check_payload
from puffy.dq.checks.referrer import check_referrer
from puffy.dq.checks.schema import check_schema
from puffy.dq.checks.summary import daily_summary
from puffy.dq.checks.taxonomy import check_taxonomy
from puffy.dq.checks.timestamps import check_timestamps
from puffy.dq.checks.volume import check_volume
from puffy.findings import Finding
from puffy.findings import sort_findings as _sort_findings

# In the order they run (the report orders findings by CHECK_ORDER, whatever the order here).
CHECKS = (
    check_ingest,
    check_schema,
    check_taxonomy,
    check_timestamps,
    check_client_ids,
    check_duplicates,
    check_payload,
    check_volume,
    check_bots,
    check_referrer,
    check_coverage,
    check_materiality,
)

__all__ = [
    "CHECKS",
    "CHECK_ORDER",
    "ROW_REJECTS",
    "CheckContext",
    "counted",
    "daily_summary",
    "file_facts",
    "fixed",
    "fmt_dates",
    "graded",
    "impact",
    "pct",
    "run_checks",
    "sort_findings",
]


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """The gate's order: by check family (``CHECK_ORDER``), then id."""
    return _sort_findings(findings, CHECK_ORDER)


def run_checks(ctx: CheckContext) -> list[Finding]:
    """Build the metrics, run every check, return the findings in a stable order."""
    build_metrics(ctx)
    findings: list[Finding] = []
    for check in CHECKS:
        findings.extend(check(ctx))
    return sort_findings(findings)
