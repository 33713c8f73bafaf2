/*
 * Text for people from the API's JSON answers: aligned columns and key/value
 * blocks, times as quelld gave them. Pure: each function returns a heap string the
 * caller frees, or QERR_NOMEM.
 */
#ifndef QUELL_CLI_RENDER_H
#define QUELL_CLI_RENDER_H

#include <jansson.h>

/* Tables fit this many columns unless render_set_width says otherwise (--wide). */
#define RENDER_WIDTH 100
/* A column narrowed to fit is never narrower than this. */
#define RENDER_MIN_COL 8
/* 0: no limit. Set once, before rendering. */
void render_set_width(size_t cols);
/*
 * An RFC 3339 time from quelld as ISO 8601 in the local time zone with its offset
 * ("2026-11-25T09:00:00+01:00") into out; -1 if iso is not a time or out too short.
 */
int render_local_time(const char *iso, char *out, size_t len);

/* An action with its steps. */
int render_action(const json_t *action, char **out);
/* A preview (an action with planned steps): what will be acted on or skipped. */
int render_preview(const json_t *action, const char *identity_label, char **out);
/* What cancelling action (as it is now) will do, step by step. */
int render_cancel_plan(const json_t *action, char **out);
/* What a release will do (the answer of a release preview) to each containment. */
int render_release_plan(const json_t *plan, const char *identity_label, char **out);
/* Arrays from the list answers. */
int render_actions(const json_t *actions, char **out);
int render_identities(const json_t *identities, char **out);
int render_audit(const json_t *entries, char **out);
int render_alerts(const json_t *alerts, char **out);
/* GET /alerts/{id}: the alert, its entities, decisions and the actions they caused. */
int render_alert(const json_t *alert, char **out);
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
