"""The whole daily run in and out of an S3-compatible bucket (issue 20), for real: moto's server on
127.0.0.1 (``tests/support/s3_server.py``), reached by s3fs, pyarrow and DuckDB through the standard
AWS variables only.

A clean generated sample (3 days, scale 0.3, no faults: every day publishes) is run twice with the
daily runner (papermill notebooks): once on local disk, once reading its raw files from
``s3://<raw bucket>/raw_events`` and publishing to ``s3://<warehouse bucket>/warehouse``. The tables
must hold the same rows; a SIGKILL of a run in the middle of its publish must leave readers a whole
day (the old one); the executive summary over the bucket must equal the local one (``puffy.report.run``
and ``puffy report --warehouse-dir s3://…``); ``puffy run --input-dir s3://…`` must work from the
command line, and the forms issue 20 found broken (``s3:/b/x``; ``--outputs-dir s3://…`` making a
local ``s3:`` folder) must be one-line errors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO_ROOT
from puffy import runner
from puffy.params import DEFAULT_PARAMS_DIR
from puffy.publish import read_manifest
from puffy.storage import Location
from puffy.transform.pipeline import TABLES
from puffy.warehouse import partition_dates, partition_files
from support.s3_server import aws_environment, local_s3

pytestmark = pytest.mark.slow

START = date(2025, 2, 25)
DAYS = 3
END = START + timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def s3():
    with local_s3() as server, aws_environment(server):
        yield server


@pytest.fixture(scope="module")
def raw_sample(tmp_path_factory) -> Path:
    from puffy.sample import SampleConfig, generate_sample

    raw = tmp_path_factory.mktemp("raw") / "raw_events"
    generate_sample(
        raw,
        SampleConfig(
            start=START,
            days=DAYS,
            scale=0.3,
            seed=11,
            faults=frozenset(),
            rename_client_id_from=None,
            drop_referrer_from=None,
        ),
    )
    return raw


@pytest.fixture(scope="module")
def raw_bucket(s3, raw_sample) -> Location:
    prefix = Location.parse(f"s3://{s3.new_bucket('raw')}/raw_events")
    for f in sorted(raw_sample.glob("events_*.csv*")):
        (prefix / f.name).upload(f)
    return prefix


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, raw_sample):
    layout = runner.RunLayout(tmp_path_factory.mktemp("local_outputs"), raw_sample, DEFAULT_PARAMS_DIR)
    return layout, runner.run_range(START, END, layout, progress=False)


@pytest.fixture(scope="module")
def bucket_run(tmp_path_factory, s3, raw_bucket):
    warehouse = Location.parse(f"s3://{s3.new_bucket('wh')}/warehouse")
    layout = runner.RunLayout(tmp_path_factory.mktemp("s3_outputs"), raw_bucket, DEFAULT_PARAMS_DIR, warehouse)
    return layout, runner.run_range(START, END, layout, progress=False)


def _rows(files: list[str]) -> pa.Table:
    """The rows of a table's files in one canonical order (every column, sorted), for comparison."""
    table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
    return table.sort_by(
        [(c, "ascending") for c in table.column_names if not pa.types.is_nested(table.schema.field(c).type)]
    )


def test_the_daily_run_reads_a_bucket_and_publishes_to_one(bucket_run):
    layout, results = bucket_run
    assert [(r.date, r.exit_code, r.published) for r in results] == [
        (d.isoformat(), 0, True) for d in (START + timedelta(days=i) for i in range(DAYS))
    ]
    manifest = read_manifest(layout.warehouse)
    assert manifest.generation == DAYS  # one commit per day
    assert manifest.dates("fct_sessions") == [START + timedelta(days=i) for i in range(DAYS)]
    # Nothing of the warehouse on local disk; raw files downloaded once into the intermediate cache.
    assert not (layout.outputs_dir / "warehouse").exists()
    cached = sorted(p.name for p in (layout.intermediate / ".raw_cache").rglob("events_*.csv*"))
    assert cached == sorted(loc.name for loc in layout.input_dir.list())


def test_the_bucket_run_publishes_the_same_rows_as_the_local_run(local_run, bucket_run):
    (local, local_results), (remote, remote_results) = local_run, bucket_run
    assert [r.exit_code for r in local_results] == [r.exit_code for r in remote_results] == [0] * DAYS
    tables = sorted(t for t in TABLES if partition_dates(local.warehouse, t))
    assert tables and tables == sorted(t for t in TABLES if partition_dates(remote.warehouse, t))
    for table in tables:
        days = partition_dates(local.warehouse, table)
        assert partition_dates(remote.warehouse, table) == days, table
        for day in days:
            mine, theirs = (
                partition_files(local.warehouse, table, [day]),
                partition_files(remote.warehouse, table, [day]),
            )
            assert all(f.startswith("s3://") and "/v-" in f for f in theirs)
            assert _rows(mine).equals(_rows(theirs)), f"{table} {day}: the rows differ"


