"""Errors an analyst can cause in a notebook are one sentence with what to do, like the CLI's (issue 19).
Each test failed before: a raw ValueError traceback for 2025-02-30, "no staged events" without saying
to run 01, "input directory not found" after `puffy sample --out outputs/sample` without saying where
the files went."""

from __future__ import annotations

from datetime import date, datetime

import nbformat
import pytest

from conftest import REPO_ROOT
from puffy.dates import parse_day, parse_instant
from puffy.errors import InputDataError, UserError


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ("", None),
        ("2025-03-08", date(2025, 3, 8)),
        (date(2025, 3, 8), date(2025, 3, 8)),
        (datetime(2025, 3, 8, 6, 30), date(2025, 3, 8)),
        (" 2024-02-29 ", date(2024, 2, 29)),
    ],
)
def test_parse_day_accepts_days(value, expected):
    assert parse_day(value, "run_date") == expected


@pytest.mark.parametrize(
    "value, message",
    [
        # worked by hand: February 2025 has 28 days, February 2024 29 (leap year), April 30
        (
            "2025-02-30",
            "run_date = '2025-02-30' is not a calendar day (2025-02 has 28 days): set run_date in the "
            "parameters cell to a real day, e.g. '2025-02-28'",
        ),
        ("2024-02-30", "(2024-02 has 29 days)"),
        ("2025-04-31", "e.g. '2025-04-30'"),
        ("2025-13-01", "run_date = '2025-13-01' is not a day in YYYY-MM-DD form"),
        ("03/08/2025", "run_date = '03/08/2025' is not a day in YYYY-MM-DD form: set run_date in the parameters cell"),
        (20250308, "run_date = 20250308 is not a day in YYYY-MM-DD form"),
    ],
)
def test_parse_day_refuses_with_one_sentence(value, message):
    with pytest.raises(UserError) as err:
        parse_day(value, "run_date")
    assert message in str(err.value)


def test_parse_instant():
    assert parse_instant(None) is None and parse_instant("2025-03-09T06:00:00+00:00").hour == 6
    with pytest.raises(UserError, match="now = 'tomorrow' is not an ISO timestamp"):
        parse_instant("tomorrow", "now")


def test_a_user_error_shows_as_one_line_in_ipython():
    """IPython renders an exception through _render_traceback_ when it has one: no library frames."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    result = shell.run_cell("from puffy.errors import UserError\nraise UserError('run_date = 1 is bad: fix it')")
    assert isinstance(result.error_in_exec, UserError)
    assert result.error_in_exec._render_traceback_() == ["UserError: run_date = 1 is bad: fix it"]


def test_transform_on_an_unstaged_day_says_to_run_01_first(tmp_path):
    from puffy.params import DEFAULT_PARAMS_DIR
    from puffy.transform.pipeline import run_transform

    with pytest.raises(InputDataError) as err:
        run_transform(
            tmp_path / "intermediate",
            tmp_path / "warehouse",
            DEFAULT_PARAMS_DIR,
            start=date(2025, 3, 8),
            end=date(2025, 3, 8),
        )
    assert "no staged events for 2025-03-08..2025-03-08; stage them first with notebook 01_data_quality" in str(
        err.value
    )


def test_a_sample_written_one_level_up_is_found_and_named(tmp_path):
    """`puffy sample --out outputs/sample` (as the old hint invited) while the notebooks read
    outputs/sample/raw_events (pipeline.yaml's input_dir)."""
    from puffy.ingest import discover_raw_files

    sample = tmp_path / "sample"
    sample.mkdir()
    (sample / "events_20250223.csv").write_text("x\n")
    with pytest.raises(InputDataError) as err:
        discover_raw_files(sample / "raw_events")
    assert str(err.value) == (
        f"{sample / 'raw_events'}: input directory not found, but {sample} holds "
        f"events_YYYYMMDD.csv files: point input_dir (params/pipeline.yaml, or the notebook's "
        f"input_dir) at {sample}, or write the sample with `puffy sample --out {sample / 'raw_events'}`"
    )
    with pytest.raises(InputDataError, match=f"`puffy sample --out {tmp_path / 'none' / 'raw'}` writes a sample"):
        discover_raw_files(tmp_path / "none" / "raw")


def test_the_default_input_dir_is_where_the_readme_tells_sample_to_write():
    from puffy.params import PipelineParams

    assert PipelineParams().input_dir.as_posix() == "outputs/sample/raw_events"
    readme = (REPO_ROOT / "README.md").read_text()
    assert "puffy sample --out outputs/sample/raw_events" in readme


@pytest.mark.slow
@pytest.mark.parametrize("notebook", ["01_data_quality", "02_transform", "04_monitoring"])
def test_a_bad_run_date_in_a_notebook_is_one_sentence(tmp_path, notebook):
    import papermill as pm

    from puffy import runner

    with pytest.raises(pm.PapermillExecutionError) as err:
        runner.execute_notebook(notebook, tmp_path, {"run_date": "2025-02-30", "output_dir": str(tmp_path)})
    assert err.value.ename == "UserError"
    assert err.value.evalue.startswith("run_date = '2025-02-30' is not a calendar day (2025-02 has 28 days)")
    executed = nbformat.read(tmp_path / f"{notebook}.ipynb", as_version=4)
    errors = [
        o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"
    ]
    assert len(errors) == 1 and len(errors[0].traceback) == 1  # the sentence, no frames


@pytest.mark.slow
def test_02_without_staged_events_says_to_run_01_first(tmp_path):
    import papermill as pm

    from puffy import runner

    with pytest.raises(pm.PapermillExecutionError) as err:
        runner.execute_notebook(
            "02_transform",
            tmp_path,
            {"outputs_dir": str(tmp_path / "nothing_staged"), "warehouse_root": str(tmp_path / "wh")},
        )
    assert err.value.ename == "UserError"
    assert "run 01_data_quality (the gate) first" in err.value.evalue
