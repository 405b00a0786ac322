"""Nothing leaks (issue 16): reports carry no personal data and no live markup, CSV copies no live
formulas, hostile names reach no rendered HTML unescaped.

The hand-built inputs and their expected outputs below were worked out by hand (each test says
what it expects and why). The gate and CSV tests failed before ``puffy.safe_output`` was applied:
the gate's reports carried ``<script>``, the hashes and the client ids; the CSV copy carried
``=HYPERLINK(...)`` bare.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path

import nbformat
import pandas as pd
import pyarrow as pa
import pytest
from markdown_it import MarkdownIt
from nbconvert.filters.markdown_mistune import markdown2html_mistune

from puffy.dq.gate import run_gate
from puffy.errors import ParamsError
from puffy.params import DEFAULT_PARAMS_DIR, PipelineParams, load_pipeline_params, validate_params
from puffy.safe_output import (
    Redactor,
    json_dumps_html_safe,
    md_cell,
    md_text,
    neutralise_cell,
    neutralise_frame,
    redactor_from,
)
from puffy.transform.pipeline import TABLES, export_csv
from puffy.warehouse import write_partition

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
HOSTILE = (SCRIPT, IMG)
HASH_A, HASH_B = "a" * 64, "b" * 64  # stand-ins for the export's sha256 email hashes
CLIENT_A, CLIENT_B = "1740787200-goodclient01", "1740787200-otherclient2"


def _live_markup(html: str) -> list[str]:
    """Tags a browser would run or load: <script, an <img (the reports' own charts are inline
    data:image PNGs), a link out of the page (nbconvert's heading anchors, href="#…", are its own),
    any on…= attribute inside a tag."""
    return re.findall(
        r'<script|<img(?![^>]*\ssrc="data:image/png;base64,)|<a\s(?![^>]*href="#)|<[^>]*\son\w+\s*=',
        html,
        flags=re.IGNORECASE,
    )


def _render_all(md: str) -> list[str]:
    """The Markdown through nbconvert's renderer (raw HTML on, bare URLs linked) and CommonMark."""
    return [markdown2html_mistune(md), MarkdownIt("commonmark").enable("table").render(md)]


# ------------------------------------------------------------------------------------- Markdown


@pytest.mark.parametrize(
    "text",
    [
        SCRIPT,
        IMG,
        "[x](javascript:alert(1))",
        "![i](http://x/y.png)",
        "see https://evil.example/p?a=1&b=2",
        "www.evil.example",
        "mail me@evil.example",
        "a|b `code` *em* \\<i>",
        "<http://evil.example>",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
    ],
)
def test_markdown_text_renders_to_its_own_characters_and_nothing_live(text):
    md = f"- {md_text(text)}\n\n| col |\n|---|\n| {md_cell(text)} |\n"
    for html in _render_all(md):
        assert _live_markup(html) == [], html
        assert "<a " not in html and "<code>" not in html and "<em>" not in html
        # the table keeps one column: no '|' of the value opened a cell
        assert html.count("<td") in (0, 1)


def test_markdown_escapes_by_hand():
    # worked out by hand: entities for & < >, backslashes for \ ` * [ ] |, autolinks broken
    assert md_text('a<b>&"c"') == 'a&lt;b&gt;&amp;"c"'
    assert md_text("[x](y) | `z` *w* \\") == "\\[x\\](y) \\| \\`z\\` \\*w\\* \\\\"
    assert md_text("https://p.example www.p.example a@b.example") == "https\\://p.example www\\.p.example a\\@b.example"
    assert md_text("two\nlines\r\tend") == "two lines end"
    assert md_text(None) == "" and md_cell(None) == ""
    # cut before escaping: 5 characters of the value, never half an entity
    assert md_cell("<<<<<<<<", 5) == "&lt;&lt;&lt;&lt;…"


# ------------------------------------------------------------------------------------- redaction


def _redactor() -> Redactor:
    return redactor_from(PipelineParams().privacy)


def test_redaction_by_column_payload_key_query_parameter_and_pattern():
    r = _redactor()
    row = r.row(
        {
            "event_id": "e1",
            "client_id": CLIENT_A,
            "user_email": HASH_A,
            "revenue": 10.0,
            "event_data": '{"transaction_id": "ORD-1", "user_email": "' + HASH_B + '"}',
        }
    )
    # numbered in order of first appearance: client A = 1, hash A = 2, hash B = 3
    assert row == {
        "event_id": "e1",
        "client_id": "[redacted:client_id#1]",
        "user_email": "[redacted:user_email#2]",
        "revenue": 10.0,
        "event_data": '{"transaction_id": "ORD-1", "user_email": "[redacted:user_email#3]"}',
    }
    # a raw CSV line: client id by pattern, the doubled-quote JSON key by key; equal values share a number
    raw = f'{CLIENT_A},https://puffy.com/?email=joe@x.example,"{{""user_email"": ""{HASH_A}""}}",ua'
    assert r.text(raw) == (
        "[redacted:client_id#1],https://puffy.com/?email=[redacted:email#4],"
        '"{""user_email"": ""[redacted:user_email#2]""}",ua'
    )
    # a truncated payload excerpt still loses its value; null stays null; None stays None
    assert r.text('{"user_email": "' + HASH_B[:30]) == '{"user_email": "[redacted:user_email#5]'
    assert r.text('{"email": null}') == '{"email": null}'
    assert r.value("user_email", None) is None
    # clientId is client_id (case and punctuation ignored)
    assert r.row({"clientId": "x"}) == {"clientId": "[redacted:clientId#6]"}


def test_privacy_params_are_validated():
    assert load_pipeline_params(DEFAULT_PARAMS_DIR).privacy.personal_fields == [
        "user_email",
        "email",
        "client_id",
        "person_id",
    ]
    with pytest.raises(ParamsError, match="privacy.personal_value_patterns.*not a valid regular expression"):
        validate_params({"privacy": {"personal_value_patterns": {"x": "("}}}, PipelineParams, "pipeline.yaml")
    with pytest.raises(ParamsError, match="matches the empty string"):
        validate_params({"privacy": {"personal_value_patterns": {"x": "a*"}}}, PipelineParams, "pipeline.yaml")
    with pytest.raises(ParamsError, match="unknown key 'privacy.fields'"):
        validate_params({"privacy": {"fields": ["x"]}}, PipelineParams, "pipeline.yaml")


def test_json_is_html_safe_and_round_trips():
    doc = {"s": SCRIPT + IMG + " & \u2028"}
    text = json_dumps_html_safe(doc, indent=2)
    assert not re.search("[<>&\u2028]", text)
    assert json.loads(text) == doc


# ------------------------------------------------------------------------------------- the gate

DQ_HEADER = "client_id,page_url,referrer,timestamp,event_name,event_data,user_agent"


def _q(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _purchase(client: str, hh: str, email: str, revenue: float) -> str:
    data = json.dumps(
        {
            "transaction_id": "ORD-20250301-001",
            "revenue": revenue,
            "user_email": email,
            "items": [
                {"item_id": "p1", "item_name": "Mattress", "item_variant": "Q", "quantity": 1, "item_price": revenue}
            ],
        }
    )
    return f"{client},https://puffy.com/checkout,,2025-03-01T{hh}:00:00.000Z,checkout_completed,{_q(data)},ua"


def _hostile_export(root: Path) -> Path:
    """One day, 2025-03-01: two page views of one client at one timestamp with a <script> and an
    <img onerror> page_url (duplicates.same_key samples page_url), one transaction id on two
    orders of two clients with two email hashes (duplicates.transaction_id_collision samples
    client_id and user_email), and one line with a column too many holding markup and the hash
    (ingest.malformed_lines samples the raw line); an extra header column named <b>x</b>."""
    raw = root / "raw"
    raw.mkdir()
    rows = [
        f"{CLIENT_A},https://puffy.com/{SCRIPT},,2025-03-01T00:00:02.000Z,page_viewed,,ua,",
        f"{CLIENT_A},{_q('https://puffy.com/?q=' + IMG)},,2025-03-01T00:00:02.000Z,page_viewed,,ua,",
        _purchase(CLIENT_A, "01", HASH_A, 100.0) + ",",
        _purchase(CLIENT_B, "02", HASH_B, 200.0) + ",",
        f"{CLIENT_A},https://puffy.com/,,2025-03-01T03:00:00.000Z,email_filled_on_popup,"
        f"{_q(json.dumps({'user_email': HASH_A}))},ua,,{SCRIPT}",
    ]
    (raw / "events_20250301.csv").write_text(DQ_HEADER + ",<b>x</b>\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return raw


def _assert_no_leak(text: str, what: str) -> None:
    for bad in (*HOSTILE, "<script", "<img", "<b>", HASH_A, HASH_B, CLIENT_A, CLIENT_B):
        assert bad not in text, f"{what} carries {bad!r}"


def test_gate_reports_carry_no_markup_and_no_personal_data(tmp_path):
    raw = _hostile_export(tmp_path)
    result = run_gate(
        raw,
        DEFAULT_PARAMS_DIR / "dq_rules.yaml",
        tmp_path / "dq",
        engine_params=load_pipeline_params(DEFAULT_PARAMS_DIR),
    )
    # the hostile values did reach the findings' samples (so the test tests something)
    samples = json.dumps([f.sample_rows for f in result.findings])
    assert SCRIPT in samples and HASH_A in samples and CLIENT_B in samples
    md = result.report_paths["md"].read_text(encoding="utf-8")
    text = result.report_paths["json"].read_text(encoding="utf-8")
    _assert_no_leak(md, "dq_report.md")
    _assert_no_leak(text, "dq_report.json")
    for html in _render_all(md) + _render_all(result.narrative):
        assert _live_markup(html) == []
    # the JSON keeps the strings (decoded: the markup is back, as data), with personal values redacted
    doc = json.loads(text)
    by_id = {f["id"]: f for f in doc["findings"]}
    same_key = by_id["duplicates.same_key"]["sample_rows"]
    assert {r["page_url"] for r in same_key} == {f"https://puffy.com/{SCRIPT}", "https://puffy.com/?q=" + IMG}
    tokens = {r["client_id"] for r in same_key}  # one client, one token
    assert len(tokens) == 1 and tokens.pop().startswith("[redacted:client_id#")
    collision = by_id["duplicates.transaction_id_collision"]["sample_rows"]
    emails = [r["user_email"] for r in collision]
    assert len(set(emails)) == 2 and all(e.startswith("[redacted:user_email#") for e in emails)
    malformed = by_id["ingest.malformed_lines"]["sample_rows"][0]["raw"]
    assert malformed.startswith("[redacted:client_id#") and "[redacted:user_email#" in malformed


def test_real_export_gate_reports_leak_nothing(real_data_dir, tmp_path):
    result = run_gate(
        real_data_dir,
        DEFAULT_PARAMS_DIR / "dq_rules.yaml",
        tmp_path / "dq",
        engine_params=load_pipeline_params(DEFAULT_PARAMS_DIR),
    )
    for path in result.report_paths.values():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script|<img|onerror\s*=\s*alert", text, re.IGNORECASE), path.name
        assert not re.search(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])", text), f"{path.name}: an email hash"
        assert not re.search(r"\d{10}-[A-Za-z0-9_-]{12}", text), f"{path.name}: a client id"
    md = result.report_paths["md"].read_text(encoding="utf-8")
    for html in _render_all(md):
        assert _live_markup(html) == []
    # the collision samples are there, with their emails redacted
    doc = json.loads(result.report_paths["json"].read_text(encoding="utf-8"))
    collision = next(f for f in doc["findings"] if f["id"] == "duplicates.transaction_id_collision")
    assert collision["sample_rows"] and all(r["user_email"].startswith("[redacted:") for r in collision["sample_rows"])


# ------------------------------------------------------------------------------------- CSV copies


def test_neutralise_cell_and_frame_touch_strings_only():
    assert [neutralise_cell(v) for v in ("=1+1", "+1", "-x", "@SUM(A1)", "\tx", "\rx", "a=b", "", None, -5)] == [
        "'=1+1",
        "'+1",
        "'-x",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "a=b",
        "",
        None,
        -5,
    ]
    df = pd.DataFrame({"s": ['=HYPERLINK("http://e","x")', "ok", None], "n": [-1.5, 2.0, None], "i": [-3, 4, 5]})
    out = neutralise_frame(df)
    assert out["s"].tolist()[:2] == ['\'=HYPERLINK("http://e","x")', "ok"] and pd.isna(out["s"].iloc[2])
    assert out["n"].equals(df["n"]) and out["i"].equals(df["i"])


def _session_partition(rows: list[dict]) -> pa.Table:
    schema = TABLES["fct_sessions"][0].to_pyarrow()
    return pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)


def test_csv_copy_neutralises_formula_cells_and_keeps_numbers(tmp_path):
    wh = tmp_path / "warehouse"
    formula = '=HYPERLINK("http://evil.example","click")'
    d1, d2 = date(2025, 3, 1), date(2025, 3, 2)
    write_partition(
        wh,
        "fct_sessions",
        d1,
        _session_partition(
            [
                {
                    "session_id": "s1",
                    "session_date": d1,
                    "session_start": datetime(2025, 3, 1, 0, 0, 1, 438000),
                    "landing_page_url": formula,
                    "landing_path": "-2+3",
                    "utm_campaign": "@cmd",
                    "entry_referrer": "\tx",
                    "referrer_host": "a=b",
                    "revenue": -5.0,
                    "n_events": 3,
                    "is_bot": False,
                    "session_number": 2,
                },
                {
                    "session_id": "s2",
                    "session_date": d1,
                    "session_start": datetime(2025, 3, 1, 0, 0, 2),
                    "landing_page_url": "https://puffy.com/",
                    "utm_campaign": "",
                    "revenue": 1.25,
                    "n_events": 1,
                    "is_bot": True,
                    "session_number": None,
                },
            ]
        ),
    )
    write_partition(
        wh,
        "fct_sessions",
        d2,
        _session_partition(
            [
                {
                    "session_id": "s3",
                    "session_date": d2,
                    "session_start": datetime(2025, 3, 2, 10, 0, 0),
                    "landing_page_url": "+1",
                    "revenue": 0.1,
                    "n_events": 7,
                    "session_number": 4,
                },
            ]
        ),
    )
    (path,) = export_csv(wh, tmp_path / "csv", tables=("fct_sessions",))
    got = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert got["landing_page_url"].tolist() == ["'" + formula, "https://puffy.com/", "'+1"]
    assert got["landing_path"].tolist() == ["'-2+3", "", ""]
    assert got["utm_campaign"].tolist() == ["'@cmd", "", ""]
    assert got["entry_referrer"].tolist() == ["'\tx", "", ""]
    assert got["referrer_host"].tolist() == ["a=b", "", ""]  # only the first character counts
    # numbers stay numbers (a negative revenue is not a formula), formatted as the pandas copies were:
    # day 1 has a NULL session_number, so its integers print as floats; day 1's timestamps need
    # milliseconds, day 2's whole seconds (worked out from pandas' per-partition formatting)
    assert got["revenue"].tolist() == ["-5.0", "1.25", "0.1"]
    assert got["n_events"].tolist() == ["3", "1", "7"]
    assert got["session_number"].tolist() == ["2.0", "", "4"]
    assert got["is_bot"].tolist() == ["False", "True", ""]
    assert got["session_start"].tolist() == [
        "2025-03-01 00:00:01.438",
        "2025-03-01 00:00:02.000",
        "2025-03-02 10:00:00",
    ]
    # the same cells as the former pandas writer, apart from the neutralised ones
    import pyarrow.parquet as pq

    from puffy.warehouse import partition_files

    schema = TABLES["fct_sessions"][0].to_pyarrow()
    expected = pa.Table.from_batches([], schema=schema).to_pandas().to_csv(index=False) + "".join(
        neutralise_frame(pq.read_table(f).cast(schema).to_pandas()).to_csv(index=False, header=False)
        for f in partition_files(wh, "fct_sessions")
    )
    assert path.read_text(encoding="utf-8") == expected


def _faulted_real_day(real_data_dir: Path, out: Path) -> Path:
    """One real day (2025-03-01) with hostile values the way a hostile tester planted them: the first
    30 page views of identified clients get a formula page_url and referrer, the next 30 a <script>
    or <img onerror> page_url (a copy under tmp, never in the repo)."""
    df = pd.read_csv(real_data_dir / "events_20250301.csv", dtype=str, keep_default_na=False)
    rows = df.index[(df["event_name"] == "page_viewed") & (df.iloc[:, 0] != "")]
    df.loc[rows[:30], "page_url"] = '=HYPERLINK("http://evil.example/?utm_campaign=x","click")'
    df.loc[rows[:30], "referrer"] = '=HYPERLINK("http://evil.example","ref")'
    df.loc[rows[30:45], "page_url"] = "https://puffy.com/" + SCRIPT
    df.loc[rows[45:60], "page_url"] = "https://puffy.com/?q=" + IMG
    out.mkdir()
    df.to_csv(out / "events_20250301.csv", index=False)
    return out


def test_real_export_with_planted_values_leaks_nothing(real_data_dir, tmp_path):
    from puffy.cli import main

    raw = _faulted_real_day(real_data_dir, tmp_path / "raw")
    out = tmp_path / "out"
    assert main(["transform", "--input-dir", str(raw), "--output-dir", str(out)]) == 0
    for path in (out / "dq" / "dq_report.md", out / "dq" / "dq_report.json"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script|<img", text, re.IGNORECASE), path.name
        assert not re.search(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])", text), f"{path.name}: an email hash"
    sessions = pd.read_csv(out / "fct_sessions.csv", dtype=str, keep_default_na=False)
    assert (sessions["landing_page_url"] == "'" + '=HYPERLINK("http://evil.example/?utm_campaign=x","click")').any()
    for table in ("fct_sessions", "fct_orders", "fct_attribution"):
        df = (
            sessions if table == "fct_sessions" else pd.read_csv(out / f"{table}.csv", dtype=str, keep_default_na=False)
        )
        for col in [c for c, t in TABLES[table][0].items() if t.is_string()]:
            assert not df[col].str.match(r"[=+\-@\t\r]").any(), f"{table}.{col} has a live formula cell"
        numeric = [c for c, t in TABLES[table][0].items() if t.is_numeric()]
        assert not df[numeric].apply(lambda s: s.str.startswith("'")).any().any()


# ------------------------------------------------------------------------------------- rendered HTML


@pytest.fixture
def hostile_report(tmp_path, monkeypatch):
    """The executive-report fixture with a channel and a product named <script>…, another channel
    and product named "><img onerror…>."""
    import support.report_outputs as fx
    from puffy.report import build_report

    monkeypatch.setattr(fx, "CHANNELS", (SCRIPT, "Paid Search", IMG, "Organic Search", "Paid Social"))
    monkeypatch.setattr(
        fx,
        "PRODUCTS",
        (
            ("P-LUX", SCRIPT + " Mattress", 1200.0),
            ("P-CLD", IMG, 900.0),
            ("P-PIL", "Pillow", 80.0),
            ("P-TOP", "Topper", 250.0),
        ),
    )
    cfg = fx.FixtureConfig(
        conversion={SCRIPT: 0.02, "Paid Search": 0.015, IMG: 0.06, "Organic Search": 0.01, "Paid Social": 0.004}
    )
    return build_report(fx.make_outputs(tmp_path / "outputs", cfg), DEFAULT_PARAMS_DIR)


def test_hostile_names_reach_no_rendered_html(hostile_report, tmp_path):
    from puffy import runner
    from puffy.report import narrative as N
    from puffy.report import pdf as P
    from puffy.report import write_outputs

    fig = hostile_report.figures
    markdown = N.to_markdown(hostile_report.narrative) + "\n" + N.caveats_markdown(fig.caveats)
    assert "Mattress" in markdown  # the product statements are there, named
    # the print HTML behind the PDF
    html = write_outputs(hostile_report, tmp_path / "report")["print_html"].read_text(encoding="utf-8")
    assert "&lt;script&gt;" in html and _live_markup(html) == []
    # the notebook's outputs as nbconvert renders them into executive_summary.html
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"text/markdown": markdown}),
        nbformat.v4.new_output(
            "display_data", data={"text/html": P.channel_table_html(fig, fig.params.attribution_models)}
        ),
        nbformat.v4.new_output("display_data", data={"text/html": P.products_table_html(fig)}),
    ]
    nb.cells = [cell]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    rendered = runner.render_html(path).read_text(encoding="utf-8")
    body = rendered[rendered.index("<body") :]
    assert "&lt;script&gt;" in body and _live_markup(body) == []


def test_gate_findings_notebook_html_and_index_escape(tmp_path):
    from puffy import runner
    from puffy.run_index import write_index

    result = run_gate(_hostile_export(tmp_path), DEFAULT_PARAMS_DIR / "dq_rules.yaml", tmp_path / "dq")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    table = result.findings_table()
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"text/markdown": result.narrative}),
        nbformat.v4.new_output("display_data", data={"text/html": table.to_html()}),
    ]
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "01.ipynb")
    body = runner.render_html(tmp_path / "01.ipynb").read_text(encoding="utf-8")
    body = body[body.index("<body") :]
    assert "&lt;b&gt;x&lt;/b&gt;" in body and _live_markup(body) == [] and "<b>x</b>" not in body
    # index.html: a run whose dq_report.json status is hostile
    run = tmp_path / "outputs" / "runs" / "2025-03-01"
    run.mkdir(parents=True)
    (run / "dq_report.json").write_text(json.dumps({"status": SCRIPT}), encoding="utf-8")
    (run / "run_summary.json").write_text(json.dumps({"stopped_at": IMG}), encoding="utf-8")
    index = write_index(tmp_path / "outputs").read_text(encoding="utf-8")
    assert _live_markup(index) == [] and "&lt;SCRIPT&gt;" in index
