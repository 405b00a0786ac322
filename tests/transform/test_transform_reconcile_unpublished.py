"""Reconciliation of a day that follows an unpublished day (stopped by its gate, or quarantined).

A session that began on the unpublished day and ends with a purchase after midnight gives the next
day a correct order whose session is in no published fct_sessions partition. The order and every
cent of it are published; ``orders_in_sessions`` is a 'warn' naming the day, the order and its
revenue, not an 'error' that would quarantine a second day. An order whose session is missing from
a *published* day is still an error.

Hand-built fixture (answers worked out by hand below), three days D1..D3:

* A: D1 10:00 view, 10:05 purchase ORD-A 100.00                 (session on D1, published)
* B: D2 23:50 view, 23:58 view, D3 00:05 purchase ORD-B 250.50  (one session, began on D2)
* E: D2 12:00 view                                              (a second session on D2)
* C: D3 09:00 view, 09:10 purchase ORD-C 80.00                  (session on D3)

D3's orders: ORD-B and ORD-C, revenue 330.50; ORD-B's share 250.50 / 330.50 = 75.8 %.
D3's staged events: B's purchase, C's view and purchase = 3; C's session holds 2, B's purchase
continues B's D2 session (1).

Run: cd /work/main && .venv/bin/python -m pytest -q tests/transform/test_transform_reconcile_unpublished.py
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from puffy.params import DEFAULT_PARAMS_DIR
from puffy.sample import SampleConfig, generate_sample
from puffy.warehouse import partition_files
from support.raw_events import (
    D1,
    D2,
    D3,
    ev,
    purchase,
    pytestmark,  # noqa: F401  (the shared warning filters)
    read_table,
    run_transform,
    stage_rows,
    t,
)

A, B, C, E = "100-aaaaaaaaaaaa", "200-bbbbbbbbbbbb", "300-cccccccccccc", "500-eeeeeeeeeeee"

ROWS = [
    ev(A, t(D1, "10:00:00.000")),
    purchase(A, t(D1, "10:05:00.000"), "ORD-A", 100),
    ev(E, t(D2, "12:00:00.000")),
    ev(B, t(D2, "23:50:00.000")),
    ev(B, t(D2, "23:58:00.000")),
    purchase(B, t(D3, "00:05:00.000"), "ORD-B", 250.5),
    ev(C, t(D3, "09:00:00.000")),
    purchase(C, t(D3, "09:10:00.000"), "ORD-C", 80),
]


def _publish(staging: Path, history: Path, days: list[date]) -> None:
    """What the runner leaves published after ``days`` ran one by one (a rebuild of them: equal)."""
    run_transform(staging, history, DEFAULT_PARAMS_DIR, start=min(days), end=max(days))


def _checks(result):
    return result.reconciliation.set_index("check")


def test_an_order_whose_session_began_on_an_unpublished_day_warns_with_its_day_order_and_revenue(tmp_path):
    staging, _ = stage_rows(tmp_path, ROWS)
    history = tmp_path / "published"
    _publish(staging, history, [D1])  # D2 was stopped by its gate: staged, never published
    out = tmp_path / "d3"
    result = run_transform(staging, out, DEFAULT_PARAMS_DIR, start=D3, end=D3, mode="incremental", history_root=history)
    rec = _checks(result)
    row = rec.loc["orders_in_sessions"]
    assert (row.left, row.right, row.status) == (2, 1, "warn")
    assert "linked=1 + session_on_unpublished_day=1" in row.detail
    assert f"session began on {D2}, a day not published: 1 order, revenue 250.50 (75.8% of order revenue)" in (
        row.detail
    )
    assert "(ORD-B)" in row.detail and "ORD-C" not in row.detail
    assert "no_published_session" not in row.detail
    # Every cent is still accounted for, and every raw row.
    assert (rec.loc["revenue_orders", "left"], rec.loc["revenue_orders", "status"]) == (330.5, "ok")
    raw = rec.loc["raw_rows"]
    assert (raw.left, raw.right, raw.status) == (3, 3, "ok")
    assert raw.detail == "in_sessions=2 + continuing_unpublished_day_sessions=1"
    assert (rec.status == "ok").sum() == len(rec) - 1  # the one warning, nothing else
    assert result.status == "warn"
    assert "orders_in_sessions: 2 vs 1 (warn)" in result.message
    # Published: both orders with their revenue; ORD-B keeps its (D2) session id and is unattributed.
    orders = read_table(out, "fct_orders").set_index("order_key")
    assert orders.revenue.to_dict() == {"ORD-B": 250.5, "ORD-C": 80.0}
    sessions = read_table(out, "fct_sessions")
    assert [p.parent.name for p in map(Path, partition_files(out, "fct_sessions"))] == [f"date={D3}"]
    assert orders.loc["ORD-B", "session_id"] not in set(sessions.session_id)
    att = read_table(out, "fct_attribution")
    b = att[att.order_key == "ORD-B"]
    assert b.is_unattributed.all() and (b.attributed_revenue == 250.5).all()


def test_once_the_day_is_published_the_order_is_linked_and_the_check_is_ok(tmp_path):
    staging, _ = stage_rows(tmp_path, ROWS)
    history = tmp_path / "published"
    _publish(staging, history, [D1, D2])
    out = tmp_path / "d3"
    result = run_transform(staging, out, DEFAULT_PARAMS_DIR, start=D3, end=D3, mode="incremental", history_root=history)
    rec = _checks(result)
    assert (rec.loc["orders_in_sessions", ["left", "right", "status"]].tolist()) == [2, 2, "ok"]
    assert rec.loc["orders_in_sessions", "detail"] == "orders with a client id and a human user agent=2"
    # D2 is rewritten with D3: its 3 events and D3's 3, B's purchase now inside its written session
    assert rec.loc["raw_rows", "detail"] == "in_sessions=6"
    assert result.status == "ok"


def test_an_order_whose_session_is_missing_from_a_published_day_is_still_an_error(tmp_path):
    """D2 is published (E's session) but its partition lacks B's session: a lost session, not an
    unpublished day."""
    staging, _ = stage_rows(tmp_path, ROWS)
    history = tmp_path / "published"
    _publish(staging, history, [D1, D2])
    (d2_sessions,) = [Path(f) for f in partition_files(history, "fct_sessions") if f"date={D2}" in f]
    table = pq.read_table(d2_sessions)
    kept = table.filter([c != B for c in table.column("client_id").to_pylist()])
    assert kept.num_rows == 1  # E's session stays: D2 is a published day
    pq.write_table(kept, d2_sessions)
    out = tmp_path / "d3"
    # A rebuild of D3 alone (an incremental run would rewrite the published D2 and restore B's session).
    result = run_transform(staging, out, DEFAULT_PARAMS_DIR, start=D3, end=D3, history_root=history)
    row = _checks(result).loc["orders_in_sessions"]
    assert (row.left, row.right, row.status) == (2, 1, "error")
    assert "linked=1 + no_published_session=1" in row.detail
    assert "a day not published" not in row.detail
    assert result.status == "error"


def test_the_fixture_is_what_the_docstring_says(tmp_path):
    """The fixture's arithmetic (docstring) on a rebuild of all three days: nothing unpublished."""
    staging, days = stage_rows(tmp_path, ROWS)
    assert days == [D1, D2, D3]
    wh = tmp_path / "all"
    result = run_transform(staging, wh, DEFAULT_PARAMS_DIR, start=D1, end=D3)
    assert result.status == "ok"
    orders = read_table(wh, "fct_orders")
    assert sorted(orders.order_key) == ["ORD-A", "ORD-B", "ORD-C"]
    sessions = read_table(wh, "fct_sessions")
    assert sorted(zip(sessions.client_id, sessions.session_date.astype(str))) == [
        (A, str(D1)),
        (B, str(D2)),
        (C, str(D3)),
        (E, str(D2)),
    ]


# ------------------------------------------------------------------ integration: the daily runner

RUN_DAYS = (date(2025, 3, 10), date(2025, 3, 11), date(2025, 3, 12))
PLANTED = "ORD-20250312-901"


def _append_rows(path: Path, rows: list[dict]) -> None:
    """Append rows to a generated day file, in its header's column order."""
    with path.open(newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    buf = io.StringIO()
    csv.DictWriter(buf, fieldnames=header, lineterminator="\n").writerows(rows)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.rstrip("\n") + "\n" + buf.getvalue(), encoding="utf-8")


def _generated_days_with_a_stopped_day(raw: Path) -> None:
    """A clean generated sample of RUN_DAYS, then: a shopper whose session begins on the second day
    at 23:50 and who buys at 00:04 on the third (PLANTED, 1,234.56), and the second day stopped by
    its gate: every purchase of that day sent twice by the same client (replays: above the gate's
    error share of 0.5)."""
    generate_sample(
        raw,
        SampleConfig(
            start=RUN_DAYS[0],
            days=len(RUN_DAYS),
            scale=0.3,
            seed=21,
            faults=frozenset(),
            rename_client_id_from=None,
            drop_referrer_from=None,
        ),
    )
    d2, d3 = (raw / f"events_{d:%Y%m%d}.csv" for d in RUN_DAYS[1:])
    with d2.open(newline="", encoding="utf-8") as f:
        d2_purchases = [r for r in csv.DictReader(f) if r["event_name"] == "checkout_completed"]
    assert d2_purchases, "the sample's second day has orders to replay"
    replays = [{**r, "timestamp": r["timestamp"][:17] + "59.999Z"} for r in d2_purchases]
    shopper = "1741737000-plantedshopr"
    _append_rows(
        d2,
        replays
        + [
            ev(shopper, t(RUN_DAYS[1], "23:50:00.000"), url="/?utm_source=newsletter&utm_medium=email"),
            ev(shopper, t(RUN_DAYS[1], "23:58:00.000"), url="/products/puffy-mattress"),
        ],
    )
    _append_rows(d3, [purchase(shopper, t(RUN_DAYS[2], "00:04:00.000"), PLANTED, 1234.56)])


def test_a_day_after_a_gate_stopped_day_is_published_with_a_warning(tmp_path):
    """The daily runner over three generated days, the second stopped by its gate: the third used
    to fail orders_in_sessions and be quarantined (exit 4); it is published, every cent of it."""
    from puffy import runner

    raw = tmp_path / "raw"
    _generated_days_with_a_stopped_day(raw)
    layout = runner.RunLayout(tmp_path / "outputs", raw, DEFAULT_PARAMS_DIR)
    results = runner.run_range(RUN_DAYS[0], RUN_DAYS[-1], layout, progress=False)
    assert [r.exit_code for r in results] == [runner.EXIT_OK, runner.EXIT_GATE, runner.EXIT_OK], [
        r.reason for r in results
    ]
    wh = layout.warehouse
    assert not [f for f in partition_files(wh, "fct_sessions") if f"date={RUN_DAYS[1]}" in f]
    orders = read_table(wh, "fct_orders")
    d3 = orders[orders.order_date == RUN_DAYS[2]]
    assert d3.set_index("order_key").loc[PLANTED, "revenue"] == 1234.56
    published_sessions = set(read_table(wh, "fct_sessions").session_id)
    orphans = d3[~d3.session_id.isin(published_sessions) & d3.client_id.notna() & ~d3.is_bot]
    assert PLANTED in set(orphans.order_key)
    rec = read_table(wh, "rpt_reconciliation")
    rec = rec[rec.run_end == RUN_DAYS[2]].set_index("check")
    row = rec.loc["orders_in_sessions"]
    assert row.status == "warn" and row.left - row.right == len(orphans)
    cents = round(orphans.revenue.sum() * 100)
    n = len(orphans)
    assert (
        f"session began on {RUN_DAYS[1]}, a day not published: {n} order{'s' if n != 1 else ''}, "
        f"revenue {cents / 100:.2f}"
    ) in row.detail
    assert PLANTED in row.detail
    assert rec.loc["revenue_orders", "status"] == "ok"
    assert rec.loc["revenue_orders", "left"] == round(d3.revenue.sum(), 2)
    assert (rec.drop(index="orders_in_sessions").status == "ok").all(), rec[rec.status != "ok"]
    run_dir = layout.run_dir(RUN_DAYS[2])
    status = json.loads((run_dir / "transform_status.json").read_text(encoding="utf-8"))
    assert status["status"] == "warn" and "orders_in_sessions" in status["message"]
    # Monitoring relays the warning with its detail, and the day's alert carries it to on-call.
    alert = json.loads((run_dir / "alert.json").read_text(encoding="utf-8"))
    assert alert["outcome"] == "published with warnings"
    relayed = [f["message"] for f in alert["findings"] if f["id"] == "revenue.transform_reconciliation"]
    assert len(relayed) == 1 and f"session began on {RUN_DAYS[1]}" in relayed[0] and PLANTED in relayed[0]
