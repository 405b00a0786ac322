"""engine: pyspark — the whole transform, the gate's metric pass (and so its report) and monitoring's
metric queries on Spark (Ibis' PySpark backend) equal DuckDB's.

A generated fortnight is gated once, then transformed on DuckDB and on a local Spark session
(``local[2]``) into two warehouses. Every table must hold the same rows; floats are compared
exactly (no tolerance): the pipeline's own rounding (integer cents, credit to 1e-12, exact epoch
microseconds) makes both engines produce the same bits, and the Parquet files are byte-identical.

Slow (one Spark session, ~1-2 minutes on 2 cores). Skipped only when pyspark cannot be imported or
``java`` is not on PATH. Run:
    cd /work/main && PYTHONPATH=lib .venv/bin/python -m pytest -m spark tests/test_spark.py -q
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("java is not on PATH (Spark needs a JVM)", allow_module_level=True)

from puffy.dq.gate import run_gate  # noqa: E402
from puffy.engine import connect  # noqa: E402
from puffy.params import REPO_ROOT, PipelineParams  # noqa: E402
from puffy.sample import SampleConfig, generate_sample  # noqa: E402
from puffy.transform.pipeline import RECONCILIATION_TABLE, TABLES, load_table, run_transform  # noqa: E402
from puffy.warehouse import partition_dates, partition_files  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.spark]

SAMPLE = SampleConfig(days=14, scale=0.1, seed=5)
SPARK = PipelineParams(engine="pyspark", spark_master="local[2]")


@pytest.fixture(scope="module")
def spark():
    """One Ibis PySpark backend (local[2]) for the module; the session is stopped at the end."""
    con = connect(SPARK)
    yield con
    con.disconnect()


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory, spark):
    """The fortnight gated once, then rebuilt on DuckDB and on Spark: (duckdb wh, spark wh, results)."""
    root = tmp_path_factory.mktemp("spark")
    generate_sample(root / "raw", SAMPLE)
    run_gate(root / "raw", REPO_ROOT / "params" / "dq_rules.yaml", root / "dq", staging_root=root / "stg")
    days = partition_dates(root / "stg", "stg_events")
    assert len(days) == SAMPLE.days
    results, seconds = {}, {}
    for name, params, con in (("duckdb", PipelineParams(), None), ("pyspark", SPARK, spark)):
        t = time.perf_counter()
        results[name] = run_transform(
            root / "stg",
            root / f"wh_{name}",
            REPO_ROOT / "params",
            start=days[0],
            end=days[-1],
            engine_params=params,
            mode="rebuild",
            con=con,
        )
        seconds[name] = round(time.perf_counter() - t, 1)
    print(f"transform seconds: {seconds}")  # shown with -s / -rP
    return root / "wh_duckdb", root / "wh_pyspark", results


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def test_transform_on_spark_equals_duckdb(warehouses):
    duck_wh, spark_wh, results = warehouses
    duck, spark = results["duckdb"], results["pyspark"]
    assert duck.status == spark.status != "error", (duck.message, spark.message)
    assert spark.row_counts == duck.row_counts
    assert duck.row_counts["fct_sessions"] > 1000 and duck.row_counts["fct_attribution"] > 100

    keys = {name: [partition, *sort] for name, (_, partition, sort) in TABLES.items()}
    keys[RECONCILIATION_TABLE] = ["check"]
    for table, key in keys.items():
        left, right = _sorted(load_table(duck_wh, table), key), _sorted(load_table(spark_wh, table), key)
        assert not left.duplicated(key).any(), f"{table}: {key} is not a key"
        # Exact: same dtypes, same values, NULL where NULL; floats bit for bit (check_exact).
        pd.testing.assert_frame_equal(right, left, check_exact=True, obj=table)

    # The same partitions, and the same bytes in each (same Arrow schema, same row order).
    for table in [*TABLES, RECONCILIATION_TABLE]:
        assert partition_dates(spark_wh, table) == partition_dates(duck_wh, table), table
        for f in partition_files(duck_wh, table):
            g = spark_wh / Path(f).relative_to(duck_wh)
            assert filecmp.cmp(f, g, shallow=False), f"{g} differs from {f}"


def test_spark_backend_memtables_nulls_and_cache(spark, tmp_path):
    """The fixes in puffy.engine's PySpark backend, on the pipeline's pattern (Parquet events joined
    to a small memtable, then cached): the cached join runs, a NULL string from the memtable stays
    NULL (not the string 'NaN'), and timestamps keep the timestamp(6) type of DuckDB and memtables."""
    ts = [datetime(2025, 3, 1, 12, 0, 0, 123456), None, datetime(1970, 1, 1)]
    pq.write_table(pa.table({"k": ["a", "b", None], "ts": pa.array(ts, pa.timestamp("us"))}), tmp_path / "e.parquet")
    events = spark.read_parquet(str(tmp_path / "e.parquet"))
    assert events.schema()["ts"] == ibis.dtype("timestamp(6)")
    dim = ibis.memtable(pd.DataFrame({"dk": ["a", "b"], "label": ["A", None]}))
    joined = events.left_join(dim, events.k == dim.dk).drop("dk").cache()
    assert joined.schema()["ts"] == ibis.dtype("timestamp(6)")
    empty = ibis.memtable(pa.Table.from_batches([], schema=joined.schema().to_pyarrow()))
    assert joined.union(empty).count().execute() == 3
    out = spark.to_pyarrow(joined.order_by(joined.ts.asc(nulls_first=False)))
    assert out.column("label").to_pylist() == [None, "A", None]
    assert out.column("ts").to_pylist() == [ts[2], ts[0], None]
    assert spark._session.conf.get("spark.sql.session.timeZone") == "UTC"


def test_gate_metrics_on_spark_equal_duckdb(warehouses, spark, tmp_path):
    """The gate's metric pass on Spark (over a Parquet snapshot) grades every check as on DuckDB."""
    raw = warehouses[0].parent / "raw"
    rules = REPO_ROOT / "params" / "dq_rules.yaml"
    now = datetime(2025, 3, 10)  # a fixed clock: the future-timestamp count depends on it
    duck = run_gate(raw, rules, tmp_path / "duck", now=now)
    on_spark = run_gate(raw, rules, tmp_path / "spark", now=now, engine_params=SPARK)
    assert on_spark.status == duck.status
    assert [asdict(f) for f in on_spark.findings] == [asdict(f) for f in duck.findings]
    assert on_spark.daily.equals(duck.daily)
    assert len(duck.daily) == SAMPLE.days and (duck.daily["bot_events"] > 0).all()  # a real comparison
    assert not list((tmp_path / "spark").glob(".engine-input-*"))  # the snapshot is removed
    # The whole report, every file's figures and every finding, but for the clock (and the engine,
    # should the report name it).
    assert _without(on_spark.report, VOLATILE_KEYS) == _without(duck.report, VOLATILE_KEYS)
    written = {name: json.loads((tmp_path / name / "dq_report.json").read_text()) for name in ("duck", "spark")}
    assert _without(written["spark"], VOLATILE_KEYS) == _without(written["duck"], VOLATILE_KEYS)
    assert written["duck"]["files"] and written["duck"]["findings"]
    markdown = {name: _no_clocks((tmp_path / name / "dq_report.md").read_text()) for name in ("duck", "spark")}
    assert markdown["spark"] == markdown["duck"]


