"""Orchestration of the transform: staged events in, warehouse partitions out (``run_transform``).

Input: the staging partitions written by ``puffy.ingest.write_staging``
(``<staging_root>/stg_events|stg_purchase_items|stg_rejects/date=D/part-0.parquet``) and, for
history, the fct partitions already published (``history_root``).

Output (``<warehouse_root>/<table>/date=D/part-0.parquet``, each partition streamed and swapped in
atomically by ``puffy.warehouse.PartitionWriter``):

================== ================================== =======================================
table              grain                              partition key
================== ================================== =======================================
fct_sessions       one row per session                session_date (date of session_start)
fct_orders         one row per order                  order_date
fct_order_items    one row per order line             order_date
fct_order_rejects  one row per non-order purchase evt order_date (date of the event)
fct_attribution    (order, model, touchpoint session) order_date
rpt_channel_credit (identity, model, channel) per day order_date
rpt_reconciliation one row per check per run          run end date
================== ================================== =======================================

Columns of fct_sessions: ``puffy.transform.sessions``; of the order tables:
``puffy.transform.orders``; of rpt_reconciliation: ``puffy.transform.reconcile``. fct_attribution
is ``puffy.attribution.attribute`` over non-bot sessions and included orders, plus the partition
key: order_key, order_date, model, session_id (NULL when unattributed), channel (``Untracked
journey`` when unattributed), touch_index, touch_count, days_before_order, credit (rounded to
1e-12; sums to 1 per order and model), attributed_revenue (exact cents per order),
is_unattributed. fct_orders' journey_status / touchpoint_count come from
``puffy.attribution.order_journeys`` under the same identity.

rpt_channel_credit gives the range identity leaves open: fct_attribution summed per order_date,
identity ('strict' = client ids only; 'stitched' = shared hashed emails plus, with
``probabilistic_link``, the checkout link), model and channel: orders_credited (Σ credit),
attributed_revenue (summed in integer cents: each date, identity and model sums to the day's order
revenue exactly), is_configured (the identity fct_attribution used: ``identity_stitching``).

Which dates a run reads and writes, for ``start..end``:

* It reads staged events from ``context_days`` (2) days before the first date it writes, so a
  session that began before midnight, or an early event continuing one, is seen whole.
* ``rebuild`` writes sessions of ``start..end``; ``incremental`` also rewrites ``start - 1`` when
  that day is published (its fct_sessions partition is in ``history_root``): the sessions that
  began on the previous day may have continued after its midnight. A day that is not published
  (the gate stopped it, monitoring quarantined it) is never written by its successor's run.
  Order and attribution partitions are written for ``start..end``.
* History (``history_root``, default ``warehouse_root``) supplies what lies before the dates
  written: earlier sessions (session_number, is_returning_client, attribution lookback, Markov
  window), earlier orders and rejects (order-key numbering, replays, Markov window).

So a daily run for D reads stg D-3..D, writes fct_sessions D-1 and D and the order tables and
attribution of D; a rebuild over all days does the same in one pass, and both give identical
partitions (tested). Re-running a date rewrites the same bytes. A session longer than
``context_days`` days would be cut (documented limitation; the real export's longest is 1h40).

The heavy work is Ibis expressions on the engine of ``puffy.engine.connect`` (DuckDB by default,
PySpark optional): no backend SQL, no per-row Python. Python loops run over dates (partitions,
Markov fits) and over identity-propagation rounds only.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from puffy import tables
from puffy.attribution import (
    ATTRIBUTION_COLUMNS,
    attribute,
    markov_fits,
    order_journeys,
    windowed_free_transitions,
)
from puffy.attribution_params import AttributionParams
from puffy.channel_rules import ChannelRules, load_channel_rules
from puffy.dates import date_range
from puffy.engine import connect, engine_name, record_batches, select_fusion, spark_parquet
from puffy.errors import InputDataError, UserError
from puffy.params import PipelineParams, load_pipeline_params
from puffy.storage import is_remote_location, register_duckdb
from puffy.transform.identity import apply_identity, checkout_link_edges, identity_edges, person_map
from puffy.transform.orders import (
    LEDGER_COLUMNS,
    ORDER_REJECT_SCHEMA,
    ORDER_SCHEMA,
    build_orders,
)
from puffy.transform.params import TransformParams, load_transform_params
from puffy.transform.reconcile import compute_checks, overall_status, reconciliation_frame
from puffy.transform.sessions import (
    SESSION_SCHEMA,
    add_order_metrics,
    add_session_history,
    annotate_events,
    build_sessions,
    cast_to_schema,
    events_in_sessions,
    session_event_flags,
    session_numbers,
    sessionize_events,
)
from puffy.useragent import user_agent_dimension
from puffy.warehouse import PartitionWriter, partition_dates, partition_files, write_partition

log = logging.getLogger("puffy.transform")

# Columns, partition column and sort keys of every table: lib/puffy/tables.yaml.
ATTRIBUTION_SCHEMA = tables.ibis_schema("fct_attribution")
CHANNEL_CREDIT_SCHEMA = tables.ibis_schema("rpt_channel_credit")
#: Identities of rpt_channel_credit: client ids only, and the stitched identity (email + link).
IDENTITIES = ("strict", "stitched")
RECONCILIATION_SCHEMA = tables.arrow_schema("rpt_reconciliation")

#: Warehouse tables: (schema, partition column, sort keys).
TABLES: dict[str, tuple[ibis.Schema, str, tuple[str, ...]]] = {t: tables.spec(t) for t in tables.names("fact")}
#: Date-partitioned report tables written like TABLES (they are not monitored fct tables).
REPORT_TABLES: dict[str, tuple[ibis.Schema, str, tuple[str, ...]]] = {
    "rpt_channel_credit": tables.spec("rpt_channel_credit"),
}
RECONCILIATION_TABLE = "rpt_reconciliation"
CSV_EXPORTS = ("fct_sessions", "fct_orders", "fct_attribution")
STG_EVENTS, STG_ITEMS, STG_REJECTS = "stg_events", "stg_purchase_items", "stg_rejects"
# Used when a day has no stg_purchase_items partition (columns as puffy.ingest writes them).
STG_ITEMS_SCHEMA = tables.ibis_schema(STG_ITEMS)
# Credits are rounded to 1e-12 (their weights are summed as integers, so the value rounded does not
# depend on the engine's summation order; see puffy.attribution._allocate).
CREDIT_DECIMALS = 12
# Markov chains fitted per query: each fit repeats its window's buyers' sessions and orders, so this
# bounds a long rebuild's query size; a fortnight is one query (few queries matter on Spark).
MARKOV_FITS_PER_QUERY = 16
# Most rows one write query sorts (DuckDB): a bigger table is written a few days per query, as one
# sort of tens of millions of wide rows can run out of memory under the limit however much it spills.
SORT_ROWS_PER_QUERY = 4_000_000
# Rows per record batch when streaming a table to its partitions.
WRITE_BATCH_ROWS = 65_536
# Batches queued for the Parquet encoder ahead of the one it encodes (1: as fast as 4 at 50x, 86 MiB less peak).
ENCODE_AHEAD_BATCHES = 1
# Days per query when the engine collects results to the driver instead of streaming (PySpark).
DRIVER_COLLECT_DAYS = 7


@dataclass
class TransformResult:
    """What one ``run_transform`` call did."""

    status: str  # 'ok' | 'warn' | 'error' (worst reconciliation status)
    mode: str
    start: date
    end: date
    tables: dict[str, list[Path]] = field(default_factory=dict)  # table -> partition dirs written
    row_counts: dict[str, int] = field(default_factory=dict)  # table -> rows written
    reconciliation: pd.DataFrame = field(default_factory=pd.DataFrame)
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds (lazy steps count where they run)
    warnings: list[str] = field(default_factory=list)
    params: TransformParams | None = None
    engine: str = "duckdb"  # the Ibis backend that ran it: duckdb | pyspark

    @property
    def message(self) -> str:
        """One line for the runner: failed / warned checks, then warnings ('' when all is well)."""
        parts = []
        if len(self.reconciliation):
            bad = self.reconciliation[self.reconciliation["status"] != "ok"]
            parts = [f"{r.check}: {r.left:g} vs {r.right:g} ({r.status})" for r in bad.itertuples()]
        return "; ".join(parts + self.warnings)


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._t, 3)
        self._t = now


# ----------------------------------------------------------------------------------- reading


def read_partitions(
    con: ibis.BaseBackend,
    root: Path,
    table: str,
    days: list[date] | None,
    schema: ibis.Schema | None = None,
    columns: list[str] | None = None,
) -> ir.Table:
    """The Parquet partitions of ``table`` for ``days`` (all when None) as one Ibis table.

    Missing partitions are skipped; with none at all an empty table of ``schema`` is returned.
    """
    files = partition_files(root, table, days)
    if not files:
        if schema is None:
            raise InputDataError(f"{root}/{table}: no partitions to read")
        t = ibis.memtable(pa.Table.from_batches([], schema=schema.to_pyarrow()))
    elif con.name == "duckdb" and is_remote_location(files[0]):
        t = _read_remote_parquet(con, files)
    elif con.name == "duckdb":
        t = con.read_parquet(files, hive_partitioning=False, union_by_name=True)
    elif con.name == "pyspark":
        t = _read_spark_parquet(con, files)
    else:  # portable fallback: one read per file
        parts = [con.read_parquet(f) for f in files]
        t = ibis.union(*parts) if len(parts) > 1 else parts[0]
    if "date" in t.columns and (schema is None or "date" not in schema.names):
        t = t.drop("date")
    if columns:
        t = t.select(*columns)
    return t


def _read_remote_parquet(con: ibis.BaseBackend, files: list[str]) -> ir.Table:
    """Object-store files (a published history in a bucket) on the DuckDB backend, read through the
    filesystem ``puffy.storage.register_duckdb`` gives the connection. Not Ibis' ``read_parquet``:
    for ``s3://`` it installs DuckDB's httpfs extension, a download that must match DuckDB's version."""
    register_duckdb(con.con, *files)
    name = ibis.util.gen_name("remote_parquet")
    listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    con.con.execute(
        f'CREATE TEMP VIEW "{name}" AS SELECT * FROM read_parquet([{listing}], '
        "hive_partitioning = false, union_by_name = true)"
    )
    return con.table(name)


