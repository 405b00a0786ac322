"""The printable summary: a compact HTML page (KPI tiles, three charts, the narrative, the channel
table, the caveats) rendered to a 1–2 page PDF by WeasyPrint — offline, no browser.

The same HTML fragments (tiles, channel table, caveats) are shown in the notebook, so the HTML
report and the PDF cannot disagree. Charts are inline PNG data URIs and the URL fetcher refuses
anything else, so rendering never touches the network.

:func:`write_pdf` lays the page out, counts the pages, and when the result is longer than
``pdf_max_pages`` re-lays it in a compact form (smaller type, fewer rows and items) before giving
up with an error.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from puffy.report import charts
from puffy.report.kpis import Figures
from puffy.report.narrative import (
    ATTRIBUTION_CAVEAT,
    MODEL_LABELS,
    Caveat,
    Narrative,
    count,
    money,
    pct,
    points,
    signed_pct,
    statistics_explained,
)

# Shared by the notebook (screen) and the PDF (print): class names are prefixed to stay out of
# the way of nbconvert's own styles.
FRAGMENT_CSS = """
.px-tiles{display:flex;gap:6px;margin:6px 0 10px 0}
.px-tile{flex:1;border:1px solid #c9d3dd;border-top:3px solid #1f4e79;border-radius:3px;padding:5px 7px;background:#fff}
.px-tile .px-label{font-size:0.78em;color:#52606d;text-transform:uppercase;letter-spacing:.03em}
.px-tile .px-value{font-size:1.45em;font-weight:700;color:#1f2933;margin:1px 0}
.px-tile .px-delta{font-size:0.78em;color:#52606d}
.px-up{color:#1e7b34 !important}.px-down{color:#b42318 !important}
table.px-table{border-collapse:collapse;width:100%;font-size:0.85em;margin:4px 0}
table.px-table th,table.px-table td{padding:2px 5px;border-bottom:1px solid #e4e7eb;text-align:right;white-space:nowrap}
table.px-table th{background:#f1f4f8;font-weight:600;color:#1f2933}
table.px-table th:first-child,table.px-table td:first-child{text-align:left}
table.px-table tr.px-total td{font-weight:700;border-top:1px solid #9aa5b1}
.px-note{font-size:0.85em;color:#3e4c59}
"""

PRINT_CSS = """
@page { size: __PAGE_SIZE__; margin: 11mm 12mm 12mm 12mm;
  @bottom-left { content: "Puffy — executive summary __PERIOD__"; font: 7pt "DejaVu Sans"; color: #7b8794 }
  @bottom-right { content: "page " counter(page) " of " counter(pages); font: 7pt "DejaVu Sans"; color: #7b8794 } }
html { font-family: "DejaVu Sans", sans-serif; font-size: __FONT__; color: #1f2933; line-height: 1.3 }
h1 { font-size: 1.6em; margin: 0; color: #1f4e79 }
h2 { font-size: 1.08em; margin: 7px 0 3px 0; color: #1f4e79; border-bottom: 1px solid #c9d3dd; padding-bottom: 1px }
p.px-period { margin: 1px 0 0 0; color: #52606d }
ul, ol { margin: 0 0 0 0; padding-left: 14px } li { margin: 0 0 2.5px 0 }
.px-cols { display: flex; gap: 14px } .px-cols > div { flex: 1 }
img { display: block } img.px-wide { width: 100% } .px-pair { display: flex; gap: 8px } .px-pair img { width: 50% }
figure, table, .px-pair { break-inside: avoid; margin: 4px 0 }
.px-small { font-size: 0.86em; color: #3e4c59 } .px-small li { margin-bottom: 1.5px }
""" + FRAGMENT_CSS


# --- fragments ----------------------------------------------------------------------------------

def _delta_html(name: str, k: dict, symbol: str) -> str:
    if k["previous"] is None or k["change"] is None:
        return '<div class="px-delta">no previous period</div>'
    up = k["change"] > 0
    arrow = "▲" if up else ("▼" if k["change"] < 0 else "■")
    cls = "px-up" if up else ("px-down" if k["change"] < 0 else "")
    if name == "conversion_rate":
        change, prev = points(k["change"]), pct(k["previous"], 2)
    else:
        change = signed_pct(k["change_pct"])
        prev = money(k["previous"], symbol) if name in ("revenue", "aov") else count(k["previous"])
    return f'<div class="px-delta"><span class="{cls}">{arrow} {html.escape(change)}</span> vs {html.escape(prev)}</div>'


def kpi_value_text(name: str, value: float, symbol: str) -> str:
    """How a headline KPI is printed on its tile (tests look for exactly this text)."""
    if name == "revenue":
        return money(value, symbol)
    if name == "aov":
        return money(value, symbol, cents=True)
    if name == "conversion_rate":
        return pct(value, 2)
    return count(value)


def kpi_tiles_html(fig: Figures) -> str:
    """Five tiles: revenue, orders, AOV, sessions, conversion rate, each with its change."""
    sym = fig.params.currency_symbol
    tiles = []
    for name, k in fig.kpis.items():
        tiles.append(
            f'<div class="px-tile"><div class="px-label">{html.escape(k["label"])}</div>'
            f'<div class="px-value">{html.escape(kpi_value_text(name, k["value"], sym))}</div>'
            f'{_delta_html(name, k, sym)}</div>')
    return '<div class="px-tiles">' + "".join(tiles) + "</div>"


def narrative_html(narrative: Narrative, two_columns: bool = True) -> str:
    def items(stmts, tag="ul"):
        body = "".join(f"<li>{html.escape(s.text)}</li>" for s in stmts) or "<li>Nothing to report.</li>"
        return f"<{tag}>{body}</{tag}>"
    left = f"<h2>What is working</h2>{items(narrative.working)}<h2>What is concerning</h2>{items(narrative.concerning)}"
    right = f"<h2>Recommendations</h2>{items(narrative.recommendations, 'ol')}"
    if two_columns:
        return f'<div class="px-cols"><div>{left}</div><div>{right}</div></div>'
    return left + right


def channel_rows(fig: Figures, models: list[str], max_channels: int | None) -> pd.DataFrame:
    """Channels by sessions (the rest summed into "Other") with the chosen models' columns."""
    ch = fig.channels.copy()
    models = [m for m in models if f"revenue_{m}" in ch.columns]
    keep = ["sessions", "purchasing_sessions", "conversion_rate", "ci_low", "ci_high"]
    keep += [f"orders_{m}" for m in models] + [f"revenue_{m}" for m in models]
    ch = ch[keep]
    if max_channels is not None and len(ch) > max_channels:
        head, rest = ch.iloc[: max_channels - 1], ch.iloc[max_channels - 1:]
        other = rest.sum(numeric_only=True)
        from puffy.report.stats import wilson_interval
        w = wilson_interval(int(other["purchasing_sessions"]), int(other["sessions"]), fig.params.confidence_level)
        other["conversion_rate"], other["ci_low"], other["ci_high"] = w.rate, w.low, w.high
        ch = pd.concat([head, pd.DataFrame([other], index=[f"Other ({len(rest)})"])])
    return ch


def channel_table_html(fig: Figures, models: list[str], max_channels: int | None = None) -> str:
    """Channel performance, side by side under the given attribution models."""
    sym = fig.params.currency_symbol
    models = [m for m in models if f"revenue_{m}" in fig.channels.columns]
    ch = channel_rows(fig, models, max_channels)
    head = ("<tr><th>Channel</th><th>Sessions</th><th>Conversion (95% range)</th>"
            + "".join(f"<th>Orders<br>{html.escape(MODEL_LABELS[m])}</th>" for m in models[:1])
            + "".join(f"<th>Revenue<br>{html.escape(MODEL_LABELS[m])}</th>" for m in models) + "</tr>")
    rows = []
    for name, r in ch.iterrows():
        conv = "n/a" if math.isnan(r["conversion_rate"]) else (
            f"{pct(r['conversion_rate'], 2)} ({pct(r['ci_low'], 1)}–{pct(r['ci_high'], 1)})")
        cells = [html.escape(str(name)), count(r["sessions"]), conv]
        cells += [f"{r[f'orders_{m}']:,.1f}" for m in models[:1]]
        cells += [money(r[f"revenue_{m}"], sym) for m in models]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    tot = fig.current
    total_cells = ["Total", count(tot["sessions"]), pct(tot["conversion_rate"], 2)]
    total_cells += [f"{fig.channels[f'orders_{m}'].sum():,.1f}" for m in models[:1]]
    total_cells += [money(fig.channels[f"revenue_{m}"].sum(), sym) for m in models]
    rows.append('<tr class="px-total">' + "".join(f"<td>{c}</td>" for c in total_cells) + "</tr>")
    return f'<table class="px-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def caveats_html(caveats: list[Caveat], limit: int | None = None) -> str:
    if not caveats:
        return "<p>No data-quality problem was flagged for this period.</p>"
    shown = caveats if limit is None else caveats[:limit]
    more = "" if limit is None or len(caveats) <= limit else (
        f"<li>{len(caveats) - limit} smaller caveat(s) in the HTML report.</li>")
    return "<ul>" + "".join(
        f"<li><b>{html.escape(c.title)}</b> — {html.escape(c.text)}</li>" for c in shown) + more + "</ul>"


def period_text(fig: Figures) -> str:
    """"23 Feb 2025 – 8 Mar 2025 (14 days)" plus what it is compared with."""
    p = fig.period
    main = f"{p.start:%-d %b %Y} – {p.end:%-d %b %Y} ({p.days} days)"
    if fig.previous is not None:
        return main + f" · compared with {p.previous_start:%-d %b} – {p.previous_end:%-d %b %Y}"
    return main + " · no complete previous period in the warehouse to compare with"


# --- the print page -----------------------------------------------------------------------------

@dataclass
class Layout:
    """Knobs the compact retry turns down."""

    font: str = "8.4pt"
    max_items: int = 4
    max_channels: int = 8
    caveats: int | None = 6
    stats_notes: bool = True
    chart_height: float = 2.5


COMPACT = Layout(font="7.6pt", max_items=3, max_channels=6, caveats=4, stats_notes=False, chart_height=2.2)


def print_html(fig: Figures, narrative: Narrative, layout: Layout = Layout()) -> str:
    """The complete, self-contained HTML that WeasyPrint turns into the PDF."""
    p = fig.params
    dpi = p.chart_dpi
    max_channels = min(layout.max_channels, p.pdf_channels)
    trim = Narrative(narrative.working[: layout.max_items], narrative.concerning[: layout.max_items],
                     narrative.recommendations[: layout.max_items + 1])
    trend = charts.data_uri(charts.trend_chart(fig.daily, fig.trends, p.currency_symbol, height=layout.chart_height), dpi)
    conv = charts.data_uri(charts.channel_conversion_chart(fig.channels, fig.current["conversion_rate"],
                                                           max_channels=max_channels + 2,
                                                           height=layout.chart_height + 0.4), dpi)
    funnel = charts.data_uri(charts.funnel_chart(fig.funnel, height=layout.chart_height + 0.4), dpi)
    notes = ""
    if layout.stats_notes:
        notes = ("<h2>Reading the statistics</h2><ul class='px-small'>"
                 + "".join(f"<li>{html.escape(n)}</li>" for n in statistics_explained(fig)) + "</ul>")
    css = (PRINT_CSS.replace("__PAGE_SIZE__", p.pdf_page_size).replace("__FONT__", layout.font)
           .replace("__PERIOD__", f"{fig.period.start.isoformat()} to {fig.period.end.isoformat()}"))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Executive summary {fig.period.label}</title>
<style>{css}</style></head><body>
<h1>Executive summary</h1>
<p class="px-period">{html.escape(period_text(fig))}</p>
{kpi_tiles_html(fig)}
{narrative_html(trim)}
<figure><img class="px-wide" src="{trend}" alt="Daily revenue, orders and sessions"></figure>
<h2>Channels — sessions, conversion and the revenue each attribution model credits</h2>
{channel_table_html(fig, p.pdf_attribution_models, max_channels)}
<p class="px-note px-small">{html.escape(ATTRIBUTION_CAVEAT)}</p>
<div class="px-pair"><img src="{conv}" alt="Conversion by channel"><img src="{funnel}" alt="Funnel by device"></div>
<h2>Data caveats</h2>
<div class="px-small">{caveats_html(fig.caveats, layout.caveats)}</div>
{notes}
</body></html>
"""


def render(html_text: str):
    """Lay ``html_text`` out with WeasyPrint; returns the ``weasyprint.Document`` (pages are known).

    Only inline ``data:`` URLs may be fetched, and a failing fetch stops the rendering: the PDF
    builds without a network and never silently misses a chart.
    """
    import weasyprint
    from weasyprint.urls import URLFetcher

    fetcher = URLFetcher(allowed_protocols={"data"}, fail_on_errors=True)
    return weasyprint.HTML(string=html_text, base_url=None, url_fetcher=fetcher).render()


def document_text(document) -> str:
    """The text laid out on the document's pages, in reading order (what the PDF shows).

    Used by the tests in place of a PDF text extractor (none is installed): it is the same text
    WeasyPrint writes into the PDF.
    """
    def walk(box):
        text = getattr(box, "text", None)
        if isinstance(text, str):
            yield text
        for child in getattr(box, "children", []) or []:
            yield from walk(child)
    return " ".join(" ".join(walk(page._page_box)) for page in document.pages)


@dataclass
class PdfResult:
    path: Path
    pages: int
    compact: bool
    html: str


def write_pdf(fig: Figures, narrative: Narrative, path: Path) -> PdfResult:
    """Render the print page to ``path``; retry compact when longer than ``pdf_max_pages``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    limit = fig.params.pdf_max_pages
    for compact, layout in ((False, Layout()), (True, COMPACT)):
        text = print_html(fig, narrative, layout)
        doc = render(text)
        if len(doc.pages) <= limit:
            tmp = path.with_suffix(".pdf.tmp")
            doc.write_pdf(tmp)
            tmp.replace(path)
            return PdfResult(path, len(doc.pages), compact, text)
    raise RuntimeError(f"the executive summary needs {len(doc.pages)} pages even in its compact layout "
                       f"(limit {limit}); shorten params/report.yaml lists (pdf_channels, top_products)")
