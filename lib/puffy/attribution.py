"""Marketing attribution models producing ``fct_attribution``.

Inputs are two Ibis tables built by the sessionization / orders steps:

* ``sessions``: session_id, person_id, session_start (UTC), channel.
  Already restricted to eligible (non-bot) sessions; must cover the lookback
  history of every order passed in. Sessions whose channel is
  ``continuation_channel`` ("Continuation": the checkout host, a return from
  the payment provider, an internal referrer) are never touchpoints; an order
  left without any touchpoint is credited to ``untracked_channel``
  ("Untracked journey"), never to Direct.
* ``orders``: order_key (unique), person_id, session_id (nullable, the session
  containing the purchase), order_ts (UTC), revenue (>= 0, to attribute).

Everything heavy is expressed with portable Ibis operations (hash joins on
``person_id``, window functions, group_by/aggregate, cases) so the same code
runs on DuckDB and PySpark.  The only eager step is the Markov model: it
executes one tiny aggregate (channel-to-channel transition counts, at most
(channels + 1)^2 rows) and solves the absorbing chain with numpy.

Public API
----------
* :class:`AttributionParams` -- validated parameters.
* :func:`order_touchpoints` -- the touchpoints of every order (one row per
  order x touch session, or one placeholder row for orders without touches).
* :func:`markov_transition_counts` -- first-order transition counts of
  converting and non-converting journeys (Ibis).
* :func:`markov_removal_effects` -- removal effect per channel from a small
  path-count table (pandas / numpy).
* :func:`markov_fits` -- removal effects of several chains (e.g. one per fit
  date) in one query.
* :func:`attribute` -- ``fct_attribution``: one row per
  (order_key, model, touchpoint session).
* :func:`attribution_summary` -- model x channel totals.
* :func:`order_journeys` -- per order: journey status (tracked / stitched /
  untracked) and touchpoint count.
* :func:`touch_sessions` -- the sessions that may be touchpoints (not
  continuations).

See ``docs/attribution.md`` for the methodology.
"""

from __future__ import annotations

import math

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from puffy.attribution_params import MODEL_NAMES, AttributionParams, ModelName  # noqa: F401 (re-exported)

# Markov chain states that are not channels.  Parenthesised so they can never
# collide with a channel label.
START = "(start)"
CONVERSION = "(conversion)"
NULL_STATE = "(null)"

SECONDS_PER_DAY = 86_400.0
# Touch weights are at most 1; as integers in units of 2^-50 an order's sum stays below 2^63 (Spark's
# bigint sum would wrap past it) up to 8,191 touches of weight 1 — orders have tens.
WEIGHT_UNITS = float(2**50)

#: Column order of ``fct_attribution``.
ATTRIBUTION_COLUMNS: tuple[str, ...] = (
    "order_key",
    "model",
    "session_id",
    "channel",
    "touch_index",
    "touch_count",
    "days_before_order",
    "credit",
    "attributed_revenue",
    "is_unattributed",
)

# Touchpoint columns carried into the per-model weighting step.
_TOUCH_COLUMNS: tuple[str, ...] = (
    "order_key",
    "revenue",
    "session_id",
    "channel",
    "touch_index",
    "touch_count",
    "days_before_order",
    "is_unattributed",
)


# ---------------------------------------------------------------------------
# Touchpoints
# ---------------------------------------------------------------------------

_UNIX_EPOCH = ibis.timestamp("1970-01-01 00:00:00")


def _epoch_seconds(ts: ir.TimestampValue) -> ir.FloatingValue:
    """Fractional seconds since the epoch: float64(epoch microseconds) / 1e6 on every backend.

    ``epoch_seconds()`` is fractional on DuckDB but whole seconds on Spark (``unix_timestamp``);
    the exact microsecond difference to the epoch is portable, and divided like this it is
    bit-for-bit DuckDB's ``epoch(ts)``.
    """
    return ts.delta(_UNIX_EPOCH, unit="microsecond").cast("float64") / 1e6


def touch_sessions(sessions: ir.Table, params: AttributionParams | None = None) -> ir.Table:
    """The sessions that can be touchpoints: all but continuations (``params.continuation_channel``).

    A continuation carries on a journey that started elsewhere (the checkout host, a return from
    the payment provider, a click on our own site after the session timed out): it is not an
    acquisition, so it is neither credited nor a state of the Markov chain.
    """
    params = params or AttributionParams()
    return sessions.filter(sessions.channel != params.continuation_channel)


