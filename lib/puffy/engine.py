"""Connections to the engine that runs the heavy work.

DuckDB (embedded, default) and Spark are both reached through Ibis, so the metrics and transform
code is the same for both. Raw CSV ingest always runs on DuckDB: it is file-level I/O whose
rejects handling (line numbers, reasons) is DuckDB's, and it hands everything else Parquet.

What the transform needs to know about the difference between the two engines lives in this
module: the Spark session settings (``SPARK_SQL_CONF``, ``SPARK_LOCAL_SQL_CONF``) and three fixes
to Ibis' PySpark backend (``_spark_backend_class``); see ``docs/spark.md``.
"""

from __future__ import annotations

import os
import re
import shutil
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.schema as sch
import ibis.expr.types as ir
import pyarrow as pa

from puffy.params import PipelineParams
from puffy.warehouse import owner_gone, pid_tag

#: Runtime SQL settings of every puffy Spark session, and why.
SPARK_SQL_CONF = {
    # The warehouse's timestamps are naive UTC. Spark converts between its TIMESTAMP (an instant)
    # and wall-clock values with the session time zone (e.g. in date(), unix_timestamp()), so it
    # must be UTC, whatever the machine's zone.
    "spark.sql.session.timeZone": "UTC",
}
#: Added when the master is local[...]: one machine, and a run's tables are small (days of
#: events), so fixed per-query and per-stage costs dominate. The default 200 shuffle partitions
#: would be mostly empty tasks; adaptive execution re-plans every query stage by stage, which costs
#: more than it saves here (measured: the generated fortnight ran 2-3x slower with it). On a
#: cluster both are left to the cluster's configuration.
SPARK_LOCAL_SQL_CONF = {
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": None,  # the number of local cores
}
#: The driver's log4j2 configuration when puffy starts a local master (see the file).
SPARK_LOCAL_LOG4J2 = Path(__file__).with_name("spark_log4j2.properties")


@contextmanager
def select_fusion(enabled: bool) -> Iterator[None]:
    """Ibis' ``sql.fuse_selects`` set to ``enabled`` inside the block (usable as a decorator).

    Fusing merges each SELECT into the one above it, inlining its expressions. Ibis then weighs
    every candidate merge by walking the merged expression, about half of what compiling a
    transform query costs. The engines plan the nested SELECTs just as well, except for the sessions
    query, whose per-session URL parsing DuckDB runs slower unfused (measured at 50x: sessions
    15.4-16.1 CPU-s fused, 18.4-20.0 unfused; orders 2.7-2.8 fused, 1.6-1.7 unfused; the same
    tables either way).
    """
    previous = ibis.options.sql.fuse_selects
    ibis.options.sql.fuse_selects = enabled
    try:
        yield
    finally:
        ibis.options.sql.fuse_selects = previous


def spark_parquet(con: ibis.BaseBackend, paths: list) -> Any:
    """Parquet files as one Spark DataFrame on ``con``'s session: one read of every file, with the
    union of their columns (``mergeSchema``, as DuckDB's ``union_by_name``). Not a union of Ibis'
    ``read_parquet`` per file: a schema job per file, and a plan that grows with the files read."""
    return con._session.read.option("mergeSchema", "true").parquet(*[spark_uri(p) for p in paths])


def spark_uri(path) -> str:
    """A file as Spark reads it: a local path as a ``file://`` URI (a cluster's executors read it
    only when it is on storage they all mount); an object-store URI as it is. Not
    ``Path.as_uri()``: it escapes the ``=`` of ``date=D`` as ``%3D``, which Hadoop's paths keep."""
    from puffy.storage import is_remote_location

    return str(path) if is_remote_location(path) else "file://" + Path(path).resolve().as_posix()


def connect(params: PipelineParams | None = None, *, compile_cache: bool = False) -> ibis.BaseBackend:
    """An Ibis backend for ``params.engine`` (DuckDB in memory by default).

    ``compile_cache``: on DuckDB, compile each query shape once per process
    (``puffy.compile_cache``; the transform, whose queries are the same every day)."""
    params = params or PipelineParams()
    if params.engine == "pyspark":
        return _spark(params)
    if compile_cache:
        from puffy.compile_cache import CachingDuckDBBackend

        return CachingDuckDBBackend().connect(**duckdb_config(params))
    return ibis.duckdb.connect(**duckdb_config(params))


def duckdb_config(params: PipelineParams | None = None) -> dict[str, Any]:
    """DuckDB settings from ``params`` (whatever ``params.engine``): raw ingest always runs on
    DuckDB and must keep to the same memory limit as the rest of the pipeline."""
    params = params or PipelineParams()
    config: dict[str, Any] = {"memory_limit": params.duckdb_memory_limit, "preserve_insertion_order": True}
    if params.duckdb_threads:
        config["threads"] = params.duckdb_threads
    if params.duckdb_temp_directory:
        Path(params.duckdb_temp_directory).mkdir(parents=True, exist_ok=True)  # DuckDB creates one level only
        config["temp_directory"] = str(params.duckdb_temp_directory)
    return config


