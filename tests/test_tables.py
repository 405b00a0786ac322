"""The table registry (lib/puffy/tables.yaml): it validates, the code's schemas equal it, the tables a
run writes have exactly its columns and types and pass its tests, and the docs' column tables are
generated from it.

Run: cd /work/main && .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_tables.py
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from puffy import ingest, tables
from puffy.ingest import STAGING_TABLES, RawContract
from puffy.params import DEFAULT_PARAMS_DIR
from puffy.transform import orders, pipeline, sessions
from puffy.transform.params import EVENT_FIELDS, TransformParams
from puffy.transform.pipeline import RECONCILIATION_TABLE, REPORT_TABLES, TABLES, run_transform
from puffy.warehouse import partition_files
from support.raw_events import (
    pytestmark,  # noqa: F401  (the shared warning filters)
    stage,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

WRITTEN = (*STAGING_TABLES, *TABLES, *REPORT_TABLES, RECONCILIATION_TABLE)


# ------------------------------------------------------------------------------ the registry


def test_registry_validates_and_declares_every_written_table():
    reg = tables.load_registry()
    assert sorted(reg.tables) == sorted(WRITTEN)
    assert tables.names("staging") == STAGING_TABLES
    assert tables.names("fact") == tuple(TABLES)
    for name in WRITTEN:
        spec = tables.table(name)
        assert spec.grain and all(c.description for c in spec.columns)
        assert spec.partition_column in tables.columns(name)


def _registry_text(**changes: str) -> str:
    """A one-table registry with ``changes`` replacing parts of its text."""
    text = """
tables:
  fct_things:
    layer: fact
    grain: One row per thing.
    partition_column: thing_date
    sort_keys: [thing_id]
    tests: {unique: [thing_id]}
    columns:
      - {name: thing_id, type: string, description: The thing., tests: [not_null]}
      - {name: thing_date, type: date, description: Its date.}
