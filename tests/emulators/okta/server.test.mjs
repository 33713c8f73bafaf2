// node --test tests/emulators/okta/
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { createEmulator } = require('./server.js');
const here = path.dirname(fileURLToPath(import.meta.url));

let emu, port, base;
const TOKEN = 'ssws-test-token';

before(async () => {
  emu = createEmulator();
  port = await emu.listen(0, '127.0.0.1');
  base = `http://127.0.0.1:${port}`;
});
after(async () => { await emu.close(); });
beforeEach(async () => {
  await ctl('POST', '/_emulator/reset');
  await ctl('POST', '/_emulator/tokens', { token: TOKEN });
});

// A plain http client (fresh connection each call) so that concurrency tests
// and dropped sockets are visible as such.
function request(method, p, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const h = Object.assign({}, headers);
    if (data !== undefined) {
      h['Content-Length'] = Buffer.byteLength(data);
      if (!h['Content-Type']) h['Content-Type'] = 'application/json';
    }
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}
const ctl = async (method, p, body) => {
  const r = await request(method, p, { body });
  assert.ok(r.status < 300, `${method} ${p} -> ${r.status} ${r.text}`);
  return r.json;
};
const api = (method, p, opts = {}) => request(method, p, { ...opts, headers: { Authorization: `SSWS ${TOKEN}`, Accept: 'application/json', ...(opts.headers || {}) } });
// Polls until pred() returns something truthy; the bound only keeps a broken emulator
// from hanging the run (nothing is asserted about how long it took).
async function waitFor(pred, what = 'condition', bound = 30000) {
  const end = Date.now() + bound;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 10));
  }
}
const seed = async (users) => (await ctl('POST', '/_emulator/users', { users })).ids;
const state = (id) => ctl('GET', `/_emulator/users/${id}`);

function assertOktaError(r, status, code, summary) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json.errorCode, code);
  assert.equal(r.json.errorLink, code);
  assert.match(r.json.errorId, /^oae/);
  assert.ok(Array.isArray(r.json.errorCauses));
  if (summary) assert.equal(r.json.errorSummary, summary);
  assert.ok(r.headers['x-okta-request-id']);
}

// ------------------------------------------------------------- OAuth JWT --
const b64u = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
function signJwt(header, payload, key) {
  const input = b64u(header) + '.' + b64u(payload);
  const alg = header.alg;
  const hash = { RS256: 'sha256', ES256: 'sha256' }[alg];
  const sig = crypto.sign(hash, Buffer.from(input), alg.startsWith('ES') ? { key, dsaEncoding: 'ieee-p1363' } : key);
  return input + '.' + sig.toString('base64url');
}
function assertion(clientId, key, { alg = 'RS256', kid = 'k1', aud, exp, iat, jti } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return signJwt({ alg, kid, typ: 'JWT' }, {
    iss: clientId, sub: clientId, aud: aud ?? `${base}/oauth2/v1/token`,
    iat: iat ?? now, exp: exp ?? now + 300, jti: jti ?? crypto.randomUUID(),
  }, key);
}
const tokenReq = (form) => request('POST', '/oauth2/v1/token', {
  headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
  body: new URLSearchParams(form).toString(),
});
const form = (a, scope = 'okta.users.manage okta.userRisk.manage') => ({
  grant_type: 'client_credentials', scope,
  client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: a,
});

const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });

