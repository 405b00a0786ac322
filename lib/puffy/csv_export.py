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
from concurrent.futures import ThreadPoolExecutor
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


def _file_facts(con, files: list[str], schema) -> dict[str, dict]:
    """Per file: for integer columns whether one is NULL, for timestamp columns the finest
    resolution (one scan of all the files, on every thread)."""
    parts = []
    for name, dtype in schema.items():
        col = _quote(name)
        if dtype.is_integer():
            parts.append(f"coalesce(bool_or({col} IS NULL), false) AS {col}")
        elif dtype.is_timestamp():
            parts.append(f"coalesce(max({_ts_level_sql(col)}), 1) AS {col}")
    if not parts:
        return {f: {} for f in files}
    source = f"read_parquet([{', '.join(_literal(f) for f in files)}], filename = '_puffy_file')"
    cur = con.execute(f"SELECT _puffy_file, {', '.join(parts)} FROM {source} GROUP BY _puffy_file")
    names = [d[0] for d in cur.description][1:]
    found = {row[0]: dict(zip(names, row[1:])) for row in cur.fetchall()}
    return {f: found.get(f, {}) for f in files}  # a file without rows: any format prints nothing


def _append(part: Path, out) -> None:
    """Append the file ``part`` to the open file ``out``: in the kernel where it can (Linux)."""
    out.flush()
    with open(part, "rb") as src:
        try:
            left = os.fstat(src.fileno()).st_size
            while left > 0:
                copied = os.copy_file_range(src.fileno(), out.fileno(), left)
                if copied == 0:
                    break
                left -= copied
            else:
                return
        except (AttributeError, OSError):  # no copy_file_range here, or not between these files
            pass
        shutil.copyfileobj(src, out, 1 << 20)  # the rest, from where the kernel stopped


def write_table_csv(files: list[str], schema, path: Path, config: dict | None = None) -> Path:
    """``files`` (Parquet partitions of one table, in order) as one CSV at ``path``, written to a
    temporary name and renamed, so a reader never sees half a file. ``schema`` is the table's ibis
    schema (column order and types); ``config`` DuckDB settings (``puffy.engine.duckdb_config``).

    One ``COPY`` per partition, as many at once as DuckDB has threads, each to a part file; the
    parts are then appended in partition order. A partition is one row group, which DuckDB scans on
    one thread, and a scan of several files on several threads does not keep the files' order
    (sorting the whole table back would cost more than the parallel copies save).
    """
    path = Path(path)
    files = [str(f) for f in files]
    tmp = path.with_name(path.name + ".tmp")
    parts = [path.with_name(f"{path.name}.{i}.tmp") for i in range(len(files))]
    try:
        with (
            duckdb.connect(config={**(config or {}), "preserve_insertion_order": True}) as con,
            open(tmp, "wb") as out,
        ):
            header = io.StringIO()
            csv.writer(header, lineterminator="\n").writerow(schema.names)  # quoted as pandas quoted it
            out.write(header.getvalue().encode())
            facts = _file_facts(con, files, schema) if files else {}
            threads = con.execute("SELECT current_setting('threads')").fetchone()[0]

            def copy(i: int) -> Path:
                select = ", ".join(f"{_cell_sql(n, t, facts[files[i]])} AS {_quote(n)}" for n, t in schema.items())
                with con.cursor() as cur:  # a cursor per thread
                    # COMMENT '': DuckDB otherwise quotes every cell holding its default comment character '#'
                    cur.execute(
                        f"COPY (SELECT {select} FROM read_parquet({_literal(files[i])})) "
                        f"TO {_literal(str(parts[i]))} (FORMAT csv, HEADER false, COMMENT '')"
                    )
                return parts[i]

            with ThreadPoolExecutor(max_workers=max(1, min(threads, len(files)))) as pool:
                for part in pool.map(copy, range(len(files))):  # in partition order, as each is done
                    _append(part, out)
                    part.unlink()
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, *parts):
            leftover.unlink(missing_ok=True)
    return path
