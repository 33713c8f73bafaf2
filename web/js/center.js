// The action center: Pending (actions waiting for a second person's approval) and
// History, and one action with its per-account steps, its undo and its cancel. Live by
// polling while anything shown can still change.
import { h, clear, timeEl, badge, actionLabel, ACTIONS, TERMINAL, toast, askReason } from "./dom.js";
import { get, post, qs, can } from "./api.js";
import { learnNames, nameOf, identityLink } from "./names.js";
import { csvCell, download } from "./csv.js";
import { planSteps, approvalLine } from "./menu.js";


const STATUSES = ["pending_approval", "queued", "running", "completed", "partially_completed",
  "failed", "cancelled", "denied", "rejected"];
const PERIODS = [["1", "Last day"], ["7", "Last 7 days"], ["30", "Last 30 days"], ["182", "Last 6 months"]];
const SOURCES = [["manual", "Manual"], ["api", "API"], ["automatic_attack_disruption", "Automatic attack disruption"]];

function select(id, label, opts, value) {
  return h("span.field", {}, h("label", { for: id, text: label }),
    h("select", { id }, h("option", { value: "", text: "Any" }),
      opts.map(([v, t]) => h("option", { value: v, text: t, selected: v === value }))));
}

// The identity's name as the API gives it with the action (identity_name), else as
// looked up; and who it acts on: the one account's name, or every linked account.
const idnName = (a) => a.identity_name || nameOf(a.identity_id);
const unnamed = (list) => list.filter((a) => !a.identity_name).map((a) => a.identity_id);
const accountText = (a) => a.account_id ? a.account_name || a.account_id : "all linked accounts";

function exportCsv(rows) {
  const cols = ["id", "type", "status", "identity_id", "identity_name", "account_id", "account_name", "requested_by",
    "source", "reason", "message", "created_at", "updated_at", "finished_at"];
  const row = (a) => cols.map((c) => csvCell(c === "identity_name" ? idnName(a) : a[c])).join(",");
  download("quell-actions.csv", [cols.join(",")].concat(rows.map(row)));
}

function actionRow(a, extra) {
  return h("tr", { "data-action": a.id },
    extra || null,
    h("td", {}, h("a", { href: `#/action/${a.id}`, text: actionLabel(a.type) })),
    h("td", {}, badge(a.status)),
    h("td", {}, identityLink(a.identity_id, idnName(a))), h("td", { text: accountText(a) }),
    h("td", { text: a.requested_by }), h("td", { text: a.source }),
    h("td.reason", { text: a.reason || "" }), h("td", {}, timeEl(a.created_at)),
    h("td", {}, timeEl(a.finished_at)));
}

const HEAD = ["Action", "Status", "Identity", "Account", "Requested by", "Source", "Reason", "Requested", "Finished"];

export async function render(main, params, ctx) {
  const tab = params.get("tab") === "pending" ? "pending" : "history";
  const tabs = h("div.tabs", { role: "tablist", "aria-label": "Action center" },
    [["pending", "Pending"], ["history", "History"]].map(([t, label]) => h("a", {
      role: "tab", href: "#/actions" + qs({ tab: t }), "aria-selected": String(t === tab),
      id: "tab-" + t, text: label,
    })));
  clear(main).append(h("h1", { text: "Action center" }), tabs);
  const panel = h("div", { role: "tabpanel", "aria-labelledby": "tab-" + tab });
  main.append(panel);
  if (tab === "pending") return pending(panel, ctx);
  return history(panel, params, ctx);
}

const PENDING_HEAD = ["Action", "Identity", "Requested by", "Reason", "Rule", "Deadline", "Requested"];
const VERB = { approve: "Approve", reject: "Reject" };

