"""The printable summary: a compact HTML page (KPI tiles, three charts, the narrative, the channel
table, the caveats) rendered to a 1–2 page PDF by WeasyPrint — offline, no browser.

The same HTML fragments (tiles, channel table, caveats) are shown in the notebook, so the HTML
report and the PDF cannot disagree. Charts are inline PNG data URIs and the URL fetcher refuses
anything else, so rendering never touches the network.

:func:`write_pdf` lays the page out, counts the pages, and when the result is longer than
``pdf_max_pages`` re-lays it in a compact form (smaller type, fewer rows and items), then as a
one-page digest, before giving up with an error (see ``LAYOUTS``).
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from puffy.report import charts
from puffy.report.kpis import Figures
from puffy.report.narrative import (
    ATTRIBUTION_CAVEAT,
    MODEL_LABELS,
    PAGE_ONE_CAVEATS,
    Caveat,
    Narrative,
    count,
    level_text,
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
table.px-table th{background:#f1f4f8;font-weight:600;color:#1f2933;white-space:normal;vertical-align:bottom}
table.px-table th:first-child,table.px-table td:first-child{text-align:left}
table.px-table tr.px-total td{font-weight:700;border-top:1px solid #9aa5b1}
.px-note{font-size:0.85em;color:#3e4c59}
"""

PRINT_CSS = (
    """
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
p, li { orphans: 2; widows: 2 } .px-note { break-inside: avoid }
"""
    + FRAGMENT_CSS
)


# --- fragments ----------------------------------------------------------------------------------


def _delta_html(name: str, k: dict, symbol: str) -> str:
    """The tile's change and what it compares: the previous period, or the period's last days
    against its first days (``Windows.label``)."""
    base = k.get("base", k["previous"])
    if base is None or k["change"] is None:
        return '<div class="px-delta">no comparison (period too short)</div>'
    up = k["change"] > 0
    arrow = "▲" if up else ("▼" if k["change"] < 0 else "■")
    cls = "px-up" if up else ("px-down" if k["change"] < 0 else "")
    if name == "conversion_rate":
        change, prev = points(k["change"]), pct(base, 2)
    else:
        change = signed_pct(k["change_pct"])
        prev = money(base, symbol) if name in ("revenue", "aov") else count(base)
    basis = k.get("basis")
    what = {"previous": f"vs {prev} previous period", "halves": f"last half vs first ({prev})"}.get(basis, f"vs {prev}")
    return f'<div class="px-delta"><span class="{cls}">{arrow} {html.escape(change)}</span> {html.escape(what)}</div>'


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
            f"{_delta_html(name, k, sym)}</div>"
        )
    return '<div class="px-tiles">' + "".join(tiles) + "</div>"


def narrative_html(narrative: Narrative, two_columns: bool = True) -> str:
    """What moved (full width), then working / concerning beside the recommendations and the
    hypotheses still to test, then the tracking caveats that change a number of this page."""

    def items(stmts, tag="ul"):
        body = "".join(f"<li>{html.escape(s.text)}</li>" for s in stmts) or "<li>Nothing to report.</li>"
        return f"<{tag}>{body}</{tag}>"

    moved = f"<h2>What moved</h2>{items(narrative.moved)}" if narrative.moved else ""
    left = f"<h2>What is working</h2>{items(narrative.working)}<h2>What is concerning</h2>{items(narrative.concerning)}"
    right = f"<h2>Recommendations</h2>{items(narrative.recommendations, 'ol')}"
    if narrative.hypotheses:
        right += f"<h2>Not established — test before acting</h2>{items(narrative.hypotheses)}"
    tracking = ""
    if narrative.tracking:
        tracking = (
            f"<h2>Tracking caveats that change the numbers on this page</h2>"
            f'<div class="px-small">{items(narrative.tracking)}</div>'
        )
    if two_columns:
        return f'{moved}<div class="px-cols"><div>{left}</div><div>{right}</div></div>{tracking}'
    return moved + left + right + tracking


