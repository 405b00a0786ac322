"""The channel rules of ``params/channels.yaml`` as validated data: the channel labels, the click
ids and utm parameters read off a landing, the host vocabularies and the ordered rules.

Apart from ``puffy.channels`` (the Ibis expressions that apply them) so that validating the
params, the first thing every run does, does not import Ibis.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from puffy.hashing import hash_param
from puffy.params import DEFAULT_PARAMS_DIR, StrictModel, load_params

DEFAULT_RULES_PATH = DEFAULT_PARAMS_DIR / "channels.yaml"

ChannelLabel = Literal[
    "Paid Search",
    "Paid Social",
    "Display",
    "Affiliates",
    "Email",
    "SMS",
    "Organic Search",
    "Organic Shopping",
    "Organic Social",
    "Referral",
    "Direct",
    "Continuation",
    "Unassigned",
]
CHANNEL_LABELS: tuple[str, ...] = get_args(ChannelLabel)

# Column name -> query-string key of the click ids we read. `kx` is Klaviyo's `_kx` (a leading
# underscore makes an awkward column name); gad_source is Google Ads' own landing marker.
CLICK_ID_PARAMS: dict[str, str] = {
    "gclid": "gclid",
    "gbraid": "gbraid",
    "wbraid": "wbraid",
    "msclkid": "msclkid",
    "fbclid": "fbclid",
    "irclickid": "irclickid",
    "srsltid": "srsltid",
    "kx": "_kx",
    "gad_source": "gad_source",
    "cto_pld": "cto_pld",
}
ClickId = Literal[
    "gclid", "gbraid", "wbraid", "msclkid", "fbclid", "irclickid", "srsltid", "kx", "gad_source", "cto_pld"
]
UTM_PARAMS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")

ReferrerKind = Literal["internal", "payment", "search", "social", "other"]
REFERRER_KINDS: tuple[str, ...] = get_args(ReferrerKind)
# Kind of the landing page's host: a checkout / payment host (``checkout_hosts``) or the site.
LandingKind = Literal["checkout", "site"]
LANDING_KINDS: tuple[str, ...] = get_args(LandingKind)
# Channel of sessions that continue an earlier journey instead of starting one (docs/attribution.md).
CONTINUATION_CHANNEL = "Continuation"

# What anonymise_host produces; such a host is unreadable unless it is in the vocabulary.
ANONYMISED_HOST_RE = r"^source-[0-9a-f]{8}\.com$"
# Host of a URL: after an optional scheme (https://, android-app://), up to the path / port.
HOST_RE = r"^(?:[A-Za-z][A-Za-z0-9+.-]*://)?([^/?#:]+)"
DEFAULT_RULE_ID = "default"

# Columns parse_landing adds, in order (classify_channel needs them).
LANDING_COLUMNS = (
    *UTM_PARAMS,
    "utm_source_decoded",
    "utm_medium_decoded",
    *CLICK_ID_PARAMS,
    "has_marketing_params",
    "referrer_host",
    "referrer_host_decoded",
    "referrer_kind",
    "landing_host",
    "landing_kind",
)


# --------------------------------------------------------------------------- rules model


class HostVocabulary(StrictModel):
    """Hosts of one referrer kind."""

    hosts: list[str] = Field([], description="Clear-text hosts, matched as written and anonymised.")
    patterns: list[str] = Field([], description="Regexes matched against clear-text hosts only.")

    @field_validator("hosts")
    @classmethod
    def _lower_hosts(cls, hosts: list[str]) -> list[str]:
        return [h.strip().lower() for h in hosts]

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"pattern {p!r} is not a valid regular expression ({exc})") from None
        return patterns


class ReferrerHosts(StrictModel):
    """Referrer host vocabularies; kinds are tested in the order internal, payment, search, social."""

    internal: HostVocabulary = Field(default_factory=HostVocabulary, description="Our own sites.")
    payment: HostVocabulary = Field(default_factory=HostVocabulary, description="Checkout financing steps.")
    search: HostVocabulary = Field(default_factory=HostVocabulary, description="Search engines.")
    social: HostVocabulary = Field(default_factory=HostVocabulary, description="Social networks.")
    other: HostVocabulary = Field(default_factory=HostVocabulary, description="Known hosts, decoding only.")

    def kinds(self) -> dict[str, HostVocabulary]:
        """The classifying kinds in test order (``other`` is the fallback, not a list to test)."""
        return {"internal": self.internal, "payment": self.payment, "search": self.search, "social": self.social}


class RuleCondition(StrictModel):
    """Conditions of one rule: all given conditions must hold; a list means any of its items."""

    click_ids: list[ClickId] | None = Field(None, description="Any of these click ids is present.")
    source: list[str] | None = Field(None, description="Decoded utm_source is in any of these groups.")
    medium: list[str] | None = Field(None, description="Decoded utm_medium is in any of these groups.")
    referrer: list[Literal["none", "internal", "payment", "search", "social", "other"]] | None = Field(
        None, description="Referrer kind is any of these ('none' = no referrer)."
    )
    tagged: bool | None = Field(None, description="The URL carries (true) / carries no (false) marketing params.")
    landing: list[LandingKind] | None = Field(
        None, description="The landing page's host kind is any of these ('checkout' = a checkout_hosts host)."
    )

    @model_validator(mode="after")
    def _not_empty(self) -> RuleCondition:
        if all(v is None for v in (self.click_ids, self.source, self.medium, self.referrer, self.tagged, self.landing)):
            raise ValueError("a rule needs at least one condition")
        return self


class ChannelRule(StrictModel):
    id: str = Field(..., pattern=r"^[a-z][a-z0-9_]*$", description="Unique rule id (column channel_rule).")
    channel: ChannelLabel = Field(..., description="Channel given to rows the rule matches.")
    when: RuleCondition


class ChannelRules(StrictModel):
    """``params/channels.yaml``: vocabularies and ordered channel rules (first match wins)."""

    marketing_params: list[str] = Field([], description="Query keys that mark a landing as campaign-tagged.")
    sources: dict[str, list[str]] = Field({}, description="utm_source vocabulary groups (clear text).")
    mediums: dict[str, list[str]] = Field({}, description="utm_medium vocabulary groups (clear text).")
    referrer_hosts: ReferrerHosts = Field(default_factory=ReferrerHosts)
    checkout_hosts: HostVocabulary = Field(
        default_factory=HostVocabulary,
        description="Hosts of the checkout / payment steps: a session landing there continues a journey.",
    )
    rules: list[ChannelRule] = Field(..., min_length=1, description="Ordered rules; first match wins.")
    default_channel: ChannelLabel = Field("Unassigned", description="Channel when no rule matches.")

    @field_validator("sources", "mediums")
    @classmethod
    def _one_group_per_value(cls, groups: dict[str, list[str]]) -> dict[str, list[str]]:
        seen: dict[str, str] = {}
        for group, values in groups.items():
            for value in values:
                canon = canonical_value(value)
                if canon in seen and seen[canon] != group:
                    raise ValueError(f"value {value!r} is in groups {seen[canon]!r} and {group!r}")
                seen[canon] = group
        # Two different clear values with the same 6-hex hash would make decoding ambiguous.
        value_lookup([v for values in groups.values() for v in values])
        return groups

    @model_validator(mode="after")
    def _rules_consistent(self) -> ChannelRules:
        ids = [r.id for r in self.rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate rule ids: {', '.join(dupes)}")
        if DEFAULT_RULE_ID in ids:
            raise ValueError(f"rule id {DEFAULT_RULE_ID!r} is reserved for rows no rule matches")
        for rule in self.rules:
            for field, groups in (("source", self.sources), ("medium", self.mediums)):
                for name in getattr(rule.when, field) or []:
                    if name not in groups:
                        known = ", ".join(sorted(groups)) or "none defined"
                        raise ValueError(f"rule {rule.id!r}: unknown {field} group {name!r} (known: {known})")
        return self

    def source_values(self, groups: list[str]) -> list[str]:
        return sorted({canonical_value(v) for g in groups for v in self.sources[g]})

    def medium_values(self, groups: list[str]) -> list[str]:
        return sorted({canonical_value(v) for g in groups for v in self.mediums[g]})


def load_channel_rules(path: str | Path = DEFAULT_RULES_PATH) -> ChannelRules:
    """Read and validate a channel rules YAML file (``ParamsError`` naming the bad key otherwise)."""
    return load_params(path, ChannelRules)


@functools.lru_cache(maxsize=1)
def default_rules() -> ChannelRules:
    """The repository's ``params/channels.yaml``, loaded once."""
    return load_channel_rules(DEFAULT_RULES_PATH)


