#!/usr/bin/env node
'use strict';
// Microsoft Graph v1.0 + Microsoft identity platform (v2.0 token endpoint) emulator for quell's
// Entra ID connector tests. One process, one port, in-memory state, Node built-ins only.
//
//   node tests/emulators/graph/server.js --port 0 [--latency-ms 0] [--write-budget 3000]
//        [--write-window-s 150] [--ip-rps 1] [--page-max 999] [--host 127.0.0.1]
//
// Prints exactly one line, "listening on <port>", when ready. See README.md for the control API.
const http = require('http');
const { URL } = require('url');
const { State } = require('./lib/state');
const login = require('./lib/login');
const graph = require('./lib/graph');
const USER_PROPS = require('./lib/user-properties');
const { uuid, readBody, BodyTooLarge, sleep, isoSeconds } = require('./lib/util');
const { parseMangle, sendMangled } = require('./lib/cut');

const GRAPH_JSON = 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8';

function parseArgs(argv) {
  const o = { port: 0, host: '127.0.0.1', latency_ms: 0, write_budget: 3000, write_window_s: 150, ip_rps: 1, page_max: 999 };
  const num = (name, v) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < 0) { console.error(`bad value for ${name}: ${v}`); process.exit(2); }
    return n;
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const [k, inline] = a.includes('=') ? a.split(/=(.*)/s) : [a, undefined];
    const val = () => (inline !== undefined ? inline : argv[++i]);
    switch (k) {
      case '--port': o.port = num(k, val()); break;
      case '--host': o.host = val(); break;
      case '--latency-ms': o.latency_ms = num(k, val()); break;
      case '--write-budget': o.write_budget = num(k, val()); break;
      case '--write-window-s': o.write_window_s = num(k, val()); break;
      case '--ip-rps': o.ip_rps = num(k, val()); break;
      case '--page-max': o.page_max = num(k, val()); break;
      case '-h': case '--help':
        console.log('usage: server.js --port 0 [--latency-ms 0] [--write-budget 3000] [--write-window-s 150] [--ip-rps 1] [--page-max 999] [--host 127.0.0.1]');
        process.exit(0);
      // eslint-disable-next-line no-fallthrough
      default: console.error(`unknown option ${a}`); process.exit(2);
    }
  }
  return o;
}

// mangle: a fault's cut_at / truncate_at / content_type (lib/cut.js); a 204 has no
// body to mangle.
function send(res, status, body, headers = {}, contentType = 'application/json; charset=utf-8', mangle = null) {
  const h = { ...headers };
  let payload = null;
  if (body !== undefined && status !== 204) {
    payload = Buffer.from(JSON.stringify(body));
    h['Content-Type'] = contentType;
    h['Content-Length'] = payload.length;
  } else if (status !== 204) {
    h['Content-Length'] = 0;
  }
  if (mangle && status !== 204) return sendMangled(res, status, h, payload, mangle);
  res.writeHead(status, h);
  res.end(payload);
}

// ---------------------------------------------------------------------------- Graph

