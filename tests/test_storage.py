"""Paths are URIs (``puffy.storage``) and a day's publish into object storage needs no rename
(``puffy.publish.publish_to_object_store``), tested against a real S3-compatible server: moto's server
mode on 127.0.0.1 (``tests/support/s3_server.py``), reached by s3fs, pyarrow and DuckDB through the
standard AWS variables only.

The URI cases were worked out by hand. The publish fixture mirrors tests/test_publish.py's, built by
hand: six tables; five have a published partition of DAY holding rows ``version = "old"``, one
(``fct_order_rejects``) has none yet; the staging warehouse holds DAY with ``version = "new"`` in all
six; another published day (OTHER) must never change. So the only two acceptable views of DAY are
OLD_VIEW (five "old", rejects absent) and NEW_VIEW (six "new").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from puffy import publish as publish_mod
from puffy.errors import UserError
from puffy.publish import (
    MANIFEST,
    ConcurrentPublishError,
    collect_garbage,
    publish,
    published_dates,
    published_files,
    read_manifest,
    recover,
)
from puffy.storage import Location, is_remote, register_duckdb
from puffy.warehouse import write_partition
from support.s3_server import S3Server, local_s3

# --- URIs (no server) ---------------------------------------------------------------------------------


def test_pathlib_mangles_a_uri_and_location_does_not():
    """The bug of issue 20: ``Path`` collapses the double slash, so `--input-dir s3://b/raw` became s3:/b/raw."""
    assert str(Path("s3://bucket/raw_events")) == "s3:/bucket/raw_events"
    loc = Location.parse("s3://bucket/raw_events")
    assert (loc.scheme, loc.bucket, loc.key) == ("s3", "bucket", "raw_events")
    assert loc.uri == str(loc) == "s3://bucket/raw_events"
    with pytest.raises(UserError, match="two slashes"):
        Location.parse(str(Path("s3://bucket/raw_events")))  # the mangled form is refused, not read as a folder


@pytest.mark.parametrize(
    "text, scheme, bucket, key, uri",
    [
        ("s3://b/wh", "s3", "b", "wh", "s3://b/wh"),
        ("s3://b/wh/", "s3", "b", "wh", "s3://b/wh"),  # a trailing slash names the same prefix
        ("s3a://b/a//b", "s3a", "b", "a/b", "s3a://b/a/b"),  # Spark's scheme is kept; empty segments dropped
        ("S3://b/x", "s3", "b", "x", "s3://b/x"),  # schemes are case-insensitive
        ("s3://b", "s3", "b", "", "s3://b"),
        ("gs://b/k/f.csv", "gs", "b", "k/f.csv", "gs://b/k/f.csv"),
        ("gcs://b/k", "gcs", "b", "k", "gcs://b/k"),
        (
            "abfs://wh@acct.dfs.core.windows.net/d/f",
            "abfs",
            "wh@acct.dfs.core.windows.net",
            "d/f",
            "abfs://wh@acct.dfs.core.windows.net/d/f",
        ),
        ("abfss://c/d", "abfss", "c", "d", "abfss://c/d"),
    ],
)
def test_object_store_uris_parse_without_mangling(text, scheme, bucket, key, uri):
    loc = Location.parse(text)
    assert (loc.scheme, loc.bucket, loc.key, loc.uri) == (scheme, bucket, key, uri)
    assert not loc.is_local and is_remote(text)


@pytest.mark.parametrize(
    "text, path",
    [
        ("file:///tmp/raw_events", "/tmp/raw_events"),
        ("file://localhost/tmp/raw_events", "/tmp/raw_events"),
        ("file:///tmp/a%20b/", "/tmp/a b"),  # percent-decoded; trailing slash dropped
        ("/tmp/raw_events", "/tmp/raw_events"),
    ],
)
def test_file_uris_and_paths_are_local(text, path):
    loc = Location.parse(text)
    assert loc.is_local and loc.path == Path(path) and not is_remote(text)
    assert Location.parse(Path(path)) == loc


def test_a_relative_path_is_taken_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Location.parse("outputs/warehouse").path == tmp_path / "outputs" / "warehouse"


@pytest.mark.parametrize(
    "text, message",
    [
        ("s3://", "missing bucket"),
        ("s3:///key", "missing bucket"),
        ("s3:/b/x", "two slashes"),
        ("ftp://host/x", "unsupported URI scheme 'ftp'"),
        ("file://otherhost/x", "host 'otherhost'"),
        ("s3://b/x?versionId=3", "no '\\?query'"),
        ("", "empty path"),
    ],
)
def test_bad_uris_are_one_sentence_errors(text, message):
    with pytest.raises(UserError, match=message):
        Location.parse(text)


def test_join_parent_name_and_relative_to():
    root = Location.parse("s3a://b/wh")
    f = root.join("fct_sessions", "date=2025-03-01/part-0.parquet")
    assert f.uri == "s3a://b/wh/fct_sessions/date=2025-03-01/part-0.parquet"
    assert (root / "fct_sessions").uri == "s3a://b/wh/fct_sessions"
    assert f.name == "part-0.parquet" and f.parent.name == "date=2025-03-01"
    assert f.relative_to(root) == "fct_sessions/date=2025-03-01/part-0.parquet"
    assert f.fs_path == "b/wh/fct_sessions/date=2025-03-01/part-0.parquet"
    assert Location.parse("s3://b").join("x").uri == "s3://b/x"
    with pytest.raises(ValueError):
        root.join("../escape")
    with pytest.raises(ValueError):
        f.relative_to(Location.parse("s3a://b/other"))
    local = Location.parse("/data/wh").join("t", "date=2025-03-01")
    assert (
        local.path == Path("/data/wh/t/date=2025-03-01")
        and local.relative_to(Location.parse("/data")) == "wh/t/date=2025-03-01"
    )
    with pytest.raises(TypeError):
        os.fspath(root)  # an object-store location never silently becomes a local path


# --- the server ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server():
    with local_s3() as server:
        yield server


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch) -> str:
    """A fresh bucket, and the standard AWS variables pointing at the server (and nothing else)."""
    for key in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL_S3",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ):
        monkeypatch.delenv(key, raising=False)
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    return s3_server.new_bucket()


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path) -> Location:
    if request.param == "local":
        return Location.parse(tmp_path / "root")
    return Location.parse(f"s3://{request.getfixturevalue('bucket')}/root")


def test_write_read_list_delete_round_trip(root: Location, tmp_path):
    assert not root.exists() and root.list() == [] and root.files() == []
    (root / "a.txt").write_text("één\n")  # UTF-8 both ways
    root.join("t", "date=2025-03-01", "x.bin").write_bytes(b"\x00\x01")
    (tmp_path / "up.csv").write_text("a,b\n1,2\n")
    root.join("t", "date=2025-03-02", "up.csv").upload(tmp_path / "up.csv")
    assert (root / "a.txt").read_text() == "één\n"
    assert (root / "a.txt").is_file() and not (root / "a.txt").is_dir()
    assert (root / "t").is_dir() and (root / "t").exists() and not (root / "nope").exists()
    assert [c.name for c in root.list()] == ["a.txt", "t"]
    assert [c.relative_to(root) for c in root.files()] == [
        "a.txt",
        "t/date=2025-03-01/x.bin",
        "t/date=2025-03-02/up.csv",
    ]
    root.join("t", "date=2025-03-02", "up.csv").copy_to(root / "copy.csv")
    assert (root / "copy.csv").read_text() == "a,b\n1,2\n"
    with (root / "streamed.txt").open("w") as fh:
        fh.write("streamed")
    assert (root / "streamed.txt").read_bytes() == b"streamed"
    (root / "t").delete(recursive=True)
    (root / "missing").delete()  # nothing to delete: no error
    assert [c.name for c in root.list()] == ["a.txt", "copy.csv", "streamed.txt"]


def test_parquet_written_through_pyarrow_fs_reads_back(root: Location):
    data = pa.table({"id": [1, 2, 3], "amount": [9.5, None, 0.25]})
    fs, path = root.join("t", "date=2025-03-01", "part-0.parquet").arrow_filesystem()
    pq.write_table(data, path, filesystem=fs)
    assert pq.read_table(path, filesystem=fs).equals(data)


def test_localize_downloads_once_and_again_when_the_object_changes(bucket, tmp_path):
    from puffy.storage import localize

    raw = Location.parse(f"s3://{bucket}/raw_events/events_20250301.csv")
    raw.write_text("a\n1\n")
    first = localize(raw, tmp_path / "cache")
    assert first == tmp_path / "cache" / bucket / "raw_events" / "events_20250301.csv"
    assert first.read_text() == "a\n1\n"
    first.write_text("touched locally")  # the same ETag: the cached copy is used as it is
    assert localize(raw, tmp_path / "cache").read_text() == "touched locally"
    raw.write_text("a\n1\n2\n")  # a new object: fetched again
    assert localize(raw, tmp_path / "cache").read_text() == "a\n1\n2\n"
    assert localize(tmp_path / "x.csv", tmp_path / "cache") == tmp_path / "x.csv"  # local: itself
    assert sorted(p.name for p in first.parent.iterdir()) == [".events_20250301.csv.etag", "events_20250301.csv"]


def test_duckdb_reads_csv_and_parquet_from_the_bucket(bucket):
    """Hand-worked: the CSV's amounts sum to 1.5 + 2.25 = 3.75; the two Parquet partitions hold 3 + 2 rows."""
    for scheme in ("s3", "s3a"):
        root = Location.parse(f"{scheme}://{bucket}/{scheme}")
        (root / "events_20250301.csv").write_text("order_id,amount\nA,1.5\nB,2.25\n")
        for day, ids in (("2025-03-01", [1, 2, 3]), ("2025-03-02", [4, 5])):
            fs, path = root.join("t", f"date={day}", "part-0.parquet").arrow_filesystem()
            pq.write_table(pa.table({"id": ids}), path, filesystem=fs)
        con = duckdb.connect()
        register_duckdb(con, root)
        register_duckdb(con, root)  # idempotent
        assert con.sql(f"select count(*), sum(amount) from read_csv('{root.uri}/events_20250301.csv')").fetchall()[
            0
        ] == (2, 3.75)
        rows = con.sql(
            f"select date::varchar, count(*), sum(id) from read_parquet('{root.uri}/t/*/*.parquet', "
            f"hive_partitioning=true) group by 1 order by 1"
        ).fetchall()
        assert rows == [("2025-03-01", 3, 6), ("2025-03-02", 2, 9)]


