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
    [[ -n ${AUTH_PID:-} ]] && kill "$AUTH_PID" 2>/dev/null && wait "$AUTH_PID" 2>/dev/null || true
    [[ -n ${JWKS_PID:-} ]] && kill "$JWKS_PID" 2>/dev/null && wait "$JWKS_PID" 2>/dev/null || true
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"${DB}_auth\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cp -r "$SHARED/compat/." "$WORK/compat"
(cd "$WORK/compat" && npm ci --no-audit --no-fund --silent)

cargo build --locked --release --bin scaffolder
BIN=${CARGO_TARGET_DIR:-target}/release/scaffolder
DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" SCAFFOLDER__LOG__FORMAT=pretty \
    "$BIN" serve --bind "127.0.0.1:$PORT" --templates "$SHARED/fixtures/compat-templates" \
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
    exit $status
fi

# The same suite with auth on: Backstage user tokens checked against a JWKS
# served by .ci/mint-token.mjs (a stand-in for Backstage's auth backend).
AUTH_PORT=$((PORT + 1))
JWKS_PORT=$((PORT + 2))
AUTH_LOG=$WORK/server-auth.log
node .ci/mint-token.mjs --port "$JWKS_PORT" --sub user:default/compat >"$WORK/token" &
JWKS_PID=$!
for _ in $(seq 1 50); do [[ -s $WORK/token ]] && break; sleep 0.1; done
TOKEN=$(head -n 1 "$WORK/token")
[[ -n $TOKEN ]] || { echo "no token from .ci/mint-token.mjs" >&2; exit 1; }
DATABASE_URL="postgres://postgres@127.0.0.1:5432/${DB}_auth" SCAFFOLDER__LOG__FORMAT=pretty \
    SCAFFOLDER__AUTH__BACKSTAGE__BASE_URL="http://127.0.0.1:$JWKS_PORT" \
    "$BIN" serve --bind "127.0.0.1:$AUTH_PORT" --templates "$SHARED/fixtures/compat-templates" \
    >"$AUTH_LOG" 2>&1 &
AUTH_PID=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$AUTH_PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$AUTH_PID" 2>/dev/null || { cat "$AUTH_LOG"; echo "server (auth on) exited" >&2; exit 1; }
    sleep 0.2
done
# Without a token: a clean 401 in Backstage's error shape, and the suite fails.
code=$(curl -s -o "$WORK/401.json" -w '%{http_code}' "http://127.0.0.1:$AUTH_PORT/api/scaffolder/v2/actions")
if [[ $code != 401 ]] || ! grep -q '"AuthenticationError"' "$WORK/401.json"; then
    echo "auth on, no token: expected 401 AuthenticationError, got $code $(cat "$WORK/401.json")" >&2
    exit 1
fi
if node "$WORK/compat/suite.mjs" --base "http://127.0.0.1:$AUTH_PORT" --fixtures "$SHARED/fixtures/compat-templates" \
    >"$WORK/no-token.out" 2>&1; then
    echo "auth on: the suite passed without a token" >&2
    exit 1
fi
echo "auth on, no token: 401 and the suite fails ($(tail -n 1 "$WORK/no-token.out"))"
node "$WORK/compat/suite.mjs" --base "http://127.0.0.1:$AUTH_PORT" --fixtures "$SHARED/fixtures/compat-templates" \
    --token "$TOKEN" || status=$?
if [[ $status -ne 0 ]]; then
    echo "--- server log, auth on (last 80 lines) ---"
    tail -n 80 "$AUTH_LOG"
fi
exit $status
