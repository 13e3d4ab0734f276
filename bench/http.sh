#!/usr/bin/env bash
# Issue 6, HTTP targets P1-P3: wrk against the hotel service (release build), the Django peer
# and the P2 baseline (examples/bench_baseline.rs), all started here on 127.0.0.1.
#
#   P1  GET /hotels/ demo1: hotel service req/s / the peer's in its best setup
#       (gunicorn, 2 sync workers, PEER_CONN_MAX_AGE=60)                           >= 10
#   P2  one tenant: hotel service req/s / bench_baseline (plain r2d2 pool, fixed
#       search_path set once per connection, no tenant lookup)                      >= 0.85
#       (issue 11; the first goal was 0.97)
#   P3  1,000 tenants, a uniformly random tenant per request / one tenant, req/s      >= 0.80
#   P3R row mode (issue 17): the same P3 against a second hotel service in row mode
#       (HOTEL_TENANT_MODE=rows, its own database owned by a plain login role): 1,000 row
#       tenants, a random tenant per request / one tenant                          >= 0.90
#   PRS one tenant, row mode / schema mode (t0001 on each service; needs P3 and P3R's
#       seeding, which it triggers); no goal, what the mode costs or saves
#   P2R one tenant: the hotel service with tenant roles (HOTEL_TENANT_ROLES=on, every
#       request runs as its tenant's database role) / the same service without them;
#       no goal, the cost of the option (issue 13)
#
# Load: the peer's shape, wrk -t2 -c16 -d10s --latency, after a 2 s warm-up, ROUNDS rounds
# per target (sides alternate order each round); the ratio is the median of the rounds' ratios.
# Bodies and statuses are checked by bench/lua/*.lua (CHECK lines in the raw outputs).
#
# It builds the release hotel service and bench_baseline, creates its own databases and media dir, seeds them
# (demo1: 2 hotels, demo2: 1, as the peer's bench/seed_demo.py; then t0001..t1000 with one
# hotel each, named after the tenant, through the service's admin API), and at exit stops
# every process it started and drops its databases.
#
# The machine may be shared: before each run it waits up to QUIET_MAX s for CPU use below
# QUIET_PCT %, and it measures the CPU that processes other than its own (servers, their
# PostgreSQL backends, wrk) used during the run ("foreign cores"). A run with foreign
# cores >= CLEAN_CORES is repeated (at most TRIES times, keeping the cleanest).
#
# usage: bash bench/http.sh   (env, all optional: OUTDIR ROUNDS P2_ROUNDS DUR TENANTS TARGETS
#        POOL_SIZE WORKERS SKIP_BUILD CARGO_TARGET_DIR PEER_DIR VENV PGHOST PGPORT PGUSER
#        QUIET_PCT QUIET_MAX CLEAN_CORES TRIES; see their defaults below)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTDIR=${OUTDIR:-/tmp/diesel-tenancy-bench}
ROUNDS=${ROUNDS:-3}
P2_ROUNDS=${P2_ROUNDS:-5}             # P2's goal (0.97) is finer than the machine's noise
DUR=${DUR:-10s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-16}
TENANTS=${TENANTS:-1000}
WORKERS=${WORKERS:-$(nproc)}          # Rocket workers of both Rust servers (Rocket's default)
PEER_DIR=${PEER_DIR:-$REPO/../shared/peer-django}
VENV=${VENV:-/tmp/peer-django-venv}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
QUIET_PCT=${QUIET_PCT:-15}
QUIET_MAX=${QUIET_MAX:-60}
CLEAN_CORES=${CLEAN_CORES:-0.10}
TRIES=${TRIES:-2}
TARGETS=${TARGETS:-"P1 P2 P3"}       # a subset runs only those (and starts only what they need)
POOL_SIZE=${POOL_SIZE:-}              # unset: the pool's default (10) in both Rust servers
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-root}

for tool in wrk curl jq psql; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk curl jq postgresql-client)" >&2; exit 2; }
done
if [[ " $TARGETS " == *" P1 "* ]]; then  # only P1 runs the peer
  [ -x "$VENV/bin/gunicorn" ] || { echo "no peer venv at $VENV: run bash $PEER_DIR/setup.sh" >&2; exit 2; }
  PEER_DIR="$(cd "$PEER_DIR" && pwd)"
