"""Channel classification: every rule on hand-built rows, the hashed look-ups, and the real export."""

from __future__ import annotations

from pathlib import Path

import ibis
import pytest

from puffy.channels import (
    CHANNEL_LABELS,
    ChannelRules,
    channel_labels,
    classify_channel,
    load_channel_rules,
    parse_landing,
)
from puffy.errors import ParamsError
from puffy.hashing import anonymise_host, hash_param

H = hash_param
BASE = "https://puffy.com/products/puffy-mattress"


@pytest.fixture(scope="module")
def rules() -> ChannelRules:
    return load_channel_rules()


def _table(rows: list[tuple[str, str | None]]) -> ibis.Table:
    return ibis.memtable(
        {"i": list(range(len(rows))), "page_url": [r[0] for r in rows], "referrer": [r[1] for r in rows]},
        schema={"i": "int64", "page_url": "string", "referrer": "string"},
    )


def _classify(rules: ChannelRules, rows: list[tuple[str, str | None]]) -> list[dict]:
    """Classify rows in ONE query (a query costs ~0.1 s); results in input order, NULL as None."""
    out = classify_channel(parse_landing(_table(rows), rules=rules), rules).order_by("i").execute()
    out = out.astype(object)
    return out.where(out.notna(), None).to_dict("records")


def _one(rules: ChannelRules, url: str, referrer: str | None = None) -> dict:
    return _classify(rules, [(url, referrer)])[0]


