"""Hand-made warehouse fixtures for the monitoring tests (no tests here).

``build_warehouse`` writes tiny but well-formed partitions of fct_sessions, fct_orders,
fct_order_rejects, fct_attribution and stg_events, with exactly the columns the transform
produces, from a per-day ``DaySpec``. Counts are exact (not sampled) so every test knows the numbers
it asserts on; a small deterministic wobble keeps the daily series from being constant.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa

from puffy.warehouse import write_partition

CHANNELS = {"Organic Search": 0.30, "Paid Search": 0.25, "Direct": 0.20, "Paid Social": 0.15, "Email": 0.10}
HUMAN_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
MODELS = ("first_click", "last_click")
START = date(2025, 2, 1)  # a Saturday


@dataclass
class DaySpec:
    """What one day of the fixture looks like."""

    sessions: int = 400  # non-bot sessions
    bot_sessions: int = 40
    channels: dict = field(default_factory=lambda: dict(CHANNELS))
    viewed: float = 0.60  # funnel stage shares of non-bot sessions
    carted: float = 0.12
    checkout: float = 0.06
    purchased: int = 12  # purchasing sessions = orders
    revenue_per_order: float = 1500.0
    zero_revenue: int = 0  # extra zero-revenue purchases (rejects)
    null_rate: float = 0.01  # share of stg_events rows without client id
    events_per_session: int = 3


def wobble(i: int, amplitude: int) -> int:
    """A deterministic, mean-zero-ish wiggle so daily series have some spread."""
    return ((i * 7) % 5 - 2) * amplitude


def spec_for(i: int, base: DaySpec | None = None) -> DaySpec:
    base = base or DaySpec()
    return replace(base, sessions=base.sessions + wobble(i, 10), purchased=base.purchased + wobble(i, 1) // 1)


def _sessions(day: date, s: DaySpec) -> pd.DataFrame:
    rows = []
    n_human = s.sessions
    channel_list = []
    for ch, share in s.channels.items():
        channel_list += [ch] * round(n_human * share)
    channel_list = (channel_list + ["Direct"] * n_human)[:n_human]
    # interleave (every 7th, shifted) so buyers, carts, … come from every channel
    channel_list = [channel_list[(k * 7) % n_human] for k in range(n_human)] if n_human % 7 else channel_list
    n_view, n_cart, n_chk = round(n_human * s.viewed), round(n_human * s.carted), round(n_human * s.checkout)
    for k in range(n_human + s.bot_sessions):
        bot = k >= n_human
        sid = f"{day:%Y%m%d}-s{k:05d}"
        start = datetime.combine(day, datetime.min.time()) + timedelta(seconds=(k * 97) % 86000)
        rows.append(
            {
                "session_id": sid,
                "person_id": f"p{k}",
                "client_id": f"c{k}",
                "session_date": day,
                "session_start": start,
                "session_end": start + timedelta(minutes=5),
                "duration_seconds": 300.0,
                "n_events": 3,
                "n_page_views": 3,
                "landing_page_url": "https://puffy.com/",
                "landing_path": "/",
                "entry_referrer": None,
                "referrer_host": None,
                "utm_source": None,
                "utm_medium": None,
                "utm_campaign": None,
                "utm_content": None,
                "utm_term": None,
                "channel": "Direct" if bot else channel_list[k],
                "channel_rule": "direct",
                "device_type": "bot" if bot else "desktop",
                "browser": "Chrome",
                "os": "Windows",
                "is_bot": bot,
                "session_number": 1,
                "is_returning_client": False,
                "viewed_product": (not bot) and k < n_view,
                "added_to_cart": (not bot) and k < n_cart,
                "started_checkout": (not bot) and k < n_chk,
                "purchased": (not bot) and k < s.purchased,
                "n_orders": 1 if (not bot and k < s.purchased) else 0,
                "revenue": s.revenue_per_order if (not bot and k < s.purchased) else 0.0,
            }
        )
    return pd.DataFrame(rows)


def _orders(day: date, s: DaySpec, sessions: pd.DataFrame) -> pd.DataFrame:
    buyers = sessions[sessions["purchased"]]
    return pd.DataFrame(
        {
            "order_key": [f"ORD-{day:%Y%m%d}-{i:03d}" for i in range(len(buyers))],
            "transaction_id": [f"ORD-{day:%Y%m%d}-{i:03d}" for i in range(len(buyers))],
            "order_ts": buyers["session_start"].to_numpy(),
            "order_date": [day] * len(buyers),
            "client_id": buyers["client_id"].to_numpy(),
            "person_id": buyers["person_id"].to_numpy(),
            "session_id": buyers["session_id"].to_numpy(),
            "revenue": [s.revenue_per_order] * len(buyers),
            "item_count": [1] * len(buyers),
            "quantity": [1.0] * len(buyers),
            "is_transaction_id_collision": [False] * len(buyers),
            "has_missing_item_prices": [False] * len(buyers),
            "is_non_integer_revenue": [False] * len(buyers),
        }
    )


def _rejects(day: date, s: DaySpec) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_key": [f"REJ-{day:%Y%m%d}-{i:03d}" for i in range(s.zero_revenue)],
            "transaction_id": [f"ORD-{day:%Y%m%d}-9{i:02d}" for i in range(s.zero_revenue)],
            "reason": ["zero_revenue"] * s.zero_revenue,
            "revenue": [0.0] * s.zero_revenue,
            "event_id": [f"{day:%Y%m%d}:{i:09d}" for i in range(s.zero_revenue)],
        }
    ).astype(
        {
            "order_key": "string",
            "transaction_id": "string",
            "reason": "string",
            "revenue": "float64",
            "event_id": "string",
        }
    )


def _attribution(orders: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    channel = dict(zip(sessions["session_id"], sessions["channel"]))
    rows = []
    for model in MODELS:
        for o in orders.itertuples():
            rows.append(
                {
                    "order_key": o.order_key,
                    "model": model,
                    "session_id": o.session_id,
                    "channel": channel[o.session_id],
                    "credit": 1.0,
                    "attributed_revenue": o.revenue,
                    "is_unattributed": False,
                }
            )
    return pd.DataFrame(
        rows, columns=["order_key", "model", "session_id", "channel", "credit", "attributed_revenue", "is_unattributed"]
    )


def _events(day: date, s: DaySpec, sessions: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for sess in sessions.itertuples():
        for _ in range(s.events_per_session):
            rows.append(
                {
                    "client_id": sess.client_id,
                    "user_agent": BOT_UA if sess.is_bot else HUMAN_UA,
                    "event_name": "page_viewed",
                    "revenue": None,
                    "transaction_id": None,
                }
            )
    n_null = round(len(rows) * s.null_rate)
    for r in rows[:n_null]:
        r["client_id"] = None
    for o in orders.itertuples():
        rows.append(
            {
                "client_id": o.client_id,
                "user_agent": HUMAN_UA,
                "event_name": "checkout_completed",
                "revenue": o.revenue,
                "transaction_id": o.transaction_id,
            }
        )
    for i in range(s.zero_revenue):
        rows.append(
            {
                "client_id": f"z{i}",
                "user_agent": HUMAN_UA,
                "event_name": "checkout_completed",
                "revenue": 0.0,
                "transaction_id": f"ORD-{day:%Y%m%d}-9{i:02d}",
            }
        )
    df = pd.DataFrame(rows)
    df.insert(0, "event_id", [f"{day:%Y%m%d}:{i:09d}" for i in range(len(df))])
    df["file_date"] = day
    df["event_ts"] = datetime.combine(day, datetime.min.time())
    df["page_url"] = "https://puffy.com/"
    df["referrer"] = None
    return df.astype({"revenue": "float64", "referrer": "string", "transaction_id": "string", "client_id": "string"})


def write_day(
    warehouse: Path,
    intermediate: Path | None,
    day: date,
    spec: DaySpec,
    tables: tuple[str, ...] = ("fct_sessions", "fct_orders", "fct_order_rejects", "fct_attribution", "stg_events"),
) -> dict[str, pd.DataFrame]:
    """Write one day's partitions; returns the frames (tests tweak and rewrite them)."""
    sessions = _sessions(day, spec)
    orders = _orders(day, spec, sessions)
    frames = {
        "fct_sessions": sessions,
        "fct_orders": orders,
        "fct_order_rejects": _rejects(day, spec),
        "fct_attribution": _attribution(orders, sessions),
        "stg_events": _events(day, spec, sessions, orders),
    }
    for name in tables:
        root = intermediate if name == "stg_events" else warehouse
        if root is not None:
            write_table(root, name, day, frames[name])
    return frames


def write_table(root: Path, table: str, day: date, df: pd.DataFrame) -> None:
    write_partition(root, table, day, pa.Table.from_pandas(df, preserve_index=False))


def build_warehouse(
    root: Path,
    n_days: int = 21,
    start: date = START,
    overrides: dict[int, dict] | None = None,
    base: DaySpec | None = None,
) -> tuple[Path, Path, list[date]]:
    """``n_days`` days from ``start`` under ``root/warehouse`` and ``root/intermediate``.

    ``overrides``: day index -> DaySpec fields to change that day. Returns (warehouse, intermediate, days).
    """
    warehouse, intermediate = root / "warehouse", root / "intermediate"
    days = [start + timedelta(days=i) for i in range(n_days)]
    for i, day in enumerate(days):
        spec = spec_for(i, base)
        if overrides and i in overrides:
            spec = replace(spec, **overrides[i])
        write_day(warehouse, intermediate, day, spec)
    return warehouse, intermediate, days
