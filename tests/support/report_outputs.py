"""A small, hand-made warehouse for the executive-summary tests (no tests in this module).

``make_outputs(root, ...)`` writes ``<root>/warehouse`` with the fct tables the report reads (the
columns of the transform's contract), ``<root>/intermediate/stg_events`` page views (some without
a client id) and ``<root>/runs/<date>/dq_report.json`` / ``monitoring_report.json`` findings.
Everything is drawn from a seeded generator, so a fixture is the same on every run, and the knobs
(conversion by channel, mobile penalty, dates without item prices, …) let two fixtures tell
different stories.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from puffy.warehouse import write_partition

CHANNELS = ("Direct", "Paid Search", "Email", "Organic Search", "Paid Social")
PRODUCTS = (
    ("P-LUX", "Lux Mattress", 1200.0),
    ("P-CLD", "Cloud Mattress", 900.0),
    ("P-PIL", "Pillow", 80.0),
    ("P-TOP", "Topper", 250.0),
)


@dataclass
class FixtureConfig:
    start: date = date(2025, 3, 1)
    days: int = 7
    sessions_per_day: int = 400
    seed: int = 1
    # conversion probability per channel (non-bot sessions)
    conversion: dict = field(
        default_factory=lambda: {
            "Direct": 0.02,
            "Paid Search": 0.015,
            "Email": 0.06,
            "Organic Search": 0.01,
            "Paid Social": 0.004,
        }
    )
    channel_weights: tuple = (0.35, 0.25, 0.1, 0.2, 0.1)
    mobile_share: float = 0.6
    mobile_penalty: float = 1.0  # conversion multiplier for mobile sessions
    returning_share: float = 0.2
    returning_boost: float = 2.0
    bot_share: float = 0.05
    price_scale: float = 1.0
    missing_prices_from: date | None = None  # item_price NULL for orders on/after this date
    client_id_null_days: dict = field(default_factory=dict)  # date -> null share of page views
    referrer_lost_from: date | None = None  # findings + Direct share shift from this date
    write_findings: bool = True
    boost_from: date | None = None  # conversion multiplied by ``boost`` from this date
    boost: float = 1.0


def _days(cfg: FixtureConfig) -> list[date]:
    return [cfg.start + timedelta(days=i) for i in range(cfg.days)]


def build_tables(cfg: FixtureConfig) -> dict[str, pd.DataFrame]:
    """The fixture's tables as pandas frames (one frame per table, all days)."""
    rng = np.random.default_rng(cfg.seed)
    sessions, orders, items, attribution = [], [], [], []
    for day in _days(cfg):
        n = cfg.sessions_per_day
        weights = np.array(cfg.channel_weights, dtype=float)
        if cfg.referrer_lost_from and day >= cfg.referrer_lost_from:
            # Organic search visits lose their referrer and land in Direct.
            weights = weights.copy()
            weights[0] += weights[3] * 0.7
            weights[3] *= 0.3
        channel = rng.choice(CHANNELS, size=n, p=weights / weights.sum())
        device = np.where(rng.random(n) < cfg.mobile_share, "mobile", "desktop")
        returning = rng.random(n) < cfg.returning_share
        is_bot = rng.random(n) < cfg.bot_share
        p_buy = np.array([cfg.conversion[c] for c in channel])
        p_buy = p_buy * np.where(device == "mobile", cfg.mobile_penalty, 1.0)
        p_buy = p_buy * np.where(returning, cfg.returning_boost, 1.0)
        if cfg.boost_from is not None and day >= cfg.boost_from:
            p_buy = p_buy * cfg.boost
        purchased = (rng.random(n) < np.clip(p_buy, 0, 1)) & ~is_bot
        started = purchased | ((rng.random(n) < 0.03) & ~is_bot)
        added = started | ((rng.random(n) < 0.08) & ~is_bot)
        viewed = added | (rng.random(n) < 0.5)
        start_ts = [
            datetime(day.year, day.month, day.day) + timedelta(seconds=int(s))
            for s in np.sort(rng.integers(0, 86_000, size=n))
        ]
        for i in range(n):
            sid = f"s-{day:%Y%m%d}-{i:04d}"
            revenue, n_orders = 0.0, 0
            if purchased[i]:
                k = rng.integers(1, 3)
                picks = rng.choice(len(PRODUCTS), size=k, replace=False)
                lines = []
                for ln, j in enumerate(picks, start=1):
                    pid, name, price = PRODUCTS[j]
                    qty = int(rng.integers(1, 3)) if name == "Pillow" else 1
                    lines.append((ln, pid, name, qty, price * qty * cfg.price_scale))
                revenue = float(sum(x[4] for x in lines))
                n_orders = 1
                okey = f"ORD-{day:%Y%m%d}-{i:04d}"
                missing = cfg.missing_prices_from is not None and day >= cfg.missing_prices_from
                orders.append(
                    {
                        "order_key": okey,
                        "transaction_id": okey,
                        "order_ts": start_ts[i] + timedelta(minutes=9),
                        "order_date": day,
                        "client_id": f"c-{sid}",
                        "person_id": f"p-{sid}",
                        "session_id": sid,
                        "revenue": revenue,
                        "item_count": len(lines),
                        "quantity": float(sum(x[3] for x in lines)),
                        "is_replay_deduplicated": False,
                        "n_replays_collapsed": 0,
                        "is_transaction_id_collision": False,
                        "has_missing_item_prices": missing,
                        "is_non_integer_revenue": False,
                        "is_bot": False,
                    }
                )
                for ln, pid, name, qty, line_total in lines:
                    items.append(
                        {
                            "order_key": okey,
                            "order_date": day,
                            "line_number": ln,
                            "item_id": pid,
                            "item_name": name,
                            "item_variant": "Queen",
                            "quantity": float(qty),
                            "item_price": None if missing else line_total,
                            "unit_price": None if missing else line_total / qty,
                        }
                    )
                first = channel[i] if rng.random() < 0.6 else CHANNELS[int(rng.integers(0, len(CHANNELS)))]
                cents = round(revenue * 100)
                for model in (
                    "first_click",
                    "last_click",
                    "last_non_direct_click",
                    "linear",
                    "position_based",
                    "time_decay",
                    "markov",
                ):
                    if model == "first_click":
                        split = [(first, 1.0)]
                    elif model in ("last_click", "last_non_direct_click"):
                        split = [(channel[i], 1.0)]
                    else:
                        split = [(first, 0.5), (channel[i], 0.5)]
                    paid = 0
                    for k_, (ch, credit) in enumerate(split):
                        c = cents - paid if k_ == len(split) - 1 else int(cents * credit)
                        paid += c
                        attribution.append(
                            {
                                "order_key": okey,
                                "model": model,
                                "session_id": sid,
                                "channel": ch,
                                "credit": credit,
                                "attributed_revenue": c / 100.0,
                                "is_unattributed": False,
                            }
                        )
            sessions.append(
                {
                    "session_id": sid,
                    "person_id": f"p-{sid}",
                    "client_id": f"c-{sid}",
                    "session_date": day,
                    "session_start": start_ts[i],
                    "session_end": start_ts[i] + timedelta(minutes=12),
                    "duration_seconds": 720.0,
                    "n_events": 5,
                    "n_page_views": 4,
                    "landing_page_url": "https://puffy.com/",
                    "landing_path": "/",
                    "channel": channel[i],
                    "device_type": device[i],
                    "browser": "Chrome",
                    "os": "iOS" if device[i] == "mobile" else "Windows",
                    "is_bot": bool(is_bot[i]),
                    "session_number": 2 if returning[i] else 1,
                    "is_returning_client": bool(returning[i]),
                    "viewed_product": bool(viewed[i]),
                    "added_to_cart": bool(added[i]),
                    "started_checkout": bool(started[i]),
                    "purchased": bool(purchased[i]),
                    "n_orders": n_orders,
                    "revenue": revenue,
                }
            )
    return {
        "fct_sessions": pd.DataFrame(sessions),
        "fct_orders": pd.DataFrame(orders),
        "fct_order_items": pd.DataFrame(items),
        "fct_attribution": pd.DataFrame(attribution),
    }


