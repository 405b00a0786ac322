"""What a scheduled run leaves for people (issue 19): the project root it names, its log file, a quiet
stderr, stdout without placeholders, crash logs where the outputs are, and the alert of a stopped day.
Each test failed before its fix (noted per test)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT
from puffy import runner
from puffy.cli import main
from puffy.params import find_project_root
from puffy.runlog import configure_console, run_log


def _checkout(root: Path) -> Path:
    (root / "params").mkdir(parents=True)
    (root / "notebooks").mkdir()
    return root


# --- the project root -----------------------------------------------------------------------------


def test_the_project_root_comes_from_the_working_directory_not_the_install(tmp_path):
    """Before: REPO_ROOT was where the package is installed, so a second checkout used the first's
    params/ and outputs/."""
    second = _checkout(tmp_path / "second")
    (second / "notebooks" / "sub").mkdir()
    for cwd in (second, second / "notebooks", second / "notebooks" / "sub"):
        root = find_project_root(cwd=cwd, environ={})
        assert (root.path, root.source) == (second.resolve(), "from the working directory")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from puffy.params import REPO_ROOT, DEFAULT_PARAMS_DIR;print(REPO_ROOT); print(DEFAULT_PARAMS_DIR)",
        ],
        cwd=second / "notebooks",
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.split() == [str(second.resolve()), str(second.resolve() / "params")]


def test_puffy_home_wins_and_a_bad_one_is_one_line(tmp_path):
    home = _checkout(tmp_path / "home")
    elsewhere = _checkout(tmp_path / "elsewhere")
    root = find_project_root(cwd=elsewhere, environ={"PUFFY_HOME": str(home)})
    assert (root.path, root.source, root.problem) == (home.resolve(), "from PUFFY_HOME", None)
    bad = find_project_root(cwd=elsewhere, environ={"PUFFY_HOME": str(tmp_path / "nope")})
    assert bad.problem.startswith(f"PUFFY_HOME={tmp_path / 'nope'}: not a puffy project")
    done = subprocess.run(
        [sys.executable, "-m", "puffy.cli", "run", "--date", "2025-03-01"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PUFFY_HOME": str(tmp_path / "nope")},
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not a puffy project" in done.stderr


def test_outside_any_checkout_the_installed_one_is_used_and_said(tmp_path):
    root = find_project_root(cwd=tmp_path, environ={})
    assert root.path == REPO_ROOT and "the package's checkout" in root.describe()


# --- stdout, the run log, crash logs ---------------------------------------------------------------


def _raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events_20250301.csv").write_text("x\n")  # only the name matters: run_range is replaced
    return raw


def test_run_prints_each_days_report_directory_and_its_log(tmp_path, capsys, monkeypatch):
    """Before: stdout printed the literal 'reports: …/runs/<date>/' and there was no log file."""

    def run_range(start, end, layout, **kw):
        logging.getLogger("puffy.run").info("%s 01_data_quality: ERROR in 1.0s", start)
        return [
            runner.DayResult(
                "2025-03-01",
                3,
                "01_data_quality",
                "1 error finding(s): schema.x",
                alert={"sent": True, "detail": "HTTP 200", "outcome": "stopped"},
            )
        ]

    monkeypatch.setattr(runner, "run_range", run_range)
    outputs = (tmp_path / "real").resolve()
    code = main(["run", "--date", "2025-03-01", "--input-dir", str(_raw(tmp_path)), "--outputs-dir", str(outputs)])
    out = capsys.readouterr().out
    assert code == 3
    assert "<date>" not in out
    assert out.splitlines()[:2] == [
        "2025-03-01  exit 3  stopped at 01_data_quality: 1 error finding(s): schema.x  (alert sent)",
        f"            reports: {outputs / 'runs' / '2025-03-01'}",
    ]
    logs = list((outputs / "logs").glob("run-2025-03-01-*.log"))
    assert len(logs) == 1 and f"log: {logs[0]}" in out
    text = logs[0].read_text()
    assert "puffy run 2025-03-01: project root " in text.splitlines()[0]
    assert "2025-03-01 01_data_quality: ERROR" in text and "puffy run 2025-03-01: exit 3" in text


def test_a_crash_is_logged_under_the_chosen_outputs_dir(tmp_path, capsys, monkeypatch):
    """Before: the traceback went to <repo>/outputs/logs whatever --outputs-dir said."""

    def run_range(*a, **kw):
        raise RuntimeError("boom")

    monkeypatch.setattr(runner, "run_range", run_range)
    before = (
        set((REPO_ROOT / "outputs" / "logs").glob("crash-*")) if (REPO_ROOT / "outputs" / "logs").is_dir() else set()
    )
    outputs = (tmp_path / "elsewhere").resolve()
    assert main(["run", "--date", "2025-03-01", "--input-dir", str(_raw(tmp_path)), "--outputs-dir", str(outputs)]) == 1
    err = capsys.readouterr().err
    crash = list((outputs / "logs").glob("crash-*.log"))
    assert len(crash) == 1 and f"(traceback in {crash[0]})" in err and "Traceback" not in err
    assert "RuntimeError: boom" in crash[0].read_text()
    run_log_text = next((outputs / "logs").glob("run-*.log")).read_text()
    assert "the run crashed" in run_log_text and "RuntimeError: boom" in run_log_text
    now = set((REPO_ROOT / "outputs" / "logs").glob("crash-*")) if (REPO_ROOT / "outputs" / "logs").is_dir() else set()
    assert now == before


# --- a quiet, readable stderr ----------------------------------------------------------------------


def test_stderr_keeps_puffys_lines_and_drops_the_tools_chatter(tmp_path, capsys):
    """Before: every notebook added papermill's four INFO lines and nbconvert's alt-text WARNING."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_console(verbose=False)
        with run_log(tmp_path, "x") as path:
            logging.getLogger("papermill").info("Input Notebook:  /x/01_data_quality.ipynb")
            logging.getLogger("traitlets").warning("Alternative text is missing on 1 image(s).")
            logging.getLogger("papermill").warning("Passed unknown parameter: bogus")
            logging.getLogger("puffy.run").info("2025-03-01 01_data_quality: PASS in 9.0s")
        err = capsys.readouterr().err
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    assert "Input Notebook" not in err and "Alternative text" not in err
    assert "Passed unknown parameter" in err and "01_data_quality: PASS" in err
    assert err.splitlines()[-1].split(" ", 1)[1] == "INFO 2025-03-01 01_data_quality: PASS in 9.0s"
    logged = path.read_text()
    assert "Input Notebook" in logged and "Alternative text" in logged  # kept, in the log


