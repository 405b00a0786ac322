"""``puffy`` — the command line of the pipeline. ``puffy <command> --help`` documents each command.

User errors (bad flags, bad params, unreadable input) and the machine's (permission denied, a
read-only file system, a full disk) print one line and exit 2; a failing stage
exits with its documented code (see ``puffy.runner``); tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import math
import os
import re
import sys
import traceback
from datetime import date, datetime
from pathlib import Path

from puffy import runner
from puffy.errors import UserError
from puffy.params import DEFAULT_PARAMS_DIR, PROJECT, REPO_ROOT, PipelineParams, load_pipeline_params
from puffy.runlog import configure_console, run_log
from puffy.stage import Layout

log = logging.getLogger("puffy")

EXIT_CODES_HELP = """exit codes:
  0  success (clean, or warnings only)
  2  usage error: bad flag, bad params file, unreadable input, an output directory that cannot be written, a full disk
  3  data-quality gate found an ERROR (transform not run)
  4  transform failed or did not reconcile
  5  monitoring found an ERROR (outputs quarantined, warehouse untouched)
  6  report rendering failed
  1  internal error (a bug: please report it with the log)

The project (params/, notebooks/, outputs/) is $PUFFY_HOME, else the checkout that holds the
working directory, else the one the package was installed from; every run names it first."""


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date in YYYY-MM-DD form") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _output_dir(text: str) -> Path:
    """A directory to write into: an existing one, or one that can be created under an existing one."""
    path = Path(text)
    try:  # exists() raises PermissionError when a parent cannot be searched
        if path.exists() and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: exists and is not a directory")
        nearest = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text}: {exc.strerror}") from None
    if not nearest.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: cannot be created, {nearest} is not a directory")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: {nearest} is not writable")
    return path


def _location(text: str):
    """A directory that may be in object storage: a local ``Path`` as typed, or a
    ``puffy.storage.Location`` for a URI (``s3://b/x`` stays ``s3://b/x``: ``Path`` would make it
    ``s3:/b/x``); an unsupported scheme or a URI that lost a slash is refused in one line."""
    from puffy.storage import Location

    try:
        loc = Location.parse(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return (
        Path(text)
        if loc.is_local and not text.strip().lower().startswith("file:")
        else (loc.path if loc.is_local else loc)
    )


def _local_only(what: str, instead: str):
    """An argparse type for a directory that must be local here: a URI is refused with what to do."""

    def parse(text: str) -> Path:
        found = _location(text)
        if not isinstance(found, Path):
            raise argparse.ArgumentTypeError(f"{text}: {what} must be a local directory here; {instead}")
        return found

    return parse


_INPUT_LOCAL = _local_only(
    "the input", "`puffy run`, `puffy dq` and `puffy transform --input-dir s3://…` read raw files from object storage"
)
_INPUT_HELP = (
    "directory of events_YYYYMMDD.csv[.gz], or an object-store URI (s3://bucket/raw_events; each file is "
    "downloaded once into a cache beside the staged events)"
)


def _local_output_dir(text: str) -> Path:
    """``--outputs-dir``/``--output-dir``: local scratch and reports (a URI is refused, not made a folder ``s3:``)."""
    found = _local_only(
        "the outputs directory (staging, runs, logs)",
        "publish to object storage with --warehouse-dir s3://bucket/warehouse",
    )(text)
    return _output_dir(str(found))


# What the machine, not the code, is to blame for: a one-line error (exit 2), not a crash log.
ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR}
FULL_DISK_HINT = (
    "; free space there, or point outputs_dir / duckdb_temp_directory (params/pipeline.yaml) at a larger disk"
)


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


def _add(p: argparse.ArgumentParser, flag: str, **kw) -> None:
    """Add ``--some-flag`` together with its seed-compatible spelling ``--some_flag``."""
    names = [flag] + ([flag.replace("-", "_").replace("__", "--", 1)] if "-" in flag[2:] else [])
    p.add_argument(*names, **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="puffy",
        description="Puffy daily analytics pipeline.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False,
        )

    p = cmd("demo", "Generate the bundled sample (if needed) and run the daily pipeline over every day of it.")
    _add(p, "--params-dir", type=Path, default=DEFAULT_PARAMS_DIR, help="params directory (default: params/)")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="clear previous outputs and regenerate the bundled sample (a real export is never deleted)",
    )

    p = cmd("sample", "Write a realistic raw export (one CSV per UTC day) with its ground truth in _truth/.")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--start", type=_date, default=date(2025, 2, 23), help="first day (default 2025-02-23)")
    p.add_argument("--days", type=_positive_int, default=14, help="number of days (default 14)")
    p.add_argument("--scale", type=_positive_float, default=1.0, help="K times the real volume (default 1)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--clean", action="store_true", help="inject no faults, no header rename, keep referrer")
    p.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="FAULT",
        help="switch one fault off (repeatable); see --list-faults",
    )
    p.add_argument("--list-faults", action="store_true", help="print the fault switches and exit")

    p = cmd("dq", "Run the data-quality gate over raw files and write dq_report.md/.json.")
    _add(p, "--input-dir", type=_location, required=True, help=_INPUT_HELP)
    _add(p, "--rules", type=Path, default=DEFAULT_PARAMS_DIR / "dq_rules.yaml", help="rules YAML")
    _add(p, "--output-dir", type=_local_output_dir, required=True, help="where the reports go (always local)")
    p.add_argument("--start", type=_date, help="first file date (default: all)")
    p.add_argument("--end", type=_date, help="last file date (default: all)")
    _add(p, "--fail-on-error", action="store_true", help="exit 3 when any finding has ERROR severity")
    _add(
        p,
        "--params-dir",
        type=Path,
        default=DEFAULT_PARAMS_DIR,
        help="params directory whose pipeline.yaml sets the engine and its memory limit",
    )

    p = cmd("transform", "Gate-read raw files and build fct_sessions, fct_orders, fct_attribution (+CSV copies).")
    _add(p, "--input-dir", type=_location, required=True, help=_INPUT_HELP)
    _add(
        p,
        "--output-dir",
        type=_local_output_dir,
        required=True,
        help="warehouse + CSV output directory (always local, as puffy run's outputs_dir)",
    )
    _add(p, "--params-dir", type=Path, default=DEFAULT_PARAMS_DIR, help="params directory")
    p.add_argument("--start", type=_date, help="first date (default: all files)")
    p.add_argument("--end", type=_date, help="last date (default: all files)")
    _add(
        p,
        "--fail-on-error",
        action="store_true",
        help="stop with exit 3, before transforming, when the gate finds an ERROR",
    )

    p = cmd("monitor", "Audit warehouse tables for a run date and write monitoring_report.md/.json.")
    _add(
        p,
        "--warehouse-dir",
        type=_location,
        required=True,
        help="warehouse root (tables/date=... partitions), or a warehouse `puffy run` published to object "
        "storage (s3://bucket/warehouse, read through its publish manifest)",
    )
    _add(p, "--rules", type=Path, default=DEFAULT_PARAMS_DIR / "monitoring_rules.yaml", help="rules YAML")
    _add(p, "--output-dir", type=_local_output_dir, required=True, help="where the reports go (always local)")
    _add(p, "--expected-run-date", type=_date, required=True, help="the date whose partitions must exist")
    _add(p, "--fail-on-error", action="store_true", help="exit 5 when any finding has ERROR severity")

    p = cmd("run", "Run the daily notebooks (papermill) for one date or a range, render reports, publish.")
    p.add_argument("--date", type=_date, help="run one date")
    p.add_argument("--start", type=_date, help="backfill from this date")
    p.add_argument("--end", type=_date, help="backfill to this date (inclusive)")
    _add(p, "--params-dir", type=Path, default=DEFAULT_PARAMS_DIR, help="params directory")
    _add(
        p,
        "--input-dir",
        type=_location,
        help="override params/pipeline.yaml input_dir (a directory or an object-store URI, s3://bucket/raw_events)",
    )
    _add(
        p,
        "--outputs-dir",
        type=_local_output_dir,
        help="override params/pipeline.yaml outputs_dir, e.g. to keep a real export's warehouse apart from the "
        "sample's (relative to the current directory; always local)",
    )
    _add(
        p,
        "--warehouse-dir",
        type=_location,
        help="override params/pipeline.yaml warehouse_dir: where the day is published (a directory or an "
        "object-store URI, s3://bucket/warehouse; default <outputs-dir>/warehouse)",
    )
    _add(p, "--stop-on-error", action="store_true", help="stop a backfill at the first failing day")
    _add(
        p,
        "--day-by-day",
        action="store_true",
        help="a backfill executes every notebook for each day, as the daily runs would have, rather than each "
        "notebook once for the range (README, The scheduler)",
    )

    p = cmd("report", "Execute the executive-summary notebook for a period and render HTML + PDF.")
    p.add_argument(
        "--start", type=_date, help="period start (default: period_days - 1 days before --end, from report.yaml)"
    )
    p.add_argument("--end", type=_date, help="period end (default: last date in the warehouse)")
    _add(p, "--params-dir", type=Path, default=DEFAULT_PARAMS_DIR, help="params directory")
    _add(
        p,
        "--outputs-dir",
        type=_local_output_dir,
        help="override params/pipeline.yaml outputs_dir (relative to the current directory)",
    )
    _add(
        p,
        "--warehouse-dir",
        type=_location,
        help="override params/pipeline.yaml warehouse_dir: the published warehouse to summarise (a directory or "
        "an object-store URI, s3://bucket/warehouse; default <outputs-dir>/warehouse)",
    )

    p = cmd("bench", "Benchmark gate, transform and monitoring on a scaled sample; print events/s and memory.")
    p.add_argument("--scale", type=_positive_float, default=100.0, help="sample scale (default 100)")
    _add(p, "--input-dir", type=_INPUT_LOCAL, help="benchmark these raw files instead of generating")
    _add(p, "--work-dir", type=_output_dir, default=REPO_ROOT / "outputs" / "bench", help="scratch directory")
    p.add_argument("--days", type=_positive_int, default=14, help="days to generate (default 14)")
    _add(p, "--json-out", type=Path, help="also write the figures as JSON here")
    _add(p, "--memory-limit", help="DuckDB memory_limit (default from params/pipeline.yaml)")
    _add(
        p,
        "--daily-days",
        type=_non_negative_int,
        default=3,
        help="also time `puffy run` for this many days of a 1x sample (default 3; 0: skip)",
    )
    _add(
        p,
        "--no-commands",
        action="store_true",
        help="skip timing the seed's commands as whole processes (they gate and transform the input "
        "twice more, and write its CSV copies: hours and tens of GB at 1000x)",
    )
    _add(
        p,
        "--backfill-days",
        type=_non_negative_int,
        default=0,
        help="also time one `puffy run --start --end` over this many days of a 1x sample, as a whole "
        "process (14 and 365 are judged against issue 17's targets; default 0: skip)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_console(args.verbose)
    if PROJECT.problem:
        print(f"puffy {args.command}: error: {PROJECT.problem}", file=sys.stderr)
        return UserError.exit_code
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"puffy {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("puffy: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        reason = environment_failure(exc)
        if reason is None:  # a bug: one line for the user, the traceback in a log file
            return _internal_error(args, exc)
        print(f"puffy {args.command}: error: {reason}", file=sys.stderr)
        return UserError.exit_code


def environment_failure(exc: Exception) -> str | None:
    """What went wrong, in one line, when ``exc`` is the machine's fault (a full disk, a missing
    permission, a read-only filesystem); None when it may be a bug.

    Python and pyarrow raise ``OSError`` with an errno. DuckDB raises its own ``IOException``:
    a failed write carries the errno and the operation in a JSON detail of its message, a file
    that cannot be opened ends its message with the system's text ("…: Permission denied").
    """
    refused = store_refusal(exc)
    if refused is not None:
        return refused
    if isinstance(exc, OSError):
        code, where = exc.errno, f"{exc.filename}: " if exc.filename else ""
        text = f"{where}{exc.strerror or exc}"
    else:
        import duckdb

        if not isinstance(exc, duckdb.IOException):
            return None
        message = str(exc).removeprefix("IO Error: ")
        found = re.search(r'"errno"\s*:\s*"?(\d+)', message)
        detail = re.search(r'"exception_message"\s*:\s*("(?:[^"\\]|\\.)*")', message)
        if found:
            code = int(found.group(1))
            text = json.loads(detail.group(1)) if detail else message
        else:
            code = next((e for e in ENVIRONMENT_ERRNOS if message.endswith(f": {os.strerror(e)}")), None)
            text = message
    if code not in ENVIRONMENT_ERRNOS:
        return None
    return text + (FULL_DISK_HINT if code in (errno.ENOSPC, errno.EDQUOT) else "")


# How the clients say that an object store refused a request: the AWS SDK inside pyarrow (and so in
# DuckDB reads through a pyarrow filesystem) and botocore's error codes; s3fs raises PermissionError.
_REFUSED_RE = re.compile(r"ACCESS_DENIED|AccessDenied|Access Denied|HTTP 403|403 Forbidden|\(403\)")
_AWS_OBJECT_RE = re.compile(r"key '([^']*)' in bucket '([^']*)'")


def store_refusal(exc: BaseException) -> str | None:
    """One line for an object store refusing a request midway (credentials that may list a bucket
    but not read or write an object), naming the object when the client says which; None otherwise.
    A refusal at the start of a command is caught where the command first touches the store."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return None  # a local file's permission: environment_failure's errno branch
    if not isinstance(exc, OSError) and type(exc).__module__.split(".")[0].lstrip("_") not in ("duckdb", "botocore"):
        return None
    message = str(exc)
    if not isinstance(exc, PermissionError) and not _REFUSED_RE.search(message):
        return None
    found = _AWS_OBJECT_RE.search(message)
    where = f"s3://{found.group(2)}/{found.group(1)}: " if found else ""
    reason = next((line.strip() for line in message.splitlines() if _REFUSED_RE.search(line)), message)
    return (
        f"{where}the object store refused access ({reason[:300]}); check the credentials in use "
        "(AWS_PROFILE, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and that they may read and write "
        "every object under the bucket's prefixes the pipeline uses, not only list them"
    )


