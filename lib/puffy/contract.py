"""The raw export's contract: columns, header aliases, the event taxonomy, timestamp formats
(the ``contract`` section of ``params/dq_rules.yaml``). Declared once: the gate's readers
(``puffy.ingest``), its rules (``puffy.dq.rules``) and the transform's event names
(``puffy.transform.params``) all take it from here."""

from __future__ import annotations

from pydantic import Field

from puffy.params import StrictModel


class RawContract(StrictModel):
    """What a raw export is supposed to look like (the ``contract`` section of ``dq_rules.yaml``)."""

    columns: list[str] = Field(
        ["client_id", "page_url", "referrer", "timestamp", "event_name", "event_data", "user_agent"],
        description="Canonical column names, in the documented order.",
    )
    aliases: dict[str, str] = Field(
        {"clientid": "client_id"},
        description="Other header spellings (matched case-insensitively) mapped to canonical names.",
    )
    required_columns: list[str] = Field(
        ["timestamp", "event_name"], description="Without these a file yields no usable event."
    )
    events: list[str] = Field(
        ["page_viewed", "email_filled_on_popup", "product_added_to_cart", "checkout_started", "checkout_completed"],
        description="The event taxonomy; rows with another event_name are rejected as unknown.",
    )
    page_view_event: str = Field("page_viewed", description="The event that records a page view.")
    add_to_cart_event: str = Field("product_added_to_cart", description="The event that records an add-to-cart.")
    checkout_started_event: str = Field("checkout_started", description="The event that starts a checkout.")
    purchase_event: str = Field("checkout_completed", description="The event that records an order.")
    email_event: str = Field("email_filled_on_popup", description="The event that carries a hashed email.")
    dictionary_purchase_event: str = Field(
        "purchase", description="What the vendor's data dictionary calls the purchase (reported if different)."
    )
    timestamp_formats: list[str] = Field(
        ["%Y-%m-%dT%H:%M:%S.%gZ", "%Y-%m-%dT%H:%M:%SZ"], description="Accepted timestamp formats (UTC)."
    )
    client_id_pattern: str = Field(
        r"^(\d{9,11}-[A-Za-z0-9_-]{12}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$",
        description="Well-formed client ids: '<unix seconds>-<12 chars>' or a UUID.",
    )
