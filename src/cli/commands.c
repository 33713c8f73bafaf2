/*
 * The quell commands. Output for people goes through render.c; --json prints the
 * API's answers as they came. Remediation commands always preview first, so a
 * person sees every account that will be touched before anything is stored.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/outcome.h"
#include "cli/render.h"
#include "core/id.h"
#include "core/model.h"

typedef int (*render_fn)(const json_t *, char **);
typedef int (*page_fn)(struct cmd_ctx *, const json_t *items, void *arg, struct qerr *);

static int
nomem(struct qerr *e)
{
	return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
}

static int
dump(const json_t *j, struct qerr *e)
{
	if (json_dumpf(j, stdout, JSON_INDENT(2)) < 0 || fputc('\n', stdout) == EOF)
		return qerr_set(e, QERR_IO, NULL, "cannot write to standard output");
	return 0;
}

/* Prints j as JSON, or rendered for people. */
static int
emit(const struct cmd_ctx *x, const json_t *j, render_fn render, struct qerr *e)
{
	char *text = NULL;

	if (x->json)
		return dump(j, e);
	if (render(j, &text) < 0)
		return nomem(e);
	fputs(text, stdout);
	free(text);
	return 0;
}

/* Appends key=value (escaped) to a query string; a NULL value adds nothing. */
static int
qs_add(struct cmd_ctx *x, char **qs, const char *key, const char *value, struct qerr *e)
{
	char *esc, *n = NULL;

	if (value == NULL)
		return 0;
	if ((esc = client_escape(x->cl, value)) == NULL)
		return nomem(e);
	if (asprintf(&n, "%s%c%s=%s", *qs ? *qs : "", *qs ? '&' : '?', key, esc) < 0)
		n = NULL;
	free(esc);
	if (n == NULL)
		return nomem(e);
	free(*qs);
	*qs = n;
	return 0;
}

/* Calls method base/<id escaped><tail>. */
static int
call_id(struct cmd_ctx *x, const char *method, const char *base, const char *id,
    const char *tail, json_t *body, json_t **answer, struct qerr *e)
{
	char *esc, *path = NULL;
	int r;

	if ((esc = client_escape(x->cl, id)) == NULL)
		return nomem(e);
	if (asprintf(&path, "%s/%s%s", base, esc, tail ? tail : "") < 0)
		path = NULL;
	free(esc);
	if (path == NULL)
		return nomem(e);
	r = client_call(x->cl, method, path, body, answer, e);
	free(path);
	return r;
}

static const char *
str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static bool
same(const json_t *o, const char *key, const char *term)
{
	const char *v = str(o, key);

	return v != NULL && strcasecmp(v, term) == 0;
}

/* Whether the term is exactly the identity's name or one of its accounts' names. */
static bool
names(const json_t *idn, const char *term)
{
	const json_t *acc;
	size_t k;

	if (same(idn, "display_name", term))
		return true;
	json_array_foreach(json_object_get(idn, "accounts"), k, acc)
		if (same(acc, "username", term) || same(acc, "upn", term))
			return true;
	return false;
}

/* The one identity out of several search results that the term names exactly. */
static const json_t *
exact(const json_t *list, const char *term)
{
	const json_t *idn, *found = NULL;
	size_t i;
	int n = 0;

	json_array_foreach(list, i, idn)
		if (names(idn, term)) {
			found = idn;
			n++;
		}
	return n == 1 ? found : NULL;
}

static int
ambiguous(const char *term, const json_t *list, struct qerr *e)
{
	char *text = NULL, *t = render_clean(term);

	if (render_identities(list, &text) == 0)
		fprintf(stderr, "identities matching '%s':\n%s", t ? t : "?", text);
	free(text);
	qerr_set(e, QERR_INVALID, "<identity>",
	    "'%s' matches more than one identity; give its id", t ? t : "?");
	free(t);
	return QERR_INVALID;
}

/* The identities a search term matches (at most limit), in *ans. */
static int
search(struct cmd_ctx *x, const char *term, int limit, json_t **ans, struct qerr *e)
{
	char *qs = NULL, *path = NULL;
	int r;

	*ans = NULL;
	if ((r = qs_add(x, &qs, "q", term, e)) < 0)
		return r;
	if (asprintf(&path, "/api/v1/identities%s&limit=%d", qs, limit) < 0)
		path = NULL;
	r = path == NULL ? nomem(e) : client_call(x->cl, "GET", path, NULL, ans, e);
	free(path);
	free(qs);
	return r;
}

static int
not_found(const char *term, struct qerr *e)
{
	char *t = render_clean(term);
	int r;

	r = qerr_set(e, QERR_NOT_FOUND, "<identity>", "no identity matches '%s'",
	    t ? t : "?");
	e->status = 404;
	free(t);
	return r;
}

/* Finds the identity id an id or a search term names. */
static int
search_identity(struct cmd_ctx *x, const char *term, char **id, struct qerr *e)
{
	json_t *ans = NULL;
	const json_t *list, *pick;
	int r;

	if ((r = search(x, term, 20, &ans, e)) < 0)
		goto out;
	list = json_object_get(ans, "identities");
	if ((pick = json_array_size(list) == 1 ? json_array_get(list, 0) :
	    exact(list, term)) == NULL) {
		if (json_array_size(list) > 1) {
			r = ambiguous(term, list, e);
			goto out;
		}
		r = not_found(term, e);
		goto out;
	}
	r = (*id = strdup(str(pick, "id") ? str(pick, "id") : "")) ? 0 : nomem(e);
out:
	json_decref(ans);
	return r;
}

/* The identity (with its accounts) an id (idn_...) or a unique search term names. */
static int
resolve_identity(struct cmd_ctx *x, const char *arg, json_t **idn, struct qerr *e)
{
	char *id = NULL;
	int r;

	*idn = NULL;
	if (strncmp(arg, "idn_", 4) == 0)
		return call_id(x, "GET", "/api/v1/identities", arg, NULL, NULL, idn, e);
	if ((r = search_identity(x, arg, &id, e)) == 0)
		r = call_id(x, "GET", "/api/v1/identities", id, NULL, NULL, idn, e);
	free(id);
	return r;
}

/* At most this many identities one term acts on with --all. */
#define ALL_MAX 1000

/* Every identity of list, read whole (with accounts), appended to idns. */
static int
read_all(struct cmd_ctx *x, const json_t *list, json_t *idns, struct qerr *e)
{
	const json_t *one;
	json_t *idn;
	size_t i;
	int r = 0;

	json_array_foreach(list, i, one)
		if (r == 0 && (r = call_id(x, "GET", "/api/v1/identities", str(one, "id") ?
		    str(one, "id") : "", NULL, NULL, &idn, e)) == 0 &&
		    json_array_append_new(idns, idn) < 0)
			r = nomem(e);
	return r;
}

/*
 * The identities arg names for an action, appended to idns: an id's, or a search
 * term's. A term matching several identities is acted on only as --all says (every
 * one); with --yes and without --all it is refused, since nobody sees whom the term
 * picked before it acts; otherwise the one it names exactly, as for any command.
 */
static int
resolve_targets(struct cmd_ctx *x, const char *arg, json_t *idns, struct qerr *e)
{
	bool all = cli_flag(x->inv, "all");
	const json_t *list;
	json_t *ans = NULL, *idn = NULL;
	char *t;
	int r;

	if (strncmp(arg, "idn_", 4) == 0 || (!all && !cli_flag(x->inv, "yes"))) {
		if ((r = resolve_identity(x, arg, &idn, e)) == 0 &&
		    json_array_append_new(idns, idn) < 0)
			r = nomem(e);
		return r;
	}
	if ((r = search(x, arg, all ? ALL_MAX : 20, &ans, e)) < 0)
		return r;
	list = json_object_get(ans, "identities");
	t = render_clean(arg);
	if (json_array_size(list) == 0)
		r = not_found(arg, e);
	else if (all && json_is_string(json_object_get(ans, "next")))
		r = qerr_set(e, QERR_INVALID, "--all", "'%s' matches more than %d identities: "
		    "narrow it down", t ? t : "?", ALL_MAX);
	else if (json_array_size(list) > 1 && !all) {
		ambiguous(arg, list, e);
		r = qerr_set(e, QERR_INVALID, "--all", "'%s' matches %zu identities: with "
		    "--yes give an id, or add --all to act on every one", t ? t : "?",
		    json_array_size(list));
	} else
		r = read_all(x, list, idns, e);
	free(t);
	json_decref(ans);
	return r;
}

