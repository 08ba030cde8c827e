#!/bin/sh
# Run once by the postgres image at the first start of its volume (/docker-entrypoint-initdb.d): creates the
# AIWS ledger's user and database ("aiws") next to Orthanc's index. AIWS makes its tables itself at start-up
# (alembic migrations, aiws.ledger.pg). tests/test_deploy.py runs this script against a real PostgreSQL.
set -eu
: "${AIWS_DB_PASSWORD:?set AIWS_DB_PASSWORD in deploy/.env}"
user="${AIWS_DB_USER:-aiws}"  # the user and database AIWS_LEDGER_URL names in compose.yaml
psql -v ON_ERROR_STOP=1 -v password="$AIWS_DB_PASSWORD" -v user="$user" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'EOSQL'
CREATE USER :"user" WITH PASSWORD :'password';
CREATE DATABASE :"user" OWNER :"user";
EOSQL
