"""The one reader of raw exports: daily CSVs in, one normalized event table out.

Raw data is immutable; this module only reads it. For each ``events_YYYYMMDD.csv[.gz]`` it sniffs
the header (BOM, CRLF, aliases such as ``clientId``, missing / extra / reordered columns), parses
the body with DuckDB's CSV reader in strict mode, and keeps every line it cannot use in a rejects
table with file, line number and reason. A bad line never sinks its file.

Tables built on the DuckDB connection (and written as Parquet partitions by ``write_staging``):

``stg_events`` — one row per accepted raw event.
    event_id (``YYYYMMDD:row``), file_date, source_file, row_number (n-th parsed data row of the
    file), client_id (NULL when empty), page_url, referrer (NULL when empty or the column is
    absent), timestamp_raw, event_ts (UTC, naive), event_name, event_data, user_agent, and for
    purchase / email events the decoded payload: payload_error (NULL when valid), transaction_id,
    revenue (DOUBLE), revenue_json_type, user_email, item_count.
``stg_purchase_items`` — one row per item of a purchase payload.
    event_id, transaction_id, line_number (1-based), item_id, item_name, item_variant, quantity,
    item_price (the line total, as exported), file_date.
``stg_rejects`` — one row per raw line or parsed row that is not an event.
    file_date, source_file, line (file line number; NULL for rows rejected after parsing),
    row_number, reason, column_name, detail, raw.

Every raw data line ends up in exactly one of ``stg_events`` or ``stg_rejects``:
``lines_read = events + rejects`` per file, which the gate checks (``ingest.reconciliation``).
``lines_read`` counts the file's non-blank lines on the raw bytes, independently of the parser.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
from pydantic import Field

from puffy.errors import InputDataError
from puffy.params import StrictModel

RAW_FILE_RE = re.compile(r"^events_(\d{8})\.csv(\.gz)?$")


class RawContract(StrictModel):
    """What a raw export is supposed to look like (the ``contract`` section of ``dq_rules.yaml``)."""

    columns: list[str] = Field(
        ["client_id", "page_url", "referrer", "timestamp", "event_name", "event_data", "user_agent"],
        description="Canonical column names, in the documented order.",
    )
    aliases: dict[str, str] = Field(
        {"clientid": "client_id"},
        description="Other header spellings (matched case-insensitively) mapped to canonical names.",
    )
    required_columns: list[str] = Field(
        ["timestamp", "event_name"], description="Without these a file yields no usable event."
    )
    events: list[str] = Field(
        ["page_viewed", "email_filled_on_popup", "product_added_to_cart", "checkout_started", "checkout_completed"],
        description="The event taxonomy; rows with another event_name are rejected as unknown.",
    )
    purchase_event: str = Field("checkout_completed", description="The event that records an order.")
    email_event: str = Field("email_filled_on_popup", description="The event that carries a hashed email.")
    dictionary_purchase_event: str = Field(
        "purchase", description="What the vendor's data dictionary calls the purchase (reported if different)."
    )
    timestamp_formats: list[str] = Field(
        ["%Y-%m-%dT%H:%M:%S.%gZ", "%Y-%m-%dT%H:%M:%SZ"], description="Accepted timestamp formats (UTC)."
    )
    client_id_pattern: str = Field(
        r"^(\d{9,11}-[A-Za-z0-9_-]{12}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$",
        description="Well-formed client ids: '<unix seconds>-<12 chars>' or a UUID.",
    )


@dataclass(frozen=True)
class RawFile:
    """What the header of one raw file says, before its body is read."""

    path: Path
    file_date: date
    header: tuple[str, ...]
    mapping: dict[str, int]  # canonical column -> position in the file
    renamed: tuple[tuple[str, str], ...]  # (name in file, canonical) for alias matches
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    has_bom: bool
    crlf: bool
    compressed: bool
    header_error: str | None = None

    @property
    def name(self) -> str:
        return self.path.name


def file_date_of(path: Path) -> date | None:
    m = RAW_FILE_RE.match(path.name)
    return datetime.strptime(m.group(1), "%Y%m%d").date() if m else None


def discover_raw_files(input_dir: Path, start: date | None = None, end: date | None = None) -> list[Path]:
    """Raw files in ``input_dir`` whose date is within [start, end], in date order.

    When both a ``.csv`` and a ``.csv.gz`` exist for a day, the plain CSV wins.
    """
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise InputDataError(f"{input_dir}: input directory not found (expected events_YYYYMMDD.csv files)")
    by_day: dict[date, Path] = {}
    for p in sorted(input_dir.iterdir()):
        d = file_date_of(p)
        if d is None or (start and d < start) or (end and d > end):
            continue
        if d not in by_day or p.suffix == ".csv":
            by_day[d] = p
    return [by_day[d] for d in sorted(by_day)]


def _open_text(path: Path):
    raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    return raw


def sniff_header(path: Path, contract: RawContract) -> RawFile:
    """Read only the first line of ``path`` and map its columns onto the contract."""
    path = Path(path)
    compressed = path.name.endswith(".gz")
    try:
        with _open_text(path) as fh:
            first = fh.readline(1 << 20)
    except (OSError, EOFError) as exc:
        return _broken(path, contract, compressed, f"cannot read file: {exc}")
    has_bom = first.startswith(codecs.BOM_UTF8)
    if has_bom:
        first = first[len(codecs.BOM_UTF8):]
    crlf = first.endswith(b"\r\n")
    try:
        text = first.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return _broken(path, contract, compressed, "header line is not valid UTF-8")
    if not text.strip():
        return _broken(path, contract, compressed, "file is empty (no header line)")
    header = tuple(next(csv.reader(io.StringIO(text))))
    canonical = {c.lower(): c for c in contract.columns}
    aliases = {k.lower(): v for k, v in contract.aliases.items()}
    mapping: dict[str, int] = {}
    renamed, extra = [], []
    for pos, name in enumerate(header):
        key = name.strip().lower()
        target = canonical.get(key) or aliases.get(key)
        if target is None or target in mapping:
            extra.append(name)
            continue
        mapping[target] = pos
        if name.strip() != target:
            renamed.append((name, target))
    missing = tuple(c for c in contract.columns if c not in mapping)
    error = None
    if any(c in missing for c in contract.required_columns):
        error = "required column(s) missing: " + ", ".join(c for c in contract.required_columns if c in missing)
    return RawFile(path, file_date_of(path), header, mapping, tuple(renamed), missing, tuple(extra),
                   has_bom, crlf, compressed, error)


def _broken(path: Path, contract: RawContract, compressed: bool, why: str) -> RawFile:
    return RawFile(path, file_date_of(path), (), {}, (), tuple(contract.columns), (), False, False, compressed, why)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class IngestResult:
    """Per-file facts about one ingest (the tables themselves live on the connection)."""

    files: list[RawFile]
    lines_read: dict[str, int] = field(default_factory=dict)


_EVENTS_DDL = """
CREATE OR REPLACE TABLE stg_events_all (
    event_id VARCHAR, file_date DATE, source_file VARCHAR, row_number BIGINT, client_id VARCHAR,
    page_url VARCHAR, referrer VARCHAR, timestamp_raw VARCHAR, event_ts TIMESTAMP, event_name VARCHAR,
    event_data VARCHAR, user_agent VARCHAR);
