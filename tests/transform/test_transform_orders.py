"""Orders (fct_orders, fct_order_items, fct_order_rejects) and their link to sessions / attribution.

Run: cd /work/main && PYTHONPATH=lib .venv/bin/python -m pytest tests/transform/test_transform_orders.py -q
"""

from __future__ import annotations

import pandas as pd
import pytest

from puffy.params import DEFAULT_PARAMS_DIR
from puffy.transform import TransformParams
from support.raw_events import (
    D1,
    D2,
    D3,
    ev,
    purchase,
    pytestmark,  # noqa: F401  (the shared warning filters)
    read_table,
    run_transform,
    sessions_of,
    stage_rows,
    t,
    transform,
)

A, B, C = "100-aaaaaaaaaaaa", "200-bbbbbbbbbbbb", "300-cccccccccccc"


def orders_of(wh) -> pd.DataFrame:
    return read_table(wh, "fct_orders").sort_values(["order_ts", "order_key"]).reset_index(drop=True)


def rejects_of(wh) -> pd.DataFrame:
    return read_table(wh, "fct_order_rejects").sort_values(["order_ts", "event_id"]).reset_index(drop=True)


def test_several_orders_per_client_and_session(tmp_path):
    rows = [
        ev(A, t(D1, "10:00:00.000")),
        purchase(A, t(D1, "10:05:00.000"), "ORD-1", 100),
        purchase(A, t(D1, "10:06:00.000"), "ORD-2", 50.5),
        purchase(A, t(D1, "18:00:00.000"), "ORD-3", 20),  # a later session
    ]
    wh, result = transform(tmp_path, rows)
    o = orders_of(wh)
    assert o.order_key.tolist() == ["ORD-1", "ORD-2", "ORD-3"]
    s = sessions_of(wh)
    assert s.n_orders.tolist() == [2, 1] and s.revenue.tolist() == [150.5, 20.0]
    assert s.purchased.tolist() == [True, True] and s.n_purchase_events.tolist() == [2, 1]
    assert o.session_id.tolist() == [s.session_id[0], s.session_id[0], s.session_id[1]]
    assert o.is_non_integer_revenue.tolist() == [False, True, False]
    # ORD-3's touchpoints: both of A's sessions (within 7 days); last click = its own session
    a = read_table(wh, "fct_attribution")
    ord3 = a[(a.order_key == "ORD-3") & (a.model == "last_click")].sort_values("touch_index")
    assert ord3.session_id.tolist() == s.session_id.tolist()
    assert ord3.attributed_revenue.tolist() == [0.0, 20.0]


def test_replay_collision_and_zero_revenue_policy(tmp_path):
    rows = [
        ev(A, t(D1, "10:00:00.000")),
        purchase(A, t(D1, "10:01:00.000"), "ORD-1", 100),
        purchase(A, t(D1, "10:02:00.000"), "ORD-1", 100),  # exact replay: same client and payload
        purchase(A, t(D1, "10:03:00.000"), "ORD-1", 100),  # and another
        ev(B, t(D1, "11:00:00.000")),
        purchase(B, t(D1, "11:01:00.000"), "ORD-1", 70, email="f" * 64),  # collision: other client
        ev(C, t(D1, "12:00:00.000")),
        purchase(
            C,
            t(D1, "12:01:00.000"),
            "ORD-9",
            0,
            items=[{"item_id": None, "item_name": None, "item_variant": None, "quantity": None, "item_price": None}],
        ),
    ]
    wh, result = transform(tmp_path, rows)
    o = orders_of(wh)
    assert o.order_key.tolist() == ["ORD-1", "ORD-1#2"]
    assert o.transaction_variant.tolist() == [1, 2]
    assert o.client_id.tolist() == [A, B]
    assert o.is_transaction_id_collision.tolist() == [True, True]
    assert o.is_replay_deduplicated.tolist() == [True, False]
    assert o.n_replays_collapsed.tolist() == [2, 0]
    r = rejects_of(wh)
    assert r.reason.tolist() == ["replay", "replay", "zero_revenue_empty_items"]
    assert r.order_key.tolist() == ["ORD-1", "ORD-1", "ORD-9"]
    rec = result.reconciliation.set_index("check")
    assert rec.loc["purchase_events", "left"] == 5 and rec.loc["purchase_events", "status"] == "ok"
    assert rec.loc["revenue_orders", "left"] == 370.0
    assert "excluded_replay=200" in rec.loc["revenue_orders", "detail"]
    assert rec.loc["attribution_revenue_markov", "right"] == 370.0
    s = sessions_of(wh)
    assert s.set_index("client_id").loc[C, "n_purchase_events"] == 1
    assert not s.set_index("client_id").loc[C, "purchased"]


