"""Scratch DuckDB databases (``puffy.engine.scratch_duckdb``): gone with their connection or process."""

from __future__ import annotations

import gc
import subprocess
import sys

from puffy.engine import SCRATCH_PREFIX, memory_limit_bytes, scratch_duckdb
from puffy.params import PipelineParams


def _scratch_dirs(base):
    return sorted(p.name for p in base.glob(f"{SCRATCH_PREFIX}*"))


def test_the_scratch_database_is_a_file_removed_with_its_connection(tmp_path):
    con = scratch_duckdb(PipelineParams(duckdb_temp_directory=tmp_path))
    con.execute("CREATE TABLE t AS SELECT range AS x FROM range(1000)")
    (directory,) = tmp_path.glob(f"{SCRATCH_PREFIX}*")
    assert (directory / "scratch.duckdb").stat().st_size > 0
    assert con.execute("SELECT sum(x) FROM t").fetchone()[0] == 499500
    con.close()
    del con
    gc.collect()
    assert _scratch_dirs(tmp_path) == []


def test_a_killed_run_s_scratch_database_is_removed_by_the_next_one(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = tmp_path / f"{SCRATCH_PREFIX}{proc.pid}-aaaaaaaa"
    dead.mkdir()
    (dead / "scratch.duckdb").write_bytes(b"left by a killed run")
    con = scratch_duckdb(PipelineParams(duckdb_temp_directory=tmp_path))
    assert not dead.exists()
    assert len(_scratch_dirs(tmp_path)) == 1  # this process's own
    con.close()


def test_memory_limits_are_read_in_bytes_and_a_share_is_not():
    assert memory_limit_bytes("1GB") == 1_000_000_000
    assert memory_limit_bytes("512MiB") == 512 * 1024**2
    assert memory_limit_bytes(" 1.5 gb ") == 1_500_000_000
    assert memory_limit_bytes("80%") is None


def test_small_inputs_stay_in_memory_and_large_ones_go_to_a_file(tmp_path):
    params = PipelineParams(duckdb_temp_directory=tmp_path, duckdb_memory_limit="1GB")
    small = scratch_duckdb(params, data_bytes=250_000_000)  # a quarter of the limit: in memory
    large = scratch_duckdb(params, data_bytes=250_000_001)
    unknown = scratch_duckdb(params)  # size not given: the file, which cannot run out of memory
    assert small.execute("SELECT current_database()").fetchall() == [("scratch",)]
    files = sorted(p.parent.name for p in tmp_path.glob(f"{SCRATCH_PREFIX}*/scratch.duckdb"))
    assert len(files) == 2 and len(_scratch_dirs(tmp_path)) == 3
    for con in (small, large, unknown):
        con.execute("CREATE TABLE t AS SELECT range AS x FROM range(1000)")
        assert con.execute("SELECT sum(x) FROM t").fetchall() == [(499500,)]
