#!/usr/bin/env bash
# The README's test command (`npm test`): installs what is missing, builds the
# addon, runs the Rust core's tests, then the jest suite against a real broker.
# With KAFKA_BROKERS set, jest uses that cluster instead of starting Tansu.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/ensure-deps.sh
npm run --silent build
# `napi build` compiles for an explicit --target; testing for the same one reuses
# that build (librdkafka and OpenSSL) instead of compiling everything again.
cargo test --release --target "$(rustc -vV | sed -n 's/^host: //p')"
scripts/with-broker.sh npx jest --runInBand "$@"
