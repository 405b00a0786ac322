"""The rules of daily monitoring: ``params/monitoring_rules.yaml`` as validated pydantic models.

Every threshold and severity a monitor uses lives here, with its default, so the YAML only has to
state what differs from the defaults and an unknown key or impossible value stops the run with a
one-line ``ParamsError`` (see ``puffy.params``).
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from puffy.attribution_params import ModelName
from puffy.dq.rules import load_rules as load_dq_rules
from puffy.errors import ParamsError
from puffy.findings import RaisedSeverity
from puffy.params import StrictModel, load_params, require_within

log = logging.getLogger("puffy.monitoring")

Severity = RaisedSeverity  # what a rule may set (puffy.findings)
Direction = Literal["both", "up", "down"]

# The warehouse's date-partitioned tables (puffy.transform.pipeline.TABLES; a test keeps them equal).
WarehouseTable = Literal["fct_sessions", "fct_orders", "fct_order_items", "fct_order_rejects", "fct_attribution"]


#: Metrics the trend monitor can watch (columns of ``puffy.monitoring.metrics.daily_metrics``).
TREND_METRICS: tuple[str, ...] = (
    "sessions",
    "orders",
    "revenue",
    "conversion_rate",
    "aov",
    "client_id_null_rate",
    "bot_share",
    "returning_visitor_share",
    "untracked_order_share",
    "untracked_revenue_share",
    "rows_fct_sessions",
    "rows_fct_orders",
    "rows_fct_attribution",
)


class AlertRules(StrictModel):
    """The daily run's on-call alert (``puffy.monitoring.alert``): every stopped or quarantined day,
    and a published day with new incidents."""

    webhook_url: str | None = Field(
        None, description="Slack-compatible incoming webhook; null = the variable webhook_url_env names, else no POST."
    )
    webhook_url_env: str | None = Field(
        "PUFFY_ALERT_WEBHOOK_URL",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the webhook URL when "
        "webhook_url is null (keeps the secret out of git).",
    )
    format: Literal["slack", "json"] = Field(
        "slack", description="slack: {text, blocks}; json: the plain puffy.alert/1 document."
    )
    reports_base_url: str | None = Field(
        None,
        pattern=r"^https?://\S+$",
        description="URL at which outputs_dir is served; links are this + "
        "runs/<date>/<stage>.html. null = file:// links.",
    )
    min_severity: Literal["warn", "error"] = Field(
        "warn",
        description="A published day alerts for new incidents of at least this severity "
        "(stopped and quarantined days always alert).",
    )
    timeout_seconds: float = Field(5.0, gt=0, le=60, description="HTTP timeout of the POST.")
    max_findings: int = Field(10, ge=1, description="At most this many findings are listed in the alert.")


class FreshnessRules(StrictModel):
    """Freshness & completeness of the audited warehouse."""

    enabled: bool = True
    tables: list[WarehouseTable] = Field(["fct_sessions", "fct_orders", "fct_attribution"], min_length=1)
    missing_partition_severity: Severity = "error"
    sla_hours: float = Field(36.0, gt=0, description="A partition older than this (mtime vs now) is stale.")
    stale_partition_severity: Severity = "warn"
    gap_window_days: int = Field(14, ge=1, description="Look for missing days this far back.")
    gap_severity: Severity = "warn"
    nonempty_tables: list[WarehouseTable] = Field(
        ["fct_sessions"], description="Tables whose day partition must have rows."
    )
    empty_partition_severity: Severity = "error"


class ZeroRevenueRules(StrictModel):
    """Zero-revenue purchases (rejected from fct_orders, kept in fct_order_rejects)."""

    max_share: float = Field(0.05, ge=0, le=1, description="Fire above this share of the day's purchases ...")
    min_count: int = Field(2, ge=1, description="... and only from this many zero-revenue purchases on.")
    severity: Severity = "warn"


class RevenueRules(StrictModel):
    """Revenue integrity of fct_orders / fct_order_rejects / fct_attribution."""

    enabled: bool = True
    # Filled from the dq_rules.yaml contract by load_rules; not a key of monitoring_rules.yaml.
    purchase_event: str = Field("checkout_completed", description="stg_events event_name of a purchase.")
    duplicate_order_key_severity: Severity = "error"
    duplicate_transaction_id_severity: Severity = "error"
    transaction_id_collision_severity: Severity = "warn"
    negative_revenue_severity: Severity = "error"
    zero_revenue: ZeroRevenueRules = ZeroRevenueRules()
    missing_item_prices_max_share: float = Field(0.5, ge=0, le=1)
    missing_item_prices_severity: Severity = "warn"
    reconciliation_tolerance: float = Field(0.01, ge=0, description="Absolute currency units per check.")
    reconciliation_severity: Severity = "error"
    attribution_models: list[ModelName] | None = Field(
        None, description="Models to reconcile; null = every model present in fct_attribution."
    )


class FunnelRules(StrictModel):
    """Funnel sanity over the day's non-bot sessions."""

    enabled: bool = True
    non_monotone_severity: Severity = "error"
    min_sessions: int = Field(50, ge=1, description="Rates are checked only with this many sessions.")
    min_denominator: int = Field(20, ge=1, description="A stage rate is checked only with this many at its base.")
    bands: dict[
        Literal["product_view_rate", "add_to_cart_rate", "checkout_rate", "purchase_rate", "session_conversion_rate"],
        tuple[float, float],
    ] = Field(
        default_factory=lambda: {
            "product_view_rate": (0.05, 0.95),
            "add_to_cart_rate": (0.01, 0.60),
            "checkout_rate": (0.05, 0.95),
            "purchase_rate": (0.05, 0.95),
            "session_conversion_rate": (0.0005, 0.10),
        }
    )
    band_severity: Severity = "warn"
    max_orders_without_session_share: float = Field(0.05, ge=0, le=1)
    orders_without_session_severity: Severity = "warn"

    @model_validator(mode="after")
    def _bands_ordered(self) -> FunnelRules:
        for name, (low, high) in self.bands.items():
            if not 0 <= low <= high <= 1:
                raise ValueError(f"bands.{name} must be [low, high] with 0 <= low <= high <= 1")
        return self


