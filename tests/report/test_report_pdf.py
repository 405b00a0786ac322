"""The PDF: 1–2 pages, built offline by WeasyPrint, showing the period's computed KPIs.

No PDF text extractor is installed (no pypdf, no pdftotext), so the text check is done on the text
WeasyPrint laid out on the PDF's pages (``pdf.document_text``) and on the HTML fed to WeasyPrint;
the page count is checked twice: WeasyPrint's document and the ``/Type /Page`` objects of the
written PDF bytes (object streams inflated).
"""

from __future__ import annotations

import re
from datetime import date
from types import SimpleNamespace

import pandas as pd
import pytest

from puffy.params import REPO_ROOT
from puffy.report import build_report, charts, write_outputs
from puffy.report.data import ReportParams
from puffy.report.narrative import Narrative, Statement
from puffy.report.pdf import (
    LAYOUTS,
    channel_table_html,
    document_text,
    kpi_value_text,
    named_channels,
    print_html,
    products_table_html,
    render,
    write_pdf,
)
from support.report_outputs import FixtureConfig, count_pdf_pages, make_outputs

CONFIG = FixtureConfig(
    seed=3,
    missing_prices_from=date(2025, 3, 6),
    client_id_null_days={date(2025, 3, 5): 0.12},
    referrer_lost_from=date(2025, 3, 6),
)


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
    for heading in (
        "What moved",
        "What is working",
        "What is concerning",
        "Recommendations",
        "Other data caveats",
        "Attribution is not incrementality",
    ):
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


# --- the channel table on small hand-built figures ------------------------------------------------


def _channels_fig(rows: dict) -> SimpleNamespace:
    """Channels indexed by name: sessions, purchasing sessions, then orders / revenue of last click
    (whole orders) and Markov (shared orders)."""
    cols = [
        "sessions",
        "purchasing_sessions",
        "orders_last_click",
        "orders_markov",
        "revenue_last_click",
        "revenue_markov",
    ]
    ch = pd.DataFrame.from_dict(rows, orient="index", columns=cols)
    ch["conversion_rate"] = ch["purchasing_sessions"] / ch["sessions"]
    ch["ci_low"], ch["ci_high"] = ch["conversion_rate"] * 0.8, ch["conversion_rate"] * 1.2
    current = {
        "sessions": int(ch["sessions"].sum()),
        "conversion_rate": ch["purchasing_sessions"].sum() / ch["sessions"].sum(),
    }
    return SimpleNamespace(params=ReportParams(), channels=ch, current=current)


def _cells(table: str) -> list[list[str]]:
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table)[1:]]


def test_channel_table_prints_order_counts_as_integers():
    """Last click credits whole orders: 1,200 / 90 / 256, total 1,546 — never "90.0". Markov shares
    orders out (10.5, 3.25, ...): that column keeps its decimals."""
    fig = _channels_fig(
        {
            "Direct": [40000, 1200, 1200.0, 1180.5, 900000.0, 880000.0],
            "Email": [3000, 90, 90.0, 110.25, 70000.0, 80000.0],
            "Paid Search": [20000, 256, 256.0, 255.25, 200000.0, 210000.0],
        }
    )
    rows = _cells(channel_table_html(fig, ["last_click", "markov"]))
    assert [r[3] for r in rows] == ["1,200", "90", "256", "1,546"]  # orders, last click
    assert rows[1][4:] == ["$70,000", "$80,000"]
    orders = _cells(channel_table_html(fig, ["last_click", "markov"], measure="orders"))
    assert [r[3] for r in orders] == ["1,200", "90", "256", "1,546"]
    assert [r[4] for r in orders] == ["1,180.5", "110.2", "255.2", "1,546.0"]


# The columns of _channels_fig: sessions, purchasing sessions, orders and revenue by model.
FIVE_CHANNELS = {
    "Direct": [5000, 100, 100.0, 100.0, 1.0, 1.0],
    "Paid Search": [3000, 50, 50.0, 50.0, 1.0, 1.0],
    "Organic": [400, 5, 5.0, 5.0, 1.0, 1.0],
    "Paid Social": [300, 4, 4.0, 4.0, 1.0, 1.0],
    "Email": [200, 12, 12.0, 12.0, 1.0, 1.0],
}


def test_only_channels_below_the_threshold_are_folded_and_named_ones_never():
    """Five channels (hand-computed shares of 9,000 sessions): Direct 55.6%, Paid Search 33.3%,
    Organic 4.4% keep their rows (>= 3% of sessions); Paid Social (3.3% of sessions) keeps its row
    too. Email (2.2% of sessions, 1 of 5 revenue units... = 20% of revenue) keeps its row on revenue.
    Nothing is folded, whatever max_channels says: a small layout never hides a large channel."""
    fig = _channels_fig(FIVE_CHANNELS)
    rows = _cells(channel_table_html(fig, ["last_click"], max_channels=2))
    assert [r[0] for r in rows] == ["Direct", "Paid Search", "Organic", "Paid Social", "Email", "Total"]
    # With Email's revenue at 1% of the total and Paid Social's sessions at 2.9%, both are below 3%
    # of sessions and of revenue: they are folded, 2 channels, 200 + 260 sessions, 12 + 4 orders.
    small = {
        **FIVE_CHANNELS,
        "Paid Social": [260, 4, 4.0, 4.0, 1.0, 1.0],
        "Email": [200, 12, 12.0, 12.0, 1.0, 1.0],
        "Direct": [5000, 100, 100.0, 100.0, 60.0, 60.0],
        "Paid Search": [3000, 50, 50.0, 50.0, 37.0, 37.0],
    }
    rows = _cells(channel_table_html(_channels_fig(small), ["last_click"]))
    assert [r[0] for r in rows] == ["Direct", "Paid Search", "Organic", "Other (2, each &lt; 3%)", "Total"]
    assert rows[3][1] == "460" and rows[3][3] == "16"
    # A channel the narrative names keeps its row even below the threshold.
    story = Narrative(working=[Statement("channel_high", "Email converts best: 6.00% of its 200 sessions.")])
    keep = named_channels(story, _channels_fig(small).channels.index)
    assert keep == ["Email"]
    rows = _cells(channel_table_html(_channels_fig(small), ["last_click"], keep_channels=keep))
    assert [r[0] for r in rows] == ["Direct", "Paid Search", "Organic", "Paid Social", "Email", "Total"]
    # "Paid Social" is named only as a whole: "Paid Search" alone does not match "Paid Social".
    assert named_channels(Narrative(concerning=[Statement("x", "Paid Search closes sales.")]), fig.channels.index) == [
        "Paid Search"
    ]


