// What the console's browser tests share: Debian's chromium driven by playwright-core
// (from tests/contract/node_modules), signing in with a token, and raw HTTP requests.
import { before, after } from "node:test";
import { createRequire } from "node:module";
import path from "node:path";
import http from "node:http";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "contract", "package.json"));
const { chromium } = require("playwright-core");

export const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: run tests/e2e/test_web.py`);
  return v;
};
export const URL_ = env("QUELL_WEB_URL");
export const ART = env("QUELL_WEB_ARTIFACTS");
export const TIMEOUT = 30000;

export let browser;

// playwright-core gives every launch a fresh user data dir of its own (and removes it
// at close); it refuses a --user-data-dir argument.
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.QUELL_CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
});

// A fresh browser context with one page; errors the page throws are collected.
export async function fresh(viewport = { width: 1280, height: 800 }) {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error" && !/401|403|404|409/.test(m.text())) errors.push(m.text()); });
  return { ctx, page, errors };
}

export async function signedIn(token, viewport) {
  const s = await fresh(viewport);
  await s.page.goto(URL_ + "/");
  await s.page.getByLabel("API token").fill(token);
  await s.page.getByRole("button", { name: "Sign in" }).click();
  await s.page.getByRole("heading", { name: "Identities" }).waitFor();
  return s;
}

// A raw request to quelld or any URL (node's fetch would normalize the path and follow
// redirects; these tests look at both as sent).
export function raw(method, p, headers = {}, body = null, base = URL_) {
  return new Promise((resolve, reject) => {
    const u = new URL(p.startsWith("http") ? p : base + p);
    const r = http.request({ host: u.hostname, port: u.port, method,
      path: p.startsWith("http") ? u.pathname + u.search : p, headers }, (res) => {
      let data = "";
      res.on("data", (c) => { data += c; });
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    r.on("error", reject);
    if (body) r.write(body);
    r.end();
  });
}