# Each case: (description, url, referrer, channel, rule id)
CASES = [
    (
        "google ads: Affiliates medium + gclid",
        f"{BASE}?utm_source=175C1C&utm_medium={H('Affiliates')}&oid=ECCBC8&affid=C20AD4&gad_source=C4CA42"
        f"&gbraid=42DAD4&gclid=495A06",
        "https://source-175c1c8e.com/",
        "Paid Search",
        "paid_search_click_id",
    ),
    (
        "google ads: gbraid + wbraid only",
        f"{BASE}?size=72545F&affid=E4DA3B&gbraid=BDE766&wbraid=C21CA8",
        None,
        "Paid Search",
        "paid_search_click_id",
    ),
    (
        "microsoft ads: msclkid under an Affiliates utm",
        f"{BASE}?utm_source=4DD6A7&utm_medium={H('Affiliates')}&msclkid=623A72&utm_source={H('bing')}"
        f"&utm_medium={H('cpc')}",
        None,
        "Paid Search",
        "paid_search_click_id",
    ),
    (
        "bing cpc without click id",
        f"{BASE}?utm_source={H('bing')}&utm_medium={H('cpc')}",
        None,
        "Paid Search",
        "paid_search_utm",
    ),
    (
        "meta: fbclid + facebook / paid",
        f"{BASE}?oid=ECCBC8&affid=C81E72&fbclid=72B81F&utm_source={H('facebook')}&utm_medium={H('paid')}",
        "https://source-603bdc25.com/",
        "Paid Social",
        "paid_social_click_id",
    ),
    (
        "meta: fbclid + paid medium, no source",
        f"{BASE}?fbclid=72B81F&utm_medium={H('paid')}",
        None,
        "Paid Social",
        "paid_social_click_id",
    ),
    (
        "instagram paid without fbclid",
        f"{BASE}?utm_source={H('instagram')}&utm_medium={H('paid')}",
        None,
        "Paid Social",
        "paid_social_utm",
    ),
    (
        "impact: irclickid",
        f"{BASE}?irclickid=0B5E46&utm_source=AF630F&utm_medium={H('Affiliates')}&irgwc=C4CA42",
        "https://source-e34e0c2e.com/",
        "Affiliates",
        "affiliates_click_id",
    ),
    (
        "affiliates medium, no click id",
        f"{BASE}?utm_source=D9F430&utm_medium={H('Affiliate')}&sscid=A39535",
        None,
        "Affiliates",
        "affiliates_utm",
    ),
    (
        "klaviyo email: _kx",
        f"{BASE}?utm_source=18F8FA&utm_medium=9A780E&utm_campaign=FD625D&bxid=0099B6&_kx=BFD149",
        None,
        "Email",
        "email_click_id",
    ),
    (
        "email medium without _kx",
        f"{BASE}?utm_source=ABC123&utm_medium={H('email')}",
        None,
        "Email",
        "email_utm_medium",
    ),
    (
        "klaviyo sms: sms medium + _kx",
        f"https://puffy.com/?utm_source=8C24F0&utm_medium={H('sms')}&_kx=A45CDD",
        None,
        "SMS",
        "sms_utm_medium",
    ),
    ("SMS spelled upper case", f"https://puffy.com/?utm_medium={H('SMS')}", None, "SMS", "sms_utm_medium"),
    (
        "google organic shopping: srsltid",
        "https://puffy.com/pages/queen-mattresses?srsltid=3C70F0",
        "https://www.google.com/",
        "Organic Shopping",
        "organic_shopping_click_id",
    ),
    ("organic google", BASE, "https://www.google.com/", "Organic Search", "organic_search_referrer"),
    ("organic google ccTLD", BASE, "https://www.google.co.uk/", "Organic Search", "organic_search_referrer"),
    (
        "google app on android",
        BASE,
        "android-app://com.google.android.googlequicksearchbox/",
        "Organic Search",
        "organic_search_referrer",
    ),
    ("anonymised duckduckgo", BASE, "https://source-afb1343a.com/", "Organic Search", "organic_search_referrer"),
    (
        "organic google with page params only",
        f"{BASE}?size=F8A6D9&_gl=0B63A0",
        "https://www.google.com/",
        "Organic Search",
        "organic_search_referrer",
    ),
    ("anonymised m.facebook.com", BASE, "https://source-603bdc25.com/", "Organic Social", "organic_social_referrer"),
    ("android-app m.facebook.com", BASE, "android-app://m.facebook.com/", "Organic Social", "organic_social_referrer"),
    ("t.co in clear", BASE, "https://t.co/abc", "Organic Social", "organic_social_referrer"),
    (
        "instagram anonymised",
        BASE,
        f"https://{anonymise_host('l.instagram.com')}/",
        "Organic Social",
        "organic_social_referrer",
    ),
    ("fbclid alone (organic post)", f"{BASE}?fbclid=EB8F82", None, "Organic Social", "organic_social_click_id"),
    (
        "pinterest source, social medium",
        f"{BASE}?utm_campaign=48F76D&utm_medium={H('Social')}&utm_source={H('pinterest')}",
        None,
        "Organic Social",
        "organic_social_utm_source",
    ),
    ("referral medium", f"{BASE}?utm_source=ABC123&utm_medium={H('referral')}", None, "Referral", "referral_utm"),
    ("unknown anonymised referrer", BASE, "https://source-deadbeef.com/", "Referral", "referral_referrer"),
    ("gmail app", BASE, "android-app://com.google.android.gm/", "Referral", "referral_referrer"),
    # continuations: a session that starts from our own site, the checkout or the payment provider
    ("internal referrer", BASE, "https://puffy.com/pages/store-locator", "Continuation", "continuation_referrer"),
    ("checkout referrer", BASE, "https://checkout.puffy.com/", "Continuation", "continuation_referrer"),
    ("affirm referrer (anonymised)", BASE, "https://source-ee658ef2.com/", "Continuation", "continuation_referrer"),
    (
        "landing on the checkout host",
        "https://checkout.puffy.com/checkouts/cn/Z2Nw/thank-you",
        None,
        "Continuation",
        "continuation_checkout_host",
    ),
    (
        "checkout host reached from google is still a checkout",
        "https://checkout.puffy.com/checkouts/cn/Z2Nw",
        "https://www.google.com/",
        "Continuation",
        "continuation_checkout_host",
    ),
    (
        "checkout host from an unknown anonymised host",
        "https://checkout.puffy.com/checkouts/do/1e29",
        "https://source-04805fd4.com/",
        "Continuation",
        "continuation_checkout_host",
    ),
    (
        "abandoned-cart email to the checkout keeps its campaign",
        "https://checkout.puffy.com/checkouts/cn/Z2Nw?_kx=BFD149",
        None,
        "Email",
        "email_click_id",
    ),
    (
        "tagged landing with an internal referrer keeps its campaign",
        f"{BASE}?gclid=A1B115",
        "https://puffy.com/",
        "Paid Search",
        "paid_search_click_id",
    ),
    ("no referrer, no params", "https://puffy.com/", None, "Direct", "direct"),
    ("no referrer, page params only", f"{BASE}?size=F8A6D9&variant=7B464F", None, "Direct", "direct"),
    ("unknown utm values", f"{BASE}?utm_source=ABCDEF&utm_medium=123456", None, "Unassigned", "default"),
    (
        "unknown tags beat a search referrer",
        f"{BASE}?utm_source=ABCDEF&utm_medium=123456",
        "https://www.google.com/",
        "Unassigned",
        "default",
    ),
    ("affiliate platform ids only", f"{BASE}?oid=ECCBC8&affid=E4DA3B&sub1=7EABC2", None, "Unassigned", "default"),
    (
        "criteo cpc is display, not search (the export's 1FF2BD = criteo, AE24AC = cpc)",
        f"{BASE}?utm_source=1FF2BD&utm_medium=AE24AC",
        None,
        "Display",
        "display_utm_source",
    ),
    (
        "criteo payload on the affiliate platform's link",
        "https://puffy.com/?oid=C81E72&affid=167909&sub1=B243C7&cto_pld=F79604",
        None,
        "Display",
        "display_click_id",
    ),
    ("clear-text utm values", f"{BASE}?utm_source=Facebook&utm_medium=paid", None, "Paid Social", "paid_social_utm"),
]


