#!/usr/bin/env bash
# Breaking-change check of the data contracts (src/metadata/contracts) of this pull request
# against its base branch. Run by .github/workflows/pr.yml after `bash .ci/setup`:
#   bash .ci/contracts-check.sh origin/main
# Exits 1 listing each breaking change (dataset, column, reason) unless the contract's
# major version was bumped; non-breaking changes are listed as information.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: bash .ci/contracts-check.sh <base-ref>}
if [[ ! -x .venv/bin/lakeline ]]; then
  bash .ci/setup
fi
exec .venv/bin/lakeline contracts-check --base "$base"
