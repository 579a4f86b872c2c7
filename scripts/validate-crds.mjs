// Validates custom resources against their CRD schemas, with the validators
// the @kubernetes-models/* packages generate from the upstream CRDs.
//
// Usage: node scripts/validate-crds.mjs NODE_MODULES FILE.json...
// Each FILE.json holds [{source, doc}, ...] (scripts/verify-generated.sh
// writes them from `kubectl kustomize` output). A resource whose API group no
// package below covers is an error: nothing passes unvalidated.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";

const PACKAGES = {
  "argoproj.io": "@kubernetes-models/argo-cd",
  "cert-manager.io": "@kubernetes-models/cert-manager",
  "external-secrets.io": "@kubernetes-models/external-secrets",
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
  "networking.istio.io": "@kubernetes-models/istio",
  "kyverno.io": "@kubernetes-models/kyverno",
  "traefik.io": "@kubernetes-models/traefik",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

const [nodeModules, ...files] = process.argv.slice(2);
let checked = 0;
const errors = [];
const counts = {};

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.split("/");
  const pkg = PACKAGES[group];
  if (!pkg || !version) return { error: `no CRD schema known for ${apiVersion} ${kind}` };
  const dir = path.join(nodeModules, pkg, group, version);
  for (const name of [`${kind}.mjs`, `${kind}.js`]) {
    const file = path.join(dir, name);
    if (!existsSync(file)) continue;
    const mod = await import(pathToFileURL(file).href);
    const model = mod[kind] ?? mod.default?.[kind];
    if (model) return { model };
  }
  return { error: `${pkg} has no model ${apiVersion} ${kind}` };
}

for (const file of files) {
  const entries = JSON.parse(await readFile(file, "utf8"));
  for (const { source, doc } of entries) {
    const what = `${source}: ${doc.apiVersion} ${doc.kind} ${doc.metadata?.name ?? "?"}`;
    const { model, error } = await modelFor(doc.apiVersion ?? "", doc.kind ?? "");
    checked += 1;
    if (error) {
      errors.push(`${what}: ${error}`);
      continue;
    }
    try {
      new model(doc).validate();
      counts[`${doc.apiVersion} ${doc.kind}`] = (counts[`${doc.apiVersion} ${doc.kind}`] ?? 0) + 1;
      console.log(`ok ${what}`);
    } catch (e) {
      errors.push(`${what}: ${e.message}`);
    }
  }
}
for (const [kind, n] of Object.entries(counts).sort()) console.log(`  ${n} x ${kind}`);
for (const e of errors) console.log(`ERROR ${e}`);
console.log(`custom resources: ${checked} checked, ${errors.length} errors`);
process.exit(errors.length === 0 && checked > 0 ? 0 : 1);
