"""What moved, and why: the comparison windows, the decomposition of a change, and change points.

* :func:`comparison_windows` — what the period is compared with: the previous period of equal
  length when the warehouse holds it, otherwise the second half of the period against its first
  half (equal numbers of days; the middle day of an odd period is in neither). The KPI tiles and
  the narrative say which.
* :func:`decompose` — a change of sessions, orders or revenue between the two windows split by
  channel (landing channel of the session) and by device: who contributed how much of the change.
* :func:`change_point` — the one day where a daily series shifts level most: the split of the
  series into two segments (at least ``min_segment`` days each) that maximises the between-segment
  sum of squares n1·n2/n·(mean1 − mean2)², the single-change least-squares estimate of a mean
  shift. Its p-value is a permutation test of that maximum (the days shuffled, seeded), so the
  search over split days is paid for: the p is the chance that some split of a shuffled series
  looks as strong. Shuffling assumes exchangeable days (no weekly pattern); with 14 days that is
  what can be said.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from puffy.report.data import Period


@dataclass(frozen=True)
class Windows:
    """The two windows a change is measured between."""

    basis: str  # "previous" | "halves" | "none"
    current: tuple[date, ...]  # the later window
    base: tuple[date, ...]  # the earlier window

    @property
    def label(self) -> str:
        """How a tile or a sentence names the comparison."""
        if self.basis == "previous":
            return f"vs previous {len(self.current)} days"
        if self.basis == "halves":
            return f"last {len(self.current)} vs first {len(self.base)} days"
        return "no comparison"


def comparison_windows(period: Period, days: list[date]) -> Windows:
    """Previous period when complete in the warehouse, otherwise second half vs first half."""
    from puffy.dates import date_range

    if period.has_previous:
        return Windows("previous", tuple(days), tuple(date_range(period.previous_start, period.previous_end)))
    half = len(days) // 2
    if half < 1:
        return Windows("none", tuple(days), ())
    return Windows("halves", tuple(days[-half:]), tuple(days[:half]))


def decompose(
    current: pd.DataFrame,
    base: pd.DataFrame,
    by: str,
    metrics=("sessions", "orders", "revenue"),
) -> pd.DataFrame:
    """Per value of ``by`` (channel or device_type): each metric in both windows and its change.

    ``current`` / ``base`` are non-bot sessions of the two windows (``n_orders``, ``revenue`` per
    session). Columns ``<metric>_base``, ``<metric>_current``, ``<metric>_change``, and
    ``<metric>_share_of_change`` (the segment's change / the total change; NaN when the total did
    not move). Sorted by the absolute change of sessions."""

    def agg(df):
        return df.groupby(by).agg(
            sessions=("session_id", "size"), orders=("n_orders", "sum"), revenue=("revenue", "sum")
        )

    a, b = agg(current), agg(base)
    out = pd.DataFrame(index=a.index.union(b.index))
    out.index.name = by
    for m in metrics:
        out[f"{m}_base"] = b[m].reindex(out.index).fillna(0).astype("float64")
        out[f"{m}_current"] = a[m].reindex(out.index).fillna(0).astype("float64")
        out[f"{m}_change"] = out[f"{m}_current"] - out[f"{m}_base"]
        total = out[f"{m}_change"].sum()
        out[f"{m}_share_of_change"] = out[f"{m}_change"] / total if total else math.nan
    return out.reindex(out[f"{metrics[0]}_change"].abs().sort_values(ascending=False).index)


@dataclass(frozen=True)
class ChangePoint:
    """The strongest single level shift of a daily series."""

    series: str
    day: date | None  # first day of the new level
    before: float  # mean before
    after: float  # mean from ``day`` on
    statistic: float
    p_value: float  # permutation p of the max statistic
    n_days: int

    @property
    def relative_change(self) -> float:
        return self.after / self.before - 1 if self.before else math.nan


def _split_statistics(y: np.ndarray, min_segment: int) -> np.ndarray:
    """Between-segment sum of squares of every admissible split (rows: series, columns: split k =
    number of days before the change)."""
    y = np.atleast_2d(y)
    n = y.shape[1]
    ks = np.arange(min_segment, n - min_segment + 1)
    csum = np.cumsum(y, axis=1)
    total = csum[:, -1:]
    left = csum[:, ks - 1] / ks
    right = (total - csum[:, ks - 1]) / (n - ks)
    return ks * (n - ks) / n * (left - right) ** 2


def change_point(
    series: pd.Series, name: str, min_segment: int = 3, permutations: int = 4999, seed: int = 0
) -> ChangePoint:
    """The best single mean-shift split of ``series`` (index = days) with its permutation p-value.

    Needs 2 × ``min_segment`` days; otherwise, or for a constant series, p is NaN."""
    y = pd.Series(series, dtype="float64").fillna(0.0).to_numpy()
    n = len(y)
    if n < 2 * min_segment or np.allclose(y, y[0]):
        return ChangePoint(name, None, math.nan, math.nan, math.nan, math.nan, n)
    stats = _split_statistics(y, min_segment)[0]
    best = int(np.argmax(stats))
    k = min_segment + best
    rng = np.random.default_rng(seed)
    shuffled = np.array([rng.permutation(y) for _ in range(permutations)])
    null_max = _split_statistics(shuffled, min_segment).max(axis=1)
    p = (1 + int((null_max >= stats[best] - 1e-9 * abs(stats[best])).sum())) / (permutations + 1)
    return ChangePoint(name, series.index[k], float(y[:k].mean()), float(y[k:].mean()), float(stats[best]), float(p), n)
