"""Raw rows in the export's format for hand-built transform tests (no tests here).

``ev`` / ``purchase`` build rows, ``write_raw`` writes them as daily CSVs, ``stage`` runs the real
ingest (``write_staging``), ``transform`` a rebuild with parameter overrides, so tests cover the
whole path a daily run takes.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from puffy.ingest import RawContract, discover_raw_files, ingest, write_staging
from puffy.params import DEFAULT_PARAMS_DIR
from puffy.transform import TransformParams, run_transform
from puffy.warehouse import partition_files

# ibis 12 on pandas 3 / duckdb 2 warns on every query; not ours.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The 'future.infer_string' option is deprecated"),
    pytest.mark.filterwarnings("ignore:fetch_arrow_table\\(\\) is deprecated"),
]

HEADER = ["client_id", "page_url", "referrer", "timestamp", "event_name", "event_data", "user_agent"]
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.3 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
SITE = "https://puffy.com"
D1, D2, D3 = date(2025, 2, 23), date(2025, 2, 24), date(2025, 2, 25)


def ev(client, ts, event="page_viewed", url="/", referrer="", data="", ua=CHROME) -> dict:
    """One raw row; ``ts`` like '2025-02-23T10:00:00.000Z' or a datetime."""
    if isinstance(ts, datetime):
        ts = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
    if url.startswith("/"):
        url = SITE + url
    return {
        "client_id": client or "",
        "page_url": url,
        "referrer": referrer,
        "timestamp": ts,
        "event_name": event,
        "event_data": data,
        "user_agent": ua,
    }


def purchase(client, ts, txn, revenue, items=None, email="e" * 64, ua=CHROME, url="/thank-you") -> dict:
    items = (
        [{"item_id": "1", "item_name": "Puffy Mattress", "item_variant": "Queen", "quantity": 1, "item_price": revenue}]
        if items is None
        else items
    )
    data = json.dumps(
        {"transaction_id": txn, "revenue": revenue, "items": items, "user_email": email}, separators=(",", ":")
    )
    return ev(client, ts, "checkout_completed", url, data=data, ua=ua)


def write_raw(raw_dir: Path, rows: list[dict]) -> list[Path]:
    """Write rows (in the given order) into events_YYYYMMDD.csv files by UTC day."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    by_day: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_day[r["timestamp"][:10].replace("-", "")].append(r)
    paths = []
    for day, day_rows in sorted(by_day.items()):
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=HEADER, lineterminator="\n")
        w.writeheader()
        w.writerows(day_rows)
        path = raw_dir / f"events_{day}.csv"
        path.write_text(buf.getvalue().rstrip("\n"), encoding="utf-8")
        paths.append(path)
    return paths


def stage(raw_dir: Path, staging_root: Path) -> list[date]:
    """Ingest raw files and write the staging partitions; return the staged days."""
    con = duckdb.connect()
    result = ingest(con, discover_raw_files(raw_dir), RawContract())
    days = [f.file_date for f in result.files]
    write_staging(con, staging_root, days)
    return days


def stage_rows(tmp_path: Path, rows: list[dict]) -> tuple[Path, list[date]]:
    write_raw(tmp_path / "raw", rows)
    staging = tmp_path / "stg"
    return staging, stage(tmp_path / "raw", staging)


def read_table(root: Path, table: str) -> pd.DataFrame:
    files = partition_files(root, table)
    if not files:
        return pd.DataFrame()
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


def transform(tmp_path: Path, rows: list[dict], *, name="wh", **params) -> tuple[Path, object]:
    """Stage rows and run a rebuild over all their days with ``params`` overrides."""
    staging, days = stage_rows(tmp_path, rows)
    wh = tmp_path / name
    result = run_transform(
        staging, wh, DEFAULT_PARAMS_DIR, start=min(days), end=max(days), transform_params=TransformParams(**params)
    )
    assert result.status != "error", result.reconciliation[result.reconciliation.status != "ok"]
    return wh, result


def sessions_of(wh: Path) -> pd.DataFrame:
    return read_table(wh, "fct_sessions").sort_values(["client_id", "session_start"]).reset_index(drop=True)


def t(day: date, hms: str) -> datetime:
    return datetime.fromisoformat(f"{day.isoformat()}T{hms}")
