#!/usr/bin/env bash
# Same-run A/B of two builds on the paths every round must keep as fast:
# payments (spread over 50 000 loans, and one hot loan) and cached reads,
# on PostgreSQL and Redis.
#
# bench/run.sh measures one build at a time; two of its runs a few minutes
# apart differ by tens of percent on this machine even where the code did
# not change (logins, pgbench's own minimal transaction), which is more
# than the 5 % an A/B must resolve. Here each build gets a database of its
# own, seeded alike, and both serve at once; wrk drives one, then the
# other, and the order flips every round, so that the machine's drift
# falls on both sides alike. Each round gives a ratio (this build ÷ the
# baseline, measured seconds apart); the figure is the median ratio.
#
#   BASELINE_BIN=/tmp/loan-tracker-before bash bench/ab.sh
#   BASELINE_BIN=… ROUNDS=5 DURATION=5 CONCURRENCIES=16 bash bench/ab.sh   # a quick look
#
# SERVICE_BIN defaults to this checkout's dist build (built first). Writes
# bench/out/ab.md. The scratch databases are dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

BASELINE_BIN=${BASELINE_BIN:?set BASELINE_BIN to the build to compare against}
SERVICE_BIN=${SERVICE_BIN:-target/dist/loan-tracker}
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-9}
CONCURRENCIES=${CONCURRENCIES:-"16 64"}
SCENARIOS=${SCENARIOS:-"get_loan pay_spread pay_hot"}
PG="psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -q"
SECRET="ab-secret-$(date +%s)-0123456789abcdef0123"
PREFIX="ab-$$"
RESULTS=bench/out/ab.md
mkdir -p bench/out

if ! command -v wrk >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk
fi
if [ "$SERVICE_BIN" = target/dist/loan-tracker ]; then
    echo "== building the dist binary"
    # The same build as bench/run.sh's (the same targets, so the same
    # features): it shares its artifacts.
    cargo build --profile dist --locked --quiet --bin loan-tracker --example bare_http --example sqlite_payment_limit
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for db in lt_ab_base lt_ab_new; do
        $PG -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    redis-cli -h 127.0.0.1 --scan --pattern "$PREFIX*" 2>/dev/null | xargs -r redis-cli -h 127.0.0.1 del >/dev/null 2>&1 || true
}
trap cleanup EXIT

# start_service NAME BINARY: serves database lt_ab_NAME on a free port
# (the binary migrates it), seeded as bench/run.sh seeds its book: 10 000
# users, 50 000 loans, 1 000 000 installments, and what the build keeps
# beside them (the ledger's history, the journal). Sets PORT_NAME.
start_service() {
    local name=$1 binary=$2 db=lt_ab_$1 port
    port=$(free_port)
    $PG -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" REDIS_URL=redis://127.0.0.1:6379 \
    REDIS_KEY_PREFIX="$PREFIX-$name" JWT_SECRET="$SECRET" HOST=127.0.0.1 PORT="$port" \
    DATABASE_MAX_CONNECTIONS=${POOL:-16} ADMIN_EMAIL=admin@bench.example ADMIN_USERNAME=benchadmin \
    ADMIN_PASSWORD='bench admin password' RATE_LIMIT_PER_MINUTE=1000000000 \
    AUTH_RATE_LIMIT_PER_MINUTE=1000000000 SCHEDULER_ENABLED=false LOG_FORMAT=json RUST_LOG=warn \
        "$binary" serve --no-worker > "bench/out/ab-$name.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 0.2; done
    curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null
    curl -fsS -X POST "http://127.0.0.1:$port/auth/register" -H 'content-type: application/json' \
        -d '{"email":"seed@bench.example","username":"seeduser","password":"bench password 1"}' >/dev/null
    local hash
    hash=$($PG -d "$db" -tAc "SELECT password_hash FROM users WHERE username = 'seeduser'")
    $PG -d "$db" -v users=1 -v first=1 -v last=50000 -v hash="'$hash'" -f bench/seed.sql
    if [ "$($PG -d "$db" -tAc "SELECT to_regclass('approved_installments') IS NOT NULL")" = "t" ]; then
        $PG -d "$db" -f bench/seed_ledger.sql
    fi
    if [ "$($PG -d "$db" -tAc "SELECT to_regclass('journal_entries') IS NOT NULL")" = "t" ]; then
        $PG -d "$db" -f bench/seed_journal.sql
    fi
    $PG -d "$db" -c "VACUUM ANALYZE"
    printf -v "PORT_$name" '%s' "$port"
}

echo "== seeding two books"
start_service base "$BASELINE_BIN"
start_service new "$SERVICE_BIN"
# The seeded users and loans have the same ids in both books, and both
# services share the secret: one set of tokens serves both.
ADMIN_ID=$($PG -d lt_ab_new -tAc "SELECT id FROM users WHERE username = 'benchadmin'")
python3 bench/tokens.py "$SECRET" "$ADMIN_ID" 1 50000 2000

# wrk at concurrency $2 for scenario $1 against port $3; prints req/s.
run_wrk() {
    local threads=$(( $2 < 2 ? 1 : 2 ))
    wrk -t"$threads" -c"$2" -d"${DURATION}s" --timeout 10s -s "bench/lua/$1.lua" "http://127.0.0.1:$3" \
        | awk '/^RESULT/ { if ($5 > 0) print "errors"; else print $2 }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for port in "$PORT_base" "$PORT_new"; do run_wrk get_loan 16 "$port" >/dev/null; done
{
    echo "| scenario | conns | baseline req/s (median) | this build req/s (median) | this ÷ baseline, median of $ROUNDS rounds | lowest, highest round |"
    echo "|---|---|---|---|---|---|"
} > "$RESULTS"
for scenario in $SCENARIOS; do
    for c in $CONCURRENCIES; do
        base_runs=(); new_runs=(); ratios=()
        for round in $(seq 1 "$ROUNDS"); do
            if [ $(( round % 2 )) -eq 1 ]; then
                b=$(run_wrk "$scenario" "$c" "$PORT_base"); n=$(run_wrk "$scenario" "$c" "$PORT_new")
            else
                n=$(run_wrk "$scenario" "$c" "$PORT_new"); b=$(run_wrk "$scenario" "$c" "$PORT_base")
            fi
            if [ "$b" = errors ] || [ "$n" = errors ]; then
                echo "$scenario at $c: a round had errors (see bench/out/ab-*.log)" >&2
                exit 1
            fi
            base_runs+=("$b"); new_runs+=("$n")
            ratios+=("$(python3 -c "print(f'{100 * $n / $b:.1f}')")")
            echo "   $scenario c$c round $round: baseline $b, this build $n (${ratios[-1]} %)"
        done
        sorted=$(printf '%s\n' "${ratios[@]}" | sort -g)
        echo "| $scenario | $c | $(median "${base_runs[@]}") | $(median "${new_runs[@]}") | $(median "${ratios[@]}") % | $(echo "$sorted" | head -1) %, $(echo "$sorted" | tail -1) % |" | tee -a "$RESULTS"
    done
done
echo "baseline: $BASELINE_BIN; this build: $SERVICE_BIN (commit $(git rev-parse --short HEAD)); rounds of ${DURATION} s" | tee -a "$RESULTS"
