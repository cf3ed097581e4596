#!/usr/bin/env bash
# TLS benchmark (issue 15): umbra's HTTPS listener against nginx with TLS, same certificate
# (ECDSA P-256), same TLS 1.3 suite (TLS_AES_128_GCM_SHA256, forced on the client), same
# upstream (an nginx answering a small JSON body), h2load from Debian's nghttp2-client.
#   - new TLS handshakes/s: h2load -n 3000 -c 3000 (each connection: a full handshake and one request)
#   - keep-alive req/s over TLS HTTP/1.1 (h2load --h1 -c 32) and HTTP/2 (h2load -c 32 -m 10)
#   - umbra's idle RSS with TLS on, after start and after the runs
# Uses the release binary (built once if missing). Prints a table and appends it to
# bench/RESULTS.md under "issue 15: TLS". Everything it starts is killed on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
WORK=/tmp/umbra-bench-tls
UMBRA="${CARGO_TARGET_DIR:-$ROOT/target}/release/umbra"
DURATION="${BENCH_DURATION:-10}"
SUITE=TLS_AES_128_GCM_SHA256
P_UP=18100 P_PLAIN=18180 P_ADMIN=18181 P_UMBRA=18443 P_NGINX=18444

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${PIDS[@]:-}"; do [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '[bench-tls %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for t in nginx h2load curl openssl; do command -v "$t" >/dev/null || die "$t not installed"; done
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cd "$ROOT"
[[ -x "$UMBRA" ]] || cargo build --release -p umbra
rm -rf "$WORK" && mkdir -p "$WORK"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=bench.test \
  -addext subjectAltName=DNS:bench.test 2>/dev/null

PIDS+=("$(start_fast_upstream upstream $P_UP)")

umbra_config $P_PLAIN $P_ADMIN "sqlite://$WORK/umbra.db" $P_UP $P_UP "" >"$WORK/umbra.toml"
cat >>"$WORK/umbra.toml" <<CONF
[tls]
listen = "127.0.0.1:$P_UMBRA"
storage = "$WORK/tls"
certs = [{ cert = "$WORK/cert.pem", key = "$WORK/key.pem" }]
CONF
"$UMBRA" run -c "$WORK/umbra.toml" >"$WORK/umbra.log" 2>&1 &
UMBRA_PID=$!
PIDS+=("$UMBRA_PID")

mkdir -p "$WORK/nginx"
{ nginx_common "$WORK/nginx"
  echo "worker_processes 2;"
  echo "http {"
  nginx_http_common "$WORK/nginx"
  cat <<CONF
  upstream api { server 127.0.0.1:$P_UP; keepalive 64; }
  server {
    listen 127.0.0.1:$P_NGINX ssl http2;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    location / {
      proxy_pass http://api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
} >"$WORK/nginx/nginx.conf"
nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/out.log" 2>&1 &
PIDS+=("$!")

wait_https() {
  local i
  for i in $(seq 1 100); do
    curl -sk -o /dev/null --max-time 1 "https://127.0.0.1:$1/" && return 0
    sleep 0.1
  done
  die "nothing answering on :$1"
}
wait_https $P_UMBRA
wait_https $P_NGINX
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$UMBRA_PID/status"; }
RSS_IDLE=$(rss)

# h2load's "finished in ..., N req/s" figure.
reqs() { sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' | head -1; }
run_h2load() {  # NAME PORT ARGS...
  local name=$1 port=$2; shift 2
  h2load --tls13-ciphers=$SUITE "$@" "https://127.0.0.1:$port/" >"$WORK/$name-$port.txt" 2>&1 || true
  local failed; failed=$(sed -n 's/.* \([0-9]*\) failed,.*/\1/p' "$WORK/$name-$port.txt" | head -1)
  printf '%s (failed %s)' "$(reqs <"$WORK/$name-$port.txt")" "${failed:-?}"
}

declare -A R
for round in 1 2; do
  for port in $P_UMBRA $P_NGINX; do
    log "round $round :$port"
    R[hs,$port,$round]=$(run_h2load handshakes $port --h1 -t 2 -n 3000 -c 3000)
    R[h1,$port,$round]=$(run_h2load h1 $port --h1 -t 2 -c 32 -D "$DURATION" --warm-up-time=2)
    R[h2,$port,$round]=$(run_h2load h2 $port -t 2 -c 32 -m 10 -D "$DURATION" --warm-up-time=2)
  done
done
RSS_AFTER=$(rss)

REPORT="$WORK/report.md"
{
  echo
  echo "## issue 15: TLS — $(date -u '+%Y-%m-%d %H:%M') UTC — $(git rev-parse --short HEAD)"
  echo
  echo "Command: \`bash bench/tls.sh\` (h2load $(h2load --version | awk '{print $2}'), TLS 1.3 $SUITE forced by the client, ECDSA P-256 certificate; umbra workers = 2 (rustls, ring), nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') 2 workers, session cache off; both proxy to one nginx upstream (1 worker); 2 CPUs shared by everything incl. h2load; two rounds, interleaved)"
  echo
  echo "| measure | umbra round 1 | umbra round 2 | nginx round 1 | nginx round 2 |"
  echo "|---|---:|---:|---:|---:|"
  echo "| new TLS handshakes/s (3000 connections, 1 request each, HTTP/1.1) | ${R[hs,$P_UMBRA,1]} | ${R[hs,$P_UMBRA,2]} | ${R[hs,$P_NGINX,1]} | ${R[hs,$P_NGINX,2]} |"
  echo "| keep-alive req/s, TLS HTTP/1.1, 32 connections, ${DURATION} s | ${R[h1,$P_UMBRA,1]} | ${R[h1,$P_UMBRA,2]} | ${R[h1,$P_NGINX,1]} | ${R[h1,$P_NGINX,2]} |"
  echo "| req/s, TLS HTTP/2, 32 connections × 10 streams, ${DURATION} s | ${R[h2,$P_UMBRA,1]} | ${R[h2,$P_UMBRA,2]} | ${R[h2,$P_NGINX,1]} | ${R[h2,$P_NGINX,2]} |"
  echo
  echo "| umbra memory (VmRSS) with TLS on | value |"
  echo "|---|---:|"
  echo "| idle, right after start | $RSS_IDLE |"
  echo "| after the runs | $RSS_AFTER |"
} >"$REPORT"
cat "$REPORT"
cat "$REPORT" >>"$ROOT/bench/RESULTS.md"
