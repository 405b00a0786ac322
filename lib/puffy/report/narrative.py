"""What the numbers say, in sentences for leadership — derived from the figures by explicit rules.

Nothing here is written by hand for a particular period: every sentence is produced by a rule
that looks at the figures (``puffy.report.kpis.Figures``) and, when it fires, formats the numbers
it relies on into its wording. So a different period gives different numbers *and* different
sentences, and a sentence never states a number that was not computed.

Three lists come out of :func:`build_narrative`: what is working, what is concerning, and
recommendations (each recommendation follows from a working/concerning rule or a data caveat).
:func:`data_caveats` turns the period's data-quality and monitoring findings plus the tables into
"which number is unreliable and by how much". :func:`statistics_explained` says in plain words
what the report's intervals and tests mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

from puffy.report.data import PeriodData
from puffy.report.kpis import FUNNEL_LABELS, Figures, later_id_collisions, weakest_step
from puffy.safe_output import md_text

MODEL_LABELS = {"first_click": "first click", "last_click": "last click",
                "last_non_direct_click": "last non-direct click", "linear": "linear",
                "position_based": "position-based", "time_decay": "time decay", "markov": "Markov"}


# --- formatting (one place, so the HTML, the PDF and the sentences agree) ------------------------

def money(x: float, symbol: str = "$", cents: bool = False) -> str:
    """$263,708 (or $1,108.02 with ``cents``); "n/a" for NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    sign = "-" if x < 0 else ""
    return f"{sign}{symbol}{abs(x):,.2f}" if cents else f"{sign}{symbol}{abs(x):,.0f}"


def pct(x: float, digits: int = 1) -> str:
    """0.0081 → "0.8%" (digits=1) or "0.81%" (digits=2)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x * 100:.{digits}f}%"


def signed_pct(x: float, digits: int = 1) -> str:
    """+12.3% / -4.0%."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x * 100:+.{digits}f}%"


def points(x: float, digits: int = 2) -> str:
    """A difference of two rates in percentage points: +0.12 pp."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x * 100:+.{digits}f} pp"


def count(n: float) -> str:
    """29336 → "29,336"."""
    return f"{int(round(n)):,}"


def plural(n: float, word: str, many: str | None = None) -> str:
    """"1 order" / "12 orders" (with thousands separators)."""
    return f"{count(n)} {word if int(round(n)) == 1 else (many or word + 's')}"


def p_text(p: float) -> str:
    """p-values as leadership can read them."""
    if p is None or math.isnan(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def day_text(d: date | str) -> str:
    d = date.fromisoformat(d) if isinstance(d, str) else d
    return f"{d:%a} {d.day} {d:%b}"


def days_text(days: list) -> str:
    """A short list of days: "Sun 2 Mar, Mon 3 Mar" or "Sun 2 Mar to Sat 8 Mar (7 days)"."""
    ds = sorted({date.fromisoformat(d) if isinstance(d, str) else d for d in days})
    if not ds:
        return ""
    if len(ds) >= 2 and (ds[-1] - ds[0]).days + 1 == len(ds):
        return f"{day_text(ds[0])} to {day_text(ds[-1])}"
    if len(ds) > 4:
        return f"{len(ds)} days between {day_text(ds[0])} and {day_text(ds[-1])}"
    return ", ".join(day_text(d) for d in ds)


def level_text(level: float) -> str:
    """The confidence level as it is printed: 0.95 → "95%"."""
    return f"{level * 100:g}%"


def rate_with_ci(rate: float, low: float, high: float, level: float = 0.95, digits: int = 2) -> str:
    """"1.73% (95% range 1.12%–2.66%)"."""
    return f"{pct(rate, digits)} ({level_text(level)} range {pct(low, digits)}–{pct(high, digits)})"


# --- statements -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Statement:
    """One sentence of the narrative; ``rule`` names the rule that wrote it, ``weight`` orders
    statements of the same list (biggest money or share first)."""

    rule: str
    text: str
    weight: float = 0.0


@dataclass
class Caveat:
    """A data problem of the period and the numbers it makes unreliable."""

    id: str
    title: str
    text: str
    affects: str
    size: float = math.nan   # the caveat's headline magnitude (share or count), for sorting/tests
    recommendation: str | None = None


@dataclass
class Narrative:
    working: list[Statement] = field(default_factory=list)
    concerning: list[Statement] = field(default_factory=list)
    recommendations: list[Statement] = field(default_factory=list)


# --- data caveats -------------------------------------------------------------------------------

def _findings_matching(findings: list[dict], *words: str, severities=("warn", "error")) -> list[dict]:
    """Findings of the given severities whose id, metric or message mention all of ``words``."""
    out = []
    for f in findings:
        if f.get("severity") not in severities:
            continue
        hay = " ".join(str(f.get(k) or "") for k in ("id", "metric", "message")).lower()
        if all(w in hay for w in words):
            out.append(f)
    return out


def _finding_days(findings: list[dict]) -> list[str]:
    return sorted({d for f in findings for d in f.get("dates", [])})


def _daily_values(findings: list[dict]) -> dict[str, float]:
    """date -> value from the findings' per-day values (``daily``) or their top-level value."""
    out: dict[str, float] = {}
    for f in findings:
        for row in f.get("daily") or []:
            if isinstance(row, dict) and isinstance(row.get("value"), (int, float)) and row.get("date"):
                out[str(row["date"])] = float(row["value"])
        if isinstance(f.get("value"), (int, float)) and f.get("dates"):
            for d in f["dates"]:
                out.setdefault(str(d), float(f["value"]))
    return out


