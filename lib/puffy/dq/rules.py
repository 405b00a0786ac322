"""``params/dq_rules.yaml`` as validated pydantic models.

Every check reads its cut-offs from here, so tuning the gate never means editing code. Three kinds
of setting exist:

* ``Threshold`` — a metric graded by levels: a value at or above ``error`` is an ERROR, at or
  above ``warn`` a WARN, at or above ``info`` an INFO. ``0`` means "any occurrence" (a value of 0
  never triggers); ``null`` switches that level off. Counts and rates (0–1) use the same model; the
  key name says which (``*_count``, ``*_rate``, ``*_delta``, ``*_ratio``).
* ``RatioBand`` — a ratio to the trailing baseline that must stay inside ``[low, high]``.
* ``Severity`` — a fixed severity for a yes/no condition (a column is missing, …).

Unknown keys are errors (``extra='forbid'``), so a typo stops the run with one line.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from puffy.contract import RawContract
from puffy.findings import RAISED, RaisedSeverity
from puffy.params import StrictModel, require_within

Severity = RaisedSeverity  # what a rule may set (puffy.findings)
LEVELS = RAISED


class Threshold(StrictModel):
    """Severity cut-offs for one metric (see module docstring)."""

    info: float | None = Field(None, ge=0, description="At or above: INFO.")
    warn: float | None = Field(None, ge=0, description="At or above: WARN.")
    error: float | None = Field(None, ge=0, description="At or above: ERROR.")

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        set_levels = [getattr(self, lvl) for lvl in LEVELS if getattr(self, lvl) is not None]
        if set_levels != sorted(set_levels):
            raise ValueError("levels must not decrease: info <= warn <= error")
        return self

    def grade(self, value: float | None) -> str:
        """'error' | 'warn' | 'info' | 'pass' for ``value``."""
        if value is None or value <= 0:
            return "pass"
        for level in reversed(LEVELS):
            cut = getattr(self, level)
            if cut is not None and value >= cut:
                return level
        return "pass"

    def as_dict(self) -> dict:
        out = {"warn": self.warn, "error": self.error}
        if self.info is not None:
            out["info"] = self.info
        return out


class RatioBand(StrictModel):
    """Allowed range of a ratio to the baseline: outside ``warn`` is a WARN, outside ``error`` an ERROR."""

    warn: tuple[float, float] = Field(description="[low, high] ratio band; outside it: WARN.")
    error: tuple[float, float] = Field(description="[low, high] ratio band; outside it: ERROR.")

    @model_validator(mode="after")
    def _nested(self) -> RatioBand:
        (wl, wh), (el, eh) = self.warn, self.error
        if not (0 <= el <= wl <= wh <= eh):
            raise ValueError("bands must nest: 0 <= error.low <= warn.low <= warn.high <= error.high")
        return self

    def grade(self, ratio: float | None) -> str:
        if ratio is None:
            return "pass"
        if not self.error[0] <= ratio <= self.error[1]:
            return "error"
        if not self.warn[0] <= ratio <= self.warn[1]:
            return "warn"
        return "pass"

    def as_dict(self) -> dict:
        return {"warn": list(self.warn), "error": list(self.error)}


def _t(info=None, warn=None, error=None):
    return Field(default_factory=lambda: Threshold(info=info, warn=warn, error=error))


class IngestRules(StrictModel):
    malformed_line_rate: Threshold = _t(warn=0, error=0.01)
    missing_file: Severity = "error"
    reconciliation: Severity = "error"


class SchemaRules(StrictModel):
    unreadable_file: Severity = "error"
    missing_column: Severity = "warn"
    renamed_column: Severity = "warn"
    extra_column: Severity = "warn"
    changed_vs_previous_day: Severity = "warn"


class TaxonomyRules(StrictModel):
    unknown_event_rate: Threshold = _t(warn=0, error=0.01)
    event_absent: Severity = "warn"
    event_absent_min_day_events: int = Field(100, ge=0)
    dictionary_mismatch: Severity = "info"


class TimestampRules(StrictModel):
    unparseable_rate: Threshold = _t(warn=0, error=0.01)
    outside_file_day_rate: Threshold = _t(warn=0, error=0.01)
    # Any event after the run time is an ERROR: a broken clock, and the day's totals would be wrong.
    future_rate: Threshold = _t(error=0)
    future_tolerance_minutes: float = Field(5, ge=0)
    unsorted: Severity = "info"
    # Hours from a day's start to its first event, or from its last event to its end, whichever is
    # longer: a file cut short, or starting late. Graded on days with edge_gap_min_events or more
    # events only: sparse traffic leaves long edges anyway.
    edge_gap_hours: Threshold = _t(warn=2, error=6)
    edge_gap_min_events: int = Field(200, ge=1)


class ClientIdRules(StrictModel):
    null_rate: Threshold = _t(warn=0.03, error=0.25)
    null_rate_min_events: int = Field(100, ge=1)
    null_rate_ratio: Threshold = _t(warn=3, error=None)
    null_rate_ratio_min_delta: float = Field(0.01, ge=0)
    bad_format_rate: Threshold = _t(warn=0, error=0.01)


class DuplicateRules(StrictModel):
    exact_row_rate: Threshold = _t(warn=0, error=0.01)
    same_key_rate: Threshold = _t(info=0, warn=0.005, error=None)
    transaction_id_replay_rate: Threshold = _t(warn=0, error=0.5)
    transaction_id_collision_rate: Threshold = _t(warn=0, error=0.5)


class PayloadRules(StrictModel):
    invalid_json_rate: Threshold = _t(warn=0, error=0.25)
    revenue_missing_rate: Threshold = _t(warn=0, error=0.25)
    revenue_non_numeric_rate: Threshold = _t(warn=0, error=0.25)
    revenue_negative_rate: Threshold = _t(warn=0, error=0.25)
    revenue_zero_rate: Threshold = _t(warn=0, error=0.25)
    revenue_mismatch_rate: Threshold = _t(warn=0, error=0.25)
    revenue_tolerance: float = Field(0.01, ge=0)
    items_missing_rate: Threshold = _t(warn=0, error=0.25)
    item_price_missing_rate: Threshold = _t(warn=0, error=None)
    item_fields_missing_rate: Threshold = _t(warn=0, error=0.5)
    non_integer_revenue: Severity = "info"


class VolumeRules(StrictModel):
    daily_events_ratio: RatioBand = Field(default_factory=lambda: RatioBand(warn=(0.5, 2.0), error=(0.2, 5.0)))
    event_name_ratio: RatioBand = Field(default_factory=lambda: RatioBand(warn=(0.4, 2.5), error=(0.1, 10.0)))
    event_name_min_baseline: int = Field(30, ge=1)
    insufficient_history: Severity = "info"


class BotRules(StrictModel):
    share: Threshold = _t(warn=0.05, error=0.30)
    # None: the contract's checkout_started_event and purchase_event (the contract names the events).
    checkout_events: list[str] | None = None
    checkout_event_count: Threshold = _t(warn=1, error=None)


class ReferrerRules(StrictModel):
    share_delta: Threshold = _t(warn=0.10, error=None)
    min_page_views: int = Field(100, ge=1)
    anonymised_pattern: str = r"^https?://source-[0-9a-f]{8}\.com"
    utm_markers: list[str] = Field(default_factory=lambda: ["?utm_", "&utm_"])


class CoverageRules(StrictModel):
    page_url_null_rate: Threshold = _t(warn=0.01, error=0.25)
    user_agent_null_rate: Threshold = _t(warn=0.01, error=0.25)


class MaterialityRules(StrictModel):
    """How wrong a day's published numbers may be before the day stops (``puffy.dq.checks.materiality``)."""

    orders_lost_rate: Threshold = _t(warn=0, error=0.01)
    revenue_lost_rate: Threshold = _t(warn=0, error=0.01)
    sessions_at_risk_rate: Threshold = _t(warn=0, error=0.01)
    no_purchases: Severity = "error"
    no_purchases_min_baseline: float = Field(3, ge=0)


