"""Daily metric history read from the warehouse partitions, columnar and cheap.

Monitoring compares the run date with the days before it, so it needs a small table of daily
metrics (sessions, orders, revenue, funnel counts, …) over a trailing window. It is recomputed from
the partitions on every run: DuckDB reads only the columns each metric needs straight from the
Parquet files (row counts come from the Parquet footers without reading data), so the cost grows
with the window, not with the whole history, and stays small at 100x volume.

Which partition is read for a date (``Sources.files``):

* the run date itself: only the *audited* warehouse (``warehouse_dir``, the staging warehouse of
  this run) — what is about to be published is what gets checked;
* earlier dates: the union of the published history (``history_dir``) and the audited warehouse,
  the audited partition winning for a date present in both (a re-run replaces a day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from puffy.dates import date_range
from puffy.storage import is_remote_location, register_duckdb
from puffy.warehouse import partition_dates, partition_dir

#: Metrics the trend monitor can watch (columns of ``daily_metrics``).
TREND_METRICS: tuple[str, ...] = (
    "sessions",
    "orders",
    "revenue",
    "conversion_rate",
    "aov",
    "client_id_null_rate",
    "bot_share",
    "returning_visitor_share",
    "untracked_order_share",
    "untracked_revenue_share",
    "rows_fct_sessions",
    "rows_fct_orders",
    "rows_fct_attribution",
)

#: Funnel stages, widest first; each is a count of the day's non-bot sessions.
FUNNEL_STAGES: tuple[str, ...] = ("sessions", "viewed_product", "added_to_cart", "started_checkout", "purchased")

SESSIONS, ORDERS, ATTRIBUTION = "fct_sessions", "fct_orders", "fct_attribution"
REJECTS, RECONCILIATION, STG_EVENTS = "fct_order_rejects", "rpt_reconciliation", "stg_events"

# The partition date from the file path: the last ``date=YYYY-MM-DD`` directory, just above the file
# (or above its ``v-<publish id>/`` version in an object-store warehouse, puffy.publish).
_DATE_SQL = r"CAST(regexp_extract(filename, 'date=(\d{4}-\d{2}-\d{2})[/\\](?:v-[^/\\]+[/\\])?[^/\\]*$', 1) AS DATE)"


@dataclass(frozen=True)
class Sources:
    """Where monitoring reads: the audited warehouse, the published history and staged events."""

    warehouse_dir: Path
    history_dir: Path
    intermediate_dir: Path | None
    run_date: date

    def files(self, table: str, start: date, end: date | None = None) -> dict[date, Path]:
        """Partition file per date in [start, end] (end defaults to the run date); see module doc."""
        end = min(end or self.run_date, self.run_date)
        out: dict[date, Path] = {}
        for root in (self.history_dir, self.warehouse_dir):  # later roots override earlier ones
            for d, file in _partition_files(root, table).items():
                if start <= d <= end and d < self.run_date:
                    out[d] = file
        if start <= self.run_date <= end:
            day_file = self.audited_file(table)
            if day_file is not None:
                out[self.run_date] = day_file
        return dict(sorted(out.items()))

    def audited_file(self, table: str, day: date | None = None) -> Path | None:
        """The audited warehouse's partition file of ``table`` for ``day`` (the run date), if any."""
        path = partition_dir(self.warehouse_dir, table, day or self.run_date) / "part-0.parquet"
        return path if path.exists() else None

    def staged_event_files(self, start: date, end: date | None = None) -> dict[date, Path]:
        """``stg_events`` partitions in [start, end]; empty when no intermediate dir is known."""
        if self.intermediate_dir is None:
            return {}
        end = min(end or self.run_date, self.run_date)
        return {
            d: partition_dir(self.intermediate_dir, STG_EVENTS, d) / "part-0.parquet"
            for d in partition_dates(self.intermediate_dir, STG_EVENTS)
            if start <= d <= end
        }


def _partition_files(root, table: str) -> dict:
    """The partition file of each date of ``table`` under ``root``; in an object-store warehouse the
    URIs its publish manifest names (one read of the manifest)."""
    if is_remote_location(root):
        from puffy.publish import read_manifest

        manifest = read_manifest(root)
        return {d: manifest.files(table, [d])[0] for d in manifest.dates(table)}
    return {d: partition_dir(root, table, d) / "part-0.parquet" for d in partition_dates(root, table)}


def connect() -> duckdb.DuckDBPyConnection:
    """A small in-memory DuckDB for the metric queries."""
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    return con


def scan_sql(files: dict[date, Path] | list[Path]) -> str:
    """``FROM`` clause reading the given partition files with their partition date as ``d``.

    Only the columns a query names are read: DuckDB prunes Parquet columns.
    """
    paths = [str(p) for p in (files.values() if isinstance(files, dict) else files)]
    listing = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    return (
        f"(SELECT {_DATE_SQL} AS d, * EXCLUDE (filename) "
        f"FROM read_parquet([{listing}], filename = true, union_by_name = true))"
    )


