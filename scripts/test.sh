#!/usr/bin/env bash
# The README's test command: runs every test of the workspace (unit, integration, store
# conformance against real SQLite and a private PostgreSQL cluster the tests start).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x scripts/pg-test-env.sh ] || [ -f scripts/pg-test-env.sh ]; then
  bash scripts/pg-test-env.sh || echo "warning: PostgreSQL tooling missing; store tests will say so" >&2
fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
