"""The PDF: 1–2 pages, built offline by WeasyPrint, showing the period's computed KPIs.

No PDF text extractor is installed (no pypdf, no pdftotext), so the text check is done on the text
WeasyPrint laid out on the PDF's pages (``pdf.document_text``) and on the HTML fed to WeasyPrint;
the page count is checked twice: WeasyPrint's document and the ``/Type /Page`` objects of the
written PDF bytes (object streams inflated).
"""

from __future__ import annotations

import re
from datetime import date

import pytest

from puffy.params import REPO_ROOT
from puffy.report import build_report, write_outputs
from puffy.report.pdf import document_text, kpi_value_text, render, write_pdf
from test_report_fixtures import FixtureConfig, count_pdf_pages, make_outputs

CONFIG = FixtureConfig(seed=3, missing_prices_from=date(2025, 3, 6),
                       client_id_null_days={date(2025, 3, 5): 0.12}, referrer_lost_from=date(2025, 3, 6))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return build_report(make_outputs(tmp_path_factory.mktemp("pdf_out"), CONFIG), REPO_ROOT / "params")


@pytest.fixture(scope="module")
def written(report, tmp_path_factory):
    return write_outputs(report, tmp_path_factory.mktemp("pdf_report"))


def test_pdf_has_one_or_two_pages(written):
    pdf = written["pdf"].read_bytes()
    assert pdf.startswith(b"%PDF-")
    html = written["print_html"].read_text(encoding="utf-8")
    pages = len(render(html).pages)
    assert 1 <= pages <= 2
    assert count_pdf_pages(pdf) == pages


def test_pdf_text_shows_the_period_kpis(report, written):
    fig = report.figures
    laid_out = document_text(render(written["print_html"].read_text(encoding="utf-8")))
    html = written["print_html"].read_text(encoding="utf-8")
    for name, k in fig.kpis.items():
        shown = kpi_value_text(name, k["value"], "$")
        assert shown in laid_out, f"{name} {shown} not on the PDF pages"
        assert shown in html
    # The headline numbers are the period's: recompute them from the tables.
    assert kpi_value_text("revenue", report.data.orders["revenue"].sum(), "$") in laid_out
    assert kpi_value_text("orders", len(report.data.orders), "$") in laid_out
    for heading in ("What is working", "What is concerning", "Recommendations", "Data caveats",
                    "Attribution is not incrementality"):
        assert heading in laid_out
    # Narrative sentences and the sized caveats reach the page.
    assert report.narrative.working[0].text[:40] in " ".join(laid_out.split())


def test_pdf_is_self_contained(written):
    html = written["print_html"].read_text(encoding="utf-8")
    sources = re.findall(r'src="([^"]{0,30})', html)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in html and "https://" not in html


def test_kpis_json_matches_the_figures(report, written):
    import json

    kpis = json.loads(written["kpis"].read_text())
    assert kpis["revenue"] == pytest.approx(report.figures.current["revenue"])
    assert kpis["sessions"] == report.figures.current["sessions"]
    assert kpis["start"] == "2025-03-01" and kpis["end"] == "2025-03-07"
    assert 1 <= kpis["pdf_pages"] <= 2


def test_shorter_layouts_when_the_page_limit_is_tight(report, tmp_path):
    fig = report.figures
    fig.params.pdf_max_pages = 1
    try:
        res = write_pdf(fig, report.narrative, tmp_path / "one.pdf")
    finally:
        fig.params.pdf_max_pages = 2
    assert res.pages == 1 and res.compact
    assert count_pdf_pages((tmp_path / "one.pdf").read_bytes()) == 1
