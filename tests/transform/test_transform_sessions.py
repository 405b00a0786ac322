"""Sessionization (fct_sessions) on hand-computed fixtures.

Fixtures are raw CSV rows in the export's format, run through the real ingest (``write_staging``)
and ``run_transform``, so the tests cover the whole path a daily run takes.

"""

from __future__ import annotations

import hashlib

import ibis
import pandas as pd
import pyarrow.parquet as pq
import pytest

from puffy.params import DEFAULT_PARAMS_DIR
from puffy.transform import TransformParams, run_transform
from puffy.transform.sessions import build_sessions, session_event_flags, sessionize_events
from puffy.warehouse import partition_files

# ibis 12 on pandas 3 / duckdb 2 warns on every query; not ours.
from support.raw_events import (  # noqa: F401
    CHROME,
    D1,
    D2,
    D3,
    GOOGLEBOT,
    HEADER,
    IPHONE,
    SITE,
    ev,
    purchase,
    pytestmark,
    read_table,
    sessions_of,
    stage,
    stage_rows,
    t,
    transform,
    write_raw,
)


def test_gap_of_exactly_the_timeout_starts_a_new_session(tmp_path):
    rows = [
        ev("100-aaaaaaaaaaaa", t(D1, "10:00:00.000")),
        ev("100-aaaaaaaaaaaa", t(D1, "10:29:59.999")),  # 29:59.999 later: same session
        ev("100-aaaaaaaaaaaa", t(D1, "10:59:59.999")),  # exactly 30:00.000 later: new session
        ev("100-aaaaaaaaaaaa", t(D1, "11:30:00.000")),  # 30:00.001 later: new session
    ]
    wh, _ = transform(tmp_path, rows)
    s = sessions_of(wh)
    assert list(s.n_events) == [2, 1, 1]
    assert [x.strftime("%H:%M:%S.%f")[:-3] for x in s.session_start] == ["10:00:00.000", "10:59:59.999", "11:30:00.000"]
    assert s.duration_seconds.tolist() == [1799.999, 0.0, 0.0]
    assert s.session_number.tolist() == [1, 2, 3]
    assert s.is_returning_client.tolist() == [False, True, True]


def test_session_crossing_midnight_is_one_session_in_the_start_day_partition(tmp_path):
    rows = [
        ev("100-aaaaaaaaaaaa", t(D1, "23:50:00.000"), url="/products/puffy-mattress"),
        ev("100-aaaaaaaaaaaa", t(D2, "00:10:00.000"), event="product_added_to_cart"),
        ev("100-aaaaaaaaaaaa", t(D2, "00:20:00.000"), event="checkout_started"),
        ev("200-bbbbbbbbbbbb", t(D2, "09:00:00.000")),
    ]
    wh, result = transform(tmp_path, rows)
    s = sessions_of(wh)
    assert len(s) == 2
    first = s.iloc[0]
    assert first.session_date == D1 and first.crosses_midnight and first.n_events == 3
    assert first.duration_seconds == 30 * 60
    assert first.viewed_product and first.added_to_cart and first.started_checkout and not first.purchased
    day1 = pq.read_table(partition_files(wh, "fct_sessions", [D1])[0]).to_pandas()
    day2 = pq.read_table(partition_files(wh, "fct_sessions", [D2])[0]).to_pandas()
    assert day1.client_id.tolist() == ["100-aaaaaaaaaaaa"]
    assert day2.client_id.tolist() == ["200-bbbbbbbbbbbb"]
    assert not s.iloc[1].crosses_midnight


def test_out_of_order_and_same_timestamp_events(tmp_path):
    c = "100-aaaaaaaaaaaa"
    rows = [
        ev(c, t(D1, "12:10:00.000"), url="/b"),
        ev(c, t(D1, "12:00:00.000"), url="/a?utm_source=26CAE7&utm_medium=76E084"),  # facebook / paid
        ev(c, t(D1, "12:00:00.000"), url="/same-ts"),  # same timestamp, later row: after /a
        ev(c, t(D1, "13:00:00.000"), url="/c"),  # 50 min after 12:10: new session
    ]
    wh, _ = transform(tmp_path, rows)
    s = sessions_of(wh)
    assert s.n_events.tolist() == [3, 1]
    assert s.landing_path.tolist() == ["/a", "/c"]
    assert s.iloc[0].channel == "Paid Social"
    assert s.iloc[0].utm_source_decoded == "facebook"
    assert s.iloc[1].channel == "Direct"
    expected_id = hashlib.md5(f"{c}|2025-02-23T12:00:00.000Z".encode()).hexdigest()[:16]
    assert s.iloc[0].session_id == expected_id


