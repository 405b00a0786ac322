"""The daily runner end to end on a generated sample: notebooks, reports, publish, idempotency,
and the stops (gate error before the transform; monitoring error → quarantine)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import pytest

from puffy import runner

pytestmark = pytest.mark.slow


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_every_day_runs_all_stages_and_publishes(daily_run):
    layout, results = daily_run
    assert [r.date for r in results] == ["2025-02-25", "2025-02-26", "2025-02-27", "2025-02-28"]
    for r in results:
        assert r.exit_code in (runner.EXIT_OK, runner.EXIT_MONITORING), r
        run_dir = layout.run_dir(date.fromisoformat(r.date))
        stages = [s.stage for s in r.stages]
        assert stages[:2] == ["01_data_quality", "02_transform"]
        for s in r.stages:
            assert Path(s.notebook).exists() and Path(s.html).exists()
            assert "In&nbsp;[" not in Path(s.html).read_text()  # reports hide code
        summary = json.loads((run_dir / "run_summary.json").read_text())
        assert summary["date"] == r.date
    published = [r for r in results if r.published]
    assert published, "no day was published"
    assert (layout.warehouse / "fct_sessions").is_dir()
    index = (layout.outputs_dir / "index.html").read_text()
    assert all(r.date in index for r in results)


def test_rerunning_a_day_is_idempotent(daily_run):
    layout, results = daily_run
    day = date.fromisoformat(results[-1].date)
    before = _tree_digest(layout.warehouse)
    stale = layout.run_dir(day) / "02_transform.html.old"
    stale.write_text("from an earlier run")
    again = runner.run_day(day, layout)
    assert again.exit_code == results[-1].exit_code
    assert _tree_digest(layout.warehouse) == before
    assert not stale.exists()  # the day's run directory holds this run's reports only


@pytest.mark.parametrize(
    "written, expected",
    [
        (None, "error"),  # the stage failed before deciding anything
        ({"status": "pass"}, "warn"),  # a chart failed after the stage had passed
        ({"status": "error", "message": "reconciliation"}, "error"),
    ],
)
def test_a_cell_failing_after_the_status_is_written_is_a_warning(tmp_path, written, expected):
    stage = runner.DAILY_STAGES[1]
    if written:
        (tmp_path / stage.status_file).write_text(json.dumps(written))
    status, message = runner._after_failed_cell(tmp_path, stage, "ValueError: bad chart")
    assert status == expected and "ValueError: bad chart" in message


class _CellError(Exception):
    """What papermill raises for a failing cell: the cell's exception as ``ename`` / ``evalue`` text."""

    def __init__(self, ename: str, evalue: str):
        super().__init__(evalue)
        self.ename, self.evalue = ename, evalue


def test_a_failing_cells_error_is_one_line():
    assert runner.notebook_error(_CellError("ValueError", "bad chart")) == "ValueError: bad chart"
    # DuckDB reading through pyarrow's S3 filesystem, refused by the store (the text as DuckDB 2.0
    # raised it against moto with IAM enforced): the inner error's line, not the traceback's first
    refused = (
        "Traceback (most recent call last):\n"
        '  File "pyarrow/error.pxi", line 92, in pyarrow.lib.check_status\n'
        "OSError: When getting information for key 'warehouse/fct_orders/date=2025-03-01/part-0.parquet' in "
        "bucket 'puffy-bkt': AWS Error ACCESS_DENIED during HeadObject operation: No response body.\n"
        "\n"
        "LINE 1: select * from read_parquet('s3://puffy-bkt/warehouse/fct_orders/date=2025-03-01/part-0.parquet')"
    )
    assert runner.notebook_error(_CellError("Error", refused)) == (
        "Error: OSError: When getting information for key 'warehouse/fct_orders/date=2025-03-01/part-0.parquet' "
        "in bucket 'puffy-bkt': AWS Error ACCESS_DENIED during HeadObject operation: No response body."
    )


