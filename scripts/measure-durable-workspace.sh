#!/usr/bin/env bash
# What saving the workspace costs one `app-base-go-react` task: the bytes the
# task makes PostgreSQL write (WAL, with and without `worker.save_workspace`)
# and the time each save adds to its step (from the worker's debug log).
# Run it on an otherwise idle PostgreSQL: the WAL counts every database.
#   SCAFFOLDER_BIN=target/release/scaffolder bash scripts/measure-durable-workspace.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${SCAFFOLDER_BIN:-target/release/scaffolder}
ADMIN=${ADMIN_URL:-postgres://postgres@127.0.0.1:5432}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
psql_admin() { psql "$ADMIN/postgres" -Atqc "$1"; }

for save in true false; do
    db="scaffolder_measure_$(date +%s%N)"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log="$work/serve-$save.log"
    SCAFFOLDER__WORKER__SAVE_WORKSPACE=$save DATABASE_URL="$ADMIN/$db" \
        SCAFFOLDER__INTEGRATIONS__LOCAL_GIT__DIR="$work/git-$save" \
        SCAFFOLDER__LOG__LEVEL=info,scaffolder=debug SCAFFOLDER__LOG__FORMAT=json \
        "$BIN" serve --bind "127.0.0.1:$port" --templates templates >"$log" 2>&1 &
    server=$!
    until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.1; done
    base="http://127.0.0.1:$port/api/scaffolder/v2"
    before=$(psql_admin "SELECT pg_current_wal_lsn()")
    id=$(curl -fs "$base/tasks" -H 'content-type: application/json' -d '{
        "templateRef": "template:default/app-base-go-react",
        "values": {"name": "measure-api", "description": "Measure", "owner": "group:default/team-a",
                   "repoUrl": "git.local?owner=soft-yt&repo=measure-api", "clusters": ["onprem-dev", "yc-prod"],
                   "gitopsRepoUrl": "git.local?owner=soft-yt&repo=infra-gitops"}}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    until curl -fs "$base/tasks/$id" | grep -q '"status":"\(completed\|failed\)"'; do sleep 0.2; done
    status=$(curl -fs "$base/tasks/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    after=$(psql_admin "SELECT pg_current_wal_lsn()")
    wal=$(psql_admin "SELECT pg_wal_lsn_diff('$after', '$before')::bigint")
    rows=$(psql "$ADMIN/$db" -Atqc "SELECT (SELECT coalesce(sum(pg_column_size(e.*)), 0) FROM task_events e) \
        + (SELECT coalesce(sum(pg_column_size(s.*)), 0) FROM task_steps s) + (SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM tasks t)")
    kill -TERM "$server"; wait "$server" || true
    echo "save_workspace=$save: task $status; WAL written meanwhile (all databases): $wal bytes; rows the task keeps (task, events, journal): $rows bytes"
    python3 - "$log" <<'PY'
import json, sys
saves = []
for line in open(sys.argv[1]):
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    fields = entry.get("fields", entry)
    if fields.get("message") == "workspace saved":
        saves.append(fields)
for s in saves:
    print(f"  save after {s['step']}: {s['files']} files, {s['bytes']} bytes in the workspace, "
          f"{s['stored_bytes']} sealed bytes stored, manifest {s['manifest_bytes']} bytes, {s['elapsed_ms']} ms")
if saves:
    print(f"  payload written by saves: {sum(s['stored_bytes'] + s['manifest_bytes'] for s in saves)} bytes")
PY
    psql_admin "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
done
