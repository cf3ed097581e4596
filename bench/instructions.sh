#!/usr/bin/env bash
# umbra CPU cost per request in user-space instructions, counted by valgrind (cachegrind), so
# that two builds can be compared on this noisy 2-core VM where req/s and CPU time swing
# ±10 % between identical runs. One command: `bash bench/instructions.sh [BINARY...]`
# (default: the release build). For each binary and each scenario (plain proxying, and 100 %
# shadow to a fast upstream with comparison and SQLite), umbra runs under cachegrind twice,
# serving N1 and then N2 requests (hey, 8 connections); the difference of the two totals over
# N2 - N1 is the cost of one request without start-up and shutdown. Kernel time is not
# counted: compare syscalls per request separately (strace -c) when a change touches I/O.
# Needs valgrind, hey, nginx, curl. Results go to stdout only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
WORK=/tmp/umbra-instructions
N1=${N1:-2000}
N2=${N2:-8000}
P_FAST=18100 P_SHADOW=18101 P_UMBRA=18180 P_ADMIN=18181

for t in valgrind hey nginx curl; do
  command -v "$t" >/dev/null || { echo "instructions.sh: $t not installed" >&2; exit 1; }
done
if [[ $# -eq 0 ]]; then
  (cd "$ROOT" && cargo build --release -p umbra >&2)
  set -- "${CARGO_TARGET_DIR:-$ROOT/target}/release/umbra"
fi

rm -rf "$WORK"
mkdir -p "$WORK"
FAST_PID=$(start_fast_upstream upstream-fast $P_FAST)
SHADOW_PID=$(start_fast_upstream upstream-shadow $P_SHADOW)
trap 'kill $FAST_PID $SHADOW_PID 2>/dev/null || true' EXIT

config() {  # $1 = plain|shadow
  local shadow=""
  [[ $1 == shadow ]] && shadow='{ service = "shadow", percent = 100, timeout = "5s", max_in_flight = 256 }'
  umbra_config $P_UMBRA $P_ADMIN "sqlite://$WORK/umbra.db" $P_FAST $P_SHADOW "$shadow"
}

# total BINARY CONFIG N -> instructions of a run serving N requests
total() {
  rm -f "$WORK"/umbra.db* "$WORK/cg.out"
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$WORK/cg.out" \
    "$1" run -c "$2" >"$WORK/umbra.log" 2>&1 &
  local pid=$! i
  for i in $(seq 1 150); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$P_UMBRA/" && break
    sleep 0.2
  done
  hey -n "$3" -c 8 "http://127.0.0.1:$P_UMBRA/" >"$WORK/hey.txt"
  grep -q '\[200\]' "$WORK/hey.txt" || { echo "no 200s from umbra" >&2; cat "$WORK/hey.txt" >&2; }
  kill -TERM "$pid"
  wait "$pid" || true
  awk '/^summary:/ {print $2}' "$WORK/cg.out"
}

printf '%-40s %-8s %s\n' binary scenario instructions/request
for bin in "$@"; do
  for scenario in plain shadow; do
    config "$scenario" >"$WORK/$scenario.toml"
    a=$(total "$bin" "$WORK/$scenario.toml" "$N1")
    b=$(total "$bin" "$WORK/$scenario.toml" "$N2")
    printf '%-40s %-8s %d\n' "$bin" "$scenario" $(((b - a) / (N2 - N1)))
  done
done