fi
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
WORK=$(mktemp -d /tmp/dtbench.XXXXXX)
HOTEL_DB="dtbench_hotel_$$"
PEER_DB="dtbench_peer_$$"
TOKEN="bench-$$-$RANDOM"
PIDS=()
DBS=()
LOGIN_ROLES=()

log() { echo "[$(date +%T)] $*" >&2; }

stop() {  # stop PID: TERM, then wait (it is our child); forget it
  local p keep=()
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
wants() { [[ " $TARGETS " == *" $1 "* ]]; }
cleanup() {
  local p db role
  for p in "${PIDS[@]}"; do stop "$p"; done   # (copy of the list: stop edits PIDS)
  for db in "${DBS[@]}"; do drop_db "$db"; done
  for role in "${LOGIN_ROLES[@]}"; do psql -q -d postgres -c "DROP ROLE IF EXISTS \"$role\"" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

drop_db() {  # drop_db NAME: the database, then the tenant roles made for it (named after its OID)
  local oid roles
  oid=$(psql -Atq -d postgres -c "SELECT oid FROM pg_database WHERE datname = '$1'" 2>/dev/null || true)
  psql -q -d postgres -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null 2>&1 || true
  [ -n "$oid" ] || return 0
  roles=$(psql -Atq -d postgres -c "SELECT string_agg(quote_ident(rolname), ', ') FROM pg_roles
    WHERE NOT rolcanlogin AND (rolname = 'dt$oid' OR starts_with(rolname, 'dt${oid}_'))" 2>/dev/null || true)
  [ -z "$roles" ] || psql -q -d postgres -c "DROP ROLE IF EXISTS $roles" >/dev/null 2>&1 || true
}

free_port() {  # a loopback port nobody listens on
  local p
  for p in $(shuf -i 20000-60000 -n 100); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  echo "no free port" >&2; return 1
}
wait_http() {  # wait_http URL [curl args...]: up to 60 s for a 2xx
  local url=$1; shift
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null "$@" "$url" && return 0
    sleep 0.1
  done
  echo "no answer from $url" >&2; return 1
}

# ---------------------------------------------------------------- build
if [ -z "${SKIP_BUILD:-}" ]; then
  log "building the release hotel service and bench_baseline into $TARGET_DIR"
  (cd "$REPO" && cargo build --release -p hotel &&
    cargo build --release --features rocket --example bench_baseline)
fi
HOTEL_BIN="$TARGET_DIR/release/hotel"
BASE_BIN="$TARGET_DIR/release/examples/bench_baseline"

# ---------------------------------------------------------------- CPU accounting
HZ=$(getconf CLK_TCK)
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
all_jiffies() { awk '/^cpu / { s = 0; for (i = 2; i <= NF; i++) s += $i; print s }' /proc/stat; }
descendants() {  # every process below PID $1
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2 }
    END { n = 1; keep[root] = 1
          while (n) { n = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; n = 1 } }
          for (p in keep) if (p != root) print p }'
}
our_pids() {  # "pid kind": our servers (app) and their PostgreSQL backends (pg); wrk is timed on its own
  local p
  for p in "${PIDS[@]}"; do echo "$p app"; descendants "$p" | sed 's/$/ app/'; done
  psql -Atq -d postgres -c "SELECT pid || ' pg' FROM pg_stat_activity
    WHERE datname IN ('$HOTEL_DB', '$PEER_DB', '${ROWS_DB:-}') AND pid <> pg_backend_pid()" 2>/dev/null || true
}
snap_pids() {  # pid jiffies kind, for each of our processes
  local p k
  our_pids | sort -u -k1,1n | while read -r p k; do
    [ -r "/proc/$p/stat" ] || continue
    sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk -v p="$p" -v k="$k" '{ print p, $12 + $13, k }'
  done
}
wait_quiet() {
  local waited=0 ok=0 b0 a0 b1 a1 pct
  while :; do
    b0=$(busy_jiffies); a0=$(all_jiffies); sleep 2; b1=$(busy_jiffies); a1=$(all_jiffies)
    waited=$((waited + 2))
    pct=$(( (b1 - b0) * 100 / (a1 - a0 > 0 ? a1 - a0 : 1) ))
    if [ "$pct" -lt "$QUIET_PCT" ]; then ok=$((ok + 1)); else ok=0; fi
    [ $ok -ge 2 ] && return 0
    if [ $waited -ge "$QUIET_MAX" ]; then log "  no quiet 4 s within ${QUIET_MAX}s (last 2 s: busy ${pct}%), running anyway"; return 0; fi
  done
}

# run_wrk FILE wrk-args...: one measured wrk run; appends a FOREIGN line to FILE and sets
# RPS, FOREIGN (cores used by other processes) and CPU_US (CPU microseconds our servers and
# their PostgreSQL backends spent per request: less sensitive to a noisy machine than req/s).
run_wrk() {
  local f=$1; shift
  local t0 t1 b0 b1 wrk_cpu ours reqs
  snap_pids > "$WORK/s0"; b0=$(busy_jiffies); t0=$(date +%s.%N)
  { TIMEFORMAT='%U %S'; time wrk "$@" > "$f"; } 2> "$WORK/wrk_time"
  t1=$(date +%s.%N); b1=$(busy_jiffies); snap_pids > "$WORK/s1"
  wrk_cpu=$(awk 'END { print $1 + $2 }' "$WORK/wrk_time")
  # our jiffies: growth of processes seen at both ends, all of those that started during the run
  ours=$(awk 'NR == FNR { a[$1] = $2; next } { d = ($1 in a) ? $2 - a[$1] : $2; if (d > 0) s += d } END { print s + 0 }' \
    "$WORK/s0" "$WORK/s1")
  ours_pg=$(awk 'NR == FNR { a[$1] = $2; next } $3 == "pg" { d = ($1 in a) ? $2 - a[$1] : $2; if (d > 0) s += d } END { print s + 0 }' \
    "$WORK/s0" "$WORK/s1")
  FOREIGN=$(awk -v b="$((b1 - b0))" -v o="$ours" -v w="$wrk_cpu" -v hz="$HZ" -v t0="$t0" -v t1="$t1" \
    'BEGIN { f = (b - o - w * hz) / hz / (t1 - t0); if (f < 0) f = 0; printf "%.2f", f }')
  RPS=$(awk '/^Requests\/sec/ { print $2 }' "$f")
  reqs=$(awk '/requests in/ { print $1 }' "$f")
  CPU_US=$(awk -v o="$ours" -v hz="$HZ" -v n="$reqs" 'BEGIN { printf "%.1f", o / hz * 1e6 / (n > 0 ? n : 1) }')
  CPU_PG_US=$(awk -v o="$ours_pg" -v hz="$HZ" -v n="$reqs" 'BEGIN { printf "%.1f", o / hz * 1e6 / (n > 0 ? n : 1) }')
  CPU_APP_US=$(awk -v a="$CPU_US" -v b="$CPU_PG_US" 'BEGIN { printf "%.1f", a - b }')
  awk -v b="$((b1 - b0))" -v o="$ours" -v w="$wrk_cpu" -v hz="$HZ" -v t0="$t0" -v t1="$t1" -v f="$FOREIGN" -v c="$CPU_US" \
    -v l="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
      t = t1 - t0
      printf "FOREIGN cores=%s (machine busy %.2f cores; servers+backends %.2f, wrk %.2f; loadavg %s) server_cpu_us_per_request=%s\n",
        f, b / hz / t, o / hz / t, w / t, l, c }' >> "$f"
  echo "SPLIT app_cpu_us_per_request=$CPU_APP_US postgres_cpu_us_per_request=$CPU_PG_US" >> "$f"
}

