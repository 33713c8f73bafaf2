// Contract check: the emulator behind Prism (README.md "Prism recipe").
// Correct requests must pass through unchanged, and every emulator answer must conform to the
// spec (with --errors Prism turns a response violation into a 500 and logs "Violation").
// Skipped when tests/contract/node_modules is not installed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../../..');
const PRISM = path.join(ROOT, 'tests/contract/node_modules/.bin/prism');
const GRAPH_SPEC = path.join(ROOT, 'tests/contract/specs/graph-remediation-subset.yaml');
const TOKEN_SPEC = path.resolve(ROOT, 'tests/contract/specs/entra-token-subset.yaml');
const skip = !fs.existsSync(PRISM) || !fs.existsSync(TOKEN_SPEC) ? 'prism or shared specs not installed' : false;

const children = [];
let emu; let graphBase; let loginBase; let prismLog = '';

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function startPrism(spec, upstream, port) {
  const child = spawn(PRISM, ['proxy', '--errors', spec, upstream, '-h', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('prism did not start')), 30000);
    const onData = (d) => {
      prismLog += d;
      if (/Prism is listening/.test(prismLog.slice(-4000))) { clearTimeout(t); resolve(); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d) => { prismLog += d; });
    child.once('exit', (c) => reject(new Error(`prism exited ${c}: ${prismLog}`)));
  });
  child.stdout.on('data', (d) => { prismLog += d; });
  return `http://127.0.0.1:${port}`;
}