def _client_id_caveat(data: PeriodData, fig: Figures, findings: list[dict]) -> Caveat | None:
    """Page views without a client id belong to no session: sessions are undercounted by that share."""
    p = fig.params
    if data.client_id_null is not None and data.client_id_null["page_views"].sum() > 0:
        t = data.client_id_null
        share = float(t["null_page_views"].sum() / t["page_views"].sum())
        per_day = t["null_page_views"] / t["page_views"].where(t["page_views"] > 0)
        worst, worst_day = float(per_day.max()), t.loc[per_day.idxmax(), "day"]
        n_flagged = int((per_day > p.client_id_null_caveat).sum())
        source = "measured on the staged page views"
    else:
        # No staged events: fall back on the gate's own daily rates (all events, not page views).
        values = _daily_values([f for f in data.findings if str(f.get("id", "")).lower() in
                                ("client_id.null_rate", "client_id_null_rate")] or findings)
        values = {d: v for d, v in values.items() if 0 <= v <= 1}
        if not values:
            if not findings:
                return None
            return Caveat("client_id_loss", "Client ids missing",
                          f"Client ids were flagged missing on {days_text(_finding_days(findings))}; the size of the "
                          f"loss is not known here, so sessions and conversion rates on those days are undercounted "
                          f"by an unknown amount.", "sessions, conversion rate", math.nan,
                          "Fix client-id capture on the site.")
        # Days the gate did not report count as 0: the share below is then a lower bound.
        share = sum(values.values()) / max(len(values), len(data.period.available))
        worst_day, worst = max(values.items(), key=lambda kv: kv[1])
        n_flagged = sum(1 for v in values.values() if v > p.client_id_null_caveat)
        source = "from the data-quality gate's daily rates"
    if share <= p.client_id_null_caveat and not findings:
        return None
    sessions = fig.current["sessions"]
    lost = sessions * share / (1 - share) if share < 1 else math.nan
    return Caveat(
        "client_id_loss", "Client ids missing",
        f"{pct(share)} of page views had no client id ({source}; worst {pct(worst)} on {day_text(worst_day)}; "
        f"above {pct(p.client_id_null_caveat, 0)} on {n_flagged} day(s)). Those visits belong to no session, so "
        f"sessions are undercounted by about {pct(share)} (roughly {count(lost)} sessions) and the channel and "
        f"device mixes lose the same visits. Revenue and orders are complete (orders without a client id are "
        f"kept) but such orders cannot be tied to a channel.",
        "sessions, conversion rate, channel and device breakdowns", share,
        f"Fix client-id capture: {pct(worst)} of page views lost their id on {day_text(worst_day)}.")