#: Prefix of the directories holding scratch databases (see ``scratch_duckdb``).
SCRATCH_PREFIX = "puffy-scratch-"


#: The gate keeps its tables in memory (compressed) when the raw files it reads, uncompressed, are
#: at most this share of DuckDB's memory limit; above it, in a database file (see ``scratch_duckdb``).
IN_MEMORY_SHARE = 0.25
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*$", re.IGNORECASE)


def memory_limit_bytes(limit: str) -> int | None:
    """``duckdb_memory_limit`` in bytes ('1GB', '512MiB', …); None for a form we do not read ('80%')."""
    m = _SIZE.match(limit)
    if not m:
        return None
    base = 1024 if m.group(3) else 1000
    return int(float(m.group(1)) * base ** "_KMGT".index((m.group(2) or "_").upper()))


def scratch_duckdb(params: PipelineParams | None = None, data_bytes: int | None = None):
    """A DuckDB connection for the gate's tables (every raw event of the run), gone with the connection.

    Small inputs (``data_bytes``, the raw files' size uncompressed, at most ``IN_MEMORY_SHARE`` of
    the memory limit) are kept in an in-memory database with compression on (DuckDB's ``ATTACH
    ':memory:' (COMPRESS)``): the whole gate as a process, alternating with the file, took 0.93x the
    CPU at 10x (7.1 against 7.6 CPU-s, 220 MB of CSV; peak 538 against 567 MiB) and 0.96x on the
    real export (2.9 against 3.1 CPU-s). Larger ones go to a database file: its tables are compressed
    too, and under the memory limit they are read back instead of spilled (at 50x an in-memory
    database made the checks and staging slower than the ingest gained, peak 1.26 against 0.79 GB;
    at 100x the file took the gate from 19.1 s to 16.4 s, peak 1.30 -> 1.18 GB, against an
    uncompressed in-memory database). The file, and what DuckDB spills beside it, sits where DuckDB
    spills: ``duckdb_temp_directory``, else ``.tmp/`` in the working directory (not the system's
    temporary directory, which may be memory). Its directory is named after this process;
    directories of processes that are no longer running are removed here, so a killed run's file
    does not stay.
    """
    import duckdb

    params = params or PipelineParams()
    base = Path(params.duckdb_temp_directory or ".tmp")
    base.mkdir(parents=True, exist_ok=True)
    for old in base.glob(f"{SCRATCH_PREFIX}*"):
        if owner_gone(old.name.removeprefix("puffy-")):
            shutil.rmtree(old, ignore_errors=True)
    scratch = base / f"puffy-{pid_tag('scratch')}"
    scratch.mkdir()
    limit = memory_limit_bytes(params.duckdb_memory_limit)
    in_memory = data_bytes is not None and limit is not None and data_bytes <= IN_MEMORY_SHARE * limit
    try:
        if in_memory:
            con = duckdb.connect(":memory:", config={**duckdb_config(params), "temp_directory": str(scratch)})
            con.execute("ATTACH ':memory:' AS scratch (COMPRESS); USE scratch")
        else:
            con = duckdb.connect(str(scratch / "scratch.duckdb"), config=duckdb_config(params))
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    weakref.finalize(con, shutil.rmtree, scratch, True)
    return con


def _spark(params: PipelineParams) -> ibis.BaseBackend:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        from puffy.errors import UserError

        raise UserError("engine 'pyspark' needs the spark extra: pip install -e '.[spark]'") from exc
    # A session already running in this process (a notebook's, the tests') is returned as it is:
    # its master and driver memory stay, only the runtime SQL settings are (re)applied. A new
    # session takes these builder settings, which win over spark-submit's --master / spark-defaults:
    # under spark-submit, set spark_master to the same master.
    builder = (
        SparkSession.builder.master(params.spark_master)
        .appName("puffy")
        .config("spark.driver.memory", "2g")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if _local_cores(params.spark_master):
        # Quiet start-up on a local master; a cluster keeps its own driver options and logging.
        builder = builder.config(
            "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={SPARK_LOCAL_LOG4J2.as_uri()}"
        )
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - no JVM, a bad master URL: the environment, not a bug
        from puffy.errors import UserError

        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"could not start Spark (spark_master {params.spark_master!r}): {first}. Spark needs "
            "a Java runtime (java on PATH or JAVA_HOME) and a reachable master"
        ) from exc
    session.sparkContext.setLogLevel("ERROR")
    return spark_backend(session)


