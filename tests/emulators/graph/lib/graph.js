'use strict';
// Microsoft Graph v1.0: the users and identityProtection/riskyUsers calls quell uses.
const { graphDate, isoSeconds } = require('./util');
const USER_PROPS = require('./user-properties');

const PROP_BY_LOWER = new Map(Object.keys(USER_PROPS).map((k) => [k.toLowerCase(), k]));
// Properties Graph v1.0 returns for a user when no $select is given (user-list / user-get docs).
// accountEnabled is NOT among them: callers must $select it.
const DEFAULT_SELECT = ['businessPhones', 'displayName', 'givenName', 'jobTitle', 'mail', 'mobilePhone',
  'officeLocation', 'preferredLanguage', 'surname', 'userPrincipalName', 'id'];
const COLLECTION_DEFAULT = { businessPhones: [] };
const DEFAULT_PAGE = 100;
const RISKY_BATCH_MAX = 60; // beta riskyUsers-dismiss page: "The maximum count of users to dismiss in one call is 60."

const SYNCED_MSG = 'Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.';

class GraphError extends Error {
  constructor(status, code, message, headers) {
    super(message);
    this.status = status; this.code = code; this.headers = headers || {};
  }
}

const notFound = (id) => new GraphError(404, 'Request_ResourceNotFound',
  `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`);
const denied = () => new GraphError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');

function errorBody(status, code, message, ctx) {
  const inner = { date: graphDate(), 'request-id': ctx.requestId, 'client-request-id': ctx.clientRequestId };
  if (status === 429) { inner.code = '429'; inner.status = '429'; inner.message = 'Please retry after'; }
  return { error: { code, message, innerError: inner } };
}

// ---- routing -------------------------------------------------------------------------

const ROUTES = [
  { method: 'GET', re: /^\/v1\.0\/users\/?$/i, template: '/v1.0/users', handler: listUsers },
  { method: 'GET', re: /^\/v1\.0\/users\/(?:microsoft\.graph\.)?delta(?:\(\))?\/?$/i, template: '/v1.0/users/delta',
    handler: deltaUsers },
  { method: 'GET', re: /^\/v1\.0\/users\/([^/]+)\/?$/i, template: '/v1.0/users/{id}', handler: getUser },
  { method: 'PATCH', re: /^\/v1\.0\/users\/([^/]+)\/?$/i, template: '/v1.0/users/{id}', handler: patchUser, write: true },
  { method: 'POST', re: /^\/v1\.0\/users\/([^/]+)\/(?:microsoft\.graph\.)?revokeSignInSessions\/?$/i,
    template: '/v1.0/users/{id}/revokeSignInSessions', handler: revokeSessions, write: true },
  { method: 'POST', re: /^\/v1\.0\/identityProtection\/riskyUsers\/(?:microsoft\.graph\.)?confirmCompromised\/?$/i,
    template: '/v1.0/identityProtection/riskyUsers/confirmCompromised', handler: (c) => riskAction(c, 'confirm'), ip: true },
  { method: 'POST', re: /^\/v1\.0\/identityProtection\/riskyUsers\/(?:microsoft\.graph\.)?dismiss\/?$/i,
    template: '/v1.0/identityProtection/riskyUsers/dismiss', handler: (c) => riskAction(c, 'dismiss'), ip: true },
  { method: 'GET', re: /^\/v1\.0\/identityProtection\/riskyUsers\/([^/]+)\/?$/i,
    template: '/v1.0/identityProtection/riskyUsers/{id}', handler: getRiskyUser, ip: true },
];

function route(method, pathname) {
  let pathMatched = null;
  for (const r of ROUTES) {
    const m = r.re.exec(pathname);
    if (!m) continue;
    if (r.method === method) return { r, params: m.slice(1).map(decodeURIComponent) };
    pathMatched = r;
  }
  return { r: null, pathMatched };
}

// ---- helpers -------------------------------------------------------------------------

function baseUrl(state, req) {
  if (state.config.graph_base_url) return state.config.graph_base_url.replace(/\/+$/, '');
  const proto = (req.headers['x-forwarded-proto'] || 'http').split(',')[0].trim();
  const host = (req.headers['x-forwarded-host'] || req.headers.host || '127.0.0.1').split(',')[0].trim();
  return `${proto}://${host}/v1.0`;
}

