'use strict';
// Microsoft identity platform v2.0 token endpoint, client credentials grant only:
//   POST /{tenant}/oauth2/v2.0/token  (application/x-www-form-urlencoded)
// Client authentication by client_secret or by a signed client assertion (certificate
// credential). Errors use the AADSTS shape: error, error_description ("AADSTSnnn: ...
// \r\nTrace ID: ...\r\nCorrelation ID: ...\r\nTimestamp: ..."), error_codes, timestamp,
// trace_id, correlation_id, error_uri.
const crypto = require('crypto');
const { uuid, b64url, b64urlJson, fromB64urlJson, aadTimestamp, aadLongTime } = require('./util');

const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const CERT_DOC = 'Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .';

class AadError extends Error {
  constructor(status, error, code, text) {
    super(text);
    this.status = status; this.error = error; this.code = code; this.text = text;
  }
}

function aadErrorBody(e, correlationId) {
  const traceId = uuid();
  const ts = aadTimestamp();
  return {
    error: e.error,
    error_description: `AADSTS${e.code}: ${e.text}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${ts}`,
    error_codes: [e.code],
    timestamp: ts,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `https://login.microsoftonline.com/error?code=${e.code}`,
  };
}

// Registered certificate -> what verification needs.
function loadCertificate(pem) {
  const cert = new crypto.X509Certificate(pem);
  const der = cert.raw;
  return {
    pem,
    publicKey: cert.publicKey,
    x5t: b64url(crypto.createHash('sha1').update(der).digest()),
    x5tS256: b64url(crypto.createHash('sha256').update(der).digest()),
    sha1Hex: crypto.createHash('sha1').update(der).digest('hex').toUpperCase(),
    validFrom: cert.validFrom,
    validTo: cert.validTo,
  };
}

function missing(name) {
  return new AadError(400, 'invalid_request', 900144, `The request body must contain the following parameter: '${name}'.`);
}

// The token URLs an assertion's aud may name: the URL as the client used it (scheme + Host
// as received, or as forwarded by a proxy), the configured public login base, and Entra's
// real host. The v2 path is required; "/{tenant}/v2.0" style issuers are not accepted.
function acceptedAudiences(req, tenant, loginBaseUrl) {
  const path = `/${tenant}/oauth2/v2.0/token`;
  const hosts = new Set();
  if (req.headers.host) hosts.add(req.headers.host);
  if (req.headers['x-forwarded-host']) hosts.add(String(req.headers['x-forwarded-host']).split(',')[0].trim());
  const out = new Set();
  for (const h of hosts) { out.add(`http://${h}${path}`); out.add(`https://${h}${path}`); }
  if (loginBaseUrl) out.add(loginBaseUrl.replace(/\/+$/, '') + path);
  out.add(`https://login.microsoftonline.com${path}`);
  return out;
}

