"""Issue 21: `puffy transform` after `puffy dq` on the same input and rules reuses the gate's staged
events; a changed raw file, rules file or period makes it gate again, and it says why."""

import filecmp
import os
import shutil
from pathlib import Path

import pytest

from puffy.cli import main
from puffy.params import DEFAULT_PARAMS_DIR
from puffy.warehouse import partition_files

TABLES = ("fct_sessions", "fct_orders", "fct_attribution")


@pytest.fixture(scope="module")
def raw(small_sample, tmp_path_factory) -> Path:
    """A copy of three days of the small sample (the tests touch its files)."""
    out = tmp_path_factory.mktemp("reuse") / "raw"
    out.mkdir()
    for f in sorted(small_sample.glob("events_*.csv"))[:3]:
        shutil.copy2(f, out / f.name)
    return out


def _dq(raw: Path, out: Path, rules: Path = DEFAULT_PARAMS_DIR / "dq_rules.yaml") -> int:
    return main(["dq", "--input-dir", str(raw), "--rules", str(rules), "--output-dir", str(out)])


def _transform(raw: Path, out: Path, capsys) -> str:
    assert main(["transform", "--input-dir", str(raw), "--output-dir", str(out)]) == 0
    return capsys.readouterr().out


def test_transform_after_dq_reuses_its_gate_and_writes_the_same_tables(raw, tmp_path, capsys):
    fresh = tmp_path / "fresh"
    note = _transform(raw, fresh, capsys)
    assert "gated the input (no earlier `puffy dq` gate found)" in note

    shared = tmp_path / "shared"  # the README's two commands with one output directory
    assert _dq(raw, shared) == 0
    capsys.readouterr()
    note = _transform(raw, shared, capsys)
    assert f"reused the gate of {shared} (same 3 raw files and rules)" in note
    assert (shared / "dq" / "dq_report.md").is_file()  # the gate's report where transform puts it
    for table in TABLES:
        a, b = partition_files(fresh / "warehouse", table), partition_files(shared / "warehouse", table)
        assert [Path(x).parent.name for x in a] == [Path(x).parent.name for x in b] and a
        assert all(filecmp.cmp(x, y, shallow=False) for x, y in zip(a, b)), table
        assert filecmp.cmp(fresh / f"{table}.csv", shared / f"{table}.csv", shallow=False)

    nested = tmp_path / "nested"  # dq's reports in OUT/dq, where transform's own gate writes
    assert _dq(raw, nested / "dq") == 0
    capsys.readouterr()
    assert "reused the gate of" in _transform(raw, nested, capsys)


def test_a_changed_raw_file_or_rules_file_gates_again_and_says_which(raw, tmp_path, capsys):
    out = tmp_path / "out"
    assert _dq(raw, out) == 0
    first = sorted(raw.glob("events_*.csv"))[0]
    st = first.stat()
    os.utime(first, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched: it may have changed
    capsys.readouterr()
    assert f"gated the input (the gate in {out} was not reused: raw file {first.name} changed)" in _transform(
        raw, out, capsys
    )

    rules = tmp_path / "params" / "dq_rules.yaml"
    rules.parent.mkdir()
    rules.write_text((DEFAULT_PARAMS_DIR / "dq_rules.yaml").read_text() + "\n# edited\n")
    out2 = tmp_path / "out2"
    assert _dq(raw, out2, rules) == 0
    capsys.readouterr()
    assert "not reused: the rules file changed" in _transform(raw, out2, capsys)
