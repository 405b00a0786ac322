"""The gate's and monitoring's reports are pinned byte for byte on small generated data (fast).

``dq_report.json`` / ``.md`` and ``monitoring_report.json`` / ``.md`` are what the runner, the run
index, the alert, the executive summary and people read; refactoring how findings are made or
written (issue 18: one ``puffy.findings``, the checks split into a package) must not change them.
This runs the gate over the shared 4-day generated sample (all faults) — once over the period and
day by day in the daily runs' layout, so incidents continue from one day to the next and two
acknowledgements (one live, one expired) apply — and monitoring over a hand-built warehouse with a
bad day, and compares each report's digest (``generated_at`` and temporary paths removed) and its
findings' field lists with ``tests/golden/findings_reports.json``, taken from the code before the
refactor. The full daily run is pinned too, but slowly: ``tests/e2e/test_no_behaviour_change.py``.

A change meant to alter a report rewrites the pins in the same commit and says why:

    PUFFY_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_findings_reports.py
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from puffy.dq.gate import run_gate
from puffy.monitoring import run_monitoring
from puffy.params import DEFAULT_PARAMS_DIR
from support.monitoring_warehouse import build_warehouse

GOLDEN = REPO_ROOT / "tests" / "golden" / "findings_reports.json"
SAMPLE_DAYS = [date(2025, 2, 25) + timedelta(days=i) for i in range(4)]
ACKNOWLEDGED = """acknowledged:
  - check: schema.*
    reason: the export renamed client_id
    owner: a@example.com
    expires: 2030-01-01
  - check: bots.*
    reason: a known crawler
    owner: b@example.com
    expires: 2025-01-01
  - check: trend.*
    reason: a promotion
    owner: c@example.com
    expires: 2030-01-01
"""
_STAMP = re.compile(r"generated( at)? \d{4}-\d{2}-\d{2}T[0-9:.]+\+00:00")


def _params(tmp_path: Path) -> Path:
    params = tmp_path / "params"
    shutil.copytree(DEFAULT_PARAMS_DIR, params)
    (params / "acknowledged.yaml").write_text(ACKNOWLEDGED, encoding="utf-8")
    return params


def _digest(path: Path, places: dict[Path, str]) -> dict:
    text = path.read_text(encoding="utf-8")
    for place, name in places.items():
        text = text.replace(str(place), name)
    shape = {}
    if path.suffix == ".json":
        doc = json.loads(text)
        doc.pop("generated_at", None)
        shape = {
            "status": doc["status"],
            "findings": len(doc["findings"]),
            "fields": sorted({tuple(f) for f in doc["findings"]}),
        }
        text = json.dumps(doc, indent=1, ensure_ascii=False)
    else:
        text = _STAMP.sub("generated <clock>", text)
    return {
        "sha256": hashlib.sha256(text.encode()).hexdigest()[:20],
        **{k: json.loads(json.dumps(v)) for k, v in shape.items()},
    }


def _reports(root: Path, input_dir: Path | None = None) -> dict:
    places = {root: "<root>", **({input_dir: "<input>"} if input_dir else {})}
    return {
        str(p.relative_to(root)): _digest(p, places)
        for p in sorted(root.rglob("*_report.*"))
        if p.suffix in (".json", ".md")
    }


def _gate_runs(sample: Path, root: Path) -> None:
    rules = _params(root) / "dq_rules.yaml"
    now = datetime(2025, 3, 1, 6, tzinfo=UTC)
    result = run_gate(sample, rules, root / "period", now=now)
    result.con.close()
    for day in SAMPLE_DAYS:
        result = run_gate(
            sample,
            rules,
            root / "runs" / day.isoformat(),
            start=day,
            end=day,
            now=datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC),
        )
        result.con.close()


def _monitoring_runs(root: Path) -> None:
    rules = _params(root) / "monitoring_rules.yaml"
    # 21 ordinary days, then a day that lost half its sessions, priced some orders at 0 and lost
    # client ids (trend, revenue and mix findings), then an ordinary day again (incidents).
    warehouse, intermediate, days = build_warehouse(
        root / "data",
        n_days=23,
        overrides={
            21: {
                "sessions": 200,
                "zero_revenue": 5,
                "null_rate": 0.2,
                "channels": {"Direct": 0.6, "Organic Search": 0.4},
            }
        },
    )
    for day in days[-3:]:
        run_monitoring(
            warehouse,
            rules,
            root / "runs" / day.isoformat(),
            run_date=day,
            intermediate_dir=intermediate,
            now=datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC),
        )


def _check(name: str, got: dict) -> None:
    pinned = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.exists() else {}
    if os.environ.get("PUFFY_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps({**pinned, name: got}, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        pytest.skip(f"rewrote {name} in {GOLDEN}")
    assert got.keys() == pinned[name].keys()
    changed = [k for k in got if got[k] != pinned[name][k]]
    assert not changed, f"{len(changed)} report(s) differ from {GOLDEN.name}: " + ", ".join(changed)


def test_gate_reports_are_unchanged(small_sample, tmp_path):
    _gate_runs(small_sample, tmp_path)
    got = _reports(tmp_path, small_sample)
    assert len(got) == 2 * (1 + len(SAMPLE_DAYS))
    _check("gate", got)


def test_monitoring_reports_are_unchanged(tmp_path):
    _monitoring_runs(tmp_path)
    got = _reports(tmp_path)
    assert len(got) == 2 * 3
    _check("monitoring", got)
