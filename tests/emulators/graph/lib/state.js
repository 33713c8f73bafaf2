'use strict';
// All in-memory state of one emulator process: tenants (apps, users), issued tokens,
// throttling windows, injected faults, configuration and statistics.
const crypto = require('crypto');

const RECENT_MAX = 2000;

class SlidingWindow {
  // Counts events in the last windowMs; times kept in a ring so 3000-event windows stay cheap.
  constructor() { this.times = []; this.head = 0; }
  prune(now, windowMs) {
    while (this.head < this.times.length && this.times[this.head] <= now - windowMs) this.head++;
    if (this.head > 4096 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
  }
  count(now, windowMs) { this.prune(now, windowMs); return this.times.length - this.head; }
  oldest() { return this.times[this.head]; }
  add(now) { this.times.push(now); }
}

class State {
  constructor(defaults) {
    this.defaults = { ...defaults };
    this.tokenKey = crypto.randomBytes(32); // signs the emulator's access tokens
    this.reset();
  }

  reset() {
    this.config = { ...this.defaults };
    this.tenants = new Map();     // tenant -> { name, apps: Map, users: Map, upn: Map, order: [], token_lifetime_s }
    this.tokens = new Map();      // jti -> { tenant, client_id, exp (ms), revoked }
    this.expiredBefore = 0;       // tokens whose issue sequence number is <= this count as expired
    this.faults = [];
    this.nextFaultId = 1;
    this.writeWindows = new Map(); // `${tenant}\n${client_id}` -> SlidingWindow
    this.ipWindows = new Map();    // tenant -> SlidingWindow
    this.resetStats();
  }

  resetStats() {
    this.stats = {
      started: new Date().toISOString(),
      requests: {},            // "METHOD template" -> count
      statuses: {},            // "METHOD template" -> { status: count }
      throttled: { write: 0, identity_protection: 0, fault: 0, total: 0 },
      faults_applied: 0,
      token_requests: { ok: 0, failed: 0, by_error_code: {} },
      recent: [],
    };
  }

  tenant(name, create = false) {
    let t = this.tenants.get(name);
    if (!t && create) {
      t = { name, apps: new Map(), users: new Map(), upn: new Map(), order: [], token_lifetime_s: null,
        seq: 0, removed: [] }; // seq orders writes for /users/delta; removed: deleted users' {id, seq}
      this.tenants.set(name, t);
    }
    return t;
  }

  findUser(tenant, key) {
    const t = this.tenant(tenant);
    if (!t) return null;
    let u = t.users.get(key);
    if (!u) {
      const id = t.upn.get(String(key).toLowerCase());
      if (id) u = t.users.get(id);
    }
    if (!u) {
      // object ids are GUIDs: Graph matches them case-insensitively
      const lower = String(key).toLowerCase();
      if (lower !== key) u = t.users.get(lower);
    }
    return u || null;
  }

  // A write to u: later delta rounds report it.
  touch(tenant, u) {
    const t = this.tenant(tenant, true);
    u._seq = ++t.seq;
  }

  deleteUser(tenant, key) {
    const t = this.tenant(tenant);
    const u = t && this.findUser(tenant, key);
    if (!u) return false;
    t.users.delete(u.id);
    if (u.userPrincipalName) t.upn.delete(String(u.userPrincipalName).toLowerCase());
    t.order = t.order.filter((id) => id !== u.id);
    t.removed.push({ id: u.id, seq: ++t.seq });
    return true;
  }

  writeWindow(tenant, clientId) {
    const k = `${tenant}\n${clientId}`;
    let w = this.writeWindows.get(k);
    if (!w) { w = new SlidingWindow(); this.writeWindows.set(k, w); }
    return w;
  }

  ipWindow(tenant) {
    let w = this.ipWindows.get(tenant);
    if (!w) { w = new SlidingWindow(); this.ipWindows.set(tenant, w); }
    return w;
  }

  // First pending fault matching this call, or null. Consumes one use.
  takeFault(method, path) {
    for (const f of this.faults) {
      if (f.remaining <= 0) continue;
      if (f.method && f.method !== method) continue;
      if (!f.re.test(path)) continue;
      f.remaining--;
      f.applied++;
      this.stats.faults_applied++;
      return f;
    }
    return null;
  }

  record(method, template, status, req, extra) {
    const key = `${method} ${template}`;
    this.stats.requests[key] = (this.stats.requests[key] || 0) + 1;
    const s = this.stats.statuses[key] || (this.stats.statuses[key] = {});
    s[status] = (s[status] || 0) + 1;
    const r = this.stats.recent;
    r.push({
      time: new Date().toISOString(),
      method,
      path: req.url,
      template,
      status,
      client_request_id: req.headers['client-request-id'] || null,
      request_id: extra.requestId,
      tenant: extra.tenant || null,
      user_ids: extra.userIds,
      retry_after: extra.retryAfter,
    });
    if (r.length > RECENT_MAX) r.splice(0, r.length - RECENT_MAX);
  }
}

module.exports = { State, SlidingWindow };
