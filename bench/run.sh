#!/usr/bin/env bash
# Load benchmark: the release service on the local PostgreSQL and Redis,
# driven by wrk from another process over loopback, beside the physical
# limits — pgbench running the same SQL at the same concurrency, pgbench
# running a minimal durable money movement (one balance row updated, one
# row inserted, committed), and a bare axum endpoint for the HTTP stack.
# Then the same binary on the embedded default (a SQLite file, no Redis)
# beside a bare sqlx loop sending its statements.
#
#   bash bench/run.sh                         # full run (about 20 minutes, and the dist build)
#   DURATION=3 CONCURRENCIES="16" bash bench/run.sh   # a quick look
#   SERVICE_BIN=/tmp/loan-tracker-before bash bench/run.sh   # another build,
#       e.g. the previous commit's, against the same limits
#
# Seeds 10 000 users and 50 000 loans of 20 installments (1 000 000
# installments) into a scratch database `lt_loadbench`, which it drops at
# the end; the SQLite database lives in a temporary directory. Prints one
# table; also writes it to bench/out/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-6}
# EXTRAS=no leaves out what only later builds have (the books, decisions,
# the console, the replay): for an A/B of the common paths in less time.
EXTRAS=${EXTRAS:-yes}
# REPLAY=no leaves out only the upgrade's replay (about ten minutes).
REPLAY=${REPLAY:-yes}
CONCURRENCIES=${CONCURRENCIES:-"1 16 64"}
ROUNDS=${ROUNDS:-3}
SQLITE_CONCURRENCIES=${SQLITE_CONCURRENCIES:-"1 16"}
DB=lt_loadbench
PG="psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -q"
SECRET="loadbench-secret-$(date +%s)-0123456789abcdef"
PREFIX="loadbench-$$"
mkdir -p bench/out
RESULTS=bench/out/results.md

if ! command -v wrk >/dev/null 2>&1; then
    echo "== installing wrk"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk
fi

echo "== building the release binary, the bare endpoint and the SQLite loop"
cargo build --profile dist --locked --quiet --bin loan-tracker --example bare_http --example sqlite_payment_limit

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
PORT=$(free_port)
BARE_PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"

cleanup() {
    [ -n "${SERVICE_PID:-}" ] && kill "$SERVICE_PID" 2>/dev/null || true
    [ -n "${BARE_PID:-}" ] && kill "$BARE_PID" 2>/dev/null || true
    [ -n "${SQLITE_PID:-}" ] && kill "$SQLITE_PID" 2>/dev/null || true
    [ -n "${SQLITE_DIR:-}" ] && rm -rf "$SQLITE_DIR"
    wait 2>/dev/null || true
    $PG -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    redis-cli -h 127.0.0.1 --scan --pattern "$PREFIX:*" 2>/dev/null | xargs -r redis-cli -h 127.0.0.1 del >/dev/null 2>&1 || true
}
trap cleanup EXIT

$PG -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"

SERVICE_BIN=${SERVICE_BIN:-target/dist/loan-tracker}
# What the footer names: the checkout's commit only when its own build ran.
if [ "$SERVICE_BIN" = target/dist/loan-tracker ]; then
    BUILD="commit $(git rev-parse --short HEAD)"
else
    BUILD="service binary $SERVICE_BIN (the limits' scripts from commit $(git rev-parse --short HEAD))"
fi
DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX="$PREFIX" \
JWT_SECRET="$SECRET" HOST=127.0.0.1 PORT="$PORT" DATABASE_MAX_CONNECTIONS=${POOL:-16} \
ADMIN_EMAIL=admin@bench.example ADMIN_USERNAME=benchadmin ADMIN_PASSWORD='bench admin password' \
RATE_LIMIT_PER_MINUTE=1000000000 AUTH_RATE_LIMIT_PER_MINUTE=1000000000 SCHEDULER_ENABLED=false \
LOG_FORMAT=json RUST_LOG=info \
    "$SERVICE_BIN" serve --no-worker > bench/out/service.log 2>&1 &
SERVICE_PID=$!
for _ in $(seq 1 100); do curl -fsS "$BASE/health/ready" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "$BASE/health/ready" >/dev/null

