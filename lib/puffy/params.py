"""Loading and validating ``params/*.yaml``.

Every params file maps onto a pydantic model with ``extra="forbid"``, so an unknown key, a wrong
type or an impossible value stops the run with one line naming the file, the key and what is
allowed (``ParamsError``), before any data is touched.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from puffy.errors import ParamsError

# libyaml's parser when PyYAML was built with it (the wheels are): the same documents as SafeLoader,
# ~10x faster; every run validates every params file, and the kernel reads them again.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load_yaml(text: str):
    """``yaml.safe_load`` (plain values only, no tags that construct objects), on libyaml when present."""
    return yaml.load(text, Loader=_YAML_LOADER)


@dataclass(frozen=True)
class ProjectRoot:
    """The project checkout the pipeline reads ``params/``, ``notebooks/`` from and writes ``outputs/`` into.

    ``source`` says how it was found, for the line every run starts with; ``problem`` is set when
    ``PUFFY_HOME`` is set but unusable (the CLI then stops with it, exit 2).
    """

    path: Path
    source: str
    problem: str | None = None

    def describe(self) -> str:
        return f"project root {self.path} ({self.source})"


def _is_project(path: Path) -> bool:
    return (path / "params").is_dir() and (path / "notebooks").is_dir()


def find_project_root(cwd: Path | None = None, environ: dict | None = None) -> ProjectRoot:
    """``$PUFFY_HOME`` when set; else the working directory or the nearest parent of it that holds
    ``params/`` and ``notebooks/`` (a checkout, or a notebook's folder inside one); else the checkout
    the package was installed from.

    Not simply the package's location: with a shared or editable install, a second checkout would
    read and write the first one's ``params/`` and ``outputs/``.
    """
    environ = os.environ if environ is None else environ
    installed = Path(__file__).resolve().parents[2]
    home = environ.get("PUFFY_HOME")
    if home:
        path = Path(home).expanduser().resolve()
        if not _is_project(path):
            return ProjectRoot(
                installed,
                "the package's checkout",
                f"PUFFY_HOME={home}: not a puffy project (no params/ and notebooks/ in {path}); "
                "point it at a checkout of the repository or unset it",
            )
        return ProjectRoot(path, "from PUFFY_HOME")
    try:
        here = Path(cwd or Path.cwd()).resolve()
    except OSError:  # the working directory was deleted
        here = None
    for candidate in [] if here is None else [here, *here.parents]:
        if _is_project(candidate):
            return ProjectRoot(candidate, "from the working directory")
    return ProjectRoot(installed, "the package's checkout: neither PUFFY_HOME nor the working directory names one")


PROJECT = find_project_root()
REPO_ROOT = PROJECT.path
DEFAULT_PARAMS_DIR = REPO_ROOT / "params"

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every params model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def require_within(model: BaseModel, least: str, window: str, consequence: str) -> None:
    """Raise (in a validator) when the minimum ``model.<least>`` exceeds the window ``model.<window>``
    it must be found in: a check that could never have enough days would be silently off."""
    need, have = getattr(model, least), getattr(model, window)
    if need > have:
        raise ValueError(f"{least} ({need}) is more than {window} ({have}): {consequence}")


def _describe(error: dict) -> str:
    key = ".".join(str(p) for p in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"unknown key '{key}'"
    got = error.get("input")
    got_txt = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
    return f"key '{key}': {error['msg']}{got_txt}"


def validate_params(data: object, model: type[M], source: str) -> M:
    """Validate already-parsed data; raise ``ParamsError`` naming ``source`` and the first bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: expected a mapping of keys to values at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ParamsError(f"{source}: {_describe(errors[0])}{more}") from None


def load_params(path: str | Path, model: type[M]) -> M:
    """Read a YAML file and validate it against ``model``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read params file ({exc.strerror})") from None
    try:
        data = safe_load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in str(exc.problem or ""):
            # Valid YAML that safe_load refuses on purpose: a tag could construct arbitrary objects.
            tag = str(exc.problem).split("tag", 1)[1].strip().strip("'\"")
            raise ParamsError(f"{path}: YAML tags are not allowed ({tag}){where}; write plain values") from None
        raise ParamsError(f"{path}: not valid YAML{where}") from None
    return validate_params(data, model, str(path))


#: Personal values found in free text (raw lines, payload excerpts, URLs), whatever their key.
DEFAULT_PERSONAL_VALUE_PATTERNS = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "sha256": r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{64}(?![0-9A-Fa-f])",
    "client_id": (
        r"(?<![\w-])(?:\d{9,11}-[A-Za-z0-9_-]{12}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}"
        r"-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})(?![\w-])"
    ),
}


class PrivacyParams(StrictModel):
    """``privacy:`` in ``params/pipeline.yaml``: what reports must not carry (see ``puffy.safe_output``)."""

    personal_fields: list[str] = Field(
        ["user_email", "email", "client_id", "person_id"],
        min_length=1,
        description="Sample columns, JSON payload keys and URL query parameters whose values are redacted "
        "(matched ignoring case and punctuation: clientId = client_id).",
    )
    personal_value_patterns: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_PERSONAL_VALUE_PATTERNS),
        description="name -> regular expression: text matching it is redacted wherever it appears.",
    )

    @field_validator("personal_fields")
    @classmethod
    def _fields_named(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", f)]
        if bad:
            raise ValueError(f"field names are identifiers (letters, digits, _ or -), not {bad[0]!r}")
        return v

    @field_validator("personal_value_patterns")
    @classmethod
    def _patterns_compile(cls, v: dict[str, str]) -> dict[str, str]:
        for name, pattern in v.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
                raise ValueError(f"pattern names are identifiers, not {name!r}")
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {name!r} is not a valid regular expression ({exc})") from None
            if compiled.search(""):
                raise ValueError(f"pattern {name!r} matches the empty string, which would redact nothing useful")
        return v


class PipelineParams(StrictModel):
    """``params/pipeline.yaml``: where the data lives and which engine runs the heavy work."""

    input_dir: Path | str = Field(
        Path("outputs/sample/raw_events"),
        description="Directory of raw daily exports events_YYYYMMDD.csv[.gz]; relative to the repo root, or an "
        "object-store URI (s3://bucket/raw_events; kept as a str).",
    )
    outputs_dir: Path = Field(Path("outputs"), description="Root of everything the pipeline writes.")
    warehouse_dir: Path | str | None = Field(
        None,
        description="The published warehouse: a local directory or an object-store URI (kept as a str); "
        "null = <outputs_dir>/warehouse.",
    )
    engine: Literal["duckdb", "pyspark"] = Field("duckdb", description="Ibis backend for metrics and transform.")
    duckdb_memory_limit: str = Field(
        "1GB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB memory_limit; above it DuckDB spills to disk instead of failing.",
    )
    duckdb_threads: int | None = Field(None, ge=1, description="DuckDB threads; null = all cores.")
    duckdb_temp_directory: Path | None = Field(
        None,
        description="Where DuckDB spills above its memory limit, and where the gate keeps its scratch "
        "database; null = .tmp/ in the working directory (DuckDB's default). Relative to the "
        "repo root.",
    )
    spark_master: str = Field("local[2]", description="spark.master when engine is pyspark.")
    privacy: PrivacyParams = Field(
        default_factory=PrivacyParams, description="Personal data that reports redact (see PrivacyParams)."
    )

    @field_validator("input_dir", "warehouse_dir", mode="before")
    @classmethod
    def _path_or_uri(cls, v):
        """A local path becomes a ``Path``; an object-store URI stays a str, unmangled (``puffy.storage``)."""
        if v is None or isinstance(v, Path):
            return v
        if not isinstance(v, str):
            raise ValueError("expected a path or a URI")
        from puffy.errors import UserError
        from puffy.storage import Location

        try:
            loc = Location.parse(v)
        except UserError as exc:
            raise ValueError(str(exc)) from None
        if not loc.is_local:
            return loc.uri
        return loc.path if v.strip().lower().startswith("file:") else Path(v)  # a relative path stays relative

    def resolve(self, root: Path = REPO_ROOT) -> PipelineParams:
        """Return a copy with relative paths anchored at ``root`` (URIs as they are)."""
        return self.model_copy(
            update={
                "input_dir": _anchor(self.input_dir, root),
                "warehouse_dir": None if self.warehouse_dir is None else _anchor(self.warehouse_dir, root),
                "outputs_dir": self.outputs_dir if self.outputs_dir.is_absolute() else root / self.outputs_dir,
                "duckdb_temp_directory": (
                    None
                    if self.duckdb_temp_directory is None
                    else self.duckdb_temp_directory
                    if self.duckdb_temp_directory.is_absolute()
                    else root / self.duckdb_temp_directory
                ),
            }
        )


def _anchor(value: Path | str, root: Path) -> Path | str:
    """A relative local path taken from ``root``; an absolute one or a URI as it is."""
    if isinstance(value, str):
        return value
    return value if value.is_absolute() else root / value


def load_pipeline_params(params_dir: Path = DEFAULT_PARAMS_DIR) -> PipelineParams:
    """``<params_dir>/pipeline.yaml`` validated and resolved (defaults when the file is absent; a
    missing directory is a ``ParamsError``, as it is more likely a typo than a wish for defaults)."""
    if not Path(params_dir).is_dir():
        raise ParamsError(f"{params_dir}: params directory not found")
    path = Path(params_dir) / "pipeline.yaml"
    return (load_params(path, PipelineParams) if path.exists() else PipelineParams()).resolve()
