"""Hand-written vocabularies for the sample generator.

Everything here was written by hand after studying the real export (its
README and its distributions): page paths and their rough popularity, user
agent strings, the product catalogue with its variant strings and price
points, the shapes of marketing landing URLs, and the daily/weekly traffic
cycle.  No rows of the real data are copied.

Strings are stored once in `TEXT` and referred to by index, so the simulation
can work on small integer arrays and only turn them into text when a day file
is written.
"""

from __future__ import annotations

import numpy as np

from puffy.hashing import anonymise_host, hash_param

H = hash_param

SITE = "https://puffy.com"
CHECKOUT_SITE = "https://checkout.puffy.com"

# --------------------------------------------------------------------------
# Text table shared by page_url and referrer codes (index 0 is the empty string).
TEXT: list[str] = [""]
_TEXT_INDEX: dict[str, int] = {"": 0}


def text_id(s: str) -> int:
    """Index of `s` in TEXT, adding it on first use."""
    if s not in _TEXT_INDEX:
        _TEXT_INDEX[s] = len(TEXT)
        TEXT.append(s)
    return _TEXT_INDEX[s]


def page(path: str) -> int:
    return text_id(SITE + path)


# --------------------------------------------------------------------------
# Channels (GA4 default channel group names) in the order used for channel codes.
CHANNELS = (
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
)
CH = {name: i for i, name in enumerate(CHANNELS)}

# Share of sessions per channel for a visitor's first visit and for return
# visits: paid media brings new people, returning people come back directly or
# through owned media (email/SMS).
CHANNEL_MIX_NEW = {
    "Direct": 0.26,
    "Paid Search": 0.33,
    "Affiliates": 0.10,
    "Organic Shopping": 0.07,
    "Organic Search": 0.08,
    "Paid Social": 0.07,
    "Email": 0.02,
    "SMS": 0.005,
    "Referral": 0.035,
    "Organic Social": 0.03,
}
CHANNEL_MIX_RETURNING = {
    "Direct": 0.40,
    "Paid Search": 0.20,
    "Affiliates": 0.07,
    "Organic Shopping": 0.04,
    "Organic Search": 0.09,
    "Paid Social": 0.04,
    "Email": 0.08,
    "SMS": 0.02,
    "Referral": 0.03,
    "Organic Social": 0.03,
}
# How likely a session of this channel is to go down the funnel, relative to average.
CHANNEL_INTENT = {
    "Paid Search": 1.1,
    "Paid Social": 0.6,
    "Affiliates": 1.3,
    "Email": 1.8,
    "SMS": 1.8,
    "Organic Search": 0.6,
    "Organic Shopping": 0.8,
    "Organic Social": 0.4,
    "Referral": 0.9,
    "Direct": 1.2,
}

# Clear-text hosts behind the anonymised referrers.  A pipeline can rebuild the
# anonymised forms with puffy.hashing.anonymise_host.
SOCIAL_HOSTS = (
    "m.facebook.com",
    "l.facebook.com",
    "www.facebook.com",
    "l.instagram.com",
    "www.instagram.com",
    "www.pinterest.com",
    "www.reddit.com",
    "www.youtube.com",
    "t.co",
    "www.tiktok.com",
)
REFERRAL_HOSTS = (
    "www.sleepfoundation.org",
    "www.mattressclarity.com",
    "sleepopolis.com",
    "www.tomsguide.com",
    "www.nytimes.com",
    "www.cnet.com",
    "www.forbes.com",
    "www.goodhousekeeping.com",
)
AFFILIATE_HOSTS = ("www.retailmenot.com", "slickdeals.net", "www.rakuten.com")
AFFIRM_HOST = "www.affirm.com"  # financing step of checkout: a referrer, never a channel


def anon(host: str) -> str:
    return "https://" + anonymise_host(host) + "/"


GOOGLE = "https://www.google.com/"
BING = "https://www.bing.com/"
REF_SITE = text_id(SITE + "/")
REF_CHECKOUT = text_id(CHECKOUT_SITE + "/")
REF_AFFIRM = text_id(anon(AFFIRM_HOST))