static bool
terminal(const char *status)
{
	enum action_status s;

	return status != NULL && action_status_parse(status, &s) == 0 &&
	    action_status_terminal(s);
}

static void
note_change(FILE *f, const char *when, const char *what, const char *status,
    const char *msg)
{
	char t[64], *a = render_clean(what), *s = render_clean(status);
	char *m = msg ? render_clean(msg) : NULL, *w;

	w = when != NULL && render_local_time(when, t, sizeof(t)) == 0 ? strdup(t) :
	    render_clean(when);

	fprintf(f, "%s  %s %s%s%s\n", w ? w : "?", a ? a : "?", s ? s : "?",
	    m ? ": " : "", m ? m : "");
	free(m);
	free(s);
	free(a);
	free(w);
}

/* Prints what changed since the last poll; seen maps step ids to their status. */
static bool
report(FILE *f, const json_t *a, json_t *seen)
{
	const json_t *step;
	const char *st, *when;
	char name[256];
	bool changed = false;
	size_t i;

	if (!json_equal(json_object_get(seen, "_action"), json_object_get(a, "status"))) {
		note_change(f, str(a, "updated_at"), "action", str(a, "status"),
		    str(a, "message"));
		json_object_set(seen, "_action", json_object_get(a, "status"));
		changed = true;
	}
	json_array_foreach(json_object_get(a, "steps"), i, step) {
		st = str(step, "status");
		if (st == NULL || str(step, "id") == NULL ||
		    json_equal(json_object_get(seen, str(step, "id")),
		    json_object_get(step, "status")))
			continue;
		if ((when = str(step, "finished_at")) == NULL &&
		    (when = str(step, "started_at")) == NULL)
			when = str(a, "updated_at");
		snprintf(name, sizeof(name), "step %s/%s", str(step, "system") ?
		    str(step, "system") : "?", str(step, "account_name") ?
		    str(step, "account_name") : "?");
		note_change(f, when, name, st, str(step, "message"));
		json_object_set(seen, str(step, "id"), json_object_get(step, "status"));
		changed = true;
	}
	return changed;
}

static void
pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Polls an action until it ends, printing each change; backoff 100 ms to 1 s. */
static int
follow(struct cmd_ctx *x, const char *id, struct qerr *e)
{
	json_t *a = NULL, *seen = json_object();
	FILE *f = x->json ? stderr : stdout;
	long delay = 100;
	int r;

	if (seen == NULL)
		return nomem(e);
	for (;;) {
		json_decref(a);
		if ((r = call_id(x, "GET", "/api/v1/actions", id, NULL, NULL, &a, e)) < 0)
			goto out;
		if (report(f, a, seen))
			delay = 100;
		if (terminal(str(a, "status")))
			break;
		fflush(f);
		pause_ms(delay);
		delay = delay * 2 > 1000 ? 1000 : delay * 2;
	}
	if (!x->json)
		fputc('\n', f);
	if ((r = emit(x, a, render_action, e)) == 0)
		x->status = cli_exit_for_action(str(a, "status"));
out:
	json_decref(a);
	json_decref(seen);
	return r;
}

/* 1 yes, 0 no, -1 no terminal to ask on. */
static int
ask(void)
{
	FILE *tty;
	char line[32] = "";
	size_t n;

	if ((tty = fopen("/dev/tty", "r+")) == NULL)
		return -1;
	fputs("Proceed? [y/N] ", tty);
	fflush(tty);
	if (fgets(line, sizeof(line), tty) == NULL)
		line[0] = '\0';
	fclose(tty);
	n = strcspn(line, " \t\r\n");
	line[n] = '\0';
	return strcasecmp(line, "y") == 0 || strcasecmp(line, "yes") == 0;
}

static int
confirm(struct cmd_ctx *x)
{
	int a;

	if (cli_flag(x->inv, "yes"))
		return 1;
	if ((a = ask()) < 0)
		fputs("quell: not confirmed: no terminal to ask on; "
		    "pass --yes to act without asking\n", stderr);
	else if (a == 0)
		fputs("quell: not confirmed; nothing was done\n", stderr);
	if (a != 1)
		x->status = CLI_EXIT_UNCONFIRMED;
	return a == 1;
}

static json_t *
action_body(const struct cmd_ctx *x, const char *type, const char *identity_id)
{
	const char *acc = cli_opt(x->inv, "account");
	json_t *b;

	b = json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", type, "identity_id", identity_id,
	    "reason", cli_opt(x->inv, "reason"), "source", "manual", "preview", 1);
	if (b != NULL && acc != NULL && json_object_set_new(b, "account_id",
	    json_string(acc)) < 0) {
		json_decref(b);
		return NULL;
	}
	if (b != NULL && cli_flag(x->inv, "clear-dont-expire") && json_object_set_new(b,
	    "params", json_pack("{s:b}", "clear_dont_expire", 1)) < 0) {
		json_decref(b);
		return NULL;
	}
	if (b != NULL && cli_opt(x->inv, "level") != NULL && json_object_set_new(b,
	    "params", json_pack("{s:s}", "risk_level", cli_opt(x->inv, "level"))) < 0) {
		json_decref(b);
		return NULL;
	}
	return b;
}

/* Prints what a preview says will happen (to standard error with --json, whose
 * standard output is the API's answers). */
static int
show_plan(const struct cmd_ctx *x, const char *label, const json_t *preview,
    struct qerr *e)
{
	char *text = NULL;
	int r;

	r = render_preview(preview, label, &text) < 0 ? nomem(e) : 0;
	if (r == 0)
		fputs(text, x->json ? stderr : stdout);
	fflush(x->json ? stderr : stdout);
	free(text);
	return r;
}

static int
show_preview(const struct cmd_ctx *x, const json_t *idn, const json_t *preview,
    struct qerr *e)
{
	char *label = NULL;
	int r;

	if (asprintf(&label, "%s (%s)", str(idn, "display_name") ? str(idn, "display_name") :
	    "?", str(idn, "id") ? str(idn, "id") : "?") < 0)
		return nomem(e);
	r = show_plan(x, label, preview, e);
	free(label);
	return r;
}

/* quelld takes at most this many requests in one bulk request. */
#define BULK_MAX 1000

/*
 * One bulk request for type on the identities idns[from, from + n): the fields
 * action_body sets, once for all, and one request per identity. A preview is all or
 * nothing, so that one refusal refuses it whole; the request itself is not.
 */
static json_t *
bulk_body(const struct cmd_ctx *x, const char *type, const json_t *idns, size_t from,
    size_t n, bool preview)
{
	json_t *b = action_body(x, type, ""), *items = json_array();
	size_t i;

	if (b == NULL || items == NULL)
		goto fail;
	json_object_del(b, "identity_id");
	for (i = from; i < from + n; i++)
		if (json_array_append_new(items, json_pack("{s:O}", "identity_id",
		    json_object_get(json_array_get(idns, i), "id"))) < 0)
			goto fail;
	if (json_object_set_new(b, "requests", items) < 0 ||
	    json_object_set_new(b, "preview", json_boolean(preview)) < 0 ||
	    json_object_set_new(b, "all_or_nothing", json_boolean(preview)) < 0 ||
	    (!preview && strcmp(type, "deactivate") == 0 &&
	    json_object_set_new(b, "confirm_destructive", json_true()) < 0)) {
		items = NULL;
		goto fail;
	}
	return b;
fail:
	json_decref(items);
	json_decref(b);
	return NULL;
}

/* The bulk answer for idns[from, ...): a line per request, the ids to follow. */
static void
bulk_report(struct cmd_ctx *x, const json_t *ans, const json_t *idns, size_t from,
    json_t *acts)
{
	const json_t *res, *err;
	const char *label;
	size_t i;
	int st;

	json_array_foreach(json_object_get(ans, "results"), i, res) {
		label = str(json_array_get(idns, from + i), "id");
		if ((err = json_object_get(res, "error")) != NULL) {
			fprintf(stderr, "quell: %s: %s\n", label ? label : "?",
			    str(err, "message") ? str(err, "message") : "refused");
			x->status = CLI_EXIT_REFUSED;
		}
		if (str(res, "action_id") == NULL)
			continue;
		if (!x->json)
			printf("action %s %s on %s\n", str(res, "action_id"),
			    str(res, "status") ? str(res, "status") : "?", label ? label : "?");
		json_array_append(acts, json_object_get(res, "action_id"));
		if ((st = cli_exit_for_action(str(res, "status"))) != CLI_EXIT_OK &&
		    x->status == CLI_EXIT_OK)
			x->status = st;
	}
}