// Pending: what waits for approval, with the rule that holds it and its deadline.
// Deciding needs response.approve; the server also refuses the requester's own.
async function pending(panel, ctx) {
  const appr = can("response.approve");
  const body = h("tbody");
  const err = h("div.error", { role: "alert", id: "pending-refusals" });
  const bulkType = appr ? h("select", { id: "bulk-type" }, ACTIONS.map((t) => h("option", { value: t, text: actionLabel(t) }))) : null;
  let shown = [];
  const refusals = (list) => {
    clear(err);
    for (const [id, msg] of list) err.append(h("p", {}, h("span.mono", { text: id + ": " }), h("span", { text: msg })));
  };
  async function decide(a, verb) {
    const reason = await askReason({ title: `${VERB[verb]} ${actionLabel(a.type)} on ${idnName(a) || a.identity_id}`,
      confirm: VERB[verb], required: verb === "reject", danger: verb === "reject" });
    if (reason === null) return;
    try {
      const done = await post(`/api/v1/actions/${a.id}/${verb}`, reason ? { reason } : {});
      refusals([]);
      toast(`${actionLabel(a.type)} ${a.id}: ${done.status.replace(/_/g, " ")}`);
    } catch (e) { refusals([[a.id, e.message]]); }
    await load();
  }
  async function decideAll(verb) {
    const type = bulkType.value;
    const n = shown.filter((a) => a.type === type).length;
    const reason = await askReason({ title: `${VERB[verb]} every pending ${actionLabel(type).toLowerCase()} (${n} shown)`,
      confirm: `${VERB[verb]} all`, required: verb === "reject", danger: verb === "reject" });
    if (reason === null) return;
    try {
      const j = await post(`/api/v1/actions/${verb}`, reason ? { type, reason } : { type });
      const bad = j.results.filter((x) => x.error);
      refusals(bad.map((x) => [x.id, x.message]));
      toast(`${j.results.length - bad.length} decided, ${bad.length} refused`);
    } catch (e) { refusals([[type, e.message]]); }
    await load();
  }
  // Deciding "all" of a type none of which is shown would act on nothing visible.
  const bulk = appr ? [h("button", { type: "button", text: "Approve all", onclick: () => decideAll("approve") }),
    h("button", { type: "button", text: "Reject all", onclick: () => decideAll("reject") })] : [];
  const arm = () => { for (const b of bulk) b.disabled = !shown.some((a) => a.type === bulkType.value); };
  if (appr) bulkType.addEventListener("change", arm);
  panel.append(
    appr ? h("div.bar", {}, h("span.field", {}, h("label", { for: "bulk-type", text: "All pending of type" }), bulkType),
      ...bulk)
      : h("p.sub", { text: "Actions waiting for a second person's approval. Deciding needs the response.approve permission." }),
    err,
    h("div.scroll", {}, h("table.list", {}, h("caption.sr", { text: "Pending actions" }),
      h("thead", {}, h("tr", {}, (appr ? ["Decide"] : []).concat(PENDING_HEAD).map((t) => h("th", { scope: "col", text: t })))),
      body)));
  async function load() {
    const j = await get("/api/v1/actions" + qs({ status: "pending_approval", limit: 200 }));
    shown = j.actions;
    arm();
    await learnNames(unnamed(shown));
    clear(body);
    for (const a of shown) {
      body.append(h("tr", { "data-action": a.id },
        appr ? h("td", {}, h("div.buttons.start", {},
          h("button", { type: "button", text: "Approve", "aria-label": `Approve ${actionLabel(a.type)} ${a.id}`, onclick: () => decide(a, "approve") }),
          h("button", { type: "button", text: "Reject", "aria-label": `Reject ${actionLabel(a.type)} ${a.id}`, onclick: () => decide(a, "reject") }))) : null,
        h("td", {}, h("a", { href: `#/action/${a.id}`, text: actionLabel(a.type) })),
        h("td", {}, identityLink(a.identity_id, idnName(a))),
        h("td", { text: a.requested_by }), h("td.reason", { text: a.reason || "" }),
        h("td", { text: a.approval_rule || "—" }), h("td", {}, timeEl(a.approval_expires_at)),
        h("td", {}, timeEl(a.created_at))));
    }
    if (!shown.length) body.append(h("tr", {}, h("td", { colspan: String(PENDING_HEAD.length + (appr ? 1 : 0)), text: "Nothing is waiting for approval." })));
    return true;
  }
  ctx.poll(load, 5000);
}

