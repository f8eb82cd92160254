#!/usr/bin/env bash
# Run a command with a Kafka broker available in $KAFKA_BROKERS.
#
#   scripts/with-broker.sh <command> [args...]
#
# If KAFKA_BROKERS is already set (your own cluster: Apache Kafka, Redpanda, ...), the
# command is simply exec'd against it. Otherwise a local Tansu broker is started with
# scripts/broker.sh on 127.0.0.1:${KAFKA_TEST_PORT:-29092}, KAFKA_BROKERS is exported,
# the command runs, and the broker is stopped afterwards (also on failure, Ctrl-C or
# SIGTERM). A broker that was already running on that port before we were called is
# reused and left running. The exit status is the command's.
set -euo pipefail

if [[ $# -eq 0 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
  exit 2
fi

if [[ -n "${KAFKA_BROKERS:-}" ]]; then
  exec "$@"
fi

BROKER_SH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/broker.sh"

we_started=0
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  if ((we_started)); then
    "$BROKER_SH" stop || true
  fi
}
trap cleanup EXIT

if ! "$BROKER_SH" status >/dev/null 2>&1; then
  we_started=1 # set before starting so an interrupted start is cleaned up too
fi
out="$("$BROKER_SH" start)"
line="${out##*$'\n'}"
[[ "$line" == KAFKA_BROKERS=?* ]] || { echo "with-broker.sh: unexpected output from broker.sh start: $out" >&2; exit 1; }
export KAFKA_BROKERS="${line#KAFKA_BROKERS=}"

# Run the command as a background child and wait for it, so that a SIGTERM/SIGINT/SIGHUP
# sent to this script is forwarded to it right away (bash does not run traps while a
# foreground child runs). Two bash defaults for background jobs of a script are undone:
# SIGINT/SIGQUIT ignored (trap -, else Ctrl-C would not reach the command) and stdin
# from /dev/null (the explicit <&0).
(
  trap - INT QUIT
  exec "$@"
) <&0 &
child=$!
got_signal=0
for sig in INT TERM HUP; do
  # shellcheck disable=SC2064  # expand $sig and $child now
  trap "got_signal=1; kill -s $sig $child 2>/dev/null || true" "$sig"
done

prev=""
while :; do
  got_signal=0
  if wait "$child"; then rc=0; else rc=$?; fi
  # A trapped signal also makes wait return (status > 128) while the child may still be
  # running: wait again, which yields the child's own status once it has exited.
  if ((got_signal && rc > 128)); then
    prev=$rc
    continue
  fi
  # (a signal racing with the child's exit can leave nothing to wait for: 127)
  if ((rc == 127)) && [[ -n "$prev" ]]; then rc=$prev; fi
  break
done
exit "$rc"