_DATE_COLUMN = {
    "fct_sessions": "session_date",
    "fct_orders": "order_date",
    "fct_order_items": "order_date",
    "fct_attribution": None,
}


def make_outputs(root: Path, cfg: FixtureConfig | None = None) -> Path:
    """Write the fixture under ``root`` (an outputs directory) and return ``root``."""
    cfg = cfg or FixtureConfig()
    root = Path(root)
    wh = root / "warehouse"
    tables = build_tables(cfg)
    order_dates = tables["fct_orders"].set_index("order_key")["order_date"] if len(tables["fct_orders"]) else None
    for day in _days(cfg):
        for name, df in tables.items():
            if name == "fct_attribution":
                part = (
                    df[df["order_key"].map(order_dates) == day] if order_dates is not None and len(df) else df.iloc[0:0]
                )
            else:
                part = df[df[_DATE_COLUMN[name]] == day] if len(df) else df
            write_partition(wh, name, day, pa.Table.from_pandas(part.reset_index(drop=True), preserve_index=False))
    rejects = pd.DataFrame(
        {"order_key": ["ORD-Z"], "transaction_id": ["ORD-Z"], "reason": ["zero_revenue_empty_items"], "revenue": [0.0]}
    )
    write_partition(wh, "fct_order_rejects", cfg.start, pa.Table.from_pandas(rejects, preserve_index=False))
    _write_stg_events(root / "intermediate", cfg)
    if cfg.write_findings:
        _write_findings(root / "runs", cfg)
    return root