function parseSelect(raw) {
  if (raw == null) return null;
  const out = [];
  for (const p of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const canon = PROP_BY_LOWER.get(p.toLowerCase());
    if (!canon) {
      throw new GraphError(400, 'BadRequest', `Could not find a property named '${p}' on type 'microsoft.graph.user'.`);
    }
    if (!out.includes(canon)) out.push(canon);
  }
  return out.length ? out : null;
}

function project(u, select) {
  const o = {};
  for (const p of select || DEFAULT_SELECT) {
    o[p] = p in u ? u[p] : (p in COLLECTION_DEFAULT ? [...COLLECTION_DEFAULT[p]] : null);
  }
  return o;
}

function contextUrl(base, select, suffix = '') {
  return select ? `${base}/$metadata#users(${select.join(',')})${suffix}` : `${base}/$metadata#users${suffix}`;
}

// Minimal $filter: "<prop> eq '<string>'" or "<prop> eq true|false|null", joined by " and ".
function parseFilter(raw) {
  if (raw == null || raw.trim() === '') return null;
  const clauses = raw.split(/\s+and\s+/i).map((c) => {
    const m = /^\s*([A-Za-z]+)\s+eq\s+('(?:[^']|'')*'|true|false|null)\s*$/.exec(c);
    if (!m) throw new GraphError(400, 'Request_UnsupportedQuery', 'Unsupported Query.');
    const prop = PROP_BY_LOWER.get(m[1].toLowerCase());
    if (!prop) throw new GraphError(400, 'BadRequest', `Could not find a property named '${m[1]}' on type 'microsoft.graph.user'.`);
    let v = m[2];
    if (v === 'true') v = true; else if (v === 'false') v = false; else if (v === 'null') v = null;
    else v = v.slice(1, -1).replace(/''/g, "'");
    return { prop, v };
  });
  return (u) => clauses.every(({ prop, v }) => {
    const x = u[prop] === undefined ? null : u[prop];
    return typeof x === 'string' && typeof v === 'string' ? x.toLowerCase() === v.toLowerCase() : x === v;
  });
}

function parseJson(buf) {
  if (!buf || buf.length === 0) return undefined;
  try { return JSON.parse(buf.toString('utf8')); } catch {
    throw new GraphError(400, 'BadRequest', 'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.');
  }
}

// ---- handlers ------------------------------------------------------------------------

function listUsers(c) {
  const { state, query, tenant } = c;
  const t = state.tenant(tenant, true);
  let skip = 0;
  let top = DEFAULT_PAGE;
  let selectRaw = query.get('$select');
  let filterRaw = query.get('$filter');
  const tokenRaw = query.get('$skiptoken');
  if (tokenRaw != null) {
    let tok;
    try { tok = JSON.parse(Buffer.from(tokenRaw, 'base64url').toString('utf8')); } catch { tok = null; }
    if (!tok || typeof tok.o !== 'number' || tok.v !== 1) {
      throw new GraphError(400, 'Request_BadRequest', 'Invalid value for $skiptoken.');
    }
    skip = tok.o; top = tok.t; selectRaw = tok.s ?? selectRaw; filterRaw = tok.f ?? filterRaw;
  }
  const topRaw = query.get('$top');
  if (topRaw != null) {
    const n = /^-?\d+$/.test(topRaw.trim()) ? Number(topRaw) : NaN;
    const max = state.config.page_max;
    if (!Number.isInteger(n) || n < 1 || n > max) {
      throw new GraphError(400, 'Request_UnsupportedQuery', `Invalid page size specified: '${topRaw}'. Must be between 1 and ${max} inclusive.`);
    }
    top = n;
  }
  const select = parseSelect(selectRaw);
  const filter = parseFilter(filterRaw);
  const base = baseUrl(state, c.req);
  const value = [];
  let i = skip;
  const order = t.order;
  while (i < order.length && value.length < top) {
    const u = t.users.get(order[i++]);
    if (!u || (filter && !filter(u))) continue;
    value.push(project(u, select));
  }
  // skip over trailing non-matching users so the last page has no nextLink
  if (filter) while (i < order.length && !filter(t.users.get(order[i]))) i++;
  const body = { '@odata.context': contextUrl(base, select) };
  if (query.get('$count') === 'true' && /^eventual$/i.test(c.req.headers.consistencylevel || '')) {
    body['@odata.count'] = filter ? order.filter((id) => filter(t.users.get(id))).length : order.length;
  }
  if (i < order.length) {
    const tok = Buffer.from(JSON.stringify({ v: 1, o: i, t: top, s: selectRaw ?? undefined, f: filterRaw ?? undefined })).toString('base64url');
    const qs = [];
    if (selectRaw != null) qs.push(`$select=${encodeURIComponent(selectRaw).replace(/%2C/gi, ',')}`);
    if (topRaw != null || tokenRaw != null) qs.push(`$top=${top}`);
    if (filterRaw != null) qs.push(`$filter=${encodeURIComponent(filterRaw)}`);
    qs.push(`$skiptoken=${tok}`);
    body['@odata.nextLink'] = `${base}/users?${qs.join('&')}`;
  }
  body.value = value;
  return { status: 200, body };
}

