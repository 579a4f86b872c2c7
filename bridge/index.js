'use strict';
// The action bridge: a minimal Backstage backend whose only plugin is a
// stand-in for the scaffolder (pluginId 'scaffolder'). Scaffolder modules are
// added with the usual `backend.add(…)` line, unchanged; their actions,
// template filters/globals and autocomplete providers are served to the Rust
// scaffolder over the protocol of docs/action-bridge.md.
//
// Env:
//   ACTION_BRIDGE_TOKEN    shared token the engine sends (required)
//   ACTION_BRIDGE_PORT     listen port (default 7008)
//   ACTION_BRIDGE_HOST     listen address (default 127.0.0.1)
//   ACTION_BRIDGE_MODULES  comma-separated module specifiers to load instead
//                          of modules.js (package names, or paths)
//   ACTION_BRIDGE_EXTRA_MODULES  comma-separated modules loaded besides them
//   ACTION_BRIDGE_BODY_LIMIT     largest run request in bytes (default 1 GiB,
//                          the engine's default limits.workspace_bytes)

const path = require('node:path');

process.chdir(__dirname);

const token = process.env.ACTION_BRIDGE_TOKEN;
if (!token || token.length < 8) {
  console.error('action-bridge: ACTION_BRIDGE_TOKEN must be set (8 characters or more)');
  process.exit(2);
}
const port = process.env.ACTION_BRIDGE_PORT || '7008';
if (!/^\d+$/.test(port)) {
  console.error(`action-bridge: ACTION_BRIDGE_PORT must be a number (got ${port})`);
  process.exit(2);
}
process.env.APP_CONFIG_backend_listen_port = port;
process.env.APP_CONFIG_backend_listen_host = process.env.ACTION_BRIDGE_HOST || '127.0.0.1';
process.env.APP_CONFIG_backend_baseUrl = `http://localhost:${port}`;

// Backstage's auth service keeps its signing keys in a database by default;
// the bridge has none, so it signs with a key pair made for this process.
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'action-bridge-keys-'));
const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
fs.writeFileSync(path.join(keyDir, 'public.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
fs.writeFileSync(path.join(keyDir, 'private.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
process.on('exit', () => fs.rmSync(keyDir, { recursive: true, force: true }));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
process.env.APP_CONFIG_backend_auth_pluginKeyStore = JSON.stringify({
  type: 'static',
  static: {
    keys: [
      {
        publicKeyFile: path.join(keyDir, 'public.pem'),
        privateKeyFile: path.join(keyDir, 'private.pem'),
        keyId: 'action-bridge',
        algorithm: 'ES256',
      },
    ],
  },
});

const { createBackend } = require('@backstage/backend-defaults');
const { bridgePlugin } = require('./src/plugin');

function specifiers(value) {
  return (value || '')
    .split(',')
    .map(s => s.trim())
    .filter(Boolean);
}

function load(specifier) {
  // Paths resolve against the caller's directory; package names against ours.
  const resolved =
    specifier.startsWith('.') || path.isAbsolute(specifier)
      ? path.resolve(process.env.INIT_CWD || process.cwd(), specifier)
      : specifier;
  const mod = require(resolved);
  return mod.default ?? mod;
}

const modules = process.env.ACTION_BRIDGE_MODULES
  ? specifiers(process.env.ACTION_BRIDGE_MODULES)
  : require('./modules');
modules.push(...specifiers(process.env.ACTION_BRIDGE_EXTRA_MODULES));

const backend = createBackend();
backend.add(bridgePlugin({ token, bodyLimit: Number(process.env.ACTION_BRIDGE_BODY_LIMIT || 1073741824), modules }));
for (const specifier of modules) {
  backend.add(load(specifier));
}

backend.start().then(
  () => console.log(`action-bridge: started pid=${process.pid} port=${port} modules=${modules.length}`),
  err => {
    console.error('action-bridge: failed to start', err);
    process.exit(1);
  },
);
