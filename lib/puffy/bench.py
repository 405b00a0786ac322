"""``puffy bench``: events/s and peak memory of each stage beside a bare DuckDB scan.

Each stage runs in its own Python process so its peak resident memory (``ru_maxrss``) is its own.
The floor is one DuckDB scan that reads every column of the same raw files; the speed target is
a multiple of it (``TARGET_X_SCAN``), the memory target a peak in MB (``TARGET_PEAK_MB``); see
README, "Performance". A second reference, the bare sessionization, does the least any
implementation of this job must do on the same engine: it shows how much of the gap to the
target is the job itself rather than the pipeline. Last, the daily run as the scheduler runs it
(``puffy run``: papermill, the daily notebooks, their HTML, publishing) is timed day by day on a
1x sample against ``TARGET_DAILY_SECONDS``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from puffy.engine import duckdb_config
from puffy.errors import InputDataError
from puffy.params import DEFAULT_PARAMS_DIR, PipelineParams, load_pipeline_params, validate_params
from puffy.raw_files import discover_raw_files, file_date_of
from puffy.runner import EXITS_OF_FINDINGS
from puffy.warehouse import partition_files

# Largest scale generated in one piece (memory); larger scales are concatenated shards.
SHARD_SCALE = 100.0
# Shard k numbers its orders from k times this, so shards never share a transaction id (a day of
# a 100x shard has a few thousand orders).
SHARD_ORDER_NUMBERS = 1_000_000
# Issue 17's targets (README, "Performance"), for 50x: the gate and the transform together within
# this multiple of the bare scan, and every stage's peak resident memory at most this many MB.
TARGET_X_SCAN = 5.0
TARGET_PEAK_MB = 1200
# The daily run at 1x (every daily notebook through papermill, for one day) within this many seconds.
TARGET_DAILY_SECONDS = 10.0
# A backfill (``puffy run --start --end``, one process) at 1x: 14 days within a minute, a year within
# ten (issue 17's targets; the 14 are the real export's, here a generated sample's).
TARGET_BACKFILL_SECONDS = {14: 60.0, 365: 600.0}
# The stages the speed target is judged on.
TARGET_STAGES = ("gate", "transform")
# Stages that measure the engine, not the pipeline: not part of the pipeline's time or memory.
REFERENCE_STAGES = ("bare_scan", "bare_sessions")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _stage_scan(input_dir: Path, params: PipelineParams) -> dict:
    """One DuckDB pass over every column of every raw file (the floor)."""
    import duckdb

    from puffy.raw_files import discover_raw_files

    files = [str(p) for p in discover_raw_files(input_dir)]
    con = duckdb.connect(config=duckdb_config(params))
    rel = con.sql(f"SELECT * FROM read_csv({files!r}, union_by_name = true, all_varchar = true)")
    aggs = ", ".join(f'max(length("{c}"))' for c in rel.columns)
    sql = f"SELECT count(*), {aggs} FROM read_csv({files!r}, union_by_name = true, all_varchar = true)"
    # Timed on the second pass: the first warms the OS page cache, which the later stages also
    # find warm; a cold first read would make the floor look slower than it is.
    con.execute(sql).fetchone()
    t0 = time.perf_counter()
    n = con.execute(sql).fetchone()[0]
    return {"events": n, "seconds": time.perf_counter() - t0}


def _stage_bare_sessions(input_dir: Path, work: Path, params: PipelineParams) -> dict:
    """The least sessionization can do: raw files in, one row per session with its landing URL out.

    Three statements, each the cheapest form we found (the window passes over three narrow
    columns, the landing's texts joined back by row id): load the files into a table with typed
    timestamps, number each client's sessions (a new one after ``session_timeout_minutes``
    without an event), and write each session's first and last time, event count and landing
    URL, referrer and user agent to Parquet. No validation, reject accounting, URL parsing,
    channels, bots, orders or attribution: what the pipeline adds to this is its own cost.
    """
    import duckdb

    from puffy.dq.rules import load_rules
    from puffy.transform.params import load_transform_params

    files = [str(p) for p in discover_raw_files(input_dir)]
    timeout_s = round(load_transform_params(DEFAULT_PARAMS_DIR).session_timeout_minutes * 60)
    contract = load_rules(DEFAULT_PARAMS_DIR / "dq_rules.yaml").contract
    con = duckdb.connect(config=duckdb_config(params))
    src = f"read_csv({files!r}, union_by_name = true, all_varchar = true, ignore_errors = true)"
    header = con.sql(f"SELECT * FROM {src} LIMIT 0").columns

    def column(canonical: str) -> str:
        """The header names read as ``canonical`` (as the gate reads them: its aliases, any case)."""
        names = {canonical, *(a for a, c in contract.aliases.items() if c == canonical)}
        found = [f'"{h}"' for h in header if h.lower() in {n.lower() for n in names}]
        return f"coalesce({', '.join(found)})" if found else "NULL"

    out = work / "bare_sessions.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    out_sql = "'" + str(out).replace("'", "''") + "'"
    t0 = time.perf_counter()
    con.execute(f"""CREATE TABLE ev AS SELECT {column("client_id")} AS cid, TRY_CAST({column("timestamp")} AS TIMESTAMP)
                    AS ts, {column("page_url")} AS page_url, {column("referrer")} AS referrer,
                    {column("user_agent")} AS user_agent FROM {src}""")
    con.execute(f"""CREATE TABLE sz AS
        SELECT rid, cid, ts, is_start, sum(is_start) OVER (PARTITION BY cid ORDER BY ts, rid
                                                 ROWS UNBOUNDED PRECEDING) AS seq
        FROM (SELECT rowid AS rid, cid, ts,
                     CASE WHEN ts - lag(ts) OVER (PARTITION BY cid ORDER BY ts, rowid) < INTERVAL {timeout_s} SECOND
                          THEN 0 ELSE 1 END AS is_start
              FROM ev WHERE cid IS NOT NULL AND ts IS NOT NULL)""")
    con.execute(f"""COPY (
        SELECT s.cid AS client_id, s.session_start, s.session_end, s.n_events,
               e.page_url AS landing_page_url, e.referrer AS entry_referrer, e.user_agent
        FROM (SELECT cid, seq, min(ts) AS session_start, max(ts) AS session_end, count(*) AS n_events,
                     max(CASE WHEN is_start = 1 THEN rid END) AS landing_rid
              FROM sz GROUP BY cid, seq) AS s
        JOIN ev AS e ON e.rowid = s.landing_rid
    ) TO {out_sql} (FORMAT parquet)""")
    seconds = time.perf_counter() - t0
    sessions = con.execute("SELECT count(*) FROM read_parquet(?)", [str(out)]).fetchone()[0]
    events = con.execute("SELECT count(*) FROM ev").fetchone()[0]
    return {"events": events, "sessions": sessions, "seconds": seconds}


def _stage_gate(input_dir: Path, work: Path, params: PipelineParams) -> dict:
    from puffy.dq.gate import run_gate

    t0 = time.perf_counter()
    result = run_gate(
        input_dir,
        DEFAULT_PARAMS_DIR / "dq_rules.yaml",
        work / "dq",
        staging_root=work / "intermediate",
        engine_params=params,
    )
    return {
        "events": int(result.summary.get("lines_read", 0)),
        "seconds": time.perf_counter() - t0,
        "status": result.status,
        "days": [d.isoformat() for d in result.days],
        "phases": result.timings,
    }


def _stage_transform(work: Path, days: list[str], params: PipelineParams) -> dict:
    from puffy.transform.pipeline import run_transform

    t0 = time.perf_counter()
    result = run_transform(
        work / "intermediate",
        work / "warehouse",
        DEFAULT_PARAMS_DIR,
        start=date.fromisoformat(days[0]),
        end=date.fromisoformat(days[-1]),
        engine_params=params,
        mode="rebuild",
    )
    seconds = time.perf_counter() - t0
    staged = sum(pq.ParquetFile(f).metadata.num_rows for f in partition_files(work / "intermediate", "stg_events"))
    return {
        "events": staged,
        "seconds": seconds,
        "status": result.status,
        "rows_written": result.row_counts,
        "phases": result.timings,
    }


def _stage_monitoring(work: Path, days: list[str]) -> dict:
    from puffy.monitoring import run_monitoring

    t0 = time.perf_counter()
    result = run_monitoring(
        work / "warehouse",
        DEFAULT_PARAMS_DIR / "monitoring_rules.yaml",
        work / "monitoring",
        run_date=date.fromisoformat(days[-1]),
        intermediate_dir=work / "intermediate",
    )
    return {"seconds": time.perf_counter() - t0, "status": result.status}


def _stage_daily_run(work: Path, days: int) -> dict:
    """Wall seconds of ``puffy run`` for each of the first ``days`` days of a 1x sample.

    Days run in order into a fresh outputs directory, so from the second day on each runs as it
    does in production: incrementally, on top of the days published before it; each day in a kernel
    of its own, as the scheduler's ``puffy run --date D`` runs it.
    """
    from puffy.runner import KernelSession, RunLayout, exclusive_outputs, run_day

    raw = _sample_1x(work, days)
    outputs = work / "daily_run"
    shutil.rmtree(outputs, ignore_errors=True)
    layout = RunLayout(outputs, raw, DEFAULT_PARAMS_DIR)
    figures = []
    with exclusive_outputs(outputs):
        for day in [file_date_of(p) for p in discover_raw_files(raw)][:days]:
            t0 = time.perf_counter()
            with KernelSession():
                result = run_day(day, layout)
            figures.append(
                {
                    "date": day.isoformat(),
                    "seconds": time.perf_counter() - t0,
                    "exit_code": result.exit_code,
                    "stages": {st.stage: st.seconds for st in result.stages},
                }
            )
    return {"engine": load_pipeline_params(DEFAULT_PARAMS_DIR).engine, "days": figures}


def _sample_1x(work: Path, days: int) -> Path:
    """A 1x sample of ``days`` days under ``work``, generated once."""
    raw = work / f"raw_scale1_days{days}"
    if not any(raw.glob("events_*.csv")):
        generate_scaled(raw, 1.0, days)
    return raw


def _backfill(work: Path, days: int) -> dict:
    """``puffy run --start --end`` over the first ``days`` days of a 1x sample, as one whole process
    into a fresh outputs directory, as a user backfills."""
    raw = _sample_1x(work, days)
    dates = [file_date_of(p) for p in discover_raw_files(raw)][:days]
    outputs = work / "backfill"
    shutil.rmtree(outputs, ignore_errors=True)
    argv = [sys.executable, "-m", "puffy.cli", "run", "--start", str(dates[0]), "--end", str(dates[-1])]
    run = _timed_command([*argv, "--input-dir", str(raw), "--outputs-dir", str(outputs)])
    return {"days": len(dates), **run}


def _timed_command(argv: list[str]) -> dict:
    """Wall seconds, exit code and peak resident MB of one whole command (its own process)."""
    # stderr goes to a file, not a pipe: a pipe nobody reads while the command runs fills up
    # (64 KiB: a year's backfill logs more) and stops the command at its next line.
    with tempfile.TemporaryFile() as stderr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        err = stderr.read().decode("utf-8", "replace").strip().splitlines()[-3:]
    return {
        "seconds": seconds,
        "exit_code": proc.returncode,
        "peak_rss_mb": usage.ru_maxrss / 1024.0,
        **({"stderr_tail": err} if proc.returncode else {}),
    }


def _stage_commands(input_dir: Path, work: Path, params: PipelineParams) -> dict:
    """The seed's command path as a user types it, each command a whole process: ``puffy dq`` then
    ``puffy transform`` into one output directory (the transform reuses the gate of ``dq``), and
    ``puffy transform`` alone into a fresh one (it gates, then transforms). Both transforms also
    write the CSV copies. Run with a params directory whose pipeline.yaml is the benchmark's
    settings, so the commands get the same memory limit as the stages."""
    import yaml

    params_dir = work / "bench_params"
    shutil.rmtree(params_dir, ignore_errors=True)
    shutil.copytree(DEFAULT_PARAMS_DIR, params_dir)
    settings = json.loads(params.model_dump_json())
    (params_dir / "pipeline.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    puffy = [sys.executable, "-m", "puffy.cli"]
    figures = {}
    for name, out in (("dq_then_transform", work / "cmd_dq_transform"), ("transform_alone", work / "cmd_transform")):
        shutil.rmtree(out, ignore_errors=True)
        steps = []
        if name == "dq_then_transform":
            steps.append(
                (
                    "dq",
                    puffy
                    + [
                        "dq",
                        "--input-dir",
                        str(input_dir),
                        "--rules",
                        str(params_dir / "dq_rules.yaml"),
                        "--params-dir",
                        str(params_dir),
                        "--output-dir",
                        str(out),
                    ],
                )
            )
        steps.append(
            (
                "transform",
                puffy
                + [
                    "transform",
                    "--input-dir",
                    str(input_dir),
                    "--params-dir",
                    str(params_dir),
                    "--output-dir",
                    str(out),
                ],
            )
        )
        runs = {step: _timed_command(argv) for step, argv in steps}
        figures[name] = {
            "seconds": sum(r["seconds"] for r in runs.values()),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs.values()),
            "commands": runs,
        }
    return figures


def _child(stage: str, payload: dict) -> None:
    """Entry of a stage process: run it and print one JSON line with its figures."""
    params = PipelineParams(**payload["params"])
    work = Path(payload["work"])
    if stage == "scan":
        out = _stage_scan(Path(payload["input_dir"]), params)
    elif stage == "bare_sessions":
        out = _stage_bare_sessions(Path(payload["input_dir"]), work, params)
    elif stage == "gate":
        out = _stage_gate(Path(payload["input_dir"]), work, params)
    elif stage == "transform":
        out = _stage_transform(work, payload["days"], params)
    elif stage == "commands":
        out = _stage_commands(Path(payload["input_dir"]), work, params)
    elif stage == "daily_run":
        out = _stage_daily_run(work, payload["daily_days"])
    else:
        out = _stage_monitoring(work, payload["days"])
    out["peak_rss_mb"] = _peak_rss_mb()
    print("BENCH " + json.dumps(out))


def _run_child(stage: str, payload: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "puffy.bench", stage, json.dumps(payload)], capture_output=True, text=True
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if proc.returncode or line is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"bench stage {stage} failed: " + " | ".join(tail))
    return json.loads(line[6:])


def run_benchmark(args) -> int:
    """Generate (or take) the input, run each stage in its own process, print and save figures."""
    params = load_pipeline_params()
    if args.memory_limit:  # validated like the params file's key
        params = validate_params(
            {**params.model_dump(), "duckdb_memory_limit": args.memory_limit}, PipelineParams, "--memory-limit"
        )
    work = Path(args.work_dir).resolve()
    if params.duckdb_temp_directory is None:  # spill next to the benchmark's data, not into the checkout
        params = params.model_copy(update={"duckdb_temp_directory": work / "duckdb_tmp"})
    if args.input_dir:
        input_dir = Path(args.input_dir).resolve()
        if not discover_raw_files(input_dir):  # InputDataError when it is not a directory
            raise InputDataError(f"{input_dir}: no events_YYYYMMDD.csv files to benchmark")
    else:
        input_dir = work / f"raw_scale{args.scale:g}_days{args.days}"
        if not any(input_dir.glob("events_*.csv")):
            t0 = time.perf_counter()
            generate_scaled(input_dir, args.scale, args.days)
            print(f"generated scale {args.scale:g} sample in {time.perf_counter() - t0:.1f}s → {input_dir}")
    run = work / "run"
    payload = {"params": json.loads(params.model_dump_json()), "work": str(run), "input_dir": str(input_dir)}
    figures = {
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
        "input_dir": str(input_dir),
        "memory_limit": params.duckdb_memory_limit,
        "engine": params.engine,
        "stages": {},
    }
    scan = _run_child("scan", payload)
    figures["stages"]["bare_scan"] = scan
    events = scan["events"]
    try:
        figures["stages"]["bare_sessions"] = _run_child("bare_sessions", payload)
    except RuntimeError as exc:  # a reference: the pipeline's stages still run
        figures["stages"]["bare_sessions"] = {"error": str(exc)}
    gate = _run_child("gate", payload)
    figures["stages"]["gate"] = gate
    payload["days"] = gate["days"]
    for stage in ("transform", "monitoring"):
        try:
            figures["stages"][stage] = _run_child(stage, payload)
        except (RuntimeError, ImportError) as exc:
            figures["stages"][stage] = {"error": str(exc)}
    if not args.no_commands:
        try:  # the seed's commands as whole processes, beside the in-process stages (issue 21)
            figures["commands"] = _run_child("commands", payload)
        except (RuntimeError, ImportError) as exc:
            figures["commands"] = {"error": str(exc)}
    if args.daily_days:
        try:
            figures["daily_run"] = _run_child(
                "daily_run", {**payload, "work": str(work), "daily_days": args.daily_days}
            )
        except (RuntimeError, ImportError) as exc:
            figures["daily_run"] = {"error": str(exc)}
    if args.backfill_days:
        figures["backfill"] = _backfill(work, args.backfill_days)
    print(f"\n{'stage':<14}{'events':>12}{'seconds':>10}{'events/s':>14}{'x scan':>9}{'peak MB':>10}")
    for name, f in figures["stages"].items():
        if "error" in f:
            print(f"{name:<14}  failed: {f['error']}")
            continue
        secs = f["seconds"]
        print(
            f"{name:<14}{events:>12,}{secs:>10.2f}{events / secs:>14,.0f}{secs / scan['seconds']:>9.1f}"
            f"{f['peak_rss_mb']:>10.0f}"
        )
    total = sum(f.get("seconds", 0) for n, f in figures["stages"].items() if n not in REFERENCE_STAGES)
    figures["pipeline_seconds"] = total
    figures["pipeline_x_scan"] = total / scan["seconds"]
    print(f"{'all stages':<14}{events:>12,}{total:>10.2f}{events / total:>14,.0f}{total / scan['seconds']:>9.1f}")
    print("(bare_scan and bare_sessions measure the engine, not the pipeline: see README, Performance)")
    commands = figures.get("commands", {})
    if "error" in commands:
        print(f"commands failed: {commands['error']}")
    else:
        for name, f in commands.items():
            if not isinstance(f, dict) or "seconds" not in f:
                continue
            parts = ", ".join(
                f"{step} {r['seconds']:.2f} s" + (f" (exit {r['exit_code']})" if r["exit_code"] else "")
                for step, r in f["commands"].items()
            )
            print(
                f"{'`puffy ' + name.replace('_', ' ') + '`':<32}{f['seconds']:>8.2f} s  "
                f"{f['seconds'] / scan['seconds']:>6.1f}x scan"
                f"  peak {f['peak_rss_mb']:,.0f} MB  ({parts})"
            )
    daily = figures.get("daily_run")
    if daily and "error" in daily:
        print(f"daily run at 1x failed: {daily['error']}")
    elif daily:
        print(
            f"daily run at 1x on {daily['engine']} (puffy run: papermill, the daily notebooks, HTML, publish, "
            "with params/), seconds per day: "
            + ", ".join(
                f"{d['date']} {d['seconds']:.1f}" + (f" (exit {d['exit_code']})" if d["exit_code"] else "")
                for d in daily["days"]
            )
        )
    backfill = figures.get("backfill")
    if backfill:
        print(
            f"backfill at 1x (puffy run --start --end, one process): {backfill['days']} days in "
            f"{backfill['seconds']:.1f} s ({backfill['seconds'] / backfill['days']:.2f} s a day), "
            f"exit {backfill['exit_code']}, peak {backfill['peak_rss_mb']:,.0f} MB"
        )
    figures["targets"] = targets(figures)
    for line in figures["targets"]["lines"]:
        print(line)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        print(f"figures: {args.json_out}")
    return 0


def targets(figures: dict) -> dict:
    """Whether a run meets the speed, memory and (when it ran) daily-run targets, as figures and one
    printed line each; then the bare sessionization as a multiple of the scan, when every stage ran."""
    stages = {n: f for n, f in figures["stages"].items() if n not in REFERENCE_STAGES}
    failed = sorted(n for n, f in stages.items() if "error" in f)
    scan = figures["stages"]["bare_scan"]["seconds"]
    x_scan = sum(stages.get(n, {}).get("seconds", 0.0) for n in TARGET_STAGES) / scan
    peak = max((f["peak_rss_mb"] for f in stages.values() if "peak_rss_mb" in f), default=0.0)
    speed_met = not failed and x_scan <= TARGET_X_SCAN
    memory_met = not failed and peak <= TARGET_PEAK_MB
    note = f" ({', '.join(failed)} failed)" if failed else ""
    verdict = {
        "x_scan": {"target": TARGET_X_SCAN, "measured": round(x_scan, 1), "met": speed_met},
        "peak_mb": {"target": TARGET_PEAK_MB, "measured": round(peak), "met": memory_met},
        "lines": [
            f"target: the gate and the transform within {TARGET_X_SCAN:g}x the scan: "
            f"{'met' if speed_met else 'NOT met'} ({x_scan:.2f}x){note}",
            f"target: every stage's peak at most {TARGET_PEAK_MB:,} MB: {'met' if memory_met else 'NOT met'}"
            f" ({peak:,.0f} MB){note}",
        ],
    }
    daily = figures.get("daily_run")
    if daily is not None:
        days = daily.get("days", [])
        slowest = max((d["seconds"] for d in days), default=0.0)
        why = ""
        if "error" in daily or not days:
            why = " (failed)"
        elif any(d["exit_code"] for d in days):
            why = " (a day did not exit 0)"
        daily_met = not why and slowest <= TARGET_DAILY_SECONDS
        verdict["daily_seconds"] = {
            "target": TARGET_DAILY_SECONDS,
            "measured": round(slowest, 1) if days else None,
            "met": daily_met,
        }
        measured = f" (slowest day {slowest:.1f} s)" if days else ""
        verdict["lines"].append(
            f"target: a daily run at 1x within {TARGET_DAILY_SECONDS:g} s: {'met' if daily_met else 'NOT met'}"
            f"{measured}{why}"
        )
    backfill = figures.get("backfill")
    if backfill and backfill["days"] in TARGET_BACKFILL_SECONDS:
        target = TARGET_BACKFILL_SECONDS[backfill["days"]]
        met = backfill["exit_code"] in EXITS_OF_FINDINGS and backfill["seconds"] <= target
        verdict["backfill_seconds"] = {"target": target, "measured": round(backfill["seconds"], 1), "met": met}
        verdict["lines"].append(
            f"target: a {backfill['days']}-day backfill at 1x within {target:g} s: {'met' if met else 'NOT met'}"
            f" ({backfill['seconds']:.1f} s, exit {backfill['exit_code']})"
        )
    bare = figures["stages"].get("bare_sessions", {})
    if "seconds" in bare and not failed:
        bare_x = bare["seconds"] / figures["stages"]["bare_scan"]["seconds"]
        verdict["bare_sessions_x_scan"] = round(bare_x, 1)
        verdict["lines"].append(
            f"reference: the bare sessionization alone takes {bare_x:.2f}x the scan; the gate and the transform "
            f"take {x_scan / bare_x:.1f}x the bare sessionization"
        )
    return verdict


def generate_scaled(out_dir: Path, scale: float, days: int) -> None:
    """A ``scale``-times sample in ``out_dir``, generated in shards of at most ``SHARD_SCALE``.

    The generator holds a whole sample in memory (about 1 GB per 100x), so a larger scale is the
    concatenation, day file by day file, of independent shards drawn with different seeds (their
    client ids are random; their order numbers are offset, so transaction ids do not meet either).
    Each day file then holds
    several time-sorted runs: the gate reports it as "File not sorted by timestamp" (a warning),
    which costs nothing downstream. Only the first shard's ``_truth/`` is kept.
    """
    from puffy.sample import SampleConfig, generate_sample

    shards = max(1, math.ceil(scale / SHARD_SCALE))
    partial = out_dir.with_name(out_dir.name + ".partial")  # renamed when complete: never reused half-made
    shutil.rmtree(partial, ignore_errors=True)
    generate_sample(partial, SampleConfig(scale=scale / shards, days=days))
    for k in range(1, shards):
        shard_dir = out_dir.parent / f"{out_dir.name}.shard{k}"
        shard = generate_sample(
            shard_dir,
            SampleConfig(
                scale=scale / shards, days=days, seed=SampleConfig.seed + k, order_number_offset=k * SHARD_ORDER_NUMBERS
            ),
        )
        for part in shard.files:
            with open(part, "rb") as src, open(partial / part.name, "rb+") as dst:
                src.readline()  # the header: the first shard's file already has it
                dst.seek(-1, os.SEEK_END)
                if dst.read(1) != b"\n":  # like the export, a file may end without a line break
                    dst.write(b"\n")
                shutil.copyfileobj(src, dst, 1 << 24)
        shutil.rmtree(shard_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(partial, out_dir)


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    _child(sys.argv[1], json.loads(sys.argv[2]))
