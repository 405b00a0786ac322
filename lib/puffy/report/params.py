"""``params/report.yaml`` as validated data: the executive summary's parameters.

Apart from ``puffy.report.data`` (which reads the warehouse with DuckDB and pandas) so that
validating the params, the first thing every run does, imports neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from puffy.attribution_params import MODEL_NAMES
from puffy.params import StrictModel, load_params

#: Models ``fct_attribution`` may hold (see ``docs/attribution.md``).
ALL_MODELS = MODEL_NAMES


#: Daily-run findings that change no number of the report (defaults of ``ignore_findings``).
HARMLESS_FINDINGS = (
    "schema.column_renamed",
    "schema.day_over_day_renamed",
    "schema.column_extra",
    "taxonomy.dictionary_purchase_name",
    "taxonomy.dictionary_daily_volume",
    "timestamps.unsorted",
    "payload.revenue_non_integer",
    "duplicates.exact_row",
    "volume.insufficient_history",
    "trend.insufficient_history",
    "trend.metric_unavailable",
    "mix.insufficient_history",
    "revenue.reconciliation_skipped",
)


class ReportParams(StrictModel):
    """``params/report.yaml`` (each key is documented in the file)."""

    period_days: int = Field(14, ge=1, le=366)
    previous_period_min_coverage: float = Field(1.0, gt=0, le=1)
    currency_symbol: str = Field("$", max_length=4)
    confidence_level: float = Field(0.95, gt=0.5, lt=1)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    bootstrap_resamples: int = Field(2000, ge=100, le=100_000)
    bootstrap_seed: int = Field(20250308, ge=0)
    notable_change: float = Field(0.10, gt=0, lt=10)
    min_group_sessions: int = Field(200, ge=1)
    min_level_conversions: int = Field(5, ge=1)
    reference_channel: str = "Direct"
    reference_device: str = "desktop"
    attribution_models: list[str] = Field(default_factory=lambda: list(ALL_MODELS), min_length=1)
    pdf_attribution_models: list[str] = Field(
        default_factory=lambda: ["first_click", "last_click", "markov"], min_length=1, max_length=4
    )
    attribution_gap_points: float = Field(5.0, gt=0, le=100)
    pdf_channels: int = Field(8, ge=2, le=15)
    top_products: int = Field(8, ge=1, le=30)
    client_id_null_caveat: float = Field(0.02, ge=0, le=1)
    ignore_findings: list[str] = Field(default_factory=lambda: list(HARMLESS_FINDINGS))
    chart_dpi: int = Field(150, ge=50, le=600)
    pdf_page_size: str = "A4"
    pdf_max_pages: int = Field(2, ge=1, le=2)
    multiple_comparison_method: Literal["holm", "fdr_bh"] = "fdr_bh"
    fold_threshold: float = Field(0.03, ge=0, le=1)
    power: float = Field(0.8, gt=0.5, lt=1)
    change_point_min_days: int = Field(3, ge=2, le=30)
    change_point_permutations: int = Field(4999, ge=99, le=100_000)
    incrementality_detectable_drop: float = Field(0.25, gt=0, lt=1)
    incrementality_holdout_share: float = Field(0.2, gt=0, lt=1)

    @model_validator(mode="after")
    def _known_models(self) -> ReportParams:
        unknown = sorted(set(self.attribution_models + self.pdf_attribution_models) - set(ALL_MODELS))
        if unknown:
            raise ValueError(f"unknown attribution model(s) {', '.join(unknown)}; choose from {', '.join(ALL_MODELS)}")
        return self


def load_report_params(params_dir: str | Path) -> ReportParams:
    """``<params_dir>/report.yaml`` validated; all defaults when the file does not exist."""
    path = Path(params_dir) / "report.yaml"
    return load_params(path, ReportParams) if path.exists() else ReportParams()