"""
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("type: date", "type: datetime64", "not an Ibis dtype"),
        ("sort_keys: [thing_id]", "sort_keys: [thing_ts]", "sort_keys names columns the table does not have"),
        ("partition_column: thing_date", "partition_column: day", "partition_column names columns"),
        ("{unique: [thing_id]}", "{unique: [id]}", "tests.unique names columns"),
        ("name: thing_date", "name: thing_id", "columns declared twice"),
        ("layer: fact", "layer: mart", "Input should be 'staging', 'fact' or 'report'"),
        ("tests: [not_null]", "tests: [not_empty]", "tests"),
        ("fct_things:", "things:", "must start with stg_, fct_ or rpt_"),
        ("grain: One row per thing.", "grian: One row per thing.", "Extra inputs are not permitted"),
    ],
)
def test_a_malformed_registry_is_rejected(tmp_path, old, new, message):
    path = tmp_path / "tables.yaml"
    path.write_text(_registry_text(**{old: new}))
    with pytest.raises(ValidationError, match=message):
        tables.load_registry(path)
    path.write_text(_registry_text())
    assert tables.load_registry(path).tables["fct_things"].columns[0].not_null


def test_schema_constants_are_the_registry_s():
    ibis_constants = {
        "fct_sessions": sessions.SESSION_SCHEMA,
        "fct_orders": orders.ORDER_SCHEMA,
        "fct_order_items": orders.ORDER_ITEM_SCHEMA,
        "fct_order_rejects": orders.ORDER_REJECT_SCHEMA,
        "fct_attribution": pipeline.ATTRIBUTION_SCHEMA,
        "rpt_channel_credit": pipeline.CHANNEL_CREDIT_SCHEMA,
        "stg_purchase_items": pipeline.STG_ITEMS_SCHEMA,
    }
    for name, schema in ibis_constants.items():
        assert schema == tables.ibis_schema(name), name
    assert pipeline.RECONCILIATION_SCHEMA.equals(tables.arrow_schema(RECONCILIATION_TABLE), check_metadata=True)
    for name, (schema, key, sort) in {**TABLES, **REPORT_TABLES}.items():
        assert (schema, key, sort) == (tables.ibis_schema(name), tables.partition_column(name), tables.sort_keys(name))
    assert sessions.SESSION_COLUMNS == tables.columns("fct_sessions")
    # ingest creates stg_events and stg_parse_rejects (the first part of stg_rejects) with these
    assert ingest._ROW_COLUMNS + ingest._PAYLOAD_COLUMNS == tables.duckdb_columns("stg_events")
    assert ingest._PARSE_REJECTS_COLUMNS == tables.duckdb_columns("stg_rejects")
    assert tables.duckdb_columns("stg_events")[:3] == (
        ("event_id", "VARCHAR"),
        ("file_date", "DATE"),
        ("source_file", "VARCHAR"),
    )
    # attribute() returns fct_attribution's columns but the partition key, which the pipeline adds
    from puffy.attribution import ATTRIBUTION_COLUMNS

    assert ATTRIBUTION_COLUMNS == tuple(c for c in tables.columns("fct_attribution") if c != "order_date")


def test_event_taxonomy_defaults_agree():
    """The event names are declared twice (ingest.RawContract, transform.params.TransformParams);
    load_transform_params overwrites the latter from the contract, but their defaults must agree."""
    contract = RawContract()
    params = TransformParams()
    for field in EVENT_FIELDS:
        assert getattr(params, field) == getattr(contract, field), field
        assert getattr(contract, field) in contract.events


# ------------------------------------------------------------------ check(): the registry's tests


def _credit(**overrides) -> pd.DataFrame:
    """Two valid rpt_channel_credit rows (worked out by hand), with ``overrides`` per column."""
    frame = pd.DataFrame(
        {
            "order_date": pd.to_datetime(["2025-03-01", "2025-03-01"]).date,
            "identity": ["strict", "strict"],
            "model": ["linear", "linear"],
            "channel": ["Direct", "Email"],
            "orders_credited": [1.5, 0.5],
            "attributed_revenue": [1500.0, 500.0],
            "is_configured": [True, True],
        }
    )
    for column, values in overrides.items():
        frame[column] = values
    return frame


def test_check_passes_a_valid_frame():
    assert tables.check("rpt_channel_credit", _credit()) == []


def test_check_fails_each_broken_test():
    # the same key (order_date, identity, model, channel) twice
    assert tables.check("rpt_channel_credit", _credit(channel=["Direct", "Direct"])) == [
        "rpt_channel_credit: 2 rows share a key (order_date, identity, model, channel), "
        "e.g. [datetime.date(2025, 3, 1), 'strict', 'linear', 'Direct']"
    ]
    # not_null
    assert tables.check("rpt_channel_credit", _credit(orders_credited=[1.0, None])) == [
        "rpt_channel_credit.orders_credited: 1 NULL values (not_null)"
    ]
    # accepted_values (a NULL is no failure of accepted_values, only of not_null)
    assert tables.check("rpt_channel_credit", _credit(identity=["strict", "person"])) == [
        "rpt_channel_credit.identity: values not accepted: ['person'] (accepted: ['strict', 'stitched'])"
    ]
    assert tables.check("rpt_channel_credit", _credit(identity=["strict", None])) == [
        "rpt_channel_credit.identity: 1 NULL values (not_null)"
    ]
    # columns: missing, extra, out of order
    assert tables.check("rpt_channel_credit", _credit().drop(columns="is_configured").assign(extra=1)) == [
        "rpt_channel_credit: columns differ from tables.yaml: missing ['is_configured'], extra ['extra']"
    ]
    swapped = _credit()[["identity", "order_date", *tables.columns("rpt_channel_credit")[2:]]]
    assert tables.check("rpt_channel_credit", swapped) == [
        "rpt_channel_credit: columns differ from tables.yaml: missing [], extra [], order differs"
    ]


def test_check_unique_column():
    # no registry column carries `unique` (keys are table tests), so use a registry that does
    frame = pd.DataFrame({"session_id": ["a", "a", None]})
    column = tables.Column(name="session_id", type="string", description="x", tests=["unique"])
    assert column.unique and not column.not_null and column.accepted_values is None
    spec = tables.Table(layer="fact", grain="g", partition_column="session_id", columns=[column])
    assert tables.check("fct_probe", frame, spec) == ["fct_probe.session_id: 2 rows share a value (unique), e.g. 'a'"]
    assert tables.check("fct_probe", frame.iloc[1:], spec) == []


# ------------------------------------------------------------- the tables a run actually writes


@pytest.fixture(scope="module")
def written(small_sample, tmp_path_factory) -> dict[str, list[Path]]:
    """The generated sample (4 days, all faults on) staged and transformed: each table's files."""
    root = tmp_path_factory.mktemp("tables")
    days = stage(small_sample, root / "stg")
    result = run_transform(root / "stg", root / "wh", DEFAULT_PARAMS_DIR, start=days[0], end=days[-1])
    assert result.status == "ok"
    return {name: partition_files(root / ("stg" if name in STAGING_TABLES else "wh"), name) for name in WRITTEN}


