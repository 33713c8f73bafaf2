// Undo from the console, after approvals.test.mjs disabled the tier0 identity: the
// inverse action is requested with a reason, waits for approval like any action on
// that identity (approved here in bulk, by type), runs, and the two actions link to
// each other. Run by tests/e2e/test_web.py (which then checks kinit works again).
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { env, URL_, ART, signedIn } from "./lib.mjs";

const VIP = env("QUELL_WEB_VIP_ID");

test("undo: enable again, approved in bulk, linked both ways", async () => {
  const rq = await signedIn(env("QUELL_WEB_REQUESTER"));
  const page = rq.page;
  await page.goto(`${URL_}/#/identity/${VIP}`);
  await page.getByRole("table", { name: "Actions on this identity" })
    .getByRole("link", { name: "Disable" }).first().click();
  await page.getByRole("heading", { level: 1 }).getByText("completed", { exact: true }).waitFor();
  const orig = page.url().split("/").pop();

  await page.getByRole("button", { name: "Undo", exact: true }).click();
  const dlg = page.getByRole("dialog");
  const confirm = dlg.getByRole("button", { name: "Undo: enable" });
  assert.ok(await confirm.isDisabled(), "undo needs a reason first");
  // the undo's own preview: the account, as it is now, enabled again, after approval
  const plan = dlg.getByRole("list", { name: "What this will do" });
  await plan.locator("li[data-outcome='change'] .state").getByText("disabled").waitFor();
  await plan.getByText(/sign-in allowed again/).waitFor();
  await dlg.getByText(/Will wait for approval \(rule tier0\)/).waitFor();
  await plan.getByText(/^Warning: the identity is tagged tier0/).waitFor();
  await page.screenshot({ path: path.join(ART, "undo-preview.png") });
  await dlg.getByLabel(/Reason/).fill("false positive (web e2e)");
  await confirm.click();
  await page.waitForURL((u) => /#\/action\/act_/.test(u.hash) && !u.hash.endsWith(orig));
  const undo = page.url().split("/").pop();
  const h1 = page.getByRole("heading", { level: 1 });
  await h1.getByText("Enable").waitFor();
  await h1.getByText("pending approval", { exact: true }).waitFor();
  const back = page.locator("dl.facts dt:has-text('Undoes') + dd a");
  assert.equal(await back.textContent(), orig);
  await page.screenshot({ path: path.join(ART, "undo.png") });
  await rq.ctx.close();

  const ap = await signedIn(env("QUELL_WEB_APPROVER"));
  await ap.page.goto(`${URL_}/#/actions?tab=pending`);
  const row = ap.page.locator(`tr[data-action="${undo}"]`);
  await row.waitFor();
  await ap.page.getByLabel("All pending of type").selectOption("enable");
  await ap.page.getByRole("button", { name: "Approve all" }).click();
  const ask = ap.page.getByRole("dialog");
  await ask.getByRole("button", { name: "Approve all" }).click();
  await row.waitFor({ state: "detached" });
  assert.equal(await ap.page.locator("#pending-refusals").textContent(), "");

  await ap.page.goto(`${URL_}/#/action/${undo}`);
  await ap.page.getByRole("heading", { level: 1 }).getByText("completed", { exact: true }).waitFor();
  // the original now points at its undo, and offers no second one
  await ap.page.goto(`${URL_}/#/action/${orig}`);
  const fwd = ap.page.locator("dl.facts dt:has-text('Undone by') + dd a");
  await fwd.waitFor();
  assert.equal(await fwd.textContent(), undo);
  await ap.page.screenshot({ path: path.join(ART, "undo-linked.png") });
  assert.deepEqual(ap.errors, []);
  await ap.ctx.close();

  const again = await signedIn(env("QUELL_WEB_REQUESTER"));
  await again.page.goto(`${URL_}/#/action/${orig}`);
  await again.page.locator("dl.facts dt:has-text('Undone by') + dd a").waitFor();
  assert.equal(await again.page.getByRole("button", { name: "Undo", exact: true }).count(), 0);
  await again.ctx.close();
});
