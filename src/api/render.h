/* The JSON shapes of docs/openapi.yaml, built from the model structs. */
#ifndef QUELL_API_RENDER_H
#define QUELL_API_RENDER_H

#include <jansson.h>

#include "core/model.h"

/* Each returns a new reference (NULL only when out of memory). */
json_t *render_action(const struct action *a, bool with_steps);
json_t *render_step(const struct step *s);
json_t *render_identity(const struct identity *i);
json_t *render_account(const struct account *a);
json_t *render_audit(const struct audit_entry *ent);
/* RFC 3339 text of ms, or JSON null for 0. */
json_t *render_time(int64_t ms);

#endif
