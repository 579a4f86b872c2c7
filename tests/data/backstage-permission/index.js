'use strict';
// A real Backstage backend (the benchmark reference's packages:
// @backstage/plugin-permission-backend, auth with the guest provider, the
// catalog) with the permission framework ON and this folder's policy
// instead of allow-all. Started by tests/governance/permission.rs:
//
//   BACKSTAGE_REF_DIR=<copy of bench/backstage-ref with node_modules> \
//   PORT=<port> POLICY_FILE=<json file> node index.js
//
// The modules come from BACKSTAGE_REF_DIR's node_modules; the config is
// this folder's app-config.yaml.

const path = require('node:path');
const { createRequire } = require('node:module');

const refDir = process.env.BACKSTAGE_REF_DIR;
const port = process.env.PORT;
if (!refDir || !port || !process.env.POLICY_FILE) {
  console.error('backstage-permission: BACKSTAGE_REF_DIR, PORT and POLICY_FILE are required');
  process.exit(2);
}
const ref = createRequire(path.join(refDir, 'package.json'));
process.chdir(__dirname);
process.env.APP_CONFIG_backend_listen_port = port;
process.env.APP_CONFIG_backend_baseUrl = `http://localhost:${port}`;

const { createBackend } = ref('@backstage/backend-defaults');
const { policyModule } = require('./policy.js');

const backend = createBackend();
backend.add(ref('@backstage/plugin-auth-backend').default);
backend.add(ref('@backstage/plugin-auth-backend-module-guest-provider').default);
backend.add(ref('@backstage/plugin-catalog-backend').default);
backend.add(ref('@backstage/plugin-permission-backend').default);
backend.add(policyModule(ref));
backend.start().then(
  () => console.log(`backstage-permission: started pid=${process.pid} port=${port}`),
  err => {
    console.error('backstage-permission: failed to start', err);
    process.exit(1);
  },
);