def _read_spark_parquet(con: ibis.BaseBackend, files: list[str]) -> ir.Table:
    """Every file in one Spark read (``puffy.engine.spark_parquet``) as a temporary view."""
    name = ibis.util.gen_name("read_parquet")
    spark_parquet(con, files).createOrReplaceTempView(name)
    return con.table(name)


def _history_dates(root: Path, table: str, before: date) -> list[date]:
    return [d for d in partition_dates(root, table) if d < before]


# ----------------------------------------------------------------------------------- writing


def _day_chunks(days: list[date], rows_per_day: dict[date, int] | None, duckdb: bool) -> list[list[date]]:
    """Consecutive days written by one query: on DuckDB as many as keep the sort under
    ``SORT_ROWS_PER_QUERY`` rows (all of them without ``rows_per_day``), else
    ``DRIVER_COLLECT_DAYS``."""
    if not duckdb:
        return [days[i : i + DRIVER_COLLECT_DAYS] for i in range(0, len(days), DRIVER_COLLECT_DAYS)]
    if rows_per_day is None:
        return [days]
    chunks: list[list[date]] = [[]]
    size = 0
    for day in days:
        n = rows_per_day.get(day, 0)
        if chunks[-1] and n and size + n > SORT_ROWS_PER_QUERY:
            chunks.append([])
            size = 0
        chunks[-1].append(day)
        size += n
    return chunks


