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

On object storage (a warehouse root such as ``s3://bucket/warehouse``; ``puffy.storage``) there is
no rename and no ``flock``, so the protocol is a manifest instead of a journal (``publish`` picks it
from the warehouse root; the local protocol above is unchanged):

1. **write** — upload each staged partition's files under a new, unique version prefix
   ``<table>/date=D/v-<publish id>/``. Data objects are immutable: no visible object is ever
   overwritten, so nothing a reader may be reading changes.
2. **commit** — PUT one object, ``<warehouse>/_puffy_manifest.json``, naming for every published
   ``(table, date)`` its version and files (size and SHA-256). A PUT is atomic (a reader GETs the
   old manifest or the new one, whole), so this single write publishes every table of the day (and
   D-1 when restated) at once. It is conditional on the manifest read at the start (S3
   ``If-Match`` its ETag, or ``If-None-Match: *`` when there was none): a publish that raced
   another one fails with a ``UserError`` instead of losing the other's partitions.
3. **collect** — versions the commit replaced are listed as *retired* (with the time) and deleted
   by a later publish once ``GARBAGE_GRACE`` has passed, so a reader that resolved the previous
   manifest can still finish reading; versions that no manifest names (a publish killed before its
   commit) are deleted once they are older than the grace.

Readers resolve partitions through the manifest (``read_manifest``; ``published_dates``,
``published_files``), never by listing the table prefix, which also holds retired and orphaned
versions. Reading the manifest once gives a reader one consistent snapshot of every table. A
killed publish needs no recovery: before its commit nothing of it is visible; after it, all is.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from puffy.errors import UserError
from puffy.storage import Location, is_remote
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
        p for p in staging_root.glob("*/date=*") if p.is_dir() and not p.name.startswith(".") and any(p.iterdir())
    )


def publish(staging_root: Path, warehouse_root: Path, on_step: Callable[[str], None] | None = None) -> list[Path]:
    """Publish every staged partition into ``warehouse_root`` all-or-nothing (see module doc);
    return the published partition directories.

    ``on_step`` (tests) is called after each step with its name: ``prepared <table>/date=D`` per
    partition, ``committed``, ``swapped <table>/date=D`` per partition, ``finished``.
    """
    if is_remote(warehouse_root):
        return publish_to_object_store(staging_root, warehouse_root, on_step)
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
            _write_journal(warehouse_root, {"id": tag, "written": datetime.now(UTC).isoformat(), "swaps": swaps})
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

    An object-store warehouse never needs recovery (see the module doc): nothing is done there.
    """
    if is_remote(warehouse_root):
        return []
    warehouse_root = Path(warehouse_root)
    if not warehouse_root.is_dir():
        return []
    journal = warehouse_root / PUBLISH_JOURNAL
    if not journal.exists() and not _writable(warehouse_root):
        return []  # a read-only warehouse with no journal: whatever it holds is whole
    with _publish_lock(warehouse_root):
        return _recover_locked(warehouse_root)


def unfinished_publish(warehouse_root: Path) -> dict | None:
    """The journal of an unfinished publish in ``warehouse_root``, or None (always on object storage)."""
    if is_remote(warehouse_root):
        return None
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
    raise UserError(
        f"{final}: the publish journal {root / PUBLISH_JOURNAL} lists this partition but neither "
        f"it nor {prepared.name} holds the journalled files (was the warehouse edited by hand?); "
        f"re-run the day with `puffy run` after moving the journal aside"
    )


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
        raise UserError(
            f"{root}: a publish ({_describe(journal)}) was interrupted and is unfinished, and this "
            f"process cannot write there to complete it; run any puffy command with write access "
            f"to it (e.g. `puffy run` for one of those days) first"
        )


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
                    raise UserError(
                        f"{root}: a publish into this warehouse is still running after "
                        f"{wait_seconds:.0f} s; try again when it has finished"
                    ) from None
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
    """Copy the staged partitions to ``quarantine_root/warehouse_quarantine_<UTC timestamp>`` (a
    ``Location`` when either root is in object storage)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    if is_remote(staging_root) or is_remote(quarantine_root):
        target = Location.parse(quarantine_root) / f"warehouse_quarantine_{stamp}"
        staging = Location.parse(staging_root)
        for part in staged_partition_locations(staging):
            for f in part.files():
                f.copy_to(target.join(f.relative_to(staging)))
        return target
    target = Path(quarantine_root) / f"warehouse_quarantine_{stamp}"
    target.mkdir(parents=True)
    for part in staged_partitions(staging_root):
        shutil.copytree(part, target / part.parent.name / part.name)
    return target


# --- object storage: immutable versions and one manifest (see the module doc) ------------------------

