"""Charts of the executive summary: seaborn on plain matplotlib ``Figure`` objects, one style.

The style is made for print: white background, light grey grid, dark text, one accent colour for
"this period" and a muted palette for categories, nothing that needs colour to be read (lines
carry markers and labels). Figures are built with ``matplotlib.figure.Figure`` rather than pyplot,
so nothing is shown twice in a notebook and no global figure state leaks between reports.
:func:`png_bytes` / :func:`data_uri` turn a figure into bytes for the notebook, the HTML and the
PDF (no timestamp in the PNG metadata, so the same data gives the same bytes).
"""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg", force=False)  # no display needed; harmless when a notebook backend is active

import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from puffy.report.kpis import FUNNEL_LABELS, FUNNEL_STEPS  # noqa: E402

ACCENT = "#1f4e79"  # this period's series
ACCENT_LIGHT = "#9dc3e6"
MUTED = "#7f8c8d"  # references: site average, fitted lines
BAND = "#d6e4f0"
PALETTE = ["#1f4e79", "#c55a11", "#548235", "#7030a0", "#bf9000", "#2e75b6", "#a5a5a5"]

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.titleweight": "bold",
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.edgecolor": "#bfbfbf",
    "axes.labelcolor": "#333333",
    "text.color": "#222222",
    "xtick.color": "#444444",
    "ytick.color": "#444444",
    "grid.color": "#e6e6e6",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "svg.hashsalt": "puffy-report",
}


def apply_style() -> None:
    """The one style of every report chart (seaborn whitegrid, paper context, print colours)."""
    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, rc=STYLE)


def _money_axis(ax, symbol: str) -> None:
    ax.yaxis.set_major_formatter(
        mticker.FuncFormatter(lambda v, _: f"{symbol}{v / 1000:,.0f}k" if abs(v) >= 1000 else f"{symbol}{v:,.0f}")
    )


def _day_labels(index, max_labels: int = 5) -> list[str]:
    """At most ``max_labels`` date labels ("Sun\n23 Feb"), evenly spaced, so they never collide."""
    step = max(1, math.ceil(len(index) / max_labels))
    return [f"{d:%a}\n{d.day} {d:%b}" if i % step == 0 else "" for i, d in enumerate(index)]


def trend_chart(
    daily: pd.DataFrame,
    trends: dict,
    symbol: str = "$",
    width: float = 7.2,
    height: float = 3.0,
    markers: list[tuple] | tuple = (),
) -> Figure:
    """Daily revenue (bars), orders and sessions (lines), each with its OLS trend line (dashed)
    and the confidence band of that line (shaded, drawn *behind* the bars so no bar is hidden).

    ``markers``: (day, label) pairs — tracking changes and change points — drawn as dotted
    vertical lines before that day on every panel, numbered on the chart and named in a legend row
    under it (labels inside the panels would collide on a 14-day axis)."""
    apply_style()
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, 3)
    x = np.arange(len(daily))
    position = {d: i for i, d in enumerate(daily.index)}
    marks = [(position[d], label) for d, label in markers if d in position]
    specs = (
        ("revenue", "Revenue per day", True),
        ("orders", "Orders per day", False),
        ("sessions", "Sessions per day", False),
    )
    for ax, (metric, title, money) in zip(axes, specs):
        values = daily[metric].astype("float64").to_numpy()
        t = trends.get(metric)
        if t is not None and not math.isnan(t.slope):
            ax.fill_between(x, t.fitted["low"], t.fitted["high"], color=BAND, alpha=0.6, linewidth=0, zorder=1)
        if metric == "revenue":
            ax.bar(x, values, color=ACCENT_LIGHT, edgecolor=ACCENT, linewidth=0.4, zorder=2)
        else:
            ax.plot(x, values, color=ACCENT, marker="o", markersize=2.5, linewidth=1.2, zorder=3)
        if t is not None and not math.isnan(t.slope):
            ax.plot(x, t.fitted["fit"], color=MUTED, linestyle="--", linewidth=1.0, zorder=4)
        for n, (i, _) in enumerate(marks, start=1):
            ax.axvline(i - 0.5, color="#b42318", linestyle=":", linewidth=1.0, zorder=5)
            ax.text(
                i - 0.45,
                1.0,
                str(n),
                transform=ax.get_xaxis_transform(),
                color="#b42318",
                fontsize=6,
                va="top",
                ha="left",
            )
        ax.set_title(title, loc="left")
        ax.set_xticks(x)
        ax.set_xticklabels(_day_labels(daily.index), fontsize=6)
        ax.set_ylim(bottom=0)
        if money:
            _money_axis(ax, symbol)
        else:
            ax.yaxis.set_major_formatter(mticker.StrMethodFormatter("{x:,.0f}"))
        ax.grid(axis="x", visible=False)
    if marks:
        fig.supxlabel(
            "   ".join(f"{n}: {label} from {daily.index[i]:%-d %b}" for n, (i, label) in enumerate(marks, start=1)),
            fontsize=6.5,
            color="#b42318",
        )
    return fig