def named_channels(narrative: Narrative, channels) -> list[str]:
    """The channels the narrative's sentences name (whole words, as written in the table)."""
    text = " ".join(s.text for s in narrative.working + narrative.concerning + narrative.recommendations)
    return [str(c) for c in channels if re.search(rf"(?<!\w){re.escape(str(c))}(?!\w)", text)]


def channel_rows(
    fig: Figures, models: list[str], max_channels: int | None = None, keep_channels: list[str] | tuple = ()
) -> pd.DataFrame:
    """Channels by sessions with the chosen models' columns; only channels below ``fold_threshold``
    of sessions *and* of revenue (under every model and identity) may be summed into "Other".

    Direct and Untracked journey always keep their rows (``Figures.kept_channels``), as do the
    channels the narrative names. ``max_channels`` never folds a kept channel: a short layout
    shows fewer rows only by folding more of the small ones. A single small channel keeps its own
    row: it takes the place "Other (1)" would."""
    ch = fig.channels.copy()
    models = [m for m in models if f"revenue_{m}" in ch.columns]
    keep = ["sessions", "purchasing_sessions", "conversion_rate", "ci_low", "ci_high"]
    keep += [c for c in ("credit_low", "credit_high", "credit_configured") if c in ch.columns]
    keep += [f"orders_{m}" for m in models] + [f"revenue_{m}" for m in models]
    ch = ch[keep]
    kept = getattr(fig, "kept_channels", None)
    if kept is None:  # figures built by hand: the rule of kpis.kept_channels on what they hold
        from puffy.report.kpis import kept_channels

        revenue = fig.current.get("revenue") or (ch[f"revenue_{models[0]}"].sum() if models else 0)
        kept = kept_channels(fig.channels, revenue, fig.params.fold_threshold)
    kept = set(kept) | set(keep_channels)
    head, rest = ch[ch.index.isin(kept)], ch[~ch.index.isin(kept)]
    if len(rest) > 1:
        other = rest.sum(numeric_only=True)
        from puffy.report.stats import wilson_interval

        w = wilson_interval(int(other["purchasing_sessions"]), int(other["sessions"]), fig.params.confidence_level)
        other["conversion_rate"], other["ci_low"], other["ci_high"] = w.rate, w.low, w.high
        if "credit_low" in ch.columns:  # a range of a sum is not the sum of ranges: show the bounds' sums
            other["credit_low"], other["credit_high"] = rest["credit_low"].sum(), rest["credit_high"].sum()
        ch = pd.concat(
            [head, pd.DataFrame([other], index=[f"Other ({len(rest)}, each < {pct(fig.params.fold_threshold, 0)})"])]
        )
    return ch


