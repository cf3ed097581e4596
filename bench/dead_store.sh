#!/usr/bin/env bash
# Memory and throughput of umbra while its database dies and comes back.
#
#   bash bench/dead_store.sh            # UMBRA=path/to/umbra to use another binary
#
# umbra (release, 2 workers) in front of a 1-worker nginx, shadowing 100 % to a second nginx,
# storing every comparison in a private PostgreSQL cluster. Phases of `wrk -t2 -c32 -d8s`:
# store up, store killed (`pg_ctl stop -m immediate`) ×3, store back. After each: VmRSS,
# req/s, umbra_store_dropped_total and the rows in `comparisons`. Appends to bench/RESULTS.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
WORK=/tmp/umbra-bench-deadstore
UMBRA="${UMBRA:-$ROOT/target/release/umbra}"
P_FAST=18300 P_SHADOW=18301 P_UMBRA=18380 P_ADMIN=18381 P_PG=18432
PGBIN=$(bash "$ROOT/scripts/pg-test-env.sh")
log() { printf '[dead-store %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

[[ -x "$UMBRA" ]] || { log "building release"; (cd "$ROOT" && cargo build --release -p umbra); }
rm -rf "$WORK"; mkdir -p "$WORK"; chmod 777 "$WORK"
PIDS=()
as_pg() { if [[ $(id -u) -eq 0 ]]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$PGBIN/pg_ctl -D $WORK/pg -m immediate stop" >/dev/null 2>&1 || true
}
trap cleanup EXIT

as_pg "$PGBIN/initdb -D $WORK/pg -A trust -U postgres" >/dev/null
pg_start() { as_pg "$PGBIN/pg_ctl -D $WORK/pg -o '-p $P_PG -k $WORK -c listen_addresses=127.0.0.1' -l $WORK/pg.log -w start" >/dev/null; }
pg_kill() { as_pg "$PGBIN/pg_ctl -D $WORK/pg -m immediate stop" >/dev/null; }
pg_start

pid=$(start_fast_upstream upstream-fast $P_FAST); PIDS+=("$pid")
pid=$(start_fast_upstream upstream-shadow $P_SHADOW); PIDS+=("$pid")

umbra_config $P_UMBRA $P_ADMIN "postgres://postgres@127.0.0.1:$P_PG/postgres" $P_FAST $P_SHADOW \
  '{ service = "shadow", percent = 100 }' 'keep_same = 1.0' >"$WORK/umbra.toml"
"$UMBRA" run -c "$WORK/umbra.toml" >"$WORK/umbra.log" 2>&1 & UPID=$!; PIDS+=($UPID)
for i in $(seq 50); do curl -sf "http://127.0.0.1:$P_ADMIN/health/live" >/dev/null && break; sleep 0.2; done

rss() { awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$UPID/status"; }
dropped() { curl -s "http://127.0.0.1:$P_ADMIN/metrics" | awk '/^umbra_store_dropped_total/ {s+=$NF} END {print s+0}'; }
rows() { as_pg "$PGBIN/../bin/psql -h 127.0.0.1 -p $P_PG -U postgres -tAc 'SELECT count(*) FROM comparisons'" 2>/dev/null || echo "(down)"; }
ROWS=()
phase() {
  local name=$1 rps
  rps=$(wrk -t2 -c32 -d8s "http://127.0.0.1:$P_UMBRA/" | awk '/Requests\/sec/ {print $2}')
  sleep 1
  ROWS+=("| $name | $(rss) MiB | $rps | $(dropped) | $(rows) |")
  log "$name: rss=$(rss) MiB req/s=$rps dropped=$(dropped)"
}
ROWS+=("| after start | $(rss) MiB | | 0 | $(rows) |")
phase "store up"
pg_kill; log "PostgreSQL killed"
phase "store dead, run 1"
phase "store dead, run 2"
phase "store dead, run 3"
pg_start; log "PostgreSQL back"; sleep 3
phase "store back"

SECTION=$(cat <<MD

## $(date -u '+%Y-%m-%d %H:%M UTC') — memory under a dead database ($(git -C "$ROOT" rev-parse --short HEAD))

Command: \`bash bench/dead_store.sh\` — umbra (2 workers) shadowing 100 % to a fast nginx, every
comparison stored in PostgreSQL (\`keep_same = 1.0\`); the cluster is killed (\`pg_ctl -m immediate\`)
after the first run and started again before the last. \`wrk -t2 -c32 -d8s\` per phase, $(nproc) CPUs shared.

| phase | VmRSS | req/s | umbra_store_dropped_total | rows in comparisons |
|---|---:|---:|---:|---:|
$(printf '%s\n' "${ROWS[@]}")
MD
)
echo "$SECTION" >>"$ROOT/bench/RESULTS.md"
echo "$SECTION"