def test_gate_error_stops_before_transform(tmp_path, small_sample):
    raw = tmp_path / "raw"
    shutil.copytree(small_sample, raw)
    day_file = raw / "events_20250225.csv"
    lines = day_file.read_text().splitlines()
    # Drop the event_name column from the header: every row loses a required column.
    day_file.write_text("\n".join([lines[0].replace("event_name", "event_kind")] + lines[1:]))
    outputs = tmp_path / "outputs"
    layout = runner.RunLayout(outputs, raw, runner.REPO_ROOT / "params")
    result = runner.run_day(date(2025, 2, 25), layout)
    assert result.exit_code == runner.EXIT_GATE
    assert result.stopped_at == "01_data_quality"
    assert [s.stage for s in result.stages] == ["01_data_quality"]
    assert not (layout.run_dir(date(2025, 2, 25)) / "02_transform.ipynb").exists()
    assert not layout.warehouse.exists()


def _broken_transform_params(tmp_path: Path) -> Path:
    """A params directory whose gate passes and whose transform fails (an unknown setting)."""
    params = tmp_path / "params"
    shutil.copytree(runner.REPO_ROOT / "params", params)
    with open(params / "transform.yaml", "a", encoding="utf-8") as fh:
        fh.write("\nno_such_setting: 1\n")
    return params


@pytest.mark.parametrize("stop_on_error", [True, False])
def test_a_backfill_gates_each_next_day_ahead_and_leaves_no_trace_of_a_day_it_stopped_before(
    tmp_path, small_sample, stop_on_error
):
    """In a backfill, day D+1's gate runs in a second kernel as soon as D's gate is done (issue 17).
    A day that then does not run (``--stop-on-error`` after D's transform failed) leaves nothing
    in runs/; a day that runs keeps the report of the gate that ran ahead."""
    layout = runner.RunLayout(tmp_path / "outputs", small_sample, _broken_transform_params(tmp_path))
    days = [date(2025, 2, 25), date(2025, 2, 26), date(2025, 2, 27)]
    results = runner.run_range(days[0], days[-1], layout, stop_on_error=stop_on_error, progress=False)
    ran = days[:1] if stop_on_error else days
    assert [r.date for r in results] == [d.isoformat() for d in ran]
    for r in results:
        assert (r.exit_code, r.stopped_at) == (runner.EXIT_TRANSFORM, "02_transform"), r
        assert [s.stage for s in r.stages] == ["01_data_quality", "02_transform"]
        assert r.stages[0].status in ("pass", "warn"), r.stages[0]
    for d in ran:
        assert (layout.run_dir(d) / "dq_report.json").exists() and (layout.run_dir(d) / "run_summary.json").exists()
    assert sorted(p.name for p in (layout.outputs_dir / "runs").iterdir()) == [d.isoformat() for d in ran]
    assert runner.KernelSession.current() is None


def test_one_run_at_a_time_per_outputs_directory(tmp_path):
    """A second run on the same outputs (a scheduler's retry during a backfill) stops at once,
    naming the holder; the lock is free again once the first run ends."""
    import subprocess
    import sys

    from puffy.errors import UserError

    hold = (
        "import sys, time; from puffy.runner import exclusive_outputs\n"
        "with exclusive_outputs(sys.argv[1]):\n    print('held', flush=True); time.sleep(30)\n"
    )
    other = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        layout = runner.RunLayout(tmp_path, tmp_path / "raw", tmp_path / "params")
        with pytest.raises(UserError, match=f"another puffy run is using it \\(pid {other.pid}\\)"):
            runner.run_range(date(2025, 2, 25), date(2025, 2, 25), layout, progress=False)
    finally:
        other.kill()
        other.wait()
    with runner.exclusive_outputs(tmp_path), runner.exclusive_outputs(tmp_path):  # free, and re-entrant
        pass


