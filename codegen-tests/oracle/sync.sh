#!/usr/bin/env bash
# Refreshes the vendored copy of the Spark golden cases from ../shared/oracle (regenerated
# cases stay authoritative: never edit expected.jsonl by hand). Cases the project wrote itself
# (those not in the shared directory, regenerated with `regenerate.sh`) are kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${1:-"$here/../../../shared/oracle"}
n=0
for case in "$src"/cases/*/; do
  name=$(basename "$case")
  rm -rf "$here/cases/$name"
  cp -r "$case" "$here/cases/$name"
  n=$((n + 1))
done
cp "$src/README.md" "$here/README.md"
echo "synced $n cases from $src; $(ls "$here/cases" | wc -l) cases in all"
