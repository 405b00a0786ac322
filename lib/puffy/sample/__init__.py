"""Realistic sample of the raw web-tracking export, with ground truth.

`generate_sample(out_dir, SampleConfig(...))` writes one CSV per UTC day,
`events_YYYYMMDD.csv`, in exactly the export's format, plus `_truth/` holding
what a correct pipeline must recover from them.

The model (details in `traffic`, `orders`, `faults`):

* ~3,500 events a day at scale 1 (scale multiplies visitors, same shape):
  ~92% page views, then add-to-cart, checkout started, email pop-up fills and
  completed checkouts in roughly the real proportions.  Daily cycle and
  weekday pattern as in the real export.
* Visitors (cookie ids `<unix seconds>-<12 chars>`, a few UUIDs) make one or
  more sessions, return visits hours to days apart; some come back on a second
  device (another cookie id, the same hashed email).  Sessions are separated
  by at least 45 minutes and events inside a session by at most 20 minutes,
  so a 30-minute inactivity rule recovers the sessions exactly.
* A session's marketing channel is fixed by its landing page view: URL
  parameters shaped like the real ones (values hashed) and/or the referrer
  (hosts anonymised).  Later page views carry no marketing parameters and an
  internal referrer (or, often, none: the export tracks referrers patchily).  About 0.9% of human
  sessions end in a purchase.
* ~12% of events come from bots (Googlebot, Ahrefs, headless Chrome, AdsBot).
* The real export's faults are injected on request (see ALL_FAULTS); with no
  faults the data is clean.  The purchase event is `checkout_completed`, not
  the dictionary's `purchase`: that mismatch is inherent, not a switch.

Ground truth (`_truth/`):

* sessions.csv: client_id, session_start, session_end, n_events,
  n_fault_rows, channel, true_channel, is_bot, landing_page_url, person_id;
  one row per session (bots included), ordered by start.  person_id is the
  client id of the person's first device: it differs from client_id on the
  sessions a shopper made on a second device.  n_events counts every row of
  the day files in the session, n_fault_rows those injected as faults
  (exact duplicates, replays, same-key duplicates).  Rows with an empty
  client id are extra page views that belong to no session.  `channel` is
  what the data lets one see: once the referrer column is gone, sessions
  told apart only by their referrer look Direct; `true_channel` is the
  source the simulation used.  A session split off at the checkout (the
  cross-domain break, see `traffic`) has channel "Continuation" and the true
  channel of the journey it continues.
* orders.csv: transaction_id, client_id, order_ts, revenue,
  first_touch_channel, last_touch_channel, fault, journey_client_id,
  checkout_break, true_journey; one row per real order (a replayed event is
  one order; two orders sharing an id are two rows).  Touches are the
  (observable) channels of the client's earliest and latest non-bot sessions
  started within 7 days before the order, its own session included, leaving
  out continuations; without any touch both are "Untracked journey".  fault is
  empty, "collision", "replay" or "zero_revenue".  checkout_break is empty,
  "timeout" (the purchase is a new session of the same client id) or
  "new_client_id" (it is under a new client id); journey_client_id is the
  client id the journey ran on before the break (client_id without one).
  true_journey: "tracked" when the buyer's client id has a touch, else
  "stitchable" when another client id of the same person (second device, the
  id before a break) has one, else "untracked".
* faults.json: the config used and, per injected fault, its dates, count and
  example keys.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import faults as F
from . import orders as O
from . import render as R
from . import traffic as T
from . import vocab as V
from .vocab import AFFIRM_HOST, CHANNELS, REFERRAL_HOSTS, SOCIAL_HOSTS

__all__ = [
    "ALL_FAULTS",
    "SampleConfig",
    "SampleSummary",
    "generate_sample",
    "CHANNELS",
    "SOCIAL_HOSTS",
    "REFERRAL_HOSTS",
    "AFFIRM_HOST",
]

ALL_FAULTS: frozenset[str] = frozenset(
    {
        "client_id_rename",
        "referrer_dropped",
        "client_id_nulls",
        "item_price_null",
        "zero_revenue_orders",
        "transaction_id_collisions",
        "transaction_id_replays",
        "exact_duplicate_rows",
        "same_key_duplicates",
        "bots",
        "non_integer_revenue",
    }
)
# Days before the referrer column disappears during which its null/anonymised mix shifts.
REFERRER_SHIFT_DAYS = 4
TOUCH_WINDOW_MS = 7 * T.DAY_MS
SESSION_COLUMNS = (
    "client_id",
    "session_start",
    "session_end",
    "n_events",
    "n_fault_rows",
    "channel",
    "true_channel",
    "is_bot",
    "landing_page_url",
    "person_id",
)
# Observable channel of a session split off at the checkout (code after the CHANNELS codes), and
# the first / last touch of an order without any touch.
CONTINUATION, UNTRACKED = "Continuation", "Untracked journey"
CONTINUATION_CODE = len(CHANNELS)
CHANNEL_NAMES = np.array([*CHANNELS, CONTINUATION], dtype=object)
BREAK_NAMES = np.array(["", "timeout", "new_client_id"], dtype=object)


@dataclass(frozen=True)
class SampleConfig:
    """What to generate.  The header rename and the referrer drop happen only when
    their fault is switched on and their date is set."""

    start: dt.date = dt.date(2025, 2, 23)
    days: int = 14
    scale: float = 1.0  # K times the volume (~3,500 events/day at 1), same shape
    seed: int = 7
    faults: frozenset[str] = ALL_FAULTS
    rename_client_id_from: dt.date | None = dt.date(2025, 2, 27)  # header clientId from this date on
    drop_referrer_from: dt.date | None = dt.date(2025, 3, 4)  # referrer column absent from this date
    order_number_offset: int = 0  # added to every ORD-YYYYMMDD-NNN number (keeps shards' ids apart)


@dataclass(frozen=True)
class SampleSummary:
    """What was written: files, row counts (all rows, fault rows included) and totals."""

    out_dir: Path
    files: tuple[Path, ...]
    truth_dir: Path
    n_events: int
    events_per_day: dict[str, int] = field(default_factory=dict)
    n_sessions: int = 0
    n_bot_sessions: int = 0
    n_orders: int = 0
    revenue: float = 0.0  # over the real orders: a replayed purchase counts once

    def __str__(self) -> str:
        return (
            f"{self.n_events:,} events in {len(self.files)} files, {self.n_sessions:,} sessions "
            f"({self.n_bot_sessions:,} bot), {self.n_orders:,} orders, revenue {self.revenue:,.2f}; "
            f"ground truth in {self.truth_dir}"
        )


def _ms(day: dt.date) -> int:
    return int((day - dt.date(1970, 1, 1)).days) * T.DAY_MS


def generate_sample(out_dir: Path, config: SampleConfig) -> SampleSummary:
    """Write the day files and `_truth/` for `config` into `out_dir`.

    Same config, byte-identical output.  Day files of earlier runs that are not
    part of this one are removed so the folder holds exactly this sample.
    """
    _check_config(config)
    out_dir = Path(out_dir)
    truth_dir = out_dir / "_truth"
    truth_dir.mkdir(parents=True, exist_ok=True)

    start_ms = _ms(config.start)
    end_ms = start_ms + config.days * T.DAY_MS
    on = config.faults
    rename_ms = _ms(config.rename_client_id_from) if "client_id_rename" in on and config.rename_client_id_from else None
    drop_ms = _ms(config.drop_referrer_from) if "referrer_dropped" in on and config.drop_referrer_from else None
    shift_window = _referrer_shift_window(start_ms, drop_ms)

    def stream(k: int) -> np.random.Generator:
        return np.random.default_rng([config.seed, k])

    traffic, events = T.simulate(stream(1), start_ms, config.days, config.scale, "bots" in on, shift_window)
    orders, items = O.build_orders(stream(2), traffic, events, config.order_number_offset)
    events["extra"] = np.int8(F.GENUINE)

    ctx = F.Context(stream(3), start_ms, config.days, config.scale, traffic.client_ids)
    events, records = _inject_faults(ctx, on, events, orders, items, end_ms)
    sessions = _session_truth(traffic.sessions, events, drop_ms)
    records += _traffic_fault_records(ctx, on, sessions, events, start_ms, end_ms, rename_ms, drop_ms, shift_window)

    renderer = R.Renderer(traffic.sessions, traffic.client_ids, traffic.person, O.order_json(orders, items))
    n_events = len(events)
    events = events.sort_values("ts", kind="stable", ignore_index=True)
    files, per_day = _write_days(
        out_dir, truth_dir / "sessions.csv", config, events, sessions, renderer, start_ms, rename_ms, drop_ms
    )
    order_rows = _write_orders(truth_dir / "orders.csv", orders, items, sessions, traffic)
    _write_faults_json(truth_dir / "faults.json", config, records)

    return SampleSummary(
        out_dir=out_dir,
        files=tuple(files),
        truth_dir=truth_dir,
        n_events=n_events,
        events_per_day=per_day,
        n_sessions=len(sessions),
        n_bot_sessions=int(sessions["is_bot"].sum()),
        n_orders=order_rows,
        revenue=float(O.revenue(orders, items).sum()),
    )


def _check_config(config: SampleConfig) -> None:
    unknown = set(config.faults) - ALL_FAULTS
    if unknown:
        raise ValueError(f"unknown faults: {sorted(unknown)}")
    if config.days < 1 or config.scale <= 0:
        raise ValueError("days must be >= 1 and scale > 0")


def _referrer_shift_window(start_ms: int, drop_ms: int | None) -> tuple[int, int] | None:
    """The days during which the referrer's null/anonymised mix shifts: the REFERRER_SHIFT_DAYS
    before the column disappears, clipped to the sample's start. None when the column stays, or is
    gone from the first day (there is no before to shift)."""
    if drop_ms is None or drop_ms <= start_ms:
        return None
    return max(start_ms, drop_ms - REFERRER_SHIFT_DAYS * T.DAY_MS), drop_ms


def _traffic_fault_records(
    ctx: F.Context,
    on: frozenset[str],
    sessions: pd.DataFrame,
    events: pd.DataFrame,
    start_ms: int,
    end_ms: int,
    rename_ms: int | None,
    drop_ms: int | None,
    shift_window: tuple[int, int] | None,
) -> list[dict]:
    """The records of the faults shaped by the simulation or the file headers rather than injected
    into rows: bots, the client-id header rename and the referrer drop."""
    records = []
    if "bots" in on:
        records.append(_bots_record(ctx, sessions, events))
    if rename_ms is not None:
        records.append(
            _header_record("client_id_rename", ctx, rename_ms, end_ms, "header column client_id renamed to clientId")
        )
    if drop_ms is not None:
        rec = _header_record("referrer_dropped", ctx, drop_ms, end_ms, "referrer column absent")
        in_window = shift_window is not None and shift_window[0] < end_ms
        rec["shift_from"] = ctx.date((shift_window[0] - start_ms) // T.DAY_MS) if in_window else None
        records.append(rec)
    return records


def _write_faults_json(path: Path, config: SampleConfig, records: list[dict]) -> None:
    """faults.json: the config (JSON-friendly), one record per fault by name, and the inherent mismatch."""
    config_json = {
        k: (sorted(v) if isinstance(v, frozenset) else v.isoformat() if isinstance(v, dt.date) else v)
        for k, v in asdict(config).items()
    }
    faults_json = {
        "config": config_json,
        "faults": sorted(records, key=lambda r: r["name"]),
        "inherent": [
            {
                "name": "dictionary_mismatch",
                "note": "purchase event is checkout_completed (dictionary says purchase); "
                "volumes and the clientId header are not in the dictionary either",
            }
        ],
    }
    R.write_atomic(path, json.dumps(faults_json, indent=2) + "\n")


def _inject_faults(
    ctx: F.Context, on: frozenset[str], events: pd.DataFrame, orders: pd.DataFrame, items: pd.DataFrame, end_ms: int
) -> tuple[pd.DataFrame, list[dict]]:
    """Apply the switched-on data faults; return the events and one record per fault.

    Order matters: each order fault draws from the orders still clean.
    """
    records = []
    if "transaction_id_collisions" in on:
        records.append(F.transaction_id_collisions(ctx, orders))
    if "transaction_id_replays" in on:
        events, rec = F.transaction_id_replays(ctx, events, orders, end_ms)
        records.append(rec)
    if "zero_revenue_orders" in on:
        records.append(F.zero_revenue_orders(ctx, orders))
    if "non_integer_revenue" in on:
        records.append(F.non_integer_revenue(ctx, orders, items))
    if "item_price_null" in on:
        records.append(F.item_price_null(ctx, orders))
    for name, inject in (
        ("same_key_duplicates", F.same_key_duplicates),
        ("exact_duplicate_rows", F.exact_duplicate_rows),
        ("client_id_nulls", F.client_id_nulls),
    ):
        if name in on:
            events, rec = inject(ctx, events)
            records.append(rec)
    return events, records


def _session_truth(sessions: pd.DataFrame, events: pd.DataFrame, drop_ms: int | None) -> pd.DataFrame:
    """Per session: start, end and row counts as they appear in the files, and channels."""
    sess = events["sess"].to_numpy()
    in_session = sess >= 0
    sess = sess[in_session]
    n = len(sessions)
    span = pd.Series(events["ts"].to_numpy()[in_session]).groupby(sess).agg(["min", "max"])
    out = pd.DataFrame(
        {
            "client": sessions["client"].to_numpy(),
            "start": span["min"].to_numpy(),
            "end": span["max"].to_numpy(),
            "n_events": np.bincount(sess, minlength=n),
            "n_fault_rows": np.bincount(
                sess, weights=events["extra"].to_numpy()[in_session] != F.GENUINE, minlength=n
            ).astype(np.int64),
            "true_channel": sessions["channel"].to_numpy(),
            "is_bot": sessions["is_bot"].to_numpy(),
        }
    )
    observed = out["true_channel"].to_numpy().copy()
    if drop_ms is not None:
        hidden = np.isin(sessions["template"].to_numpy(), list(V.REFERRER_ONLY_TEMPLATES)) & (
            out["start"].to_numpy() >= drop_ms
        )
        observed[hidden] = V.CH["Direct"]
    observed = observed.astype(np.int16)
    observed[sessions["parent"].to_numpy() >= 0] = CONTINUATION_CODE
    out["channel"] = observed
    out["parent"] = sessions["parent"].to_numpy()
    out["break_kind"] = sessions["break_kind"].to_numpy()
    return out


def _write_days(
    out_dir: Path,
    truth_path: Path,
    config: SampleConfig,
    events: pd.DataFrame,
    sessions: pd.DataFrame,
    renderer: R.Renderer,
    start_ms: int,
    rename_ms: int | None,
    drop_ms: int | None,
) -> tuple[list[Path], dict[str, int]]:
    """Day files, and sessions.csv alongside: a session's row is written with the day
    of its landing event, reusing that row's rendered URL."""
    cols = {c: events[c].to_numpy() for c in ("ts", "sess", "kind", "client", "ua", "page", "ref", "order", "extra")}
    bounds = np.searchsorted(cols["ts"], start_ms + np.arange(config.days + 1) * T.DAY_MS)
    truth_cols = {c: sessions[c].to_numpy() for c in sessions.columns}
    channel_names = CHANNEL_NAMES
    # a session's truth row goes with its first genuine event (the landing page view, or the first
    # checkout page of a session split off at the checkout)
    genuine = np.flatnonzero((cols["sess"] >= 0) & (cols["extra"] == F.GENUINE))
    _, first_pos = np.unique(cols["sess"][genuine], return_index=True)
    is_first = np.zeros(len(cols["ts"]), dtype=bool)
    is_first[genuine[first_pos]] = True
    truth_tmp = truth_path.with_name("." + truth_path.name + ".tmp")
    files, per_day = [], {}
    with open(truth_tmp, "w", encoding="utf-8", newline="") as truth:
        truth.write(",".join(SESSION_COLUMNS))
        for d in range(config.days):
            day_ms = start_ms + d * T.DAY_MS
            ev = {c: a[bounds[d] : bounds[d + 1]] for c, a in cols.items()}
            day = (config.start + dt.timedelta(days=d)).strftime("%Y%m%d")
            path = out_dir / f"events_{day}.csv"
            landing = is_first[bounds[d] : bounds[d + 1]]
            landing_urls = renderer.write_day(
                path,
                ev,
                client_col="clientId" if rename_ms is not None and day_ms >= rename_ms else "client_id",
                with_referrer=drop_ms is None or day_ms < drop_ms,
                want_url=landing,
            )
            files.append(path)
            per_day[day] = int(bounds[d + 1] - bounds[d])

            idx = ev["sess"][landing]
            if len(idx):
                truth.write(
                    "\n"
                    + R.rows_text(
                        [
                            renderer.client_id(truth_cols["client"][idx]),
                            R.iso(truth_cols["start"][idx]),
                            R.iso(truth_cols["end"][idx]),
                            truth_cols["n_events"][idx].astype(str).astype(object),
                            truth_cols["n_fault_rows"][idx].astype(str).astype(object),
                            channel_names[truth_cols["channel"][idx]],
                            channel_names[truth_cols["true_channel"][idx]],
                            np.where(truth_cols["is_bot"][idx], "true", "false").astype(object),
                            landing_urls,
                            renderer.client_id(renderer.person[truth_cols["client"][idx]]),
                        ]
                    )
                )
    os.replace(truth_tmp, truth_path)
    for stale in set(out_dir.glob("events_????????.csv")) - set(files):
        stale.unlink()
    return files, per_day


