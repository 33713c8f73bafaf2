// Advanced hunting: one read-only query over the documented views (docs/hunting.md),
// run by POST /api/v1/hunting/query under the API's own guard and limits; rows naming an
// identity (or an account) can be selected and acted on through the Actions menu.
import { h, clear, toast } from "./dom.js";
import { get, post } from "./api.js";
import { actionsButton } from "./menu.js";
import { identityLink, learnNames, remember } from "./names.js";
import { csvCell, download } from "./csv.js";

const SCHEMA = {
  IdentityInfo: "identity_id, display_name, tags, created_at, accounts",
  IdentityAccounts: "account_id, identity_id, system, kind, external_id, sid, dn, username, upn, display_name, email, state, synced, risk, link_rule, linked_by, linked_at, state_read_at",
  Alerts: "alert_id, source, source_alert_id, time, title, category, severity, confidence, received_at",
  AlertEntities: "alert_id, seq, entity_type, id_type, value, identity_id, account_id, resolution",
  Actions: "action_id, type, status, identity_id, account_id, requested_by, source, alert_id, reason, message, undo_of, approval_rule, decided_by, created_at, finished_at",
  ActionSteps: "step_id, action_id, identity_id, account_id, system, account_name, type, status, attempts, request_id, error_code, message, started_at, finished_at",
  AuditEvents: "seq, time, actor, event, action_id, step_id, identity_id, detail, actor_kind, actor_id, client",
};

const EXAMPLES = [
  ["Enabled AD accounts", "SELECT identity_id, display_name, username, state\nFROM IdentityAccounts\nWHERE kind = 'ad' AND state = 'enabled'\nORDER BY display_name"],
  ["Identities in password-spray alerts", "SELECT e.identity_id, count(*) AS alerts\nFROM AlertEntities e JOIN Alerts a USING (alert_id)\nWHERE a.category = 'password_spray' AND e.identity_id IS NOT NULL\nGROUP BY 1 ORDER BY alerts DESC"],
  // The examples run on either store's hunting (SQLite's, PostgreSQL's): no date functions.
  ["Failed steps, newest first", "SELECT action_id, identity_id, account_name, system, error_code, message, finished_at\nFROM ActionSteps\nWHERE status = 'failed'\nORDER BY finished_at DESC\nLIMIT 200"],
  ["Unresolved alert entities", "SELECT alert_id, entity_type, id_type, value, resolution\nFROM AlertEntities WHERE resolution <> 'resolved'"],
];

// Ids are checked before they go into a query's text: hunting takes no parameters.
const SAFE_ID = /^[A-Za-z0-9_-]{1,64}$/;

function exportCsv(res) {
  download("quell-hunting.csv", [res.columns].concat(res.rows).map((r) => r.map(csvCell).join(",")));
}

// The identity each row names: its identity_id, or the identity of its account_id.
async function rowIdentities(res) {
  const ic = res.columns.indexOf("identity_id"), ac = res.columns.indexOf("account_id");
  if (ic >= 0) return res.rows.map((r) => r[ic] || null);
  if (ac < 0) return null;
  const accts = [...new Set(res.rows.map((r) => r[ac]).filter((a) => a && SAFE_ID.test(a)))];
  const of = new Map();
  if (accts.length) {
    const j = await post("/api/v1/hunting/query", { limit: 10000,
      query: `SELECT account_id, identity_id FROM IdentityAccounts WHERE account_id IN (${accts.map((a) => `'${a}'`).join(",")})` });
    for (const [a, i] of j.rows) of.set(a, i);
  }
  return res.rows.map((r) => of.get(r[ac]) || null);
}

