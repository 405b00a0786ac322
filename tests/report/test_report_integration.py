"""The executive summary on built warehouses: the bundled sample (14 days, every fault on), a
3-day period of it, and the real export (PUFFY_REAL_DATA_DIR; skipped when unset).

Each warehouse is built the documented way (gate → staged events → transform rebuild), in-process.
Checked: the PDF stays 1–2 pages; every number the narrative states is regenerated from the
tables; no channel at or above the fold threshold is folded; every recommendation's evidence
survives the family's control and agrees with the adjusted model; the real export's mobile claim
(unadjusted p ≈ 0.025, logit OR 0.88) is a hypothesis, not a recommendation.
"""

from __future__ import annotations

import re
from datetime import date

import pytest

from puffy.dq.gate import run_gate
from puffy.params import DEFAULT_PARAMS_DIR
from puffy.report import build_report, write_outputs
from puffy.report.narrative import count, money, pct, points, validate_recommendations
from puffy.report.pdf import channel_table_html, print_html
from puffy.transform.pipeline import run_transform

pytestmark = [
    pytest.mark.filterwarnings("ignore:The 'future.infer_string' option is deprecated"),
    pytest.mark.filterwarnings("ignore:fetch_arrow_table\\(\\) is deprecated"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def _build(raw, root, last_day: str | None = None):
    """Gate + transform rebuild; with ``last_day`` the gate's report (whose findings carry their
    dates) lands where the report reads a day's findings, runs/<last_day>/dq_report.json."""
    out = root / "runs" / last_day if last_day else root / "runs_dq"
    gate = run_gate(raw, DEFAULT_PARAMS_DIR / "dq_rules.yaml", out, staging_root=root / "intermediate")
    result = run_transform(
        root / "intermediate",
        root / "warehouse",
        DEFAULT_PARAMS_DIR,
        start=gate.days[0],
        end=gate.days[-1],
        mode="rebuild",
    )
    assert result.status != "error", result.message
    return root


@pytest.fixture(scope="module")
def sample_outputs(tmp_path_factory):
    from puffy.sample import SampleConfig, generate_sample

    root = tmp_path_factory.mktemp("report_sample")
    generate_sample(root / "raw", SampleConfig())  # the bundled sample: `puffy sample` defaults
    return _build(root / "raw", root)


@pytest.fixture(scope="module")
def sample_report(sample_outputs):
    return build_report(sample_outputs, DEFAULT_PARAMS_DIR)


def _numbers(text: str) -> list[str]:
    """The numbers a sentence states, as written (money, percentages, counts, ratios, p-values).
    Plain integers up to 31 are left out: they are day-of-month, days and weeks of the wording."""
    text = re.sub(r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{1,2} [A-Z][a-z]{2}\b", "", text)
    out = []
    for token in re.findall(r"\d[\d,]*(?:\.\d+)?", text):
        bare = token.replace(",", "")
        if "." not in bare and int(bare) <= 31:
            continue
        out.append(bare)
    return out


def _renderings(value: float) -> set[str]:
    """Every way the report prints a value, stripped to the bare number."""
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return set()
    v = float(value)
    forms = {
        money(v),
        money(v, cents=True),
        count(v),
        pct(v, 0),
        pct(v, 1),
        pct(v, 2),
        points(v, 1),
        points(v, 2),
        f"{v:.1f}",
        f"{v:.2f}",
        f"{v:.3f}",
    }
    return {re.sub(r"[^\d.]", "", f).lstrip(".") for f in forms}


def _table_values(fig, data) -> set[str]:
    """Bare renderings of every value of the tables the report is built on, regenerated here from
    the warehouse frames where the report aggregates them (daily, channels, devices)."""
    values = []
    s = data.human_sessions
    o = data.orders
    # regenerated from the warehouse rows
    values += [len(s), s["purchased"].sum(), len(o), o["revenue"].sum(), o["revenue"].mean(), s["purchased"].mean()]
    for frame, col in ((s, "channel"), (s, "device_type"), (s, "is_returning_client")):
        g = frame.groupby(col).agg(n=("session_id", "size"), buy=("purchased", "sum"), rev=("revenue", "sum"))
        values += list(g["n"]) + list(g["buy"]) + list(g["buy"] / g["n"]) + list(g["n"] / len(s))
        values += list(g["rev"] / o["revenue"].sum())
    for frame in (fig.daily, fig.channels, fig.funnel, fig.visitors, fig.products["table"]):
        values += [x for x in frame.select_dtypes("number").to_numpy().ravel()]
    for table in (fig.by_channel, fig.by_device):
        if table is not None:
            values += list(table.select_dtypes("number").to_numpy().ravel())
    for k in fig.kpis.values():
        values += [k.get(x) for x in ("value", "base", "recent", "change", "change_pct") if k.get(x) is not None]
    if fig.windows is not None and fig.base is not None:
        for name in ("sessions", "orders", "revenue"):
            values += [fig.recent[name] / len(fig.windows.current), fig.base[name] / len(fig.windows.base)]
    fam = fig.family.table()
    values += list(fam["p_value"]) + list(fam["adjusted_p"]) + [float(fig.family.size)]
    values += list(fig.logit.table[["odds_ratio", "ci_low", "ci_high", "p_value"]].to_numpy().ravel())
    for cp in fig.change_points.values():
        values += [cp.before, cp.after, cp.relative_change]
    for c in fig.caveats:
        values.append(c.size)
    values += [v for v in fig.journeys.values() if isinstance(v, (int, float))]
    p = fig.params
    values += [
        p.alpha,
        p.power,
        p.confidence_level,
        p.fold_threshold,
        p.client_id_null_caveat,
        p.incrementality_detectable_drop,
        p.incrementality_holdout_share,
    ]
    out = set()
    for v in values:
        try:
            out |= _renderings(float(v))
        except (TypeError, ValueError):
            continue
    return out


def _derived(fig, data) -> set[str]:
    """Numbers a rule derives from the tables, regenerated here the way the docs define them."""
    out = set()
    prod = fig.products
    values = [prod["orders_priced"], prod["orders_missing"], prod["revenue_missing"]]
    # monitoring's per-channel findings: the value and the expected level they report
    for f in data.findings:
        if str(f.get("id", "")).startswith("segment."):
            values += [f.get("value"), (f.get("details") or {}).get("expected")]
    s = data.human_sessions
    caveats = {c.id: c for c in fig.caveats}
    ref = caveats.get("referrer_loss")
    if ref is not None and ref.start is not None:  # Direct's share from the day the shift starts vs before
        on = s["session_date"] >= ref.start
        share_on, share_off = s.loc[on, "channel"].eq("Direct").mean(), s.loc[~on, "channel"].eq("Direct").mean()
        days_on, days_off = s.loc[on, "session_date"].nunique(), s.loc[~on, "session_date"].nunique()
        values += [
            share_on,
            share_off,
            (share_on - share_off) * on.sum(),
            s.loc[on, "channel"].eq("Organic Search").sum() / days_on,
            s.loc[~on, "channel"].eq("Organic Search").sum() / max(1, days_off),
        ]
    cid = caveats.get("client_id_loss")
    if cid is not None and data.client_id_null is not None:  # page views without a client id, per day
        t = data.client_id_null
        values += list(t["null_page_views"] / t["page_views"])
        after = t["day"] >= (cid.start or fig.period.start)
        share = t.loc[after, "null_page_views"].sum() / t.loc[after, "page_views"].sum()
        n = (s["session_date"] >= (cid.start or fig.period.start)).sum()
        values += [share, n * share / (1 - share)]
    for v in values:
        try:
            out |= _renderings(float(v))
        except (TypeError, ValueError):
            continue
    h = fig.holdout
    if h is not None:
        for v in (
            h.sessions_needed,
            h.days_needed,
            h.sessions_per_day,
            h.credited_revenue_low,
            h.credited_revenue_high,
        ):
            out |= _renderings(v) | {str(int(-(-v // 1)))}
    return out


def _check_narrative_numbers(report):
    fig = report.figures
    known = _table_values(fig, report.data) | _derived(fig, report.data)
    unexplained = []
    for s in report.narrative.all():
        if s.rule in ("device_gap", "returning") and s.kind in ("hypothesis", "action"):
            continue  # power sizes and gains: checked in test_report_evidence by hand
        for token in _numbers(s.text):
            if token.lstrip("0.") == "" or token in known:
                continue
            unexplained.append((token, s.rule, s.text[:120]))
    return unexplained


def test_every_number_the_narrative_states_is_regenerated_from_the_tables(sample_report):
    assert not _check_narrative_numbers(sample_report)


def test_sample_pdf_one_or_two_pages_and_recommendations_are_supported(sample_report, tmp_path):
    written = write_outputs(sample_report, tmp_path)
    import json

    kpis = json.loads(written["kpis"].read_text())
    assert 1 <= kpis["pdf_pages"] <= 2
    assert validate_recommendations(sample_report.figures, sample_report.narrative) == []
    # The bundled sample has the checkout break: Untracked journey is a row of its own.
    assert "Untracked journey" in sample_report.figures.kept_channels


def test_no_channel_above_the_threshold_is_folded(sample_report):
    fig = sample_report.figures
    ch = fig.channels
    share_sessions = ch["sessions"] / ch["sessions"].sum()
    share_revenue = ch["credit_high"] / fig.current["revenue"]
    must = set(ch.index[(share_sessions >= fig.params.fold_threshold) | (share_revenue >= fig.params.fold_threshold)])
    must |= {c for c in ("Direct", "Untracked journey") if c in ch.index}
    for layout_html in (
        channel_table_html(fig, fig.params.pdf_attribution_models, 3),
        print_html(fig, sample_report.narrative),
    ):
        for channel in must:
            assert f"<tr><td>{channel}</td>" in layout_html, channel


def test_three_day_period_stays_within_two_pages(sample_outputs, tmp_path):
    rep = build_report(sample_outputs, DEFAULT_PARAMS_DIR, start="2025-03-06", end="2025-03-08")
    assert rep.figures.windows.basis == "previous"  # the three days before are in the warehouse
    written = write_outputs(rep, tmp_path)
    import json

    assert 1 <= json.loads(written["kpis"].read_text())["pdf_pages"] <= 2
    assert not _check_narrative_numbers(rep)
    first = build_report(sample_outputs, DEFAULT_PARAMS_DIR, start="2025-02-23", end="2025-02-25")
    assert first.figures.windows.basis == "halves" and len(first.figures.windows.current) == 1
    assert 1 <= json.loads(write_outputs(first, tmp_path / "first")["kpis"].read_text())["pdf_pages"] <= 2


@pytest.mark.real_data
def test_real_export_report(real_data_dir, tmp_path_factory):
    root = _build(real_data_dir, tmp_path_factory.mktemp("report_real"), "2025-03-08")
    rep = build_report(root, DEFAULT_PARAMS_DIR, start="2025-02-23", end="2025-03-08")
    fig = rep.figures
    written = write_outputs(rep, root / "report")
    import json

    assert 1 <= json.loads(written["kpis"].read_text())["pdf_pages"] <= 2
    assert validate_recommendations(fig, rep.narrative) == []
    assert not _check_narrative_numbers(rep)
    # The mobile gap (p ≈ 0.025 unadjusted, logit OR ≈ 0.88) is a hypothesis, never a recommendation.
    assert "device_gap" not in {s.rule for s in rep.narrative.recommendations}
    assert "device_gap" in {s.rule for s in rep.narrative.hypotheses}
    # Affiliates (3rd largest) and Paid Social keep their rows; Direct and Untracked journey are explicit.
    for channel in ("Affiliates", "Paid Social", "Direct", "Untracked journey"):
        assert channel in fig.kept_channels
    # The referrer caveat is sized from 4 Mar (not pooled from 28 Feb) and is on page 1.
    ref = next(c for c in fig.caveats if c.id == "referrer_loss")
    assert ref.start == date(2025, 3, 4) and ref.size > 0.10
    assert any(s.rule == "tracking_referrer_loss" for s in rep.narrative.tracking)
    # The tiles compare halves and say so; the revenue still reconciles.
    assert fig.windows.basis == "halves" and round(fig.current["revenue"], 2) == 294461.40
