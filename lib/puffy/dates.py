"""Calendar days: the pipeline's unit of work (one raw file, one partition per UTC day)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta


def date_range(start: date, end: date) -> list[date]:
    """Every calendar day from ``start`` to ``end`` inclusive (empty when ``end`` is before ``start``)."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def date_runs_text(days: Iterable[date], joiner: str = " … ", none: str = "no day") -> str:
    """Days as runs of consecutive dates: '2025-03-02, 2025-03-04 … 2025-03-08' (``joiner`` between
    a run's ends; ``none`` when there is no day)."""
    runs: list[list[date]] = []
    for d in sorted(set(days)):
        if runs and d - runs[-1][-1] == timedelta(days=1):
            runs[-1].append(d)
        else:
            runs.append([d])
    parts = [r[0].isoformat() if len(r) == 1 else f"{r[0].isoformat()}{joiner}{r[-1].isoformat()}" for r in runs]
    return ", ".join(parts) if parts else none