async function registerApps() {
  await ctl('POST', '/_emulator/apps', { client_id: '0oarsa', jwk: { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256' },
    scopes: ['okta.users.read', 'okta.users.manage', 'okta.userRisk.manage'] });
  await ctl('POST', '/_emulator/apps', { client_id: '0oaec', public_pem: ec.publicKey.export({ type: 'spki', format: 'pem' }),
    scopes: ['okta.users.read'], token_lifetime_s: 2 });
}

test('SSWS: valid token works, missing/invalid token -> 401 E0000011', async () => {
  await seed([{ login: 'a@example.com' }]);
  assert.equal((await api('GET', '/api/v1/users')).status, 200);
  const none = await request('GET', '/api/v1/users');
  assertOktaError(none, 401, 'E0000011', 'Invalid token provided');
  assert.ok(none.headers['www-authenticate']);
  assertOktaError(await request('GET', '/api/v1/users', { headers: { Authorization: 'SSWS nope' } }), 401, 'E0000011');
});

test('private_key_jwt: RS256 and ES256 assertions get a Bearer token that works', async () => {
  await registerApps();
  const [id] = await seed([{ login: 'a@example.com' }]);
  const r = await tokenReq(form(assertion('0oarsa', rsa.privateKey)));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.token_type, 'Bearer');
  assert.equal(r.json.expires_in, 3600);
  assert.equal(r.json.scope, 'okta.users.manage okta.userRisk.manage');
  assert.ok(r.json.access_token);
  assert.ok(r.headers['x-rate-limit-limit']);
  const bearer = { headers: { Authorization: `Bearer ${r.json.access_token}` } };
  assert.equal((await request('POST', `/api/v1/users/${id}/lifecycle/suspend`, bearer)).status, 200);
  assert.equal((await state(id)).status, 'SUSPENDED');

  const e = await tokenReq(form(assertion('0oaec', ec.privateKey, { alg: 'ES256', kid: undefined }), 'okta.users.read'));
  assert.equal(e.status, 200, e.text);
  assert.equal(e.json.expires_in, 2);
  const eb = { headers: { Authorization: `Bearer ${e.json.access_token}` } };
  assert.equal((await request('GET', `/api/v1/users/${id}`, eb)).status, 200);
  // read-only token on a manage operation -> 403 E0000006 insufficient_scope
  const f = await request('POST', `/api/v1/users/${id}/lifecycle/unsuspend`, eb);
  assertOktaError(f, 403, 'E0000006');
  assert.match(f.headers['www-authenticate'], /insufficient_scope/);
});

test('private_key_jwt: bad signature, aud, exp, lifetime > 1 h, reused jti, ungranted scope are refused', async () => {
  await registerApps();
  const cases = [
    [assertion('0oarsa', other.privateKey), 401, 'invalid_client', /signature is invalid/],
    [assertion('0oarsa', rsa.privateKey, { aud: 'https://example.okta.com/oauth2/v1/token' }), 401, 'invalid_client', /audience/],
    [assertion('0oarsa', rsa.privateKey, { iat: Math.floor(Date.now() / 1000) - 600, exp: Math.floor(Date.now() / 1000) - 10 }), 401, 'invalid_client', /expired/],
    [assertion('0oarsa', rsa.privateKey, { exp: Math.floor(Date.now() / 1000) + 7200 }), 401, 'invalid_client', /too far/],
    [assertion('0oarsa', rsa.privateKey, { kid: 'other' }), 401, 'invalid_client', /kid is invalid/],
    [assertion('0oanobody', rsa.privateKey), 401, 'invalid_client', /client_id/],
  ];
  for (const [a, status, error, desc] of cases) {
    const r = await tokenReq(form(a));
    assert.equal(r.status, status, r.text);
    assert.equal(r.json.error, error);
    assert.match(r.json.error_description, desc);
  }
  const once = assertion('0oarsa', rsa.privateKey, { jti: 'same' });
  assert.equal((await tokenReq(form(once))).status, 200);
  const again = await tokenReq(form(assertion('0oarsa', rsa.privateKey, { jti: 'same' })));
  assert.equal(again.status, 401);
  assert.match(again.json.error_description, /already been used/);
  const sc = await tokenReq(form(assertion('0oarsa', rsa.privateKey), 'okta.groups.manage'));
  assert.equal(sc.status, 400);
  assert.equal(sc.json.error, 'invalid_scope');
  const none = await tokenReq(form(assertion('0oarsa', rsa.privateKey), ''));
  assert.equal(none.json.error_description, 'No scopes were requested.');
  const noCreds = await tokenReq({ grant_type: 'client_credentials', scope: 'okta.users.read' });
  assert.equal(noCreds.status, 401);
  assert.equal(noCreds.json.error_description, 'No client credentials found');
});