# --------------------------------------------------------------------------
# Landing URL shapes.  Each template is (channel, query template, weight within
# the channel).  Placeholders: {c} click id, {a} {b} other per-visit tokens,
# {camp} campaign, {src} source/publisher.  Fixed values are hashed like the
# export hashes them.
_GOOGLE_ADS_AFF = f"oid={H('3')}&affid={H('5')}&sub1={{a}}&sub2={{b}}&sub3={{camp}}"
LANDING_TEMPLATES: list[tuple[str, str, float]] = [
    # Google Ads: affiliate-network tracking plus gclid; utm_medium says
    # "Affiliates" on many of them, so the click id must win.
    ("Paid Search", f"{_GOOGLE_ADS_AFF}&gad_source={H('1')}&gclid={{c}}", 0.35),
    (
        "Paid Search",
        f"utm_source={{src}}&utm_medium={H('Affiliates')}&utm_campaign={{camp}}"
        f"&utm_content={{b}}&amp_device_id={{a}}&{_GOOGLE_ADS_AFF}"
        f"&gad_source={H('1')}&gbraid={{b}}&gclid={{c}}&_gl={{a}}",
        0.30,
    ),
    (
        "Paid Search",
        f"size={H('Queen')}&sfdr_ptcid={{a}}&sfdr_hash={{b}}&oid={H('3')}&affid={H('5')}"
        f"&sub1={{camp}}&sub2={H('')}&sub3={H('')}&gad_source={H('1')}&gbraid={{b}}"
        f"&gclid={{c}}",
        0.20,
    ),
    # Microsoft Ads; some carry the affiliate utm_medium too.
    (
        "Paid Search",
        f"utm_content={{b}}&utm_source={H('bing')}&utm_medium={H('cpc')}&utm_campaign={{camp}}&msclkid={{c}}",
        0.10,
    ),
    (
        "Paid Search",
        f"utm_content={{b}}&utm_source={H('bing')}&utm_medium={H('Affiliates')}"
        f"&utm_campaign={{camp}}&oid={H('167909')}&affid={{src}}&sub1={{a}}"
        f"&msclkid={{c}}&_gl={{a}}",
        0.05,
    ),
    # Meta ads.
    (
        "Paid Social",
        f"oid={H('3')}&affid={H('2')}&sub1={{camp}}&sub2={{a}}&sub3={{b}}&fbclid={{c}}"
        f"&utm_source={H('facebook')}&utm_medium={H('paid')}&campaign_id={{camp}}"
        f"&ad_id={{b}}&utm_id={{camp}}&utm_content={{b}}&utm_term={{a}}"
        f"&utm_campaign={{camp}}",
        0.7,
    ),
    (
        "Paid Social",
        f"size={H('King')}&sfdr_ptcid={{a}}&sfdr_hash={{b}}&media_type={H('video')}"
        f"&fbclid={{c}}&utm_source={H('facebook')}&utm_medium={H('paid')}"
        f"&utm_campaign={{camp}}",
        0.3,
    ),
    # Impact affiliates (click id repeated in clickid/im_ref) and plain utm affiliates.
    (
        "Affiliates",
        f"irclickid={{c}}&utm_source={{src}}&utm_medium={H('Affiliates')}&clickid={{c}}"
        f"&sharedid={H('')}&iradid={H('1424')}&im_ref={{c}}&irgwc={H('1')}",
        0.75,
    ),
    ("Affiliates", f"utm_source={{src}}&utm_medium={H('Affiliates')}&utm_campaign={{camp}}", 0.25),
    # Klaviyo email and SMS.
    (
        "Email",
        f"utm_source={{src}}&utm_medium={H('email')}&utm_campaign={{camp}}&utm_content={{a}}&bxid={{b}}&_kx={{c}}",
        1.0,
    ),
    ("SMS", f"bxid={{b}}&utm_campaign={{camp}}&utm_content={{b}}&utm_medium={H('sms')}&utm_source={{src}}", 1.0),
    ("Organic Search", "", 1.0),
    ("Organic Shopping", "srsltid={c}", 1.0),
    ("Organic Social", "", 1.0),
    ("Referral", "", 0.9),
    ("Referral", f"utm_source={{src}}&utm_medium={H('referral')}&utm_campaign={{camp}}", 0.1),
    ("Direct", "", 1.0),
]
DIRECT_TEMPLATE = next(i for i, (ch, _, _) in enumerate(LANDING_TEMPLATES) if ch == "Direct")
# Templates whose channel is told by the referrer alone: once the referrer
# column is gone these sessions look Direct.
REFERRER_ONLY_TEMPLATES = frozenset(
    i
    for i, (ch, q, _) in enumerate(LANDING_TEMPLATES)
    if q == "" and ch in ("Organic Search", "Organic Social", "Referral")
)

