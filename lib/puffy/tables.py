"""The table registry (``tables.yaml``): every table the pipeline writes, declared once.

Each table has a layer, a grain, a partition column, sort keys, columns (Ibis dtype and
description, in file order) and tests (a unique key, not_null and accepted_values per column),
like dbt's ``schema.yml``. The code's schemas derive from it (``ibis_schema``, ``arrow_schema``,
``duckdb_columns``), the column tables of the docs are generated from it (``markdown_columns``,
``python -m puffy.tables --write-docs``) and ``check`` runs its tests on a table's rows, so a
column cannot drift between the code, the docs and the files.
"""

from __future__ import annotations

import argparse
import re
import sys
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import ibis
import ibis.expr.datatypes as dt
import pandas as pd
import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from puffy.params import StrictModel, safe_load_yaml

REGISTRY_FILE = "tables.yaml"
Layer = Literal["staging", "fact", "report"]


class AcceptedValues(StrictModel):
    accepted_values: list[str] = Field(min_length=1, description="Every non-NULL value is one of these.")


ColumnTest = Literal["not_null", "unique"] | AcceptedValues


class Column(StrictModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    type: str = Field(description="An Ibis dtype string, e.g. 'string', 'timestamp(6)', '!int64' (NOT NULL).")
    description: str = Field(min_length=1)
    tests: list[ColumnTest] = Field(default_factory=list)

    @field_validator("type")
    @classmethod
    def _ibis_dtype(cls, value: str) -> str:
        try:
            ibis.dtype(value)
        except Exception as exc:  # ibis raises several kinds for a bad spelling
            raise ValueError(f"not an Ibis dtype: {value!r} ({exc})") from None
        return value

    @property
    def dtype(self) -> dt.DataType:
        return ibis.dtype(self.type)

    @property
    def not_null(self) -> bool:
        return "not_null" in self.tests

    @property
    def unique(self) -> bool:
        return "unique" in self.tests

    @property
    def accepted_values(self) -> tuple[str, ...] | None:
        for test in self.tests:
            if isinstance(test, AcceptedValues):
                return tuple(test.accepted_values)
        return None


class TableTests(StrictModel):
    unique: list[str] = Field(default_factory=list, description="Columns whose combination identifies a row.")


class Table(StrictModel):
    layer: Layer
    grain: str = Field(min_length=1)
    partition_column: str
    sort_keys: list[str] = Field(default_factory=list)
    tests: TableTests = Field(default_factory=TableTests)
    columns: list[Column] = Field(min_length=1)

    @model_validator(mode="after")
    def _columns_known(self) -> Table:
        names = [c.name for c in self.columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"columns declared twice: {duplicates}")
        for what, cols in (
            ("partition_column", [self.partition_column]),
            ("sort_keys", self.sort_keys),
            ("tests.unique", self.tests.unique),
        ):
            unknown = [c for c in cols if c not in names]
            if unknown:
                raise ValueError(f"{what} names columns the table does not have: {unknown}")
        return self


class Registry(StrictModel):
    tables: dict[str, Table]

    @field_validator("tables")
    @classmethod
    def _table_names(cls, tables: dict[str, Table]) -> dict[str, Table]:
        bad = [t for t in tables if not re.fullmatch(r"(stg|fct|rpt)_[a-z0-9_]+", t)]
        if bad:
            raise ValueError(f"table names must start with stg_, fct_ or rpt_: {bad}")
        return tables


def load_registry(path: Path | None = None) -> Registry:
    """``tables.yaml`` validated (``path``: another file, for tests)."""
    text = Path(path).read_text() if path else resources.files("puffy").joinpath(REGISTRY_FILE).read_text()
    return Registry.model_validate(safe_load_yaml(text))


@cache
def registry() -> Registry:
    """The package's registry, loaded and validated once."""
    return load_registry()


def table(name: str) -> Table:
    try:
        return registry().tables[name]
    except KeyError:
        raise KeyError(f"{name}: not in {REGISTRY_FILE} (tables: {', '.join(registry().tables)})") from None


def names(layer: Layer | None = None) -> tuple[str, ...]:
    """Tables of the registry (of one layer), in its order."""
    return tuple(t for t, spec in registry().tables.items() if layer is None or spec.layer == layer)


def columns(name: str) -> tuple[str, ...]:
    return tuple(c.name for c in table(name).columns)


def partition_column(name: str) -> str:
    return table(name).partition_column


def sort_keys(name: str) -> tuple[str, ...]:
    return tuple(table(name).sort_keys)


def ibis_schema(name: str) -> ibis.Schema:
    return ibis.schema({c.name: c.dtype for c in table(name).columns})


def arrow_schema(name: str) -> pa.Schema:
    return ibis_schema(name).to_pyarrow()


def spec(name: str) -> tuple[ibis.Schema, str, tuple[str, ...]]:
    """(schema, partition column, sort keys): the shape of ``puffy.transform.pipeline.TABLES``."""
    return ibis_schema(name), partition_column(name), sort_keys(name)


# DuckDB's names of the types the staging tables use (as ingest's CREATE TABLE spells them).
_DUCKDB_TYPES = {
    dt.String(): "VARCHAR",
    dt.Date(): "DATE",
    dt.Int64(): "BIGINT",
    dt.UInt64(): "UBIGINT",
    dt.Float64(): "DOUBLE",
    dt.Boolean(): "BOOLEAN",
    dt.Timestamp(scale=6): "TIMESTAMP",
}


def duckdb_columns(name: str) -> tuple[tuple[str, str], ...]:
    """(column, DuckDB type) in order, for a ``CREATE TABLE``."""
    out = []
    for c in table(name).columns:
        sql = _DUCKDB_TYPES.get(c.dtype.copy(nullable=True))
        if sql is None:
            raise ValueError(f"{name}.{c.name}: no DuckDB type for {c.type!r} (add it to tables._DUCKDB_TYPES)")
        out.append((c.name, sql + ("" if c.dtype.nullable else " NOT NULL")))
    return tuple(out)


# --------------------------------------------------------------------------------- tests


def check(name: str, frame: pd.DataFrame, spec: Table | None = None) -> list[str]:
    """The registry's tests of ``name`` on ``frame`` (a table's rows): one message per failure.

    Columns: exactly the registry's, in order. ``tests.unique``: no two rows share the key.
    ``not_null``: no NULL. ``unique``: no value twice. ``accepted_values``: every non-NULL value
    is listed. Types are not checked here (a pandas frame does not carry them; compare
    ``arrow_schema`` with the file's schema for that). ``spec``: another declaration, for tests.
    """
    spec_ = spec or table(name)
    failures = []
    expected = [c.name for c in spec_.columns]
    if list(frame.columns) != expected:
        missing = [c for c in expected if c not in frame.columns]
        extra = [c for c in frame.columns if c not in expected]
        failures.append(
            f"{name}: columns differ from {REGISTRY_FILE}: missing {missing}, extra {extra}"
            + ("" if missing or extra else ", order differs")
        )
    key = spec_.tests.unique
    if key and all(k in frame.columns for k in key):
        dup = frame.duplicated(subset=key, keep=False)
        if dup.any():
            example = frame.loc[dup, key].iloc[0].tolist()
            failures.append(f"{name}: {int(dup.sum())} rows share a key ({', '.join(key)}), e.g. {example}")
    for c in spec_.columns:
        if c.name not in frame.columns:
            continue
        values = frame[c.name]
        if c.not_null and values.isna().any():
            failures.append(f"{name}.{c.name}: {int(values.isna().sum())} NULL values (not_null)")
        if c.unique:
            dup = values.dropna().duplicated(keep=False)
            if dup.any():
                failures.append(
                    f"{name}.{c.name}: {int(dup.sum())} rows share a value (unique), "
                    f"e.g. {values.dropna()[dup].iloc[0]!r}"
                )
        if c.accepted_values is not None:
            bad = sorted({str(v) for v in values.dropna().unique()} - set(c.accepted_values))
            if bad:
                failures.append(f"{name}.{c.name}: values not accepted: {bad} (accepted: {list(c.accepted_values)})")
    return failures


# ---------------------------------------------------------------------------------- docs


def markdown_columns(name: str) -> str:
    """The column table of ``name`` for the docs (what ``--write-docs`` puts between the markers)."""
    spec_ = table(name)
    lines = [
        f"Grain: {spec_.grain} Partition `{spec_.partition_column}`"
        + (f"; sorted by {', '.join(f'`{k}`' for k in spec_.sort_keys)}" if spec_.sort_keys else "")
        + (f"; unique key ({', '.join(f'`{k}`' for k in spec_.tests.unique)})" if spec_.tests.unique else "")
        + ".",
        "",
        "| column | type | tests | meaning |",
        "|---|---|---|---|",
    ]
    for c in spec_.columns:
        tests = [t for t in ("not_null", "unique") if t in c.tests]
        if c.accepted_values is not None:
            tests.append("one of " + ", ".join(f"`{v}`" for v in c.accepted_values))
        lines.append(f"| `{c.name}` | {c.type} | {'; '.join(tests)} | {c.description.replace('|', '&#124;')} |")
    return "\n".join(lines)


_BLOCK_RE = re.compile(r"(<!-- tables:begin (?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- tables:end -->)", re.S)
#: Docs holding generated column tables (relative to the repository root).
DOCS = ("docs/methodology.md",)
WRITE_DOCS_COMMAND = "python -m puffy.tables --write-docs"


def render_docs(text: str) -> str:
    """``text`` with every ``<!-- tables:begin T -->`` … ``<!-- tables:end -->`` block regenerated."""
    return _BLOCK_RE.sub(lambda m: f"{m.group(1)}{markdown_columns(m.group('name'))}\n{m.group(4)}", text)


def stale_docs(root: Path) -> list[str]:
    """Docs under ``root`` whose generated blocks differ from the registry."""
    return [doc for doc in DOCS if render_docs((root / doc).read_text()) != (root / doc).read_text()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m puffy.tables", description=__doc__.splitlines()[0])
    parser.add_argument("--write-docs", action="store_true", help=f"regenerate the column tables of {', '.join(DOCS)}")
    parser.add_argument("--check-docs", action="store_true", help="exit 1 when a doc differs from the registry")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: .)")
    args = parser.parse_args(argv)
    registry()  # validates
    if args.write_docs:
        for doc in DOCS:
            path = args.root / doc
            text = path.read_text()
            if render_docs(text) != text:
                path.write_text(render_docs(text))
                print(f"{doc}: column tables regenerated")
    if args.check_docs:
        stale = stale_docs(args.root)
        if stale:
            print(f"column tables out of date in {', '.join(stale)}: run {WRITE_DOCS_COMMAND}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
