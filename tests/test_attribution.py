"""Tests for puffy.attribution: hand-computed credits for every model.

Run: cd /work/main && PYTHONPATH=lib .venv/bin/python -m pytest tests/test_attribution.py -q
"""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from puffy.attribution import (
    ATTRIBUTION_COLUMNS,
    CONVERSION,
    MODEL_NAMES,
    NULL_STATE,
    START,
    AttributionParams,
    attribute,
    attribution_summary,
    markov_removal_effects,
    markov_transition_counts,
    order_touchpoints,
    windowed_free_transitions,
)

# ibis 12 + pandas 3 emit this on every to_pandas(); it is not ours.
pytestmark = pytest.mark.filterwarnings("ignore:The 'future.infer_string' option is deprecated")

T0 = pd.Timestamp("2024-03-10 12:00:00", tz="UTC")
DAY = pd.Timedelta(days=1)
MS = pd.Timedelta(milliseconds=1)

SESSION_SCHEMA = {
    "session_id": "string",
    "person_id": "string",
    "session_start": "timestamp('UTC')",
    "channel": "string",
}
ORDER_SCHEMA = {
    "order_key": "string",
    "person_id": "string",
    "session_id": "string",
    "order_ts": "timestamp('UTC')",
    "revenue": "float64",
}


def make_sessions(rows):
    """rows: (session_id, person_id, session_start, channel)."""
    return ibis.memtable(pd.DataFrame(rows, columns=list(SESSION_SCHEMA)), schema=SESSION_SCHEMA)


def make_orders(rows):
    """rows: (order_key, person_id, session_id, order_ts, revenue)."""
    return ibis.memtable(pd.DataFrame(rows, columns=list(ORDER_SCHEMA)), schema=ORDER_SCHEMA)


def run(sessions, orders, **params) -> pd.DataFrame:
    df = attribute(sessions, orders, AttributionParams(**params)).to_pandas()
    df["session_id"] = df["session_id"].astype(object).where(df["session_id"].notna(), None)
    return df.sort_values(["model", "order_key", "touch_index"]).reset_index(drop=True)


def allocation(df: pd.DataFrame, model: str) -> dict:
    """{order_key: [(session_id, channel, attributed_revenue), ...] by touch_index}."""
    out = {}
    for row in df[df.model == model].itertuples():
        out.setdefault(row.order_key, []).append((row.session_id, row.channel, row.attributed_revenue))
    return out


def credits(df: pd.DataFrame, model: str) -> dict:
    """{order_key: [credit, ...] by touch_index}."""
    sub = df[df.model == model]
    return {k: list(g.credit) for k, g in sub.groupby("order_key", sort=True)}


def cents(x: float) -> int:
    return int(round(x * 100))


# ---------------------------------------------------------------------------
# Shared journey set (lookback 7 days, half-life 7 days)
# ---------------------------------------------------------------------------
#
#  A: a1 Paid Search d-6, a2 Email d-2, a3 Direct d-0 (order session) -> oA 300.00
#  B: b1 Organic Search 1h before                                      -> oB 100.00
#  C: c0 Paid Social d-30 (outside lookback), order without session    -> oC  50.00
#  D: d0 Referral d-7 - 1ms (excluded), d1 Affiliates d-7 exactly (included),
#     d2 SMS d-3, d3 Direct d-0                                        -> oD 100.00
#  E: e1 Paid Social d-10, e2 Email d-5, oE1 at d-4 (session e2)       -> oE1 80.00
#     e3 Organic Search d-1, oE2 at d-0 (session e3)                   -> oE2 120.00
#     (oE1 window d-11..d-4 = {e1, e2}; oE2 window d-7..d-0 = {e2, e3}:
#      e2 is a touch of both orders)
#  F: f1 Direct d-2, f2 Direct d-0 (all-direct journey)               -> oF  40.00
#  Total revenue: 300 + 100 + 50 + 100 + 80 + 120 + 40 = 790.00

