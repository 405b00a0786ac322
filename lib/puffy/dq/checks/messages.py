"""What each gate finding means downstream: ``messages.yaml`` beside this module, read once and checked.

The file maps check family → finding name → one sentence (without its final full stop). A raised
finding's message ends with it ("…; <impact>.") and the Markdown report lists it under "What the
findings mean downstream". The file is validated when first read: families must be ``CHECK_ORDER``'s,
names lowercase identifiers, texts non-empty single lines without the final full stop. A check id
without a text is an error (``impact`` raises), so a new check cannot ship without saying what it
means; ``tests/dq/test_dq_messages.py`` runs every check and compares their ids with the file.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

from puffy.dq.checks.context import CHECK_ORDER
from puffy.params import safe_load_yaml

MESSAGES_FILE = "messages.yaml"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class MessagesError(ValueError):
    """``messages.yaml`` is malformed or lacks a check id (a bug in the package, not in the data)."""


def validate(data: object, source: str = MESSAGES_FILE) -> dict[str, str]:
    """``{"family.name": text}`` from the YAML's nested mapping, or ``MessagesError`` saying what is wrong."""
    if not isinstance(data, dict):
        raise MessagesError(f"{source}: expected a mapping of check family to messages, got {type(data).__name__}")
    out: dict[str, str] = {}
    for family, names in data.items():
        if family not in CHECK_ORDER:
            raise MessagesError(f"{source}: unknown check family {family!r} (expected one of {', '.join(CHECK_ORDER)})")
        if not isinstance(names, dict) or not names:
            raise MessagesError(f"{source}: {family} must map finding names to texts")
        for name, text in names.items():
            fid = f"{family}.{name}"
            if not isinstance(name, str) or not _NAME.match(name):
                raise MessagesError(f"{source}: {fid}: a finding name is a lowercase identifier")
            if not isinstance(text, str) or not text.strip():
                raise MessagesError(f"{source}: {fid}: the text must be a non-empty string")
            if "\n" in text or text != text.strip() or text.endswith("."):
                raise MessagesError(
                    f"{source}: {fid}: one line, no surrounding spaces, no final full stop (the message adds it)"
                )
            out[fid] = text
    return out


@cache
def messages() -> dict[str, str]:
    """Every finding id's downstream meaning (read and validated once per process)."""
    text = files(__package__).joinpath(MESSAGES_FILE).read_text(encoding="utf-8")
    return validate(safe_load_yaml(text))


def impact(finding_id: str) -> str:
    """What ``finding_id`` means for the numbers built downstream; ``MessagesError`` when it has no text."""
    try:
        return messages()[finding_id]
    except KeyError:
        raise MessagesError(
            f"{MESSAGES_FILE} has no message for check id {finding_id!r}: add one under {finding_id.split('.', 1)[0]}:"
        ) from None