def spark_backend(session: Any) -> ibis.BaseBackend:
    """An Ibis backend over an existing SparkSession, with puffy's SQL settings and backend fixes.

    For a session made elsewhere (spark-submit, a notebook's ``spark``, Databricks Connect): pass
    the result as ``run_transform(..., con=spark_backend(spark))``.
    """
    try:
        master = session.conf.get("spark.master")
    except Exception:  # noqa: BLE001 - e.g. not readable over Spark Connect: treat as a cluster
        master = ""
    for key, value in spark_sql_conf(master or "").items():
        session.conf.set(key, value)
    return _spark_backend_class()().connect(session)


def spark_sql_conf(master: str) -> dict[str, str]:
    """The runtime SQL settings puffy applies to a Spark session on ``master``."""
    conf = dict(SPARK_SQL_CONF)
    cores = _local_cores(master)
    if cores:
        conf.update({k: v if v is not None else cores for k, v in SPARK_LOCAL_SQL_CONF.items()})
    return conf


def _local_cores(master: str) -> str | None:
    """The cores of a ``local``, ``local[N]``, ``local[*]`` (or ``local[N,F]``) master; None otherwise."""
    local = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", master.strip())
    if not local:
        return None
    cores = local.group(1) or "1"
    return str(os.cpu_count() or 1) if cores == "*" else cores


def _spark_backend_class() -> type:
    """Ibis' PySpark backend with three fixes the transform relies on (ibis 12.0, pandas 3).

    1. ``Table.cache()`` runs ``session.sql(...)`` without the pre-execute hooks that register
       ``ibis.memtable`` data (the user-agent dimension, channel lookups, Markov removal effects)
       as temp views, so a cached expression containing one fails with
       ``TABLE_OR_VIEW_NOT_FOUND ibis_pandas_memtable_...``. The hooks are run first here.
    2. Memtables are handed to Spark as a pandas frame; with pandas 3 a missing string is NaN
       there, and ``createDataFrame(..., verifySchema=False)`` stores it as the *string* 'NaN'.
       They are registered from Arrow instead (PySpark >= 4), or from a pandas frame whose
       missing values are None (PySpark 3.5).
    3. Spark timestamps are always microsecond precision, but the backend reports them without a
       scale (``timestamp``), while memtables and DuckDB say ``timestamp(6)``: set operations
       between a Parquet read or a cached table and a memtable then fail to type-check. Schemas
       read from Spark say ``timestamp(6)``.

    Built lazily so that importing this module never needs pyspark.
    """
    global _SPARK_BACKEND
    if _SPARK_BACKEND is not None:
        return _SPARK_BACKEND
    import pyspark
    from ibis.backends.pyspark import Backend

    ibis.pyspark  # noqa: B018 - loading it through ibis registers ibis.options.pyspark

    arrow_input = int(pyspark.__version__.split(".")[0]) >= 4

    class PuffySparkBackend(Backend):
        def _create_cached_table(self, name: str, expr: Any) -> Any:
            self._run_pre_execute_hooks(expr)
            return super()._create_cached_table(name, expr)

        def _register_in_memory_table(self, op: Any) -> None:
            from ibis.backends.pyspark.datatypes import PySparkSchema

            data = op.data.to_pyarrow(op.schema)
            if not arrow_input:
                frame = data.to_pandas()
                data = frame.astype(object).where(frame.notna(), None)
            df = self._session.createDataFrame(data, schema=PySparkSchema.from_ibis(op.schema))
            df.createOrReplaceTempView(op.name)

        def get_schema(self, table_name: str, **kwargs: Any) -> sch.Schema:
            return _microsecond_timestamps(super().get_schema(table_name, **kwargs))

        def _get_schema_using_query(self, query: str) -> sch.Schema:
            return _microsecond_timestamps(super()._get_schema_using_query(query))

    _SPARK_BACKEND = PuffySparkBackend
    return PuffySparkBackend


_SPARK_BACKEND: type | None = None


def _microsecond_timestamps(schema: sch.Schema) -> sch.Schema:
    return sch.Schema(
        {
            name: dtype.copy(scale=6) if dtype.is_timestamp() and dtype.scale is None else dtype
            for name, dtype in schema.items()
        }
    )


def engine_name(expr: ir.Expr) -> str:
    """Name of the backend an expression runs on ('duckdb', 'pyspark', ...)."""
    return expr._find_backend().name


def record_batches(expr: ir.Table, chunk_size: int) -> Iterator[pa.RecordBatch]:
    """Stream the result of ``expr`` as Arrow record batches of up to ``chunk_size`` rows.

    Ibis 12's DuckDB ``to_pyarrow_batches`` calls ``fetch_record_batch``, which DuckDB 2 removed;
    on DuckDB the compiled query is streamed with ``to_arrow_reader`` instead.
    """
    backend = expr._find_backend()
    if engine_name(expr) == "duckdb":
        backend._run_pre_execute_hooks(expr)  # registers the expression's memtables, as Ibis does
        reader = backend.con.sql(backend.compile(expr)).to_arrow_reader(chunk_size)
    else:
        reader = expr.to_pyarrow_batches(chunk_size=chunk_size)
    yield from reader
