"""The monitoring rules file is validated data: names of tables and models are checked."""

from __future__ import annotations

import pytest


def test_monitoring_rules_name_only_real_tables_and_models():
    """A misspelt table or model would silently disable a monitor: it is a params error instead."""
    from typing import get_args

    from puffy.errors import ParamsError
    from puffy.monitoring.rules import MonitoringRules, WarehouseTable
    from puffy.params import validate_params
    from puffy.transform.pipeline import TABLES

    assert set(get_args(WarehouseTable)) == set(TABLES)
    for bad, key in [
        ({"mix": {"attribution_model": "lastclick"}}, "mix.attribution_model"),
        ({"revenue": {"attribution_models": ["linear", "markof"]}}, "revenue.attribution_models"),
        ({"freshness": {"tables": ["fct_session"]}}, "freshness.tables"),
        ({"mix": {"min_baseline_days": 9}}, "mix"),
        ({"trend": {"min_history_days": 40}}, "trend"),
    ]:
        with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
            validate_params(bad, MonitoringRules, "monitoring_rules.yaml")