def _day_runs(chunk: pa.Table, key: str) -> list[tuple[date, pa.Table]]:
    """The rows of ``chunk``, sorted on the date column ``key``, as (day, zero-copy slice) per day."""
    if not chunk.num_rows:
        return []
    days = chunk.column(key).combine_chunks().cast(pa.int32()).to_numpy(zero_copy_only=False)
    starts = [0, *(np.flatnonzero(np.diff(days)) + 1).tolist(), len(days)]
    return [(chunk.column(key)[a].as_py(), chunk.slice(a, b - a)) for a, b in zip(starts[:-1], starts[1:])]


def _write_table(
    root: Path, table: str, t: ir.Table, days: list[date], rows_per_day: dict[date, int] | None = None
) -> tuple[list[Path], int]:
    """Write one partition per day of ``days`` (empty ones too: the day was processed).

    Sorted by the engine on the partition key then the table's sort keys (unique per table, so
    the bytes are deterministic), streamed in record batches into one ``PartitionWriter`` per
    day: memory holds a row group, however long the rebuild. DuckDB streams one query, or one
    per few days for a big table (``rows_per_day``, see ``_day_chunks``); Ibis' PySpark backend
    collects a whole result to the driver, so there it is one query per ``DRIVER_COLLECT_DAYS``
    days.
    """
    schema, key, sort = {**TABLES, **REPORT_TABLES}[table]
    target = schema.to_pyarrow()
    days = sorted(days)
    written, rows = [], 0
    # Parquet encoding runs in one thread of its own, in the order the rows arrive, while the engine
    # produces the next batch (both release the GIL): the two took turns before.
    with ExitStack() as stack, ThreadPoolExecutor(1, thread_name_prefix="parquet-encode") as encoder:
        writers: dict[date, PartitionWriter] = {}
        queued: deque[Future] = deque()
        complete: set[date] = set()

        def encode(step, *args) -> None:
            queued.append(encoder.submit(step, *args))
            while len(queued) > ENCODE_AHEAD_BATCHES:  # bounds the rows held in memory
                queued.popleft().result()

        def writer(day: date) -> PartitionWriter:  # opened on a day's first row: one open file at a time
            if day not in writers:
                writers[day] = stack.enter_context(PartitionWriter(root, table, day, target))
            return writers[day]

        for query_days in _day_chunks(days, rows_per_day, engine_name(t) == "duckdb"):
            query = cast_to_schema(t.filter(t[key].isin(query_days)), schema).order_by([key, *sort])
            for batch in record_batches(query, WRITE_BATCH_ROWS):
                chunk = pa.Table.from_batches([batch]).cast(target).replace_schema_metadata(None)
                for day, rows_of_day in _day_runs(chunk, key):
                    for earlier in [d for d in writers if d < day and d not in complete]:
                        complete.add(earlier)  # rows arrive in day order
                        encode(writers[earlier].finish)
                    encode(writer(day).write, rows_of_day)
        while queued:
            queued.popleft().result()
        for day in days:  # only once every row is written: a failed query swaps in nothing
            written.append(writer(day).commit())
            rows += writers[day].rows
    return written, rows


# ----------------------------------------------------------------------------------- the run


