"""Inputs of the executive summary: the period, the period's tables and findings.

Everything the report shows is read here and nowhere else:

* ``params/report.yaml`` → :class:`~puffy.report.params.ReportParams` (validated in ``puffy.report.params``);
* the period (:func:`resolve_period`): explicit dates, or the last ``period_days`` days present in
  the warehouse; a period the warehouse cannot serve is a :class:`~puffy.errors.UserError`;
* the period's partitions of ``fct_sessions``, ``fct_orders``, ``fct_order_items`` and
  ``fct_attribution`` (:func:`load_period`) in the published warehouse (``Layout.warehouse``: a
  local directory or object storage, see :func:`pin_warehouse`): DuckDB reads only the columns the
  report uses, straight from the Parquet files (object storage through ``puffy.storage``), and hands
  pandas frames over;
* the daily runs' ``dq_report.json`` / ``monitoring_report.json`` findings (:func:`load_findings`)
  and, when the intermediate layer is still there, the page views' client-id null share
  (:func:`client_id_null_share`), which the data caveats quantify.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from puffy.dates import date_range
from puffy.errors import UserError
from puffy.findings import normalise_status
from puffy.publish import Manifest, read_manifest
from puffy.report.params import ReportParams, load_report_params  # noqa: F401 (re-exported)
from puffy.storage import Location, duckdb_filesystem, is_remote_location, register_duckdb
from puffy.warehouse import partition_dates, partition_files

#: A published warehouse as the report reads it: a local directory, or the manifest of an
#: object-store warehouse read once (``pin_warehouse``).
Warehouse = Path | Manifest

# The columns the report reads, per table. A column missing from an older partition is read as
# NULL (``union_by_name``), one missing from every partition is added as an all-NULL column, so a
# schema that grew over time never breaks the report.
SESSION_COLUMNS = (
    "session_id",
    "session_date",
    "session_start",
    "channel",
    "device_type",
    "is_bot",
    "is_returning_client",
    "viewed_product",
    "added_to_cart",
    "started_checkout",
    "purchased",
    "n_orders",
    "revenue",
)
ORDER_COLUMNS = (
    "order_key",
    "order_date",
    "order_ts",
    "session_id",
    "revenue",
    "item_count",
    "quantity",
    "has_missing_item_prices",
    "is_transaction_id_collision",
    "transaction_variant",
    "is_bot",
    "journey_status",
    "touchpoint_count",
)
ITEM_COLUMNS = ("order_key", "line_number", "item_id", "item_name", "item_variant", "quantity", "item_price")
ATTRIBUTION_COLUMNS = ("order_key", "model", "channel", "credit", "attributed_revenue", "is_unattributed")
REJECT_COLUMNS = ("order_key", "reason", "revenue")
CREDIT_COLUMNS = (
    "order_date",
    "identity",
    "model",
    "channel",
    "orders_credited",
    "attributed_revenue",
    "is_configured",
)

SESSIONS, ORDERS, ITEMS, ATTRIBUTION, REJECTS, CREDIT = (
    "fct_sessions",
    "fct_orders",
    "fct_order_items",
    "fct_attribution",
    "fct_order_rejects",
    "rpt_channel_credit",
)

# --- the period ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The analysed dates and the previous period of equal length (when the warehouse has it)."""

    start: date
    end: date
    available: tuple[date, ...]  # dates of the period with an fct_sessions partition
    previous_start: date
    previous_end: date
    previous_available: tuple[date, ...]  # dates of the previous period with a partition
    has_previous: bool  # enough previous days to compare (see params)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def missing(self) -> list[date]:
        """Calendar days of the period with no fct_sessions partition."""
        have = set(self.available)
        return [d for d in date_range(self.start, self.end) if d not in have]

    @property
    def label(self) -> str:
        """``<start>_<end>``: the report folder name."""
        return f"{self.start.isoformat()}_{self.end.isoformat()}"


