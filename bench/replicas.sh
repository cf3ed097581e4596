#!/usr/bin/env bash
# issue 14: how long a runtime change made through one umbra replica takes to show on another.
# Two real `umbra run` processes on one private throwaway PostgreSQL (crates/umbra/tests/
# replicas.rs): ROUNDS times, a canary weight is PUT through replica A's admin API and B's
# `GET /api/routes/api` is polled (2 ms apart) until it shows the new weight. The time counts
# A's whole request (apply, store write, commit) plus NOTIFY, B's re-read and apply, and the
# polling granularity. Needs PostgreSQL's server binaries (scripts/pg-test-env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-200}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
UMBRA_REPLICA_ROUNDS=$ROUNDS nice -n 5 cargo test -q -p umbra --test replicas -- --nocapture 2>&1 |
  grep -E "replica propagation|test result"
