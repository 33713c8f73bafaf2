// Identities: search by name, UPN, login or SID; each account with its last known state.
import { h, clear, timeEl, badge } from "./dom.js";
import { get, qs } from "./api.js";
import { showMenu, actionsButton } from "./menu.js";
import { can } from "./api.js";
import { identityLink, remember } from "./names.js";

const byName = (a, b) => String(a.display_name).localeCompare(String(b.display_name), undefined, { sensitivity: "base" });

export function accountCells(a) {
  return [
    h("td", { text: a.system }),
    h("td", {}, h("span", { text: a.username || a.upn || a.external_id || a.id }),
      a.upn && a.username ? h("div.sub", { text: a.upn }) : null,
      a.sid ? h("div.sub.mono", { text: a.sid }) : null),
    h("td", {}, a.state ? badge(a.state) : h("span", { text: "unknown" })),
    h("td", {}, timeEl(a.state_read_at)),
  ];
}

export function tags(list) {
  return h("span.tags", {}, (list || []).map((t) => h("span.tag", { text: t })));
}

export async function render(main, params) {
  const q = params.get("q") || "";
  const input = h("input", { type: "search", id: "search", name: "q", value: q,
    placeholder: "name, UPN, login or SID", autocomplete: "off" });
  const form = h("form.search", { role: "search", onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = "#/identities" + qs({ q: input.value.trim() });
  } }, h("label", { for: "search", text: "Search identities" }), input,
  h("button", { type: "submit", text: "Search" }));
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true, text: "Load more" });
  const table = h("table.list", {},
    h("caption.sr", { text: "Identities and their linked accounts" }),
    h("thead", {}, h("tr", {}, ["Identity", "Tags", "System", "Account", "State", "State read"]
      .map((t) => h("th", { scope: "col", text: t })))),
    body);
  clear(main).append(h("h1", { text: "Identities" }), form, h("div.scroll", {}, table), more);
  let after = null, loaded = [];
  async function page() {
    const j = await get("/api/v1/identities" + qs({ q, limit: 50, after }));
    // Sorted by name over everything loaded: the API pages in id order.
    loaded = loaded.concat(j.identities).sort(byName);
    clear(body);
    for (const idn of loaded) { remember(idn); addRow(idn); }
    if (!body.firstChild) body.append(h("tr", {}, h("td", { colspan: "6", text: "No identity matches." })));
    after = j.next;
    more.hidden = !after;
  }
  function addRow(idn) {
    const accts = idn.accounts && idn.accounts.length ? idn.accounts : [{}];
    accts.forEach((a, i) => {
      const tr = h("tr", { "data-identity": idn.id });
      if (i === 0) {
        tr.append(h("th", { scope: "row", rowspan: String(accts.length) },
          identityLink(idn.id, idn.display_name)),
          h("td", { rowspan: String(accts.length) }, tags(idn.tags)));
      }
      tr.append(...(a.id ? accountCells(a) : [h("td", { colspan: "4", text: "no linked account" })]));
      if (can("response.manage")) {
        tr.addEventListener("contextmenu", (ev) => {
          ev.preventDefault();
          const r = ev.currentTarget.getBoundingClientRect();
          const x = ev.clientX || r.left + 20, y = ev.clientY || r.bottom;
          showMenu(idn, { x, y, onDone: (act) => { location.hash = `#/action/${act.id}`; } });
        });
      }
      body.append(tr);
    });
  }
  more.addEventListener("click", page);
  await page();
}

export { actionsButton };