def test_replay_and_collision_on_later_days_keep_earlier_partitions(tmp_path):
    rows = [
        purchase(A, t(D1, "10:00:00.000"), "ORD-1", 100),
        purchase(A, t(D2, "09:00:00.000"), "ORD-1", 100),  # replay, a day later
        purchase(B, t(D3, "09:00:00.000"), "ORD-1", 80),  # collision, two days later
    ]
    staging, days = stage_rows(tmp_path, rows)
    reb, inc = tmp_path / "rebuild", tmp_path / "incremental"
    run_transform(staging, reb, DEFAULT_PARAMS_DIR, start=D1, end=D3)
    for d in days:
        run_transform(staging, inc, DEFAULT_PARAMS_DIR, start=d, end=d, mode="incremental")
    for wh in (reb, inc):
        o = orders_of(wh)
        assert o.order_key.tolist() == ["ORD-1", "ORD-1#2"]
        # "as known on the order's date": the first order was not a collision yet on D1
        assert o.is_transaction_id_collision.tolist() == [False, True]
        assert o.n_replays_collapsed.tolist() == [0, 0]
        r = rejects_of(wh)
        assert r.reason.tolist() == ["replay"] and r.order_date.tolist() == [D2]
        assert r.order_key.tolist() == ["ORD-1"]
    pd.testing.assert_frame_equal(orders_of(reb), orders_of(inc))


def test_order_before_any_other_session_and_order_without_client(tmp_path):
    rows = [
        purchase(A, t(D1, "10:00:00.000"), "ORD-1", 100),  # the client's very first event
        ev(A, t(D2, "10:00:00.000"), url="/?gclid=ABCDEF"),  # a later paid session: not a touch
        purchase("", t(D2, "11:00:00.000"), "ORD-2", 40),  # no client id: kept, unattributed
    ]
    wh, result = transform(tmp_path, rows)
    o = orders_of(wh).set_index("order_key")
    s = sessions_of(wh)
    assert o.loc["ORD-1", "session_id"] == s.session_id[0]
    assert pd.isna(o.loc["ORD-2", "session_id"]) and pd.isna(o.loc["ORD-2", "client_id"])
    a = read_table(wh, "fct_attribution")
    one = a[a.order_key == "ORD-1"]
    assert set(one.session_id) == {s.session_id[0]} and set(one.channel) == {"Direct"}
    assert (one.touch_count == 1).all() and not one.is_unattributed.any()
    two = a[a.order_key == "ORD-2"]
    assert len(two) == 7 and two.is_unattributed.all() and two.session_id.isna().all()
    assert (two.attributed_revenue == 40).all()
    assert result.reconciliation.set_index("check").loc["orders_in_sessions", "left"] == 1


def test_items_prices_and_rejected_payloads(tmp_path):
    items = [
        {"item_id": "1", "item_name": "Puffy Mattress", "item_variant": "Queen", "quantity": 2, "item_price": 200},
        {"item_id": "2", "item_name": "Pillow", "item_variant": "Std", "quantity": 1, "item_price": None},
    ]
    bad = ev(B, t(D1, "11:00:00.000"), "checkout_completed", "/thank-you", data="{not json")
    rows = [
        ev(A, t(D1, "10:00:00.000")),
        purchase(A, t(D1, "10:01:00.000"), "ORD-1", 261.8, items=items),
        bad,
        purchase(C, t(D1, "12:00:00.000"), "ORD-3", -5),
    ]
    wh, result = transform(tmp_path, rows)
    o = orders_of(wh)
    assert o.order_key.tolist() == ["ORD-1"]
    row = o.iloc[0]
    assert row.item_count == 2 and row.quantity == 3 and row.has_missing_item_prices and row.is_non_integer_revenue
    it = read_table(wh, "fct_order_items").sort_values("line_number")
    assert it.line_number.tolist() == [1, 2]
    assert it.unit_price.iloc[0] == 100 and pd.isna(it.unit_price.iloc[1])
    r = rejects_of(wh)
    assert r.reason.tolist() == ["invalid_payload", "negative_revenue"]
    assert result.status != "error"


