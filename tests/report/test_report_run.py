"""``run_report`` end to end on a small fixture warehouse: papermill notebook → HTML without code,
1–2 page PDF, kpis, index; and the one-line user errors of ``puffy report``."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date

import nbformat
import pytest

from puffy.cli import main
from puffy.errors import UserError
from puffy.params import REPO_ROOT
from puffy.report import build_report, run_report
from support.report_outputs import FixtureConfig, count_pdf_pages, make_outputs

CONFIG = FixtureConfig(
    seed=4,
    days=7,
    sessions_per_day=300,
    missing_prices_from=date(2025, 3, 7),
    client_id_null_days={date(2025, 3, 4): 0.1},
)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    return make_outputs(tmp_path_factory.mktemp("run_out"), CONFIG)


@pytest.fixture(scope="module")
def result(outputs):
    return run_report(outputs, REPO_ROOT / "params")


def test_report_files_land_in_the_period_folder(outputs, result):
    folder = outputs / "reports" / "2025-03-01_2025-03-07"
    assert result.html == folder / "executive_summary.html" and result.html.exists()
    assert result.pdf == folder / "executive_summary.pdf" and result.pdf.exists()
    assert (folder / "03_executive_analysis.ipynb").exists()
    assert 1 <= count_pdf_pages(result.pdf.read_bytes()) <= 2
    assert result.kpis["pdf_pages"] == count_pdf_pages(result.pdf.read_bytes())


def test_kpis_are_the_period_kpis(outputs, result):
    expected = build_report(outputs, REPO_ROOT / "params").figures.current
    assert result.kpis["revenue"] == pytest.approx(expected["revenue"])
    assert result.kpis["orders"] == expected["orders"]
    assert result.kpis["sessions"] == expected["sessions"]
    assert result.kpis["conversion_rate"] == pytest.approx(expected["conversion_rate"], abs=1e-6)
    assert json.loads((result.pdf.parent / "kpis.json").read_text())["orders"] == expected["orders"]


def test_html_shows_no_code_but_the_whole_story(result):
    html = result.html.read_text(encoding="utf-8")
    # Code is available on demand only (issue 19): folded, closed, under its results.
    assert "<details open" not in html
    html = re.sub(r'<details class="puffy-code">.*?</details>', "", html, flags=re.S)
    body = re.sub(r"<style.*?</style>", "", html, flags=re.S)
    assert "In [" not in body and "In&nbsp;[" not in body
    # nbconvert renders a code input as a CodeMirror editor holding a highlighted source block.
    assert 'class="jp-CodeMirrorEditor' not in body and 'class="highlight' not in body
    for code in ("build_report(", "display(", "import ", "write_outputs("):
        assert code not in html, f"code leaked into the HTML: {code}"
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<style.*?</style>|<script.*?</script>", "", html, flags=re.S))
    for section in (
        "Executive summary",
        "What is working",
        "What is concerning",
        "Recommendations",
        "Daily trend",
        "Channel performance",
        "Funnel by device",
        "New vs returning",
        "Product mix",
        "Data caveats",
        "Supporting statistics",
        "Attribution is not incrementality",
        "geo holdout",
        "audience suppression",
        "branded-search lift test",
        "Every comparison, controlled together",
        "Purchases that skipped steps",
    ):
        assert section in text, section
    assert "Item prices missing" in text and "Client ids missing" in text
    assert "Traceback" not in text and "Warning" not in text


def test_source_notebook_is_thin_parameterized_and_clean():
    nb = nbformat.read(REPO_ROOT / "notebooks" / "03_executive_analysis.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    for name in (
        "start_date = None",
        "end_date = None",
        'outputs_dir = "outputs"',
        'params_dir = "params"',
        "output_dir = None",
    ):
        assert name in code[0].source
    assert all(not c.outputs and c.execution_count is None for c in code), "commit the notebook without outputs"
    assert sum(len(c.source.splitlines()) for c in code) < 80, "logic belongs in lib/puffy/report"


def test_executed_notebook_is_deterministic(outputs, result, tmp_path):
    """Same data, same outputs: a second run into another folder renders the same report."""
    from puffy import runner

    again = runner.execute_notebook(
        "03_executive_analysis",
        tmp_path,
        {
            "start_date": "2025-03-01",
            "end_date": "2025-03-07",
            "outputs_dir": str(outputs),
            "params_dir": str(REPO_ROOT / "params"),
            "output_dir": str(tmp_path),
        },
    )

    def outputs_of(path):
        nb = nbformat.read(path, as_version=4)
        return [o.get("data", o.get("text")) for c in nb.cells if c.cell_type == "code" for o in c.outputs]

    assert outputs_of(again) == outputs_of(result.pdf.parent / "03_executive_analysis.ipynb")


def test_index_lists_the_report(outputs, result):
    index = (outputs / "index.html").read_text(encoding="utf-8")
    assert "reports/2025-03-01_2025-03-07/executive_summary.html" in index
    assert "reports/2025-03-01_2025-03-07/executive_summary.pdf" in index


def test_user_errors_are_one_line(tmp_path, outputs):
    with pytest.raises(UserError, match="no fct_sessions partitions"):
        run_report(tmp_path / "empty", REPO_ROOT / "params")
    with pytest.raises(UserError, match="before start date"):
        run_report(outputs, REPO_ROOT / "params", start=date(2025, 3, 5), end=date(2025, 3, 2))
    assert not (tmp_path / "empty" / "reports").exists()


def test_cli_report_errors_exit_2(tmp_path, outputs, capsys):
    params = tmp_path / "params"
    params.mkdir()
    shutil.copy(REPO_ROOT / "params" / "report.yaml", params / "report.yaml")
    (params / "pipeline.yaml").write_text(f"outputs_dir: {tmp_path / 'nothing'}\n")
    assert main(["report", "--params-dir", str(params)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("puffy report: error:") and "no fct_sessions partitions" in err and "\n" not in err
    (params / "pipeline.yaml").write_text(f"outputs_dir: {outputs}\n")
    assert main(["report", "--params-dir", str(params), "--start", "2025-03-06", "--end", "2025-03-02"]) == 2
    assert "before start date" in capsys.readouterr().err
