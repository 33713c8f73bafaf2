// The analyst's console beyond one identity: hunting whose rows are disabled in one bulk
// request, the identity side panel from several pages, an alert's containment banner and
// its release, names in History and the audit log, and the bulk preview's notes. Run by
// tests/e2e/test_web.py (which then checks kinit). Environment: QUELL_WEB_URL,
// QUELL_WEB_ADMIN, QUELL_WEB_HUNTED (two sAMAccountNames, comma-separated, to disable),
// QUELL_WEB_NOTES (a tier0 one and an already disabled one), QUELL_WEB_NOEXPIRE (a
// sAMAccountName whose password never expires), QUELL_WEB_VICTIM_ID /
// _NAME / _ALERT (contained by an alert), QUELL_WEB_TAG (in every one's name),
// QUELL_WEB_ARTIFACTS.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { env, URL_, ART, signedIn } from "./lib.mjs";

const HUNTED = env("QUELL_WEB_HUNTED").split(",");
const NOTES = env("QUELL_WEB_NOTES").split(",");
const NOEXPIRE = env("QUELL_WEB_NOEXPIRE");
const VICTIM = env("QUELL_WEB_VICTIM_ID");
const VICTIM_NAME = env("QUELL_WEB_VICTIM_NAME");
const ALERT = env("QUELL_WEB_ALERT");
const TAG = env("QUELL_WEB_TAG");
const REASON = "hunted: password spray (web e2e)";

const byUsername = (sams) => "SELECT identity_id, display_name, username, state FROM IdentityAccounts\n" +
  `WHERE username IN (${sams.map((s) => `'${s}'`).join(", ")}) ORDER BY username`;

async function hunt(page, sql) {
  await page.goto(`${URL_}/#/hunting`);
  await page.getByRole("heading", { name: "Advanced hunting" }).waitFor();
  await page.getByLabel(/^Query/).fill(sql);
  await page.getByRole("button", { name: "Run query" }).click();
  return page.getByRole("table", { name: "Results" });
}

// The side panel is open on name: its heading, its accounts, a way to the full page.
async function panelShows(page, name, where) {
  const panel = page.getByRole("dialog", { name });
  await panel.getByRole("heading", { name: "Linked accounts" }).waitFor();
  await panel.getByRole("link", { name: "Open full page" }).waitFor();
  await page.screenshot({ path: path.join(ART, `panel-${where}.png`) });
  await panel.getByRole("button", { name: "Close the side panel" }).click();
  await panel.waitFor({ state: "detached" });
}

