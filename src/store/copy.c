/*
 * One node's SQLite store copied into PostgreSQL (quelld migrate). Both schemas are
 * the same migration for migration, so every table is copied column by column as
 * text, in the order the migrations created them (a row's foreign keys point at
 * tables copied before it) and each table's rows in the order they were written.
 * The whole copy is one PostgreSQL transaction: a failure leaves the target empty.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "store.h"

/* Not the data: the schema's version is the target's own, and nodes and leases are
 * the running cluster's. */
static const char tables_sql[] =
    "SELECT name FROM sqlite_master WHERE type = 'table'"
    " AND name NOT IN ('schema_version', 'nodes', 'leases')"
    " AND name NOT LIKE 'sqlite_%' ORDER BY rowid";

/* Tables a database in use always has rows in: any of them makes a target taken. */
static const char taken_sql[] =
    "SELECT (SELECT count(*) FROM audit) + (SELECT count(*) FROM identities)"
    " + (SELECT count(*) FROM actions) + (SELECT count(*) FROM tokens)";

struct copy {
	sqlite3 *src;
	PGconn *dst;
	long rows;
	struct qerr *e;
};

static int
pg_err(struct copy *c, PGresult *res, const char *what)
{
	const char *m = res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(c->dst);
	int r = qerr_set(c->e, QERR_IO, NULL, "%s: %.*s", what,
	    (int)strcspn(m, "\n"), m);

	PQclear(res);
	return r;
}

static int
pg_ok(struct copy *c, const char *sql, const char *what)
{
	PGresult *res = PQexec(c->dst, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		return pg_err(c, res, what);
	PQclear(res);
	return 0;
}

static int
sq_err(struct copy *c, const char *what)
{
	return qerr_set(c->e, QERR_IO, NULL, "%s: %s", what, sqlite3_errmsg(c->src));
}

/* Column i of the row st is on as PostgreSQL reads it: blobs as bytea's hex form. */
static char *
column_text(sqlite3_stmt *st, int i)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *b;
	char *out;
	size_t n, k;

	if (sqlite3_column_type(st, i) != SQLITE_BLOB)
		return strdup((const char *)sqlite3_column_text(st, i));
	b = sqlite3_column_blob(st, i);
	n = (size_t)sqlite3_column_bytes(st, i);
	if ((out = malloc(2 * n + 3)) == NULL)
		return NULL;
	out[0] = '\\';
	out[1] = 'x';
	for (k = 0; k < n; k++) {
		out[2 + 2 * k] = hex[b[k] >> 4];
		out[3 + 2 * k] = hex[b[k] & 15];
	}
	out[2 + 2 * n] = '\0';
	return out;
}

/* The INSERT for table's columns as st selects them, $1 on. */
static char *
insert_sql(const char *table, sqlite3_stmt *st, int ncol)
{
	size_t cap = 64 + strlen(table) + (size_t)ncol * 80, len;
	char *sql = malloc(cap);
	int i;

	if (sql == NULL)
		return NULL;
	len = (size_t)snprintf(sql, cap, "INSERT INTO %s (", table);
	for (i = 0; i < ncol; i++)
		len += (size_t)snprintf(sql + len, cap - len, "%s%s", i ? ", " : "",
		    sqlite3_column_name(st, i));
	len += (size_t)snprintf(sql + len, cap - len, ") VALUES (");
	for (i = 0; i < ncol; i++)
		len += (size_t)snprintf(sql + len, cap - len, "%s$%d", i ? ", " : "", i + 1);
	snprintf(sql + len, cap - len, ")");
	return sql;
}

static int
copy_row(struct copy *c, const char *table, sqlite3_stmt *st, int ncol, char **vals)
{
	PGresult *res;
	int i, r = 0;

	for (i = 0; i < ncol; i++) {
		vals[i] = NULL;
		if (sqlite3_column_type(st, i) != SQLITE_NULL &&
		    (vals[i] = column_text(st, i)) == NULL)
			r = qerr_set(c->e, QERR_NOMEM, NULL, "out of memory");
	}
	if (r == 0) {
		res = PQexecPrepared(c->dst, table, ncol, (const char *const *)vals, NULL, NULL,
		    0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			r = pg_err(c, res, table);
		else
			PQclear(res);
	}
	for (i = 0; i < ncol; i++)
		free(vals[i]);
	c->rows += r == 0;
	return r;
}

static int
copy_table(struct copy *c, const char *table)
{
	char sel[160], *sql = NULL, **vals = NULL;
	sqlite3_stmt *st = NULL;
	PGresult *res;
	int r = QERR_INTERNAL, rc, ncol;

	snprintf(sel, sizeof(sel), "SELECT * FROM \"%s\" ORDER BY rowid", table);
	if (sqlite3_prepare_v2(c->src, sel, -1, &st, NULL) != SQLITE_OK) {
		r = sq_err(c, table);
		goto out;
	}
	ncol = sqlite3_column_count(st);
	if ((sql = insert_sql(table, st, ncol)) == NULL ||
	    (vals = calloc((size_t)ncol, sizeof(*vals))) == NULL) {
		r = qerr_set(c->e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	res = PQprepare(c->dst, table, sql, ncol, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		r = pg_err(c, res, table);
		goto out;
	}
	PQclear(res);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((r = copy_row(c, table, st, ncol, vals)) != 0)
			goto out;
	r = rc == SQLITE_DONE ? 0 : sq_err(c, table);
out:
	free(vals);
	free(sql);
	sqlite3_finalize(st);
	return r;
}

static int
target_empty(struct copy *c)
{
	PGresult *res = PQexec(c->dst, taken_sql);
	long n;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return pg_err(c, res, "reading the target");
	n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (n != 0)
		return qerr_set(c->e, QERR_CONFLICT, "to", "the target database "
		    "already holds %ld rows of tokens, identities, actions and audit "
		    "entries: migrate into a new database", n);
	return 0;
}

static int
copy_all(struct copy *c)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = pg_ok(c, "BEGIN", "begin")) != 0 || (r = target_empty(c)) != 0)
		return r;
	if (sqlite3_prepare_v2(c->src, tables_sql, -1, &st, NULL) != SQLITE_OK)
		return sq_err(c, "listing the tables");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((r = copy_table(c, (const char *)sqlite3_column_text(st, 0))) != 0)
			break;
	if (r == 0 && rc != SQLITE_DONE)
		r = sq_err(c, "listing the tables");
	sqlite3_finalize(st);
	return r != 0 ? r : pg_ok(c, "COMMIT", "commit");
}

int
store_copy_sqlite_pg(const char *path, const char *location, long *rows,
    struct qerr *e)
{
	struct copy c = { .e = e };
	int r;

	*rows = 0;
	if (sqlite3_open_v2(path, &c.src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		r = qerr_set(e, QERR_IO, "from", "%s: %s", path,
		    c.src != NULL ? sqlite3_errmsg(c.src) : "cannot open");
		goto out;
	}
	c.dst = PQconnectdb(location);
	if (PQstatus(c.dst) != CONNECTION_OK) {
		r = pg_err(&c, NULL, "connecting to the target");
		goto out;
	}
	if ((r = copy_all(&c)) == 0)
		*rows = c.rows;
out:
	PQfinish(c.dst);
	sqlite3_close(c.src);
	return r;
}
