#!/usr/bin/env bash
# The whole test suite: finds (or starts) PostgreSQL and Redis on 127.0.0.1, then runs
# formatting, lints and every test of the workspace. Fails loudly when a service is
# missing — tests are never skipped silently.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

PG_URL="${INLET_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

pg_up() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p "${1:-5432}"; }

ensure_postgres() {
  if [ -n "${INLET_TEST_PG_URL:-}" ]; then say "PostgreSQL: using INLET_TEST_PG_URL"; return; fi
  if pg_up 5432; then say "PostgreSQL: found on 127.0.0.1:5432"; return; fi
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    say "PostgreSQL: starting the installed cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_up 5432 && { say "PostgreSQL: started"; return; }; sleep 1; done
  fi
  # A private throwaway cluster, for machines with the server binaries but no cluster.
  local bin; bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -n "$bin" ] && [ -x "$bin/initdb" ]; then
    local data="$PWD/target/pg-test" port=54329 run=()
    [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
    say "PostgreSQL: starting a private cluster in $data on port $port"
    rm -rf "$data"; mkdir -p "$data"; [ "$(id -u)" = 0 ] && chown postgres "$data"
    "${run[@]}" "$bin/initdb" -A trust -U postgres -D "$data" >/dev/null
    "${run[@]}" "$bin/pg_ctl" -D "$data" -l "$data/log" -o "-c listen_addresses=127.0.0.1 -p $port -k /tmp" start >/dev/null
    for _ in $(seq 1 30); do pg_up "$port" && { PG_URL="postgres://postgres@127.0.0.1:$port/postgres"; return; }; sleep 1; done
  fi
  die "PostgreSQL is not running on 127.0.0.1:5432 and could not be started. Install it (apt-get install -y postgresql) or set INLET_TEST_PG_URL."
}

ensure_redis() {
  if command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
    say "Redis: found on 127.0.0.1:6379"; return
  fi
  if command -v redis-server >/dev/null; then
    say "Redis: starting on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG && return; sleep 1; done
  fi
  die "Redis is not running on 127.0.0.1:6379 and could not be started. Install it (apt-get install -y redis-server)."
}

ensure_postgres
ensure_redis
export INLET_TEST_PG_URL="$PG_URL"
export INLET_TEST_REDIS_URL="${INLET_TEST_REDIS_URL:-redis://127.0.0.1:6379}"

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy -j2 --workspace --all-targets -- -D warnings
say "cargo test"
cargo test -j2 --workspace