def test_kernels_talk_over_ipc_not_tcp():
    """ipykernel warned 'running over TCP without encryption' on stderr once per notebook."""
    km = runner.quiet_shutdown_kernel_manager()(kernel_name="python3")
    assert km.transport == "ipc" and Path(km.ip).parent.stat().st_mode & 0o077 == 0


def test_the_backfill_progress_bar_is_only_for_a_terminal(tmp_path, capsys, monkeypatch):
    """Before: a scheduler's log got the bar's carriage-return updates."""
    monkeypatch.setattr(runner, "_run_day", lambda day, layout, order, i: runner.DayResult(day.isoformat()))
    monkeypatch.setattr(runner, "write_index", lambda outputs: None)
    layout = runner.RunLayout(tmp_path, tmp_path / "raw", tmp_path / "params")
    runner.run_range(date(2025, 3, 1), date(2025, 3, 3), layout)  # stderr is not a terminal under pytest
    assert "puffy run" not in capsys.readouterr().err
    runner.run_range(date(2025, 3, 1), date(2025, 3, 3), layout, progress=True)
    assert "puffy run: 100%" in capsys.readouterr().err


# --- end to end: a stopped day, as the scheduler and the on-call person see it --------------------


@pytest.mark.slow
def test_a_gate_error_day_alerts_once_and_stderr_stays_quiet(tmp_path, small_sample):
    from support.webhook import local_webhook

    raw = tmp_path / "raw"
    shutil.copytree(small_sample, raw)
    day_file = raw / "events_20250225.csv"
    lines = day_file.read_text().splitlines()
    day_file.write_text("\n".join([lines[0].replace("event_name", "event_kind")] + lines[1:]))
    params = tmp_path / "params"
    shutil.copytree(REPO_ROOT / "params", params)
    rules = yaml.safe_load((params / "monitoring_rules.yaml").read_text())
    with local_webhook(lifetime=120) as (url, received):
        rules["alert"].update(webhook_url=url, format="json", reports_base_url="https://reports.example.com/puffy")
        (params / "monitoring_rules.yaml").write_text(yaml.safe_dump(rules))
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "puffy.cli",
                "run",
                "--date",
                "2025-02-25",
                "--input-dir",
                str(raw),
                "--outputs-dir",
                str(tmp_path / "out"),
                "--params-dir",
                str(params),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 3, done.stderr
    for noise in ("IPKernelApp", "without encryption", "papermill", "Input Notebook", "Alternative text", "\r"):
        assert noise not in done.stderr
    assert len(received) == 1
    doc = received[0]["body"]
    assert (doc["date"], doc["stage"], doc["exit_code"], doc["outcome"]) == (
        "2025-02-25",
        "01_data_quality",
        3,
        "stopped",
    )
    assert doc["report_url"] == "https://reports.example.com/puffy/runs/2025-02-25/01_data_quality.html"
    assert any(f["severity"] == "error" for f in doc["findings"])
    summary = json.loads((tmp_path / "out" / "runs" / "2025-02-25" / "run_summary.json").read_text())
    assert summary["alert"] == {"sent": True, "detail": "HTTP 200", "outcome": "stopped"}
    log_file = next((tmp_path / "out" / "logs").glob("run-2025-02-25-*.log"))
    assert "papermill" in log_file.read_text() and not (REPO_ROOT / "outputs" / "logs" / log_file.name).exists()


