#!/usr/bin/env bash
# Runs the load harness (load/, the scaffolder-load binary) on this service and on the
# Backstage reference backend (../shared/bench/backstage-ref) in one
# invocation, so both are measured on the same machine in the same minutes.
#
# Usage: scripts/bench-side-by-side.sh [extra scaffolder-load flags]
#   e.g. scripts/bench-side-by-side.sh --workloads s,w1,w2 --idle-seconds 10
#
# What it does:
#   1. cargo build --release of `scaffolder` and `scaffolder-load`;
#   2. copies the reference backend to $BREF_DIR (default /tmp/bref) and runs
#      its run.sh start once (npm ci on the first start, ~2 min) and stop;
#   3. the harness then starts both servers itself, one after the other, to
#      time start → ready (workload S): ours on a new, empty database
#      scaffolder_bench_<random> (the start migrates it) with the compat
#      templates, Backstage with
#      `node index.js` on the same PostgreSQL (BACKSTAGE_DB=postgres, its databases
#      dropped first, so it starts empty too; BACKSTAGE_DB=sqlite: in-memory);
#      Ours runs with limits.sse_streams_per_client raised to 5000: the
#      harness is one client, and its 1,000 watchers stand for 1,000 browsers
#      (the default of 20 per client would refuse most of them with 429);
#   4. runs W1, W2, sustained and watchers on both, prints the side-by-side
#      table, stops both servers and drops the database.
#
# Environment:
#   SHARED_DIR      the shared folder (default ../shared next to the repository)
#   BREF_DIR        where the reference backend is copied (default /tmp/bref)
#   OURS_PORT       default 7007;  BACKSTAGE_PORT  default 7107
#   PG_URL          PostgreSQL server (default postgres://postgres@127.0.0.1:5432)
#   OUT_JSON        also write the figures as JSON there (default /tmp/scaffolder-load.json)
#   BACKSTAGE_DB    postgres (default: the workload's figures compare the two
#                   servers on the same PostgreSQL) or sqlite (in-memory)
#   SKIP_BUILD=1    use the binaries already in target/release
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="$(cd "${SHARED_DIR:-$ROOT/../shared}" && pwd)"
BREF="${BREF_DIR:-/tmp/bref}"
OURS_PORT="${OURS_PORT:-7007}"
BACKSTAGE_PORT="${BACKSTAGE_PORT:-7107}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
OUT_JSON="${OUT_JSON:-/tmp/scaffolder-load.json}"
DB="scaffolder_bench_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
TEMPLATES="$SHARED/fixtures/compat-templates"
BACKSTAGE_DB="${BACKSTAGE_DB:-postgres}"

cd "$ROOT"
if [[ -z "${SKIP_BUILD:-}" ]]; then
  cargo build --release --locked --bin scaffolder
  # The harness is its own workspace (load/); built into the same target dir.
  CARGO_TARGET_DIR="$ROOT/target" cargo build --release --locked --manifest-path load/Cargo.toml
fi

if [[ ! -d "$BREF" ]]; then
  cp -r "$SHARED/bench/backstage-ref" "$BREF"
  chmod -R u+w "$BREF"
fi
# Backstage keeps one database per plugin between starts (DB=postgres); each
# run starts it on empty ones, as ours starts on an empty database.
drop_backstage_databases() {
  local db
  for db in $(psql "$PG_URL/postgres" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE 'backstage_plugin_%'"); do
    psql "$PG_URL/postgres" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  done
}
# The first start installs the dependencies; the harness starts it again to time it.
PORT="$BACKSTAGE_PORT" DB="$BACKSTAGE_DB" "$BREF/run.sh" start >/dev/null
PORT="$BACKSTAGE_PORT" "$BREF/run.sh" stop >/dev/null
if [[ "$BACKSTAGE_DB" == postgres ]]; then drop_backstage_databases; fi
sleep 5 # let the machine settle before the timed starts

cleanup() {
  psql "$PG_URL/postgres" -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
# An empty database, as the workload definition says: the start applies the
# migrations (Backstage starts on empty databases too, see above).
psql "$PG_URL/postgres" -qAtc "CREATE DATABASE $DB" >/dev/null

"$ROOT/target/release/scaffolder-load" \
  --target "ours=http://127.0.0.1:$OURS_PORT,db=$DB,ready=/readyz" \
  --spawn "ours=DATABASE_URL=$PG_URL/$DB SCAFFOLDER__LIMITS__SSE_STREAMS_PER_CLIENT=5000 exec $ROOT/target/release/scaffolder serve --bind 127.0.0.1:$OURS_PORT --templates $TEMPLATES" \
  --target "backstage=http://127.0.0.1:$BACKSTAGE_PORT" \
  --spawn "backstage=cd $BREF && PORT=$BACKSTAGE_PORT DB=$BACKSTAGE_DB DATABASE_URL=${PG_URL/postgres:/postgresql:}/postgres exec node index.js" \
  --ref-demo "$TEMPLATES/ref-demo" \
  --json "$OUT_JSON" \
  "$@"
