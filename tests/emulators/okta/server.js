#!/usr/bin/env node
'use strict';
// Okta org emulator for quell's Okta connector tests. Built-in modules only.
// See README.md (same directory) for the behaviour, the sources in Okta's
// documentation and the /_emulator/ control API.

const http = require('http');
const crypto = require('crypto');
const { URL } = require('url');
const filter = require('./filter');
const jwt = require('./jwt');

// ---------------------------------------------------------------- errors ---
// errorCode -> [HTTP status, errorSummary] as Okta's error-code reference
// and the management spec's examples give them.
const ERR = {
  E0000001: [400, 'Api validation failed: {0}'],
  E0000003: [400, 'The request body was not well-formed.'],
  E0000006: [403, 'You do not have permission to perform the requested action'],
  E0000007: [404, 'Not found: {0}'],
  E0000009: [500, 'Internal Server Error'],
  E0000011: [401, 'Invalid token provided'],
  E0000015: [401, 'You do not have permission to access the feature you are requesting'],
  E0000016: [403, 'Activation failed because the user is already active'],
  E0000022: [405, 'The endpoint does not support the provided HTTP method'],
  E0000031: [400, 'Invalid search criteria.'],
  E0000038: [403, 'This operation is not allowed in the user\'s current status.'],
  E0000047: [429, 'API call exceeded rate limit due to too many requests.'],
};

const B62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function rand(n) {
  const b = crypto.randomBytes(n);
  let s = '';
  for (let i = 0; i < n; i++) s += B62[b[i] % 62];
  return s;
}
const newUserId = () => '00u' + rand(17);
const iso = (ms) => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

// ------------------------------------------------------------------ args ---
function parseArgs(argv) {
  const o = { port: 0, latency_ms: 0, rate_limit: 600, rate_window_s: 60, token_rate_limit: null,
    token_rate_window_s: null, max_concurrency: 75, host: '127.0.0.1', public_url: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error('missing value for ' + a);
      return x;
    };
    switch (a) {
      case '--port': o.port = Number(v()); break;
      case '--host': o.host = v(); break;
      case '--latency-ms': o.latency_ms = Number(v()); break;
      case '--rate-limit': o.rate_limit = Number(v()); break;
      case '--rate-window-s': o.rate_window_s = Number(v()); break;
      case '--token-rate-limit': o.token_rate_limit = Number(v()); break;
      case '--token-rate-window-s': o.token_rate_window_s = Number(v()); break;
      case '--max-concurrency': o.max_concurrency = Number(v()); break;
      case '--public-url': o.public_url = v().replace(/\/+$/, ''); break;
      default: throw new Error('unknown argument ' + a);
    }
  }
  return o;
}

