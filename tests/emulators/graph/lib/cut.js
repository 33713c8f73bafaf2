'use strict';
// Answers mangled on their way out, for the fault suite (tests/fault/test_cuts.c): the
// Graph and SCIM emulators' faults take the Okta emulator's cut_at / truncate_at /
// content_type.

// The mangling members of a fault's JSON body, or an error naming the member.
function parseMangle(body) {
  const m = { cut_at: null, truncate_at: null, content_type: null };
  for (const k of ['cut_at', 'truncate_at']) {
    if (body[k] === undefined || body[k] === null) continue;
    if (!Number.isInteger(body[k]) || body[k] < 0) return { error: `${k} must be a byte offset (an integer from 0)` };
    m[k] = body[k];
  }
  if (m.cut_at !== null && m.truncate_at !== null) return { error: 'cut_at and truncate_at exclude each other' };
  if (body.content_type !== undefined && body.content_type !== null) {
    if (typeof body.content_type !== 'string' || !body.content_type) return { error: 'content_type must be a media type' };
    m.content_type = body.content_type;
  }
  return { mangle: m.cut_at !== null || m.truncate_at !== null || m.content_type ? m : null };
}

// cut_at sends the first K bytes of the answer under its full Content-Length and drops
// the connection (a transfer cut short); truncate_at sends them as the whole,
// well-framed answer (a short body); content_type replaces the answer's type.
function sendMangled(res, status, headers, payload, m) {
  const full = payload || Buffer.alloc(0);
  const h = { ...headers };
  if (m.content_type) h['Content-Type'] = m.content_type;
  const at = m.cut_at !== null ? m.cut_at : m.truncate_at;
  if (at === null) {
    h['Content-Length'] = full.length;
    res.writeHead(status, h);
    res.end(full);
    return;
  }
  const k = Math.min(full.length, at);
  h['Content-Length'] = m.cut_at !== null ? full.length : k;
  res.writeHead(status, h);
  if (m.cut_at === null) {
    res.end(full.subarray(0, k));
    return;
  }
  res.write(full.subarray(0, k), () => res.destroy());
}

module.exports = { parseMangle, sendMangled };