class MixRules(StrictModel):
    """Marketing-mix drift: the day's channel shares vs a trailing baseline."""

    enabled: bool = True
    baseline_days: int = Field(7, ge=1, description="Compare with this many earlier unflagged days ...")
    lookback_days: int = Field(28, ge=1, description="... found within this many days before the run date.")
    min_baseline_days: int = Field(3, ge=1, description="Fewer baseline days = insufficient history.")
    baseline_start: date | None = Field(None, description="Ignore days before this (after an accepted change).")
    psi_threshold: float = Field(0.10, gt=0, description="Drift fires at PSI >= this ...")
    p_value_threshold: float = Field(0.001, gt=0, lt=1, description="... and chi-square p-value < this.")
    psi_error_threshold: float | None = Field(None, gt=0, description="PSI from which drift is an error.")
    min_sessions: int = Field(100, ge=1, description="Session-mix drift needs this many sessions on the day.")
    min_orders: int = Field(10, ge=1, description="Revenue-mix drift needs this many orders on the day.")
    attribution_model: ModelName = Field("last_click", description="Model whose attributed revenue is compared.")
    severity: Severity = "warn"
    direct_channels: list[str] = Field(["Direct", "Unassigned"], min_length=1)
    direct_share_jump: float = Field(0.10, gt=0, le=1, description="Fire when Direct share rises this much.")
    direct_share_severity: Severity = "warn"
    psi_epsilon: float = Field(1e-4, gt=0, lt=0.01, description="Floor of a share inside the PSI's log.")

    @model_validator(mode="after")
    def _baseline_reachable(self) -> MixRules:
        require_within(self, "min_baseline_days", "baseline_days", "no baseline could ever form")
        return self


class TrendMetric(StrictModel):
    """One trend metric: how big a move must be, and in which direction, to matter."""

    enabled: bool = True
    min_abs_change: float = Field(0.0, ge=0, description="Ignore moves smaller than this (metric units).")
    direction: Direction = "both"
    severity: Severity | None = Field(None, description="Overrides trend.severity.")
    error: bool = Field(True, description="An extreme move (trend.error_z / error_ratio) is an ERROR.")
    error_z: float | None = Field(None, gt=0, description="Overrides trend.error_z.")
    error_ratio: float | None = Field(None, gt=1, description="Overrides trend.error_ratio.")


def _default_trend_metrics() -> dict[str, TrendMetric]:
    return {
        "sessions": TrendMetric(min_abs_change=200),
        "orders": TrendMetric(min_abs_change=5),
        # Order values are heavy-tailed: a clean day of ~20 orders can double its revenue or AOV.
        "revenue": TrendMetric(min_abs_change=5000, error_ratio=3),
        "conversion_rate": TrendMetric(min_abs_change=0.002),
        "aov": TrendMetric(min_abs_change=250, error_ratio=3),
        # Missing client ids are graded by the gate (client_id.*); a known spike must not stop a day.
        "client_id_null_rate": TrendMetric(min_abs_change=0.02, direction="up", error=False),
        "bot_share": TrendMetric(min_abs_change=0.05),
        "returning_visitor_share": TrendMetric(min_abs_change=0.05),
        # Orders whose journey broke (no touchpoint: "Untracked journey" in every model): 25.7% on
        # the real export. A rise means channel credit is shrinking; the numbers stay exact.
        "untracked_order_share": TrendMetric(min_abs_change=0.10, error=False),
        "untracked_revenue_share": TrendMetric(min_abs_change=0.10, error=False),
        "rows_fct_sessions": TrendMetric(min_abs_change=200),
        "rows_fct_orders": TrendMetric(min_abs_change=5),
        # Orders x touchpoints x models: noisier than a count; lost rows fail the reconciliation.
        "rows_fct_attribution": TrendMetric(min_abs_change=50, error=False),
    }


