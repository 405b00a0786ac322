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


def write_partition(root: Path, table: str, day: date, data: pa.Table) -> Path:
    """Replace one date partition of ``table`` with ``data`` atomically; return its directory."""
    final = partition_dir(root, table, day)
    tmp = staging_dir_for(final)
    try:
        pq.write_table(data, tmp / "part-0.parquet")
        swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


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
