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

#include "fuzz.h"
#include "scratch.h"
#include "store/hunt.h"

static const char *path;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	path = fuzz_scratch_open();
	return 0;
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
		fuzz_check(out != NULL && strstr(out, fuzz_scratch_mark()) == NULL,
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