echo "== seeding"
curl -fsS -X POST "$BASE/auth/register" -H 'content-type: application/json' \
    -d '{"email":"seed@bench.example","username":"seeduser","password":"bench password 1"}' >/dev/null
HASH=$($PG -d $DB -tAc "SELECT password_hash FROM users WHERE username = 'seeduser'")
ADMIN_ID=$($PG -d $DB -tAc "SELECT id FROM users WHERE username = 'benchadmin'")
$PG -d $DB -v users=1 -v first=1 -v last=500 -v hash="'$HASH'" -f bench/seed.sql
python3 bench/tokens.py "$SECRET" "$ADMIN_ID" 1 500 200

# wrk at concurrency $2 for scenario $1; prints "rps p50 p99 errors requests".
run_wrk() {
    local scenario=$1 connections=$2 url=${3:-$BASE}
    local threads=$(( connections < 2 ? 1 : 2 ))
    wrk -t"$threads" -c"$connections" -d"${DURATION}s" --timeout 10s -s "bench/lua/$scenario.lua" "$url" \
        | awk '/^RESULT/ { print $2, $3, $4, $5, $6 }'
}
# pgbench at concurrency $2 for script $1 (extra -D options after); prints tps.
run_pgbench() {
    local script=$1 connections=$2; shift 2
    local threads=$(( connections < 2 ? 1 : 2 ))
    pgbench -h 127.0.0.1 -U postgres -n -M prepared -c "$connections" -j "$threads" -T "$DURATION" "$@" \
        -f "bench/pgbench/$script.sql" $DB 2>/dev/null | awk '/^tps/ { print $3 }'
}
# One row: wrk scenario $2 against pgbench script $3 (options after), at
# concurrency $c, alternating over ROUNDS rounds; each side reports its
# median round (background work in the database, such as autovacuum after
# a burst of writes, otherwise falls on whichever side runs next), and the
# errors of every round.
against_pgbench() {
    local label=$1 scenario=$2 script=$3; shift 3
    local service_runs=() limits=() total_errors=0 run
    for _ in $(seq 1 "$ROUNDS"); do
        run=$(run_wrk "$scenario" "$c")
        service_runs+=("$run")
        total_errors=$(( total_errors + $(echo "$run" | awk '{ print $4 }') ))
        limits+=("$(run_pgbench "$script" "$c" "$@")")
    done
    read -r rps p50 p99 _ _ <<<"$(median_run "${service_runs[@]}")"
    limit=$(median_of "${limits[@]}")
    row "$label" "$c" "$rps" "$p50" "$p99" "$total_errors" "$limit (pgbench)" "$(ratio "$rps" "$limit")" "$(peak_rss_mb)"
}
# Spread payments against three limits, all alternating with the service
# in every round: pgbench running the service's own statements, and a
# minimal durable money movement (bench/pgbench/minimal_*.sql) as a
# transaction and as one statement, which is what any ledger must pay.
spread_payments() {
    local service_runs=() same=() minimal=() single=() total_errors=0 run
    for _ in $(seq 1 "$ROUNDS"); do
        run=$(run_wrk pay_spread "$c")
        service_runs+=("$run")
        total_errors=$(( total_errors + $(echo "$run" | awk '{ print $4 }') ))
        same+=("$(run_pgbench "$PAYMENT_SCRIPT" "$c" -D n_first=1 -D n_last=50000)")
        minimal+=("$(run_pgbench minimal_tx "$c")")
        single+=("$(run_pgbench minimal_statement "$c")")
    done
    read -r rps p50 p99 _ _ <<<"$(median_run "${service_runs[@]}")"
    local limit
    limit=$(median_of "${same[@]}")
    row "POST /payments/{loanId} (spread)" "$c" "$rps" "$p50" "$p99" "$total_errors" "$limit (pgbench)" "$(ratio "$rps" "$limit")" "$(peak_rss_mb)"
    limit=$(median_of "${minimal[@]}")
    row "↳ the same, against a minimal durable transaction" "$c" "$rps" "" "" "" "$limit (pgbench: BEGIN; UPDATE; INSERT; COMMIT)" "$(ratio "$rps" "$limit")" ""
    limit=$(median_of "${single[@]}")
    row "↳ the same, against that movement as one statement" "$c" "$rps" "" "" "" "$limit (pgbench: one statement)" "$(ratio "$rps" "$limit")" ""
}
median_of() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Of several run_wrk lines, the one with the median req/s.
median_run() { printf '%s\n' "$@" | sort -n -k1,1 | awk '{ line[NR] = $0 } END { print line[int((NR + 1) / 2)] }'; }
peak_rss_mb() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVICE_PID/status"; }