function verifyAssertion(state, req, tenant, app, assertion) {
  const parts = String(assertion).split('.');
  if (parts.length !== 3) throw new AadError(400, 'invalid_request', 50027, 'JWT token is invalid or malformed.');
  let header, claims;
  try {
    header = fromB64urlJson(parts[0]);
    claims = fromB64urlJson(parts[1]);
  } catch {
    throw new AadError(400, 'invalid_request', 50027, 'JWT token is invalid or malformed.');
  }
  if (!header || typeof header !== 'object' || !claims || typeof claims !== 'object') {
    throw new AadError(400, 'invalid_request', 50027, 'JWT token is invalid or malformed.');
  }
  const thumb = header['x5t#S256'] || header.x5t || null;
  const cert = app.certs.find((c) => (header['x5t#S256'] && c.x5tS256 === header['x5t#S256']) ||
                                     (!header['x5t#S256'] && header.x5t && c.x5t === header.x5t));
  if (!cert) {
    throw new AadError(401, 'invalid_client', 700027,
      `Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '${thumb || ''}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${app.client_id}'. ${CERT_DOC}]`);
  }
  const signingInput = Buffer.from(`${parts[0]}.${parts[1]}`);
  const sig = Buffer.from(parts[2], 'base64url');
  let ok = false;
  try {
    if (header.alg === 'RS256') {
      ok = crypto.verify('sha256', signingInput, cert.publicKey, sig);
    } else if (header.alg === 'PS256') {
      ok = crypto.verify('sha256', signingInput,
        { key: cert.publicKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig);
    }
  } catch { ok = false; }
  if (!ok) {
    throw new AadError(401, 'invalid_client', 700027,
      `Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '${thumb}', Found key 'Start=${cert.validFrom}, End=${cert.validTo}'. ${CERT_DOC}]`);
  }
  if (claims.iss !== claims.sub) {
    throw new AadError(401, 'invalid_client', 50048, 'Subject mismatches Issuer claim in the client assertion.');
  }
  if (claims.iss !== app.client_id) {
    throw new AadError(401, 'invalid_client', 700021, `Client assertion application identifier doesn't match 'client_id' parameter. ${CERT_DOC}`);
  }
  const auds = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  const accepted = acceptedAudiences(req, tenant, state.config.login_base_url);
  if (!auds.some((a) => typeof a === 'string' && accepted.has(a))) {
    throw new AadError(401, 'invalid_client', 700023, `Client assertion audience claim does not match Realm issuer. ${CERT_DOC}`);
  }
  const now = Date.now();
  if (typeof claims.exp !== 'number') {
    throw new AadError(400, 'invalid_request', 50027, 'JWT token is invalid or malformed.');
  }
  const nbf = typeof claims.nbf === 'number' ? claims.nbf : 0;
  const skewMs = (state.config.assertion_clock_skew_s || 0) * 1000;
  const tooLong = app.assertion_max_lifetime_s != null && claims.exp - (claims.nbf ?? claims.iat ?? claims.exp) > app.assertion_max_lifetime_s;
  if (claims.exp * 1000 + skewMs <= now || nbf * 1000 - skewMs > now || tooLong) {
    throw new AadError(401, 'invalid_client', 700024,
      `Client assertion is not within its valid time range. Current time: ${aadLongTime(now)}, assertion valid from ${aadLongTime(nbf * 1000)}, expiry time of assertion ${aadLongTime(claims.exp * 1000)}. ${CERT_DOC}`);
  }
  if (app.reject_jti_replay) {
    if (typeof claims.jti !== 'string') throw new AadError(400, 'invalid_request', 50027, 'JWT token is invalid or malformed.');
    app.seenJti = app.seenJti || new Set();
    if (app.seenJti.has(claims.jti)) {
      throw new AadError(401, 'invalid_client', 700024, 'Client assertion has already been used (jti replay).');
    }
    app.seenJti.add(claims.jti);
  }
}

function issueToken(state, tenantObj, app) {
  const lifetime = app.token_lifetime_s ?? tenantObj.token_lifetime_s ?? state.config.token_lifetime_s ?? 3599;
  const now = Date.now();
  const jti = b64url(crypto.randomBytes(16));
  const claims = {
    aud: 'https://graph.microsoft.com',
    iss: `https://sts.windows.net/${tenantObj.name}/`,
    iat: Math.floor(now / 1000),
    nbf: Math.floor(now / 1000),
    exp: Math.floor(now / 1000) + lifetime,
    appid: app.client_id,
    idtyp: 'app',
    roles: app.roles || [],
    tid: tenantObj.name,
    uti: jti,
    ver: '1.0',
  };
  const head = b64urlJson({ typ: 'JWT', alg: 'HS256', kid: 'quell-graph-emulator' });
  const body = b64urlJson(claims);
  const sig = b64url(crypto.createHmac('sha256', state.tokenKey).update(`${head}.${body}`).digest());
  state.tokenSeq = (state.tokenSeq || 0) + 1;
  state.tokens.set(jti, { tenant: tenantObj.name, client_id: app.client_id, seq: state.tokenSeq, exp: now + lifetime * 1000 });
  return { token_type: 'Bearer', expires_in: lifetime, ext_expires_in: lifetime, access_token: `${head}.${body}.${sig}` };
}

// Returns { status, body }.
function tokenRequest(state, req, tenant, form) {
  try {
    const grant = form.get('grant_type');
    if (!grant) throw missing('grant_type');
    if (grant !== 'client_credentials') {
      throw new AadError(400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grant}'.`);
    }
    const clientId = form.get('client_id');
    if (!clientId) throw missing('client_id');
    const scope = form.get('scope');
    if (!scope) throw missing('scope');
    const t = state.tenant(tenant);
    if (!t) {
      throw new AadError(400, 'invalid_request', 90002,
        `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`);
    }
    const app = t.apps.get(clientId);
    if (!app) {
      throw new AadError(400, 'unauthorized_client', 700016,
        `Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`);
    }
    const scopes = scope.trim().split(/\s+/);
    if (scopes.length !== 1 || !scopes[0].endsWith('/.default')) {
      throw new AadError(400, 'invalid_scope', 1002012,
        `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`);
    }
    if (scopes[0] !== GRAPH_SCOPE) {
      const resource = scopes[0].slice(0, -'/.default'.length);
      throw new AadError(400, 'invalid_resource', 500011,
        `The resource principal named ${resource} was not found in the tenant named ${tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`);
    }
    const secret = form.get('client_secret');
    const assertionType = form.get('client_assertion_type');
    const assertion = form.get('client_assertion');
    if (secret != null && secret !== '') {
      if (!app.secret || secret !== app.secret) {
        throw new AadError(401, 'invalid_client', 7000215,
          `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`);
      }
    } else if (assertion || assertionType) {
      if (!assertion) throw missing('client_assertion');
      if (assertionType !== JWT_BEARER) {
        throw new AadError(400, 'invalid_request', 700010,
          `Invalid client_assertion_type '${assertionType || ''}'. Expected '${JWT_BEARER}'.`);
      }
      verifyAssertion(state, req, tenant, app, assertion);
    } else {
      throw new AadError(401, 'invalid_client', 7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
    }
    state.stats.token_requests.ok++;
    return { status: 200, body: issueToken(state, t, app) };
  } catch (e) {
    if (!(e instanceof AadError)) throw e;
    state.stats.token_requests.failed++;
    const k = String(e.code);
    state.stats.token_requests.by_error_code[k] = (state.stats.token_requests.by_error_code[k] || 0) + 1;
    return { status: e.status, body: aadErrorBody(e, req.headers['client-request-id'] || uuid()) };
  }
}

// Validates a bearer token presented to Graph. Returns { ok, tenant, client_id } or { message }.
function checkAccessToken(state, authz) {
  if (!authz || !/^bearer\s+\S/i.test(authz)) return { message: 'Access token is empty.' };
  const tok = authz.replace(/^bearer\s+/i, '').trim();
  const parts = tok.split('.');
  if (parts.length < 2) {
    return { message: "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization Format. (JWS): 'EncodedHeader.EncodedPayload.EncodedSignature'. (JWE): 'EncodedProtectedHeader.EncodedEncryptedKey.EncodedInitializationVector.EncodedCiphertext.EncodedAuthenticationTag'." };
  }
  if (parts.length !== 3) return { message: 'Invalid JWT token. The token is malformed.' };
  const expect = b64url(crypto.createHmac('sha256', state.tokenKey).update(`${parts[0]}.${parts[1]}`).digest());
  let claims;
  try { claims = fromB64urlJson(parts[1]); } catch { claims = null; }
  if (!claims || expect !== parts[2]) return { message: 'Invalid signature.' };
  if (claims.aud !== 'https://graph.microsoft.com') return { message: 'Access token validation failure. Invalid audience.' };
  const rec = state.tokens.get(claims.uti);
  if (!rec) return { message: 'Invalid signature.' }; // issued before a reset
  if (rec.exp <= Date.now() || rec.seq <= state.expiredBefore) {
    return { message: 'Lifetime validation failed, the token is expired.' };
  }
  return { ok: true, tenant: rec.tenant, client_id: rec.client_id };
}

module.exports = { tokenRequest, checkAccessToken, loadCertificate, aadErrorBody, AadError, GRAPH_SCOPE, JWT_BEARER };
