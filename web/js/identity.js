// One identity: its accounts, its alerts and automatic containment, the actions taken
// on it, and its Actions menu.
import { h, clear, timeEl, badge, actionLabel, TERMINAL } from "./dom.js";
import { get, qs, can } from "./api.js";
import { actionsButton } from "./menu.js";
import { accountCells, tags } from "./identities.js";
import { remember } from "./names.js";
import { forIdentity, alertList, containmentBanner } from "./alerts.js";

export async function render(main, id, ctx) {
  const idn = await get(`/api/v1/identities/${encodeURIComponent(id)}`);
  remember(idn);
  const { alerts, contained } = await forIdentity(idn.id);
  const hist = h("tbody");
  const head = h("div.head", {},
    h("div", {}, h("h1", { text: idn.display_name }),
      h("p.sub.mono", { text: idn.id }), tags(idn.tags)),
    actionsButton(idn, (a) => { location.hash = `#/action/${a.id}`; }));
  const accts = h("table.list", {},
    h("caption", { text: "Linked accounts" }),
    h("thead", {}, h("tr", {}, ["System", "Account", "State", "State read", "Distinguished name"]
      .map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, (idn.accounts || []).map((a) =>
      h("tr", {}, ...accountCells(a), h("td.mono.dn", { text: a.dn || "—" })))));
  clear(main).append(head, containmentBanner(idn, contained, () => window.dispatchEvent(new HashChangeEvent("hashchange"))) || "",
    h("div.scroll", {}, accts), h("h2.small", { text: "Alerts" }), alertList(alerts));
  if (!can("response.read")) return;
  main.append(h("div.scroll", {}, h("table.list", {},
    h("caption", { text: "Actions on this identity" }),
    h("thead", {}, h("tr", {}, ["Action", "Status", "Account", "Requested by", "Source", "Reason", "Requested"]
      .map((t) => h("th", { scope: "col", text: t })))),
    hist)));
  async function load() {
    const j = await get("/api/v1/actions" + qs({ identity_id: idn.id, limit: 50 }));
    clear(hist);
    for (const a of j.actions) {
      hist.append(h("tr", {},
        h("td", {}, h("a", { href: `#/action/${a.id}`, text: actionLabel(a.type) })),
        h("td", {}, badge(a.status)),
        h("td", { text: a.account_id ? a.account_name || a.account_id : "all linked accounts" }),
        h("td", { text: a.requested_by }),
        h("td", { text: a.source }), h("td.reason", { text: a.reason || "" }),
        h("td", {}, timeEl(a.created_at))));
    }
    if (!j.actions.length) hist.append(h("tr", {}, h("td", { colspan: "7", text: "No actions yet." })));
    return j.actions.some((a) => !TERMINAL.has(a.status));
  }
  ctx.poll(load);
}