def test_a_one_pass_backfill_publishes_each_day_to_the_bucket_with_the_local_runs_facts(
    tmp_path, s3, raw_bucket, local_run
):
    local, _ = local_run
    warehouse = Location.parse(f"s3://{s3.new_bucket('one-pass')}/warehouse")
    layout = runner.RunLayout(tmp_path / "outputs", raw_bucket, DEFAULT_PARAMS_DIR, warehouse)
    results = runner.run_range_one_pass(START, END, layout, progress=False)
    assert [(r.exit_code, r.published) for r in results] == [(0, True)] * DAYS
    assert read_manifest(warehouse).generation == DAYS  # each day audited, then published on its own
    for table in (t for t in TABLES if t.startswith("fct_")):
        for day in partition_dates(local.warehouse, table):
            mine, theirs = partition_files(local.warehouse, table, [day]), partition_files(warehouse, table, [day])
            assert _rows(mine).equals(_rows(theirs)), f"{table} {day}: the rows differ"


def test_monitoring_read_the_published_history_from_the_bucket(local_run, bucket_run):
    """The last day's audit compares with the earlier days' metrics: the same history either way."""
    reports = []
    for layout, _ in (local_run, bucket_run):
        doc = json.loads((layout.run_dir(END) / "monitoring_report.json").read_text(encoding="utf-8"))
        reports.append(doc)
    local_doc, remote_doc = reports
    assert remote_doc["inputs"]["history_dir"].startswith("s3://")
    # The trend chart holds every earlier day's value, read from the history: all three days here.
    assert [p["date"] for p in remote_doc["charts"]["trend"]["sessions"]] == [
        (START + timedelta(days=i)).isoformat() for i in range(DAYS)
    ]
    assert json.dumps(remote_doc["charts"], sort_keys=True) == json.dumps(local_doc["charts"], sort_keys=True)
    assert json.dumps(remote_doc["metrics"], sort_keys=True) == json.dumps(local_doc["metrics"], sort_keys=True)
    assert remote_doc["status"] == local_doc["status"]
    assert sorted(f["id"] for f in remote_doc["findings"]) == sorted(f["id"] for f in local_doc["findings"])


def _report_files(output_dir: Path) -> dict[str, str]:
    """What the executive summary wrote that depends on the data only: kpis.json and the print HTML
    the PDF is made from (the PDF's own bytes carry a creation time)."""
    return {
        name: (output_dir / name).read_text(encoding="utf-8") for name in ("kpis.json", "executive_summary_print.html")
    }


@pytest.fixture(scope="module")
def local_summary(tmp_path_factory, local_run) -> Path:
    """The executive summary of the local run's published warehouse (its output directory)."""
    from puffy import report

    out = tmp_path_factory.mktemp("local_summary")
    assert report.run(local_run[0], output_dir=out).message == f"{START}_{END}"
    return out


def test_the_executive_summary_reads_the_published_warehouse_in_the_bucket(tmp_path, local_summary, bucket_run):
    """``puffy.report.run`` over the bucket run's layout reads the tables from the bucket (nothing of
    the warehouse is on local disk) and writes the same kpis.json and PDF content as over the local run."""
    from puffy import report

    remote, _ = bucket_run
    assert not (remote.outputs_dir / "warehouse").exists()
    assert report.run(remote, output_dir=tmp_path).message == f"{START}_{END}"
    kpis = json.loads((tmp_path / "kpis.json").read_text(encoding="utf-8"))
    assert kpis["days"] == DAYS and kpis["orders"] > 0
    assert _report_files(tmp_path) == _report_files(local_summary)


