// Building DOM from data: text only ever goes in through textContent, never as markup,
// because identity names and reasons come from directories an attacker may write to.

// h("tag.class", {attr: v, onclick: fn}, child, "text", …) → element
export function h(sel, attrs, ...kids) {
  const [tag, ...cls] = sel.split(".");
  const el = document.createElement(tag || "div");
  if (cls.length) el.className = cls.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = String(v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// Times show their zone: the browser's own, or UTC when the analyst compares with logs.
const UTC_KEY = "quell.utc";
const fmts = new Map();
function fmt() {
  const zone = utc() ? "UTC" : undefined;
  if (!fmts.has(zone)) fmts.set(zone, new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZone: zone, timeZoneName: "short",
  }));
  return fmts.get(zone);
}

let utcOn = false;
try { utcOn = localStorage.getItem(UTC_KEY) === "1"; } catch { /* no storage: local time */ }

export const utc = () => utcOn;

export function setUtc(on) {
  utcOn = !!on;
  try { localStorage.setItem(UTC_KEY, on ? "1" : "0"); } catch { /* no storage: this page only */ }
  for (const el of document.querySelectorAll("time[datetime]")) el.textContent = when(el.getAttribute("datetime"));
}

export function when(t) {
  if (!t) return "—";
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : fmt().format(d);
}

export function timeEl(t) {
  return t ? h("time", { datetime: t, title: t, text: when(t) }) : h("span", { text: "—" });
}

const LABELS = {
  disable: "Disable", enable: "Enable", revoke_sessions: "Revoke sessions",
  mark_compromised: "Mark as compromised", force_password_change: "Force password change",
  deactivate: "Deactivate", set_risk: "Set risk level",
};
export const ACTIONS = Object.keys(LABELS);
export const actionLabel = (t) => LABELS[t] || t;

export const TERMINAL = new Set(["completed", "partially_completed", "failed", "cancelled",
  "denied", "rejected", "succeeded", "not_applicable"]);

export function badge(status) {
  return h("span.badge.st-" + String(status).replace(/[^a-z_]/g, ""), {
    text: String(status).replace(/_/g, " "),
  });
}

let toastTimer = 0;
export function toast(msg) {
  const el = document.getElementById("status");
  el.textContent = msg;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), 6000);
}

// Asks for a reason in a modal dialog: resolves to the text, or null when cancelled.
// required: the confirm button waits for a reason.
// preview(list, note), when given, fills the dialog with what confirming will do (a
// list of lines, a note beneath) before the reason is asked for. withReason false:
// a plain confirmation (the request records no reason); answers "" when confirmed.
export function askReason({ title, confirm, required = true, danger = false, preview = null, withReason = true }) {
  return new Promise((resolve) => {
    const dlg = h("dialog.confirm", { "aria-labelledby": "ask-title" });
    const list = h("ul.plan", { "aria-label": "What this will do" });
    const note = h("div");
    const perr = h("p.error", { role: "alert" });
    const reason = h("textarea", { id: "ask-reason", rows: "3", maxlength: "1000", required });
    const ok = h("button" + (danger ? ".danger" : ""), { type: "submit", text: confirm, disabled: required && withReason });
    let answer = null;
    reason.addEventListener("input", () => { ok.disabled = required && !reason.value.trim(); });
    const form = h("form", { method: "dialog" },
      h("h2", { id: "ask-title", text: title }),
      preview ? [list, note, perr] : null,
      withReason ? h("p.field", {}, h("label", { for: "ask-reason",
        text: required ? "Reason (recorded in the audit log)" : "Reason (optional, recorded in the audit log)" }), reason) : null,
      h("div.buttons", {}, h("button", { type: "button", text: "Cancel", onclick: () => dlg.close() }), ok));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      answer = reason.value.trim();
      dlg.close();
    });
    dlg.append(form);
    dlg.addEventListener("close", () => { dlg.remove(); resolve(answer); });
    document.body.append(dlg);
    dlg.showModal();
    (withReason ? reason : ok).focus();
    if (preview) preview(list, note).catch((e) => { perr.textContent = e.message; });
  });
}
