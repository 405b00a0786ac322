"""Raw ingest: every line becomes an event or a reject with file, line / row and reason.

Hand-built fixtures (``FIXTURE_FILES``) and byte-level variants (BOM, CRLF, gzip, undecodable
bytes) are written into ``tmp_path`` by the tests themselves; no raw file is kept in the repository.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import pytest

from puffy.engine import scratch_duckdb
from puffy.ingest import RawContract, count_data_lines, discover_raw_files, ingest
from puffy.params import PipelineParams

# Hand-built raw files, written into tmp_path by the ``fixture_dir`` fixture (line numbers matter:
# the tests expect rejects on lines 3, 4 and 11 of the first file). The second file has an aliased,
# reordered header with the referrer column missing and an extra column.
FIXTURE_FILES = {
    "events_20250224.csv": (
        "client_id,page_url,referrer,timestamp,event_name,event_data,user_agent\n"
        '1740355200-goodrow00001,https://puffy.com/,,2025-02-24T00:00:01.000Z,page_viewed,,"Mozilla/5.0 (X11; Linux x86_64) Chrome/133.0"\n'  # noqa: E501 (one raw row per line)
        "1740355200-toomanyfield,https://puffy.com/,,2025-02-24T00:00:02.000Z,page_viewed,,ua,surplus\n"
        "1740355200-toofewfields,https://puffy.com/,,2025-02-24T00:00:03.000Z\n"
        "1740355200-badtimestamp,https://puffy.com/,,24/02/2025 00:00:04,page_viewed,,ua\n"
        "1740355200-notonthisday,https://puffy.com/,,2025-02-25T00:00:05.000Z,page_viewed,,ua\n"
        "1740355200-unknownevent,https://puffy.com/,,2025-02-24T00:00:06.000Z,purchase,,ua\n"
        "1740355200-notimestamp0,https://puffy.com/,,,page_viewed,,ua\n"
        '1740355200-goodrow00002,https://puffy.com/cart,https://www.google.com/,2025-02-24T00:00:07.000Z,checkout_completed,"{""transaction_id"":""ORD-20250224-001"",""revenue"":99.5,""items"":[{""item_id"":""A"",""item_name"":""Pillow"",""item_variant"":""Std"",""quantity"":1,""item_price"":99.5}],""user_email"":""abc""}",ua\n'
        '1740355200-goodrow00001,https://puffy.com/,,2025-02-24T00:00:01.000Z,page_viewed,,"Mozilla/5.0 (X11; Linux x86_64) Chrome/133.0"\n'  # noqa: E501
        '1740355200-unterminated,https://puffy.com/,,2025-02-24T00:00:08.000Z,page_viewed,,"ua\n'
    ),
    "events_20250225.csv": (
        "timestamp,event_name,clientId,page_url,user_agent,event_data,campaign\n"
        "2025-02-25T00:00:01.000Z,page_viewed,1740441600-aliasclient1,https://puffy.com/a,ua,,x\n"
        '2025-02-25T00:00:02.000Z,email_filled_on_popup,1740441600-aliasclient1,https://puffy.com/b,ua,"{""user_email"":""ff""}",y'
    ),
}
HEADER = "client_id,page_url,referrer,timestamp,event_name,event_data,user_agent"


def row(client: str, ts: str, event: str = "page_viewed", url: str = "https://puffy.com/", ua: str = "ua") -> str:
    return f"{client},{url},,{ts},{event},,{ua}"


def run(directory: Path):
    con = duckdb.connect()
    result = ingest(con, discover_raw_files(directory), RawContract())
    return con, result


def events(con, file_name: str) -> list[tuple]:
    return con.execute(
        "SELECT client_id, page_url, referrer, event_name, user_agent FROM stg_events "
        "WHERE source_file = ? ORDER BY row_number",
        [file_name],
    ).fetchall()


def rejects(con, file_name: str) -> list[tuple]:
    return con.execute(
        "SELECT line, row_number, reason, column_name FROM stg_rejects WHERE source_file = ? "
        "ORDER BY line NULLS LAST, row_number",
        [file_name],
    ).fetchall()


def assert_reconciled(con, result):
    for name, lines in result.lines_read.items():
        n_events = con.execute("SELECT count(*) FROM stg_events WHERE source_file = ?", [name]).fetchone()[0]
        n_rejects = con.execute(
            "SELECT count(*) FROM stg_rejects WHERE source_file = ? AND reason <> 'unreadable_file'", [name]
        ).fetchone()[0]
        assert lines == n_events + n_rejects, name


@pytest.fixture
def fixture_dir(tmp_path) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, text in FIXTURE_FILES.items():
        (raw / name).write_bytes(text.encode("utf-8"))
    return raw


def test_bad_lines_are_rejected_with_file_line_and_reason(fixture_dir):
    con, result = run(fixture_dir)
    name = "events_20250224.csv"
    assert [e[0] for e in events(con, name)] == ["1740355200-goodrow00001", "1740355200-goodrow00002"]
    assert rejects(con, name) == [
        (3, None, "too_many_columns", None),
        (4, None, "missing_columns", "event_name"),
        (11, None, "unquoted_value", "user_agent"),
        (None, 2, "unparseable_timestamp", "timestamp"),
        (None, 3, "timestamp_outside_file_day", "timestamp"),
        (None, 4, "unknown_event_name", "event_name"),
        (None, 5, "missing_timestamp", "timestamp"),
        (None, 7, "exact_duplicate", None),
    ]
    assert result.lines_read[name] == 10
    assert_reconciled(con, result)


def test_alias_reordered_missing_and_extra_columns(fixture_dir):
    con, result = run(fixture_dir)
    f = next(f for f in result.files if f.name == "events_20250225.csv")
    assert f.renamed == (("clientId", "client_id"),)
    assert f.missing == ("referrer",)
    assert f.extra == ("campaign",)
    assert events(con, f.name) == [
        ("1740441600-aliasclient1", "https://puffy.com/a", None, "page_viewed", "ua"),
        ("1740441600-aliasclient1", "https://puffy.com/b", None, "email_filled_on_popup", "ua"),
    ]
    payload = con.execute("SELECT user_email FROM stg_events WHERE event_name = 'email_filled_on_popup'").fetchone()
    assert payload == ("ff",)


def test_bom_crlf_and_gzip(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    body = [
        row("1740268800-bomcrlf00001", "2025-02-23T00:00:01.000Z", ua='"Mozilla/5.0 (X11, Linux)"'),
        row("1740268800-bomcrlf00002", "2025-02-23T00:00:02Z", ua="plain-ua"),
    ]
    (raw / "events_20250223.csv").write_bytes(("\ufeff" + HEADER + "\r\n" + "\r\n".join(body) + "\r\n").encode())
    with gzip.open(raw / "events_20250224.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write(HEADER + "\n" + row("1740355200-gzipped00001", "2025-02-24T10:00:00.000Z") + "\n")
    con, result = run(raw)
    first, second = result.files
    assert first.has_bom and first.crlf and not first.compressed
    assert second.compressed and not second.has_bom
    # No BOM in the first column's name and no CR left at the end of the last column.
    assert [(e[0], e[4]) for e in events(con, first.name)] == [
        ("1740268800-bomcrlf00001", "Mozilla/5.0 (X11, Linux)"),
        ("1740268800-bomcrlf00002", "plain-ua"),
    ]
    assert [e[0] for e in events(con, second.name)] == ["1740355200-gzipped00001"]
    assert result.lines_read == {first.name: 2, second.name: 1}
    assert_reconciled(con, result)


def test_undecodable_bytes_reject_only_their_line(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    good = row("1740268800-goodrow00001", "2025-02-23T00:00:01.000Z").encode()
    bad = b"1740268800-badbytes0001,https://puffy.com/\xff\xfe,,2025-02-23T00:00:02.000Z,page_viewed,,ua"
    good2 = row("1740268800-goodrow00002", "2025-02-23T00:00:03.000Z").encode()
    (raw / "events_20250223.csv").write_bytes(b"\n".join([HEADER.encode(), good, bad, good2]))
    con, result = run(raw)
    assert [e[0] for e in events(con, "events_20250223.csv")] == ["1740268800-goodrow00001", "1740268800-goodrow00002"]
    assert rejects(con, "events_20250223.csv") == [(3, None, "invalid_encoding", "page_url")]
    assert_reconciled(con, result)


def test_lines_swallowed_by_an_unterminated_quote_are_read_again(tmp_path):
    """The quote opened on line 3 runs to the next quote, on line 4, and the one opened on line 6
    to the end of the file: the reader returns lines 3-4 and 6-8 as two broken records. Each is
    rejected as its first line only, and the lines it swallowed are parsed again, in file order,
    numbered after the file's other rows, with their own line numbers."""
    raw = tmp_path / "raw"
    raw.mkdir()
    lines = [
        HEADER,
        row("1740268800-goodrow00001", "2025-02-23T00:00:01.000Z", ua='"quoted, ua"'),
        row("1740268800-unterminated", "2025-02-23T00:00:02.000Z", ua='"open quote'),
        row("1740268800-swallowed001", "2025-02-23T00:00:03.000Z", ua='"quoted, ua"'),
        row("1740268800-goodrow00002", "2025-02-23T00:00:04.000Z"),
        row("1740268800-unterminat02", "2025-02-23T00:00:05.000Z", ua='"open again'),
        row("1740268800-swallowed002", "2025-02-23T00:00:06.000Z"),
        row("1740268800-swallowed003", "2025-02-23T00:00:07.000Z", ua="ua,surplus"),
    ]
    (raw / "events_20250223.csv").write_text("\n".join(lines) + "\n")
    con, result = run(raw)
    got = con.execute("SELECT row_number, client_id FROM stg_events ORDER BY row_number").fetchall()
    assert got == [
        (1, "1740268800-goodrow00001"),
        (2, "1740268800-goodrow00002"),
        (3, "1740268800-swallowed001"),
        (4, "1740268800-swallowed002"),
    ]
    bad = con.execute("SELECT line, reason, raw FROM stg_rejects ORDER BY line").fetchall()
    assert [(line, reason) for line, reason, _ in bad] == [
        (3, "unquoted_value"),
        (6, "unquoted_value"),
        (8, "too_many_columns"),
    ]
    assert bad[0][2] == lines[2] and bad[2][2] == lines[7]  # the rejected line itself, nothing swallowed
    assert result.lines_read["events_20250223.csv"] == 7
    assert_reconciled(con, result)


