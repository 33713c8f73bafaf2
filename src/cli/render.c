/*
 * Renders the API's JSON for people. Cells are built first and printed once the
 * column widths are known; every string from quelld passes through render_clean.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli/render.h"
#include "core/err.h"
#include "core/text.h"

/* The widest a table may print; 0: no limit. */
static size_t max_width = RENDER_WIDTH;

struct table {
	size_t ncols;
	char **cells;		/* row-major */
	size_t ncells, cap;
	bool oom;
	bool whole;		/* never cut: what a person reads before confirming */
};

char *
render_clean(const char *s)
{
	const unsigned char *p;
	char *c;
	size_t k = 0;

	if (s == NULL)
		s = "-";
	if ((c = strdup(s)) == NULL)
		return NULL;
	for (p = (const unsigned char *)s; *p != '\0'; p++, k++) {
		if (*p < 0x20 || *p == 0x7f)
			c[k] = '?';
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			/* C1 controls are two bytes; keep the length, blank both. */
			c[k++] = '?';
			c[k] = '?';
			p++;
		}
	}
	return c;
}

static char *
join(const json_t *arr)
{
	const json_t *v;
	char *s = NULL, *buf = NULL;
	size_t i, len = 0;
	FILE *f;

	if ((f = open_memstream(&buf, &len)) == NULL)
		return NULL;
	json_array_foreach(arr, i, v)
		fprintf(f, "%s%s", i ? ", " : "",
		    json_is_string(v) ? json_string_value(v) : "?");
	if (fclose(f) == 0 && buf != NULL)
		s = render_clean(len ? buf : "-");
	free(buf);
	return s;
}

void
render_set_width(size_t cols)
{
	max_width = cols;
}

static bool
time_key(const char *key)
{
	size_t n = strlen(key);

	return strcmp(key, "time") == 0 || (n > 3 && strcmp(key + n - 3, "_at") == 0);
}