echo "== scale curve: 10 000 installments"
read -r _ small_overdue _ _ _ <<<"$(run_wrk overdue 1)"
read -r _ small_user _ _ _ <<<"$(run_wrk user_loans 1)"

$PG -d $DB -v first=501 -v last=50000 -f bench/seed.sql
python3 bench/tokens.py "$SECRET" "$ADMIN_ID" 1 50000 2000
# A build with the ledger keeps more beside the seeded rows; an older
# build (SERVICE_BIN) has no such table and skips this.
if [ "$($PG -d $DB -tAc "SELECT to_regclass('approved_installments') IS NOT NULL")" = "t" ]; then
    $PG -d $DB -f bench/seed_ledger.sql
fi
# A build with the books journals the seeded loans and payments as its
# upgrade would, and its payments write the journal too (the pgbench limit
# then runs the same statements with the entry added).
BOOKS=$($PG -d $DB -tAc "SELECT to_regclass('journal_entries') IS NOT NULL")
PAYMENT_SCRIPT=payment
if [ "$BOOKS" = "t" ]; then
    $PG -d $DB -f bench/seed_journal.sql
    PAYMENT_SCRIPT=payment_with_journal
fi
$PG -d $DB -f bench/pgbench/minimal_setup.sql
TOTAL=$($PG -d $DB -tAc "SELECT COUNT(*) FROM installments")
echo "== scale curve: $TOTAL installments"
read -r _ large_overdue _ _ _ <<<"$(run_wrk overdue 1)"
read -r _ large_user _ _ _ <<<"$(run_wrk user_loans 1)"

# The bare endpoint sends the very body the service sends for a loan, and
# wrk sends it the same requests (get_loan.lua), so only the stack differs.
read -r SAMPLE_TOKEN _ SAMPLE_LOAN _ < bench/out/users.txt
curl -fsS "$BASE/loans/$SAMPLE_LOAN" -H "Authorization: Bearer $SAMPLE_TOKEN" > bench/out/loan_body.json
BODY_FILE=bench/out/loan_body.json PORT=$BARE_PORT target/dist/examples/bare_http >/dev/null 2>&1 &
BARE_PID=$!
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$BARE_PORT/" >/dev/null 2>&1 && break; sleep 0.1; done

{
    echo "| scenario | conns | req/s | p50 ms | p99 ms | errors | limit (req/s) | service / limit | peak RSS MB |"
    echo "|---|---|---|---|---|---|---|---|---|"
} > "$RESULTS"
row() { echo "| $1 | $2 | $3 | $4 | $5 | $6 | $7 | $8 | $9 |" | tee -a "$RESULTS"; }
ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{100 * a / b:.0f} %' if b else '-')" "$1" "$2"; }