# measure NAME URL SCRIPT-ARGS...: warm-up, then up to TRIES runs; keeps the cleanest.
# Appends "NAME ROUND rps foreign cpu_us file check" to $WORK/results.
measure() {
  local name=$1 url=$2; shift 2
  local try best_f="" best_rps="" best_foreign="" best_cpu="" best_app="" best_pg="" f
  wrk -t"$THREADS" -c"$CONNS" -d2s "$url" "$@" > /dev/null
  for try in $(seq 1 "$TRIES"); do
    f="$OUTDIR/wrk_${name}_r${ROUND}_try${try}.txt"
    wait_quiet
    run_wrk "$f" -t"$THREADS" -c"$CONNS" -d"$DUR" --latency "$url" "$@"
    log "  $name round $ROUND try $try: $RPS req/s, $CPU_US server CPU us/request, foreign cores $FOREIGN, $(grep '^CHECK' "$f" | sed 's/^CHECK //')"
    if [ -z "$best_f" ] || awk -v a="$FOREIGN" -v b="$best_foreign" 'BEGIN { exit !(a < b) }'; then
      best_f=$f; best_rps=$RPS; best_foreign=$FOREIGN; best_cpu=$CPU_US; best_app=$CPU_APP_US; best_pg=$CPU_PG_US
    fi
    awk -v a="$FOREIGN" -v m="$CLEAN_CORES" 'BEGIN { exit !(a < m) }' && break
  done
  echo "$name $ROUND $best_rps $best_foreign $best_cpu $(basename "$best_f") $(grep '^CHECK' "$best_f" | sed 's/^CHECK //; s/ /,/g') $best_app $best_pg" >> "$WORK/results"
}