async function handleGraph(state, req, res, url) {
  const requestId = uuid();
  const clientRequestId = req.headers['client-request-id'] || requestId;
  const ctx = { requestId, clientRequestId };
  const headers = { 'request-id': requestId, 'client-request-id': clientRequestId, 'Cache-Control': 'no-cache', Vary: 'Accept-Encoding' };
  let template = 'UNMATCHED';
  let tenant = null;
  const extra = { requestId };
  let mangle = null;
  const reply = (status, body, more = {}) => {
    state.record(req.method, template, status, req, { ...extra, tenant });
    send(res, status, body, { ...headers, ...more }, GRAPH_JSON, mangle);
  };
  const fail = (status, code, message, more = {}) => reply(status, graph.errorBody(status, code, message, ctx), more);

  let body;
  try { body = await readBody(req, 4 * 1024 * 1024); } catch (e) {
    if (e instanceof BodyTooLarge) return fail(413, 'RequestEntityTooLarge', 'The request body is too large.');
    throw e;
  }
  if (state.config.latency_ms > 0) await sleep(state.config.latency_ms);

  const { r, params, pathMatched } = graph.route(req.method, url.pathname);
  if (!r) {
    if (pathMatched) {
      template = pathMatched.template;
      return fail(405, 'Request_BadRequest', `The HTTP method '${req.method}' is not allowed for the requested resource.`);
    }
    const seg = url.pathname.split('/').filter(Boolean).slice(1).pop() || '';
    return fail(400, 'BadRequest', `Resource not found for the segment '${seg}'.`);
  }
  template = r.template;

  const auth = login.checkAccessToken(state, req.headers.authorization);
  if (!auth.ok) {
    return fail(401, 'InvalidAuthenticationToken', auth.message, {
      'WWW-Authenticate': 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"',
    });
  }
  tenant = auth.tenant;

  const fault = state.takeFault(req.method, req.url);
  if (fault) {
    if (fault.delay_ms > 0) await sleep(fault.delay_ms);
    mangle = fault.mangle;
    if (fault.status) {
      const more = {};
      if (fault.retry_after != null) { more['Retry-After'] = String(fault.retry_after); extra.retryAfter = fault.retry_after; }
      if (fault.status === 429) { state.stats.throttled.fault++; state.stats.throttled.total++; }
      const [code, msg] = FAULT_ERRORS[fault.status] || ['generalException', 'An unspecified error has occurred.'];
      return fail(fault.status, code, msg, more);
    }
  }

  const now = Date.now();
  if (r.ip) {
    const w = state.ipWindow(tenant);
    if (w.count(now, 1000) >= state.config.ip_rps) {
      state.stats.throttled.identity_protection++; state.stats.throttled.total++;
      return fail(429, 'TooManyRequests', 'Please retry again later.'); // Identity Protection sends no Retry-After
    }
    w.add(now);
  }
  if (r.write) {
    const windowMs = state.config.write_window_s * 1000;
    const w = state.writeWindow(tenant, auth.client_id);
    if (w.count(now, windowMs) >= state.config.write_budget) {
      const retry = Math.max(1, Math.ceil(((w.oldest() ?? now) + windowMs - now) / 1000));
      state.stats.throttled.write++; state.stats.throttled.total++;
      extra.retryAfter = retry;
      return fail(429, 'TooManyRequests', 'Please retry again later.', {
        'Retry-After': String(retry),
        'x-ms-throttle-scope': `Tenant_Application/Write/${auth.client_id}/${tenant}`,
        'x-ms-throttle-information': 'WriteLimitExceeded',
      });
    }
    w.add(now);
  }

  const c = { state, req, query: url.searchParams, tenant, params, body };
  try {
    const out = r.handler(c);
    extra.userIds = c.userIds;
    return reply(out.status, out.body);
  } catch (e) {
    if (e instanceof graph.GraphError) return fail(e.status, e.code, e.message, e.headers);
    throw e;
  }
}

// From Graph's errors reference (concepts/errors.md): HTTP status -> (code, message).
const FAULT_ERRORS = {
  429: ['TooManyRequests', 'Please retry again later.'],
  500: ['generalException', 'An unspecified error has occurred.'],
  502: ['BadGateway', 'Bad Gateway.'],
  503: ['serviceNotAvailable', 'The service is temporarily unavailable for maintenance or is overloaded. You may repeat the request after a delay, which may be specified in a Retry-After header.'],
  504: ['timeout', 'The operation timed out before completing.'],
};

// ---------------------------------------------------------------------------- login