def _referrer_caveat(data: PeriodData, findings: list[dict]) -> Caveat | None:
    """Days without (or with a shifted) referrer: search / social / referral visits look Direct.

    Sized by comparing Direct's share of sessions on the flagged days with the other days of the
    period (or, when every day is flagged, with the previous period).
    """
    if not findings:
        return None
    flagged = {date.fromisoformat(d) for d in _finding_days(findings)}
    s = data.human_sessions
    direct = s["channel"].eq("Direct")
    on = s["session_date"].isin(flagged)
    share_on = float(direct[on].mean()) if on.any() else math.nan
    share_off = float(direct[~on].mean()) if (~on).any() else math.nan
    baseline = "on the other days"
    if math.isnan(share_off) and data.previous_sessions is not None and len(data.previous_sessions):
        prev = data.previous_sessions[~data.previous_sessions["is_bot"]]
        share_off, baseline = float(prev["channel"].eq("Direct").mean()), "in the previous period"
    rec = ("Restore the referrer in the tracking export (and tag owned links with UTM parameters) so organic "
           "and referral visits stop landing in Direct.")
    if math.isnan(share_on) or math.isnan(share_off):
        return Caveat("referrer_loss", "Referrer lost",
                      f"The referrer was missing or shifted on {days_text(flagged)}: visits from organic search, "
                      f"social and referral links on those days are counted as Direct.",
                      "channel mix and attribution", math.nan, rec)
    gap = share_on - share_off
    moved = max(0.0, gap) * int(on.sum())
    size = (f"about {count(moved)} sessions from organic search, social and referral links are counted as Direct, "
            f"so those channels are understated and Direct overstated under every attribution model"
            if gap > 0 else "Direct's share did not rise, so the misfiling looks small so far")
    return Caveat(
        "referrer_loss", "Referrer lost",
        f"The referrer was missing or shifted on {days_text(flagged)}. On those days Direct took {pct(share_on)} of "
        f"sessions vs {pct(share_off)} {baseline} ({points(gap, 1)}): {size}.",
        "channel mix, channel conversion and attribution", max(0.0, gap), rec)