@pytest.fixture(scope="module")
def classified_cases(rules) -> list[dict]:
    return _classify(rules, [(c[1], c[2]) for c in CASES])


@pytest.mark.parametrize("n", range(len(CASES)), ids=[c[0] for c in CASES])
def test_channel_rules(classified_cases, n):
    _, _, _, channel, rule = CASES[n]
    row = classified_cases[n]
    assert (row["channel"], row["channel_rule"]) == (channel, rule), row


def test_single_row_matches_batch(rules, classified_cases):
    """Classification is row-wise: a row alone gets the answer it gets in a mixed table."""
    for n in (0, 9, len(CASES) - 1):
        row = _one(rules, CASES[n][1], CASES[n][2])
        assert (row["channel"], row["channel_rule"]) == (
            classified_cases[n]["channel"],
            classified_cases[n]["channel_rule"],
        )


def test_every_channel_label_is_exercised():
    assert {c[3] for c in CASES} == set(CHANNEL_LABELS)


LOOKUPS = [
    # hashes quoted in the export's README, i.e. independent of our hashing code
    ("7B4C8A", "utm_medium", "affiliates"),
    ("76E084", "utm_medium", "paid"),
    ("AE24AC", "utm_medium", "cpc"),
    ("18B43C", "utm_medium", "sms"),
    ("0C83F5", "utm_medium", "email"),
    ("CD9BCD", "utm_medium", "referral"),
    ("26CAE7", "utm_source", "facebook"),
    ("738AA8", "utm_source", "bing"),
    # other spellings hash differently and still decode to the vocabulary value
    (H("Facebook"), "utm_source", "facebook"),
    (H("Affiliate"), "utm_medium", "affiliate"),
    (H("google"), "utm_source", "google"),
    (H("Paid Social"), "utm_medium", "paid social"),
    # clear text in the URL is recognised too, in any case; unknown hashes are not
    ("Bing", "utm_source", "bing"),
    ("cpc", "utm_medium", "cpc"),
    ("9A780E", "utm_medium", None),
    ("175C1C", "utm_source", None),
]


