#!/usr/bin/env bash
# Build with dbt, then run the ebb syncs that read the models this build produced.
#
#   DBT_PROJECT_DIR=path/to/dbt EBB_PROJECT_DIR=path/to/ebb ./run_after_dbt.sh [dbt build options]
#   e.g.  ./run_after_dbt.sh --select customers+
#
# dbt cannot run shell commands from its hooks, so this wrapper (or an orchestrator, see
# ../airflow/ebb_dag.py) is where ebb runs "after dbt". Exit code: dbt's when the build fails
# (ebb sends nothing then), else ebb's: 0 healthy, 1 failed, 2 incomplete, 3 invalid.
# test/dbt.test.ts runs this script against a demo project with a stand-in for dbt.
set -euo pipefail

DBT_PROJECT_DIR="${DBT_PROJECT_DIR:-.}"
EBB_PROJECT_DIR="${EBB_PROJECT_DIR:-.}"
TARGET_DIR="$DBT_PROJECT_DIR/target"   # dbt's target-path; change it if yours differs

dbt build --project-dir "$DBT_PROJECT_DIR" "$@"

# The models built successfully, as dbt unique_ids (model.<package>.<name>[.v<version>]), comma
# separated, from dbt's run_results.json. Python is there wherever dbt is (jq works as well:
# jq -r '[.results[] | select(.status == "success") | .unique_id | select(startswith("model."))] | join(",")').
MODELS="$(python3 -c '
import json, sys
results = json.load(open(sys.argv[1]))["results"]
print(",".join(r["unique_id"] for r in results if r["unique_id"].startswith("model.") and r["status"] == "success"))
' "$TARGET_DIR/run_results.json")"

# No sync reading these models (or no model built) is not an error: ebb exits 0 with a note.
exec ebb run --dbt-models "$MODELS" --trigger dbt --json --project-dir "$EBB_PROJECT_DIR" --dbt-manifest "$TARGET_DIR/manifest.json"