# Campaign and source names per channel, hashed like the export does.
CAMPAIGNS = {
    "Paid Search": [
        "brand_exact",
        "brand_broad",
        "generic_mattress",
        "pmax_mattress",
        "pmax_bedding",
        "competitor",
        "mattress_sale",
    ],
    "Paid Social": ["prospecting_video", "retargeting_dpa", "lookalike_buyers", "presidents_day"],
    "Affiliates": ["impact_default", "coupon_sites", "review_sites"],
    "Email": ["welcome_flow", "abandoned_cart", "browse_abandon", "weekly_newsletter", "sale_blast"],
    "SMS": ["abandoned_cart_sms", "sale_sms"],
    "Referral": ["partner_links", "press"],
}
SOURCES = {
    "Paid Search": ["google", "youtube"],
    "Affiliates": ["impact", "retailmenot", "slickdeals", "rakuten", "honey", "wirecutter"],
    "Email": ["klaviyo", "klaviyo_flows"],
    "SMS": ["attentive", "postscript"],
    "Referral": ["partner", "press"],
}
MAX_VOCAB = 8  # campaign/source indices are drawn below this and wrapped per channel


def _hashed_lists(names: dict[str, list[str]]) -> list[list[str]]:
    return [[H(n) for n in names.get(ch, ["none"])] for ch in CHANNELS]


CAMPAIGN_HASHES = _hashed_lists(CAMPAIGNS)
SOURCE_HASHES = _hashed_lists(SOURCES)

# Landing referrers per channel: (referrer, weight normally, weight in the days
# before the referrer column disappears, when the export's null share drops).
LANDING_REFERRERS: dict[str, list[tuple[str, float, float]]] = {
    "Paid Search": [
        ("", 0.85, 0.55),
        (GOOGLE, 0.12, 0.35),
        ("android-app://com.google.android.googlequicksearchbox/", 0.03, 0.10),
    ],
    "Paid Social": [
        (anon("m.facebook.com"), 0.50, 0.60),
        ("", 0.30, 0.15),
        ("android-app://m.facebook.com/", 0.08, 0.10),
        (anon("l.instagram.com"), 0.12, 0.15),
    ],
    "Affiliates": [("", 0.75, 0.50)] + [(anon(h), 0.25 / 3, 0.50 / 3) for h in AFFILIATE_HOSTS],
    "Email": [("", 0.95, 0.85), ("android-app://com.google.android.gm/", 0.05, 0.15)],
    "SMS": [("", 1.0, 1.0)],
    "Organic Search": [
        (GOOGLE, 0.78, 0.78),
        (BING, 0.14, 0.14),
        ("https://www.google.ca/", 0.04, 0.04),
        ("https://www.google.co.uk/", 0.04, 0.04),
    ],
    "Organic Shopping": [(GOOGLE, 0.75, 0.90), ("", 0.25, 0.10)],
    "Organic Social": [
        (anon(h), w, w) for h, w in zip(SOCIAL_HOSTS, (0.30, 0.06, 0.04, 0.15, 0.05, 0.12, 0.10, 0.08, 0.05, 0.05))
    ],
    "Referral": [(anon(h), w, w) for h, w in zip(REFERRAL_HOSTS, (0.25, 0.15, 0.15, 0.12, 0.10, 0.08, 0.08, 0.07))],
    "Direct": [("", 1.0, 1.0)],
}

