"""Connections to the engine that runs the heavy work.

DuckDB (embedded, default) and Spark are both reached through Ibis, so the metrics and transform
code is the same for both. Raw CSV ingest always runs on DuckDB: it is file-level I/O whose
rejects handling (line numbers, reasons) is DuckDB's, and it hands everything else Parquet.

The only backend difference the transform has to know about is ``cache`` below; see
``docs/spark.md`` for running on Spark.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from puffy.params import PipelineParams


def connect(params: PipelineParams | None = None) -> ibis.BaseBackend:
    """An Ibis backend for ``params.engine`` (DuckDB in memory by default)."""
    params = params or PipelineParams()
    if params.engine == "pyspark":
        return _spark(params)
    config = {"memory_limit": params.duckdb_memory_limit, "preserve_insertion_order": True}
    if params.duckdb_threads:
        config["threads"] = params.duckdb_threads
    return ibis.duckdb.connect(**config)


def duckdb_connect(params: PipelineParams | None = None) -> ibis.BaseBackend:
    """A DuckDB backend regardless of ``params.engine`` (for raw ingest)."""
    params = (params or PipelineParams()).model_copy(update={"engine": "duckdb"})
    return connect(params)


def cache(t: ir.Table) -> ir.Table:
    """``t.cache()`` that also works on PySpark when ``t`` contains in-memory tables.

    Why a helper: Ibis registers ``ibis.memtable`` data with a backend in its pre-execute hooks,
    which ``execute`` / ``to_pyarrow`` / ``create_view`` run but the PySpark backend's
    ``Table.cache()`` (ibis 12: ``_create_cached_table`` -> ``session.sql(...).cache()``) does not,
    so Spark fails with ``TABLE_OR_VIEW_NOT_FOUND ibis_pandas_memtable_...``. Registering them
    first (a temp view per memtable, once per session) fixes that; DuckDB needs nothing.
    """
    backend = t.get_backend()
    if backend.name != "pyspark":
        return t.cache()
    backend._register_in_memory_tables(t)
    cached = t.cache()
    # The cached table's schema is read back from Spark, which knows no timestamp precision
    # (``timestamp`` instead of ``timestamp(6)``); keep the expression's types so set operations
    # with uncached tables still type-check. The casts are no-ops in Spark SQL.
    want, got = t.schema(), cached.schema()
    casts = {c: cached[c].cast(want[c]) for c in want.names if got[c] != want[c]}
    return cached.mutate(**casts) if casts else cached


def _spark(params: PipelineParams) -> ibis.BaseBackend:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        from puffy.errors import UserError

        raise UserError("engine 'pyspark' needs the spark extra: pip install -e '.[spark]'") from exc
    # getOrCreate() returns an already running session as is (its static settings, such as the
    # master and driver memory, cannot change any more); the runtime SQL settings below are
    # (re)applied to it explicitly so every run computes with the same semantics.
    session = (
        SparkSession.builder.master(params.spark_master)
        .appName("puffy")
        .config("spark.driver.memory", "2g")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    for key, value in SPARK_SQL_CONF.items():
        session.conf.set(key, value)
    session.sparkContext.setLogLevel("ERROR")
    return ibis.pyspark.connect(session)


#: Runtime SQL settings of every puffy Spark session, and why.
SPARK_SQL_CONF = {
    # Timestamps are naive UTC everywhere in the warehouse; Spark interprets and renders
    # session-local timestamps in this zone.
    "spark.sql.session.timeZone": "UTC",
    # The tables are small per run (days of events): 200 shuffle partitions would be mostly empty
    # tasks. Raise it on a cluster with much more data per run.
    "spark.sql.shuffle.partitions": "8",
}