def _as_date(value, what: str) -> date | None:
    """Accept a date, an ISO string or None (notebook parameters arrive as strings)."""
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise UserError(f"{what} '{value}' is not a date in YYYY-MM-DD form") from None


def pin_warehouse(root: Path | Location | Manifest) -> Warehouse:
    """The published warehouse to read: a local directory as it is; an object-store one as its publish
    manifest, read once, so that every table of the report comes from the same published state (a
    publish committing while the report reads cannot give it one table's old day and another's new
    one; the files a manifest names stay readable for the publish protocol's grace period)."""
    if isinstance(root, Manifest):
        return root
    return read_manifest(root) if is_remote_location(root) else Path(root)


def _dates(warehouse: Warehouse, table: str) -> list[date]:
    return warehouse.dates(table) if isinstance(warehouse, Manifest) else partition_dates(warehouse, table)


def _files(warehouse: Warehouse, table: str, days: list[date]) -> list[str]:
    return warehouse.files(table, days) if isinstance(warehouse, Manifest) else partition_files(warehouse, table, days)


def _where(warehouse: Warehouse) -> str:
    return str(warehouse.root if isinstance(warehouse, Manifest) else warehouse)


def resolve_period(
    warehouse_root: Path | Location | Manifest,
    start=None,
    end=None,
    period_days: int = 14,
    min_previous_coverage: float = 1.0,
) -> Period:
    """The period to analyse; ``UserError`` (one line) when the warehouse cannot serve it.

    Defaults: ``end`` = the last date with an ``fct_sessions`` partition, ``start`` = ``end`` minus
    ``period_days - 1`` days, clipped to the first date available (so a young warehouse gives a
    shorter period rather than an error). With only ``start`` given, the period runs
    ``period_days`` days from it, clipped to the last date available.
    """
    start, end = _as_date(start, "start date"), _as_date(end, "end date")
    warehouse = pin_warehouse(warehouse_root)
    dates = _dates(warehouse, SESSIONS)
    if not dates:
        raise UserError(
            f"{_where(warehouse)}: the warehouse has no {SESSIONS} partitions yet "
            f"(run `puffy run` or `puffy demo` first; to summarise what notebook 02_transform "
            f"built without publishing it, set warehouse_dir 'outputs/staging/warehouse' in the notebook or "
            f"run `puffy report --warehouse-dir outputs/staging/warehouse`)"
        )
    first, last = dates[0], dates[-1]
    if start is not None and end is not None and end < start:
        raise UserError(f"end date {end} is before start date {start}")
    if end is None:
        end = min(last, start + timedelta(days=period_days - 1)) if start is not None else last
    if start is None:
        start = max(first, end - timedelta(days=period_days - 1))
    available = tuple(d for d in dates if start <= d <= end)
    if not available:
        raise UserError(f"no {SESSIONS} data between {start} and {end}; the warehouse holds {first} to {last}")
    length = (end - start).days + 1
    prev_end = start - timedelta(days=1)
    prev_start = prev_end - timedelta(days=length - 1)
    prev_available = tuple(d for d in dates if prev_start <= d <= prev_end)
    has_previous = len(prev_available) >= max(1, round(min_previous_coverage * length))
    return Period(start, end, available, prev_start, prev_end, prev_available, has_previous)


# --- tables -------------------------------------------------------------------------------------


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _column_names(file: str) -> list[str]:
    """The columns of a Parquet file, from its footer only (local, or object storage through
    ``puffy.storage``'s filesystem for DuckDB, which fetches the footer with ranged reads)."""
    if not is_remote_location(file):
        return pq.read_schema(file).names
    loc = Location.parse(file)
    with duckdb_filesystem(loc.protocol).open(loc.fs_path, "rb") as fh:
        return pq.read_schema(fh).names


