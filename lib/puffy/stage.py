"""The contract every stage follows: ``puffy.<stage>.run(layout, period, **options) -> StageResult``.

The four stages are ``puffy.dq`` (the gate), ``puffy.transform``, ``puffy.monitoring`` and
``puffy.report``; each package exposes ``run`` (defined in its ``stage`` module). An entry:

* takes a :class:`Layout` (where the raw files, params and outputs are) and a :class:`Period`
  (``None``: the stage's own default, e.g. every raw file, every staged day, the latest partition);
* resolves its own defaults from the layout (staging, warehouses, report directories), so a
  notebook passes its parameters and nothing else;
* writes its own status (``<output_dir>/<stage status file>``, ``status``: pass | warn | error),
  which the runner reads: the notebook shows results, it does not decide or record the outcome;
* returns a :class:`StageResult`: the status, a one-line message, what it wrote and the stage's
  detailed result (``value``) for the notebook to present.

The runner (``puffy.runner``) knows stages only through its ``DAILY_STAGES`` table and the status
files; no notebook imports the runner.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from puffy.dates import date_range, parse_day
from puffy.errors import UserError
from puffy.params import DEFAULT_PARAMS_DIR, REPO_ROOT, PipelineParams, load_pipeline_params

# Where each stage writes its status (in its output directory): the gate's and the audit's reports
# are their statuses.
STATUS_FILES = {"dq": "dq_report.json", "transform": "transform_status.json", "monitoring": "monitoring_report.json"}


def repo_path(path: str | Path | None) -> Path | None:
    """A relative path is taken from the project root (a notebook opened in JupyterLab runs in
    notebooks/, papermill in the root: both must find ``outputs`` and ``params``)."""
    if path is None:
        return None
    path = Path(path)
    return path if path.is_absolute() else REPO_ROOT / path


@dataclass(frozen=True)
class Period:
    """The days a stage works on, both ends included."""

    start: date
    end: date

    def __post_init__(self):
        if self.end < self.start:
            raise UserError(f"end {self.end} is before start {self.start}")

    @classmethod
    def of(cls, start: date, end: date | None = None) -> Period:
        return cls(start, start if end is None else end)

    @classmethod
    def from_parameters(cls, run_date=None, start_date=None, end_date=None) -> Period | None:
        """A notebook's parameters (YYYY-MM-DD strings or None): ``run_date`` is one day, else
        ``start_date`` … ``end_date``; both None is None (the stage's default). One end alone is open:
        an error, since a stage cannot guess the other."""
        day = parse_day(run_date, "run_date")
        if day is not None:
            return cls(day, day)
        start, end = parse_day(start_date, "start_date"), parse_day(end_date, "end_date")
        if start is None and end is None:
            return None
        if start is None or end is None:
            raise UserError("give both start_date and end_date, or run_date, or neither")
        return cls(start, end)

    @property
    def days(self) -> list[date]:
        return date_range(self.start, self.end)

    @property
    def label(self) -> str:
        return self.start.isoformat() if self.start == self.end else f"{self.start}_{self.end}"


@dataclass
class Layout:
    """Where a run reads and writes: raw files in ``input_dir``, settings in ``params_dir``,
    everything it produces under ``outputs_dir`` (data layers named by what they hold)."""

    outputs_dir: Path
    input_dir: Path
    params_dir: Path

    @classmethod
    def resolve(cls, params_dir: str | Path = DEFAULT_PARAMS_DIR, outputs_dir: str | Path | None = None,
                input_dir: str | Path | None = None) -> Layout:
        """Relative paths from the project root; ``outputs_dir`` / ``input_dir`` default to
        ``params/pipeline.yaml``'s."""
        params_dir = repo_path(params_dir)
        pipeline = load_pipeline_params(params_dir) if outputs_dir is None or input_dir is None else None
        return cls(repo_path(outputs_dir) if outputs_dir is not None else Path(pipeline.outputs_dir),
                   repo_path(input_dir) if input_dir is not None else Path(pipeline.input_dir), params_dir)

    @property
    def pipeline(self) -> PipelineParams:
        return load_pipeline_params(self.params_dir)

    @property
    def intermediate(self) -> Path:
        """Staged, validated events (``stg_*`` partitions written by the gate)."""
        return self.outputs_dir / "intermediate"

    @property
    def warehouse(self) -> Path:
        """The published tables: what dashboards and the executive summary read."""
        return self.outputs_dir / "warehouse"

    @property
    def build_warehouse(self) -> Path:
        """Where a transform run outside the daily runner builds (audited, never published as is)."""
        return self.outputs_dir / "staging" / "warehouse"

    @property
    def quarantine(self) -> Path:
        return self.outputs_dir / "quarantine"

    @property
    def adhoc_run_dir(self) -> Path:
        """Reports of a stage run by hand (a notebook in JupyterLab)."""
        return self.outputs_dir / "runs" / "adhoc"

    def run_dir(self, day: date) -> Path:
        return self.outputs_dir / "runs" / day.isoformat()

    def staging_warehouse(self, day: date) -> Path:
        return self.outputs_dir / "staging" / day.isoformat() / "warehouse"


@dataclass
class StageResult:
    """What a stage entry returns (see the module docstring)."""

    stage: str
    status: str  # pass | warn | error
    message: str = ""
    written: dict[str, Path] = field(default_factory=dict)  # what it wrote: reports, status, warehouse
    value: Any = field(default=None, repr=False)  # the stage's own result, for presentation


def write_status(output_dir: str | Path, status_file: str, status: str, message: str = "", **details) -> Path:
    """``<output_dir>/<status_file>``: ``{"status", "message", **details}``, what the runner reads."""
    path = Path(output_dir) / status_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"status": status, "message": message, **details}, indent=2, default=str) + "\n",
                    encoding="utf-8")
    return path
