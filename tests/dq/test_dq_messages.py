"""puffy.dq.checks.messages: every check id has its downstream meaning in messages.yaml, and only those.

Every check returns one finding per id whatever the data (``pass`` when it found nothing), so one
gate run over the shared generated sample lists every id the checks can produce.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from puffy.dq.checks import CHECK_ORDER, messages
from puffy.dq.checks.messages import MessagesError, impact, validate
from puffy.dq.gate import run_gate
from puffy.params import DEFAULT_PARAMS_DIR

NOW = datetime(2025, 3, 9, 6, tzinfo=UTC)


@pytest.fixture(scope="module")
def gate(small_sample, tmp_path_factory):
    result = run_gate(small_sample, DEFAULT_PARAMS_DIR / "dq_rules.yaml", tmp_path_factory.mktemp("dq"), now=NOW)
    result.con.close()
    return result


def test_every_check_id_has_a_message_and_every_message_a_check(gate):
    texts = messages.messages()
    gate_ids = [f.id for f in gate.findings]
    assert len(gate_ids) == len(set(gate_ids)) == 50
    assert sorted(set(gate_ids) - set(texts)) == [], "check ids without a message in messages.yaml"
    assert sorted(set(texts) - set(gate_ids)) == [], "messages.yaml entries no check produces"


def test_the_report_carries_each_finding_s_message(gate):
    assert any(f["severity"] != "pass" for f in gate.report["findings"])
    for f in gate.report["findings"]:
        assert f["impact"] == impact(f["id"])
        if f["severity"] != "pass":
            assert f["message"].endswith(f"; {f['impact']}.")


def test_a_check_id_without_a_message_stops_the_gate(small_sample, tmp_path, monkeypatch):
    texts = dict(messages.messages())
    del texts["payload.revenue_zero"]
    monkeypatch.setattr(messages, "messages", lambda: texts)
    with pytest.raises(MessagesError, match="no message for check id 'payload.revenue_zero'"):
        run_gate(small_sample, DEFAULT_PARAMS_DIR / "dq_rules.yaml", tmp_path, now=NOW)


@pytest.mark.parametrize(
    "data, error",
    [
        (["a list"], "expected a mapping"),
        ({"sessions": {"x": "a text"}}, "unknown check family 'sessions'"),
        ({"payload": {}}, "must map finding names"),
        ({"payload": {"Revenue Zero": "a text"}}, "lowercase identifier"),
        ({"payload": {"revenue_zero": ""}}, "non-empty"),
        ({"payload": {"revenue_zero": 3}}, "non-empty string"),
        ({"payload": {"revenue_zero": "ends with a full stop."}}, "no final full stop"),
        ({"payload": {"revenue_zero": "two\nlines"}}, "one line"),
    ],
)
def test_validate_rejects_a_malformed_file(data, error):
    with pytest.raises(MessagesError, match=error):
        validate(data)


def test_validate_flattens_family_and_name():
    assert validate({"payload": {"revenue_zero": "lowers revenue"}, "bots": {"share": "b"}}) == {
        "payload.revenue_zero": "lowers revenue",
        "bots.share": "b",
    }
    assert set(f.split(".")[0] for f in messages.messages()) == set(CHECK_ORDER)
