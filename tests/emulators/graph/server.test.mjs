// node --test tests/emulators/graph/
// Starts the emulator as a real process on port 0 and talks HTTP to it.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { request as httpRequest } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER = path.join(HERE, 'server.js');
const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

const procs = new Set();

async function startEmulator(args = []) {
  const child = spawn(process.execPath, [SERVER, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  procs.add(child);
  const rl = createInterface({ input: child.stdout });
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('emulator did not start')), 10000);
    rl.once('line', (line) => {
      clearTimeout(t);
      const m = /^listening on (\d+)$/.exec(line);
      if (m) resolve(Number(m[1])); else reject(new Error(`unexpected first line: ${line}`));
    });
    child.once('exit', (code) => reject(new Error(`emulator exited ${code}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  return { child, port, base, stop: () => stopEmulator(child) };
}

function stopEmulator(child) {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    child.once('exit', (code) => { procs.delete(child); resolve(code); });
    child.kill('SIGTERM');
  });
}

after(async () => { for (const c of procs) await stopEmulator(c); });

async function http(base, method, p, { body, headers = {}, form } = {}) {
  const h = { ...headers };
  let payload;
  if (form) { payload = new URLSearchParams(form).toString(); h['content-type'] = 'application/x-www-form-urlencoded'; }
  else if (body !== undefined) { payload = typeof body === 'string' ? body : JSON.stringify(body); h['content-type'] ??= 'application/json'; }
  const res = await fetch(p.startsWith('http') ? p : base + p, { method, headers: h, body: payload });
  const text = await res.text();
  let json;
  try { json = text ? JSON.parse(text) : undefined; } catch { json = text; }
  return { status: res.status, headers: res.headers, json };
}

const ctl = (base, method, p, body) => http(base, method, `/_emulator${p}`, { body });

// A GET to 127.0.0.1 naming another Host: fetch may not set Host, and resolving a name
// instead depends on the resolver (Node 18 tries ::1 first, where nothing listens).
function getWithHost(port, p, host, headers) {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: p, headers: { ...headers, host } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function token(base, tenant, form) {
  return http(base, 'POST', `/${tenant}/oauth2/v2.0/token`, { form: { grant_type: 'client_credentials', scope: GRAPH_SCOPE, ...form } });
}

async function secretToken(base, tenant = 'contoso', clientId = 'app-1', secret = 's3cret') {
  const r = await token(base, tenant, { client_id: clientId, client_secret: secret });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.access_token;
}

// ---- certificates and client assertions --------------------------------------------------

function makeCert(dir, name) {
  const key = path.join(dir, `${name}.key`);
  const crt = path.join(dir, `${name}.crt`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt,
    '-days', '2', '-subj', `/CN=${name}`], { stdio: 'ignore' });
  const certPem = fs.readFileSync(crt, 'utf8');
  const der = new crypto.X509Certificate(certPem).raw;
  return {
    certPem,
    key: crypto.createPrivateKey(fs.readFileSync(key)),
    x5tS256: crypto.createHash('sha256').update(der).digest('base64url'),
    x5t: crypto.createHash('sha1').update(der).digest('base64url'),
  };
}

function signAssertion({ key, header, claims, alg = 'RS256' }) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${enc({ alg, typ: 'JWT', ...header })}.${enc(claims)}`;
  const sig = alg === 'PS256'
    ? crypto.sign('sha256', Buffer.from(input), { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
    : crypto.sign('sha256', Buffer.from(input), key);
  return `${input}.${sig.toString('base64url')}`;
}

function claimsFor(base, tenant, clientId, over = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { aud: `${base}/${tenant}/oauth2/v2.0/token`, iss: clientId, sub: clientId, jti: crypto.randomUUID(), nbf: now, iat: now, exp: now + 300, ...over };
}

function assertAad(r, status, error, code) {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.equal(r.json.error, error);
  assert.deepEqual(r.json.error_codes, [code]);
  assert.match(r.json.error_description, new RegExp(`^AADSTS${code}: `));
  assert.match(r.json.error_description, /\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\nTimestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
  for (const k of ['timestamp', 'trace_id', 'correlation_id']) assert.equal(typeof r.json[k], 'string');
}

function assertGraphError(r, status, code, message) {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.equal(r.json.error.code, code);
  if (message instanceof RegExp) assert.match(r.json.error.message, message);
  else if (message !== undefined) assert.equal(r.json.error.message, message);
  const inner = r.json.error.innerError;
  assert.match(inner.date, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
  assert.equal(inner['request-id'], r.headers.get('request-id'));
  assert.equal(inner['client-request-id'], r.headers.get('client-request-id'));
}

// ==========================================================================================

describe('token endpoint', () => {
  let emu; let tmp; let cert; let other;
  before(async () => {
    emu = await startEmulator();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graph-emu-'));
    cert = makeCert(tmp, 'quell-app');
    other = makeCert(tmp, 'intruder');
    assert.equal((await ctl(emu.base, 'POST', '/apps', { tenant: 'contoso', client_id: 'app-1', secret: 's3cret' })).status, 201);
    const reg = await ctl(emu.base, 'POST', '/apps', { tenant: 'contoso', client_id: 'app-cert', cert_pem: cert.certPem });
    assert.equal(reg.status, 201);
    assert.equal(reg.json.certificates[0]['x5t#S256'], cert.x5tS256);
  });
  after(async () => { await emu.stop(); fs.rmSync(tmp, { recursive: true, force: true }); });

  test('client secret: success shape', async () => {
    const r = await token(emu.base, 'contoso', { client_id: 'app-1', client_secret: 's3cret' });
    assert.equal(r.status, 200);
    assert.equal(r.json.token_type, 'Bearer');
    assert.equal(r.json.expires_in, 3599);
    assert.equal(r.json.ext_expires_in, 3599);
    assert.equal(r.json.access_token.split('.').length, 3);
    assert.match(r.headers.get('cache-control'), /no-store/);
  });

  test('client secret: AADSTS errors', async () => {
    assertAad(await token(emu.base, 'contoso', { client_id: 'app-1', client_secret: 'wrong' }), 401, 'invalid_client', 7000215);
    assertAad(await token(emu.base, 'contoso', { client_id: 'nobody', client_secret: 'x' }), 400, 'unauthorized_client', 700016);
    assertAad(await token(emu.base, 'fabrikam', { client_id: 'app-1', client_secret: 's3cret' }), 400, 'invalid_request', 90002);
    assertAad(await token(emu.base, 'contoso', { client_id: 'app-1' }), 401, 'invalid_client', 7000218);
    assertAad(await token(emu.base, 'contoso', { client_id: 'app-1', client_secret: 's3cret', scope: 'User.Read' }), 400, 'invalid_scope', 1002012);
    const r = await http(emu.base, 'POST', '/contoso/oauth2/v2.0/token', { form: { client_id: 'app-1', client_secret: 's3cret', scope: GRAPH_SCOPE } });
    assertAad(r, 400, 'invalid_request', 900144);
    assert.match(r.json.error_description, /'grant_type'/);
    assertAad(await token(emu.base, 'contoso', { grant_type: 'password', client_id: 'app-1' }), 400, 'unsupported_grant_type', 70003);
  });

  test('client assertion: x5t#S256 + RS256, and x5t (SHA-1) + PS256', async () => {
    const a1 = signAssertion({ key: cert.key, header: { 'x5t#S256': cert.x5tS256 }, claims: claimsFor(emu.base, 'contoso', 'app-cert') });
    const r1 = await token(emu.base, 'contoso', { client_id: 'app-cert', client_assertion_type: JWT_BEARER, client_assertion: a1 });
    assert.equal(r1.status, 200, JSON.stringify(r1.json));
    const a2 = signAssertion({ alg: 'PS256', key: cert.key, header: { x5t: cert.x5t }, claims: claimsFor(emu.base, 'contoso', 'app-cert') });
    const r2 = await token(emu.base, 'contoso', { client_id: 'app-cert', client_assertion_type: JWT_BEARER, client_assertion: a2 });
    assert.equal(r2.status, 200, JSON.stringify(r2.json));
  });

  test('client assertion: refusals', async () => {
    const send = (assertion) => token(emu.base, 'contoso', { client_id: 'app-cert', client_assertion_type: JWT_BEARER, client_assertion: assertion });
    const good = (over) => claimsFor(emu.base, 'contoso', 'app-cert', over);
    const hdr = { 'x5t#S256': cert.x5tS256 };
    // signed by another key, claiming the registered thumbprint
    let r = await send(signAssertion({ key: other.key, header: hdr, claims: good() }));
    assertAad(r, 401, 'invalid_client', 700027);
    assert.match(r.json.error_description, /did not match the expected signature/);
    // unknown certificate
    r = await send(signAssertion({ key: other.key, header: { 'x5t#S256': other.x5tS256 }, claims: good() }));
    assertAad(r, 401, 'invalid_client', 700027);
    assert.match(r.json.error_description, /The key was not found/);
    // tampered payload
    const [h, , s] = signAssertion({ key: cert.key, header: hdr, claims: good() }).split('.');
    const forged = Buffer.from(JSON.stringify(good({ iss: 'app-cert', exp: Math.floor(Date.now() / 1000) + 9999 }))).toString('base64url');
    assertAad(await send(`${h}.${forged}.${s}`), 401, 'invalid_client', 700027);
    // wrong audience
    assertAad(await send(signAssertion({ key: cert.key, header: hdr, claims: good({ aud: 'https://login.microsoftonline.com/other/oauth2/v2.0/token' }) })), 401, 'invalid_client', 700023);
    // expired, and not yet valid
    const now = Math.floor(Date.now() / 1000);
    r = await send(signAssertion({ key: cert.key, header: hdr, claims: good({ nbf: now - 900, exp: now - 60 }) }));
    assertAad(r, 401, 'invalid_client', 700024);
    assert.match(r.json.error_description, /not within its valid time range/);
    assertAad(await send(signAssertion({ key: cert.key, header: hdr, claims: good({ nbf: now + 600, exp: now + 900 }) })), 401, 'invalid_client', 700024);
    // iss/sub not the client
    assertAad(await send(signAssertion({ key: cert.key, header: hdr, claims: good({ iss: 'app-1', sub: 'app-1' }) })), 401, 'invalid_client', 700021);
    assertAad(await send(signAssertion({ key: cert.key, header: hdr, claims: good({ sub: 'someone' }) })), 401, 'invalid_client', 50048);
    // malformed
    assertAad(await send('not-a-jwt'), 400, 'invalid_request', 50027);
  });

  test('client assertion: aud may name the public login base set through config (proxy setups)', async () => {
    await ctl(emu.base, 'PUT', '/config', { login_base_url: 'http://127.0.0.1:4011' });
    const a = signAssertion({ key: cert.key, header: { 'x5t#S256': cert.x5tS256 }, claims: claimsFor('http://127.0.0.1:4011', 'contoso', 'app-cert') });
    const r = await token(emu.base, 'contoso', { client_id: 'app-cert', client_assertion_type: JWT_BEARER, client_assertion: a });
    assert.equal(r.status, 200, JSON.stringify(r.json));
  });
});

describe('graph', () => {
  let emu; let tok;
  const auth = () => ({ authorization: `Bearer ${tok}` });
  before(async () => {
    emu = await startEmulator(['--ip-rps', '1000']);
    await ctl(emu.base, 'POST', '/apps', { tenant: 'contoso', client_id: 'app-1', secret: 's3cret' });
    const r = await ctl(emu.base, 'POST', '/users', {
      tenant: 'contoso',
      users: [
        { id: '11111111-1111-1111-1111-111111111111', userPrincipalName: 'adele@contoso.com', displayName: 'Adele', mail: 'adele@contoso.com', onPremisesSecurityIdentifier: 'S-1-5-21-1-2-3-1001' },
        { id: '22222222-2222-2222-2222-222222222222', userPrincipalName: 'admin@contoso.com', displayName: 'Admin', privileged: true },
        { id: '33333333-3333-3333-3333-333333333333', userPrincipalName: 'synced@contoso.com', displayName: 'Synced', onPremisesSyncEnabled: true },
        { userPrincipalName: 'noname@contoso.com' },
      ],
    });
    assert.equal(r.status, 201);
    assert.equal(r.json.ids.length, 4);
    tok = await secretToken(emu.base);
  });
  after(() => emu.stop());

  test('401 InvalidAuthenticationToken for missing and malformed tokens', async () => {
    let r = await http(emu.base, 'GET', '/v1.0/users');
    assertGraphError(r, 401, 'InvalidAuthenticationToken', 'Access token is empty.');
    assert.ok(r.headers.get('www-authenticate'));
    r = await http(emu.base, 'GET', '/v1.0/users', { headers: { authorization: 'Bearer opaque' } });
    assertGraphError(r, 401, 'InvalidAuthenticationToken', /^IDX14100: JWT is not well formed/);
    const [h, p] = tok.split('.');
    r = await http(emu.base, 'GET', '/v1.0/users', { headers: { authorization: `Bearer ${h}.${p}.AAAA` } });
    assertGraphError(r, 401, 'InvalidAuthenticationToken');
  });

  test('request-id on every response; client-request-id echoed', async () => {
    const r = await http(emu.base, 'GET', '/v1.0/users/11111111-1111-1111-1111-111111111111', { headers: { ...auth(), 'client-request-id': 'quell-step-42' } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('request-id'), /^[0-9a-f-]{36}$/);
    assert.equal(r.headers.get('client-request-id'), 'quell-step-42');
    const e = await http(emu.base, 'GET', '/v1.0/users/nobody', { headers: { ...auth(), 'client-request-id': 'c-2' } });
    assert.equal(e.json.error.innerError['client-request-id'], 'c-2');
  });

  test('GET user: default properties, $select, by userPrincipalName, 404', async () => {
    let r = await http(emu.base, 'GET', '/v1.0/users/11111111-1111-1111-1111-111111111111', { headers: auth() });
    assert.equal(r.json.displayName, 'Adele');
    assert.equal('accountEnabled' in r.json, false, 'accountEnabled is not a default property');
    assert.match(r.json['@odata.context'], /\$metadata#users\/\$entity$/);
    r = await http(emu.base, 'GET', '/v1.0/users/ADELE@contoso.com?$select=id,accountEnabled,onPremisesSecurityIdentifier', { headers: auth() });
    assert.deepEqual(Object.keys(r.json).filter((k) => !k.startsWith('@')), ['id', 'accountEnabled', 'onPremisesSecurityIdentifier']);
    assert.equal(r.json.accountEnabled, true);
    assert.equal(r.json.onPremisesSecurityIdentifier, 'S-1-5-21-1-2-3-1001');
    r = await http(emu.base, 'GET', '/v1.0/users/68be84bf-a585-4776-80b3-30aa5207aa22', { headers: auth() });
    assertGraphError(r, 404, 'Request_ResourceNotFound',
      "Resource '68be84bf-a585-4776-80b3-30aa5207aa22' does not exist or one of its queried reference-property objects are not present.");
    r = await http(emu.base, 'GET', '/v1.0/users/11111111-1111-1111-1111-111111111111?$select=bogus', { headers: auth() });
    assertGraphError(r, 400, 'BadRequest', /bogus/);
  });

  test('PATCH accountEnabled: 204, state, idempotent, errors', async () => {
    const id = '11111111-1111-1111-1111-111111111111';
    let r = await http(emu.base, 'PATCH', `/v1.0/users/${id}`, { headers: auth(), body: { accountEnabled: false } });
    assert.equal(r.status, 204);
    assert.equal((await ctl(emu.base, 'GET', `/users/${id}`)).json.accountEnabled, false);
    r = await http(emu.base, 'PATCH', `/v1.0/users/${id}`, { headers: auth(), body: { accountEnabled: false } });
    assert.equal(r.status, 204, 'already disabled is still 204');
    r = await http(emu.base, 'PATCH', `/v1.0/users/${id}`, { headers: auth(), body: { accountEnabled: 'no' } });
    assertGraphError(r, 400, 'BadRequest', /Edm\.Boolean/);
    r = await http(emu.base, 'PATCH', `/v1.0/users/${id}`, { headers: auth(), body: { accountEnabled: null } });
    assertGraphError(r, 400, 'Request_BadRequest', "Invalid value specified for property 'accountEnabled' of resource 'User'.");
    r = await http(emu.base, 'PATCH', `/v1.0/users/${id}`, { headers: auth(), body: '{"accountEnabled":' });
    assertGraphError(r, 400, 'BadRequest', /^Unable to read JSON request payload/);
    r = await http(emu.base, 'PATCH', '/v1.0/users/nope', { headers: auth(), body: { accountEnabled: false } });
    assertGraphError(r, 404, 'Request_ResourceNotFound', /^Resource 'nope' does not exist/);
    r = await http(emu.base, 'PATCH', '/v1.0/users/33333333-3333-3333-3333-333333333333', { headers: auth(), body: { displayName: 'x' } });
    assertGraphError(r, 400, 'Request_BadRequest', /on-premises mastered Directory Sync objects/);
    r = await http(emu.base, 'PATCH', '/v1.0/users/33333333-3333-3333-3333-333333333333', { headers: auth(), body: { accountEnabled: false } });
    assert.equal(r.status, 204, 'sign-in of a synced user can be blocked in the cloud');
    r = await http(emu.base, 'PATCH', `/v1.0/users/${id}`, { headers: auth(), body: { accountEnabled: true } });
    assert.equal(r.status, 204);
    assert.equal((await ctl(emu.base, 'GET', `/users/${id}`)).json.accountEnabled, true);
  });

  test('privileged targets: 403 Authorization_RequestDenied for disable and revoke', async () => {
    const id = '22222222-2222-2222-2222-222222222222';
    let r = await http(emu.base, 'PATCH', `/v1.0/users/${id}`, { headers: auth(), body: { accountEnabled: false } });
    assertGraphError(r, 403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    r = await http(emu.base, 'POST', `/v1.0/users/${id}/revokeSignInSessions`, { headers: auth() });
    assertGraphError(r, 403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    const v = (await ctl(emu.base, 'GET', `/users/${id}`)).json;
    assert.equal(v.accountEnabled, true);
    assert.equal(v.privileged, true);
    assert.equal(v.signInSessionsValidFromDateTime, null);
  });

  test('revokeSignInSessions: 200 Edm.Boolean true, records signInSessionsValidFromDateTime', async () => {
    const id = '33333333-3333-3333-3333-333333333333'; // synced users can still have sessions revoked
    const r = await http(emu.base, 'POST', `/v1.0/users/${id}/revokeSignInSessions`, { headers: auth() });
    assert.equal(r.status, 200);
    assert.equal(r.json.value, true);
    assert.match(r.json['@odata.context'], /\$metadata#Edm\.Boolean$/);
    const v = (await ctl(emu.base, 'GET', `/users/${id}`)).json;
    assert.match(v.signInSessionsValidFromDateTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(v.revocations, 1);
  });

  test('riskyUsers: confirmCompromised, dismiss, get, limits', async () => {
    const a = '11111111-1111-1111-1111-111111111111';
    const s = '33333333-3333-3333-3333-333333333333';
    let r = await http(emu.base, 'GET', `/v1.0/identityProtection/riskyUsers/${a}`, { headers: auth() });
    assert.equal(r.status, 404, 'never-risky users are not riskyUsers');
    r = await http(emu.base, 'POST', '/v1.0/identityProtection/riskyUsers/confirmCompromised', { headers: auth(), body: { userIds: [a, s] } });
    assert.equal(r.status, 204);
    r = await http(emu.base, 'GET', `/v1.0/identityProtection/riskyUsers/${a}`, { headers: auth() });
    assert.equal(r.status, 200);
    assert.equal(r.json.riskState, 'confirmedCompromised');
    assert.equal(r.json.riskLevel, 'high');
    assert.equal(r.json.riskDetail, 'adminConfirmedUserCompromised');
    r = await http(emu.base, 'POST', '/v1.0/identityProtection/riskyUsers/dismiss', { headers: auth(), body: { userIds: [s] } });
    assert.equal(r.status, 204);
    const v = (await ctl(emu.base, 'GET', `/users/${s}`)).json;
    assert.equal(v.riskState, 'dismissed');
    assert.equal(v.riskLevel, 'none');
    const ids = Array.from({ length: 61 }, () => crypto.randomUUID());
    r = await http(emu.base, 'POST', '/v1.0/identityProtection/riskyUsers/confirmCompromised', { headers: auth(), body: { userIds: ids } });
    assertGraphError(r, 400, 'BadRequest', /maximum count of users in one call is 60/);
    r = await http(emu.base, 'POST', '/v1.0/identityProtection/riskyUsers/confirmCompromised', { headers: auth(), body: { userIds: ids.slice(0, 60) } });
    assert.equal(r.status, 204);
    r = await http(emu.base, 'POST', '/v1.0/identityProtection/riskyUsers/confirmCompromised', { headers: auth(), body: {} });
    assertGraphError(r, 400, 'BadRequest');
  });

  test('unknown segments and methods', async () => {
    let r = await http(emu.base, 'GET', '/v1.0/groups', { headers: auth() });
    assertGraphError(r, 400, 'BadRequest', "Resource not found for the segment 'groups'.");
    r = await http(emu.base, 'DELETE', '/v1.0/users/11111111-1111-1111-1111-111111111111', { headers: auth() });
    assert.equal(r.status, 405);
  });
});

describe('paging and bulk seeding', () => {
  let emu;
  before(async () => {
    emu = await startEmulator();
    await ctl(emu.base, 'POST', '/apps', { tenant: 'contoso', client_id: 'app-1', secret: 's3cret' });
  });
  after(() => emu.stop());

  test('100 000 users seed in one call; $top=999 paging visits every user exactly once', async (t) => {
    const N = 100000;
    const users = Array.from({ length: N }, (_, i) => ({ userPrincipalName: `u${i}@contoso.com`, displayName: `User ${i}`, accountEnabled: i % 7 !== 0 }));
    const t0 = Date.now();
    const r = await ctl(emu.base, 'POST', '/users', { tenant: 'contoso', users });
    t.diagnostic(`seeding ${N} users took ${Date.now() - t0} ms`); // printed, not asserted
    assert.equal(r.status, 201);
    assert.equal(r.json.created, N);
    const tok = await secretToken(emu.base);
    const seen = new Set();
    let url = `${emu.base}/v1.0/users?$select=id,userPrincipalName,accountEnabled&$top=999`;
    let pages = 0;
    while (url) {
      assert.ok(pages++ < 200, 'runaway paging');
      const p = await http(emu.base, 'GET', url, { headers: { authorization: `Bearer ${tok}` } });
      assert.equal(p.status, 200);
      assert.ok(p.json.value.length <= 999);
      for (const u of p.json.value) {
        assert.deepEqual(Object.keys(u), ['id', 'userPrincipalName', 'accountEnabled']);
        assert.ok(!seen.has(u.id), `user ${u.id} seen twice`);
        seen.add(u.id);
      }
      url = p.json['@odata.nextLink'];
      if (url) assert.match(url, new RegExp(`^${emu.base.replace(/[.]/g, '\\.')}/v1\\.0/users\\?.*\\$skiptoken=`));
    }
    assert.equal(seen.size, N);
    assert.equal(pages, Math.ceil(N / 999));
  });

  test('$top outside 1..999 is refused with Graph\'s message; default page is 100', async () => {
    const tok = await secretToken(emu.base);
    for (const top of ['0', '1000', 'abc']) {
      const r = await http(emu.base, 'GET', `/v1.0/users?$top=${top}`, { headers: { authorization: `Bearer ${tok}` } });
      assertGraphError(r, 400, 'Request_UnsupportedQuery', `Invalid page size specified: '${top}'. Must be between 1 and 999 inclusive.`);
    }
    const r = await http(emu.base, 'GET', '/v1.0/users', { headers: { authorization: `Bearer ${tok}` } });
    assert.equal(r.json.value.length, 100);
    assert.ok(r.json['@odata.nextLink']);
  });

  test('nextLink follows the request Host, or graph_base_url when set', async () => {
    const tok = await secretToken(emu.base);
    let r = await getWithHost(emu.port, '/v1.0/users?$top=5', `quell-e2e.test:${emu.port}`, { authorization: `Bearer ${tok}` });
    assert.equal(r.status, 200);
    assert.ok(r.json['@odata.nextLink'].startsWith(`http://quell-e2e.test:${emu.port}/v1.0/users?`));
    await ctl(emu.base, 'PUT', '/config', { graph_base_url: 'http://127.0.0.1:4010' });
    r = await http(emu.base, 'GET', '/v1.0/users?$top=5', { headers: { authorization: `Bearer ${tok}` } });
    assert.ok(r.json['@odata.nextLink'].startsWith('http://127.0.0.1:4010/users?'));
    await ctl(emu.base, 'PUT', '/config', { graph_base_url: null });
  });
});

describe('throttling, faults, token expiry, stats', () => {
  let emu;
  before(async () => {
    emu = await startEmulator(['--write-budget', '3', '--write-window-s', '2', '--ip-rps', '1']);
    await ctl(emu.base, 'POST', '/apps', { tenant: 'contoso', client_id: 'app-1', secret: 's3cret' });
    await ctl(emu.base, 'POST', '/users', { tenant: 'contoso', users: Array.from({ length: 130 }, (_, i) => ({ id: `user-${i}`, userPrincipalName: `u${i}@contoso.com` })) });
  });
  after(() => emu.stop());

  test('write budget: 429 TooManyRequests with Retry-After, then recovers', async () => {
    const tok = await secretToken(emu.base);
    const patch = () => http(emu.base, 'PATCH', '/v1.0/users/user-1', { headers: { authorization: `Bearer ${tok}` }, body: { accountEnabled: false } });
    for (let i = 0; i < 3; i++) assert.equal((await patch()).status, 204);
    const r = await patch();
    assertGraphError(r, 429, 'TooManyRequests', 'Please retry again later.');
    const ra = Number(r.headers.get('retry-after'));
    assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 2, `Retry-After ${ra}`);
    assert.equal(r.headers.get('x-ms-throttle-information'), 'WriteLimitExceeded');
    // reads are not writes
    assert.equal((await http(emu.base, 'GET', '/v1.0/users/user-1', { headers: { authorization: `Bearer ${tok}` } })).status, 200);
    await new Promise((res) => setTimeout(res, ra * 1000 + 50));
    assert.equal((await patch()).status, 204);
  });

  test('Identity Protection: 1 request/s per tenant, 429 without Retry-After', async () => {
    const tok = await secretToken(emu.base);
    await new Promise((res) => setTimeout(res, 1100));
    const call = (ids) => http(emu.base, 'POST', '/v1.0/identityProtection/riskyUsers/confirmCompromised',
      { headers: { authorization: `Bearer ${tok}`, 'client-request-id': `batch-${ids[0]}` }, body: { userIds: ids } });
    assert.equal((await call(['user-0'])).status, 204);
    const r = await call(['user-1']);
    assertGraphError(r, 429, 'TooManyRequests');
    assert.equal(r.headers.get('retry-after'), null);
    const st = (await ctl(emu.base, 'GET', '/stats')).json;
    assert.ok(st.throttled.identity_protection >= 1);
    assert.ok(st.throttled.write >= 1);
  });

  test('stats: batched confirmCompromised calls are countable', async () => {
    await ctl(emu.base, 'DELETE', '/stats');
    const tok = await secretToken(emu.base);
    await ctl(emu.base, 'PUT', '/config', { ip_rps: 1000 });
    const ids = Array.from({ length: 130 }, (_, i) => `user-${i}`);
    for (let i = 0; i < ids.length; i += 60) {
      const r = await http(emu.base, 'POST', '/v1.0/identityProtection/riskyUsers/confirmCompromised',
        { headers: { authorization: `Bearer ${tok}`, 'client-request-id': `b${i}` }, body: { userIds: ids.slice(i, i + 60) } });
      assert.equal(r.status, 204);
    }
    const st = (await ctl(emu.base, 'GET', '/stats?last=10')).json;
    assert.equal(st.requests['POST /v1.0/identityProtection/riskyUsers/confirmCompromised'], Math.ceil(130 / 60));
    const recent = st.recent.filter((x) => x.template === '/v1.0/identityProtection/riskyUsers/confirmCompromised');
    assert.deepEqual(recent.map((x) => x.client_request_id), ['b0', 'b60', 'b120']);
    assert.deepEqual(recent.map((x) => x.user_ids.length), [60, 60, 10]);
    assert.equal(st.token_requests.ok, 1);
    await ctl(emu.base, 'PUT', '/config', { ip_rps: 1 });
  });

  test('fault injection: next n matching calls, with and without Retry-After, delay', async () => {
    const tok = await secretToken(emu.base);
    const h = { authorization: `Bearer ${tok}` };
    let f = await ctl(emu.base, 'POST', '/faults', { path_regex: '^/v1\\.0/users/user-2$', method: 'GET', status: 503, retry_after: 1, count: 2 });
    assert.equal(f.status, 201);
    let r = await http(emu.base, 'GET', '/v1.0/users/user-2', { headers: h });
    assertGraphError(r, 503, 'serviceNotAvailable');
    assert.equal(r.headers.get('retry-after'), '1');
    assert.equal((await http(emu.base, 'GET', '/v1.0/users/user-2', { headers: h })).status, 503);
    assert.equal((await http(emu.base, 'GET', '/v1.0/users/user-2', { headers: h })).status, 200);
    assert.equal((await http(emu.base, 'GET', '/v1.0/users/user-3', { headers: h })).status, 200, 'other paths untouched');
    await ctl(emu.base, 'POST', '/faults', { path_regex: '/users/user-3', status: 429, retry_after: null, count: 1 });
    r = await http(emu.base, 'GET', '/v1.0/users/user-3', { headers: h });
    assertGraphError(r, 429, 'TooManyRequests');
    assert.equal(r.headers.get('retry-after'), null);
    await ctl(emu.base, 'POST', '/faults', { path_regex: '/users/user-4', status: 504, count: 1, delay_ms: 300 });
    const t0 = Date.now();
    r = await http(emu.base, 'GET', '/v1.0/users/user-4', { headers: h });
    assert.equal(r.status, 504);
    assert.ok(Date.now() - t0 >= 280);
    f = await ctl(emu.base, 'GET', '/faults');
    assert.ok(f.json.faults.every((x) => x.remaining === 0));
  });

  test('fault mangling: cut_at drops the transfer, truncate_at shortens, content_type replaces', async () => {
    const tok = await secretToken(emu.base);
    const h = { authorization: `Bearer ${tok}` };
    const whole = await http(emu.base, 'GET', '/v1.0/users/user-6', { headers: h });
    const full = JSON.stringify(whole.json);
    assert.equal((await ctl(emu.base, 'POST', '/faults', { path_regex: '/users/user-6', truncate_at: 10 })).status, 201);
    let r = await http(emu.base, 'GET', '/v1.0/users/user-6', { headers: h });
    assert.equal(r.status, 200);
    assert.equal(r.json, full.slice(0, 10));
    await ctl(emu.base, 'POST', '/faults', { path_regex: '/users/user-6', content_type: 'text/html' });
    r = await http(emu.base, 'GET', '/v1.0/users/user-6', { headers: h });
    assert.equal(r.headers.get('content-type'), 'text/html');
    assert.deepEqual(r.json, whole.json);
    await ctl(emu.base, 'POST', '/faults', { path_regex: '/users/user-6', cut_at: 10 });
    const got = await new Promise((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port: emu.port, path: '/v1.0/users/user-6', headers: h }, (res) => {
        let n = 0;
        res.on('data', (c) => { n += c.length; });
        res.on('end', () => resolve({ n, len: Number(res.headers['content-length']), ended: true }));
        res.on('error', () => resolve({ n, len: Number(res.headers['content-length']), ended: false }));
        res.on('aborted', () => resolve({ n, len: Number(res.headers['content-length']), ended: false }));
      });
      req.on('error', () => resolve({ n: 0, ended: false }));
      req.end();
    });
    assert.deepEqual(got, { n: 10, len: Buffer.byteLength(full), ended: false });
    for (const bad of [{ cut_at: -1 }, { truncate_at: 1.5 }, { cut_at: 1, truncate_at: 2 }, { content_type: 7 }]) {
      assert.equal((await ctl(emu.base, 'POST', '/faults', { path_regex: 'x', ...bad })).status, 400);
    }
  });

  test('token expiry: short lifetime and /_emulator/tokens/expire', async () => {
    await ctl(emu.base, 'PUT', '/tenants/contoso', { token_lifetime_s: 1 });
    const r0 = await token(emu.base, 'contoso', { client_id: 'app-1', client_secret: 's3cret' });
    assert.equal(r0.json.expires_in, 1);
    await new Promise((res) => setTimeout(res, 1100));
    let r = await http(emu.base, 'GET', '/v1.0/users/user-5', { headers: { authorization: `Bearer ${r0.json.access_token}` } });
    assertGraphError(r, 401, 'InvalidAuthenticationToken', 'Lifetime validation failed, the token is expired.');
    await ctl(emu.base, 'PUT', '/tenants/contoso', { token_lifetime_s: null });
    const tok = await secretToken(emu.base);
    assert.equal((await http(emu.base, 'GET', '/v1.0/users/user-5', { headers: { authorization: `Bearer ${tok}` } })).status, 200);
    await ctl(emu.base, 'POST', '/tokens/expire');
    r = await http(emu.base, 'GET', '/v1.0/users/user-5', { headers: { authorization: `Bearer ${tok}` } });
    assertGraphError(r, 401, 'InvalidAuthenticationToken', 'Lifetime validation failed, the token is expired.');
    const fresh = await secretToken(emu.base);
    assert.equal((await http(emu.base, 'GET', '/v1.0/users/user-5', { headers: { authorization: `Bearer ${fresh}` } })).status, 200);
  });

  test('latency injection applies to Graph, not to the control API', async () => {
    const tok = await secretToken(emu.base);
    await ctl(emu.base, 'PUT', '/config', { latency_ms: 200 });
    const t0 = Date.now();
    assert.equal((await http(emu.base, 'GET', '/v1.0/users/user-6', { headers: { authorization: `Bearer ${tok}` } })).status, 200);
    assert.ok(Date.now() - t0 >= 190, 'the Graph call was not held for latency_ms');
    // A Graph call held 10 s is still pending when a control call made after it has
    // been answered: the latency never reaches /_emulator (were it applied there too,
    // the Graph call, first in, would be answered first).
    await ctl(emu.base, 'PUT', '/config', { latency_ms: 10000 });
    const abort = new AbortController();
    let graphDone = false;
    const held = fetch(`${emu.base}/v1.0/users/user-6`, { headers: { authorization: `Bearer ${tok}` }, signal: abort.signal })
      .then(() => { graphDone = true; }, (e) => { if (e.name !== 'AbortError') throw e; });
    const c = await ctl(emu.base, 'GET', '/config');
    assert.equal(c.status, 200);
    assert.equal(c.json.latency_ms, 10000);
    assert.equal(graphDone, false, 'the Graph call was answered before the control call');
    abort.abort();
    await held;
    await ctl(emu.base, 'PUT', '/config', { latency_ms: 0 });
  });

  test('reset clears apps, users and tokens', async () => {
    const tok = await secretToken(emu.base);
    await ctl(emu.base, 'POST', '/reset');
    assert.equal((await ctl(emu.base, 'GET', '/users/user-1')).status, 404);
    assert.equal((await http(emu.base, 'GET', '/v1.0/users/user-1', { headers: { authorization: `Bearer ${tok}` } })).status, 401);
    assertAad(await token(emu.base, 'contoso', { client_id: 'app-1', client_secret: 's3cret' }), 400, 'invalid_request', 90002);
  });
});

test('SIGTERM exits cleanly', async () => {
  const emu = await startEmulator();
  assert.equal(await emu.stop(), 0);
});
