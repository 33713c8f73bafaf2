// The two-person rule in the console: a requester's disable on a tier0 identity waits in
// Pending; their own Approve is refused with the server's words; a second person
// approves it and it runs. Run by tests/e2e/test_web.py (which then checks kinit).
// Environment: QUELL_WEB_URL, QUELL_WEB_REQUESTER (+ _NAME), QUELL_WEB_APPROVER,
// QUELL_WEB_RESPONDER (may request, not approve), QUELL_WEB_VIP_ID / _SAM.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { env, URL_, ART, signedIn } from "./lib.mjs";

const VIP = env("QUELL_WEB_VIP_ID");
const SAM = env("QUELL_WEB_VIP_SAM");
const NAME = env("QUELL_WEB_REQUESTER_NAME");

test("pending: the requester is refused, the approver approves, the disable runs", async () => {
  const rq = await signedIn(env("QUELL_WEB_REQUESTER"));
  const page = rq.page;
  await page.goto(`${URL_}/#/identity/${VIP}`);
  await page.getByRole("button", { name: /Actions/ }).click();
  await page.getByRole("menuitem", { name: /^Disable/ }).click();
  const dlg = page.getByRole("dialog");
  await dlg.getByRole("list", { name: "Accounts this action touches" }).getByText(SAM, { exact: true }).waitFor();
  await dlg.getByLabel(/Reason/).fill("tier0 compromise (web e2e)");
  await dlg.getByRole("button", { name: /Confirm disable/ }).click();
  await page.waitForURL(/#\/action\/act_/);
  const id = page.url().split("/").pop();
  await page.getByRole("heading", { level: 1 }).getByText("pending approval", { exact: true }).waitFor();
  const facts = page.locator("dl.facts");
  assert.equal(await facts.locator("dt:has-text('Approval rule') + dd").textContent(), "tier0");
  await facts.locator("dt:has-text('Approve before') + dd time").waitFor();

  // the requester holds response.approve, so the buttons are there; the server says no
  await page.goto(`${URL_}/#/actions?tab=pending`);
  const row = page.locator(`tr[data-action="${id}"]`);
  await row.waitFor();
  await row.getByRole("button", { name: /^Approve/ }).click();
  const ask = page.getByRole("dialog");
  await ask.getByRole("button", { name: "Approve", exact: true }).click();
  const refusals = page.locator("#pending-refusals");
  await refusals.getByText(/cannot approve or reject it: a second person must/).waitFor();
  assert.match(await refusals.textContent(), new RegExp(`${id}: ${NAME} requested this action`));
  await page.screenshot({ path: path.join(ART, "pending-refused.png") });
  await row.waitFor();
  await rq.ctx.close();

  // a principal without response.approve sees the row, and no way to decide it
  const rs = await signedIn(env("QUELL_WEB_RESPONDER"));
  await rs.page.goto(`${URL_}/#/actions?tab=pending`);
  await rs.page.locator(`tr[data-action="${id}"]`).waitFor();
  assert.equal(await rs.page.getByRole("button", { name: /Approve|Reject/ }).count(), 0);
  await rs.ctx.close();

  const ap = await signedIn(env("QUELL_WEB_APPROVER"));
  await ap.page.getByRole("link", { name: "Action center" }).click();
  await ap.page.getByRole("tab", { name: "Pending" }).click();
  const arow = ap.page.locator(`tr[data-action="${id}"]`);
  await arow.waitFor();
  const cells = arow.locator("td");
  assert.equal(await cells.nth(3).textContent(), NAME);
  assert.equal(await cells.nth(5).textContent(), "tier0");
  assert.ok(await cells.nth(6).locator("time").count(), "the deadline is shown");
  await ap.page.screenshot({ path: path.join(ART, "pending.png") });

  // Reject asks for a reason before it can be confirmed; cancelling it changes nothing
  await arow.getByRole("button", { name: /^Reject/ }).click();
  const rej = ap.page.getByRole("dialog");
  assert.ok(await rej.getByRole("button", { name: "Reject", exact: true }).isDisabled());
  await rej.getByRole("button", { name: "Cancel" }).click();
  await rej.waitFor({ state: "detached" });

  await arow.getByRole("button", { name: /^Approve/ }).click();
  const ok = ap.page.getByRole("dialog");
  await ok.getByLabel(/Reason/).fill("checked with the owner (web e2e)");
  await ok.getByRole("button", { name: "Approve", exact: true }).click();
  await arow.waitFor({ state: "detached" });
  await ap.page.goto(`${URL_}/#/action/${id}`);
  await ap.page.getByRole("heading", { level: 1 }).getByText("completed", { exact: true }).waitFor();
  await ap.page.locator("dl.facts dt:has-text('Decided by') + dd").getByText("e2e-dave").waitFor();
  await ap.page.getByRole("table", { name: /Steps/ }).getByText("succeeded").waitFor();
  assert.deepEqual(ap.errors, []);
  await ap.ctx.close();
});
