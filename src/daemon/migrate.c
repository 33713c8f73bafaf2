/*
 * quelld migrate: a single node's SQLite store moved into PostgreSQL, for a cluster
 * of nodes to share. The source's audit chain is verified before anything is copied
 * and the target's after, and the two must end in the same entry with the same
 * hash: a copy that lost or changed an entry is reported, not trusted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/daemon.h"
#include "store/store.h"

struct chain {
	int64_t n;
	char head[65];
};

/* Opening applies the schema migrations the store lacks, on either side. */
static int
verified(const struct store_ops *ops, const char *loc, const char *side,
    struct chain *out, struct qerr *e)
{
	struct store *st = NULL;
	struct qerr why;
	int64_t broken = 0;
	int r;

	if ((r = store_open(ops, loc, 1, &st, e)) == 0 &&
	    (r = store_audit_verify(st, &out->n, &broken, out->head, &why, e)) == 0 &&
	    broken != 0)
		r = qerr_set(e, QERR_CONFLICT, NULL, "%s: the audit chain is broken at entry "
		    "%lld: %s", side, (long long)broken, why.msg);
	store_close(st);
	return r;
}

/* The value of an argument that must start with prefix, or NULL (e says why). */
static const char *
after_prefix(const char *arg, const char *opt, const char *prefix, struct qerr *e)
{
	size_t n = strlen(prefix);

	if (arg == NULL || strncmp(arg, prefix, n) != 0 || arg[n] == '\0') {
		qerr_set(e, QERR_INVALID, opt, "%s must be %sVALUE", opt, prefix);
		return NULL;
	}
	return arg + n;
}

static int
parse_args(int argc, char **argv, const char **from, const char **to,
    const char **passfile, struct qerr *e)
{
	const char **slot;
	int i;

	for (i = 0; i < argc; i++) {
		slot = strcmp(argv[i], "--from") == 0 ? from : strcmp(argv[i], "--to") == 0 ?
		    to : strcmp(argv[i], "--passfile") == 0 ? passfile : NULL;
		if (slot == NULL)
			return qerr_set(e, QERR_INVALID, NULL, "unknown argument '%s'",
			    argv[i]);
		if (i + 1 == argc || *slot != NULL)
			return qerr_set(e, QERR_INVALID, argv[i], "%s %s", argv[i],
			    i + 1 == argc ? "needs a value" : "is given twice");
		*slot = argv[++i];
	}
	return 0;
}

static int
migrate(int argc, char **argv, struct qerr *e)
{
	const char *from = NULL, *to = NULL, *passfile = NULL, *path, *conninfo;
	struct chain src, dst;
	char *loc = NULL;
	struct stat sb;
	long rows = 0;
	int r;

	if ((r = parse_args(argc, argv, &from, &to, &passfile, e)) != 0)
		return r;
	if ((path = after_prefix(from, "--from", "sqlite:", e)) == NULL ||
	    (conninfo = after_prefix(to, "--to", "postgres:", e)) == NULL)
		return e->code;
	if ((r = store_pg_location(conninfo, passfile, &loc, e)) != 0)
		goto out;
	/* store_open would make an empty database of a path that names none. */
	if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		r = qerr_set(e, QERR_INVALID, "--from", "--from: %s is not a database file",
		    path);
		goto out;
	}
	if ((r = verified(&store_sqlite, path, "the source", &src, e)) != 0 ||
	    (r = verified(&store_postgres, loc, "the target, before", &dst, e)) != 0)
		goto out;
	if ((r = store_copy_sqlite_pg(path, loc, &rows, e)) != 0 ||
	    (r = verified(&store_postgres, loc, "the target", &dst, e)) != 0)
		goto out;
	if (dst.n != src.n || strcmp(dst.head, src.head) != 0) {
		r = qerr_set(e, QERR_CONFLICT, NULL, "the target's audit chain (%lld entries, "
		    "head %.16s) is not the source's (%lld, head %.16s)", (long long)dst.n,
		    dst.head, (long long)src.n, src.head);
		goto out;
	}
	printf("migrated %ld rows from %s; audit chain verified on both sides: %lld "
	    "entries, head %s\n", rows, path, (long long)src.n, src.head);
	r = 0;
out:
	free(loc);
	return r;
}

int
daemon_migrate(int argc, char **argv)
{
	struct qerr e;

	qerr_clear(&e);
	if (migrate(argc, argv, &e) == 0)
		return 0;
	fprintf(stderr, "quelld: migrate: %s\n", e.msg);
	return e.code == QERR_INVALID || e.code == QERR_CONFIG ? 2 : 1;
}
