"""``run_monitoring``: the audit of one run date — gather each monitor's inputs, run the monitors,
track incidents, write ``monitoring_report.md`` / ``.json``; the overall status is ``pass``,
``warn`` (publish, but look) or ``error`` (the runner quarantines the staged partitions instead of
publishing them)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pandas as pd
import pyarrow.parquet as pq

from puffy.findings import Finding
from puffy.incidents import acknowledge, load_acknowledgements, open_incidents, previous_report, track
from puffy.monitoring import metrics as m
from puffy.monitoring import monitors
from puffy.monitoring.report import build_report, overall_status, render_markdown, sort_findings, write_reports
from puffy.monitoring.rules import MonitoringRules, load_rules
from puffy.params import PipelineParams, load_pipeline_params
from puffy.storage import is_remote_location

log = logging.getLogger("puffy.monitoring")

T = TypeVar("T")


@dataclass
class MonitoringResult:
    """What a monitoring run found.

    ``metrics``: the daily metric history (one row per date, the run date last) the monitors used;
    ``trend``: every scored day of every trend metric with its expected value and band (charts);
    ``mix``: channel shares on the run date vs the baseline, per mix ('sessions', 'revenue');
    ``engine``: the engine the metric queries ran on ('duckdb', 'pyspark').
    """

    status: str
    findings: list[Finding]
    report_paths: dict[str, Path]
    metrics: pd.DataFrame
    trend: pd.DataFrame = field(default_factory=pd.DataFrame)
    mix: dict[str, pd.DataFrame] = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    engine: str = "duckdb"

    def findings_frame(self) -> pd.DataFrame:
        """Findings as a table (severity, id, metric, value, band, message)."""
        cols = ["severity", "id", "metric", "value", "band", "dates", "message"]
        return pd.DataFrame([{k: f.to_dict()[k] for k in cols} for f in self.findings], columns=cols)


def run_monitoring(
    warehouse_dir: Path,
    rules_path: Path | None,
    output_dir: Path,
    *,
    run_date: date,
    history_dir: Path | None = None,
    intermediate_dir: Path | None = None,
    now: datetime | None = None,
    engine_params: PipelineParams | None = None,
    audited_as: str | None = None,
) -> MonitoringResult:
    """Audit ``warehouse_dir`` for ``run_date`` and write the reports into ``output_dir``.

    ``history_dir``: the published warehouse used for baselines (default: ``warehouse_dir``);
    earlier dates are read from both, the audited partition winning. ``intermediate_dir``: where
    ``stg_events`` partitions are (raw purchase revenue, client-id null rate, bot share); default:
    ``<warehouse_dir>/../intermediate`` when it exists. ``now``: the clock for the freshness SLA
    and ``generated_at`` (default: the current UTC time; pass it for reproducible reports).
    ``engine_params``: the engine the metric queries run on (``engine``: duckdb | pyspark); default:
    the ``pipeline.yaml`` beside the rules file (the params directory), as the transform's.
    ``audited_as``: how the reports name the audited warehouse (default: ``warehouse_dir``), e.g. the
    bucket of which ``warehouse_dir`` is a local copy of the run date (``puffy monitor``).

    A bad rules file raises ``ParamsError``; a monitor that crashes becomes an ERROR finding
    (``monitoring.monitor_failed``) rather than an exception, so a report is always written.
    """
    rules = load_rules(rules_path)
    now = now or datetime.now(UTC)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    warehouse_dir = Path(warehouse_dir)
    if history_dir is not None and not is_remote_location(history_dir):  # a bucket's history stays a Location
        history_dir = Path(history_dir)
    history_dir = history_dir if history_dir is not None else warehouse_dir
    intermediate_dir = (
        Path(intermediate_dir) if intermediate_dir is not None else m.infer_intermediate_dir(warehouse_dir)
    )
    sources = m.Sources(warehouse_dir, history_dir, intermediate_dir, run_date)
    if engine_params is None:
        engine_params = load_pipeline_params(Path(rules_path).parent) if rules_path is not None else PipelineParams()
    con = m.connect(engine_params)
    outcome = _run_monitors(sources, rules, now, con)
    findings = outcome.findings
    if rules_path is not None:
        acknowledge(findings, load_acknowledgements(Path(rules_path).parent), run_date, now.date())
    track(
        findings,
        open_incidents(previous_report(Path(output_dir), run_date, "monitoring_report.json")),
        run_date,
        run_date,
    )
    status = overall_status(findings)
    findings = sort_findings(findings)
    inputs = {
        "warehouse_dir": audited_as or str(warehouse_dir),
        "history_dir": str(history_dir),
        "intermediate_dir": None if intermediate_dir is None else str(intermediate_dir),
    }
    report = build_report(
        status=status,
        run_date=run_date,
        generated_at=now,
        findings=findings,
        metrics=outcome.metrics,
        trend=outcome.trend,
        mix_tables=outcome.mix,
        inputs=inputs,
    )
    written = write_reports(Path(output_dir), report, render_markdown(report, outcome.trend, outcome.mix))
    engine = m.engine_of(con)
    log.info("monitoring %s: %s — %s (engine %s)", run_date, status.upper(), report["message"], engine)
    return MonitoringResult(status, findings, written, outcome.metrics, outcome.trend, outcome.mix, report, engine)


@dataclass
class _Outcome:
    """What the monitors of one run date found, before incidents and acknowledgements."""

    findings: list[Finding]
    metrics: pd.DataFrame
    trend: pd.DataFrame
    mix: dict[str, pd.DataFrame]


def _run_monitors(sources: m.Sources, rules: MonitoringRules, now: datetime, con) -> _Outcome:
    """Every enabled monitor, each guarded: one that crashes becomes a ``monitoring.monitor_failed``
    ERROR finding and the others still run. ``con``: the backend of ``metrics.connect``."""
    run_date = sources.run_date
    start = run_date - timedelta(days=rules.history_days)
    findings: list[Finding] = []
    # Non-bot sessions per (date, channel): read once for the mix and the segment monitors.
    channel_counts = functools.cache(lambda: m.session_channel_counts(sources, start, con))

    def guarded(name: str, fn: Callable[[], T], default: T) -> T:
        try:
            return fn()
        except Exception as exc:  # one broken monitor must not hide the others' findings
            log.exception("monitor %s failed", name)
            findings.append(
                Finding(
                    "monitoring.monitor_failed",
                    "error",
                    f"the {name} monitor could not run: {type(exc).__name__}: {exc}",
                    metric=name,
                    dates=[run_date.isoformat()],
                )
            )
            return default

    empty_days = pd.DataFrame(index=pd.Index([run_date], name="date"))
    metrics = guarded("metrics", lambda: m.daily_metrics(sources, start, rules.revenue.purchase_event, con), empty_days)
    if rules.freshness.enabled:
        findings += guarded("freshness", lambda: _freshness(sources, rules, start, now), [])
    if rules.revenue.enabled:
        findings += guarded("revenue", lambda: _revenue(sources, rules, start, con), [])
    if rules.funnel.enabled:
        findings += guarded("funnel", lambda: _funnel(metrics, run_date, rules), [])
    mix_tables: dict[str, pd.DataFrame] = {}
    if rules.mix.enabled:
        findings += guarded("mix", lambda: _mix(sources, rules, start, con, channel_counts(), mix_tables), [])
    if rules.segments.enabled:
        findings += guarded("segments", lambda: _segments(sources, rules, start, con, channel_counts()), [])
    trend = pd.DataFrame()
    if rules.trend.enabled:
        trend_findings, trend = guarded(
            "trend", lambda: monitors.check_trends(metrics, run_date, rules.trend), ([], pd.DataFrame())
        )
        findings += trend_findings
    return _Outcome(findings, metrics, trend if trend is not None else pd.DataFrame(), mix_tables)


# --- gathering each monitor's inputs --------------------------------------------------------------


def _freshness(sources: m.Sources, rules: MonitoringRules, start: date, now: datetime) -> list[Finding]:
    fr = rules.freshness
    window_start = min(start, sources.run_date - timedelta(days=fr.gap_window_days))
    mtimes, rows, available = {}, {}, {}
    for table in fr.tables:
        path = sources.audited_file(table)
        mtimes[table] = None if path is None else datetime.fromtimestamp(path.stat().st_mtime, UTC)
        rows[table] = None if path is None else pq.ParquetFile(path).metadata.num_rows
        available[table] = list(sources.files(table, window_start))
    return monitors.check_partitions(sources.run_date, now, mtimes, available, fr, rows)


def _revenue(sources: m.Sources, rules: MonitoringRules, start: date, con) -> list[Finding]:
    rr = rules.revenue
    day = m.read_day_tables(sources, start, rr.purchase_event, con)
    if day.orders is None:
        return []  # freshness reports the missing partition
    out = monitors.check_duplicates(day.orders, day.order_key_history, sources.run_date, rr)
    out += monitors.check_revenue_values(day.orders, day.rejects, day.attribution_totals, sources.run_date, rr)
    rejected = (
        0.0 if day.rejects is None or "revenue" not in day.rejects else float(day.rejects["revenue"].fillna(0).sum())
    )
    out += monitors.check_reconciliation(
        float(day.orders["revenue"].fillna(0).sum()),
        rejected,
        day.raw_purchase_revenue,
        day.attribution_totals,
        len(day.orders),
        sources.run_date,
        rr,
    )
    out += monitors.check_transform_reconciliation(day.reconciliation, sources.run_date)
    return out


def _funnel(metrics: pd.DataFrame, run_date: date, rules: MonitoringRules) -> list[Finding]:
    if run_date not in metrics.index:
        return []
    row = metrics.loc[run_date]
    counts = {s: row.get(s) for s in m.FUNNEL_STAGES}
    orders = 0 if pd.isna(row.get("orders")) else int(row["orders"])
    without = 0 if pd.isna(row.get("orders_without_session")) else int(row["orders_without_session"])
    return monitors.check_funnel(counts, orders, without, run_date, rules.funnel)


def _mix(
    sources: m.Sources,
    rules: MonitoringRules,
    start: date,
    con,
    sessions: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
) -> list[Finding]:
    """``sessions``: ``metrics.session_channel_counts``."""
    mr = rules.mix
    revenue = m.attributed_channel_revenue(sources, start, mr.attribution_model, con)
    out, day = monitors.check_mix(sessions, sources.run_date, mr, what="sessions")
    if day is not None and day.baseline_days:
        tables["sessions"] = monitors.mix_table(sessions, day)
    more, day = monitors.check_mix(revenue, sources.run_date, mr, what="revenue")
    if day is not None and day.baseline_days:
        tables["revenue"] = monitors.mix_table(revenue, day)
    out += more
    out += monitors.check_direct_share(sessions, sources.run_date, mr)
    return out


def _segments(sources: m.Sources, rules: MonitoringRules, start: date, con, sessions: pd.DataFrame) -> list[Finding]:
    """``sessions``: ``metrics.session_channel_counts``."""
    run_date, sr, tr = sources.run_date, rules.segments, rules.trend
    return monitors.check_segments(sessions, run_date, sr, tr, "channel") + monitors.check_segments(
        m.click_id_landings(sources, start, sr.click_ids, con), run_date, sr, tr, "click_id"
    )
