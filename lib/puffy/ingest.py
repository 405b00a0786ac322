"""The one reader of raw exports: daily CSVs in, one normalized event table out.

Raw data is immutable; this module only reads it. For each ``events_YYYYMMDD.csv[.gz]`` it sniffs
the header (BOM, CRLF, aliases such as ``clientId``, missing / extra / reordered columns), parses
the body with DuckDB's CSV reader in strict mode, and keeps every line it cannot use in a rejects
table with file, line number and reason. A bad line never sinks its file, nor the lines after it:
the lines an unterminated quote swallowed are parsed again (see ``_parse_csv``). A file that cannot
be read to its end (a truncated or corrupt .gz) is rejected whole: its day must not go on with part of it.

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
``stg_events_all`` (a view, not written) — every parsed row, accepted or not.
    The first twelve columns of ``stg_events`` (event_id … user_agent).
``stg_shared_timestamps`` (a temporary table, not written) — event_ts, one row per timestamp that
    more than one parsed row has (NULL among them when several rows have none). Rows that share
    anything with another row that includes their timestamp are among the rows with these
    timestamps: a search for them (exact duplicates here, the gate's same-key check) can start
    there instead of grouping every row.

Every raw data line ends up in exactly one of ``stg_events`` or ``stg_rejects``:
``lines_read = events + rejects`` per file, which the gate checks (``ingest.reconciliation``).
``lines_read`` counts the file's non-blank lines on the raw bytes, independently of the parser.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import shutil
import tempfile
import threading
import zlib
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import duckdb
import numpy as np

from puffy import tables
from puffy.contract import RawContract
from puffy.raw_files import discover_raw_files, file_date_of  # noqa: F401 (discover_raw_files re-exported)
from puffy.warehouse import partition_dir, staging_dir_for, swap_in

# What reading a raw file's bytes raises when the file is damaged (zlib.error: corrupt deflate data).
_UNREADABLE = (OSError, EOFError, zlib.error)


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
    header_error: str | None = None  # why the file cannot be used at all (its header, or its body unreadable)

    @property
    def name(self) -> str:
        return self.path.name


def _open_bytes(path: Path):
    """The file's bytes, decompressed when it is a ``.gz``."""
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def sniff_header(path: Path, contract: RawContract) -> RawFile:
    """Read only the first line of ``path`` and map its columns onto the contract."""
    path = Path(path)
    compressed = path.name.endswith(".gz")
    try:
        with _open_bytes(path) as fh:
            first = fh.readline(1 << 20)
    except _UNREADABLE as exc:
        return _broken(path, contract, compressed, f"cannot read file: {exc}")
    has_bom = first.startswith(codecs.BOM_UTF8)
    if has_bom:
        first = first[len(codecs.BOM_UTF8) :]
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
    return RawFile(
        path,
        file_date_of(path),
        header,
        mapping,
        tuple(renamed),
        missing,
        tuple(extra),
        has_bom,
        crlf,
        compressed,
        error,
    )


def _broken(path: Path, contract: RawContract, compressed: bool, why: str) -> RawFile:
    return RawFile(path, file_date_of(path), (), {}, (), tuple(contract.columns), (), False, False, compressed, why)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class IngestResult:
    """Per-file facts about one ingest (the tables themselves live on the connection)."""

    files: list[RawFile]
    lines_read: dict[str, int] = field(default_factory=dict)


# Columns of a parsed row (``stg_events_all``: the first twelve of ``stg_events``, event_id …
# user_agent), then those of the decoded payload (the rest of ``stg_events``), in order, with their
# types; the rows rejected while parsing (``stg_parse_rejects``, the first part of ``stg_rejects``).
# Declared in lib/puffy/tables.yaml.
_STG_EVENTS_COLUMNS = tables.duckdb_columns("stg_events")
_ROW_COLUMNS, _PAYLOAD_COLUMNS = _STG_EVENTS_COLUMNS[:12], _STG_EVENTS_COLUMNS[12:]
_PARSE_REJECTS_COLUMNS = tables.duckdb_columns("stg_rejects")
_ROW = ", ".join(name for name, _ in _ROW_COLUMNS)
# Parsed rows that are not events, with their reason (``stg_events_all`` = ``stg_events`` + these).
_REJECTED_ROWS = "_ingest_rejected_rows"


