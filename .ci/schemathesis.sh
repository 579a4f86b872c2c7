#!/usr/bin/env bash
# Property-based API fuzzing with schemathesis against our own OpenAPI
# document: `scaffolder serve` on a fresh database with the test templates,
# a bounded, seeded run over every operation, and these checks: no server
# errors, status codes, content types, response headers and bodies as the
# document describes them. Prints how many requests were made and how many
# answered 5xx; fails on any check failure or any 5xx.
#
#   SCAFFOLDER_BIN   the binary to serve (default: target/release/scaffolder,
#                    else target/debug/scaffolder, built if neither exists)
#   ST_MAX_EXAMPLES  test cases per operation and phase (default 400)
#   ST_SEED          hypothesis seed (default 20261126)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BUILD=$ROOT/target/schemathesis
VENV=$BUILD/venv
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-400}
SEED=${ST_SEED:-20261126}
ADMIN_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}
mkdir -p "$BUILD"

if [[ ! -x $VENV/bin/st ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.*'
fi
"$VENV/bin/st" --version

BIN=${SCAFFOLDER_BIN:-}
if [[ -z $BIN ]]; then
    if [[ -x $ROOT/target/release/scaffolder ]]; then
        BIN=$ROOT/target/release/scaffolder
    else
        cargo build --locked --bin scaffolder
        BIN=$ROOT/target/debug/scaffolder
    fi
fi

WORK=$(mktemp -d)
DB=scaffolder_st_$(date +%s)_$$
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    psql "$ADMIN_URL/postgres" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Real templates (so template routes have data), a scratch workspace and git host.
DATABASE_URL=$ADMIN_URL/$DB \
    SCAFFOLDER__TEMPLATES__DIRS="$ROOT/tests/templates,$ROOT/templates" \
    SCAFFOLDER__WORKER__WORK_DIR=$WORK/work \
    SCAFFOLDER__INTEGRATIONS__LOCAL_GIT__DIR=$WORK/git \
    SCAFFOLDER__SERVER__LONG_POLL_SECONDS=1 \
    SCAFFOLDER__LOG__LEVEL=warn \
    "$BIN" serve --bind "127.0.0.1:$PORT" >"$BUILD/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$BUILD/server.log"; exit 1; }
    sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/readyz"
echo

# One real task, so that task routes with a valid id are exercised too.
curl -fsS -H 'Content-Type: application/json' \
    -d '{"templateRef":"template:default/guarded","values":{}}' \
    "http://127.0.0.1:$PORT/api/scaffolder/v2/tasks" || true
echo

# schemathesis ignores path-level `servers`: the health endpoints (at the
# root, not under the plugin mount) get a run of their own.
rm -f "$BUILD"/report-*.har
STATUS=0
fuzz() {
    local name=$1 base=$2
    shift 2
    # Run from the build dir: schemathesis keeps a `.schemathesis/` cache in its cwd.
    (cd "$BUILD" && "$VENV/bin/st" run "$ROOT/openapi/openapi.yaml" \
        --url "$base" "$@" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
        --phases examples,coverage,fuzzing \
        --max-examples "$MAX_EXAMPLES" \
        --seed "$SEED" \
        --generation-database none \
        --workers 2 \
        --request-timeout 20 \
        --continue-on-failure \
        --suppress-health-check all \
        --no-color \
        --report har --report-har-path "$BUILD/report-$name.har") || STATUS=$?
}
fuzz api "http://127.0.0.1:$PORT/api/scaffolder" --exclude-tag health
fuzz health "http://127.0.0.1:$PORT" --include-tag health

COUNTS=0
"$VENV/bin/python" - "$BUILD"/report-*.har <<'EOF' || COUNTS=$?
import json, sys
entries = [e for path in sys.argv[1:] for e in json.load(open(path))["log"]["entries"]]
five = [e for e in entries if e["response"]["status"] >= 500]
print(f"schemathesis: {len(entries)} requests, {len(five)} answered 5xx")
for e in five[:20]:
    print("  5xx:", e["request"]["method"], e["request"]["url"], e["response"]["status"])
if len(entries) < 2000:
    print("schemathesis: fewer than 2000 requests were made", file=sys.stderr)
    sys.exit(1)
sys.exit(1 if five else 0)
EOF
if [[ $STATUS -ne 0 ]]; then
    echo "schemathesis found failures (exit $STATUS); server log: $BUILD/server.log" >&2
    exit "$STATUS"
fi
exit "$COUNTS"
