"""What a run leaves behind, reduced to digests that can be compared across code versions (no tests here).

``snapshot(outputs_dir, replace)`` walks a run's outputs:
- every published Parquet file: the sha256 of its bytes and of its rows (so a difference tells whether
  only the file layout changed or the data did);
- every report under ``runs/<date>/`` (``*.json``, ``*.md``, ``alert.json``, ``run_summary.json``):
  the sha256 of the text after removing what legitimately differs between two runs of the same
  data — clocks, durations, absolute paths (``replace`` maps each path to a placeholder) — and the
  exit code of each day.
It holds digests only, never data: the real export's snapshot can be kept in the repository.

``python -m support.golden OUTPUTS_DIR [--replace PATH=NAME ...] > snapshot.json`` writes one;
``diff(old, new)`` lists what differs, one line each.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

# Keys whose values are clocks, durations or places on disk: removed before hashing.
VOLATILE_KEYS = {"generated_at", "seconds", "notebook", "html", "quarantine_path"}
_CLOCK = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?\s*(UTC)?")
_DURATION = re.compile(r"\b\d+(\.\d+)?\s?(s|ms|seconds)\b")
REPORT_SUFFIXES = (".json", ".md")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _rows_digest(path: Path) -> str:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    frame = table.to_pandas()
    text = frame.to_csv(index=False, lineterminator="\n", float_format="%.12g")
    return _sha(" ".join(f"{f.name}:{f.type}" for f in table.schema).encode() + b"\n" + text.encode())


def _scrub(value, replace: dict[str, str]):
    if isinstance(value, dict):
        return {k: _scrub(v, replace) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_scrub(v, replace) for v in value]
    if isinstance(value, str):
        return _scrub_text(value, replace)
    return value


def _scrub_text(text: str, replace: dict[str, str]) -> str:
    for path, name in sorted(replace.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(path, name)
    return _DURATION.sub("<duration>", _CLOCK.sub("<clock>", text))


def report_digest(path: Path, replace: dict[str, str]) -> str:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        body = json.dumps(_scrub(json.loads(text), replace), sort_keys=True)
    else:
        body = _scrub_text(text, replace)
    return _sha(body.encode())


def snapshot(outputs_dir: Path, replace: dict[str, str] | None = None) -> dict:
    outputs_dir = Path(outputs_dir)
    replace = {str(outputs_dir.resolve()): "<outputs>", str(outputs_dir): "<outputs>", **(replace or {})}
    tables = {}
    for f in sorted((outputs_dir / "warehouse").rglob("*.parquet")):
        key = str(f.relative_to(outputs_dir / "warehouse"))
        tables[key] = {"bytes": _sha(f.read_bytes()), "rows": _rows_digest(f)}
    reports, exit_codes = {}, {}
    for run_dir in sorted(p for p in (outputs_dir / "runs").glob("*") if p.is_dir()):
        for f in sorted(run_dir.iterdir()):
            if f.suffix in REPORT_SUFFIXES and f.is_file():
                reports[f"{run_dir.name}/{f.name}"] = report_digest(f, replace)
        summary = run_dir / "run_summary.json"
        if summary.exists():
            exit_codes[run_dir.name] = json.loads(summary.read_text(encoding="utf-8"))["exit_code"]
    return {"tables": tables, "reports": reports, "exit_codes": exit_codes}


def diff(old: dict, new: dict, *, bytes_too: bool = True) -> list[str]:
    """One line per difference; tables by row content, and by bytes when ``bytes_too``."""
    lines = []
    for section in ("tables", "reports", "exit_codes"):
        a, b = old.get(section, {}), new.get(section, {})
        for key in sorted(set(a) | set(b)):
            if key not in b:
                lines.append(f"{section}: {key} missing")
            elif key not in a:
                lines.append(f"{section}: {key} new")
            elif section == "tables":
                if a[key]["rows"] != b[key]["rows"]:
                    lines.append(f"tables: {key} rows differ")
                elif bytes_too and a[key]["bytes"] != b[key]["bytes"]:
                    lines.append(f"tables: {key} same rows, bytes differ")
            elif a[key] != b[key]:
                lines.append(f"{section}: {key} differs ({a[key]} -> {b[key]})")
    return lines


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs_dir", type=Path)
    parser.add_argument("--replace", action="append", default=[], help="PATH=NAME (an input directory, say)")
    args = parser.parse_args()
    mapping = dict(item.split("=", 1) for item in args.replace)
    json.dump(snapshot(args.outputs_dir, mapping), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
