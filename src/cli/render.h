/*
 * Text for people from the API's JSON answers: aligned columns and key/value
 * blocks, times as quelld gave them. Pure: each function returns a heap string the
 * caller frees, or QERR_NOMEM.
 */
#ifndef QUELL_CLI_RENDER_H
#define QUELL_CLI_RENDER_H

#include <jansson.h>

/* An action with its steps. */
int render_action(const json_t *action, char **out);
/* A preview (an action with planned steps): what will be acted on or skipped. */
int render_preview(const json_t *action, const char *identity_label, char **out);
/* Arrays from the list answers. */
int render_actions(const json_t *actions, char **out);
int render_identities(const json_t *identities, char **out);
int render_audit(const json_t *entries, char **out);
int render_alerts(const json_t *alerts, char **out);
/* An identity with its accounts. */
int render_identity(const json_t *identity, char **out);
/* Whole answers of GET /systems, /whoami, /audit/verify, POST /sync/{system}. */
int render_systems(const json_t *answer, char **out);
int render_whoami(const json_t *answer, char **out);
int render_verify(const json_t *answer, char **out);
int render_sync(const json_t *answer, char **out);
/* Accounts correlation left unlinked, with the identities each matched. */
int render_conflicts(const json_t *answer, char **out);
/* POST /tokens without the token itself, which the caller prints and wipes. */
int render_token(const json_t *answer, char **out);
/* GET /tokens' array: each token's name, id, role, scope, times and status. */
int render_tokens(const json_t *tokens, char **out);
/*
 * A copy of s ("-" for NULL) with control characters replaced by '?', so text from
 * quelld cannot drive the terminal.
 */
char *render_clean(const char *s);

#endif