class DqRules(StrictModel):
    """The whole ``dq_rules.yaml``."""

    contract: RawContract = Field(default_factory=RawContract)
    baseline_days: int = Field(7, ge=0)
    min_baseline_days: int = Field(3, ge=1)
    dictionary_daily_events: tuple[int, int] = (2000, 2500)
    sample_rows: int = Field(5, ge=0, le=5)
    ingest: IngestRules = Field(default_factory=IngestRules)
    schema_rules: SchemaRules = Field(default_factory=SchemaRules, alias="schema")
    taxonomy: TaxonomyRules = Field(default_factory=TaxonomyRules)
    timestamps: TimestampRules = Field(default_factory=TimestampRules)
    client_ids: ClientIdRules = Field(default_factory=ClientIdRules)
    duplicates: DuplicateRules = Field(default_factory=DuplicateRules)
    payload: PayloadRules = Field(default_factory=PayloadRules)
    volume: VolumeRules = Field(default_factory=VolumeRules)
    bots: BotRules = Field(default_factory=BotRules)
    referrer: ReferrerRules = Field(default_factory=ReferrerRules)
    coverage: CoverageRules = Field(default_factory=CoverageRules)
    materiality: MaterialityRules = Field(default_factory=MaterialityRules)

    @model_validator(mode="after")
    def _consistent(self) -> DqRules:
        low, high = self.dictionary_daily_events
        if low > high:
            raise ValueError("dictionary_daily_events must be [low, high]")
        if self.baseline_days:  # 0 = no baselines at all
            require_within(self, "min_baseline_days", "baseline_days", "no baseline could ever form")
        return self


def load_rules(path) -> DqRules:
    """Read and validate ``dq_rules.yaml`` (``ParamsError`` with one line on any problem)."""
    from puffy.params import load_params

    return load_params(path, DqRules)
