#!/usr/bin/env bash
# Installs the toolchain and the workspace's dependencies, then builds. Idempotent.
set -euo pipefail
source "$(dirname "$0")/toolchain.sh"
cd "$repo_root"
pnpm install --frozen-lockfile
pnpm build
