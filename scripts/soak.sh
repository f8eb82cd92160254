#!/usr/bin/env bash
# `npm run soak`: a long run through one producer and one consumer with RSS sampled
# (bench/soak.mjs; arguments are passed on: `npm run soak -- --events 200000`). Starts an
# in-memory Tansu broker on SOAK_PORT (default 29550) unless KAFKA_BROKERS is set; does not
# rebuild the addon unless it is missing. Results: bench/results/soak.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/ensure-deps.sh
if ! ls ./*.node >/dev/null 2>&1; then
  npm run --silent build
fi
KAFKA_TEST_PORT="${SOAK_PORT:-29550}" exec scripts/with-broker.sh node bench/soak.mjs "$@"
