// The web console end to end: Debian's chromium, driven by playwright-core, against a
// quelld that tests/e2e/test_web.py started with the Samba lab. Environment:
//   QUELL_WEB_URL, QUELL_WEB_{ADMIN,RESPONDER,VIEWER} (API tokens),
//   QUELL_WEB_TARGET_SAM / _ID (an AD user synced into an identity; it gets disabled),
//   QUELL_WEB_ARTIFACTS (where the screenshots go), QUELL_CHROMIUM.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { env, URL_, ART, signedIn, raw } from "./lib.mjs";

const SAM = env("QUELL_WEB_TARGET_SAM");
const TARGET = env("QUELL_WEB_TARGET_ID");

test("files: headers, types and no way out of the root", async () => {
  const r = await raw("GET", "/");
  assert.equal(r.status, 200);
  assert.match(r.headers["content-type"], /^text\/html/);
  assert.match(r.headers["content-security-policy"], /default-src 'self'/);
  assert.doesNotMatch(r.headers["content-security-policy"], /unsafe-inline/);
  assert.equal(r.headers["x-frame-options"], "DENY");
  assert.equal(r.headers["x-content-type-options"], "nosniff");
  assert.ok(r.headers["cache-control"]);
  assert.ok(Buffer.byteLength(r.body) < 200 * 1024);
  assert.match((await raw("GET", "/js/app.js")).headers["content-type"], /^text\/javascript/);
  assert.match((await raw("GET", "/app.css")).headers["content-type"], /^text\/css/);
  for (const p of ["/../meson.build", "/%2e%2e/meson.build", "/js/../../meson.build",
    "/js/%2E%2E/%2E%2E/README.md", "/.git/config", "//etc/passwd", "/js/", "/nope.html",
    "/..%2fmeson.build", "/js/app.js/"]) {
    const x = await raw("GET", p);
    assert.equal(x.status, 404, `${p}: ${x.status}`);
  }
  assert.equal((await raw("POST", "/index.html")).status, 405);
});