@pytest.mark.parametrize("name", WRITTEN)
def test_written_tables_have_the_registry_s_columns_and_types(written, name):
    files = written[name]
    assert files, f"{name}: nothing written"
    expected = tables.arrow_schema(name)
    for f in files:
        schema = pq.read_schema(f)
        if name in STAGING_TABLES:
            # write_staging makes a column required when the ingest holds no NULL in it: the
            # nullability of a staging file follows the data, its names and types do not
            schema = pa.schema([field.with_nullable(True) for field in schema])
        assert schema.equals(expected), f"{f}:\n{schema}\n!= tables.yaml:\n{expected}"


@pytest.mark.parametrize("name", WRITTEN)
def test_written_tables_pass_the_registry_s_tests(written, name):
    frame = pd.concat([pq.read_table(f).to_pandas() for f in written[name]], ignore_index=True)
    assert len(frame)
    assert tables.check(name, frame) == []
    if name == "stg_events":  # the contract's taxonomy (configurable, so not an accepted_values of the registry)
        assert set(frame.event_name) <= set(RawContract().events)


# ---------------------------------------------------------------------------------- the docs


def test_docs_column_tables_are_the_registry_s():
    stale = tables.stale_docs(REPO_ROOT)
    assert not stale, f"column tables out of date in {stale}: run `{tables.WRITE_DOCS_COMMAND}` and commit"


def test_docs_document_every_table():
    text = "".join((REPO_ROOT / doc).read_text() for doc in tables.DOCS)
    for name in WRITTEN:
        assert f"<!-- tables:begin {name} -->" in text, name


def test_render_docs_regenerates_a_block_and_leaves_the_rest():
    text = "intro\n<!-- tables:begin fct_order_items -->\nold text\n<!-- tables:end -->\noutro\n"
    rendered = tables.render_docs(text)
    assert rendered.startswith(
        "intro\n<!-- tables:begin fct_order_items -->\nGrain: One row per order line. "
        "Partition `order_date`; sorted by `order_key`, `line_number`; unique key "
        "(`order_key`, `line_number`).\n"
    )
    assert "| `unit_price` | float64 |  | item_price / quantity. |\n<!-- tables:end -->\noutro\n" in rendered
    assert "old text" not in rendered
    assert tables.render_docs(rendered) == rendered


def test_write_docs_command(tmp_path, capsys):
    doc = tmp_path / "docs" / "methodology.md"
    doc.parent.mkdir()
    doc.write_text("<!-- tables:begin fct_orders -->\n| `order_key` | string |\n<!-- tables:end -->\n")
    assert tables.main(["--check-docs", "--root", str(tmp_path)]) == 1
    assert f"run {tables.WRITE_DOCS_COMMAND}" in capsys.readouterr().err
    assert tables.main(["--write-docs", "--check-docs", "--root", str(tmp_path)]) == 0
    assert "| `event_id` | string | not_null | The purchase event (stg_events.event_id). |" in doc.read_text()