def test_replays_kept_when_dedup_disabled(tmp_path):
    rows = [purchase(A, t(D1, "10:01:00.000"), "ORD-1", 100), purchase(A, t(D1, "10:02:00.000"), "ORD-1", 100)]
    wh, _ = transform(tmp_path, rows, dedupe_exact_replays=False)
    assert orders_of(wh).order_key.tolist() == ["ORD-1", "ORD-1#2"]


def test_bot_purchase_is_an_order_without_session(tmp_path):
    bot = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36"
    rows = [ev(A, t(D1, "10:00:00.000"), ua=bot), purchase(A, t(D1, "10:01:00.000"), "ORD-1", 10, ua=bot)]
    wh, result = transform(tmp_path, rows)
    o = orders_of(wh)
    assert o.is_bot.tolist() == [True] and o.session_id.isna().all()
    assert len(read_table(wh, "fct_sessions")) == 0
    assert "bot_events=2" in result.reconciliation.set_index("check").loc["raw_rows", "detail"]


def test_params_reject_unknown_keys(tmp_path):
    from puffy.errors import ParamsError
    from puffy.transform.params import load_transform_params

    (tmp_path / "transform.yaml").write_text("session_timeout_minutes: 30\nsesion_timeout: 5\n")
    with pytest.raises(ParamsError, match="unknown key 'sesion_timeout'"):
        load_transform_params(tmp_path)
    (tmp_path / "transform.yaml").write_text("attribution: {lookback_days: 7}\nmarkov_fit_days: 3\n")
    with pytest.raises(ParamsError, match="markov_fit_days"):
        load_transform_params(tmp_path)
    # the shipped file holds exactly the defaults
    assert load_transform_params(DEFAULT_PARAMS_DIR) == TransformParams()


def test_order_and_identity_expressions_compile_for_pyspark(monkeypatch):
    """Only portable operations: orders and identity propagation compile to Spark SQL."""
    import ibis
    from ibis.config import Config

    from puffy.transform.identity import apply_identity, identity_edges
    from puffy.transform.orders import build_orders

    class _PySparkOptions(Config):  # registered by the pyspark backend when installed
        treat_nan_as_null: bool = False

    if ibis.options.pyspark is None:
        monkeypatch.setattr(ibis.options, "pyspark", _PySparkOptions())
    purchases = ibis.table(
        {
            "event_id": "string",
            "client_id": "string",
            "is_bot": "boolean",
            "payload_error": "string",
            "revenue": "float64",
            "event_data": "string",
            "transaction_id": "string",
            "event_ts": "timestamp(6)",
            "item_count": "int64",
            "user_email": "string",
        },
        name="purchases",
    )
    items = ibis.table(
        {
            "event_id": "string",
            "transaction_id": "string",
            "line_number": "int64",
            "item_id": "string",
            "item_name": "string",
            "item_variant": "string",
            "quantity": "float64",
            "item_price": "float64",
        },
        name="items",
    )
    ledger = ibis.table(
        {
            "transaction_id": "string",
            "client_id": "string",
            "payload_hash": "string",
            "order_ts": "timestamp(6)",
            "event_id": "string",
        },
        name="ledger",
    )
    event_sessions = ibis.table({"event_id": "string", "session_id": "string"}, name="event_sessions")
    built = build_orders(purchases, items, ledger, event_sessions, TransformParams())
    mapping = ibis.table({"client_id": "string", "person_id": "string"}, name="person_map")
    for expr in (apply_identity(built.orders, mapping), built.items, built.rejects, identity_edges(purchases)):
        assert "SELECT" in ibis.to_sql(expr, dialect="pyspark")
