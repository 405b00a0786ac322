"""Connections to the engine that runs the heavy work.

DuckDB (embedded, default) and Spark are both reached through Ibis, so the metrics and transform
code is the same for both. Raw CSV ingest always runs on DuckDB: it is file-level I/O whose
rejects handling (line numbers, reasons) is DuckDB's, and it hands everything else Parquet.
"""

from __future__ import annotations

import ibis

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


def _spark(params: PipelineParams) -> ibis.BaseBackend:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        from puffy.errors import UserError

        raise UserError("engine 'pyspark' needs the spark extra: pip install -e '.[spark]'") from exc
    session = (
        SparkSession.builder.master(params.spark_master)
        .appName("puffy")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "8")
        .getOrCreate()
    )
    return ibis.pyspark.connect(session)