// ---- delta (user-delta reference: the first round lists every user, then a deltaLink; following
// it returns the users changed since, with all selected properties, and deleted ones as
// {"id", "@removed": {"reason": "changed"}}). Changes are ordered by a per-tenant sequence
// number each write takes (state.js touch()).

const DELTA_PAGE_DEFAULT = 200;

function deltaToken(raw, name) {
  let tok;
  try { tok = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')); } catch { tok = null; }
  if (!tok || tok.v !== 1 || typeof tok.s !== 'number') {
    throw new GraphError(400, 'Request_BadRequest', `Invalid value for ${name}.`);
  }
  return tok;
}

function maxPageSize(req) {
  const m = /odata\.maxpagesize=(\d+)/i.exec(String(req.headers.prefer || ''));
  return m ? Math.min(Math.max(Number(m[1]), 1), 999) : DELTA_PAGE_DEFAULT;
}

function deltaUsers(c) {
  const { state, query, tenant } = c;
  const t = state.tenant(tenant, true);
  let cur = { v: 1, s: -1, o: 0, top: t.seq, sel: query.get('$select') ?? undefined };
  if (query.get('$skiptoken') != null) cur = deltaToken(query.get('$skiptoken'), '$skiptoken');
  else if (query.get('$deltatoken') != null) {
    const d = deltaToken(query.get('$deltatoken'), '$deltatoken');
    if (d.s > t.seq) throw new GraphError(410, 'SyncStateNotFound', 'The sync state was not found; start a new round.');
    cur = { v: 1, s: d.s, o: 0, top: t.seq, sel: d.sel };
  }
  const select = parseSelect(cur.sel ?? null);
  const base = baseUrl(state, c.req);
  // the round's changes: every user on the first round, else those written after s
  const items = cur.s < 0 ? t.order.map((id) => t.users.get(id)).filter(Boolean)
    : [...t.users.values()].filter((u) => u._seq > cur.s).sort((a, b) => a._seq - b._seq);
  const gone = cur.s < 0 ? [] : t.removed.filter((r) => r.seq > cur.s);
  const all = items.length + gone.length;
  const size = maxPageSize(c.req);
  const value = [];
  for (let i = cur.o; i < all && value.length < size; i++) {
    if (i < items.length) value.push({ ...project(items[i], select), id: items[i].id });
    else value.push({ id: gone[i - items.length].id, '@removed': { reason: 'changed' } });
  }
  const body = { '@odata.context': contextUrl(base, select) };
  const qs = (tok, name) => `${base}/users/delta?${name}=${Buffer.from(JSON.stringify(tok)).toString('base64url')}`;
  if (cur.o + value.length < all) body['@odata.nextLink'] = qs({ ...cur, o: cur.o + value.length }, '$skiptoken');
  else body['@odata.deltaLink'] = qs({ v: 1, s: cur.top, sel: cur.sel }, '$deltatoken');
  body.value = value;
  return { status: 200, body };
}

function getUser(c) {
  const u = c.state.findUser(c.tenant, c.params[0]);
  if (!u) throw notFound(c.params[0]);
  const select = parseSelect(c.query.get('$select'));
  const base = baseUrl(c.state, c.req);
  return { status: 200, body: { '@odata.context': contextUrl(base, select, '/$entity'), ...project(u, select) } };
}

const WRITABLE = new Set(['accountEnabled', 'displayName', 'givenName', 'surname', 'jobTitle', 'mail',
  'mobilePhone', 'officeLocation', 'department', 'usageLocation']);

function patchUser(c) {
  const u = c.state.findUser(c.tenant, c.params[0]);
  if (!u) throw notFound(c.params[0]);
  const body = parseJson(c.body);
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new GraphError(400, 'BadRequest', 'Empty Payload. JSON content expected.');
  }
  const updates = {};
  for (const [k, v] of Object.entries(body)) {
    if (k.startsWith('@')) continue; // instance annotations such as @odata.type
    const prop = PROP_BY_LOWER.get(k.toLowerCase());
    if (!prop) {
      throw new GraphError(400, 'Request_BadRequest', `Invalid property '${k}'.`);
    }
    const type = USER_PROPS[prop];
    if (type === 'Edm.Boolean' && typeof v !== 'boolean') {
      if (v === null) throw new GraphError(400, 'Request_BadRequest', `Invalid value specified for property '${prop}' of resource 'User'.`);
      throw new GraphError(400, 'BadRequest', `Cannot convert the literal '${typeof v === 'string' ? v : JSON.stringify(v)}' to the expected type 'Edm.Boolean'.`);
    }
    if (type === 'Edm.String' && v !== null && typeof v !== 'string') {
      throw new GraphError(400, 'BadRequest', `Cannot convert the literal '${JSON.stringify(v)}' to the expected type 'Edm.String'.`);
    }
    if (!WRITABLE.has(prop)) {
      throw new GraphError(400, 'Request_BadRequest', `Property '${prop}' is read-only and cannot be set.`);
    }
    updates[prop] = v;
  }
  // A synced user's profile is mastered on-premises, but blocking sign-in in the cloud
  // is accepted; the next directory sync overwrites it from AD (the project's model of
  // hybrid accounts: Entra's change is immediate, AD's is the lasting one).
  if (u.onPremisesSyncEnabled === true &&
      Object.keys(updates).some((k) => k !== 'usageLocation' && k !== 'accountEnabled')) {
    throw new GraphError(400, 'Request_BadRequest', SYNCED_MSG);
  }
  if (u._privileged && 'accountEnabled' in updates) throw denied();
  Object.assign(u, updates);
  c.state.touch(c.tenant, u);
  return { status: 204 };
}

