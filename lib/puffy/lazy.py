"""Package attributes imported on first use (PEP 562).

A stage package (``puffy.dq``, ``puffy.transform``, ``puffy.monitoring``) re-exports its entry
points, which import Ibis, DuckDB, SciPy and more. Importing one of its small modules — the params
models that ``puffy run`` validates before it starts, say ``puffy.monitoring.rules`` — runs the
package's ``__init__`` first; with eager re-exports that cost ~2 CPU-s a command before any work.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` (a module path) on
    the first access of ``name`` and returns that module's ``name``."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value  # later accesses are plain attribute lookups
        return value

    return __getattr__
