"""Issue 20 for the standalone commands: `puffy dq` / `puffy transform --input-dir s3://…` and
`puffy monitor --warehouse-dir s3://…` read object storage as `puffy run` does, on a real
S3-compatible server (moto's server mode on 127.0.0.1, ``tests/support/s3_server.py``), reached only
through the standard AWS variables. Their outputs (reports, staging, CSV copies) stay local.

Each command over the bucket is compared with the same command over the local copy of the same data
(the shared 4-day generated sample, every fault on): the gate's report and the warehouse's Parquet
bytes must be the same, the monitoring report the same but for its clock and the paths it names.
Before this change every one of these commands refused a URI at the argument parser (exit 2, "must be
a local directory here"), so each test here failed on the old code.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from puffy.cli import main
from puffy.publish import publish_to_object_store
from puffy.storage import Location
from support.s3_server import aws_environment, local_s3

RUN_DATE = date(2025, 2, 28)  # the sample's last day
CSV_TABLES = ("fct_sessions", "fct_orders", "fct_attribution")


@pytest.fixture(scope="module")
def s3():
    with local_s3() as server, aws_environment(server):
        yield server


@pytest.fixture(scope="module")
def raw_bucket(s3, small_sample) -> Location:
    """The sample's raw files (not its _truth/) under s3://<bucket>/raw_events."""
    prefix = Location.parse(f"s3://{s3.new_bucket('raw')}/raw_events")
    files = sorted(small_sample.glob("events_*.csv*"))
    assert len(files) == 4
    for f in files:
        (prefix / f.name).upload(f)
    return prefix


def _transform(input_dir: str, out: Path, *extra: str) -> None:
    assert main(["transform", "--input-dir", input_dir, "--output-dir", str(out), *extra]) == 0


@pytest.fixture(scope="module")
def local_transform(tmp_path_factory, small_sample) -> Path:
    out = tmp_path_factory.mktemp("local_transform")
    _transform(str(small_sample), out)
    return out


@pytest.fixture(scope="module")
def bucket_transform(tmp_path_factory, raw_bucket) -> Path:
    out = tmp_path_factory.mktemp("bucket_transform")
    _transform(raw_bucket.uri, out)
    return out


def _warehouse_files(out: Path) -> list[Path]:
    return sorted(p.relative_to(out) for p in (out / "warehouse").rglob("*.parquet"))


def _same_warehouse(a: Path, b: Path) -> None:
    files = _warehouse_files(a)
    assert files == _warehouse_files(b) and len(files) > 20
    assert {f.parts[1] for f in files} >= {"fct_sessions", "fct_orders", "fct_attribution", "rpt_channel_credit"}
    different = [str(f) for f in files if not filecmp.cmp(a / f, b / f, shallow=False)]
    assert different == []


def test_dq_gates_a_buckets_raw_files_and_reports_as_on_the_local_copy(tmp_path, small_sample, raw_bucket, capsys):
    local, bucket = tmp_path / "local", tmp_path / "bucket"
    assert main(["dq", "--input-dir", str(small_sample), "--output-dir", str(local)]) == 0
    assert main(["dq", "--input-dir", raw_bucket.uri, "--output-dir", str(bucket)]) == 0
    assert "data-quality status: WARN" in capsys.readouterr().out  # the faulty sample's warnings, both times
    reports = [json.loads((d / "dq_report.json").read_text()) for d in (local, bucket)]
    assert reports[1]["input_dir"] == raw_bucket.uri  # the bucket is named, not a mangled s3:/… or the cache
    for r in reports:
        del r["generated_at"], r["input_dir"]
    assert reports[0] == reports[1] and reports[0]["findings"]
    assert not Path("s3:").exists() and not (tmp_path / "s3:").exists()


def test_transform_of_a_bucket_writes_the_local_runs_warehouse_bytes(local_transform, bucket_transform):
    """Every table, rpt_channel_credit included: its stitched identity reads every staged day from
    the local intermediate/ that the gate of the bucket's files staged, as for a local input."""
    _same_warehouse(local_transform, bucket_transform)
    for table in CSV_TABLES:
        assert filecmp.cmp(local_transform / f"{table}.csv", bucket_transform / f"{table}.csv", shallow=False)
    assert (bucket_transform / "intermediate" / "stg_events").is_dir()  # staging stays local
    assert (bucket_transform / "dq" / "dq_report.json").is_file()


def test_transform_after_dq_of_a_bucket_reuses_its_gate_until_an_object_changes(tmp_path, raw_bucket, capsys):
    period = ["--start", "2025-02-27", "--end", "2025-02-28"]
    out = tmp_path / "out"
    assert main(["dq", "--input-dir", raw_bucket.uri, "--output-dir", str(out), *period]) == 0
    capsys.readouterr()
    _transform(raw_bucket.uri, out, *period)
    assert f"reused the gate of {out} (same 4 raw files and rules)" in capsys.readouterr().out

    # The same bytes written again: a new object (new last-modified time), which may have changed.
    first = raw_bucket / "events_20250225.csv"
    first.write_bytes(first.read_bytes())
    again = tmp_path / "again"
    shutil.copytree(out / ".gate", again / ".gate")  # `puffy dq`'s gate, before the object was rewritten
    _transform(raw_bucket.uri, again, *period)
    assert "not reused: raw file events_20250225.csv changed" in capsys.readouterr().out


