/* The store a configuration's [store] section names: SQLite's file or PostgreSQL. */
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "store.h"

static bool
is_postgres(const struct config *cfg)
{
	return cfg->store_backend != NULL && strcmp(cfg->store_backend, "postgres") == 0;
}

int
store_open_config(const struct config *cfg, int nconn, struct store **out,
    struct qerr *e)
{
	char *loc = NULL;
	int r;

	*out = NULL;
	if (!is_postgres(cfg))
		return store_open(&store_sqlite, cfg->store_path, nconn, out, e);
	if ((r = store_pg_location(cfg->store_conninfo, cfg->store_passfile, &loc, e)) != 0)
		return r;
	r = store_open(&store_postgres, loc, nconn, out, e);
	free(loc);
	return r;
}

static bool
same_str(const char *a, const char *b)
{
	return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

bool
store_config_same(const struct config *a, const struct config *b)
{
	return is_postgres(a) == is_postgres(b) && same_str(a->store_path, b->store_path) &&
	    same_str(a->store_conninfo, b->store_conninfo) &&
	    same_str(a->store_passfile, b->store_passfile);
}

const char *
store_config_name(const struct config *cfg)
{
	return is_postgres(cfg) ? cfg->store_conninfo : cfg->store_path;
}
