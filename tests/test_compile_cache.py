"""The compile cache (``puffy.compile_cache``): a query of another day reuses its shape's compiled
SQL, and the SQL is the one Ibis compiles for the query itself."""

from __future__ import annotations

import os
import re
from datetime import date, datetime

import ibis
import pytest
from ibis.backends.sql.compilers.duckdb import DuckDBCompiler

from puffy import compile_cache
from puffy.compile_cache import CachingDuckDBBackend, CachingDuckDBCompiler
from puffy.params import DEFAULT_PARAMS_DIR
from puffy.transform import run_transform
from support.raw_events import stage

_PLAIN = DuckDBCompiler()


def normal(sql: str) -> str:
    """``sql`` with the columns of each EXCLUDE sorted: Ibis lists them from a set, in an order that
    varies between calls."""
    return re.sub(r"EXCLUDE \(([^)]*)\)", lambda m: f"EXCLUDE ({', '.join(sorted(m[1].split(', ')))})", sql)


def ibis_sql(expr) -> str:
    """What Ibis' own DuckDB compiler gives."""
    return _PLAIN.to_sqlglot(expr).sql("duckdb")


@pytest.fixture
def compiler(monkeypatch) -> CachingDuckDBCompiler:
    fresh = CachingDuckDBCompiler()
    monkeypatch.setattr(CachingDuckDBBackend, "compiler", fresh)
    return fresh


def _day_query(con, day: date):
    """The same query on another day: its own table (as each day's transform reads its own files)
    and its own dates."""
    t = con.create_table(
        f"events_{day:%Y%m%d}",
        ibis.memtable(
            {
                "event_date": [date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)],
                "event_ts": [datetime(2025, 3, 1, 12), datetime(2025, 3, 2, 12), datetime(2025, 3, 3, 12)],
                "revenue": [10.0, 20.0, 40.0],
            }
        ),
    )
    since = ibis.literal(day)
    recent = t.filter((t.event_date >= since) & (t.event_ts < ibis.literal(datetime(2025, 3, 3, 6))))
    return recent.aggregate(orders=recent.count(), revenue=recent.revenue.sum(), first=since)


def test_a_query_of_another_day_reuses_its_compiled_template(compiler):
    con = CachingDuckDBBackend().connect()
    first, second = _day_query(con, date(2025, 3, 1)), _day_query(con, date(2025, 3, 2))
    assert con.compile(first) == ibis_sql(first)  # a first sighting: compiled as it is
    shapes = len(compiler._compiled)
    sql = con.compile(second)
    assert len(compiler._compiled) == shapes  # the same shape: its template compiled, then filled in
    assert con.compile(first) == ibis_sql(first)  # filled in again
    assert sql == ibis_sql(second)
    assert '"events_20250302"' in sql and "MAKE_DATE(2025, 3, 2)" in sql and "events_20250301" not in sql
    # Worked out by hand: rows on or after the day and before 2025-03-03 06:00.
    assert first.to_pyarrow().to_pylist() == [{"orders": 2, "revenue": 30.0, "first": date(2025, 3, 1)}]
    assert second.to_pyarrow().to_pylist() == [{"orders": 1, "revenue": 20.0, "first": date(2025, 3, 2)}]
    # The tree path (CREATE TABLE … AS, .cache()) is filled in the same way.
    assert compiler.to_sqlglot(second).sql("duckdb") == sql
    assert second.cache().to_pyarrow().to_pylist() == second.to_pyarrow().to_pylist()


def test_another_shape_compiles_a_template_of_its_own(compiler):
    con = CachingDuckDBBackend().connect()
    query = _day_query(con, date(2025, 3, 1))
    con.compile(query)
    templates = len(compiler._compiled)
    other = query.mutate(revenue_cents=(query.revenue * 100).cast("int64"))
    assert con.compile(other) == ibis_sql(other)
    assert len(compiler._compiled) == templates + 1


