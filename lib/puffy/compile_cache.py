"""Compile each query's shape once per process: the daily transform builds the same Ibis
expressions every day, but for the day's dates and the names of the tables it reads.

Compiling an expression to SQL (Ibis' rewrites, then sqlglot) costs ~1.1 s of a real day's ~3 s
transform, every day of a backfill again, though only dates and table names change. So ``shape``
reads an expression's key with every date and timestamp literal and every table left out as a
numbered slot; ``template`` puts placeholders and unbound tables in their place. The compiled SQL
of a template (text, and the sqlglot tree ``create_table`` builds on) is kept and filled in with
each day's literals and tables. A shape seen for the first time is compiled as it is (a template
costs ~0.2 s more a day): a backfill's kernel compiles its shapes as they are on the first day, as
templates on the second, and fills them in from then on (0.09 s a real day instead of ~1.1 s); a
one-day run pays only for reading the shapes. The SQL is the SQL Ibis compiles for the expression
itself (compared on every query of a transform, day after day: ``tests/test_compile_cache.py``).

A scheduled run is one process a day, so its templates are also kept on disk (``TemplateStore``):
a shape met for the first time is looked up there, and compiled as a template and saved when it is
not (once per shape, per version of Ibis, sqlglot and this module). A year into the generated
data a daily transform compiles 44 shapes: ~1.2 s, against ~0.2 s to load them.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import sys
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datashape as ds
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import sqlglot as sg
import sqlglot.expressions as sge
from ibis.backends.duckdb import Backend as DuckDBBackend
from ibis.backends.sql.compilers.duckdb import DuckDBCompiler
from ibis.common.graph import Graph

#: Compiled templates kept per process (a day's transform compiles ~50 queries).
CACHE_SIZE = 256
_TABLE, _VALUE = "puffy_slot_table_", "puffy_slot_value_"
_SLOTS = re.compile(rf'"{_TABLE}(\d+)"|\${_VALUE}(\d+)')


class CompileSlot(ops.Value):
    """The ``slot``-th literal of a template (compiled to a placeholder)."""

    slot: int
    dtype: dt.DataType
    shape = ds.scalar


def _is_slot(node: ops.Node) -> bool:
    """A date or timestamp literal, or a table: what a template leaves out."""
    if isinstance(node, ops.Literal):
        return node.value is not None and (node.dtype.is_date() or node.dtype.is_timestamp())
    return isinstance(node, (ops.DatabaseTable, ops.InMemoryTable))


def shape(op: ops.Relation) -> tuple[tuple, list[ops.Node]]:
    """What the compiled SQL of ``op`` depends on but its slots (``_is_slot``), as a hashable key,
    and its slots in the order ``template`` numbers them.

    Every node in the order ``Node.replace`` visits them (``Graph.toposort``), its arguments with
    each node replaced by its position; a slot by its kind and type. Two expressions with the same
    key differ only in their slots' values: they have the same template."""
    graph, _ = Graph.from_bfs(op).toposort()
    position: dict[ops.Node, tuple] = {}
    slots: list[ops.Node] = []

    def arg(value):
        if isinstance(value, ops.Node):
            return position[value]
        if isinstance(value, tuple):
            return tuple(map(arg, value))
        if isinstance(value, Mapping):
            return tuple((k, arg(v)) for k, v in value.items())
        if isinstance(value, frozenset):  # in a stable order: the key is also written down (TemplateStore)
            return (frozenset, tuple(sorted(map(arg, value), key=repr)))
        return value

    parts = []
    for node in graph:
        if _is_slot(node):
            if isinstance(node, ops.Literal):
                parts.append(("literal", node.dtype))
            else:  # its namespace is compiled into the SQL
                parts.append(("table", node.schema, getattr(node, "namespace", None)))
            slots.append(node)
        else:
            parts.append((type(node), *map(arg, node.__args__)))
        position[node] = _NodeAt(len(position))
    return tuple(parts), slots


@dataclass(frozen=True)
class _NodeAt:
    """A node's position among a shape's arguments."""

    index: int


def template(op: ops.Relation, slots: list[ops.Node]) -> ops.Relation:
    """``op`` with each of ``slots`` (``shape``) replaced by its numbered stand-in: a date or
    timestamp literal by a ``CompileSlot``, a table by an unbound table of the same schema."""

    def stand_in(i: int, node: ops.Node) -> ops.Node:
        if isinstance(node, ops.Literal):
            return CompileSlot(i, node.dtype)
        return ops.UnboundTable(f"{_TABLE}{i}", node.schema, getattr(node, "namespace", ops.Namespace()))

    return op.replace({node: stand_in(i, node) for i, node in enumerate(slots)})


#: Most bytes of templates a store keeps, across its version directories; the least recently used
#: go first. A day's transform is ~2.3 MB, and each new length of a list of dates is a new shape.
STORE_MAX_BYTES = 256 * 2**20