async function history(panel, params, ctx) {
  const f = { days: params.get("days") || "7", status: params.get("status") || "",
    type: params.get("type") || "", source: params.get("source") || "" };
  const form = h("form.filters", { "aria-label": "Filters" },
    select("f-days", "Period", PERIODS, f.days),
    select("f-status", "Status", STATUSES.map((s) => [s, s.replace(/_/g, " ")]), f.status),
    select("f-type", "Action", ACTIONS.map((t) => [t, actionLabel(t)]), f.type),
    select("f-source", "Source", SOURCES, f.source),
    h("button", { type: "button", id: "csv", text: "Export CSV" }));
  form.querySelector("#f-days option[value='']").remove();
  form.addEventListener("change", () => {
    location.hash = "#/actions" + qs({ tab: "history", days: form.querySelector("#f-days").value,
      status: form.querySelector("#f-status").value, type: form.querySelector("#f-type").value,
      source: form.querySelector("#f-source").value });
  });
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true, text: "Load more" });
  panel.append(form, h("div.scroll", {}, h("table.list", {}, h("caption.sr", { text: "Actions" }),
    h("thead", {}, h("tr", {}, HEAD.map((t) => h("th", { scope: "col", text: t })))), body)), more);
  const since = new Date(Date.now() - Number(f.days) * 86400e3).toISOString();
  let loaded = [], next = null;
  const matches = (a) => !f.source || a.source === f.source;
  function draw() {
    clear(body);
    const rows = loaded.filter(matches);
    for (const a of rows) body.append(actionRow(a));
    if (!rows.length) body.append(h("tr", {}, h("td", { colspan: String(HEAD.length), text: "No action in this period matches." })));
    more.hidden = !next;
  }
  const base = { since, status: f.status, type: f.type };
  async function page() {
    const j = await get("/api/v1/actions" + qs({ ...base, limit: 100, before: next }));
    loaded = loaded.concat(j.actions);
    next = j.next;
    await learnNames(unnamed(j.actions));
    draw();
  }
  // Refreshes what is shown (the first page and any loaded after it) while any runs.
  async function refresh() {
    const live = loaded.some((a) => !TERMINAL.has(a.status));
    if (!live && loaded.length) return false;
    const j = await get("/api/v1/actions" + qs({ ...base, limit: Math.max(100, Math.min(1000, loaded.length)) }));
    loaded = j.actions;
    next = j.next;
    await learnNames(unnamed(j.actions));
    draw();
    return loaded.some((a) => !TERMINAL.has(a.status));
  }
  more.addEventListener("click", page);
  form.querySelector("#csv").addEventListener("click", () => exportCsv(loaded.filter(matches)));
  ctx.poll(refresh);
}

// Undo runs the inverse action on the accounts whose steps succeeded: disable and
// enable each other; mark_compromised, set_risk and force_password_change their own
// undo. Deactivate and revoke sessions have none (the engine says so).
const UNDO_WHAT = {
  disable: "enable", enable: "disable", mark_compromised: "dismiss the risk",
  set_risk: "restore the earlier risk level", force_password_change: "withdraw the forced change",
};
const UNDOABLE = new Set(Object.keys(UNDO_WHAT));
const NO_UNDO = {
  deactivate: "none: Okta deactivation cannot be undone",
  revoke_sessions: "none: revoking sessions has no inverse",
};
const LIVE_UNDO = (x) => !["denied", "failed", "cancelled", "rejected"].includes(x.status);

function mayUndo(a, undoneBy) {
  return can("response.manage") && UNDOABLE.has(a.type) && TERMINAL.has(a.status) &&
    a.status !== "denied" && (a.steps || []).some((s) => s.status === "succeeded") &&
    !undoneBy.some(LIVE_UNDO);
}