def test_a_single_leftover_channel_keeps_its_name():
    """Three channels, room for one row + "Other", and the narrative names Organic and Email: both
    keep their rows, which leaves Direct alone. "Other (1)" would hide Direct for no row saved, so
    Direct (5,000 sessions, 100 orders) shows under its name, in its place by sessions."""
    fig = _channels_fig(
        {
            "Direct": [5000, 100, 100.0, 100.0, 1.0, 1.0],
            "Organic": [400, 5, 5.0, 5.0, 1.0, 1.0],
            "Email": [200, 12, 12.0, 12.0, 1.0, 1.0],
        }
    )
    rows = _cells(channel_table_html(fig, ["last_click"], max_channels=2, keep_channels=["Organic", "Email"]))
    assert [r[0] for r in rows] == ["Direct", "Organic", "Email", "Total"]
    assert rows[0][1] == "5,000" and rows[0][3] == "100"


def test_pdf_page_keeps_the_channels_its_narrative_names(report):
    """On the page itself: with room for 3 channel rows, the smallest channel the narrative names
    still gets its own row."""
    fig = report.figures
    smallest = str(fig.channels.index[-1])
    story = Narrative(working=[Statement("channel_high", f"{smallest} converts best.")])
    fig.params.pdf_channels = 3
    try:
        page = print_html(fig, story, LAYOUTS[-1])
    finally:
        fig.params.pdf_channels = 8
    assert f"<tr><td>{smallest}</td>" in page
    for channel in fig.kept_channels:  # no channel at or above the threshold is folded, even in the digest
        assert f"<tr><td>{channel}</td>" in page


def _chart_channels(chart) -> list[str]:
    """The channel labels of a conversion-by-channel chart, top to bottom."""
    return [t.get_text() for t in chart.axes[0].get_yticklabels()][::-1]


def test_conversion_chart_shows_the_channels_the_narrative_names():
    """Room for the 3 largest channels: Direct, Paid Search, Organic. Email (the smallest) is named,
    so it is drawn too, last by sessions; Paid Search, named and already in, is not drawn twice, and
    Paid Social, not named, stays off."""
    fig = _channels_fig(FIVE_CHANNELS)
    chart = charts.channel_conversion_chart(
        fig.channels, fig.current["conversion_rate"], max_channels=3, keep_channels=["Paid Search", "Email"]
    )
    assert _chart_channels(chart) == ["Direct (5,000)", "Paid Search (3,000)", "Organic (400)", "Email (200)"]
    chart = charts.channel_conversion_chart(fig.channels, fig.current["conversion_rate"], max_channels=3)
    assert _chart_channels(chart) == ["Direct (5,000)", "Paid Search (3,000)", "Organic (400)"]


def test_pdf_chart_shows_the_channels_its_narrative_names(report, monkeypatch):
    """On the page itself: with room for 2 + 2 channels on the chart, the smallest channel the
    narrative names is still drawn."""
    fig = report.figures
    smallest = str(fig.channels.index[-1])
    assert len(fig.channels) > 4 and fig.channels["sessions"].iloc[-1] > 0
    drawn, draw = [], charts.channel_conversion_chart

    def chart(*args, **kwargs):
        out = draw(*args, **kwargs)
        drawn.extend(_chart_channels(out))
        return out

    monkeypatch.setattr(charts, "channel_conversion_chart", chart)
    story = Narrative(working=[Statement("channel_high", f"{smallest} converts best.")])
    fig.params.pdf_channels = 2
    try:
        print_html(fig, story, LAYOUTS[0])
    finally:
        fig.params.pdf_channels = 8
    assert len(drawn) == 5  # the 4 largest, then the named smallest
    assert drawn[-1].startswith(f"{smallest} (")


# --- the product table ----------------------------------------------------------------------------


def test_a_single_leftover_product_keeps_its_name():
    """Three products, room for two: "All other products" would hold Topper alone, so Topper keeps
    its row. With room for one, Pillow and Topper fold: 4 + 1 units, $300 + $100, 30% + 10%."""
    table = pd.DataFrame(
        {"lines": [3, 2, 1], "quantity": [3.0, 4.0, 1.0], "revenue": [600.0, 300.0, 100.0], "share": [0.6, 0.3, 0.1]},
        index=["Mattress", "Pillow", "Topper"],
    )
    fig = SimpleNamespace(params=ReportParams(), products={"table": table, "orders_missing": 0})
    assert _cells(products_table_html(fig, top=2)) == [
        ["Mattress", "3", "$600", "60.0%"],
        ["Pillow", "4", "$300", "30.0%"],
        ["Topper", "1", "$100", "10.0%"],
    ]
    assert _cells(products_table_html(fig, top=1)) == [
        ["Mattress", "3", "$600", "60.0%"],
        ["All other products", "5", "$400", "40.0%"],
    ]
