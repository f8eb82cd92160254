# Helpers shared by scripts/broker.sh and scripts/cluster.sh (sourced, not run). The
# sourcing script defines `log` (its own prefix) first.
# shellcheck shell=bash

die() { log "error: $*"; exit 1; }

now_ms() { # wall clock in ms (bash 5 EPOCHREALTIME; whole seconds elsewhere)
  if [[ -n "${EPOCHREALTIME:-}" ]]; then
    local t=${EPOCHREALTIME/[.,]/}
    echo $((t / 1000))
  else
    echo $(($(date +%s) * 1000))
  fi
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d' ' -f1
  else
    python3 -c 'import hashlib,sys;print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
  fi
}

file_sig() { # size, mtime, inode (GNU stat, else BSD stat)
  stat -c '%s %Y %i' "$1" 2>/dev/null || stat -f '%z %m %i' "$1" 2>/dev/null || true
}

# Serialise concurrent invocations on the lock file $1 (fd 9). No-op without flock (macOS).
take_lock() {
  mkdir -p "$(dirname "$1")"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$1"
    flock 9
  fi
}

read_pid_file() { # prints the pid recorded in file $1, if it holds one
  local pid=""
  if [[ -f "$1" ]]; then
    read -r pid <"$1" || true
  fi
  [[ "$pid" =~ ^[0-9]+$ ]] && echo "$pid"
}

# True if $1 is a live (not zombie) process running a tansu executable (guards against
# pid reuse).
is_tansu() {
  local comm
  kill -0 "$1" 2>/dev/null || return 1
  [[ "$(ps -p "$1" -o stat= 2>/dev/null)" != Z* ]] || return 1
  comm="$(ps -p "$1" -o comm= 2>/dev/null)" || return 1
  [[ "$(basename "${comm## }")" == tansu* ]]
}
