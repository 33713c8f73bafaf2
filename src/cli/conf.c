/* Parses cli.conf and resolves the connection settings; see conf.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/conf.h"
#include "core/text.h"

static int
conf_line(char *line, const char *name, int lineno, struct cli_conf *c, struct qerr *e)
{
	char *key, *val, *eq, **slot;

	key = text_trim(line);
	if (*key == '\0' || *key == '#')
		return 0;
	if ((eq = strchr(key, '=')) == NULL)
		return qerr_set(e, QERR_CONFIG, NULL, "%s:%d: expected 'key = value'",
		    name, lineno);
	*eq = '\0';
	key = text_trim(key);
	val = text_trim(eq + 1);
	if (strcmp(key, "url") == 0)
		slot = &c->url;
	else if (strcmp(key, "token_file") == 0)
		slot = &c->token_file;
	else if (strcmp(key, "ca") == 0)
		slot = &c->ca;
	else
		return qerr_set(e, QERR_CONFIG, key, "%s:%d: unknown key '%s'", name,
		    lineno, key);
	if (*val == '\0')
		return qerr_set(e, QERR_CONFIG, key, "%s:%d: %s has no value", name,
		    lineno, key);
	if (*slot != NULL)
		return qerr_set(e, QERR_CONFIG, key, "%s:%d: %s given twice", name,
		    lineno, key);
	if ((*slot = strdup(val)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

int
cli_conf_parse(const char *text, const char *name, struct cli_conf *c, struct qerr *e)
{
	char *copy, *line, *next;
	int lineno = 1, r = QERR_NOMEM;

	memset(c, 0, sizeof(*c));
	if ((copy = strdup(text)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	for (line = copy; line != NULL; line = next, lineno++) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if ((r = conf_line(line, name, lineno, c, e)) < 0)
			goto out;
	}
	r = 0;
out:
	free(copy);
	if (r < 0)
		cli_conf_clear(c);
	return r;
}

void
cli_conf_clear(struct cli_conf *c)
{
	if (c == NULL)
		return;
	free(c->url);
	free(c->token_file);
	free(c->ca);
	memset(c, 0, sizeof(*c));
}

static const char *
nonempty(const char *s)
{
	return s != NULL && *s != '\0' ? s : NULL;
}

/* A copy of a cli.conf path, with a leading "~/" meaning $HOME. */
static int
conf_path(const char *path, const char *home, char **out, struct qerr *e)
{
	if (strncmp(path, "~/", 2) != 0 || nonempty(home) == NULL)
		*out = strdup(path);
	else if (asprintf(out, "%s/%s", home, path + 2) < 0)
		*out = NULL;
	return *out == NULL ? qerr_set(e, QERR_NOMEM, NULL, "out of memory") : 0;
}

static int
set_url(const char *url, struct cli_settings *s, struct qerr *e)
{
	size_t len;

	if ((strncasecmp(url, "http://", 7) != 0 || url[7] == '\0') &&
	    (strncasecmp(url, "https://", 8) != 0 || url[8] == '\0'))
		return qerr_set(e, QERR_CONFIG, "url",
		    "the URL '%s' does not start with http:// or https://", url);
	if ((s->url = strdup(url)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	len = strlen(s->url);
	while (len > 0 && s->url[len - 1] == '/')
		s->url[--len] = '\0';
	return 0;
}

static int
set_token(const struct cli_inv *inv, const struct cli_env *env,
    const struct cli_conf *conf, struct cli_settings *s, struct qerr *e)
{
	const char *tf;

	if ((tf = cli_opt(inv, "token-file")) == NULL)
		tf = nonempty(env->token_file);
	if (tf == NULL && nonempty(env->token) != NULL) {
		s->token = env->token;
		return 0;
	}
	if (tf != NULL)
		return conf_path(tf, NULL, &s->token_file, e);
	if (conf->token_file != NULL)
		return conf_path(conf->token_file, env->home, &s->token_file, e);
	return qerr_set(e, QERR_CONFIG, "token", "no API token: use --token-file, "
	    "QUELL_TOKEN_FILE, QUELL_TOKEN or token_file in cli.conf");
}

int
cli_settings_resolve(const struct cli_inv *inv, const struct cli_env *env,
    const struct cli_conf *conf, struct cli_settings *s, struct qerr *e)
{
	static const struct cli_conf none;
	const char *url, *ca;
	int r;

	memset(s, 0, sizeof(*s));
	if (conf == NULL)
		conf = &none;
	if ((url = cli_opt(inv, "url")) == NULL && (url = nonempty(env->url)) == NULL &&
	    (url = conf->url) == NULL)
		url = CLI_DEFAULT_URL;
	if ((r = set_url(url, s, e)) < 0)
		goto out;
	if ((r = set_token(inv, env, conf, s, e)) < 0)
		goto out;
	if ((ca = cli_opt(inv, "ca")) != NULL || (ca = nonempty(env->ca)) != NULL)
		r = conf_path(ca, NULL, &s->ca, e);
	else if (conf->ca != NULL)
		r = conf_path(conf->ca, env->home, &s->ca, e);
out:
	if (r < 0)
		cli_settings_clear(s);
	return r;
}

void
cli_settings_clear(struct cli_settings *s)
{
	if (s == NULL)
		return;
	free(s->url);
	free(s->token_file);
	free(s->ca);
	memset(s, 0, sizeof(*s));
}
