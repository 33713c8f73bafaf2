// Sign-in with OpenID Connect (authorization code + PKCE) against the fake issuer that
// tests/e2e/test_web.py runs: the browser goes there and back and lands in the console
// as the issuer's user, with what its roles claim grants. A wrong state, a replayed
// callback and a replayed code are refused. Environment: QUELL_WEB_URL,
// QUELL_WEB_OIDC_ISSUER, QUELL_WEB_OIDC_USER, QUELL_WEB_TARGET_ID.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { env, URL_, ART, fresh, raw } from "./lib.mjs";

const ISSUER = env("QUELL_WEB_OIDC_ISSUER");
const USER = env("QUELL_WEB_OIDC_USER");
const TARGET = env("QUELL_WEB_TARGET_ID");

test("the browser signs in through the issuer and lands in the console as its user", async () => {
  const { ctx, page, errors } = await fresh();
  await page.goto(URL_ + "/");
  const link = page.getByRole("link", { name: `Sign in with ${new URL(ISSUER).host}` });
  await link.waitFor();
  await page.getByLabel("API token").waitFor();	// the token form stays beside it
  assert.equal(await page.locator("#nav").isVisible(), false);
  assert.equal(await page.locator("#who").isVisible(), false);
  await page.screenshot({ path: path.join(ART, "oidc-sign-in.png") });
  const seen = [];
  page.on("request", (r) => { if (r.isNavigationRequest()) seen.push(r.url()); });
  await link.click();
  await page.getByRole("heading", { name: "Identities" }).waitFor();
  assert.ok(seen.some((u) => u.startsWith(ISSUER + "/authorize?")), seen.join("\n"));
  const auth = new URL(seen.find((u) => u.startsWith(ISSUER + "/authorize?")));
  assert.equal(auth.searchParams.get("code_challenge_method"), "S256");
  assert.equal(auth.searchParams.get("scope"), "openid profile");
  assert.equal(auth.searchParams.get("redirect_uri"), URL_ + "/api/v1/session/oidc/callback");
  assert.equal(auth.searchParams.get("code_verifier"), null);
  assert.equal(await page.locator("#who-name").textContent(), `${USER} (OpenID Connect)`);

  const s = await page.evaluate(async () => (await fetch("/api/v1/session")).json());
  assert.equal(s.method, "oidc");
  assert.equal(s.name, USER);
  assert.equal(s.role, null);
  assert.ok(s.permissions.includes("response.manage"), s.permissions.join(" "));
  assert.ok(!s.permissions.includes("response.approve"), s.permissions.join(" "));
  const cookies = await ctx.cookies();
  const sess = cookies.find((c) => c.name === "quell_session");
  assert.ok(sess && sess.httpOnly && sess.sameSite === "Strict");
  assert.equal(cookies.filter((c) => c.name === "quell_oidc").length, 0);

  // the grant its roles claim matches makes it a responder: the Actions menu is there
  await page.goto(`${URL_}/#/identity/${TARGET}`);
  await page.getByRole("button", { name: /Actions/ }).waitFor();
  await page.screenshot({ path: path.join(ART, "oidc-signed-in.png") });
  // and the API answers it as that principal, CSRF and all
  const who = await page.evaluate(async () => (await fetch("/api/v1/whoami")).json());
  assert.equal(who.name, USER);
  assert.match(who.id, /^oidc:/);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("API token").waitFor();
  assert.equal((await page.evaluate(async () => (await fetch("/api/v1/whoami")).status)), 401);
  assert.deepEqual(errors, []);
  await ctx.close();
});

// One sign-in by hand: /start's redirect and pre-session cookie, the issuer's answer.
async function begin() {
  const st = await raw("GET", "/api/v1/session/oidc/start");
  assert.equal(st.status, 302);
  const pre = st.headers["set-cookie"].find((c) => c.startsWith("quell_oidc="));
  assert.match(pre, /HttpOnly/);
  assert.match(pre, /SameSite=Lax/);
  assert.match(pre, /Path=\/api\/v1\/session\/oidc/);
  const az = await raw("GET", st.headers.location);
  assert.equal(az.status, 302, az.body);
  const back = new URL(az.headers.location);
  return { cookie: pre.split(";")[0], code: back.searchParams.get("code"),
    state: back.searchParams.get("state"), callback: back.pathname + back.search };
}

const callback = (code, state, cookie) => raw("GET",
  `/api/v1/session/oidc/callback?code=${encodeURIComponent(code)}&state=${encodeURIComponent(state)}`,
  cookie ? { Cookie: cookie, Accept: "application/json" } : { Accept: "application/json" });

test("a wrong state, a replayed callback and a replayed code are refused", async () => {
  const a = await begin();
  const wrong = await callback(a.code, "A".repeat(43), a.cookie);
  assert.equal(wrong.status, 401);
  assert.match(JSON.parse(wrong.body).error.message, /state does not match/);
  assert.equal(wrong.headers["set-cookie"].some((c) => c.startsWith("quell_session=")), false);
  // that sign-in is used up, even with its right state now
  const late = await callback(a.code, a.state, a.cookie);
  assert.equal(late.status, 400);
  assert.match(JSON.parse(late.body).error.message, /no sign-in is under way/);

  const b = await begin();
  const ok = await raw("GET", b.callback, { Cookie: b.cookie });
  assert.equal(ok.status, 302);
  assert.equal(ok.headers.location, "/#/identities");
  assert.ok(ok.headers["set-cookie"].some((c) => /^quell_session=[A-Za-z0-9_-]{43};/.test(c)));
  const again = await callback(b.code, b.state, b.cookie);
  assert.equal(again.status, 400);

  // the code a second time, on a fresh sign-in of the same browser: the issuer refuses it
  const c = await begin();
  const replay = await callback(b.code, c.state, c.cookie);
  assert.equal(replay.status, 401);
  assert.match(JSON.parse(replay.body).error.message, /issuer refused the code: invalid_grant/);

  // no pre-session cookie at all
  assert.equal((await callback(c.code, c.state, null)).status, 400);
  // the issuer's own refusal is passed on, readable
  const d = await begin();
  const denied = await raw("GET", `/api/v1/session/oidc/callback?error=access_denied&error_description=${encodeURIComponent("<b>user said no</b>")}&state=${d.state}`, { Cookie: d.cookie });
  assert.equal(denied.status, 401);
  assert.match(denied.headers["content-type"], /^text\/html/);
  assert.match(denied.body, /access_denied: &lt;b&gt;user said no&lt;\/b&gt;/);
});

test("a failed sign-in is a page a person can read", async () => {
  const { ctx, page } = await fresh();
  await page.goto(`${URL_}/api/v1/session/oidc/callback?code=x&state=y`);
  await page.getByRole("heading", { name: "Sign-in failed" }).waitFor();
  await page.getByRole("alert").getByText(/no sign-in is under way/).waitFor();
  await page.screenshot({ path: path.join(ART, "oidc-refused.png") });
  await page.getByRole("link", { name: "Back to sign-in" }).click();
  await page.getByLabel("API token").waitFor();
  await ctx.close();
});