export async function render(main) {
  const editor = h("textarea.query", { id: "hunt-query", rows: "8", spellcheck: "false", maxlength: "10000",
    text: EXAMPLES[0][1] });
  const limit = h("input", { id: "hunt-limit", type: "number", min: "1", max: "10000", value: "100" });
  const err = h("p.error", { role: "alert", id: "hunt-error" });
  const stats = h("p.stats", { role: "status", id: "hunt-stats" });
  const out = h("div");
  const run = h("button.actions", { type: "submit", text: "Run query" });
  const form = h("form.hunt", {},
    h("p.field", {}, h("label", { for: "hunt-query", text: "Query (one read-only SELECT, SQLite dialect)" }), editor),
    h("div.bar", {}, h("span.field", {}, h("label", { for: "hunt-limit", text: "Row limit" }), limit), run));
  const examples = h("ul.examples", {}, EXAMPLES.map(([name, sql]) => h("li", {},
    h("button", { type: "button", text: name, onclick: () => { editor.value = sql; editor.focus(); } }))));
  const schema = h("aside.schema", { "aria-label": "Tables" }, h("h2", { text: "Tables" }),
    h("dl", {}, Object.entries(SCHEMA).flatMap(([t, cols]) => [h("dt.mono", { text: t }), h("dd.sub", { text: cols })])),
    h("h2", { text: "Examples" }), examples);
  clear(main).append(h("h1", { text: "Advanced hunting" }),
    h("div.hunt-grid", {}, h("div", {}, form, err, stats, out), schema));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    stats.textContent = "Running…";
    clear(out);
    run.disabled = true;
    const t0 = performance.now();
    try {
      const res = await post("/api/v1/hunting/query", { query: editor.value, limit: Number(limit.value) || 100 });
      const ms = Math.round(performance.now() - t0);
      stats.textContent = `${res.rows.length} row${res.rows.length === 1 ? "" : "s"} in ${ms} ms` +
        (res.truncated ? ` — limit of ${limit.value} rows hit: more rows matched` : "");
      await results(out, res);
    } catch (e) {
      stats.textContent = "";
      err.textContent = e.message;
    } finally { run.disabled = false; }
  });
}

async function results(out, res) {
  const who = await rowIdentities(res);
  const ids = who ? [...new Set(who.filter(Boolean))] : [];
  await learnNames(ids);
  const boxes = [];
  const count = h("span.sub", { id: "hunt-selected" });
  const picked = () => [...new Set(boxes.filter((b) => b.checked).map((b) => b.dataset.identity))];
  const sync = () => {
    count.textContent = `${picked().length} identit${picked().length === 1 ? "y" : "ies"} selected`;
    all.checked = boxes.length > 0 && boxes.every((b) => b.checked);
  };
  const all = h("input", { type: "checkbox", id: "hunt-all", "aria-label": "Select every row",
    onchange: () => { for (const b of boxes) b.checked = all.checked; sync(); } });
  const chosen = async () => {
    const list = await Promise.all(picked().map((id) => get(`/api/v1/identities/${encodeURIComponent(id)}`)));
    list.forEach(remember);
    if (!list.length) toast("Select the rows to act on first");
    return list;
  };
  const idCol = res.columns.indexOf("identity_id");
  const body = h("tbody", {}, res.rows.map((r, i) => h("tr", { "data-identity": who?.[i] || null },
    who ? h("td", {}, who[i] ? (() => {
      const b = h("input", { type: "checkbox", "data-identity": who[i], "aria-label": `Select row ${i + 1}`, onchange: sync });
      boxes.push(b);
      return b;
    })() : null) : null,
    r.map((v, c) => c === idCol && v ? h("td", {}, identityLink(v)) : h("td", { text: v === null ? "NULL" : String(v) })))));
  const bar = h("div.bar", {},
    who ? actionsButton(chosen, () => { location.hash = "#/actions"; }) : null, who ? count : null,
    h("button", { type: "button", id: "hunt-csv", text: "Export CSV", onclick: () => exportCsv(res) }));
  out.append(bar, h("div.scroll", {}, h("table.list.results", {}, h("caption.sr", { text: "Results" }),
    h("thead", {}, h("tr", {}, who ? h("th", { scope: "col" }, all) : null,
      res.columns.map((c) => h("th", { scope: "col", text: c })))), body)));
  if (who) sync();
}
