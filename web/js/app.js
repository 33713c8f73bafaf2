// The console's shell: sign-in, the hash routes, and the polling that keeps a page live.
import { h, clear, toast } from "./dom.js";
import * as api from "./api.js";
import * as identities from "./identities.js";
import * as identity from "./identity.js";
import * as center from "./center.js";
import * as audit from "./audit.js";
import * as hunting from "./hunting.js";
import * as alerts from "./alerts.js";
import * as panel from "./panel.js";
import { setUtc, utc } from "./dom.js";

const main = document.getElementById("main");
let gen = 0;	// bumps on every route change: stale pages stop polling

function ctxFor(my) {
  return {
    // Runs fn now and again every ms while it returns true and the page is shown.
    poll(fn, ms = 1000) {
      const tick = async () => {
        if (my !== gen) return;
        let again = false;
        try { again = await fn(); } catch (e) { if (my === gen) toast(e.message); }
        if (again && my === gen) setTimeout(tick, ms);
      };
      tick();
    },
  };
}

function signInPage() {
  const tok = h("input", { type: "password", id: "token", name: "token", autocomplete: "off",
    required: true, spellcheck: "false" });
  const err = h("p.error", { role: "alert" });
  const form = h("form.signin", {}, h("h1", { text: "Sign in to quell" }),
    h("p.field", {}, h("label", { for: "token", text: "API token" }), tok),
    h("p.sub", { text: "A token from `quell token create` or your administrator (qt_….…)." }),
    err, h("button", { type: "submit", text: "Sign in" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    try {
      await api.signIn(tok.value.trim());
      tok.value = "";
      shell();
      if (!location.hash || location.hash === "#/signin") location.hash = "#/identities";
      else route();
    } catch (e) { err.textContent = e.message; tok.select(); }
  });
  clear(main).append(form);
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  tok.focus();
  // The issuer's sign-in is a plain link: the browser goes there and comes back.
  api.oidcSignIn().then((o) => {
    if (!o || !form.isConnected) return;
    let where = o.issuer;
    try { where = new URL(o.issuer).host; } catch { /* not a URL: shown as is */ }
    form.append(h("p.or", { text: "or" }),
      h("a.button", { href: o.start, id: "oidc-sign-in", text: `Sign in with ${where}`, title: o.issuer }));
  });
}

function shell() {
  const s = api.session;
  document.getElementById("nav").hidden = false;
  for (const a of document.querySelectorAll("#nav a[data-perm]")) a.hidden = !api.can(a.dataset.perm);
  document.getElementById("who").hidden = false;
  document.getElementById("who-name").textContent =
    s.role ? `${s.name} (${s.role})` : `${s.name} (OpenID Connect)`;
}

async function route() {
  const my = ++gen;
  if (!api.session) return signInPage();
  const [path, query] = (location.hash.slice(1) || "/identities").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  const where = parts[0] || "identities";
  for (const a of document.querySelectorAll("#nav a")) {
    const on = a.dataset.nav === where || (where === "action" && a.dataset.nav === "actions") ||
      (where === "identity" && a.dataset.nav === "identities") || (where === "alert" && a.dataset.nav === "alerts");
    if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const ctx = ctxFor(my);
  clear(main).append(h("p.sub", { text: "Loading…" }));
  try {
    if (where === "identity" && parts[1]) await identity.render(main, decodeURIComponent(parts[1]), ctx);
    else if (where === "action" && parts[1]) await center.renderAction(main, decodeURIComponent(parts[1]), ctx);
    else if (where === "actions") await center.render(main, params, ctx);
    else if (where === "audit") await audit.render(main, params, ctx);
    else if (where === "hunting") await hunting.render(main, params, ctx);
    else if (where === "alert" && parts[1]) await alerts.renderAlert(main, decodeURIComponent(parts[1]), ctx);
    else if (where === "alerts") await alerts.render(main, params, ctx);
    else await identities.render(main, params, ctx);
  } catch (e) {
    if (my === gen && api.session) clear(main).append(h("h1", { text: "Cannot show this page" }), h("p.error", { role: "alert", text: e.message }));
  }
  const h1 = main.querySelector("h1");
  document.title = (h1 ? h1.textContent + " — " : "") + "quell";
}

document.getElementById("sign-out").addEventListener("click", async () => {
  try { await api.signOut(); } catch (e) { toast(e.message); }
  gen++;
  signInPage();
});
window.addEventListener("quell-signed-out", () => { gen++; signInPage(); });
window.addEventListener("hashchange", route);
panel.install();
const utcBox = document.getElementById("utc");
utcBox.checked = utc();
utcBox.addEventListener("change", () => setUtc(utcBox.checked));

(async () => {
  if (await api.resume()) shell();
  route();
})();
