// Derive okta-oauth-token-subset.yaml from tests/contract/specs/okta-oauth-minimal.yaml:
//   node tests/emulators/okta/make-oauth-subset.mjs [in.yaml] [out.yaml]
// Keeps POST /oauth2/v1/token and the components it references, unchanged,
// except for one thing: the operation's `security` becomes [] because Prism
// cannot model Okta's `postBody` client-authentication schemes
// (client_secret_post, client_secret_jwt, private_key_jwt) and would refuse
// every private_key_jwt request with its own 401 asking for Basic auth.
// The emulator checks the client assertion itself.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const require = createRequire(path.join(root, 'tests/contract/package.json'));
const YAML = require('yaml');

const inF = process.argv[2] || path.resolve(root, 'tests/contract/specs/okta-oauth-minimal.yaml');
const outF = process.argv[3] || path.join(here, 'okta-oauth-token-subset.yaml');
const doc = YAML.parse(fs.readFileSync(inF, 'utf8'), { maxAliasCount: -1 });

const op = structuredClone(doc.paths['/oauth2/v1/token'].post);
op.security = [];
const out = {
  openapi: doc.openapi,
  info: { ...doc.info, title: doc.info.title + ' (token subset)',
    description: 'POST /oauth2/v1/token from okta-oauth-minimal.yaml (version ' + doc.info.version +
      '), derived by tests/emulators/okta/make-oauth-subset.mjs; security emptied because Prism cannot model postBody client authentication.' },
  servers: doc.servers,
  paths: { '/oauth2/v1/token': { post: op } },
  components: {},
};
const seen = new Set();
const visit = (o) => {
  if (Array.isArray(o)) return o.forEach(visit);
  if (!o || typeof o !== 'object') return;
  for (const [k, v] of Object.entries(o)) {
    if (k === '$ref' && typeof v === 'string' && v.startsWith('#/components/') && !seen.has(v)) {
      seen.add(v);
      const [, , sec, name] = v.split('/');
      const tgt = doc.components?.[sec]?.[name];
      if (tgt === undefined) throw new Error('missing ' + v);
      (out.components[sec] ??= {})[name] = structuredClone(tgt);
      visit(tgt);
    } else visit(v);
  }
};
visit(out.paths);
fs.writeFileSync(outF, YAML.stringify(out, { lineWidth: 0 }));
console.log(`wrote ${outF}: ${seen.size} components`);