def crash_log_dir(args) -> Path:
    """Where a command's crash log goes: ``logs/`` under the outputs it was writing (``--outputs-dir``,
    ``--output-dir``, else ``outputs_dir`` of its params), so that a pipeline pointed elsewhere does
    not leave its tracebacks in the checkout; the checkout's ``outputs/logs`` only when none is known."""
    chosen = getattr(args, "outputs_dir", None) or getattr(args, "output_dir", None) or getattr(args, "work_dir", None)
    if chosen is None and getattr(args, "params_dir", None) is not None:
        try:
            chosen = load_pipeline_params(args.params_dir).outputs_dir
        except Exception:  # the params are what is broken: fall back to the checkout
            chosen = None
    return Path(chosen or REPO_ROOT / "outputs").resolve() / "logs"


def _internal_error(args, exc: Exception) -> int:
    """One line for the user, the traceback in a log file."""
    log_path = crash_log_dir(args) / f"crash-{datetime.now():%Y%m%dT%H%M%S}.log"
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(traceback.format_exc(), encoding="utf-8")
    except OSError:  # the outputs directory itself is unwritable: the user's temporary directory
        import tempfile

        log_path = Path(tempfile.gettempdir()) / log_path.name
        log_path.write_text(traceback.format_exc(), encoding="utf-8")
    print(
        f"puffy {args.command}: internal error: {type(exc).__name__}: {exc} (traceback in {log_path})", file=sys.stderr
    )
    if os.environ.get("PUFFY_DEBUG"):
        traceback.print_exc()
    return runner.EXIT_INTERNAL


