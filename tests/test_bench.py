"""The benchmark command works and reports figures (speed is measured by `puffy bench`, not here)."""

import json
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_bench_prints_and_saves_figures_for_every_stage(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "puffy.cli", "bench", "--scale", "0.05", "--days", "3",
         "--work-dir", str(tmp_path / "work"), "--json-out", str(out)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    stages = figures["stages"]
    assert set(stages) == {"bare_scan", "gate", "transform", "monitoring"}
    assert all("error" not in f for f in stages.values()), stages
    assert stages["bare_scan"]["events"] == stages["gate"]["events"] > 0
    assert all(f["peak_rss_mb"] > 0 and f["seconds"] > 0 for f in stages.values())
    for header in ("events/s", "peak MB", "x scan", "all stages"):
        assert header in proc.stdout
