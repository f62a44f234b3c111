#!/usr/bin/env bash
# The main job, end to end on a fresh machine: install, build, then take the agent-failure runbook of the
# AI-Web-Test pack through diagnose → plan → run against the local lab, on the embedded store under .runbook/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/toolchain.sh"
cd "$repo_root"
pnpm install --frozen-lockfile
pnpm build

# A fresh store and lab each time, so the demo can be run again and again (a kept store would, rightly,
# refuse a fourth restart of the same agent within the hour: that is the remediation budget at work).
export RUNBOOK_DATA_DIR="$repo_root/.runbook/demo/store"
export AIWEBTEST_LAB_DIR="$repo_root/.runbook/demo/lab"
rm -rf "$repo_root/.runbook/demo"
export RUNBOOK_MODULES="$repo_root/packages/examples/dist/index.js"
runbook() { node "$repo_root/packages/sdk/dist/cli/main.js" "$@"; }
lab() { node "$repo_root/packages/examples/dist/lab/cli.js" "$@"; }
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say "aiwebtest-lab break requirements-agent --fault crash-loop-after-oom"
lab break requirements-agent --fault crash-loop-after-oom
say "runbook list"
runbook list
say "runbook diagnose agent-failure --input agent=requirements-agent"
runbook diagnose agent-failure --input agent=requirements-agent || true
say "runbook plan agent-failure --input agent=requirements-agent"
runbook plan agent-failure --input agent=requirements-agent
say "runbook run agent-failure --input agent=requirements-agent --yes"
runbook run agent-failure --input agent=requirements-agent --yes
say "aiwebtest-lab status"
lab status
say "runbook runs"
runbook runs
say "runbook audit verify"
runbook audit verify
printf '\nThe demo store is in .runbook/demo/store; look around with e.g.\n  RUNBOOK_DATA_DIR=.runbook/demo/store pnpm runbook runs\n'
