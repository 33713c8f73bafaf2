// The audit log, page by page, filtered by event and actor here in the page, with the
// hash chain's verification status from quelld.
import { h, clear, timeEl } from "./dom.js";
import { get, qs } from "./api.js";
import { learnNames, identityLink } from "./names.js";

export async function render(main) {
  const verify = h("p.verify", { role: "status", text: "Verifying the hash chain…" });
  const ev = h("input", { id: "a-event", type: "search", placeholder: "e.g. action.requested" });
  const actor = h("input", { id: "a-actor", type: "search", placeholder: "e.g. e2e-admin" });
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true, text: "Load more" });
  clear(main).append(h("h1", { text: "Audit log" }), verify,
    h("form.filters", { "aria-label": "Filters", onsubmit: (e) => e.preventDefault() },
      h("span.field", {}, h("label", { for: "a-event", text: "Event" }), ev),
      h("span.field", {}, h("label", { for: "a-actor", text: "Actor" }), actor)),
    h("div.scroll", {}, h("table.list", {}, h("caption.sr", { text: "Audit entries" }),
      h("thead", {}, h("tr", {}, ["#", "Time", "Actor", "Event", "Action", "Identity", "Detail"]
        .map((t) => h("th", { scope: "col", text: t })))), body)), more);
  // Newest first: seq is dense from 1, so the last page starts at count - PAGE.
  const PAGE = 200;
  let entries = [], start = null;
  function draw() {
    const fe = ev.value.trim().toLowerCase(), fa = actor.value.trim().toLowerCase();
    clear(body);
    for (const e of entries) {
      if (fe && !String(e.event).toLowerCase().includes(fe)) continue;
      if (fa && !String(e.actor).toLowerCase().includes(fa)) continue;
      body.append(h("tr", {}, h("td", { text: String(e.seq) }), h("td", {}, timeEl(e.time)),
        h("td", { text: e.actor }), h("td.mono", { text: e.event }),
        h("td", {}, e.action_id ? h("a", { href: `#/action/${e.action_id}`, text: e.action_id }) : "—"),
        h("td", {}, identityLink(e.identity_id)),
        h("td.mono.detail", { text: JSON.stringify(e.detail || {}) })));
    }
  }
  async function page() {
    const end = start;
    start = Math.max(0, end - PAGE);
    const j = await get("/api/v1/audit" + qs({ after: start, limit: Math.max(1, end - start) }));
    entries = entries.concat(j.entries.filter((e) => e.seq <= end).reverse());
    await learnNames(entries.map((e) => e.identity_id));
    more.hidden = start === 0;
    draw();
  }
  ev.addEventListener("input", draw);
  actor.addEventListener("input", draw);
  more.textContent = "Load older";
  more.addEventListener("click", page);
  const v = await get("/api/v1/audit/verify").catch((e) => ({ error: e }));
  if (v.error) verify.textContent = "Cannot verify: " + v.error.message;
  else {
    verify.className = "verify " + (v.ok ? "ok" : "bad");
    verify.textContent = v.ok
      ? `Hash chain verified: ${v.entries} entries, head ${String(v.head).slice(0, 16)}…`
      : `Hash chain BROKEN at entry ${v.first_broken}: ${v.reason}`;
  }
  // page() shows the PAGE entries below start: from the head, or around a break.
  start = (v.ok === false ? v.first_broken + PAGE / 2 : v.entries || 0) + 1;
  await page();
}