def test_bots_and_missing_client_ids_are_counted_not_dropped(tmp_path):
    rows = [
        ev("100-aaaaaaaaaaaa", t(D1, "10:00:00.000")),
        ev("300-cccccccccccc", t(D1, "10:00:00.000"), ua=GOOGLEBOT),
        ev("300-cccccccccccc", t(D1, "10:05:00.000"), ua=GOOGLEBOT),
        ev("", t(D1, "10:07:00.000")),
    ]
    wh, result = transform(tmp_path, rows)
    assert sessions_of(wh).client_id.tolist() == ["100-aaaaaaaaaaaa"]
    rec = result.reconciliation.set_index("check")
    assert rec.loc["raw_rows", "left"] == 4 and rec.loc["raw_rows", "status"] == "ok"
    assert "bot_events=2" in rec.loc["raw_rows", "detail"]
    assert "no_client_id=1" in rec.loc["raw_rows", "detail"]

    wh2, _ = transform(tmp_path / "b", rows, exclude_bots=False)
    s = sessions_of(wh2)
    assert s.client_id.tolist() == ["100-aaaaaaaaaaaa", "300-cccccccccccc"]
    assert s.is_bot.tolist() == [False, True]
    assert s.iloc[1].bot_name == "Googlebot" and s.iloc[1].device_type == "bot"


def test_returning_client_numbers_sessions_across_days_and_runs(tmp_path):
    c = "100-aaaaaaaaaaaa"
    rows = [
        ev(c, t(D1, "08:00:00.000")),
        ev(c, t(D1, "20:00:00.000")),
        ev(c, t(D3, "09:00:00.000"), ua=IPHONE),
        ev("200-bbbbbbbbbbbb", t(D3, "09:30:00.000")),
    ]
    wh, _ = transform(tmp_path, rows)
    s = sessions_of(wh)
    assert s.session_number.tolist() == [1, 2, 3, 1]
    assert s.is_returning_client.tolist() == [False, True, True, False]
    assert s.iloc[2].device_type == "mobile"

    # day by day: the D3 run reads the earlier sessions from the warehouse
    staging = tmp_path / "stg"
    inc = tmp_path / "inc"
    for d in (D1, D3):
        run_transform(staging, inc, DEFAULT_PARAMS_DIR, start=d, end=d, mode="incremental")
    pd.testing.assert_frame_equal(sessions_of(inc), s)


def test_campaign_change_splits_only_when_enabled(tmp_path):
    c = "100-aaaaaaaaaaaa"
    rows = [
        ev(c, t(D1, "10:00:00.000"), url="/?utm_source=26CAE7&utm_medium=76E084&utm_campaign=AAAAAA"),
        ev(c, t(D1, "10:05:00.000"), url="/products/x"),
        # same campaign again: no split
        ev(c, t(D1, "10:06:00.000"), url="/?utm_source=26CAE7&utm_medium=76E084&utm_campaign=AAAAAA"),
        # another campaign (email) 5 minutes later: split when enabled
        ev(c, t(D1, "10:11:00.000"), url="/?utm_source=AAAAAA&utm_medium=0C83F5&utm_campaign=BBBBBB"),
        ev(c, t(D1, "10:12:00.000"), url="/cart"),
    ]
    wh, _ = transform(tmp_path, rows)
    assert sessions_of(wh).n_events.tolist() == [5]
    wh2, _ = transform(tmp_path / "b", rows, split_on_campaign_change=True)
    s = sessions_of(wh2)
    assert s.n_events.tolist() == [3, 2]
    assert s.channel.tolist() == ["Paid Social", "Email"]


def test_direct_session_then_tagged_landing_splits_with_campaign_rule(tmp_path):
    c = "100-aaaaaaaaaaaa"
    rows = [
        ev(c, t(D1, "10:00:00.000")),
        ev(c, t(D1, "10:01:00.000"), url="/?gclid=ABCDEF"),  # gclid only: no utm, no campaign key
        ev(c, t(D1, "10:02:00.000"), url="/?utm_source=26CAE7&utm_medium=76E084"),
    ]
    wh, _ = transform(tmp_path, rows, split_on_campaign_change=True)
    s = sessions_of(wh)
    assert s.n_events.tolist() == [2, 1]
    assert s.channel.tolist() == ["Direct", "Paid Social"]


