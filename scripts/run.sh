#!/usr/bin/env bash
# The project's entry point on any machine: makes sure Node >= 22.19 and the npm packages are
# present, then runs an npm script with them.
#   bash scripts/run.sh demo        # the main job on the local control plane
#   bash scripts/run.sh test        # unit + integration tests
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=node-env.sh
source scripts/node-env.sh

# npm ci only when package-lock.json changed since the last install.
stamp=node_modules/.package-lock.sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
exec npm run --silent "$@"
