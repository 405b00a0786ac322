"""run_transform end to end: ground truth of the generated sample, incremental == rebuild,
idempotent re-runs, identity stitching, reconciliation as a safety net, CSV export.

Run: cd /work/main && PYTHONPATH=lib .venv/bin/python -m pytest tests/transform/test_transform_pipeline.py -q
"""

from __future__ import annotations

import filecmp
from datetime import date
from pathlib import Path

import ibis
import pandas as pd
import pyarrow as pa
import pytest

from puffy.params import DEFAULT_PARAMS_DIR
from puffy.sample import SampleConfig, generate_sample
from puffy.transform import TABLES, TransformParams, export_csv, run_transform
from puffy.transform import pipeline as pipeline_module
from puffy.transform.identity import person_map
from puffy.transform.params import load_transform_params
from puffy.transform.pipeline import REPORT_TABLES
from puffy.transform.reconcile import Check, overall_status, reconciliation_frame
from puffy.warehouse import partition_files
from support.raw_events import (
    D1,
    D2,
    IPHONE,
    ev,
    purchase,
    pytestmark,  # noqa: F401  (the shared warning filters)
    read_table,
    sessions_of,
    stage,
    t,
    transform,
)

# Starts 2025-03-01 so the referrer column disappears (03-04) inside the sample.
SAMPLE = SampleConfig(start=date(2025, 3, 1), days=5, scale=0.4, seed=11)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A generated sample (all faults on), staged once; plus a rebuild over all its days."""
    root = tmp_path_factory.mktemp("sample")
    generate_sample(root / "raw", SAMPLE)
    days = stage(root / "raw", root / "stg")
    rebuild = root / "rebuild"
    result = run_transform(root / "stg", rebuild, DEFAULT_PARAMS_DIR, start=days[0], end=days[-1])
    return root, days, rebuild, result


def _ts(col: pd.Series) -> pd.Series:
    return pd.to_datetime(col.str.rstrip("Z"))


def _same_partitions(got: Path, expected: Path, tables) -> None:
    """``got`` has the partitions of ``expected`` for each of ``tables``, byte for byte."""
    for table in tables:
        a, b = partition_files(got, table), partition_files(expected, table)
        assert [Path(x).parent.name for x in a] == [Path(x).parent.name for x in b], table
        assert a, table
        for x, y in zip(a, b):
            assert filecmp.cmp(x, y, shallow=False), f"{table} {Path(x).parent.name} differs"


def test_sample_sessions_equal_ground_truth(sample, tmp_path):
    root, days, _, _ = sample
    wh = tmp_path / "with_bots"
    result = run_transform(
        root / "stg",
        wh,
        DEFAULT_PARAMS_DIR,
        start=days[0],
        end=days[-1],
        transform_params=TransformParams(exclude_bots=False),
    )
    assert result.status != "error"
    truth = pd.read_csv(root / "raw" / "_truth" / "sessions.csv", dtype=str)
    truth = truth.assign(
        session_start=_ts(truth.session_start),
        session_end=_ts(truth.session_end),
        n_events=truth.n_events.astype(int),
        n_fault_rows=truth.n_fault_rows.astype(int),
        is_bot=truth.is_bot == "true",
    )
    ours = read_table(wh, "fct_sessions")
    assert len(ours) == len(truth)
    m = truth.merge(ours, on=["client_id", "session_start"], how="left", suffixes=("_truth", ""), validate="one_to_one")
    assert m.session_id.notna().all(), "every true session starts where we start one"
    assert (m.session_end == m.session_end_truth).all()
    clean = m[m.n_fault_rows == 0]
    assert (clean.n_events == clean.n_events_truth).all()
    assert (m.is_bot == m.is_bot_truth).all()
    assert (m.channel == m.channel_truth).all()


def test_sample_first_and_last_touch_equal_ground_truth(sample):
    root, _, rebuild, _ = sample
    truth = pd.read_csv(root / "raw" / "_truth" / "orders.csv", dtype=str)
    orders = read_table(rebuild, "fct_orders")
    att = read_table(rebuild, "fct_attribution")
    real = truth[truth.fault.fillna("") != "zero_revenue"]
    m = real.merge(orders, on=["transaction_id", "client_id"], how="left", validate="one_to_one")
    assert m.order_key.notna().all()
    assert len(orders) == len(real)
    for model, col in (("first_click", "first_touch_channel"), ("last_click", "last_touch_channel")):
        credited = att[(att.model == model) & (att.credit > 0)].set_index("order_key").channel
        assert (m.order_key.map(credited) == m[col]).all(), model
    # zero-revenue truth rows are our zero-revenue rejects
    rejects = read_table(rebuild, "fct_order_rejects")
    zero = truth[truth.fault == "zero_revenue"].transaction_id
    assert set(zero) == set(rejects[rejects.reason == "zero_revenue_empty_items"].transaction_id)


def test_incremental_day_by_day_equals_rebuild_and_reruns_change_nothing(sample, tmp_path):
    root, days, rebuild, _ = sample
    inc = tmp_path / "incremental"
    for d in days:
        r = run_transform(root / "stg", inc, DEFAULT_PARAMS_DIR, start=d, end=d, mode="incremental")
        assert r.status != "error", r.message
        assert [p.name for p in r.tables["fct_orders"]] == [f"date={d}"]
    _same_partitions(inc, rebuild, [*TABLES, *REPORT_TABLES])

    before = {f: Path(f).read_bytes() for table in TABLES for f in partition_files(inc, table)}
    mid = days[len(days) // 2]
    again = run_transform(root / "stg", inc, DEFAULT_PARAMS_DIR, start=mid, end=mid, mode="incremental")
    assert [p.name for p in again.tables["fct_sessions"]] == [
        f"date={d}" for d in days if mid.toordinal() - d.toordinal() in (0, 1)
    ]
    after = {f: Path(f).read_bytes() for table in TABLES for f in partition_files(inc, table)}
    assert before == after


def test_a_day_by_day_run_reads_attribution_history_only_within_its_horizon(sample, tmp_path):
    """Attribution reads history's sessions and orders only from its horizon on (the lookback, or
    the Markov fit's window): with a fit of 8 days, most of the sample's 14 days have history beyond
    it, and day by day still gives the rebuild's bytes. Session numbers read all of history."""
    root, days, _, _ = sample
    tp = load_transform_params(DEFAULT_PARAMS_DIR).model_copy(update={"markov_fit_days": 8})
    assert "markov" in tp.attribution.models and tp.attribution.lookback_days < 8
    rebuild, inc = tmp_path / "rebuild", tmp_path / "incremental"
    run_transform(root / "stg", rebuild, DEFAULT_PARAMS_DIR, start=days[0], end=days[-1], transform_params=tp)
    for d in days:
        r = run_transform(
            root / "stg", inc, DEFAULT_PARAMS_DIR, start=d, end=d, mode="incremental", transform_params=tp
        )
        assert r.status != "error", r.message
    _same_partitions(inc, rebuild, TABLES)


