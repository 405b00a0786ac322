"""``params/transform.yaml``: every knob of the transform, validated (unknown keys are errors).

The attribution models' own parameters are the ``attribution`` section, validated by
:class:`puffy.attribution_params.AttributionParams`; channel rules live in ``params/channels.yaml``.
Event names are not set here: they come from the raw-data contract in ``params/dq_rules.yaml``,
the one place that says what the export's events are called.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field, model_validator

from puffy.attribution_params import AttributionParams
from puffy.contract import RawContract
from puffy.errors import ParamsError
from puffy.params import StrictModel, load_params

log = logging.getLogger("puffy.transform")

TRANSFORM_PARAMS_FILE = "transform.yaml"


_CONTRACT = RawContract()


class TransformParams(StrictModel):
    """What ``run_transform`` does; see ``params/transform.yaml`` for the meaning of each key."""

    # --- sessionization
    session_timeout_minutes: float = Field(
        30.0,
        ge=1 / 60,
        le=24 * 60,
        description="Inactivity timeout: an event at least this long after the client's previous event "
        "starts a new session (a gap of exactly the timeout starts a new session). At least "
        "one second, so a client's sessions never overlap.",
    )
    split_on_campaign_change: bool = Field(
        False,
        description="Also start a new session when an event lands with a campaign "
        "(utm_source|utm_medium|utm_campaign) different from the session's current one.",
    )
    exclude_bots: bool = Field(
        True,
        description="Drop events whose user agent is a bot before sessionization (they are counted "
        "in rpt_reconciliation). False keeps bot sessions, flagged is_bot.",
    )
    identity_stitching: bool = Field(
        False,
        description="Join client ids sharing a hashed email (popup or purchase) into one person "
        "(person_id = smallest client_id of the connected component).",
    )
    probabilistic_link: bool = Field(
        False,
        description="Add the probabilistic checkout link to the stitched identity: a purchase whose "
        "client id started no checkout in the window is joined to the one other client id "
        "that did, with the same user agent (puffy.transform.identity.checkout_link_edges).",
    )
    probabilistic_link_minutes: float = Field(
        60.0,
        gt=0,
        le=24 * 60,
        description="Window of the probabilistic link: checkout starts at most this long before the purchase.",
    )
    context_days: int = Field(
        2,
        ge=1,
        le=7,
        description="Days of staged events read before the first date written, so that sessions "
        "continuing from earlier days are not mis-started.",
    )
    product_path_regex: str = Field(
        r"/products/",
        min_length=1,
        description="A page_viewed whose URL path matches this is a product view.",
    )

    # --- event taxonomy: the contract's (puffy.contract; load_transform_params fills them from
    # the dq_rules.yaml contract, so a params file cannot name them twice)
    page_view_event: str = Field(_CONTRACT.page_view_event, description="Event name of a page view.")
    add_to_cart_event: str = Field(_CONTRACT.add_to_cart_event, description="Event name of an add-to-cart.")
    checkout_started_event: str = Field(_CONTRACT.checkout_started_event, description="Event name of a checkout start.")
    purchase_event: str = Field(_CONTRACT.purchase_event, description="Event name of a completed order.")
    email_event: str = Field(_CONTRACT.email_event, description="Event name of a popup email capture.")

    # --- orders
    dedupe_exact_replays: bool = Field(
        True,
        description="Collapse repeated purchase events with the same transaction id, client and "
        "payload into the first one (the rest go to fct_order_rejects, reason 'replay').",
    )
    exclude_zero_revenue_empty_orders: bool = Field(
        True,
        description="Send purchase events with revenue 0 and no item carrying any value to "
        "fct_order_rejects (reason 'zero_revenue_empty_items') instead of fct_orders.",
    )

    # --- attribution
    markov_fit_days: int = Field(
        28,
        ge=1,
        description="The Markov chain for orders of day D is fitted on sessions and orders of the "
        "markov_fit_days days ending on D (same window for both, as attribution.md advises).",
    )
    attribution: AttributionParams = Field(
        default_factory=AttributionParams, description="puffy.attribution_params.AttributionParams."
    )
    channels_file: str = Field("channels.yaml", description="Channel rules file, relative to the params dir.")

    @model_validator(mode="after")
    def _fit_covers_lookback(self) -> TransformParams:
        if "markov" in self.attribution.models and self.markov_fit_days <= self.attribution.lookback_days:
            raise ValueError(
                f"markov_fit_days ({self.markov_fit_days}) must exceed attribution.lookback_days "
                f"({self.attribution.lookback_days}) so the fitted window holds the orders' full lookback"
            )
        return self


EVENT_FIELDS = ("page_view_event", "add_to_cart_event", "checkout_started_event", "purchase_event", "email_event")


def load_transform_params(params_dir: Path) -> TransformParams:
    """``<params_dir>/transform.yaml`` validated (defaults when absent), with the event names of
    the contract in ``<params_dir>/dq_rules.yaml``."""
    from puffy.dq.rules import load_rules

    path = Path(params_dir) / TRANSFORM_PARAMS_FILE
    params = load_params(path, TransformParams) if path.exists() else TransformParams()
    named = sorted(f for f in EVENT_FIELDS if f in params.model_fields_set)
    if named:
        raise ParamsError(f"{path}: key '{named[0]}': event names come from the contract in dq_rules.yaml")
    rules_path = Path(params_dir) / "dq_rules.yaml"
    if not rules_path.exists():
        log.warning("%s: not found; event names are the default contract's", rules_path)
        return params
    contract = load_rules(rules_path).contract
    return params.model_copy(update={f: getattr(contract, f) for f in EVENT_FIELDS})
