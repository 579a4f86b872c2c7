#!/usr/bin/env bash
# Runs ../shared/compat (Backstage's published ScaffolderClient) against a
# freshly started server that serves the compatibility templates.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SHARED=$(cd "${1:-../shared}" && pwd)
PORT=${COMPAT_PORT:-7077}
DB=scaffolder_compat_$$
WORK=$(mktemp -d)
LOG=$WORK/server.log

cleanup() {
    [[ -n ${SERVER_PID:-} ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cp -r "$SHARED/compat/." "$WORK/compat"
(cd "$WORK/compat" && npm ci --no-audit --no-fund --silent)

cargo build --locked --release --bin scaffolder
DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" SCAFFOLDER__LOG__FORMAT=pretty \
    ./target/release/scaffolder serve --bind "127.0.0.1:$PORT" --templates "$SHARED/fixtures/compat-templates" \
    >"$LOG" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG"; echo "server exited" >&2; exit 1; }
    sleep 0.2
done
status=0
node "$WORK/compat/suite.mjs" --base "http://127.0.0.1:$PORT" --fixtures "$SHARED/fixtures/compat-templates" || status=$?
if [[ $status -ne 0 ]]; then
    echo "--- server log (last 80 lines) ---"
    tail -n 80 "$LOG"
fi
exit $status