def test_sessions_written_a_day_per_query_are_the_same_bytes(sample, tmp_path, monkeypatch):
    """A large run sorts fct_sessions a few days per query (SORT_ROWS_PER_QUERY): same partitions,
    byte for byte."""
    root, days, rebuild, _ = sample
    monkeypatch.setattr(pipeline_module, "SORT_ROWS_PER_QUERY", 1)  # one day per query
    chunked = tmp_path / "chunked"
    r = run_transform(root / "stg", chunked, DEFAULT_PARAMS_DIR, start=days[0], end=days[-1])
    assert r.status != "error", r.message
    _same_partitions(chunked, rebuild, TABLES)


def test_small_batches_through_the_encoder_thread_are_the_same_bytes(sample, tmp_path, monkeypatch):
    """Rows reach the Parquet encoder thread a few at a time, each encoded before the next is
    fetched: the same partitions, byte for byte (a row group does not depend on how its rows
    arrived)."""
    root, days, rebuild, _ = sample
    monkeypatch.setattr(pipeline_module, "WRITE_BATCH_ROWS", 7)
    monkeypatch.setattr(pipeline_module, "ENCODE_AHEAD_BATCHES", 0)
    small = tmp_path / "small"
    r = run_transform(root / "stg", small, DEFAULT_PARAMS_DIR, start=days[0], end=days[-1])
    assert r.status != "error", r.message
    _same_partitions(small, rebuild, TABLES)


