"""``coverage.*``: the share of a day's events without a page URL or a user agent (both feed
fct_sessions)."""

from __future__ import annotations

from puffy.dq.checks.context import CheckContext
from puffy.dq.checks.grading import counted, fmt_dates
from puffy.findings import Finding


def check_coverage(ctx: CheckContext) -> list[Finding]:
    """Share of a day's events without a page URL or a user agent (both feed fct_sessions)."""
    rules = ctx.rules.coverage
    events = ctx.per_day("events").to_dict()
    out = []
    for column, rule, feeds in (
        ("page_url", rules.page_url_null_rate, "landing pages, paths, UTMs, click ids and channels"),
        ("user_agent", rules.user_agent_null_rate, "bot filtering and device, browser and OS"),
    ):
        out.append(
            counted(
                ctx,
                f"coverage.{column}",
                f"Missing {column}",
                f"{column}_null_rate",
                rule,
                ctx.per_day(f"null_{column}").to_dict(),
                events,
                lambda n, span, ds, column=column, feeds=feeds: (
                    f"{n:,} event(s) ({span} of a day's) have no {column} ({fmt_dates(ds)}), so {feeds} are unknown "
                    f"for them"
                ),
                f"Every event has a {column}.",
                lambda ds, column=column: ctx.samples(
                    f"{column} IS NULL", "event_id, source_file, row_number, event_name", ds
                ),
            )
        )
    return out
