"""Numeric simulation of visitors, sessions and events.

Everything is kept as small integer arrays (indices into the vocabularies in
`vocab`); text is only produced when a day file is written.  The simulation is
vectorised: there are loops over channels or templates, never over sessions
or events.

Model
-----
* Human visitors arrive every day following the weekday factor and the
  hour-of-day cycle.  Each visitor makes 1-6 sessions; a return visit starts
  at least 45 minutes (plus a log-normal wait of hours to days) after the
  previous session ended.  Simulation starts a few days before the window so
  the first days already contain returning visitors.
* A session's channel is drawn from a mix that differs for first and return
  visits.  Its depth down the funnel (browse -> add to cart -> checkout
  started -> checkout completed) depends on the channel's intent and on the
  visit being a return visit.
* A session is a landing page view, optionally an email pop-up fill, some
  browsing page views, then a fixed "tail" of funnel events.  Consecutive
  events are 1 ms to 20 minutes apart, so a 30-minute inactivity rule
  recovers the sessions exactly.
* Some shoppers come back on a second device (phone, then laptop): a share of
  the visitors with several sessions in the window make some of their later
  sessions under a second cookie id, with its own browser.  Both devices belong
  to one person, who gives the same (hashed) email on either, so identity
  stitching can join them; the export itself cannot tell.
* Crawlers and scripted browsers ("bots") are separate visitors with their
  own agents, pages and timing (no daily cycle); a few headless browsers
  start checkouts.
* The checkout breaks the journey for about a third of the buyers, as on the
  real export: the end of the checkout (payment processing, thank-you page,
  the purchase) becomes a session of its own on checkout.puffy.com, usually
  under a brand-new client id on the same browser (the cookie is not carried
  to the checkout host), otherwise under the same id after the session timed
  out (a long payment step). Its first page has an internal referrer, a return
  from Affirm, or none. The journey that led to it stays on the first id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import vocab as V

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
BURN_IN_DAYS = 3

# Volumes at scale 1 (tuned so a day holds ~3,500 events, ~92% page views).
NEW_VISITORS_PER_DAY = 1_820
BOT_VISITORS_PER_DAY = 390

SESSIONS_PER_VISITOR = np.array([1, 2, 3, 4, 5, 6])
SESSIONS_PER_VISITOR_P = np.array([0.88, 0.08, 0.025, 0.01, 0.004, 0.001])
# Share of visitors whose cookie predates the simulation (they are returning visitors).
OLD_COOKIE_SHARE = 0.2
UUID_ID_SHARE = 0.002

# Probability of reaching funnel stage 1 (add to cart), 2 (checkout started),
# 3 (checkout completed) for a first visit of average intent; return visits are
# RETURN_INTENT times more likely at every stage.
STAGE_P = np.array([0.022, 0.0072, 0.0052])
RETURN_INTENT = 3.0
EMAIL_P_BROWSE, EMAIL_P_FUNNEL = 0.015, 0.06
# Most sessions are a single page view; the others browse a few pages.
MULTI_PAGE_P = 0.075

# Event kinds: a kind fixes the event name and how page and referrer are chosen.
(LANDING, BROWSE, EMAIL, PRODUCT, ATC, CART, ATC_CART, CO_START, CO_PAGE, PROCESSING, THANKS, COMPLETED) = range(12)
KIND_EVENT = np.array(
    [
        V.PAGE_VIEWED,
        V.PAGE_VIEWED,
        V.EMAIL_FILLED,
        V.PAGE_VIEWED,
        V.ADD_TO_CART,
        V.PAGE_VIEWED,
        V.ADD_TO_CART,
        V.CHECKOUT_STARTED,
        V.PAGE_VIEWED,
        V.PAGE_VIEWED,
        V.PAGE_VIEWED,
        V.CHECKOUT_COMPLETED,
    ],
    dtype=np.int8,
)
# Kinds that happen on the page of the previous event (they share its URL and referrer).
SAME_PAGE_KINDS = np.array([EMAIL, ATC, ATC_CART, COMPLETED])
# Page codes below zero are rendered from the session: the landing URL or a checkout page.
PAGE_LANDING, PAGE_CO_START, PAGE_CO, PAGE_PROCESSING, PAGE_THANKS = -1, -2, -3, -4, -5
REF_LANDING = -1

# Funnel tails appended after the browsing part, with the stage they reach and
# their weight within the stage.
TAILS: list[tuple[tuple[int, ...], int, float]] = [
    ((), 0, 1.0),
    ((PRODUCT, ATC), 1, 0.35),
    ((PRODUCT, ATC, CART), 1, 0.45),
    ((PRODUCT, ATC, CART, ATC_CART), 1, 0.20),
    ((PRODUCT, ATC, CART, CO_START, CO_PAGE), 2, 0.5),
    ((PRODUCT, ATC, CO_START, CO_PAGE), 2, 0.3),
    ((PRODUCT, ATC, CART, CO_START, CO_PAGE, CART, CO_START, CO_PAGE), 2, 0.2),
    ((PRODUCT, ATC, CART, CO_START, CO_PAGE, PROCESSING, THANKS, COMPLETED), 3, 0.6),
    ((PRODUCT, ATC, CART, ATC_CART, CO_START, CO_PAGE, PROCESSING, THANKS, COMPLETED), 3, 0.2),
    ((PRODUCT, ATC, CO_START, CO_PAGE, THANKS, COMPLETED), 3, 0.2),
    ((PRODUCT, ATC, CO_START), -1, 0.0),  # a scripted browser starting a checkout
]
BOT_CHECKOUT_TAIL = len(TAILS) - 1
TAIL_LEN = np.array([len(t) for t, _, _ in TAILS])
TAIL_KINDS = np.full((len(TAILS), TAIL_LEN.max()), -1, dtype=np.int8)
for _i, (_t, _, _) in enumerate(TAILS):
    TAIL_KINDS[_i, : len(_t)] = _t
BOT_CHECKOUT_P = 0.12  # of headless-browser sessions

# Time before an event of each kind (median seconds, log-normal sigma, max seconds).
GAP_BY_KIND = {
    BROWSE: (50, 1.3, 1200),
    EMAIL: (20, 1.0, 600),
    PRODUCT: (45, 1.2, 1200),
    ATC: (40, 1.0, 900),
    CART: (8, 0.8, 600),
    ATC_CART: (15, 0.8, 600),
    CO_START: (30, 1.0, 900),
    CO_PAGE: (0.2, 0.8, 2),
    PROCESSING: (240, 0.7, 1200),
    THANKS: (8, 0.5, 120),
    COMPLETED: (0.3, 0.6, 2),
}
BOT_GAP = (5, 1.0, 600)
# Share of human visitors with two or more sessions in the window who use a second device,
# and the chance that each of their sessions after the first is on it.
SECOND_DEVICE_P = 0.15
ON_SECOND_DEVICE_P = 0.5
# Chance that a two-device person who gave their email on one device gives it on the other.
REPEAT_EMAIL_P = 0.8
# Wait between the end of a session and the next one of the same visitor.
MIN_SESSION_GAP_MS = 45 * MINUTE_MS
HUMAN_RETURN_HOURS = (16.0, 1.5)
BOT_RETURN_HOURS = (2.0, 1.0)

# Share of in-session page views whose referrer was not tracked, normally and
# in the days before the referrer column disappears.
INTERNAL_REF_NULL_P = (0.55, 0.25)
# In those days part of what looked direct arrives with an anonymised referrer.
SHIFT_DIRECT_TO_REFERRER_P = 0.3
AFFIRM_P = 0.25  # checkouts financed through Affirm (it shows as the referrer)
# Share of human purchases whose end of checkout is a session of its own on the checkout host
# (real export: 92 of 284 orders), and of those the share under a brand-new client id (real:
# about three quarters have no earlier event); the rest keep their id after a timeout.
CHECKOUT_BREAK_P = 0.32
BREAK_NEW_CLIENT_P = 0.75
# Referrer of that session's first page: a return from Affirm (for Affirm-financed checkouts) with
# AFFIRM_RETURN_P, else our own site / checkout with INTERNAL_RETURN_P, else none (real: 6, 26 and
# about 60 of the 92).
AFFIRM_RETURN_P = 0.3
INTERNAL_RETURN_P = 0.3
# Pause of a timed-out checkout before its end (median hours, sigma): at least MIN_SESSION_GAP_MS.
TIMEOUT_PAUSE_HOURS = (0.5, 0.6)
# Break kinds (sessions column `break_kind`).
NO_BREAK, BREAK_TIMEOUT, BREAK_NEW_CLIENT = 0, 1, 2


@dataclass
class Traffic:
    """Simulated traffic inside the window (before fault injection)."""

    sessions: pd.DataFrame  # one row per session, index = session id
    client_ids: np.ndarray  # bytes, one per visitor (a device: a second device is a visitor of its own)
    person: np.ndarray  # per visitor: the visitor index of its person's first device (itself for most)


def segment_arange(counts: np.ndarray) -> np.ndarray:
    """0..n-1 for every segment length n, concatenated."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(counts.sum(), dtype=np.int64) - starts


