"""Calendar days: the pipeline's unit of work (one raw file, one partition per UTC day)."""

from __future__ import annotations

from datetime import date, timedelta


def date_range(start: date, end: date) -> list[date]:
    """Every calendar day from ``start`` to ``end`` inclusive (empty when ``end`` is before ``start``)."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]
