#!/usr/bin/env bash
# The rollout controller's cost on the request path: one umbra with a plain 50 % canary and one
# with a rollout held at its `50%` step (min_requests out of reach, so it stays there, recording
# evidence for every request) run side by side in front of the same fast nginx upstreams; wrk
# (-t2 -c32, 2 s warm-up, 10 s) alternates between them for ROUNDS rounds and the last line
# prints the median req/s ratio rollout / canary (issue 14's goal: at least 0.97).
# Usage: bash bench/rollout_cost.sh [ROUNDS] [UMBRA_BINARY]   (defaults: 5, the release build)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
WORK=/tmp/umbra-rollout-cost
P_UP=18400 P_UP2=18401 P_CANARY=18410 P_ROLLOUT=18420
bench_prelude rollout_cost.sh "$WORK" "$@"
pids+=("$(start_fast_upstream up $P_UP)")
pids+=("$(start_fast_upstream up2 $P_UP2)")
{ umbra_config $P_CANARY $((P_CANARY + 1)) "sqlite://$WORK/canary.db" $P_UP $P_UP2 ""
  echo 'canary = { service = "shadow", weight = 50 }'; } >"$WORK/canary.toml"
{ umbra_config $P_ROLLOUT $((P_ROLLOUT + 1)) "sqlite://$WORK/rollout.db" $P_UP $P_UP2 ""
  echo 'rollout = { service = "shadow", steps = ["50% 1h", "100%"], min_requests = 1000000000, max_wait = "2h" }'
} >"$WORK/rollout.toml"
for who in canary rollout; do
  "$UMBRA" check -c "$WORK/$who.toml" || exit 1
  "$UMBRA" run -c "$WORK/$who.toml" >"$WORK/$who.log" 2>&1 & pids+=("$!")
done
sleep 3
curl -s "http://127.0.0.1:$((P_ROLLOUT + 1))/api/routes/api/rollout" | head -c 300; echo
echo "round proxy req/s p99"
for r in $(seq 1 "$ROUNDS"); do
  for who in canary rollout; do
    if [[ $who == canary ]]; then port=$P_CANARY; else port=$P_ROLLOUT; fi
    wrk -t2 -c32 -d2s "http://127.0.0.1:$port/" >/dev/null 2>&1
    out=$(wrk -t2 -c32 -d10s --latency "http://127.0.0.1:$port/" 2>&1)
    echo "$r $who $(echo "$out" | awk '/Requests\/sec/ {print $2}') $(echo "$out" | awk '$1 == "99%" {print $2}')"
  done
done | tee "$WORK/runs.txt"
curl -s "http://127.0.0.1:$((P_ROLLOUT + 1))/api/routes/api/rollout" | head -c 300; echo
med() { awk -v w="$1" '$2 == w {print $3}' "$WORK/runs.txt" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
c=$(med canary) o=$(med rollout)
awk -v c="$c" -v o="$o" 'BEGIN {printf "median req/s: canary %.0f, rollout %.0f, ratio rollout/canary %.3f\n", c, o, o / c}'
