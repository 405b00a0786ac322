"""Write–audit–publish: the transform writes to a staging warehouse, monitoring audits it, and only
then are its partitions published into the warehouse that dashboards read, all of them or none.

The publish protocol (``publish``), for the partitions ``<table>/date=D`` of one run (every table,
and D-1 too when the transform restated it):

1. **prepare** — copy each staged partition next to its published place, as a hidden sibling
   ``<table>/.date=D.prep-<pid>-<id>``, and flush it to disk. Readers ignore hidden directories;
   nothing visible has changed.
2. **commit** — write the journal ``<warehouse>/.publish-journal.json`` (to a temporary file,
   fsync, rename, fsync the directory). It lists every swap: table, date, prepared directory and a
   SHA-256 fingerprint of each file of the new partition. Writing it is the commit point: from
   here on the publish *will* complete, whatever happens to this process.
3. **swap** — swap each prepared directory in with the per-partition primitive
   ``puffy.warehouse.swap_in`` (one atomic ``renameat2(RENAME_EXCHANGE)`` on Linux).
4. **finish** — fsync the table directories, then remove the journal.

Recovery (``recover``) runs before anything reads or writes the warehouse: the runner before each
day, ``publish`` itself, the ``puffy`` commands that read a warehouse, and every reader through
``puffy.warehouse.partition_dates`` / ``partition_files``. A journal left by a writer that is gone
is *rolled forward*: each listed swap is redone unless it is already done, which is recognisable
because the published partition's files then match the journal's fingerprints (so a swap
interrupted anywhere, even between the exchange and the removal of the old partition, is neither
lost nor undone). Prepared directories that no journal names are *rolled back* (deleted): their
publish died before its commit point, and the published day is still wholly the old one. So a
reader sees a day's tables either all old or all new, never a mix. A reader that cannot write the
warehouse (read-only) refuses with a one-line ``UserError`` instead of reading a half day.

Concurrency: a publish holds ``<warehouse>/.publish.lock`` (``flock``; it dies with its process)
from before it prepares until the journal is gone; recovery takes the same lock, so it never
races a live publish (it waits for it, seconds at most) and the lock being free while a journal
exists proves its writer died. The guarantee is about crashes: a reader that reads table after
table *while* a publish runs can still see the day change between two of its reads.

Where rename is not atomic (object storage, a future backend) the same protocol holds, because it
never relies on the swap being atomic, only on the journal being written in one step (a single
object PUT is): prepared partitions go to new keys; the journal, put last, is the commit point;
a reader that finds a journal takes each listed partition from the prepared keys the journal names
(whose fingerprints it can check) rather than the published ones, and any writer completes the
copies and deletes the journal; prepared keys that no journal names are garbage. There the lock
would be a lease (a conditional put) instead of ``flock``.

Quarantine copies the staged partitions aside for inspection and leaves the published warehouse
untouched.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from puffy.errors import UserError
from puffy.warehouse import PUBLISH_JOURNAL, pid_tag, swap_in, sweep_leftovers

PUBLISH_LOCK = ".publish.lock"
PREPARED_KIND = "prep"  # .date=D.prep-<pid>-<id>: a prepared partition of a publish
LOCK_WAIT_SECONDS = 60.0  # how long recovery waits for a live publish (which takes seconds) to end


def staged_partitions(staging_root: Path) -> list[Path]:
    """``<table>/date=YYYY-MM-DD`` directories present in a staging warehouse, sorted."""
    staging_root = Path(staging_root)
    if not staging_root.is_dir():
        return []
    return sorted(
        p for p in staging_root.glob("*/date=*")
        if p.is_dir() and not p.name.startswith(".") and any(p.iterdir())
    )


def publish(staging_root: Path, warehouse_root: Path,
            on_step: Callable[[str], None] | None = None) -> list[Path]:
    """Publish every staged partition into ``warehouse_root`` all-or-nothing (see module doc);
    return the published partition directories.

    ``on_step`` (tests) is called after each step with its name: ``prepared <table>/date=D`` per
    partition, ``committed``, ``swapped <table>/date=D`` per partition, ``finished``.
    """
    step = on_step or (lambda name: None)
    warehouse_root = Path(warehouse_root)
    parts = staged_partitions(staging_root)
    warehouse_root.mkdir(parents=True, exist_ok=True)
    with _publish_lock(warehouse_root):
        _recover_locked(warehouse_root)
        if not parts:
            return []
        tag = pid_tag(PREPARED_KIND)
        swaps = []
        try:
            for part in parts:
                final = warehouse_root / part.parent.name / part.name
                prepared = final.with_name(f".{final.name}.{tag}")
                final.parent.mkdir(parents=True, exist_ok=True)
                swaps.append({"table": part.parent.name, "partition": part.name, "prepared": prepared.name})
                shutil.copytree(part, prepared)
                _fsync_tree(prepared)
                swaps[-1]["files"] = fingerprint(prepared)
                step(f"prepared {part.parent.name}/{part.name}")
            _write_journal(warehouse_root, {"id": tag, "written": datetime.now(timezone.utc).isoformat(),
                                            "swaps": swaps})
        except BaseException:  # before the commit point: roll back (a killed process: the next recovery)
            if (warehouse_root / PUBLISH_JOURNAL).exists():  # it failed after the commit point
                raise
            for swap in swaps:
                shutil.rmtree(warehouse_root / swap["table"] / swap["prepared"], ignore_errors=True)
            raise
        step("committed")
        for swap in swaps:
            _roll_forward_swap(warehouse_root, swap)
            step(f"swapped {swap['table']}/{swap['partition']}")
        _finish(warehouse_root, swaps)
        step("finished")
    return [warehouse_root / s["table"] / s["partition"] for s in swaps]


def recover(warehouse_root: Path) -> list[str]:
    """Complete or undo what an interrupted publish left in ``warehouse_root``; return what was done.

    Rolls a journal forward, deletes prepared directories no journal names, and sweeps the
    temporary directories of dead writers (``puffy.warehouse.sweep_leftovers``). Waits for a
    publish that is still running. Raises ``UserError`` when an unfinished publish needs
    completing and this process cannot write the warehouse.
    """
    warehouse_root = Path(warehouse_root)
    if not warehouse_root.is_dir():
        return []
    journal = warehouse_root / PUBLISH_JOURNAL
    if not journal.exists() and not _writable(warehouse_root):
        return []  # a read-only warehouse with no journal: whatever it holds is whole
    with _publish_lock(warehouse_root):
        return _recover_locked(warehouse_root)


def unfinished_publish(warehouse_root: Path) -> dict | None:
    """The journal of an unfinished publish in ``warehouse_root``, or None."""
    path = Path(warehouse_root) / PUBLISH_JOURNAL
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def fingerprint(partition: Path) -> dict[str, str]:
    """SHA-256 of each file of a partition directory, by file name."""
    return {f.name: _sha256(f) for f in sorted(Path(partition).iterdir()) if f.is_file()}


# --- recovery -------------------------------------------------------------------------------------

def _recover_locked(root: Path) -> list[str]:
    done = []
    journal = unfinished_publish(root)
    if journal is not None:
        _require_writable(root, journal)
        for swap in journal["swaps"]:
            _roll_forward_swap(root, swap)
        _finish(root, journal["swaps"])
        done.append(f"rolled forward publish {journal['id']} ({_describe(journal)})")
    if not _writable(root):
        return done
    for table_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for child in sorted(table_dir.iterdir()):
            if child.name.startswith(".date=") and f".{PREPARED_KIND}-" in child.name and child.is_dir():
                shutil.rmtree(child)  # no journal names it (any journal was just finished)
                done.append(f"rolled back {table_dir.name}/{child.name}")
        done.extend(f"swept {p}" for p in sweep_leftovers(table_dir))
    return done


def _roll_forward_swap(root: Path, swap: dict) -> None:
    """Make the partition of ``swap`` the published one, unless it already is (idempotent)."""
    final = root / swap["table"] / swap["partition"]
    prepared = final.with_name(swap["prepared"])
    if final.is_dir() and fingerprint(final) == swap["files"]:
        shutil.rmtree(prepared, ignore_errors=True)  # holds the replaced partition, if anything
        return
    if prepared.is_dir() and fingerprint(prepared) == swap["files"]:
        swap_in(prepared, final)
        return
    raise UserError(f"{final}: the publish journal {root / PUBLISH_JOURNAL} lists this partition but neither "
                    f"it nor {prepared.name} holds the journalled files (was the warehouse edited by hand?); "
                    f"re-run the day with `puffy run` after moving the journal aside")


def _finish(root: Path, swaps: list[dict]) -> None:
    for table in sorted({s["table"] for s in swaps}):
        _fsync_dir(root / table)
    journal = root / PUBLISH_JOURNAL
    journal.unlink(missing_ok=True)
    _fsync_dir(root)


def _writable(root: Path) -> bool:
    return os.access(root, os.W_OK)  # False on a read-only mount, even for root


def _require_writable(root: Path, journal: dict) -> None:
    if not _writable(root):
        raise UserError(f"{root}: a publish ({_describe(journal)}) was interrupted and is unfinished, and this "
                        f"process cannot write there to complete it; run any puffy command with write access "
                        f"to it (e.g. `puffy run` for one of those days) first")


def _describe(journal: dict) -> str:
    dates = sorted({s["partition"].removeprefix("date=") for s in journal["swaps"]})
    tables = sorted({s["table"] for s in journal["swaps"]})
    return f"{', '.join(dates)} of {len(tables)} tables"


# --- the journal and the lock ----------------------------------------------------------------------

def _write_journal(root: Path, content: dict) -> None:
    tmp = root / f"{PUBLISH_JOURNAL}.{pid_tag('tmp')}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(content, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(tmp, root / PUBLISH_JOURNAL)
    _fsync_dir(root)


@contextmanager
def _publish_lock(root: Path, wait_seconds: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Hold ``<root>/.publish.lock`` (waiting up to ``wait_seconds`` for a live publish to end)."""
    path = root / PUBLISH_LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        try:  # read-only: a lock can still be taken on a read-only descriptor, to wait for a writer
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            fd = None  # no publish ever ran here
    try:
        deadline = time.monotonic() + wait_seconds
        while fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UserError(f"{root}: a publish into this warehouse is still running after "
                                    f"{wait_seconds:.0f} s; try again when it has finished") from None
                time.sleep(0.05)
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


# --- durability --------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_tree(directory: Path) -> None:
    for f in directory.iterdir():
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot sync a directory
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def quarantine(staging_root: Path, quarantine_root: Path, now: datetime | None = None) -> Path:
    """Copy the staged partitions to ``quarantine_root/warehouse_quarantine_<UTC timestamp>``."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S%fZ")
    target = Path(quarantine_root) / f"warehouse_quarantine_{stamp}"
    target.mkdir(parents=True)
    for part in staged_partitions(staging_root):
        shutil.copytree(part, target / part.parent.name / part.name)
    return target