def data_caveats(data: PeriodData, fig: Figures) -> list[Caveat]:
    """Which of the period's numbers the data problems make unreliable, and by how much.

    Each caveat is measured on the period's own data (tables, staged events) where possible and
    uses the daily findings to know on which days a problem was flagged. WARN/ERROR findings that
    no caveat explains are listed at the end (unless ``ignore_findings`` says they are harmless),
    so nothing the daily checks flagged is silently dropped.
    """
    p = fig.params
    sym = p.currency_symbol
    out: list[Caveat] = []
    findings = [f for f in data.findings if str(f.get("id")) not in set(p.ignore_findings)]
    used: set[int] = set()

    def take(found: list[dict]) -> list[dict]:
        used.update(id(f) for f in found)
        return found

    cid = take([f for f in _findings_matching(findings, "client") if "null" in str(f.get("id", "")).lower()
                or "null" in str(f.get("metric", "")).lower()])
    caveat = _client_id_caveat(data, fig, cid)
    if caveat:
        out.append(caveat)

    caveat = _referrer_caveat(data, take(_findings_matching(findings, "referrer") +
                                         _findings_matching(findings, "direct_share")))
    if caveat:
        out.append(caveat)

    # Item prices missing: revenue is known, its product split is not.
    take(_findings_matching(findings, "item_price"))
    prod = fig.products
    if prod["orders_missing"]:
        missing_orders = data.orders[data.orders["has_missing_item_prices"]]
        days = sorted(set(missing_orders["order_date"])) if len(missing_orders) else []
        when = f" from {days_text(days)}" if days else ""
        out.append(Caveat(
            "missing_item_prices", "Item prices missing",
            f"{plural(prod['orders_missing'], 'order')}{when} {'has' if prod['orders_missing'] == 1 else 'have'} "
            f"no item prices. Their revenue "
            f"({money(prod['revenue_missing'], sym)}, {pct(prod['share_missing'])} of the period) is counted, "
            f"but which products it came from is unknown: the product mix describes the other "
            f"{count(prod['orders_priced'])} orders only.",
            "product mix", prod["share_missing"],
            f"Restore item_price in the purchase event: the product mix of {count(prod['orders_missing'])} "
            f"orders ({money(prod['revenue_missing'], sym)}) is unknown."))

    # Orders without a session: revenue without a channel.
    take(_findings_matching(findings, "without_session"))
    if fig.orders_without_session:
        share_rev = fig.revenue_without_session / fig.current["revenue"] if fig.current["revenue"] else math.nan
        out.append(Caveat(
            "orders_without_session", "Orders without a session",
            f"{count(fig.orders_without_session)} orders ({money(fig.revenue_without_session, sym)}, "
            f"{pct(share_rev)} of revenue) have no session (no client id or a bot user agent). They are in "
            f"revenue and orders but not in the conversion rate, and attribution gives them to Direct.",
            "conversion rate, Direct's attributed revenue", share_rev))

    # Excluded purchases and id collisions (handled upstream, but they move order counts).
    for word in ("revenue_zero", "zero_revenue", "replay", "collision"):
        take(_findings_matching(findings, word))
    rejects = data.rejects
    zero = rejects[rejects["reason"].astype(str).str.contains("zero", na=False)]
    replays = rejects[rejects["reason"].astype(str).eq("replay")]
    collisions = later_id_collisions(data.orders)  # the later order of each pair, as the sentence says
    if len(zero) or len(replays) or collisions:
        parts = []
        if len(zero):
            parts.append(f"{plural(len(zero), 'purchase event')} with revenue 0 and no items "
                         f"{'is not counted as an order' if len(zero) == 1 else 'are not counted as orders'}")
        if len(replays):
            parts.append(f"{plural(len(replays), 'repeated purchase event')} (replays) counted once")
        if collisions:
            parts.append(f"{plural(collisions, 'order')} sharing a transaction id with an earlier, different order "
                         f"counted as separate orders")
        out.append(Caveat("order_hygiene", "Purchase events cleaned", "; ".join(parts) + ".", "orders",
                          float(len(zero) + len(replays) + collisions)))

    # Bots: excluded from every figure; sized from the gate's daily bot share (or the sessions).
    bot_findings = take(_findings_matching(findings, "bot", severities=("info", "warn", "error", "pass")))
    shares = {d: v for d, v in _daily_values([f for f in bot_findings if "share" in str(f.get("id", ""))]).items()
              if 0 <= v <= 1}
    if shares:
        mean = sum(shares.values()) / len(shares)
        low, high = min(shares.values()), max(shares.values())
        spread = f" ({pct(low)}–{pct(high)} a day)" if pct(low) != pct(high) else ""
        out.append(Caveat("bots", "Bot traffic excluded",
                          f"Bots (recognised by user agent) made up {pct(mean)} of events on average{spread}. "
                          f"They are left out of sessions, funnels, "
                          f"conversion and attribution, so raw event counts overstate human traffic by that much.",
                          "raw event counts only", mean))
    elif fig.bot_sessions:
        total = len(data.sessions)
        out.append(Caveat("bots", "Bot traffic excluded",
                          f"{count(fig.bot_sessions)} sessions ({pct(fig.bot_sessions / total)}) came from bots and "
                          f"are left out of sessions and every rate.", "sessions", fig.bot_sessions / total))

    # Days without data.
    if data.period.missing:
        out.append(Caveat("missing_days", "Days missing",
                          f"No published data for {days_text(data.period.missing)} (stopped by the data-quality gate, "
                          f"quarantined by monitoring, or not run): totals cover {len(data.period.available)} of "
                          f"{data.period.days} days.", "every total", float(len(data.period.missing)),
                          "Re-run or repair the missing days (see outputs/index.html) before sharing totals."))

    # The remaining WARN/ERROR findings, grouped by id.
    rest: dict[str, list[dict]] = {}
    for f in findings:
        if f.get("severity") in ("warn", "error") and id(f) not in used:
            rest.setdefault(str(f.get("id") or f.get("metric") or "finding"), []).append(f)
    if rest:
        items = []
        for fid, fs in sorted(rest.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:5]:
            why = str(fs[0].get("impact") or fs[0].get("message") or "").rstrip(".")
            items.append(f"{fid} on {days_text(_finding_days(fs)) or f'{len(fs)} run(s)'}" + (f" ({why})" if why else ""))
        more = f"; and {len(rest) - 5} more" if len(rest) > 5 else ""
        out.append(Caveat("other_findings", "Other warnings of the daily runs",
                          "Also flagged by the daily checks: " + "; ".join(items) + more + ".",
                          "the figures each finding names", float(len(rest))))
    return out


# --- the narrative rules ------------------------------------------------------------------------

