#!/usr/bin/env bash
# Issue 16: the same work on the local Citus cluster and on plain PostgreSQL, in one run.
#
#   1. Library level, for each number of tenants in SIZES (default "100 1000"), each in a
#      fresh database on both servers: creating the tenants one by one, "anything
#      pending?" (status(), nothing pending / one migration pending everywhere), and that
#      migration applied to all (migrate_all, jobs 4). The ignored trial
#      `measure_citus_beside_plain_postgresql` of tests/citus.rs does it (debug build:
#      these are database-bound).
#   2. Through the service: the hotel service (release build) on each server, TENANTS
#      (default 1000) tenants made through its admin API (timed), demo1 seeded with two
#      hotels; then GET /hotels/ for demo1 with wrk -t2 -c16 -d10s after a 2 s warm-up,
#      ROUNDS (default 3) rounds alternating the two sides; every response checked
#      (bench/lua/get_check.lua); the ratio is the median of the rounds' ratios.
#
# The cluster is the one scripts/citus starts (coordinator 127.0.0.1:9700, workers :9701,
# :9702, all on this machine); plain PostgreSQL is PGHOST:PGPORT (127.0.0.1:5432). Every
# database made here is dropped at exit, on every node. Raw outputs in OUTDIR.
#
# usage: bash bench/citus.sh   (env: SIZES TENANTS ROUNDS DUR SKIP_BUILD SKIP_LIBRARY OUTDIR)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZES=${SIZES:-"100 1000"}
TENANTS=${TENANTS:-1000}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10s}
OUTDIR=${OUTDIR:-/tmp/diesel-tenancy-bench-citus}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
PLAIN_SERVER=${PLAIN_SERVER:-postgres://postgres@${PGHOST:-127.0.0.1}:${PGPORT:-5432}}
mkdir -p "$OUTDIR"
WORK=$(mktemp -d /tmp/dtcitus.XXXXXX)
DB="dtcitus_$$"
TOKEN="bench-$$-$RANDOM"
PIDS=()

log() { echo "[$(date +%T)] $*" >&2; }
for tool in wrk curl jq psql; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk curl jq postgresql-client)" >&2; exit 2; }
done

