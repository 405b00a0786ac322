"""The order a backfill keeps when two kernels run its days (``runner._DayOrder``, ``runner._Lane``).

The stages are stand-ins (no kernel, no notebook): each writes its status file and records what it
did, so the tests see exactly which step of which day happened before which.
"""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta

import pytest

from puffy import runner

DAYS = [date(2025, 3, 1) + timedelta(days=n) for n in range(4)]


class _NoKernel:
    """``KernelSession`` without a kernel: the lanes bind it to their threads as they would a kernel."""

    _threads = threading.local()

    @classmethod
    def current(cls):
        return getattr(cls._threads, "session", None)

    def __enter__(self):
        type(self)._threads.session = self
        return self

    def __exit__(self, *exc):
        type(self)._threads.session = None

    def kill(self):
        pass


class _Stages:
    """Stand-in stages: ``statuses[(stage, day)]`` (default pass) is what a stage's status file says.
    The last stage writes its status, runs the runner's per-cell hook, then (with ``linger``) stays
    in its "chart cells" until the next day's transform has started, or 10 s."""

    def __init__(self, statuses=None, linger=False):
        self.statuses = statuses or {}
        self.linger = linger
        self.log: list[tuple[str, date]] = []
        self.changed = threading.Condition()

    def record(self, what: str, day: date) -> None:
        with self.changed:
            self.log.append((what, day))
            self.changed.notify_all()

    def at(self, what: str, day: date) -> int:
        return self.log.index((what, day))

    def execute(self, stage, day, layout, on_cell_executed=None):
        run_dir = layout.run_dir(day)
        if stage is runner.GATE:
            runner.shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.record(f"{stage.notebook} start", day)
        status = self.statuses.get((stage.notebook, day), "pass")
        (run_dir / stage.status_file).write_text(json.dumps({"status": status}))
        if on_cell_executed is not None:
            on_cell_executed(cell=None, cell_index=0, execute_reply=None)
            if self.linger and day != DAYS[-1]:
                with self.changed:
                    self.changed.wait_for(lambda: ("02_transform start", day + timedelta(days=1)) in self.log, 10)
        self.record(f"{stage.notebook} end", day)
        return runner.StageResult(stage.notebook, status, 0.0, str(run_dir / "absent.ipynb"), None, "")


@pytest.fixture
def stages(monkeypatch, tmp_path):
    def install(**kw):
        fake = _Stages(**kw)
        monkeypatch.setattr(runner, "KernelSession", _NoKernel)
        monkeypatch.setattr(runner, "_execute_stage", fake.execute)
        monkeypatch.setattr(runner, "send_alert", lambda result, layout: None)
        monkeypatch.setattr(runner, "write_index", lambda outputs: None)

        def publish(day, staging_wh, layout, result):
            fake.record("published", day)
            result.published = True

        monkeypatch.setattr(runner, "_publish", publish)
        return fake

    return install


def _layout(tmp_path):
    return runner.RunLayout(tmp_path / "outputs", tmp_path / "raw", tmp_path / "params")


def test_each_day_publishes_once_audited_and_the_next_transform_overlaps_the_audits_end(stages, tmp_path):
    fake = stages(linger=True)
    results = runner.run_range(DAYS[0], DAYS[-1], _layout(tmp_path), progress=False)
    assert [r.date for r in results] == [d.isoformat() for d in DAYS]
    assert all(r.published and r.exit_code == runner.EXIT_OK for r in results)
    assert [fake.log.count(("published", d)) for d in DAYS] == [1] * len(DAYS)
    for day, following in zip(DAYS, DAYS[1:]):
        # the next day's gate reads this day's gate report; its transform, this day's published tables
        assert fake.at("01_data_quality end", day) < fake.at("01_data_quality start", following)
        assert fake.at("published", day) < fake.at("02_transform start", following)
        # published as soon as the audit wrote its status: the next transform ran while it finished
        assert fake.at("02_transform start", following) < fake.at("04_monitoring end", day)


def test_a_day_the_audit_fails_is_not_published_and_the_next_day_still_runs(stages, tmp_path):
    fake = stages(statuses={("04_monitoring", DAYS[1]): "error"})
    results = runner.run_range(DAYS[0], DAYS[2], _layout(tmp_path), progress=False)
    assert [(r.date, r.exit_code, r.published) for r in results] == [
        (DAYS[0].isoformat(), runner.EXIT_OK, True),
        (DAYS[1].isoformat(), runner.EXIT_MONITORING, False),
        (DAYS[2].isoformat(), runner.EXIT_OK, True),
    ]
    assert ("published", DAYS[1]) not in fake.log
    assert fake.at("04_monitoring end", DAYS[1]) < fake.at("02_transform start", DAYS[2])


@pytest.mark.parametrize("failing", ["01_data_quality", "02_transform", "04_monitoring"])
def test_stop_on_error_leaves_no_trace_of_the_days_after_the_failing_one(stages, tmp_path, failing):
    fake = stages(statuses={(failing, DAYS[1]): "error"})
    layout = _layout(tmp_path)
    results = runner.run_range(DAYS[0], DAYS[-1], layout, stop_on_error=True, progress=False)
    assert [r.date for r in results] == [DAYS[0].isoformat(), DAYS[1].isoformat()]
    assert results[1].stopped_at == failing and not results[1].published
    assert sorted(p.name for p in (layout.outputs_dir / "runs").iterdir()) == [r.date for r in results]
    assert not any(what.startswith("02_transform") for what, day in fake.log if day > DAYS[1])
    assert not any(day > DAYS[2] for _, day in fake.log)  # at most the next day's gate ran ahead


def test_a_publish_that_fails_inside_the_audit_fails_the_run_not_the_stage(stages, monkeypatch, tmp_path):
    stages()

    def publish(day, staging_wh, layout, result):
        raise OSError("disk full")

    monkeypatch.setattr(runner, "_publish", publish)
    with pytest.raises(OSError, match="disk full"):
        runner.run_range(DAYS[0], DAYS[1], _layout(tmp_path), progress=False)


def test_an_interrupted_backfill_stops_every_kernel_and_starts_no_later_day(stages, monkeypatch, tmp_path):
    """Ctrl-C reaches the runner's thread as KeyboardInterrupt while the lanes run notebooks: both
    kernels are killed (their notebooks fail at once), no later day starts, and it is raised."""
    fake = stages()
    killed = []
    monkeypatch.setattr(_NoKernel, "kill", lambda self: killed.append(self), raising=False)
    execute = fake.execute

    def interrupted_transform(stage, day, layout, on_cell_executed=None):
        if stage.notebook == "02_transform" and day == DAYS[1]:
            raise KeyboardInterrupt
        return execute(stage, day, layout, on_cell_executed)

    monkeypatch.setattr(runner, "_execute_stage", interrupted_transform)
    layout = _layout(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        runner.run_range(DAYS[0], DAYS[-1], layout, progress=False)
    assert len(killed) == 2
    assert not any(day > DAYS[2] for _, day in fake.log)  # at most the next day's gate had started
    assert not (layout.run_dir(DAYS[1]) / "run_summary.json").exists()