def _kpi_statements(fig: Figures) -> tuple[list[Statement], list[Statement]]:
    """Headline KPIs that moved by at least ``notable_change`` vs the previous period."""
    working, concerning = [], []
    if fig.previous is None:
        return working, concerning
    p = fig.params
    sym = p.currency_symbol
    tests = {"revenue": fig.revenue_per_day_vs_previous, "aov": fig.aov_vs_previous,
             "sessions": fig.sessions_per_day_vs_previous, "conversion_rate": fig.conversion_vs_previous,
             "orders": fig.orders_vs_previous}
    fmt = {"revenue": lambda v: money(v, sym), "orders": count, "aov": lambda v: money(v, sym),
           "sessions": count, "conversion_rate": lambda v: pct(v, 2)}
    for name, k in fig.kpis.items():
        ch = k["change_pct"]
        if ch is None or abs(ch) < p.notable_change:
            continue
        test = tests.get(name)
        pv = getattr(test, "p_value", math.nan) if test is not None else math.nan
        noise = ("" if math.isnan(pv) else
                 f" — larger than day-to-day noise ({p_text(pv)})" if pv < p.alpha else
                 f" — but within day-to-day noise ({p_text(pv)}), so not yet a trend")
        verb = "rose" if ch > 0 else "fell"
        text = (f"{k['label']} {verb} {signed_pct(ch)} to {fmt[name](k['value'])} vs {fmt[name](k['previous'])} "
                f"in the previous {fig.period.days} days{noise}.")
        weight = abs(ch) * (2 if (not math.isnan(pv) and pv < p.alpha) else 1)
        (working if ch > 0 else concerning).append(Statement(f"kpi_{name}", text, weight))
    return working, concerning


def _trend_statements(fig: Figures) -> tuple[list[Statement], list[Statement]]:
    """A daily revenue or sessions trend whose slope is significant."""
    working, concerning = [], []
    sym = fig.params.currency_symbol
    for metric, unit in (("revenue", "revenue"), ("sessions", "sessions")):
        t = fig.trends.get(metric)
        if t is None or not t.significant(fig.params.alpha):
            continue
        fmt = (lambda v: money(v, sym)) if metric == "revenue" else count
        sign = "+" if t.slope > 0 else "-"
        text = (f"Daily {unit} trended {'up' if t.slope > 0 else 'down'} through the period: {sign}{fmt(abs(t.slope))} "
                f"a day ({level_text(fig.params.confidence_level)} range {fmt(t.slope_low)} to {fmt(t.slope_high)}), "
                f"{signed_pct(t.change_over_period)} "
                f"from the first to the last day.")
        (working if t.slope > 0 else concerning).append(Statement(f"trend_{metric}", text, abs(t.change_over_period)))
    return working, concerning


def _channel_statements(fig: Figures) -> tuple[list[Statement], list[Statement]]:
    """Channels converting significantly above / below the rest of the site (enough sessions only)."""
    working, concerning = [], []
    p = fig.params
    site = fig.current["conversion_rate"]
    ch = fig.channels[(fig.channels["sessions"] >= p.min_group_sessions) & (fig.channels.index != "(none)")]
    sig = ch[ch["p_vs_rest"] < p.alpha]
    best = sig[sig["diff_vs_rest"] > 0].sort_values("conversion_rate", ascending=False).head(2)
    top_weight = math.inf
    for i, (name, r) in enumerate(best.iterrows()):
        # Weight = extra buying sessions vs the rest of the site. A big channel converting a little above
        # it can outweigh the best converter; the "also" sentence is capped at the "best" one's weight
        # so the sort by weight (stable) never puts it first or keeps it without the "best" one.
        weight = min(float(r["diff_vs_rest"] * r["sessions"]), top_weight)
        top_weight = weight
        working.append(Statement("channel_high", (
            f"{name} {'converts best' if i == 0 else 'also converts above the site'}: "
            f"{rate_with_ci(r['conversion_rate'], r['ci_low'], r['ci_high'], p.confidence_level)} of its "
            f"{count(r['sessions'])} sessions bought, vs {pct(site, 2)} for the site ({p_text(r['p_vs_rest'])})."),
            weight))
    for name, r in sig[sig["diff_vs_rest"] < 0].sort_values("sessions", ascending=False).head(2).iterrows():
        concerning.append(Statement("channel_low", (
            f"{name} brings {pct(r['share_of_sessions'])} of sessions but converts at "
            f"{rate_with_ci(r['conversion_rate'], r['ci_low'], r['ci_high'], p.confidence_level)}, below the site's "
            f"{pct(site, 2)} "
            f"({p_text(r['p_vs_rest'])})."), float(-r["diff_vs_rest"] * r["sessions"])))
    return working, concerning


