"""Turning the simulated integer arrays into the export's CSV text.

Day files are built one UTC day at a time so memory stays bounded at large
scales.  Quoting follows RFC 4180 as the export does: only fields holding a
comma, a quote or a line break are quoted.  Such fields can only be user
agents and event_data JSON; URLs are made of paths and hex hashes.
"""

from __future__ import annotations

import base64
import os
import re
from itertools import repeat
from pathlib import Path

import numpy as np
import pandas as pd

from . import traffic as T
from . import vocab as V
from .orders import email_hash

H = V.H
WRITE_CHUNK = 100_000  # rows rendered at a time


def csv_field(s: str) -> str:
    if any(c in s for c in ',"\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


def csv_fields(values: np.ndarray) -> np.ndarray:
    return np.array([csv_field(s) for s in values], dtype=object)


AGENT_FIELD = csv_fields(V.AGENTS)
EVENT_NAME = np.array(V.EVENT_NAMES, dtype=object)[T.KIND_EVENT]

CHECKOUT_START_QUERY = (
    f"?auto_redirect={H('false')}&edge_redirect={H('true')}&locale={H('en-US')}&skip_shop_pay={H('true')}"
)
PROCESSING_SUFFIX = f"/processing?completed={H('true')}&reload_receipt={H('false')}&skip_shop_pay={H('true')}"
CHECKOUT_SUFFIX = {
    T.PAGE_CO_START: CHECKOUT_START_QUERY,
    T.PAGE_CO: "",
    T.PAGE_PROCESSING: PROCESSING_SUFFIX,
    T.PAGE_THANKS: "/thank-you",
}

_HEX = np.frombuffer(b"0123456789ABCDEF", np.uint8)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def hex6(values: np.ndarray) -> np.ndarray:
    """24-bit integers as 6 upper-case hex digits (what a hashed parameter looks like)."""
    v = np.asarray(values, dtype=np.int64)
    chars = _HEX[(v[:, None] >> np.arange(20, -1, -4)) & 0xF]
    return np.ascontiguousarray(chars).view("S6").ravel().astype("U6").astype(object)


def _per_channel_table(hashes: list[list[str]]) -> np.ndarray:
    """(channel, index) -> hashed name; indices wrap around each channel's list."""
    return np.array([[names[i % len(names)] for i in range(V.MAX_VOCAB)] for names in hashes], dtype=object)


CAMPAIGN_TABLE = _per_channel_table(V.CAMPAIGN_HASHES)
SOURCE_TABLE = _per_channel_table(V.SOURCE_HASHES)
_TEMPLATE_PARTS = [re.split(r"\{(\w+)\}", q) for _, q, _ in V.LANDING_TEMPLATES]


class Renderer:
    """Renders events (and the session truth's ids and landing URLs) as export text."""

    def __init__(self, sessions: pd.DataFrame, client_ids: np.ndarray, person: np.ndarray, order_json: np.ndarray):
        self.s = {c: sessions[c].to_numpy() for c in sessions.columns}
        self.client_ids = client_ids
        self.person = person
        self.order_json = csv_fields(order_json)

    def client_id(self, client: np.ndarray) -> np.ndarray:
        ids = self.client_ids[np.maximum(client, 0)].astype("U36").astype(object)
        ids[client < 0] = ""
        return ids

    def landing_urls(self, sess: np.ndarray) -> np.ndarray:
        """Landing page URL with the channel's marketing parameters."""
        s = self.s
        template = s["template"][sess]
        channel = s["channel"][sess]
        fields = {
            "c": hex6(s["tok_c"][sess]),
            "a": hex6(s["tok_a"][sess]),
            "b": hex6(s["tok_b"][sess]),
            "camp": CAMPAIGN_TABLE[channel, s["campaign"][sess]],
            "src": SOURCE_TABLE[channel, s["source"][sess]],
        }
        url = V.TEXT_ARRAY[s["landing_path"][sess]].copy()
        for t in np.unique(template):
            parts = _TEMPLATE_PARTS[t]
            if parts == [""]:
                continue
            m = template == t
            # Literal parts repeat; placeholders take this session's values.
            pieces = [url[m].tolist(), repeat("?" + parts[0])]
            for i in range(1, len(parts), 2):
                pieces += [fields[parts[i]][m].tolist(), repeat(parts[i + 1])]
            url[m] = list(map("".join, zip(*pieces)))
        return url

    def checkout_base(self, sess: np.ndarray) -> np.ndarray:
        """https://checkout.puffy.com/checkouts/cn/<token> for each session.

        The token is base64 of "gcp-us-<region>1:<ULID>", the ULID's time part
        being the session start, as in Shopify checkout URLs.
        """
        seeds = self.s["checkout_seed"][sess]
        starts = self.s["start"][sess]
        out = np.empty(len(sess), dtype=object)
        for i, (seed, start) in enumerate(zip(seeds.tolist(), starts.tolist())):
            ulid = "".join(_CROCKFORD[(start >> (5 * k)) & 31] for k in range(9, -1, -1))
            ulid += "".join(_CROCKFORD[(seed >> (5 * k)) & 31] for k in range(12))
            ulid += "".join(_CROCKFORD[((seed * 2654435761) >> (5 * k)) & 31] for k in range(4))
            region = "east" if seed & 1 else "west"
            token = base64.b64encode(f"gcp-us-{region}1:{ulid}".encode()).decode()
            out[i] = f"{V.CHECKOUT_SITE}/checkouts/cn/{token}"
        return out

    def page_urls(self, page: np.ndarray, sess: np.ndarray) -> np.ndarray:
        url = V.TEXT_ARRAY[np.maximum(page, 0)].copy()
        m = page == T.PAGE_LANDING
        url[m] = self._by_session(self.landing_urls, sess[m])
        m = page <= T.PAGE_CO_START
        if m.any():
            base = self._by_session(self.checkout_base, sess[m])
            suffix = np.array([CHECKOUT_SUFFIX[p] for p in range(T.PAGE_THANKS, T.PAGE_CO_START + 1)], dtype=object)[
                page[m] - T.PAGE_THANKS
            ]
            url[m] = base + suffix
        return url

    def referrers(self, ref: np.ndarray, sess: np.ndarray) -> np.ndarray:
        return V.TEXT_ARRAY[np.where(ref == T.REF_LANDING, self.s["landing_ref"][np.maximum(sess, 0)], ref)]

    @staticmethod
    def _by_session(build, sess: np.ndarray) -> np.ndarray:
        """Build per distinct session, then spread to the rows (several rows share a page)."""
        uniq, inverse = np.unique(sess, return_inverse=True)
        return build(uniq)[inverse]

    def write_day(
        self, path: Path, ev: dict[str, np.ndarray], client_col: str, with_referrer: bool, want_url: np.ndarray
    ) -> np.ndarray:
        """Write one day file (events already sorted) atomically, in chunks to bound memory.

        Returns the page URLs of the rows flagged in `want_url`.
        """
        header = [client_col, "page_url"] + (["referrer"] if with_referrer else [])
        header += ["timestamp", "event_name", "event_data", "user_agent"]
        wanted = []
        tmp = path.with_name("." + path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(",".join(header))
            for i in range(0, len(ev["ts"]), WRITE_CHUNK):
                chunk = {c: a[i : i + WRITE_CHUNK] for c, a in ev.items()}
                fields = self._fields(chunk, with_referrer)
                wanted.append(fields[1][want_url[i : i + WRITE_CHUNK]])
                f.write("\n" + rows_text(fields))
        os.replace(tmp, path)
        return np.concatenate(wanted) if wanted else np.array([], dtype=object)

    def _fields(self, ev: dict[str, np.ndarray], with_referrer: bool) -> list[np.ndarray]:
        """The quoted CSV fields of some rows, column by column."""
        kind = ev["kind"]
        data = np.full(len(kind), "", dtype=object)
        m = kind == T.EMAIL
        data[m] = '"{""user_email"":""' + email_hash(self.client_ids[self.person[ev["client"][m]]]) + '""}"'
        m = kind == T.COMPLETED
        data[m] = self.order_json[ev["order"][m]]
        fields = [self.client_id(ev["client"]), self.page_urls(ev["page"], ev["sess"])]
        if with_referrer:
            fields.append(self.referrers(ev["ref"], ev["sess"]))
        return fields + [iso(ev["ts"]), EVENT_NAME[kind], data, AGENT_FIELD[ev["ua"]]]


def rows_text(fields: list[np.ndarray]) -> str:
    """Rows of already-quoted fields joined with ',' and LF (no trailing newline)."""
    return "\n".join(map(",".join, zip(*(f.tolist() for f in fields))))


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half a file."""
    tmp = path.with_name("." + path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def iso(ts: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(np.asarray(ts).astype("datetime64[ms]"), unit="ms").astype(object) + "Z"