@select_fusion(False)  # see select_fusion; the sessions query is compiled fused
def run_transform(
    staging_root: Path,
    warehouse_root: Path,
    params_dir: Path,
    *,
    start: date,
    end: date,
    history_root: Path | None = None,
    engine_params: PipelineParams | None = None,
    mode: Literal["incremental", "rebuild"] = "rebuild",
    transform_params: TransformParams | None = None,
    con: ibis.BaseBackend | None = None,
) -> TransformResult:
    """Build the fct tables for ``start..end`` from staged events; see the module docstring.

    ``transform_params`` overrides ``<params_dir>/transform.yaml``; ``con`` reuses an Ibis backend
    (default: ``puffy.engine.connect(engine_params, compile_cache=True)``, ``engine_params`` defaulting to
    ``<params_dir>/pipeline.yaml``, so its ``engine`` applies however the transform is called).
    Returns a ``TransformResult``; a
    reconciliation mismatch gives ``status == 'error'`` (partitions are still written, to the
    caller's staging warehouse, for inspection).
    """
    if mode not in ("incremental", "rebuild"):
        raise UserError(f"mode must be 'incremental' or 'rebuild', got {mode!r}")
    if end < start:
        raise UserError(f"end {end} is before start {start}")
    staging_root, warehouse_root = Path(staging_root), Path(warehouse_root)
    if history_root and not is_remote_location(history_root):  # a published history in a bucket stays a URI
        history_root = Path(history_root)
    history_root = history_root or warehouse_root
    params_dir = Path(params_dir)
    tp = transform_params or load_transform_params(params_dir)
    rules = load_channel_rules(params_dir / tp.channels_file)
    if con is None and engine_params is None:
        engine_params = load_pipeline_params(params_dir)
    con = con or connect(engine_params, compile_cache=True)
    timer = _Timer()
    plan = _plan_dates(staging_root, history_root, start, end, mode, tp)

    # --- events of the window, user agents parsed once per distinct string
    raw = read_partitions(con, staging_root, STG_EVENTS, plan.window_dates)
    # Not cached: each use re-reads only the Parquet columns it needs, which is cheaper than
    # materialising every column of every event.
    events = annotate_events(raw, user_agent_dimension(raw))
    timer.lap("read_events")

    # --- identity: the stitched person map is built on every run (rpt_channel_credit shows both
    # identities); the fct tables use it only with identity_stitching
    stitched_map = _stitched_person_map(con, staging_root, [d for d in sorted(plan.staged) if d <= end], tp)
    pmap = stitched_map if tp.identity_stitching else None
    timer.lap("identity")

    ses = _sessions_step(con, events, history_root, plan, tp, rules)
    timer.lap("sessions")
    ords = _orders_step(con, events, ses, staging_root, history_root, plan, tp, pmap)
    timer.lap("orders")

    # --- sessions: order metrics, person
    sessions = add_order_metrics(ses.core, ords.known.filter(ords.known.order_date >= min(plan.session_dates)))
    sessions = cast_to_schema(apply_identity(sessions, pmap), SESSION_SCHEMA)  # computed as it is written

    orders_out, attribution, channel_credit = _attribution_step(ses, ords, plan, tp, stitched_map)
    timer.lap("attribution")

    items_out = ords.items.filter(ords.items.order_date.isin(plan.order_dates))
    rejects_out = ords.rejects.filter(ords.rejects.order_date.isin(plan.order_dates))
    outputs = {
        "fct_sessions": (sessions, plan.session_dates),
        "fct_orders": (orders_out, plan.order_dates),
        "fct_order_items": (items_out, plan.order_dates),
        "fct_order_rejects": (rejects_out, plan.order_dates),
        "fct_attribution": (attribution, plan.order_dates),
        "rpt_channel_credit": (channel_credit, plan.order_dates),
    }
    tables, counts = _write_outputs(warehouse_root, outputs, ses.scoped)
    timer.lap("write")

    checks = _reconcile_checks(
        con,
        events,
        ses,
        staging_root,
        plan,
        tp,
        counts["fct_sessions"],
        orders_out,
        items_out,
        rejects_out,
        attribution,
    )
    frame = reconciliation_frame(checks, mode)
    frame["run_start"], frame["run_end"] = start, end
    rec = pa.Table.from_pandas(frame, schema=RECONCILIATION_SCHEMA, preserve_index=False).replace_schema_metadata(None)
    tables[RECONCILIATION_TABLE] = [write_partition(warehouse_root, RECONCILIATION_TABLE, end, rec)]
    counts[RECONCILIATION_TABLE] = rec.num_rows
    timer.lap("reconcile")

    status = overall_status(frame)
    result = TransformResult(
        status, mode, start, end, tables, counts, frame, timer.timings, plan.warnings, tp, con.name
    )
    log.info("transform %s %s..%s: %s (%s)", mode, start, end, status, counts)
    return result


@dataclass
class _DatePlan:
    """Which dates a run reads and writes (see the module docstring)."""

    start: date
    staged: set[date]  # days with staged events
    order_dates: list[date]  # order and attribution partitions written
    session_dates: list[date]  # fct_sessions partitions written
    window_dates: list[date]  # staged days read (with the context days before)
    order_compute: list[date]  # days whose orders are built (order_dates + missing history)
    recent_from: date  # history before it is read only for session numbers and the order ledger
    warnings: list[str]