def test_an_encoding_error_is_raised_and_swaps_in_nothing(sample, tmp_path, monkeypatch):
    """The encoder thread's error reaches the caller; no partition of the table is replaced and no
    temporary directory is left."""
    import shutil

    root, days, rebuild, _ = sample
    out = tmp_path / "wh"
    shutil.copytree(rebuild, out)
    before = {f: Path(f).read_bytes() for f in partition_files(out, "fct_sessions")}
    calls = []
    real_write = pipeline_module.PartitionWriter.write

    def failing_write(self, data):
        calls.append(self.final)
        if len(calls) == 2:
            raise OSError("disk full")
        real_write(self, data)

    monkeypatch.setattr(pipeline_module, "WRITE_BATCH_ROWS", 50)
    monkeypatch.setattr(pipeline_module.PartitionWriter, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        run_transform(root / "stg", out, DEFAULT_PARAMS_DIR, start=days[0], end=days[-1])
    assert {f: Path(f).read_bytes() for f in partition_files(out, "fct_sessions")} == before
    assert [p.name for p in (out / "fct_sessions").iterdir() if not p.name.startswith("date=")] == []


def test_day_chunks_keep_each_sort_under_the_row_budget(monkeypatch):
    monkeypatch.setattr(pipeline_module, "SORT_ROWS_PER_QUERY", 10)
    days = [date(2025, 3, d) for d in range(1, 6)]
    rows = dict(zip(days, [4, 5, 3, 12, 0]))
    chunks = pipeline_module._day_chunks(days, rows, duckdb=True)
    assert chunks == [days[0:2], days[2:3], days[3:5]]  # a day over the budget goes alone (with empty ones)
    assert pipeline_module._day_chunks(days, None, duckdb=True) == [days]
    assert pipeline_module._day_chunks(days, rows, duckdb=False) == [days]  # 7 days per query on Spark


def test_day_runs_slice_a_sorted_batch_by_day():
    d1, d2, d3 = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 4)
    chunk = pa.table({"day": pa.array([d1, d1, d2, d3, d3], pa.date32()), "n": [1, 2, 3, 4, 5]})
    runs = pipeline_module._day_runs(chunk, "day")
    assert [(day, part.column("n").to_pylist()) for day, part in runs] == [(d1, [1, 2]), (d2, [3]), (d3, [4, 5])]
    assert pipeline_module._day_runs(chunk.slice(0, 0), "day") == []


def test_history_root_separate_from_output_root(sample, tmp_path):
    """The runner writes to a per-run staging warehouse and reads history from the published one."""
    root, days, rebuild, _ = sample
    last = days[-1]
    staged = tmp_path / "staging_wh"
    r = run_transform(
        root / "stg", staged, DEFAULT_PARAMS_DIR, start=last, end=last, mode="incremental", history_root=rebuild
    )
    assert sorted(p.parent.name for p in staged.glob("*/date=*")) == sorted(
        ["fct_sessions"] * 2
        + [
            "fct_orders",
            "fct_order_items",
            "fct_order_rejects",
            "fct_attribution",
            "rpt_channel_credit",
            "rpt_reconciliation",
        ]
    )
    for table in TABLES:
        for f in partition_files(staged, table):
            twin = Path(str(f).replace(str(staged), str(rebuild)))
            assert filecmp.cmp(f, twin, shallow=False), f"{table} {f}"
    assert r.status != "error"


