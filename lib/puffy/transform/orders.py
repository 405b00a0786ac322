"""Orders: ``fct_orders``, ``fct_order_items`` and ``fct_order_rejects`` from purchase events.

Every purchase event (``checkout_completed``) ends up in exactly one of ``fct_orders`` (an order
counted in revenue) or ``fct_order_rejects`` (with a reason), which rpt_reconciliation checks.

Policy (``params/transform.yaml``)
    * A *variant* of a transaction id is one (transaction_id, client_id, payload) combination, the
      payload being the whole ``event_data`` JSON (compared by md5).
    * Exact replays — the same variant seen again (a reloaded thank-you page) — are collapsed into
      the first event (by order_ts, event_id); the later events go to fct_order_rejects with reason
      ``replay`` and the order_key they repeat (``dedupe_exact_replays``).
    * Collisions — the same transaction id with another client or payload (4 ids in the real
      export: different clients, emails and amounts) — are distinct orders. The first variant keeps
      the transaction id as ``order_key``; the n-th gets ``<transaction_id>#n``. Variants are
      numbered by first appearance over the whole history, so keys never change once written.
    * Revenue 0 with no item carrying any value (the export's 10 ``{"revenue":0,"items":[{all
      null}]}`` events) are not orders: reason ``zero_revenue_empty_items``
      (``exclude_zero_revenue_empty_orders``).
    * Unusable payloads are rejected: ``invalid_payload`` (missing / invalid JSON),
      ``missing_transaction_id``, ``missing_revenue``, ``negative_revenue``.
    * Orders of events without a client id, or of bot user agents, are kept (revenue is revenue)
      but have no session (session_id NULL) and end up unattributed.

Flags that would need a later day to rewrite an earlier partition are defined "as known on the
order's date", so a day-by-day run equals a rebuild: ``is_transaction_id_collision`` is true when
another variant of the id appeared on or before the order's date (a collision on a later day
flags only the later order); ``n_replays_collapsed`` counts replays on the order's own date
(a replay on a later day is still a ``replay`` reject on that day).

``fct_orders`` — grain: one row per order; partition key ``order_date``.
    order_key, transaction_id, transaction_variant (1, 2, …), order_ts, order_date, client_id,
    person_id, session_id (session holding the purchase event), journey_status ('tracked': a
    touchpoint on the order's own client id; 'stitched': touchpoints only on client ids identity
    stitching joined to it; 'untracked': none, credited to "Untracked journey"), touchpoint_count
    (the touchpoints attribution credits, 0 when untracked; both set by the pipeline from
    ``puffy.attribution.order_journeys``), revenue (as exported),
    item_count (item lines), quantity (sum of item quantities), is_replay_deduplicated,
    n_replays_collapsed, is_transaction_id_collision, has_missing_item_prices (some item_price
    NULL: from 2025-03-06 on every item), is_non_integer_revenue, is_bot, payload_hash, event_id.
``fct_order_items`` — grain: one row per order line; partition key ``order_date``.
    order_key, order_date, line_number, item_id, item_name, item_variant, quantity,
    item_price (the line total, as exported), unit_price (= item_price / quantity).
``fct_order_rejects`` — grain: one row per purchase event that is not an order; partition key
    ``order_date`` (date of the event).
    order_key (the repeated order for replays, the would-be key otherwise, NULL without id),
    transaction_id, reason, revenue, event_id, order_ts, order_date, client_id, payload_hash, detail.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from puffy import tables
from puffy.transform.params import TransformParams

# Columns: lib/puffy/tables.yaml.
ORDER_SCHEMA = tables.ibis_schema("fct_orders")
ORDER_ITEM_SCHEMA = tables.ibis_schema("fct_order_items")
ORDER_REJECT_SCHEMA = tables.ibis_schema("fct_order_rejects")
#: Columns of the history ledger: first occurrences of earlier variants (orders + non-replay rejects).
LEDGER_COLUMNS = ("transaction_id", "client_id", "payload_hash", "order_ts", "event_id")

REJECT_REASONS = (
    "invalid_payload",
    "missing_transaction_id",
    "replay",
    "missing_revenue",
    "negative_revenue",
    "zero_revenue_empty_items",
)


@dataclass
class OrderTables:
    """Lazy Ibis tables of one build (not yet restricted to output dates)."""

    orders: ir.Table
    items: ir.Table
    rejects: ir.Table


def payload_hash(event_data: ir.StringValue) -> ir.StringValue:
    return event_data.fill_null("").hexdigest("md5")


def build_orders(
    purchases: ir.Table,
    items: ir.Table,
    ledger: ir.Table,
    event_sessions: ir.Table,
    params: TransformParams,
) -> OrderTables:
    """Orders, items and rejects of the purchase events in ``purchases``.

    purchases:      stg_events rows of the purchase event (annotated with is_bot) to build.
    items:          stg_purchase_items rows of those events.
    ledger:         first occurrences of variants from earlier partitions (``LEDGER_COLUMNS``),
                    so numbering and replay detection continue across runs.
    event_sessions: event_id -> session_id of the sessionized events.
    person_id is set to client_id here; the pipeline re-keys it with ``identity.apply_identity``.
    """
    p = _purchase_rows(purchases)
    numbered = _numbered_variants(p, ledger, params)
    o = p.left_join(numbered, p.event_id == numbered._neid).drop("_neid")
    stats = _item_stats(items)
    o = o.left_join(stats, o.event_id == stats._ieid).drop("_ieid")
    es = event_sessions.select(_seid="event_id", session_id="session_id")
    o = o.left_join(es, o.event_id == es._seid).drop("_seid")
    o = _with_reject_reason(o, params)
    orders = _order_rows(o.filter(o.reason.isnull()))
    rejects = _reject_rows(o.filter(o.reason.notnull()))
    return OrderTables(orders=orders, items=_order_item_rows(items, orders), rejects=rejects)


def _purchase_rows(purchases: ir.Table) -> ir.Table:
    """The purchase events' columns orders need, with the trimmed transaction id and payload hash."""
    p = purchases.select(
        "event_id",
        "client_id",
        "is_bot",
        "payload_error",
        "revenue",
        "event_data",
        transaction_id=purchases.transaction_id.strip().nullif(""),
        order_ts=purchases.event_ts,
        item_count=purchases.item_count.cast("int64"),
    )
    return p.mutate(payload_hash=payload_hash(p.event_data)).drop("event_data")