# --- commands ---------------------------------------------------------------------------------


def _recover(warehouse: Path) -> None:
    """Complete (or undo) a publish into ``warehouse`` that a killed run left unfinished, before a
    command reads it; a read-only warehouse with one is a ``UserError`` (see ``puffy.publish``)."""
    from puffy.publish import recover  # lazily: pyarrow is slow to import for `puffy --help`

    recover(warehouse)


def cmd_sample(args) -> int:
    from puffy.sample import ALL_FAULTS, SampleConfig, generate_sample

    if args.list_faults:
        print("\n".join(sorted(ALL_FAULTS)))
        return 0
    unknown = sorted(set(args.without) - set(ALL_FAULTS))
    if unknown:
        raise UserError(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(sorted(ALL_FAULTS))}")
    kw = {}
    if args.clean:
        kw = {"faults": frozenset(), "rename_client_id_from": None, "drop_referrer_from": None}
    elif args.without:
        kw = {"faults": frozenset(ALL_FAULTS) - set(args.without)}
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"{args.out}: exists and is not a directory (give a directory for the sample)")
    config = SampleConfig(start=args.start, days=args.days, scale=args.scale, seed=args.seed, **kw)
    summary = generate_sample(args.out, config)
    print(f"wrote {args.days} daily files to {args.out} ({summary})")
    return 0


