"""Partitioned Parquet storage with atomic per-date replacement.

Layout: ``<root>/<table>/date=YYYY-MM-DD/part-0.parquet``. A date's partition is written into a
temporary sibling directory (``.date=…tmp-<pid>-<id>``) and swapped in: on Linux with one atomic
exchange of the two directories (``renameat2(RENAME_EXCHANGE)``), so readers see either the old
partition or the new one and re-running a date replaces it. Elsewhere the swap is two renames
(old aside, new in); a crash between them leaves the old partition in a ``.date=…old-<id>``
directory, which the next write to the table puts back (``sweep_leftovers``), as it removes the
temporary directories of writers that are no longer running.

That swap is per partition. A day's tables are published together by ``puffy.publish`` (a
journal, rolled forward by the next reader or writer); the readers here (``partition_dates``,
``partition_files``, ``newest_warehouse``) complete an interrupted publish before reading.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
import uuid
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

#: Written by ``puffy.publish.publish`` while a day's partitions are being swapped in; its
#: presence means a publish is running or was interrupted (see ``puffy.publish``).
PUBLISH_JOURNAL = ".publish-journal.json"


def settle_publish(root: Path) -> None:
    """Before reading ``root``: complete a publish that was interrupted there (``puffy.publish.recover``),
    so a reader never sees half a day; ``UserError`` when that is needed and ``root`` is read-only.
    One ``stat`` when there is nothing to do; nothing for object storage (its manifest needs no recovery)."""
    if _is_object_store(root):
        return
    if (Path(root) / PUBLISH_JOURNAL).exists():
        from puffy.publish import recover  # publish builds on this module

        recover(root)


def partition_dir(root: Path, table: str, day: date) -> Path:
    return Path(root) / table / f"date={day.isoformat()}"


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _load_renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2  # the process's own libc; glibc >= 2.28
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _load_renameat2()


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange the paths ``a`` and ``b``; False where the OS or file system cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def swap_in(tmp_dir: Path, final_dir: Path) -> None:
    """Make ``tmp_dir`` the content of ``final_dir`` (replacing any previous one) atomically."""
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    if not final_dir.exists():
        os.rename(tmp_dir, final_dir)
    elif _exchange(tmp_dir, final_dir):
        shutil.rmtree(tmp_dir, ignore_errors=True)  # now holds the previous partition
    else:
        old = final_dir.with_name(f".{final_dir.name}.{pid_tag('old')}")
        os.rename(final_dir, old)
        os.rename(tmp_dir, final_dir)
        shutil.rmtree(old, ignore_errors=True)


def staging_dir_for(final_dir: Path) -> Path:
    """A new temporary sibling of ``final_dir``, named after this process (see ``sweep_leftovers``)."""
    sweep_leftovers(final_dir.parent)
    tmp = final_dir.with_name(f".{final_dir.name}.{pid_tag('tmp')}")
    tmp.mkdir(parents=True)
    return tmp


def pid_tag(kind: str) -> str:
    """``<kind>-<pid>-<random>``: names a temporary directory after the process that owns it."""
    return f"{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _process_running(pid: int) -> bool:
    """Whether a process with this pid runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def owner_gone(tag: str) -> bool:
    """Whether the process named in a ``pid_tag`` (``<kind>-<pid>-<id>``) has ended.

    Tags without a pid (written before pids were recorded) count as ended.
    """
    parts = tag.split("-")
    return len(parts) != 3 or not parts[1].isdigit() or not _process_running(int(parts[1]))


def sweep_leftovers(table_dir: Path) -> list[Path]:
    """Clean what killed writers left in ``table_dir``; return the directories cleaned.

    Only directories of processes no longer running on this machine are touched (a writer on
    another machine sharing the directory would look dead: one writer host per warehouse):

    * ``.date=D.tmp-<pid>-<id>``: removed;
    * ``.date=D.old-<pid>-<id>``: put back as ``date=D`` when that is missing (the writer died
      between the two renames of the fallback swap), else removed.
    """
    table_dir = Path(table_dir)
    if not table_dir.is_dir():
        return []
    cleaned = []
    for child in table_dir.iterdir():
        if not (child.name.startswith(".date=") and child.is_dir()):
            continue
        final_name, _, tag = child.name[1:].rpartition(".")
        if not (tag.startswith(("tmp-", "old-")) and owner_gone(tag)):
            continue
        final = table_dir / final_name
        try:
            if tag.startswith("old-") and not final.exists():
                os.rename(child, final)
            else:
                shutil.rmtree(child)
        except OSError:  # another thread of this process swept it first
            continue
        cleaned.append(child)
    return cleaned


#: Rows per Parquet row group of a streamed partition: fixed, so a partition's bytes depend on
#: its rows only, not on how they arrived (a day-by-day run and a rebuild write the same file).
ROW_GROUP_ROWS = 122_880  # DuckDB's own row-group size