SESSIONS = [
    ("a1", "A", T0 - 6 * DAY, "Paid Search"),
    ("a2", "A", T0 - 2 * DAY, "Email"),
    ("a3", "A", T0, "Direct"),
    ("b1", "B", T0 - pd.Timedelta(hours=1), "Organic Search"),
    ("c0", "C", T0 - 30 * DAY, "Paid Social"),
    ("d0", "D", T0 - 7 * DAY - MS, "Referral"),
    ("d1", "D", T0 - 7 * DAY, "Affiliates"),
    ("d2", "D", T0 - 3 * DAY, "SMS"),
    ("d3", "D", T0, "Direct"),
    ("e1", "E", T0 - 10 * DAY, "Paid Social"),
    ("e2", "E", T0 - 5 * DAY, "Email"),
    ("e3", "E", T0 - 1 * DAY, "Organic Search"),
    ("f1", "F", T0 - 2 * DAY, "Direct"),
    ("f2", "F", T0, "Direct"),
]
ORDERS = [
    ("oA", "A", "a3", T0, 300.00),
    ("oB", "B", "b1", T0, 100.00),
    ("oC", "C", None, T0, 50.00),
    ("oD", "D", "d3", T0, 100.00),
    ("oE1", "E", "e2", T0 - 4 * DAY, 80.00),
    ("oE2", "E", "e3", T0, 120.00),
    ("oF", "F", "f2", T0, 40.00),
]
TOTAL_CENTS = 79_000


@pytest.fixture(scope="module")
def result() -> pd.DataFrame:
    return run(make_sessions(SESSIONS), make_orders(ORDERS))


def test_output_columns_and_models(result):
    assert tuple(result.columns) == ATTRIBUTION_COLUMNS
    assert set(result.model) == set(MODEL_NAMES)


def test_touchpoints_lookback_boundary_and_shared_session():
    tp = order_touchpoints(make_sessions(SESSIONS), make_orders(ORDERS), AttributionParams()).to_pandas()
    tp["session_id"] = tp["session_id"].astype(object).where(tp["session_id"].notna(), None)
    touches = {k: list(g.sort_values("touch_index").session_id) for k, g in tp.groupby("order_key")}
    assert touches["oA"] == ["a1", "a2", "a3"]
    assert touches["oB"] == ["b1"]
    assert touches["oC"] == [None]  # placeholder row, no touchpoint
    # d1 starts exactly 7 days before the order -> included;
    # d0 starts 1 ms earlier -> excluded.
    assert touches["oD"] == ["d1", "d2", "d3"]
    assert touches["oE1"] == ["e1", "e2"]
    assert touches["oE2"] == ["e2", "e3"]  # e2 is a touch of both E orders
    assert touches["oF"] == ["f1", "f2"]

    a = tp[tp.order_key == "oA"].sort_values("touch_index")
    assert list(a.days_before_order) == [6.0, 2.0, 0.0]
    assert list(a.touch_count) == [3, 3, 3]
    assert not a.is_unattributed.any()
    c = tp[tp.order_key == "oC"].iloc[0]
    assert c.is_unattributed and c.channel == "Untracked journey" and c.touch_count == 1


def test_first_click(result):
    assert allocation(result, "first_click") == {
        "oA": [("a1", "Paid Search", 300.0), ("a2", "Email", 0.0), ("a3", "Direct", 0.0)],
        "oB": [("b1", "Organic Search", 100.0)],
        "oC": [(None, "Untracked journey", 50.0)],
        "oD": [("d1", "Affiliates", 100.0), ("d2", "SMS", 0.0), ("d3", "Direct", 0.0)],
        "oE1": [("e1", "Paid Social", 80.0), ("e2", "Email", 0.0)],
        "oE2": [("e2", "Email", 120.0), ("e3", "Organic Search", 0.0)],
        "oF": [("f1", "Direct", 40.0), ("f2", "Direct", 0.0)],
    }


def test_last_click(result):
    assert allocation(result, "last_click") == {
        "oA": [("a1", "Paid Search", 0.0), ("a2", "Email", 0.0), ("a3", "Direct", 300.0)],
        "oB": [("b1", "Organic Search", 100.0)],
        "oC": [(None, "Untracked journey", 50.0)],
        "oD": [("d1", "Affiliates", 0.0), ("d2", "SMS", 0.0), ("d3", "Direct", 100.0)],
        "oE1": [("e1", "Paid Social", 0.0), ("e2", "Email", 80.0)],
        "oE2": [("e2", "Email", 0.0), ("e3", "Organic Search", 120.0)],
        "oF": [("f1", "Direct", 0.0), ("f2", "Direct", 40.0)],
    }