# --- HTML reports: results first, code on demand --------------------------------------------------


def test_a_chart_carries_its_notebooks_text_alternative(tmp_path, caplog):
    """Before: the lab template dropped every image's alt, nbconvert put "No description has been
    provided for this image" in its place and logged a warning on every daily report."""
    import base64
    import logging
    from html.parser import HTMLParser

    import nbformat

    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()

    def image(metadata=None):
        return nbformat.v4.new_output("display_data", data={"image/png": png}, metadata=metadata or {})

    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("plt.show()", outputs=[image()], metadata={"alt": 'Bars "A" & <B>'}),
            nbformat.v4.new_code_cell("Image(x, alt=...)", outputs=[image({"image/png": {"alt": "Funnel"}})]),
        ]
    )
    nbformat.write(nb, tmp_path / "nb.ipynb")
    with caplog.at_level(logging.WARNING):
        html = runner.render_html(tmp_path / "nb.ipynb").read_text()
    alts = []

    class Images(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "img":
                alts.append(dict(attrs).get("alt"))

    Images().feed(html)
    assert alts == ['Bars "A" & <B>', "Funnel"]  # escaped in the HTML, the text itself once parsed
    assert "Alternative text is missing" not in caplog.text


def test_html_reports_show_results_first_and_fold_the_code_under_them(tmp_path):
    """Before: the code was either printed above every result or (the runner) left out altogether,
    with no way to see how a number was made from the report."""
    import nbformat

    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Title"),
            nbformat.v4.new_code_cell(
                "total = 6 * 7\nprint(f'answer {total}')",
                outputs=[nbformat.v4.new_output("stream", name="stdout", text="answer 42\n")],
                execution_count=1,
            ),
            nbformat.v4.new_code_cell("'<script>x</script>'", outputs=[], execution_count=2),
        ]
    )
    nbformat.write(nb, tmp_path / "nb.ipynb")
    html = runner.render_html(tmp_path / "nb.ipynb").read_text()
    assert html.count('<details class="puffy-code">') == 2 and "<details open" not in html
    result, code = html.index("answer 42"), html.index("6</span>")
    assert result < code  # the result, then its folded code
    assert "In&nbsp;[" not in html and "<script>x" not in html
