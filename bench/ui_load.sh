#!/usr/bin/env bash
# UI load with 10,000 stored comparisons: `bash bench/ui_load.sh`, from anywhere.
# Fills a real SQLite store with 10,000 comparisons through the ComparisonStore trait, serves the
# admin router on 127.0.0.1 (ephemeral port) and prints, per page, the time to a whole HTTP
# response (p50/p95/max of 30) and, when chromium and chromedriver are installed, Chromium's
# navigation timings (median of 10: response end, DOMContentLoaded, load).
# It is the ignored test `ui_load` of umbra-admin, built with the release profile
# (UI_LOAD_PROFILE=debug for a quicker, slower-running build).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PROFILE_ARGS=(--release)
if [[ "${UI_LOAD_PROFILE:-release}" == "debug" ]]; then
  PROFILE_ARGS=()
fi
exec cargo test "${PROFILE_ARGS[@]}" -p umbra-admin --test ui_load -- \
  --ignored --nocapture --test-threads=1
