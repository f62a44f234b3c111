#!/usr/bin/env bash
# Sets up everything and runs every check CI runs: lint, type checks, and all test suites
# (unit, store contract on PGlite and PostgreSQL, crash and multi-process tests, CLI, examples, Grafana app).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/services.sh"
source "$here/toolchain.sh"
cd "$repo_root"
pnpm install --frozen-lockfile
pnpm lint
pnpm typecheck
pnpm --filter @aiwebtest/runbooks docs:api

# Every package's vitest run, then one closing line with the totals.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
pnpm test 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '
  / Tests +[0-9]/ { for (i = 1; i < NF; i++) { if ($(i + 1) == "passed") p += $i; if ($(i + 1) == "failed") f += $i } }
  END { printf "%d passed, %d failed\n", p, f }'
exit "$status"
