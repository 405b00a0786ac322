"""The probabilistic checkout link (puffy.transform.identity.checkout_link_edges), hand-built events.

Window 60 minutes; answers worked out by hand:
  e1: B buys at T (ua1); A started a checkout at T-10min on ua1            -> link A-B
  e2: D buys at T (ua2); C1 started on ua2 at T-3min, C2 at T-30min        -> link C1-D (the nearest)
  e7: P buys at T (ua7); Q1 and Q2 both started on ua7 at T-4min            -> no link (exact tie)
  e3: F buys at T (ua3); F itself started at T-5min (no break), G on ua3   -> no link
  e4: H buys at T (ua4); I started at T-60min-1ms (outside), J at T-60min  -> link H-J (bound inclusive)
  e5: K buys at T (ua5); L started on another user agent                   -> no link
  e6: M buys at T (ua6); N started on ua6 one minute AFTER the purchase    -> no link
"""

from __future__ import annotations

import ibis
import pandas as pd

from puffy.transform.identity import checkout_link_edges, identity_edges, person_map

T = pd.Timestamp("2025-03-01 12:00:00")
M = pd.Timedelta(minutes=1)
MS = pd.Timedelta(milliseconds=1)
CO, BUY = "checkout_started", "checkout_completed"

EVENTS = [  # event_id, client_id, event_name, event_ts, user_agent
    ("e1", "B", BUY, T, "ua1"),
    ("s1", "A", CO, T - 10 * M, "ua1"),
    ("e2", "D", BUY, T, "ua2"),
    ("s2a", "C1", CO, T - 3 * M, "ua2"),
    ("s2b", "C2", CO, T - 30 * M, "ua2"),
    ("e3", "F", BUY, T, "ua3"),
    ("s3a", "F", CO, T - 5 * M, "ua3"),
    ("s3b", "G", CO, T - 7 * M, "ua3"),
    ("e4", "H", BUY, T, "ua4"),
    ("s4a", "I", CO, T - 60 * M - MS, "ua4"),
    ("s4b", "J", CO, T - 60 * M, "ua4"),
    ("e5", "K", BUY, T, "ua5"),
    ("s5", "L", CO, T - 2 * M, "ua5 other"),
    ("e6", "M", BUY, T, "ua6"),
    ("s6", "N", CO, T + M, "ua6"),
    ("e7", "P", BUY, T, "ua7"),
    ("s7a", "Q1", CO, T - 4 * M, "ua7"),
    ("s7b", "Q2", CO, T - 4 * M, "ua7"),
]


def _events() -> ibis.Table:
    return ibis.memtable(
        pd.DataFrame(EVENTS, columns=["event_id", "client_id", "event_name", "event_ts", "user_agent"])
    )


def test_links_only_the_single_candidate():
    edges = checkout_link_edges(_events(), 60, CO, BUY).execute()
    got = {key: set(g.client_id) for key, g in edges.groupby("email")}
    assert got == {"link:e1": {"A", "B"}, "link:e2": {"C1", "D"}, "link:e4": {"H", "J"}}


def test_links_and_emails_form_one_person_map():
    """B gave email x on its own; A is linked to B by the checkout: A, B and the email share a person."""
    ev = _events()
    ev = ev.mutate(user_email=ibis.ifelse(ev.event_id == "e1", "x", ibis.null("string")))
    edges = identity_edges(ev).union(checkout_link_edges(ev, 60, CO, BUY))
    people = person_map(edges).execute().set_index("client_id").person_id.to_dict()
    assert people == {"A": "A", "B": "A", "C1": "C1", "D": "C1", "H": "H", "J": "H"}