def test_a_changed_endpoint_variable_makes_a_new_client(bucket, s3_server, monkeypatch, tmp_path):
    """Credentials and endpoint come from the environment at each use: a client made for one endpoint
    is not reused for another (the second server is a different store: the object is not there)."""
    loc = Location.parse(f"s3://{bucket}/k.txt")
    loc.write_text("here")
    with local_s3() as other:
        monkeypatch.setenv("AWS_ENDPOINT_URL", other.endpoint)
        other.new_bucket()
        assert not loc.exists()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    assert loc.read_text() == "here"


# --- the rename-free publish on the bucket --------------------------------------------------------------

DAY, OTHER = date(2025, 3, 2), date(2025, 3, 1)
TABLES = ["fct_attribution", "fct_order_items", "fct_order_rejects", "fct_orders", "fct_sessions", "rpt_reconciliation"]
NOT_YET_PUBLISHED = "fct_order_rejects"
OLD_VIEW = {t: (None if t == NOT_YET_PUBLISHED else "old") for t in TABLES}
NEW_VIEW = dict.fromkeys(TABLES, "new")


def _rows(version: str, n: int = 3) -> pa.Table:
    return pa.table({"id": list(range(n)), "version": [version] * n})


def _setup(tmp_path: Path, bucket: str) -> tuple[Path, Location]:
    """A local staging warehouse with DAY "new" in six tables; the bucket's warehouse published with
    DAY "old" in five of them and OTHER "other" in all six (by the same protocol)."""
    staging, old = tmp_path / "staging", tmp_path / "staging-old"
    for table in TABLES:
        write_partition(staging, table, DAY, _rows("new"))
        write_partition(old, table, OTHER, _rows("other"))
        if table != NOT_YET_PUBLISHED:
            write_partition(old, table, DAY, _rows("old", 2))
    warehouse = Location.parse(f"s3://{bucket}/warehouse")
    publish(old, warehouse)
    return staging, warehouse