def read_table(
    warehouse_root: Path | Location | Manifest,
    table: str,
    days: list[date],
    columns: tuple[str, ...],
    where: str | None = None,
) -> pd.DataFrame:
    """The ``columns`` of ``table`` for ``days`` as pandas; an empty frame with those columns when
    no partition exists. ``where`` is an optional SQL filter on those columns."""
    files, present = [], set()
    for f in _files(pin_warehouse(warehouse_root), table, list(days)):
        names = _column_names(f)  # the footer only: which of the wanted columns exist
        if names:  # a partition written without any column holds nothing to read
            files.append(f)
            present.update(names)
    if not files:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    select = ", ".join(f'"{c}"' if c in present else f'NULL AS "{c}"' for c in columns)
    sql = f"SELECT {select} FROM read_parquet({_sql_list(files)}, union_by_name = true)"
    if where:
        sql += f" WHERE {where}"
    con = duckdb.connect()
    try:
        register_duckdb(con, *(f for f in files if is_remote_location(f)))
        return con.execute(sql).df()
    finally:
        con.close()


def _bool(series: pd.Series) -> pd.Series:
    """Nullable booleans as plain bools (NULL = False: an unknown flag is not a positive one)."""
    return series.astype("boolean").fillna(False).astype(bool)


def clean_sessions(df: pd.DataFrame) -> pd.DataFrame:
    """Typed sessions: flags as bools, dates as ``datetime.date``, labels never NULL."""
    df = df.copy()
    for col in ("is_bot", "is_returning_client", "viewed_product", "added_to_cart", "started_checkout", "purchased"):
        df[col] = _bool(df[col])
    df["session_date"] = pd.to_datetime(df["session_date"]).dt.date
    df["channel"] = df["channel"].astype("object").where(df["channel"].notna(), "(none)")
    df["device_type"] = df["device_type"].astype("object").where(df["device_type"].notna(), "unknown")
    df["n_orders"] = pd.to_numeric(df["n_orders"]).fillna(0).astype("int64")
    df["revenue"] = pd.to_numeric(df["revenue"]).fillna(0.0).astype("float64")
    return df


def clean_orders(df: pd.DataFrame) -> pd.DataFrame:
    """Typed orders: revenue as float, flags as bools, ``order_date`` as ``datetime.date``."""
    df = df.copy()
    df["order_date"] = pd.to_datetime(df["order_date"]).dt.date
    df["revenue"] = pd.to_numeric(df["revenue"]).astype("float64")
    for col in ("has_missing_item_prices", "is_transaction_id_collision", "is_bot"):
        df[col] = _bool(df[col])
    return df


@dataclass
class PeriodData:
    """The tables of one period (current) plus the previous period's sessions and orders."""

    period: Period
    sessions: pd.DataFrame  # all sessions, bots included (``is_bot`` says which)
    orders: pd.DataFrame
    items: pd.DataFrame
    attribution: pd.DataFrame
    rejects: pd.DataFrame
    previous_sessions: pd.DataFrame | None = None
    previous_orders: pd.DataFrame | None = None
    findings: list[dict] = field(default_factory=list)
    client_id_null: pd.DataFrame | None = None  # per day: page_views, null_page_views (or None)
    channel_credit: pd.DataFrame | None = None  # rpt_channel_credit of the period (None: not built)

    @property
    def human_sessions(self) -> pd.DataFrame:
        """Sessions without bots: the denominator of every rate in the report."""
        return self.sessions[~self.sessions["is_bot"]]