def test_puffy_report_takes_a_warehouse_uri_from_the_command_line(tmp_path, local_summary, bucket_run):
    """``puffy report --warehouse-dir s3://…``: the notebook reads the bucket, the report is the local one's."""
    remote, _ = bucket_run
    done = _puffy(
        "report",
        "--warehouse-dir",
        remote.warehouse.uri,
        "--outputs-dir",
        str(remote.outputs_dir),
        "--params-dir",
        str(DEFAULT_PARAMS_DIR),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    folder = remote.outputs_dir / "reports" / f"{START}_{END}"
    assert str(folder / "executive_summary.pdf") in done.stdout
    assert _report_files(folder) == _report_files(local_summary)


_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from datetime import date
    from pathlib import Path

    from puffy import publish, runner
    from puffy.params import DEFAULT_PARAMS_DIR
    from puffy.storage import Location

    outputs, raw, warehouse, day, kill_after = sys.argv[1:6]
    real = publish.publish_to_object_store

    def dying(staging, root, on_step=None, **kw):
        prepared = []

        def step(name):
            prepared.append(name)
            if name == kill_after or (kill_after == "second-prepared" and len(prepared) == 2):
                os.kill(os.getpid(), signal.SIGKILL)

        return real(staging, root, step, **kw)

    publish.publish_to_object_store = dying
    layout = runner.RunLayout(Path(outputs), Location.parse(raw), DEFAULT_PARAMS_DIR, Location.parse(warehouse))
    runner.run_range(date.fromisoformat(day), date.fromisoformat(day), layout, progress=False)
""")


def _published_day(warehouse: Location, day: date) -> dict[str, pa.Table]:
    """What a reader sees of ``day``: every table's rows through one read of the manifest."""
    manifest = read_manifest(warehouse)
    return {t: _rows(manifest.files(t, [day])) for t in manifest.tables() if day in manifest.dates(t)}


@pytest.mark.parametrize("kill_after", ["second-prepared", "committed"])
def test_a_run_killed_during_its_publish_leaves_a_whole_day(s3, raw_bucket, bucket_run, kill_after):
    """SIGKILL of a real run (a subprocess) after two of the day's partitions were uploaded (before the
    manifest's PUT), or right after the PUT: readers see the whole old day or the whole new one.

    The re-run day is END, whose published tables the bucket run wrote; the killed run rebuilds the
    same rows, so "old" and "new" are told apart by the manifest's version of each table."""
    layout, _ = bucket_run
    before = read_manifest(layout.warehouse)
    old_versions = {
        t: before.partitions[t][END.isoformat()]["version"] for t in before.tables() if END in before.dates(t)
    }
    old_rows = _published_day(layout.warehouse, END)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "lib"), os.environ.get("PYTHONPATH", "")])}
    # The same outputs directory (a re-run on the same machine): the day's rpt_channel_credit also
    # depends on the earlier days staged in its intermediate/, so a fresh one would rebuild other rows.
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_RUN,
            str(layout.outputs_dir),
            raw_bucket.uri,
            layout.warehouse.uri,
            END.isoformat(),
            kill_after,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]

    after = read_manifest(layout.warehouse)
    new_versions = {t: after.partitions[t][END.isoformat()]["version"] for t in old_versions}
    if kill_after == "committed":
        assert len(set(new_versions.values())) == 1 and set(new_versions.values()).isdisjoint(old_versions.values())
    else:
        assert new_versions == old_versions  # nothing of the killed publish is visible
        orphans = [
            f
            for f in layout.warehouse.files()
            if "/v-" in f.uri
            and f.uri.split("/v-")[1].split("/")[0] not in {v[2:] for v in old_versions.values()}
            and f"date={END}" in f.uri
        ]
        assert orphans, "the killed publish uploaded nothing before its commit: the test killed too early"
    assert _published_day(layout.warehouse, END).keys() == old_rows.keys()
    for table, rows in _published_day(layout.warehouse, END).items():
        assert rows.equals(old_rows[table]), table  # whole (every file present and readable), same rows


def _puffy(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "puffy"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=900,
        env=os.environ.copy(),
    )


def test_puffy_run_takes_an_input_uri_from_the_command_line(tmp_path, s3, raw_bucket):
    warehouse = f"s3://{s3.new_bucket('cli')}/warehouse"
    done = _puffy(
        "run",
        "--date",
        START.isoformat(),
        "--input-dir",
        raw_bucket.uri,
        "--warehouse-dir",
        warehouse,
        "--outputs-dir",
        str(tmp_path / "outputs"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{START}  exit 0  published" in done.stdout
    assert "engine: duckdb" in done.stderr
    assert read_manifest(warehouse).dates("fct_sessions") == [START]


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--input-dir", "s3:/bucket/raw_events", "two slashes"),  # what Path made of s3://bucket/raw_events
        ("--outputs-dir", "s3://bucket/outputs", "must be a local directory"),
        ("--input-dir", "ftp://host/raw", "unsupported URI scheme"),
    ],
)
def test_a_uri_where_it_is_not_supported_is_a_one_line_error(tmp_path, flag, value, message):
    done = _puffy("run", "--date", START.isoformat(), flag, value, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "s3:").exists()  # issue 20: a local folder named 's3:' was created
