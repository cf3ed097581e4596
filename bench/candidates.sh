#!/usr/bin/env bash
# Fast-shadow cost of a second candidate: three umbras side by side in front of the same fast
# nginx upstreams — no shadow, one candidate at 100 %, two candidates at 100 % each — and wrk
# (-t2 -c32, 2 s warm-up, 10 s) alternates between them for ROUNDS rounds. The last lines print
# the median req/s of each and the ratios two/one and one/none (issue 16: report two/one).
# Usage: bash bench/candidates.sh [ROUNDS] [UMBRA_BINARY]   (defaults: 5, the release build)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
WORK=/tmp/umbra-candidates
P_UP=18500 P_SH1=18501 P_SH2=18502 P_NONE=18510 P_ONE=18520 P_TWO=18530
bench_prelude candidates.sh "$WORK" "$@"
pids+=("$(start_fast_upstream up $P_UP)")
pids+=("$(start_fast_upstream sh1 $P_SH1)")
pids+=("$(start_fast_upstream sh2 $P_SH2)")
second='[services.shadow2]
servers = ["http://127.0.0.1:'$P_SH2'"]'
umbra_config $P_NONE $((P_NONE + 1)) "sqlite://$WORK/none.db" $P_UP $P_SH1 "" >"$WORK/none.toml"
umbra_config $P_ONE $((P_ONE + 1)) "sqlite://$WORK/one.db" $P_UP $P_SH1 \
  '{ service = "shadow", percent = 100 }' >"$WORK/one.toml"
{ umbra_config $P_TWO $((P_TWO + 1)) "sqlite://$WORK/two.db" $P_UP $P_SH1 \
    '[{ service = "shadow", percent = 100 }, { service = "shadow2", percent = 100 }]'
  echo "$second"; } >"$WORK/two.toml"
for who in none one two; do
  "$UMBRA" check -c "$WORK/$who.toml" || exit 1
  "$UMBRA" run -c "$WORK/$who.toml" >"$WORK/$who.log" 2>&1 & pids+=("$!")
done
sleep 3
port() { case $1 in none) echo $P_NONE ;; one) echo $P_ONE ;; two) echo $P_TWO ;; esac; }
echo "round proxy req/s p99"
for r in $(seq 1 "$ROUNDS"); do
  for who in none one two; do
    p=$(port "$who")
    wrk -t2 -c32 -d2s "http://127.0.0.1:$p/" >/dev/null 2>&1
    out=$(wrk -t2 -c32 -d10s --latency "http://127.0.0.1:$p/" 2>&1)
    echo "$r $who $(echo "$out" | awk '/Requests\/sec/ {print $2}') $(echo "$out" | awk '$1 == "99%" {print $2}')"
    sleep 2   # queued shadows and store writes drain before the next run
  done
done | tee "$WORK/runs.txt"
for who in one two; do
  echo "$who: $(curl -s "http://127.0.0.1:$(( $(port "$who") + 1 ))/api/routes/api" | grep -o '"shadow_sent":[0-9]*,"shadow_dropped":[0-9]*\|"shadow_dropped":[0-9]*' | head -1)"
done
med() { awk -v w="$1" '$2 == w {print $3}' "$WORK/runs.txt" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
n=$(med none) o=$(med one) t=$(med two)
awk -v n="$n" -v o="$o" -v t="$t" 'BEGIN {printf "median req/s: none %.0f, one candidate %.0f, two candidates %.0f; ratio two/one %.3f, one/none %.3f\n", n, o, t, t / o, o / n}'