def test_hashed_vocabulary_lookup(rules):
    rows = _classify(rules, [(f"{BASE}?{field}={raw}", None) for raw, field, _ in LOOKUPS])
    for (raw, field, decoded), row in zip(LOOKUPS, rows):
        assert (row[field], row[f"{field}_decoded"]) == (raw, decoded), (raw, field)


def test_parse_landing_columns(rules):
    url = (
        f"{BASE}?utm_source=26CAE7&utm_medium=76E084&utm_campaign=9BA155&utm_content=43033F&utm_term=64BB51"
        "&fbclid=72B81F&gclid=A1B115&gbraid=7D5691&wbraid=C21CA8&msclkid=623A72&irclickid=0B5E46"
        "&srsltid=3C70F0&_kx=BFD149&gad_source=C4CA42"
    )
    row = _one(rules, url, "android-app://m.facebook.com/")
    assert {k: row[k] for k in ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")} == {
        "utm_source": "26CAE7",
        "utm_medium": "76E084",
        "utm_campaign": "9BA155",
        "utm_content": "43033F",
        "utm_term": "64BB51",
    }
    assert (row["utm_source_decoded"], row["utm_medium_decoded"]) == ("facebook", "paid")
    assert {
        k: row[k]
        for k in ("gclid", "gbraid", "wbraid", "msclkid", "fbclid", "irclickid", "srsltid", "kx", "gad_source")
    } == {
        "gclid": "A1B115",
        "gbraid": "7D5691",
        "wbraid": "C21CA8",
        "msclkid": "623A72",
        "fbclid": "72B81F",
        "irclickid": "0B5E46",
        "srsltid": "3C70F0",
        "kx": "BFD149",
        "gad_source": "C4CA42",
    }
    assert row["has_marketing_params"]
    assert (row["referrer_host"], row["referrer_host_decoded"], row["referrer_kind"]) == (
        "m.facebook.com",
        "m.facebook.com",
        "social",
    )


def test_absent_params_and_referrer_are_null(rules):
    row = _one(rules, "https://puffy.com/?size=F8A6D9", None)
    for col in (
        "utm_source",
        "utm_source_decoded",
        "gclid",
        "kx",
        "referrer_host",
        "referrer_host_decoded",
        "referrer_kind",
    ):
        assert row[col] is None, col
    assert not row["has_marketing_params"]


REFERRERS = [
    ("https://source-603bdc25.com/", "source-603bdc25.com", "m.facebook.com", "social"),
    ("https://source-ee658ef2.com/", "source-ee658ef2.com", "www.affirm.com", "payment"),
    ("https://source-deadbeef.com/", "source-deadbeef.com", None, "other"),
    (
        f"https://{anonymise_host('capitaloneshopping.com')}/",
        anonymise_host("capitaloneshopping.com"),
        "capitaloneshopping.com",
        "other",
    ),
    ("HTTPS://WWW.Google.COM/search?q=x", "www.google.com", "www.google.com", "search"),
    ("https://checkout.puffy.com/", "checkout.puffy.com", "checkout.puffy.com", "internal"),
    ("https://staging.puffy.com:8443/x", "staging.puffy.com", "staging.puffy.com", "internal"),
    ("android-app://com.google.android.gm/", "com.google.android.gm", "com.google.android.gm", "other"),
    ("android-app://m.facebook.com/", "m.facebook.com", "m.facebook.com", "social"),
    ("", None, None, None),
    ("   ", None, None, None),
    ("\t https://WWW.Bing.com \n", "www.bing.com", "www.bing.com", "search"),
    ("\x0bhttps://www.bing.com/x\x0c", "www.bing.com", "www.bing.com", "search"),
]


