"""Compile each query's shape once per process: the daily transform builds the same Ibis
expressions every day, but for the day's dates and the names of the tables it reads.

Compiling an expression to SQL (Ibis' rewrites, then sqlglot) costs ~1.1 s of a real day's ~3 s
transform, every day of a backfill again, though only dates and table names change. So
``template`` replaces every date and timestamp literal with a numbered placeholder and every table
with a numbered unbound one; an expression of the same shape on another day has the same template,
whose compiled SQL (text, and the sqlglot tree ``create_table`` builds on) is kept, then filled in
with that day's literals and tables. A backfill's kernel compiles each shape once; the first day, or
a one-day run, pays ~0.2 s for the templates. The SQL is the SQL Ibis compiles for the expression
itself (compared on every query of a real day: ``tests/test_compile_cache.py``).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

import ibis
import ibis.expr.datashape as ds
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import sqlglot as sg
import sqlglot.expressions as sge
from ibis.backends.duckdb import Backend as DuckDBBackend
from ibis.backends.sql.compilers.duckdb import DuckDBCompiler

#: Compiled templates kept per process (a day's transform compiles ~50 queries).
CACHE_SIZE = 256
_TABLE, _VALUE = "puffy_slot_table_", "puffy_slot_value_"
_SLOTS = re.compile(rf'"{_TABLE}(\d+)"|\${_VALUE}(\d+)')


class CompileSlot(ops.Value):
    """The ``slot``-th literal of a template (compiled to a placeholder)."""

    slot: int
    dtype: dt.DataType
    shape = ds.scalar


def template(op: ops.Relation) -> tuple[ops.Relation, list[ops.Literal], list[ops.PhysicalTable]]:
    """``op`` with its date and timestamp literals and its tables replaced by numbered slots, and
    what each slot stands for (in slot order)."""
    literals: dict[ops.Literal, CompileSlot] = {}
    tables: dict[ops.PhysicalTable, ops.UnboundTable] = {}

    def replace(node, kwargs):  # kwargs: the node's rewritten arguments, None when none changed
        if isinstance(node, ops.Literal):
            if node.value is None or not (node.dtype.is_date() or node.dtype.is_timestamp()):
                return node
            if node not in literals:
                literals[node] = CompileSlot(len(literals), node.dtype)
            return literals[node]
        if isinstance(node, (ops.DatabaseTable, ops.InMemoryTable)):
            if node not in tables:
                namespace = getattr(node, "namespace", ops.Namespace())
                tables[node] = ops.UnboundTable(f"{_TABLE}{len(tables)}", node.schema, namespace)
            return tables[node]
        return node.__recreate__(kwargs) if kwargs else node

    return op.replace(replace), list(literals), list(tables)


class CachingDuckDBCompiler(DuckDBCompiler):
    """Ibis' DuckDB compiler, compiling each template once (see the module docstring)."""

    def __init__(self):
        super().__init__()
        self._compiled: OrderedDict[Any, list] = OrderedDict()  # template -> [tree, SQL text or None]

    def visit_CompileSlot(self, op, *, slot, dtype):
        return sge.Placeholder(this=f"{_VALUE}{slot}")

    def to_sqlglot(self, expr, *, limit=None, params=None):
        if limit is not None or params:
            return super().to_sqlglot(expr, limit=limit, params=params)
        entry, literals, tables = self._entry(expr)
        values = {f"{_VALUE}{i}": self._literal(lit) for i, lit in enumerate(literals)}
        names = {f"{_TABLE}{i}": t.name for i, t in enumerate(tables)}

        def fill(node: sge.Expression) -> sge.Expression:
            if isinstance(node, sge.Placeholder) and node.name in values:
                return values[node.name]
            if isinstance(node, sge.Table) and node.name in names:
                node = node.copy()  # its namespace and alias stay
                node.set("this", sg.to_identifier(names[node.name], quoted=self.quoted))
            return node

        return entry[0].transform(fill)  # a copy: the template stays as compiled

    def to_sql(self, expr) -> str:
        """``expr`` compiled to DuckDB's SQL text (what ``Backend.compile`` returns for it)."""
        entry, literals, tables = self._entry(expr)
        if entry[1] is None:
            entry[1] = entry[0].sql(dialect=self.dialect, unsupported_level=sg.ErrorLevel.RAISE)
        values = [self._literal(lit).sql(dialect=self.dialect) for lit in literals]
        names = [sg.to_identifier(t.name, quoted=self.quoted).sql(dialect=self.dialect) for t in tables]
        return _SLOTS.sub(lambda m: names[int(m[1])] if m[1] is not None else values[int(m[2])], entry[1])

    def _entry(self, expr) -> tuple[list, list[ops.Literal], list[ops.PhysicalTable]]:
        shape, literals, tables = template(expr.as_table().op())
        key = (shape, ibis.options.sql.fuse_selects)
        entry = self._compiled.get(key)
        if entry is None:
            entry = self._compiled[key] = [super().to_sqlglot(shape.to_expr()), None]
            if len(self._compiled) > CACHE_SIZE:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        return entry, literals, tables

    def _literal(self, lit: ops.Literal) -> sge.Expression:
        return self.visit_Literal(lit, value=lit.value, dtype=lit.dtype)


#: One per process: its templates serve every connection (a backfill's days each open their own).
compiler = CachingDuckDBCompiler()


class CachingDuckDBBackend(DuckDBBackend):
    """Ibis' DuckDB backend, compiling through ``compiler``."""

    compiler = compiler

    def compile(self, expr, /, *, limit=None, params=None, pretty=False, **kwargs) -> str:
        if limit == "default":
            limit = ibis.options.sql.default_limit
        if limit is not None or params or pretty or kwargs:
            return super().compile(expr, limit=limit, params=params, pretty=pretty, **kwargs)
        sql = self.compiler.to_sql(expr)
        self._log(sql)
        return sql