def channel_conversion_chart(
    channels: pd.DataFrame,
    site_rate: float,
    max_channels: int = 10,
    width: float = 3.6,
    height: float = 2.9,
    level: float = 0.95,
    keep_channels: list[str] | tuple = (),
) -> Figure:
    """Conversion rate per channel with its Wilson interval; the site's rate as a reference line.

    The ``max_channels`` largest channels by sessions, plus ``keep_channels`` (those the narrative
    names: a sentence about Email must find Email on the chart), in order of sessions."""
    apply_style()
    ch = channels[channels["sessions"] > 0].sort_values("sessions", ascending=False)
    ch = ch[ch.index.isin(ch.index[:max_channels]) | ch.index.isin(list(keep_channels))]
    ch = ch.iloc[::-1]  # largest at the top
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(ch))
    rate = ch["conversion_rate"].to_numpy() * 100
    # Clipped at 0: a Wilson bound of a 0% rate can come back as -1e-18 from floating point.
    err = np.clip(np.vstack([rate - ch["ci_low"].to_numpy() * 100, ch["ci_high"].to_numpy() * 100 - rate]), 0, None)
    ax.errorbar(rate, y, xerr=err, fmt="o", color=ACCENT, ecolor=ACCENT_LIGHT, elinewidth=2.5, capsize=0, markersize=4)
    if not math.isnan(site_rate):
        ax.axvline(site_rate * 100, color=MUTED, linestyle="--", linewidth=1)
        ax.text(site_rate * 100, len(ch) - 0.4, f" site {site_rate * 100:.2f}%", color=MUTED, fontsize=6.5, va="bottom")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{name} ({int(n):,})" for name, n in zip(ch.index, ch["sessions"])])
    ax.set_xlabel(f"Conversion % (bar: {level * 100:g}% range)")
    ax.set_xlim(left=0)
    ax.set_ylim(-0.6, len(ch) - 0.1)
    ax.set_title("Conversion by channel", loc="left")
    ax.grid(axis="y", visible=False)
    return fig


def funnel_chart(funnel: pd.DataFrame, width: float = 3.6, height: float = 2.9) -> Figure:
    """Nested funnel per device: share of sessions reaching each step through the earlier ones
    (log scale: the last steps are ~1%). Each device's conversion is in its legend entry, not
    annotated at the line ends, so no two labels can overlap; purchases that skipped steps are
    counted in the legend too."""
    apply_style()
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    steps = list(FUNNEL_STEPS)
    x = np.arange(len(steps))
    markers = ["o", "s", "^", "D", "v"]
    for i, (device, r) in enumerate(funnel.iterrows()):
        if r["sessions"] <= 0:
            continue
        share = np.array([r[s] / r["sessions"] for s in steps], dtype="float64") * 100
        share = np.where(share > 0, share, np.nan)  # log scale: a step nobody reached is not drawn
        skipped = int(r.get("purchased_skipped", 0))
        label = f"{device} ({int(r['sessions']):,}): {r['purchased'] / r['sessions'] * 100:.2f}% through checkout"
        if skipped:
            label += f", +{skipped:,} skipped steps"
        ax.plot(
            x,
            share,
            marker=markers[i % len(markers)],
            color=PALETTE[i % len(PALETTE)],
            linewidth=1.2,
            markersize=3.5,
            label=label,
        )
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}%"))
    ax.set_xticks(x)
    ax.set_xticklabels([FUNNEL_LABELS[s] for s in steps], fontsize=6.5)
    ax.set_xlim(-0.2, len(steps) - 0.8)
    ax.set_ylabel("Sessions reaching the step (%)")
    ax.set_title("Funnel by device (nested)", loc="left")
    # Below the axes, never over the lines.
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(0.0, -0.16), fontsize=5.8, borderaxespad=0)
    ax.grid(axis="x", visible=False)
    return fig


def attribution_chart(
    channels: pd.DataFrame,
    models: list[str],
    labels: dict[str, str],
    max_channels: int = 10,
    width: float = 7.2,
    height: float = 3.0,
) -> Figure:
    """Share of attributed revenue per channel under each model (grouped bars)."""
    apply_style()
    cols = [f"share_{m}" for m in models if f"share_{m}" in channels.columns]
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    if not cols:
        ax.text(0.5, 0.5, "No attribution data", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    top = channels.sort_values(cols[0], ascending=False).head(max_channels)
    long = (
        (top[cols].rename(columns={c: labels.get(c[6:], c[6:]) for c in cols}) * 100)
        .reset_index()
        .melt(id_vars="channel", var_name="model", value_name="share")
    )
    sns.barplot(data=long, x="channel", y="share", hue="model", ax=ax, palette=PALETTE[: len(cols)], width=0.8)
    ax.set_xlabel("")
    ax.set_ylabel("Share of attributed revenue (%)")
    ax.tick_params(axis="x", labelsize=6.5, rotation=20)
    ax.set_title("Who gets the credit depends on the model", loc="left")
    ax.legend(frameon=False, ncol=min(4, len(cols)), fontsize=6.5, title=None)
    ax.grid(axis="x", visible=False)
    return fig


def product_chart(products: pd.DataFrame, symbol: str = "$", width: float = 7.2, height: float = 2.6) -> Figure:
    """Revenue by product (priced order lines only)."""
    apply_style()
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    if products.empty:
        ax.text(0.5, 0.5, "No priced order lines", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    data = products.iloc[::-1]
    ax.barh(np.arange(len(data)), data["revenue"], color=ACCENT_LIGHT, edgecolor=ACCENT, linewidth=0.4)
    ax.set_yticks(np.arange(len(data)))
    ax.set_yticklabels(data.index)
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{symbol}{v / 1000:,.0f}k"))
    ax.set_title("Product revenue (order lines with a price)", loc="left")
    ax.grid(axis="y", visible=False)
    return fig


def png_bytes(fig: Figure, dpi: int = 150) -> bytes:
    """PNG of ``fig`` without volatile metadata (same figure, same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, facecolor="white")
    return buf.getvalue()


def data_uri(fig: Figure, dpi: int = 150) -> str:
    """``data:image/png;base64,...`` for inline use in HTML (the PDF needs no external files)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(fig, dpi)).decode("ascii")