def order_touchpoints(
    sessions: ir.Table,
    orders: ir.Table,
    params: AttributionParams | None = None,
    by: str | None = None,
) -> ir.Table:
    """Touchpoints of every order.

    Grain: one row per (order_key, touch session); an order without any
    touchpoint gets exactly one placeholder row (session_id NULL, channel
    ``params.untracked_channel``, is_unattributed True).

    A session is a touchpoint of an order when it belongs to the same
    person_id and ``order_ts - lookback_days <= session_start <= order_ts``
    (both bounds inclusive), or when it is the order's own session; in
    either case only if it is not a continuation (``touch_sessions``).
    A session may be a touchpoint of several orders.

    Columns: order_key, person_id, revenue, order_ts, session_id, channel,
    session_start, touch_index (1-based by session_start then session_id),
    touch_count, days_before_order (float days, >= 0, NULL for placeholder
    rows), is_unattributed.

    ``by``: a column of both inputs that splits them into independent
    problems (e.g. a fit date, sessions and orders repeated once per date
    whose window holds them): sessions only touch orders with the same
    ``by`` value, touchpoints are numbered per (``by``, order_key), and the
    output starts with the ``by`` column.
    """
    params = params or AttributionParams()
    keys = [by] if by else []
    sessions = touch_sessions(sessions, params)
    o = orders.select(
        *keys,
        "order_key",
        "person_id",
        "order_ts",
        "revenue",
        order_session_id=orders.session_id,
    )
    s = sessions.select(*keys, "person_id", "session_id", "session_start", "channel").rename(
        session_person_id="person_id", **({"session_by": by} if by else {})
    )

    window_start = o.order_ts - ibis.interval(days=params.lookback_days)
    in_window = (s.session_start >= window_start) & (s.session_start <= o.order_ts)
    # The equality on person_id keeps this a hash join (never a cross join);
    # the time window is a residual predicate, so each session is only
    # compared with its own person's orders.
    same_key = [o[by] == s.session_by] if by else []
    joined = o.join(
        s,
        [
            o.person_id == s.session_person_id,
            *same_key,
            in_window | (s.session_id == o.order_session_id),
        ],
    )

    seconds_before = _epoch_seconds(joined.order_ts) - _epoch_seconds(joined.session_start)
    touches = joined.select(
        *keys,
        "order_key",
        "person_id",
        "revenue",
        "order_ts",
        "session_id",
        "channel",
        "session_start",
        # Clamped at 0: only the order's own session can start after the
        # order (clock skew) and it should then count as "at the order".
        days_before_order=ibis.greatest(seconds_before, 0).cast("float64") / SECONDS_PER_DAY,
        is_unattributed=ibis.literal(False),
    )

    unattributed = o.anti_join(touches, [by, "order_key"] if by else "order_key").select(
        *keys,
        "order_key",
        "person_id",
        "revenue",
        "order_ts",
        session_id=ibis.null().cast("string"),
        channel=ibis.literal(params.untracked_channel),
        session_start=ibis.null().cast(touches.session_start.type()),
        days_before_order=ibis.null().cast("float64"),
        is_unattributed=ibis.literal(True),
    )

    both = touches.union(unattributed)
    order_group = [both[by], both.order_key] if by else both.order_key
    by_order = ibis.window(group_by=order_group, order_by=[both.session_start, both.session_id])
    return both.mutate(
        # ibis row_number() is 0-based.
        touch_index=(ibis.row_number().over(by_order) + 1).cast("int64"),
        touch_count=both.order_key.count().over(group_by=order_group).cast("int64"),
    )


# ---------------------------------------------------------------------------
# Markov chain
# ---------------------------------------------------------------------------


