// Validates the custom resources in kustomize output (YAML on the files
// given) against the schemas generated from their published CRDs
// (@kubernetes-models/*: the openAPIV3Schema of each CRD version, compiled).
// Core kinds are kubernetes-validate's job; any other kind without a schema
// here fails, so no resource goes unchecked.
//
//   node validate-crs.mjs FILE...
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { ExternalSecret } from "@kubernetes-models/external-secrets/external-secrets.io/v1/ExternalSecret";
import { ClusterSecretStore } from "@kubernetes-models/external-secrets/external-secrets.io/v1/ClusterSecretStore";
import { SecretStore } from "@kubernetes-models/external-secrets/external-secrets.io/v1/SecretStore";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const models = new Map(
  [ExternalSecret, ClusterSecretStore, SecretStore, ServiceMonitor, PodMonitor, PrometheusRule].map((m) => [
    `${m.apiVersion}/${m.kind}`,
    m,
  ]),
);
// Groups kubernetes-validate knows (the built-in API).
const core = (apiVersion) => !apiVersion.includes("/") || /^[a-z.]*k8s\.io\/|^(apps|batch|policy|autoscaling)\//.test(apiVersion);

let failed = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      console.log(`FAIL ${file}: ${doc.errors[0].message}`);
      failed++;
      continue;
    }
    const obj = doc.toJS();
    if (!obj) continue;
    const id = `${obj.apiVersion}/${obj.kind}`;
    const name = `${file}: ${obj.kind}/${obj.metadata?.name}`;
    const Model = models.get(id);
    if (!Model) {
      if (!core(obj.apiVersion)) {
        console.log(`FAIL ${name}: no CRD schema for ${id} (add its @kubernetes-models package)`);
        failed++;
      }
      continue;
    }
    try {
      new Model(obj).validate();
      console.log(`ok   ${name} (${id})`);
    } catch (e) {
      console.log(`FAIL ${name} (${id}): ${e.message}`);
      failed++;
    }
  }
}
process.exit(failed ? 1 : 0);