class TrendRules(StrictModel):
    """Trend anomalies: z-score against a trailing window that excludes the day and flagged days."""

    enabled: bool = True
    window_days: int = Field(28, ge=2, description="Trailing window (days before the run date).")
    min_history_days: int = Field(5, ge=2, description="Fewer usable days = insufficient history.")
    min_same_weekday: int = Field(3, ge=2, description="Days of every weekday needed for day-of-week seasonality.")
    baseline_start: date | None = Field(None, description="Ignore days before this (after an accepted change).")
    z_threshold: float = Field(3.0, gt=0)
    severity: Severity = "warn"
    error_z: float | None = Field(3.0, gt=0, description="An extreme move: |z| at least this ...")
    error_ratio: float | None = Field(2.0, gt=1, description="... and at least this multiple (or 1/it) of expected.")
    metrics: dict[str, TrendMetric] = Field(default_factory=_default_trend_metrics)

    @model_validator(mode="after")
    def _history_reachable(self) -> TrendRules:
        require_within(self, "min_history_days", "window_days", "the trend could never be judged")
        return self

    def error_levels(self, metric: TrendMetric) -> tuple[float | None, float | None]:
        """(error_z, error_ratio) of ``metric``: its own, else the trend's; (None, None) = no error level."""
        if not metric.error:
            return None, None
        return (
            metric.error_z if metric.error_z is not None else self.error_z,
            metric.error_ratio if metric.error_ratio is not None else self.error_ratio,
        )


class SegmentRules(StrictModel):
    """Per-channel sessions and click-id landings, each a trend of its own (``segment.*``)."""

    enabled: bool = True
    min_share: float = Field(0.02, ge=0, le=1, description="Watch channels with at least this share of sessions.")
    min_abs_change: float = Field(100, ge=0, description="Ignore moves smaller than this many sessions.")
    z_threshold: float = Field(2.0, gt=0, description="A move fires from this |z| ...")
    min_ratio: float | None = Field(1.5, gt=1, description="... and this multiple (or 1/it) of expected.")
    error_min_net_loss: float = Field(
        0.5, ge=0, le=1, description="Share of an extreme shortfall the total must lose to be an ERROR."
    )
    click_ids: list[str] = Field(
        ["gclid", "gbraid", "wbraid", "msclkid", "fbclid", "irclickid"],
        description="fct_sessions click-id columns whose landings are watched.",
    )


class MonitoringRules(StrictModel):
    """``params/monitoring_rules.yaml``."""

    history_days: int = Field(56, ge=1, description="Days of metric history read before the run date.")
    alert: AlertRules = AlertRules()
    freshness: FreshnessRules = FreshnessRules()
    revenue: RevenueRules = RevenueRules()
    funnel: FunnelRules = FunnelRules()
    mix: MixRules = MixRules()
    trend: TrendRules = TrendRules()
    segments: SegmentRules = SegmentRules()

    @model_validator(mode="after")
    def _known_metrics(self) -> MonitoringRules:
        unknown = sorted(set(self.trend.metrics) - set(TREND_METRICS))
        if unknown:
            raise ValueError(
                f"trend.metrics has unknown metric(s) {', '.join(unknown)}; choose from {', '.join(TREND_METRICS)}"
            )
        return self


def load_rules(path: str | Path | None) -> MonitoringRules:
    """Rules from ``path`` (all defaults when ``path`` is None).

    The purchase event name is not set here: it comes from the raw-data contract in the
    ``dq_rules.yaml`` beside ``path``, the one place that names the export's events.
    """
    if path is None:
        return MonitoringRules()
    rules = load_params(path, MonitoringRules)
    if "purchase_event" in rules.revenue.model_fields_set:
        raise ParamsError(f"{path}: key 'revenue.purchase_event': event names come from the contract in dq_rules.yaml")
    contract_path = Path(path).parent / "dq_rules.yaml"
    if not contract_path.exists():
        log.warning(
            "%s: no dq_rules.yaml beside it; the purchase event is the default contract's %r",
            path,
            rules.revenue.purchase_event,
        )
        return rules
    event = load_dq_rules(contract_path).contract.purchase_event
    return rules.model_copy(update={"revenue": rules.revenue.model_copy(update={"purchase_event": event})})