MANIFEST = "_puffy_manifest.json"
MANIFEST_FORMAT = "puffy.manifest/1"
VERSION_PREFIX = "v-"  # <table>/date=D/v-<publish id>/: no '=', so it is not read as a partition column
#: How long a replaced or orphaned version is kept: a reader that resolved the manifest before a
#: publish replaced a partition has this long to read its files.
GARBAGE_GRACE = timedelta(hours=1)
_ID_TIME = "%Y%m%dT%H%M%S%fZ"


@dataclass
class Manifest:
    """The published state of an object-store warehouse (``<root>/_puffy_manifest.json``)."""

    root: Location
    generation: int = 0
    publish_id: str | None = None
    written: str | None = None
    #: table -> ISO date -> {"version": "v-<id>", "files": {name: {"bytes": n, "sha256": hex}}}
    partitions: dict[str, dict[str, dict]] = field(default_factory=dict)
    #: versions replaced by a publish: [{"table", "date", "version", "retired": ISO time}]
    retired: list[dict] = field(default_factory=list)
    etag: str | None = None  # of the object this was read from (None: there was none)

    def tables(self) -> list[str]:
        return sorted(t for t, days in self.partitions.items() if days)

    def dates(self, table: str) -> list[date]:
        return sorted(date.fromisoformat(d) for d in self.partitions.get(table, {}))

    def partition(self, table: str, day: date) -> Location | None:
        """The version prefix holding ``table``'s published partition of ``day`` (None: not published)."""
        entry = self.partitions.get(table, {}).get(day.isoformat())
        return None if entry is None else self.root.join(table, f"date={day.isoformat()}", entry["version"])

    def files(self, table: str, days: list[date] | None = None) -> list[str]:
        """URIs of the published files of ``table`` for ``days`` (all when None), in date order."""
        out = []
        for day in self.dates(table) if days is None else days:
            prefix = self.partition(table, day)
            if prefix is not None:
                entry = self.partitions[table][day.isoformat()]
                out.extend(prefix.join(name).uri for name in sorted(entry["files"]))
        return out

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": MANIFEST_FORMAT,
                "generation": self.generation,
                "publish_id": self.publish_id,
                "written": self.written,
                "partitions": self.partitions,
                "retired": self.retired,
            },
            indent=1,
            sort_keys=True,
        )


def read_manifest(warehouse_root: str | Path | Location) -> Manifest:
    """The current manifest of an object-store warehouse (an empty one when nothing was published)."""
    root = Location.parse(warehouse_root)
    obj = root / MANIFEST
    try:
        etag = obj.etag()
        raw = obj.read_bytes()
    except FileNotFoundError:
        return Manifest(root)
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise UserError(
            f"{obj}: the publish manifest is not valid JSON ({exc}); it is written by "
            f"puffy in one PUT, so it was edited by hand: restore it from the bucket's "
            f"object versions or re-run the days with `puffy run`"
        ) from None
    if doc.get("format") != MANIFEST_FORMAT:
        raise UserError(
            f"{obj}: format {doc.get('format')!r}, expected {MANIFEST_FORMAT!r} (written by another version of puffy?)"
        )
    # The ETag read before the body: if another publish committed in between, this one's conditional
    # commit fails rather than overwriting what it did not read.
    return Manifest(
        root,
        doc["generation"],
        doc.get("publish_id"),
        doc.get("written"),
        doc.get("partitions", {}),
        doc.get("retired", []),
        etag,
    )


def published_dates(warehouse_root: str | Path | Location, table: str) -> list[date]:
    """Dates with a published partition of ``table`` in an object-store warehouse."""
    return read_manifest(warehouse_root).dates(table)


def published_files(warehouse_root: str | Path | Location, table: str, days: list[date] | None = None) -> list[str]:
    """URIs of ``table``'s published files for ``days`` (all when None), in date order."""
    return read_manifest(warehouse_root).files(table, days)


def staged_partition_locations(staging_root: str | Path | Location) -> list[Location]:
    """``<table>/date=YYYY-MM-DD`` partitions holding files in a staging warehouse (local or remote), sorted."""
    staging = Location.parse(staging_root)
    if staging.is_local:
        return [Location.parse(p) for p in staged_partitions(staging.path)]
    parts = []
    for table in staging.list():
        if table.name.startswith((".", "_")):
            continue
        parts.extend(p for p in table.list() if p.name.startswith("date=") and p.files())
    return sorted(parts, key=lambda loc: loc.uri)


class ConcurrentPublishError(UserError):
    """Another publish committed to the same warehouse while this one was writing."""


