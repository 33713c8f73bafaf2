/*
 * The hunting SQL guard: any text as a hunting query, run on a scratch database of
 * quell's schema with a row in every table. Whatever the guard lets through must be
 * read-only and confined to the views: the database is unchanged afterwards (no other
 * connection committed: PRAGMA data_version), no file appeared beside it (ATTACH,
 * VACUUM INTO), and nothing of the tables behind no view (tokens, sync state) shows
 * in an answer: they hold a random mark, made afresh each run, that no query can
 * spell out by chance. The mark is looked for by a loop libFuzzer does not see into:
 * its strstr hook hands the needle to the mutator, which then spelled the mark as a
 * column alias (SELECT 1 AS <mark>), a false finding.
 * The queries share one guarded connection (sqlite_hunt_open): opening one per input
 * cost 6 ms, nearly all of each run, and held the harness to 150 inputs a second.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "scratch.h"
#include "store/hunt.h"

static struct hunt_conn *conn;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct qerr e;

	(void)argc, (void)argv;
	qerr_clear(&e);
	fuzz_check(sqlite_hunt_open(fuzz_scratch_open(), &conn, &e) == 0,
	    "the hunting connection opens");
	return 0;
}

/* Whether s holds the mark; no comparison here reaches libFuzzer's tracing. */
__attribute__((no_sanitize("coverage"))) static bool
shows_mark(const char *s)
{
	const char *m = fuzz_scratch_mark();
	size_t i, j;

	for (i = 0; s[i] != '\0'; i++) {
		for (j = 0; m[j] != '\0' && s[i + j] == m[j]; j++)
			;
		if (m[j] == '\0')
			return true;
	}
	return false;
}

static long
data_version(void)
{
	sqlite3_stmt *st = NULL;
	long v = -1;

	if (sqlite3_prepare_v2(fuzz_scratch_watch(), "PRAGMA data_version", -1, &st,
	    NULL) == SQLITE_OK &&
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
	DIR *dp = opendir(fuzz_scratch_dir());
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
	/* 10 ms, not the server's seconds: the fuzzer soon writes queries that never end,
	 * and the guard's limit stops them the same way at any length. */
	struct hunt_query q = { .limit = 100, .timeout_ms = 10, .max_bytes = 1 << 16 };
	char before[512], after[512], *out = NULL, *sql = fuzz_text(data, size);
	long v;
	struct qerr e;

	if (sql == NULL)
		return 0;
	q.sql = sql;
	qerr_clear(&e);
	v = data_version();
	listing(before, sizeof(before));
	if (sqlite_hunt_run(conn, &q, &out, &e) == 0)
		fuzz_check(out != NULL && !shows_mark(out),
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