def test_last_non_direct_click(result):
    assert allocation(result, "last_non_direct_click") == {
        # last non-Direct touch of A is the Email (a2)
        "oA": [("a1", "Paid Search", 0.0), ("a2", "Email", 300.0), ("a3", "Direct", 0.0)],
        "oB": [("b1", "Organic Search", 100.0)],
        "oC": [(None, "Untracked journey", 50.0)],
        "oD": [("d1", "Affiliates", 0.0), ("d2", "SMS", 100.0), ("d3", "Direct", 0.0)],
        "oE1": [("e1", "Paid Social", 0.0), ("e2", "Email", 80.0)],
        "oE2": [("e2", "Email", 0.0), ("e3", "Organic Search", 120.0)],
        # all touches Direct -> falls back to the last touch
        "oF": [("f1", "Direct", 0.0), ("f2", "Direct", 40.0)],
    }


def test_linear_with_uneven_cents(result):
    assert allocation(result, "linear") == {
        "oA": [("a1", "Paid Search", 100.0), ("a2", "Email", 100.0), ("a3", "Direct", 100.0)],
        "oB": [("b1", "Organic Search", 100.0)],
        "oC": [(None, "Untracked journey", 50.0)],
        # 10000 cents / 3 = 3333.33 each -> floors 3333*3 = 9999, 1 cent left;
        # equal remainders (.33) -> tie broken by touch_index -> first touch.
        "oD": [("d1", "Affiliates", 33.34), ("d2", "SMS", 33.33), ("d3", "Direct", 33.33)],
        "oE1": [("e1", "Paid Social", 40.0), ("e2", "Email", 40.0)],
        "oE2": [("e2", "Email", 60.0), ("e3", "Organic Search", 60.0)],
        "oF": [("f1", "Direct", 20.0), ("f2", "Direct", 20.0)],
    }
    assert credits(result, "linear")["oD"] == pytest.approx([1 / 3, 1 / 3, 1 / 3])


def test_position_based(result):
    assert allocation(result, "position_based") == {
        # 3 touches: 40% / 20% / 40% of 300 = 120 / 60 / 120
        "oA": [("a1", "Paid Search", 120.0), ("a2", "Email", 60.0), ("a3", "Direct", 120.0)],
        "oB": [("b1", "Organic Search", 100.0)],  # 1 touch -> 100%
        "oC": [(None, "Untracked journey", 50.0)],
        "oD": [("d1", "Affiliates", 40.0), ("d2", "SMS", 20.0), ("d3", "Direct", 40.0)],
        # 2 touches -> 0.4/(0.4+0.4) = 50% each
        "oE1": [("e1", "Paid Social", 40.0), ("e2", "Email", 40.0)],
        "oE2": [("e2", "Email", 60.0), ("e3", "Organic Search", 60.0)],
        "oF": [("f1", "Direct", 20.0), ("f2", "Direct", 20.0)],
    }


def test_position_based_middle_share_split():
    # 4 touches: 0.4 / 0.2/2 / 0.2/2 / 0.4 of 50.00 -> 20 / 5 / 5 / 20
    sessions = make_sessions([(f"s{i}", "P", T0 - (4 - i) * DAY, "Email") for i in range(4)])
    orders = make_orders([("o1", "P", "s3", T0, 50.00)])
    df = run(sessions, orders, models=["position_based"])
    assert list(df.attributed_revenue) == [20.0, 5.0, 5.0, 20.0]
    assert list(df.credit) == pytest.approx([0.4, 0.1, 0.1, 0.4])