def test_a_days_transform_compiles_what_ibis_compiles(compiler, monkeypatch, small_sample, tmp_path):
    """Every query of the daily transform, day after day: the SQL the cache gives is Ibis' own, and
    from the third day on it meets no new shape (the second compiles the templates of the first's
    shapes, and two shapes of its own: the day before is rewritten from the second day on)."""
    compared, new_templates = [], []
    to_sql, to_sqlglot = CachingDuckDBCompiler.to_sql, CachingDuckDBCompiler.to_sqlglot

    def checked_sql(self, expr):
        templates = len(self._compiled)
        sql = to_sql(self, expr)
        compared.append((normal(sql), normal(ibis_sql(expr))))
        new_templates[-1] += len(self._compiled) - templates
        return sql

    def checked_tree(self, expr, **kw):
        templates = len(self._compiled)
        tree = to_sqlglot(self, expr, **kw)
        compared.append((normal(tree.sql("duckdb")), normal(ibis_sql(expr))))
        new_templates[-1] += len(self._compiled) - templates
        return tree

    monkeypatch.setattr(CachingDuckDBCompiler, "to_sql", checked_sql)
    monkeypatch.setattr(CachingDuckDBCompiler, "to_sqlglot", checked_tree)
    days = stage(small_sample, tmp_path / "stg")
    for day in days:
        new_templates.append(0)
        run_transform(tmp_path / "stg", tmp_path / "wh", DEFAULT_PARAMS_DIR, start=day, end=day)
    assert len(compared) > 40 * len(days)
    assert [sql for sql, expected in compared if sql != expected] == []
    assert new_templates[0] > 40 and new_templates[2:] == [0] * (len(days) - 2), new_templates
    assert compile_cache.CACHE_SIZE >= new_templates[0]


# ------------------------------------------------------------------------- templates kept on disk


def _templates_compiled(monkeypatch) -> list:
    """Every template Ibis compiles from now on (the cache's own calls to the plain compiler)."""
    calls = []
    plain = DuckDBCompiler.to_sqlglot

    def counted(self, expr, **kw):
        if isinstance(self, CachingDuckDBCompiler):
            calls.append(expr)
        return plain(self, expr, **kw)

    monkeypatch.setattr(DuckDBCompiler, "to_sqlglot", counted)
    return calls


def test_a_template_on_disk_serves_the_next_process(monkeypatch, tmp_path):
    """A first sighting with a store compiles the template and saves it; a new compiler (the next
    process) with the same store fills it in without compiling, to Ibis' own SQL."""
    store = compile_cache.TemplateStore(tmp_path / "store")
    first_process = CachingDuckDBCompiler(store)
    monkeypatch.setattr(CachingDuckDBBackend, "compiler", first_process)
    con = CachingDuckDBBackend().connect()
    first = _day_query(con, date(2025, 3, 1))
    assert con.compile(first) == ibis_sql(first)
    assert list(store.dir.glob("*.pickle"))  # the query's template (and that of the table it created)

    next_process = CachingDuckDBCompiler(store)
    monkeypatch.setattr(CachingDuckDBBackend, "compiler", next_process)
    compiled = _templates_compiled(monkeypatch)
    second = _day_query(con, date(2025, 3, 2))
    assert con.compile(second) == ibis_sql(second)
    assert compiled == []
    assert second.cache().to_pyarrow().to_pylist() == [{"orders": 1, "revenue": 20.0, "first": date(2025, 3, 2)}]


def test_a_damaged_or_foreign_template_file_is_compiled_again(monkeypatch, tmp_path):
    store = compile_cache.TemplateStore(tmp_path / "store")
    monkeypatch.setattr(CachingDuckDBBackend, "compiler", CachingDuckDBCompiler(store))
    con = CachingDuckDBBackend().connect()
    query = _day_query(con, date(2025, 3, 1))
    con.compile(query)
    for saved in store.dir.glob("*.pickle"):
        saved.write_bytes(b"not a pickle")
    monkeypatch.setattr(CachingDuckDBBackend, "compiler", CachingDuckDBCompiler(store))
    compiled = _templates_compiled(monkeypatch)
    assert con.compile(query) == ibis_sql(query)
    assert len(compiled) == 1  # compiled again, and saved again
    monkeypatch.setattr(compile_cache.os, "getuid", lambda: os.getuid() + 1)  # another user's file
    monkeypatch.setattr(CachingDuckDBBackend, "compiler", CachingDuckDBCompiler(store))
    assert con.compile(query) == ibis_sql(query)
    assert len(compiled) == 2


