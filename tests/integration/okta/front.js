#!/usr/bin/env node
'use strict';
// One org URL in front of the two validating Prism proxies (the Okta management
// subset and the OAuth spec cannot be loaded into one Prism): /oauth2/* goes to the
// OAuth proxy, the rest to the management one. Counts every answer in which Prism
// reports a contract violation (422, or a body naming a Prism error) and keeps the
// first ones for GET /_front/violations.
// Prism cannot model private_key_jwt (OpenAPI has no security scheme for a client
// assertion in the body) and refuses a token request without an Authorization header,
// so one is added for Prism's sake; the emulator, like Okta, authenticates the client
// by its assertion and the rest of the request is still validated.
//   node front.js --users http://127.0.0.1:P1 --oauth http://127.0.0.1:P2
const http = require('http');

const args = process.argv.slice(2);
const opt = {};
for (let i = 0; i + 1 < args.length; i += 2) opt[args[i].replace(/^--/, '')] = args[i + 1];
const users = new URL(opt.users);
const oauth = new URL(opt.oauth);
const violations = [];
let count = 0;

const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });

http.createServer((req, res) => {
  if (req.url === '/_front/violations') {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ count, first: violations }));
    return;
  }
  const up = req.url.startsWith('/oauth2/') ? oauth : users;
  const headers = Object.assign({}, req.headers, { host: up.host });
  if (up === oauth && headers.authorization === undefined) headers.authorization = 'Basic cHJpc206cHJpc20=';
  const fwd = http.request({ host: up.hostname, port: up.port, path: req.url, method: req.method,
    headers, agent }, (ur) => {
    const chunks = [];
    ur.on('data', (c) => chunks.push(c));
    ur.on('end', () => {
      const body = Buffer.concat(chunks);
      const text = body.toString('utf8');
      if (ur.statusCode === 422 || /stoplight\.io\/prism\/errors/.test(text)) {
        count++;
        if (violations.length < 10) violations.push({ method: req.method, url: req.url,
          status: ur.statusCode, body: text.slice(0, 600) });
      }
      const h = Object.assign({}, ur.headers);
      delete h['transfer-encoding'];
      h['content-length'] = String(body.length);
      res.writeHead(ur.statusCode, h);
      res.end(body);
    });
  });
  fwd.on('error', () => { res.destroy(); });
  req.pipe(fwd);
}).listen(0, '127.0.0.1', function () {
  process.stdout.write(`listening on ${this.address().port}\n`);
});