def publish_to_object_store(
    staging_root: str | Path | Location,
    warehouse_root: str | Path | Location,
    on_step: Callable[[str], None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[Location]:
    """Publish every staged partition into an object-store warehouse all-or-nothing (module doc);
    return the version prefixes published. Re-running a day publishes it again under a new version
    and retires the previous one: the visible result is the same.

    ``on_step`` (tests) is called with ``prepared <table>/date=D`` per partition, ``committed`` after
    the manifest's PUT and ``finished`` after garbage collection.
    """
    step = on_step or (lambda name: None)
    staging, root = Location.parse(staging_root), Location.parse(warehouse_root)
    parts = staged_partition_locations(staging)
    manifest = read_manifest(root)
    if not parts:
        return []
    started = now()
    publish_id = f"{started.strftime(_ID_TIME)}-{pid_tag('pub').split('-', 1)[1]}"  # time first: sortable
    version = f"{VERSION_PREFIX}{publish_id}"
    written: list[tuple[str, str, dict]] = []
    for part in parts:
        table, day = part.parent.name, part.name.removeprefix("date=")
        target = root.join(table, part.name, version)
        files = {}
        for f in part.files():
            name = f.relative_to(part)
            if f.is_local:  # streamed (multipart when large), never whole in memory
                files[name] = {"bytes": f.path.stat().st_size, "sha256": _sha256(f.path)}
                target.join(name).upload(f.path)
            else:
                data = f.read_bytes()
                files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                target.join(name).write_bytes(data)
        written.append((table, day, files))
        step(f"prepared {table}/{part.name}")
    committed_at = now().isoformat()
    retired = list(manifest.retired)
    for table, day, files in written:
        previous = manifest.partitions.get(table, {}).get(day)
        if previous is not None:
            retired.append({"table": table, "date": day, "version": previous["version"], "retired": committed_at})
        manifest.partitions.setdefault(table, {})[day] = {"version": version, "files": files}
    manifest.generation += 1
    manifest.publish_id, manifest.written, manifest.retired = publish_id, committed_at, retired
    _commit_manifest(root, manifest)
    step("committed")
    collect_garbage(root, now=now)
    step("finished")
    return [root.join(table, f"date={day}", version) for table, day, _ in written]


def _commit_manifest(root: Location, manifest: Manifest) -> None:
    """The commit point: one PUT of the manifest, conditional on the one this publish read."""
    obj = root / MANIFEST
    condition = {}
    if obj.protocol == "s3":
        condition = {"IfMatch": manifest.etag} if manifest.etag else {"mode": "create"}
    try:
        obj.write_text(manifest.to_json(), **condition)
    except Exception as exc:
        if _precondition_failed(exc):
            raise ConcurrentPublishError(
                f"{obj}: another publish into this warehouse committed while this one ({manifest.publish_id}) "
                f"was writing, so this one was not committed and none of its partitions are visible; "
                f"run the day again (one writer per warehouse at a time)"
            ) from None
        raise


def _precondition_failed(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc} {getattr(exc, '__cause__', '')}"
    return "PreconditionFailed" in text or "412" in text


def _version_time(version: str) -> datetime | None:
    stamp = version.removeprefix(VERSION_PREFIX).split("-", 1)[0]
    try:
        return datetime.strptime(stamp, _ID_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None


def collect_garbage(
    warehouse_root: str | Path | Location,
    grace: timedelta = GARBAGE_GRACE,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[str]:
    """Delete versions no reader can need any more; return their prefixes.

    Retired versions (replaced by a publish) go ``grace`` after their retirement; versions that no
    manifest names (from a publish that died before its commit) go ``grace`` after they were
    started, so a publish still writing is never touched. One listing per table.
    """
    root = Location.parse(warehouse_root)
    manifest = read_manifest(root)
    limit = now() - grace
    current = {(t, d, e["version"]) for t, days in manifest.partitions.items() for d, e in days.items()}
    retired = {(r["table"], r["date"], r["version"]): datetime.fromisoformat(r["retired"]) for r in manifest.retired}
    doomed: set[tuple[str, str, str]] = set()
    present: set[tuple[str, str, str]] = set()
    for table in root.list():
        if table.name.startswith(("_", ".")):
            continue
        for f in table.files():
            parts = f.relative_to(table).split("/")
            if len(parts) < 3 or not parts[0].startswith("date=") or not parts[1].startswith(VERSION_PREFIX):
                continue
            key = (table.name, parts[0].removeprefix("date="), parts[1])
            present.add(key)
            if key in current:
                continue
            since = retired.get(key) or _version_time(key[2])
            if since is not None and since <= limit:
                doomed.add(key)
    removed = []
    for table, day, version in sorted(doomed):
        prefix = root.join(table, f"date={day}", version)
        prefix.delete(recursive=True)
        removed.append(prefix.uri)
    still_retired = [
        r for r in manifest.retired if (key := (r["table"], r["date"], r["version"])) in present and key not in doomed
    ]
    if len(still_retired) != len(manifest.retired):  # forget what was deleted (best effort: a race only delays it)
        manifest.retired = still_retired
        try:
            _commit_manifest(root, manifest)
        except ConcurrentPublishError:
            pass
    return removed
