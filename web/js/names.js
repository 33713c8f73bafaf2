// Identity display names for rows that carry only the id (actions, audit entries, hunting
// results): an analyst decides on a person, not on an id. Links to an identity open its
// side panel; a name that cannot be read leaves the id shown.
import { h } from "./dom.js";
import { get } from "./api.js";

const names = new Map();

export async function learnNames(ids) {
  const missing = [...new Set(ids)].filter((id) => id && !names.has(id));
  await Promise.all(missing.map(async (id) => {
    try { names.set(id, (await get(`/api/v1/identities/${encodeURIComponent(id)}`)).display_name); } catch { names.set(id, null); }
  }));
}

export const nameOf = (id) => names.get(id) || null;

export function remember(idn) {
  if (idn && idn.id) names.set(idn.id, idn.display_name);
}

// A link to identity id by its name (the id beside it, smaller); a plain click opens the
// side panel (panel.js), a modified one the full page.
export function identityLink(id, name = nameOf(id)) {
  if (!id) return h("span", { text: "—" });
  return h("span.who-link", {},
    h("a", { href: `#/identity/${encodeURIComponent(id)}`, "data-panel": id, title: id, text: name || id }),
    name ? h("div.sub.mono", { text: id }) : null);
}
