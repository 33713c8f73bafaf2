// An SSF peer for tests/e2e/test_ssf.py, written with jose (tests/contract's pinned
// copy): as a receiver it verifies every SET quell pushes against quell's jwks_uri
// (signature, typ, iss, aud, claims) and can be "down" (503) for a while; as a
// transmitter it signs SETs with its own P-256 key and serves that key's JWK Set.
// Usage: node ssf_peer.mjs <quell issuer> <audience quell puts in its SETs>
// Prints {"port": N} once listening. Control endpoints (JSON):
//   GET  /received           the SETs pushed so far, in arrival order (verified claims)
//   POST /down {"down":bool} answer pushes with 503 (true) or take them again
//   POST /verify {"set": "<jwt>"}  verifies a SET quell served by poll: {claims}|{error}
//   GET  /jwks.json          the transmitter's public keys
//   POST /sign {"claims":{}, "forge":bool}  a SET signed by the transmitter's key, or
//                            (forge) by another key under the same kid
//   GET  /.well-known/ssf-configuration, GET|POST /stream  the transmitter's metadata
//                            and stream management (bearer "peer-api-token"): quell
//                            subscribes there
//   GET  /streams            the streams receivers made (made_with: 'static' or 'oauth')
//   POST /token              OAuth client credentials (client quell-client, secret
//                            peer-secret): an access token for the stream API
//   GET  /grants             the token requests: [{client_id, scope, ok}]
//   POST /poll/<stream>      RFC 8936 for a poll stream (the stream API's auth):
//                            ack and setErrs, then up to maxEvents SETs
//   GET  /polled             {acks: [jti], errs: {jti: {err, description}}} received
//   POST /emit               ... for a poll stream: queued ({status: 'queued'})
//   POST /emit {"claims":{}} signs and pushes the SET to every stream, with the
//                            stream's authorization header: [{status, body}]
import http from 'node:http';
import { createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';

const [issuer, audience] = process.argv.slice(2);
const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const quellKeys = createRemoteJWKSet(new URL(`${issuer}/ssf/jwks.json`));
const received = [];
const rejected = [];
let down = false;
const streams = [];
const grants = [];
const queues = {};   // poll streams' SETs not yet acknowledged: [[jti, set]]
const polled = { acks: [], errs: {} };   // what quell acknowledged, and refused

const own = await generateKeyPair('ES256');
const forged = await generateKeyPair('ES256');
const pub = { ...(await exportJWK(own.publicKey)), kid: 'peer-1', use: 'sig', alg: 'ES256' };

async function verify(set) {
  const { payload, protectedHeader } = await jwtVerify(set, quellKeys, {
    issuer, audience, typ: 'secevent+jwt', algorithms: ['ES256', 'RS256'],
  });
  if (typeof payload.jti !== 'string' || typeof payload.iat !== 'number' ||
      typeof payload.events !== 'object' || Object.keys(payload.events).length !== 1)
    throw new Error('a SET needs jti, iat and exactly one event');
  if (payload.exp !== undefined || payload.sub !== undefined)
    throw new Error('a SET carries neither exp nor sub (RFC 8417 2.2, SSF sub_id)');
  // The CAEP Interoperability Profile: a CAEP event has a non-empty reason_admin;
  // CAEP 1.0's event_timestamp and initiating_entity are checked when present.
  const [[type, ev]] = Object.entries(payload.events);
  if (type.startsWith(CAEP)) {
    const ra = ev.reason_admin;
    if (!ra || typeof ra !== 'object' || !Object.values(ra).length ||
        Object.values(ra).some((v) => typeof v !== 'string' || !v))
      throw new Error(`${type}: reason_admin must be a non-empty language map`);
    if (typeof ev.event_timestamp !== 'number')
      throw new Error(`${type}: event_timestamp must be a number`);
    if (!['admin', 'user', 'policy', 'system'].includes(ev.initiating_entity))
      throw new Error(`${type}: initiating_entity ${ev.initiating_entity}`);
  }
  const sub = payload.sub_id;
  const ok = (s) => s && ((s.format === 'email' && /@/.test(s.email)) ||
    (s.format === 'iss_sub' && s.iss && s.sub) || (s.format === 'opaque' && s.id) ||
    (s.format === 'complex' && ok(s.user) && (!s.tenant || ok(s.tenant))));
  if (!ok(sub)) throw new Error(`sub_id is no RFC 9493 subject: ${JSON.stringify(sub)}`);
  return { claims: payload, kid: protectedHeader.kid };
}

function body(req) {
  return new Promise((resolve) => {
    let b = '';
    req.on('data', (c) => { b += c; });
    req.on('end', () => resolve(b));
  });
}

function reply(res, status, obj) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(obj === undefined ? '' : JSON.stringify(obj));
}

// The stream API takes the static token or an access token /token issued with the
// ssf.manage scope (the CAEP Interoperability Profile's): 'static', 'oauth' or null.
async function streamAuth(h, self) {
  if (h === 'Bearer peer-api-token') return 'static';
  if (!h || !h.startsWith('Bearer ')) return null;
  try {
    const { payload } = await jwtVerify(h.slice(7), own.publicKey,
      { issuer: 'https://peer.example', audience: self, typ: 'at+jwt' });
    return payload.scope.split(' ').includes('ssf.manage') ? 'oauth' : null;
  } catch {
    return null;
  }
}

