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

import pandas as pd

from puffy.report.data import PeriodData
from puffy.report.evidence import recommendation_problems, sessions_to_detect
from puffy.report.kpis import FUNNEL_LABELS, Figures, later_id_collisions, weakest_step
from puffy.safe_output import md_text

MODEL_LABELS = {
    "first_click": "first click",
    "last_click": "last click",
    "last_non_direct_click": "last non-direct click",
    "linear": "linear",
    "position_based": "position-based",
    "time_decay": "time decay",
    "markov": "Markov",
}


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
    """ "1 order" / "12 orders" (with thousands separators)."""
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
    """ "1.73% (95% range 1.12%–2.66%)"."""
    return f"{pct(rate, digits)} ({level_text(level)} range {pct(low, digits)}–{pct(high, digits)})"


# --- statements -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """One sentence of the narrative; ``rule`` names the rule that wrote it, ``weight`` orders
    statements of the same list (biggest money or share first)."""

    rule: str
    text: str
    weight: float = 0.0
    kind: str = "claim"  # claim | action | test | fix | hypothesis
    evidence: tuple[str, ...] = ()  # comparison keys of the family the statement rests on
    adjusted: tuple[str, ...] = ()  # the adjusted model's keys that must agree (actions)


@dataclass
class Caveat:
    """A data problem of the period and the numbers it makes unreliable."""

    id: str
    title: str
    text: str
    affects: str
    size: float = math.nan  # the caveat's headline magnitude (share or count), for sorting/tests
    recommendation: str | None = None
    start: date | None = None  # the day the problem starts (marked on the daily charts)
    marker: str | None = None  # its label on the charts


@dataclass
class Narrative:
    working: list[Statement] = field(default_factory=list)
    concerning: list[Statement] = field(default_factory=list)
    recommendations: list[Statement] = field(default_factory=list)
    moved: list[Statement] = field(default_factory=list)  # what moved, largest first
    hypotheses: list[Statement] = field(default_factory=list)  # claims not established, with their test
    tracking: list[Statement] = field(default_factory=list)  # caveats that change a page-1 number

    def all(self) -> list[Statement]:
        return self.moved + self.working + self.concerning + self.recommendations + self.hypotheses + self.tracking


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
        values = _daily_values(
            [f for f in data.findings if str(f.get("id", "")).lower() in ("client_id.null_rate", "client_id_null_rate")]
            or findings
        )
        values = {d: v for d, v in values.items() if 0 <= v <= 1}
        if not values:
            if not findings:
                return None
            return Caveat(
                "client_id_loss",
                "Client ids missing",
                f"Client ids were flagged missing on {days_text(_finding_days(findings))}; the size of the "
                f"loss is not known here, so sessions and conversion rates on those days are undercounted "
                f"by an unknown amount.",
                "sessions, conversion rate",
                math.nan,
                "Fix client-id capture on the site.",
            )
        # Days the gate did not report count as 0: the share below is then a lower bound.
        share = sum(values.values()) / max(len(values), len(data.period.available))
        worst_day, worst = max(values.items(), key=lambda kv: kv[1])
        n_flagged = sum(1 for v in values.values() if v > p.client_id_null_caveat)
        source = "from the data-quality gate's daily rates"
    if share <= p.client_id_null_caveat and not findings:
        return None
    over = (
        [d for d, v in zip(t["day"], per_day) if v > p.client_id_null_caveat]
        if source.startswith("measured")
        else sorted(date.fromisoformat(d) for d, v in values.items() if v > p.client_id_null_caveat)
    )
    start = min(over) if over else None
    sessions = fig.current["sessions"]
    scope = "over the period"
    if start is not None and source.startswith("measured") and start > data.period.start:
        # Sized from the day the loss starts: pooled with the clean days before, it would look smaller.
        after = t["day"] >= start
        share = float(t.loc[after, "null_page_views"].sum() / t.loc[after, "page_views"].sum())
        sessions = int((data.human_sessions["session_date"] >= start).sum())
        scope = f"from {day_text(start)}"
    lost = sessions * share / (1 - share) if share < 1 else math.nan
    return Caveat(
        "client_id_loss",
        "Client ids missing",
        f"{pct(share)} of page views had no client id {scope} ({source}; worst {pct(worst)} on {day_text(worst_day)}; "
        f"above {pct(p.client_id_null_caveat, 0)} on {n_flagged} day(s)). Those visits belong to no session, so "
        f"sessions {scope} are undercounted by about {pct(share)} (roughly {count(lost)} sessions) and the channel "
        f"and device mixes lose the same visits. Revenue and orders are complete, but orders without a client id "
        f"cannot be tied to a channel.",
        "sessions, conversion rate, channel and device breakdowns",
        share,
        f"Fix client-id capture: {pct(worst)} of page views lost their id on {day_text(worst_day)}.",
        start=start,
        marker="client ids lost",
    )


def _shift_start(share: pd.Series, earliest) -> date | None:
    """The day from which a daily share shifts up most (best single mean-shift split, at least two
    days on each side), searched from the first flagged day on: pooling flagged days whose share
    did not move with those where it did would hide the size of the shift."""
    values = share.dropna()
    best, best_stat = None, 0.0
    n = len(values)
    for k in range(2, n - 1):
        day = values.index[k]
        if day < earliest:
            continue
        before, after = values.iloc[:k], values.iloc[k:]
        stat = k * (n - k) / n * (after.mean() - before.mean()) ** 2
        if after.mean() > before.mean() and stat > best_stat:
            best, best_stat = day, stat
    return best


def _referrer_caveat(data: PeriodData, findings: list[dict]) -> Caveat | None:
    """Days without (or with a shifted) referrer: search / social / referral visits look Direct.

    Sized from the day the shift starts (the best split of the daily Direct share at or after the
    first flagged day), against the days before it (or the previous period when the shift starts
    on the first day): Direct's share of sessions after vs before, the sessions that moved, and
    Organic Search's sessions a day before and after.
    """
    if not findings:
        return None
    flagged = sorted({date.fromisoformat(d) for d in _finding_days(findings)})
    first_seen = sorted(str(f.get("first_seen")) for f in findings if f.get("first_seen"))
    s = data.human_sessions
    by_day = (
        s.assign(direct=s["channel"].eq("Direct"), organic=s["channel"].eq("Organic Search"))
        .groupby("session_date")
        .agg(sessions=("session_id", "size"), direct=("direct", "sum"), organic=("organic", "sum"))
    )
    rec = (
        "Restore the referrer in the tracking export (and tag owned links with UTM parameters) so organic "
        "and referral visits stop landing in Direct."
    )
    start = _shift_start(by_day["direct"] / by_day["sessions"], flagged[0]) if len(by_day) >= 4 else None
    start = start or flagged[0]
    on = by_day.index >= start
    share_on = by_day.loc[on, "direct"].sum() / by_day.loc[on, "sessions"].sum() if on.any() else math.nan
    share_off = by_day.loc[~on, "direct"].sum() / by_day.loc[~on, "sessions"].sum() if (~on).any() else math.nan
    baseline = "before"
    organic_off = by_day.loc[~on, "organic"].mean() if (~on).any() else math.nan
    if math.isnan(share_off) and data.previous_sessions is not None and len(data.previous_sessions):
        prev = data.previous_sessions[~data.previous_sessions["is_bot"]]
        share_off, baseline = float(prev["channel"].eq("Direct").mean()), "in the previous period"
        organic_off = prev["channel"].eq("Organic Search").sum() / max(1, prev["session_date"].nunique())
    seen = f" (flagged from {day_text(first_seen[0])})" if first_seen else ""
    if math.isnan(share_on) or math.isnan(share_off):
        return Caveat(
            "referrer_loss",
            "Referrer lost",
            f"The referrer was missing or shifted from {day_text(start)}{seen}: visits from organic search, "
            f"social and referral links are counted as Direct from then on.",
            "channel mix and attribution",
            math.nan,
            rec,
        )
    gap = share_on - share_off
    moved = max(0.0, gap) * int(by_day.loc[on, "sessions"].sum())
    organic_on = by_day.loc[on, "organic"].mean()
    organic = (
        ""
        if math.isnan(organic_off)
        else f" Organic Search fell from {count(organic_off)} to {count(organic_on)} sessions a day."
    )
    size = (
        f"about {count(moved)} sessions from organic search, social and referral links are counted as Direct, "
        f"so those channels are understated and Direct overstated under every attribution model"
        if gap > 0
        else "Direct's share did not rise, so the misfiling looks small so far"
    )
    return Caveat(
        "referrer_loss",
        "Referrer lost",
        f"From {day_text(start)}{seen} Direct took {pct(share_on)} of sessions vs {pct(share_off)} {baseline} "
        f"({points(gap, 1)}): {size}.{organic}",
        "channel mix, channel conversion and attribution",
        max(0.0, gap),
        rec,
        start=start,
        marker="referrer lost",
    )


def _journey_caveat(fig: Figures) -> Caveat | None:
    """Orders whose journey no session explains (the checkout-host identity break): credited to
    "Untracked journey" in every model; the channel credit is a range across models and identity."""
    j = getattr(fig, "journeys", None) or {}
    if not j.get("known") or not j.get("untracked_orders"):
        return None
    sym = fig.params.currency_symbol
    ch = fig.channels
    ranges = ""
    if "credit_high" in ch.columns:
        named = ch.drop(index=[c for c in ("Untracked journey", "Continuation") if c in ch.index])
        top = named.sort_values("credit_high", ascending=False).head(2)
        spans = [f"{name} {money(r['credit_low'], sym)}–{money(r['credit_high'], sym)}" for name, r in top.iterrows()]
        views = int(ch["n_views"].max()) if "n_views" in ch.columns else 0
        if spans:
            ranges = (
                f" Channel credit is therefore a range across {views} model × identity views, e.g. "
                + ", ".join(spans)
                + "."
            )
    return Caveat(
        "untracked_journeys",
        "Journeys broken at checkout",
        f"{plural(j['untracked_orders'], 'order')} ({money(j['untracked_revenue'], sym)}, "
        f"{pct(j['untracked_revenue_share'])} of revenue) have no tracked journey (the checkout runs on another host "
        f"and the visitor id is lost): every model credits them to 'Untracked journey', not to a channel; "
        f"{plural(j['stitched_orders'], 'order')} were recovered by identity stitching.{ranges}",
        "channel credit, channel conversion",
        j["untracked_revenue_share"],
        "Carry the visitor id to the checkout host (cross-domain linking) so these orders keep their channel.",
    )


def _channel_tracking_caveat(findings: list[dict]) -> Caveat | None:
    """Monitoring's per-channel findings (a channel's sessions or click-id landings moving on their
    own): they change the channel table from the day they start. One line per channel: its latest
    value against the expected one, and the day it was first seen."""
    hits = [
        f
        for f in findings
        if str(f.get("id", "")).startswith(("segment.channel", "segment.click_id"))
        and f.get("severity") in ("warn", "error")
    ]
    if not hits:
        return None
    latest: dict[tuple, dict] = {}
    seen: dict[tuple, str] = {}
    for f in hits:
        key = (str(f.get("id")), str(f.get("metric")))
        first = str(f.get("first_seen") or min(f.get("dates") or [f.get("run_date")]))[:10]
        seen[key] = min(seen.get(key, first), first)
        if key not in latest or str(f.get("run_date")) > str(latest[key].get("run_date")):
            latest[key] = f
    parts = []
    for key, f in sorted(latest.items(), key=lambda kv: seen[kv[0]]):
        what = "landings" if key[0] == "segment.click_id" else "sessions"
        expected = (f.get("details") or {}).get("expected")
        value = f.get("value")
        size = (
            f" {count(value)} vs about {count(expected)} expected on {day_text(str(f.get('run_date')))}"
            if isinstance(value, (int, float)) and isinstance(expected, (int, float))
            else ""
        )
        parts.append(f"{key[1]} {what}{size} (from {day_text(seen[key])})")
    start = date.fromisoformat(min(seen.values()))
    return Caveat(
        "channel_tracking",
        "Channel volumes moved",
        "Monitoring flagged "
        + "; ".join(parts[:4])
        + (f"; and {len(parts) - 4} more" if len(parts) > 4 else "")
        + ". Channel rows mix days before and after these shifts.",
        "channel table, sessions",
        float(len(parts)),
        start=start,
        marker="channel alerts",
    )


def data_caveats(data: PeriodData, fig: Figures) -> list[Caveat]:
    """Which of the period's numbers the data problems make unreliable, and by how much.

    Each caveat is measured on the period's own data (tables, staged events) where possible and
    uses the daily findings to know on which days a problem was flagged. WARN/ERROR findings that
    no caveat explains are listed at the end (unless ``ignore_findings`` says they are harmless),
    so nothing the daily checks flagged is silently dropped.
    """
    ignored = set(fig.params.ignore_findings)
    findings = [f for f in data.findings if str(f.get("id")) not in ignored]
    client_id = [
        f
        for f in _findings_matching(findings, "client")
        if "null" in str(f.get("id", "")).lower() or "null" in str(f.get("metric", "")).lower()
    ]
    referrer = _findings_matching(findings, "referrer") + _findings_matching(findings, "direct_share")
    segments = [f for f in findings if str(f.get("id", "")).startswith("segment.")]
    bots = _findings_matching(findings, "bot", severities=("info", "warn", "error", "pass"))
    # A finding is claimed by the caveat that covers its problem even when that caveat does not fire
    # (e.g. zero-revenue findings while no purchase was rejected): it is never an "other warning".
    explained = [
        client_id,
        referrer,
        segments,
        bots,
        *(
            _findings_matching(findings, word)
            for word in ("item_price", "without_session", "revenue_zero", "zero_revenue", "replay", "collision")
        ),
    ]
    caveats = [
        _client_id_caveat(data, fig, client_id),
        _referrer_caveat(data, referrer),
        _journey_caveat(fig),
        _channel_tracking_caveat(segments),
        _item_price_caveat(data, fig),
        _orders_without_session_caveat(fig),
        _order_hygiene_caveat(data),
        _bot_caveat(data, fig, bots),
        _missing_days_caveat(data),
        _other_findings_caveat(findings, explained),
    ]
    return [c for c in caveats if c is not None]


def _item_price_caveat(data: PeriodData, fig: Figures) -> Caveat | None:
    """Item prices missing: revenue is known, its product split is not."""
    sym = fig.params.currency_symbol
    prod = fig.products
    if not prod["orders_missing"]:
        return None
    missing_orders = data.orders[data.orders["has_missing_item_prices"]]
    days = sorted(set(missing_orders["order_date"])) if len(missing_orders) else []
    when = f" from {days_text(days)}" if days else ""
    return Caveat(
        "missing_item_prices",
        "Item prices missing",
        f"{plural(prod['orders_missing'], 'order')}{when} {'has' if prod['orders_missing'] == 1 else 'have'} "
        f"no item prices. Their revenue "
        f"({money(prod['revenue_missing'], sym)}, {pct(prod['share_missing'])} of the period) is counted, "
        f"but which products it came from is unknown: the product mix describes the other "
        f"{count(prod['orders_priced'])} orders only.",
        "product mix",
        prod["share_missing"],
        f"Restore item_price in the purchase event: the product mix of {count(prod['orders_missing'])} "
        f"orders ({money(prod['revenue_missing'], sym)}) is unknown.",
    )


def _orders_without_session_caveat(fig: Figures) -> Caveat | None:
    """Orders without a session: revenue without a channel."""
    if not fig.orders_without_session:
        return None
    sym = fig.params.currency_symbol
    share_rev = fig.revenue_without_session / fig.current["revenue"] if fig.current["revenue"] else math.nan
    return Caveat(
        "orders_without_session",
        "Orders without a session",
        f"{count(fig.orders_without_session)} orders ({money(fig.revenue_without_session, sym)}, "
        f"{pct(share_rev)} of revenue) have no session (no client id or a bot user agent). They are in "
        f"revenue and orders but not in the conversion rate, and attribution credits them to 'Untracked journey'.",
        "conversion rate, Direct's attributed revenue",
        share_rev,
    )


def _order_hygiene_caveat(data: PeriodData) -> Caveat | None:
    """Excluded purchases and id collisions: handled upstream, but they move order counts."""
    rejects = data.rejects
    zero = rejects[rejects["reason"].astype(str).str.contains("zero", na=False)]
    replays = rejects[rejects["reason"].astype(str).eq("replay")]
    collisions = later_id_collisions(data.orders)  # the later order of each pair, as the sentence says
    if not (len(zero) or len(replays) or collisions):
        return None
    parts = []
    if len(zero):
        parts.append(
            f"{plural(len(zero), 'purchase event')} with revenue 0 and no items "
            f"{'is not counted as an order' if len(zero) == 1 else 'are not counted as orders'}"
        )
    if len(replays):
        parts.append(f"{plural(len(replays), 'repeated purchase event')} (replays) counted once")
    if collisions:
        parts.append(
            f"{plural(collisions, 'order')} sharing a transaction id with an earlier, different order "
            f"counted as separate orders"
        )
    return Caveat(
        "order_hygiene",
        "Purchase events cleaned",
        "; ".join(parts) + ".",
        "orders",
        float(len(zero) + len(replays) + collisions),
    )


def _bot_caveat(data: PeriodData, fig: Figures, bot_findings: list[dict]) -> Caveat | None:
    """Bots are excluded from every figure; sized from the gate's daily bot share of events, or
    (without it) from the bot sessions."""
    shares = {
        d: v
        for d, v in _daily_values([f for f in bot_findings if "share" in str(f.get("id", ""))]).items()
        if 0 <= v <= 1
    }
    if shares:
        mean = sum(shares.values()) / len(shares)
        low, high = min(shares.values()), max(shares.values())
        spread = f" ({pct(low)}–{pct(high)} a day)" if pct(low) != pct(high) else ""
        return Caveat(
            "bots",
            "Bot traffic excluded",
            f"Bots (recognised by user agent) made up {pct(mean)} of events on average{spread}. "
            f"They are left out of sessions, funnels, "
            f"conversion and attribution, so raw event counts overstate human traffic by that much.",
            "raw event counts only",
            mean,
        )
    if fig.bot_sessions:
        total = len(data.sessions)
        return Caveat(
            "bots",
            "Bot traffic excluded",
            f"{count(fig.bot_sessions)} sessions ({pct(fig.bot_sessions / total)}) came from bots and "
            f"are left out of sessions and every rate.",
            "sessions",
            fig.bot_sessions / total,
        )
    return None


def _missing_days_caveat(data: PeriodData) -> Caveat | None:
    if not data.period.missing:
        return None
    return Caveat(
        "missing_days",
        "Days missing",
        f"No published data for {days_text(data.period.missing)} (stopped by the data-quality gate, "
        f"quarantined by monitoring, or not run): totals cover {len(data.period.available)} of "
        f"{data.period.days} days.",
        "every total",
        float(len(data.period.missing)),
        "Re-run or repair the missing days (see outputs/index.html) before sharing totals.",
    )


def _other_findings_caveat(findings: list[dict], explained: list[list[dict]]) -> Caveat | None:
    """The WARN/ERROR findings no other caveat explains, grouped by id (the five most frequent named)."""
    used = {id(f) for group in explained for f in group}
    rest: dict[str, list[dict]] = {}
    for f in findings:
        if f.get("severity") in ("warn", "error") and id(f) not in used:
            rest.setdefault(str(f.get("id") or f.get("metric") or "finding"), []).append(f)
    if not rest:
        return None
    items = []
    for fid, fs in sorted(rest.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:5]:
        why = str(fs[0].get("impact") or fs[0].get("message") or "").rstrip(".")
        items.append(f"{fid} on {days_text(_finding_days(fs)) or f'{len(fs)} run(s)'}" + (f" ({why})" if why else ""))
    more = f"; and {len(rest) - 5} more" if len(rest) > 5 else ""
    return Caveat(
        "other_findings",
        "Other warnings of the daily runs",
        "Also flagged by the daily checks: " + "; ".join(items) + more + ".",
        "the figures each finding names",
        float(len(rest)),
    )


# --- the narrative rules ------------------------------------------------------------------------


def _adj(fig: Figures, key: str) -> str:
    """ "p = 0.012, adjusted p = 0.041" for a comparison of the family."""
    family = getattr(fig, "family", None)
    c = family.get(key) if family is not None else None
    if c is None or math.isnan(c.p_value):
        return "not tested"
    return f"{p_text(c.p_value)}, adjusted {p_text(c.adjusted_p)}"


def _survives(fig: Figures, key: str) -> bool:
    family = getattr(fig, "family", None)
    return family is not None and family.survives(key)


def _per_day(value: float, days: int) -> float:
    return value / days if days else math.nan


def _contributors(table, metric: str, n: int = 2) -> list[tuple[str, float, float]]:
    """The ``n`` segments that moved ``metric`` most in the direction of the total change:
    (segment, change, share of the total change)."""
    if table is None or table.empty:
        return []
    total = table[f"{metric}_change"].sum()
    if not total:
        return []
    same = table[table[f"{metric}_change"] * total > 0]
    same = same.reindex(same[f"{metric}_change"].abs().sort_values(ascending=False).index).head(n)
    return [(str(k), float(r[f"{metric}_change"]), float(r[f"{metric}_share_of_change"])) for k, r in same.iterrows()]


def _movement_statements(fig: Figures) -> list[Statement]:
    """The largest movements between the comparison windows, decomposed by channel and device.

    A movement is called real only when its comparison survives the family's control; the others
    are said to be within noise (so a reader sees the size and knows not to act on it)."""
    out = []
    if fig.base is None or fig.windows is None:
        return out
    p = fig.params
    sym = p.currency_symbol
    w = fig.windows
    fmt = {
        "revenue": lambda v: money(v, sym),
        "orders": count,
        "sessions": count,
        "aov": lambda v: money(v, sym, True),
        "conversion_rate": lambda v: pct(v, 2),
    }
    per_day = {"revenue", "orders", "sessions"}
    for name in ("sessions", "orders", "revenue", "conversion_rate", "aov"):
        k = fig.kpis[name]
        ch = k["change_pct"]
        if ch is None or math.isnan(ch):
            continue
        real = _survives(fig, f"change:{name}")
        if abs(ch) < p.notable_change and not real:
            continue
        base, recent = k["base"], k["recent"]
        if name in per_day:
            level = f"{fmt[name](_per_day(recent, len(w.current)))} vs {fmt[name](_per_day(base, len(w.base)))} a day"
        else:
            level = f"{fmt[name](recent)} vs {fmt[name](base)}"
        verdict = (
            f"beyond noise ({_adj(fig, f'change:{name}')})"
            if real
            else f"within noise ({_adj(fig, f'change:{name}')}): not a finding yet"
        )
        text = f"{k['label']} {'rose' if ch > 0 else 'fell'} {signed_pct(ch)} ({w.label}: {level}), {verdict}."
        if name in ("sessions", "orders", "revenue"):  # where it moved: descriptive, whatever the verdict
            parts = [
                f"{seg} {fmt[name](chg) if chg < 0 else '+' + fmt[name](chg)} ({pct(share, 0)})"
                for seg, chg, share in _contributors(fig.by_channel, name)
            ]
            devs = [f"{seg} {pct(share, 0)}" for seg, chg, share in _contributors(fig.by_device, name, 1)]
            if parts:
                text += " By channel: " + ", ".join(parts) + " of the change"
                text += f"; by device: {devs[0]}." if devs else "."
        weight = abs(ch) * (3 if real else 1) + (1 if name in ("sessions", "orders", "revenue") else 0)
        out.append(Statement(f"moved_{name}", text, weight))
    return out


def _change_point_statements(fig: Figures, top: int = 2) -> list[Statement]:
    """The largest detected level shifts (change points) by volume; each says whether it survives
    the control (a shift that does not is described, never called real)."""
    out = []
    for key, cp in fig.change_points.items():
        if cp.day is None or math.isnan(cp.p_value):
            continue
        rel = cp.relative_change
        real = _survives(fig, f"changepoint:{key}")
        if not real and (cp.p_value >= fig.params.alpha or abs(rel) < fig.params.notable_change):
            continue
        fmtv = (
            (lambda v: money(v, fig.params.currency_symbol))
            if key == "revenue"
            else ((lambda v: pct(v, 2)) if key == "conversion_rate" else count)
        )
        verdict = "" if real else ": not beyond noise after the control"
        text = (
            f"{cp.series[0].upper() + cp.series[1:]} shifted from {fmtv(cp.before)} to {fmtv(cp.after)} a day "
            f"from {day_text(cp.day)} ({signed_pct(rel, 0)}; change point, {_adj(fig, f'changepoint:{key}')})"
            f"{verdict}."
        )
        volume = abs(cp.after - cp.before) if key not in ("revenue", "conversion_rate") else 0.0
        out.append(Statement(f"changepoint_{key}", text, (2.0 if real else 0.5) + min(abs(rel), 1.0) + volume * 1e-4))
    return _top(out, top)


def _channel_statements(fig: Figures) -> tuple[list[Statement], list[Statement]]:
    """Channels converting above / below the rest of the site, when that survives the control."""
    working, concerning = [], []
    p = fig.params
    site = fig.current["conversion_rate"]
    ch = fig.channels[
        (fig.channels["sessions"] >= p.min_group_sessions)
        & ~fig.channels.index.isin(("Continuation", "Untracked journey", "(none)"))
    ]
    sig = ch[[_survives(fig, f"channel:{c}") for c in ch.index]] if len(ch) else ch
    best = sig[sig["diff_vs_rest"] > 0].sort_values("conversion_rate", ascending=False).head(2)
    top_weight = math.inf
    logit = getattr(fig, "logit", None)
    for i, (name, r) in enumerate(best.iterrows()):
        # Weight = extra buying sessions vs the rest of the site, capped at the "best" one's so the
        # "also" sentence never comes first or survives a cut without it.
        weight = min(float(r["diff_vs_rest"] * r["sessions"]), top_weight)
        top_weight = weight
        orr = None if logit is None else logit.odds_ratio("channel", str(name))
        held = (
            ""
            if orr is None
            else (
                f" With device, weekday and visitor type held fixed its odds ratio is {orr['odds_ratio']:.2f} "
                f"({orr['ci_low']:.2f}–{orr['ci_high']:.2f}) vs {logit.references.get('channel', '')}."
            )
        )
        working.append(
            Statement(
                "channel_high",
                (
                    f"{name} {'converts best' if i == 0 else 'also converts above the site'}: "
                    f"{rate_with_ci(r['conversion_rate'], r['ci_low'], r['ci_high'], p.confidence_level)} of its "
                    f"{count(r['sessions'])} sessions bought, vs {pct(site, 2)} for the site "
                    f"({_adj(fig, f'channel:{name}')})." + held
                ),
                weight,
            )
        )
    for name, r in sig[sig["diff_vs_rest"] < 0].sort_values("sessions", ascending=False).head(2).iterrows():
        concerning.append(
            Statement(
                "channel_low",
                (
                    f"{name} brings {pct(r['share_of_sessions'])} of sessions but converts at "
                    f"{rate_with_ci(r['conversion_rate'], r['ci_low'], r['ci_high'], p.confidence_level)}, below the "
                    "site's "
                    f"{pct(site, 2)} ({_adj(fig, f'channel:{name}')})."
                ),
                float(-r["diff_vs_rest"] * r["sessions"]),
            )
        )
    return working, concerning


def _power_text(fig: Figures, rate1: float, rate2: float, n1_per_day: float, ratio: float, who: str) -> str:
    """ "detecting it at the family's strictest threshold needs about N <who> sessions (~D days)"."""
    m = max(1, fig.family.size if fig.family is not None else 1)
    alpha = fig.params.alpha / m
    n = sessions_to_detect(rate1, rate2, alpha, fig.params.power, ratio)
    if math.isnan(n):
        return ""
    days = n / n1_per_day if n1_per_day else math.nan
    when = "" if math.isnan(days) else f", about {count(math.ceil(days))} days of {who} traffic"
    return (
        f"Detecting a gap this size with {pct(fig.params.power, 0)} power at α = {fig.params.alpha:g}/{m} "
        f"(the strictest step of {fig.family.method_label}) needs about {count(math.ceil(n))} {who} sessions{when}."
    )


def _device_statements(fig: Figures) -> tuple[list[Statement], list[Statement], list[Statement]]:
    """A device converting below the reference device: a finding when it survives the control, a
    recommendation only when the adjusted model confirms it too, a hypothesis otherwise."""
    concerning, recs, hyps = [], [], []
    p = fig.params
    ref = fig.reference_device
    if ref is None:
        return concerning, recs, hyps
    days = max(1, len(fig.period.available))
    for dev, t in sorted(fig.device_tests.items(), key=lambda kv: -fig.funnel.loc[kv[0], "sessions"]):
        n = int(fig.funnel.loc[dev, "sessions"])
        if n < p.min_group_sessions or math.isnan(t.p_value) or t.diff >= 0:
            continue
        share = n / fig.funnel["sessions"].sum()
        key, adj_key = f"device:{dev}", f"logit:device:{dev}"
        orr = fig.logit.odds_ratio("device", dev)
        orr_text = (
            ""
            if orr is None
            else f"; with channel, weekday and visitor type held fixed the odds ratio is {orr['odds_ratio']:.2f} "
            f"({level_text(p.confidence_level)} range {orr['ci_low']:.2f}–{orr['ci_high']:.2f}, "
            f"{_adj(fig, adj_key)})"
        )
        gap = (
            f"{dev.capitalize()} is {pct(share, 0)} of sessions and converts at {pct(t.rate1, 2)} vs "
            f"{pct(t.rate2, 2)} on {ref} ({_adj(fig, key)}{orr_text})"
        )
        problems = recommendation_problems(fig.family, (key,), (adj_key,))
        if _survives(fig, key):
            concerning.append(Statement("device_gap", gap + ".", share))
        if not problems:
            step = weakest_step(fig.funnel, dev, ref)
            gain = (t.rate2 - t.rate1) / 2 * n
            aov = fig.current["aov"]
            value = "" if math.isnan(aov) else f", about {money(gain * aov, p.currency_symbol)} at the period's AOV"
            where = (
                f"the {FUNNEL_LABELS[step[0]].lower()} → {FUNNEL_LABELS[step[1]].lower()} step on {dev}"
                if step
                else f"the {dev} checkout"
            )
            recs.append(
                Statement(
                    "device_gap",
                    (
                        f"Fix {where}: closing half of {dev}'s conversion gap to {ref} would add about {count(gain)} "
                        f"orders per {fig.period.days} days{value}."
                    ),
                    gain * (aov if not math.isnan(aov) else 1),
                    kind="action",
                    evidence=(key,),
                    adjusted=(adj_key,),
                )
            )
        elif t.p_value < p.alpha or (orr is not None and orr["p_value"] < p.alpha):
            ref_n = int(fig.funnel.loc[ref, "sessions"])
            power = _power_text(fig, t.rate1, t.rate2, n / days, ref_n / n, dev)
            hyps.append(
                Statement(
                    "device_gap",
                    (
                        f"Hypothesis, not a finding: {gap}. Settle it with an A/B test of the {dev} checkout before "
                        f"spending on it. {power}"
                    ),
                    share,
                    kind="hypothesis",
                    evidence=(key,),
                    adjusted=(adj_key,),
                )
            )
    return concerning, recs, hyps


def _visitor_statements(fig: Figures) -> tuple[list[Statement], list[Statement], list[Statement]]:
    """Returning vs new visitors: the same bar as devices (control + adjusted model)."""
    working, recs, hyps = [], [], []
    p = fig.params
    if fig.visitor_test is None or {"Returning", "New"} - set(fig.visitors.index):
        return working, recs, hyps
    ret, new = fig.visitors.loc["Returning"], fig.visitors.loc["New"]
    t = fig.visitor_test
    if math.isnan(t.p_value) or t.diff <= 0:
        return working, recs, hyps
    key, adj_key = "visitor:Returning", "logit:visitor:Returning"
    orr = fig.logit.odds_ratio("visitor", "Returning")
    orr_text = (
        ""
        if orr is None
        else f"; with channel, device and weekday held fixed their odds of buying are {orr['odds_ratio']:.1f}× a new "
        f"visitor's ({level_text(p.confidence_level)} range {orr['ci_low']:.1f}–{orr['ci_high']:.1f}, "
        f"{_adj(fig, adj_key)})"
    )
    rev_share = ret["revenue"] / fig.current["revenue"] if fig.current["revenue"] else math.nan
    claim = (
        f"Returning visitors convert at {pct(ret['conversion_rate'], 2)} vs {pct(new['conversion_rate'], 2)} "
        f"for new ones ({_adj(fig, key)}{orr_text}); they are {pct(ret['share_of_sessions'])} of sessions and "
        f"{pct(rev_share)} of revenue"
    )
    if _survives(fig, key):
        working.append(Statement("returning", claim + ".", float(t.diff)))
    if not recommendation_problems(fig.family, (key,), (adj_key,)):
        recs.append(
            Statement(
                "returning",
                (
                    "Bring visitors back: returning visitors convert "
                    f"{ret['conversion_rate'] / new['conversion_rate']:.1f}× as "
                    f"often as new ones but are only {pct(ret['share_of_sessions'])} of sessions — grow email/SMS "
                    "capture and "
                    f"remarketing, judged by incremental lift."
                ),
                float(ret["conversion_rate"] / new["conversion_rate"]),
                kind="action",
                evidence=(key,),
                adjusted=(adj_key,),
            )
        )
    elif t.p_value < p.alpha:
        days = max(1, len(fig.period.available))
        power = _power_text(
            fig,
            ret["conversion_rate"],
            new["conversion_rate"],
            ret["sessions"] / days,
            new["sessions"] / ret["sessions"],
            "returning",
        )
        hyps.append(
            Statement(
                "returning",
                f"Hypothesis, not a finding: {claim}. {power}",
                float(t.diff),
                kind="hypothesis",
                evidence=(key,),
                adjusted=(adj_key,),
            )
        )
    return working, recs, hyps


def _product_statements(fig: Figures) -> list[Statement]:
    """The product carrying the largest share of the priced revenue."""
    table = fig.products["table"]
    if table.empty or math.isnan(table["share"].iloc[0]):
        return []
    top, r = table.index[0], table.iloc[0]
    scope = (
        ""
        if not fig.products["orders_missing"]
        else f" across the {count(fig.products['orders_priced'])} orders that carry item prices"
    )
    return [
        Statement(
            "product_top",
            (
                f"{top} leads the product mix: {money(r['revenue'], fig.params.currency_symbol)}, "
                f"{pct(r['share'])} of product revenue{scope}."
            ),
            float(r["share"]) * 0.5,
        )
    ]


def _incrementality_statement(fig: Figures) -> Statement | None:
    """The next step on incrementality: a suppression test of the channel with the most credited
    revenue, sized by a power calculation."""
    h = fig.holdout
    if h is None:
        return None
    sym = fig.params.currency_symbol
    span = (
        money(h.credited_revenue_low, sym)
        if round(h.credited_revenue_low) == round(h.credited_revenue_high)
        else f"{money(h.credited_revenue_low, sym)}–{money(h.credited_revenue_high, sym)}"
    )
    weeks = math.ceil(h.days_needed / 7)
    return Statement(
        "incrementality",
        (
            f"Measure what {h.channel} causes: it is credited {span} across models and identity, but attribution is "
            "not "
            f"incrementality. Hold out a random {pct(h.holdout_share, 0)} of its audience (geo or user-level "
            "suppression) "
            f"and compare purchases: to detect a {pct(h.detectable_drop, 0)} drop of the held-out group's conversion "
            f"(from {pct(h.baseline_rate, 2)}) with {pct(h.power, 0)} power at α = {h.alpha:g} needs about "
            f"{count(math.ceil(h.sessions_needed))} sessions, about {count(math.ceil(h.days_needed))} days "
            f"({weeks} weeks) at its {count(h.sessions_per_day)} sessions a day."
        ),
        5.0,
        kind="test",
    )


def _attribution_hypotheses(fig: Figures) -> list[Statement]:
    """Channels whose credit depends on the model: hypotheses to test, never actions."""
    out = []
    p = fig.params
    if not {"share_first_click", "share_last_click"} <= set(fig.channels.columns):
        return out
    gap = (fig.channels["share_first_click"] - fig.channels["share_last_click"]) * 100
    gap = gap.drop(index=[c for c in ("Untracked journey",) if c in gap.index])
    if len(gap) and gap.max() >= p.attribution_gap_points:
        opener = gap.idxmax()
        r = fig.channels.loc[opener]
        out.append(
            Statement(
                "attribution_opener",
                (
                    f"{opener} opens journeys others close ({pct(r['share_first_click'])} of revenue under first "
                    "click, "
                    f"{pct(r['share_last_click'])} under last click): do not cut it on last-click numbers; a holdout "
                    "settles "
                    f"it."
                ),
                float(gap.max()),
                kind="hypothesis",
            )
        )
    return out


def _top(statements: list[Statement], n: int) -> list[Statement]:
    return sorted(statements, key=lambda s: -s.weight)[:n]


#: Caveats that change a number shown on page 1 (tiles, movements, channel table): on page 1.
PAGE_ONE_CAVEATS = (
    "referrer_loss",
    "client_id_loss",
    "untracked_journeys",
    "channel_tracking",
    "missing_days",
    "orders_without_session",
)


def build_narrative(fig: Figures, max_items: int = 4) -> Narrative:
    """What moved, what is working / concerning / recommended, the hypotheses still to test, and
    the tracking caveats of page 1 — from the figures, the family of comparisons and the caveats."""
    working, concerning, recs, hyps = [], [], [], []
    moved = _top(_movement_statements(fig), max_items - 1) + _change_point_statements(fig)
    w, c = _channel_statements(fig)
    working += w
    concerning += c
    c, r, h = _device_statements(fig)
    concerning += c
    recs += r
    hyps += h
    w, r, h = _visitor_statements(fig)
    working += w
    recs += r
    hyps += h
    working += _product_statements(fig)
    hyps += _attribution_hypotheses(fig)
    step = _incrementality_statement(fig)
    if step:
        recs.append(step)
    recs += [
        Statement(f"caveat_{cv.id}", cv.recommendation, 1.0 + (0 if math.isnan(cv.size) else cv.size), kind="fix")
        for cv in fig.caveats
        if cv.recommendation
    ]
    tracking = [
        Statement(f"tracking_{cv.id}", f"{cv.title}: {cv.text}", 0.0 if math.isnan(cv.size) else cv.size)
        for cv in fig.caveats
        if cv.id in PAGE_ONE_CAVEATS
    ]
    if fig.windows is not None and fig.windows.basis == "halves":
        concerning.append(
            Statement(
                "no_previous",
                (
                    f"No complete previous {fig.period.days}-day period before {day_text(fig.period.start)} in the "
                    "warehouse: "
                    f"changes compare the last {len(fig.windows.current)} days with the first {len(fig.windows.base)}."
                ),
                0.0,
            )
        )
    if not working:
        trend = fig.trends["revenue"]
        why = (
            "too few days to judge a trend"
            if math.isnan(trend.p_value)
            else f"no trend beyond noise, {_adj(fig, 'trend:revenue')}"
        )
        working.append(
            Statement(
                "steady",
                (
                    f"Nothing stands out beyond noise: daily revenue averaged "
                    f"{money(fig.daily['revenue'].mean(), fig.params.currency_symbol)} ({why})."
                ),
                0.0,
            )
        )
    out = Narrative(
        _top(working, max_items),
        _top(concerning, max_items),
        _top(recs, max_items + 1),
        moved=moved[: max_items + 1],
        hypotheses=_top(hyps, 3),
        tracking=_top(tracking, 5),
    )
    problems = validate_recommendations(fig, out)
    if problems:  # a rule above let an unsupported claim through: a bug, never a report
        raise AssertionError("unsupported recommendation(s): " + "; ".join(problems))
    return out


def validate_recommendations(fig: Figures, narrative: Narrative) -> list[str]:
    """Every action the report recommends must rest on evidence that survives the family's control
    and agrees with the adjusted model (``evidence.recommendation_problems``). Tests to run and
    tracking fixes claim no effect and need none. Returns the problems (empty = valid)."""
    out = []
    for s in narrative.recommendations:
        if s.kind == "action":
            out += [f"{s.rule}: {msg}" for msg in recommendation_problems(fig.family, s.evidence, s.adjusted)]
        elif s.kind not in ("test", "fix"):
            out.append(f"{s.rule}: a {s.kind} is not a recommendation")
    return out


def to_markdown(narrative: Narrative) -> str:
    """The lists as Markdown (for the notebook / HTML report); statement texts name channels and
    products from the data, so they are escaped (``puffy.safe_output.md_text``): nbconvert renders
    raw HTML in Markdown."""

    def block(title: str, items: list[Statement], numbered: bool = False) -> str:
        body = (
            "\n".join(
                f"{i}. {md_text(s.text)}" if numbered else f"- {md_text(s.text)}" for i, s in enumerate(items, start=1)
            )
            or "- Nothing to report."
        )
        return f"### {title}\n\n{body}\n"

    parts = [block("What moved", narrative.moved)] if narrative.moved else []
    parts += [
        block("What is working", narrative.working),
        block("What is concerning", narrative.concerning),
        block("Recommendations", narrative.recommendations, numbered=True),
    ]
    if narrative.hypotheses:
        parts.append(block("Not established — test before acting", narrative.hypotheses))
    if narrative.tracking:
        parts.append(block("Tracking caveats that change the numbers above", narrative.tracking))
    return "\n".join(parts)


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
    "lift test (pause brand keywords on alternate days or regions)."
)


def statistics_explained(fig: Figures) -> list[str]:
    """Plain-words notes on the statistics, with this period's numbers."""
    p = fig.params
    sym = p.currency_symbol
    level = level_text(p.confidence_level)
    c = fig.current
    notes = [
        f"Conversion ranges are Wilson intervals: with {count(c['purchasing_sessions'])} buying sessions out of "
        f"{count(c['sessions'])}, the site's rate is {pct(c['conversion_rate'], 2)}, and rates like it would "
        f"plausibly fall in the {level} range shown. Small channels get wide ranges: do not rank them on the point "
        "value.",
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
            "A range that includes 0 means no clear trend."
        )
    lg = fig.logit
    if len(lg.table):
        refs = ", ".join(f"{k}: {v}" for k, v in lg.references.items())
        notes.append(
            f"The odds ratios come from a logistic regression of 'did the session buy?' on channel, device, weekday "
            f"and new/returning over {count(lg.n_sessions)} sessions ({count(lg.n_conversions)} buying). Each compares "
            f"a level with its reference ({refs}) with the other factors held fixed; above 1 = more likely to buy. "
            f"Channel and device levels with fewer than {p.min_level_conversions} buying sessions are pooled into "
            "'Other'."
        )
    return notes
