"""Orders behind the checkout_completed events and their event_data JSON.

Each completed checkout buys the session's focus product in some size, plus
sometimes one or two add-ons.  `item_price` is the line total (unit price x
quantity) and `revenue` is the sum of the line totals, as in the export.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from . import traffic as T
from . import vocab as V

ADDON_COUNT_P = [0.80, 0.15, 0.05]  # 0, 1 or 2 add-ons
MULTI_QUANTITY_P = 0.2

_SKU_FAMILY = np.array([s[0] for s in V.SKUS])
_SKU_WEIGHT = np.array([s[5] for s in V.SKUS])
_SKU_ID = np.array([s[1] for s in V.SKUS], dtype=object)
_SKU_NAME = np.array([s[2] for s in V.SKUS], dtype=object)
# Variants contain inch marks: escape them once for JSON.
_SKU_VARIANT_JSON = np.array([s[3].replace("\\", "\\\\").replace('"', '\\"') for s in V.SKUS], dtype=object)
_MAX_PRICES = max(len(s[4]) for s in V.SKUS)
_SKU_PRICES = np.array([s[4] + [s[4][0]] * (_MAX_PRICES - len(s[4])) for s in V.SKUS], dtype=float)
_SKU_N_PRICES = np.array([len(s[4]) for s in V.SKUS])
_MULTI_QTY = np.array([f in V.MULTI_QUANTITY_FAMILIES for f in V.FAMILY_NAMES])


def email_hash(client_ids: np.ndarray) -> np.ndarray:
    """Stable sha256 'email' per person, from its first device's id (the export only carries the hash)."""
    return np.array([hashlib.sha256(b"shopper:" + c).hexdigest() for c in client_ids], dtype=object)


def build_orders(
    rng, traffic: T.Traffic, events: pd.DataFrame, number_offset: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One order per checkout_completed event, and its line items.

    Adds an `order` column to the events (-1 for other events).
    """
    ev_idx = np.flatnonzero(events["kind"].to_numpy() == T.COMPLETED)
    ts = events["ts"].to_numpy()[ev_idx]
    sess = events["sess"].to_numpy()[ev_idx]
    client = events["client"].to_numpy()[ev_idx]
    n = len(ev_idx)
    order_col = np.full(len(events), -1, dtype=np.int32)
    order_col[ev_idx] = np.arange(n)
    events["order"] = order_col

    orders = pd.DataFrame(
        {
            "event": ev_idx,
            "ts": ts,
            "sess": sess,
            "client": client,
            "email": email_hash(traffic.client_ids[traffic.person[client]]),
            "transaction_id": _transaction_ids(rng, ts, number_offset),
            # fault flags, set by the fault injectors
            "zero_revenue": False,
            "price_null": False,
            "fault": "",
        }
    )

    # Items: the focus product first, then add-ons.
    n_addons = rng.choice(3, size=n, p=ADDON_COUNT_P)
    n_items = 1 + n_addons
    item_order = np.repeat(np.arange(n), n_items)
    first = T.segment_arange(n_items) == 0
    family = np.where(
        first,
        traffic.sessions["family"].to_numpy()[sess][item_order],
        T.weighted_choice(rng, V.FAMILY_ADDON_WEIGHT, len(item_order)),
    )
    sku = np.zeros(len(item_order), dtype=np.int64)
    for f in np.unique(family):
        m = family == f
        options = np.flatnonzero(_SKU_FAMILY == f)
        sku[m] = options[T.weighted_choice(rng, _SKU_WEIGHT[options], int(m.sum()))]
    unit = _SKU_PRICES[sku, rng.integers(0, 1 << 30, len(sku)) % _SKU_N_PRICES[sku]]
    qty = np.where(_MULTI_QTY[family] & (rng.random(len(sku)) < MULTI_QUANTITY_P), 2, 1)
    items = pd.DataFrame({"order": item_order, "sku": sku, "quantity": qty, "price": unit * qty})
    return orders, items


def _transaction_ids(rng, ts: np.ndarray, number_offset: int = 0) -> np.ndarray:
    """ORD-YYYYMMDD-NNN, the number unique within the day (at least 3 digits), plus ``number_offset``."""
    day = ts // T.DAY_MS
    out = np.empty(len(ts), dtype=object)
    for d in np.unique(day):
        m = np.flatnonzero(day == d)
        space = max(999, 4 * len(m))
        numbers = rng.choice(np.arange(1, space + 1), size=len(m), replace=False) + number_offset
        date = np.datetime64(int(d), "D").astype(str).replace("-", "")
        out[m] = [f"ORD-{date}-{k:03d}" for k in numbers]
    return out


def format_number(x: np.ndarray) -> np.ndarray:
    """Whole amounts print without decimals (245), others as short decimals (421.6)."""
    x = np.round(np.asarray(x, dtype=float), 2)
    whole = x == np.floor(x)
    return np.where(whole, x.astype(np.int64).astype(str), x.astype(str)).astype(object)


def revenue(orders: pd.DataFrame, items: pd.DataFrame) -> np.ndarray:
    rev = np.bincount(items["order"], weights=items["price"], minlength=len(orders))
    return np.where(orders["zero_revenue"], 0.0, np.round(rev, 2))


def order_json(orders: pd.DataFrame, items: pd.DataFrame) -> np.ndarray:
    """event_data JSON of every order (compact, key order as in the export)."""
    sku = items["sku"].to_numpy()
    price_null = orders["price_null"].to_numpy()[items["order"].to_numpy()]
    price = np.where(price_null, "null", format_number(items["price"].to_numpy()))
    item_json = (
        '{"item_id":"'
        + _SKU_ID[sku]
        + '","item_name":"'
        + _SKU_NAME[sku]
        + '","item_variant":"'
        + _SKU_VARIANT_JSON[sku]
        + '","quantity":'
        + items["quantity"].to_numpy().astype(str).astype(object)
        + ',"item_price":'
        + price.astype(object)
        + "}"
    )
    joined = pd.Series(item_json).groupby(items["order"].to_numpy()).agg(",".join)
    items_json = joined.reindex(range(len(orders))).to_numpy()
    null_item = '{"item_id":null,"item_name":null,"item_variant":null,"quantity":null,"item_price":null}'
    items_json = np.where(orders["zero_revenue"], null_item, items_json)
    return (
        '{"transaction_id":"'
        + orders["transaction_id"].to_numpy()
        + '","revenue":'
        + format_number(revenue(orders, items))
        + ',"items":['
        + items_json
        + '],"user_email":"'
        + orders["email"].to_numpy()
        + '"}'
    )