async function handleToken(state, req, res, url, tenant) {
  const headers = { 'Cache-Control': 'no-store, no-cache', Pragma: 'no-cache', 'x-ms-request-id': uuid() };
  if (req.headers['client-request-id']) headers['client-request-id'] = req.headers['client-request-id'];
  const template = '/{tenant}/oauth2/v2.0/token';
  let raw;
  try { raw = await readBody(req, 1024 * 1024); } catch (e) {
    if (e instanceof BodyTooLarge) { res.writeHead(413); res.end(); return; }
    throw e;
  }
  const finish = (status, body, more = {}) => {
    state.record(req.method, template, status, req, { requestId: headers['x-ms-request-id'], tenant });
    send(res, status, body, { ...headers, ...more });
  };
  if (req.method !== 'POST') {
    const e = new login.AadError(400, 'invalid_request', 900561, `The endpoint only accepts POST, OPTIONS requests. Received a ${req.method} request.`);
    return finish(400, login.aadErrorBody(e, req.headers['client-request-id'] || uuid()));
  }
  const fault = state.takeFault(req.method, req.url);
  if (fault) {
    if (fault.delay_ms > 0) await sleep(fault.delay_ms);
    if (fault.status) {
      const more = fault.retry_after != null ? { 'Retry-After': String(fault.retry_after) } : {};
      const e = fault.status === 429
        ? new login.AadError(429, 'temporarily_unavailable', 50196, 'The server has detected a client loop or too many requests. Try again later.')
        : new login.AadError(fault.status, 'temporarily_unavailable', 90006, 'The service is temporarily unavailable. Try again later.');
      return finish(fault.status, login.aadErrorBody(e, req.headers['client-request-id'] || uuid()), more);
    }
  }
  const ct = String(req.headers['content-type'] || '').toLowerCase();
  const form = ct.startsWith('application/x-www-form-urlencoded') ? new URLSearchParams(raw.toString('utf8')) : new URLSearchParams();
  const out = login.tokenRequest(state, req, tenant, form);
  finish(out.status, out.body);
}

// ---------------------------------------------------------------------------- control API

function userRecord(t, input) {
  if (!input || typeof input !== 'object') throw new Error('each user must be an object');
  const id = input.id ? String(input.id) : uuid();
  const u = { id };
  for (const [k, v] of Object.entries(input)) {
    if (k === 'id' || k === 'privileged' || k === 'riskState' || k === 'riskLevel' || k === 'riskDetail' || k === 'riskLastUpdatedDateTime') continue;
    if (!(k in USER_PROPS)) throw new Error(`unknown user property '${k}' (names follow microsoft.graph.user in the CSDL)`);
    u[k] = v;
  }
  if (!('accountEnabled' in u)) u.accountEnabled = true;
  if (!('userPrincipalName' in u)) u.userPrincipalName = `${id}@emulator.onmicrosoft.com`;
  for (const k of ['displayName', 'mail', 'onPremisesSecurityIdentifier', 'onPremisesSyncEnabled', 'signInSessionsValidFromDateTime']) {
    if (!(k in u)) u[k] = null;
  }
  u._privileged = input.privileged === true;
  if (input.riskState || input.riskLevel) {
    u.riskState = input.riskState || 'atRisk';
    u.riskLevel = input.riskLevel || 'medium';
    u.riskDetail = input.riskDetail || 'none';
    u.riskLastUpdatedDateTime = input.riskLastUpdatedDateTime || isoSeconds();
  }
  const old = t.users.get(id);
  if (old) { if (old.userPrincipalName) t.upn.delete(String(old.userPrincipalName).toLowerCase()); } else t.order.push(id);
  t.users.set(id, u);
  u._seq = ++t.seq;
  if (u.userPrincipalName) t.upn.set(String(u.userPrincipalName).toLowerCase(), id);
  return id;
}

function userView(tenantName, u) {
  return {
    tenant: tenantName,
    id: u.id,
    userPrincipalName: u.userPrincipalName,
    displayName: u.displayName,
    accountEnabled: u.accountEnabled,
    onPremisesSyncEnabled: u.onPremisesSyncEnabled,
    onPremisesSecurityIdentifier: u.onPremisesSecurityIdentifier,
    signInSessionsValidFromDateTime: u.signInSessionsValidFromDateTime,
    revocations: u._revocations || 0,
    riskState: u.riskState || 'none',
    riskLevel: u.riskLevel || 'none',
    riskDetail: u.riskDetail || 'none',
    riskLastUpdatedDateTime: u.riskLastUpdatedDateTime || null,
    privileged: u._privileged,
  };
}

