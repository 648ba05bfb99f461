#!/usr/bin/env bash
# The portfolio report (issue 16) on the load benchmark's data set on
# PostgreSQL: 10 000 users, 50 000 loans of 20 installments (1 000 000
# installments), first due up to 400 days ago; installments more than 60
# days past due are paid, so the loans fall in CURRENT, 1-30 and 31-60.
# Target: under 200 ms.
#
#   bash bench/portfolio.sh
#
# Times GET /reports/portfolio (JSON and CSV) and a bucket-filtered loan
# list through the release service, and `loan-tracker report portfolio`;
# prints each statement's plan. Uses a scratch database `lt_portfoliobench`,
# dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

DB=lt_portfoliobench
PG="psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -q"
RUNS=${RUNS:-30}
mkdir -p bench/out

echo "== building the release binary"
cargo build --profile dist --locked --quiet --bin loan-tracker
BIN=target/dist/loan-tracker

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
URL="postgres://postgres@127.0.0.1:5432/$DB"

cleanup() {
    [ -n "${SERVICE_PID:-}" ] && kill "$SERVICE_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    $PG -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

$PG -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
export DATABASE_URL="$URL" JWT_SECRET="portfolio-bench-secret-0123456789abcdef" \
    ADMIN_EMAIL=admin@bench.example ADMIN_USERNAME=benchadmin ADMIN_PASSWORD='bench admin password' \
    RATE_LIMIT_PER_MINUTE=1000000000 AUTH_RATE_LIMIT_PER_MINUTE=1000000000 SCHEDULER_ENABLED=false \
    LOG_FORMAT=json RUST_LOG=warn
HOST=127.0.0.1 PORT="$PORT" "$BIN" serve --no-worker > bench/out/portfolio-service.log 2>&1 &
SERVICE_PID=$!
for _ in $(seq 1 100); do curl -fsS "$BASE/health/ready" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "$BASE/health/ready" >/dev/null

echo "== seeding 50 000 loans"
started=$(date +%s)
$PG -d $DB -v users=1 -v first=1 -v last=50000 -v hash="'not-a-login'" -f bench/seed.sql
$PG -d $DB -f bench/seed_ledger.sql
echo "seeded in $(( $(date +%s) - started )) s: $($PG -d $DB -tAc "SELECT COUNT(*) FROM loans") loans, $($PG -d $DB -tAc "SELECT COUNT(*) FROM installments") installments"

TOKEN=$(curl -fsS -X POST "$BASE/auth/login" -H 'content-type: application/json' \
    -d '{"username":"benchadmin","password":"bench admin password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')

# Median, p90 and max of $RUNS timed requests (after 3 untimed ones).
time_requests() {
    local label=$1; shift
    for _ in 1 2 3; do curl -fsS -o /dev/null "$@"; done
    for _ in $(seq 1 "$RUNS"); do curl -fsS -o /dev/null -w '%{time_total}\n' "$@"; done \
        | sort -n | awk -v label="$label" '{ v[NR] = $1 * 1000 } END {
            printf "| %s | %.1f | %.1f | %.1f |\n", label, v[int((NR + 1) / 2)], v[int(NR * 0.9)], v[NR] }'
}

echo
curl -fsS "$BASE/reports/portfolio" -H "authorization: Bearer $TOKEN"
echo
echo
echo "| request | median ms | p90 ms | max ms |"
echo "|---|---|---|---|"
time_requests "GET /reports/portfolio" "$BASE/reports/portfolio" -H "authorization: Bearer $TOKEN"
time_requests "GET /reports/portfolio (text/csv)" "$BASE/reports/portfolio" -H "authorization: Bearer $TOKEN" -H 'accept: text/csv'
for bucket in CURRENT 1-30 31-60 91%2B; do
    loans=$(curl -fsS "$BASE/reports/portfolio" -H "authorization: Bearer $TOKEN" | python3 -c "
import json, sys
print({row['bucket']: row['loans'] for row in json.load(sys.stdin)['buckets']}['${bucket/\%2B/+}'])")
    time_requests "GET /loans?bucket=$bucket&limit=20 ($loans loans in it)" "$BASE/loans?bucket=$bucket&limit=20" -H "authorization: Bearer $TOKEN"
done
cli_started=$(date +%s%N)
"$BIN" report portfolio --format csv > /dev/null
echo "| loan-tracker report portfolio (process start to exit) | $(( ($(date +%s%N) - cli_started) / 1000000 )) | | |"

echo
echo "== plans"
$PG -d $DB -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT status, COUNT(*) AS loans,
  CAST(COALESCE(SUM(CASE WHEN approved_at IS NOT NULL THEN principal_minor ELSE 0 END), 0) AS BIGINT),
  CAST(COALESCE(SUM(interest_paid_minor), 0) AS BIGINT), CAST(COALESCE(SUM(penalties_paid_minor), 0) AS BIGINT)
FROM loans GROUP BY status"
$PG -d $DB -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT CASE WHEN next_due_date IS NULL OR next_due_date >= CURRENT_DATE THEN 'CURRENT'
  WHEN next_due_date >= CURRENT_DATE - 30 THEN '1-30' WHEN next_due_date >= CURRENT_DATE - 60 THEN '31-60'
  WHEN next_due_date >= CURRENT_DATE - 90 THEN '61-90' ELSE '91+' END,
  COUNT(*), CAST(COALESCE(SUM(principal_minor - principal_paid_minor), 0) AS BIGINT)
FROM loans WHERE status IN ('APPROVED', 'OVERDUE') GROUP BY 1"
for range in "next_due_date <= CURRENT_DATE - 91" \
             "next_due_date BETWEEN CURRENT_DATE - 60 AND CURRENT_DATE - 31"; do
    $PG -d $DB -c "EXPLAIN (ANALYZE, COSTS OFF)
SELECT * FROM loans WHERE status IN ('APPROVED', 'OVERDUE')
  AND $range ORDER BY id DESC LIMIT 21"
done
