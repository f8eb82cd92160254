#!/usr/bin/env bash
# The movie-stream demo (`npm run demo`): builds the addon and the example, then runs the
# audience driver, which starts the NestJS app, plays a simulated audience against it and checks
# that the consumers counted every event.
#
#   npm run demo                              # Kafka embedded in the app's process: nothing to install
#   npm run demo -- --brokers localhost:9092  # a real cluster (fresh, prefixed topics per run)
#   npm run demo -- --help                    # all options (--events, --movies, --users, ...)
#
# Exit status 0 when every count matched and the app shut down cleanly.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/ensure-deps.sh
npm run --silent build
exec node examples/movie-stream/dist/src/demo/audience.js "$@"