def _view(root: Location) -> dict[str, str | None]:
    """What a reader sees of DAY, table by table: one manifest read, then DuckDB on the bucket."""
    manifest = read_manifest(root)
    con = duckdb.connect()
    register_duckdb(con, root)
    out = {}
    for table in TABLES:
        files = manifest.files(table, [DAY])
        versions = (
            {v for (v,) in con.sql(f"select distinct version from read_parquet({files!r})").fetchall()}
            if files
            else set()
        )
        assert len(versions) <= 1
        out[table] = versions.pop() if versions else None
    return out


def _other_day_intact(root: Location) -> bool:
    con = duckdb.connect()
    register_duckdb(con, root)
    return all(
        con.sql(f"select list(distinct version) from read_parquet({published_files(root, t, [OTHER])!r})").fetchall()[
            0
        ][0]
        == ["other"]
        for t in TABLES
    )


def _version_prefixes(root: Location) -> set[str]:
    """Every ``<table>/date=D/v-…`` prefix holding objects in the bucket (referenced or not)."""
    return {"/".join(f.relative_to(root).split("/")[:3]) for f in root.files() if "/v-" in f.uri}


def _referenced(root: Location) -> set[str]:
    m = read_manifest(root)
    return {f"{t}/date={d}/{e['version']}" for t, days in m.partitions.items() for d, e in days.items()}


