#!/usr/bin/env bash
# Run once by the postgres image's entrypoint (/docker-entrypoint-initdb.d) on a
# fresh data directory: the databases and roles of the order saga, as the local
# stack makes them (scripts/stack, provision_databases) — one database and one
# login role per service, each role able to connect only to its own database,
# and the outbox_relay role that may connect to all five (the services'
# migrations grant it the outbox). Every role gets SAGA_DB_PASSWORD.
set -euo pipefail

: "${SAGA_DB_PASSWORD:?set SAGA_DB_PASSWORD (docker-compose.yml does)}"
services="order inventory payment shipping notification"

{
    # psql variables keep the password out of the SQL text we build here.
    echo "SELECT 'CREATE ROLE outbox_relay LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'outbox_relay') \\gexec"
    echo "ALTER ROLE outbox_relay LOGIN PASSWORD :'pw';"
    for s in $services; do
        echo "SELECT 'CREATE ROLE ${s}_service LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${s}_service') \\gexec"
        echo "ALTER ROLE ${s}_service LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';"
        echo "SELECT 'CREATE DATABASE ${s}_service OWNER ${s}_service' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '${s}_service') \\gexec"
        echo "REVOKE ALL ON DATABASE ${s}_service FROM PUBLIC;"
        echo "GRANT CONNECT ON DATABASE ${s}_service TO outbox_relay;"
    done
} | psql -X -q -v ON_ERROR_STOP=1 -v pw="$SAGA_DB_PASSWORD" \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}"

echo "order-saga: databases ready: ${services// /_service }_service"
