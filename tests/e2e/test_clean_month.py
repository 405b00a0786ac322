"""A generated month with every fault switched off: the gate and monitoring PASS every day.

A status that is WARN every day tells nobody anything, so on clean data nothing may be raised:
no standing fact about the vendor's dictionary as a warning, no trend or segment firing on
ordinary day-to-day noise.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from puffy.dq.gate import run_gate
from puffy.monitoring import run_monitoring
from puffy.params import DEFAULT_PARAMS_DIR
from puffy.sample import SampleConfig, generate_sample
from puffy.transform.pipeline import run_transform

pytestmark = [
    pytest.mark.filterwarnings("ignore:The 'future.infer_string' option is deprecated"),
    pytest.mark.filterwarnings("ignore:fetch_arrow_table\\(\\) is deprecated"),
]

START, DAYS = date(2025, 2, 23), 28


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean_month")
    config = SampleConfig(
        start=START, days=DAYS, seed=3, faults=frozenset(), rename_client_id_from=None, drop_referrer_from=None
    )
    generate_sample(root / "raw", config)
    gate = run_gate(root / "raw", DEFAULT_PARAMS_DIR / "dq_rules.yaml", root / "dq", staging_root=root / "intermediate")
    transform = run_transform(
        root / "intermediate",
        root / "warehouse",
        DEFAULT_PARAMS_DIR,
        start=gate.days[0],
        end=gate.days[-1],
        mode="rebuild",
    )
    return root, gate, transform


def test_the_gate_passes_every_day(month):
    _, gate, _ = month
    raised = [(f.id, f.severity, f.dates) for f in gate.findings if f.severity in ("warn", "error")]
    assert raised == [] and gate.status == "pass"
    assert set(gate.daily["status"]) <= {"pass", "info"}


def test_monitoring_passes_every_day(month):
    root, _, transform = month
    assert transform.status != "error", transform.message
    now = datetime.now(UTC)
    for day in (START + timedelta(days=i) for i in range(1, DAYS)):
        result = run_monitoring(
            root / "warehouse",
            DEFAULT_PARAMS_DIR / "monitoring_rules.yaml",
            root / "runs" / day.isoformat(),
            run_date=day,
            intermediate_dir=root / "intermediate",
            now=now,
        )
        raised = [(f.id, f.metric, f.message) for f in result.findings if f.severity in ("warn", "error")]
        assert raised == [], (day, [r[2] for r in raised])