@pytest.mark.parametrize("form", ["lf", "crlf", "gzip"])
def test_swallowed_lines_and_line_numbers_after_blank_lines(tmp_path, form):
    """Blank lines, a quoted line break and an unterminated quote in one file, with LF or CRLF
    breaks or gzipped: every reject says its physical line and the swallowed line is read again."""
    import gzip

    raw = tmp_path / "raw"
    raw.mkdir()
    lines = [
        HEADER,
        row("1740268800-twolines0001", "2025-02-23T00:00:01.000Z", ua='"two\nlines"'),  # lines 2-3
        "",
        "",
        row("1740268800-unterminated", "2025-02-23T00:00:02.000Z", ua='"open quote'),  # line 6
        row("1740268800-swallowed001", "2025-02-23T00:00:03.000Z", ua='"quoted, ua"'),  # line 7
        "",
        row("1740268800-toomanyfield", "2025-02-23T00:00:04.000Z", ua="ua,surplus"),  # line 9
        row("1740268800-goodrow00001", "2025-02-23T00:00:05.000Z"),
    ]
    text = "\n".join(lines) + "\n"
    if form == "crlf":
        text = text.replace("\n", "\r\n")
    data = text.encode()
    name = "events_20250223.csv" + (".gz" if form == "gzip" else "")
    (raw / name).write_bytes(gzip.compress(data) if form == "gzip" else data)
    con, result = run(raw)
    assert [(line, reason) for line, _, reason, _ in rejects(con, name)] == [
        (6, "unquoted_value"),
        (9, "too_many_columns"),
    ]
    assert [e[0] for e in events(con, name)] == [
        "1740268800-twolines0001",
        "1740268800-goodrow00001",
        "1740268800-swallowed001",
    ]
    assert result.lines_read[name] == 6  # 3 events + 2 rejects: the quoted line break is a gap of one


