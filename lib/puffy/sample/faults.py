"""Injection of the real-world data faults.

Each injector changes the simulated events/orders in place (or appends rows)
and returns a record for `_truth/faults.json`.  Appended rows carry a non-zero
`extra` code so the ground truth can tell them from genuine events.

Counts are given for the real export (scale 1, 14 days) and scale with the
volume.  Fault days are placed at the same relative position in the window
as in the real export (e.g. the missing-id spike on the middle day).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import traffic as T
from . import vocab as V

# Codes of the `extra` column.
GENUINE, EXACT_DUPLICATE, REPLAY, SAME_KEY_DUPLICATE, NULL_ID = range(5)

BASE_COUNTS = {
    "exact_duplicate_rows": 1,
    "same_key_duplicates": 7,
    "transaction_id_collisions": 4,
    "transaction_id_replays": 3,
    "zero_revenue_orders": 10,
    "non_integer_revenue": 2,
}
# Missing-id share of a day's rows: normal, on the spike day, after it, on the last day.
NULL_ID_RATES = (0.01, 0.158, 0.085, 0.143)


@dataclass
class Context:
    rng: np.random.Generator
    start_ms: int
    days: int
    scale: float
    client_ids: np.ndarray

    def count(self, name: str) -> int:
        return max(1, round(BASE_COUNTS[name] * self.scale * self.days / 14))

    def day_index(self, ts) -> np.ndarray:
        return (np.asarray(ts) - self.start_ms) // T.DAY_MS

    def date(self, day_index: int) -> str:
        return str(np.datetime64(self.start_ms // T.DAY_MS + int(day_index), "D"))

    def dates(self, ts) -> list[str]:
        return [self.date(d) for d in np.unique(self.day_index(ts))]

    def iso(self, ts: int) -> str:
        return str(np.datetime64(int(ts), "ms")) + "Z"

    def client(self, c: int) -> str:
        return self.client_ids[c].decode() if c >= 0 else ""


MAX_EXAMPLES = 10


def record(name, dates, count, examples, **extra) -> dict:
    return {"name": name, "dates": dates, "count": int(count), "examples": examples[:MAX_EXAMPLES], **extra}


def _event_key(ctx: Context, row) -> dict:
    return {
        "client_id": ctx.client(row.client),
        "timestamp": ctx.iso(row.ts),
        "event_name": V.EVENT_NAMES[T.KIND_EVENT[row.kind]],
    }


def _append(events: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([events, rows], ignore_index=True)


def client_id_nulls(ctx: Context, events: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Extra page views without a client id: ~1% a day, a spike on the middle day,
    ~8.5% after it and a second spike on the last day.

    They are additional rows, not part of any session.
    """
    spike = ctx.days // 2
    rate = np.full(ctx.days, NULL_ID_RATES[0])
    rate[spike] = NULL_ID_RATES[1]
    rate[spike + 1 :] = NULL_ID_RATES[2]
    if ctx.days - 1 > spike:
        rate[-1] = NULL_ID_RATES[3]
    per_day = np.bincount(ctx.day_index(events["ts"]), minlength=ctx.days)
    n_null = ctx.rng.binomial(per_day, rate / (1 - rate))
    n = int(n_null.sum())
    day = np.repeat(np.arange(ctx.days), n_null)
    hour = T.weighted_choice(ctx.rng, V.HOUR_WEIGHTS, n)
    ids, p = V.BROWSE_TABLE
    rows = pd.DataFrame(
        {
            "ts": ctx.start_ms + day * T.DAY_MS + hour * T.HOUR_MS + ctx.rng.integers(0, T.HOUR_MS, n),
            "sess": np.int32(-1),
            "kind": np.int8(T.BROWSE),
            "client": np.int32(-1),
            "ua": T.weighted_choice(ctx.rng, [w for _, w in V.HUMAN_AGENTS], n).astype(np.int16),
            "page": ids[ctx.rng.choice(len(ids), size=n, p=p)],
            "ref": np.where(ctx.rng.random(n) < 0.7, 0, V.REF_SITE).astype(np.int16),
            "order": np.int32(-1),
            "extra": np.int8(NULL_ID),
        }
    )
    share = {ctx.date(d): round(float(n_null[d] / (per_day[d] + n_null[d])), 4) for d in range(ctx.days) if per_day[d]}
    rec = record(
        "client_id_nulls",
        [ctx.date(d) for d in range(ctx.days) if n_null[d]],
        n,
        [_event_key(ctx, r) for r in rows.sort_values("ts").head(3).itertuples()],
        share_by_date=share,
        spike_date=ctx.date(spike),
        note="extra page views with empty client_id; they belong to no session",
    )
    return _append(events, rows), rec