test('expired access tokens -> 401 E0000011 with WWW-Authenticate', async () => {
  await registerApps();
  const [id] = await seed([{ login: 'a@example.com' }]);
  const r = await tokenReq(form(assertion('0oarsa', rsa.privateKey)));
  const bearer = { headers: { Authorization: `Bearer ${r.json.access_token}` } };
  assert.equal((await request('GET', `/api/v1/users/${id}`, bearer)).status, 200);
  await ctl('POST', '/_emulator/tokens/expire');
  const x = await request('GET', `/api/v1/users/${id}`, bearer);
  assertOktaError(x, 401, 'E0000011', 'Invalid token provided');
  assert.match(x.headers['www-authenticate'], /^Bearer .*error="invalid_token"/);
});

test('public_url: links and the expected client_assertion aud follow the configured org URL', async () => {
  await registerApps();
  const [id] = await seed([{ login: 'a@example.com' }]);
  await ctl('PUT', '/_emulator/config', { public_url: 'http://127.0.0.1:4999' });
  const g = await api('GET', `/api/v1/users/${id}`);
  assert.equal(g.json._links.self.href, `http://127.0.0.1:4999/api/v1/users/${id}`);
  assert.equal((await tokenReq(form(assertion('0oarsa', rsa.privateKey)))).status, 401);
  const ok = await tokenReq(form(assertion('0oarsa', rsa.privateKey, { aud: 'http://127.0.0.1:4999/oauth2/v1/token' })));
  assert.equal(ok.status, 200, ok.text);
  await ctl('PUT', '/_emulator/config', { public_url: null });
  const fw = await api('GET', `/api/v1/users/${id}`, { headers: { 'X-Forwarded-Host': 'okta.example.test', 'X-Forwarded-Proto': 'https' } });
  assert.equal(fw.json._links.self.href, `https://okta.example.test/api/v1/users/${id}`);
});

test('get user by id and by login; unknown -> 404 E0000007', async () => {
  const [id] = await seed([{ login: 'isaac.brock@example.com', firstName: 'Isaac', lastName: 'Brock' }]);
  const a = await api('GET', `/api/v1/users/${id}`);
  assert.equal(a.status, 200);
  for (const k of ['id', 'status', 'created', 'activated', 'statusChanged', 'lastLogin', 'lastUpdated', 'passwordChanged', 'type', 'profile', 'credentials', '_links']) {
    assert.ok(k in a.json, k);
  }
  assert.equal(a.json._links.suspend.href, `${base}/api/v1/users/${id}/lifecycle/suspend`);
  const b = await api('GET', `/api/v1/users/${encodeURIComponent('isaac.brock@example.com')}`);
  assert.equal(b.json.id, id);
  assert.equal((await api('GET', '/api/v1/users/isaac.brock')).json.id, id);
  assertOktaError(await api('GET', '/api/v1/users/00unosuchuser0000000'), 404, 'E0000007',
    'Not found: Resource not found: 00unosuchuser0000000 (User)');
});

