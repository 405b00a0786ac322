"""User-agent parsing: bots, device classes, browsers / OS, the distinct-only dimension, the real export."""

from __future__ import annotations

import ibis
import pytest

from puffy import useragent
from puffy.useragent import DEVICE_TYPES, parse_user_agent, parse_user_agents, user_agent_dimension

GOOGLEBOT = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/133.0.6943.126 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)
AHREFS_AUDIT = "Mozilla/5.0 (compatible; AhrefsSiteAudit/6.1; +http://ahrefs.com/robot/site-audit)"
AHREFSBOT = "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.6778.33 Safari/537.36"
)
ADSBOT = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/133.0.6943.53 Mobile Safari/537.36 (compatible; AdsBot-Google-Mobile; "
    "+http://www.google.com/mobile/adsbot.html)"
)
ADSBOT_PLAIN = "AdsBot-Google (+http://www.google.com/adsbot.html)"
FB_PREVIEW = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.3 Mobile/15E148 Safari/604.1"
)
IPAD_GSA = (
    "Mozilla/5.0 (iPad; CPU OS 18_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "GSA/357.0.729240823 Mobile/15E148 Safari/604.1"
)
IPAD_FBAN = (
    "Mozilla/5.0 (iPad; CPU OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/21G93 "
    "[FBAN/FBIOS;FBAV/495.0.0.21.296;FBBV/681969272;FBDV/iPad7,11;FBMD/iPad;FBSN/iPadOS;FBSV/17.6.1;FBSS/2;"
    "FBID/tablet;FBLC/en_US;FBOP/5;FBRV/683428343]"
)
WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36"
)
MAC_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.3 Safari/605.1.15"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Mobile Safari/537.36"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36"
)
KINDLE = (
    "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/132.1.97 "
    "like Chrome/132.0.6834.163 Safari/537.36"
)
FIRE_TV = (
    "Mozilla/5.0 (Linux; Android 7.1.2; AFTMM) AppleWebKit/537.36 (KHTML, like Gecko) Silk/118.18.2 "
    "like Chrome/118.0.5993.155 Safari/537.36"
)
INSTAGRAM_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/22E5200s Instagram 368.0.0.27.83 (iPhone16,2; iOS 18_4; en_US; en; scale=3.00; "
    "1125x2436; 697963422; IABMV/1)"
)
FB_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; SM-S928U Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Version/4.0 Chrome/133.0.6943.117 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/502.0.0.66.79;IABMV/1;]"
)
GSA_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "GSA/357.0.729240823 Mobile/15E148 Safari/604.1"
)
AFFIRM_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "(Affirm-iOS-3.280.0-4011)"
)
AFFIRM_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; SM-G998U Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Version/4.0 Chrome/133.0.6943.137 Mobile Safari/537.36 (Affirm-Android-3.336.1-1203)"
)
PLAYSTATION = (
    "Mozilla/5.0 (PlayStation; PlayStation 5/10.60) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Safari/605.1.15"
)

# (user agent, is_bot, bot_name, device_type)
CASES = [
    (GOOGLEBOT, True, "Googlebot", "bot"),
    (AHREFS_AUDIT, True, "AhrefsSiteAudit", "bot"),
    (AHREFSBOT, True, "AhrefsBot", "bot"),
    (HEADLESS, True, "HeadlessChrome", "bot"),
    (ADSBOT, True, "AdsBot-Google", "bot"),
    (ADSBOT_PLAIN, True, "AdsBot-Google", "bot"),
    (FB_PREVIEW, True, "facebookexternalhit", "bot"),
    ("python-requests/2.31.0", True, "python-requests", "bot"),
    ("curl/8.4.0", True, "curl", "bot"),
    # a generic word makes it a bot; ua-parser's name for it beats our generic "crawler"
    ("Mozilla/5.0 (compatible; SomeNewCrawler/1.0)", True, "SomeNewCrawler", "bot"),
    ("SEBot-WA", True, "SEBot", "bot"),
    (IPHONE_SAFARI, False, None, "mobile"),
    (IPAD_GSA, False, None, "tablet"),
    (IPAD_FBAN, False, None, "tablet"),
    (WINDOWS_CHROME, False, None, "desktop"),
    (MAC_SAFARI, False, None, "desktop"),
    (ANDROID_PHONE, False, None, "mobile"),
    (ANDROID_TABLET, False, None, "tablet"),
    (KINDLE, False, None, "tablet"),
    (FIRE_TV, False, None, "other"),
    (PLAYSTATION, False, None, "other"),
    (INSTAGRAM_IPHONE, False, None, "mobile"),
    (FB_ANDROID, False, None, "mobile"),
    (GSA_IPHONE, False, None, "mobile"),
    (AFFIRM_IOS, False, None, "mobile"),
    (AFFIRM_ANDROID, False, None, "mobile"),
    (
        "Mozilla/5.0 (Linux; Android 11; CUBOT P50) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile "
        "Safari/537.36",
        False,
        None,
        "mobile",
    ),
]


