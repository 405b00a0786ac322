"""Streamed partitions (``PartitionWriter``): bytes independent of chunking, atomic, empty days."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from puffy import warehouse
from puffy.warehouse import PartitionWriter, partition_dates, partition_dir, write_partition

DAY = date(2025, 3, 1)
SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])


def _rows(n: int) -> pa.Table:
    return pa.table({"id": list(range(n)), "name": [f"row-{i}" for i in range(n)]}, schema=SCHEMA)


def _write(root, chunks: list[pa.Table]) -> bytes:
    with PartitionWriter(root, "t", DAY, SCHEMA) as writer:
        for chunk in chunks:
            writer.write(chunk)
        path = writer.commit()
    return (path / "part-0.parquet").read_bytes()


def test_bytes_do_not_depend_on_how_the_rows_arrive(tmp_path, monkeypatch):
    monkeypatch.setattr(warehouse, "ROW_GROUP_ROWS", 4)
    rows = _rows(10)
    whole = _write(tmp_path / "a", [rows])
    pieces = _write(tmp_path / "b", [rows.slice(0, 3), rows.slice(3, 1), rows.slice(4, 6)])
    assert whole == pieces
    meta = pq.ParquetFile(partition_dir(tmp_path / "a", "t", DAY) / "part-0.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [4, 4, 2]
    assert pq.read_table(partition_dir(tmp_path / "b", "t", DAY)).equals(rows)


def test_a_failure_leaves_the_previous_partition(tmp_path):
    write_partition(tmp_path, "t", DAY, _rows(2))
    with pytest.raises(RuntimeError):
        with PartitionWriter(tmp_path, "t", DAY, SCHEMA) as writer:
            writer.write(_rows(5))
            raise RuntimeError("query failed half way")
    assert pq.read_table(partition_dir(tmp_path, "t", DAY)).num_rows == 2
    assert [p.name for p in (tmp_path / "t").iterdir()] == [f"date={DAY}"]  # no temporary left behind


def test_a_day_without_rows_gets_an_empty_partition(tmp_path):
    _write(tmp_path, [])
    assert partition_dates(tmp_path, "t") == [DAY]
    empty = pq.read_table(partition_dir(tmp_path, "t", DAY) / "part-0.parquet")
    assert empty.num_rows == 0 and empty.schema.equals(SCHEMA)


def _ended_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_swap_replaces_a_partition_and_leaves_nothing_beside_it(tmp_path):
    write_partition(tmp_path, "t", DAY, _rows(2))
    write_partition(tmp_path, "t", DAY, _rows(3))
    assert pq.read_table(partition_dir(tmp_path, "t", DAY)).num_rows == 3
    assert [p.name for p in (tmp_path / "t").iterdir()] == [f"date={DAY}"]


def test_leftovers_of_killed_writers_are_swept_and_a_half_swapped_partition_put_back(tmp_path):
    import os
    import shutil

    write_partition(tmp_path, "t", DAY, _rows(2))
    other = date(2025, 3, 2)
    write_partition(tmp_path, "t", other, _rows(4))
    table = tmp_path / "t"
    dead, alive = _ended_pid(), os.getpid()
    # A writer killed between the two renames of the fallback swap: date=DAY moved aside, not back.
    os.rename(table / f"date={DAY}", table / f".date={DAY}.old-{dead}-aaaaaaaa")
    # A killed writer's half-written partition, a running writer's, and one from before pids.
    for name in (
        f".date={other}.tmp-{dead}-bbbbbbbb",
        f".date={other}.tmp-{alive}-cccccccc",
        f".date={other}.tmp-dddddddd",
        f".date={other}.old-{dead}-eeeeeeee",
    ):
        shutil.copytree(table / f"date={other}", table / name)
    assert partition_dates(tmp_path, "t") == [other]

    write_partition(tmp_path, "t", date(2025, 3, 3), _rows(1))  # any write to the table sweeps it

    assert partition_dates(tmp_path, "t") == [DAY, other, date(2025, 3, 3)]
    assert pq.read_table(partition_dir(tmp_path, "t", DAY)).num_rows == 2  # the old partition is back
    assert pq.read_table(partition_dir(tmp_path, "t", other)).num_rows == 4
    assert sorted(p.name for p in table.iterdir() if p.name.startswith(".")) == [f".date={other}.tmp-{alive}-cccccccc"]


def test_the_fallback_swap_is_two_renames(tmp_path, monkeypatch):
    monkeypatch.setattr(warehouse, "_renameat2", None)
    write_partition(tmp_path, "t", DAY, _rows(2))
    write_partition(tmp_path, "t", DAY, _rows(5))
    assert pq.read_table(partition_dir(tmp_path, "t", DAY)).num_rows == 5
    assert [p.name for p in (tmp_path / "t").iterdir()] == [f"date={DAY}"]


def test_last_written_is_the_newest_partition_file(tmp_path):
    import os

    assert warehouse.last_written(tmp_path, "t") is None  # no table at all
    old = write_partition(tmp_path, "t", DAY, _rows(1)) / "part-0.parquet"
    new = write_partition(tmp_path, "t", date(2025, 3, 2), _rows(1)) / "part-0.parquet"
    os.utime(old, (1_000, 1_000))
    os.utime(new, (2_000, 2_000))
    assert warehouse.last_written(tmp_path, "t") == 2_000
    assert warehouse.last_written(tmp_path, "other") is None


def test_newest_warehouse_is_the_one_written_last(tmp_path):
    import os

    a, b = tmp_path / "published", tmp_path / "built"
    assert warehouse.newest_warehouse([a, b]) == a  # neither has the table: the first
    for root, mtime in ((a, 2_000), (b, 1_000)):
        part = root / "fct_sessions" / "date=2025-03-01"
        part.mkdir(parents=True)
        (part / "part-0.parquet").write_bytes(b"x")
        os.utime(part / "part-0.parquet", (mtime, mtime))
    assert warehouse.newest_warehouse([a, b]) == a
    os.utime(b / "fct_sessions" / "date=2025-03-01" / "part-0.parquet", (3_000, 3_000))
    assert warehouse.newest_warehouse([a, b]) == b
