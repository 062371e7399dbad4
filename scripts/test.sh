#!/usr/bin/env bash
# Run the whole test suite. PostgreSQL-backed tests run when FUNDTRAIL_TEST_POSTGRES_URL is set,
# or when a PostgreSQL server answers on 127.0.0.1:5432 (then the `test` database is used).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${FUNDTRAIL_TEST_POSTGRES_URL:-}" ] && command -v pg_isready >/dev/null 2>&1 \
   && pg_isready -q -h 127.0.0.1 -p 5432; then
  export FUNDTRAIL_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:5432/test"
fi
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
