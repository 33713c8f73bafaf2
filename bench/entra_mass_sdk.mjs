// The SDK side of bench/entra_mass.py: contain (disable + revoke sign-in sessions) every
// user listed in a file, with @microsoft/microsoft-graph-client written as a user would:
// a client-credentials token, then a loop of awaited calls through the SDK's default
// middleware chain (its RetryHandler honours Retry-After, 3 retries; see below for auth).
//
//   node bench/entra_mass_sdk.mjs CONFIG.json
// CONFIG: {"login_base","graph_base","tenant","client_id","secret","ids_file"}
// Prints one JSON line: {"elapsed_s","calls_ok","errors","first_error"}.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(HERE, '../tests/contract/node_modules/'));
const { Client, RetryHandler, RedirectHandler, TelemetryHandler, HTTPMessageHandler } =
  require('@microsoft/microsoft-graph-client');

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const ids = fs.readFileSync(cfg.ids_file, 'utf8').split('\n').filter(Boolean);

async function getToken() {
  const res = await fetch(`${cfg.login_base}/${cfg.tenant}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials', client_id: cfg.client_id,
      client_secret: cfg.secret, scope: 'https://graph.microsoft.com/.default',
    }),
  });
  if (!res.ok) throw new Error(`token: ${res.status} ${await res.text()}`);
  return (await res.json()).access_token;
}

const token = await getToken();
// The SDK's AuthenticationHandler sends the token only to https Graph (or custom https)
// hosts and strips it otherwise; the emulator is plain http. So the chain is the SDK's
// default one (MiddlewareFactory.getDefaultMiddlewareChain: auth, RetryHandler with its
// default options, RedirectHandler, TelemetryHandler, HTTPMessageHandler) with the auth
// step replaced by one that sets the header whatever the scheme.
const auth = `Bearer ${token}`;
class BearerOverHttp {
  setNext(next) { this.next = next; }
  async execute(ctx) {
    const h = ctx.options.headers;
    if (h instanceof Headers) h.set('Authorization', auth);
    else ctx.options.headers = { ...(h || {}), Authorization: auth };
    return this.next.execute(ctx);
  }
}
const chain = [new BearerOverHttp(), new RetryHandler(), new RedirectHandler(),
  new TelemetryHandler(), new HTTPMessageHandler()];
for (let i = 0; i + 1 < chain.length; i++) chain[i].setNext(chain[i + 1]);
const client = Client.initWithMiddleware({
  baseUrl: cfg.graph_base,           // e.g. http://127.0.0.1:PORT (the SDK adds /v1.0)
  middleware: chain[0],
});

let ok = 0; let errors = 0; let firstError = null;
const t0 = performance.now();
for (const id of ids) {
  try {
    await client.api(`/users/${id}`).patch({ accountEnabled: false });
    ok++;
    await client.api(`/users/${id}/revokeSignInSessions`).post({});
    ok++;
  } catch (e) {
    errors++;
    if (!firstError) firstError = `${e.statusCode ?? ''} ${e.code ?? ''} ${e.message}`;
  }
}
const elapsed = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ elapsed_s: elapsed, calls_ok: ok, errors, first_error: firstError }));