def channel_table_html(
    fig: Figures,
    models: list[str],
    max_channels: int | None = None,
    measure: str = "revenue",
    keep_channels: list[str] | tuple = (),
) -> str:
    """Channel performance: sessions and conversion (with its interval), then, side by side under
    each attribution model, the revenue (``measure="revenue"``, plus the orders credited by last
    click) or the orders credited (``measure="orders"``, sums of fractional credit).

    Orders print as whole counts ("1,234") when the model credits whole orders (first / last
    click: every value of its column is a whole number); a model that shares orders out keeps one
    decimal for the whole column, so its fractions are not rounded away. ``keep_channels``: see
    :func:`channel_rows`."""
    sym = fig.params.currency_symbol
    models = [m for m in models if f"revenue_{m}" in fig.channels.columns]
    orders_model = ([m for m in ("last_click", *models) if f"orders_{m}" in fig.channels.columns] or [None])[0]
    if measure == "orders":
        columns = [("orders", m) for m in models]
    else:
        columns = ([("orders", orders_model)] if orders_model else []) + [("revenue", m) for m in models]
    ch = channel_rows(
        fig, sorted(set(models) | ({orders_model} - {None}), key=list(MODEL_LABELS).index), max_channels, keep_channels
    )
    level = level_text(fig.params.confidence_level)
    has_range = "credit_low" in ch.columns and measure == "revenue"
    views = int(fig.channels["n_views"].max()) if "n_views" in fig.channels.columns and len(fig.channels) else 0
    head = (
        f"<tr><th>Channel</th><th>Sessions</th><th>Conversion<br>({level} range)</th>"
        + (f"<th>Revenue credited<br>(range, {views} views)</th>" if has_range else "")
        + "".join(f"<th>{kind.capitalize()}<br>{html.escape(MODEL_LABELS[m])}</th>" for kind, m in columns)
        + "</tr>"
    )

    whole = {
        m: bool(((fig.channels[f"orders_{m}"] - fig.channels[f"orders_{m}"].round()).abs() < 1e-9).all())
        for kind, m in columns
        if kind == "orders"
    }

    def cell(kind: str, m: str, value: float) -> str:
        if kind == "revenue":
            return money(value, sym)
        return count(value) if whole[m] else f"{value:,.1f}"

    rows = []
    for name, r in ch.iterrows():
        conv = (
            "n/a"
            if not r["sessions"] or math.isnan(r["conversion_rate"])
            else (f"{pct(r['conversion_rate'], 2)} ({pct(r['ci_low'], 1)}–{pct(r['ci_high'], 1)})")
        )
        cells = [html.escape(str(name)), count(r["sessions"]) if r["sessions"] else "—", conv]
        if has_range:
            low, high = money(r["credit_low"], sym), money(r["credit_high"], sym)
            cells.append(low if low == high else f"{low}–{high}")
        cells += [cell(kind, m, r[f"{kind}_{m}"]) for kind, m in columns]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    tot = fig.current
    total = ["Total", count(tot["sessions"]), pct(tot["conversion_rate"], 2)]
    total += [money(tot["revenue"], sym)] if has_range else []
    total += [cell(kind, m, fig.channels[f"{kind}_{m}"].sum()) for kind, m in columns]
    rows.append('<tr class="px-total">' + "".join(f"<td>{c}</td>" for c in total) + "</tr>")
    return f'<table class="px-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def visitors_table_html(fig: Figures) -> str:
    """New vs returning: sessions, conversion (with its interval), orders, revenue, AOV."""
    sym = fig.params.currency_symbol
    rows = []
    for name, r in fig.visitors.iterrows():
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{c}</td>"
                for c in (
                    html.escape(str(name)),
                    count(r["sessions"]),
                    f"{pct(r['conversion_rate'], 2)} ({pct(r['ci_low'], 1)}–{pct(r['ci_high'], 1)})",
                    count(r["orders"]),
                    money(r["revenue"], sym),
                    money(r["aov"], sym),
                )
            )
            + "</tr>"
        )
    head = (
        f"<tr><th>Visitor</th><th>Sessions</th>"
        f"<th>Conversion ({level_text(fig.params.confidence_level)} range)</th><th>Orders</th>"
        "<th>Revenue</th><th>AOV</th></tr>"
    )
    return f'<table class="px-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def products_table_html(fig: Figures, top: int | None = None) -> str:
    """Top products by revenue from priced order lines, with the note on orders without prices.

    A single product past ``top`` keeps its row: "All other products" would take the same place."""
    sym = fig.params.currency_symbol
    prod = fig.products
    table = prod["table"]
    if top is not None and len(table) > top + 1:
        rest = table.iloc[top:]
        table = pd.concat(
            [
                table.iloc[:top],
                pd.DataFrame(
                    {
                        "lines": [rest["lines"].sum()],
                        "quantity": [rest["quantity"].sum()],
                        "revenue": [rest["revenue"].sum()],
                        "share": [rest["share"].sum()],
                    },
                    index=["All other products"],
                ),
            ]
        )
    rows = "".join(
        f"<tr><td>{html.escape(str(name))}</td><td>{count(r['quantity'])}</td>"
        f"<td>{money(r['revenue'], sym)}</td><td>{pct(r['share'])}</td></tr>"
        for name, r in table.iterrows()
    )
    note = ""
    if prod["orders_missing"]:
        note = (
            f'<p class="px-small">Excludes {count(prod["orders_missing"])} orders '
            f"({money(prod['revenue_missing'], sym)}) without item prices: their product mix is unknown.</p>"
        )
    head = "<tr><th>Product</th><th>Units</th><th>Revenue</th><th>Share</th></tr>"
    return f'<table class="px-table"><thead>{head}</thead><tbody>{rows}</tbody></table>{note}'


