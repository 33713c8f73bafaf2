// Contract check: the emulator behind Prism's validating proxy.
//   node tests/emulators/okta/contract.mjs
// Starts the emulator and two `prism proxy --errors` instances (management
// subset, OAuth spec), sends correct requests through them, and fails if Prism
// answers 422/500 or logs a request/response violation. Exits 0 on success.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const PRISM = process.env.PRISM || path.join(root, 'tests/contract/node_modules/.bin/prism');
const SPECS = process.env.OKTA_SPECS || path.resolve(root, 'tests/contract/specs');
const children = [];
const logs = {};

function start(name, cmd, args, ready) {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(c);
    logs[name] = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start:\n${logs[name]}`)), 60000);
    const on = (d) => {
      logs[name] += d;
      const m = ready.exec(logs[name]);
      if (m) { clearTimeout(timer); resolve(m); }
    };
    c.stdout.on('data', on);
    c.stderr.on('data', on);
    c.on('exit', (code) => reject(new Error(`${name} exited ${code}:\n${logs[name]}`)));
  });
}
function freePort() {
  return new Promise((resolve) => {
    import('node:net').then(({ default: net }) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
    });
  });
}

const failures = [];
async function call(method, url, { headers = {}, body, expect } = {}) {
  const r = await fetch(url, { method, headers, body });
  const text = await r.text();
  const ok = Array.isArray(expect) ? expect.includes(r.status) : r.status === expect;
  if (!ok || /stoplight\.io\/prism\/errors/.test(text)) failures.push(`${method} ${url} -> ${r.status} ${text.slice(0, 400)}`);
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, json, headers: r.headers };
}

try {
  const emuM = await start('emulator', process.execPath, [path.join(here, 'server.js'), '--port', '0'], /listening on (\d+)\n/);
  const emu = `http://127.0.0.1:${emuM[1]}`;
  const pUsers = await freePort();
  const pOauth = await freePort();
  await Promise.all([
    start('prism-users', PRISM, ['proxy', '--errors', path.join(SPECS, 'okta-remediation-subset-with-examples.yaml'), emu, '-h', '127.0.0.1', '-p', String(pUsers)], /Prism is listening/),
    start('prism-oauth', PRISM, ['proxy', '--errors', path.join(here, 'okta-oauth-token-subset.yaml'), emu, '-h', '127.0.0.1', '-p', String(pOauth)], /Prism is listening/),
  ]);
  const U = `http://127.0.0.1:${pUsers}`;
  const O = `http://127.0.0.1:${pOauth}`;
  const ctl = (m, p, b) => fetch(emu + p, { method: m, body: b && JSON.stringify(b) }).then((r) => r.json());

  // The client talks to two proxy ports; the token endpoint's aud must be the
  // URL the client used, so tell the emulator the OAuth proxy is the org URL.
  await ctl('PUT', '/_emulator/config', { public_url: O });
  await ctl('POST', '/_emulator/tokens', { token: 'contract' });
  const { ids } = await ctl('POST', '/_emulator/users', { users: Array.from({ length: 5 }, (_, i) => ({ login: `c${i}@example.com`, firstName: 'C', lastName: String(i) })) });
  const [a, b] = ids;
  const kp = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  await ctl('POST', '/_emulator/apps', { client_id: '0oacontract', jwk: { ...kp.publicKey.export({ format: 'jwk' }), kid: 'k1' }, scopes: ['okta.users.manage', 'okta.users.read', 'okta.userRisk.manage'] });

  // OAuth token through the OAuth proxy.
  const now = Math.floor(Date.now() / 1000);
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = enc({ alg: 'RS256', kid: 'k1' }) + '.' + enc({ iss: '0oacontract', sub: '0oacontract', aud: `${O}/oauth2/v1/token`, iat: now, exp: now + 300, jti: crypto.randomUUID() });
  const assertion = input + '.' + crypto.sign('sha256', Buffer.from(input), kp.privateKey).toString('base64url');
  const tok = await call('POST', `${O}/oauth2/v1/token`, {
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'okta.users.manage okta.userRisk.manage',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion }).toString(),
    expect: 200,
  });
  const bad = await call('POST', `${O}/oauth2/v1/token`, {
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'okta.users.manage',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion }).toString(),
    expect: 401, // jti reused
  });
  void bad;
  await ctl('PUT', '/_emulator/config', { public_url: U });

  const H = { Authorization: 'SSWS contract', Accept: 'application/json' };
  const B = { Authorization: `Bearer ${tok.json && tok.json.access_token}`, Accept: 'application/json' };
  const J = { 'Content-Type': 'application/json' };
  await call('GET', `${U}/api/v1/users?limit=2`, { headers: H, expect: 200 });
  await call('GET', `${U}/api/v1/users?limit=2&filter=${encodeURIComponent('lastUpdated gt "2020-01-01T00:00:00.000Z"')}`, { headers: H, expect: 200 });
  await call('GET', `${U}/api/v1/users/${a}`, { headers: B, expect: 200 });
  await call('GET', `${U}/api/v1/users/c1%40example.com`, { headers: H, expect: 200 });
  await call('POST', `${U}/api/v1/users/${a}/lifecycle/suspend`, { headers: B, expect: 200 });
  await call('POST', `${U}/api/v1/users/${a}/lifecycle/suspend`, { headers: B, expect: 400 });
  await call('POST', `${U}/api/v1/users/${a}/lifecycle/unsuspend`, { headers: H, expect: 200 });
  await call('POST', `${U}/api/v1/users/${a}/lifecycle/unsuspend`, { headers: H, expect: 400 });
  await call('DELETE', `${U}/api/v1/users/${a}/sessions?oauthTokens=true`, { headers: B, expect: 204 });
  await call('GET', `${U}/api/v1/users/${a}/risk`, { headers: H, expect: 200 });
  await call('PUT', `${U}/api/v1/users/${a}/risk`, { headers: { ...B, ...J }, body: JSON.stringify({ riskLevel: 'HIGH' }), expect: 201 });
  await call('PUT', `${U}/api/v1/users/${a}/risk`, { headers: { ...H, ...J }, body: JSON.stringify({ riskLevel: 'MEDIUM', riskReason: 'Seen by quell, case 42.' }), expect: 200 });
  await call('GET', `${U}/api/v1/users/${a}/risk`, { headers: H, expect: 200 });
  await call('POST', `${U}/api/v1/users/${b}/lifecycle/expire_password`, { headers: H, expect: 200 });
  await call('POST', `${U}/api/v1/users/${b}/lifecycle/deactivate?sendEmail=false`, { headers: B, expect: 200 });
  await call('POST', `${U}/api/v1/users/${b}/lifecycle/deactivate?sendEmail=false`, { headers: B, expect: 403 });
  await call('POST', `${U}/api/v1/users/${b}/lifecycle/activate?sendEmail=false`, { headers: H, expect: 200 });
  await call('POST', `${U}/api/v1/users/${ids[2]}/lifecycle/deactivate`, { headers: { ...H, Prefer: 'respond-async' }, expect: 200 });
  await call('GET', `${U}/api/v1/users/00unosuchuser0000000`, { headers: H, expect: 404 });
  await call('POST', `${U}/api/v1/users/00unosuchuser0000000/lifecycle/suspend`, { headers: H, expect: 404 });
  await ctl('PUT', '/_emulator/config', { risk_scoring: false });
  await call('PUT', `${U}/api/v1/users/${a}/risk`, { headers: { ...H, ...J }, body: JSON.stringify({ riskLevel: 'LOW' }), expect: 403 });
  await ctl('PUT', '/_emulator/config', { risk_scoring: true, rate_limit: 1 });
  await call('GET', `${U}/api/v1/users/${a}`, { headers: H, expect: 200 });
  await call('GET', `${U}/api/v1/users/${a}`, { headers: H, expect: 429 });

  // A request that breaks the contract must be refused by Prism with 422.
  const v = await fetch(`${U}/api/v1/users/${a}/risk`, { method: 'PUT', headers: { ...H, ...J }, body: JSON.stringify({ riskLevel: 'EXTREME' }) });
  if (v.status !== 422) failures.push(`Prism did not refuse riskLevel EXTREME (got ${v.status})`);
  await new Promise((r) => setTimeout(r, 300));
  for (const [name, log] of Object.entries(logs)) {
    for (const line of log.split('\n')) {
      if (/Violation|✖/.test(line) && !/EXTREME|UNPROCESSABLE_ENTITY/.test(line)) failures.push(`${name}: ${line}`);
    }
  }
} catch (e) {
  failures.push(String(e && e.stack || e));
} finally {
  for (const c of children) c.kill('SIGTERM');
}
if (failures.length) {
  console.log('CONTRACT FAILURES:\n' + failures.join('\n'));
  process.exit(1);
}
console.log('contract: all requests and answers conform');