/* Requests type on idns (identities with id and display_name), BULK_MAX at a time;
 * preview: shows each plan instead. acts receives the ids of the actions. */
static int
bulk_send(struct cmd_ctx *x, const char *type, const json_t *idns, bool preview,
    json_t *acts, struct qerr *e)
{
	json_t *body, *ans, *res;
	size_t from, n, i;
	int r = 0;

	for (from = 0; r == 0 && from < json_array_size(idns); from += n) {
		n = json_array_size(idns) - from;
		n = n > BULK_MAX ? BULK_MAX : n;
		ans = NULL;
		if ((body = bulk_body(x, type, idns, from, n, preview)) == NULL)
			r = nomem(e);
		else if ((r = client_call(x->cl, "POST", "/api/v1/actions/bulk", body, &ans,
		    e)) == 0 && preview)
			json_array_foreach(json_object_get(ans, "results"), i, res)
				if (r == 0)
					r = show_preview(x, json_array_get(idns, from + i),
					    json_object_get(res, "action"), e);
		if (r == 0 && !preview)
			bulk_report(x, ans, idns, from, acts);
		if (r == 0 && !preview && x->json)
			r = dump(ans, e);
		json_decref(ans);
		json_decref(body);
	}
	return r;
}

/* Previews type on every identity of idns, asks once, then requests them in bulk;
 * with --wait follows each action in turn. */
static int
act_bulk(struct cmd_ctx *x, const char *type, const json_t *idns, struct qerr *e)
{
	json_t *acts = json_array();
	const json_t *id;
	size_t i;
	int r;

	if (acts == NULL)
		return nomem(e);
	if ((r = bulk_send(x, type, idns, true, NULL, e)) == 0 && confirm(x))
		r = bulk_send(x, type, idns, false, acts, e);
	if (cli_flag(x->inv, "wait"))
		json_array_foreach(acts, i, id)
			if (r == 0)
				r = follow(x, json_string_value(id), e);
	json_decref(acts);
	return r;
}

/* One identity: its preview, the question, the request. */
static int
act_one(struct cmd_ctx *x, const char *type, const json_t *idn, struct qerr *e)
{
	json_t *body = NULL, *preview = NULL, *a = NULL;
	int r = nomem(e);

	if (str(idn, "id") == NULL || (body = action_body(x, type, str(idn, "id"))) == NULL)
		goto out;
	if ((r = client_call(x->cl, "POST", "/api/v1/actions", body, &preview, e)) < 0 ||
	    (r = show_preview(x, idn, preview, e)) < 0)
		goto out;
	if (!confirm(x))
		goto out;
	json_object_del(body, "preview");
	if (strcmp(type, "deactivate") == 0 &&
	    json_object_set_new(body, "confirm_destructive", json_true()) < 0)
		goto out;
	if ((r = client_call(x->cl, "POST", "/api/v1/actions", body, &a, e)) < 0)
		goto out;
	if (cli_flag(x->inv, "wait") && str(a, "id") != NULL) {
		if (!x->json)
			printf("action %s requested\n", str(a, "id"));
		r = follow(x, str(a, "id"), e);
		goto out;
	}
	if (x->json)
		r = emit(x, a, render_action, e);
	else
		printf("action %s %s\n", str(a, "id") ? str(a, "id") : "?",
		    str(a, "status") ? str(a, "status") : "?");
	x->status = cli_exit_for_action(str(a, "status"));
out:
	json_decref(a);
	json_decref(preview);
	json_decref(body);
	return r;
}

/* The identities the command line names: one is previewed and requested alone,
 * several in one bulk request. */
static int
cmd_act(struct cmd_ctx *x, const char *type, struct qerr *e)
{
	json_t *idns = json_array();
	size_t i;
	int r = 0;

	if (idns == NULL)
		return nomem(e);
	for (i = 0; r == 0 && i < x->inv->npos; i++)
		r = resolve_targets(x, x->inv->pos[i], idns, e);
	if (r == 0 && json_array_size(idns) > 1 && cli_opt(x->inv, "account") != NULL)
		r = qerr_set(e, QERR_INVALID, "--account", "--account names one account: "
		    "give one identity with it");
	if (r == 0 && json_array_size(idns) > 1)
		r = act_bulk(x, type, idns, e);
	else if (r == 0)
		r = act_one(x, type, json_array_get(idns, 0), e);
	json_decref(idns);
	return r;
}

/* The cursor for the next page as text, or NULL at the end. */
static char *
cursor(const json_t *ans)
{
	const json_t *n = json_object_get(ans, "next");
	char *s = NULL;

	if (json_is_string(n))
		return strdup(json_string_value(n));
	if (json_is_integer(n) && asprintf(&s, "%" JSON_INTEGER_FORMAT,
	    json_integer_value(n)) < 0)
		return NULL;
	return s;
}

/*
 * GETs path+qs page by page, handing each page's items to fn; with !all stops
 * after one page and returns the cursor of the next in *more.
 */
static int
pages(struct cmd_ctx *x, const char *path, const char *qs, const char *items,
    const char *param, bool all, page_fn fn, void *arg, char **more, struct qerr *e)
{
	json_t *ans = NULL;
	char *next = NULL, *url = NULL, *tail = NULL;
	int r;

	*more = NULL;
	do {
		free(url);
		free(tail);
		tail = NULL;
		if ((r = qs_add(x, &tail, param, next, e)) < 0)
			break;
		if (asprintf(&url, "%s%s%s%s", path, qs ? qs : "",
		    tail ? (qs ? "&" : "?") : "", tail ? tail + 1 : "") < 0) {
			url = NULL;
			r = nomem(e);
			break;
		}
		json_decref(ans);
		if ((r = client_call(x->cl, "GET", url, NULL, &ans, e)) < 0 ||
		    (r = fn(x, json_object_get(ans, items), arg, e)) < 0)
			break;
		free(next);
		next = cursor(ans);
	} while (all && next != NULL);
	json_decref(ans);
	free(tail);
	free(url);
	if (r == 0)
		*more = next;
	else
		free(next);
	return r;
}

static int
collect(struct cmd_ctx *x, const json_t *items, void *arg, struct qerr *e)
{
	(void)x;
	return json_is_array(items) && json_array_extend(arg, (json_t *)items) < 0 ?
	    nomem(e) : 0;
}

/* One page, or every page with --all, as one list. */
static int
list_cmd(struct cmd_ctx *x, const char *path, const char *qs, const char *items,
    const char *param, render_fn render, struct qerr *e)
{
	json_t *all = json_array(), *out = NULL;
	char *more = NULL;
	int r;

	if (all == NULL)
		return nomem(e);
	if ((r = pages(x, path, qs, items, param, cli_flag(x->inv, "all"), collect, all,
	    &more, e)) < 0)
		goto out;
	if (x->json) {
		if ((out = json_pack("{s:O, s:s?}", items, all, "next", more)) == NULL) {
			r = nomem(e);
			goto out;
		}
		r = emit(x, out, render, e);
	} else if ((r = emit(x, all, render, e)) == 0 && more != NULL)
		fprintf(stderr, "(more: add --all)\n");
out:
	json_decref(out);
	json_decref(all);
	free(more);
	return r;
}

/* Every page of conflicts: there are few, and a partial list would mislead. */
static int
cmd_conflicts(struct cmd_ctx *x, struct qerr *e)
{
	json_t *all = json_array(), *ans = NULL;
	char *more = NULL;
	int r;

	if (all == NULL)
		return nomem(e);
	if ((r = pages(x, "/api/v1/identities/conflicts", NULL, "conflicts", "after", true,
	    collect, all, &more, e)) == 0) {
		if ((ans = json_pack("{s:O}", "conflicts", all)) == NULL)
			r = nomem(e);
		else
			r = emit(x, ans, render_conflicts, e);
	}
	json_decref(ans);
	json_decref(all);
	free(more);
	return r;
}