class PartitionWriter:
    """Stream one date partition to Parquet in fixed-size row groups; swap it in on ``commit``.

    Holds at most one row group of rows in memory, however large the partition; ``finish``
    writes the last row group and closes the file (so a long rebuild keeps one file open at a
    time). Use as a context manager: leaving the block without ``commit`` (an exception)
    discards the temporary directory and leaves the previous partition in place.
    """

    def __init__(self, root: Path, table: str, day: date, schema: pa.Schema) -> None:
        self.final = partition_dir(root, table, day)
        self.schema = schema
        self.rows = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self.tmp = staging_dir_for(self.final)
        try:
            self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self.tmp / "part-0.parquet", schema)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self._committed = False

    def __enter__(self) -> PartitionWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._committed:  # discard
            try:
                if self._writer is not None:
                    self._writer.close()
            finally:
                shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, data: pa.Table) -> None:
        self._buffer.append(data)
        self._buffered += data.num_rows
        while self._buffered >= ROW_GROUP_ROWS:
            self._flush(ROW_GROUP_ROWS)

    def _flush(self, n: int) -> None:
        data = pa.concat_tables(self._buffer)
        self._writer.write_table(data.slice(0, n).combine_chunks(), row_group_size=n)
        rest = data.slice(n)
        self._buffer, self._buffered = ([rest] if rest.num_rows else []), rest.num_rows
        self.rows += n

    def finish(self) -> None:
        """Write the buffered rows (the last, shorter row group) and close the file: no more rows."""
        if self._writer is None:
            return
        if self._buffered:
            self._flush(self._buffered)
        self._writer.close()  # with no rows: a valid file with the schema and no row group
        self._writer = None

    def commit(self) -> Path:
        self.finish()
        swap_in(self.tmp, self.final)
        self._committed = True
        return self.final


def write_partition(root: Path, table: str, day: date, data: pa.Table) -> Path:
    """Replace one date partition of ``table`` with ``data`` atomically; return its directory."""
    with PartitionWriter(root, table, day, data.schema) as writer:
        writer.write(data)
        return writer.commit()


def partition_dates(root: Path, table: str) -> list[date]:
    """Dates that have a complete partition of ``table`` (temporary directories are ignored; an
    interrupted publish is completed first, see ``settle_publish``). In object storage: the dates the
    publish manifest names (``puffy.publish.published_dates``)."""
    if _is_object_store(root):
        from puffy.publish import published_dates

        return published_dates(root, table)
    settle_publish(root)
    base = Path(root) / table
    if not base.is_dir():
        return []
    out = []
    for child in base.iterdir():
        if child.is_dir() and child.name.startswith("date=") and (child / "part-0.parquet").exists():
            out.append(date.fromisoformat(child.name[5:]))
    return sorted(out)


def last_written(root: Path, table: str) -> float | None:
    """When a partition of ``table`` under ``root`` was last written (its file's mtime; None: no partition;
    in object storage: the time of the manifest's last commit if it names ``table``)."""
    if _is_object_store(root):
        return _manifest_written(root, table)
    files = partition_files(root, table)
    return max(Path(f).stat().st_mtime for f in files) if files else None


def newest_warehouse(roots: list[Path], table: str = "fct_sessions") -> Path:
    """The root among ``roots`` whose ``table`` was written last (the first root on a tie or when none has it)."""
    return max(roots, key=lambda r: last_written(r, table) or 0.0)


def partition_files(root: Path, table: str, days: list[date] | None = None) -> list[str]:
    """Parquet files of ``table`` for ``days`` (all days when None), in date order (URIs in object
    storage: the manifest's files, ``puffy.publish.published_files``)."""
    if _is_object_store(root):
        from puffy.publish import published_files

        return published_files(root, table, days)
    settle_publish(root)
    wanted = partition_dates(root, table) if days is None else days
    files = [partition_dir(root, table, d) / "part-0.parquet" for d in wanted]
    return [str(f) for f in files if f.exists()]


# --- object storage (puffy.storage): readers resolve partitions through the publish manifest --------


def _is_object_store(root) -> bool:
    """Whether ``root`` is an object-store warehouse (a ``Location`` or URI; a ``Path`` never is)."""
    if isinstance(root, Path):
        return False
    from puffy.storage import Location, is_remote

    if isinstance(root, Location):
        return not root.is_local
    return isinstance(root, str) and "://" in root and is_remote(root)


def _manifest_written(root, table: str) -> float | None:
    from datetime import datetime

    from puffy.publish import read_manifest

    manifest = read_manifest(root)
    if not manifest.dates(table) or manifest.written is None:
        return None
    return datetime.fromisoformat(manifest.written).timestamp()