test('lifecycle: every transition, and the impossible ones with Okta\'s errors', async () => {
  const [u] = await seed([{ login: 'u@example.com' }]);
  const post = (op, q = '') => api('POST', `/api/v1/users/${u}/lifecycle/${op}${q}`);
  // ACTIVE -> SUSPENDED -> ACTIVE
  let r = await post('suspend');
  assert.equal(r.status, 200);
  assert.equal((await state(u)).status, 'SUSPENDED');
  r = await post('suspend');
  assertOktaError(r, 400, 'E0000001', 'Api validation failed: suspendUser');
  assert.deepEqual(r.json.errorCauses, [{ errorSummary: 'Cannot suspend a user that is not active' }]);
  assert.equal((await post('unsuspend')).status, 200);
  assert.equal((await state(u)).status, 'ACTIVE');
  assertOktaError(await post('unsuspend'), 400, 'E0000001', 'Api validation failed: unsuspendUser');
  // expire password: returns the user
  r = await post('expire_password');
  assert.equal(r.status, 200);
  assert.equal(r.json.status, 'PASSWORD_EXPIRED');
  assert.equal((await state(u)).status, 'PASSWORD_EXPIRED');
  assertOktaError(await post('suspend'), 400, 'E0000001');
  // deactivate -> DEPROVISIONED; again -> 403 E0000038
  assert.equal((await post('deactivate', '?sendEmail=false')).status, 200);
  assert.equal((await state(u)).status, 'DEPROVISIONED');
  assertOktaError(await post('deactivate', '?sendEmail=false'), 403, 'E0000038');
  assertOktaError(await post('expire_password'), 403, 'E0000038');
  assertOktaError(await post('unsuspend'), 400, 'E0000001');
  // activate (has password) -> ACTIVE; again -> E0000016
  r = await post('activate', '?sendEmail=false');
  assert.equal(r.status, 200);
  assert.ok(r.json.activationToken);
  assert.equal((await state(u)).status, 'ACTIVE');
  assertOktaError(await post('activate'), 403, 'E0000016');
  assertOktaError(await post('reactivate'), 403, 'E0000038');
  assertOktaError(await api('POST', '/api/v1/users/00unosuchuser0000000/lifecycle/suspend'), 404, 'E0000007');
  // STAGED without password -> activate -> PROVISIONED -> reactivate
  const [s] = await seed([{ login: 's@example.com', status: 'STAGED', has_password: false }]);
  assertOktaError(await api('POST', `/api/v1/users/${s}/lifecycle/suspend`), 400, 'E0000001');
  assert.equal((await api('POST', `/api/v1/users/${s}/lifecycle/activate?sendEmail=false`)).status, 200);
  assert.equal((await state(s)).status, 'PROVISIONED');
  assert.equal((await api('POST', `/api/v1/users/${s}/lifecycle/reactivate?sendEmail=false`)).status, 200);
  const hist = (await state(u)).history.map((h) => h.to);
  assert.deepEqual(hist, ['SUSPENDED', 'ACTIVE', 'PASSWORD_EXPIRED', 'DEPROVISIONED', 'ACTIVE']);
});

test('deactivate with Prefer: respond-async transitions in the background', async () => {
  const [u] = await seed([{ login: 'u@example.com' }]);
  await ctl('PUT', '/_emulator/config', { async_deactivate_ms: 500 }); // long enough to see it in transition
  const r = await api('POST', `/api/v1/users/${u}/lifecycle/deactivate`, { headers: { Prefer: 'respond-async' } });
  assert.equal(r.status, 200);
  const g = await api('GET', `/api/v1/users/${u}`);
  assert.equal(g.json.transitioningToStatus, 'DEPROVISIONED');
  assert.equal(g.json.status, 'ACTIVE');
  // the transition's own end: the status changes once, in the background
  const done = await waitFor(async () => { const st = await state(u); return st.status !== 'ACTIVE' && st; });
  assert.equal(done.status, 'DEPROVISIONED');
  assert.equal(done.transitioningToStatus, null);
  assert.deepEqual(done.history.map((h) => [h.op, h.to]), [['deactivate(async)', 'DEPROVISIONED']]);
});

test('admin-protected users answer 403 E0000006 on writes', async () => {
  const [u] = await seed([{ login: 'admin@example.com', admin_protected: true }]);
  for (const [m, p] of [['POST', 'lifecycle/suspend'], ['POST', 'lifecycle/deactivate'], ['DELETE', 'sessions?oauthTokens=true']]) {
    assertOktaError(await api(m, `/api/v1/users/${u}/${p}`), 403, 'E0000006', 'You do not have permission to perform the requested action');
  }
  assertOktaError(await api('PUT', `/api/v1/users/${u}/risk`, { body: { riskLevel: 'HIGH' } }), 403, 'E0000006');
  assert.equal((await state(u)).status, 'ACTIVE');
  assert.equal((await api('GET', `/api/v1/users/${u}`)).status, 200);
});

test('sessions: DELETE ?oauthTokens=true -> 204, recorded', async () => {
  const [u] = await seed([{ login: 'u@example.com' }]);
  const t = Date.now();
  const r = await api('DELETE', `/api/v1/users/${u}/sessions?oauthTokens=true`);
  assert.equal(r.status, 204);
  assert.equal(r.text, '');
  const st = await state(u);
  assert.equal(st.oauth_tokens_revoked, true);
  assert.ok(Date.parse(st.sessions_cleared_at) >= t - 5);
  await api('DELETE', `/api/v1/users/${u}/sessions`);
  assert.equal((await state(u)).oauth_tokens_revoked, false);
  assertOktaError(await api('DELETE', '/api/v1/users/00unosuchuser0000000/sessions'), 404, 'E0000007');
});

