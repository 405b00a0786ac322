"""Calendar days: the pipeline's unit of work (one raw file, one partition per UTC day)."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from puffy.errors import UserError


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


def parse_day(value: object, name: str = "date") -> date | None:
    """A notebook parameter as a day: None / "" stay None, a ``date`` or 'YYYY-MM-DD' text becomes a
    ``date``; anything else is a ``UserError`` naming the parameter, what is wrong and what to type."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    found = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text)
    if found:
        year, month, day = map(int, found.groups())
        if 1 <= month <= 12:
            last = calendar.monthrange(year, month)[1]
            if 1 <= day <= last:
                return date(year, month, day)
            raise UserError(
                f"{name} = {value!r} is not a calendar day ({year}-{month:02d} has {last} days): "
                f"set {name} in the parameters cell to a real day, e.g. '{year}-{month:02d}-{last:02d}'"
            )
    raise UserError(
        f"{name} = {value!r} is not a day in YYYY-MM-DD form: set {name} in the parameters cell "
        "to one, e.g. '2025-03-08'"
    )


def parse_instant(value: object, name: str = "now") -> datetime | None:
    """A notebook parameter as a timestamp (ISO 8601); None / "" stay None; otherwise as ``parse_day``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise UserError(
            f"{name} = {value!r} is not an ISO timestamp: set {name} in the parameters cell to one, "
            "e.g. '2025-03-09T06:00:00+00:00', or to None for the current time"
        ) from None
