// Drives quell's Graph-compatible API with Microsoft's official JS client
// (@microsoft/microsoft-graph-client, tests/contract/node_modules), as a SOC script
// written for Defender for Identity's API would: only the base URL differs.
// Usage: node graph_client.mjs '<json>' with {base, token, ops: [...]}; prints a JSON
// array with one result per op: {ok: value} or {error: {statusCode, code, body, ...}}.
// Over plain http the client's authProvider sends no token (it attaches tokens to
// https Graph hosts only), so the token goes in fetchOptions' headers instead.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../../contract/package.json"));
require("isomorphic-fetch");
const { Client, PageIterator } = require("@microsoft/microsoft-graph-client");

const args = JSON.parse(process.argv[2]);

function client(token) {
  return Client.init({
    baseUrl: args.base,
    defaultVersion: args.version ?? "",
    authProvider: (done) => done(null, token),
    fetchOptions: { headers: { Authorization: `Bearer ${token}` } },
  });
}

// Every page, through the client's PageIterator (it follows @odata.nextLink).
async function listAll(c, op) {
  let req = c.api("/security/identities/identityAccounts");
  if (op.top) req = req.top(op.top);
  if (op.filter) req = req.filter(op.filter);
  if (op.select) req = req.select(op.select);
  const first = await req.get();
  const items = [];
  const it = new PageIterator(c, first, (item) => { items.push(item); return true; });
  await it.iterate();
  return { items, first };
}

async function run(op) {
  const c = client(op.token ?? args.token);
  const headers = op.clientRequestId ? { "client-request-id": op.clientRequestId } : {};
  switch (op.op) {
    case "list":
      return listAll(c, op);
    case "page": {
      let req = c.api(op.path).headers(headers);
      return req.get();
    }
    case "get": {
      let req = c.api(`/security/identities/identityAccounts/${op.id}`).headers(headers);
      if (op.select) req = req.select(op.select);
      return req.get();
    }
    case "invoke":
      return c.api(`/security/identities/identityAccounts/${op.id}/invokeAction`)
        .headers(headers).post(op.body);
    default:
      throw new Error(`unknown op ${op.op}`);
  }
}

const out = [];
for (const op of args.ops) {
  try {
    out.push({ ok: await run(op) });
  } catch (e) {
    out.push({
      error: {
        statusCode: e.statusCode, code: e.code, message: e.message,
        requestId: e.requestId, body: typeof e.body === "string" ? e.body : e.body ?? null,
        headers: e.headers ? Object.fromEntries(e.headers.entries()) : null,
      },
    });
  }
}
process.stdout.write(JSON.stringify(out));