def _numbered_variants(p: ir.Table, ledger: ir.Table, params: TransformParams) -> ir.Table:
    """Per current purchase event with a transaction id (``_neid``): its variant number, occurrence,
    collision flag, same-day replays collapsed into it and order key, numbered over the history
    ledger and the current events together."""

    def variant_frame(t: ir.Table, is_history: bool) -> ir.Table:
        return t.select(
            "transaction_id",
            "order_ts",
            "event_id",
            _client_key=t.client_id.fill_null(""),
            _payload=t.payload_hash if params.dedupe_exact_replays else t.payload_hash + ":" + t.event_id,
            _hist=ibis.literal(is_history),
        )

    current = p.filter(p.transaction_id.notnull() & p.payload_error.isnull())
    hist = ledger.filter(ledger.transaction_id.notnull())
    allv = variant_frame(hist, True).union(variant_frame(current, False))
    occ_w = ibis.window(
        group_by=[allv.transaction_id, allv._client_key, allv._payload], order_by=[allv.order_ts, allv.event_id]
    )
    allv = allv.mutate(_occurrence=ibis.row_number().over(occ_w) + 1)
    vkeys = _variant_keys(allv.filter(allv._occurrence == 1))

    curv = allv.filter(~allv._hist)
    cur = curv.join(
        vkeys,
        (curv.transaction_id == vkeys._vt) & (curv._client_key == vkeys._vc) & (curv._payload == vkeys._vp),
    )
    same_day_replay = (cur._occurrence > 1) & (cur.order_ts.date() == cur._first_date)
    cur = cur.mutate(
        _n_same_day_replays=same_day_replay.cast("int64")
        .sum()
        .over(group_by=[cur.transaction_id, cur._client_key, cur._payload])
    )
    return cur.select(
        _neid="event_id",
        transaction_variant="_variant",
        _occurrence="_occurrence",
        _collision=cur._known > 1,
        _n_replays=ibis.ifelse(cur._occurrence == 1, cur._n_same_day_replays, 0),
        _order_key=ibis.ifelse(
            cur._variant == 1, cur.transaction_id, cur.transaction_id + "#" + cur._variant.cast("string")
        ),
    )


def _variant_keys(firsts: ir.Table) -> ir.Table:
    """Each variant's first occurrence (``firsts``) numbered within its transaction id, with how many
    variants of the id were known on or before its first date (for the collision flag)."""
    var_w = ibis.window(group_by=firsts.transaction_id, order_by=[firsts.order_ts, firsts.event_id])
    firsts = firsts.mutate(
        _variant=(ibis.row_number().over(var_w) + 1).cast("int64"),
        _first_date=firsts.order_ts.date(),
    )
    per_day = firsts.group_by("transaction_id", "_first_date").aggregate(_n_new=firsts.count())
    cum = per_day.mutate(
        _known=per_day._n_new.sum().over(
            ibis.cumulative_window(group_by=per_day.transaction_id, order_by=per_day._first_date)
        )
    ).select(_kt="transaction_id", _kd="_first_date", _known="_known")
    vkeys = firsts.select(
        _vt="transaction_id",
        _vc="_client_key",
        _vp="_payload",
        _variant="_variant",
        _first_date="_first_date",
        _first_event_id="event_id",
    )
    return vkeys.join(cum, (vkeys._vt == cum._kt) & (vkeys._first_date == cum._kd)).drop("_kt", "_kd")