before(async () => {
  if (skip) return;
  const child = spawn(process.execPath, [path.join(HERE, 'server.js'), '--port', '0', '--ip-rps', '1000'], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const line = await new Promise((r) => createInterface({ input: child.stdout }).once('line', r));
  const port = Number(/^listening on (\d+)$/.exec(line)[1]);
  emu = `http://127.0.0.1:${port}`;
  const [gp, lp] = [await freePort(), await freePort()];
  [graphBase, loginBase] = await Promise.all([
    startPrism(GRAPH_SPEC, `${emu}/v1.0`, gp),
    startPrism(TOKEN_SPEC, emu, lp),
  ]);
  // nextLink and client-assertion aud must name the Prism ports, not the emulator's
  await ctl('PUT', '/config', { graph_base_url: graphBase, login_base_url: loginBase });
});

after(async () => {
  for (const c of children) {
    if (c.exitCode === null) await new Promise((r) => { c.once('exit', r); c.kill('SIGTERM'); });
  }
});

async function req(method, url, { body, headers = {}, form } = {}) {
  const h = { ...headers };
  let payload;
  if (form) { payload = new URLSearchParams(form).toString(); h['content-type'] = 'application/x-www-form-urlencoded'; }
  else if (body !== undefined) { payload = JSON.stringify(body); h['content-type'] = 'application/json'; }
  const res = await fetch(url, { method, headers: h, body: payload });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
}
const ctl = (m, p, body) => req(m, `${emu}/_emulator${p}`, { body });

test('token endpoint through Prism: secret and client assertion; AADSTS errors conform', { skip }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graph-contract-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${tmp}/k.pem`, '-out', `${tmp}/c.pem`, '-days', '1', '-subj', '/CN=quell'], { stdio: 'ignore' });
    const certPem = fs.readFileSync(`${tmp}/c.pem`, 'utf8');
    const key = crypto.createPrivateKey(fs.readFileSync(`${tmp}/k.pem`));
    await ctl('POST', '/apps', { tenant: 'contoso', client_id: 'app-1', secret: 's3cret', cert_pem: certPem });
    const scope = 'https://graph.microsoft.com/.default';
    let r = await req('POST', `${loginBase}/contoso/oauth2/v2.0/token`, { form: { grant_type: 'client_credentials', client_id: 'app-1', client_secret: 's3cret', scope } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    r = await req('POST', `${loginBase}/contoso/oauth2/v2.0/token`, { form: { grant_type: 'client_credentials', client_id: 'app-1', client_secret: 'bad', scope } });
    assert.equal(r.status, 401, JSON.stringify(r.json));
    assert.deepEqual(r.json.error_codes, [7000215]);
    const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const x5t = crypto.createHash('sha256').update(new crypto.X509Certificate(certPem).raw).digest('base64url');
    const input = `${enc({ alg: 'RS256', typ: 'JWT', 'x5t#S256': x5t })}.${enc({ aud: `${loginBase}/contoso/oauth2/v2.0/token`, iss: 'app-1', sub: 'app-1', jti: crypto.randomUUID(), nbf: now, exp: now + 300 })}`;
    const assertion = `${input}.${crypto.sign('sha256', Buffer.from(input), key).toString('base64url')}`;
    r = await req('POST', `${loginBase}/contoso/oauth2/v2.0/token`, { form: { grant_type: 'client_credentials', client_id: 'app-1', scope, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    // Prism itself refuses a request that breaks the contract
    r = await req('POST', `${loginBase}/contoso/oauth2/v2.0/token`, { form: { grant_type: 'client_credentials', client_id: 'app-1', client_secret: 's3cret', scope: 'User.Read' } });
    assert.equal(r.status, 422);
  } finally { fs.rmSync(tmp, { recursive: true, force: true }); }
});

test('Graph calls through Prism: every answer conforms', { skip }, async () => {
  await ctl('POST', '/users', { tenant: 'contoso', users: [
    { id: 'u-1', userPrincipalName: 'a@contoso.com', displayName: 'A' },
    { id: 'u-2', userPrincipalName: 'b@contoso.com', privileged: true },
    { id: 'u-3', userPrincipalName: 'c@contoso.com' },
    { id: 'u-4', userPrincipalName: 'd@contoso.com', onPremisesSyncEnabled: true },
  ] });
  const t = await req('POST', `${loginBase}/contoso/oauth2/v2.0/token`, { form: { grant_type: 'client_credentials', client_id: 'app-1', client_secret: 's3cret', scope: 'https://graph.microsoft.com/.default' } });
  const h = { authorization: `Bearer ${t.json.access_token}`, 'client-request-id': 'contract-1' };
  const calls = [
    ['GET', '/users?$select=id,userPrincipalName,accountEnabled&$top=2', undefined, 200],
    ['GET', '/users', undefined, 200],
    ['GET', '/users/u-1?$select=id,accountEnabled,signInSessionsValidFromDateTime', undefined, 200],
    ['GET', '/users/a@contoso.com', undefined, 200],
    ['GET', '/users/nope', undefined, 404],
    ['PATCH', '/users/u-1', { accountEnabled: false }, 204],
    ['PATCH', '/users/u-2', { accountEnabled: false }, 403],
    ['PATCH', '/users/u-4', { displayName: 'mastered on-premises' }, 400],
    ['PATCH', '/users/u-4', { accountEnabled: false }, 204],
    ['PATCH', '/users/nope', { accountEnabled: false }, 404],
    ['POST', '/users/u-1/revokeSignInSessions', undefined, 200],
    ['POST', '/users/u-2/revokeSignInSessions', undefined, 403],
    ['POST', '/identityProtection/riskyUsers/confirmCompromised', { userIds: ['u-1', 'u-3'] }, 204],
    ['POST', '/identityProtection/riskyUsers/dismiss', { userIds: ['u-1'] }, 204],
    ['GET', '/identityProtection/riskyUsers/u-3', undefined, 200],
    ['GET', '/identityProtection/riskyUsers/u-2', undefined, 404],
  ];
  for (const [m, p, body, want] of calls) {
    const r = await req(m, graphBase + p, { headers: h, body });
    assert.equal(r.status, want, `${m} ${p}: ${JSON.stringify(r.json)}`);
    assert.equal(r.headers.get('client-request-id'), 'contract-1');
  }
  // paging through Prism: nextLink names Prism
  const first = await req('GET', `${graphBase}/users?$top=2`, { headers: h });
  assert.ok(first.json['@odata.nextLink'].startsWith(`${graphBase}/users?`));
  const second = await req('GET', first.json['@odata.nextLink'], { headers: h });
  assert.equal(second.status, 200);
  assert.equal(first.json.value.length + second.json.value.length, 4);
  // injected faults and throttling conform too
  await ctl('POST', '/faults', { path_regex: '/users/u-3', status: 503, retry_after: 1, count: 1 });
  assert.equal((await req('GET', `${graphBase}/users/u-3`, { headers: h })).status, 503);
  await ctl('PUT', '/config', { ip_rps: 1 });
  await new Promise((r) => setTimeout(r, 1100));
  await req('GET', `${graphBase}/identityProtection/riskyUsers/u-3`, { headers: h });
  assert.equal((await req('GET', `${graphBase}/identityProtection/riskyUsers/u-3`, { headers: h })).status, 429);
  // Prism refuses what breaks the contract before it reaches the emulator
  assert.equal((await req('GET', `${graphBase}/users?$top=1000`, { headers: h })).status, 422);
  assert.equal((await req('PATCH', `${graphBase}/users/u-1`, { headers: h, body: { accountEnabled: 'no' } })).status, 422);
  await new Promise((r) => setTimeout(r, 200));
  assert.doesNotMatch(prismLog, /Violation/, prismLog.split('\n').filter((l) => /Violation/.test(l)).join('\n'));
});