# --------------------------------------------------------------------------
# Pages.
_PRODUCT_PAGES = {
    "cloud": "/products/puffy-mattress",
    "lux": "/products/puffy-lux-mattress",
    "royal": "/products/puffy-royal-mattress",
    "monarch": "/products/puffy-monarch-mattress",
    "topper": "/products/puffy-topper",
    "adjustable": "/products/puffy-adjustable-base",
    "zen": "/products/puffy-zen-bed-frame",
    "sterling": "/products/puffy-bed-frame",
    "dusk": "/products/puffy-dusk-bed-frame",
    "foundation": "/products/puffy-foundation",
    "protector": "/products/puffy-mattress-protector",
    "sheets": "/products/puffy-sheets",
    "pillow": "/products/puffy-pillow",
    "comforter": "/products/puffy-comforter",
}
_BLOGS = [
    "/blogs/best-sleep",
    "/blogs/best-sleep/how-to-fit-a-mattress-in-a-car",
    "/blogs/best-sleep/mattress-size-and-dimensions-guide",
    "/blogs/best-sleep/heating-pad-vs-electric-blanket",
    "/blogs/best-sleep/why-does-my-cat-sleep-on-my-pillow",
    "/blogs/best-sleep/how-to-clean-a-mattress",
    "/blogs/best-sleep/box-spring-vs-no-box-spring",
    "/blogs/wellness/most-searched-nightmares-and-what-they-mean",
    "/blogs/best-sleep/how-to-manually-lower-an-adjustable-bed",
    "/blogs/best-sleep/what-is-a-pillow-menu",
]

# Pages viewed while browsing, weighted roughly like the real page popularity.
BROWSE_PAGES: list[tuple[str, float]] = [
    ("/", 7300),
    ("/products/puffy-mattress", 8000),
    ("/products/puffy-mattress?size=" + H("Queen"), 600),
    ("/products/puffy-mattress?size=" + H("King"), 450),
    ("/products/puffy-lux-mattress", 5000),
    ("/products/puffy-lux-mattress?size=" + H("Queen"), 600),
    ("/cart", 2800),
    ("/products/puffy-royal-mattress", 1700),
    ("/products/puffy-topper", 1400),
    ("/products/puffy-topper?feel=" + H("Soft") + "&size=" + H("Queen"), 120),
    ("/pages/puffy-mattress-and-puffy-lux", 1200),
    ("/products/puffy-zen-bed-frame", 950),
    ("/products/puffy-monarch-mattress", 930),
    ("/products/puffy-adjustable-base", 920),
    ("/pages/store-locator", 310),
    ("/products/puffy-sheets", 300),
    ("/pages/contact-puffy-mattress", 260),
    ("/collections/bed-frames", 260),
    ("/products/puffy-mattress-protector", 250),
    ("/products/puffy-monarch-smart-bed-set", 230),
    ("/products/puffy-pillow", 220),
    ("/products/puffy-bed-frame", 210),
    ("/pages/puffy-mattress-reviews", 200),
    ("/sleep-score", 160),
    ("/collections/bedding", 160),
    ("/products/puffy-dusk-bed-frame", 160),
    ("/products/puffy-foundation", 150),
    ("/products/puffy-lux-smart-bed-set", 130),
    ("/products/puffy-mattress-pad", 130),
    ("/products/puffy-royal-smart-bed-set", 120),
    ("/collections/smart-bed-sets", 110),
    ("/collections/puffy-store", 100),
    ("/products/puffy-comforter", 100),
    ("/products/puffy-cloud-smart-bed-set", 100),
    ("/pages/return-policy", 90),
    ("/products/puffy-area-rug", 75),
    ("/pages/puffy-mattress-comparison", 70),
    ("/pages/puffy-mattress-sleep-trial", 60),
    ("/products/puffy-blanket", 55),
    ("/apps/track-your-order", 50),
    ("/pages/unboxing-your-puffy-mattress", 50),
    ("/pages/puffy-mattress-warranty", 45),
    ("/pages/king-mattresses", 35),
    ("/pages/queen-mattresses", 32),
    ("/pages/financing", 30),
    ("/pages/puffy-vs-saatva", 30),
    ("/tools/returns", 45),
] + [(b, 40) for b in _BLOGS]

