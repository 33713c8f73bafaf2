/*
 * The audit log's hash chain: hash = SHA-256(prev_hash ‖ canonical JSON of the entry).
 * The canonical JSON holds seq, time, actor, event, action_id, step_id, identity_id and
 * detail (parsed and re-serialised), keys sorted, compact, ASCII-escaped, so the same
 * entry always hashes the same on any backend. Format 2 entries also hold "v": 2,
 * actor_kind, actor_id and client (null when absent); format 1 entries, written
 * before these existed, hash exactly as they did, so old chains still verify, and
 * turning a format 2 entry into a format 1 one changes its hash.
 */
#ifndef QUELL_CORE_AUDIT_H
#define QUELL_CORE_AUDIT_H

#include "err.h"
#include "model.h"

/* The hash of the (empty) chain before the first entry: 64 '0's. */
extern const char audit_genesis[65];

/* The format new entries are written in. */
#define AUDIT_FORMAT 2

/* Canonical JSON of ent (hashes excluded); caller frees. NULL on bad detail JSON. */
char *audit_canonical(const struct audit_entry *ent);

/* Sets ent->prev_hash to prev and ent->hash to the entry's hash. */
int audit_seal(struct audit_entry *ent, const char *prev, struct qerr *e);

/*
 * Checks one entry against the hash of the entry before it (audit_genesis for the
 * first) and the seq expected. 0 if it holds; QERR_CONFLICT with e->msg naming why.
 */
int audit_check(const struct audit_entry *ent, const char *prev, int64_t expect_seq,
    struct qerr *e);

#endif
