#!/usr/bin/env bash
# Runs real Spark (the oracle harness vendored in harness/, pyspark in /opt/oracle-venv, made by
# harness/setup.sh) on the project's own golden cases and rewrites their expected.jsonl:
#   ./regenerate.sh                       # every case the shared oracle does not have
#   ./regenerate.sh cases/NAME ...        # these cases
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${FLOWGATE_SHARED_ORACLE:-"$here/../../../shared/oracle"}
"$here/harness/setup.sh" >/dev/null
py="${ORACLE_VENV:-/opt/oracle-venv}/bin/python"
if [ "$#" -eq 0 ]; then
  set --
  for case in "$here"/cases/*/; do
    name=$(basename "$case")
    [ -d "$shared/cases/$name" ] || set -- "$@" "$case"
  done
fi
cases=()
for c in "$@"; do cases+=("$(cd "$c" && pwd)"); done
cd "$here/harness"
SPARK_CONF_DIR="$here/harness/conf" exec "$py" run_case.py "${cases[@]}"
