"""Reuse of a gate's staged events: ``puffy transform`` after ``puffy dq`` on the same input and rules.

``puffy dq`` keeps what its gate staged (``stg_events``, ``stg_purchase_items``, ``stg_rejects``,
the same Parquet partitions ``puffy transform`` stages) in ``<dq output dir>/.gate/`` with a
manifest: the gate's status and days, its report files, and a fingerprint of everything the
staged tables and the status depend on. ``puffy transform --output-dir OUT`` looks for such a
manifest in ``OUT/dq`` (where its own gate writes) and in ``OUT`` (the README's two commands
share one directory); when the fingerprint matches it links the staged partitions into
``OUT/intermediate`` (each day swapped in atomically, as the gate writes them), copies the gate's
reports into ``OUT/dq`` and transforms without gating again. Otherwise it gates as before and
says why the earlier gate could not be reused.

The fingerprint (``gate_fingerprint``) covers:

* every raw file of the input directory (not only the period's: earlier files feed the gate's
  baselines): name, size, modification time (ns) and a SHA-256 of its first and last MiB. A file
  rewritten in place with the same size, time stamp and ends is not noticed (as with ``make``).
  An input in object storage (``s3://bucket/raw_events``) is fingerprinted from one listing, without
  reading the objects: each object's size, ETag (the store's hash of its content) and last-modified
  time;
* the rules file's bytes, and ``acknowledged.yaml`` next to it (acknowledgements demote findings,
  so they change the status);
* the period (``--start`` / ``--end``), the pipeline parameters (engine, privacy) and the puffy
  version with the bytes of the modules that build the staged tables (``puffy.ingest`` and the
  contract and table registry it reads, ``puffy.dq.gate``, ``puffy.dq.checks`` with its messages,
  ``puffy.dq.rules``, ``puffy.findings``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from puffy.ingest import STAGING_TABLES
from puffy.params import PipelineParams
from puffy.raw_files import RAW_FILE_RE
from puffy.storage import Location, is_remote_location
from puffy.warehouse import partition_dates, partition_dir, staging_dir_for, swap_in

GATE_DIR = ".gate"
MANIFEST = "manifest.json"
_MANIFEST_VERSION = 1
_EDGE_BYTES = 1 << 20  # bytes hashed at each end of a raw file
_CODE_MODULES = (
    "ingest.py",
    "contract.py",
    "tables.py",
    "tables.yaml",
    "findings.py",
    "dq/gate.py",
    "dq/checks/*.py",
    "dq/checks/messages.yaml",
    "dq/rules.py",
)


@dataclass
class GateOutcome:
    """What ``puffy transform`` needs of a gate: its status and days (run now or reused)."""

    status: str
    days: list[date]
    reused_from: Path | None = None  # the ``.gate`` directory reused (None: the gate ran)
    note: str = ""  # one line: reused from where, or why an earlier gate was not reused
    report_paths: dict[str, Path] = field(default_factory=dict)


def _file_facts(path: Path) -> dict:
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(fh.read(_EDGE_BYTES))
        if st.st_size > 2 * _EDGE_BYTES:
            fh.seek(st.st_size - _EDGE_BYTES)
            h.update(fh.read(_EDGE_BYTES))
        elif st.st_size > _EDGE_BYTES:
            h.update(fh.read())
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "edges_sha256": h.hexdigest()}


def _bytes_sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _object_facts(input_dir: Location) -> dict[str, dict]:
    """``_file_facts`` of every raw object under an object-store prefix, from one listing: size,
    ETag (a hash of the content, which a rewrite changes) and last-modified time; nothing is read."""
    try:
        listing = input_dir.fs.ls(input_dir.fs_path, detail=True)
    except FileNotFoundError:
        return {}
    facts = {}
    for entry in listing:
        name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        if entry.get("type") == "file" and RAW_FILE_RE.match(name):
            modified = entry.get("LastModified")
            facts[name] = {
                "size": entry.get("size"),
                "etag": entry.get("ETag"),
                "last_modified": modified.isoformat() if modified is not None else None,
            }
    return facts


def gate_fingerprint(
    input_dir: Path | Location,
    rules_path: Path,
    start: date | None,
    end: date | None,
    engine_params: PipelineParams | None,
) -> dict:
    """What the staged tables and the gate's status depend on (see the module docstring)."""
    import puffy

    rules_path = Path(rules_path)
    if is_remote_location(input_dir):
        files, where = _object_facts(Location.parse(input_dir)), Location.parse(input_dir).uri
    else:
        input_dir = Path(input_dir)
        files = {
            p.name: _file_facts(p) for p in sorted(input_dir.iterdir()) if RAW_FILE_RE.match(p.name) and p.is_file()
        }
        where = str(input_dir.resolve())
    package = Path(puffy.__file__).parent
    return {
        "version": _MANIFEST_VERSION,
        "input_dir": where,
        "files": files,
        "rules": _bytes_sha(rules_path),
        "acknowledged": _bytes_sha(rules_path.parent / "acknowledged.yaml"),
        "period": [start.isoformat() if start else None, end.isoformat() if end else None],
        "params": json.loads(engine_params.model_dump_json()) if engine_params else None,
        "code": [puffy.__version__, *(_bytes_sha(p) for m in _CODE_MODULES for p in sorted(package.glob(m)))],
    }


