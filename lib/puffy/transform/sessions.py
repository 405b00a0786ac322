"""Sessionization: ``fct_sessions``, one row per session, built with Ibis window expressions.

Grain
    One row per session = a maximal run of one client's events (ordered by ``event_ts``, then
    ``event_id`` for equal timestamps) in which no two consecutive events are
    ``session_timeout_minutes`` (30) or more apart. A gap of exactly 30:00.000 starts a new session:
    by then the session has timed out (both rules give the reference 38,267 sessions on the real
    export, whose closest gaps are 29:59.248 and 30:03.284). Sessions are not cut at midnight.
    With ``split_on_campaign_change`` an event that lands with a different campaign
    (utm_source|utm_medium|utm_campaign) than the session's current one also starts a session.
    Events without a client id cannot be sessionized; with ``exclude_bots`` (default) events whose
    user agent is a bot are dropped before sessionizing. Both are counted in rpt_reconciliation.

Partition key: ``session_date`` (UTC date of ``session_start``).

Columns
    session_id            first 16 hex of md5(client_id || '|' || timestamp_raw of the first event);
                          deterministic: a re-run or a rebuild gives the same id.
    person_id             = client_id, or the stitched person (``identity_stitching``).
    client_id             cookie / device id.
    session_date          date of session_start (partition key).
    session_start, session_end  first / last event (UTC, naive).
    duration_seconds      session_end - session_start, millisecond precision (0 for one event).
    crosses_midnight      session_end falls on a later UTC date than session_start.
    n_events, n_page_views
    first_event_id        event_id of the landing event (lineage to stg_events).
    landing_page_url, landing_path  URL / path of the first event.
    landing_host, landing_kind  its host, and 'checkout' when that is a checkout / payment host
                          (``checkout_hosts`` of params/channels.yaml), else 'site'.
    entry_referrer        referrer of the first event (NULL = none, or column absent).
    referrer_host, referrer_host_decoded, referrer_kind  see ``puffy.channels.parse_landing``.
    utm_source … utm_term  as in the URL (hashed); utm_source_decoded, utm_medium_decoded clear text.
    gclid, gbraid, wbraid, msclkid, fbclid, irclickid, srsltid, kx, gad_source  click ids of the landing.
    has_marketing_params  the landing URL is campaign-tagged.
    channel, channel_rule the landing's channel and the rule that decided (``params/channels.yaml``);
                          'Continuation' for a session that continues an earlier journey (it landed
                          on the checkout host, or came from our own site or the payment provider).
    device_type, browser, os  of the landing event's user agent.
    is_bot, bot_name      any event of the session has a bot user agent (always false with exclude_bots).
    session_number        1 for the client's first session in the available history, then 2, 3, …
    is_returning_client   session_number > 1: the client had an earlier session.
    viewed_product        a page view whose path matches ``product_path_regex`` (/products/).
    added_to_cart, started_checkout, email_captured  the session has such an event.
    n_purchase_events     purchase events in the session (raw, before order dedup / rejects).
    n_orders, revenue     included orders (fct_orders) whose purchase event is in the session.
    purchased             n_orders > 0.

Everything is lazy Ibis (window lag / cumulative sum, group-by, joins), portable to PySpark.
"""

from __future__ import annotations

import re

import ibis
import ibis.expr.types as ir

from puffy import tables
from puffy.channels import ChannelRules, classify_channel, parse_landing, strip_whitespace
from puffy.transform.params import TransformParams

SESSION_SCHEMA = tables.ibis_schema("fct_sessions")  # columns: lib/puffy/tables.yaml
SESSION_COLUMNS: tuple[str, ...] = tuple(SESSION_SCHEMA.names)

# Path of a URL: after the scheme and host, up to the query / fragment.
_PATH_RE = r"^(?:[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)?([^?#]*)"
_SCHEME_RE = r"^[A-Za-z][A-Za-z0-9+.-]*://"


def url_path(url: ir.StringValue) -> ir.StringValue:
    """Path of a URL ('/' when empty): the capture group of ``_PATH_RE``.

    Computed as two simpler regexes, whichever applies: with a scheme, the path is the part after
    the host that starts with '/'; without one, all before the first '?' or '#'. Neither lets a
    character go to two places, which the optional scheme of ``_PATH_RE`` does, so each is about
    a third cheaper to match (measured on landing URLs); the result is the same.
    """
    with_scheme = url.re_extract(_SCHEME_RE + r"[^/?#]*(/[^?#]*)?", 1)
    without_scheme = url.re_extract(r"^([^?#]*)", 1)
    return ibis.ifelse(url.re_search(_SCHEME_RE), with_scheme, without_scheme).nullif("").fill_null("/")


