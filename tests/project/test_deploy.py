"""deploy/: the cron line, the systemd service + timer and the Airflow DAG run the real daily command.

Each scheduler's command is executed here as that scheduler would expand it (cron's \\%, systemd's
%% and $$, Airflow's {{ ds }}), against a scratch checkout whose input directory is empty: the
pipeline must answer exit 2, "no raw file for <the date the scheduler meant>". That proves the
command, its flags and its date arithmetic are real without running a day. Airflow is not
installed: the DAG is parsed (ast) and its task's command rendered with Jinja.
"""

from __future__ import annotations

import ast
import configparser
import os
import shlex
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT
from puffy.cli import build_parser

DEPLOY = REPO_ROOT / "deploy"
CHECKOUT = "/srv/puffy"  # where the deploy files expect the checkout


@pytest.fixture()
def scratch_checkout(tmp_path) -> Path:
    """A checkout whose pipeline reads an empty input directory (nothing can run a day)."""
    home = tmp_path / "puffy"
    shutil.copytree(REPO_ROOT / "params", home / "params")
    (home / "notebooks").mkdir()
    (home / ".venv").symlink_to(REPO_ROOT / ".venv")
    pipeline = yaml.safe_load((home / "params" / "pipeline.yaml").read_text())
    pipeline.update(input_dir=str(tmp_path / "raw"), outputs_dir=str(tmp_path / "outputs"))
    (home / "params" / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    (tmp_path / "raw").mkdir()
    return home


def _yesterday_utc() -> str:
    return (datetime.now(UTC) - timedelta(days=1)).date().isoformat()


def _expect_the_day_was_asked_for(done: subprocess.CompletedProcess, day: str, home: Path) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"puffy run: error: {home.parent / 'raw'}: no raw file for {day} (events_{day.replace('-', '')}.csv)"
    )


def _puffy_args(command: str) -> list[str]:
    """The arguments after `puffy` in a shell command line (dates already substituted)."""
    words = shlex.split(command)
    at = next(i for i, w in enumerate(words) if w.endswith("bin/puffy") or w == "puffy")
    return words[at + 1 :]


def test_the_cron_line_runs_yesterdays_day(scratch_checkout):
    lines = [ln for ln in (DEPLOY / "puffy.cron").read_text().splitlines() if ln and not ln.startswith("#")]
    jobs = [ln for ln in lines if not ln.split()[0].isupper() and "=" not in ln.split()[0]]
    assert len(jobs) == 1
    fields = jobs[0].split(None, 5)
    assert fields[:5] == ["30", "6", "*", "*", "*"]
    command = fields[5]
    assert "%" not in command.replace("\\%", ""), "a bare % ends a cron command"
    as_cron_runs_it = command.replace("\\%", "%").replace(CHECKOUT, str(scratch_checkout))
    done = subprocess.run(
        ["/bin/sh", "-c", as_cron_runs_it],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(scratch_checkout.parent)},
    )
    _expect_the_day_was_asked_for(done, _yesterday_utc(), scratch_checkout)


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str
    unit.read(DEPLOY / name)
    return unit


def test_the_systemd_timer_starts_the_service_daily():
    timer = _unit("puffy-daily.timer")
    assert timer["Timer"]["OnCalendar"] == "*-*-* 06:30:00 UTC"
    assert timer["Timer"]["Persistent"] == "true" and timer["Timer"]["Unit"] == "puffy-daily.service"
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_the_systemd_service_runs_yesterdays_day(scratch_checkout):
    service = _unit("puffy-daily.service")["Service"]
    assert service["Type"] == "oneshot" and service["Environment"] == f"PUFFY_HOME={CHECKOUT}"
    exec_start = service["ExecStart"]
    # systemd's own expansion: %% is a literal %, $$ a literal $; a lone % or $ would be a specifier
    assert "%" not in exec_start.replace("%%", "") and "$" not in exec_start.replace("$$", "")
    argv = shlex.split(exec_start.replace("%%", "%").replace("$$", "$").replace(CHECKOUT, str(scratch_checkout)))
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=scratch_checkout,
        env={"PATH": "/usr/bin:/bin", "PUFFY_HOME": str(scratch_checkout)},
    )
    _expect_the_day_was_asked_for(done, _yesterday_utc(), scratch_checkout)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_units(tmp_path):
    """systemd's own checker (specifiers, keys, the timer's calendar), with the paths of this machine."""
    user = os.environ.get("USER") or "root"
    for name in ("puffy-daily.service", "puffy-daily.timer"):
        text = (DEPLOY / name).read_text().replace(CHECKOUT, str(REPO_ROOT))
        text = text.replace("User=puffy", f"User={user}").replace("Group=puffy", "Group=root")
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "puffy-daily.service"), str(tmp_path / "puffy-daily.timer")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "puffy-daily" not in done.stderr, done.stderr  # no complaint about our units


def _dag_task() -> tuple[ast.Module, dict]:
    tree = ast.parse((DEPLOY / "puffy_daily_dag.py").read_text())  # Airflow is not installed: parse only
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "BashOperator"]
    assert len(calls) == 1
    return tree, {k.arg: k.value for k in calls[0].keywords}


def test_the_airflow_dag_parses_and_runs_the_logical_days_command(scratch_checkout):
    from jinja2 import Template

    tree, task = _dag_task()
    dag_call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "DAG")
    dag = {k.arg: k.value for k in dag_call.keywords}
    assert ast.literal_eval(dag["dag_id"]) == "puffy_daily" and ast.literal_eval(dag["schedule"]) == "30 6 * * *"
    assert ast.literal_eval(dag["max_active_runs"]) == 1  # one run per outputs directory
    command = ast.literal_eval(task["bash_command"])
    assert "puffy run --date {{ ds }}" in command
    rendered = Template(command).render(ds="2025-03-08", params={"puffy_home": str(scratch_checkout)})
    assert build_parser().parse_args(_puffy_args(rendered)).date == date(2025, 3, 8)
    done = subprocess.run(
        ["/bin/bash", "-c", rendered],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PUFFY_HOME": str(scratch_checkout)},
    )
    _expect_the_day_was_asked_for(done, "2025-03-08", scratch_checkout)