def test_time_decay(result):
    # weight = 2^(-days/7), normalised per order; cents by largest remainder.
    # oA: w = 2^(-6/7)=0.552045, 2^(-2/7)=0.820335, 2^0=1 ; sum 2.372380
    #     credit 0.232697 / 0.345786 / 0.421518
    #     x 30000 cents = 6980.90 / 10373.57 / 12645.53 -> floors sum 29998,
    #     2 cents left to the largest fractions (.90, .57) -> 69.81/103.74/126.45
    # oD: w = 2^-1=0.5, 2^(-3/7)=0.742997, 1 ; sum 2.242997
    #     credit 0.222916 / 0.331252 / 0.445832
    #     x 10000 = 2229.16 / 3312.52 / 4458.32 -> 9999, +1 to .52 -> 22.29/33.13/44.58
    # oE1 (days 6, 1): w 0.552045 / 0.905724, credit 0.378692 / 0.621308
    #     x 8000 = 3029.53 / 4970.47 -> 7999, +1 to .53 -> 30.30 / 49.70
    # oE2 (days 5, 1): w 0.609507 / 0.905724, credit 0.402254 / 0.597746
    #     x 12000 = 4827.04 / 7172.96 -> 11999, +1 to .96 -> 48.27 / 71.73
    # oF (days 2, 0): w 0.820335 / 1, credit 0.450651 / 0.549349
    #     x 4000 = 1802.60 / 2197.40 -> 3999, +1 to .60 -> 18.03 / 21.97
    assert allocation(result, "time_decay") == {
        "oA": [("a1", "Paid Search", 69.81), ("a2", "Email", 103.74), ("a3", "Direct", 126.45)],
        "oB": [("b1", "Organic Search", 100.0)],
        "oC": [(None, "Untracked journey", 50.0)],
        "oD": [("d1", "Affiliates", 22.29), ("d2", "SMS", 33.13), ("d3", "Direct", 44.58)],
        "oE1": [("e1", "Paid Social", 30.30), ("e2", "Email", 49.70)],
        "oE2": [("e2", "Email", 48.27), ("e3", "Organic Search", 71.73)],
        "oF": [("f1", "Direct", 18.03), ("f2", "Direct", 21.97)],
    }
    c = credits(result, "time_decay")
    assert c["oA"] == pytest.approx([0.232697, 0.345786, 0.421518], abs=1e-6)
    assert c["oD"] == pytest.approx([0.222916, 0.331252, 0.445832], abs=1e-6)


def test_time_decay_custom_half_life():
    # half-life 2 days, touches at d-4, d-2, d-0: w = 1/4, 1/2, 1 (sum 7/4)
    # credit 1/7, 2/7, 4/7 ; 70.00 -> 10.00 / 20.00 / 40.00
    sessions = make_sessions(
        [
            ("s1", "P", T0 - 4 * DAY, "Paid Social"),
            ("s2", "P", T0 - 2 * DAY, "Email"),
            ("s3", "P", T0, "Direct"),
        ]
    )
    orders = make_orders([("o1", "P", "s3", T0, 70.00)])
    df = run(sessions, orders, models=["time_decay"], time_decay_half_life_days=2.0)
    assert list(df.credit) == pytest.approx([1 / 7, 2 / 7, 4 / 7])
    assert list(df.attributed_revenue) == [10.0, 20.0, 40.0]


def test_unattributed_order_goes_to_untracked_journey(result):
    c = result[result.order_key == "oC"]
    assert len(c) == len(MODEL_NAMES)  # one row per model
    assert c.is_unattributed.all()
    assert c.session_id.isna().all()
    assert (c.channel == "Untracked journey").all()
    assert (c.credit == 1.0).all()
    assert (c.attributed_revenue == 50.0).all()
    assert c.days_before_order.isna().all()
    assert not result[result.order_key != "oC"].is_unattributed.any()


def test_credit_and_revenue_sum_exactly_per_order_and_model(result):
    revenue = {key: rev for key, _, _, _, rev in ORDERS}
    for (key, model), g in result.groupby(["order_key", "model"]):
        assert g.credit.sum() == pytest.approx(1.0, abs=1e-12), (key, model)
        assert sum(cents(x) for x in g.attributed_revenue) == cents(revenue[key])
        # every amount is a whole number of cents
        assert all(abs(x * 100 - cents(x)) < 1e-6 for x in g.attributed_revenue)
    for model, g in result.groupby("model"):
        assert sum(cents(x) for x in g.attributed_revenue) == TOTAL_CENTS, model


