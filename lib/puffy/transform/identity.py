"""Identity stitching: client ids that share a hashed email become one person.

A cookie (``client_id``) is a device, not a person: the same shopper on phone and laptop has two
ids. When both ids submit the same hashed email (the popup's ``user_email`` or the purchase
payload's), they are the same person. The client–email pairs form a bipartite graph; a person is
one of its connected components, and ``person_id`` is the smallest ``client_id`` of the component
(deterministic, and stable when a component only grows by ids that sort later).

Components are found by min-label propagation written as Ibis joins and group-bys (portable to
Spark): every client starts with its own id as label, every email takes the smallest label of its
clients, every client the smallest label of its emails; repeat until no label changes (as many
rounds as the longest chain in the graph, a handful in practice). The edge table holds one row per
distinct (client, email) pair, a tiny table next to the events.

Without stitching (the default) ``person_id = client_id``. ``apply_identity`` is the one place
that derives person_id, so every table gets it the same way.

**Probabilistic checkout link** (``probabilistic_link``, off by default). The checkout runs on
another host (checkout.puffy.com) and the client id is often not carried over: the purchase then
arrives under a brand-new client id and the journey that led to it is lost. ``checkout_link_edges``
links such a purchase to the client id that started a checkout shortly before on the same
browser: for each purchase whose own client id has no checkout start in the ``window`` before it,
the other client ids with a checkout start in that window and exactly the same user-agent string
are candidates, and the one whose checkout start is the latest (closest to the purchase) is linked;
an exact tie links nobody. The nearest candidate is usually the buyer (a checkout takes minutes),
but a stranger on the same browser build can be nearer: that is the link's imprecision, measured
with its recall on the sample generator's ground truth (docs/attribution.md). A link is an edge to
a synthetic key ``link:<event_id>`` of the purchase, so email and link edges form one graph.

Tables (Ibis, not persisted):
``identity_edges``     — one row per distinct (client_id, email).
``checkout_link_edges`` — two rows (the two client ids) per linked purchase, in the same shape.
``person_map``         — one row per client_id that has an edge: client_id, person_id.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

MAX_ROUNDS = 50


def identity_edges(events: ir.Table, email_col: str = "user_email") -> ir.Table:
    """Distinct (client_id, email) pairs of events that carry both."""
    e = events.filter(events.client_id.notnull() & events[email_col].notnull() & (events[email_col] != ""))
    return e.select("client_id", email=e[email_col]).distinct()


LINK_KEY_PREFIX = "link:"


def checkout_link_edges(events: ir.Table, window_minutes: float, checkout_event: str, purchase_event: str) -> ir.Table:
    """(client_id, email) edges joining a purchase's client id to the client id that started a
    checkout on the same user agent latest within ``window_minutes`` before it (module docstring).

    ``events``: client_id, event_name, event_ts, user_agent, event_id of non-bot events (any
    others are ignored). The ``email`` column holds ``link:<purchase event_id>``, which no hashed
    email can equal.
    """
    ev = events.filter(events.client_id.notnull() & events.user_agent.notnull() & (events.user_agent != ""))
    window = ibis.interval(seconds=int(round(window_minutes * 60)))
    buys = ev.filter(ev.event_name == purchase_event).select(
        _pid="event_id", _pclient="client_id", _pts="event_ts", _pua="user_agent"
    )
    starts = ev.filter(ev.event_name == checkout_event).select(_sclient="client_id", _sts="event_ts", _sua="user_agent")
    in_window = (starts._sts <= buys._pts) & (starts._sts >= buys._pts - window)
    # purchases whose own client started the checkout: no break, nothing to link
    own = buys.join(starts, [buys._pclient == starts._sclient, in_window]).select("_pid").distinct()
    broken = buys.anti_join(own, "_pid")
    cand = broken.join(starts, [broken._pua == starts._sua, broken._pclient != starts._sclient, in_window])
    latest = cand.group_by("_pid", "_pclient", "_sclient").aggregate(_last=cand._sts.max())
    nearest = latest.group_by(_bpid="_pid").aggregate(_best=latest._last.max())
    top = latest.join(nearest, [latest._pid == nearest._bpid, latest._last == nearest._best])
    per = top.group_by("_pid", "_pclient").aggregate(_n=top._sclient.nunique(), _other=top._sclient.min())
    linked = per.filter(per._n == 1)  # an exact tie between two client ids links nobody
    key = ibis.literal(LINK_KEY_PREFIX) + linked._pid
    return ibis.union(
        linked.select(client_id=linked._pclient, email=key),
        linked.select(client_id=linked._other, email=key),
    ).distinct()


def person_map(edges: ir.Table, max_rounds: int = MAX_ROUNDS) -> ir.Table:
    """client_id -> person_id (smallest client_id of its connected component), by label propagation.

    Each round is materialised (``cache``) and the loop stops when no label changed; it executes
    one tiny count per round. Raises if ``max_rounds`` is exceeded (a chain that long is a bug).
    """
    edges = edges.select("client_id", "email").cache()
    labels = edges.select("client_id").distinct().mutate(person_id=lambda t: t.client_id).cache()
    for _ in range(max_rounds):
        by_email = edges.join(labels, "client_id").group_by("email").aggregate(label=lambda t: t.person_id.min())
        relabel = edges.join(by_email, "email").group_by("client_id").aggregate(new_label=lambda t: t.label.min())
        joined = labels.join(relabel, "client_id")
        new = joined.select("client_id", person_id=ibis.least(joined.person_id, joined.new_label)).cache()
        changed = (
            labels.join(new.rename(new_person_id="person_id"), "client_id")
            .filter(lambda t: t.person_id != t.new_person_id)
            .count()
            .execute()
        )
        labels = new
        if changed == 0:
            return labels
    raise RuntimeError(f"identity stitching did not converge in {max_rounds} rounds")


def apply_identity(t: ir.Table, mapping: ir.Table | None, client_col: str = "client_id") -> ir.Table:
    """Set ``person_id`` on ``t`` from its client id: the mapped person, else the client id itself.

    Any existing person_id column is replaced, so tables read back from the warehouse are
    re-keyed with the identity knowledge of the current run.
    """
    base = t.drop("person_id") if "person_id" in t.columns else t
    if mapping is None:
        return base.mutate(person_id=base[client_col])
    m = mapping.select(_map_client="client_id", _map_person="person_id")
    joined = base.left_join(m, base[client_col] == m._map_client)
    return joined.mutate(person_id=joined._map_person.fill_null(joined[client_col])).drop("_map_client", "_map_person")
