"""Airflow DAG for the Puffy daily pipeline: one task per day running ``puffy run --date {{ ds }}``.

Copy this file into the DAGs folder of an Airflow (2.4+ or 3) whose workers can reach the checkout
(``PUFFY_HOME``, with its ``.venv`` from ``make setup``). ``{{ ds }}`` is the run's logical date, the
start of its data interval: the run at 06:30 UTC on March 9 processes 2025-03-08, the day whose export
landed overnight. ``catchup=True`` with ``start_date`` backfills missed days one at a time
(``max_active_runs=1``: the pipeline allows one run per outputs directory).

Exit codes (README): 2 = the day's file has not landed (or a usage error), worth a retry later;
3 / 4 / 5 = the day was stopped or quarantined (the pipeline has alerted; a retry reproduces it).
The pipeline's own alert carries the details; Airflow marks the task failed on any non-zero code.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow import DAG

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

PUFFY_HOME = os.environ.get("PUFFY_HOME", "/srv/puffy")

with DAG(
    dag_id="puffy_daily",
    description="Puffy daily analytics pipeline: gate, transform, monitoring, publish",
    schedule="30 6 * * *",
    start_date=datetime(2025, 2, 24),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=30)},
    tags=["puffy"],
) as dag:
    BashOperator(
        task_id="puffy_run",
        bash_command="cd {{ params.puffy_home }} && .venv/bin/puffy run --date {{ ds }}",
        params={"puffy_home": PUFFY_HOME},
        # PUFFY_HOME makes the checkout the project root; PUFFY_ALERT_WEBHOOK_URL (the on-call
        # webhook) comes from the worker's environment or an Airflow Variable you map here.
        env={"PUFFY_HOME": PUFFY_HOME},
        append_env=True,
        execution_timeout=timedelta(hours=4),
    )