def test_referrer_host_and_kind(rules):
    rows = _classify(rules, [(BASE, r[0]) for r in REFERRERS])
    for (referrer, host, decoded, kind), row in zip(REFERRERS, rows):
        assert (row["referrer_host"], row["referrer_host_decoded"], row["referrer_kind"]) == (host, decoded, kind), (
            referrer
        )


def test_strip_whitespace_is_strip():
    """``strip_whitespace`` gives ``strip()``'s answer: values padded with each whitespace character
    on either side or both, inner whitespace (kept), all-whitespace, empty and NULL."""
    import string

    from puffy.channels import strip_whitespace

    values = ["https://puffy.com/", "a b", "", None, " \t\n\r\x0b\x0c", "é ü"]
    for c in string.whitespace:
        values += [f"{c}x", f"x{c}", f"{c}x y{c}", f"{c}{c}", f"x{c}y"]
    t = ibis.memtable({"v": values}, schema={"v": "string"})
    got = ibis.duckdb.connect().to_pyarrow(t.select(fast=strip_whitespace(t.v), slow=t.v.strip())).to_pydict()
    assert got["fast"] == got["slow"]
    assert got["fast"][:6] == ["https://puffy.com/", "a b", "", None, "", "é ü"]


def test_missing_or_null_referrer_column(rules):
    """The export drops the referrer column from 2025-03-04: absent or all-NULL must both work."""
    urls = ["https://puffy.com/", f"{BASE}?gclid=A1B115", f"{BASE}?utm_source=ABCDEF"]
    no_col = ibis.memtable({"page_url": urls}, schema={"page_url": "string"})
    null_col = no_col.mutate(referrer=ibis.null("string"))
    for t in (no_col, null_col):
        out = classify_channel(parse_landing(t, rules=rules), rules).execute()
        assert out["channel"].tolist() == ["Direct", "Paid Search", "Unassigned"]
        assert out["referrer_kind"].isna().all()


def test_custom_column_names(rules):
    t = ibis.memtable({"url": [BASE], "ref": ["https://www.bing.com/"]})
    out = classify_channel(parse_landing(t, url_col="url", referrer_col="ref", rules=rules), rules).execute()
    assert out["channel"].tolist() == ["Organic Search"]


def test_reparsing_replaces_columns(rules):
    once = classify_channel(parse_landing(_table([(f"{BASE}?gclid=A1B115", None)]), rules=rules), rules)
    twice = classify_channel(parse_landing(once, rules=rules), rules)
    assert twice.columns == once.columns
    assert twice.execute()["channel"].tolist() == ["Paid Search"]


def test_classify_requires_parse_landing_columns(rules):
    with pytest.raises(ValueError, match="parse_landing"):
        classify_channel(_table([(BASE, None)]), rules)


def test_channel_labels(rules):
    assert channel_labels(rules) == list(CHANNEL_LABELS)
    assert CHANNEL_LABELS == (
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
    )


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "channels.yaml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = """
mediums: {paid: [cpc]}
sources: {search: [google]}
rules:
  - {id: paid, channel: Paid Search, when: {source: [search], medium: [paid]}}