echo
cat "$RESULTS"
for c in $CONCURRENCIES; do
    # This VM's throughput drifts by tens of percent from one minute to the
    # next, so the two sides alternate over ROUNDS rounds and each reports
    # its median round.
    # A warm-up first: the scenario measures reads served from the cache,
    # and each sampled loan and token is loaded once on its first request.
    run_wrk get_loan "$c" >/dev/null
    bare_runs=(); service_runs=()
    for _ in $(seq 1 "$ROUNDS"); do
        bare_runs+=("$(run_wrk get_loan "$c" "http://127.0.0.1:$BARE_PORT")")
        service_runs+=("$(run_wrk get_loan "$c")")
    done
    read -r bare_rps _ _ _ _ <<<"$(median_run "${bare_runs[@]}")"
    read -r rps p50 p99 _ _ <<<"$(median_run "${service_runs[@]}")"
    errors=$(printf '%s\n' "${service_runs[@]}" | awk '{ sum += $4 } END { print sum }')
    row "GET /loans/{id} (owner, cached)" "$c" "$rps" "$p50" "$p99" "$errors" "$bare_rps (bare axum)" "$(ratio "$rps" "$bare_rps")" "$(peak_rss_mb)"
    against_pgbench "GET /loans/user/{id}" user_loans user_loans
    spread_payments
    against_pgbench "POST /payments/{loanId} (one hot loan)" pay_hot "$PAYMENT_SCRIPT" -D n_first=1 -D n_last=1
    against_pgbench "GET /payments/overdue (staff)" overdue overdue
    read -r rps p50 p99 errors _ <<<"$(run_wrk login "$c")"
    row "POST /auth/login (argon2id)" "$c" "$rps" "$p50" "$p99" "$errors" "-" "-" "$(peak_rss_mb)"
done

# The books, on the book the payments above left (every seeded and
# benchmark payment journaled): the trial balance as of any day, and a
# year of the journal as CSV, with the service's resident memory sampled
# while it streams.
if [ "$BOOKS" = "t" ] && [ "$EXTRAS" = yes ]; then
    LINES=$($PG -d $DB -tAc "SELECT COUNT(*) FROM journal_entries")
    echo "== the books: $LINES journal entries"
    for c in $CONCURRENCIES; do
        read -r rps p50 p99 errors _ <<<"$(run_wrk trial_balance "$c")"
        row "GET /accounting/trial-balance (as of any day)" "$c" "$rps" "$p50" "$p99" "$errors" "-" "-" "$(peak_rss_mb)"
    done
    STAFF_TOKEN=$(cat bench/out/staff.txt)
    rss_now() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVICE_PID/status"; }
    before=$(rss_now); most=$before
    curl -fsS -H "Authorization: Bearer $STAFF_TOKEN" -H 'Accept: text/csv' \
        "$BASE/accounting/journal?from=$(date -u -d '-365 days' +%F)&to=$(date -u +%F)" \
        -o bench/out/journal.csv &
    CURL_PID=$!
    start=$(date +%s.%N)
    while kill -0 "$CURL_PID" 2>/dev/null; do
        now=$(rss_now); [ "$now" -gt "$most" ] && most=$now
        sleep 0.05
    done
    wait "$CURL_PID"
    seconds=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
    echo "journal CSV of a year: $(wc -l < bench/out/journal.csv) lines, $(du -m bench/out/journal.csv | cut -f1) MB in $seconds s; service RSS $before MB before, at most $most MB while streaming" | tee -a "$RESULTS"
fi

# Four eyes: the queue of pending decisions, 100 among 100 000, one page
# of 100, one staff member at a time (the latency is the figure).
if [ "$EXTRAS" = yes ] && [ "$($PG -d $DB -tAc "SELECT to_regclass('decisions') IS NOT NULL")" = "t" ]; then
    $PG -d $DB -f bench/seed_decisions.sql
    echo "== decisions: $($PG -d $DB -tAc "SELECT COUNT(*) FROM decisions"), $($PG -d $DB -tAc "SELECT COUNT(*) FROM decisions WHERE status = 'PENDING'") pending"
    run_wrk pending_decisions 1 >/dev/null
    read -r rps p50 p99 errors _ <<<"$(run_wrk pending_decisions 1)"
    row "GET /decisions?status=PENDING&limit=100 (100 of 100 000)" 1 "$rps" "$p50" "$p99" "$errors" "-" "-" "$(peak_rss_mb)"
fi

# The staff console (a binary that serves one): a loan page of a
# 360-installment loan with 360 payments, and the loans page, one staff
# member at a time and at each concurrency.
if [ "$EXTRAS" = yes ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/console")" = "200" ]; then
    python3 bench/console_seed.py "$BASE" benchadmin 'bench admin password'
    for page in console_loan console_loans; do
        run_wrk "$page" 1 >/dev/null
        for c in 1 $CONCURRENCIES; do
            read -r rps p50 p99 errors _ <<<"$(run_wrk "$page" "$c")"
            case $page in
                console_loan) label="GET /console/loans/{id} (360 installments, 360 payments)" ;;
                console_loans) label="GET /console/loans (newest 20 of 50 000)" ;;
            esac
            row "$label" "$c" "$rps" "$p50" "$p99" "$errors" "-" "-" "$(peak_rss_mb)"
        done
    done