CREATE OR REPLACE TABLE stg_parse_rejects (
    file_date DATE, source_file VARCHAR, line BIGINT, row_number BIGINT, reason VARCHAR,
    column_name VARCHAR, detail VARCHAR, raw VARCHAR);
"""


def ingest(con: duckdb.DuckDBPyConnection, paths: list[Path], contract: RawContract) -> IngestResult:
    """Read raw files into ``stg_events``, ``stg_purchase_items`` and ``stg_rejects`` on ``con``."""
    con.execute(_EVENTS_DDL)
    files = [sniff_header(p, contract) for p in paths]
    result = IngestResult(files)
    for f in files:
        result.lines_read[f.name] = _load_file(con, f, contract)
    _finish(con, contract)
    return result


def _load_file(con: duckdb.DuckDBPyConnection, f: RawFile, contract: RawContract) -> int:
    """Append one file's rows to ``stg_events_all`` / ``stg_parse_rejects``; return data lines seen."""
    day = _sql_str(f.file_date.isoformat())
    name = _sql_str(f.name)
    if f.header_error:
        con.execute(
            f"INSERT INTO stg_parse_rejects VALUES ({day}, {name}, 1, NULL, 'unreadable_file', NULL, ?, NULL)",
            [f.header_error],
        )
        return 0
    cols = {f"c{i}": "VARCHAR" for i in range(len(f.header))}
    columns_sql = "{" + ", ".join(f"'{k}': '{v}'" for k, v in cols.items()) + "}"

    def col(canonical: str) -> str:
        return f"c{f.mapping[canonical]}" if canonical in f.mapping else "NULL::VARCHAR"

    formats = "[" + ", ".join(_sql_str(x) for x in contract.timestamp_formats) + "]"
    stem = f.file_date.strftime("%Y%m%d")
    # Parse straight into stg_events_all: a temporary copy of the file would double the cost of ingest.
    n_ok = con.execute(f"""
        INSERT INTO stg_events_all
        SELECT '{stem}:' || lpad(row_number::VARCHAR, 9, '0'), {day}::DATE, {name}, row_number,
               nullif(trim({col('client_id')}), ''), {col('page_url')}, nullif(trim({col('referrer')}), ''),
               {col('timestamp')}, try_strptime(trim({col('timestamp')}), {formats}),
               nullif(trim({col('event_name')}), ''), nullif(trim({col('event_data')}), ''), {col('user_agent')}
        FROM (
            SELECT row_number() OVER () AS row_number, *
            FROM read_csv({_sql_str(str(f.path))}, header = true, columns = {columns_sql}, auto_detect = false,
                          delim = ',', quote = '"', escape = '"', strict_mode = true, null_padding = false,
                          store_rejects = true, rejects_table = '_rej', rejects_scan = '_scan')
        )
    """).fetchone()[0]
    # One reject row per bad line (DuckDB may report several errors for the same line); the
    # reader's column names c0, c1, … are mapped back to the file's header names.
    header = "[" + ", ".join(_sql_str(h) for h in f.header) + "]"
    con.execute(f"""
        INSERT INTO stg_parse_rejects
        SELECT {day}::DATE, {name}, line, NULL, lower(replace(first(error_type ORDER BY column_idx), ' ', '_')),
               coalesce({header}[TRY_CAST(substr(first(column_name ORDER BY column_idx), 2) AS INTEGER) + 1],
                        first(column_name ORDER BY column_idx)),
               first(error_message ORDER BY column_idx),
               left(trim(first(csv_line ORDER BY column_idx), chr(10) || chr(13)), 2000)
        FROM _rej GROUP BY line
    """)
    n_bad = con.execute("SELECT count(DISTINCT line) FROM _rej").fetchone()[0]
    con.execute("DROP TABLE IF EXISTS _rej; DROP TABLE IF EXISTS _scan")
    # Count the file's data lines independently of the parser: a line the parser silently loses
    # (e.g. swallowed by an unterminated quote) must show up as a reconciliation gap, not vanish.
    n_lines = count_data_lines(f.path)
    return n_lines if n_lines is not None else n_ok + n_bad


