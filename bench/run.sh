#!/usr/bin/env bash
# umbra benchmark harness: one command, `bash bench/run.sh`, from anywhere.
# Builds umbra (release), starts nginx upstreams/peers, a 200 ms slow upstream (nginx with the
# echo module, else Python) and umbra on 127.0.0.1 only, runs wrk against each, prints a table
# and appends it to bench/RESULTS.md.
# Everything it starts is killed on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
WORK=/tmp/umbra-bench
OUT="$WORK/results"
UMBRA="${CARGO_TARGET_DIR:-$ROOT/target}/release/umbra"
DURATION="${BENCH_DURATION:-10s}"
# Every proxy scenario runs this many times, interleaved; the report gives medians (one run's
# p99 on this shared 2-core VM swings by ±30 %, see bench/RESULTS.md).
ROUNDS="${BENCH_ROUNDS:-3}"
WRK_ARGS=(-t2 -c32 -d"$DURATION" --latency)
CMDLINE="bash bench/run.sh${BENCH_DURATION:+ (BENCH_DURATION=$BENCH_DURATION)}${BENCH_ROUNDS:+ (BENCH_ROUNDS=$BENCH_ROUNDS)}"

P_FAST=18000 P_SHADOW_FAST=18001 P_SLOW=18002 P_UMBRA=18080 P_ADMIN=18081 P_NGINX=18090

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do
    [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 0.5
  for pid in "${PIDS[@]:-}"; do
    [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for t in nginx wrk curl python3 sqlite3; do command -v "$t" >/dev/null || die "$t not installed"; done
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# The real interpreter, not a pyenv-style shim, so that $! is the server's own pid.
PY=$(python3 -c 'import sys; print(sys.executable)')

# ---------------------------------------------------------------- build
cd "$ROOT"
log "cargo build --release -p umbra"
for attempt in 1 2 3 4 5; do
  if cargo build --release -p umbra; then break; fi
  [[ $attempt == 5 ]] && die "release build failed 5 times"
  log "build failed (attempt $attempt); retrying in 60 s"
  sleep 60
done
[[ -x "$UMBRA" ]] || die "no binary at $UMBRA"

rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $P_FAST $P_SHADOW_FAST $P_SLOW $P_UMBRA $P_ADMIN $P_NGINX; do
  port_busy "$p" && die "port $p already in use on 127.0.0.1"
done

# wait_http PORT: until GET / answers (10 s max)
wait_http() {
  local i
  for i in $(seq 1 100); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
    sleep 0.1
  done
  die "nothing answering on :$1"
}

# stop PID: TERM, wait up to 10 s, then KILL
stop() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- nginx configs
# (nginx_common, nginx_http_common and start_fast_upstream are in lib.sh)

# start_nginx_peer MIRROR(none|slow|fast) -> echoes pid
start_nginx_peer() {
  local dir="$WORK/nginx-peer-$1" mirror_line="" mirror_port=$P_SLOW
  mkdir -p "$dir"
  case $1 in
    none) ;;
    slow) mirror_line="mirror /m;"; mirror_port=$P_SLOW ;;
    fast) mirror_line="mirror /m;"; mirror_port=$P_SHADOW_FAST ;;
  esac
  { nginx_common "$dir"
    echo "worker_processes 2;"
    echo "http {"
    nginx_http_common "$dir"
    cat <<CONF
  upstream fast { server 127.0.0.1:$P_FAST; keepalive 64; keepalive_requests 1000000; }
  upstream shadow { server 127.0.0.1:$mirror_port; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$P_NGINX;
    location / {
      $mirror_line
      proxy_pass http://fast;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    location = /m {
      internal;
      proxy_pass http://shadow\$request_uri;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
  } >"$dir/nginx.conf"
  nginx -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" || die "bad nginx peer config ($1)"
  nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
  echo $!
}

# start_umbra SHADOW(none|slow|fast) -> echoes pid
start_umbra() {
  local dir="$WORK/umbra-$1" shadow_port=$P_SLOW
  mkdir -p "$dir"
  rm -f "$WORK"/umbra.db*
  [[ $1 == fast ]] && shadow_port=$P_SHADOW_FAST
  local shadow=""
  [[ $1 != none ]] && shadow='{ service = "shadow", percent = 100, timeout = "5s", max_in_flight = 256 }'
  umbra_config $P_UMBRA $P_ADMIN "sqlite://$WORK/umbra.db" $P_FAST "$shadow_port" "$shadow" >"$dir/umbra.toml"
  "$UMBRA" check -c "$dir/umbra.toml" >&2 || die "umbra check failed for $dir/umbra.toml"
  "$UMBRA" run -c "$dir/umbra.toml" >"$dir/umbra.log" 2>&1 &
  echo $!
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# second_req NAME PORT: 5 x (two GETs on one curl = one keep-alive connection) -> "t1 t2" lines
second_req() {
  local i
  : >"$OUT/curl2_$1.txt"
  for i in 1 2 3 4 5; do
    curl -s --max-time 5 -o /dev/null -o /dev/null -w '%{time_total}\n' \
      "http://127.0.0.1:$2/" "http://127.0.0.1:$2/" | paste -sd' ' >>"$OUT/curl2_$1.txt" || true
    sleep 0.3
  done
}

# bench NAME PORT: 2 s warm-up, then the measured wrk run
# cpu_ticks PID... -> user+sys clock ticks of those processes (and their threads)
cpu_ticks() {
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}

# host_steal -> "steal total" jiffies of all CPUs: the share of time the hypervisor gave this VM's
# CPUs to someone else. On a shared VM it comes in bursts; a run that lost much to it measures
# the neighbours, not the proxy (bench/RESULTS.md, session 6).
host_steal() {
  awk '/^cpu / {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}

# bench NAME PORT [PID...]: wrk run; with PIDs also the proxy's CPU time per request (user+sys),
# which is steadier than req/s on a shared 2-core box.
bench() {
  local name=$1 port=$2 before after n
  shift 2
  log "wrk $name (:$port)"
  timeout 20 wrk -t2 -c32 -d2s "http://127.0.0.1:$port/" >/dev/null 2>&1 || true
  before=$(cpu_ticks "$@")
  local stolen_before
  stolen_before=$(host_steal)
  timeout 60 wrk "${WRK_ARGS[@]}" "http://127.0.0.1:$port/" >"$OUT/wrk_$name.txt" 2>&1 || log "wrk $name exited non-zero"
  after=$(cpu_ticks "$@")
  # shellcheck disable=SC2086
  awk -v a="$stolen_before" -v b="$(host_steal)" 'BEGIN {split(a, x, " "); split(b, y, " "); d = y[2] - x[2]; printf "%.1f\n", (d > 0 ? 100 * (y[1] - x[1]) / d : 0)}' >"$OUT/steal_$name.txt"
  n=$(awk '/requests in/ {print $1}' "$OUT/wrk_$name.txt")
  if [[ $# -gt 0 && -n "$n" && "$n" -gt 0 ]]; then
    awk -v t=$((after - before)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f\n", t * 1e6 / hz / n}' >"$OUT/cpu_$name.txt"
  fi
  set -- "$name" "$port"
  grep -E 'Requests/sec|Non-2xx|Socket errors' "$OUT/wrk_$1.txt" | sed 's/^/    /' >&2 || true
}

# ---------------------------------------------------------------- upstreams
log "starting upstreams"
pid=$(start_fast_upstream upstream-fast $P_FAST); PIDS+=("$pid")
pid=$(start_fast_upstream upstream-shadow-fast $P_SHADOW_FAST); PIDS+=("$pid")
# The 200 ms slow upstream: nginx with the echo module (Debian libnginx-mod-http-echo) when it
# is installed, else a small Python server. The Python one spends ~9 % of a core serving the
# ~1,300 shadow requests/s umbra sends it, CPU taken from the very box being measured (in
# production the shadow runs elsewhere); nginx+echo costs a fraction of that.
ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so
if [[ -f $ECHO_MODULE ]]; then
  SLOW_KIND="nginx + echo_sleep"
  mkdir -p "$WORK/upstream-slow"
  { echo "load_module $ECHO_MODULE;"
    nginx_common "$WORK/upstream-slow"
    echo "worker_processes 1;"
    echo "http {"
    nginx_http_common "$WORK/upstream-slow"
    cat <<CONF
  server {
    listen 127.0.0.1:$P_SLOW;
    location / {
      default_type application/json;
      echo_sleep 0.2;
      echo -n '{"ok":true,"items":[1,2,3]}';
    }
  }
}
CONF
  } >"$WORK/upstream-slow/nginx.conf"
  nginx -p "$WORK/upstream-slow" -e "$WORK/upstream-slow/error.log" -c "$WORK/upstream-slow/nginx.conf" >"$WORK/slow_upstream.log" 2>&1 &
else
  SLOW_KIND="Python asyncio (bench/slow_upstream.py)"
  "$PY" "$BENCH/slow_upstream.py" $P_SLOW 200 >"$WORK/slow_upstream.log" 2>&1 &
fi
PIDS+=("$!")
wait_http $P_FAST; wait_http $P_SHADOW_FAST; wait_http $P_SLOW

# ---------------------------------------------------------------- scenarios, in rounds
# Round 1 also measures memory, the second request on one connection and the store contents.
for round in $(seq 1 "$ROUNDS"); do
  R="_r$round"
  log "round $round of $ROUNDS"
  [[ $round == 1 ]] && second_req direct $P_FAST
  bench "direct$R" $P_FAST

  NGINX_PID=$(start_nginx_peer none); PIDS+=("$NGINX_PID")
  wait_http $P_NGINX
  [[ $round == 1 ]] && second_req nginx $P_NGINX
  bench "nginx$R" $P_NGINX $(pgrep -P "$NGINX_PID")
  stop "$NGINX_PID"

  UMBRA_PID=$(start_umbra none); PIDS+=("$UMBRA_PID")
  wait_http $P_UMBRA
  sleep 1
  if [[ $round == 1 ]]; then
    IDLE_KB=$(rss_kb "$UMBRA_PID")
    log "umbra idle RSS ${IDLE_KB} kB; holding 1000 keep-alive connections"
    HOLD=$(timeout 60 "$PY" "$BENCH/hold_conns.py" 127.0.0.1 $P_UMBRA "$UMBRA_PID" 1000 5 || echo "opened=0 ok=0 failed=1000 rss_kb=0")
    log "  $HOLD"
    sleep 1
    second_req umbra $P_UMBRA
  fi
  bench "umbra$R" $P_UMBRA "$UMBRA_PID"
  if [[ $round == 1 ]]; then
    AFTER_KB=$(rss_kb "$UMBRA_PID")
    echo "idle_kb=$IDLE_KB $HOLD after_wrk_kb=$AFTER_KB" >"$OUT/mem.txt"
  fi
  stop "$UMBRA_PID"

  for kind in slow fast; do
    UMBRA_PID=$(start_umbra "$kind"); PIDS+=("$UMBRA_PID")
    wait_http $P_UMBRA
    sleep 1
    [[ $round == 1 ]] && second_req "umbra_shadow_$kind" $P_UMBRA
    bench "umbra_shadow_$kind$R" $P_UMBRA "$UMBRA_PID"
    sleep 2                # let queued shadows and store writes drain
    stop "$UMBRA_PID"      # graceful stop flushes the store
    sqlite3 "$WORK/umbra.db" \
      "SELECT 'comparisons=' || (SELECT count(*) FROM comparisons) ||
              ' full_rows=' || (SELECT count(*) FROM comparisons WHERE detail IS NOT NULL) ||
              ' stats_total=' || IFNULL((SELECT sum(total) FROM endpoint_stats),0) ||
              ' stats_same=' || IFNULL((SELECT sum(same) FROM endpoint_stats),0) ||
              ' stats_different=' || IFNULL((SELECT sum(different) FROM endpoint_stats),0) ||
              ' stats_shadow_error=' || IFNULL((SELECT sum(shadow_error) FROM endpoint_stats),0);" \
      >"$OUT/store_$kind$R.txt" 2>&1 || echo "comparisons=error" >"$OUT/store_$kind$R.txt"
    log "  store after $kind-shadow run: $(cat "$OUT/store_$kind$R.txt")"
    grep -iE 'error|warn|panic' "$WORK/umbra-$kind/umbra.log" | head -5 | sed 's/^/    umbra log: /' >&2 || true

    NGINX_PID=$(start_nginx_peer "$kind"); PIDS+=("$NGINX_PID")
    wait_http $P_NGINX
    [[ $round == 1 ]] && second_req "nginx_mirror_$kind" $P_NGINX
    bench "nginx_mirror_$kind$R" $P_NGINX $(pgrep -P "$NGINX_PID")
    stop "$NGINX_PID"
  done
done

# ---------------------------------------------------------------- report
TABLE=$("$PY" "$BENCH/report.py" "$OUT")
{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo nogit)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty')"
  echo
  echo "Command: \`$CMDLINE\` (wrk \`${WRK_ARGS[*]}\`, each after a 2 s warm-up; $ROUNDS interleaved rounds, medians shown; $(nproc) CPUs, $(nginx -v 2>&1 | sed 's/.*: //'), umbra workers = 2, nginx peer 2 workers, upstream nginx 1 worker; slow upstream: $SLOW_KIND; everything incl. wrk on one host)"
  echo
  echo "$TABLE"
} >"$WORK/section.md"
[[ -f "$BENCH/RESULTS.md" ]] || printf '# umbra benchmark results\n\nAppended by `bash bench/run.sh`; raw wrk outputs of the latest run are in /tmp/umbra-bench/results.\n' >"$BENCH/RESULTS.md"
cat "$WORK/section.md" >>"$BENCH/RESULTS.md"
cat "$WORK/section.md"
log "raw outputs in $OUT; appended to bench/RESULTS.md"