def _difference(old: dict, new: dict) -> str:
    """Why ``old`` does not match ``new``, in a few words (the first reason found)."""
    if old.get("version") != new["version"] or old.get("code") != new["code"]:
        return "puffy changed since"
    if old.get("input_dir") != new["input_dir"]:
        return f"it gated another input directory ({old.get('input_dir')})"
    if old.get("period") != new["period"]:
        return "it gated another period"
    of, nf = old.get("files", {}), new["files"]
    for name in sorted(set(of) | set(nf)):
        if name not in nf:
            return f"raw file {name} is gone"
        if name not in of:
            return f"raw file {name} is new"
        if of[name] != nf[name]:
            return f"raw file {name} changed"
    if old.get("rules") != new["rules"]:
        return "the rules file changed"
    if old.get("acknowledged") != new["acknowledged"]:
        return "acknowledged.yaml changed"
    if old.get("params") != new["params"]:
        return "the pipeline parameters changed"
    return "its fingerprint differs"


def gate_dir(output_dir: Path) -> Path:
    return Path(output_dir) / GATE_DIR


def run_gate_kept(
    input_dir: Path | Location,
    rules_path: Path,
    output_dir: Path,
    *,
    start: date | None = None,
    end: date | None = None,
    engine_params: PipelineParams | None = None,
):
    """``puffy dq``: run the gate and keep its staged events for a later ``puffy transform``.

    The staged tables and the manifest go to ``<output_dir>/.gate/``; the manifest is written
    last, and removed first, so a half-written ``.gate`` is never reused. Returns the GateResult.
    """
    from puffy.dq.gate import run_gate

    keep = gate_dir(output_dir)
    (keep / MANIFEST).unlink(missing_ok=True)
    fingerprint = gate_fingerprint(input_dir, rules_path, start, end, engine_params)
    result = run_gate(
        input_dir,
        rules_path,
        output_dir,
        start=start,
        end=end,
        staging_root=keep / "intermediate",
        engine_params=engine_params,
    )
    manifest = {
        "fingerprint": fingerprint,
        "status": result.status,
        "days": [d.isoformat() for d in result.days],
        "reports": {name: str(Path(p).resolve()) for name, p in result.report_paths.items()},
    }
    tmp = keep / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, keep / MANIFEST)
    return result


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


def _adopt_staging(src_root: Path, dst_root: Path, days: list[date]) -> None:
    """Put the staged partitions of ``days`` from ``src_root`` under ``dst_root``, day by day atomically."""
    for table in STAGING_TABLES:
        have = set(partition_dates(src_root, table))
        for d in days:
            if d not in have:
                continue
            final = partition_dir(dst_root, table, d)
            tmp = staging_dir_for(final)
            try:
                _link_or_copy(partition_dir(src_root, table, d) / "part-0.parquet", tmp / "part-0.parquet")
                swap_in(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise


def gate_or_reuse(
    input_dir: Path | Location,
    rules_path: Path,
    out: Path,
    *,
    start: date | None,
    end: date | None,
    engine_params: PipelineParams | None,
) -> GateOutcome:
    """``puffy transform``'s gate: reuse ``puffy dq``'s when it gated the same input and rules
    (see the module docstring), else run it, staging into ``out/intermediate``, reports in ``out/dq``."""
    from puffy.dq.gate import run_gate

    out = Path(out)
    staging_root, report_dir = out / "intermediate", out / "dq"
    fingerprint = gate_fingerprint(input_dir, rules_path, start, end, engine_params)
    why = "no earlier `puffy dq` gate found"
    for candidate in (gate_dir(report_dir), gate_dir(out)):
        try:
            manifest = json.loads((candidate / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if manifest.get("fingerprint") != fingerprint:
            difference = _difference(manifest.get("fingerprint", {}), fingerprint)
            why = f"the gate in {candidate.parent} was not reused: {difference}"
            continue
        days = [date.fromisoformat(d) for d in manifest["days"]]
        _adopt_staging(candidate / "intermediate", staging_root, days)
        reports = {}
        report_dir.mkdir(parents=True, exist_ok=True)
        for name, path in manifest.get("reports", {}).items():
            src = Path(path)
            dst = report_dir / src.name
            if src.is_file() and src.resolve() != dst.resolve():
                shutil.copy2(src, dst)
            reports[name] = dst
        note = f"reused the gate of {candidate.parent} (same {len(fingerprint['files'])} raw files and rules)"
        return GateOutcome(manifest["status"], days, candidate, note, reports)
    result = run_gate(
        input_dir, rules_path, report_dir, start=start, end=end, staging_root=staging_root, engine_params=engine_params
    )
    return GateOutcome(result.status, list(result.days), None, f"gated the input ({why})", dict(result.report_paths))