const CONFIG_KEYS = {
  write_budget: 'number', write_window_s: 'number', ip_rps: 'number', latency_ms: 'number', page_max: 'number',
  token_lifetime_s: 'number', assertion_clock_skew_s: 'number', risky_batch_max: 'number',
  graph_base_url: 'string', login_base_url: 'string',
};

async function handleControl(state, req, res, url) {
  const p = url.pathname.replace(/\/+$/, '');
  const m = req.method;
  let raw;
  try { raw = await readBody(req, 512 * 1024 * 1024); } catch (e) {
    if (e instanceof BodyTooLarge) return send(res, 413, { error: 'body too large' });
    throw e;
  }
  let body = {};
  if (raw.length) {
    try { body = JSON.parse(raw.toString('utf8')); } catch { return send(res, 400, { error: 'body is not JSON' }); }
  }
  const bad = (msg) => send(res, 400, { error: msg });
  try {
    if (m === 'POST' && p === '/_emulator/apps') {
      if (!body.tenant || !body.client_id) return bad('tenant and client_id are required');
      if (!body.secret && !body.cert_pem && !body.cert_pems) return bad('secret or cert_pem is required');
      const t = state.tenant(String(body.tenant), true);
      const pems = [].concat(body.cert_pem || [], body.cert_pems || []);
      let certs;
      try { certs = pems.map(login.loadCertificate); } catch (e) { return bad(`cert_pem: ${e.message}`); }
      const app = {
        client_id: String(body.client_id), secret: body.secret || null, certs,
        token_lifetime_s: body.token_lifetime_s ?? null,
        assertion_max_lifetime_s: body.assertion_max_lifetime_s ?? null,
        reject_jti_replay: body.reject_jti_replay === true,
        roles: Array.isArray(body.roles) ? body.roles : [],
      };
      t.apps.set(app.client_id, app);
      return send(res, 201, {
        tenant: t.name, client_id: app.client_id,
        certificates: certs.map((c) => ({ x5t: c.x5t, 'x5t#S256': c.x5tS256, sha1: c.sha1Hex })),
      });
    }
    let mt = /^\/_emulator\/tenants\/([^/]+)$/.exec(p);
    if (mt && m === 'PUT') {
      const t = state.tenant(decodeURIComponent(mt[1]), true);
      if ('token_lifetime_s' in body) t.token_lifetime_s = body.token_lifetime_s;
      return send(res, 200, { tenant: t.name, token_lifetime_s: t.token_lifetime_s });
    }
    if (m === 'POST' && p === '/_emulator/users') {
      if (!body.tenant || !Array.isArray(body.users)) return bad('tenant and users[] are required');
      const t = state.tenant(String(body.tenant), true);
      const ids = new Array(body.users.length);
      try {
        for (let i = 0; i < body.users.length; i++) ids[i] = userRecord(t, body.users[i]);
      } catch (e) { return bad(e.message); }
      return send(res, 201, { tenant: t.name, created: ids.length, total: t.order.length, ids });
    }
    mt = /^\/_emulator\/users\/([^/]+)$/.exec(p);
    if (mt && m === 'DELETE') {
      const want = url.searchParams.get('tenant');
      if (!want) return bad('tenant is required');
      if (!state.deleteUser(want, decodeURIComponent(mt[1]))) return send(res, 404, { error: `no user '${mt[1]}'` });
      return send(res, 200, { deleted: decodeURIComponent(mt[1]) });
    }
    if (mt && m === 'GET') {
      const id = decodeURIComponent(mt[1]);
      const want = url.searchParams.get('tenant');
      for (const t of state.tenants.values()) {
        if (want && t.name !== want) continue;
        const u = state.findUser(t.name, id);
        if (u) return send(res, 200, userView(t.name, u));
      }
      return send(res, 404, { error: `no user '${id}'` });
    }
    if (p === '/_emulator/faults') {
      if (m === 'GET') return send(res, 200, { faults: state.faults.map(faultView) });
      if (m === 'DELETE') { state.faults = []; return send(res, 200, { faults: [] }); }
      if (m === 'POST') {
        let re;
        try { re = new RegExp(body.path_regex ?? '.*'); } catch (e) { return bad(`path_regex: ${e.message}`); }
        if (body.status != null && ![429, 500, 502, 503, 504].includes(body.status)) return bad('status must be one of 429, 500, 502, 503, 504 (or null for delay only)');
        const count = body.count ?? 1;
        if (!Number.isInteger(count) || count < 1) return bad('count must be a positive integer');
        const cut = parseMangle(body);
        if (cut.error) return bad(cut.error);
        const f = {
          id: state.nextFaultId++, path_regex: body.path_regex ?? '.*', re,
          method: body.method ? String(body.method).toUpperCase() : null,
          status: body.status ?? null, retry_after: body.retry_after ?? null,
          count, remaining: count, applied: 0, delay_ms: body.delay_ms || 0, mangle: cut.mangle,
        };
        state.faults.push(f);
        return send(res, 201, faultView(f));
      }
    }
    if (m === 'POST' && p === '/_emulator/tokens/expire') {
      state.expiredBefore = state.tokenSeq || 0;
      return send(res, 200, { expired: state.tokens.size });
    }
    if (p === '/_emulator/stats') {
      if (m === 'DELETE') { state.resetStats(); return send(res, 200, { reset: true }); }
      if (m === 'GET') {
        const last = Number(url.searchParams.get('last') ?? 100);
        const s = state.stats;
        return send(res, 200, { ...s, recent: last > 0 ? s.recent.slice(-last) : [] });
      }
    }
    if (m === 'POST' && p === '/_emulator/reset') { state.reset(); return send(res, 200, { reset: true }); }
    if (p === '/_emulator/config') {
      if (m === 'GET') return send(res, 200, state.config);
      if (m === 'PUT' || m === 'PATCH') {
        for (const [k, v] of Object.entries(body)) {
          if (!(k in CONFIG_KEYS)) return bad(`unknown config key '${k}'`);
          if (v !== null && typeof v !== CONFIG_KEYS[k]) return bad(`${k} must be a ${CONFIG_KEYS[k]}`);
        }
        Object.assign(state.config, body);
        return send(res, 200, state.config);
      }
    }
    return send(res, 404, { error: `no control route ${m} ${p}` });
  } catch (e) {
    return send(res, 500, { error: String(e && e.stack || e) });
  }
}