def _create_table(con: duckdb.DuckDBPyConnection, table: str, columns: tuple[tuple[str, str], ...]) -> None:
    con.execute(f"CREATE OR REPLACE TABLE {table} (" + ", ".join(f"{n} {t}" for n, t in columns) + ")")


def ingest(con: duckdb.DuckDBPyConnection, paths: list[Path], contract: RawContract) -> IngestResult:
    """Read raw files into ``stg_events``, ``stg_purchase_items`` and ``stg_rejects`` on ``con``.

    Each file is parsed once, straight into ``stg_events`` (several files at a time, see
    ``_load_files``); the parsed rows that are not events are then moved out of it. The view
    ``stg_events_all`` gives every parsed row, accepted or not.
    """
    files = [sniff_header(p, contract) for p in paths]
    _create_table(con, "stg_events", _ROW_COLUMNS + _PAYLOAD_COLUMNS)
    _create_table(con, "stg_parse_rejects", _PARSE_REJECTS_COLUMNS)
    loaded = _load_files(con, files, contract)
    # A body that cannot be read to its end makes the file as unusable as a bad header.
    files = [replace(f, header_error=f.header_error or loaded[i].unreadable) for i, f in enumerate(files)]
    result = IngestResult(files)
    result.lines_read = {f.name: loaded[i].lines for i, f in enumerate(files)}
    _finish(con, contract)
    return result