def test_a_long_swallow_is_read_again_as_far_as_the_reader_kept_it(tmp_path):
    """DuckDB keeps only the start of a very long broken record: the lines in it are read again,
    never a line cut in the middle, and the rest shows as a reconciliation gap."""
    raw = tmp_path / "raw"
    raw.mkdir()
    filler = [row(f"1740268800-swallow{k:05d}", "2025-02-23T00:00:03.000Z", ua="no quotes here") for k in range(3000)]
    lines = [
        HEADER,
        row("1740268800-unterminated", "2025-02-23T00:00:02.000Z", ua='"open quote'),
        *filler,
        row("1740268800-closes00001", "2025-02-23T00:00:04.000Z", ua='"closing"'),
    ]
    (raw / "events_20250223.csv").write_text("\n".join(lines) + "\n")
    con, result = run(raw)
    got = con.execute("SELECT client_id, user_agent FROM stg_events").fetchall()
    assert 0 < len(got) < 3000
    assert all(ua == "no quotes here" for _, ua in got)  # no row cut short
    assert [c for c, _ in got] == [f"1740268800-swallow{k:05d}" for k in range(len(got))]
    n_rejects = len(rejects(con, "events_20250223.csv"))
    assert result.lines_read["events_20250223.csv"] == 3002 > len(got) + n_rejects


