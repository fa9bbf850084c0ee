#!/usr/bin/env bash
# STAND-IN for the official postgres image's entrypoint (tests only). On a fresh
# data directory: initdb with POSTGRES_USER / POSTGRES_PASSWORD, a socket-only
# server that runs /docker-entrypoint-initdb.d/*.sh and *.sql, creates
# POSTGRES_DB; then `postgres "$@"` listening on every interface with password
# authentication (scram-sha-256) over TCP, as the postgres user.
set -euo pipefail
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" && chown -R postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
[ "${1:-}" = postgres ] && shift
export POSTGRES_USER=${POSTGRES_USER:-postgres} POSTGRES_DB=${POSTGRES_DB:-${POSTGRES_USER:-postgres}}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?the stand-in, like the official image, needs POSTGRES_PASSWORD}"
    pwfile=$(mktemp)
    echo "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -A scram-sha-256 -E UTF8 --locale=C.UTF-8
    rm -f "$pwfile"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    # as the official image: the socket trusted (inside the container), TCP by password
    { echo "local all all trust"; echo "host all all all scram-sha-256"; } >"$PGDATA/pg_hba.conf"
    # the init scripts run against a server reachable only by its socket, trusted
    cp "$PGDATA/pg_hba.conf" "$PGDATA/pg_hba.conf.final"
    echo "local all all trust" >"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" start
    if [ "$POSTGRES_DB" != postgres ]; then
        psql -X -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\""
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
        *.sh) echo "stand-in entrypoint: running $f"
            if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
        *.sql) echo "stand-in entrypoint: running $f"
            psql -X -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    mv "$PGDATA/pg_hba.conf.final" "$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" -c unix_socket_directories=/var/run/postgresql "$@"
