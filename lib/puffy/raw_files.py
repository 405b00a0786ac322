"""Which raw exports exist: the ``events_YYYYMMDD.csv[.gz]`` files of an input directory or an
object-store prefix, by day.

Apart from ``puffy.ingest`` (which parses them with DuckDB) so that ``puffy run`` can check the
days it is asked for without importing the engine.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

from puffy.errors import InputDataError

RAW_FILE_RE = re.compile(r"^events_(\d{8})\.csv(\.gz)?$")


def file_date_of(path: Path) -> date | None:
    """The day of a raw file from its name (None: not ``events_YYYYMMDD.csv[.gz]`` of a real date)."""
    m = RAW_FILE_RE.match(path.name)
    try:
        return datetime.strptime(m.group(1), "%Y%m%d").date() if m else None
    except ValueError:  # e.g. events_20251399.csv
        return None


def discover_raw_files(
    input_dir: Path, start: date | None = None, end: date | None = None, *, cache_dir: Path | None = None
) -> list[Path]:
    """Raw files in ``input_dir`` whose date is within [start, end], in date order.

    When both a ``.csv`` and a ``.csv.gz`` exist for a day, the plain CSV wins. ``input_dir`` may be
    object storage (``discover_raw_objects``); ``cache_dir`` is then where the files are downloaded.
    """
    from puffy.storage import is_remote_location

    if is_remote_location(input_dir):
        return discover_raw_objects(input_dir, start, end, cache_dir=cache_dir)
    input_dir = Path(input_dir)
    if input_dir.exists() and not input_dir.is_dir():
        hint = (
            f"give its folder, {input_dir.parent}"
            if RAW_FILE_RE.match(input_dir.name)
            else "give the folder that holds the events_YYYYMMDD.csv files"
        )
        raise InputDataError(f"{input_dir}: is a file, not an input directory; {hint}")
    if not input_dir.is_dir():
        parent = input_dir.parent
        if parent.is_dir() and any(RAW_FILE_RE.match(q.name) for q in parent.iterdir()):
            # `puffy sample --out outputs/sample` writes the files one level above the default input_dir
            raise InputDataError(
                f"{input_dir}: input directory not found, but {parent} holds events_YYYYMMDD.csv "
                f"files: point input_dir (params/pipeline.yaml, or the notebook's input_dir) at "
                f"{parent}, or write the sample with `puffy sample --out {input_dir}`"
            )
        raise InputDataError(
            f"{input_dir}: input directory not found (expected events_YYYYMMDD.csv files; "
            f"`puffy sample --out {input_dir}` writes a sample export there, `make demo` the default one)"
        )
    return _one_per_day(sorted(input_dir.iterdir()), start, end)


def discover_raw_objects(
    input_dir, start: date | None = None, end: date | None = None, *, cache_dir: Path | None = None
) -> list:
    """``discover_raw_files`` for an object-store prefix (``s3://bucket/raw_events``): one listing,
    the same name rules. Without ``cache_dir`` the objects' ``Location``s (enough for their dates);
    with it, local copies (``puffy.storage.localize``: one download per object, kept by ETag), since
    the ingest reads a raw file several times (count, index, parse) and each would be a remote read."""
    from puffy.storage import Location, localize

    input_dir = Location.parse(input_dir)
    objects = input_dir.list()
    if not objects:
        raise InputDataError(
            f"{input_dir}: no objects under this prefix (expected events_YYYYMMDD.csv files; "
            f"is the bucket or prefix right, and do the AWS credentials reach it?)"
        )
    found = _one_per_day(objects, start, end)
    return found if cache_dir is None else [localize(obj, cache_dir) for obj in found]


def _one_per_day(entries, start: date | None, end: date | None) -> list:
    """The raw file of each day within [start, end] among ``entries`` (paths or object ``Location``s,
    anything with a ``name``), in date order; a plain ``.csv`` wins over a ``.csv.gz`` of its day.
    A name shaped like a raw file whose date is not real is an error, not a file to skip."""
    by_day: dict = {}
    for entry in entries:
        d = file_date_of(entry)
        if d is None and RAW_FILE_RE.match(entry.name):
            raise InputDataError(
                f"{entry}: the file name is not a real date (expected events_YYYYMMDD.csv, "
                "e.g. events_20250301.csv); rename or remove it"
            )
        if d is None or (start and d < start) or (end and d > end):
            continue
        if d not in by_day or entry.name.endswith(".csv"):
            by_day[d] = entry
    return [by_day[d] for d in sorted(by_day)]