def _write_orders(
    path: Path, orders: pd.DataFrame, items: pd.DataFrame, sessions: pd.DataFrame, traffic: T.Traffic
) -> int:
    """orders.csv with first/last touch over the 7 days before each order, the checkout break
    and the true journey (see the module docstring)."""
    client_ids, person = traffic.client_ids, traffic.person
    o = pd.DataFrame({"order": np.arange(len(orders)), "client": orders["client"], "ts": orders["ts"]})
    touchable = sessions.loc[
        ~sessions["is_bot"] & (sessions["channel"] != CONTINUATION_CODE), ["client", "start", "channel"]
    ]

    def in_window(t: pd.DataFrame) -> pd.DataFrame:
        return t[(t["start"] <= t["ts"]) & (t["start"] >= t["ts"] - TOUCH_WINDOW_MS)]

    touches = in_window(o.merge(touchable, on="client")).sort_values(["order", "start"])
    g = touches.groupby("order")["channel"]
    first = g.first().reindex(o["order"])
    last = g.last().reindex(o["order"])
    names = np.array([*CHANNEL_NAMES, UNTRACKED], dtype=object)
    untracked_code = len(CHANNEL_NAMES)
    # the person's touches on any of their client ids
    by_person = touchable.assign(person=person[touchable["client"].to_numpy()])
    o_person = o.assign(person=person[o["client"].to_numpy()])
    person_touch = in_window(o_person.merge(by_person.drop(columns="client"), on="person"))["order"].unique()
    tracked = first.notna().to_numpy()
    stitchable = np.isin(o["order"].to_numpy(), person_touch) & ~tracked
    true_journey = np.where(tracked, "tracked", np.where(stitchable, "stitchable", "untracked"))
    sess = orders["sess"].to_numpy()
    parent = sessions["parent"].to_numpy()[sess]
    journey_client = np.where(
        parent >= 0, sessions["client"].to_numpy()[np.maximum(parent, 0)], orders["client"].to_numpy()
    )
    table = (
        pd.DataFrame(
            {
                "transaction_id": orders["transaction_id"],
                "client_id": [c.decode() for c in client_ids[orders["client"].to_numpy()]],
                "order_ts": R.iso(orders["ts"].to_numpy()),
                "revenue": O.format_number(O.revenue(orders, items)),
                "first_touch_channel": names[first.fillna(untracked_code).to_numpy().astype(int)],
                "last_touch_channel": names[last.fillna(untracked_code).to_numpy().astype(int)],
                "fault": orders["fault"],
                "journey_client_id": [c.decode() for c in client_ids[journey_client]],
                "checkout_break": BREAK_NAMES[sessions["break_kind"].to_numpy()[sess]],
                "true_journey": true_journey,
                "_ts": orders["ts"],
            }
        )
        .sort_values(["_ts", "transaction_id"], kind="stable")
        .drop(columns="_ts")
    )
    R.write_atomic(path, table.to_csv(index=False, lineterminator="\n"))
    return len(table)


