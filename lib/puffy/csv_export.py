"""The seed-compatible CSV copies of warehouse tables, written by DuckDB in one ``COPY`` per table.

What a cell says is what the earlier pandas writer (``to_pandas().to_csv`` per partition) wrote,
so a reader of the CSV sees no change, except that string cells beginning with a formula trigger
are neutralised (``puffy.safe_output``: a leading ``'`` on ``=``, ``+``, ``-``, ``@``, tab or CR;
OWASP's CSV-injection advice). Matching pandas took three rules, all per partition file because
pandas formatted each partition on its own:

* booleans are ``True`` / ``False``; empty strings and NULLs are empty cells; NaN is empty;
* a timestamp column is printed at the finest resolution any of its values needs (``…:08``,
  ``…:08.438`` or ``…:08.438123``; a date alone when every value is midnight);
* an integer column with a NULL in the partition is printed as a float (``3.0``), as pandas did
  after turning it into float64.

A cell containing a carriage return or a line feed is quoted (pandas left a bare CR unquoted, which
no CSV reader takes back as one cell). Measured in ``docs/data_quality.md`` (CSV copies).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import duckdb
import ibis.expr.datatypes as dt

from puffy.safe_output import neutralise_sql


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_TS_FORMATS = {0: "%Y-%m-%d", 1: "%Y-%m-%d %H:%M:%S", 2: "%Y-%m-%d %H:%M:%S.%g", 3: "%Y-%m-%d %H:%M:%S.%f"}


def _ts_level_sql(col: str) -> str:
    """0 = midnight, 1 = whole seconds, 2 = milliseconds, 3 = microseconds (per value)."""
    us = f"epoch_us({col})"
    return (
        f"CASE WHEN {us} % 1000 <> 0 THEN 3 WHEN {us} % 1000000 <> 0 THEN 2 "
        f"WHEN {us} % 86400000000 <> 0 THEN 1 ELSE 0 END"
    )


def _cell_sql(name: str, dtype: dt.DataType, facts: dict) -> str:
    """The text of one column's cell (NULL = empty cell); ``facts`` are the partition's (``_file_facts``)."""
    col = _quote(name)
    if dtype.is_string():
        return f"nullif({neutralise_sql(col)}, '')"
    if dtype.is_boolean():
        return f"CASE WHEN {col} THEN 'True' WHEN NOT {col} THEN 'False' END"
    if dtype.is_floating():
        return f"CASE WHEN isnan({col}) THEN NULL ELSE {col}::VARCHAR END"
    if dtype.is_integer():
        return f"{col}::DOUBLE::VARCHAR" if facts.get(name) else f"{col}::VARCHAR"
    if dtype.is_timestamp():
        return f"strftime({col}, {_literal(_TS_FORMATS[facts.get(name, 1)])})"
    if dtype.is_date():
        return f"strftime({col}, '%Y-%m-%d')"
    return f"{col}::VARCHAR"


def _file_facts(con, source: str, schema) -> dict:
    """For integer columns whether one is NULL, for timestamp columns the finest resolution."""
    parts = []
    for name, dtype in schema.items():
        col = _quote(name)
        if dtype.is_integer():
            parts.append(f"coalesce(bool_or({col} IS NULL), false) AS {col}")
        elif dtype.is_timestamp():
            parts.append(f"coalesce(max({_ts_level_sql(col)}), 1) AS {col}")
    if not parts:
        return {}
    cur = con.execute(f"SELECT {', '.join(parts)} FROM {source}")
    return dict(zip([d[0] for d in cur.description], cur.fetchone()))


def write_table_csv(files: list[str], schema, path: Path, config: dict | None = None) -> Path:
    """``files`` (Parquet partitions of one table, in order) as one CSV at ``path``, written to a
    temporary name and renamed, so a reader never sees half a file. ``schema`` is the table's ibis
    schema (column order and types); ``config`` DuckDB settings (``puffy.engine.duckdb_config``).

    One ``COPY`` per partition, appended in order: a scan of several files on several threads does
    not keep the files' order, and sorting the whole table would hold it in memory; one partition's
    scan keeps its rows' order (``preserve_insertion_order``).
    """
    path = Path(path)
    tmp, part = path.with_name(path.name + ".tmp"), path.with_name(path.name + ".part.tmp")
    try:
        with duckdb.connect(config={**(config or {}), "preserve_insertion_order": True}) as con, open(tmp, "wb") as out:
            header = io.StringIO()
            csv.writer(header, lineterminator="\n").writerow(schema.names)  # quoted as pandas quoted it
            out.write(header.getvalue().encode())
            for f in files:
                source = f"read_parquet({_literal(str(f))})"
                facts = _file_facts(con, source, schema)
                select = ", ".join(f"{_cell_sql(n, dtype, facts)} AS {_quote(n)}" for n, dtype in schema.items())
                # COMMENT '': DuckDB otherwise quotes every cell holding its default comment character '#'
                con.execute(
                    f"COPY (SELECT {select} FROM {source}) TO {_literal(str(part))} "
                    "(FORMAT csv, HEADER false, COMMENT '')"
                )
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, part):
            leftover.unlink(missing_ok=True)
    return path
