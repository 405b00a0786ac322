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
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from puffy.dates import date_range, parse_day
from puffy.errors import UserError
from puffy.params import DEFAULT_PARAMS_DIR, REPO_ROOT, PipelineParams, load_pipeline_params
from puffy.storage import Location

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


def repo_location(value: str | Path | Location | None) -> Path | Location | None:
    """``repo_path`` for a setting that may also be an object-store URI: a local path (or ``file://``
    URI) becomes a ``Path`` (relative ones from the project root), a URI a ``Location`` (never
    ``Path("s3://b/x")``, which is ``s3:/b/x``); a mangled or unsupported URI is a ``UserError``."""
    if isinstance(value, Location) or (isinstance(value, str) and _URI_SCHEME.match(value.strip())):
        loc = Location.parse(value)
        return loc.path if loc.is_local else loc
    return repo_path(value)


_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # two letters at least: C:\ is a drive, not a scheme


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
    everything it produces under ``outputs_dir`` (data layers named by what they hold), the
    published tables in ``warehouse`` (``warehouse_dir``; default ``<outputs_dir>/warehouse``).

    ``input_dir`` and ``warehouse_dir`` may be object storage: they are then ``puffy.storage.Location``
    objects (a local one stays a ``Path``, so local runs are unchanged). ``outputs_dir`` is always
    local: staging, intermediate, runs and logs are the run's scratch and its record."""

    outputs_dir: Path
    input_dir: Path | Location
    params_dir: Path
    warehouse_dir: Path | Location | None = None

    def __post_init__(self):
        self.input_dir = _path_or_location(self.input_dir)
        if self.warehouse_dir is not None:
            self.warehouse_dir = _path_or_location(self.warehouse_dir)

    @classmethod
    def resolve(
        cls,
        params_dir: str | Path = DEFAULT_PARAMS_DIR,
        outputs_dir: str | Path | None = None,
        input_dir: str | Path | None = None,
        warehouse_dir: str | Path | None = None,
    ) -> Layout:
        """Relative paths from the project root; ``outputs_dir`` / ``input_dir`` / ``warehouse_dir``
        default to ``params/pipeline.yaml``'s; ``input_dir`` and ``warehouse_dir`` may be URIs."""
        params_dir = repo_path(params_dir)
        pipeline = (
            load_pipeline_params(params_dir)
            if outputs_dir is None or input_dir is None or warehouse_dir is None
            else None
        )
        return cls(
            repo_path(outputs_dir) if outputs_dir is not None else Path(pipeline.outputs_dir),
            repo_location(input_dir) if input_dir is not None else repo_location(pipeline.input_dir),
            params_dir,
            repo_location(warehouse_dir) if warehouse_dir is not None else repo_location(pipeline.warehouse_dir),
        )

    @property
    def pipeline(self) -> PipelineParams:
        return load_pipeline_params(self.params_dir)

    @property
    def intermediate(self) -> Path:
        """Staged, validated events (``stg_*`` partitions written by the gate)."""
        return self.outputs_dir / "intermediate"

    @property
    def warehouse(self) -> Path | Location:
        """The published tables: what dashboards and the executive summary read (``warehouse_dir``,
        default ``<outputs_dir>/warehouse``; a ``Location`` when in object storage)."""
        return self.warehouse_dir if self.warehouse_dir is not None else self.outputs_dir / "warehouse"

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


def _path_or_location(value) -> Path | Location:
    """A local place as a ``Path``, an object-store one as a ``Location``."""
    if isinstance(value, Path):
        return value
    loc = Location.parse(value)
    return loc.path if loc.is_local else loc


def write_status(output_dir: str | Path, status_file: str, status: str, message: str = "", **details) -> Path:
    """``<output_dir>/<status_file>``: ``{"status", "message", **details}``, what the runner reads."""
    path = Path(output_dir) / status_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"status": status, "message": message, **details}, indent=2, default=str) + "\n", encoding="utf-8"
    )
    return path