def _plan_dates(
    staging_root: Path, history_root: Path, start: date, end: date, mode: str, tp: TransformParams
) -> _DatePlan:
    """The dates of ``start..end`` a run writes, and those it reads for context."""
    warnings: list[str] = []
    staged = set(partition_dates(staging_root, STG_EVENTS))
    requested = date_range(start, end)
    order_dates = [d for d in requested if d in staged]
    if not order_dates:
        raise InputDataError(
            f"{staging_root}/{STG_EVENTS}: no staged events for {start}..{end}; stage them first with "
            "notebook 01_data_quality (same dates) or `puffy run`"
        )
    missing = [d for d in requested if d not in staged]
    if missing:
        warnings.append(f"no staged events for {', '.join(map(str, missing))}: nothing written for them")
    session_dates = [d for d in date_range(start, end) if d in staged]
    # Incremental runs also rewrite the day before, but only a published one: a day the gate
    # stopped or monitoring quarantined must not reach the warehouse through its successor's run.
    before = start - timedelta(days=1)
    if mode == "incremental" and before in staged and before in partition_dates(history_root, "fct_sessions"):
        session_dates.insert(0, before)
    window_dates = [d for d in date_range(min(session_dates) - timedelta(days=tp.context_days), end) if d in staged]
    hist_order_dates = set(partition_dates(history_root, "fct_orders"))
    # Orders of an already-written session day come from history; recompute them only if missing.
    order_compute = sorted(set(order_dates) | {d for d in session_dates if d < start and d not in hist_order_dates})
    for d in order_compute:
        if d < start:
            warnings.append(f"fct_orders {d} not in history: recomputed from staged events")
    # Attribution reads history back to the lookback or Markov fit window of the first order date,
    # the sessions written their orders, an order its session in the window: only session numbers
    # and the order ledger need every day of history, so a day's cost does not grow with it elsewhere.
    ap = tp.attribution
    horizon = max(ap.lookback_days + 1, tp.markov_fit_days if "markov" in ap.models else 0)
    recent_from = min(min(order_dates) - timedelta(days=horizon), min(window_dates), min(session_dates))
    return _DatePlan(start, staged, order_dates, session_dates, window_dates, order_compute, recent_from, warnings)


@dataclass
class _Sessions:
    """The sessions of one run (lazy Ibis tables)."""

    sessionizable: ir.Table  # events that can be sessionized (client id; no bot with exclude_bots)
    window: ir.Table  # every session of the window, context days included (cached)
    scoped: ir.Table  # the sessions this run writes
    core: ir.Table  # scoped with session_number and is_returning_client
    history: ir.Table  # published sessions from ``plan.recent_from`` to the first date written (narrow columns)


def _sessions_step(
    con: ibis.BaseBackend,
    events: ir.Table,
    history_root: Path,
    plan: _DatePlan,
    tp: TransformParams,
    rules: ChannelRules,
) -> _Sessions:
    """Sessionize the window's events and number the sessions this run writes."""
    sessionizable = events.filter(events.client_id.notnull())
    if tp.exclude_bots:
        sessionizable = sessionizable.filter(~sessionizable.is_bot)
    sessionized = sessionize_events(session_event_flags(sessionizable, tp), tp, rules)
    # Every session of the window, including those that began on the context days: purchases
    # and continuing events of those days are matched to them.
    with select_fusion(True):
        window_sessions = build_sessions(sessionized, sessionizable, rules).cache()
    # The sessions this run writes. Their numbering and order metrics are joined on below and
    # not materialised again: the narrow uses (attribution, checks) read this cached table.
    scoped = window_sessions.filter(window_sessions.session_date.isin(plan.session_dates))

    # Session numbers continue the client's count over all of history; the other readers need
    # only its recent days.
    history_dates = _history_dates(history_root, "fct_sessions", min(plan.session_dates))
    every_client = read_partitions(con, history_root, "fct_sessions", history_dates, SESSION_SCHEMA, ["client_id"])
    columns = ["session_id", "client_id", "session_start", "session_date", "channel", "is_bot"]
    recent_dates = [d for d in history_dates if d >= plan.recent_from]
    recent = read_partitions(con, history_root, "fct_sessions", recent_dates, SESSION_SCHEMA, columns)
    clients = scoped.select("client_id").distinct()
    prior = every_client.filter(every_client.client_id.isin(clients.client_id))
    prior_counts = prior.group_by("client_id").aggregate(n_prior=prior.count())
    # cached: each of the write queries of a large run would otherwise number all sessions again
    numbers = session_numbers(scoped, prior_counts).cache()
    core = add_session_history(scoped, numbers)
    return _Sessions(sessionizable, window_sessions, scoped, core, recent)


@dataclass
class _Orders:
    """The orders of one run (lazy Ibis tables)."""

    new: ir.Table  # orders built by this run (order_compute dates), person re-keyed
    items: ir.Table
    rejects: ir.Table
    known: ir.Table  # history's orders from ``plan.recent_from`` on and the new ones (narrow columns)


_KNOWN_ORDER_COLUMNS = ["order_key", "client_id", "session_id", "order_ts", "order_date", "revenue"]


