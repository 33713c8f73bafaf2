// The Actions menu of an identity (a button's popup, or at the pointer on right-click)
// and the confirmation dialog that every action goes through.
import { h, clear, ACTIONS, actionLabel, badge, toast } from "./dom.js";
import { post, can, systems, ApiError } from "./api.js";

const many = (target) => Array.isArray(target) && target.length !== 1;
const one = (target) => (Array.isArray(target) ? target[0] : target);
const targetName = (target) => (many(target) ? `${target.length} identities` : one(target).display_name);

// [{type, ok, why}] for an identity (or a list of them): offered where one of the
// accounts' systems does it.
export async function actionChoices(target) {
  const sys = await systems();
  const bySys = new Map(sys.map((s) => [s.name, s]));
  const list = Array.isArray(target) ? target : [target];
  const mine = [...new Set(list.flatMap((i) => i.accounts || []).map((a) => a.system))];
  return ACTIONS.map((type) => {
    if (!mine.length) return { type, ok: false, why: "no linked accounts" };
    const where = mine.filter((n) => (bySys.get(n)?.actions || []).includes(type));
    if (where.length) return { type, ok: true, why: "" };
    const kinds = mine.map((n) => bySys.get(n)?.kind || n).join(", ");
    return { type, ok: false, why: `not supported by ${kinds}` };
  });
}

let open = null;

function closeMenu(restore = true) {
  if (!open) return;
  const { el, opener } = open;
  open = null;
  el.remove();
  if (opener) {
    opener.setAttribute("aria-expanded", "false");
    if (restore) opener.focus();
  }
  document.removeEventListener("pointerdown", outside, true);
}

function outside(ev) {
  if (open && !open.el.contains(ev.target) && ev.target !== open.opener) closeMenu(false);
}

// Shows the menu for identity (or a list of them) below opener (a button), or at (x, y).
export async function showMenu(identity, { opener = null, x = 0, y = 0, onDone } = {}) {
  closeMenu(false);
  const choices = await actionChoices(identity);
  const items = choices.map((c) => h("button.menuitem", {
    type: "button", role: "menuitem", "aria-disabled": c.ok ? null : "true",
    "data-action": c.type, tabindex: "-1",
    onclick: () => { if (c.ok) { closeMenu(); confirmAction(identity, c.type, onDone); } },
  }, h("span", { text: actionLabel(c.type) }), c.ok ? null : h("span.why", { text: c.why })));
  const el = h("div.menu", { role: "menu", "aria-label": `Actions on ${targetName(identity)}` },
    items);
  el.addEventListener("keydown", (ev) => {
    const i = items.indexOf(document.activeElement);
    if (ev.key === "Escape") { ev.preventDefault(); closeMenu(); }
    else if (ev.key === "ArrowDown") { ev.preventDefault(); items[(i + 1) % items.length].focus(); }
    else if (ev.key === "ArrowUp") { ev.preventDefault(); items[(i - 1 + items.length) % items.length].focus(); }
    else if (ev.key === "Home") { ev.preventDefault(); items[0].focus(); }
    else if (ev.key === "End") { ev.preventDefault(); items[items.length - 1].focus(); }
    else if (ev.key === "Tab") closeMenu(false);
  });
  document.body.append(el);
  if (opener) {
    const r = opener.getBoundingClientRect();
    x = r.left; y = r.bottom + 4;
    opener.setAttribute("aria-expanded", "true");
  }
  const w = el.offsetWidth, ht = el.offsetHeight;
  el.style.left = Math.max(4, Math.min(x + window.scrollX, window.scrollX + innerWidth - w - 4)) + "px";
  el.style.top = Math.max(4, Math.min(y + window.scrollY, window.scrollY + innerHeight - ht - 4)) + "px";
  open = { el, opener };
  document.addEventListener("pointerdown", outside, true);
  (items.find((b) => !b.hasAttribute("aria-disabled")) || items[0]).focus();
}

// The Actions button of an identity, or nothing for a principal who may not act.
// identity may be a function answering the identities to act on when clicked.
export function actionsButton(identity, onDone) {
  if (!can("response.manage")) return null;
  const b = h("button.actions", {
    type: "button", "aria-haspopup": "menu", "aria-expanded": "false",
    onclick: async () => {
      if (open && open.opener === b) return closeMenu();
      try {
        const t = typeof identity === "function" ? await identity() : identity;
        if (t && (!Array.isArray(t) || t.length)) await showMenu(t, { opener: b, onDone });
      } catch (e) { toast(e.message); }
    },
  }, "Actions ▾");
  return b;
}

const WHAT = {
  disable: "sign-in blocked (account disabled)",
  enable: "sign-in allowed again (account enabled)",
  revoke_sessions: "every session and refresh token revoked",
  mark_compromised: "confirmed compromised in Identity Protection",
  force_password_change: "must change the password at next sign-in",
  deactivate: "deactivated permanently (deprovisioned)",
  set_risk: "risk level set to",
};

