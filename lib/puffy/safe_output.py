"""What a report or an export may carry: no personal data, no live markup, no live formulas.

Three concerns, each a small set of pure functions:

* **Redaction** (:class:`Redactor`): values of the personal fields that ``params/pipeline.yaml``
  ``privacy.personal_fields`` names (``user_email``, ``email``, ``client_id`` by default) are replaced
  in report samples, wherever they appear: as a sample column, as a key inside a JSON payload string
  (``{"user_email": "…"}``, also CSV-doubled ``""user_email"": ""…""`` in a raw line and truncated
  excerpts), as a URL query parameter (``?email=…``); and any text matching one of
  ``privacy.personal_value_patterns`` (an email address, a 64-hex hash, a client id) is replaced too,
  so a raw CSV line or an error detail carries none either. The replacement is a token
  ``[redacted:<field>#<n>]``: ``n`` numbers the distinct values of one report in order of first
  appearance, so a reader still sees that two colliding orders came from two different emails, but
  no hash, salt or length leaves the report and numbers mean nothing outside it. Numbering is
  deterministic, so a re-run writes the same report.
* **Markdown-safe text** (:func:`md_text`, :func:`md_cell`): data shown in a Markdown report cannot
  become markup, a link or a table column once the Markdown is rendered to HTML (nbconvert renders raw
  HTML and autolinks bare URLs): ``&``, ``<`` and ``>`` become entities; ``\\``, backticks, ``*``,
  ``[``, ``]`` and ``|`` are backslash-escaped; ``://``, ``www.`` and ``@`` are broken with a backslash
  so no autolink forms; line breaks become spaces.
* **CSV formula neutralisation** (:func:`neutralise_cell`, :func:`neutralise_frame`,
  :func:`neutralise_sql`): per OWASP (CSV injection), a *string* cell that begins with ``=``, ``+``,
  ``-``, ``@``, a tab or a carriage return gets a leading single quote, so a spreadsheet shows it as
  text instead of evaluating it. Numeric, boolean and date columns are never touched (a negative
  number stays a number); a string that merely contains those characters later is unchanged.

Plus :func:`json_dumps_html_safe`: JSON whose strings are exact (a machine reading it gets the
values whole) but whose bytes hold no ``<``, ``>`` or ``&``, so a browser that sniffs it as HTML
finds no markup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

# --------------------------------------------------------------------------------------------
# Redaction


def _norm_key(key: str) -> str:
    """'clientId', 'client_id', 'Client-ID' are one field."""
    return re.sub(r"[^a-z0-9]", "", str(key).lower())


class Redactor:
    """Replaces personal values with per-report tokens (see the module docstring).

    One instance per report: the numbering of tokens is its state.
    """

    def __init__(self, personal_fields: Iterable[str], value_patterns: Mapping[str, str] | None = None):
        self.fields = sorted({str(f) for f in personal_fields})
        self._norm_fields = {_norm_key(f) for f in self.fields}
        self._tokens: dict[str, int] = {}
        names = "|".join(re.escape(f) for f in sorted(self.fields, key=len, reverse=True))
        # "key": "value" in JSON, ""key"": ""value"" in a CSV-quoted JSON, \"key\": \"value\" in JSON
        # inside JSON; the value may be cut off by a truncated excerpt (then it runs to the end).
        self._json_pair = (
            re.compile(
                rf'(?P<q>\\"|""|")(?P<key>{names})(?P=q)\s*:\s*'
                rf'(?:(?P=q)(?P<sval>(?:(?!(?P=q)).)*)|(?P<bare>-?[0-9][^,}}\]\s"]*))',
                re.IGNORECASE | re.DOTALL,
            )
            if self.fields
            else None
        )
        self._query_pair = (
            re.compile(rf"(?P<pre>[?&;](?P<key>{names})=)(?P<val>[^&#,;\s\"']+)", re.IGNORECASE)
            if self.fields
            else None
        )
        self._patterns = [(name, re.compile(p)) for name, p in (value_patterns or {}).items()]

    def is_personal(self, key: str) -> bool:
        return _norm_key(key) in self._norm_fields

    def token(self, label: str, value: str) -> str:
        n = self._tokens.setdefault(value, len(self._tokens) + 1)
        return f"[redacted:{label}#{n}]"

    def text(self, s: str) -> str:
        """Free text (a payload, a raw line, a URL, a message) with every personal value replaced."""
        if not s:
            return s
        if self._json_pair is not None:

            def pair(m: re.Match) -> str:
                value = m.group("sval") if m.group("sval") is not None else m.group("bare")
                if not value or value.lower() == "null":
                    return m.group(0)
                start = m.start("sval") if m.group("sval") is not None else m.start("bare")
                return m.group(0)[: start - m.start()] + self.token(m.group("key"), value)

            s = self._json_pair.sub(pair, s)
            s = self._query_pair.sub(lambda m: m.group("pre") + self.token(m.group("key"), m.group("val")), s)
        for name, pattern in self._patterns:
            s = pattern.sub(lambda m, name=name: self.token(name, m.group(0)), s)
        return s

    def value(self, key: str | None, v: Any) -> Any:
        """A value under ``key``: the whole value when the key is personal, else its text redacted."""
        if v is None:
            return None
        if key is not None and self.is_personal(key) and not isinstance(v, (dict, list)):
            return self.token(str(key), str(v))
        return self.walk(v)

    def row(self, row: Mapping[str, Any]) -> dict:
        return {k: self.value(k, v) for k, v in row.items()}

    def walk(self, obj: Any) -> Any:
        """Any JSON-like structure: personal keys' values replaced, every string's text redacted."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, Mapping):
            return {k: self.value(k, v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.walk(v) for v in obj]
        return obj


def redactor_from(privacy) -> Redactor:
    """A fresh :class:`Redactor` from the validated ``privacy`` params (``puffy.params.PrivacyParams``)."""
    return Redactor(privacy.personal_fields, privacy.personal_value_patterns)


# --------------------------------------------------------------------------------------------
# Markdown


_MD_BACKSLASHED = str.maketrans({c: "\\" + c for c in "\\`*[]|"})
_MD_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_AUTOLINK = re.compile(r"://|(?<![\w.])www\.|@", re.IGNORECASE)


def md_text(value: Any) -> str:
    """``value`` as Markdown text that renders to exactly its characters: no markup, link or table
    column survives (see the module docstring). ``None`` is the empty string."""
    if value is None:
        return ""
    s = re.sub(r"[\r\n\t\v\f]+", " ", str(value))
    s = s.translate(_MD_BACKSLASHED).translate(_MD_ENTITIES)
    # A backslash before the ':' of '://', the '.' of 'www.' and an '@' (ASCII punctuation, so
    # CommonMark drops it when rendering) leaves no bare URL or address to autolink.
    return _AUTOLINK.sub(lambda m: "\\://" if m.group(0) == "://" else m.group(0)[:-1] + "\\" + m.group(0)[-1], s)


def md_cell(value: Any, max_chars: int | None = None) -> str:
    """A Markdown table cell: :func:`md_text`, cut to ``max_chars`` characters of the *value* (with
    '…') before escaping, so an entity or an escape is never cut in half."""
    if value is None:
        return ""
    s = str(value)
    if max_chars is not None and len(s) > max_chars:
        s = s[: max_chars - 1] + "…"
    return md_text(s)


# --------------------------------------------------------------------------------------------
# JSON


def json_dumps_html_safe(obj: Any, **kwargs) -> str:
    """``json.dumps`` whose output holds no ``<``, ``>``, ``&`` (nor U+2028/2029): they can only occur
    inside strings, where ``\\u003c`` etc. decode to the same characters."""
    text = json.dumps(obj, ensure_ascii=False, **kwargs)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


# --------------------------------------------------------------------------------------------
# CSV

#: OWASP's formula triggers: a cell beginning with one of these is prefixed with a single quote.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    """A string beginning with a formula trigger gets a leading ``'``; anything else is returned as is."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with :func:`neutralise_cell` applied to its string columns only (a copy when anything changes)."""
    out = df
    for col in df.columns:
        s = df[col]
        if not (pd.api.types.is_string_dtype(s.dtype) or s.dtype == object):
            continue
        text = s.where(s.map(lambda v: isinstance(v, str)), None)
        hit = text.str.startswith(FORMULA_PREFIXES, na=False).astype(bool)
        if hit.any():
            out = out.copy() if out is df else out
            out[col] = s.where(~hit, "'" + text)
    return out


def neutralise_sql(column_sql: str) -> str:
    """DuckDB SQL for one string column's neutralised value (``column_sql`` is a quoted identifier)."""
    triggers = ", ".join(f"chr({ord(c)})" for c in FORMULA_PREFIXES)
    return f"CASE WHEN left({column_sql}, 1) IN ({triggers}) THEN '''' || {column_sql} ELSE {column_sql} END"