def count_data_lines(path: Path, chunk_size: int = 1 << 24) -> int | None:
    """Non-blank lines after the header, counted on the raw bytes (``None`` if unreadable).

    Blank lines (empty, or a lone CR) are not counted, as DuckDB's reader skips them. Works on
    newline positions with numpy: a line is blank when its newline follows the previous one
    directly, or with only a CR in between.
    """
    lines = 0
    offset = 0  # bytes before the current chunk
    last_nl = -1  # absolute position of the last newline; -1 = a virtual one before the file
    last_byte = 10
    try:
        with _open_text(path) as fh:
            while chunk := fh.read(chunk_size):
                buf = np.frombuffer(chunk, dtype=np.uint8)
                nl = np.flatnonzero(buf == 10) + offset
                if len(nl):
                    gap = np.diff(nl, prepend=last_nl)  # line length + 1
                    blank = np.count_nonzero(gap == 1)
                    one_byte = nl[gap == 2] - 1 - offset  # index of a one-byte line's byte (-1: previous chunk)
                    if len(one_byte):
                        values = np.where(one_byte >= 0, buf[np.maximum(one_byte, 0)], last_byte)
                        blank += int(np.count_nonzero(values == 13))
                    lines += len(nl) - blank
                    last_nl = int(nl[-1])
                last_byte = int(buf[-1])
                offset += len(buf)
    except (OSError, EOFError):
        return None
    tail = offset - 1 - last_nl  # bytes after the last newline
    if tail > 1 or (tail == 1 and last_byte != 13):
        lines += 1  # a last line without a trailing newline (the real export has none)
    return int(max(lines - 1, 0))  # minus the header line