static int
cmd_actions(struct cmd_ctx *x, struct qerr *e)
{
	const char *since = cli_opt(x->inv, "since");
	char when[64], *qs = NULL;
	int r;

	if (since != NULL && (r = cli_since_parse(since, time(NULL), when, sizeof(when),
	    e)) < 0)
		return r;
	if ((r = qs_add(x, &qs, "status", cli_opt(x->inv, "status"), e)) == 0 &&
	    (r = qs_add(x, &qs, "type", cli_opt(x->inv, "type"), e)) == 0 &&
	    (r = qs_add(x, &qs, "identity_id", cli_opt(x->inv, "identity"), e)) == 0 &&
	    (r = qs_add(x, &qs, "since", since ? when : NULL, e)) == 0 &&
	    (r = qs_add(x, &qs, "limit", cli_opt(x->inv, "limit"), e)) == 0)
		r = list_cmd(x, "/api/v1/actions", qs, "actions", "before", render_actions, e);
	free(qs);
	return r;
}

static int
cmd_identities(struct cmd_ctx *x, struct qerr *e)
{
	char *qs = NULL;
	int r;

	if ((r = qs_add(x, &qs, "q", x->inv->npos ? x->inv->pos[0] : NULL, e)) == 0 &&
	    (r = qs_add(x, &qs, "limit", cli_opt(x->inv, "limit"), e)) == 0)
		r = list_cmd(x, "/api/v1/identities", qs, "identities", "after",
		    render_identities, e);
	free(qs);
	return r;
}

static int
cmd_action(struct cmd_ctx *x, struct qerr *e)
{
	json_t *a = NULL;
	int r;

	if (cli_flag(x->inv, "wait"))
		return follow(x, x->inv->pos[0], e);
	if ((r = call_id(x, "GET", "/api/v1/actions", x->inv->pos[0], NULL, NULL, &a,
	    e)) == 0 && (r = emit(x, a, render_action, e)) == 0)
		x->status = cli_exit_for_action(str(a, "status"));
	json_decref(a);
	return r;
}

/* The action as it is now and what cancelling it will do, then the question. */
static int
cancel_confirmed(struct cmd_ctx *x, struct qerr *e)
{
	json_t *a = NULL;
	char *text = NULL;
	int r;

	if ((r = call_id(x, "GET", "/api/v1/actions", x->inv->pos[0], NULL, NULL, &a,
	    e)) < 0)
		return r;
	if (render_cancel_plan(a, &text) < 0)
		r = nomem(e);
	else {
		fputs(text, x->json ? stderr : stdout);
		fflush(x->json ? stderr : stdout);
		r = confirm(x) ? 0 : 1;
	}
	free(text);
	json_decref(a);
	return r;
}

static int
cmd_cancel(struct cmd_ctx *x, struct qerr *e)
{
	json_t *a = NULL, *body = json_object();
	int r;

	if (body == NULL)
		return nomem(e);
	if ((r = cancel_confirmed(x, e)) == 0 &&
	    (r = call_id(x, "POST", "/api/v1/actions", x->inv->pos[0], "/cancel", body, &a,
	    e)) == 0)
		r = emit(x, a, render_action, e);
	r = r > 0 ? 0 : r;
	json_decref(a);
	json_decref(body);
	return r;
}

static int
cmd_pending(struct cmd_ctx *x, struct qerr *e)
{
	char *qs = NULL;
	int r;

	if ((r = qs_add(x, &qs, "status", "pending_approval", e)) == 0 &&
	    (r = qs_add(x, &qs, "type", cli_opt(x->inv, "type"), e)) == 0 &&
	    (r = qs_add(x, &qs, "limit", cli_opt(x->inv, "limit"), e)) == 0)
		r = list_cmd(x, "/api/v1/actions", qs, "actions", "before", render_actions, e);
	free(qs);
	return r;
}

/* One action: its own route; several, or --type: the bulk route, one result each. */
static int
cmd_decide(struct cmd_ctx *x, const char *verb, struct qerr *e)
{
	const char *reason = cli_opt(x->inv, "reason"), *type = cli_opt(x->inv, "type");
	json_t *body = json_object(), *ans = NULL, *ids, *res;
	char path[64], tail[32];
	size_t i;
	int r;

	if (body == NULL)
		return nomem(e);
	if ((x->inv->npos == 0) == (type == NULL)) {
		json_decref(body);
		return qerr_set(e, QERR_INVALID, "--type", "name the actions, or give --type "
		    "(not both)");
	}
	if (reason != NULL)
		json_object_set_new(body, "reason", json_string(reason));
	if (x->inv->npos == 1) {
		snprintf(tail, sizeof(tail), "/%s", verb);
		if ((r = call_id(x, "POST", "/api/v1/actions", x->inv->pos[0], tail, body,
		    &ans, e)) == 0)
			r = emit(x, ans, render_action, e);
		goto out;
	}
	if (type != NULL)
		json_object_set_new(body, "type", json_string(type));
	else {
		json_object_set_new(body, "ids", ids = json_array());
		for (i = 0; i < x->inv->npos; i++)
			json_array_append_new(ids, json_string(x->inv->pos[i]));
	}
	snprintf(path, sizeof(path), "/api/v1/actions/%s", verb);
	if ((r = client_call(x->cl, "POST", path, body, &ans, e)) < 0)
		goto out;
	if (x->json) {
		r = dump(ans, e);
		goto out;
	}
	json_array_foreach(json_object_get(ans, "results"), i, res) {
		if (str(res, "error") != NULL)
			x->status = CLI_EXIT_REFUSED;
		printf("%s  %s\n", str(res, "id") ? str(res, "id") : "?",
		    str(res, "status") ? str(res, "status") :
		    str(res, "message") ? str(res, "message") : "?");
	}
out:
	json_decref(ans);
	json_decref(body);
	return r;
}

/* The undo's own preview, shown, then the question. */
static int
undo_confirmed(struct cmd_ctx *x, json_t *body, struct qerr *e)
{
	json_t *pv = NULL;
	char *label = NULL;
	int r;

	if (json_object_set_new(body, "preview", json_true()) < 0)
		return nomem(e);
	if ((r = call_id(x, "POST", "/api/v1/actions", x->inv->pos[0], "/undo", body, &pv,
	    e)) < 0)
		goto out;
	r = nomem(e);
	if (asprintf(&label, "%s (undo of %s)", str(pv, "identity_id") ?
	    str(pv, "identity_id") : "?", x->inv->pos[0]) < 0) {
		label = NULL;
		goto out;
	}
	if ((r = show_plan(x, label, pv, e)) == 0 && !confirm(x))
		r = 1;
out:
	json_object_del(body, "preview");
	json_decref(pv);
	free(label);
	return r;
}

static int
cmd_undo(struct cmd_ctx *x, struct qerr *e)
{
	json_t *a = NULL, *body;
	int r;

	if ((body = json_pack("{s:s}", "reason", cli_opt(x->inv, "reason"))) == NULL)
		return nomem(e);
	if ((r = undo_confirmed(x, body, e)) != 0 ||
	    (r = call_id(x, "POST", "/api/v1/actions", x->inv->pos[0], "/undo", body, &a,
	    e)) < 0) {
		r = r > 0 ? 0 : r;
		goto out;
	}
	if (cli_flag(x->inv, "wait") && str(a, "id") != NULL) {
		if (!x->json)
			printf("undo requested as action %s\n", str(a, "id"));
		r = follow(x, str(a, "id"), e);
	} else
		r = emit(x, a, render_action, e);
out:
	json_decref(a);
	json_decref(body);
	return r;
}

static int
cmd_identity_show(struct cmd_ctx *x, struct qerr *e)
{
	json_t *idn = NULL;
	int r;

	if ((r = resolve_identity(x, x->inv->pos[0], &idn, e)) == 0)
		r = emit(x, idn, render_identity, e);
	json_decref(idn);
	return r;
}

static int
cmd_identity_add(struct cmd_ctx *x, struct qerr *e)
{
	json_t *body, *tags, *idn = NULL;
	const char *t;
	size_t i = 0;
	int r = QERR_NOMEM;

	if ((body = json_pack("{s:s, s:[]}", "display_name", cli_opt(x->inv, "name"),
	    "tags")) == NULL)
		return nomem(e);
	tags = json_object_get(body, "tags");
	while ((t = cli_opt_next(x->inv, "tag", &i)) != NULL)
		if (json_array_append_new(tags, json_string(t)) < 0) {
			nomem(e);
			goto out;
		}
	if ((r = client_call(x->cl, "POST", "/api/v1/identities", body, &idn, e)) == 0)
		r = emit(x, idn, render_identity, e);
out:
	json_decref(idn);
	json_decref(body);
	return r;
}