def _table(head: list[str], rows: list[list[str]], total: list[str] | None = None) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    if total:
        body += '<tr class="px-total">' + "".join(f"<td>{c}</td>" for c in total) + "</tr>"
    return f'<table class="px-table"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def daily_table_html(fig: Figures) -> str:
    """One row per day: sessions, conversion, orders, revenue, AOV; the period total last."""
    sym = fig.params.currency_symbol
    rows = [
        [
            f"{d:%a %-d %b}",
            count(r["sessions"]),
            pct(r["conversion_rate"], 2),
            count(r["orders"]),
            money(r["revenue"], sym),
            money(r["aov"], sym),
        ]
        for d, r in fig.daily.iterrows()
    ]
    c = fig.current
    total = [
        "Total",
        count(c["sessions"]),
        pct(c["conversion_rate"], 2),
        count(c["orders"]),
        money(c["revenue"], sym),
        money(c["aov"], sym),
    ]
    return _table(["Day", "Sessions", "Conversion", "Orders", "Revenue", "AOV"], rows, total)


def funnel_table_html(fig: Figures) -> str:
    """Per device: the nested funnel (a session counts at a step only after every earlier one) with
    step-to-step rates, and the purchases that skipped an observed step, apart."""
    from puffy.report.kpis import FUNNEL_LABELS, FUNNEL_STEPS

    head = ["Device"] + [FUNNEL_LABELS[s] for s in FUNNEL_STEPS] + ["Purchases that skipped steps", "Conversion"]
    rows = []
    for dev, r in fig.funnel.iterrows():
        cells = [html.escape(str(dev)), count(r["sessions"])]
        cells += [f"{count(r[s])} ({pct(r[f'{s}_rate'], 0)})" for s in FUNNEL_STEPS[1:]]
        cells += [count(r["purchased_skipped"]), pct(r["conversion_rate"], 2)]
        rows.append(cells)
    skipped, buyers = int(fig.funnel["purchased_skipped"].sum()), int(fig.funnel["purchased_all"].sum())
    return _table(head, rows) + (
        f'<p class="px-small">Nested: a session counts at a step only if it reached every earlier step; in brackets, '
        f"the share of the previous step. {count(skipped)} of {count(buyers)} purchasing sessions show no product "
        "view, "
        f"cart or checkout before the purchase (mostly purchases on the checkout host in a session of their own): "
        f"they are counted apart, and in the conversion rate.</p>"
    )


def family_table_html(fig: Figures) -> str:
    """Every comparison the report makes, with its p-value before and after the family's control."""
    fam = fig.family
    if fam is None or not fam.size:
        return "<p>No comparison could be tested in this period.</p>"
    t = fam.table()
    rows = [
        [
            html.escape(r["comparison"]),
            f"{r['estimate']:+.4g}",
            html.escape(r["test"]),
            p_value_text(r["p_value"]),
            p_value_text(r["adjusted_p"]),
            "yes" if r["survives"] else "no",
        ]
        for _, r in t.iterrows()
    ]
    return (
        _table(
            ["Comparison", "Effect", "Test", "p", f"p adjusted ({fam.method_label})", f"Real at α = {fam.alpha:g}"],
            rows,
        )
        + f'<p class="px-small">{fam.size} comparisons in one family. A sentence calls a difference real only '
        f"when it survives; a recommendation also needs the logistic regression to agree.</p>"
    )