def markov_transition_counts(
    sessions: ir.Table,
    touchpoints: ir.Table,
    params: AttributionParams | None = None,
    by: str | None = None,
) -> ir.Table:
    """First-order transition counts of converting and non-converting journeys.

    A first-order chain only needs transition counts, so the journeys are
    never materialised as ordered lists (ordered array aggregation is not
    portable); each journey step becomes one (from_state, to_state) row.

    * Converting journeys: each order's touchpoint channels in touch_index
      order, START -> c1 -> ... -> cn -> CONVERSION.  Unattributed orders
      have no journey and are skipped.
    * Non-converting journeys (if ``params.markov_include_non_converting``):
      sessions that are a touchpoint of no order, per person ordered by
      session_start; a new journey starts when the gap to the previous such
      session exceeds ``lookback_days``.  Each ends with -> NULL.  Because
      all of a person's sessions within lookback of an order are touchpoints,
      such a journey can never straddle a purchase.

    Grain: one row per (from_state, to_state).
    Columns: from_state, to_state, n (int64 transition count).

    ``by``: count separate chains per value of this column of both inputs
    (``touchpoints`` from :func:`order_touchpoints` with the same ``by``);
    the grain is then (``by``, from_state, to_state), ``by`` first.
    """
    params = params or AttributionParams()
    keys = [by] if by else []
    conv = touchpoints.filter(~touchpoints.is_unattributed)
    prev_channel = conv.channel.lag().over(
        group_by=[conv[by], conv.order_key] if by else conv.order_key,
        order_by=conv.touch_index,
    )
    steps = [
        conv.select(*keys, from_state=prev_channel.fill_null(START), to_state=conv.channel),
        conv.filter(conv.touch_index == conv.touch_count).select(
            *keys, from_state=conv.channel, to_state=ibis.literal(CONVERSION)
        ),
    ]

    if params.markov_include_non_converting:
        touch_ids = conv.select(*keys, "session_id").distinct()
        sessions = touch_sessions(sessions, params)
        free = sessions.anti_join(touch_ids, [by, "session_id"] if by else "session_id").select(
            *keys,
            "session_id",
            "session_start",
            "channel",
            # Sessions without a person are single-session journeys rather
            # than one giant NULL-person journey.
            journey_owner=sessions.person_id.fill_null(sessions.session_id),
        )
        w = ibis.window(
            group_by=[free[by], free.journey_owner] if by else free.journey_owner,
            order_by=[free.session_start, free.session_id],
        )
        gap = ibis.interval(days=params.lookback_days)
        prev_start = free.session_start.lag().over(w)
        next_start = free.session_start.lead().over(w)
        free = free.mutate(
            prev_channel=free.channel.lag().over(w),
            # Gap strictly greater than the lookback ends a journey, matching
            # the inclusive lookback boundary of converting journeys.
            starts_journey=prev_start.isnull() | (free.session_start > prev_start + gap),
            ends_journey=next_start.isnull() | (next_start > free.session_start + gap),
        )
        steps += [
            free.select(
                *keys,
                from_state=ibis.ifelse(free.starts_journey, START, free.prev_channel),
                to_state=free.channel,
            ),
            free.filter(free.ends_journey).select(*keys, from_state=free.channel, to_state=ibis.literal(NULL_STATE)),
        ]

    all_steps = ibis.union(*steps)
    return all_steps.group_by(*keys, "from_state", "to_state").aggregate(n=all_steps.count().cast("int64"))