test('risk: PUT/GET with scoring on; validation; scoring off -> E0000015', async () => {
  const [u] = await seed([{ login: 'u@example.com' }]);
  let r = await api('GET', `/api/v1/users/${u}/risk`);
  assert.equal(r.status, 200);
  assert.equal(r.json.riskLevel, 'NONE');
  r = await api('PUT', `/api/v1/users/${u}/risk`, { body: { riskLevel: 'HIGH' } });
  assert.equal(r.status, 201);
  assert.deepEqual([r.json.riskLevel, r.json.reason], ['HIGH', 'override.by.admin']);
  assert.equal(r.json._links.self.href, `${base}/api/v1/users/${u}/risk`);
  r = await api('PUT', `/api/v1/users/${u}/risk`, { body: { riskLevel: 'MEDIUM', riskReason: 'Elevated risk, seen by quell.' } });
  assert.equal(r.status, 200);
  assert.equal(r.json.reason, 'Elevated risk, seen by quell.');
  assert.equal((await state(u)).riskLevel, 'MEDIUM');
  assertOktaError(await api('PUT', `/api/v1/users/${u}/risk`, { body: { riskLevel: 'EXTREME' } }), 400, 'E0000001');
  assertOktaError(await api('PUT', `/api/v1/users/${u}/risk`, { body: { riskLevel: 'LOW', riskReason: 'bad <script>' } }), 400, 'E0000001');
  assertOktaError(await api('PUT', `/api/v1/users/${u}/risk`, { body: '{nope' }), 400, 'E0000003');
  await ctl('PUT', '/_emulator/config', { risk_scoring: false });
  assertOktaError(await api('PUT', `/api/v1/users/${u}/risk`, { body: { riskLevel: 'HIGH' } }), 403, 'E0000015',
    'You do not have permission to access the feature you are requesting');
  assertOktaError(await api('GET', `/api/v1/users/${u}/risk`), 403, 'E0000015');
  await ctl('PUT', '/_emulator/config', { risk_disabled_status: 401 });
  assertOktaError(await api('PUT', `/api/v1/users/${u}/risk`, { body: { riskLevel: 'HIGH' } }), 401, 'E0000015');
  assert.equal((await state(u)).riskLevel, 'MEDIUM');
});

test('list: Link paging visits every user exactly once; DEPROVISIONED only with filter', async () => {
  const users = [];
  for (let i = 0; i < 1234; i++) users.push({ login: `user${i}@example.com`, status: i % 100 === 0 ? 'DEPROVISIONED' : 'ACTIVE' });
  await seed(users);
  const seen = new Set();
  let next = '/api/v1/users?limit=200';
  let pages = 0;
  while (next && pages < 50) {
    const r = await api('GET', next);
    assert.equal(r.status, 200);
    pages++;
    for (const u of r.json) { assert.ok(!seen.has(u.id)); seen.add(u.id); assert.notEqual(u.status, 'DEPROVISIONED'); }
    assert.match(r.headers.link, /rel="self"/);
    const m = /<([^>]+)>; rel="next"/.exec(r.headers.link);
    next = m ? m[1].replace(base, '') : null;
    if (m) assert.ok(m[1].startsWith(`${base}/api/v1/users?`));
  }
  assert.equal(seen.size, 1234 - 13);
  assert.equal(pages, Math.ceil((1234 - 13) / 200));
  // limit above 200 is capped
  assert.equal((await api('GET', '/api/v1/users?limit=1000')).json.length, 200);
  const d = await api('GET', `/api/v1/users?filter=${encodeURIComponent('status eq "DEPROVISIONED"')}`);
  assert.equal(d.json.length, 13);
  assertOktaError(await api('GET', `/api/v1/users?filter=${encodeURIComponent('status ne "ACTIVE"')}`), 400, 'E0000031');
});

