"""A day's publish is all-or-nothing across its tables (``puffy.publish``): killed after any step,
the readers see the whole old day or the whole new day in every table, never a mix, and the next
command completes or undoes what was left.

Fixture, built by hand: six tables. Five have a published partition of DAY holding one row
``version = "old"``, one (``fct_order_rejects``) has none yet; the staging warehouse holds DAY
with ``version = "new"`` in all six. Another published day (OTHER) must never change. So the only
two acceptable views of DAY are OLD_VIEW (five "old", rejects absent) and NEW_VIEW (six "new").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from puffy import publish as publish_mod
from puffy import warehouse
from puffy.errors import UserError
from puffy.publish import PUBLISH_LOCK, publish, recover
from puffy.warehouse import PUBLISH_JOURNAL, partition_dates, partition_files, write_partition

DAY, OTHER = date(2025, 3, 2), date(2025, 3, 1)
TABLES = ["fct_attribution", "fct_order_items", "fct_order_rejects", "fct_orders", "fct_sessions", "rpt_reconciliation"]
NOT_YET_PUBLISHED = "fct_order_rejects"
OLD_VIEW = {t: (None if t == NOT_YET_PUBLISHED else "old") for t in TABLES}
NEW_VIEW = dict.fromkeys(TABLES, "new")


def _rows(version: str, n: int = 3) -> pa.Table:
    return pa.table({"id": list(range(n)), "version": [version] * n})


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    staging, published = tmp_path / "staging", tmp_path / "warehouse"
    for table in TABLES:
        write_partition(staging, table, DAY, _rows("new"))
        write_partition(published, table, OTHER, _rows("other"))
        if table != NOT_YET_PUBLISHED:
            write_partition(published, table, DAY, _rows("old", 2))
    return staging, published


def _view(root: Path) -> dict[str, str | None]:
    """What a reader sees of DAY, table by table, through the readers' own functions."""
    out = {}
    for table in TABLES:
        files = partition_files(root, table, [DAY])
        out[table] = None if not files else pq.read_table(files[0]).column("version")[0].as_py()
        assert DAY in partition_dates(root, table) or out[table] is None
    return out


def _hidden_leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*") if p.name != PUBLISH_LOCK)


def _steps(tmp_path: Path) -> list[str]:
    staging, published = _setup(tmp_path / "dry")
    seen: list[str] = []
    publish(staging, published, on_step=seen.append)
    return seen


def test_the_steps_are_prepare_each_commit_swap_each_finish(tmp_path):
    steps = _steps(tmp_path)
    assert steps == (
        [f"prepared {t}/date={DAY}" for t in TABLES]
        + ["committed"]
        + [f"swapped {t}/date={DAY}" for t in TABLES]
        + ["finished"]
    )


def test_a_whole_publish_replaces_the_day_in_every_table_and_leaves_nothing(tmp_path):
    staging, published = _setup(tmp_path)
    assert _view(published) == OLD_VIEW
    assert len(publish(staging, published)) == len(TABLES)
    assert _view(published) == NEW_VIEW
    assert _hidden_leftovers(published) == []
    for table in TABLES:
        assert pq.read_table(partition_files(published, table, [OTHER])[0]).column("version")[0].as_py() == "other"


class Crash(Exception):
    pass


@pytest.mark.parametrize("k", range(14))
def test_an_exception_after_any_step_leaves_the_old_or_the_new_day_whole(tmp_path, k):
    steps = _steps(tmp_path)
    staging, published = _setup(tmp_path / "run")

    def fail_at(name):
        if name == steps[k]:
            raise Crash(name)

    with pytest.raises(Crash):
        publish(staging, published, on_step=fail_at)
    committed = k >= steps.index("committed")
    assert _view(published) == (NEW_VIEW if committed else OLD_VIEW)  # a reader completes it
    recover(published)
    assert _hidden_leftovers(published) == []


def _killed_child(target, how: str) -> None:
    """Run ``target`` in a forked child that is killed (SIGKILL to itself, or ``os._exit``) where
    ``target`` says; wait for it and check that it did die that way."""
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        try:
            target()
        finally:
            os._exit(0 if how == "exit" else 99)  # the kill did not happen: the parent sees 99 / 0
    _, status = os.waitpid(pid, 0)
    if how == "kill":
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    else:
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 17, status