def _device_statements(fig: Figures) -> tuple[list[Statement], list[Statement], list[Statement]]:
    """A device converting significantly below the reference device, with its weakest funnel step."""
    working, concerning, recs = [], [], []
    p = fig.params
    ref = fig.reference_device
    if ref is None:
        return working, concerning, recs
    for dev, t in sorted(fig.device_tests.items(), key=lambda kv: -fig.funnel.loc[kv[0], "sessions"]):
        n = int(fig.funnel.loc[dev, "sessions"])
        if n < p.min_group_sessions or not t.significant(p.alpha):
            continue
        share = n / fig.funnel["sessions"].sum()
        if t.diff < 0:
            step = weakest_step(fig.funnel, dev, ref)
            ref_step_rate = fig.funnel.loc[ref, f"{step[1]}_rate"] if step else math.nan
            step_txt = (f" The biggest shortfall is at {FUNNEL_LABELS[step[0]].lower()} → "
                        f"{FUNNEL_LABELS[step[1]].lower()} ({pct(step[2])} vs {pct(ref_step_rate)} on {ref}).")
            if not step:
                step_txt = ""
            concerning.append(Statement("device_gap", (
                f"{dev.capitalize()} is {pct(share, 0)} of sessions but converts at {pct(t.rate1, 2)} vs "
                f"{pct(t.rate2, 2)} on {ref} ({p_text(t.p_value)}).{step_txt}"), share))
            gain = (t.rate2 - t.rate1) / 2 * n
            aov = fig.current["aov"]
            value = "" if math.isnan(aov) else f", about {money(gain * aov, p.currency_symbol)} at the period's AOV"
            where = (f"the {FUNNEL_LABELS[step[0]].lower()} → {FUNNEL_LABELS[step[1]].lower()} step on {dev}"
                     if step else f"the {dev} checkout")
            recs.append(Statement("device_gap", (
                f"Fix {where}: closing half of {dev}'s conversion gap to {ref} would add about {count(gain)} "
                f"orders per {fig.period.days} days{value}."), gain * (aov if not math.isnan(aov) else 1)))
        else:
            working.append(Statement("device_high", (
                f"{dev.capitalize()} converts above {ref}: {pct(t.rate1, 2)} vs {pct(t.rate2, 2)} "
                f"({p_text(t.p_value)})."), share))
    return working, concerning, recs


def _visitor_statements(fig: Figures) -> tuple[list[Statement], list[Statement], list[Statement]]:
    """Returning vs new visitors, using the logit odds ratio (other factors held fixed)."""
    working, concerning, recs = [], [], []
    p = fig.params
    orr = fig.logit.odds_ratio("visitor", "Returning")
    if orr is None or "Returning" not in fig.visitors.index or "New" not in fig.visitors.index:
        return working, concerning, recs
    ret, new = fig.visitors.loc["Returning"], fig.visitors.loc["New"]
    if orr["p_value"] >= p.alpha:
        return working, concerning, recs
    if orr["odds_ratio"] > 1:
        working.append(Statement("returning", (
            f"Returning visitors buy: {pct(ret['conversion_rate'], 2)} convert vs {pct(new['conversion_rate'], 2)} of "
            f"new visitors. With channel, device and weekday held fixed their odds of buying are "
            f"{orr['odds_ratio']:.1f}× a new visitor's ({level_text(p.confidence_level)} range "
            f"{orr['ci_low']:.1f}–{orr['ci_high']:.1f}); they are "
            f"{pct(ret['share_of_sessions'])} of sessions and "
            f"{pct(ret['revenue'] / fig.current['revenue'] if fig.current['revenue'] else math.nan)} "
            f"of revenue."), float(orr["odds_ratio"])))
        recs.append(Statement("returning", (
            f"Bring visitors back: returning visitors convert {ret['conversion_rate'] / new['conversion_rate']:.1f}× as "
            f"often as new ones but are only {pct(ret['share_of_sessions'])} of sessions — grow email/SMS capture "
            f"and remarketing, and judge them by incremental lift, not attributed revenue."),
            float(ret["conversion_rate"] / new["conversion_rate"]) if new["conversion_rate"] else 0.0))
    else:
        concerning.append(Statement("returning", (
            f"Returning visitors convert less than new ones ({pct(ret['conversion_rate'], 2)} vs "
            f"{pct(new['conversion_rate'], 2)}; odds ratio {orr['odds_ratio']:.2f}, {p_text(orr['p_value'])})."), 1.0))
    return working, concerning, recs


