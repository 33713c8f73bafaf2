// Alerts: what the detectors sent, which entities quell resolved to identities (and why
// not), and what automatic attack disruption decided per identity; and an identity's
// alerts with the automatic containment still in force, which Release ends.
import { h, clear, timeEl, badge, actionLabel, toast, askReason } from "./dom.js";
import { get, post, qs, can } from "./api.js";
import { identityLink, learnNames } from "./names.js";
import { stepLine, warningLines } from "./menu.js";

const WHY = {
  resolved: "resolved to an identity",
  unknown: "no account in any system has this identifier",
  unlinked: "the account is known but linked to no identity",
  ambiguous: "more than one identity has this identifier: none was chosen",
};

const OUTCOME = {
  contained: "contained", held: "held for approval (blast-radius limit)", dry_run: "dry run: nothing done",
  excluded: "excluded", duplicate: "duplicate: already contained", no_rule: "no rule matched",
  failed: "failed", released: "released", release_partial: "released in part: some accounts stay contained",
  out_of_scope: "beyond what the alert's poster may act on",
};

const ENDED = new Set(["failed", "cancelled", "denied", "rejected"]);
const RELEASES = new Set(["released", "release_partial"]);

function th(list) {
  return h("thead", {}, h("tr", {}, list.map((t) => h("th", { scope: "col", text: t }))));
}

export async function render(main, params) {
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true, text: "Load more" });
  clear(main).append(h("h1", { text: "Alerts" }),
    h("p.sub", { text: "Alerts from the detectors, newest first; open one for its entities and the decisions it caused." }),
    h("div.scroll", {}, h("table.list", {}, h("caption.sr", { text: "Alerts" }),
      th(["Alert", "Source", "Category", "Severity", "Confidence", "Time", "Received"]), body)), more);
  let before = null;
  async function page() {
    const j = await get("/api/v1/alerts" + qs({ limit: 50, before, source: params.get("source") }));
    for (const a of j.alerts) {
      body.append(h("tr", { "data-alert": a.id },
        h("td", {}, h("a", { href: `#/alert/${encodeURIComponent(a.id)}`, text: a.title }), h("div.sub.mono", { text: a.id })),
        h("td", { text: a.source }), h("td", { text: a.category.replace(/_/g, " ") }),
        h("td", {}, h("span.sev.sev-" + a.severity.replace(/[^a-z]/g, ""), { text: a.severity })),
        h("td", { text: String(a.confidence) }), h("td", {}, timeEl(a.time)), h("td", {}, timeEl(a.received_at))));
    }
    if (!body.firstChild) body.append(h("tr", {}, h("td", { colspan: "7", text: "No alert yet." })));
    before = j.next;
    more.hidden = !before;
  }
  more.addEventListener("click", page);
  await page();
}

function entityRows(list) {
  return list.map((e) => h("tr", { "data-entity": e.value },
    h("td", { text: e.type }), h("td", { text: e.id_type || "—" }), h("td.mono", { text: e.value }),
    h("td", {}, badge(e.resolution || "—"), h("div.sub", { text: WHY[e.resolution] || "" })),
    h("td", {}, e.identity_id ? identityLink(e.identity_id) : "—")));
}

// A decision's detail as words: why, and the actions it requested or ended.
function decisionDetail(d) {
  const acts = (list) => (list || []).map((a) => typeof a === "string" ? { action_id: a } : a)
    .map((a) => h("span", {}, h("a", { href: `#/action/${a.action_id}`, text: a.type ? actionLabel(a.type) : a.action_id }), " "));
  const why = d.why || d.reason || d.message;
  return [why ? h("div", { text: why }) : null,
    d.actions?.length ? h("div", {}, "Actions: ", acts(d.actions)) : null,
    d.ended?.length ? h("div", {}, "Ended: ", acts(d.ended)) : null,
    d.by ? h("div.sub", { text: `by ${d.by}` }) : null];
}

