'use strict';
// A SCIM 2.0 service provider for quell's tests: SCIMMY (the RFC 7643/7644 library)
// behind its Express routers at /scim/v2, so that every request quell sends is parsed
// and validated by SCIMMY itself (PatchOp messages, PUT bodies against the User
// schema, filters, paging), and a control API at /_emulator for the tests: seed and
// read users, switch filter and PATCH support, cap page sizes, inject errors, count
// requests, mangle answers (cut_at / truncate_at / content_type, as the Graph and Okta
// emulators do). Also an OAuth 2.0 token endpoint (client credentials) at /oauth/token.
//
//   node server.js --port 0     prints "listening on <port>" once it is up

const crypto = require('crypto');
const path = require('path');
const { createRequire } = require('module');

// The npm packages are pinned in tests/contract (package.json, package-lock.json).
const contract = createRequire(path.join(__dirname, '..', '..', 'contract', 'package.json'));
const express = contract('express');
const SCIMMY = contract('scimmy').default;
const SCIMMYRouters = contract('scimmy-routers').default;
const { parseMangle, sendMangled } = require('../graph/lib/cut');

const BASE = '/scim/v2';
const TOKEN_LIFE_S = 3600;

function scimError(status, scimType, detail) {
  const body = { schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: String(status) };
  if (scimType) body.scimType = scimType;
  if (detail) body.detail = detail;
  return body;
}

// Request routes as the stats count them: ids replaced by {id}.
function routeOf(method, url) {
  const p = url.split('?')[0].replace(/\/+$/, '');
  const rel = p.startsWith(BASE) ? p.slice(BASE.length) : p;
  return `${method} ${rel.replace(/^\/Users\/[^/]+$/, '/Users/{id}')}`;
}

function createState() {
  return {
    users: new Map(),          // id -> user (SCIM attributes, meta included)
    tokens: new Set(),         // bearer tokens accepted
    clients: new Map(),        // client_id -> secret
    faults: [],                // {method, route, status, scimType, detail, retry_after, times}
    maxCount: 0,               // cap on count (0: none)
    patch: true,               // PATCH supported
    requests: [],              // {method, route, query, status}
    issued: 0,                 // OAuth tokens issued
  };
}

// meta.lastModified moves forward strictly, so that "gt <last seen>" is exact here.
let lastStamp = 0;
function stamp() {
  lastStamp = Math.max(Date.now(), lastStamp + 1);
  return new Date(lastStamp).toISOString();
}

function newUser(st, u) {
  if (typeof u.userName !== 'string' || !u.userName) throw new Error('userName required');
  for (const other of st.users.values()) {
    if (other.userName.toLowerCase() === u.userName.toLowerCase()) throw new Error(`userName ${u.userName} taken`);
  }
  const id = u.id || crypto.randomUUID();
  const now = stamp();
  const user = {
    id, userName: u.userName, active: u.active !== false,
    ...(u.displayName ? { displayName: u.displayName } : {}),
    ...(u.name ? { name: u.name } : {}),
    ...(u.emails ? { emails: u.emails } : {}),
    meta: { resourceType: 'User', created: now, lastModified: now },
  };
  st.users.set(id, user);
  return user;
}

// What a write may change; the rest (id, meta) is the server's.
const WRITABLE = ['userName', 'active', 'displayName', 'name', 'emails', 'externalId', 'title', 'nickName'];

function applyWrite(st, existing, instance) {
  const next = { id: existing.id, meta: { ...existing.meta, lastModified: stamp() } };
  for (const k of WRITABLE) if (instance[k] !== undefined) next[k] = instance[k];
  if (next.active === undefined) next.active = true;
  st.users.set(existing.id, next);
  return next;
}

function declare(st) {
  const notFound = (id) => new SCIMMY.Types.Error(404, null, `Resource ${id} not found`);
  SCIMMY.Resources.declare(SCIMMY.Resources.User, {
    egress: (resource) => {
      if (resource.id) {
        const u = st.users.get(resource.id);
        if (!u) throw notFound(resource.id);
        return u;
      }
      const all = [...st.users.values()];
      return resource.filter ? resource.filter.match(all) : all;
    },
    ingress: (resource, instance) => {
      if (!resource.id) return newUser(st, instance);
      const u = st.users.get(resource.id);
      if (!u) throw notFound(resource.id);
      return applyWrite(st, u, instance);
    },
    degress: (resource) => {
      if (!st.users.delete(resource.id)) throw notFound(resource.id);
    },
  });
}

function authenticate(st) {
  return (req) => {
    const h = req.header('Authorization') || '';
    const m = /^Bearer (\S+)$/.exec(h);
    if (!m || !st.tokens.has(m[1])) throw new Error('Bearer token missing or not valid');
    return undefined;
  };
}

// SCIMMY's answer to this request, mangled on its way out (a 204 has nothing to cut).
function mangleAnswer(res, m) {
  const send = res.send.bind(res);
  res.send = (body) => {
    if (res.statusCode === 204) return send(body);
    const text = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    sendMangled(res, res.statusCode, { 'Content-Type': res.getHeader('Content-Type') || 'application/scim+json' }, text, m);
    return res;
  };
}

// Faults, page caps and feature switches, before SCIMMY sees the request.
function gate(st) {
  return (req, res, next) => {
    const route = routeOf(req.method, req.originalUrl);
    const rec = { method: req.method, route, query: { ...req.query }, status: 0 };
    st.requests.push(rec);
    if (st.requests.length > 5000) st.requests.shift();
    res.on('finish', () => { rec.status = res.statusCode; });
    const f = st.faults.find((x) => (!x.method || x.method === req.method) && (!x.route || x.route === route));
    if (f) {
      if (--f.times <= 0) st.faults.splice(st.faults.indexOf(f), 1);
      if (f.mangle) {
        mangleAnswer(res, f.mangle);
        return gateOn(st, req, res, next);
      }
      if (f.retry_after !== undefined) res.setHeader('Retry-After', String(f.retry_after));
      res.status(f.status).type('application/scim+json').send(JSON.stringify(
        scimError(f.status, f.scimType, f.detail)));
      return;
    }
    gateOn(st, req, res, next);
  };
}

