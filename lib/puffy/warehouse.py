"""Partitioned Parquet storage with atomic per-date replacement.

Layout: ``<root>/<table>/date=YYYY-MM-DD/part-0.parquet``. A date's partition is written into a
temporary sibling directory and swapped in with ``os.replace``-style renames, so readers see
either the old partition or the new one, never half of one, and re-running a date replaces it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def partition_dir(root: Path, table: str, day: date) -> Path:
    return Path(root) / table / f"date={day.isoformat()}"


def swap_in(tmp_dir: Path, final_dir: Path) -> None:
    """Atomically make ``tmp_dir`` the content of ``final_dir`` (replacing any previous one)."""
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    old = final_dir.with_name(f".{final_dir.name}.old-{uuid.uuid4().hex[:8]}")
    if final_dir.exists():
        os.rename(final_dir, old)
    os.rename(tmp_dir, final_dir)
    shutil.rmtree(old, ignore_errors=True)


def staging_dir_for(final_dir: Path) -> Path:
    tmp = final_dir.with_name(f".{final_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    return tmp


#: Rows per Parquet row group of a streamed partition: fixed, so a partition's bytes depend on
#: its rows only, not on how they arrived (a day-by-day run and a rebuild write the same file).
ROW_GROUP_ROWS = 122_880  # DuckDB's own row-group size


class PartitionWriter:
    """Stream one date partition to Parquet in fixed-size row groups; swap it in on ``commit``.

    Holds at most one row group of rows in memory, however large the partition; ``finish``
    writes the last row group and closes the file (so a long rebuild keeps one file open at a
    time). Use as a context manager: leaving the block without ``commit`` (an exception)
    discards the temporary directory and leaves the previous partition in place.
    """

    def __init__(self, root: Path, table: str, day: date, schema: pa.Schema) -> None:
        self.final = partition_dir(root, table, day)
        self.schema = schema
        self.rows = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self.tmp = staging_dir_for(self.final)
        try:
            self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self.tmp / "part-0.parquet", schema)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self._committed = False

    def __enter__(self) -> "PartitionWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._committed:  # discard
            try:
                if self._writer is not None:
                    self._writer.close()
            finally:
                shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, data: pa.Table) -> None:
        self._buffer.append(data)
        self._buffered += data.num_rows
        while self._buffered >= ROW_GROUP_ROWS:
            self._flush(ROW_GROUP_ROWS)

    def _flush(self, n: int) -> None:
        data = pa.concat_tables(self._buffer)
        self._writer.write_table(data.slice(0, n).combine_chunks(), row_group_size=n)
        rest = data.slice(n)
        self._buffer, self._buffered = ([rest] if rest.num_rows else []), rest.num_rows
        self.rows += n

    def finish(self) -> None:
        """Write the buffered rows (the last, shorter row group) and close the file: no more rows."""
        if self._writer is None:
            return
        if self._buffered:
            self._flush(self._buffered)
        self._writer.close()  # with no rows: a valid file with the schema and no row group
        self._writer = None

    def commit(self) -> Path:
        self.finish()
        swap_in(self.tmp, self.final)
        self._committed = True
        return self.final


def write_partition(root: Path, table: str, day: date, data: pa.Table) -> Path:
    """Replace one date partition of ``table`` with ``data`` atomically; return its directory."""
    with PartitionWriter(root, table, day, data.schema) as writer:
        writer.write(data)
        return writer.commit()


def partition_dates(root: Path, table: str) -> list[date]:
    """Dates that have a complete partition of ``table`` (temporary directories are ignored)."""
    base = Path(root) / table
    if not base.is_dir():
        return []
    out = []
    for child in base.iterdir():
        if child.is_dir() and child.name.startswith("date=") and (child / "part-0.parquet").exists():
            out.append(date.fromisoformat(child.name[5:]))
    return sorted(out)


def partition_files(root: Path, table: str, days: list[date] | None = None) -> list[str]:
    """Parquet files of ``table`` for ``days`` (all days when None), in date order."""
    wanted = partition_dates(root, table) if days is None else days
    files = [partition_dir(root, table, d) / "part-0.parquet" for d in wanted]
    return [str(f) for f in files if f.exists()]
