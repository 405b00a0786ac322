"""Hashing helpers that reproduce the anonymisation of the raw web-tracking export.

The export hashes every query-parameter value in `page_url` and anonymises
referrer hosts other than puffy.com / google / bing.  Both the sample generator
(to produce realistic data) and the pipeline (to recognise known values such as
utm_medium "Affiliates" or the m.facebook.com referrer) need the same functions.
"""

import hashlib


def hash_param(value: str) -> str:
    """First 6 hex characters, upper case, of md5(value): the export's query-value hash."""
    return hashlib.md5(value.encode("utf-8")).hexdigest()[:6].upper()


def anonymise_host(host: str) -> str:
    """The export's anonymised form of a referrer host: source-<first 8 hex of md5(host)>.com."""
    return "source-" + hashlib.md5(host.encode("utf-8")).hexdigest()[:8] + ".com"
