"""Continuations are not acquisitions (issue 14): hand-built journeys, answers worked out by hand.

Each session is classified from its landing URL and referrer by the real rules
(params/channels.yaml), then attributed with every model. Order revenue 100.00 unless stated.

  P: Paid Search landing (gclid) at T-20min, purchase session lands on checkout.puffy.com at T
     -> the checkout session is a Continuation, not a touch: Paid Search gets 100.00 in every model.
  N: never-seen client, purchase session lands on checkout.puffy.com
     -> no touch at all: "Untracked journey" 100.00 in every model (never Direct).
  I: Email landing at T-2d, purchase session on puffy.com with referrer puffy.com (internal)
     -> Email 100.00 in every model.
  A: purchase session on checkout.puffy.com back from Affirm (anonymised source-ee658ef2.com), and an
     Organic Search landing at T-3h -> Organic Search 100.00 in every model.
  R: return from Affirm landing on puffy.com (payment referrer), never seen before -> Untracked.
  W: Referral landing exactly 7 days before the order (inclusive bound: a touch), a Direct landing
     7 days + 1 ms before (outside), purchase session on checkout host
     -> one touch, Referral 100.00 in every model.
  X: Direct landing 7 days + 1 ms before only, purchase on checkout host -> Untracked.
  D: genuine Direct landing (no referrer, no tags) at T-1h, purchase on checkout host -> Direct 100.00:
     a real Direct touch is still credited.
"""

from __future__ import annotations

import ibis
import pandas as pd
import pytest

from puffy.attribution import MODEL_NAMES, AttributionParams, attribute, order_journeys
from puffy.channels import classify_channel, load_channel_rules, parse_landing

T = pd.Timestamp("2025-03-01 12:00:00")
MIN, HOUR, DAY, MS = (
    pd.Timedelta(minutes=1),
    pd.Timedelta(hours=1),
    pd.Timedelta(days=1),
    pd.Timedelta(milliseconds=1),
)
STORE = "https://puffy.com/products/puffy-mattress"
CHECKOUT = "https://checkout.puffy.com/checkouts/cn/Z2NwLXVz/thank-you"
AFFIRM = "https://source-ee658ef2.com/"

# (session_id, client_id, start, landing url, referrer)
SESSIONS = [
    ("p1", "P", T - 20 * MIN, f"{STORE}?gclid=A1B115&utm_medium=7B4C8A", None),
    ("p2", "P", T, CHECKOUT, None),
    ("n1", "N", T, CHECKOUT, None),
    ("i1", "I", T - 2 * DAY, f"{STORE}?_kx=BFD149", None),
    ("i2", "I", T, STORE, "https://puffy.com/cart"),
    ("a1", "A", T - 3 * HOUR, STORE, "https://www.google.com/"),
    ("a2", "A", T, CHECKOUT, AFFIRM),
    ("r1", "R", T, STORE, AFFIRM),
    ("w0", "W", T - 7 * DAY - MS, "https://puffy.com/", None),
    ("w1", "W", T - 7 * DAY, STORE, "https://source-deadbeef.com/"),
    ("w2", "W", T, CHECKOUT, None),
    ("x0", "X", T - 7 * DAY - MS, "https://puffy.com/", None),
    ("x1", "X", T, CHECKOUT, None),
    ("d1", "D", T - HOUR, "https://puffy.com/", None),
    ("d2", "D", T, CHECKOUT, None),
]
# (order_key, client_id, session_id of the purchase)
ORDERS = [
    ("oP", "P", "p2"),
    ("oN", "N", "n1"),
    ("oI", "I", "i2"),
    ("oA", "A", "a2"),
    ("oR", "R", "r1"),
    ("oW", "W", "w2"),
    ("oX", "X", "x1"),
    ("oD", "D", "d2"),
]
EXPECTED = {
    "oP": "Paid Search",
    "oN": "Untracked journey",
    "oI": "Email",
    "oA": "Organic Search",
    "oR": "Untracked journey",
    "oW": "Referral",
    "oX": "Untracked journey",
    "oD": "Direct",
}
TOUCHES = {"oP": 1, "oN": 0, "oI": 1, "oA": 1, "oR": 0, "oW": 1, "oX": 0, "oD": 1}


