#!/usr/bin/env bash
# One database and one login per service (passwords from the container's environment);
# each service reaches only its own store.
set -euo pipefail
for service in roster notify lessons hns4d bot; do
  var="${service^^}_DB_PASSWORD"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE ROLE ${service} LOGIN PASSWORD '${!var}';
CREATE DATABASE ${service} OWNER ${service};
REVOKE ALL ON DATABASE ${service} FROM PUBLIC;
SQL
done