# pair ROUNDS A_NAME A_URL A_ARGS B_NAME B_URL B_ARGS (args as one string each, split on '|')
pair() {
  local rounds=$1; shift
  local an=$1 au=$2 aa=$3 bn=$4 bu=$5 ba=$6 r
  local -a a_args b_args
  IFS='|' read -r -a a_args <<< "$aa"
  IFS='|' read -r -a b_args <<< "$ba"
  for r in $(seq 1 "$rounds"); do
    ROUND=$r
    if [ $((r % 2)) = 1 ]; then
      measure "$an" "$au" "${a_args[@]}"; measure "$bn" "$bu" "${b_args[@]}"
    else
      measure "$bn" "$bu" "${b_args[@]}"; measure "$an" "$au" "${a_args[@]}"
    fi
  done
}

# ---------------------------------------------------------------- hotel service
HOTEL_PORT=$(free_port)
HOTEL="http://127.0.0.1:$HOTEL_PORT"
HOTEL_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$HOTEL_DB?sslmode=disable"
psql -q -d postgres -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$HOTEL_DB\"" -c "CREATE DATABASE \"$HOTEL_DB\"" >/dev/null
DBS+=("$HOTEL_DB")
mkdir -p "$WORK/media"
export ROCKET_ADDRESS=127.0.0.1 ROCKET_LOG_LEVEL=critical ROCKET_CLI_COLORS=false ROCKET_WORKERS="$WORKERS"
# databases.hotel.pool_size is read by the tenancy fairing and by bench_baseline alike
[ -z "$POOL_SIZE" ] || export ROCKET_DATABASES="{hotel={pool_size=$POOL_SIZE}}"
log "hotel service on $HOTEL (database $HOTEL_DB, $WORKERS Rocket workers)"
DATABASE_URL="$HOTEL_URL" MEDIA_ROOT="$WORK/media" HOTEL_ADMIN_TOKEN="$TOKEN" ROCKET_PORT="$HOTEL_PORT" \
  "$HOTEL_BIN" serve >> "$OUTDIR/hotel.log" 2>&1 &
HOTEL_PID=$!; PIDS+=("$HOTEL_PID")
wait_http "$HOTEL/health"

