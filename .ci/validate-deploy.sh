#!/usr/bin/env bash
# Builds and validates the Kubernetes manifests under deploy/kustomize:
#   * `kubectl kustomize` of the base and of every overlay (the component
#     through the overlays that include it);
#   * kubernetes-validate --strict (PyPI; the API's own OpenAPI schemas,
#     unknown fields rejected) against the oldest and the newest Kubernetes
#     version we support;
#   * the custom resources (ExternalSecret, ServiceMonitor) against the
#     schemas generated from their published CRDs (npm @kubernetes-models/*),
#     by .ci/deploy-validate/validate-crs.mjs; a kind with no schema fails;
#   * that the validators bite: a broken copy of each custom resource fails;
#   * with SCAFFOLDER_BIN: the registration template deploy/kustomize/template.yaml
#     run by that binary into a local infra-gitops, whose overlays must build
#     and validate as well.
# Tools are installed once under ${VALIDATE_DEPLOY_CACHE:-~/.cache/scaffolder-validate-deploy}.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
K8S_VERSIONS=(1.30.0 1.37.0)
PIP_REQUIREMENTS='
kubernetes-validate==1.37.0
attrs==26.1.0
importlib_resources==7.1.0
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
packaging==26.4
PyYAML==6.0.4
referencing==0.37.0
rpds-py==2026.9.1
typing_extensions==4.16.0
'
say() { printf 'validate-deploy: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

command -v kubectl >/dev/null || die "kubectl is required (kubectl kustomize)"
CACHE=${VALIDATE_DEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scaffolder-validate-deploy}
KEY=$(printf '%s' "$PIP_REQUIREMENTS" "$(python3 -V)" | sha256sum | cut -c1-12)
VENV=$CACHE/venv-$KEY
if [[ ! -f $VENV/.complete ]]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    printf '%s\n' "$PIP_REQUIREMENTS" >"$CACHE/requirements-$KEY.txt"
    "$VENV/bin/pip" install --disable-pip-version-check -q --only-binary :all: -r "$CACHE/requirements-$KEY.txt"
    touch "$VENV/.complete"
fi
(cd .ci/deploy-validate && npm ci --no-audit --no-fund --silent 2>&1 | grep -v EBADENGINE || true)
[[ -d .ci/deploy-validate/node_modules/@kubernetes-models ]] || die "npm ci in .ci/deploy-validate failed"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failed=0
dirs=(deploy/kustomize/base deploy/kustomize/overlays/*/)
for dir in "${dirs[@]}"; do
    dir=${dir%/}
    out=$WORK/$(echo "$dir" | tr / _).yaml
    if ! kubectl kustomize "$dir" >"$out" 2>"$WORK/err"; then
        say "FAIL kubectl kustomize $dir: $(cat "$WORK/err")"
        failed=1
        continue
    fi
    say "ok   kubectl kustomize $dir ($(grep -c '^kind:' "$out") resources)"
    for v in "${K8S_VERSIONS[@]}"; do
        if "$VENV/bin/kubernetes-validate" --strict --quiet --no-warn -k "$v" "$out" >"$WORK/kv" 2>&1; then
            say "ok   kubernetes-validate --strict -k $v $dir"
        else
            say "FAIL kubernetes-validate --strict -k $v $dir"
            sed 's/^/    /' "$WORK/kv" >&2
            failed=1
        fi
    done
    if node .ci/deploy-validate/validate-crs.mjs "$out" >"$WORK/crs" 2>&1; then
        say "ok   CRD schemas $dir ($(grep -c '^ok' "$WORK/crs") custom resources)"
    else
        say "FAIL CRD schemas $dir"
        sed 's/^/    /' "$WORK/crs" >&2
        failed=1
    fi
done

# The validators must reject what the API server would.
kubectl kustomize deploy/kustomize/base |
    sed -e 's/\(interval:\) 30s$/\1 30/' -e 's/^\(    kind:\) ClusterSecretStore$/\1 7/' >"$WORK/broken.yaml"
if node .ci/deploy-validate/validate-crs.mjs "$WORK/broken.yaml" >"$WORK/crs" 2>&1 ||
    [[ $(grep -c '^FAIL' "$WORK/crs") -ne 2 ]]; then
    say "FAIL the CRD validation accepted broken resources:"
    sed 's/^/    /' "$WORK/crs" >&2
    failed=1
fi
kubectl kustomize deploy/kustomize/base | sed 's/^\(        readinessProbe:\)$/        readinessProbes:/' >"$WORK/broken.yaml"
if "$VENV/bin/kubernetes-validate" --strict --quiet --no-warn -k "${K8S_VERSIONS[-1]}" "$WORK/broken.yaml" >/dev/null 2>&1; then
    say "FAIL kubernetes-validate --strict accepted an unknown field"
    failed=1
fi
# Registration into infra-gitops (deploy/kustomize/template.yaml) with the
# scaffolder itself, when a binary is given: the vendored base and the
# written overlays must build and validate too.
if [[ -n ${SCAFFOLDER_BIN:-} ]]; then
    if XDG_DATA_HOME=$WORK/data "$SCAFFOLDER_BIN" run deploy/kustomize --output json \
        --set 'gitopsRepoUrl=git.local?owner=acme&repo=infra-gitops' \
        --set 'clusters=[onprem-dev, yc-prod]' --set imageTag=0123abc >"$WORK/register.json" 2>&1 &&
        git clone -q "$WORK/data/scaffolder/git/acme/infra-gitops.git" "$WORK/infra-gitops"; then
        for cluster in onprem-dev yc-prod; do
            dir=$WORK/infra-gitops/apps/scaffolder/overlays/$cluster
            if kubectl kustomize "$dir" >"$WORK/registered.yaml" 2>"$WORK/err" &&
                grep -q 'image: ghcr.io/soft-yt/scaffolder:0123abc' "$WORK/registered.yaml" &&
                "$VENV/bin/kubernetes-validate" --strict --quiet --no-warn "$WORK/registered.yaml" >"$WORK/kv" 2>&1 &&
                node .ci/deploy-validate/validate-crs.mjs "$WORK/registered.yaml" >"$WORK/crs" 2>&1; then
                say "ok   registered in infra-gitops: apps/scaffolder/overlays/$cluster builds and validates"
            else
                say "FAIL registered overlay apps/scaffolder/overlays/$cluster"
                cat "$WORK/err" "$WORK/kv" "$WORK/crs" 2>/dev/null | sed 's/^/    /' >&2
                failed=1
            fi
        done
    else
        say "FAIL scaffolder run deploy/kustomize (registration in infra-gitops)"
        sed 's/^/    /' "$WORK/register.json" >&2
        failed=1
    fi
fi
((failed == 0)) || exit 1
say "all manifests valid"
