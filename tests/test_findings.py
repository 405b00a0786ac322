"""puffy.findings: the one Finding, severity scale, status vocabulary, order and JSON cleaning.

Every expected value below was worked out by hand from the rules in the module docstring.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from puffy.findings import (
    GATE_JSON,
    INCIDENT_FIELDS,
    MONITORING_JSON,
    SEVERITY_RANK,
    STATUSES,
    Finding,
    finding_from_dict,
    json_safe,
    normalise_status,
    overall_status,
    sort_findings,
    worst_severity,
    worst_status,
)


def f(fid: str, severity: str, metric: str | None = None) -> Finding:
    return Finding(fid, severity, "m", metric=metric)


# --- severity and status ------------------------------------------------------------------------


def test_one_scale_pass_info_warn_error():
    assert sorted(SEVERITY_RANK, key=SEVERITY_RANK.get) == ["pass", "info", "warn", "error"]
    assert STATUSES == ("pass", "warn", "error")


@pytest.mark.parametrize(
    "severities, worst, status",
    [
        ([], "pass", "pass"),
        (["pass", "pass"], "pass", "pass"),
        (["info"], "info", "pass"),  # a note never raises the status
        (["pass", "info", "warn"], "warn", "warn"),
        (["warn", "error", "info"], "error", "error"),
        (["ok", "warn"], None, "warn"),  # the transform's 'ok' reads as pass
        (["ok"], None, "pass"),
    ],
)
def test_worst_severity_and_status(severities, worst, status):
    if worst is not None:
        assert worst_severity(severities) == worst
    assert worst_status(severities) == status


def test_overall_status_of_findings():
    assert overall_status([]) == "pass"
    assert overall_status([f("a.x", "info"), f("b.y", "info")]) == "pass"
    assert overall_status([f("a.x", "info"), f("b.y", "warn")]) == "warn"
    assert overall_status([f("a.x", "error"), f("b.y", "warn")]) == "error"


def test_normalise_status():
    assert normalise_status("ok") == "pass"
    assert normalise_status(" WARN ") == "warn"
    assert normalise_status("error") == "error"


# --- order --------------------------------------------------------------------------------------


def test_sort_without_families_is_worst_first_then_id_then_metric():
    found = [
        f("trend.sessions", "warn"),
        f("segment.channel", "warn", "Paid"),
        f("mix.x", "info"),
        f("segment.channel", "warn", "Direct"),
        f("freshness.partition_missing", "error"),
    ]
    assert [(x.id, x.metric) for x in sort_findings(found)] == [
        ("freshness.partition_missing", None),
        ("segment.channel", "Direct"),
        ("segment.channel", "Paid"),
        ("trend.sessions", None),
        ("mix.x", None),
    ]


def test_sort_with_families_is_checklist_order_then_id_whatever_the_severity():
    families = ("materiality", "ingest", "schema")
    found = [
        f("schema.column_missing", "warn"),
        f("ingest.missing_file", "pass"),
        f("schema.a", "error"),
        f("materiality.orders_lost", "pass"),
        f("ingest.malformed_lines", "error"),
    ]
    assert [x.id for x in sort_findings(found, families)] == [
        "materiality.orders_lost",
        "ingest.malformed_lines",
        "ingest.missing_file",
        "schema.a",
        "schema.column_missing",
    ]


# --- JSON cleaning ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ("x", "x"),
        (True, True),
        (np.bool_(False), False),
        (3, 3),
        (np.int64(7), 7),
        (np.float32(0.5), 0.5),
        (1.25, 1.25),
        (float("nan"), None),
        (float("inf"), None),
        (-math.inf, None),
        (np.float64("nan"), None),
        (pd.NaT, None),
        (pd.NA, None),
        (Decimal("2.5"), 2.5),
        (date(2025, 3, 8), "2025-03-08"),
        (datetime(2025, 3, 8, 6, 30), "2025-03-08T06:30:00"),
        (pd.Timestamp("2025-03-08 06:30", tz="UTC"), "2025-03-08T06:30:00+00:00"),
        ((float("nan"), 2.0), [None, 2.0]),
        ({"z": -math.inf, "n": np.int32(3), "l": [np.float64(1.5), None]}, {"z": None, "n": 3, "l": [1.5, None]}),
    ],
)
def test_json_safe(value, expected):
    out = json_safe(value)
    assert out == expected and type(out) is type(expected)
    json.dumps(out, allow_nan=False)  # plain JSON


def test_json_safe_rounds_floats_only_when_asked():
    assert json_safe(0.1234567891) == 0.1234567891
    assert json_safe(0.1234567891, digits=6) == 0.123457
    assert json_safe(np.float64(2 / 3), digits=6) == 0.666667
    assert json_safe(5, digits=6) == 5 and type(json_safe(5, digits=6)) is int


# --- the two report layouts ---------------------------------------------------------------------


def test_gate_json_fields_in_order_values_as_made():
    x = Finding(
        "payload.revenue_zero",
        "warn",
        "3 orders; lower revenue.",
        title="Zero-revenue orders",
        metric="revenue_zero_rate",
        value=0.0123456789,
        thresholds={"warn": 0.01},
        dates=["2025-03-08"],
        files=["events_20250308.csv"],
        daily=[{"date": "2025-03-08", "value": 0.01, "severity": "warn"}],
        impact="lower revenue",
        band=(0.0, 1.0),
        details={"n": 3},
    )
    out = x.to_dict(GATE_JSON)
    assert list(out) == [
        "id",
        "check",
        "severity",
        "status",
        "title",
        "metric",
        "value",
        "thresholds",
        "dates",
        "files",
        "sample_rows",
        "message",
        "daily",
        *INCIDENT_FIELDS,
        "impact",
    ]
    assert out["check"] == "payload" and out["status"] == "warn" and out["value"] == 0.0123456789
    assert "band" not in out and "details" not in out


def test_monitoring_json_fields_in_order_and_cleaned():
    x = Finding(
        "trend.sessions",
        "warn",
        "m",
        metric="sessions",
        value=np.float64("inf"),
        band=(float("nan"), 2),
        details={"z": np.float64(-2.5)},
        title="not written",
        thresholds={"warn": 1},
    )
    out = x.to_dict(MONITORING_JSON)
    assert list(out) == ["id", "severity", "message", "metric", "value", "band", "dates", "details", *INCIDENT_FIELDS]
    assert out["value"] is None and out["band"] == [None, 2] and out["details"] == {"z": -2.5}
    assert x.to_dict() == out  # monitoring's callers have always called to_dict() bare


def test_finding_from_dict_round_trips_the_gate_json():
    x = Finding(
        "ingest.missing_file",
        "error",
        "No raw file",
        title="t",
        metric="missing_files",
        value=1,
        thresholds={"severity": "error"},
        dates=["2025-03-08"],
        impact="no events",
        first_seen="2025-03-07",
        days_open=2,
        state="ongoing",
    )
    back = finding_from_dict(x.to_dict(GATE_JSON))
    assert back == x
