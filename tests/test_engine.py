"""Scratch DuckDB databases (``puffy.engine.scratch_duckdb``): gone with their connection or process."""

from __future__ import annotations

import gc
import subprocess
import sys

from puffy.engine import SCRATCH_PREFIX, scratch_duckdb
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
