// Drives quell's Graph-compatible API with Microsoft's official JS client
// (@microsoft/microsoft-graph-client, tests/contract/node_modules) configured as a
// script written for Defender for Identity's API is, with only the base URL (and
// customHosts, so that the client sends its token there) changed.
//
// The client speaks only https to a custom host; this script puts an https front
// (cert/key given) before the Prism proxy of the Graph subset, as a TLS-terminating
// reverse proxy would stand before quelld: https://127.0.0.1:PORT/graph/v1.0/X goes
// to Prism as /X (the subset's paths are Graph's own), with X-Forwarded-Proto and
// X-Forwarded-Host, so that quelld's @odata.nextLink leads back through the front.
//
// Usage: NODE_EXTRA_CA_CERTS=cert node graph_client.mjs '<json>', the JSON
// {upstream, cert, key, token, ops: [...]}; prints a JSON array with one result per
// op: {ok: value} or {error: {statusCode, code, body, requestId, headers}}.
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../../contract/package.json"));
require("isomorphic-fetch");
const { Client, PageIterator } = require("@microsoft/microsoft-graph-client");

const args = JSON.parse(process.argv[2]);
const upstream = new URL(args.upstream);
const PREFIX = "/graph/v1.0";

function forward(req, res) {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const headers = { ...req.headers, "x-forwarded-proto": "https",
      "x-forwarded-host": req.headers.host };
    delete headers.host;
    const up = http.request({
      host: upstream.hostname, port: upstream.port, method: req.method,
      path: req.url.startsWith(PREFIX) ? req.url.slice(PREFIX.length) : req.url,
      headers,
    }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on("error", (e) => { res.writeHead(502); res.end(String(e)); });
    up.end(Buffer.concat(chunks));
  });
}

function client(base, token) {
  return Client.init({
    baseUrl: base,
    defaultVersion: "v1.0",
    customHosts: new Set(["127.0.0.1"]),
    authProvider: (done) => done(null, token),
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

async function run(base, op) {
  const c = client(base, op.token ?? args.token);
  const headers = op.clientRequestId ? { "client-request-id": op.clientRequestId } : {};
  switch (op.op) {
    case "list":
      return listAll(c, op);
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

const front = https.createServer({ cert: fs.readFileSync(args.cert),
  key: fs.readFileSync(args.key) }, forward);
await new Promise((ok) => front.listen(0, "127.0.0.1", ok));
const base = `https://127.0.0.1:${front.address().port}/graph`;
const out = [];
for (const op of args.ops) {
  try {
    out.push({ ok: await run(base, op) });
  } catch (e) {
    out.push({
      error: {
        statusCode: e.statusCode, code: e.code, message: e.message,
        requestId: e.requestId, body: e.body ?? null,
        headers: e.headers ? Object.fromEntries(e.headers.entries()) : null,
      },
    });
  }
}
front.closeAllConnections();
front.close();
process.stdout.write(JSON.stringify(out), () => process.exit(0));
