"""Shared fixtures.

``real_data_dir``: the real export, found through PUFFY_REAL_DATA_DIR (set by .ci/run when
../shared/data/raw_events exists). Unset → the test is skipped; set but unreadable → it fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    value = os.environ.get("PUFFY_REAL_DATA_DIR")
    if not value:
        pytest.skip("PUFFY_REAL_DATA_DIR is not set (real export not available)")
    path = Path(value)
    files = sorted(path.glob("events_*.csv*")) if path.is_dir() else []
    if not files or not all(os.access(f, os.R_OK) for f in files):
        pytest.fail(f"PUFFY_REAL_DATA_DIR={value} is set but holds no readable events_*.csv files")
    return path


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory) -> Path:
    """A deterministic 4-day generated export (all faults on) shared by integration tests."""
    from datetime import date

    from puffy.sample import SampleConfig, generate_sample

    out = tmp_path_factory.mktemp("sample") / "raw_events"
    generate_sample(out, SampleConfig(start=date(2025, 2, 25), days=4, scale=0.5, seed=11))
    return out


@pytest.fixture(scope="session")
def daily_run(tmp_path_factory, small_sample):
    """The daily runner (papermill notebooks) over the 4 sample days, in a scratch outputs dir."""
    from datetime import date

    from puffy import runner
    from puffy.params import DEFAULT_PARAMS_DIR

    outputs = tmp_path_factory.mktemp("outputs")
    layout = runner.RunLayout(outputs, small_sample, DEFAULT_PARAMS_DIR)
    results = runner.run_range(date(2025, 2, 25), date(2025, 2, 28), layout, progress=False)
    return layout, results
