// The SCIM emulator's own tests (node --test): what quell's e2e tests rely on it for.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { start } = require('./server.js');

let srv, base;
const TOKEN = 'node-test-token';

async function ctl(method, path, body) {
  const r = await fetch(`${base}/_emulator${path}`, {
    method, headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: r.status === 204 ? null : await r.json() };
}

async function scim(method, path, body, token = TOKEN) {
  const r = await fetch(`${base}/scim/v2${path}`, {
    method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/scim+json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, headers: r.headers, body: text ? JSON.parse(text) : null };
}

before(async () => {
  srv = await start(0);
  base = `http://127.0.0.1:${srv.port}`;
  await ctl('POST', '/tokens', { token: TOKEN });
  const users = Array.from({ length: 12 }, (_, i) => ({
    userName: `u${i}@scim.test`, emails: [{ value: `u${i}@mail.test`, primary: true }] }));
  await ctl('POST', '/users', { users });
});

after(() => new Promise((resolve) => srv.server.close(resolve)));

test('a request without a valid bearer token gets a SCIM 401', async () => {
  const r = await scim('GET', '/Users', undefined, 'wrong');
  assert.equal(r.status, 401);
  assert.deepEqual(r.body.schemas, ['urn:ietf:params:scim:api:messages:2.0:Error']);
});

test('max_count caps the page size, startIndex pages on', async () => {
  await ctl('PUT', '/config', { max_count: 5 });
  try {
    const p1 = await scim('GET', '/Users?startIndex=1&count=100');
    const p3 = await scim('GET', '/Users?startIndex=11&count=100');
    assert.equal(p1.body.totalResults, 12);
    assert.equal(p1.body.Resources.length, 5);
    assert.equal(p3.body.Resources.length, 2);
    assert.equal(p3.body.Resources[1].userName, 'u11@scim.test');
  } finally {
    await ctl('PUT', '/config', { max_count: 0 });
  }
});

test('meta.lastModified filters, and filtering can be switched off', async () => {
  const all = (await scim('GET', '/Users?count=100')).body.Resources;
  const mid = all[5].meta.lastModified;
  const f = encodeURIComponent(`meta.lastModified gt "${mid}"`);
  const r = await scim('GET', `/Users?count=100&filter=${f}`);
  assert.deepEqual(r.body.Resources.map((u) => u.userName), all.slice(6).map((u) => u.userName));
  await ctl('PUT', '/config', { filter: false });
  try {
    const spc = await scim('GET', '/ServiceProviderConfig');
    assert.equal(spc.body.filter.supported, false);
    assert.equal((await scim('GET', `/Users?filter=${f}`)).status, 400);
  } finally {
    await ctl('PUT', '/config', { filter: true });
  }
});

test('PATCH needs a valid PatchOp, changes active and moves lastModified', async () => {
  const u = (await scim('GET', '/Users?count=1')).body.Resources[0];
  const bad = await scim('PATCH', `/Users/${u.id}`, { Operations: [{ op: 'replace', path: 'active', value: false }] });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.scimType, 'invalidSyntax');
  const ok = await scim('PATCH', `/Users/${u.id}`, {
    schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
    Operations: [{ op: 'replace', path: 'active', value: false }] });
  assert.equal(ok.status, 200);
  assert.equal(ok.body.active, false);
  assert.ok(ok.body.meta.lastModified > u.meta.lastModified);
  assert.equal((await ctl('GET', `/users/${u.id}`)).body.active, false);
});

test('PATCH can be switched off: 501 with a SCIM error; PUT still works', async () => {
  const u = (await scim('GET', '/Users?count=2')).body.Resources[1];
  await ctl('PUT', '/config', { patch: false });
  try {
    const r = await scim('PATCH', `/Users/${u.id}`, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [{ op: 'replace', path: 'active', value: false }] });
    assert.equal(r.status, 501);
    const { meta, ...rest } = u;
    const put = await scim('PUT', `/Users/${u.id}`, { ...rest, active: false });
    assert.equal(put.status, 200);
    assert.equal(put.body.active, false);
    assert.ok(meta.created);
  } finally {
    await ctl('PUT', '/config', { patch: true });
  }
});

test('an injected fault answers once with its SCIM error and Retry-After', async () => {
  await ctl('POST', '/faults', { method: 'DELETE', route: 'DELETE /Users/{id}', status: 503,
    detail: 'maintenance', retry_after: 2 });
  const u = (await scim('GET', '/Users?count=1')).body.Resources[0];
  const r = await scim('DELETE', `/Users/${u.id}`);
  assert.equal(r.status, 503);
  assert.equal(r.headers.get('retry-after'), '2');
  assert.equal(r.body.detail, 'maintenance');
  assert.equal((await scim('DELETE', `/Users/${u.id}`)).status, 204);
  assert.equal((await scim('DELETE', `/Users/${u.id}`)).status, 404);
});

test('a mangling fault cuts, shortens or retypes SCIMMY\'s own answer once', async () => {
  const path = '/Users?count=2';
  const whole = await fetch(`${base}/scim/v2${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const full = await whole.text();
  const get = () => fetch(`${base}/scim/v2${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  await ctl('POST', '/faults', { method: 'GET', route: 'GET /Users', truncate_at: 7 });
  let r = await get();
  assert.equal(r.status, 200);
  assert.equal(await r.text(), full.slice(0, 7));
  await ctl('POST', '/faults', { method: 'GET', route: 'GET /Users', content_type: 'text/plain' });
  r = await get();
  assert.equal(r.headers.get('content-type'), 'text/plain');
  assert.equal(await r.text(), full);
  await ctl('POST', '/faults', { method: 'GET', route: 'GET /Users', cut_at: 7 });
  r = await get();
  assert.equal(Number(r.headers.get('content-length')), Buffer.byteLength(full));
  await assert.rejects(r.text());
  assert.equal(await (await get()).text(), full);
  assert.equal((await ctl('POST', '/faults', { route: 'GET /Users', cut_at: -3 })).status, 400);
  assert.equal((await ctl('POST', '/faults', { route: 'GET /Users' })).status, 400);
  await ctl('POST', '/faults', { route: 'GET /Users', truncate_at: 1, times: 5 });
  assert.equal((await ctl('DELETE', '/faults')).status, 204);
  assert.equal(await (await get()).text(), full);
});

test('the token endpoint issues tokens for client credentials (Basic or form)', async () => {
  await ctl('POST', '/clients', { client_id: 'app', secret: 's3cr=t' });
  const basic = Buffer.from(`app:${encodeURIComponent('s3cr=t')}`).toString('base64');
  let r = await fetch(`${base}/oauth/token`, { method: 'POST',
    headers: { Authorization: `Basic ${basic}`, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials' });
  const tok = await r.json();
  assert.equal(r.status, 200);
  assert.equal(tok.token_type, 'Bearer');
  assert.equal((await scim('GET', '/Users?count=1', undefined, tok.access_token)).status, 200);
  r = await fetch(`${base}/oauth/token`, { method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials&client_id=app&client_secret=wrong' });
  assert.equal(r.status, 401);
  assert.equal((await r.json()).error, 'invalid_client');
});

test('stats count requests by route', async () => {
  const s = (await ctl('GET', '/stats')).body;
  assert.ok(s.routes['GET /Users'] >= 3);
  assert.ok(s.routes['PATCH /Users/{id}'] >= 2);
});
