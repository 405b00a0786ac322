"""Each data-quality check fires on a tiny hand-built export and stays quiet on a clean one.

A clean export is five small days (120 page views, a short funnel, three orders a day), built in
``tmp_path``; each test breaks one thing on the last day (or across days) and looks for the
finding id, its severity and its dates. Thresholds come from ``params/dq_rules.yaml`` with a few
test overrides (the clean days are far smaller than the data dictionary's volumes).
"""

from __future__ import annotations

import copy
import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from puffy.dq.gate import _scratch_connection, run_gate
from puffy.dq.metrics import day_event_metrics
from puffy.dq.rules import DqRules
from puffy.errors import InputDataError, ParamsError
from puffy.params import DEFAULT_PARAMS_DIR, PipelineParams

COLUMNS = ["client_id", "page_url", "referrer", "timestamp", "event_name", "event_data", "user_agent"]
DAYS = [date(2025, 3, 1) + timedelta(days=i) for i in range(5)]
LAST = DAYS[-1]
NOW = datetime(2025, 4, 1, tzinfo=UTC)
HUMAN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36"
)
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
# Keep the clean export quiet: it is far smaller than the dictionary's 2,000-2,500 events a day,
# and its purchase event is the contract's.
TEST_RULES = {"dictionary_daily_events": [100, 1000], "contract": {"dictionary_purchase_event": "checkout_completed"}}


def client(i: int) -> str:
    return f"{1740000000 + i}-cccccc{i:06d}"


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def order_payload(tx: str, prices: list[float | None], revenue="sum") -> str:
    items = [
        {"item_id": f"SKU-{i}", "item_name": f"Item {i}", "item_variant": "Std", "quantity": 1, "item_price": p}
        for i, p in enumerate(prices)
    ]
    data = {
        "transaction_id": tx,
        "revenue": sum(p or 0 for p in prices) if revenue == "sum" else revenue,
        "items": items,
        "user_email": "e" * 64,
    }
    if revenue is None:
        del data["revenue"]
    return json.dumps(data)


def clean_day(day: date) -> list[dict]:
    start = datetime(day.year, day.month, day.day)
    rows = []

    def add(i, minute, event, url="https://puffy.com/products/puffy-mattress", referrer="", data=""):
        rows.append(
            {
                "client_id": client(i),
                "page_url": url,
                "referrer": referrer,
                "timestamp": iso(start + timedelta(minutes=minute, seconds=i % 60)),
                "event_name": event,
                "event_data": data,
                "user_agent": HUMAN,
            }
        )

    for i in range(120):
        url = f"https://puffy.com/p{i % 7}" + ("?utm_source=26CAE7&utm_medium=76E084" if i % 3 == 0 else "")
        referrer = "https://www.google.com/" if i % 4 == 0 else ("https://source-603bdc25.com/" if i % 8 == 1 else "")
        add(i, 2 * i, "page_viewed", url, referrer)
    for i in range(10):
        add(i, 300 + i, "product_added_to_cart")
    for i in range(6):
        add(i, 400 + i, "checkout_started")
    for i in range(4):
        add(i, 500 + i, "email_filled_on_popup", data=json.dumps({"user_email": "f" * 64}))
    for k in range(3):
        add(k, 600 + k, "checkout_completed", data=order_payload(f"ORD-{day:%Y%m%d}-{k:03d}", [1000.0 + k, 99.0]))
    return sorted(rows, key=lambda r: r["timestamp"])


@pytest.fixture(scope="module")
def clean() -> dict[date, list[dict]]:
    return {d: clean_day(d) for d in DAYS}


@pytest.fixture
def export(clean):
    """A fresh, mutable copy of the clean export: {day: rows}."""
    return copy.deepcopy(clean)