def _orders_step(
    con: ibis.BaseBackend,
    events: ir.Table,
    ses: _Sessions,
    staging_root: Path,
    history_root: Path,
    plan: _DatePlan,
    tp: TransformParams,
    pmap: ir.Table | None,
) -> _Orders:
    """Build the orders of ``plan.order_compute`` against the history ledger."""
    order_compute = plan.order_compute
    purchases = events.filter((events.event_name == tp.purchase_event) & events.file_date.isin(order_compute))
    items = read_partitions(con, staging_root, STG_ITEMS, order_compute, STG_ITEMS_SCHEMA)
    ledger_days = _history_dates(history_root, "fct_orders", min(order_compute))
    ledger_orders = read_partitions(
        con, history_root, "fct_orders", ledger_days, ORDER_SCHEMA, columns=list(LEDGER_COLUMNS)
    )
    rej_hist = read_partitions(
        con,
        history_root,
        "fct_order_rejects",
        _history_dates(history_root, "fct_order_rejects", min(order_compute)),
        ORDER_REJECT_SCHEMA,
    )
    rej_hist = rej_hist.filter((rej_hist.reason != "replay") & rej_hist.transaction_id.notnull())
    ledger = ledger_orders.union(rej_hist.select(*LEDGER_COLUMNS))
    sessionized_purchases = purchases.filter(purchases.client_id.notnull())
    if tp.exclude_bots:
        sessionized_purchases = sessionized_purchases.filter(~sessionized_purchases.is_bot)
    event_sessions = events_in_sessions(
        sessionized_purchases.select("event_id", "client_id", "event_ts"), ses.window
    ).select("event_id", "session_id")
    built = build_orders(purchases, items, ledger, event_sessions, tp)
    orders_new = apply_identity(built.orders, pmap).cache()

    hist_orders = read_partitions(  # its readers: order metrics of the sessions written, attribution
        con,
        history_root,
        "fct_orders",
        [d for d in _history_dates(history_root, "fct_orders", plan.start) if d >= plan.recent_from],
        ORDER_SCHEMA,
        columns=_KNOWN_ORDER_COLUMNS,
    )
    hist_orders = hist_orders.filter(~hist_orders.order_date.isin(order_compute))
    orders_known = hist_orders.union(orders_new.select(*_KNOWN_ORDER_COLUMNS))
    return _Orders(orders_new, built.items.cache(), built.rejects.cache(), orders_known)


def _attribution_step(
    ses: _Sessions, ords: _Orders, plan: _DatePlan, tp: TransformParams, stitched_map: ir.Table
) -> tuple[ir.Table, ir.Table, ir.Table]:
    """fct_orders of the written dates with their journeys, fct_attribution under the configured
    identity, and rpt_channel_credit under both."""
    ap = tp.attribution
    order_dates = plan.order_dates
    orders_out = ords.new.filter(ords.new.order_date.isin(order_dates))
    lookback_from = min(order_dates) - timedelta(days=ap.lookback_days + 1)
    horizon = max(ap.lookback_days + 1, tp.markov_fit_days if "markov" in ap.models else 0)
    hist = ses.history
    cols = ("session_id", "client_id", "session_start", "session_date", "channel", "is_bot")
    att_sessions = (
        hist.filter(hist.session_date >= min(order_dates) - timedelta(days=horizon))
        .select(*cols)
        .union(ses.scoped.select(*cols))
    )
    att_sessions = att_sessions.filter(~att_sessions.is_bot)
    maps = {"strict": None, "stitched": stitched_map}
    configured = "stitched" if tp.identity_stitching else "strict"
    attributions: dict[str, ir.Table] = {}
    for identity, mapping in maps.items():
        id_sessions = apply_identity(att_sessions, mapping).cache()
        id_orders = apply_identity(orders_out, mapping)
        attributions[identity] = _attribution(
            id_sessions, apply_identity(ords.known, mapping), id_orders, order_dates, tp
        )
        if identity == configured:
            journeys = order_journeys(
                id_sessions.filter(id_sessions.session_date >= lookback_from), id_orders, ap
            ).cache()
    j = journeys.rename(_jok="order_key")
    orders_out = orders_out.left_join(j, orders_out.order_key == j._jok).drop("_jok")
    return orders_out, attributions[configured], _channel_credit(attributions, configured)


def _write_outputs(
    warehouse_root: Path, outputs: dict[str, tuple[ir.Table, list[date]]], scoped: ir.Table
) -> tuple[dict[str, list[Path]], dict[str, int]]:
    """Write each output table's partitions; the partition dirs and row counts per table."""
    tables: dict[str, list[Path]] = {}
    counts: dict[str, int] = {}
    per_day = scoped.group_by("session_date").aggregate(n=scoped.count()).to_pyarrow().to_pylist()
    session_rows = {r["session_date"]: r["n"] for r in per_day}
    for name, (t, days) in outputs.items():
        tables[name], counts[name] = _write_table(
            warehouse_root, name, t, days, session_rows if name == "fct_sessions" else None
        )
    return tables, counts


