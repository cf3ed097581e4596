#!/usr/bin/env bash
# A quick umbra-vs-nginx A/B, for when bench/run.sh's full 12 minutes are too long: one nginx
# peer (2 workers, upstream keepalive) and one umbra (2 workers) run side by side in front of
# the same fast nginx upstream, and wrk (-t2 -c32, 2 s warm-up, 10 s) alternates between them
# for ROUNDS rounds. Each line: req/s, p99, the proxy's CPU per request (user+sys, µs) and the
# host steal during that run (a run that lost more than a few % measures the neighbours).
# Usage: bash bench/ab.sh [ROUNDS] [UMBRA_BINARY]   (defaults: 5, the release build)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
WORK=/tmp/umbra-ab
P_UP=18200 P_NGINX=18290 P_UMBRA=18300
bench_prelude ab.sh "$WORK" "$@"
pids+=("$(start_fast_upstream up $P_UP)")
dir=$WORK/nginx; mkdir -p "$dir"
{ nginx_common "$dir"; echo "worker_processes 2;"; echo "http {"; nginx_http_common "$dir"; cat <<CONF
  upstream fast { server 127.0.0.1:$P_UP; keepalive 64; keepalive_requests 1000000; }
  server { listen 127.0.0.1:$P_NGINX; location / { proxy_pass http://fast; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF
} >"$dir/nginx.conf"
nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" & NGINX=$!; pids+=("$NGINX")
umbra_config $P_UMBRA $((P_UMBRA + 1)) "sqlite://$WORK/umbra.db" $P_UP $P_UP "" >"$WORK/umbra.toml"
"$UMBRA" run -c "$WORK/umbra.toml" >"$WORK/umbra.log" 2>&1 & UMBRA_PID=$!; pids+=("$UMBRA_PID")
sleep 2
ticks() { local t=0 p; for p in $1; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
steal() { awk '/^cpu / {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
echo "round proxy req/s p99 cpu_us_per_request host_steal"
for r in $(seq 1 "$ROUNDS"); do
  for who in nginx umbra; do
    if [[ $who == nginx ]]; then port=$P_NGINX procs="$(pgrep -P "$NGINX" | tr '\n' ' ')"; else port=$P_UMBRA procs=$UMBRA_PID; fi
    wrk -t2 -c32 -d2s "http://127.0.0.1:$port/" >/dev/null 2>&1
    t0=$(ticks "$procs"); s0=$(steal)
    out=$(wrk -t2 -c32 -d10s --latency "http://127.0.0.1:$port/" 2>&1)
    t1=$(ticks "$procs"); s1=$(steal)
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    echo "$r $who $(echo "$out" | awk '/Requests\/sec/ {print $2}') $(echo "$out" | awk '$1 == "99%" {print $2}')" \
      "$(awk -v t=$((t1 - t0)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}')" \
      "$(awk -v a="$s0" -v b="$s1" 'BEGIN {split(a, x, " "); split(b, y, " "); d = y[2] - x[2]; printf "%.1f%%", (d > 0 ? 100 * (y[1] - x[1]) / d : 0)}')"
  done
done