@pytest.fixture(scope="module")
def sessions() -> ibis.Table:
    rules = load_channel_rules()
    raw = ibis.memtable(
        pd.DataFrame(SESSIONS, columns=["session_id", "client_id", "session_start", "page_url", "referrer"])
    )
    out = classify_channel(parse_landing(raw, rules=rules), rules)
    return out.mutate(person_id=out.client_id).select(
        "session_id", "person_id", "client_id", "session_start", "channel", "channel_rule"
    )


@pytest.fixture(scope="module")
def orders() -> ibis.Table:
    return ibis.memtable(
        pd.DataFrame(
            {
                "order_key": [o[0] for o in ORDERS],
                "person_id": [o[1] for o in ORDERS],
                "client_id": [o[1] for o in ORDERS],
                "session_id": [o[2] for o in ORDERS],
                "order_ts": [T] * len(ORDERS),
                "revenue": [100.0] * len(ORDERS),
            }
        )
    )


def test_sessions_classified_as_continuations(sessions):
    got = sessions.execute().set_index("session_id")
    assert got.loc["p2", "channel_rule"] == "continuation_checkout_host"
    assert got.loc["i2", "channel_rule"] == "continuation_referrer"  # internal referrer
    assert got.loc["a2", "channel_rule"] == "continuation_checkout_host"  # checkout host wins over Affirm
    assert got.loc["r1", "channel_rule"] == "continuation_referrer"  # payment referrer on the store
    continuations = set(got.index[got.channel == "Continuation"])
    assert continuations == {"p2", "n1", "i2", "a2", "r1", "w2", "x1", "d2"}
    assert got.loc["d1", "channel"] == "Direct" and got.loc["w0", "channel"] == "Direct"


def test_every_model_credits_the_earlier_journey_or_untracked(sessions, orders):
    att = attribute(sessions, orders, AttributionParams()).execute()
    for model in MODEL_NAMES:
        m = att[att.model == model]
        credited = m[m.attributed_revenue > 0].groupby("order_key")["channel"].agg(set).to_dict()
        assert credited == {k: {v} for k, v in EXPECTED.items()}, model
        assert (m.groupby("order_key").attributed_revenue.sum() == 100.0).all(), model
        # a continuation session is never a touchpoint, so never credited
        assert not m.session_id.isin(["p2", "n1", "i2", "a2", "r1", "w2", "x1", "d2"]).any(), model
        assert set(m[m.is_unattributed].order_key) == {"oN", "oR", "oX"}, model
        assert not (m.channel == "Direct").any() or set(m[m.channel == "Direct"].session_id) == {"d1"}


def test_order_journeys(sessions, orders):
    j = order_journeys(sessions, orders).execute().set_index("order_key")
    assert j.touchpoint_count.to_dict() == TOUCHES
    assert j.journey_status.to_dict() == {k: "tracked" if n else "untracked" for k, n in TOUCHES.items()}


def test_stitched_journey(sessions, orders):
    """N's purchase client is stitched to P's client id (same person): N's order now follows P's
    Paid Search landing, 20 min before, and its status is 'stitched' (no touch on its own id)."""
    s = sessions.mutate(person_id=ibis.ifelse(sessions.client_id == "N", "P", sessions.person_id))
    o = orders.mutate(person_id=ibis.ifelse(orders.client_id == "N", "P", orders.person_id))
    j = order_journeys(s, o).execute().set_index("order_key")
    assert (j.loc["oN", "journey_status"], j.loc["oN", "touchpoint_count"]) == ("stitched", 1)
    assert (j.loc["oP", "journey_status"], j.loc["oP", "touchpoint_count"]) == ("tracked", 1)
    att = attribute(s, o, AttributionParams(models=["first_click", "last_click"])).execute()
    assert set(att[(att.order_key == "oN") & (att.attributed_revenue > 0)].channel) == {"Paid Search"}


def test_labels_must_differ():
    with pytest.raises(ValueError, match="must differ"):
        AttributionParams(untracked_channel="Direct")