def windowed_free_transitions(
    sessions: ir.Table, fit_dates: ir.Table, fit_days: int, params: AttributionParams | None = None
) -> ir.Table:
    """Non-converting transition counts of one chain per fit date, for people who never order.

    For each ``fit_date`` D of ``fit_dates`` (a one-column table), this equals what
    :func:`markov_transition_counts` counts for the non-converting journeys of ``sessions``
    restricted to D's window (session_date in [D - fit_days + 1, D]), provided no session of
    ``sessions`` is a touchpoint of an order in any window, i.e. their people have no order there.
    Those are nearly all sessions, so instead of repeating each once per window it belongs to,
    every session contributes its steps once, each valid over a range of fit dates:

    * s follows p (same owner, start within ``lookback_days``): p -> s while both are in the
      window, D in [s.date, p.date + fit_days - 1]; (start) -> s once p has left it;
    * otherwise (start) -> s while s is in the window, D in [s.date, s.date + fit_days - 1];
    * s -> (null) symmetrically, until its successor enters the window (or for all its window
      dates when it has none within the lookback).

    Steps are counted per (from, to, date range), then spread over the fit dates: the cost
    grows with the sessions, not with sessions x fit dates.
    Grain: one row per (fit_date, from_state, to_state); columns fit_date, from_state,
    to_state, n (int64).
    """
    params = params or AttributionParams()
    last = ibis.interval(days=fit_days - 1)
    gap = ibis.interval(days=params.lookback_days)
    sessions = touch_sessions(sessions, params)
    s = sessions.select(
        "session_id",
        "session_start",
        "session_date",
        "channel",
        owner=sessions.person_id.fill_null(sessions.session_id),
    )
    w = ibis.window(group_by=s.owner, order_by=[s.session_start, s.session_id])
    prev_start, next_start = s.session_start.lag().over(w), s.session_start.lead().over(w)
    s = s.mutate(
        _prev_channel=s.channel.lag().over(w),
        _prev_date=s.session_date.lag().over(w),
        _next_date=s.session_date.lead().over(w),
        _follows=prev_start.notnull() & (s.session_start <= prev_start + gap),
        _followed=next_start.notnull() & (next_start <= s.session_start + gap),
    )
    s = s.mutate(_until=s.session_date + last)
    steps = ibis.union(
        s.filter(s._follows).select(
            from_state=s._prev_channel, to_state=s.channel, lo=s.session_date, hi=s._prev_date + last
        ),
        s.select(
            from_state=ibis.literal(START),
            to_state=s.channel,
            lo=ibis.ifelse(
                s._follows, ibis.greatest(s.session_date, s._prev_date + last + ibis.interval(days=1)), s.session_date
            ),
            hi=s._until,
        ),
        s.select(
            from_state=s.channel,
            to_state=ibis.literal(NULL_STATE),
            lo=s.session_date,
            hi=ibis.ifelse(s._followed, ibis.least(s._until, s._next_date - ibis.interval(days=1)), s._until),
        ),
    )
    steps = steps.filter(steps.lo <= steps.hi)
    ranges = steps.group_by("from_state", "to_state", "lo", "hi").aggregate(n=steps.count())
    per_date = ranges.join(fit_dates, (fit_dates.fit_date >= ranges.lo) & (fit_dates.fit_date <= ranges.hi))
    return per_date.group_by("fit_date", "from_state", "to_state").aggregate(n=per_date.n.sum().cast("int64"))


def _paths_to_transitions(paths: pd.DataFrame) -> pd.DataFrame:
    """Expand a small path-count table into (from_state, to_state, n) counts."""
    rows = []
    # Loop over *distinct paths* (an aggregated, small table), not events.
    for path, conversions, non_conversions in zip(paths["path"], paths["conversions"], paths["non_conversions"]):
        path = list(path)
        total = int(conversions) + int(non_conversions)
        if not path or total == 0:
            continue
        states = [START, *path]
        rows += [(a, b, total) for a, b in zip(states[:-1], states[1:])]
        if conversions:
            rows.append((path[-1], CONVERSION, int(conversions)))
        if non_conversions:
            rows.append((path[-1], NULL_STATE, int(non_conversions)))
    df = pd.DataFrame(rows, columns=["from_state", "to_state", "n"])
    return df.groupby(["from_state", "to_state"], as_index=False)["n"].sum()


def _conversion_probability(q: np.ndarray, r: np.ndarray, keep: np.ndarray) -> float:
    """P(absorption in CONVERSION | START) restricted to transient states `keep`.

    Dropping a state from `keep` sends every transition into it to NULL, which
    is exactly the "removal" of that channel.  START is index 0 and must be
    kept.  Solves (I - Q_kk) x = r_k  (x = fundamental matrix N times r).
    """
    q_k = q[np.ix_(keep, keep)]
    x = np.linalg.solve(np.eye(len(keep)) - q_k, r[keep])
    return float(x[0])


