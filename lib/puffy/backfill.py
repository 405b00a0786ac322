"""One pass over a backfill's days: the per-day loops that the range notebooks run.

``puffy run --start D1 --end D2`` executes each notebook once for the range instead of once per
day (``puffy.runner.run_range_one_pass``; ``--day-by-day`` runs them for each day):

1. ``01_data_quality`` gates each day on its own (``gate_each_day``): the same call, with the same
   report directory ``runs/<day>/``, as a day-by-day run makes, so every day's gate report and
   incident history are those of a daily run;
2. ``02_transform`` transforms the days that passed their gate in one run, into one staging
   warehouse, which the runner splits into per-day staging warehouses (``split_staging``);
3. ``04_monitoring`` audits each day in order and publishes it when it passes, before auditing the
   next (which reads it as history), quarantining the first day that fails and stopping there
   (``audit_and_publish_each_day``): the days after it were transformed with it as their history,
   and the day before it with its events, so the runner transforms them again.

Each day's outcome is written beside its reports (``publish_outcome.json``), for the runner.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from puffy.findings import worst_status
from puffy.stage import Layout, Period, StageResult

if TYPE_CHECKING:  # pandas is not imported by the runner, which reads the outcomes below
    import pandas as pd

    from puffy.monitoring.audit import MonitoringResult

PUBLISH_OUTCOME = "publish_outcome.json"


@dataclass
class GatedDays:
    """The gate of each day of a period, shown as one result: each day's stage result (the gate's
    open connection closed), findings and row of the per-day table."""

    stages: dict[date, StageResult]
    findings: pd.DataFrame
    daily: pd.DataFrame
    summary: dict

    @property
    def narrative(self) -> str:
        return _status_lines(self.stages)

    def findings_table(self) -> pd.DataFrame:
        return self.findings


def gate_each_day(
    layout: Layout, period: Period, *, now: datetime | None = None, stop_at_error: bool = False
) -> StageResult:
    """Gate each day of ``period`` on its own, in order, into its run directory (emptied first, as
    a daily run does); with ``stop_at_error`` the first day whose gate fails is the last gated.
    ``value`` is a ``GatedDays``; the status is the worst day's."""
    from puffy import dq

    stages, findings, daily, totals = {}, [], [], dict.fromkeys(("files", "lines_read", "events", "rejects"), 0)
    for day in period.days:
        run_dir = layout.run_dir(day)
        shutil.rmtree(run_dir, ignore_errors=True)
        stage = dq.run(layout, Period.of(day), output_dir=run_dir, now=now)
        result = stage.value
        result.con.close()  # one open connection per day would hold every day's tables
        stages[day] = StageResult(stage.stage, stage.status, stage.message, stage.written)
        findings.append(result.findings_table())
        daily.append(result.daily)
        for key in totals:
            totals[key] += result.summary[key]
        if stop_at_error and stage.status == "error":
            break
    value = GatedDays(stages, _concat(findings), _concat(daily), totals)
    return StageResult("dq", _worst(stages), f"{len(stages)} day(s) gated", {}, value)


def split_staging(staging_root: Path, layout: Layout, days: list[date]) -> None:
    """Move a range transform's partitions into each day's staging warehouse: a partition dated
    before the first day (the day before it, whose sessions an incremental run rewrites) goes with
    the first day, as in a daily run."""
    for part in sorted(Path(staging_root).glob("*/date=*")):
        day = max(date.fromisoformat(part.name[5:]), days[0])
        target = layout.staging_warehouse(day) / part.parent.name / part.name
        target.parent.mkdir(parents=True, exist_ok=True)
        part.rename(target)


@dataclass
class AuditedDays:
    """What ``audit_and_publish_each_day`` did, shown as one result: each audited day's stage
    result and findings, the days published, the day quarantined (then the last audited), and the
    last day's monitoring result, whose trend and channel mix cover the history before it."""

    stages: dict[date, StageResult] = field(default_factory=dict)
    findings: list[pd.DataFrame] = field(default_factory=list)
    published: list[date] = field(default_factory=list)
    quarantined: date | None = None
    last: MonitoringResult | None = None

    @property
    def narrative(self) -> str:
        return _status_lines(self.stages, self.quarantined)

    def findings_frame(self) -> pd.DataFrame:
        return _concat(self.findings)


def audit_and_publish_each_day(layout: Layout, period: Period, *, now: datetime | None = None) -> StageResult:
    """Audit each day of ``period`` in its staging warehouse (``layout.staging_warehouse``) against
    the published history, in order; publish it when its status is not an error, else quarantine
    it and stop. Writes each audited day's ``publish_outcome.json``. ``value``: ``AuditedDays``."""
    from puffy import monitoring
    from puffy.publish import publish, quarantine

    audited = AuditedDays()
    for day in period.days:
        staging, run_dir = layout.staging_warehouse(day), layout.run_dir(day)
        stage = monitoring.run(layout, Period.of(day), warehouse=staging, output_dir=run_dir, now=now)
        audited.stages[day], audited.last = (
            StageResult(stage.stage, stage.status, stage.message, stage.written),
            stage.value,
        )
        audited.findings.append(stage.value.findings_frame().assign(day=day.isoformat()))
        if stage.status == "error":
            target = quarantine(staging, layout.quarantine)
            _write_outcome(run_dir, published=False, quarantine_path=str(target))
            audited.quarantined = day
            break
        partitions = publish(staging, layout.warehouse)
        _write_outcome(run_dir, published=bool(partitions), partitions=len(partitions))
        audited.published.append(day)
    message = f"{len(audited.published)} day(s) published" + (
        f", {audited.quarantined} quarantined" if audited.quarantined else ""
    )
    return StageResult("monitoring", _worst(audited.stages), message, {}, audited)


def _worst(stages: dict[date, StageResult]) -> str:
    return worst_status(stage.status for stage in stages.values())


def _status_lines(stages: dict[date, StageResult], quarantined: date | None = None) -> str:
    return "\n".join(
        f"- {day}: **{stage.status.upper()}**{' (quarantined)' if day == quarantined else ''}"
        + (f" — {stage.message}" if stage.message else "")
        for day, stage in stages.items()
    )


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames one under the other (an empty one only for its columns)."""
    import pandas as pd

    shown = [f for f in frames if len(f)]
    if shown:
        return pd.concat(shown, ignore_index=True)
    return frames[0] if frames else pd.DataFrame()


def _write_outcome(run_dir: Path, **outcome) -> None:
    (run_dir / PUBLISH_OUTCOME).write_text(json.dumps(outcome, indent=2) + "\n", encoding="utf-8")


def read_outcome(run_dir: Path) -> dict | None:
    """A day's ``publish_outcome.json`` (None: it was not audited)."""
    path = Path(run_dir) / PUBLISH_OUTCOME
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