def _threads(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT current_setting('threads')").fetchone()[0])


def _in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con`` has a transaction open (what it wrote there is invisible to other cursors)."""
    try:
        con.execute("BEGIN TRANSACTION")
    except duckdb.TransactionException:
        return True
    con.execute("COMMIT")
    return False


def _run_workers(con: duckdb.DuckDBPyConnection, workers: int, work, stop) -> None:
    """Run ``work(cursor)`` in ``workers`` threads, each with its own cursor on ``con``.

    If the calling thread is interrupted (Ctrl-C), ``stop()`` tells the workers to take no more
    work, and the exception goes on once they have finished what they were doing. (Interrupting
    their statements instead can leave a cursor that refuses to close.) The threads are waited
    for with a semaphore, not ``Thread.join``: a join interrupted by Ctrl-C can mark a thread
    that is still running as finished.
    """
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    cursors = [con.cursor() for _ in range(workers)]
    for cur in cursors:  # a cursor starts in the instance's default database, not the one ``con`` uses
        cur.execute(f'USE "{database}"')
    finished = threading.Semaphore(0)

    def run(cur: duckdb.DuckDBPyConnection) -> None:
        try:
            work(cur)
        finally:
            finished.release()

    pool = [threading.Thread(target=run, args=(cur,), name=f"puffy-ingest-{k}") for k, cur in enumerate(cursors)]
    for t in pool:
        t.start()
    done = 0
    try:
        while done < workers:
            finished.acquire()
            done += 1
    except BaseException:
        stop()
        while done < workers:
            finished.acquire()
            done += 1
        raise
    finally:
        if done == workers:  # else a second interrupt: the cursors stay with their threads
            for t in pool:
                t.join()
            for cur in cursors:
                cur.close()


@dataclass(frozen=True)
class _Loaded:
    lines: int  # data lines seen
    unreadable: str | None = None  # why the file's body cannot be read (None: it was read)


def _load_files(con: duckdb.DuckDBPyConnection, files: list[RawFile], contract: RawContract) -> dict[int, _Loaded]:
    """``_load_file`` for every file; return what it found per file index.

    Numbering a file's rows in file order (``row_number() OVER ()``) keeps the whole parse of
    that file on one thread. So several files are loaded at once (one more than DuckDB has
    threads, so that no thread idles while a loaded file waits for its turn to commit), each on
    its own cursor and in its own transaction, and the transactions commit in file order: the
    tables end up exactly as if the files had been loaded one after the other.
    """
    threads = _threads(con)
    workers = min(len(files), threads + 1) if threads > 1 else 1
    if workers <= 1 or _in_transaction(con):
        return {i: _load_file(con, i, f, contract) for i, f in enumerate(files)}
    lines: dict[int, _Loaded] = {}
    errors: list[BaseException] = []
    pending = list(enumerate(files))
    committed = [-1]  # index of the last file committed
    turn = threading.Condition()

    def fail(exc: BaseException) -> None:
        with turn:
            errors.append(exc)
            turn.notify_all()

    def work(cur: duckdb.DuckDBPyConnection) -> None:
        while True:
            with turn:
                if errors or not pending:
                    return
                i, f = pending.pop(0)
            try:
                cur.begin()
                n = _load_file(cur, i, f, contract)
                with turn:
                    turn.wait_for(lambda i=i: errors or committed[0] == i - 1)
                    if errors:
                        cur.rollback()
                        return
                    cur.commit()
                    lines[i] = n
                    committed[0] = i
                    turn.notify_all()
            except BaseException as exc:
                fail(exc)
                try:
                    cur.rollback()
                except duckdb.Error:
                    pass  # no transaction left to roll back
                return

    _run_workers(con, workers, work, stop=lambda: fail(KeyboardInterrupt()))
    if errors:
        raise errors[0]
    return lines


def _trimmed(expr: str) -> str:
    """``trim(expr)``, without its cost where it cannot change the value.

    ``trim`` removes Unicode space separators (category Zs), and the only ASCII one is the space:
    a pure ASCII value (as many bytes as characters) that neither starts nor ends with a space
    is its own trim.
    """
    return (
        f"CASE WHEN starts_with({expr}, ' ') OR ends_with({expr}, ' ') OR strlen({expr}) <> length({expr}) "
        f"THEN trim({expr}) ELSE {expr} END"
    )


def _load_file(con: duckdb.DuckDBPyConnection, i: int, f: RawFile, contract: RawContract) -> _Loaded:
    """Append one file's rows to ``stg_events`` / ``stg_parse_rejects``."""

    def unreadable(why: str) -> _Loaded:
        con.execute(
            f"INSERT INTO stg_parse_rejects VALUES ({_sql_str(f.file_date.isoformat())}, {_sql_str(f.name)}, 1, "
            f"NULL, 'unreadable_file', NULL, ?, NULL)",
            [why],
        )
        return _Loaded(0, why)

    if f.header_error:
        return unreadable(f.header_error)
    # Count the file's data lines independently of the parser: a line the parser silently loses
    # must show up as a reconciliation gap, not vanish. The count reads the whole file, so it also
    # finds a file that cannot be read to its end (a truncated or corrupt .gz) before the parser
    # fails on it: such a file is rejected whole, as its day must not go on with part of it.
    try:
        n_lines = count_data_lines(f.path)
    except _UNREADABLE as exc:
        return unreadable(f"truncated or corrupt, fetch it again: {exc or type(exc).__name__}")
    _parse_csv(con, f"{i}", f, contract, f.path, rows_before=0, lines_before=0, data_lines=n_lines)
    return _Loaded(n_lines)


@dataclass
class _Parsed:
    rows: int  # rows the CSV reader accepted (their row_number goes up to rows_before + rows)
    bad_lines: int  # lines rejected by the CSV reader


def _parse_csv(
    con: duckdb.DuckDBPyConnection,
    tag: str,
    f: RawFile,
    contract: RawContract,
    path: Path,
    rows_before: int,
    lines_before: int,
    data_lines: int | None = None,
) -> _Parsed:
    """Parse ``path`` (``f``'s file, or a piece of it after its header) into the staging tables.

    Row numbers continue from ``rows_before``; reject line numbers are the file's (``path``'s
    line n is line ``lines_before + n`` of ``f``). A rejected record that spans several physical
    lines (an unterminated quote runs to the next quote, swallowing the lines in between) is
    rejected as its first line only; the lines after it are parsed again, as rows of their own.
    ``data_lines``, the file's non-blank lines when known, saves a pass over it: with as many
    records as lines, no record spans lines and DuckDB's record numbers are the line numbers.
    """
    day = _sql_str(f.file_date.isoformat())
    name = _sql_str(f.name)
    cols = {f"c{k}": "VARCHAR" for k in range(len(f.header))}
    columns_sql = "{" + ", ".join(f"'{k}': '{v}'" for k, v in cols.items()) + "}"

    def col(canonical: str) -> str:
        return f"c{f.mapping[canonical]}" if canonical in f.mapping else "NULL::VARCHAR"

    formats = "[" + ", ".join(_sql_str(x) for x in contract.timestamp_formats) + "]"
    stem = f.file_date.strftime("%Y%m%d")
    values = [
        # '{stem}:' || lpad(row_number::VARCHAR, 9, '0'), without lpad's cost below a billion rows
        f"CASE WHEN row_number < 1000000000 THEN '{stem}:' || substr((row_number + 1000000000)::VARCHAR, 2) "
        f"ELSE '{stem}:' || lpad(row_number::VARCHAR, 9, '0') END",
        f"{day}::DATE",
        name,
        "row_number",
        f"nullif({_trimmed(col('client_id'))}, '')",
        col("page_url"),
        f"nullif({_trimmed(col('referrer'))}, '')",
        col("timestamp"),
        f"try_strptime({_trimmed(col('timestamp'))}, {formats})",
        f"nullif({_trimmed(col('event_name'))}, '')",
        f"nullif({_trimmed(col('event_data'))}, '')",
        col("user_agent"),
    ]
    row = ", ".join(f"CAST({v} AS {t}) AS {n}" for v, (n, t) in zip(values, _ROW_COLUMNS))
    purchase = _sql_str(contract.purchase_event)
    email = _sql_str(contract.email_event)
    rej, scan = f"_rej_{tag}", f"_scan_{tag}"
    # Parse straight into stg_events, payload decoded on the way: a copy of the file would double
    # the cost of ingest. The payload is decoded only for purchase / email events (CASE evaluates
    # a branch only on the rows that reach it).
    n_ok = con.execute(f"""
        INSERT INTO stg_events
        WITH parsed AS (
            SELECT {row}
            FROM (
                SELECT row_number() OVER () + {rows_before} AS row_number, *
                FROM read_csv({_sql_str(str(path))}, header = true, columns = {columns_sql}, auto_detect = false,
                              delim = ',', quote = '"', escape = '"', strict_mode = true, null_padding = false,
                              store_rejects = true, rejects_table = '{rej}', rejects_scan = '{scan}')
            )
        ),
        checked AS (
            SELECT *, event_name IN ({purchase}, {email}) AS has_payload,
                   CASE WHEN event_name IN ({purchase}, {email}) AND event_data IS NOT NULL
                        THEN json_valid(event_data) ELSE false END AS ok_json
            FROM parsed
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
        FROM checked
    """).fetchone()[0]
    # One reject row per bad line (DuckDB may report several errors for the same line); the
    # reader's column names c0, c1, … are mapped back to the file's header names. DuckDB's
    # ``line`` counts records (a quoted line break makes one record of two lines), so the file's
    # line number is worked out from the byte where the record starts. A record begins with the
    # blank lines before it: ``raw`` is its first non-blank line.
    bad = con.execute(f"""
        SELECT line, first(line_byte_position ORDER BY column_idx),
               lower(replace(first(error_type ORDER BY column_idx), ' ', '_')),
               first(column_name ORDER BY column_idx), first(error_message ORDER BY column_idx),
               ltrim(first(csv_line ORDER BY column_idx), chr(10) || chr(13))
        FROM {rej} GROUP BY line ORDER BY line
    """).fetchall()
    con.execute(f"DROP TABLE IF EXISTS {rej}; DROP TABLE IF EXISTS {scan}")
    parsed = _Parsed(n_ok, len(bad))
    if not bad:
        return parsed
    texts = [b[5] for b in bad]
    swallows = [t.rstrip("\r\n").count("\n") for t in texts]  # lines after the record's first
    index = None
    if data_lines != n_ok + len(bad) or any(swallows):
        index = _LineIndex(path)
        lines = [lines_before + (index.record_line(b[1]) if b[1] is not None else b[0]) for b in bad]
    else:
        lines = [lines_before + b[0] for b in bad]
    con.execute(
        f"""
        INSERT INTO stg_parse_rejects
        SELECT {day}::DATE, {name}, line, NULL, reason,
               coalesce({_header_list(f)}[TRY_CAST(substr(col, 2) AS INTEGER) + 1], col), detail, left(raw, 2000)
        FROM (SELECT unnest(?::BIGINT[]) AS line, unnest(?::VARCHAR[]) AS reason, unnest(?::VARCHAR[]) AS col,
                     unnest(?::VARCHAR[]) AS detail, unnest(?::VARCHAR[]) AS raw)
    """,
        [
            lines,
            [b[2] for b in bad],
            [b[3] for b in bad],
            [b[4] for b in bad],
            [t.split("\n", 1)[0].rstrip("\r") for t in texts],
        ],
    )
    # The lines a broken record swallowed are parsed again, as rows of their own, from the file's
    # bytes. DuckDB keeps only the start of a very long record: the lines past it stay a gap.
    for k, (line, text, n) in enumerate(zip(lines, texts, swallows)):
        if not n:
            continue
        first = line - lines_before + 1  # in ``path``
        n = index.complete_lines(path, first, text.rstrip("\r\n").split("\n")[1:])
        if not n:
            continue
        with tempfile.TemporaryDirectory(prefix="puffy-ingest-") as tmp:
            piece = Path(tmp) / "swallowed.csv"
            with open(piece, "wb") as out:
                eol = "\r\n" if f.crlf else "\n"
                header = io.StringIO()
                csv.writer(header, lineterminator=eol).writerow(f.header)
                out.write(header.getvalue().encode("utf-8"))
                out.write(index.read_lines(path, first, first + n - 1))
            # line n of the piece (after its header) is line (line - 1) + n of the file
            more = _parse_csv(con, f"{tag}_{k}", f, contract, piece, rows_before + parsed.rows, line - 1)
        parsed = _Parsed(parsed.rows + more.rows, parsed.bad_lines + more.bad_lines)
    return parsed


class _LineIndex:
    """Where the physical lines of a (decompressed) file end, and which are blank (one pass)."""

    def __init__(self, path: Path, chunk_size: int = 1 << 24) -> None:
        ends, before_end, last_byte, size = [], [], 10, 0
        for buf in _chunks(path, chunk_size):
            nl = np.flatnonzero(buf == 10)
            ends.append(nl + size)
            before_end.append(np.where(nl > 0, buf[np.maximum(nl - 1, 0)], last_byte))  # byte before each break
            last_byte = int(buf[-1])
            size += len(buf)
        end = np.concatenate(ends).astype(np.int64) if ends else np.empty(0, dtype=np.int64)
        before = np.concatenate(before_end) if before_end else np.empty(0, dtype=np.uint8)
        if size and last_byte != 10:  # a last line without a line break
            end, before = np.append(end, size), np.append(before, last_byte)
        self.end = end  # line k (1-based) is bytes [start[k-1], end[k-1]), its break at end[k-1]
        self.start = np.concatenate([[0], end[:-1] + 1]).astype(np.int64)
        length = self.end - self.start
        self.blank = (length == 0) | ((length == 1) & (before == 13))  # empty, or a lone CR

    def record_line(self, line_byte_position: int) -> int:
        """The line a rejected record starts on: the first non-blank line that starts at or after
        ``line_byte_position - 1`` (DuckDB's position is one past the start on LF files, and the
        start of the blank lines before the record on CRLF files)."""
        k = int(np.searchsorted(self.start, max(line_byte_position - 1, 0), side="left"))
        while k < len(self.blank) and self.blank[k]:
            k += 1
        return k + 1

    def read_lines(self, path: Path, first: int, last: int) -> bytes:
        """The bytes of lines ``first..last`` (1-based), line breaks included."""
        begin, stop = int(self.start[first - 1]), int(min(self.end[last - 1] + 1, self.end[-1] + 1))
        with _open_bytes(path) as fh:
            fh.seek(begin)
            return fh.read(stop - begin)

    def complete_lines(self, path: Path, first: int, seen: list[str]) -> int:
        """How many of the lines from ``first`` on the reader returned whole (``seen``, its text of
        them): the last may have been cut where DuckDB truncates a long record."""
        n = min(len(seen), len(self.end) - first + 1)
        if n and self.read_lines(path, first + n - 1, first + n - 1).decode("utf-8", "replace").rstrip("\r\n") != seen[
            n - 1
        ].rstrip("\r"):
            n -= 1
        return n


def _header_list(f: RawFile) -> str:
    return "[" + ", ".join(_sql_str(h) for h in f.header) + "]"


def count_data_lines(path: Path, chunk_size: int = 1 << 24) -> int:
    """Non-blank lines after the header, counted on the raw bytes (raises what reading raises: ``_UNREADABLE``).

    Blank lines (empty, or a lone CR) are not counted, as DuckDB's reader skips them. Works on
    newline positions with numpy: a line is blank when its newline follows the previous one
    directly, or with only a CR in between. The file is read in chunks of ``chunk_size`` bytes.
    """
    lines = 0
    offset = 0  # bytes before the current chunk
    last_nl = -1  # absolute position of the last newline; -1 = a virtual one before the file
    last_byte = 10
    for buf in _chunks(path, chunk_size):
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
    tail = offset - 1 - last_nl  # bytes after the last newline
    if tail > 1 or (tail == 1 and last_byte != 13):
        lines += 1  # a last line without a trailing newline (the real export has none)
    return int(max(lines - 1, 0))  # minus the header line


def _chunks(path: Path, chunk_size: int):
    """The (decompressed) bytes of ``path`` as non-empty uint8 arrays of at most ``chunk_size``.

    Read, not memory-mapped: a mapping keeps every page it touched resident in the process, so a
    1 GB file would add 1 GB to the gate's peak memory.
    """
    buffer = np.empty(chunk_size, dtype=np.uint8)  # reused: the caller is done with a chunk when it asks for the next
    with _open_bytes(path) as fh:
        while n := fh.readinto(memoryview(buffer)):
            yield buffer[:n]


def _finish(con: duckdb.DuckDBPyConnection, contract: RawContract) -> None:
    """Move row-level rejects out of ``stg_events``; build items, rejects and ``stg_events_all``."""
    events = ", ".join(_sql_str(e) for e in contract.events)
    row = "client_id, page_url, referrer, timestamp_raw, event_name, event_data, user_agent"
    # Exact duplicates (every copy after the first). Identical rows have the same timestamp, so
    # rows are compared in full only where another row has the same parsed timestamp (or none):
    # a window over seven text columns of every row would dominate the ingest time. The shared
    # timestamps are kept for the checks (``stg_shared_timestamps``, see the module docstring).
    con.execute("""
        CREATE OR REPLACE TEMP TABLE stg_shared_timestamps AS
        SELECT event_ts FROM stg_events GROUP BY event_ts HAVING count(*) > 1
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _duplicate_ids AS
        SELECT event_id FROM (
            SELECT event_id, row_number() OVER (PARTITION BY {row} ORDER BY file_date, row_number) AS copy
            FROM stg_events
            WHERE event_ts IS NULL OR event_ts IN (SELECT event_ts FROM stg_shared_timestamps)
        ) WHERE copy > 1
    """)
    # A row is rejected for the first reason that applies, in this order. One of the first five
    # applies exactly when ``invalid`` holds (an empty timestamp does not parse).
    invalid = (
        f"event_ts IS NULL OR CAST(event_ts AS DATE) <> file_date OR event_name IS NULL OR event_name NOT IN ({events})"
    )
    con.execute(f"""
        CREATE OR REPLACE TABLE {_REJECTED_ROWS} AS
        SELECT rid, {_ROW},
            CASE
              WHEN timestamp_raw IS NULL OR trim(timestamp_raw) = '' THEN 'missing_timestamp'
              WHEN event_ts IS NULL THEN 'unparseable_timestamp'
              WHEN CAST(event_ts AS DATE) <> file_date THEN 'timestamp_outside_file_day'
              WHEN event_name IS NULL THEN 'missing_event_name'
              WHEN event_name NOT IN ({events}) THEN 'unknown_event_name'
              WHEN duplicate THEN 'exact_duplicate'
            END AS reject_reason
        FROM (
            SELECT rowid AS rid, *, event_id IN (SELECT event_id FROM _duplicate_ids) AS duplicate FROM stg_events
        )
        WHERE ({invalid}) OR duplicate
        ORDER BY rid
    """)
    con.execute(f"DELETE FROM stg_events WHERE rowid IN (SELECT rid FROM {_REJECTED_ROWS})")
    con.execute(f"ALTER TABLE {_REJECTED_ROWS} DROP COLUMN rid")
    # Every parsed row, accepted or not (the checks count dictionary event names over it).
    if con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND NOT temporary "
        "AND table_name = 'stg_events_all'"
    ).fetchone()[0]:
        con.execute("DROP TABLE stg_events_all")
    con.execute(f"""
        CREATE OR REPLACE VIEW stg_events_all AS
        SELECT {_ROW} FROM stg_events UNION ALL SELECT {_ROW} FROM {_REJECTED_ROWS}
    """)
    purchase = _sql_str(contract.purchase_event)
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
    con.execute(f"""
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
        FROM {_REJECTED_ROWS}
    """)
    con.execute("DROP TABLE _duplicate_ids")


