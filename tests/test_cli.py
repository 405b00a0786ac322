"""The command line: help on every command, one-line errors for bad flags and bad params."""

import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from puffy.cli import COMMANDS, main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "puffy.cli", *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: puffy {command}" in out and "exit codes" in out


def test_bad_date_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--date", "2025-02-30"])
    assert exit_.value.code == 2
    assert "'2025-02-30' is not a date in YYYY-MM-DD form" in capsys.readouterr().err


def test_unknown_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["dq", "--input-dir", "x", "--output-dir", "y", "--bogus"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_underscore_spellings_are_accepted(tmp_path, capsys):
    code = main(["dq", "--input_dir", str(tmp_path / "missing"), "--output_dir", str(tmp_path), "--fail_on_error"])
    assert code == 2
    err = capsys.readouterr().err
    assert "input directory not found" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("engine: duckdb\nbogus_key: 1\n", "unknown key 'bogus_key'"),
        ("engine: postgres\n", "key 'engine'"),
        ("duckdb_threads: -1\n", "key 'duckdb_threads'"),
        ("duckdb_memory_limit: lots\n", "key 'duckdb_memory_limit'"),
        ("engine: [unclosed\n", "not valid YAML at line"),
        ("engine: !!python/object/apply:os.system [echo]\n", "YAML tags are not allowed (tag:yaml.org,2002:python"),
    ],
)
def test_bad_params_stop_with_one_line(tmp_path, yaml_text, expected):
    (tmp_path / "pipeline.yaml").write_text(yaml_text)
    proc = run_cli("run", "--date", "2025-03-01", "--params-dir", str(tmp_path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(tmp_path / "pipeline.yaml") in lines[0] and expected in lines[0]


def test_run_needs_a_date(tmp_path):
    proc = run_cli("run")
    assert proc.returncode == 2 and "give --date D" in proc.stderr


def test_run_for_a_day_without_a_file_names_the_file(tmp_path):
    (tmp_path / "in").mkdir()
    proc = run_cli("run", "--date", "2025-03-01", "--input-dir", str(tmp_path / "in"))
    assert proc.returncode == 2 and "events_20250301.csv" in proc.stderr


def test_fresh_never_deletes_a_real_export(tmp_path):
    """``demo --fresh`` clears outputs and a generated sample, never raw data it did not generate."""
    from puffy.cli import clear_outputs
    from puffy.runner import RunLayout

    real, sample, outputs = tmp_path / "real", tmp_path / "sample", tmp_path / "outputs"
    for d in (real, sample / "_truth", outputs / "warehouse" / "fct_sessions"):
        d.mkdir(parents=True)
    (real / "events_20250301.csv").write_text("timestamp,event_name\n")
    (sample / "events_20250301.csv").write_text("timestamp,event_name\n")
    clear_outputs(RunLayout(outputs, real, tmp_path))
    assert (real / "events_20250301.csv").exists() and not (outputs / "warehouse").exists()
    clear_outputs(RunLayout(outputs, sample, tmp_path))
    assert not sample.exists()


@pytest.mark.parametrize(
    "name, yaml_text, expected",
    [
        ("transform.yaml", "session_timeout_minutes: -5\n", "key 'session_timeout_minutes'"),
        ("channels.yaml", "rules: []\n", "key 'rules'"),
        ("monitoring_rules.yaml", "bogus: 1\n", "unknown key 'bogus'"),
        ("dq_rules.yaml", "contract: [\n", "not valid YAML"),
        ("dq_rules.yaml", "baseline_days: 2\nmin_baseline_days: 3\n", "no baseline could ever form"),
    ],
)
def test_a_typo_in_any_params_file_stops_the_run_before_it_starts(tmp_path, name, yaml_text, expected):
    import shutil

    from puffy.params import DEFAULT_PARAMS_DIR

    params = tmp_path / "params"
    shutil.copytree(DEFAULT_PARAMS_DIR, params)
    (params / name).write_text(yaml_text)
    proc = run_cli("run", "--date", "2025-03-01", "--params-dir", str(params))
    assert proc.returncode == 2, proc.stderr
    assert str(params / name) in proc.stderr and expected in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_params_directory_is_named(tmp_path):
    proc = run_cli("run", "--date", "2025-03-01", "--params-dir", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "params directory not found" in proc.stderr


def test_transform_can_stop_on_a_gate_error(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events_20250301.csv").write_text("client_id,page_url,referrer,timestamp,event_name,event_data,user_agent\n")
    proc = run_cli("transform", "--input-dir", str(raw), "--output-dir", str(tmp_path / "out"), "--fail-on-error")
    assert proc.returncode == 3 and "data-quality status: ERROR" in proc.stderr
    assert not (tmp_path / "out" / "warehouse").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["sample", "--out", "OUT", "--scale", "nan"], "must be a finite number > 0"),
        (
            ["monitor", "--warehouse-dir", "MISSING", "--output-dir", "OUT", "--expected-run-date", "2025-03-01"],
            "warehouse directory not found",
        ),
        (["bench", "--input-dir", "MISSING"], "input directory not found"),
        (
            ["dq", "--input-dir", "OUT", "--output-dir", "OUT", "--start", "2025-03-10", "--end", "2025-03-01"],
            "end 2025-03-01 is before start 2025-03-10",
        ),
        (["bench", "--memory-limit", "lots", "--input-dir", "MISSING"], "key 'duckdb_memory_limit'"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path, args, expected):
    args = [str(tmp_path / a) if a in ("OUT", "MISSING") else a for a in args]
    proc = run_cli(*args)
    assert proc.returncode == 2 and expected in proc.stderr and "Traceback" not in proc.stderr


DQ_HEADER = "client_id,page_url,referrer,timestamp,event_name,event_data,user_agent"


def test_dq_names_the_errors_on_the_terminal_and_shows_the_rejected_lines(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events_20250301.csv").write_text("client_id,page_url\nabc,https://puffy.com/\n")  # no timestamp
    (raw / "events_20250302.csv").write_text(
        DQ_HEADER + "\n1740873600-goodclient01,https://puffy.com/,,2025-03-02T00:00:01.000Z,page_viewed,,ua\n"
        "just,garbage\n"
    )
    code = main(["dq", "--input-dir", str(raw), "--output-dir", str(tmp_path / "dq"), "--fail-on-error"])
    assert code == 3
    out = capsys.readouterr().out
    assert (
        "ERROR schema.unreadable_file: Could not read events_20250301.csv (required column(s) missing: "
        "timestamp, event_name)" in out
    )
    md = (tmp_path / "dq" / "dq_report.md").read_text()
    samples = md.split("## Sample rows", 1)[1]
    assert "| events_20250302.csv | 3 | missing_columns |" in samples  # file, line, reason
    assert "| just,garbage |" in samples


def _export_of_2025_03_01(tmp_path):
    """A raw directory with one file (2025-03-01, one page view)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events_20250301.csv").write_text(
        DQ_HEADER + "\n1740787200-goodclient01,https://puffy.com/,,2025-03-01T00:00:01.000Z,page_viewed,,ua\n"
    )
    return raw


@pytest.mark.parametrize("command", ["dq", "transform"])
def test_a_period_whose_first_or_last_file_has_not_landed_is_a_usage_error_like_run(tmp_path, capsys, command):
    raw = _export_of_2025_03_01(tmp_path)
    out = ["--output-dir", str(tmp_path / "out")]
    code = main(
        [command, "--input-dir", str(raw), *out, "--fail-on-error", "--start", "2025-03-02", "--end", "2025-03-03"]
    )
    assert code == 2  # `puffy run --start 2025-03-02 --end 2025-03-03` says the same
    assert "no raw file for 2025-03-02 (events_20250302.csv has not landed)" in capsys.readouterr().err
    assert main(["run", "--input-dir", str(raw), "--outputs-dir", str(tmp_path / "run"), "--date", "2025-03-02"]) == 2


def test_dq_grades_a_day_without_a_file_inside_the_period(tmp_path, capsys):
    raw = _export_of_2025_03_01(tmp_path)
    (raw / "events_20250303.csv").write_text((raw / "events_20250301.csv").read_text().replace("03-01", "03-03"))
    code = main(
        [
            "dq",
            "--input-dir",
            str(raw),
            "--output-dir",
            str(tmp_path / "dq"),
            "--fail-on-error",
            "--start",
            "2025-03-01",
            "--end",
            "2025-03-03",
        ]
    )
    assert code == 3
    assert "ERROR ingest.missing_file: No raw file for 2025-03-02" in capsys.readouterr().out


def test_an_input_dir_that_is_a_file_says_so(tmp_path, capsys):
    raw = _export_of_2025_03_01(tmp_path)
    assert main(["dq", "--input-dir", str(raw / "events_20250301.csv"), "--output-dir", str(tmp_path / "dq")]) == 2
    assert f"is a file, not an input directory; give its folder, {raw}" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["dq", "transform", "monitor"])
def test_an_output_dir_that_cannot_be_a_directory_is_a_usage_error(tmp_path, capsys, command):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    flags = {
        "dq": ["--input-dir", str(tmp_path)],
        "transform": ["--input-dir", str(tmp_path)],
        "monitor": ["--warehouse-dir", str(tmp_path), "--expected-run-date", "2025-03-01"],
    }[command]
    for bad, why in ((a_file, "exists and is not a directory"), (a_file / "sub", "is not a directory")):
        with pytest.raises(SystemExit) as exit_:
            main([command, *flags, "--output-dir", str(bad)])
        assert exit_.value.code == 2
        assert why in capsys.readouterr().err


def test_a_permission_problem_is_one_line_not_a_crash(tmp_path, capsys, monkeypatch):
    import puffy.cli as cli

    def denied(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out" / "dq_report.md"))

    monkeypatch.setitem(cli.COMMANDS, "dq", denied)
    assert main(["dq", "--input-dir", str(tmp_path), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"puffy dq: error: {tmp_path / 'out' / 'dq_report.md'}: Permission denied"


def test_a_full_disk_under_duckdb_is_one_line_with_what_to_do(tmp_path, capsys, monkeypatch):
    """DuckDB reports a failed write as its own IOException; the errno is in its JSON detail
    (the message below is DuckDB 2.0's, captured on a full 2 MB tmpfs)."""
    import duckdb

    import puffy.cli as cli

    part = tmp_path / "out" / "stg_events" / "part-0.parquet"

    def full(args):
        raise duckdb.IOException(
            'IO Error: Async write failed for range [offset=0, size=26]: {"exception_type":"IO",'
            f'"exception_message":"Could not write file \\"{part}\\": No space left on device","errno":"28"}}'
        )

    monkeypatch.setitem(cli.COMMANDS, "dq", full)
    assert main(["dq", "--input-dir", str(tmp_path), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f'puffy dq: error: Could not write file "{part}": No space left on device; free space there, '
        "or point outputs_dir / duckdb_temp_directory (params/pipeline.yaml) at a larger disk"
    )


@pytest.mark.parametrize(
    "exc, expected",
    [
        # pyarrow's, as raised writing Parquet to a full disk
        (
            OSError(28, "Error writing bytes to file. Detail: [errno 28] No space left on device"),
            "Error writing bytes to file. Detail: [errno 28] No space left on device; free space there",
        ),
        (PermissionError(13, "Permission denied", "/x/y"), "/x/y: Permission denied"),
        (FileNotFoundError(2, "No such file or directory", "/x"), None),  # could be our bug
        (ValueError("No space left on device"), None),  # not an I/O error: the words alone do not count
    ],
)
def test_which_errors_are_the_machines_fault(exc, expected):
    from puffy.cli import environment_failure

    got = environment_failure(exc)
    assert got == expected if expected is None else got.startswith(expected)


def test_a_duckdb_io_error_of_another_kind_is_still_an_internal_error():
    import duckdb

    from puffy.cli import environment_failure

    exc = duckdb.IOException('IO Error: {"exception_type":"IO","exception_message":"No files found","errno":"2"}')
    assert environment_failure(exc) is None
    # DuckDB 2.0's words for a path that does not exist: could be ours
    missing = duckdb.IOException('IO Error: Cannot open file "/proc/nope/x.parquet": No such file or directory')
    assert environment_failure(missing) is None


def test_a_duckdb_file_it_may_not_open_is_the_machines_fault():
    import duckdb

    from puffy.cli import environment_failure

    # DuckDB 2.0's words for COPY ... TO '/sys/x.parquet' (no errno in them, the system's text at the end)
    denied = duckdb.IOException('IO Error: Cannot open file "/sys/x.parquet": Permission denied')
    assert environment_failure(denied) == 'Cannot open file "/sys/x.parquet": Permission denied'


def test_an_object_store_refusing_a_read_midway_is_the_machines_fault():
    """The words each client uses when a store refuses a request (reproduced against moto with IAM
    enforced, credentials that may list a bucket but not read its objects)."""
    import duckdb

    from puffy.cli import environment_failure

    # DuckDB reading s3:// through pyarrow's filesystem: the AWS SDK's words, a traceback inside
    in_duckdb = duckdb.Error(
        'Traceback (most recent call last):\n  File "pyarrow/error.pxi", line 92, in pyarrow.lib.check_status\n'
        "OSError: When getting information for key 'warehouse/fct_orders/date=2025-03-01/part-0.parquet' in "
        "bucket 'puffy-bkt': AWS Error ACCESS_DENIED during HeadObject operation: No response body.\n\n"
        "LINE 1: select * from read_parquet('s3://puffy-bkt/warehouse/fct_orders/date=2025-03-01/part-0.parquet')"
    )
    got = environment_failure(in_duckdb)
    assert got.startswith(
        "s3://puffy-bkt/warehouse/fct_orders/date=2025-03-01/part-0.parquet: the object store refused access "
        "(OSError: When getting information for key"
    )
    assert "\n" not in got and "AWS Error ACCESS_DENIED during HeadObject" in got
    # s3fs: PermissionError without an errno (puffy.storage adds the object's URI)
    assert environment_failure(PermissionError("s3://b/k: Access Denied")).startswith(
        "the object store refused access (s3://b/k: Access Denied); check the credentials in use"
    )
    # not refusals: a local file's permission keeps its own line; other DuckDB errors stay bugs
    assert environment_failure(PermissionError(13, "Permission denied", "/x")) == "/x: Permission denied"
    assert environment_failure(duckdb.ConversionException("Could not convert string 'x' at row 403")) is None
    assert environment_failure(ValueError("AWS Error ACCESS_DENIED")) is None  # not a client's error


def test_an_unexpected_os_error_is_still_an_internal_error(tmp_path, capsys, monkeypatch):
    import puffy.cli as cli

    def missing(args):
        raise FileNotFoundError(2, "No such file or directory", "/nowhere/x")

    monkeypatch.setitem(cli.COMMANDS, "dq", missing)
    monkeypatch.setattr(cli, "REPO_ROOT", tmp_path)  # the crash log goes under tmp_path
    assert main(["dq", "--input-dir", str(tmp_path), "--output-dir", str(tmp_path / "out")]) == 1
    assert "internal error: FileNotFoundError" in capsys.readouterr().err


def test_run_and_report_write_where_outputs_dir_says(tmp_path, capsys, monkeypatch):
    import puffy.cli as cli
    import puffy.report as report

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events_20250301.csv").write_text(DQ_HEADER + "\n")  # only the name matters here
    seen = {}

    def run_range(start, end, layout, **kw):
        seen["run"] = layout.outputs_dir
        return []

    def run_report(outputs_dir, *args, **kw):
        seen["report"] = outputs_dir
        raise cli.UserError("stop here")

    monkeypatch.setattr(cli.runner, "run_range", run_range)
    monkeypatch.setattr(report, "run_report", run_report)
    assert main(["run", "--date", "2025-03-01", "--input-dir", str(raw), "--outputs-dir", str(tmp_path / "real")]) == 0
    assert main(["report", "--outputs-dir", str(tmp_path / "real")]) == 2
    assert seen["run"] == (tmp_path / "real").resolve()
    assert seen["report"] == (tmp_path / "real").resolve()
    assert f"index: {(tmp_path / 'real').resolve() / 'index.html'}" in capsys.readouterr().out


def test_transform_of_a_period_with_a_day_missing_inside_stops_at_the_gate(tmp_path):
    raw = _export_of_2025_03_01(tmp_path)
    (raw / "events_20250303.csv").write_text((raw / "events_20250301.csv").read_text().replace("03-01", "03-03"))
    code = main(
        [
            "transform",
            "--input-dir",
            str(raw),
            "--output-dir",
            str(tmp_path / "out"),
            "--fail-on-error",
            "--start",
            "2025-03-01",
            "--end",
            "2025-03-03",
        ]
    )
    assert code == 3  # like `puffy dq --fail-on-error`: the gate graded the missing day
    assert (tmp_path / "out" / "dq" / "dq_report.md").exists()


@pytest.mark.parametrize(
    "command, flag", [("dq", "--input-dir"), ("transform", "--input-dir"), ("monitor", "--warehouse-dir")]
)
def test_dq_transform_and_monitor_keep_an_object_store_uri_whole(tmp_path, command, flag):
    """Issue 20: the URI reaches the command as a storage Location (not Path's 's3:/b/raw', not a
    refusal as before); file:// is a local path; the mangled form and a URI output dir are refused."""
    from puffy.cli import build_parser
    from puffy.storage import Location

    parser = build_parser()
    extra = ["--expected-run-date", "2025-03-01"] if command == "monitor" else []

    def parse(place: str, out: str = str(tmp_path / "out")):
        return getattr(
            parser.parse_args([command, flag, place, "--output-dir", out, *extra]), flag[2:].replace("-", "_")
        )

    assert parse("s3://bucket/raw_events") == Location("s3", "bucket", "raw_events")
    assert parse("s3a://bucket/raw_events/") == Location("s3a", "bucket", "raw_events")
    assert parse(f"file://{tmp_path}/raw") == tmp_path / "raw"
    for bad in ("s3:/bucket/raw_events", "ftp://host/raw"):
        with pytest.raises(SystemExit):
            parse(bad)
    with pytest.raises(SystemExit):
        parse("s3://bucket/raw_events", "s3://bucket/out")
    assert not (tmp_path / "s3:").exists() and not (REPO_ROOT / "s3:").exists()


def test_validating_the_params_and_finding_the_days_imports_no_engine(tmp_path):
    """`puffy run` validates every params file and lists the input while the notebook kernel starts;
    the runner then only runs notebooks and publishes. Before: that prelude imported Ibis, DuckDB,
    pandas and NumPy (the params models sat beside the expressions that use them), ~0.8 CPU-s."""
    (tmp_path / "events_20250301.csv").write_text("client_id\n")
    code = (
        "import sys; from pathlib import Path; from puffy import cli; from puffy.params import DEFAULT_PARAMS_DIR\n"
        "cli.validate_params_dir(DEFAULT_PARAMS_DIR)\n"
        "from puffy.raw_files import discover_raw_files\n"
        f"assert len(discover_raw_files(Path({str(tmp_path)!r}))) == 1\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'ibis', 'duckdb', 'pandas', 'numpy', 'scipy'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert out.stdout.strip() == "[]"
