#!/usr/bin/env bash
# Install Apache Spark (pyspark from PyPI) for the side-by-side benchmark, into a virtualenv.
# Idempotent: does nothing if the venv already imports pyspark. Needs python3 with venv, Java 17
# on PATH and access to PyPI. Prints the venv's python on its last line.
#
#   benches/spark/install.sh            # venv at $FLOWGATE_SPARK_VENV or ~/.cache/flowgate/spark-venv
set -euo pipefail
VENV="${FLOWGATE_SPARK_VENV:-$HOME/.cache/flowgate/spark-venv}"
PYSPARK_SPEC="${PYSPARK_SPEC:-pyspark==4.3.0}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import pyspark, matplotlib' >/dev/null 2>&1; then
  echo "$VENV/bin/python"
  exit 0
fi
command -v java >/dev/null || { echo "java not found: Spark needs Java 17 on PATH" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 1; }
mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install -q --upgrade pip >&2
# matplotlib draws the comparison chart (PNG).
"$VENV/bin/pip" install -q "$PYSPARK_SPEC" matplotlib >&2
"$VENV/bin/python" -c 'import pyspark; import sys; print("installed pyspark", pyspark.__version__, file=sys.stderr)'
echo "$VENV/bin/python"