def _product_statements(fig: Figures) -> list[Statement]:
    """The product carrying the largest share of the priced revenue."""
    table = fig.products["table"]
    if table.empty or math.isnan(table["share"].iloc[0]):
        return []
    top, r = table.index[0], table.iloc[0]
    scope = ("" if not fig.products["orders_missing"] else
             f" across the {count(fig.products['orders_priced'])} orders that carry item prices")
    return [Statement("product_top", (
        f"{top} leads the product mix: {money(r['revenue'], fig.params.currency_symbol)}, "
        f"{pct(r['share'])} of product revenue{scope}."), float(r["share"]) * 0.5)]


def _attribution_statements(fig: Figures) -> list[Statement]:
    """Channels whose credit depends on the model: openers (first click) vs closers (last click)."""
    recs = []
    p = fig.params
    if not {"share_first_click", "share_last_click"} <= set(fig.channels.columns):
        return recs
    gap = (fig.channels["share_first_click"] - fig.channels["share_last_click"]) * 100
    opener = gap.idxmax() if len(gap) else None
    if opener is not None and gap[opener] >= p.attribution_gap_points:
        r = fig.channels.loc[opener]
        recs.append(Statement("attribution_opener", (
            f"Do not cut {opener} on last-click numbers alone: it gets {pct(r['share_first_click'])} of revenue under "
            f"first click but {pct(r['share_last_click'])} under last click — it opens journeys others close. "
            f"Measure its real lift with a geo holdout or audience suppression test."), float(gap[opener])))
    closer = gap.idxmin() if len(gap) else None
    if closer is not None and -gap[closer] >= p.attribution_gap_points:
        r = fig.channels.loc[closer]
        recs.append(Statement("attribution_closer", (
            f"{closer} closes sales ({pct(r['share_last_click'])} of revenue under last click vs "
            f"{pct(r['share_first_click'])} under first click); part of that would happen anyway — test it before "
            f"adding budget."), float(-gap[closer])))
    if "Paid Search" in fig.channels.index and "share_last_click" in fig.channels.columns:
        share = float(fig.channels.loc["Paid Search", "share_last_click"])
        if share >= 0.15:
            recs.append(Statement("branded_search", (
                f"Run a branded-search lift test before changing Paid Search budgets: it holds {pct(share)} of "
                f"last-click revenue, and people who search for our brand name often buy anyway."), share * 10))
    return recs


def _top(statements: list[Statement], n: int) -> list[Statement]:
    return sorted(statements, key=lambda s: -s.weight)[:n]


def build_narrative(fig: Figures, max_items: int = 4) -> Narrative:
    """What is working / concerning / recommended, from the figures and the data caveats."""
    working, concerning, recs = [], [], []
    for w, c in (_kpi_statements(fig), _trend_statements(fig), _channel_statements(fig)):
        working += w
        concerning += c
    for w, c, r in (_device_statements(fig), _visitor_statements(fig)):
        working += w
        concerning += c
        recs += r
    working += _product_statements(fig)
    recs += _attribution_statements(fig)

    # Data problems big enough to change a headline number belong in "concerning" too.
    serious = [c for c in fig.caveats if c.id in ("client_id_loss", "referrer_loss", "missing_item_prices",
                                                  "missing_days")]
    if serious:
        concerning.append(Statement("data_quality", (
            "Tracking gaps make some numbers unreliable: " + "; ".join(
                f"{c.title.lower()} ({c.affects})" for c in serious) + " — sized under Data caveats."),
            0.5 + len(serious) * 0.01))
    recs += [Statement(f"caveat_{c.id}", c.recommendation, 1.0 + (0 if math.isnan(c.size) else c.size))
             for c in fig.caveats if c.recommendation]

    if fig.previous is None:
        concerning.append(Statement("no_previous", (
            f"No comparison yet: the warehouse has no complete previous {fig.period.days}-day period before "
            f"{day_text(fig.period.start)}, so changes cannot be judged — only levels and within-period trends."), 0.0))
    if not working:
        trend = fig.trends["revenue"]
        why = ("too few days to judge a trend" if math.isnan(trend.p_value)
               else f"no significant trend, {p_text(trend.p_value)}")
        working.append(Statement("steady", (
            f"Nothing stands out beyond noise: daily revenue averaged "
            f"{money(fig.daily['revenue'].mean(), fig.params.currency_symbol)} ({why})."), 0.0))
    return Narrative(_top(working, max_items), _top(concerning, max_items), _top(recs, max_items + 1))