@pytest.mark.parametrize("ua,is_bot,bot_name,device", CASES, ids=[c[0][:60] for c in CASES])
def test_bots_and_devices(ua, is_bot, bot_name, device):
    _, got_bot, got_name, got_device, _, _ = parse_user_agent(ua)
    assert (got_bot, got_name, got_device) == (is_bot, bot_name, device)
    assert got_device in DEVICE_TYPES


@pytest.mark.parametrize(
    "ua,browser,os",
    [
        (IPHONE_SAFARI, "Mobile Safari", "iOS"),
        (WINDOWS_CHROME, "Chrome", "Windows"),
        (MAC_SAFARI, "Safari", "Mac OS X"),
        (ANDROID_PHONE, "Chrome Mobile", "Android"),
        (GSA_IPHONE, "Google", "iOS"),
        (INSTAGRAM_IPHONE, "Instagram", "iOS"),
        ("garbage", "Other", "Other"),
    ],
)
def test_browser_and_os(ua, browser, os):
    assert parse_user_agent(ua)[4:] == (browser, os)


def test_null_and_blank_user_agents():
    assert parse_user_agent(None) == (None, False, None, "other", None, None)
    assert parse_user_agent("  ")[1:] == (False, None, "other", None, None)


def test_parse_user_agents_frame_parses_each_string_once(monkeypatch):
    calls: list[str] = []
    real = useragent.ua_parser.parse
    monkeypatch.setattr(useragent.ua_parser, "parse", lambda ua: calls.append(ua) or real(ua))
    parse_user_agent.cache_clear()
    df = parse_user_agents([WINDOWS_CHROME, GOOGLEBOT, WINDOWS_CHROME, None])
    assert list(df.columns) == ["user_agent", "is_bot", "bot_name", "device_type", "browser", "os"]
    assert df["user_agent"].tolist()[:2] == [WINDOWS_CHROME, GOOGLEBOT]
    assert df["user_agent"].isna().tolist() == [False, False, True]
    assert df["is_bot"].tolist() == [False, True, False]
    assert sorted(calls) == sorted([WINDOWS_CHROME, GOOGLEBOT])
    parse_user_agents([WINDOWS_CHROME, GOOGLEBOT])  # served from the cache
    assert len(calls) == 2


def test_dimension_joins_back():
    events = ibis.memtable(
        {"event_id": [1, 2, 3, 4, 5], "ua": [IPHONE_SAFARI, GOOGLEBOT, IPHONE_SAFARI, None, IPAD_GSA]},
        schema={"event_id": "int64", "ua": "string"},
    )
    dim = user_agent_dimension(events, ua_col="ua")
    assert set(dim.columns) == {"ua", "is_bot", "bot_name", "device_type", "browser", "os"}
    assert dim.count().execute() == 3  # distinct, NULL left out
    out = events.left_join(dim, "ua").order_by("event_id").execute()
    assert out["device_type"].tolist()[:3] == ["mobile", "bot", "mobile"]
    assert out["device_type"].tolist()[4] == "tablet"
    assert out["is_bot"].tolist()[:3] == [False, True, False]


def test_real_export_bot_share(real_data_dir):
    """The README's ~12% bot traffic (skipped without the real export)."""
    con = ibis.duckdb.connect()
    events = con.read_csv(str(real_data_dir / "events_*.csv"), union_by_name=True, all_varchar=True)
    dim = user_agent_dimension(events)
    joined = events.left_join(dim, "user_agent")
    stats = joined.aggregate(n=joined.count(), bots=joined.is_bot.fill_null(False).cast("int64").sum()).execute()
    share = stats["bots"][0] / stats["n"][0]
    assert 0.09 <= share <= 0.15, share
    names = set(dim.filter(dim.is_bot).bot_name.execute())
    assert {"Googlebot", "AhrefsSiteAudit", "AhrefsBot", "HeadlessChrome", "AdsBot-Google"} <= names
    affirm = dim.filter(dim.user_agent.contains("Affirm")).execute()
    assert len(affirm) > 0 and not affirm["is_bot"].any()
