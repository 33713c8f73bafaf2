/*
 * A scratch store for the harnesses that read one (scratch.h): quell's schema, made
 * by the store itself, with a row in every table the hunting views show and, in
 * tables they do not, a random mark made afresh each run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz.h"
#include "scratch.h"
#include "store/store.h"

static char dir[] = "/tmp/quell-fuzz.XXXXXX";
static char path[sizeof(dir) + 16];
static sqlite3 *watch;
static char mark[33];

#define HIDDEN_SQL \
    "INSERT INTO tokens (id, name, role, hash, created_at, scope) VALUES" \
    " ('tok_1', '%1$s', 'admin', zeroblob(32), 1, '[\"%1$s\"]');" \
    "INSERT INTO sync_state (system, cursor, updated_at) VALUES ('corp', '%1$s', 1);"

static const char seed_sql[] =
    "INSERT INTO identities (id, display_name, tags, created_at) VALUES"
    " ('idn_000000000000000000000001', 'Alice', '[\"tier0\"]', 1767225600000);"
    "INSERT INTO accounts (id, identity_id, system, kind, external_id, upn, state,"
    " created_at) VALUES ('acc_000000000000000000000001',"
    " 'idn_000000000000000000000001', 'corp', 'ad', 'g1', 'alice@corp.test',"
    " 'enabled', 1);"
    "INSERT INTO alerts (id, source, external_id, time, title, category, severity,"
    " confidence, received_at, received_us) VALUES ('alr_000000000000000000000001',"
    " 'mdi', 'm1', 1, 'Ransomware', 'ransomware', 'high', 90, 1, 1);"
    "INSERT INTO alert_entities (alert_id, seq, kind, id_type, value) VALUES"
    " ('alr_000000000000000000000001', 0, 'account', 'upn', 'alice@corp.test');"
    "INSERT INTO actions (id, type, status, identity_id, requested_by, source, reason,"
    " params, created_at, updated_at) VALUES ('act_000000000000000000000001',"
    " 'disable', 'completed', 'idn_000000000000000000000001', 'alice', 'manual', 'why',"
    " '{}', 1, 1);"
    "INSERT INTO steps (id, action_id, system, type, status, created_at, updated_at)"
    " VALUES ('stp_000000000000000000000001', 'act_000000000000000000000001', 'corp',"
    " 'disable', 'succeeded', 1, 1);"
    "INSERT INTO audit (seq, time, actor, event, detail, prev_hash, hash) VALUES"
    " (1, 1, 'alice', 'action.requested', '{}', '0', '1');";

static void
cleanup(void)
{
	char p[sizeof(path) + 8];

	sqlite3_close(watch);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	unlink(path);
	rmdir(dir);
}

static void
make_mark(void)
{
	unsigned char raw[16];
	FILE *f;
	size_t i;

	fuzz_check((f = fopen("/dev/urandom", "rb")) != NULL &&
	    fread(raw, 1, sizeof(raw), f) == sizeof(raw), "random bytes");
	fclose(f);
	for (i = 0; i < sizeof(raw); i++)
		snprintf(mark + 2 * i, 3, "%02x", raw[i]);
}

const char *
fuzz_scratch_open(void)
{
	struct store *st = NULL;
	char hidden[512];
	struct qerr e;

	make_mark();
	snprintf(hidden, sizeof(hidden), HIDDEN_SQL, mark);
	fuzz_check(mkdtemp(dir) != NULL, "a scratch directory");
	snprintf(path, sizeof(path), "%s/quell.db", dir);
	fuzz_check(store_open(&store_sqlite, path, 1, &st, &e) == 0, "the scratch store");
	store_close(st);
	if (sqlite3_open(path, &watch) != SQLITE_OK ||
	    sqlite3_exec(watch, seed_sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(watch, hidden, NULL, NULL, NULL) != SQLITE_OK)
		fuzz_check(false, sqlite3_errmsg(watch));
	atexit(cleanup);
	return path;
}

const char *
fuzz_scratch_dir(void)
{
	return dir;
}

const char *
fuzz_scratch_mark(void)
{
	return mark;
}

sqlite3 *
fuzz_scratch_watch(void)
{
	return watch;
}
