"""puffy.incidents: new vs ongoing findings, and acknowledgements that expire (hand-built findings)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from puffy.errors import ParamsError
from puffy.findings import Finding
from puffy.incidents import (
    Acknowledgements,
    acknowledge,
    counts,
    load_acknowledgements,
    open_incidents,
    previous_report,
    track,
)

D = date(2025, 3, 5)


def f(fid="trend.orders", severity="warn", metric="orders", day=D):
    return Finding(fid, severity, "orders fell", metric=metric, dates=[day.isoformat()])


def acks(*entries) -> Acknowledgements:
    return Acknowledgements.model_validate({"acknowledged": list(entries)})


ACK = {
    "check": "segment.channel",
    "metric": "Organic Search",
    "reason": "referrer column gone",
    "owner": "ana@puffy.com",
    "expires": "2025-06-30",
}


def test_a_finding_the_day_before_raised_is_ongoing_with_its_first_day():
    findings = [f(), f("trend.sessions", metric="sessions"), f("trend.aov", severity="pass", metric="aov")]
    track(findings, {"trend.orders|orders": "2025-03-02"}, D, D)
    ongoing, new, quiet = findings
    assert (ongoing.first_seen, ongoing.days_open, ongoing.state) == ("2025-03-02", 4, "ongoing")
    assert (new.first_seen, new.days_open, new.state) == ("2025-03-05", 1, "new")
    assert quiet.state is None  # a passing check is no incident
    assert counts(findings) == {"new": 1, "ongoing": 1, "acknowledged": 0}


def test_the_same_id_about_another_metric_is_another_incident():
    finding = f("segment.channel", metric="Paid Search")
    track([finding], {"segment.channel|Organic Search": "2025-03-04"}, D, D)
    assert finding.state == "new"


def test_a_multi_day_report_dates_an_incident_from_its_first_flagged_day():
    finding = f()
    finding.dates = ["2025-03-02", "2025-03-03", "2025-03-05"]
    track([finding], {}, date(2025, 3, 1), D)
    assert (finding.first_seen, finding.days_open, finding.state) == ("2025-03-02", 4, "ongoing")
    earlier = f()
    earlier.dates = ["2025-03-02", "2025-03-03"]
    track([earlier], {}, date(2025, 3, 1), D)
    assert (earlier.state, earlier.days_open) == ("earlier", 2)  # 03-02 and 03-03, not up to 03-05


def test_previous_report_is_the_day_before_in_the_runs_layout(tmp_path):
    runs = tmp_path / "runs"
    (runs / "2025-03-04").mkdir(parents=True)
    report = runs / "2025-03-04" / "monitoring_report.json"
    report.write_text(
        json.dumps(
            {
                "findings": [
                    {
                        "id": "trend.orders",
                        "metric": "orders",
                        "severity": "warn",
                        "dates": ["2025-03-04"],
                        "first_seen": "2025-03-01",
                    },
                    {"id": "trend.aov", "metric": "aov", "severity": "pass", "dates": []},
                ]
            }
        )
    )
    found = previous_report(runs / "2025-03-05", D, "monitoring_report.json")
    assert found == report
    assert open_incidents(found) == {"trend.orders|orders": "2025-03-01"}
    assert previous_report(tmp_path / "reports", D, "monitoring_report.json") is None  # not a runs/<date> dir
    assert previous_report(runs / "2025-03-07", date(2025, 3, 7), "monitoring_report.json") is None  # a gap


def test_an_acknowledged_finding_is_info_until_it_expires():
    finding = f("segment.channel", metric="Organic Search")
    acknowledge([finding], acks(ACK), D, today=date(2025, 6, 30))
    assert finding.severity == "info"
    assert finding.acknowledged == {
        "reason": "referrer column gone",
        "owner": "ana@puffy.com",
        "expires": "2025-06-30",
        "severity": "warn",
        "dates": ["2025-03-05"],
    }
    assert "acknowledged by ana@puffy.com until 2025-06-30" in finding.message


def test_an_expired_acknowledgement_gives_the_finding_back():
    finding = f("segment.channel", metric="Organic Search", severity="error")
    acknowledge([finding], acks(ACK), D, today=date(2025, 7, 1))
    assert finding.severity == "error" and finding.acknowledged is None
    assert "expired on 2025-06-30" in finding.message


@pytest.mark.parametrize(
    "finding, scope",
    [
        (f("segment.channel", metric="Paid Search"), {}),  # another channel
        (f("trend.orders"), {}),  # another check
        (f("segment.channel", metric="Organic Search"), {"dates": ["2025-03-06", "2025-03-31"]}),  # before its dates
    ],
)
def test_an_acknowledgement_covers_only_its_check_metric_and_dates(finding, scope):
    acknowledge([finding], acks({**ACK, **scope}), D, today=D)
    assert finding.severity == "warn"


def test_a_family_pattern_covers_every_check_of_the_family():
    findings = [f("bots.share", metric="share"), f("bots.checkout_events", metric="checkout_event_count")]
    acknowledge(findings, acks({**ACK, "check": "bots.*", "metric": None}), D, today=D)
    assert [x.severity for x in findings] == ["info", "info"]


def test_the_shipped_file_validates_and_a_bad_one_is_a_one_line_error(tmp_path):
    from puffy.params import DEFAULT_PARAMS_DIR

    assert load_acknowledgements(DEFAULT_PARAMS_DIR).acknowledged == []
    assert load_acknowledgements(tmp_path).acknowledged == []  # no file, no acknowledgements
    (tmp_path / "acknowledged.yaml").write_text("acknowledged:\n  - check: bots.share\n    reason: known\n")
    with pytest.raises(ParamsError) as err:
        load_acknowledgements(tmp_path)
    assert "acknowledged.yaml" in str(err.value) and "\n" not in str(err.value)