def query(con: duckdb.DuckDBPyConnection, files: dict[date, Path] | list[Path], sql: str) -> pd.DataFrame:
    """Run ``sql`` with ``{t}`` replaced by the scan of ``files``; empty frame for no files."""
    if not files:
        return pd.DataFrame()
    remote = [p for p in (files.values() if isinstance(files, dict) else files) if is_remote_location(p)]
    if remote:  # a published history in object storage
        register_duckdb(con, *remote)
    return con.execute(sql.format(t=scan_sql(files))).df()


def row_counts(files: dict[date, Path]) -> pd.Series:
    """Rows per partition from the Parquet footers (no data pages are read)."""
    return pd.Series({d: pq.ParquetFile(p).metadata.num_rows for d, p in files.items()}, dtype="float64")


def _by_date(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    df["d"] = pd.to_datetime(df["d"]).dt.date
    return df.set_index("d")


def session_metrics(con, files: dict[date, Path]) -> pd.DataFrame:
    """Per date: non-bot sessions and funnel stage counts, bot sessions, returning non-bot sessions."""
    return _by_date(
        query(
            con,
            files,
            """
        SELECT d,
               count(*) FILTER (WHERE NOT coalesce(is_bot, false)) AS sessions,
               count(*) FILTER (WHERE NOT coalesce(is_bot, false) AND viewed_product) AS viewed_product,
               count(*) FILTER (WHERE NOT coalesce(is_bot, false) AND added_to_cart) AS added_to_cart,
               count(*) FILTER (WHERE NOT coalesce(is_bot, false) AND started_checkout) AS started_checkout,
               count(*) FILTER (WHERE NOT coalesce(is_bot, false) AND purchased) AS purchased,
               count(*) FILTER (WHERE coalesce(is_bot, false)) AS bot_sessions,
               count(*) FILTER (WHERE NOT coalesce(is_bot, false) AND is_returning_client) AS returning_sessions
        FROM {t} GROUP BY d""",
        )
    )


def order_metrics(con, files: dict[date, Path]) -> pd.DataFrame:
    """Per date: orders, revenue, the sum of squared order revenues (order-value spread), orders without
    a session, and orders / revenue whose journey is untracked (``journey_status``; NULL in
    partitions written before it existed)."""
    columns = _columns_of(files)
    untracked = "journey_status = 'untracked'" if "journey_status" in columns else "NULL"
    return _by_date(
        query(
            con,
            files,
            f"""
        SELECT d, count(*) AS orders, coalesce(sum(revenue), 0) AS revenue,
               coalesce(sum(revenue * revenue), 0) AS revenue_squares,
               count(*) FILTER (WHERE session_id IS NULL) AS orders_without_session,
               CASE WHEN bool_or({untracked} IS NOT NULL) THEN count(*) FILTER (WHERE {untracked}) END
                   AS untracked_orders,
               CASE WHEN bool_or({untracked} IS NOT NULL)
                    THEN coalesce(sum(revenue) FILTER (WHERE {untracked}), 0) END AS untracked_revenue
        FROM {{t}} GROUP BY d""",
        )
    )


def reject_metrics(con, files: dict[date, Path]) -> pd.DataFrame:
    """Per date: rejected purchases and how many of them had revenue exactly 0."""
    return _by_date(
        query(
            con,
            files,
            """
        SELECT d, count(*) AS order_rejects, count(*) FILTER (WHERE revenue = 0) AS zero_revenue_purchases,
               coalesce(sum(revenue), 0) AS rejected_revenue
        FROM {t} GROUP BY d""",
        )
    )


def event_metrics(con, files: dict[date, Path], purchase_event: str) -> pd.DataFrame:
    """Per date from ``stg_events``: events, client-id null rate, bot share, raw purchase revenue.

    Bots are recognised by ``puffy.useragent.parse_user_agents`` over the DISTINCT user agents of
    the window (a few thousand strings, parsed once each), joined back inside DuckDB.
    """
    if not files:
        return pd.DataFrame()
    from puffy.useragent import parse_user_agents

    uas = query(con, files, "SELECT DISTINCT user_agent FROM {t} WHERE user_agent IS NOT NULL")
    dim = parse_user_agents(uas["user_agent"].tolist())[["user_agent", "is_bot"]]
    con.register("_ua_dim", dim)
    try:
        return _by_date(
            con.execute(
                f"""
            SELECT e.d, count(*) AS events,
                   avg(CASE WHEN e.client_id IS NULL THEN 1.0 ELSE 0.0 END) AS client_id_null_rate,
                   avg(CASE WHEN coalesce(u.is_bot, false) THEN 1.0 ELSE 0.0 END) AS bot_share,
                   count(*) FILTER (WHERE e.event_name = ?) AS raw_purchases,
                   coalesce(sum(e.revenue) FILTER (WHERE e.event_name = ?), 0) AS raw_purchase_revenue
            FROM {scan_sql(files)} e LEFT JOIN _ua_dim u ON e.user_agent = u.user_agent
            GROUP BY e.d""",
                [purchase_event, purchase_event],
            ).df()
        )
    finally:
        con.unregister("_ua_dim")


def daily_metrics(
    sources: Sources,
    start: date,
    purchase_event: str = "checkout_completed",
    con: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """One row per date in [start, run date] with every daily metric (NaN where unknown).

    Columns: the ``TREND_METRICS``, the funnel stage counts, orders_without_session,
    order_rejects, zero_revenue_purchases, rejected_revenue, events, raw_purchases,
    raw_purchase_revenue. Dates with no partition at all keep a row of NaN, so gaps stay visible;
    the frame starts at the first date with any data (and always ends with the run date).
    """
    con = con or connect()
    session_files = sources.files(SESSIONS, start)
    order_files = sources.files(ORDERS, start)
    attribution_files = sources.files(ATTRIBUTION, start)
    reject_files = sources.files(REJECTS, start)
    parts = [
        session_metrics(con, session_files),
        order_metrics(con, order_files),
        reject_metrics(con, reject_files),
        event_metrics(con, sources.staged_event_files(start), purchase_event),
    ]
    days = pd.Index(date_range(start, sources.run_date), name="date")
    out = pd.DataFrame(index=days)
    for part in parts:
        if not part.empty:
            out = out.join(part.astype("float64"), how="left")
    out["rows_fct_sessions"] = row_counts(session_files)
    out["rows_fct_orders"] = row_counts(order_files)
    out["rows_fct_attribution"] = row_counts(attribution_files)
    for col in (
        "sessions",
        *FUNNEL_STAGES[1:],
        "bot_sessions",
        "returning_sessions",
        "orders",
        "revenue_squares",
        "untracked_orders",
        "untracked_revenue",
        "revenue",
        "orders_without_session",
        "order_rejects",
        "zero_revenue_purchases",
        "rejected_revenue",
        "events",
        "client_id_null_rate",
        "bot_share",
        "raw_purchases",
        "raw_purchase_revenue",
    ):
        if col not in out:
            out[col] = np.nan
    # An existing but empty partition means zero (no orders that day), not unknown: GROUP BY
    # returns no row for it, so fill those dates in.
    for files, cols in (
        (session_files, FUNNEL_STAGES + ("bot_sessions", "returning_sessions")),
        (order_files, ("orders", "revenue", "revenue_squares", "orders_without_session")),
        (reject_files, ("order_rejects", "zero_revenue_purchases", "rejected_revenue")),
    ):
        present = out.index.isin(list(files))
        for col in cols:
            out.loc[present, col] = out.loc[present, col].fillna(0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["conversion_rate"] = out["purchased"] / out["sessions"].where(out["sessions"] > 0)
        out["aov"] = out["revenue"] / out["orders"].where(out["orders"] > 0)
        out["returning_visitor_share"] = out["returning_sessions"] / out["sessions"].where(out["sessions"] > 0)
        out["untracked_order_share"] = out["untracked_orders"] / out["orders"].where(out["orders"] > 0)
        out["untracked_revenue_share"] = out["untracked_revenue"] / out["revenue"].where(out["revenue"] > 0)
    # Days before the first partition of any table are not history, just the empty start of the window.
    known = out.notna().any(axis=1)
    first = known.idxmax() if known.any() else sources.run_date
    return out.loc[out.index >= first]


def session_channel_counts(sources: Sources, start: date, con=None) -> pd.DataFrame:
    """Non-bot sessions per (date, channel): columns d, channel, value, and by_referrer (those of
    them with a referrer and no campaign tag: the channel was read off the referrer alone)."""
    con = con or connect()
    files = sources.files(SESSIONS, start)
    columns = _columns_of(files)
    by_referrer = (
        "count(*) FILTER (WHERE entry_referrer IS NOT NULL AND NOT coalesce(has_marketing_params, false))"
        if {"entry_referrer", "has_marketing_params"} <= columns
        else "0"
    )
    df = query(
        con,
        files,
        f"""
        SELECT d, coalesce(channel, '(none)') AS channel, count(*)::DOUBLE AS value,
               {by_referrer}::DOUBLE AS by_referrer
        FROM {{t}} WHERE NOT coalesce(is_bot, false) GROUP BY ALL ORDER BY d, channel""",
    )
    return _long(df)


def click_id_landings(sources: Sources, start: date, click_ids: list[str], con=None) -> pd.DataFrame:
    """Non-bot sessions landing with each click id per (date, click id): columns d, channel, value.

    ``channel`` holds the click id's name (e.g. 'gclid'), so the frame reads like the channel counts.
    Click-id columns absent from a partition count as 0.
    """
    con = con or connect()
    files = sources.files(SESSIONS, start)
    present = _columns_of(files)
    ids = [c for c in click_ids if c in present]
    if not ids:
        return _long(pd.DataFrame())
    counts = ", ".join(f"count(*) FILTER (WHERE {c} IS NOT NULL)::DOUBLE AS {c}" for c in ids)
    df = query(con, files, f"SELECT d, {counts} FROM {{t}} WHERE NOT coalesce(is_bot, false) GROUP BY d ORDER BY d")
    return _long(df.melt(id_vars="d", var_name="channel", value_name="value"))


def attributed_channel_revenue(sources: Sources, start: date, model: str, con=None) -> pd.DataFrame:
    """Attributed revenue and orders (sum of credit) per (date, channel) for one model.

    Columns d, channel, value (revenue), orders.
    """
    con = con or connect()
    df = query(
        con,
        sources.files(ATTRIBUTION, start),
        f"""
        SELECT d, coalesce(channel, '(none)') AS channel, coalesce(sum(attributed_revenue), 0) AS value,
               coalesce(sum(credit), 0) AS orders
        FROM {{t}} WHERE model = '{model.replace("'", "''")}' GROUP BY ALL ORDER BY d, channel""",
    )
    return _long(df)


def _long(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return pd.DataFrame(columns=["d", "channel", "value", "orders"])
    df["d"] = pd.to_datetime(df["d"]).dt.date
    return df


# --- the run date's own tables (small: one day) ---------------------------------------------------


@dataclass
class DayTables:
    """What the integrity monitors read for the run date (None = partition absent)."""

    orders: pd.DataFrame | None
    order_key_history: pd.DataFrame  # order_key, transaction_id, d for earlier days in the window
    rejects: pd.DataFrame | None
    attribution_totals: pd.DataFrame | None  # model, orders, attributed_revenue, min_attributed_revenue
    reconciliation: pd.DataFrame | None
    raw_purchase_revenue: float | None


_ORDER_COLUMNS = (
    "order_key",
    "transaction_id",
    "revenue",
    "session_id",
    "is_transaction_id_collision",
    "has_missing_item_prices",
)


def _columns(path: Path) -> list[str]:
    return pq.read_schema(path).names


def _columns_of(files: dict[date, Path]) -> set[str]:
    """Every column any of ``files`` has (older partitions may lack the newer columns)."""
    return set().union(*(_columns(p) for p in files.values()))


def read_day_tables(sources: Sources, start: date, purchase_event: str, con=None) -> DayTables:
    """Load the run date's orders, rejects, attribution totals and reconciliation report."""
    con = con or connect()
    orders_file = sources.audited_file(ORDERS)
    orders = None
    if orders_file is not None:
        cols = [c for c in _ORDER_COLUMNS if c in _columns(orders_file)]
        orders = pq.read_table(orders_file, columns=cols).to_pandas()
    history_files = {d: p for d, p in sources.files(ORDERS, start).items() if d < sources.run_date}
    history = query(con, history_files, "SELECT d, order_key, transaction_id FROM {t}")
    rejects_file = sources.audited_file(REJECTS)
    rejects = None
    if rejects_file is not None:
        cols = [c for c in ("order_key", "transaction_id", "reason", "revenue") if c in _columns(rejects_file)]
        rejects = pq.read_table(rejects_file, columns=cols).to_pandas()
    attribution_file = sources.audited_file(ATTRIBUTION)
    totals = None
    if attribution_file is not None:
        totals = query(
            con,
            [attribution_file],
            """
            SELECT model, count(DISTINCT order_key) AS orders,
                   coalesce(sum(attributed_revenue), 0) AS attributed_revenue,
                   min(attributed_revenue) AS min_attributed_revenue
            FROM {t} GROUP BY model ORDER BY model""",
        )
    recon_file = sources.audited_file(RECONCILIATION)
    recon = pq.read_table(recon_file).to_pandas() if recon_file is not None else None
    raw = None
    events = sources.staged_event_files(sources.run_date)
    if sources.run_date in events:
        raw = float(
            con.execute(
                f"SELECT coalesce(sum(revenue), 0) FROM {scan_sql([events[sources.run_date]])} WHERE event_name = ?",
                [purchase_event],
            ).fetchone()[0]
        )
    return DayTables(orders, history, rejects, totals, recon, raw)


def infer_intermediate_dir(warehouse_dir: Path) -> Path | None:
    """``<outputs>/intermediate`` next to ``<outputs>/warehouse`` (what ``puffy transform`` writes)."""
    candidate = Path(warehouse_dir).parent / "intermediate"
    return candidate if (candidate / STG_EVENTS).is_dir() else None
