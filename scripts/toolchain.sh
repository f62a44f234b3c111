# shellcheck shell=bash
# Sourced by every project script: puts the project's own Node 24 and pnpm first on PATH,
# installing them from the npm registry into .tools/ when they are missing or the wrong version.
# The machine ships Node 20; the project builds, tests and runs on Node 24.
NODE_VERSION=24.21.0
PNPM_VERSION=12.4.2

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$repo_root/.tools"
export PATH="$tools/node_modules/.bin:$PATH"

if [ "$(node -v 2>/dev/null)" != "v$NODE_VERSION" ] || [ "$(pnpm -v 2>/dev/null)" != "$PNPM_VERSION" ]; then
  echo "toolchain: installing node@$NODE_VERSION and pnpm@$PNPM_VERSION into .tools/" >&2
  mkdir -p "$tools"
  [ -f "$tools/package.json" ] || echo '{"name":"aiwebtest-toolchain","private":true}' > "$tools/package.json"
  # --prefix keeps the toolchain out of the workspace; the system npm (Node 20) only downloads.
  PATH="${PATH#"$tools/node_modules/.bin:"}" npm install --prefix "$tools" --no-save --no-audit --no-fund \
    "node@$NODE_VERSION" "pnpm@$PNPM_VERSION" >&2
  hash -r
fi