test("hunting: rows selected, one bulk preview of every account, one bulk disable", async () => {
  const { ctx, page, errors } = await signedIn(env("QUELL_WEB_ADMIN"));
  const results = await hunt(page, byUsername(HUNTED));
  await page.getByText(/^2 rows in \d+ ms$/).waitFor();
  for (const s of HUNTED) await results.getByText(s, { exact: true }).waitFor();
  await page.getByText("0 identities selected").waitFor();
  await page.getByLabel("Select row 1").check();
  await page.getByText("1 identity selected").waitFor();
  await page.getByLabel("Select every row").check();
  await page.getByText("2 identities selected").waitFor();
  await page.screenshot({ path: path.join(ART, "hunting.png") });

  const bulk = [];
  page.on("request", (r) => { if (r.url().endsWith("/api/v1/actions/bulk")) bulk.push(JSON.parse(r.postData())); });
  await page.getByRole("button", { name: /Actions/ }).click();
  await page.getByRole("menuitem", { name: /^Disable/ }).click();
  const dlg = page.getByRole("dialog", { name: "Disable: 2 identities" });
  const plan = dlg.getByRole("list", { name: "Accounts this action touches" });
  for (const s of HUNTED) await plan.getByText(s, { exact: true }).waitFor();
  await dlg.getByText(/^2 accounts of 2 identities will be changed:$/).waitFor();
  await dlg.getByLabel(/Reason/).fill(REASON);
  await page.screenshot({ path: path.join(ART, "hunting-confirm.png") });
  await dlg.getByRole("button", { name: "Confirm disable (2 identities)" }).click();
  await page.waitForURL(/#\/actions/);
  assert.equal(bulk.length, 2, "one preview, then one request");
  assert.equal(bulk[0].preview, true);
  assert.equal(bulk[1].preview, false);
  assert.equal(bulk[1].requests.length, 2);

  // History names the identities; each completes
  const hist = page.getByRole("table", { name: "Actions" });
  const rows = hist.locator("tr", { hasText: REASON });
  await rows.nth(1).waitFor();
  for (let i = 0; i < 2; i++) await rows.nth(i).getByText("completed").waitFor({ timeout: 60000 });
  const names = (await rows.locator("td:nth-child(3) a").allTextContents()).sort();
  assert.equal(names.length, 2);
  for (const n of names) assert.doesNotMatch(n, /^idn_/, "the name, not the id");
  await page.screenshot({ path: path.join(ART, "history-names.png") });

  // CSV export of the results
  await hunt(page, byUsername(HUNTED));
  const [dl] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export CSV" }).click()]);
  const csv = await (await import("node:fs/promises")).readFile(await dl.path(), "utf8");
  assert.match(csv, /^identity_id,display_name,username,state\r\n/);
  for (const s of HUNTED) assert.match(csv, new RegExp(`,${s},`));
  assert.equal(csv.trimEnd().split("\r\n").length, 3, "a header and two rows");
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("the guard: a write is refused with the API's reason", async () => {
  const { ctx, page } = await signedIn(env("QUELL_WEB_ADMIN"));
  await hunt(page, "DELETE FROM Actions");
  const err = page.locator("#hunt-error");
  await err.getByText(/.+/).waitFor();
  assert.match(await err.textContent(), /select|read-only|not allowed|refused/i);
  await ctx.close();
});

test("preview notes: will wait for approval, already disabled", async () => {
  const { ctx, page } = await signedIn(env("QUELL_WEB_ADMIN"));
  await hunt(page, byUsername(NOTES));
  await page.getByLabel("Select every row").check();
  await page.getByRole("button", { name: /Actions/ }).click();
  await page.getByRole("menuitem", { name: /^Disable/ }).click();
  const dlg = page.getByRole("dialog", { name: "Disable: 2 identities" });
  await dlg.getByText(/Will wait for approval \(rule tier0\)/).waitFor();
  await dlg.getByText(/already disabled \(as last synced\): nothing to change/).waitFor();
  await dlg.getByText(/1 will wait for approval/).waitFor();
  await page.screenshot({ path: path.join(ART, "preview-notes.png") });
  await dlg.getByRole("button", { name: "Cancel" }).click();
  await dlg.waitFor({ state: "detached" });
  await ctx.close();
});

// One identity from the hunting results: the single preview's lines.
async function previewOne(page, sam, label) {
  await hunt(page, byUsername([sam]));
  await page.getByLabel("Select row 1").check();
  await page.getByRole("button", { name: /Actions/ }).click();
  await page.getByRole("menuitem", { name: new RegExp(`^${label}`) }).click();
  const dlg = page.getByRole("dialog", { name: new RegExp(`^${label}: `) });
  const plan = dlg.getByRole("list", { name: "Accounts this action touches" });
  await plan.getByText(sam, { exact: true }).waitFor();
  return { dlg, plan };
}

test("preview of one: login and state, approval and the tier0 warning, already disabled", async () => {
  const { ctx, page, errors } = await signedIn(env("QUELL_WEB_ADMIN"));
  let { dlg, plan } = await previewOne(page, NOTES[0], "Disable");
  await dlg.getByText(/Will wait for approval \(rule tier0\)/).waitFor();
  await plan.getByText(/^Warning: the identity is tagged tier0/).waitFor();
  await plan.locator("li[data-outcome='change'] .state").getByText("enabled").waitFor();
  assert.match(await plan.locator("li[data-outcome='change'] .login").textContent(), /@/, "the UPN beside the name");
  await page.screenshot({ path: path.join(ART, "preview-approval.png") });
  await dlg.getByRole("button", { name: "Cancel" }).click();
  await dlg.waitFor({ state: "detached" });

  ({ dlg, plan } = await previewOne(page, NOTES[1], "Disable"));
  await plan.locator("li[data-outcome='already']").getByText(/already disabled \(as last synced\): nothing to change/).waitFor();
  await plan.locator("li[data-outcome='already'] .state").getByText("disabled").waitFor();
  await page.screenshot({ path: path.join(ART, "preview-already.png") });
  await dlg.getByRole("button", { name: "Cancel" }).click();
  await dlg.waitFor({ state: "detached" });
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("preview: password never expires will be refused; clear_dont_expire offered and lifts it", async () => {
  const { ctx, page, errors } = await signedIn(env("QUELL_WEB_ADMIN"));
  const sent = [];
  page.on("request", (r) => { if (r.url().endsWith("/api/v1/actions")) sent.push(JSON.parse(r.postData())); });
  const { dlg, plan } = await previewOne(page, NOEXPIRE, "Force password change");
  await plan.locator("li[data-outcome='refused']").getByText(/will be refused: password never expires is set/).waitFor();
  const box = dlg.getByLabel(/clear_dont_expire/);
  await box.waitFor();
  await page.screenshot({ path: path.join(ART, "preview-dont-expire.png") });
  await box.check();
  await plan.locator("li[data-outcome='change']").getByText(NOEXPIRE, { exact: true }).waitFor();
  assert.equal(await plan.locator("li[data-outcome='refused']").count(), 0);
  assert.deepEqual(sent.at(-1).params, { clear_dont_expire: true }, "the preview asked with the option");
  assert.equal(sent.at(-1).preview, true);
  await page.screenshot({ path: path.join(ART, "preview-dont-expire-cleared.png") });
  await dlg.getByRole("button", { name: "Cancel" }).click();
  await dlg.waitFor({ state: "detached" });
  assert.ok(sent.every((b) => b.preview === true), "nothing but previews was requested");
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("cancel: what it ends, then the question; the action waiting for approval ends at once", async () => {
  const { ctx, page, errors } = await signedIn(env("QUELL_WEB_ADMIN"));
  const { dlg } = await previewOne(page, NOTES[0], "Disable");
  await dlg.getByText(/Will wait for approval/).waitFor();
  await dlg.getByLabel(/Reason/).fill("to be cancelled (web e2e)");
  await dlg.getByRole("button", { name: /^Confirm disable/ }).click();
  await page.waitForURL(/#\/actions/);
  await page.getByRole("table", { name: "Actions" }).locator("tr", { hasText: "to be cancelled (web e2e)" })
    .getByRole("link", { name: "Disable" }).click();
  await page.getByRole("heading", { level: 1 }).getByText("pending approval", { exact: true }).waitFor();
  await page.getByRole("button", { name: "Cancel action" }).click();
  const ask = page.getByRole("dialog", { name: /^Cancel disable act_/ });
  const what = ask.getByRole("list", { name: "What this will do" });
  await what.getByText(NOTES[0], { exact: true }).waitFor();
  await what.getByText("will be cancelled before it starts").waitFor();
  await ask.getByText("Waiting for approval: it ends at once, nothing runs.").waitFor();
  assert.equal(await ask.getByLabel(/Reason/).count(), 0, "a cancel records no reason: none is asked for");
  await page.screenshot({ path: path.join(ART, "cancel-preview.png") });
  await ask.getByRole("button", { name: "Cancel action" }).click();
  await page.getByRole("heading", { level: 1 }).getByText("cancelled", { exact: true }).waitFor();
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("identities are listed by name", async () => {
  const { ctx, page } = await signedIn(env("QUELL_WEB_ADMIN"));
  await page.goto(`${URL_}/#/identities?q=${TAG}`);
  const links = page.locator("main table tbody th a[data-panel]");
  // The lab is shared by the whole suite: every page is loaded (the console sorts what
  // it has), and both ends of the alphabet are there before the order is read.
  await links.first().waitFor();
  const more = page.getByRole("button", { name: "Load more" });
  while (await more.isVisible()) {
    const n = await links.count();
    await more.click();
    await page.waitForFunction(([sel, was]) => document.querySelectorAll(sel).length > was,
      ["main table tbody th a[data-panel]", n]);
  }
  await links.filter({ hasText: /^Victim/ }).first().waitFor();
  await links.filter({ hasText: /^Already off/ }).first().waitFor();
  const names = await links.allTextContents();
  assert.ok(names.length >= 5, JSON.stringify(names));
  assert.deepEqual(names, [...names].sort((a, b) => a.localeCompare(b, undefined, { sensitivity: "base" })));
  await ctx.close();
});

test("side panel from the identities list, the action center, hunting and an alert", async () => {
  const { ctx, page, errors } = await signedIn(env("QUELL_WEB_ADMIN"));
  const who = HUNTED[0];
  await page.getByLabel("Search identities").fill(who);
  await page.getByRole("button", { name: "Search" }).click();
  const link = page.locator("main table a[data-panel]").first();
  const name = await link.textContent();
  await link.click();
  await panelShows(page, name, "identities");
  assert.match(page.url(), /#\/identities/, "the page stayed");

  await page.goto(`${URL_}/#/actions`);
  await page.getByRole("table", { name: "Actions" }).getByRole("link", { name, exact: true }).first().click();
  await panelShows(page, name, "actions");

  const results = await hunt(page, byUsername([who]));
  await results.getByRole("link", { name, exact: true }).click();
  await panelShows(page, name, "hunting");

  await page.goto(`${URL_}/#/alert/${ALERT}`);
  await page.getByRole("table", { name: "Entities" }).getByRole("link", { name: VICTIM_NAME }).click();
  const panel = page.getByRole("dialog", { name: VICTIM_NAME });
  await panel.getByText("Contained automatically").waitFor();
  await panel.getByRole("link", { name: "Open full page" }).click();
  await page.waitForURL(new RegExp(`#/identity/${VICTIM}`));
  await page.getByRole("table", { name: "Linked accounts" }).waitFor();
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("alerts: entities resolved or not, the decision, the banner and its release", async () => {
  const { ctx, page, errors } = await signedIn(env("QUELL_WEB_ADMIN"));
  await page.getByRole("link", { name: "Alerts" }).click();
  await page.locator(`tr[data-alert="${ALERT}"]`).getByRole("link").click();
  const ents = page.getByRole("table", { name: "Entities" });
  await ents.getByText("no account in any system has this identifier").waitFor();
  await ents.getByText("resolved to an identity").waitFor();
  const dec = page.getByRole("table", { name: "Decisions, per identity" });
  await dec.locator("tr[data-decision='contained']").getByText("contain-web", { exact: true }).waitFor();
  await page.screenshot({ path: path.join(ART, "alert.png") });

  await page.goto(`${URL_}/#/identity/${VICTIM}`);
  const banner = page.getByRole("region", { name: "Automatic containment" });
  await banner.getByText("contain-web").first().waitFor();
  await banner.getByRole("link", { name: "Ransomware activity (web e2e)" }).first().waitFor();
  await page.getByRole("list", { name: "Alerts on this identity" }).getByText("Ransomware activity (web e2e)").waitFor();
  await page.screenshot({ path: path.join(ART, "contained.png") });
  await banner.getByRole("button", { name: "Release" }).click();
  const ask = page.getByRole("dialog", { name: `Release ${VICTIM_NAME}` });
  // what the release will do: the containment's disable undone, account by account
  const what = ask.getByRole("list", { name: "What this will do" });
  await what.getByText("will be undone:").first().waitFor();
  await what.locator("li[data-outcome='change'] .state").getByText("disabled").first().waitFor();
  await what.getByText(/sign-in allowed again/).first().waitFor();
  await page.screenshot({ path: path.join(ART, "release-preview.png") });
  await ask.getByLabel(/Reason/).fill("false positive (web e2e)");
  await ask.getByRole("button", { name: "Release" }).click();
  await banner.waitFor({ state: "detached", timeout: 60000 });
  await page.getByRole("table", { name: "Actions on this identity" }).getByText("Enable").first().waitFor();
  await page.screenshot({ path: path.join(ART, "released.png") });

  // the decision list now says released
  await page.goto(`${URL_}/#/alert/${ALERT}`);
  await page.getByRole("table", { name: "Decisions, per identity" }).locator("tr[data-decision='released']").waitFor();
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("names and zones: the audit page names identities; the UTC toggle rewrites times", async () => {
  const { ctx, page } = await signedIn(env("QUELL_WEB_ADMIN"));
  await page.getByRole("link", { name: "Audit" }).click();
  await page.getByText(/Hash chain verified/).waitFor();
  await page.getByLabel("Event").fill("action.requested");
  const rows = page.getByRole("table", { name: "Audit entries" }).locator("tbody tr");
  await rows.first().waitFor();
  // Names are looked up after the rows are drawn.
  await page.waitForFunction(() => {
    const t = [...document.querySelectorAll("table")]
      .find((x) => x.caption && x.caption.textContent === "Audit entries");
    const who = t ? [...t.querySelectorAll("tbody tr td:nth-child(6) a")] : [];
    return who.length > 0 && who.every((a) => !/^idn_/.test(a.textContent));
  }, null, { timeout: 10000 }).catch(() => {});
  const who = await rows.locator("td:nth-child(6) a").allTextContents();
  assert.ok(who.length > 0);
  for (const n of who) assert.doesNotMatch(n, /^idn_/, "the name, not the id");
  await page.getByRole("table", { name: "Audit entries" }).getByText(VICTIM_NAME).first().waitFor();
  const t = rows.first().locator("time");
  await page.getByLabel("Times in UTC").check();
  assert.match(await t.textContent(), /UTC/);
  await page.screenshot({ path: path.join(ART, "audit-names.png") });
  await ctx.close();
});