def test_monitor_audits_a_warehouse_published_to_a_bucket_as_the_local_one(tmp_path, s3, local_transform, capsys):
    """The transform's warehouse published into a bucket (puffy.publish's manifest protocol) and a
    local copy of it (no intermediate/ beside either: staged events are not published) audited for
    the last day: the same report but for ``generated_at`` and the directories it names."""
    local = tmp_path / "local" / "warehouse"
    shutil.copytree(local_transform / "warehouse", local)
    bucket = Location.parse(f"s3://{s3.new_bucket('wh')}/warehouse")
    assert publish_to_object_store(local, bucket)
    day = RUN_DATE.isoformat()
    reports = {}
    for name, warehouse in (("local", str(local)), ("bucket", bucket.uri)):
        out = tmp_path / f"monitoring_{name}"
        code = main(["monitor", "--warehouse-dir", warehouse, "--output-dir", str(out), "--expected-run-date", day])
        assert code == 0
        assert sorted(p.name for p in out.iterdir()) == ["monitoring_report.json", "monitoring_report.md"]
        reports[name] = (json.loads((out / "monitoring_report.json").read_text()), (out / "monitoring_report.md"))
    assert reports["bucket"][0]["inputs"] == {
        "warehouse_dir": bucket.uri,
        "history_dir": bucket.uri,
        "intermediate_dir": None,
    }
    assert "monitoring status: WARN (publish " in capsys.readouterr().out
    local_json, bucket_json = reports["local"][0], reports["bucket"][0]
    for r in (local_json, bucket_json):
        del r["generated_at"], r["inputs"]
    assert local_json == bucket_json and local_json["metrics"]

    def markdown(path: Path) -> list[str]:
        text = path.read_text().split("\n## Inputs\n")[0]
        return [line for line in text.splitlines() if "generated at" not in line]

    assert markdown(reports["local"][1]) == markdown(reports["bucket"][1])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "puffy.cli", *args], capture_output=True, text=True, env=os.environ.copy(), timeout=120
    )


@pytest.mark.parametrize(
    "command, place, expected",
    [
        ("dq", "s3://puffy-no-such-bucket/raw_events", "bucket 'puffy-no-such-bucket' does not exist"),
        ("transform", "s3://puffy-no-such-bucket/raw_events", "bucket 'puffy-no-such-bucket' does not exist"),
        ("monitor", "s3://puffy-no-such-bucket/warehouse", "bucket 'puffy-no-such-bucket' does not exist"),
        ("dq", "s3://{bucket}/elsewhere", "has nothing under elsewhere/"),
        ("monitor", "s3://{bucket}/raw_events", "holds no publish manifest (_puffy_manifest.json)"),
    ],
)
def test_a_missing_bucket_or_prefix_is_one_line_and_exit_2(tmp_path, raw_bucket, command, place, expected):
    place = place.format(bucket=raw_bucket.bucket)
    flag = "--warehouse-dir" if command == "monitor" else "--input-dir"
    extra = ["--expected-run-date", RUN_DATE.isoformat()] if command == "monitor" else []
    proc = _cli(command, flag, place, "--output-dir", str(tmp_path / "out"), *extra)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"puffy {command}: error: {place}: ") and expected in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "logs").exists()  # no crash log: not an internal error


@pytest.mark.parametrize("command", ["dq", "monitor"])
def test_credentials_the_store_refuses_are_one_line_and_exit_2(tmp_path, monkeypatch, command):
    """A server that checks credentials (moto with IAM enforced from the first request) refuses the
    test keys with 403, which s3fs raises as PermissionError (before: an internal error, exit 1)."""
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "0")  # read by the moto server started below
    with local_s3() as strict, aws_environment(strict):
        flag = "--warehouse-dir" if command == "monitor" else "--input-dir"
        extra = ["--expected-run-date", RUN_DATE.isoformat()] if command == "monitor" else []
        proc = _cli(command, flag, "s3://guarded/prefix", "--output-dir", str(tmp_path / "out"), *extra)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"puffy {command}: error: s3://guarded/prefix: the object store refused access")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_an_object_the_store_refuses_midway_is_one_line_and_exit_2(tmp_path, local_transform):
    """Credentials that may list the bucket and read the publish manifest, but not the tables'
    objects: the store's refusal comes in the middle of `puffy monitor` (copying the run date's
    partitions), after every check at the start passed. Before: an internal error (exit 1, a crash
    log, "PermissionError: Access Denied" naming no object)."""
    local = tmp_path / "warehouse"
    shutil.copytree(local_transform / "warehouse", local)
    with local_s3() as strict, aws_environment(strict):  # a server of its own: it stays strict
        bucket = strict.new_bucket("guarded")
        warehouse = Location.parse(f"s3://{bucket}/warehouse")
        assert publish_to_object_store(local, warehouse)
        limited = strict.credentials_limited_to(
            [
                {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": f"arn:aws:s3:::{bucket}"},
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject"],
                    "Resource": f"arn:aws:s3:::{bucket}/warehouse/_puffy_manifest.json",
                },
            ]
        )
        os.environ.update(limited)  # aws_environment restores the previous variables
        proc = _cli(
            "monitor",
            "--warehouse-dir",
            warehouse.uri,
            "--output-dir",
            str(tmp_path / "out"),
            "--expected-run-date",
            RUN_DATE.isoformat(),
        )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"puffy monitor: error: the object store refused access ({warehouse.uri}/fct_")
    assert "Access Denied" in proc.stderr and "may read and write every object" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "logs").exists()  # no crash log: not an internal error