def _removal_effects_from_transitions(transitions: pd.DataFrame) -> pd.Series:
    """Removal effect per channel from (from_state, to_state, n) counts."""
    specials = {START, CONVERSION, NULL_STATE}
    channels = sorted((set(transitions["from_state"]) | set(transitions["to_state"])) - specials)
    empty = pd.Series(dtype="float64", name="removal_effect")
    empty.index.name = "channel"
    if transitions.empty or not channels:
        return empty

    transient = [START, *channels]
    pos = {state: i for i, state in enumerate(transient)}
    size = len(transient)
    counts = np.zeros((size, size))
    to_conv = np.zeros(size)
    out_total = np.zeros(size)
    rows = transitions[["from_state", "to_state", "n"]].itertuples(index=False)
    # At most (channels + 1)^2 rows: looping here is fine.
    for from_state, to_state, n in rows:
        i = pos[from_state]
        out_total[i] += n
        if to_state == CONVERSION:
            to_conv[i] += n
        elif to_state != NULL_STATE:
            counts[i, pos[to_state]] += n
    # States never left (cannot happen for well-formed journeys) keep a zero
    # row, i.e. behave as NULL.
    safe_total = np.where(out_total > 0, out_total, 1.0)
    q = counts / safe_total[:, None]
    r = to_conv / safe_total

    all_states = np.arange(size)
    p_conv = _conversion_probability(q, r, all_states)
    effects = {}
    for channel in channels:
        if p_conv <= 0:
            effects[channel] = 0.0
            continue
        keep = all_states[all_states != pos[channel]]
        p_without = _conversion_probability(q, r, keep)
        # Removing a state can only lower conversion; clip float noise.
        effects[channel] = float(np.clip(1.0 - p_without / p_conv, 0.0, 1.0))
    out = pd.Series(effects, name="removal_effect", dtype="float64")
    out.index.name = "channel"
    return out


def markov_removal_effects(paths: pd.DataFrame) -> pd.Series:
    """Removal effect of each channel under a first-order absorbing Markov chain.

    ``paths`` has one row per distinct journey: ``path`` (tuple/list of
    channel labels, in order), ``conversions`` (int) and ``non_conversions``
    (int).  States are START, the channels, and the absorbing CONVERSION and
    NULL.  P(conv) is the exact absorption probability in CONVERSION from
    START (linear solve, no simulation).  Removing a channel redirects all
    transitions into it to NULL; its removal effect is
    ``1 - P(conv without channel) / P(conv)`` (0 for every channel if
    P(conv) = 0).

    Returns a float Series indexed by channel (sorted), named
    ``removal_effect``; channels absent from ``paths`` are not listed.
    """
    return _removal_effects_from_transitions(_paths_to_transitions(paths))


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def _model_weights(tp: ir.Table, model: str, params: AttributionParams, removal: ir.Table | None) -> ir.Table:
    """Un-normalised weight of every touch for one model.

    Returns touchpoints + ``model`` + ``weight``; credits are normalised by
    :func:`_allocate`.
    """
    idx, n = tp.touch_index, tp.touch_count
    if model == "first_click":
        weight = (idx == 1).cast("float64")
    elif model == "last_click":
        weight = (idx == n).cast("float64")
    elif model == "last_non_direct_click":
        last_non_direct = (
            ibis.ifelse(tp.channel != params.direct_channel, idx, ibis.null()).max().over(group_by=tp.order_key)
        )
        # All-direct journeys fall back to the plain last touch.
        weight = (idx == last_non_direct.fill_null(n)).cast("float64")
    elif model == "linear":
        weight = ibis.literal(1.0)
    elif model == "position_based":
        first, last = params.position_first_weight, params.position_last_weight
        middle = params.position_middle_weight
        weight = ibis.cases(
            (n == 1, 1.0),
            (n == 2, ibis.ifelse(idx == 1, first, last) / (first + last)),
            (idx == 1, first),
            (idx == n, last),
            else_=middle / (n - 2).cast("float64"),
        )
    elif model == "time_decay":
        half_life = params.time_decay_half_life_days
        # 2^(-d/h) written as exp(-d ln2 / h); placeholder rows (d NULL) get 1.
        weight = (-tp.days_before_order * (math.log(2.0) / half_life)).exp().fill_null(1.0)
    elif model == "markov":
        if "re_order_key" in removal.columns:  # effects given per order (attribute's removal_effects)
            keys = [tp.order_key == removal.re_order_key, tp.channel == removal.re_channel]
            tp = tp.left_join(removal, keys).drop("re_order_key", "re_channel")
        else:
            tp = tp.left_join(removal, tp.channel == removal.re_channel).drop("re_channel")
        # A channel seen in several touches shares its removal effect equally.
        same_channel = tp.order_key.count().over(group_by=[tp.order_key, tp.channel])
        weight = tp.removal_effect.fill_null(0.0) / same_channel.cast("float64")
    else:  # pragma: no cover - guarded by AttributionParams
        raise ValueError(f"unknown model {model!r}")
    return tp.select(*_TOUCH_COLUMNS, model=ibis.literal(model), weight=weight.cast("float64"))