CITUS_URL=$("$REPO/scripts/citus" start | tail -n 1)
export CITUS_URL
COORD=${CITUS_URL%%\?*}; COORD=${COORD%/*}          # postgres://user@host:port
cpsql() { psql -qAtX -v ON_ERROR_STOP=1 "$@"; }
WORKERS=$(cpsql "$COORD/postgres" -c "SELECT nodename || ':' || nodeport FROM pg_dist_node
  WHERE groupid <> 0 AND noderole = 'primary' ORDER BY groupid")
COORD_NODE=$(cpsql "$COORD/postgres" -c "SELECT nodename || ':' || nodeport FROM pg_dist_node WHERE groupid = 0")

cleanup() {
  local p w
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  psql -qX "$PLAIN_SERVER/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  for w in "$COORD_NODE" $WORKERS; do
    psql -qX "postgres://postgres@$w/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- 1. library level
if [ -z "${SKIP_LIBRARY:-}" ]; then
  log "library level: tenants ${SIZES}, plain PostgreSQL and Citus"
  (cd "$REPO" && CITUS_BENCH_SIZES="$SIZES" cargo test --all-features --test citus -- \
    --ignored measure --nocapture) 2>&1 | tee "$OUTDIR/library.txt" | grep '^MEASURE' || true
  grep -q '^MEASURE' "$OUTDIR/library.txt" || { echo "the library measurement failed: $OUTDIR/library.txt" >&2; exit 1; }
fi

# ---------------------------------------------------------------- 2. through the service
if [ -z "${SKIP_BUILD:-}" ]; then
  log "building the release hotel service"
  (cd "$REPO" && cargo build --release -p hotel)
fi
HOTEL_BIN="$TARGET_DIR/release/hotel"

# The Citus database: on every node, the extension in each, the workers registered.
cpsql "$COORD/postgres" -c "SET citus.enable_create_database_propagation TO on" -c "CREATE DATABASE $DB"
for w in $WORKERS; do cpsql "postgres://postgres@$w/$DB" -c "CREATE EXTENSION citus"; done
cpsql "$COORD/$DB" -c "CREATE EXTENSION citus" \
  -c "SELECT citus_set_coordinator_host('${COORD_NODE%:*}', ${COORD_NODE#*:})" >/dev/null
for w in $WORKERS; do cpsql "$COORD/$DB" -c "SELECT citus_add_node('${w%:*}', ${w#*:})" >/dev/null; done

free_port() {
  local p
  for p in $(shuf -i 20000-60000 -n 100); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
start_hotel() {  # start_hotel NAME DATABASE_URL: sets URL_<NAME>
  local port; port=$(free_port)
  mkdir -p "$WORK/$1"
  DATABASE_URL="$2" MEDIA_ROOT="$WORK/$1/media" HOTEL_ADMIN_TOKEN="$TOKEN" ROCKET_PORT="$port" \
    ROCKET_ADDRESS=127.0.0.1 ROCKET_LOG_LEVEL=critical ROCKET_CLI_COLORS=false \
    "$HOTEL_BIN" serve >> "$OUTDIR/hotel_$1.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 600); do curl -sf -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.1; done
  printf -v "URL_$1" '%s' "http://127.0.0.1:$port"
}
start_hotel plain "$PLAIN_SERVER/$DB?sslmode=disable"
start_hotel citus "$COORD/$DB?sslmode=disable"

post() {  # post URL JSON [curl args]: expects 201
  local code
  code=$(curl -s -o "$WORK/post.out" -w '%{http_code}' -X POST "$1" -H 'Content-Type: application/json' -d "$2" "${@:3}")
  [ "$code" = 201 ] || { echo "POST $1 $2 -> $code $(cat "$WORK/post.out")" >&2; return 1; }
}
declare -A CREATE_MS
for side in plain citus; do
  base_var="URL_$side"; base=${!base_var}
  log "$side: $TENANTS tenants through the admin API"
  t0=$(date +%s%N)
  for i in $(seq 1 "$TENANTS"); do
    name=$([ "$i" = 1 ] && echo demo1 || printf 't%05d' "$i")
    post "$base/tenants" "{\"name\":\"$name\"}" -H "Authorization: Bearer $TOKEN"
  done
  CREATE_MS[$side]=$(( ($(date +%s%N) - t0) / 1000000 ))
  for h in "Grand demo1|Paris" "Plaza demo1|Lyon"; do
    post "$base/hotels/" "{\"name\":\"${h%|*}\",\"location\":\"${h#*|}\",\"description\":\"bench\"}" -H 'Tenant-Header: demo1'
  done
done
EXPECTED=$(curl -sf -H 'Tenant-Header: demo1' "$URL_plain/hotels/")
EXPECTED_CITUS=$(curl -sf -H 'Tenant-Header: demo1' "$URL_citus/hotels/")
echo "$EXPECTED" | jq -e '[.[].name] == ["Grand demo1", "Plaza demo1"]' >/dev/null
[ "$(echo "$EXPECTED" | jq -c '[.[] | del(.created_at)]')" = "$(echo "$EXPECTED_CITUS" | jq -c '[.[] | del(.created_at)]')" ] ||
  { echo "the two services answer differently: $EXPECTED / $EXPECTED_CITUS" >&2; exit 1; }
placement=$(cpsql "$COORD/$DB" -c "SELECT nodeport || ': ' || count(DISTINCT colocation_id) FROM citus_shards
  WHERE citus_table_type = 'schema' GROUP BY nodeport ORDER BY 1" | paste -sd ' ')
log "Citus tenants per worker (port: tenants): $placement"

rps() {  # rps SIDE ROUND: one measured wrk run; prints req/s
  local base_var="URL_$1" body_var f
  [ "$1" = plain ] && body_var=EXPECTED || body_var=EXPECTED_CITUS
  f="$OUTDIR/wrk_$1_r$2.txt"
  wrk -t2 -c16 -d2s "${!base_var}/hotels/" -s "$REPO/bench/lua/get_check.lua" -- demo1 "${!body_var}" >/dev/null
  wrk -t2 -c16 -d"$DUR" --latency "${!base_var}/hotels/" -s "$REPO/bench/lua/get_check.lua" -- demo1 "${!body_var}" > "$f"
  grep -q 'CHECK ok=[1-9][0-9]* non200=0 wrong_body=0' "$f" || { echo "bad responses: $f" >&2; exit 1; }
  awk '/^Requests\/sec/ { print $2 }' "$f"
}
: > "$WORK/ratios"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then p=$(rps plain "$r"); c=$(rps citus "$r"); else c=$(rps citus "$r"); p=$(rps plain "$r"); fi
  log "round $r: plain $p req/s, citus $c req/s"
  awk -v p="$p" -v c="$c" 'BEGIN { printf "%.3f %s %s\n", c / p, p, c }' >> "$WORK/ratios"
done
median=$(sort -n "$WORK/ratios" | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }')
{
  grep '^MEASURE' "$OUTDIR/library.txt" 2>/dev/null || true
  echo "SERVICE tenants=$TENANTS | create all through the admin API (curl per tenant) | plain ${CREATE_MS[plain]} ms | citus ${CREATE_MS[citus]} ms | citus/plain $(awk -v p="${CREATE_MS[plain]}" -v c="${CREATE_MS[citus]}" 'BEGIN { printf "%.1f", c / p }')"
  read -r ratio p c <<< "$median"
  echo "SERVICE tenants=$TENANTS | GET /hotels/ demo1 req/s (median ratio of $ROUNDS rounds) | plain $p | citus $c | citus/plain $ratio"
  echo "SERVICE Citus tenants per worker (port: tenants): $placement"
} | tee "$OUTDIR/summary.txt"