def test_summary_totals(result):
    full = attribute(make_sessions(SESSIONS), make_orders(ORDERS))
    summary = attribution_summary(full).to_pandas()
    assert list(summary.columns) == ["model", "channel", "orders_credited", "attributed_revenue"]
    per_model = summary.groupby("model").agg(orders=("orders_credited", "sum"), revenue=("attributed_revenue", "sum"))
    # 7 orders, 790.00 in every model
    assert per_model.orders.to_list() == pytest.approx([7.0] * len(MODEL_NAMES))
    assert all(cents(x) == TOTAL_CENTS for x in per_model.revenue)
    lin = summary[summary.model == "linear"].set_index("channel")
    # Direct (linear): a3 100 + d3 33.33 + f1 20 + f2 20 = 173.33 (oC has no journey: not Direct)
    assert lin.loc["Direct", "attributed_revenue"] == 173.33
    # Direct orders credited: 1/3 (oA) + 1/3 (oD) + 1 (oF) = 5/3
    assert lin.loc["Direct", "orders_credited"] == pytest.approx(5 / 3)
    assert lin.loc["Untracked journey", "attributed_revenue"] == 50.0
    assert lin.loc["Untracked journey", "orders_credited"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------
# Lookback / ordering edge cases
# ---------------------------------------------------------------------------


def test_lookback_zero_keeps_only_order_session():
    # b1 starts 1h before the order: outside a 0-day window but it is the
    # order's own session, so it is still the (only) touchpoint.
    df = run(make_sessions(SESSIONS), make_orders(ORDERS), lookback_days=0, models=["linear"])
    touches = {k: list(g.session_id) for k, g in df.groupby("order_key")}
    assert touches == {
        "oA": ["a3"],  # starts exactly at order_ts (inclusive upper bound)
        "oB": ["b1"],
        "oC": [None],
        "oD": ["d3"],
        "oE1": ["e2"],  # own session, 1 day before the order
        "oE2": ["e3"],
        "oF": ["f2"],
    }


def test_touch_index_ties_broken_by_session_id_and_zero_revenue():
    # Same start time -> ordered by session_id ("s_a" before "s_b").
    sessions = make_sessions([("s_b", "P", T0 - DAY, "Email"), ("s_a", "P", T0 - DAY, "SMS")])
    orders = make_orders([("o1", "P", None, T0, 0.0)])
    df = run(sessions, orders, models=["first_click", "linear"])
    first = df[df.model == "first_click"]
    assert list(first.session_id) == ["s_a", "s_b"]
    assert list(first.credit) == [1.0, 0.0]
    assert list(df.attributed_revenue) == [0.0] * 4
    assert df[df.model == "linear"].credit.sum() == pytest.approx(1.0)


# ---------------------------------------------------------------------------
# Markov
# ---------------------------------------------------------------------------


def test_markov_removal_effects_tiny_paths():
    # Paths: [A,B] -> conv 1, [A] -> nonconv 1, [B] -> conv 1
    # Transitions: START->A 2, START->B 1 ; A->B 1, A->NULL 1 ; B->CONV 2
    #   P(START->A)=2/3, P(START->B)=1/3, P(A->B)=1/2, P(A->NULL)=1/2, P(B->CONV)=1
    # P(conv) = 2/3 * 1/2 * 1 + 1/3 * 1 = 2/3
    # remove A (START->A goes to NULL): P = 1/3          -> RE(A) = 1 - (1/3)/(2/3) = 1/2
    # remove B (A->B and START->B go to NULL): P = 0     -> RE(B) = 1 - 0 = 1
    paths = pd.DataFrame(
        {
            "path": [("A", "B"), ("A",), ("B",)],
            "conversions": [1, 0, 1],
            "non_conversions": [0, 1, 0],
        }
    )
    re = markov_removal_effects(paths)
    assert re.to_dict() == pytest.approx({"A": 0.5, "B": 1.0})
    assert re.name == "removal_effect"


def test_markov_removal_effects_loop_and_mixed_counts():
    # [PS, Email, PS] -> conv 1 ; [Email] -> conv 1 ; [PS] -> nonconv 1
    # START: PS 2/3, Email 1/3 ; PS: Email 1/3, CONV 1/3, NULL 1/3 ;
    # Email: PS 1/2, CONV 1/2
    # x_PS = 1/3 x_E + 1/3, x_E = 1/2 x_PS + 1/2 -> x_PS = 3/5, x_E = 4/5
    # P(conv) = 2/3*3/5 + 1/3*4/5 = 2/3
    # remove PS: x_E = 1/2 -> P = 1/3*1/2 = 1/6 -> RE = 1 - (1/6)/(2/3) = 3/4
    # remove Email: x_PS = 1/3 -> P = 2/3*1/3 = 2/9 -> RE = 1 - (2/9)/(2/3) = 2/3
    paths = pd.DataFrame(
        {
            "path": [["Paid Search", "Email", "Paid Search"], ["Email"], ["Paid Search"]],
            "conversions": [1, 1, 0],
            "non_conversions": [0, 0, 1],
        }
    )
    assert markov_removal_effects(paths).to_dict() == pytest.approx({"Email": 2 / 3, "Paid Search": 3 / 4})


def test_markov_removal_effects_no_conversions_are_zero():
    paths = pd.DataFrame({"path": [("A",)], "conversions": [0], "non_conversions": [3]})
    assert markov_removal_effects(paths).to_dict() == {"A": 0.0}


def test_markov_attribution_tiny_journeys():
    # Same chain as test_markov_removal_effects_tiny_paths with
    # A = Paid Search, B = Email: RE(PS) = 1/2, RE(Email) = 1.
    # P1 [PS, Email] 100.00: credit 0.5/1.5 = 1/3, 1/1.5 = 2/3
    #   cents 3333.33 / 6666.67 -> floors 9999, +1 to .67 -> 33.33 / 66.67
    # P2 [Email] 50.00 -> 100% Email.  P3 [PS] never orders (non-converting).
    sessions = make_sessions(
        [
            ("p1a", "P1", T0 - 3 * DAY, "Paid Search"),
            ("p1b", "P1", T0 - 1 * DAY, "Email"),
            ("p2a", "P2", T0 - 1 * DAY, "Email"),
            ("p3a", "P3", T0 - 2 * DAY, "Paid Search"),
        ]
    )
    orders = make_orders([("o1", "P1", "p1b", T0, 100.00), ("o2", "P2", "p2a", T0, 50.00)])
    df = run(sessions, orders, models=["markov"])
    c = credits(df, "markov")
    assert c["o1"] == pytest.approx([1 / 3, 2 / 3])
    assert c["o2"] == [1.0]
    assert allocation(df, "markov") == {
        "o1": [("p1a", "Paid Search", 33.33), ("p1b", "Email", 66.67)],
        "o2": [("p2a", "Email", 50.0)],
    }


MARKOV_LOOP_SESSIONS = [
    ("p1a", "P1", T0 - 5 * DAY, "Paid Search"),
    ("p1b", "P1", T0 - 3 * DAY, "Email"),
    ("p1c", "P1", T0 - 1 * DAY, "Paid Search"),
    ("p2a", "P2", T0 - 1 * DAY, "Email"),
    ("p3a", "P3", T0 - 2 * DAY, "Paid Search"),  # non-converting
]
MARKOV_LOOP_ORDERS = [("o1", "P1", "p1c", T0, 90.00), ("o2", "P2", "p2a", T0, 10.00)]


def test_markov_repeated_channel_splits_its_share():
    # With non-converting journeys: RE(PS) = 3/4, RE(Email) = 2/3
    # (see test_markov_removal_effects_loop_and_mixed_counts).
    # o1 [PS, Email, PS]: PS share split over its 2 touches -> 3/8, 2/3, 3/8
    #   sum 17/12 -> credit 9/34, 16/34, 9/34
    #   x 9000 cents = 2382.35 / 4235.29 / 2382.35 -> floors 8999, 1 cent left;
    #   largest fraction .35 tied between touches 1 and 3 -> touch 1
    #   -> 23.83 / 42.35 / 23.82
    df = run(make_sessions(MARKOV_LOOP_SESSIONS), make_orders(MARKOV_LOOP_ORDERS), models=["markov"])
    assert credits(df, "markov")["o1"] == pytest.approx([9 / 34, 16 / 34, 9 / 34])
    assert allocation(df, "markov")["o1"] == [
        ("p1a", "Paid Search", 23.83),
        ("p1b", "Email", 42.35),
        ("p1c", "Paid Search", 23.82),
    ]


def test_markov_without_non_converting_journeys():
    # Converting journeys only: [PS, Email, PS] conv, [Email] conv.
    # START: PS 1/2, Email 1/2 ; PS: Email 1/2, CONV 1/2 ; Email: PS 1/2, CONV 1/2
    # No NULL transitions -> P(conv) = 1.
    # remove PS: START->Email 1/2 * Email->CONV 1/2 = 1/4 -> RE(PS) = 3/4
    # remove Email: symmetric -> RE(Email) = 3/4
    # o1: 3/8, 3/4, 3/8 (sum 3/2) -> credit 1/4, 1/2, 1/4 -> 22.50 / 45.00 / 22.50
    df = run(
        make_sessions(MARKOV_LOOP_SESSIONS),
        make_orders(MARKOV_LOOP_ORDERS),
        models=["markov"],
        markov_include_non_converting=False,
    )
    assert credits(df, "markov")["o1"] == pytest.approx([0.25, 0.5, 0.25])
    assert allocation(df, "markov")["o1"] == [
        ("p1a", "Paid Search", 22.5),
        ("p1b", "Email", 45.0),
        ("p1c", "Paid Search", 22.5),
    ]


def test_markov_non_converting_journeys_split_on_gap():
    # Person N never buys: sessions at d-20 X, d-17 Y, (gap 9 days > 7: new
    # journey) d-8 Z, d-1 W (gap exactly 7: same journey).
    # Person K buys at d-0 (touches k2, k3); k1 at d-9 is outside the lookback
    # -> its own non-converting journey [Paid Search].
    sessions = make_sessions(
        [
            ("n1", "N", T0 - 20 * DAY, "Referral"),
            ("n2", "N", T0 - 17 * DAY, "Email"),
            ("n3", "N", T0 - 8 * DAY, "SMS"),
            ("n4", "N", T0 - 1 * DAY, "Affiliates"),
            ("k1", "K", T0 - 9 * DAY, "Paid Search"),
            ("k2", "K", T0 - 2 * DAY, "Email"),
            ("k3", "K", T0, "Direct"),
        ]
    )
    orders = make_orders([("ok", "K", "k3", T0, 10.0)])
    params = AttributionParams()
    tp = order_touchpoints(sessions, orders, params)
    got = markov_transition_counts(sessions, tp, params).to_pandas()
    got = {(r.from_state, r.to_state): r.n for r in got.itertuples()}
    assert got == {
        # converting: START -> Email -> Direct -> CONVERSION
        (START, "Email"): 1,
        ("Email", "Direct"): 1,
        ("Direct", CONVERSION): 1,
        # non-converting journeys: [Referral, Email], [SMS, Affiliates], [Paid Search]
        (START, "Referral"): 1,
        ("Referral", "Email"): 1,
        ("Email", NULL_STATE): 1,
        (START, "SMS"): 1,
        ("SMS", "Affiliates"): 1,
        ("Affiliates", NULL_STATE): 1,
        (START, "Paid Search"): 1,
        ("Paid Search", NULL_STATE): 1,
    }


# ---------------------------------------------------------------------------
# Params and portability
# ---------------------------------------------------------------------------


def test_params_defaults_and_validation():
    p = AttributionParams()
    assert p.lookback_days == 7
    assert p.models == list(MODEL_NAMES)
    assert (p.position_first_weight, p.position_middle_weight, p.position_last_weight) == (0.4, 0.2, 0.4)
    assert p.time_decay_half_life_days == 7.0
    assert p.markov_include_non_converting is True
    assert p.direct_channel == "Direct"
    for field in AttributionParams.model_fields.values():
        assert field.description
    with pytest.raises(ValidationError):
        AttributionParams(unknown=1)
    with pytest.raises(ValidationError):
        AttributionParams(models=["u_shaped"])
    with pytest.raises(ValidationError):
        AttributionParams(models=["linear", "linear"])
    with pytest.raises(ValidationError):
        AttributionParams(lookback_days=-1)
    with pytest.raises(ValidationError):
        AttributionParams(position_first_weight=0.5)  # 0.5 + 0.4 + 0.2 != 1


def test_only_requested_models():
    df = run(make_sessions(SESSIONS), make_orders(ORDERS), models=["last_click", "linear"])
    assert set(df.model) == {"last_click", "linear"}


def test_compiles_for_pyspark(monkeypatch):
    """Smoke check that only portable operations are used (SQL compile only)."""
    from ibis.config import Config

    class _PySparkOptions(Config):  # registered by the pyspark backend when installed
        treat_nan_as_null: bool = False

    if ibis.options.pyspark is None:
        monkeypatch.setattr(ibis.options, "pyspark", _PySparkOptions())
    sessions, orders = make_sessions(SESSIONS), make_orders(ORDERS)
    params = AttributionParams()
    expr = attribute(sessions, orders, params)
    assert "JOIN" in ibis.to_sql(expr, dialect="pyspark")
    tp = order_touchpoints(sessions, orders, params)
    ibis.to_sql(markov_transition_counts(sessions, tp, params), dialect="pyspark")
    ibis.to_sql(attribution_summary(expr), dialect="pyspark")


def _per_window_free_counts(rows, fit_dates, fit_days, params):
    """The reference: sessions repeated once per window, counted by markov_transition_counts."""
    frames = []
    for d in fit_dates:
        lo = d - pd.Timedelta(days=fit_days - 1)
        inside = [r for r in rows if lo <= r[2].normalize() <= d]
        if not inside:
            continue
        sessions = make_sessions(inside)
        tp = order_touchpoints(sessions, make_orders([]), params)
        got = markov_transition_counts(sessions, tp, params).to_pandas()
        frames += [(d.date(), r.from_state, r.to_state, int(r.n)) for r in got.itertuples()]
    return sorted(frames)


def _windowed_free_counts(rows, fit_dates, fit_days, params):
    s = make_sessions(rows)
    s = s.mutate(session_date=s.session_start.date())
    dates = ibis.memtable(pd.DataFrame({"fit_date": [d.date() for d in fit_dates]}), schema={"fit_date": "date"})
    got = windowed_free_transitions(s, dates, fit_days, params).to_pandas()
    return sorted((pd.Timestamp(r.fit_date).date(), r.from_state, r.to_state, int(r.n)) for r in got.itertuples())


def test_windowed_free_transitions_by_hand():
    # Fit window 3 days, lookback 2 days. Person A: a1 Email on day 0, a2 SMS on day 1 (same
    # journey), a3 Direct on day 5 (gap 4 days: a new journey).
    # Fit date day 2 (window days 0-2): START->Email, Email->SMS, SMS->null.
    # Fit date day 3 (window days 1-3): a1 has left: START->SMS, SMS->null.
    # Fit date day 5 (window days 3-5): START->Direct, Direct->null.
    d0 = T0.normalize()
    rows = [
        ("a1", "A", d0 + pd.Timedelta(hours=1), "Email"),
        ("a2", "A", d0 + DAY + pd.Timedelta(hours=1), "SMS"),
        ("a3", "A", d0 + 5 * DAY + pd.Timedelta(hours=1), "Direct"),
    ]
    params = AttributionParams(lookback_days=2)
    dates = [d0 + 2 * DAY, d0 + 3 * DAY, d0 + 5 * DAY]
    day = [d.date() for d in dates]
    expected = sorted(
        [
            (day[0], START, "Email", 1),
            (day[0], "Email", "SMS", 1),
            (day[0], "SMS", NULL_STATE, 1),
            (day[1], START, "SMS", 1),
            (day[1], "SMS", NULL_STATE, 1),
            (day[2], START, "Direct", 1),
            (day[2], "Direct", NULL_STATE, 1),
        ]
    )
    assert _windowed_free_counts(rows, dates, 3, params) == expected
    assert _per_window_free_counts(rows, dates, 3, params) == expected


def test_windowed_free_transitions_equal_the_per_window_counts():
    rng = np.random.default_rng(11)
    channels = ["Email", "SMS", "Direct", "Paid Search"]
    d0 = T0.normalize()
    rows = []
    for i in range(300):  # 60 people (and some without a person) over 40 days, gaps of all sizes
        person = None if i % 17 == 0 else f"p{rng.integers(60)}"
        start = d0 + pd.Timedelta(minutes=int(rng.integers(0, 40 * 24 * 60)))
        rows.append((f"s{i:03d}", person, start, channels[rng.integers(len(channels))]))
    params = AttributionParams(lookback_days=7)
    fit_dates = [d0 + k * DAY for k in (0, 5, 12, 13, 20, 27, 33, 39, 45)]
    expected = _per_window_free_counts(rows, fit_dates, 14, params)
    assert len(expected) > 50
    assert _windowed_free_counts(rows, fit_dates, 14, params) == expected