ADMIN=(-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json')
post() {  # post URL JSON [curl args]: expects 201
  local url=$1 body=$2; shift 2
  local code
  code=$(curl -s -o "$WORK/post.out" -w '%{http_code}' -X POST "$url" -H 'Content-Type: application/json' -d "$body" "$@")
  [ "$code" = 201 ] || { echo "POST $url $body -> $code $(cat "$WORK/post.out")" >&2; return 1; }
}
hotel_json() { jq -cn --arg n "$1" --arg l "$2" --arg d "$3" '{name: $n, location: $l, description: $d}'; }
# the peer's bench/seed_demo.py data
seed_demo() {  # seed_demo BASE_URL: hotels only (tenants exist)
  post "$1/hotels/" "$(hotel_json 'Grand demo1' Paris 'First hotel of demo1')" -H 'Tenant-Header: demo1'
  post "$1/hotels/" "$(hotel_json 'Plaza demo1' Lyon 'Second hotel of demo1')" -H 'Tenant-Header: demo1'
  post "$1/hotels/" "$(hotel_json 'Ocean demo2' Nice 'Only hotel of demo2')" -H 'Tenant-Header: demo2'
}
post "$HOTEL/tenants" '{"name":"demo1"}' "${ADMIN[@]}"
post "$HOTEL/tenants" '{"name":"demo2"}' "${ADMIN[@]}"
seed_demo "$HOTEL"

# The expected demo1 body: two hotels, ordered by id, exactly the seeded ones.
EXPECTED=$(curl -sf -H 'Tenant-Header: demo1' "$HOTEL/hotels/")
echo "$EXPECTED" | jq -e 'length == 2 and .[0].id < .[1].id and ([.[].name] == ["Grand demo1", "Plaza demo1"])
  and ([.[].picture] == [null, null])' >/dev/null || { echo "unexpected demo1 body: $EXPECTED" >&2; exit 1; }
curl -sf -H 'Tenant-Header: demo2' "$HOTEL/hotels/" | jq -e '[.[].name] == ["Ocean demo2"]' >/dev/null

# ---------------------------------------------------------------- P2 baseline
if wants P2; then
BASE_PORT=$(free_port)
BASE="http://127.0.0.1:$BASE_PORT"
log "bench_baseline on $BASE (search_path demo1)"
DATABASE_URL="$HOTEL_URL" BENCH_SCHEMA=demo1 ROCKET_PORT="$BASE_PORT" "$BASE_BIN" >> "$OUTDIR/baseline.log" 2>&1 &
BASE_PID=$!; PIDS+=("$BASE_PID")
wait_http "$BASE/hotels/"
[ "$(curl -sf "$BASE/hotels/")" = "$EXPECTED" ] || { echo "bench_baseline body differs from the service's" >&2; exit 1; }
fi

# ---------------------------------------------------------------- P2R: the same service with tenant roles
if wants P2R; then
ROLES_PORT=$(free_port)
ROLES="http://127.0.0.1:$ROLES_PORT"
log "hotel service with tenant roles on $ROLES (same database; it makes demo1's role at launch)"
DATABASE_URL="$HOTEL_URL" MEDIA_ROOT="$WORK/media" HOTEL_ADMIN_TOKEN="$TOKEN" ROCKET_PORT="$ROLES_PORT" \
  HOTEL_TENANT_ROLES=on "$HOTEL_BIN" serve >> "$OUTDIR/hotel_roles.log" 2>&1 &
ROLES_PID=$!; PIDS+=("$ROLES_PID")
wait_http "$ROLES/health"
[ "$(curl -sf -H 'Tenant-Header: demo1' "$ROLES/hotels/")" = "$EXPECTED" ] ||
  { echo "the roles service's body differs from the service's" >&2; exit 1; }
fi

# ---------------------------------------------------------------- row mode: a second service
if wants PRS; then TARGETS="$TARGETS P3 P3R"; fi
if wants P3R; then
ROWS_DB="dtbench_rows_$$"
ROWS_ROLE="dtbench_app_$$"
ROWS_PORT=$(free_port)
ROWS="http://127.0.0.1:$ROWS_PORT"
ROWS_URL="postgres://$ROWS_ROLE@$PGHOST:$PGPORT/$ROWS_DB?sslmode=disable"
# Row security never binds a superuser: the row-mode service logs in as a plain role that
# owns its database (CREATEROLE: it makes the row role at launch).
psql -q -d postgres -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$ROWS_DB\"" \
  -c "CREATE ROLE \"$ROWS_ROLE\" LOGIN CREATEROLE" -c "CREATE DATABASE \"$ROWS_DB\" OWNER \"$ROWS_ROLE\"" >/dev/null
DBS+=("$ROWS_DB"); LOGIN_ROLES+=("$ROWS_ROLE")
log "hotel service in row mode on $ROWS (database $ROWS_DB as $ROWS_ROLE)"
DATABASE_URL="$ROWS_URL" MEDIA_ROOT="$WORK/media" HOTEL_ADMIN_TOKEN="$TOKEN" ROCKET_PORT="$ROWS_PORT" \
  HOTEL_TENANT_MODE=rows "$HOTEL_BIN" serve >> "$OUTDIR/hotel_rows.log" 2>&1 &
ROWS_PID=$!; PIDS+=("$ROWS_PID")
wait_http "$ROWS/health"
post "$ROWS/tenants" '{"name":"demo1"}' "${ADMIN[@]}"
post "$ROWS/tenants" '{"name":"demo2"}' "${ADMIN[@]}"
seed_demo "$ROWS"
curl -sf -H 'Tenant-Header: demo1' "$ROWS/hotels/" | jq -e '[.[].name] == ["Grand demo1", "Plaza demo1"]' >/dev/null ||
  { echo "the row-mode service's demo1 body is wrong" >&2; exit 1; }
curl -sf -H 'Tenant-Header: demo2' "$ROWS/hotels/" | jq -e '[.[].name] == ["Ocean demo2"]' >/dev/null ||
  { echo "the row-mode service's demo2 body is wrong" >&2; exit 1; }
fi

# ---------------------------------------------------------------- the peer
if wants P1; then
PEER_PORT=$(free_port)
PEER="http://127.0.0.1:$PEER_PORT"
log "peer (gunicorn, 2 sync workers, PEER_CONN_MAX_AGE=60) on $PEER (database $PEER_DB)"
psql -q -d postgres -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$PEER_DB\"" -c "CREATE DATABASE \"$PEER_DB\"" >/dev/null
DBS+=("$PEER_DB")
(
  cd "$PEER_DIR"
  export PEER_DB_NAME="$PEER_DB" DJANGO_SETTINGS_MODULE=peer.settings PYTHONDONTWRITEBYTECODE=1
  "$VENV/bin/python" manage.py migrate_schemas --shared -v 0
  "$VENV/bin/python" manage.py shell -c "
from customers.models import Tenant, Domain
t = Tenant(schema_name='public', name='public'); t.save()
Domain(domain='localhost', tenant=t, is_primary=True).save()
"
  "$VENV/bin/python" bench/seed_demo.py
) >> "$OUTDIR/peer.log" 2>&1
(
  cd "$PEER_DIR"
  export PEER_DB_NAME="$PEER_DB" DJANGO_SETTINGS_MODULE=peer.settings PYTHONDONTWRITEBYTECODE=1
  exec env PEER_CONN_MAX_AGE=60 "$VENV/bin/gunicorn" peer.wsgi:application --workers 2 --worker-class sync \
    --bind "127.0.0.1:$PEER_PORT" --log-level warning
) >> "$OUTDIR/gunicorn.log" 2>&1 &
PEER_PID=$!; PIDS+=("$PEER_PID")
wait_http "$PEER/hotels/" -H 'Tenant-Header: demo1'
PEER_BODY=$(curl -sf -H 'Tenant-Header: demo1' "$PEER/hotels/")
echo "$PEER_BODY" | jq -e '[.[].name] == ["Grand demo1", "Plaza demo1"]' >/dev/null ||
  { echo "unexpected peer body: $PEER_BODY" >&2; exit 1; }
[ "$PEER_BODY" = "$EXPECTED" ] || log "note: the peer's body is not byte-identical to the service's; checking it against its own"
fi

# seed_many BASE LABEL: tenants t0001..tTENANTS with one hotel each through BASE's admin
# API (4 at a time); appends a line to seed.txt.
seed_many() {
local base=$1 label=$2 t i created seeded SEED_T0 SEED_T1 SEED_T2
log "$label: creating $TENANTS tenants t0001.. with one hotel each (admin API, 4 at a time)"
SEED_T0=$(date +%s.%N)
: > "$WORK/tenants.cfg"; : > "$WORK/hotels.cfg"
for i in $(seq 1 "$TENANTS"); do
  printf -v t 't%04d' "$i"
  [ "$i" = 1 ] || { echo next >> "$WORK/tenants.cfg"; echo next >> "$WORK/hotels.cfg"; }
  printf 'url = "%s/tenants"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\ndata = "{\\"name\\":\\"%s\\"}"\noutput = "%s/seed.body"\nwrite-out = "%%{http_code} %s\\n"\n' \
    "$base" "$TOKEN" "$t" "$WORK" "$t" >> "$WORK/tenants.cfg"
  printf 'url = "%s/hotels/"\nheader = "Tenant-Header: %s"\nheader = "Content-Type: application/json"\ndata = "{\\"name\\":\\"%s\\",\\"location\\":\\"%s\\",\\"description\\":\\"bench hotel %s\\"}"\noutput = "/dev/null"\nwrite-out = "%%{http_code} %s\\n"\n' \
    "$base" "$t" "$t" "$t" "$t" "$t" >> "$WORK/hotels.cfg"
done
curl -sS --no-progress-meter --parallel --parallel-max 4 -K "$WORK/tenants.cfg" > "$OUTDIR/seed_tenants_$label.codes"
created=$(grep -c '^201 ' "$OUTDIR/seed_tenants_$label.codes" || true)
SEED_T1=$(date +%s.%N)
curl -sS --no-progress-meter --parallel --parallel-max 4 -K "$WORK/hotels.cfg" > "$OUTDIR/seed_hotels_$label.codes"
seeded=$(grep -c '^201 ' "$OUTDIR/seed_hotels_$label.codes" || true)
SEED_T2=$(date +%s.%N)
log "  tenants created: $created in $(awk -v a="$SEED_T0" -v b="$SEED_T1" 'BEGIN { printf "%.1f", b - a }') s; hotels: $seeded in $(awk -v a="$SEED_T1" -v b="$SEED_T2" 'BEGIN { printf "%.1f", b - a }') s"
[ "$created" = "$TENANTS" ] && [ "$seeded" = "$TENANTS" ] || { echo "$label seeding failed: $created tenants, $seeded hotels" >&2; exit 1; }
echo "$label seed: $created tenants in $(awk -v a="$SEED_T0" -v b="$SEED_T1" 'BEGIN { printf "%.1f", b - a }') s, $seeded hotels in $(awk -v a="$SEED_T1" -v b="$SEED_T2" 'BEGIN { printf "%.1f", b - a }') s (admin API, curl --parallel-max 4)" >> "$OUTDIR/seed.txt"
}

# ---------------------------------------------------------------- P1, P2
: > "$WORK/results"
: > "$OUTDIR/seed.txt"; : > "$OUTDIR/backends.txt"
if wants P1; then
  log "P1: hotel vs peer, GET /hotels/ demo1"
  pair "$ROUNDS" hotel_demo1 "$HOTEL/hotels/" "-s|$REPO/bench/lua/get_check.lua|--|demo1|$EXPECTED" \
       peer_demo1 "$PEER/hotels/" "-s|$REPO/bench/lua/get_check.lua|--|demo1|$PEER_BODY"
  stop "$PEER_PID"
fi
if wants P2; then
  log "P2: hotel vs bench_baseline, GET /hotels/ demo1 (the hotel side measured again, interleaved)"
  pair "$P2_ROUNDS" hotel_one "$HOTEL/hotels/" "-s|$REPO/bench/lua/get_check.lua|--|demo1|$EXPECTED" \
       baseline "$BASE/hotels/" "-s|$REPO/bench/lua/get_check.lua|--|demo1|$EXPECTED"
  stop "$BASE_PID"
fi

if wants P2R; then
  log "P2R: hotel with tenant roles vs the same service without, GET /hotels/ demo1"
  pair "$P2_ROUNDS" hotel_roles "$ROLES/hotels/" "-s|$REPO/bench/lua/get_check.lua|--|demo1|$EXPECTED" \
       hotel_plain "$HOTEL/hotels/" "-s|$REPO/bench/lua/get_check.lua|--|demo1|$EXPECTED"
  stop "$ROLES_PID"
fi

# ---------------------------------------------------------------- P3
if wants P3; then
seed_many "$HOTEL" P3

log "P3: $TENANTS tenants, a random tenant per request, vs one tenant"
P3_START=$(date +%T)
pair "$ROUNDS" hotel_random "$HOTEL/hotels/" "-s|$REPO/bench/lua/tenants.lua|--|$TENANTS" \
     hotel_single "$HOTEL/hotels/" "-s|$REPO/bench/lua/tenants.lua|--|1"
psql -Atq -d "$HOTEL_DB" -c "SELECT count(*) || ' backends of the service at the end, started ' || min(backend_start)::time(0)
  || ' .. ' || max(backend_start)::time(0) || ' (P3 runs began $P3_START)'
  FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()" > "$OUTDIR/backends.txt" || true
fi

if wants P3R; then
seed_many "$ROWS" P3R
log "P3R: $TENANTS row tenants, a random tenant per request, vs one tenant"
pair "$ROUNDS" rows_random "$ROWS/hotels/" "-s|$REPO/bench/lua/tenants.lua|--|$TENANTS" \
     rows_single "$ROWS/hotels/" "-s|$REPO/bench/lua/tenants.lua|--|1"
fi
if wants PRS; then
log "PRS: one tenant, row mode vs schema mode (t0001 on each service)"
pair "$ROUNDS" rows_one "$ROWS/hotels/" "-s|$REPO/bench/lua/tenants.lua|--|1" \
     schema_one "$HOTEL/hotels/" "-s|$REPO/bench/lua/tenants.lua|--|1"
fi

# ---------------------------------------------------------------- table
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$WORK/results"; }   # col NAME FIELD
worst_foreign() { col "$1" 4 | sort -g | tail -1; }
checks() { col "$1" 7 | paste -sd ';'; }
# row TARGET A B GOAL: the ratio is the median of the per-round ratios A/B (the two runs of a
# round are adjacent in time, so slow drift of a shared machine cancels); beside it the
# sides' median req/s and the ratio of their server CPU time per request (B/A: above 1 means
# A spends less CPU per request).
row() {
  local a b ratio pass cpu_a cpu_b
  a=$(col "$2" 3 | median); b=$(col "$3" 3 | median)
  ratio=$(awk -v x="$2" -v y="$3" '$1 == x { a[$2] = $3 } $1 == y { b[$2] = $3 }
    END { for (r in a) if (r in b) printf "%.4f\n", a[r] / b[r] }' "$WORK/results" | median)
  ratio=$(printf '%.3f' "$ratio")
  cpu_a=$(col "$2" 5 | median); cpu_b=$(col "$3" 5 | median)
  pass=$(awk -v r="$ratio" -v g="$4" 'BEGIN { print (g == "-") ? "(no goal)" : (r >= g) ? "met" : "NOT met" }')
  printf '| %s | %s %s | %s %s | %s | >= %s %s | %s / %s us (%.3f) | %s + %s / %s + %s us | %s / %s |\n' "$1" "$2" "$a" "$3" "$b" "$ratio" "$4" "$pass" \
    "$cpu_a" "$cpu_b" "$(awk -v a="$cpu_a" -v b="$cpu_b" 'BEGIN { print b / a }')" \
    "$(col "$2" 8 | median)" "$(col "$2" 9 | median)" "$(col "$3" 8 | median)" "$(col "$3" 9 | median)" \
    "$(worst_foreign "$2")" "$(worst_foreign "$3")"
}
{
  echo "# diesel-tenancy HTTP benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, wrk -t$THREADS -c$CONNS -d$DUR, $ROUNDS rounds (P2: $P2_ROUNDS)"
  echo
  echo "| target | measured: median req/s | against: median req/s | ratio (median of rounds) | goal | server CPU per request (ratio) | of which app + PostgreSQL (measured / against) | worst foreign cores |"
  echo "|---|---|---|---|---|---|---|---|"
  if wants P1; then row P1 hotel_demo1 peer_demo1 10; fi
  if wants P2; then row P2 hotel_one baseline 0.85; fi
  if wants P2R; then row P2R hotel_roles hotel_plain -; fi
  if wants P3; then row P3 hotel_random hotel_single 0.80; fi
  if wants P3R; then row P3R rows_random rows_single 0.90; fi
  if wants PRS; then row PRS rows_one schema_one -; fi
  echo
  echo "Response checks per round (every run must have non200=0 wrong_body=0; P3 count_mismatch <= $CONNS):"
  for n in $(awk '{ print $1 }' "$WORK/results" | sort -u); do echo "- $n: $(checks "$n")"; done
  echo
  echo "Runs (name round req/s foreign-cores server-cpu-us/request file check app-us postgres-us):"
  sed 's/^/    /' "$WORK/results"
  echo
  echo "Rocket workers $WORKERS, pool size ${POOL_SIZE:-default (10)}"
  if wants P3 || wants P3R; then cat "$OUTDIR/seed.txt"; fi
  if wants P3; then cat "$OUTDIR/backends.txt"; fi
} | tee "$OUTDIR/table.md"

# Any failed check fails the script.
if awk '{ print $7 }' "$WORK/results" | grep -Eq 'non200=[1-9]|wrong_body=[1-9]'; then
  echo "FAILED: some responses were not 200 with the expected body (see $OUTDIR)" >&2
  exit 1
fi