function decisionRows(list) {
  return list.map((d) => h("tr", { "data-decision": d.outcome },
    h("td", {}, d.identity_id ? identityLink(d.identity_id) : "—"),
    h("td", {}, badge(d.outcome), h("div.sub", { text: OUTCOME[d.outcome] || "" })),
    h("td", { text: d.rule || "—" }),
    h("td.detail", {}, decisionDetail(d.detail || {})),
    h("td", {}, timeEl(d.created_at))));
}

export async function renderAlert(main, id) {
  const a = await get(`/api/v1/alerts/${encodeURIComponent(id)}`);
  const ents = a.entities || [], decs = a.decisions || [], acts = a.actions || [];
  await learnNames([...ents, ...decs, ...acts].map((x) => x.identity_id));
  clear(main).append(h("p", {}, h("a", { href: "#/alerts", text: "← Alerts" })),
    h("h1", { text: a.title }), h("p.sub.mono", { text: a.id }),
    h("dl.facts", {}, [["Source", a.source], ["Source's id", a.source_alert_id],
      ["Category", a.category.replace(/_/g, " ")], ["Severity", a.severity], ["Confidence", String(a.confidence)]]
      .flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]),
    h("dt", { text: "Time" }), h("dd", {}, timeEl(a.time)), h("dt", { text: "Received" }), h("dd", {}, timeEl(a.received_at))),
    h("div.scroll", {}, h("table.list", {}, h("caption", { text: "Entities" }),
      th(["Type", "Identifier", "Value", "Resolution", "Identity"]), h("tbody", {}, entityRows(ents)))),
    h("div.scroll", {}, h("table.list", {}, h("caption", { text: "Decisions, per identity" }),
      th(["Identity", "Decision", "Rule", "Detail", "Decided"]),
      h("tbody", {}, decs.length ? decisionRows(decs) : h("tr", {}, h("td", { colspan: "5", text: "No decision: no identity resolved." }))))),
    h("div.scroll", {}, h("table.list", {}, h("caption", { text: "Actions this alert caused" }),
      th(["Action", "Status", "Identity", "Requested"]),
      h("tbody", {}, acts.map((x) => h("tr", { "data-action": x.id },
        h("td", {}, h("a", { href: `#/action/${x.id}`, text: actionLabel(x.type) })), h("td", {}, badge(x.status)),
        h("td", {}, identityLink(x.identity_id)), h("td", {}, timeEl(x.created_at))))))));
}

// Ids are checked before they go into a hunting query's text: hunting takes no parameters.
const SAFE_ID = /^[A-Za-z0-9_-]{1,64}$/;

// {alerts: [alert], contained: [{action, alert, rule}]} for identity id: the alerts its
// actions name, and (for a principal who may hunt) every alert an entity resolved to it.
export async function forIdentity(id) {
  if (!can("response.read")) return { alerts: [], contained: [] };
  const acts = (await get("/api/v1/actions" + qs({ identity_id: id, limit: 200 }))).actions;
  const ids = new Set(acts.map((a) => a.alert_id).filter(Boolean));
  if (can("hunting.query") && SAFE_ID.test(id)) {
    try {
      const j = await post("/api/v1/hunting/query", { limit: 100,
        query: `SELECT DISTINCT alert_id FROM AlertEntities WHERE identity_id = '${id}'` });
      for (const [a] of j.rows) ids.add(a);
    } catch { /* the actions' alerts are still shown */ }
  }
  const alerts = (await Promise.all([...ids].map((a) => get(`/api/v1/alerts/${encodeURIComponent(a)}`).catch(() => null))))
    .filter(Boolean).sort((x, y) => String(y.time).localeCompare(String(x.time)));
  // As the engine reads it: an undo that completed, or a release naming the action, ends it.
  const ended = new Set(acts.filter((a) => a.undo_of && a.status === "completed").map((a) => a.undo_of));
  const decisions = alerts.flatMap((x) => x.decisions || []).filter((d) => d.identity_id === id);
  let since = "";	// a release that names no actions ends every one older
  for (const d of decisions.filter((x) => RELEASES.has(x.outcome))) {
    if (Array.isArray(d.detail?.ended)) for (const a of d.detail.ended) ended.add(a);
    else if (d.created_at > since) since = d.created_at;
  }
  const contained = [];
  for (const act of acts) {
    if (act.source !== "automatic_attack_disruption" || !act.alert_id || ENDED.has(act.status) ||
      ended.has(act.id) || act.created_at < since) continue;
    const alert = alerts.find((x) => x.id === act.alert_id);
    const dec = (alert?.decisions || []).find((d) => d.identity_id === id && d.outcome === "contained");
    contained.push({ action: act, alert, rule: dec?.rule || "" });
  }
  return { alerts, contained };
}

