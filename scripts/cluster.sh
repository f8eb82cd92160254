#!/usr/bin/env bash
# A three-broker Kafka-protocol cluster for fault tests: three Tansu brokers over one
# private PostgreSQL database, all on 127.0.0.1.
#
#   scripts/cluster.sh install       # tansu built with its postgres engine, and PostgreSQL
#   scripts/cluster.sh installed     # exit 0 if both are there (installs nothing)
#   scripts/cluster.sh installed tansu   # exit 0 if that tansu is there (`start` installs
#                                    # PostgreSQL with apt-get when missing, in ~1 min)
#   scripts/cluster.sh start         # fresh database + schema + brokers 1-3 on ports P, P+1, P+2;
#                                    # last stdout line: KAFKA_BROKERS=127.0.0.1:P,...:P+1,...:P+2
#   scripts/cluster.sh stop          # stop the brokers and PostgreSQL, delete the data (idempotent)
#   scripts/cluster.sh status        # exit 0 if PostgreSQL and all three brokers answer
#   scripts/cluster.sh kill <n>      # SIGKILL broker n (1, 2 or 3)
#   scripts/cluster.sh restart <n>   # start broker n again on its port; returns once it answers
#   scripts/cluster.sh pid <n>       # print broker n's pid (exit 1 if it is not running)
#
# Environment:
#   KAFKA_CLUSTER_PORT      port of broker 1 (default 29600); brokers 2 and 3 use the next two
#   KAFKA_CLUSTER_PG_PORT   PostgreSQL's port on 127.0.0.1 (default KAFKA_CLUSTER_PORT + 3)
#   KAFKA_READY_TIMEOUT_MS  how long start and restart wait for readiness (default 30000)
#   TANSU_PG_BIN            a tansu built with the `postgres` feature (skips the build)
#   PG_BINDIR               directory holding initdb, pg_ctl and postgres (default: found)
#
# How the cluster works (Tansu 0.6.0, https://github.com/tansu-io/tansu, Apache-2.0): the
# brokers are stateless front ends; topics, records, idempotent-producer sequences, groups
# and offsets live in PostgreSQL (tables: scripts/tansu-postgres-schema.sql). Each broker's
# metadata names only itself, as node 111, leader of every partition: a client given the
# three addresses sends everything to the broker whose metadata it read last, and after
# that broker dies it learns node 111's new address from one of the others.
# The tansu of scripts/broker.sh (a prebuilt wheel) has no postgres engine, so `install`
# builds one with cargo (crates.io tansu 0.6.0: 25-27 min, 35-39 CPU-min, on 2 busy cores;
# a 60 MB binary; once). There is no cheaper build: tansu's default features only switch on
# its own crates, and the heavy engines (iceberg, delta, parquet: arrow/datafusion; libsql,
# turso, slatedb, dynostore) are off unless named, so `--no-default-features --features
# postgres` resolves the same 558 crates. The time goes to crates every build needs:
# aws-lc-sys and zstd-sys (C), tansu-sans-io (generated protocol code), tansu-storage, rhai
# and the tansu binary crate itself. So no test builds it unasked: the failover test is
# skipped without it. It goes into ${XDG_CACHE_HOME:-~/.cache}/kafka-napi/, outside the
# work tree so that every clone and CI checkout on the machine reuses it. PostgreSQL comes
# from Debian's packages: installed with apt-get when missing (as root), else unpacked into
# .tools/postgresql.
# PostgreSQL refuses to run as root: as root the database runs as the `postgres` user
# (or `nobody`). It runs with fsync=off: the tests kill brokers, never the database.
# State lives in .tools/run/ (git-ignored): pg-cluster-<P>/ (data, socket, log),
# cluster-<P>-broker<n>.{pid,log}. The only stdout lines are the KAFKA_BROKERS line of
# `start` and the pid of `pid`; messages go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$ROOT/scripts"
TOOLS="$ROOT/.tools"
RUN_DIR="$TOOLS/run"
HOST=127.0.0.1
PORT="${KAFKA_CLUSTER_PORT:-29600}"
READY_TIMEOUT_MS="${KAFKA_READY_TIMEOUT_MS:-30000}"
BROKERS=(1 2 3)
SCHEMA="$SCRIPTS/tansu-postgres-schema.sql"