def _require_landed(input_dir: Path, start: date | None, end: date | None) -> None:
    """Like ``puffy run``: the period's first and last day must have a raw file (a UserError, exit 2,
    'the file has not landed'); days without a file inside the period are graded by the gate."""
    from puffy.raw_files import discover_raw_files, file_date_of

    if start and end and end < start:
        raise UserError(f"end {end} is before start {start}")
    available = {file_date_of(p) for p in discover_raw_files(input_dir, start, end)}
    missing = [d for d in dict.fromkeys((start, end)) if d is not None and d not in available]
    if missing:
        raise UserError(f"{input_dir}: no raw file for {missing[0]} (events_{missing[0]:%Y%m%d}.csv has not landed)")


def _require_input(input_dir) -> None:
    """An input in object storage must hold something: a missing bucket or an empty prefix is one
    line saying which (a local directory is checked, with its hints, by ``discover_raw_files``)."""
    from puffy.storage import Location, why_empty

    if isinstance(input_dir, Location):
        with _store_access(input_dir):
            if not input_dir.is_dir():
                raise UserError(
                    f"{input_dir}: no raw files there: {why_empty(input_dir)} (expected events_YYYYMMDD.csv files)"
                )


@contextlib.contextmanager
def _store_access(loc):
    """The store refusing the credentials in use (s3fs raises ``PermissionError``) as one line naming
    ``loc``, not an internal error."""
    try:
        yield
    except PermissionError as exc:
        raise UserError(
            f"{loc}: the object store refused access ({exc}); check the credentials in use (AWS_PROFILE, "
            f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and that they may read this bucket"
        ) from None