def logit_table_html(fig: Figures) -> str:
    """Odds ratios of the conversion logit with their intervals and p-values."""
    lg = fig.logit
    if lg.table.empty:
        return f"<p>The regression was not fitted: {html.escape('; '.join(lg.notes) or 'no data')}.</p>"
    level = level_text(fig.params.confidence_level)
    rows = [
        [
            html.escape(r["variable"]),
            html.escape(str(r["level"])) + (" *" if r["p_value"] < fig.params.alpha else ""),
            f"{r['odds_ratio']:.2f}",
            f"{r['ci_low']:.2f}–{r['ci_high']:.2f}",
            p_value_text(r["p_value"]),
        ]
        for _, r in lg.table.iterrows()
    ]
    refs = "; ".join(f"{k}: {html.escape(v)}" for k, v in lg.references.items())
    pooled = "; ".join(f"{k}: {html.escape(', '.join(v))}" for k, v in lg.pooled.items())
    notes = f"Reference levels — {refs}."
    if pooled:
        notes += f" Pooled into 'Other' (too few purchases to estimate alone) — {pooled}."
    if lg.notes:
        notes += " " + html.escape(" ".join(lg.notes))
    return (
        _table(["Variable", "Level", "Odds ratio", f"{level} range", "p"], rows)
        + f'<p class="px-small">{notes} * p &lt; {fig.params.alpha:g}. {count(lg.n_sessions)} sessions, '
        f"{count(lg.n_conversions)} with a purchase.</p>"
    )


def p_value_text(p: float) -> str:
    return "n/a" if math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def tests_table_html(fig: Figures) -> str:
    """The test behind each KPI change: recent window vs base window (previous period, or the
    period's last days vs its first days; ``fig.windows`` says which)."""
    if fig.base is None:
        return "<p>The period is too short to compare two windows: changes are not tested.</p>"
    sym = fig.params.currency_symbol
    b, n_cur, n_base = fig.base, len(fig.windows.current), len(fig.windows.base)
    rows = []
    c = fig.conversion_vs_previous
    rows.append(
        [
            "Conversion rate",
            f"{pct(c.rate1, 2)} vs {pct(c.rate2, 2)}",
            points(c.diff),
            f"{points(c.diff_low)} to {points(c.diff_high)}",
            "two-proportion z-test",
            p_value_text(c.p_value),
        ]
    )
    a = fig.aov_vs_previous
    rows.append(
        [
            "Average order value",
            f"{money(fig.recent['aov'], sym)} vs {money(b['aov'], sym)}",
            money(a.estimate, sym),
            f"{money(a.low, sym)} to {money(a.high, sym)}",
            "bootstrap of orders",
            p_value_text(a.p_value),
        ]
    )
    r = fig.revenue_per_day_vs_previous
    rows.append(
        [
            "Revenue per day",
            f"{money(fig.recent['revenue'] / n_cur, sym)} vs {money(b['revenue'] / n_base, sym)}",
            money(r.estimate, sym),
            f"{money(r.low, sym)} to {money(r.high, sym)}",
            "Welch t-test on days",
            p_value_text(r.p_value),
        ]
    )
    s_ = fig.sessions_per_day_vs_previous
    rows.append(
        [
            "Sessions per day",
            f"{count(fig.recent['sessions'] / n_cur)} vs {count(b['sessions'] / n_base)}",
            f"{s_.estimate:+,.0f}",
            f"{s_.low:+,.0f} to {s_.high:+,.0f}",
            "Welch t-test on days",
            p_value_text(s_.p_value),
        ]
    )
    o = fig.orders_vs_previous
    rows.append(
        [
            "Orders",
            f"{count(fig.recent['orders'])} vs {count(b['orders'])}",
            f"×{o.estimate:.2f}",
            f"×{o.low:.2f} to ×{o.high:.2f}",
            "exact test of two counts",
            p_value_text(o.p_value),
        ]
    )
    level = level_text(fig.params.confidence_level)
    return _table(["KPI", fig.windows.label, "Difference", f"{level} range", "Test", "p"], rows)