CRATE_VERSION="0.6.0"
CRATE_FEATURES="postgres"
TANSU_HOME="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/kafka-napi/tansu-$CRATE_VERSION-$CRATE_FEATURES"
TANSU="${TANSU_PG_BIN:-$TANSU_HOME/bin/tansu}"
TANSU_STAMP="$TANSU_HOME/bin/tansu.cargo-sha256"
TANSU_VERIFIED="$TANSU_HOME/bin/.tansu.verified" # size/mtime/inode when its hash last matched
LOCAL_PG="$TOOLS/postgresql" # Debian packages unpacked without root

LOCKFILE="$RUN_DIR/cluster-$PORT.lock"

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
# shellcheck source=scripts/tansu-lib.sh
. "$SCRIPTS/tansu-lib.sh"

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
  exit 2
}

case "$PORT" in
  '' | *[!0-9]*) die "KAFKA_CLUSTER_PORT must be a number, got '$PORT'" ;;
esac
PG_PORT="${KAFKA_CLUSTER_PG_PORT:-$((PORT + 3))}"
case "$PG_PORT" in
  '' | *[!0-9]*) die "KAFKA_CLUSTER_PG_PORT must be a number, got '$PG_PORT'" ;;
esac

broker_port() { echo $((PORT + $1 - 1)); }
broker_pidfile() { echo "$RUN_DIR/cluster-$PORT-broker$1.pid"; }
broker_logfile() { echo "$RUN_DIR/cluster-$PORT-broker$1.log"; }
all_addresses() {
  local n out=""
  for n in "${BROKERS[@]}"; do out+="${out:+,}$HOST:$(broker_port "$n")"; done
  echo "$out"
}

check_n() {
  case "${1:-}" in
    1 | 2 | 3) ;;
    *) die "expected a broker number 1, 2 or 3, got '${1:-}'" ;;
  esac
}

# ------------------------------------------------------------------------- PostgreSQL