def _bots_record(ctx: F.Context, sessions: pd.DataFrame, events: pd.DataFrame) -> dict:
    bot_ua = events["ua"].to_numpy() >= V.N_HUMAN_AGENTS
    kinds = events["kind"].to_numpy()[bot_ua]
    agents = pd.Series(events["ua"].to_numpy()[bot_ua]).value_counts()
    return F.record(
        "bots",
        ctx.dates(events["ts"].to_numpy()[bot_ua]),
        int(bot_ua.sum()),
        [V.AGENTS[i] for i in agents.index[:5]],
        n_sessions=int(sessions["is_bot"].sum()),
        share_of_events=round(float(bot_ua.mean()), 4),
        n_checkout_started=int((kinds == T.CO_START).sum()),
    )


def _header_record(name: str, ctx: F.Context, from_ms: int, end_ms: int, note: str) -> dict:
    first = max(0, (from_ms - ctx.start_ms) // T.DAY_MS)
    dates = [ctx.date(d) for d in range(first, ctx.days)] if from_ms < end_ms else []
    return F.record(
        name,
        dates,
        len(dates),
        [f"events_{d.replace('-', '')}.csv" for d in dates[:3]],
        from_date=str(np.datetime64(from_ms, "ms").astype("datetime64[D]")),
        note=note,
    )
