"""Daily metric history read from the warehouse partitions, columnar and cheap.

Monitoring compares the run date with the days before it, so it needs a small table of daily
metrics (sessions, orders, revenue, funnel counts, …) over a trailing window. It is recomputed from
the partitions on every run: the engine reads only the columns each metric needs straight from the
Parquet files (row counts come from the Parquet footers without reading data), so the cost grows
with the window, not with the whole history, and stays small at 100x volume.

Every metric query is an Ibis expression over ``scan`` (the partition files as one table with their
partition date ``d``), run on the backend of ``connect``: a small in-memory DuckDB by default, or
Spark with ``engine: pyspark`` in ``pipeline.yaml`` (the same Parquet files, read through
``file://`` URIs or the object store's). Counts are made NULL-safe (``_count``) and rates are
divided in pandas from integer counts, so both engines give the same numbers.

Which partition is read for a date (``Sources.files``):

* the run date itself: only the *audited* warehouse (``warehouse_dir``, the staging warehouse of
  this run) — what is about to be published is what gets checked;
* earlier dates: the union of the published history (``history_dir``) and the audited warehouse,
  the audited partition winning for a date present in both (a re-run replaces a day).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from ibis.backends.sql.datatypes import DuckDBType

from puffy.dates import date_range
from puffy.params import PipelineParams
from puffy.storage import is_remote_location, register_duckdb
from puffy.warehouse import partition_dates, partition_dir

#: Funnel stages, widest first; each is a count of the day's non-bot sessions.
FUNNEL_STAGES: tuple[str, ...] = ("sessions", "viewed_product", "added_to_cart", "started_checkout", "purchased")

SESSIONS, ORDERS, ATTRIBUTION = "fct_sessions", "fct_orders", "fct_attribution"
REJECTS, RECONCILIATION, STG_EVENTS = "fct_order_rejects", "rpt_reconciliation", "stg_events"

# The partition date from the file path: the last ``date=YYYY-MM-DD`` directory, just above the file
# (or above its ``v-<publish id>/`` version in an object-store warehouse, puffy.publish).
_DATE_PATTERN = r"date=(\d{4}-\d{2}-\d{2})[/\\](?:v-[^/\\]+[/\\])?[^/\\]*$"
_DATE_SQL = f"CAST(regexp_extract(filename, '{_DATE_PATTERN}', 1) AS DATE)"


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


def connect(engine_params: PipelineParams | None = None) -> ibis.BaseBackend:
    """The backend the metric queries run on, for ``engine_params.engine``.

    DuckDB (default): a small in-memory database of monitoring's own, wrapped by Ibis. Spark
    (``engine: pyspark``): ``puffy.engine.connect``, i.e. the session already running in this
    process (the transform's, in the daily run's kernel) or a new one; it is not stopped here.
    """
    if engine_params is not None and engine_params.engine != "duckdb":
        from puffy.engine import connect as engine_connect

        return engine_connect(engine_params)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    return ibis.duckdb.from_connection(con)


def engine_of(con: ibis.BaseBackend) -> str:
    """The name of the engine ``con`` runs on ('duckdb', 'pyspark')."""
    return con.name


def scan_sql(files: dict[date, Path] | list[Path]) -> str:
    """DuckDB's ``FROM`` clause reading the given partition files with their partition date as ``d``.

    Only the columns a query names are read: DuckDB prunes Parquet columns.
    """
    paths = [str(p) for p in (files.values() if isinstance(files, dict) else files)]
    listing = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    return (
        f"(SELECT {_DATE_SQL} AS d, * EXCLUDE (filename) "
        f"FROM read_parquet([{listing}], filename = true, union_by_name = true))"
    )


@contextmanager
def scan(con: ibis.BaseBackend, files: dict[date, Path] | list[Path]) -> Iterator[ir.Table]:
    """The given partition files as one table, with their partition date as ``d`` (from the
    ``date=D`` directory of each file's path); a column missing from older partitions is NULL there.
    A temporary view for the duration of the ``with`` block.

    DuckDB: ``scan_sql``, its schema taken from the bound query (Ibis' own lookup binds the files
    once more: 13 ms a scan of 14 files at 1x, as much as a metric query). Spark: one Parquet read
    of the files (``mergeSchema``: the union of their columns), ``d`` taken from each row's file
    path.
    """
    from ibis import util

    paths = list(files.values() if isinstance(files, dict) else files)
    view = util.gen_name("monitoring_scan")
    if engine_of(con) == "duckdb":
        remote = [p for p in paths if is_remote_location(p)]
        if remote:  # a published history in object storage
            register_duckdb(con.con, *remote)
        relation = con.con.sql(f"SELECT * FROM {scan_sql(paths)}")
        schema = ibis.schema({c: _duckdb_type(str(t)) for c, t in zip(relation.columns, relation.types)})
        relation.create_view(view)
        try:
            yield ops.DatabaseTable(view, schema=schema, source=con).to_expr()
        finally:
            con.con.execute(f"DROP VIEW IF EXISTS {view}")
        return
    from pyspark.sql import functions as F

    from puffy.engine import spark_parquet

    session = con._session
    frame = spark_parquet(con, paths)
    frame = frame.withColumn("d", F.regexp_extract(F.col("_metadata.file_path"), _DATE_PATTERN, 1).cast("date"))
    frame.createOrReplaceTempView(view)
    try:
        yield con.table(view)
    finally:
        session.catalog.dropTempView(view)


@functools.cache
def _duckdb_type(name: str) -> dt.DataType:
    """The Ibis type of a DuckDB type name (parsed once per name: a wide table repeats a few)."""
    return DuckDBType.from_string(name)


def to_pandas(expr: ir.Table) -> pd.DataFrame:
    """Run ``expr`` on its backend. On DuckDB its SQL runs as a DuckDB query converted to pandas by
    DuckDB, as before the queries were Ibis expressions (same dtypes; 14 ms against 22 ms for Ibis'
    ``to_pandas`` at 1x), after the pre-execute hooks that register the expression's memtables."""
    backend = expr._find_backend()
    if engine_of(backend) != "duckdb":
        return expr.to_pandas()
    backend._run_pre_execute_hooks(expr)
    return backend.con.execute(backend.compile(expr)).df()


def query(
    con: ibis.BaseBackend, files: dict[date, Path] | list[Path], build: Callable[[ir.Table], ir.Table]
) -> pd.DataFrame:
    """The result of ``build(scan of files)`` as a pandas frame; an empty frame for no files."""
    if not files:
        return pd.DataFrame()
    with scan(con, files) as t:
        return to_pandas(build(t))


def row_counts(files: dict[date, Path]) -> pd.Series:
    """Rows per partition from the Parquet footers (no data pages are read)."""
    return pd.Series({d: pq.ParquetFile(p).metadata.num_rows for d, p in files.items()}, dtype="float64")


def _by_date(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    df["d"] = pd.to_datetime(df["d"]).dt.date
    return df.set_index("d")


def _count(t: ir.Table, where: ir.BooleanValue) -> ir.IntegerScalar:
    """Rows of ``t`` (of its group) where ``where`` is true: 0, not NULL, when none is (Ibis'
    PySpark backend sums a 0/1 cast, which is NULL over a group without a match)."""
    return t.count(where=where).fill_null(0)


def _is_bot(t: ir.Table) -> ir.BooleanValue:
    return t.is_bot.fill_null(False)


def session_metrics(con, files: dict[date, Path]) -> pd.DataFrame:
    """Per date: non-bot sessions and funnel stage counts, bot sessions, returning non-bot sessions."""

    def build(t: ir.Table) -> ir.Table:
        human = ~_is_bot(t)
        return t.group_by("d").aggregate(
            sessions=_count(t, human),
            viewed_product=_count(t, human & t.viewed_product),
            added_to_cart=_count(t, human & t.added_to_cart),
            started_checkout=_count(t, human & t.started_checkout),
            purchased=_count(t, human & t.purchased),
            bot_sessions=_count(t, _is_bot(t)),
            returning_sessions=_count(t, human & t.is_returning_client),
        )

    return _by_date(query(con, files, build))


def order_metrics(con, files: dict[date, Path]) -> pd.DataFrame:
    """Per date: orders, revenue, the sum of squared order revenues (order-value spread), orders without
    a session, and orders / revenue whose journey is untracked (``journey_status``; NULL in
    partitions written before it existed)."""
    has_journey = "journey_status" in _columns_of(files)

    def build(t: ir.Table) -> ir.Table:
        metrics = {
            "orders": t.count(),
            "revenue": t.revenue.sum().fill_null(0),
            "revenue_squares": (t.revenue * t.revenue).sum().fill_null(0),
            "orders_without_session": _count(t, t.session_id.isnull()),
        }
        if has_journey:
            known, untracked = t.journey_status.notnull().any(), t.journey_status == "untracked"
            metrics["untracked_orders"] = ibis.ifelse(known, _count(t, untracked), ibis.null("int64"))
            metrics["untracked_revenue"] = ibis.ifelse(
                known, t.revenue.sum(where=untracked).fill_null(0), ibis.null("float64")
            )
        return t.group_by("d").aggregate(**metrics)

    df = query(con, files, build)
    if not has_journey and not df.empty:
        df["untracked_orders"] = df["untracked_revenue"] = np.nan
    return _by_date(df)


def reject_metrics(con, files: dict[date, Path]) -> pd.DataFrame:
    """Per date: rejected purchases and how many of them had revenue exactly 0."""

    def build(t: ir.Table) -> ir.Table:
        return t.group_by("d").aggregate(
            order_rejects=t.count(),
            zero_revenue_purchases=_count(t, t.revenue == 0),
            rejected_revenue=t.revenue.sum().fill_null(0),
        )

    return _by_date(query(con, files, build))


def event_metrics(con, files: dict[date, Path], purchase_event: str) -> pd.DataFrame:
    """Per date from ``stg_events``: events, client-id null rate, bot share, raw purchase revenue.

    Bots are recognised by ``puffy.useragent.parse_user_agents`` over the DISTINCT user agents of
    the window (a few thousand strings, parsed once each), joined back inside the engine.
    """
    if not files:
        return pd.DataFrame()
    from puffy.useragent import parse_user_agents

    with scan(con, files) as t:
        uas = to_pandas(t.filter(t.user_agent.notnull()).select("user_agent").distinct())
        dim = parse_user_agents(uas["user_agent"].tolist())[["user_agent", "is_bot"]]
        ua = ibis.memtable(
            {"_ua": dim["user_agent"].tolist(), "_is_bot": dim["is_bot"].astype(bool).tolist()},
            schema={"_ua": "string", "_is_bot": "boolean"},
        )
        e = t.left_join(ua, t.user_agent == ua._ua)
        purchase = e.event_name == purchase_event
        df = to_pandas(
            e.group_by("d").aggregate(
                events=e.count(),
                null_client_ids=_count(e, e.client_id.isnull()),
                bot_events=_count(e, e._is_bot.fill_null(False)),
                raw_purchases=_count(e, purchase),
                raw_purchase_revenue=e.revenue.sum(where=purchase).fill_null(0),
            )
        )
    # Rates from integer counts, divided here: the same double on every engine.
    events = df["events"].astype("float64")
    df.insert(2, "client_id_null_rate", df.pop("null_client_ids").astype("float64") / events)
    df.insert(3, "bot_share", df.pop("bot_events").astype("float64") / events)
    return _by_date(df)


def daily_metrics(
    sources: Sources,
    start: date,
    purchase_event: str = "checkout_completed",
    con: ibis.BaseBackend | None = None,
) -> pd.DataFrame:
    """One row per date in [start, run date] with every daily metric (NaN where unknown).

    Columns: the ``TREND_METRICS`` (``puffy.monitoring.rules``), the funnel stage counts, orders_without_session,
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
    with_referrer = {"entry_referrer", "has_marketing_params"} <= _columns_of(files)

    def build(t: ir.Table) -> ir.Table:
        human = t.filter(~_is_bot(t))
        metrics = {"value": human.count().cast("float64")}
        if with_referrer:
            by_referrer = human.entry_referrer.notnull() & ~human.has_marketing_params.fill_null(False)
            metrics["by_referrer"] = _count(human, by_referrer).cast("float64")
        channel = human.channel.fill_null("(none)")
        return human.group_by("d", channel=channel).aggregate(**metrics).order_by("d", "channel")

    df = query(con, files, build)
    if not with_referrer and not df.empty:
        df["by_referrer"] = 0.0
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

    def build(t: ir.Table) -> ir.Table:
        human = t.filter(~_is_bot(t))
        counts = {c: _count(human, human[c].notnull()).cast("float64") for c in ids}
        return human.group_by("d").aggregate(**counts).order_by("d")

    df = query(con, files, build)
    return _long(df.melt(id_vars="d", var_name="channel", value_name="value"))


def attributed_channel_revenue(sources: Sources, start: date, model: str, con=None) -> pd.DataFrame:
    """Attributed revenue and orders (sum of credit) per (date, channel) for one model.

    Columns d, channel, value (revenue), orders.
    """
    con = con or connect()

    def build(t: ir.Table) -> ir.Table:
        rows = t.filter(t.model == model)
        return (
            rows.group_by("d", channel=rows.channel.fill_null("(none)"))
            .aggregate(value=rows.attributed_revenue.sum().fill_null(0), orders=rows.credit.sum().fill_null(0))
            .order_by("d", "channel")
        )

    return _long(query(con, sources.files(ATTRIBUTION, start), build))


def _long(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return pd.DataFrame(columns=["d", "channel", "value", "orders"])
    return _with_dates(df)


def _with_dates(df: pd.DataFrame) -> pd.DataFrame:
    """``d`` as ``datetime.date`` (engines return a DATE as datetime64 of different units)."""
    if not df.empty:
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


def _attribution_totals(t: ir.Table) -> ir.Table:
    """Per model: distinct orders credited, attributed revenue and its smallest row. The distinct
    count is an aggregate of its own: in one with the sum, Spark adds the revenue up per order key
    first (its plan for a DISTINCT aggregate), in another order than DuckDB's, to other last bits."""
    orders = t.group_by("model").aggregate(orders=t.order_key.nunique())
    sums = t.group_by("model").aggregate(
        attributed_revenue=t.attributed_revenue.sum().fill_null(0), min_attributed_revenue=t.attributed_revenue.min()
    )
    joined = orders.join(sums, "model")
    return joined.select("model", "orders", "attributed_revenue", "min_attributed_revenue").order_by("model")


def read_day_tables(sources: Sources, start: date, purchase_event: str, con=None) -> DayTables:
    """Load the run date's orders, rejects, attribution totals and reconciliation report."""
    con = con or connect()
    orders_file = sources.audited_file(ORDERS)
    orders = None
    if orders_file is not None:
        cols = [c for c in _ORDER_COLUMNS if c in _columns(orders_file)]
        orders = pq.read_table(orders_file, columns=cols).to_pandas()
    history_files = {d: p for d, p in sources.files(ORDERS, start).items() if d < sources.run_date}
    history = _with_dates(query(con, history_files, lambda t: t.select("d", "order_key", "transaction_id")))
    rejects_file = sources.audited_file(REJECTS)
    rejects = None
    if rejects_file is not None:
        cols = [c for c in ("order_key", "transaction_id", "reason", "revenue") if c in _columns(rejects_file)]
        rejects = pq.read_table(rejects_file, columns=cols).to_pandas()
    attribution_file = sources.audited_file(ATTRIBUTION)
    totals = None
    if attribution_file is not None:
        totals = query(con, [attribution_file], _attribution_totals)
    recon_file = sources.audited_file(RECONCILIATION)
    recon = pq.read_table(recon_file).to_pandas() if recon_file is not None else None
    raw = None
    events = sources.staged_event_files(sources.run_date)
    if sources.run_date in events:
        with scan(con, [events[sources.run_date]]) as t:
            purchases = t.filter(t.event_name == purchase_event)
            raw = float(to_pandas(purchases.aggregate(revenue=purchases.revenue.sum().fill_null(0)))["revenue"].iloc[0])
    return DayTables(orders, history, rejects, totals, recon, raw)


def infer_intermediate_dir(warehouse_dir: Path) -> Path | None:
    """``<outputs>/intermediate`` next to ``<outputs>/warehouse`` (what ``puffy transform`` writes)."""
    candidate = Path(warehouse_dir).parent / "intermediate"
    return candidate if (candidate / STG_EVENTS).is_dir() else None