def _finish(con: duckdb.DuckDBPyConnection, contract: RawContract) -> None:
    """Split parsed rows into accepted events and row-level rejects; decode purchase payloads."""
    events = ", ".join(_sql_str(e) for e in contract.events)
    row = "client_id, page_url, referrer, timestamp_raw, event_name, event_data, user_agent"
    # Exact duplicates (every copy after the first). Rows are compared in full only within groups
    # sharing a row hash: a window over seven text columns of every row dominated the ingest time.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _duplicate_ids AS
        WITH hashed AS (SELECT rowid AS rid, hash({row}) AS row_hash FROM stg_events_all),
        repeated AS (SELECT row_hash FROM hashed GROUP BY row_hash HAVING count(*) > 1),
        ranked AS (
            SELECT event_id, row_number() OVER (PARTITION BY {row} ORDER BY file_date, row_number) AS copy
            FROM stg_events_all
            WHERE rowid IN (SELECT rid FROM hashed WHERE row_hash IN (SELECT row_hash FROM repeated))
        )
        SELECT event_id FROM ranked WHERE copy > 1
    """)
    # Reasons are checked in this order; the first that applies is the row's reason.
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _classified AS
        SELECT *,
            CASE
              WHEN timestamp_raw IS NULL OR trim(timestamp_raw) = '' THEN 'missing_timestamp'
              WHEN event_ts IS NULL THEN 'unparseable_timestamp'
              WHEN CAST(event_ts AS DATE) <> file_date THEN 'timestamp_outside_file_day'
              WHEN event_name IS NULL THEN 'missing_event_name'
              WHEN event_name NOT IN ({events}) THEN 'unknown_event_name'
              WHEN event_id IN (SELECT event_id FROM _duplicate_ids) THEN 'exact_duplicate'
            END AS reject_reason
        FROM stg_events_all
    """)
    purchase = _sql_str(contract.purchase_event)
    email = _sql_str(contract.email_event)
    con.execute(f"""
        CREATE OR REPLACE TABLE stg_events AS
        WITH base AS (
            SELECT * EXCLUDE (reject_reason),
                   event_name IN ({purchase}, {email}) AS has_payload,
                   event_name IN ({purchase}, {email}) AND event_data IS NOT NULL AND json_valid(event_data) AS ok_json
            FROM _classified WHERE reject_reason IS NULL
        )
        SELECT * EXCLUDE (has_payload, ok_json),
            CASE WHEN NOT has_payload THEN NULL
                 WHEN event_data IS NULL THEN 'missing_payload'
                 WHEN NOT ok_json THEN 'invalid_json' END AS payload_error,
            CASE WHEN ok_json AND event_name = {purchase} THEN json_extract_string(event_data, '$.transaction_id') END
                AS transaction_id,
            CASE WHEN ok_json AND event_name = {purchase}
                 THEN TRY_CAST(json_extract_string(event_data, '$.revenue') AS DOUBLE) END AS revenue,
            CASE WHEN ok_json AND event_name = {purchase}
                 THEN coalesce(json_type(event_data, '$.revenue'), 'MISSING') END AS revenue_json_type,
            CASE WHEN ok_json THEN json_extract_string(event_data, '$.user_email') END AS user_email,
            CASE WHEN ok_json AND event_name = {purchase} AND json_type(event_data, '$.items') = 'ARRAY'
                 THEN json_array_length(event_data, '$.items') END AS item_count
        FROM base
    """)
    con.execute(f"""
        CREATE OR REPLACE TABLE stg_purchase_items AS
        WITH items AS (
            SELECT event_id, transaction_id, file_date,
                   unnest(json_extract(event_data, '$.items[*]')) AS item,
                   generate_subscripts(json_extract(event_data, '$.items[*]'), 1) AS line_number
            FROM stg_events
            WHERE event_name = {purchase} AND payload_error IS NULL AND item_count > 0
        )
        SELECT event_id, transaction_id, line_number,
               json_extract_string(item, '$.item_id') AS item_id,
               json_extract_string(item, '$.item_name') AS item_name,
               json_extract_string(item, '$.item_variant') AS item_variant,
               TRY_CAST(json_extract_string(item, '$.quantity') AS DOUBLE) AS quantity,
               TRY_CAST(json_extract_string(item, '$.item_price') AS DOUBLE) AS item_price,
               file_date
        FROM items
    """)
    con.execute("""
        CREATE OR REPLACE TABLE stg_rejects AS
        SELECT * FROM stg_parse_rejects
        UNION ALL
        SELECT file_date, source_file, NULL, row_number, reject_reason,
               CASE WHEN reject_reason LIKE '%timestamp%' THEN 'timestamp'
                    WHEN reject_reason LIKE '%event_name%' THEN 'event_name' END,
               CASE reject_reason
                 WHEN 'missing_timestamp' THEN 'timestamp is empty'
                 WHEN 'unparseable_timestamp' THEN 'timestamp ' || timestamp_raw || ' is not YYYY-MM-DDTHH:MM:SS.sssZ'
                 WHEN 'timestamp_outside_file_day' THEN 'timestamp ' || timestamp_raw || ' is not on ' || file_date
                 WHEN 'missing_event_name' THEN 'event_name is empty'
                 WHEN 'unknown_event_name' THEN 'event_name ' || event_name || ' is not in the contract'
                 WHEN 'exact_duplicate' THEN 'identical to an earlier row'
               END,
               concat_ws(',', client_id, page_url, referrer, timestamp_raw, event_name, event_data, user_agent)
        FROM _classified WHERE reject_reason IS NOT NULL
    """)
    con.execute("DROP VIEW _classified; DROP TABLE _duplicate_ids")


STAGING_TABLES = ("stg_events", "stg_purchase_items", "stg_rejects")


def write_staging(con: duckdb.DuckDBPyConnection, root: Path, days: list[date]) -> None:
    """Write each staging table as one Parquet partition per day under ``root`` (atomic per day)."""
    from puffy.warehouse import partition_dir, staging_dir_for, swap_in
    import shutil

    for table in STAGING_TABLES:
        for d in days:
            final = partition_dir(root, table, d)
            tmp = staging_dir_for(final)
            try:
                con.execute(
                    f"COPY (SELECT * FROM {table} WHERE file_date = DATE '{d.isoformat()}') "
                    f"TO {_sql_str(str(tmp / 'part-0.parquet'))} (FORMAT parquet)"
                )
                swap_in(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
