#!/usr/bin/env bash
# Installs the npm dev dependencies when node_modules is missing or older than
# package-lock.json, so a fresh clone needs no manual `npm install`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -x node_modules/.bin/napi || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "Installing npm dependencies (npm ci)..." >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
