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
