#!/usr/bin/env bash
# The main job, end to end on a fresh machine: install, build, then start the local AI-Web-Test lab with
# the runbook service (the AI-Web-Test pack on an embedded store), Alertmanager and Prometheus, and walk
# through one incident: the requirements agent crash-loops, Prometheus fires AgentDown, Alertmanager
# delivers it, the service runs agent-failure, the agent is back. Then the lab keeps running until Ctrl-C.
#
# RUNBOOK_DEMO_NO_WAIT=1 stops after the walkthrough (for a scripted check). The service listens on
# 127.0.0.1:8080, Prometheus on :9090, Alertmanager on :9093, the lab's control API on :9400.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/toolchain.sh"
cd "$repo_root"
bash "$here/services.sh"
pnpm install --frozen-lockfile
pnpm build

lab_dir="$repo_root/.runbook/lab"
export AIWEBTEST_LAB_DIR="$lab_dir"
lab() { node "$repo_root/packages/examples/dist/lab/cli.js" "$@"; }
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

# A fresh lab each time (a kept store would, rightly, refuse a fourth restart of the same agent within the
# hour: that is the remediation budget at work).
rm -rf "$lab_dir"
say "aiwebtest-lab up --reset"
# Node itself in the background (not the shell function), so that $! is the lab and a signal reaches it.
node "$repo_root/packages/examples/dist/lab/cli.js" up --reset &
lab_pid=$!
trap 'kill -TERM $lab_pid 2>/dev/null; wait $lab_pid 2>/dev/null' EXIT
for _ in $(seq 1 180); do
  [ -f "$lab_dir/control.json" ] && break
  kill -0 $lab_pid 2>/dev/null || { echo "the lab did not start; see the lines above" >&2; exit 1; }
  sleep 1
done
[ -f "$lab_dir/control.json" ] || { echo "the lab did not start within 3 minutes" >&2; exit 1; }

token=$(cat "$lab_dir/tokens/oncall")
api=http://127.0.0.1:8080/api/v1
say "aiwebtest-lab health"
lab health
say "aiwebtest-lab chaos requirements-agent-down"
lab chaos requirements-agent-down
printf '\nWaiting for AgentDown to fire (Prometheus, for: 30s) and the service to run agent-failure'
run_id=""
for _ in $(seq 1 120); do
  run_id=$(curl -s -H "Authorization: Bearer $token" "$api/runs?runbookId=agent-failure&limit=1" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s).runs[0];process.stdout.write(r&&["succeeded","failed","escalated"].includes(r.status)?r.id:"")})')
  [ -n "$run_id" ] && break
  printf '.'
  sleep 2
done
echo
[ -n "$run_id" ] || { echo "no agent-failure run finished within 4 minutes" >&2; exit 1; }
say "curl -H 'Authorization: Bearer …' $api/runs/$run_id"
curl -s -H "Authorization: Bearer $token" "$api/runs/$run_id" |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const d=JSON.parse(s);console.log(`run ${d.run.id}: ${d.run.status} (started by ${d.run.requestedBy} from alert ${d.run.context?.alert?.labels?.alertname ?? "?"})`);for(const f of d.findings)console.log(`  ${f.status.padEnd(7)} ${f.step}: ${f.summary}`);for(const p of d.plans)console.log(`  plan    ${p.step}: ${p.summary} [${p.status}]`);console.log(`outcome: ${d.run.outcome?.summary ?? ""}`)})'
say "aiwebtest-lab health"
lab health || true
say "curl -H 'Authorization: Bearer …' $api/audit/verify"
curl -s -H "Authorization: Bearer $token" "$api/audit/verify"
echo
if [ "${RUNBOOK_DEMO_NO_WAIT:-}" = 1 ]; then
  trap - EXIT
  kill -TERM $lab_pid
  wait $lab_pid || true
  exit 0
fi

cat <<EOF

The lab keeps running; Ctrl-C stops it. In another terminal, from the repository root:
  pnpm lab scenarios                          # the nine incidents you can cause, and their runbooks
  pnpm lab chaos database-slow                # …then watch: pnpm lab health; the service's runs below
  TOKEN=\$(cat .runbook/lab/tokens/oncall); curl -s -H "Authorization: Bearer \$TOKEN" "$api/runs?limit=5"
  AIWEBTEST_LAB_DIR=.runbook/lab pnpm runbook diagnose openrouter-outage --runbooks ./packages/examples/dist/index.js
Prometheus: http://127.0.0.1:9090/alerts   Alertmanager: http://127.0.0.1:9093   API: $api/openapi.json
Runs that wait for approval: approve as the second person with the token in .runbook/lab/tokens/approver:
  curl -s -X POST -H "Authorization: Bearer \$(cat .runbook/lab/tokens/approver)" -H 'Content-Type: application/json' -d '{}' $api/runs/<id>/approve
EOF
wait $lab_pid
