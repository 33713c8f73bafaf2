// The Actions menu of an identity (a button's popup, or at the pointer on right-click)
// and the confirmation dialog that every action goes through.
import { h, clear, ACTIONS, actionLabel, badge, toast } from "./dom.js";
import { post, can, systems, ApiError } from "./api.js";

// [{type, ok, why}] for an identity: offered where one of its accounts' systems does it.
export async function actionChoices(identity) {
  const sys = await systems();
  const bySys = new Map(sys.map((s) => [s.name, s]));
  const mine = [...new Set((identity.accounts || []).map((a) => a.system))];
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

// Shows the menu for identity below opener (a button), or at (x, y).
export async function showMenu(identity, { opener = null, x = 0, y = 0, onDone } = {}) {
  closeMenu(false);
  const choices = await actionChoices(identity);
  const items = choices.map((c) => h("button.menuitem", {
    type: "button", role: "menuitem", "aria-disabled": c.ok ? null : "true",
    "data-action": c.type, tabindex: "-1",
    onclick: () => { if (c.ok) { closeMenu(); confirmAction(identity, c.type, onDone); } },
  }, h("span", { text: actionLabel(c.type) }), c.ok ? null : h("span.why", { text: c.why })));
  const el = h("div.menu", { role: "menu", "aria-label": `Actions on ${identity.display_name}` },
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
export function actionsButton(identity, onDone) {
  if (!can("response.manage")) return null;
  const b = h("button.actions", {
    type: "button", "aria-haspopup": "menu", "aria-expanded": "false",
    onclick: () => (open && open.opener === b ? closeMenu() : showMenu(identity, { opener: b, onDone })),
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

function stepLine(type, s, level) {
  const touched = s.status !== "not_applicable";
  const what = touched ? WHAT[type] + (type === "set_risk" ? " " + level : "")
    : (s.message || "its system does not support this action: skipped");
  // A planned step with a message: its system will likely refuse it (the account's
  // last known state), and the message says why and what to do instead.
  const warn = touched && s.message ? h("span.warn", { role: "note", text: " — warning: " + s.message }) : null;
  return h("li.step" + (touched ? "" : ".skipped"), {},
    h("strong", { text: s.account_name || s.account_id }),
    h("span.sys", { text: ` (${s.system})` }), " — ", h("span", { text: what }), warn);
}

// The confirmation dialog: preview → reason → explicit confirm → submitted action.
export function confirmAction(identity, type, onDone) {
  const dlg = h("dialog.confirm", { "aria-labelledby": "dlg-title", "aria-describedby": "dlg-desc" });
  const title = h("h2", { id: "dlg-title", text: `${actionLabel(type)}: ${identity.display_name}` });
  const list = h("ul.plan", { "aria-label": "Accounts this action touches" });
  const desc = h("p", { id: "dlg-desc", text: "Loading what this will do…" });
  const err = h("p.error", { role: "alert" });
  const reason = h("textarea", { id: "dlg-reason", rows: "3", maxlength: "1000", required: true });
  const level = type === "set_risk" ? h("select", { id: "dlg-level" },
    ["HIGH", "MEDIUM", "LOW"].map((l) => h("option", { value: l, text: l }))) : null;
  const destroy = type === "deactivate" ? h("input", { type: "checkbox", id: "dlg-destroy" }) : null;
  const ok = h("button.danger", { type: "submit", disabled: true, text: `Confirm ${actionLabel(type).toLowerCase()}` });
  const cancel = h("button", { type: "button", text: "Cancel", onclick: () => dlg.close() });
  let planned = 0;
  const ready = () => {
    ok.disabled = !(planned > 0 && reason.value.trim() && (!destroy || destroy.checked));
  };
  const params = () => (level ? { risk_level: level.value } : undefined);
  async function preview() {
    clear(list);
    err.textContent = "";
    planned = 0;
    try {
      const a = await post("/api/v1/actions", {
        type, identity_id: identity.id, reason: reason.value.trim() || "preview",
        preview: true, params: params(),
      });
      for (const s of a.steps || []) {
        list.append(stepLine(type, s, level?.value));
        if (s.status !== "not_applicable") planned++;
      }
      desc.textContent = planned
        ? `${planned} account${planned === 1 ? "" : "s"} will be changed:`
        : "No linked account can take this action.";
    } catch (e) {
      desc.textContent = "";
      err.textContent = e.message;
    }
    ready();
  }
  reason.addEventListener("input", ready);
  destroy?.addEventListener("change", ready);
  level?.addEventListener("change", preview);
  const form = h("form", { method: "dialog" },
    title, desc, list,
    level ? h("p.field", {}, h("label", { for: "dlg-level", text: "Risk level" }), level) : null,
    h("p.field", {}, h("label", { for: "dlg-reason", text: "Reason (recorded in the audit log)" }), reason),
    destroy ? h("p.check", {}, destroy, h("label", { for: "dlg-destroy",
      text: "I understand deactivation deprovisions the account and its app assignments and cannot be undone" })) : null,
    err,
    h("div.buttons", {}, cancel, ok));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    ok.disabled = true;
    err.textContent = "";
    try {
      const body = { type, identity_id: identity.id, reason: reason.value.trim(), source: "manual", params: params() };
      if (destroy) body.confirm_destructive = true;
      const a = await post("/api/v1/actions", body);
      dlg.close();
      toast(`${actionLabel(type)} requested (${a.id}): follow it in the action center`);
      if (onDone) onDone(a);
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

export { badge };
