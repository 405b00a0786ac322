"""What every check works on: the ``CheckContext`` (the DuckDB connection with the staging tables and
the run's facts), the metric pass that fills it, and the gate's vocabulary (families, reject reasons).

``ingest`` leaves ``stg_events``, ``stg_purchase_items`` and ``stg_rejects`` on a DuckDB connection
(for the days in range plus up to ``baseline_days`` earlier ones). ``build_metrics`` makes one pass
over ``stg_events`` into a small per-day x event-name table (``dq_day_event``, see
``puffy.dq.metrics``: on the pipeline's engine, DuckDB or Spark); most checks grade that table, so
per-day work in Python is over a few hundred rows, never over events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from puffy.dq.metrics import compute_day_event
from puffy.dq.rules import DqRules
from puffy.findings import json_safe
from puffy.ingest import RawFile
from puffy.params import PipelineParams

# The check families, in the reports' order (a finding id is ``family.name``; one module each).
CHECK_ORDER = (
    "materiality",
    "ingest",
    "schema",
    "taxonomy",
    "timestamps",
    "client_id",
    "coverage",
    "duplicates",
    "payload",
    "volume",
    "bots",
    "referrer",
)
# Reject reasons that belong to a specific check (the rest are malformed CSV lines).
ROW_REJECTS = {
    "missing_timestamp": "timestamps",
    "unparseable_timestamp": "timestamps",
    "timestamp_outside_file_day": "timestamps",
    "missing_event_name": "taxonomy",
    "unknown_event_name": "taxonomy",
    "exact_duplicate": "duplicates",
    "unreadable_file": "schema",
}
# The gate's JSON keeps 6 decimals of a float (rates, ratios and sample values).
DIGITS = 6


@dataclass
class CheckContext:
    """Everything a check needs: the connection with the staging tables and the run's facts."""

    con: duckdb.DuckDBPyConnection
    rules: DqRules
    files: list[RawFile]  # every ingested file (baseline and in range), in date order
    lines_read: dict[str, int]
    days: list[date]  # days in range that have a file
    expected_days: list[date]  # calendar days in range
    now: datetime  # naive UTC
    engine_params: PipelineParams | None = None  # engine of the metric pass (default DuckDB)
    scratch_dir: Path | None = None  # where a Spark metric pass may write its input snapshot
    day_event: pd.DataFrame = field(default_factory=pd.DataFrame)  # filled by build_metrics
    rejects: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def first_day(self) -> date:
        """The period's first day (it may have no file)."""
        return self.expected_days[0]

    @property
    def range_files(self) -> list[RawFile]:
        return [f for f in self.files if f.file_date in set(self.days)]

    def file_of(self, day: str | date) -> str | None:
        day = date.fromisoformat(day) if isinstance(day, str) else day
        return next((f.name for f in self.files if f.file_date == day), None)

    def files_for(self, dates: Iterable[str]) -> list[str]:
        return [n for n in (self.file_of(d) for d in sorted(set(dates))) if n]

    def rows(self, sql: str, params: list | None = None) -> list[dict]:
        cur = self.con.execute(sql, params or [])
        cols = [c[0] for c in cur.description]
        return [{k: json_safe(v, DIGITS) for k, v in zip(cols, r)} for r in cur.fetchall()]

    def df(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def in_range(self, column: str = "file_date") -> str:
        return f"{column} >= DATE '{self.first_day.isoformat()}'"

    def samples(
        self, sql_where: str, columns: str, dates: list[str], table: str = "stg_events", order: str = "event_id"
    ) -> list[dict]:
        """Up to ``rules.sample_rows`` rows of ``table`` matching ``sql_where`` on ``dates``."""
        if not dates or not self.rules.sample_rows:
            return []
        days = ", ".join(f"DATE '{d}'" for d in sorted(set(dates)))
        return self.rows(
            f"SELECT {columns} FROM {table} WHERE ({sql_where}) AND file_date IN ({days}) "
            f"ORDER BY {order} LIMIT {self.rules.sample_rows}"
        )

    # Per-day series from the metrics table (all ingested days, baseline included).
    def per_day(self, column: str, event_name: str | None = None) -> pd.Series:
        t = self.day_event
        if event_name is not None:
            t = t[t.event_name == event_name]
        return t.groupby("file_date")[column].sum().astype(float)

    def lines_per_day(self) -> pd.Series:
        return pd.Series({f.file_date: float(self.lines_read.get(f.name, 0)) for f in self.files}, dtype=float)

    def rejects_per_day(self, reasons: Iterable[str]) -> pd.Series:
        r = self.rejects[self.rejects.reason.isin(list(reasons))]
        return r.groupby("file_date")["n"].sum().astype(float)

    def baseline(self, series: pd.Series, day: date) -> float | None:
        """Median of ``series`` over the trailing ``baseline_days`` before ``day`` (None if too few days)."""
        window = self.rules.baseline_days
        prior = series[(series.index < day) & (series.index >= day - timedelta(days=window))].dropna()
        return float(prior.median()) if len(prior) >= self.rules.min_baseline_days else None


def sql_str(value: str) -> str:
    """``value`` as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def register_user_agents(con: duckdb.DuckDBPyConnection) -> None:
    """``dq_user_agents(user_agent, is_bot, bot_name)``: each distinct user agent parsed once."""
    from puffy.useragent import parse_user_agents

    uas = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT user_agent FROM stg_events WHERE user_agent IS NOT NULL ORDER BY 1"
        ).fetchall()
    ]
    dim = parse_user_agents(uas)[["user_agent", "is_bot", "bot_name"]]
    # Typed explicitly: with no user agent at all (an empty file, no user_agent column) the frame
    # is empty and its columns would be typed NULL.
    con.execute("CREATE OR REPLACE TABLE dq_user_agents (user_agent VARCHAR, is_bot BOOLEAN, bot_name VARCHAR)")
    if len(dim):
        con.register("_dq_user_agents_df", dim)
        con.execute("INSERT INTO dq_user_agents SELECT user_agent, is_bot, bot_name FROM _dq_user_agents_df")
        con.unregister("_dq_user_agents_df")


def build_metrics(ctx: CheckContext) -> None:
    """The metric pass (``puffy.dq.metrics``, on the pipeline's engine) into ``ctx.day_event``, plus
    the rejects counts."""
    con = ctx.con
    register_user_agents(con)
    ctx.day_event = compute_day_event(con, ctx.rules, ctx.now, ctx.engine_params, ctx.scratch_dir)
    con.register("_dq_day_event_df", ctx.day_event)  # kept queryable on result.con, as documented
    con.execute("CREATE OR REPLACE TABLE dq_day_event AS SELECT * FROM _dq_day_event_df")
    con.unregister("_dq_day_event_df")
    ctx.rejects = con.execute("""
        SELECT file_date, source_file, reason, count(*) AS n FROM stg_rejects GROUP BY ALL ORDER BY ALL
    """).df()
    ctx.rejects["file_date"] = pd.to_datetime(ctx.rejects["file_date"]).dt.date