def cmd_dq(args) -> int:
    from puffy.gate_reuse import run_gate_kept  # keeps the staged events for `puffy transform` (issue 21)

    _require_input(args.input_dir)
    _require_landed(args.input_dir, args.start, args.end)
    result = run_gate_kept(
        args.input_dir,
        args.rules,
        args.output_dir,
        start=args.start,
        end=args.end,
        engine_params=load_pipeline_params(args.params_dir),
    )
    print(f"engine: {load_pipeline_params(args.params_dir).engine}")
    print(f"data-quality status: {result.status.upper()}")
    for f in result.findings:
        if f.severity == "error":
            print(f"  ERROR {f.id}: {f.message}")
    for name, path in sorted(result.report_paths.items()):
        print(f"  {name}: {path}")
    return runner.EXIT_GATE if args.fail_on_error and result.status == "error" else 0


def cmd_transform(args) -> int:
    from puffy.gate_reuse import gate_or_reuse
    from puffy.transform.pipeline import export_csv, run_transform

    out = Path(args.output_dir)
    staging_root = out / "intermediate"
    _recover(out / "warehouse")  # an interrupted publish: completed (or refused) before the rebuild
    _require_input(args.input_dir)
    _require_landed(args.input_dir, args.start, args.end)
    engine_params = load_pipeline_params(args.params_dir)
    # `puffy dq`'s gate of the same input and rules is reused, else the gate runs (issue 21)
    gate = gate_or_reuse(
        args.input_dir,
        args.params_dir / "dq_rules.yaml",
        out,
        start=args.start,
        end=args.end,
        engine_params=engine_params,
    )
    print(gate.note)
    days = gate.days
    if gate.status == "error":
        print(f"data-quality status: ERROR (see {out / 'dq' / 'dq_report.md'})", file=sys.stderr)
        if args.fail_on_error:
            return runner.EXIT_GATE
    if not days:
        raise UserError(f"{args.input_dir}: no events_YYYYMMDD.csv files in the requested range")
    result = run_transform(
        staging_root,
        out / "warehouse",
        args.params_dir,
        start=days[0],
        end=days[-1],
        engine_params=engine_params,
        mode="rebuild",
    )
    files = export_csv(out / "warehouse", out, engine_params=engine_params)
    print(f"engine: {result.engine}")
    print(f"transform status: {result.status.upper()} (data-quality: {gate.status.upper()})")
    for f in files:
        print(f"  {f}")
    return runner.EXIT_TRANSFORM if result.status == "error" else 0