def test_the_steps_are_prepare_each_commit_collect(tmp_path, bucket):
    staging, warehouse = _setup(tmp_path, bucket)
    steps: list[str] = []
    published = publish(staging, warehouse, on_step=steps.append)
    assert steps == [f"prepared {t}/date={DAY}" for t in TABLES] + ["committed", "finished"]
    assert [p.relative_to(warehouse).rsplit("/", 1)[0] for p in published] == [f"{t}/date={DAY}" for t in TABLES]
    manifest = read_manifest(warehouse)
    version = manifest.partitions["fct_sessions"][DAY.isoformat()]["version"]
    assert version.startswith("v-") and "=" not in version  # not taken for a partition column by hive-style readers
    assert manifest.files("fct_sessions", [DAY]) == [
        f"{warehouse.uri}/fct_sessions/date={DAY}/{version}/part-0.parquet"
    ]
    assert published[TABLES.index("fct_sessions")].uri == f"{warehouse.uri}/fct_sessions/date={DAY}/{version}"


def test_a_reader_at_every_step_sees_the_old_day_until_the_commit_then_the_new(tmp_path, bucket):
    staging, warehouse = _setup(tmp_path, bucket)
    assert _view(warehouse) == OLD_VIEW
    seen = {}
    publish(staging, warehouse, on_step=lambda step: seen.setdefault(step, _view(warehouse)))
    for step, view in seen.items():
        assert view == (NEW_VIEW if step in ("committed", "finished") else OLD_VIEW), step
    assert _view(warehouse) == NEW_VIEW and _other_day_intact(warehouse)
    assert published_dates(warehouse, "fct_order_rejects") == [OTHER, DAY]
    assert recover(warehouse) == [] and publish_mod.unfinished_publish(warehouse) is None  # nothing to recover


_KILLED_PUBLISH = textwrap.dedent("""
    import os, signal, sys
    from puffy.publish import publish
    staging, warehouse, kill_at = sys.argv[1:4]
    def at_step(name):
        if name == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    publish(staging, warehouse, on_step=at_step)
    sys.exit(99)  # the kill did not happen
""")