# Prints the directory holding initdb, pg_ctl and postgres, newest version first.
find_pg_bindir() {
  local dir
  if [[ -n "${PG_BINDIR:-}" ]]; then
    [[ -x "$PG_BINDIR/initdb" && -x "$PG_BINDIR/pg_ctl" && -x "$PG_BINDIR/postgres" ]] ||
      die "PG_BINDIR=$PG_BINDIR has no initdb, pg_ctl and postgres"
    echo "$PG_BINDIR"
    return 0
  fi
  while IFS= read -r dir; do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
      echo "$dir"
      return 0
    fi
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin "$LOCAL_PG"/usr/lib/postgresql/*/bin | sort -rV)
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dir="$(dirname "$(readlink -f "$(command -v initdb)")")"
    [[ -x "$dir/postgres" ]] && { echo "$dir"; return 0; }
  fi
  return 1
}

install_postgres() {
  find_pg_bindir >/dev/null && return 0
  command -v apt-get >/dev/null 2>&1 ||
    die "PostgreSQL is not installed and there is no apt-get: install PostgreSQL, or set PG_BINDIR"
  local t0=$SECONDS
  if [[ "$(id -u)" == 0 ]]; then
    log "installing Debian's postgresql package (apt-get)"
    apt-get install -y -q --no-install-recommends postgresql >&2 || {
      apt-get update -q >&2
      apt-get install -y -q --no-install-recommends postgresql >&2
    }
  else
    # No root: unpack the server and client packages into .tools/postgresql. The shared
    # libraries they link (libicu, libllvm, libxml2, ...) must already be on the machine.
    local version tmp
    version="$(apt-cache depends postgresql 2>/dev/null | sed -n 's/.*Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -n1)"
    [[ -n "$version" ]] || die "PostgreSQL is missing, not root, and apt-cache knows no postgresql package"
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/pg-debs.XXXXXX")"
    log "not root: unpacking postgresql-$version, postgresql-client-$version and libpq5 into ${LOCAL_PG#"$ROOT"/}"
    (cd "$tmp" && apt-get download "postgresql-$version" "postgresql-client-$version" libpq5 >&2)
    mkdir -p "$LOCAL_PG"
    local deb
    for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$LOCAL_PG"; done
    rm -rf "$tmp"
  fi
  local bindir
  bindir="$(find_pg_bindir)" || die "PostgreSQL was installed but initdb/pg_ctl/postgres are not found"
  log "PostgreSQL installed in $((SECONDS - t0)) s ($bindir)"
}

# PostgreSQL refuses to run as root; as root, run it as an unprivileged user.
PG_USER=""
pick_pg_user() {
  [[ "$(id -u)" == 0 ]] || return 0
  if id postgres >/dev/null 2>&1; then PG_USER=postgres; else PG_USER=nobody; fi
}

# Runs a command as the database's user, without the lock fds: the postmaster that
# pg_ctl leaves running would otherwise hold the cluster's lock for ever.
as_pg() {
  if [[ -z "$PG_USER" ]]; then
    "$@" 8>&- 9>&-
  elif command -v setpriv >/dev/null 2>&1; then
    setpriv --reuid="$PG_USER" --regid="$(id -g "$PG_USER")" --init-groups -- "$@" 8>&- 9>&-
  else
    runuser -u "$PG_USER" -- "$@" 8>&- 9>&-
  fi
}

pg_env() { # libraries of an unpacked (non-root) install
  if [[ "$1" == "$LOCAL_PG"/* ]]; then
    export LD_LIBRARY_PATH="$LOCAL_PG/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
}

# The database's directory: .tools/run/pg-cluster-<P>, unless its user cannot reach it
# (a clone under a private home directory while running as root).
pg_dir() {
  local dir="$RUN_DIR/pg-cluster-$PORT"
  if [[ -n "$PG_USER" ]] && ! as_pg test -x "$RUN_DIR" 2>/dev/null; then
    dir="${TMPDIR:-/tmp}/kafka-napi-pg-cluster-$PORT"
  fi
  echo "$dir"
}

pg_running() { # pg_running <dir>
  [[ -n "$PG_BIN" && -f "$1/data/postmaster.pid" ]] && as_pg "$PG_BIN/pg_ctl" -D "$1/data" status >/dev/null 2>&1
}

psql_cmd() {
  local psql="$PG_BIN/psql"
  [[ -x "$psql" ]] || psql="$(command -v psql)" || die "psql not found"
  "$psql" -X -q -h "$HOST" -p "$PG_PORT" -U tansu -v ON_ERROR_STOP=1 "$@"
}

start_postgres() { # start_postgres <dir>
  local dir=$1
  rm -rf "$dir"
  mkdir -p "$dir"
  [[ -z "$PG_USER" ]] || chown "$PG_USER" "$dir"
  as_pg "$PG_BIN/initdb" -D "$dir/data" -U tansu --auth=trust -E UTF8 --locale=C -N \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  # A fast, throwaway instance: no fsync (only brokers are killed, never the database).
  if ! as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 -o \
    "-c listen_addresses=$HOST -p $PG_PORT -c unix_socket_directories='$dir' -c max_connections=200 -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
    start >/dev/null; then
    tail -n 20 "$dir/postgres.log" >&2 || true
    grep -q 'already in use' "$dir/postgres.log" 2>/dev/null &&
      die "port $PG_PORT is in use: set KAFKA_CLUSTER_PG_PORT (or KAFKA_CLUSTER_PORT)"
    die "PostgreSQL did not start"
  fi
  psql_cmd -d postgres -c 'create database tansu' >/dev/null
  psql_cmd -d tansu -1 -f "$SCHEMA" >/dev/null
}

stop_postgres() { # stop_postgres <dir>
  local dir=$1
  if [[ -d "$dir/data" ]] && pg_running "$dir"; then
    # The data is deleted right after: no need for a clean shutdown.
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w -t 20 stop >/dev/null 2>&1 ||
      log "pg_ctl stop failed for $dir"
  fi
  rm -rf "$dir"
}

# ---------------------------------------------------------------------------- tansu

tansu_ok() {
  [[ -x "$TANSU" ]] || return 1
  [[ -n "${TANSU_PG_BIN:-}" ]] && return 0
  [[ -f "$TANSU_STAMP" ]] || return 1
  # Hashing 60 MB costs ~0.3 s per call: skip it while the file is the one last verified.
  local sig
  sig="$(file_sig "$TANSU")"
  [[ -n "$sig" && -f "$TANSU_VERIFIED" && "$(cat "$TANSU_VERIFIED")" == "$sig" ]] && return 0
  [[ "$(cut -d' ' -f1 "$TANSU_STAMP")" == "$(sha256_of "$TANSU")" ]] || return 1
  [[ -z "$sig" ]] || printf '%s\n' "$sig" >"$TANSU_VERIFIED"
}

install_tansu() {
  if [[ -n "${TANSU_PG_BIN:-}" ]]; then
    [[ -x "$TANSU_PG_BIN" ]] || die "TANSU_PG_BIN=$TANSU_PG_BIN is not an executable file"
    return 0
  fi
  tansu_ok && return 0
  mkdir -p "$TANSU_HOME"
  if command -v flock >/dev/null 2>&1; then
    exec 8>"$TANSU_HOME/install.lock"
    flock 8
  fi
  tansu_ok && return 0 # installed by somebody else while we waited
  command -v cargo >/dev/null 2>&1 || die "cargo is needed to build tansu with its postgres engine"
  log "building tansu $CRATE_VERSION with the '$CRATE_FEATURES' feature from crates.io into $TANSU_HOME"
  log "  (the prebuilt tansu of scripts/broker.sh has no postgres engine); ~26 min on 2 cores, once"
  local t0=$SECONDS
  rm -f "$TANSU_STAMP"
  nice -n 10 cargo install --locked tansu --version "$CRATE_VERSION" --features "$CRATE_FEATURES" \
    --root "$TANSU_HOME" --force >&2
  [[ -x "$TANSU" ]] || die "cargo install finished but $TANSU is missing"
  printf '%s  cargo tansu %s --features %s\n' "$(sha256_of "$TANSU")" "$CRATE_VERSION" "$CRATE_FEATURES" >"$TANSU_STAMP"
  log "built tansu in $((SECONDS - t0)) s"
}

read_pid() { read_pid_file "$(broker_pidfile "$1")"; } # read_pid <n>

broker_pid() { # prints the pid of broker $1 if it runs
  local pid
  pid="$(read_pid "$1")" || return 1
  is_tansu "$pid" || return 1
  echo "$pid"
}

probe() { # probe <addresses> <timeoutMs>
  node "$SCRIPTS/kafka-ready.mjs" "$1" "$2"
}

wait_gone() { # wait_gone <pid> <tenths of a second>
  local i
  for ((i = 0; i < $2; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    [[ "$(ps -p "$1" -o stat= 2>/dev/null)" == Z* ]] && return 0
    sleep 0.1
  done
  return 1
}

stop_broker() { # stop_broker <n> TERM|KILL
  local pid
  if pid="$(broker_pid "$1")"; then
    if [[ "$2" == TERM ]]; then
      kill -TERM "$pid" 2>/dev/null || true
      wait_gone "$pid" 50 || { log "broker $1 (pid $pid) ignored SIGTERM for 5 s; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; }
    else
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait_gone "$pid" 50 || log "broker $1 (pid $pid) is still there"
  fi
  rm -f "$(broker_pidfile "$1")"
}

launch_broker() { # launch_broker <n>: start it in the background, no waiting
  local n=$1 port logfile setsid=()
  port="$(broker_port "$n")"
  logfile="$(broker_logfile "$n")"
  command -v setsid >/dev/null 2>&1 && setsid=(setsid)
  : >"$logfile"
  # Own session (a Ctrl-C of the caller does not reach it), without the lock fds and
  # without the environment variables tansu would read (schema registry, OTLP export).
  (
    exec 8>&- 9>&-
    unset SCHEMA_REGISTRY OTEL_EXPORTER_OTLP_ENDPOINT STORAGE_ENGINE LISTENER_URL ADVERTISED_LISTENER_URL CLUSTER_ID
    export NO_COLOR=1
    exec "${setsid[@]}" "$TANSU" broker \
      --listener-url "tcp://$HOST:$port" \
      --advertised-listener-url "tcp://$HOST:$port" \
      --storage-engine "postgres://tansu@$HOST:$PG_PORT/tansu" \
      --cluster-id "tansu-cluster-$PORT" \
      </dev/null >>"$logfile" 2>&1
  ) &
  echo "$!" >"$(broker_pidfile "$n")"
}

# Waits until every broker in "$@" answers, failing early when one exits.
await_brokers() {
  local started_ms n pid addresses="" port
  started_ms="$(now_ms)"
  for n in "$@"; do addresses+="${addresses:+,}$HOST:$(broker_port "$n")"; done
  while :; do
    for n in "$@"; do
      pid="$(read_pid "$n")" || die "broker $n has no pid file"
      if ! is_tansu "$pid"; then
        wait "$pid" 2>/dev/null || true
        rm -f "$(broker_pidfile "$n")"
        port="$(broker_port "$n")"
        tail -n 20 "$(broker_logfile "$n")" | sed 's/^/    /' >&2
        grep -q AddrInUse "$(broker_logfile "$n")" 2>/dev/null &&
          die "port $port is already in use by another program; set KAFKA_CLUSTER_PORT"
        die "broker $n exited before it was ready on $HOST:$port"
      fi
    done
    probe "$addresses" 1000 2>/dev/null && return 0
    if (($(now_ms) - started_ms >= READY_TIMEOUT_MS)); then
      for n in "$@"; do tail -n 10 "$(broker_logfile "$n")" | sed "s/^/    broker $n: /" >&2; done
      die "brokers $* were not ready on $addresses within $READY_TIMEOUT_MS ms"
    fi
  done
}

# ---------------------------------------------------------------------------- commands

PG_BIN=""
setup() { # setup [--no-install]: find (or install) PostgreSQL, pick its user
  [[ "${1:-}" == --no-install ]] || install_postgres
  PG_BIN="$(find_pg_bindir)" || PG_BIN=""
  [[ -z "$PG_BIN" ]] || pg_env "$PG_BIN"
  pick_pg_user
}

cmd_install() {
  install_postgres
  install_tansu
}

cmd_installed() { # cmd_installed [tansu]
  case "${1:-}" in
    '' | tansu) ;;
    *) die "installed takes no argument or 'tansu', got '$1'" ;;
  esac
  [[ "${1:-}" == tansu ]] || find_pg_bindir >/dev/null || { log "PostgreSQL is not installed"; return 1; }
  tansu_ok || { log "no tansu with the postgres engine at $TANSU (build it: scripts/cluster.sh install)"; return 1; }
}

cluster_up() { # all brokers and the database answer
  local n dir
  dir="$(pg_dir)"
  pg_running "$dir" || return 1
  for n in "${BROKERS[@]}"; do broker_pid "$n" >/dev/null || return 1; done
  probe "$(all_addresses)" 2000 2>/dev/null
}

teardown() {
  local n
  for n in "${BROKERS[@]}"; do stop_broker "$n" TERM; done
  stop_postgres "$(pg_dir)"
}

cmd_start() {
  command -v node >/dev/null 2>&1 || die "node is required (readiness probe scripts/kafka-ready.mjs)"
  install_tansu
  setup
  take_lock "$LOCKFILE"
  if cluster_up; then
    log "reusing the cluster already running on $(all_addresses)"
    echo "KAFKA_BROKERS=$(all_addresses)"
    return 0
  fi
  teardown # leftovers of an earlier run
  local n
  for n in "${BROKERS[@]}"; do
    if probe "$HOST:$(broker_port "$n")" 0 2>/dev/null; then
      die "something not started by this script answers Kafka requests on $HOST:$(broker_port "$n"); set KAFKA_CLUSTER_PORT"
    fi
  done

  local t0 t1 dir
  t0="$(now_ms)"
  dir="$(pg_dir)"
  start_postgres "$dir"
  t1="$(now_ms)"
  for n in "${BROKERS[@]}"; do launch_broker "$n"; done
  await_brokers "${BROKERS[@]}"
  local t2 pids=""
  t2="$(now_ms)"
  for n in "${BROKERS[@]}"; do pids+="${pids:+ }$(read_pid "$n")"; done
  log "cluster ready in $((t2 - t0)) ms (PostgreSQL $PG_PORT and schema: $((t1 - t0)) ms, brokers: $((t2 - t1)) ms);" \
    "brokers $(all_addresses) (pids $pids); logs: ${RUN_DIR#"$ROOT"/}/cluster-$PORT-broker<n>.log"
  echo "KAFKA_BROKERS=$(all_addresses)"
}

cmd_stop() {
  [[ -d "$RUN_DIR" ]] || return 0
  setup --no-install
  take_lock "$LOCKFILE"
  teardown
  log "stopped the cluster on port $PORT"
}

cmd_status() {
  setup --no-install
  local n pid ok=0 dir
  dir="$(pg_dir)"
  if pg_running "$dir"; then log "PostgreSQL is running on $HOST:$PG_PORT ($dir)"; else log "PostgreSQL is not running"; ok=1; fi
  for n in "${BROKERS[@]}"; do
    if ! pid="$(broker_pid "$n")"; then
      log "broker $n ($HOST:$(broker_port "$n")) is not running"
      ok=1
    elif probe "$HOST:$(broker_port "$n")" 2000 2>/dev/null; then
      log "broker $n (pid $pid) is ready on $HOST:$(broker_port "$n")"
    else
      log "broker $n (pid $pid) is running but not answering on $HOST:$(broker_port "$n")"
      ok=1
    fi
  done
  return "$ok"
}

cmd_kill() {
  check_n "${1:-}"
  take_lock "$LOCKFILE"
  local pid
  pid="$(broker_pid "$1")" || die "broker $1 is not running"
  stop_broker "$1" KILL
  log "killed broker $1 (pid $pid, $HOST:$(broker_port "$1")) with SIGKILL"
}

cmd_restart() {
  check_n "${1:-}"
  install_tansu
  setup
  take_lock "$LOCKFILE"
  pg_running "$(pg_dir)" || die "the cluster's PostgreSQL is not running: use start"
  stop_broker "$1" TERM
  local t0
  t0="$(now_ms)"
  launch_broker "$1"
  await_brokers "$1"
  log "broker $1 (pid $(read_pid "$1")) ready again on $HOST:$(broker_port "$1") in $(($(now_ms) - t0)) ms"
}

cmd_pid() {
  check_n "${1:-}"
  broker_pid "$1" || { log "broker $1 is not running"; return 1; }
}

case "${1:-}" in
  install) cmd_install ;;
  installed) cmd_installed "${2:-}" ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  kill) cmd_kill "${2:-}" ;;
  restart) cmd_restart "${2:-}" ;;
  pid) cmd_pid "${2:-}" ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