def _die(how: str):
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(17)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
@pytest.mark.parametrize("how", ["kill", "exit"])
def test_killed_after_any_step_the_next_reader_sees_a_whole_day(tmp_path, monkeypatch, how, exchange):
    """kill -9 (or _exit) of the publishing process after each of its 14 steps, with the atomic
    exchange and with the two-rename fallback: readers see the old day (killed before the journal)
    or the new one (after), in all six tables; the next command leaves nothing behind."""
    if not exchange:
        monkeypatch.setattr(warehouse, "_exchange", lambda a, b: False)
    steps = _steps(tmp_path)
    for k, name in enumerate(steps):
        staging, published = _setup(tmp_path / f"run{k}")

        def at_step(step, name=name):
            if step == name:
                _die(how)

        _killed_child(lambda: publish(staging, published, on_step=at_step), how)  # noqa: B023 (called at once)
        committed = k >= steps.index("committed")
        if name != "finished":
            assert (published / PUBLISH_JOURNAL).exists() == committed, name
        assert _view(published) == (NEW_VIEW if committed else OLD_VIEW), name
        assert not (published / PUBLISH_JOURNAL).exists(), name  # the reader rolled it forward
        recover(published)  # the next command: prepared directories of a dead publish are rolled back
        assert _hidden_leftovers(published) == [], name
        assert _view(published) == (NEW_VIEW if committed else OLD_VIEW), name


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_killed_inside_a_swap_the_roll_forward_neither_loses_nor_undoes_it(tmp_path, monkeypatch, exchange):
    """The kill lands inside the per-partition primitive: after the exchange but before the
    replaced partition is deleted (the prepared name then holds the OLD partition: swapping it in
    again would undo the publish), or between the fallback's two renames (no ``date=D`` at all)."""
    import shutil

    real_rmtree, real_rename = shutil.rmtree, os.rename
    if exchange:

        def rmtree(path, *a, **kw):
            if ".prep-" in str(path):
                os.kill(os.getpid(), signal.SIGKILL)
            return real_rmtree(path, *a, **kw)

        monkeypatch.setattr(warehouse.shutil, "rmtree", rmtree)
    else:
        monkeypatch.setattr(warehouse, "_exchange", lambda a, b: False)

        def rename(src, dst, *a, **kw):
            if ".prep-" in str(src) and "fct_sessions" in str(dst):
                os.kill(os.getpid(), signal.SIGKILL)
            return real_rename(src, dst, *a, **kw)

        monkeypatch.setattr(warehouse.os, "rename", rename)
    staging, published = _setup(tmp_path)
    _killed_child(lambda: publish(staging, published), "kill")
    monkeypatch.undo()
    assert _view(published) == NEW_VIEW
    recover(published)
    assert _hidden_leftovers(published) == []


