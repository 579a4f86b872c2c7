#!/usr/bin/env bash
# Builds the image from the Dockerfile with podman and runs docker-compose.yml
# with podman-compose, then checks the running stack from the outside:
#
#   1. base images: pulled when a registry answers, otherwise made here
#      (debootstrap bookworm -> debian:bookworm-slim; the same plus this
#      machine's Rust toolchain -> rust:1-bookworm; Debian's PostgreSQL with an
#      entrypoint that initializes and runs it -> the compose file's postgres
#      image name). Nothing else is pulled from anywhere.
#   2. `podman build` of the Dockerfile as it is (BuildKit cache mounts);
#      prints the image size and the build time.
#   3. `podman-compose up -d`, waits for GET /readyz (podman-compose does not
#      wait for health), prints the scaffolder container's memory at idle.
#   4. Backstage's ScaffolderClient compatibility suite (../shared/compat)
#      against the container, then its memory again.
#   5. a real task in the container: app-base-go-react publishes a service
#      repository and its infra-gitops overlays to the local git host.
#   6. persistence: a task holding a sealed secret is started, the stack is
#      taken down (containers removed, volumes kept) and brought up again; the
#      tasks created before are still listed, and that task resumes, opens its
#      secret with the key kept in the data volume and publishes it.
#   7. the image run as deploy/kustomize runs it (read-only root filesystem,
#      a tmpfs on /tmp, no capabilities, secrets.keys set): ready, and a task
#      renders a skeleton in its workspace.
#   8. `podman-compose down -v`; untagged images of earlier builds pruned.
#
#   bash scripts/container-check.sh [SHARED_DIR]
#
# Needs root (podman rootful: no user namespaces to set up on a CI machine),
# installs podman & co. from Debian and podman-compose from PyPI when missing.
# Environment: CONTAINER_CHECK_PORT (host port, default 17007),
# CONTAINER_CHECK_WORK (work dir, default /var/tmp/scaffolder-container-check:
# keeps the base images' rootfs between runs on one machine),
# CONTAINER_CHECK_KEEP=1 leaves the stack running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SHARED=$(cd "${1:-${SHARED_DIR:-../shared}}" && pwd)
PORT=${CONTAINER_CHECK_PORT:-17007}
WORK=${CONTAINER_CHECK_WORK:-/var/tmp/scaffolder-container-check}
PROJECT=scaffolder-check
IMAGE=scaffolder:dev
PODMAN_COMPOSE_VERSION=1.6.0
START=$SECONDS

say() { printf 'container-check: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
step() { printf '\n--- container-check: %s (at %d s) ---\n' "$*" "$((SECONDS - START))" >&2; }

[[ $(id -u) == 0 ]] || die "needs root (rootful podman)"
[[ -d $SHARED/compat && -d $SHARED/fixtures/compat-templates ]] ||
    die "needs the reference material: $SHARED/compat and $SHARED/fixtures/compat-templates"
mkdir -p "$WORK"

# ------------------------------------------------------------------ tools
step "tools"
missing=()
for tool in podman buildah runc skopeo debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]} and their helpers from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends podman buildah runc skopeo debootstrap \
        fuse-overlayfs uidmap slirp4netns netavark aardvark-dns containernetworking-plugins iptables >/dev/null
fi
VENV=$WORK/venv-podman-compose-$PODMAN_COMPOSE_VERSION
if [[ ! -x $VENV/bin/podman-compose ]]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --disable-pip-version-check -q "podman-compose==$PODMAN_COMPOSE_VERSION"
fi
COMPOSE=("$VENV/bin/podman-compose" --project-name "$PROJECT"
    -f "$ROOT/docker-compose.yml" -f "$ROOT/scripts/container-check/compose.check.yml")

# crun cannot set up its cgroups on this kind of machine, and the default
# ulimits (nofile, nproc) cannot be raised in it: a containers.conf of our
# own, passed to podman (and through it podman-compose) by CONTAINERS_CONF.
export CONTAINERS_CONF=$WORK/containers.conf
cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
podman --version

# --------------------------------------------------------------- base images
step "base images"
registry_reachable() {
    timeout 20 skopeo inspect --retry-times 0 docker://docker.io/library/debian:bookworm-slim >/dev/null 2>&1
}
if registry_reachable; then
    say "docker.io answers: pulling the real base images"
    for img in docker.io/library/debian:bookworm-slim docker.io/library/rust:1-bookworm docker.io/library/postgres:16-alpine; do
        podman pull -q "$img" >/dev/null
    done
