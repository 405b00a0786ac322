"""A backfill in one pass (``runner.run_range_one_pass``): each notebook once for the range.

The notebooks are stand-ins (no kernel): each does what its real counterpart does to the files the
runner reads (per-day gate reports, the range's staged partitions and transform status, per-day
audit reports and publish outcomes) and records what it ran, so the tests see which days each
notebook covered, which were transformed again, and what each day's result says.
"""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest

from puffy import backfill, runner
from puffy.dates import date_range

DAYS = [date(2025, 3, 1) + timedelta(days=n) for n in range(5)]


class _Notebooks:
    """``statuses[(notebook, day)]``: the status a stand-in notebook gives that day (default
    pass); ``crash`` raises in the notebook on that day before it writes anything for it."""

    def __init__(self, statuses=None, events=None, interrupt_on=None):
        self.interrupt_on = interrupt_on  # the audit of this day is interrupted (Ctrl-C in the runner)
        self.ctrl_c = threading.Event()
        self.statuses = statuses or {}
        self.events = events or {}  # staged events per day (default 10)
        self.ran: list[tuple[str, date, date]] = []  # (notebook, first day, last day)
        self.published: list[date] = []

    def status(self, notebook: str, day: date) -> str:
        return self.statuses.get((notebook, day), "pass")

    def execute(self, name, out_dir, parameters, on_cell_executed=None):
        layout = runner.RunLayout(Path(parameters["outputs_dir"]), Path("raw"), Path(parameters["params_dir"]))
        days = date_range(date.fromisoformat(parameters["start_date"]), date.fromisoformat(parameters["end_date"]))
        self.ran.append((name, days[0], days[-1]))
        out_dir.mkdir(parents=True, exist_ok=True)
        executed = out_dir / f"{name}.ipynb"
        executed.write_text("{}")
        getattr(self, "_" + name[3:])(layout, days, parameters)
        return executed

    def _crash(self, notebook: str, day: date) -> None:
        if self.status(notebook, day) == "crash":
            raise RuntimeError(f"{notebook} failed on {day}")

    def _data_quality(self, layout, days, parameters):
        assert parameters["each_day"] is True
        for day in days:
            self._crash("01_data_quality", day)
            layout.run_dir(day).mkdir(parents=True, exist_ok=True)
            status = self.status("01_data_quality", day)
            summary = {"events": self.events.get(day, 10)}
            (layout.run_dir(day) / "dq_report.json").write_text(json.dumps({"status": status, "summary": summary}))
            if status == "error" and parameters["stop_at_error"]:
                break

    def _transform(self, layout, days, parameters):
        status = "error" if any(self.status("02_transform", d) == "error" for d in days) else "pass"
        staging = Path(parameters["warehouse_root"])
        for day in days:
            (staging / "fct_sessions" / f"date={day}").mkdir(parents=True)
            (staging / "fct_sessions" / f"date={day}" / "part-0.parquet").write_text(str(day))
        Path(parameters["output_dir"], "transform_status.json").write_text(json.dumps({"status": status}))

    def _monitoring(self, layout, days, parameters):
        assert parameters["each_day"] is True
        for day in days:
            assert (layout.staging_warehouse(day) / "fct_sessions" / f"date={day}").is_dir()
            self._crash("04_monitoring", day)
            if day == self.interrupt_on:
                self.ctrl_c.set()  # the runner's thread gets KeyboardInterrupt (the test's _done_within)
                assert _NoKernel.killed.wait(10), "the runner did not kill the kernel"
                raise RuntimeError("Kernel died")
            status = self.status("04_monitoring", day)
            (layout.run_dir(day) / "monitoring_report.json").write_text(json.dumps({"status": status}))
            if status == "error":
                backfill._write_outcome(layout.run_dir(day), published=False, quarantine_path=f"q/{day}")
                break
            self.published.append(day)
            backfill._write_outcome(layout.run_dir(day), published=True, partitions=1)


@pytest.fixture
def notebooks(monkeypatch):
    def install(**kw):
        fake = _Notebooks(**kw)
        monkeypatch.setattr(runner, "KernelSession", _NoKernel)
        monkeypatch.setattr(runner, "execute_notebook", fake.execute)
        monkeypatch.setattr(runner, "render_html", lambda executed: executed.with_suffix(".html"))
        monkeypatch.delenv("PUFFY_ALERT_WEBHOOK_URL", raising=False)  # alerts written, never posted
        monkeypatch.setattr(runner, "write_index", lambda outputs: None)
        return fake

    return install


