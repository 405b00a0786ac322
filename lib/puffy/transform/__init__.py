"""Part 2 of the pipeline: staged events → sessions, orders, attribution (see ``docs/methodology.md``).

Modules: ``params`` (TransformParams), ``sessions`` (fct_sessions), ``orders`` (fct_orders,
fct_order_items, fct_order_rejects), ``identity`` (client → person stitching), ``reconcile``
(rpt_reconciliation), ``pipeline`` (``run_transform`` / ``export_csv``: dates, history, writes) and
``stage`` (``run``, the stage entry of ``puffy.stage``).
"""

from puffy.lazy import lazy_exports

__getattr__ = lazy_exports(
    __name__,
    {
        "TransformParams": "puffy.transform.params",
        "load_transform_params": "puffy.transform.params",
        **dict.fromkeys(
            ["TABLES", "TransformResult", "export_csv", "read_partitions", "run_transform"], "puffy.transform.pipeline"
        ),
        "run": "puffy.transform.stage",
    },
)

__all__ = [
    "TABLES",
    "TransformParams",
    "TransformResult",
    "export_csv",
    "load_transform_params",
    "read_partitions",
    "run",
    "run_transform",
]
