"""Building findings: a check's values graded day by day into one ``Finding`` per id, and the
phrases their messages share.

Every check returns one ``Finding`` per finding id — status 'pass' when it found nothing — so the
report also shows what was checked. Rates are graded day by day, so a day gets the same severity
whether it is gated alone or within a backfill (baseline comparisons aside, which depend on the
earlier days available). A raised finding's message ends with what it means downstream
(``messages.yaml``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date

import pandas as pd

from puffy.dates import date_runs_text
from puffy.dq.checks.context import DIGITS, CheckContext
from puffy.dq.checks.messages import impact
from puffy.dq.rules import RatioBand, Threshold
from puffy.findings import Finding, json_safe, worst_severity


def fmt_dates(dates: Iterable[str]) -> str:
    """'2025-03-02', '2025-03-04 … 2025-03-08' — consecutive days collapsed into ranges."""
    return date_runs_text(date.fromisoformat(d) for d in dates)


def pct(x: float) -> str:
    return f"{x:.1%}" if x >= 0.001 or x == 0 else f"{x:.2%}"


def graded(
    ctx: CheckContext,
    fid: str,
    title: str,
    metric: str,
    rule: Threshold | RatioBand,
    values: dict[date, float | None],
    what: Callable[[list[dict]], str],
    quiet: str,
    samples: Callable[[list[str]], list[dict]] | None = None,
    key: Callable[[float], float] = lambda v: v,
) -> Finding:
    """A finding graded day by day: each in-range day's value against ``rule``.

    ``what(flagged)`` describes the flagged days (list of {date, value, severity}); the message
    appends the finding's downstream impact. ``key`` ranks values (the worst one is ``value``).
    """
    days = set(ctx.days)
    daily = [
        {"date": d.isoformat(), "value": json_safe(v, DIGITS), "severity": rule.grade(v)}
        for d, v in sorted(values.items())
        if d in days and v is not None and not pd.isna(v)
    ]
    flagged = [r for r in daily if r["severity"] != "pass"]
    if not flagged:
        top = max((r["value"] for r in daily), key=key, default=None)
        return Finding(
            fid, "pass", quiet, title=title, metric=metric, value=top, thresholds=rule.as_dict(), impact=impact(fid)
        )
    dates = [r["date"] for r in flagged]
    severity = worst_severity(r["severity"] for r in flagged)
    # Over several days of mixed severity, say which days carry the worst one (the days that stop).
    worst_days = [r["date"] for r in flagged if r["severity"] == severity]
    which = f" ({severity.upper()} on {fmt_dates(worst_days)})" if len(worst_days) < len(flagged) else ""
    return Finding(
        fid,
        severity,
        f"{what(flagged)}{which}; {impact(fid)}.",
        title=title,
        metric=metric,
        value=max((r["value"] for r in flagged), key=key),
        thresholds=rule.as_dict(),
        dates=dates,
        files=ctx.files_for(dates),
        sample_rows=samples(dates) if samples else [],
        daily=flagged,
        impact=impact(fid),
    )


def counted(
    ctx: CheckContext,
    fid: str,
    title: str,
    metric: str,
    rule: Threshold,
    counts: dict,
    totals: dict,
    what: Callable[[int, str, list[str]], str],
    quiet: str,
    samples: Callable[[list[str]], list[dict]] | None = None,
) -> Finding:
    """A finding graded day by day on the rate counts / totals, described in counts.

    Grading per day (never over the whole period) keeps a day's severity the same whether it is
    gated alone or in a backfill. ``what(n, span, dates)`` gets the number of cases on the flagged
    days, the range of their daily rates as text, and the dates.
    """
    rates = {d: float(counts.get(d, 0)) / float(t) for d, t in totals.items() if t and not pd.isna(t)}

    def describe(flagged: list[dict]) -> str:
        dates = [r["date"] for r in flagged]
        n = int(sum(counts.get(date.fromisoformat(x), 0) for x in dates))
        return what(n, span_text(flagged), dates)

    return graded(ctx, fid, title, metric, rule, rates, describe, quiet, samples)


def fixed(
    ctx: CheckContext,
    fid: str,
    title: str,
    metric: str,
    severity: str,
    dates: list[str],
    value,
    message: str,
    quiet: str,
    samples: list[dict] | None = None,
) -> Finding:
    """A yes/no finding with a configured severity (schema changes, dictionary mismatches, …)."""
    if not dates:
        return Finding(
            fid,
            "pass",
            quiet,
            title=title,
            metric=metric,
            value=0,
            thresholds={"severity": severity},
            impact=impact(fid),
        )
    dates = sorted(set(dates))
    daily = [{"date": d, "value": None, "severity": severity} for d in dates]
    return Finding(
        fid,
        severity,
        f"{message}; {impact(fid)}.",
        title=title,
        metric=metric,
        value=value,
        thresholds={"severity": severity},
        dates=dates,
        files=ctx.files_for(dates),
        sample_rows=samples or [],
        daily=daily,
        impact=impact(fid),
    )


def ratio_by_day(num: pd.Series, den: pd.Series) -> dict[date, float]:
    """``num / den`` per day where ``den`` > 0 (a day without ``num`` counts 0)."""
    den = den[den > 0]
    return (num.reindex(den.index).fillna(0) / den).to_dict()


def range_text(lo: float, hi: float) -> str:
    """'3,100' or '2,881–4,335'."""
    return f"{int(lo):,}" if lo == hi else f"{int(lo):,}–{int(hi):,}"


def span_text(flagged: list[dict], fmt=pct) -> str:
    """The flagged days' values as one figure or a range: '1.2%', '0.8%–2.4%'."""
    values = [r["value"] for r in flagged]
    lo, hi = min(values), max(values)
    return fmt(hi) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"


def day_notes(flagged: list[dict], notes: dict[date, str]) -> str:
    """The per-day notes of the flagged days, joined."""
    return ", ".join(notes[date.fromisoformat(r["date"])] for r in flagged)


def on_days(flagged: list[dict]) -> str:
    """'on 2025-03-02', 'on 2025-03-02 … 2025-03-05 (4 days)'."""
    dates = [r["date"] for r in flagged]
    n = len(dates)
    return f"on {fmt_dates(dates)}" + (f" ({n} days)" if n > 2 else "")
