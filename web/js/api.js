// The console talks to quelld's REST API like any other client; the browser session
// cookie authenticates it, and every change carries the session's CSRF token.

let csrf = null;
export let session = null;

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || "";
    this.field = e.field || "";
  }
}

export async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, {
    method, headers, credentials: "same-origin", cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let j = null;
  try { j = await r.json(); } catch { j = null; }
  if (r.status === 401 && path !== "/api/v1/session") {
    session = null;
    csrf = null;
    window.dispatchEvent(new Event("quell-signed-out"));
  }
  if (!r.ok) throw new ApiError(r.status, j);
  return j;
}

export const get = (p) => call("GET", p);
export const post = (p, b) => call("POST", p, b === undefined ? {} : b);

function adopt(j) {
  session = j;
  csrf = j.csrf_token;
  return j;
}

export async function resume() {
  try { return adopt(await get("/api/v1/session")); } catch { return null; }
}

export async function signIn(token) {
  return adopt(await post("/api/v1/session", { token }));
}

// Where [oidc] configures the console's sign-in: {issuer, start}; otherwise null.
export async function oidcSignIn() {
  try { return await get("/api/v1/session/oidc"); } catch { return null; }
}

export async function signOut() {
  try { await call("DELETE", "/api/v1/session"); } finally { session = null; csrf = null; }
}

export function can(perm) {
  return !!session && session.permissions.includes(perm);
}

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.set(k, v);
  const s = u.toString();
  return s ? "?" + s : "";
}

let systemsCache = null;
export async function systems() {
  if (!systemsCache) systemsCache = get("/api/v1/systems").then((j) => j.systems);
  try { return await systemsCache; } catch (e) { systemsCache = null; throw e; }
}
