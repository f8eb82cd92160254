#!/usr/bin/env bash
# `npm run bench`: builds what is missing, starts an in-memory Tansu broker for the whole
# run, runs the benchmark (bench/run.mjs) and stops the broker. Arguments are passed to
# bench/run.mjs: `npm run bench -- --quick`, `npm run bench -- --help`.
#
# Environment:
#   KAFKA_BROKERS     benchmark this cluster instead of starting Tansu
#   BENCH_PORT        port of the Tansu started here (default 29500)
#   BENCH_SKIP_BUILD  1: do not rebuild the addon (bench the .node that is there)
#
# Results: bench/results/{results.json,RESULTS.md,chart.svg}. The exit status is
# bench/run.mjs's: 0 when the run completed, whether or not targets were met.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

for arg in "$@"; do
  if [[ "$arg" == "-h" || "$arg" == "--help" ]]; then
    exec node bench/run.mjs --help
  fi
done

scripts/ensure-deps.sh

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  echo "bench: building the addon (npm run build; a no-op when it is up to date)..." >&2
  npm run --silent build
fi

# The N-API floor (bench/floor/floor.rs, the `napi-floor` client): the addon's crate with
# `--features bench-floor`, in a target directory of its own so that it never replaces the
# addon's build (the first build compiles librdkafka again, about 4 min; later ones reuse it).
floor="bench/floor/build/index.js"
if [[ ! -f "$floor" || bench/floor/floor.rs -nt "$floor" || Cargo.lock -nt "$floor" ]]; then
  echo "bench: building the N-API floor (bench/floor, --features bench-floor)..." >&2
  npx napi build --platform --release --no-const-enum --features bench-floor \
    --target-dir target/bench-floor --output-dir bench/floor/build >/dev/null ||
    echo "bench: the N-API floor did not build; it will be reported as not run" >&2
  # The generated loader is CommonJS, inside bench/'s ES-module package.
  echo '{ "type": "commonjs" }' >bench/floor/build/package.json
fi

# The pure-Rust ceiling: built for the same --target as the addon, so it reuses the
# addon's compiled librdkafka instead of compiling it again. It uses none of the crate's own
# code, but as an example it depends on the crate, which cargo compiles again for it (with
# the dev-dependencies' features, unlike `napi build`: ~1.5 min): so it is rebuilt only when
# its source or the dependencies changed (BENCH_REBUILD_CEILING=1 forces it).
host="$(rustc -vV | sed -n 's/^host: //p')"
ceiling="target/$host/release/examples/bench_ceiling"
if [[ "${BENCH_REBUILD_CEILING:-0}" == 1 || ! -x "$ceiling" || bench/rust/ceiling.rs -nt "$ceiling" ||
  Cargo.toml -nt "$ceiling" || Cargo.lock -nt "$ceiling" ]]; then
  echo "bench: building the pure-Rust ceiling (cargo example bench_ceiling)..." >&2
  cargo build --quiet --release --example bench_ceiling --target "$host"
fi

# The peers live in bench/package.json so the package's own dependencies stay clean.
# The Confluent client compiles its bundled librdkafka (~70 s, once): no prebuilt binary is
# reachable, and CKJS_LINKING=dynamic keeps its configure step from downloading anything.
if [[ ! -f bench/node_modules/.package-lock.json || bench/package-lock.json -nt bench/node_modules/.package-lock.json ]]; then
  echo "bench: installing the benchmark's peers (npm ci --prefix bench; the Confluent client compiles librdkafka, ~70 s)..." >&2
  # A failed install is not fatal: run.mjs records each peer that does not load, and why.
  CKJS_LINKING=dynamic npm ci --prefix bench --no-audit --no-fund --loglevel=error ||
    echo "bench: npm ci in bench/ failed; peers that did not install will be reported as not run" >&2
fi

if [[ -n "${KAFKA_BROKERS:-}" ]]; then
  exec node bench/run.mjs "$@"
fi

export KAFKA_TEST_PORT="${BENCH_PORT:-29500}"
stop_broker() {
  scripts/broker.sh stop || true
}
trap stop_broker EXIT
out="$(scripts/broker.sh start)"
line="${out##*$'\n'}"
[[ "$line" == KAFKA_BROKERS=?* ]] || {
  echo "bench: unexpected output from broker.sh start: $out" >&2
  exit 1
}
export KAFKA_BROKERS="${line#KAFKA_BROKERS=}"
# So that run.mjs can charge each run the broker's CPU time (read from /proc).
BENCH_BROKER_PID="$(cat ".tools/run/tansu-$KAFKA_TEST_PORT.pid" 2>/dev/null || true)"
export BENCH_BROKER_PID

# Not exec'd: the EXIT trap must stop the broker afterwards.
status=0
node bench/run.mjs "$@" || status=$?
exit "$status"