def to_markdown(narrative: Narrative) -> str:
    """The three lists as Markdown (for the notebook / HTML report); statement texts name channels and
    products from the data, so they are escaped (``puffy.safe_output.md_text``): nbconvert renders
    raw HTML in Markdown."""
    def block(title: str, items: list[Statement]) -> str:
        body = "\n".join(f"- {md_text(s.text)}" for s in items) or "- Nothing to report."
        return f"### {title}\n\n{body}\n"
    return "\n".join([block("What is working", narrative.working), block("What is concerning", narrative.concerning),
                      block("Recommendations", narrative.recommendations)])


def caveats_markdown(caveats: list[Caveat]) -> str:
    if not caveats:
        return "No data-quality problem was flagged for this period."
    return "\n".join(f"- **{md_text(c.title)}** (affects {md_text(c.affects)}): {md_text(c.text)}" for c in caveats)


ATTRIBUTION_CAVEAT = (
    "Attribution is not incrementality. Every model above (Markov included) shares out the revenue of "
    "orders that happened among the channels a buyer touched; none says how many of those orders a channel "
    "caused. Direct, brand search, email and SMS reach people who were going to buy anyway and are credited "
    "generously. What would settle it: a geo holdout (switch a channel off in matched regions and compare "
    "sales), audience suppression (withhold ads or emails from a random control group), and a branded-search "
    "lift test (pause brand keywords on alternate days or regions).")


def statistics_explained(fig: Figures) -> list[str]:
    """Plain-words notes on the statistics, with this period's numbers."""
    p = fig.params
    sym = p.currency_symbol
    level = level_text(p.confidence_level)
    c = fig.current
    notes = [
        f"Conversion ranges are Wilson intervals: with {count(c['purchasing_sessions'])} buying sessions out of "
        f"{count(c['sessions'])}, the site's rate is {pct(c['conversion_rate'], 2)}, and rates like it would "
        f"plausibly fall in the {level} range shown. Small channels get wide ranges: do not rank them on the point value.",
        f"Average order value {money(fig.aov.estimate, sym)} has a {level} bootstrap range of "
        f"{money(fig.aov.low, sym)}–{money(fig.aov.high, sym)} ({count(p.bootstrap_resamples)} resamples of the "
        f"{count(c['orders'])} orders, fixed seed): a few large orders move it a lot.",
        "Two rates are called different when a two-proportion z-test gives p < "
        f"{p.alpha:g}: a gap that large would appear by chance less than {pct(p.alpha, 0)} of the time if the "
        "rates were equal.",
    ]
    t = fig.trends["revenue"]
    if not math.isnan(t.slope):
        notes.append(
            f"The trend line is a least-squares fit through daily revenue: {money(t.slope, sym)} a day "
            f"({level} range {money(t.slope_low, sym)} to {money(t.slope_high, sym)}, {p_text(t.p_value)}). "
            "A range that includes 0 means no clear trend.")
    lg = fig.logit
    if len(lg.table):
        refs = ", ".join(f"{k}: {v}" for k, v in lg.references.items())
        notes.append(
            f"The odds ratios come from a logistic regression of 'did the session buy?' on channel, device, weekday "
            f"and new/returning over {count(lg.n_sessions)} sessions ({count(lg.n_conversions)} buying). Each compares "
            f"a level with its reference ({refs}) with the other factors held fixed; above 1 = more likely to buy. "
            f"Channel and device levels with fewer than {p.min_level_conversions} buying sessions are pooled into 'Other'.")
    return notes