@pytest.mark.parametrize(
    "kill_after",
    [f"prepared {TABLES[0]}/date={DAY}", f"prepared {TABLES[-1]}/date={DAY}"],
    ids=["first-table-written", "all-tables-written"],
)
def test_killed_between_the_data_and_the_manifest_the_day_stays_old_and_a_rerun_replaces_it(
    tmp_path, bucket, kill_after
):
    """kill -9 of a publishing process (a real one, on the real client) after its data objects but
    before the manifest's PUT: readers see the whole old day, the orphaned objects are collected, and
    re-running the publish gives the new day; re-running it again changes nothing a reader sees."""
    staging, warehouse = _setup(tmp_path, bucket)
    before = _version_prefixes(warehouse)
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_PUBLISH, str(staging), warehouse.uri, kill_after],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    orphans = _version_prefixes(warehouse) - before
    assert orphans and orphans.isdisjoint(_referenced(warehouse))  # written, but not named by the manifest
    assert _view(warehouse) == OLD_VIEW and _other_day_intact(warehouse)

    assert collect_garbage(warehouse) == []  # younger than the grace: could be a publish still writing

    def later():
        return datetime.now(UTC) + publish_mod.GARBAGE_GRACE + timedelta(seconds=1)

    assert sorted(collect_garbage(warehouse, now=later)) == sorted(warehouse.join(p).uri for p in orphans)
    assert _version_prefixes(warehouse) == before and _view(warehouse) == OLD_VIEW

    publish(staging, warehouse)
    first = read_manifest(warehouse)
    assert _view(warehouse) == NEW_VIEW and _other_day_intact(warehouse)
    publish(staging, warehouse)  # idempotent: the same files again, under a new version
    second = read_manifest(warehouse)
    assert _view(warehouse) == NEW_VIEW and _other_day_intact(warehouse)
    assert second.generation == first.generation + 1
    for table in TABLES:
        assert second.partitions[table][DAY.isoformat()]["files"] == first.partitions[table][DAY.isoformat()]["files"]
    collect_garbage(warehouse, now=later)  # the replaced versions go once their grace has passed
    assert _version_prefixes(warehouse) == _referenced(warehouse)
    assert read_manifest(warehouse).retired == []


def test_a_reader_that_resolved_the_old_manifest_can_finish_within_the_grace(tmp_path, bucket):
    staging, warehouse = _setup(tmp_path, bucket)
    stale = read_manifest(warehouse).files("fct_sessions", [DAY])
    publish(staging, warehouse)
    con = duckdb.connect()
    register_duckdb(con, warehouse)
    assert con.sql(f"select distinct version from read_parquet({stale!r})").fetchall() == [("old",)]
    collect_garbage(warehouse, now=lambda: datetime.now(UTC) + publish_mod.GARBAGE_GRACE + timedelta(seconds=1))
    assert not Location.parse(stale[0]).exists()


def test_a_publish_that_raced_another_is_not_committed(tmp_path, bucket):
    """Two writers: the second commits while the first is still writing its data; the first's
    conditional PUT of the manifest fails, so the second's day is not overwritten by a stale manifest."""
    staging, warehouse = _setup(tmp_path, bucket)
    rival = tmp_path / "rival"
    for table in TABLES:
        write_partition(rival, table, DAY, _rows("rival"))

    def rival_commits_meanwhile(step):
        if step == f"prepared {TABLES[2]}/date={DAY}":
            publish(rival, warehouse)

    with pytest.raises(ConcurrentPublishError, match="another publish"):
        publish(staging, warehouse, on_step=rival_commits_meanwhile)
    assert _view(warehouse) == dict.fromkeys(TABLES, "rival") and _other_day_intact(warehouse)


def test_a_hand_edited_manifest_is_a_user_error(tmp_path, bucket):
    staging, warehouse = _setup(tmp_path, bucket)
    (warehouse / MANIFEST).write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        publish(staging, warehouse)


def test_quarantine_into_the_bucket_copies_the_staged_partitions(tmp_path, bucket):
    staging, warehouse = _setup(tmp_path, bucket)
    target = publish_mod.quarantine(staging, f"s3://{bucket}/quarantine", now=datetime(2025, 3, 3, 6, 0, tzinfo=UTC))
    assert target.uri == f"s3://{bucket}/quarantine/warehouse_quarantine_20250303T060000000000Z"
    assert [f.relative_to(target) for f in target.files()] == [f"{t}/date={DAY}/part-0.parquet" for t in TABLES]
    assert _view(warehouse) == OLD_VIEW  # the published warehouse is untouched
