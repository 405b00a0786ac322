"""``duplicates.*``: exact duplicate rows, same-key near-duplicates, and transaction ids on
more than one purchase (replayed, or reused by a different order)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from puffy.dq.checks.context import CheckContext, sql_str
from puffy.dq.checks.grading import counted, fmt_dates, graded, on_days, ratio_by_day
from puffy.findings import Finding


def check_duplicates(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.duplicates
    exact = counted(
        ctx,
        "duplicates.exact_row",
        "Exact duplicate rows",
        "exact_row_rate",
        rules.exact_row_rate,
        ctx.rejects_per_day(["exact_duplicate"]).to_dict(),
        ctx.lines_per_day().to_dict(),
        lambda n, span, ds: (
            f"{n:,} row(s) ({span} of a day's lines) are exact copies of an earlier row ({fmt_dates(ds)})"
        ),
        "No row is an exact copy of another.",
        lambda ds: ctx.samples(
            "reason = 'exact_duplicate'",
            "source_file, row_number, left(raw, 200) AS raw",
            ds,
            "stg_rejects",
            "file_date, row_number",
        ),
    )
    # A timestamp lies on its file's day, so same-key groups never span two files. Rows of one
    # group share their timestamp: only rows with a timestamp another row has (found by ingest)
    # are grouped, not all of them (at 50x 0.08 instead of 0.7 CPU-s).
    ctx.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE dq_same_key AS
        SELECT file_date, client_id, event_ts, event_name, count(*) AS n FROM stg_events
        WHERE client_id IS NOT NULL AND {ctx.in_range()}
          AND event_ts IN (SELECT event_ts FROM stg_shared_timestamps)
        GROUP BY ALL HAVING count(*) > 1
    """)
    same = ctx.df(
        "SELECT file_date, sum(n)::BIGINT AS n_rows, count(*) AS n_groups FROM dq_same_key GROUP BY 1 ORDER BY 1"
    )
    same["file_date"] = pd.to_datetime(same["file_date"]).dt.date
    rows = dict(zip(same.file_date, same.n_rows))
    groups = dict(zip(same.file_date, same.n_groups))

    def same_what(fl):
        ds = [date.fromisoformat(r["date"]) for r in fl]
        return (
            f"{sum(rows[d] for d in ds):,} rows in {sum(groups[d] for d in ds):,} group(s) share client, timestamp "
            f"and event name but differ in content {on_days(fl)}"
        )

    same_key = graded(
        ctx,
        "duplicates.same_key",
        "Same client, timestamp and event, different content",
        "same_key_rate",
        rules.same_key_rate,
        ratio_by_day(pd.Series(rows, dtype=float), ctx.per_day("events")),
        same_what,
        "No two events share client, timestamp and event name.",
        lambda ds: ctx.samples(
            "EXISTS (SELECT 1 FROM dq_same_key k WHERE k.client_id = stg_events.client_id "
            "AND k.event_ts = stg_events.event_ts AND k.event_name = stg_events.event_name)",
            "event_id, client_id, timestamp_raw, event_name, page_url",
            ds,
            order="client_id, event_ts, event_id",
        ),
    )
    return [exact, same_key, *_transaction_ids(ctx)]


def _transaction_ids(ctx: CheckContext) -> list[Finding]:
    """Transaction ids on more than one purchase: replay (same client and payload) or collision."""
    rules, purchase = ctx.rules.duplicates, sql_str(ctx.rules.contract.purchase_event)
    ctx.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE dq_repeated_transactions AS
        SELECT transaction_id,
               count(DISTINCT coalesce(client_id, '')) = 1 AND count(DISTINCT event_data) = 1 AS replay
        FROM stg_events WHERE event_name = {purchase} AND transaction_id IS NOT NULL
        GROUP BY 1 HAVING count(*) > 1
    """)
    per_day = ctx.df(f"""
        SELECT e.file_date, r.replay, count(*) AS events, count(DISTINCT e.transaction_id) AS ids
        FROM stg_events e JOIN dq_repeated_transactions r USING (transaction_id)
        WHERE e.event_name = {purchase} AND {ctx.in_range("e.file_date")} GROUP BY ALL
    """)
    per_day["file_date"] = pd.to_datetime(per_day["file_date"]).dt.date
    purchases = ctx.per_day("events", ctx.rules.contract.purchase_event).to_dict()
    out = []
    for replay, fid, title, rule, what in (
        (
            True,
            "duplicates.transaction_id_replay",
            "Transaction id replayed (same client and payload)",
            rules.transaction_id_replay_rate,
            "replayed: the same client sent the same order payload again",
        ),
        (
            False,
            "duplicates.transaction_id_collision",
            "Transaction id reused by a different order",
            rules.transaction_id_collision_rate,
            "reused by different orders (another client or another payload)",
        ),
    ):
        part = per_day[per_day.replay == replay]
        ids = ctx.con.execute(f"""
            SELECT count(DISTINCT e.transaction_id) FROM stg_events e
            JOIN dq_repeated_transactions r USING (transaction_id)
            WHERE r.replay = {replay} AND e.event_name = {purchase} AND {ctx.in_range("e.file_date")}
        """).fetchone()[0]
        out.append(
            counted(
                ctx,
                fid,
                title,
                f"{'replay' if replay else 'collision'}_event_rate",
                rule,
                part.groupby("file_date")["events"].sum().to_dict(),
                purchases,
                lambda n, span, dates, ids=ids, what=what: (
                    f"{ids:,} transaction id(s) on {n:,} {ctx.rules.contract.purchase_event} events "
                    f"({span} of a day's orders) are {what} ({fmt_dates(dates)})"
                ),
                "Every transaction id belongs to one order event.",
                lambda ds, replay=replay: ctx.samples(
                    f"transaction_id IN (SELECT transaction_id FROM dq_repeated_transactions WHERE replay = {replay})",
                    "event_id, transaction_id, client_id, revenue, user_email",
                    ds,
                    order="transaction_id, event_id",
                ),
            )
        )
    return out
