"""Write–audit–publish: the transform writes to a staging warehouse, monitoring audits it, and only
then are its partitions swapped into the published warehouse that dashboards read.

Publishing swaps partition directories in one by one (``puffy.warehouse.swap_in``), so a reader
always sees a whole partition (old or new); a day's tables are not swapped as one unit. Quarantine
copies the staged partitions aside for inspection and leaves the published warehouse untouched.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from puffy.warehouse import staging_dir_for, swap_in


def staged_partitions(staging_root: Path) -> list[Path]:
    """``<table>/date=YYYY-MM-DD`` directories present in a staging warehouse, sorted."""
    staging_root = Path(staging_root)
    if not staging_root.is_dir():
        return []
    return sorted(
        p for p in staging_root.glob("*/date=*")
        if p.is_dir() and not p.name.startswith(".") and any(p.iterdir())
    )


def publish(staging_root: Path, warehouse_root: Path) -> list[Path]:
    """Swap every staged partition into ``warehouse_root``; return the published partition dirs."""
    published = []
    for part in staged_partitions(staging_root):
        final = Path(warehouse_root) / part.parent.name / part.name
        tmp = staging_dir_for(final)
        shutil.rmtree(tmp)
        shutil.copytree(part, tmp)
        swap_in(tmp, final)
        published.append(final)
    return published


def quarantine(staging_root: Path, quarantine_root: Path, now: datetime | None = None) -> Path:
    """Copy the staged partitions to ``quarantine_root/warehouse_quarantine_<UTC timestamp>``."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S%fZ")
    target = Path(quarantine_root) / f"warehouse_quarantine_{stamp}"
    target.mkdir(parents=True)
    for part in staged_partitions(staging_root):
        shutil.copytree(part, target / part.parent.name / part.name)
    return target