def test_reconciliation_balances_on_the_sample(sample):
    _, _, rebuild, result = sample
    rec = result.reconciliation
    assert set(rec.status) <= {"ok", "warn"}
    assert (rec[rec.status == "ok"].difference.abs() < 1e-6).all()
    checks = set(rec.check)
    assert {"raw_rows", "purchase_events", "revenue_orders", "attribution_revenue_markov"} <= checks
    stored = read_table(rebuild, "rpt_reconciliation")
    assert stored.check.tolist() == rec.check.tolist()


def test_reconciliation_catches_a_lost_order(sample, tmp_path, monkeypatch):
    """If a bug dropped an order, the run says 'error' instead of publishing quietly."""
    root, days, _, _ = sample
    real_build = pipeline_module.build_orders

    def lossy(*args, **kwargs):
        built = real_build(*args, **kwargs)
        first = built.orders.order_by("order_key").limit(1).select("order_key")
        built.orders = built.orders.filter(~built.orders.order_key.isin(first.order_key))
        return built

    monkeypatch.setattr(pipeline_module, "build_orders", lossy)
    result = run_transform(root / "stg", tmp_path / "wh", DEFAULT_PARAMS_DIR, start=days[0], end=days[-1])
    assert result.status == "error"
    bad = result.reconciliation[result.reconciliation.status == "error"].check.tolist()
    assert "purchase_events" in bad and "revenue_orders" in bad
    assert "purchase_events" in result.message


def test_overall_status_is_the_worst():
    frame = reconciliation_frame([Check("a", 1, 1), Check("b", 1, 2, severity="warn")], "rebuild")
    assert frame.status.tolist() == ["ok", "warn"] and overall_status(frame) == "warn"
    frame = reconciliation_frame([Check("a", 1, 1), Check("c", 3, 2)], "rebuild")
    assert overall_status(frame) == "error" and frame.difference.tolist() == [0, -1]


def test_identity_stitching_joins_devices_sharing_an_email(tmp_path):
    laptop, phone, tablet = "100-aaaaaaaaaaaa", "200-bbbbbbbbbbbb", "300-cccccccccccc"
    email, other = "a" * 64, "b" * 64
    popup = '{"user_email":"%s"}'
    rows = [
        ev(laptop, t(D1, "10:00:00.000"), url="/?gclid=ABCDEF"),  # paid search on the laptop
        ev(laptop, t(D1, "10:01:00.000"), "email_filled_on_popup", data=popup % email),
        ev(tablet, t(D1, "12:00:00.000"), "email_filled_on_popup", data=popup % other, ua=IPHONE),
        ev(phone, t(D2, "09:00:00.000"), ua=IPHONE),  # direct on the phone, then buys
        purchase(phone, t(D2, "09:05:00.000"), "ORD-1", 100, email=email, ua=IPHONE),
        ev(phone, t(D2, "09:06:00.000"), "email_filled_on_popup", data=popup % other, ua=IPHONE),
    ]
    wh, _ = transform(tmp_path, rows)
    att = read_table(wh, "fct_attribution")
    first = att[(att.model == "first_click") & (att.credit > 0)]
    assert first.channel.tolist() == ["Direct"]

    wh2, _ = transform(tmp_path / "stitched", rows, identity_stitching=True)
    s = sessions_of(wh2)
    assert set(s.person_id) == {laptop}  # smallest client id of {laptop, phone, tablet}
    assert (s.client_id != s.person_id).sum() == 2
    o = read_table(wh2, "fct_orders")
    assert o.person_id.tolist() == [laptop]
    att2 = read_table(wh2, "fct_attribution")
    first2 = att2[(att2.model == "first_click") & (att2.credit > 0)]
    assert first2.channel.tolist() == ["Paid Search"]
    assert set(att2[att2.model == "linear"].touch_count) == {3}