def write_export(directory: Path, days: dict[date, list[dict]], headers: dict[date, list[str]] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for day, rows in days.items():
        header = (headers or {}).get(day, COLUMNS)
        with open(directory / f"events_{day:%Y%m%d}.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            canonical = [{"clientId": "client_id"}.get(h, h) for h in header]
            w.writerows([[r.get(c, "x") for c in canonical] for r in rows])
    return directory


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def rules_file(tmp_path: Path, overrides: dict | None = None) -> Path:
    data = yaml.safe_load((DEFAULT_PARAMS_DIR / "dq_rules.yaml").read_text())
    data = deep_merge(deep_merge(data, TEST_RULES), overrides or {})
    path = tmp_path / "dq_rules.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def gate(tmp_path, days, rules=None, headers=None, **kw):
    raw = write_export(tmp_path / "raw", days, headers)
    return run_gate(raw, rules_file(tmp_path, rules), tmp_path / "out", now=NOW, **kw)


def finding(result, fid):
    return next(f for f in result.findings if f.id == fid)


def raised(result) -> dict[str, str]:
    return {f.id: f.severity for f in result.findings if f.severity != "pass"}


def iso_days(*days: date) -> list[str]:
    return [d.isoformat() for d in days]


def views(rows):
    return [r for r in rows if r["event_name"] == "page_viewed"]


def orders(rows):
    return [r for r in rows if r["event_name"] == "checkout_completed"]


# ------------------------------------------------------------------------------------------
# The clean export


def test_clean_export_passes(tmp_path, export):
    result = gate(tmp_path, export)
    assert result.status == "pass"
    # The first days have no trailing baseline: an INFO, which never fails the gate.
    assert raised(result) == {"volume.insufficient_history": "info"}
    assert finding(result, "volume.insufficient_history").dates == iso_days(*DAYS[:3])


# ------------------------------------------------------------------------------------------
# ingest


def test_reconciliation_gap_and_malformed_lines(tmp_path, export):
    raw = write_export(tmp_path / "raw", export)
    path = raw / f"events_{LAST:%Y%m%d}.csv"
    lines = path.read_text().splitlines()
    lines.insert(5, lines[5] + ",surplus")  # too many fields
    # One event over two physical lines (a quoted line break): one row for two lines, a gap.
    lines.append('1740000000-cccccc000003,https://puffy.com/,,2025-03-05T23:58:40.000Z,page_viewed,,"two\nlines"')
    # An unterminated quote swallows the next line: that line is read again, so it is no gap.
    lines.append('1740000000-cccccc000001,https://puffy.com/,,2025-03-05T23:59:00.000Z,page_viewed,,"open quote')
    lines.append("1740000000-cccccc000002,https://puffy.com/,,2025-03-05T23:59:30.000Z,page_viewed,,swallowed")
    path.write_text("\n".join(lines) + "\n")
    result = run_gate(raw, rules_file(tmp_path), tmp_path / "out", now=NOW)
    recon = finding(result, "ingest.reconciliation")
    assert (recon.severity, recon.dates, recon.value) == ("error", iso_days(LAST), 1)
    malformed = finding(result, "ingest.malformed_lines")
    assert malformed.severity == "error" and malformed.dates == iso_days(LAST)  # 2 of ~145 lines >= 1%
    assert {r["reason"] for r in malformed.sample_rows} == {"too_many_columns", "unquoted_value"}
    assert result.report["reconciliation"]["ok"] is False


def test_missing_file_in_range(tmp_path, export):
    del export[DAYS[2]]
    result = gate(tmp_path, export, start=DAYS[0], end=LAST)
    f = finding(result, "ingest.missing_file")
    assert (f.severity, f.dates) == ("error", iso_days(DAYS[2]))


def test_a_closed_period_without_files_is_graded_as_missing_days(tmp_path, export):
    result = gate(tmp_path, export, start=date(2024, 1, 1), end=date(2024, 1, 2))
    assert result.status == "error" and result.days == []
    assert finding(result, "ingest.missing_file").dates == ["2024-01-01", "2024-01-02"]


def test_baselines_end_the_day_before_start_even_when_start_has_no_file(tmp_path, export):
    """DAYS[2] has no file: gating DAYS[2]..LAST with a one-day baseline window reads DAYS[1], the
    day before start, not DAYS[2] (the day before the first file in range, which has none)."""
    del export[DAYS[2]]
    result = gate(tmp_path, export, rules={"baseline_days": 1, "min_baseline_days": 1}, start=DAYS[2], end=LAST)
    assert result.baseline_days == [DAYS[1]]
    assert finding(result, "ingest.missing_file").dates == iso_days(DAYS[2])


def test_an_open_period_without_files_is_an_input_error(tmp_path, export):
    with pytest.raises(InputDataError):
        gate(tmp_path, export, start=date(2030, 1, 1))


# ------------------------------------------------------------------------------------------
# schema


def test_header_rename_vs_contract_and_previous_day(tmp_path, export):
    renamed = ["clientId"] + COLUMNS[1:]
    result = gate(tmp_path, export, headers={DAYS[3]: renamed, LAST: renamed})
    f = finding(result, "schema.column_renamed")
    assert (f.severity, f.dates) == ("warn", iso_days(DAYS[3], LAST))
    assert finding(result, "schema.day_over_day_renamed").dates == iso_days(DAYS[3])
    assert finding(result, "schema.column_missing").severity == "pass"
    assert result.status == "warn"


def test_missing_and_extra_columns(tmp_path, export):
    header = [c for c in COLUMNS if c != "referrer"] + ["campaign"]
    result = gate(tmp_path, export, headers={LAST: header})
    # A nullable column gone is processable (WARN); a required one makes the file unreadable.
    assert (finding(result, "schema.column_missing").severity, finding(result, "schema.column_missing").dates) == (
        "warn",
        iso_days(LAST),
    )
    assert "referrer" in finding(result, "schema.column_missing").message
    assert finding(result, "schema.column_extra").dates == iso_days(LAST)
    assert finding(result, "schema.day_over_day_dropped").dates == iso_days(LAST)
    assert finding(result, "schema.day_over_day_added").dates == iso_days(LAST)
    # No referrer column is not a referrer-share drift: the day is left out of that comparison.
    assert finding(result, "referrer.coverage").severity == "pass"


def test_unreadable_file(tmp_path, export):
    raw = write_export(tmp_path / "raw", export)
    (raw / f"events_{LAST:%Y%m%d}.csv").write_bytes(b"")
    result = run_gate(raw, rules_file(tmp_path), tmp_path / "out", now=NOW)
    f = finding(result, "schema.unreadable_file")
    assert (f.severity, f.dates) == ("error", iso_days(LAST))


def test_missing_column_severity_comes_from_yaml(tmp_path, export):
    header = [c for c in COLUMNS if c != "referrer"]
    result = gate(tmp_path, export, headers={LAST: header}, rules={"schema": {"missing_column": "warn"}})
    assert finding(result, "schema.column_missing").severity == "warn"


# ------------------------------------------------------------------------------------------
# taxonomy


def test_unknown_events(tmp_path, export):
    for r in views(export[LAST])[:5]:
        r["event_name"] = "purchase"
    result = gate(tmp_path, export)
    f = finding(result, "taxonomy.unknown_event")
    assert (f.severity, f.dates) == ("error", iso_days(LAST))  # 5 of ~143 rows >= 1%
    assert all("purchase" in r["detail"] for r in f.sample_rows)


def test_expected_event_absent(tmp_path, export):
    export[LAST] = [r for r in export[LAST] if r["event_name"] != "checkout_completed"]
    result = gate(tmp_path, export)
    f = finding(result, "taxonomy.event_absent")
    assert (f.severity, f.dates) == ("warn", iso_days(LAST))
    assert "checkout_completed" in f.message


def test_dictionary_purchase_name_and_volume(tmp_path, export):
    rules = {"contract": {"dictionary_purchase_event": "purchase"}, "dictionary_daily_events": [2000, 2500]}
    result = gate(tmp_path, export, rules=rules)
    # A standing fact about the dictionary, not about the days: INFO, which never fails the gate.
    name = finding(result, "taxonomy.dictionary_purchase_name")
    assert (name.severity, name.dates) == ("info", iso_days(*DAYS))
    volume = finding(result, "taxonomy.dictionary_daily_volume")
    assert (volume.severity, volume.dates) == ("info", iso_days(*DAYS))
    assert result.status == "pass"


def test_dictionary_purchase_name_quiet_when_the_dictionary_name_occurs(tmp_path, export):
    export[LAST][0]["event_name"] = "purchase"
    result = gate(tmp_path, export, rules={"contract": {"dictionary_purchase_event": "purchase"}})
    assert finding(result, "taxonomy.dictionary_purchase_name").severity == "pass"


# ------------------------------------------------------------------------------------------
# timestamps


def test_unparseable_outside_day_and_future_timestamps(tmp_path, export):
    pv = views(export[LAST])
    pv[0]["timestamp"] = "05/03/2025 10:00"
    pv[1]["timestamp"] = "2025-03-06T00:00:01.000Z"
    result = gate(tmp_path, export)
    assert finding(result, "timestamps.unparseable").dates == iso_days(LAST)
    assert finding(result, "timestamps.outside_file_day").dates == iso_days(LAST)
    assert finding(result, "timestamps.future").severity == "pass"
    # The same export seen from the middle of the last day: its afternoon is in the future.
    raw = tmp_path / "raw"
    early = run_gate(raw, rules_file(tmp_path), tmp_path / "out2", now=datetime(2025, 3, 5, 2, 0, tzinfo=UTC))
    f = finding(early, "timestamps.future")
    assert (f.severity, f.dates) == ("error", iso_days(LAST))


def test_day_coverage_flags_a_file_cut_short_and_one_starting_late(tmp_path, export):
    """Every day but LAST gets a last event at 23:30 (a 0.5 h tail); LAST stops at its 10:02:02
    purchase (13.97 h before midnight: ERROR). DAYS[1] loses its events before 02:30, so it starts
    with the page view at 02:30:15 (2.50 h: WARN). The clean days begin at 00:00:00 (0 h)."""
    for day, rows in export.items():
        if day != LAST:
            rows.append({**rows[0], "timestamp": f"{day.isoformat()}T23:30:00.000Z"})
    export[DAYS[1]] = [r for r in export[DAYS[1]] if r["timestamp"] >= f"{DAYS[1].isoformat()}T02:30"]
    result = gate(tmp_path, export, rules={"timestamps": {"edge_gap_min_events": 50}})
    f = finding(result, "timestamps.day_coverage")
    assert (f.severity, f.dates) == ("error", iso_days(DAYS[1], LAST))
    assert [(r["date"], r["severity"], round(r["value"], 2)) for r in f.daily] == [
        (DAYS[1].isoformat(), "warn", 2.5),
        (LAST.isoformat(), "error", 13.97),
    ]
    assert f"{DAYS[1]}: no event before 02:30 UTC (2.5 h into the day)" in f.message
    assert f"{LAST}: no event after 10:02 UTC (14.0 h before the day ends)" in f.message
    # Days with fewer events than edge_gap_min_events are not graded (the clean export has 143 a day).
    assert finding(gate(tmp_path / "default", export), "timestamps.day_coverage").severity == "pass"


def test_unsorted_file_is_info_only(tmp_path, export):
    rows = export[LAST]
    rows[3], rows[10] = rows[10], rows[3]
    result = gate(tmp_path, export)
    f = finding(result, "timestamps.unsorted")
    assert (f.severity, f.dates) == ("info", iso_days(LAST))
    assert result.status == "pass"


# ------------------------------------------------------------------------------------------
# client ids


def null_ids(rows, share: float):
    pv = views(rows)
    for r in pv[: round(len(pv) * share)]:
        r["client_id"] = ""


def test_client_id_null_spike_is_an_error_with_dates(tmp_path, export):
    null_ids(export[LAST], 0.3)  # above the default error level of 25%
    result = gate(tmp_path, export)
    f = finding(result, "client_id.null_rate")
    assert (f.severity, f.dates) == ("error", iso_days(LAST))
    assert f.daily == [{"date": LAST.isoformat(), "value": pytest.approx(0.3, abs=0.01), "severity": "error"}]
    assert "page_viewed" in f.message
    assert finding(result, "client_id.null_rate_vs_baseline").severity == "warn"  # error level off by default
    assert len(f.sample_rows) == 5 and all(r["event_name"] == "page_viewed" for r in f.sample_rows)


def test_client_id_null_thresholds_come_from_yaml(tmp_path, export):
    null_ids(export[LAST], 0.05)
    assert finding(gate(tmp_path / "a", export), "client_id.null_rate").severity == "warn"
    stricter = {"client_ids": {"null_rate": {"warn": 0.01, "error": 0.04}}}
    f = finding(gate(tmp_path / "b", export, rules=stricter), "client_id.null_rate")
    assert f.severity == "error" and f.thresholds == {"warn": 0.01, "error": 0.04}


def test_client_id_format(tmp_path, export):
    pv = views(export[LAST])
    pv[0]["client_id"] = "not-a-cookie-id"
    pv[1]["client_id"] = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"  # UUIDs are valid
    result = gate(tmp_path, export)
    f = finding(result, "client_id.bad_format")
    assert (f.severity, f.dates) == ("warn", iso_days(LAST))
    assert [r["client_id"] for r in f.sample_rows] == ["not-a-cookie-id"]


# ------------------------------------------------------------------------------------------
# duplicates


def test_exact_duplicate_and_same_key_rows(tmp_path, export):
    rows = export[LAST]
    rows.append(dict(views(rows)[10]))  # exact copy
    near = dict(views(rows)[20], page_url="https://puffy.com/other")  # same client, time, event
    rows.append(near)
    export[LAST] = sorted(rows, key=lambda r: r["timestamp"])
    result = gate(tmp_path, export)
    assert finding(result, "duplicates.exact_row").dates == iso_days(LAST)
    assert finding(result, "duplicates.exact_row").severity == "warn"
    same = finding(result, "duplicates.same_key")
    assert (same.severity, same.dates) == ("warn", iso_days(LAST))  # 2 of ~145 events >= 0.5%
    assert "2 rows in 1 group" in same.message


def test_transaction_id_replay_vs_collision(tmp_path, export):
    first, second, _ = orders(export[LAST])
    replay = dict(first, timestamp=first["timestamp"].replace("T10:", "T11:"))  # same client, same payload
    collision = dict(
        second,
        client_id=client(99),
        timestamp=second["timestamp"].replace("T10:", "T12:"),
        event_data=second["event_data"].replace("1001.0", "1500.0"),
    )
    export[LAST] = sorted(export[LAST] + [replay, collision], key=lambda r: r["timestamp"])
    result = gate(tmp_path, export)
    rep = finding(result, "duplicates.transaction_id_replay")
    col = finding(result, "duplicates.transaction_id_collision")
    assert rep.severity in ("warn", "error") and rep.dates == iso_days(LAST)
    assert col.severity in ("warn", "error") and col.dates == iso_days(LAST)
    assert {r["transaction_id"] for r in rep.sample_rows} == {f"ORD-{LAST:%Y%m%d}-000"}
    assert {r["transaction_id"] for r in col.sample_rows} == {f"ORD-{LAST:%Y%m%d}-001"}


def test_collision_with_same_client_but_other_payload(tmp_path, export):
    first = orders(export[LAST])[0]
    again = dict(
        first,
        timestamp=first["timestamp"].replace("T10:", "T13:"),
        event_data=first["event_data"].replace("1000.0", "1200.0"),
    )
    export[LAST].append(again)
    result = gate(tmp_path, export)
    assert finding(result, "duplicates.transaction_id_collision").dates == iso_days(LAST)
    assert finding(result, "duplicates.transaction_id_replay").severity == "pass"


# ------------------------------------------------------------------------------------------
# payloads


def _set_payload(payload: str):
    def apply(rows):
        orders(rows)[0]["event_data"] = payload

    return apply


PAYLOAD_CASES = {
    "payload.invalid_json": _set_payload('{"transaction_id": "ORD-X", "revenue": 10,'),
    "payload.revenue_missing": _set_payload(order_payload("ORD-M", [10.0], revenue=None)),
    "payload.revenue_non_numeric": _set_payload(order_payload("ORD-S", [10.0], revenue="10.00")),
    "payload.revenue_negative": _set_payload(order_payload("ORD-N", [-10.0])),
    "payload.revenue_zero": _set_payload(
        json.dumps(
            {
                "transaction_id": "ORD-Z",
                "revenue": 0,
                "user_email": "e",
                "items": [
                    {"item_id": None, "item_name": None, "item_variant": None, "quantity": None, "item_price": None}
                ],
            }
        )
    ),
    "payload.revenue_item_mismatch": _set_payload(order_payload("ORD-D", [10.0, 5.0], revenue=20)),
    "payload.items_missing": _set_payload(json.dumps({"transaction_id": "ORD-E", "revenue": 5, "items": []})),
    "payload.item_price_missing": _set_payload(order_payload("ORD-P", [None, None], revenue=1099)),
    "payload.item_fields_missing": _set_payload(order_payload("ORD-F", [10.0]).replace('"SKU-0"', "null")),
    "payload.revenue_non_integer": _set_payload(order_payload("ORD-I", [421.6])),
}


@pytest.mark.parametrize("fid", sorted(PAYLOAD_CASES))
def test_payload_checks(tmp_path, export, fid):
    PAYLOAD_CASES[fid](export[LAST])
    result = gate(tmp_path, export)
    f = finding(result, fid)
    expected = "info" if fid == "payload.revenue_non_integer" else ("warn", "error")
    assert f.severity in expected and f.dates == iso_days(LAST), (fid, f)
    # Each case trips its own check only (among the payload checks).
    others = {k: v for k, v in raised(result).items() if k.startswith("payload.") and k != fid}
    assert others == {}, others


def test_zero_revenue_counts_all_null_items(tmp_path, export):
    PAYLOAD_CASES["payload.revenue_zero"](export[LAST])
    f = finding(gate(tmp_path, export), "payload.revenue_zero")
    assert "1 of them with a single all-null item" in f.message


# ------------------------------------------------------------------------------------------
# volume, bots, referrer


def test_volume_jump_vs_baseline(tmp_path, export):
    extra = [dict(r, client_id=client(1000 + i)) for i, r in enumerate(views(export[LAST]) * 2)]
    export[LAST] = sorted(export[LAST] + extra, key=lambda r: r["timestamp"])
    result = gate(tmp_path, export)
    daily = finding(result, "volume.daily_events")
    assert (daily.severity, daily.dates) == ("warn", iso_days(LAST))
    per_event = finding(result, "volume.event_name")
    assert per_event.dates == iso_days(LAST) and "page_viewed" in per_event.message


def test_bot_share_and_bot_checkouts(tmp_path, export):
    rows = export[LAST]
    for r in views(rows)[:30]:
        r["user_agent"] = BOT
    next(r for r in rows if r["event_name"] == "checkout_started")["user_agent"] = BOT
    result = gate(tmp_path, export)
    share = finding(result, "bots.share")
    assert (share.severity, share.dates) == ("warn", iso_days(LAST))
    assert share.sample_rows[0]["bot_name"] == "Googlebot"
    checkout = finding(result, "bots.checkout_events")
    assert (checkout.severity, checkout.value, checkout.dates) == ("warn", 1, iso_days(LAST))


def test_referrer_and_utm_drift(tmp_path, export):
    for r in views(export[LAST]):
        r["referrer"] = "https://source-603bdc25.com/"
        r["page_url"] = r["page_url"].split("?")[0]
    result = gate(tmp_path, export)
    # Drift is reported but never stops the run by default (error level off).
    assert finding(result, "referrer.coverage").severity == "warn"
    assert finding(result, "referrer.anonymised_share").severity == "warn"
    assert finding(result, "referrer.utm_coverage").severity == "warn"
    assert all(
        finding(result, i).dates == iso_days(LAST)
        for i in ("referrer.coverage", "referrer.anonymised_share", "referrer.utm_coverage")
    )


# ------------------------------------------------------------------------------------------
# gate: status, reports, baselines, staging, rules


def test_status_is_the_worst_finding_and_info_never_fails(tmp_path, export):
    null_ids(export[LAST], 0.3)
    result = gate(tmp_path, export)
    assert result.status == "error"
    data = json.loads(result.report_paths["json"].read_text())
    assert data["status"] == "error" and "client_id.null_rate" in data["message"]


def test_report_json_and_markdown(tmp_path, export):
    null_ids(export[LAST], 0.2)
    result = gate(tmp_path, export)
    data = json.loads(result.report_paths["json"].read_text())
    assert set(data) >= {
        "status",
        "generated_at",
        "input_dir",
        "period",
        "files",
        "rejects",
        "reconciliation",
        "findings",
    }
    assert data["period"] == {"start": DAYS[0].isoformat(), "end": LAST.isoformat()}
    assert data["reconciliation"]["ok"] and data["reconciliation"]["lines_read"] == sum(len(r) for r in export.values())
    f0 = data["files"][0]
    assert set(f0) >= {
        "name",
        "date",
        "lines_read",
        "events",
        "rejects_by_reason",
        "header",
        "renamed",
        "missing",
        "extra",
        "bom",
        "crlf",
    }
    f = next(x for x in data["findings"] if x["id"] == "client_id.null_rate")
    assert set(f) >= {
        "id",
        "check",
        "severity",
        "title",
        "metric",
        "value",
        "thresholds",
        "dates",
        "files",
        "sample_rows",
        "message",
    }
    assert f["check"] == "client_id" and len(f["sample_rows"]) <= 5
    md = result.report_paths["md"].read_text()
    for section in (
        "## What happened",
        "## Findings",
        "## What the findings mean downstream",
        "## Files",
        "## Rejected lines by reason",
    ):
        assert section in md
    assert f"**From {LAST.isoformat()}**" in md or f"**On {LAST.isoformat()}**" in md


def test_reports_are_deterministic_except_generated_at(tmp_path, export):
    null_ids(export[LAST], 0.2)
    raw = write_export(tmp_path / "raw", export)
    rules = rules_file(tmp_path)
    docs = []
    for out in ("a", "b"):
        r = run_gate(raw, rules, tmp_path / out, now=NOW)
        data = json.loads(r.report_paths["json"].read_text())
        data.pop("generated_at")
        docs.append(data)
    assert docs[0] == docs[1]


def test_baseline_days_are_read_before_start(tmp_path, export):
    null_ids(export[LAST], 0.2)
    result = gate(tmp_path, export, start=LAST, end=LAST)
    assert result.days == [LAST]
    assert result.baseline_days == DAYS[:-1]
    assert result.report["baseline"]["days"] == iso_days(*DAYS[:-1])
    assert finding(result, "client_id.null_rate_vs_baseline").dates == iso_days(LAST)
    assert [f["name"] for f in result.files] == [f"events_{LAST:%Y%m%d}.csv"]


def test_staging_partitions_only_for_days_in_range(tmp_path, export):
    staging = tmp_path / "intermediate"
    gate(tmp_path, export, start=DAYS[3], end=LAST, staging_root=staging)
    written = sorted(p.name for p in (staging / "stg_events").iterdir())
    assert written == [f"date={DAYS[3].isoformat()}", f"date={LAST.isoformat()}"]


def test_the_scratch_database_is_not_checkpointed_when_it_closes(tmp_path):
    # Closing checkpoints a DuckDB file (writes the WAL's changes into it, then drops the WAL); the
    # gate's scratch file is thrown away, and at 50x that checkpoint cost 4 CPU-s and 0.46 GB.
    con = _scratch_connection(PipelineParams(duckdb_temp_directory=tmp_path), data_bytes=10**12)  # a file
    database = next(tmp_path.glob("puffy-*/scratch.duckdb"))
    con.execute("CREATE TABLE t AS SELECT range::VARCHAR AS a FROM range(100000)")
    con.execute("DELETE FROM t WHERE a LIKE '1%'")
    con.close()
    assert database.with_name("scratch.duckdb.wal").stat().st_size > 0  # left as it was, not checkpointed


def test_daily_summary_for_the_notebook(tmp_path, export):
    null_ids(export[LAST], 0.3)
    result = gate(tmp_path, export)
    d = result.daily
    assert list(d["date"]) == DAYS
    assert d.loc[d.date == LAST, "status"].item() == "error"
    assert d.loc[d.date == LAST, "page_view_null_rate"].item() == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"client_ids": {"null_rte": {"warn": 0.1}}}, "unknown key 'client_ids.null_rte'"),
        ({"client_ids": {"null_rate": {"warn": 0.5, "error": 0.1}}}, "client_ids.null_rate"),
        ({"schema": {"missing_column": "fatal"}}, "schema.missing_column"),
    ],
)
def test_bad_rules_are_one_line_params_errors(tmp_path, overrides, message):
    with pytest.raises(ParamsError) as err:
        run_gate(tmp_path, rules_file(tmp_path, overrides), tmp_path / "out")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_shipped_rules_validate_and_match_the_model_defaults():
    rules = DqRules.model_validate(yaml.safe_load((DEFAULT_PARAMS_DIR / "dq_rules.yaml").read_text()))
    assert rules.dictionary_daily_events == (2000, 2500)
    assert rules.model_dump() == DqRules().model_dump()  # the YAML documents the real defaults


