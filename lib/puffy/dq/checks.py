"""The data-quality checks: a few SQL aggregations over the staging tables, graded by the rules.

``ingest`` leaves ``stg_events``, ``stg_purchase_items`` and ``stg_rejects`` on a DuckDB connection
(for the days in range plus up to ``baseline_days`` earlier ones). ``build_metrics`` makes one pass
over ``stg_events`` into a small per-day x event-name table (``dq_day_event``, see
``puffy.dq.metrics``: on the pipeline's engine, DuckDB or Spark); most checks grade
that table, so per-day work in Python is over a few hundred rows, never over events. The rest
(payloads, transaction ids, duplicates, ordering) are one targeted SQL query each.

Every check returns one ``Finding`` per finding id — status 'pass' when it found nothing — so the
report also shows what was checked. Rates are graded day by day, so a day gets the same severity
whether it is gated alone or within a backfill (baseline comparisons aside, which depend on the
earlier days available). Order-level rates rest on a few dozen orders a day, so their ERROR levels
are set high enough that one or two odd orders make a WARN, not an ERROR.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from puffy.dates import date_runs_text
from puffy.dq.metrics import compute_day_event
from puffy.dq.rules import DqRules, RatioBand, Threshold
from puffy.findings import SEVERITY_RANK, Finding, json_safe, worst_severity  # noqa: F401 (SEVERITY_RANK: older imports)
from puffy.findings import sort_findings as _sort_findings
from puffy.ingest import RawFile
from puffy.params import PipelineParams

CHECK_ORDER = ("materiality", "ingest", "schema", "taxonomy", "timestamps", "client_id", "coverage", "duplicates",
               "payload", "volume", "bots", "referrer")
# Reject reasons that belong to a specific check (the rest are malformed CSV lines).
ROW_REJECTS = {
    "missing_timestamp": "timestamps", "unparseable_timestamp": "timestamps",
    "timestamp_outside_file_day": "timestamps", "missing_event_name": "taxonomy",
    "unknown_event_name": "taxonomy", "exact_duplicate": "duplicates", "unreadable_file": "schema",
}
NUMERIC_JSON_TYPES = ("BIGINT", "UBIGINT", "DOUBLE", "HUGEINT")
MAX_RATIO = 1000.0  # a jump from a zero baseline is reported as this ratio

# What each finding means for the numbers built downstream (shown in the report and in messages).
IMPACT = {
    "ingest.reconciliation": (
        "lines that are neither events nor rejects are silently lost, so every count for that file may be "
        "understated"
    ),
    "ingest.malformed_lines": (
        "those lines reach no event count, session or revenue figure (they are kept in the rejects table with"
        " line numbers)"
    ),
    "ingest.missing_file": "the day has no events at all, so its daily metrics read as zero",
    "schema.unreadable_file": "no event of that file reaches the warehouse and its day is empty downstream",
    "schema.column_missing": (
        "the column is NULL for every event of those days (without referrer, referral and organic visits "
        "cannot be told from direct ones)"
    ),
    "schema.column_renamed": (
        "values are read through the alias and are unaffected, but the header no longer matches the contract "
        "or the data dictionary"
    ),
    "schema.column_extra": "the extra column is ignored",
    "schema.day_over_day_renamed": (
        "the export changed shape from one day to the next, so readers must map columns by alias, not by the "
        "previous header"
    ),
    "schema.day_over_day_dropped": (
        "the export lost a column from one day to the next, so metrics built on it stop being comparable"
    ),
    "schema.day_over_day_added": (
        "the export gained a column from one day to the next; it is ignored until the contract adopts it"
    ),
    "taxonomy.unknown_event": "those rows are rejected and missing from every funnel",
    "taxonomy.event_absent": "that funnel step reads as zero for the day",
    "taxonomy.dictionary_purchase_name": (
        "code written from the data dictionary would find no orders; the pipeline uses the contract's event "
        "name"
    ),
    "taxonomy.dictionary_daily_volume": (
        "the dictionary's volume expectation is out of date, so volumes are judged against the trailing "
        "baseline instead"
    ),
    "timestamps.unparseable": "those rows are rejected and missing from every count",
    "timestamps.outside_file_day": "those rows are rejected, so late or early events are missing from their day",
    "timestamps.future": "future timestamps point at a broken clock and distort session boundaries and daily totals",
    "timestamps.unsorted": "the file order is not time order, so anything order-dependent must sort by timestamp",
    "timestamps.day_coverage": (
        "the hours without events are missing from the day's sessions, orders and revenue, which then read as a "
        "drop in traffic; if the file was cut short, fetch it again"
    ),
    "client_id.null_rate": (
        "those events cannot be sessionized or attributed and drop out of sessions, users and conversion "
        "rates"
    ),
    "client_id.null_rate_vs_baseline": (
        "sessions, users and conversion rates for those days are understated against earlier days"
    ),
    "client_id.bad_format": "ids that do not look like cookie ids may merge or split users",
    "duplicates.exact_row": "the copies are rejected at ingest, so counts downstream are not inflated",
    "duplicates.same_key": (
        "these near-duplicates (same client, timestamp and event, different content) are kept and slightly "
        "inflate event counts"
    ),
    "duplicates.transaction_id_replay": (
        "replayed orders would double-count revenue unless orders are deduplicated on transaction id"
    ),
    "duplicates.transaction_id_collision": (
        "deduplicating orders on transaction id alone drops genuine orders and understates revenue; key "
        "orders on transaction id and client"
    ),
    "payload.invalid_json": "those orders or emails have no readable revenue, items or email",
    "payload.revenue_missing": "those orders count as orders but add no revenue",
    "payload.revenue_non_numeric": "revenue that is not a JSON number may be read as NULL or mis-parsed",
    "payload.revenue_negative": "negative revenue lowers revenue totals",
    "payload.revenue_zero": (
        "zero-revenue orders count as orders but add no revenue, lowering conversion value and average order "
        "value"
    ),
    "payload.revenue_item_mismatch": "order revenue and product revenue disagree for those orders",
    "payload.items_missing": "the product mix of those orders is unknown",
    "payload.item_price_missing": (
        "product-level revenue is unknown for those days while order revenue is still complete"
    ),
    "payload.item_fields_missing": "those items cannot be attributed to a product",
    "payload.revenue_non_integer": "these are valid amounts; revenue must be summed as decimals",
    "volume.daily_events": (
        "a volume break usually means lost or duplicated data upstream, so daily KPIs for those days are "
        "suspect"
    ),
    "volume.event_name": "a break in one event's volume distorts that funnel step for the day",
    "volume.insufficient_history": (
        "baseline comparisons (volume, null-rate jump, referrer mix) are skipped for those days"
    ),
    "bots.share": (
        "bot events are excluded from sessions, funnels and attribution, so raw event counts overstate human "
        "traffic"
    ),
    "bots.checkout_events": "bot checkouts must be excluded from funnel conversion rates",
    "referrer.coverage": (
        "the channel mix shifts with it, so attribution for those days is not comparable with earlier days"
    ),
    "referrer.anonymised_share": "more visits land in anonymised referral sources, shifting the channel mix",
    "referrer.utm_coverage": "fewer or more UTM-tagged landings shift paid and campaign attribution",
    "coverage.page_url": "those events have no landing page, so their sessions' channel and campaign are unknown",
    "coverage.user_agent": "bots cannot be recognised among those events and their device is unknown",
    "materiality.orders_lost": "the day's published orders would be short by that many orders",
    "materiality.revenue_lost": "the day's published revenue would be short by that amount",
    "materiality.sessions_at_risk": "the day's published sessions would be missing, split or cut short for them",
    "materiality.no_purchases": (
        "the day would publish zero orders and revenue; a purchase tag is probably broken, fetch or fix the export"
    ),
}


# --------------------------------------------------------------------------------------------
# Findings

# The gate's JSON keeps 6 decimals of a float (rates, ratios and sample values).
DIGITS = 6

def worst(severities: Iterable[str]) -> str:
    return worst_severity(severities)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """In check-family order (``CHECK_ORDER``), then by id."""
    return _sort_findings(findings, CHECK_ORDER)


def fmt_dates(dates: Iterable[str]) -> str:
    """'2025-03-02', '2025-03-04 … 2025-03-08' — consecutive days collapsed into ranges."""
    return date_runs_text(date.fromisoformat(d) for d in dates)


def pct(x: float) -> str:
    return f"{x:.1%}" if x >= 0.001 or x == 0 else f"{x:.2%}"


def _clean(value):
    return json_safe(value, DIGITS)


# --------------------------------------------------------------------------------------------
# Context and metrics


@dataclass
class CheckContext:
    """Everything a check needs: the connection with the staging tables and the run's facts."""

    con: duckdb.DuckDBPyConnection
    rules: DqRules
    files: list[RawFile]  # every ingested file (baseline and in range), in date order
    lines_read: dict[str, int]
    days: list[date]  # days in range that have a file
    expected_days: list[date]  # calendar days in range
    now: datetime  # naive UTC
    engine_params: PipelineParams | None = None  # engine of the metric pass (default DuckDB)
    scratch_dir: Path | None = None  # where a Spark metric pass may write its input snapshot
    day_event: pd.DataFrame = field(default_factory=pd.DataFrame)  # filled by build_metrics
    rejects: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def first_day(self) -> date:
        """The period's first day (it may have no file)."""
        return self.expected_days[0]

    @property
    def range_files(self) -> list[RawFile]:
        return [f for f in self.files if f.file_date in set(self.days)]

    def file_of(self, day: str | date) -> str | None:
        day = date.fromisoformat(day) if isinstance(day, str) else day
        return next((f.name for f in self.files if f.file_date == day), None)

    def files_for(self, dates: Iterable[str]) -> list[str]:
        return [n for n in (self.file_of(d) for d in sorted(set(dates))) if n]

    def rows(self, sql: str, params: list | None = None) -> list[dict]:
        cur = self.con.execute(sql, params or [])
        cols = [c[0] for c in cur.description]
        return [{k: _clean(v) for k, v in zip(cols, r)} for r in cur.fetchall()]

    def df(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def in_range(self, column: str = "file_date") -> str:
        return f"{column} >= DATE '{self.first_day.isoformat()}'"

    def samples(self, sql_where: str, columns: str, dates: list[str], table: str = "stg_events",
                order: str = "event_id") -> list[dict]:
        """Up to ``rules.sample_rows`` rows of ``table`` matching ``sql_where`` on ``dates``."""
        if not dates or not self.rules.sample_rows:
            return []
        days = ", ".join(f"DATE '{d}'" for d in sorted(set(dates)))
        return self.rows(f"SELECT {columns} FROM {table} WHERE ({sql_where}) AND file_date IN ({days}) "
                         f"ORDER BY {order} LIMIT {self.rules.sample_rows}")

    # Per-day series from the metrics table (all ingested days, baseline included).
    def per_day(self, column: str, event_name: str | None = None) -> pd.Series:
        t = self.day_event
        if event_name is not None:
            t = t[t.event_name == event_name]
        return t.groupby("file_date")[column].sum().astype(float)

    def lines_per_day(self) -> pd.Series:
        return pd.Series({f.file_date: float(self.lines_read.get(f.name, 0)) for f in self.files}, dtype=float)

    def rejects_per_day(self, reasons: Iterable[str]) -> pd.Series:
        r = self.rejects[self.rejects.reason.isin(list(reasons))]
        return r.groupby("file_date")["n"].sum().astype(float)

    def baseline(self, series: pd.Series, day: date) -> float | None:
        """Median of ``series`` over the trailing ``baseline_days`` before ``day`` (None if too few days)."""
        window = self.rules.baseline_days
        prior = series[(series.index < day) & (series.index >= day - timedelta(days=window))].dropna()
        return float(prior.median()) if len(prior) >= self.rules.min_baseline_days else None


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def register_user_agents(con: duckdb.DuckDBPyConnection) -> None:
    """``dq_user_agents(user_agent, is_bot, bot_name)``: each distinct user agent parsed once."""
    from puffy.useragent import parse_user_agents

    uas = [r[0] for r in con.execute(
        "SELECT DISTINCT user_agent FROM stg_events WHERE user_agent IS NOT NULL ORDER BY 1").fetchall()]
    dim = parse_user_agents(uas)[["user_agent", "is_bot", "bot_name"]]
    # Typed explicitly: with no user agent at all (an empty file, no user_agent column) the frame
    # is empty and its columns would be typed NULL.
    con.execute("CREATE OR REPLACE TABLE dq_user_agents (user_agent VARCHAR, is_bot BOOLEAN, bot_name VARCHAR)")
    if len(dim):
        con.register("_dq_user_agents_df", dim)
        con.execute("INSERT INTO dq_user_agents SELECT user_agent, is_bot, bot_name FROM _dq_user_agents_df")
        con.unregister("_dq_user_agents_df")


def build_metrics(ctx: CheckContext) -> None:
    """The metric pass (``puffy.dq.metrics``, on the pipeline's engine) into ``ctx.day_event``, plus
    the rejects counts."""
    con = ctx.con
    register_user_agents(con)
    ctx.day_event = compute_day_event(con, ctx.rules, ctx.now, ctx.engine_params, ctx.scratch_dir)
    con.register("_dq_day_event_df", ctx.day_event)  # kept queryable on result.con, as documented
    con.execute("CREATE OR REPLACE TABLE dq_day_event AS SELECT * FROM _dq_day_event_df")
    con.unregister("_dq_day_event_df")
    ctx.rejects = con.execute("""
        SELECT file_date, source_file, reason, count(*) AS n FROM stg_rejects GROUP BY ALL ORDER BY ALL
    """).df()
    ctx.rejects["file_date"] = pd.to_datetime(ctx.rejects["file_date"]).dt.date


# --------------------------------------------------------------------------------------------
# Building findings


def graded(ctx: CheckContext, fid: str, title: str, metric: str, rule: Threshold | RatioBand,
           values: dict[date, float | None], what: Callable[[list[dict]], str], quiet: str,
           samples: Callable[[list[str]], list[dict]] | None = None,
           key: Callable[[float], float] = lambda v: v) -> Finding:
    """A finding graded day by day: each in-range day's value against ``rule``.

    ``what(flagged)`` describes the flagged days (list of {date, value, severity}); the message
    appends the finding's downstream impact. ``key`` ranks values (the worst one is ``value``).
    """
    days = set(ctx.days)
    daily = [{"date": d.isoformat(), "value": _clean(v), "severity": rule.grade(v)}
             for d, v in sorted(values.items()) if d in days and v is not None and not pd.isna(v)]
    flagged = [r for r in daily if r["severity"] != "pass"]
    if not flagged:
        top = max((r["value"] for r in daily), key=key, default=None)
        return Finding(fid, "pass", quiet, title=title, metric=metric, value=top, thresholds=rule.as_dict(),
                       impact=IMPACT.get(fid, ""))
    dates = [r["date"] for r in flagged]
    severity = worst(r["severity"] for r in flagged)
    # Over several days of mixed severity, say which days carry the worst one (the days that stop).
    worst_days = [r["date"] for r in flagged if r["severity"] == severity]
    which = f" ({severity.upper()} on {fmt_dates(worst_days)})" if len(worst_days) < len(flagged) else ""
    return Finding(
        fid, severity, f"{what(flagged)}{which}; {IMPACT[fid]}.", title=title, metric=metric,
        value=max((r["value"] for r in flagged), key=key), thresholds=rule.as_dict(), dates=dates,
        files=ctx.files_for(dates), sample_rows=samples(dates) if samples else [], daily=flagged, impact=IMPACT[fid],
    )


def counted(ctx: CheckContext, fid: str, title: str, metric: str, rule: Threshold, counts: dict, totals: dict,
            what: Callable[[int, str, list[str]], str], quiet: str,
            samples: Callable[[list[str]], list[dict]] | None = None) -> Finding:
    """A finding graded day by day on the rate counts / totals, described in counts.

    Grading per day (never over the whole period) keeps a day's severity the same whether it is
    gated alone or in a backfill. ``what(n, span, dates)`` gets the number of cases on the flagged
    days, the range of their daily rates as text, and the dates.
    """
    rates = {d: float(counts.get(d, 0)) / float(t) for d, t in totals.items() if t and not pd.isna(t)}

    def describe(flagged: list[dict]) -> str:
        dates = [r["date"] for r in flagged]
        n = int(sum(counts.get(date.fromisoformat(x), 0) for x in dates))
        return what(n, _span(flagged), dates)

    return graded(ctx, fid, title, metric, rule, rates, describe, quiet, samples)


def fixed(ctx: CheckContext, fid: str, title: str, metric: str, severity: str, dates: list[str], value,
          message: str, quiet: str, samples: list[dict] | None = None) -> Finding:
    """A yes/no finding with a configured severity (schema changes, dictionary mismatches, …)."""
    if not dates:
        return Finding(fid, "pass", quiet, title=title, metric=metric, value=0, thresholds={"severity": severity},
                       impact=IMPACT.get(fid, ""))
    dates = sorted(set(dates))
    daily = [{"date": d, "value": None, "severity": severity} for d in dates]
    return Finding(fid, severity, f"{message}; {IMPACT[fid]}.", title=title, metric=metric, value=value,
                   thresholds={"severity": severity}, dates=dates, files=ctx.files_for(dates),
                   sample_rows=samples or [], daily=daily, impact=IMPACT[fid])


def _ratio(num: pd.Series, den: pd.Series) -> dict[date, float]:
    den = den[den > 0]
    return (num.reindex(den.index).fillna(0) / den).to_dict()


def _range_text(lo: float, hi: float) -> str:
    return f"{int(lo):,}" if lo == hi else f"{int(lo):,}–{int(hi):,}"


def _span(flagged: list[dict], fmt=pct) -> str:
    values = [r["value"] for r in flagged]
    lo, hi = min(values), max(values)
    return fmt(hi) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"


def _notes(flagged: list[dict], notes: dict[date, str]) -> str:
    """The per-day notes of the flagged days, joined."""
    return ", ".join(notes[date.fromisoformat(r["date"])] for r in flagged)


def _on(flagged: list[dict]) -> str:
    dates = [r["date"] for r in flagged]
    n = len(dates)
    return f"on {fmt_dates(dates)}" + (f" ({n} days)" if n > 2 else "")


# --------------------------------------------------------------------------------------------
# ingest


def file_facts(ctx: CheckContext) -> list[dict]:
    """Per in-range file: header facts, lines read, events, rejects by reason, reconciliation."""
    events = ctx.per_day("events")
    out = []
    for f in ctx.range_files:
        rej = ctx.rejects[ctx.rejects.source_file == f.name]
        by_reason = {r: int(n) for r, n in zip(rej.reason, rej.n)}
        data_rejects = sum(n for r, n in by_reason.items() if r != "unreadable_file")
        lines = int(ctx.lines_read.get(f.name, 0))
        n_events = int(events.get(f.file_date, 0))
        out.append({
            "name": f.name, "date": f.file_date.isoformat(), "lines_read": lines, "events": n_events,
            "rejects": data_rejects, "rejects_by_reason": dict(sorted(by_reason.items())),
            "reconciled": lines == n_events + data_rejects, "header": list(f.header),
            "renamed": {a: b for a, b in f.renamed}, "missing": list(f.missing), "extra": list(f.extra),
            "bom": f.has_bom, "crlf": f.crlf, "compressed": f.compressed, "header_error": f.header_error,
        })
    return out


def check_ingest(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.ingest
    facts = file_facts(ctx)
    gaps = [x for x in facts if not x["reconciled"] and not x["header_error"]]
    recon = fixed(
        ctx, "ingest.reconciliation", "Lines read ≠ events + rejects", "unaccounted_lines", rules.reconciliation,
        [x["date"] for x in gaps], sum(abs(x["lines_read"] - x["events"] - x["rejects"]) for x in gaps),
        "In " + ", ".join(f"{x['name']} {x['lines_read']:,} lines ≠ {x['events']:,} events + {x['rejects']:,} rejects"
                          for x in gaps),
        "Every data line of every file is either an event or a reject.",
    )
    malformed_reasons = set(ctx.rejects.reason) - set(ROW_REJECTS)
    malformed = counted(
        ctx, "ingest.malformed_lines", "Malformed CSV lines", "malformed_line_rate", rules.malformed_line_rate,
        ctx.rejects_per_day(malformed_reasons).to_dict(), ctx.lines_per_day().to_dict(),
        lambda n, span, ds: f"{n:,} line(s) ({span} of a file's lines) could not be parsed as CSV ({fmt_dates(ds)})",
        "Every line parsed as CSV.",
        lambda ds: ctx.samples(f"reason NOT IN ({', '.join(_sql_str(r) for r in ROW_REJECTS)})",
                               "source_file, line, reason, detail, left(raw, 200) AS raw", ds, "stg_rejects",
                               "file_date, line"),
    )
    have = set(ctx.days)
    absent = [d.isoformat() for d in ctx.expected_days if d not in have]
    # A file with a header and no data line is an empty day as surely as no file at all.
    empty = [x["date"] for x in facts if not x["lines_read"] and not x["header_error"]]
    detail = "; ".join(part for part in (
        f"No raw file for {fmt_dates(absent)}" if absent else "",
        f"no data line in the file of {fmt_dates(empty)}" if empty else "",
    ) if part)
    missing_file = fixed(
        ctx, "ingest.missing_file", "Day without a raw file or without data", "missing_files", rules.missing_file,
        sorted(absent + empty), len(absent) + len(empty), detail[:1].upper() + detail[1:],
        "Every day in range has a raw file with data.",
    )
    return [recon, malformed, missing_file]


# --------------------------------------------------------------------------------------------
# schema


def _canonical(ctx: CheckContext, name: str) -> str:
    key = name.strip().lower()
    canon = {c.lower(): c for c in ctx.rules.contract.columns}
    aliases = {k.lower(): v for k, v in ctx.rules.contract.aliases.items()}
    return canon.get(key) or aliases.get(key) or name.strip()


def check_schema(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.schema_rules
    files = ctx.range_files
    readable = [f for f in files if not f.header_error]
    out = [fixed(
        ctx, "schema.unreadable_file", "Unreadable raw file", "unreadable_files", rules.unreadable_file,
        [f.file_date.isoformat() for f in files if f.header_error], sum(1 for f in files if f.header_error),
        "Could not read " + ", ".join(f"{f.name} ({f.header_error})" for f in files if f.header_error),
        "Every raw file can be read, header and body.",
    )]
    for fid, title, attr, severity, verb in (
        ("schema.column_missing", "Contract column missing", "missing", rules.missing_column, "is missing from"),
        ("schema.column_extra", "Column not in the contract", "extra", rules.extra_column,
         "is not in the contract but appears in"),
    ):
        hit = [f for f in readable if getattr(f, attr)]
        cols = sorted({c for f in hit for c in getattr(f, attr)})
        parts = [f"column {c} {verb} {_files_phrase([f for f in hit if c in getattr(f, attr)])}" for c in cols]
        out.append(fixed(ctx, fid, title, f"files_with_{attr}_columns", severity,
                         [f.file_date.isoformat() for f in hit], len(hit), _sentence_case("; ".join(parts)),
                         f"No file has {'a missing' if attr == 'missing' else 'an extra'} column."))
    hit = [f for f in readable if f.renamed]
    pairs = sorted({p for f in hit for p in f.renamed})
    out.append(fixed(
        ctx, "schema.column_renamed", "Column under another name (alias)", "files_with_renamed_columns",
        rules.renamed_column, [f.file_date.isoformat() for f in hit], len(hit),
        "; ".join(f"Header {a} is read as {b} in {_files_phrase([f for f in hit if (a, b) in f.renamed])} "
                  f"(the data dictionary does not mention {a})" for a, b in pairs),
        "Every header uses the contract's column names.",
    ))
    out.extend(_day_over_day(ctx))
    return out


def _files_phrase(files: list[RawFile]) -> str:
    dates = [f.file_date.isoformat() for f in files]
    return f"{len(files)} file{'s' if len(files) != 1 else ''} ({fmt_dates(dates)})"


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _day_over_day(ctx: CheckContext) -> list[Finding]:
    """Header vs the previous readable file: renamed (same canonical column), dropped, added."""
    severity = ctx.rules.schema_rules.changed_vs_previous_day
    changes: dict[str, list[tuple[str, str]]] = {"renamed": [], "dropped": [], "added": []}
    readable = [f for f in ctx.files if not f.header_error]
    for prev, cur in zip(readable, readable[1:]):
        if cur.file_date not in set(ctx.days):
            continue
        before = {h.strip() for h in prev.header}
        after = {h.strip() for h in cur.header}
        gone, new = before - after, after - before
        renamed = {(g, n) for g in gone for n in new if _canonical(ctx, g) == _canonical(ctx, n)}
        day = cur.file_date.isoformat()
        changes["renamed"] += [(day, f"{g} → {n}") for g, n in sorted(renamed)]
        changes["dropped"] += [(day, g) for g in sorted(gone - {g for g, _ in renamed})]
        changes["added"] += [(day, n) for n in sorted(new - {n for _, n in renamed})]
    titles = {"renamed": "Column renamed since the previous day", "dropped": "Column dropped since the previous day",
              "added": "Column added since the previous day"}
    out = []
    for kind, items in changes.items():
        text = "; ".join(f"{what} on {day}" for day, what in items)
        out.append(fixed(
            ctx, f"schema.day_over_day_{kind}", titles[kind], f"columns_{kind}", severity,
            [d for d, _ in items], len(items), f"Header changed vs the previous file: column {kind} {text}",
            f"No column was {kind} from one file to the next.",
        ))
    return out


# --------------------------------------------------------------------------------------------
# taxonomy


def check_taxonomy(ctx: CheckContext) -> list[Finding]:
    rules, contract = ctx.rules.taxonomy, ctx.rules.contract
    unknown = counted(
        ctx, "taxonomy.unknown_event", "Unknown or empty event names", "unknown_event_rate", rules.unknown_event_rate,
        ctx.rejects_per_day(["unknown_event_name", "missing_event_name"]).to_dict(), ctx.lines_per_day().to_dict(),
        lambda n, span, ds: (f"{n:,} row(s) ({span} of a day's rows) have an empty event name or one outside the "
                             f"contract ({fmt_dates(ds)})"),
        "Every event name is in the contract.",
        lambda ds: ctx.samples("reason IN ('unknown_event_name', 'missing_event_name')",
                               "source_file, row_number, reason, detail", ds, "stg_rejects", "file_date, row_number"),
    )
    totals = ctx.per_day("events")
    by_name = ctx.day_event.pivot_table(index="file_date", columns="event_name", values="events", aggfunc="sum")
    absent = []
    for d in ctx.days:
        if totals.get(d, 0) < rules.event_absent_min_day_events:
            continue
        for name in contract.events:
            if name not in by_name.columns or pd.isna(by_name.at[d, name]) or by_name.at[d, name] == 0:
                absent.append((d.isoformat(), name))
    absent_f = fixed(
        ctx, "taxonomy.event_absent", "Contract event absent on a day", "absent_event_days", rules.event_absent,
        [d for d, _ in absent], len(absent), "No " + "; no ".join(f"{n} event on {d}" for d, n in absent),
        "Every contract event occurs on every day.",
    )
    return [unknown, absent_f, *_dictionary(ctx)]


def _dictionary(ctx: CheckContext) -> list[Finding]:
    """Where the vendor's data dictionary disagrees with the data (purchase name, daily volume)."""
    rules, contract = ctx.rules, ctx.rules.contract
    severity = rules.taxonomy.dictionary_mismatch
    dict_name, purchase = contract.dictionary_purchase_event, contract.purchase_event
    # stg_events_all holds every parsed row, so a dictionary name the contract does not know is counted too.
    counts = dict(ctx.con.execute(f"""
        SELECT event_name, count(*) FROM stg_events_all
        WHERE event_name IN ({_sql_str(dict_name)}, {_sql_str(purchase)}) AND {ctx.in_range()} GROUP BY 1
    """).fetchall())
    n_purchase = ctx.per_day("events", purchase)
    mismatch_days = ([d.isoformat() for d in ctx.days if n_purchase.get(d, 0) > 0]
                     if dict_name != purchase and not counts.get(dict_name) else [])
    name_f = fixed(
        ctx, "taxonomy.dictionary_purchase_name", "Purchase event name differs from the data dictionary",
        "purchase_events", severity, mismatch_days, counts.get(purchase, 0),
        f"The data dictionary calls the purchase event '{dict_name}' but the data has none; its "
        f"{counts.get(purchase, 0):,} orders are '{purchase}' events ({fmt_dates(mismatch_days)})",
        "The purchase event name matches the data dictionary.",
    )
    low, high = rules.dictionary_daily_events
    totals = ctx.per_day("events")
    outside = {d: totals.get(d, 0) for d in ctx.days if not low <= totals.get(d, 0) <= high}
    lo_v, hi_v = (min(outside.values()), max(outside.values())) if outside else (0, 0)
    volume_f = fixed(
        ctx, "taxonomy.dictionary_daily_volume", "Daily volume outside the data dictionary's range", "events_per_day",
        severity, [d.isoformat() for d in outside], int(hi_v),
        f"{len(outside)} day(s) have {_range_text(lo_v, hi_v)} events, outside the data dictionary's "
        f"{low:,}–{high:,} a day ({fmt_dates(d.isoformat() for d in outside)})",
        f"Daily volumes are within the data dictionary's {low:,}–{high:,} events.",
    )
    return [name_f, volume_f]


# --------------------------------------------------------------------------------------------
# timestamps


def check_timestamps(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.timestamps
    lines = ctx.lines_per_day().to_dict()

    def rejects(fid, title, metric, rule, reasons, phrase, quiet):
        return counted(
            ctx, fid, title, metric, rule, ctx.rejects_per_day(reasons).to_dict(), lines,
            lambda n, span, ds: f"{n:,} row(s) ({span} of a day's rows) have {phrase} ({fmt_dates(ds)})", quiet,
            lambda ds: ctx.samples(f"reason IN ({', '.join(_sql_str(r) for r in reasons)})",
                                   "source_file, row_number, reason, detail", ds, "stg_rejects",
                                   "file_date, row_number"),
        )

    out = [
        rejects("timestamps.unparseable", "Missing or unparseable timestamps", "unparseable_rate",
                rules.unparseable_rate, ["missing_timestamp", "unparseable_timestamp"],
                "a missing or unparseable timestamp", "Every timestamp parses."),
        rejects("timestamps.outside_file_day", "Timestamps outside the file's UTC day", "outside_file_day_rate",
                rules.outside_file_day_rate, ["timestamp_outside_file_day"], "a timestamp outside the file's UTC day",
                "Every timestamp falls on its file's UTC day."),
    ]
    # Every parsed row counts, rejected ones too: a row stamped in 2031 inside a 2025 file is
    # rejected as outside its day, and it still says the source's clock is broken.
    future = f"event_ts > TIMESTAMP '{(ctx.now + timedelta(minutes=rules.future_tolerance_minutes)).isoformat(sep=' ')}'"
    future_rows = dict(ctx.con.execute(
        f"SELECT file_date, count(*) FROM stg_events_all WHERE {future} AND {ctx.in_range()} GROUP BY 1").fetchall())
    out.append(counted(
        ctx, "timestamps.future", "Timestamps in the future", "future_rate", rules.future_rate,
        future_rows, lines,
        lambda n, span, ds: (f"{n:,} row(s) ({span} of a day's rows) are stamped after the run time "
                             f"{ctx.now.isoformat(timespec='seconds')}Z ({fmt_dates(ds)})"),
        "No timestamp is in the future.",
        lambda ds: ctx.samples(future, "event_id, source_file, row_number, timestamp_raw", ds, "stg_events_all"),
    ))
    unsorted = ctx.con.execute(f"""
        SELECT file_date, count(*) FILTER (WHERE event_ts < prev_ts) AS n
        FROM (SELECT file_date, event_ts, lag(event_ts) OVER (PARTITION BY file_date ORDER BY row_number) AS prev_ts
              FROM stg_events WHERE {ctx.in_range()})
        GROUP BY 1 HAVING n > 0 ORDER BY 1
    """).fetchall()
    out.append(fixed(
        ctx, "timestamps.unsorted", "File not sorted by timestamp", "out_of_order_rows", rules.unsorted,
        [d.isoformat() for d, _ in unsorted], sum(n for _, n in unsorted),
        "Rows go back in time " + ", ".join(f"{n:,} times in {ctx.file_of(d)}" for d, n in unsorted),
        "Every file is sorted by timestamp.",
    ))
    out.append(_day_coverage(ctx))
    return out


def _day_coverage(ctx: CheckContext) -> Finding:
    """The longer edge of each day without events: before its first event or after its last."""
    rules = ctx.rules.timestamps
    edges = ctx.con.execute(f"""
        SELECT file_date, min(event_ts), max(event_ts) FROM stg_events WHERE {ctx.in_range()}
        GROUP BY 1 HAVING count(*) >= {int(rules.edge_gap_min_events)}
    """).fetchall()
    hours, notes = {}, {}
    for day, first, last in edges:
        start = datetime.combine(day, datetime.min.time())
        head, tail = (first - start).total_seconds() / 3600, (start + timedelta(days=1) - last).total_seconds() / 3600
        hours[day] = max(head, tail)
        notes[day] = (f"{day}: no event after {last:%H:%M} UTC ({tail:.1f} h before the day ends)" if tail >= head
                      else f"{day}: no event before {first:%H:%M} UTC ({head:.1f} h into the day)")
    return graded(
        ctx, "timestamps.day_coverage", "Hours without events at the start or end of a day", "edge_gap_hours",
        rules.edge_gap_hours, hours, lambda fl: "The day's events do not span it: " + _notes(fl, notes),
        "Every day's events run from its start to its end.",
    )


# --------------------------------------------------------------------------------------------
# client ids


def check_client_ids(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.client_ids
    t = ctx.day_event
    t = t[t.events >= rules.null_rate_min_events].assign(rate=lambda x: x.null_client_id / x.events)
    # Per day, the worst event name (page views carry the volume; a small event type is too noisy).
    top = t.sort_values(["file_date", "rate", "event_name"], ascending=[True, False, True]).drop_duplicates("file_date")
    worst_event = dict(zip(top.file_date, top.event_name))

    def null_what(fl):
        names = sorted({worst_event[date.fromisoformat(r["date"])] for r in fl})
        return f"Client ids are missing on {_span(fl)} of {'/'.join(names)} events a day {_on(fl)}"

    null_rate = graded(
        ctx, "client_id.null_rate", "Missing client ids", "null_rate", rules.null_rate,
        dict(zip(top.file_date, top.rate)), null_what, "Client ids are present on (nearly) every event.",
        lambda ds: ctx.samples("client_id IS NULL", "event_id, file_date, event_name, page_url", ds),
    )
    overall = _ratio(ctx.per_day("null_client_id"), ctx.per_day("events"))
    series = pd.Series(overall, dtype=float)
    ratios, notes = {}, {}
    for d in ctx.days:
        base = ctx.baseline(series, d)
        rate = overall.get(d)
        if base is None or rate is None or rate - base < rules.null_rate_ratio_min_delta:
            continue
        ratios[d] = min(rate / base, MAX_RATIO) if base > 0 else MAX_RATIO
        notes[d] = f"{pct(rate)} on {d.isoformat()} (baseline {pct(base)})"
    jump = graded(
        ctx, "client_id.null_rate_vs_baseline", "Missing client ids jump vs baseline", "null_rate_ratio",
        rules.null_rate_ratio, ratios,
        lambda fl: "The share of events without a client id jumped against the trailing baseline: " + _notes(fl, notes),
        "The missing-id share is in line with the trailing baseline.",
    )
    bad = counted(
        ctx, "client_id.bad_format", "Malformed client ids", "bad_format_rate", rules.bad_format_rate,
        ctx.per_day("bad_client_id").to_dict(), (ctx.per_day("events") - ctx.per_day("null_client_id")).to_dict(),
        lambda n, span, ds: (f"{n:,} client id(s) ({span} of a day's) do not match the contract's pattern "
                             f"({fmt_dates(ds)})"),
        "Every client id matches the contract's pattern (cookie id or UUID).",
        lambda ds: ctx.samples(f"NOT regexp_full_match(client_id, {_sql_str(ctx.rules.contract.client_id_pattern)})",
                               "event_id, file_date, client_id", ds),
    )
    return [null_rate, jump, bad]


# --------------------------------------------------------------------------------------------
# duplicates


def check_duplicates(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.duplicates
    exact = counted(
        ctx, "duplicates.exact_row", "Exact duplicate rows", "exact_row_rate", rules.exact_row_rate,
        ctx.rejects_per_day(["exact_duplicate"]).to_dict(), ctx.lines_per_day().to_dict(),
        lambda n, span, ds: (f"{n:,} row(s) ({span} of a day's lines) are exact copies of an earlier row "
                             f"({fmt_dates(ds)})"),
        "No row is an exact copy of another.",
        lambda ds: ctx.samples("reason = 'exact_duplicate'", "source_file, row_number, left(raw, 200) AS raw", ds,
                               "stg_rejects", "file_date, row_number"),
    )
    # A timestamp lies on its file's day, so same-key groups never span two files.
    ctx.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE dq_same_key AS
        SELECT file_date, client_id, event_ts, event_name, count(*) AS n FROM stg_events
        WHERE client_id IS NOT NULL AND {ctx.in_range()}
        GROUP BY ALL HAVING count(*) > 1
    """)
    same = ctx.df("SELECT file_date, sum(n)::BIGINT AS n_rows, count(*) AS n_groups FROM dq_same_key "
                  "GROUP BY 1 ORDER BY 1")
    same["file_date"] = pd.to_datetime(same["file_date"]).dt.date
    rows = dict(zip(same.file_date, same.n_rows))
    groups = dict(zip(same.file_date, same.n_groups))

    def same_what(fl):
        ds = [date.fromisoformat(r["date"]) for r in fl]
        return (f"{sum(rows[d] for d in ds):,} rows in {sum(groups[d] for d in ds):,} group(s) share client, timestamp "
                f"and event name but differ in content {_on(fl)}")

    same_key = graded(
        ctx, "duplicates.same_key", "Same client, timestamp and event, different content", "same_key_rate",
        rules.same_key_rate, _ratio(pd.Series(rows, dtype=float), ctx.per_day("events")), same_what,
        "No two events share client, timestamp and event name.",
        lambda ds: ctx.samples(
            "EXISTS (SELECT 1 FROM dq_same_key k WHERE k.client_id = stg_events.client_id "
            "AND k.event_ts = stg_events.event_ts AND k.event_name = stg_events.event_name)",
            "event_id, client_id, timestamp_raw, event_name, page_url", ds, order="client_id, event_ts, event_id"),
    )
    return [exact, same_key, *_transaction_ids(ctx)]


def _transaction_ids(ctx: CheckContext) -> list[Finding]:
    """Transaction ids on more than one purchase: replay (same client and payload) or collision."""
    rules, purchase = ctx.rules.duplicates, _sql_str(ctx.rules.contract.purchase_event)
    ctx.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE dq_repeated_transactions AS
        SELECT transaction_id,
               count(DISTINCT coalesce(client_id, '')) = 1 AND count(DISTINCT event_data) = 1 AS replay
        FROM stg_events WHERE event_name = {purchase} AND transaction_id IS NOT NULL
        GROUP BY 1 HAVING count(*) > 1
    """)
    per_day = ctx.df(f"""
        SELECT e.file_date, r.replay, count(*) AS events, count(DISTINCT e.transaction_id) AS ids
        FROM stg_events e JOIN dq_repeated_transactions r USING (transaction_id)
        WHERE e.event_name = {purchase} AND {ctx.in_range('e.file_date')} GROUP BY ALL
    """)
    per_day["file_date"] = pd.to_datetime(per_day["file_date"]).dt.date
    purchases = ctx.per_day("events", ctx.rules.contract.purchase_event).to_dict()
    out = []
    for replay, fid, title, rule, what in (
        (True, "duplicates.transaction_id_replay", "Transaction id replayed (same client and payload)",
         rules.transaction_id_replay_rate, "replayed: the same client sent the same order payload again"),
        (False, "duplicates.transaction_id_collision", "Transaction id reused by a different order",
         rules.transaction_id_collision_rate, "reused by different orders (another client or another payload)"),
    ):
        part = per_day[per_day.replay == replay]
        ids = ctx.con.execute(f"""
            SELECT count(DISTINCT e.transaction_id) FROM stg_events e
            JOIN dq_repeated_transactions r USING (transaction_id)
            WHERE r.replay = {replay} AND e.event_name = {purchase} AND {ctx.in_range('e.file_date')}
        """).fetchone()[0]
        out.append(counted(
            ctx, fid, title, f"{'replay' if replay else 'collision'}_event_rate", rule,
            part.groupby("file_date")["events"].sum().to_dict(), purchases,
            lambda n, span, dates, ids=ids, what=what: (
                f"{ids:,} transaction id(s) on {n:,} {ctx.rules.contract.purchase_event} events "
                f"({span} of a day's orders) are {what} ({fmt_dates(dates)})"),
            "Every transaction id belongs to one order event.",
            lambda ds, replay=replay: ctx.samples(
                f"transaction_id IN (SELECT transaction_id FROM dq_repeated_transactions WHERE replay = {replay})",
                "event_id, transaction_id, client_id, revenue, user_email", ds, order="transaction_id, event_id"),
        ))
    return out


# --------------------------------------------------------------------------------------------
# payloads


def check_payload(ctx: CheckContext) -> list[Finding]:
    rules, contract = ctx.rules.payload, ctx.rules.contract
    purchase, email = _sql_str(contract.purchase_event), _sql_str(contract.email_event)
    numeric = ", ".join(_sql_str(t) for t in NUMERIC_JSON_TYPES)
    orders = ctx.df(f"""
        SELECT file_date,
               count(*) FILTER (WHERE event_name IN ({purchase}, {email})) AS payload_events,
               count(*) FILTER (WHERE event_name = {purchase}) AS orders,
               count(*) FILTER (WHERE payload_error IS NOT NULL) AS invalid_json,
               count(*) FILTER (WHERE event_name = {purchase} AND revenue_json_type IN ('MISSING', 'NULL'))
                   AS revenue_missing,
               count(*) FILTER (WHERE event_name = {purchase}
                                AND revenue_json_type NOT IN ('MISSING', 'NULL', {numeric})) AS revenue_non_numeric,
               count(*) FILTER (WHERE revenue < 0) AS revenue_negative,
               count(*) FILTER (WHERE revenue = 0) AS revenue_zero,
               count(*) FILTER (WHERE revenue <> floor(revenue)) AS revenue_non_integer,
               count(*) FILTER (WHERE event_name = {purchase} AND payload_error IS NULL AND coalesce(item_count, 0) = 0)
                   AS items_missing
        FROM stg_events WHERE event_name IN ({purchase}, {email}) AND {ctx.in_range()}
        GROUP BY 1 ORDER BY 1
    """).set_index("file_date")
    orders.index = pd.to_datetime(orders.index).date
    all_null = ("(item_id IS NULL AND item_name IS NULL AND item_variant IS NULL AND quantity IS NULL "
                "AND item_price IS NULL)")
    items = ctx.df(f"""
        SELECT file_date, count(*) FILTER (WHERE NOT {all_null}) AS items,
               count(*) FILTER (WHERE NOT {all_null} AND item_price IS NULL) AS price_missing,
               count(*) FILTER (WHERE NOT {all_null} AND (item_id IS NULL OR item_name IS NULL OR quantity IS NULL))
                   AS fields_missing
        FROM stg_purchase_items WHERE {ctx.in_range()} GROUP BY 1 ORDER BY 1
    """).set_index("file_date")
    items.index = pd.to_datetime(items.index).date
    mismatch = ctx.df(f"""
        WITH per_order AS (
            SELECT event_id, sum(item_price) AS item_total, count(*) AS n, count(item_price) AS priced
            FROM stg_purchase_items WHERE {ctx.in_range()} GROUP BY 1)
        SELECT e.file_date, count(*) AS comparable,
               count(*) FILTER (WHERE abs(e.revenue - p.item_total) > {rules.revenue_tolerance}) AS mismatched
        FROM stg_events e JOIN per_order p USING (event_id)
        WHERE p.n = p.priced AND e.revenue IS NOT NULL GROUP BY 1 ORDER BY 1
    """).set_index("file_date")
    mismatch.index = pd.to_datetime(mismatch.index).date
    zero_all_null = ctx.con.execute(f"""
        SELECT count(*) FROM stg_events e
        WHERE e.revenue = 0 AND e.item_count = 1 AND {ctx.in_range('e.file_date')}
          AND EXISTS (SELECT 1 FROM stg_purchase_items i WHERE i.event_id = e.event_id AND {all_null})
    """).fetchone()[0]

    order_cols = "event_id, transaction_id, revenue, revenue_json_type, item_count"

    def order_finding(fid, title, column, rule, phrase, quiet, where):
        return counted(
            ctx, fid, title, f"{column}_rate", rule, orders[column].to_dict(), orders["orders"].to_dict(),
            lambda n, span, ds: (f"{n:,} {contract.purchase_event} event(s) ({span} of a day's orders) {phrase} "
                                 f"({fmt_dates(ds)})"),
            quiet, lambda ds: ctx.samples(f"event_name = {purchase} AND ({where})", order_cols, ds),
        )

    item_cols = "event_id, transaction_id, line_number, item_id, item_name, quantity, item_price"
    out = [
        counted(
            ctx, "payload.invalid_json", "Invalid or missing JSON payload", "invalid_json_rate",
            rules.invalid_json_rate, orders["invalid_json"].to_dict(), orders["payload_events"].to_dict(),
            lambda n, span, ds: (f"{n:,} order/email event(s) ({span} of a day's) have a missing or invalid "
                                 f"JSON payload ({fmt_dates(ds)})"),
            "Every order and email payload is valid JSON.",
            lambda ds: ctx.samples("payload_error IS NOT NULL",
                                   "event_id, event_name, payload_error, left(event_data, 200) AS event_data", ds),
        ),
        order_finding("payload.revenue_missing", "Order without revenue", "revenue_missing",
                      rules.revenue_missing_rate, "have no revenue", "Every order has a revenue.",
                      "revenue_json_type IN ('MISSING', 'NULL')"),
        order_finding("payload.revenue_non_numeric", "Revenue not a JSON number", "revenue_non_numeric",
                      rules.revenue_non_numeric_rate, "carry a revenue that is not a JSON number",
                      "Every revenue is a JSON number.", f"revenue_json_type NOT IN ('MISSING', 'NULL', {numeric})"),
        order_finding("payload.revenue_negative", "Negative revenue", "revenue_negative", rules.revenue_negative_rate,
                      "have a negative revenue", "No revenue is negative.", "revenue < 0"),
        order_finding("payload.revenue_zero", "Zero-revenue orders", "revenue_zero", rules.revenue_zero_rate,
                      f"have revenue 0 ({zero_all_null:,} of them with a single all-null item)",
                      "No order has revenue 0.", "revenue = 0"),
        order_finding("payload.items_missing", "Order without items", "items_missing", rules.items_missing_rate,
                      "have no items", "Every order lists its items.",
                      "coalesce(item_count, 0) = 0 AND payload_error IS NULL"),
        counted(
            ctx, "payload.revenue_item_mismatch", "Revenue ≠ sum of item prices", "revenue_mismatch_rate",
            rules.revenue_mismatch_rate, mismatch["mismatched"].to_dict(), mismatch["comparable"].to_dict(),
            lambda n, span, ds: (f"{n:,} order(s) ({span} of a day's orders with every item priced) have a revenue "
                                 f"that differs from the sum of item_price by more than {rules.revenue_tolerance} "
                                 f"({fmt_dates(ds)})"),
            "Revenue equals the sum of item prices wherever all prices are present.",
        ),
        counted(
            ctx, "payload.item_price_missing", "Item price missing", "item_price_missing_rate",
            rules.item_price_missing_rate, items["price_missing"].to_dict(), items["items"].to_dict(),
            lambda n, span, ds: (f"{n:,} order item(s) ({span} of a day's items) have no item_price while their "
                                 f"orders still have a revenue ({fmt_dates(ds)})"),
            "Every order item has a price.",
            lambda ds: ctx.samples(f"item_price IS NULL AND NOT {all_null}", item_cols, ds, "stg_purchase_items",
                                   "event_id, line_number"),
        ),
        counted(
            ctx, "payload.item_fields_missing", "Item id, name or quantity missing", "item_fields_missing_rate",
            rules.item_fields_missing_rate, items["fields_missing"].to_dict(), items["items"].to_dict(),
            lambda n, span, ds: (f"{n:,} order item(s) ({span} of a day's items) lack an item_id, item_name or "
                                 f"quantity ({fmt_dates(ds)})"),
            "Every order item has an id, a name and a quantity.",
            lambda ds: ctx.samples(f"NOT {all_null} AND (item_id IS NULL OR item_name IS NULL OR quantity IS NULL)",
                                   item_cols, ds, "stg_purchase_items", "event_id, line_number"),
        ),
    ]
    non_int = orders["revenue_non_integer"]
    non_int_days = [d.isoformat() for d, n in non_int.items() if n]
    values = ctx.rows(f"""SELECT revenue FROM stg_events WHERE revenue <> floor(revenue) AND {ctx.in_range()}
                          ORDER BY event_id LIMIT 10""")
    out.append(fixed(
        ctx, "payload.revenue_non_integer", "Non-integer revenue", "non_integer_revenues", rules.non_integer_revenue,
        non_int_days, int(non_int.sum()),
        f"{int(non_int.sum()):,} order(s) have a non-integer revenue ({', '.join(str(v['revenue']) for v in values)}) "
        f"({fmt_dates(non_int_days)})",
        "Every revenue is a whole number.",
        ctx.samples("revenue <> floor(revenue)", order_cols, non_int_days),
    ))
    return out


# --------------------------------------------------------------------------------------------
# volume


def check_volume(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.volume
    totals = ctx.per_day("events")
    ratios, short, notes = {}, [], {}
    for d in ctx.days:
        base = ctx.baseline(totals, d)
        if base is None:
            short.append(d)
            continue
        ratios[d] = totals.get(d, 0) / base
        notes[d] = f"{int(totals.get(d, 0)):,} on {d.isoformat()} (×{ratios[d]:.2f} of {base:,.0f})"

    def far(r):  # distance from 1 on a log scale, so halving and doubling rank alike
        return abs(math.log(r)) if r and r > 0 else float("inf")

    daily = graded(
        ctx, "volume.daily_events", "Daily event volume vs baseline", "events_ratio", rules.daily_events_ratio, ratios,
        lambda fl: "Daily events broke the trailing baseline: " + _notes(fl, notes),
        "Daily event volumes are in line with the trailing baseline.", key=far,
    )
    # Per day, the event whose volume is furthest from its own baseline is the one graded.
    per_event, event_notes = {}, {}
    for name in ctx.rules.contract.events:
        series = ctx.per_day("events", name).reindex(totals.index).fillna(0)
        for d in ctx.days:
            base = ctx.baseline(series, d)
            if base is None or base < rules.event_name_min_baseline:
                continue
            ratio = series.get(d, 0) / base
            if d not in per_event or far(ratio) > far(per_event[d]):
                per_event[d] = ratio
                event_notes[d] = f"{name} {int(series.get(d, 0)):,} on {d.isoformat()} (×{ratio:.2f} of {base:,.0f})"
    event_name = graded(
        ctx, "volume.event_name", "Event-name volume vs baseline", "event_ratio", rules.event_name_ratio, per_event,
        lambda fl: "Event volumes broke their trailing baseline: " + _notes(fl, event_notes),
        "Every event's daily volume is in line with its trailing baseline.", key=far,
    )
    short_dates = [d.isoformat() for d in short]
    insufficient = fixed(
        ctx, "volume.insufficient_history", "Too little history for baselines", "days_without_baseline",
        rules.insufficient_history, short_dates, len(short),
        f"{len(short)} day(s) have fewer than {ctx.rules.min_baseline_days} earlier days of data within "
        f"{ctx.rules.baseline_days} days ({fmt_dates(short_dates)})",
        "Every day has a trailing baseline.",
    )
    return [daily, event_name, insufficient]


# --------------------------------------------------------------------------------------------
# bots


def check_bots(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.bots
    share = counted(
        ctx, "bots.share", "Bot traffic", "bot_share", rules.share,
        ctx.per_day("bot_events").to_dict(), ctx.per_day("events").to_dict(),
        lambda n, span, ds: f"{n:,} events ({span} of a day's) come from bot user agents ({fmt_dates(ds)})",
        "Bot traffic is below the warning level.",
        lambda ds: ctx.rows(f"""
            SELECT u.bot_name, count(*) AS events FROM stg_events e JOIN dq_user_agents u USING (user_agent)
            WHERE u.is_bot AND file_date IN ({', '.join(f"DATE '{d}'" for d in ds)})
            GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {ctx.rules.sample_rows}"""),
    )
    contract = ctx.rules.contract
    checkout_events = (rules.checkout_events if rules.checkout_events is not None
                       else [contract.checkout_started_event, contract.purchase_event])
    names = ", ".join(_sql_str(n) for n in checkout_events) or "NULL"
    t = ctx.day_event[ctx.day_event.event_name.isin(checkout_events)]

    def checkout_what(flagged: list[dict]) -> str:
        days = {date.fromisoformat(r["date"]) for r in flagged}
        by_event = t[t.file_date.isin(days)].groupby("event_name")["bot_events"].sum()
        sent = ", ".join(f"{int(n):,} {name}" for name, n in by_event.items() if n)
        return f"Bot user agents sent {sent} event(s) ({fmt_dates(r['date'] for r in flagged)})"

    checkout = graded(
        ctx, "bots.checkout_events", "Bots in the checkout funnel", "bot_checkout_events",
        rules.checkout_event_count, t.groupby("file_date")["bot_events"].sum().to_dict(), checkout_what,
        "No bot reached the checkout.",
        lambda ds: ctx.samples(f"user_agent IN (SELECT user_agent FROM dq_user_agents WHERE is_bot) "
                               f"AND event_name IN ({names})",
                               "event_id, event_name, client_id, left(user_agent, 120) AS user_agent", ds),
    )
    return [share, checkout]


# --------------------------------------------------------------------------------------------
# referrer / UTM coverage


def check_referrer(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.referrer
    pv = ctx.rules.contract.page_view_event
    views = ctx.per_day("events", pv)
    views = views[views >= rules.min_page_views]
    without_column = {f.file_date for f in ctx.files if "referrer" in f.missing}
    with_column = views[[d not in without_column for d in views.index]]
    coverage = (ctx.per_day("with_referrer", pv).reindex(with_column.index).fillna(0) / with_column)
    anonymised = (ctx.per_day("anonymised_referrer", pv).reindex(with_column.index).fillna(0)
                  / ctx.per_day("with_referrer", pv).reindex(with_column.index)).replace([float("inf")], float("nan"))
    utm = ctx.per_day("with_utm", pv).reindex(views.index).fillna(0) / views
    gone = sorted(d.isoformat() for d in without_column if d in set(ctx.days))
    note = f" (no referrer column on {fmt_dates(gone)}, see schema.column_missing)" if gone else ""
    out = []
    for fid, title, series, phrase in (
        ("referrer.coverage", "Share of page views with a referrer", coverage, "page views with a referrer"),
        ("referrer.anonymised_share", "Share of referrers that are anonymised", anonymised,
         "referrers that are anonymised source-*.com hosts"),
        ("referrer.utm_coverage", "Share of page views with UTM parameters", utm, "page views with utm_ parameters"),
    ):
        deltas, notes = {}, {}
        for d in ctx.days:
            base = ctx.baseline(series, d)
            if base is None or d not in series.index or pd.isna(series[d]):
                continue
            deltas[d] = abs(series[d] - base)
            notes[d] = f"{pct(series[d])} on {d.isoformat()} (baseline {pct(base)})"
        suffix = note if fid != "referrer.utm_coverage" else ""  # UTM parameters live in page_url
        out.append(graded(
            ctx, fid, title, f"{fid.split('.')[1]}_delta", rules.share_delta, deltas,
            lambda fl, notes=notes, phrase=phrase, suffix=suffix: (
                f"The share of {phrase} moved away from the trailing baseline: {_notes(fl, notes)}{suffix}"),
            f"The share of {phrase} is in line with the trailing baseline{suffix}.",
        ))
    return out


# --------------------------------------------------------------------------------------------

CHECKS = (check_ingest, check_schema, check_taxonomy, check_timestamps, check_client_ids, check_duplicates,
          check_payload, check_volume, check_bots, check_referrer)


def run_checks(ctx: CheckContext) -> list[Finding]:
    """Build the metrics, run every check, return the findings in a stable order."""
    # Imported here: those checks are built from this module's helpers.
    from puffy.dq.materiality import check_coverage, check_materiality

    build_metrics(ctx)
    findings: list[Finding] = []
    for check in (*CHECKS, check_coverage, check_materiality):
        findings.extend(check(ctx))
    return sort_findings(findings)


def daily_summary(ctx: CheckContext, findings: list[Finding]) -> pd.DataFrame:
    """One row per in-range day: volumes, rates behind the main checks, and the day's worst severity."""
    pv = ctx.rules.contract.page_view_event
    t = pd.DataFrame({
        "events": ctx.per_day("events"),
        "page_views": ctx.per_day("events", pv),
        "null_client_ids": ctx.per_day("null_client_id"),
        "page_view_null_client_ids": ctx.per_day("null_client_id", pv),
        "bot_events": ctx.per_day("bot_events"),
        "page_views_with_referrer": ctx.per_day("with_referrer", pv),
    }).fillna(0)
    t = t[t.index >= ctx.first_day]
    rej = ctx.rejects[ctx.rejects.reason != "unreadable_file"].groupby("file_date")["n"].sum()
    t["rejects"] = rej.reindex(t.index).fillna(0).astype(int)
    t["client_id_null_rate"] = t.null_client_ids / t.events
    t["page_view_null_rate"] = t.page_view_null_client_ids / t.page_views.where(t.page_views > 0)
    t["bot_share"] = t.bot_events / t.events
    t["referrer_share"] = t.page_views_with_referrer / t.page_views.where(t.page_views > 0)
    worst_by_day = {}
    for f in findings:
        for r in f.daily:
            worst_by_day[r["date"]] = worst([worst_by_day.get(r["date"], "pass"), r["severity"]])
    t["status"] = [worst_by_day.get(d.isoformat(), "pass") for d in t.index]
    t.index.name = "date"
    int_cols = ["events", "page_views", "null_client_ids", "page_view_null_client_ids", "bot_events",
                "page_views_with_referrer"]
    return t.astype({c: int for c in int_cols}).reset_index()
