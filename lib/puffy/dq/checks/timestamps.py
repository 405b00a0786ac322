"""``timestamps.*``: unparseable or out-of-day timestamps, timestamps in the future, files not
sorted by time, and hours without events at a day's start or end."""

from __future__ import annotations

from datetime import datetime, timedelta

from puffy.dq.checks.context import CheckContext, sql_str
from puffy.dq.checks.grading import counted, day_notes, fixed, fmt_dates, graded
from puffy.findings import Finding


def check_timestamps(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.timestamps
    lines = ctx.lines_per_day().to_dict()

    def rejects(fid, title, metric, rule, reasons, phrase, quiet):
        return counted(
            ctx,
            fid,
            title,
            metric,
            rule,
            ctx.rejects_per_day(reasons).to_dict(),
            lines,
            lambda n, span, ds: f"{n:,} row(s) ({span} of a day's rows) have {phrase} ({fmt_dates(ds)})",
            quiet,
            lambda ds: ctx.samples(
                f"reason IN ({', '.join(sql_str(r) for r in reasons)})",
                "source_file, row_number, reason, detail",
                ds,
                "stg_rejects",
                "file_date, row_number",
            ),
        )

    out = [
        rejects(
            "timestamps.unparseable",
            "Missing or unparseable timestamps",
            "unparseable_rate",
            rules.unparseable_rate,
            ["missing_timestamp", "unparseable_timestamp"],
            "a missing or unparseable timestamp",
            "Every timestamp parses.",
        ),
        rejects(
            "timestamps.outside_file_day",
            "Timestamps outside the file's UTC day",
            "outside_file_day_rate",
            rules.outside_file_day_rate,
            ["timestamp_outside_file_day"],
            "a timestamp outside the file's UTC day",
            "Every timestamp falls on its file's UTC day.",
        ),
    ]
    # Every parsed row counts, rejected ones too: a row stamped in 2031 inside a 2025 file is
    # rejected as outside its day, and it still says the source's clock is broken.
    future = (
        f"event_ts > TIMESTAMP '{(ctx.now + timedelta(minutes=rules.future_tolerance_minutes)).isoformat(sep=' ')}'"
    )
    future_rows = dict(
        ctx.con.execute(
            f"SELECT file_date, count(*) FROM stg_events_all WHERE {future} AND {ctx.in_range()} GROUP BY 1"
        ).fetchall()
    )
    out.append(
        counted(
            ctx,
            "timestamps.future",
            "Timestamps in the future",
            "future_rate",
            rules.future_rate,
            future_rows,
            lines,
            lambda n, span, ds: (
                f"{n:,} row(s) ({span} of a day's rows) are stamped after the run time "
                f"{ctx.now.isoformat(timespec='seconds')}Z ({fmt_dates(ds)})"
            ),
            "No timestamp is in the future.",
            lambda ds: ctx.samples(future, "event_id, source_file, row_number, timestamp_raw", ds, "stg_events_all"),
        )
    )
    unsorted = ctx.con.execute(f"""
        SELECT file_date, count(*) FILTER (WHERE event_ts < prev_ts) AS n
        FROM (SELECT file_date, event_ts, lag(event_ts) OVER (PARTITION BY file_date ORDER BY row_number) AS prev_ts
              FROM stg_events WHERE {ctx.in_range()})
        GROUP BY 1 HAVING n > 0 ORDER BY 1
    """).fetchall()
    out.append(
        fixed(
            ctx,
            "timestamps.unsorted",
            "File not sorted by timestamp",
            "out_of_order_rows",
            rules.unsorted,
            [d.isoformat() for d, _ in unsorted],
            sum(n for _, n in unsorted),
            "Rows go back in time " + ", ".join(f"{n:,} times in {ctx.file_of(d)}" for d, n in unsorted),
            "Every file is sorted by timestamp.",
        )
    )
    out.append(_day_coverage(ctx))
    return out


def _day_coverage(ctx: CheckContext) -> Finding:
    """The longer edge of each day without events: before its first event or after its last."""
    rules = ctx.rules.timestamps
    edges = ctx.con.execute(f"""
        SELECT file_date, min(event_ts), max(event_ts) FROM stg_events WHERE {ctx.in_range()}
        GROUP BY 1 HAVING count(*) >= {int(rules.edge_gap_min_events)}
    """).fetchall()
    hours, notes = {}, {}
    for day, first, last in edges:
        start = datetime.combine(day, datetime.min.time())
        head, tail = (first - start).total_seconds() / 3600, (start + timedelta(days=1) - last).total_seconds() / 3600
        hours[day] = max(head, tail)
        notes[day] = (
            f"{day}: no event after {last:%H:%M} UTC ({tail:.1f} h before the day ends)"
            if tail >= head
            else f"{day}: no event before {first:%H:%M} UTC ({head:.1f} h into the day)"
        )
    return graded(
        ctx,
        "timestamps.day_coverage",
        "Hours without events at the start or end of a day",
        "edge_gap_hours",
        rules.edge_gap_hours,
        hours,
        lambda fl: "The day's events do not span it: " + day_notes(fl, notes),
        "Every day's events run from its start to its end.",
    )
