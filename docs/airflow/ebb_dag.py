"""
Airflow DAG: build the dbt models, then send them to the apps with ebb.

    dbt_build  >>  ebb_run

`ebb run --dbt-models customers,orders` runs every deployed sync whose source is one of these dbt
models (`source: { dbt_model: customers }` in ebb.yml). A model without syncs is not an error:
the task exits 0 and says so on stderr.

ebb's exit codes (docs/json-contract.md):

    0  healthy: every record that needed action was applied (also DELAYED: nothing failed,
       the rest goes first in the next run)
    1  failed: a run failed, or was refused (a sync is already running, the empty-source guard)
    2  incomplete: some records failed (the app refused them, or the source has null or
       duplicate keys); they are sent again in every later run until they succeed
    3  invalid config or usage: ebb.yml, the dbt manifest or the command line is wrong;
       nothing was sent, and retrying does not help

BashOperator fails the task on any non-zero exit code except `skip_on_exit_code`. How to treat 2
is your choice:
  - as here, `skip_on_exit_code=2`: the task shows as *skipped* (not failed, not green), the DAG
    run does not fail, and downstream tasks with the default trigger rule are skipped too (give
    them `trigger_rule="none_failed"` to run anyway);
  - as a failure (alerts, retries): drop `skip_on_exit_code`;
  - as a success: append ` || [ $? -eq 2 ]` to the command.
The JSON result (run_id, status, health, counts, duration_ms, error per sync) is in the task log.
BashOperator would push only the last line of stdout (`}`) to XCom, so `do_xcom_push` is off; to
get the whole result into XCom, pipe it through `jq -c .` with `set -o pipefail`.

Requirements on the worker: `dbt` (with its profile) and `ebb` on PATH
(`npm install -g <path to ebb>`, or replace `ebb` with `npx --prefix /opt/ebb ebb`).
Written for Airflow 2.6+ (`skip_on_exit_code`) and Airflow 3.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.bash import BashOperator

# Where the projects are on the worker. The commands read them from the environment.
ENV = {
    "DBT_PROJECT_DIR": os.environ.get("DBT_PROJECT_DIR", "/opt/airflow/dbt/jaffle_shop"),
    "EBB_PROJECT_DIR": os.environ.get("EBB_PROJECT_DIR", "/opt/airflow/ebb"),
}

# The tasks' shell commands. test/dbt.test.ts runs the lines marked `# tested` against a demo
# project (with a stand-in for dbt), so that they stay in step with ebb's CLI.
DBT_BUILD = 'dbt build --project-dir "$DBT_PROJECT_DIR" --select customers orders'  # tested
EBB_RUN = 'ebb run --dbt-models customers,orders --trigger airflow --json --project-dir "$EBB_PROJECT_DIR" --dbt-manifest "$DBT_PROJECT_DIR/target/manifest.json"'  # tested

with DAG(
    dag_id="dbt_then_ebb",
    schedule="0 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # ebb refuses a second run of a sync while one is going (exit 1); one DAG run at a time avoids it.
    max_active_runs=1,
    # Retries help with exit 1 (a transient app or warehouse problem, a sync still running).
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["dbt", "ebb"],
) as dag:
    dbt_build = BashOperator(
        task_id="dbt_build",
        bash_command=DBT_BUILD,
        env=ENV,
        append_env=True,
    )

    ebb_run = BashOperator(
        task_id="ebb_run",
        bash_command=EBB_RUN,
        env=ENV,
        append_env=True,
        skip_on_exit_code=2,  # incomplete: skipped, not failed (see above)
        do_xcom_push=False,
    )

    dbt_build >> ebb_run