def cmd_monitor(args) -> int:
    from puffy.monitoring import run_monitoring

    if not isinstance(args.warehouse_dir, Path):
        return _monitor_published(args)
    if not args.warehouse_dir.is_dir():
        raise UserError(f"{args.warehouse_dir}: warehouse directory not found")
    _recover(args.warehouse_dir)  # an interrupted publish: completed (or refused) before reading
    result = run_monitoring(args.warehouse_dir, args.rules, args.output_dir, run_date=args.expected_run_date)
    print(f"engine: {result.engine}")  # of the metric queries: pipeline.yaml beside --rules
    print(f"monitoring status: {result.status.upper()}")
    for name, path in sorted(result.report_paths.items()):
        print(f"  {name}: {path}")
    return runner.EXIT_MONITORING if args.fail_on_error and result.status == "error" else 0


def _monitor_published(args) -> int:
    """``puffy monitor --warehouse-dir s3://…``: audit a day of a warehouse ``puffy run`` published to
    object storage, as the daily run's audit reads it: the history through the publish manifest
    (``monitoring.metrics``), the run date's own partitions from a local copy, since the audit reads
    them several times with pyarrow and takes their file time for the freshness SLA. The copy holds
    the files the manifest, read once, names for the run date, each with its object's last-modified
    time, in a scratch directory under ``--output-dir`` removed afterwards."""
    import tempfile

    from puffy.monitoring import run_monitoring
    from puffy.publish import MANIFEST, read_manifest
    from puffy.storage import why_empty

    root = args.warehouse_dir
    with _store_access(root):
        manifest = read_manifest(root)
        if not manifest.tables():
            if not root.is_dir():
                raise UserError(f"{root}: no published warehouse there: {why_empty(root)}")
            raise UserError(
                f"{root}: no published warehouse there: it holds no publish manifest ({MANIFEST}); "
                f"`puffy run --warehouse-dir {root}` publishes one"
            )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".published-day-", dir=args.output_dir) as scratch:
        audited = Path(scratch) / "warehouse"  # no intermediate/ beside it: staged events are not published
        _copy_published_day(manifest, args.expected_run_date, audited)
        result = run_monitoring(
            audited,
            args.rules,
            args.output_dir,
            run_date=args.expected_run_date,
            history_dir=root,
            audited_as=root.uri,
        )
    print(f"engine: {result.engine}")
    print(f"monitoring status: {result.status.upper()} (publish {manifest.publish_id} of {root})")
    for name, path in sorted(result.report_paths.items()):
        print(f"  {name}: {path}")
    return runner.EXIT_MONITORING if args.fail_on_error and result.status == "error" else 0


def _copy_published_day(manifest, day: date, into: Path) -> None:
    """The files ``manifest`` names for ``day``, every table, as a local warehouse under ``into``
    (``<table>/date=D/<file>``), each with its object's last-modified time as its mtime."""
    from puffy.warehouse import partition_dir

    for table in manifest.tables():
        prefix = manifest.partition(table, day)
        if prefix is None:
            continue  # a table without the day: the audit's freshness finding, as for a local warehouse
        for name in sorted(manifest.partitions[table][day.isoformat()]["files"]):
            obj, local = prefix.join(name), partition_dir(into, table, day) / name
            obj.download(local)
            modified = obj.fs.info(obj.fs_path).get("LastModified")
            if modified is not None:
                os.utime(local, (modified.timestamp(), modified.timestamp()))