// --------------------------------------------------------------- emulator --
function createEmulator(startOpts = {}) {
  const start = Object.assign(parseArgs([]), startOpts);
  const S = {}; // state

  function defaultConfig() {
    return {
      risk_scoring: true,
      risk_disabled_status: 403,
      public_url: start.public_url || null,
      latency_ms: start.latency_ms,
      max_concurrency: start.max_concurrency,
      buckets: {
        users: { limit: start.rate_limit, window_s: start.rate_window_s },
        token: { limit: start.token_rate_limit ?? start.rate_limit, window_s: start.token_rate_window_s ?? start.rate_window_s },
        other: { limit: start.rate_limit, window_s: start.rate_window_s },
      },
    };
  }

  function reset() {
    S.config = defaultConfig();
    S.users = [];            // insertion order = list order (id cursor)
    S.byId = new Map();
    S.byLogin = new Map();   // lowercased login -> user
    S.index = new Map();     // id -> position in S.users
    S.ssws = new Map();      // token -> {token}
    S.apps = new Map();      // client_id -> {client_id, keys, scopes, token_lifetime_s}
    S.access = new Map();    // access token -> {client_id, scopes, exp}
    S.jti = new Map();
    S.faults = [];
    S.windows = new Map();   // bucket -> {start, count}
    S.stats = { routes: {}, rate_limited: 0, concurrency_limited: 0, max_concurrent: 0, requests: 0, recent: [] };
    S.inflight = 0;
    S.pending = new Set();   // timers for async deactivation
  }
  reset();

  // ------------------------------------------------------------- users ---
  function seedUser(spec, now) {
    if (!spec || typeof spec.login !== 'string' || spec.login.length === 0) throw new Error('each user needs a login');
    const id = spec.id || newUserId();
    if (S.byId.has(id)) throw new Error('duplicate id ' + id);
    if (S.byLogin.has(spec.login.toLowerCase())) throw new Error('duplicate login ' + spec.login);
    const status = spec.status || 'ACTIVE';
    if (!STATUSES.has(status)) throw new Error('bad status ' + status);
    const ts = (k, d) => (spec[k] === undefined ? d : spec[k] === null ? null : Date.parse(spec[k]));
    const created = ts('created', now);
    const hasPw = spec.has_password !== false;
    const u = {
      id, status,
      transitioningToStatus: null,
      created,
      activated: ts('activated', status === 'STAGED' ? null : created),
      statusChanged: ts('statusChanged', status === 'STAGED' ? null : created),
      lastLogin: ts('lastLogin', null),
      lastUpdated: ts('lastUpdated', created),
      passwordChanged: ts('passwordChanged', hasPw ? created : null),
      has_password: hasPw,
      typeId: spec.type_id || 'oty1emulatorDefault0',
      profile: Object.assign({
        firstName: spec.firstName ?? null, lastName: spec.lastName ?? null,
        mobilePhone: null, secondEmail: null,
        login: spec.login, email: spec.email ?? spec.login,
      }, spec.profile || {}),
      admin_protected: !!spec.admin_protected,
      risk: spec.riskLevel ? { level: spec.riskLevel, reason: spec.riskReason || 'override.by.admin', at: now } : null,
      sessions_cleared_at: null, oauth_tokens_revoked: null, forget_devices: null, sessions_revocations: 0,
      history: [],
    };
    S.index.set(id, S.users.length);
    S.users.push(u);
    S.byId.set(id, u);
    S.byLogin.set(spec.login.toLowerCase(), u);
    return u;
  }

  function findUser(idOrLogin) {
    const u = S.byId.get(idOrLogin);
    if (u) return u;
    const l = String(idOrLogin).toLowerCase();
    const byLogin = S.byLogin.get(l);
    if (byLogin) return byLogin;
    if (!l.includes('@')) { // login shortname, when unambiguous
      let found = null;
      for (const x of S.users) {
        const lx = x.profile.login.toLowerCase();
        if (lx.startsWith(l + '@')) {
          if (found) return null;
          found = x;
        }
      }
      return found;
    }
    return null;
  }

  function setStatus(u, to, op, now) {
    const from = u.status;
    u.status = to;
    u.statusChanged = now;
    u.lastUpdated = now;
    if (to === 'ACTIVE' && (from === 'STAGED' || from === 'PROVISIONED' || from === 'DEPROVISIONED')) u.activated = now;
    u.history.push({ at: iso(now), op, from, to });
  }

  function userLinks(u, base, full) {
    const self = `${base}/api/v1/users/${u.id}`;
    const L = { self: { href: self } };
    if (!full) return L;
    const lc = (n) => ({ href: `${self}/lifecycle/${n}`, method: 'POST' });
    const s = u.status;
    if (s === 'STAGED' || s === 'DEPROVISIONED') L.activate = lc('activate');
    if (s === 'PROVISIONED' || s === 'RECOVERY') L.reactivate = lc('reactivate');
    if (s === 'ACTIVE') L.suspend = lc('suspend');
    if (s === 'SUSPENDED') L.unsuspend = lc('unsuspend');
    if (s === 'LOCKED_OUT') L.unlock = lc('unlock');
    if (s !== 'DEPROVISIONED') L.deactivate = lc('deactivate');
    if (EXPIRABLE.has(s)) {
      L.expirePassword = lc('expire_password');
      L.resetPassword = lc('reset_password');
      L.resetFactors = lc('reset_factors');
      L.forgotPassword = { href: `${self}/credentials/forgot_password`, method: 'POST' };
      L.changePassword = { href: `${self}/credentials/change_password`, method: 'POST' };
      L.changeRecoveryQuestion = { href: `${self}/credentials/change_recovery_question`, method: 'POST' };
    }
    L.schema = { href: `${base}/api/v1/meta/schemas/user/osc1emulatorDefault0` };
    L.type = { href: `${base}/api/v1/meta/types/user/${u.typeId}` };
    return L;
  }

  function userJson(u, base, full) {
    const o = {
      id: u.id, status: u.status,
      created: iso(u.created), activated: iso(u.activated), statusChanged: iso(u.statusChanged),
      lastLogin: iso(u.lastLogin), lastUpdated: iso(u.lastUpdated), passwordChanged: iso(u.passwordChanged),
      type: { id: u.typeId },
      profile: u.profile,
      credentials: u.has_password
        ? { password: {}, provider: { type: 'OKTA', name: 'OKTA' } }
        : { provider: { type: 'OKTA', name: 'OKTA' } },
      _links: userLinks(u, base, full),
    };
    if (u.transitioningToStatus) o.transitioningToStatus = u.transitioningToStatus;
    return o;
  }

  function stateJson(u) {
    return {
      id: u.id, login: u.profile.login, status: u.status, transitioningToStatus: u.transitioningToStatus,
      created: iso(u.created), activated: iso(u.activated), statusChanged: iso(u.statusChanged),
      lastLogin: iso(u.lastLogin), lastUpdated: iso(u.lastUpdated), passwordChanged: iso(u.passwordChanged),
      password_expired: u.status === 'PASSWORD_EXPIRED',
      admin_protected: u.admin_protected, has_password: u.has_password,
      riskLevel: u.risk ? u.risk.level : 'NONE', riskReason: u.risk ? u.risk.reason : null,
      risk_set_at: u.risk ? iso(u.risk.at) : null,
      sessions_cleared_at: iso(u.sessions_cleared_at), oauth_tokens_revoked: u.oauth_tokens_revoked,
      forget_devices: u.forget_devices, sessions_revocations: u.sessions_revocations,
      profile: u.profile, history: u.history,
    };
  }

  // ------------------------------------------------------------ helpers ---
  function send(res, status, body, headers = {}) {
    if (res.writableEnded || res.destroyed) return;
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    if (body === undefined || body === null) {
      res.setHeader('Content-Length', 0);
      res.writeHead(status);
      res.end();
      return;
    }
    const s = JSON.stringify(body);
    const m = res.mangle;
    res.setHeader('Content-Type', (m && m.content_type) || 'application/json');
    if (m && (m.cut_at !== null || m.truncate_at !== null)) return sendCut(res, status, s, m);
    res.setHeader('Content-Length', Buffer.byteLength(s));
    res.writeHead(status);
    res.end(s);
  }

  // A fault's mangled body: cut_at sends its first K bytes under the full
  // Content-Length and drops the connection (a transfer cut short); truncate_at sends
  // them as the whole, well-framed answer (a short body).
  function sendCut(res, status, s, m) {
    const full = Buffer.from(s);
    const k = Math.max(0, Math.min(full.length, m.cut_at !== null ? m.cut_at : m.truncate_at));
    res.setHeader('Content-Length', m.cut_at !== null ? full.length : k);
    res.writeHead(status);
    if (m.cut_at === null) return res.end(full.subarray(0, k));
    res.write(full.subarray(0, k), () => res.destroy());
  }

  function oktaError(res, code, { summary, causes = [], status, headers } = {}) {
    const [st, sum] = ERR[code];
    send(res, status || st, {
      errorCode: code,
      errorSummary: summary || sum,
      errorLink: code,
      errorId: 'oae' + rand(22),
      errorCauses: causes.map((c) => ({ errorSummary: c })),
    }, headers);
  }

  function readBody(req, max) {
    return new Promise((resolve, reject) => {
      const chunks = [];
      let n = 0;
      req.on('data', (c) => {
        n += c.length;
        if (n > max) { reject(Object.assign(new Error('body too large'), { tooLarge: true })); req.destroy(); return; }
        chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // The org URL as the client sees it: config public_url (for a client that
  // talks through a proxy such as Prism, which rewrites Host), else
  // X-Forwarded-Host/-Proto, else Host.
  function baseUrl(req) {
    if (S.config.public_url) return S.config.public_url;
    const fh = req.headers['x-forwarded-host'];
    const proto = req.headers['x-forwarded-proto'] || 'http';
    if (fh) return `${proto.split(',')[0].trim()}://${fh.split(',')[0].trim()}`;
    return `http://${req.headers.host || `${start.host}:${S.port}`}`;
  }

  function bucketOf(path) {
    if (path === '/oauth2/v1/token') return 'token';
    if (path === '/api/v1/users' || path.startsWith('/api/v1/users/')) return 'users';
    return 'other';
  }

  // Fixed window per bucket; returns {limited, headers}.
  function takeRate(bucket, now) {
    const cfg = S.config.buckets[bucket];
    let w = S.windows.get(bucket);
    if (!w || now >= w.start + cfg.window_s * 1000) {
      w = { start: now, count: 0 };
      S.windows.set(bucket, w);
    }
    w.count++;
    const limited = w.count > cfg.limit;
    return {
      limited,
      headers: {
        'X-Rate-Limit-Limit': String(cfg.limit),
        'X-Rate-Limit-Remaining': String(Math.max(0, cfg.limit - w.count)),
        'X-Rate-Limit-Reset': String(Math.ceil((w.start + cfg.window_s * 1000) / 1000)),
      },
    };
  }

  function routeKey(method, path) {
    const p = path
      .replace(/^\/api\/v1\/users\/[^/]+/, '/api/v1/users/{id}')
      .replace(/^\/_emulator\/users\/[^/]+/, '/_emulator/users/{id}');
    return `${method} ${p}`;
  }

  function record(req, res, path, t0, authKind) {
    const key = routeKey(req.method, path);
    const r = S.stats.routes[key] || (S.stats.routes[key] = { count: 0, statuses: {} });
    r.count++;
    const st = res.statusCode;
    r.statuses[st] = (r.statuses[st] || 0) + 1;
    S.stats.recent.push({ at: iso(t0), method: req.method, path: req.url, status: st,
      ms: Date.now() - t0, auth: authKind || null, request_id: res.getHeader('X-Okta-Request-Id') || null });
    if (S.stats.recent.length > 500) S.stats.recent.splice(0, S.stats.recent.length - 500);
  }

  // --------------------------------------------------------------- auth ---
  // Returns {kind, scopes} or null after answering 401.
  function authenticate(req, res, base, path, requiredScopes) {
    const h = req.headers.authorization || '';
    const m = /^(\S+)\s+(.+)$/.exec(h.trim());
    const scheme = m ? m[1].toLowerCase() : '';
    const cred = m ? m[2].trim() : '';
    if (scheme === 'ssws' && S.ssws.has(cred)) return { kind: 'ssws' };
    if (scheme === 'bearer') {
      const t = S.access.get(cred);
      if (t && t.exp > Date.now()) {
        const ok = requiredScopes.some((s) => t.scopes.includes(s));
        if (!ok) {
          oktaError(res, 'E0000006', { headers: { 'WWW-Authenticate':
            `Bearer authorization_uri="${base}/oauth2/v1/authorize", realm="${base}", scope="${requiredScopes[0]}", ` +
            `error="insufficient_scope", error_description="The access token provided does not contain the required scopes.", resource="${path}"` } });
          return null;
        }
        return { kind: 'bearer', client_id: t.client_id };
      }
      oktaError(res, 'E0000011', { headers: { 'WWW-Authenticate':
        `Bearer authorization_uri="${base}/oauth2/v1/authorize", realm="${base}", scope="${requiredScopes[0]}", ` +
        `error="invalid_token", error_description="${t ? 'The token has expired.' : 'The access token is invalid.'}", resource="${path}"` } });
      return null;
    }
    oktaError(res, 'E0000011', { headers: { 'WWW-Authenticate': `SSWS realm="${base}"` } });
    return null;
  }

  // -------------------------------------------------------------- token ---
  async function handleToken(req, res, base, bodyText) {
    const noStore = { 'Cache-Control': 'no-cache, no-store', Pragma: 'no-cache' };
    const oerr = (status, error, description) => send(res, status, { error, error_description: description }, noStore);
    if (req.method !== 'POST') return oerr(405, 'invalid_request', 'The request method isn\'t supported.');
    const ct = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
    if (ct !== 'application/x-www-form-urlencoded') return oerr(400, 'invalid_request', 'The request must be application/x-www-form-urlencoded.');
    const f = new URLSearchParams(bodyText);
    if (!f.get('client_assertion') && !f.get('client_id') && !req.headers.authorization) return oerr(401, 'invalid_client', 'No client credentials found');
    if (!f.get('client_assertion')) return oerr(401, 'invalid_client', 'Client authentication failed: only private_key_jwt is registered for this client.');
    if (f.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
      return oerr(400, 'invalid_request', 'The `client_assertion_type` is invalid.');
    }
    let decoded;
    try {
      decoded = jwt.decode(f.get('client_assertion'));
    } catch (e) {
      return oerr(e.status || 401, e.oauthError || 'invalid_client', e.message);
    }
    const clientId = decoded.payload.sub || decoded.payload.iss;
    if (f.get('client_id') && f.get('client_id') !== clientId) return oerr(400, 'invalid_request', 'The client_id in the request doesn\'t match the client_assertion.');
    const app = S.apps.get(clientId);
    if (!app) return oerr(401, 'invalid_client', 'Invalid value for the `client_id` parameter');
    const tokenUrl = `${base}/oauth2/v1/token`;
    try {
      jwt.verifyAssertion(decoded, app, tokenUrl, S.jti);
    } catch (e) {
      if (!(e instanceof jwt.AssertionError)) throw e;
      return oerr(e.status, e.oauthError, e.message);
    }
    const grant = f.get('grant_type');
    if (grant !== 'client_credentials') return oerr(400, 'unsupported_grant_type', 'The grant type in the request isn\'t supported.');
    const scopes = (f.get('scope') || '').split(/\s+/).filter(Boolean);
    if (scopes.length === 0) return oerr(400, 'invalid_scope', 'No scopes were requested.');
    const missing = scopes.filter((s) => !app.scopes.includes(s));
    if (missing.length) return oerr(400, 'invalid_scope', `The following scopes were requested, but not granted: ${missing.join(' ')}.`);
    const lifetime = app.token_lifetime_s;
    const access = 'eyJ' + rand(40) + '.' + rand(60) + '.' + rand(40); // opaque to clients
    S.access.set(access, { client_id: clientId, scopes, exp: Date.now() + lifetime * 1000 });
    send(res, 200, { token_type: 'Bearer', expires_in: lifetime, access_token: access, scope: scopes.join(' ') }, noStore);
  }

  // ---------------------------------------------------------- users API ---
  const READ = ['okta.users.read', 'okta.users.manage'];
  const MANAGE = ['okta.users.manage'];
  const RISK_READ = ['okta.userRisk.read', 'okta.userRisk.manage'];
  const RISK_MANAGE = ['okta.userRisk.manage'];

  function notFound(res, what) {
    oktaError(res, 'E0000007', { summary: `Not found: Resource not found: ${what} (User)` });
  }

  function listUsers(req, res, base, url) {
    const q = url.searchParams;
    let limit = q.has('limit') ? parseInt(q.get('limit'), 10) : 200;
    if (!Number.isFinite(limit) || limit < 1) limit = 200;
    if (limit > 200) limit = 200;
    let expr = null;
    const f = q.get('filter');
    if (f !== null) {
      try {
        expr = filter.parse(f);
      } catch (e) {
        return oktaError(res, 'E0000031');
      }
    }
    const after = q.get('after');
    let i = 0;
    if (after) {
      const pos = S.index.get(after);
      i = pos === undefined ? S.users.length : pos + 1;
    }
    const page = [];
    let more = false;
    for (; i < S.users.length; i++) {
      const u = S.users[i];
      const match = expr ? filter.evaluate(expr, u) : u.status !== 'DEPROVISIONED';
      if (!match) continue;
      if (page.length === limit) { more = true; break; }
      page.push(u);
    }
    const keep = new URLSearchParams();
    for (const [k, v] of q) if (k !== 'after') keep.append(k, v);
    const selfQs = keep.toString();
    const links = [`<${base}/api/v1/users${selfQs ? '?' + selfQs : ''}>; rel="self"`];
    if (more) {
      const next = new URLSearchParams(keep);
      next.set('after', page[page.length - 1].id);
      links.push(`<${base}/api/v1/users?${next.toString()}>; rel="next"`);
    }
    send(res, 200, page.map((u) => userJson(u, base, false)), { Link: links.join(', ') });
  }

  function lifecycle(req, res, base, url, u, op, now) {
    const s = u.status;
    const q = url.searchParams;
    switch (op) {
      case 'suspend':
        if (s !== 'ACTIVE') return oktaError(res, 'E0000001', { summary: 'Api validation failed: suspendUser', causes: ['Cannot suspend a user that is not active'] });
        setStatus(u, 'SUSPENDED', op, now);
        return send(res, 200, null);
      case 'unsuspend':
        if (s !== 'SUSPENDED') return oktaError(res, 'E0000001', { summary: 'Api validation failed: unsuspendUser', causes: ['Cannot unsuspend a user that is not suspended'] });
        setStatus(u, 'ACTIVE', op, now);
        return send(res, 200, null);
      case 'deactivate': {
        if (s === 'DEPROVISIONED' || u.transitioningToStatus === 'DEPROVISIONED') return oktaError(res, 'E0000038');
        const prefer = (req.headers.prefer || '').toLowerCase();
        if (prefer.split(/[,;]/).map((x) => x.trim()).includes('respond-async')) {
          u.transitioningToStatus = 'DEPROVISIONED';
          u.lastUpdated = now;
          const t = setTimeout(() => {
            S.pending.delete(t);
            if (u.transitioningToStatus === 'DEPROVISIONED') {
              u.transitioningToStatus = null;
              setStatus(u, 'DEPROVISIONED', 'deactivate(async)', Date.now());
            }
          }, S.config.async_deactivate_ms ?? 50);
          S.pending.add(t);
          return send(res, 200, null); // the spec lists 200 only; the transition completes later
        }
        setStatus(u, 'DEPROVISIONED', op, now);
        return send(res, 200, null);
      }
      case 'expire_password':
        if (!EXPIRABLE.has(s)) return oktaError(res, 'E0000038');
        if (s !== 'PASSWORD_EXPIRED') setStatus(u, 'PASSWORD_EXPIRED', op, now);
        else u.lastUpdated = now;
        return send(res, 200, userJson(u, base, true));
      case 'activate': {
        if (s === 'ACTIVE') return oktaError(res, 'E0000016');
        if (s !== 'STAGED' && s !== 'DEPROVISIONED') return oktaError(res, 'E0000038');
        setStatus(u, u.has_password ? 'ACTIVE' : 'PROVISIONED', op, now);
        return send(res, 200, activationBody(base, q.get('sendEmail') === 'false'));
      }
      case 'reactivate':
        if (s !== 'PROVISIONED' && s !== 'RECOVERY') return oktaError(res, 'E0000038');
        if (s === 'RECOVERY') setStatus(u, 'PROVISIONED', op, now);
        else u.lastUpdated = now;
        return send(res, 200, activationBody(base, q.get('sendEmail') !== 'true'));
      default:
        return notFound(res, url.pathname);
    }
  }

  function activationBody(base, withToken) {
    if (!withToken) return {};
    const t = rand(20);
    return { activationToken: t, activationUrl: `${base}/tokens/${t}/verify` };
  }

  async function risk(req, res, base, u, bodyText, now) {
    if (!S.config.risk_scoring) return oktaError(res, 'E0000015', { status: S.config.risk_disabled_status });
    const links = {
      self: { href: `${base}/api/v1/users/${u.id}/risk`, hints: { allow: ['GET', 'PUT'] } },
      user: { href: `${base}/api/v1/users/${u.id}`, hints: { allow: ['GET'] } },
    };
    if (req.method === 'GET') {
      if (!u.risk) return send(res, 200, { riskLevel: 'NONE', _links: links });
      return send(res, 200, { riskLevel: u.risk.level, reason: u.risk.reason, _links: links });
    }
    if (u.admin_protected) return oktaError(res, 'E0000006');
    let body;
    try {
      body = JSON.parse(bodyText);
    } catch {
      return oktaError(res, 'E0000003');
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) return oktaError(res, 'E0000003');
    const causes = [];
    if (body.riskLevel === undefined) causes.push('riskLevel: The field cannot be left blank');
    else if (!['HIGH', 'MEDIUM', 'LOW'].includes(body.riskLevel)) causes.push('riskLevel: Invalid value. Allowed values: HIGH, MEDIUM, LOW');
    if (body.riskReason !== undefined) {
      if (typeof body.riskReason !== 'string') causes.push('riskReason: The value must be a string');
      else if (body.riskReason.length > 500) causes.push('riskReason: The value exceeds the maximum length of 500 characters');
      else if (!/^[a-zA-Z0-9\s\-,.]*$/.test(body.riskReason)) causes.push('riskReason: Only alphanumeric characters, spaces, hyphens, commas, and periods are allowed');
    }
    if (causes.length) return oktaError(res, 'E0000001', { summary: 'Api validation failed: ' + causes.map((c) => c.split(':')[0]).join(', '), causes });
    const created = !u.risk;
    const reason = body.riskReason !== undefined && body.riskReason !== '' ? body.riskReason : 'override.by.admin';
    u.risk = { level: body.riskLevel, reason, at: now };
    u.history.push({ at: iso(now), op: 'risk', to: body.riskLevel, reason });
    return send(res, created ? 201 : 200, { riskLevel: u.risk.level, reason, _links: links });
  }

  async function handleApi(req, res, base, url, path, bodyText, auth) {
    const now = Date.now();
    if (path === '/api/v1/users') {
      if (req.method !== 'GET') return oktaError(res, 'E0000022');
      if (!auth(READ)) return;
      return listUsers(req, res, base, url);
    }
    const m = /^\/api\/v1\/users\/([^/]+)(?:\/(lifecycle)\/([^/]+)|\/(sessions|risk))?$/.exec(path);
    if (!m) return oktaError(res, 'E0000022', { status: 404, summary: `Not found: Resource not found: ${path} (Endpoint)` });
    let idOrLogin;
    try {
      idOrLogin = decodeURIComponent(m[1]);
    } catch {
      idOrLogin = m[1];
    }
    const sub = m[2] ? 'lifecycle' : m[4] || '';
    const method = req.method;
    const allowed = sub === '' ? ['GET'] : sub === 'lifecycle' ? ['POST'] : sub === 'sessions' ? ['DELETE'] : ['GET', 'PUT'];
    if (!allowed.includes(method)) return oktaError(res, 'E0000022');
    const scopes = sub === '' ? READ : sub === 'risk' ? (method === 'GET' ? RISK_READ : RISK_MANAGE) : MANAGE;
    if (!auth(scopes)) return;
    const u = sub === 'risk' ? S.byId.get(idOrLogin) : findUser(idOrLogin);
    if (!u) return notFound(res, idOrLogin);
    if (sub === '') return send(res, 200, userJson(u, base, true));
    if (sub === 'risk') return risk(req, res, base, u, bodyText, now);
    if (u.admin_protected) return oktaError(res, 'E0000006');
    if (sub === 'sessions') {
      const q = url.searchParams;
      u.sessions_cleared_at = now;
      u.oauth_tokens_revoked = q.get('oauthTokens') === 'true';
      u.forget_devices = q.has('forgetDevices') ? q.get('forgetDevices') === 'true' : true;
      u.sessions_revocations++;
      u.history.push({ at: iso(now), op: 'revoke_sessions', oauthTokens: u.oauth_tokens_revoked });
      return send(res, 204, null);
    }
    return lifecycle(req, res, base, url, u, m[3], now);
  }

  // ------------------------------------------------------------ control ---
  async function handleControl(req, res, path, bodyText) {
    const json = () => {
      if (!bodyText) return {};
      return JSON.parse(bodyText);
    };
    const bad = (msg) => send(res, 400, { error: msg });
    const method = req.method;
    try {
      if (path === '/_emulator/reset' && method === 'POST') {
        for (const t of S.pending) clearTimeout(t);
        const port = S.port;
        reset();
        S.port = port;
        return send(res, 200, { ok: true });
      }
      if (path === '/_emulator/tokens' && method === 'POST') {
        const b = json();
        if (typeof b.token !== 'string' || !b.token) return bad('token required');
        S.ssws.set(b.token, { token: b.token });
        return send(res, 201, { token: b.token });
      }
      if (path === '/_emulator/tokens/expire' && method === 'POST') {
        const n = S.access.size;
        for (const t of S.access.values()) t.exp = 0;
        return send(res, 200, { expired: n });
      }
      if (path === '/_emulator/apps' && method === 'POST') {
        const b = json();
        if (typeof b.client_id !== 'string' || !b.client_id) return bad('client_id required');
        let keys;
        try {
          keys = jwt.loadKeys(b);
        } catch (e) {
          return bad('bad key: ' + e.message);
        }
        S.apps.set(b.client_id, { client_id: b.client_id, keys, scopes: Array.isArray(b.scopes) ? b.scopes : [],
          token_lifetime_s: Number(b.token_lifetime_s) > 0 ? Number(b.token_lifetime_s) : 3600 });
        return send(res, 201, { client_id: b.client_id, keys: keys.length });
      }
      if (path === '/_emulator/users' && method === 'POST') {
        const b = json();
        const list = Array.isArray(b.users) ? b.users : null;
        if (!list) return bad('users[] required');
        const now = Date.now();
        const ids = [];
        for (const spec of list) ids.push(seedUser(spec, now).id);
        return send(res, 201, { created: ids.length, ids });
      }
      if (path === '/_emulator/users' && method === 'GET') {
        return send(res, 200, { count: S.users.length });
      }
      const um = /^\/_emulator\/users\/([^/]+)$/.exec(path);
      if (um) {
        const u = findUser(decodeURIComponent(um[1]));
        if (!u) return send(res, 404, { error: 'no such user' });
        if (method === 'GET') return send(res, 200, stateJson(u));
        if (method === 'PATCH') {
          const b = json();
          const now = Date.now();
          if (b.status !== undefined) {
            if (!STATUSES.has(b.status)) return bad('bad status');
            setStatus(u, b.status, 'emulator', now);
          }
          if (b.admin_protected !== undefined) u.admin_protected = !!b.admin_protected;
          if (b.profile) Object.assign(u.profile, b.profile);
          if (b.lastLogin !== undefined) u.lastLogin = b.lastLogin === null ? null : Date.parse(b.lastLogin);
          u.lastUpdated = b.lastUpdated !== undefined ? Date.parse(b.lastUpdated) : now;
          return send(res, 200, stateJson(u));
        }
      }
      if (path === '/_emulator/config') {
        if (method === 'PUT' || method === 'PATCH') {
          const b = json();
          const c = S.config;
          if (b.risk_scoring !== undefined) c.risk_scoring = !!b.risk_scoring;
          if (b.risk_disabled_status !== undefined) c.risk_disabled_status = Number(b.risk_disabled_status);
          if (b.public_url !== undefined) c.public_url = b.public_url ? String(b.public_url).replace(/\/+$/, '') : null;
          if (b.latency_ms !== undefined) c.latency_ms = Number(b.latency_ms);
          if (b.max_concurrency !== undefined) c.max_concurrency = Number(b.max_concurrency);
          if (b.async_deactivate_ms !== undefined) c.async_deactivate_ms = Number(b.async_deactivate_ms);
          const setB = (name, lim, win) => {
            if (lim !== undefined) c.buckets[name].limit = Number(lim);
            if (win !== undefined) c.buckets[name].window_s = Number(win);
          };
          if (b.rate_limit !== undefined || b.rate_window_s !== undefined) {
            setB('users', b.rate_limit, b.rate_window_s);
            setB('other', b.rate_limit, b.rate_window_s);
            if (b.token_rate_limit === undefined && b.token_rate_window_s === undefined) setB('token', b.rate_limit, b.rate_window_s);
          }
          if (b.token_rate_limit !== undefined || b.token_rate_window_s !== undefined) setB('token', b.token_rate_limit, b.token_rate_window_s);
          if (b.buckets) for (const [k, v] of Object.entries(b.buckets)) if (c.buckets[k]) setB(k, v.limit, v.window_s);
          S.windows.clear();
          return send(res, 200, c);
        }
        if (method === 'GET') return send(res, 200, S.config);
      }
      if (path === '/_emulator/faults') {
        if (method === 'POST') {
          const b = json();
          let re;
          try {
            re = new RegExp(b.path_regex || '.*');
          } catch {
            return bad('bad path_regex');
          }
          const num = (v) => (v === undefined || v === null ? null : Number(v));
          const mangles = b.cut_at !== undefined || b.truncate_at !== undefined || !!b.content_type;
          const fault = { id: S.faults.length + 1 + '-' + rand(4), path_regex: b.path_regex || '.*', re,
            method: b.method ? String(b.method).toUpperCase() : null,
            status: b.status !== undefined ? Number(b.status) : (b.delay_ms || b.drop || mangles ? null : 500),
            delay_ms: Number(b.delay_ms) || 0, drop: !!b.drop,
            cut_at: num(b.cut_at), truncate_at: num(b.truncate_at), content_type: b.content_type || null,
            count: b.count === undefined ? 1 : Number(b.count), hits: 0 };
          S.faults.push(fault);
          const { re: _re, ...shown } = fault;
          return send(res, 201, shown);
        }
        if (method === 'GET') return send(res, 200, S.faults.map(({ re, ...f }) => f));
        if (method === 'DELETE') { S.faults = []; return send(res, 200, { ok: true }); }
      }
      if (path === '/_emulator/stats' && method === 'GET') {
        return send(res, 200, Object.assign({}, S.stats, { inflight: S.inflight - 0 }));
      }
      return send(res, 404, { error: 'unknown control endpoint' });
    } catch (e) {
      if (e instanceof SyntaxError) return bad('invalid JSON');
      return bad(e.message);
    }
  }

  // ------------------------------------------------------------ dispatch --
  async function onRequest(req, res) {
    const t0 = Date.now();
    let url;
    try {
      url = new URL(req.url, 'http://x');
    } catch {
      res.writeHead(400);
      return res.end();
    }
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    const requestId = rand(27);
    res.setHeader('X-Okta-Request-Id', requestId);

    if (path.startsWith('/_emulator/')) {
      let body = '';
      try {
        body = await readBody(req, 256 * 1024 * 1024);
      } catch {
        return;
      }
      await handleControl(req, res, path, body);
      return;
    }

    S.stats.requests++;
    S.inflight++;
    if (S.inflight > S.stats.max_concurrent) S.stats.max_concurrent = S.inflight;
    let done = false;
    let authKind = null;
    const finish = () => {
      if (done) return;
      done = true;
      S.inflight--;
      record(req, res, path, t0, authKind);
    };
    res.on('finish', finish);
    res.on('close', finish);

    const now = Date.now();
    const base = baseUrl(req);
    const bucket = bucketOf(path);
    const rate = takeRate(bucket, now);

    // Concurrency: Okta reports the concurrent values in the X-Rate-Limit-*
    // headers on the answers that exceed the concurrent limit.
    if (S.inflight > S.config.max_concurrency) {
      S.stats.concurrency_limited++;
      S.stats.rate_limited++;
      req.resume();
      return oktaError(res, 'E0000047', { headers: {
        'X-Rate-Limit-Limit': String(S.config.max_concurrency),
        'X-Rate-Limit-Remaining': '0',
        'X-Rate-Limit-Reset': String(Math.ceil(now / 1000) + 1),
      } });
    }
    for (const [k, v] of Object.entries(rate.headers)) res.setHeader(k, v);
    if (rate.limited) {
      S.stats.rate_limited++;
      req.resume();
      return oktaError(res, 'E0000047');
    }

    let body = '';
    try {
      body = await readBody(req, 8 * 1024 * 1024);
    } catch (e) {
      if (e.tooLarge) return oktaError(res, 'E0000003');
      return;
    }

    // Faults, first match wins.
    const fi = S.faults.findIndex((f) => f.count > 0 && f.re.test(path) && (!f.method || f.method === req.method));
    if (fi >= 0) {
      const f = S.faults[fi];
      f.count--;
      f.hits++;
      if (f.count <= 0) S.faults.splice(fi, 1);
      if (f.delay_ms) await sleep(f.delay_ms);
      if (f.drop) {
        req.socket.destroy();
        return;
      }
      // The real answer, mangled on its way out (send).
      if (f.cut_at !== null || f.truncate_at !== null || f.content_type) res.mangle = f;
      if (f.status) {
        if (f.status === 429) return oktaError(res, 'E0000047');
        if (f.status >= 500) return oktaError(res, 'E0000009', { status: f.status });
        return send(res, f.status, { errorCode: 'E0000009', errorSummary: 'Injected fault', errorLink: 'E0000009',
          errorId: 'oae' + rand(22), errorCauses: [] });
      }
    }

    if (S.config.latency_ms > 0) await sleep(S.config.latency_ms);
    if (res.destroyed) return;

    if (path === '/oauth2/v1/token') {
      authKind = 'client_assertion';
      return handleToken(req, res, base, body);
    }
    if (path === '/api/v1/users' || path.startsWith('/api/v1/users/')) {
      const auth = (scopes) => {
        const a = authenticate(req, res, base, path, scopes);
        if (a) authKind = a.kind;
        return a;
      };
      return handleApi(req, res, base, url, path, body, auth);
    }
    return oktaError(res, 'E0000007', { summary: `Not found: Resource not found: ${path} (Endpoint)` });
  }

  const server = http.createServer((req, res) => {
    onRequest(req, res).catch((e) => {
      process.stderr.write(`okta emulator: ${e && e.stack ? e.stack : e}\n`);
      if (!res.headersSent) oktaError(res, 'E0000009');
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 30000;

  return {
    server,
    state: S,
    listen(port = start.port, host = start.host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          S.port = server.address().port;
          resolve(S.port);
        });
      });
    },
    close() {
      for (const t of S.pending) clearTimeout(t);
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

const STATUSES = new Set(['STAGED', 'PROVISIONED', 'ACTIVE', 'RECOVERY', 'PASSWORD_EXPIRED', 'LOCKED_OUT', 'SUSPENDED', 'DEPROVISIONED']);
const EXPIRABLE = new Set(['ACTIVE', 'PASSWORD_EXPIRED', 'LOCKED_OUT', 'RECOVERY']);

module.exports = { createEmulator, parseArgs };

if (require.main === module) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(e.message + '\n');
    process.exit(2);
  }
  const emu = createEmulator(opts);
  emu.listen(opts.port, opts.host).then((port) => {
    process.stdout.write(`listening on ${port}\n`);
  }, (e) => {
    process.stderr.write(`okta emulator: ${e.message}\n`);
    process.exit(1);
  });
  const stop = () => emu.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
