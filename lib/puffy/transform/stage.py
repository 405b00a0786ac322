"""The transform's stage entry, ``puffy.transform.run`` (the contract: ``puffy.stage``), and the
identity-stitching comparison notebook 02 shows."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import pandas as pd

from puffy.errors import UserError
from puffy.findings import normalise_status
from puffy.stage import STATUS_FILES, Layout, Period, StageResult, write_status
from puffy.transform.pipeline import TransformResult, channel_revenue_by_model, load_table, run_transform
from puffy.warehouse import partition_dates


def staged_period(layout: Layout) -> Period:
    """Every day the gate has staged (``stg_events`` partitions)."""
    staged = partition_dates(layout.intermediate, "stg_events")
    if not staged:
        raise UserError(f"no staged events under {layout.intermediate}: run 01_data_quality (the gate) first")
    return Period(staged[0], staged[-1])


def run(
    layout: Layout,
    period: Period | None = None,
    *,
    warehouse: str | Path | None = None,
    mode: Literal["incremental", "rebuild"] = "rebuild",
    output_dir: str | Path | None = None,
) -> StageResult:
    """Build ``period``'s partitions (None: every staged day) from ``layout.intermediate`` into
    ``warehouse`` (default: the layout's build warehouse; the daily runner passes the day's staging
    warehouse), with ``layout.warehouse`` as the published history; write ``transform_status.json``
    into ``output_dir`` when given. ``value`` is the ``TransformResult``."""
    period = period or staged_period(layout)
    warehouse = Path(warehouse) if warehouse is not None else layout.build_warehouse
    result = run_transform(
        layout.intermediate,
        warehouse,
        layout.params_dir,
        start=period.start,
        end=period.end,
        history_root=layout.warehouse,
        mode=mode,
    )
    status = normalise_status(result.status)  # the reconciliation's 'ok' is the stage's 'pass'
    paths = {"warehouse": warehouse}
    if output_dir is not None:
        paths["status"] = write_status(
            output_dir,
            STATUS_FILES["transform"],
            status,
            result.message,
            start=period.start,
            end=period.end,
            mode=mode,
            engine=result.engine,
            row_counts=result.row_counts,
        )
    return StageResult("transform", status, result.message, paths, result)


def partition_days(result: TransformResult, table: str) -> list[date]:
    """The days of ``table`` a transform run wrote."""
    return [date.fromisoformat(p.name[5:]) for p in result.tables.get(table, [])]


@dataclass
class StitchingComparison:
    """The same period transformed with identity stitching on and off."""

    summary: pd.DataFrame  # clients, persons, orders, orders with more touchpoints, mean touchpoints
    revenue_change: pd.DataFrame  # channel × model: credited revenue with stitching minus without


def compare_identity_stitching(layout: Layout, period: Period, transformed: StageResult) -> StitchingComparison:
    """Transform ``period`` again with ``identity_stitching`` flipped (into a temporary warehouse)
    and compare what the two identities credit."""
    result: TransformResult = transformed.value
    warehouse = transformed.written["warehouse"]
    session_days, order_days = partition_days(result, "fct_sessions"), partition_days(result, "fct_orders")
    flipped = result.params.model_copy(update={"identity_stitching": not result.params.identity_stitching})
    with tempfile.TemporaryDirectory() as tmp:
        run_transform(
            layout.intermediate,
            Path(tmp),
            layout.params_dir,
            start=period.start,
            end=period.end,
            history_root=layout.warehouse,
            mode=result.mode,
            transform_params=flipped,
        )
        alt_attribution = load_table(Path(tmp), "fct_attribution", order_days)
        alt_sessions = load_table(Path(tmp), "fct_sessions", session_days)
    attribution = load_table(warehouse, "fct_attribution", order_days)
    sessions = load_table(warehouse, "fct_sessions", session_days)
    stitched_first = flipped.identity_stitching
    on, off = (alt_attribution, attribution) if stitched_first else (attribution, alt_attribution)
    on_s, off_s = (alt_sessions, sessions) if stitched_first else (sessions, alt_sessions)

    def touches(a: pd.DataFrame) -> pd.Series:
        return a[a.model == "linear"].groupby("order_key")["touch_count"].first()

    more = int((touches(on) > touches(off).reindex(touches(on).index)).sum())
    summary = pd.DataFrame(
        {
            "without stitching": [
                off_s.client_id.nunique(),
                off_s.person_id.nunique(),
                touches(off).size,
                0,
                f"{touches(off).mean():.3f}",
            ],
            "with stitching": [
                on_s.client_id.nunique(),
                on_s.person_id.nunique(),
                touches(on).size,
                more,
                f"{touches(on).mean():.3f}",
            ],
        },
        index=["clients", "persons", "orders", "orders with more touchpoints", "mean touchpoints per order"],
    )
    compare = (
        channel_revenue_by_model(off)
        .merge(channel_revenue_by_model(on), on=["channel", "model"], how="outer", suffixes=("_without", "_with"))
        .fillna(0.0)
    )
    compare["change"] = (compare["revenue_with"] - compare["revenue_without"]).round(2)
    change = compare[compare.model.isin(["first_click", "last_click", "linear", "markov"])].pivot(
        index="channel", columns="model", values="change"
    )
    return StitchingComparison(summary, change)
