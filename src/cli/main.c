/*
 * quell: the command-line client of quelld. Parses the command line, gathers the
 * connection settings and the token, runs one command and maps the outcome to the
 * exit status documented in quell(1).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli/args.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "cli/conf.h"
#include "cli/outcome.h"
#include "cli/render.h"
#include "core/version.h"

/* Far larger than any token or cli.conf. */
#define MAX_FILE 65536

static int
help(const struct cli_inv *inv)
{
	const struct cli_cmd *t;
	size_t n, k;

	if (inv->cmd == NULL && inv->group == NULL) {
		fputs(cli_general_help(), stdout);
		return CLI_EXIT_OK;
	}
	/* A group word, or a command that shares its word (audit), shows them all. */
	t = cli_commands(&n);
	for (k = 0; k < n; k++) {
		if (inv->cmd != NULL && inv->cmd->sub != NULL ? &t[k] != inv->cmd :
		    strcmp(t[k].word, inv->cmd ? inv->cmd->word : inv->group) != 0)
			continue;
		printf("usage: %s\n\n%s\n", t[k].synopsis, t[k].help);
	}
	fputs(cli_common_help(), stdout);
	return CLI_EXIT_OK;
}

/* Needs neither quelld nor a token, so packaging can run it at build time. */
static int
completion(const struct cli_inv *inv)
{
	char *s;

	if (strcmp(inv->pos[0], "bash") != 0) {
		fprintf(stderr, "quell: completion for '%s' is not available (only bash)\n",
		    inv->pos[0]);
		return CLI_EXIT_USAGE;
	}
	if ((s = cli_completion_bash()) == NULL) {
		fputs("quell: out of memory\n", stderr);
		return CLI_EXIT_UNREACHABLE;
	}
	fputs(s, stdout);
	free(s);
	return CLI_EXIT_OK;
}

static int
usage_error(const struct cli_inv *inv, const struct qerr *e)
{
	char *m = render_clean(e->msg);

	fprintf(stderr, "quell: %s\n", m ? m : e->msg);
	if (inv->cmd != NULL)
		fprintf(stderr, "usage: %s\nTry 'quell %s%s%s --help'.\n",
		    inv->cmd->synopsis, inv->cmd->word, inv->cmd->sub ? " " : "",
		    inv->cmd->sub ? inv->cmd->sub : "");
	else
		fputs("Try 'quell --help'.\n", stderr);
	free(m);
	return CLI_EXIT_USAGE;
}

static void
print_error(const struct qerr *e)
{
	char *m = render_clean(e->msg), *c = render_clean(e->vendor_code);
	char *f = render_clean(e->field);

	if (e->vendor_code[0] != '\0')
		fprintf(stderr, "quell: %s (HTTP %d %s%s%s)\n", m ? m : "", e->status,
		    c ? c : "", e->field[0] ? ", field " : "", e->field[0] && f ? f : "");
	else
		fprintf(stderr, "quell: %s\n", m ? m : qerr_strerror(e->code));
	free(f);
	free(c);
	free(m);
}

/*
 * Reads a small file whole. The buffer is zeroed when the caller is done with it
 * (it may be a token), hence the explicit size.
 */
static int
slurp(const char *path, const char *what, char **out, size_t *cap, struct qerr *e)
{
	struct stat st;
	ssize_t n = 0;
	size_t len = 0;
	int fd, r = QERR_CONFIG;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return qerr_set(e, errno == ENOENT ? QERR_NOT_FOUND : QERR_CONFIG, NULL,
		    "cannot open %s %s: %s", what, path, strerror(errno));
	if (fstat(fd, &st) == 0 && strcmp(what, "token file") == 0 && (st.st_mode & 077))
		fprintf(stderr, "quell: warning: token file %s is readable by others\n", path);
	if ((*out = calloc(1, MAX_FILE + 1)) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	*cap = MAX_FILE + 1;
	while (len < MAX_FILE && (n = read(fd, *out + len, MAX_FILE - len)) > 0)
		len += (size_t)n;
	if (n < 0 || len == MAX_FILE) {
		qerr_set(e, QERR_CONFIG, NULL, "cannot read %s %s: %s", what, path,
		    n < 0 ? strerror(errno) : "too large");
		goto out;
	}
	r = 0;
out:
	close(fd);
	if (r < 0 && *out != NULL) {
		explicit_bzero(*out, *cap);
		free(*out);
		*out = NULL;
	}
	return r;
}

static int
load_conf(struct cli_conf *conf, struct qerr *e)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	char *path = NULL, *text = NULL;
	size_t cap;
	int r;

	memset(conf, 0, sizeof(*conf));
	if (xdg != NULL && *xdg != '\0')
		r = asprintf(&path, "%s/quell/cli.conf", xdg);
	else if (home != NULL && *home != '\0')
		r = asprintf(&path, "%s/.config/quell/cli.conf", home);
	else
		return 0;
	if (r < 0)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	if ((r = slurp(path, "config file", &text, &cap, e)) == QERR_NOT_FOUND) {
		qerr_clear(e);
		r = 0;
	} else if (r == 0)
		r = cli_conf_parse(text, path, conf, e);
	free(text);
	free(path);
	return r;
}

