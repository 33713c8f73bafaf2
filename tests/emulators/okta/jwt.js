'use strict';
// private_key_jwt client assertion checks for POST /oauth2/v1/token, as Okta
// documents them (okta-oauth-minimal.yaml, Client_authentication_private_key_jwt;
// "Build a JWT for client authentication"): iss = sub = client_id, aud = the
// token endpoint URL as invoked, exp in the future and at most one hour ahead,
// jti not reused, signature RS256/384/512 or ES256/384/512 with a public key
// registered on the app.

const crypto = require('crypto');

const ALGS = {
  RS256: { hash: 'sha256', kty: 'RSA' }, RS384: { hash: 'sha384', kty: 'RSA' }, RS512: { hash: 'sha512', kty: 'RSA' },
  ES256: { hash: 'sha256', kty: 'EC' }, ES384: { hash: 'sha384', kty: 'EC' }, ES512: { hash: 'sha512', kty: 'EC' },
};

class AssertionError extends Error {
  constructor(description, error = 'invalid_client', status = 401) {
    super(description);
    this.oauthError = error;
    this.status = status;
  }
}

function b64urlJson(part) {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

function decode(assertion) {
  const parts = String(assertion).split('.');
  if (parts.length !== 3) throw new AssertionError('The client_assertion token is malformed.');
  const header = b64urlJson(parts[0]);
  const payload = b64urlJson(parts[1]);
  if (!header || typeof header !== 'object' || !payload || typeof payload !== 'object') {
    throw new AssertionError('The client_assertion token is malformed.');
  }
  return { header, payload, signingInput: parts[0] + '.' + parts[1], signature: Buffer.from(parts[2], 'base64url') };
}

// Turn an app registration's key material into [{kid, key}] entries.
function loadKeys(reg) {
  const out = [];
  const add = (jwk) => {
    const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
    out.push({ kid: jwk.kid, key });
  };
  if (reg.jwk) {
    if (Array.isArray(reg.jwk.keys)) reg.jwk.keys.forEach(add); else add(reg.jwk);
  }
  if (reg.jwks && Array.isArray(reg.jwks.keys)) reg.jwks.keys.forEach(add);
  if (reg.public_pem) out.push({ kid: reg.kid, key: crypto.createPublicKey(reg.public_pem) });
  if (out.length === 0) throw new Error('app needs jwk, jwks or public_pem');
  return out;
}

// Verify; returns the payload. `app` = {client_id, keys}, `jtiSeen` = Map(jti -> exp ms).
function verifyAssertion(decoded, app, tokenUrl, jtiSeen, nowMs = Date.now()) {
  const { header, payload, signingInput, signature } = decoded;
  const alg = ALGS[header.alg];
  if (!alg) throw new AssertionError('The client_assertion token has an unsupported signing algorithm.');
  let candidates = app.keys;
  if (header.kid !== undefined) {
    candidates = app.keys.filter((k) => k.kid === undefined || k.kid === header.kid);
    if (candidates.length === 0) throw new AssertionError('The client_assertion JWT kid is invalid.');
  } else if (app.keys.length > 1) {
    throw new AssertionError('The client_assertion JWT kid is invalid.');
  }
  const ok = candidates.some(({ key }) => {
    if (key.asymmetricKeyType !== alg.kty.toLowerCase()) return false;
    try {
      return crypto.verify(alg.hash, Buffer.from(signingInput), alg.kty === 'EC' ? { key, dsaEncoding: 'ieee-p1363' } : key, signature);
    } catch {
      return false;
    }
  });
  if (!ok) throw new AssertionError('The client_assertion signature is invalid.');
  if (payload.iss !== app.client_id || payload.sub !== app.client_id) {
    throw new AssertionError('The client_assertion token must have iss and sub equal to the client_id.');
  }
  const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  if (!aud.includes(tokenUrl)) {
    throw new AssertionError('The audience claim for client_assertion must be the endpoint invoked for the request.');
  }
  const now = Math.floor(nowMs / 1000);
  if (typeof payload.exp !== 'number') throw new AssertionError('The client_assertion token must contain an exp claim.');
  if (payload.exp <= now) throw new AssertionError('The client_assertion token is expired.');
  if (payload.exp > now + 3600 || (typeof payload.iat === 'number' && payload.exp - payload.iat > 3600)) {
    throw new AssertionError('The client_assertion token has an expiration too far in the future.');
  }
  if (typeof payload.iat === 'number' && payload.iat > now + 60) {
    throw new AssertionError('The client_assertion token is not yet valid.');
  }
  if (typeof payload.nbf === 'number' && payload.nbf > now + 60) {
    throw new AssertionError('The client_assertion token is not yet valid.');
  }
  if (payload.jti !== undefined) {
    for (const [j, exp] of jtiSeen) if (exp < nowMs) jtiSeen.delete(j);
    const key = app.client_id + '\u0000' + payload.jti;
    if (jtiSeen.has(key)) throw new AssertionError('The client_assertion token has already been used.');
    jtiSeen.set(key, payload.exp * 1000);
  }
  return payload;
}

module.exports = { decode, loadKeys, verifyAssertion, AssertionError, ALGS };