def segment_cumsum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at every segment (values at segment starts included)."""
    cs = np.cumsum(values)
    seg_start = np.cumsum(counts) - counts
    before = np.repeat(cs[seg_start] - values[seg_start], counts)
    return cs - before


def lognormal_ms(rng, median_s, sigma, max_s, size) -> np.ndarray:
    """Log-normal durations in whole milliseconds, between 1 ms and max_s."""
    secs = median_s * np.exp(sigma * rng.standard_normal(size))
    return np.clip(np.rint(secs * 1000), 1, max_s * 1000).astype(np.int64)


def weighted_choice(rng, weights, size) -> np.ndarray:
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(p), size=size, p=p / p.sum())


def make_client_ids(rng, first_ms: np.ndarray, old_cookie: np.ndarray) -> np.ndarray:
    """`<unix seconds>-<12 chars>` ids (a few UUIDs), as a bytes array.

    The seconds are when the cookie was set: just before the first session for
    new visitors, days to months earlier for visitors with an old cookie.
    """
    n = len(first_ms)
    age_s = rng.integers(0, 30, n).astype(np.int64)
    old_age = np.minimum(86_400 * np.exp(rng.normal(2.3, 1.2, n)), 86_400 * 365).astype(np.int64)
    age_s = np.where(old_cookie, old_age, age_s)
    secs = first_ms // 1000 - age_s
    chars = np.empty((n, 23), dtype=np.uint8)
    for k in range(10):  # the ten decimal digits, most significant first
        chars[:, k] = (secs // 10 ** (9 - k)) % 10 + ord("0")
    chars[:, 10] = ord("-")
    alphabet = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", np.uint8)
    chars[:, 11:] = alphabet[rng.integers(0, 64, (n, 12), dtype=np.uint8)]
    ids = chars.view("S23").ravel().astype("S36")
    del chars

    # UUID-style ids with the odd mixed case seen in the export.
    is_uuid = rng.random(n) < UUID_ID_SHARE
    k = int(is_uuid.sum())
    if k:
        hexd = np.frombuffer(b"0123456789abcdef", np.uint8)[rng.integers(0, 16, (k, 36))]
        upper = rng.random((k, 36)) < 0.5
        hexd = np.where(upper & (hexd >= ord("a")), hexd - 32, hexd).astype(np.uint8)
        hexd[:, [8, 13, 18, 23]] = ord("-")
        hexd[:, 14] = ord("4")
        hexd[:, 19] = np.frombuffer(b"89ab", np.uint8)[rng.integers(0, 4, k)]
        ids[is_uuid] = np.ascontiguousarray(hexd).view("S36").ravel()
    return ids


def _expand_events(rng, n_browse, has_email, tail, is_bot) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Event kinds and in-session time offsets for every session.

    Returns (session index per event, kind per event, offset in ms from session start).
    """
    n_events = n_browse + has_email + TAIL_LEN[tail]
    sess = np.repeat(np.arange(len(n_browse), dtype=np.int32), n_events)
    pos = segment_arange(n_events).astype(np.int32)
    prefix = (n_browse + has_email)[sess]
    kind = np.full(len(sess), BROWSE, dtype=np.int8)
    in_tail = np.flatnonzero(pos >= prefix)
    kind[in_tail] = TAIL_KINDS[tail[sess[in_tail]], pos[in_tail] - prefix[in_tail]]
    del prefix, in_tail
    kind[(pos == 1) & has_email[sess].astype(bool)] = EMAIL
    kind[pos == 0] = LANDING

    gap = np.zeros(len(sess), dtype=np.int64)
    for k, (median, sigma, max_s) in GAP_BY_KIND.items():
        m = kind == k
        gap[m] = lognormal_ms(rng, median, sigma, max_s, int(m.sum()))
    bot_ev = is_bot[sess] & (pos > 0)
    gap[bot_ev] = lognormal_ms(rng, *BOT_GAP, int(bot_ev.sum()))
    gap[pos == 0] = 0
    return sess, kind, segment_cumsum(gap, n_events)


