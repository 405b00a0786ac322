"""Raw ingest: every line becomes an event or a reject with file, line / row and reason.

Hand-built fixtures live in ``tests/fixtures/ingest``; byte-level variants (BOM, CRLF, gzip,
undecodable bytes) are written into ``tmp_path`` by the tests themselves.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import duckdb
import pytest

from puffy.ingest import RawContract, count_data_lines, discover_raw_files, ingest

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
HEADER = "client_id,page_url,referrer,timestamp,event_name,event_data,user_agent"


def row(client: str, ts: str, event: str = "page_viewed", url: str = "https://puffy.com/", ua: str = "ua") -> str:
    return f"{client},{url},,{ts},{event},,{ua}"


def run(directory: Path):
    con = duckdb.connect()
    result = ingest(con, discover_raw_files(directory), RawContract())
    return con, result


def events(con, file_name: str) -> list[tuple]:
    return con.execute("SELECT client_id, page_url, referrer, event_name, user_agent FROM stg_events "
                       "WHERE source_file = ? ORDER BY row_number", [file_name]).fetchall()


def rejects(con, file_name: str) -> list[tuple]:
    return con.execute("SELECT line, row_number, reason, column_name FROM stg_rejects WHERE source_file = ? "
                       "ORDER BY line NULLS LAST, row_number", [file_name]).fetchall()


def assert_reconciled(con, result):
    for name, lines in result.lines_read.items():
        n_events = con.execute("SELECT count(*) FROM stg_events WHERE source_file = ?", [name]).fetchone()[0]
        n_rejects = con.execute(
            "SELECT count(*) FROM stg_rejects WHERE source_file = ? AND reason <> 'unreadable_file'", [name]
        ).fetchone()[0]
        assert lines == n_events + n_rejects, name


@pytest.fixture
def fixture_dir(tmp_path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "raw")
    return tmp_path / "raw"


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
    body = [row("1740268800-bomcrlf00001", "2025-02-23T00:00:01.000Z", ua='"Mozilla/5.0 (X11, Linux)"'),
            row("1740268800-bomcrlf00002", "2025-02-23T00:00:02Z", ua="plain-ua")]
    (raw / "events_20250223.csv").write_bytes(("\ufeff" + HEADER + "\r\n" + "\r\n".join(body) + "\r\n").encode())
    with gzip.open(raw / "events_20250224.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write(HEADER + "\n" + row("1740355200-gzipped00001", "2025-02-24T10:00:00.000Z") + "\n")
    con, result = run(raw)
    first, second = result.files
    assert first.has_bom and first.crlf and not first.compressed
    assert second.compressed and not second.has_bom
    # No BOM in the first column's name and no CR left at the end of the last column.
    assert [(e[0], e[4]) for e in events(con, first.name)] == [
        ("1740268800-bomcrlf00001", "Mozilla/5.0 (X11, Linux)"), ("1740268800-bomcrlf00002", "plain-ua")]
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


def test_a_line_swallowed_by_an_unterminated_quote_shows_as_a_gap(tmp_path):
    """The quote opened on line 2 runs to the end of the file, so line 3 is never parsed: the
    physical line count exposes the loss instead of hiding it."""
    raw = tmp_path / "raw"
    raw.mkdir()
    lines = [HEADER, row("1740268800-unterminated", "2025-02-23T00:00:01.000Z", ua='"open quote'),
             row("1740268800-swallowed001", "2025-02-23T00:00:02.000Z")]
    (raw / "events_20250223.csv").write_text("\n".join(lines) + "\n")
    con, result = run(raw)
    n_events = len(events(con, "events_20250223.csv"))
    n_rejects = len(rejects(con, "events_20250223.csv"))
    assert result.lines_read["events_20250223.csv"] == 2
    assert n_events + n_rejects == 1


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


@pytest.mark.parametrize("content, expected", [
    (b"h\na\nb", 2),  # no trailing newline (like the real export)
    (b"h\na\nb\n", 2),
    (b"h\r\na\r\n\r\nb\r\n\r\n", 2),  # CRLF with blank lines
    (b"h\n\n\na\n\nb\n\r", 2),  # blank lines, a lone CR at the end
    (b"h", 0),
    (b"", 0),
])
def test_count_data_lines_skips_blank_lines(tmp_path, content, expected):
    path = tmp_path / "events_20250101.csv"
    path.write_bytes(content)
    for chunk in (1, 2, 3, 1 << 20):  # chunk boundaries anywhere
        assert count_data_lines(path, chunk_size=chunk) == expected