function faultView(f) {
  const { re, ...rest } = f; // eslint-disable-line no-unused-vars
  return rest;
}

// ---------------------------------------------------------------------------- server

const TOKEN_PATH = /^\/([^/]+)\/oauth2\/v2\.0\/token\/?$/i;

function createServer(opts) {
  const state = new State({
    latency_ms: opts.latency_ms, write_budget: opts.write_budget, write_window_s: opts.write_window_s,
    ip_rps: opts.ip_rps, page_max: opts.page_max, token_lifetime_s: 3599, assertion_clock_skew_s: 0,
    risky_batch_max: graph.RISKY_BATCH_MAX, graph_base_url: null, login_base_url: null,
  });
  const server = http.createServer((req, res) => {
    let url;
    try { url = new URL(req.url, 'http://emulator.invalid'); } catch { res.writeHead(400); res.end(); return; }
    let h;
    if (url.pathname.startsWith('/_emulator/')) h = handleControl(state, req, res, url);
    else if (/^\/v1\.0(\/|$)/i.test(url.pathname)) h = handleGraph(state, req, res, url);
    else {
      const tm = TOKEN_PATH.exec(url.pathname);
      if (tm) h = handleToken(state, req, res, url, decodeURIComponent(tm[1]));
      else { send(res, 404, { error: 'not found' }); return; }
    }
    h.catch((e) => {
      console.error(e);
      if (!res.headersSent) send(res, 500, { error: { code: 'generalException', message: 'emulator bug: ' + e.message } });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 30000;
  return { server, state };
}

if (require.main === module) {
  const opts = parseArgs(process.argv);
  const { server } = createServer(opts);
  server.listen(opts.port, opts.host, () => {
    process.stdout.write(`listening on ${server.address().port}\n`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

module.exports = { createServer, parseArgs };