def _write_stg_events(root: Path, cfg: FixtureConfig) -> None:
    """1,000 page views a day; the configured share of them (default 1%) without a client id."""
    for day in _days(cfg):
        share = cfg.client_id_null_days.get(day, 0.01)
        n, nulls = 1000, int(round(1000 * share))
        df = pd.DataFrame(
            {
                "file_date": [day] * n,
                "event_name": ["page_viewed"] * n,
                "client_id": [None] * nulls + [f"c{i}" for i in range(n - nulls)],
            }
        )
        write_partition(root, "stg_events", day, pa.Table.from_pandas(df, preserve_index=False))


def _write_findings(runs: Path, cfg: FixtureConfig) -> None:
    for day in _days(cfg):
        d = day.isoformat()
        dq = [
            {
                "id": "bots.share",
                "severity": "warn",
                "status": "warn",
                "metric": "bot_share",
                "value": cfg.bot_share + 0.07,
                "dates": [d],
                "message": f"Bots make up a lot of events on {d}",
                "daily": [{"date": d, "value": cfg.bot_share + 0.07, "severity": "warn"}],
            },
            {
                "id": "schema.column_renamed",
                "severity": "warn",
                "status": "warn",
                "metric": "renamed",
                "value": 1,
                "dates": [d],
                "message": "Header clientId is read as client_id",
            },
        ]
        share = cfg.client_id_null_days.get(day)
        if share:
            dq.append(
                {
                    "id": "client_id.null_rate",
                    "severity": "error" if share > 0.1 else "warn",
                    "status": "warn",
                    "metric": "client_id_null_rate",
                    "value": share,
                    "dates": [d],
                    "message": f"Client ids are missing on {share:.1%} of page_viewed events on {d}",
                    "daily": [{"date": d, "value": share, "severity": "warn"}],
                }
            )
        mon = []
        if cfg.referrer_lost_from and day >= cfg.referrer_lost_from:
            dq.append(
                {
                    "id": "schema.column_missing",
                    "severity": "error",
                    "status": "error",
                    "metric": "missing",
                    "value": 1,
                    "dates": [d],
                    "message": f"Column referrer is missing from 1 file ({d})",
                }
            )
            mon.append(
                {
                    "id": "mix.direct_share_jump",
                    "severity": "warn",
                    "metric": "direct_share",
                    "value": 0.5,
                    "dates": [d],
                    "message": f"Direct/Unassigned share of sessions on {d} jumped",
                }
            )
        mon.append(
            {
                "id": "funnel.conversion_rate_out_of_band",
                "severity": "warn",
                "metric": "conversion_rate",
                "value": 0.2,
                "dates": [d],
                "message": f"conversion rate out of band on {d}",
            }
        )
        for name, findings in (("dq_report.json", dq), ("monitoring_report.json", mon)):
            path = runs / d / name
            path.parent.mkdir(parents=True, exist_ok=True)
            status = "error" if any(f["severity"] == "error" for f in findings) else "warn"
            path.write_text(json.dumps({"status": status, "findings": findings}), encoding="utf-8")


def count_pdf_pages(pdf: bytes) -> int:
    """Pages of a PDF counted from its bytes (no PDF library needed): ``/Type /Page`` objects,
    looking inside Flate-compressed object streams too (WeasyPrint compresses them)."""
    import re
    import zlib

    chunks = [pdf]
    for m in re.finditer(rb"stream\r?\n", pdf):
        start = m.end()
        end = pdf.find(b"endstream", start)
        try:
            chunks.append(zlib.decompress(pdf[start:end]))
        except zlib.error:
            continue
    pattern = re.compile(rb"/Type\s*/Page(?![s\w])")
    return sum(len(pattern.findall(c)) for c in chunks)