test('list: filter lastUpdated gt for incremental sync', async () => {
  const [a, b] = await seed([
    { login: 'old@example.com', lastUpdated: '2020-01-01T00:00:00.000Z' },
    { login: 'new@example.com', lastUpdated: '2030-01-01T00:00:00.000Z' },
  ]);
  const f = encodeURIComponent('lastUpdated gt "2025-01-01T00:00:00.000Z"');
  let r = await api('GET', `/api/v1/users?filter=${f}`);
  assert.deepEqual(r.json.map((u) => u.id), [b]);
  await api('POST', `/api/v1/users/${a}/lifecycle/suspend`); // touches lastUpdated (now > 2025)
  r = await api('GET', `/api/v1/users?filter=${f}`);
  assert.deepEqual(r.json.map((u) => u.id).sort(), [a, b].sort());
  const f2 = encodeURIComponent('lastUpdated gt "2025-01-01T00:00:00.000Z" and status eq "SUSPENDED"');
  assert.deepEqual((await api('GET', `/api/v1/users?filter=${f2}`)).json.map((u) => u.id), [a]);
});

test('rate limits: X-Rate-Limit-* on every answer, 429 E0000047 past the limit, per bucket', async () => {
  await ctl('PUT', '/_emulator/config', { rate_limit: 5, rate_window_s: 60, token_rate_limit: 2 });
  const [u] = await seed([{ login: 'u@example.com' }]);
  for (let i = 0; i < 5; i++) {
    const r = await api('GET', `/api/v1/users/${u}`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-rate-limit-limit'], '5');
    assert.equal(r.headers['x-rate-limit-remaining'], String(4 - i));
    const reset = Number(r.headers['x-rate-limit-reset']);
    assert.ok(reset > Date.now() / 1000 && reset <= Date.now() / 1000 + 61);
  }
  const r = await api('GET', `/api/v1/users/${u}`);
  assertOktaError(r, 429, 'E0000047', 'API call exceeded rate limit due to too many requests.');
  assert.equal(r.headers['x-rate-limit-remaining'], '0');
  // token bucket is separate
  const t = await tokenReq({ grant_type: 'client_credentials' });
  assert.equal(t.status, 401);
  assert.equal(t.headers['x-rate-limit-limit'], '2');
  assert.ok((await ctl('GET', '/_emulator/stats')).rate_limited >= 1);
  // window rolls over
  await ctl('PUT', '/_emulator/config', { rate_limit: 1, rate_window_s: 1 });
  assert.equal((await api('GET', `/api/v1/users/${u}`)).status, 200);
  assert.equal((await api('GET', `/api/v1/users/${u}`)).status, 429);
  await new Promise((res) => setTimeout(res, 1100));
  assert.equal((await api('GET', `/api/v1/users/${u}`)).status, 200);
});

test('concurrency limit: in-flight requests beyond max -> 429 E0000047 with concurrent values', async () => {
  const [u] = await seed([{ login: 'u@example.com' }]);
  await ctl('PUT', '/_emulator/config', { max_concurrency: 3, latency_ms: 300 });
  const rs = await Promise.all(Array.from({ length: 6 }, () => api('GET', `/api/v1/users/${u}`)));
  const ok = rs.filter((r) => r.status === 200);
  const lim = rs.filter((r) => r.status === 429);
  assert.equal(ok.length, 3);
  assert.equal(lim.length, 3);
  for (const r of lim) {
    assert.equal(r.json.errorCode, 'E0000047');
    assert.equal(r.headers['x-rate-limit-limit'], '3');
    assert.equal(r.headers['x-rate-limit-remaining'], '0');
  }
  const st = await ctl('GET', '/_emulator/stats');
  assert.ok(st.max_concurrent >= 4);
  assert.equal(st.concurrency_limited, 3);
});

test('faults: 500, slow, dropped; count respected; stats record routes', async () => {
  const [u] = await seed([{ login: 'u@example.com' }]);
  await ctl('POST', '/_emulator/faults', { path_regex: '/lifecycle/suspend$', method: 'POST', status: 500, count: 2 });
  for (let i = 0; i < 2; i++) assertOktaError(await api('POST', `/api/v1/users/${u}/lifecycle/suspend`), 500, 'E0000009');
  assert.equal((await state(u)).status, 'ACTIVE');
  assert.equal((await api('POST', `/api/v1/users/${u}/lifecycle/suspend`)).status, 200);

  await ctl('POST', '/_emulator/faults', { path_regex: '^/api/v1/users/', delay_ms: 300, count: 1 });
  const t = Date.now();
  assert.equal((await api('GET', `/api/v1/users/${u}`)).status, 200);
  assert.ok(Date.now() - t >= 290);

  await ctl('POST', '/_emulator/faults', { path_regex: '/sessions$', drop: true, count: 1 });
  await assert.rejects(api('DELETE', `/api/v1/users/${u}/sessions?oauthTokens=true`), /socket hang up|ECONNRESET/);
  assert.equal((await state(u)).sessions_cleared_at, null);
  assert.equal((await api('DELETE', `/api/v1/users/${u}/sessions?oauthTokens=true`)).status, 204);

  const st = await ctl('GET', '/_emulator/stats');
  assert.equal(st.routes['POST /api/v1/users/{id}/lifecycle/suspend'].count, 3);
  assert.equal(st.routes['POST /api/v1/users/{id}/lifecycle/suspend'].statuses['500'], 2);
  assert.ok(st.recent.length > 0);
});

test('faults: a body cut mid-transfer, truncated, or under another content type', async () => {
  const [u] = await seed([{ login: 'u@example.com' }]);
  const full = (await api('GET', `/api/v1/users/${u}`)).text;
  await ctl('POST', '/_emulator/faults', { path_regex: '^/api/v1/users/', method: 'GET', cut_at: 10 });
  const cut = await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: `/api/v1/users/${u}`, agent: false,
      headers: { Authorization: `SSWS ${TOKEN}` } }, (res) => {
      let got = 0;
      res.on('data', (c) => { got += c.length; });
      res.on('error', () => {});
      res.on('close', () => resolve({ complete: res.complete, got, length: Number(res.headers['content-length']) }));
    }).on('error', reject);
  });
  assert.deepEqual(cut, { complete: false, got: 10, length: Buffer.byteLength(full) });
  await ctl('POST', '/_emulator/faults', { path_regex: '^/api/v1/users/', method: 'GET', truncate_at: 10 });
  const short = await api('GET', `/api/v1/users/${u}`);
  assert.equal(short.status, 200);
  assert.equal(short.text, full.slice(0, 10));
  assert.equal(short.headers['content-length'], '10');
  await ctl('POST', '/_emulator/faults', { path_regex: '^/api/v1/users/', method: 'GET', content_type: 'text/html' });
  const html = await api('GET', `/api/v1/users/${u}`);
  assert.equal(html.headers['content-type'], 'text/html');
  assert.equal(html.text, full);
  assert.equal((await api('GET', `/api/v1/users/${u}`)).headers['content-type'], 'application/json');
});