test("sign-in refuses a wrong token, the cookie is HttpOnly and SameSite=Strict", async () => {
  const bad = await raw("POST", "/api/v1/session", { "Content-Type": "application/json" },
    JSON.stringify({ token: "qt_000000000000000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }));
  assert.equal(bad.status, 401);
  assert.equal(bad.headers["set-cookie"], undefined);
  const ok = await raw("POST", "/api/v1/session", { "Content-Type": "application/json" },
    JSON.stringify({ token: env("QUELL_WEB_VIEWER") }));
  assert.equal(ok.status, 200);
  const c = ok.headers["set-cookie"][0];
  assert.match(c, /^quell_session=[A-Za-z0-9_-]{43};/);
  assert.match(c, /HttpOnly/);
  assert.match(c, /SameSite=Strict/);
  assert.match(c, /Path=\//);
  const j = JSON.parse(ok.body);
  assert.equal(j.role, "viewer");
  assert.equal(j.csrf_token.length, 43);
});

test("responder: identity → Actions → Disable → confirm → action center → completed", async () => {
  const { ctx, page, errors } = await signedIn(env("QUELL_WEB_RESPONDER"));
  await page.getByLabel("Search identities").fill(SAM);
  await page.getByRole("button", { name: "Search" }).click();
  const row = page.locator(`tr[data-identity="${TARGET}"]`).first();
  await row.waitFor();
  // a hostile display name shows as text, never as markup
  assert.equal(await page.locator("main b").count(), 0);

  // right-click on the row opens the same menu; Escape closes it
  await row.click({ button: "right" });
  const menu = page.getByRole("menu");
  await menu.waitFor();
  assert.equal(await menu.getByRole("menuitem", { name: /Disable/ }).getAttribute("aria-disabled"), null);
  await page.keyboard.press("Escape");
  await menu.waitFor({ state: "detached" });

  // a click on the name opens the side panel; the full page is one more click
  await row.getByRole("link").first().click();
  await page.getByRole("dialog").getByRole("link", { name: "Open full page" }).click();
  await page.getByRole("button", { name: /Actions/ }).waitFor();
  await page.getByRole("table", { name: "Linked accounts" }).getByText(SAM, { exact: true }).waitFor();
  await page.screenshot({ path: path.join(ART, "identity.png") });

  await page.getByRole("button", { name: /Actions/ }).click();
  const items = page.getByRole("menuitem");
  assert.equal(await items.count(), 7);
  // AD does not deactivate: offered disabled, with the reason
  const deact = page.getByRole("menuitem", { name: /Deactivate/ });
  assert.equal(await deact.getAttribute("aria-disabled"), "true");
  assert.match(await deact.textContent(), /not supported by ad/);
  // the menu is keyboard-driven: arrows move, Escape closes and gives focus back
  await page.keyboard.press("ArrowDown");
  await page.keyboard.press("Escape");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Actions ▾");

  await page.getByRole("button", { name: /Actions/ }).click();
  await page.getByRole("menuitem", { name: /^Disable/ }).click();
  const dlg = page.getByRole("dialog");
  await dlg.waitFor();
  await dlg.getByRole("list", { name: "Accounts this action touches" }).getByText(SAM, { exact: true }).waitFor();
  await dlg.getByText(/sign-in blocked/).waitFor();
  const confirm = dlg.getByRole("button", { name: /Confirm disable/ });
  assert.ok(await confirm.isDisabled(), "confirm needs a reason first");
  // Escape closes the dialog; nothing was requested
  await page.keyboard.press("Escape");
  await dlg.waitFor({ state: "detached" });
  await page.getByRole("button", { name: /Actions/ }).click();
  await page.getByRole("menuitem", { name: /^Disable/ }).click();
  await dlg.getByText(/sign-in blocked/).waitFor();
  await dlg.getByLabel(/Reason/).fill("impossible travel (web e2e)");
  await page.screenshot({ path: path.join(ART, "confirm.png") });

  const seen = [];
  page.on("response", async (r) => {
    if (/\/api\/v1\/actions\/act_[0-9a-f]+$/.test(r.url()) && r.request().method() === "GET") {
      try { seen.push((await r.json()).status); } catch { /* page moved on */ }
    }
  });
  await confirm.click();
  await page.waitForURL(/#\/action\/act_/);
  const h1 = page.getByRole("heading", { level: 1 });
  await h1.getByText("completed", { exact: true }).waitFor();
  const steps = page.getByRole("table", { name: /Steps/ });
  await steps.getByText(SAM, { exact: true }).waitFor();
  await steps.getByText("succeeded").waitFor();
  assert.equal(seen.at(-1), "completed");
  console.log(`statuses the page showed: ${seen.join(" → ")}`);

  await page.getByRole("link", { name: "Action center" }).first().click();
  const hist = page.getByRole("table", { name: "Actions" });
  await hist.getByRole("link", { name: "Disable" }).first().waitFor();
  await hist.locator("tr", { hasText: "impossible travel (web e2e)" }).getByText("completed").waitFor();
  await page.screenshot({ path: path.join(ART, "action-center.png") });

  // the identity page lists it in its history
  await page.goto(`${URL_}/#/identity/${TARGET}`);
  await page.getByRole("table", { name: "Actions on this identity" }).getByText("completed").first().waitFor();

  // narrow window: still readable, the Actions button still reachable
  await page.setViewportSize({ width: 400, height: 800 });
  await page.getByRole("button", { name: /Actions/ }).waitFor();
  await page.screenshot({ path: path.join(ART, "identity-narrow.png"), fullPage: true });
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("a change made with the cookie and no CSRF header is refused (403 csrf)", async () => {
  const { ctx, page } = await signedIn(env("QUELL_WEB_RESPONDER"));
  const r = await page.evaluate(async (id) => {
    const x = await fetch("/api/v1/actions", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ type: "enable", identity_id: id, reason: "csrf test" }) });
    return { status: x.status, body: await x.json() };
  }, TARGET);
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "csrf");
  // a wrong token is as good as none
  const w = await page.evaluate(async () => (await fetch("/api/v1/session", { method: "DELETE",
    headers: { "X-CSRF-Token": "A".repeat(43) } })).status);
  assert.equal(w, 403);
  await ctx.close();
});

test("viewer: no Actions menu, and a crafted request is refused", async () => {
  const { ctx, page } = await signedIn(env("QUELL_WEB_VIEWER"));
  await page.goto(`${URL_}/#/identity/${TARGET}`);
  await page.getByRole("table", { name: "Linked accounts" }).getByText(SAM, { exact: true }).waitFor();
  assert.equal(await page.getByRole("button", { name: /Actions/ }).count(), 0);
  await page.goto(`${URL_}/#/identities?q=${SAM}`);
  await page.locator(`tr[data-identity="${TARGET}"]`).first().click({ button: "right" });
  assert.equal(await page.getByRole("menu").count(), 0);
  const r = await page.evaluate(async (id) => {
    const s = await (await fetch("/api/v1/session")).json();
    const x = await fetch("/api/v1/actions", { method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": s.csrf_token },
      body: JSON.stringify({ type: "enable", identity_id: id, reason: "viewer tries" }) });
    return { status: x.status, body: await x.json() };
  }, TARGET);
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "forbidden");
  await ctx.close();
});

test("audit page shows the log and a verified chain", async () => {
  const { ctx, page } = await signedIn(env("QUELL_WEB_ADMIN"));
  await page.getByRole("link", { name: "Audit" }).click();
  await page.getByText(/Hash chain verified/).waitFor();
  await page.getByLabel("Event").fill("session.created");
  const rows = page.getByRole("table", { name: "Audit entries" }).locator("tbody tr");
  await rows.first().waitFor();
  for (const t of await rows.locator("td:nth-child(4)").allTextContents()) assert.equal(t, "session.created");
  await ctx.close();
});

test("sign-out ends the session: the old cookie no longer works", async () => {
  const { ctx, page } = await signedIn(env("QUELL_WEB_RESPONDER"));
  const [cookie] = (await ctx.cookies()).filter((c) => c.name === "quell_session");
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === "Strict");
  const before = await raw("GET", "/api/v1/identities?limit=1", { Cookie: `quell_session=${cookie.value}` });
  assert.equal(before.status, 200);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("API token").waitFor();
  assert.equal((await ctx.cookies()).filter((c) => c.name === "quell_session").length, 0);
  const afterOut = await raw("GET", "/api/v1/identities?limit=1", { Cookie: `quell_session=${cookie.value}` });
  assert.equal(afterOut.status, 401);
  await ctx.close();
});