def test_the_store_is_chosen_by_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PUFFY_COMPILE_CACHE", "off")
    assert compile_cache.TemplateStore.from_environment() is None
    monkeypatch.setenv("PUFFY_COMPILE_CACHE", str(tmp_path / "mine"))
    assert compile_cache.TemplateStore.from_environment().dir.parent == tmp_path / "mine"
    monkeypatch.delenv("PUFFY_COMPILE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.TemplateStore.from_environment().dir.parent == tmp_path / "xdg" / "puffy" / "compile"


_DAY_IN_A_PROCESS = """
import json, sys
from datetime import date
from pathlib import Path
from ibis.backends.sql.compilers.duckdb import DuckDBCompiler
from puffy import compile_cache
from puffy.params import DEFAULT_PARAMS_DIR
from puffy.transform import run_transform

plain, compiled, differ = DuckDBCompiler.to_sqlglot, [], []
def counted(self, expr, **kw):
    if isinstance(self, compile_cache.CachingDuckDBCompiler):
        compiled.append(1)
    return plain(self, expr, **kw)
DuckDBCompiler.to_sqlglot = counted
to_sql = compile_cache.CachingDuckDBCompiler.to_sql
def checked(self, expr):
    sql = to_sql(self, expr)
    if normal(sql) != normal(plain(DuckDBCompiler(), expr).sql("duckdb")):
        differ.append(sql[:200])
    return sql
compile_cache.CachingDuckDBCompiler.to_sql = checked
stg, wh, day = Path(sys.argv[1]), Path(sys.argv[2]), date.fromisoformat(sys.argv[3])
run_transform(stg, wh, DEFAULT_PARAMS_DIR, start=day, end=day)
print(json.dumps({"compiled": len(compiled), "differ": differ}))
"""


def test_a_days_transform_in_the_next_process_compiles_nothing(small_sample, tmp_path):
    """Scheduled days, each its own process with its own string hashing (frozenset order differs
    between processes): from the third day on no template is compiled, and every query's SQL is
    Ibis' own."""
    import inspect
    import json
    import subprocess
    import sys

    days = stage(small_sample, tmp_path / "stg")
    script = tmp_path / "day.py"
    script.write_text(f"import re\n{inspect.getsource(normal)}\n{_DAY_IN_A_PROCESS}", encoding="utf-8")
    env = {**os.environ, "PUFFY_COMPILE_CACHE": str(tmp_path / "store")}
    figures = []
    for seed, day in enumerate(days, start=1):
        proc = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "stg"), str(tmp_path / "wh"), day.isoformat()],
            env={**env, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        figures.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert figures[0]["compiled"] > 40
    assert [f["differ"] for f in figures] == [[]] * len(days)
    # The second day meets the shapes of a day with a day before it; from the third on, none is new.
    assert [f["compiled"] for f in figures[2:]] == [0] * (len(days) - 2), figures


def test_the_store_keeps_the_recently_used_templates_within_its_size(monkeypatch, tmp_path):
    """Above ``STORE_MAX_BYTES`` a save removes the least recently used templates, of any version;
    a template read is recently used."""
    import time

    store = compile_cache.TemplateStore(tmp_path / "store")
    old_version = tmp_path / "store" / "ibis-0.0.0_old"
    old_version.mkdir(parents=True)
    (old_version / "stale.pickle").write_bytes(b"x" * 100)
    tree = compile_cache.sge.select("1")
    for i, key in enumerate(("a", "b")):
        store.save(key, tree)
        os.utime(store._path(key), (time.time() - 100 + i, time.time() - 100 + i))  # a older than b
    os.utime(old_version / "stale.pickle", (time.time() - 1000, time.time() - 1000))
    assert store.load("a") == tree  # now the most recently used
    size = store._path("a").stat().st_size
    monkeypatch.setattr(compile_cache, "STORE_MAX_BYTES", 2 * size)
    store.save("c", tree)
    assert not (old_version / "stale.pickle").exists()
    assert store.load("b") is None  # the least recently used of this version
    assert store.load("a") == store.load("c") == tree