/* The token, from its file or QUELL_TOKEN, in a buffer of *cap bytes to zero. */
static int
load_token(const struct cli_settings *s, char **tok, size_t *cap, struct qerr *e)
{
	size_t len;
	int r;

	if (s->token_file == NULL) {
		*cap = strlen(s->token) + 1;
		if ((*tok = strdup(s->token)) == NULL)
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		return 0;
	}
	if ((r = slurp(s->token_file, "token file", tok, cap, e)) == QERR_NOT_FOUND)
		r = e->code = QERR_CONFIG;
	if (r < 0)
		return r;
	len = strlen(*tok);
	while (len > 0 && strchr(" \t\r\n", (*tok)[len - 1]) != NULL)
		(*tok)[--len] = '\0';
	return 0;
}

/* The token travels in the clear over http:// to anything but this host. */
static void
warn_plaintext(const char *url)
{
	const char *host = url + 7;

	if (strncasecmp(url, "http://", 7) != 0)
		return;
	if (strncmp(host, "127.", 4) == 0 || strncasecmp(host, "localhost", 9) == 0 ||
	    strncmp(host, "[::1]", 5) == 0)
		return;
	fprintf(stderr, "quell: warning: sending the API token unencrypted to %s\n", url);
}

static int
run(const struct cli_inv *inv, struct qerr *e)
{
	struct cli_env env = { getenv("QUELL_URL"), getenv("QUELL_TOKEN_FILE"),
		getenv("QUELL_TOKEN"), getenv("QUELL_CA"), getenv("HOME") };
	struct cmd_ctx x = { .inv = inv, .json = cli_flag(inv, "json") };
	struct cli_conf conf = { 0 };
	struct cli_settings s = { 0 };
	struct client *cl = NULL;
	char *token = NULL;
	size_t cap = 0;
	int r;

	if ((r = load_conf(&conf, e)) < 0 ||
	    (r = cli_settings_resolve(inv, &env, &conf, &s, e)) < 0 ||
	    (r = load_token(&s, &token, &cap, e)) < 0)
		goto out;
	warn_plaintext(s.url);
	r = client_open(s.url, token, s.ca, &cl, e);
	explicit_bzero(token, cap);
	if (r < 0)
		goto out;
	x.cl = cl;
	r = cmd_run(&x, e);
out:
	client_close(cl);
	if (token != NULL)
		explicit_bzero(token, cap);
	free(token);
	cli_settings_clear(&s);
	cli_conf_clear(&conf);
	fflush(stdout);
	return r < 0 ? r : x.status;
}

int
main(int argc, char *argv[])
{
	struct cli_inv inv;
	struct qerr e = { 0 };
	int r;

	if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
		printf("quell %s\n", QUELL_VERSION_FULL);
		return CLI_EXIT_OK;
	}
	if (cli_parse(argc, argv, &inv, &e) < 0)
		return usage_error(&inv, &e);
	if (inv.help)
		return help(&inv);
	if (inv.cmd->id == CMD_COMPLETION)
		return completion(&inv);
	render_set_width(cli_flag(&inv, "wide") ? 0 : RENDER_WIDTH);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fputs("quell: cannot initialise libcurl\n", stderr);
		return CLI_EXIT_UNREACHABLE;
	}
	r = run(&inv, &e);
	curl_global_cleanup();
	if (r < 0) {
		print_error(&e);
		return cli_exit_for_error(&e);
	}
	return r;
}