/* link and unlink: both answer with the identity as it is now. */
static int
cmd_identity_tag(struct cmd_ctx *x, struct qerr *e)
{
	json_t *idn = NULL, *body = NULL, *tags, *ans = NULL;
	size_t i;
	int r;

	if ((r = resolve_identity(x, x->inv->pos[0], &idn, e)) < 0)
		goto out;
	r = nomem(e);
	if (str(idn, "id") == NULL || (body = json_pack("{s:[]}", "tags")) == NULL)
		goto out;
	tags = json_object_get(body, "tags");
	for (i = 1; i < x->inv->npos; i++)
		json_array_append_new(tags, json_string(x->inv->pos[i]));
	if ((r = call_id(x, "PUT", "/api/v1/identities", str(idn, "id"), "/tags", body,
	    &ans, e)) == 0)
		r = emit(x, ans, render_identity, e);
out:
	json_decref(ans);
	json_decref(body);
	json_decref(idn);
	return r;
}

static int
cmd_identity_link(struct cmd_ctx *x, bool link, struct qerr *e)
{
	json_t *idn = NULL, *body = NULL, *ans = NULL;
	char *esc = NULL, *tail = NULL;
	const char *id;
	int r;

	if ((r = resolve_identity(x, x->inv->pos[0], &idn, e)) < 0)
		goto out;
	r = nomem(e);
	if ((id = str(idn, "id")) == NULL)
		goto out;
	if (link) {
		if ((body = json_pack("{s:s}", "account_id", x->inv->pos[1])) == NULL)
			goto out;
		r = call_id(x, "POST", "/api/v1/identities", id, "/accounts", body, &ans, e);
	} else {
		if ((esc = client_escape(x->cl, x->inv->pos[1])) == NULL ||
		    asprintf(&tail, "/accounts/%s", esc) < 0) {
			tail = NULL;
			goto out;
		}
		r = call_id(x, "DELETE", "/api/v1/identities", id, tail, NULL, &ans, e);
	}
	if (r == 0)
		r = emit(x, ans, render_identity, e);
out:
	free(tail);
	free(esc);
	json_decref(ans);
	json_decref(body);
	json_decref(idn);
	return r;
}

static int
simple(struct cmd_ctx *x, const char *method, const char *path, render_fn render,
    struct qerr *e)
{
	json_t *ans = NULL;
	int r;

	if ((r = client_call(x->cl, method, path, NULL, &ans, e)) == 0)
		r = emit(x, ans, render, e);
	json_decref(ans);
	return r;
}

/* Whether every system asked for has finished the run that serves the request. */
static bool
sync_done(const json_t *asked, const json_t *now, bool *failed)
{
	const json_t *a, *s;
	size_t i, k;
	bool done = true;

	*failed = false;
	json_array_foreach(asked, i, a) {
		json_array_foreach(now, k, s) {
			if (!json_equal(json_object_get(a, "system"),
			    json_object_get(s, "system")))
				continue;
			if (json_integer_value(json_object_get(s, "finished_run")) <
			    json_integer_value(json_object_get(a, "requested_run")))
				done = false;
			else if (json_is_string(json_object_get(s, "error")))
				*failed = true;
		}
	}
	return done;
}

/* One line, rewritten in place: each system's mode and counts so far. */
static void
progress(const json_t *now)
{
	const json_t *s;
	size_t i;

	fputs("\r", stderr);
	json_array_foreach(now, i, s)
		fprintf(stderr, "%s%s: %s %lld read, %lld changed%s", i > 0 ? "; " : "",
		    json_string_value(json_object_get(s, "system")),
		    json_is_string(json_object_get(s, "mode")) ?
		    json_string_value(json_object_get(s, "mode")) : "waiting",
		    (long long)json_integer_value(json_object_get(s, "seen")),
		    (long long)json_integer_value(json_object_get(s, "changed")),
		    json_is_true(json_object_get(s, "running")) ? "…" : "");
	fflush(stderr);
}

/* Polls GET /api/v1/sync until the runs asked for end; exit 1 if one failed. */
static int
sync_wait(struct cmd_ctx *x, const json_t *asked, struct qerr *e)
{
	struct timespec ts = { 0, 500 * 1000000L };
	json_t *ans = NULL, *now;
	bool failed = false, tty = isatty(STDERR_FILENO);
	int r;

	/* A line rewritten in place is noise in a log or a pipe: a terminal only. */
	for (;;) {
		if ((r = client_call(x->cl, "GET", "/api/v1/sync", NULL, &ans, e)) != 0)
			return r;
		now = json_object_get(ans, "systems");
		if (tty)
			progress(now);
		if (sync_done(asked, now, &failed))
			break;
		json_decref(ans);
		ans = NULL;
		nanosleep(&ts, NULL);
	}
	if (tty)
		fputs("\n", stderr);
	r = emit(x, ans, render_sync, e);
	if (r == 0 && failed)
		x->status = CLI_EXIT_FAILED;
	json_decref(ans);
	return r;
}

static int
cmd_sync(struct cmd_ctx *x, struct qerr *e)
{
	const char *tail = cli_flag(x->inv, "full") ? "?full=true" : NULL;
	json_t *ans = NULL;
	int r;

	if (x->inv->npos > 0)
		r = call_id(x, "POST", "/api/v1/sync", x->inv->pos[0], tail, NULL, &ans, e);
	else
		r = client_call(x->cl, "POST", tail != NULL ? "/api/v1/sync?full=true" :
		    "/api/v1/sync", NULL, &ans, e);
	if (r == 0 && cli_flag(x->inv, "no-wait"))
		r = emit(x, ans, render_sync, e);
	else if (r == 0)
		r = sync_wait(x, json_object_get(ans, "systems"), e);
	json_decref(ans);
	return r;
}

static int
cmd_audit(struct cmd_ctx *x, struct qerr *e)
{
	json_t *ans = NULL;
	char *qs = NULL, *path = NULL, *more = NULL;
	int r;

	if ((r = qs_add(x, &qs, "after", cli_opt(x->inv, "after"), e)) < 0 ||
	    (r = qs_add(x, &qs, "limit", cli_opt(x->inv, "limit"), e)) < 0)
		goto out;
	if (asprintf(&path, "/api/v1/audit%s", qs ? qs : "") < 0) {
		path = NULL;
		r = nomem(e);
		goto out;
	}
	if ((r = client_call(x->cl, "GET", path, NULL, &ans, e)) < 0)
		goto out;
	if (x->json)
		r = emit(x, ans, render_audit, e);
	else if ((r = emit(x, json_object_get(ans, "entries"), render_audit, e)) == 0 &&
	    (more = cursor(ans)) != NULL)
		fprintf(stderr, "(more: quell audit --after %s)\n", more);
out:
	free(more);
	json_decref(ans);
	free(path);
	free(qs);
	return r;
}

static int
verify(struct cmd_ctx *x, struct qerr *e)
{
	json_t *ans = NULL;
	int r;

	if ((r = client_call(x->cl, "GET", "/api/v1/audit/verify", NULL, &ans, e)) == 0 &&
	    (r = emit(x, ans, render_verify, e)) == 0)
		x->status = json_is_true(json_object_get(ans, "ok")) ? CLI_EXIT_OK :
		    CLI_EXIT_FAILED;
	json_decref(ans);
	return r;
}

static int
export_page(struct cmd_ctx *x, const json_t *items, void *arg, struct qerr *e)
{
	const json_t *entry;
	size_t i;

	(void)x;
	(void)arg;
	json_array_foreach(items, i, entry) {
		if (json_dumpf(entry, stdout, JSON_COMPACT) < 0 || fputc('\n', stdout) == EOF)
			return qerr_set(e, QERR_IO, NULL, "cannot write to standard output");
	}
	return 0;
}

static int
export(struct cmd_ctx *x, struct qerr *e)
{
	char *qs = NULL, *more = NULL;
	int r;

	if ((r = qs_add(x, &qs, "after", cli_opt(x->inv, "after"), e)) == 0 &&
	    (r = qs_add(x, &qs, "limit", cli_opt(x->inv, "limit"), e)) == 0)
		r = pages(x, "/api/v1/audit", qs, "entries", "after", true, export_page, NULL,
		    &more, e);
	if (r == 0 && fflush(stdout) != 0)
		r = qerr_set(e, QERR_IO, NULL, "cannot write to standard output");
	free(more);
	free(qs);
	return r;
}

static void
scrub_token(json_t *ans)
{
	const char *t = str(ans, "token");

	/* jansson owns the buffer; it is writable memory, only typed const. */
	if (t != NULL)
		explicit_bzero((char *)t, strlen(t));
}