def _outputs_dir(args, params: PipelineParams) -> Path:
    return Path(getattr(args, "outputs_dir", None) or params.outputs_dir).resolve()


def _layout(args, params: PipelineParams) -> Layout:
    input_dir = getattr(args, "input_dir", None) or params.input_dir
    warehouse_dir = getattr(args, "warehouse_dir", None) or params.warehouse_dir
    return Layout(
        _outputs_dir(args, params),
        _resolved(input_dir),
        Path(args.params_dir).resolve(),
        None if warehouse_dir is None else _resolved(warehouse_dir),
    )


def _resolved(place):
    """A local path made absolute; an object-store ``Location`` (or URI) as it is."""
    from puffy.storage import Location

    if isinstance(place, Path):
        return place.resolve()
    loc = Location.parse(place)
    return loc.path.resolve() if loc.is_local else loc


def _available_days(layout: Layout) -> list[date]:
    from puffy.raw_files import discover_raw_files, file_date_of

    return [file_date_of(p) for p in discover_raw_files(layout.input_dir)]


def _print_results(results: list[runner.DayResult], layout: Layout, log_file: Path | None = None) -> int:
    """One line per day (exit code, outcome, its reports' directory), then the index and the log."""
    worst = 0
    for r in results:
        if r.published:
            what = "published"
        elif r.quarantine_path:
            what = f"quarantined at {r.stopped_at}: {r.reason}"
        elif r.stopped_at:
            what = f"stopped at {r.stopped_at}: {r.reason}"
        else:
            what = "ok"
        alerted = "" if not r.alert else ("  (alert sent)" if r.alert.get("sent") else "  (alert in alert.json)")
        print(f"{r.date}  exit {r.exit_code}  {what}{alerted}")
        print(f"            reports: {layout.run_dir(date.fromisoformat(r.date))}")
        worst = max(worst, r.exit_code)
    print(f"index: {layout.outputs_dir / 'index.html'}")
    if log_file is not None:
        print(f"log: {log_file}")
    return worst


def _run_header(command: str, layout: Layout, days: str) -> None:
    """The first lines of every run: which checkout, which params, which data, where it writes."""
    log.info("puffy %s %s: %s", command, days, PROJECT.describe())
    log.info("params %s · input %s · outputs %s", layout.params_dir, layout.input_dir, layout.outputs_dir)
    if layout.warehouse_dir is not None:
        log.info("warehouse %s", layout.warehouse)
    log.info("engine: %s", load_pipeline_params(layout.params_dir).engine)


def validate_params_dir(params_dir: Path) -> PipelineParams:
    """Load and validate every params file of ``params_dir`` before any data is touched, so a typo
    anywhere is one line and exit 2, not a failed notebook halfway through a run."""
    from puffy.channel_rules import load_channel_rules
    from puffy.monitoring.rules import load_rules as load_monitoring_rules
    from puffy.report.params import load_report_params
    from puffy.transform.params import load_transform_params

    params = load_pipeline_params(params_dir)
    transform = load_transform_params(params_dir)  # with dq_rules.yaml, whose contract names the events
    load_channel_rules(Path(params_dir) / transform.channels_file)
    if (Path(params_dir) / "monitoring_rules.yaml").exists():
        load_monitoring_rules(Path(params_dir) / "monitoring_rules.yaml")
    load_report_params(params_dir)
    return params