# Landing pages: paid and owned media land on the shop, organic traffic
# more often on the blog.
LANDING_COMMERCIAL: list[tuple[str, float]] = [
    ("/", 30),
    ("/products/puffy-mattress", 22),
    ("/products/puffy-lux-mattress", 15),
    ("/products/puffy-royal-mattress", 5),
    ("/products/puffy-topper", 5),
    ("/pages/puffy-mattress-and-puffy-lux", 6),
    ("/products/puffy-monarch-mattress", 3),
    ("/products/puffy-adjustable-base", 3),
    ("/products/puffy-zen-bed-frame", 2),
    ("/products/puffy-sheets", 2),
    ("/sleep-score", 1),
    ("/pages/store-locator", 1),
    ("/collections/puffy-store", 1),
] + [(b, 0.5) for b in _BLOGS]
LANDING_CONTENT: list[tuple[str, float]] = [(b, 4.5) for b in _BLOGS] + [
    ("/", 15),
    ("/products/puffy-mattress", 12),
    ("/products/puffy-lux-mattress", 8),
    ("/products/puffy-royal-mattress", 3),
    ("/products/puffy-topper", 4),
    ("/pages/puffy-mattress-reviews", 4),
    ("/pages/puffy-mattress-comparison", 3),
    ("/pages/puffy-vs-saatva", 3),
]
CONTENT_CHANNELS = frozenset({"Organic Search", "Organic Shopping", "Organic Social", "Referral"})

# Pages crawlers request.
BOT_PAGES: list[tuple[str, float]] = [
    ("/", 8),
    ("/products/puffy-mattress", 14),
    ("/products/puffy-lux-mattress", 7),
    ("/products/puffy-royal-mattress", 4),
    ("/products/puffy-monarch-mattress", 2),
    ("/products/puffy-mattress-protector", 2),
    ("/cart", 2),
    ("/pages/return-policy", 3),
    ("/pages/puffy-mattress-and-puffy-lux", 2),
    ("/collections/bedding", 2),
    ("/collections/bed-frames", 2),
    ("/pages/puffy-mattress-warranty", 2),
    ("/pages/financing", 1),
    ("/pages/store-locator", 1),
] + [(b, 2.5) for b in _BLOGS]

CART_PAGE = page("/cart")


def page_table(pages: list[tuple[str, float]]) -> tuple[np.ndarray, np.ndarray]:
    """TEXT ids and normalised weights for a weighted page list."""
    ids = np.array([page(p) for p, _ in pages], dtype=np.int16)
    w = np.array([w for _, w in pages], dtype=float)
    return ids, w / w.sum()


BROWSE_TABLE = page_table(BROWSE_PAGES)
LANDING_COMMERCIAL_TABLE = page_table(LANDING_COMMERCIAL)
LANDING_CONTENT_TABLE = page_table(LANDING_CONTENT)
BOT_TABLE = page_table(BOT_PAGES)
# Per channel: TEXT ids of the landing referrers, weights normally and before the column drop.
LANDING_REFERRER_TABLE = {
    ch: (
        np.array([text_id(r) for r, _, _ in refs], dtype=np.int16),
        np.array([w for _, w, _ in refs]),
        np.array([w for _, _, w in refs]),
    )
    for ch, refs in LANDING_REFERRERS.items()
}


