"""Daily monitoring: the *audit* step of write–audit–publish.

``run`` (the stage entry, ``puffy.stage``) reads the tables a run has just built (the audited
warehouse), compares the run date with the published history, writes ``monitoring_report.md`` /
``.json`` and returns the overall status: ``pass``, ``warn`` (publish, but look) or ``error`` (the
runner quarantines the staged partitions instead of publishing them).

Modules: ``stage`` (``run``), ``audit`` (``run_monitoring``: inputs, monitors, incidents, reports),
``rules`` (the YAML as pydantic models), ``metrics`` (daily metric history from the partitions),
``stats`` (z-scores, PSI, chi-square), ``monitors`` (the checks, pure functions), ``report`` (md /
json), ``alert`` (the daily run's on-call alert, sent by the runner for the whole day, not from
here). What each finding means and what to do about it: ``docs/monitoring.md``.
"""

from puffy.lazy import lazy_exports

__getattr__ = lazy_exports(
    __name__,
    {
        "Finding": "puffy.findings",
        "MonitoringResult": "puffy.monitoring.audit",
        "run_monitoring": "puffy.monitoring.audit",
        "MonitoringRules": "puffy.monitoring.rules",
        "load_rules": "puffy.monitoring.rules",
        "run": "puffy.monitoring.stage",
    },
)

__all__ = ["Finding", "MonitoringResult", "MonitoringRules", "load_rules", "run", "run_monitoring"]
