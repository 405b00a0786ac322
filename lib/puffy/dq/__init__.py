"""Part 1: the data-quality gate over the raw daily exports.

* ``rules``  — ``params/dq_rules.yaml`` as pydantic models (thresholds, the raw contract).
* ``checks`` — the checks: SQL aggregations over the staging tables, one ``Finding`` per id.
* ``report`` — ``dq_report.json`` / ``dq_report.md`` and the generated narrative.
* ``gate``   — ``run_gate``: ingest → checks → reports → staging partitions.
* ``stage``  — ``run``, the stage entry (``puffy.stage``): the gate over a layout and period.
"""

from puffy.lazy import lazy_exports

__getattr__ = lazy_exports(
    __name__,
    {
        "Finding": "puffy.findings",
        "GateResult": "puffy.dq.gate",
        "run_gate": "puffy.dq.gate",
        "run": "puffy.dq.stage",
    },
)

__all__ = ["Finding", "GateResult", "run", "run_gate"]