def path_matches(url: ir.StringValue, pattern: str) -> ir.BooleanValue:
    """Whether the path of ``url`` (``url_path``, so '/' for a NULL or empty url) matches the regex ``pattern``.

    A literal that starts with '/' (such as ``/products/``) is tested without extracting the path:
    it lies in the path exactly when it follows the scheme and host (none of whose characters is a
    '/') before the first '?' or '#'. That is a search without a capture group, guarded by a plain
    substring test, and about 3x cheaper than the extraction on the export's URLs.
    """
    literal = re.escape(pattern) == pattern
    if not (literal and pattern.startswith("/") and len(pattern) > 1 and not set(pattern) & set("?#")):
        return url_path(url).re_search(pattern)
    with_scheme = url.re_search(_SCHEME_RE + r"[^/?#]*[^?#]*" + pattern)
    without_scheme = url.re_search(r"^[^?#]*" + pattern)
    in_path = ibis.ifelse(url.re_search(_SCHEME_RE), with_scheme, without_scheme)
    return ibis.ifelse(url.contains(pattern), in_path, False)


def epoch_ms(ts: ir.TimestampValue) -> ir.IntegerValue:
    """Milliseconds since the epoch, identical on DuckDB (fractional epoch) and Spark (whole seconds)."""
    return ts.epoch_seconds().floor().cast("int64") * 1000 + ts.millisecond().cast("int64")


def annotate_events(events: ir.Table, ua_dim: ir.Table) -> ir.Table:
    """Add is_bot, bot_name, device_type, browser, os from the user-agent dimension.

    A NULL / unknown user agent is not called a bot (is_bot false, device NULL): we cannot tell.
    """
    dim = ua_dim.select(
        _ua="user_agent",
        _is_bot="is_bot",
        bot_name="bot_name",
        device_type="device_type",
        browser="browser",
        os="os",
    )
    j = events.left_join(dim, events.user_agent == dim._ua)
    return j.mutate(is_bot=j._is_bot.fill_null(False)).drop("_ua", "_is_bot")


def _campaign_key(t: ir.Table) -> ir.StringValue:
    """utm_source|utm_medium|utm_campaign of an event, NULL when it carries none of them."""
    tagged = t.utm_source.notnull() | t.utm_medium.notnull() | t.utm_campaign.notnull()
    key = t.utm_source.fill_null("") + "|" + t.utm_medium.fill_null("") + "|" + t.utm_campaign.fill_null("")
    return ibis.ifelse(tagged, key, ibis.null("string"))


def session_event_flags(events: ir.Table, params: TransformParams) -> ir.Table:
    """The narrow per-event columns sessionization and the session aggregate need.

    event_id, client_id, event_ts, is_bot, bot_name, and booleans is_page_view, is_product_view,
    is_add_to_cart, is_checkout_start, is_email_capture, is_purchase (plus page_url and referrer
    with ``split_on_campaign_change``). The window and the aggregate sort and hash every column
    they carry, so the long texts (URL, user agent, payload) stay out of them: under a tight
    memory limit that halves the cost of building sessions. The landing's texts are joined back
    by ``build_sessions``.
    """
    is_pv = events.event_name == params.page_view_event
    extra = ("page_url", "referrer") if params.split_on_campaign_change else ()
    return events.select(
        "event_id",
        "client_id",
        "event_ts",
        "is_bot",
        "bot_name",
        *extra,
        is_page_view=is_pv,
        is_product_view=is_pv & path_matches(events.page_url, params.product_path_regex).fill_null(False),
        is_add_to_cart=events.event_name == params.add_to_cart_event,
        is_checkout_start=events.event_name == params.checkout_started_event,
        is_email_capture=events.event_name == params.email_event,
        is_purchase=events.event_name == params.purchase_event,
    )


