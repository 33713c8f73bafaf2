// The SDK side of bench/okta_mass.py: suspend every user listed in a file and revoke
// their sessions (and OAuth tokens), with @okta/okta-sdk-nodejs written as a user would:
// an SSWS client with the SDK's DefaultRequestExecutor (it waits out a 429 until
// X-Rate-Limit-Reset, 2 retries) and a loop of awaited calls.
//
//   node bench/okta_mass_sdk.mjs CONFIG.json
// CONFIG: {"org_url","token","ids_file"}
// Prints one JSON line: {"elapsed_s","calls_ok","errors","first_error"}.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(HERE, '../tests/contract/node_modules/'));
const okta = require('@okta/okta-sdk-nodejs');

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const ids = fs.readFileSync(cfg.ids_file, 'utf8').split('\n').filter(Boolean);
const client = new okta.Client({ orgUrl: cfg.org_url, token: cfg.token });

let ok = 0; let errors = 0; let firstError = null;
const t0 = performance.now();
for (const userId of ids) {
  try {
    await client.userApi.suspendUser({ userId });
    ok++;
    await client.userApi.revokeUserSessions({ userId, oauthTokens: true });
    ok++;
  } catch (e) {
    errors++;
    if (!firstError) firstError = `${e.status ?? ''} ${e.errorCode ?? ''} ${e.message}`;
  }
}
const elapsed = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ elapsed_s: elapsed, calls_ok: ok, errors, first_error: firstError }));