def _allocate(weighted: ir.Table) -> ir.Table:
    """Normalise weights into credits and split revenue in exact cents.

    credit = weight / sum(weight) per (order, model); if the weights of an
    order sum to 0 (e.g. Markov with zero removal effects) credit falls back
    to linear (1 / touch_count).

    Revenue: the order's revenue is rounded to integer cents; each touch gets
    floor(credit * cents), and the leftover cents (fewer than touch_count) go
    one each to the touches with the largest fractional remainders, ties by
    touch_index ascending (largest remainder / Hamilton method).  The cents of
    an order therefore sum exactly to its rounded revenue, deterministically.
    """
    per_order = ["order_key", "model"]
    # Weights are summed as integers (units of 2^-50): an integer sum is exact in any order, so
    # the engine's threads can never change the last bit of a credit (a float sum could, and a
    # credit on a rounding boundary then differed between two runs).
    weighted = weighted.mutate(_units=(weighted.weight * WEIGHT_UNITS).round().cast("int64"))
    total_units = weighted._units.sum().over(group_by=per_order)
    t = weighted.mutate(
        credit=ibis.ifelse(
            total_units > 0,
            weighted._units.cast("float64") / total_units.cast("float64"),
            1.0 / weighted.touch_count.cast("float64"),
        ),
        order_cents=(weighted.revenue * 100).round().cast("int64"),
    )
    # Rounding to 1e-6 cent removes float noise (e.g. 29.999999999 -> 30) so
    # that equal shares tie exactly and are broken by touch_index everywhere.
    exact_cents = (t.credit * t.order_cents).round(6)
    t = t.mutate(floor_cents=exact_cents.floor().cast("int64"))
    t = t.mutate(fraction=exact_cents - t.floor_cents)
    t = t.mutate(
        leftover=t.order_cents - t.floor_cents.sum().over(group_by=per_order),
        remainder_rank=ibis.row_number().over(group_by=per_order, order_by=[ibis.desc(t.fraction), t.touch_index]),
    )
    cents = t.floor_cents + ibis.ifelse(t.remainder_rank < t.leftover, 1, 0)
    return t.mutate(attributed_revenue=cents.cast("float64") / 100.0).select(*ATTRIBUTION_COLUMNS)


