// The identity side panel: a plain click on an identity's link anywhere opens it over the
// page (accounts per system, state, tags, alerts, containment, Actions), so the analyst
// keeps their place; its "Open full page" link, or a modified click, goes to the page.
import { h, clear, badge, timeEl } from "./dom.js";
import { get } from "./api.js";
import { actionsButton } from "./menu.js";
import { tags } from "./identities.js";
import { remember } from "./names.js";
import { forIdentity, alertList, containmentBanner } from "./alerts.js";

let current = null;

function close() {
  if (current) current.close();
}

function systemsBlock(accounts) {
  const by = new Map();
  for (const a of accounts || []) by.set(a.system, [...(by.get(a.system) || []), a]);
  if (!by.size) return h("p.sub", { text: "No linked account." });
  return h("div", {}, [...by].map(([sys, list]) => h("section.sys", { "aria-label": `Accounts in ${sys}` },
    h("h3", { text: sys }),
    h("ul.accts", {}, list.map((a) => h("li", { "data-account": a.id },
      h("span", { text: a.username || a.upn || a.external_id || a.id }), " ",
      a.state ? badge(a.state) : h("span.sub", { text: "state unknown" }),
      a.upn && a.username ? h("div.sub", { text: a.upn }) : null,
      h("div.sub", {}, "state read ", timeEl(a.state_read_at))))))));
}

export async function openPanel(id) {
  close();
  const body = h("div.panel-body", {}, h("p.sub", { text: "Loading…" }));
  const dlg = h("dialog.panel", { "aria-labelledby": "panel-title" },
    h("div.panel-top", {}, h("h2", { id: "panel-title", text: "Identity" }),
      h("button", { type: "button", "aria-label": "Close the side panel", text: "✕", onclick: close })), body);
  dlg.addEventListener("close", () => { dlg.remove(); if (current === dlg) current = null; });
  dlg.addEventListener("click", (ev) => { if (ev.target === dlg) close(); });
  document.body.append(dlg);
  current = dlg;
  dlg.showModal();
  try {
    const idn = await get(`/api/v1/identities/${encodeURIComponent(id)}`);
    remember(idn);
    dlg.querySelector("#panel-title").textContent = idn.display_name;
    const full = h("a", { href: `#/identity/${encodeURIComponent(idn.id)}`, text: "Open full page", onclick: close });
    const { alerts, contained } = await forIdentity(idn.id);
    const open = () => openPanel(idn.id);
    clear(body).append(
      h("p.sub.mono", { text: idn.id }), tags(idn.tags),
      h("div.bar", {}, actionsButton(idn, (a) => { close(); location.hash = `#/action/${a.id}`; }), full),
      containmentBanner(idn, contained, open) || "",
      h("h3", { text: "Linked accounts" }), systemsBlock(idn.accounts),
      h("h3", { text: "Alerts" }), alertList(alerts));
  } catch (e) {
    clear(body).append(h("p.error", { role: "alert", text: e.message }));
  }
}

// One listener for the whole document: links made with names.identityLink carry
// data-panel; a click with a modifier or another button keeps its usual meaning.
export function install() {
  document.addEventListener("click", (ev) => {
    const a = ev.target instanceof Element ? ev.target.closest("a[data-panel]") : null;
    if (!a || ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.altKey) return;
    ev.preventDefault();
    openPanel(a.dataset.panel);
  });
}
