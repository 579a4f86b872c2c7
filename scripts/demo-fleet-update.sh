#!/usr/bin/env bash
# A fleet update of app-base-go-react, end to end, on this machine: a server
# on a fresh database, three services generated from a copy of the template
# on the local git host, one team's change next to the template's, one on
# the same lines, version 2 of the template (a changed Makefile target, a new
# file with a new parameter, a deleted file), then `scaffolder update
# --dry-run` and `scaffolder update`, whose output shows each pull-request body.
#
# Needs PostgreSQL (DATABASE_ADMIN_URL, default postgres://postgres@127.0.0.1:5432)
# and a built binary (BIN, default target/debug/scaffolder).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/target/debug/scaffolder}
ADMIN=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
SERVER=http://127.0.0.1:$PORT
DEMO=$(mktemp -d)
DB=scaffolder_demo_fleet_$$
GIT=(git -c user.name=team -c user.email=team@example.com)

cleanup() {
    [[ -n ${SERVER_PID:-} ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    psql "$ADMIN/postgres" -qAt -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$DEMO"
}
trap cleanup EXIT

mkdir -p "$DEMO/templates" "$DEMO/work"
cp -r templates/app-base-go-react "$DEMO/templates/"
T=$DEMO/templates/app-base-go-react
cat >"$DEMO/config.yaml" <<EOF
server:
  bind: 127.0.0.1:$PORT
database:
  url: $ADMIN/$DB
templates:
  dirs: [$DEMO/templates]
integrations:
  local_git:
    dir: $DEMO/git
secrets:
  key_file: $DEMO/secrets.key
log:
  level: warn
EOF
"$BIN" serve --config "$DEMO/config.yaml" >"$DEMO/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -fsS "$SERVER/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fsS "$SERVER/readyz" >/dev/null

echo "### Three services from version 1"
for name in orders-api billing-api search-api; do
    "$BIN" create app-base-go-react --server "$SERVER" \
        --set "name=$name" --set owner=group:default/team-a \
        --set "repoUrl=git.local?owner=soft-yt&repo=$name" \
        --set 'gitopsRepoUrl=git.local?owner=soft-yt&repo=infra-gitops' \
        --set 'clusters=[onprem-dev]' >/dev/null
    echo "$name: generated"
done
echo
echo "### .scaffolder/answers.yaml of orders-api"
git --git-dir="$DEMO/git/soft-yt/orders-api.git" show main:.scaffolder/answers.yaml

team_change() { # repo file from to
    local work=$DEMO/work/$1
    git clone -q "$DEMO/git/soft-yt/$1.git" "$work"
    python3 - "$work/$2" "$3" "$4" <<'PY'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
assert old in text, old
open(path, "w").write(text.replace(old, new, 1))
PY
    "${GIT[@]}" -C "$work" commit -qam "team change to $2"
    git -C "$work" push -q origin main
}
# billing-api: a change next to the template's; search-api: the same lines.
team_change billing-api Makefile 'test: test-backend test-frontend ## Run all tests' \
    'test: test-backend test-frontend ## Run all tests (billing: also make contract-test)'
team_change search-api Makefile '	@test -z "$$(gofmt -l backend)"' '	@test -z "$$(gofmt -s -l backend)"'

echo
echo "### Version 2 of the template"
python3 - "$T" <<'PY'
import pathlib, sys
t = pathlib.Path(sys.argv[1])
mk = t / "skeleton/Makefile"
mk.write_text(mk.read_text().replace(
    '\t@test -z "$$(gofmt -l backend)"',
    '\t@test -z "$$(gofmt -l backend)" || { echo "gofmt: run make fmt"; exit 1; }\n\tcd backend && go vet ./...\n\t@test -z "$$(gofmt -l backend)"', 1))
(t / "skeleton/SECURITY.md").write_text(
    "# Security policy of ${{ values.name }}\n\nReport vulnerabilities to ${{ values.securityContact }}.\n")
(t / "skeleton/frontend/.dockerignore").unlink()
tpl = t / "template.yaml"
text = tpl.read_text()
text = text.replace("""        description:
          title: Description""", """        securityContact:
          title: Security contact
          type: string
          default: security@soft-yt.dev
        description:
          title: Description""", 1)
text = text.replace("          imageRegistry: ghcr.io/soft-yt\n",
                    "          imageRegistry: ghcr.io/soft-yt\n          securityContact: ${{ parameters.securityContact }}\n", 1)
tpl.write_text(text)
PY
echo "Makefile lint target changed, SECURITY.md added (new parameter securityContact), frontend/.dockerignore deleted"

echo
echo "### scaffolder update app-base-go-react --dry-run --repo orders-api"
"$BIN" update app-base-go-react --server "$SERVER" --dry-run --repo 'git.local?owner=soft-yt&repo=orders-api'
echo
echo "### scaffolder update app-base-go-react"
"$BIN" update app-base-go-react --server "$SERVER" || true
echo
echo "### The conflict as search-api's branch holds it"
git --git-dir="$DEMO/git/soft-yt/search-api.git" show scaffolder/update-app-base-go-react:Makefile | grep -n -A6 '^<<<<<<<'
echo
echo "### scaffolder update app-base-go-react, again (nothing to push)"
"$BIN" update app-base-go-react --server "$SERVER" 2>&1 | grep '^\['
