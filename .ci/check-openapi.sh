#!/usr/bin/env bash
# The committed OpenAPI document must pass openapi-spec-validator, and
# openapi-python-client and openapi-typescript must generate clients from it
# without warnings (portals generate their clients from it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SPEC=$PWD/openapi/openapi.yaml
CACHE=${OPENAPI_TOOLS_CACHE:-$HOME/.cache/scaffolder-openapi-tools}
VENV=$CACHE/venv
NPM_DIR=$CACHE/npm
mkdir -p "$CACHE"

if [[ ! -x $VENV/bin/openapi-python-client || ! -x $VENV/bin/openapi-spec-validator || ! -x $VENV/bin/ruff ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        'openapi-spec-validator==0.7.*' 'openapi-python-client==0.26.*' ruff
fi
if [[ ! -x $NPM_DIR/node_modules/.bin/openapi-typescript ]]; then
    mkdir -p "$NPM_DIR"
    (cd "$NPM_DIR" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent 'openapi-typescript@7' 'typescript@5')
fi

echo "openapi-spec-validator:"
"$VENV/bin/openapi-spec-validator" "$SPEC"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "openapi-python-client:"
(cd "$WORK" && PATH="$VENV/bin:$PATH" "$VENV/bin/openapi-python-client" generate --path "$SPEC" --meta none --output-path py-client) \
    >"$WORK/py.log" 2>&1 || { cat "$WORK/py.log"; exit 1; }
cat "$WORK/py.log"
if grep -qiE 'warning|error|could not|unsupported' "$WORK/py.log"; then
    echo "openapi-python-client reported problems" >&2
    exit 1
fi

echo "openapi-typescript:"
"$NPM_DIR/node_modules/.bin/openapi-typescript" "$SPEC" -o "$WORK/api.d.ts" >"$WORK/ts.log" 2>&1 ||
    { cat "$WORK/ts.log"; exit 1; }
cat "$WORK/ts.log"
if grep -qiE 'warn|error' "$WORK/ts.log"; then
    echo "openapi-typescript reported problems" >&2
    exit 1
fi
# The generated types must compile.
"$NPM_DIR/node_modules/.bin/tsc" --noEmit --strict "$WORK/api.d.ts"
echo "OpenAPI checks passed"