"""


def test_minimal_rules_file(tmp_path):
    rules = load_channel_rules(_write(tmp_path, MINIMAL))
    assert channel_labels(rules) == ["Paid Search", "Unassigned"]
    out = _classify(rules, [(f"{BASE}?utm_source={H('google')}&utm_medium={H('cpc')}", None), (BASE, None)])
    assert [r["channel"] for r in out] == ["Paid Search", "Unassigned"]


@pytest.mark.parametrize(
    "text,message",
    [
        (MINIMAL + "surprise: 1\n", "unknown key 'surprise'"),
        (MINIMAL.replace("channel: Paid Search", "channel: Paid Other"), "channel"),
        (MINIMAL.replace("medium: [paid]", "medium: [nope]"), "unknown medium group 'nope'"),
        (MINIMAL.replace("when: {", "when: {wat: 1, "), "unknown key"),
        (MINIMAL + "  - {id: paid, channel: Direct, when: {tagged: false}}\n", "duplicate rule ids"),
        (MINIMAL + "  - {id: empty, channel: Direct, when: {}}\n", "at least one condition"),
        (MINIMAL.replace("{paid: [cpc]}", "{paid: [cpc], other: [CPC]}"), "groups"),
        ("rules: []\n", "rules"),
    ],
)
def test_invalid_rules_files(tmp_path, text, message):
    with pytest.raises(ParamsError, match=message):
        load_channel_rules(_write(tmp_path, text))


def test_real_export_page_views(rules, real_data_dir):
    """Every page view of the real export, classified as if it were a landing (skipped without it)."""
    con = ibis.duckdb.connect()
    events = con.read_csv(str(real_data_dir / "events_*.csv"), union_by_name=True, all_varchar=True)
    views = events.filter(events.event_name == "page_viewed")
    out = classify_channel(parse_landing(views, rules=rules), rules)
    counts = dict(out.group_by("channel").aggregate(n=out.count()).execute().itertuples(index=False))
    assert sum(counts.values()) == views.count().execute()
    for channel in (
        "Paid Search",
        "Paid Social",
        "Affiliates",
        "Email",
        "SMS",
        "Organic Search",
        "Organic Shopping",
        "Organic Social",
        "Referral",
        "Direct",
    ):
        assert counts.get(channel, 0) > 0, (channel, counts)
    # Unrecognised tags stay a small remainder.
    assert counts.get("Unassigned", 0) < 0.02 * sum(counts.values()), counts


# (url, the first `[?&]utm_source=([^&#]*)` of it, worked out by hand; '' counts as absent)
QUERY_PARAM_CASES = [
    ("https://puffy.com/?utm_source=ABC&utm_medium=DEF", "ABC"),
    ("https://puffy.com/?x=1&utm_source=ABC#frag", "ABC"),
    ("https://puffy.com/?xutm_source=NO&utm_source=YES", "YES"),  # a longer key ending in the key
    ("https://puffy.com/?xutm_source=NO", None),
    ("https://puffy.com/p=utm_source=NO", None),
    ("https://puffy.com/?utm_source=", None),
    ("https://puffy.com/a&utm_source=PATH?utm_source=Q", "PATH?utm_source=Q"),  # first match, even in the path
    ("https://puffy.com/?a=1#x&utm_source=FRAG", "FRAG"),  # … or in the fragment
    ("https://puffy.com/?utm_source=A%26B&utm_source=C", "A%26B"),
    ("https://puffy.com/?utm_source=A#B", "A"),
    ("https://puffy.com/?utm_source=A?b=1", "A?b=1"),  # '?' does not end a value
    ("https://puffy.com/?a=b?utm_source=Z", "Z"),
    ("https://puffy.com/?utm_sourcex=1", None),
    ("https://püffy.com/ü?ü=ü&utm_source=Ü1&x", "Ü1"),  # positions are characters, not bytes
    ("utm_source=BARE", None),
    ("&utm_source=AMP", "AMP"),
    ("https://puffy.com/?utm_source=1&utm_source=2", "1"),
    ("", None),
    (None, None),
]


def test_query_param_is_the_first_match_in_the_url():
    """``_query_param`` is the first match of ``[?&]key=([^&#]*)`` anywhere in the URL (so also in a
    path or fragment), the empty value counting as absent."""
    from puffy.channels import _query_param

    t = ibis.memtable({"url": [u for u, _ in QUERY_PARAM_CASES]}, schema={"url": "string"})
    got = ibis.duckdb.connect().execute(t.select(v=_query_param(t.url, "utm_source")))["v"]
    assert [None if v is None or v != v else v for v in got] == [want for _, want in QUERY_PARAM_CASES]