export function alertList(alerts) {
  if (!alerts.length) return h("p.sub", { text: "No alert names this identity." });
  return h("ul.alerts", { "aria-label": "Alerts on this identity" }, alerts.map((a) => h("li", {},
    h("a", { href: `#/alert/${encodeURIComponent(a.id)}`, text: a.title }), " ",
    h("span.sev.sev-" + a.severity.replace(/[^a-z]/g, ""), { text: a.severity }), " ",
    h("span.sub", { text: `${a.source}, ${a.category.replace(/_/g, " ")}, ` }), timeEl(a.time))));
}

// The "contained automatically" banner with its Release, or null when nothing is in force.
// What releasing will do to each containment in force, as the release's own preview
// says: cancelled, undone (the undo's accounts and whether it waits for approval),
// no longer counted, or refused and why.
async function releasePreview(idn, list) {
  const j = await post(`/api/v1/identities/${encodeURIComponent(idn.id)}/release`, { reason: "preview", preview: true });
  for (const c of j.results) {
    const steps = h("ul.plan");
    for (const l of c.preview?.accounts || []) {
      const s = { id: l.step_id, account_name: l.account_name, system: l.system,
        status: l.outcome === "not_supported" ? "not_applicable" : "queued" };
      steps.append(stepLine("enable", s, null, null, l));
    }
    steps.append(...warningLines(c.preview));
    list.append(h("li.plan-idn", { "data-action": c.action_id, "data-outcome": c.outcome },
      h("strong", { text: actionLabel(c.type) }), ` (${c.action_id}) — `,
      h("span", { text: c.outcome === "undo" ? "will be undone:" : c.note }),
      c.approval_rule ? h("p.approval", { role: "note", text: `Will wait for approval (rule ${c.approval_rule}).` }) : null,
      steps));
  }
}

export function containmentBanner(idn, contained, onReleased) {
  if (!contained.length) return null;
  const err = h("p.error", { role: "alert" });
  const release = can("response.manage") ? h("button", { type: "button", text: "Release", onclick: async () => {
    const reason = await askReason({ title: `Release ${idn.display_name}`, confirm: "Release",
      preview: (list) => releasePreview(idn, list) });
    if (reason === null) return;
    try {
      const j = await post(`/api/v1/identities/${encodeURIComponent(idn.id)}/release`, { reason });
      toast(j.released === false ? "Release requested: some accounts are still contained" : "Released");
      if (onReleased) onReleased(j);
    } catch (e) { err.textContent = e.message; }
  } }) : null;
  return h("div.banner", { role: "region", "aria-label": "Automatic containment" },
    h("div", {}, contained.map((c) => h("p", {},
      h("strong", { text: "Contained automatically" }), ` (${actionLabel(c.action.type).toLowerCase()}) by rule `,
      h("strong.rule", { text: c.rule || "?" }), " for alert ",
      h("a", { href: `#/alert/${encodeURIComponent(c.action.alert_id)}`, text: c.alert?.title || c.action.alert_id }),
      " — ", h("a", { href: `#/action/${c.action.id}`, text: c.action.status.replace(/_/g, " ") }))), err),
    release);
}
