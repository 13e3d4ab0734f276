#!/usr/bin/env bash
# Issue 20's measurement: the hotel service's three faces (sync Rocket, async Rocket, axum)
# against the hand-written axum + sqlx peer and its variants, in one sitting, each face a
# run of ../shared/peer-rust/bench.sh (kept as it is: its peer variants, its cases a/b/c,
# its CPU per request and its pgbench limit), the face chosen by HOTEL_FACE.
#
#   bash bench/faces.sh                 # from the project root; results under $OUTDIR
#   env: FACES="rocket rocket-async axum" ROUNDS=2 DUR=5s OUTDIR=/tmp/faces PEER=../shared/peer-rust
#
# Builds the hotel binary once (release, all features) into /tmp/hotel-rel, then runs
# bench.sh once per face with SKIP_BUILD=1 and prints each run's table, then a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
PEER=${PEER:-../shared/peer-rust}
FACES=${FACES:-"rocket rocket-async axum"}
OUTDIR=${OUTDIR:-$(mktemp -d /tmp/faces-bench.XXXXXX)}
export ROUNDS=${ROUNDS:-2} DUR=${DUR:-5s} LOAD_MAX=${LOAD_MAX:-4} QUIET_MAX=${QUIET_MAX:-30}
mkdir -p "$OUTDIR"

if [ -z "${SKIP_BUILD:-}" ]; then
  echo "building the hotel service (release) and the peer"
  CARGO_TARGET_DIR=/tmp/hotel-rel cargo build --release -p hotel > "$OUTDIR/build.log" 2>&1 \
    || { tail -20 "$OUTDIR/build.log"; exit 1; }
  (cd "$PEER" && CARGO_TARGET_DIR=/tmp/peer-rust-target cargo build --release) >> "$OUTDIR/build.log" 2>&1 \
    || { tail -20 "$OUTDIR/build.log"; exit 1; }
fi
BIN=/tmp/hotel-rel/release/hotel

for face in $FACES; do
  echo "=== face $face"
  HOTEL_FACE=$face SKIP_BUILD=1 OURS_BIN=$BIN OUTDIR="$OUTDIR/$face" MAIN=$PWD \
    bash "$PEER/bench.sh" > "$OUTDIR/$face.log" 2>&1 || { tail -30 "$OUTDIR/$face.log"; exit 1; }
  sed -n '/^# ours/,/^limit share/p' "$OUTDIR/$face/table.md"
done
echo "results: $OUTDIR"