int
render_local_time(const char *iso, char *out, size_t len)
{
	char zone[8];
	struct tm tm;
	int64_t ms;
	time_t t;

	if (text_time_parse(iso, &ms) < 0)
		return -1;
	t = (time_t)(ms / 1000);
	if (localtime_r(&t, &tm) == NULL || strftime(zone, sizeof(zone), "%z", &tm) != 5 ||
	    strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		return -1;
	/* ISO 8601 wants the offset's colon, which strftime's %z leaves out. */
	if (strlen(out) + 7 > len)
		return -1;
	snprintf(out + strlen(out), len - strlen(out), "%.3s:%.2s", zone, zone + 3);
	return 0;
}

/* A time from quelld (UTC) in the local zone, with its offset. */
static char *
local_time(const char *iso)
{
	char buf[64];

	return render_local_time(iso, buf, sizeof(buf)) == 0 ? strdup(buf) :
	    render_clean(iso);
}

/* The text of o[key] for a cell: strings cleaned, null or absent as "-". */
static char *
val(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	char num[32], *dump, *s;

	/* An answer without the field (an older or a faulty quelld) shows "-". */
	if (v == NULL)
		return strdup("-");
	switch (json_typeof(v)) {
	case JSON_STRING:
		if (time_key(key))
			return local_time(json_string_value(v));
		return render_clean(json_string_value(v));
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return strdup(num);
	case JSON_REAL:
		snprintf(num, sizeof(num), "%g", json_real_value(v));
		return strdup(num);
	case JSON_TRUE:
		return strdup("yes");
	case JSON_FALSE:
		return strdup("no");
	case JSON_ARRAY:
		return join(v);
	case JSON_OBJECT:
		if ((dump = json_dumps(v, JSON_COMPACT)) == NULL)
			return NULL;
		s = render_clean(dump);
		free(dump);
		return s;
	default:
		return strdup("-");
	}
}

static bool
present(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return v != NULL && !json_is_null(v) &&
	    !(json_is_object(v) && json_object_size(v) == 0);
}

static void
cell(struct table *t, char *s)
{
	char **n;

	if (s == NULL) {
		t->oom = true;
		return;
	}
	if (t->ncells == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 32;
		if ((n = realloc(t->cells, t->cap * sizeof(*n))) == NULL) {
			free(s);
			t->oom = true;
			t->cap = t->ncells;
			return;
		}
		t->cells = n;
	}
	t->cells[t->ncells++] = s;
}

/* One row of cells from keys of o; "" stands for a literal empty cell. */
static void
row(struct table *t, const json_t *o, const char *const *keys)
{
	for (; *keys != NULL; keys++)
		cell(t, **keys ? val(o, *keys) : strdup(""));
}

static void
header(struct table *t, const char *const *titles)
{
	for (; *titles != NULL; titles++)
		cell(t, strdup(*titles));
}

static void
kv(struct table *t, const char *label, const json_t *o, const char *key)
{
	cell(t, strdup(label));
	cell(t, val(o, key));
}

/* Characters, not bytes: UTF-8 continuation bytes take no column. */
static size_t
width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/*
 * Text may be cut, an id or a time may not: a column may narrow when a cell below
 * its heading holds a space or is longer than any id or time.
 */
static void
narrowable(const struct table *t, bool *ok)
{
	size_t i;

	for (i = t->ncols; i < t->ncells; i++)
		if (strchr(t->cells[i], ' ') != NULL || width(t->cells[i]) > 32)
			ok[i % t->ncols] = true;
}

/*
 * Narrows the widest column that ok allows, one character at a time, until a row
 * fits max_width; none below RENDER_MIN_COL. False if it still does not fit.
 */
static bool
narrow(const struct table *t, const bool *ok, size_t *w)
{
	size_t c, widest, total;

	for (;;) {
		for (total = 2 * (t->ncols - 1), widest = t->ncols, c = 0; c < t->ncols; c++) {
			total += w[c];
			if (ok[c] && w[c] > RENDER_MIN_COL &&
			    (widest == t->ncols || w[c] > w[widest]))
				widest = c;
		}
		if (total <= max_width || widest == t->ncols)
			return total <= max_width;
		w[widest]--;
	}
}

/*
 * Text columns narrow first; then, when ids and times are too many for the width,
 * every column but the first and the ID, which name the row (--wide shows them
 * whole).
 * Key/value blocks (two columns) and previews are left whole: a reason or a warning
 * cut short would hide what a person needs to read.
 */
static void
fit(const struct table *t, size_t *w)
{
	bool ok[16] = { false };
	size_t c;

	if (max_width == 0 || t->ncols < 3 || t->whole)
		return;
	narrowable(t, ok);
	if (narrow(t, ok, w))
		return;
	for (c = 1; c < t->ncols; c++)
		ok[c] = strcmp(t->cells[c], "ID") != 0;
	narrow(t, ok, w);
}

/* s in at most w columns: cut with "…" when longer. Returns the columns used. */
static size_t
put_cell(const char *s, size_t w, FILE *f)
{
	size_t used = 0;

	if (width(s) <= w) {
		fputs(s, f);
		return width(s);
	}
	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80 && ++used == w)
			break;
		fputc(*s, f);
	}
	fputs("…", f);
	return w;
}

static void
table_print(const struct table *t, FILE *f)
{
	size_t w[16] = { 0 }, i, c, pad;

	for (i = 0; i < t->ncells; i++)
		if (width(t->cells[i]) > w[i % t->ncols])
			w[i % t->ncols] = width(t->cells[i]);
	fit(t, w);
	for (i = 0; i < t->ncells; i++) {
		c = i % t->ncols;
		if (c + 1 == t->ncols) {
			put_cell(t->cells[i], w[c], f);
			fputc('\n', f);
			continue;
		}
		for (pad = put_cell(t->cells[i], w[c], f); pad < w[c] + 2; pad++)
			fputc(' ', f);
	}
}

