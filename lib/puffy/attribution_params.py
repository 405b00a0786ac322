"""The attribution step's parameters (``attribution:`` in ``params/transform.yaml``) as validated
data, and the model names.

Apart from ``puffy.attribution`` (the Ibis expressions and the Markov solver) so that validating
the params, the first thing every run does, imports neither Ibis nor pandas.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, model_validator

from puffy.params import StrictModel

ModelName = Literal[
    "first_click",
    "last_click",
    "last_non_direct_click",
    "linear",
    "position_based",
    "time_decay",
    "markov",
]

#: All model names, in output order.
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)


class AttributionParams(StrictModel):
    """Parameters of the attribution step.

    Inherits the project's ``StrictModel`` (``extra="forbid"``, validated on
    assignment), so it can be loaded from ``params/*.yaml`` with
    ``puffy.params.validate_params``.
    """

    lookback_days: int = Field(
        default=7,
        ge=0,
        description=(
            "Lookback window in days. A session of the order's person is a "
            "touchpoint when order_ts - lookback_days <= session_start <= "
            "order_ts (both ends inclusive: a session starting exactly "
            "lookback_days before the order counts). The order's own session "
            "is always a touchpoint, even with lookback_days=0. Also used as "
            "the inactivity gap that ends a non-converting journey (Markov)."
        ),
    )
    models: list[ModelName] = Field(
        default_factory=lambda: list(MODEL_NAMES),
        min_length=1,
        description=(
            "Models to compute, any of: first_click, last_click, "
            "last_non_direct_click, linear, position_based, time_decay, "
            "markov. Default: all."
        ),
    )
    position_first_weight: float = Field(
        default=0.4,
        ge=0.0,
        le=1.0,
        description=(
            "position_based: share of the first touch when an order has >= 3 "
            "touches. With 2 touches first and last get "
            "first/(first+last) and last/(first+last) (50/50 by default)."
        ),
    )
    position_last_weight: float = Field(
        default=0.4,
        ge=0.0,
        le=1.0,
        description="position_based: share of the last touch (>= 3 touches).",
    )
    position_middle_weight: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description=(
            "position_based: share split equally among the middle touches "
            "(>= 3 touches). first + last + middle must equal 1."
        ),
    )
    time_decay_half_life_days: float = Field(
        default=7.0,
        gt=0.0,
        description=(
            "time_decay: half-life in days; a touch's weight is "
            "2 ** (-days_before_order / half_life), normalised per order. "
            "7 days is the Google Analytics (GA4 / UA) convention."
        ),
    )
    markov_include_non_converting: bool = Field(
        default=True,
        description=(
            "markov: also fit the chain on non-converting journeys (sessions "
            "that are no order's touchpoint, split per person by gaps > "
            "lookback_days). False fits on converting journeys only."
        ),
    )
    direct_channel: str = Field(
        default="Direct",
        min_length=1,
        description="Channel label of direct traffic: skipped by last_non_direct_click.",
    )
    continuation_channel: str = Field(
        default="Continuation",
        min_length=1,
        description=(
            "Channel label of sessions that continue an earlier journey (they "
            "began on the checkout host, or came from our own site or the "
            "payment provider): never a touchpoint, so an order's credit "
            "follows the person's earlier sessions."
        ),
    )
    untracked_channel: str = Field(
        default="Untracked journey",
        min_length=1,
        description=(
            "Channel credited with an order that has no touchpoint "
            "(is_unattributed): no journey is known, which is not Direct."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> AttributionParams:
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models contains duplicates: {self.models}")
        total = self.position_first_weight + self.position_last_weight + self.position_middle_weight
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"position_based weights must sum to 1, got {total}")
        labels = (self.direct_channel, self.continuation_channel, self.untracked_channel)
        if len(set(labels)) != len(labels):
            raise ValueError(f"direct_channel, continuation_channel and untracked_channel must differ, got {labels}")
        if self.position_first_weight + self.position_last_weight <= 0:
            # Otherwise a 2-touch order would have no weight at all.
            raise ValueError("position_first_weight + position_last_weight must be > 0")
        return self
