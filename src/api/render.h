/* The JSON shapes of docs/openapi.yaml, built from the model structs. */
#ifndef QUELL_API_RENDER_H
#define QUELL_API_RENDER_H

#include <jansson.h>

#include "core/model.h"

/* One member of a rendered object; s or i holds its value, as kind says. */
struct render_member {
	const char *key;
	enum {
		RENDER_STR,		/* s, NULL for JSON null */
		RENDER_STR_REQUIRED,	/* s, never NULL */
		RENDER_INT,		/* i */
		RENDER_BOOL,		/* i, 0 false */
		RENDER_TIME,		/* i in ms, 0 for JSON null */
		RENDER_JSON,		/* s: JSON text (stored params) */
	} kind;
	const char *s;
	int64_t i;
	bool optional;	/* left out of a jansson object when it has no JSON value */
};

/* Each returns a new reference (NULL only when out of memory). */
json_t *render_action(const struct action *a, bool with_steps);
json_t *render_step(const struct step *s);
json_t *render_identity(const struct identity *i);
json_t *render_account(const struct account *a);
json_t *render_audit(const struct audit_entry *ent);
/*
 * render_action(a, true) followed by the members extra, as the text json_dumps would
 * make of it (JSON_COMPACT), without building it; the caller frees it. NULL if out of
 * memory or when a value is one json_dumps would not write (a string not UTF-8): the
 * caller renders it with render_action then.
 */
char *render_action_text(const struct action *a, const struct render_member *extra,
    size_t nextra);
/* RFC 3339 text of ms, or JSON null for 0. */
json_t *render_time(int64_t ms);

#endif