def markov_fits(
    sessions: ir.Table,
    orders: ir.Table,
    by: str,
    params: AttributionParams | None = None,
    extra_transitions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Removal effects of one Markov chain per value of ``by``, in one query.

    ``sessions`` and ``orders`` carry a ``by`` column naming the chain each
    row belongs to (a row may be repeated for several chains); each chain is
    fitted exactly as :func:`attribute` fits one on that value's rows.
    Executes the transition-count aggregate (:func:`markov_transition_counts`)
    once, then solves every chain in numpy.

    ``extra_transitions`` (``by``, from_state, to_state, n) are added to the counts before
    solving, e.g. :func:`windowed_free_transitions` of the people left out of ``sessions``.

    Returns a DataFrame: ``by``, channel, removal_effect (one row per chain
    and channel seen in it, sorted by ``by`` then channel).
    """
    params = params or AttributionParams()
    tp = order_touchpoints(sessions, orders, params, by=by)
    transitions = markov_transition_counts(sessions, tp, params, by=by).to_pandas()
    if extra_transitions is not None and len(extra_transitions):
        both = pd.concat([transitions, extra_transitions[[by, "from_state", "to_state", "n"]]], ignore_index=True)
        transitions = both.groupby([by, "from_state", "to_state"], as_index=False, sort=True)["n"].sum()
    frames = []
    for value, counts in transitions.groupby(by, sort=True):
        effects = _removal_effects_from_transitions(counts[["from_state", "to_state", "n"]].reset_index(drop=True))
        frames.append(
            pd.DataFrame(
                {
                    by: [value] * len(effects),
                    "channel": effects.index.astype(str),
                    "removal_effect": effects.to_numpy(dtype="float64"),
                }
            )
        )
    if not frames:
        return pd.DataFrame({by: [], "channel": [], "removal_effect": []})
    return pd.concat(frames, ignore_index=True)


def attribute(
    sessions: ir.Table,
    orders: ir.Table,
    params: AttributionParams | None = None,
    removal_effects: ir.Table | None = None,
) -> ir.Table:
    """Build ``fct_attribution``.

    Grain: one row per (order_key, model, touchpoint session); an order with
    no touchpoint has one row per model with session_id NULL, channel
    ``params.untracked_channel`` ("Untracked journey") and is_unattributed True.

    Columns:
        order_key (string), model (string), session_id (string, nullable),
        channel (string), touch_index (int64, 1-based by session_start then
        session_id), touch_count (int64), days_before_order (float64 days,
        NULL if unattributed), credit (float64, sums to 1 per order and
        model), attributed_revenue (float64 in cents precision; per order and
        model sums exactly to the order revenue rounded to cents),
        is_unattributed (bool).

    If ``markov`` is enabled, this eagerly executes the small transition-count
    aggregate (:func:`markov_transition_counts`) on the inputs' backend to fit
    the chain; everything else stays lazy.  Unless ``removal_effects`` is
    given: a table of order_key, channel, removal_effect (one row per order
    and channel, e.g. from :func:`markov_fits`, one chain per order date)
    whose effects are used as they are, so nothing is executed; an order's
    channel without a row has effect 0.
    """
    params = params or AttributionParams()
    tp = order_touchpoints(sessions, orders, params)

    removal = None
    if "markov" in params.models and removal_effects is not None:
        removal = removal_effects.select(
            re_order_key=removal_effects.order_key,
            re_channel=removal_effects.channel,
            removal_effect=removal_effects.removal_effect.cast("float64"),
        )
    elif "markov" in params.models:
        transitions = markov_transition_counts(sessions, tp, params).to_pandas()
        effects = _removal_effects_from_transitions(transitions)
        removal = ibis.memtable(
            pd.DataFrame(
                {
                    "re_channel": effects.index.astype(str),
                    "removal_effect": effects.to_numpy(dtype="float64"),
                }
            ),
            schema={"re_channel": "string", "removal_effect": "float64"},
        )

    per_model = [
        _allocate(_model_weights(tp, model, params, removal)) for model in MODEL_NAMES if model in params.models
    ]
    return ibis.union(*per_model) if len(per_model) > 1 else per_model[0]


def attribution_summary(attribution: ir.Table) -> ir.Table:
    """Model x channel totals of an :func:`attribute` output.

    Grain: one row per (model, channel).
    Columns: model, channel, orders_credited (float64: sum of credit, i.e.
    fractional orders), attributed_revenue (float64, summed in integer cents
    so it is exact to the cent).
    """
    cents = (attribution.attributed_revenue * 100).round().cast("int64")
    return attribution.group_by("model", "channel").aggregate(
        orders_credited=attribution.credit.sum(),
        attributed_revenue=cents.sum().cast("float64") / 100.0,
    )


#: Values of ``fct_orders.journey_status`` (see :func:`order_journeys`).
JOURNEY_STATUSES: tuple[str, ...] = ("tracked", "stitched", "untracked")


def order_journeys(sessions: ir.Table, orders: ir.Table, params: AttributionParams | None = None) -> ir.Table:
    """Journey status and touchpoint count of every order.

    ``sessions`` and ``orders`` as for :func:`attribute`, both also carrying
    ``client_id``. Grain: one row per order. Columns: order_key,
    touchpoint_count (int64, the touchpoints every model credits; 0 when
    none), journey_status:

    * ``tracked`` -- some touchpoint is a session of the order's own client id:
      the journey is known without identity stitching;
    * ``stitched`` -- touchpoints exist, but only on other client ids that
      identity stitching joined to the buyer (email, probabilistic link);
    * ``untracked`` -- no touchpoint: credited to ``params.untracked_channel``.
    """
    params = params or AttributionParams()
    tp = order_touchpoints(
        sessions, orders.select("order_key", "person_id", "session_id", "order_ts", "revenue"), params
    )
    s = sessions.select(_tsid="session_id", _touch_client="client_id")
    o = orders.select(_ook="order_key", _order_client="client_id")
    tp = tp.left_join(s, tp.session_id == s._tsid).drop("_tsid")
    tp = tp.join(o, tp.order_key == o._ook).drop("_ook")
    per = tp.group_by("order_key").aggregate(
        touchpoint_count=(~tp.is_unattributed).cast("int64").sum(),
        _own=(tp._touch_client == tp._order_client).fill_null(False).any(),
    )
    status = ibis.cases((per.touchpoint_count == 0, "untracked"), (per._own, "tracked"), else_=ibis.literal("stitched"))
    return per.select("order_key", touchpoint_count=per.touchpoint_count.cast("int64"), journey_status=status)
