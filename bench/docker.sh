#!/usr/bin/env bash
# Docker discovery timings against the real engine, from the discovery integration test:
# `docker run` → route live through umbra, and a rolling `docker stop`/`start` of one of two
# replicas under steady load (4 client loops) with the failures counted.
#
#   bash bench/docker.sh        # appends the figures to bench/RESULTS.md
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
out=$(cargo test -q -p umbra --test docker labelled_replicas -- --nocapture 2>&1 | grep MEASURED || true)
[[ -n "$out" ]] || { echo "the discovery test printed no figures (is a Docker engine running?)" >&2; exit 1; }
section=$(printf '\n## %s — Docker discovery (%s)\n\nCommand: `bash bench/docker.sh` (debug build of umbra on the host, containers of umbra'"'"'s scratch image running `demo-app`, %s CPUs)\n\n%s\n' \
  "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git rev-parse --short HEAD)" "$(nproc)" "$(echo "$out" | sed 's/^MEASURED /- /')")
echo "$section" >> bench/RESULTS.md
echo "$section"
