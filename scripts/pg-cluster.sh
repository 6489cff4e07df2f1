#!/bin/sh
# Start a throwaway PostgreSQL cluster on 127.0.0.1 (Debian's postgresql package) and print its
# DATABASE_URL. Usage: scripts/pg-cluster.sh [port] [datadir]   — stop: pg_ctl -D datadir stop
set -eu
PORT="${1:-54329}"
DATA="${2:-/tmp/chatsite-pg-$PORT}"
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
RUNAS=""
[ "$(id -u)" = 0 ] && RUNAS="runuser -u postgres --"
if [ ! -f "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA"
    [ -n "$RUNAS" ] && chown postgres "$DATA"
    $RUNAS "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
fi
if ! $RUNAS "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    $RUNAS "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c max_connections=300 -c fsync=off" start >/dev/null
fi
"$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc \
    "SELECT 1 FROM pg_roles WHERE rolname='chatsite'" | grep -q 1 || \
    { "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qc \
        "CREATE ROLE chatsite LOGIN SUPERUSER PASSWORD 'chatsite'" &&
      "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qc "CREATE DATABASE chatsite OWNER chatsite"; }
echo "postgres://chatsite:chatsite@127.0.0.1:$PORT/chatsite"