def test_an_external_kill_9_mid_publish_is_completed_by_the_next_reader(tmp_path):
    """A real ``kill -9`` from outside, once three of the six swaps are done (the 2025-03-02
    incident: four tables had the day, two did not). Before the journal, this left that mix."""
    staging, published = _setup(tmp_path)
    script = textwrap.dedent(f"""
        import sys, time
        import puffy.publish as p
        real, done = p.swap_in, []
        def slow_swap_in(tmp, final):
            real(tmp, final)
            done.append(final)
            if len(done) == 3:
                print("three", flush=True)
                time.sleep(60)
        p.swap_in = slow_swap_in
        p.publish({str(staging)!r}, {str(published)!r})
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "three"
        half = {t: (published / t / f"date={DAY}").exists() for t in TABLES}
        assert sum(half.values()) >= 3  # really mid-publish
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert _view(published) == NEW_VIEW
    assert _hidden_leftovers(published) == []


def test_a_reader_waits_for_a_publish_that_is_still_running(tmp_path):
    staging, published = _setup(tmp_path)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:

            def pause_after_commit(step):
                if step == "committed":
                    os.write(write_fd, b"x")
                    time.sleep(0.5)

            publish(staging, published, on_step=pause_after_commit)
        finally:
            os._exit(0)
    assert os.read(read_fd, 1) == b"x"
    assert (published / PUBLISH_JOURNAL).exists()
    t0 = time.monotonic()
    assert _view(published) == NEW_VIEW  # not a roll-forward racing the live publisher: it waited
    assert time.monotonic() - t0 > 0.2
    os.waitpid(pid, 0)
    assert _hidden_leftovers(published) == []


def test_a_reader_that_cannot_write_refuses_an_unfinished_publish(tmp_path, monkeypatch):
    staging, published = _setup(tmp_path)
    _killed_child(
        lambda: publish(staging, published, on_step=lambda s: s == f"swapped fct_orders/date={DAY}" and _die("kill")),
        "kill",
    )
    monkeypatch.setattr(publish_mod, "_writable", lambda root: False)  # as on a read-only mount
    with pytest.raises(UserError, match=r"2025-03-02 of 6 tables\) was interrupted and is unfinished"):
        partition_dates(published, "fct_sessions")
    monkeypatch.undo()
    assert _view(published) == NEW_VIEW


def test_a_journal_whose_partitions_were_tampered_with_is_refused_not_guessed(tmp_path):
    staging, published = _setup(tmp_path)
    _killed_child(lambda: publish(staging, published, on_step=lambda s: s == "committed" and _die("kill")), "kill")
    for prepared in published.glob(f"fct_sessions/.date={DAY}.prep-*"):
        (prepared / "part-0.parquet").write_bytes(b"not what was journalled")
    with pytest.raises(UserError, match="neither it nor .* holds the journalled files"):
        partition_files(published, "fct_sessions")


def _interrupted(tmp_path: Path) -> Path:
    """A warehouse whose publish was killed after three of its six swaps (the 2025-03-02 state)."""
    staging, published = _setup(tmp_path)
    _killed_child(
        lambda: publish(
            staging, published, on_step=lambda s: s == f"swapped fct_order_items/date={DAY}" and _die("kill")
        ),
        "kill",
    )
    assert (published / PUBLISH_JOURNAL).exists()
    return published


@pytest.mark.parametrize("command", ["monitor", "report", "transform"])
def test_cli_commands_that_read_a_warehouse_refuse_a_half_day_they_cannot_repair(
    tmp_path, monkeypatch, capsys, command
):
    from puffy import cli

    published = _interrupted(tmp_path)
    monkeypatch.setattr(publish_mod, "_writable", lambda root: False)  # as on a read-only mount
    argv = {
        "monitor": [
            "monitor",
            "--warehouse-dir",
            str(published),
            "--output-dir",
            str(tmp_path / "mon"),
            "--expected-run-date",
            str(DAY),
        ],
        "report": ["report", "--outputs-dir", str(tmp_path)],
        "transform": ["transform", "--input-dir", str(tmp_path / "raw"), "--output-dir", str(tmp_path)],
    }[command]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"puffy {command}: error: {published}: a publish (2025-03-02 of 6 tables) was interrupted")
    assert (published / PUBLISH_JOURNAL).exists()  # untouched


def test_the_runner_completes_an_interrupted_publish_before_the_day(tmp_path, monkeypatch):
    from puffy import runner
    from puffy.params import DEFAULT_PARAMS_DIR

    published = _interrupted(tmp_path / "outputs")
    assert published == tmp_path / "outputs" / "warehouse"
    # Notebooks that do not exist: the day stops at once, after the runner's recovery.
    monkeypatch.setattr(runner, "notebook_path", lambda name: tmp_path / "absent" / f"{name}.ipynb")
    layout = runner.RunLayout(tmp_path / "outputs", tmp_path / "raw", DEFAULT_PARAMS_DIR)
    result = runner.run_day(DAY, layout)
    assert result.stopped_at == "01_data_quality"
    assert not (published / PUBLISH_JOURNAL).exists()
    assert _hidden_leftovers(published) == []
    assert _view(published) == NEW_VIEW


def test_newest_warehouse_and_monitoring_sources_complete_an_interrupted_publish_first(tmp_path):
    from puffy.monitoring.metrics import Sources
    from puffy.warehouse import newest_warehouse

    published = _interrupted(tmp_path / "a")
    assert newest_warehouse([published, tmp_path / "elsewhere"]) == published
    assert not (published / PUBLISH_JOURNAL).exists()

    published = _interrupted(tmp_path / "b")
    sources = Sources(
        warehouse_dir=tmp_path / "b" / "audited",
        history_dir=published,
        intermediate_dir=None,
        run_date=date(2025, 3, 3),
    )
    files = sources.files("fct_order_rejects", OTHER, DAY)  # the table the old day did not have
    assert sorted(files) == [OTHER, DAY]
    assert pq.read_table(files[DAY]).column("version")[0].as_py() == "new"