def _session_starts(rng, first_ms, n_sessions, duration, return_hours) -> np.ndarray:
    """Start of each session: a visitor's sessions follow one another with gaps > 45 min."""
    idx = segment_arange(n_sessions)
    median_h, sigma = return_hours
    wait = MIN_SESSION_GAP_MS + np.rint(
        np.minimum(median_h * np.exp(sigma * rng.standard_normal(len(idx))), 240) * HOUR_MS
    ).astype(np.int64)
    prev_duration = np.concatenate([[0], duration[:-1]])
    step = np.where(idx > 0, prev_duration + wait, 0)
    return np.repeat(first_ms, n_sessions) + segment_cumsum(step, n_sessions)


def simulate(
    rng, start_ms: int, days: int, scale: float, bots: bool, shift_window: tuple[int, int] | None
) -> tuple[Traffic, pd.DataFrame]:
    """Simulate visitors; return them with the sessions, and the events (ordered by
    session then time), that fall in the window."""
    end_ms = start_ms + days * DAY_MS
    visitors = _visitors(rng, start_ms - BURN_IN_DAYS * DAY_MS, days + BURN_IN_DAYS, scale, bots)
    plan = _plan_sessions(rng, visitors)
    sessions, events = _schedule(rng, visitors, plan, start_ms, end_ms)
    del plan
    person, events = _second_devices(rng, visitors, sessions, events, end_ms)
    events["ua"] = visitors["ua"][events["client"].to_numpy()]
    _assign_landings(rng, sessions, shift_window)
    _assign_pages(rng, sessions, events, shift_window)
    sessions, events, person = _checkout_breaks(rng, visitors, sessions, events, person, end_ms)
    return Traffic(sessions=sessions, client_ids=visitors["ids"], person=person), events