/*
 * --output FILE: created here, before quelld is asked, so that a name that cannot be
 * used costs no token. O_EXCL: an existing file (or a link planted in its place) is
 * never written through.
 */
static int
output_open(const char *path, struct qerr *e)
{
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600)) < 0) {
		if (errno == EEXIST)
			return qerr_set(e, QERR_INVALID, "--output", "--output %s already "
			    "exists: quell never overwrites a file; remove it or name another",
			    path);
		return qerr_set(e, QERR_CONFIG, "--output", "cannot create --output %s: %s",
		    path, strerror(errno));
	}
	/* The umask may only take bits away; this makes sure of owner read and write. */
	if (fchmod(fd, 0600) != 0) {
		qerr_set(e, QERR_CONFIG, "--output", "cannot set mode 0600 on %s: %s", path,
		    strerror(errno));
		close(fd);
		unlink(path);
		return QERR_CONFIG;
	}
	return fd;
}

/* Writes the token and a newline, as --token-file reads it; 0 or -1 (errno set). */
static int
output_write(int fd, const char *tok)
{
	size_t len = strlen(tok), done = 0;
	ssize_t n;

	while (done < len) {
		if ((n = write(fd, tok + done, len - done)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)n;
	}
	while ((n = write(fd, "\n", 1)) < 0 && errno == EINTR)
		;
	if (n != 1 || fsync(fd) != 0)
		return -1;
	return 0;
}

static json_t *
token_body(const struct cmd_ctx *x)
{
	const char *tag, *exp = cli_opt(x->inv, "expires");
	json_t *body, *scope;
	size_t i = 0;

	if ((body = json_pack("{s:s, s:s, s:[]}", "name", cli_opt(x->inv, "name"), "role",
	    cli_opt(x->inv, "role"), "scope")) == NULL)
		return NULL;
	scope = json_object_get(body, "scope");
	while ((tag = cli_opt_next(x->inv, "scope", &i)) != NULL)
		if (json_array_append_new(scope, json_string(tag)) != 0) {
			json_decref(body);
			return NULL;
		}
	if (exp != NULL && json_object_set_new(body, "expires_in", json_string(exp)) != 0) {
		json_decref(body);
		return NULL;
	}
	return body;
}

/* The token's details for people: where the secret went, and that it is shown once. */
static int
token_details(const json_t *ans, FILE *f, const char *where, struct qerr *e)
{
	char *text = NULL;

	if (render_token(ans, &text) < 0)
		return nomem(e);
	fputs(text, f);
	free(text);
	if (where != NULL)
		fprintf(f, "\nThe token was written to %s; it is not shown again.\n", where);
	return 0;
}

static int
token_create(struct cmd_ctx *x, struct qerr *e)
{
	const char *out = cli_opt(x->inv, "output"), *exp = cli_opt(x->inv, "expires");
	json_t *body = NULL, *ans = NULL;
	char *tok = NULL;
	int fd = -1, wr, err, r;

	if (exp != NULL && (r = cli_expires_check(exp, e)) < 0)
		return r;
	if (out != NULL && (fd = output_open(out, e)) < 0)
		return fd;
	if ((body = token_body(x)) == NULL) {
		r = nomem(e);
		goto out;
	}
	if ((r = client_call(x->cl, "POST", "/api/v1/tokens", body, &ans, e)) < 0)
		goto out;
	if (str(ans, "token") == NULL || (tok = render_clean(str(ans, "token"))) == NULL) {
		r = str(ans, "token") == NULL ? qerr_set(e, QERR_INTERNAL, NULL,
		    "quelld's answer holds no token") : nomem(e);
		goto out;
	}
	if (fd >= 0) {
		wr = output_write(fd, tok);
		err = errno;
		if (close(fd) != 0 && wr == 0) {
			wr = -1;
			err = errno;
		}
		fd = -1;
		if (wr != 0) {
			/* A part of the secret is no use to anyone: it goes. */
			unlink(out);
			r = qerr_set(e, QERR_IO, "--output", "cannot write the token to %s: %s; "
			    "token %s was made: revoke it (quell token revoke %s)", out,
			    strerror(err), str(ans, "id") ? str(ans, "id") : "?",
			    str(ans, "id") ? str(ans, "id") : "?");
			goto out;
		}
		/* The file holds the secret; no copy of it goes anywhere else. */
		scrub_token(ans);
		json_object_del(ans, "token");
		r = x->json ? dump(ans, e) : token_details(ans, stdout, out, e);
	} else if (x->json)
		r = dump(ans, e);
	else if (isatty(STDOUT_FILENO)) {
		if ((r = token_details(ans, stdout, NULL, e)) == 0)
			printf("\n%s\n\nThis is the only time the token is shown; store it now.\n",
			    tok);
	} else {
		/*
		 * Redirected: standard output is the token alone, which --token-file
		 * takes as it is; what a person wants to read goes to the terminal.
		 */
		printf("%s\n", tok);
		r = token_details(ans, stderr, "standard output", e);
	}
	if (r == 0 && fflush(stdout) != 0)
		r = qerr_set(e, QERR_IO, NULL, "cannot write to standard output");
out:
	if (fd >= 0) {
		/* Nothing was written to it: the empty file made above goes again. */
		close(fd);
		unlink(out);
	}
	fflush(stdout);
	if (tok != NULL)
		explicit_bzero(tok, strlen(tok));
	free(tok);
	scrub_token(ans);
	json_decref(ans);
	json_decref(body);
	return r;
}

static int
cmd_token_list(struct cmd_ctx *x, struct qerr *e)
{
	char *qs = NULL;
	int r;

	if ((r = qs_add(x, &qs, "limit", cli_opt(x->inv, "limit"), e)) == 0)
		r = list_cmd(x, "/api/v1/tokens", qs, "tokens", "after", render_tokens, e);
	free(qs);
	return r;
}

/*
 * The id of the token a name or an id names: an id as it is; a name must belong to
 * exactly one token not yet revoked (names are not unique: a second "ci" may exist).
 */
static int
resolve_token(struct cmd_ctx *x, const char *arg, char **id, struct qerr *e)
{
	json_t *all = json_array(), *t, *live = json_array();
	char *more = NULL, *text = NULL, *a = NULL;
	size_t i, named = 0;
	int r;

	*id = NULL;
	if (all == NULL || live == NULL) {
		r = nomem(e);
		goto out;
	}
	if (id_valid(arg, "qt")) {
		r = (*id = strdup(arg)) ? 0 : nomem(e);
		goto out;
	}
	if ((r = pages(x, "/api/v1/tokens", "?limit=1000", "tokens", "after", true, collect,
	    all, &more, e)) < 0)
		goto out;
	json_array_foreach(all, i, t)
		if (str(t, "name") != NULL && strcmp(str(t, "name"), arg) == 0) {
			named++;
			if (!json_is_true(json_object_get(t, "revoked")))
				json_array_append(live, t);
		}
	r = nomem(e);
	if ((a = render_clean(arg)) == NULL)
		goto out;
	if (json_array_size(live) == 1) {
		r = (*id = strdup(str(json_array_get(live, 0), "id") ?
		    str(json_array_get(live, 0), "id") : "")) ? 0 : nomem(e);
		goto out;
	}
	if (json_array_size(live) > 1) {
		if (render_tokens(live, &text) == 0)
			fprintf(stderr, "tokens named '%s':\n%s", a, text);
		r = qerr_set(e, QERR_INVALID, "NAME|ID",
		    "more than one token not revoked is named '%s'; give its id", a);
		goto out;
	}
	r = qerr_set(e, named ? QERR_CONFLICT : QERR_NOT_FOUND, "NAME|ID", named ?
	    "every token named '%s' is already revoked" : "no token is named '%s'", a);
	/* As quelld would answer for an id, so the exit status is the same (3). */
	e->status = named ? 409 : 404;
out:
	free(a);
	free(text);
	free(more);
	json_decref(live);
	json_decref(all);
	return r;
}

static int
cmd_token_revoke(struct cmd_ctx *x, struct qerr *e)
{
	const char *reason = cli_opt(x->inv, "reason");
	json_t *body = NULL, *ans = NULL;
	char *id = NULL, *n = NULL;
	int r;

	if ((r = resolve_token(x, x->inv->pos[0], &id, e)) < 0)
		goto out;
	if (reason != NULL && (body = json_pack("{s:s}", "reason", reason)) == NULL) {
		r = nomem(e);
		goto out;
	}
	if ((r = call_id(x, "POST", "/api/v1/tokens", id, "/revoke", body, &ans, e)) < 0)
		goto out;
	if (x->json)
		r = dump(ans, e);
	else if ((n = render_clean(str(ans, "name"))) == NULL)
		r = nomem(e);
	else
		printf("token %s (%s) revoked\n", id, n);
out:
	free(n);
	free(id);
	json_decref(ans);
	json_decref(body);
	return r;
}

/* Automatic attack disruption and advanced hunting: alerts, release, hunt. */

static int
cmd_alerts(struct cmd_ctx *x, struct qerr *e)
{
	char *qs = NULL;
	int r;

	if ((r = qs_add(x, &qs, "source", cli_opt(x->inv, "source"), e)) == 0 &&
	    (r = qs_add(x, &qs, "limit", cli_opt(x->inv, "limit"), e)) == 0)
		r = list_cmd(x, "/api/v1/alerts", qs, "alerts", "before", render_alerts, e);
	free(qs);
	return r;
}

static int
cmd_alert(struct cmd_ctx *x, struct qerr *e)
{
	json_t *a = NULL;
	int r;

	if ((r = call_id(x, "GET", "/api/v1/alerts", x->inv->pos[0], NULL, NULL, &a,
	    e)) == 0)
		r = emit(x, a, render_alert, e);
	json_decref(a);
	return r;
}

struct ingest {
	long lines, created, refused;
};

/* One line of JSON: posted as it is; a refusal is reported and counted. */
static int
ingest_line(struct cmd_ctx *x, const char *line, struct ingest *in, struct qerr *e)
{
	json_error_t je;
	json_t *body, *ans = NULL;
	struct qerr pe;
	int r;

	in->lines++;
	if ((body = json_loads(line, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		fprintf(stderr, "quell: line %ld: not JSON: %s\n", in->lines, je.text);
		in->refused++;
		return 0;
	}
	qerr_clear(&pe);
	r = client_call(x->cl, "POST", "/api/v1/alerts", body, &ans, &pe);
	json_decref(body);
	if (r == 0)
		in->created++;
	else if (pe.status >= 400 && pe.status < 500) {
		fprintf(stderr, "quell: line %ld: refused: %s%s%s\n", in->lines,
		    pe.field[0] ? pe.field : "", pe.field[0] ? ": " : "", pe.msg);
		in->refused++;
		r = 0;
	} else
		*e = pe;
	json_decref(ans);
	return r;
}

static int
cmd_alerts_ingest(struct cmd_ctx *x, struct qerr *e)
{
	const char *path = x->inv->pos[0];
	struct ingest in = { 0, 0, 0 };
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int r = 0;

	if ((f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r")) == NULL)
		return qerr_set(e, QERR_IO, "FILE", "cannot open %s: %s", path,
		    strerror(errno));
	while (r == 0 && (n = getline(&line, &cap, f)) >= 0) {
		if (n > 1024 * 1024) {
			fprintf(stderr, "quell: line %ld: longer than 1 MiB\n", ++in.lines);
			in.refused++;
			continue;
		}
		line[strcspn(line, "\r\n")] = '\0';
		if (line[strspn(line, " \t")] != '\0')
			r = ingest_line(x, line, &in, e);
	}
	if (f != stdin)
		fclose(f);
	free(line);
	if (r == 0)
		printf("%ld alert(s): %ld accepted (new or repeats of stored ones), "
		    "%ld refused\n", in.lines, in.created, in.refused);
	if (r == 0 && in.refused > 0)
		x->status = CLI_EXIT_REFUSED;
	return r;
}

/* The release's preview, shown, then the question. */
static int
release_confirmed(struct cmd_ctx *x, const json_t *idn, json_t *body, struct qerr *e)
{
	json_t *pv = NULL;
	char *label = NULL, *text = NULL;
	int r;

	if (json_object_set_new(body, "preview", json_true()) < 0)
		return nomem(e);
	if ((r = call_id(x, "POST", "/api/v1/identities", str(idn, "id"), "/release", body,
	    &pv, e)) < 0)
		goto out;
	r = nomem(e);
	if (asprintf(&label, "%s (%s)", str(idn, "display_name") ? str(idn, "display_name") :
	    "?", str(idn, "id")) < 0) {
		label = NULL;
		goto out;
	}
	if (render_release_plan(pv, label, &text) < 0)
		goto out;
	fputs(text, x->json ? stderr : stdout);
	fflush(x->json ? stderr : stdout);
	r = confirm(x) ? 0 : 1;
out:
	json_object_del(body, "preview");
	json_decref(pv);
	free(label);
	free(text);
	return r;
}

static int
cmd_release(struct cmd_ctx *x, struct qerr *e)
{
	json_t *idn = NULL, *body = NULL, *ans = NULL, *res, *st;
	const char *id;
	size_t i, k;
	int r;

	if ((r = resolve_identity(x, x->inv->pos[0], &idn, e)) < 0)
		goto out;
	r = nomem(e);
	if ((id = str(idn, "id")) == NULL ||
	    (body = json_pack("{s:s}", "reason", cli_opt(x->inv, "reason"))) == NULL)
		goto out;
	if ((r = release_confirmed(x, idn, body, e)) != 0) {
		r = r > 0 ? 0 : r;
		goto out;
	}
	if ((r = call_id(x, "POST", "/api/v1/identities", id, "/release", body, &ans,
	    e)) < 0 || x->json) {
		if (r == 0)
			r = dump(ans, e);
		goto out;
	}
	/* What happened to each containment and, per account, to each step. */
	json_array_foreach(json_object_get(ans, "results"), i, res) {
		if (str(res, "error") != NULL)
			printf("%s %s: not released: %s\n", str(res, "action_id"),
			    str(res, "type"), str(res, "message") ? str(res, "message") : "?");
		else if (str(res, "undo_action_id") != NULL)
			printf("%s %s: undone by %s (%s)\n", str(res, "action_id"),
			    str(res, "type"), str(res, "undo_action_id"),
			    str(res, "outcome") ? str(res, "outcome") : "?");
		else
			printf("%s %s: %s\n", str(res, "action_id"), str(res, "type"),
			    str(res, "outcome") ? str(res, "outcome") : "?");
		json_array_foreach(json_object_get(res, "steps"), k, st)
			printf("  %s/%s: %s%s%s\n", str(st, "system"), str(st, "account"),
			    str(st, "status"), str(st, "message") ? ": " : "",
			    str(st, "message") ? str(st, "message") : "");
	}
	json_array_foreach(json_object_get(ans, "still_contained"), i, res)
		printf("still contained: %s/%s (%s)\n", str(res, "system"),
		    str(res, "account"), str(res, "action_id"));
	if (!json_is_true(json_object_get(ans, "released")))
		x->status = CLI_EXIT_FAILED;
out:
	json_decref(ans);
	json_decref(body);
	json_decref(idn);
	return r;
}

static void
print_cell(const json_t *v, bool last)
{
	char *text = NULL, *c;

	if (json_is_string(v))
		c = render_clean(json_string_value(v));
	else {
		text = json_is_null(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		c = render_clean(text);
	}
	printf("%s%s", c ? c : "?", last ? "\n" : "\t");
	free(c);
	free(text);
}

static void
print_rows(const json_t *ans)
{
	const json_t *cols = json_object_get(ans, "columns"), *row;
	size_t i, k;

	json_array_foreach(cols, k, row)
		print_cell(row, k + 1 == json_array_size(cols));
	json_array_foreach(json_object_get(ans, "rows"), i, row)
		for (k = 0; k < json_array_size(row); k++)
			print_cell(json_array_get(row, k), k + 1 == json_array_size(row));
	if (json_is_true(json_object_get(ans, "truncated")))
		fprintf(stderr, "(more rows: raise --limit)\n");
}

/* The distinct identity ids of the identity_id column, in order of appearance. */
static json_t *
hunt_identities(const json_t *ans, struct qerr *e)
{
	const json_t *cols = json_object_get(ans, "columns"), *row, *c;
	json_t *ids = json_array(), *seen = json_object();
	const char *id;
	size_t i, k, col = (size_t)-1;

	json_array_foreach(cols, k, c)
		if (json_is_string(c) && strcmp(json_string_value(c), "identity_id") == 0)
			col = k;
	if (col == (size_t)-1) {
		qerr_set(e, QERR_INVALID, "--then", "the query has no identity_id column "
		    "to act on");
		json_decref(ids);
		ids = NULL;
	}
	json_array_foreach(json_object_get(ans, "rows"), i, row) {
		if (ids == NULL || (id = json_string_value(json_array_get(row, col))) == NULL ||
		    json_object_get(seen, id) != NULL)
			continue;
		json_object_set_new(seen, id, json_true());
		json_array_append_new(ids, json_string(id));
	}
	json_decref(seen);
	return ids;
}

/* Sorts the results of one preview of idns[from, ...): an identity none of whose
 * systems supports the action is listed as skipped, the others go to keep. */
static int
hunt_sort(const json_t *ans, const json_t *idns, size_t from, json_t *keep,
    struct qerr *e)
{
	const json_t *res, *err;
	const char *code;
	char *id, *m;
	size_t i;

	json_array_foreach(json_object_get(ans, "results"), i, res) {
		err = json_object_get(res, "error");
		code = str(err, "code");
		if (code == NULL || strcmp(code, "unsupported") != 0) {
			if (json_array_append(keep, json_array_get(idns, from + i)) < 0)
				return nomem(e);
			continue;
		}
		id = render_clean(str(json_array_get(idns, from + i), "id"));
		m = render_clean(str(err, "message"));
		fprintf(stderr, "quell: skipped %s: %s\n", id ? id : "?", m ? m : "?");
		free(m);
		free(id);
	}
	return 0;
}

/* The identities of idns some system of which supports type, asked of quelld by a
 * preview that is not all or nothing, so that one refusal does not hide the rest. */
static int
hunt_supported(struct cmd_ctx *x, const char *type, const json_t *idns, json_t *keep,
    struct qerr *e)
{
	json_t *body, *ans;
	size_t from, n;
	int r = 0;

	for (from = 0; r == 0 && from < json_array_size(idns); from += n) {
		n = json_array_size(idns) - from;
		n = n > BULK_MAX ? BULK_MAX : n;
		ans = NULL;
		if ((body = bulk_body(x, type, idns, from, n, true)) == NULL ||
		    json_object_set_new(body, "all_or_nothing", json_false()) < 0)
			r = nomem(e);
		else if ((r = client_call(x->cl, "POST", "/api/v1/actions/bulk", body, &ans,
		    e)) == 0)
			r = hunt_sort(ans, idns, from, keep, e);
		json_decref(ans);
		json_decref(body);
	}
	return r;
}

/* Previews the action on every identity, skips those it cannot apply to, asks once,
 * then requests the rest in bulk. */
static int
hunt_then(struct cmd_ctx *x, const json_t *ids, const char *type, struct qerr *e)
{
	json_t *idns = json_array(), *keep = json_array();
	const json_t *id;
	size_t i;
	int r = 0;

	json_array_foreach(ids, i, id)
		if (idns == NULL || json_array_append_new(idns, json_pack("{s:O, s:O}", "id",
		    id, "display_name", id)) < 0)
			r = nomem(e);
	if (r == 0 && keep == NULL)
		r = nomem(e);
	if (r == 0)
		r = hunt_supported(x, type, idns, keep, e);
	if (r == 0 && json_array_size(keep) < json_array_size(idns))
		fprintf(stderr, "quell: %zu of %zu identities skipped: no linked system "
		    "supports %s\n", json_array_size(idns) - json_array_size(keep),
		    json_array_size(idns), type);
	if (r == 0 && json_array_size(keep) == 0)
		fputs("quell: nothing to do\n", stderr);
	else if (r == 0)
		r = act_bulk(x, type, keep, e);
	json_decref(keep);
	json_decref(idns);
	return r;
}

static int
cmd_hunt(struct cmd_ctx *x, struct qerr *e)
{
	const char *then = cli_opt(x->inv, "then"), *lim = cli_opt(x->inv, "limit");
	json_t *body, *ans = NULL, *ids = NULL;
	enum action_type t;
	char *end;
	long n = 100;
	int r;

	if (lim != NULL && ((n = strtol(lim, &end, 10)) < 1 || n > 10000 || *end != '\0'))
		return qerr_set(e, QERR_INVALID, "--limit", "--limit must be 1 to 10000");
	if (then != NULL && (action_type_parse(then, &t) != 0 || t == ACTION_DEACTIVATE ||
	    t == ACTION_SET_RISK))
		return qerr_set(e, QERR_INVALID, "--then", "--then takes disable, enable, "
		    "revoke_sessions, mark_compromised or force_password_change");
	if (then != NULL && cli_opt(x->inv, "reason") == NULL)
		return qerr_set(e, QERR_INVALID, "--reason", "--then needs --reason");
	if ((body = json_pack("{s:s, s:I}", "query", x->inv->pos[0], "limit",
	    (json_int_t)n)) == NULL)
		return nomem(e);
	if ((r = client_call(x->cl, "POST", "/api/v1/hunting/query", body, &ans, e)) < 0)
		goto out;
	if (x->json)
		r = dump(ans, e);
	else
		print_rows(ans);
	if (r == 0 && then != NULL) {
		if ((ids = hunt_identities(ans, e)) == NULL)
			r = QERR_INVALID;
		else if (json_array_size(ids) == 0)
			fprintf(stderr, "quell: no rows with an identity_id: nothing to do\n");
		else
			r = hunt_then(x, ids, then, e);
	}
out:
	json_decref(ids);
	json_decref(ans);
	json_decref(body);
	return r;
}

int
cmd_run(struct cmd_ctx *x, struct qerr *e)
{
	x->status = CLI_EXIT_OK;
	switch (x->inv->cmd->id) {
	case CMD_DISABLE: return cmd_act(x, "disable", e);
	case CMD_ENABLE: return cmd_act(x, "enable", e);
	case CMD_FORCE_PASSWORD_CHANGE: return cmd_act(x, "force_password_change", e);
	case CMD_REVOKE_SESSIONS: return cmd_act(x, "revoke_sessions", e);
	case CMD_MARK_COMPROMISED: return cmd_act(x, "mark_compromised", e);
	case CMD_DEACTIVATE: return cmd_act(x, "deactivate", e);
	case CMD_SET_RISK: return cmd_act(x, "set_risk", e);
	case CMD_ACTIONS: return cmd_actions(x, e);
	case CMD_ACTION: return cmd_action(x, e);
	case CMD_CANCEL: return cmd_cancel(x, e);
	case CMD_PENDING: return cmd_pending(x, e);
	case CMD_APPROVE: return cmd_decide(x, "approve", e);
	case CMD_REJECT: return cmd_decide(x, "reject", e);
	case CMD_UNDO: return cmd_undo(x, e);
	case CMD_IDENTITIES: return cmd_identities(x, e);
	case CMD_IDENTITY_SHOW: return cmd_identity_show(x, e);
	case CMD_IDENTITY_ADD: return cmd_identity_add(x, e);
	case CMD_IDENTITY_LINK: return cmd_identity_link(x, true, e);
	case CMD_IDENTITY_TAG: return cmd_identity_tag(x, e);
	case CMD_IDENTITY_UNLINK: return cmd_identity_link(x, false, e);
	case CMD_SYNC: return cmd_sync(x, e);
	case CMD_IDENTITY_CONFLICTS:
		return cmd_conflicts(x, e);
	case CMD_SYSTEMS: return simple(x, "GET", "/api/v1/systems", render_systems, e);
	case CMD_WHOAMI: return simple(x, "GET", "/api/v1/whoami", render_whoami, e);
	case CMD_AUDIT: return cmd_audit(x, e);
	case CMD_AUDIT_VERIFY: return verify(x, e);
	case CMD_AUDIT_EXPORT: return export(x, e);
	case CMD_TOKEN_CREATE: return token_create(x, e);
	case CMD_TOKEN_LIST: return cmd_token_list(x, e);
	case CMD_TOKEN_REVOKE: return cmd_token_revoke(x, e);
	case CMD_ALERTS: return cmd_alerts(x, e);
	case CMD_ALERT: return cmd_alert(x, e);
	case CMD_ALERTS_INGEST: return cmd_alerts_ingest(x, e);
	case CMD_RELEASE: return cmd_release(x, e);
	case CMD_HUNT: return cmd_hunt(x, e);
	case CMD_COMPLETION: break;	/* main prints it, without quelld */
	}
	return qerr_set(e, QERR_INTERNAL, NULL, "unknown command");
}
