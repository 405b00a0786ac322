"""Period resolution, table loading and the report's figures on small hand-made data."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pandas as pd
import pytest

from puffy.errors import ParamsError, UserError
from puffy.params import REPO_ROOT
from puffy.report import kpis
from puffy.report.data import (
    ReportParams,
    load_findings,
    load_period,
    load_report_params,
    read_table,
    resolve_period,
)
from support.report_outputs import FixtureConfig, build_tables, make_outputs


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """14 days from 1 March: a period of 7 days has a complete previous period."""
    return make_outputs(tmp_path_factory.mktemp("kpi_out"), FixtureConfig(days=14, sessions_per_day=200))


# --- params and period -----------------------------------------------------------------------


def test_repository_params_file_is_valid_and_fully_commented():
    params = load_report_params(REPO_ROOT / "params")
    assert params == ReportParams()  # the file states the defaults
    lines = (REPO_ROOT / "params" / "report.yaml").read_text().splitlines()
    for key in ReportParams.model_fields:
        at = [i for i, line in enumerate(lines) if line.startswith(f"{key}:")]
        assert len(at) == 1, f"{key} is not in params/report.yaml"
        block = []  # the lines above the key, up to the previous blank line
        for line in reversed(lines[: at[0]]):
            if not line.strip():
                break
            block.append(line)
        assert any(line.startswith("#") for line in block), f"{key} has no comment"


def test_bad_params_stop_with_one_line(tmp_path):
    (tmp_path / "report.yaml").write_text("period_days: 0\n")
    with pytest.raises(ParamsError, match="period_days"):
        load_report_params(tmp_path)
    (tmp_path / "report.yaml").write_text("attribution_models: [last_click, magic]\n")
    with pytest.raises(ParamsError, match="magic"):
        load_report_params(tmp_path)


def test_default_period_is_the_last_days_of_the_warehouse(outputs):
    p = resolve_period(outputs / "warehouse", period_days=7)
    assert (p.start, p.end) == (date(2025, 3, 8), date(2025, 3, 14))
    assert (p.previous_start, p.previous_end) == (date(2025, 3, 1), date(2025, 3, 7))
    assert p.has_previous and p.missing == [] and p.label == "2025-03-08_2025-03-14"
    long = resolve_period(outputs / "warehouse", period_days=30)  # clipped to the first day present
    assert (long.start, long.end, long.has_previous) == (date(2025, 3, 1), date(2025, 3, 14), False)
    only_start = resolve_period(outputs / "warehouse", start="2025-03-03", period_days=7)
    assert (only_start.start, only_start.end) == (date(2025, 3, 3), date(2025, 3, 9))
    assert not only_start.has_previous  # 2 of the 7 previous days are missing


def test_period_user_errors(outputs, tmp_path):
    wh = outputs / "warehouse"
    with pytest.raises(UserError, match="no fct_sessions partitions"):
        resolve_period(tmp_path / "warehouse")
    with pytest.raises(UserError, match="before start date"):
        resolve_period(wh, start="2025-03-10", end="2025-03-05")
    with pytest.raises(UserError, match="not a date"):
        resolve_period(wh, start="2025-13-01")
    with pytest.raises(UserError, match="warehouse holds 2025-03-01 to 2025-03-14"):
        resolve_period(wh, start="2024-01-01", end="2024-01-31")


def test_read_table_reads_only_asked_columns_and_fills_missing_ones(outputs):
    df = read_table(outputs / "warehouse", "fct_orders", [date(2025, 3, 2)], ("order_key", "revenue", "no_such"))
    assert list(df.columns) == ["order_key", "revenue", "no_such"] and df["no_such"].isna().all()
    empty = read_table(outputs / "warehouse", "fct_orders", [date(2020, 1, 1)], ("order_key", "revenue"))
    assert empty.empty and list(empty.columns) == ["order_key", "revenue"]


def test_findings_are_read_per_day_with_severity(outputs):
    found = load_findings(outputs / "runs", [date(2025, 3, 1), date(2025, 3, 2)])
    assert {f["run_date"] for f in found} == {"2025-03-01", "2025-03-02"}
    assert {f["source"] for f in found} == {"data quality", "monitoring"}
    assert all(f["severity"] in ("info", "warn", "error", "pass") for f in found)


# --- figures ---------------------------------------------------------------------------------


def test_headline_kpis_by_hand():
    s = pd.DataFrame({"session_id": list("abcd"), "purchased": [True, False, False, True]})
    o = pd.DataFrame({"order_key": ["o1", "o2", "o3"], "revenue": [100.0, 300.0, 200.0]})
    h = kpis.headline(s, o)
    assert h == {
        "revenue": 600.0,
        "orders": 3,
        "aov": 200.0,
        "sessions": 4,
        "purchasing_sessions": 2,
        "conversion_rate": 0.5,
    }
    changes = kpis.with_changes(h, {**h, "revenue": 500.0, "conversion_rate": 0.4})
    assert changes["revenue"]["change_pct"] == pytest.approx(0.2)
    assert changes["conversion_rate"]["change"] == pytest.approx(0.1)
    assert kpis.with_changes(h, None)["orders"]["change"] is None
    assert math.isnan(kpis.headline(s.iloc[0:0], o.iloc[0:0])["aov"])


def test_figures_match_the_tables(outputs):
    period = resolve_period(outputs / "warehouse", period_days=7)
    data = load_period(outputs, period)
    fig = kpis.compute_figures(data, ReportParams(period_days=7))
    tables = build_tables(FixtureConfig(days=14, sessions_per_day=200))
    s, o = tables["fct_sessions"], tables["fct_orders"]
    in_p = s[(s["session_date"] >= period.start) & ~s["is_bot"]]
    orders_p = o[o["order_date"] >= period.start]
    assert fig.current["sessions"] == len(in_p)
    assert fig.current["orders"] == len(orders_p)
    assert fig.current["revenue"] == pytest.approx(orders_p["revenue"].sum())
    assert fig.current["conversion_rate"] == pytest.approx(in_p["purchased"].mean())
    prev = s[(s["session_date"] < period.start) & ~s["is_bot"]]
    assert fig.previous["sessions"] == len(prev)
    assert fig.kpis["sessions"]["change_pct"] == pytest.approx(len(in_p) / len(prev) - 1)
    # daily table sums to the headline; channel table totals to the sessions; every model to revenue
    assert fig.daily["revenue"].sum() == pytest.approx(fig.current["revenue"])
    assert fig.channels["sessions"].sum() == fig.current["sessions"]
    for m in fig.models:
        assert fig.channels[f"revenue_{m}"].sum() == pytest.approx(fig.current["revenue"], abs=0.05)
    # the funnel is nested and the AOV interval brackets the AOV
    f = fig.funnel
    assert (f["sessions"] >= f["viewed_product"]).all() and (f["started_checkout"] >= f["purchased"]).all()
    assert fig.aov.low < fig.current["aov"] < fig.aov.high
    assert fig.conversion_vs_previous is not None and fig.orders_vs_previous is not None


def test_product_mix_separates_orders_without_prices():
    orders = pd.DataFrame(
        {"order_key": ["a", "b", "c"], "revenue": [100.0, 50.0, 70.0], "has_missing_item_prices": [False, False, True]}
    )
    items = pd.DataFrame(
        {
            "order_key": ["a", "a", "b", "c"],
            "line_number": [1, 2, 1, 1],
            "item_id": ["X", "Y", "X", "Y"],
            "item_name": ["Mattress", "Pillow", "Mattress", "Pillow"],
            "item_variant": None,
            "quantity": [1.0, 2.0, 1.0, 1.0],
            "item_price": [80.0, 20.0, 50.0, None],
        }
    )
    mix = kpis.product_mix(items, orders, top=5)
    assert mix["orders_missing"] == 1 and mix["revenue_missing"] == 70.0
    assert mix["orders_priced"] == 2 and mix["share_missing"] == pytest.approx(70 / 220)
    assert mix["table"].loc["Mattress", "revenue"] == 130.0  # line totals, not quantity × price
    assert mix["table"].loc["Pillow", "quantity"] == 2.0
    assert mix["table"]["share"].sum() == pytest.approx(1.0)


def test_product_mix_names_a_single_leftover_product():
    """Four priced products: Mattress $500, Topper $200, Pillow $50, Sheet $30 ($780). With room for
    three, "Other (1 products)" would only rename Sheet: it keeps its row. With room for two, Pillow
    and Sheet fold into "Other (2 products)": $80, 80/780 of the revenue."""
    orders = pd.DataFrame(
        {"order_key": ["a", "b", "c", "d"], "revenue": [500.0, 200.0, 50.0, 30.0], "has_missing_item_prices": False}
    )
    items = pd.DataFrame(
        {
            "order_key": ["a", "b", "c", "d"],
            "line_number": 1,
            "item_id": ["M", "T", "P", "S"],
            "item_name": ["Mattress", "Topper", "Pillow", "Sheet"],
            "item_variant": None,
            "quantity": 1.0,
            "item_price": [500.0, 200.0, 50.0, 30.0],
        }
    )
    assert list(kpis.product_mix(items, orders, top=3)["table"].index) == ["Mattress", "Topper", "Pillow", "Sheet"]
    table = kpis.product_mix(items, orders, top=2)["table"]
    assert list(table.index) == ["Mattress", "Topper", "Other (2 products)"]
    assert table.loc["Other (2 products)", "revenue"] == 80.0
    assert table.loc["Other (2 products)", "share"] == pytest.approx(80 / 780)


def test_daily_keeps_days_without_data():
    days = [date(2025, 3, 1) + timedelta(days=i) for i in range(3)]
    s = pd.DataFrame({"session_id": ["a", "b"], "session_date": [days[0], days[2]], "purchased": [True, False]})
    o = pd.DataFrame({"order_key": ["o"], "order_date": [days[0]], "revenue": [10.0]})
    d = kpis.daily(s, o, days)
    assert list(d["sessions"]) == [1, 0, 1] and list(d["orders"]) == [1, 0, 0]
    assert math.isnan(d.loc[days[1], "conversion_rate"])


def test_id_collisions_count_only_the_later_order_of_each_id():
    """Worked out by hand: the transform flags *both* orders of an id used twice on one day (the
    second variant is known on that date), only the later one when they fall on different days.

    A, A#2 same day (both flagged)       -> 1 later order
    B day 1 (not flagged), B#2 day 2     -> 1
    C#2 (C's first order before the period) -> 1
    D alone                              -> 0
    E, E#2, E#3 same day (all flagged)   -> 2
    F, F#2 from a partition without transaction_variant: the flag is all there is -> 2
    Flags set: 2 + 1 + 1 + 0 + 3 + 2 = 9; orders sharing an id with an earlier one: 7.
    """
    orders = pd.DataFrame(
        {
            "order_key": ["A", "A#2", "B", "B#2", "C#2", "D", "E", "E#2", "E#3", "F", "F#2"],
            "transaction_variant": [1, 2, 1, 2, 2, 1, 1, 2, 3, None, None],
            "is_transaction_id_collision": [True, True, False, True, True, False, True, True, True, True, True],
        }
    )
    assert int(orders["is_transaction_id_collision"].sum()) == 9
    assert kpis.later_id_collisions(orders) == 7
    assert kpis.later_id_collisions(orders.iloc[:0]) == 0