def test_session_expressions_compile_for_pyspark(monkeypatch):
    """Only portable operations: the sessionization compiles to Spark SQL."""
    from ibis.config import Config

    class _PySparkOptions(Config):  # registered by the pyspark backend when installed
        treat_nan_as_null: bool = False

    if ibis.options.pyspark is None:
        monkeypatch.setattr(ibis.options, "pyspark", _PySparkOptions())
    events = ibis.table(
        {
            "event_id": "string",
            "file_date": "date",
            "client_id": "string",
            "page_url": "string",
            "referrer": "string",
            "timestamp_raw": "string",
            "event_ts": "timestamp(6)",
            "event_name": "string",
            "user_agent": "string",
            "is_bot": "boolean",
            "bot_name": "string",
            "device_type": "string",
            "browser": "string",
            "os": "string",
        },
        name="events",
    )
    for split in (False, True):
        params = TransformParams(split_on_campaign_change=split)
        sev = sessionize_events(session_event_flags(events, params), params)
        sql = ibis.to_sql(build_sessions(sev, events), dialect="pyspark")
        assert "OVER" in sql and "md5" in sql.lower()


def test_sessions_schema_and_partition_columns(tmp_path):
    rows = [ev("100-aaaaaaaaaaaa", t(D1, "10:00:00.000")), ev("200-bbbbbbbbbbbb", t(D2, "10:00:00.000"))]
    wh, result = transform(tmp_path, rows)
    from puffy.transform.sessions import SESSION_COLUMNS

    s = read_table(wh, "fct_sessions")
    assert tuple(s.columns) == SESSION_COLUMNS
    assert [p.name for p in result.tables["fct_sessions"]] == ["date=2025-02-23", "date=2025-02-24"]
    assert s.session_id.is_unique
    assert (s.person_id == s.client_id).all()
    assert set(s.session_date) == {D1, D2} and (s.session_date == s.session_start.dt.date).all()


@pytest.mark.parametrize("pattern", ["/products/", "/prod", r"^/products/[a-z-]+$", "products"])
def test_path_matches_agrees_with_the_extracted_path(pattern):
    """The literal shortcut of ``path_matches`` gives the answer of matching ``url_path``, on URLs
    that put the pattern's text in the host, the scheme's slashes, the query and the fragment."""
    from puffy.transform.sessions import path_matches, url_path

    urls = [
        "https://puffy.com/products/puffy-mattress",
        "https://puffy.com/products",
        "https://products/x",
        "https://products/products/x",
        "https://puffy.com/?next=/products/x",
        "https://puffy.com/#/products/x",
        "puffy.com/products/x",
        "/products/x",
        "products/x",
        "https://puffy.com",
        "",
        None,
        "android-app://com.google/products/x",
        "HTTPS://PUFFY.COM/products/x?a=1#b",
        "https://puffy.com/a/products/b?/products/",
        "https://puffy.com/prodx",
        "://products/x",
    ]
    t = ibis.memtable({"url": urls}, schema={"url": "string"})
    con = ibis.duckdb.connect()
    got = con.execute(t.select(fast=path_matches(t.url, pattern), slow=url_path(t.url).re_search(pattern)))
    assert got["fast"].tolist() == got["slow"].tolist()


def test_url_path_is_the_capture_of_the_path_regex():
    """``url_path`` (two simpler regexes) gives the capture group of ``_PATH_RE`` ('/' when empty or
    NULL), on URLs with and without a scheme, host only, query or fragment right after the host, a
    scheme-like text that is not one, and an empty host."""
    from puffy.transform.sessions import _PATH_RE, url_path

    urls = [
        "https://puffy.com/products/puffy-mattress?utm_source=A#top",
        "https://puffy.com",
        "https://puffy.com/",
        "https://puffy.com?x=1/2",
        "https://puffy.com#/products",
        "http://",
        "http:///a/b",
        "android-app://com.google.android.gm/x/y",
        "puffy.com/products/x?a",
        "/products/x#y",
        "?a=1",
        "1http://a/b",
        "htt p://a/b",
        "x:/y",
        "mailto:x@y.com",
        "https://a.com/p//q?r",
        "",
        None,
    ]
    t = ibis.memtable({"url": urls}, schema={"url": "string"})
    reference = t.url.re_extract(_PATH_RE, 1).nullif("").fill_null("/")
    got = ibis.duckdb.connect().to_pyarrow(t.select(fast=url_path(t.url), slow=reference)).to_pydict()
    assert got["fast"] == got["slow"]
    assert got["fast"][:4] == ["/products/puffy-mattress", "/", "/", "/"]


def test_session_id_strips_the_timestamp_as_written():
    """The id hashes the start timestamp without surrounding whitespace (worked out with hashlib)."""
    from puffy.transform.sessions import session_id

    raw = ["2025-02-23 10:00:00.000", " 2025-02-23 10:00:00.000\t", "2025-02-23 10:00:00.000\n"]
    t = ibis.memtable({"c": ["c1"] * 3, "ts": raw}, schema={"c": "string", "ts": "string"})
    got = ibis.duckdb.connect().execute(t.select(sid=session_id(t.c, t.ts)))["sid"].tolist()
    want = hashlib.md5(b"c1|2025-02-23 10:00:00.000").hexdigest()[:16]
    assert got == [want] * 3