def _reconcile_checks(
    con: ibis.BaseBackend,
    events: ir.Table,
    ses: _Sessions,
    staging_root: Path,
    plan: _DatePlan,
    tp: TransformParams,
    sessions_written: int,
    orders_out: ir.Table,
    items_out: ir.Table,
    rejects_out: ir.Table,
    attribution: ir.Table,
):
    """The reconciliation checks of what this run wrote (``puffy.transform.reconcile``)."""
    session_dates, order_dates = plan.session_dates, plan.order_dates
    n_stg_rejects = 0
    if partition_files(staging_root, STG_REJECTS, session_dates):
        n_stg_rejects = int(read_partitions(con, staging_root, STG_REJECTS, session_dates).count().name("n").execute())
    known_ids = ses.history.select("session_id").union(ses.scoped.select("session_id"))
    first_midnight = ibis.timestamp(datetime.combine(min(session_dates), datetime.min.time()))
    window = ses.window
    earlier = window.filter((window.session_date < min(session_dates)) & (window.session_end >= first_midnight))
    in_scope = ses.sessionizable.filter(ses.sessionizable.file_date.isin(session_dates))
    continuing = events_in_sessions(in_scope.select("event_id", "client_id", "event_ts"), earlier)
    return compute_checks(
        events_e=events.filter(events.file_date.isin(session_dates)),
        rejects_e_count=n_stg_rejects,
        continuing_events=continuing.filter(continuing.session_id.notnull()),
        sessions_out=ses.scoped,  # the rows of fct_sessions, before the 1:1 joins of numbers and metrics
        sessions_written=sessions_written,
        exclude_bots=tp.exclude_bots,
        purchases_o=events.filter((events.event_name == tp.purchase_event) & events.file_date.isin(order_dates)),
        orders_out=orders_out,
        items_out=items_out,
        rejects_out=rejects_out,
        attribution_out=attribution,
        known_session_ids=known_ids,
        models=list(tp.attribution.models),
        session_dates=session_dates,
        order_dates=order_dates,
        window_sessions=window.select("session_id", "session_date"),  # tells unpublished days apart
    )


def _stitched_person_map(con: ibis.BaseBackend, staging_root: Path, days: list[date], tp: TransformParams) -> ir.Table:
    """client_id -> person_id of the stitched identity: client ids sharing a hashed email, plus the
    probabilistic checkout links when ``probabilistic_link`` is on (``puffy.transform.identity``).

    Read from every staged day up to the run's end, so a daily run knows the links a rebuild knows
    (as far as the days staged so far tell). Bot events never join two people.
    """
    cols = ["client_id", "user_email", "user_agent", "event_name", "event_ts", "event_id"]
    ev = read_partitions(con, staging_root, STG_EVENTS, days, columns=cols)
    wanted = ev.user_email.notnull()
    if tp.probabilistic_link:
        wanted = wanted | ev.event_name.isin([tp.checkout_started_event, tp.purchase_event])
    ev = ev.filter(wanted & ev.client_id.notnull())
    ev = annotate_events(ev, user_agent_dimension(ev))
    ev = ev.filter(~ev.is_bot)
    edges = identity_edges(ev)
    if tp.probabilistic_link:
        links = checkout_link_edges(ev, tp.probabilistic_link_minutes, tp.checkout_started_event, tp.purchase_event)
        edges = edges.union(links)
    return person_map(edges).cache()


def _channel_credit(attributions: dict[str, ir.Table], configured: str) -> ir.Table:
    """rpt_channel_credit: per order date, identity, model and channel, the credited orders (Σ credit)
    and revenue (summed in integer cents, so each (date, identity, model) sums to the day's revenue
    exactly); ``is_configured`` marks the identity fct_attribution used."""
    parts = []
    for identity, att in attributions.items():
        cents = (att.attributed_revenue * 100).round().cast("int64")
        per = att.group_by("order_date", "model", "channel").aggregate(
            orders_credited=att.credit.sum(), _cents=cents.sum()
        )
        parts.append(
            per.select(
                "order_date",
                identity=ibis.literal(identity),
                model=per.model,
                channel=per.channel,
                orders_credited=per.orders_credited.round(CREDIT_DECIMALS),
                attributed_revenue=per._cents.cast("float64") / 100.0,
                is_configured=ibis.literal(identity == configured),
            )
        )
    return ibis.union(*parts)