def sessionize_events(events: ir.Table, params: TransformParams, rules: ChannelRules | None = None) -> ir.Table:
    """Mark the session boundaries of ``events`` (client_id NOT NULL).

    Adds ``is_session_start`` (bool) and ``session_seq`` (1, 2, … per client within ``events``):
    a session is identified by (client_id, session_seq) here, and by ``session_id`` once
    ``build_sessions`` has aggregated it. ``events`` must be complete for each client from some
    point on: a session is only correct if its first event's predecessor (if any, within the
    timeout) is in ``events``.

    Two window passes over the same (client, time) order and no per-event session id: the
    window operators carry every column of ``events`` (pass ``session_event_flags``, not the
    events themselves), so each extra pass costs a full sort.
    """
    w = ibis.window(group_by=events.client_id, order_by=[events.event_ts, events.event_id])
    prev_ts = events.event_ts.lag().over(w)
    timeout = ibis.interval(seconds=int(round(params.session_timeout_minutes * 60)))
    ev = events.mutate(
        _prev_ts=prev_ts,
        _gap_start=prev_ts.isnull() | (events.event_ts >= prev_ts + timeout),
    )

    if params.split_on_campaign_change:
        ev = _add_campaign_splits(ev, rules)
    else:
        ev = ev.mutate(is_session_start=ev._gap_start)

    cw = ibis.cumulative_window(group_by=ev.client_id, order_by=[ev.event_ts, ev.event_id])
    ev = ev.mutate(session_seq=ev.is_session_start.cast("int64").sum().over(cw))
    return ev.drop("_prev_ts", "_gap_start")


def session_id(client_id: ir.StringValue, start_timestamp_raw: ir.StringValue) -> ir.StringValue:
    """The session id: first 16 hex of md5(client_id || '|' || the first event's timestamp as written)."""
    return (client_id + "|" + strip_whitespace(start_timestamp_raw)).hexdigest("md5").substr(0, 16)


def _add_campaign_splits(ev: ir.Table, rules: ChannelRules | None) -> ir.Table:
    """``is_session_start`` = timeout gap, or a campaign-tagged event whose campaign differs from the
    previous tagged event of the same (timeout) session — or from an untagged landing.

    No split between events with the same timestamp (a session id is client + start time).
    """
    cw = ibis.cumulative_window(group_by=ev.client_id, order_by=[ev.event_ts, ev.event_id])
    ev = ev.mutate(_gap_seq=ev._gap_start.cast("int64").sum().over(cw))
    parsed = parse_landing(
        ev.select("event_id", "client_id", "event_ts", "_gap_seq", "_gap_start", "_prev_ts", "page_url", "referrer"),
        rules=rules,
    )
    keyed = parsed.mutate(_key=_campaign_key(parsed)).filter(lambda t: t._key.notnull())
    kw = ibis.window(group_by=[keyed.client_id, keyed._gap_seq], order_by=[keyed.event_ts, keyed.event_id])
    prev_key = keyed._key.lag().over(kw)
    split = ~keyed._gap_start & (keyed.event_ts > keyed._prev_ts) & (prev_key.isnull() | (prev_key != keyed._key))
    splits = keyed.select(_split_event_id=keyed.event_id, _split=split)
    j = ev.left_join(splits, ev.event_id == splits._split_event_id)
    return j.mutate(is_session_start=j._gap_start | j._split.fill_null(False)).drop(
        "_split_event_id", "_split", "_gap_seq"
    )


def build_sessions(sessionized: ir.Table, events: ir.Table, rules: ChannelRules | None = None) -> ir.Table:
    """Aggregate sessionized events into sessions.

    ``sessionized``: ``session_event_flags`` of the events, through ``sessionize_events``.
    ``events``: the annotated events themselves, where each session's landing event (its one
    ``is_session_start`` event) is looked up by event_id for the landing's URL, referrer, start
    timestamp as written and device.

    Returns every ``SESSION_COLUMNS`` column except person_id, session_number,
    is_returning_client, n_orders, revenue and purchased (added by the later steps).
    """
    ev = sessionized
    agg = ev.group_by("client_id", "session_seq").aggregate(
        session_start=ev.event_ts.min(),
        session_end=ev.event_ts.max(),
        n_events=ev.count(),
        n_page_views=ev.is_page_view.cast("int64").sum(),
        viewed_product=ev.is_product_view.any(),
        added_to_cart=ev.is_add_to_cart.any(),
        started_checkout=ev.is_checkout_start.any(),
        email_captured=ev.is_email_capture.any(),
        n_purchase_events=ev.is_purchase.cast("int64").sum(),
        is_bot=ev.is_bot.any(),
        bot_name=ev.bot_name.max(),
        # the one event_id that is not NULL in the session: its landing event
        first_event_id=ibis.ifelse(ev.is_session_start, ev.event_id, ibis.null("string")).max(),
    )
    landing = events.select(
        _landing_id="event_id",
        _start_raw="timestamp_raw",
        landing_page_url="page_url",
        entry_referrer="referrer",
        device_type="device_type",
        browser="browser",
        os="os",
    )
    agg = agg.join(landing, agg.first_event_id == landing._landing_id).drop("_landing_id", "session_seq")
    agg = agg.mutate(session_id=session_id(agg.client_id, agg._start_raw)).drop("_start_raw")
    s = classify_channel(
        parse_landing(agg, url_col="landing_page_url", referrer_col="entry_referrer", rules=rules), rules
    )
    return s.mutate(
        session_date=s.session_start.date(),
        duration_seconds=(epoch_ms(s.session_end) - epoch_ms(s.session_start)).cast("float64") / 1000.0,
        crosses_midnight=s.session_end.date() > s.session_start.date(),
        landing_path=url_path(s.landing_page_url),
        n_events=s.n_events.cast("int64"),
        n_page_views=s.n_page_views.cast("int64"),
        n_purchase_events=s.n_purchase_events.cast("int64"),
    )