static void
table_free(struct table *t)
{
	size_t i;

	for (i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
}

/* Prints and frees t; false if building it ran out of memory. */
static bool
table_flush(struct table *t, FILE *f)
{
	bool ok = !t->oom;

	if (ok)
		table_print(t, f);
	table_free(t);
	memset(t, 0, sizeof(*t));
	return ok;
}

struct doc {
	FILE *f;
	char *buf;
	size_t len;
};

static int
doc_open(struct doc *d)
{
	d->buf = NULL;
	d->f = open_memstream(&d->buf, &d->len);
	return d->f == NULL ? QERR_NOMEM : 0;
}

static int
doc_close(struct doc *d, bool ok, char **out)
{
	if (fclose(d->f) != 0 || d->buf == NULL)
		ok = false;
	if (!ok) {
		free(d->buf);
		return QERR_NOMEM;
	}
	*out = d->buf;
	return 0;
}

static void
step_rows(struct table *t, const json_t *steps)
{
	static const char *const titles[] = { "SYSTEM", "ACCOUNT", "STATUS", "ATTEMPTS",
		"REQUEST ID", "ERROR", "MESSAGE", NULL };
	static const char *const keys[] = { "system", "account_name", "status", "attempts",
		"request_id", "error_code", "message", NULL };
	const json_t *s;
	size_t i;

	header(t, titles);
	json_array_foreach(steps, i, s)
		row(t, s, keys);
}

int
render_action(const json_t *a, char **out)
{
	struct table t = { .ncols = 2 };
	const json_t *steps = json_object_get(a, "steps");
	struct doc d;
	bool ok;

	if (doc_open(&d) < 0)
		return QERR_NOMEM;
	kv(&t, "id:", a, "id");
	kv(&t, "type:", a, "type");
	kv(&t, "status:", a, "status");
	kv(&t, "identity:", a, "identity_id");
	if (present(a, "identity_name"))
		kv(&t, "name:", a, "identity_name");
	if (present(a, "account_id"))
		kv(&t, "account:", a, "account_id");
	if (present(a, "account_name"))
		kv(&t, "account name:", a, "account_name");
	kv(&t, "requested by:", a, "requested_by");
	/* A display name alone can be anyone's: the kind and stable id tell them apart. */
	if (present(a, "requested_by_id"))
		kv(&t, "requester id:", a, "requested_by_id");
	if (present(a, "requested_by_kind"))
		kv(&t, "requester kind:", a, "requested_by_kind");
	kv(&t, "source:", a, "source");
	kv(&t, "reason:", a, "reason");
	if (present(a, "params"))
		kv(&t, "params:", a, "params");
	if (present(a, "message"))
		kv(&t, "message:", a, "message");
	if (present(a, "alert_id"))
		kv(&t, "alert:", a, "alert_id");
	if (present(a, "undo_of"))
		kv(&t, "undoes:", a, "undo_of");
	if (present(a, "approval_rule"))
		kv(&t, "approval rule:", a, "approval_rule");
	if (present(a, "approval_expires_at"))
		kv(&t, "approve by:", a, "approval_expires_at");
	if (present(a, "decided_by"))
		kv(&t, "decided by:", a, "decided_by");
	if (present(a, "decided_by_id"))
		kv(&t, "decider id:", a, "decided_by_id");
	kv(&t, "created:", a, "created_at");
	kv(&t, "updated:", a, "updated_at");
	if (present(a, "finished_at"))
		kv(&t, "finished:", a, "finished_at");
	ok = table_flush(&t, d.f);
	if (json_array_size(steps) > 0) {
		fputs("\n", d.f);
		t.ncols = 7;
		step_rows(&t, steps);
		ok = table_flush(&t, d.f) && ok;
	}
	return doc_close(&d, ok, out);
}

/* The step's line of the preview (ActionPreview accounts[]), or NULL. */
static const json_t *
preview_line(const json_t *a, const json_t *step)
{
	const json_t *l;
	const char *id = json_string_value(json_object_get(step, "id"));
	size_t i;

	json_array_foreach(json_object_get(json_object_get(a, "preview"), "accounts"), i, l)
		if (id != NULL && json_equal(json_object_get(l, "step_id"),
		    json_object_get(step, "id")))
			return l;
	return NULL;
}

/* The preview's plan for one step in words: act, already, will be refused (and the
 * option that lifts it), or skip and why. */
static char *
plan(const json_t *step, const json_t *line, const char *type)
{
	const char *st = json_string_value(json_object_get(step, "status"));
	const char *msg = json_string_value(json_object_get(step, "message"));
	const char *outcome = json_string_value(json_object_get(line, "outcome"));
	const char *note = json_string_value(json_object_get(line, "note"));
	const char *opt = json_string_value(json_object_get(line, "option"));
	char *s = NULL, *c, flag[64];
	size_t k;
	int n;

	/* The option as the command's flag: clear_dont_expire is --clear-dont-expire. */
	for (k = 0; opt != NULL && opt[k] != '\0' && k + 1 < sizeof(flag); k++)
		flag[k] = opt[k] == '_' ? '-' : opt[k];
	flag[k] = '\0';
	if (outcome == NULL)
		outcome = st != NULL && strcmp(st, "not_applicable") == 0 ? "not_supported" :
		    msg != NULL ? "refused" : "change";
	if (strcmp(outcome, "not_supported") == 0)
		n = asprintf(&s, "skip: %s", note ? note : msg ? msg : "not applicable");
	else if (strcmp(outcome, "refused") == 0)
		n = asprintf(&s, "%s%s%s%s%s", note ? note : "will be refused: ",
		    note ? "" : msg ? msg : "", opt ? " (add --" : "", flag, opt ? ")" : "");
	else if (strcmp(outcome, "already") == 0 && note != NULL)
		n = asprintf(&s, "%s", note);
	else
		n = asprintf(&s, "%s%s%s", type, opt && note ? " - " : "",
		    opt && note ? note : "");
	if (n < 0)
		return NULL;
	c = render_clean(s);
	free(s);
	return c;
}

/* The lines beneath the preview's table: the approval it will wait for, warnings. */
static void
preview_notes(FILE *f, const json_t *a)
{
	const char *rule = json_string_value(json_object_get(a, "approval_rule"));
	const char *status = json_string_value(json_object_get(a, "status"));
	const json_t *w;
	char *m;
	size_t i;

	if (status != NULL && strcmp(status, "pending_approval") == 0) {
		m = render_clean(rule ? rule : "?");
		fprintf(f, "will wait for approval (rule %s): a second person must approve "
		    "it before it runs\n", m ? m : "?");
		free(m);
	}
	json_array_foreach(json_object_get(json_object_get(a, "preview"), "warnings"), i, w) {
		m = render_clean(json_string_value(json_object_get(w, "message")));
		fprintf(f, "warning: %s\n", m ? m : "?");
		free(m);
	}
}

int
render_preview(const json_t *a, const char *identity_label, char **out)
{
	static const char *const titles[] = { "SYSTEM", "ACCOUNT", "LOGIN", "STATE", "PLAN",
		NULL };
	static const char *const keys[] = { "system", "account_name", NULL };
	const json_t *steps = json_object_get(a, "steps"), *s, *l;
	const char *type = json_string_value(json_object_get(a, "type"));
	struct table t = { .ncols = 5, .whole = true };
	char *label = render_clean(identity_label), *ctype = render_clean(type), *p;
	size_t i, act = 0;
	struct doc d;
	bool ok;

	if (label == NULL || ctype == NULL || doc_open(&d) < 0) {
		free(label);
		free(ctype);
		return QERR_NOMEM;
	}
	fprintf(d.f, "%s on %s:\n", ctype, label);
	header(&t, titles);
	json_array_foreach(steps, i, s) {
		l = preview_line(a, s);
		row(&t, s, keys);
		cell(&t, present(l, "upn") ? val(l, "upn") : present(l, "username") ?
		    val(l, "username") : strdup("-"));
		cell(&t, present(l, "state") ? val(l, "state") : strdup("-"));
		cell(&t, (p = plan(s, l, ctype)));
		if (p != NULL && strncmp(p, "skip:", 5) != 0)
			act++;
	}
	ok = table_flush(&t, d.f);
	preview_notes(d.f, a);
	fprintf(d.f, "%zu account%s to act on, %zu skipped.\n", act, act == 1 ? "" : "s",
	    json_array_size(steps) - act);
	free(label);
	free(ctype);
	return doc_close(&d, ok, out);
}

/* What a cancel does to a step in this status. */
static const char *
cancel_word(const char *status)
{
	if (status != NULL && strcmp(status, "queued") == 0)
		return "will be cancelled before it starts";
	if (status != NULL && strcmp(status, "retry_wait") == 0)
		return "will be cancelled before its next try";
	if (status != NULL && strcmp(status, "running") == 0)
		return "is running: it finishes, its outcome stands";
	return "already ended: stays so";
}

int
render_cancel_plan(const json_t *a, char **out)
{
	static const char *const titles[] = { "SYSTEM", "ACCOUNT", "STATUS", "PLAN", NULL };
	static const char *const keys[] = { "system", "account_name", "status", NULL };
	const json_t *s;
	struct table t = { .ncols = 4, .whole = true };
	char *type = render_clean(json_string_value(json_object_get(a, "type")));
	char *who = render_clean(json_string_value(json_object_get(a,
	    present(a, "identity_name") ? "identity_name" : "identity_id")));
	const char *st = json_string_value(json_object_get(a, "status"));
	struct doc d;
	size_t i;
	bool ok;

	if (type == NULL || who == NULL || doc_open(&d) < 0) {
		free(type);
		free(who);
		return QERR_NOMEM;
	}
	fprintf(d.f, "cancel %s on %s:\n", type, who);
	header(&t, titles);
	json_array_foreach(json_object_get(a, "steps"), i, s) {
		row(&t, s, keys);
		cell(&t, strdup(cancel_word(json_string_value(json_object_get(s, "status")))));
	}
	ok = table_flush(&t, d.f);
	if (st != NULL && strcmp(st, "pending_approval") == 0)
		fputs("waiting for approval: it ends at once, nothing runs\n", d.f);
	free(type);
	free(who);
	return doc_close(&d, ok, out);
}

/* One containment of a release's preview: what becomes of it, and for an undo its
 * accounts as the undo's preview has them. */
static bool
release_item(FILE *f, const json_t *it)
{
	static const char *const titles[] = { "  SYSTEM", "ACCOUNT", "LOGIN", "STATE", "PLAN",
		NULL };
	struct table t = { .ncols = 5, .whole = true };
	const json_t *l, *p = json_object_get(it, "preview");
	char *id = render_clean(json_string_value(json_object_get(it, "action_id")));
	char *type = render_clean(json_string_value(json_object_get(it, "type")));
	char *note = render_clean(json_string_value(json_object_get(it, "note")));
	char *rule = render_clean(json_string_value(json_object_get(it, "approval_rule")));
	char *s, *ind;
	size_t i;
	bool ok = id != NULL && type != NULL && note != NULL;

	if (ok)
		fprintf(f, "%s %s: %s%s%s%s\n", id, type, note, rule ? " (it will wait for "
		    "approval, rule " : "", rule ? rule : "", rule ? ")" : "");
	if (ok && p != NULL) {
		header(&t, titles);
		json_array_foreach(json_object_get(p, "accounts"), i, l) {
			s = val(l, "system");
			if (s == NULL || asprintf(&ind, "  %s", s) < 0)
				ind = NULL;
			free(s);
			cell(&t, ind);
			cell(&t, val(l, "account_name"));
			cell(&t, present(l, "upn") ? val(l, "upn") : val(l, "username"));
			cell(&t, val(l, "state"));
			cell(&t, val(l, "note"));
		}
		ok = table_flush(&t, f);
	}
	free(id);
	free(type);
	free(note);
	free(rule);
	return ok;
}

int
render_release_plan(const json_t *plan, const char *identity_label, char **out)
{
	char *label = render_clean(identity_label);
	const json_t *it;
	struct doc d;
	size_t i;
	bool ok = true;

	if (label == NULL || doc_open(&d) < 0) {
		free(label);
		return QERR_NOMEM;
	}
	fprintf(d.f, "release %s:\n", label);
	json_array_foreach(json_object_get(plan, "results"), i, it)
		ok = release_item(d.f, it) && ok;
	free(label);
	return doc_close(&d, ok, out);
}

/* A table with one row per element of arr, printed to f; false when out of memory. */
static bool
rows(FILE *f, const json_t *arr, const char *const *titles, const char *const *keys)
{
	struct table t = { 0 };
	const json_t *o;
	size_t i;

	for (t.ncols = 0; titles[t.ncols] != NULL; t.ncols++)
		continue;
	header(&t, titles);
	json_array_foreach(arr, i, o)
		row(&t, o, keys);
	return table_flush(&t, f);
}

/* A table with one row per element of arr, or `none` when it is empty. */
static int
list(const json_t *arr, const char *const *titles, const char *const *keys,
    const char *none, char **out)
{
	struct doc d;

	if (doc_open(&d) < 0)
		return QERR_NOMEM;
	if (json_array_size(arr) == 0) {
		fprintf(d.f, "%s\n", none);
		return doc_close(&d, true, out);
	}
	return doc_close(&d, rows(d.f, arr, titles, keys), out);
}

/* A heading and a table of arr's rows, or nothing when arr is empty. */
static bool
section(FILE *f, const char *heading, const json_t *arr, const char *const *titles,
    const char *const *keys)
{
	if (json_array_size(arr) == 0)
		return true;
	fprintf(f, "\n%s\n", heading);
	return rows(f, arr, titles, keys);
}

int
render_actions(const json_t *actions, char **out)
{
	static const char *const titles[] = { "ID", "TYPE", "STATUS", "NAME", "ACCOUNT",
		"IDENTITY", "REQUESTED BY", "CREATED", NULL };
	static const char *const keys[] = { "id", "type", "status", "identity_name",
		"account_name", "identity_id", "requested_by", "created_at", NULL };

	return list(actions, titles, keys, "no actions", out);
}

int
render_audit(const json_t *entries, char **out)
{
	static const char *const titles[] = { "SEQ", "TIME", "ACTOR", "KIND", "EVENT",
		"ACTION", "IDENTITY", "CLIENT", NULL };
	static const char *const keys[] = { "seq", "time", "actor", "actor_kind", "event",
		"action_id", "identity_id", "client", NULL };

	return list(entries, titles, keys, "no audit entries", out);
}

int
render_alerts(const json_t *alerts, char **out)
{
	static const char *const titles[] = { "ID", "TIME", "SOURCE", "CATEGORY",
		"SEVERITY", "CONFIDENCE", "TITLE", NULL };
	static const char *const keys[] = { "id", "time", "source", "category",
		"severity", "confidence", "title", NULL };

	return list(alerts, titles, keys, "no alerts", out);
}

/* Decisions with the detail's "why" lifted into a column of its own. */
static json_t *
decisions_why(const json_t *decisions)
{
	json_t *out = json_array(), *c;
	const json_t *o;
	size_t i;

	json_array_foreach(decisions, i, o) {
		if ((c = json_deep_copy(o)) == NULL)
			continue;
		json_object_set(c, "why", json_object_get(json_object_get(o, "detail"),
		    "why"));
		json_array_append_new(out, c);
	}
	return out;
}

int
render_alert(const json_t *a, char **out)
{
	static const char *const ent_titles[] = { "TYPE", "ID TYPE", "VALUE", "RESOLUTION",
		"IDENTITY", "ACCOUNT", NULL };
	static const char *const ent_keys[] = { "type", "id_type", "value", "resolution",
		"identity_id", "account_id", NULL };
	static const char *const dec_titles[] = { "IDENTITY", "RULE", "OUTCOME", "DECIDED",
		"WHY", NULL };
	static const char *const dec_keys[] = { "identity_id", "rule", "outcome",
		"created_at", "why", NULL };
	static const char *const act_titles[] = { "ACTION", "TYPE", "STATUS", "IDENTITY",
		"CREATED", NULL };
	static const char *const act_keys[] = { "id", "type", "status", "identity_id",
		"created_at", NULL };
	struct table t = { .ncols = 2 };
	json_t *dec = decisions_why(json_object_get(a, "decisions"));
	struct doc d;
	bool ok;

	if (dec == NULL || doc_open(&d) < 0) {
		json_decref(dec);
		return QERR_NOMEM;
	}
	kv(&t, "id:", a, "id");
	kv(&t, "source:", a, "source");
	kv(&t, "source id:", a, "source_alert_id");
	kv(&t, "title:", a, "title");
	kv(&t, "category:", a, "category");
	kv(&t, "severity:", a, "severity");
	kv(&t, "confidence:", a, "confidence");
	kv(&t, "time:", a, "time");
	kv(&t, "received:", a, "received_at");
	ok = table_flush(&t, d.f);
	ok = section(d.f, "Entities:", json_object_get(a, "entities"), ent_titles,
	    ent_keys) && ok;
	if (json_array_size(dec) == 0)
		fputs("\nNo decision: automatic attack disruption did not act on it.\n", d.f);
	ok = section(d.f, "Decisions:", dec, dec_titles, dec_keys) && ok;
	ok = section(d.f, "Actions:", json_object_get(a, "actions"), act_titles,
	    act_keys) && ok;
	json_decref(dec);
	return doc_close(&d, ok, out);
}

static int
by_name(const void *a, const void *b)
{
	const char *x = json_string_value(json_object_get(*(json_t *const *)a,
	    "display_name"));
	const char *y = json_string_value(json_object_get(*(json_t *const *)b,
	    "display_name"));

	return strcasecmp(x ? x : "", y ? y : "");
}

/* Identities by name (the API pages them in id order), with their number of linked
 * accounts, which the API does not count. */
int
render_identities(const json_t *identities, char **out)
{
	static const char *const titles[] = { "ID", "NAME", "TAGS", "ACCOUNTS", NULL };
	static const char *const keys[] = { "id", "display_name", "tags", NULL };
	struct table t = { .ncols = 4 };
	size_t i, n = json_array_size(identities);
	const json_t *o, *accs;
	json_t **v;
	struct doc d;
	char *c;
	bool ok;

	if (n == 0)
		return list(identities, titles, keys, "no identities", out);
	if ((v = calloc(n, sizeof(*v))) == NULL)
		return QERR_NOMEM;
	if (doc_open(&d) < 0) {
		free(v);
		return QERR_NOMEM;
	}
	for (i = 0; i < n; i++)
		v[i] = json_array_get(identities, i);
	qsort(v, n, sizeof(*v), by_name);
	header(&t, titles);
	for (i = 0; i < n; i++) {
		o = v[i];
		row(&t, o, keys);
		accs = json_object_get(o, "accounts");
		c = NULL;
		if (!json_is_array(accs))
			c = strdup("-");
		else if (asprintf(&c, "%zu", json_array_size(accs)) < 0)
			c = NULL;
		cell(&t, c);
	}
	free(v);
	ok = table_flush(&t, d.f);
	return doc_close(&d, ok, out);
}

int
render_identity(const json_t *idn, char **out)
{
	static const char *const titles[] = { "ACCOUNT", "SYSTEM", "KIND", "USERNAME",
		"UPN", "STATE", "LINKED BY", NULL };
	static const char *const keys[] = { "id", "system", "kind", "username", "upn",
		"state", "link_rule", NULL };
	const json_t *accs = json_object_get(idn, "accounts"), *o;
	struct table t = { .ncols = 2 };
	struct doc d;
	size_t i;
	bool ok;

	if (doc_open(&d) < 0)
		return QERR_NOMEM;
	kv(&t, "id:", idn, "id");
	kv(&t, "name:", idn, "display_name");
	kv(&t, "tags:", idn, "tags");
	kv(&t, "created:", idn, "created_at");
	ok = table_flush(&t, d.f);
	fputs("\n", d.f);
	if (json_array_size(accs) == 0)
		fputs("no linked accounts\n", d.f);
	else {
		t.ncols = 7;
		header(&t, titles);
		json_array_foreach(accs, i, o)
			row(&t, o, keys);
		ok = table_flush(&t, d.f) && ok;
	}
	return doc_close(&d, ok, out);
}

int
render_systems(const json_t *answer, char **out)
{
	static const char *const titles[] = { "NAME", "KIND", "ACTIONS", NULL };
	static const char *const keys[] = { "name", "kind", "actions", NULL };

	return list(json_object_get(answer, "systems"), titles, keys,
	    "no identity systems configured", out);
}

int
render_whoami(const json_t *answer, char **out)
{
	struct table t = { .ncols = 2 };
	struct doc d;
	bool ok;

	if (doc_open(&d) < 0)
		return QERR_NOMEM;
	kv(&t, "name:", answer, "name");
	kv(&t, "role:", answer, "role");
	kv(&t, "permissions:", answer, "permissions");
	ok = table_flush(&t, d.f);
	return doc_close(&d, ok, out);
}

int
render_sync(const json_t *answer, char **out)
{
	static const char *const titles[] = { "SYSTEM", "MODE", "RUNNING", "SEEN",
		"CHANGED", "NEW", "REMOVED", "LINKED", "IDENTITIES", "CONFLICTS",
		"FINISHED", "NEXT", "ERROR", NULL };
	static const char *const keys[] = { "system", "mode", "running", "seen",
		"changed", "created", "removed", "linked", "identities_created", "conflicts",
		"finished_at", "next_run_at", "error", NULL };
	const json_t *o;
	struct table t = { .ncols = 13 };
	struct doc d;
	size_t i;
	bool ok;

	if (doc_open(&d) < 0)
		return QERR_NOMEM;
	header(&t, titles);
	json_array_foreach(json_object_get(answer, "systems"), i, o)
		row(&t, o, keys);
	ok = table_flush(&t, d.f);
	return doc_close(&d, ok, out);
}

int
render_conflicts(const json_t *answer, char **out)
{
	static const char *const titles[] = { "ACCOUNT", "SYSTEM", "USERNAME", "EMAIL",
		"MATCHES", NULL };
	static const char *const keys[] = { "id", "system", "username", "email", NULL };
	const json_t *o;
	struct table t = { .ncols = 5 };
	struct doc d;
	size_t i;
	bool ok;

	if (doc_open(&d) < 0)
		return QERR_NOMEM;
	if (json_array_size(json_object_get(answer, "conflicts")) == 0)
		fputs("no accounts in conflict\n", d.f);
	header(&t, titles);
	json_array_foreach(json_object_get(answer, "conflicts"), i, o) {
		row(&t, json_object_get(o, "account"), keys);
		cell(&t, val(o, "identities"));
	}
	ok = json_array_size(json_object_get(answer, "conflicts")) == 0 ?
	    (table_free(&t), true) : table_flush(&t, d.f);
	return doc_close(&d, ok, out);
}

int
render_token(const json_t *answer, char **out)
{
	struct table t = { .ncols = 2 };
	struct doc d;
	bool ok;

	if (doc_open(&d) < 0)
		return QERR_NOMEM;
	kv(&t, "id:", answer, "id");
	kv(&t, "name:", answer, "name");
	kv(&t, "role:", answer, "role");
	kv(&t, "scope:", answer, "scope");
	cell(&t, strdup("expires:"));
	cell(&t, present(answer, "expires_at") ? val(answer, "expires_at") :
	    strdup("never"));
	ok = table_flush(&t, d.f);
	return doc_close(&d, ok, out);
}

int
render_tokens(const json_t *tokens, char **out)
{
	static const char *const titles[] = { "NAME", "ID", "ROLE", "SCOPE", "CREATED",
		"LAST USED", "EXPIRES", "STATUS", NULL };
	static const char *const keys[] = { "name", "id", "role", "scope", "created_at",
		"last_used_at", "expires_at", "status", NULL };

	return list(tokens, titles, keys, "no tokens", out);
}

int
render_verify(const json_t *answer, char **out)
{
	struct table t = { .ncols = 2 };
	struct doc d;
	bool ok;

	if (doc_open(&d) < 0)
		return QERR_NOMEM;
	if (json_is_true(json_object_get(answer, "ok"))) {
		fputs("audit chain intact\n", d.f);
		kv(&t, "entries:", answer, "entries");
		kv(&t, "head:", answer, "head");
	} else {
		fputs("audit chain BROKEN\n", d.f);
		kv(&t, "first broken:", answer, "first_broken");
		kv(&t, "reason:", answer, "reason");
		kv(&t, "entries:", answer, "entries");
	}
	ok = table_flush(&t, d.f);
	return doc_close(&d, ok, out);
}
