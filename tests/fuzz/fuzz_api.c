/* Requests without a connection for the API's harnesses (fuzz_api.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "fuzz.h"
#include "fuzz_api.h"
#include "providers/provider.h"

#define ARGS_MAX 16

static char *query_buf;
static const char *arg_key[ARGS_MAX], *arg_val[ARGS_MAX];
static size_t nargs;

const char *
MHD_lookup_connection_value(struct MHD_Connection *conn, enum MHD_ValueKind kind,
    const char *key)
{
	size_t i;

	(void)conn;
	if (kind == MHD_HEADER_KIND)
		return strcasecmp(key, MHD_HTTP_HEADER_CONTENT_TYPE) == 0 ?
		    "application/json" : NULL;
	if (kind != MHD_GET_ARGUMENT_KIND)
		return NULL;
	for (i = 0; i < nargs; i++)
		if (strcmp(arg_key[i], key) == 0)
			return arg_val[i];
	return NULL;
}

/* Splits the query string at '&' and '=', each part percent-decoded. */
static void
query_parse(const char *query)
{
	char *p, *save = NULL, *eq, *c;

	nargs = 0;
	if (query == NULL || (query_buf = strdup(query)) == NULL)
		return;
	for (p = strtok_r(query_buf, "&", &save); p != NULL && nargs < ARGS_MAX;
	    p = strtok_r(NULL, "&", &save)) {
		if ((eq = strchr(p, '=')) != NULL)
			*eq++ = '\0';
		for (c = p; *c != '\0'; c++)
			if (*c == '+')
				*c = ' ';
		MHD_http_unescape(p);
		if (eq != NULL) {
			for (c = eq; *c != '\0'; c++)
				if (*c == '+')
					*c = ' ';
			MHD_http_unescape(eq);
		}
		arg_key[nargs] = p;
		arg_val[nargs++] = eq != NULL ? eq : "";
	}
}

/* An error of quell's own is logged: its line is part of the finding. */
static void
log_stderr(const struct log_record *rec)
{
	fprintf(stderr, "quell log: %s\n", rec->msg);
}

void
fuzz_api_init(struct api *api, struct config *cfg, struct store *st)
{
	log_set_sink(log_stderr, LOG_LVL_ERROR);
	memset(api, 0, sizeof(*api));
	memset(cfg, 0, sizeof(*cfg));
	cfg->kinds = provider_kinds();
	api->cfg = cfg;
	api->st = st;
}

void
fuzz_req_init(struct req *q, struct api *api, const uint8_t *data, size_t size,
    const char *query)
{
	memset(q, 0, sizeof(*q));
	q->api = api;
	q->method = "POST";
	q->path = "/fuzz";
	if (data != NULL && (q->body = malloc(size + 1)) != NULL) {
		memcpy(q->body, data, size);
		q->body[size] = '\0';
		q->len = q->cap = size;
	}
	query_parse(query);
}

void
fuzz_req_clear(struct req *q)
{
	json_decref(q->resp);
	free(q->body);
	free(query_buf);
	query_buf = NULL;
	nargs = 0;
}

void
fuzz_check_refusal(const struct req *q)
{
	json_t *err = json_object_get(q->resp, "error");
	const char *field = json_string_value(json_object_get(err, "field"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	char *text = json_dumps(q->resp, JSON_COMPACT);

	/* What was answered, for whoever reads a finding. */
	if (text != NULL && (field == NULL || msg == NULL || q->status < 400 ||
	    q->status >= 500))
		fprintf(stderr, "fuzz: answered %d %s\n", q->status, text);
	free(text);
	fuzz_check(q->status >= 400 && q->status < 500, "a refusal is a 4xx answer");
	fuzz_check(field != NULL && field[0] != '\0', "a refusal names the field");
	fuzz_check(msg != NULL && msg[0] != '\0', "a refusal says why");
}
