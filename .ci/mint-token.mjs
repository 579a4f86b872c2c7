// A stand-in for Backstage's auth backend, for running the compat suite with
// auth on: makes an ES256 key pair, serves its JWKS at
// http://127.0.0.1:<port>/api/auth/.well-known/jwks.json and prints one
// Backstage-style user token on stdout, then serves until killed.
//
//   node .ci/mint-token.mjs [--port 7078] [--sub user:default/compat] [--ttl 3600]
import { generateKeyPairSync, sign } from 'node:crypto';
import { createServer } from 'node:http';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const port = Number(opt('port', '7078'));
const sub = opt('sub', 'user:default/compat');
const ttl = Number(opt('ttl', '3600'));

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const kid = `compat-${Date.now()}`;
const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' };

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const now = Math.floor(Date.now() / 1000);
const header = { alg: 'ES256', kid, typ: 'vnd.backstage.user' };
const claims = {
  iss: `http://127.0.0.1:${port}/api/auth`, aud: 'backstage', sub,
  ent: [sub], iat: now, exp: now + ttl,
};
const input = `${b64url(header)}.${b64url(claims)}`;
const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
const token = `${input}.${signature.toString('base64url')}`;

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/api/auth/.well-known/jwks.json') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [jwk] }));
  } else {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":{"name":"NotFoundError","message":"not found"}}');
  }
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`${token}\n`));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
