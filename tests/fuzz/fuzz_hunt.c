/*
 * The hunting SQL guard: any text as a hunting query, run on a scratch database of
 * quell's schema with a row in every table. Whatever the guard lets through must be
 * read-only and confined to the views: the database is unchanged afterwards (no other
 * connection committed: PRAGMA data_version), no file appeared beside it (ATTACH,
 * VACUUM INTO), and nothing of the tables behind no view (tokens, sync state) shows
 * in an answer: they hold a random mark, made afresh each run, that no query can
 * spell out by chance.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fuzz.h"
#include "store/hunt.h"
#include "store/store.h"

static char dir[] = "/tmp/quell-fuzz-hunt.XXXXXX";
static char path[sizeof(dir) + 16];
static sqlite3 *watch;	/* a connection of the harness's own, kept open */
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
    "INSERT INTO actions (id, type, status, identity_id, reason, created_at,"
    " updated_at) VALUES ('act_000000000000000000000001', 'disable', 'completed',"
    " 'idn_000000000000000000000001', 'why', 1, 1);"
    "INSERT INTO steps (id, action_id, system, type, status, created_at, updated_at)"
    " VALUES ('stp_000000000000000000000001', 'act_000000000000000000000001', 'corp',"
    " 'disable', 'succeeded', 1, 1);"
    "INSERT INTO audit (seq, time, actor, event, detail, prev_hash, hash) VALUES"
    " (1, 1, 'alice', 'action.requested', '{}', '0', '1');";

int LLVMFuzzerInitialize(int *argc, char ***argv);

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

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct store *st = NULL;
	unsigned char raw[16];
	char hidden[512];
	struct qerr e;
	FILE *f;
	size_t i;

	(void)argc, (void)argv;
	fuzz_check((f = fopen("/dev/urandom", "rb")) != NULL &&
	    fread(raw, 1, sizeof(raw), f) == sizeof(raw), "random bytes");
	fclose(f);
	for (i = 0; i < sizeof(raw); i++)
		snprintf(mark + 2 * i, 3, "%02x", raw[i]);
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
	return 0;
}

static long
data_version(void)
{
	sqlite3_stmt *st = NULL;
	long v = -1;

	if (sqlite3_prepare_v2(watch, "PRAGMA data_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* The names in the scratch directory, as one line. */
static void
listing(char *out, size_t len)
{
	struct dirent *d;
	DIR *dp = opendir(dir);
	size_t n = 0;

	out[0] = '\0';
	while (dp != NULL && (d = readdir(dp)) != NULL && n + 1 < len)
		n += (size_t)snprintf(out + n, len - n, "%s/", d->d_name);
	if (dp != NULL)
		closedir(dp);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hunt_query q = { .limit = 100, .timeout_ms = 200, .max_bytes = 1 << 16 };
	char before[512], after[512], *out = NULL, *sql = fuzz_text(data, size);
	long v;
	struct qerr e;

	if (sql == NULL)
		return 0;
	q.sql = sql;
	qerr_clear(&e);
	v = data_version();
	listing(before, sizeof(before));
	if (sqlite_hunt(path, &q, &out, &e) == 0)
		fuzz_check(out != NULL && strstr(out, mark) == NULL,
		    "a hunting answer shows nothing of the tables behind no view");
	else
		fuzz_check(out == NULL && e.msg[0] != '\0', "a refused query says why");
	listing(after, sizeof(after));
	fuzz_check(data_version() == v, "a hunting query changes nothing in the database");
	fuzz_check(strcmp(before, after) == 0, "a hunting query creates no file");
	free(out);
	free(sql);
	return 0;
}