test('bulk seed: 100 000 users in one call, paged to the end', async (tc) => {
  const users = Array.from({ length: 100000 }, (_, i) => ({ login: `bulk${i}@example.com`, firstName: 'B', lastName: String(i) }));
  const t = Date.now();
  const r = await ctl('POST', '/_emulator/users', { users });
  tc.diagnostic(`seeding 100000 users took ${Date.now() - t} ms`); // printed, not asserted
  assert.equal(r.created, 100000);
  assert.equal(r.ids.length, 100000);
  const last = await api('GET', `/api/v1/users?limit=200&after=${r.ids[99899]}`);
  assert.equal(last.json.length, 100);
  assert.ok(!/rel="next"/.test(last.headers.link));
});

test('CLI: prints exactly "listening on <port>" and exits cleanly on SIGTERM', async () => {
  const child = spawn(process.execPath, [path.join(here, 'server.js'), '--port', '0', '--rate-limit', '10'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const port2 = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no banner')), 5000);
    child.stdout.on('data', (c) => {
      out += c;
      const m = /^listening on (\d+)\n$/.exec(out);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
  });
  assert.ok(port2 > 0);
  const code = await new Promise((resolve) => { child.on('exit', (c) => resolve(c)); child.kill('SIGTERM'); });
  assert.equal(code, 0);
  assert.equal(out, `listening on ${port2}\n`);
});