def _checkout_breaks(
    rng, visitors: dict[str, np.ndarray], sessions: pd.DataFrame, events: pd.DataFrame, person: np.ndarray, end_ms: int
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Split the end of some purchases' checkouts into sessions of their own on the checkout host.

    For a share CHECKOUT_BREAK_P of human sessions with a purchase, the events from the first
    payment-processing or thank-you page on (the purchase included) move to a new session: under
    a new client id on the same browser (BREAK_NEW_CLIENT_P), or under the same id after a pause
    longer than the session timeout when the visitor's next session leaves room for it. New
    sessions are appended to ``sessions`` with ``parent`` (the session they split from; -1 for
    the others) and ``break_kind``; they keep the parent's channel as the true one. New client ids
    are appended to ``visitors`` and belong to the parent's person. Returns sessions, events
    (ordered by session then time) and person.
    """
    n = len(sessions)
    sessions["parent"] = np.full(n, -1, dtype=np.int64)
    sessions["break_kind"] = np.zeros(n, dtype=np.int8)
    kind, sess, ts = events["kind"].to_numpy(), events["sess"].to_numpy(), events["ts"].to_numpy()
    broken = _pick_broken_checkouts(rng, sessions, kind, sess)
    if not len(broken):
        return sessions, events, person
    # events are ordered by session then time: the tail of a broken session is contiguous
    tail = np.flatnonzero(np.isin(kind, [PROCESSING, THANKS, COMPLETED]) & np.isin(sess, broken))
    first = tail[np.r_[True, sess[tail[1:]] != sess[tail[:-1]]]]
    assert (sess[first] == broken).all()

    pause, timeout = _timeout_pauses(rng, sessions, sess, ts, broken, end_ms)
    # the cookie of a new client id is set at the continuation's first event
    person, new_client = _continuation_clients(
        rng, visitors, person, sessions["client"].to_numpy(), broken, timeout, ts[first[~timeout]]
    )
    sessions = _append_continuations(sessions, broken, new_client, timeout)

    slot = np.searchsorted(broken, sess[tail])
    ev_sess, ev_client, ev_ts = sess.copy(), events["client"].to_numpy().copy(), ts.copy()
    ev_sess[tail] = (n + slot).astype(sess.dtype)
    ev_client[tail] = new_client[slot].astype(ev_client.dtype)
    ev_ts[tail] = ts[tail] + np.where(timeout[slot], pause[slot], 0)
    ref = _continuation_referrers(
        rng, events["ref"].to_numpy().copy(), kind, ev_sess, first, sessions["affirm"].to_numpy()[broken]
    )
    events = events.assign(sess=ev_sess, client=ev_client, ts=ev_ts, ref=ref)
    events = events.sort_values(["sess", "ts"], kind="stable", ignore_index=True)
    return sessions, events, person


def _pick_broken_checkouts(rng, sessions: pd.DataFrame, kind: np.ndarray, sess: np.ndarray) -> np.ndarray:
    """The human sessions with a purchase whose checkout breaks (a share CHECKOUT_BREAK_P), sorted."""
    human = ~sessions["is_bot"].to_numpy()
    buying = np.unique(sess[kind == COMPLETED])
    buying = buying[human[buying]]
    return np.sort(buying[rng.random(len(buying)) < CHECKOUT_BREAK_P])


def _timeout_pauses(
    rng, sessions: pd.DataFrame, sess: np.ndarray, ts: np.ndarray, broken: np.ndarray, end_ms: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per broken session: the pause before its continuation, and whether the continuation keeps
    the client id (a timeout) rather than getting a new one.

    A timeout needs room before the visitor's next session (the 45-minute gap rule holds) and
    inside the window; where it has room, it is chosen with probability 1 - BREAK_NEW_CLIENT_P.
    """
    n = len(sessions)
    client = sessions["client"].to_numpy()
    end_of = pd.Series(ts).groupby(sess).max().reindex(np.arange(n)).to_numpy()
    start_of = sessions["start"].to_numpy()
    order = np.lexsort((start_of, client))
    next_start = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    same = client[order[1:]] == client[order[:-1]]
    next_start[order[:-1][same]] = start_of[order[1:][same]]
    pause = MIN_SESSION_GAP_MS + np.rint(
        TIMEOUT_PAUSE_HOURS[0] * np.exp(TIMEOUT_PAUSE_HOURS[1] * rng.standard_normal(len(broken))) * HOUR_MS
    ).astype(np.int64)
    new_end = end_of[broken] + pause
    fits = (new_end < end_ms) & (new_end + MIN_SESSION_GAP_MS <= next_start[broken])
    return pause, fits & (rng.random(len(broken)) >= BREAK_NEW_CLIENT_P)


def _continuation_clients(
    rng,
    visitors: dict[str, np.ndarray],
    person: np.ndarray,
    client: np.ndarray,
    broken: np.ndarray,
    timeout: np.ndarray,
    cookie_ms: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The client of each continuation: the parent's after a timeout, otherwise a new client id on
    the same browser and of the same person (appended to ``visitors``). Returns person and the
    continuations' clients."""
    n_visitors = len(visitors["ids"])
    old = client[broken[~timeout]]
    _append_visitors(rng, visitors, cookie_ms, visitors["ua"][old])
    person = np.concatenate([person, person[old]])
    new_client = client[broken].astype(np.int64)
    new_client[~timeout] = n_visitors + np.arange(len(old))
    return person, new_client


def _append_visitors(rng, visitors: dict[str, np.ndarray], first_ms: np.ndarray, ua: np.ndarray) -> None:
    """Append new human client ids (fresh cookies set at ``first_ms``, browsers ``ua``) to ``visitors``.

    They plan no sessions of their own: they only take over sessions already scheduled.
    """
    n = len(first_ms)
    extra = {
        "first_ms": first_ms,
        "k_sessions": np.zeros(n, dtype=visitors["k_sessions"].dtype),
        "is_bot": np.zeros(n, dtype=bool),
        "old_cookie": np.zeros(n, dtype=bool),
        "ua": ua,
        "ids": make_client_ids(rng, first_ms, np.zeros(n, dtype=bool)),
    }
    for key, values in extra.items():
        visitors[key] = np.concatenate([visitors[key], values])


def _append_continuations(
    sessions: pd.DataFrame, broken: np.ndarray, new_client: np.ndarray, timeout: np.ndarray
) -> pd.DataFrame:
    """One new session per broken one, a copy of its parent (so the true channel is the parent's)
    under the continuation's client, numbered after the existing sessions."""
    n = len(sessions)
    added = sessions.iloc[broken].copy()
    added["client"] = new_client.astype(sessions["client"].dtype)
    added["parent"] = broken
    added["break_kind"] = np.where(timeout, BREAK_TIMEOUT, BREAK_NEW_CLIENT).astype(np.int8)
    added.index = np.arange(n, n + len(broken))
    return pd.concat([sessions, added])


def _continuation_referrers(
    rng, ref: np.ndarray, kind: np.ndarray, ev_sess: np.ndarray, first: np.ndarray, affirm: np.ndarray
) -> np.ndarray:
    """``ref`` with the continuation's first page coming back from Affirm, from our own site, or
    with no referrer; events on that same page (``SAME_PAGE_KINDS``) share its referrer."""
    u = rng.random(len(first))
    internal = np.where(rng.random(len(first)) < 0.5, V.REF_SITE, V.REF_CHECKOUT)
    landing_ref = np.select(
        [affirm & (u < AFFIRM_RETURN_P), u >= 1 - INTERNAL_RETURN_P], [V.REF_AFFIRM, internal], 0
    ).astype(ref.dtype)
    ref[first] = landing_ref
    same_page = first + 1 < len(kind)
    nxt = first[same_page] + 1
    shares = np.isin(kind[nxt], SAME_PAGE_KINDS) & (ev_sess[nxt] == ev_sess[first[same_page]])
    ref[nxt[shares]] = landing_ref[same_page][shares]
    return ref


def _second_devices(
    rng, visitors: dict[str, np.ndarray], sessions: pd.DataFrame, events: pd.DataFrame, end_ms: int
) -> tuple[np.ndarray, pd.DataFrame]:
    """Move some later sessions of multi-session visitors to a second device.

    The new devices are appended to ``visitors`` (id, agent, ...) and the sessions that move are
    re-labelled in place. A person's sessions keep their times, so the two devices' sessions
    never overlap. Someone who gave their email on one device mostly gives it on the other too
    (the pop-up shows again to the new cookie): that device's first session gets an email fill.
    Returns ``person`` (per visitor, its person's first device) and the events.
    """
    client = sessions["client"].to_numpy()
    human = ~sessions["is_bot"].to_numpy()
    n_visitors = len(visitors["ids"])
    per_visitor = np.bincount(client[human], minlength=n_visitors)
    chosen = np.flatnonzero((per_visitor >= 2) & (rng.random(n_visitors) < SECOND_DEVICE_P))
    person = np.arange(n_visitors + len(chosen), dtype=np.int64)
    if not len(chosen):
        return person, events
    device_of = np.full(n_visitors, -1, dtype=np.int64)
    device_of[chosen] = n_visitors + np.arange(len(chosen))
    person[n_visitors:] = chosen
    # a session moves when its visitor has a second device and it is not the visitor's first
    order = np.lexsort((sessions["start"].to_numpy(), client))
    first_of_visitor = np.ones(len(client), dtype=bool)
    first_of_visitor[order[1:]] = client[order[1:]] != client[order[:-1]]
    moves = human & (device_of[client] >= 0) & ~first_of_visitor & (rng.random(len(client)) < ON_SECOND_DEVICE_P)
    new_client = client.copy()
    new_client[moves] = device_of[client[moves]]
    sessions["client"] = new_client.astype(client.dtype)
    events["client"] = sessions["client"].to_numpy()[events["sess"].to_numpy()]
    # the new devices: cookie set at their first session (or the person's, if none moved)
    starts = sessions["start"].to_numpy()
    never = np.iinfo(np.int64).max
    first_ms = np.full(len(chosen), never, dtype=np.int64)
    np.minimum.at(first_ms, new_client[moves] - n_visitors, starts[moves])
    unused = first_ms == never
    first_ms[unused] = visitors["first_ms"][chosen][unused]
    human_agents = weighted_choice(rng, [w for _, w in V.HUMAN_AGENTS], len(chosen)).astype(np.int16)
    _append_visitors(rng, visitors, first_ms, human_agents)
    return person, _repeat_emails(rng, sessions, events, person, chosen, end_ms)


def _repeat_emails(
    rng, sessions: pd.DataFrame, events: pd.DataFrame, person: np.ndarray, two_device_people: np.ndarray, end_ms: int
) -> pd.DataFrame:
    """An email fill on the first session of each device of a two-device person that has none,
    when the person gave it on another device (probability REPEAT_EMAIL_P).

    The fill goes on the landing page, before the session's next event (halfway to it at most),
    so the session keeps its end and its gaps, and the pages of same-page events stay theirs.
    """
    kind = events["kind"].to_numpy()
    client = events["client"].to_numpy()
    gives_email = np.isin(kind, [EMAIL, COMPLETED])
    device_email = np.zeros(len(person), dtype=bool)
    device_email[client[gives_email]] = True
    person_email = np.zeros(len(person), dtype=bool)
    np.logical_or.at(person_email, person, device_email)
    devices = np.flatnonzero(np.isin(person, two_device_people))
    devices = devices[
        ~device_email[devices] & person_email[person[devices]] & (rng.random(len(devices)) < REPEAT_EMAIL_P)
    ]
    s_client = sessions["client"].to_numpy()
    in_scope = np.flatnonzero(np.isin(s_client, devices))
    if not len(in_scope):
        return events
    # the earliest session of each such device
    order = in_scope[np.lexsort((sessions["start"].to_numpy()[in_scope], s_client[in_scope]))]
    first = order[np.r_[True, s_client[order[1:]] != s_client[order[:-1]]]]
    # events are ordered by session, then time: a session's landing, then its next event
    e_sess, e_ts = events["sess"].to_numpy(), events["ts"].to_numpy()
    landing = np.searchsorted(e_sess, first)
    has_next = (landing + 1 < len(e_sess)) & (e_sess[np.minimum(landing + 1, len(e_sess) - 1)] == first)
    room = np.where(has_next, (e_ts[np.minimum(landing + 1, len(e_ts) - 1)] - e_ts[landing]) // 2, 0)
    ts = e_ts[landing] + np.minimum(lognormal_ms(rng, *GAP_BY_KIND[EMAIL], len(first)), room)
    keep = ts < end_ms
    added = pd.DataFrame(
        {
            "ts": ts[keep],
            "sess": first[keep].astype(e_sess.dtype),
            "kind": np.int8(EMAIL),
            "client": s_client[first[keep]],
        }
    )
    out = pd.concat([events, added], ignore_index=True)
    # stable: a fill at its landing's very millisecond stays after it
    return out.sort_values(["sess", "ts"], kind="stable", ignore_index=True)


def _visitors(rng, sim_start: int, n_days: int, scale: float, bots: bool) -> dict[str, np.ndarray]:
    """Per visitor: first session start, number of sessions, bot or not, agent, cookie id."""
    weekday = (np.arange(n_days) + (sim_start // DAY_MS + 3)) % 7  # 1970-01-01 was a Thursday
    n_new = rng.poisson(scale * NEW_VISITORS_PER_DAY * V.WEEKDAY_FACTOR[weekday])
    n_bot = rng.poisson(np.full(n_days, scale * BOT_VISITORS_PER_DAY)) if bots else np.zeros(n_days, int)
    day_h = np.repeat(np.arange(n_days), n_new)
    day_b = np.repeat(np.arange(n_days), n_bot)
    hour_h = weighted_choice(rng, V.HOUR_WEIGHTS, len(day_h))
    first_h = sim_start + day_h * DAY_MS + hour_h * HOUR_MS + rng.integers(0, HOUR_MS, len(day_h))
    first_b = sim_start + day_b * DAY_MS + rng.integers(0, DAY_MS, len(day_b))  # crawlers have no daily cycle
    first_ms = np.concatenate([first_h, first_b])
    n_clients = len(first_ms)
    is_bot = np.arange(n_clients) >= len(first_h)
    old_cookie = (rng.random(n_clients) < OLD_COOKIE_SHARE) & ~is_bot
    k_sessions = np.concatenate(
        [
            rng.choice(SESSIONS_PER_VISITOR, size=len(first_h), p=SESSIONS_PER_VISITOR_P),
            rng.choice([1, 2, 3], size=len(first_b), p=[0.96, 0.035, 0.005]),
        ]
    )
    ua = np.concatenate(
        [
            weighted_choice(rng, [w for _, w in V.HUMAN_AGENTS], len(first_h)),
            V.N_HUMAN_AGENTS + weighted_choice(rng, [w for _, w in V.BOT_AGENTS], len(first_b)),
        ]
    ).astype(np.int16)
    return {
        "first_ms": first_ms,
        "k_sessions": k_sessions,
        "is_bot": is_bot,
        "old_cookie": old_cookie,
        "ua": ua,
        "ids": make_client_ids(rng, first_ms, old_cookie),
    }


def _plan_sessions(rng, visitors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per session (visitor by visitor): channel, funnel tail, browsing length, email fill."""
    k_sessions = visitors["k_sessions"]
    client = np.repeat(np.arange(len(k_sessions), dtype=np.int32), k_sessions)
    n = len(client)
    bot = visitors["is_bot"][client]
    returning = (segment_arange(k_sessions) > 0) | visitors["old_cookie"][client]
    channel = np.where(
        returning,
        weighted_choice(rng, [V.CHANNEL_MIX_RETURNING[c] for c in V.CHANNELS], n),
        weighted_choice(rng, [V.CHANNEL_MIX_NEW[c] for c in V.CHANNELS], n),
    ).astype(np.int8)
    channel[bot] = V.CH["Direct"]
    intent = np.array([V.CHANNEL_INTENT[c] for c in V.CHANNELS])[channel] * np.where(returning, RETURN_INTENT, 1)
    u = rng.random(n) / intent
    del intent, returning
    stage = np.select([u < STAGE_P[2], u < STAGE_P[1:].sum(), u < STAGE_P.sum()], [3, 2, 1], 0).astype(np.int8)
    del u
    stage[bot] = 0
    tail = np.zeros(n, dtype=np.int8)
    for st in (1, 2, 3):
        options = [i for i, (_, s, _) in enumerate(TAILS) if s == st]
        m = stage == st
        tail[m] = np.array(options)[weighted_choice(rng, [TAILS[i][2] for i in options], int(m.sum()))]
    del stage
    headless = np.isin(visitors["ua"][client], V.HEADLESS_AGENT_IDS)
    tail[headless & (rng.random(n) < BOT_CHECKOUT_P)] = BOT_CHECKOUT_TAIL

    funnel = tail > 0
    n_browse = np.where(
        funnel, rng.geometric(0.7, n), 1 + (rng.random(n) < MULTI_PAGE_P) * rng.geometric(0.62, n)
    ).astype(np.int32)
    n_bot = int(bot.sum())
    n_browse[bot] = np.where(rng.random(n_bot) < 0.97, 1, rng.integers(2, 5, n_bot))
    n_browse[tail == BOT_CHECKOUT_TAIL] = 0  # the script lands on a product page and adds it to the cart
    has_email = (rng.random(n) < np.where(funnel, EMAIL_P_FUNNEL, EMAIL_P_BROWSE)) & ~bot & (n_browse > 0)
    return {
        "client": client,
        "is_bot": bot,
        "channel": channel,
        "tail": tail,
        "n_browse": n_browse,
        "has_email": has_email.astype(np.int32),
    }


def _schedule(rng, visitors, plan, start_ms: int, end_ms: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time every session and event; keep the sessions that start in the window and
    their events before its end."""
    e_sess, e_kind, e_offset = _expand_events(rng, plan["n_browse"], plan["has_email"], plan["tail"], plan["is_bot"])
    n_events = plan["n_browse"] + plan["has_email"] + TAIL_LEN[plan["tail"]]
    duration = e_offset[np.cumsum(n_events) - 1]
    del n_events
    s_client, s_bot = plan["client"], plan["is_bot"]
    s_start = np.empty(len(s_client), dtype=np.int64)
    for mask, hours in ((~s_bot, HUMAN_RETURN_HOURS), (s_bot, BOT_RETURN_HOURS)):
        clients = np.unique(s_client[mask])
        s_start[mask] = _session_starts(
            rng, visitors["first_ms"][clients], visitors["k_sessions"][clients], duration[mask], hours
        )
    del duration

    keep_sess = (s_start >= start_ms) & (s_start < end_ms)
    e_ts = s_start[e_sess] + e_offset
    del e_offset
    keep_ev = keep_sess[e_sess] & (e_ts < end_ms)
    new_id = (np.cumsum(keep_sess) - 1).astype(np.int32)
    sessions = pd.DataFrame(
        {
            "client": s_client[keep_sess],
            "start": s_start[keep_sess],
            "is_bot": s_bot[keep_sess],
            "channel": plan["channel"][keep_sess],
            "tail": plan["tail"][keep_sess],
        }
    )
    events = pd.DataFrame({"ts": e_ts[keep_ev], "sess": new_id[e_sess[keep_ev]], "kind": e_kind[keep_ev]})
    events["client"] = s_client[keep_sess][events["sess"].to_numpy()]
    return sessions, events


def _in_window(ts: np.ndarray, window: tuple[int, int] | None) -> np.ndarray:
    if window is None:
        return np.zeros(len(ts), dtype=bool)
    return (ts >= window[0]) & (ts < window[1])


def _assign_landings(rng, sessions: pd.DataFrame, shift_window) -> None:
    """Landing URL template, path, referrer, campaign and click tokens per session."""
    n = len(sessions)
    channel = sessions["channel"].to_numpy().copy()
    bot = sessions["is_bot"].to_numpy()
    shifted = _in_window(sessions["start"].to_numpy(), shift_window)
    # Before the referrer column disappears, part of the traffic that looked
    # direct starts arriving with an anonymised referrer.
    move = shifted & ~bot & (channel == V.CH["Direct"]) & (rng.random(n) < SHIFT_DIRECT_TO_REFERRER_P)
    channel[move] = np.where(rng.random(int(move.sum())) < 0.6, V.CH["Referral"], V.CH["Organic Social"])

    template = np.zeros(n, dtype=np.int16)
    landing_path = np.zeros(n, dtype=np.int16)
    landing_ref = np.zeros(n, dtype=np.int16)
    for code, name in enumerate(V.CHANNELS):
        m = (channel == code) & ~bot
        k = int(m.sum())
        options = [i for i, (c, _, _) in enumerate(V.LANDING_TEMPLATES) if c == name]
        template[m] = np.array(options)[weighted_choice(rng, [V.LANDING_TEMPLATES[i][2] for i in options], k)]
        ids, p = V.LANDING_CONTENT_TABLE if name in V.CONTENT_CHANNELS else V.LANDING_COMMERCIAL_TABLE
        landing_path[m] = ids[rng.choice(len(ids), size=k, p=p)]
        ref_ids, w_normal, w_shifted = V.LANDING_REFERRER_TABLE[name]
        for mm, w in ((m & ~shifted, w_normal), (m & shifted, w_shifted)):
            landing_ref[mm] = ref_ids[weighted_choice(rng, w, int(mm.sum()))]
    utm_referral = [i for i, (c, q, _) in enumerate(V.LANDING_TEMPLATES) if c == "Referral" and q]
    landing_ref[np.isin(template, utm_referral)] = 0  # tagged links, no referrer needed
    # Focus product of a shopping session.
    family = weighted_choice(rng, V.FAMILY_FOCUS_WEIGHT, n).astype(np.int8)
    template[bot] = V.DIRECT_TEMPLATE
    ids, p = V.BOT_TABLE
    landing_path[bot] = ids[rng.choice(len(ids), size=int(bot.sum()), p=p)]
    checkout_script = sessions["tail"].to_numpy() == BOT_CHECKOUT_TAIL
    landing_path[checkout_script] = V.FAMILY_PAGE[family[checkout_script]]

    sessions["channel"] = channel
    sessions["template"] = template
    sessions["landing_path"] = landing_path
    sessions["landing_ref"] = landing_ref
    sessions["campaign"] = rng.integers(0, V.MAX_VOCAB, n).astype(np.int8)
    sessions["source"] = rng.integers(0, V.MAX_VOCAB, n).astype(np.int8)
    tokens = rng.integers(0, 1 << 24, (n, 3)).astype(np.int32)
    sessions["tok_c"], sessions["tok_a"], sessions["tok_b"] = tokens.T
    sessions["family"] = family
    # The checkout: seed of its URL token, financed through Affirm or not.
    sessions["checkout_seed"] = rng.integers(0, 1 << 62, n)
    sessions["affirm"] = rng.random(n) < AFFIRM_P


def _assign_pages(rng, sessions: pd.DataFrame, events: pd.DataFrame, shift_window) -> None:
    """Page and referrer codes per event (see PAGE_* and REF_LANDING)."""
    kind = events["kind"].to_numpy()
    sess = events["sess"].to_numpy()
    bot = sessions["is_bot"].to_numpy()[sess]
    n = len(kind)
    page = np.zeros(n, dtype=np.int16)
    ref = np.zeros(n, dtype=np.int16)

    page[kind == LANDING] = PAGE_LANDING
    ref[kind == LANDING] = REF_LANDING
    for table, mask in ((V.BROWSE_TABLE, ~bot), (V.BOT_TABLE, bot)):
        m = (kind == BROWSE) & mask
        ids, p = table
        page[m] = ids[rng.choice(len(ids), size=int(m.sum()), p=p)]
    m = kind == PRODUCT
    page[m] = V.FAMILY_PAGE[sessions["family"].to_numpy()[sess[m]]]
    page[kind == CART] = V.CART_PAGE
    for k, code in (
        (CO_START, PAGE_CO_START),
        (CO_PAGE, PAGE_CO),
        (PROCESSING, PAGE_PROCESSING),
        (THANKS, PAGE_THANKS),
    ):
        page[kind == k] = code
    same_page = np.isin(kind, SAME_PAGE_KINDS)
    page[same_page] = page[np.flatnonzero(same_page) - 1]

    # In-session page views: the previous page (path only) or, often, nothing.
    internal = np.isin(kind, [BROWSE, PRODUCT, CART]) & (np.arange(n) > 0)
    idx = np.flatnonzero(internal)
    prev = page[idx - 1]
    prev_sess = sess[idx - 1]
    landing_path = sessions["landing_path"].to_numpy()
    prev_base = np.select(
        [prev == PAGE_LANDING, prev < PAGE_LANDING],
        [landing_path[prev_sess], V.REF_CHECKOUT],
        V.PATH_ONLY[np.maximum(prev, 0)],
    )
    null_p = np.where(
        _in_window(events["ts"].to_numpy()[idx], shift_window), INTERNAL_REF_NULL_P[1], INTERNAL_REF_NULL_P[0]
    )
    ref[idx] = np.where((rng.random(len(idx)) < null_p) | bot[idx], 0, prev_base)

    affirm = sessions["affirm"].to_numpy()[sess]
    m = kind == CO_START
    ref[m] = np.where(rng.random(int(m.sum())) < 0.7, V.REF_SITE, 0)
    m = kind == CO_PAGE
    ref[m] = weighted_choice(rng, [0.3, 0.5, 0.2], int(m.sum())).choose([0, V.REF_SITE, V.REF_CHECKOUT])
    m = kind == PROCESSING
    ref[m] = np.where(affirm[m], V.REF_AFFIRM, np.where(rng.random(int(m.sum())) < 0.6, V.REF_CHECKOUT, 0))
    m = kind == THANKS
    ref[m] = np.where(affirm[m], V.REF_AFFIRM, np.where(rng.random(int(m.sum())) < 0.25, V.REF_SITE, 0))
    ref[same_page] = ref[np.flatnonzero(same_page) - 1]

    events["page"] = page
    events["ref"] = ref