class _NoKernel:
    """``KernelSession`` without a kernel; ``kill`` is what an interrupted run does to the kernel."""

    _threads = threading.local()
    killed = threading.Event()

    @classmethod
    def current(cls):
        return getattr(cls._threads, "session", None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def kill(self):
        type(self).killed.set()


def _run(tmp_path, stop_on_error=False):
    layout = runner.RunLayout(tmp_path / "outputs", tmp_path / "raw", tmp_path / "params")
    results = runner.run_range_one_pass(DAYS[0], DAYS[-1], layout, stop_on_error=stop_on_error, progress=False)
    return layout, results


def _outcomes(results):
    return [(r.date, r.exit_code, r.published) for r in results]


def test_each_notebook_runs_once_for_the_range_and_every_day_has_its_own_result(notebooks, tmp_path):
    fake = notebooks()
    layout, results = _run(tmp_path)
    assert fake.ran == [(nb, DAYS[0], DAYS[-1]) for nb in ("01_data_quality", "02_transform", "04_monitoring")]
    assert fake.published == DAYS
    assert _outcomes(results) == [(d.isoformat(), runner.EXIT_OK, True) for d in DAYS]
    for day, result in zip(DAYS, results):
        assert [(s.stage, s.status) for s in result.stages] == [
            ("01_data_quality", "pass"),
            ("02_transform", "pass"),
            ("04_monitoring", "pass"),
        ]
        pass_dir = f"backfills/{DAYS[0]}_{DAYS[-1]}/{DAYS[0]}_{DAYS[-1]}"
        assert result.stages[0].notebook.endswith(f"{pass_dir}/01_data_quality.ipynb")
        assert result.stages[0].html.endswith("01_data_quality.html")
        summary = json.loads((layout.run_dir(day) / "run_summary.json").read_text())
        assert summary["published"] and summary["date"] == day.isoformat()
        assert json.loads((layout.run_dir(day) / "transform_status.json").read_text())["status"] == "pass"
    assert not (layout.outputs_dir / "staging").exists() or not any((layout.outputs_dir / "staging").rglob("*.parquet"))


def test_a_quarantined_day_ends_its_segment_and_the_days_around_it_are_transformed_again(notebooks, tmp_path):
    fake = notebooks(statuses={("04_monitoring", DAYS[2]): "error"})
    layout, results = _run(tmp_path)
    assert fake.ran == [
        ("01_data_quality", DAYS[0], DAYS[-1]),
        ("02_transform", DAYS[0], DAYS[-1]),
        ("04_monitoring", DAYS[0], DAYS[-1]),  # stops after auditing DAYS[2]
        # the day before: published with sessions completed by DAYS[2]'s events, done again without
        ("02_transform", DAYS[1], DAYS[1]),
        ("04_monitoring", DAYS[1], DAYS[1]),
        ("02_transform", DAYS[3], DAYS[-1]),  # without DAYS[2] as history
        ("04_monitoring", DAYS[3], DAYS[-1]),
    ]
    assert fake.published == [DAYS[0], DAYS[1], DAYS[1], DAYS[3], DAYS[4]]
    assert _outcomes(results)[2] == (DAYS[2].isoformat(), runner.EXIT_MONITORING, False)
    assert results[2].stopped_at == "04_monitoring" and results[2].quarantine_path == f"q/{DAYS[2]}"
    assert (layout.run_dir(DAYS[2]) / "quarantine_path.txt").read_text().strip() == f"q/{DAYS[2]}"
    assert [len(r.stages) for r in results] == [3] * 5  # a day done again keeps only what was done last
    assert results[1].stages[1].notebook.endswith(f"{DAYS[1]}_{DAYS[1]}/02_transform.ipynb")


def test_with_stop_on_error_a_quarantined_day_is_the_last_and_later_days_leave_no_trace(notebooks, tmp_path):
    fake = notebooks(statuses={("04_monitoring", DAYS[2]): "error"})
    layout, results = _run(tmp_path, stop_on_error=True)
    assert [r.date for r in results] == [d.isoformat() for d in DAYS[:3]]
    assert fake.published == [DAYS[0], DAYS[1], DAYS[1]]
    assert sorted(p.name for p in (layout.outputs_dir / "runs").iterdir()) == [
        *(d.isoformat() for d in DAYS[:3]),
        "backfills",
    ]


def test_a_quarantined_first_day_has_no_day_before_to_do_again(notebooks, tmp_path):
    fake = notebooks(statuses={("04_monitoring", DAYS[0]): "error"})
    _run(tmp_path)
    assert [(nb, first) for nb, first, _ in fake.ran] == [
        ("01_data_quality", DAYS[0]),
        ("02_transform", DAYS[0]),
        ("04_monitoring", DAYS[0]),
        ("02_transform", DAYS[1]),
        ("04_monitoring", DAYS[1]),
    ]


def test_with_stop_on_error_a_later_day_whose_gate_failed_leaves_no_trace_either(notebooks, tmp_path):
    notebooks(statuses={("04_monitoring", DAYS[1]): "error", ("01_data_quality", DAYS[3]): "error"})
    layout, results = _run(tmp_path, stop_on_error=True)
    assert [r.date for r in results] == [d.isoformat() for d in DAYS[:2]]
    assert not layout.run_dir(DAYS[3]).exists()


def test_a_day_that_fails_its_gate_splits_the_range_and_is_not_transformed(notebooks, tmp_path):
    fake = notebooks(statuses={("01_data_quality", DAYS[1]): "error"})
    layout, results = _run(tmp_path)
    assert fake.ran[1:] == [
        ("02_transform", DAYS[0], DAYS[0]),
        ("04_monitoring", DAYS[0], DAYS[0]),
        ("02_transform", DAYS[2], DAYS[-1]),
        ("04_monitoring", DAYS[2], DAYS[-1]),
    ]
    assert _outcomes(results)[1] == (DAYS[1].isoformat(), runner.EXIT_GATE, False)
    assert [s.stage for s in results[1].stages] == ["01_data_quality"]


def test_with_stop_on_error_a_failing_gate_stops_the_gate_and_earlier_days_still_publish(notebooks, tmp_path):
    fake = notebooks(statuses={("01_data_quality", DAYS[2]): "error"})
    layout, results = _run(tmp_path, stop_on_error=True)
    assert fake.published == DAYS[:2]
    assert _outcomes(results) == [
        (DAYS[0].isoformat(), runner.EXIT_OK, True),
        (DAYS[1].isoformat(), runner.EXIT_OK, True),
        (DAYS[2].isoformat(), runner.EXIT_GATE, False),
    ]
    assert not layout.run_dir(DAYS[3]).exists()


def test_a_gate_notebook_that_crashes_on_a_day_goes_on_from_the_next_day(notebooks, tmp_path):
    fake = notebooks(statuses={("01_data_quality", DAYS[1]): "crash"})
    layout, results = _run(tmp_path)
    assert fake.ran[:2] == [("01_data_quality", DAYS[0], DAYS[-1]), ("01_data_quality", DAYS[2], DAYS[-1])]
    assert results[1].exit_code == runner.EXIT_GATE
    assert results[1].reason == f"RuntimeError: 01_data_quality failed on {DAYS[1]}"
    assert fake.published == [DAYS[0], *DAYS[2:]]


def test_a_failing_range_transform_is_run_again_one_day_at_a_time(notebooks, tmp_path):
    fake = notebooks(statuses={("02_transform", DAYS[3]): "error"})
    layout, results = _run(tmp_path)
    transforms = [(first, last) for nb, first, last in fake.ran if nb == "02_transform"]
    assert transforms == [(DAYS[0], DAYS[-1]), *((d, d) for d in DAYS)]
    assert fake.published == [*DAYS[:3], DAYS[4]]
    assert _outcomes(results)[3] == (DAYS[3].isoformat(), runner.EXIT_TRANSFORM, False)
    assert [s.stage for s in results[3].stages] == ["01_data_quality", "02_transform"]
    assert [len(r.stages) for r in results] == [3, 3, 3, 2, 3]


def test_an_audit_that_crashes_on_a_day_quarantines_it_and_goes_on(notebooks, tmp_path):
    fake = notebooks(statuses={("04_monitoring", DAYS[1]): "crash"})
    layout, results = _run(tmp_path)
    assert results[1].exit_code == runner.EXIT_MONITORING and not results[1].published
    assert "04_monitoring failed" in results[1].reason
    assert Path(results[1].quarantine_path).parent == layout.quarantine
    assert fake.published == [DAYS[0], DAYS[0], *DAYS[2:]]


def test_an_interrupt_kills_the_running_notebook_and_keeps_what_was_published_with_its_summaries(
    notebooks, tmp_path, monkeypatch
):
    """Ctrl-C reaches the runner's thread as KeyboardInterrupt while it waits for the pass (a real
    SIGINT on `puffy run` over the 14 real days was checked by hand: exit 130 in ~1 s)."""
    fake = notebooks(interrupt_on=DAYS[2])
    _NoKernel.killed.clear()
    done_within = runner._done_within

    def interrupted(future, seconds):
        if fake.ctrl_c.wait(0.01):
            raise KeyboardInterrupt
        return done_within(future, 0.05)

    monkeypatch.setattr(runner, "_done_within", interrupted)
    layout = runner.RunLayout(tmp_path / "outputs", tmp_path / "raw", tmp_path / "params")
    with pytest.raises(KeyboardInterrupt):
        runner.run_range_one_pass(DAYS[0], DAYS[-1], layout, progress=False)
    assert fake.published == DAYS[:2]
    assert [(nb, first) for nb, first, _ in fake.ran] == [
        (n, DAYS[0]) for n in ("01_data_quality", "02_transform", "04_monitoring")
    ]
    for day in DAYS[:2]:
        assert json.loads((layout.run_dir(day) / "run_summary.json").read_text())["published"]
    for day in DAYS[2:]:  # nothing of them failed: no summary, no quarantine
        assert not (layout.run_dir(day) / "run_summary.json").exists()
        assert not (layout.run_dir(day) / "quarantine_path.txt").exists()
    assert not list((layout.outputs_dir / "staging").rglob("*.parquet"))


def test_a_segment_holds_at_most_the_event_budget_and_a_larger_day_goes_alone(notebooks, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "ONE_PASS_MAX_EVENTS", 25)
    fake = notebooks(events={DAYS[3]: 30})
    _run(tmp_path)
    transforms = [(first, last) for nb, first, last in fake.ran if nb == "02_transform"]
    assert transforms == [(DAYS[0], DAYS[1]), (DAYS[2], DAYS[2]), (DAYS[3], DAYS[3]), (DAYS[4], DAYS[4])]
    assert fake.published == DAYS


def test_a_pass_alerts_once_for_all_its_days_and_each_day_keeps_its_alert_document(notebooks, tmp_path, monkeypatch):
    from support.webhook import local_webhook

    notebooks(statuses={("04_monitoring", DAYS[1]): "error", ("01_data_quality", DAYS[3]): "error"})
    with local_webhook() as (url, received):
        monkeypatch.setenv("PUFFY_ALERT_WEBHOOK_URL", url)
        layout, results = _run(tmp_path)
    assert len(received) == 1  # not one per day
    digest = received[0]["body"]["text"]
    assert f"• {DAYS[1]} quarantined at 04_monitoring (exit 5)" in digest
    assert f"• {DAYS[3]} stopped at 01_data_quality (exit 3)" in digest
    pass_dir = layout.outputs_dir / "runs" / "backfills" / f"{DAYS[0]}_{DAYS[-1]}"
    assert json.loads((pass_dir / "alert.json").read_text())["schema"] == "puffy.alert-digest/1"
    for day in (DAYS[1], DAYS[3]):
        assert json.loads((layout.run_dir(day) / "alert.json").read_text())["date"] == day.isoformat()
        summary = json.loads((layout.run_dir(day) / "run_summary.json").read_text())
        assert summary["alert"]["sent"] is True and "digest" in summary["alert"]["detail"]


def test_split_staging_moves_each_partition_to_its_days_staging_warehouse(tmp_path):
    layout = runner.RunLayout(tmp_path / "outputs", tmp_path / "raw", tmp_path / "params")
    staging = tmp_path / "range"
    parts = {
        ("fct_sessions", DAYS[0] - timedelta(days=1)): DAYS[0],  # the rewritten day before goes with the first
        ("fct_sessions", DAYS[0]): DAYS[0],
        ("fct_sessions", DAYS[1]): DAYS[1],
        ("fct_orders", DAYS[1]): DAYS[1],
        ("rpt_reconciliation", DAYS[1]): DAYS[1],
    }
    for table, day in parts:
        (staging / table / f"date={day}").mkdir(parents=True)
        (staging / table / f"date={day}" / "part-0.parquet").write_text(f"{table} {day}")
    backfill.split_staging(staging, layout, DAYS[:2])
    for (table, day), owner in parts.items():
        moved = layout.staging_warehouse(owner) / table / f"date={day}" / "part-0.parquet"
        assert moved.read_text() == f"{table} {day}"
    assert not list(staging.rglob("*.parquet"))
