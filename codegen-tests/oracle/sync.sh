#!/usr/bin/env bash
# Refreshes the vendored copy of the Spark golden cases from ../shared/oracle (regenerated
# cases stay authoritative: never edit expected.jsonl by hand).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${1:-"$here/../../../shared/oracle"}
rm -rf "$here/cases"
cp -r "$src/cases" "$here/cases"
cp "$src/README.md" "$here/README.md"
echo "synced $(ls "$here/cases" | wc -l) cases from $src"
