/*
 * The generic parser of a [system] section: every provider declares its keys in a
 * table (provider_ops.keys) and this file does the rest, so that unknown keys,
 * missing ones and bad values are refused the same way, in the same words, for every
 * kind of identity system.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "providers/kit.h"

/* The engine's keys, in every section: config.c and the engine check them. */
static const char *const common_keys[] = { "kind", "max_concurrency", "sync_interval",
    "shared_rate", "shared_burst" };

bool
kit_one_word(const char *v)
{
	if (*v == '\0')
		return false;
	for (; *v != '\0'; v++)
		if (*v <= ' ' || *v > '~')
			return false;
	return true;
}

static bool
common_key(const char *k)
{
	size_t i;

	for (i = 0; i < sizeof(common_keys) / sizeof(common_keys[0]); i++)
		if (strcmp(k, common_keys[i]) == 0)
			return true;
	return false;
}

static const struct provider_key *
key_find(const struct provider_key *keys, const char *name)
{
	for (; keys->name != NULL; keys++)
		if (strcmp(keys->name, name) == 0)
			return keys;
	return NULL;
}

static int
parse_number(const char *v, double lo, double hi, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' || !isfinite(d) || d < lo || d > hi)
		return -1;
	*out = d;
	return 0;
}

static int
set_string(char **dst, const char *v, size_t n, struct qerr *e)
{
	free(*dst);
	if ((*dst = strndup(v, n)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

static int
bad_value(const struct provider_key *k, const struct system_config *cfg,
    const struct config_kv *kv, struct qerr *e)
{
	if (k->secret)
		return config_error(e, cfg, kv->line, k->name, "%s must be %s", k->name,
		    k->help);
	return config_error(e, cfg, kv->line, k->name, "%s must be %s, not \"%s\"", k->name,
	    k->help, kv->value);
}

/* Stores a value of one of the scalar types; -1 when it is not of its type. */
static int
set_scalar(const struct provider_key *k, const char *v, void *dst)
{
	long n;
	int64_t ms;
	double d;

	switch (k->type) {
	case PROVIDER_KEY_BOOL:
		return config_bool(v, dst);
	case PROVIDER_KEY_LONG:
		if (config_long(v, (long)k->min, (long)k->max, &n) != 0)
			return -1;
		*(long *)dst = n;
		return 0;
	case PROVIDER_KEY_NUMBER:
		if (parse_number(v, k->min, k->max, &d) != 0)
			return -1;
		*(double *)dst = d;
		return 0;
	case PROVIDER_KEY_DURATION:
		if (config_duration(v, (int64_t)k->min, (int64_t)k->max, &ms) != 0)
			return -1;
		*(int64_t *)dst = ms;
		return 0;
	default:
		return -1;
	}
}

static int
set_value(const struct provider_key *k, const struct system_config *cfg,
    const struct config_kv *kv, void *settings, struct qerr *e)
{
	void *dst = (char *)settings + k->offset;
	const char *v = kv->value;
	struct kit_url u;
	size_t n = strlen(v);

	if (k->valid != NULL && !k->valid(v))
		return bad_value(k, cfg, kv, e);
	switch (k->type) {
	case PROVIDER_KEY_STRING:
		return set_string(dst, v, n, e);
	case PROVIDER_KEY_URL:
		if (kit_url_parse(v, k->schemes, &u) != 0)
			return bad_value(k, cfg, kv, e);
		while (n > u.origin_len && v[n - 1] == '/')
			n--;
		return set_string(dst, v, n, e);
	case PROVIDER_KEY_FILE:
		if (access(v, R_OK) != 0)
			return config_error(e, cfg, kv->line, k->name, "%s %s: %s", k->name, v,
			    strerror(errno));
		return set_string(dst, v, n, e);
	case PROVIDER_KEY_SECRET_FILE:
		kit_secret_clear(dst);
		return kit_file_read(cfg, kv, KIT_FILE_SECRET |
		    (k->multiline ? 0u : KIT_FILE_ONE_LINE), (size_t)k->max, dst, e);
	default:
		return set_scalar(k, v, dst) == 0 ? 0 : bad_value(k, cfg, kv, e);
	}
}

static const char *
article(const char *kind)
{
	return kind != NULL && strchr("aeiouAEIOU", kind[0]) != NULL ? "an" : "a";
}

static int
parse_given(const struct provider_key *keys, const struct system_config *cfg,
    void *settings, struct qerr *e)
{
	const struct provider_key *k;
	size_t i;
	int r;

	for (i = 0; i < cfg->nkv; i++) {
		const struct config_kv *kv = &cfg->kv[i];

		if (common_key(kv->key))
			continue;
		if ((k = key_find(keys, kv->key)) == NULL)
			return config_error(e, cfg, kv->line, kv->key,
			    "unknown key \"%s\" for %s %s system", kv->key, article(cfg->kind),
			    cfg->kind != NULL ? cfg->kind : "");
		if ((r = set_value(k, cfg, kv, settings, e)) != 0)
			return r;
	}
	return 0;
}

int
provider_keys_parse(const struct provider_key *keys, const struct system_config *cfg,
    void *settings, struct qerr *e)
{
	const struct provider_key *k;
	struct config_kv kv;
	int r;

	if ((r = parse_given(keys, cfg, settings, e)) != 0)
		return r;
	for (k = keys; k->name != NULL; k++) {
		if (config_system_get(cfg, k->name) != NULL)
			continue;
		if (k->required)
			return config_error(e, cfg, cfg->line, k->name, "system \"%s\" needs %s",
			    cfg->name != NULL ? cfg->name : "", k->name);
		if (k->def == NULL)
			continue;
		kv = (struct config_kv){ (char *)k->name, (char *)k->def, cfg->line };
		if ((r = set_value(k, cfg, &kv, settings, e)) != 0)
			return r;
	}
	return 0;
}

void
provider_keys_clear(const struct provider_key *keys, void *settings)
{
	void *dst;

	for (; keys->name != NULL; keys++) {
		dst = (char *)settings + keys->offset;
		switch (keys->type) {
		case PROVIDER_KEY_STRING:
		case PROVIDER_KEY_URL:
		case PROVIDER_KEY_FILE:
			if (keys->secret)
				kit_free_str(*(char **)dst);
			else
				free(*(char **)dst);
			*(char **)dst = NULL;
			break;
		case PROVIDER_KEY_SECRET_FILE:
			kit_secret_clear(dst);
			break;
		default:
			break;
		}
	}
}