def test_sample_identity_stitching_joins_each_shopper_s_devices_and_nobody_else_s(sample, tmp_path):
    """The generator has shoppers on two devices who give the same email on both: stitching
    joins exactly those devices (truth: sessions.csv person_id), and never two people."""
    root, days, _, _ = sample
    wh = tmp_path / "stitched"
    run_transform(
        root / "stg",
        wh,
        DEFAULT_PARAMS_DIR,
        start=days[0],
        end=days[-1],
        transform_params=TransformParams(identity_stitching=True),
    )
    truth = pd.read_csv(root / "raw" / "_truth" / "sessions.csv", dtype=str)
    true_person = truth.drop_duplicates("client_id").set_index("client_id").person_id
    ours = read_table(wh, "fct_sessions")[["client_id", "person_id"]].drop_duplicates()
    ours["true_person"] = ours.client_id.map(true_person)
    assert ours.true_person.notna().all()
    assert ours.groupby("person_id").true_person.nunique().max() == 1, "two people stitched into one"
    joined = ours[ours.client_id != ours.person_id]
    assert len(joined) >= 1, "no second device was stitched"
    two_devices = truth[truth.client_id != truth.person_id]
    assert set(joined.true_person) <= set(two_devices.person_id)


def test_person_map_is_connected_components():
    edges = ibis.memtable(
        pd.DataFrame(
            {
                "client_id": ["c3", "c2", "c2", "c1", "c4", "c5"],
                "email": ["e2", "e2", "e1", "e1", "e3", "e3"],
            }
        )
    )
    got = person_map(edges).to_pandas().sort_values("client_id")
    assert got.person_id.tolist() == ["c1", "c1", "c1", "c4", "c4"]


def test_export_csv(sample, tmp_path):
    _, _, rebuild, result = sample
    files = export_csv(rebuild, tmp_path / "csv")
    assert [f.name for f in files] == ["fct_sessions.csv", "fct_orders.csv", "fct_attribution.csv"]
    for f in files:
        df = pd.read_csv(f)
        assert len(df) == result.row_counts[f.stem]
        assert list(df.columns) == list(TABLES[f.stem][0].names)
        whole = pipeline_module.load_table(rebuild, f.stem)  # partitions appended in order = the table
        assert df.iloc[:, 0].astype(str).tolist() == whole.iloc[:, 0].astype(str).tolist()


def test_bad_arguments(sample, tmp_path):
    from puffy.errors import InputDataError, UserError

    root, days, _, _ = sample
    with pytest.raises(UserError, match="mode"):
        run_transform(root / "stg", tmp_path, DEFAULT_PARAMS_DIR, start=days[0], end=days[0], mode="daily")
    with pytest.raises(InputDataError, match="no staged events"):
        run_transform(root / "stg", tmp_path, DEFAULT_PARAMS_DIR, start=date(2030, 1, 1), end=date(2030, 1, 2))


def test_incremental_run_never_writes_an_unpublished_previous_day(sample, tmp_path):
    """The day before is rewritten only when it is published: a day the gate stopped or monitoring
    quarantined (no partition in history) must not reach the warehouse through the next day's run."""
    root, days, rebuild, _ = sample
    history = tmp_path / "published"
    for table in TABLES:  # published: every day but days[1]
        for f in partition_files(rebuild, table):
            if f"date={days[1]}" not in f:
                target = Path(str(f).replace(str(rebuild), str(history)))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(Path(f).read_bytes())
    out = tmp_path / "out"
    run_transform(
        root / "stg", out, DEFAULT_PARAMS_DIR, start=days[2], end=days[2], mode="incremental", history_root=history
    )
    assert [p.parent.name for p in map(Path, partition_files(out, "fct_sessions"))] == [f"date={days[2]}"]
    out2 = tmp_path / "out2"
    run_transform(
        root / "stg", out2, DEFAULT_PARAMS_DIR, start=days[3], end=days[3], mode="incremental", history_root=history
    )  # days[2] is published: rewritten with its successor
    assert [p.parent.name for p in map(Path, partition_files(out2, "fct_sessions"))] == [
        f"date={days[2]}",
        f"date={days[3]}",
    ]