export async function renderAction(main, id, ctx) {
  const box = h("div");
  const err = h("p.error", { role: "alert" });
  clear(main).append(h("p", {}, h("a", { href: "#/actions", text: "← Action center" })), box);
  async function load() {
    const a = await get(`/api/v1/actions/${encodeURIComponent(id)}`);
    await learnNames(unnamed([a]));
    const live = !TERMINAL.has(a.status);
    // The actions that undo this one: on the same identity, pointing back with undo_of.
    const undoneBy = TERMINAL.has(a.status) ? (await get("/api/v1/actions" +
      qs({ identity_id: a.identity_id, limit: 200 }))).actions.filter((x) => x.undo_of === a.id) : [];
    const cancel = live && can("response.manage") ? h("button.danger", { type: "button", text: "Cancel action",
      onclick: async () => {
        const ok = await askReason({ title: `Cancel ${actionLabel(a.type).toLowerCase()} ${a.id}`,
          confirm: "Cancel action", danger: true, withReason: false, preview: (list, note) => cancelPreview(a, list, note) });
        if (ok === null) return;
        try { await post(`/api/v1/actions/${a.id}/cancel`, {}); toast("Cancel requested"); await load(); }
        catch (e) { err.textContent = e.message; }
      } }) : null;
    const undo = mayUndo(a, undoneBy) ? h("button", { type: "button", text: "Undo",
      onclick: async () => {
        const reason = await askReason({ title: `Undo ${actionLabel(a.type).toLowerCase()} ${a.id}`,
          confirm: `Undo: ${UNDO_WHAT[a.type]}`, preview: (list, note) => undoPreview(a, list, note) });
        if (reason === null) return;
        try {
          const u = await post(`/api/v1/actions/${a.id}/undo`, { reason });
          toast(`Undo requested (${u.id})`);
          location.hash = `#/action/${u.id}`;
        } catch (e) { err.textContent = e.message; }
      } }) : null;
    const links = [];
    if (a.undo_of) links.push(fact("Undoes", h("a", { href: `#/action/${a.undo_of}`, text: a.undo_of })));
    if (undoneBy.length) links.push(fact("Undone by", undoneBy.map((x) => h("span", {},
      h("a", { href: `#/action/${x.id}`, text: x.id }), " ", badge(x.status), " "))));
    if (NO_UNDO[a.type] && !a.undo_of) links.push(fact("Undo", NO_UNDO[a.type]));
    if (a.approval_rule) links.push(fact("Approval rule", a.approval_rule));
    if (a.approval_expires_at) links.push(fact("Approve before", timeEl(a.approval_expires_at)));
    if (a.decided_by) links.push(fact("Decided by", a.decided_by));
    clear(box).append(
      h("div.head", {}, h("div", {}, h("h1", {}, actionLabel(a.type), " ", badge(a.status)),
        h("p.sub.mono", { text: a.id })), h("div.buttons", {}, undo, cancel)),
      err,
      h("dl.facts", {},
        fact("Identity", identityLink(a.identity_id, idnName(a))), fact("Accounts", accountText(a)),
        fact("Requested by", a.requested_by), fact("Source", a.source),
        fact("Reason", a.reason), fact("Parameters", JSON.stringify(a.params || {})),
        fact("Message", a.message || "—"), links.flat(), fact("Requested", timeEl(a.created_at)),
        fact("Updated", timeEl(a.updated_at)), fact("Finished", timeEl(a.finished_at))),
      h("div.scroll", {}, h("table.list.steps", {}, h("caption", { text: "Steps, one per account" }),
        h("thead", {}, h("tr", {}, ["Account", "System", "Status", "Attempts", "Started", "Finished", "Request id", "Error"]
          .map((t) => h("th", { scope: "col", text: t })))),
        h("tbody", {}, (a.steps || []).map((s) => h("tr", { "data-step": s.id },
          h("td", { text: s.account_name || s.account_id }), h("td", { text: s.system }),
          h("td", {}, badge(s.status), s.not_before && s.status === "retry_wait" ? h("div.sub", {}, "next try ", timeEl(s.not_before)) : null),
          h("td", { text: String(s.attempts) }), h("td", {}, timeEl(s.started_at)),
          h("td", {}, timeEl(s.finished_at)), h("td.mono", { text: s.request_id || "—" }),
          h("td", {}, s.error_code ? h("span.mono", { text: s.error_code + " " }) : null,
            h("span", { text: s.message || "" }))))))));
    return live;
  }
  ctx.poll(load);
}

// What undoing a will do, as the engine plans it (the undo's own preview).
async function undoPreview(a, list, note) {
  const u = await post(`/api/v1/actions/${encodeURIComponent(a.id)}/undo`, { reason: "preview", preview: true });
  planSteps(u.type, u, u.params?.risk_level, { accounts: [] }, list);
  note.append(approvalLine(u) || "");
  return u;
}

// What cancelling a will do, from its steps as they are now: those not started end
// at once, a running one finishes; waiting for approval, it ends at once.
export function cancelPreview(a, list, note) {
  const word = {
    queued: "will be cancelled before it starts", retry_wait: "will be cancelled before its next try",
    running: "is running now: it finishes, its outcome stands",
  };
  for (const s of a.steps || []) {
    list.append(h("li.step", { "data-status": s.status }, h("strong", { text: s.account_name || s.account_id }),
      h("span.sys", { text: ` (${s.system})` }), " — ",
      h("span", { text: word[s.status] || `already ${s.status.replace(/_/g, " ")}: stays so` })));
  }
  if (a.status === "pending_approval") note.append(h("p.approval", { role: "note", text: "Waiting for approval: it ends at once, nothing runs." }));
  return Promise.resolve(a);
}

function fact(k, v) {
  return [h("dt", { text: k }), h("dd", {}, Array.isArray(v) || v instanceof Node ? v : String(v ?? "—"))];
}