#: Report keys whose values are clocks, durations or the engine's name: not compared between engines.
VOLATILE_KEYS = {"generated_at", "seconds", "timings", "engine"}
_CLOCK = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")


def _without(value, keys: set[str]):
    """``value`` with the dict entries named in ``keys`` removed, at any depth."""
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def _no_clocks(text: str) -> str:
    return "\n".join(_CLOCK.sub("<clock>", line) for line in text.splitlines() if not line.lower().startswith("engine"))


def test_monitoring_metrics_on_spark_equal_duckdb(warehouses, spark, tmp_path, capsys):
    """Monitoring's metric queries (``puffy.monitoring.metrics``) on Spark return DuckDB's frames
    exactly (values, dtypes, row order), over the DuckDB build of the fortnight and the gate's
    staged events; ``run_monitoring`` on each engine writes byte-identical reports; and with
    ``engine: pyspark`` in the params' pipeline.yaml, ``puffy monitor`` runs them on Spark and says so."""
    from puffy.cli import main
    from puffy.monitoring import MonitoringRules, run_monitoring
    from puffy.monitoring import metrics as m

    duck_wh = warehouses[0]
    staged = duck_wh.parent / "stg"
    days = partition_dates(duck_wh, "fct_sessions")
    sources = m.Sources(duck_wh, duck_wh, staged, days[-1])
    rules = MonitoringRules()
    start, purchase = days[0], rules.revenue.purchase_event
    models = sorted(load_table(duck_wh, "fct_attribution")["model"].unique())
    assert m.engine_of(spark) == "pyspark"

    def frames(con) -> dict[str, pd.DataFrame]:
        day = m.read_day_tables(sources, start, purchase, con)
        return {
            "daily_metrics": m.daily_metrics(sources, start, purchase, con),
            "session_channel_counts": m.session_channel_counts(sources, start, con),
            "click_id_landings": m.click_id_landings(sources, start, rules.segments.click_ids, con),
            **{
                f"attributed_channel_revenue {model}": m.attributed_channel_revenue(sources, start, model, con)
                for model in models
            },
            "order_key_history": _sorted(day.order_key_history, ["d", "order_key"]),
            "attribution_totals": day.attribution_totals,
            "raw_purchase_revenue": pd.DataFrame({"value": [day.raw_purchase_revenue]}),
        }

    on_duckdb, on_spark = frames(m.connect()), frames(spark)
    for name, expected in on_duckdb.items():
        pd.testing.assert_frame_equal(on_spark[name], expected, check_exact=True, obj=name)
    daily = on_duckdb["daily_metrics"]
    # A real comparison: every metric known on every day with orders (a day without has no average
    # order value nor untracked share), sessions and events on every day, orders and rejects.
    assert len(daily) == SAMPLE.days and daily[daily["orders"] > 0].notna().all().all()
    for column in ("sessions", "events", "bot_share", "client_id_null_rate"):
        assert (daily[column] > 0).all(), column
    assert (daily["orders"] > 0).sum() >= SAMPLE.days // 2 and daily["order_rejects"].sum() > 0
    assert len(on_duckdb["order_key_history"]) > 10 and (on_duckdb["attribution_totals"]["orders"] > 0).all()
    assert on_duckdb["click_id_landings"]["value"].sum() > 0 and len(models) >= 4

    now = datetime(2025, 3, 10, tzinfo=UTC)
    rules_path = REPO_ROOT / "params" / "monitoring_rules.yaml"
    for name, params in (("duckdb", PipelineParams()), ("pyspark", SPARK)):
        result = run_monitoring(
            duck_wh,
            rules_path,
            tmp_path / name,
            run_date=days[-1],
            intermediate_dir=staged,
            now=now,
            engine_params=params,
        )
        assert result.engine == name
        assert not [f for f in result.findings if f.id == "monitoring.monitor_failed"], result.findings
    for report in ("monitoring_report.json", "monitoring_report.md"):
        assert (tmp_path / "pyspark" / report).read_bytes() == (tmp_path / "duckdb" / report).read_bytes(), report

    params = tmp_path / "params"
    shutil.copytree(REPO_ROOT / "params", params)
    pipeline = (params / "pipeline.yaml").read_text()
    assert "\nengine: duckdb\n" in pipeline
    (params / "pipeline.yaml").write_text(pipeline.replace("\nengine: duckdb\n", "\nengine: pyspark\n"))
    capsys.readouterr()
    argv = ["monitor", "--warehouse-dir", str(duck_wh), "--rules", str(params / "monitoring_rules.yaml")]
    assert main([*argv, "--output-dir", str(tmp_path / "cli"), "--expected-run-date", str(days[-1])]) == 0
    assert "engine: pyspark\n" in capsys.readouterr().out