def test_kernels_are_shut_down_without_an_interrupt():
    """jupyter_client interrupts a kernel before shutting it down, which a busy kernel logs as an
    ERROR on the run's stderr; the runner's kernel manager skips that interrupt, and only that one."""
    import asyncio

    km = runner.quiet_shutdown_kernel_manager()(kernel_name="python3")
    km.shutting_down = True
    asyncio.run(km._async_interrupt_kernel())  # skipped: no signal, and no complaint about no kernel
    km.shutting_down = False
    with pytest.raises(RuntimeError, match="No kernel is running"):  # any other interrupt goes through
        asyncio.run(km._async_interrupt_kernel())


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not run)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_the_notebook_kernel_dies_with_a_killed_runner(tmp_path):
    """kill -9 of the runner mid-notebook: its kernel goes at once and writes nothing more. Before,
    jupyter_client's kernel (a session of its own) ran on until ipykernel's parent poller noticed."""
    import nbformat

    ticks, pid_file = tmp_path / "ticks.txt", tmp_path / "kernel.pid"
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                textwrap.dedent(f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        while True:
            with open({str(ticks)!r}, "a") as fh:
                fh.write("tick\\n")
            time.sleep(0.02)
    """)
            )
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "busy.ipynb")
    script = textwrap.dedent(f"""
        from pathlib import Path
        from puffy import runner
        runner.notebook_path = lambda name: Path({str(tmp_path)!r}) / f"{{name}}.ipynb"
        runner.execute_notebook("busy", Path({str(tmp_path / "out")!r}), {{}})
    """)
    the_runner = subprocess.Popen(
        [sys.executable, "-c", script], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text() and ticks.exists()):
            assert time.monotonic() < deadline and the_runner.poll() is None, "the kernel never started"
            time.sleep(0.05)
        kernel = int(pid_file.read_text())
        assert _alive(kernel)
        os.killpg(the_runner.pid, signal.SIGKILL)  # the runner's process group, as a scheduler would
        the_runner.wait(10)
        killed_at = time.monotonic()
        while _alive(kernel) and time.monotonic() - killed_at < 5:
            time.sleep(0.01)
        gone_after = time.monotonic() - killed_at
        assert not _alive(kernel), "the kernel outlived its runner by more than 5 s"
        assert gone_after < 0.5, f"the kernel outlived its runner by {gone_after:.2f} s"
        written = ticks.read_text()
        time.sleep(0.2)
        assert ticks.read_text() == written  # and it writes nothing more
    finally:
        if the_runner.poll() is None:
            os.killpg(the_runner.pid, signal.SIGKILL)
        if pid_file.exists() and pid_file.read_text() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _probe_notebook(path: Path, code: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("label = None", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(textwrap.dedent(code)),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _stdout(executed: Path) -> str:
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_a_session_runs_every_notebook_in_one_kernel_with_an_empty_namespace(tmp_path, monkeypatch):
    """A backfill pays for the kernel's start and the imports once (issue 17): inside a
    KernelSession three notebooks run in one kernel process, and a variable one of them left is gone
    before the next (as if each had a kernel of its own)."""
    _probe_notebook(
        tmp_path / "probe.ipynb",
        """
        import os, sys
        print("pid", os.getpid(), "leftover", "seen" in globals(), "wave imported", "wave" in sys.modules)
        seen = label
        import wave
    """,
    )
    monkeypatch.setattr(runner, "notebook_path", lambda name: tmp_path / f"{name}.ipynb")
    with runner.KernelSession():
        outs = [_stdout(runner.execute_notebook("probe", tmp_path / f"run{i}", {"label": i})) for i in range(3)]
    pids = {line.split()[1] for line in outs}
    assert len(pids) == 1, outs
    assert all("leftover False" in line for line in outs), outs  # the namespace is emptied before each notebook
    assert [("wave imported True" in line) for line in outs] == [False, True, True], outs  # modules stay imported
    assert runner.KernelSession.current() is None


def test_a_session_starts_a_new_kernel_when_its_kernel_died(tmp_path, monkeypatch):
    _probe_notebook(tmp_path / "die.ipynb", "import os\nprint('pid', os.getpid())\nif label == 'die':\n    os._exit(1)")
    monkeypatch.setattr(runner, "notebook_path", lambda name: tmp_path / f"{name}.ipynb")
    with runner.KernelSession():
        first = _stdout(runner.execute_notebook("die", tmp_path / "a", {"label": "live"}))
        with pytest.raises(Exception):  # noqa: B017 (papermill or nbclient, by when the death is seen)
            runner.execute_notebook("die", tmp_path / "b", {"label": "die"})
        after = _stdout(runner.execute_notebook("die", tmp_path / "c", {"label": "live"}))
    assert first.split()[1] != after.split()[1], (first, after)
