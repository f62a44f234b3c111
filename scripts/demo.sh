#!/usr/bin/env bash
# The main job, end to end on a fresh machine: install, build, then take the agent-failure runbook of the
# AI-Web-Test pack through diagnose → plan → run against the local lab, on the embedded store under .runbook/,
# and finally serve the same runbooks and store over HTTP (`runbook serve`) until Ctrl-C.
# RUNBOOK_DEMO_PORT picks its port (default 8080); RUNBOOK_DEMO_NO_SERVE=1 stops after the CLI part.
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
[ "${RUNBOOK_DEMO_NO_SERVE:-}" = 1 ] && exit 0

# The service. Its token is made here and kept in a file only the user can read; it is never printed, and
# the service itself is given only the token's SHA-256.
demo="$repo_root/.runbook/demo"
port="${RUNBOOK_DEMO_PORT:-8080}"
(umask 077 && node -e "process.stdout.write(require('node:crypto').randomBytes(24).toString('base64url'))" >"$demo/token")
sha=$(sha256sum <"$demo/token" | cut -d' ' -f1)
printf '{ "tokens": [{ "name": "demo-admin", "sha256": "%s", "role": "admin" }] }\n' "$sha" >"$demo/tokens.json"
say "aiwebtest-lab break requirements-agent --fault crash-loop-after-oom"
lab break requirements-agent --fault crash-loop-after-oom
cat <<EOF

The runbook service starts below on http://127.0.0.1:$port with the same runbooks and store; Ctrl-C stops it.
In another terminal, from the repository root:
  TOKEN=\$(cat .runbook/demo/token); API=http://127.0.0.1:$port/api/v1
  curl -s -H "Authorization: Bearer \$TOKEN" \$API/runbooks
  curl -s -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"input":{"agent":"requirements-agent"}}' \$API/runbooks/agent-failure/diagnose
  curl -s -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"runbookId":"agent-failure","mode":"execute","input":{"agent":"requirements-agent"}}' \$API/runs
  curl -s -H "Authorization: Bearer \$TOKEN" "\$API/runs?limit=5"
  curl -s http://127.0.0.1:$port/metrics | grep ^runbook_
The API is described at \$API/openapi.json and in packages/sdk/SERVICE.md.
EOF
say "runbook serve --port $port --tokens-file .runbook/demo/tokens.json"
exec node "$repo_root/packages/sdk/dist/cli/main.js" serve --port "$port" --tokens-file "$demo/tokens.json"