def test_reject_line_numbers_count_the_lines_of_a_quoted_line_break(tmp_path):
    """DuckDB numbers records; the reject says the file's line (a blank line and a record of two
    lines come before it)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    lines = [
        HEADER,
        row("1740268800-twolines0001", "2025-02-23T00:00:01.000Z", ua='"two\nlines"'),
        "",
        row("1740268800-toomanyfield", "2025-02-23T00:00:02.000Z", ua="ua,surplus"),
    ]
    (raw / "events_20250223.csv").write_text("\n".join(lines) + "\n")
    con, result = run(raw)
    assert rejects(con, "events_20250223.csv") == [(5, None, "too_many_columns", None)]
    assert [e[4] for e in events(con, "events_20250223.csv")] == ["two\nlines"]


def test_unreadable_files_are_rejected_not_fatal(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events_20250223.csv").write_bytes(b"")
    (raw / "events_20250224.csv").write_text("client_id,page_url\nabc,https://puffy.com/\n")
    (raw / "events_20250225.csv").write_text(HEADER + "\n" + row("1740441600-stillread001", "2025-02-25T00:00:01Z"))
    con, result = run(raw)
    reasons = con.execute("SELECT source_file, reason, detail FROM stg_rejects ORDER BY 1").fetchall()
    assert reasons == [
        ("events_20250223.csv", "unreadable_file", "file is empty (no header line)"),
        ("events_20250224.csv", "unreadable_file", "required column(s) missing: timestamp, event_name"),
    ]
    assert [e[0] for e in events(con, "events_20250225.csv")] == ["1740441600-stillread001"]


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"h\na\nb", 2),  # no trailing newline (like the real export)
        (b"h\na\nb\n", 2),
        (b"h\r\na\r\n\r\nb\r\n\r\n", 2),  # CRLF with blank lines
        (b"h\n\n\na\n\nb\n\r", 2),  # blank lines, a lone CR at the end
        (b"h", 0),
        (b"", 0),
    ],
)
def test_count_data_lines_skips_blank_lines(tmp_path, content, expected):
    path = tmp_path / "events_20250101.csv"
    path.write_bytes(content)
    for chunk in (1, 2, 3, 1 << 20):  # chunk boundaries anywhere
        assert count_data_lines(path, chunk_size=chunk) == expected


def test_unicode_spaces_are_trimmed_like_trim(tmp_path):
    """Values are trimmed of Unicode space separators (space, NBSP, em / ideographic space), not
    of tabs, whether or not the value needs it."""
    raw = tmp_path / "raw"
    raw.mkdir()
    nbsp, em, ideo = "\u00a0", "\u2003", "\u3000"
    lines = [
        HEADER,
        f"{nbsp}1740268800-unicode00001{ideo},https://puffy.com/,{em}ref{nbsp},"
        f"{nbsp}2025-02-23T00:00:01.000Z{ideo}, {em}page_viewed{nbsp} ,{nbsp},ua",
        "  1740268800-spaces000001  ,https://puffy.com/,   ,  2025-02-23T00:00:02Z  ,  page_viewed  ,  ,ua",
        "1740268800-accentsé00001,https://puffy.com/,é,2025-02-23T00:00:03Z,page_viewed,,ua",
        "\t1740268800-tabbed000001\t,https://puffy.com/,,2025-02-23T00:00:04Z,page_viewed\t,,ua",
    ]
    (raw / "events_20250223.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    con, result = run(raw)
    rows = con.execute(
        "SELECT client_id, referrer, event_ts, event_name, event_data FROM stg_events ORDER BY row_number"
    ).fetchall()
    assert [(r[0], r[1], r[2].isoformat(), r[3], r[4]) for r in rows] == [
        ("1740268800-unicode00001", "ref", "2025-02-23T00:00:01", "page_viewed", None),
        ("1740268800-spaces000001", None, "2025-02-23T00:00:02", "page_viewed", None),
        ("1740268800-accentsé00001", "é", "2025-02-23T00:00:03", "page_viewed", None),
    ]
    assert rejects(con, "events_20250223.csv") == [(None, 4, "unknown_event_name", "event_name")]
    assert_reconciled(con, result)


def test_duplicates_of_rejected_rows(tmp_path):
    """A copy is a duplicate of any earlier identical row, even one rejected for another reason;
    a row rejected for an earlier reason keeps that reason."""
    raw = tmp_path / "raw"
    raw.mkdir()
    next_day = row("1740268800-nextday00001", "2025-02-24T05:00:00.000Z")
    (raw / "events_20250223.csv").write_text(
        "\n".join(
            [
                HEADER,
                next_day,
                row("1740268800-notime000001", ""),
                row("1740268800-notime000001", ""),
                row("1740268800-badtime00001", "23/02/2025"),
                row("1740268800-badtime00001", "23/02/2025"),
            ]
        )
        + "\n"
    )
    (raw / "events_20250224.csv").write_text("\n".join([HEADER, next_day, next_day]) + "\n")
    con, result = run(raw)
    assert rejects(con, "events_20250223.csv") == [
        (None, 1, "timestamp_outside_file_day", "timestamp"),
        (None, 2, "missing_timestamp", "timestamp"),
        (None, 3, "missing_timestamp", "timestamp"),
        (None, 4, "unparseable_timestamp", "timestamp"),
        (None, 5, "unparseable_timestamp", "timestamp"),
    ]
    assert rejects(con, "events_20250224.csv") == [
        (None, 1, "exact_duplicate", None),
        (None, 2, "exact_duplicate", None),
    ]
    assert con.execute("SELECT count(*) FROM stg_events").fetchone() == (0,)
    # stg_events_all: every parsed row, accepted or not.
    assert con.execute("SELECT count(*) FROM stg_events_all").fetchone() == (7,)
    assert_reconciled(con, result)


def test_timestamps_more_than_one_parsed_row_has(tmp_path):
    """``stg_shared_timestamps``, by hand: 00:00:01 twice (one copy an exact duplicate, rejected
    since), 00:00:02 on two different events, no timestamp twice (NULL); 00:00:03, the
    unparseable one and the one of the next day once each."""
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = [
        row("1740268800-client000001", "2025-02-23T00:00:01.000Z"),
        row("1740268800-client000001", "2025-02-23T00:00:01.000Z"),
        row("1740268800-client000001", "2025-02-23T00:00:02.000Z"),
        row("1740268800-client000002", "2025-02-23T00:00:02.000Z", event="product_added_to_cart"),
        row("1740268800-client000002", "2025-02-23T00:00:03.000Z"),
        row("1740268800-client000003", ""),
        row("1740268800-client000004", ""),
        row("1740268800-client000005", "23/02/2025"),
        row("1740268800-client000006", "2025-02-24T00:00:01.000Z"),
    ]
    (raw / "events_20250223.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    con, _ = run(raw)
    shared = con.execute("SELECT event_ts::VARCHAR FROM stg_shared_timestamps ORDER BY 1 NULLS LAST").fetchall()
    assert shared == [("2025-02-23 00:00:01",), ("2025-02-23 00:00:02",), (None,)]


def _many_files(raw: Path, n_files: int = 7) -> None:
    """Files of different sizes (so that they finish loading out of order), with bad lines."""
    raw.mkdir()
    for k in range(n_files):
        day = f"2025-03-{k + 1:02d}"
        body = [
            row(f"17408{k:05d}-file{k:02d}r{i:05d}", f"{day}T00:{i // 60 % 60:02d}:{i % 60:02d}.000Z")
            for i in range(200 if k % 2 else 3000)
        ]
        body.insert(5, "too,few,columns")
        body.insert(9, row("x", f"{day}T01:00:00.000Z") + ",surplus")
        name = f"events_202503{k + 1:02d}.csv"
        text = HEADER + "\n" + "\n".join(body) + "\n"
        if k == 3:
            with gzip.open(raw / (name + ".gz"), "wt") as fh:
                fh.write(text)
        else:
            (raw / name).write_text(text)


def test_files_loaded_concurrently_keep_file_and_row_order(tmp_path):
    raw = tmp_path / "raw"
    _many_files(raw)

    def load(threads: int):
        con = duckdb.connect(config={"threads": threads})
        result = ingest(con, discover_raw_files(raw), RawContract())
        tables = {
            t: con.execute(f"SELECT * FROM {t}").fetchall() for t in ("stg_events", "stg_purchase_items", "stg_rejects")
        }
        return con, result, tables

    con, result, tables = load(4)
    _, result_1, tables_1 = load(1)  # one file after the other
    assert tables == tables_1
    # the gate's scratch databases, in memory and in a file: the worker cursors write where ``con`` reads
    for data_bytes in (1, 10**15):
        scratch = scratch_duckdb(PipelineParams(duckdb_temp_directory=tmp_path / "tmp"), data_bytes=data_bytes)
        ingest(scratch, discover_raw_files(raw), RawContract())
        assert {t: scratch.execute(f"SELECT * FROM {t}").fetchall() for t in tables} == tables
    assert result.lines_read == result_1.lines_read
    ids = [r[0] for r in tables["stg_events"]]
    assert ids == sorted(ids) and len(ids) == 4 * 3000 + 3 * 200
    assert ids[:2] == ["20250301:000000001", "20250301:000000002"]
    assert [(r[1], r[2], r[4]) for r in tables["stg_rejects"]][:2] == [
        ("events_20250301.csv", 7, "missing_columns"),
        ("events_20250301.csv", 11, "too_many_columns"),
    ]
    assert_reconciled(con, result)


def test_a_file_that_fails_to_load_fails_the_ingest(tmp_path, monkeypatch):
    import puffy.ingest as ingest_module

    raw = tmp_path / "raw"
    _many_files(raw)
    real_parse = ingest_module._parse_csv

    def parse(con, tag, f, *args, **kwargs):
        if f.name == "events_20250304.csv.gz":
            con.execute("SELECT error('disk gone')")
        return real_parse(con, tag, f, *args, **kwargs)

    monkeypatch.setattr(ingest_module, "_parse_csv", parse)
    with pytest.raises(duckdb.Error, match="disk gone"):
        run(raw)


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_gzip_that_cannot_be_read_to_its_end_is_an_unreadable_file(tmp_path, damage):
    """Its header reads fine; the body does not. The whole file is rejected with the reason, and the
    files loaded beside it (concurrently) keep every row."""
    raw = tmp_path / "raw"
    _many_files(raw)
    gz = raw / "events_20250304.csv.gz"
    data = gz.read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:  # flip bytes inside the deflate stream, past the header line
        middle = len(data) // 2
        data = data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]
    gz.write_bytes(data)
    con, result = run(raw)
    bad = next(f for f in result.files if f.name == gz.name)
    assert bad.header_error and bad.header_error.startswith("truncated or corrupt, fetch it again: ")
    assert result.lines_read[gz.name] == 0
    assert events(con, gz.name) == []
    assert con.execute("SELECT line, reason FROM stg_rejects WHERE source_file = ?", [gz.name]).fetchall() == [
        (1, "unreadable_file")
    ]
    for k in (0, 1, 2, 4, 5, 6):  # every other file: all its good rows (3000 or 200), two rejected lines
        name = f"events_202503{k + 1:02d}.csv"
        assert len(events(con, name)) == (200 if k % 2 else 3000), name
        assert len(rejects(con, name)) == 2, name


def test_staging_marks_columns_without_nulls_required(tmp_path, fixture_dir):
    """Columns are required in the staging Parquet exactly when the table has no NULL in them,
    also when NULLs were only in rows that were later rejected."""
    import pyarrow.parquet as pq

    from puffy.ingest import write_staging

    con, result = run(fixture_dir)
    days = sorted(f.file_date for f in result.files)
    write_staging(con, tmp_path / "staging", days)
    schema = pq.read_schema(tmp_path / "staging" / "stg_events" / "date=2025-02-24" / "part-0.parquet")
    for name in ("event_id", "timestamp_raw", "event_ts", "event_name"):
        assert not schema.field(name).nullable, name
    for name in ("referrer", "event_data", "transaction_id"):
        assert schema.field(name).nullable, name


@pytest.mark.parametrize("content", [b"h\na\nb\n", b"h\r\na\r\n\r\nb\r\n\r\n", b"h\n\n\na\n\nb\n\r", b""])
def test_count_data_lines_same_for_gzip(tmp_path, content):
    plain, packed = tmp_path / "events_20250101.csv", tmp_path / "events_20250102.csv.gz"
    plain.write_bytes(content)
    with gzip.open(packed, "wb") as fh:
        fh.write(content)
    for chunk in (1, 2, 3, 1 << 20):
        assert count_data_lines(packed, chunk_size=chunk) == count_data_lines(plain, chunk_size=chunk)


def test_a_raw_file_name_with_an_impossible_date_is_an_input_error(tmp_path):
    from puffy.errors import InputDataError

    (tmp_path / "events_20250301.csv").write_text("timestamp,event_name\n")
    (tmp_path / "notes.txt").write_text("not a raw file: ignored\n")
    assert [p.name for p in discover_raw_files(tmp_path)] == ["events_20250301.csv"]
    (tmp_path / "events_20251399.csv").write_text("timestamp,event_name\n")
    with pytest.raises(InputDataError, match="events_20251399.csv: the file name is not a real date"):
        discover_raw_files(tmp_path)