# --------------------------------------------------------------------------
# Product catalogue.  Sizes: (code, name, width x length).
SIZES = [
    ("T", "Twin", '38"W x 75"L'),
    ("TXL", "Twin XL", '38"W x 80"L'),
    ("F", "Full", '54"W x 75"L'),
    ("Q", "Queen", '60"W x 80"L'),
    ("K", "King", '76"W x 80"L'),
    ("CK", "Cal King", '72"W x 84"L'),
]
SIZE_WEIGHTS = {"T": 0.07, "TXL": 0.06, "F": 0.10, "Q": 0.40, "K": 0.30, "CK": 0.07}

# family: (item name, item_id template, variant template, {size code: price points},
#          weight as the product a shopper comes for, weight as an add-on)
# Templates use {code} {lcode} {size} {dims} {feel} {color}.  Several price
# points per size reflect promotions running during the period.
FAMILIES: dict[str, tuple] = {
    "cloud": (
        "Puffy Cloud Mattress",
        "10{code}-PUFF-24",
        '{size}  -  ({dims} x 10"H)',
        {"T": [349, 449], "TXL": [499], "F": [649], "Q": [799, 899, 949], "K": [999, 1049], "CK": [1149]},
        0.22,
        0.0,
    ),
    "lux": (
        "Puffy Lux Mattress",
        "12{code}-PUFFHB-24",
        'Hybrid / {size}  -  ({dims} x 12"H)',
        {"T": [649], "TXL": [799], "F": [1149], "Q": [1249, 1349, 1399], "K": [1449, 1599], "CK": [1449, 1599]},
        0.25,
        0.0,
    ),
    "royal": (
        "Puffy Royal Mattress",
        "14{code}-PUFFHB-24",
        '{size}  -  ({dims} x 14"H) / Hybrid',
        {"T": [1549], "TXL": [1699], "F": [1899], "Q": [2149, 2299], "K": [2449, 2599], "CK": [2449, 2599]},
        0.10,
        0.0,
    ),
    "monarch": (
        "Puffy Monarch Mattress",
        "16{code}-PUFFHB-24",
        '{size}  -  ({dims} x 16"H) / Hybrid',
        {"F": [2849], "Q": [3049, 3149, 3199], "K": [3499, 3649], "CK": [3499]},
        0.04,
        0.0,
    ),
    "topper": (
        "Puffy Deluxe Mattress Topper",
        "{code}-TOPPR-{feel_code}-22",
        '{feel} / {size}  -  ({dims} x 2.5"H)',
        {"T": [199], "TXL": [211], "F": [228], "Q": [245], "K": [262], "CK": [262]},
        0.12,
        0.15,
    ),
    "adjustable": (
        "Puffy Serenity Adjustable Base",
        "{code}-ADJB-8",
        '{size}  -  ({dims} x 15"H)',
        {"TXL": [999], "F": [1099], "Q": [1199], "K": [1999]},
        0.05,
        0.05,
    ),
    "zen": (
        "Puffy Zen Bed Frame",
        "{code}-WDBF-PN-WLNT-B1-01",
        '{size} - ({dims} x 13.4"H)',
        {"Q": [895], "K": [995]},
        0.02,
        0.03,
    ),
    "sterling": (
        "Puffy Sterling Bed Frame",
        "{code}-STR-BFRAM-01",
        '{size} - ({dims} x 51"H)',
        {"Q": [934], "K": [1019]},
        0.02,
        0.03,
    ),
    "dusk": (
        "Puffy Dusk Bed Frame",
        "{code}-DMF-GRY-01",
        '{size}  -  ({dims} x 14.5"H)',
        {"T": [269], "Q": [378], "K": [428], "CK": [428]},
        0.02,
        0.04,
    ),
    "foundation": (
        "Puffy Midnight Foundation",
        "{lcode}fram1",
        '{size}  -  ({dims} x 15"H)',
        {"T": [152], "F": [178], "Q": [199], "K": [229]},
        0.02,
        0.10,
    ),
    "protector": (
        "Puffy Signature Mattress Protector",
        "{code}-PROT-2",
        "{size}  -  ({dims})",
        {c: [128] for c in ("T", "TXL", "F", "Q", "K", "CK")},
        0.03,
        0.25,
    ),
    "sheets": (
        "Puffy Signature Sheets Set",
        "{code}-SH0{color_code}-3",
        "{color} / {size}  -  ({dims})",
        {c: [179] for c in ("T", "TXL", "F", "Q", "K", "CK")},
        0.04,
        0.20,
    ),
    "pillow": ("Puffy Signature Pillow", "{lcode}-mtplw-w-21", "{size}", {"S": [102], "K": [102]}, 0.03, 0.12),
    "comforter": (
        "Puffy Deluxe Comforter",
        "{code}comf1",
        "{size} - ({dims})",
        {"FQ": [186], "KCK": [220]},
        0.04,
        0.03,
    ),
}
FAMILY_NAMES = list(FAMILIES)
FAMILY_PAGE = np.array([page(_PRODUCT_PAGES[f]) for f in FAMILY_NAMES], dtype=np.int16)
FAMILY_FOCUS_WEIGHT = np.array([f[4] for f in FAMILIES.values()])
FAMILY_ADDON_WEIGHT = np.array([f[5] for f in FAMILIES.values()])
# Small items are sometimes bought two at a time (the line price is then the line total).
MULTI_QUANTITY_FAMILIES = frozenset({"protector", "sheets", "pillow"})
# Sizes of the families that are not sized like mattresses: code -> (name, dims)
_SPECIAL_SIZES = {
    "S": ("Standard", ""),
    "FQ": ("Full/Queen", '90"W x 94"L'),
    "KCK": ("King/Cal King", '94"W x 108"L'),
}
_DIMS = {code: (name, dims) for code, name, dims in SIZES}