def events_in_sessions(events: ir.Table, sessions: ir.Table) -> ir.Table:
    """``events`` with the ``session_id`` of the session each falls in (NULL when none).

    A client's sessions never overlap in time (a later session starts strictly after the
    previous one's last event), so an event lies within at most one session's
    [session_start, session_end]; this join needs no per-event session id. ``events`` should be
    few (purchases) or the join selective, as it is a hash join on client_id plus a range filter.
    """
    s = sessions.select(_sc="client_id", _sid="session_id", _ss="session_start", _se="session_end")
    j = events.left_join(s, (events.client_id == s._sc) & (events.event_ts >= s._ss) & (events.event_ts <= s._se))
    return j.rename(session_id="_sid").drop("_sc", "_ss", "_se")


def session_numbers(sessions: ir.Table, prior_counts: ir.Table | None) -> ir.Table:
    """session_id, session_date, session_number: the client's sessions numbered in time order.

    ``prior_counts``: one row per client_id with ``n_prior`` = the client's sessions in partitions
    before the ones being built (NULL → none). Numbers then continue across runs, so a day-by-day
    run numbers sessions exactly like a rebuild. The window runs over three narrow columns (a
    window over the whole session row would sort all of it); ``add_session_history`` joins the
    result back.
    """
    keys = sessions.select("session_id", "client_id", "session_start", "session_date")
    if prior_counts is not None:
        p = prior_counts.select(_pc="client_id", _n_prior="n_prior")
        keys = keys.left_join(p, keys.client_id == p._pc).drop("_pc")
        keys = keys.mutate(_n_prior=keys._n_prior.fill_null(0).cast("int64"))
    else:
        keys = keys.mutate(_n_prior=ibis.literal(0, "int64"))
    w = ibis.window(group_by=keys.client_id, order_by=[keys.session_start, keys.session_id])
    return keys.select(
        "session_id", "session_date", session_number=keys._n_prior + ibis.row_number().over(w).cast("int64") + 1
    )


def add_session_history(sessions: ir.Table, numbers: ir.Table) -> ir.Table:
    """session_number (from ``session_numbers``) and is_returning_client (session_number > 1).

    Joined on session_id and session_date, so that a filter on the date reaches both sides.
    """
    n = numbers.select(_nsid="session_id", _ndate="session_date", session_number="session_number")
    s = sessions.join(n, (sessions.session_id == n._nsid) & (sessions.session_date == n._ndate))
    s = s.drop("_nsid", "_ndate")
    return s.mutate(is_returning_client=s.session_number > 1)


def add_order_metrics(sessions: ir.Table, orders: ir.Table) -> ir.Table:
    """n_orders, revenue (summed in integer cents) and purchased, from included orders' session_id."""
    o = orders.filter(orders.session_id.notnull())
    per = o.group_by(_osid=o.session_id).aggregate(_n=o.count(), _cents=(o.revenue * 100).round().cast("int64").sum())
    s = sessions.left_join(per, sessions.session_id == per._osid).drop("_osid")
    s = s.mutate(
        n_orders=s._n.fill_null(0).cast("int64"),
        revenue=s._cents.fill_null(0).cast("float64") / 100.0,
    )
    return s.mutate(purchased=s.n_orders > 0).drop("_n", "_cents")


def cast_to_schema(t: ir.Table, schema: ibis.Schema) -> ir.Table:
    """``t`` reduced to ``schema``'s columns, in its order and types."""
    return t.select(**{c: t[c].cast(typ) for c, typ in schema.items()})
