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

# Every package's tests, then one closing line with the totals. Everything is built once first; then the
# Grafana app's suites (jsdom and Chromium, CPU-bound, sharing nothing with the others) run beside the SDK's
# and the examples' suites (one after the other: they share PostgreSQL and Redis, and mostly wait on them),
# which keeps the whole command inside its 30 minutes on two cores.
pnpm build
log="$(mktemp)"
grafana_log="$(mktemp)"
grafana=""
cleanup() {
  [ -n "$grafana" ] && kill "$grafana" 2>/dev/null
  rm -f "$log" "$grafana_log"
}
trap cleanup EXIT
set +e
timeout --kill-after=30 1800 pnpm --filter aiwebtest-runbooks-app test > "$grafana_log" 2>&1 &
grafana=$!
# Both suites run even when the first fails, so the totals count every test.
(
  pnpm --filter @aiwebtest/runbooks test
  sdk=$?
  pnpm --filter @aiwebtest/runbook-examples test
  examples=$?
  [ "$sdk" -ne 0 ] && exit "$sdk"
  exit "$examples"
) 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
wait "$grafana"
grafana_status=$?
grafana=""
set -e
echo "---- aiwebtest-runbooks-app (ran beside the others) ----"
cat "$grafana_log"
[ "$grafana_status" -eq 124 ] && echo "aiwebtest-runbooks-app: its tests did not finish within 30 minutes"
cat "$grafana_log" >> "$log"
[ "$status" -eq 0 ] && status=$grafana_status
sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '
  / Tests +[0-9]/ { for (i = 1; i < NF; i++) { if ($(i + 1) == "passed") p += $i; if ($(i + 1) == "failed") f += $i } }
  END { printf "%d passed, %d failed\n", p, f }'
exit "$status"
