"""``bots.*``: the share of events from bot user agents, and bots in the checkout funnel."""

from __future__ import annotations

from datetime import date

from puffy.dq.checks.context import CheckContext, sql_str
from puffy.dq.checks.grading import counted, fmt_dates, graded
from puffy.findings import Finding


def check_bots(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.bots
    share = counted(
        ctx,
        "bots.share",
        "Bot traffic",
        "bot_share",
        rules.share,
        ctx.per_day("bot_events").to_dict(),
        ctx.per_day("events").to_dict(),
        lambda n, span, ds: f"{n:,} events ({span} of a day's) come from bot user agents ({fmt_dates(ds)})",
        "Bot traffic is below the warning level.",
        lambda ds: ctx.rows(f"""
            SELECT u.bot_name, count(*) AS events FROM stg_events e JOIN dq_user_agents u USING (user_agent)
            WHERE u.is_bot AND file_date IN ({", ".join(f"DATE '{d}'" for d in ds)})
            GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {ctx.rules.sample_rows}"""),
    )
    contract = ctx.rules.contract
    checkout_events = (
        rules.checkout_events
        if rules.checkout_events is not None
        else [contract.checkout_started_event, contract.purchase_event]
    )
    names = ", ".join(sql_str(n) for n in checkout_events) or "NULL"
    t = ctx.day_event[ctx.day_event.event_name.isin(checkout_events)]

    def checkout_what(flagged: list[dict]) -> str:
        days = {date.fromisoformat(r["date"]) for r in flagged}
        by_event = t[t.file_date.isin(days)].groupby("event_name")["bot_events"].sum()
        sent = ", ".join(f"{int(n):,} {name}" for name, n in by_event.items() if n)
        return f"Bot user agents sent {sent} event(s) ({fmt_dates(r['date'] for r in flagged)})"

    checkout = graded(
        ctx,
        "bots.checkout_events",
        "Bots in the checkout funnel",
        "bot_checkout_events",
        rules.checkout_event_count,
        t.groupby("file_date")["bot_events"].sum().to_dict(),
        checkout_what,
        "No bot reached the checkout.",
        lambda ds: ctx.samples(
            f"user_agent IN (SELECT user_agent FROM dq_user_agents WHERE is_bot) AND event_name IN ({names})",
            "event_id, event_name, client_id, left(user_agent, 120) AS user_agent",
            ds,
        ),
    )
    return [share, checkout]
