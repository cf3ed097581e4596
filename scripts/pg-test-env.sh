#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries (initdb, pg_ctl) are there for umbra-store's tests,
# which start their own throwaway cluster on a free loopback port. Idempotent.
# As root with apt-get, installs Debian's `postgresql` (without creating its default cluster);
# otherwise prints how to. Prints the bin directory the tests will use.
set -euo pipefail

find_bin() {
  if [[ -n "${UMBRA_PG_BIN:-}" && -x "$UMBRA_PG_BIN/initdb" ]]; then echo "$UMBRA_PG_BIN"; return; fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return; }
  done
  d=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")
  [[ -x "$d/initdb" ]] && echo "$d"
  return 0
}

bin=$(find_bin)
if [[ -z "$bin" ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    # No default 'main' cluster on 5432: the tests make their own.
    mkdir -p /etc/postgresql-common
    [[ -f /etc/postgresql-common/createcluster.conf ]] ||
      echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(find_bin)
  fi
fi
if [[ -z "$bin" ]]; then
  echo "PostgreSQL server binaries not found. Install them: apt-get install postgresql" >&2
  echo "(or set UMBRA_PG_BIN to the directory holding initdb and pg_ctl)" >&2
  exit 1
fi
if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
  echo "running as root but there is no 'postgres' user for the test cluster to run as" >&2
  exit 1
fi
echo "$bin"