# ------------------------------------------------------------------------------------------
# The generated sample: every injected fault is found, on the days it was injected


FAULT_FINDINGS = {
    "bots": "bots.share",
    "client_id_rename": "schema.column_renamed",
    "exact_duplicate_rows": "duplicates.exact_row",
    "item_price_null": "payload.item_price_missing",
    "non_integer_revenue": "payload.revenue_non_integer",
    "referrer_dropped": "schema.column_missing",
    "same_key_duplicates": "duplicates.same_key",
    "transaction_id_collisions": "duplicates.transaction_id_collision",
    "transaction_id_replays": "duplicates.transaction_id_replay",
    "zero_revenue_orders": "payload.revenue_zero",
}


def test_generated_sample_faults_are_found_with_their_dates(small_sample, tmp_path):
    truth = json.loads((small_sample / "_truth" / "faults.json").read_text())
    result = run_gate(small_sample, DEFAULT_PARAMS_DIR / "dq_rules.yaml", tmp_path, now=NOW)
    for fault in truth["faults"]:
        if fault["name"] == "client_id_nulls":  # ~1% missing ids is normal: only the spike days are findings
            expected = sorted(d for d, share in fault["share_by_date"].items() if share >= 0.03)
            fid = "client_id.null_rate"
        else:
            expected, fid = sorted(set(fault["dates"])), FAULT_FINDINGS[fault["name"]]
        assert finding(result, fid).dates == expected, fault["name"]