// The account states in which an action has nothing left to change (as last synced).
const ALREADY = {
  disable: ["disabled", "suspended", "deactivated"], enable: ["enabled", "active"],
  deactivate: ["deactivated"],
};

// One account of the plan: its name, UPN or login and state as the preview read them,
// what will change, and the preview's word on it (line: an ActionPreview account; an
// answer without one falls back on the step and the synced account).
export function stepLine(type, s, level, acct, line) {
  const outcome = line?.outcome || (s.status === "not_applicable" ? "not_supported" : s.message ? "refused" : "change");
  const touched = outcome !== "not_supported";
  const st = String(line ? line.state || "" : acct?.state || "").toLowerCase();
  const login = [line?.upn || acct?.upn, line?.username || acct?.username]
    .filter((x) => x && x !== s.account_name)[0];
  const already = touched && (outcome === "already" || (!line && (ALREADY[type] || []).includes(st)))
    ? h("span.already", { role: "note", text: ` — already ${st} (as last synced): nothing to change` }) : null;
  const what = touched ? (WHAT[type] || type) + (type === "set_risk" ? " " + level : "")
    : (line?.note || s.message || "its system does not support this action: skipped");
  // Refused: its system will likely refuse the step (the account's last known state);
  // the note says why and what to do instead.
  const warn = outcome === "refused" ? h("span.warn", { role: "note", text: " — " + (line?.note || "will be refused: " + s.message) })
    : touched && line?.option ? h("span.sub", { text: ` — ${line.note}` }) : null;
  return h("li.step" + (touched ? "" : ".skipped"), { "data-outcome": outcome },
    h("strong", { text: s.account_name || s.account_id }),
    h("span.sys", { text: ` (${s.system})` }),
    login ? h("span.login", { text: ` ${login}` }) : null,
    st ? h("span.state", { text: ` · ${st}` }) : null,
    " — ", h("span", { text: what }), warn, already);
}

// The preview's warnings (an account quelld binds with, a tier0 or breakglass tag).
export function warningLines(p) {
  return (p?.warnings || []).map((w) => h("li.warning", { role: "note", "data-warning": w.code, text: "Warning: " + w.message }));
}

// What a previewed action says beyond its steps: it waits for a second person.
export function approvalLine(a) {
  if (a.status !== "pending_approval") return null;
  return h("p.approval", { role: "note",
    text: `Will wait for approval${a.approval_rule ? ` (rule ${a.approval_rule})` : ""}: a second person must approve it before it runs.` });
}

// The dialog every confirmation goes through: preview → reason → explicit confirm.
// plan(fields, list, note) fills the plan and answers {planned, desc}; submit(fields)
// requests and answers {result, message}. fields: {reason, params, level, destructive}.
function confirmDialog(type, { title, okText, destroyText, plan, submit, onDone }) {
  const dlg = h("dialog.confirm", { "aria-labelledby": "dlg-title", "aria-describedby": "dlg-desc" });
  const list = h("ul.plan", { "aria-label": "Accounts this action touches" });
  const note = h("div");
  const desc = h("p", { id: "dlg-desc", text: "Loading what this will do…" });
  const err = h("p.error", { role: "alert" });
  const reason = h("textarea", { id: "dlg-reason", rows: "3", maxlength: "1000", required: true });
  const level = type === "set_risk" ? h("select", { id: "dlg-level" },
    ["HIGH", "MEDIUM", "LOW"].map((l) => h("option", { value: l, text: l }))) : null;
  const destroy = type === "deactivate" ? h("input", { type: "checkbox", id: "dlg-destroy" }) : null;
  // Offered when the preview says AD will refuse: the password never expires.
  const clearBox = type === "force_password_change" ? h("input", { type: "checkbox", id: "dlg-clear" }) : null;
  const clearRow = clearBox ? h("p.check", { hidden: true }, clearBox, h("label", { for: "dlg-clear",
    text: "Also clear “password never expires” (clear_dont_expire), so that the change is forced" })) : null;
  const ok = h("button.danger", { type: "submit", disabled: true, text: okText });
  const cancel = h("button", { type: "button", text: "Cancel", onclick: () => dlg.close() });
  let planned = 0;
  const ready = () => {
    ok.disabled = !(planned > 0 && reason.value.trim() && (!destroy || destroy.checked));
  };
  const fields = () => ({ reason: reason.value.trim(),
    params: level ? { risk_level: level.value } : clearBox?.checked ? { clear_dont_expire: true } : undefined,
    level: level?.value, destructive: !!destroy });
  async function preview() {
    clear(list);
    clear(note);
    err.textContent = "";
    planned = 0;
    try {
      const p = await plan(fields(), list, note);
      planned = p.planned;
      desc.textContent = p.desc;
      if (clearRow) clearRow.hidden = !(p.offer || clearBox.checked);
    } catch (e) {
      desc.textContent = "";
      err.textContent = e.message;
    }
    ready();
  }
  reason.addEventListener("input", ready);
  destroy?.addEventListener("change", ready);
  level?.addEventListener("change", preview);
  clearBox?.addEventListener("change", preview);
  const form = h("form", { method: "dialog" },
    h("h2", { id: "dlg-title", text: title }), desc, list, note,
    level ? h("p.field", {}, h("label", { for: "dlg-level", text: "Risk level" }), level) : null,
    h("p.field", {}, h("label", { for: "dlg-reason", text: "Reason (recorded in the audit log)" }), reason),
    destroy ? h("p.check", {}, destroy, h("label", { for: "dlg-destroy", text: destroyText })) : null,
    clearRow, err,
    h("div.buttons", {}, cancel, ok));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    ok.disabled = true;
    err.textContent = "";
    try {
      const { result, message } = await submit(fields());
      dlg.close();
      toast(message);
      if (onDone) onDone(result);
    } catch (e) {
      err.textContent = e instanceof ApiError && e.status === 403 ? "Refused: " + e.message : e.message;
      ready();
    }
  });
  dlg.append(form);
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  reason.focus();
  preview();
}