def _build_skus():
    """One row per sellable variant: family, item_id, item_name, variant, prices, weight."""
    rows = []
    for fam, (name, id_tpl, var_tpl, prices, _, _) in FAMILIES.items():
        for code, points in prices.items():
            size, dims = _DIMS.get(code) or _SPECIAL_SIZES[code]
            if fam == "pillow":
                size = {"S": "Standard", "K": "King"}[code]
            options = [{}]
            if fam == "topper":
                options = [{"feel": "Soft", "feel_code": "S"}, {"feel": "Firm", "feel_code": "F"}]
            elif fam == "sheets":
                options = [
                    {"color": "Polar Gray", "color_code": "1-GRY"},
                    {"color": "Arctic White", "color_code": "2-WHT"},
                ]
            for opt in options:
                fields = {"code": code, "lcode": code.lower(), "size": size, "dims": dims, **opt}
                weight = SIZE_WEIGHTS.get(code, 0.5) / len(options)
                rows.append(
                    (FAMILY_NAMES.index(fam), id_tpl.format(**fields), name, var_tpl.format(**fields), points, weight)
                )
    return rows


SKUS = _build_skus()

# --------------------------------------------------------------------------
# User agents: (string, weight).
HUMAN_AGENTS: list[tuple[str, float]] = [
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.3 Mobile/15E148 Safari/604.1",
        0.26,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1.1 Mobile/15E148 Safari/604.1",
        0.04,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
        0.025,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1",
        0.015,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/133.0.6943.120 Mobile/15E148 Safari/604.1",
        0.035,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/357.0.729240823 Mobile/15E148 Safari/604.1",
        0.03,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.3 Mobile/15E148 Safari/604.1 Ddg/18.3",
        0.005,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/22D72 [FBAN/FBIOS;FBAV/501.0.0.49.107;FBBV/699723644;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/18.3.1;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/702655703;IABMV/1]",
        0.015,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/22D72 Instagram 368.0.0.32.87 (iPhone15,3; iOS 18_3_1; en_US; en; scale=3.00; 1290x2796; 694121378)",
        0.01,
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Mobile Safari/537.36",
        0.20,
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/132.0.0.0 Mobile Safari/537.36",
        0.01,
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Mobile Safari/537.36",
        0.01,
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36",
        0.02,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S928U Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/133.0.6943.117 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/502.0.0.66.79;IABMV/1;]",
        0.012,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S908U Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/132.0.6834.166 Mobile Safari/537.36 Instagram 368.0.0.45.96 Android (34/14; 420dpi; 1080x2115; samsung; SM-S908U; b0q; qcom; en_US; 700073672)",
        0.008,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36",
        0.13,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36 Edg/133.0.0.0",
        0.075,
    ),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:135.0) Gecko/20100101 Firefox/135.0", 0.015),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.3 Safari/605.1.15",
        0.06,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36",
        0.03,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 18_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.3 Mobile/15E148 Safari/604.1",
        0.008,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 18_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/133.0.6943.120 Mobile/15E148 Safari/604.1",
        0.006,
    ),
    (
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/132.0.0.0 Safari/537.36",
        0.004,
    ),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36", 0.004),
]
_GOOGLEBOT_MOBILE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/{v} Mobile Safari/537.36 (compatible; {bot})"
)
HEADLESS_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.6778.33 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/132.0.0.0 Safari/537.36",
]
BOT_AGENTS: list[tuple[str, float]] = [
    (_GOOGLEBOT_MOBILE.format(v="133.0.6943.126", bot="Googlebot/2.1; +http://www.google.com/bot.html"), 0.36),
    (_GOOGLEBOT_MOBILE.format(v="133.0.6943.53", bot="Googlebot/2.1; +http://www.google.com/bot.html"), 0.25),
    ("Mozilla/5.0 (compatible; AhrefsSiteAudit/6.1; +http://ahrefs.com/robot/site-audit)", 0.21),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 0.02),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", 0.01),
    (HEADLESS_AGENTS[0], 0.045),
    (HEADLESS_AGENTS[1], 0.015),
    (
        _GOOGLEBOT_MOBILE.format(
            v="133.0.6943.53", bot="AdsBot-Google-Mobile; +http://www.google.com/mobile/adsbot.html"
        ),
        0.015,
    ),
    ("AdsBot-Google (+http://www.google.com/adsbot.html)", 0.015),
]
AGENTS = [a for a, _ in HUMAN_AGENTS] + [a for a, _ in BOT_AGENTS]
N_HUMAN_AGENTS = len(HUMAN_AGENTS)
HEADLESS_AGENT_IDS = np.array([AGENTS.index(a) for a in HEADLESS_AGENTS])