def _item_stats(items: ir.Table) -> ir.Table:
    """Per purchase event (``_ieid``): items carrying any value, whether a price is missing, quantity."""
    it = items.mutate(
        _has_value=items.item_id.notnull()
        | items.item_name.notnull()
        | items.item_variant.notnull()
        | items.quantity.notnull()
        | items.item_price.notnull()
    )
    return it.group_by(_ieid=it.event_id).aggregate(
        _valued_items=it._has_value.cast("int64").sum(),
        _missing_price=it.item_price.isnull().any(),
        _quantity=it.quantity.sum(),
    )


def _with_reject_reason(o: ir.Table, params: TransformParams) -> ir.Table:
    """``reason`` (the first of ``REJECT_REASONS`` that applies, NULL for an order) and order_date."""
    empty_items = o._valued_items.fill_null(0) == 0
    cases = [
        (o.payload_error.notnull(), "invalid_payload"),
        (o.transaction_id.isnull(), "missing_transaction_id"),
    ]
    if params.dedupe_exact_replays:
        cases.append((o._occurrence > 1, "replay"))
    cases += [(o.revenue.isnull(), "missing_revenue"), (o.revenue < 0, "negative_revenue")]
    if params.exclude_zero_revenue_empty_orders:
        cases.append(((o.revenue == 0) & empty_items, "zero_revenue_empty_items"))
    return o.mutate(
        reason=ibis.cases(*cases, else_=ibis.null("string")),
        order_date=o.order_ts.date(),
    )


def _order_rows(orders: ir.Table) -> ir.Table:
    """fct_orders' columns of the included purchase events."""
    return orders.select(
        order_key=orders._order_key,
        transaction_id=orders.transaction_id,
        transaction_variant=orders.transaction_variant,
        order_ts=orders.order_ts,
        order_date=orders.order_date,
        client_id=orders.client_id,
        person_id=orders.client_id,
        session_id=orders.session_id,
        revenue=orders.revenue,
        item_count=orders.item_count.fill_null(0),
        quantity=orders._quantity,
        is_replay_deduplicated=orders._n_replays.fill_null(0) > 0,
        n_replays_collapsed=orders._n_replays.fill_null(0).cast("int64"),
        is_transaction_id_collision=orders._collision.fill_null(False),
        has_missing_item_prices=orders._missing_price.fill_null(False),
        is_non_integer_revenue=orders.revenue != orders.revenue.floor(),
        is_bot=orders.is_bot,
        payload_hash=orders.payload_hash,
        event_id=orders.event_id,
    )


def _reject_rows(rej: ir.Table) -> ir.Table:
    """fct_order_rejects' columns of the purchase events with a reject reason."""
    detail = ibis.cases(
        (rej.reason == "invalid_payload", "payload: " + rej.payload_error.fill_null("")),
        (rej.reason == "replay", "repeat #" + (rej._occurrence - 1).cast("string") + " of " + rej._order_key),
        (
            rej.reason == "zero_revenue_empty_items",
            "revenue 0 and " + rej.item_count.fill_null(0).cast("string") + " item(s) without any value",
        ),
        else_=ibis.null("string"),
    )
    return rej.select(
        order_key=rej._order_key,
        transaction_id=rej.transaction_id,
        reason=rej.reason,
        revenue=rej.revenue,
        event_id=rej.event_id,
        order_ts=rej.order_ts,
        order_date=rej.order_date,
        client_id=rej.client_id,
        payload_hash=rej.payload_hash,
        detail=detail,
    )


def _order_item_rows(items: ir.Table, orders: ir.Table) -> ir.Table:
    """fct_order_items: the items of included orders, keyed by order_key."""
    ok = orders.select(_okey="order_key", _oeid="event_id", _odate="order_date")
    li = items.join(ok, items.event_id == ok._oeid)
    return li.select(
        order_key=li._okey,
        order_date=li._odate,
        line_number=li.line_number.cast("int64"),
        item_id=li.item_id,
        item_name=li.item_name,
        item_variant=li.item_variant,
        quantity=li.quantity,
        item_price=li.item_price,
        unit_price=li.item_price / li.quantity.nullif(0),
    )
