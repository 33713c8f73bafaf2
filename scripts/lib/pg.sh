#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the tests: initdb in DIR, a Unix socket in DIR
# (and 127.0.0.1:PORT when PG_TCP_PORT is set), trust authentication for the
# superuser quell and one database quell. DIR/env then holds QUELL_TEST_PG, the
# libpq connection string. PostgreSQL refuses to run as root: as root the cluster
# belongs to nobody. Durability is off (fsync): the data lives as long as the test.
#   scripts/lib/pg.sh up DIR     start (DIR is created; must not hold a cluster)
#   scripts/lib/pg.sh down DIR   stop and remove DIR
set -euo pipefail
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: pg.sh up|down DIR" >&2; exit 2; }

bin=
for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
  [ -x "$d/initdb" ] && { bin=$d; break; }
done
[ -n "$bin" ] || { echo "pg.sh: no PostgreSQL server (apt-get install postgresql-15)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

case "$cmd" in
up)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" -eq 0 ]; then
    chown nobody: "$dir"
    runuser -u nobody -- test -w "$dir" ||
      { echo "pg.sh: nobody cannot reach $dir: its parents must be searchable" >&2; exit 1; }
  fi
  as_owner "$bin/initdb" -D "$dir/data" -U quell -A trust -E UTF8 --no-locale \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  listen=''
  [ -n "${PG_TCP_PORT:-}" ] && listen=127.0.0.1
  port=${PG_TCP_PORT:-5432}
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-k $dir -p $port -c listen_addresses='$listen' -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  "$bin/psql" -h "$dir" -p "$port" -U quell -d postgres -qAt \
    -c "CREATE DATABASE quell" >/dev/null
  echo "QUELL_TEST_PG='host=$dir port=$port user=quell dbname=quell'" >"$dir/env"
  ;;
down)
  [ -d "$dir/data" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop \
    >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: pg.sh up|down DIR" >&2; exit 2
  ;;
esac
