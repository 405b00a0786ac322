"""The gate on the real 14-day export: one distinct finding, with its dates, per known problem.

The export's README lists ten problems; items 1–9 must each be a WARN or ERROR finding and item
10 an INFO. Needs PUFFY_REAL_DATA_DIR (see ``conftest.real_data_dir``): skipped when the variable
is unset, failed when it is set but the directory holds no readable export.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from puffy.dq.gate import run_gate
from puffy.params import DEFAULT_PARAMS_DIR

pytestmark = pytest.mark.real_data

NOW = datetime(2025, 3, 10, tzinfo=UTC)


def days(first: str, last: str) -> list[str]:
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


ALL_DAYS = days("2025-02-23", "2025-03-08")


@pytest.fixture(scope="module")
def result(real_data_dir, tmp_path_factory):
    return run_gate(real_data_dir, DEFAULT_PARAMS_DIR / "dq_rules.yaml", tmp_path_factory.mktemp("dq_real"), now=NOW)


def get(result, fid):
    return next(f for f in result.findings if f.id == fid)


def severity_on(f, day: str) -> str:
    return next((r["severity"] for r in f.daily if r["date"] == day), "pass")


def test_overall_status_and_reconciliation(result):
    # Every planted problem is processable (WARN): the transform copes and monitoring watches it.
    assert result.status == "warn"
    rec = result.report["reconciliation"]
    assert rec == {"lines_read": 49963, "events": 49962, "rejects": 1, "ok": True}
    assert result.report["rejects"] == {"exact_duplicate": 1}
    assert [f["date"] for f in result.files] == ALL_DAYS


def test_item1_client_id_header_rename(result):
    f = get(result, "schema.column_renamed")
    assert f.severity == "warn" and f.dates == days("2025-02-27", "2025-03-08")
    assert "clientId" in f.message
    assert get(result, "schema.day_over_day_renamed").dates == ["2025-02-27"]


def test_item2_referrer_mix_shift_then_column_gone(result):
    missing = get(result, "schema.column_missing")
    assert missing.severity == "warn" and missing.dates == days("2025-03-04", "2025-03-08")
    assert "referrer" in missing.message
    assert get(result, "schema.day_over_day_dropped").dates == ["2025-03-04"]
    mix = get(result, "referrer.coverage")
    assert mix.severity in ("warn", "error")
    assert mix.dates[0] == "2025-02-28" and set(mix.dates) <= set(days("2025-02-28", "2025-03-03"))


def test_item3_client_id_null_spike(result):
    f = get(result, "client_id.null_rate")
    assert f.severity == "warn" and f.dates == days("2025-03-02", "2025-03-08")
    assert all(severity_on(f, d) == "warn" for d in days("2025-03-02", "2025-03-08"))
    values = {r["date"]: r["value"] for r in f.daily}
    assert values["2025-03-02"] == pytest.approx(0.172, abs=0.002)  # page views; 15.8% of all events
    assert values["2025-03-08"] == pytest.approx(0.154, abs=0.002)
    assert "page_viewed" in f.message
    jump = get(result, "client_id.null_rate_vs_baseline")
    assert jump.severity == "warn" and jump.dates[0] == "2025-03-02"


def test_item4_item_price_missing(result):
    f = get(result, "payload.item_price_missing")
    assert f.severity in ("warn", "error") and f.dates == days("2025-03-06", "2025-03-08")


def test_item5_zero_revenue_orders(result):
    f = get(result, "payload.revenue_zero")
    assert f.severity == "warn"  # at most 2 of a day's ~20 orders
    assert f.message.startswith("10 checkout_completed event(s)")
    assert "10 of them with a single all-null item" in f.message


def test_item6_transaction_id_collisions_not_replays(result):
    f = get(result, "duplicates.transaction_id_collision")
    assert f.severity == "warn"
    assert f.dates == ["2025-02-26", "2025-02-27", "2025-03-01", "2025-03-08"]
    assert f.message.startswith("4 transaction id(s) on 8 checkout_completed events")
    assert get(result, "duplicates.transaction_id_replay").severity == "pass"


def test_item7_exact_duplicate_and_same_key_rows(result):
    exact = get(result, "duplicates.exact_row")
    assert exact.severity == "warn" and exact.dates == ["2025-03-08"]
    same = get(result, "duplicates.same_key")
    assert same.severity != "pass" and "12 rows in 6 group(s)" in same.message  # + the exact pair = 14 rows


def test_item8_bot_traffic(result):
    f = get(result, "bots.share")
    assert f.severity == "warn" and f.dates == ALL_DAYS
    share = result.daily.bot_events.sum() / result.daily.events.sum()
    assert 0.10 <= share <= 0.15
    checkout = get(result, "bots.checkout_events")
    assert checkout.severity == "warn" and checkout.message.startswith("Bot user agents sent 35 checkout_started")
    assert checkout.dates == days("2025-03-04", "2025-03-06")


def test_item9_dictionary_mismatches(result):
    name = get(result, "taxonomy.dictionary_purchase_name")
    # Standing facts about the dictionary: reported (INFO), never a warning about the days.
    assert name.severity == "info" and name.dates == ALL_DAYS and "checkout_completed" in name.message
    volume = get(result, "taxonomy.dictionary_daily_volume")
    assert volume.severity == "info" and volume.dates == ALL_DAYS  # 2,881-4,335 a day vs 2,000-2,500
    # The third mismatch, the undocumented clientId header, is item 1's finding.
    assert "data dictionary" in get(result, "schema.column_renamed").message


def test_item10_non_integer_revenue_is_info(result):
    f = get(result, "payload.revenue_non_integer")
    assert f.severity == "info" and f.dates == ["2025-02-24", "2025-03-03"]
    assert "421.6" in f.message and "261.8" in f.message


def test_narrative_tells_the_story_in_order(result):
    text = result.narrative
    order = [
        text.index(s)
        for s in (
            "**From 2025-02-27**",
            "**On 2025-02-28 … 2025-03-03**",
            "**From 2025-03-02**",
            "**From 2025-03-04**",
            "**From 2025-03-06**",
        )
    ]
    assert order == sorted(order)


def test_a_day_gets_the_same_severities_alone_as_in_the_backfill(result, real_data_dir, tmp_path):
    """Daily runs and a backfill agree (baseline checks aside: they see the same trailing days here)."""
    alone = run_gate(
        real_data_dir,
        DEFAULT_PARAMS_DIR / "dq_rules.yaml",
        tmp_path,
        start=date(2025, 2, 26),
        end=date(2025, 2, 26),
        now=NOW,
    )
    for f in alone.findings:
        assert f.severity == severity_on(get(result, f.id), "2025-02-26") or f.id.startswith("volume."), f.id


def test_single_day_run_uses_earlier_files_as_baseline(real_data_dir, tmp_path):
    r = run_gate(
        real_data_dir,
        DEFAULT_PARAMS_DIR / "dq_rules.yaml",
        tmp_path,
        start=date(2025, 3, 8),
        end=date(2025, 3, 8),
        now=NOW,
    )
    assert r.days == [date(2025, 3, 8)]
    assert [d.isoformat() for d in r.baseline_days] == days("2025-03-01", "2025-03-07")
    assert get(r, "client_id.null_rate").dates == ["2025-03-08"]
    assert get(r, "client_id.null_rate").severity == "warn"
    assert get(r, "duplicates.exact_row").dates == ["2025-03-08"]