// Appends a's steps and the preview's warnings to list; answers how many accounts it
// would change.
export function planSteps(type, a, level, idn, list) {
  const accts = new Map((idn.accounts || []).map((x) => [x.id, x]));
  const lines = new Map((a.preview?.accounts || []).map((x) => [x.step_id, x]));
  let planned = 0;
  for (const s of a.steps || []) {
    list.append(stepLine(type, s, level, accts.get(s.account_id), lines.get(s.id)));
    if (s.status !== "not_applicable") planned++;
  }
  list.append(...warningLines(a.preview));
  return planned;
}

const offers = (a, opt) => (a?.preview?.accounts || []).some((x) => x.option === opt);

// The confirmation of one action; for several identities one bulk preview lists every
// account, and one bulk request follows.
export function confirmAction(identity, type, onDone) {
  if (many(identity)) return confirmBulk(identity, type, onDone);
  const idn = one(identity);
  confirmDialog(type, {
    title: `${actionLabel(type)}: ${idn.display_name}`,
    okText: `Confirm ${actionLabel(type).toLowerCase()}`,
    destroyText: "I understand deactivation deprovisions the account and its app assignments and cannot be undone",
    onDone,
    async plan(f, list, note) {
      const a = await post("/api/v1/actions", {
        type, identity_id: idn.id, reason: f.reason || "preview", preview: true, params: f.params,
      });
      const planned = planSteps(type, a, f.level, idn, list);
      note.append(approvalLine(a) || "");
      return { planned, offer: offers(a, "clear_dont_expire"),
        desc: planned ? `${planned} account${planned === 1 ? "" : "s"} will be changed:`
          : "No linked account can take this action." };
    },
    async submit(f) {
      const body = { type, identity_id: idn.id, reason: f.reason, source: "manual", params: f.params };
      if (f.destructive) body.confirm_destructive = true;
      const a = await post("/api/v1/actions", body);
      return { result: a, message: `${actionLabel(type)} requested (${a.id}): follow it in the action center` };
    },
  });
}

function confirmBulk(idns, type, onDone) {
  const byId = new Map(idns.map((i) => [i.id, i]));
  const body = (f, preview) => ({ type, reason: f.reason || "preview", preview, source: preview ? undefined : "manual",
    params: f.params, confirm_destructive: f.destructive && !preview ? true : undefined,
    requests: idns.map((i) => ({ identity_id: i.id })) });
  confirmDialog(type, {
    title: `${actionLabel(type)}: ${idns.length} identities`,
    okText: `Confirm ${actionLabel(type).toLowerCase()} (${idns.length} identities)`,
    destroyText: "I understand deactivation deprovisions the accounts and their app assignments and cannot be undone",
    onDone,
    async plan(f, list) {
      const j = await post("/api/v1/actions/bulk", body(f, true));
      let planned = 0, waits = 0, offer = false;
      for (const r of j.results) {
        offer ||= offers(r.action, "clear_dont_expire");
        const idn = byId.get(r.identity_id) || { display_name: r.identity_id, accounts: [] };
        const steps = h("ul.plan");
        if (r.action) planned += planSteps(type, r.action, f.level, idn, steps);
        if (r.action?.status === "pending_approval") waits++;
        list.append(h("li.plan-idn", { "data-identity": r.identity_id }, h("strong", { text: idn.display_name }),
          h("span.sub.mono", { text: ` ${r.identity_id}` }),
          r.error ? h("p.error", { text: `Refused: ${r.error.message}` }) : null,
          r.action ? approvalLine(r.action) : null, steps));
      }
      return { planned, offer, desc: `${planned} account${planned === 1 ? "" : "s"} of ${idns.length} identities will be changed` +
        (waits ? `; ${waits} will wait for approval:` : ":") };
    },
    async submit(f) {
      const j = await post("/api/v1/actions/bulk", body(f, false));
      const bad = j.results.filter((r) => r.error).length;
      return { result: j, message: `${actionLabel(type)}: ${j.results.length - bad} requested, ${bad} refused: follow them in the action center` };
    },
  });
}

export { badge };