def exact_duplicate_rows(ctx: Context, events: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Copies of page views on the last day (a byte-identical row)."""
    day = ctx.day_index(events["ts"])
    pool = np.flatnonzero(
        (events["kind"].to_numpy() == T.BROWSE) & (events["client"].to_numpy() >= 0) & (day == day.max())
    )
    pick = ctx.rng.choice(pool, size=min(ctx.count("exact_duplicate_rows"), len(pool)), replace=False)
    rows = events.iloc[np.sort(pick)].copy()
    rows["extra"] = np.int8(EXACT_DUPLICATE)
    rec = record(
        "exact_duplicate_rows", ctx.dates(rows["ts"]), len(rows), [_event_key(ctx, r) for r in rows.itertuples()]
    )
    return _append(events, rows), rec


def same_key_duplicates(ctx: Context, events: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """A second page view with the same client, timestamp and event but another URL."""
    pool = np.flatnonzero(
        (events["kind"].to_numpy() == T.BROWSE)
        & (events["client"].to_numpy() >= 0)
        & (events["extra"].to_numpy() == GENUINE)
    )
    pick = ctx.rng.choice(pool, size=min(ctx.count("same_key_duplicates"), len(pool)), replace=False)
    rows = events.iloc[np.sort(pick)].copy()
    ids, p = V.BROWSE_TABLE
    other = ids[ctx.rng.choice(len(ids), size=len(rows), p=p)]
    other = np.where(other == rows["page"].to_numpy(), V.CART_PAGE, other)
    rows["page"] = np.where(other == rows["page"].to_numpy(), V.FAMILY_PAGE[0], other).astype(np.int16)
    rows["ref"] = np.int16(0)
    rows["extra"] = np.int8(SAME_KEY_DUPLICATE)
    rec = record(
        "same_key_duplicates",
        ctx.dates(rows["ts"]),
        len(rows),
        [_event_key(ctx, r) for r in rows.itertuples()],
        note="each example key appears twice, with different page_url/referrer",
    )
    return _append(events, rows), rec


def _clean_orders(orders: pd.DataFrame) -> np.ndarray:
    return np.flatnonzero((orders["fault"] == "").to_numpy())


def transaction_id_collisions(ctx: Context, orders: pd.DataFrame) -> dict:
    """Two orders of the same day by different visitors share a transaction id."""
    clean = _clean_orders(orders)
    day = ctx.day_index(orders["ts"].to_numpy()[clean])
    client = orders["client"].to_numpy()
    # Candidate pairs: a day's clean orders shuffled and taken two by two.
    pairs = []
    for d in np.unique(day):
        idx = ctx.rng.permutation(clean[day == d])
        pairs += [(a, b) for a, b in zip(idx[0::2], idx[1::2]) if client[a] != client[b]]
    n = min(ctx.count("transaction_id_collisions"), len(pairs))
    chosen = [pairs[i] for i in np.sort(ctx.rng.choice(len(pairs), size=n, replace=False))]
    for a, b in chosen:
        orders.at[b, "transaction_id"] = orders.at[a, "transaction_id"]
        orders.loc[[a, b], "fault"] = "collision"
    hit = orders["fault"] == "collision"
    examples = [
        {"transaction_id": orders.at[a, "transaction_id"], "client_ids": [ctx.client(client[a]), ctx.client(client[b])]}
        for a, b in chosen
    ]
    return record("transaction_id_collisions", ctx.dates(orders.loc[hit, "ts"]), n, examples, n_events=int(hit.sum()))


def _pick_orders(ctx: Context, orders: pd.DataFrame, name: str, label: str, mask=None) -> np.ndarray:
    pool = _clean_orders(orders)
    if mask is not None:
        pool = pool[mask[pool]]
    pick = np.sort(ctx.rng.choice(pool, size=min(ctx.count(name), len(pool)), replace=False))
    if label:
        orders.loc[pick, "fault"] = label
    return pick


def transaction_id_replays(
    ctx: Context, events: pd.DataFrame, orders: pd.DataFrame, end_ms: int
) -> tuple[pd.DataFrame, dict]:
    """The same purchase event sent again by the same visitor a few seconds later."""
    pick = _pick_orders(
        ctx, orders, "transaction_id_replays", "replay", mask=(orders["ts"] < end_ms - 10_000).to_numpy()
    )
    rows = events.iloc[orders.loc[pick, "event"].to_numpy()].copy()
    rows["ts"] = rows["ts"].to_numpy() + ctx.rng.integers(2_000, 8_000, len(rows))
    rows["extra"] = np.int8(REPLAY)
    examples = [
        {"transaction_id": orders.at[i, "transaction_id"], "client_id": ctx.client(orders.at[i, "client"])}
        for i in pick
    ]
    rec = record(
        "transaction_id_replays",
        ctx.dates(rows["ts"]),
        len(rows),
        examples,
        note="not in the real export: identical checkout_completed row re-sent 2-8 s later",
    )
    return _append(events, rows), rec


def zero_revenue_orders(ctx: Context, orders: pd.DataFrame) -> dict:
    """Completed checkouts with revenue 0 and a single all-null item."""
    pick = _pick_orders(ctx, orders, "zero_revenue_orders", "zero_revenue")
    orders.loc[pick, "zero_revenue"] = True
    return record(
        "zero_revenue_orders", ctx.dates(orders.loc[pick, "ts"]), len(pick), orders.loc[pick, "transaction_id"].tolist()
    )


def non_integer_revenue(ctx: Context, orders: pd.DataFrame, items: pd.DataFrame) -> dict:
    """A discount leaves a few orders with revenue like 421.6 (valid, so not marked in
    orders.csv).  Run after the other order faults so it picks clean orders, preferably
    before item prices go null so the odd price shows in the item too."""
    early = ctx.day_index(orders["ts"]) < _item_price_null_day(ctx)
    pick = _pick_orders(ctx, orders, "non_integer_revenue", "", mask=early if early.any() else None)
    first_item = np.flatnonzero(T.segment_arange(np.bincount(items["order"], minlength=len(orders))) == 0)
    rows = first_item[pick]
    items.loc[rows, "price"] = items.loc[rows, "price"] - ctx.rng.choice([0.2, 0.4], size=len(rows))
    return record(
        "non_integer_revenue", ctx.dates(orders.loc[pick, "ts"]), len(pick), orders.loc[pick, "transaction_id"].tolist()
    )


def _item_price_null_day(ctx: Context) -> int:
    return min(ctx.days - 1, round(ctx.days * 11 / 14))


def item_price_null(ctx: Context, orders: pd.DataFrame) -> dict:
    """From a late day on, item_price is null in every item (revenue is still there)."""
    from_day = _item_price_null_day(ctx)
    hit = ctx.day_index(orders["ts"]) >= from_day
    orders.loc[hit, "price_null"] = True
    return record(
        "item_price_null",
        ctx.dates(orders.loc[hit, "ts"]),
        int(hit.sum()),
        orders.loc[hit, "transaction_id"].head(5).tolist(),
        from_date=ctx.date(from_day),
    )