else
    say "no registry reachable: making the base images locally"
    # The Debian mirror apt uses here, and the host's CA certificates: HTTPS
    # from inside the containers (cargo to crates.io) goes through the same
    # network as this host's, whose locally installed CAs it may need.
    MIRROR=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
    [[ -n $MIRROR ]] || MIRROR=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
    ROOTFS=$WORK/rootfs-bookworm
    if [[ ! -f $ROOTFS/.complete ]]; then
        rm -rf "$ROOTFS"
        t=$SECONDS
        debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
            { tail -n 30 "$WORK/debootstrap.log"; die "debootstrap failed"; }
        rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
        touch "$ROOTFS/.complete"
        say "debootstrap took $((SECONDS - t)) s"
    fi
    # Trimmed like the official -slim image: no manuals, docs (but the
    # copyright files) or translations, now or in packages installed later.
    rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/var/cache/apt/*.bin
    find "$ROOTFS/usr/share/doc" -type f ! -name copyright -delete
    find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF2'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF2
    # apt keeps no downloaded packages nor caches in image layers (the
    # official image's docker-clean).
    cat >"$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'EOF2'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF2
    echo 'Acquire::Languages "none";' >"$ROOTFS/etc/apt/apt.conf.d/docker-no-languages"
    # Refreshed every time: the host's CAs may change between runs.
    mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
    fi
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$MIRROR" "$MIRROR" >"$ROOTFS/etc/apt/sources.list"
    tar -C "$ROOTFS" --exclude=./.complete -c . |
        podman import --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            - docker.io/library/debian:bookworm-slim >/dev/null
    podman tag docker.io/library/debian:bookworm-slim localhost/debian:bookworm-slim

    # rust:1-bookworm: Debian's compilers for the -sys crates, and this
    # machine's toolchain (rustc --print sysroot; docs left out) laid out as
    # in the official image (CARGO_HOME=/usr/local/cargo on PATH).
    CTX=$WORK/rust-context
    rm -rf "$CTX"
    mkdir -p "$CTX"
    SYSROOT=$(rustc --print sysroot)
    cp -al "$SYSROOT" "$CTX/toolchain" 2>/dev/null || cp -a "$SYSROOT" "$CTX/toolchain"
    rm -rf "$CTX/toolchain/share/doc" "$CTX/toolchain/share/man"
    cp "$ROOT/scripts/container-check/rust.Containerfile" "$CTX/Containerfile"
    t=$SECONDS
    podman build -q -t docker.io/library/rust:1-bookworm \
        --build-arg HOST_CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" "$CTX" >/dev/null
    rm -rf "$CTX"
    say "rust:1-bookworm ($(rustc --version)) took $((SECONDS - t)) s"

    t=$SECONDS
    podman build -q -t docker.io/library/postgres:16-alpine \
        -f "$ROOT/scripts/container-check/postgres.Containerfile" "$ROOT/scripts/container-check" >/dev/null
    say "postgres:16-alpine (a stand-in: Debian bookworm's PostgreSQL 15) took $((SECONDS - t)) s"
fi

# --------------------------------------------------------------- the image
step "podman build"
# The Dockerfile's cache mounts (cargo registry, target/) live, for rootful
# buildah, under /var/tmp/buildah-cache/<id>. When this checkout has a release
# build (CI builds one before this check), they are seeded from it and from
# this machine's cargo registry: the dependencies were compiled by the same
# toolchain (the one copied into rust:1-bookworm above) with the same
# command, so cargo in the container reuses them and compiles only this crate
# (its fingerprints name this checkout's paths). Without a release build, or
# with CONTAINER_CHECK_SEED=0, everything is compiled in the container.
BUILDAH_CACHE=/var/tmp/buildah-cache
HOST_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
if [[ ${CONTAINER_CHECK_SEED:-1} == 1 && -d $HOST_TARGET/.fingerprint ]]; then
    t=$SECONDS
    rm -rf "$BUILDAH_CACHE/scaffolder-target/release" "$BUILDAH_CACHE/scaffolder-cargo-registry/"{index,cache,src}
    mkdir -p "$BUILDAH_CACHE/scaffolder-target/release" "$BUILDAH_CACHE/scaffolder-cargo-registry"
    for d in .fingerprint build deps; do
        cp -a "$HOST_TARGET/$d" "$BUILDAH_CACHE/scaffolder-target/release/"
    done
    CARGO_REGISTRY=${CARGO_HOME:-$HOME/.cargo}/registry
    for d in index cache src; do
        [[ -d $CARGO_REGISTRY/$d ]] && cp -a "$CARGO_REGISTRY/$d" "$BUILDAH_CACHE/scaffolder-cargo-registry/"
    done
    say "build caches seeded from $HOST_TARGET and $CARGO_REGISTRY in $((SECONDS - t)) s"
else
    say "build caches not seeded (no release build in $HOST_TARGET): compiling everything in the container"
fi
t=$SECONDS
podman build -t "localhost/$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1 ||
    { tail -n 60 "$WORK/build.log"; die "podman build failed"; }
BUILD_SECONDS=$((SECONDS - t))
IMAGE_SIZE=$(podman image inspect --format '{{.Size}}' "localhost/$IMAGE")
say "image built in $BUILD_SECONDS s; size $((IMAGE_SIZE / 1000000)) MB ($IMAGE_SIZE bytes)"
podman run --rm --entrypoint id "localhost/$IMAGE" | grep -q '^uid=10001' || die "the image does not run as UID 10001"

# ---------------------------------------------------------------- the stack
export SCAFFOLDER_PORT=$PORT CONTAINER_CHECK_TEMPLATES=$SHARED/fixtures/compat-templates
export CONTAINER_CHECK_EXTRA_TEMPLATES=$ROOT/scripts/container-check/templates
cleanup() {
    local rc=$?
    if [[ ${CONTAINER_CHECK_KEEP:-} == 1 ]]; then
        say "stack left running (CONTAINER_CHECK_KEEP=1): ${COMPOSE[*]} down -v"
    else
        podman rm -f "$PROJECT-readonly" >/dev/null 2>&1 || true
        "${COMPOSE[@]}" down -v >/dev/null 2>&1 || true
    fi
    # Earlier builds of the same tags, left untagged.
    podman image prune -f >/dev/null 2>&1 || true
    rm -rf "$WORK/compat" "$WORK/clone"
    say "took $((SECONDS - START)) s in all"
    exit "$rc"
}
trap cleanup EXIT
"${COMPOSE[@]}" down -v >/dev/null 2>&1 || true

BASE=http://127.0.0.1:$PORT
API=$BASE/api/scaffolder/v2

up() {
    "${COMPOSE[@]}" up -d >"$WORK/compose-up.log" 2>&1 ||
        { cat "$WORK/compose-up.log"; die "podman-compose up failed"; }
    local deadline=$((SECONDS + 180))
    until curl -fsS "$BASE/readyz" >/dev/null 2>&1; do
        if ((SECONDS > deadline)); then
            "${COMPOSE[@]}" logs >&2 || true
            die "the scaffolder container was not ready within 180 s"
        fi
        sleep 1
    done
}
container() { podman ps -q --filter "label=io.podman.compose.project=$PROJECT" --filter "label=com.docker.compose.service=scaffolder"; }
rss() {
    # The server is the container's PID 1: its resident set (VmRSS, as in
    # docs/performance.md), and the container's memory as podman stats
    # reports it from the cgroup (what a memory limit counts, page cache
    # excluded).
    local c pid vmrss
    c=$(container)
    pid=$(podman inspect --format '{{.State.Pid}}' "$c")
    vmrss=$(awk '/^VmRSS:/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$pid/status")
    echo "VmRSS $vmrss, cgroup $(podman stats --no-stream --no-reset --format '{{.MemUsage}}' "$c" | cut -d/ -f1 | tr -d ' ')"
}

step "podman-compose up"
t=$SECONDS
up
say "ready in $((SECONDS - t)) s (postgres started, migrations applied)"
RSS_IDLE=$(rss)
say "scaffolder container memory at idle: $RSS_IDLE"

# ----------------------------------------------------- compatibility suite
step "ScaffolderClient compatibility suite against the container"
rm -rf "$WORK/compat"
cp -r "$SHARED/compat/." "$WORK/compat"
(cd "$WORK/compat" && npm ci --no-audit --no-fund --silent)
SUITE_OUT=$WORK/suite.out
if ! node "$WORK/compat/suite.mjs" --base "$BASE" --fixtures "$SHARED/fixtures/compat-templates" | tee "$SUITE_OUT"; then
    "${COMPOSE[@]}" logs scaffolder 2>&1 | tail -n 80 >&2 || true
    die "the compatibility suite failed against the container"
fi
RSS_SUITE=$(rss)
say "scaffolder container memory after the suite: $RSS_SUITE"

# ----------------------------------------------------------- a real task
# poll_task ID STATUS...: waits until the task has one of the statuses.
poll_task() {
    local id=$1 deadline=$((SECONDS + 300)) status
    shift
    while :; do
        status=$(curl -fsS "$API/tasks/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
        for want in "$@"; do [[ $status == "$want" ]] && { echo "$status"; return 0; }; done
        case $status in completed | failed | cancelled)
            curl -fsS "$API/tasks/$id/events" | tail -c 3000 >&2
            die "task $id ended $status, expected $*" ;;
        esac
        ((SECONDS < deadline)) || die "task $id still $status after 300 s"
        sleep 1
    done
}
create_task() { # create_task JSON -> id
    curl -fsS -X POST "$API/tasks" -H 'content-type: application/json' -d "$1" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
in_container() { podman exec "$(container)" "$@"; }

# Dry-runs lay out their files on /dev/shm; the compose file sizes it.
SHM_MIB=$(in_container df -m --output=size /dev/shm | tail -n 1 | tr -d ' ')
((SHM_MIB >= 256)) || die "/dev/shm in the container is $SHM_MIB MiB; docker-compose.yml asks for 256m"
say "/dev/shm in the container: $SHM_MIB MiB (dry-runs lay out their files there)"

step "a real task: app-base-go-react publishes to the local git host in the container"
in_container scaffolder gitops init --repo 'git.local?owner=check&repo=infra-gitops' --cluster onprem-dev >/dev/null
REAL=$(create_task '{"templateRef":"template:default/app-base-go-react","values":{
  "name":"check-api","description":"Published by the container check","owner":"group:default/team-a",
  "repoUrl":"git.local?owner=check&repo=check-api",
  "gitopsRepoUrl":"git.local?owner=check&repo=infra-gitops","clusters":["onprem-dev"]}}')
poll_task "$REAL" completed >/dev/null
GIT=/home/scaffolder/.local/share/scaffolder/git/check
in_container git -C "$GIT/check-api.git" log --oneline -1 main
TREE=$(in_container git -C "$GIT/infra-gitops.git" ls-tree -r --name-only main)
grep -q '^apps/check-api/overlays/onprem-dev/' <<<"$TREE" ||
    die "the infra-gitops repository has no overlay for check-api"
say "task $REAL completed: check/check-api and its overlay in check/infra-gitops are in the container's git host"

# ------------------------------------------------------------ persistence
step "persistence across a new container"
# The task waits 30 s: longer than worker.shutdown_grace_seconds (10) plus the
# time to reach `down`, so it is still running when the stack goes down and
# is handed over rather than finished.
SECRET="sealed-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
SEALED=$(create_task "{\"templateRef\":\"template:default/sealed-secret-check\",
  \"values\":{\"seconds\":30,\"repoUrl\":\"git.local?owner=check&repo=sealed\"},
  \"secrets\":{\"checkToken\":\"$SECRET\"}}")
poll_task "$SEALED" processing >/dev/null
BEFORE=$(curl -fsS "$API/tasks?limit=1000" | python3 -c 'import json,sys; print(" ".join(sorted(t["id"] for t in json.load(sys.stdin)["tasks"])))')
# `down` removes the containers; the named volumes (database, data directory)
# stay. The scaffolder's graceful stop hands the open task back to the queue.
# podman-compose 1.6 `down` may stop postgres before the scaffolder (docker
# compose stops dependents first); the scaffolder then cannot hand its task
# back and is killed after stop_grace_period. So it is stopped first, and its
# log must show the hand-over.
t=$SECONDS
OLD=$(container)
"${COMPOSE[@]}" stop scaffolder >/dev/null 2>&1
say "scaffolder stopped in $((SECONDS - t)) s"
# Read whole, then searched: with pipefail, `podman logs | grep -q` fails
# whenever grep stops reading at the match while podman is still writing
# (it gets SIGPIPE), which depends on how much the server logged.
LOGS=$(podman logs "$OLD" 2>&1)
if ! grep -q 'task released for another replica' <<<"$LOGS"; then
    tail -n 60 <<<"$LOGS" >&2
    die "the stopping scaffolder did not hand its running task back"
fi
"${COMPOSE[@]}" down >/dev/null 2>&1
t=$SECONDS
up
say "stack up again in $((SECONDS - t)) s"
AFTER=$(curl -fsS "$API/tasks?limit=1000" | python3 -c 'import json,sys; print(" ".join(sorted(t["id"] for t in json.load(sys.stdin)["tasks"])))')
for id in $BEFORE; do
    [[ " $AFTER " == *" $id "* ]] || die "task $id, created before the restart, is no longer listed"
done
say "all $(wc -w <<<"$BEFORE") tasks created before the restart are listed"
poll_task "$SEALED" completed >/dev/null
EVENTS=$(curl -fsS "$API/tasks/$SEALED/events")
grep -q '"recovered"' <<<"$EVENTS" ||
    die "task $SEALED has no recovered event: it was not handed over across the restart"
GOT=$(in_container git -C /home/scaffolder/.local/share/scaffolder/git/check/sealed.git show main:token.txt)
[[ $GOT == "$SECRET" ]] || die "the sealed secret did not survive: published token.txt is '$GOT'"
in_container git -C "$GIT/check-api.git" rev-parse --verify -q main >/dev/null ||
    die "the repository published before the restart is gone"
say "task $SEALED resumed in the new container, opened its sealed secret and published it"

# ------------------------------------------- the Kubernetes container settings
step "the settings of deploy/kustomize: read-only root filesystem, /tmp only, no capabilities"
# A second server from the same image, run as the Deployment runs it: read-only
# root, a tmpfs on /tmp (the emptyDir), all capabilities dropped, no privilege
# escalation, secrets.keys given, the local git host off, XDG dirs and HOME
# under /tmp. It has a database of its own on the stack's PostgreSQL and runs a
# task that renders a skeleton into its workspace.
RO_PORT=$((PORT + 1))
RO_NAME=$PROJECT-readonly
KEY=$(podman run --rm "localhost/$IMAGE" secrets generate-key --id check)
NET=$(podman inspect --format '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$(container)" | awk '{ print $1 }')
podman rm -f "$RO_NAME" >/dev/null 2>&1 || true
podman run -d --name "$RO_NAME" --network "$NET" -p "127.0.0.1:$RO_PORT:7007" \
    --read-only --tmpfs /tmp:rw,size=512m,mode=1777 --cap-drop ALL --security-opt no-new-privileges \
    -e DATABASE_URL="postgres://scaffolder:scaffolder-dev-password@postgres:5432/scaffolder_readonly" \
    -e SCAFFOLDER__SECRETS__KEYS="$KEY" -e SCAFFOLDER__INTEGRATIONS__LOCAL_GIT__ENABLED=false \
    -e SCAFFOLDER__AUTH__ALLOW_ANONYMOUS=true \
    -e XDG_CACHE_HOME=/tmp/cache -e XDG_DATA_HOME=/tmp/data -e HOME=/tmp -e TMPDIR=/tmp \
    -v "$SHARED/fixtures/compat-templates:/check/compat-templates:ro" \
    "localhost/$IMAGE" serve --bind 0.0.0.0:7007 --templates /check/compat-templates >/dev/null
deadline=$((SECONDS + 120))
until curl -fsS "http://127.0.0.1:$RO_PORT/readyz" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { podman logs "$RO_NAME" 2>&1 | tail -n 40 >&2; die "the read-only container was not ready within 120 s"; }
    sleep 1
done
RO_API=http://127.0.0.1:$RO_PORT/api/scaffolder/v2
RO_TASK=$(curl -fsS -X POST "$RO_API/tasks" -H 'content-type: application/json' \
    -d '{"templateRef":"template:default/ref-demo","values":{"name":"ro-check","owner":"user:default/check"}}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
deadline=$((SECONDS + 120))
while :; do
    status=$(curl -fsS "$RO_API/tasks/$RO_TASK" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [[ $status == completed ]] && break
    if [[ $status == failed || $status == cancelled ]] || ((SECONDS > deadline)); then
        curl -fsS "$RO_API/tasks/$RO_TASK/events" | tail -c 3000 >&2
        die "task $RO_TASK in the read-only container: $status"
    fi
    sleep 1
done
podman rm -f "$RO_NAME" >/dev/null
say "read-only container: ready, and task $RO_TASK (fetch:template into /tmp) completed"

# ------------------------------------------------------------------ report
step "report"
cat <<EOF
container check passed
  image:                   localhost/$IMAGE, $((IMAGE_SIZE / 1000000)) MB, built in $BUILD_SECONDS s
  compatibility suite:     $(tail -n 1 "$SUITE_OUT")
  memory at idle:          $RSS_IDLE
  memory after the suite:  $RSS_SUITE
  memory at the end:       $(rss)
  duration so far:         $((SECONDS - START)) s (teardown follows)
EOF