async function sign(claims, forge) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'peer-1', typ: 'secevent+jwt' })
    .sign(forge ? forged.privateKey : own.privateKey);
}

const server = http.createServer(async (req, res) => {
  const text = await body(req);
  try {
    if (req.method === 'POST' && req.url === '/push') {
      if (down) return reply(res, 503, { err: 'down' });
      if (req.headers['content-type'] !== 'application/secevent+jwt')
        return reply(res, 400, { err: 'invalid_request', description: 'content type' });
      try {
        received.push((await verify(text)).claims);
        return reply(res, 202);
      } catch (e) {
        rejected.push(String(e));
        return reply(res, 400, { err: 'invalid_key', description: String(e) });
      }
    }
    if (req.method === 'GET' && req.url === '/received') return reply(res, 200, { received, rejected });
    if (req.method === 'POST' && req.url === '/down') {
      down = JSON.parse(text).down;
      return reply(res, 200, { down });
    }
    if (req.method === 'POST' && req.url === '/verify') {
      try {
        return reply(res, 200, await verify(JSON.parse(text).set));
      } catch (e) {
        return reply(res, 200, { error: String(e) });
      }
    }
    if (req.method === 'GET' && req.url === '/jwks.json') return reply(res, 200, { keys: [pub] });
    if (req.method === 'POST' && req.url === '/sign') {
      const j = JSON.parse(text);
      return reply(res, 200, { set: await sign(j.claims, j.forge) });
    }
    const self = `http://127.0.0.1:${server.address().port}`;
    if (req.method === 'GET' && req.url === '/.well-known/ssf-configuration')
      return reply(res, 200, { issuer: 'https://peer.example', jwks_uri: `${self}/jwks.json`,
        configuration_endpoint: `${self}/stream`, delivery_methods_supported: ['urn:ietf:rfc:8935'] });
    if (req.method === 'POST' && req.url === '/token') {
      const f = new URLSearchParams(text);
      const ok = f.get('grant_type') === 'client_credentials' &&
        f.get('client_id') === 'quell-client' && f.get('client_secret') === 'peer-secret';
      grants.push({ client_id: f.get('client_id'), scope: f.get('scope'), ok });
      if (!ok) return reply(res, 401, { error: 'invalid_client', error_description: 'no such client' });
      const token = await new SignJWT({ scope: f.get('scope') || '', client_id: f.get('client_id') })
        .setProtectedHeader({ alg: 'ES256', kid: 'peer-1', typ: 'at+jwt' })
        .setIssuer('https://peer.example').setAudience(self).setIssuedAt().setExpirationTime('5m')
        .sign(own.privateKey);
      return reply(res, 200, { access_token: token, token_type: 'Bearer', expires_in: 300 });
    }
    if (req.url === '/stream') {
      const how = await streamAuth(req.headers.authorization, self);
      if (!how) return reply(res, 401, { err: 'token' });
      if (req.method === 'GET') return reply(res, 200, streams);
      const st = { ...JSON.parse(text), stream_id: `peer-${streams.length + 1}`, made_with: how };
      if (st.delivery.method === 'urn:ietf:rfc:8936') {
        st.delivery.endpoint_url = `${self}/poll/${st.stream_id}`;
        queues[st.stream_id] = [];
      }
      streams.push(st);
      return reply(res, 201, st);
    }
    if (req.method === 'POST' && req.url.startsWith('/poll/')) {
      if (!(await streamAuth(req.headers.authorization, self))) return reply(res, 401, { err: 'token' });
      const q = queues[req.url.slice(6)];
      if (!q) return reply(res, 404, { err: 'no such stream' });
      const j = JSON.parse(text);
      for (const jti of j.ack || []) polled.acks.push(jti);
      Object.assign(polled.errs, j.setErrs || {});
      const done = new Set([...(j.ack || []), ...Object.keys(j.setErrs || {})]);
      queues[req.url.slice(6)] = q.filter(([jti]) => !done.has(jti));
      const left = queues[req.url.slice(6)];
      const n = j.maxEvents ?? 10;
      return reply(res, 200, { sets: Object.fromEntries(left.slice(0, n)),
        moreAvailable: left.length > n });
    }
    if (req.method === 'GET' && req.url === '/polled') return reply(res, 200, polled);
    if (req.method === 'GET' && req.url === '/grants') return reply(res, 200, grants);
    if (req.method === 'GET' && req.url === '/streams') return reply(res, 200, streams);
    if (req.method === 'POST' && req.url === '/emit') {
      const { claims } = JSON.parse(text);
      const set = await sign(claims, false);
      const out = [];
      for (const st of streams) {
        if (queues[st.stream_id]) {
          queues[st.stream_id].push([claims.jti, set]);
          out.push({ status: 'queued' });
          continue;
        }
        const r = await fetch(st.delivery.endpoint_url, { method: 'POST', body: set,
          headers: { 'Content-Type': 'application/secevent+jwt',
            Authorization: st.delivery.authorization_header } });
        out.push({ status: r.status, body: await r.text() });
      }
      return reply(res, 200, out);
    }
    return reply(res, 404, { err: 'no such path' });
  } catch (e) {
    return reply(res, 500, { err: String(e) });
  }
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