function revokeSessions(c) {
  const u = c.state.findUser(c.tenant, c.params[0]);
  if (!u) throw notFound(c.params[0]);
  if (u._privileged) throw denied();
  u.signInSessionsValidFromDateTime = isoSeconds();
  u._revocations = (u._revocations || 0) + 1;
  return { status: 200, body: { '@odata.context': `${baseUrl(c.state, c.req)}/$metadata#Edm.Boolean`, value: true } };
}

function riskAction(c, kind) {
  const body = parseJson(c.body);
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new GraphError(400, 'BadRequest', 'Empty Payload. JSON content expected.');
  }
  const ids = body.userIds;
  if (!Array.isArray(ids) || ids.some((x) => typeof x !== 'string')) {
    throw new GraphError(400, 'BadRequest', "Invalid value for parameter 'userIds': a collection of strings is required.");
  }
  if (ids.length === 0) throw new GraphError(400, 'BadRequest', "Parameter 'userIds' must contain at least one user id.");
  if (ids.length > c.state.config.risky_batch_max) {
    throw new GraphError(400, 'BadRequest', `The maximum count of users in one call is ${c.state.config.risky_batch_max}; ${ids.length} were given.`);
  }
  c.userIds = ids;
  const now = isoSeconds();
  for (const id of ids) {
    const u = c.state.findUser(c.tenant, id);
    if (!u) continue; // unknown ids are ignored (204), see README
    if (kind === 'confirm') {
      u.riskState = 'confirmedCompromised'; u.riskLevel = 'high'; u.riskDetail = 'adminConfirmedUserCompromised';
    } else {
      u.riskState = 'dismissed'; u.riskLevel = 'none'; u.riskDetail = 'adminDismissedAllRiskForUser';
    }
    u.riskLastUpdatedDateTime = now;
  }
  return { status: 204 };
}

function getRiskyUser(c) {
  const id = c.params[0];
  const t = c.state.tenant(c.tenant);
  const u = t && t.users.get(id);
  if (!u || !u.riskLastUpdatedDateTime) throw notFound(id);
  return {
    status: 200,
    body: {
      '@odata.context': `${baseUrl(c.state, c.req)}/$metadata#identityProtection/riskyUsers/$entity`,
      id: u.id,
      isDeleted: false,
      isProcessing: false,
      riskLastUpdatedDateTime: u.riskLastUpdatedDateTime,
      riskLevel: u.riskLevel || 'none',
      riskState: u.riskState || 'none',
      riskDetail: u.riskDetail || 'none',
      userDisplayName: u.displayName ?? null,
      userPrincipalName: u.userPrincipalName ?? null,
    },
  };
}

module.exports = { route, errorBody, GraphError, DEFAULT_SELECT, RISKY_BATCH_MAX, parseJson };