def _attribution(
    sessions: ir.Table,
    orders_known: ir.Table,
    orders_out: ir.Table,
    order_dates: list[date],
    tp: TransformParams,
) -> ir.Table:
    """fct_attribution for ``orders_out``: every model in one pass, the Markov chain fitted per order date.

    The models credit each order from its own touchpoints only, so one pass over all orders equals
    any split by day. The Markov chain of order date D is fitted on the sessions and orders of the
    ``markov_fit_days`` days ending on D, so a day-by-day run fits exactly the chain a rebuild
    fits; each order is weighted with the removal effects of its own date's chain. The chains are
    fitted ``MARKOV_FITS_PER_QUERY`` dates per query (the buyers' rows repeated once per date, the
    other people's journeys counted once: ``windowed_free_transitions``).
    """
    ap = tp.attribution
    att_cols = ["order_key", "person_id", "session_id", "order_ts", "revenue"]
    lookback_from = min(order_dates) - timedelta(days=ap.lookback_days + 1)
    removal = None
    if "markov" in ap.models:
        mp = AttributionParams(**{**ap.model_dump(), "models": ["markov"]})
        days_with_orders = set(orders_out.select("order_date").distinct().to_pyarrow().column(0).to_pylist())
        fit_dates = [d for d in order_dates if d in days_with_orders]
        fitted = []
        # People with an order in some window are fitted window by window (their sessions
        # repeated once per window); everyone else's journeys are counted once, with the range of
        # fit dates each step holds for (exactly the same counts; see windowed_free_transitions).
        free, buying = None, sessions
        if fit_dates:
            span = (min(fit_dates) - timedelta(days=tp.markov_fit_days - 1), max(fit_dates))
            buyers = orders_known.filter(orders_known.order_date.between(*span) & orders_known.person_id.notnull())
            buyers = buyers.select("person_id").distinct()
            in_span = sessions.filter(sessions.session_date.between(*span))
            buying = in_span.semi_join(buyers, "person_id")
            if mp.markov_include_non_converting:
                dates = ibis.memtable(pa.table({"fit_date": pa.array(fit_dates, pa.date32())}))
                free = windowed_free_transitions(
                    in_span.anti_join(buyers, "person_id"), dates, tp.markov_fit_days, mp
                ).to_pandas()
        for i in range(0, len(fit_dates), MARKOV_FITS_PER_QUERY):
            chunk = fit_dates[i : i + MARKOV_FITS_PER_QUERY]
            windows = ibis.memtable(
                pa.table(
                    {
                        "fit_date": pa.array(chunk, pa.date32()),
                        "fit_from": pa.array([d - timedelta(days=tp.markov_fit_days - 1) for d in chunk], pa.date32()),
                    }
                )
            )
            s = buying.join(windows, [buying.session_date >= windows.fit_from, buying.session_date <= windows.fit_date])
            o = orders_known.join(
                windows, [orders_known.order_date >= windows.fit_from, orders_known.order_date <= windows.fit_date]
            )
            extra = free[free["fit_date"].dt.date.isin(chunk)] if free is not None else None
            fitted.append(markov_fits(s, o.select("fit_date", *att_cols), "fit_date", mp, extra_transitions=extra))
        fits = pd.concat(fitted, ignore_index=True) if fitted else pd.DataFrame()
        fits = ibis.memtable(
            pa.table(
                {
                    "fit_date": pa.array(list(fits.get("fit_date", [])), pa.date32()),
                    "channel": pa.array(list(fits.get("channel", [])), pa.string()),
                    "removal_effect": pa.array(list(fits.get("removal_effect", [])), pa.float64()),
                }
            )
        )
        od = orders_out.select("order_key", "order_date")
        removal = od.join(fits, od.order_date == fits.fit_date).select("order_key", "channel", "removal_effect")
    s = sessions.filter(sessions.session_date >= lookback_from)
    data = attribute(s, orders_out.select(*att_cols), ap, removal_effects=removal).to_pyarrow()
    target = pa.schema([(c, ATTRIBUTION_SCHEMA[c].to_pyarrow()) for c in ATTRIBUTION_COLUMNS])
    att = ibis.memtable(data.select(list(ATTRIBUTION_COLUMNS)).cast(target))
    od = orders_out.select(_ok="order_key", order_date="order_date")
    j = att.join(od, att.order_key == od._ok).drop("_ok")
    j = j.mutate(credit=j.credit.round(CREDIT_DECIMALS))
    return cast_to_schema(j, ATTRIBUTION_SCHEMA).cache()


# ----------------------------------------------------------------------------------- export


def export_csv(
    warehouse_root: Path,
    out_dir: Path,
    tables: tuple[str, ...] = CSV_EXPORTS,
    engine_params: PipelineParams | None = None,
) -> list[Path]:
    """Write ``<table>.csv`` for each table (all partitions, in partition order); return the paths.

    DuckDB writes them (``puffy.csv_export``, within ``engine_params``' memory and threads): the
    cells read as the earlier pandas copies did, but string cells that begin with a formula trigger
    (=, +, -, @, tab, CR) are neutralised with a leading single quote.
    """
    from puffy.csv_export import write_table_csv
    from puffy.engine import duckdb_config

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = duckdb_config(engine_params)
    return [
        write_table_csv(partition_files(warehouse_root, table), TABLES[table][0], out_dir / f"{table}.csv", config)
        for table in tables
    ]


# ----------------------------------------------------------------------------------- summaries


def load_table(root: Path, table: str, days: list[date] | None = None) -> pd.DataFrame:
    """Partitions of a warehouse table as one pandas frame (small tables / notebooks only)."""
    files = partition_files(root, table, days)
    schema = TABLES[table][0].to_pyarrow() if table in TABLES else None
    if not files:
        return pa.Table.from_batches([], schema=schema).to_pandas() if schema else pd.DataFrame()
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()


def session_summary(sessions: pd.DataFrame) -> pd.DataFrame:
    """Per channel: sessions, share, conversion rate, orders, revenue (sorted by sessions)."""
    g = sessions.groupby("channel", observed=True)
    out = pd.DataFrame(
        {
            "sessions": g.size(),
            "returning_share": g["is_returning_client"].mean(),
            "product_view_rate": g["viewed_product"].mean(),
            "add_to_cart_rate": g["added_to_cart"].mean(),
            "conversion_rate": g["purchased"].mean(),
            "orders": g["n_orders"].sum(),
            "revenue": g["revenue"].sum().round(2),
        }
    )
    out.insert(1, "share", out["sessions"] / out["sessions"].sum())
    return out.sort_values(["sessions", "revenue"], ascending=False).reset_index()


def channel_revenue_by_model(attribution: pd.DataFrame) -> pd.DataFrame:
    """Attributed revenue per (channel, model), long format, summed in cents; sorted."""
    cents = (attribution["attributed_revenue"] * 100).round().astype("int64")
    out = attribution.assign(cents=cents).groupby(["channel", "model"], as_index=False)["cents"].sum()
    out["revenue"] = out.pop("cents") / 100.0
    return out.sort_values(["channel", "model"]).reset_index(drop=True)