def trend_table_html(fig: Figures) -> str:
    """The OLS trend of each daily series: slope per day, its interval, p, change over the period."""
    sym = fig.params.currency_symbol
    rows = []
    for metric, t in fig.trends.items():
        fmt = (lambda v: money(v, sym)) if metric == "revenue" else (lambda v: f"{v:+,.1f}")
        rows.append(
            [
                metric.capitalize(),
                fmt(t.slope),
                f"{fmt(t.slope_low)} to {fmt(t.slope_high)}",
                p_value_text(t.p_value),
                signed_pct(t.change_over_period),
            ]
        )
    level = level_text(fig.params.confidence_level)
    return _table(["Daily series", "Slope per day", f"{level} range", "p", "First → last day (fitted)"], rows)


def trend_caption(fig: Figures) -> str:
    """One sentence on the revenue trend, e.g. "Revenue trend: +$218 a day (95% range ...), no clear trend"."""
    t = fig.trends["revenue"]
    sym = fig.params.currency_symbol
    if math.isnan(t.slope):
        return "Too few days for a trend."
    verdict = "a real trend" if t.significant(fig.params.alpha) else "no clear trend"
    return (
        f"Revenue trend: {money(t.slope, sym)} a day ({level_text(fig.params.confidence_level)} range "
        f"{money(t.slope_low, sym)} to "
        f"{money(t.slope_high, sym)}) — {verdict}."
    )


def caveats_html(caveats: list[Caveat], limit: int | None = None) -> str:
    if not caveats:
        return "<p>No data-quality problem was flagged for this period.</p>"
    shown = caveats if limit is None else caveats[:limit]
    more = (
        ""
        if limit is None or len(caveats) <= limit
        else (f"<li>{len(caveats) - limit} smaller caveat(s) in the HTML report.</li>")
    )
    return (
        "<ul>"
        + "".join(f"<li><b>{html.escape(c.title)}</b> — {html.escape(c.text)}</li>" for c in shown)
        + more
        + "</ul>"
    )


def period_text(fig: Figures) -> str:
    """ "23 Feb 2025 – 8 Mar 2025 (14 days)" plus what it is compared with."""
    p = fig.period
    main = f"{p.start:%-d %b %Y} – {p.end:%-d %b %Y} ({p.days} days)"
    if fig.previous is not None:
        return main + f" · compared with {p.previous_start:%-d %b} – {p.previous_end:%-d %b %Y}"
    w = fig.windows
    if w is not None and w.basis == "halves":
        return main + (
            f" · no previous period in the warehouse: changes compare {w.current[0]:%-d %b} – "
            f"{w.current[-1]:%-d %b} with {w.base[0]:%-d %b} – {w.base[-1]:%-d %b}"
        )
    return main + " · too short to compare"


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
    products: int = 5
    pair_charts: bool = True  # conversion-by-channel and funnel charts
    side_tables: bool = True  # new vs returning, product mix


#: Tried in order until the page count fits ``pdf_max_pages``: the full layout, a compact one
#: (smaller type, fewer rows), and a one-page digest (tiles, narrative, trend, channels, caveats).
LAYOUTS = (
    Layout(),
    Layout(font="7.6pt", max_items=3, max_channels=6, caveats=4, stats_notes=False, chart_height=2.2, products=3),
    Layout(
        font="6.6pt",
        max_items=2,
        max_channels=5,
        caveats=0,
        stats_notes=False,
        chart_height=1.6,
        products=3,
        pair_charts=False,
        side_tables=False,
    ),
)