def channel_labels(rules: ChannelRules) -> list[str]:
    """Channels these rules can produce (rules' channels and the default), in the canonical order."""
    used = {r.channel for r in rules.rules} | {rules.default_channel}
    return [label for label in CHANNEL_LABELS if label in used]


def canonical_value(value: str) -> str:
    return value.strip().lower()


def spellings(value: str) -> set[str]:
    """Spellings of a vocabulary value we expect in the wild, before hashing (hashing is case-sensitive)."""
    v = value.strip()
    return {v, v.lower(), v.upper(), v.capitalize(), v.title()}


def value_lookup(values: list[str]) -> dict[str, str]:
    """Upper-cased URL value -> canonical clear value, for hashed and clear spellings of every value.

    Keys are hash_param(spelling) for every spelling (hashes are upper-case hex) plus the clear value
    upper-cased, so one upper-cased key finds both. Two values sharing a key would make decoding
    ambiguous, so that is an error (6 hex characters do collide, rarely).
    """
    out: dict[str, str] = {}
    for value in values:
        canon = canonical_value(value)
        for key in {hash_param(s) for s in spellings(value)} | {canon.upper()}:
            if out.get(key, canon) != canon:
                raise ValueError(f"values {out[key]!r} and {canon!r} are both recognised by {key!r}")
            out[key] = canon
    return out
