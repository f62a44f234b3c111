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
pnpm test