def print_html(fig: Figures, narrative: Narrative, layout: Layout = LAYOUTS[0]) -> str:
    """The complete, self-contained HTML that WeasyPrint turns into the PDF."""
    p = fig.params
    dpi = p.chart_dpi
    max_channels = min(layout.max_channels, p.pdf_channels)
    trim = Narrative(
        narrative.working[: layout.max_items],
        narrative.concerning[: layout.max_items],
        narrative.recommendations[: layout.max_items + 1],
        moved=narrative.moved[: layout.max_items],
        hypotheses=narrative.hypotheses[: max(1, layout.max_items - 2)],
        tracking=narrative.tracking,
    )
    named = named_channels(trim, fig.channels.index)  # kept out of the table's "Other" row and on the chart
    trend = charts.data_uri(
        charts.trend_chart(
            fig.daily, fig.trends, p.currency_symbol, height=layout.chart_height, markers=chart_markers(fig)
        ),
        dpi,
    )
    pair = side = ""
    if layout.pair_charts:
        conv = charts.data_uri(
            charts.channel_conversion_chart(
                fig.channels,
                fig.current["conversion_rate"],
                level=p.confidence_level,
                max_channels=max_channels + 2,
                keep_channels=named,
                height=layout.chart_height + 0.4,
            ),
            dpi,
        )
        funnel = charts.data_uri(charts.funnel_chart(fig.funnel, height=layout.chart_height + 0.4), dpi)
        pair = (
            f'<div class="px-pair"><img src="{conv}" alt="Conversion by channel">'
            f'<img src="{funnel}" alt="Funnel by device"></div>'
        )
    if layout.side_tables:
        side = (
            f'<div class="px-cols"><div><h2>New vs returning visitors</h2>{visitors_table_html(fig)}</div>'
            f"<div><h2>Product mix</h2>{products_table_html(fig, layout.products)}</div></div>"
        )
    notes = ""
    if layout.stats_notes:
        notes = (
            "<h2>Reading the statistics</h2><ul class='px-small'>"
            + "".join(f"<li>{html.escape(n)}</li>" for n in statistics_explained(fig))
            + "</ul>"
        )
    css = (
        PRINT_CSS.replace("__PAGE_SIZE__", p.pdf_page_size)
        .replace("__FONT__", layout.font)
        .replace("__PERIOD__", f"{fig.period.start.isoformat()} to {fig.period.end.isoformat()}")
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Executive summary {fig.period.label}</title>
<style>{css}</style></head><body>
<h1>Executive summary</h1>
<p class="px-period">{html.escape(period_text(fig))}</p>
{kpi_tiles_html(fig)}
{narrative_html(trim)}
<figure><img class="px-wide" src="{trend}" alt="Daily revenue, orders and sessions">
<figcaption class="px-small">Dashed line: least-squares trend; shaded: its {level_text(p.confidence_level)} range.
{html.escape(trend_caption(fig))}</figcaption></figure>
<h2>Channels — sessions, conversion and the revenue each attribution model credits</h2>
{channel_table_html(fig, p.pdf_attribution_models, max_channels, keep_channels=named)}
<p class="px-note px-small">{html.escape(ATTRIBUTION_CAVEAT)}</p>
{pair}
{side}
<h2>Other data caveats</h2>
<div class="px-small">{caveats_html([c for c in fig.caveats if c.id not in PAGE_ONE_CAVEATS], layout.caveats)}</div>
{notes}
</body></html>
"""


def chart_markers(fig: Figures) -> list[tuple]:
    """(day, label) marks for the daily charts: the tracking changes the daily runs found (first day
    of the page-1 caveats' findings) and the change points that survive the control."""
    marks = {}
    for c in fig.caveats:
        start = getattr(c, "start", None)
        if c.id in PAGE_ONE_CAVEATS and start is not None and fig.period.start <= start <= fig.period.end:
            marks.setdefault(start, []).append(c.marker or c.title.lower())
    if fig.family is not None:
        for key, cp in fig.change_points.items():
            if cp.day is not None and fig.family.survives(f"changepoint:{key}") and key.startswith("channel:"):
                marks.setdefault(cp.day, []).append(f"{key.split(':', 1)[1]} shift")
    return sorted((d, ", ".join(dict.fromkeys(v))) for d, v in marks.items())


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
    for i, layout in enumerate(LAYOUTS):
        text = print_html(fig, narrative, layout)
        doc = render(text)
        if len(doc.pages) <= limit:
            tmp = path.with_suffix(".pdf.tmp")
            doc.write_pdf(tmp)
            tmp.replace(path)
            return PdfResult(path, len(doc.pages), i > 0, text)
    raise RuntimeError(
        f"the executive summary needs {len(doc.pages)} pages even in its shortest layout "
        f"(limit {limit} in params/report.yaml pdf_max_pages)"
    )
