"""
Airflow DAG: run a sync through the API of `ebb serve`, and wait for the run to end.

    trigger_sync  >>  wait_for_run

`trigger_sync` POSTs to /api/v1/syncs/<sync>/runs (trigger `airflow`) and pushes the run_id to
XCom; `wait_for_run` polls GET /api/v1/runs/<run_id> until the run has ended, and fails the task
when the run failed. No ebb on the Airflow worker: only HTTP to the server (`ebb serve`, see the
README, "Sync Manager"). The CLI way, with `ebb run` on the worker, is ebb_dag.py.

The connection `ebb` (Admin > Connections, or AIRFLOW_CONN_EBB) is an HTTP connection to the
server, with the token in its extra as a header:

    AIRFLOW_CONN_EBB='{"conn_type": "http", "host": "ebb.internal", "port": 8740, "schema": "http",
                       "extra": {"Authorization": "Bearer <EBB_SERVER_TOKEN>"}}'

What the API answers (README, "REST API"):

    202  the run started: {"run_id": ..., "url": "/api/v1/runs/<run_id>"}
    409  refused: `type` urn:ebb:problem:run-in-progress (the sync is already running: the task
         fails, and its retries try again later) or urn:ebb:problem:run-refused (`reason`:
         paused, a guard such as empty_source or destructive_change: fix it, retrying does not help)
    404  no such sync; 422 a bad request; 401 a missing or wrong token

A run ends HEALTHY (all applied), DELAYED (the rest goes first in the next run: nothing failed),
INCOMPLETE (some records failed; they are sent again in every later run) or FAILED. Here
HEALTHY and DELAYED succeed, FAILED fails the task, and INCOMPLETE fails it too unless
ALLOW_INCOMPLETE is set: choose as ebb_dag.py explains for exit code 2.

Written for Airflow 2.6+ and Airflow 3, with apache-airflow-providers-http 4.8+ (HttpOperator).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from airflow.exceptions import AirflowFailException
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.sensors.http import HttpSensor

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

SYNC = "customers_to_crm"
ALLOW_INCOMPLETE = False

# The requests. test/server.test.ts makes the requests of the lines marked `# tested` against a
# real `ebb serve`, so that they stay in step with the API.
TRIGGER_ENDPOINT = f"/api/v1/syncs/{SYNC}/runs"  # tested
TRIGGER_BODY = json.dumps({"trigger": "airflow"})  # tested
RUN_ENDPOINT = "/api/v1/runs/{{ ti.xcom_pull(task_ids='trigger_sync') }}"  # tested
ENDED = ("HEALTHY", "DELAYED", "INCOMPLETE", "FAILED", "CANCELLED")  # tested


def run_has_ended(response) -> bool:
    """True once the run has ended well; raises (no retry) when it ended badly."""
    run = response.json()
    if run["status"] not in ENDED:
        return False
    if run["status"] == "FAILED" or (run["status"] == "INCOMPLETE" and not ALLOW_INCOMPLETE):
        raise AirflowFailException(f"ebb run {run['run_id']} of {run['sync_name']} ended {run['status']}: {run.get('error') or run}")
    return True


with DAG(
    dag_id="ebb_api_run",
    schedule="0 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["ebb"],
) as dag:
    trigger_sync = HttpOperator(
        task_id="trigger_sync",
        http_conn_id="ebb",
        method="POST",
        endpoint=TRIGGER_ENDPOINT,
        data=TRIGGER_BODY,
        headers={"Content-Type": "application/json"},
        # Anything but 202 fails the task, with the problem+json body in the log.
        response_check=lambda response: response.status_code == 202,
        response_filter=lambda response: response.json()["run_id"],
    )

    wait_for_run = HttpSensor(
        task_id="wait_for_run",
        http_conn_id="ebb",
        method="GET",
        endpoint=RUN_ENDPOINT,
        response_check=run_has_ended,
        poke_interval=15,
        timeout=6 * 60 * 60,
        mode="reschedule",
    )

    trigger_sync >> wait_for_run
