"""Monitoring on the real export (PUFFY_REAL_DATA_DIR; skipped when unset, failing when unreadable).

The warehouse is built the documented way (gate → staged events → transform over all 14 days), then
monitoring runs for each of 2025-03-02 … 2025-03-08 and must flag the export's planted problems
(shared/data/README.md):

* missing client ids jump from ~1% to 15.8% on 03-02 (8–9% on 03-03..03-07, 14% on 03-08);
* the referrer column disappears on 03-04, so organic search turns into Direct from then on;
* revenue integrity: zero-revenue purchases (2 a day on 03-03, 03-04, 03-06) and a transaction id
  used by two different orders (03-08);
* item prices are null from 03-06 on.

None of these make the tables wrong (the transform accounts for every event and cent), so every
day is WARN, not ERROR: published, with the warnings to act on.

Run: cd /work/main && PUFFY_REAL_DATA_DIR=../shared/data/raw_events PYTHONPATH=lib \
     .venv/bin/python -m pytest tests/monitoring/test_monitoring_real.py -q
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from puffy.dq.gate import run_gate
from puffy.monitoring import run_monitoring
from puffy.params import DEFAULT_PARAMS_DIR
from puffy.transform.pipeline import run_transform

pytestmark = [
    pytest.mark.real_data,
    # third-party deprecations raised inside ibis by the transform, not by monitoring
    pytest.mark.filterwarnings("ignore:The 'future.infer_string' option is deprecated"),
    pytest.mark.filterwarnings("ignore:fetch_arrow_table\\(\\) is deprecated"),
]

DAYS = [date(2025, 3, 2) + timedelta(days=i) for i in range(7)]
REFERRER_LOST = date(2025, 3, 4)


@pytest.fixture(scope="module")
def monitored(real_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("monitoring_real")
    gate = run_gate(
        real_data_dir, DEFAULT_PARAMS_DIR / "dq_rules.yaml", root / "dq", staging_root=root / "intermediate"
    )
    days = gate.days
    assert len(days) == 14
    transform = run_transform(
        root / "intermediate", root / "warehouse", DEFAULT_PARAMS_DIR, start=days[0], end=days[-1], mode="rebuild"
    )
    assert transform.status != "error", transform.message
    now = datetime.now(UTC)
    results = {}
    for day in DAYS:
        results[day] = run_monitoring(
            root / "warehouse",
            DEFAULT_PARAMS_DIR / "monitoring_rules.yaml",
            root / "runs" / day.isoformat(),
            run_date=day,
            intermediate_dir=root / "intermediate",
            now=now,
        )
    return results


def ids(result) -> set[str]:
    return {f.id for f in result.findings}


def test_every_day_is_warn_not_error(monitored):
    # the problems are in the data, not in the tables: publish, with warnings
    for day, result in monitored.items():
        assert result.status == "warn", (day, result.report["message"])
        assert not [f for f in result.findings if f.id.startswith(("revenue.reconciliation", "freshness."))]


def test_client_id_null_spike_is_flagged_from_03_02(monitored):
    spike = next(f for f in monitored[date(2025, 3, 2)].findings if f.id == "trend.client_id_null_rate")
    assert spike.value > 0.15 and spike.details["expected"] < 0.02
    # the following days stay flagged: 03-02 never entered their baselines
    for day in DAYS:
        assert "trend.client_id_null_rate" in ids(monitored[day]), day


def test_referrer_loss_shifts_the_channel_mix_and_direct_share_from_03_04(monitored):
    for day in DAYS:
        found = ids(monitored[day])
        if day >= REFERRER_LOST:
            assert {"mix.channel_share_drift", "mix.direct_share_jump"} <= found, day
        else:
            assert "mix.direct_share_jump" not in found, day
    jump = next(f for f in monitored[REFERRER_LOST].findings if f.id == "mix.direct_share_jump")
    assert jump.details["jump"] >= 0.10
    # one session-mix baseline: 03-01..03-03 drifted (Direct fell), so neither monitor compares with them
    drift = next(f for f in monitored[REFERRER_LOST].findings if f.id == "mix.channel_share_drift")
    assert jump.details["baseline_days"] == drift.details["baseline_days"]
    assert max(jump.details["baseline_days"]) < "2025-03-01"
    sessions_mix = monitored[REFERRER_LOST].mix["sessions"].set_index("channel")
    assert sessions_mix.loc["Organic Search", "day_share"] == 0.0  # organic search vanished into Direct


def test_revenue_integrity_problems_are_flagged(monitored):
    zero_days = [d for d in DAYS if "revenue.zero_revenue_orders" in ids(monitored[d])]
    assert zero_days == [date(2025, 3, 3), date(2025, 3, 4), date(2025, 3, 6)]
    collision = [f for f in monitored[date(2025, 3, 8)].findings if f.id == "revenue.transaction_id_collision"]
    assert collision and "ORD-20250308-149" in collision[0].message
    assert "revenue.duplicate_order_key" not in set().union(*(ids(r) for r in monitored.values()))


def test_missing_item_prices_from_03_06(monitored):
    flagged = [d for d in DAYS if "revenue.missing_item_prices" in ids(monitored[d])]
    assert flagged == [date(2025, 3, 6), date(2025, 3, 7), date(2025, 3, 8)]