def test_a_local_session_starts_without_log_noise(tmp_path):
    """A notebook on engine pyspark shows the JVM's start-up on stderr in its rendered HTML: a local
    session puffy starts logs warnings only, without Spark's profile notices and start-up warnings."""
    import subprocess
    import sys

    code = (
        "from puffy.engine import connect; from puffy.params import PipelineParams; "
        "con = connect(PipelineParams(engine='pyspark', spark_master='local[1]')); "
        "print(con._session.range(3).count())"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "3"
    for noise in ("log4j profile", "Setting default log level", "WARN Utils", "NativeCodeLoader"):
        assert noise not in proc.stderr, proc.stderr


def test_spark_reads_the_published_warehouse_through_file_uris(warehouses, spark, tmp_path):
    """Issue 20: a cluster reads the published tables by URI (s3a:// there; file:// here, since the
    s3a connector's jars cannot be fetched on this machine). The DuckDB build is published with
    ``puffy.publish`` into a local warehouse; Spark reads each table's directory as a
    ``file://`` URI, discovers ``date`` from the ``date=D`` directories, and must see the rows
    DuckDB reads from the same files (counts per date, and the revenue of fct_orders to the cent)."""
    import duckdb

    from puffy.publish import publish

    duck_wh, _, _ = warehouses
    published = tmp_path / "warehouse"
    assert publish(duck_wh, published)
    session = spark._session
    con = duckdb.connect()
    for table in ("fct_sessions", "fct_orders", "fct_attribution"):
        uri = (published / table).as_uri()
        assert uri.startswith("file:///")
        frame = session.read.parquet(uri)
        assert "date" in frame.columns  # partition discovery from date=YYYY-MM-DD
        by_spark = {
            str(r["date"]): r["n"] for r in frame.groupBy("date").count().withColumnRenamed("count", "n").collect()
        }
        files = partition_files(published, table)
        by_duckdb = dict(
            con.execute(
                "SELECT regexp_extract(filename, 'date=([0-9-]+)', 1), count(*) FROM read_parquet($1, filename = true) "
                "GROUP BY 1",
                [files],
            ).fetchall()
        )
        assert by_spark == by_duckdb and by_spark, table
    orders_uri = (published / "fct_orders").as_uri()
    spark_revenue = session.read.parquet(orders_uri).selectExpr("round(sum(revenue) * 100)").collect()[0][0]
    duck_revenue = con.execute(
        "SELECT round(sum(revenue) * 100) FROM read_parquet($1)", [partition_files(published, "fct_orders")]
    ).fetchone()[0]
    assert spark_revenue == duck_revenue > 0
