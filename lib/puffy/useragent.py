"""User-agent dimension: bot flag, device class, browser and OS, parsed once per distinct string.

Parsing a user agent is Python work (``ua-parser``'s regex database), so it is never done per row:
``user_agent_dimension`` selects the DISTINCT user agents of a table (a few thousand in 50k events;
the count grows far slower than the event count), parses each one once, memoised with
``functools.lru_cache`` across calls, and returns a small Ibis memtable that the caller joins back
on the user-agent column. Everything per row stays in the backend.

Rules, in order:

bot
    our own ``BOT_RULES`` (named regexes for the crawlers seen in the export — Googlebot, AdsBot,
    AhrefsBot / AhrefsSiteAudit, HeadlessChrome, facebookexternalhit, … — then generic words:
    crawl, spider, ``bot`` as a word ending, HTTP libraries), or ua-parser's device family "Spider".
    Our list comes first because ua-parser misses automation such as HeadlessChrome and
    Google-Read-Aloud, and because we want stable bot names for reporting.
device_type
    'bot' for bots; 'other' for TVs, consoles, VR headsets; 'tablet' for iPad (also in-app
    browsers reporting an iPad), Kindle / "Tablet", and Android without "Mobile" (Chrome's
    convention for tablets); 'mobile' for iPhone / iPod / Android with "Mobile" / other "Mobile";
    'desktop' for Windows, macOS, Linux, ChromeOS; 'other' for the rest. In-app browsers
    (Instagram, Facebook's FBAN/FB_IAB, Google app GSA, Affirm, Klarna) embed their host device's UA,
    so they fall into that device's class; they are people, not bots.
browser, os
    ua-parser's user-agent and OS families ("Other" when it does not know).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import ibis
import ibis.expr.types as ir
import pandas as pd
import ua_parser

DEVICE_TYPES = ("mobile", "tablet", "desktop", "bot", "other")

# (bot name, case-insensitive regex). Ordered: the first match names the bot, so specific
# crawlers come before the generic words at the end.
BOT_RULES: tuple[tuple[str, str], ...] = (
    ("AdsBot-Google", r"adsbot-google"),
    ("Googlebot", r"googlebot"),
    ("Storebot-Google", r"storebot-google"),
    ("Google-Read-Aloud", r"google-read-aloud"),
    ("Google-AdWords-Express", r"google-adwords-express"),
    ("Google-InspectionTool", r"google-inspectiontool"),
    ("GoogleOther", r"googleother"),
    ("Mediapartners-Google", r"mediapartners-google"),
    ("AhrefsSiteAudit", r"ahrefssiteaudit"),
    ("AhrefsBot", r"ahrefsbot"),
    ("SiteAudit", r"siteaudit|site-audit"),
    ("HeadlessChrome", r"headlesschrome"),
    ("bingbot", r"bingbot|bingpreview|msnbot|adidxbot"),
    ("Applebot", r"applebot"),
    ("YandexBot", r"yandex(bot|mobilebot|images|accessibilitybot)"),
    ("facebookexternalhit", r"facebookexternalhit|facebookcatalog|meta-externalagent"),
    ("Pinterestbot", r"pinterestbot"),
    ("AmazonBot", r"amazonproductdiscovery|amazonproductbot|amazonbot"),
    ("ClaudeBot", r"claudebot|claude-web|anthropic-ai"),
    ("GPTBot", r"gptbot|chatgpt-user|oai-searchbot"),
    ("PerplexityBot", r"perplexitybot"),
    ("SemrushBot", r"semrush"),
    ("Screaming Frog", r"screaming frog"),
    ("pageburst", r"pageburst"),
    ("Foregenix", r"foregenix"),
    ("Lighthouse", r"lighthouse|pagespeed|gtmetrix|pingdom|uptimerobot|statuscake"),
    ("Headless browser", r"phantomjs|selenium|puppeteer|playwright"),
    ("python-requests", r"python-requests|python-urllib|aiohttp|python-httpx|scrapy"),
    ("curl", r"\bcurl/"),
    ("Wget", r"\bwget/"),
    ("Go-http-client", r"go-http-client"),
    ("Java", r"^java/|apache-httpclient"),
    ("crawler", r"crawl"),
    ("spider", r"spider"),
    # "bot" ending a word (SEBot, Twitterbot, …) but not the Cubot phone brand.
    ("bot", r"(?<!cu)bot\b"),
)
_BOT_RES = tuple((name, re.compile(pattern, re.IGNORECASE)) for name, pattern in BOT_RULES)
_GENERIC_BOT_NAMES = {"crawler", "spider", "bot"}

_OTHER_DEVICE_RE = re.compile(
    r"smart-?tv|\btv safari|tizen|netcast|web0s|webos.*tv|hbbtv|crkey|roku|appletv|bravia|"
    r"playstation|xbox|nintendo|oculusbrowser|\bquest \d",
    re.IGNORECASE,
)
_FIRE_TV_RE = re.compile(r"\bAFT[A-Z]")  # Amazon Fire TV models (AFTMM, AFTS, …); case matters
_TABLET_RE = re.compile(r"ipad|tablet|kindle|silk/", re.IGNORECASE)
_KINDLE_MODEL_RE = re.compile(r"\bKF[A-Z]{2,}")  # Kindle Fire models (KFTRWI, …); case matters
_ANDROID_RE = re.compile(r"android", re.IGNORECASE)
# FBAN/FB4A and FBAN/FBIOS: the Facebook app's bare UA (no Mozilla part) on a phone.
_MOBILE_RE = re.compile(
    r"iphone|ipod|mobile|windows phone|kaios|blackberry|opera mini|fban/fb4a|fban/fbios", re.IGNORECASE
)
_DESKTOP_RE = re.compile(r"windows nt|macintosh|mac os x|x11|cros|linux", re.IGNORECASE)

COLUMNS = ("user_agent", "is_bot", "bot_name", "device_type", "browser", "os")
SCHEMA = ibis.schema(
    {
        "user_agent": "string",
        "is_bot": "boolean",
        "bot_name": "string",
        "device_type": "string",
        "browser": "string",
        "os": "string",
    }
)


def _device_type(ua: str) -> str:
    """Device class of a human user agent (see module docstring for the order and why)."""
    if _OTHER_DEVICE_RE.search(ua) or _FIRE_TV_RE.search(ua):
        return "other"
    if _TABLET_RE.search(ua) or _KINDLE_MODEL_RE.search(ua):
        return "tablet"
    if _ANDROID_RE.search(ua):
        return "mobile" if "mobile" in ua.lower() else "tablet"
    if _MOBILE_RE.search(ua):
        return "mobile"
    if _DESKTOP_RE.search(ua):
        return "desktop"
    return "other"


@functools.lru_cache(maxsize=200_000)
def parse_user_agent(ua: str | None) -> tuple[str | None, bool, str | None, str, str | None, str | None]:
    """One user agent -> (user_agent, is_bot, bot_name, device_type, browser, os); memoised.

    NULL (None, or pandas' NaN) or blank strings are not bots and have device 'other' and no
    browser / OS.
    """
    if not isinstance(ua, str):
        return (None, False, None, "other", None, None)
    if not ua.strip():
        return (ua, False, None, "other", None, None)
    parsed = ua_parser.parse(ua)
    browser = parsed.user_agent.family if parsed.user_agent else "Other"
    os_family = parsed.os.family if parsed.os else "Other"
    bot_name = next((name for name, rx in _BOT_RES if rx.search(ua)), None)
    spider = parsed.device is not None and parsed.device.family == "Spider"
    if spider and (bot_name is None or bot_name in _GENERIC_BOT_NAMES):
        bot_name = browser  # ua-parser's crawler name beats our generic word, or catches what we missed
    is_bot = bot_name is not None
    device = "bot" if is_bot else _device_type(ua)
    return (ua, is_bot, bot_name, device, browser, os_family)


def parse_user_agents(distinct_uas: Iterable[str | None]) -> pd.DataFrame:
    """Parse each user agent (duplicates are parsed once) into the dimension's columns.

    Columns: user_agent, is_bot, bot_name, device_type, browser, os; one row per input string,
    in first-seen order.
    """
    unique = list(dict.fromkeys(distinct_uas))
    rows = [parse_user_agent(ua) for ua in unique]
    df = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    return df.astype({"is_bot": bool})


def user_agent_dimension(t: ir.Table, ua_col: str = "user_agent") -> ir.Table:
    """Distinct user agents of ``t`` with their parsed attributes, as a memtable to join back.

    The key column keeps the name ``ua_col`` so ``t.left_join(dim, ua_col)`` works directly.
    NULL user agents are left out (an equality join cannot match them): after a left join their
    attributes are NULL, which callers should read as "unknown", not "human".
    """
    distinct = t.select(ua=t[ua_col].cast("string")).filter(lambda s: s.ua.notnull()).distinct()
    uas = distinct.execute()["ua"].tolist()
    df = parse_user_agents(uas)
    table = ibis.memtable(df, schema=SCHEMA)
    return table.rename({ua_col: "user_agent"}) if ua_col != "user_agent" else table