def cmd_run(args) -> int:
    if args.date and (args.start or args.end):
        raise UserError("give either --date or --start/--end, not both")
    if args.date:
        start = end = args.date
    elif args.start and args.end:
        start, end = args.start, args.end
    else:
        raise UserError("give --date D, or --start D1 --end D2")
    if end < start:
        raise UserError(f"--end {end} is before --start {start}")
    layout = _layout(args, load_pipeline_params(args.params_dir))
    label = start.isoformat() if start == end else f"{start}_{end}"
    # The notebook kernel starts first (inside the run's log, which takes its stderr): its start and
    # imports (~3 s) overlap validating every params file and listing the input. The header waits for
    # both, so that a usage error is the only line a user sees.
    with run_log(layout.outputs_dir, label) as log_file, runner.KernelSession():
        validate_params_dir(args.params_dir)
        available = set(_available_days(layout))
        missing = [d for d in (start, end) if d not in available]
        if missing:
            raise UserError(f"{layout.input_dir}: no raw file for {missing[0]} (events_{missing[0]:%Y%m%d}.csv)")
        _run_header("run", layout, label)
        run_range = runner.run_range if args.day_by_day or start == end else runner.run_range_one_pass
        results = run_range(start, end, layout, stop_on_error=args.stop_on_error)
        code = _print_results(results, layout, log_file)
        log.info("puffy run %s: exit %d", label, code)
    return code


def clear_outputs(layout: Layout) -> None:
    """``demo --fresh``: remove the pipeline's outputs, and the input if it is a generated sample.

    Raw data is immutable: only a sample this tool generated (``_truth/`` beside its CSVs) is
    removed, to be generated again; a real export the params point at is never deleted.
    """
    import shutil

    for sub in ("intermediate", "warehouse", "runs", "staging", "quarantine", "reports"):
        shutil.rmtree(layout.outputs_dir / sub, ignore_errors=True)
    if (layout.input_dir / "_truth").is_dir():
        shutil.rmtree(layout.input_dir, ignore_errors=True)
    elif layout.input_dir.exists():
        log.info("--fresh keeps %s: it is not a generated sample (no _truth/)", layout.input_dir)


def cmd_demo(args) -> int:
    from puffy.sample import SampleConfig, generate_sample

    params = validate_params_dir(args.params_dir)
    layout = _layout(args, params)
    if not isinstance(layout.input_dir, Path):
        raise UserError(
            f"{layout.input_dir}: `puffy demo` generates its sample into a local input_dir; "
            f"run a bucket's export with `puffy run --input-dir {layout.input_dir}`"
        )
    with runner.exclusive_outputs(layout.outputs_dir), run_log(layout.outputs_dir, "demo") as log_file:
        _run_header("demo", layout, "(every day of the sample)")
        if args.fresh:  # under the lock: --fresh must not clear a running run's outputs
            clear_outputs(layout)
        if not any(layout.input_dir.glob("events_*.csv*")):
            log.info("generating the bundled sample into %s", layout.input_dir)
            generate_sample(layout.input_dir, SampleConfig())
        days = sorted(_available_days(layout))
        results = runner.run_range(days[0], days[-1], layout)
    code = _print_results(results, layout, log_file)
    try:
        from puffy.report import run_report

        report = run_report(layout.outputs_dir, args.params_dir, start=None, end=None)
        print(f"executive summary: {report.html}  ·  {report.pdf}")
    except UserError as exc:  # e.g. every day quarantined: nothing published to summarise
        print(f"executive summary not written: {exc}")
    # Gate/monitoring findings on the faulty sample are the demo's point, not a failure of the demo.
    return 0 if code in runner.EXITS_OF_FINDINGS else code


def cmd_report(args) -> int:
    from puffy.report import run_report

    layout = _layout(args, load_pipeline_params(args.params_dir))
    _recover(layout.warehouse)  # an interrupted local publish: completed (or refused) first
    report = run_report(
        layout.outputs_dir, args.params_dir, start=args.start, end=args.end, warehouse_dir=layout.warehouse
    )
    print(f"executive summary: {report.html}\n                   {report.pdf}")
    return 0


def cmd_bench(args) -> int:
    from puffy.bench import run_benchmark

    return run_benchmark(args)


COMMANDS = {
    "demo": cmd_demo,
    "sample": cmd_sample,
    "dq": cmd_dq,
    "transform": cmd_transform,
    "monitor": cmd_monitor,
    "run": cmd_run,
    "report": cmd_report,
    "bench": cmd_bench,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