STAGING_TABLES = ("stg_events", "stg_purchase_items", "stg_rejects")


def write_staging(con: duckdb.DuckDBPyConnection, root: Path, days: list[date]) -> None:
    """Write each staging table as one Parquet partition per day under ``root`` (atomic per day).

    A column is written as required when the table holds no NULL in it, as optional otherwise
    (the same for every day), whatever DuckDB's statistics say (they still count the NULLs of
    the rows ingest moved out of ``stg_events``). Partitions are written concurrently, one per
    DuckDB thread: one day's COPY alone does not keep them all busy.
    """
    jobs = []
    for table in STAGING_TABLES:
        columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        counts = con.execute(f"SELECT count(*), {', '.join(f'count({c})' for c in columns)} FROM {table}").fetchone()
        # Filtering on IS NOT NULL where nothing is NULL removes no row; it tells the writer so.
        required = "".join(f" AND {c} IS NOT NULL" for c, n in zip(columns, counts[1:]) if n == counts[0])
        jobs += [(table, d, required) for d in days]

    def write(cur: duckdb.DuckDBPyConnection, table: str, d: date, required: str) -> None:
        final = partition_dir(root, table, d)
        tmp = staging_dir_for(final)
        try:
            cur.execute(
                f"COPY (SELECT * FROM {table} WHERE file_date = DATE '{d.isoformat()}'{required}) "
                f"TO {_sql_str(str(tmp / 'part-0.parquet'))} (FORMAT parquet)"
            )
            swap_in(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    workers = min(len(jobs), _threads(con))
    if workers <= 1 or _in_transaction(con):
        for job in jobs:
            write(con, *job)
        return
    errors: list[BaseException] = []
    lock = threading.Lock()

    def fail(exc: BaseException) -> None:
        with lock:
            errors.append(exc)

    def work(cur: duckdb.DuckDBPyConnection) -> None:
        while True:
            with lock:
                if errors or not jobs:
                    return
                job = jobs.pop(0)
            try:
                write(cur, *job)
            except BaseException as exc:
                fail(exc)
                return

    _run_workers(con, workers, work, stop=lambda: fail(KeyboardInterrupt()))
    if errors:
        raise errors[0]