fi

# The upgrade's replay of the whole book (a binary that has it): every
# active loan through the servicing pipeline once, while the service runs.
if [ "$EXTRAS" = yes ] && [ "$REPLAY" = yes ] && "$SERVICE_BIN" replay --help >/dev/null 2>&1; then
    echo "== loan-tracker replay --all"
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX="$PREFIX" \
    JWT_SECRET="$SECRET" LOG_FORMAT=json RUST_LOG=warn \
        "$SERVICE_BIN" replay --all > bench/out/replay.json 2> bench/out/replay.log || true
    echo "replay --all on the benchmark's book: $(cat bench/out/replay.json)" | tee -a "$RESULTS"
fi

# The embedded default: the same binary on a SQLite file, no Redis, seeded
# through its API, against a bare sqlx loop sending the same statements on
# a pool of the same shape (examples/sqlite_payment_limit.rs).
echo "== the embedded default (SQLite)"
SQLITE_DIR=$(mktemp -d)
SQLITE_PORT=$(free_port)
DATABASE_URL="sqlite://$SQLITE_DIR/bench.db" JWT_SECRET="$SECRET" HOST=127.0.0.1 PORT="$SQLITE_PORT" \
ADMIN_EMAIL=admin@bench.example ADMIN_USERNAME=benchadmin ADMIN_PASSWORD='bench admin password' \
RATE_LIMIT_PER_MINUTE=1000000000 AUTH_RATE_LIMIT_PER_MINUTE=1000000000 SCHEDULER_ENABLED=false \
LOG_FORMAT=json RUST_LOG=info \
    "$SERVICE_BIN" serve --no-worker > bench/out/service-sqlite.log 2>&1 &
SQLITE_PID=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$SQLITE_PORT/health/ready" >/dev/null 2>&1 && break; sleep 0.2; done
python3 bench/sqlite_seed.py "http://127.0.0.1:$SQLITE_PORT" admin@bench.example 'bench admin password' 20 10 bench/out/sqlite_users.txt
for c in $SQLITE_CONCURRENCIES; do
    service_runs=(); limits=(); errors=0
    for _ in $(seq 1 "$ROUNDS"); do
        run=$(BENCH_USERS=bench/out/sqlite_users.txt run_wrk pay_spread "$c" "http://127.0.0.1:$SQLITE_PORT")
        service_runs+=("$run")
        errors=$(( errors + $(echo "$run" | awk '{ print $4 }') ))
        limits+=("$(target/dist/examples/sqlite_payment_limit "$SQLITE_DIR/bench.db" "$c" "$DURATION" | awk '/^RESULT/ { print $2 }')")
    done
    read -r rps p50 p99 _ _ <<<"$(median_run "${service_runs[@]}")"
    limit=$(median_of "${limits[@]}")
    sqlite_rss=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$SQLITE_PID/status")
    row "POST /payments/{loanId} (spread, SQLite)" "$c" "$rps" "$p50" "$p99" "$errors" "$limit (bare sqlx loop)" "$(ratio "$rps" "$limit")" "$sqlite_rss"
done

{
    echo
    echo "Scale curve, median latency at one connection:"
    echo
    echo "| endpoint | 10 000 installments | $TOTAL installments | ratio |"
    echo "|---|---|---|---|"
    echo "| GET /payments/overdue | $small_overdue ms | $large_overdue ms | $(python3 -c "print(f'{$large_overdue / $small_overdue:.2f}×')") |"
    echo "| GET /loans/user/{id} | $small_user ms | $large_user ms | $(python3 -c "print(f'{$large_user / $small_user:.2f}×')") |"
} | tee -a "$RESULTS"
echo
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ { print $2 }') GiB;" \
    "PostgreSQL $($PG -tAc 'SHOW server_version'); $BUILD; $(date -u +%Y-%m-%d)" | tee -a "$RESULTS"