def load_period(outputs_dir: Path, period: Period, warehouse: Path | Location | Manifest | None = None) -> PeriodData:
    """Read the period's tables (only the columns the report needs) from the published ``warehouse``
    (default ``<outputs_dir>/warehouse``) and its findings from ``outputs_dir`` (the runs' reports
    and the intermediate layer are always local)."""
    wh = pin_warehouse(Path(outputs_dir) / "warehouse" if warehouse is None else warehouse)
    days = date_range(period.start, period.end)
    sessions = clean_sessions(read_table(wh, SESSIONS, days, SESSION_COLUMNS))
    orders = clean_orders(read_table(wh, ORDERS, days, ORDER_COLUMNS))
    items = read_table(wh, ITEMS, days, ITEM_COLUMNS)
    items["item_price"] = pd.to_numeric(items["item_price"]).astype("float64")
    items["quantity"] = pd.to_numeric(items["quantity"]).astype("float64")
    attribution = read_table(wh, ATTRIBUTION, days, ATTRIBUTION_COLUMNS)
    for col in ("credit", "attributed_revenue"):
        attribution[col] = pd.to_numeric(attribution[col]).astype("float64")
    attribution["channel"] = attribution["channel"].astype("object").where(attribution["channel"].notna(), "(none)")
    rejects = read_table(wh, REJECTS, days, REJECT_COLUMNS)
    data = PeriodData(period, sessions, orders, items, attribution, rejects)
    if period.has_previous:
        prev_days = date_range(period.previous_start, period.previous_end)
        data.previous_sessions = clean_sessions(read_table(wh, SESSIONS, prev_days, SESSION_COLUMNS))
        data.previous_orders = clean_orders(read_table(wh, ORDERS, prev_days, ORDER_COLUMNS))
    credit = read_table(wh, CREDIT, days, CREDIT_COLUMNS)
    if len(credit):
        for col in ("orders_credited", "attributed_revenue"):
            credit[col] = pd.to_numeric(credit[col]).astype("float64")
        data.channel_credit = credit
    data.findings = load_findings(Path(outputs_dir) / "runs", days)
    data.client_id_null = client_id_null_share(Path(outputs_dir) / "intermediate", days)
    return data


# --- findings -----------------------------------------------------------------------------------

FINDING_FILES = {"dq_report.json": "data quality", "monitoring_report.json": "monitoring"}


def load_findings(runs_dir: Path, days: list[date]) -> list[dict]:
    """Every finding of the period's daily runs, one dict each, with ``source`` and ``run_date``.

    A finding's ``severity`` (monitoring) or ``status`` (data-quality gate) is normalised into
    ``severity``; unreadable files are skipped (the index page already shows a broken run).
    """
    out = []
    for day in days:
        for name, source in FINDING_FILES.items():
            path = Path(runs_dir) / day.isoformat() / name
            try:
                report = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            for f in report.get("findings") or []:
                if not isinstance(f, dict):
                    continue
                severity = normalise_status(f.get("severity") or f.get("status") or "info")
                dates = f.get("dates") or [day.isoformat()]
                out.append(
                    {
                        **f,
                        "severity": severity,
                        "source": source,
                        "run_date": day.isoformat(),
                        "dates": [str(d) for d in dates],
                    }
                )
    return out


def client_id_null_share(intermediate_root: Path, days: list[date]) -> pd.DataFrame | None:
    """Per day: page views and page views without a client id, from ``stg_events``.

    The intermediate layer keeps every raw row, including those the sessions cannot use, so it is
    the only place where the size of the client-id loss can be measured exactly. None when it is
    not there (the caveat then falls back on the findings' own values).
    """
    files = partition_files(intermediate_root, "stg_events", days)
    if not files:
        return None
    con = duckdb.connect()
    try:
        df = con.execute(f"""
            SELECT CAST(file_date AS DATE) AS day,
                   count(*) AS page_views,
                   count(*) FILTER (WHERE client_id IS NULL OR trim(client_id) = '') AS null_page_views
            FROM read_parquet({_sql_list(files)}, union_by_name = true)
            WHERE event_name = 'page_viewed'
            GROUP BY ALL ORDER BY day""").df()
    except duckdb.Error:  # a staging layout we do not know: no measurement rather than a crash
        return None
    finally:
        con.close()
    df["day"] = pd.to_datetime(df["day"]).dt.date
    return df