class TemplateStore:
    """Compiled templates on disk, one file per shape: ``<root>/<versions>/<sha256 of the shape>.pickle``.

    ``<versions>`` names the Ibis, sqlglot and Python versions and this module's own digest, so a
    template is only ever filled in by the code that compiled it. A shape's key is written as its
    ``repr`` (types, dtypes, schemas, names and values, with frozensets in sorted order, and node
    positions: ``_NodeAt``), which is the same in every process. Reading and writing are best
    effort: a file that is missing, unreadable or not this user's is a miss, a failed write is
    skipped, and a file appears whole (written under a temporary name, then renamed). A save
    trims the store to ``STORE_MAX_BYTES``, least recently used first. Its directory is created
    readable by its owner only, and only files the current user owns are unpickled.
    """

    def __init__(self, root: Path) -> None:
        code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
        versions = (
            f"ibis-{ibis.__version__}_sqlglot-{sg.__version__}_py{sys.version_info[0]}{sys.version_info[1]}_{code}"
        )
        self.dir = Path(root) / versions

    @classmethod
    def from_environment(cls) -> TemplateStore | None:
        """``$PUFFY_COMPILE_CACHE`` (a directory, or ``off``), else ``$XDG_CACHE_HOME/puffy/compile``
        (``~/.cache/puffy/compile``)."""
        chosen = os.environ.get("PUFFY_COMPILE_CACHE")
        if chosen is not None and chosen.strip().lower() in ("", "off", "0", "false", "no"):
            return None
        if chosen:
            return cls(Path(chosen).expanduser())
        cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return cls(Path(cache_home) / "puffy" / "compile")

    def _path(self, key) -> Path:
        return self.dir / f"{hashlib.sha256(repr(key).encode()).hexdigest()}.pickle"

    def load(self, key) -> sge.Expression | None:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_uid != os.getuid():
                    return None
                tree = pickle.load(f)
            os.utime(path)  # used: the last to go when the store is trimmed
        except Exception:  # a cache: whatever went wrong, compile instead
            return None
        return tree if isinstance(tree, sge.Expression) else None

    def save(self, key, tree: sge.Expression) -> None:
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(tmp, "wb") as f:
                pickle.dump(tree, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
            self._trim()
        except Exception:  # a full disk or a read-only home must not fail a run
            tmp.unlink(missing_ok=True)

    def _trim(self) -> None:
        """Remove the least recently used templates (of every version) above ``STORE_MAX_BYTES``."""
        files = []
        for f in self.dir.parent.glob("*/*.pickle"):
            try:
                stat = f.stat()
            except OSError:  # removed by another process meanwhile
                continue
            files.append((stat.st_mtime, stat.st_size, f))
        excess = sum(size for _, size, _ in files) - STORE_MAX_BYTES
        for _, size, f in sorted(files, key=lambda x: x[0]):
            if excess <= 0:
                break
            f.unlink(missing_ok=True)
            excess -= size


class CachingDuckDBCompiler(DuckDBCompiler):
    """Ibis' DuckDB compiler, compiling each template once (see the module docstring); with a
    ``store``, once per shape across processes."""

    def __init__(self, store: TemplateStore | None = None):
        super().__init__()
        self.store = store
        # shape -> None (seen once) or [compiled template tree, its SQL text once asked for]
        self._compiled: OrderedDict[Any, list | None] = OrderedDict()

    def visit_CompileSlot(self, op, *, slot, dtype):
        return sge.Placeholder(this=f"{_VALUE}{slot}")

    def to_sqlglot(self, expr, *, limit=None, params=None):
        if limit is not None or params:
            return super().to_sqlglot(expr, limit=limit, params=params)
        entry, slots = self._entry(expr)
        if entry is None:
            return super().to_sqlglot(expr)
        filled = self._filled(slots)

        def fill(node: sge.Expression) -> sge.Expression:
            if isinstance(node, sge.Placeholder) and node.name.startswith(_VALUE):
                return filled[int(node.name[len(_VALUE) :])].copy()  # a slot may occur twice
            if isinstance(node, sge.Table) and node.name.startswith(_TABLE):
                name = filled[int(node.name[len(_TABLE) :])]
                node = node.copy()  # its namespace and alias stay
                node.set("this", name.copy())
            return node

        return entry[0].transform(fill)  # a copy: the template stays as compiled

    def to_sql(self, expr) -> str:
        """``expr`` compiled to DuckDB's SQL text (what ``Backend.compile`` returns for it)."""
        entry, slots = self._entry(expr)
        if entry is None:
            return super().to_sqlglot(expr).sql(dialect=self.dialect, unsupported_level=sg.ErrorLevel.RAISE)
        if entry[1] is None:
            entry[1] = entry[0].sql(dialect=self.dialect, unsupported_level=sg.ErrorLevel.RAISE)
        filled = [node.sql(dialect=self.dialect) for node in self._filled(slots)]
        return _SLOTS.sub(lambda m: filled[int(m[1] or m[2])], entry[1])

    def _entry(self, expr) -> tuple[list | None, list[ops.Node]]:
        """The compiled template of ``expr``'s shape and its slots; None the first time the shape
        is seen without a store (a shape compiled once is compiled as it is: building its template
        costs more), and with one when the store has not got it either."""
        op = expr.as_table().op()
        key, slots = shape(op)
        key = (key, ibis.options.sql.fuse_selects)
        if key not in self._compiled:
            tree = None
            if self.store is not None:
                tree = self.store.load(key)
                if tree is None:
                    self.store.save(key, tree := self._template(op, slots))
            self._compiled[key] = None if tree is None else [tree, None]
            if len(self._compiled) > CACHE_SIZE:
                self._compiled.popitem(last=False)
            if tree is None:
                return None, slots
        entry = self._compiled[key]
        if entry is None:
            entry = self._compiled[key] = [self._template(op, slots), None]
        self._compiled.move_to_end(key)
        return entry, slots

    def _template(self, op: ops.Relation, slots: list[ops.Node]) -> sge.Expression:
        return super().to_sqlglot(template(op, slots).to_expr())

    def _filled(self, slots: list[ops.Node]) -> list[sge.Expression]:
        """What each slot compiles to: a literal's SQL, a table's name."""
        return [
            self.visit_Literal(s, value=s.value, dtype=s.dtype)
            if isinstance(s, ops.Literal)
            else sg.to_identifier(s.name, quoted=self.quoted)
            for s in slots
        ]


#: One per process: its templates serve every connection (a backfill's days each open their own).
compiler = CachingDuckDBCompiler(TemplateStore.from_environment())


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