@pytest.mark.parametrize(
    "content",
    [
        "",  # an empty file: no header either
        "client_id,page_url,referrer,timestamp,event_name,event_data,user_agent\n",  # a header only
    ],
)
def test_a_day_without_data_is_an_error_not_a_crash(tmp_path, content):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events_20250301.csv").write_text(content)
    result = run_gate(raw, rules_file(tmp_path), tmp_path / "out", now=NOW)
    assert result.status == "error"
    fid = "schema.unreadable_file" if not content else "ingest.missing_file"
    assert finding(result, fid).severity == "error" and finding(result, fid).dates == ["2025-03-01"]


def test_a_file_without_user_agents_is_graded(tmp_path):
    """No user_agent column at all: a WARN on the schema, and the bot checks still run (on nothing)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events_20250301.csv").write_text(
        "client_id,page_url,referrer,timestamp,event_name,event_data\n"
        "1740000000-aaaaaaaaaaaa,https://puffy.com/,,2025-03-01T10:00:00.000Z,page_viewed,\n"
    )
    result = run_gate(raw, rules_file(tmp_path), tmp_path / "out", now=NOW)
    assert finding(result, "schema.column_missing").severity == "warn"
    assert finding(result, "bots.share").severity == "pass"


# ------------------------------------------------------------------------------------------
# materiality: what the day's published numbers would lose, in orders, revenue and sessions.
# The clean day has 3 orders of 1,099 + 1,100 + 1,101 = 3,300 and 120 clients.


def test_a_broken_purchase_payload_is_an_error_weighed_in_orders_and_money(tmp_path, export):
    # The first order's JSON is cut after its revenue: 1 of 3 orders (33.3%) and 1,099 of 3,300
    # (33.3%) would be missing. As a payload rate it is 1 of the day's 7 order/email events.
    orders(export[LAST])[0]["event_data"] = '{"transaction_id": "ORD-X", "revenue": 1099, "items": [{"item'
    result = gate(tmp_path, export)
    lost_orders, lost_revenue = finding(result, "materiality.orders_lost"), finding(result, "materiality.revenue_lost")
    assert (lost_orders.severity, lost_orders.dates, lost_orders.value) == ("error", iso_days(LAST), round(1 / 3, 6))
    assert (lost_revenue.severity, lost_revenue.value) == ("error", round(1099 / 3300, 6))
    assert "$1,099.00" in lost_revenue.message
    assert result.status == "error"


def test_an_unreadable_purchase_is_priced_at_the_days_average_order(tmp_path, export):
    # No revenue survives: the loss is priced at the kept orders' mean (1,100 + 1,101) / 2 = 1,100.50.
    orders(export[LAST])[0]["event_data"] = "{not json"
    f = finding(gate(tmp_path, export), "materiality.revenue_lost")
    assert f.severity == "error" and "$1,100.50" in f.message and "average order value" in f.message
    assert f.value == round(1100.5 / (2201 + 1100.5), 6)


def test_a_day_without_purchases_is_an_error_when_its_baseline_has_them(tmp_path, export):
    export[LAST] = [r for r in export[LAST] if r["event_name"] != "checkout_completed"]
    result = gate(tmp_path, export)
    f = finding(result, "materiality.no_purchases")
    assert (f.severity, f.dates) == ("error", iso_days(LAST))
    assert "trailing median 3 a day" in f.message
    # With a baseline below the minimum it is not judged.
    quiet = gate(tmp_path / "q", export, rules={"materiality": {"no_purchases_min_baseline": 4}})
    assert finding(quiet, "materiality.no_purchases").severity == "pass"


def test_a_row_stamped_years_ahead_is_a_future_timestamp_error_although_rejected(tmp_path, export):
    views(export[LAST])[5]["timestamp"] = "2031-03-05T10:00:00.000Z"
    result = gate(tmp_path, export)
    assert finding(result, "timestamps.outside_file_day").severity == "warn"  # 1 of 143 rows
    future = finding(result, "timestamps.future")
    assert (future.severity, future.dates) == ("error", iso_days(LAST))
    # 1 of the day's 120 clients lost a row: 0.8%, below the 1% error level.
    at_risk = finding(result, "materiality.sessions_at_risk")
    assert (at_risk.severity, at_risk.value) == ("warn", round(1 / 120, 6))


def test_rows_lost_from_two_clients_put_their_sessions_at_risk(tmp_path, export):
    for row in views(export[LAST])[:2]:
        row["event_name"] = "page_vieweed"  # rejected as unknown; 2 of 120 clients = 1.7%
    at_risk = finding(gate(tmp_path, export), "materiality.sessions_at_risk")
    assert (at_risk.severity, at_risk.value) == ("error", round(2 / 120, 6))


def test_exact_duplicates_lose_nothing(tmp_path, export):
    export[LAST].append(dict(views(export[LAST])[3]))
    result = gate(tmp_path, export)
    assert finding(result, "duplicates.exact_row").severity == "warn"
    assert {fid: s for fid, s in raised(result).items() if fid.startswith("materiality.")} == {}


def test_page_url_and_user_agent_coverage(tmp_path, export):
    for row in views(export[LAST])[:2]:
        row["user_agent"] = ""  # 2 of the day's 143 events: 1.4%, at or above the 1% warn level
    views(export[LAST])[2]["page_url"] = ""
    result = gate(tmp_path, export)
    ua, url = finding(result, "coverage.user_agent"), finding(result, "coverage.page_url")
    assert (ua.severity, ua.dates, ua.value) == ("warn", iso_days(LAST), round(2 / 143, 6))
    assert (url.severity, url.value) == ("pass", round(1 / 143, 6))


# ------------------------------------------------------------------------------------------
# incidents and acknowledgements, as the daily runs lay their reports out (runs/<date>/)


def test_a_blank_page_url_or_user_agent_is_null_or_only_whitespace():
    # By hand: blank are None, '', ' ', '\t\r\n', '\x0b\x0c' and '\r' (6); ' x', 'x ', 'x' and a
    # no-break space (not in string.whitespace, which is what is stripped) are not.
    import ibis

    values = [None, "", " ", "\t\r\n", "\x0b\x0c", "\r", " x", "x ", "x", "\u00a0"]
    events = ibis.memtable(
        {
            "file_date": [DAYS[0]] * len(values),
            "event_name": ["page_viewed"] * len(values),
            "client_id": [client(1)] * len(values),
            "user_agent": values,
            "referrer": [None] * len(values),
            "page_url": values,
            "event_ts": [datetime(2025, 3, 1)] * len(values),
        },
        schema={"file_date": "date", "referrer": "string", "event_ts": "timestamp"}
        | {c: "string" for c in ("event_name", "client_id", "user_agent", "page_url")},
    )
    agents = ibis.memtable({"user_agent": [HUMAN], "is_bot": [False]})
    rules = DqRules.model_validate(yaml.safe_load((DEFAULT_PARAMS_DIR / "dq_rules.yaml").read_text()))
    row = day_event_metrics(events, agents, rules, datetime(2025, 4, 1)).to_pyarrow().to_pylist()[0]
    assert (row["events"], row["null_page_url"], row["null_user_agent"]) == (10, 6, 6)


def test_a_fault_on_two_days_in_a_row_is_new_then_ongoing(tmp_path, export):
    for day in DAYS[-2:]:
        views(export[day])[0]["client_id"] = "not-a-cookie"  # client_id.bad_format: 1 of 143 rows, WARN
    raw, rules = write_export(tmp_path / "raw", export), rules_file(tmp_path)
    runs = tmp_path / "runs"
    first = run_gate(raw, rules, runs / DAYS[-2].isoformat(), start=DAYS[-2], end=DAYS[-2], now=NOW)
    second = run_gate(raw, rules, runs / LAST.isoformat(), start=LAST, end=LAST, now=NOW)
    f1, f2 = finding(first, "client_id.bad_format"), finding(second, "client_id.bad_format")
    assert (f1.state, f1.first_seen, f1.days_open) == ("new", DAYS[-2].isoformat(), 1)
    assert (f2.state, f2.first_seen, f2.days_open) == ("ongoing", DAYS[-2].isoformat(), 2)
    saved = json.loads(second.report_paths["json"].read_text())
    assert next(x for x in saved["findings"] if x["id"] == "client_id.bad_format")["state"] == "ongoing"


def test_an_acknowledged_gate_finding_is_info_and_the_day_passes(tmp_path, export):
    views(export[LAST])[0]["client_id"] = "not-a-cookie"
    (tmp_path / "acknowledged.yaml").write_text(
        yaml.safe_dump(
            {
                "acknowledged": [
                    {
                        "check": "client_id.bad_format",
                        "reason": "a test client id",
                        "owner": "qa",
                        "expires": "2025-04-30",
                    }
                ]
            }
        )
    )
    result = gate(tmp_path, export)
    f = finding(result, "client_id.bad_format")
    assert (f.severity, f.acknowledged["severity"]) == ("info", "warn")
    assert result.status == "pass"
    assert result.daily.set_index("date").loc[LAST, "status"] == "info"


def test_a_finding_over_days_of_mixed_severity_names_the_days_that_stop(tmp_path, export):
    # 40 of the last day's 120 page views without a client id (33%: ERROR), 5 of the day before's (4%: WARN).
    null_ids(views(export[LAST]), 40 / 120)
    null_ids(views(export[DAYS[-2]]), 5 / 120)
    f = finding(gate(tmp_path, export), "client_id.null_rate")
    assert f.severity == "error" and f.dates == iso_days(DAYS[-2], LAST)
    assert f"(ERROR on {LAST.isoformat()})" in f.message


def test_a_revenue_written_as_a_numeric_string_is_not_lost(tmp_path, export):
    # The transform reads "1099" as 1,099 (TRY_CAST), so the order is kept: no loss, only the type finding.
    orders(export[LAST])[0]["event_data"] = order_payload("ORD-S", [1000.0, 99.0], revenue="1099")
    result = gate(tmp_path, export)
    assert finding(result, "payload.revenue_non_numeric").severity != "pass"
    assert finding(result, "materiality.orders_lost").severity == "pass"


def test_an_acknowledgement_covers_only_its_dates_in_a_multi_day_report(tmp_path, export):
    for day in DAYS[-2:]:
        views(export[day])[0]["client_id"] = "not-a-cookie"
    (tmp_path / "acknowledged.yaml").write_text(
        yaml.safe_dump(
            {
                "acknowledged": [
                    {
                        "check": "client_id.bad_format",
                        "dates": [LAST.isoformat(), LAST.isoformat()],
                        "reason": "test id",
                        "owner": "qa",
                        "expires": "2025-04-30",
                    }
                ]
            }
        )
    )
    f = finding(gate(tmp_path, export), "client_id.bad_format")
    assert f.severity == "warn"  # the day before is not covered
    assert {r["date"]: r["severity"] for r in f.daily} == {DAYS[-2].isoformat(): "warn", LAST.isoformat(): "info"}
    assert f.acknowledged["dates"] == [LAST.isoformat()] and f"not for {DAYS[-2].isoformat()}" in f.message


def test_a_renamed_header_is_reported_as_it_is_not_redacted(tmp_path, export):
    # clientId is a header name, not a client's id: the file facts keep it (the privacy rules redact values).
    header = ["clientId" if c == "client_id" else c for c in COLUMNS]
    result = gate(tmp_path, export, headers={LAST: header})
    saved = json.loads(result.report_paths["json"].read_text())
    assert saved["files"][-1]["renamed"] == {"clientId": "client_id"}
    assert "clientId→client_id" in result.report_paths["md"].read_text()


def test_a_day_whose_purchases_are_all_unreadable_is_priced_at_the_baselines_order_value(tmp_path, export):
    # Gated alone, the last day has no readable order: its 3 broken purchases are priced at the
    # trailing median of the earlier days' average order value, (1,099 + 1,100 + 1,101) / 3 = 1,100.
    for row in orders(export[LAST]):
        row["event_data"] = "{not json"
    raw, rules = write_export(tmp_path / "raw", export), rules_file(tmp_path)
    result = run_gate(raw, rules, tmp_path / "out", start=LAST, end=LAST, now=NOW)
    f = finding(result, "materiality.revenue_lost")
    assert f.severity == "error" and "$3,300.00" in f.message and "average order value" in f.message