// The rest of the gate, once no fault answers in SCIMMY's place.
function gateOn(st, req, res, next) {
  if (req.method === 'PATCH' && !st.patch) {
    res.status(501).type('application/scim+json').send(JSON.stringify(
      scimError(501, null, 'PATCH is not supported by this service provider')));
    return;
  }
  if (req.method === 'GET' && req.query.filter !== undefined && !SCIMMY.Config.get().filter.supported) {
    res.status(400).type('application/scim+json').send(JSON.stringify(
      scimError(400, 'invalidFilter', 'filtering is not supported by this service provider')));
    return;
  }
  if (st.maxCount > 0 && req.method === 'GET') {
    const c = Number(req.query.count);
    if (!Number.isInteger(c) || c > st.maxCount) req.query.count = String(st.maxCount);
  }
  next();
}

function tokenEndpoint(st) {
  return (req, res) => {
    let id = req.body.client_id, secret = req.body.client_secret;
    const m = /^Basic (\S+)$/.exec(req.header('Authorization') || '');
    if (m) {
      const pair = Buffer.from(m[1], 'base64').toString();
      const i = pair.indexOf(':');
      id = decodeURIComponent(pair.slice(0, i).replace(/\+/g, ' '));
      secret = decodeURIComponent(pair.slice(i + 1).replace(/\+/g, ' '));
    }
    if (req.body.grant_type !== 'client_credentials') {
      return res.status(400).json({ error: 'unsupported_grant_type', error_description: 'client_credentials only' });
    }
    if (!id || st.clients.get(id) !== secret) {
      return res.status(401).json({ error: 'invalid_client', error_description: 'client authentication failed' });
    }
    const token = 'scim-at-' + crypto.randomBytes(16).toString('hex');
    st.tokens.add(token);
    st.issued++;
    return res.json({ access_token: token, token_type: 'Bearer', expires_in: TOKEN_LIFE_S });
  };
}

function control(st) {
  const r = express.Router();
  r.use(express.json());
  r.post('/users', (req, res) => {
    try {
      const ids = (req.body.users || []).map((u) => newUser(st, u).id);
      res.status(201).json({ ids });
    } catch (e) {
      res.status(400).json({ error: e.message });
    }
  });
  r.get('/users/:id', (req, res) => {
    const u = st.users.get(req.params.id);
    if (!u) return res.status(404).json({ error: 'no such user' });
    return res.json(u);
  });
  // Changes a user as another administrator would: meta.lastModified moves.
  r.patch('/users/:id', (req, res) => {
    const u = st.users.get(req.params.id);
    if (!u) return res.status(404).json({ error: 'no such user' });
    return res.json(applyWrite(st, u, { ...u, ...req.body }));
  });
  r.delete('/users/:id', (req, res) => {
    res.status(st.users.delete(req.params.id) ? 204 : 404).end();
  });
  r.post('/tokens', (req, res) => { st.tokens.add(req.body.token); res.status(204).end(); });
  r.post('/clients', (req, res) => { st.clients.set(req.body.client_id, req.body.secret); res.status(204).end(); });
  r.post('/faults', (req, res) => {
    const f = { times: 1, ...req.body };
    const cut = parseMangle(req.body);
    if (cut.error) return res.status(400).json({ error: cut.error });
    f.mangle = cut.mangle;
    if (!f.mangle && !Number.isInteger(f.status)) return res.status(400).json({ error: 'status, or cut_at, truncate_at or content_type required' });
    st.faults.push(f);
    return res.status(204).end();
  });
  r.delete('/faults', (req, res) => { st.faults = []; res.status(204).end(); });
  r.put('/config', (req, res) => {
    const b = req.body;
    if (b.max_count !== undefined) st.maxCount = b.max_count;
    if (b.patch !== undefined) {
      st.patch = !!b.patch;
      SCIMMY.Config.set('patch', st.patch);
    }
    if (b.filter !== undefined) SCIMMY.Config.set('filter', { supported: !!b.filter });
    res.json({ max_count: st.maxCount, patch: st.patch, filter: SCIMMY.Config.get().filter.supported });
  });
  r.get('/stats', (req, res) => {
    const routes = {};
    for (const q of st.requests) routes[q.route] = (routes[q.route] || 0) + 1;
    res.json({ routes, requests: st.requests, tokens_issued: st.issued, users: st.users.size });
  });
  return r;
}

function createApp(st = createState()) {
  declare(st);
  const app = express();
  app.disable('x-powered-by');
  app.use('/_emulator', control(st));
  app.post('/oauth/token', express.urlencoded({ extended: false }), tokenEndpoint(st));
  app.use(BASE, gate(st), new SCIMMYRouters({ type: 'bearer', handler: authenticate(st) }));
  return { app, st };
}

function start(port = 0) {
  const { app, st } = createApp();
  return new Promise((resolve) => {
    const server = app.listen(port, '127.0.0.1', () => resolve({ server, st, port: server.address().port }));
  });
}

module.exports = { start, createApp, routeOf };

if (require.main === module) {
  const i = process.argv.indexOf('--port');
  start(i > 0 ? Number(process.argv[i + 1]) : 0).then(({ port }) => {
    process.stdout.write(`listening on ${port}\n`);
  });
}