# --------------------------------------------------------------------------
# Traffic cycle.  Hour-of-day weights (UTC; US evenings are the peak) and
# day-of-week multipliers (Monday first), read off the real export.
HOUR_WEIGHTS = np.array(
    [
        2300,
        2900,
        2500,
        2400,
        2500,
        1300,
        850,
        600,
        420,
        330,
        450,
        560,
        1150,
        1650,
        2000,
        2070,
        2170,
        2400,
        2200,
        2180,
        2280,
        2100,
        2200,
        2100,
    ],
    dtype=float,
)
HOUR_WEIGHTS /= HOUR_WEIGHTS.sum()
WEEKDAY_FACTOR = np.array([1.08, 0.98, 0.88, 0.95, 0.92, 1.02, 1.17])

# Event names in code order.
EVENT_NAMES = (
    "page_viewed",
    "product_added_to_cart",
    "checkout_started",
    "email_filled_on_popup",
    "checkout_completed",
)
PAGE_VIEWED, ADD_TO_CART, CHECKOUT_STARTED, EMAIL_FILLED, CHECKOUT_COMPLETED = range(5)

# Every string is registered by now: freeze the text table.  Internal referrers
# carry the previous page without its query string, hence PATH_ONLY.
PATH_ONLY = np.array([text_id(t.split("?")[0]) for t in TEXT], dtype=np.int16)
TEXT_ARRAY = np.array(TEXT, dtype=object)
